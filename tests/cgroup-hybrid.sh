#!/bin/sh
# On a cgroup v1/v2 hybrid host (v1 controllers under /sys/fs/cgroup, a
# cgroup2 tree at /sys/fs/cgroup/unified), a controller left on the v2 side
# (hugetlb on some kernels) makes crun refuse every container, while runc
# copes. This moves such an unused hugetlb controller to its own v1
# hierarchy, as a v1 host would have it. Idempotent; does nothing on a pure
# v1 or pure v2 host, or when not root. .ci/run calls it before the tests.
set -eu
[ "$(id -u)" = 0 ] || exit 0
u=/sys/fs/cgroup/unified
[ -f "$u/cgroup.controllers" ] || exit 0
grep -qw hugetlb "$u/cgroup.controllers" || exit 0
[ -d /sys/fs/cgroup/hugetlb ] && mountpoint -q /sys/fs/cgroup/hugetlb && exit 0
mkdir -p /sys/fs/cgroup/hugetlb
if mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb; then
	echo "cgroup-hybrid: hugetlb moved to a v1 hierarchy (for crun)"
else
	echo "cgroup-hybrid: could not move hugetlb; crun tests will skip" >&2
fi
