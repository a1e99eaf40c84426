"""Operator view of tasks, end to end with mantad-exec and a real runtime:
a task deployed from the dev manager on an imported busybox image shows in
`mantactl tasks --json` with exactly the INTERFACE.md keys, its output in
`mantactl logs` (and `logs -f` follows it to the end), and reaches the
manager through AddTaskLogs with the right header ids. When the manager is
away as the task ends, the logs arrive once it is back. Skipped until
bin/mantad-exec is built."""

import re
import time

import pytest

import nodelib
from devmanager import hex_to_pair, pair_to_hex

from common import tasks_pb2 as tasks_pb  # noqa: E402

pytestmark = nodelib.skip_unless_built("mantad-exec")

KEYS = {"swarm_id", "task_id", "status", "iteration", "circular", "image",
        "exit_code", "started_at", "finished_at", "reason"}
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
SWARM = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a"
COMPLETED = tasks_pb.COMPLETED
RUNNING = tasks_pb.RUNNING


@pytest.fixture
def enode(manager, make_node, bbroot):
    """A node with the busybox image imported, online."""
    n = make_node(manager.grpc_port)
    r = nodelib.image_import(n.config, "busybox", bbroot)
    assert r.returncode == 0, r.stderr
    n.start()
    n.node_id = n.wait_online(30)["node_id"]
    return n


def deploy(manager, node, task_hex, script, iteration=0, circular=0):
    t = tasks_pb.MqttTask(swarm_id=hex_to_pair(SWARM), task_id=hex_to_pair(task_hex),
                          iteration=iteration, circular=circular,
                          payload=script.encode(), image="busybox", alias="t",
                          network="None", auth_key="None", login_server="None",
                          gpu=False)
    manager.deploy_task(node.node_id, t)


def wait_update(manager, task_hex, status, timeout=60):
    return manager.wait_message(
        "manager/update_task_status", timeout=nodelib.deadline(timeout),
        pred=lambda r: r.request is not None and r.request.task_status == status
        and pair_to_hex(r.request.task_id) == task_hex)


def task_entry(node, task_hex):
    rc, arr = nodelib.tasks_json(node.config)
    assert rc == 0 and isinstance(arr, list), (rc, arr)
    e = [x for x in arr if x["task_id"] == task_hex]
    return e[-1] if e else None


def manager_text(manager, task_hex):
    """Every AddTaskLogs frame of the task, in arrival order, joined."""
    with manager.lock:
        frames = [d for d in manager.logs if d["task_id"] == task_hex]
    return "".join(d["text"] for d in frames), frames


def test_tasks_logs_and_add_task_logs(manager, enode):
    task = "0000000000000000000000000000a001"
    deploy(manager, enode, task,
           "#!/bin/sh\necho hello-from-task\necho to-stderr >&2\nexit 0\n")
    wait_update(manager, task, COMPLETED)

    # mantactl tasks --json: exactly the keys, the finished task.
    e = nodelib.wait_for(lambda: (lambda x: x if x and x["status"] == "COMPLETED"
                                  else None)(task_entry(enode, task)),
                         30, "task COMPLETED in mantactl tasks")
    assert set(e) == KEYS, e
    assert e["swarm_id"] == SWARM and e["task_id"] == task
    assert (e["iteration"], e["circular"], e["image"]) == (0, 0, "busybox")
    assert e["exit_code"] == 0
    assert RFC3339.match(e["started_at"]) and RFC3339.match(e["finished_at"]), e

    # mantactl logs: the output so far (all of it: the task ended).
    r = nodelib.mantactl("logs", task, "-c", enode.config)
    assert r.returncode == 0, r.stderr
    assert "hello-from-task\n" in r.stdout and "to-stderr\n" in r.stdout, r.stdout

    # The manager got the same bytes through AddTaskLogs, framed for this task.
    def got():
        text, frames = manager_text(manager, task)
        return frames if "hello-from-task" in text and "to-stderr" in text else None
    frames = nodelib.wait_for(got, 30, "AddTaskLogs with the task's output")
    for d in frames:
        assert d["swarm_id"] == SWARM and d["task_id"] == task
        assert d["node_id"] == enode.node_id
        assert (d["iteration"], d["circular"]) == (0, 0)
    for rec in manager.calls("AddTaskLogs", accepted_only=True):
        assert rec.authorization == nodelib.TOKEN

    # An unknown task: exit 1 with a clear message.
    r = nodelib.mantactl("logs", "ffffffffffffffffffffffffffffffff", "-c", enode.config)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "ffffffffffffffffffffffffffffffff" in r.stderr


def test_logs_follow(manager, enode):
    task = "0000000000000000000000000000a002"
    deploy(manager, enode, task, "#!/bin/sh\necho first\nsleep 2\necho second\n")
    wait_update(manager, task, RUNNING)
    t0 = time.monotonic()
    r = nodelib.mantactl("logs", task, "-f", "-c", enode.config, timeout=60)
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert r.stdout == "first\nsecond\n", r.stdout
    # It returned because the task ended, not after a fixed long sleep.
    assert took < nodelib.deadline(20), took
    e = task_entry(enode, task)
    assert e["status"] == "COMPLETED", e


def test_logs_after_manager_returns(manager, managers, enode):
    task = "0000000000000000000000000000a003"
    port = manager.grpc_port
    deploy(manager, enode, task, "#!/bin/sh\nsleep 3\necho late-output\n")
    wait_update(manager, task, RUNNING)
    manager.stop()
    nodelib.wait_for(lambda: (task_entry(enode, task) or {}).get("status") == "COMPLETED",
                     60, "task COMPLETED while the manager is away")
    m2 = managers(port, wait_mqtt=True)

    def got():
        text, frames = manager_text(m2, task)
        return frames if "late-output" in text else None
    frames = nodelib.wait_for(got, 60, "AddTaskLogs after the manager came back")
    for d in frames:
        assert d["node_id"] == enode.node_id and d["task_id"] == task
    reg = m2.wait_call("RegisterNode", timeout=5)
    assert all(r.time >= reg.time for r in m2.calls("AddTaskLogs"))
