"""Configuration: `mantactl config check|show|init` and a refused start.
A bad config names file, line and key on stderr, exits 1, and starts nothing."""

import os
import re
import shutil
import subprocess
import tempfile

import pytest

import nodelib
from nodelib import mantactl

REFERENCE = os.path.join(nodelib.HERE, "configs", "reference.toml")


@pytest.fixture
def cfgdir():
    d = tempfile.mkdtemp(prefix="mnt-cfg-", dir="/tmp")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(autouse=True)
def _bins():
    from conftest import need_bins
    need_bins("mantactl")


def good_sections(d):
    return nodelib.default_sections(d, manager_port=50051, alias="cfg-test")


def write(d, text, name="node.toml"):
    p = os.path.join(d, name)
    with open(p, "w") as f:
        f.write(text)
    return p


def line_of(text, pattern):
    """1-based number of the first line matching the regex pattern."""
    for i, l in enumerate(text.splitlines(), 1):
        if re.search(pattern, l):
            return i
    raise AssertionError("no line matches %r" % pattern)


def assert_refused(r, path, key, line=None):
    assert r.returncode == 1, "exit %d (want 1)\nstdout: %s\nstderr: %s" % (
        r.returncode, r.stdout, r.stderr)
    err = r.stderr
    if line is not None:
        want = "%s:%d:" % (path, line)
        assert want in err, "stderr does not name %r:\n%s" % (want, err)
    else:
        assert path in err, "stderr does not name the file %s:\n%s" % (path, err)
    if key:
        assert key in err, "stderr does not name the key %r:\n%s" % (key, err)


def test_good_config_checks(cfgdir):
    p = write(cfgdir, nodelib.toml_dump(good_sections(cfgdir)))
    r = mantactl("config", "check", "-c", p)
    assert r.returncode == 0, r.stderr
    # The global -c form addresses the same file.
    r = mantactl("-c", p, "config", "check")
    assert r.returncode == 0, r.stderr


def test_minimal_config_checks(cfgdir):
    """Only the token is required: every other key has a default."""
    p = write(cfgdir, '[identity]\nsecured_token = "aaa.bbb.ccc"\n')
    r = mantactl("config", "check", "-c", p)
    assert r.returncode == 0, r.stderr


BAD = [
    # (id, section, key, bad TOML line, key named)
    ("unknown-key", "network", "bogus_key", "bogus_key = 1", "network.bogus_key"),
    ("wrong-type-int", "mqtt", "ping_interval", 'ping_interval = "fast"',
     "mqtt.ping_interval"),
    ("wrong-type-bool", "security", "use_tls", 'use_tls = "yes"', "security.use_tls"),
    ("wrong-type-string", "network", "manager_host", "manager_host = 12",
     "network.manager_host"),
    ("out-of-range-reserve", "resources", "reserve_cpu_percent",
     "reserve_cpu_percent = 80", "resources.reserve_cpu_percent"),
    ("out-of-range-port", "network", "light_service_port",
     "light_service_port = 80", "network.light_service_port"),
    ("out-of-range-ping", "mqtt", "ping_interval", "ping_interval = 0",
     "mqtt.ping_interval"),
    ("bad-token", "identity", "secured_token", 'secured_token = "notajwt"',
     "identity.secured_token"),
]


@pytest.mark.parametrize("case", BAD, ids=[b[0] for b in BAD])
def test_bad_value_refused(cfgdir, case):
    _id, sec, key, bad, named = case
    s = good_sections(cfgdir)
    s[sec].pop(key, None)
    text = nodelib.toml_dump(s)
    # Put the bad line right after the section header.
    hdr = "[%s]\n" % sec
    assert hdr in text
    text = text.replace(hdr, hdr + bad + "\n", 1)
    p = write(cfgdir, text)
    r = mantactl("config", "check", "-c", p)
    assert_refused(r, p, named, line_of(text, "^" + re.escape(bad) + "$"))


def test_unknown_section_refused(cfgdir):
    text = nodelib.toml_dump(good_sections(cfgdir)) + "[nonsense]\nfoo = 1\n"
    p = write(cfgdir, text)
    r = mantactl("config", "check", "-c", p)
    assert_refused(r, p, "nonsense")
    assert r.stderr.count("%s:" % p) >= 1


def test_broken_toml_refused(cfgdir):
    text = nodelib.toml_dump(good_sections(cfgdir))
    text = text.replace("[mqtt]\n", "[mqtt\n", 1)
    p = write(cfgdir, text)
    r = mantactl("config", "check", "-c", p)
    assert_refused(r, p, None, line_of(text, r"^\[mqtt$"))


def test_broken_string_refused(cfgdir):
    text = nodelib.toml_dump(good_sections(cfgdir))
    text = text.replace('manager_host = "127.0.0.1"', 'manager_host = "127.0.0.1', 1)
    p = write(cfgdir, text)
    r = mantactl("config", "check", "-c", p)
    assert_refused(r, p, None, line_of(text, r'^manager_host = "127.0.0.1$'))


