#!/usr/bin/python3
"""longfuncs: list the C functions over LIMIT lines (issue 15: "no function
over 80 lines without a reason").

The sources follow STYLE.md: a function definition starts at column 0 and
its body opens with "{" alone at column 0 and closes with "}" alone at
column 0.  A function's length counts from its first line (the return type
line) to its closing brace.  A function may exceed the limit when the line
just before its first line is a comment "/* long: REASON */".

Usage: longfuncs.py [--all] [FILE...]  (default: every *.c of the daemons,
mantactl and libcommon).  Prints "FILE:LINE: NAME: N lines" for each long
function without a reason (with --all, also the excused ones, marked), and
exits 1 when any is unexcused.
"""

import glob
import os
import re
import sys

LIMIT = 80
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIRS = ("libcommon", "mantactl", "mantad-beat", "mantad-exec", "mantad-light",
        "mantad-register", "mantad-res")
NAME = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(")
REASON = re.compile(r"^\s*/\*\s*long:\s*\S.*\*/\s*$")


def sources():
    out = []
    for d in DIRS:
        out += glob.glob(os.path.join(ROOT, d, "*.c"))
    return sorted(out)


def functions(path):
    """Yield (name, first line number, length, excused) for each function."""
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().split("\n")
    i = 0
    while i < len(lines):
        if lines[i] != "{":
            i += 1
            continue
        # Walk back to the start of the declarator: the first line of the
        # block of non-blank column-0 lines that ends just above the "{".
        start = i - 1
        while start > 0 and lines[start - 1].strip() and \
                not lines[start - 1].startswith(("}", "#", "/*", " *", "//")) and \
                not lines[start - 1].rstrip().endswith((";", "*/")):
            start -= 1
        head = " ".join(lines[start:i])
        m = NAME.search(head)
        end = i + 1
        while end < len(lines) and lines[end] != "}":
            end += 1
        if m and "=" not in head.split("(")[0]:
            excused = start > 0 and bool(REASON.match(lines[start - 1]))
            yield m.group(1), start + 1, end - start + 1, excused
        i = end + 1


def long_functions(paths, limit=LIMIT):
    out = []
    for p in paths:
        for name, line, n, excused in functions(p):
            if n > limit:
                out.append((os.path.relpath(p, ROOT), line, name, n, excused))
    return out


def main(argv):
    show_all = "--all" in argv
    paths = [a for a in argv if a != "--all"] or sources()
    bad = 0
    for path, line, name, n, excused in long_functions(paths):
        if excused and not show_all:
            continue
        print("%s:%d: %s: %d lines%s" % (path, line, name, n,
                                         " (long: excused)" if excused else ""))
        bad += not excused
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
