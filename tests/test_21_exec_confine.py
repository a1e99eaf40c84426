"""Inside a task's container (runc and crun): no new privileges, no
capabilities, seccomp filtering, a read-only root, a private /tmp, the
runtime's masked paths, no way to a user namespace, the alias as hostname,
the task's identity in the environment (TASK_ID, SWARM_ID, RPC_HOST,
RPC_PORT, MANTA_TASK_TOKEN), and the payload read-only at
/usr/src/module.pyz."""

import re

import nodelib
from common import tasks_pb2 as tasks_pb

pytestmark = nodelib.skip_unless_built("mantad-exec")

PROBE = r"""#!/bin/sh
grep -E '^(NoNewPrivs|CapEff|CapPrm|CapBnd|Seccomp):' /proc/self/status
echo "hostname=$(hostname)"
echo "task=$TASK_ID swarm=$SWARM_ID rpc=$RPC_HOST:$RPC_PORT"
echo "token=$MANTA_TASK_TOKEN"
touch /rootfile 2>/dev/null && echo "root=writable" || echo "root=readonly"
echo x >/usr/src/module.pyz 2>/dev/null && echo "payload=writable" || echo "payload=readonly"
echo x >/tmp/f && echo "tmp=$(cat /tmp/f)"
unshare -U true 2>/dev/null && echo "userns=yes" || echo "userns=no"
unshare -r true 2>/dev/null && echo "rootmap=yes" || echo "rootmap=no"
echo "kcore=$(wc -c </proc/kcore 2>/dev/null || echo none)"
echo x >/proc/sys/kernel/hostname 2>/dev/null && echo "procsys=writable" || echo "procsys=readonly"
mknod /tmp/dev c 1 3 2>/dev/null && echo "mknod=yes" || echo "mknod=no"
echo "pid1=$(cat /proc/1/comm)"
echo done
"""


def test_confinement(manager, make_node, bbroot, runtime):
    node = nodelib.exec_node(manager, make_node, bbroot, runtime)
    task = "c1" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(task, PROBE, alias="probe_host 1"))
    nodelib.wait_task_status(manager, task, tasks_pb.COMPLETED)
    out = nodelib.wait_for(lambda: "done\n" in nodelib.task_log_text(manager, task) and
                           nodelib.task_log_text(manager, task), 15, "probe output")
    kv = dict(re.findall(r"^(\w+)[:=]\s*(.*)$", out, re.M))
    assert kv["NoNewPrivs"] == "1", out
    assert int(kv["CapEff"], 16) == 0 and int(kv["CapPrm"], 16) == 0, out
    assert int(kv["CapBnd"], 16) == 0, out
    assert kv["Seccomp"] == "2", out
    assert kv["root"] == "readonly", out
    assert kv["payload"] == "readonly", out
    assert kv["tmp"] == "x", out
    assert kv["userns"] == "no" and kv["rootmap"] == "no", out
    assert kv["kcore"] in ("0", "none"), out
    assert kv["procsys"] == "readonly", out
    assert kv["mknod"] == "no", out
    assert kv["hostname"] == "probe-host-1", out
    assert kv["pid1"] == "module.pyz", out    # the payload: pid 1 of its own pid ns
    assert "task=%s swarm=%s " % (task, "5a" * 16) in out, out
    assert re.search(r"rpc=127\.0\.0\.1:\d+$", out, re.M), out
    assert re.match(r"^[0-9a-f]{64}$", kv["token"]), out
    # The token is the task's secret: never in the node's own logs.
    assert kv["token"] not in node.log()
