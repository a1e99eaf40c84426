"""nodelib: the one helper module of the integration tests (as mosquitto's
test/mosq_test.py): free ports, a real mosquitto, a node instance driven
through bin/mantactl, condition waits with deadlines, process lookups.

Environment:
  MANTA_TEST_VALGRIND=1   run mantactl under valgrind (deadlines x4)
  MANTA_TEST_TIMEOUT_SCALE=N   multiply every deadline by N
  MANTA_TEST_KEEP=1       keep each node's temp dir (config, logs, state)
  MANTA_TEST_LOGLEVEL=L   logging.level in the generated configs (INFO)
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
BIN = os.path.join(ROOT, "bin")
PYGEN = os.path.join(ROOT, "build", "py")
if PYGEN not in sys.path:
    sys.path.insert(0, PYGEN)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

MANTACTL = os.path.join(BIN, "mantactl")
MOSQUITTO = "/usr/sbin/mosquitto"
TOKEN = "aaa.bbb.ccc"
DAEMONS = ("mantad-res", "mantad-register", "mantad-beat")

VALGRIND = bool(os.environ.get("MANTA_TEST_VALGRIND"))
SCALE = float(os.environ.get("MANTA_TEST_TIMEOUT_SCALE", "4" if VALGRIND else "1"))
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

    def __init__(self, port=None, dir=None):
        self.port = port or free_port()
        self.host = "127.0.0.1"
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
        try:
            with open(self.logfile) as f:
                return f.read()
        except OSError:
            return ""

    def cleanup(self):
        self.kill()
        if not KEEP:
            shutil.rmtree(self.dir, ignore_errors=True)


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
        "security": {"use_tls": False, "cert_folder": os.path.join(d, "certs"),
                     "verify_ssl": True, "token_refresh_interval": 3600},
        "paths": {"run_dir": os.path.join(d, "run"),
                  "state_dir": os.path.join(d, "state")},
    }


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

    def stop(self, timeout=15):
        """`mantactl stop -c FILE`, then waits for the supervisor and every
        daemon of this instance to exit. Returns the stop command's result."""
        r = mantactl("stop", "-c", self.config, timeout=timeout)
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
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, n=60):
        return "\n".join(self.log().splitlines()[-n:])

    def remove(self):
        if not KEEP:
            shutil.rmtree(self.dir, ignore_errors=True)

    def cleanup(self, remove=True):
        """Stops everything of this instance, whatever state it is in."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
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
