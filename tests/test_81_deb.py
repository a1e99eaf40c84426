"""The Debian package (issue 16). `make deb` builds it with debhelper from a
copy of the tree; lintian finds nothing at error or warning level (the
overrides in debian/ say why). manta-node@.service passes
`systemd-analyze verify`. In a debootstrap chroot of Debian 12, `apt-get
install ./manta-node.deb` pulls the dependencies from the archive and
installs the programs, man pages, the config (a conffile, root-only), the
accounts manta and manta-light in group manta, /run/manta and
/var/lib/manta, and the s6 and runit examples; `mantactl config check`
passes there; a rebuilt package with a higher version upgrades it without
asking and keeps the administrator's edit; remove keeps config and state,
purge deletes them. A node from the package registers with the dev manager
from the chroot, and an upgrade while it runs a task restarts it without
losing or repeating the task.

The chroot's base is cached (tests/deb/base.sh: /var/cache/manta-tests,
one debootstrap a month) and so are the packages apt fetches
(/var/cache/manta-tests/apt), so only the first run waits for the
mirror. MANTA_DEB_REUSE=1 skips `make deb` when build/deb has a package."""

import glob
import os
import re
import shutil
import subprocess
import tempfile
import time

import pytest

import nodelib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("MANTA_TEST_CACHE", "/var/cache/manta-tests")
DAEMONS = ["mantad-res", "mantad-register", "mantad-beat", "mantad-exec",
           "mantad-light"]

need = [t for t in ("dpkg-buildpackage", "dh", "fakeroot") if shutil.which(t) is None]
pytestmark = pytest.mark.skipif(bool(need), reason="not installed: %s" % " ".join(need))


def sh(cmd, timeout=600, check=True, **kw):
    r = subprocess.run(cmd, shell=isinstance(cmd, str), capture_output=True,
                       text=True, timeout=timeout, stdin=subprocess.DEVNULL, **kw)
    if check and r.returncode != 0:
        raise AssertionError("%s: exit %d\n%s\n%s" % (cmd, r.returncode,
                                                       r.stdout[-4000:], r.stderr[-4000:]))
    return r


def version_of(deb):
    return sh(["dpkg-deb", "-f", deb, "Version"]).stdout.strip()


@pytest.fixture(scope="module")
def debs(tmp_path_factory):
    """(first .deb, the same tree rebuilt as a higher version .deb)."""
    t0 = time.monotonic()
    first = glob.glob(os.path.join(ROOT, "build/deb/manta-node_*.deb"))
    # MANTA_DEB_REUSE=1: the package `make deb` left is taken as it is.
    if os.environ.get("MANTA_DEB_REUSE") != "1" or len(first) != 1:
        sh(["make", "-C", ROOT, "deb"], timeout=900)
        first = glob.glob(os.path.join(ROOT, "build/deb/manta-node_*.deb"))
    assert len(first) == 1, first
    built = time.monotonic() - t0
    # The upgrade: a copy of the built tree (objects kept: -nc builds
    # again only what changed) with a newer changelog entry.
    tmp = tmp_path_factory.mktemp("deb2")
    src = os.path.join(str(tmp), "src")
    shutil.copytree(os.path.join(ROOT, "build/deb/src"), src, symlinks=True)
    old = version_of(first[0])
    new = old + "+test1"
    with open(os.path.join(src, "debian/changelog")) as f:
        log = f.read()
    with open(os.path.join(src, "debian/changelog"), "w") as f:
        f.write("manta-node (%s) unstable; urgency=medium\n\n"
                "  * Test upgrade.\n\n"
                " -- manta-node maintainers <maintainers@users.noreply."
                "r-seed-6bdacdbc.example>  Tue, 08 Dec 2026 12:00:00 +0000\n\n" % new + log)
    sh("cd %s && dpkg-buildpackage -us -uc -b -nc -Jauto" % src, timeout=900)
    second = glob.glob(os.path.join(str(tmp), "manta-node_%s_*.deb" % new))
    assert len(second) == 1, os.listdir(str(tmp))
    print("\nmake deb: %.0f s; %s %d bytes" % (built, os.path.basename(first[0]),
                                               os.path.getsize(first[0])))
    return first[0], second[0]


