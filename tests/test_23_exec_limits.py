"""Resource limits of a task's container (runc and crun): a memory hog is
OOM-killed inside its cgroup and the task FAILED with reason oom (SendError
RESOURCE); a fork bomb is held by the pids limit while the node stays
healthy, and stop_task ends it without leftovers."""

import nodelib
from devmanager import hex_to_pair, pair_to_hex
from common import system_pb2 as system_pb
from common import tasks_pb2 as tasks_pb

pytestmark = nodelib.skip_unless_built("mantad-exec")

RUNNING, FAILED, STOPPED = tasks_pb.RUNNING, tasks_pb.FAILED, tasks_pb.STOPPED
PIDS_MAX = 512
# busybox tail -c N keeps N bytes in memory: 256 MiB against a 64 MiB limit.
HOG = ("#!/bin/sh\necho hogging\n"
       "head -c 300000000 /dev/zero | tail -c 268435456 >/dev/null || exit 1\n"
       "echo survived\n")
BOMB = "#!/bin/sh\necho bomb\nb() { b | b & }\nb\nsleep 600\n"


def test_oom(manager, make_node, bbroot, runtime):
    node = nodelib.exec_node(manager, make_node, bbroot, runtime,
                             containers={"default_memory_limit": "64M"})
    t = "0e" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(t, HOG))
    nodelib.wait_task_status(manager, t, FAILED, timeout=60)
    assert [u[3] for u in nodelib.task_updates(manager, t)] == [RUNNING, FAILED]
    err = manager.wait_call("SendError", timeout=nodelib.deadline(10),
                            pred=lambda r: pair_to_hex(r.request.task_id) == t)
    assert err.request.error_id == 12 and "oom" in err.request.content, err.request
    rc, tasks = nodelib.tasks_json(node.config)
    assert rc == 0 and tasks[0]["status"] == "FAILED", tasks
    assert tasks[0]["exit_code"] == 1, tasks
    out = nodelib.wait_for(lambda: nodelib.task_log_text(manager, t), 15, "output")
    assert "hogging" in out and "survived" not in out, out
    st = node.wait_online()
    assert all(d["restarts"] == 0 for d in st["daemons"]), st["daemons"]
    nodelib.wait_for(lambda: not any(nodelib.exec_leftovers(node, runtime).values()),
                     15, "nothing left behind")


def test_fork_bomb(manager, make_node, bbroot, runtime):
    node = nodelib.exec_node(manager, make_node, bbroot, runtime,
                             containers={"default_cpu_limit": "0.5",
                                         "default_memory_limit": "256M"})
    before = {d["name"]: d["pid"] for d in node.wait_online()["daemons"]}
    t = "0b" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(t, BOMB))
    nodelib.wait_task_status(manager, t, RUNNING)
    cid = nodelib.wait_for(lambda: [c for c in nodelib.exec_container_ids(node)
                                    if c.endswith("-1")], 10, "container id")[0]
    # The bomb fills the pids limit and stays there.
    peak = nodelib.wait_for(lambda: (nodelib.cgroup_pids(node, runtime, cid) or 0)
                            >= PIDS_MAX - 8 and nodelib.cgroup_pids(node, runtime, cid),
                            30, "fork bomb at the pids limit")
    assert peak <= PIDS_MAX
    # The node answers and keeps its heartbeat meanwhile.
    n0 = len(manager.heartbeats)
    st = node.wait_online()
    nodelib.wait_for(lambda: len(manager.heartbeats) >= n0 + 2, 10, "heartbeats")
    assert (nodelib.cgroup_pids(node, runtime, cid) or 0) <= PIDS_MAX

    manager.stop_task(node.node_id, system_pb.EnvId(swarm_id=hex_to_pair("5a" * 16),
                                                    task_id=hex_to_pair(t)))
    nodelib.wait_task_status(manager, t, STOPPED, timeout=30)
    nodelib.wait_for(lambda: not any(nodelib.exec_leftovers(node, runtime).values()),
                     20, "nothing left behind")
    st = node.wait_online()
    assert {d["name"]: d["pid"] for d in st["daemons"]} == before
