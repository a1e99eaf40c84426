"""The supervisor: restarts a daemon killed with SIGKILL; refuses a second
start of the same instance; stops everything on SIGTERM."""

import os
import signal

import pytest

import nodelib


@pytest.mark.parametrize("name", nodelib.DAEMONS)
def test_kill9_daemon_restarted(node, name):
    st = node.wait_ready()
    old = node.daemon(name, st)
    assert old["restarts"] == 0 and old["state"] == "up", old
    assert node.pids().get(name) == old["pid"]
    os.kill(old["pid"], signal.SIGKILL)

    def restarted(s):
        d = node.daemon(name, s)
        return d["pid"] != old["pid"] and d["state"] == "up" and d["restarts"] >= 1
    node.wait_status(restarted, 30, "%s restarted" % name)
    assert not nodelib.alive(old["pid"]), "old %s pid %d still there" % (name, old["pid"])
    st = node.wait_ready(30)
    new = node.daemon(name, st)
    assert node.pids().get(name) == new["pid"]
    # The others were left alone.
    for d in st["daemons"]:
        if d["name"] != name:
            assert d["restarts"] == 0, d
    assert node.proc.poll() is None, "supervisor exited"


def test_second_start_refused(node):
    st = node.wait_ready()
    before = {d["name"]: d["pid"] for d in st["daemons"]}
    r = nodelib.mantactl("start", "-c", node.config, timeout=15)
    assert r.returncode != 0, "second start of the same instance exited 0"
    assert r.stderr.strip(), "second start refused without a message"
    st = node.wait_ready(10)
    assert {d["name"]: d["pid"] for d in st["daemons"]} == before
    assert node.proc.poll() is None, "first supervisor exited"
    sup = [pid for pid, name in node.processes() if name == "mantactl"
           and "start" in (nodelib.proc_cmdline(pid) or [])]
    assert sup == [node.proc.pid], "supervisors: %r" % sup


def test_sigterm_stops_everything(node):
    node.wait_ready()
    pids = node.pids()
    for name in nodelib.DAEMONS:
        assert name in pids, pids
    node.terminate(signal.SIGTERM)
    rc = node.wait_exit(15)
    assert rc == 0, "supervisor exit status %d on SIGTERM" % rc
    node.wait_no_process(10)
    for name, pid in pids.items():
        assert not nodelib.alive(pid), "%s (%d) survived" % (name, pid)
    rc, _ = node.status()
    assert rc == 3
    # Nothing left bound in run_dir.
    socks = [f for f in os.listdir(node.run_dir) if f.endswith(".sock")] \
        if os.path.isdir(node.run_dir) else []
    for s in socks:
        import socket
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            c.connect(os.path.join(node.run_dir, s))
            raise AssertionError("%s still accepts connections" % s)
        except OSError:
            pass
        finally:
            c.close()


def _vol_switches(pid):
    with open("/proc/%d/task/%d/status" % (pid, pid)) as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches for %d" % pid)


def test_idle_supervisor_does_not_wake(node):
    """Issue 14: an idle supervisor sleeps until a child, a signal or a
    request needs it (it used to wake every second); so does an idle
    mantad-exec (its log-stream tick woke it every second with nothing
    to stream)."""
    node.wait_ready()
    import time
    pids = {"supervisor": node.proc.pid, "mantad-exec": node.pids()["mantad-exec"]}
    w0 = {n: _vol_switches(p) for n, p in pids.items()}
    time.sleep(3.5)                     # the measurement window
    w1 = {n: _vol_switches(p) for n, p in pids.items()}
    for n in pids:
        assert w1[n] - w0[n] <= 1, "%s main thread woke %d times in 3.5 s" % (
            n, w1[n] - w0[n])
    # Still event-driven: a killed daemon is restarted at once.
    pid = node.pids()["mantad-res"]
    os.kill(pid, signal.SIGKILL)
    node.wait_status(lambda s: node.daemon("mantad-res", s)["pid"] != pid
                     and node.daemon("mantad-res", s)["state"] == "up", 15,
                     "mantad-res restarted")
