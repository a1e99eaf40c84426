"""Issue 7: each confined daemon's man page lists exactly the system calls
its sandbox.c allows (IMPLEMENTATION NOTES), with their number, and
documents MANTA_SECCOMP (ENVIRONMENT)."""

import os
import re

import pytest

import nodelib


def allowlist(daemon):
    with open(os.path.join(nodelib.ROOT, "mantad-%s" % daemon, "sandbox.c")) as f:
        s = f.read()
    start = s.index("allowed[] = {")
    body = re.sub(r"/\*.*?\*/", "", s[start:s.index("};", start)], flags=re.S)
    return re.findall(r'"([a-z0-9_]+)"', body)


@pytest.mark.parametrize("daemon", ["res", "beat", "register"])
def test_man_lists_the_allowlist(daemon):
    with open(os.path.join(nodelib.ROOT, "man", "mantad-%s.8" % daemon)) as f:
        man = f.read()
    notes = man[man.index(".Sh IMPLEMENTATION NOTES"):]
    notes = notes[:notes.index("\n.Sh ", 1)]
    m = re.search(r"of these (\d+) system\s+calls:\n\.Bd -filled -offset indent\n(.*?)\n\.Ed\n",
                  notes, re.S)
    assert m, "no allowlist in mantad-%s.8" % daemon
    listed = [n.strip() for n in m.group(2).replace("\n", " ").rstrip(".").split(",")]
    names = allowlist(daemon)
    assert listed == names, (set(listed) ^ set(names))
    assert int(m.group(1)) == len(names)
    assert re.search(r"^\.Sh ENVIRONMENT\n(.|\n)*?^\.It Ev MANTA_SECCOMP$", man, re.M)
