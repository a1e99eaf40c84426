"""Issue 12: what users have, imported: a docker save archive, an OCI layout
(directory and archive) and a rootfs; the image config's Env, WorkingDir and
User applied when a task runs (the node's own variables win); image ls with
size, digest, last use; image rm. The store gives a local user nothing: a
set-user-ID file or device node from an image loses its bits or goes, and a
hostile layer writes nothing outside the store."""

import json
import os
import pwd
import shutil
import stat
import subprocess
import tempfile

import pytest

import imagelib
import nodelib
from test_30_image import cfg  # noqa: F401 (the unstarted node fixture)
from devmanager import pair_to_hex  # noqa: F401 (imported for side effects)
from common import tasks_pb2

pytestmark = pytest.mark.skipif(not imagelib.have_tools(),
                                reason="skopeo, umoci or docker-registry missing")

COMPLETED, FAILED, RUNNING = (tasks_pb2.COMPLETED, tasks_pb2.FAILED, tasks_pb2.RUNNING)


@pytest.fixture(scope="module")
def layout(bbroot, tmp_path_factory):
    d = str(tmp_path_factory.mktemp("oci") / "layout")
    imagelib.make_layout(d, "1", bbroot, **imagelib.STANDARD)
    # Two layers, the second with a whiteout for /etc/doomed.
    ls = imagelib.layers(d + ":1")
    assert len(ls) == 2 and "etc/.wh.doomed" in [x.lstrip("./") for x in ls[1]], ls[1]
    return d


def meta(n, name):
    e = [x for x in nodelib.image_ls(n.config) if x["name"] == name]
    assert len(e) == 1, nodelib.image_ls(n.config)
    return e[0]


def rootfs(n, safe):
    return os.path.join(n.image_dir, safe, "rootfs")


def check_standin(n, name, safe, kind):
    root = rootfs(n, safe)
    assert os.path.isfile(os.path.join(root, "opt/py/bin/python"))
    # The second layer's whiteout removed /etc/doomed.
    assert not os.path.exists(os.path.join(root, "etc/doomed"))
    assert os.path.isfile(os.path.join(root, "etc/layer2"))
    # WorkingDir is made in the image (the root is read-only for tasks).
    assert os.path.isdir(os.path.join(root, "work/dir"))
    e = meta(n, name)
    assert e["kind"] == kind, e
    assert e["digest"].startswith("sha256:") and len(e["digest"]) == 71, e
    assert e["size"] > os.path.getsize("/bin/busybox"), e
    assert e["last_used"] is None and e["in_use"] is False, e
    with open(os.path.join(n.image_dir, safe, "manta-image.json")) as f:
        c = json.load(f)["config"]
    assert c["env"][:2] == ["PATH=/opt/py/bin:/usr/bin:/bin", "FOO=from-image"], c
    assert c["cwd"] == "/work/dir" and c["user"] == "worker", c
    assert (c["uid"], c["gid"]) == (1000, 1000), c
    assert [x for x in os.listdir(n.image_dir) if x.startswith(".")] == []


def test_import_oci_docker_archive(cfg, layout, tmp_path):
    r = nodelib.image_import(cfg.config, "oci-img", layout + ":1")
    assert r.returncode == 0, r.stderr
    check_standin(cfg, "oci-img", "oci-img", "oci")
    # The layout's only tag needs no naming.
    r = nodelib.image_import(cfg.config, "oci-notag", layout)
    assert r.returncode == 0, r.stderr
    check_standin(cfg, "oci-notag", "oci-notag", "oci")

    arch = imagelib.docker_archive(layout + ":1", str(tmp_path / "saved.tar"))
    r = nodelib.image_import(cfg.config, "saved:1", arch)
    assert r.returncode == 0, r.stderr
    check_standin(cfg, "saved:1", "saved%3A1", "docker-archive")

    oarch = str(tmp_path / "oci.tar")
    imagelib.run(["skopeo", "copy", "oci:" + layout + ":1", "oci-archive:" + oarch])
    r = nodelib.image_import(cfg.config, "ociarch", oarch)
    assert r.returncode == 0, r.stderr
    check_standin(cfg, "ociarch", "ociarch", "oci-archive")

    # rm: gone, and a second rm says so.
    r = nodelib.mantactl("image", "rm", "saved:1", "-c", cfg.config)
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(os.path.join(cfg.image_dir, "saved%3A1"))
    r = nodelib.mantactl("image", "rm", "saved:1", "-c", cfg.config)
    assert r.returncode == 1 and "no image" in r.stderr, r.stderr
    assert sorted(x["name"] for x in nodelib.image_ls(cfg.config)) == \
        ["oci-img", "oci-notag", "ociarch"]


