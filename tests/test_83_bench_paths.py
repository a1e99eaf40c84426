"""make bench (issue 14) finds a running task's bundle where mantad-exec
writes it, <state_dir>/tasks/<swarm>-<task>-<iteration>-<circular>: the
bench's own helpers, bench.running_pid (the workload's waiter) and
exec_bench.template_bundle (the bare-runtime baseline), against a real node.
Both waited 30 s on tasks/<task>-0-0 and failed the bench once exec keyed
bundles on the swarm too."""

import os
import sys

import nodelib
from common import tasks_pb2 as tasks_pb

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "bench"))

import bench  # noqa: E402
import exec_bench  # noqa: E402

pytestmark = nodelib.skip_unless_built("mantad-exec")


def test_bench_finds_the_bundles(manager, make_node, bbroot):
    runtime = nodelib.pick_runtime(bbroot)
    node = make_node(manager.grpc_port, overrides=nodelib.exec_sections(runtime))
    r = nodelib.image_import(node.config, "busybox", bbroot)
    assert r.returncode == 0, r.stderr
    node.start()
    node.node_id = node.wait_online(30)["node_id"]

    swarm = nodelib.random_hex()
    task = nodelib.random_hex()
    manager.deploy_task(node.node_id, nodelib.task_msg(task, bench.WAITER, swarm_hex=swarm))
    pid = bench.running_pid(node, swarm, task)
    assert os.path.exists("/proc/%d" % pid)

    def ended():
        try:
            os.kill(pid, 10)        # SIGUSR1 until the shell's trap is there
        except ProcessLookupError:
            pass
        return exec_bench.completed_if_any(manager, task)
    nodelib.wait_for(ended, 60, "the waiter task to end", interval=0.2)
    nodelib.wait_task_status(manager, task, (tasks_pb.COMPLETED,), timeout=30)

    cfg = exec_bench.template_bundle(manager, node)
    assert cfg["process"]["args"] and cfg["root"]["path"]
