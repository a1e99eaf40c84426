#!/usr/bin/python3
"""make demo: a node joining a local Manta cluster.

Starts a private mosquitto, the development manager and a node (config,
run and state dirs under /tmp/manta-demo), waits until the node is
registered and a few heartbeats arrived, prints what happened and where to
look next, then stops everything (with --keep leaves them running)."""

import argparse
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import nodelib  # noqa: E402
from devmanager import DevManager, pair_to_hex  # noqa: E402

DEMO_DIR = "/tmp/manta-demo"


def say(fmt, *args):
    print(("demo: " + fmt) % args, flush=True)


def fail(fmt, *args):
    print(("demo: fatal: " + fmt) % args, file=sys.stderr, flush=True)
    sys.exit(1)


def mib(n):
    return "%d MiB" % (n >> 20)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", action="store_true",
                    help="leave broker, manager and node running")
    ap.add_argument("--dir", default=DEMO_DIR, help="demo directory (%(default)s)")
    ap.add_argument("--heartbeats", type=int, default=3)
    a = ap.parse_args()

    for prog in ["mantactl"] + list(nodelib.DAEMONS):
        if not os.access(os.path.join(nodelib.BIN, prog), os.X_OK):
            fail("bin/%s is not built: run make", prog)
    if not os.access(nodelib.MOSQUITTO, os.X_OK):
        fail("%s missing: run make deps", nodelib.MOSQUITTO)

    d = a.dir
    cfg = os.path.join(d, "node.toml")
    # A node left running by an earlier `make demo --keep`: stop it first.
    if os.path.exists(cfg) and nodelib.mantactl("status", "--json", "-c", cfg).returncode == 0:
        say("stopping the node left running in %s", d)
        nodelib.mantactl("stop", "-c", cfg)
    # Each demo starts afresh: a state dir from another build may hold a
    # database schema this one does not know (and would rightly refuse).
    for sub in ("run", "mosquitto", "state", "busybox-rootfs"):
        shutil.rmtree(os.path.join(d, sub), ignore_errors=True)
    os.makedirs(d, exist_ok=True)

    broker = nodelib.Broker(dir=os.path.join(d, "mosquitto"))
    manager = None
    manager_proc = None
    node = None
    ok = False
    try:
        broker.start()
        say("mosquitto on 127.0.0.1:%d (log %s)", broker.port, broker.logfile)

        grpc_port = nodelib.free_port()
        jsonl = os.path.join(d, "manager.jsonl")
        if a.keep:
            # It must outlive this script: run it as its own process.
            mlog = open(os.path.join(d, "manager.log"), "w")
            manager_proc = subprocess.Popen(
                [sys.executable, os.path.join(HERE, "devmanager.py"),
                 "--grpc-port", str(grpc_port), "--broker-port", str(broker.port),
                 "--token", nodelib.TOKEN, "--jsonl", jsonl, "-q"],
                stdout=mlog, stderr=subprocess.STDOUT, start_new_session=True)
            mlog.close()
            nodelib.wait_for(lambda: nodelib.port_open(grpc_port), 10, "dev manager")
            # An observer in this process for the figures printed below.
            manager = DevManager(grpc_port=nodelib.free_port(), broker_host="127.0.0.1",
                                 broker_port=broker.port, token=None)
        else:
            manager = DevManager(grpc_port=grpc_port, broker_host="127.0.0.1",
                                 broker_port=broker.port, token=nodelib.TOKEN,
                                 jsonl=jsonl)
        manager.start()
        manager.wait_mqtt(10)
        say("development manager on 127.0.0.1:%d (records in %s)", grpc_port, jsonl)

        node = nodelib.Node(grpc_port, alias="demo-node", name="demo", dir=d,
                            overrides=nodelib.exec_sections("runc"))
        node.sections["logging"]["level"] = "INFO"
        node.write_config()
        with_tasks = os.access(os.path.join(nodelib.BIN, "mantad-exec"), os.X_OK)
        if with_tasks:
            rootfs = nodelib.busybox_rootfs(os.path.join(d, "busybox-rootfs"))
            r = nodelib.image_import(cfg, "busybox", rootfs)
            if r.returncode != 0:
                raise RuntimeError("image import failed: %s" % r.stderr)
            say("imported image busybox (from busybox-static) into %s",
                node.sections["paths"]["state_dir"] + "/images")
        say("node config %s; starting: %s", cfg, " ".join(node.start_cmd()))
        node.start(wait=True, timeout=20)
        st = node.wait_status(lambda s: s["manager"]["registered"], 30,
                              "registration")
        node_id = st["node_id"]
        say("registered: node id %s", node_id)
        st = node.wait_online(30)

        def beats():
            hb = [r for r in manager.heartbeats if r.request is not None
                  and pair_to_hex(r.request.node_id) == node_id]
            return hb if len(hb) >= a.heartbeats else None
        hb = nodelib.wait_for(beats, 10 + 2 * a.heartbeats, "heartbeats")
        for r in hb[-a.heartbeats:]:
            m = r.request.metrics_snapshot
            say("heartbeat: cpu %.1f%% of %d cpus, memory %s available of %s, at %s",
                m.cpu.usage_percent, m.cpu.count, mib(m.memory.available_bytes),
                mib(m.memory.total_bytes), m.timestamp.ToJsonString())

        if with_tasks:
            from common import tasks_pb2
            task_hex = os.urandom(16).hex()
            script = ("#!/bin/sh\necho \"hello from task $TASK_ID of swarm $SWARM_ID\"\n"
                      "echo \"in a container: $(hostname), $(id -u):$(id -g), "
                      "$(grep -c . /proc/self/status) status lines\"\n")
            say("deploying task %s (image busybox) through the manager's MQTT side",
                task_hex)
            manager.deploy_task(node_id, nodelib.task_msg(task_hex, script))
            u = nodelib.wait_task_status(manager, task_hex, (
                tasks_pb2.COMPLETED, tasks_pb2.FAILED, tasks_pb2.STOPPED), 60)
            say("task %s: %s", task_hex, tasks_pb2.TaskStatus.Name(u.task_status))
            r = nodelib.mantactl("logs", task_hex, "-c", cfg)
            print("\n$ bin/mantactl logs %s -c %s\n%s" % (task_hex, cfg, r.stdout),
                  end="")

        rc, st = node.status()
        print("\n$ bin/mantactl status --json -c %s" % cfg)
        print(json.dumps(st, indent=2))
        print("""
Where to look next:
  config       %(cfg)s              (bin/mantactl config show -c %(cfg)s)
  status       bin/mantactl status --json -c %(cfg)s
  node log     %(log)s
  state        %(state)s (identity, SQLite databases)
  manager      %(jsonl)s (every call and message it received)
  man pages    man -l man/mantactl.8 man/manta.toml.5
""" % dict(cfg=cfg, log=node.logfile, state=node.state_dir, jsonl=jsonl))
        ok = True
    except (AssertionError, RuntimeError, OSError) as e:
        print("demo: fatal: %s" % e, file=sys.stderr)
        if node is not None:
            print("---- %s ----\n%s" % (node.logfile, node.log_tail(40)), file=sys.stderr)
    finally:
        if a.keep and ok:
            if manager is not None:
                manager.stop()
            say("left running. To stop:\n"
                "  bin/mantactl stop -c %s\n  kill %d %d    # dev manager, mosquitto",
                cfg, manager_proc.pid, broker.proc.pid)
        else:
            if node is not None:
                if node.proc is not None and node.proc.poll() is None:
                    nodelib.mantactl("stop", "-c", cfg)
                _stop_node(node)
            if manager is not None:
                manager.stop()
            if manager_proc is not None:
                manager_proc.terminate()
                manager_proc.wait(10)
            broker.kill()
            if ok:
                say("stopped everything (run with --keep to leave it running)")
    return 0 if ok else 1


def _stop_node(node):
    """Node.cleanup() without removing the demo directory."""
    keep = nodelib.KEEP
    nodelib.KEEP = True
    try:
        node.cleanup()
    finally:
        nodelib.KEEP = keep


if __name__ == "__main__":
    sys.exit(main())
