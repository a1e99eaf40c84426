/* notify: systemd's readiness protocol (sd_notify(3)), written by hand. */
#ifndef MANTACTL_NOTIFY_H
#define MANTACTL_NOTIFY_H

/* Reads and unsets $NOTIFY_SOCKET (so that the daemons do not inherit
 * it). Returns 0, or -1 after a warning when it names no usable socket. */
int notify_init(void);
/* Sends one datagram of "KEY=VALUE" lines ("READY=1\nSTATUS=..."),
 * formatted as printf does; nothing when $NOTIFY_SOCKET was not set.
 * Returns 0 or -1 (logged once). */
int notify_send(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