def test_lintian_clean(debs):
    if shutil.which("lintian") is None:
        pytest.skip("lintian not installed")
    changes = glob.glob(os.path.join(ROOT, "build/deb/manta-node_*.changes"))
    assert changes, os.listdir(os.path.join(ROOT, "build/deb"))
    # (--show-overrides would count the overridden tags as failures.)
    r = sh(["lintian", "--fail-on", "error,warning", changes[0]],
           check=False, timeout=600)
    print("\nlintian:\n" + r.stdout)
    bad = [l for l in r.stdout.splitlines() if re.match(r"^[EW]: ", l)]
    assert r.returncode == 0 and not bad, r.stdout + r.stderr


def test_unit_verifies(tmp_path):
    """systemd-analyze verify on the unit as `make install` writes it (the
    programs and man pages it names installed in a DESTDIR)."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed")
    dest = str(tmp_path / "dest")
    # SBINDIR is the build tree's bin/, so that verify finds mantactl.
    sh(["make", "-C", ROOT, "-s", "install", "DESTDIR=" + dest, "PREFIX=/usr",
        "SBINDIR=" + os.path.join(ROOT, "bin"), "UNITDIR=/lib/systemd/system"])
    unit = os.path.join(dest, "lib/systemd/system/manta-node@.service")
    text = open(unit).read()
    assert "ExecStart=%s/mantactl start -c /etc/manta/%%i.toml" % os.path.join(ROOT, "bin") \
        in text
    assert "Type=notify" in text and "KillMode=process" in text
    inst = str(tmp_path / "manta-node@t1.service")
    shutil.copy(unit, inst)
    env = dict(os.environ, MANPATH=os.path.join(dest, "usr/share/man"))
    r = sh(["systemd-analyze", "verify", inst], check=False, env=env)
    assert r.returncode == 0 and not r.stderr.strip(), r.stdout + r.stderr
    # A broken unit fails: the check can fail.
    with open(inst, "w") as f:
        f.write(text.replace("ProtectSystem=strict", "ProtectSystem=bogus"))
    r = sh(["systemd-analyze", "verify", inst], check=False, env=env)
    assert r.returncode != 0 or "bogus" in r.stderr, r.stdout + r.stderr
    r = sh(["systemd-analyze", "security", "--offline=yes", unit], check=False)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\w+)", r.stdout + r.stderr)
    assert m, r.stdout + r.stderr
    print("\nsystemd-analyze security --offline=yes: %s %s" % (m.group(1), m.group(2)))
    assert float(m.group(1)) <= 7.0, r.stdout


class Chroot(object):
    """A Debian 12 tree unpacked from the cached base, with /proc, /dev
    and /sys mounted and apt's package cache shared across runs."""

    def __init__(self):
        base = sh(["sh", os.path.join(ROOT, "tests/deb/base.sh")], timeout=900).stdout.strip()
        self.dir = tempfile.mkdtemp(prefix="manta-chroot-", dir="/var/tmp")
        self.mounts = []
        sh(["tar", "-C", self.dir, "-xf", base])
        os.chmod(self.dir, 0o755)      # its "/", which mkdtemp made 0700
        archives = os.path.join(CACHE, "apt")
        os.makedirs(os.path.join(archives, "partial"), exist_ok=True)
        # Its "/" a mount point, as on a machine: runc makes it rslave.
        sh(["mount", "--bind", self.dir, self.dir])
        self.mounts.append(self.dir)
        # Private: the mounts below must not propagate to the host's copy.
        sh(["mount", "--make-rprivate", self.dir])
        for src, dst, opts in (("proc", "proc", ["-t", "proc"]),
                               ("/dev", "dev", ["--bind"]),
                               ("/sys", "sys", ["--rbind"]),
                               (archives, "var/cache/apt/archives", ["--bind"])):
            target = os.path.join(self.dir, dst)
            os.makedirs(target, exist_ok=True)
            sh(["mount"] + opts + [src, target])
            self.mounts.append(target)
        shutil.copy("/etc/resolv.conf", os.path.join(self.dir, "etc/resolv.conf"))
        # No service starts in a chroot (policy-rc.d(8)).
        p = os.path.join(self.dir, "usr/sbin/policy-rc.d")
        with open(p, "w") as f:
            f.write("#!/bin/sh\nexit 101\n")
        os.chmod(p, 0o755)
        with open(os.path.join(self.dir, "etc/apt/apt.conf.d/99keep"), "w") as f:
            f.write('Binary::apt::APT::Keep-Downloaded-Packages "true";\n')

    def run(self, cmd, timeout=600, check=True):
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8",
               "HOME": "/root"}
        return sh(["chroot", self.dir, "sh", "-c", cmd], timeout=timeout,
                  check=check, env=env)

    def path(self, p):
        return os.path.join(self.dir, p.lstrip("/"))

    def stat(self, p):
        return os.stat(self.path(p))

    def copy_in(self, f):
        shutil.copy(f, self.path("/tmp"))
        return "/tmp/" + os.path.basename(f)

    def mounted(self):
        """Mount points at or below the chroot (from mountinfo: ismount()
        misses a bind mount within one file system)."""
        with open("/proc/self/mountinfo") as f:
            points = [l.split()[4] for l in f]
        return [p for p in points if p == self.dir or p.startswith(self.dir + "/")]

    def cleanup(self):
        for m in reversed(self.mounts):
            sh(["umount", "-R", "-l", m], check=False)
        # Never delete through a mount (/dev, the apt cache).
        if not self.mounted():
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def chroot():
    if os.geteuid() != 0:
        pytest.skip("needs root (chroot, mount)")
    if shutil.which("debootstrap") is None:
        pytest.skip("debootstrap not installed")
    c = Chroot()
    try:
        yield c
    finally:
        c.cleanup()


