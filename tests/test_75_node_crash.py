"""Whole-node crash (issue 6): kill -9 of the supervisor and of every daemon
at once, then `mantactl start`. The container still running is re-adopted
and reported when it ends; the one that ended meanwhile is reported once,
with its exit status; the one still queued runs once; the one that had
finished before is never run again, not even when the manager deploys it
again; every log arrives once; nothing is left behind."""

import faultlib
import nodelib
from devmanager import pair_to_hex

pytestmark = nodelib.skip_unless_built("mantad-exec")

RUNNING, COMPLETED, FAILED = faultlib.RUNNING, faultlib.COMPLETED, faultlib.FAILED


def test_kill9_everything(manager, make_node, bbroot):
    runtime = faultlib.runc_or_skip(bbroot)
    node = nodelib.exec_node(manager, make_node, bbroot, runtime,
                             tasks={"max_concurrent": 2})
    done, long_, short, queued = "c1" * 16, "c2" * 16, "c3" * 16, "c4" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(done, "#!/bin/sh\necho done once\n"))
    nodelib.wait_task_status(manager, done, COMPLETED)
    nodelib.wait_for(lambda: nodelib.task_log_text(manager, done) == "done once\n", 15,
                     "output of the finished task")
    manager.deploy_task(node.node_id, nodelib.task_msg(
        long_, faultlib.counting_script(60, pause="0.1")))
    # short ends (exit 5) while the node is down.
    manager.deploy_task(node.node_id, nodelib.task_msg(
        short, "#!/bin/sh\necho short\nsleep 2\nexit 5\n"))
    manager.deploy_task(node.node_id, nodelib.task_msg(queued, "#!/bin/sh\necho queued\n"))
    nodelib.wait_task_status(manager, long_, RUNNING)
    nodelib.wait_task_status(manager, short, RUNNING)
    st = node.wait_status(lambda s: s["tasks"]["queued"] == 1, 10, "one queued")

    faultlib.kill_node(node)
    # The containers live on without the node; short ends meanwhile.
    alive = faultlib.containers_alive(node)
    assert len(alive) == 2, alive
    nodelib.wait_for(lambda: len(faultlib.containers_alive(node)) == 1, 20,
                     "the short task ended while the node was down")

    node.start()
    node.wait_online(30)
    nodelib.wait_task_status(manager, short, FAILED, timeout=30)
    nodelib.wait_task_status(manager, long_, COMPLETED, timeout=30)
    nodelib.wait_task_status(manager, queued, COMPLETED, timeout=30)
    assert faultlib.statuses(manager, done) == [RUNNING, COMPLETED]
    assert faultlib.statuses(manager, long_) == [RUNNING, COMPLETED]
    assert faultlib.statuses(manager, short) == [RUNNING, FAILED]
    assert faultlib.statuses(manager, queued) == [RUNNING, COMPLETED]
    rc, tasks = nodelib.tasks_json(node.config)
    by = {t["task_id"]: t for t in tasks}
    assert by[short]["exit_code"] == 5 and by[long_]["exit_code"] == 0, by
    nodelib.wait_for(lambda: faultlib.check_lines(nodelib.task_log_text(manager, long_),
                                                  60) == ([], []), 20,
                     "the adopted task's whole output")
    text = nodelib.task_log_text(manager, long_)
    assert text == "".join("line %d\n" % i for i in range(60)), text
    nodelib.wait_for(lambda: nodelib.task_log_text(manager, short) == "short\n", 15,
                     "the ended task's output")
    nodelib.wait_for(lambda: nodelib.task_log_text(manager, queued) == "queued\n", 15,
                     "the queued task's output")
    assert nodelib.task_log_text(manager, done) == "done once\n"

    # The manager sends the finished round again: refused, never run again.
    manager.deploy_task(node.node_id, nodelib.task_msg(done, "#!/bin/sh\necho twice\n"))
    manager.wait_call("SendError", timeout=nodelib.deadline(15),
                      pred=lambda c: pair_to_hex(c.request.task_id) == done
                      and "already" in c.request.content)
    assert faultlib.statuses(manager, done) == [RUNNING, COMPLETED]
    assert nodelib.task_log_text(manager, done) == "done once\n"
    nodelib.wait_for(lambda: not any(nodelib.exec_leftovers(node, runtime).values()),
                     20, "nothing left behind")
    st = node.wait_ready()
    assert st["tasks"]["completed"] == 3 and st["tasks"]["failed"] == 1, st["tasks"]


def test_deploy_interrupted_before_its_bundle(manager, make_node, bbroot):
    """Issue 15 (the 600-task chaos run): exec killed inside deploy, after
    exec.db had the run QUEUED and before its bundle was written (dir still
    empty). Nothing about it left the node and beat, never answered, hands
    the deploy over again: the run is forgotten at recovery, and the deploy
    handed over again runs once. Before, it was started without a bundle
    (FAILED: the shim died), then the copy ran as a failed round deployed
    anew: two terminal updates for one deploy. The window is rebuilt here by
    emptying the queued run's dir in exec.db while the node is down; the
    manager's second publish stands for beat's hand-off again."""
    import os
    import shutil
    import sqlite3
    runtime = faultlib.runc_or_skip(bbroot)
    node = nodelib.exec_node(manager, make_node, bbroot, runtime,
                             tasks={"max_concurrent": 1})
    busy, waiting = "c5" * 16, "c6" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(
        busy, faultlib.counting_script(30, pause="0.1")))
    nodelib.wait_task_status(manager, busy, RUNNING)
    again = nodelib.task_msg(waiting, "#!/bin/sh\necho once\n")
    manager.deploy_task(node.node_id, again)
    node.wait_status(lambda s: s["tasks"]["queued"] == 1, 10, "one queued")

    faultlib.kill_node(node)
    db = sqlite3.connect(os.path.join(node.state_dir, "exec.db"), timeout=10)
    try:
        (d,) = db.execute("SELECT dir FROM run WHERE task = ?", (waiting,)).fetchone()
        assert d, "the queued run has a bundle"
        with db:
            db.execute("UPDATE run SET dir = '' WHERE task = ?", (waiting,))
    finally:
        db.close()
    shutil.rmtree(d)

    node.start()
    node.wait_ready(30)         # exec has recovered
    manager.deploy_task(node.node_id, again)
    nodelib.wait_task_status(manager, waiting, COMPLETED, timeout=40)
    nodelib.wait_task_status(manager, busy, COMPLETED, timeout=30)
    assert faultlib.statuses(manager, waiting) == [RUNNING, COMPLETED]
    nodelib.wait_log(node, "task %s iteration 0 circular 0: deploy interrupted" % waiting)
    nodelib.wait_for(lambda: nodelib.task_log_text(manager, waiting) == "once\n", 15,
                     "the output, once")
    nodelib.wait_for(lambda: not any(nodelib.exec_leftovers(node, runtime).values()),
                     20, "nothing left behind")
