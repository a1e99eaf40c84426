"""Issue 13, finding 3: tokens readable by local users.

A state dir left at 0755 and an exec.db at 0644 (an older install, a
umask of 022, a hand-made directory) are repaired at the next start: the
directory to 0700 and every file directly in it to owner-only modes, each
repair logged. A local user made by the test (useradd --system, removed
after) then cannot read exec.db, where the task tokens are, nor anything
else in the state dir. A fresh node makes its files owner-only whatever
the umask of whoever starts it."""

import os
import pwd
import stat
import subprocess

import pytest

import nodelib

USER = "mantad-snoop"


@pytest.fixture
def snoop():
    """A local user with no rights on the node, removed afterwards."""
    r = subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                        "/usr/sbin/nologin", USER], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True)
    assert r.returncode == 0 or "already exists" in r.stderr, r.stderr
    try:
        yield pwd.getpwnam(USER)
    finally:
        subprocess.run(["userdel", USER], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)


def read_as(user, path):
    """Reads path as user: the first bytes, or the error's name."""
    def drop():
        os.setgroups([])
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)
    r = subprocess.run(["/usr/bin/python3", "-c",
                        "import sys\ntry:\n open(sys.argv[1],'rb').read(16); print('read')\n"
                        "except OSError as e:\n print(type(e).__name__)", path],
                       preexec_fn=drop, stdout=subprocess.PIPE, universal_newlines=True)
    return r.stdout.strip()


def open_files(state_dir):
    """Files directly in state_dir with any group or other bit."""
    bad = []
    for f in sorted(os.listdir(state_dir)):
        st = os.lstat(os.path.join(state_dir, f))
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o077:
            bad.append("%s %04o" % (f, stat.S_IMODE(st.st_mode)))
    return bad


def test_state_dir_repaired(manager, make_node, snoop):
    n = make_node(manager.grpc_port)
    os.chmod(n.dir, 0o755)      # the parents open: only the state dir guards
    old = os.umask(0o022)
    try:
        n.start()
    finally:
        os.umask(old)
    n.wait_ready(30)
    exec_db = os.path.join(n.state_dir, "exec.db")
    assert stat.S_IMODE(os.stat(n.state_dir).st_mode) == 0o700
    assert not open_files(n.state_dir), open_files(n.state_dir)
    n.stop()

    # An older install: the directory and the databases open to all
    os.chmod(n.state_dir, 0o755)
    for f in os.listdir(n.state_dir):
        p = os.path.join(n.state_dir, f)
        if os.path.isfile(p) and not os.path.islink(p):
            os.chmod(p, 0o644)
    assert read_as(snoop, exec_db) == "read"     # the finding, as filed

    n.start()
    n.wait_ready(30)
    assert stat.S_IMODE(os.stat(n.state_dir).st_mode) == 0o700
    assert not open_files(n.state_dir), open_files(n.state_dir)
    assert read_as(snoop, exec_db) == "PermissionError"
    assert read_as(snoop, os.path.join(n.state_dir, "identity")) == "PermissionError"
    log = n.log()
    assert "state dir %s was mode 0755: set to 0700" % n.state_dir in log, log[-3000:]
    assert "%s/exec.db was mode 0644, open to other users: set to 0600" % n.state_dir \
        in log, log[-3000:]
    # Repaired, and still working
    n.wait_online(30)
    for d in n.wait_ready(10)["daemons"]:
        assert d["restarts"] == 0, d


def test_state_dir_of_another_owner_refused(manager, make_node, snoop):
    n = make_node(manager.grpc_port)
    os.makedirs(n.state_dir, mode=0o700, exist_ok=True)
    os.chown(n.state_dir, snoop.pw_uid, snoop.pw_gid)
    r = nodelib.run([nodelib.MANTACTL, "start", "-c", n.config], timeout=30)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "state dir %s belongs to uid %d" % (n.state_dir, snoop.pw_uid) in r.stderr, \
        r.stderr
    assert n.processes() == []


def test_userns_keeps_search_only(manager, make_node):
    """With containers.userns the tasks' users may need to cross the state
    dir to an image_dir beneath it: 0755 becomes 0711 (search, no listing),
    the files in it still owner-only."""
    n = make_node(manager.grpc_port, overrides={"containers": {"userns": True}})
    os.makedirs(n.state_dir, mode=0o755, exist_ok=True)
    os.chmod(n.state_dir, 0o755)
    n.start()
    n.wait_ready(30)
    assert stat.S_IMODE(os.stat(n.state_dir).st_mode) == 0o711
    assert not open_files(n.state_dir), open_files(n.state_dir)
    assert "state dir %s was mode 0755: set to 0711" % n.state_dir in n.log()
