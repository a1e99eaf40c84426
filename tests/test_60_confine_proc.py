"""Issue 7, daemons confined after start: every daemon of a running node and
every one of its threads, as /proc/<pid>/task/<tid>/status shows them.

mantad-res, mantad-register, mantad-beat and mantad-light run as
security.daemon_user, or as uid 0 without one (the state and run dirs are
root's, so no DAC capability is needed), with no capability in any set, the bounding set empty, no_new_privs, and a seccomp
filter (mode 2) on every thread. mantad-exec too, at uid 0 (issue 13,
finding 4): its launcher child, which starts the OCI runtime, keeps no
filter, as mantad-exec(8) says (the runtime would inherit it), and, like
the supervisor, only the capabilities runc and crun need: bounding set
included, with no_new_privs.

The table the closing note needs (daemon x uid, CapEff, seccomp mode,
system calls allowed, and the peers its endpoint accepts per message type,
issue 13) is printed (pytest -s) and written to
build/confine-table-{root,daemon_user}.txt: once with the four daemons at
uid 0, once with security.daemon_user, where they switch to that account."""

import os
import re

import pytest

import nodelib

CONFINED = ("mantad-res", "mantad-register", "mantad-beat", "mantad-light")
ZERO = "0000000000000000"
SECCOMP_MODES = {"0": "none", "1": "strict", "2": "filter"}
TABLE = os.path.join(nodelib.ROOT, "build", "confine-table-%s.txt")


# capability numbers (linux/capability.h)
CAPS = {0: "chown", 1: "dac_override", 2: "dac_read_search", 3: "fowner", 4: "fsetid",
        5: "kill", 6: "setgid", 7: "setuid", 8: "setpcap", 9: "linux_immutable",
        10: "net_bind_service", 11: "net_broadcast", 12: "net_admin", 13: "net_raw",
        14: "ipc_lock", 15: "ipc_owner", 16: "sys_module", 17: "sys_rawio",
        18: "sys_chroot", 19: "sys_ptrace", 20: "sys_pacct", 21: "sys_admin",
        22: "sys_boot", 23: "sys_nice", 24: "sys_resource", 25: "sys_time",
        26: "sys_tty_config", 27: "mknod", 28: "lease", 29: "audit_write",
        30: "audit_control", 31: "setfcap", 32: "mac_override", 33: "mac_admin",
        34: "syslog", 35: "wake_alarm", 36: "block_suspend", 37: "audit_read",
        38: "perfmon", 39: "bpf", 40: "checkpoint_restore"}
RUNTIME = ("chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill",
           "setgid", "setuid", "setpcap", "setfcap", "net_admin", "sys_chroot",
           "sys_admin", "sys_resource", "mknod", "sys_ptrace")
RUNTIME_MASK = sum(1 << n for n, c in CAPS.items() if c in RUNTIME)


# Each endpoint's table of rules (issue 13): where it is, and the kinds.
RULES_SRC = {"mantactl start": "mantactl/supervise.c", "mantad-res": "mantad-res/main.c",
             "mantad-register": "mantad-register/main.c", "mantad-beat": "mantad-beat/main.c",
             "mantad-exec": "mantad-exec/main.c", "mantad-light": "mantad-light/main.c"}
KINDS = {"IPC_FROM_OWNER": "owner", "IPC_FROM_DAEMON": "daemon", "IPC_FROM_LIGHT": "light"}


def accepts(daemon):
    """'type(callers) ...' from the daemon's ipc_rule table, as built."""
    with open(os.path.join(nodelib.ROOT, RULES_SRC[daemon])) as f:
        src = f.read()
    m = re.search(r"struct ipc_rule allowed\[\] = \{(.*?)\n\s*\};", src, re.S)
    out = []
    for body, frm, prog in re.findall(r"\{ MANTA__IPC__MSG__BODY_([A-Z_]+), ([A-Z_| ]+), "
                                      r"(NULL|\"[a-z-]+\") \}", m.group(1)):
        who = [KINDS[k.strip()] for k in frm.split("|")]
        if prog != "NULL":
            who = [w if w == "owner" else "%s as %s" % (w, prog.strip('"')) for w in who]
        out.append("%s(%s)" % (body.lower(), ",".join(who)))
    return " ".join(out)


def launcher_pid(exec_pid):
    """The child of mantad-exec that runs "mantad-exec --launcher"."""
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            st = nodelib.proc_status(int(p))
        except OSError:
            continue
        if st.get("PPid") == str(exec_pid) and \
                (nodelib.proc_cmdline(int(p)) or [])[1:2] == ["--launcher"]:
            return int(p)
    return None


def cap_names(mask):
    return [CAPS.get(n, str(n)) for n in range(64) if mask >> n & 1]


def syscalls_allowed(log, daemon):
    """The count the daemon logged when it loaded its filter (last start)."""
    found = re.findall(r"^%s: .*seccomp: (\d+) system calls allowed, any other (.*)$"
                       % re.escape(daemon), log, re.M)
    return found[-1] if found else None


@pytest.fixture(params=["root", "daemon_user"])
def cnode(request, manager, make_node):
    """A started node: the four daemons stay uid 0 (security.daemon_user
    = ""), or switch to a test account."""
    if request.param == "root":
        n = make_node(manager.grpc_port, overrides={"security": {"daemon_user": "",
                                                                 "light_user": ""}})
        n.uid = n.light_uid = 0
    else:
        acct = nodelib.daemon_account()
        light = nodelib.light_account()
        n = make_node(manager.grpc_port,
                      overrides={"security": {"daemon_user": acct.pw_name,
                                              "light_user": light.pw_name,
                                              "allow_root_daemons": False}})
        os.chmod(n.dir, 0o711)      # the run dir's parent: searchable
        n.uid = acct.pw_uid
        n.light_uid = light.pw_uid
    n.variant = request.param
    n.start()
    n.wait_ready(30)
    return n


