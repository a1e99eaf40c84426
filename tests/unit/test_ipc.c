/* Unit tests of libcommon/ipc.c and ipc_validate.c: round trips over a real
 * ipc:// socket, and hostile input (truncated, oversized, wrong type). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <pthread.h>
#include <zmq.h>

#include "ipc.h"
#include "log.h"

static char run_dir[64];

static int
setup(void **state)
{
	snprintf(run_dir, sizeof(run_dir), "/tmp/ipc-test-%d/run", (int)getpid());
	assert_int_equal(ipc_prepare_run_dir(run_dir, (gid_t)-1), 0);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	ipc_context_term();
	snprintf(cmd, sizeof(cmd), "rm -rf /tmp/ipc-test-%d", (int)getpid());
	return system(cmd) == 0 ? 0 : -1;
}

static void
test_run_dir_mode(void **state)
{
	struct stat st;

	assert_int_equal(stat(run_dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	chmod(run_dir, 0755);
	assert_int_equal(ipc_prepare_run_dir(run_dir, (gid_t)-1), 0);
	assert_int_equal(stat(run_dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
}

static void
test_endpoint_too_long(void **state)
{
	char buf[512], longdir[200];

	memset(longdir, 'a', sizeof(longdir) - 1);
	longdir[0] = '/';
	longdir[sizeof(longdir) - 1] = '\0';
	assert_int_equal(ipc_endpoint(buf, sizeof(buf), longdir, "res"), -1);
	assert_int_equal(ipc_endpoint(buf, sizeof(buf), "/run/x", "res"), 0);
	assert_string_equal(buf, "ipc:///run/x/res.sock");
}

static void
test_truncated_protobuf(void **state)
{
	ipc_msg m = MANTA__IPC__MSG__INIT;
	Manta__Ipc__Publish p = MANTA__IPC__PUBLISH__INIT;
	uint8_t *buf;
	size_t len;
	char err[256];
	int refused = 0;

	p.topic = "manager/update_task_status";
	p.payload.data = (uint8_t *)"abcdefgh";
	p.payload.len = 8;
	p.qos = 1;
	p.key = "k";
	m.body_case = MANTA__IPC__MSG__BODY_PUBLISH;
	m.publish = &p;
	assert_int_equal(ipc_msg_encode(&m, &buf, &len), 0);
	ipc_msg *ok = ipc_msg_decode(buf, len, err, sizeof(err));
	assert_non_null(ok);
	assert_string_equal(ok->publish->topic, "manager/update_task_status");
	ipc_msg_free(ok);
	/* Every strict prefix must be refused or decode to something valid;
	 * never crash. Most prefixes cut a field and must be refused. */
	for (size_t cut = 1; cut < len; cut++) {
		ipc_msg *x = ipc_msg_decode(buf, cut, err, sizeof(err));
		if (x == NULL)
			refused++;
		ipc_msg_free(x);
	}
	assert_true(refused > 0);
	free(buf);
}

static void
test_garbage(void **state)
{
	char err[256];
	uint8_t junk[257];

	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 131 + 7);
	for (size_t len = 0; len < sizeof(junk); len++) {
		ipc_msg *x = ipc_msg_decode(junk, len, err, sizeof(err));
		ipc_msg_free(x);
	}
	/* An empty buffer decodes to a Msg with no body: refused. */
	assert_null(ipc_msg_decode(junk, 0, err, sizeof(err)));
	assert_non_null(strstr(err, "no body"));
}

static void
test_oversized_decode(void **state)
{
	char err[256];
	uint8_t b = 0;

	assert_null(ipc_msg_decode(&b, (size_t)IPC_MAX_MSG + 1, err, sizeof(err)));
	assert_non_null(strstr(err, "exceeds"));
}

static void
test_validate(void **state)
{
	ipc_msg m = MANTA__IPC__MSG__INIT;
	Manta__Ipc__Publish p = MANTA__IPC__PUBLISH__INIT;
	Manta__Ipc__RegistrationNotice r = MANTA__IPC__REGISTRATION_NOTICE__INIT;
	Manta__Ipc__Command c = MANTA__IPC__COMMAND__INIT;
	char err[256], *topics[1] = { "node/x/+" };

	m.body_case = MANTA__IPC__MSG__BODY_PUBLISH;
	m.publish = &p;
	p.topic = "a/#";
	assert_int_equal(ipc_validate(&m, err, sizeof(err)), -1);
	p.topic = "a/b";
	p.qos = 2;
	assert_int_equal(ipc_validate(&m, err, sizeof(err)), -1);
	p.qos = 1;
	assert_int_equal(ipc_validate(&m, err, sizeof(err)), 0);
	p.topic = "a/\nb";
	assert_int_equal(ipc_validate(&m, err, sizeof(err)), -1);

	m.body_case = MANTA__IPC__MSG__BODY_REGISTRATION;
	m.registration = &r;
	r.broker_host = "localhost";
	r.broker_port = 70000;
	assert_int_equal(ipc_validate(&m, err, sizeof(err)), -1);
	r.broker_port = 1883;
	r.n_topics = 1;
	r.topics = topics;
	assert_int_equal(ipc_validate(&m, err, sizeof(err)), 0);

	m.body_case = MANTA__IPC__MSG__BODY_COMMAND;
	m.command = &c;
	c.name = "rm_rf";
	assert_int_equal(ipc_validate(&m, err, sizeof(err)), -1);
	c.name = "deploy_task";
	assert_int_equal(ipc_validate(&m, err, sizeof(err)), 0);
}

