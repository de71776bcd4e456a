#!/usr/bin/env bash
# Local faults: the Maildir, the state database, or both on a nearly full
# file system (a small tmpfs). The run must fail cleanly: exit 1 (the
# mailboxes that hit the full disk fail with a reason naming it; the others
# finish), or exit 2 when the state database cannot even be opened; the state
# database must stay intact (PRAGMA integrity_check), no half-written message
# may be left, and once space is freed the same command must finish with
# exactly the Maildirs of an uninterrupted run.
# Also: a state database damaged in the middle of the file (not just its
# header, which pst_maildir.sh covers) is refused with exit 2 and a message
# saying so, and nothing is touched.
# Needs mount (root); skips otherwise.
source "$MF_SRC/tests/lib/common.sh"

PST=$(pst_dir)
for f in aspnet_Outlook_1.pst docfetcher_test.pst rubymsg_attachAndInline.pst; do
  [ -e "$PST/$f" ] || skip "need $PST/$f"
done
command -v sqlite3 >/dev/null || skip "sqlite3 is not installed"

probe=$T/probe-mount
mkdir -p "$probe"
mount -t tmpfs -o size=64k tmpfs "$probe" 2>/dev/null || skip "cannot mount a tmpfs (needs root)"
umount "$probe"

manifest() {
  pst_manifest_header
  echo "Exchange,,aspnet_Outlook_1.pst,ann@example.com,FALSE,/,,,,"
  echo "Exchange,,aspnet_Outlook_1.pst,bob@example.com,FALSE,/Old,,,,"
  echo "Exchange,,docfetcher_test.pst,cid@example.com,FALSE,,,,,"
  echo "Exchange,,rubymsg_attachAndInline.pst,dee@example.com,FALSE,/,,,,"
}
# job DIR STATE OUT: a job whose state database and Maildir root are where asked
job() {
  mkdir -p "$1"
  cat >"$1/job.ini" <<EOF
[job]
name = space
state = $2
manifest = manifest.csv
parallel = 2
batch = 4
[source]
type = pst
root = $PST
[sink]
type = maildir
path = $3
EOF
  manifest >"$1/manifest.csv"
}
small() { # small DIR SIZE: a tmpfs of SIZE at DIR, unmounted at exit
  mkdir -p "$1"
  mount -t tmpfs -o "size=$2" tmpfs "$1"
  on_exit "umount -l '$1'"
}
integrity() { sqlite3 "$1" 'PRAGMA integrity_check' 2>&1; }
half_written() { find "$1" -type f 2>/dev/null | grep -c '/tmp/[^/]*$' || true; }

R=$T/reference
job "$R" state/space.db out
"$MF_BIN" run "$R/job.ini" --no-progress >"$R/log" 2>&1 || { bad "reference run failed"; finish; }
ref=$(maildir_digest "$R/out")
total=$(maildir_digest --count "$R/out")
echo "reference: $total messages, $(du -sk "$R/out" | cut -f1) KiB"

# after_space_freed DIR WHAT: rerun, must be exact
after_space_freed() {
  local rc
  "$MF_BIN" run "$1/job.ini" --no-progress >"$1/rerun.log" 2>&1 && rc=0 || rc=$?
  check_eq "$2: after space is freed, the rerun exits 0" "$rc" 0
  local got
  got=$(maildir_digest "$1/out")
  if [ "$got" = "$ref" ]; then ok "$2: the rerun ends exactly as an uninterrupted run"; else
    bad "$2: the rerun's Maildirs differ from an uninterrupted run"
    diff <(echo "$ref") <(echo "$got") | head -5 || true
  fi
  check_eq "$2: nothing in doubt after the rerun" "$(report_sum "$1/job.ini" in_doubt)" 0
}
# partial_is_clean DIR WHAT: what reached the Maildirs is whole reference messages
partial_is_clean() {
  local extra
  # (grep -c .: an empty Maildir digests to one empty line, which is not a message)
  extra=$(comm -13 <(echo "$ref" | sort) <(maildir_digest "$1/out" | sort) | grep -c . || true)
  check_eq "$2: every message on disk is whole (none differs from the reference)" "$extra" 0
  check_eq "$2: no half-written file left in tmp/" "$(half_written "$1/out")" 0
}

