/* tlsprobe: one TLS handshake of our own to name the cause of a failed
 * one (tlsprobe.h). */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "secret.h"
#include "tlsprobe.h"

#define PEEK_MS 500	/* for an alert after the handshake */

/* The client key: a sealed one is opened into locked memory, parsed from
 * there, and wiped (SSL keeps its own parsed copy). */
static int
use_key(SSL *ssl, const struct tls_probe *p)
{
	char why[600], *pem;
	size_t n;
	BIO *bio;
	EVP_PKEY *pk = NULL;
	int rc = 0;

	if (!secret_path_sealed(p->key_file))
		return SSL_use_PrivateKey_file(ssl, p->key_file, SSL_FILETYPE_PEM);
	if ((pem = secret_file_read(p->sbox_key, p->key_file, &n, why, sizeof(why))) == NULL) {
		ERR_raise(ERR_LIB_PEM, PEM_R_BAD_DECRYPT);	/* why: cfg_load said it */
		return 0;
	}
	if ((bio = BIO_new_mem_buf(pem, (int)n)) != NULL &&
	    (pk = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)) != NULL)
		rc = SSL_use_PrivateKey(ssl, pk);
	EVP_PKEY_free(pk);
	BIO_free(bio);
	secret_free(pem);
	return rc;
}

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static int
left_ms(long long deadline)
{
	long long l = deadline - now_ms();

	return l > 0 ? (int)l : 0;
}

static int
tcp_connect(const char *host, int port, long long deadline, char *why, size_t len)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	char serv[16];
	int fd = -1, rc, e = 0;

	snprintf(serv, sizeof(serv), "%d", port);
	if ((rc = getaddrinfo(host, serv, &hints, &res)) != 0) {
		snprintf(why, len, "unable to resolve %s: %s", host, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		struct pollfd pfd;
		socklen_t elen = sizeof(e);

		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    ai->ai_protocol);
		if (fd == -1) {
			e = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		e = errno;
		if (e == EINPROGRESS) {
			pfd = (struct pollfd){ .fd = fd, .events = POLLOUT };
			if (poll(&pfd, 1, left_ms(deadline)) == 1 &&
			    getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &elen) == 0 && e == 0)
				break;
			if (e == EINPROGRESS)
				e = ETIMEDOUT;
		}
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd == -1)
		snprintf(why, len, "unable to connect: %s", strerror(e));
	return fd;
}

/* Waits until ssl's socket is ready for what the last call wanted. */
static bool
ssl_wait(SSL *ssl, int rc, long long deadline)
{
	struct pollfd pfd = { .fd = SSL_get_fd(ssl) };

	switch (SSL_get_error(ssl, rc)) {
	case SSL_ERROR_WANT_READ:
		pfd.events = POLLIN;
		break;
	case SSL_ERROR_WANT_WRITE:
		pfd.events = POLLOUT;
		break;
	default:
		return false;
	}
	return poll(&pfd, 1, left_ms(deadline)) == 1;
}

static void ssl_err(char *, size_t, const char *, ...)
    __attribute__((format(printf, 3, 4)));

/* "WHAT: OpenSSL's last reason" */
static void
ssl_err(char *why, size_t len, const char *fmt, ...)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(why, len, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < len)
		snprintf(why + n, len - (size_t)n, ": %s", r ? r : "connection closed");
	ERR_clear_error();
}

static void
describe_cert(const char *peer, X509 *c, long vr, char *why, size_t len)
{
	char subj[160] = "?", iss[160] = "?", until[64] = "?";
	BIO *b;

	if (c != NULL) {
		X509_NAME_oneline(X509_get_subject_name(c), subj, sizeof(subj));
		X509_NAME_oneline(X509_get_issuer_name(c), iss, sizeof(iss));
		if ((b = BIO_new(BIO_s_mem())) != NULL) {
			int n;

			ASN1_TIME_print(b, X509_get0_notAfter(c));
			n = BIO_read(b, until, sizeof(until) - 1);
			until[n > 0 ? n : 0] = '\0';
			BIO_free(b);
		}
	}
	snprintf(why, len, "the %s's certificate is refused: %s"
	    " (subject %s, issuer %s, valid until %s)", peer,
	    X509_verify_cert_error_string(vr), subj, iss, until);
}

