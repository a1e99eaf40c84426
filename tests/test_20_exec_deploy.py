"""deploy_task end to end with a real runtime (runc and crun): a task runs
in a container of the imported busybox image, its output reaches the
manager (AddTaskLogs) and `mantactl logs`, and exactly one RUNNING and one
final TaskUpdate are published (COMPLETED on exit 0, FAILED otherwise). A
deploy that cannot run (unknown image, swarm network, a round already
deployed) is refused with SendError, the node stays online, and nothing is
left behind."""

import os
import time

import nodelib
from devmanager import pair_to_hex
from common import tasks_pb2 as tasks_pb

pytestmark = nodelib.skip_unless_built("mantad-exec")

RUNNING, COMPLETED, FAILED = tasks_pb.RUNNING, tasks_pb.COMPLETED, tasks_pb.FAILED
FINAL = (tasks_pb.COMPLETED, tasks_pb.FAILED, tasks_pb.STOPPED)


def errors_for(manager, task_hex, wait=True):
    """The SendErrors about task_hex; with wait, once there is one (they
    travel through mantad-register, the updates through mantad-beat)."""
    def get():
        return [c.request for c in manager.calls("SendError")
                if pair_to_hex(c.request.task_id) == task_hex]
    if wait:
        nodelib.wait_for(get, 15, "SendError about task %s" % task_hex)
    return get()


def test_deploy_output_and_exit(manager, make_node, bbroot, runtime):
    node = nodelib.exec_node(manager, make_node, bbroot, runtime)
    ok, bad = "a1" * 16, "a2" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(ok, (
        "#!/bin/sh\necho \"hello from $TASK_ID in $SWARM_ID\"\n"
        "echo \"on stderr\" >&2\n")))
    manager.deploy_task(node.node_id, nodelib.task_msg(bad, "#!/bin/sh\necho bye\nexit 3\n"))
    nodelib.wait_task_status(manager, ok, COMPLETED)
    nodelib.wait_task_status(manager, bad, FAILED)
    assert [u[3] for u in nodelib.task_updates(manager, ok)] == [RUNNING, COMPLETED]
    assert [u[3] for u in nodelib.task_updates(manager, bad)] == [RUNNING, FAILED]
    for u in manager.task_updates:
        assert u.extra["qos"] == 1 and not u.extra["retain"]
        assert pair_to_hex(u.request.node_id) == node.node_id

    # Output: to the manager (WIRE.md section 8 frames) and mantactl logs.
    want = "hello from %s in %s\non stderr\n" % (ok, "5a" * 16)
    nodelib.wait_for(lambda: nodelib.task_log_text(manager, ok) == want, 15,
                     "task output in AddTaskLogs")
    frame = [d for d in manager.logs if d["task_id"] == ok][0]
    assert frame["node_id"] == node.node_id and frame["swarm_id"] == "5a" * 16
    r = nodelib.mantactl("logs", ok, "-c", node.config)
    assert r.returncode == 0 and r.stdout == want, (r.returncode, r.stdout, r.stderr)

    rc, tasks = nodelib.tasks_json(node.config)
    assert rc == 0
    by_id = {t["task_id"]: t for t in tasks}
    assert by_id[ok]["status"] == "COMPLETED" and by_id[ok]["exit_code"] == 0
    assert by_id[bad]["status"] == "FAILED" and by_id[bad]["exit_code"] == 3
    # A task's own failure is not the node's: no SendError for it.
    assert errors_for(manager, bad, wait=False) == []

    # Nothing left: no container, no cgroup, no bundle.
    nodelib.wait_for(lambda: not any(nodelib.exec_leftovers(node, runtime).values()),
                     10, "nothing left behind")


