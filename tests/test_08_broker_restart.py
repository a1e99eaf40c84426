"""The broker restarts on the same port: the node reconnects, subscribes
again (commands work) and heartbeats resume."""

import time

import nodelib
from devmanager import pair_to_hex


def test_broker_restart(manager, broker, node):
    node_id = node.wait_ready()["node_id"]
    broker.stop()
    st = node.wait_status(lambda s: s["mqtt"]["connected"] is False, 20,
                          "mqtt.connected false with the broker down")
    assert st["state"] != "online", st
    # Registration is not the broker's business.
    assert st["manager"]["registered"] is True

    broker.start()
    t0 = time.monotonic()
    manager.wait_mqtt(15)
    node.wait_ready(30)
    nodelib.wait_for(lambda: [r for r in manager.heartbeats if r.time > t0
                              and pair_to_hex(r.request.node_id) == node_id],
                     30, "a heartbeat after the broker restart")
    # Subscribed again: a command reaches the node.
    t1 = time.monotonic()
    manager.collect_information(node_id, "set_node_status")
    manager.wait_call("SetNodeStatus", timeout=nodelib.deadline(15), after=t1)
    st = node.wait_ready(5)
    for d in st["daemons"]:
        assert d["restarts"] == 0, d


def test_broker_down_at_start(manager, broker, make_node):
    """The broker is away when the node starts: it registers, then connects
    when the broker comes up."""
    broker.stop()
    n = make_node(manager.grpc_port).start()
    n.wait_status(lambda s: s["manager"]["registered"] is True, 30, "registered")
    rc, st = n.status()
    assert st["mqtt"]["connected"] is False and st["state"] != "online", st
    broker.start()
    manager.wait_mqtt(15)
    node_id = n.wait_ready(30)["node_id"]
    t0 = time.monotonic()
    nodelib.wait_for(lambda: [r for r in manager.heartbeats if r.time > t0
                              and pair_to_hex(r.request.node_id) == node_id],
                     15, "a heartbeat once the broker is up")