def account(c, name):
    """passwd fields of name in the chroot, or None."""
    r = c.run("getent passwd %s" % name, check=False)
    return r.stdout.strip().split(":") if r.returncode == 0 else None


def test_install_upgrade_purge(debs, chroot):
    c = chroot
    first, second = debs
    # make install's account maker where systemd-sysusers is missing (the
    # base has no systemd yet): useradd, twice (idempotent), on a copy of
    # the package's file with other names.
    assert c.run("command -v systemd-sysusers", check=False).returncode != 0
    mk = c.copy_in(os.path.join(ROOT, "contrib/systemd/mkusers.sh"))
    with open(os.path.join(ROOT, "contrib/systemd/manta-node.sysusers")) as f:
        text = re.sub(r"\bmanta\b", "mantat", f.read()).replace("manta-light", "mantat-light")
    with open(c.path("/tmp/t.sysusers"), "w") as f:
        f.write(text)
    for _ in range(2):
        c.run("sh %s /tmp/t.sysusers" % mk)
    gid = c.run("getent group mantat").stdout.split(":")[2]
    for name in ("mantat", "mantat-light"):
        pw = account(c, name)
        assert pw is not None and pw[3] == gid and pw[6].endswith("nologin"), pw
    assert c.run("getent passwd | grep -c '^mantat'").stdout.strip() == "2"

    c.run("apt-get update -q", timeout=300)
    deb = c.copy_in(first)
    t0 = time.monotonic()
    r = c.run("apt-get install -y -q --no-install-recommends %s" % deb, timeout=600)
    print("\napt-get install ./%s: %.0f s" % (os.path.basename(first), time.monotonic() - t0))
    assert c.run("dpkg-query -W -f='${Status} ${Version}' manta-node").stdout == \
        "install ok installed " + version_of(first)
    # A runtime came as a dependency.
    assert c.run("command -v runc || command -v crun", check=False).returncode == 0

    # Programs, each linking only libraries the dependencies brought.
    for p in DAEMONS + ["mantactl"]:
        st = c.stat("/usr/sbin/" + p)
        assert st.st_mode & 0o7777 == 0o755 and st.st_uid == 0, (p, oct(st.st_mode))
        ldd = c.run("ldd /usr/sbin/%s" % p).stdout
        assert "not found" not in ldd, ldd
    for page in ["man8/mantactl.8", "man8/mantad-exec.8", "man5/manta.toml.5",
                 "man7/manta-node.7"]:
        assert os.path.exists(c.path("/usr/share/man/%s.gz" % page)), page
    # The config: a conffile, root only (it will hold the JWT).
    st = c.stat("/etc/manta/node.toml")
    assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o640, 0, 0), oct(st.st_mode)
    assert "/etc/manta/node.toml" in c.run(
        "dpkg-query -W -f='${Conffiles}' manta-node").stdout
    # The unit, the accounts' and directories' declarations, the examples.
    unit = c.path("/lib/systemd/system/manta-node@.service")
    text = open(unit).read()
    assert "ExecStart=/usr/sbin/mantactl start -c /etc/manta/%i.toml" in text
    assert os.path.exists(c.path("/usr/lib/sysusers.d/manta-node.conf"))
    assert os.path.exists(c.path("/usr/lib/tmpfiles.d/manta-node.conf"))
    ex = "/usr/share/doc/manta-node/examples"
    for sv in ("s6", "runit"):
        for d in DAEMONS:
            run = c.path("%s/%s/%s/run" % (ex, sv, d))
            assert os.stat(run).st_mode & 0o111, run
            assert "MANTA_BIN=${MANTA_BIN:-/usr/sbin}" in open(run).read(), run
    assert os.path.exists(c.path(ex + "/s6/mantad-res/notification-fd"))

    # Accounts: manta and manta-light, system uids, primary group manta,
    # no login.
    grp = c.run("getent group manta").stdout.strip().split(":")
    users = {}
    for name in ("manta", "manta-light"):
        pw = account(c, name)
        assert pw is not None, name
        assert pw[3] == grp[2], (pw, grp)
        assert int(pw[2]) < 1000, pw
        assert pw[6].endswith("nologin"), pw
        users[name] = pw
    # Directories (tmpfiles.d).
    for d in ("/run/manta", "/var/lib/manta"):
        st = c.stat(d)
        assert (st.st_mode & 0o7777, st.st_uid) == (0o755, 0), (d, oct(st.st_mode))

    # The shipped config passes, by path and by NAME (found in /etc/manta).
    r = c.run("mantactl config check -c /etc/manta/node.toml")
    assert "ok" in r.stdout, r.stdout + r.stderr
    r = c.run("mantactl config check node")
    assert "/etc/manta/node.toml: ok" in r.stdout, r.stdout + r.stderr
    # And the unit as installed there.
    r = c.run("systemd-analyze verify --man=no /lib/systemd/system/manta-node@node.service",
              check=False)
    assert r.returncode == 0, r.stdout + r.stderr

    size = c.run("dpkg-query -W -f='${Installed-Size}' manta-node").stdout.strip()
    print("installed size: %s KiB (dpkg's Installed-Size)" % size)

    # State and an edit of the config, which must outlive an upgrade and
    # a removal.
    os.makedirs(c.path("/var/lib/manta/node"), exist_ok=True)
    with open(c.path("/var/lib/manta/node/identity"), "w") as f:
        f.write("ab" * 16 + "\n")
    with open(c.path("/etc/manta/node.toml"), "a") as f:
        f.write("# edited by the administrator\n")

    # Upgrade: no question (stdin is /dev/null, no debconf), edit kept.
    deb2 = c.copy_in(second)
    c.run("dpkg -i %s" % deb2, timeout=300)
    assert c.run("dpkg-query -W -f='${Version}' manta-node").stdout == version_of(second)
    assert open(c.path("/etc/manta/node.toml")).read().endswith(
        "# edited by the administrator\n")
    assert not os.path.exists(c.path("/etc/manta/node.toml.dpkg-new"))
    assert os.path.exists(c.path("/var/lib/manta/node/identity"))
    for name in users:
        assert account(c, name) == users[name], name

    # Remove: programs gone, config and state kept.
    c.run("dpkg -r manta-node", timeout=300)
    assert not os.path.exists(c.path("/usr/sbin/mantactl"))
    assert "config-files" in c.run("dpkg-query -W -f='${Status}' manta-node").stdout
    assert os.path.exists(c.path("/etc/manta/node.toml"))
    assert os.path.exists(c.path("/var/lib/manta/node/identity"))
    # Purge: both gone.
    c.run("dpkg -P manta-node", timeout=300)
    assert not os.path.exists(c.path("/etc/manta/node.toml"))
    assert not os.path.exists(c.path("/var/lib/manta"))
    assert c.run("dpkg-query -W manta-node", check=False).returncode != 0


