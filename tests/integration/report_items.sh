#!/usr/bin/env bash
# The report an admin hands on (issue 10): `report --items` lists every
# skipped, failed or changed message with mailbox, folder, subject, from,
# date, Message-ID, size, what happened and why (CSV and JSON, no cap); the
# per-mailbox report has first started / last finished / last run that a
# no-op run does not overwrite, and a totals row (CSV) / object (JSON);
# `report` and `status` need no secret. IMAP source (a Dovecot of our own)
# -> Maildir; what the items say is checked against the source messages and
# the Maildir files.
source "$MF_SRC/tests/lib/common.sh"
source "$MF_SRC/tests/lib/dovecot.sh"
dovecot_available || skip "dovecot or python3 not installed (apt-get install dovecot-imapd)"

J=$T/job
mkdir -p "$J"
SP=$(dovecot_free_port 13251)
dovecot_start "$T/src" "$SP" / || skip "cannot start dovecot"
on_exit "dovecot_stop '$T/src'"
dovecot_add_user "$T/src" alice pa
dovecot_add_user "$T/src" bob pb

# alice: a plain message, one of 1.2 MB (too big for 1 MB), one with a
# winmail.dat whose first attribute has a bad checksum (kept, not decoded);
# bob: two plain messages in Work.
python3 - "$T/msgs" <<'EOF'
import base64, os, struct, sys
d = sys.argv[1]
os.makedirs(d, exist_ok=True)
def msg(name, subject, body, extra="", sender="Ann Example <ann@example.org>"):
    with open(os.path.join(d, name), "wb") as f:
        f.write(("From: %s\nTo: x@example.org\nSubject: %s\n"
                 "Date: Tue, 03 Nov 2026 10:00:00 +0000\nMessage-ID: <%s@example.org>\n%s\n%s"
                 % (sender, subject, name, extra, body)).encode("utf-8", "surrogateescape"))
msg("plain", "hello, world", "just text\n")
# a folded UTF-8 Subject
msg("big", "the \"big\" one,\n\tGr\u00f6\u00dfe 1", "".join("%076d\n" % i for i in range(16000)))
tnef = struct.pack("<IH", 0x223E9F78, 0x1234) + bytes([1]) + struct.pack("<II", 0x00069005, 3) + b"abc" + b"\0\0"
msg("tnef", "winmail inside", "--b\nContent-Type: text/plain\n\nsee attached\n--b\n"
    "Content-Type: application/ms-tnef; name=winmail.dat\nContent-Transfer-Encoding: base64\n\n"
    + base64.encodebytes(tnef).decode() + "--b--\n",
    "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n",
    sender="B\udcf6b <bob@example.org>")  # a raw Latin-1 byte, not UTF-8
msg("w1", "work 1", "one\n")
msg("w2", "work 2", "two\n")
EOF
printf 'INBOX\t-\t1700000000\t%s\nINBOX\t-\t1700000100\t%s\nINBOX\t-\t1700000200\t%s\n' \
  "$T/msgs/plain" "$T/msgs/big" "$T/msgs/tnef" | dovecot_load "$SP" alice pa
printf 'Work\t-\t1700000300\t%s\nWork\t-\t1700000400\t%s\n' "$T/msgs/w1" "$T/msgs/w2" | dovecot_load "$SP" bob pb

write_job() { # write_job FILE [sink lines...]
  local f=$1
  shift
  {
    printf '[job]\nname = items\nstate = state/items.db\nmanifest = manifest.csv\nmax_message_mb = 1\n'
    printf '[source]\ntype = imap\nhost = 127.0.0.1\nport = %s\ntls = none\n' "$SP"
    printf '[sink]\n'
    for l in "$@"; do echo "$l"; done
  } >"$f"
}
write_job "$J/job.ini" "type = maildir" "path = out"
printf 'EmailAddress,UserName,Password\nalice@example.org,alice,pa\nbob@example.org,bob,pb\n' >"$J/manifest.csv"
chmod 600 "$J/manifest.csv"
mf() { "$MF_BIN" "$@" --no-progress 2>>"$T/log"; }
csv() { python3 -c 'import csv, json, sys; print(json.dumps(list(csv.DictReader(sys.stdin))))'; }

