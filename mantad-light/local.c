/* local: node.light_service.Local, the datasets of this node (WIRE.md
 * section 7). Every path goes through paths.c; files are streamed one
 * message in flight per call, read straight into the slice that is sent,
 * so a stream holds one chunk of its file whatever the file's size. File
 * reads happen on the loop's thread: they are page-cache reads of at most
 * one chunk, cheaper than a hand-off to another thread. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/slice.h>
#include <grpc/status.h>

#include "light.h"
#include "log.h"
#include "common/system.pb-c.h"
#include "node/light_service.pb-c.h"

static struct datasets *D;
static const struct manta_cfg *C;

void
local_init(struct datasets *d, const struct manta_cfg *c)
{
	D = d;
	C = c;
}

/* ---- datasets.permissions ---- */

static const struct cfg_permission *
perm_find(const char *name, size_t len)
{
	for (size_t i = 0; i < C->npermissions; i++)
		if (strlen(C->permissions[i].dataset) == len &&
		    memcmp(C->permissions[i].dataset, name, len) == 0)
			return &C->permissions[i];
	return NULL;
}

static bool
perm_allows(const struct cfg_permission *p, const char *swarm)
{
	for (size_t i = 0; i < p->nswarms; i++)
		if (strcmp(p->swarms[i], swarm) == 0)
			return true;
	return false;
}

static const struct cfg_mapping *
mapping(const char *name)
{
	for (size_t i = 0; i < C->nmappings; i++)
		if (strcmp(C->mappings[i].name, name) == 0)
			return &C->mappings[i];
	return NULL;
}

/* Where mapping m lies under base_path, normalized into out ("" for
 * base_path itself); -1 when it is not under it (lexically). */
static int
mapping_under_base(const struct cfg_mapping *m, char *out, size_t outlen)
{
	const char *p = m->path, *why;
	size_t blen = strlen(C->base_path);

	while (blen > 1 && C->base_path[blen - 1] == '/')
		blen--;
	if (p[0] == '/') {
		if (strncmp(p, C->base_path, blen) != 0 || (p[blen] != '/' && p[blen] != '\0'))
			return -1;
		for (p += blen; *p == '/'; p++)
			;
	}
	return path_normalize(p, strlen(p), out, outlen, &why);
}

/* The dataset that forbids swarm to read path in dataset name, or NULL
 * when nothing does. A mapping is its own dataset. Under base_path the
 * dataset is the first component of the normalized name ("./pool/a" is in
 * "pool"), and a restricted mapping that lies under base_path is
 * restricted there too, by its path. Names and paths that paths_open will
 * refuse are let through to it. */
static const char *
perm_refused(struct manta_id swarm, const char *name, const char *path)
{
	const struct cfg_permission *p;
	char sw[ID_HEX_LEN + 1], sub[4096], rel[4096], full[8200], mrel[4096];
	const char *why;
	size_t n;

	if (C->npermissions == 0)
		return NULL;
	id_to_hex(swarm, sw);
	if (mapping(name) != NULL) {
		p = perm_find(name, strlen(name));
		return p != NULL && !perm_allows(p, sw) ? p->dataset : NULL;
	}
	if (path_normalize(name, strlen(name), sub, sizeof(sub), &why) == -1 || sub[0] == '\0' ||
	    path_normalize(path, strlen(path), rel, sizeof(rel), &why) == -1)
		return NULL;
	if ((p = perm_find(sub, strcspn(sub, "/"))) != NULL && !perm_allows(p, sw))
		return p->dataset;
	snprintf(full, sizeof(full), "%s%s%s", sub, rel[0] ? "/" : "", rel);
	for (size_t i = 0; i < C->npermissions; i++) {
		const struct cfg_mapping *m;

		p = &C->permissions[i];
		if (perm_allows(p, sw) || (m = mapping(p->dataset)) == NULL ||
		    mapping_under_base(m, mrel, sizeof(mrel)) == -1)
			continue;
		n = strlen(mrel);
		if (n == 0 || (strncmp(full, mrel, n) == 0 && (full[n] == '\0' || full[n] == '/')))
			return p->dataset;
	}
	return NULL;
}

