"""Issue 12: pull on deploy from a real registry on loopback (Debian's
docker-registry): TLS from a test CA with htpasswd basic auth, and plain
HTTP as an insecure registry. Docker schema 2 and OCI manifests, a
multi-arch index, zstd layers, a layer with whiteouts. A deploy by name
pulls once and runs; a second does not pull; two at once share one pull.
Wrong credentials, an unknown tag, a corrupt blob, a registry that is down
and a pull past containers.pull_timeout each end FAILED with SendError 18
and the reason, with nothing half-unpacked left in the store."""

import json
import os
import re
import socket
import threading

import pytest

import imagelib
import nodelib
from devmanager import pair_to_hex
from common import tasks_pb2

pytestmark = pytest.mark.skipif(not imagelib.have_tools(),
                                reason="skopeo, umoci or docker-registry missing")

COMPLETED, FAILED, RUNNING = (tasks_pb2.COMPLETED, tasks_pb2.FAILED, tasks_pb2.RUNNING)


@pytest.fixture(scope="module")
def images(bbroot, tmp_path_factory):
    """The registries and what is pushed to them (once a module)."""
    d = tmp_path_factory.mktemp("imgs")
    layout = str(d / "layout")
    imagelib.make_layout(layout, "1", bbroot, **imagelib.STANDARD)
    multi = imagelib.multiarch_layout(str(d / "multi"), bbroot)
    # Its own first layer: the one corrupt() breaks is no other image's.
    imagelib.make_layout(layout, "c", bbroot, marker="corrupt", **imagelib.STANDARD)
    tls = imagelib.Registry(tls=True)
    plain = imagelib.Registry(tls=False)
    try:
        refs = {
            "v2s2": tls.push("oci:%s:1" % layout, "team/standin:v2s2", fmt="v2s2"),
            "oci": tls.push("oci:%s:1" % layout, "team/standin:oci", fmt="oci"),
            "multi": tls.push("oci:" + multi, "team/standin:multi", all_=True),
            "zstd": tls.push("oci:%s:1" % layout, "team/standin:zstd", fmt="oci",
                             zstd=True),
            "corrupt": tls.push("oci:%s:c" % layout, "team/corrupt:1", fmt="v2s2"),
            "plain": plain.push("oci:%s:1" % layout, "standin:plain", fmt="v2s2"),
        }
        yield tls, plain, refs, str(d)
    finally:
        tls.cleanup()
        plain.cleanup()


def errors_for(manager, task_hex):
    def get():
        return [c.request for c in manager.calls("SendError")
                if pair_to_hex(c.request.task_id) == task_hex]
    nodelib.wait_for(get, 30, "SendError about task %s" % task_hex)
    return get()


def pull_node(manager, make_node, bbroot, runtime, tls, plain, auth, **extra):
    sections = {"containers": {"registry_auth": auth,
                               "insecure_registries": [plain.host],
                               "pull_timeout": 60}}
    for k, v in extra.items():
        sections.setdefault(k, {}).update(v)
    return nodelib.exec_node(manager, make_node, bbroot, runtime, **sections)


def store_clean(n):
    d = os.path.join(n.state_dir, "images")
    return [x for x in os.listdir(d) if x.startswith(".")] if os.path.isdir(d) else []


def pulls_of(n, ref):
    return len(re.findall(r"pulling %s \(pid" % re.escape(ref), n.log()))


def run_task(manager, n, t, ref):
    manager.deploy_task(n.node_id, nodelib.task_msg(t, b"echo ran-$FOO\n", image=ref))
    nodelib.wait_task_status(manager, t, (COMPLETED, FAILED), timeout=120)
    nodelib.wait_for(lambda: "ran-from-image" in nodelib.task_log_text(manager, t), 20,
                     "output of %s" % t)
    return nodelib.task_log_text(manager, t)


def test_pull_on_deploy(manager, make_node, bbroot, runtime, images, tmp_path):
    tls, plain, refs, _ = images
    auth = tls.authfile(str(tmp_path / "auth.json"))
    n = pull_node(manager, make_node, bbroot, runtime, tls, plain, auth)
    for i, kind in enumerate(("v2s2", "oci", "multi", "zstd", "plain")):
        t = "%02x" % (0xd0 + i) * 16
        out = run_task(manager, n, t, refs[kind])
        # amd64 picked from the index; config applied; whiteout honoured.
        assert "standin(amd64): uid=1000 gid=1000 cwd=/work/dir foo=from-image" \
            " task=%s" % t in out, (kind, out)
        assert [u[3] for u in nodelib.task_updates(manager, t)] == [RUNNING, COMPLETED]
        assert pulls_of(n, refs[kind]) == 1, kind
    ls = {e["name"]: e for e in nodelib.image_ls(n.config)}
    for kind in ("v2s2", "oci", "multi", "zstd", "plain"):
        e = ls[refs[kind]]
        assert e["kind"] == "registry" and e["digest"].startswith("sha256:"), e
        root = os.path.join(n.state_dir, "images", e["path"].split("/")[-2], "rootfs")
        assert not os.path.exists(os.path.join(root, "etc/doomed"))
        assert os.path.isfile(os.path.join(root, "etc/layer2"))
    # Again: no second pull.
    out = run_task(manager, n, "e0" * 16, refs["v2s2"])
    assert pulls_of(n, refs["v2s2"]) == 1
    assert store_clean(n) == []

    # Two deploys of a new image at once: one pull, both run.
    ref = tls.push("oci:%s:1" % os.path.join(images[3], "layout"), "team/twice:1")
    a, b = "e1" * 16, "e2" * 16
    manager.deploy_task(n.node_id, nodelib.task_msg(a, b"echo ran-$FOO\n", image=ref))
    manager.deploy_task(n.node_id, nodelib.task_msg(b, b"echo ran-$FOO\n", image=ref))
    for t in (a, b):
        nodelib.wait_task_status(manager, t, COMPLETED, timeout=120)
    assert pulls_of(n, ref) == 1, n.log_tail(30)


