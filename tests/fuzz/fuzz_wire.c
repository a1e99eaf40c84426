/* fuzz_wire: the Light service's requests from task code, which is not
 * trusted (mantad-light/wire.c): wire_scan on the streamed World messages
 * (LightResult, SetGlobalRequest), read across gRPC slices however the
 * transport cut them, then rewritten with wout_* as world.c does; and
 * wire_unpack (the NUL walk, then protobuf-c) on every unary request type.
 * What wire_scan takes must agree with protobuf-c where both take it, and
 * its rewrite must decode to what was read.
 *
 * Input: byte 0 bits 0-1: 0 LightResult scan, 1 SetGlobalRequest scan,
 * 2-3 wire_unpack of the request type picked by byte 1; bits 2-7: the
 * number of slices the rest arrives in, less one. */
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/slice.h>

#include "common/system.pb-c.h"
#include "common/tasks.pb-c.h"
#include "fuzz.h"
#include "light.h"
#include "log.h"
#include "node/light_service.pb-c.h"

static const ProtobufCMessageDescriptor *const unary[] = {
	&node__light_service__data_request__descriptor,
	&node__light_service__dir_request__descriptor,
	&node__light_service__read_text__descriptor,
	&node__light_service__light_result_query__descriptor,
	&node__light_service__get_global_request__descriptor,
	&common__system__env_id__descriptor,
	&common__tasks__task_scheduling__descriptor,
};

static void
shutdown_grpc(void)
{
	grpc_shutdown();
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_init("fuzz_wire", LOG_LVL_ERROR);
	grpc_init();
	atexit(shutdown_grpc);
	return 0;
}

/* p[0..len) in n slices of about equal size (some empty when n > len). */
static grpc_byte_buffer *
sliced(const uint8_t *p, size_t len, size_t n)
{
	grpc_slice s[64];
	grpc_byte_buffer *bb;
	size_t off = 0;

	for (size_t i = 0; i < n; i++) {
		size_t k = len / n + (i < len % n ? 1 : 0);

		s[i] = grpc_slice_from_copied_buffer((const char *)p + off, k);
		off += k;
	}
	bb = grpc_raw_byte_buffer_create(s, n);
	for (size_t i = 0; i < n; i++)
		grpc_slice_unref(s[i]);
	return bb;
}

static grpc_slice
flat(grpc_byte_buffer *bb)
{
	grpc_byte_buffer_reader r;
	grpc_slice all;

	FUZZ_ASSERT(grpc_byte_buffer_reader_init(&r, bb));
	all = grpc_byte_buffer_reader_readall(&r);
	grpc_byte_buffer_reader_destroy(&r);
	return all;
}

