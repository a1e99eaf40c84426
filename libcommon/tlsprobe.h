/* tlsprobe: why a TLS connection failed, in words. Neither libgrpc ("Ssl
 * handshake failed: ... certificate verify failed") nor paho ("TCP/TLS
 * connect failure") says whether a certificate expired, comes from another
 * CA or names another host; one handshake of our own with the same files,
 * verifying as they do (the chain against ca.crt or the system roots, then
 * the host name or address), reads OpenSSL's verification result.
 * Blocking (up to timeout_ms): call it off any event loop. Needs -lssl
 * -lcrypto (pkg-config openssl; grpc's libs include them). */
#ifndef MANTA_TLSPROBE_H
#define MANTA_TLSPROBE_H

#include <stdbool.h>
#include <stddef.h>

#define TLS_PROBE_MS 3000

struct tls_probe {
	const char *peer;	/* "manager", "broker": named in the words */
	const char *host;
	int port;
	const char *ca_file;	/* NULL: the system roots */
	const char *cert_file;	/* NULL: no client certificate */
	const char *key_file;	/* may be sealed (secret.h: *.sbox) */
	const unsigned char *sbox_key;	/* opens a sealed key_file */
	const char *cert_name;	/* how to call cert_file in the words */
	const char *alpn;	/* "h2" for gRPC, NULL for none */
	bool verify;		/* false: only the handshake counts */
	int timeout_ms;
};

/* 1 with why naming what is wrong: the peer's certificate refused and why
 * ("certificate has expired", "unable to get local issuer certificate",
 * "IP address mismatch", ... with its subject, issuer and end date), or our
 * certificate (or its absence) refused by the peer; 0 when the handshake
 * and the checks succeed; -1 when there is no TCP connection (why says so). */
int tls_probe(const struct tls_probe *p, char *why, size_t len);

#endif
