"""mantactl drain / undrain (issue 6): a drained node takes no new task (a
deploy_task gets a FAILED update and a SendError saying "draining"), the
tasks it runs finish, the manager hears SetNodeStatus DISCONNECTED (and
CONNECTED after undrain), status goes draining -> drained, --wait returns
when none runs (exit 0) or at --timeout (exit 1); a drain outlives a
restart of the node until undrain."""

import time

import pytest

import faultlib
import nodelib
from devmanager import pair_to_hex
from common import informations_pb2 as info_pb

pytestmark = [nodelib.skip_unless_built("mantad-exec"),
              # the conftest.py runtime fixture, runc only
              pytest.mark.parametrize("runtime", ["runc"], indirect=True)]

RUNNING, COMPLETED, FAILED = faultlib.RUNNING, faultlib.COMPLETED, faultlib.FAILED
CONNECTED, DISCONNECTED = info_pb.CONNECTED, info_pb.DISCONNECTED


def ctl(node, *args, timeout=60):
    return nodelib.mantactl(*(list(args) + ["-c", node.config]), timeout=timeout)


def test_drain_wait_undrain(manager, make_node, bbroot, runtime):
    node = nodelib.exec_node(manager, make_node, bbroot, runtime)
    slow, refused, after = "d1" * 16, "d2" * 16, "d3" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(
        slow, "#!/bin/sh\necho begin\nsleep 3\necho end\n"))
    nodelib.wait_task_status(manager, slow, RUNNING)

    t0 = time.monotonic()
    r = ctl(node, "drain")
    assert r.returncode == 0, r.stderr
    assert "draining" in r.stdout, r.stdout
    st = node.wait_status(lambda s: s["state"] == "draining", 10, "state draining")
    assert st["refusing"] and "draining" in st["refusing"], st
    manager.wait_call("SetNodeStatus", timeout=nodelib.deadline(15), after=t0,
                      pred=lambda c: c.request.status == DISCONNECTED
                      and pair_to_hex(c.request.node_id) == node.node_id)

    # A deploy while draining: FAILED at once, and SendError says why.
    manager.deploy_task(node.node_id, nodelib.task_msg(refused, "#!/bin/sh\ntrue\n"))
    nodelib.wait_task_status(manager, refused, FAILED)
    err = manager.wait_call("SendError", timeout=nodelib.deadline(15),
                            pred=lambda c: pair_to_hex(c.request.task_id) == refused)
    assert "draining" in err.request.content and err.request.error_id == 19, err.request
    assert faultlib.statuses(manager, refused) == [FAILED]

    # --wait returns once the running task has finished, not before.
    r = ctl(node, "drain", "--wait", "--timeout", "30")
    waited = time.monotonic() - t0
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert faultlib.statuses(manager, slow) == [RUNNING, COMPLETED]
    assert waited >= 2.5, waited
    st = node.wait_status(lambda s: s["state"] == "drained", 10, "state drained")
    assert st["tasks"]["running"] == 0 and st["tasks"]["completed"] == 1, st["tasks"]
    nodelib.wait_for(lambda: nodelib.task_log_text(manager, slow) == "begin\nend\n",
                     15, "the drained task's output")

    # undrain: CONNECTED, and tasks run again.
    t1 = time.monotonic()
    r = ctl(node, "undrain")
    assert r.returncode == 0, r.stderr
    manager.wait_call("SetNodeStatus", timeout=nodelib.deadline(15), after=t1,
                      pred=lambda c: c.request.status == CONNECTED)
    st = node.wait_online()
    assert st["refusing"] is None, st
    manager.deploy_task(node.node_id, nodelib.task_msg(after, "#!/bin/sh\necho ok\n"))
    nodelib.wait_task_status(manager, after, COMPLETED)
    # The node itself stayed up all along: no daemon restarted.
    assert all(d["restarts"] == 0 for d in st["daemons"]), st["daemons"]


def test_drain_wait_timeout(manager, make_node, bbroot, runtime):
    node = nodelib.exec_node(manager, make_node, bbroot, runtime)
    t = "d4" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(t, "#!/bin/sh\nsleep 30\n"))
    nodelib.wait_task_status(manager, t, RUNNING)
    t0 = time.monotonic()
    r = ctl(node, "drain", "--wait", "--timeout", "1")
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert 0.9 <= time.monotonic() - t0 < 10
    assert "still running" in r.stderr, r.stderr
    # Still draining, the task untouched.
    st = node.wait_status(lambda s: s["state"] == "draining", 5, "still draining")
    assert st["tasks"]["running"] == 1, st["tasks"]
    assert faultlib.statuses(manager, t) == [RUNNING]
    # Usage and not-running errors.
    assert ctl(node, "drain", "--timeout", "x").returncode == 2
    assert ctl(node, "undrain", "--wait").returncode == 2


def test_drain_outlives_restart(manager, make_node, bbroot, runtime):
    node = nodelib.exec_node(manager, make_node, bbroot, runtime)
    r = ctl(node, "drain", "--wait")
    assert r.returncode == 0 and "drained" in r.stdout, (r.stdout, r.stderr)
    r = node.stop()
    assert r.returncode == 0, r.stderr
    assert ctl(node, "drain").returncode == 3
    t0 = time.monotonic()
    node.start()
    st = node.wait_status(lambda s: s["state"] == "drained", 30, "drained after restart")
    # The manager registered the node again, and heard DISCONNECTED after.
    manager.wait_call("SetNodeStatus", timeout=nodelib.deadline(20), after=t0,
                      pred=lambda c: c.request.status == DISCONNECTED)
    t = "d5" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(t, "#!/bin/sh\ntrue\n"))
    nodelib.wait_task_status(manager, t, FAILED)
    assert ctl(node, "undrain").returncode == 0
    node.wait_online()
    t2 = "d6" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(t2, "#!/bin/sh\ntrue\n"))
    nodelib.wait_task_status(manager, t2, COMPLETED)
