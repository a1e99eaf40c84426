/* ident: who is calling. mantad-exec owns the tasks and answers TaskLookup
 * (by token, else by ids) on its IPC endpoint; this file asks it from one
 * thread of its own, so a slow or restarting exec never stalls the
 * completion queue, and keeps the answers for a short while: a task makes
 * many calls in a row, and a token's task changes only when it ends.
 *
 * Calls waiting for the same answer wait on one lookup. When exec does not
 * answer, the calls fail with UNAVAILABLE and, for a second, so do new
 * ones, rather than queueing one timeout each behind the first. */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "ipc.h"
#include "light.h"
#include "log.h"

#define LOOKUP_TIMEOUT_MS	1000
#define EXEC_DOWN_MS		1000
#define CACHE_OK_MS		2000	/* a running task stays itself */
#define CACHE_NEG_MS		500	/* a task about to start is soon known */
#define CACHE_MAX		512

struct entry {
	struct entry *next;		/* the cache (main thread) */
	struct entry *qnext;		/* todo or done list (under lock) */
	bool by_token;
	char token[LIGHT_TOKEN_MAX + 1];
	struct manta_id swarm, task;
	struct ident res;		/* written by the thread while pending */
	bool pending;
	long long expires;
	struct lcall *waiters;
};

static struct {
	pthread_t th;
	bool started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct entry *todo, *todo_tail, *done;
	bool stop;
	char *run_dir;
	long long down_until;		/* the thread's */
	struct entry *cache;
	size_t n;
} I = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static void
lookup(struct entry *e)
{
	Manta__Ipc__Msg m = MANTA__IPC__MSG__INIT, *reply = NULL;
	Manta__Ipc__TaskLookup tl = MANTA__IPC__TASK_LOOKUP__INIT;
	Common__System__PairId sw = COMMON__SYSTEM__PAIR_ID__INIT, tk = COMMON__SYSTEM__PAIR_ID__INIT;
	long long now = light_now_ms();

	memset(&e->res, 0, sizeof(e->res));
	if (now < I.down_until) {
		e->res.err = -1;
		return;
	}
	if (e->by_token)
		tl.token = e->token;
	else {
		id_to_pair(e->swarm, &sw);
		id_to_pair(e->task, &tk);
		tl.swarm_id = &sw;
		tl.task_id = &tk;
	}
	m.body_case = MANTA__IPC__MSG__BODY_TASK_LOOKUP;
	m.task_lookup = &tl;
	if (ipc_call(I.run_dir, IPC_EXEC, &m, &reply, LOOKUP_TIMEOUT_MS) == -1) {
		log_warnx("mantad-exec did not answer a task lookup within %d ms",
		    LOOKUP_TIMEOUT_MS);
		e->res.err = -1;
		I.down_until = light_now_ms() + EXEC_DOWN_MS;
		return;
	}
	if (reply->body_case == MANTA__IPC__MSG__BODY_TASK_IDENTITY) {
		const Manta__Ipc__TaskIdentity *ti = reply->task_identity;

		e->res.found = ti->found;
		e->res.running = ti->running;
		e->res.token_matched = ti->token_matched;
		e->res.swarm = id_from_pair(ti->swarm_id);
		e->res.task = id_from_pair(ti->task_id);
		e->res.iteration = ti->iteration;
		e->res.circular = ti->circular;
	} else if (reply->body_case == MANTA__IPC__MSG__BODY_REPLY && reply->reply->code != 0) {
		log_warnx("mantad-exec refused a task lookup: %s", reply->reply->error);
		e->res.err = -1;
	} else {
		log_warnx("mantad-exec answered a task lookup with message %d",
		    (int)reply->body_case);
		e->res.err = -1;
	}
	ipc_msg_free(reply);
}

static void *
worker(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&I.lock);
	for (;;) {
		struct entry *e;

		while (I.todo == NULL && !I.stop)
			pthread_cond_wait(&I.cond, &I.lock);
		if (I.stop)
			break;
		e = I.todo;
		I.todo = e->qnext;
		if (I.todo == NULL)
			I.todo_tail = NULL;
		pthread_mutex_unlock(&I.lock);
		lookup(e);
		pthread_mutex_lock(&I.lock);
		e->qnext = I.done;
		I.done = e;
		pthread_mutex_unlock(&I.lock);
		server_ring();
		pthread_mutex_lock(&I.lock);
	}
	pthread_mutex_unlock(&I.lock);
	return NULL;
}

