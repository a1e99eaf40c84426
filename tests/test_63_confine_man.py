"""Issue 7: each confined daemon's man page lists exactly the system calls
confine_sandbox allows it (libcommon's base and its sandbox.c's own:
IMPLEMENTATION NOTES), with their number, and
documents security.seccomp, and no environment switch (issue 13)."""

import os
import re

import pytest

import nodelib


def c_strings(path, array):
    """The string literals of a C array initializer, comments left out."""
    with open(path) as f:
        s = f.read()
    start = s.index(array + "[] = {")
    body = re.sub(r"/\*.*?\*/", "", s[start:s.index("};", start)], flags=re.S)
    return re.findall(r'"([a-z0-9_]+)"', body)


def allowlist(daemon):
    """What confine_sandbox loads: libcommon's base, then sandbox.c's own."""
    base = c_strings(os.path.join(nodelib.ROOT, "libcommon", "confine.c"),
                     "confine_base_syscalls")
    own = c_strings(os.path.join(nodelib.ROOT, "mantad-%s" % daemon, "sandbox.c"),
                    "allowed")
    assert not set(base) & set(own), set(base) & set(own)
    return base + own


@pytest.mark.parametrize("daemon", ["res", "beat", "register", "exec"])
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
    assert sorted(listed) == sorted(names), (set(listed) ^ set(names))
    assert int(m.group(1)) == len(names)
    assert re.search(r"^\.Ic security\.seccomp$", notes, re.M)
    assert "MANTA_SECCOMP" not in man
