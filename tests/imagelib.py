"""Container images and registries for the image tests (issue 12), built
from Debian packages only: busybox-static for the root file system, umoci to
make OCI layouts, skopeo to convert and push them, docker-registry (Debian's
docker/distribution) on loopback, with TLS from a test CA and htpasswd basic
auth, or plain HTTP.

The "python" of the test images is a stand-in: /opt/py/bin/python, a shell
script found only through the image's ENV PATH, that runs the task payload
with sh (so a payload is a shell script) and prints what it sees first."""

import base64
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile

import nodelib

REGISTRY = "/usr/bin/docker-registry"
USER, PASSWORD = "manta", "s3cret-pw"

PYTHON_STANDIN = """#!/bin/sh
echo "standin: uid=$(id -u) gid=$(id -g) cwd=$(pwd) foo=$FOO task=$TASK_ID"
exec /bin/sh "$@"
"""


def have_tools():
    return all(shutil.which(t) for t in ("skopeo", "umoci", "htpasswd")) and \
        os.access(REGISTRY, os.X_OK)


def run(argv, timeout=300, **kw):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=timeout, **kw)
    if r.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s" % (argv[:3], r.returncode, r.stderr))
    return r


def umoci(*a):
    return run(["umoci", "--log", "error"] + list(a))


def standin_rootfs(dest, bbroot, marker="amd64"):
    """busybox + the python stand-in + a user "worker" (1000:1000)."""
    run(["cp", "-a", bbroot + "/.", dest + "/"])
    os.makedirs(os.path.join(dest, "opt/py/bin"), exist_ok=True)
    py = os.path.join(dest, "opt/py/bin/python")
    with open(py, "w") as f:
        f.write(PYTHON_STANDIN.replace("standin:", "standin(%s):" % marker))
    os.chmod(py, 0o755)
    with open(os.path.join(dest, "etc/passwd"), "a") as f:
        f.write("worker:x:1000:1000:worker:/home/worker:/bin/sh\n")
    with open(os.path.join(dest, "etc/group"), "a") as f:
        f.write("workers:x:1000:\n")
    with open(os.path.join(dest, "etc/doomed"), "w") as f:
        f.write("removed by the next layer\n")


def make_layout(layout, tag, bbroot, env=None, workdir=None, user=None,
                whiteout=True, marker="amd64", extra=None):
    """An OCI layout at layout holding tag: layer 1 the stand-in rootfs,
    layer 2 deletes /etc/doomed (a whiteout) and adds /etc/layer2. env,
    workdir, user go into the image config. extra(rootfs) may add files."""
    if not os.path.exists(os.path.join(layout, "oci-layout")):
        umoci("init", "--layout", layout)
    umoci("new", "--image", "%s:%s" % (layout, tag))
    bundle = tempfile.mkdtemp(prefix="mnt-bundle-", dir="/tmp")
    try:
        shutil.rmtree(bundle)
        umoci("unpack", "--image", "%s:%s" % (layout, tag), bundle)
        root = os.path.join(bundle, "rootfs")
        standin_rootfs(root, bbroot, marker)
        if extra:
            extra(root)
        umoci("repack", "--image", "%s:%s" % (layout, tag), bundle)
        if whiteout:
            # A fresh unpack, so that the next repack is a layer of its
            # own over the first: umoci writes the deletion as a whiteout.
            shutil.rmtree(bundle)
            umoci("unpack", "--image", "%s:%s" % (layout, tag), bundle)
            os.unlink(os.path.join(root, "etc/doomed"))
            with open(os.path.join(root, "etc/layer2"), "w") as f:
                f.write("second layer\n")
            umoci("repack", "--image", "%s:%s" % (layout, tag), bundle)
    finally:
        shutil.rmtree(bundle, ignore_errors=True)
    args = ["config", "--image", "%s:%s" % (layout, tag)]
    for e in env or ():
        args += ["--config.env", e]
    if workdir:
        args += ["--config.workingdir", workdir]
    if user:
        args += ["--config.user", user]
    umoci(*args)
    return "%s:%s" % (layout, tag)


STANDARD = dict(env=["PATH=/opt/py/bin:/usr/bin:/bin", "FOO=from-image",
                     "TASK_ID=image-must-not-win"],
                workdir="/work/dir", user="worker")


