"""nodelib: the one helper module of the integration tests (as mosquitto's
test/mosq_test.py): free ports, a real mosquitto, a node instance driven
through bin/mantactl, condition waits with deadlines, process lookups.

Environment:
  MANTA_TEST_VALGRIND=1   run mantactl under valgrind (deadlines x4)
  MANTA_TEST_TIMEOUT_SCALE=N   multiply every deadline by N
  MANTA_TEST_KEEP=1       keep each node's temp dir (config, logs, state)
  MANTA_TEST_LOGLEVEL=L   logging.level in the generated configs (INFO)
  MANTA_TEST_TSAN=1       use the ThreadSanitizer programs of build/tsan/bin
                          (make check-tsan); any report fails the test
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TSAN = bool(os.environ.get("MANTA_TEST_TSAN"))
BIN = os.path.join(ROOT, "build", "tsan", "bin") if TSAN else os.path.join(ROOT, "bin")
PYGEN = os.path.join(ROOT, "build", "py")
if PYGEN not in sys.path:
    sys.path.insert(0, PYGEN)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

MANTACTL = os.path.join(BIN, "mantactl")
MOSQUITTO = "/usr/sbin/mosquitto"
TOKEN = "aaa.bbb.ccc"
# The daemons an instance runs: all five are required (issue 15).
DAEMONS = ("mantad-res", "mantad-register", "mantad-beat", "mantad-exec",
           "mantad-light")

VALGRIND = bool(os.environ.get("MANTA_TEST_VALGRIND"))
SCALE = float(os.environ.get("MANTA_TEST_TIMEOUT_SCALE",
                             "4" if VALGRIND else "3" if TSAN else "1"))
KEEP = bool(os.environ.get("MANTA_TEST_KEEP"))
LOGLEVEL = os.environ.get("MANTA_TEST_LOGLEVEL", "INFO")


def deadline(seconds):
    """A deadline in seconds, scaled for slow runs (valgrind)."""
    return seconds * SCALE


# ---- waiting ----

def wait_for(cond, timeout, what, interval=0.05):
    """Polls cond() until it returns a true value (returned) or timeout
    seconds (scaled) pass; then fails naming what and cond's last value.
    cond may raise AssertionError while not ready: that counts as false."""
    end = time.monotonic() + deadline(timeout)
    last = None
    while True:
        try:
            last = cond()
            if last:
                return last
        except AssertionError as e:
            last = "AssertionError: %s" % e
        if time.monotonic() >= end:
            raise AssertionError("timed out after %.1fs waiting for %s (last: %r)"
                                 % (deadline(timeout), what, last))
        time.sleep(interval)


def wait_log(node, pattern, timeout=20):
    """Waits for a line of node.log() matching the regular expression
    pattern (returns the match); the failure shows the log's tail."""
    import re
    rx = re.compile(pattern)
    try:
        return wait_for(lambda: rx.search(node.log()), timeout,
                        "log line /%s/" % pattern)
    except AssertionError as e:
        raise AssertionError("%s\nnode log:\n%s" % (e, node.log_tail(40)))


def read_log(path, errors="replace"):
    """The text of a log file, "" while it does not exist."""
    try:
        with open(path, errors=errors) as f:
            return f.read()
    except OSError:
        return ""


# ---- programs ----

def built(*names):
    """Whether every bin/NAME is built (executable)."""
    return all(os.access(os.path.join(BIN, n), os.X_OK) for n in names)


def skip_unless_built(*names):
    """A pytest mark (a test module's pytestmark) that skips unless every
    bin/NAME is built: "bin/A or bin/B not built"."""
    import pytest
    return pytest.mark.skipif(not built(*names), reason="%s not built" % " or ".join(
        "bin/" + n for n in names))


# ---- ports ----

_handed_out = set()


def free_port():
    """A TCP port free on 127.0.0.1 now, never handed out twice by this
    process (so that a stopped broker's port is not given to another test)."""
    for _ in range(100):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        if port not in _handed_out and port >= 1024:
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port")


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


# ---- ids (WIRE.md section 1) ----

def b3sum16(data):
    """32-hex BLAKE3 with a 16-byte output, from the b3sum command."""
    out = subprocess.run(["b3sum", "--length", "16", "--no-names"], input=data,
                         stdout=subprocess.PIPE, check=True).stdout
    return out.decode().split()[0]


def id_from_string(s):
    """The WIRE.md rule: hex value if the string is hex < 2^128, else BLAKE3-128."""
    try:
        if s and all(c in "0123456789abcdefABCDEF" for c in s):
            v = int(s, 16)
            if v < 1 << 128:
                return "%032x" % v
    except ValueError:
        pass
    return b3sum16(s.encode("utf-8"))


# ---- processes ----

def proc_cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return None


