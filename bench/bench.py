#!/usr/bin/python3
"""make bench: figures for the node, printed beside the targets of issue
14, never asserted.

- start -> registered latency: from `mantactl start` to the dev manager's
  RegisterNode, median of BENCH_STARTS runs (default 5);
- every process of the node (the supervisor and the five daemons): RSS,
  PSS, Private_Dirty (/proc/PID/smaps_rollup) and threads once started and
  idle, then again after a fixed workload and BENCH_SETTLE_S (default 60)
  seconds of idle; CPU % of a core over BENCH_IDLE_S (default 30) seconds
  of that idle (per-thread schedstat), at mqtt.ping_interval 1;
- the workload (issue 14): 100 tasks (one printing 1000 log lines, 10
  Python Light clients when tests/images/python.sh provides an image here,
  else shell tasks, said so), a 100 MB GetBinaryData stream from the
  host, a broker restart;
- CPU per heartbeat: mantad-beat's and mantad-res's CPU time in the idle
  window over the heartbeats published in it, in microseconds;
- where the bytes stay (Private_Dirty by mapping, from /proc/PID/smaps)
  and where the wake-ups are (voluntary context switches by thread).

Other bench scripts in bench/ named *_bench.py run after this one, unless
BENCH_EXTRAS=0 (launch
against a bare runtime, throughput, the Light service). `make
bench-cluster` (bench/cluster.py) runs many instances on one host."""

import glob
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

import nodelib  # noqa: E402
from devmanager import DevManager, pair_to_hex  # noqa: E402

STARTS = int(os.environ.get("BENCH_STARTS", "5"))
IDLE_S = float(os.environ.get("BENCH_IDLE_S", "30"))
SETTLE_S = float(os.environ.get("BENCH_SETTLE_S", "60"))
NTASKS = int(os.environ.get("BENCH_TASKS", "100"))
STREAM_MB = int(os.environ.get("BENCH_STREAM_MB", "100"))
LOG_LINES = 1000
PY_CLIENTS = 10

# Issue 14's targets.
T_PSS_KB = 10 * 1024
T_DIRTY_KB = 5 * 1024
T_GROWTH_KB = 1024
T_CPU_PCT = 0.05

WAITER = "#!/bin/sh\ntrap 'exit 0' USR1\nwhile :; do sleep 0.05; done\n"
LOGGER = ("#!/bin/sh\ni=0\nwhile [ $i -lt %d ]; do echo \"log line $i of the bench\";"
          " i=$((i+1)); done\n" % LOG_LINES)
PY_CLIENT = """
import os
import grpc
from node import light_service_pb2 as L
from common import system_pb2 as S


def pair(h):
    v = int(h, 16)
    return S.PairId(head=v >> 64, tail=v & ((1 << 64) - 1))


ch = grpc.insecure_channel("%s:%s" % (os.environ["RPC_HOST"], os.environ["RPC_PORT"]))
f = ch.unary_stream("/node.light_service.Local/GetBinaryData",
                    request_serializer=lambda m: m.SerializeToString(),
                    response_deserializer=lambda b: b)
req = L.DataRequest(swarm_id=pair(os.environ["SWARM_ID"]), task_id=pair(os.environ["TASK_ID"]),
                    name="small")
n = sum(len(m) for m in f(req, metadata=[("manta-task-token", os.environ["MANTA_TASK_TOKEN"])]))
print("read", n)
"""

def smaps(pid):
    out = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[0].endswith(":") and parts[2] == "kB":
                out[parts[0][:-1]] = int(parts[1])
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Threads:"):
                out["Threads"] = int(line.split()[1])
    return out


def dirty_by_mapping(pid, top=4):
    """[(kB, name)] of the largest Private_Dirty by mapping name ([heap],
    [anon], [stack], a library's base name)."""
    by = {}
    name = None
    try:
        with open("/proc/%d/smaps" % pid) as f:
            for line in f:
                parts = line.split()
                if not parts:
                    continue
                if not parts[0].endswith(":"):      # a mapping's header line
                    name = os.path.basename(parts[5]) if len(parts) > 5 else "[anon]"
                elif parts[0] == "Private_Dirty:":
                    by[name] = by.get(name, 0) + int(parts[1])
    except OSError:
        return []
    return sorted(((kb, n) for n, kb in by.items() if kb > 0), reverse=True)[:top]


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