def layers(layout_ref):
    """The layers of the manifest layout_ref names, and the member names of
    each (to see the whiteouts)."""
    layout, tag = layout_ref.rsplit(":", 1)
    with open(os.path.join(layout, "index.json")) as f:
        idx = json.load(f)
    m = [x for x in idx["manifests"]
         if x.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag][0]

    def blob(d):
        return os.path.join(layout, "blobs", "sha256", d.split(":")[1])
    with open(blob(m["digest"])) as f:
        man = json.load(f)
    out = []
    for layer in man["layers"]:
        with tarfile.open(blob(layer["digest"])) as t:
            out.append(t.getnames())
    return out


def docker_archive(layout_ref, dest, name="standin:1"):
    run(["skopeo", "copy", "oci:" + layout_ref, "docker-archive:%s:%s" % (dest, name)])
    return dest


def _blob(layout, data):
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", d), "wb") as f:
        f.write(data)
    return "sha256:" + d, len(data)


def multiarch_layout(layout, bbroot):
    """An OCI layout whose tag "multi" is an image index: linux/arm64 (its
    python says "arm64") first, then linux/amd64 (says "amd64")."""
    make_layout(layout, "arm", bbroot, marker="arm64", **STANDARD)
    make_layout(layout, "amd", bbroot, marker="amd64", **STANDARD)
    with open(os.path.join(layout, "index.json")) as f:
        idx = json.load(f)
    by = {m["annotations"]["org.opencontainers.image.ref.name"]: m
          for m in idx["manifests"]}
    mans = []
    for tag, arch in (("arm", "arm64"), ("amd", "amd64")):
        m = dict(by[tag])
        m.pop("annotations", None)
        m["platform"] = {"architecture": arch, "os": "linux"}
        mans.append(m)
    data = json.dumps({"schemaVersion": 2,
                       "mediaType": "application/vnd.oci.image.index.v1+json",
                       "manifests": mans}).encode()
    d, n = _blob(layout, data)
    idx["manifests"].append({"mediaType": "application/vnd.oci.image.index.v1+json",
                             "digest": d, "size": n,
                             "annotations": {"org.opencontainers.image.ref.name": "multi"}})
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(idx, f)
    return layout + ":multi"


def hostile_layout(layout, outside, links=True):
    """An OCI layout whose only layer is hostile: a set-user-ID root shell,
    device nodes, "..", absolute names, a symlink out and a write through
    it, a hard link out of the root. outside: a directory that must stay
    empty."""
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as t:
        add_hostile_members(t, outside, links)
    diff = hashlib.sha256(raw.getvalue()).hexdigest()
    layer, lsize = _blob(layout, gzip.compress(raw.getvalue()))
    cfg, csize = _blob(layout, json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + diff]}}).encode())
    man, msize = _blob(layout, json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": cfg, "size": csize},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer, "size": lsize}]}).encode())
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": man, "size": msize,
            "annotations": {"org.opencontainers.image.ref.name": "evil"}}]}, f)
    return layout + ":evil"


def add_hostile_members(t, outside, links=True):
    def reg(name, data=b"x", mode=0o644):
        i = tarfile.TarInfo(name)
        i.size = len(data)
        i.mode = mode
        t.addfile(i, io.BytesIO(data))

    def special(name, typ, **kw):
        i = tarfile.TarInfo(name)
        i.type = typ
        for k, v in kw.items():
            setattr(i, k, v)
        t.addfile(i)
    special("bin", tarfile.DIRTYPE, mode=0o755)
    with open("/bin/busybox", "rb") as f:
        bb = f.read()
    reg("bin/busybox", bb, 0o755)
    reg("bin/suid-sh", bb, 0o4755)
    reg("bin/sgid-sh", bb, 0o2755)
    special("dev", tarfile.DIRTYPE, mode=0o755)
    special("dev/mem", tarfile.CHRTYPE, devmajor=1, devminor=1, mode=0o666)
    special("dev/sda", tarfile.BLKTYPE, devmajor=8, devminor=0, mode=0o666)
    special("esc", tarfile.SYMTYPE, linkname=outside)
    reg("esc/pwned", b"through a link")
    special("rel", tarfile.SYMTYPE, linkname="../../../../../../" + outside.lstrip("/"))
    reg("rel/pwned2", b"through a relative link")
    reg("../dotdot-evil", b"dotdot")
    reg("/tmp/manta-abs-evil-oci", b"absolute")
    if links:
        special("hard-shadow", tarfile.LNKTYPE, linkname="/etc/shadow")
        special("hard-up", tarfile.LNKTYPE, linkname="../../../../etc/passwd")


