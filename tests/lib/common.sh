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

# --- helpers for the fault tests (tests/fault/) ------------------------------

# Commands to run when the test exits (servers, proxies, mounts), last first.
MF_ON_EXIT=()
on_exit() { # on_exit "shell command"
  MF_ON_EXIT=("$*" "${MF_ON_EXIT[@]}")
  trap 'for c in "${MF_ON_EXIT[@]}"; do eval "$c" || true; done' EXIT
}

# Serialise runs of one test that use fixed ports (two build trees running
# the same test at once): fault_lock NAME
fault_lock() {
  exec 8>"/tmp/mailferry-fault-$1.lock"
  flock 8
}

# The npm prefix holding azurite and s3rver: $MF_NPM_PREFIX, else the build
# tree's npm/ (installed there by tools/cloud-servers.sh when missing).
cloud_npm_prefix() {
  local p
  for p in "${MF_NPM_PREFIX:-}" "$(dirname "$MF_BIN")/npm" "$MF_SRC/build/npm"; do
    [ -n "$p" ] && [ -x "$p/node_modules/.bin/azurite-blob" ] && [ -x "$p/node_modules/.bin/s3rver" ] &&
      { echo "$p"; return; }
  done
  echo "${MF_NPM_PREFIX:-$(dirname "$MF_BIN")/npm}"
}

# Start cloud test servers (tools/cloud-servers.sh) into STATE, stopped at
# exit. Ports come from AZURITE_PORT, S3RVER_PORT, SIGV4_PORT, GRAPH_PORT.
# Skips the test (77) when they cannot start. cloud_start STATE WHAT...
cloud_start() {
  local state=$1
  shift
  command -v node >/dev/null || skip "node is not installed"
  bash "$MF_SRC/tools/cloud-servers.sh" start "$(cloud_npm_prefix)" "$state" "$@" >"$state.start.log" 2>&1 ||
    { cat "$state.start.log"; bash "$MF_SRC/tools/cloud-servers.sh" stop "$state" >/dev/null 2>&1 || true; skip "cannot start the cloud test servers ($*)"; }
  on_exit "bash '$MF_SRC/tools/cloud-servers.sh' stop '$state' >/dev/null 2>&1"
}

# A TCP fault proxy (tests/lib/faultproxy.py) in the background, stopped at
# exit: faultproxy_start NAME LISTEN_PORT TARGET_PORT SCHEDULE [--loop]
# Its counters: faultproxy_stat NAME KEY (KEY as in faultproxy.py's stats).
# wait_port PORT [TRIES]: 0 once something accepts on 127.0.0.1:PORT
# (TRIES x 50 ms, default 100), else 1.
wait_port() {
  local _
  for _ in $(seq "${2:-100}"); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

# wait_line TEXT FILE [TRIES]: 0 once FILE holds a line starting with TEXT
wait_line() {
  local _
  for _ in $(seq "${3:-100}"); do
    grep -q "^$1" "$2" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

faultproxy_start() {
  local name=$1 listen=$2 target=$3 sched=$4
  shift 4
  python3 "$MF_SRC/tests/lib/faultproxy.py" --listen "$listen" --target "127.0.0.1:$target" \
    --schedule "$sched" --stats "$T/$name.proxy.json" "$@" >"$T/$name.proxy.log" 2>&1 &
  echo $! >"$T/$name.proxy.pid"
  on_exit "kill $! 2>/dev/null"
  # not wait_port: a test connection would use up the schedule's first action
  wait_line "faultproxy: 127.0.0.1:$listen" "$T/$name.proxy.log" 100 && return 0
  cat "$T/$name.proxy.log"
  return 1
}
faultproxy_stop() { kill "$(cat "$T/$1.proxy.pid")" 2>/dev/null || true; }
faultproxy_stat() {
  python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(s.get(sys.argv[2], 0))' "$T/$1.proxy.json" "$2"
}

# Sum a numeric column of `mailferry report --format json` over all rows:
# report_sum JOB FIELD
report_sum() {
  "$MF_BIN" report "$1" --format json |
    python3 -c 'import json,sys; print(sum(m[sys.argv[1]] for m in json.load(sys.stdin)["mailboxes"]))' "$2"
}