out=$(mf run "$J/job.ini") && rc=0 || rc=$?
check_eq "the run exits 0" "$rc" 0
check_eq "the Maildirs hold 4 messages (the big one skipped)" \
  "$(find "$J/out" -path '*/cur/*' -type f | wc -l)" 4

# --- report --items, CSV
"$MF_BIN" report "$J/job.ini" --items >"$T/items.csv"
sed 's/^/  | /' "$T/items.csv"
python3 - "$T/items.csv" "$T/msgs" "$J/out" <<'EOF' && ok "report --items (CSV) lists the skipped and the changed message, with their headers" || bad "report --items (CSV)"
import csv, os, sys
rows = list(csv.DictReader(open(sys.argv[1], newline="")))
by = {r["subject"]: r for r in rows}
assert len(rows) == 2, rows
big = by['the "big" one, Gr\u00f6\u00dfe 1']
assert big["mailbox"] == "alice@example.org" and big["folder"] == "INBOX", big
assert big["what"] == "skipped" and big["why"] == "too-big: 1.2 MB > 1 MB", big
assert big["from"] == "Ann Example <ann@example.org>", big
assert big["date"] == "Tue, 03 Nov 2026 10:00:00 +0000", big
assert big["message_id"] == "<big@example.org>", big
# the size is the message as it would have been stored (LF line ends)
assert int(big["size"]) == os.path.getsize(os.path.join(sys.argv[2], "big")), big
t = by["winmail inside"]
assert t["what"] == "changed", t
assert t["why"].startswith("tnef-not-decoded: checksum mismatch in attribute"), t
assert t["from"] == "B?b <bob@example.org>" and t["message_id"] == "<tnef@example.org>", t
# and the target really has that message, with winmail.dat kept as it was
found = [os.path.join(r, f) for r, _, fs in os.walk(sys.argv[3]) for f in fs
         if "Message-ID: <tnef@example.org>" in open(os.path.join(r, f), errors="replace").read()]
assert len(found) == 1 and "application/ms-tnef" in open(found[0], errors="replace").read(), found
EOF

# --- JSON, the same rows
"$MF_BIN" report "$J/job.ini" --items --format json >"$T/items.json"
check "report --items (JSON) has the same rows" python3 -c '
import csv, json, sys
j = json.load(open(sys.argv[1]))
c = list(csv.DictReader(open(sys.argv[2], newline="")))
assert j["count"] == len(j["items"]) == len(c) == 2
for a, b in zip(j["items"], c):
    for k in ("mailbox", "folder", "subject", "from", "date", "message_id", "what", "why"):
        assert (a[k] or "") == b[k], (k, a[k], b[k])
    assert a["size"] == int(b["size"])
' "$T/items.json" "$T/items.csv"

# --- a failed message: one deleted from the Maildir, marked by verify --repair
victim=$(grep -rl "^Message-ID: <w1@example.org>" "$J/out")
rm "$victim"
"$MF_BIN" verify "$J/job.ini" --repair >/dev/null 2>&1 || true
"$MF_BIN" report "$J/job.ini" --items >"$T/items2.csv"
check "report --items lists the failed message with its reason" python3 -c '
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1], newline="")) if r["what"] == "failed"]
assert len(rows) == 1, rows
r = rows[0]
assert r["mailbox"] == "bob@example.org" and r["folder"] == "Work", r
assert r["why"] == "missing in the target at verify (repair)", r
' "$T/items2.csv"