def test_refused_deploys(manager, make_node, bbroot, runtime):
    node = nodelib.exec_node(manager, make_node, bbroot, runtime)
    pids = {d["name"]: d["pid"] for d in node.wait_online()["daemons"]}
    noimg, net, dup, gpu = "b1" * 16, "b2" * 16, "b3" * 16, "b4" * 16

    manager.deploy_task(node.node_id, nodelib.task_msg(noimg, "#!/bin/sh\ntrue\n",
                                                       image="no-such-image:1.0"))
    manager.deploy_task(node.node_id, nodelib.task_msg(net, "#!/bin/sh\ntrue\n",
                                                       network="swarm-net"))
    manager.deploy_task(node.node_id, nodelib.task_msg(dup, "#!/bin/sh\necho once\n"))
    has_gpu = any(n.startswith("nvidia") and n[6:].isdigit() for n in os.listdir("/dev"))
    if not has_gpu:
        manager.deploy_task(node.node_id, nodelib.task_msg(gpu, "#!/bin/sh\ntrue\n",
                                                           gpu=True))
        nodelib.wait_task_status(manager, gpu, FAILED)
        e = errors_for(manager, gpu)
        assert len(e) == 1 and e[0].error_id == 18 and "GPU" in e[0].content, e
    nodelib.wait_task_status(manager, noimg, FAILED)
    nodelib.wait_task_status(manager, net, FAILED)
    nodelib.wait_task_status(manager, dup, COMPLETED)
    # The same round again: refused with an error, no second update.
    t0 = time.monotonic()
    manager.deploy_task(node.node_id, nodelib.task_msg(dup, "#!/bin/sh\necho twice\n"))
    manager.wait_call("SendError", timeout=nodelib.deadline(15), after=t0,
                      pred=lambda r: pair_to_hex(r.request.task_id) == dup)

    e = errors_for(manager, noimg)
    assert len(e) == 1 and e[0].error_id == 18 and "no-such-image" in e[0].content, e
    e = errors_for(manager, net)
    assert len(e) == 1 and e[0].error_id == 18 and "network" in e[0].content, e
    e = errors_for(manager, dup)
    assert len(e) == 1 and e[0].error_id == 19 and "already" in e[0].content, e
    assert [u[3] for u in nodelib.task_updates(manager, noimg)] == [FAILED]
    assert [u[3] for u in nodelib.task_updates(manager, dup)] == [RUNNING, COMPLETED]
    nodelib.wait_for(lambda: nodelib.task_log_text(manager, dup) == "once\n", 15,
                     "first round's output only")

    # A new round of the same task runs.
    manager.deploy_task(node.node_id, nodelib.task_msg(dup, "#!/bin/sh\necho again\n",
                                                       iteration=1))
    nodelib.wait_for(lambda: [u for u in nodelib.task_updates(manager, dup)
                              if u[1] == 1 and u[3] == COMPLETED], 30, "round 1 done")

    # A huge, odd image name: refused, and `mantactl tasks` still answers.
    long_ = "b5" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(long_, "#!/bin/sh\ntrue\n",
                                                       image="../" + "x" * 5000))
    nodelib.wait_task_status(manager, long_, FAILED)
    rc, tasks = nodelib.tasks_json(node.config)
    assert rc == 0 and len(tasks) == (5 if has_gpu else 6), tasks

    st = node.wait_online()
    assert {d["name"]: d["pid"] for d in st["daemons"]} == pids, "a daemon restarted"
    assert st["tasks"]["failed"] == (3 if has_gpu else 4), st["tasks"]
    assert st["tasks"]["completed"] == 2, st["tasks"]


