#!/usr/bin/env bash
# Every PST/OST of ../shared/testdata/pst through `mailferry run` into
# Maildirs: each file's mail count on disk must be at least what
# `readpst -e` writes as .eml files, a corrupt file fails its mailbox with a
# reason and the others go on, and the report accounts for every item.
source "$MF_SRC/tests/lib/common.sh"

data=$(shared_testdata) || skip "../shared/testdata is absent"
command -v readpst >/dev/null || skip "readpst (pst-utils) is not installed"
J=$T/job
pst_job "$J" testdata "$data/pst" "parallel = 4"
{
  pst_manifest_header
  for f in "$data"/pst/*.pst "$data"/pst/*.ost; do
    [ -e "$f" ] || continue
    n=$(basename "$f")
    id=$(echo "$n" | tr -c 'A-Za-z0-9\n' '-' | tr A-Z a-z) # mailboxes are lower case
    echo "Exchange,,$n,$id@example.com,FALSE,/,,,,"
  done
} >"$J/manifest.csv"
rows=$(($(wc -l <"$J/manifest.csv") - 1))
"$MF_BIN" run "$J/job.ini" --no-progress >"$T/run.log" 2>&1 && rc=0 || rc=$?
check_eq "the run finishes with exit 1 (one corrupt file)" "$rc" 1
report=$("$MF_BIN" report "$J/job.ini" --format json)

printf '%-42s %8s %8s %8s  %s\n' file readpst ours skipped state
while IFS=, read -r _ _ name mailbox _; do
  [ "$name" = Name ] && continue
  out=$T/readpst/$name
  mkdir -p "$out"
  readpst -e -q -o "$out" "$data/pst/$name" >/dev/null 2>&1 || true
  want=$(find "$out" -name '*.eml' | wc -l)
  got=$(maildir_digest --count "$J/out/$mailbox")
  read -r state stored skipped failed < <(python3 -c '
import json, sys
r = json.load(sys.stdin)
m = [m for m in r["mailboxes"] if m["mailbox"] == sys.argv[1]][0]
print(m["state"], m["messages_stored"], m["skipped"], m["failed"])' "$mailbox" <<<"$report")
  printf '%-42s %8s %8s %8s  %s\n' "$name" "$want" "$got" "$skipped" "$state"
  case "$name" in
    *truncated*)
      check_eq "$name fails its mailbox" "$state" failed ;;
    *)
      check "$name: $got mails >= readpst's $want" test "$got" -ge "$want"
      check_eq "$name: the report counts what is on disk" "$stored" "$got"
      check_eq "$name: no failed item" "$failed" 0
      check_eq "$name: mailbox done" "$state" done ;;
  esac
done <"$J/manifest.csv"
check "the corrupt file's reason is in the report" grep -q "header truncated" <<<"$report"
check "non-mail items are counted by type" grep -q '"contact":72' <<<"$report"

# a second run is a delta pass: nothing new
out=$("$MF_BIN" run "$J/job.ini" --no-progress 2>&1) && rc=0 || rc=$?
check "the second run moves nothing" grep -q "moved 0 messages" <<<"$out"
echo "rows: $rows"
finish
