"""Issue 7: the debugging switch of the daemons' seccomp filters.
MANTA_SECCOMP=errno keeps the filter (mode 2) but makes a call outside the
list fail with EPERM, =off loads none; mantad-light's own
MANTA_LIGHT_SECCOMP wins over MANTA_SECCOMP for it. Each is said in the
log, and the node works either way."""

import re

import nodelib

SWITCHED = ("mantad-res", "mantad-register", "mantad-beat", "mantad-light")


def seccomp_field(pid):
    return nodelib.proc_status(pid)["Seccomp"]


def start(manager, make_node, monkeypatch, env):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    n = make_node(manager.grpc_port)
    n.start()
    n.wait_ready(30)
    return n


def test_errno_mode(manager, make_node, monkeypatch):
    n = start(manager, make_node, monkeypatch, {"MANTA_SECCOMP": "errno"})
    pids, log = n.pids(), n.log()
    for d in SWITCHED:
        if d not in nodelib.DAEMONS:
            continue
        assert seccomp_field(pids[d]) == "2", d
        assert re.search(r"^%s: .*MANTA_SECCOMP=errno" % d, log, re.M), d
        assert re.search(r"^%s: .*system calls allowed, any other fails with EPERM" % d,
                         log, re.M), d


def test_off_and_light_override(manager, make_node, monkeypatch):
    env = {"MANTA_SECCOMP": "off"}
    if "mantad-light" in nodelib.DAEMONS:
        env["MANTA_LIGHT_SECCOMP"] = "kill"
    n = start(manager, make_node, monkeypatch, env)
    pids, log = n.pids(), n.log()
    for d in ("mantad-res", "mantad-register", "mantad-beat"):
        assert seccomp_field(pids[d]) == "0", d
        assert re.search(r"^%s: .*MANTA_SECCOMP=off" % d, log, re.M), d
        # Capabilities are dropped whatever the switch says.
        assert nodelib.proc_status(pids[d])["CapEff"] == "0000000000000000", d
    if "mantad-light" in nodelib.DAEMONS:
        assert seccomp_field(pids["mantad-light"]) == "2"
        assert re.search(r"^mantad-light: .*any other kills the process", log, re.M)