def start_chroot_node(c, manager):
    """The shipped config, given the dev manager's address and token, then
    `mantactl start -d node` in the chroot."""
    conf = c.path("/etc/manta/node.toml")
    text = open(conf).read()
    text = text.replace('"${MANTA_TOKEN:change-me.change-me.change-me}"', '"%s"' % nodelib.TOKEN)
    text = re.sub(r"(?m)^manager_host = .*", 'manager_host = "127.0.0.1"', text)
    text = re.sub(r"(?m)^manager_port = .*", "manager_port = %d" % manager.grpc_port, text)
    # Detached, the shipped config (journal only) would log nowhere.
    text = re.sub(r"(?m)^log_to_file = .*", "log_to_file = true", text)
    text = re.sub(r"(?m)^filename = .*", 'filename = "/var/lib/manta/node/node.log"', text)
    with open(conf, "w") as f:
        f.write(text)
    c.run("mantactl start -d node", timeout=120)


def test_node_registers_in_chroot(debs, chroot, manager):
    """A fresh chroot, the package, the shipped config with the manager's
    address and token: `mantactl start -d` there (its daemons under the
    package's accounts) registers with the dev manager on the host's
    loopback and heartbeats. Prints the time from `apt-get install` to
    the registration (the packages apt needs come from the cache after
    the first run)."""
    c = chroot
    c.run("apt-get update -q", timeout=300)
    deb = c.copy_in(debs[0])
    t0 = time.monotonic()
    c.run("apt-get install -y -q --no-install-recommends %s" % deb, timeout=600)
    t_inst = time.monotonic() - t0
    try:
        start_chroot_node(c, manager)
        reg = manager.wait_call("RegisterNode", timeout=60)
        t_reg = time.monotonic() - t0
        manager.wait_message("manager/set_system_summary", timeout=30)
        print("\napt-get install: %.1f s; to RegisterNode: %.1f s; to a heartbeat: %.1f s"
              % (t_inst, t_reg, time.monotonic() - t0))
        assert reg is not None
        st = c.run("mantactl status --json node").stdout
        assert '"state": "up"' in st or '"state":"up"' in st, st
        # res, register and beat run as manta, light as manta-light where
        # the daemons switch (security.daemon_user; see manta-node(7)).
        manta_uid = int(account(c, "manta")[2])
        uids = {}
        for pid, comm in chroot_procs(c):
            with open("/proc/%d/status" % pid) as f:
                uid = int(re.search(r"(?m)^Uid:\s+(\d+)", f.read()).group(1))
            uids[comm] = uid
        print("daemon uids: %r (manta is %d)" % (uids, manta_uid))
        for d in ("mantad-res", "mantad-register", "mantad-beat"):
            assert uids.get(d) == manta_uid, uids
    finally:
        c.run("mantactl stop --timeout 5 node", timeout=120, check=False)
        # Nothing of the node may outlive the chroot.
        for pid, _ in chroot_procs(c):
            os.kill(pid, 9)


