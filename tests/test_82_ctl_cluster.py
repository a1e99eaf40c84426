"""mantactl cluster (issue 14): N local node instances from one template,
each with its own alias (so its own node id), run and state dirs and Light
port, all reading the template's image store. Three instances against a
real mosquitto and the dev manager: all register with distinct ids,
`cluster status --json` lists them online, a task runs on one of them from
the shared image, `cluster stop` stops them all. Bad N and a second start
are refused."""

import json
import os

import pytest

import nodelib
from devmanager import pair_to_hex
from common import tasks_pb2 as tasks_pb

pytestmark = nodelib.skip_unless_built("mantad-exec")


def cluster(*args, timeout=120):
    return nodelib.mantactl("cluster", *args, timeout=timeout)


def status(config):
    r = cluster("status", "--json", "-c", config)
    assert r.stdout.strip(), (r.returncode, r.stderr)
    return r.returncode, json.loads(r.stdout)


@pytest.fixture
def template(request, manager, make_node, bbroot):
    runtime = nodelib.pick_runtime(bbroot)
    t = make_node(manager.grpc_port, alias="tmpl",
                  overrides=nodelib.exec_sections(runtime))
    r = nodelib.image_import(t.config, "busybox", bbroot)
    assert r.returncode == 0, r.stderr

    def stop_all():
        cluster("stop", "-c", t.config)
        for i in range(1, 4):
            for pid, _ in nodelib.procs_with_arg(os.path.join(
                    t.state_dir, "cluster", "%d.toml" % i)):
                os.kill(pid, 9)
    request.addfinalizer(stop_all)
    return t


def test_cluster_three(manager, template):
    t = template
    r = cluster("start", "0", "-c", t.config)
    assert r.returncode == 2 and "1 to" in r.stderr
    r = cluster("status", "-c", t.config)
    assert r.returncode == 3 and "no cluster" in r.stderr

    r = cluster("start", "3", "-c", t.config)
    assert r.returncode == 0, r.stderr
    assert "3 of 3 instances started" in r.stdout

    def online():
        rc, st = status(t.config)
        return (rc == 0 and st["instances_running"] == 3
                and all(i["registered"] and i["connected"] for i in st["instances"])
                and st)
    st = nodelib.wait_for(online, 60, "three instances online")
    inst = st["instances"]
    assert st["instances_total"] == 3 and [i["index"] for i in inst] == [1, 2, 3]
    assert [i["alias"] for i in inst] == ["tmpl-1", "tmpl-2", "tmpl-3"]
    ids = {i["node_id"] for i in inst}
    assert len(ids) == 3
    assert ids == {nodelib.id_from_string(i["alias"]) for i in inst}
    registered = {pair_to_hex(c.request.node_id) for c in manager.calls("RegisterNode")}
    assert ids <= registered
    for key in ("light_port", "run_dir", "state_dir", "pid"):
        assert len({i[key] for i in inst}) == 3, key
    # Each instance's config shares the template's image store.
    for i in inst:
        with open(i["config"]) as f:
            text = f.read()
        assert 'image_dir = "%s"' % os.path.join(t.state_dir, "images") in text
        assert nodelib.mantactl("status", "-c", i["config"]).returncode == 0
    # Heartbeats from every instance.
    nodelib.wait_for(lambda: ids <= {pair_to_hex(h.request.node_id)
                                     for h in manager.heartbeats},
                     20, "heartbeats from the three instances")

    # A task on instance 2 runs from the shared image.
    task = "e1" * 16
    manager.deploy_task(inst[1]["node_id"], nodelib.task_msg(task, "#!/bin/sh\necho hi\n"))
    u = nodelib.wait_task_status(manager, task, (tasks_pb.COMPLETED, tasks_pb.FAILED))
    assert u.task_status == tasks_pb.COMPLETED
    assert pair_to_hex(u.node_id) == inst[1]["node_id"]

    # A second start while it runs is refused; nothing changes.
    r = cluster("start", "2", "-c", t.config)
    assert r.returncode == 1 and "runs already" in r.stderr
    assert status(t.config)[1]["instances_running"] == 3

    r = cluster("stop", "-c", t.config)
    assert r.returncode == 0, r.stderr
    rc, st = status(t.config)
    assert rc == 3 and st["instances_running"] == 0
    for i in inst:
        assert not nodelib.alive(i["pid"])
        assert nodelib.mantactl("status", "-c", i["config"]).returncode == 3
