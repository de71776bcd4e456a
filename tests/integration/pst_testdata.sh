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
  read -r state stored skipped failed internal < <(python3 -c '
import json, sys
r = json.load(sys.stdin)
m = [m for m in r["mailboxes"] if m["mailbox"] == sys.argv[1]][0]
print(m["state"], m["messages_stored"], m["skipped"], m["failed"],
      m["skipped_by_reason"].get("pst-internal-folder", 0))' "$mailbox" <<<"$report")
  printf '%-42s %8s %8s %8s  %s\n' "$name" "$want" "$got" "$skipped" "$state"
  case "$name" in
    *truncated*)
      check_eq "$name fails its mailbox" "$state" failed ;;
    *)
      # readpst also writes Outlook's own items (an OST's sync logs), which
      # are counted here as skipped by rule (pst-internal-folder)
      check "$name: $got mails + $internal internal >= readpst's $want" test $((got + internal)) -ge "$want"
      check_eq "$name: the report counts what is on disk" "$stored" "$got"
      check_eq "$name: no failed item" "$failed" 0
      check_eq "$name: mailbox done" "$state" done ;;
  esac
done <"$J/manifest.csv"
check "the corrupt file's reason is in the report" grep -q "header truncated" <<<"$report"
check "non-mail items are counted by type" grep -q '"contact":72' <<<"$report"

# folders that are not mail are not made (by container class), nor
# Outlook's own ones (an OST's Sync Issues, Quick Step Settings, ...): their
# items are counted as skipped. Mail right under the root goes to the root.
ost=$J/out/aspnet-sampleostfile-ost@example.com
iped=$J/out/iped-test-sample-pst@example.com
for f in "Sync Issues" "Sync Issues.Conflicts" "Sync Issues.Local Failures" "Quick Step Settings" \
  "Conversation Action Settings" Calendar Contacts "Suggested Contacts" Journal Notes Tasks; do
  check "OST: no folder .$f" test ! -e "$ost/.$f"
done
check "OST: mail folders are there" test -d "$ost/.INBOX.sub1/cur" -a -d "$ost/.Sent/cur" -a -d "$ost/.Junk/cur"
check "OST: the Sync Issues items are counted as skipped" \
  grep -q '"pst-internal-folder": 9' < <(python3 -c 'import json,sys; [print(json.dumps(m["skipped_by_reason"])) for m in json.load(sys.stdin)["mailboxes"] if m["mailbox"].startswith("aspnet-sampleostfile")]' <<<"$report")
for f in Calendar Calendário Contatos Tarefas Diário Anotações; do
  check "iped (Portuguese): no folder .$f" test ! -e "$iped/.$f"
done
check "iped: its mail folders are there" test -d "$iped/.Caixa de Saída/cur" -a -d "$iped/.Sent/cur" -a -d "$iped/.Drafts/cur"
rub=$J/out/rubymsg-attachandinline-pst@example.com
check "mail right under the PST root goes to the Inbox (TargetRootFolder /)" \
  test "$(find "$rub/cur" -type f | wc -l)" -eq 1
check "no folder is named as the localized root" bash -c '! ls -a "$1" | grep -q "Outlook"' _ "$rub"

# a second run is a delta pass: nothing new
out=$("$MF_BIN" run "$J/job.ini" --no-progress 2>&1) && rc=0 || rc=$?
check "the second run moves nothing" grep -q "moved 0 messages" <<<"$out"
echo "rows: $rows"
finish
