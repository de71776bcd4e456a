#!/usr/bin/env bash
# `mailferry verify --repair`: a target that lost messages the state records
# as stored (here: files deleted from the Maildir) gets exactly those back on
# the next run, judged from the Maildir files; a duplicate in the target is
# only reported, never deleted; a second --repair with nothing missing marks
# nothing. Also: --repair needs a state database, the job lock, and `verify`.
source "$MF_SRC/tests/lib/common.sh"

PST=$(pst_dir)
mapfile -t psts < <(cd "$PST" && for f in *.pst; do [ "$(stat -c %s "$f")" -gt 1000 ] && echo "$f"; done | sort)
[ ${#psts[@]} -ge 2 ] || skip "need at least two PST files in $PST"
J=$T/job
pst_job "$J" repair "$PST" "parallel = 2" "batch = 4"
{
  pst_manifest_header
  echo "Exchange,,${psts[0]},ann@example.com,FALSE,/,,,,"
  echo "Exchange,,${psts[1]},bob@example.com,FALSE,,,,,"
} >"$J/manifest.csv"
mf() { "$MF_BIN" "$@" --no-progress; }
# sums of the "missing N" and "duplicates N" columns of verify's output
sum_col() { sed -n "s/.* $1 \([0-9]*\) .*/\1/p" | awk '{s += $1} END {print s + 0}'; }

out=$(mf run "$J/job.ini" 2>&1) && rc=0 || rc=$?
check_eq "the migration exits 0" "$rc" 0
total=$(maildir_digest --count "$J/out")
check "it stored messages ($total)" test "$total" -ge 5
out=$("$MF_BIN" verify "$J/job.ini" 2>&1) && rc=0 || rc=$?
check_eq "verify after the migration exits 0" "$rc" 0
digest0=$(maildir_digest "$J/out")

# Three message files whose content is unique in their folder (so that each
# one is one message for verify): two are deleted, one is duplicated.
mapfile -t pick < <(python3 - "$J/out" <<'EOF'
import collections, hashlib, os, sys
by = collections.defaultdict(list)
for d, _, files in os.walk(sys.argv[1]):
    if os.path.basename(d) in ("cur", "new"):
        for f in files:
            p = os.path.join(d, f)
            by[(os.path.dirname(d), hashlib.sha256(open(p, "rb").read()).hexdigest())].append(p)
unique = sorted(v[0] for v in by.values() if len(v) == 1)
print("\n".join(unique[:3]))
EOF
)
[ ${#pick[@]} -eq 3 ] || { bad "need 3 messages with unique content, found ${#pick[@]}"; finish; }
mkdir -p "$T/deleted"
mv "${pick[0]}" "${pick[1]}" "$T/deleted/"
dup="$(dirname "${pick[2]}")/copy-of-a-message:2,S"
cp "${pick[2]}" "$dup"

# --- verify sees 2 missing and 1 duplicate
out=$("$MF_BIN" verify "$J/job.ini" 2>&1) && rc=0 || rc=$?
check_eq "verify of the damaged target exits 1" "$rc" 1
check_eq "verify counts 2 missing" "$(sum_col missing <<<"$out")" 2
check_eq "verify counts 1 duplicate" "$(sum_col duplicates <<<"$out")" 1
failed0=$(report_sum "$J/job.ini" failed)

# --- --repair marks exactly the 2 missing ones
out=$("$MF_BIN" verify "$J/job.ini" --repair 2>&1) && rc=0 || rc=$?
echo "$out" | grep -E 'repair|MISMATCH' | sed 's/^/  | /'
check_eq "verify --repair still exits 1 (the target is not right yet)" "$rc" 1
check "it marked 2 messages and names the next step" \
  grep -q "verify --repair: marked 2 messages in .* mailbox.*mailferry run $J/job.ini" <<<"$out"
check "it says duplicates are only reported" grep -q "never deletes from a target" <<<"$out"
check_eq "the state now counts 2 more failed messages" "$(report_sum "$J/job.ini" failed)" $((failed0 + 2))
check "the report gives the reason" grep -q "missing in the target at verify (repair)" \
  < <("$MF_BIN" report "$J/job.ini" --format json)
check_eq "--repair wrote nothing to the target" "$(maildir_digest --count "$J/out")" $((total - 1))

# --- the job lock: --repair refuses while a run holds it
MF_FAULT_DELAY_MS=200 "$MF_BIN" run "$J/job.ini" --no-progress >"$T/locked.log" 2>&1 &
holder=$!
for _ in $(seq 100); do grep -q event=run-start "$T/locked.log" && break; sleep 0.05; done
out=$("$MF_BIN" verify "$J/job.ini" --repair 2>&1) && rc=0 || rc=$?
check_eq "verify --repair while the job runs exits 2" "$rc" 2
check "and says the job is running, naming the process" grep -q "this job is already running (lock .* held by process $holder" <<<"$out"
wait $holder && rc=0 || rc=$?
check_eq "that run (which is the rerun) exits 0" "$rc" 0
log=$(cat "$T/locked.log")

# --- the rerun stored exactly the 2, after probing for them
check "the rerun moved exactly 2 messages" grep -q "moved 2 messages" <<<"$log"
check_eq "its probes found neither in the target" "$(grep -c 'event=probe-found' <<<"$log" || true)" 0
check "the duplicate is still there (mailferry never deletes)" test -f "$dup"
mv "$dup" "$T/dup-aside"
check_eq "without the duplicate, the Maildirs are exactly as the migration left them" \
  "$(maildir_digest "$J/out")" "$digest0"
mv "$T/dup-aside" "$dup"
check_eq "no failed rows are left" "$(report_sum "$J/job.ini" failed)" "$failed0"

# --- verify now reports only the duplicate; a second --repair marks nothing
out=$("$MF_BIN" verify "$J/job.ini" 2>&1) && rc=0 || rc=$?
check_eq "verify after the rerun exits 1 (the duplicate)" "$rc" 1
check_eq "nothing missing" "$(sum_col missing <<<"$out")" 0
check_eq "the duplicate is still reported" "$(sum_col duplicates <<<"$out")" 1
before=$(maildir_digest "$J/out")
out=$("$MF_BIN" verify "$J/job.ini" --repair 2>&1) && rc=0 || rc=$?
check_eq "a second --repair exits 1 (the duplicate)" "$rc" 1
check "and marks nothing" grep -q "verify --repair: nothing marked" <<<"$out"
check "no per-mailbox repair line" bash -c "! grep -q '  repair: marked' <<<\"\$1\"" _ "$out"
out=$(mf run "$J/job.ini" 2>&1) && rc=0 || rc=$?
check "a run after it has nothing to move" grep -q "nothing new to move" <<<"$out"
check_eq "and the Maildirs are unchanged" "$(maildir_digest "$J/out")" "$before"
rm "$dup"
out=$("$MF_BIN" verify "$J/job.ini" 2>&1) && rc=0 || rc=$?
check_eq "with the duplicate removed by hand, verify exits 0" "$rc" 0

# --- an IMAP source lists from a saved UID cursor: --repair must make the
#     next run list the folder again (Dovecot on loopback; skipped without it)
source "$MF_SRC/tests/lib/dovecot.sh"
if dovecot_available; then
  I=$T/imap
  mkdir -p "$I/gen"
  IP=$(dovecot_free_port 13143)
  if dovecot_start "$I/srv" "$IP" /; then
    on_exit "source '$MF_SRC/tests/lib/dovecot.sh'; dovecot_stop '$I/srv'"
    dovecot_add_user "$I/srv" zoe zpw
    for n in 1 2 3 4 5 6; do
      printf 'From: a%s@example.org\r\nTo: zoe@example.org\r\nSubject: m%s\r\nMessage-ID: <r%s@example.org>\r\nDate: Mon, 14 Sep 2020 12:0%s:00 +0000\r\n\r\nbody %s\r\n' \
        $n $n $n $n $n >"$I/gen/$n.eml"
      printf 'INBOX\t\\Seen\t%s\t%s\n' $((1600000000 + n)) "$I/gen/$n.eml"
    done | dovecot_load "$IP" zoe zpw
    printf '[job]\nname = imap\nstate = state/imap.db\nmanifest = manifest.csv\n[source]\ntype = imap\nhost = 127.0.0.1\nport = %s\ntls = none\nauth = plain\n[sink]\ntype = maildir\npath = out\n' \
      "$IP" >"$I/job.ini"
    printf 'EmailAddress,UserName,Password\nzoe@example.org,zoe,zpw\n' >"$I/manifest.csv"
    chmod 600 "$I/manifest.csv"
    mf run "$I/job.ini" >"$I/log" 2>&1 && rc=0 || rc=$?
    check_eq "imap: the migration exits 0" "$rc" 0
    check_eq "imap: 6 messages stored" "$(maildir_digest --count "$I/out")" 6
    idigest=$(maildir_digest "$I/out")
    rm "$(find "$I/out" -type f -path '*/cur/*' | sort | head -1)"
    out=$("$MF_BIN" verify "$I/job.ini" --repair 2>&1) && rc=0 || rc=$?
    check "imap: verify --repair marks the 1 missing" grep -q "verify --repair: marked 1 message " <<<"$out"
    out=$(mf run "$I/job.ini" 2>&1) && rc=0 || rc=$?
    check_eq "imap: the run after it exits 0" "$rc" 0
    check_eq "imap: it listed the folder again and stored the message" "$(maildir_digest "$I/out")" "$idigest"
    "$MF_BIN" verify "$I/job.ini" >/dev/null 2>&1 && rc=0 || rc=$?
    check_eq "imap: verify then exits 0" "$rc" 0
  else
    echo "NOTE: dovecot did not start: IMAP part skipped"
  fi
else
  echo "NOTE: dovecot not installed: IMAP part skipped"
fi

# --- usage
N=$T/never
pst_job "$N" never "$PST"
cp "$J/manifest.csv" "$N/manifest.csv"
out=$("$MF_BIN" verify "$N/job.ini" --repair 2>&1) && rc=0 || rc=$?
check_eq "--repair for a job that never ran exits 2" "$rc" 2
check "and says there is nothing to repair" grep -q "nothing to repair" <<<"$out"
check "and created no state database" test ! -e "$N/state/never.db"
out=$("$MF_BIN" run "$J/job.ini" --repair 2>&1) && rc=0 || rc=$?
check_eq "--repair with run is a usage error" "$rc" 2

finish
