"""kill -9 of mantad-light under the supervisor (mantactl start): it is
restarted, on the same port (tasks still running were given it in
RPC_PORT), and the next call of a running task is served."""

import os
import signal

import grpc

import nodelib
from common import tasks_pb2 as tasks_pb

pytestmark = nodelib.skip_unless_built("mantad-exec", "mantad-light")


def test_kill9_restarted(manager, make_node, bbroot):
    runtime = nodelib.pick_runtime(bbroot)
    n = make_node(manager.grpc_port, overrides=nodelib.exec_sections(
        runtime, datasets={"mappings": {"ds": "ds"}},
        network={"light_service_port": None}))     # unset: picked, then kept
    os.makedirs(os.path.join(n.dir, "datasets", "ds"))
    n.write_config()
    assert nodelib.image_import(n.config, "busybox", bbroot).returncode == 0
    n.start()
    node_id = n.wait_online(30)["node_id"]
    swarm, task = nodelib.random_hex(), nodelib.random_hex()
    manager.deploy_task(node_id, nodelib.task_msg(task, "#!/bin/sh\nsleep 120\n",
                                                  swarm_hex=swarm))
    nodelib.wait_task_status(manager, task, tasks_pb.RUNNING, timeout=60)

    def call():
        from node import light_service_pb2 as L
        c = nodelib.LightClient("127.0.0.1:%d" % nodelib.light_port(n.run_dir))
        try:
            return c.call("Local/Exists", L.DirRequest(data_request=L.DataRequest(
                swarm_id=nodelib.pair(swarm), task_id=nodelib.pair(task), name="ds")),
                timeout=5).value
        finally:
            c.close()
    assert call() is True
    port = nodelib.light_port(n.run_dir)
    old = n.pids()["mantad-light"]
    os.kill(old, signal.SIGKILL)
    nodelib.wait_for(lambda: n.pids().get("mantad-light") not in (None, old), 15,
                     "mantad-light restarted")
    st = n.wait_status(lambda s: n.daemon("mantad-light", s)["state"] == "up", 15,
                       "mantad-light up again")
    assert n.daemon("mantad-light", st)["restarts"] >= 1
    assert nodelib.light_port(n.run_dir) == port

    def served():
        try:
            return call()
        except grpc.RpcError:
            return None
    assert nodelib.wait_for(served, 10, "a call served after the restart") is True
    manager.stop_task(node_id, nodelib._pb("system.EnvId")(swarm_id=nodelib.pair(swarm),
                                                           task_id=nodelib.pair(task)))
