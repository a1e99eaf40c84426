#!/usr/bin/python3
"""chaos: a node under fire (issue 6; `make chaos`, and in short form
tests/test_79_chaos_short.py).

A real mosquitto (persistent, as in production), the development manager
(persistent MQTT session), and a node running tasks with runc. The driver
deploys many short tasks (CHAOS_TASKS, default 300), each printing a
numbered line count and exiting 0 or 3, while:

  - every 2-5 s a random daemon of the node gets SIGKILL (the supervisor
    restarts it);
  - every 15-25 s the broker or the manager's gRPC side is restarted;
  - after 10-20 s, then every 40-70 s, a burst of deploys (CHAOS_BURST, default 50-200, taken
    from the CHAOS_TASKS budget) is published at once: all QoS 1 publishes
    go out in a tight loop before any acknowledgement is awaited (issue 15).

Each deploy is published once, with QoS 1, and never again: the node
keeps a persistent MQTT session with QoS 1 subscriptions, so the broker
holds what is published while mantad-beat restarts or the connection is
down, and beat never drops a command it received (issue 15). A deploy that
gets no update within GIVE_UP_S no longer holds a slot of the driver and
counts as lost. When every task is deployed, the chaos stops and the node
gets CHAOS_SETTLE seconds (default 180) to report. Then:

  - every task has exactly one terminal update at the manager (COMPLETED
    for exit 0, FAILED for exit 3): a task without one is lost, a second
    one is duplicated;
  - every task's output arrived whole: each missing line is lost, each
    line received twice is duplicated;
  - no container, cgroup or bundle is left, and the node is online.

The last line printed is
    tasks=N kills=K restarts=R lost=L duplicated=D
(D counts log lines: one AddTaskLogs frame received twice counts each of
its lines; the line before splits D into terminal updates, RUNNING
updates and log lines, with the number of frames received twice whole).
Each doubled task is listed with the arrival times of its updates and
frames, and a copy with the faults injected between the first and it.
The exit status is 0 when nothing was lost, duplicated or left.

Environment: CHAOS_TASKS, CHAOS_SECONDS (chaos budget, default 900),
CHAOS_BURST (burst sizes "LO-HI", default 50-200; 0 for none),
CHAOS_SETTLE, CHAOS_SEED, CHAOS_CONCURRENT (tasks.max_concurrent, 3),
CHAOS_VERBOSE=1 (print each event), MANTA_TEST_KEEP=1 (keep the dirs).
"""

import os
import random
import signal
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import faultlib  # noqa: E402
import nodelib  # noqa: E402

DAEMONS = ("mantad-res", "mantad-register", "mantad-beat", "mantad-exec",
           "mantad-light")
GIVE_UP_S = 120         # no update for this long: lost (counted so at the end)


def log(verbose, msg):
    if verbose:
        sys.stderr.write("chaos: %7.1f %s\n" % (time.monotonic() - T0, msg))
        sys.stderr.flush()


T0 = time.monotonic()


def task_script(lines, code):
    return ("#!/bin/sh\ni=0\nwhile [ $i -lt %d ]; do echo \"line $i\"; i=$((i+1));"
            " sleep 0.1; done\nexit %d\n" % (lines, code))


