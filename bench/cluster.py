#!/usr/bin/python3
"""make bench-cluster: many node instances on one host (issue 14).

`mantactl cluster start N` (BENCH_CLUSTER_N, default 200) from one template
at mqtt.ping_interval 1, against one mosquitto and the development
manager; printed beside the targets, never asserted:

- how long until every instance has registered (distinct node ids);
- heartbeats on time over BENCH_CLUSTER_WINDOW_S (default 60) seconds: a
  heartbeat is on time when it comes at most 1.5 intervals after the
  instance's previous one; the share is over the heartbeats due
  (instances x window / interval), target >= 99 %;
- memory of every process of every instance (RSS, PSS, Private_Dirty;
  /proc/PID/smaps_rollup) and CPU over the window (schedstat), in total and
  per instance, next to mosquitto's and the dev manager's;
- `mantactl cluster stop` time."""

import glob
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
sys.path.insert(0, HERE)

import nodelib  # noqa: E402
from devmanager import DevManager, pair_to_hex  # noqa: E402
from bench import cpu_ns, smaps  # noqa: E402

N = int(os.environ.get("BENCH_CLUSTER_N", "200"))
WINDOW_S = float(os.environ.get("BENCH_CLUSTER_WINDOW_S", "60"))
INTERVAL = 1


def instance_pids(state_dir):
    """{pid: instance config} of every process of the cluster: each
    supervisor and daemon has its instance's config path in its argv."""
    out = {}
    for cfg in glob.glob(os.path.join(state_dir, "cluster", "*.toml")):
        for pid, _ in nodelib.procs_with_arg(cfg):
            out[pid] = cfg
    return out


def on_time(mgr, ids, t0, t1):
    by = {}
    for h in mgr.heartbeats:
        if h.request is None:
            continue
        by.setdefault(pair_to_hex(h.request.node_id), []).append(h.time)
    good = 0
    due_one = (t1 - t0) / INTERVAL
    for i in ids:
        times = sorted(by.get(i, []))
        prev = None
        n = 0
        for t in times:
            if t0 <= t < t1 and prev is not None and t - prev <= 1.5 * INTERVAL:
                n += 1
            prev = t
        # A window of 60.0 s can hold 61 heartbeats: one instance counts
        # at most the heartbeats due from it.
        good += min(n, due_one)
    return good, len(ids) * due_one


def main():
    broker = nodelib.Broker().start()
    mgr = DevManager(broker_port=broker.port).start()
    tmpl = nodelib.Node(mgr.grpc_port, alias="bc", ping_interval=INTERVAL,
                        monitor_interval=30,
                        overrides={"logging": {"level": "WARNING"}})
    try:
        mgr.wait_mqtt(10)
        print("cluster bench: %d instances, ping_interval %d, one mosquitto, the dev manager"
              % (N, INTERVAL))
        t0 = time.monotonic()
        r = nodelib.mantactl("cluster", "start", str(N), "-c", tmpl.config,
                             timeout=60 + 5 * N)
        started = time.monotonic() - t0
        print("  cluster start: %.1f s (%s)" % (started, (r.stdout or r.stderr).strip()))

        def registered():
            return len({pair_to_hex(c.request.node_id) for c in mgr.calls("RegisterNode")
                        if c.request is not None})
        try:
            nodelib.wait_for(lambda: registered() >= N, 120 + N, "%d registrations" % N,
                             interval=0.5)
        except AssertionError:
            pass
        ids = {pair_to_hex(c.request.node_id) for c in mgr.calls("RegisterNode")
               if c.request is not None}
        print("  registered: %d of %d distinct node ids, %.1f s after the start"
              " (target: all)" % (len(ids), N, time.monotonic() - t0))
        # Every instance connected to the broker before the window opens.
        nodelib.wait_for(lambda: len({pair_to_hex(h.request.node_id)
                                      for h in mgr.heartbeats[-5 * N:]
                                      if h.request is not None}) >= len(ids),
                         120, "heartbeats from every instance", interval=0.5)
        pids = instance_pids(tmpl.state_dir)
        harness = {"mosquitto": broker.proc.pid, "dev manager": os.getpid()}
        c0 = {p: cpu_ns(p) for p in pids}
        h0 = {n: cpu_ns(p) for n, p in harness.items()}
        w0 = time.monotonic()
        time.sleep(WINDOW_S)        # the measurement window
        w1 = time.monotonic()
        c1 = {p: cpu_ns(p) for p in pids}
        h1 = {n: cpu_ns(p) for n, p in harness.items()}
        good, due = on_time(mgr, ids, w0, w1)
        pct = 100.0 * good / due if due else 0
        print("  heartbeats on time over %.0f s: %d of %.0f due = %.2f %%   target >= 99 %%   %s"
              % (w1 - w0, good, due, pct, "met" if pct >= 99 else "NOT met"))
        mem = {"Rss": 0, "Pss": 0, "Private_Dirty": 0, "Threads": 0}
        for p in pids:
            try:
                m = smaps(p)
            except OSError:
                continue
            for k in mem:
                mem[k] += m.get(k, 0)
        cpu = sum(c1[p] - c0[p] for p in pids) / 1e9 / (w1 - w0) * 100
        n = max(len(ids), 1)
        print("  %d processes, %d threads" % (len(pids), mem["Threads"]))
        print("  memory total: RSS %.0f MB, PSS %.0f MB, Private_Dirty %.0f MB"
              % (mem["Rss"] / 1024, mem["Pss"] / 1024, mem["Private_Dirty"] / 1024))
        print("  memory per instance: PSS %.1f MB, Private_Dirty %.1f MB"
              % (mem["Pss"] / 1024 / n, mem["Private_Dirty"] / 1024 / n))
        print("  CPU: %.1f %% of a core in total, %.3f %% per instance"
              % (cpu, cpu / n))
        print("  harness: mosquitto %.1f %%, dev manager (this process) %.1f %% of a core"
              % tuple((h1[k] - h0[k]) / 1e9 / (w1 - w0) * 100
                      for k in ("mosquitto", "dev manager")))
        t0 = time.monotonic()
        r = nodelib.mantactl("cluster", "stop", "-c", tmpl.config, timeout=120 + 2 * N)
        print("  cluster stop: %.1f s (%s)" % (time.monotonic() - t0,
                                               (r.stdout or r.stderr).strip()))
    finally:
        nodelib.mantactl("cluster", "stop", "-c", tmpl.config, timeout=120 + 2 * N)
        for p in instance_pids(tmpl.state_dir):
            try:
                os.kill(p, 9)
            except OSError:
                pass
        tmpl.cleanup()
        mgr.stop()
        broker.cleanup()


if __name__ == "__main__":
    main()
