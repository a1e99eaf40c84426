"""Resource faults (issue 6), with state_dir on a small ext4 file system of
its own (a loop device): when it is fuller than
resources.max_disk_usage_percent, full, or read-only (an emergency
remount after a file system error), a new task is refused with the reason
(a FAILED update and a SendError, error 12 RESOURCE), the running ones go
on, the node stays online and `mantactl status --json` says why
("refusing"); once space is back, tasks are taken again and the running
one is reported once."""

import errno
import os
import time

import pytest

import faultlib
import nodelib
from devmanager import pair_to_hex

pytestmark = nodelib.skip_unless_built("mantad-exec")

RUNNING, COMPLETED, FAILED = faultlib.RUNNING, faultlib.COMPLETED, faultlib.FAILED
FS_MB = 64


def sh(*argv, check=True):
    r = nodelib.run(list(argv), timeout=60)
    if check and r.returncode != 0:
        raise AssertionError("%s: %s" % (" ".join(argv), r.stderr))
    return r


def kill_cgroups(cids):
    """SIGKILL to whatever is left in these containers' cgroups, then rmdir."""
    for base in ("/sys/fs/cgroup", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids",
                 "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup/freezer",
                 "/sys/fs/cgroup/devices", "/sys/fs/cgroup/blkio", "/sys/fs/cgroup/cpuset"):
        for cid in cids:
            d = os.path.join(base, "manta", cid)
            if not os.path.isdir(d):
                continue
            try:
                with open(os.path.join(d, "cgroup.procs")) as f:
                    for pid in f.read().split():
                        try:
                            os.kill(int(pid), 9)
                        except OSError:
                            pass
            except OSError:
                pass
            for _ in range(50):
                try:
                    os.rmdir(d)
                    break
                except OSError:
                    time.sleep(0.1)


@pytest.fixture
def statefs(tmp_path):
    """A FS_MB MiB ext4 (no reserved blocks, errors=remount-ro) mounted on
    tmp_path/state."""
    img, mnt = str(tmp_path / "state.img"), str(tmp_path / "state")
    os.makedirs(mnt)
    with open(img, "wb") as f:
        f.truncate(FS_MB << 20)
    sh("mkfs.ext4", "-q", "-F", "-m", "0", img)
    r = sh("mount", "-o", "loop,errors=remount-ro", img, mnt, check=False)
    if r.returncode != 0:
        pytest.skip("no loop mount here: %s" % r.stderr.strip())
    try:
        yield mnt
    finally:
        for _ in range(50):
            if sh("umount", mnt, check=False).returncode == 0:
                break
            time.sleep(0.2)
        else:
            sh("umount", "-l", mnt, check=False)


def fs_node(manager, make_node, bbroot, runtime, statefs, **sections):
    n = make_node(manager.grpc_port, overrides=nodelib.exec_sections(
        runtime, **sections))
    n.sections["paths"]["state_dir"] = statefs
    n.sections["containers"]["image_dir"] = os.path.join(n.dir, "images")
    n.write_config()
    n.state_dir = statefs
    r = nodelib.image_import(n.config, "busybox", bbroot)
    assert r.returncode == 0, r.stderr
    n.start()
    n.node_id = n.wait_online(30)["node_id"]
    return n


