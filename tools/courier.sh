#!/usr/bin/env bash
# tools/courier.sh [DIR] - unpack Courier-IMAP (Debian's courier-imap and
# what it needs that is not installed) under DIR (default
# build/servers/courier) for the tests (tests/lib/courier.sh). Courier
# conflicts with dovecot-imapd as a package, so it is never installed: the
# .debs are fetched with `apt-get download` and unpacked with `dpkg -x`.
# Idempotent: a second call with everything in place does nothing. Touches
# no system path; needs no root (apt-get download runs as any user).
set -euo pipefail
dir=${1:-build/servers/courier}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
pkgs="courier-imap courier-base courier-authlib libcourier-unicode4"
# shared libraries imapd links to, fetched only when not installed
libs="libgamin0 libidn12 libgdbm6 libltdl7"
stamp=$dir/.unpacked
if [ -f "$stamp" ] && [ -x "$dir/root/usr/bin/imapd" ] && [ "$(cat "$stamp")" = "$pkgs $libs" ]; then
	exit 0
fi
command -v apt-get >/dev/null 2>&1 && command -v dpkg >/dev/null 2>&1 ||
	{ echo "courier.sh: apt-get/dpkg not available; Courier tests will skip" >&2; exit 0; }
mkdir -p "$dir/debs"
want=$pkgs
for l in $libs; do
	dpkg -s "$l" >/dev/null 2>&1 || want="$want $l"
done
# apt-get download writes into the current directory
if ! (cd "$dir/debs" && apt-get download -q $want >/dev/null 2>"$dir/debs/download.log"); then
	echo "courier.sh: apt-get download failed (see $dir/debs/download.log; try apt-get update)" >&2
	exit 1
fi
rm -rf "$dir/root.tmp"
mkdir -p "$dir/root.tmp"
for d in "$dir"/debs/*.deb; do
	dpkg -x "$d" "$dir/root.tmp"
done
rm -rf "$dir/root"
mv "$dir/root.tmp" "$dir/root"
echo "$pkgs $libs" >"$stamp"
echo "courier.sh: Courier-IMAP unpacked under $dir/root"
