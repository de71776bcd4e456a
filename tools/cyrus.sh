#!/usr/bin/env bash
# tools/cyrus.sh [DIR] - unpack Cyrus IMAP (Debian's cyrus-imapd 3.6) under DIR
# (default build/servers/cyrus) for the integration tests, without installing
# it: cyrus-imapd conflicts with dovecot-imapd as a package, so its .debs are
# fetched with `apt-get download` and unpacked with `dpkg -x`. The libraries
# they need that the system lacks are fetched and unpacked the same way
# (followed recursively through Depends), and tests/lib/cyrus.sh points
# LD_LIBRARY_PATH at them. sasl2-bin comes too, for saslpasswd2.
#
# Idempotent: when DIR/.complete exists nothing is done. Needs no root (only
# network and apt's package lists). Exit 0 when unpacked, 1 otherwise.
set -euo pipefail

dir=${1:-build/servers/cyrus}
[ -f "$dir/.complete" ] && exit 0
command -v apt-get >/dev/null 2>&1 && command -v dpkg >/dev/null 2>&1 || {
	echo "cyrus.sh: apt-get/dpkg not available; Cyrus tests will skip" >&2
	exit 1
}
mkdir -p "$dir/debs" "$dir/root"
dir=$(cd "$dir" && pwd)

installed() { # a package whose files the system already has
	case "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" in
	*" ok installed") return 0 ;;
	esac
	return 1
}

# Libraries only: daemons, tools and virtual packages that the Debian
# package wants (an MTA, debconf, perl, db-util) are not needed to run
# imapd from a private config.
wanted() {
	case "$1" in
	cyrus-common | cyrus-imapd | sasl2-bin | lib*) return 0 ;;
	esac
	return 1
}

todo="cyrus-common cyrus-imapd sasl2-bin"
seen=" "
while [ -n "$todo" ]; do
	next=""
	for p in $todo; do
		case "$seen" in *" $p "*) continue ;; esac
		seen="$seen$p "
		if ! ls "$dir/debs/${p}_"*.deb >/dev/null 2>&1; then
			(cd "$dir/debs" && apt-get download -q -o APT::Sandbox::User=root "$p" >/dev/null) || {
				echo "cyrus.sh: apt-get download $p failed (try: apt-get update)" >&2
				exit 1
			}
		fi
		for d in $(apt-cache depends "$p" 2>/dev/null |
			awk '$1 == "Depends:" || $1 == "PreDepends:" { print $2 }' | sort -u); do
			case "$d" in "<"*) continue ;; esac
			d=${d%%:*}
			wanted "$d" || continue
			installed "$d" && continue
			next="$next $d"
		done
	done
	todo=$next
done

for f in "$dir"/debs/*.deb; do
	dpkg -x "$f" "$dir/root"
done
[ -x "$dir/root/usr/lib/cyrus/bin/imapd" ] || {
	echo "cyrus.sh: imapd not found after unpacking" >&2
	exit 1
}
touch "$dir/.complete"
echo "cyrus.sh: Cyrus unpacked under $dir/root"