/* Ends the call with PERMISSION_DENIED when the caller's swarm may not
 * read the dataset. The caller is known by now: these are its own ids. */
static int
perm_check(struct lcall *c, const char *name, const char *path)
{
	const char *ds = perm_refused(c->swarm, name, path);

	if (ds == NULL)
		return 0;
	call_finish(c, GRPC_STATUS_PERMISSION_DENIED, NULL,
	    "this task's swarm may not read dataset %s", ds);
	return -1;
}

static void
free_msg(struct lcall *c)
{
	if (c->st != NULL)
		protobuf_c_message_free_unpacked(c->st, NULL);
	c->st = NULL;
}

static const char *
str(const char *s)
{
	return s != NULL ? s : "";
}

static void
ids_from(struct lcall *c, const Node__LightService__DataRequest *dr)
{
	if (dr == NULL)
		return;
	c->swarm = id_from_pair(dr->swarm_id);
	c->task = id_from_pair(dr->task_id);
}

/* One Binary{content} message: a small head, then the bytes' slice. */
static grpc_byte_buffer *
binary_msg(grpc_slice data)
{
	uint8_t head[16];
	size_t n = 0, len = GRPC_SLICE_LENGTH(data);
	grpc_slice s[2];
	grpc_byte_buffer *bb;
	uint64_t v = len;

	head[n++] = 0x0a;	/* field 1, length-delimited */
	do {
		uint8_t b = v & 0x7f;

		v >>= 7;
		head[n++] = b | (v ? 0x80 : 0);
	} while (v);
	s[0] = grpc_slice_from_copied_buffer((const char *)head, n);
	s[1] = data;
	bb = grpc_raw_byte_buffer_create(s, len > 0 ? 2 : 1);
	grpc_slice_unref(s[0]);
	return bb;
}

/* ---- Exists ---- */

struct exists_st {
	Node__LightService__DirRequest *r;
	bool nul;
};

static void
exists_free(struct lcall *c)
{
	struct exists_st *st = c->st;

	if (st->r != NULL)
		protobuf_c_message_free_unpacked(&st->r->base, NULL);
	free(st);
	c->st = NULL;
}

static void
exists_go(struct lcall *c, bool ok)
{
	struct exists_st *st = c->st;
	Node__LightService__ExistsResponse resp = NODE__LIGHT_SERVICE__EXISTS_RESPONSE__INIT;
	const char *ds = NULL;
	char err[512];
	bool rf;
	int fd = -1;

	/* A refused path is not an error here: it does not exist; a dataset
	 * of other swarms neither, but that refusal is on record. */
	if (!st->nul && st->r->data_request != NULL &&
	    (ds = perm_refused(c->swarm, str(st->r->data_request->name), str(st->r->path))) != NULL) {
		call_finish(c, GRPC_STATUS_OK, wire_pack(&resp.base), NULL);
		call_mark_refused(c, "this task's swarm may not read dataset %s", ds);
		return;
	}
	if (!st->nul && st->r->data_request != NULL &&
	    paths_open(D, str(st->r->data_request->name), str(st->r->path), O_PATH, &fd, &rf,
	    err, sizeof(err)) == 0) {
		resp.value = true;
		close(fd);
	}
	call_finish(c, GRPC_STATUS_OK, wire_pack(&resp.base), NULL);
}

void
local_exists(struct lcall *c)
{
	struct exists_st *st;
	char err[256];

	if ((st = calloc(1, sizeof(*st))) == NULL) {
		call_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, NULL, "out of memory");
		return;
	}
	c->st = st;
	c->st_free = exists_free;
	st->r = (Node__LightService__DirRequest *)wire_unpack_nul(c->payload,
	    &node__light_service__dir_request__descriptor, LIGHT_REQ_MAX, &st->nul, err,
	    sizeof(err));
	if (st->r == NULL) {
		call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, NULL, "%s", err);
		return;
	}
	ids_from(c, st->r->data_request);
	call_set_audit(c, st->r->data_request ? str(st->r->data_request->name) : "",
	    str(st->r->path));
	call_authorize(c, exists_go);
}

/* ---- ListDir ---- */

