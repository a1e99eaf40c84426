"""Offline restart (issue 6): the node is killed (kill -9 of everything) and
started again while the manager and the broker are both unreachable. All
its daemons start, its running tasks keep running (re-adopted, not
restarted), one ends meanwhile; once the manager and the broker return the
node registers with the same id and reports everything, once."""

import time

import faultlib
import nodelib
from devmanager import pair_to_hex

pytestmark = nodelib.skip_unless_built("mantad-exec")

RUNNING, COMPLETED = faultlib.RUNNING, faultlib.COMPLETED


def test_restart_while_offline(pbroker, pmanager, make_node, bbroot):
    runtime = faultlib.runc_or_skip(bbroot)
    manager = pmanager
    node = nodelib.exec_node(manager, make_node, bbroot, runtime,
                             tasks={"max_concurrent": 3})
    long_, short = "e1" * 16, "e2" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(
        long_, faultlib.counting_script(100, pause="0.1")))
    manager.deploy_task(node.node_id, nodelib.task_msg(
        short, faultlib.counting_script(30, pause="0.1")))
    nodelib.wait_task_status(manager, long_, RUNNING)
    nodelib.wait_task_status(manager, short, RUNNING)
    registered = len(manager.calls("RegisterNode"))

    # Both away, then the node killed outright.
    pbroker.stop()
    manager.stop_grpc()
    faultlib.kill_node(node)
    alive = faultlib.containers_alive(node)
    assert len(alive) == 2, alive

    # Started offline: every daemon up, the tasks kept (not restarted).
    node.start()
    st = node.wait_status(lambda s: s["daemons"] and all(
        d["state"] == "up" for d in s["daemons"]) and set(nodelib.DAEMONS) <= {
        d["name"] for d in s["daemons"]}, 30, "every daemon up, offline")
    assert st["state"] in ("registering", "offline"), st
    assert not st["manager"]["registered"] and not st["mqtt"]["connected"], st
    assert faultlib.task_state(node, long_) == "RUNNING"
    assert sorted(faultlib.containers_alive(node)) == sorted(alive)
    # short ends offline: its update and its logs wait in the outboxes.
    st = node.wait_status(lambda s: s["tasks"]["completed"] == 1
                          and s["mqtt"]["outbox"] >= 1 and s["manager"]["outbox"] >= 1,
                          30, "short ended, reports waiting")
    assert faultlib.task_state(node, long_) == "RUNNING"
    print("offline: mqtt outbox %d, log outbox %d" % (st["mqtt"]["outbox"],
                                                      st["manager"]["outbox"]))

    t0 = time.monotonic()
    pbroker.start()
    manager.start_grpc()
    r = manager.wait_call("RegisterNode", timeout=nodelib.deadline(30), after=t0)
    assert pair_to_hex(r.request.node_id) == node.node_id
    assert len(manager.calls("RegisterNode")) > registered
    node.wait_online(60)
    nodelib.wait_task_status(manager, short, COMPLETED, timeout=60)
    nodelib.wait_task_status(manager, long_, COMPLETED, timeout=60)
    assert faultlib.statuses(manager, short) == [RUNNING, COMPLETED]
    assert faultlib.statuses(manager, long_) == [RUNNING, COMPLETED]
    for t, n in ((short, 30), (long_, 100)):
        nodelib.wait_for(lambda: faultlib.check_lines(
            nodelib.task_log_text(manager, t), n) == ([], []), 30,
            "whole output of %s" % t)
        assert nodelib.task_log_text(manager, t) == "".join(
            "line %d\n" % i for i in range(n)), t
    node.wait_status(lambda s: s["mqtt"]["outbox"] == 0 and s["manager"]["outbox"] == 0,
                     30, "outboxes empty")
    nodelib.wait_for(lambda: not any(nodelib.exec_leftovers(node, runtime).values()),
                     20, "nothing left behind")
