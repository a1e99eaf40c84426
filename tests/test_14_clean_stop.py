"""A clean stop lets its own last SetNodeStatus finish (issue 11): the
DISCONNECTED the stop's drain sends over gRPC reaches a manager that takes
a while to answer, instead of being cancelled by the stop ("manager refused
SetNodeStatus: CANCELLED"); the wait is bounded."""

import time

import nodelib
from common import informations_pb2 as info_pb


def test_stop_waits_for_the_last_node_status(manager, node):
    node_id = node.wait_ready()["node_id"]
    manager.answer_delay["SetNodeStatus"] = 1.5
    t0 = time.monotonic()
    r = node.stop(timeout=30)
    assert r.returncode == 0, r.stderr
    nodelib.wait_disconnected(manager, node_id, t0)          # over MQTT
    c = manager.wait_call("SetNodeStatus", timeout=nodelib.deadline(10), after=t0)
    assert c.request.status == info_pb.DISCONNECTED
    assert not c.extra["cancelled"], "the node cancelled its SetNodeStatus"
    assert len([c for c in manager.calls("SetNodeStatus") if c.time >= t0]) == 1
    log = node.log()
    assert "CANCELLED" not in log, [l for l in log.splitlines() if "CANCELLED" in l]
    assert "refused SetNodeStatus" not in log


def test_stop_does_not_wait_forever(manager, node):
    """A manager that never answers in time delays the stop by at most the
    bound (3 s), then the call is cancelled, quietly."""
    node.wait_ready()
    manager.answer_delay["SetNodeStatus"] = 20
    t0 = time.monotonic()
    r = node.stop(timeout=30)
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert took < 15, took
    assert "refused SetNodeStatus" not in node.log()
