#!/usr/bin/env bash
# imap_e2e.sh - IMAP -> IMAP through `mailferry run`, between two Dovecot
# servers of our own on loopback (source: "." separator, target: "/"), driven
# by an Exchange Online IMAP migration CSV. The target is checked against the
# source by an independent IMAP client (python imaplib), not by mailferry's
# state: per folder the same multiset of (flags, INTERNALDATE, SHA-256 of the
# bytes with CRLF -> LF). Then: a second run moves nothing; mail added to the
# source is picked up; a UIDVALIDITY reset causes no duplicates; kill -9 in
# the middle of a run and a rerun give the exact result; UserRoot narrows a
# mailbox to a subtree.
set -u
: "${MF_BIN:?}" "${MF_SRC:?}"
W=${MF_TMP:-$(mktemp -d /tmp/mf-imap-e2e.XXXXXX)}
. "$MF_SRC/tests/lib/dovecot.sh"
dovecot_available || { echo "SKIP: dovecot or python3 not installed (apt-get install dovecot-imapd)"; exit 77; }

fail() { echo "FAIL: $*" >&2; exit 1; }
cleanup() { dovecot_stop "$W/src"; dovecot_stop "$W/dst"; }
trap cleanup EXIT

dovecot_stop "$W/src" 2>/dev/null; dovecot_stop "$W/dst" 2>/dev/null
rm -rf "$W"; mkdir -p "$W/gen" "$W/state"
SP=$(dovecot_free_port 11143); DP=$(dovecot_free_port 12143)
[ "$SP" = "$DP" ] && DP=$(dovecot_free_port $((DP + 1)))
dovecot_start "$W/src" "$SP" . || fail "source dovecot"
dovecot_start "$W/dst" "$DP" / || fail "target dovecot"

# Passwords with a comma and a quote: the CSV must quote them.
APW='pa,ss"1'
dovecot_add_user "$W/src" alice "$APW"
dovecot_add_user "$W/src" bob pb
dovecot_add_user "$W/src" carol pc
for u in alice bob carol; do dovecot_add_user "$W/dst" "$u@example.org" tpw; done

# ---- corpus ------------------------------------------------------------------
# generated mail: folders with non-ASCII names, flags, dates, attachments and
# one 20 MB message; deterministic (seeded), so a failure can be replayed.
python3 - "$W/gen" <<'EOF'
import os, sys, random, base64
out = sys.argv[1]
rnd = random.Random(42)
flagsets = ["-", "\\Seen", "\\Seen \\Flagged", "\\Answered \\Seen", "\\Draft", "\\Seen \\Deleted",
            "$Forwarded \\Seen", "$label1 $Junk", "ProjectX"]  # keywords too
