#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <zmq.h>

#include "daemon.h"
#include "ipc.h"
#include "log.h"

struct ipc_server {
	void *sock;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct ipc_rule *rules;
	size_t nrules;
	uid_t owner;		/* of the run dir */
};

struct ipc_req {
	zmq_msg_t id;
	ipc_msg *msg;
};

static uid_t account_daemon = (uid_t)-1, account_light = (uid_t)-1;
static ipc_exe_reader exe_reader;

void
ipc_set_exe_reader(ipc_exe_reader fn)
{
	exe_reader = fn;
}

static void *ipc_ctx;
static pthread_mutex_t ipc_ctx_lock = PTHREAD_MUTEX_INITIALIZER;

/* ipc_call keeps one connected DEALER per thread and endpoint: a heartbeat
 * a second through a fresh socket each time (connect, handshake, reaper)
 * cost more CPU than everything else an idle node does. A socket that saw a
 * timeout or a bad reply is closed, so a late answer never meets the next
 * request. Every cached socket is also in a registry, closed by
 * ipc_context_term, which runs after the threads that used them are joined. */
#define CALL_CACHE 4
#define CALL_REGISTRY 64
struct call_sock {
	char ep[128];
	void *sock;
};
static __thread struct call_sock call_cache[CALL_CACHE];
static void *call_registry[CALL_REGISTRY];
static pthread_mutex_t call_lock = PTHREAD_MUTEX_INITIALIZER;

void *
ipc_context(void)
{
	pthread_mutex_lock(&ipc_ctx_lock);
	if (ipc_ctx == NULL) {
		ipc_ctx = zmq_ctx_new();
		if (ipc_ctx != NULL) {
			zmq_ctx_set(ipc_ctx, ZMQ_IO_THREADS, 1);
			/* Never let a peer block exit. */
			zmq_ctx_set(ipc_ctx, ZMQ_BLOCKY, 0);
		}
	}
	pthread_mutex_unlock(&ipc_ctx_lock);
	return ipc_ctx;
}

static int
call_register(void *sock)
{
	int rc = -1;

	pthread_mutex_lock(&call_lock);
	for (size_t i = 0; i < CALL_REGISTRY; i++)
		if (call_registry[i] == NULL) {
			call_registry[i] = sock;
			rc = 0;
			break;
		}
	pthread_mutex_unlock(&call_lock);
	return rc;
}

static void
call_forget(void *sock)
{
	pthread_mutex_lock(&call_lock);
	for (size_t i = 0; i < CALL_REGISTRY; i++)
		if (call_registry[i] == sock)
			call_registry[i] = NULL;
	pthread_mutex_unlock(&call_lock);
	for (size_t i = 0; i < CALL_CACHE; i++)
		if (call_cache[i].sock == sock)
			call_cache[i].sock = NULL;
	zmq_close(sock);
}

void
ipc_context_term(void)
{
	pthread_mutex_lock(&call_lock);
	for (size_t i = 0; i < CALL_REGISTRY; i++)
		if (call_registry[i] != NULL) {
			zmq_close(call_registry[i]);
			call_registry[i] = NULL;
		}
	pthread_mutex_unlock(&call_lock);
	memset(call_cache, 0, sizeof(call_cache));
	pthread_mutex_lock(&ipc_ctx_lock);
	if (ipc_ctx != NULL)
		zmq_ctx_term(ipc_ctx);
	ipc_ctx = NULL;
	pthread_mutex_unlock(&ipc_ctx_lock);
}

/* Every ancestor of dir must be searchable by group g (or by others):
 * else a daemon switched to that user cannot reach its sockets. */
