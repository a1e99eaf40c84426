#!/bin/sh
# busybox.sh DIR          a minimal rootfs in DIR from busybox-static:
#                         bin/busybox, a symlink per applet at its usual
#                         path (busybox --list-full), a minimal /etc/passwd
#                         and /etc/group, empty /proc /sys /dev /tmp /run.
# busybox.sh --tar FILE   the same rootfs as a tarball (.tar, .tar.gz/.tgz,
#                         .tar.xz by the name), for `mantactl image import`.
# Idempotent: running it again over DIR leaves the same tree. Exit 1 when
# busybox-static is not installed.
set -eu

die() { echo "busybox.sh: $*" >&2; exit 1; }
BB=${MANTA_BUSYBOX:-/bin/busybox}

build() {
	d=$1
	[ -x "$BB" ] || die "$BB not found (apt-get install busybox-static)"
	# A static binary: nothing else from the host is needed inside.
	if command -v ldd >/dev/null 2>&1 && ldd "$BB" 2>/dev/null | grep -q '=>'; then
		die "$BB is not static (install busybox-static)"
	fi
	mkdir -p "$d"
	for sub in bin sbin usr/bin usr/sbin etc proc sys dev tmp run root usr/src; do
		mkdir -p "$d/$sub"
	done
	chmod 1777 "$d/tmp"
	chmod 0700 "$d/root"
	cp -f "$BB" "$d/bin/busybox.new"
	chmod 0755 "$d/bin/busybox.new"
	mv -f "$d/bin/busybox.new" "$d/bin/busybox"
	"$BB" --list-full | while read -r p; do
		case "$p" in
		bin/busybox|""|*/*/*/*) continue ;;	# the binary itself; nothing deeper
		esac
		[ "${p#*/}" = "$p" ] && continue	# linuxrc
		ln -sfn /bin/busybox "$d/$p"
	done
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
	    >"$d/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$d/etc/group"
	printf 'hosts: files\n' >"$d/etc/nsswitch.conf"
	: >"$d/etc/hosts"
	printf '127.0.0.1 localhost\n::1 localhost\n' >"$d/etc/hosts"
}

case "${1:-}" in
--tar)
	[ $# -eq 2 ] || die "usage: busybox.sh --tar FILE"
	file=$2
	tmp=$(mktemp -d /tmp/busybox-rootfs.XXXXXX)
	trap 'rm -rf "$tmp"' EXIT
	build "$tmp/rootfs"
	case "$file" in
	*.tar.gz|*.tgz) z=-z ;;
	*.tar.xz) z=-J ;;
	*.tar) z= ;;
	*) die "$file: name it .tar, .tar.gz, .tgz or .tar.xz" ;;
	esac
	# Members relative to the rootfs ("./bin/busybox"), owned by root.
	tar -c $z --numeric-owner --owner=0 --group=0 -f "$file.tmp" -C "$tmp/rootfs" .
	mv -f "$file.tmp" "$file"
	;;
""|-h|--help)
	echo "usage: busybox.sh DIR | busybox.sh --tar FILE" >&2
	[ -n "${1:-}" ] || exit 2
	;;
*)
	[ $# -eq 1 ] || die "usage: busybox.sh DIR | busybox.sh --tar FILE"
	build "$1"
	;;
esac
