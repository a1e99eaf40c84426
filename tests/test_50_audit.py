"""Audit trail (INTERFACE.md, mantactl(8) AUDIT): every command mantad-beat
receives is appended to <state_dir>/audit.log, hash-chained; `mantactl audit
show [--json]` prints it and `mantactl audit verify` checks the chain, exit 1
naming the first bad line for an edited, removed or truncated entry. The
chain is also recomputed here from the documented definition."""

import hashlib
import json
import os

import nodelib


def audit_path(node):
    return os.path.join(node.state_dir, "audit.log")


def verify(node):
    return nodelib.mantactl("audit", "verify", "-c", node.config)


def test_commands_are_audited(manager, node):
    node_id = node.wait_online()["node_id"]
    r = verify(node)
    assert r.returncode == 0 and r.stdout.startswith("ok 0 entries"), (r.stdout, r.stderr)

    payload = b"set_node_status"
    manager.collect_information(node_id, payload.decode())
    manager.raw("node/%s/deploy_task" % node_id, b"\xff\xfe not a task")
    manager.raw("node/%s/no_such_command" % node_id, b"x")
    entries = nodelib.wait_for(
        lambda: (lambda e: e if len(e) >= 3 else None)(nodelib.audit_show(node)),
        20, "3 audit entries")
    assert [e["seq"] for e in entries] == [1, 2, 3]
    assert all(e["event"] == "command" for e in entries)
    by_topic = {e["topic"].rsplit("/", 1)[1]: e for e in entries}

    ok = by_topic["collect_information"]
    assert ok["command"] == "collect_information" and ok["dest"] == "register"
    assert ok["bytes"] == len(payload)
    assert ok["payload_blake2b"] == hashlib.blake2b(payload, digest_size=32).hexdigest()
    assert "refused" not in ok
    bad = by_topic["deploy_task"]
    assert bad["command"] == "deploy_task" and "MqttTask" in bad["refused"]
    unknown = by_topic["no_such_command"]
    assert unknown["command"] is None and "Not allowed method" in unknown["refused"]
    for e in entries:
        assert e["time"].endswith("Z") and e["time"][10] == "T"

    assert nodelib.audit_chain_ok(audit_path(node)) == 3
    r = verify(node)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ok 3 entries, last hash %s" % entries[-1]["hash"]), r.stdout

    r = nodelib.mantactl("audit", "show", "-c", node.config)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 3
    assert "command" in lines[0] and "topic=node/%s/" % node_id in lines[0]


def rewrite(path, lines):
    with open(path, "wb") as f:
        f.write(b"".join(lines))


def test_verify_finds_tampering(manager, node):
    node_id = node.wait_online()["node_id"]
    for i in range(5):
        manager.collect_information(node_id, "set_node_status")
    nodelib.wait_for(lambda: len(nodelib.audit_show(node)) >= 5, 20, "5 audit entries")
    path = audit_path(node)
    with open(path, "rb") as f:
        good = f.read().splitlines(keepends=True)
    assert len(good) == 5 and verify(node).returncode == 0

    # an edited byte (a digit of bytes: still JSON, hash mismatch)
    edited = list(good)
    edited[2] = edited[2].replace(b'"bytes":15', b'"bytes":16')
    assert edited[2] != good[2]
    rewrite(path, edited)
    r = verify(node)
    assert r.returncode == 1
    assert "line 3: hash mismatch: the entry was edited" in r.stderr, r.stderr

    # a removed entry
    rewrite(path, good[:1] + good[2:])
    r = verify(node)
    assert r.returncode == 1
    assert "line 2: seq 3 follows 1: 1 entry missing" in r.stderr, r.stderr

    # two entries swapped
    rewrite(path, good[:1] + [good[2], good[1]] + good[3:])
    r = verify(node)
    assert r.returncode == 1 and "line 2:" in r.stderr, r.stderr

    # a truncated last line
    rewrite(path, good[:4] + [good[4][:40]])
    r = verify(node)
    assert r.returncode == 1
    assert "line 5: truncated line" in r.stderr, r.stderr
    # show still prints the good entries, and warns
    r = nodelib.mantactl("audit", "show", "--json", "-c", node.config)
    assert r.returncode == 0 and len(json.loads(r.stdout)) == 4
    assert "line 5" in r.stderr

    rewrite(path, good)
    assert verify(node).returncode == 0


def test_audit_usage(make_node):
    n = make_node(nodelib.free_port())
    r = nodelib.mantactl("audit", "verify", "-c", n.config)
    assert r.returncode == 0 and r.stdout.strip() == "ok 0 entries", (r.stdout, r.stderr)
    r = nodelib.mantactl("audit", "show", "--json", "-c", n.config)
    assert r.returncode == 0 and json.loads(r.stdout) == []
    assert nodelib.mantactl("audit", "-c", n.config).returncode == 2
    assert nodelib.mantactl("audit", "frobnicate", "-c", n.config).returncode == 2
    assert nodelib.mantactl("audit", "verify", "--json", "-c", n.config).returncode == 2
