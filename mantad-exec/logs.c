/* logs: a task's output, kept in <state_dir>/logs/<run>.log (written by
 * its shim, capped at containers.log_config max-size) and sent to the
 * manager in the framing of WIRE.md section 8: a 52-byte little-endian
 * header (swarm, node, task ids as 6 x uint64, iteration and circular as
 * 2 x uint16), then zlib at level 9 of the raw bytes. Each frame stands
 * alone.
 *
 * What a manager built against the reference relies on (WIRE.md section
 * 6): exactly one upload per run, after the run ends by itself (exit,
 * whatever the code, a signal, an OOM kill, tasks.task_timeout), none
 * while it runs, none for a run that was stopped (stop_task, stop_swarm,
 * a next round, the node's stop) or never started; such a manager reads
 * the upload as the end of the task. An empty output still sends its
 * header-only frame. tasks.stream_logs has no effect, as in the
 * reference. Only tasks.live_logs_to_manager (node-only, off by default)
 * sends a frame of the new bytes every second while the task runs, then
 * the rest at the end. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "log.h"

#include "exec.h"

static void
le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void
le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

void
logs_header(uint8_t out[52], struct manta_id swarm, struct manta_id node,
    struct manta_id task, uint32_t iteration, uint32_t circular)
{
	le64(out, swarm.head);
	le64(out + 8, swarm.tail);
	le64(out + 16, node.head);
	le64(out + 24, node.tail);
	le64(out + 32, task.head);
	le64(out + 40, task.tail);
	le16(out + 48, (uint16_t)iteration);
	le16(out + 50, (uint16_t)circular);
}

uint8_t *
logs_frame(const uint8_t header[52], const char *path, uint64_t from,
    uint64_t max, size_t *len, uint64_t *upto)
{
	struct stat st;
	uint8_t *raw = NULL, *frame = NULL;
	uint64_t n = 0;
	uLongf zlen;
	int fd;

	*upto = from;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 && errno != ENOENT) {
		log_warn("unable to open %s", path);
		return NULL;
	}
	if (fd != -1 && fstat(fd, &st) == 0 && (uint64_t)st.st_size > from) {
		n = (uint64_t)st.st_size - from;
		if (max > 0 && n > max)
			n = max;
	}
	if ((raw = malloc(n ? n : 1)) == NULL)
		goto fail;
	if (n > 0) {
		ssize_t got = pread(fd, raw, n, (off_t)from);
		if (got < 0) {
			log_warn("unable to read %s", path);
			goto fail;
		}
		n = (uint64_t)got;
	}
	zlen = compressBound((uLong)n);
	if ((frame = malloc(52 + zlen)) == NULL)
		goto fail;
	memcpy(frame, header, 52);
	if (compress2(frame + 52, &zlen, raw, (uLong)n, 9) != Z_OK) {
		log_warnx("zlib failed on %s", path);
		goto fail;
	}
	*len = 52 + zlen;
	*upto = from + n;
	free(raw);
	if (fd != -1)
		close(fd);
	return frame;
fail:
	free(raw);
	free(frame);
	if (fd != -1)
		close(fd);
	return NULL;
}

static uint64_t
file_size(const char *path)
{
	struct stat st;

	return path != NULL && stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static void
post(struct exec *x, struct run *r, bool final)
{
	struct job *j;

	if ((j = job_new(JOB_FRAME)) == NULL || (j->path = strdup(r->log)) == NULL) {
		job_free(j);
		return;
	}
	j->run_id = r->id;
	j->from = r->log_sent;
	j->final = final;
	logs_header(j->header, r->swarm, x->node_id, r->task, r->iteration,
	    r->circular);
	r->log_busy = true;
	(void)jobs_post(x->jobs, j);
}

void
logs_kick(struct exec *x, struct run *r)
{
	if (r->log_busy || r->logs_done || r->log == NULL)
		return;
	if (r->want_final) {
		/* Everything streamed already: nothing more to send. */
		if (r->log_seq > 0 && file_size(r->log) <= r->log_sent) {
			(void)announce_logs(x, r, NULL, 0, r->log_sent, true);
			run_maybe_forget(x, r);
			return;
		}
		post(x, r, true);
		return;
	}
	if (x->cfg->live_logs_to_manager && r->state == RS_RUNNING &&
	    file_size(r->log) > r->log_sent)
		post(x, r, false);
}

