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
    assert e.error_id == 22         # MQTT, as the reference (WIRE.md section 5)
    assert abs(e.timestamp.ToSeconds() - time.time()) < 60
    # Nothing else was called for it.
    for m in ("SetNodeStatus", "SetSystemSummary", "SetOverviews"):
        assert not manager.calls(m), m


def test_overviews_as_the_reference(manager, make_node, tmp_path):
    """WIRE.md section 7: one Overview per mapping, in mapping order: a file's
    stem, "File in <file name>" and its dtype; a folder's name, "Folder in
    <folder name>" and "folder". Both in RegisterNode and SetOverviews."""
    d = tmp_path / "ds"
    (d / "images").mkdir(parents=True)
    for f in ("data.csv", "weights.NPY", "blob.tar.gz", "notes.txt"):
        (d / f).write_bytes(b"x")
    mappings = {"m1": str(d / "data.csv"), "m2": str(d / "images") + "/",
                "m3": str(d / "weights.NPY"), "m4": str(d / "blob.tar.gz"),
                "m5": str(d / "notes.txt")}
    want = [("data", "File in data.csv", "csv"),
            ("images", "Folder in images", "folder"),
            ("weights", "File in weights.NPY", "numpy"),
            ("blob.tar", "File in blob.tar.gz", "binary"),
            ("notes", "File in notes.txt", "text")]
    n = make_node(manager.grpc_port, overrides={"datasets": {"mappings": mappings}}).start()
    r = manager.wait_call("RegisterNode", timeout=nodelib.deadline(30))
    got = [(o.name, o.description, o.dtype) for o in r.request.dataset_overviews.content]
    assert got == want
    _, r = send(manager, n, "set_overviews", "SetOverviews")
    got = [(o.name, o.description, o.dtype) for o in r.request.content.content]
    assert got == want
