"""containers.userns (runc and crun): each task in a user namespace of its
own. Inside, the task is root (id -u is 0) without capabilities, and
/proc/self/uid_map shows the mapping; on the host its init runs as the
mapped, unprivileged uid (the host's /proc/PID/status), and what it writes
is owned by that uid. The task completes and nothing is left behind. An
image the mapped users cannot reach is refused with the directory named."""

import os
import re
import shutil
import signal
import tempfile

import pytest

import nodelib
from devmanager import pair_to_hex
from common import tasks_pb2 as tasks_pb

pytestmark = nodelib.skip_unless_built("mantad-exec")

COMPLETED, FAILED = tasks_pb.COMPLETED, tasks_pb.FAILED

# Waits for SIGUSR1 from the test, so that the host can look at the
# running init first.
PROBE = r"""#!/bin/sh
echo "uid=$(id -u) gid=$(id -g)"
echo "uidmap=$(tr -s ' ' <'/proc/self/uid_map' | sed 's/^ //')"
echo "gidmap=$(tr -s ' ' <'/proc/self/gid_map' | sed 's/^ //')"
grep -E '^(NoNewPrivs|CapEff|CapBnd|Seccomp):' /proc/self/status
touch /rootfile 2>/dev/null && echo "root=writable" || echo "root=readonly"
echo x >/tmp/f && echo "tmp=$(cat /tmp/f)"
head -c 2 /usr/src/module.pyz >/dev/null && echo "payload=readable"
ls /sys/kernel >/dev/null 2>&1 && echo "sys=listed"
touch /sys/kernel/x 2>/dev/null && echo "sysfs=writable" || echo "sysfs=readonly"
unshare -U true 2>/dev/null && echo "nested=yes" || echo "nested=no"
trap 'echo done; exit 0' USR1
echo ready
while :; do sleep 0.05; done
"""


@pytest.fixture
def image_dir():
    """An image store the mapped users can reach: /tmp/mnt-img-X, 0755
    (the node's own directory is 0700)."""
    d = tempfile.mkdtemp(prefix="mnt-img-", dir="/tmp")
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def root_subid(path):
    """root's first range in /etc/subuid or /etc/subgid, else None."""
    try:
        with open(path) as f:
            for line in f:
                p = line.strip().split(":")
                if len(p) == 3 and p[0] in ("root", "0") and p[1].isdigit() and \
                        p[2].isdigit() and int(p[1]) > 0 and int(p[2]) > 0:
                    return int(p[1]), int(p[2])
    except OSError:
        pass
    return None


def run_probe(manager, node, task):
    """Deploys PROBE, looks at its init from the host while it waits, lets
    it finish; returns (probe output, host view) once COMPLETED."""
    manager.deploy_task(node.node_id, nodelib.task_msg(task, PROBE, alias="userns"))
    pidfile = os.path.join(node.state_dir, "tasks", "%s-%s-0-0" % ("5a" * 16, task),
                           "init.pid")

    def init_pid():
        try:
            with open(pidfile) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return None
        return pid if nodelib.alive(pid) else None
    pid = nodelib.wait_for(init_pid, 30, "the container's init.pid")
    nodelib.wait_for(lambda: "ready\n" in nodelib.mantactl("logs", task, "-c",
                                                           node.config).stdout, 15,
                     "the probe's first lines")
    host = {"status": nodelib.proc_status(pid)}
    with open("/proc/%d/uid_map" % pid) as f:
        host["uid_map"] = " ".join(f.read().split())
    st = os.stat("/proc/%d/root/tmp/f" % pid)
    host["file_uid"], host["file_gid"] = st.st_uid, st.st_gid
    os.kill(pid, signal.SIGUSR1)
    nodelib.wait_task_status(manager, task, COMPLETED)
    out = nodelib.wait_for(lambda: "done\n" in nodelib.task_log_text(manager, task) and
                           nodelib.task_log_text(manager, task), 15, "probe output")
    return out, host