# --- first started / last finished survive a no-op run; last run moves
t_before=$("$MF_BIN" report "$J/job.ini" --format json)
sleep 1.2
out=$(mf run "$J/job.ini") && rc=0 || rc=$?
check "the rerun stored the deleted message again" grep -q "moved 1 messages" <<<"$out"
t_mid=$("$MF_BIN" report "$J/job.ini" --format json)
sleep 1.2
out=$(mf run "$J/job.ini") && rc=0 || rc=$?
check "the third run has nothing to do" grep -q "already migrated" <<<"$out"
t_after=$("$MF_BIN" report "$J/job.ini" --format json)
check "per mailbox: first_started never changes, last_finished only with work, last_run always" python3 -c '
import json, sys
b, m, a = (json.loads(x) for x in sys.argv[1:4])
def get(r, who, k): return [x for x in r["mailboxes"] if x["mailbox"] == who][0][k]
for who in ("alice@example.org", "bob@example.org"):
    assert get(b, who, "first_started") == get(m, who, "first_started") == get(a, who, "first_started") is not None
    assert get(a, who, "last_run") > get(m, who, "last_run") > get(b, who, "last_run"), who
    assert get(a, who, "last_finished") == get(m, who, "last_finished"), who  # the no-op run
# bob had work in the second run, alice did not
assert get(m, "bob@example.org", "last_finished") > get(b, "bob@example.org", "last_finished")
assert get(m, "alice@example.org", "last_finished") == get(b, "alice@example.org", "last_finished")
' "$t_before" "$t_mid" "$t_after"

# --- totals
"$MF_BIN" report "$J/job.ini" >"$T/report.csv"
sed 's/^/  | /' "$T/report.csv"
check "CSV: a totals row that sums the mailboxes" python3 -c '
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1], newline="")))
tot = [r for r in rows if r["mailbox"] == "(total)"]
mb = [r for r in rows if r["mailbox"] != "(total)"]
assert len(tot) == 1 and rows[-1] is tot[0] and len(mb) == 2
for k in ("folders", "messages_stored", "bytes_stored", "skipped", "failed", "in_doubt"):
    assert int(tot[0][k]) == sum(int(r[k]) for r in mb), k
assert int(tot[0]["messages_stored"]) == 4 and int(tot[0]["skipped"]) == 1
assert tot[0]["state"] == "2 of 2 done", tot[0]
assert tot[0]["first_started"] == min(r["first_started"] for r in mb)
' "$T/report.csv"
check "JSON: a totals object" python3 -c '
import json, sys
r = json.loads(sys.argv[1])
t = r["totals"]
assert t["mailboxes"] == 2 and t["mailboxes_done"] == 2 and t["messages_stored"] == 4
assert t["skipped"] == 1 and t["failed"] == 0
assert t["bytes_stored"] == sum(m["bytes_stored"] for m in r["mailboxes"])
' "$t_after"

# --- report and status need no secret: the same job with an IMAP sink whose
# password variable is not set
write_job "$J/imap.ini" "type = imap" "host = 127.0.0.1" "port = 1" "tls = none" "password_env = MF_ITEMS_NOT_SET"
unset MF_ITEMS_NOT_SET
out=$("$MF_BIN" report "$J/imap.ini" 2>&1) && rc=0 || rc=$?
check_eq "report without the sink's password variable exits 0" "$rc" 0
check "and reports the mailboxes" grep -q "^alice@example.org," <<<"$out"
out=$("$MF_BIN" status "$J/imap.ini" 2>&1) && rc=0 || rc=$?
check_eq "status without the sink's password variable exits 0" "$rc" 0
out=$("$MF_BIN" report "$J/imap.ini" --items --format json 2>&1) && rc=0 || rc=$?
check_eq "report --items without it exits 0" "$rc" 0
out=$("$MF_BIN" run "$J/imap.ini" --no-progress 2>&1) && rc=0 || rc=$?
check_eq "run still needs it (exit 2)" "$rc" 2
check "naming the variable" grep -q "MF_ITEMS_NOT_SET is not set" <<<"$out"
finish