def fill(path, leave_bytes=0, upto_percent=None):
    """Writes <dir>/ballast until the file system has leave_bytes free (0:
    until ENOSPC) or is upto_percent used."""
    st = os.statvfs(os.path.dirname(path))
    total = st.f_blocks * st.f_frsize
    chunk = b"\0" * (1 << 20)
    with open(path, "ab") as f:
        while True:
            st = os.statvfs(os.path.dirname(path))
            free = st.f_bavail * st.f_frsize
            used = total - st.f_bfree * st.f_frsize
            if upto_percent is not None and used * 100 >= upto_percent * total:
                break
            if upto_percent is None and leave_bytes and free <= leave_bytes:
                break
            try:
                f.write(chunk if free > len(chunk) or not free else chunk[:max(free, 1)])
                f.flush()
                os.fsync(f.fileno())
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                if len(chunk) > 4096:
                    chunk = chunk[:len(chunk) // 2]
                    continue
                break


def refused_with(manager, node, task_hex, words):
    nodelib.wait_task_status(manager, task_hex, FAILED, timeout=20)
    err = manager.wait_call("SendError", timeout=nodelib.deadline(20),
                            pred=lambda c: pair_to_hex(c.request.task_id) == task_hex)
    assert err.request.error_id == 12, err.request
    for w in words:
        assert w in err.request.content, err.request.content
    assert faultlib.statuses(manager, task_hex) == [FAILED]
    return err


def test_max_disk_usage_percent(manager, make_node, bbroot, statefs):
    runtime = faultlib.runc_or_skip(bbroot)
    node = fs_node(manager, make_node, bbroot, runtime, statefs,
                   resources={"max_disk_usage_percent": 50})
    a, b, c = "f1" * 16, "f2" * 16, "f3" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(
        a, faultlib.counting_script(60, pause="0.1")))
    nodelib.wait_task_status(manager, a, RUNNING)
    ballast = os.path.join(statefs, "ballast")
    fill(ballast, upto_percent=75)
    manager.deploy_task(node.node_id, nodelib.task_msg(b, "#!/bin/sh\ntrue\n"))
    refused_with(manager, node, b, ("disk full", "max_disk_usage_percent = 50"))
    st = node.wait_online()
    assert st["refusing"] and "disk full" in st["refusing"], st
    assert faultlib.task_state(node, a) == "RUNNING"
    os.unlink(ballast)
    node.wait_status(lambda s: s["refusing"] is None, 10, "taking tasks again")
    manager.deploy_task(node.node_id, nodelib.task_msg(c, "#!/bin/sh\necho fine\n"))
    nodelib.wait_task_status(manager, c, COMPLETED, timeout=30)
    nodelib.wait_task_status(manager, a, COMPLETED, timeout=30)
    assert faultlib.statuses(manager, a) == [RUNNING, COMPLETED]
    nodelib.wait_for(lambda: faultlib.check_lines(nodelib.task_log_text(manager, a),
                                                  60) == ([], []), 15, "a's output")


def test_disk_full(manager, make_node, bbroot, statefs):
    runtime = faultlib.runc_or_skip(bbroot)
    node = fs_node(manager, make_node, bbroot, runtime, statefs)
    a, b, c = "f4" * 16, "f5" * 16, "f6" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(
        a, "#!/bin/sh\necho begin\nsleep 8\necho end\n"))
    nodelib.wait_task_status(manager, a, RUNNING)
    ballast = os.path.join(statefs, "ballast")
    fill(ballast)
    assert os.statvfs(statefs).f_bavail == 0
    manager.deploy_task(node.node_id, nodelib.task_msg(b, "#!/bin/sh\ntrue\n"))
    refused_with(manager, node, b, ("disk full",))
    st = node.wait_online()
    assert st["refusing"] and "disk full" in st["refusing"], st
    assert len(faultlib.containers_alive(node)) == 1
    os.unlink(ballast)
    node.wait_status(lambda s: s["refusing"] is None, 10, "taking tasks again")
    nodelib.wait_task_status(manager, a, COMPLETED, timeout=30)
    assert faultlib.statuses(manager, a) == [RUNNING, COMPLETED]
    manager.deploy_task(node.node_id, nodelib.task_msg(c, "#!/bin/sh\necho fine\n"))
    nodelib.wait_task_status(manager, c, COMPLETED, timeout=30)
    st = node.wait_ready()
    assert all(d["restarts"] == 0 for d in st["daemons"]), st["daemons"]


def test_read_only(manager, make_node, bbroot, statefs):
    runtime = faultlib.runc_or_skip(bbroot)
    dev = sh("findmnt", "-n", "-o", "SOURCE", statefs).stdout.strip()
    trigger = "/sys/fs/ext4/%s/trigger_fs_error" % os.path.basename(dev)
    if not os.path.exists(trigger):
        pytest.skip("no %s" % trigger)
    node = fs_node(manager, make_node, bbroot, runtime, statefs)
    a, b = "f7" * 16, "f8" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(a, "#!/bin/sh\nsleep 300\n"))
    nodelib.wait_task_status(manager, a, RUNNING)
    cids = nodelib.exec_container_ids(node)
    try:
        with open(trigger, "w") as f:
            f.write("1")
        try:
            open(os.path.join(statefs, "probe"), "w").close()
            raise AssertionError("%s still writable" % statefs)
        except OSError as e:
            assert e.errno == errno.EROFS, e
        manager.deploy_task(node.node_id, nodelib.task_msg(b, "#!/bin/sh\ntrue\n"))
        refused_with(manager, node, b, ("read-only",))
        st = node.wait_online()
        assert st["refusing"] and "read-only" in st["refusing"], st
        assert faultlib.task_state(node, a) == "RUNNING"
        assert len(faultlib.containers_alive(node)) == 1
        assert all(d["restarts"] == 0 for d in st["daemons"]), st["daemons"]
    finally:
        node.cleanup(remove=False)
        kill_cgroups(cids)
