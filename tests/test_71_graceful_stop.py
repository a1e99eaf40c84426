"""A graceful stop drains first (issue 6): `mantactl stop`, SIGTERM to the
supervisor and the stop_node command refuse new tasks, let the running ones
finish within the drain timeout (mantactl stop --timeout S, default 30 s),
stop what still runs after it, tell the manager (NodeStatus DISCONNECTED)
and exit 0. The drain of a stop ends with it: the next start takes tasks.
SIGINT, or a second SIGTERM, stops at once."""

import signal
import time

import pytest

import faultlib
import nodelib

pytestmark = [nodelib.skip_unless_built("mantad-exec"),
              # the conftest.py runtime fixture, runc only
              pytest.mark.parametrize("runtime", ["runc"], indirect=True)]

RUNNING, COMPLETED, STOPPED, FAILED = (faultlib.RUNNING, faultlib.COMPLETED,
                                       faultlib.STOPPED, faultlib.FAILED)


def test_stop_waits_for_running_tasks(manager, make_node, bbroot, runtime):
    node = nodelib.exec_node(manager, make_node, bbroot, runtime)
    t, late = "71" * 16, "72" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(
        t, "#!/bin/sh\necho a\nsleep 3\necho b\n"))
    nodelib.wait_task_status(manager, t, RUNNING)
    t0 = time.monotonic()
    p = nodelib.subprocess.Popen([nodelib.MANTACTL, "stop", "-c", node.config],
                                 stdout=nodelib.subprocess.PIPE,
                                 stderr=nodelib.subprocess.PIPE,
                                 universal_newlines=True)
    node.wait_status(lambda s: s["state"] == "stopping", 10, "state stopping")
    # A deploy during the drain of the stop is refused.
    manager.deploy_task(node.node_id, nodelib.task_msg(late, "#!/bin/sh\ntrue\n"))
    nodelib.wait_task_status(manager, late, FAILED)
    out, err = p.communicate(timeout=nodelib.deadline(60))
    took = time.monotonic() - t0
    assert p.returncode == 0, err
    assert node.proc.wait(10) == 0
    assert took >= 2.0, took
    # Finished, not stopped; its output went out; the manager was told.
    assert faultlib.statuses(manager, t) == [RUNNING, COMPLETED]
    nodelib.wait_for(lambda: nodelib.task_log_text(manager, t) == "a\nb\n", 5,
                     "the task's output before the stop")
    nodelib.wait_disconnected(manager, node.node_id, t0, timeout=20)
    assert not any(nodelib.exec_leftovers(node, runtime).values())
    print("drain before stop took %.2f s (task of 3 s)" % took)

    # The stop's drain is not kept: the next start takes tasks.
    node.start()
    node.wait_online()
    t2 = "73" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(t2, "#!/bin/sh\ntrue\n"))
    nodelib.wait_task_status(manager, t2, COMPLETED)


def test_stop_timeout_stops_the_rest(manager, make_node, bbroot, runtime):
    node = nodelib.exec_node(manager, make_node, bbroot, runtime)
    quick, slow = "74" * 16, "75" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(quick, "#!/bin/sh\nsleep 1\n"))
    manager.deploy_task(node.node_id, nodelib.task_msg(slow, "#!/bin/sh\nsleep 300\n"))
    nodelib.wait_task_status(manager, quick, RUNNING)
    nodelib.wait_task_status(manager, slow, RUNNING)
    t0 = time.monotonic()
    r = node.stop(timeout=60, drain=3)
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert 2.5 <= took < 25, took
    assert not any(nodelib.exec_leftovers(node, runtime).values())
    node.start()
    node.wait_online()
    nodelib.wait_task_status(manager, slow, STOPPED, timeout=20)
    assert faultlib.statuses(manager, quick) == [RUNNING, COMPLETED]
    assert faultlib.statuses(manager, slow) == [RUNNING, STOPPED]


def test_sigterm_drains_sigint_does_not(manager, make_node, bbroot, runtime):
    node = nodelib.exec_node(manager, make_node, bbroot, runtime)
    t = "76" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(t, "#!/bin/sh\nsleep 2\n"))
    nodelib.wait_task_status(manager, t, RUNNING)
    t0 = time.monotonic()
    node.terminate(signal.SIGTERM)
    assert node.wait_exit(60) == 0
    assert time.monotonic() - t0 >= 1.5
    assert faultlib.statuses(manager, t) == [RUNNING, COMPLETED]
    nodelib.wait_disconnected(manager, node.node_id, t0, timeout=20)
    node.wait_no_process(10)

    # SIGTERM then SIGINT: the second signal cuts the drain short.
    node.start()
    node.wait_online()
    t2 = "77" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(t2, "#!/bin/sh\nsleep 300\n"))
    nodelib.wait_task_status(manager, t2, RUNNING)
    t1 = time.monotonic()
    node.terminate(signal.SIGTERM)
    node.wait_status(lambda s: s["state"] == "stopping", 10, "stopping")
    node.terminate(signal.SIGINT)
    assert node.wait_exit(30) == 0
    assert time.monotonic() - t1 < 20
    node.wait_no_process(10)
    assert not any(nodelib.exec_leftovers(node, runtime).values())
    node.start()
    node.wait_online()
    nodelib.wait_task_status(manager, t2, STOPPED, timeout=20)
    assert faultlib.statuses(manager, t2) == [RUNNING, STOPPED]


def test_stop_node_command_drains(manager, make_node, bbroot, runtime):
    node = nodelib.exec_node(manager, make_node, bbroot, runtime)
    t = "78" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(t, "#!/bin/sh\nsleep 2\necho done\n"))
    nodelib.wait_task_status(manager, t, RUNNING)
    t0 = time.monotonic()
    manager.stop_node(node.node_id)
    nodelib.wait_disconnected(manager, node.node_id, t0, timeout=20)
    assert node.wait_exit(60) == 0
    assert faultlib.statuses(manager, t) == [RUNNING, COMPLETED]
    nodelib.wait_for(lambda: nodelib.task_log_text(manager, t) == "done\n", 5,
                     "output sent before the stop")
    node.wait_no_process(10)
    assert node.status()[0] == 3