static int
check_reachable(const char *dir, gid_t g)
{
	char buf[PATH_MAX], *slash;
	struct stat st;

	if (snprintf(buf, sizeof(buf), "%s", dir) >= (int)sizeof(buf))
		return -1;
	while ((slash = strrchr(buf, '/')) != NULL) {
		if (slash == buf)
			slash[1] = '\0';
		else
			*slash = '\0';
		if (stat(buf, &st) == -1) {
			log_warn("unable to stat %s", buf);
			return -1;
		}
		if (!(st.st_mode & S_IXOTH) && !(st.st_gid == g && (st.st_mode & S_IXGRP))) {
			log_warnx("run dir %s: its parent %s (mode %04o) is not searchable by"
			    " the daemon group %u; make it so (chmod o+x) or choose another"
			    " paths.run_dir", dir, buf, (unsigned)(st.st_mode & 07777), (unsigned)g);
			return -1;
		}
		if (slash == buf)
			break;
	}
	return 0;
}

int
ipc_prepare_run_dir(const char *run_dir, gid_t group)
{
	mode_t want = group == (gid_t)-1 ? 0700 : 02710;
	struct stat st;

	/* Shared, the parents created here must let the group through. */
	if (daemon_mkdirs(run_dir, group == (gid_t)-1 ? 0700 : 0711) == -1) {
		log_warn("unable to create run dir %s", run_dir);
		return -1;
	}
	if (stat(run_dir, &st) == -1) {
		log_warn("unable to stat run dir %s", run_dir);
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		log_warnx("run dir %s is not a directory", run_dir);
		return -1;
	}
	if (st.st_uid != geteuid()) {
		log_warnx("run dir %s belongs to uid %u, not to us", run_dir, (unsigned)st.st_uid);
		return -1;
	}
	/* With security.daemon_user: root:GROUP 02710. The group may search
	 * it and connect to the sockets, never create, rename or remove an
	 * entry (so no daemon can stand in for another's socket); setgid so
	 * the sockets bound here get the group. */
	if (group != (gid_t)-1 && st.st_gid != group && chown(run_dir, (uid_t)-1, group) == -1) {
		log_warn("unable to give run dir %s to group %u", run_dir, (unsigned)group);
		return -1;
	}
	if ((st.st_mode & 07777) != want && chmod(run_dir, want) == -1) {
		log_warn("unable to set run dir %s to %04o", run_dir, (unsigned)want);
		return -1;
	}
	if (group != (gid_t)-1 && check_reachable(run_dir, group) == -1)
		return -1;
	return 0;
}

int
ipc_endpoint(char *buf, size_t len, const char *run_dir, const char *name)
{
	size_t max = sizeof(((struct sockaddr_un *)0)->sun_path);
	int n;

	if (strlen(run_dir) + strlen(name) + 7 >= max)
		return -1;
	n = snprintf(buf, len, "ipc://%s/%s.sock", run_dir, name);
	if (n < 0 || (size_t)n >= len)
		return -1;
	return 0;
}

static int
set_common_opts(void *sock)
{
	int64_t max = IPC_MAX_MSG;
	int linger = 0;

	if (zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &max, sizeof(max)) == -1 ||
	    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof(linger)) == -1)
		return -1;
	return 0;
}

void
ipc_set_accounts(uid_t daemon, uid_t light)
{
	account_daemon = daemon;
	account_light = light;
}

unsigned
ipc_caller_kind(uid_t uid, uid_t owner)
{
	if (uid == 0 || uid == owner)
		return IPC_FROM_OWNER;
	if (account_daemon != (uid_t)-1 && uid == account_daemon)
		return IPC_FROM_DAEMON;
	if (account_light != (uid_t)-1 && uid == account_light)
		return IPC_FROM_LIGHT;
	return 0;
}

