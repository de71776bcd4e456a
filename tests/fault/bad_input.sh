#!/usr/bin/env bash
# Bad input: malformed job files (every bad line reported in one pass, exit
# 2, nothing created), malformed manifests (a manifest with 20 distinct bad
# lines lists all 20), a 10,000-row manifest (parsed and dry-run in bounded
# time, with the summary), and PST rows that are garbage, empty, a directory,
# a FIFO, unreadable or missing: each fails its own mailbox with a reason,
# the other mailboxes finish. (Folder names built to escape the Maildir root
# are covered by unit/test_maildir; wrong IMAP passwords by the IMAP tests.)
# MF_SOAK=1: the 10,000-row manifest is also run for real.
source "$MF_SRC/tests/lib/common.sh"

PST=$(pst_dir)
for f in docfetcher_test.pst rubymsg_attachAndInline.pst; do
  [ -e "$PST/$f" ] || skip "need $PST/$f"
done
bad_inputs=0

# --- job files ----------------------------------------------------------------------
J=$T/jobs
mkdir -p "$J"
pst_manifest_header >"$J/manifest.csv"
echo "Exchange,,docfetcher_test.pst,a@example.com,FALSE,/,,,," >>"$J/manifest.csv"
refused() { # refused WHAT FILE PATTERN...: exit 2, each PATTERN in the output, nothing created
  local what=$1 f=$2 out rc
  shift 2
  out=$(cd "$J" && "$MF_BIN" run "$f" --no-progress 2>&1) && rc=0 || rc=$?
  bad_inputs=$((bad_inputs + 1))
  check_eq "job file $what: exit 2" "$rc" 2
  local p
  for p in "$@"; do
    check "job file $what: reports '$p'" grep -qF -- "$p" <<<"$out"
  done
  check "job file $what: nothing created" test ! -e "$J/state" -a ! -e "$J/out"
}
cat >"$J/many.ini" <<EOF
[job]
name = bad
state = state/bad.db
manifest = manifest.csv
paralel = 2
parallel = many
batch = 0
tnef = maybe
[source]
type = pst
root = $PST
colour = blue
[sink]
type = maildir
path = out
fsync = sometimes
[extra]
x = 1
EOF
refused "with 7 bad lines" many.ini "many.ini:5:" "many.ini:6:" "many.ini:7:" "many.ini:8:" \
  "many.ini:12:" "many.ini:16:" "many.ini:17:"
n=$(cd "$J" && "$MF_BIN" run many.ini 2>&1 | grep -c '^many.ini:[0-9]*:' || true)
check_eq "job file with 7 bad lines: all 7 listed in one pass" "$n" 7
printf '[job]\nname = x\n' >"$J/missing.ini"
refused "missing sections and keys" missing.ini "missing section [source]" "missing section [sink]" \
  "missing required key 'state'" "missing required key 'manifest'"
printf 'garbage line without equals\n[job\nname = x\n' >"$J/syntax.ini"
refused "syntax errors" syntax.ini "syntax.ini:1:" "syntax.ini:3:"
printf '[job]\nname = bad\nstate = s.db\nmanifest = manifest.csv\n[source]\ntype = nosuch\n[sink]\ntype = maildir\npath = out\n' >"$J/type.ini"
refused "unknown source type" type.ini "type.ini:6: [source] type: unknown source 'nosuch'"
printf '[job]\nname = bad\nstate = s.db\nmanifest = nosuch.csv\n[source]\ntype = pst\nroot = %s\n[sink]\ntype = maildir\npath = out\n' "$PST" >"$J/nomanifest.ini"
refused "missing manifest" nomanifest.ini "nomanifest.ini:4: [job] manifest: cannot read"
head -c 3000 /dev/urandom >"$J/random.ini"
refused "random bytes" random.ini "random.ini:1:"
: >"$J/empty.ini"
refused "empty" empty.ini "missing section [job]"
head -c 2000000 /dev/zero | tr '\0' '#' >"$J/huge.ini"
refused "of 2 MB" huge.ini "larger than 1 MiB"
mkdir -p "$J/dir.ini"
refused "that is a directory" dir.ini "dir.ini"
refused "that does not exist" nosuch.ini "nosuch.ini: cannot read job file"

