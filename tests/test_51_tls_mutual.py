"""Mutual TLS end to end (INTERFACE.md security.cert_folder, WIRE.md sections
2 and 5): a test CA made with openssl signs the manager's and the broker's
server certificate (127.0.0.1 and localhost in subjectAltName) and the
node's two client certificates; the dev manager serves gRPC over TLS and
requires a client certificate, mosquitto listens with TLS and
require_certificate. The node registers, heartbeats over MQTT TLS, and a
command from the manager comes back as a gRPC call, all with its
certificates (the manager sees node.crt's CN)."""

import os
import time

import nodelib
from devmanager import pair_to_hex


def test_mutual_tls(request, pki, make_node):
    ca = pki["ca"]
    broker, m = nodelib.mutual_tls_stack(request, pki)

    n = make_node(m.grpc_port, overrides={"security": {"use_tls": True}})
    ca.cert_folder(n.sections["security"]["cert_folder"], node=pki["node"],
                   mqtt=pki["mqtt"])
    n.start()
    st = n.wait_online(30)
    node_id = st["node_id"]

    # gRPC: registered over TLS with node.crt
    reg = m.wait_call("RegisterNode", timeout=10)
    assert pair_to_hex(reg.request.node_id) == node_id
    assert reg.extra["peer_cn"] == "node-client"
    assert reg.authorization == nodelib.TOKEN

    # MQTT: heartbeats through the TLS broker, from a client that showed
    # mqtt.crt (require_certificate: no connection without one)
    hb = m.wait_message("manager/set_system_summary", timeout=15,
                        pred=lambda r: r.request is not None
                        and pair_to_hex(r.request.node_id) == node_id)
    assert hb.extra["qos"] == 0
    assert "as %s" % node_id in broker.log()

    # a command down MQTT TLS, its effect back over gRPC TLS
    t0 = time.monotonic()
    m.collect_information(node_id, "set_node_status")
    call = m.wait_call("SetNodeStatus", timeout=10, after=t0)
    assert call.extra["peer_cn"] == "node-client"

    log = n.log()
    assert "TLS to the manager: system CA roots and ca.crt, client certificate node.crt" in log
    assert ("TLS to the broker 127.0.0.1:%d: CA from ca.crt, client certificate mqtt.crt"
            % broker.port) in log
    assert "certificate is refused" not in log
    # the private keys never show up in a log
    with open(pki["node"][1]) as f:
        key_b64 = f.read().splitlines()[1]
    assert key_b64 not in log


def test_mutual_tls_by_name(request, pki, make_node):
    """manager_host and the broker given by name (localhost): the
    certificates' DNS names are checked, not only their addresses."""
    ca = pki["ca"]
    broker, m = nodelib.mutual_tls_stack(request, pki, registration_broker_host="localhost")
    n = make_node(m.grpc_port, manager_host="localhost",
                  overrides={"security": {"use_tls": True}})
    ca.cert_folder(n.sections["security"]["cert_folder"], node=pki["node"],
                   mqtt=pki["mqtt"])
    n.start()
    st = n.wait_online(30)
    assert st["mqtt"]["broker"] == "localhost:%d" % broker.port
    assert os.path.exists(os.path.join(n.sections["security"]["cert_folder"], "ca.crt"))