static bool
utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned char b = s[i];
		size_t len;
		uint32_t cp;

		if (b < 0x80) {
			i++;
			continue;
		}
		if (b >= 0xc2 && b <= 0xdf) {
			len = 2;
			cp = b & 0x1f;
		} else if (b >= 0xe0 && b <= 0xef) {
			len = 3;
			cp = b & 0x0f;
		} else if (b >= 0xf0 && b <= 0xf4) {
			len = 4;
			cp = b & 0x07;
		} else
			return false;
		if (i + len > n)
			return false;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return false;
		i += len;
	}
	return true;
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The folder path of dataset name, opened beneath the dataset's dirfd;
 * NULL once the call is finished with the reason. */
static DIR *
open_dir(struct lcall *c, const char *name, const char *path)
{
	char err[512];
	DIR *dir;
	bool rf;
	int fd, code;

	if ((code = paths_open(D, name, path, O_RDONLY | O_DIRECTORY, &fd, &rf, err,
	    sizeof(err))) != 0) {
		if (rf && code == GRPC_STATUS_NOT_FOUND)
			code = GRPC_STATUS_INVALID_ARGUMENT;
		call_finish(c, code, NULL, "%s", err);
		return NULL;
	}
	if ((dir = fdopendir(fd)) == NULL) {
		close(fd);
		call_finish(c, GRPC_STATUS_INTERNAL, NULL, "unable to read the folder");
		return NULL;
	}
	return dir;
}

/* The folder's entries into *namesp (*np of them, to free either way),
 * each name after one byte for its kind. GRPC_STATUS_OK, or
 * RESOURCE_EXHAUSTED past LIGHT_LISTDIR_MAX entries or out of memory. */
static int
read_names(DIR *dir, char ***namesp, size_t *np)
{
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	int code = GRPC_STATUS_OK;

	errno = 0;
	while ((de = readdir(dir)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		/* Python's protobuf refuses a string that is not UTF-8. */
		if (!utf8_valid((const unsigned char *)de->d_name, strlen(de->d_name)))
			continue;
		if (n == LIGHT_LISTDIR_MAX) {
			code = GRPC_STATUS_RESOURCE_EXHAUSTED;
			break;
		}
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			char **v = realloc(names, ncap * sizeof(*v));

			if (v == NULL) {
				code = GRPC_STATUS_RESOURCE_EXHAUSTED;
				break;
			}
			names = v;
			cap = ncap;
		}
		/* One byte before the name keeps d_type: 'f' file, 'd' other,
		 * '?' to be resolved. */
		if ((names[n] = malloc(strlen(de->d_name) + 2)) == NULL) {
			code = GRPC_STATUS_RESOURCE_EXHAUSTED;
			break;
		}
		names[n][0] = de->d_type == DT_REG ? 'f' :
		    (de->d_type == DT_LNK || de->d_type == DT_UNKNOWN) ? '?' : 'd';
		strcpy(names[n] + 1, de->d_name);
		n++;
	}
	*namesp = names;
	*np = n;
	return code;
}

/* The ListDir answer for the n sorted names read in folder rel of dataset
 * name. */
static void
answer_names(struct lcall *c, const char *name, const char *rel, char **names, size_t n)
{
	Node__LightService__ListDirResponse resp = NODE__LIGHT_SERVICE__LIST_DIR_RESPONSE__INIT;
	Node__LightService__ProtoPath *pp, **ptrs;
	char sub[8192];

	pp = calloc(n ? n : 1, sizeof(*pp));
	ptrs = calloc(n ? n : 1, sizeof(*ptrs));
	if (pp == NULL || ptrs == NULL) {
		call_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, NULL, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		node__light_service__proto_path__init(&pp[i]);
		pp[i].value = names[i] + 1;
		if (names[i][0] == 'f')
			pp[i].is_file = true;
		else if (names[i][0] == '?') {
			/* A link: a file only if it resolves to one inside. */
			snprintf(sub, sizeof(sub), "%s%s%s", rel, rel[0] ? "/" : "", names[i] + 1);
			pp[i].is_file = paths_is_file(D, name, sub);
		}
		ptrs[i] = &pp[i];
	}
	resp.n_paths = n;
	resp.paths = ptrs;
	call_finish(c, GRPC_STATUS_OK, wire_pack(&resp.base), NULL);
out:
	free(pp);
	free(ptrs);
}

