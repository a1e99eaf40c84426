#!/bin/sh
# Prints the path of a cached tarball of a minimal Debian 12 (bookworm)
# chroot, making it first with debootstrap when it is missing (a few
# minutes; later runs reuse it). MANTA_TEST_CACHE moves the cache
# (default /var/cache/manta-tests); MANTA_TEST_MIRROR the mirror.
set -eu
cache=${MANTA_TEST_CACHE:-/var/cache/manta-tests}
mirror=${MANTA_TEST_MIRROR:-http://deb.debian.org/debian}
# One base per month: a fresh debootstrap picks up point releases.
tar=$cache/bookworm-$(date +%Y%m).tar
if [ -s "$tar" ]; then
	echo "$tar"
	exit 0
fi
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
[ -s "$tar" ] && { echo "$tar"; exit 0; }
dir=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$dir"' EXIT
debootstrap --variant=minbase bookworm "$dir" "$mirror" >&2
chroot "$dir" apt-get clean
tar -C "$dir" -cf "$tar.tmp" .
mv "$tar.tmp" "$tar"
echo "$tar"
