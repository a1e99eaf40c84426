"""logging.filename, log_to_file and log_to_console as the reference has them
(WIRE.md section 10): the default "manta_node.log" stands for
~/.manta/logs/nodes/<alias, else metadata.name unless "default", else
node>.log (characters other than alphanumerics, - and _ made _), and the
file is emptied at each start; `mantactl start -d` writes there instead of
<state_dir>/node.log."""

import os

import pytest

import nodelib

READY = "mantad-register: info: ready"


@pytest.fixture
def home(tmp_path, monkeypatch):
    h = str(tmp_path / "home")
    os.makedirs(h)
    monkeypatch.setenv("HOME", h)
    return h


def logfile_node(make_node, manager, log=None, **kw):
    log = dict({"filename": "manta_node.log", "log_to_file": True,
                "log_to_console": False}, **(log or {}))
    return make_node(manager.grpc_port, overrides={"logging": log}, **kw)


def start_detached(n):
    r = nodelib.mantactl("start", "-c", n.config, "-d", timeout=30)
    assert r.returncode == 0, r.stderr
    n.wait_online()
    return r


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


def test_default_name_from_alias(manager, make_node, home):
    n = logfile_node(make_node, manager, alias="edge 7/b")
    r = start_detached(n)
    path = os.path.join(home, ".manta", "logs", "nodes", "edge_7_b.log")
    assert "log: %s" % path in r.stdout
    nodelib.wait_for(lambda: READY in read(path), 15, "the log in %s" % path)
    assert not os.path.exists(os.path.join(n.state_dir, "node.log"))
    # A second start is refused and leaves the running node's log alone.
    r2 = nodelib.mantactl("start", "-c", n.config, "-d", timeout=30)
    assert r2.returncode != 0
    assert READY in read(path)
    n.stop()
    # Each start empties it (the reference truncates it).
    start_detached(n)
    nodelib.wait_for(lambda: READY in read(path), 15, "the log in %s" % path)
    assert read(path).count("supervising node") == 1, read(path)
    n.stop()


@pytest.mark.parametrize("name,alias,base", [
    ("edge.7", None, "edge_7.log"),         # no alias: metadata.name
    ("default", None, "node.log"),          # name "default": node
])
def test_default_name_without_alias(manager, make_node, home, name, alias, base):
    n = logfile_node(make_node, manager, name=name, alias=alias)
    start_detached(n)
    path = os.path.join(home, ".manta", "logs", "nodes", base)
    nodelib.wait_for(lambda: os.path.exists(path) and READY in read(path), 15,
                     "the log in %s" % path)
    n.stop()


def test_explicit_filename(manager, make_node, home, tmp_path):
    path = str(tmp_path / "logs" / "mine.log")
    n = logfile_node(make_node, manager, log={"filename": path})
    start_detached(n)
    nodelib.wait_for(lambda: os.path.exists(path) and READY in read(path), 15,
                     "the log in %s" % path)
    assert not os.path.exists(os.path.join(n.state_dir, "node.log"))
    n.stop()


def test_detached_without_log_to_file(manager, make_node, home):
    n = logfile_node(make_node, manager, log={"log_to_file": False}, alias="quiet")
    r = start_detached(n)
    assert "log: none (logging.log_to_file = false)" in r.stdout
    assert not os.path.exists(os.path.join(home, ".manta", "logs"))
    assert not os.path.exists(os.path.join(n.state_dir, "node.log"))
    n.stop()


def test_foreground_file_only(manager, make_node, home, tmp_path):
    path = str(tmp_path / "fg.log")
    n = logfile_node(make_node, manager, log={"filename": path}).start()
    n.wait_online()
    nodelib.wait_for(lambda: READY in read(path), 15, "the log in %s" % path)
    assert READY not in n.log()
    assert "mantactl: logging to %s\n" % path in n.log()


def test_foreground_file_and_console(manager, make_node, home, tmp_path):
    path = str(tmp_path / "both.log")
    n = logfile_node(make_node, manager, log={"filename": path, "log_to_console": True})
    n.start()
    n.wait_online()
    nodelib.wait_for(lambda: READY in read(path), 15, "the log in %s" % path)
    nodelib.wait_log(n, READY)
    n.stop()
    # the copy ends with the last writer: both hold the last line
    nodelib.wait_for(lambda: "mantactl: info: stopped" in read(path), 10, "stopped in file")
    nodelib.wait_log(n, "mantactl: info: stopped")
