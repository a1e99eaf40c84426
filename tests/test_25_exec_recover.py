"""kill -9 of mantad-exec while tasks run (runc and crun): the supervisor
restarts it; it re-adopts the container that still runs (through its shim)
and reports the one that ended meanwhile, with its real exit status. Each
task's final TaskUpdate arrives exactly once, its logs too; nothing is left
behind."""

import os
import signal
import sqlite3

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


def test_final_run_bundle_removed_at_recovery(manager, make_node, bbroot, runtime):
    """A run stored final whose bundle was not yet removed when mantad-exec
    was killed (the window between the two, seen as bundles left behind by
    the chaos run): the restarted exec removes it. The window is rebuilt
    while the supervisor is held (SIGSTOP) so exec stays down: the run's
    row is put back to "logs not yet handed over" and its bundle back in
    place, as a kill there leaves them."""
    node = nodelib.exec_node(manager, make_node, bbroot, runtime)
    t = "9d" * 16
    tasks = os.path.join(node.state_dir, "tasks")
    manager.deploy_task(node.node_id, nodelib.task_msg(t, "#!/bin/sh\nsleep 1\n"))
    nodelib.wait_task_status(manager, t, RUNNING)
    bundle = nodelib.wait_for(lambda: [b for b in os.listdir(tasks) if t in b],
                              10, "the run's bundle")[0]
    nodelib.wait_task_status(manager, t, COMPLETED, timeout=20)
    db = os.path.join(node.state_dir, "exec.db")

    def logs_done():
        with sqlite3.connect(db) as c:
            return c.execute("SELECT count(*) FROM run WHERE logs_done = 1").fetchone()[0]
    nodelib.wait_for(logs_done, 15, "the run's logs handed over")
    assert not os.path.exists(os.path.join(tasks, bundle))
    pids = node.pids()
    sup, ex = pids["mantactl"], pids["mantad-exec"]
    os.kill(sup, signal.SIGSTOP)
    try:
        os.kill(ex, signal.SIGKILL)
        nodelib.wait_for(lambda: nodelib.proc_state(ex) in (None, "Z") or None, 10,
                         "mantad-exec killed")
        with sqlite3.connect(db) as c:
            assert c.execute("UPDATE run SET logs_done = 0").rowcount == 1
        c.close()
        os.makedirs(os.path.join(tasks, bundle, "rootfs"))
        with open(os.path.join(tasks, bundle, "config.json"), "w") as f:
            f.write("{}\n")
    finally:
        os.kill(sup, signal.SIGCONT)
    node.wait_status(lambda s: any(d["name"] == "mantad-exec" and d["state"] == "up"
                                   and d["pid"] != ex for d in s["daemons"]), 30,
                     "mantad-exec restarted")
    nodelib.wait_for(lambda: not os.path.exists(os.path.join(tasks, bundle)) or None,
                     15, "the left bundle removed by the restarted exec")
    assert [u[3] for u in nodelib.task_updates(manager, t)] == [RUNNING, COMPLETED]