int
ident_start(const char *run_dir)
{
	int rc;

	if ((I.run_dir = strdup(run_dir)) == NULL)
		return -1;
	/* Signals go to the signalfd, never to this thread. */
	if ((rc = light_thread(&I.th, worker, NULL)) != 0) {
		log_warnx("unable to start the lookup thread: %s", strerror(rc));
		return -1;
	}
	I.started = true;
	return 0;
}

void
ident_stop(void)
{
	struct entry *e;

	if (I.started) {
		pthread_mutex_lock(&I.lock);
		I.stop = true;
		pthread_cond_signal(&I.cond);
		pthread_mutex_unlock(&I.lock);
		pthread_join(I.th, NULL);
		I.started = false;
	}
	/* Lookups never sent or never dispatched: their entries are in the
	 * cache list too, and their waiters are gone with the server. */
	while ((e = I.cache) != NULL) {
		I.cache = e->next;
		explicit_bzero(e->token, sizeof(e->token));
		free(e);
	}
	I.todo = I.todo_tail = I.done = NULL;
	I.n = 0;
	free(I.run_dir);
	I.run_dir = NULL;
}

static bool
same(const struct entry *e, const char *token, struct manta_id swarm, struct manta_id task)
{
	if (token != NULL)
		return e->by_token && strcmp(e->token, token) == 0;
	return !e->by_token && id_equal(e->swarm, swarm) && id_equal(e->task, task);
}

/* Drops expired answers when the cache is full. */
static void
prune(long long now)
{
	struct entry **pp = &I.cache;

	while (*pp != NULL) {
		struct entry *e = *pp;

		if (!e->pending && e->expires <= now) {
			*pp = e->next;
			explicit_bzero(e->token, sizeof(e->token));
			free(e);
			I.n--;
		} else
			pp = &e->next;
	}
}

int
ident_get(const char *token, struct manta_id swarm, struct manta_id task,
    struct lcall *c, struct ident *out)
{
	long long now = light_now_ms();
	struct entry *e;

	for (e = I.cache; e != NULL; e = e->next)
		if (same(e, token, swarm, task))
			break;
	if (e != NULL && !e->pending && e->expires > now) {
		*out = e->res;
		return 1;
	}
	if (e == NULL) {
		if (I.n >= CACHE_MAX)
			prune(now);
		if (I.n >= CACHE_MAX * 2) {
			/* Every entry pending: the lookups are far behind. */
			memset(out, 0, sizeof(*out));
			out->err = -1;
			return 1;
		}
		if ((e = calloc(1, sizeof(*e))) == NULL)
			return -1;
		if (token != NULL) {
			e->by_token = true;
			strncpy(e->token, token, sizeof(e->token) - 1);
		} else {
			e->swarm = swarm;
			e->task = task;
		}
		e->next = I.cache;
		I.cache = e;
		I.n++;
	}
	c->wait_next = e->waiters;
	e->waiters = c;
	if (!e->pending) {
		e->pending = true;
		pthread_mutex_lock(&I.lock);
		e->qnext = NULL;
		if (I.todo_tail != NULL)
			I.todo_tail->qnext = e;
		else
			I.todo = e;
		I.todo_tail = e;
		pthread_cond_signal(&I.cond);
		pthread_mutex_unlock(&I.lock);
	}
	return 0;
}

void
ident_dispatch(void)
{
	struct entry *done, *e;
	long long now = light_now_ms();

	pthread_mutex_lock(&I.lock);
	done = I.done;
	I.done = NULL;
	pthread_mutex_unlock(&I.lock);
	while ((e = done) != NULL) {
		struct lcall *w;

		done = e->qnext;
		e->pending = false;
		if (e->res.err != 0)
			e->expires = 0;
		else
			e->expires = now + (e->res.found && e->res.running ? CACHE_OK_MS : CACHE_NEG_MS);
		w = e->waiters;
		e->waiters = NULL;
		while (w != NULL) {
			struct lcall *c = w;

			w = c->wait_next;
			c->wait_next = NULL;
			c->who = e->res;
			call_resume(c);
		}
	}
}
