"""Issue 13, finding 4: mantad-exec is split in two. The process that holds
exec.sock, which parses what the manager and the other daemons send, runs
with no capability in any set (bounding set included), no_new_privs and a
seccomp filter (mode 2) on every thread; its launcher child, which alone
starts shims, runtime calls, pulls and network namespaces, keeps the
runtime's capabilities and no filter (the containers would inherit it),
holds no descriptor of the daemon's but its sockets, and is not a parser:
its own requests are fixed frames (tests/unit/test_launch.c). Tasks still
run, and the shims they start are the launcher's children."""

import os
import re

import nodelib
from common import tasks_pb2 as tasks_pb

pytestmark = nodelib.skip_unless_built("mantad-exec")

ZERO = "0000000000000000"
# libcommon/confine.c confine_runtime_caps
RUNTIME_CAPS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 31, 12, 18, 21, 24, 27, 19)
RUNTIME_MASK = sum(1 << c for c in RUNTIME_CAPS)

SLEEPER = "#!/bin/sh\necho started\nsleep 8\n"


def socket_holder(path):
    """The pid whose descriptors include the unix socket listening at path."""
    inodes = set()
    with open("/proc/net/unix") as f:
        for line in f.readlines()[1:]:
            parts = line.split()
            if len(parts) >= 8 and parts[7] == path:
                inodes.add(parts[6])
    assert inodes, "nothing listens at %s" % path
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            fds = os.listdir("/proc/%s/fd" % pid)
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink("/proc/%s/fd/%s" % (pid, fd))
            except OSError:
                continue
            m = re.match(r"socket:\[(\d+)\]$", link)
            if m and m.group(1) in inodes:
                return int(pid)
    raise AssertionError("no process holds %s" % path)


def children(pid):
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            st = nodelib.proc_status(int(p))
        except OSError:
            continue
        if st.get("PPid") == str(pid):
            out.append(int(p))
    return out


def argv(pid):
    return nodelib.proc_cmdline(pid) or []


def test_parser_confined_launcher_privileged(manager, make_node, bbroot, runtime):
    node = nodelib.exec_node(manager, make_node, bbroot, runtime)
    task = "d4" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(task, SLEEPER))
    nodelib.wait_task_status(manager, task, tasks_pb.RUNNING)

    exec_pid = socket_holder(os.path.join(node.run_dir, "exec.sock"))
    assert argv(exec_pid)[1:2] != ["--launcher"]
    threads = nodelib.threads_status(exec_pid)
    assert len(threads) > 1
    problems = []
    for tid, t in sorted(threads.items()):
        for k in ("CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"):
            if t.get(k, ZERO) != ZERO:
                problems.append("exec thread %d: %s %s" % (tid, k, t[k]))
        if t["NoNewPrivs"] != "1":
            problems.append("exec thread %d: NoNewPrivs %s" % (tid, t["NoNewPrivs"]))
        if t["Seccomp"] != "2":
            problems.append("exec thread %d: Seccomp %s" % (tid, t["Seccomp"]))
    assert not problems, "\n".join(problems)
    assert re.search(r"^mantad-exec: .*seccomp: \d+ system calls allowed, any other "
                     r"kills the process$", node.log(), re.M), node.log()

    launchers = [p for p in children(exec_pid) if argv(p)[1:2] == ["--launcher"]]
    assert len(launchers) == 1, [(p, argv(p)) for p in children(exec_pid)]
    lp = launchers[0]
    st = nodelib.proc_status(lp)
    assert st["Seccomp"] == "0", st
    assert st["NoNewPrivs"] == "1", st
    eff = int(st["CapEff"], 16)
    assert eff & (1 << 21), "the launcher lost CAP_SYS_ADMIN: %s" % st["CapEff"]
    for k in ("CapEff", "CapPrm", "CapBnd"):
        assert int(st[k], 16) & ~RUNTIME_MASK == 0, (k, st[k])
    assert len(nodelib.threads_status(lp)) == 1
    # Its sockets to mantad-exec, a signalfd and stdio; nothing else of
    # the daemon's (exec.db, the lock, the endpoint).
    fds = {}
    for fd in os.listdir("/proc/%d/fd" % lp):
        try:
            fds[int(fd)] = os.readlink("/proc/%d/fd/%s" % (lp, fd))
        except OSError:
            pass
    above = {fd: l for fd, l in fds.items() if fd > 2}
    assert sorted(above)[:2] == [3, 4], fds
    assert all(l.startswith("socket:") or "signalfd" in l for l in above.values()), fds
    assert len(above) == 3, fds

    # The figures (pytest -s): each process as /proc shows it.
    est = nodelib.proc_status(exec_pid)
    for name, pid, s in (("mantad-exec", exec_pid, est), ("launcher", lp, st)):
        print("%s pid %d: CapEff %s CapBnd %s NoNewPrivs %s Seccomp %s threads %d VmRSS %s"
              % (name, pid, s["CapEff"], s["CapBnd"], s["NoNewPrivs"], s["Seccomp"],
                 len(nodelib.threads_status(pid)), s.get("VmRSS")))

    # The task's shim is the launcher's child, not the daemon's.
    shims = [p for p in children(lp) if argv(p)[1:2] == ["--shim"]]
    assert shims, [(p, argv(p)) for p in children(lp)]
    assert not [p for p in children(exec_pid) if argv(p)[1:2] == ["--shim"]]

    nodelib.wait_task_status(manager, task, tasks_pb.COMPLETED)
    node.stop()
    nodelib.wait_for(lambda: not os.path.exists("/proc/%d" % lp), 15, "the launcher to end")
