"""Queue and admission (runc and crun): 50 tasks deployed at once with
tasks.max_concurrent = 2 all complete, each exactly once (one RUNNING, one
COMPLETED), in the order they were deployed (FIFO, not newest first), with
never more than 2 running at a time. Reservations: with a memory limit
that fits the budget only once, tasks run one at a time."""

import nodelib
from common import tasks_pb2 as tasks_pb

pytestmark = nodelib.skip_unless_built("mantad-exec")

RUNNING, COMPLETED = tasks_pb.RUNNING, tasks_pb.COMPLETED
N = 50


def max_parallel(updates):
    """Largest number of tasks between RUNNING and their final update, in
    the order the updates were published."""
    running, peak = set(), 0
    for t, _it, _circ, st in updates:
        if st == RUNNING:
            running.add(t)
        else:
            running.discard(t)
        peak = max(peak, len(running))
    return peak


def test_fifty_tasks(manager, make_node, bbroot, runtime):
    node = nodelib.exec_node(manager, make_node, bbroot, runtime,
                             tasks={"max_concurrent": 2})
    ids = ["%032x" % (0x5000 + i) for i in range(N)]
    for i, t in enumerate(ids):
        manager.deploy_task(node.node_id, nodelib.task_msg(
            t, "#!/bin/sh\necho task %d\nsleep 0.05\n" % i))
    nodelib.wait_for(lambda: sum(1 for u in nodelib.task_updates(manager)
                                 if u[3] == COMPLETED) >= N, 120, "50 tasks completed")
    ups = nodelib.task_updates(manager)
    for t in ids:
        assert [u[3] for u in ups if u[0] == t] == [RUNNING, COMPLETED], t
    assert max_parallel(ups) <= 2, ups
    # Admitted oldest first: two slots let neighbours swap, no more.
    started = [u[0] for u in ups if u[3] == RUNNING]
    assert sorted(started) == sorted(ids)
    for i, t in enumerate(started):
        assert abs(ids.index(t) - i) <= 1, "not started in deploy order: %r" % started
    for i, t in enumerate(ids):
        nodelib.wait_for(lambda: nodelib.task_log_text(manager, t) == "task %d\n" % i,
                         20, "output of task %d" % i)
    st = node.wait_online()
    assert st["tasks"]["completed"] == N and st["tasks"]["running"] == 0, st["tasks"]
    nodelib.wait_for(lambda: not any(nodelib.exec_leftovers(node, runtime).values()),
                     15, "nothing left behind")


def test_memory_reservation(manager, make_node, bbroot, runtime):
    """The budget is mem_total - reserve_memory_mb: reserve all but ~1.5
    limits, and only one task fits at a time even with max_concurrent 4."""
    st = None
    node = nodelib.exec_node(manager, make_node, bbroot, runtime,
                             tasks={"max_concurrent": 4})
    st = node.wait_online()
    total = st["resources"]["mem_total_bytes"]
    node.stop()
    limit = 64 << 20
    node.sections["resources"]["reserve_memory_mb"] = (total - limit - limit // 2) >> 20
    node.write_config()
    node.start()
    node.wait_online()
    ids = ["%032x" % (0x6000 + i) for i in range(4)]
    for t in ids:
        manager.deploy_task(node.node_id, nodelib.task_msg(t, "#!/bin/sh\nsleep 0.2\n"))
    nodelib.wait_for(lambda: sum(1 for u in nodelib.task_updates(manager)
                                 if u[3] == COMPLETED) >= 4, 60, "4 tasks completed")
    ups = nodelib.task_updates(manager)
    assert max_parallel(ups) == 1, ups
    assert [u[0] for u in ups if u[3] == RUNNING] == ids
