"""mantactl image import / image ls: a rootfs directory, tarballs (plain,
gzip, xz) and an OCI layout (with umoci) land in <image_dir>/<safe
name>/rootfs atomically; hostile names and archives are refused and write
nothing outside the image store. mantactl tasks and logs exit 3 when the
node is not running."""

import io
import os
import re
import shutil
import subprocess
import tarfile

import pytest

import nodelib

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


@pytest.fixture
def cfg():
    """An unstarted node: its config, state and image dirs in a temp dir."""
    n = nodelib.Node(nodelib.free_port())
    n.image_dir = os.path.join(n.state_dir, "images")
    try:
        yield n
    finally:
        n.cleanup()


def tree(path):
    """Every path under path (relative), for before/after comparisons."""
    out = set()
    for root, dirs, files in os.walk(path):
        for x in dirs + files:
            out.add(os.path.relpath(os.path.join(root, x), path))
    return out


def outside_images(n):
    return {p for p in tree(n.dir) if not p.startswith("state/images")}


def check_image(n, name, safe):
    root = os.path.join(n.image_dir, safe, "rootfs")
    assert os.path.isfile(os.path.join(root, "bin", "busybox")), os.listdir(n.image_dir)
    assert os.readlink(os.path.join(root, "bin", "sh")) == "/bin/busybox"
    ls = nodelib.image_ls(n.config)
    e = [x for x in ls if x["name"] == name]
    assert len(e) == 1, ls
    e = e[0]
    assert set(e) >= {"name", "size", "imported_at"}, e
    assert isinstance(e["size"], int) and e["size"] >= os.path.getsize(
        os.path.join(root, "bin", "busybox")), e
    assert RFC3339.match(e["imported_at"]), e
    return e


def leftovers(n):
    return [x for x in os.listdir(n.image_dir) if x.startswith(".")]


def test_import_dir(cfg, bbroot):
    r = nodelib.image_import(cfg.config, "busybox", bbroot)
    assert r.returncode == 0, r.stderr
    check_image(cfg, "busybox", "busybox")
    assert leftovers(cfg) == []
    # The source is untouched and the copy is independent of it.
    assert os.path.isfile(os.path.join(bbroot, "bin", "busybox"))


@pytest.mark.parametrize("suffix", [".tar", ".tar.gz", ".tgz", ".tar.xz"])
def test_import_tar(cfg, tmp_path, suffix):
    tb = nodelib.busybox_tarball(str(tmp_path / ("bb" + suffix)))
    r = nodelib.image_import(cfg.config, "busybox:1.35", tb)
    assert r.returncode == 0, r.stderr
    check_image(cfg, "busybox:1.35", "busybox%3A1.35")
    assert leftovers(cfg) == []


def test_reimport_replaces(cfg, bbroot, tmp_path):
    assert nodelib.image_import(cfg.config, "bb", bbroot).returncode == 0
    marker = os.path.join(cfg.image_dir, "bb", "rootfs", "old-marker")
    open(marker, "w").close()
    tb = nodelib.busybox_tarball(str(tmp_path / "bb.tar"))
    r = nodelib.image_import(cfg.config, "bb", tb)
    assert r.returncode == 0, r.stderr
    check_image(cfg, "bb", "bb")
    assert not os.path.exists(marker)
    assert [x["name"] for x in nodelib.image_ls(cfg.config)] == ["bb"]
    assert leftovers(cfg) == []


def test_ls_empty_and_human(cfg, bbroot):
    assert nodelib.image_ls(cfg.config) == []
    assert nodelib.image_import(cfg.config, "b", bbroot).returncode == 0
    assert nodelib.image_import(cfg.config, "a", bbroot).returncode == 0
    assert [x["name"] for x in nodelib.image_ls(cfg.config)] == ["a", "b"]


HOSTILE = ["../x", "..", ".", ".hidden", "", "a\nb", "a\x01b", "tab\there",
           "del\x7f", "x" * 300, "../../../../tmp/manta-evil"]


def test_hostile_names(cfg, bbroot):
    os.makedirs(cfg.image_dir)
    before = outside_images(cfg)
    for name in HOSTILE:
        r = nodelib.image_import(cfg.config, name, bbroot)
        assert r.returncode == 1, (name, r.returncode, r.stderr)
        assert "refusing image name" in r.stderr, r.stderr
        assert "\n" not in r.stderr.rstrip("\n"), r.stderr
    assert os.listdir(cfg.image_dir) == []
    assert outside_images(cfg) == before
    assert not os.path.exists("/tmp/manta-evil")
    # A name with '/' is encoded into one directory inside the store.
    r = nodelib.image_import(cfg.config, "a/b", bbroot)
    if r.returncode == 0:
        assert os.listdir(cfg.image_dir) == ["a%2Fb"]
        check_image(cfg, "a/b", "a%2Fb")
    assert outside_images(cfg) == before


