#!/usr/bin/env bash
# The Maildir sink on a full disk: a 64 KiB tmpfs fills up; the store must
# fail with MF_ENOSPC (class mailbox), leave no partial file in tmp/, and
# every message reported stored must be complete in cur/.
# Needs root (mount); skips otherwise.
set -u
: "${MF_BIN:?}" "${MF_TMP:?}"
helper="$(dirname "$MF_BIN")/tests/test_maildir"
if [ ! -x "$helper" ]; then
	echo "FAIL: helper $helper not built" >&2
	exit 1
fi
mnt="$MF_TMP/full"
mkdir -p "$mnt"
if ! mount -t tmpfs -o size=64k tmpfs "$mnt" 2>/dev/null; then
	echo "SKIP: cannot mount a tmpfs (needs root)"
	exit 77
fi
trap 'umount "$mnt"' EXIT
"$helper" --enospc "$mnt"
rc=$?
if [ $rc -ne 0 ]; then
	echo "FAIL: ENOSPC handling (see above)" >&2
	exit 1
fi
echo "PASS"