def proc_state(pid):
    """The state letter of /proc/PID/stat (Z for a zombie), None if gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def alive(pid):
    st = proc_state(pid)
    return st is not None and st not in ("Z", "X")


def procs_with_arg(arg):
    """[(pid, argv)] of live processes one of whose arguments is arg."""
    res = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        pid = int(d)
        if pid == os.getpid():
            continue
        argv = proc_cmdline(pid)
        if argv and arg in argv and alive(pid):
            res.append((pid, argv))
    return res


def prog_name(argv):
    """Program name of an argv, seeing through valgrind."""
    for a in argv:
        b = os.path.basename(a)
        if b.startswith("mantad-") or b == "mantactl":
            return b
    return os.path.basename(argv[0])


def run(argv, timeout=30, **kw):
    """subprocess.run capturing text stdout and stderr."""
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=deadline(timeout), **kw)


def mantactl(*args, timeout=30, **kw):
    return run([MANTACTL] + list(args), timeout=timeout, **kw)


def _terminate(p, sig_first=signal.SIGTERM, grace=10):
    if p is None or p.poll() is not None:
        return
    try:
        p.send_signal(sig_first)
        p.wait(deadline(grace))
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(10)
    except ProcessLookupError:
        pass


# ---- mosquitto ----

class Broker(object):
    """A real mosquitto on a free loopback port, with its own temp dir."""

    def __init__(self, port=None, dir=None, tls=None):
        """tls: None (plain MQTT) or {"ca": PATH, "cert": PATH, "key": PATH,
        "require_certificate": bool (default True)} for a TLS listener."""
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.tls = tls
        if dir is not None:
            os.makedirs(dir, exist_ok=True)
        self.dir = dir or tempfile.mkdtemp(prefix="mnt-mq-", dir="/tmp")
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        self.logfile = os.path.join(self.dir, "mosquitto.log")
        self.proc = None
        with open(self.conf, "w") as f:
            f.write("listener %d 127.0.0.1\n"
                    "allow_anonymous true\n"
                    "persistence false\n"
                    "user root\n"
                    "log_dest stderr\n"
                    "log_type error\nlog_type warning\nlog_type notice\n"
                    "log_type information\n"
                    "connection_messages true\n" % self.port)
            if tls:
                # Options after a listener line apply to that listener.
                f.write("cafile %s\ncertfile %s\nkeyfile %s\n"
                        "require_certificate %s\n"
                        % (tls["ca"], tls["cert"], tls["key"],
                           "true" if tls.get("require_certificate", True)
                           else "false"))

    def start(self, timeout=10):
        assert self.proc is None or self.proc.poll() is not None
        log = open(self.logfile, "a")
        try:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", self.conf], stdout=log,
                                         stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        finally:
            log.close()
        wait_for(lambda: self.proc.poll() is not None or port_open(self.port),
                 timeout, "mosquitto listening on %d" % self.port)
        if self.proc.poll() is not None:
            raise AssertionError("mosquitto exited with %d:\n%s"
                                 % (self.proc.returncode, self.log()))
        return self

    def stop(self):
        _terminate(self.proc)
        # A listening port is free again once the process is gone.
        wait_for(lambda: not port_open(self.port), 10,
                 "mosquitto port %d closed" % self.port)

    def kill(self):
        _terminate(self.proc, signal.SIGKILL)

    def restart(self):
        self.stop()
        return self.start()

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        return read_log(self.logfile, errors=None)

    def cleanup(self):
        self.kill()
        if not KEEP:
            shutil.rmtree(self.dir, ignore_errors=True)


# ---- a test CA (TLS tests) ----

OPENSSL = "/usr/bin/openssl"


class TestCA(object):
    """A throwaway certificate authority made with Debian's openssl CLI in
    its own temp dir (EC P-256 keys, unencrypted PEM). issue() signs leaf
    certificates; cert_folder() lays out a node's security.cert_folder with
    the INTERFACE.md names (ca.crt, node.crt/key, mqtt.crt/key)."""

    __test__ = False        # not a pytest class

    def __init__(self, name="manta-test-ca", dir=None):
        self.name = name
        self.dir = dir or tempfile.mkdtemp(prefix="mnt-ca-", dir="/tmp")
        self.key = os.path.join(self.dir, "ca.key")
        self.crt = os.path.join(self.dir, "ca.crt")
        self._openssl("req", "-x509", "-newkey", "ec",
                      "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                      "-keyout", self.key, "-out", self.crt, "-days", "30",
                      "-subj", "/CN=%s" % name,
                      "-addext", "basicConstraints=critical,CA:TRUE",
                      "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    @staticmethod
    def _openssl(*args):
        r = run([OPENSSL] + list(args), timeout=30)
        if r.returncode != 0:
            raise AssertionError("openssl %s failed:\n%s" % (args[0], r.stderr))
        return r

    def issue(self, name, cn, dns=(), ips=(), usage="serverAuth", days=30):
        """Signs a new key's certificate: CN cn, subjectAltName from dns and
        ips, extendedKeyUsage usage ("serverAuth", "clientAuth"); days < 0
        gives a certificate that has already expired. Returns (crt, key)
        paths, <dir>/<name>.crt and .key."""
        crt = os.path.join(self.dir, name + ".crt")
        key = os.path.join(self.dir, name + ".key")
        csr = os.path.join(self.dir, name + ".csr")
        ext = os.path.join(self.dir, name + ".ext")
        san = ["DNS:%s" % d for d in dns] + ["IP:%s" % i for i in ips]
        with open(ext, "w") as f:
            f.write("basicConstraints=critical,CA:FALSE\n"
                    "keyUsage=critical,digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage=%s\n" % usage)
            if san:
                f.write("subjectAltName=%s\n" % ",".join(san))
        self._openssl("req", "-new", "-newkey", "ec",
                      "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                      "-keyout", key, "-out", csr, "-subj", "/CN=%s" % cn)
        self._openssl("x509", "-req", "-in", csr, "-CA", self.crt,
                      "-CAkey", self.key, "-set_serial",
                      str(int.from_bytes(os.urandom(8), "big") >> 1),
                      "-days", str(days), "-extfile", ext, "-out", crt)
        return crt, key

    def server(self, name="server", host="localhost", ip="127.0.0.1", days=30):
        """A server certificate for host and ip (both in subjectAltName)."""
        return self.issue(name, host, dns=(host,), ips=(ip,) if ip else (),
                          usage="serverAuth", days=days)

    def client(self, name, cn=None, days=30):
        return self.issue(name, cn or name, usage="clientAuth", days=days)

    def cert_folder(self, dest, ca=True, node=None, mqtt=None):
        """Fills dest with ca.crt (this CA's, when ca), node.crt/node.key
        (node: a (crt, key) pair) and mqtt.crt/mqtt.key (mqtt: a pair).
        Returns dest."""
        os.makedirs(dest, exist_ok=True)
        if ca:
            shutil.copyfile(self.crt, os.path.join(dest, "ca.crt"))
        for base, pair in (("node", node), ("mqtt", mqtt)):
            if pair:
                shutil.copyfile(pair[0], os.path.join(dest, base + ".crt"))
                shutil.copyfile(pair[1], os.path.join(dest, base + ".key"))
                os.chmod(os.path.join(dest, base + ".key"), 0o600)
        return dest

    def cleanup(self):
        if not KEEP:
            shutil.rmtree(self.dir, ignore_errors=True)


def tls_broker(request, ca, cert, key, require_certificate=True, **kw):
    """A started mosquitto with a TLS listener (ca, cert, key: paths),
    cleaned up by request's finalizer; kw: more Broker arguments (port)."""
    b = Broker(tls={"ca": ca, "cert": cert, "key": key,
                    "require_certificate": require_certificate}, **kw)
    request.addfinalizer(b.cleanup)
    return b.start()


def tls_manager(request, server, ca=None, require_client_auth=True, token=TOKEN,
                grpc_port=None, **kw):
    """A started dev manager serving gRPC over TLS with server, a (crt, key)
    pair; with ca, client certificates are checked against it (and
    required, with require_client_auth). Stopped by request's finalizer.
    kw: more DevManager arguments."""
    from devmanager import DevManager
    tls = {"cert": server[0], "key": server[1]}
    if ca is not None:
        tls.update(ca=ca, require_client_auth=require_client_auth)
    m = DevManager(grpc_port=grpc_port or free_port(), token=token, tls=tls, **kw)
    m.start()
    request.addfinalizer(m.stop)
    return m


def mutual_tls_stack(request, pki, token=TOKEN, **kw):
    """(broker, manager) of a mutual TLS set-up from pki (the `pki`
    fixture): mosquitto requiring a client certificate, the dev manager
    requiring one on gRPC and connected to that broker with its own
    (manager_mqtt). Both use pki's server certificate; both go at teardown."""
    ca, srv = pki["ca"], pki["server"]
    broker = tls_broker(request, ca.crt, srv[0], srv[1], require_certificate=True)
    m = tls_manager(request, srv, ca=ca.crt, token=token, broker_host=broker.host,
                    broker_port=broker.port,
                    mqtt_tls={"ca": ca.crt, "cert": pki["manager_mqtt"][0],
                              "key": pki["manager_mqtt"][1]}, **kw)
    m.wait_mqtt(10)
    return broker, m


# ---- configuration ----

def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)       # a valid TOML basic string for our values
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join("%s = %s" % (toml_key(k), toml_value(x))
                                for k, x in v.items()) + " }"
    raise TypeError(v)


