#!/usr/bin/python3
"""The cost of synchronous=FULL on the outboxes (issue 15, finding 6).

The outboxes (beat.db, the task log outbox of register.db, exec.db) are
SQLite files in WAL mode. With synchronous=NORMAL a commit is not synced:
a power loss can take the last commits back. With FULL each commit syncs
the WAL first. This prints microseconds per commit for both, on the file
system of BENCH_SYNC_DIR (default /var/tmp: a disk, not tmpfs, where fsync
would cost nothing), for the outbox's two statements (a row added; a row
delivered: deleted and its key remembered), then the cost per task at
BENCH_SYNC_COMMITS synced commits per task (default 19: counted with
strace -e fsync,fdatasync on the daemons over 10 runc tasks of one line of
output each, 2026-12-07: mantad-exec 11.7, mantad-beat 5.1,
mantad-register 2.6 per task with FULL; none with NORMAL)."""

import os
import statistics
import sys
import tempfile
import time
import sqlite3

N = int(os.environ.get("BENCH_SYNC_N", "300"))
COMMITS = int(os.environ.get("BENCH_SYNC_COMMITS", "19"))
DIR = os.environ.get("BENCH_SYNC_DIR", "/var/tmp")


def fs_type(path):
    best, kind = "", "?"
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            mnt = parts[1]
            if path.startswith(mnt) and len(mnt) > len(best):
                best, kind = mnt, parts[2]
    return kind


def run(mode, d):
    path = os.path.join(d, "outbox-%s.db" % mode.lower())
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=%s" % mode)
    db.execute("CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
               " topic TEXT NOT NULL, payload BLOB NOT NULL, qos INTEGER NOT NULL,"
               " key TEXT UNIQUE, created INTEGER NOT NULL)")
    db.execute("CREATE TABLE delivered (key TEXT PRIMARY KEY, seq INTEGER NOT NULL)")
    payload = os.urandom(300)       # a TaskUpdate is a few hundred bytes
    times = []
    for i in range(N):
        t0 = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO outbox (topic, payload, qos, key, created)"
                   " VALUES (?, ?, 1, ?, 0)", ("manager/task_update", payload, "k%d" % i))
        db.execute("COMMIT")
        t1 = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.execute("DELETE FROM outbox WHERE key = ?", ("k%d" % i,))
        db.execute("INSERT OR REPLACE INTO delivered (key, seq) VALUES (?, ?)",
                   ("k%d" % i, i))
        db.execute("COMMIT")
        t2 = time.perf_counter()
        times += [t1 - t0, t2 - t1]
    db.close()
    return statistics.median(times) * 1e6, statistics.mean(times) * 1e6


def main():
    d = tempfile.mkdtemp(prefix="manta-sync-", dir=DIR)
    try:
        print("synchronous=FULL vs NORMAL: %d commits each in %s (%s), SQLite %s"
              % (2 * N, DIR, fs_type(os.path.realpath(d)), sqlite3.sqlite_version))
        res = {}
        for mode in ("NORMAL", "FULL"):
            med, mean = run(mode, d)
            res[mode] = mean
            print("  %-6s  median %8.1f us/commit   mean %8.1f us/commit"
                  % (mode, med, mean))
        extra = res["FULL"] - res["NORMAL"]
        print("  FULL costs %.1f us more per commit, %.2f ms per task (%d commits)"
              % (extra, extra * COMMITS / 1000.0, COMMITS))
    finally:
        for f in os.listdir(d):
            os.unlink(os.path.join(d, f))
        os.rmdir(d)
    return 0


if __name__ == "__main__":
    sys.exit(main())