def test_bad_user_refused(cfg, bbroot, tmp_path):
    d = str(tmp_path / "l")
    imagelib.make_layout(d, "1", bbroot, whiteout=False, user="nobody-here")
    r = nodelib.image_import(cfg.config, "baduser", d)
    assert r.returncode == 1, r.stderr
    assert "no user \"nobody-here\"" in r.stderr, r.stderr
    assert not os.path.exists(os.path.join(cfg.image_dir, "baduser"))
    assert [x for x in os.listdir(cfg.image_dir) if x.startswith(".")] == []


@pytest.mark.parametrize("userns", [False, True])
def test_config_applied_to_task(manager, make_node, bbroot, runtime, layout, userns):
    """Env (PATH to the stand-in python, FOO), WorkingDir and User apply; the
    node's TASK_ID wins over the image's; confinement unchanged; in a user
    namespace too (the store then sits where the mapped users reach it)."""
    extra = {}
    top = None
    if userns:
        top = tempfile.mkdtemp(prefix="mnt-img-", dir="/tmp")
        os.chmod(top, 0o755)
        extra = {"containers": {"userns": True, "image_dir": top}}
    try:
        config_applied(manager, make_node, bbroot, runtime, layout, extra)
    finally:
        if top is not None:
            shutil.rmtree(top, ignore_errors=True)


def config_applied(manager, make_node, bbroot, runtime, layout, extra):
    n = nodelib.exec_node(manager, make_node, bbroot, runtime, **extra)
    r = nodelib.image_import(n.config, "standin", layout + ":1")
    assert r.returncode == 0, r.stderr
    t = "c1" * 16
    payload = b"echo payload-ran; cat /proc/self/status | grep -E '^(CapEff|NoNewPrivs)'\n"
    manager.deploy_task(n.node_id, nodelib.task_msg(t, payload, image="standin"))
    nodelib.wait_task_status(manager, t, (COMPLETED, FAILED), timeout=60)
    nodelib.wait_for(lambda: "payload-ran" in nodelib.task_log_text(manager, t), 20,
                     "the task's output")
    out = nodelib.task_log_text(manager, t)
    assert "standin(amd64): uid=1000 gid=1000 cwd=/work/dir foo=from-image task=%s" % t \
        in out, out
    assert "CapEff:\t0000000000000000" in out and "NoNewPrivs:\t1" in out, out
    assert [u[3] for u in nodelib.task_updates(manager, t)] == [RUNNING, COMPLETED]
    e = meta(n, "standin")
    assert e["last_used"] is not None, e


LOCAL_USER = "manta-img-test"


@pytest.fixture
def local_user():
    subprocess.run(["userdel", LOCAL_USER], stderr=subprocess.DEVNULL)
    subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/sh", LOCAL_USER],
                   check=True)
    try:
        yield pwd.getpwnam(LOCAL_USER)
    finally:
        subprocess.run(["userdel", LOCAL_USER], stderr=subprocess.DEVNULL)


def special_files(root):
    bad = []
    for d, dirs, files in os.walk(root):
        for x in dirs + files:
            p = os.path.join(d, x)
            st = os.lstat(p)
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                bad.append(("device", p))
            elif not stat.S_ISDIR(st.st_mode) and st.st_mode & (stat.S_ISUID | stat.S_ISGID):
                bad.append(("set-id", p))
    return bad