def toml_key(k):
    if k and all(c.isalnum() or c in "-_" for c in k):
        return k
    return json.dumps(k)


def toml_dump(sections):
    """{section: {key: value}} -> TOML text, sections in the given order.
    A value None leaves the key out."""
    out = []
    for sec, kv in sections.items():
        out.append("[%s]" % sec)
        for k, v in kv.items():
            if v is not None:
                out.append("%s = %s" % (toml_key(k), toml_value(v)))
        out.append("")
    return "\n".join(out)


def default_sections(d, manager_port, token=TOKEN, alias=None, name="node",
                     ping_interval=1, monitor_interval=1, manager_host="127.0.0.1"):
    """Every key of WIRE.md section 10 plus [paths], for a node in dir d."""
    return {
        "identity": {"secured_token": token, "alias": alias, "random_id": False},
        "metadata": {"name": name, "created_at": "2024-01-01T00:00:00",
                     "version": "1.0.0", "description": "manta-node test instance"},
        "network": {"manager_host": manager_host, "manager_port": manager_port,
                    "light_service_host": "127.0.0.1",
                    "light_service_port": free_port()},
        "mqtt": {"ping_interval": ping_interval, "reconnect_attempts": 5,
                 "reconnect_delay": 5.0},
        "containers": {"default_memory_limit": "4G", "default_cpu_limit": "2.0",
                       "docker_network": "host", "runtime": "runc",
                       "pull_timeout": 300,
                       "log_config": {"type": "json-file",
                                      "config": {"max-size": "10m", "max-file": "3"}}},
        "datasets": {"base_path": os.path.join(d, "datasets"), "mount_readonly": True,
                     "cache_metadata": True},
        "tasks": {"max_concurrent": 2, "task_timeout": 3600, "retry_attempts": 3,
                  "cleanup_on_failure": True, "stream_logs": True},
        "resources": {"reserve_cpu_percent": 10, "reserve_memory_mb": 512,
                      "max_disk_usage_percent": 90,
                      "monitor_interval": monitor_interval},
        "logging": {"level": LOGLEVEL, "filename": os.path.join(d, "node.log"),
                    "log_to_file": False, "log_to_console": True,
                    "debug_mode": False, "max_file_size": "100M", "backup_count": 5},
        # allow_root_daemons: this machine has no manta/manta-light
        # accounts, and creating them would change every other node's
        # default; the tests of the accounts name test accounts instead.
        "security": {"use_tls": False, "cert_folder": os.path.join(d, "certs"),
                     "verify_ssl": True, "token_refresh_interval": 3600,
                     "allow_root_daemons": True,
                     **({"seccomp": "off"} if TSAN else {})},
        "paths": {"run_dir": os.path.join(d, "run"),
                  "state_dir": os.path.join(d, "state")},
    }


# ---- ThreadSanitizer (issue 15) ----

if TSAN:
    # Every process started from here on (supervisor, daemons, shims,
    # mantactl commands) writes its reports to TSAN_DIR/tsan.PID.
    TSAN_DIR = tempfile.mkdtemp(prefix="manta-tsan-", dir="/tmp")
    import atexit
    atexit.register(shutil.rmtree, TSAN_DIR, True)
    os.environ["TSAN_OPTIONS"] = (
        "log_path=%s/tsan exitcode=66 second_deadlock_stack=1 suppressions=%s"
        % (TSAN_DIR, os.path.join(HERE, "tsan.supp")))
    # The TSAN runtime makes system calls of its own (open() to write a
    # report) that no daemon's seccomp allowlist has: the filters stay off
    # in these runs, by the config key (no environment variable weakens
    # them since issue 13): see base_config.


def tsan_reports():
    """The reports written since the last call (then removed), as text."""
    if not TSAN:
        return ""
    out = []
    for f in sorted(os.listdir(TSAN_DIR)):
        path = os.path.join(TSAN_DIR, f)
        with open(path, errors="replace") as fh:
            out.append("---- %s ----\n%s" % (f, fh.read()))
        os.unlink(path)
    return "\n".join(out)


# ---- a node instance ----