struct ipc_server *
ipc_server_open(const char *run_dir, const char *name,
    const struct ipc_rule *rules, size_t nrules)
{
	struct ipc_server *s;
	struct stat st;
	char ep[256];
	int mandatory = 1;

	if (ipc_endpoint(ep, sizeof(ep), run_dir, name) == -1) {
		log_warnx("run dir path too long for a unix socket: %s", run_dir);
		return NULL;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	snprintf(s->path, sizeof(s->path), "%s/%s.sock", run_dir, name);
	s->rules = calloc(nrules + 1, sizeof(*s->rules));
	if (s->rules == NULL)
		goto fail;
	if (nrules)
		memcpy(s->rules, rules, nrules * sizeof(*rules));
	s->nrules = nrules;
	s->owner = stat(run_dir, &st) == 0 ? st.st_uid : geteuid();
	s->sock = zmq_socket(ipc_context(), ZMQ_ROUTER);
	if (s->sock == NULL || set_common_opts(s->sock) == -1 ||
	    zmq_setsockopt(s->sock, ZMQ_ROUTER_MANDATORY, &mandatory, sizeof(mandatory)) == -1) {
		log_warnx("unable to create socket for %s: %s", ep, zmq_strerror(errno));
		goto fail;
	}
	/* A stale socket file from a killed predecessor would make bind fail;
	 * the daemon's lock (daemon_lock, taken first) guarantees no live
	 * owner. */
	(void)unlink(s->path);
	if (zmq_bind(s->sock, ep) == -1) {
		log_warnx("unable to bind %s: %s", ep, zmq_strerror(errno));
		goto fail;
	}
	/* A run dir shared with the daemon group (ipc_prepare_run_dir: group
	 * search bit set) gets group-writable sockets: connect(2) needs write
	 * permission on the socket file. */
	(void)chmod(s->path, stat(run_dir, &st) == 0 && (st.st_mode & S_IXGRP) ? 0660 : 0600);
	return s;
fail:
	if (s->sock)
		zmq_close(s->sock);
	free(s->rules);
	free(s);
	return NULL;
}

void
ipc_server_close(struct ipc_server *s)
{
	if (s == NULL)
		return;
	zmq_close(s->sock);
	(void)unlink(s->path);
	free(s->rules);
	free(s);
}

void *
ipc_server_socket(struct ipc_server *s)
{
	return s->sock;
}

const ipc_msg *
ipc_req_msg(const struct ipc_req *req)
{
	return req->msg;
}

void
ipc_req_free(struct ipc_req *req)
{
	if (req == NULL)
		return;
	zmq_msg_close(&req->id);
	ipc_msg_free(req->msg);
	free(req);
}

/* The kinds of caller that may send c here, 0 when it is not served;
 * *prog: the program a caller other than the owner must be, or NULL. */
static unsigned
allowed_from(const struct ipc_server *s, Manta__Ipc__Msg__BodyCase c, const char **prog)
{
	unsigned from = c == MANTA__IPC__MSG__BODY_STATUS_REQ ? IPC_FROM_OWNER : 0;

	*prog = NULL;
	for (size_t i = 0; i < s->nrules; i++)
		if (s->rules[i].body == c) {
			from |= s->rules[i].from;
			*prog = s->rules[i].prog;
		}
	return from;
}

/* Whether an argument of pid's command line names prog (its last part). */
static int
cmdline_has(long pid, const char *prog)
{
	char path[64], buf[4096];
	ssize_t n;
	int fd, found = 0;

	snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	for (char *a = buf; a < buf + n && !found; a += strlen(a) + 1) {
		const char *b = strrchr(a, '/');

		found = strcmp(b != NULL ? b + 1 : a, prog) == 0;
	}
	return found;
}

/* Whether process pid runs the program named prog: the last component
 * of /proc/PID/exe (the file it executed, which it cannot change, unlike
 * its command line). */
static int
peer_is(long pid, const char *prog)
{
	static const char deleted[] = " (deleted)";	/* replaced by an upgrade */
	char path[64], buf[PATH_MAX];
	const char *base;
	ssize_t n;

	if (pid <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%ld/exe", pid);
	if ((n = exe_reader != NULL ? exe_reader(pid, buf, sizeof(buf) - 1) :
	    readlink(path, buf, sizeof(buf) - 1)) == -1) {
		log_warn("ipc: unable to read %s", path);
		return 0;
	}
	buf[n] = '\0';
	if ((size_t)n > sizeof(deleted) - 1 &&
	    strcmp(buf + n - (sizeof(deleted) - 1), deleted) == 0)
		buf[n - (sizeof(deleted) - 1)] = '\0';
	base = strrchr(buf, '/');
	base = base != NULL ? base + 1 : buf;
	if (strcmp(base, prog) == 0)
		return 1;
	/* Under valgrind (MANTA_TEST_VALGRIND) the file executed is its
	 * tool: then the program is an argument of its command line. Who
	 * could start valgrind could start prog itself. */
	if (strncmp(base, "memcheck-", 9) == 0)
		return cmdline_has(pid, prog);
	return 0;
}

static const char *
kind_name(unsigned kind)
{
	switch (kind) {
	case IPC_FROM_OWNER:
		return "the node's owner";
	case IPC_FROM_DAEMON:
		return "security.daemon_user";
	case IPC_FROM_LIGHT:
		return "security.light_user";
	default:
		return "no account of the node";
	}
}

/* The peer's uid and pid from the "Peer-Address" property libzmq fills
 * from SO_PEERCRED on ipc:// connections: "host:uid:gid:pid". 0 or -1
 * (no such property: then nothing is accepted from it). */
static int
peer_cred(zmq_msg_t *m, uid_t *uid, long *pid)
{
	const char *p = zmq_msg_gets(m, "Peer-Address"), *c[3];
	const char *end;
	unsigned long u;
	char *ep;

	if (p == NULL)
		return -1;
	end = p + strlen(p);
	for (int i = 2; i >= 0; i--) {
		const char *q = end;

		while (q > p && q[-1] != ':')
			q--;
		if (q == p)
			return -1;
		c[i] = q;
		end = q - 1;
	}
	errno = 0;
	u = strtoul(c[0], &ep, 10);
	if (errno != 0 || *ep != ':' || ep == c[0] || u >= (unsigned long)(uid_t)-1)
		return -1;
	*uid = (uid_t)u;
	*pid = strtol(c[2], &ep, 10);
	return 0;
}

/* Drains the remaining frames of a message we refuse to read. */
static void
drain(void *sock)
{
	int more = 1;
	size_t sz = sizeof(more);
	zmq_msg_t f;

	while (zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz) == 0 && more) {
		zmq_msg_init(&f);
		if (zmq_msg_recv(&f, sock, ZMQ_DONTWAIT) == -1) {
			zmq_msg_close(&f);
			break;
		}
		zmq_msg_close(&f);
	}
}

/* The rest of an envelope after its routing id: [empty][body], body
 * received into *body. 0, or -1 when it is malformed: then logged and the
 * message's remaining frames drained. */
static int
recv_envelope(struct ipc_server *s, zmq_msg_t *body)
{
	zmq_msg_t delim;
	int more;
	size_t sz = sizeof(more);

	zmq_msg_init(&delim);
	if (zmq_getsockopt(s->sock, ZMQ_RCVMORE, &more, &sz) == -1 || !more ||
	    zmq_msg_recv(&delim, s->sock, ZMQ_DONTWAIT) == -1 ||
	    zmq_msg_size(&delim) != 0 ||
	    zmq_getsockopt(s->sock, ZMQ_RCVMORE, &more, &sz) == -1 || !more ||
	    zmq_msg_recv(body, s->sock, ZMQ_DONTWAIT) == -1) {
		log_warnx("ipc %s: dropped a message with a bad envelope", s->path);
		drain(s->sock);
		zmq_msg_close(&delim);
		return -1;
	}
	zmq_msg_close(&delim);
	return 0;
}

/* Whether this endpoint takes req's message type from the caller uid, pid
 * ((uid_t)-1: unknown). 1, or 0 when refused: then logged and answered,
 * and req is gone. */
static int
caller_admitted(struct ipc_server *s, struct ipc_req *req, uid_t uid, long pid)
{
	int type = (int)req->msg->body_case;
	unsigned from, kind;
	const char *prog;

	from = allowed_from(s, req->msg->body_case, &prog);
	if (from == 0) {
		log_warnx("ipc %s: refused message type %d", s->path, type);
		ipc_reply_error(s, req, 3, "message type %d not accepted here", type);
		return 0;
	}
	kind = uid == (uid_t)-1 ? 0 : ipc_caller_kind(uid, s->owner);
	if ((from & kind) && kind != IPC_FROM_OWNER && prog != NULL &&
	    !peer_is(pid, prog)) {
		log_warnx("ipc %s: refused message type %d from uid %ld pid %ld"
		    " (%s): only %s may send it", s->path, type, (long)uid, pid,
		    kind_name(kind), prog);
		ipc_reply_error(s, req, 3, "message type %d not accepted from"
		    " pid %ld", type, pid);
		return 0;
	}
	if (!(from & kind)) {
		/* Who is calling, not only what (issue 13). */
		log_warnx("ipc %s: refused message type %d from uid %ld pid %ld (%s):"
		    " not accepted from that caller", s->path, type,
		    uid == (uid_t)-1 ? -1L : (long)uid, pid, kind_name(kind));
		ipc_reply_error(s, req, 3, "message type %d not accepted from uid %ld",
		    type, uid == (uid_t)-1 ? -1L : (long)uid);
		return 0;
	}
	return 1;
}

int
ipc_server_recv(struct ipc_server *s, struct ipc_req **out)
{
	for (;;) {
		struct ipc_req *req;
		zmq_msg_t body;
		char err[256];
		int more;
		size_t sz = sizeof(more);
		uid_t uid;
		long pid;

		if ((req = calloc(1, sizeof(*req))) == NULL)
			return -1;
		zmq_msg_init(&req->id);
		if (zmq_msg_recv(&req->id, s->sock, ZMQ_DONTWAIT) == -1) {
			int e = errno;
			ipc_req_free(req);
			if (e == EAGAIN || e == EINTR)
				return 0;
			log_warnx("ipc receive on %s: %s", s->path, zmq_strerror(e));
			return -1;
		}
		/* Envelope: [routing id][empty][body]. */
		zmq_msg_init(&body);
		if (recv_envelope(s, &body) == -1) {
			zmq_msg_close(&body);
			ipc_req_free(req);
			continue;
		}
		if (peer_cred(&body, &uid, &pid) == -1) {
			uid = (uid_t)-1;
			pid = -1;
		}
		if (zmq_getsockopt(s->sock, ZMQ_RCVMORE, &more, &sz) == 0 && more) {
			drain(s->sock);
			zmq_msg_close(&body);
			ipc_reply_error(s, req, 2, "extra frames");
			continue;
		}
		req->msg = ipc_msg_decode(zmq_msg_data(&body), zmq_msg_size(&body), err, sizeof(err));
		zmq_msg_close(&body);
		if (req->msg == NULL) {
			log_warnx("ipc %s: dropped a bad message: %s", s->path, err);
			ipc_reply_error(s, req, 2, "bad message: %s", err);
			continue;
		}
		if (!caller_admitted(s, req, uid, pid))
			continue;
		*out = req;
		return 1;
	}
}

int
ipc_server_dispatch(struct ipc_server *s, int max,
    const struct ipc_handler *handlers, size_t nhandlers, void *arg)
{
	struct ipc_req *req;
	int n, rc;

	for (n = 0; n < max; n++) {
		const ipc_msg *m;
		size_t i;

		if ((rc = ipc_server_recv(s, &req)) != 1)
			return rc == -1 && n == 0 ? -1 : n;
		m = ipc_req_msg(req);
		for (i = 0; i < nhandlers; i++)
			if (handlers[i].body == m->body_case)
				break;
		if (i == nhandlers)
			(void)ipc_reply_error(s, req, 1, "not accepted here");
		else
			handlers[i].fn(arg, req, m);
	}
	return n;
}

int
ipc_reply(struct ipc_server *s, struct ipc_req *req, const ipc_msg *reply)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc = -1;

	if (ipc_msg_encode(reply, &buf, &len) == -1)
		goto out;
	if (zmq_msg_send(&req->id, s->sock, ZMQ_SNDMORE | ZMQ_DONTWAIT) == -1 ||
	    zmq_send(s->sock, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) == -1 ||
	    zmq_send(s->sock, buf, len, ZMQ_DONTWAIT) == -1) {
		/* The peer gave up waiting (EHOSTUNREACH): nothing to do. */
		log_debug("ipc %s: reply not delivered: %s", s->path, zmq_strerror(errno));
		goto out;
	}
	rc = 0;
out:
	free(buf);
	ipc_req_free(req);
	return rc;
}

