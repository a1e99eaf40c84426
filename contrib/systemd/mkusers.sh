#!/bin/sh
# Creates the accounts a sysusers.d(5) file names, idempotently:
# systemd-sysusers where it exists, else groupadd/useradd (passwd(1)).
# Understands the lines manta-node.sysusers uses: "g NAME -" and
# "u NAME -:GROUP "GECOS"".
set -eu
file=$1
if command -v systemd-sysusers >/dev/null 2>&1; then
	exec systemd-sysusers "$file"
fi
nologin=/usr/sbin/nologin
[ -x "$nologin" ] || nologin=/sbin/nologin
grep -v '^[[:space:]]*\(#\|$\)' "$file" | while read -r type name id gecos; do
	gecos=$(printf '%s' "$gecos" | sed 's/^"//; s/"$//')
	case $type in
	g)	getent group "$name" >/dev/null || groupadd --system "$name" ;;
	u)	group=${id#*:}
		getent passwd "$name" >/dev/null ||
		    useradd --system --gid "$group" --no-create-home --home-dir / \
			--shell "$nologin" --comment "$gecos" "$name" ;;
	*)	echo "mkusers.sh: $file: line type $type not understood" >&2
		exit 1 ;;
	esac
done
