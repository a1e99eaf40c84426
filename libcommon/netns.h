/* netns: a task's own network namespace (issue 13), kept by a bind mount of
 * its nsfs file so that the OCI runtime can join it by path, with a
 * loopback interface that is up and a TCP socket listening inside it on
 * 127.0.0.1:port: the Light endpoint only that task can reach. And the
 * SCM_RIGHTS helpers that carry such a socket to mantad-light. */
#ifndef MANTA_NETNS_H
#define MANTA_NETNS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Creates a network namespace kept at path (a new file; its directory must
 * exist), brings its lo up and, when lfd is not NULL, returns in *lfd a
 * socket listening on 127.0.0.1:port inside it (close-on-exec,
 * non-blocking). Needs CAP_SYS_ADMIN and CAP_NET_ADMIN. 0, or -1 with
 * errno set and nothing left behind (nothing logged). */
int netns_create(const char *path, uint16_t port, int *lfd);
/* A new socket listening on 127.0.0.1:port inside the namespace kept at
 * path (one netns_create made): for a run adopted after a restart. 0 or -1
 * (errno set; EADDRINUSE while the old socket still listens). */
int netns_listen(const char *path, uint16_t port, int *lfd);
/* Unmounts and unlinks a namespace file; an absent one is not an error.
 * 0 or -1 (errno set). */
int netns_remove(const char *path);
/* Sends len bytes (at least one) and the descriptor fd on a connected unix
 * socket. 0 or -1 (errno set). */
int fd_send(int sock, int fd, const void *buf, size_t len);
/* Receives at most len bytes and at most one descriptor (*fd, -1 when none
 * came; close-on-exec). The byte count (0 at end of stream) or -1. */
ssize_t fd_recv(int sock, int *fd, void *buf, size_t len);

#endif
