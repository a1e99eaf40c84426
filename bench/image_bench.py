#!/usr/bin/python3
"""Image pulls (issue 12), printed, never asserted:

- pull + unpack time of a ~100 MB image (busybox, then host libraries, in
  two layers) from Debian's docker-registry on loopback (plain HTTP),
  `mantactl image pull` against `skopeo copy` + `umoci raw unpack` run by
  hand in the same run (median of BENCH_IMAGE_ROUNDS, default 5, interleaved), and the
  ratio;
- peak RSS of each one's process tree during the pull (sampled every 20 ms);
- node memory during a pull on deploy: the RSS of mantad-exec and of the
  whole node (supervisor, daemons, the pull child, skopeo, umoci) before and
  at peak while a deploy pulls the image (BENCH_IMAGE_NODE=0 skips it)."""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

import imagelib  # noqa: E402
import nodelib  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_IMAGE_ROUNDS", "5"))
NODE = os.environ.get("BENCH_IMAGE_NODE", "1") != "0"
TARGET = 100 << 20


def children(pid):
    """Descendants of pid, forked by any of its threads."""
    out, kids = [], []
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                kids += [int(x) for x in f.read().split()]
        except OSError:
            pass
    for k in kids:
        out.append(k)
        out.extend(children(k))
    return out


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class TreePeak(object):
    """Peak of the summed RSS of pid and its descendants."""

    def __init__(self, pids):
        self.pids = pids
        self.peak = 0
        self.by = {}
        self.stop = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop:
            tree = []
            for p in self.pids():
                tree.append(p)
                tree.extend(children(p))
            total = 0
            for p in set(tree):
                kb = rss_kb(p)
                total += kb
                argv = nodelib.proc_cmdline(p) if kb else None
                name = os.path.basename(argv[0]) if argv else None
                if name:
                    self.by[name] = max(self.by.get(name, 0), kb)
            self.peak = max(self.peak, total)
            time.sleep(0.02)

    def done(self):
        self.stop = True
        self.t.join()
        return self.peak


def fill(rootfs):
    """Host libraries into rootfs/payload until about TARGET bytes."""
    dest = os.path.join(rootfs, "payload")
    os.makedirs(dest)
    total = 0
    for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/python3", "/usr/share"):
        for root, dirs, files in os.walk(d):
            for f in sorted(files):
                p = os.path.join(root, f)
                if os.path.islink(p) or not os.path.isfile(p):
                    continue
                n = os.path.getsize(p)
                if total + n > TARGET:
                    continue
                q = os.path.join(dest, "%06d-%s" % (total % 999983, f))
                shutil.copyfile(p, q)
                total += n
                if total > TARGET - (1 << 20):
                    return total
    return total


def build_image(d, bbroot):
    layout = os.path.join(d, "layout")
    imagelib.umoci("init", "--layout", layout)
    imagelib.umoci("new", "--image", layout + ":big")
    bundle = os.path.join(d, "bundle")
    imagelib.umoci("unpack", "--image", layout + ":big", bundle)
    root = os.path.join(bundle, "rootfs")
    imagelib.standin_rootfs(root, bbroot)
    imagelib.umoci("repack", "--image", layout + ":big", bundle)
    shutil.rmtree(bundle)
    imagelib.umoci("unpack", "--image", layout + ":big", bundle)
    size = fill(root)
    imagelib.umoci("repack", "--image", layout + ":big", bundle)
    imagelib.umoci("config", "--image", layout + ":big",
                   "--config.env", "PATH=/opt/py/bin:/usr/bin:/bin")
    shutil.rmtree(bundle)
    return layout + ":big", size


def timed(argv, env=None):
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         universal_newlines=True, env=env)
    peak = TreePeak(lambda: [p.pid])
    _, err = p.communicate()
    dt = time.monotonic() - t0
    kb = peak.done()
    if p.returncode != 0:
        raise RuntimeError("%s failed: %s" % (argv[:3], err))
    return dt, kb


def ours(cfg, ref, image_dir):
    shutil.rmtree(image_dir, ignore_errors=True)
    return timed([nodelib.MANTACTL, "image", "pull", ref, "--json", "-c", cfg])


def by_hand(ref, d):
    lay = os.path.join(d, "hand")
    t1, kb1 = timed(["skopeo", "copy", "--src-tls-verify=false",
                     "docker://" + ref, "oci:%s:img" % lay])
    t2, kb2 = timed(["umoci", "--log", "error", "raw", "unpack", "--image",
                     lay + ":img", os.path.join(lay, "rootfs")])
    shutil.rmtree(lay)
    return t1 + t2, max(kb1, kb2)


