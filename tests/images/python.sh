#!/bin/sh
# python.sh [OUTDIR]: a Debian bookworm rootfs with python3 and python3-grpcio
# (and python-is-python3, for the reference's `python /usr/src/module.pyz`),
# for task tests that need a real Python (Light service tests).
#
# Built with debootstrap --variant=minbase from the mirror apt uses here
# (only Debian's archive is reachable), once: the result is cached under
# /var/cache/manta-test/python-<hash of this script>/rootfs and reused while
# this script is unchanged. Prints the rootfs path on stdout. With OUTDIR,
# the rootfs is also copied to OUTDIR (which must not exist or be empty).
# Exit 0 when the image is there; 1 when it cannot be built (no debootstrap,
# not root, no network): tests skip on that.
# Environment: MANTA_DEBIAN_MIRROR overrides the mirror; MANTA_TEST_CACHE the
# cache directory.
set -eu

die() { echo "python.sh: $*" >&2; exit 1; }

here=$(cd "$(dirname "$0")" && pwd)
self="$here/$(basename "$0")"
cache=${MANTA_TEST_CACHE:-/var/cache/manta-test}
hash=$(sha256sum "$self" | cut -c1-16)
dest="$cache/python-$hash"
out=${1:-}

# The first Debian (not -security) URI of the bookworm suite in apt's sources.
mirror() {
	if [ -n "${MANTA_DEBIAN_MIRROR:-}" ]; then
		echo "$MANTA_DEBIAN_MIRROR"
		return
	fi
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -r "$f" ] || continue
		awk '
		/^[ \t]*$/ { if (uri != "" && suites ~ /(^| )bookworm( |$)/) { print uri; exit } uri = ""; suites = "" }
		/^URIs:/ { uri = $2 }
		/^Suites:/ { $1 = ""; suites = $0 " " }
		END { if (uri != "" && suites ~ /(^| )bookworm( |$)/) print uri }
		' "$f" | head -n 1
	done | head -n 1 | grep . && return
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -r "$f" ] || continue
		awk '$1 == "deb" && $3 == "bookworm" { u = $2; if (u ~ /^\[/) u = $3; print u; exit }' "$f"
	done | head -n 1 | grep . && return
	echo http://deb.debian.org/debian
}

copy_out() {
	[ -n "$out" ] || return 0
	mkdir -p "$out"
	cp -a "$dest/rootfs/." "$out/"
}

if [ -x "$dest/rootfs/usr/bin/python3" ] && [ -f "$dest/ok" ]; then
	copy_out
	echo "$dest/rootfs"
	exit 0
fi

[ "$(id -u)" = 0 ] || die "debootstrap needs root"
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || \
	die "debootstrap is not installed (make deps)"
mkdir -p "$cache"

# One builder at a time; a second caller waits and then finds the cache.
exec 9>"$cache/python.lock"
flock 9
if [ ! -f "$dest/ok" ]; then
	m=$(mirror)
	tmp="$cache/.python-$hash.$$"
	rm -rf "$tmp"
	mkdir -p "$tmp"
	echo "python.sh: debootstrap bookworm from $m (a few minutes, once)" >&2
	if ! /usr/sbin/debootstrap --variant=minbase \
	    --include=python3,python3-grpcio,python3-protobuf,python-is-python3 \
	    bookworm "$tmp/rootfs" "$m" >"$tmp/debootstrap.log" 2>&1; then
		tail -n 20 "$tmp/debootstrap.log" >&2
		rm -rf "$tmp"
		die "debootstrap failed"
	fi
	# Smaller and reproducible enough: no package cache, no apt lists.
	rm -rf "$tmp/rootfs/var/cache/apt/archives/"*.deb "$tmp/rootfs/var/lib/apt/lists/"* \
	    "$tmp/rootfs/var/log/"* 2>/dev/null || true
	chroot "$tmp/rootfs" python -c 'import grpc, google.protobuf' || {
		rm -rf "$tmp"
		die "the image's python cannot import grpc"
	}
	touch "$tmp/ok"
	rm -rf "$dest"
	mv "$tmp" "$dest"
fi
flock -u 9
copy_out
echo "$dest/rootfs"