def test_daemons_confined(cnode):
    node = cnode
    pids = node.pids()
    log = node.log()
    rows = []
    problems = []
    for d in nodelib.DAEMONS:
        assert d in pids, "%s not running: %r" % (d, pids)
        pid = pids[d]
        st = nodelib.proc_status(pid)
        threads = nodelib.threads_status(pid)
        allowed = syscalls_allowed(log, d)
        rows.append((d, pid, st["Uid"].split()[1], st["CapEff"], st["CapBnd"],
                     st["NoNewPrivs"], SECCOMP_MODES.get(st["Seccomp"], st["Seccomp"]),
                     len(threads),
                     ("%s (else %s)" % allowed) if allowed else "all (no filter)",
                     accepts(d)))
        if d in CONFINED:
            want = node.light_uid if d == "mantad-light" else node.uid
            if st["Uid"].split() != [str(want)] * 4:
                problems.append("%s: Uid %s, not %d" % (d, st["Uid"], want))
            for tid, t in sorted(threads.items()):
                for k in ("CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"):
                    if t.get(k, ZERO) != ZERO:
                        problems.append("%s thread %d: %s %s" % (d, tid, k, t[k]))
                if t["NoNewPrivs"] != "1":
                    problems.append("%s thread %d: NoNewPrivs %s" % (d, tid, t["NoNewPrivs"]))
                if t["Seccomp"] != "2":
                    problems.append("%s thread %d: Seccomp %s" % (d, tid, t["Seccomp"]))
            if allowed is None:
                problems.append("%s: no 'seccomp: N system calls allowed' line" % d)
            elif allowed[1] != "kills the process":
                problems.append("%s: a call outside the list %s" % (d, allowed[1]))
        elif d == "mantad-exec":
            # mantad-exec(8), IMPLEMENTATION NOTES: the parser is confined
            # (uid 0: its state is root's); its launcher keeps the
            # runtime's privileges, which would inherit a filter.
            if st["Uid"].split() != ["0"] * 4:
                problems.append("%s: Uid %s, not 0" % (d, st["Uid"]))
            for tid, t in sorted(threads.items()):
                for k in ("CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"):
                    if t.get(k, ZERO) != ZERO:
                        problems.append("%s thread %d: %s %s" % (d, tid, k, t[k]))
                if t["NoNewPrivs"] != "1" or t["Seccomp"] != "2":
                    problems.append("%s thread %d: NoNewPrivs %s, Seccomp %s"
                                    % (d, tid, t["NoNewPrivs"], t["Seccomp"]))
            if allowed is None or allowed[1] != "kills the process":
                problems.append("%s: no filter that kills: %r" % (d, allowed))
    # The launcher and the supervisor: at most what the runtime needs
    # (libcommon/confine.c confine_runtime_caps), the bounding set too.
    launcher = launcher_pid(pids["mantad-exec"])
    procs = [("mantad-exec launcher", launcher)]
    if launcher is None:
        problems.append("mantad-exec has no launcher child")
        procs = []
    else:
        st = nodelib.proc_status(launcher)
        if st["Seccomp"] != "0":
            problems.append("mantad-exec launcher: Seccomp %s" % st["Seccomp"])
        if st["CapEff"] == ZERO:
            problems.append("mantad-exec launcher: no capability left for the runtime")
        rows.append(("mantad-exec launcher", launcher, st["Uid"].split()[1], st["CapEff"],
                     st["CapBnd"], st["NoNewPrivs"],
                     SECCOMP_MODES.get(st["Seccomp"], st["Seccomp"]),
                     len(nodelib.threads_status(launcher)), "all (no filter)",
                     "fixed frames from mantad-exec only"))
    if node.supervisor_pid is not None:
        procs.append(("mantactl start", node.supervisor_pid))
    for name, pid in procs:
        st = nodelib.proc_status(pid)
        if st["NoNewPrivs"] != "1":
            problems.append("%s: NoNewPrivs %s" % (name, st["NoNewPrivs"]))
        for k in ("CapEff", "CapPrm", "CapBnd"):
            extra = int(st[k], 16) & ~RUNTIME_MASK
            if extra:
                problems.append("%s: %s has %s beyond the runtime's needs"
                                % (name, k, ", ".join(cap_names(extra))))
    sup = node.supervisor_pid
    if sup is not None:
        st = nodelib.proc_status(sup)
        rows.append(("mantactl start", sup, st["Uid"].split()[1], st["CapEff"], st["CapBnd"],
                     st["NoNewPrivs"], SECCOMP_MODES.get(st["Seccomp"], st["Seccomp"]),
                     len(nodelib.threads_status(sup)), "all (no filter)",
                     accepts("mantactl start")))
    head = ("daemon", "pid", "uid", "CapEff", "CapBnd", "NoNewPrivs", "seccomp",
            "threads", "syscalls allowed", "accepts (endpoint rules)")
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()
             for r in [head] + rows]
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    os.makedirs(os.path.dirname(TABLE), exist_ok=True)
    with open(TABLE % node.variant, "w") as f:
        f.write(text)
    assert not problems, "\n".join(problems) + "\n\n" + text
    # Confined and still working: the node is online, nobody restarted.
    st = node.wait_ready(10)
    for d in st["daemons"]:
        assert d["restarts"] == 0, d
