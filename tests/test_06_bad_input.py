"""Bad input on the command topics: payloads that do not parse, unknown
commands, odd sizes. The node reports what it can with SendError, stays
online, restarts no daemon, and keeps sending heartbeats.

stop_node is left out on purpose: WIRE.md says its payload is ignored and
the node stops, so garbage there is not bad input."""

import os
import time

import nodelib
from devmanager import pair_to_hex

# Wire type 7 does not exist: no protobuf message parses these bytes.
GARBAGE = b"\xff\xff\xff\xff\xff\xff\xff\xff\x0f"
# A length-delimited field that claims more bytes than there are.
TRUNCATED = b"\x0a\x7f\x08\x01"


def exec_present():
    return os.access(os.path.join(nodelib.BIN, "mantad-exec"), os.X_OK)


def test_bad_input(manager, node):
    st = node.wait_ready()
    node_id = st["node_id"]
    pids = {d["name"]: d["pid"] for d in st["daemons"]}

    cases = [
        ("collect_information", b"\xff\xfe\x00garbage"),   # not UTF-8, unknown
        ("collect_information", b"x" * 70000),
        ("no_such_command", b"hello"),
        ("no_such_command", b""),
    ]
    if exec_present():
        # Decoded by mantad-exec: without it beat has no one to hand them to.
        cases += [
            ("deploy_task", GARBAGE),
            ("deploy_task", TRUNCATED),
            ("stop_task", GARBAGE),
            ("stop_swarm", GARBAGE),
            ("stop_swarm", TRUNCATED),
        ]
    missing, wrong = [], []
    for cmd, payload in cases:
        t0 = time.monotonic()
        manager.raw("node/%s/%s" % (node_id, cmd), payload)
        try:
            r = manager.wait_call("SendError", timeout=nodelib.deadline(10), after=t0)
        except AssertionError:
            missing.append((cmd, payload[:16]))
            continue
        assert pair_to_hex(r.request.node_id) == node_id
        assert r.request.content
        # WIRE.md sections 5 and 9: an unparsable payload or an unknown
        # command is an MQTT error (22), as the reference reports it.
        if r.request.error_id != 22:
            wrong.append((cmd, payload[:16], r.request.error_id))
        if cmd == "no_such_command" and not r.request.content.startswith(
                "Not allowed method"):
            wrong.append((cmd, payload[:16], r.request.content))

    # Nothing that reached the manager was a crash.
    st = node.wait_ready(10)
    for d in st["daemons"]:
        assert d["restarts"] == 0, "daemon restarted after bad input: %r" % d
        assert d["state"] == "up", d
        if d["name"] in pids:
            assert d["pid"] == pids[d["name"]], "pid changed: %r" % d
    # Heartbeats continue after the last bad message.
    t1 = time.monotonic()
    nodelib.wait_for(lambda: [r for r in manager.heartbeats if r.time > t1
                              and pair_to_hex(r.request.node_id) == node_id],
                     10, "a heartbeat after the bad input")
    assert not missing, "no SendError for: %r" % missing
    assert not wrong, "SendError not as the reference's: %r" % wrong


def test_unparsable_commands_without_exec(manager, node):
    """deploy_task/stop_task/stop_swarm garbage never takes beat down, whether
    or not mantad-exec runs."""
    st = node.wait_ready()
    node_id = st["node_id"]
    for cmd in ("deploy_task", "stop_task", "stop_swarm"):
        for payload in (GARBAGE, TRUNCATED, b"", os.urandom(4096)):
            manager.raw("node/%s/%s" % (node_id, cmd), payload)
    # A command sent after them still works: beat is alive and in order.
    t0 = time.monotonic()
    manager.collect_information(node_id, "set_node_status")
    manager.wait_call("SetNodeStatus", timeout=nodelib.deadline(15), after=t0)
    st = node.wait_ready(10)
    for d in st["daemons"]:
        assert d["restarts"] == 0, "daemon restarted after bad input: %r" % d
