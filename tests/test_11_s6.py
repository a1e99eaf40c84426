"""One instance under a real s6-svscan, from the service directories of
contrib/s6 (copied into a temp scandir, with a conf beside each run script
naming our binaries, config and log dir): the daemons start, signal
readiness on their notification-fd, register and heartbeat; s6-svscanctl -t
stops everything. A bad config (exit 100) makes finish exit 125, so
s6-supervise stops restarting."""

import os
import shutil
import subprocess
import time

import pytest

import nodelib
from devmanager import pair_to_hex

S6_SRC = os.path.join(nodelib.ROOT, "contrib", "s6")
SVSCAN = "/usr/bin/s6-svscan"


class Scan(object):
    def __init__(self, node, services):
        self.node = node
        self.scandir = os.path.join(node.dir, "svc")
        self.logdir = os.path.join(node.dir, "log")
        self.services = services
        os.makedirs(self.scandir)
        for s in services:
            dst = os.path.join(self.scandir, s)
            shutil.copytree(os.path.join(S6_SRC, s), dst, symlinks=True)
            with open(os.path.join(dst, "conf"), "w") as f:
                f.write("MANTA_BIN=%s\nMANTA_CONFIG=%s\nMANTA_LOGDIR=%s\n"
                        % (nodelib.BIN, node.config, self.logdir))
        self.proc = None

    def start(self):
        out = open(os.path.join(self.node.dir, "s6-svscan.log"), "w")
        self.proc = subprocess.Popen([SVSCAN, self.scandir], stdout=out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        out.close()

    def svstat(self, service, fields="up,wantedup,ready,pid,exitcode"):
        r = nodelib.run(["s6-svstat", "-o", fields,
                         os.path.join(self.scandir, service)], timeout=10)
        if r.returncode != 0:
            return None
        return dict(zip(fields.split(","), r.stdout.split()))

    def logs(self):
        out = []
        for s in self.services:
            p = os.path.join(self.logdir, s, "current")
            try:
                with open(p, errors="replace") as f:
                    out.append("---- %s ----\n%s" % (s, f.read()[-3000:]))
            except OSError:
                out.append("---- %s: no log ----" % s)
        return "\n".join(out)

    def stop(self, timeout=20):
        if self.proc is None or self.proc.poll() is not None:
            return
        nodelib.run(["s6-svscanctl", "-t", self.scandir], timeout=10)
        try:
            self.proc.wait(nodelib.deadline(timeout))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError("s6-svscan still running %d s after s6-svscanctl -t"
                                 % timeout)

    def cleanup(self):
        try:
            self.stop()
        except AssertionError:
            pass
        # s6-supervise processes left behind (if svscan was killed).
        for pid, _argv in nodelib.procs_with_arg(self.scandir):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass


@pytest.fixture
def scan_of(request):
    for tool in (SVSCAN, "/usr/bin/s6-svstat", "/usr/bin/s6-svscanctl"):
        assert os.access(tool, os.X_OK), "%s missing (make deps)" % tool
    scans = []

    def make(node, services=nodelib.DAEMONS):
        s = Scan(node, services)
        scans.append(s)
        return s
    try:
        yield make
    finally:
        failed = getattr(request.node, "rep_call", None)
        for s in scans:
            if failed is None or failed.failed:
                print(s.logs())
            s.cleanup()


def test_s6(manager, make_node, scan_of):
    for s in nodelib.DAEMONS:
        assert os.path.isfile(os.path.join(S6_SRC, s, "run")), "contrib/s6/%s/run" % s
    n = make_node(manager.grpc_port, alias="s6-node")
    scan = scan_of(n)
    scan.start()
    want = nodelib.b3sum16(b"s6-node")
    try:
        r = manager.wait_call("RegisterNode", timeout=nodelib.deadline(30))
    except AssertionError as e:
        raise AssertionError("%s\n%s" % (e, scan.logs()))
    assert pair_to_hex(r.request.node_id) == want

    # Readiness through notification-fd.
    for s in nodelib.DAEMONS:
        st = nodelib.wait_for(lambda: (lambda d: d if d and d["ready"] == "true"
                                       else None)(scan.svstat(s)),
                              15, "%s ready under s6" % s)
        assert st["up"] == "true" and int(st["pid"]) > 0, st
    pids = n.pids()
    for s in nodelib.DAEMONS:
        assert s in pids, pids
        assert int(scan.svstat(s)["pid"]) == pids[s]

    t0 = time.monotonic()
    nodelib.wait_for(lambda: [h for h in manager.heartbeats if h.time > t0
                              and pair_to_hex(h.request.node_id) == want],
                     15, "a heartbeat from the node under s6")

    # s6 restarts a daemon that dies.
    old = pids["mantad-beat"]
    os.kill(old, 9)
    nodelib.wait_for(lambda: (lambda d: d and d["ready"] == "true"
                              and int(d["pid"]) not in (0, old))(
                                  scan.svstat("mantad-beat")),
                     20, "mantad-beat restarted by s6-supervise")
    t1 = time.monotonic()
    nodelib.wait_for(lambda: [h for h in manager.heartbeats if h.time > t1
                              and pair_to_hex(h.request.node_id) == want],
                     20, "heartbeats after the restart of mantad-beat")

    # Logs went through s6-log.
    cur = os.path.join(scan.logdir, "mantad-register", "current")
    assert os.path.exists(cur) and os.path.getsize(cur) > 0, "no s6-log output"

    scan.stop()
    n.wait_no_process(10)


def test_s6_bad_config_not_restarted(make_node, scan_of):
    n = make_node(nodelib.free_port())
    n.sections["mqtt"]["ping_interval"] = "often"
    n.write_config()
    scan = scan_of(n, ("mantad-res",))
    scan.start()

    def given_up():
        d = scan.svstat("mantad-res")
        return d if d and d["up"] == "false" and d["wantedup"] == "false" else None
    st = nodelib.wait_for(given_up, 15,
                          "s6 giving up on mantad-res after exit 100 (finish: 125)")
    assert st["exitcode"] == "100", st
    assert not n.processes()
    scan.stop()