def test_streamed_and_capped_logs(manager, make_node, bbroot, runtime):
    """tasks.live_logs_to_manager (node-only): output reaches the manager
    while the task runs, in frames that add up to the whole; the local log
    is capped at containers.log_config max-size, with a note."""
    node = nodelib.exec_node(manager, make_node, bbroot, runtime, containers={
        "log_config": {"type": "json-file", "config": {"max-size": "4k", "max-file": "1"}}},
        tasks={"live_logs_to_manager": True})
    slow, big = "c5" * 16, "c6" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(
        slow, "#!/bin/sh\necho first\nsleep 3\necho second\n"))
    manager.deploy_task(node.node_id, nodelib.task_msg(
        big, "#!/bin/sh\nyes 0123456789abcdef | head -c 100000\necho\necho tail\n"))
    nodelib.wait_for(lambda: nodelib.task_log_text(manager, slow) == "first\n", 10,
                     "the first line while the task runs")
    assert [u[3] for u in nodelib.task_updates(manager, slow)] == [RUNNING]
    nodelib.wait_task_status(manager, slow, COMPLETED)
    nodelib.wait_for(lambda: nodelib.task_log_text(manager, slow) == "first\nsecond\n",
                     10, "the whole output")
    nodelib.wait_task_status(manager, big, COMPLETED)
    text = nodelib.wait_for(lambda: "output cut" in nodelib.task_log_text(manager, big)
                            and nodelib.task_log_text(manager, big), 10, "capped output")
    assert text.startswith("0123456789abcdef\n") and "tail" not in text
    assert len(text) < 4096 + 100, len(text)
    r = nodelib.mantactl("logs", big, "-c", node.config)
    assert r.returncode == 0 and r.stdout == text


def test_runtime_start_failure(manager, make_node, bbroot, runtime):
    """A container the runtime cannot start (here: a zipapp payload on an
    image without python) is tried 1 + tasks.retry_attempts times, then
    FAILED, with SendError DOCKER carrying the runtime's message."""
    node = nodelib.exec_node(manager, make_node, bbroot, runtime,
                             tasks={"retry_attempts": 2})
    t = "c7" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(t, b"PK\x03\x04 not really a zip"))
    nodelib.wait_task_status(manager, t, FAILED)
    assert [u[3] for u in nodelib.task_updates(manager, t)] == [FAILED]
    err = manager.wait_call("SendError", timeout=nodelib.deadline(10),
                            pred=lambda r: pair_to_hex(r.request.task_id) == t)
    assert err.request.error_id == 18, err.request
    assert "3 attempts" in err.request.content and "python" in err.request.content, \
        err.request.content
    ids = nodelib.exec_container_ids(node)
    assert len(ids) == 3, ids
    nodelib.wait_for(lambda: not any(nodelib.exec_leftovers(node, runtime).values()),
                     10, "nothing left behind")


def test_drain(manager, make_node, bbroot, runtime):
    """DrainRequest on the exec endpoint: new deploys end FAILED (draining,
    SendError NODE), the flag survives a restart of mantad-exec, and
    undraining takes tasks again."""
    import signal
    import ipc_pb2
    node = nodelib.exec_node(manager, make_node, bbroot, runtime)
    rep = nodelib.ipc_call(node.run_dir, "exec", ipc_pb2.Msg(drain=ipc_pb2.DrainRequest()))
    assert rep.WhichOneof("body") == "status" and rep.status.exec.draining
    node.wait_status(lambda s: s["state"] == "drained", 10, "drained")
    pid = node.pids()["mantad-exec"]
    os.kill(pid, signal.SIGKILL)
    node.wait_status(lambda s: any(d["name"] == "mantad-exec" and d["state"] == "up"
                                   and d["pid"] != pid for d in s["daemons"]), 30,
                     "mantad-exec restarted")
    t, u = "d7" * 16, "d8" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(t, "#!/bin/sh\ntrue\n"))
    nodelib.wait_task_status(manager, t, FAILED)
    e = errors_for(manager, t)
    assert len(e) == 1 and e[0].error_id == 19 and "draining" in e[0].content, e
    rep = nodelib.ipc_call(node.run_dir, "exec",
                           ipc_pb2.Msg(drain=ipc_pb2.DrainRequest(undrain=True)))
    assert not rep.status.exec.draining
    manager.deploy_task(node.node_id, nodelib.task_msg(u, "#!/bin/sh\ntrue\n"))
    nodelib.wait_task_status(manager, u, COMPLETED)
