"""Issue 13, finding 1: who may speak to whom is checked by caller, not only
by message type.

A node with its two accounts (security.daemon_user for mantad-res,
-register and -beat; security.light_user for mantad-light, in the first's
group). Each endpoint's table of rules names, per message type, the kinds
of caller it takes, told apart by the uid the kernel gives for the
connection (SO_PEERCRED, which libzmq passes on as "Peer-Address").

A fake compromised mantad-light (a Python ZeroMQ client running as the
light account) and a fake compromised res/register (the same as the
daemon account, but not the mantad-beat program) send deploy_task,
stop_node, drains, Shutdown, task lists and logs, task log uploads and
publications to every socket: each is refused with Reply code 3, logged
with the caller's uid and pid, and the node is unaffected (no task, no
drain, no stop, no restart). What they do need still works: the light
account's task lookup, the daemon account's snapshot; and the legitimate
flows run: a task deployed by the manager (mantad-beat -> mantad-exec as
the daemon account) completes, and mantactl (root) lists and drains."""

import base64
import json
import os
import re
import subprocess

import pytest

import nodelib
from common import tasks_pb2 as tasks_pb

CHILD = r"""
import base64, json, sys, zmq
run_dir, timeout_ms = sys.argv[1], int(sys.argv[2])
ctx = zmq.Context()
out = []
for ep, data in json.load(sys.stdin):
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect("ipc://%s/%s.sock" % (run_dir, ep))
    s.send_multipart([b"", base64.b64decode(data)])
    if s.poll(timeout_ms):
        out.append(base64.b64encode(s.recv_multipart()[-1]).decode())
    else:
        out.append(None)
    s.close()
print(json.dumps(out))
"""


