#!/usr/bin/env bash
# Bad and awkward job input through the real binary: CSV errors never drop
# rows, UTF-16 and ';' files are named, job-file comments and quotes,
# ContentCodePage per row, mailbox case, paths checked before a run, and
# IsArchive rows kept apart from the primary mailbox. Each refusal must be
# exit 2, name file:line, and leave nothing behind.
source "$MF_SRC/tests/lib/common.sh"

PST=$(pst_dir)
mapfile -t psts < <(cd "$PST" && ls *.pst 2>/dev/null | grep -v truncated | sort)
[ ${#psts[@]} -ge 2 ] || skip "need at least two PST files in $PST"
run() { "$MF_BIN" "$@" --no-progress; }
# refused DIR WHAT PATTERN...: `run` exits 2, prints every pattern, writes nothing
refused() {
  local dir=$1 what=$2
  shift 2
  local out rc
  out=$(run run "$dir/job.ini" 2>&1) && rc=0 || rc=$?
  check_eq "$what: exit 2" "$rc" 2
  for p in "$@"; do
    check "$what: says '$p'" grep -qF -- "$p" <<<"$out" || echo "$out" | head -5
  done
  check "$what: no state, no Maildir" test ! -e "$dir/state" -a ! -e "$dir/out"
}

# --- 1. CSV errors: an unterminated quote swallowed the rows after it
J=$T/quote
pst_job "$J" quote "$PST"
{
  pst_manifest_header
  echo "Exchange,,${psts[0]},ann@example.com,FALSE,\"/Old,,,,"
  echo "Exchange,,${psts[1]},bob@example.com,FALSE,,,,,"
  echo "Exchange,,${psts[0]},cat@example.com,FALSE,,,,,"
} >"$J/manifest.csv"
refused "$J" "unterminated quote" "manifest.csv:2: unterminated quoted field"
printf 'EmailAddress,UserName,Password\na@x.com,a,pw\nb@x.com,b\nc@x.com,c,pw,more\n' >"$J/imap.csv"
cat >"$J/imap.ini" <<EOF
[job]
name = q
state = state/q.db
manifest = imap.csv
[source]
type = imap
host = 127.0.0.1
port = 1
tls = none
auth = plain
[sink]
type = maildir
path = out
EOF
chmod 600 "$J/imap.csv"
out=$(run run "$J/imap.ini" 2>&1) && rc=0 || rc=$?
check_eq "rows with too few / too many fields: exit 2" "$rc" 2
check "too few fields named" grep -qF "imap.csv:3: 2 fields, but the header has 3" <<<"$out"
check "too many fields named" grep -qF "imap.csv:4: 4 fields, but the header has 3" <<<"$out"
printf 'EmailAddress,UserName,Password\na@x.com,a,p\0w\n' >"$J/imap.csv"
out=$(run run "$J/imap.ini" 2>&1) && rc=0 || rc=$?
check_eq "a NUL: exit 2" "$rc" 2
check "a NUL named with its line" grep -qF "imap.csv:2: a NUL byte" <<<"$out"

# --- 2. UTF-16 and ';' manifests, a UTF-16 job file
J=$T/utf16
pst_job "$J" utf16 "$PST"
{
  pst_manifest_header
  echo "Exchange,,${psts[0]},ann@example.com,FALSE,/,,,,"
} | python3 -c 'import sys; sys.stdout.buffer.write(sys.stdin.read().replace("\n","\r\n").encode("utf-16"))' >"$J/manifest.csv"
refused "$J" "UTF-16 manifest" "manifest.csv:1: the manifest is UTF-16LE text" "iconv -f UTF-16 -t UTF-8"
{
  pst_manifest_header
  echo "Exchange,,${psts[0]},ann@example.com,FALSE,/,,,,"
} | tr , ';' >"$J/manifest.csv"
refused "$J" "';' manifest" "manifest.csv:1: the columns are separated by ';'"
{
  pst_manifest_header
  echo "Exchange,,${psts[0]},ann@example.com,FALSE,/,,,,"
} | sed '1s/^/\xEF\xBB\xBF/' >"$J/manifest.csv"
out=$(run run "$J/job.ini" 2>&1) && rc=0 || rc=$?
check_eq "a UTF-8 byte order mark is accepted" "$rc" 0
rm -rf "$J/out" "$J/state"
python3 -c 'import sys; d=open(sys.argv[1]).read(); open(sys.argv[1],"wb").write(d.encode("utf-16"))' "$J/job.ini"
out=$(run run "$J/job.ini" 2>&1) && rc=0 || rc=$?
check_eq "UTF-16 job file: exit 2" "$rc" 2
check "UTF-16 job file named as such" grep -qF "job.ini:1: the job file is UTF-16LE text" <<<"$out"
check "not one error per line" bash -c "! grep -q 'outside any section' <<<'$out'"

# --- 3. inline comments and quotes in job files
J=$T/comments
pst_job "$J" comments "$PST"
sed -i 's/^path = out$/path = "my out"   # the maildirs; quoted/' "$J/job.ini"
sed -i 's/^state = \(.*\)$/state = \1   # the checkpoint database/' "$J/job.ini"
{
  pst_manifest_header
  echo "Exchange,,${psts[0]},ann@example.com,FALSE,/,,,,"
} >"$J/manifest.csv"
out=$(run run "$J/job.ini" 2>&1) && rc=0 || rc=$?
check_eq "comments and quotes: run exits 0" "$rc" 0
check "the Maildir is 'my out', without quotes or comment" test -d "$J/my out/ann@example.com/cur"
check "the state database's name has no comment in it" test -f "$J/state/comments.db"
check_eq "no other directory was made" "$(cd "$J" && ls | sort | tr '\n' '|')" "job.ini|manifest.csv|my out|state|"
sed -i 's/^path = .*$/path = "my out/' "$J/job.ini"
out=$(run run "$J/job.ini" 2>&1) && rc=0 || rc=$?
check_eq "an unmatched quote: exit 2" "$rc" 2
check "an unmatched quote named with its line" grep -qF "job.ini:10: [key path] the value opens a quote" <<<"$out"

# --- 4. ContentCodePage per row, over [source] codepage
SH=$(shared_testdata || true)
if [ -n "$SH" ] && [ -f "$SH/pst/hiraoka_contacts97-2002.pst" ]; then
  J=$T/codepage
  pst_job "$J" codepage "$SH/pst"
  {
    pst_manifest_header
    echo "Exchange,,hiraoka_contacts97-2002.pst,ja@example.com,FALSE,,932,,,"
    echo "Exchange,,hiraoka_contacts97-2002.pst,en@example.com,FALSE,,,,,"
  } >"$J/manifest.csv"
  out=$(run plan "$J/job.ini" 2>&1) && rc=0 || rc=$?
  ja=$(sed -n '/^ja@example.com/,/total:/p' <<<"$out")
  check "ContentCodePage=932: the folder is 削除済みアイテム" grep -q "削除済みアイテム" <<<"$ja"
  check "ContentCodePage=932: no mojibake" bash -c "! grep -q 'ƒAƒCƒeƒ€' <<<'$ja'"
  out=$(run run "$J/job.ini" 2>&1) && rc=0 || rc=$?
  check_eq "ContentCodePage run exits 0" "$rc" 0
  check "no mojibake folder in ja's Maildir" bash -c "! ls -a '$J/out/ja@example.com' | grep -q 'ƒAƒCƒeƒ€'"
  printf '%s\n' "$(pst_manifest_header)" "Exchange,,hiraoka_contacts97-2002.pst,ja@example.com,FALSE,,sjis,,," >"$J/manifest.csv"
  rm -rf "$J/out" "$J/state"
  refused "$J" "a bad ContentCodePage" "manifest.csv:2: ContentCodePage is 'sjis'"
else
  echo "# ../shared/testdata/pst/hiraoka_contacts97-2002.pst absent: ContentCodePage part skipped"
fi

# --- 5. mailbox identity is case-insensitive
J=$T/case
pst_job "$J" case "$PST"
{
  pst_manifest_header
  echo "Exchange,,${psts[0]},SAME@Example.com,FALSE,/A,,,,"
  echo "Exchange,,${psts[1]},Same@example.com,FALSE,/B,,,,"
} >"$J/manifest.csv"
out=$(run run "$J/job.ini" 2>&1) && rc=0 || rc=$?
check_eq "two spellings of one mailbox: run exits 0" "$rc" 0
check_eq "one Maildir, in lower case" "$(ls "$J/out" | tr '\n' '|')" "same@example.com|"
check_eq "the report names the mailbox one way" \
  "$("$MF_BIN" report "$J/job.ini" | tail -n +2 | cut -d, -f1 | grep -vx '(total)' | sort -u)" "same@example.com"
echo "Exchange,,${psts[0]},same@example.com,FALSE,/A,,,," >>"$J/manifest.csv"
refused_case=$(run run "$J/job.ini" 2>&1) && rc=0 || rc=$?
check_eq "the same row in another case: exit 2" "$rc" 2
check "both lines named" grep -qF "manifest.csv:4: the same row as line 2" <<<"$refused_case"
# A job an older version ran: Maildir and state keys in the manifest's case.
O=$T/oldcase
pst_job "$O" oldcase "$PST"
{
  pst_manifest_header
  echo "Exchange,,${psts[0]},Old@Example.com,FALSE,/,,,,"
} >"$O/manifest.csv"
run run "$O/job.ini" >/dev/null 2>&1 || true
before=$(maildir_digest "$O/out")
for d in "$O/out/"*; do [ "$d" = "$O/out/Old@Example.com" ] || mv "$d" "$O/out/Old@Example.com"; done
python3 - "$O/state/oldcase.db" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("UPDATE unit SET ukey=replace(ukey,'old@example.com','Old@Example.com'), mailbox='Old@Example.com'")
db.commit()
EOF
digest_old=$(maildir_digest "$O/out")
out=$(run run "$O/job.ini" 2>&1) && rc=0 || rc=$?
check_eq "rerun of an old-case job exits 0" "$rc" 0
check "it moves nothing new: the old state key was found" grep -q "nothing new to move" <<<"$out"
check_eq "no second Maildir in lower case" "$(ls "$O/out" | tr '\n' '|')" "Old@Example.com|"
check_eq "the old Maildir is unchanged" "$(maildir_digest "$O/out")" "$digest_old"
[ -n "$before" ] || bad "the old-case job stored nothing"

# --- 6. paths checked before anything runs
J=$T/paths
pst_job "$J" paths "$T/no-such-root"
{
  pst_manifest_header
  echo "Exchange,,${psts[0]},ann@example.com,FALSE,/,,,,"
  echo "Exchange,,${psts[1]},bob@example.com,FALSE,/,,,,"
} >"$J/manifest.csv"
refused "$J" "a missing [source] root" "job.ini:7: [source] root: $T/no-such-root: No such file or directory"
pst_job "$J" paths "$PST"
touch "$J/afile"
sed -i 's#^path = out$#path = afile/out#' "$J/job.ini"
out=$(run run "$J/job.ini" 2>&1) && rc=0 || rc=$?
check_eq "a sink path that cannot be made: exit 2" "$rc" 2
check "names the key" grep -qF "job.ini:10: [sink] path: cannot create $J/afile/out" <<<"$out"
check "no mailbox started" bash -c "! grep -q mailbox-start <<<'$out'"
check "no state database" test ! -e "$J/state"

# --- 7. IsArchive rows never land in the primary mailbox
J=$T/archive
pst_job "$J" archive "$PST"
{
  pst_manifest_header
  echo "Exchange,,${psts[0]},ann@example.com,FALSE,/,,,,"
  echo "Exchange,,${psts[1]},ann@example.com,TRUE,/,,,,"
} >"$J/manifest.csv"
out=$(run run "$J/job.ini" 2>&1) && rc=0 || rc=$?
check_eq "an archive row into Maildir: exit 0" "$rc" 0
n_primary=$(maildir_digest --count "$J/out")
n_archive=$(maildir_digest --count "$J/out-archive")
p0=$(cd "$J" && "$MF_BIN" plan job.ini 2>&1 | sed -n 's/.*total: [0-9]* folders, \([0-9]*\) messages.*/\1/p' | head -1)
check "the archive went to its own Maildir (out-archive/ann@example.com)" test -d "$J/out-archive/ann@example.com/cur"
check "the archive Maildir holds messages" test "$n_archive" -gt 0
check_eq "the primary holds only the primary PST's messages" "$n_primary" "$p0"
check "the report marks the archive row" bash -c "'$MF_BIN' report '$J/job.ini' | grep -q '^ann@example.com,.*${psts[1]},TRUE,'"
check "and the primary row not" bash -c "'$MF_BIN' report '$J/job.ini' | grep -q '^ann@example.com,.*${psts[0]},FALSE,'"
check "JSON too" bash -c "'$MF_BIN' report '$J/job.ini' --format json | grep -q '\"archive\":true'"
# Graph cannot write into an archive mailbox: refused, every row named
G=$T/graph
mkdir -p "$G"
{
  pst_manifest_header
  echo "Exchange,,${psts[0]},ann@example.com,TRUE,/,,,,"
  echo "Exchange,,${psts[1]},bob@example.com,FALSE,/,,,,"
  echo "Exchange,,${psts[1]},cat@example.com,TRUE,,,,,"
} >"$G/manifest.csv"
cat >"$G/job.ini" <<EOF
[job]
name = g
state = state/g.db
manifest = manifest.csv
[source]
type = pst
root = $PST
[sink]
type = graph
tenant = example.onmicrosoft.com
client_id = 00000000-0000-0000-0000-000000000000
client_secret_env = MF_TEST_NO_SECRET
graph_url = http://127.0.0.1:1
login_url = http://127.0.0.1:1
EOF
export MF_TEST_NO_SECRET=x
refused "$G" "archive rows into Graph" "manifest.csv:2: IsArchive=TRUE for ann@example.com" \
  "manifest.csv:4: IsArchive=TRUE for cat@example.com" "upload = pst-files" "archive_folder"
out=$(run plan "$G/job.ini" 2>&1) && rc=0 || rc=$?
check_eq "plan refuses them as well" "$rc" 2
# IMAP sink: the same refusal
sed -i '/^\[sink\]/,$d' "$G/job.ini"
printf '[sink]\ntype = imap\nhost = 127.0.0.1\nport = 1\ntls = none\nauth = plain\npassword = x\n' >>"$G/job.ini"
refused "$G" "archive rows into IMAP" "manifest.csv:2: IsArchive=TRUE for ann@example.com" "archive_folder"
# the way out: [job] archive_folder puts them into a folder of the primary (Maildir here)
A=$T/archfolder
pst_job "$A" archfolder "$PST" "archive_folder = Online Archive   # archive rows here"
cp "$J/manifest.csv" "$A/manifest.csv"
out=$(run run "$A/job.ini" 2>&1) && rc=0 || rc=$?
check_eq "archive_folder: exit 0" "$rc" 0
check "no archive Maildir with archive_folder" test ! -e "$A/out-archive"
check "the archive rows are under 'Online Archive' in the primary" \
  bash -c "ls -d '$A/out/ann@example.com/.Online Archive'* >/dev/null"
check_eq "and only there: the rest is the primary PST" \
  "$(find "$A/out/ann@example.com" -path '*/.Online Archive*' -prune -o -type f -path '*/cur/*' -print | wc -l)" "$p0"

# IMAP sink: archive_login names the archive's login; the rows go there
. "$MF_SRC/tests/lib/dovecot.sh"
if dovecot_available; then
  D=$T/dovecot
  DP=$(dovecot_free_port 13143)
  dovecot_start "$D" "$DP" / || skip "cannot start dovecot"
  on_exit "dovecot_stop '$D'"
  dovecot_add_user "$D" ann@example.org tpw
  dovecot_add_user "$D" archive-ann@example.org tpw
  I=$T/imaparch
  mkdir -p "$I"
  sed 's/ann@example.com/ann@example.org/' "$J/manifest.csv" >"$I/manifest.csv"
  cat >"$I/job.ini" <<EOF
[job]
name = ia
state = state/ia.db
manifest = manifest.csv
[source]
type = pst
root = $PST
[sink]
type = imap
host = 127.0.0.1
port = $DP
tls = none
auth = plain
password = tpw
archive_login = archive-{mailbox}   # the archive is a login of its own here
EOF
  out=$(run run "$I/job.ini" 2>&1) && rc=0 || rc=$?
  check_eq "IMAP sink with archive_login: exit 0" "$rc" 0
  check_eq "the archive login holds the archive PST" \
    "$(dovecot_dump "$DP" archive-ann@example.org tpw | wc -l)" "$n_archive"
  check_eq "the primary holds only the primary PST" "$(dovecot_dump "$DP" ann@example.org tpw | wc -l)" "$p0"
else
  echo "# dovecot not installed: IMAP archive_login part skipped"
fi

finish
