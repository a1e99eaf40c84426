"""Issue 7, "as an unprivileged user where root is not required":
security.daemon_user. With it, mantad-res, -register, -beat and -light
switch every thread to that account after their privileged opens (their
SQLite files, the audit trail, the TLS files, the dataset dirfds, their
sockets), so they hold no capability, no root uid and no root group. The
run dir becomes root:GROUP 02710 (the group may connect, never create or
replace a socket), the state dir stays root's 0700: nothing in it can be
reached by path from the daemons, only through what they opened as root.

The node still does everything with mutual TLS to the manager and to the
broker, from a cert_folder only root can read: registers, heartbeats,
reconnects after a broker restart (paho reads the certificates again, from
the memfds beat filled at start), runs a task, reloads on SIGHUP. A user
that does not exist is a config error naming the key, and nothing starts."""

import os
import signal
import stat
import time

import pytest

import nodelib
from devmanager import pair_to_hex
from common import tasks_pb2 as tasks_pb

USER = nodelib.DAEMON_USER
CONFINED = ("mantad-res", "mantad-register", "mantad-beat", "mantad-light")
ZERO = "0000000000000000"


@pytest.fixture(scope="module")
def account():
    return nodelib.daemon_account(USER)


@pytest.fixture(scope="module")
def light():
    """mantad-light's own account, in USER's group (issue 13)."""
    return nodelib.light_account()


def test_daemons_run_as_user(request, account, light, pki, make_node, bbroot):
    ca = pki["ca"]
    broker, m = nodelib.mutual_tls_stack(request, pki)

    ov = nodelib.exec_sections("runc")
    ov.setdefault("security", {}).update({"use_tls": True, "daemon_user": USER,
                                          "light_user": light.pw_name,
                                          "allow_root_daemons": False})
    n = make_node(m.grpc_port, overrides=ov)
    # The daemons reach the run dir through its parent: searchable, not
    # readable (mkdtemp made it 0700).
    os.chmod(n.dir, 0o711)
    folder = n.sections["security"]["cert_folder"]
    ca.cert_folder(folder, node=pki["node"], mqtt=pki["mqtt"])
    os.chmod(folder, 0o700)             # root's alone: beat holds memfds
    for f in os.listdir(folder):
        os.chmod(os.path.join(folder, f), 0o600)
    # The config stays readable by the group for SIGHUP reloads.
    os.chmod(n.config, 0o640)
    os.chown(n.config, 0, account.pw_gid)
    r = nodelib.image_import(n.config, "busybox", bbroot)
    assert r.returncode == 0, r.stderr
    n.start()
    node_id = n.wait_online(30)["node_id"]
    n.wait_ready(30)

    # /proc: every thread of the four switched, nothing kept
    pids = n.pids()
    problems = []
    for d in CONFINED:
        pid = pids[d]
        uid = light.pw_uid if d == "mantad-light" else account.pw_uid
        for tid, st in nodelib.threads_status(pid).items():
            if st["Uid"].split() != [str(uid)] * 4:
                problems.append("%s/%s Uid %s" % (d, tid, st["Uid"]))
            if st["Gid"].split() != [str(account.pw_gid)] * 4:
                problems.append("%s/%s Gid %s" % (d, tid, st["Gid"]))
            if st["Groups"].split() not in ([str(account.pw_gid)], []):
                problems.append("%s/%s Groups %s" % (d, tid, st["Groups"]))
            for k in ("CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"):
                if st[k] != ZERO:
                    problems.append("%s/%s %s %s" % (d, tid, k, st[k]))
            if st["Seccomp"] != "2" or st["NoNewPrivs"] != "1":
                problems.append("%s/%s Seccomp %s NoNewPrivs %s"
                                % (d, tid, st["Seccomp"], st["NoNewPrivs"]))
    assert nodelib.proc_status(pids["mantad-exec"])["Uid"].split()[0] == "0"
    assert not problems, "\n".join(problems)

    # The run dir: root:GROUP 02710, sockets group-writable; state: root's
    st = os.stat(n.run_dir)
    assert (st.st_uid, st.st_gid) == (0, account.pw_gid)
    assert stat.S_IMODE(st.st_mode) == 0o2710, oct(st.st_mode)
    for name in ("exec", "res", "beat", "register"):
        s = os.stat(os.path.join(n.run_dir, name + ".sock"))
        assert s.st_gid == account.pw_gid and stat.S_IMODE(s.st_mode) == 0o660, \
            (name, oct(s.st_mode), s.st_gid)
    st = os.stat(n.state_dir)
    assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o700
    for f in ("res.db", "beat.db", "register.db", "light.db", "audit.log"):
        assert os.stat(os.path.join(n.state_dir, f)).st_uid == 0, f

    # Heartbeats over MQTT TLS with mqtt.crt; then the broker restarts and
    # paho reads the certificates again (from beat's memfds).
    m.wait_message("manager/set_system_summary", timeout=15,
                   pred=lambda r: r.request is not None
                   and pair_to_hex(r.request.node_id) == node_id)
    broker.restart()
    t0 = time.monotonic()
    m.wait_message("manager/set_system_summary", timeout=nodelib.deadline(40), after=t0,
                   pred=lambda r: r.request is not None
                   and pair_to_hex(r.request.node_id) == node_id)

    # A task: exec (root) -> beat and register (the user) over the shared run dir
    tid = "c4" * 16
    m.deploy_task(node_id, nodelib.task_msg(tid, "#!/bin/sh\necho as a task\n"))
    nodelib.wait_task_status(m, tid, tasks_pb.COMPLETED)
    nodelib.wait_for(lambda: nodelib.task_log_text(m, tid) == "as a task\n", 15,
                     "task output at the manager")
    r = nodelib.mantactl("audit", "verify", "-c", n.config)
    assert r.returncode == 0, r.stdout + r.stderr

    # SIGHUP: each re-reads the (group-readable) config inside its filter
    before = {d: pids[d] for d in CONFINED}
    os.kill(n.supervisor_pid, signal.SIGHUP)
    for what in ("SIGHUP: configuration reloaded: sampling",
                 "SIGHUP: configuration reloaded: heartbeat", "SIGHUP: log level"):
        nodelib.wait_for(lambda w=what: w in n.log(), 15, "'%s' in the log" % what)
    after = n.pids()
    assert all(after[d] == before[d] for d in CONFINED), (before, after)
    for d in n.wait_ready(10)["daemons"]:
        assert d["restarts"] == 0, d


