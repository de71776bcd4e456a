#!/usr/bin/env bash
# tests/bench/imap_bench.sh - IMAP -> IMAP between two private Dovecot
# servers: mailferry vs mbsync (isync) vs Dovecot's dsync (doveadm backup -R
# over imapc), on the same generated corpus. A benchmark, not a test: it
# prints figures and never fails on them.
#
#   tests/bench/imap_bench.sh compare [MAILBOXES=40] [MSGS=500] [AVG_KB=80]
#   tests/bench/imap_bench.sh rss                     # mailferry peak RSS at 10/40/160 mailboxes
#   tests/bench/imap_bench.sh bigfolder [MSGS=200000] # one folder: first pass, no-op rerun, DB size
#
# Results go to build/bench/results.txt (appended) and stdout.
set -euo pipefail
cd "$(dirname "$0")/../.."
MF_SRC=$PWD
MF_BIN=${MF_BIN:-$PWD/build/mailferry}
B=${BENCH_DIR:-$PWD/build/bench}
PARALLEL=${PARALLEL:-8}
source tests/lib/dovecot.sh
command -v mbsync >/dev/null || { echo "mbsync missing: apt-get install isync" >&2; exit 77; }
[ -x /usr/bin/time ] || { echo "GNU time missing: apt-get install time" >&2; exit 77; }
mkdir -p "$B"
RESULTS=$B/results.txt

cleanup() { dovecot_stop "$B/src" 2>/dev/null || true; dovecot_stop "$B/dst" 2>/dev/null || true; }
trap cleanup EXIT

users_of() { for ((u = 0; u < $1; u++)); do printf 'user%04d@bench.example\n' "$u"; done; }

setup() { # setup MAILBOXES MSGS AVG_KB FOLDERS
  cleanup
  rm -rf "$B/src" "$B/dst"
  SRC_PORT=$(dovecot_free_port 21143)
  dovecot_start "$B/src" "$SRC_PORT" /
  DST_PORT=$(dovecot_free_port $((SRC_PORT + 1)))
  DOVECOT_STORAGE=${DST_STORAGE:-maildir} dovecot_start "$B/dst" "$DST_PORT" /
  for u in $(users_of "$1"); do
    dovecot_add_user "$B/src" "$u" pw
    dovecot_add_user "$B/dst" "$u" pw
  done
  CORPUS_BYTES=$(python3 tests/bench/gen_maildir.py "$B/src/mail" "$1" "$2" "$3" "$4")
  [ "$(id -u)" = 0 ] && chown -R nobody:nogroup "$B/src/mail"
  # index the source once so that no tool pays for Dovecot's first scan
  for u in $(users_of "$1"); do dovecot_doveadm "$B/src" index -u "$u" '*' >/dev/null 2>&1 || true; done
  NMSGS=$(($1 * $2))
  echo "corpus: $1 mailboxes x $2 messages = $NMSGS messages, $((CORPUS_BYTES / 1000000)) MB"
}

reset_target() {
  dovecot_stop "$B/dst"
  local users
  users=$(cat "$B/dst/users")
  rm -rf "$B/dst"
  DOVECOT_STORAGE=${DST_STORAGE:-maildir} dovecot_start "$B/dst" "$DST_PORT" /
  printf '%s\n' "$users" >"$B/dst/users"
}

# timed LABEL CMD... : wall seconds and peak RSS (KB) of CMD and its children
timed() {
  local label=$1
  shift
  local start end
  start=$(date +%s.%N)
  /usr/bin/time -f "%M" -o "$B/rss.$label" "$@" >"$B/log.$label" 2>&1 || echo "($label exited $?)"
  end=$(date +%s.%N)
  WALL=$(echo "$end - $start" | bc)
  RSS=$(sort -n "$B/rss.$label" | tail -1)
}

report() { # report TOOL WALL RSS_KB
  local line
  line=$(printf '%-22s %8.1f s %9.1f msg/s %7.1f MB/s %8.1f MB peak RSS' "$1" "$2" \
    "$(echo "$NMSGS / $2" | bc -l)" "$(echo "$CORPUS_BYTES / 1000000 / $2" | bc -l)" \
    "$(echo "$3 / 1024" | bc -l)")
  echo "$line"
  echo "$line" >>"$RESULTS"
}

mailferry_job() { # mailferry_job DIR MAILBOXES
  mkdir -p "$1"
  cat >"$1/job.ini" <<INI
[job]
name = bench
state = state.db
manifest = users.csv
parallel = $PARALLEL
[source]
type = imap
host = 127.0.0.1
port = $SRC_PORT
tls = none
auth = plain
connections = 2
[sink]
type = imap
host = 127.0.0.1
port = $DST_PORT
tls = none
auth = plain
password = pw
INI
  { echo "EmailAddress,UserName,Password"; for u in $(users_of "$2"); do echo "$u,$u,pw"; done; } >"$1/users.csv"
  chmod 600 "$1/users.csv" "$1/job.ini"
}