static void
listdir_go(struct lcall *c, bool ok)
{
	Node__LightService__DirRequest *r = c->st;
	char rel[4096];
	const char *why, *name;
	char **names;
	size_t n;
	DIR *dir;
	int code;

	name = r->data_request ? str(r->data_request->name) : "";
	if (perm_check(c, name, str(r->path)) == -1)
		return;
	if ((dir = open_dir(c, name, str(r->path))) == NULL)
		return;
	path_normalize(str(r->path), strlen(str(r->path)), rel, sizeof(rel), &why);
	code = read_names(dir, &names, &n);
	closedir(dir);
	if (code != GRPC_STATUS_OK)
		call_finish(c, code, NULL, "folder too large or out of memory (%zu entries)", n);
	else {
		qsort(names, n, sizeof(*names), cmp_names);
		answer_names(c, name, rel, names, n);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

void
local_listdir(struct lcall *c)
{
	Node__LightService__DirRequest *r;
	char err[256];

	r = (Node__LightService__DirRequest *)wire_unpack(c->payload,
	    &node__light_service__dir_request__descriptor, LIGHT_REQ_MAX, err, sizeof(err));
	if (r == NULL) {
		call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, NULL, "%s", err);
		return;
	}
	c->st = r;
	c->st_free = free_msg;
	ids_from(c, r->data_request);
	call_set_audit(c, r->data_request ? str(r->data_request->name) : "", str(r->path));
	call_authorize(c, listdir_go);
}

/* ---- GetBinaryData ---- */

struct file_st {
	ProtobufCMessage *req;
	int fd;
	off_t off, size;
	/* ReadFileLines */
	char *buf;
	size_t cap, start, end;
	bool eof;
	enum { NL_UNIVERSAL, NL_TRANSLATE, NL_FIXED } nl;
	char term[3];
	size_t termlen;
	enum { ENC_UTF8, ENC_ASCII, ENC_LATIN1 } enc;
	enum { ERR_STRICT, ERR_REPLACE, ERR_IGNORE } errs;
	unsigned long line;
};

static void
file_free(struct lcall *c)
{
	struct file_st *st = c->st;

	if (st->req != NULL)
		protobuf_c_message_free_unpacked(st->req, NULL);
	if (st->fd != -1)
		close(st->fd);
	free(st->buf);
	free(st);
	c->st = NULL;
}

static struct file_st *
file_st_new(struct lcall *c)
{
	struct file_st *st = calloc(1, sizeof(*st));

	if (st == NULL) {
		call_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, NULL, "out of memory");
		return NULL;
	}
	st->fd = -1;
	c->st = st;
	c->st_free = file_free;
	return st;
}

/* Opens the file to stream: it must be a regular file. */
static int
open_file(struct lcall *c, struct file_st *st, const char *name, const char *path)
{
	char err[512];
	struct stat sb;
	bool rf;
	int code;

	if ((code = paths_open(D, name, path, O_RDONLY, &st->fd, &rf, err, sizeof(err))) != 0) {
		call_finish(c, code, NULL, "%s", err);
		return -1;
	}
	if (fstat(st->fd, &sb) == -1 || !S_ISREG(sb.st_mode)) {
		call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, NULL, "%s%s%s is not a file", name,
		    path[0] ? ": " : "", path);
		return -1;
	}
	st->size = sb.st_size;
	return 0;
}

static void binary_next(struct lcall *c, bool ok);