def test_unknown_user_refused(manager, make_node):
    n = make_node(manager.grpc_port,
                  overrides={"security": {"daemon_user": "no-such-user-9f3"}})
    r = nodelib.mantactl("config", "check", "-c", n.config)
    assert r.returncode == 1
    assert "security.daemon_user" in r.stderr and "no such user" in r.stderr, r.stderr
    r = nodelib.run([nodelib.MANTACTL, "start", "-c", n.config], timeout=30)
    assert r.returncode == 1 and "security.daemon_user" in r.stderr, r.stderr
    assert n.processes() == []
    assert not os.path.exists(os.path.join(n.run_dir, "res.sock"))

    # "" keeps uid 0 (without capabilities), as without the key
    n2 = make_node(manager.grpc_port, overrides={"security": {"daemon_user": ""}})
    n2.start()
    n2.wait_online(30)
    st = nodelib.proc_status(n2.pids()["mantad-res"])
    assert st["Uid"].split()[0] == "0" and st["CapEff"] == ZERO
    assert stat.S_IMODE(os.stat(n2.run_dir).st_mode) == 0o700


def test_refusals_explained_after_the_switch(request, account, light, pki, make_node):
    """A refused manager certificate is still explained with OpenSSL's
    reason once mantad-register runs as the user: its probe handshake reads
    the copies of cert_folder's files it made before the switch, not the
    folder (root's alone), and the node's key stays sealed on disk."""
    ca = pki["ca"]
    expired = ca.server("expired", days=-1)
    m = nodelib.tls_manager(request, expired, ca=ca.crt,
                            registration_broker_port=nodelib.free_port())
    n = make_node(m.grpc_port, overrides={"security": {"use_tls": True,
                                                       "daemon_user": USER,
                                                       "light_user": light.pw_name}})
    os.chmod(n.dir, 0o711)
    folder = n.sections["security"]["cert_folder"]
    ca.cert_folder(folder, node=pki["node"], mqtt=pki["mqtt"])
    r = nodelib.mantactl("secret", "init", "-c", n.config)
    assert r.returncode == 0, r.stderr
    r = nodelib.mantactl("secret", "seal-key", os.path.join(folder, "node.key"),
                         "-c", n.config)
    assert r.returncode == 0, r.stderr
    assert os.path.exists(os.path.join(folder, "node.key.sbox"))
    os.chmod(folder, 0o700)
    for f in os.listdir(folder):
        os.chmod(os.path.join(folder, f), 0o600)
    n.start()
    nodelib.wait_log(n, r"mantad-register: warning: manager 127\.0\.0\.1:%d: IsAvailable: "
                     r"TLS: the manager's certificate is refused: certificate has expired"
                     % m.grpc_port)
    pid = n.pids()["mantad-register"]
    assert nodelib.proc_status(pid)["Uid"].split()[0] == str(account.pw_uid)
    assert "unable to read" not in n.log()