void
logs_end(struct exec *x, struct run *r)
{
	if (r->logs_done || r->want_final)
		return;
	if (r->stop_requested || r->state == RS_STOPPED || r->started_at == 0 ||
	    r->log == NULL) {
		/* Stopped or never ran: nothing goes to the manager. */
		r->logs_done = true;
		(void)store_run_set(x->db, r);
		logstore_done(x, r);
		return;
	}
	r->want_final = true;
	logs_kick(x, r);
}

void
logs_note(const struct run *r, const char *text)
{
	int fd;

	if (r->log == NULL || (fd = open(r->log, O_WRONLY | O_APPEND | O_CREAT |
	    O_CLOEXEC, 0600)) == -1) {
		log_warn("unable to add to the log of run %lld", (long long)r->id);
		return;
	}
	if (dprintf(fd, "\n[mantad-exec: %s]\n", text) < 0)
		log_warn("unable to add to %s", r->log);
	close(fd);
}

void
logs_stream_tick(struct exec *x)
{
	struct run *r;

	if (!x->cfg->live_logs_to_manager)
		return;
	TAILQ_FOREACH(r, &x->runs, all)
		if (r->state == RS_RUNNING)
			logs_kick(x, r);
}

void
logs_frame_done(struct exec *x, const struct event *ev)
{
	struct run *r;

	TAILQ_FOREACH(r, &x->runs, all)
		if (r->id == ev->run_id)
			break;
	if (r == NULL)
		return;
	r->log_busy = false;
	if (ev->type == EV_FRAME) {
		if (ev->final || ev->upto > r->log_sent)
			(void)announce_logs(x, r, ev->data, ev->len, ev->upto,
			    ev->final);
	} else if (ev->final) {
		log_warnx("run %lld: its logs cannot be framed: not sent",
		    (long long)r->id);
		r->logs_done = true;
		(void)store_run_set(x->db, r);
		logstore_done(x, r);
	}
	if (r->want_final && !r->logs_done)
		logs_kick(x, r);
	run_maybe_forget(x, r);
}

int
logs_read(struct exec *x, const Manta__Ipc__LogsRequest *req,
    Manta__Ipc__LogsChunk *out)
{
	struct manta_id task;
	struct run_row row;
	struct stat st;
	uint32_t max = req->max && req->max < LOGS_REPLY_MAX ? req->max :
	    LOGS_REPLY_MAX;
	uint64_t off = req->offset, n = 0;
	int fd, s;

	if (id_parse_hex(req->task_id, &task) == -1 ||
	    store_run_find(x->db, NULL, &task, NULL, &row) != 1)
		return -1;
	manta__ipc__logs_chunk__init(out);
	s = run_state_parse(row.status);
	if ((fd = open(row.log, O_RDONLY | O_CLOEXEC)) == -1) {
		out->next_offset = off;
		out->finished = s >= 0 && run_state_final((enum run_state)s);
		return 0;
	}
	if (fstat(fd, &st) == 0 && (uint64_t)st.st_size > off) {
		n = (uint64_t)st.st_size - off;
		if (n > max)
			n = max;
	}
	if (n > 0 && (out->data.data = malloc(n)) != NULL) {
		ssize_t got = pread(fd, out->data.data, n, (off_t)off);
		out->data.len = got > 0 ? (size_t)got : 0;
	}
	close(fd);
	out->next_offset = off + out->data.len;
	out->finished = s >= 0 && run_state_final((enum run_state)s) &&
	    out->next_offset >= (uint64_t)st.st_size;
	return 0;
}