def msg(i, subj, body, attach=None):
    h = ("From: Sender %d <s%d@example.org>\r\nTo: alice@example.org\r\nSubject: %s\r\n"
         "Message-ID: <m%d.%s@example.org>\r\nDate: Mon, 14 Sep 2020 12:%02d:00 +0000\r\n"
         "MIME-Version: 1.0\r\n" % (i, i, subj, i, subj.replace(" ", "_"), i % 60))
    if not attach:
        return h + "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body + "\r\n"
    b = "b%d" % i
    enc = base64.encodebytes(attach).decode().replace("\n", "\r\n")
    return (h + 'Content-Type: multipart/mixed; boundary="%s"\r\n\r\n--%s\r\n'
            "Content-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n--%s\r\n"
            'Content-Type: application/octet-stream; name="f%d.bin"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n%s--%s--\r\n" % (b, b, body, b, i, enc, b))
def write(user, rows):
    with open(os.path.join(out, user + ".lst"), "w") as lst:
        for n, (folder, flags, date, text) in enumerate(rows):
            p = os.path.join(out, "%s-%d.eml" % (user, n))
            with open(p, "wb") as f:
                f.write(text.encode() if isinstance(text, str) else text)
            lst.write("%s\t%s\t%d\t%s\n" % (folder, flags, date, p))
folders = ["INBOX", "Sent Items", "Überweisungen/2024", "日本語", "Projects/A&B", "Papierkorb"]
rows, i = [], 0
for folder in folders:
    for k in range(12 if folder == "INBOX" else 4):
        i += 1
        att = rnd.randbytes(rnd.choice([0, 0, 3000, 70000]))
        rows.append((folder, rnd.choice(flagsets), 1200000000 + rnd.randrange(400000000),
                     msg(i, "msg %d in %s" % (i, folder), "Grüße, message %d. ünïcödé\r\nline two" % i, att or None)))
# the same message twice in one folder: both copies must arrive
rows.append(("INBOX", "\\Seen", 1500000000, rows[0][3]))
# one 20 MB message
big = rnd.randbytes(15 * 1024 * 1024)
rows.append(("INBOX", "\\Seen", 1650000000, msg(9999, "big one", "twenty megabytes", big)))
write("alice", rows)
write("bob", [("Archiv/2019", "\\Seen", 1300000000 + k, msg(100 + k, "archived %d" % k, "old")) for k in range(3)] +
             [("Other", "-", 1300000100, msg(200, "not under root", "x"))])
write("carol", [("INBOX" if k % 3 else "Bulk/Tägliches", flagsets[k % len(flagsets)], 1400000000 + k * 977,
                 msg(1000 + k, "bulk %d" % k, "bulk body %d " % k * 40)) for k in range(400)])
EOF
[ $? = 0 ] || fail "corpus generation"

# real-world messages from ../shared/testdata when present
if [ -n "${MF_SHARED:-}" ] && [ -d "$MF_SHARED/testdata/eml" ]; then
	python3 - "$MF_SHARED/testdata" "$W/gen" >>"$W/gen/alice.lst" <<'EOF'
import os, sys, mailbox
td, out = sys.argv[1], sys.argv[2]
n = 0
def emit(folder, path):
    print("%s\t\\Seen\t%d\t%s" % (folder, 1100000000 + n * 3600, path))
for name in sorted(os.listdir(os.path.join(td, "eml"))):
    p = os.path.join(td, "eml", name)
    if os.path.isfile(p) and os.path.getsize(p) > 0:
        n += 1; emit("Testdata/eml", p)
mb = os.path.join(td, "mbox")
for name in sorted(os.listdir(mb)):
    if not name.endswith(".mbox"):
        continue
    for k, m in enumerate(mailbox.mbox(os.path.join(mb, name))):
        p = os.path.join(out, "mbox-%s-%d.eml" % (name, k))
        with open(p, "wb") as f:
            f.write(m.as_bytes())
        n += 1; emit("Testdata/mbox", p)
for root, dirs, files in os.walk(os.path.join(td, "maildir")):
    dirs.sort()
    for name in sorted(files):
        if os.path.basename(root) in ("cur", "new"):
            n += 1; emit("Testdata/maildir", os.path.join(root, name))
EOF
else
	echo "note: ../shared/testdata absent: generated mail only"
fi

for u in alice bob carol; do
	pw=pb; [ $u = alice ] && pw=$APW; [ $u = carol ] && pw=pc
	dovecot_load "$SP" "$u" "$pw" <"$W/gen/$u.lst" 2>>"$W/load.err" || fail "loading $u"
done
echo "loaded: $(wc -l <"$W/gen/alice.lst") messages for alice ($(grep -c refused "$W/load.err") refused by Dovecot)"

# ---- job ---------------------------------------------------------------------
cat >"$W/manifest.csv" <<EOF
EmailAddress,UserName,Password,UserRoot
alice@example.org,alice,"pa,ss""1",
bob@example.org,bob,pb,Archiv
EOF
cat >"$W/manifest2.csv" <<EOF
EmailAddress,UserName,Password
carol@example.org,carol,pc
EOF
write_job() { # name manifest
	cat >"$W/$1.ini" <<EOF
[job]
name = $1
state = state/$1.db
manifest = $2
parallel = 2

[source]
type = imap
host = 127.0.0.1
port = $SP
tls = none
auth = plain
connections = 2

[sink]
type = imap
host = 127.0.0.1
port = $DP
tls = none
auth = plain
password_env = MF_E2E_TARGET_PW
EOF
}
chmod 600 "$W/manifest.csv" "$W/manifest2.csv"
write_job e2e manifest.csv
write_job kill manifest2.csv
export MF_E2E_TARGET_PW=tpw

# ---- the independent check ---------------------------------------------------------
# source rows with the target's names for folders mapped by role
expect() { # user pw
	dovecot_dump "$SP" "$1" "$2" | sed -e 's/^Sent Items\t/Sent\t/' -e 's/^Papierkorb\t/Trash\t/' | sort
}
check() { # label user pw [source-filter]
	local label=$1 user=$2 pw=$3
	expect "$user" "$pw" >"$W/exp.$user"
	dovecot_dump "$DP" "$user@example.org" tpw | sort >"$W/got.$user"
	if ! diff -q "$W/exp.$user" "$W/got.$user" >/dev/null; then
		diff "$W/exp.$user" "$W/got.$user" | head -20 >&2
		fail "$label: $user: target differs from source ($(wc -l <"$W/exp.$user") expected, $(wc -l <"$W/got.$user") found)"
	fi
	echo "ok: $label: $user: $(wc -l <"$W/got.$user") messages match"
}

run() { # job
	local t0=$(date +%s.%N)
	"$MF_BIN" run "$W/$1.ini" --no-progress >"$W/run.out" 2>"$W/run.err"
	local rc=$?
	RUN_SECS=$(python3 -c "import time; print('%.1f' % (time.time() - $t0))")
	return $rc
}

# 1. first run
run e2e || { tail -20 "$W/run.err" >&2; fail "first run exited $?"; }
echo "first run: ${RUN_SECS}s"
check "first run" alice "$APW"
# bob: only the Archiv subtree, relative to it
dovecot_dump "$DP" bob@example.org tpw >"$W/got.bob"
[ "$(grep -c $'^2019\t' "$W/got.bob")" = 3 ] && [ "$(wc -l <"$W/got.bob")" = 3 ] ||
	fail "UserRoot: bob's target holds $(cut -f1 "$W/got.bob" | sort | uniq -c | tr '\n' ' ')"
echo "ok: UserRoot: bob: 3 messages in 2019"

# 2. second run: nothing moves
run e2e || fail "second run"
check "second run" alice "$APW"
echo "second run (no-op): ${RUN_SECS}s"

# 3. new mail in the source is picked up
printf 'INBOX\t\\Seen\t1700000000\t%s\n日本語\t-\t1700000100\t%s\nNeu/Ordner\t\\Flagged\t1700000200\t%s\n' \
	"$W/gen/alice-1.eml" "$W/gen/alice-2.eml" "$W/gen/alice-3.eml" |
	dovecot_load "$SP" alice "$APW" || fail "adding mail"
run e2e || fail "delta run"
check "delta run" alice "$APW"

# verify (hashes of every target folder against the source) and plan agree
"$MF_BIN" verify "$W/e2e.ini" >"$W/verify.out" 2>"$W/verify.err" ||
	{ tail -20 "$W/verify.out" "$W/verify.err" >&2; fail "verify after the delta run exited $?"; }
"$MF_BIN" plan "$W/e2e.ini" >"$W/plan.out" 2>"$W/plan.err" ||
	{ tail -20 "$W/plan.out" "$W/plan.err" >&2; fail "plan exited $?"; }
grep -q alice "$W/plan.out" "$W/plan.err" || fail "plan does not mention alice"
echo "ok: verify and plan"

# 4. UIDVALIDITY reset: the folder is deleted and made again with the same mail
python3 - "$SP" "$APW" <<'EOF' || fail "UIDVALIDITY reset"
import imaplib, sys
M = imaplib.IMAP4("127.0.0.1", int(sys.argv[1])); M.login("alice", sys.argv[2])
M.select('"&ZeVnLIqe-"')
typ, d = M.uid("FETCH", "1:*", "(FLAGS INTERNALDATE BODY.PEEK[])")
msgs = [(imaplib.ParseFlags(p[0]), imaplib.Internaldate2tuple(p[0]), p[1]) for p in d if isinstance(p, tuple)]
M.close(); M.delete('"&ZeVnLIqe-"'); M.create('"&ZeVnLIqe-"')
for fl, dt, body in msgs:
    fl = " ".join(f.decode() for f in fl if f != b"\\Recent")
    M.append('"&ZeVnLIqe-"', "(" + fl + ")" if fl else None, dt, body)
M.logout()
EOF
run e2e || fail "run after UIDVALIDITY reset"
check "UIDVALIDITY reset" alice "$APW"

# 5. kill -9 in the middle of a run, then rerun: exact result
"$MF_BIN" run "$W/kill.ini" --no-progress >"$W/kill.out" 2>"$W/kill.err" &
pid=$!
for i in $(seq 1 200); do
	n=$(dovecot_doveadm "$W/dst" -f flow mailbox status -u carol@example.org messages INBOX 2>/dev/null | sed 's/.*messages=//')
	[ "${n:-0}" -ge 40 ] && break
	sleep 0.05
done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
echo "killed after ${n:-0} messages had reached carol's INBOX"
run kill || { tail -5 "$W/run.err" >&2; fail "rerun after kill -9"; }
check "kill -9 and rerun" carol pc

# 6. verify notices a message missing on the target
python3 - "$DP" <<'EOF' || fail "removing a target message"
import imaplib, sys
M = imaplib.IMAP4("127.0.0.1", int(sys.argv[1])); M.login("bob@example.org", "tpw")
M.select("2019"); M.uid("STORE", "1", "+FLAGS.SILENT", "(\\Deleted)"); M.expunge(); M.logout()
EOF
if "$MF_BIN" verify "$W/e2e.ini" >"$W/verify2.out" 2>"$W/verify2.err"; then
	fail "verify exited 0 although bob's target lost a message"
fi
echo "ok: verify reports the missing message"
echo "PASS"