def failed_with(manager, n, t, ref, words):
    manager.deploy_task(n.node_id, nodelib.task_msg(t, b"echo never\n", image=ref))
    nodelib.wait_task_status(manager, t, FAILED, timeout=120)
    e = errors_for(manager, t)
    assert len(e) == 1 and e[0].error_id == 18, e
    for w in words:
        assert w in e[0].content, (w, e[0].content)
    assert [u[3] for u in nodelib.task_updates(manager, t)] == [FAILED]
    assert store_clean(n) == []
    assert ref not in [x["name"] for x in nodelib.image_ls(n.config)]
    return e[0].content


def corrupt(tls):
    """Flips bytes in the largest blob the registry holds for team/corrupt
    (a layer): its digest no longer matches. Once a module: the test runs
    for each runtime."""
    import glob
    if getattr(tls, "corrupted", False):
        return
    tls.corrupted = True
    links = glob.glob(os.path.join(tls.dir, "data/docker/registry/v2/repositories/"
                                   "team/corrupt/_layers/sha256/*"))
    blobs = []
    for lk in links:
        h = os.path.basename(lk)
        p = os.path.join(tls.dir, "data/docker/registry/v2/blobs/sha256", h[:2], h, "data")
        blobs.append((os.path.getsize(p), p))
    size, path = max(blobs)
    with open(path, "r+b") as f:
        f.seek(size // 2)
        b = f.read(16)
        f.seek(size // 2)
        f.write(bytes(x ^ 0xff for x in b))


def test_pull_failures(manager, make_node, bbroot, runtime, images, tmp_path):
    tls, plain, refs, _ = images
    auth = tls.authfile(str(tmp_path / "auth.json"), password="wrong")
    # A "registry" that accepts and never answers: the pull times out.
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(16)
    hang_host = "127.0.0.1:%d" % hang.getsockname()[1]
    n = pull_node(manager, make_node, bbroot, runtime, tls, plain, auth,
                  containers={"pull_timeout": 4,
                              "insecure_registries": [plain.host, hang_host]})
    try:
        failed_with(manager, n, "f1" * 16, refs["v2s2"], ["unauthorized"])
        # The right credentials now (the file is read at each pull).
        tls.authfile(auth)
        failed_with(manager, n, "f2" * 16, tls.host + "/team/standin:nope",
                    ["manifest unknown"])
        corrupt(tls)
        failed_with(manager, n, "f3" * 16, refs["corrupt"], ["Digest did not match"])
        failed_with(manager, n, "f4" * 16, hang_host + "/x:1",
                    ["timed out after 4 s", "pull_timeout"])
        plain.stop()
        try:
            failed_with(manager, n, "f5" * 16, refs["plain"], ["connection refused"])
        finally:
            plain.start()
        # Not allowed by the node's list: refused at once.
    finally:
        hang.close()


def test_registries_restricted(manager, make_node, bbroot, runtime, images, tmp_path):
    tls, plain, refs, _ = images
    n = pull_node(manager, make_node, bbroot, runtime, tls, plain,
                  tls.authfile(str(tmp_path / "a.json")),
                  containers={"registries": [tls.host]})
    c = failed_with(manager, n, "f6" * 16, refs["plain"], ["containers.registries"])
    assert plain.host in c
    assert pulls_of(n, refs["plain"]) == 0
    run_task(manager, n, "f7" * 16, refs["v2s2"])


def test_ctl_pull(images, tmp_path):
    tls, plain, refs, _ = images
    n = nodelib.Node(nodelib.free_port(), overrides={"containers": {
        "registry_auth": tls.authfile(str(tmp_path / "auth.json")),
        "insecure_registries": [plain.host]}})
    try:
        r = nodelib.mantactl("image", "pull", refs["oci"], "--json", "-c", n.config,
                             timeout=120)
        assert r.returncode == 0, r.stderr
        assert r.stderr == ""        # quiet under --json
        m = json.loads(r.stdout)
        assert m["name"] == refs["oci"] and m["digest"].startswith("sha256:"), m
        r = nodelib.mantactl("image", "pull", refs["plain"], "-c", n.config, timeout=120)
        assert r.returncode == 0, r.stderr
        # A credentials file others can read is refused.
        os.chmod(str(tmp_path / "auth.json"), 0o644)
        r = nodelib.mantactl("image", "pull", refs["v2s2"], "-c", n.config, timeout=120)
        assert r.returncode == 1 and "0600" in r.stderr, r.stderr
        names = [e["name"] for e in nodelib.image_ls(n.config)]
        assert names == sorted([refs["oci"], refs["plain"]]), names
    finally:
        n.cleanup()


def test_pull_progress_on_terminal(images, tmp_path):
    """On a terminal, the pull shows layers and bytes."""
    import pty
    import subprocess
    tls, plain, refs, _ = images
    n = nodelib.Node(nodelib.free_port(), overrides={"containers": {
        "insecure_registries": [plain.host]}})
    try:
        master, slave = pty.openpty()
        p = subprocess.Popen([nodelib.MANTACTL, "image", "pull", refs["plain"], "-c",
                              n.config], stdin=slave, stdout=slave, stderr=slave)
        os.close(slave)
        out = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        assert p.wait(120) == 0, out
        os.close(master)
        text = out.decode(errors="replace")
        assert re.search(r"pulling %s: 2 layers, [\d.]+ MB" % re.escape(refs["plain"]),
                         text), text
    finally:
        n.cleanup()


def test_sealed_auth(images, tmp_path):
    """containers.registry_auth sealed with `mantactl secret seal-key`: the
    pull opens it with the secret key; a wrong key refuses the start of
    anything that loads the config, naming the key."""
    tls, plain, refs, _ = images
    n = nodelib.Node(nodelib.free_port())
    try:
        auth = tls.authfile(os.path.join(n.dir, "auth.json"))
        assert nodelib.mantactl("secret", "init", "-c", n.config).returncode == 0
        r = nodelib.mantactl("secret", "seal-key", "--remove", "-c", n.config, auth)
        assert r.returncode == 0, r.stderr
        assert not os.path.exists(auth)
        with open(auth + ".sbox") as f:
            assert f.read().startswith("sbox:")
        n.sections.setdefault("containers", {})["registry_auth"] = auth + ".sbox"
        n.write_config()
        r = nodelib.mantactl("image", "pull", refs["v2s2"], "--json", "-c", n.config,
                             timeout=120)
        assert r.returncode == 0, r.stderr
        key = os.path.join(n.state_dir, "secret.key")
        os.chmod(key, 0o600)
        with open(key, "w") as f:
            f.write("00" * 32 + "\n")
        os.chmod(key, 0o400)
        r = nodelib.mantactl("image", "pull", refs["oci"], "-c", n.config, timeout=120)
        assert r.returncode == 1 and "containers.registry_auth" in r.stderr, r.stderr
    finally:
        n.cleanup()


def test_exec_killed_mid_pull(manager, make_node, bbroot, runtime, images, tmp_path):
    """mantad-exec killed during a pull: the pull and its skopeo go with it,
    the restarted daemon pulls the still-queued run again (here: fails, the
    registry gone), and no half-filled directory stays."""
    import signal
    tls, plain, refs, _ = images
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(16)
    host = "127.0.0.1:%d" % hang.getsockname()[1]
    ref = host + "/slow:1"
    n = pull_node(manager, make_node, bbroot, runtime, tls, plain,
                  tls.authfile(str(tmp_path / "a.json")),
                  containers={"insecure_registries": [host], "pull_timeout": 120})
    try:
        t = "9d" * 16
        manager.deploy_task(n.node_id, nodelib.task_msg(t, b"echo never\n", image=ref))
        nodelib.wait_for(lambda: nodelib.procs_with_arg("docker://" + ref), 30,
                         "skopeo pulling")
        images_dir = os.path.join(n.state_dir, "images")
        assert [x for x in os.listdir(images_dir) if x.startswith(".import-")]
        pid = n.pids()["mantad-exec"]
        # This life's pulls: the restarted daemon starts its own at once,
        # so only these must be gone (not every "--pull" process).
        old = [p for p, _ in nodelib.procs_with_arg("--pull")]
        assert old
        os.kill(pid, signal.SIGKILL)
        hang.close()     # before the restarted daemon (250 ms on) pulls again
        nodelib.wait_for(lambda: not nodelib.procs_with_arg("docker://" + ref), 10,
                         "skopeo gone with mantad-exec")
        nodelib.wait_for(lambda: not [p for p in old if nodelib.alive(p)], 10,
                         "the pull gone with mantad-exec")
    finally:
        hang.close()
    n.wait_status(lambda s: any(d["name"] == "mantad-exec" and d["state"] == "up"
                                and d["pid"] != pid for d in s["daemons"]), 30,
                  "mantad-exec restarted")
    nodelib.wait_task_status(manager, t, FAILED, timeout=60)
    e = errors_for(manager, t)
    assert len(e) == 1 and e[0].error_id == 18 and "connection refused" in e[0].content, e
    assert pulls_of(n, ref) == 2
    assert store_clean(n) == []