def chroot_procs(c):
    """[(pid, comm)] of the processes whose root is the chroot."""
    out = []
    for p in os.listdir("/proc"):
        try:
            if p.isdigit() and os.readlink("/proc/%s/root" % p) == c.dir:
                with open("/proc/%s/comm" % p) as f:
                    out.append((int(p), f.read().strip()))
        except OSError:
            pass
    return out


FAKE_SYSTEMCTL = """#!/bin/sh
# Stands in for systemctl in the test chroot (systemd is not PID 1 here):
# the postinst's calls are logged, list-units names the running node, and
# kill signals its supervisor as systemd would signal the main process.
echo "systemctl $*" >> /var/log/fake-systemctl.log
case "$1" in
list-units) echo "manta-node@node.service loaded active running Manta node node" ;;
kill) kill -USR2 "$(cat /run/manta/node/supervise.lock)" ;;
esac
exit 0
"""


def test_upgrade_keeps_running_task(debs, chroot, manager, bbroot):
    """dpkg -i of the newer package while a node runs a task: the postinst
    (under a stand-in systemctl, with /run/systemd/system present) sends
    the supervisor SIGUSR2; it stops leaving the container running; started
    again on the new programs (systemd's part: RestartForceExitStatus=75),
    the node adopts the task, whose updates arrive exactly once."""
    from common import tasks_pb2 as tasks_pb
    c = chroot
    c.run("apt-get update -q", timeout=300)
    c.run("apt-get install -y -q --no-install-recommends %s" % c.copy_in(debs[0]),
          timeout=600)
    # Only files, folders and links: a device node left in the shared
    # busybox tree by another test would be copied as its content (/dev/zero
    # fills the disk).
    def specials(d, names):
        return [n for n in names if not (os.path.islink(os.path.join(d, n)) or
                                         os.path.isdir(os.path.join(d, n)) or
                                         os.path.isfile(os.path.join(d, n)))]
    shutil.copytree(bbroot, c.path("/tmp/bb"), symlinks=True, ignore=specials)
    c.run("mantactl image import busybox /tmp/bb -c /etc/manta/node.toml", timeout=120)
    try:
        start_chroot_node(c, manager)
        manager.wait_call("RegisterNode", timeout=60)
        node_id = nodelib.wait_for(
            lambda: re.search(r'"node_id": *"([0-9a-f]{32})"',
                              c.run("mantactl status --json node", check=False).stdout),
            30, "the node's id").group(1)
        manager.wait_mqtt(10)
        # Online: its subscriptions acknowledged, so the deploy reaches it.
        nodelib.wait_for(
            lambda: re.search(r'"state": *"online"',
                              c.run("mantactl status --json node", check=False).stdout),
            30, "the node online")
        tid = "8d" * 16
        manager.deploy_task(node_id, nodelib.task_msg(
            tid, "#!/bin/sh\necho start\nsleep 20\necho end\n"))
        nodelib.wait_task_status(manager, tid, tasks_pb.RUNNING, timeout=60)
        sup = [p for p, comm in chroot_procs(c) if comm == "mantactl"]
        assert len(sup) == 1, chroot_procs(c)

        os.makedirs(c.path("/run/systemd/system"), exist_ok=True)
        fake = c.path("/usr/local/sbin/systemctl")
        with open(fake, "w") as f:
            f.write(FAKE_SYSTEMCTL)
        os.chmod(fake, 0o755)
        r = c.run("dpkg -i %s" % c.copy_in(debs[1]), timeout=300)
        assert "restarting manta-node@node.service" in r.stdout, r.stdout
        calls = open(c.path("/var/log/fake-systemctl.log")).read()
        assert "kill --kill-who=main --signal=SIGUSR2 manta-node@node.service" in calls, calls
        nodelib.wait_for(lambda: not nodelib.alive(sup[0]), 30, "the old supervisor's exit")
        nodelib.wait_for(lambda: not [p for p, comm in chroot_procs(c)
                                      if comm.startswith("mantad-")], 30,
                         "the old daemons' exit")
        assert [u[3] for u in nodelib.task_updates(manager, tid)] == [tasks_pb.RUNNING]
        # Read now: each start empties the log file, as the reference's does.
        log = open(c.path("/var/lib/manta/node/node.log")).read()
        assert "stopping for a restart" in log, log[-3000:]
        c.run("mantactl start -d node", timeout=120)
        nodelib.wait_task_status(manager, tid, tasks_pb.COMPLETED, timeout=60)
        assert [u[3] for u in nodelib.task_updates(manager, tid)] == \
            [tasks_pb.RUNNING, tasks_pb.COMPLETED]
        log = open(c.path("/var/lib/manta/node/node.log")).read()
        assert "1 containers adopted" in log, log[-3000:]
    except AssertionError:
        with open(c.path("/var/lib/manta/node/node.log"), errors="replace") as f:
            print("---- node.log in the chroot ----\n" + f.read()[-6000:])
        raise
    finally:
        c.run("mantactl stop --timeout 5 node", timeout=120, check=False)
        for pid, _ in chroot_procs(c):
            os.kill(pid, 9)
