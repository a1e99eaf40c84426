"""Secrets at rest (issue 7): the node's JWT and its two private keys sealed
with `mantactl secret` (libsodium secretbox, the key in a 0400 file), the
plain node.key and mqtt.key removed. The node registers over mutual TLS and
heartbeats through a TLS broker that requires a client certificate, as in
test_51, with the secrets opened in memory only. The token then shows up
nowhere: not in any file of the instance (logs, config, state), not in the
argv of any process, not in the environment of the daemons, not in
`mantactl status --json` or `mantactl config show`. A wrong key stops the
start with file, line and key named, and nothing is started."""

import os
import re
import subprocess

import nodelib
from devmanager import pair_to_hex
from nodelib import mantactl

# A distinctive token, so that any copy of it is found.
TOKEN = ("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJzZWFsZWQtbm9kZS10ZXN0In0."
         "U2VhbGVkVG9rZW5TaWduYXR1cmVYeXo0Mg")


def ok(r, what):
    assert r.returncode == 0, "%s: exit %d\nstdout: %s\nstderr: %s" % (
        what, r.returncode, r.stdout, r.stderr)
    return r


def seal_all(n):
    """secret init, the token sealed in place, both keys sealed and the
    plain ones removed. Returns the cert folder."""
    certs = n.sections["security"]["cert_folder"]
    ok(mantactl("secret", "init", "-c", n.config), "secret init")
    key = os.path.join(n.state_dir, "secret.key")
    assert oct(os.stat(key).st_mode & 0o7777) == "0o400"
    ok(mantactl("secret", "seal-token", "-w", "-c", n.config), "secret seal-token -w")
    for name in ("node.key", "mqtt.key"):
        ok(mantactl("secret", "seal-key", "--remove", "-c", n.config,
                    os.path.join(certs, name)), "secret seal-key " + name)
        assert not os.path.exists(os.path.join(certs, name))
        with open(os.path.join(certs, name + ".sbox")) as f:
            assert f.read().startswith("sbox:")
    with open(n.config) as f:
        text = f.read()
    assert TOKEN not in text
    assert re.search(r'(?m)^secured_token = "sbox:[A-Za-z0-9+/=]+"$', text), text
    return certs


def all_files(d):
    for root, _dirs, files in os.walk(d):
        for f in files:
            p = os.path.join(root, f)
            if os.path.isfile(p) and not os.path.islink(p):
                yield p


def file_has(path, needle):
    try:
        with open(path, "rb") as f:
            return needle.encode() in f.read()
    except OSError:
        return False


def proc_read(pid, what):
    try:
        with open("/proc/%d/%s" % (pid, what), "rb") as f:
            return f.read()
    except OSError:
        return b""