static void
binary_send(struct lcall *c)
{
	struct file_st *st = c->st;
	grpc_slice s = grpc_slice_malloc(LIGHT_CHUNK);
	grpc_byte_buffer *bb;
	ssize_t n;

	do
		n = pread(st->fd, GRPC_SLICE_START_PTR(s), LIGHT_CHUNK, st->off);
	while (n == -1 && errno == EINTR);
	if (n == -1) {
		grpc_slice_unref(s);
		call_finish(c, GRPC_STATUS_INTERNAL, NULL, "read error: %s", strerror(errno));
		return;
	}
	if (n == 0) {
		grpc_slice_unref(s);
		/* As the reference, an empty file is one empty message. */
		if (st->off == 0) {
			grpc_slice e = grpc_empty_slice();

			call_finish(c, GRPC_STATUS_OK, binary_msg(e), NULL);
			grpc_slice_unref(e);
		} else
			call_finish(c, GRPC_STATUS_OK, NULL, NULL);
		return;
	}
	if ((size_t)n < LIGHT_CHUNK) {
		grpc_slice part = grpc_slice_sub(s, 0, (size_t)n);

		grpc_slice_unref(s);
		s = part;
	}
	bb = binary_msg(s);
	grpc_slice_unref(s);
	st->off += n;
	/* The last chunk goes with the status: one round trip less. */
	if (st->off >= st->size)
		call_finish(c, GRPC_STATUS_OK, bb, NULL);
	else
		call_send(c, bb, binary_next);
}

static void
binary_next(struct lcall *c, bool ok)
{
	if (ok)
		binary_send(c);
}

static void
binary_go(struct lcall *c, bool ok)
{
	struct file_st *st = c->st;
	Node__LightService__DataRequest *r = (Node__LightService__DataRequest *)st->req;

	if (perm_check(c, str(r->name), "") == 0 && open_file(c, st, str(r->name), "") == 0)
		binary_send(c);
}

void
local_get_binary(struct lcall *c)
{
	Node__LightService__DataRequest *r;
	struct file_st *st;
	char err[256];

	if ((st = file_st_new(c)) == NULL)
		return;
	r = (Node__LightService__DataRequest *)wire_unpack(c->payload,
	    &node__light_service__data_request__descriptor, LIGHT_REQ_MAX, err, sizeof(err));
	if (r == NULL) {
		call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, NULL, "%s", err);
		return;
	}
	st->req = &r->base;
	ids_from(c, r);
	call_set_audit(c, str(r->name), NULL);
	call_authorize(c, binary_go);
}

/* ---- ReadFileLines ---- */

static int
text_options(struct file_st *st, const Node__LightService__ReadText *r, char *err, size_t errlen)
{
	const char *e = str(r->encoding), *x = str(r->errors), *nl = str(r->newline);

	/* Absent strings may come as "" or as the text "None" (WIRE.md 6). */
	if (*e == '\0' || strcmp(e, "None") == 0 || !strcasecmp(e, "utf-8") ||
	    !strcasecmp(e, "utf8") || !strcasecmp(e, "utf_8"))
		st->enc = ENC_UTF8;
	else if (!strcasecmp(e, "ascii") || !strcasecmp(e, "us-ascii"))
		st->enc = ENC_ASCII;
	else if (!strcasecmp(e, "latin-1") || !strcasecmp(e, "latin1") ||
	    !strcasecmp(e, "latin_1") || !strcasecmp(e, "iso-8859-1") ||
	    !strcasecmp(e, "iso8859-1"))
		st->enc = ENC_LATIN1;
	else {
		snprintf(err, errlen, "unsupported encoding %.64s (utf-8, ascii, latin-1)", e);
		return -1;
	}
	if (*x == '\0' || strcmp(x, "None") == 0 || strcmp(x, "strict") == 0)
		st->errs = ERR_STRICT;
	else if (strcmp(x, "replace") == 0)
		st->errs = ERR_REPLACE;
	else if (strcmp(x, "ignore") == 0)
		st->errs = ERR_IGNORE;
	else {
		snprintf(err, errlen, "unsupported errors %.64s (strict, replace, ignore)", x);
		return -1;
	}
	/* Python's open(): newline=None translates, "" splits the same way
	 * without translating, "\n", "\r", "\r\n" split on that only. */
	if (strcmp(nl, "None") == 0)
		st->nl = NL_TRANSLATE;
	else if (*nl == '\0')
		st->nl = NL_UNIVERSAL;
	else if (strcmp(nl, "\n") == 0 || strcmp(nl, "\r") == 0 || strcmp(nl, "\r\n") == 0) {
		st->nl = NL_FIXED;
		st->termlen = strlen(nl);
		memcpy(st->term, nl, st->termlen);
	} else {
		snprintf(err, errlen, "illegal newline value");
		return -1;
	}
	return 0;
}

