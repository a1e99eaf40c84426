/* mgrconn: the channel to the manager, shared by mantad-register and
 * mantad-light (mgrconn.h). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>

#include "log.h"
#include "mgrconn.h"
#include "secret.h"

#define PEM_MAX		(1 << 20)

static char *
join(const char *a, const char *b)
{
	size_t la = strlen(a);
	char *p;

	if (asprintf(&p, "%s%s%s", a, la == 0 || a[la - 1] != '/' ? "/" : "", b) == -1)
		return NULL;
	return p;
}

/* A whole file, NUL-terminated; NULL when it does not exist, and logged
 * when it exists but cannot be read. */
static char *
slurp_path(const char *path)
{
	char *buf = NULL;
	long len;
	FILE *f;

	if ((f = fopen(path, "re")) == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == -1 || (len = ftell(f)) < 0 || len > PEM_MAX ||
	    fseek(f, 0, SEEK_SET) == -1 || (buf = calloc(1, (size_t)len + 1)) == NULL ||
	    fread(buf, 1, (size_t)len, f) != (size_t)len) {
		log_warn("unable to read %s", path);
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

/* dir/name, as slurp_path. */
static char *
slurp(const char *dir, const char *name)
{
	char *path, *buf;

	if ((path = join(dir, name)) == NULL)
		return NULL;
	buf = slurp_path(path);
	free(path);
	return buf;
}

/* The roots libgrpc trusts when given none (its ComputePemRootCerts):
 * $GRPC_DEFAULT_SSL_ROOTS_FILE_PATH, else the system's bundle, else the
 * roots installed with libgrpc. NULL when none reads. */
static char *
system_roots(void)
{
	static const char *const files[] = {
		"/etc/ssl/certs/ca-certificates.crt",	/* Debian, Ubuntu, Alpine */
		"/etc/pki/tls/certs/ca-bundle.crt",	/* Fedora, RHEL */
		"/etc/ssl/ca-bundle.pem",		/* openSUSE */
		"/etc/pki/tls/cacert.pem",
		"/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
		"/usr/share/grpc/roots.pem",
	};
	const char *env = getenv("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH");
	char *pem;

	if (env != NULL && env[0] != '\0')
		return slurp_path(env);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if ((pem = slurp_path(files[i])) != NULL)
			return pem;
	return NULL;
}

/* ca.crt in addition to the system roots (INTERFACE.md): a manager with a
 * public certificate works as with the reference, and one whose
 * certificate comes from the private CA of ca.crt works too. Takes ca. */
static char *
with_system_roots(char *ca)
{
	char *roots = system_roots(), *both;

	if (roots == NULL) {
		log_warnx("no system CA roots found: trusting ca.crt alone for the manager");
		return ca;
	}
	if (asprintf(&both, "%s\n%s", roots, ca) == -1) {
		free(roots);
		return ca;
	}
	free(roots);
	free(ca);
	return both;
}

static char *
expand_home(const char *p)
{
	const char *home = getenv("HOME");

	if (p[0] == '~' && (p[1] == '/' || p[1] == '\0') && home != NULL)
		return join(home, p[1] ? p + 2 : "");
	return strdup(p);
}

/* node.key.sbox (opened with the cfg's key: cfg_load checked it opens) or
 * node.key, into locked memory that secret_free wipes; NULL when neither.
 * Before the seccomp filter: sodium_malloc locks and guards pages. */
static char *
read_key(const struct manta_cfg *c, struct mgrconn_tls *t)
{
	char path[PATH_MAX], why[700], *pem;
	int r = secret_pick(t->dir, "node.key", path, sizeof(path));

	if (r == -1)
		return NULL;
	t->key_sealed = r == 1;
	if ((pem = secret_file_read(c->secret_key, path, NULL, why, sizeof(why))) == NULL)
		log_warnx("unable to read the client key: %s", why);
	return pem;
}

/* security.verify_ssl = false. The TLS credentials API can skip
 * verification; the SSL one cannot. Like verify=False in the reference:
 * say so loudly. */
static grpc_channel_credentials *
unverified_creds(const char *ca, const char *crt, const char *key)
{
	grpc_tls_credentials_options *o = grpc_tls_credentials_options_create();
	grpc_tls_identity_pairs *pairs = NULL;
	grpc_tls_certificate_provider *prov;
	grpc_tls_certificate_verifier *ver;
	grpc_channel_credentials *creds;

	log_warnx("security.verify_ssl = false: the manager's certificate is not checked");
	if (crt != NULL) {
		pairs = grpc_tls_identity_pairs_create();
		grpc_tls_identity_pairs_add_pair(pairs, key, crt);
	}
	/* A provider needs something to provide: without ca.crt and a
	 * client pair the system roots are used. */
	if (ca != NULL || pairs != NULL) {
		prov = grpc_tls_certificate_provider_static_data_create(ca, pairs);
		grpc_tls_credentials_options_set_certificate_provider(o, prov);
		if (ca != NULL)
			grpc_tls_credentials_options_watch_root_certs(o);
		if (pairs != NULL)
			grpc_tls_credentials_options_watch_identity_key_cert_pairs(o);
		grpc_tls_certificate_provider_release(prov);
	}
	grpc_tls_credentials_options_set_verify_server_cert(o, 0);
	grpc_tls_credentials_options_set_check_call_host(o, 0);
	ver = grpc_tls_certificate_verifier_no_op_create();
	grpc_tls_credentials_options_set_certificate_verifier(o, ver);
	creds = grpc_tls_credentials_create(o);
	grpc_tls_certificate_verifier_release(ver);
	return creds;
}

/* TLS to the manager (WIRE.md section 2, INTERFACE.md): with use_tls the
 * system roots plus cert_folder's ca.crt when present, and node.crt +
 * node.key for mutual TLS when both exist; with port 443 alone the system
 * roots. */
static grpc_channel_credentials *
make_creds(const struct manta_cfg *c, const struct mgrconn_opts *o, struct mgrconn_tls *t)
{
	grpc_channel_credentials *creds;
	char *ca = NULL, *crt = NULL, *key = NULL;

	if (!c->use_tls && c->manager_port != 443)
		return grpc_insecure_credentials_create();
	t->on = true;
	if (c->use_tls && c->cert_folder != NULL) {
		if ((t->dir = expand_home(c->cert_folder)) == NULL)
			return NULL;
		ca = slurp(t->dir, "ca.crt");
		crt = slurp(t->dir, "node.crt");
		key = read_key(c, t);
		if ((crt == NULL) != (key == NULL) && o->announce)
			log_warnx("only one of node.crt and node.key in %s; no client certificate",
			    t->dir);
		if (crt == NULL || key == NULL) {
			free(crt);
			secret_free(key);
			crt = key = NULL;
		}
		if (o->announce)
			log_info("TLS to the manager: %s, %s%s", ca ?
			    "system CA roots and ca.crt" : "system CA roots",
			    crt ? "client certificate node.crt" :
			    "no client certificate (no node.crt and node.key)",
			    crt && t->key_sealed ? " (key sealed in node.key.sbox)" : "");
	}
	t->has_ca = ca != NULL;
	if (ca != NULL)
		ca = with_system_roots(ca);
	t->client_cert = crt != NULL;
	t->verify = c->verify_ssl || !c->use_tls;
	if (c->use_tls && !c->verify_ssl)
		creds = unverified_creds(ca, crt, key);
	else {
		grpc_ssl_pem_key_cert_pair pair = { key, crt };

		creds = grpc_ssl_credentials_create(ca, crt ? &pair : NULL, NULL, NULL);
	}
	free(ca);
	free(crt);
	secret_free(key);	/* wiped; libgrpc keeps its own copy */
	return creds;
}

int
mgrconn_open(struct mgrconn *mc, const struct manta_cfg *c, const struct mgrconn_opts *o)
{
	char ua[128];
	/* No message size cap unless asked (WIRE.md section 2); keepalive as the
	 * reference; a short reconnect backoff so a manager that comes back
	 * is found within seconds; no retries: the caller decides whether to
	 * try again. Despite its name, MIN_RECONNECT_BACKOFF is how long one
	 * connection attempt (TCP, TLS, HTTP/2 settings) may take. */
	grpc_arg args[] = {
		{ .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, .value.integer = -1 },
		{ .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
		  .value.integer = o->max_recv > 0 ? o->max_recv : -1 },
		{ .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_KEEPALIVE_TIME_MS, .value.integer = 30000 },
		{ .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_KEEPALIVE_TIMEOUT_MS, .value.integer = 20000 },
		{ .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, .value.integer = 500 },
		{ .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
		  .value.integer = o->connect_ms },
		{ .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, .value.integer = 2000 },
		{ .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_ENABLE_RETRIES, .value.integer = 0 },
		{ .type = GRPC_ARG_STRING, .key = GRPC_ARG_PRIMARY_USER_AGENT_STRING, .value.string = ua },
	};
	grpc_channel_args cargs = { sizeof(args) / sizeof(args[0]), args };
	grpc_channel_credentials *creds;
	const char *h = c->manager_host;
	int n;

	memset(mc, 0, sizeof(*mc));
	snprintf(ua, sizeof(ua), "manta-node/%s", o->prog);
	/* An IPv6 literal needs brackets before the port. */
	if (strchr(h, ':') != NULL && h[0] != '[')
		n = asprintf(&mc->target, "[%s]:%d", h, c->manager_port);
	else
		n = asprintf(&mc->target, "%s:%d", h, c->manager_port);
	if (n == -1) {
		mc->target = NULL;
		return -1;
	}
	mc->auth.key = grpc_slice_from_static_string("authorization");
	mc->auth.value = grpc_slice_from_copied_string(c->secured_token);
	if ((creds = make_creds(c, o, &mc->tls)) == NULL) {
		log_warnx("unable to set up credentials for the manager");
		return -1;
	}
	mc->ch = grpc_channel_create(mc->target, creds, &cargs);
	grpc_channel_credentials_release(creds);
	return mc->ch == NULL ? -1 : 0;
}

void
mgrconn_close(struct mgrconn *mc)
{
	if (mc->ch != NULL)
		grpc_channel_destroy(mc->ch);
	/* Our copy of the token (a zeroed slice is empty and static). */
	explicit_bzero(GRPC_SLICE_START_PTR(mc->auth.value), GRPC_SLICE_LENGTH(mc->auth.value));
	grpc_slice_unref(mc->auth.value);
	free(mc->target);
	free(mc->tls.dir);
	memset(mc, 0, sizeof(*mc));
}

void
mgrconn_reply_init(struct mgrconn_reply *r)
{
	memset(r, 0, sizeof(*r));
	grpc_metadata_array_init(&r->imd);
	grpc_metadata_array_init(&r->tmd);
	r->status = GRPC_STATUS_UNKNOWN;
	r->details = grpc_empty_slice();
}

void
mgrconn_reply_free(struct mgrconn_reply *r)
{
	grpc_metadata_array_destroy(&r->imd);
	grpc_metadata_array_destroy(&r->tmd);
	grpc_slice_unref(r->details);
	r->details = grpc_empty_slice();
	if (r->msg != NULL)
		grpc_byte_buffer_destroy(r->msg);
	r->msg = NULL;
}

static grpc_op *
op_new(grpc_op *ops, size_t *n, grpc_op_type type)
{
	grpc_op *op = &ops[(*n)++];

	memset(op, 0, sizeof(*op));
	op->op = type;
	return op;
}

size_t
mgrconn_ops_send(grpc_op *ops, grpc_metadata *md, grpc_byte_buffer *msg, bool close)
{
	grpc_op *op;
	size_t n = 0;

	if (md != NULL) {
		op = op_new(ops, &n, GRPC_OP_SEND_INITIAL_METADATA);
		op->data.send_initial_metadata.count = 1;
		op->data.send_initial_metadata.metadata = md;
	}
	if (msg != NULL)
		op_new(ops, &n, GRPC_OP_SEND_MESSAGE)->data.send_message.send_message = msg;
	if (close)
		op_new(ops, &n, GRPC_OP_SEND_CLOSE_FROM_CLIENT);
	return n;
}

size_t
mgrconn_ops_recv(grpc_op *ops, struct mgrconn_reply *r, unsigned what)
{
	grpc_op *op;
	size_t n = 0;

	if (what & MGRCONN_RECV_MD) {
		op = op_new(ops, &n, GRPC_OP_RECV_INITIAL_METADATA);
		op->data.recv_initial_metadata.recv_initial_metadata = &r->imd;
	}
	if (what & MGRCONN_RECV_MSG)
		op_new(ops, &n, GRPC_OP_RECV_MESSAGE)->data.recv_message.recv_message = &r->msg;
	if (what & MGRCONN_RECV_STATUS) {
		op = op_new(ops, &n, GRPC_OP_RECV_STATUS_ON_CLIENT);
		op->data.recv_status_on_client.trailing_metadata = &r->tmd;
		op->data.recv_status_on_client.status = &r->status;
		op->data.recv_status_on_client.status_details = &r->details;
	}
	return n;
}
