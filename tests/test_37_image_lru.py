"""Issue 12: the store stays bounded. When the image store's file system
passes resources.max_disk_usage_percent after a fill, images go least
recently used first; an image a task uses is never removed. The store is a
64 MiB tmpfs here, each image about 10 MiB."""

import os
import subprocess
import tempfile
import time

import pytest

import nodelib
from common import tasks_pb2

RUNNING, COMPLETED = tasks_pb2.RUNNING, tasks_pb2.COMPLETED


@pytest.fixture
def small_store():
    top = tempfile.mkdtemp(prefix="mnt-lru-", dir="/tmp")
    d = os.path.join(top, "images")
    os.makedirs(d)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m,mode=755", "tmpfs", d],
                       stderr=subprocess.PIPE, universal_newlines=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: %s" % r.stderr.strip())
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", d])
        os.rmdir(d)
        os.rmdir(top)


def fat_rootfs(bbroot, dest, tag):
    subprocess.run(["cp", "-a", bbroot + "/.", dest], check=True)
    with open(os.path.join(dest, "ballast"), "wb") as f:
        f.write(os.urandom(8 << 20))
    with open(os.path.join(dest, "tag"), "w") as f:
        f.write(tag)


def names(n):
    return sorted(e["name"] for e in nodelib.image_ls(n.config))


def test_lru_prune(manager, make_node, bbroot, runtime, small_store, tmp_path):
    n = make_node(manager.grpc_port, overrides=nodelib.exec_sections(
        runtime, containers={"image_dir": small_store},
        resources={"max_disk_usage_percent": 55}))
    srcs = {}
    for tag in ("a", "b", "c", "d"):
        srcs[tag] = str(tmp_path / tag)
        os.makedirs(srcs[tag])
        fat_rootfs(bbroot, srcs[tag], tag)
    for tag in ("a", "b", "d"):
        r = nodelib.image_import(n.config, tag, srcs[tag])
        assert r.returncode == 0, r.stderr
        time.sleep(1.1)      # distinct last-use seconds: the order under test
    assert names(n) == ["a", "b", "d"]
    n.start()
    n.node_id = n.wait_online()["node_id"]
    # a: in use by a running task; d: used a moment ago; b: used never.
    run_a, done_d = "a1" * 16, "d1" * 16
    manager.deploy_task(n.node_id, nodelib.task_msg(run_a, "#!/bin/sh\nsleep 60\n",
                                                    image="a"))
    nodelib.wait_task_status(manager, run_a, RUNNING, timeout=60)
    # a is older than b by last use: make it so, the in-use rule must hold it.
    os.utime(os.path.join(small_store, "a", "last-used"), (1, 1))
    manager.deploy_task(n.node_id, nodelib.task_msg(done_d, "#!/bin/sh\ntrue\n",
                                                    image="d"))
    nodelib.wait_task_status(manager, done_d, COMPLETED, timeout=60)
    r = nodelib.image_import(n.config, "c", srcs["c"])
    assert r.returncode == 0, r.stderr
    assert "removed image b" in r.stderr, r.stderr
    assert names(n) == ["a", "c", "d"]
    ls = {e["name"]: e for e in nodelib.image_ls(n.config)}
    assert ls["a"]["in_use"] is True and ls["d"]["in_use"] is False, ls
    # Full enough that only in-use images would go: nothing more goes.
    r = nodelib.mantactl("image", "rm", "a", "-c", n.config)
    assert r.returncode == 1 and "in use" in r.stderr, r.stderr
