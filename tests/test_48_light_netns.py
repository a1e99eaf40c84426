"""containers.network = "none" (issue 13): each task runs in a network
namespace of its own, made by mantad-exec, whose lo is up and in which its
own Light endpoint listens on 127.0.0.1:RPC_PORT, the address the reference
SDK reads. With task_token_required = true a call there without a token
succeeds as that task (only it can reach the endpoint), one naming another
task is refused; nothing else of the host's loopback (broker, manager,
Light's own port) is reachable from inside; the namespace file is gone once
the run ends. The gRPC calls are made by the host's Python inside the
task's namespace (nsenter --net), which is what task code sees; the task
itself checks its environment and the broker port with busybox."""

import glob
import json
import os
import subprocess

import nodelib
from common import tasks_pb2 as tasks_pb

HERE = os.path.dirname(os.path.abspath(__file__))

pytestmark = nodelib.skip_unless_built("mantad-exec", "mantad-light")


def script(broker_port):
    return ("#!/bin/sh\n"
            "echo \"endpoint=$RPC_HOST:$RPC_PORT\"\n"
            "if nc -w 2 127.0.0.1 %d </dev/null 2>/dev/null; then echo broker=reached;"
            " else echo broker=refused; fi\n"
            "sleep 60\n") % broker_port


def netns_files(n):
    return glob.glob(os.path.join(n.run_dir, "netns", "*"))


def probe(path, port, swarm, task, other, *ports):
    r = subprocess.run(["nsenter", "--net=" + path, "/usr/bin/python3",
                        os.path.join(HERE, "light_payloads", "netns_probe.py"),
                        str(port), swarm, task, other] + [str(p) for p in ports],
                       capture_output=True, text=True, timeout=60, cwd=HERE)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def isolated_node(manager, make_node, bbroot, runtime):
    """A started node: network none, tokens required, dataset "d"; with
    the Light port tasks are given."""
    n = make_node(manager.grpc_port, overrides=nodelib.exec_sections(
        runtime, containers={"network": "none"}, security={"task_token_required": True},
        datasets={"mappings": {"d": "d"}}))
    os.makedirs(os.path.join(n.dir, "datasets", "d"))
    assert nodelib.image_import(n.config, "busybox", bbroot).returncode == 0
    n.start()
    n.node_id = n.wait_online(30)["node_id"]
    nodelib.wait_for(lambda: os.path.exists(os.path.join(n.run_dir, "light.port")), 15,
                     "mantad-light up")
    return n, nodelib.light_port(n.run_dir)


def test_own_endpoint_in_own_namespace(manager, broker, make_node, bbroot, runtime):
    n, port = isolated_node(manager, make_node, bbroot, runtime)
    swarm = nodelib.random_hex()
    tasks = [nodelib.random_hex(), nodelib.random_hex()]
    for t in tasks:
        manager.deploy_task(n.node_id, nodelib.task_msg(t, script(broker.port),
                                                        swarm_hex=swarm))
    for t in tasks:
        nodelib.wait_task_status(manager, t, tasks_pb.RUNNING, timeout=60)
    want = "endpoint=127.0.0.1:%d\nbroker=refused\n" % port
    def output(t):
        out = nodelib.mantactl("logs", t, "-c", n.config).stdout
        assert want in out, out
        return True
    for t in tasks:
        nodelib.wait_for(lambda: output(t), 15, "task %s output" % t)
    files = {}
    for t in tasks:
        f = [p for p in netns_files(n) if "-%s-" % t[:12] in os.path.basename(p)]
        assert len(f) == 1, netns_files(n)
        files[t] = f[0]
    for t, other in ((tasks[0], tasks[1]), (tasks[1], tasks[0])):
        got = probe(files[t], port, swarm, t, other, port + 0, broker.port,
                    manager.grpc_port)
        assert got["self"] == "OK", got
        assert got["other"] == "PERMISSION_DENIED", got
        # port (the endpoint) is reached; the host's broker and manager not.
        assert got["reach"] == {str(port): True, str(broker.port): False,
                                str(manager.grpc_port): False}, got
    # The host's own Light still requires a token.
    c = nodelib.LightClient("127.0.0.1:%d" % port)
    from node import light_service_pb2 as L
    req = L.DirRequest(data_request=L.DataRequest(
        swarm_id=nodelib.pair(swarm), task_id=nodelib.pair(tasks[0]), name="d"))
    assert nodelib.grpc_code(lambda: c.call("Local/Exists", req)).name == "UNAUTHENTICATED"
    c.close()

    manager.stop_swarm(n.node_id, swarm)
    for t in tasks:
        nodelib.wait_task_status(manager, t, (tasks_pb.STOPPED, tasks_pb.FAILED,
                                              tasks_pb.COMPLETED), timeout=60)
    nodelib.wait_for(lambda: not netns_files(n), 15, "namespace files removed")
    mounts = open("/proc/self/mountinfo").read()
    for f in files.values():
        assert f not in mounts


