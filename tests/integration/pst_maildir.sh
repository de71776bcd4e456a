#!/usr/bin/env bash
# PST -> Maildir through `mailferry run`, checked from the Maildir itself:
# dry run, first run, delta pass, a new manifest row, rows sharing a mailbox,
# --users, the job lock, a corrupt PST, SIGTERM and resume, bad job files.
source "$MF_SRC/tests/lib/common.sh"

PST=$(pst_dir)
mapfile -t psts < <(cd "$PST" && ls *.pst 2>/dev/null | sort)
[ ${#psts[@]} -ge 2 ] || skip "need at least two PST files in $PST"
J=$T/job
pst_job "$J" wave1 "$PST" "parallel = 4" "batch = 4"
{
  pst_manifest_header
  echo "Exchange,,${psts[0]},ann@example.com,FALSE,/,,,,"
  echo "Exchange,,${psts[1]},bob@example.com,FALSE,,,,,"
} >"$J/manifest.csv"
run() { "$MF_BIN" "$@" --no-progress; }

# --- dry run: lists, writes nothing
out=$(run run "$J/job.ini" --dry-run 2>&1) && rc=0 || rc=$?
check_eq "dry run exits 0" "$rc" 0
check "dry run says what would move" grep -q "would move [1-9][0-9]* messages" <<<"$out"
check "dry run created no state database" test ! -e "$J/state/wave1.db"
check "dry run created no Maildir" test ! -e "$J/out"
would=$(sed -n 's/^would move \([0-9]*\) messages.*/\1/p' <<<"$out")

# --- first run
out=$(run run "$J/job.ini" 2>&1) && rc=0 || rc=$?
check_eq "first run exits 0" "$rc" 0
n=$(maildir_digest --count "$J/out")
check_eq "the Maildirs hold what the dry run announced" "$n" "$would"
stored=$(python3 -c 'import json,sys; print(sum(m["messages_stored"] for m in json.load(sys.stdin)["mailboxes"]))' \
  < <("$MF_BIN" report "$J/job.ini" --format json))
check_eq "the report counts what is on disk" "$stored" "$n"
check "ann's PST was merged into the top level (TargetRootFolder /)" test -d "$J/out/ann@example.com/cur"
check "bob's PST went under Imported (TargetRootFolder empty)" \
  bash -c "ls -d '$J/out/bob@example.com/.Imported'* >/dev/null"
st=$("$MF_BIN" status "$J/job.ini")
check "status shows both mailboxes done" bash -c "[ \$(grep -c ' done ' <<<'$st') -eq 2 ]"
digest1=$(maildir_digest "$J/out")

# --- second run: a delta pass that moves nothing
out=$(run run "$J/job.ini" 2>&1) && rc=0 || rc=$?
check_eq "second run exits 0" "$rc" 0
check "second run says there was nothing new" grep -q "nothing new to move" <<<"$out"
check_eq "second run changed nothing on disk" "$(maildir_digest "$J/out")" "$digest1"
out=$(run run "$J/job.ini" --dry-run 2>&1) && rc=0 || rc=$?
check "a dry run after the run reads the state: nothing would move" grep -q "would move 0 messages" <<<"$out"

# --- verify compares the Maildirs with the PSTs, independently of the state
out=$("$MF_BIN" verify "$J/job.ini" 2>&1) && rc=0 || rc=$?
check_eq "verify after the run exits 0" "$rc" 0
check "verify says every mailbox matches" grep -q "verify: 2 of 2 mailboxes match" <<<"$out"
victim=$(find "$J/out/ann@example.com/cur" -type f | sort | head -1)
mv "$victim" "$T/victim"
out=$("$MF_BIN" verify "$J/job.ini" 2>&1) && rc=0 || rc=$?
check_eq "verify with a message deleted from the target exits 1" "$rc" 1
check "and names the folder with 1 missing" grep -q "missing 1 .*MISMATCH" <<<"$out"
cp "$T/victim" "$victim"
cp "$T/victim" "$(dirname "$victim")/copy-of-a-message:2,S"
out=$("$MF_BIN" verify "$J/job.ini" 2>&1) && rc=0 || rc=$?
check_eq "verify with a duplicate in the target exits 1" "$rc" 1
check "and counts the duplicate" grep -q "duplicates 1 .*MISMATCH" <<<"$out"
rm "$(dirname "$victim")/copy-of-a-message:2,S"
check_eq "the Maildirs are as before the verify checks" "$(maildir_digest "$J/out")" "$digest1"

# --- plan: looks at both sides, writes nothing, flags rows that will fail
P=$T/plan
pst_job "$P" plan "$PST"
{ cat "$J/manifest.csv"; echo "Exchange,,no-such-file.pst,zed@example.com,FALSE,,,,,"; } >"$P/manifest.csv"
out=$("$MF_BIN" plan "$P/job.ini" 2>&1) && rc=0 || rc=$?
check_eq "plan with a missing PST exits 1" "$rc" 1
check "plan flags that row" grep -q "zed@example.com <- .*no-such-file.pst: WILL FAIL" <<<"$out"
check "plan lists the other rows' folders and counts" grep -q "plan: 3 mailboxes, $would messages" <<<"$out"
check "plan wrote nothing" test ! -e "$P/state" -a ! -e "$P/out"

# --- a new row: only the new mailbox moves
echo "Exchange,,${psts[0]},cat@example.com,FALSE,/Old PST,,,," >>"$J/manifest.csv"
out=$(run run "$J/job.ini" 2>&1) && rc=0 || rc=$?
check_eq "run with a new row exits 0" "$rc" 0
new=$(maildir_digest --count "$J/out/cat@example.com")
check "the new mailbox got messages" test "$new" -gt 0
check "only the new mailbox moved" grep -q "moved $new messages" <<<"$out"
check_eq "the other mailboxes are untouched" \
  "$(maildir_digest "$J/out" | grep -v '^cat@example.com')" "$digest1"
check "TargetRootFolder /Old PST is the root of cat's folders" test -d "$J/out/cat@example.com/.Old PST"

# --- two rows for one mailbox run one after the other
K=$T/same
pst_job "$K" same "$PST" "parallel = 4"
{
  pst_manifest_header
  echo "Exchange,,${psts[0]},dan@example.com,FALSE,/A,,,,"
  echo "Exchange,,${psts[1]},dan@example.com,FALSE,/B,,,,"
} >"$K/manifest.csv"
out=$(run run "$K/job.ini" 2>&1) && rc=0 || rc=$?
check_eq "two rows for one mailbox: exit 0" "$rc" 0
order=$(grep -o 'event=mailbox-[a-z]* mailbox=dan@example.com' <<<"$out" | cut -d' ' -f1 | tr '\n' ' ')
check_eq "they ran one after the other, never at once" "$order" \
  "event=mailbox-start event=mailbox-done event=mailbox-start event=mailbox-done "
check "both landed in dan's Maildir" test -d "$K/out/dan@example.com/.A" -a -d "$K/out/dan@example.com/.B"

# --- --users
U=$T/users
pst_job "$U" users "$PST"
cp "$J/manifest.csv" "$U/manifest.csv"
run run "$U/job.ini" --users bob@example.com >/dev/null 2>&1 && rc=0 || rc=$?
check_eq "--users run exits 0" "$rc" 0
check_eq "--users moved only bob" "$(ls "$U/out")" "bob@example.com"
run run "$U/job.ini" --users nobody@example.com >/dev/null 2>&1 && rc=0 || rc=$?
check_eq "--users with an unknown mailbox is a usage error" "$rc" 2

# --- the job lock: a second run of the same job, started while the first
#     is still working, refuses and touches nothing
L=$T/lock
pst_job "$L" lock "$PST" "parallel = 1"
cp "$J/manifest.csv" "$L/manifest.csv"
MF_FAULT_DELAY_MS=30 "$MF_BIN" run "$L/job.ini" --no-progress >"$T/lock-first.log" 2>&1 &
first=$!
for _ in $(seq 100); do grep -q event=folder "$T/lock-first.log" && break; sleep 0.05; done
out=$(run run "$L/job.ini" 2>&1) && rc=0 || rc=$?
check_eq "a second run while the first is running exits 2" "$rc" 2
check "and says the job is already running" grep -q "already running" <<<"$out"
wait $first && rc=0 || rc=$?
check_eq "the first run finishes undisturbed" "$rc" 0
check_eq "with the full result" "$(maildir_digest "$L/out")" "$(maildir_digest "$J/out")"

# --- a truncated PST fails its mailbox only
C=$T/corrupt
pst_job "$C" corrupt "$T/corrupt-psts"
mkdir -p "$T/corrupt-psts"
cp "$PST/${psts[0]}" "$T/corrupt-psts/good.pst"
head -c 40 "$PST/${psts[0]}" >"$T/corrupt-psts/truncated.pst"
{
  pst_manifest_header
  echo "Exchange,,truncated.pst,eve@example.com,FALSE,,,,,"
  echo "Exchange,,good.pst,fay@example.com,FALSE,,,,,"
  echo "Exchange,,missing.pst,gil@example.com,FALSE,,,,,"
} >"$C/manifest.csv"
run run "$C/job.ini" >/dev/null 2>&1 && rc=0 || rc=$?
check_eq "bad PSTs: the run finishes with exit 1" "$rc" 1
rep=$("$MF_BIN" report "$C/job.ini" --format csv)
check "the truncated PST's mailbox failed with a reason" grep -q '^eve@example.com,.*,failed,.*truncated' <<<"$rep"
check "the missing PST's mailbox failed with a reason" grep -qi '^gil@example.com,.*,failed,.*\(no such file\|cannot open\|not found\)' <<<"$rep"
check "the good PST's mailbox is done" grep -q '^fay@example.com,.*,done,' <<<"$rep"

# --- SIGTERM: finish in-flight work, exit 3, resume to the same result
S=$T/signal
pst_job "$S" signal "$PST" "parallel = 2" "batch = 2"
grep -v "^Exchange,,[^,]*,cat@" "$J/manifest.csv" >"$S/manifest.csv"
MF_FAULT_DELAY_MS=40 "$MF_BIN" run "$S/job.ini" --no-progress >"$T/signal.log" 2>&1 &
pid=$!
sleep 0.5
kill -TERM $pid
wait $pid && rc=0 || rc=$?
check_eq "SIGTERM mid-run exits 3" "$rc" 3
part=$(maildir_digest --count "$S/out")
check "it stopped part way ($part messages)" test "$part" -lt "$(maildir_digest "$J/out" | grep -vc '^cat@')"
run run "$S/job.ini" >/dev/null 2>&1 && rc=0 || rc=$?
check_eq "the rerun exits 0" "$rc" 0
check_eq "the rerun completes the same Maildirs as an uninterrupted run" \
  "$(maildir_digest "$S/out")" "$(maildir_digest "$J/out" | grep -v '^cat@')"

# --- a deleted or damaged state database is refused, never silently
#     replaced by a new one (which would store everything again)
D=$T/deleted
pst_job "$D" deleted "$PST"
cp "$J/manifest.csv" "$D/manifest.csv"
run run "$D/job.ini" >/dev/null 2>&1
before=$(maildir_digest "$D/out")
mv "$D/state/deleted.db" "$T/deleted.db.saved"
rm -f "$D/state/deleted.db-wal" "$D/state/deleted.db-shm"
out=$(run run "$D/job.ini" 2>&1) && rc=0 || rc=$?
check_eq "a deleted state database: exit 2" "$rc" 2
check "the message says it is missing and what to do" grep -q "is missing, but this job has run before" <<<"$out"
check "no new database was created" test ! -e "$D/state/deleted.db"
cp "$T/deleted.db.saved" "$D/state/deleted.db"
printf 'garbage garbage garbage garbage' | dd of="$D/state/deleted.db" bs=1 seek=0 conv=notrunc status=none
out=$(run run "$D/job.ini" 2>&1) && rc=0 || rc=$?
check_eq "a damaged state database: exit 2" "$rc" 2
check "the message says so" grep -Eq "damaged|not a mailferry state database|cannot open" <<<"$out"
check_eq "the target is untouched by either" "$(maildir_digest "$D/out")" "$before"

# --- bad job files: exit 2, nothing touched
B=$T/bad
pst_job "$B" bad "$PST" "paralel = 2"
cp "$J/manifest.csv" "$B/manifest.csv"
out=$(run run "$B/job.ini" 2>&1) && rc=0 || rc=$?
check_eq "a misspelt key exits 2" "$rc" 2
check "the error names file, line and key" grep -q "job.ini:5: \[job\] unknown key 'paralel'" <<<"$out"
check "nothing was created" test ! -e "$B/state" -a ! -e "$B/out"
printf 'Workload,FilePath,Name,Mailbox\nExchange,,a.pst,nobody\nExchange,,b.doc,x@y.z\n' >"$B/manifest.csv"
pst_job "$B" bad "$PST"
out=$(run run "$B/job.ini" 2>&1) && rc=0 || rc=$?
check_eq "a malformed manifest exits 2" "$rc" 2
check "every bad line is named" bash -c "grep -q 'manifest.csv:2:' <<<'$out' && grep -q 'manifest.csv:3:' <<<'$out'"

finish
