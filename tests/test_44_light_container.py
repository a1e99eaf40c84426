"""mantad-light from inside real containers (mantad-exec, runc or crun, the
Debian Python image of tests/images/python.sh): a task program built as a
zipapp from the project's own protos (tests/light_payloads/all_methods.py)
calls every Local and World method; the development manager sees each
World call with the task's ids, the node id and the round's iteration; an
attempt to act as another task is refused. Once with the task token, once
without (the reference's compatibility mode)."""

import json
import os

import nodelib
from common import tasks_pb2 as tasks_pb

HERE = os.path.dirname(os.path.abspath(__file__))

pytestmark = nodelib.skip_unless_built("mantad-exec", "mantad-light")


def payload(use_token=True):
    """The zipapp: the program as __main__.py and build/py's modules."""
    with open(os.path.join(HERE, "light_payloads", "all_methods.py")) as f:
        main = f.read()
    if not use_token:
        main = main.replace("\nUSE_TOKEN = True\n", "\nUSE_TOKEN = False\n")
    return nodelib.zipapp(main)


def test_every_method_from_a_container(pyroot, manager, make_node):
    runtime = nodelib.pick_runtime(pyroot)
    n = make_node(manager.grpc_port, overrides=nodelib.exec_sections(
        runtime, containers={"default_memory_limit": "512M", "default_cpu_limit": "1.0"},
        datasets={"mappings": {"ds": "ds", "blob": "blob.bin"}}))
    ds = os.path.join(n.dir, "datasets")
    os.makedirs(os.path.join(ds, "ds", "sub"))
    with open(os.path.join(ds, "ds", "hello.txt"), "w") as f:
        f.write("hello\nfrom the node\n")
    with open(os.path.join(ds, "blob.bin"), "wb") as f:
        f.write(os.urandom(300000))
    r = nodelib.image_import(n.config, "python", pyroot, timeout=300)
    assert r.returncode == 0, r.stderr
    n.start()
    node_id = n.wait_online(30)["node_id"]
    nodelib.wait_for(lambda: os.path.exists(os.path.join(n.run_dir, "light.port")), 15,
                     "mantad-light up")
    swarm = nodelib.random_hex()
    tasks = {nodelib.random_hex(): True, nodelib.random_hex(): False}
    for task, tok in tasks.items():
        manager.deploy_task(node_id, nodelib.task_msg(task, payload(tok), swarm_hex=swarm,
                                                      iteration=3, image="python",
                                                      alias="light"))
    for task in tasks:
        st = nodelib.wait_task_status(manager, task, (tasks_pb.COMPLETED, tasks_pb.FAILED),
                                      timeout=120)
        out = nodelib.mantactl("logs", task, "-c", n.config).stdout
        assert st.task_status == tasks_pb.COMPLETED, out
        line = [l for l in out.splitlines() if l.startswith("LIGHT-RESULTS ")]
        assert line, out
        res = json.loads(line[0].split(" ", 1)[1])
        assert res == {
            "token": tasks[task],
            "exists": True,
            "exists_escape": False,
            "listdir": [["hello.txt", True], ["sub", False]],
            "lines": ["hello\n", "from the node\n"],
            "binary": 300000,
            "global": "from-" + task,
            "result": ["res-" + task],
            "impersonate": "PERMISSION_DENIED",
        }, res

    def mine(c, task):
        m = (c.requests or [c.request])[0]
        if nodelib.pair_hex(m.swarm_id) != swarm:
            return False
        # GlobalTag and GlobalUpdate carry the swarm only.
        return "task_id" not in m.DESCRIPTOR.fields_by_name or nodelib.pair_hex(m.task_id) == task

    def calls(method, task):
        return [c for c in manager.calls(method, accepted_only=True) if mine(c, task)]
    for task in tasks:
        for method in ("SetGlobal", "GetGlobal", "AddTaskResult", "GetTaskResult",
                       "ScheduleTask", "StopSwarm"):
            got = calls(method, task)
            assert got, (method, task, manager.calls(method))
            for c in got:
                assert c.authorization == nodelib.TOKEN
        r = calls("AddTaskResult", task)[0].requests[0]
        assert (nodelib.pair_hex(r.node_id), r.iteration) == (node_id, 3)
        q = calls("GetTaskResult", task)[0].request
        assert (nodelib.pair_hex(q.node_id), q.iteration) == (node_id, 3)
        s = calls("StopSwarm", task)[0].request
        assert (nodelib.pair_hex(s.node_id), s.iteration, s.task_status) == \
            (node_id, 3, tasks_pb.RUNNING)
    rows = nodelib.audit_rows(n.state_dir)
    for task, tok in tasks.items():
        mine = [r for r in rows if r["task_id"] == task and r["status"] == 0]
        assert {r["method"] for r in mine} >= {"Local/Exists", "Local/ListDir",
                                               "Local/ReadFileLines", "Local/GetBinaryData",
                                               "World/SetGlobal", "World/StopSwarm"}
        assert all(r["token"] == (1 if tok else 0) for r in mine)
