#!/usr/bin/env bash
# imap_courier.sh - IMAP <-> IMAP through `mailferry run` with Courier-IMAP 5.0
# (Debian 12's, unpacked by tools/courier.sh) on one side and Dovecot on the
# other, in both directions. Folder names with non-ASCII, "&", "%", a quote
# and an emoji; keywords, \Deleted, 8-bit headers. Every result is judged
# from the servers' own listings (tests/lib/imap_tool.py, imaplib), never
# from mailferry's state. Checks (issue 12):
#   - defect 2: APPEND into Courier works (it refuses APPEND into an
#     EXAMINEd box), keywords arrive (PERMANENTFLAGS from SELECT, not EXAMINE)
#   - defect 3: kill -9 mid-run into Courier, rerun: 0 duplicates
#   - defect 6: the emoji folder arrives (UTF8=ACCEPT); without UTF8=ACCEPT
#     (hidden by a proxy) it is renamed by the U+XXXX rule; a folder the
#     target refuses counts its messages as failed in the report CSV
#   - defect 7: plan logs in, selects for write, checks the probe's search,
#     and with plan_append_test appends into a scratch folder and deletes it
#   - the sink's open_read (via verify): finds folders, creates nothing
set -u
: "${MF_BIN:?}" "${MF_SRC:?}"
W=${MF_TMP:-$(mktemp -d /tmp/mf-imap-courier.XXXXXX)}
. "$MF_SRC/tests/lib/dovecot.sh"
. "$MF_SRC/tests/lib/courier.sh"
dovecot_available || { echo "SKIP: dovecot or python3 not installed (apt-get install dovecot-imapd)"; exit 77; }
why=$(courier_available) || { echo "SKIP: $why"; exit 77; }