run_mailferry() { # run_mailferry MAILBOXES
  rm -rf "$B/mf"
  mailferry_job "$B/mf" "$1"
  timed mailferry "$MF_BIN" run "$B/mf/job.ini" --no-progress
  report "mailferry" "$WALL" "$RSS"
  MF_WALL=$WALL
  timed mailferry-noop "$MF_BIN" run "$B/mf/job.ini" --no-progress
  report "mailferry (no-op rerun)" "$WALL" "$RSS"
  MF_NOOP=$WALL
}

run_mbsync() { # run_mbsync MAILBOXES
  rm -rf "$B/mbsync"
  mkdir -p "$B/mbsync"
  for u in $(users_of "$1"); do
    mkdir -p "$B/mbsync/state/$u"
    cat >"$B/mbsync/$u.rc" <<RC
IMAPAccount src
Host 127.0.0.1
Port $SRC_PORT
User $u
Pass pw
SSLType None
AuthMechs LOGIN

IMAPStore src
Account src

IMAPAccount dst
Host 127.0.0.1
Port $DST_PORT
User $u
Pass pw
SSLType None
AuthMechs LOGIN

IMAPStore dst
Account dst

Channel c
Far :src:
Near :dst:
Patterns *
Create Near
Sync Pull
Expunge None
CopyArrivalDate yes
SyncState $B/mbsync/state/$u/
RC
  done
  local list
  list=$(for u in $(users_of "$1"); do echo "$B/mbsync/$u.rc"; done)
  timed mbsync bash -c "xargs -P $PARALLEL -I{} /usr/bin/time -f %M -a -o $B/rss.mbsync-each mbsync -q -c {} -a <<<'$list'"
  RSS=$(sort -n "$B/rss.mbsync-each" | tail -1)
  report "mbsync (x$PARALLEL)" "$WALL" "$RSS"
  MB_WALL=$WALL
  rm -f "$B/rss.mbsync-each"
  timed mbsync-noop bash -c "xargs -P $PARALLEL -I{} /usr/bin/time -f %M -a -o $B/rss.mbsync-each mbsync -q -c {} -a <<<'$list'"
  RSS=$(sort -n "$B/rss.mbsync-each" | tail -1)
  report "mbsync (no-op rerun)" "$WALL" "$RSS"
}

run_dsync() { # run_dsync MAILBOXES
  local list
  list=$(users_of "$1")
  local conf=$B/dst/dovecot.conf
  timed dsync bash -c "xargs -P $PARALLEL -I{} /usr/bin/time -f %M -a -o $B/rss.dsync-each $DOVEADM_BIN -c $conf \
    -o imapc_host=127.0.0.1 -o imapc_port=$SRC_PORT -o imapc_user={} -o imapc_password=pw \
    -o imapc_features=rfc822.size,fetch-headers -o mail_prefetch_count=20 -o mail_fsync=never \
    backup -R -u {} imapc: <<<'$list'"
  RSS=$(sort -n "$B/rss.dsync-each" | tail -1)
  report "dsync (doveadm backup -R, x$PARALLEL)" "$WALL" "$RSS"
  rm -f "$B/rss.dsync-each"
}

machine() {
  echo "== $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB, $(uname -r); $*" | tee -a "$RESULTS"
}

count_target() { # count_target TOOL MAILBOXES: what the target holds, checked over IMAP
  local got
  got=$(for u in $(users_of "$2"); do dovecot_dump "$DST_PORT" "$u" pw; done | wc -l)
  echo "$1: the target holds $got of $NMSGS messages" | tee -a "$RESULTS"
}

mode=${1:-compare}
case $mode in
compare)
  n=${2:-40} m=${3:-500} kb=${4:-80}
  machine "compare: $n mailboxes x $m messages, avg $kb KB, parallel $PARALLEL"
  setup "$n" "$m" "$kb" 3
  run_mailferry "$n"
  count_target mailferry "$n"
  reset_target
  run_mbsync "$n"
  count_target mbsync "$n"
  reset_target
  run_dsync "$n"
  count_target dsync "$n"
  echo "ratio mailferry/mbsync wall: $(echo "$MF_WALL / $MB_WALL" | bc -l | cut -c1-5); no-op rerun / first run: $(echo "$MF_NOOP / $MF_WALL" | bc -l | cut -c1-5)" | tee -a "$RESULTS"
  ;;
rss)
  machine "rss: mailferry peak RSS as the mailbox count grows (100 messages of ~20 KB each)"
  for n in 10 40 160; do
    setup "$n" 100 20 3
    run_mailferry "$n"
  done
  ;;
bigfolder)
  m=${2:-200000}
  # the target stores mdbox: Dovecot's Maildir APPEND costs grow with the
  # folder (a 200,000-message Maildir target spends its time in Dovecot's
  # directory scans, measured at 77% CPU in the target's imap process vs 3%
  # in mailferry), which would measure Dovecot rather than the migrator
  machine "bigfolder: one folder of $m small messages (target in mdbox)"
  DST_STORAGE=mdbox
  setup 1 "$m" 1 1
  run_mailferry 1
  echo "state database: $(du -k "$B/mf/state.db" | cut -f1) KB for $m messages" | tee -a "$RESULTS"
  ;;
*)
  echo "usage: $0 compare|rss|bigfolder [...]" >&2
  exit 2
  ;;
esac
