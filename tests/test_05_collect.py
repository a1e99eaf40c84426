"""collect_information: each known text makes the node call the matching
gRPC method of the manager; an unknown text is reported with SendError."""

import time

import pytest

import nodelib
from devmanager import pair_to_hex
from common import informations_pb2 as info_pb


def send(manager, node, text, method, pred=None, timeout=15):
    """Publishes collect_information until the call arrives (the first
    publish may race the node's subscription only before it is online)."""
    node_id = node.wait_online()["node_id"]
    t0 = time.monotonic()
    manager.collect_information(node_id, text)
    r = manager.wait_call(method, timeout=nodelib.deadline(timeout), after=t0, pred=pred)
    assert r.authorization == nodelib.TOKEN
    return node_id, r


def test_set_node_status(manager, node):
    node_id, r = send(manager, node, "set_node_status", "SetNodeStatus")
    assert pair_to_hex(r.request.node_id) == node_id
    assert r.request.status == info_pb.CONNECTED


def test_set_system_summary(manager, node):
    node_id, r = send(manager, node, "set_system_summary", "SetSystemSummary")
    assert pair_to_hex(r.request.node_id) == node_id
    m = r.request.metrics_snapshot
    assert m.memory.total_bytes > 0
    assert m.cpu.count > 0


def test_set_overviews(manager, node):
    node_id, r = send(manager, node, "set_overviews", "SetOverviews")
    assert pair_to_hex(r.request.node_id) == node_id


@pytest.mark.parametrize("text", ["bogus_information", ""])
def test_unknown_text_sends_error(manager, node, text):
    node_id, r = send(manager, node, text, "SendError")
    e = r.request
    assert pair_to_hex(e.node_id) == node_id
    assert e.content, "SendError without content"
    assert e.error_id != 0
    assert abs(e.timestamp.ToSeconds() - time.time()) < 60
    # Nothing else was called for it.
    for m in ("SetNodeStatus", "SetSystemSummary", "SetOverviews"):
        assert not manager.calls(m), m