class Registry(object):
    """Debian's docker-registry on 127.0.0.1:port: with tls, a certificate
    from a test CA that skopeo trusts through
    /etc/containers/certs.d/127.0.0.1:PORT/ca.crt, and htpasswd basic auth;
    without, plain HTTP and anonymous."""

    __test__ = False

    def __init__(self, tls=True):
        self.tls = tls
        self.dir = tempfile.mkdtemp(prefix="mnt-reg-", dir="/tmp")
        self.port = nodelib.free_port()
        self.host = "127.0.0.1:%d" % self.port
        self.proc = None
        self.certs_d = None
        self.ca = None
        cfg = {"version": 0.1, "log": {"level": "warn"},
               "storage": {"filesystem": {"rootdirectory": os.path.join(self.dir, "data")},
                           "delete": {"enabled": True}},
               "http": {"addr": self.host}}
        if tls:
            os.makedirs(os.path.join(self.dir, "ca"))
            self.ca = nodelib.TestCA(dir=os.path.join(self.dir, "ca"))
            crt, key = self.ca.server("registry", host="localhost", ip="127.0.0.1")
            cfg["http"]["tls"] = {"certificate": crt, "key": key}
            htp = os.path.join(self.dir, "htpasswd")
            r = run(["htpasswd", "-Bbn", USER, PASSWORD])
            with open(htp, "w") as f:
                f.write(r.stdout)
            cfg["auth"] = {"htpasswd": {"realm": "manta-test", "path": htp}}
            self.certs_d = "/etc/containers/certs.d/%s" % self.host
            os.makedirs(self.certs_d, exist_ok=True)
            shutil.copyfile(self.ca.crt, os.path.join(self.certs_d, "ca.crt"))
        self.config = os.path.join(self.dir, "config.yml")
        with open(self.config, "w") as f:
            json.dump(cfg, f)        # JSON is YAML
        self.log = open(os.path.join(self.dir, "registry.log"), "w")
        self.start()

    def start(self):
        self.proc = subprocess.Popen([REGISTRY, "serve", self.config],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        nodelib.wait_for(lambda: nodelib.port_open(self.port), 20, "registry up")

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def cleanup(self):
        self.stop()
        self.log.close()
        if self.certs_d:
            shutil.rmtree(self.certs_d, ignore_errors=True)
        shutil.rmtree(self.dir, ignore_errors=True)

    def creds(self):
        return ["--dest-creds", "%s:%s" % (USER, PASSWORD)] if self.tls else \
            ["--dest-tls-verify=false"]

    def push(self, src, repo, fmt=None, all_=False, zstd=False):
        """skopeo copy src (a transport:ref) to repo ("name:tag") here;
        returns the reference a node pulls."""
        ref = "%s/%s" % (self.host, repo)
        argv = ["skopeo", "copy"] + self.creds()
        if fmt:
            argv += ["--format", fmt]
        if all_:
            argv += ["--all"]
        if zstd:
            argv += ["--dest-compress-format", "zstd", "--dest-compress"]
        run(argv + [src, "docker://" + ref])
        return ref

    def authfile(self, path, user=USER, password=PASSWORD):
        """A Docker config.json for this registry, mode 0600."""
        tok = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"auths": {self.host: {"auth": tok}}}, f)
        os.chmod(path, 0o600)
        return path

    def blob_paths(self, repo):
        """Files of the layer blobs the registry holds (for corrupting)."""
        out = []
        root = os.path.join(self.dir, "data", "docker", "registry", "v2", "blobs")
        for d, _, files in os.walk(root):
            for f in files:
                if f == "data":
                    out.append(os.path.join(d, f))
        return out