# setup problems stop the test; a failed check is counted and the test goes
# on, so that one run shows every check that fails
die() { echo "FAIL: $*" >&2; exit 1; }
nfail=0
fail() { echo "FAIL: $*" >&2; nfail=$((nfail + 1)); return 1; }
PROXY_PID=
cleanup() {
	[ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null
	dovecot_stop "$W/dc"; courier_stop "$W/cr"
}
trap cleanup EXIT
tool() { python3 "$MF_SRC/tests/lib/imap_tool.py" "$@"; }

dovecot_stop "$W/dc" 2>/dev/null; courier_stop "$W/cr" 2>/dev/null
rm -rf "$W"; mkdir -p "$W/gen" "$W/state"
DP=$(dovecot_free_port 13143); CP=$(dovecot_free_port $((DP + 1)))
dovecot_start "$W/dc" "$DP" / || die "dovecot"
courier_start "$W/cr" "$CP" || die "courier"
for u in alice carol bob@example.org frank@example.org; do dovecot_add_user "$W/dc" "$u" pw; done
for u in alice@example.org carol@example.org dave frank; do courier_add_user "$W/cr" "$u" cpw || die "courier user $u"; done

# ---- corpus (deterministic) ------------------------------------------------------------
python3 - "$W/gen" <<'PY' || die "corpus"
import os, sys, random
out = sys.argv[1]
rnd = random.Random(12)
folders = ["INBOX", "Überweisungen/2024", "日本語", "Projects/A&B", "100% done",
           'Say "hi"', "Fun 😀"]
flagsets = ["-", "\\Seen", "\\Seen \\Flagged", "\\Answered \\Seen", "\\Seen \\Deleted",
            "$Forwarded \\Seen", "ProjectX $label1", "\\Draft"]
def msg(i, folder, size):
    # 8-bit header: raw UTF-8 in Subject and From (no RFC 2047)
    h = ("From: Jürgen Größ <j%d@example.org>\r\nTo: alice@example.org\r\n"
         "Subject: Grüße %d aus %s\r\nMessage-ID: <c%d.%d@example.org>\r\n"
         "Date: Tue, 15 Sep 2020 10:%02d:00 +0000\r\nMIME-Version: 1.0\r\n"
         "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
         % (i, i, folder, i, size, i % 60))
    body = "".join("Zeile %d: ünïcödé %s\r\n" % (k, "x" * rnd.randrange(10, 70))
                   for k in range(size))
    return (h + body).encode()
def write(name, rows):
    with open(os.path.join(out, name + ".lst"), "w") as lst:
        for n, (folder, flags, date, data) in enumerate(rows):
            p = os.path.join(out, "%s-%d.eml" % (name, n))
            open(p, "wb").write(data)
            lst.write("%s\t%s\t%d\t%s\n" % (folder, flags, date, p))
rows, i = [], 0
for f in folders:
    for k in range(6 if f == "INBOX" else 3):
        i += 1
        rows.append((f, flagsets[i % len(flagsets)], 1500000000 + i * 86400 * 3, msg(i, f, rnd.randrange(2, 60))))
rows.append(("INBOX", "\\Seen", 1500000000, rows[0][3]))  # the same message twice
write("mix", rows)
# the kill test: ~9.5 KB messages (as in the issue), in a few days
write("bulk", [("INBOX" if k % 4 else "Bulk/Tägliches", flagsets[k % len(flagsets)],
                1600000000 + k * 977, msg(5000 + k, "bulk", 150)) for k in range(300)])
PY
tool load "$DP" alice pw <"$W/gen/mix.lst" 2>"$W/load.err" || { cat "$W/load.err" >&2; die "loading alice into Dovecot"; }
tool load "$DP" carol pw <"$W/gen/bulk.lst" 2>>"$W/load.err" || die "loading carol into Dovecot"
tool load "$CP" dave cpw <"$W/gen/mix.lst" 2>>"$W/load.err" || { cat "$W/load.err" >&2; die "loading dave into Courier"; }
tool load "$CP" frank cpw <"$W/gen/bulk.lst" 2>>"$W/load.err" || { cat "$W/load.err" >&2; die "loading frank into Courier"; }
echo "loaded: $(wc -l <"$W/gen/mix.lst") messages in $(cut -f1 "$W/gen/mix.lst" | sort -u | wc -l) folders, $(wc -l <"$W/gen/bulk.lst") bulk"

# ---- jobs --------------------------------------------------------------------------------
job() { # name manifest srcport dstport [extra sink lines...]
	local name=$1 man=$2 sp=$3 dp=$4
	shift 4
	{
		printf '[job]\nname = %s\nstate = state/%s.db\nmanifest = %s\nparallel = 1\n\n' "$name" "$name" "$man"
		printf '[source]\ntype = imap\nhost = 127.0.0.1\nport = %s\ntls = none\nauth = plain\n\n' "$sp"
		printf '[sink]\ntype = imap\nhost = 127.0.0.1\nport = %s\ntls = none\nauth = plain\npassword_env = MF_TARGET_PW\n' "$dp"
		for l in "$@"; do echo "$l"; done
	} >"$W/$name.ini"
}
printf 'EmailAddress,UserName,Password\nalice@example.org,alice,pw\n' >"$W/d2c.csv"
printf 'EmailAddress,UserName,Password\ncarol@example.org,carol,pw\n' >"$W/kill.csv"
printf 'EmailAddress,UserName,Password\nbob@example.org,dave,cpw\n' >"$W/c2d.csv"
printf 'EmailAddress,UserName,Password\nfrank@example.org,frank,cpw\n' >"$W/kill2.csv"
chmod 600 "$W"/*.csv
job d2c d2c.csv "$DP" "$CP"
job kill kill.csv "$DP" "$CP"
job c2d c2d.csv "$CP" "$DP"
job kill2 kill2.csv "$CP" "$DP"
job plan d2c.csv "$DP" "$CP" "plan_append_test = yes"

run() { # job [expected-exit]
	"$MF_BIN" run "$W/$1.ini" --no-progress >"$W/$1.out" 2>"$W/$1.err"
}
# both sides' rows: folder, flags, INTERNALDATE, SHA-256 (CRLF -> LF)
compare() { # label srcport srcuser srcpw dstport dstuser dstpw
	tool dump "$2" "$3" "$4" >"$W/exp.$1" || fail "$1: dumping the source"
	tool dump "$5" "$6" "$7" >"$W/got.$1" || fail "$1: dumping the target"
	if ! diff -q "$W/exp.$1" "$W/got.$1" >/dev/null; then
		diff "$W/exp.$1" "$W/got.$1" | head -20 >&2
		fail "$1: target differs from source ($(wc -l <"$W/exp.$1") expected, $(wc -l <"$W/got.$1") found)"
		return 1
	fi
	local dups
	dups=$(cut -f1,4 "$W/got.$1" | sort | uniq -d | wc -l)
	echo "ok: $1: $(wc -l <"$W/got.$1") messages in $(cut -f1 "$W/got.$1" | sort -u | wc -l) folders match (source's own duplicates: $dups)"
}

# ---- 1. plan against Courier (defect 7) ------------------------------------------------------
export MF_TARGET_PW=cpw
"$MF_BIN" plan "$W/plan.ini" >"$W/plan.out" 2>"$W/plan.err" || { rc=$?; cat "$W/plan.out" "$W/plan.err" >&2; fail "plan against Courier exited $rc"; }
grep -q "target: logged in" "$W/plan.out" || { cat "$W/plan.out" >&2; fail "plan does not report the sink's checks"; }
grep -q "APPEND test into mailferry-plan-check passed" "$W/plan.out" || { cat "$W/plan.out" >&2; fail "plan_append_test did not run or failed"; }
grep -q "UTF8=ACCEPT" "$W/plan.out" || fail "plan does not say how folder names are written"
tool folders "$CP" alice@example.org cpw | grep -q mailferry-plan-check && fail "plan left its scratch folder behind"
[ "$(tool dump "$CP" alice@example.org cpw | wc -l)" = 0 ] || fail "plan left messages on the target"
[ "$nfail" = 0 ] && echo "ok: plan: login, SELECT for write, search check, APPEND test, scratch folder gone"
MF_TARGET_PW=wrong "$MF_BIN" plan "$W/d2c.ini" >"$W/plan2.out" 2>&1 && fail "plan with a wrong target password exited 0"
grep -q "WILL FAIL" "$W/plan2.out" || fail "plan with a wrong password does not say WILL FAIL"
echo "ok: plan: a refused login is WILL FAIL"

# ---- 2. Dovecot -> Courier (defects 2, 6) ------------------------------------------------------
run d2c || { rc=$?; tail -20 "$W/d2c.err" >&2; fail "Dovecot -> Courier run exited $rc"; }
compare "Dovecot->Courier" "$DP" alice pw "$CP" alice@example.org cpw
grep -q "^Fun 😀" "$W/got.Dovecot->Courier" || fail "the emoji folder is missing on Courier"
run d2c || fail "second Dovecot -> Courier run"
compare "Dovecot->Courier, second run" "$DP" alice pw "$CP" alice@example.org cpw
# verify reads the target through open_read: it must create nothing
before=$(tool folders "$CP" alice@example.org cpw | md5sum)
"$MF_BIN" verify "$W/d2c.ini" >"$W/verify.out" 2>"$W/verify.err" ||
	{ rc=$?; tail -20 "$W/verify.out" "$W/verify.err" >&2; fail "verify Dovecot -> Courier exited $rc"; }
[ "$(tool folders "$CP" alice@example.org cpw | md5sum)" = "$before" ] &&
	echo "ok: verify against Courier matches and creates nothing" || fail "verify changed Courier's folders"

# ---- 3. kill -9 into Courier, rerun (defect 3) ----------------------------------------------------
"$MF_BIN" run "$W/kill.ini" --no-progress >"$W/kill1.out" 2>"$W/kill1.err" &
pid=$!
n=0
for i in $(seq 1 400); do
	n=$(find "$W/cr/mail/carol@example.org/Maildir/cur" "$W/cr/mail/carol@example.org/Maildir/new" -type f 2>/dev/null | wc -l)
	[ "$n" -ge 60 ] && break
	sleep 0.05
done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
echo "killed after $n messages had reached carol's INBOX on Courier"
[ "$n" -lt 300 ] || fail "the run finished before it could be killed"
run kill || { tail -5 "$W/kill.err" >&2; fail "rerun after kill -9"; }
compare "kill -9 into Courier, rerun" "$DP" carol pw "$CP" carol@example.org cpw
dups=$(cut -f1,4 "$W/got.kill -9 into Courier, rerun" | sort | uniq -d | wc -l)
[ "$dups" = 0 ] && [ -s "$W/got.kill -9 into Courier, rerun" ] &&
	echo "ok: 0 duplicates on Courier after kill -9 and rerun" || fail "$dups duplicates on Courier after the rerun"

# ---- 4. Courier -> Dovecot ------------------------------------------------------------------
export MF_TARGET_PW=pw
run c2d || { rc=$?; tail -20 "$W/c2d.err" >&2; fail "Courier -> Dovecot run exited $rc"; }
compare "Courier->Dovecot" "$CP" dave cpw "$DP" bob@example.org pw
run c2d || fail "second Courier -> Dovecot run"
compare "Courier->Dovecot, second run" "$CP" dave cpw "$DP" bob@example.org pw
# kill -9 while reading from Courier, rerun
"$MF_BIN" run "$W/kill2.ini" --no-progress >"$W/kill2a.out" 2>"$W/kill2a.err" &
pid=$!
n=0
for i in $(seq 1 400); do
	n=$(dovecot_doveadm "$W/dc" -f flow mailbox status -u frank@example.org messages INBOX 2>/dev/null | sed 's/.*messages=//')
	[ "${n:-0}" -ge 60 ] && break
	sleep 0.05
done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
echo "killed after ${n:-0} messages from Courier had reached frank's INBOX on Dovecot"
[ "${n:-0}" -lt 300 ] || fail "the Courier -> Dovecot run finished before it could be killed"
run kill2 || { rc=$?; tail -5 "$W/kill2.err" >&2; fail "rerun after kill -9 (Courier -> Dovecot) exited $rc"; }
compare "kill -9 from Courier, rerun" "$CP" frank cpw "$DP" frank@example.org pw &&
	dups=$(cut -f1,4 "$W/got.kill -9 from Courier, rerun" | sort | uniq -d | wc -l) &&
	{ [ "$dups" = 0 ] && echo "ok: 0 duplicates on Dovecot after kill -9 and rerun" || fail "$dups duplicates on Dovecot"; }

nfail5=$nfail
# ---- 5. no UTF8=ACCEPT: the U+XXXX rule; a refused folder counts as failed ---------------------------
PP=$(dovecot_free_port $((CP + 1)))
python3 "$MF_SRC/tests/lib/imap_faultproxy.py" --listen "$PP" --target "127.0.0.1:$CP" \
	--hide-caps "UTF8=ACCEPT,ENABLE" --raw-client >"$W/proxy.log" 2>&1 &
PROXY_PID=$!
for i in $(seq 1 50); do python3 -c "import socket; socket.create_connection(('127.0.0.1',$PP),1)" 2>/dev/null && break; sleep 0.1; done
courier_add_user "$W/cr" erin@example.org cpw || die "courier user erin"
# a folder Courier cannot create: a plain file where its Maildir++ directory goes
: >"$W/cr/mail/erin@example.org/Maildir/.Projects.A&B"
printf 'EmailAddress,UserName,Password\nerin@example.org,alice,pw\n' >"$W/nou.csv"; chmod 600 "$W/nou.csv"
job nou nou.csv "$DP" "$PP"
export MF_TARGET_PW=cpw
run nou; rc=$?
[ "$rc" = 1 ] || { tail -20 "$W/nou.err" >&2; fail "run with a refused folder exited $rc, expected 1 (finished with failures)"; }
tool folders "$CP" erin@example.org cpw >"$W/erin.folders"
grep -qx "Fun U+1F600" "$W/erin.folders" || { cat "$W/erin.folders" >&2; fail "without UTF8=ACCEPT the emoji folder is not 'Fun U+1F600'"; }
grep -q "event=folder-renamed" "$W/nou.err" || fail "the rename is not logged"
tool dump "$CP" erin@example.org cpw >"$W/got.erin"
[ "$(grep -c $'^Fun U+1F600\t' "$W/got.erin")" = 3 ] || fail "the renamed folder does not hold its 3 messages"
nproj=$(grep -c $'^Projects/' "$W/gen/mix.lst")
"$MF_BIN" report "$W/nou.ini" --format csv >"$W/nou.csv.report" || true
failed=$(python3 -c "import csv,sys; r=list(csv.DictReader(open(sys.argv[1]))); print(r[0]['failed'])" "$W/nou.csv.report")
runfailed=$(grep -o 'failed=[0-9]*' "$W/nou.err" | tail -1 | cut -d= -f2)
[ "$failed" = "$nproj" ] || { cat "$W/nou.csv.report" >&2; fail "report CSV failed=$failed, expected $nproj (the messages of the refused folder; run said failed=${runfailed:-?})"; }
[ "$nfail" = "$nfail5" ] && echo "ok: without UTF8=ACCEPT: 'Fun 😀' -> 'Fun U+1F600' (3 messages); refused folder: report failed=$failed, run failed=${runfailed:-?}"
[ "$nfail" = 0 ] || { echo "$nfail checks failed"; exit 1; }
echo "PASS"
