#!/usr/bin/python3
"""make bench (bench/bench.py runs every bench/*_bench.py): mantad-exec.

- launch overhead, per OCI runtime (runc, crun): from the deploy_task
  publish (the dev manager's MQTT client, QoS 1) to the COMPLETED
  TaskUpdate it receives, for a "#!/bin/sh\\ntrue\\n" payload in the busybox
  image, one task at a time (the next once the last one's container and
  bundle are gone), median of BENCH_EXEC_ROUNDS (default 50); next to a
  bare `RUNTIME run` (create, start, wait, delete) of the same bundle (the
  config.json mantad-exec wrote for a task, same payload, output to a
  pipe), the two interleaved in the same run so that both see the same
  load: the ratio and the target of issue 14 (node <= 1.3 x bare + 5 ms);
- throughput: BENCH_EXEC_TASKS (default 100) trivial tasks deployed at once
  with crun (runc where crun cannot run here), tasks.max_concurrent 8 (and
  0.1 CPU, 64M reserved per task so that 8 fit a small machine): tasks per
  second from the first publish to the last COMPLETED.

The harness's broker and dev manager use TCP_NODELAY (BENCH_EXEC_NAGLE=1:
the defaults, to see what Nagle's algorithm costs on their side). Figures
are printed, never asserted. A runtime that cannot run a container here is
skipped with the reason (nodelib.runtime_usable)."""

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

import nodelib  # noqa: E402
from devmanager import DevManager, pair_to_hex  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_EXEC_ROUNDS", "50"))
NTASKS = int(os.environ.get("BENCH_EXEC_TASKS", "100"))
TRUE = "#!/bin/sh\ntrue\n"
WAITER = "#!/bin/sh\ntrap 'exit 0' USR1\nwhile :; do sleep 0.05; done\n"
SBIN = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def statuses():
    from common import tasks_pb2
    return tasks_pb2


def make_node(mgr, runtime, rootfs, **tasks):
    """A started node for runtime, busybox imported; small reservations so
    that 8 tasks fit the budget of a small machine."""
    t = {"max_concurrent": 8, "retry_attempts": 0}
    t.update(tasks)
    node = nodelib.Node(mgr.grpc_port, overrides=nodelib.exec_sections(
        runtime, containers={"default_cpu_limit": "0.1", "default_memory_limit": "64M"},
        tasks=t))
    r = nodelib.image_import(node.config, "busybox", rootfs)
    if r.returncode != 0:
        node.cleanup()
        raise RuntimeError(r.stderr)
    node.start()
    node.node_id = node.wait_online(30)["node_id"]
    return node


def completed_at(mgr, task_hex, timeout=60):
    st = statuses()
    rec = mgr.wait_message(
        "manager/update_task_status", timeout=timeout,
        pred=lambda r: r.request is not None and pair_to_hex(r.request.task_id) == task_hex
        and r.request.task_status in (st.COMPLETED, st.FAILED, st.STOPPED))
    if rec.request.task_status != st.COMPLETED:
        raise RuntimeError("task %s ended %d" % (task_hex, rec.request.task_status))
    return rec.time


def template_bundle(mgr, node):
    """The config.json mantad-exec writes, taken from a running task."""
    task = nodelib.random_hex()
    mgr.deploy_task(node.node_id, nodelib.task_msg(task, WAITER))
    # exec's bundle: tasks/<swarm>-<task>-<iteration>-<circular> (task_msg's
    # default swarm).
    d = os.path.join(node.state_dir, "tasks", "%s-%s-0-0" % ("5a" * 16, task))

    def ready():
        try:
            with open(os.path.join(d, "init.pid")) as f:
                pid = int(f.read())
            with open(os.path.join(d, "config.json")) as f:
                return pid, json.load(f)
        except (OSError, ValueError):
            return None
    pid, cfg = nodelib.wait_for(ready, 30, "a running task's bundle")
    # init.pid is there before the shell has run its trap line, and pid 1
    # of a namespace ignores a signal it has no handler for: send it
    # until the task ends.
    def ended():
        try:
            os.kill(pid, signal.SIGUSR1)
        except ProcessLookupError:
            pass
        return completed_if_any(mgr, task)
    nodelib.wait_for(ended, 60, "the waiter task to end", interval=0.2)
    return cfg


def completed_if_any(mgr, task_hex):
    st = statuses()
    return any(u.request is not None and pair_to_hex(u.request.task_id) == task_hex
               and u.request.task_status
               in (st.COMPLETED, st.FAILED, st.STOPPED) for u in mgr.task_updates)


