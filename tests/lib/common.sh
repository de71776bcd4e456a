# tests/lib/common.sh - shared helpers for the shell-driven tests.
# Source it; it sets -euo pipefail, a scratch dir $T and pass/fail counters.
set -euo pipefail
: "${MF_BIN:?MF_BIN must point at the mailferry binary}"
: "${MF_SRC:?MF_SRC must point at the repository}"
MF_TMP=${MF_TMP:-/tmp/mailferry-test}
rm -rf "$MF_TMP"
mkdir -p "$MF_TMP"
T=$MF_TMP
passed=0
failed=0

ok() { passed=$((passed + 1)); echo "ok   - $*"; }
bad() { failed=$((failed + 1)); echo "FAIL - $*"; }
check() { # check "description" command...
  local what=$1
  shift
  if "$@"; then ok "$what"; else bad "$what"; fi
}
check_eq() { # check_eq "description" actual expected
  if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: got '$2', expected '$3'"; fi
}
skip() { echo "SKIP: $*"; exit 77; }
finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}

# The PST files the tests use: the permissively licensed ones in the repo.
pst_dir() { echo "$MF_SRC/tests/data/pst"; }
shared_testdata() {
  local d=${MF_SHARED:-$MF_SRC/../shared}/testdata
  [ -d "$d" ] && echo "$d"
}

# A digest of Maildir trees that does not trust mailferry's state: one line
# per message, "mailbox/folder sha256-of-content flags", sorted.
maildir_digest() { python3 "$MF_SRC/tests/lib/maildir_digest.py" "$@"; }

# Write a job file for PST -> Maildir.
pst_job() { # pst_job DIR NAME ROOT [extra [job] lines...]
  local dir=$1 name=$2 root=$3
  shift 3
  mkdir -p "$dir"
  {
    echo "[job]"
    echo "name = $name"
    echo "state = state/$name.db"
    echo "manifest = manifest.csv"
    for l in "$@"; do echo "$l"; done
    echo "[source]"
    echo "type = pst"
    echo "root = $root"
    echo "[sink]"
    echo "type = maildir"
    echo "path = out"
  } >"$dir/job.ini"
}
pst_manifest_header() {
  echo "Workload,FilePath,Name,Mailbox,IsArchive,TargetRootFolder,ContentCodePage,SPFileContainer,SPManifestContainer,SPSiteUrl"
}
