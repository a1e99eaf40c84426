"""Issues 7 and 13 (finding 5): the debugging switch of the daemons'
seccomp filters is the config key security.seccomp, shown by `mantactl
status` and said loudly in the log: "errno" keeps the filter (mode 2) but
makes a call outside the list fail with EPERM, "off" loads none. The
environment of whoever runs `mantactl start` weakens nothing:
MANTA_SECCOMP=off and MANTA_LIGHT_SECCOMP=off leave every filter killing."""

import json
import re

import nodelib

SWITCHED = ("mantad-res", "mantad-register", "mantad-beat", "mantad-light")


def seccomp_field(pid):
    return nodelib.proc_status(pid)["Seccomp"]


def start(manager, make_node, monkeypatch, env=None, mode=None):
    for k, v in (env or {}).items():
        monkeypatch.setenv(k, v)
    ov = {"security": {"seccomp": mode}} if mode else None
    n = make_node(manager.grpc_port, overrides=ov)
    n.start()
    n.wait_ready(30)
    return n


def status_security(n):
    r = nodelib.mantactl("status", "--json", "-c", n.config)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["security"]


def daemons():
    return [d for d in SWITCHED if d in nodelib.DAEMONS]


def test_errno_mode(manager, make_node, monkeypatch):
    n = start(manager, make_node, monkeypatch, mode="errno")
    pids, log = n.pids(), n.log()
    for d in daemons():
        assert seccomp_field(pids[d]) == "2", d
        assert re.search(r'^%s: warning: security.seccomp = "errno": WEAKENED' % d,
                         log, re.M), d
        assert re.search(r"^%s: .*system calls allowed, any other fails with EPERM" % d,
                         log, re.M), d
    assert status_security(n)["seccomp"] == "errno"


def test_off_mode(manager, make_node, monkeypatch):
    n = start(manager, make_node, monkeypatch, mode="off")
    pids, log = n.pids(), n.log()
    for d in daemons():
        assert seccomp_field(pids[d]) == "0", d
        assert re.search(r'^%s: warning: security.seccomp = "off": NO seccomp filter' % d,
                         log, re.M), d
        # Capabilities are dropped whatever the key says.
        assert nodelib.proc_status(pids[d])["CapEff"] == "0000000000000000", d
    assert status_security(n)["seccomp"] == "off"


def test_environment_weakens_nothing(manager, make_node, monkeypatch):
    n = start(manager, make_node, monkeypatch,
              env={"MANTA_SECCOMP": "off", "MANTA_LIGHT_SECCOMP": "off"})
    pids, log = n.pids(), n.log()
    for d in daemons():
        assert seccomp_field(pids[d]) == "2", d
        assert re.search(r"^%s: .*system calls allowed, any other kills the process" % d,
                         log, re.M), d
    assert "MANTA_SECCOMP" not in log and "security.seccomp" not in log
    assert status_security(n)["seccomp"] == "kill"


def test_bad_value_refused(manager, make_node):
    n = make_node(manager.grpc_port, overrides={"security": {"seccomp": "lenient"}})
    r = nodelib.mantactl("config", "check", "-c", n.config)
    assert r.returncode == 1
    assert "security.seccomp" in r.stderr and '"kill", "errno" or "off"' in r.stderr, r.stderr
