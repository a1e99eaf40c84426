#!/usr/bin/python3
"""make bench: figures for the foundation, printed, never asserted.

- start -> registered latency: from `mantactl start` to the dev manager's
  RegisterNode, median of BENCH_STARTS runs (default 5);
- idle memory of the supervisor and each daemon from /proc/PID/smaps_rollup
  (RSS, PSS, Private_Dirty), and the totals;
- idle CPU of the whole suite over BENCH_IDLE_S seconds (default 60) at
  mqtt.ping_interval 1 (per-thread schedstat), in % of one core.

Other bench scripts in bench/ named *_bench.py run after this one."""

import glob
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

import nodelib  # noqa: E402
from devmanager import DevManager  # noqa: E402

STARTS = int(os.environ.get("BENCH_STARTS", "5"))
IDLE_S = float(os.environ.get("BENCH_IDLE_S", "60"))


def smaps(pid):
    out = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[0].endswith(":") and parts[2] == "kB":
                out[parts[0][:-1]] = int(parts[1])
    return out


def cpu_ns(pid):
    """CPU time of every thread of pid in ns (schedstat: finer than the
    10 ms ticks of /proc/PID/stat, which idle daemons barely reach)."""
    total = 0
    for t in glob.glob("/proc/%d/task/*/schedstat" % pid):
        try:
            with open(t) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass        # a thread that ended meanwhile
    return total


def node_pids(node):
    pids = {"mantactl (supervisor)": node.supervisor_pid}
    _, st = node.status()
    for d in st["daemons"]:
        if d["pid"]:
            pids[d["name"]] = d["pid"]
    return pids


def main():
    broker = nodelib.Broker().start()
    mgr = DevManager(broker_port=broker.port).start()
    try:
        latencies = []
        for i in range(STARTS):
            node = nodelib.Node(mgr.grpc_port, alias="bench-node-%d" % i,
                                ping_interval=1, monitor_interval=30)
            try:
                before = len(mgr.calls("RegisterNode"))
                t0 = time.monotonic()
                node.start(wait=False)
                nodelib.wait_for(lambda: len(mgr.calls("RegisterNode")) > before,
                                 30, "RegisterNode")
                latencies.append((mgr.calls("RegisterNode")[-1].time - t0) * 1000)
                if i < STARTS - 1:
                    node.stop()
                    node.cleanup()
            except Exception:
                node.cleanup()
                raise
        print("start -> registered: median %.1f ms (min %.1f, max %.1f, %d starts)"
              % (statistics.median(latencies), min(latencies), max(latencies), STARTS))

        # The last node stays up: let it settle, then measure it idle.
        node.wait_online(30)
        nodelib.wait_for(lambda: len(mgr.heartbeats) >= 5, 30, "5 heartbeats")
        subprocess.run(["sync"])
        pids = node_pids(node)
        t0 = time.monotonic()
        c0 = {n: cpu_ns(p) for n, p in pids.items()}
        hb0 = len(mgr.heartbeats)
        time.sleep(IDLE_S)          # a measurement window, not a wait for a condition
        c1 = {n: cpu_ns(p) for n, p in pids.items()}
        hb1 = len(mgr.heartbeats)
        elapsed = time.monotonic() - t0

        print("\nidle memory (kB, /proc/PID/smaps_rollup):")
        print("  %-24s %8s %8s %14s" % ("process", "RSS", "PSS", "Private_Dirty"))
        tot = {"Rss": 0, "Pss": 0, "Private_Dirty": 0}
        for name, pid in pids.items():
            m = smaps(pid)
            for k in tot:
                tot[k] += m.get(k, 0)
            print("  %-24s %8d %8d %14d" % (name, m.get("Rss", 0), m.get("Pss", 0),
                                           m.get("Private_Dirty", 0)))
        print("  %-24s %8d %8d %14d" % ("total", tot["Rss"], tot["Pss"],
                                       tot["Private_Dirty"]))
        print("\nidle CPU over %.0f s at ping_interval 1 (%d heartbeats):"
              % (elapsed, hb1 - hb0))
        total = 0.0
        for name in pids:
            pct = 100.0 * (c1[name] - c0[name]) / 1e9 / elapsed
            total += pct
            print("  %-24s %6.3f %% of a core" % (name, pct))
        print("  %-24s %6.3f %% of a core" % ("total", total))
        node.stop()
        node.cleanup()
    finally:
        mgr.stop()
        broker.cleanup()
    for extra in sorted(glob.glob(os.path.join(HERE, "*_bench.py"))):
        print("\n== %s" % os.path.basename(extra))
        subprocess.run([sys.executable, extra], check=False)


if __name__ == "__main__":
    main()