def node_memory(reg, ref, bbroot):
    from devmanager import DevManager
    from common import tasks_pb2
    broker = nodelib.Broker()
    broker.start()
    mgr = DevManager(broker_port=broker.port).start()
    node = None
    try:
        mgr.wait_mqtt(10)
        rt = nodelib.pick_runtime(bbroot)
        node = nodelib.Node(mgr.grpc_port, overrides=nodelib.exec_sections(
            rt, containers={"insecure_registries": [reg.host]}))
        node.start()
        node.node_id = node.wait_online(30)["node_id"]
        sup = node.proc.pid
        exec_pid = [d["pid"] for d in node.wait_ready()["daemons"]
                    if d["name"] == "mantad-exec"][0]
        time.sleep(2)
        before_node = sum(rss_kb(p) for p in [sup] + children(sup))
        before_exec = rss_kb(exec_pid)
        tree = TreePeak(lambda: [sup])
        ex_peak = [before_exec]
        stop = [False]

        def sample_exec():
            while not stop[0]:
                ex_peak[0] = max(ex_peak[0], rss_kb(exec_pid))
                time.sleep(0.02)
        th = threading.Thread(target=sample_exec, daemon=True)
        th.start()
        t = "b1" * 16
        t0 = time.monotonic()
        mgr.deploy_task(node.node_id, nodelib.task_msg(t, b"echo hi\n", image=ref))
        rec = mgr.wait_message(
            "manager/update_task_status", timeout=600,
            pred=lambda r: r.request is not None and r.request.task_status in
            (tasks_pb2.COMPLETED, tasks_pb2.FAILED))
        dt = time.monotonic() - t0
        stop[0] = True
        th.join()
        peak = tree.done()
        print("  pull on deploy, deploy to end of task: %.2f s (%s)" % (
            dt, "COMPLETED" if rec.request.task_status == tasks_pb2.COMPLETED else "FAILED"))
        print("  mantad-exec RSS: %.1f MiB before, %.1f MiB at peak during the pull"
              % (before_exec / 1024, ex_peak[0] / 1024))
        print("  whole node (supervisor, 5 daemons, pull child, skopeo, umoci):"
              " %.1f MiB before, %.1f MiB at peak" % (before_node / 1024, peak / 1024))
        top = sorted(tree.by.items(), key=lambda kv: -kv[1])[:6]
        print("  per process peak: " + ", ".join("%s %.1f MiB" % (k, v / 1024)
                                                 for k, v in top))
    finally:
        if node is not None:
            node.cleanup()
        mgr.stop()
        broker.cleanup()


def main():
    if not imagelib.have_tools():
        print("image bench skipped: skopeo, umoci or docker-registry missing")
        return
    d = tempfile.mkdtemp(prefix="mnt-imgbench-", dir="/tmp")
    reg = imagelib.Registry(tls=False)
    try:
        bbroot = nodelib.busybox_rootfs(os.path.join(d, "bb"))
        src, size = build_image(d, bbroot)
        ref = reg.push("oci:" + src, "bench/big:1", fmt="v2s2")
        print("image pulls (%s, %.0f MB of files, 2 layers, loopback registry,"
              " plain HTTP, %d rounds, median):" % (ref, size / 1e6, ROUNDS))
        n = nodelib.Node(nodelib.free_port(), overrides={"containers": {
            "insecure_registries": [reg.host]}})
        a, b = [], []
        try:
            # Interleaved, so that both meet the same machine.
            for _ in range(ROUNDS):
                a.append(ours(n.config, ref, os.path.join(n.state_dir, "images")))
                b.append(by_hand(ref, d))
        finally:
            n.cleanup()
        ta = statistics.median(x[0] for x in a)
        tb = statistics.median(x[0] for x in b)
        print("  mantactl image pull:           %.2f s, tree peak RSS %.1f MiB"
              % (ta, max(x[1] for x in a) / 1024))
        print("  skopeo copy + umoci unpack:    %.2f s, peak RSS %.1f MiB"
              % (tb, max(x[1] for x in b) / 1024))
        print("  ratio (ours / by hand):        %.2f" % (ta / tb))
        if NODE:
            node_memory(reg, ref, bbroot)
    finally:
        reg.cleanup()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
