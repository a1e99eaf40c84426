"""Issue 13, finding 8: audit trail anchoring.

The chain is keyed: each hash is BLAKE2b keyed with a key derived from the
node's secret key when it has one, else from <state_dir>/audit.key (0400),
and each line names that key (chain_key). Whoever can write audit.log but
does not hold the key cannot rewrite it: a chain edited and re-hashed
without the key (unkeyed, as the old format allowed) is refused by `mantactl
audit verify`. `mantactl audit head [--json]` prints the last entry (seq,
hash) for a store outside the node; a chain cut from its end is still whole,
and only `audit verify --head SEQ:HASH` against such an anchored head finds
it out."""

import hashlib
import json
import os
import stat

import nodelib


def audit_path(node):
    return os.path.join(node.state_dir, "audit.log")


def entries(manager, node, n):
    node_id = node.wait_online()["node_id"]
    for _ in range(n):
        manager.collect_information(node_id, "set_node_status")
    nodelib.wait_for(lambda: len(nodelib.audit_show(node)) >= n, 20, "%d audit entries" % n)
    with open(audit_path(node), "rb") as f:
        return f.read().splitlines(keepends=True)


def rewrite(path, lines):
    with open(path, "wb") as f:
        f.write(b"".join(lines))


def unkeyed(lines, edit=None):
    """The chain as someone without the key would forge it: chain_key
    dropped, an entry edited, every hash recomputed unkeyed."""
    prev, out = "0" * 64, []
    for i, line in enumerate(lines):
        o = json.loads(line, object_pairs_hook=list)
        o = [(k, v) for k, v in o if k not in ("chain_key", "hash")]
        o = [(k, prev if k == "prev" else v) for k, v in o]
        if edit is not None and i == edit:
            o = [(k, v + 1000 if k == "bytes" else v) for k, v in o]
        body = json.dumps(dict(o), separators=(",", ":")).encode()
        h = hashlib.blake2b(prev.encode() + body, digest_size=32).hexdigest()
        out.append(body[:-1] + b',"hash":"' + h.encode() + b'"}\n')
        prev = h
    return out


def test_unkeyed_rewrite_refused(manager, node):
    good = entries(manager, node, 4)
    path = audit_path(node)
    key = os.path.join(node.state_dir, "audit.key")
    st = os.stat(key)
    assert stat.S_IMODE(st.st_mode) == 0o400 and st.st_uid == 0
    assert nodelib.audit_chain_ok(path) == 4
    r = nodelib.mantactl("audit", "verify", "-c", node.config)
    assert r.returncode == 0 and ", keyed (chain_key " in r.stdout, r.stdout + r.stderr

    forged = unkeyed(good, edit=2)
    assert forged != good and b'"bytes":1015' in forged[2]
    rewrite(path, forged)
    r = nodelib.mantactl("audit", "verify", "-c", node.config)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "no entry is keyed" in r.stderr, r.stderr

    # keyed lines, then a forged unkeyed tail chained to them
    rewrite(path, good[:2] + unkeyed(good)[2:])
    r = nodelib.mantactl("audit", "verify", "-c", node.config)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "line 3:" in r.stderr, r.stderr

    # an anchored head is refused for a chain that does not verify
    r = nodelib.mantactl("audit", "head", "-c", node.config)
    assert r.returncode == 1, r.stdout + r.stderr
    rewrite(path, good)
    assert nodelib.mantactl("audit", "verify", "-c", node.config).returncode == 0


def test_truncation_found_against_anchored_head(manager, node):
    entries(manager, node, 5)
    path = audit_path(node)
    r = nodelib.mantactl("audit", "head", "--json", "-c", node.config)
    assert r.returncode == 0, r.stderr
    head = json.loads(r.stdout)
    assert set(head) == {"seq", "hash", "chain_key"} and head["seq"] >= 5, head
    r = nodelib.mantactl("audit", "head", "-c", node.config)
    assert r.returncode == 0 and r.stdout == "%d:%s\n" % (head["seq"], head["hash"]), r.stdout
    anchor = "%d:%s" % (head["seq"], head["hash"])
    r = nodelib.mantactl("audit", "verify", "--head", anchor, "-c", node.config)
    assert r.returncode == 0 and "anchored head %s found" % anchor in r.stdout, r.stdout
    # the hash alone will do
    r = nodelib.mantactl("audit", "verify", "--head", head["hash"], "-c", node.config)
    assert r.returncode == 0, r.stderr

    with open(path, "rb") as f:
        lines = f.read().splitlines(keepends=True)
    rewrite(path, lines[:head["seq"] - 2])
    # whole, as far as the file tells ...
    r = nodelib.mantactl("audit", "verify", "-c", node.config)
    assert r.returncode == 0, r.stdout + r.stderr
    # ... but not against the head kept elsewhere
    r = nodelib.mantactl("audit", "verify", "--head", anchor, "-c", node.config)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "the anchored head %s is not in the chain" % anchor in r.stderr, r.stderr
    r = nodelib.mantactl("audit", "verify", "--head", "nonsense", "-c", node.config)
    assert r.returncode == 1 and "not a hash" in r.stderr, r.stderr
    r = nodelib.mantactl("audit", "head", "--head", anchor, "-c", node.config)
    assert r.returncode == 2, r.stderr


def test_key_from_the_secret_key(manager, make_node):
    """With a secret key, the chain's key is derived from it (audit.key is
    not made), so it lives wherever security.secret_key_file does."""
    n = make_node(manager.grpc_port)
    r = nodelib.mantactl("secret", "init", "-c", n.config)
    assert r.returncode == 0, r.stderr
    n.start()
    n.wait_ready(30)
    entries(manager, n, 2)
    assert not os.path.exists(os.path.join(n.state_dir, "audit.key"))
    keys = nodelib.audit_keys(n.state_dir)
    assert len(keys) == 1
    with open(audit_path(n)) as f:
        ids = {json.loads(line)["chain_key"] for line in f}
    assert ids == set(keys), (ids, keys)
    assert nodelib.audit_chain_ok(audit_path(n)) >= 2
    r = nodelib.mantactl("audit", "verify", "-c", n.config)
    assert r.returncode == 0 and "chain_key %s" % list(keys)[0] in r.stdout, r.stdout