/* What the probe trusts and presents: the CA roots, this node's certificate
 * when it has one, the name or address to verify, ALPN. 0, or -1 with why. */
static int
probe_configure(SSL_CTX *ctx, SSL *ssl, const struct tls_probe *p, char *why, size_t len)
{
	unsigned char addr[16];
	bool is_ip = inet_pton(AF_INET, p->host, addr) == 1 ||
	    inet_pton(AF_INET6, p->host, addr) == 1;

	if (p->ca_file != NULL ? SSL_CTX_load_verify_locations(ctx, p->ca_file, NULL) != 1 :
	    SSL_CTX_set_default_verify_paths(ctx) != 1) {
		ssl_err(why, len, "unable to load %s", p->ca_file ? p->ca_file :
		    "the system CA roots");
		return -1;
	}
	if (p->cert_file != NULL &&
	    (SSL_use_certificate_chain_file(ssl, p->cert_file) != 1 ||
	    use_key(ssl, p) != 1 || SSL_check_private_key(ssl) != 1)) {
		ssl_err(why, len, "unable to use %s and its key", p->cert_name);
		return -1;
	}
	/* Verification runs but does not stop the handshake: its result is
	 * what we want to read. */
	SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
	if (is_ip)
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), p->host);
	else {
		X509_VERIFY_PARAM_set1_host(SSL_get0_param(ssl), p->host, 0);
		SSL_set_tlsext_host_name(ssl, p->host);
	}
	/* A gRPC server hangs up on a client without ALPN h2. */
	if (p->alpn != NULL && strlen(p->alpn) < 32) {
		unsigned char protos[33];

		protos[0] = (unsigned char)strlen(p->alpn);
		memcpy(protos + 1, p->alpn, protos[0]);
		SSL_set_alpn_protos(ssl, protos, protos[0] + 1U);
	}
	return 0;
}

/* TLS 1.3: a server that refuses our certificate (or its absence) says so
 * after the handshake, with an alert; silence is success. 0, or 1 with why. */
static int
probe_refusal(SSL *ssl, const struct tls_probe *p, long long deadline, char *why, size_t len)
{
	char buf[1];
	int rc, e;

	if (deadline > now_ms() + PEEK_MS)
		deadline = now_ms() + PEEK_MS;
	for (;;) {
		if ((rc = SSL_peek(ssl, buf, sizeof(buf))) > 0)
			return 0;
		e = SSL_get_error(ssl, rc);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			if (!ssl_wait(ssl, rc, deadline))
				return 0;
			continue;
		}
		if (p->cert_file != NULL)
			ssl_err(why, len, "the %s refused this node's certificate (%s)",
			    p->peer, p->cert_name);
		else
			ssl_err(why, len, "the %s ended the session: it may require"
			    " a client certificate (%s), and there is none", p->peer,
			    p->cert_name);
		return 1;
	}
}

int
tls_probe(const struct tls_probe *p, char *why, size_t len)
{
	long long deadline = now_ms() + p->timeout_ms;
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	X509 *peer = NULL;
	int fd, rc, ret = 1;

	if ((fd = tcp_connect(p->host, p->port, deadline, why, len)) == -1)
		return -1;
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL ||
	    (ssl = SSL_new(ctx)) == NULL) {
		ssl_err(why, len, "unable to set up TLS");
		ret = -1;
		goto out;
	}
	if (probe_configure(ctx, ssl, p, why, len) == -1)
		goto out;
	SSL_set_fd(ssl, fd);
	while ((rc = SSL_connect(ssl)) != 1)
		if (!ssl_wait(ssl, rc, deadline)) {
			if (left_ms(deadline) == 0)
				snprintf(why, len, "TLS handshake timed out");
			else
				ssl_err(why, len, "TLS handshake with the %s failed", p->peer);
			goto out;
		}
	peer = SSL_get1_peer_certificate(ssl);
	if (p->verify && SSL_get_verify_result(ssl) != X509_V_OK) {
		describe_cert(p->peer, peer, SSL_get_verify_result(ssl), why, len);
		goto out;
	}
	if ((ret = probe_refusal(ssl, p, deadline, why, len)) == 0)
		snprintf(why, len, "TLS handshake and certificate check succeed");
out:
	X509_free(peer);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
	return ret;
}