# --- manifests ------------------------------------------------------------------------
M=$T/manifests
mkdir -p "$M"
pst_job "$M" bad "$PST"
long=$(head -c 5000 /dev/zero | tr '\0' a)
{
  pst_manifest_header
  echo "Exchange,,docfetcher_test.pst,good@example.com,FALSE,/,,,,"         # 2: good
  echo "SharePoint,,a.pst,w1@example.com,FALSE,,,,,"                        # 3
  echo ",,a.pst,w2@example.com,FALSE,,,,,"                                  # 4
  echo "Exchange,,,n1@example.com,FALSE,,,,,"                               # 5
  echo "Exchange,,dir/a.pst,n2@example.com,FALSE,,,,,"                      # 6
  echo 'Exchange,,dir\a.pst,n3@example.com,FALSE,,,,,'                      # 7
  echo "Exchange,,a.doc,n4@example.com,FALSE,,,,,"                          # 8
  echo "Exchange,,..,n5@example.com,FALSE,,,,,"                             # 9
  echo "Exchange,,a.pst.txt,n6@example.com,FALSE,,,,,"                      # 10
  echo "Exchange,../up,a.pst,f1@example.com,FALSE,,,,,"                     # 11
  echo "Exchange,/etc,a.pst,f2@example.com,FALSE,,,,,"                      # 12
  echo "Exchange,a/../../b,a.pst,f3@example.com,FALSE,,,,,"                 # 13
  echo "Exchange,,a.pst,,FALSE,,,,,"                                        # 14
  echo "Exchange,,a.pst,bob,FALSE,,,,,"                                     # 15
  echo "Exchange,,a.pst,@example.com,FALSE,,,,,"                            # 16
  echo "Exchange,,a.pst,ia@example.com,MAYBE,,,,,"                          # 17
  echo "Exchange,,a.pst,t1@example.com,FALSE,Inbox,,,,"                     # 18
  echo "Exchange,,a.pst,t2@example.com,FALSE,/../x,,,,"                     # 19
  echo "Exchange,,a.pst,c1@example.com,FALSE,,,,,,,,,"                      # 20
  echo "Exchange,,a.pst,$long@example.com,FALSE,,,,,"                       # 21
  echo "Exchange,,docfetcher_test.pst,good@example.com,FALSE,/,,,,"         # 22: same as 2
} >"$M/manifest.csv"
out=$("$MF_BIN" run "$M/job.ini" --no-progress 2>&1) && rc=0 || rc=$?
bad_inputs=$((bad_inputs + 20))
check_eq "manifest with 20 bad lines: exit 2" "$rc" 2
listed=$(grep -o '^[^ ]*manifest.csv:[0-9]*:' <<<"$out" | sed 's/.*csv:\([0-9]*\):/\1/' | sort -n | uniq | tr '\n' ' ')
check_eq "manifest with 20 bad lines: every one of them is listed" "$listed" "$(seq 3 22 | tr '\n' ' ')"
check "manifest with 20 bad lines: the good line is not" bash -c "! grep -q 'manifest.csv:2:' <<<\"\$1\"" _ "$out"
check "manifest with 20 bad lines: nothing created" test ! -e "$M/state" -a ! -e "$M/out"
for kind in empty header-only binary unterminated imap-for-pst; do
  D=$M/$kind
  pst_job "$D" bad "$PST"
  case $kind in
  empty) : >"$D/manifest.csv" ;;
  header-only) pst_manifest_header >"$D/manifest.csv" ;;
  binary) head -c 5000 /dev/urandom >"$D/manifest.csv" ;;
  unterminated) { pst_manifest_header; echo "SharePoint,,a.pst,w1@example.com,FALSE,,,,,"; echo 'Exchange,,a.pst,"x@example.com,FALSE,,,,,'; } >"$D/manifest.csv" ;;
  imap-for-pst) printf 'EmailAddress,UserName,Password\na@example.com,a,pw\n' >"$D/manifest.csv" ;;
  esac
  out=$("$MF_BIN" run "$D/job.ini" --no-progress 2>&1) && rc=0 || rc=$?
  bad_inputs=$((bad_inputs + 1))
  check_eq "manifest $kind: exit 2" "$rc" 2
  check "manifest $kind: the message names the manifest" grep -q 'manifest.csv:[0-9]*:' <<<"$out"
  check "manifest $kind: nothing created" test ! -e "$D/state" -a ! -e "$D/out"
done