def test_missing_token_refused(cfgdir):
    s = good_sections(cfgdir)
    del s["identity"]["secured_token"]
    p = write(cfgdir, nodelib.toml_dump(s))
    r = mantactl("config", "check", "-c", p)
    assert_refused(r, p, "identity.secured_token")


def test_missing_file_refused(cfgdir):
    p = os.path.join(cfgdir, "nonexistent.toml")
    r = mantactl("config", "check", "-c", p)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert p in r.stderr, r.stderr


def test_start_with_bad_config_starts_nothing(cfgdir):
    s = good_sections(cfgdir)
    s["mqtt"]["ping_interval"] = "fast"
    text = nodelib.toml_dump(s)
    p = write(cfgdir, text)
    try:
        r = mantactl("start", "-c", p, timeout=15)
    except subprocess.TimeoutExpired:
        r = None
    finally:
        left = nodelib.procs_with_arg(p)
        for pid, _argv in left:
            os.kill(pid, 9)
    assert r is not None, "mantactl start with a bad config did not exit"
    assert r.returncode != 0, "mantactl start with a bad config exited 0"
    assert "mqtt.ping_interval" in r.stderr and p in r.stderr, r.stderr
    assert not left, "processes started with a bad config: %r" % (left,)
    # No daemon socket was bound either.
    run_dir = s["paths"]["run_dir"]
    socks = [f for f in os.listdir(run_dir) if f.endswith(".sock")] \
        if os.path.isdir(run_dir) else []
    assert not socks, "sockets created: %r" % socks
    r = mantactl("status", "--json", "-c", p)
    assert r.returncode != 0


def test_reference_layout_loads_unchanged():
    """A reference node's ~/.manta/nodes/NAME.toml (WIRE.md section 10 layout,
    written as the reference writes it) loads as is."""
    assert os.path.exists(REFERENCE), "tests/configs/reference.toml missing"
    r = mantactl("config", "check", "-c", REFERENCE)
    assert r.returncode == 0, "reference config refused:\n%s" % r.stderr


def test_config_show_masks_token(cfgdir):
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJub2RlIn0.c2VjcmV0c2lnbmF0dXJl"
    s = good_sections(cfgdir)
    s["identity"]["secured_token"] = token
    p = write(cfgdir, nodelib.toml_dump(s))
    r = mantactl("config", "show", "-c", p)
    assert r.returncode == 0, r.stderr
    assert "secured_token" in r.stdout, r.stdout
    for part in token.split("."):
        assert part not in r.stdout, "token part %r shown:\n%s" % (part, r.stdout)
    assert "cfg-test" in r.stdout              # the alias is shown
    assert "ping_interval" in r.stdout
    # What show prints (with the token put back) is itself a good config.
    shown = re.sub(r'(?m)^(\s*secured_token\s*=\s*).*$', r'\g<1>"aaa.bbb.ccc"', r.stdout)
    p2 = write(cfgdir, shown, "shown.toml")
    r2 = mantactl("config", "check", "-c", p2)
    assert r2.returncode == 0, "config show output does not check:\n%s\n%s" % (
        r2.stderr, shown)


def test_config_init_output_checks(cfgdir):
    p = os.path.join(cfgdir, "init.toml")
    r = mantactl("config", "init", "-c", p)
    assert r.returncode == 0, r.stderr
    if not os.path.exists(p) or os.path.getsize(p) == 0:
        # init printed the config instead of writing -c FILE.
        assert r.stdout.strip(), "config init wrote nothing"
        write(cfgdir, r.stdout, "init.toml")
    with open(p) as f:
        text = f.read()
    assert "[identity]" in text and "#" in text, "not a commented config:\n" + text
    # Sections in the reference order.
    order = ["identity", "metadata", "network", "mqtt", "containers", "datasets",
             "tasks", "resources", "logging", "security"]
    pos = [text.find("[%s]" % s) for s in order if "[%s]" % s in text]
    assert pos == sorted(pos), "sections out of the reference order:\n" + text
    r = mantactl("config", "check", "-c", p)
    assert r.returncode == 0, "config init output refused:\n%s\n%s" % (r.stderr, text)


def test_config_init_isolates_tasks(cfgdir):
    """Issue 13: new configs run tasks in a network namespace of their own
    (containers.network = "none"); a file without the key keeps the
    reference's host network."""
    p = os.path.join(cfgdir, "init.toml")
    r = mantactl("config", "init", "-c", p)
    assert r.returncode == 0, r.stderr
    r = mantactl("config", "show", "-c", p)
    assert r.returncode == 0, r.stderr
    assert re.search(r'(?m)^network = "none"', r.stdout), r.stdout
    with open(p) as f:
        text = re.sub(r'(?m)^network = "none".*$', "", f.read())
    p2 = write(cfgdir, text, "nokey.toml")
    r = mantactl("config", "show", "-c", p2)
    assert r.returncode == 0, r.stderr
    assert re.search(r'(?m)^network = "host"', r.stdout), r.stdout