class Node(object):
    """One node instance: its own temp dir (/tmp/mnt-XXXX) holding the config
    (node.toml), run/ (sockets: kept short), state/ and the supervisor's
    output (mantactl.log). start() runs `mantactl start -c FILE` in the
    foreground as a child; cleanup() always leaves no process behind."""

    def __init__(self, manager_port, alias=None, token=TOKEN, name="node",
                 ping_interval=1, monitor_interval=1, manager_host="127.0.0.1",
                 overrides=None, dir=None):
        self.dir = dir or tempfile.mkdtemp(prefix="mnt-", dir="/tmp")
        self.config = os.path.join(self.dir, "node.toml")
        self.run_dir = os.path.join(self.dir, "run")
        self.state_dir = os.path.join(self.dir, "state")
        self.logfile = os.path.join(self.dir, "mantactl.log")
        self.alias = alias
        self.manager_port = manager_port
        self.sections = default_sections(self.dir, manager_port, token=token,
                                         alias=alias, name=name,
                                         ping_interval=ping_interval,
                                         monitor_interval=monitor_interval,
                                         manager_host=manager_host)
        for sec, kv in (overrides or {}).items():
            self.sections.setdefault(sec, {}).update(kv)
        self.proc = None
        self.write_config()

    def write_config(self, text=None):
        with open(self.config, "w") as f:
            f.write(text if text is not None else toml_dump(self.sections))

    # -- life cycle --

    def start_cmd(self):
        cmd = [MANTACTL, "start", "-c", self.config]
        if VALGRIND:
            # The daemons too (--trace-children): each writes its own log.
            cmd = ["valgrind", "-q", "--error-exitcode=99", "--leak-check=full",
                   "--show-leak-kinds=definite", "--errors-for-leak-kinds=definite",
                   "--trace-children=yes",
                   "--log-file=%s/valgrind-%%p.log" % self.dir] + cmd
        return cmd

    def start(self, wait=True, timeout=15):
        """Runs the supervisor in the foreground (a child of the test);
        with wait, returns once `mantactl status` answers."""
        assert self.proc is None or self.proc.poll() is not None, "already started"
        log = open(self.logfile, "a")
        try:
            self.proc = subprocess.Popen(self.start_cmd(), stdout=log,
                                         stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        finally:
            log.close()
        if wait:
            self.wait_running(timeout)
        return self

    def wait_running(self, timeout=15):
        def ready():
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError("mantactl start exited with %d:\n%s"
                                   % (self.proc.returncode, self.log()))
            rc, st = self.status()
            return rc == 0 and st is not None
        wait_for(ready, timeout, "mantactl status to answer (%s)" % self.config)

    def status(self, timeout=10):
        """(exit code, parsed JSON or None) of `mantactl status --json -c FILE`."""
        try:
            r = mantactl("status", "--json", "-c", self.config, timeout=timeout)
        except subprocess.TimeoutExpired:
            return (None, None)
        try:
            d = json.loads(r.stdout) if r.stdout.strip() else None
        except ValueError:
            d = None
        self.last_status = (r.returncode, d, r.stderr)
        return (r.returncode, d)

    def wait_status(self, pred, timeout=30, what="status"):
        """Waits until pred(status dict) holds; returns that dict."""
        def cond():
            rc, st = self.status()
            if rc == 0 and st is not None and pred(st):
                return st
            return None
        try:
            return wait_for(cond, timeout, what, interval=0.1)
        except AssertionError as e:
            raise AssertionError("%s\nlast status: %r\nnode log:\n%s"
                                 % (e, getattr(self, "last_status", None),
                                    self.log_tail()))

    def wait_online(self, timeout=30):
        return self.wait_status(lambda s: s.get("state") == "online", timeout,
                                "node %s online" % self.config)

    def wait_ready(self, timeout=30):
        """Online, and every daemon of DAEMONS listed and up (a daemon may
        still be starting when the node is already online)."""
        def ready(s):
            up = {d.get("name") for d in s.get("daemons", []) if d.get("state") == "up"}
            return s.get("state") == "online" and set(DAEMONS) <= up
        return self.wait_status(ready, timeout, "node %s online, all daemons up"
                                % self.config)

    def stop(self, timeout=15, drain=None):
        """`mantactl stop -c FILE` (with `--timeout drain`: how long running
        tasks may take to finish, default 30 s), then waits for the
        supervisor and every daemon of this instance to exit. Returns the
        stop command's result."""
        args = ["stop", "-c", self.config]
        if drain is not None:
            args += ["--timeout", str(drain)]
        r = mantactl(*args, timeout=timeout)
        if self.proc is not None:
            try:
                self.proc.wait(deadline(timeout))
            except subprocess.TimeoutExpired:
                pass
        self.wait_no_process(timeout)
        return r

    def terminate(self, sig=signal.SIGTERM):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait_exit(self, timeout=15):
        try:
            return self.proc.wait(deadline(timeout))
        except subprocess.TimeoutExpired:
            raise AssertionError("mantactl start (pid %d) still running after %.1fs"
                                 % (self.proc.pid, deadline(timeout)))

    def wait_no_process(self, timeout=15):
        wait_for(lambda: not self.processes(), timeout,
                 "no process of instance %s left" % self.config)

    # -- processes --

    def processes(self):
        """[(pid, program name)] of live processes of this instance (found by
        the config path in their arguments)."""
        return [(pid, prog_name(argv)) for pid, argv in procs_with_arg(self.config)]

    def pids(self):
        """{program name: pid} from /proc (daemons and supervisor)."""
        d = {}
        for pid, name in self.processes():
            if name == "mantactl":
                argv = proc_cmdline(pid) or []
                if "start" not in argv:
                    continue        # a concurrent `mantactl status`
            d.setdefault(name, pid)
        return d

    def daemon(self, name, status=None):
        """The daemons[] entry of name from a status dict (fresh if None)."""
        if status is None:
            rc, status = self.status()
            assert rc == 0 and status, "status failed: %r" % (self.last_status,)
        for d in status.get("daemons", []):
            if d.get("name") == name:
                return d
        raise AssertionError("no daemon %s in status: %r" % (name, status))

    @property
    def supervisor_pid(self):
        return self.proc.pid if self.proc is not None else None

    # -- state --

    def identity(self):
        try:
            with open(os.path.join(self.state_dir, "identity")) as f:
                return f.read()
        except OSError:
            return None

    def valgrind_errors(self):
        """Text of every non-empty valgrind log of this instance (-q: a log
        is empty unless valgrind found something)."""
        out = []
        for f in sorted(os.listdir(self.dir)):
            if f.startswith("valgrind-") and f.endswith(".log"):
                with open(os.path.join(self.dir, f), errors="replace") as fh:
                    t = fh.read()
                if t.strip():
                    out.append("---- %s ----\n%s" % (f, t))
        return "\n".join(out)

    def log(self):
        return read_log(self.logfile)

    def log_tail(self, n=60):
        return "\n".join(self.log().splitlines()[-n:])

    def remove(self):
        if not KEEP:
            shutil.rmtree(self.dir, ignore_errors=True)

    def cleanup(self, remove=True):
        """Stops everything of this instance, whatever state it is in.
        SIGINT: the supervisor stops at once, without the drain of SIGTERM
        (running tasks are stopped, not waited for)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(deadline(10))
            except subprocess.TimeoutExpired:
                pass
        # Whatever survived (an orphaned daemon, a hung supervisor): SIGKILL,
        # by pid, only processes naming our own config file.
        for _ in range(3):
            left = self.processes()
            if not left:
                break
            for pid, _name in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        if remove:
            self.remove()


def node_hex_ok(s):
    return isinstance(s, str) and len(s) == 32 and all(c in "0123456789abcdef" for c in s)


# ---- images, IPC, task logs (issue 4: image import, tasks, logs) ----

IMAGES_DIR = os.path.join(HERE, "images")


def ipc_call(run_dir, name, msg, timeout=5):
    """Sends one manta.ipc.Msg to the daemon endpoint <run_dir>/<name>.sock
    (as ipc_call in libcommon/ipc.c does) and returns its decoded answer."""
    import zmq
    import ipc_pb2
    s = zmq.Context.instance().socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    try:
        s.connect("ipc://%s/%s.sock" % (run_dir, name))
        s.send(msg.SerializeToString())
        if not s.poll(int(deadline(timeout) * 1000)):
            raise AssertionError("%s: no answer within %.1fs" % (name, deadline(timeout)))
        rep = ipc_pb2.Msg()
        rep.ParseFromString(s.recv())
        return rep
    finally:
        s.close()


def busybox_rootfs(dest):
    """A busybox rootfs directory at dest (tests/images/busybox.sh)."""
    r = run(["sh", os.path.join(IMAGES_DIR, "busybox.sh"), dest], timeout=60)
    assert r.returncode == 0, r.stderr
    return dest


def busybox_tarball(dest):
    """The busybox rootfs as a tarball at dest (.tar, .tar.gz, .tgz, .tar.xz)."""
    r = run(["sh", os.path.join(IMAGES_DIR, "busybox.sh"), "--tar", dest], timeout=60)
    assert r.returncode == 0, r.stderr
    return dest


def python_rootfs(timeout=900):
    """The cached Debian Python rootfs (tests/images/python.sh builds it once),
    or None when it cannot be built here: callers skip then."""
    try:
        r = run(["sh", os.path.join(IMAGES_DIR, "python.sh")], timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    if r.returncode != 0:
        return None
    path = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
    return path if os.path.isdir(path) else None


def image_import(config, name, src, timeout=120):
    """`mantactl image import NAME SRC -c config` (the CompletedProcess)."""
    return mantactl("image", "import", name, src, "-c", config, timeout=timeout)


def image_ls(config):
    """`mantactl image ls --json -c config`, parsed."""
    r = mantactl("image", "ls", "--json", "-c", config)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def tasks_json(config):
    """(exit code, parsed array or None) of `mantactl tasks --json -c config`."""
    r = mantactl("tasks", "--json", "-c", config)
    try:
        return r.returncode, json.loads(r.stdout) if r.stdout.strip() else None
    except ValueError:
        return r.returncode, None


def log_frame(swarm_hex, node_hex, task_hex, iteration, circular, raw):
    """A WIRE.md section 8 frame: 52-byte little-endian header + zlib level 9."""
    import struct
    import zlib
    s, n, t = (int(x, 16) for x in (swarm_hex, node_hex, task_hex))
    m = (1 << 64) - 1
    return struct.pack("<QQQQQQHH", s >> 64, s & m, n >> 64, n & m, t >> 64, t & m,
                       iteration, circular) + zlib.compress(raw, 9)


# ---- the Light service (issue 5: mantad-light) ----

LIGHT = os.path.join(BIN, "mantad-light")

# "Service/Method" -> (kind, request class name, response class name), kinds
# as devmanager.METHODS: uu unary, us server stream, su client stream.
LIGHT_METHODS = {
    "Local/GetBinaryData": ("us", "light.DataRequest", "system.Binary"),
    "Local/ListDir": ("uu", "light.DirRequest", "light.ListDirResponse"),
    "Local/ReadFileLines": ("us", "light.ReadText", "system.Binary"),
    "Local/Exists": ("uu", "light.DirRequest", "light.ExistsResponse"),
    "World/GetTaskResult": ("us", "light.LightResultQuery", "results.ChunkResultValues"),
    "World/AddTaskResult": ("su", "light.LightResult", "system.Ok"),
    "World/GetGlobal": ("us", "light.GetGlobalRequest", "results.GlobalValue"),
    "World/SetGlobal": ("su", "light.SetGlobalRequest", "system.Ok"),
    "World/StopSwarm": ("uu", "system.EnvId", "system.Ok"),
    "World/ScheduleTask": ("uu", "tasks.TaskScheduling", "system.Ok"),
}


def _pb(name):
    mod, cls = name.split(".")
    if mod == "light":
        from node import light_service_pb2 as m
    elif mod == "system":
        from common import system_pb2 as m
    elif mod == "results":
        from common import results_pb2 as m
    else:
        from common import tasks_pb2 as m
    return getattr(m, cls)


def pair(h):
    """32-hex text (or an int) -> common.system.PairId."""
    from common import system_pb2
    v = h if isinstance(h, int) else int(h, 16)
    return system_pb2.PairId(head=v >> 64, tail=v & ((1 << 64) - 1))


def pair_hex(p):
    return "%032x" % ((p.head << 64) | p.tail)


def random_hex():
    return os.urandom(16).hex()


def zipapp(main):
    """A task payload for the Python image: a zipapp with main (source
    text) as __main__.py and build/py's generated modules beside it."""
    import io
    import zipfile
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("__main__.py", main)
        for sub in ("common", "node"):
            d = os.path.join(PYGEN, sub)
            for name in sorted(os.listdir(d)):
                if name.endswith(".py"):
                    z.write(os.path.join(d, name), "%s/%s" % (sub, name))
    return buf.getvalue()


class LightClient(object):
    """Python gRPC client of node.light_service.Local/World (no stubs: the
    generated modules hold messages only). call() returns the response, a
    list of them for server streams; it raises grpc.RpcError on failure."""

    def __init__(self, target, token=None):
        import grpc
        self.grpc = grpc
        self.channel = grpc.insecure_channel(
            target, options=[("grpc.max_receive_message_length", -1),
                             ("grpc.max_send_message_length", -1)])
        self.token = token

    def close(self):
        self.channel.close()

    def msg(self, method, **kw):
        return _pb(LIGHT_METHODS[method][1])(**kw)

    def stub(self, method):
        kind, req, resp = LIGHT_METHODS[method]
        path = "/node.light_service.%s" % method
        ser = _pb(req).SerializeToString
        de = _pb(resp).FromString
        f = {"uu": self.channel.unary_unary, "us": self.channel.unary_stream,
             "su": self.channel.stream_unary}[kind]
        return f(path, request_serializer=ser, response_deserializer=de)

    def call(self, method, req, timeout=10, token=None, raw=False):
        """req: a message, or an iterable of them for client streams. With
        raw, the stream's iterator is returned unconsumed."""
        tok = token if token is not None else self.token
        md = [("manta-task-token", tok)] if tok else None
        kind = LIGHT_METHODS[method][0]
        r = self.stub(method)(req, timeout=deadline(timeout), metadata=md)
        if kind == "us" and not raw:
            return list(r)
        return r


def grpc_code(fn):
    """Runs fn(); returns the grpc.StatusCode it failed with (OK if none)."""
    import grpc
    try:
        fn()
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK


class FakeExec(object):
    """Answers TaskLookup on <run_dir>/exec.sock as mantad-exec does, from a
    table the test fills: add_task(swarm_hex, task_hex, token=..., ...).
    For tests of mantad-light alone (no containers)."""

    def __init__(self, run_dir):
        self.run_dir = run_dir
        self.tasks = []
        self.lookups = []
        self.silent = False         # stop answering (exec hung)
        self._stop = False
        self._thread = None

    def add_task(self, swarm_hex, task_hex, token=None, iteration=0, circular=0,
                 running=True):
        self.tasks.append(dict(swarm=swarm_hex, task=task_hex, token=token,
                               iteration=iteration, circular=circular, running=running))

    def start(self):
        import threading
        import zmq
        os.makedirs(self.run_dir, mode=0o700, exist_ok=True)
        self._sock = zmq.Context.instance().socket(zmq.ROUTER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.bind("ipc://%s/exec.sock" % self.run_dir)
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop = True
        if self._thread is not None:
            self._thread.join(5)
        self._sock.close()

    def _answer(self, lk):
        import ipc_pb2
        ti = ipc_pb2.TaskIdentity()
        for t in self.tasks:
            if lk.token:
                if t["token"] != lk.token:
                    continue
            elif (pair_hex(lk.swarm_id), pair_hex(lk.task_id)) != (t["swarm"], t["task"]):
                continue
            ti.found = True
            ti.swarm_id.CopyFrom(pair(t["swarm"]))
            ti.task_id.CopyFrom(pair(t["task"]))
            ti.iteration = t["iteration"]
            ti.circular = t["circular"]
            ti.running = t["running"]
            ti.token_matched = bool(lk.token)
            break
        return ipc_pb2.Msg(task_identity=ti)

    def _loop(self):
        import zmq
        import ipc_pb2
        while not self._stop:
            if not self._sock.poll(100, zmq.POLLIN):
                continue
            frames = self._sock.recv_multipart()
            m = ipc_pb2.Msg()
            m.ParseFromString(frames[-1])
            self.lookups.append(m)
            if self.silent:
                continue
            if m.WhichOneof("body") == "task_lookup":
                rep = self._answer(m.task_lookup)
            else:
                rep = ipc_pb2.Msg(reply=ipc_pb2.Reply(code=2, error="fake exec"))
            self._sock.send_multipart(frames[:-1] + [rep.SerializeToString()])


class LightDaemon(object):
    """bin/mantad-light run alone in the foreground with a Node's config
    (no supervisor), its stderr in <dir>/light.log; ready once it signalled
    readiness on the fd given with -r."""

    def __init__(self, node, env=None):
        self.node = node
        self.env = env
        self.proc = None
        self.logfile = os.path.join(node.dir, "light.log")

    def start(self, timeout=15):
        r, w = os.pipe()
        log = open(self.logfile, "a")
        env = dict(os.environ)
        env.update(self.env or {})
        try:
            # MANTA_TEST_LIGHT_WRAP: a command line to run it under (strace -f
            # ...); MANTA_TEST_LIGHT_BIN: another build of it (ASAN).
            wrap = os.environ.get("MANTA_TEST_LIGHT_WRAP", "").split()
            prog = os.environ.get("MANTA_TEST_LIGHT_BIN", LIGHT)
            self.proc = subprocess.Popen(wrap + [prog, "-c", self.node.config, "-r", str(w)],
                                         stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, pass_fds=(w,),
                                         env=env, start_new_session=True)
        finally:
            log.close()
            os.close(w)
        import select
        end = time.monotonic() + deadline(timeout)
        try:
            while time.monotonic() < end:
                if select.select([r], [], [], 0.1)[0]:
                    if os.read(r, 16):
                        return self
                    break
        finally:
            os.close(r)
        raise AssertionError("mantad-light not ready (exit %r):\n%s"
                             % (self.proc.poll(), self.log()))

    @property
    def pid(self):
        return self.proc.pid

    @property
    def port(self):
        return light_port(self.node.run_dir)

    def target(self):
        return "127.0.0.1:%d" % self.port

    def stop(self, timeout=10):
        _terminate(self.proc, grace=timeout)
        return self.proc.returncode

    def log(self):
        return read_log(self.logfile)


def light_port(run_dir):
    with open(os.path.join(run_dir, "light.port")) as f:
        return int(f.read().strip())


DAEMON_USER = "mantad-test"


def _system_account(name, group_args):
    """The pwd entry of system account name, made when missing and then
    kept (no home, no shell, no password); group_args: useradd's."""
    import pwd
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    r = subprocess.run(["useradd", "--system", "--no-create-home"] + group_args +
                       ["--shell", "/usr/sbin/nologin", name],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True)
    if r.returncode != 0 and "already exists" not in r.stderr:
        raise RuntimeError("useradd %s: %s" % (name, r.stderr))
    return pwd.getpwnam(name)


def daemon_account(name=DAEMON_USER):
    """The account for security.daemon_user tests, with its own group."""
    return _system_account(name, ["--user-group"])


LIGHT_USER = "mantad-test-light"


def light_account(name=LIGHT_USER, group=DAEMON_USER):
    """The account for security.light_user tests, in the group of the
    daemon_user test account (issue 13)."""
    daemon_account(group)
    return _system_account(name, ["--gid", group])


def status_file(path):
    """A /proc status file (/proc/PID/status, /proc/PID/task/TID/status)
    as a dict of strings."""
    out = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def sanitized(pid):
    """Whether process pid runs a sanitizer build (libasan mapped)."""
    with open("/proc/%d/maps" % pid) as f:
        return "libasan" in f.read()


def proc_status(pid):
    """/proc/PID/status as a dict of strings."""
    return status_file("/proc/%d/status" % pid)


def threads_status(pid):
    """{tid: status dict} of every thread of pid (a thread that ends
    meanwhile is left out)."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            out[int(tid)] = status_file("/proc/%d/task/%s/status" % (pid, tid))
        except OSError:
            pass
    return out


def rss_kb(pid):
    """(VmRSS, RssAnon) of pid in KiB."""
    st = proc_status(pid)
    return int(st["VmRSS"].split()[0]), int(st.get("RssAnon", "0 kB").split()[0])


class RssPeak(object):
    """Samples rss_kb(pid) every interval seconds in a thread of its own,
    from creation until stop(): peak is [VmRSS, RssAnon], the largest of
    each seen, in KiB."""

    def __init__(self, pid, interval=0.02):
        import threading
        self.pid, self.interval = pid, interval
        self.peak = [0, 0]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch)
        self._thread.start()

    def _watch(self):
        while not self._stop.is_set():
            rss, anon = rss_kb(self.pid)
            self.peak[0] = max(self.peak[0], rss)
            self.peak[1] = max(self.peak[1], anon)
            time.sleep(self.interval)

    def stop(self):
        self._stop.set()
        self._thread.join()
        return self.peak


def audit_show(node):
    """`mantactl audit show --json` of node, parsed."""
    r = mantactl("audit", "show", "--json", "-c", node.config)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def audit_keys(state_dir):
    """The audit chain's keys (mantactl(8) AUDIT) known from state_dir, by
    id: K = BLAKE2b-256 keyed with the secret key (secret.key there) or the
    32 bytes of audit.key, of "manta-node audit chain v1"."""
    import hashlib
    keys = {}
    for name in ("secret.key", "audit.key"):
        try:
            with open(os.path.join(state_dir, name), "rb") as f:
                raw = f.read()
        except OSError:
            continue
        raw = bytes.fromhex(raw.decode().strip()) if len(raw.strip()) == 64 else raw
        k = hashlib.blake2b(b"manta-node audit chain v1", key=raw, digest_size=32).digest()
        kid = hashlib.blake2b(b"manta-node audit key id", key=k, digest_size=8).hexdigest()
        keys[kid] = k
    return keys


def audit_chain_ok(path):
    """The audit trail's documented hash chain (mantactl(8) AUDIT), from a
    second implementation: every line's members start with seq, time,
    event and end with chain_key (the key's id), prev, hash; seq counts
    from 1; hash is BLAKE2b-256 keyed with the chain key over prev (64 hex)
    then the line without its last member, closed by '}'; prev is the hash
    before (64 zeros first). Returns the line count."""
    import hashlib
    keys = audit_keys(os.path.dirname(path))
    suffix = len(',"hash":"') + 64 + len('"}')
    prev = "0" * 64
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    assert lines[-1] == b"", "the file ends with a newline"
    for i, line in enumerate(lines[:-1], 1):
        o = json.loads(line)
        assert list(o)[:3] == ["seq", "time", "event"]
        assert list(o)[-3:] == ["chain_key", "prev", "hash"], list(o)
        assert o["chain_key"] in keys, "line %d: unknown key %s" % (i, o["chain_key"])
        assert o["seq"] == i and o["prev"] == prev
        assert line.endswith(b',"hash":"' + o["hash"].encode() + b'"}')
        body = line[:-suffix] + b"}"
        h = hashlib.blake2b(prev.encode() + body, digest_size=32,
                            key=keys[o["chain_key"]]).hexdigest()
        assert h == o["hash"], "line %d: hash" % i
        prev = h
    return len(lines) - 1


def audit_rows(state_dir):
    """Rows of <state_dir>/light.db's access table, as dicts."""
    import sqlite3
    db = sqlite3.connect("file:%s/light.db?mode=ro" % state_dir, uri=True)
    try:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM access ORDER BY id")]
    finally:
        db.close()


# ---- task containers (issue 4: mantad-exec; tests/test_2*_exec_*.py) ----

RUNTIMES = ("runc", "crun")
_runtime_probe = {}


def runtime_usable(name, rootfs):
    """(True, "") if the OCI runtime `name` can run a container here, else
    (False, why). Probed once per process with a bare `NAME run` of rootfs
    (crun refuses cgroup v1/v2 hybrid hosts with controllers on v2)."""
    if name in _runtime_probe:
        return _runtime_probe[name]
    path = shutil.which(name, path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    if path is None:
        _runtime_probe[name] = (False, "%s is not installed" % name)
        return _runtime_probe[name]
    d = tempfile.mkdtemp(prefix="mnt-probe-", dir="/tmp")
    try:
        cfg = {"ociVersion": "1.0.2",
               "process": {"terminal": False, "user": {"uid": 0, "gid": 0},
                           "args": ["/bin/true"], "cwd": "/",
                           "env": ["PATH=/bin"]},
               "root": {"path": rootfs, "readonly": True},
               "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
               "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}],
                         "resources": {"pids": {"limit": 16}},
                         "cgroupsPath": "/manta/probe-%d" % os.getpid()}}
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f)
        r = run([path, "--root", os.path.join(d, "root"), "run", "--bundle", d,
                 "probe-%d" % os.getpid()], timeout=30)
        if r.returncode == 0:
            _runtime_probe[name] = (True, "")
        else:
            _runtime_probe[name] = (False, "%s cannot run a container here: %s"
                                    % (name, (r.stderr or r.stdout).strip()[-300:]))
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return _runtime_probe[name]


def runtime_or_skip(name, rootfs):
    """name, when that OCI runtime can run a container of rootfs here; else
    the test is skipped, saying why."""
    ok, why = runtime_usable(name, rootfs)
    if not ok:
        import pytest
        pytest.skip(why)
    return name


def pick_runtime(rootfs):
    """The first of RUNTIMES that can run a container of rootfs here; the
    test is skipped when none can."""
    for rt in RUNTIMES:
        ok, _ = runtime_usable(rt, rootfs)
        if ok:
            return rt
    import pytest
    pytest.skip("no OCI runtime can run a container here")


def exec_sections(runtime, **kw):
    """Config overrides for a task test: small limits, so tests are quick and
    the host stays safe; kw: {"section": {key: value}} merged on top."""
    o = {"containers": {"runtime": runtime, "default_cpu_limit": "0.5",
                        "default_memory_limit": "128M"},
         "tasks": {"max_concurrent": 2, "task_timeout": 60, "retry_attempts": 1,
                   "cleanup_on_failure": True, "stream_logs": True},
         "resources": {"reserve_cpu_percent": 10, "reserve_memory_mb": 256}}
    for sec, kv in kw.items():
        o.setdefault(sec, {}).update(kv)
    return o


def task_msg(task_hex, script, swarm_hex="5a" * 16, iteration=0, circular=0,
             image="busybox", alias="task", network="None", gpu=False):
    """A common.tasks.MqttTask with a shell script payload (the "#!" extension)."""
    from devmanager import hex_to_pair
    from common import tasks_pb2
    if isinstance(script, str):
        script = script.encode()
    return tasks_pb2.MqttTask(swarm_id=hex_to_pair(swarm_hex),
                              task_id=hex_to_pair(task_hex), iteration=iteration,
                              circular=circular, payload=script, image=image,
                              alias=alias, network=network, auth_key="None",
                              login_server="None", gpu=gpu)


def task_updates(manager, task_hex=None):
    """[(task hex, iteration, circular, status)] of the TaskUpdates received."""
    from devmanager import pair_to_hex
    out = []
    for r in manager.task_updates:
        u = r.request
        if u is None:
            continue
        t = pair_to_hex(u.task_id)
        if task_hex is None or t == task_hex:
            out.append((t, u.iteration, u.circular, u.task_status))
    return out


def wait_disconnected(manager, node_id, after, timeout=15):
    """Waits for a manager/set_node_status DISCONNECTED about node_id
    published after `after`; returns it."""
    from devmanager import pair_to_hex
    from common import informations_pb2 as info_pb
    return manager.wait_message(
        "manager/set_node_status", timeout=deadline(timeout), after=after,
        pred=lambda r: r.request is not None
        and pair_to_hex(r.request.node_id) == node_id
        and r.request.status == info_pb.DISCONNECTED)


def wait_task_status(manager, task_hex, statuses, timeout=30):
    """Waits for a TaskUpdate of task_hex with a status in statuses; returns it."""
    from devmanager import pair_to_hex
    if isinstance(statuses, int):
        statuses = (statuses,)
    return manager.wait_message(
        "manager/update_task_status", timeout=deadline(timeout),
        pred=lambda r: r.request is not None and r.request.task_status in statuses
        and pair_to_hex(r.request.task_id) == task_hex).request


def task_log_text(manager, task_hex):
    """Everything AddTaskLogs carried for task_hex, frames in arrival order."""
    with manager.lock:
        frames = [d for d in manager.logs if d["task_id"] == task_hex]
    return "".join(d["text"] for d in frames)


def exec_leftovers(node, runtime):
    """What a task may leave behind on this node: containers in its runtime
    root, cgroups named after its containers, bundles. Empty lists when clean."""
    root = os.path.join(node.state_dir, "runtime-root")
    path = shutil.which(runtime, path="/usr/sbin:/usr/bin:/sbin:/bin") or runtime
    r = run([path, "--root", root, "list", "-q"], timeout=30)
    containers = [l for l in r.stdout.split() if l.strip()] if r.returncode == 0 else []
    cgroups = []
    for base in ("/sys/fs/cgroup", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids",
                 "/sys/fs/cgroup/cpu"):
        d = os.path.join(base, "manta")
        try:
            names = os.listdir(d)
        except OSError:
            continue
        # Only this node's containers: their ids carry the bundle's run ids,
        # and the node's state dir hash; match on what its database named.
        cgroups += [os.path.join(d, n) for n in names
                    if n.startswith("manta-") and n in exec_container_ids(node)]
    try:
        bundles = os.listdir(os.path.join(node.state_dir, "tasks"))
    except OSError:
        bundles = []
    return {"containers": containers, "cgroups": cgroups, "bundles": bundles}


def exec_container_ids(node):
    """Every container id mantad-exec recorded for this node (exec.db)."""
    import sqlite3
    try:
        db = sqlite3.connect("file:%s/exec.db?mode=ro" % node.state_dir, uri=True,
                             timeout=5)
    except sqlite3.Error:
        return set()
    try:
        rows = db.execute("SELECT cid, attempts FROM run").fetchall()
    except sqlite3.Error:
        return set()
    finally:
        db.close()
    ids = set()
    for cid, attempts in rows:
        if cid:
            base = cid.rsplit("-", 1)[0]
            ids.update("%s-%d" % (base, a) for a in range(1, (attempts or 1) + 1))
    return ids


def cgroup_pids(node, runtime, cid):
    """pids.current of a running container's cgroup (v1 or v2), or None."""
    for p in ("/sys/fs/cgroup/pids/manta/%s/pids.current" % cid,
              "/sys/fs/cgroup/manta/%s/pids.current" % cid):
        try:
            with open(p) as f:
                return int(f.read())
        except OSError:
            continue
    return None


def exec_node(manager, make_node, rootfs, runtime, **sections):
    """A started, online node running tasks with runtime, the busybox image
    imported from rootfs; node.node_id set. sections: config overrides."""
    n = make_node(manager.grpc_port, overrides=exec_sections(runtime, **sections))
    r = image_import(n.config, "busybox", rootfs)
    assert r.returncode == 0, r.stderr
    n.start()
    n.node_id = n.wait_online(30)["node_id"]
    return n


class LightEnv(object):
    """mantad-light alone for host-side tests: a dev manager (gRPC only), a
    node directory with datasets/ (mappings given), a fake mantad-exec that
    knows one running task (self.swarm, self.task, self.token), and the
    daemon itself. cleanup() stops all of it."""

    def __init__(self, mappings=None, overrides=None, env=None, start=True,
                 manager_tls=None):
        from devmanager import DevManager
        self.manager = DevManager(grpc_port=free_port(), broker_port=None,
                                  token=TOKEN, tls=manager_tls).start()
        ov = {"datasets": {"mappings": mappings or {}}}
        for sec, kv in (overrides or {}).items():
            ov.setdefault(sec, {}).update(kv)
        self.node = Node(self.manager.grpc_port, overrides=ov)
        self.datasets = os.path.join(self.node.dir, "datasets")
        os.makedirs(self.datasets, exist_ok=True)
        os.makedirs(self.node.state_dir, mode=0o700, exist_ok=True)
        self.node_id = random_hex()
        with open(os.path.join(self.node.state_dir, "identity"), "w") as f:
            f.write(self.node_id + "\n")
        self.swarm, self.task = random_hex(), random_hex()
        self.token = os.urandom(16).hex()
        self.exec = FakeExec(self.node.run_dir).start()
        self.exec.add_task(self.swarm, self.task, token=self.token, iteration=7, circular=1)
        self.daemon = LightDaemon(self.node, env=env)
        self.clients = []
        if start:
            self.start()

    def start(self):
        self.daemon.start()
        return self

    def client(self, token=None):
        c = LightClient(self.daemon.target(), token=token)
        self.clients.append(c)
        return c

    def data_request(self, name, swarm=None, task=None):
        from node import light_service_pb2 as L
        return L.DataRequest(swarm_id=pair(swarm or self.swarm),
                             task_id=pair(task or self.task), name=name)

    def dir_request(self, name, path="", swarm=None, task=None):
        from node import light_service_pb2 as L
        return L.DirRequest(data_request=self.data_request(name, swarm, task), path=path)

    def read_text(self, name, path, **kw):
        from node import light_service_pb2 as L
        return L.ReadText(data_request=self.data_request(name), path=L.ProtoPath(value=path),
                          **kw)

    def cleanup(self):
        for c in self.clients:
            c.close()
        try:
            if self.daemon.proc is not None:
                self.daemon.stop()
        finally:
            self.exec.stop()
            self.manager.stop()
            self.node.cleanup()
