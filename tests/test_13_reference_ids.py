"""The node id and the MQTT client id as a reference node gives them to the
same file (WIRE.md section 1): `manta_node start` sets identity.alias to
metadata.name when it is unset (metadata.name defaults to "default"), so the
id is always alias-derived; the broker sees the id in the reference's text
form (no padding, then one "0" unless that makes 32 digits)."""

import os
import re
import time

import nodelib
from devmanager import pair_to_hex


def registered_id(manager, after=None, timeout=30):
    r = manager.wait_call("RegisterNode", timeout=nodelib.deadline(timeout), after=after)
    return pair_to_hex(r.request.node_id)


def test_name_without_alias(manager, make_node):
    n = make_node(manager.grpc_port, name="edge-7")
    assert n.sections["identity"]["alias"] is None
    n.start()
    want = nodelib.b3sum16(b"edge-7")
    assert registered_id(manager) == want, "b3sum --length 16 of edge-7 is %s" % want
    st = n.wait_online()
    assert st["node_id"] == want
    assert st["alias"] == "edge-7"          # what the reference writes back
    assert n.identity() == want + "\n"


def test_no_alias_no_name_is_default(manager, make_node):
    n = make_node(manager.grpc_port)
    n.sections["metadata"]["name"] = None
    n.write_config()
    n.start()
    # WIRE.md section 1's test vector for "default"
    assert registered_id(manager) == "f78761cf8c3621e851097dff9a4b0463"
    assert n.wait_online()["alias"] == "default"


def test_random_id_ignored(manager, make_node):
    n = make_node(manager.grpc_port, name="edge-7",
                  overrides={"identity": {"random_id": True}})
    n.start()
    assert registered_id(manager) == nodelib.b3sum16(b"edge-7")
    nodelib.wait_log(n, r"mantad-register: warning: identity\.random_id = true is "
                     r"ignored: as with the reference's manta_node start, the node id "
                     r"comes from the alias \"edge-7\"")


def test_id_follows_the_config(manager, make_node):
    """A state_dir that holds another id: the config wins, loudly."""
    n = make_node(manager.grpc_port, name="edge-7").start()
    old = nodelib.b3sum16(b"edge-7")
    assert registered_id(manager) == old
    n.wait_online()
    n.stop()
    n.sections["identity"]["alias"] = "edge-8"
    n.write_config()
    t0 = time.monotonic()
    n.start()
    new = nodelib.b3sum16(b"edge-8")
    assert registered_id(manager, after=t0) == new
    st = n.wait_online()
    assert st["node_id"] == new and st["alias"] == "edge-8"
    assert n.identity() == new + "\n"
    nodelib.wait_log(n, r"mantad-register: warning: the node id changes from %s \(%s\) "
                     r"to %s \(alias \"edge-8\"\)" % (old, re.escape(
                         os.path.join(n.state_dir, "identity")), new))
    # The broker and the manager hear the new id only from now on.
    nodelib.wait_for(lambda: [h for h in manager.heartbeats if h.time > t0
                              and pair_to_hex(h.request.node_id) == new],
                     15, "a heartbeat from the new id")


def client_ids(broker):
    return re.findall(r"New client connected from \S+ as (\S+) ", broker.log())


def test_client_id_short(broker, manager, make_node):
    """alias cafe: id 0xcafe, client id "0cafe" (not 32 padded digits)."""
    n = make_node(manager.grpc_port, alias="cafe").start()
    st = n.wait_online()
    assert st["node_id"] == "0" * 28 + "cafe"
    nodelib.wait_for(lambda: "0cafe" in client_ids(broker), 15,
                     "client id 0cafe in the broker's log")
    assert ("0" * 28 + "cafe") not in client_ids(broker)
    assert "connected to 127.0.0.1:%d as 0cafe," % broker.port in n.log()


def test_client_id_full(broker, manager, make_node):
    n = make_node(manager.grpc_port, alias="node-a").start()
    want = nodelib.b3sum16(b"node-a")
    assert n.wait_online()["node_id"] == want
    nodelib.wait_for(lambda: want in client_ids(broker), 15,
                     "client id %s in the broker's log" % want)