def one_task(manager, make_node, bbroot):
    """An isolated node running one long task whose endpoint serves it:
    (node, port, swarm, task, namespace file)."""
    n, port = isolated_node(manager, make_node, bbroot, nodelib.pick_runtime(bbroot))
    swarm, task = nodelib.random_hex(), nodelib.random_hex()
    manager.deploy_task(n.node_id, nodelib.task_msg(task, "#!/bin/sh\nsleep 120\n",
                                                    swarm_hex=swarm))
    nodelib.wait_task_status(manager, task, tasks_pb.RUNNING, timeout=60)
    path = nodelib.wait_for(lambda: netns_files(n), 15, "the task's namespace")[0]
    assert probe(path, port, swarm, task, nodelib.random_hex())["self"] == "OK"
    return n, port, swarm, task, path


def test_endpoint_back_after_light_restart(manager, make_node, bbroot):
    """kill -9 of mantad-light: the supervisor restarts it and mantad-exec
    hands it the running task's endpoint again; a uid other than exec's
    (and Light's) cannot hand it one."""
    import signal
    n, port, swarm, task, path = one_task(manager, make_node, bbroot)
    other = nodelib.random_hex()

    old = n.pids()["mantad-light"]
    os.kill(old, signal.SIGKILL)
    nodelib.wait_for(lambda: n.pids().get("mantad-light") not in (None, old), 15,
                     "mantad-light restarted")
    n.wait_status(lambda s: n.daemon("mantad-light", s)["state"] == "up", 15,
                  "mantad-light up again")
    nodelib.wait_for(lambda: probe(path, port, swarm, task, other)["self"] == "OK", 15,
                     "the task's endpoint served again")

    # Another uid: refused by Light even where the socket's mode lets it in.
    sock = os.path.join(n.run_dir, "light-netns.sock")
    for d in (n.dir, n.run_dir):
        os.chmod(d, os.stat(d).st_mode | 0o011)
    os.chmod(sock, 0o666)
    r = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
         "/usr/bin/python3", "-c",
         "import socket,sys\n"
         "s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)\n"
         "s.connect(sys.argv[1])\n"
         "s.settimeout(10)\n"
         "print('closed' if s.recv(1) == b'' else 'open')\n", sock],
        capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.strip() == "closed", (r.stdout, r.stderr)
    nodelib.wait_for(lambda: "refused a task endpoint connection from uid 65534" in n.log(),
                     10, "the refusal logged")


def test_endpoint_back_after_exec_restart(manager, make_node, bbroot):
    """kill -9 of mantad-exec: the task runs on (adopted), its namespace is
    kept and it gets a new endpoint there; the namespace goes when it ends."""
    import signal
    n, port, swarm, task, path = one_task(manager, make_node, bbroot)
    other = nodelib.random_hex()
    pid = n.pids()["mantad-exec"]
    os.kill(pid, signal.SIGKILL)
    n.wait_status(lambda s: any(d["name"] == "mantad-exec" and d["state"] == "up"
                                and d["pid"] != pid for d in s["daemons"]), 30,
                  "mantad-exec restarted")
    assert netns_files(n) == [path]
    nodelib.wait_for(lambda: probe(path, port, swarm, task, other)["self"] == "OK", 15,
                     "the adopted task's endpoint served")
    manager.stop_swarm(n.node_id, swarm)
    nodelib.wait_task_status(manager, task, (tasks_pb.STOPPED, tasks_pb.FAILED), timeout=60)
    nodelib.wait_for(lambda: not netns_files(n), 15, "namespace file removed")


def test_own_endpoint_with_userns(manager, broker, make_node, bbroot, runtime):
    """containers.userns as well: the task, root of a user namespace of its
    own, joins the namespace made for it (sysfs is then the host's, bound
    read-only), reaches its Light endpoint there at RPC_HOST:RPC_PORT, and
    not the broker. (Such tasks used to keep the runtime's empty namespace
    and a unix: RPC_HOST that reference task code cannot use.)"""
    import shutil
    import tempfile
    img = tempfile.mkdtemp(prefix="mnt-img-", dir="/tmp")
    os.chmod(img, 0o755)        # the mapped root must reach the image
    try:
        n = nodelib.exec_node(manager, make_node, bbroot, runtime, containers={
            "network": "none", "userns": True, "userns_base": 300000,
            "userns_size": 65536, "image_dir": img})
        nodelib.wait_for(lambda: os.path.exists(os.path.join(n.run_dir, "light.port")),
                         15, "mantad-light up")
        port = nodelib.light_port(n.run_dir)
        t = nodelib.random_hex()
        manager.deploy_task(n.node_id, nodelib.task_msg(t, (
            "#!/bin/sh\n"
            "echo \"endpoint=$RPC_HOST:$RPC_PORT uid=$(id -u)\"\n"
            "if nc -w 2 \"$RPC_HOST\" \"$RPC_PORT\" </dev/null >/dev/null; then echo light=reached;"
            " else echo light=refused; fi\n"
            "if nc -w 2 127.0.0.1 %d </dev/null 2>/dev/null; then echo broker=reached;"
            " else echo broker=refused; fi\n") % broker.port))
        nodelib.wait_task_status(manager, t, tasks_pb.COMPLETED, timeout=60)
        out = nodelib.wait_for(lambda: "broker=" in nodelib.task_log_text(manager, t) and
                               nodelib.task_log_text(manager, t), 15, "the task's output")
        assert "endpoint=127.0.0.1:%d uid=0\nlight=reached\nbroker=refused\n" % port \
            in out, out
        nodelib.wait_for(lambda: not netns_files(n), 15, "the namespace removed")
    finally:
        shutil.rmtree(img, ignore_errors=True)