/* Reads more of the file into the buffer. 0, or -1 on a read error. */
static int
fill(struct file_st *st)
{
	ssize_t n;

	if (st->start > 0) {
		memmove(st->buf, st->buf + st->start, st->end - st->start);
		st->end -= st->start;
		st->start = 0;
	}
	if (st->end == st->cap) {
		size_t ncap = st->cap * 2;
		char *nb;

		if (ncap > LIGHT_LINE_MAX + 2 || (nb = realloc(st->buf, ncap)) == NULL) {
			errno = EFBIG;
			return -1;
		}
		st->buf = nb;
		st->cap = ncap;
	}
	do
		n = read(st->fd, st->buf + st->end, st->cap - st->end);
	while (n == -1 && errno == EINTR);
	if (n == -1)
		return -1;
	if (n == 0)
		st->eof = true;
	st->end += (size_t)n;
	return 0;
}

/* The next line: [*b, *b + *len) holding *tl terminator bytes at its end.
 * 1 a line, 0 end of file, -1 error (errno). */
static int
next_line(struct file_st *st, const char **b, size_t *len, size_t *tl)
{
	size_t scan = st->start;

	for (;;) {
		for (size_t i = scan; i < st->end; i++) {
			char ch = st->buf[i];

			if (st->nl == NL_FIXED) {
				if (ch != st->term[0])
					continue;
				if (st->termlen == 2) {
					if (i + 1 >= st->end) {
						if (st->eof)
							continue;
						scan = i;
						goto more;
					}
					if (st->buf[i + 1] != st->term[1])
						continue;
				}
				*b = st->buf + st->start;
				*len = i + st->termlen - st->start;
				*tl = st->termlen;
				st->start = i + st->termlen;
				return 1;
			}
			if (ch == '\n' || ch == '\r') {
				size_t t = 1;

				if (ch == '\r') {
					if (i + 1 >= st->end && !st->eof) {
						scan = i;
						goto more;	/* "\r\n" across the buffer */
					}
					if (i + 1 < st->end && st->buf[i + 1] == '\n')
						t = 2;
				}
				*b = st->buf + st->start;
				*len = i + t - st->start;
				*tl = t;
				st->start = i + t;
				return 1;
			}
		}
		scan = st->end;
more:
		if (st->eof) {
			if (st->end == st->start)
				return 0;
			*b = st->buf + st->start;
			*len = st->end - st->start;
			*tl = 0;
			st->start = st->end;
			return 1;
		}
		if (st->end - st->start > LIGHT_LINE_MAX) {
			errno = EFBIG;
			return -1;
		}
		{
			size_t off = scan - st->start;

			if (fill(st) == -1)
				return -1;
			scan = st->start + off;
		}
	}
}

/* Length of the longest prefix of s that can begin a valid UTF-8
 * sequence (for "replace": Python's maximal subpart). */
static size_t
utf8_prefix(const unsigned char *s, size_t n)
{
	size_t need, k;
	unsigned char lo = 0x80, hi = 0xbf;

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		need = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		need = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		need = 4;
	else
		return 1;
	if (s[0] == 0xe0)
		lo = 0xa0;
	else if (s[0] == 0xed)
		hi = 0x9f;
	else if (s[0] == 0xf0)
		lo = 0x90;
	else if (s[0] == 0xf4)
		hi = 0x8f;
	for (k = 1; k < need && k < n; k++) {
		unsigned char lim_lo = k == 1 ? lo : 0x80, lim_hi = k == 1 ? hi : 0xbf;

		if (s[k] < lim_lo || s[k] > lim_hi)
			break;
	}
	return k;
}

/* Decodes and encodes one line per the text options into out (at most
 * 3 bytes per input byte). Returns the length, or -1 at an undecodable
 * byte with errors=strict (*bad = its offset). */