def test_sealed_secrets_end_to_end(request, pki, make_node):
    ca = pki["ca"]
    broker, m = nodelib.mutual_tls_stack(request, pki, token=TOKEN)

    n = make_node(m.grpc_port, token=TOKEN, overrides={"security": {"use_tls": True}})
    ca.cert_folder(n.sections["security"]["cert_folder"], node=pki["node"],
                   mqtt=pki["mqtt"])
    with open(pki["node"][1]) as f:
        node_key_line = f.read().splitlines()[1]
    with open(pki["mqtt"][1]) as f:
        mqtt_key_line = f.read().splitlines()[1]
    seal_all(n)

    n.start()
    st = n.wait_ready(30)
    node_id = st["node_id"]

    # gRPC over mutual TLS with the sealed node.key, the opened token as
    # the authorization metadata
    reg = m.wait_call("RegisterNode", timeout=10)
    assert pair_to_hex(reg.request.node_id) == node_id
    assert reg.extra["peer_cn"] == "node-client"
    assert reg.authorization == TOKEN
    # MQTT over TLS with the sealed mqtt.key (require_certificate)
    m.wait_message("manager/set_system_summary", timeout=15,
                   pred=lambda r: r.request is not None
                   and pair_to_hex(r.request.node_id) == node_id)
    assert "as %s" % node_id in broker.log()
    log = n.log()
    assert ("TLS to the manager: system CA roots and ca.crt, client certificate node.crt "
            "(key sealed in node.key.sbox)") in log, log
    assert ("TLS to the broker 127.0.0.1:%d: CA from ca.crt, client certificate "
            "mqtt.crt (key sealed in mqtt.key.sbox)" % broker.port) in log, log

    # the token: not in status JSON, config show, any process's argv, the
    # daemons' environment
    r = ok(mantactl("status", "--json", "-c", n.config), "status")
    assert TOKEN not in r.stdout and TOKEN not in r.stderr
    r = ok(mantactl("config", "show", "-c", n.config), "config show")
    assert TOKEN not in r.stdout
    assert 'secured_token = "sbox:***"' in r.stdout, r.stdout
    with open(os.path.join(n.state_dir, "secret.key")) as f:
        key_hex = f.read().strip()
    pids = n.pids()
    assert set(nodelib.DAEMONS) <= set(pids), pids
    for name, pid in pids.items():
        env = proc_read(pid, "environ")
        assert env, "no environ for %s (%d)" % (name, pid)
        assert TOKEN.encode() not in env, "token in the environment of %s" % name
        assert key_hex.encode() not in env
        # the daemons are started with -c FILE -r 3 only (after valgrind's
        # own arguments under MANTA_TEST_VALGRIND)
        argv = nodelib.proc_cmdline(pid)
        if name != "mantactl":
            assert argv[-5].endswith("/" + name) and \
                argv[-4:] == ["-c", n.config, "-r", "3"], argv
    for d in os.listdir("/proc"):
        if d.isdigit():
            cmd = proc_read(int(d), "cmdline")
            assert TOKEN.encode() not in cmd, "token in argv of pid %s: %r" % (d, cmd)
            assert key_hex.encode() not in cmd

    # a command round trip still works, then a clean stop
    m.collect_information(node_id, "set_node_status")
    m.wait_call("SetNodeStatus", timeout=10)
    ok(n.stop(), "stop")
    # every daemon exited by itself (mantad-light drops the key before its
    # seccomp filter: freeing locked memory takes munlock)
    assert "killed by signal" not in n.log(), n.log_tail(30)

    # at rest, nothing of the instance holds the token or a private key in
    # the clear: logs, config, databases, audit trail, cert folder
    for p in all_files(n.dir):
        for needle in (TOKEN, node_key_line, mqtt_key_line, key_hex):
            if needle == key_hex and p.endswith("secret.key"):
                continue
            assert not file_has(p, needle), "%s holds a secret in the clear" % p


def test_wrong_key_refuses_start(tmp_path):
    """A key that did not seal the token: `mantactl start` and `config
    check` exit 1 naming file, line and key; nothing is started; neither
    the token nor the key is printed."""
    n = nodelib.Node(nodelib.free_port(), token=TOKEN, dir=str(tmp_path))
    try:
        ok(mantactl("secret", "init", "-c", n.config), "secret init")
        ok(mantactl("secret", "seal-token", "-w", "-c", n.config), "seal-token")
        ok(mantactl("config", "check", "-c", n.config), "config check")
        with open(n.config) as f:
            lines = f.read().splitlines()
        line = 1 + next(i for i, t in enumerate(lines) if t.startswith("secured_token"))
        key = os.path.join(n.state_dir, "secret.key")
        os.unlink(key)
        ok(mantactl("secret", "init", "-c", n.config), "secret init (another key)")
        with open(key) as f:
            key_hex = f.read().strip()
        try:
            r = mantactl("start", "-c", n.config, timeout=15)
        except subprocess.TimeoutExpired:
            r = None
        left = nodelib.procs_with_arg(n.config)
        assert r is not None, "mantactl start with the wrong key did not exit"
        assert r.returncode == 1, (r.returncode, r.stderr)
        want = "%s:%d: identity.secured_token: " % (n.config, line)
        assert want in r.stderr, r.stderr
        assert "another key sealed it" in r.stderr, r.stderr
        assert TOKEN not in r.stderr + r.stdout
        assert key_hex not in r.stderr + r.stdout
        assert not left, "processes started with the wrong key: %r" % (left,)
        r = mantactl("config", "check", "-c", n.config)
        assert r.returncode == 1 and want in r.stderr, r.stderr

        # the key from the environment instead: wrong again, then right
        env = dict(os.environ, MANTA_SECRET_KEY="00" * 32)
        r = mantactl("config", "check", "-c", n.config, env=env)
        assert r.returncode == 1 and "MANTA_SECRET_KEY" in r.stderr, r.stderr

        # a key file that others may read is refused, whatever it holds
        os.chmod(key, 0o444)
        r = mantactl("config", "check", "-c", n.config)
        assert r.returncode == 1, r.stderr
        assert "security.secret_key_file" in r.stderr and "chmod 0400" in r.stderr, r.stderr
    finally:
        n.cleanup(remove=False)