def wakeups(pid):
    """{thread name: voluntary context switches} of pid's threads."""
    out = {}
    for d in glob.glob("/proc/%d/task/*" % pid):
        try:
            with open(d + "/comm") as f:
                comm = f.read().strip()
            with open(d + "/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        out[comm] = out.get(comm, 0) + int(line.split()[1])
        except OSError:
            pass
    return out


def thread_cpu(pid):
    """{thread name: CPU ns} of pid's threads (schedstat), summed by name."""
    out = {}
    for d in glob.glob("/proc/%d/task/*" % pid):
        try:
            with open(d + "/comm") as f:
                comm = f.read().strip()
            with open(d + "/schedstat") as f:
                out[comm] = out.get(comm, 0) + int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return out


def ppid(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def node_pids(node):
    """Every process of the node: the supervisor, its daemons, and
    mantad-exec's launcher (its child, `mantad-exec --launcher`)."""
    pids = {"supervisor": node.supervisor_pid}
    _, st = node.status()
    for d in st["daemons"]:
        if d["pid"]:
            pids[d["name"]] = d["pid"]
    ex = pids.get("mantad-exec")
    for pid, argv in nodelib.procs_with_arg("--launcher"):
        if ex and ppid(pid) == ex:
            pids["exec-launcher"] = pid
    return pids


def start_latency(mgr):
    latencies = []
    for i in range(STARTS):
        node = nodelib.Node(mgr.grpc_port, alias="bench-start-%d" % i,
                            ping_interval=1, monitor_interval=30)
        try:
            before = len(mgr.calls("RegisterNode"))
            t0 = time.monotonic()
            node.start(wait=False)
            nodelib.wait_for(lambda: len(mgr.calls("RegisterNode")) > before,
                             30, "RegisterNode")
            latencies.append((mgr.calls("RegisterNode")[-1].time - t0) * 1000)
        finally:
            node.stop()
            node.cleanup()
    print("start -> registered: median %.1f ms (min %.1f, max %.1f, %d starts)"
          % (statistics.median(latencies), min(latencies), max(latencies), STARTS))


def python_image():
    """The Python rootfs of tests/images/python.sh when it is there or can
    be made quickly here; else (None, why)."""
    try:
        root = nodelib.python_rootfs(timeout=float(os.environ.get("BENCH_PY_TIMEOUT", "30")))
    except Exception as e:      # noqa: BLE001 (a bench reports, never fails on this)
        return None, str(e)
    if root is None:
        return None, "tests/images/python.sh provides no image here (debootstrap)"
    return root, ""


def running_pid(node, swarm, task):
    # exec's bundle: <state_dir>/tasks/<swarm>-<task>-<iteration>-<circular>
    # (keyed on the swarm too since one task id may run in two swarms).
    d = os.path.join(node.state_dir, "tasks", "%s-%s-0-0" % (swarm, task))

    def ready():
        try:
            with open(os.path.join(d, "init.pid")) as f:
                return int(f.read())
        except (OSError, ValueError):
            return None
    return nodelib.wait_for(ready, 30, "task %s running" % task)


def stream(node, swarm, task):
    """GetBinaryData of the "big" dataset as task (ids, no token): bytes
    and MB/s."""
    import grpc
    from node import light_service_pb2 as L
    with open(os.path.join(node.run_dir, "light.port")) as f:
        port = int(f.read())
    ch = grpc.insecure_channel("127.0.0.1:%d" % port)
    f = ch.unary_stream("/node.light_service.Local/GetBinaryData",
                        request_serializer=lambda m: m.SerializeToString(),
                        response_deserializer=lambda b: b)
    t0 = time.monotonic()
    n = sum(len(m) for m in f(L.DataRequest(swarm_id=nodelib.pair(swarm),
                                            task_id=nodelib.pair(task), name="big"),
                              timeout=120))
    ch.close()
    return n, n / (time.monotonic() - t0) / 1e6


def workload(mgr, broker, node, pyroot):
    """Issue 14's fixed workload; prints what it did."""
    from common import tasks_pb2 as tasks_pb
    t0 = time.monotonic()
    swarm = nodelib.random_hex()
    tasks = []
    waiter = nodelib.random_hex()
    mgr.deploy_task(node.node_id, nodelib.task_msg(waiter, WAITER, swarm_hex=swarm))
    pid = running_pid(node, swarm, waiter)
    n, rate = stream(node, swarm, waiter)

    def waiter_ended():
        # SIGUSR1 until it ends: a signal before the shell's trap line is
        # ignored by pid 1 of the container.
        try:
            os.kill(pid, 10)
        except ProcessLookupError:
            pass
        return any(u.request is not None and u.request.task_status == tasks_pb.COMPLETED
                   and pair_to_hex(u.request.task_id) == waiter
                   for u in mgr.task_updates)
    nodelib.wait_for(waiter_ended, 60, "the waiter task to end", interval=0.2)
    tasks.append(waiter)
    logger = nodelib.random_hex()
    mgr.deploy_task(node.node_id, nodelib.task_msg(logger, LOGGER, swarm_hex=swarm))
    tasks.append(logger)
    npy = PY_CLIENTS if pyroot else 0
    pay = nodelib.zipapp(PY_CLIENT) if npy else None
    for i in range(NTASKS - 2):
        t = nodelib.random_hex()
        if i < npy:
            mgr.deploy_task(node.node_id, nodelib.task_msg(t, pay, swarm_hex=swarm,
                                                           image="python"))
        else:
            mgr.deploy_task(node.node_id, nodelib.task_msg(t, "#!/bin/sh\ntrue\n",
                                                           swarm_hex=swarm))
        tasks.append(t)
    ends = {}
    for t in tasks:
        u = nodelib.wait_task_status(mgr, t, (tasks_pb.COMPLETED, tasks_pb.FAILED,
                                              tasks_pb.STOPPED), timeout=600)
        ends[u.task_status] = ends.get(u.task_status, 0) + 1
    lines = nodelib.wait_for(lambda: nodelib.task_log_text(mgr, logger).count("\n")
                             >= LOG_LINES and nodelib.task_log_text(mgr, logger), 60,
                             "the 1000 log lines at the manager").count("\n")
    broker.restart()
    nodelib.wait_for(lambda: node.status()[1]["mqtt"]["connected"], 60,
                     "the node back on the broker")
    print("workload: %d tasks (%s), %d Python Light clients%s, GetBinaryData %d MB at"
          " %.0f MB/s, %d log lines at the manager, broker restarted; %.1f s"
          % (len(tasks), ", ".join("%d %s" % (v, tasks_pb.TaskStatus.Name(k))
                                   for k, v in sorted(ends.items())),
             npy, "" if npy else " (no Python image: shell tasks instead)",
             n // 1000000, rate, lines, time.monotonic() - t0))


def mb(kb):
    return kb / 1024.0


def verdict(ok):
    return "met" if ok else "NOT met"


def report(pids, start, after, cpu, elapsed, hbs):
    print("\nevery process of the node, idle (MB; Private_Dirty: once started ->"
          " after the workload and %.0f s idle; CPU over %.0f s at ping_interval 1):"
          % (SETTLE_S, elapsed))
    print("  %-16s %7s %7s %16s %8s %10s" % ("process", "RSS", "PSS", "Private_Dirty",
                                             "threads", "CPU %"))
    tot = {"Rss": 0, "Pss": 0, "Private_Dirty": 0, "Threads": 0, "start_pd": 0}
    grown = []
    for name in pids:
        a, s = after[name], start.get(name, {})
        for k in ("Rss", "Pss", "Private_Dirty", "Threads"):
            tot[k] += a.get(k, 0)
        tot["start_pd"] += s.get("Private_Dirty", 0)
        growth = a.get("Private_Dirty", 0) - s.get("Private_Dirty", 0)
        if growth > T_GROWTH_KB:
            grown.append("%s +%.1f MB" % (name, mb(growth)))
        print("  %-16s %7.1f %7.1f %7.1f -> %5.1f %8d %10.3f"
              % (name, mb(a.get("Rss", 0)), mb(a.get("Pss", 0)),
                 mb(s.get("Private_Dirty", 0)), mb(a.get("Private_Dirty", 0)),
                 a.get("Threads", 0), cpu[name]))
    total_cpu = sum(cpu.values())
    print("  %-16s %7.1f %7.1f %7.1f -> %5.1f %8d %10.3f"
          % ("total", mb(tot["Rss"]), mb(tot["Pss"]), mb(tot["start_pd"]),
             mb(tot["Private_Dirty"]), tot["Threads"], total_cpu))
    print("\ntargets (issue 14):")
    print("  whole suite PSS           %6.1f MB   target <= %.0f MB      %s"
          % (mb(tot["Pss"]), mb(T_PSS_KB), verdict(tot["Pss"] <= T_PSS_KB)))
    print("  whole suite Private_Dirty %6.1f MB   target <= %.0f MB       %s"
          % (mb(tot["Private_Dirty"]), mb(T_DIRTY_KB), verdict(tot["Private_Dirty"]
                                                              <= T_DIRTY_KB)))
    print("  per daemon growth         %s   target <= start + 1 MB   %s"
          % (", ".join(grown) or "none above 1 MB", verdict(not grown)))
    print("  idle CPU                  %6.3f %%    target <= %.2f %% of a core %s"
          % (total_cpu, T_CPU_PCT, verdict(total_cpu <= T_CPU_PCT)))
    return total_cpu


def main():
    broker = nodelib.Broker().start()
    mgr = DevManager(broker_port=broker.port).start()
    d = None
    node = None
    try:
        mgr.wait_mqtt(10)
        start_latency(mgr)
        import tempfile
        d = tempfile.mkdtemp(prefix="mnt-bench-", dir="/tmp")
        bbroot = nodelib.busybox_rootfs(os.path.join(d, "rootfs"))
        runtime = None
        for rt in nodelib.RUNTIMES:
            ok, why = nodelib.runtime_usable(rt, bbroot)
            if ok:
                runtime = runtime or rt
            else:
                print("(%s cannot run a container here: %s)" % (rt, why))
        if runtime is None:
            print("no OCI runtime can run a container here: no workload")
            return
        pyroot, why = python_image()
        if pyroot is None:
            print("(no Python image for the Light clients: %s)" % why)
        node = nodelib.Node(mgr.grpc_port, alias="bench-node", ping_interval=1,
                            monitor_interval=30, overrides=nodelib.exec_sections(
                                runtime, containers={"default_cpu_limit": "0.1",
                                                     "default_memory_limit": "64M"},
                                tasks={"max_concurrent": 8, "retry_attempts": 0},
                                datasets={"mappings": {"big": "big.bin",
                                                       "small": "small.bin"}}))
        ds = node.sections["datasets"]["base_path"]
        os.makedirs(ds, exist_ok=True)
        block = os.urandom(1 << 20)
        with open(os.path.join(ds, "big.bin"), "wb") as f:
            for _ in range(STREAM_MB):
                f.write(block[:1000000])
        with open(os.path.join(ds, "small.bin"), "wb") as f:
            f.write(block[:65536])
        for name, root in (("busybox", bbroot), ("python", pyroot)):
            if root:
                r = nodelib.image_import(node.config, name, root, timeout=600)
                if r.returncode != 0:
                    raise RuntimeError(r.stderr)
        print("node: %s, no TLS, 2 datasets, max_concurrent 8, ping_interval 1"
              % runtime)
        node.start()
        node.node_id = node.wait_online(30)["node_id"]
        nodelib.wait_for(lambda: os.path.exists(os.path.join(node.run_dir, "light.port")),
                         15, "mantad-light up")
        hb = len(mgr.heartbeats)
        nodelib.wait_for(lambda: len(mgr.heartbeats) >= hb + 5, 30, "5 heartbeats")
        pids = node_pids(node)
        start = {n: smaps(p) for n, p in pids.items()}

        workload(mgr, broker, node, pyroot)
        pids = node_pids(node)          # a daemon may have restarted: say so below
        time.sleep(SETTLE_S)            # idle by definition: a measurement window
        after = {n: smaps(p) for n, p in pids.items()}
        w0 = {n: wakeups(p) for n, p in pids.items()}
        tc0 = {n: thread_cpu(p) for n, p in pids.items()}
        c0 = {n: cpu_ns(p) for n, p in pids.items()}
        hb0 = len(mgr.heartbeats)
        t0 = time.monotonic()
        time.sleep(IDLE_S)              # the CPU window
        elapsed = time.monotonic() - t0
        c1 = {n: cpu_ns(p) for n, p in pids.items()}
        tc1 = {n: thread_cpu(p) for n, p in pids.items()}
        w1 = {n: wakeups(p) for n, p in pids.items()}
        hbs = len(mgr.heartbeats) - hb0
        cpu = {n: 100.0 * (c1[n] - c0[n]) / 1e9 / elapsed for n in pids}
        report(pids, start, after, cpu, elapsed, hbs)
        per_hb = ((c1["mantad-beat"] - c0["mantad-beat"]) +
                  (c1["mantad-res"] - c0["mantad-res"])) / 1e3 / max(hbs, 1)
        beat_only = (c1["mantad-beat"] - c0["mantad-beat"]) / 1e3 / max(hbs, 1)
        print("  heartbeat cost            %6.0f us of CPU per heartbeat (beat %.0f us + res;"
              " %d heartbeats in %.0f s; res also samples every 30 s)"
              % (per_hb, beat_only, hbs, elapsed))
        r = nodelib.mantactl("metrics", "-c", node.config)
        v = {}
        for line in r.stdout.splitlines():
            if line and not line.startswith("#") and "{" not in line:
                k, _, x = line.partition(" ")
                v[k] = float(x)
        for name, what in (("heartbeat", "tick -> handed to paho"),
                           ("task_launch", "PENDING -> RUNNING")):
            n = v.get("manta_node_%s_duration_seconds_count" % name, 0)
            if n:
                print("  %-25s %6.1f ms mean over %d (%s; mantactl metrics)"
                      % (name.replace("_", " ") + " latency", 1e3 * v[
                          "manta_node_%s_duration_seconds_sum" % name] / n, n, what))
        _, st = node.status()
        restarts = {x["name"]: x["restarts"] for x in st["daemons"] if x["restarts"]}
        if restarts:
            print("  (daemons restarted during the run: %s)" % restarts)

        print("\nwhere the bytes stay (largest Private_Dirty by mapping, kB):")
        for name, pid in pids.items():
            print("  %-16s %s" % (name, ", ".join("%s %d" % (n, kb)
                                                  for kb, n in dirty_by_mapping(pid))))
        print("\nwhere the wake-ups are (voluntary context switches per second, by thread):")
        for name in pids:
            rates = sorted(((w1[name].get(t, 0) - v) / elapsed, t)
                           for t, v in w0[name].items())
            rates = [(r, t) for r, t in reversed(rates) if r > 0][:5]
            print("  %-16s %s" % (name, ", ".join("%s %.1f/s" % (t, r) for r, t in rates)
                                  or "none"))
        print("\nwhere the CPU goes (% of a core over the idle window, by thread;"
              " per heartbeat for beat and res):")
        for name in pids:
            use = sorted(((tc1[name].get(t, 0) - v, t) for t, v in tc0[name].items()),
                         reverse=True)
            use = [(ns, t) for ns, t in use if ns > 0][:5]
            each = name in ("mantad-beat", "mantad-res") and hbs
            print("  %-16s %s" % (name, ", ".join(
                "%s %.4f%%%s" % (t, 100.0 * ns / 1e9 / elapsed,
                                  " (%.0f us/hb)" % (ns / 1e3 / hbs) if each else "")
                for ns, t in use) or "none"))
    finally:
        if node is not None:
            node.stop()
            node.cleanup()
        mgr.stop()
        broker.cleanup()
        if d:
            import shutil
            shutil.rmtree(d, ignore_errors=True)
    if os.environ.get("BENCH_EXTRAS", "1") == "0":
        return
    for extra in sorted(glob.glob(os.path.join(HERE, "*_bench.py"))):
        print("\n== %s" % os.path.basename(extra))
        subprocess.run([sys.executable, extra], check=False)


if __name__ == "__main__":
    main()
