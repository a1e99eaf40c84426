"""Commands the broker delivered survive a SIGKILL of mantad-beat before its
main loop took them (issue 15, "nothing the broker delivered may vanish").

paho sends the PUBACK of a QoS 1 message before it calls beat's callback
(paho.mqtt.c issue #522), so from then on the broker has forgotten it. beat
stores each command in beat.db's inbox from that callback, committed before
it returns; the next start hands what it kept over (session_replay).

The window is made deterministic without any hook in beat: the test
ptrace-stops beat's main thread alone (PTRACE_SEIZE + PTRACE_INTERRUPT: no
group stop, paho's threads keep running), publishes a burst, waits until
paho's callback has pushed every command to the main loop's event queue
(the eventfd's counter in /proc/<pid>/fdinfo, which only the stopped main
thread reads), then kills beat. A beat that stored commands only from its
main loop loses the whole burst here."""

import ctypes
import os
import re
import signal

import nodelib
from common import tasks_pb2 as tasks_pb

pytestmark = nodelib.skip_unless_built("mantad-exec")

COMPLETED = tasks_pb.COMPLETED
TERMINAL = (tasks_pb.COMPLETED, tasks_pb.FAILED)
BURST = 12

PTRACE_DETACH = 17
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
WALL = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)
_libc.ptrace.restype = ctypes.c_long
_libc.ptrace.argtypes = (ctypes.c_long, ctypes.c_long, ctypes.c_void_p,
                         ctypes.c_void_p)


def ptrace(req, tid):
    if _libc.ptrace(req, tid, None, None) == -1:
        e = ctypes.get_errno()
        raise OSError(e, "ptrace(%#x, %d): %s" % (req, tid, os.strerror(e)))


def eventfd_counts(pid):
    """The counters of pid's eventfds (hex in fdinfo)."""
    out = []
    d = "/proc/%d/fdinfo" % pid
    for fd in os.listdir(d):
        try:
            with open(os.path.join(d, fd)) as f:
                m = re.search(r"^eventfd-count:\s*([0-9a-fA-F]+)$", f.read(), re.M)
        except OSError:
            continue
        if m:
            out.append(int(m.group(1), 16))
    return out


def test_burst_kept_when_beat_is_killed_before_its_main_loop(
        broker, manager, make_node, bbroot, runtime):
    node = nodelib.exec_node(manager, make_node, bbroot, runtime)
    beat = node.pids()["mantad-beat"]
    tasks = ["%032x" % (0xc2000000 + i) for i in range(BURST)]
    base = max(eventfd_counts(beat) + [0])
    ptrace(PTRACE_SEIZE, beat)          # the main thread only: tid == pid
    reaped = False
    try:
        ptrace(PTRACE_INTERRUPT, beat)
        _, st = os.waitpid(beat, WALL)
        assert os.WIFSTOPPED(st), st
        for t in tasks:
            manager.deploy_task(node.node_id, nodelib.task_msg(t, "#!/bin/sh\n"))
        # Every command went through paho's callback (acknowledged to the
        # broker before it): the main loop's queue counts them, unread.
        nodelib.wait_for(lambda: max(eventfd_counts(beat) + [0]) >= base + BURST,
                         20, "paho's callback to queue the burst")
        os.kill(beat, signal.SIGKILL)
        while True:
            _, st = os.waitpid(beat, WALL)
            if os.WIFEXITED(st) or os.WIFSIGNALED(st):
                break
        reaped = True
    finally:
        if not reaped:
            try:
                ptrace(PTRACE_DETACH, beat)
            except OSError:
                pass
    # The supervisor starts beat again: it hands the kept commands over.
    for t in tasks:
        nodelib.wait_task_status(manager, t, TERMINAL, timeout=90)
    for t in tasks:
        st = [u[3] for u in nodelib.task_updates(manager, t)]
        assert st[-1] == COMPLETED and st.count(COMPLETED) == 1, (t, st)
    assert re.search(r"%d commands received by the last run" % BURST,
                     node.log()), node.log_tail()
