"""Commands published while mantad-beat is away are not lost (issue 15,
finding 8): beat keeps a persistent MQTT session (clean session false) with
QoS 1 subscriptions under the same client id and topics, so the broker
holds what the manager published meanwhile and delivers it on return."""

import os
import re
import signal

import nodelib
from common import tasks_pb2 as tasks_pb

pytestmark = nodelib.skip_unless_built("mantad-exec")

RUNNING, COMPLETED = tasks_pb.RUNNING, tasks_pb.COMPLETED


def connects(broker, client_id):
    return re.findall(r"New client connected from \S+ as %s \(p2, (c[01]), k60\)"
                      % client_id, broker.log())


def test_deploy_while_beat_is_down(broker, manager, make_node, bbroot, runtime):
    node = nodelib.exec_node(manager, make_node, bbroot, runtime)
    cid = node.node_id          # 32 digits: the same in the reference's form
    assert connects(broker, cid) == ["c0"]      # a persistent session
    sup, beat = node.supervisor_pid, node.pids()["mantad-beat"]
    t = "%032x" % 0xc1000001
    # The supervisor held still, beat gone: nobody is connected as the node.
    os.kill(sup, signal.SIGSTOP)
    try:
        os.kill(beat, signal.SIGKILL)
        nodelib.wait_for(lambda: re.search(r"Client %s (closed its connection|"
                                           r"disconnected)" % cid, broker.log()),
                         15, "the broker to see beat gone")
        manager.deploy_task(node.node_id, nodelib.task_msg(t, "#!/bin/sh\necho kept\n"))
    finally:
        os.kill(sup, signal.SIGCONT)
    # The supervisor starts beat again; the broker delivers the deploy.
    nodelib.wait_task_status(manager, t, COMPLETED, timeout=60)
    assert [u[3] for u in nodelib.task_updates(manager, t)] == [RUNNING, COMPLETED]
    assert connects(broker, cid) == ["c0", "c0"]
    nodelib.wait_for(lambda: nodelib.task_log_text(manager, t) == "kept\n", 20,
                     "the kept task's output")


def test_deploy_while_node_is_stopped(broker, manager, make_node, bbroot, runtime):
    node = nodelib.exec_node(manager, make_node, bbroot, runtime)
    node.stop()
    t = "%032x" % 0xc1000002
    manager.deploy_task(node.node_id, nodelib.task_msg(t, "#!/bin/sh\n"))
    node.start()
    nodelib.wait_task_status(manager, t, COMPLETED, timeout=60)
    assert [u[3] for u in nodelib.task_updates(manager, t)] == [RUNNING, COMPLETED]

