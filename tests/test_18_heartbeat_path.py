"""Issue 14, the heartbeat's path in mantad-beat: the main loop asks
mantad-res for the Snapshot itself, on a socket it keeps connected, and
hands the heartbeat to paho; no worker thread wakes for it (a hand-off to
a worker and back cost a few wake-ups and context switches every second).
A mantad-res that goes away and comes back is asked again: heartbeats
resume."""

import glob
import os
import signal
import time

import nodelib
from devmanager import pair_to_hex


def _worker_switches(pid):
    """Voluntary context switches of mantad-beat's own threads but the
    main one (its workers: paho's and ZeroMQ's have names of their own)."""
    n = 0
    for d in glob.glob("/proc/%d/task/*" % pid):
        if int(os.path.basename(d)) == pid:
            continue
        try:
            with open(d + "/comm") as f:
                if f.read().strip() != "mantad-beat":
                    continue
            with open(d + "/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        n += int(line.split()[1])
        except OSError:
            pass
    return n


def _heartbeats(manager, node_id, after):
    return [r for r in manager.heartbeats if r.time >= after and r.request is not None
            and pair_to_hex(r.request.node_id) == node_id]


def test_no_worker_wakes_for_heartbeats(manager, node):
    node_id = node.wait_online()["node_id"]
    nodelib.wait_for(lambda: len(_heartbeats(manager, node_id, 0)) >= 2, 15,
                     "2 heartbeats")
    pid = node.pids()["mantad-beat"]
    w0 = _worker_switches(pid)
    t0 = time.monotonic()
    hb = nodelib.wait_for(lambda: len(_heartbeats(manager, node_id, t0)) >= 4
                          and _heartbeats(manager, node_id, t0), 15, "4 heartbeats")
    w = _worker_switches(pid) - w0
    assert len(hb) >= 4
    assert w <= 1, "mantad-beat's workers woke %d times for %d heartbeats" % (w, len(hb))


def test_heartbeats_resume_after_res_restart(manager, node):
    st = node.wait_online()
    node_id = st["node_id"]
    nodelib.wait_for(lambda: _heartbeats(manager, node_id, 0), 15, "a heartbeat")
    old = node.daemon("mantad-res", st)["pid"]
    os.kill(old, signal.SIGKILL)
    node.wait_status(lambda s: node.daemon("mantad-res", s)["pid"] != old
                     and node.daemon("mantad-res", s)["state"] == "up", 30,
                     "mantad-res restarted")
    t0 = time.monotonic()
    hb = nodelib.wait_for(lambda: len(_heartbeats(manager, node_id, t0)) >= 3
                          and _heartbeats(manager, node_id, t0), 20,
                          "3 heartbeats after mantad-res restarted")
    assert hb[-1].request.metrics_snapshot.memory.total_bytes > 0
    # And while res was away, beat kept its loop: it answers status.
    rc, s = node.status()
    assert rc == 0 and s["mqtt"]["connected"], s