# --- 10,000 rows ---------------------------------------------------------------------------
B=$T/big
pst_job "$B" big "$PST" "parallel = 4"
{
  pst_manifest_header
  for i in $(seq 1 10000); do
    if [ $((i % 2)) = 0 ]; then p=docfetcher_test.pst; else p=rubymsg_attachAndInline.pst; fi
    printf 'Exchange,,%s,u%05d@example.com,FALSE,/,,,,\n' "$p" "$i"
  done
} >"$B/manifest.csv"
t0=$(date +%s%3N)
out=$("$MF_BIN" run "$B/job.ini" --dry-run --no-progress 2>&1) && rc=0 || rc=$?
ms=$(($(date +%s%3N) - t0))
echo "10,000-row manifest: parse + dry run took $ms ms"
check_eq "10,000 rows: the dry run exits 0" "$rc" 0
check "10,000 rows: the summary counts every mailbox" grep -q "would move 10000 messages, .* from 10000 mailboxes" <<<"$out"
check "10,000 rows: within 60 s ($ms ms)" test "$ms" -lt 60000
check "10,000 rows: the dry run wrote nothing" test ! -e "$B/state" -a ! -e "$B/out"
if [ "${MF_SOAK:-0}" = 1 ]; then
  t0=$(date +%s%3N)
  "$MF_BIN" run "$B/job.ini" --no-progress >"$B/log" 2>&1 && rc=0 || rc=$?
  ms=$(($(date +%s%3N) - t0))
  echo "10,000 rows: the real run took $ms ms"
  check_eq "10,000 rows: the run exits 0" "$rc" 0
  check_eq "10,000 rows: 10,000 messages on disk" "$(maildir_digest --count "$B/out")" 10000
  t0=$(date +%s%3N)
  "$MF_BIN" run "$B/job.ini" --no-progress >>"$B/log" 2>&1 && rc=0 || rc=$?
  echo "10,000 rows: the delta pass took $(($(date +%s%3N) - t0)) ms"
  check "10,000 rows: the delta pass moves nothing" grep -q "nothing new to move" "$B/log"
fi

# --- bad PST files ---------------------------------------------------------------------
P=$T/psts
mkdir -p "$P"
cp "$PST/docfetcher_test.pst" "$P/good1.pst"
cp "$PST/rubymsg_attachAndInline.pst" "$P/good2.pst"
head -c 300000 /dev/urandom >"$P/garbage.pst"
{ head -c 512 "$PST/docfetcher_test.pst"; head -c 300000 /dev/urandom; } >"$P/garbage-body.pst"
: >"$P/empty.pst"
mkdir -p "$P/directory.pst"
mkfifo "$P/fifo.pst"
ln -s /dev/zero "$P/zero.pst"
cases=(garbage garbage-body empty directory zero missing)
if [ "$(id -u)" != 0 ]; then
  cp "$PST/docfetcher_test.pst" "$P/unreadable.pst"
  chmod 000 "$P/unreadable.pst"
  cases+=(unreadable)
else
  echo "SKIP: the unreadable-PST case (chmod 000 does not stop root)"
fi
D=$T/badpst
pst_job "$D" badpst "$P" "parallel = 3"
{
  pst_manifest_header
  echo "Exchange,,good1.pst,good1@example.com,FALSE,/,,,,"
  for c in "${cases[@]}"; do echo "Exchange,,$c.pst,$c@example.com,FALSE,/,,,,"; done
  echo "Exchange,,good2.pst,good2@example.com,FALSE,/,,,,"
} >"$D/manifest.csv"
timeout -k 5 120 "$MF_BIN" run "$D/job.ini" --no-progress >"$D/log" 2>&1 && rc=0 || rc=$?
bad_inputs=$((bad_inputs + ${#cases[@]}))
check "bad PSTs: the run did not hang (exit $rc)" test "$rc" -ne 124
check_eq "bad PSTs: exit 1 (some mailboxes failed)" "$rc" 1
rep=$("$MF_BIN" report "$D/job.ini" --format csv)
for c in "${cases[@]}"; do
  line=$(grep "^$c@example.com," <<<"$rep" || true)
  check "bad PST $c: its mailbox failed" grep -q ',failed,' <<<"$line"
  reason=${line##*,}
  check "bad PST $c: with a reason ('${reason:0:80}')" test -n "$reason"
done
for g in good1 good2; do
  check "bad PSTs: $g's mailbox is done" grep -q "^$g@example.com,.*,done," <<<"$rep"
  check "bad PSTs: $g's messages are on disk" test "$(maildir_digest --count "$D/out/$g@example.com")" -gt 0
done
rm -f "$P/unreadable.pst" 2>/dev/null || true

# A FIFO named like a PST (a half-finished copy job, a mistake): opening it
# must not block the mailbox, and with it the whole run, forever.
D=$T/fifo
pst_job "$D" fifo "$P"
{
  pst_manifest_header
  echo "Exchange,,fifo.pst,fifo@example.com,FALSE,/,,,,"
  echo "Exchange,,good1.pst,good1@example.com,FALSE,/,,,,"
} >"$D/manifest.csv"
timeout -k 2 20 "$MF_BIN" run "$D/job.ini" --no-progress >"$D/log" 2>&1 && rc=0 || rc=$?
bad_inputs=$((bad_inputs + 1))
check "bad PST fifo: the run did not hang (exit $rc; 124/137 = killed after 20 s)" test "$rc" -ne 124 -a "$rc" -ne 137
check_eq "bad PST fifo: exit 1 (its mailbox failed, the other finished)" "$rc" 1

echo "bad inputs tried: $bad_inputs"
finish
