"""The audit trail beyond commands (mantactl(8) AUDIT): mantad-exec appends
task_started and task_ended (status, exit code, reason) for real tasks,
mantad-light dataset_access and world_call for the calls a running task
makes (here from the host with the task's own token, read from its
environment); all of them in the one hash-chained <state_dir>/audit.log,
in order, with `mantactl audit verify` ok and the chain recomputed."""

import os
import signal

import grpc

import nodelib
from common import tasks_pb2 as tasks_pb

pytestmark = nodelib.skip_unless_built("mantad-exec", "mantad-light")

SWARM = "5a" * 16

WAITER = """#!/bin/sh
trap 'exit 0' USR1
echo ready
while :; do sleep 0.05; done
"""


def task_token(node, task):
    """(init pid, MANTA_TASK_TOKEN) of task's running container."""
    pidfile = os.path.join(node.state_dir, "tasks", "%s-%s-0-0" % ("5a" * 16, task),
                           "init.pid")

    def get():
        try:
            with open(pidfile) as f:
                pid = int(f.read().strip())
            with open("/proc/%d/environ" % pid, "rb") as f:
                env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
        except (OSError, ValueError):
            return None
        tok = env.get(b"MANTA_TASK_TOKEN")
        return (pid, tok.decode()) if tok else None
    return nodelib.wait_for(get, 30, "the task's container and its token")


def L():
    from node import light_service_pb2
    return light_service_pb2


def test_tasks_and_light_calls_audited(manager, make_node, bbroot):
    runtime = nodelib.pick_runtime(bbroot)
    node = make_node(manager.grpc_port, overrides=nodelib.exec_sections(
        runtime, datasets={"mappings": {"ds": "ds"}}))
    os.makedirs(os.path.join(node.dir, "datasets", "ds"))
    with open(os.path.join(node.dir, "datasets", "ds", "hello.txt"), "w") as f:
        f.write("hello\n")
    r = nodelib.image_import(node.config, "busybox", bbroot)
    assert r.returncode == 0, r.stderr
    node.start()
    node.node_id = node.wait_online(30)["node_id"]
    nodelib.wait_for(lambda: os.path.exists(os.path.join(node.run_dir, "light.port")), 15,
                     "mantad-light up")

    ok, bad = "e1" * 16, "e2" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(ok, WAITER))
    pid, token = task_token(node, ok)
    nodelib.wait_task_status(manager, ok, tasks_pb.RUNNING)

    # The task's calls, as its code would make them.
    c = nodelib.LightClient("127.0.0.1:%d" % nodelib.light_port(node.run_dir), token=token)
    try:
        ids = dict(swarm_id=nodelib.pair(SWARM), task_id=nodelib.pair(ok))
        dr = L().DataRequest(name="ds", **ids)
        assert c.call("Local/Exists", L().DirRequest(data_request=dr, path="hello.txt")).value
        code = nodelib.grpc_code(lambda: c.call("Local/ListDir",
                                                L().DirRequest(data_request=dr, path="../x")))
        assert code != grpc.StatusCode.OK
        c.call("World/SetGlobal", iter([L().SetGlobalRequest(tag="g", data=b"hello", **ids)]))
        got = c.call("World/GetGlobal", L().GetGlobalRequest(tag="g", **ids))
        assert b"".join(v.data for v in got) == b"hello"
    finally:
        c.close()
    os.kill(pid, signal.SIGUSR1)
    nodelib.wait_task_status(manager, ok, tasks_pb.COMPLETED)
    manager.deploy_task(node.node_id, nodelib.task_msg(bad, "#!/bin/sh\nexit 3\n"))
    nodelib.wait_task_status(manager, bad, tasks_pb.FAILED)

    def complete():
        e = nodelib.audit_show(node)
        ended = [x for x in e if x["event"] == "task_ended"]
        calls = [x for x in e if x["event"] in ("dataset_access", "world_call")]
        return e if len(ended) == 2 and len(calls) == 4 else None
    entries = nodelib.wait_for(complete, 20, "task and Light entries in the audit trail")

    def only(event, **kw):
        got = [e for e in entries if e["event"] == event and
               all(e.get(k) == v for k, v in kw.items())]
        assert len(got) == 1, (event, kw, entries)
        return got[0]

    started = only("task_started", task_id=ok)
    assert started["swarm_id"] == SWARM and started["image"] == "busybox"
    assert started["iteration"] == 0 and started["circular"] == 0
    assert started["runtime"] == runtime and started["container"].startswith("manta-")
    assert started["userns"] is False
    ended = only("task_ended", task_id=ok)
    assert (ended["status"], ended["exit_code"], ended["reason"]) == ("COMPLETED", 0, None)
    only("task_started", task_id=bad)
    failed = only("task_ended", task_id=bad)
    assert (failed["status"], failed["exit_code"]) == ("FAILED", 3)
    assert failed["reason"] == "exit status 3" and "error_id" not in failed

    seen = only("dataset_access", path="hello.txt")
    assert (seen["method"], seen["dataset"], seen["status"]) == ("Local/Exists", "ds", 0)
    assert (seen["swarm_id"], seen["task_id"], seen["token"]) == (SWARM, ok, True)
    refused = only("dataset_access", path="../x")
    assert (refused["method"], refused["status"]) == ("Local/ListDir", code.value[0])
    sg = only("world_call", method="World/SetGlobal")
    # bytes: the messages' payload both ways, the value and the ids
    assert (sg["tag"], sg["status"], sg["task_id"]) == ("g", 0, ok) and sg["bytes"] >= 5
    gg = only("world_call", method="World/GetGlobal")
    assert (gg["tag"], gg["status"]) == ("g", 0) and gg["bytes"] >= 5

    # One chain, in the order things happened: the command, the start,
    # the task's calls, the end.
    seq = {id(e): e["seq"] for e in entries}
    cmd = [e for e in entries if e["event"] == "command" and e.get("task_id") == ok]
    assert len(cmd) == 1 and cmd[0]["command"] == "deploy_task"
    order = [cmd[0], started, seen, sg, gg, ended]
    assert [seq[id(e)] for e in order] == sorted(seq[id(e)] for e in order), entries
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))

    assert nodelib.audit_chain_ok(os.path.join(node.state_dir, "audit.log")) == len(entries)
    r = nodelib.mantactl("audit", "verify", "-c", node.config)
    assert r.returncode == 0 and r.stdout.startswith("ok %d entries" % len(entries)), \
        (r.stdout, r.stderr)
    r = nodelib.mantactl("audit", "show", "-c", node.config)
    assert r.returncode == 0
    assert "task_ended" in r.stdout and "status=COMPLETED" in r.stdout
    assert "dataset_access" in r.stdout and "world_call" in r.stdout