static void
check_scan(const uint8_t *p, size_t len, size_t n, bool result)
{
	static const int lr_ids[2] = { 2, 1 }, sg_ids[2] = { 1, 2 };
	const int *idn = result ? lr_ids : sg_ids;
	grpc_byte_buffer *bb = sliced(p, len, n), *out;
	struct wbuf b;
	struct wfields f;
	struct wout o;
	char err[256];
	int rc;

	FUZZ_ASSERT(wbuf_from(&b, bb) == 0);
	grpc_byte_buffer_destroy(bb);
	FUZZ_ASSERT(b.total == len);
	err[0] = '\0';
	rc = wire_scan(&b, idn, 3, 4, &f, err, sizeof(err));
	FUZZ_SAY("%s scan: %s\n", result ? "LightResult" : "SetGlobalRequest",
	    rc == 0 ? "taken" : err);
	if (rc != 0) {
		FUZZ_ASSERT(rc == -1 && err[0] != '\0');
		wbuf_free(&b);
		return;
	}
	FUZZ_ASSERT(f.taglen <= LIGHT_TAG_MAX && f.tag[f.taglen] == '\0');
	FUZZ_ASSERT(strlen(f.tag) == f.taglen);
	FUZZ_ASSERT(!f.has_data || (f.data_off <= len && f.data_len <= len - f.data_off));

	/* Where protobuf-c takes the same bytes, it reads the same tag and data. */
	{
		ProtobufCMessage *m = protobuf_c_message_unpack(result ?
		    &node__light_service__light_result__descriptor :
		    &node__light_service__set_global_request__descriptor, NULL, len, p);

		if (m != NULL) {
			const char *tag;
			ProtobufCBinaryData data;

			if (result) {
				tag = ((Node__LightService__LightResult *)m)->tag;
				data = ((Node__LightService__LightResult *)m)->data;
			} else {
				tag = ((Node__LightService__SetGlobalRequest *)m)->tag;
				data = ((Node__LightService__SetGlobalRequest *)m)->data;
			}
			FUZZ_ASSERT(strcmp(tag, f.tag) == 0);
			FUZZ_ASSERT(data.len == (f.has_data ? f.data_len : 0));
			FUZZ_ASSERT(data.len == 0 || memcmp(data.data, p + f.data_off, data.len) == 0);
			protobuf_c_message_free_unpacked(m, NULL);
		}
	}

	/* Rewritten as world.c does (ids, tag, data by reference): it must
	 * decode to what was read. */
	wout_init(&o);
	wout_pair(&o, 1, f.id[1]);
	wout_pair(&o, 2, f.id[0]);
	wout_string(&o, 3, f.tag, f.taglen);
	if (f.has_data)
		FUZZ_ASSERT(wout_bytes_ref(&o, 4, &b, f.data_off, f.data_len) == 0);
	out = wout_finish(&o);
	FUZZ_ASSERT(out != NULL);
	{
		grpc_slice all = flat(out);
		Node__LightService__LightResult *r = node__light_service__light_result__unpack(NULL,
		    GRPC_SLICE_LENGTH(all), GRPC_SLICE_START_PTR(all));

		FUZZ_ASSERT(r != NULL);
		FUZZ_ASSERT(r->task_id != NULL && r->swarm_id != NULL);
		FUZZ_ASSERT(r->task_id->head == f.id[1].head && r->task_id->tail == f.id[1].tail);
		FUZZ_ASSERT(r->swarm_id->head == f.id[0].head && r->swarm_id->tail == f.id[0].tail);
		FUZZ_ASSERT(strcmp(r->tag, f.tag) == 0);
		FUZZ_ASSERT(r->data.len == (f.has_data ? f.data_len : 0));
		FUZZ_ASSERT(r->data.len == 0 || memcmp(r->data.data, p + f.data_off, r->data.len) == 0);
		node__light_service__light_result__free_unpacked(r, NULL);
		grpc_slice_unref(all);
	}
	grpc_byte_buffer_destroy(out);
	wbuf_free(&b);
}

static void
check_unpack(const uint8_t *p, size_t len, size_t n, unsigned which)
{
	const ProtobufCMessageDescriptor *d = unary[which % (sizeof(unary) / sizeof(unary[0]))];
	grpc_byte_buffer *bb = sliced(p, len, n);
	ProtobufCMessage *m;
	char err[256];
	bool nul;

	err[0] = '\0';
	m = wire_unpack(bb, d, LIGHT_REQ_MAX, err, sizeof(err));
	FUZZ_SAY("%s: %s\n", d->short_name, m ? "taken" : err);
	if (m == NULL)
		FUZZ_ASSERT(err[0] != '\0');
	else
		protobuf_c_message_free_unpacked(m, NULL);

	err[0] = '\0';
	m = wire_unpack_nul(bb, d, LIGHT_REQ_MAX, &nul, err, sizeof(err));
	if (m == NULL)
		FUZZ_ASSERT(err[0] != '\0');
	else
		protobuf_c_message_free_unpacked(m, NULL);
	grpc_byte_buffer_destroy(bb);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned mode;
	size_t n;

	if (size < 2)
		return 0;
	mode = data[0] & 3;
	n = (size_t)(data[0] >> 2) + 1;
	if (mode < 2)
		check_scan(data + 1, size - 1, n, mode == 0);
	else
		check_unpack(data + 2, size - 2, n, data[1]);
	return 0;
}
