"""stop_task, stop_swarm and tasks.task_timeout (runc and crun): the
container gets SIGTERM, then SIGKILL after the grace period; the task ends
STOPPED (stopped) or FAILED (timeout, with SendError TIMEOUT), exactly once;
nothing is left: no container in the runtime's list, no cgroup, no bundle.
A queued task that is stopped never starts."""

import time

import nodelib
from devmanager import hex_to_pair, pair_to_hex
from common import system_pb2 as system_pb
from common import tasks_pb2 as tasks_pb

pytestmark = nodelib.skip_unless_built("mantad-exec")

RUNNING, FAILED, STOPPED = tasks_pb.RUNNING, tasks_pb.FAILED, tasks_pb.STOPPED
SWARM = "5a" * 16
OTHER = "6b" * 16
# Exits at once on SIGTERM (a shell as pid 1 ignores signals it does not trap).
POLITE = "#!/bin/sh\ntrap 'echo got TERM; exit 0' TERM\necho up\nsleep 600 &\nwait\n"
# Ignores SIGTERM: only SIGKILL, after the grace period, ends it.
STUBBORN = "#!/bin/sh\necho up\nsleep 600\n"


def statuses(manager, task):
    return [u[3] for u in nodelib.task_updates(manager, task)]


def clean(node, runtime):
    nodelib.wait_for(lambda: not any(nodelib.exec_leftovers(node, runtime).values()),
                     15, "nothing left behind (%s)" % nodelib.exec_leftovers(node, runtime))


def test_stop_task_and_swarm(manager, make_node, bbroot, runtime):
    node = nodelib.exec_node(manager, make_node, bbroot, runtime,
                             tasks={"max_concurrent": 3})
    a, b, c, q = "d1" * 16, "d2" * 16, "d3" * 16, "d4" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(a, POLITE))
    manager.deploy_task(node.node_id, nodelib.task_msg(b, POLITE, swarm_hex=OTHER))
    manager.deploy_task(node.node_id, nodelib.task_msg(c, STUBBORN, swarm_hex=OTHER))
    manager.deploy_task(node.node_id, nodelib.task_msg(q, POLITE, swarm_hex=OTHER))
    for t in (a, b, c):
        nodelib.wait_task_status(manager, t, RUNNING)
    nodelib.wait_for(lambda: "up" in nodelib.mantactl("logs", a, "-c", node.config).stdout,
                     10, "task a printed")

    t0 = time.monotonic()
    manager.stop_swarm(node.node_id, OTHER)
    nodelib.wait_task_status(manager, q, STOPPED, timeout=10)
    for t in (b, c):
        nodelib.wait_task_status(manager, t, STOPPED, timeout=20)
    took = time.monotonic() - t0
    assert 4 <= took < 15, "SIGKILL after the grace period: %.1fs" % took
    assert statuses(manager, b) == [RUNNING, STOPPED]
    assert statuses(manager, c) == [RUNNING, STOPPED]
    assert statuses(manager, q) == [STOPPED]     # queued: never ran
    assert statuses(manager, a) == [RUNNING]     # another swarm

    manager.stop_task(node.node_id, system_pb.EnvId(swarm_id=hex_to_pair(SWARM),
                                                    task_id=hex_to_pair(a)))
    nodelib.wait_task_status(manager, a, STOPPED, timeout=10)
    assert statuses(manager, a) == [RUNNING, STOPPED]
    nodelib.wait_for(lambda: "got TERM" in nodelib.mantactl("logs", a, "-c",
                                                          node.config).stdout, 10,
                     "the task saw SIGTERM")
    # A stopped run's output stays here: the reference sends none, and a
    # manager built against it reads an upload as the task's natural end.
    assert not [d for d in manager.logs if d["task_id"] in (a, b, c, q)]
    clean(node, runtime)
    rc, tasks = nodelib.tasks_json(node.config)
    assert rc == 0 and sorted(t["status"] for t in tasks) == ["STOPPED"] * 4, tasks
    # Stopping is the manager's wish, not an error.
    assert not [c for c in manager.calls("SendError")
                if pair_to_hex(c.request.task_id) in (a, b, c, q)]