def evil_tar(path, member, data=b"boom", symlink=None):
    with tarfile.open(path, "w") as t:
        ok = tarfile.TarInfo("bin/ok")
        ok.size = 2
        t.addfile(ok, io.BytesIO(b"ok"))
        i = tarfile.TarInfo(member)
        if symlink is not None:
            i.type = tarfile.SYMTYPE
            i.linkname = symlink
            t.addfile(i)
        else:
            i.size = len(data)
            t.addfile(i, io.BytesIO(data))
    return path


@pytest.mark.parametrize("member", ["../evil", "bin/../../evil", "/tmp/manta-abs-evil",
                                    "./../evil", "a/b/../../../evil"])
def test_evil_archive(cfg, tmp_path, member):
    os.makedirs(cfg.image_dir)
    before = outside_images(cfg)
    tb = evil_tar(str(tmp_path / "evil.tar"), member)
    r = nodelib.image_import(cfg.config, "evil", tb)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "refusing" in r.stderr, r.stderr
    assert os.listdir(cfg.image_dir) == []
    assert outside_images(cfg) == before
    assert not os.path.exists("/tmp/manta-abs-evil")
    assert not os.path.exists(os.path.join(cfg.state_dir, "evil"))


def test_symlink_then_write_through(cfg, tmp_path):
    """A member symlink pointing out, then a file beneath it: tar must not
    write through the link (GNU tar's delayed links), so nothing leaves."""
    os.makedirs(cfg.image_dir)
    outside = tmp_path / "outside"
    outside.mkdir()
    path = str(tmp_path / "sneaky.tar")
    with tarfile.open(path, "w") as t:
        i = tarfile.TarInfo("esc")
        i.type = tarfile.SYMTYPE
        i.linkname = str(outside)
        t.addfile(i)
        f = tarfile.TarInfo("esc/pwned")
        f.size = 4
        t.addfile(f, io.BytesIO(b"boom"))
    nodelib.image_import(cfg.config, "sneaky", path)
    assert os.listdir(str(outside)) == []


def test_bad_sources(cfg, tmp_path):
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"this is not a tarball\n" * 100)
    for src in (str(junk), str(tmp_path / "missing"), "/dev/null"):
        r = nodelib.image_import(cfg.config, "junk", src)
        assert r.returncode == 1, (src, r.returncode, r.stderr)
    assert not os.path.exists(os.path.join(cfg.image_dir, "junk"))
    if os.path.isdir(cfg.image_dir):
        assert leftovers(cfg) == []


def test_usage(cfg):
    for args in (["image"], ["image", "frob"], ["image", "import", "onlyname"],
                 ["image", "import", "a", "b", "c", "d"]):
        r = nodelib.mantactl(*(args + ["-c", cfg.config]))
        assert r.returncode == 2, (args, r.returncode, r.stderr)


@pytest.mark.skipif(shutil.which("umoci") is None, reason="umoci not installed")
def test_import_oci_layout(cfg, bbroot, tmp_path):
    layout = str(tmp_path / "oci")
    bundle = str(tmp_path / "bundle")

    def umoci(*a):
        subprocess.run(["umoci", "--log", "error"] + list(a), check=True,
                       stdout=subprocess.DEVNULL)
    umoci("init", "--layout", layout)
    umoci("new", "--image", layout + ":v1")
    umoci("unpack", "--image", layout + ":v1", bundle)
    subprocess.run(["cp", "-a", bbroot + "/.", bundle + "/rootfs/"], check=True)
    umoci("repack", "--image", layout + ":v1", bundle)
    r = nodelib.image_import(cfg.config, "from-oci", layout)
    assert r.returncode == 0, r.stderr
    check_image(cfg, "from-oci", "from-oci")
    r = nodelib.image_import(cfg.config, "tagged", layout + ":v1")
    assert r.returncode == 0, r.stderr
    check_image(cfg, "tagged", "tagged")
    r = nodelib.image_import(cfg.config, "notag", layout + ":nope")
    assert r.returncode == 1
    assert leftovers(cfg) == []


def test_tasks_logs_not_running(cfg):
    for args in (["tasks"], ["tasks", "--json"],
                 ["logs", "0123456789abcdef0123456789abcdef"],
                 ["logs", "0123456789abcdef0123456789abcdef", "-f"]):
        r = nodelib.mantactl(*(args + ["-c", cfg.config]), timeout=20)
        assert r.returncode == 3, (args, r.returncode, r.stderr)
        assert "not running" in r.stderr
    r = nodelib.mantactl("logs", "not-an-id", "-c", cfg.config)
    assert r.returncode == 2, r.stderr