class Chaos(object):
    def __init__(self, ntasks, seconds, settle, seed, concurrent, verbose,
                 burst=(50, 200)):
        self.ntasks = ntasks
        self.burst = burst      # (lo, hi) deploys per burst, or None
        self.bursts = 0
        self.seconds = seconds
        self.settle = settle
        self.seed = seed
        self.rng = random.Random(seed)
        self.concurrent = concurrent
        self.verbose = verbose
        self.kills = 0
        self.restarts = 0
        self.tasks = {}         # hex -> dict(lines, code, deployed_at, sends)
        self.broker = self.manager = self.node = None
        self.dirs = []
        self.peaks = {"mqtt": 0, "logs": 0}
        self.events = []        # (monotonic time, what): the faults injected

    # ---- set-up ----

    def setup(self):
        import shutil
        d = tempfile.mkdtemp(prefix="mnt-chaos-", dir="/tmp")
        self.dirs.append(d)
        # The programs as built now: a rebuild of bin/ during a long run
        # (the shared tree) must not pull binaries from under it.
        bindir = os.path.join(d, "bin")
        os.makedirs(bindir)
        for f in os.listdir(nodelib.BIN):
            if f == "mantactl" or f.startswith("mantad-"):
                shutil.copy2(os.path.join(nodelib.BIN, f), bindir)
        self.saved_mantactl = nodelib.MANTACTL
        nodelib.MANTACTL = os.path.join(bindir, "mantactl")
        rootfs = nodelib.busybox_rootfs(os.path.join(d, "rootfs"))
        ok, why = nodelib.runtime_usable("runc", rootfs)
        if not ok:
            raise SystemExit("chaos: %s" % why)
        self.broker = faultlib.PersistentBroker().start()
        self.manager = faultlib.Manager(grpc_port=nodelib.free_port(),
                                        broker_host=self.broker.host,
                                        broker_port=self.broker.port,
                                        token=nodelib.TOKEN).start()
        self.manager.wait_mqtt(15)
        ov = nodelib.exec_sections("runc", tasks={"max_concurrent": self.concurrent,
                                                  "task_timeout": 120})
        ov["mqtt"] = {"reconnect_delay": 1.0}
        self.node = nodelib.Node(self.manager.grpc_port, overrides=ov)
        r = nodelib.image_import(self.node.config, "busybox", rootfs)
        assert r.returncode == 0, r.stderr
        self.node.start()
        self.node.node_id = self.node.wait_online(60)["node_id"]

    def cleanup(self):
        for f in (lambda: self.node and self.node.cleanup(),
                  lambda: self.manager and self.manager.stop(),
                  lambda: self.broker and self.broker.cleanup()):
            try:
                f()
            except Exception as e:
                sys.stderr.write("chaos: cleanup: %s\n" % e)
        if getattr(self, "saved_mantactl", None):
            nodelib.MANTACTL = self.saved_mantactl
        if not nodelib.KEEP:
            import shutil
            for d in self.dirs:
                shutil.rmtree(d, ignore_errors=True)

    # ---- the manager's side ----

    def deploy(self, t, wait=True):
        info = self.tasks[t]
        msg = nodelib.task_msg(t, task_script(info["lines"], info["code"]),
                               swarm_hex="c5" * 16)
        pub = None
        try:
            pub = self.manager.deploy_task(self.node.node_id, msg, wait=wait)
        except (AssertionError, RuntimeError, ValueError):
            # Not acknowledged in time (the broker is away): the manager's
            # MQTT client keeps it and sends it on reconnection; never
            # published a second time by us.
            log(self.verbose, "deploy %s not acknowledged yet" % t[-6:])
        info["sent_at"] = time.monotonic()
        info["sends"] += 1
        return pub

    def new_task(self, lines):
        t = "%032x" % (0xc4a05 << 100 | len(self.tasks))
        self.tasks[t] = dict(lines=lines, code=0 if self.rng.random() < 0.8 else 3,
                             sent_at=0, sends=0, patience=GIVE_UP_S)
        return t

    def updates(self):
        """{task: [statuses]} from the manager's records."""
        out = {}
        for t, _it, _c, st in nodelib.task_updates(self.manager):
            out.setdefault(t, []).append(st)
        return out

    def pump(self):
        """Deploys new tasks while fewer than INFLIGHT wait. A task without
        any update GIVE_UP_S after its one deploy is given up (lost)."""
        ups = self.updates()
        now = time.monotonic()
        open_ = []
        for t, info in self.tasks.items():
            if any(s in faultlib.FINAL for s in ups.get(t, [])):
                continue
            if not ups.get(t) and now - info["sent_at"] > info["patience"]:
                if not info.get("given_up"):
                    info["given_up"] = True
                    log(True, "no update for %s %d s after its deploy: lost"
                        % (t[-6:], info["patience"]))
                continue
            open_.append(t)
        # Deployed and not yet ended, at most: a few wait in the queue.
        while len(open_) < 2 * self.concurrent + 2 and len(self.tasks) < self.ntasks:
            t = self.new_task(self.rng.randint(5, 60))
            self.deploy(t)
            open_.append(t)
        return len(open_)

    # ---- faults ----

    def burst_once(self):
        """A burst of short deploys from the task budget, all published
        (QoS 1, each once) before any acknowledgement is awaited."""
        n = min(self.rng.randint(*self.burst), self.ntasks - len(self.tasks))
        if n <= 0:
            return
        t0 = time.monotonic()
        pubs = []
        for i in range(n):
            t = self.new_task(self.rng.randint(1, 3))
            # Queued behind i others at the node: as many more seconds.
            self.tasks[t]["patience"] = GIVE_UP_S + i
            pubs.append(self.deploy(t, wait=False))
        sent = time.monotonic() - t0
        end = time.monotonic() + 10
        acked = 0
        for p in pubs:
            # paho raises for one not sent yet (the manager's client is
            # disconnected): it holds it and sends it on reconnection.
            try:
                p.wait_for_publish(timeout=max(0.1, end - time.monotonic()))
                acked += p.is_published()
            except (AttributeError, RuntimeError, ValueError):
                pass
        self.bursts += 1
        # Not acknowledged yet: the manager's client holds it and sends it
        # on reconnection, as for a single deploy.
        log(True, "burst of %d deploys published in %.3f s, %d acknowledged in"
            " %.1f s" % (n, sent, acked, time.monotonic() - t0))

    def kill_one(self):
        name = self.rng.choice(DAEMONS)
        pid = self.node.pids().get(name)
        if not pid:
            return
        try:
            os.kill(pid, signal.SIGKILL)
            self.events.append((time.monotonic(), "kill " + name[len("mantad-"):]))
            self.kills += 1
            log(self.verbose, "SIGKILL %s (%d)" % (name, pid))
        except ProcessLookupError:
            pass

    def restart_one(self):
        if self.rng.random() < 0.5:
            log(self.verbose, "broker restart")
            self.events.append((time.monotonic(), "broker stop"))
            self.broker.stop()
            time.sleep(self.rng.uniform(0.2, 2.0))      # an outage of some length
            self.broker.start()
        else:
            log(self.verbose, "manager restart")
            self.events.append((time.monotonic(), "manager stop"))
            self.manager.stop_grpc()
            time.sleep(self.rng.uniform(0.2, 3.0))      # an outage of some length
            self.manager.start_grpc()
        self.restarts += 1

    # ---- the run ----

    def run(self):
        end = time.monotonic() + self.seconds
        next_kill = time.monotonic() + self.rng.uniform(2, 5)
        next_restart = time.monotonic() + self.rng.uniform(15, 25)
        next_burst = (time.monotonic() + self.rng.uniform(10, 20) if self.burst
                      else float("inf"))
        next_sample = time.monotonic()
        seen = 0
        while time.monotonic() < end:
            left = self.pump()
            if len(self.tasks) >= self.ntasks and left == 0:
                break
            now = time.monotonic()
            if now >= next_kill:
                self.kill_one()
                next_kill = now + self.rng.uniform(2, 5)
            if now >= next_restart:
                self.restart_one()
                next_restart = time.monotonic() + self.rng.uniform(15, 25)
            if now >= next_burst:
                self.burst_once()
                next_burst = time.monotonic() + self.rng.uniform(40, 70)
            if now >= next_sample:
                self.sample()
                next_sample = time.monotonic() + 2
            # Idle until the manager hears something (an update to act on)
            # or the next fault or sample is due.
            due = min(next_kill, next_restart, next_burst, next_sample, end)
            seen = self.manager.wait_more(seen, max(0.0, due - time.monotonic()))
        log(True, "chaos over after %.0f s: %d tasks deployed (each once), %d kills,"
            " %d restarts, %d bursts" % (time.monotonic() - T0, len(self.tasks),
                                         self.kills, self.restarts, self.bursts))
        # Settle: no more faults, no deploy sent again.
        end = time.monotonic() + self.settle
        while time.monotonic() < end:
            left = self.pump()
            if left == 0 and self.logs_whole():
                break
            # Until the manager hears something more (at most 1 s, so a
            # task's lost-deadline is still noticed on time).
            seen = self.manager.wait_more(seen, min(1.0, max(0.0, end - time.monotonic())))
        return self.verdict()

    def texts(self):
        """{task: its output as received}, frames in arrival order."""
        out = {}
        with self.manager.lock:
            frames = list(self.manager.logs)
        for d in frames:
            out[d["task_id"]] = out.get(d["task_id"], "") + d["text"]
        return out

    def resent(self, task):
        """Why a task's log lines came twice: the same AddTaskLogs frame
        (same collection timestamp, same bytes) received twice is a re-send
        by mantad-register of a frame the manager had answered before
        register recorded it (killed in between: the at-least-once window
        of an upload that carries no id); anything else is not."""
        with self.manager.lock:
            frames = [(d.get("timestamp"), d["raw"]) for d in self.manager.logs
                      if d["task_id"] == task]
        again = len(frames) - len(set(frames))
        return (" (%d AddTaskLogs frame(s) received twice whole: re-sent by"
                " mantad-register)" % again if again else
                " (no frame received twice whole)")

    def when(self, task):
        """Where a doubled task's records fall in the run's event log (the
        times printed with CHAOS_VERBOSE): its TaskUpdates (status@time,
        "d" for a broker redelivery filtered out) and AddTaskLogs frames
        (lines first-last@time, "*" for a frame received before whole)."""
        from devmanager import pair_to_hex
        ups, had = [], {}
        for r in self.manager.messages("manager/update_task_status"):
            u = r.request
            if u is not None and pair_to_hex(u.task_id) == task:
                again = (self.between(had[u.task_status], r.time)
                         if u.task_status in had and not r.extra.get("dup") else "")
                had.setdefault(u.task_status, r.time)
                ups.append("%d@%.1f%s%s" % (u.task_status, r.time - T0,
                                            "d" if r.extra.get("dup") else "", again))
        frames, seen, first = [], set(), {}
        for r in self.manager.calls("AddTaskLogs", accepted_only=True):
            lg = r.extra.get("log")
            if not lg or lg["task_id"] != task:
                continue
            key = b"".join(q.SerializeToString() for q in r.requests or [])
            nums = [l.split()[1] for l in lg.get("text", "").splitlines()
                    if l.startswith("line ")] if "text" in lg else []
            frames.append("%s@%.1f%s" % ("%s-%s" % (nums[0], nums[-1]) if nums else "?",
                                         r.time - T0, "*" + self.between(first[key], r.time)
                                         if key in seen else ""))
            seen.add(key)
            first.setdefault(key, r.time)
        return " updates [%s] frames [%s]" % (" ".join(ups), " ".join(frames))

    def between(self, t1, t2):
        """The faults injected from 1 s before t1 to t2: what made a copy."""
        return "(after %s)" % (", ".join("%s@%.1f" % (w, t - T0) for t, w in self.events
                                          if t1 - 1 <= t <= t2) or "no fault")

    def frames_twice(self, task):
        """How many AddTaskLogs frames of a task came again whole."""
        with self.manager.lock:
            frames = [(d.get("timestamp"), d["raw"]) for d in self.manager.logs
                      if d["task_id"] == task]
        return len(frames) - len(set(frames))

    def logs_whole(self):
        texts = self.texts()
        for t, info in self.tasks.items():
            lost, dup = faultlib.check_lines(texts.get(t, ""), info["lines"])
            if lost:
                return False
        return True

    def sample(self):
        """Outbox depths from mantactl status (peaks kept)."""
        try:
            rc, st = self.node.status(timeout=5)
        except OSError:
            return
        if rc == 0 and st:
            for k, sec in (("mqtt", "mqtt"), ("logs", "manager")):
                v = st.get(sec, {}).get("outbox") or 0
                self.peaks[k] = max(self.peaks[k], v)

    def verdict(self):
        ups = self.updates()
        texts = self.texts()
        lost = dup = 0
        kinds = dict(final=0, running=0, lines=0, frames=0)
        problems = []
        for t, info in sorted(self.tasks.items()):
            fin = [s for s in ups.get(t, []) if s in faultlib.FINAL]
            want = faultlib.COMPLETED if info["code"] == 0 else faultlib.FAILED
            if not fin:
                lost += 1
                problems.append("%s: no terminal update (%r)" % (t, ups.get(t)))
            elif len(fin) > 1:
                dup += len(fin) - 1
                kinds["final"] += len(fin) - 1
                problems.append("%s: %d terminal updates %r%s" % (t, len(fin), ups[t],
                                                                  self.when(t)))
            if fin and fin[0] != want:
                lost += 1
                problems.append("%s: ended %d, expected %d (its output: %r)" % (
                    t, fin[0], want, texts.get(t, "")[-200:]))
            if ups.get(t, []).count(faultlib.RUNNING) > 1:
                dup += ups[t].count(faultlib.RUNNING) - 1
                kinds["running"] += ups[t].count(faultlib.RUNNING) - 1
                problems.append("%s: RUNNING %d times%s" % (t, ups[t].count(faultlib.RUNNING),
                                                            self.when(t)))
            lo, du = faultlib.check_lines(texts.get(t, ""), info["lines"])
            if lo or du:
                problems.append("%s: log lines lost %r duplicated %r%s%s" % (
                    t, lo, du, self.resent(t) if du else "", self.when(t) if du else ""))
            lost += len(lo)
            dup += len(du)
            kinds["lines"] += len(du)
            kinds["frames"] += self.frames_twice(t) if du else 0
        leftovers = {}
        try:
            st = self.node.wait_online(60)
            online = True
        except AssertionError as e:
            st, online = None, False
            problems.append("node not online: %s" % str(e)[:500])
        try:
            nodelib.wait_for(lambda: not any(
                nodelib.exec_leftovers(self.node, "runc").values()), 60,
                "nothing left behind")
        except AssertionError:
            leftovers = nodelib.exec_leftovers(self.node, "runc")
            problems.append("left behind: %r" % leftovers)
        if st is not None:
            problems += ["daemon %s restarted %d times" % (d["name"], d["restarts"])
                         for d in st["daemons"] if d["restarts"] and self.verbose]
        for p in problems:
            sys.stderr.write("chaos: %s\n" % p)
        return dict(tasks=len(self.tasks), kills=self.kills, restarts=self.restarts,
                    bursts=self.bursts,
                    lost=lost, duplicated=dup, dup_kinds=kinds, leftovers=leftovers,
                    online=online,
                    peaks=dict(self.peaks),
                    ok=lost == 0 and dup == 0 and not leftovers and online
                    and len(self.tasks) == self.ntasks)


