"""kill -9 of mantad-exec while tasks run (runc and crun): the supervisor
restarts it; it re-adopts the container that still runs (through its shim)
and reports the one that ended meanwhile, with its real exit status. Each
task's final TaskUpdate arrives exactly once, its logs too; nothing is left
behind."""

import os
import signal

import nodelib
from common import tasks_pb2 as tasks_pb

pytestmark = nodelib.skip_unless_built("mantad-exec")

RUNNING, COMPLETED, FAILED = tasks_pb.RUNNING, tasks_pb.COMPLETED, tasks_pb.FAILED


def test_kill9_exec(manager, make_node, bbroot, runtime):
    node = nodelib.exec_node(manager, make_node, bbroot, runtime)
    long_, short = "9a" * 16, "9b" * 16
    # long_ outlives the restart; short ends while mantad-exec is down.
    manager.deploy_task(node.node_id, nodelib.task_msg(
        long_, "#!/bin/sh\necho start\nsleep 3\necho end\n"))
    manager.deploy_task(node.node_id, nodelib.task_msg(
        short, "#!/bin/sh\necho short\nsleep 0.5\nexit 7\n"))
    nodelib.wait_task_status(manager, long_, RUNNING)
    nodelib.wait_task_status(manager, short, RUNNING)
    pid = node.pids()["mantad-exec"]
    os.kill(pid, signal.SIGKILL)
    node.wait_status(lambda s: any(d["name"] == "mantad-exec" and d["state"] == "up"
                                   and d["pid"] != pid for d in s["daemons"]), 30,
                     "mantad-exec restarted")

    nodelib.wait_task_status(manager, short, FAILED, timeout=20)
    nodelib.wait_task_status(manager, long_, COMPLETED, timeout=20)
    assert [u[3] for u in nodelib.task_updates(manager, long_)] == [RUNNING, COMPLETED]
    assert [u[3] for u in nodelib.task_updates(manager, short)] == [RUNNING, FAILED]
    rc, tasks = nodelib.tasks_json(node.config)
    by_id = {t["task_id"]: t for t in tasks}
    assert by_id[short]["exit_code"] == 7, by_id[short]
    assert by_id[long_]["exit_code"] == 0, by_id[long_]
    nodelib.wait_for(lambda: nodelib.task_log_text(manager, long_) == "start\nend\n",
                     15, "the adopted task's output")
    nodelib.wait_for(lambda: nodelib.task_log_text(manager, short) == "short\n",
                     15, "the ended task's output")
    nodelib.wait_for(lambda: not any(nodelib.exec_leftovers(node, runtime).values()),
                     15, "nothing left behind")
    # Once more after a second restart: nothing is announced again.
    n = len(manager.task_updates)
    pid = node.pids()["mantad-exec"]
    os.kill(pid, signal.SIGKILL)
    node.wait_status(lambda s: any(d["name"] == "mantad-exec" and d["state"] == "up"
                                   and d["pid"] != pid for d in s["daemons"]), 30,
                     "mantad-exec restarted again")
    marker = "9c" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(marker, "#!/bin/sh\ntrue\n"))
    nodelib.wait_task_status(manager, marker, COMPLETED)
    assert [u[0] for u in manager_updates_since(manager, n)] == [marker, marker]


def manager_updates_since(manager, n):
    return nodelib.task_updates(manager)[n:]
