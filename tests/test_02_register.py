"""Registration: the node calls IsAvailable and RegisterNode with the raw JWT
in `authorization`; its id follows WIRE.md section 1 and persists in
state_dir/identity across restarts."""

import os
import platform
import socket

import nodelib
from devmanager import pair_to_hex


def registered_id(manager, timeout=30):
    r = manager.wait_call("RegisterNode", timeout=nodelib.deadline(timeout))
    assert r.authorization == nodelib.TOKEN
    return pair_to_hex(r.request.node_id), r


def test_register(manager, make_node):
    n = make_node(manager.grpc_port).start()
    node_id, rec = registered_id(manager)
    st = n.wait_online()
    assert nodelib.node_hex_ok(st["node_id"]), st["node_id"]
    assert st["node_id"] == node_id
    assert st["manager"]["registered"] is True

    # Every call carried the raw token, without "Bearer ".
    avail = manager.wait_call("IsAvailable", timeout=nodelib.deadline(15))
    assert avail.authorization == nodelib.TOKEN
    for r in manager.calls():
        assert r.authorization == nodelib.TOKEN, r
        assert not r.rejected, r

    # platform_info as the reference fills it.
    pi = rec.request.platform_info
    u = os.uname()
    assert pi.system == platform.system() == "Linux"
    assert pi.release == u.release
    assert pi.version == u.version
    assert pi.machine == u.machine
    assert pi.hostname == socket.gethostname()

    # The identity file holds the id.
    assert n.identity() == node_id + "\n"


def test_alias_hex(manager, make_node):
    n = make_node(manager.grpc_port, alias="deadbeef").start()
    node_id, _ = registered_id(manager)
    assert node_id == "0" * 24 + "deadbeef"
    assert n.wait_online()["node_id"] == node_id
    assert n.wait_online()["alias"] == "deadbeef"


def test_alias_text(manager, make_node):
    n = make_node(manager.grpc_port, alias="node-a").start()
    node_id, _ = registered_id(manager)
    want = nodelib.b3sum16(b"node-a")
    assert node_id == want, "alias node-a: id %s, b3sum --length 16 says %s" % (
        node_id, want)
    assert n.wait_online()["node_id"] == want


def test_id_persists_across_restart(manager, make_node):
    n = make_node(manager.grpc_port).start()
    first, _ = registered_id(manager)
    n.wait_online()
    n.stop()
    assert n.identity() == first + "\n"
    t0 = manager.calls("RegisterNode")[-1].time
    n.start()
    r = manager.wait_call("RegisterNode", timeout=nodelib.deadline(30),
                          pred=lambda r: r.time > t0)
    assert pair_to_hex(r.request.node_id) == first
    assert n.wait_online()["node_id"] == first


def test_wrong_token_not_registered(manager, make_node):
    """The manager refuses the token: the node never counts as registered."""
    n = make_node(manager.grpc_port, token="bad.token.value").start()
    manager.wait_record(lambda r: r.rejected, nodelib.deadline(20),
                        "a call with the wrong token")
    for r in manager.calls():
        assert r.authorization == "bad.token.value"
    rc, st = n.status()
    assert rc == 0 and st["manager"]["registered"] is False, st
    assert st["state"] != "online", st
    assert not manager.calls("RegisterNode", accepted_only=True)