def burst_sizes(text):
    """"LO-HI" or "N" -> (lo, hi); "0" -> None (no bursts)."""
    lo, _, hi = text.partition("-")
    lo, hi = int(lo), int(hi or lo)
    if lo < 0 or hi < lo:
        raise SystemExit("chaos: CHAOS_BURST %r: want LO-HI, 0 <= LO <= HI" % text)
    return (lo, hi) if hi > 0 else None


def run(ntasks=None, seconds=None, settle=None, seed=None, concurrent=None, verbose=None,
        burst=None):
    env = os.environ
    c = Chaos(ntasks or int(env.get("CHAOS_TASKS", "300")),
              seconds or float(env.get("CHAOS_SECONDS", "900")),
              settle or float(env.get("CHAOS_SETTLE", "180")),
              seed if seed is not None else int(env.get("CHAOS_SEED", str(int(time.time())))),
              concurrent or int(env.get("CHAOS_CONCURRENT", "3")),
              verbose if verbose is not None else bool(env.get("CHAOS_VERBOSE")),
              burst if burst is not None else burst_sizes(env.get("CHAOS_BURST", "50-200")))
    log(True, "seed %d, %d tasks" % (c.seed, c.ntasks))
    try:
        c.setup()
        res = c.run()
    finally:
        c.cleanup()
    return res


def main():
    res = run()
    print("outbox_peak_mqtt=%d outbox_peak_logs=%d leftovers=%r online=%s bursts=%d"
          % (res["peaks"]["mqtt"], res["peaks"]["logs"], res["leftovers"], res["online"],
             res["bursts"]))
    # duplicated counts lines: one frame sent again counts each of its lines.
    print("duplicated: final_updates=%(final)d running_updates=%(running)d"
          " log_lines=%(lines)d (frames received twice whole: %(frames)d)" % res["dup_kinds"])
    print("tasks=%d kills=%d restarts=%d lost=%d duplicated=%d" % (
        res["tasks"], res["kills"], res["restarts"], res["lost"], res["duplicated"]))
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
