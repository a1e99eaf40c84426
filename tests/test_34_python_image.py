"""The Debian Python test image (tests/images/python.sh: debootstrap
minbase bookworm with python3 and python3-grpcio, cached under
/var/cache/manta-test): it imports into the image store, its `python` can
import grpc, and, with mantad-exec built, a reference-style task (a zipapp
run as `python /usr/src/module.pyz`) prints its environment. Skipped where
the image cannot be built (no debootstrap, no root, no mirror)."""

import io
import os
import subprocess
import zipfile

import pytest

import nodelib
from devmanager import hex_to_pair, pair_to_hex

from common import tasks_pb2 as tasks_pb  # noqa: E402


def test_python_image_imports(pyroot, tmp_path):
    (tmp_path / "n").mkdir()
    n = nodelib.Node(nodelib.free_port(), dir=str(tmp_path / "n"))
    try:
        r = nodelib.image_import(n.config, "python:3.11", pyroot, timeout=300)
        assert r.returncode == 0, r.stderr
        root = os.path.join(n.state_dir, "images", "python%3A3.11", "rootfs")
        assert os.path.exists(os.path.join(root, "usr", "bin", "python"))
        r = subprocess.run(["chroot", root, "python", "-c",
                            "import grpc, google.protobuf; print(grpc.__version__)"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip()
    finally:
        n.cleanup()      # 190 MB: not left in pytest's temp dirs


def zipapp_payload(main_py):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("__main__.py", main_py)
    return buf.getvalue()


@pytest.mark.skipif(not os.access(os.path.join(nodelib.BIN, "mantad-exec"), os.X_OK),
                    reason="bin/mantad-exec not built")
def test_zipapp_task(pyroot, manager, make_node):
    n = make_node(manager.grpc_port)
    r = nodelib.image_import(n.config, "python", pyroot, timeout=300)
    assert r.returncode == 0, r.stderr
    n.start()
    node_id = n.wait_online(30)["node_id"]
    swarm, task = "0000000000000000000000000000c0de", "0000000000000000000000000000c0df"
    payload = zipapp_payload(
        "import os, sys, grpc\n"
        "print('py', sys.version_info[0], os.environ['TASK_ID'], os.environ['SWARM_ID'])\n"
        "print('rpc', bool(os.environ.get('RPC_HOST')), bool(os.environ.get('RPC_PORT')))\n")
    manager.deploy_task(node_id, tasks_pb.MqttTask(
        swarm_id=hex_to_pair(swarm), task_id=hex_to_pair(task), payload=payload,
        image="python", alias="py", network="None", auth_key="None",
        login_server="None"))
    manager.wait_message("manager/update_task_status", timeout=nodelib.deadline(90),
                         pred=lambda rec: rec.request is not None
                         and pair_to_hex(rec.request.task_id) == task
                         and rec.request.task_status == tasks_pb.COMPLETED)
    r = nodelib.mantactl("logs", task, "-c", n.config)
    assert r.returncode == 0, r.stderr
    assert "py 3 %s %s\n" % (task, swarm) in r.stdout, r.stdout
    assert "rpc True True\n" in r.stdout, r.stdout
