#!/usr/bin/env bash
# imap_nocaps.sh - IMAP -> IMAP between two Dovecot servers, each behind
# tests/lib/imap_faultproxy.py hiding UIDPLUS, LITERAL+, SPECIAL-USE,
# COMPRESS and SASL-IR (what Domino, GroupWise or old Zimbra offer), the
# target's also answering PERMANENTFLAGS without keywords. Judged from the
# servers themselves (tests/lib/imap_tool.py straight to Dovecot, not through
# the proxies): every message arrives with its flags and INTERNALDATE; the
# keywords the target does not keep are dropped and logged, nothing else;
# a second run moves nothing; kill -9 mid-run and a rerun leave 0
# duplicates (the probe without UIDPLUS: Message-ID, then date and size).
set -u
: "${MF_BIN:?}" "${MF_SRC:?}"
W=${MF_TMP:-$(mktemp -d /tmp/mf-imap-nocaps.XXXXXX)}
. "$MF_SRC/tests/lib/dovecot.sh"
dovecot_available || { echo "SKIP: dovecot or python3 not installed (apt-get install dovecot-imapd)"; exit 77; }

# setup problems stop the test; a failed check is counted and the test goes
# on, so that one run shows every check that fails
die() { echo "FAIL: $*" >&2; exit 1; }
nfail=0
fail() { echo "FAIL: $*" >&2; nfail=$((nfail + 1)); return 1; }
P1= P2=
cleanup() {
	[ -n "$P1" ] && kill "$P1" 2>/dev/null
	[ -n "$P2" ] && kill "$P2" 2>/dev/null
	dovecot_stop "$W/src"; dovecot_stop "$W/dst"
}
trap cleanup EXIT
tool() { python3 "$MF_SRC/tests/lib/imap_tool.py" "$@"; }

dovecot_stop "$W/src" 2>/dev/null; dovecot_stop "$W/dst" 2>/dev/null
rm -rf "$W"; mkdir -p "$W/gen" "$W/state"
SP=$(dovecot_free_port 15143); DP=$(dovecot_free_port $((SP + 1)))
SPP=$(dovecot_free_port $((DP + 1))); DPP=$(dovecot_free_port $((SPP + 1)))
dovecot_start "$W/src" "$SP" . || die "source dovecot"
dovecot_start "$W/dst" "$DP" / || die "target dovecot"
for u in alice carol; do dovecot_add_user "$W/src" "$u" pw; dovecot_add_user "$W/dst" "$u@example.org" tpw; done
HIDE="UIDPLUS,LITERAL+,LITERAL-,SPECIAL-USE,COMPRESS=DEFLATE,SASL-IR"
python3 "$MF_SRC/tests/lib/imap_faultproxy.py" --listen "$SPP" --target "127.0.0.1:$SP" \
	--hide-caps "$HIDE" >"$W/proxy1.log" 2>&1 &
P1=$!
python3 "$MF_SRC/tests/lib/imap_faultproxy.py" --listen "$DPP" --target "127.0.0.1:$DP" \
	--hide-caps "$HIDE" --no-perm-keywords >"$W/proxy2.log" 2>&1 &
P2=$!
for p in $SPP $DPP; do
	for i in $(seq 1 50); do python3 -c "import socket; socket.create_connection(('127.0.0.1',$p),1)" 2>/dev/null && break; sleep 0.1; done
done
# what the client sees: none of the hidden capabilities, no keywords kept
python3 - "$DPP" <<'PY' || die "the proxy does not hide what it should"
import imaplib, sys
M = imaplib.IMAP4("127.0.0.1", int(sys.argv[1])); M.login("alice@example.org", "tpw")
caps = M.capability()[1][0].decode().upper().split()
hidden = [c for c in ("UIDPLUS", "LITERAL+", "SPECIAL-USE", "COMPRESS=DEFLATE", "SASL-IR") if c in caps]
M.select("INBOX"); pf = M.response("PERMANENTFLAGS")[1][0].decode()
lst = b" ".join(M.list('""', "*")[1]).decode()
M.logout()
assert not hidden, hidden
assert "\\*" not in pf, pf
assert "\\Sent" not in lst, lst
print("proxy: capabilities %s; PERMANENTFLAGS %s" % (" ".join(caps), pf))
PY

python3 - "$W/gen" <<'PY' || die "corpus"
import os, sys, random
out = sys.argv[1]
rnd = random.Random(7)
folders = ["INBOX", "Sent", "Überweisungen/2024", "Projects/A&B", "100% done", 'Say "hi"']
flagsets = ["-", "\\Seen", "\\Seen \\Flagged", "\\Answered \\Seen", "\\Seen \\Deleted",
            "$Forwarded \\Seen", "ProjectX", "\\Draft"]
def msg(i, size):
    h = ("From: Jürgen <j%d@example.org>\r\nTo: alice@example.org\r\nSubject: Grüße %d\r\n"
         "Message-ID: <n%d@example.org>\r\nDate: Tue, 15 Sep 2020 10:%02d:00 +0000\r\n\r\n" % (i, i, i, i % 60))
    return (h + "".join("line %d %s\r\n" % (k, "y" * rnd.randrange(5, 70)) for k in range(size))).encode()
