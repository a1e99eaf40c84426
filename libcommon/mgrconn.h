/* mgrconn: the channel to the manager's node.node_service.Node (WIRE.md
 * section 2) as mantad-register and mantad-light open it with libgrpc's
 * core API: credentials from security.cert_folder, the channel arguments,
 * the JWT as `authorization` metadata, and the client ops of a call.
 *
 * Only daemons linked with libgrpc may call it: libcommon is a static
 * archive, so the others never pull this module in. */
#ifndef MANTA_MGRCONN_H
#define MANTA_MGRCONN_H

#include <stdbool.h>
#include <stddef.h>

#include <grpc/grpc.h>

#include "cfg.h"

/* What TLS was built from, for the words of a failed handshake. */
struct mgrconn_tls {
	bool on;		/* use_tls, or port 443 alone */
	bool verify;		/* the manager's certificate is checked */
	bool has_ca;		/* dir/ca.crt, trusted with the system roots */
	bool client_cert;	/* dir/node.crt and its key are shown */
	bool key_sealed;	/* the key is node.key.sbox, not node.key */
	char *dir;		/* cert_folder, ~ expanded; NULL without one */
};

struct mgrconn {
	grpc_channel *ch;
	char *target;		/* "host:port", "[v6]:port" */
	grpc_metadata auth;	/* identity.secured_token */
	struct mgrconn_tls tls;
};

struct mgrconn_opts {
	const char *prog;	/* user agent "manta-node/<prog>" */
	int connect_ms;		/* how long one connection attempt may take */
	bool announce;		/* log which cert_folder files TLS uses */
	int max_recv;		/* largest message from the manager; 0: no limit */
};

/* Reads cert_folder (before any sandbox: node.key.sbox opens with the
 * cfg's secret key) and creates the channel; it connects on first use.
 * 0, or -1 (logged) with mc left for mgrconn_close. */
int mgrconn_open(struct mgrconn *mc, const struct manta_cfg *c,
    const struct mgrconn_opts *o);
/* Destroys the channel and wipes the token; a zeroed mc is fine. */
void mgrconn_close(struct mgrconn *mc);

/* What the manager sends back on a call. */
struct mgrconn_reply {
	grpc_metadata_array imd, tmd;
	grpc_byte_buffer *msg;	/* NULL: none (yet) */
	grpc_status_code status;
	grpc_slice details;
};

void mgrconn_reply_init(struct mgrconn_reply *r);
void mgrconn_reply_free(struct mgrconn_reply *r);

#define MGRCONN_RECV_MD		0x1
#define MGRCONN_RECV_MSG	0x2
#define MGRCONN_RECV_STATUS	0x4
#define MGRCONN_RECV_ALL	0x7

/* Fill ops (at most 3 each) and return how many: the initial metadata md
 * (none when NULL), the message msg (none when NULL) and the half-close;
 * or the receipts named by what into r. */
size_t mgrconn_ops_send(grpc_op *ops, grpc_metadata *md, grpc_byte_buffer *msg,
    bool close);
size_t mgrconn_ops_recv(grpc_op *ops, struct mgrconn_reply *r, unsigned what);

#endif