def test_sealed_key_file_wrong_key(tmp_path):
    """A plain token, node.key.sbox sealed with another key: refused at
    load naming security.cert_folder and the file."""
    n = nodelib.Node(nodelib.free_port(), token=TOKEN, dir=str(tmp_path),
                     overrides={"security": {"use_tls": True}})
    (tmp_path / "ca").mkdir()
    ca = nodelib.TestCA(dir=str(tmp_path / "ca"))
    try:
        certs = n.sections["security"]["cert_folder"]
        ca.cert_folder(certs, node=ca.client("node"))
        ok(mantactl("secret", "init", "-c", n.config), "secret init")
        ok(mantactl("secret", "seal-key", "-c", n.config, os.path.join(certs, "node.key")),
           "seal-key")
        ok(mantactl("config", "check", "-c", n.config), "config check")
        os.unlink(os.path.join(n.state_dir, "secret.key"))
        ok(mantactl("secret", "init", "-c", n.config), "secret init (another key)")
        r = mantactl("config", "check", "-c", n.config)
        assert r.returncode == 1, r.stderr
        assert "security.cert_folder" in r.stderr and "node.key.sbox" in r.stderr, r.stderr
    finally:
        n.cleanup(remove=False)


def test_refusals_explained_with_sealed_keys(request, make_node):
    """The handshakes of our own that say why a certificate was refused
    (tlsprobe.h) open node.key.sbox and mqtt.key.sbox too: a manager and
    then a broker with a certificate from another CA are named as such, not
    as "unable to use node.crt and its key"."""
    ca, other = nodelib.TestCA(), nodelib.TestCA("other-ca")
    request.addfinalizer(ca.cleanup)
    request.addfinalizer(other.cleanup)
    words = r"unable to get local issuer certificate \(subject /CN=localhost, issuer /CN=other-ca, "

    def sealed_node(port):
        n = make_node(port, token=TOKEN, overrides={"security": {"use_tls": True}})
        ca.cert_folder(n.sections["security"]["cert_folder"], node=ca.client("node"),
                       mqtt=ca.client("mqtt"))
        seal_all(n)
        return n

    # the manager's certificate
    bad = other.server("other")
    m = nodelib.tls_manager(request, bad, ca=ca.crt, token=TOKEN,
                            registration_broker_port=nodelib.free_port())
    n = sealed_node(m.grpc_port).start()
    nodelib.wait_log(n, r"mantad-register: warning: manager 127\.0\.0\.1:%d: IsAvailable: TLS: "
             r"the manager's certificate is refused: %s" % (m.grpc_port, words))
    assert "its key" not in n.log()
    n.stop()

    # the broker's certificate
    srv = ca.server("server")
    broker = nodelib.tls_broker(request, ca.crt, bad[0], bad[1])
    m2 = nodelib.tls_manager(request, srv, ca=ca.crt, token=TOKEN,
                             registration_broker_port=broker.port)
    n2 = sealed_node(m2.grpc_port).start()
    nodelib.wait_log(n2, r"mantad-beat: warning: TLS to 127\.0\.0\.1:%d: the broker's certificate "
             r"is refused: %s" % (broker.port, words))
    assert "its key" not in n2.log()
