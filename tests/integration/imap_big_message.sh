#!/usr/bin/env bash
# imap_big_message.sh - one big message (MF_BIG_MB, default 120 MB; the
# bench script runs 1 GB) from a Dovecot of our own, through `mailferry run`
# into a Maildir and into a second Dovecot over IMAP. What is checked:
#   - the message arrives whole: the Maildir file has the source's bytes,
#     the target server's copy has the same SHA-256 (CRLF -> LF);
#   - memory stays bounded: the message lives in spill files beside the
#     state, not on the heap; the peak anonymous memory (RssAnon, sampled
#     every 20 ms) stays under MF_BIG_ANON_MB (default 100 MB) where holding
#     the message on the heap would take over twice its size;
#   - it went through spill files in the state directory, unlinked at once
#     (seen in /proc/PID/maps as "(deleted)").
# Skips without dovecot.
set -u
: "${MF_BIN:?}" "${MF_SRC:?}"
W=${MF_TMP:-$(mktemp -d /tmp/mf-big.XXXXXX)}
MB=${MF_BIG_MB:-120}
ANON_MAX=${MF_BIG_ANON_MB:-100}
. "$MF_SRC/tests/lib/dovecot.sh"
dovecot_available || { echo "SKIP: dovecot or python3 not installed (apt-get install dovecot-imapd)"; exit 77; }

fail() { echo "FAIL: $*" >&2; exit 1; }
cleanup() { dovecot_stop "$W/src"; dovecot_stop "$W/dst"; }
trap cleanup EXIT
dovecot_stop "$W/src" 2>/dev/null; dovecot_stop "$W/dst" 2>/dev/null
rm -rf "$W"; mkdir -p "$W/state"
SP=$(dovecot_free_port 11163); DP=$(dovecot_free_port 12163)
[ "$SP" = "$DP" ] && DP=$(dovecot_free_port $((DP + 1)))
dovecot_start "$W/src" "$SP" . || fail "source dovecot"
dovecot_start "$W/dst" "$DP" / || fail "target dovecot"
dovecot_add_user "$W/src" alice pa
dovecot_add_user "$W/dst" alice@example.org pt

# A multipart message with one base64 attachment of MB megabytes (seeded
# bytes, 76-character lines, LF line ends: what the Maildir sink writes).
python3 - "$W/big.eml" "$MB" <<'EOF'
import base64, random, sys
path, mb = sys.argv[1], int(sys.argv[2])
rnd = random.Random(20261127)
raw = mb * 1024 * 1024 * 3 // 4
with open(path, "wb") as f:
    f.write(b"From: Ann <ann@example.org>\nTo: alice@example.org\nSubject: big one\n"
            b"Date: Tue, 03 Nov 2026 10:00:00 +0000\nMessage-ID: <big-%d@example.org>\n"
            b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b1\"\n\n"
            b"--b1\nContent-Type: text/plain; charset=us-ascii\n\nsee attachment\n"
            b"--b1\nContent-Type: application/octet-stream; name=\"big.bin\"\n"
            b"Content-Disposition: attachment; filename=\"big.bin\"\n"
            b"Content-Transfer-Encoding: base64\n\n" % mb)
    left = raw
    while left:
        n = min(left, 57 * 16384)
        f.write(base64.encodebytes(rnd.randbytes(n)))
        left -= n
    f.write(b"--b1--\n")
EOF
size=$(stat -c %s "$W/big.eml")
want=$(sha256sum <"$W/big.eml" | cut -d' ' -f1)
dovecot_doveadm "$W/src" save -u alice -m INBOX <"$W/big.eml" || fail "doveadm save"
echo "source: one message of $size bytes"