class Bare(object):
    """`RUNTIME run` (create, start, wait, delete) of a copy of cfg with the
    TRUE payload, its output to a pipe, as the shim has it."""

    def __init__(self, runtime, cfg):
        self.path = shutil.which(runtime, path=SBIN)
        self.runtime = runtime
        self.cfg = cfg
        self.dir = tempfile.mkdtemp(prefix="mnt-bare-", dir="/tmp")
        self.n = 0
        pay = os.path.join(self.dir, "module.pyz")
        with open(pay, "w") as f:
            f.write(TRUE)
        os.chmod(pay, 0o755)
        for m in cfg["mounts"]:
            if m["destination"] == "/usr/src/module.pyz":
                m["source"] = pay

    def run(self):
        """Wall ms of one run."""
        self.n += 1
        cid = "mnt-bare-%d-%d" % (os.getpid(), self.n)
        self.cfg["linux"]["cgroupsPath"] = "/manta/%s" % cid
        with open(os.path.join(self.dir, "config.json"), "w") as f:
            json.dump(self.cfg, f)
        t0 = time.monotonic()
        r = subprocess.run([self.path, "--root", os.path.join(self.dir, "root"), "run",
                            "--bundle", self.dir, cid], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        ms = (time.monotonic() - t0) * 1000
        if r.returncode != 0:
            raise RuntimeError("%s run: %s" % (self.runtime, r.stdout.decode()[-300:]))
        return ms

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def settle(node):
    """Waits until the last task is gone: its container deleted by its
    shim (the runtime root empty) and its bundle removed."""
    def idle():
        for sub in ("runtime-root", "tasks"):
            try:
                if os.listdir(os.path.join(node.state_dir, sub)):
                    return False
            except OSError:
                pass
        return True
    nodelib.wait_for(idle, 30, "the node idle", interval=0.005)


def node_run(mgr, node):
    """Wall ms from the deploy_task publish to the COMPLETED update."""
    task = nodelib.random_hex()
    t0 = time.monotonic()
    mgr.deploy_task(node.node_id, nodelib.task_msg(task, TRUE))
    ms = (completed_at(mgr, task) - t0) * 1000
    settle(node)
    return ms


def fmt(v):
    return "median %7.1f ms  (min %.1f, max %.1f)" % (statistics.median(v), min(v), max(v))


def launch(mgr, runtime, rootfs):
    node = make_node(mgr, runtime, rootfs)
    bare_rt = None
    try:
        bare_rt = Bare(runtime, template_bundle(mgr, node))
        node_run(mgr, node)                     # warm caches
        bare_rt.run()
        bare, full = [], []
        # Interleaved, so that both see the same load on the machine.
        for _ in range(ROUNDS):
            bare.append(bare_rt.run())
            full.append(node_run(mgr, node))
    finally:
        if bare_rt is not None:
            bare_rt.cleanup()
        node.stop()
        node.cleanup()
    b, f = statistics.median(bare), statistics.median(full)
    target = 1.3 * b + 5
    print("  %-5s bare `%s run`:       %s" % (runtime, runtime, fmt(bare)))
    print("  %-5s deploy -> COMPLETED: %s" % (runtime, fmt(full)))
    print("  %-5s ratio %.2f x bare, overhead %+.1f ms; target <= %.1f ms: %s"
          % (runtime, f / b, f - b, target, "met" if f <= target else "NOT met"))


def throughput(mgr, runtime, rootfs):
    node = make_node(mgr, runtime, rootfs, max_concurrent=8)
    try:
        node_run(mgr, node)
        tasks = [nodelib.random_hex() for _ in range(NTASKS)]
        t0 = time.monotonic()
        for t in tasks:
            mgr.deploy_task(node.node_id, nodelib.task_msg(t, TRUE))
        last = max(completed_at(mgr, t, timeout=600) for t in tasks)
        secs = last - t0
    finally:
        node.stop()
        node.cleanup()
    print("  %s, max_concurrent 8: %d tasks in %.2f s = %.1f tasks/s; target >= 100"
          " tasks/s with crun: %s" % (runtime, NTASKS, secs, NTASKS / secs,
                                     ("met" if NTASKS / secs >= 100 else "NOT met")
                                     if runtime == "crun" else "not measured (no crun)"))


# Back to back, Nagle's algorithm against delayed ACKs can hold a small
# MQTT packet up to 40 ms on the harness's own legs (dev manager -> broker
# -> node and back), which would be counted against the node: the broker
# and the dev manager's client use TCP_NODELAY unless BENCH_EXEC_NAGLE=1.
NAGLE = bool(os.environ.get("BENCH_EXEC_NAGLE"))


def broker_nodelay(broker):
    if not NAGLE:
        with open(broker.conf, "a") as f:
            f.write("set_tcp_nodelay true\n")


def client_nodelay(mgr):
    if not NAGLE:
        mgr._mqtt.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def main():
    broker = nodelib.Broker()
    broker_nodelay(broker)
    broker.start()
    mgr = DevManager(broker_port=broker.port).start()
    d = tempfile.mkdtemp(prefix="mnt-bb-", dir="/tmp")
    try:
        mgr.wait_mqtt(10)
        client_nodelay(mgr)
        print("(harness: broker and dev manager %s)"
              % ("with Nagle (BENCH_EXEC_NAGLE)" if NAGLE else "with TCP_NODELAY"))
        rootfs = nodelib.busybox_rootfs(os.path.join(d, "rootfs"))
        usable = {}
        for rt in nodelib.RUNTIMES:
            usable[rt] = nodelib.runtime_usable(rt, rootfs)
        print("launch overhead (busybox, payload `true`, %d rounds, one task at a time):"
              % ROUNDS)
        for rt in nodelib.RUNTIMES:
            ok, why = usable[rt]
            if not ok:
                print("  %-5s skipped: %s" % (rt, why))
                continue
            launch(mgr, rt, rootfs)
        print("\nthroughput (%d trivial tasks deployed at once):" % NTASKS)
        rt = "crun" if usable["crun"][0] else "runc" if usable["runc"][0] else None
        if rt is None:
            print("  skipped: no runtime can run a container here")
        else:
            if rt != "crun":
                print("  crun skipped: %s" % usable["crun"][1])
            throughput(mgr, rt, rootfs)
    finally:
        mgr.stop()
        broker.cleanup()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