struct server_arg {
	struct ipc_server *srv;
	int nreq;		/* requests that reached the serving loop */
	int stop;		/* atomic: set by the test, read by the server */
};

static void *
serve(void *arg)
{
	struct server_arg *sa = arg;

	while (!__atomic_load_n(&sa->stop, __ATOMIC_ACQUIRE)) {
		zmq_pollitem_t pi = { .socket = ipc_server_socket(sa->srv), .events = ZMQ_POLLIN };
		struct ipc_req *req;

		if (zmq_poll(&pi, 1, 50) < 0)
			break;
		while (ipc_server_recv(sa->srv, &req) == 1) {
			sa->nreq++;
			ipc_reply_error(sa->srv, req, 0, "pong %d", (int)ipc_req_msg(req)->body_case);
		}
	}
	return NULL;
}

static void
test_roundtrip_and_allowlist(void **state)
{
	static const struct ipc_rule allowed[] = {
		{ MANTA__IPC__MSG__BODY_SNAPSHOT_REQ, IPC_FROM_OWNER, NULL },
	};
	struct server_arg sa;
	pthread_t t;
	ipc_msg req = MANTA__IPC__MSG__INIT, *rep = NULL;
	Manta__Ipc__SnapshotRequest sr = MANTA__IPC__SNAPSHOT_REQUEST__INIT;
	Manta__Ipc__Shutdown sd = MANTA__IPC__SHUTDOWN__INIT;

	sa.srv = ipc_server_open(run_dir, "t1", allowed, 1);
	assert_non_null(sa.srv);
	sa.nreq = 0;
	sa.stop = 0;
	assert_int_equal(pthread_create(&t, NULL, serve, &sa), 0);

	req.body_case = MANTA__IPC__MSG__BODY_SNAPSHOT_REQ;
	req.snapshot_req = &sr;
	assert_int_equal(ipc_call(run_dir, "t1", &req, &rep, 3000), 0);
	assert_int_equal(rep->body_case, MANTA__IPC__MSG__BODY_REPLY);
	assert_int_equal(rep->reply->code, 0);
	assert_string_equal(rep->reply->error, "pong 4");
	ipc_msg_free(rep);

	/* Not in the allowlist: refused by the server with code 3, and the
	 * serving loop never sees it. */
	req.body_case = MANTA__IPC__MSG__BODY_SHUTDOWN;
	req.shutdown = &sd;
	assert_int_equal(ipc_call(run_dir, "t1", &req, &rep, 3000), 0);
	assert_int_equal(rep->reply->code, 3);
	ipc_msg_free(rep);
	assert_int_equal(ipc_call_ok(run_dir, "t1", &req, 3000), -1);
	__atomic_store_n(&sa.stop, 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	assert_int_equal(sa.nreq, 1);
	ipc_server_close(sa.srv);
}

static void
test_oversized_on_socket(void **state)
{
	static const struct ipc_rule allowed[] = { { MANTA__IPC__MSG__BODY_PUBLISH, IPC_FROM_OWNER, NULL } };
	struct ipc_server *srv = ipc_server_open(run_dir, "t2", allowed, 1);
	char ep[256];
	void *s;
	size_t big = (size_t)IPC_MAX_MSG + 16;
	char *buf;
	zmq_pollitem_t pi;
	struct ipc_req *req;
	int linger = 0;

	assert_non_null(srv);
	assert_int_equal(ipc_endpoint(ep, sizeof(ep), run_dir, "t2"), 0);
	s = zmq_socket(ipc_context(), ZMQ_DEALER);
	zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
	assert_int_equal(zmq_connect(s, ep), 0);
	buf = calloc(1, big);
	assert_non_null(buf);
	zmq_send(s, "", 0, ZMQ_SNDMORE);
	zmq_send(s, buf, big, 0);
	free(buf);
	/* ZMQ_MAXMSGSIZE makes the server drop the peer: nothing arrives. */
	pi.socket = ipc_server_socket(srv);
	pi.fd = -1;
	pi.events = ZMQ_POLLIN;
	pi.revents = 0;
	zmq_poll(&pi, 1, 1000);
	assert_int_equal(ipc_server_recv(srv, &req), 0);
	zmq_close(s);
	ipc_server_close(srv);
}

static void
test_call_nobody_there(void **state)
{
	ipc_msg req = MANTA__IPC__MSG__INIT, *rep = NULL;
	Manta__Ipc__StatusRequest sr = MANTA__IPC__STATUS_REQUEST__INIT;

	req.body_case = MANTA__IPC__MSG__BODY_STATUS_REQ;
	req.status_req = &sr;
	assert_int_equal(ipc_call(run_dir, "nobody", &req, &rep, 200), -1);
	assert_null(rep);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_run_dir_mode),
		cmocka_unit_test(test_endpoint_too_long),
		cmocka_unit_test(test_truncated_protobuf),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_oversized_decode),
		cmocka_unit_test(test_validate),
		cmocka_unit_test(test_roundtrip_and_allowlist),
		cmocka_unit_test(test_oversized_on_socket),
		cmocka_unit_test(test_call_nobody_there),
	};

	log_init("test_ipc", LOG_LVL_ERROR + 1);
	return cmocka_run_group_tests(tests, setup, teardown);
}
