"""Graceful stop: `mantactl stop` tells the manager (manager/set_node_status
NodeStatus{node_id, DISCONNECTED}, WIRE.md section 9), stops every daemon
and exits 0; the stop_node command does the same from the manager's side."""

import os
import time

import pytest

import nodelib


def test_mantactl_stop_tells_manager(manager, node):
    node_id = node.wait_online()["node_id"]
    t0 = time.monotonic()
    r = node.stop()
    assert r.returncode == 0, r.stderr
    nodelib.wait_disconnected(manager, node_id, t0)
    assert node.proc.returncode == 0
    sent = [m for m in manager.node_statuses if m.time >= t0]
    assert len(sent) == 1, "set_node_status published %d times" % len(sent)
    assert sent[0].extra["qos"] in (0, 1) and not sent[0].extra["retain"]


def test_stop_node_command(manager, node):
    if not os.access(os.path.join(nodelib.BIN, "mantad-exec"), os.X_OK):
        pytest.skip("stop_node is handled by mantad-exec, not built yet")
    node_id = node.wait_online()["node_id"]
    t0 = time.monotonic()
    manager.stop_node(node_id)
    nodelib.wait_disconnected(manager, node_id, t0)
    rc = node.wait_exit(30)
    assert rc == 0, "supervisor exit status %d after stop_node" % rc
    node.wait_no_process(10)
    assert node.status()[0] == 3