static ssize_t
transcode(const struct file_st *st, const unsigned char *in, size_t len, unsigned char *out,
    size_t *bad)
{
	size_t i = 0, o = 0;

	while (i < len) {
		size_t n = 1;
		bool ok;

		if (st->enc == ENC_LATIN1)
			ok = true;
		else if (in[i] < 0x80)
			ok = true;
		else if (st->enc == ENC_ASCII)
			ok = false;
		else {
			n = utf8_prefix(in + i, len - i);
			ok = utf8_valid(in + i, n) && n > 1;
		}
		if (ok) {
			memcpy(out + o, in + i, n);
			o += n;
		} else if (st->errs == ERR_STRICT) {
			*bad = i;
			return -1;
		} else if (st->errs == ERR_REPLACE) {
			/* U+FFFD; "?" where the encoding cannot hold it, as
			 * str.encode(errors="replace") writes. */
			if (st->enc == ENC_UTF8) {
				memcpy(out + o, "\xef\xbf\xbd", 3);
				o += 3;
			} else
				out[o++] = '?';
		}
		i += n;
	}
	return (ssize_t)o;
}

static void lines_next(struct lcall *c, bool ok);

static void
lines_send(struct lcall *c)
{
	struct file_st *st = c->st;
	const char *b;
	size_t len, tl, bad = 0;
	grpc_slice s;
	ssize_t n;
	int rc;

	if ((rc = next_line(st, &b, &len, &tl)) == -1) {
		if (errno == EFBIG)
			call_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, NULL,
			    "line %lu longer than %d bytes", st->line + 1, LIGHT_LINE_MAX);
		else
			call_finish(c, GRPC_STATUS_INTERNAL, NULL, "read error: %s",
			    strerror(errno));
		return;
	}
	if (rc == 0) {
		call_finish(c, GRPC_STATUS_OK, NULL, NULL);
		return;
	}
	st->line++;
	s = grpc_slice_malloc(len * 3 + 1);
	n = transcode(st, (const unsigned char *)b, len - tl, GRPC_SLICE_START_PTR(s), &bad);
	if (n == -1) {
		grpc_slice_unref(s);
		call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, NULL,
		    "line %lu: byte 0x%02x at %zu cannot be decoded as %s", st->line,
		    (unsigned char)b[bad], bad, st->enc == ENC_ASCII ? "ascii" : "utf-8");
		return;
	}
	if (tl > 0) {
		if (st->nl == NL_TRANSLATE) {
			GRPC_SLICE_START_PTR(s)[n++] = '\n';
		} else {
			memcpy(GRPC_SLICE_START_PTR(s) + n, b + len - tl, tl);
			n += (ssize_t)tl;
		}
	}
	{
		grpc_slice part = grpc_slice_sub(s, 0, (size_t)n);

		grpc_slice_unref(s);
		s = part;
	}
	call_send(c, binary_msg(s), lines_next);
	grpc_slice_unref(s);
}

static void
lines_next(struct lcall *c, bool ok)
{
	if (ok)
		lines_send(c);
}

static void
lines_go(struct lcall *c, bool ok)
{
	struct file_st *st = c->st;
	Node__LightService__ReadText *r = (Node__LightService__ReadText *)st->req;
	const char *name = r->data_request ? str(r->data_request->name) : "";
	const char *path = r->path ? str(r->path->value) : "";

	if (perm_check(c, name, path) == -1 || open_file(c, st, name, path) == -1)
		return;
	st->cap = 64 * 1024;
	if ((st->buf = malloc(st->cap)) == NULL) {
		call_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, NULL, "out of memory");
		return;
	}
	lines_send(c);
}

void
local_read_lines(struct lcall *c)
{
	Node__LightService__ReadText *r;
	struct file_st *st;
	char err[256];

	if ((st = file_st_new(c)) == NULL)
		return;
	r = (Node__LightService__ReadText *)wire_unpack(c->payload,
	    &node__light_service__read_text__descriptor, LIGHT_REQ_MAX, err, sizeof(err));
	if (r == NULL) {
		call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, NULL, "%s", err);
		return;
	}
	st->req = &r->base;
	ids_from(c, r->data_request);
	call_set_audit(c, r->data_request ? str(r->data_request->name) : "",
	    r->path ? str(r->path->value) : "");
	if (text_options(st, r, err, sizeof(err)) == -1) {
		call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, NULL, "%s", err);
		return;
	}
	call_authorize(c, lines_go);
}