def test_setuid_gives_nothing(local_user, bbroot, tmp_path):
    """A set-user-ID root copy of id(1) and a device node in an image: in the
    store, a local user runs that id and stays who they are; no node is left.
    The store sits in a directory every user can reach, as the runtime of a
    user namespace needs."""
    top = tempfile.mkdtemp(prefix="mnt-store-", dir="/tmp")
    os.chmod(top, 0o755)
    n = nodelib.Node(nodelib.free_port(),
                     overrides={"containers": {"image_dir": os.path.join(top, "images")}})
    try:
        def extra(root):
            shutil.copy2("/usr/bin/id", os.path.join(root, "bin/id-suid"))
            os.chmod(os.path.join(root, "bin/id-suid"), 0o4755)
            os.mknod(os.path.join(root, "dev/mem0"), 0o666 | stat.S_IFCHR, os.makedev(1, 1))
        d = str(tmp_path / "l")
        imagelib.make_layout(d, "1", bbroot, whiteout=False, extra=extra)
        src = os.path.join(d, "blobs")
        assert os.path.isdir(src)
        r = nodelib.image_import(n.config, "suid", d)
        assert r.returncode == 0, r.stderr
        root = os.path.join(top, "images", "suid", "rootfs")
        assert special_files(root) == []
        assert os.path.isfile(os.path.join(root, "bin/id-suid"))
        r = subprocess.run(["runuser", "-u", LOCAL_USER, "--",
                            os.path.join(root, "bin/id-suid"), "-u"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == str(local_user.pw_uid), r.stdout
        # The same from a plain rootfs directory (cp -a keeps the bits).
        rootdir = str(tmp_path / "rootdir")
        os.makedirs(rootdir)
        imagelib.standin_rootfs(rootdir, bbroot)
        extra(rootdir)
        r = nodelib.image_import(n.config, "suid-dir", rootdir)
        assert r.returncode == 0, r.stderr
        assert special_files(os.path.join(top, "images", "suid-dir", "rootfs")) == []
    finally:
        n.cleanup()
        shutil.rmtree(top, ignore_errors=True)


@pytest.mark.parametrize("links", [True, False])
def test_hostile_layer(cfg, tmp_path, links):
    """With hard links out of the root, umoci refuses the layer; without,
    the layer imports with its set-ID bits and device nodes gone."""
    outside = str(tmp_path / "outside")
    os.makedirs(outside)
    before_etc = {p: os.stat(p).st_nlink for p in ("/etc/shadow", "/etc/passwd")}
    ref = imagelib.hostile_layout(str(tmp_path / "evil"), outside, links)
    r = nodelib.image_import(cfg.config, "evil", ref)
    assert r.returncode == (1 if links else 0), r.stderr
    # Refused or imported clean; either way nothing outside, nothing left.
    assert os.listdir(outside) == [], os.listdir(outside)
    assert not os.path.exists("/tmp/manta-abs-evil-oci")
    assert not os.path.exists(os.path.join(cfg.state_dir, "dotdot-evil"))
    assert not os.path.exists(os.path.join(cfg.image_dir, "dotdot-evil"))
    assert {p: os.stat(p).st_nlink for p in before_etc} == before_etc
    assert [x for x in os.listdir(cfg.image_dir) if x.startswith(".")] == []
    if r.returncode == 0:
        root = rootfs(cfg, "evil")
        assert os.path.isfile(os.path.join(root, "bin/suid-sh"))
        assert special_files(root) == []
        for p in ("hard-shadow", "hard-up"):
            q = os.path.join(root, p)
            if os.path.exists(q):
                assert not os.path.samefile(q, "/etc/shadow")
                assert not os.path.samefile(q, "/etc/passwd")
    else:
        assert not os.path.exists(os.path.join(cfg.image_dir, "evil"))


def test_hostile_rootfs_tar(cfg, tmp_path):
    """The same members in a plain rootfs tarball, without the names tar -t
    refuses outright: links out, set-ID files and device nodes."""
    import tarfile
    outside = str(tmp_path / "outside")
    os.makedirs(outside)
    path = str(tmp_path / "evil.tar")
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as t:
        class Filter(object):
            def __init__(self, t):
                self.t = t

            def addfile(self, i, f=None):
                if i.name.startswith("/") or i.name.startswith(".."):
                    return
                self.t.addfile(i, f)
        imagelib.add_hostile_members(Filter(t), outside)
    before = os.stat("/etc/shadow").st_nlink
    r = nodelib.image_import(cfg.config, "eviltar", path)
    assert os.listdir(outside) == []
    assert os.stat("/etc/shadow").st_nlink == before
    assert [x for x in os.listdir(cfg.image_dir) if x.startswith(".")] == []
    if r.returncode == 0:
        root = rootfs(cfg, "eviltar")
        assert special_files(root) == []
        q = os.path.join(root, "hard-shadow")
        assert not os.path.exists(q) or not os.path.samefile(q, "/etc/shadow")
