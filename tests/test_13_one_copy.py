"""One copy of each daemon per state (issue 15, findings 4 and 7): a second
copy of a daemon on the same config refuses to start and leaves the first
alone; the daemons die with a SIGKILLed supervisor, so that a new start
never runs beside them; a missing daemon program starts nothing."""

import os
import signal

import pytest

import nodelib


def test_second_copy_refused(node):
    st = node.wait_ready()
    before = {d["name"]: d["pid"] for d in st["daemons"]}
    for name in nodelib.DAEMONS:
        r = nodelib.run([os.path.join(nodelib.BIN, name), "-c", node.config],
                        timeout=20)
        assert r.returncode == 1, "second %s: exit %d\n%s" % (name, r.returncode, r.stderr)
        lock = os.path.join(node.state_dir, name[len("mantad-"):] + ".lock")
        assert "another %s (pid %d) holds %s" % (name, before[name], lock) in r.stderr, \
            r.stderr
        # The first keeps its socket: it still answers, through the supervisor's
        # status and directly.
        sock = os.path.join(node.run_dir, name[len("mantad-"):] + ".sock")
        assert os.path.exists(sock), "%s: socket removed by the second copy" % name
    st = node.wait_ready(10)
    assert {d["name"]: d["pid"] for d in st["daemons"]} == before
    assert all(d["restarts"] == 0 for d in st["daemons"]), st["daemons"]
    assert "tasks" in st and st["tasks"] is not None    # exec answered
    for name in nodelib.DAEMONS:
        procs = [p for p, n in node.processes() if n == name]
        assert procs == [before[name]], "%s: %r" % (name, procs)


def test_supervisor_kill9_leaves_no_daemon(node):
    st = node.wait_ready()
    pids = {d["name"]: d["pid"] for d in st["daemons"]}
    assert set(pids) == set(nodelib.DAEMONS)
    os.kill(node.supervisor_pid, signal.SIGKILL)
    node.proc.wait(10)
    nodelib.wait_for(lambda: not any(nodelib.alive(p) for p in pids.values()), 10,
                     "the daemons to die with their supervisor")
    # A new start runs exactly one of each.
    node.proc = None
    node.start()
    st = node.wait_ready(30)
    for name in nodelib.DAEMONS:
        procs = [p for p, n in node.processes() if n == name]
        assert procs == [node.daemon(name, st)["pid"]], "%s: %r" % (name, procs)


def test_supervisor_kill9_daemon_user(manager, make_node):
    """With security.daemon_user the uid switch clears the parent-death
    signal: each daemon sets it again (confine_user_enter)."""
    account = nodelib.daemon_account(nodelib.DAEMON_USER)
    n = make_node(manager.grpc_port,
                  overrides={"security": {"daemon_user": nodelib.DAEMON_USER}})
    os.chmod(n.dir, 0o711)
    os.chmod(n.config, 0o640)
    os.chown(n.config, 0, account.pw_gid)
    n.start()
    st = n.wait_ready(30)
    pids = {d["name"]: d["pid"] for d in st["daemons"]}
    users = {name: os.stat("/proc/%d" % pid).st_uid for name, pid in pids.items()}
    assert users["mantad-beat"] == account.pw_uid, users
    os.kill(n.supervisor_pid, signal.SIGKILL)
    n.proc.wait(10)
    nodelib.wait_for(lambda: not any(nodelib.alive(p) for p in pids.values()), 10,
                     "the daemons running as %s to die with their supervisor"
                     % nodelib.DAEMON_USER)


@pytest.mark.parametrize("missing", ["mantad-exec", "mantad-light"])
@pytest.mark.parametrize("detach", [False, True])
def test_missing_daemon_starts_nothing(manager, make_node, tmp_path, missing, detach):
    n = make_node(manager.grpc_port)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in nodelib.DAEMONS:
        if name != missing:
            os.symlink(os.path.join(nodelib.BIN, name), str(bindir / name))
    env = dict(os.environ, MANTA_BIN_DIR=str(bindir))
    args = ["start", "-c", n.config] + (["-d"] if detach else [])
    r = nodelib.mantactl(*args, timeout=20, env=env)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert missing in r.stderr, r.stderr
    if not detach:
        assert "required" in r.stderr, r.stderr
    assert n.processes() == [], n.processes()
    socks = [f for f in os.listdir(n.run_dir) if f.endswith(".sock")] \
        if os.path.isdir(n.run_dir) else []
    assert socks == [], socks
    assert n.status()[0] == 3
