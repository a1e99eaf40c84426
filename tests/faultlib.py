"""faultlib: helpers of the fault, drain and chaos tests (issue 6,
tests/test_7N_*.py and tests/chaos.py), on top of nodelib.

- PersistentBroker: mosquitto with persistence on, so that a graceful
  restart keeps the dev manager's session (its subscription and the QoS 1
  messages queued for it), as a production broker does.
- Manager: the dev manager with a persistent MQTT session (fixed client
  id, clean_session off) and restart_grpc() (a manager outage: its gRPC
  side goes away and comes back on the same port, records kept).
- updates/finals/log checks shared by the tests and chaos.py.
"""

import os
import signal
import subprocess
import time

import nodelib
from devmanager import DevManager, pair_to_hex
from common import tasks_pb2 as tasks_pb

RUNNING, COMPLETED, FAILED, STOPPED = (tasks_pb.RUNNING, tasks_pb.COMPLETED,
                                       tasks_pb.FAILED, tasks_pb.STOPPED)
FINAL = (COMPLETED, FAILED, STOPPED)


class PersistentBroker(nodelib.Broker):
    """A mosquitto whose sessions survive a graceful restart (SIGTERM):
    persistence on, saved at exit, restored at start."""

    def __init__(self, **kw):
        super().__init__(**kw)
        with open(self.conf) as f:
            text = f.read()
        text = text.replace("persistence false\n",
                            "persistence true\npersistence_location %s/\n"
                            "autosave_interval 1\n" % self.dir)
        with open(self.conf, "w") as f:
            f.write(text)


class Manager(DevManager):
    """The dev manager with a persistent MQTT session and a restartable
    gRPC side."""

    def _mqtt_session(self):
        return "devmanager-persistent-%d-%d" % (os.getpid(), id(self)), False

    def stop_grpc(self):
        if self._server is not None:
            self._server.stop(grace=None).wait(5)
            self._server = None

    def start_grpc(self):
        if self._server is None:
            for _ in range(50):
                try:
                    self._start_grpc()
                    return
                except RuntimeError:
                    time.sleep(0.1)     # the port is still being released
            self._start_grpc()

    def restart_grpc(self):
        self.stop_grpc()
        self.start_grpc()


def statuses(manager, task_hex, iteration=None):
    """The TaskUpdate statuses of a task (one round if iteration is given),
    in arrival order."""
    return [u[3] for u in nodelib.task_updates(manager, task_hex)
            if iteration is None or u[1] == iteration]


def finals(manager):
    """{(task hex, iteration, circular): [final statuses]}."""
    out = {}
    for t, it, circ, st in nodelib.task_updates(manager):
        if st in FINAL:
            out.setdefault((t, it, circ), []).append(st)
    return out


def log_frames(manager, task_hex):
    with manager.lock:
        return [d for d in manager.logs if d["task_id"] == task_hex]


def check_lines(text, n, prefix="line"):
    """(lost, duplicated) line numbers of a task that printed
    "<prefix> 0" .. "<prefix> n-1", one per line, from its logs."""
    seen = {}
    for l in text.splitlines():
        if l.startswith(prefix + " "):
            try:
                k = int(l.split()[1])
            except ValueError:
                continue
            seen[k] = seen.get(k, 0) + 1
    lost = [i for i in range(n) if i not in seen]
    dup = [k for k, c in seen.items() if c > 1]
    return lost, dup


def counting_script(n, pause="0.05", prefix="line"):
    """A task that prints "<prefix> 0".."<prefix> n-1", pausing between lines."""
    return ("#!/bin/sh\ni=0\nwhile [ $i -lt %d ]; do echo \"%s $i\"; sleep %s;"
            " i=$((i+1)); done\n" % (n, prefix, pause))


def runc_or_skip(bbroot):
    return nodelib.runtime_or_skip("runc", bbroot)


def kill_node(node):
    """SIGKILL to the supervisor and every daemon, back to back; returns
    once every one of them is gone (their pids)."""
    st = node.wait_status(lambda s: True, 10)
    pids = [node.supervisor_pid] + [d["pid"] for d in st["daemons"] if d["pid"]]
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    node.proc.wait(10)
    nodelib.wait_for(lambda: not any(nodelib.alive(p) for p in pids), 10,
                     "every process of the node gone")
    return pids


def containers_alive(node, runtime="runc"):
    """Container ids the runtime lists as running in the node's root."""
    root = os.path.join(node.state_dir, "runtime-root")
    r = subprocess.run([runtime, "--root", root, "list", "-f", "json"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=30)
    if r.returncode != 0 or not r.stdout.strip() or r.stdout.strip() == "null":
        return []
    import json
    return [c["id"] for c in json.loads(r.stdout) if c.get("status") == "running"]


def task_state(node, task_hex):
    rc, tasks = nodelib.tasks_json(node.config)
    if rc != 0 or tasks is None:
        return None
    for t in tasks:
        if t["task_id"] == task_hex:
            return t["status"]
    return None


def node_status_calls(manager, node_id, after=None):
    """[NodeStatusEnum] of the gRPC SetNodeStatus calls about node_id."""
    return [r.request.status for r in manager.calls("SetNodeStatus", accepted_only=True)
            if r.request is not None and pair_to_hex(r.request.node_id) == node_id
            and (after is None or r.time >= after)]