int
ipc_reply_ok(struct ipc_server *s, struct ipc_req *req)
{
	return ipc_reply_error(s, req, 0, "%s", "");
}

int
ipc_reply_error(struct ipc_server *s, struct ipc_req *req, int code, const char *fmt, ...)
{
	Manta__Ipc__Msg m = MANTA__IPC__MSG__INIT;
	Manta__Ipc__Reply r = MANTA__IPC__REPLY__INIT;
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	r.code = code;
	r.error = text;
	m.body_case = MANTA__IPC__MSG__BODY_REPLY;
	m.reply = &r;
	return ipc_reply(s, req, &m);
}

/* protobuf-c takes field number 0, which no encoder writes, when its tag
 * comes in more than one byte ("\x80\x00"); kept as an unknown field, it
 * would go out again from ipc_msg_encode as the single byte 0, which every
 * decoder refuses, protobuf-c included (found by tests/fuzz/fuzz_ipc.c).
 * 0 when m or a message inside it holds one. */
static int
no_field_zero(const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	const char *base = (const char *)m;

	for (unsigned i = 0; i < m->n_unknown_fields; i++)
		if (m->unknown_fields[i].tag == 0)
			return 0;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];

		if (f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)(const void *)(base + f->quantifier_offset);
			ProtobufCMessage *const *v =
			    *(ProtobufCMessage *const *const *)(const void *)(base + f->offset);

			for (size_t j = 0; j < n; j++)
				if (v[j] != NULL && !no_field_zero(v[j]))
					return 0;
		} else {
			const ProtobufCMessage *sub;

			/* Oneof members share their storage: only the set one counts. */
			if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
			    *(const uint32_t *)(const void *)(base + f->quantifier_offset) != f->id)
				continue;
			sub = *(const ProtobufCMessage *const *)(const void *)(base + f->offset);
			if (sub != NULL && !no_field_zero(sub))
				return 0;
		}
	}
	return 1;
}