def send_as(node, user, group_gid, msgs):
    """Sends each (endpoint, Msg) from a process of user (in group_gid,
    as the daemons are): the answers, as Msg (None: no answer)."""
    import ipc_pb2

    def drop():
        os.setgroups([group_gid])
        os.setgid(group_gid)
        os.setuid(user.pw_uid)
    data = json.dumps([(ep, base64.b64encode(m.SerializeToString()).decode())
                       for ep, m in msgs])
    r = subprocess.run(["/usr/bin/python3", "-c", CHILD, node.run_dir,
                        str(int(nodelib.deadline(5) * 1000))],
                       input=data, preexec_fn=drop, cwd="/", stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = []
    for b in json.loads(r.stdout):
        if b is None:
            out.append(None)
            continue
        m = ipc_pb2.Msg()
        m.ParseFromString(base64.b64decode(b))
        out.append(m)
    return out


def attacks(node_id):
    """What a compromised daemon would send to take the node over."""
    import ipc_pb2
    from common import system_pb2
    deploy = nodelib.task_msg("d1" * 16, "#!/bin/sh\necho owned\n")
    pair = system_pb2.PairId(head=1, tail=2)
    return [
        ("exec", "deploy_task", ipc_pb2.Msg(command=ipc_pb2.Command(
            name="deploy_task", topic="node/%s/deploy_task" % node_id,
            payload=deploy.SerializeToString()))),
        ("exec", "stop_node", ipc_pb2.Msg(command=ipc_pb2.Command(
            name="stop_node", topic="node/%s/stop_node" % node_id, payload=b""))),
        ("exec", "drain", ipc_pb2.Msg(drain=ipc_pb2.DrainRequest())),
        ("exec", "tasks", ipc_pb2.Msg(tasks_req=ipc_pb2.TasksRequest())),
        ("exec", "logs", ipc_pb2.Msg(logs_req=ipc_pb2.LogsRequest(task_id="ab" * 16,
                                                                   offset=0, max=16))),
        ("supervise", "shutdown", ipc_pb2.Msg(shutdown=ipc_pb2.Shutdown(now=True))),
        ("register", "drain", ipc_pb2.Msg(drain=ipc_pb2.DrainRequest())),
        ("register", "task_logs", ipc_pb2.Msg(task_logs=ipc_pb2.TaskLogs(
            swarm_id=pair, task_id=pair, content=b"\0" * 52, key="k"))),
        ("beat", "publish", ipc_pb2.Msg(publish=ipc_pb2.Publish(
            topic="manager/set_system_summary", payload=b"x", qos=0, key="k"))),
    ]


@pytest.fixture
def anode(manager, make_node, bbroot):
    acct = nodelib.daemon_account()
    light = nodelib.light_account()
    ov = nodelib.exec_sections("runc")
    ov.setdefault("security", {}).update({"daemon_user": acct.pw_name,
                                          "light_user": light.pw_name,
                                          "allow_root_daemons": False})
    n = make_node(manager.grpc_port, overrides=ov)
    os.chmod(n.dir, 0o711)
    r = nodelib.image_import(n.config, "busybox", bbroot)
    assert r.returncode == 0, r.stderr
    n.start()
    n.node_id = n.wait_online(30)["node_id"]
    n.wait_ready(30)
    n.acct, n.light = acct, light
    return n


def refused(rep):
    return rep is not None and rep.WhichOneof("body") == "reply" and rep.reply.code == 3


def test_compromised_daemons_refused(anode, manager):
    import ipc_pb2
    n = anode
    before = n.pids()
    light_pid = before["mantad-light"]
    acct, light = n.acct, n.light
    assert nodelib.proc_status(light_pid)["Uid"].split()[0] == str(light.pw_uid)

    # A compromised mantad-light: nothing but who-is-calling
    bad = attacks(n.node_id) + [
        ("register", "collect", ipc_pb2.Msg(command=ipc_pb2.Command(
            name="collect_information", topic="node/%s/collect_information" % n.node_id))),
        ("res", "snapshot", ipc_pb2.Msg(snapshot_req=ipc_pb2.SnapshotRequest())),
        ("exec", "status", ipc_pb2.Msg(status_req=ipc_pb2.StatusRequest())),
    ]
    good = [("exec", "lookup", ipc_pb2.Msg(task_lookup=ipc_pb2.TaskLookup(token="t" * 32)))]
    reps = send_as(n, light, acct.pw_gid, [(ep, m) for ep, _, m in bad + good])
    problems = ["light -> %s %s: %s" % (ep, what, r)
                for (ep, what, _), r in zip(bad, reps) if not refused(r)]
    assert reps[-1] is not None and reps[-1].WhichOneof("body") == "task_identity", reps[-1]
    assert not reps[-1].task_identity.found

    # A compromised res or register: the daemon account, not mantad-beat
    bad = attacks(n.node_id)
    good = [("res", "snapshot", ipc_pb2.Msg(snapshot_req=ipc_pb2.SnapshotRequest()))]
    reps = send_as(n, acct, acct.pw_gid, [(ep, m) for ep, _, m in bad + good])
    problems += ["daemon account -> %s %s: %s" % (ep, what, r)
                 for (ep, what, _), r in zip(bad, reps) if not refused(r)]
    assert reps[-1] is not None and reps[-1].WhichOneof("body") == "snapshot", reps[-1]
    assert not problems, "\n".join(problems)

    # Said in the log, with who asked
    log = n.log()
    assert re.search(r"^mantad-exec: warning: ipc .*/exec\.sock: refused message type \d+"
                     r" from uid %d pid \d+ \(security\.light_user\)" % light.pw_uid, log, re.M)
    assert re.search(r"^mantad-exec: warning: ipc .*/exec\.sock: refused message type \d+"
                     r" from uid %d pid \d+ \(security\.daemon_user\): only mantad-beat"
                     % acct.pw_uid, log, re.M)

    # The node is unaffected: same processes, online, nothing deployed or drained
    st = n.wait_ready(10)
    assert n.pids() == before, (n.pids(), before)
    assert st["state"] == "online", st["state"]
    for d in st["daemons"]:
        assert d["restarts"] == 0, d
    r = nodelib.mantactl("tasks", "--json", "-c", n.config)
    assert r.returncode == 0, r.stderr
    assert "d1" * 16 not in r.stdout, r.stdout

    # The legitimate flows: the manager's deploy through mantad-beat ...
    tid = "c5" * 16
    manager.deploy_task(n.node_id, nodelib.task_msg(tid, "#!/bin/sh\necho legit\n"))
    nodelib.wait_task_status(manager, tid, tasks_pb.COMPLETED)
    nodelib.wait_for(lambda: nodelib.task_log_text(manager, tid) == "legit\n", 15,
                     "task output at the manager")
    # ... and the operator's (root) list and drain
    r = nodelib.mantactl("tasks", "--json", "-c", n.config)
    assert r.returncode == 0 and tid in r.stdout, r.stdout + r.stderr
    r = nodelib.mantactl("drain", "-c", n.config)
    assert r.returncode == 0, r.stdout + r.stderr
    n.wait_status(lambda s: s["state"] in ("draining", "drained"), 15, "drained")
    r = nodelib.mantactl("undrain", "-c", n.config)
    assert r.returncode == 0, r.stdout + r.stderr


def test_root_daemons_refused_without_opt_in(manager, make_node):
    """Finding 2: without an account the confined daemons would stay uid 0;
    mantactl start refuses that unless security.allow_root_daemons, and
    says so; opted in, it starts and says so loudly in the log and status."""
    n = make_node(manager.grpc_port, overrides={"security": {
        "daemon_user": "", "light_user": "", "allow_root_daemons": False}})
    r = nodelib.run([nodelib.MANTACTL, "start", "-c", n.config], timeout=30)
    assert r.returncode == 1, r.stdout + r.stderr
    assert re.search(r"refusing to run mantad-res, mantad-register and mantad-beat as root:"
                     r" security\.daemon_user names no account", r.stderr), r.stderr
    assert "security.allow_root_daemons = true" in r.stderr, r.stderr
    assert n.processes() == []
    assert not os.path.exists(os.path.join(n.run_dir, "res.sock"))

    # A daemon started by hand (s6, systemd) refuses as well, permanently
    r = nodelib.run([os.path.join(nodelib.BIN, "mantad-res"), "-c", n.config], timeout=30)
    assert r.returncode == 100, r.stdout + r.stderr
    assert "refusing to run" in r.stderr, r.stderr

    # Opted in: it starts, and says so
    n2 = make_node(manager.grpc_port, overrides={"security": {
        "daemon_user": "", "light_user": "", "allow_root_daemons": True}})
    n2.start()
    n2.wait_online(30)
    n2.wait_ready(30)
    log = n2.log()
    for d in ("mantad-res", "mantad-register", "mantad-beat"):
        assert re.search(r"^%s: warning: RUNNING AS ROOT" % d, log, re.M), d
    if "mantad-light" in nodelib.DAEMONS:
        assert re.search(r"^mantad-light: warning: RUNNING AS ROOT: mantad-light", log, re.M)
    r = nodelib.mantactl("status", "--json", "-c", n2.config)
    sec = json.loads(r.stdout)["security"]
    assert sec["allow_root_daemons"] is True
    want = {"mantad-res", "mantad-register", "mantad-beat"}
    if "mantad-light" in nodelib.DAEMONS:
        want.add("mantad-light")
    assert set(sec["root_daemons"]) == want, sec
