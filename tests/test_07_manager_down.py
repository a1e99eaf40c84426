"""The manager is away: the node starts anyway (not registered), registers
once the manager comes up, and registers again after a manager restart,
whether the restart is long (the node saw the manager gone) or quick (a new
manager process on the same port between two probes; it knows nothing of
the node, so the node must register again)."""

import nodelib
from devmanager import pair_to_hex


def test_manager_down_at_start(managers, make_node):
    port = nodelib.free_port()
    n = make_node(port).start()
    # Started offline: the supervisor and daemons run, not registered.
    st = n.wait_status(lambda s: s["daemons"] and all(
        d["state"] == "up" for d in s["daemons"]), 15, "daemons up")
    assert st["manager"]["registered"] is False, st
    assert st["state"] != "online", st
    assert nodelib.node_hex_ok(st["node_id"])
    m = managers(port)
    r = m.wait_call("RegisterNode", timeout=nodelib.deadline(30))
    assert pair_to_hex(r.request.node_id) == st["node_id"]
    st = n.wait_ready(30)
    for d in st["daemons"]:
        assert d["restarts"] == 0, d


def test_manager_away_marks_unregistered(manager, node):
    """While the manager is gone, status stops claiming registered."""
    manager.stop()
    st = node.wait_status(lambda s: s["manager"]["registered"] is False, 30,
                          "registered false after the manager went away")
    assert st["state"] != "online", st


def test_manager_long_restart(manager, managers, node):
    node_id = node.wait_ready()["node_id"]
    port = manager.grpc_port
    manager.stop()
    node.wait_status(lambda s: s["manager"]["registered"] is False, 30,
                     "registered false after the manager went away")
    m2 = managers(port)
    r = m2.wait_call("RegisterNode", timeout=nodelib.deadline(30))
    assert pair_to_hex(r.request.node_id) == node_id
    assert r.authorization == nodelib.TOKEN
    st = node.wait_ready(30)
    assert st["manager"]["registered"] is True


def test_manager_quick_restart(manager, managers, node):
    node_id = node.wait_ready()["node_id"]
    port = manager.grpc_port
    manager.stop()
    m2 = managers(port)      # at once: no IsAvailable probe falls in the gap
    r = m2.wait_call("RegisterNode", timeout=nodelib.deadline(30))
    assert pair_to_hex(r.request.node_id) == node_id
    st = node.wait_ready(30)
    for d in st["daemons"]:
        assert d["restarts"] == 0, d