ipc_msg *
ipc_msg_decode(const uint8_t *buf, size_t len, char *err, size_t errlen)
{
	ipc_msg *m;

	if (len > IPC_MAX_MSG) {
		snprintf(err, errlen, "message of %zu bytes exceeds the %d byte cap", len, IPC_MAX_MSG);
		return NULL;
	}
	m = manta__ipc__msg__unpack(NULL, len, buf);
	if (m == NULL) {
		snprintf(err, errlen, "undecodable protobuf (%zu bytes)", len);
		return NULL;
	}
	if (!no_field_zero(&m->base)) {
		snprintf(err, errlen, "undecodable protobuf (%zu bytes): field number 0", len);
		manta__ipc__msg__free_unpacked(m, NULL);
		return NULL;
	}
	if (ipc_validate(m, err, errlen) == -1) {
		manta__ipc__msg__free_unpacked(m, NULL);
		return NULL;
	}
	return m;
}

int
ipc_msg_encode(const ipc_msg *m, uint8_t **out, size_t *outlen)
{
	size_t len = manta__ipc__msg__get_packed_size(m);
	uint8_t *buf;

	if (len > IPC_MAX_MSG) {
		log_warnx("ipc: refusing to send %zu bytes (cap %d)", len, IPC_MAX_MSG);
		return -1;
	}
	if ((buf = malloc(len ? len : 1)) == NULL)
		return -1;
	manta__ipc__msg__pack(m, buf);
	*out = buf;
	*outlen = len;
	return 0;
}

