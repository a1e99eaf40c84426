#!/usr/bin/python3
"""The idle part of make bench alone, in about a minute (issue 14): a node
without a workload at mqtt.ping_interval 1 (resources.monitor_interval
BENCH_MONITOR_S, default 30, as make bench), then over BENCH_IDLE_S
(default 30) seconds: CPU % of a core and wake-ups (voluntary context
switches) per second of every process and of every thread, and the CPU
time per heartbeat of mantad-beat and mantad-res. CPU time is what counts
here, not latency: it holds on a machine shared with other work.

With BENCH_BASE_BIN=DIR (a bin/ of another build, e.g. /work/main/bin),
a second node runs from there over the same window, with its own broker
and manager, and is reported first: a before/after on the same load.

    /usr/bin/python3 bench/idle.py"""

import glob
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
sys.path.insert(0, HERE)

import nodelib  # noqa: E402
from devmanager import DevManager  # noqa: E402
from bench import node_pids  # noqa: E402

IDLE_S = float(os.environ.get("BENCH_IDLE_S", "30"))
MONITOR_S = int(os.environ.get("BENCH_MONITOR_S", "30"))


def threads(pid):
    """{tid: (comm, cpu ns, voluntary switches)} of pid's threads."""
    out = {}
    for d in glob.glob("/proc/%d/task/*" % pid):
        try:
            with open(d + "/comm") as f:
                comm = f.read().strip()
            with open(d + "/schedstat") as f:
                ns = int(f.read().split()[0])
            vol = 0
            with open(d + "/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        vol = int(line.split()[1])
            out[int(os.path.basename(d))] = (comm, ns, vol)
        except (OSError, ValueError, IndexError):
            pass        # a thread that ended meanwhile
    return out


def report(pids, t0, t1, elapsed, hbs):
    """Prints the table; returns {process: cpu ns} over the window."""
    tot_ns = {}
    print("idle, ping_interval 1, %.0f s, %d heartbeats:" % (elapsed, hbs))
    print("  %-16s %-16s %9s %9s" % ("process", "thread", "CPU %", "wakes/s"))
    all_pct = all_w = 0.0
    for name, pid in pids.items():
        a, b = t0[name], t1[name]
        rows = []
        for tid, (comm, ns, vol) in b.items():
            ns0, vol0 = (a[tid][1], a[tid][2]) if tid in a else (0, 0)
            rows.append((comm, ns - ns0, vol - vol0))
        pns = sum(r[1] for r in rows)
        pw = sum(r[2] for r in rows)
        tot_ns[name] = pns
        all_pct += 100.0 * pns / 1e9 / elapsed
        all_w += pw / elapsed
        print("  %-16s %-16s %9.4f %9.1f" % (name, "(all)", 100.0 * pns / 1e9 / elapsed,
                                             pw / elapsed))
        for comm, ns, w in sorted(rows, key=lambda r: -r[1]):
            if ns or w:
                print("  %-16s %-16s %9.4f %9.1f" % ("", comm, 100.0 * ns / 1e9 / elapsed,
                                                     w / elapsed))
    print("  %-16s %-16s %9.4f %9.1f" % ("total", "", all_pct, all_w))
    n = max(hbs, 1)
    print("  heartbeat cost: beat %.0f us + res %.0f us = %.0f us of CPU per heartbeat"
          % (tot_ns["mantad-beat"] / 1e3 / n, tot_ns["mantad-res"] / 1e3 / n,
             (tot_ns["mantad-beat"] + tot_ns["mantad-res"]) / 1e3 / n))
    return tot_ns


class BinNode(nodelib.Node):
    """A node whose mantactl (and so its daemons, found beside it) comes
    from another bin/."""

    def __init__(self, bindir, *a, **kw):
        self.bindir = bindir
        super().__init__(*a, **kw)

    def start_cmd(self):
        return [os.path.join(self.bindir, "mantactl")] + super().start_cmd()[1:]


def start_node(label, bindir):
    broker = nodelib.Broker().start()
    mgr = DevManager(broker_port=broker.port).start()
    mgr.wait_mqtt(10)
    kw = dict(alias="idle-bench", ping_interval=1, monitor_interval=MONITOR_S)
    node = BinNode(bindir, mgr.grpc_port, **kw) if bindir else nodelib.Node(
        mgr.grpc_port, **kw)
    run = {"label": label, "broker": broker, "mgr": mgr, "node": node}
    node.start()
    node.wait_online(30)
    return run


def main():
    runs = []
    try:
        base = os.environ.get("BENCH_BASE_BIN")
        if base:
            runs.append(start_node("baseline: %s" % base, base))
        runs.append(start_node("this build: %s" % nodelib.BIN, None))
        for r in runs:
            hb = len(r["mgr"].heartbeats)
            nodelib.wait_for(lambda: len(r["mgr"].heartbeats) >= hb + 5, 30, "5 heartbeats")
            r["pids"] = node_pids(r["node"])
        for r in runs:
            r["t0"] = {n: threads(p) for n, p in r["pids"].items()}
            r["hb0"] = len(r["mgr"].heartbeats)
        s0 = time.monotonic()
        end = s0 + IDLE_S
        nodelib.wait_for(lambda: time.monotonic() >= end, IDLE_S + 5, "the window",
                         interval=0.5)
        elapsed = time.monotonic() - s0
        for r in runs:
            r["t1"] = {n: threads(p) for n, p in r["pids"].items()}
            r["hb1"] = len(r["mgr"].heartbeats)
        for r in runs:
            print("== %s" % r["label"])
            report(r["pids"], r["t0"], r["t1"], elapsed, r["hb1"] - r["hb0"])
    finally:
        for r in runs:
            r["node"].stop()
            r["node"].cleanup()
            r["mgr"].stop()
            r["broker"].cleanup()


if __name__ == "__main__":
    main()