def test_timeout(manager, make_node, bbroot, runtime):
    node = nodelib.exec_node(manager, make_node, bbroot, runtime,
                             tasks={"task_timeout": 2})
    t = "e1" * 16
    t0 = time.monotonic()
    manager.deploy_task(node.node_id, nodelib.task_msg(t, POLITE))
    nodelib.wait_task_status(manager, t, FAILED, timeout=20)
    assert time.monotonic() - t0 >= 2
    assert statuses(manager, t) == [RUNNING, FAILED]
    err = manager.wait_call("SendError", timeout=nodelib.deadline(10),
                            pred=lambda r: pair_to_hex(r.request.task_id) == t)
    assert err.request.error_id == 11 and "timeout" in err.request.content
    # The end of the run for the manager: its one upload, with the reason.
    text = nodelib.wait_for(lambda: "task_timeout" in nodelib.task_log_text(manager, t)
                            and nodelib.task_log_text(manager, t), 10,
                            "the logs with the timeout's reason")
    assert text.startswith("up\n") and "reported FAILED" in text, text
    rc, tasks = nodelib.tasks_json(node.config)
    assert [x["status"] for x in tasks] == ["FAILED"]
    clean(node, runtime)
    assert len([c for c in manager.calls("AddTaskLogs")
                if c.extra.get("log", {}).get("task_id") == t]) == 1


def test_node_stop_stops_tasks(manager, make_node, bbroot, runtime):
    """mantactl stop: running tasks that outlive the drain (--timeout) are
    stopped (STOPPED, once) and nothing is left behind, even of a task that
    ignores SIGTERM."""
    node = nodelib.exec_node(manager, make_node, bbroot, runtime)
    a, b = "f1" * 16, "f2" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(a, POLITE))
    manager.deploy_task(node.node_id, nodelib.task_msg(b, STUBBORN))
    nodelib.wait_task_status(manager, a, RUNNING)
    nodelib.wait_task_status(manager, b, RUNNING)
    r = node.stop(timeout=30, drain=1)
    assert r.returncode == 0, r.stderr
    assert not any(nodelib.exec_leftovers(node, runtime).values()), \
        nodelib.exec_leftovers(node, runtime)
    # Announced now, or at the next start (beat may have gone first).
    node.start()
    node.wait_online()
    for t in (a, b):
        nodelib.wait_task_status(manager, t, STOPPED, timeout=20)
        assert statuses(manager, t) == [RUNNING, STOPPED]


def test_next_round_replaces_running(manager, make_node, bbroot, runtime):
    """A deploy of the same task with a new iteration stops the round still
    running (STOPPED) and runs the new one (WIRE.md section 6)."""
    node = nodelib.exec_node(manager, make_node, bbroot, runtime)
    t = "e7" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(t, POLITE, iteration=0))
    nodelib.wait_task_status(manager, t, RUNNING)
    manager.deploy_task(node.node_id, nodelib.task_msg(
        t, "#!/bin/sh\necho round 1\n", iteration=1))
    nodelib.wait_for(lambda: [u for u in nodelib.task_updates(manager, t)
                              if u[1] == 1 and u[3] == tasks_pb.COMPLETED], 20,
                     "round 1 completed")
    ups = nodelib.task_updates(manager, t)
    assert [u[3] for u in ups if u[1] == 0] == [RUNNING, STOPPED], ups
    assert [u[3] for u in ups if u[1] == 1] == [RUNNING, tasks_pb.COMPLETED], ups
    rc, tasks = nodelib.tasks_json(node.config)
    assert sorted((x["iteration"], x["status"]) for x in tasks) == \
        [(0, "STOPPED"), (1, "COMPLETED")]