def write(name, rows):
    with open(os.path.join(out, name + ".lst"), "w") as lst:
        for n, (folder, flags, date, data) in enumerate(rows):
            p = os.path.join(out, "%s-%d.eml" % (name, n))
            open(p, "wb").write(data)
            lst.write("%s\t%s\t%d\t%s\n" % (folder, flags, date, p))
rows, i = [], 0
for f in folders:
    for k in range(5):
        i += 1
        rows.append((f, flagsets[i % len(flagsets)], 1500000000 + i * 7777, msg(i, rnd.randrange(2, 80))))
write("alice", rows)
write("carol", [("INBOX", flagsets[k % len(flagsets)], 1600000000 + k * 977, msg(3000 + k, 150)) for k in range(300)])
PY
tool load "$SP" alice pw <"$W/gen/alice.lst" || die "loading alice"
tool load "$SP" carol pw <"$W/gen/carol.lst" || die "loading carol"

job() { # name manifest
	cat >"$W/$1.ini" <<EOF2
[job]
name = $1
state = state/$1.db
manifest = $2
parallel = 1

[source]
type = imap
host = 127.0.0.1
port = $SPP
tls = none
auth = plain

[sink]
type = imap
host = 127.0.0.1
port = $DPP
tls = none
auth = plain
password = tpw
EOF2
}
printf 'EmailAddress,UserName,Password\nalice@example.org,alice,pw\n' >"$W/a.csv"
printf 'EmailAddress,UserName,Password\ncarol@example.org,carol,pw\n' >"$W/c.csv"
chmod 600 "$W"/*.csv
job e2e a.csv
job kill c.csv
# expected: the source's rows without keywords (the target keeps none)
compare() { # label user
	tool dump "$SP" "$2" pw | python3 -c '
import sys
for l in sys.stdin:
    f, fl, d, h = l.rstrip("\n").split("\t")
    fl = " ".join(x for x in fl.split() if x.startswith("\\")) or "-"
    print("\t".join((f, fl, d, h)))' | sort >"$W/exp.$2"
	tool dump "$DP" "$2@example.org" tpw | sort >"$W/got.$2"
	if ! diff -q "$W/exp.$2" "$W/got.$2" >/dev/null; then
		diff "$W/exp.$2" "$W/got.$2" | head -20 >&2
		fail "$1: target differs ($(wc -l <"$W/exp.$2") expected, $(wc -l <"$W/got.$2") found)"
		return 1
	fi
	local dups
	dups=$(cut -f1,4 "$W/got.$2" | sort | uniq -d | wc -l)
	[ "$dups" = 0 ] || { fail "$1: $dups duplicates"; return 1; }
	echo "ok: $1: $(wc -l <"$W/got.$2") messages match, 0 duplicates"
}

"$MF_BIN" run "$W/e2e.ini" --no-progress >"$W/run1.out" 2>"$W/run1.err" || { tail -20 "$W/run1.err" >&2; fail "first run"; }
compare "first run" alice
grep -q 'event=keywords_dropped' "$W/run1.err" || fail "dropped keywords are not logged"
echo "ok: dropped keywords logged: $(grep -c 'event=keywords_dropped' "$W/run1.err") folders"
"$MF_BIN" run "$W/e2e.ini" --no-progress >"$W/run2.out" 2>"$W/run2.err" || fail "second run"
grep -q 'stored=0 ' "$W/run2.err" || { grep mailbox-done "$W/run2.err" >&2; fail "the second run stored something"; }
compare "second run" alice
"$MF_BIN" plan "$W/e2e.ini" >"$W/plan.out" 2>&1 || { cat "$W/plan.out" >&2; fail "plan"; }
n0=$nfail
grep -q "no UIDPLUS" "$W/plan.out" || fail "plan does not say that the target lacks UIDPLUS"
grep -q "keeps no keywords" "$W/plan.out" || fail "plan does not say that the target keeps no keywords"
[ "$nfail" = "$n0" ] && echo "ok: plan names the missing UIDPLUS and keywords"

"$MF_BIN" run "$W/kill.ini" --no-progress >"$W/kill1.out" 2>"$W/kill1.err" &
pid=$!
n=0
for i in $(seq 1 400); do
	n=$(dovecot_doveadm "$W/dst" -f flow mailbox status -u carol@example.org messages INBOX 2>/dev/null | sed 's/.*messages=//')
	[ "${n:-0}" -ge 60 ] && break
	sleep 0.05
done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
echo "killed after ${n:-0} messages had reached carol's INBOX"
[ "${n:-0}" -lt 300 ] || fail "the run finished before it could be killed"
"$MF_BIN" run "$W/kill.ini" --no-progress >"$W/kill2.out" 2>"$W/kill2.err" || { tail -5 "$W/kill2.err" >&2; fail "rerun after kill -9"; }
compare "kill -9 and rerun without UIDPLUS" carol
[ "$nfail" = 0 ] || { echo "$nfail checks failed"; exit 1; }
echo "PASS"