def check_inside(out, uid, gid, size):
    kv = dict(re.findall(r"^(\w+)[:=]\s*(.*)$", out, re.M))
    assert out.startswith("uid=0 gid=0\n"), out
    assert kv["uidmap"] == "0 %d %d" % (uid, size), out
    assert kv["gidmap"] == "0 %d %d" % (gid, size), out
    assert kv["NoNewPrivs"] == "1" and kv["Seccomp"] == "2", out
    assert int(kv["CapEff"], 16) == 0 and int(kv["CapBnd"], 16) == 0, out
    assert kv["root"] == "readonly" and kv["tmp"] == "x", out
    assert kv["payload"] == "readable", out
    assert kv["sys"] == "listed" and kv["sysfs"] == "readonly", out
    assert kv["nested"] == "no", out


def check_clean(node, runtime):
    def clean():
        left = nodelib.exec_leftovers(node, runtime)
        return left if not any(left.values()) else None
    nodelib.wait_for(clean, 20, "no container, cgroup or bundle left")


@pytest.mark.parametrize("network", ["host", "none"])
def test_userns_mapping(manager, make_node, bbroot, runtime, image_dir, network):
    """/sys is the host's, bound read-only (sysfs needs a network
    namespace of the user namespace's own): on the host's network, and
    with containers.network = "none" in the namespace mantad-exec makes
    (test_48 checks the task's Light endpoint there)."""
    base = 300000
    node = nodelib.exec_node(manager, make_node, bbroot, runtime, containers={
        "userns": True, "userns_base": base, "userns_size": 65536,
        "image_dir": image_dir, "network": network})
    task = "d1" * 16
    out, host = run_probe(manager, node, task)
    check_inside(out, base, base, 65536)
    # On the host: the task's root is uid/gid base, without capabilities.
    uids = host["status"]["Uid"].split()
    gids = host["status"]["Gid"].split()
    assert uids == [str(base)] * 4, host
    assert gids == [str(base)] * 4, host
    assert int(host["status"]["CapEff"], 16) == 0, host
    assert host["uid_map"] == "0 %d 65536" % base, host
    assert (host["file_uid"], host["file_gid"]) == (base, base), host
    assert [u[3] for u in nodelib.task_updates(manager, task)] == [tasks_pb.RUNNING, COMPLETED]
    check_clean(node, runtime)
    assert "tasks in user namespaces: root is host uid %d" % base in node.log()


def test_userns_default_range(manager, make_node, bbroot, image_dir):
    """Without userns_base: root's /etc/subuid range, else 100000."""
    runtime = nodelib.runtime_or_skip("runc", bbroot)
    uid, usize = root_subid("/etc/subuid") or (100000, 65536)
    gid, gsize = root_subid("/etc/subgid") or (100000, 65536)
    node = nodelib.exec_node(manager, make_node, bbroot, runtime, containers={
        "userns": True, "image_dir": image_dir})
    task = "d2" * 16
    out, host = run_probe(manager, node, task)
    kv = dict(re.findall(r"^(\w+)=(.*)$", out, re.M))
    assert kv["uidmap"] == "0 %d %d" % (uid, min(usize, 65536)), out
    assert kv["gidmap"] == "0 %d %d" % (gid, min(gsize, 65536)), out
    assert host["status"]["Uid"].split() == [str(uid)] * 4, host
    check_clean(node, runtime)


def test_userns_unreachable_image(manager, make_node, bbroot):
    """The default image store lies in the node's 0700 directory: the
    mapped root cannot reach it, and the deploy says which directory."""
    runtime = nodelib.runtime_or_skip("runc", bbroot)
    node = nodelib.exec_node(manager, make_node, bbroot, runtime,
                             containers={"userns": True})
    assert "is not searchable by others" in node.log()
    task = "d3" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(task, "#!/bin/sh\ntrue\n"))
    nodelib.wait_task_status(manager, task, FAILED)

    def errors():
        return [c.request.content for c in manager.calls("SendError")
                if pair_to_hex(c.request.task_id) == task]
    content = nodelib.wait_for(errors, 15, "SendError about the task")[0]
    assert "containers.userns" in content and "not searchable by others" in content, content
    assert node.dir in content, content
    assert node.wait_online()["node_id"] == node.node_id
    check_clean(node, runtime)
