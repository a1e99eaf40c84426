/* heartbeat: one SetSystemSummaryRequest from a fresh res Snapshot. Runs on
 * the background worker; main.c decides when and whether to publish. A
 * missed heartbeat is not worth keeping, so nothing here retries. */
#include <stdlib.h>

#include "common/informations.pb-c.h"

#include "log.h"

#include "beat.h"

uint8_t *
heartbeat_build(const char *run_dir, struct manta_id node_id, size_t *len)
{
	Manta__Ipc__Msg m = MANTA__IPC__MSG__INIT;
	Manta__Ipc__SnapshotRequest sr = MANTA__IPC__SNAPSHOT_REQUEST__INIT;
	Common__Informations__SetSystemSummaryRequest sum =
	    COMMON__INFORMATIONS__SET_SYSTEM_SUMMARY_REQUEST__INIT;
	Common__System__PairId pair = COMMON__SYSTEM__PAIR_ID__INIT;
	ipc_msg *reply = NULL;
	uint8_t *buf = NULL;

	*len = 0;
	/* res keeps its last sample current (mqtt.ping_interval is about a
	 * second); a fresh one would cost a sampling interval here. */
	sr.fresh = false;
	m.body_case = MANTA__IPC__MSG__BODY_SNAPSHOT_REQ;
	m.snapshot_req = &sr;
	if (ipc_call(run_dir, IPC_RES, &m, &reply, CALL_SNAPSHOT_MS) == -1) {
		log_debug("no snapshot from %s: skipping this heartbeat", IPC_RES);
		return NULL;
	}
	if (reply->body_case != MANTA__IPC__MSG__BODY_SNAPSHOT ||
	    reply->snapshot->metrics == NULL) {
		log_debug("%s sent no metrics: skipping this heartbeat", IPC_RES);
		goto out;
	}
	id_to_pair(node_id, &pair);
	sum.node_id = &pair;
	sum.metrics_snapshot = reply->snapshot->metrics;
	*len = common__informations__set_system_summary_request__get_packed_size(&sum);
	if ((buf = malloc(*len > 0 ? *len : 1)) == NULL) {
		log_warnx("unable to build a heartbeat: out of memory");
		*len = 0;
		goto out;
	}
	common__informations__set_system_summary_request__pack(&sum, buf);
out:
	ipc_msg_free(reply);
	return buf;
}