cat >"$W/manifest.csv" <<EOF
EmailAddress,UserName,Password
alice@example.org,alice,pa
EOF
chmod 600 "$W/manifest.csv"
job() { # name sink-lines...
	local n=$1
	shift
	{
		printf '[job]\nname = %s\nstate = state/%s.db\nmanifest = manifest.csv\n' "$n" "$n"
		printf '[source]\ntype = imap\nhost = 127.0.0.1\nport = %s\ntls = none\nauth = plain\n[sink]\n' "$SP"
		printf '%s\n' "$@"
	} >"$W/$n.ini"
}
job maildir "type = maildir" "path = out"
job imap "type = imap" "host = 127.0.0.1" "port = $DP" "tls = none" "auth = plain" "password_env = MF_BIG_PW" "max_message_mb = 4096"
export MF_BIG_PW=pt

# run NAME: mailferry run, its peak RssAnon / VmHWM sampled from /proc
run() {
	"$MF_BIN" run "$W/$1.ini" --no-progress >"$W/$1.log" 2>&1 &
	local pid=$!
	python3 - "$pid" "$W/state" >"$W/$1.mem" <<'EOF'
import sys, time
pid, state = sys.argv[1], sys.argv[2]
anon = hwm = spill = 0
while True:
    try:
        with open("/proc/%s/maps" % pid) as f:
            # spill buffers: files of the state directory, unlinked at once
            spill = max(spill, sum(1 for l in f if state in l and l.rstrip().endswith("(deleted)")))
    except OSError:
        pass
    try:
        with open("/proc/%s/status" % pid) as f:
            st = dict(l.split(":", 1) for l in f if ":" in l)
    except OSError:
        break
    if "RssAnon" not in st:
        break
    anon = max(anon, int(st["RssAnon"].split()[0]))
    hwm = max(hwm, int(st.get("VmHWM", "0 kB").split()[0]))
    time.sleep(0.02)
print(anon // 1024, hwm // 1024, spill)
EOF
	wait "$pid"
}

for sink in maildir imap; do
	t0=$(date +%s%N)
	run "$sink" || { tail -5 "$W/$sink.log"; fail "$sink: mailferry run failed"; }
	t1=$(date +%s%N)
	read -r anon hwm spill <"$W/$sink.mem"
	echo "$sink: $(((t1 - t0) / 1000000)) ms, peak RssAnon $anon MB, peak RSS (with mapped spill pages) $hwm MB"
	[ "$anon" -lt "$ANON_MAX" ] || fail "$sink: peak anonymous memory $anon MB, over $ANON_MAX MB for a $MB MB message"
	[ "$spill" -gt 0 ] || fail "$sink: no unlinked spill file of $W/state was ever mapped"
	echo "ok - $sink: the message went through $spill unlinked spill file(s) beside the state at once"
	stored=$("$MF_BIN" report "$W/$sink.ini" --format json |
		python3 -c 'import json,sys; print(sum(m["messages_stored"] for m in json.load(sys.stdin)["mailboxes"]))')
	[ "$stored" = 1 ] || fail "$sink: the report counts $stored stored messages, expected 1"
done

# the Maildir copy: byte for byte
files=$(find "$W/out" -type f -path '*/cur/*' -o -type f -path '*/new/*' | wc -l)
[ "$files" -eq 1 ] || fail "maildir: $files message files, expected 1"
got=$(sha256sum <"$(find "$W/out" -type f \( -path '*/cur/*' -o -path '*/new/*' \))" | cut -d' ' -f1)
[ "$got" = "$want" ] || fail "maildir: the stored message differs from the source"
echo "ok - maildir: the stored message is the source's, byte for byte"

# the IMAP copy, read back from the target server (CRLF -> LF)
dump=$(dovecot_dump "$DP" alice@example.org pt)
[ "$(wc -l <<<"$dump")" -eq 1 ] || fail "imap: expected 1 message on the target, got: $dump"
[ "$(cut -f4 <<<"$dump")" = "$want" ] || fail "imap: the target's message differs from the source"
echo "ok - imap: the target server holds the source's message"

echo "ok - big message: $MB MB moved whole, heap bounded"
