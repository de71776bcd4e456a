#!/usr/bin/env bash
# PST folders that are not mail (calendar, contacts, tasks, notes, journal:
# by their container class, in any language) do not become empty mail
# folders in a Graph mailbox (the Graph double), and their items are counted
# in the report as skipped. Today `Calendar`, `Contacts`, `Calendário`,
# `Contatos`, `Tarefas`... were made on the double. The Portuguese PST comes
# from ../shared/testdata (that part skips without it).
source "$MF_SRC/tests/lib/common.sh"

PST=$(pst_dir)
[ -e "$PST/aspnet_Outlook_1.pst" ] || skip "tests/data/pst/aspnet_Outlook_1.pst is missing"
command -v python3 >/dev/null || skip "python3 is not installed"
export GRAPH_PORT=${GRAPH_PORT:-4570}
exec 9>/tmp/mailferry-cloud.lock
flock 9
cloud_start "$T/srv" graph

J=$T/job
mkdir -p "$J/pst"
ln -s "$PST/aspnet_Outlook_1.pst" "$J/pst/"
td=$(shared_testdata || true)
iped=
if [ -n "$td" ] && [ -e "$td/pst/iped_test_sample.pst" ]; then
  ln -s "$td/pst/iped_test_sample.pst" "$J/pst/"
  iped=1
else
  echo "NOTE: ../shared/testdata absent: the Portuguese PST is not tried"
fi
export GRAPH_SECRET='s3cr3t-Value~1'
cat >"$J/job.ini" <<EOF
[job]
name = nonmail
state = state/nonmail.db
manifest = manifest.csv
[source]
type = pst
root = $J/pst
[sink]
type = graph
graph_url = http://127.0.0.1:$GRAPH_PORT
login_url = http://127.0.0.1:$GRAPH_PORT
tenant = contoso.onmicrosoft.com
client_id = client-1
client_secret_env = GRAPH_SECRET
EOF
{
  pst_manifest_header
  echo "Exchange,,aspnet_Outlook_1.pst,en@contoso.example,FALSE,/,,,,"
  [ -z "$iped" ] || echo "Exchange,,iped_test_sample.pst,pt@contoso.example,FALSE,/,,,,"
} >"$J/manifest.csv"
"$MF_BIN" run "$J/job.ini" --no-progress >"$T/run.log" 2>&1 && rc=0 || rc=$?
check_eq "the run exits 0" "$rc" 0

# folder paths of a mailbox, from the double's own state
folders() {
  python3 - "$GRAPH_PORT" "$1" <<'EOF'
import json, sys, urllib.request
s = json.load(urllib.request.urlopen("http://127.0.0.1:%s/_state" % sys.argv[1]))
mb = s["mailboxes"].get(sys.argv[2], {"folders": {}})
def path(fid):
    p = []
    while fid and fid != "msgfolderroot" and fid in mb["folders"]:
        p.append(mb["folders"][fid]["displayName"])
        fid = mb["folders"][fid]["parent"]
    return "/".join(reversed(p))
for fid in sorted(mb["folders"]):
    print(path(fid))
EOF
}
reason() { # reason MAILBOX KIND: how many the report counts as skipped for it
  "$MF_BIN" report "$J/job.ini" --format json | python3 -c '
import json, sys
m = [m for m in json.load(sys.stdin)["mailboxes"] if m["mailbox"] == sys.argv[1]][0]
print(m["skipped_by_reason"].get(sys.argv[2], 0))' "$1" "$2"
}
en=$(folders en@contoso.example)
echo "$en" | sed 's/^/  en | /'
for f in Calendar Contacts Journal Notes Tasks; do
  check "en: no folder $f" bash -c '! grep -qx "$1" <<<"$2"' _ "$f" "$en"
done
check "en: the mail folders are there" bash -c 'grep -qx "Inbox/SubInbox" <<<"$1" && grep -qx "Drafts" <<<"$1"' _ "$en"
check_eq "en: the appointment is counted as skipped" "$(reason en@contoso.example appointment)" 1
check_eq "en: the contact is counted as skipped" "$(reason en@contoso.example contact)" 1
if [ -n "$iped" ]; then
  pt=$(folders pt@contoso.example)
  echo "$pt" | sed 's/^/  pt | /'
  for f in Calendar Calendário Contatos Tarefas Diário Anotações; do
    check "pt: no folder $f" bash -c '! grep -qx "$1" <<<"$2"' _ "$f" "$pt"
  done
  check "pt: its mail folder Caixa de Saída is there" grep -qx "Caixa de Saída" <<<"$pt"
  check_eq "pt: the 6 appointments (pffexport: Appointment=6) are counted as skipped" "$(reason pt@contoso.example appointment)" 6
  check_eq "pt: the tasks are counted as skipped" "$(reason pt@contoso.example task)" 2
fi
finish