void
ipc_msg_free(ipc_msg *m)
{
	if (m != NULL)
		manta__ipc__msg__free_unpacked(m, NULL);
}

/* This thread's connected socket to ep, made on first use. */
static void *
call_socket(const char *ep, int *cached)
{
	struct call_sock *free_slot = NULL;
	void *sock;

	*cached = 0;
	for (size_t i = 0; i < CALL_CACHE; i++) {
		if (call_cache[i].sock != NULL && strcmp(call_cache[i].ep, ep) == 0) {
			*cached = 1;
			return call_cache[i].sock;
		}
		if (call_cache[i].sock == NULL && free_slot == NULL)
			free_slot = &call_cache[i];
	}
	sock = zmq_socket(ipc_context(), ZMQ_DEALER);
	if (sock == NULL)
		return NULL;
	if (set_common_opts(sock) == -1 || zmq_connect(sock, ep) == -1) {
		zmq_close(sock);
		return NULL;
	}
	if (free_slot != NULL && strlen(ep) < sizeof(free_slot->ep) && call_register(sock) == 0) {
		memcpy(free_slot->ep, ep, strlen(ep) + 1);
		free_slot->sock = sock;
		*cached = 1;
	}
	return sock;
}

int
ipc_call(const char *run_dir, const char *name, const ipc_msg *req,
    ipc_msg **reply, int timeout_ms)
{
	char ep[256], err[256];
	uint8_t *buf = NULL;
	size_t len;
	void *sock = NULL;
	zmq_msg_t delim, body;
	zmq_pollitem_t pi;
	long long deadline;
	int more, rc = -1, cached = 0;
	size_t sz = sizeof(more);

	*reply = NULL;
	if (ipc_endpoint(ep, sizeof(ep), run_dir, name) == -1)
		return -1;
	if (ipc_msg_encode(req, &buf, &len) == -1)
		return -1;
	if ((sock = call_socket(ep, &cached)) == NULL)
		goto out;
	if (zmq_send(sock, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) == -1 ||
	    zmq_send(sock, buf, len, ZMQ_DONTWAIT) == -1)
		goto out;
	deadline = daemon_now_ms() + timeout_ms;
	for (;;) {
		long long left = deadline - daemon_now_ms();
		int n;

		if (left <= 0) {
			errno = ETIMEDOUT;
			goto out;
		}
		pi.socket = sock;
		pi.fd = -1;
		pi.events = ZMQ_POLLIN;
		pi.revents = 0;
		n = zmq_poll(&pi, 1, (long)left);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			goto out;
		if (n == 1)
			break;
	}
	zmq_msg_init(&delim);
	zmq_msg_init(&body);
	if (zmq_msg_recv(&delim, sock, 0) == -1 || zmq_msg_size(&delim) != 0 ||
	    zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz) == -1 || !more ||
	    zmq_msg_recv(&body, sock, 0) == -1 ||
	    (zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz) == 0 && more)) {
		zmq_msg_close(&delim);
		zmq_msg_close(&body);
		errno = EPROTO;
		goto out;
	}
	zmq_msg_close(&delim);
	*reply = ipc_msg_decode(zmq_msg_data(&body), zmq_msg_size(&body), err, sizeof(err));
	zmq_msg_close(&body);
	if (*reply == NULL) {
		log_warnx("ipc: bad reply from %s: %s", name, err);
		errno = EPROTO;
		goto out;
	}
	rc = 0;
out:
	if (sock != NULL && (rc == -1 || !cached)) {
		int e = errno;
		/* Nothing of a failed exchange may reach the next call. */
		if (cached)
			call_forget(sock);
		else
			zmq_close(sock);
		errno = e;
	}
	free(buf);
	return rc;
}

int
ipc_call_ok(const char *run_dir, const char *name, const ipc_msg *req, int timeout_ms)
{
	ipc_msg *rep = NULL;
	int rc = -1;

	if (ipc_call(run_dir, name, req, &rep, timeout_ms) == -1)
		return -1;
	if (rep->body_case == MANTA__IPC__MSG__BODY_REPLY && rep->reply->code == 0)
		rc = 0;
	else if (rep->body_case == MANTA__IPC__MSG__BODY_REPLY)
		log_debug("ipc: %s answered %d: %s", name, rep->reply->code, rep->reply->error);
	ipc_msg_free(rep);
	return rc;
}