# --- 1. the Maildir's file system fills up ------------------------------------
D=$T/maildir-full
small "$D/out" 1m
job "$D" state/space.db out
"$MF_BIN" run "$D/job.ini" --no-progress >"$D/log" 2>&1 && rc=0 || rc=$?
check_eq "Maildir full: exit 1 (some mailboxes failed)" "$rc" 1
check "Maildir full: the log names the full disk" grep -q 'event=mailbox-failed.*no space left on device' "$D/log"
rep=$("$MF_BIN" report "$D/job.ini" --format csv)
check "Maildir full: the report gives the reason" grep -q ',failed,.*no space left on device' <<<"$rep"
check_eq "Maildir full: the state database is intact" "$(integrity "$D/state/space.db")" ok
partial_is_clean "$D" "Maildir full"
mount -o remount,size=32m "$D/out"
after_space_freed "$D" "Maildir full"

# --- 2. the state database's file system fills up -----------------------------
# (200k: room to create the database, not for the whole run's rows)
D=$T/state-full
small "$D/state" 200k
job "$D" state/space.db out
"$MF_BIN" run "$D/job.ini" --no-progress >"$D/log" 2>&1 && rc=0 || rc=$?
check "state full: exit 1 or 2 (got $rc)" test "$rc" -eq 1 -o "$rc" -eq 2
check "state full: the log names the state database and the full disk" \
  grep -Eq 'state database .*(no space left on device|disk is full)' "$D/log"
check "state full: it did stop part way" test "$(maildir_digest --count "$D/out")" -lt "$total"
check_eq "state full: the state database is intact" "$(integrity "$D/state/space.db")" ok
partial_is_clean "$D" "state full"
mount -o remount,size=8m "$D/state"
after_space_freed "$D" "state full"

# --- 3. both on one file system, full because of another file -------------
D=$T/both-full
small "$D/fs" 4m
job "$D" fs/state/space.db fs/out
ln -s fs/out "$D/out" # for after_space_freed
free_k=$(df -k --output=avail "$D/fs" | tail -1)
dd if=/dev/zero of="$D/fs/filler" bs=1k count=$((free_k - 700)) status=none
"$MF_BIN" run "$D/job.ini" --no-progress >"$D/log" 2>&1 && rc=0 || rc=$?
check "both full: exit 1 or 2 (got $rc)" test "$rc" -eq 1 -o "$rc" -eq 2
check "both full: the log names the full disk" grep -Eq 'no space left on device|disk is full' "$D/log"
check_eq "both full: the state database is intact" "$(integrity "$D/fs/state/space.db")" ok
partial_is_clean "$D" "both full"
rm "$D/fs/filler"
after_space_freed "$D" "both full"

# --- 4. a state database damaged in the middle of the file -------------------
# Each case: a finished job; the database is damaged; `run` refuses with exit
# 2 and says so, and the Maildirs stay as they are.
damaged() { # damaged WHAT COMMAND-THAT-DAMAGES-"$db"
  local what=$1 D=$T/damaged-$2
  shift 2
  job "$D" state/space.db out
  "$MF_BIN" run "$D/job.ini" --no-progress >"$D/log" 2>&1
  local db=$D/state/space.db before out rc
  before=$(maildir_digest "$D/out")
  check "damaged $what: the database has data pages to damage" test "$(stat -c %s "$db")" -ge 16384
  eval "$*"
  out=$("$MF_BIN" run "$D/job.ini" --no-progress 2>&1) && rc=0 || rc=$?
  check_eq "damaged $what: run exits 2" "$rc" 2
  check "damaged $what: the message says the database is damaged" \
    grep -Eq 'damaged|malformed|not a mailferry state database' <<<"$out"
  check "damaged $what: and gives SQLite's finding, not '(not an error)'" \
    bash -c "! grep -q 'not an error' <<<\"\$1\"" _ "$out"
  check_eq "damaged $what: the Maildirs are untouched" "$(maildir_digest "$D/out")" "$before"
}
damaged "page 3 (random bytes)" p3 \
  'head -c 4096 /dev/urandom | dd of="$db" bs=4096 seek=2 conv=notrunc status=none'
damaged "a zeroed page in the middle" mid \
  'dd if=/dev/zero of="$db" bs=4096 seek=$(( $(stat -c %s "$db") / 8192 )) count=1 conv=notrunc status=none'
damaged "the last page" last \
  'head -c 4096 /dev/urandom | dd of="$db" bs=4096 seek=$(( $(stat -c %s "$db") / 4096 - 1 )) conv=notrunc status=none'
damaged "cut in half" half \
  'truncate -s $(( $(stat -c %s "$db") / 8192 * 4096 )) "$db"'

finish
