#!/usr/bin/env bash
# imap_cyrus.sh - IMAP -> IMAP through `mailferry run` with Cyrus IMAP 3.6 (a
# server nobody here wrote, stricter than Dovecot) at one end and Dovecot at
# the other, in both directions: Dovecot -> Cyrus and Cyrus -> Dovecot.
#
# Cyrus runs from Debian's .debs unpacked by tools/cyrus.sh (skips, exit 77,
# when it cannot be). Its config is Cyrus's defaults plus altnamespace, "/"
# as separator and virtdomains: the user sees "Other Users/..." and "Shared
# Folders/...", and Cyrus refuses % ; < > ^ ` { | } " \ in folder names;
# munge8bit is on (its default).
#
# The corpus: folders with non-ASCII, &, %, quote, backslash and emoji names,
# keywords, \Deleted, and messages with raw 8-bit (UTF-8) header bytes. Each
# target is compared with its source by an independent IMAP client (imaplib),
# not by mailferry's state: per folder the multiset of (flags, INTERNALDATE,
# SHA-256 of the content with CRLF -> LF), folder names mapped by the rule
# the README documents, 8-bit headers as munge8bit leaves them. Then:
#  - a second run moves nothing;
#  - other users' and shared folders stay out (and come with namespaces = all);
#  - auth = login works, a wrong password is class auth;
#  - kill -9 at store, pending and commit points in both directions, rerun:
#    exact, no extra copy;
#  - 2 x (verify --repair, run) against Cyrus's rewriting adds no copy, and
#    the change is reported;
#  - headers_8bit = encode: the target equals the source by meaning (every
#    header decoded), no raw 8-bit header left, counted in the report;
#  - COMPRESS refused three ways (NO, BAD, unparsable) by a proxy: uncompressed.
set -u
: "${MF_BIN:?}" "${MF_SRC:?}"
W=${MF_TMP:-$(mktemp -d /tmp/mf-imap-cyrus.XXXXXX)}
. "$MF_SRC/tests/lib/dovecot.sh"
. "$MF_SRC/tests/lib/cyrus.sh"
dovecot_available || { echo "SKIP: dovecot or python3 not installed (apt-get install dovecot-imapd)"; exit 77; }
if ! cyrus_available; then
	"$MF_SRC/tools/cyrus.sh" "$CYRUS_ROOT_DIR" >/dev/null 2>&1 ||
		{ echo "SKIP: Cyrus could not be unpacked (tools/cyrus.sh: apt-get download failed)"; exit 77; }
fi

failures=0
fail() { echo "FAIL: $*" >&2; exit 1; }
bad() { echo "FAIL: $*"; failures=$((failures + 1)); }
PROXY_PIDS=()
cleanup() {
	for p in "${PROXY_PIDS[@]}"; do kill "$p" 2>/dev/null; done
	cyrus_stop "$W/cyr"
	dovecot_stop "$W/dc"
}
trap cleanup EXIT

cyrus_stop "$W/cyr" 2>/dev/null; dovecot_stop "$W/dc" 2>/dev/null
rm -rf "$W"; mkdir -p "$W/gen" "$W/state"
CP=$(dovecot_free_port 13143); DP=$(dovecot_free_port $((CP + 1)))
cyrus_start "$W/cyr" "$CP" || fail "cyrus did not start (see $W/cyr/log)"
dovecot_start "$W/dc" "$DP" / || fail "dovecot did not start"

# Dovecot: the source of direction 1 and the targets of direction 2
dovecot_add_user "$W/dc" dana pd
for u in cyra cyra-all cyra-l cyra-k1 cyra-k2 cyra-k3 cyra-z1 cyra-z2 cyra-z3; do dovecot_add_user "$W/dc" "$u@example.org" tpw; done
# Cyrus: the source of direction 2 and the targets of direction 1;
# user0002 shares a folder with cyra, and there is a shared folder
# (virtdomains: users are u@example.org, shared folders are the domain's)
for u in cyra user0002; do cyrus_add_user "$W/cyr" "$CP" "$u@example.org" pc || fail "cyrus user $u"; done
for u in dana dana-e dana-k1 dana-k2 dana-k3; do cyrus_add_user "$W/cyr" "$CP" "$u@example.org" tpw || fail "cyrus user $u"; done
cyrus_admin "$CP" create "user/user0002/Team Share@example.org" &&
	cyrus_admin "$CP" setacl "user/user0002/Team Share@example.org" cyra@example.org lrs &&
	cyrus_admin "$CP" create "Public@example.org" &&
	cyrus_admin "$CP" setacl "Public@example.org" anyone lrs &&
	cyrus_admin "$CP" setacl "Public@example.org" cyrus lrswipkxtea ||
	fail "cyrus shared folders"

# ---- corpus ------------------------------------------------------------------
# deterministic (seeded); FOLDERS_D are the Dovecot source's, FOLDERS_C the
# Cyrus source's (Cyrus itself refuses % " \ in names, so those appear only
# on the Dovecot side)
python3 - "$W/gen" <<'EOF'
import os, sys, random
out = sys.argv[1]
rnd = random.Random(12)
flagsets = ["-", "\\Seen", "\\Seen \\Flagged", "\\Answered \\Seen", "\\Draft", "\\Seen \\Deleted",
            "$Forwarded \\Seen", "ProjectX $label1", "\\Deleted"]
def msg(i, subj, body, raw8=False):
    if raw8:  # raw UTF-8 in the header, not RFC 2047 encoded
        subj = "Grüße aus Köln – " + subj
    h = ("From: Sender %d <s%d@example.org>\r\nTo: x@example.org\r\nSubject: %s\r\n"
         "Message-ID: <c%d@example.org>\r\nDate: Mon, 14 Sep 2020 12:%02d:00 +0000\r\n"
         "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
         "Content-Transfer-Encoding: 8bit\r\n\r\n" % (i, i, subj, i, i % 60))
    return (h + body + "\r\n").encode("utf-8")
def write(user, folders, base):
    rows, i = [], base
    for folder in folders:
        for k in range(6 if folder == "INBOX" else 3):
            i += 1
            subj = "msg %d in %s" % (i, folder.encode("ascii", "replace").decode())
            rows.append((folder, flagsets[i % len(flagsets)], 1300000000 + rnd.randrange(300000000),
                         msg(i, subj, "Grüße, Nachricht %d.\r\nline two %s" % (i, "x" * rnd.randrange(2000)),
                             raw8=(k == 1 and folder in ("INBOX", "日本語")))))
    with open(os.path.join(out, user + ".lst"), "w") as lst:
        for n, (folder, flags, date, data) in enumerate(rows):
            p = os.path.join(out, "%s-%d.eml" % (user, n))
            with open(p, "wb") as f:
                f.write(data)
            lst.write("%s\t%s\t%d\t%s\n" % (folder, flags, date, p))
common = ["INBOX", "Überweisungen/2024", "日本語", "Projects/A&B", "Emoji 📬 box", "Ünïcödé & more"]
write("dana", common + ["Rabatt 100%", 'Say "hi"', "back\\slash"], 0)
write("cyra", common + ["Plain"], 1000)
EOF
[ $? = 0 ] || fail "corpus generation"
dovecot_load "$DP" dana pd <"$W/gen/dana.lst" 2>>"$W/load.err" || fail "loading dana into Dovecot"
cyrus_load "$CP" cyra@example.org pc <"$W/gen/cyra.lst" 2>>"$W/load.err" || fail "loading cyra into Cyrus"
if [ -s "$W/load.err" ]; then cat "$W/load.err" >&2; fail "a server refused the corpus"; fi
# mail in the folders that are not cyra's: it must not move
printf 'INBOX\t-\t1400000000\t%s\n' "$W/gen/cyra-0.eml" | sed 's/^INBOX/Public@example.org/' |
	cyrus_load "$CP" cyrus "$CYRUS_ADMIN_PASS" 2>>"$W/load.err"
printf 'Team Share\t-\t1400000000\t%s\n' "$W/gen/cyra-1.eml" |
	cyrus_load "$CP" user0002@example.org pc 2>>"$W/load.err"
[ -s "$W/load.err" ] && fail "loading the shared folders: $(cat "$W/load.err")"
echo "corpus: $(wc -l <"$W/gen/dana.lst") messages for dana (Dovecot), $(wc -l <"$W/gen/cyra.lst") for cyra (Cyrus)"

# ---- jobs --------------------------------------------------------------------
job() { # name srcport dstport manifest-line [extra source lines]
	local name=$1 sp=$2 dp=$3 line=$4
	shift 4
	printf 'EmailAddress,UserName,Password\n%s\n' "$line" >"$W/$name.csv"
	chmod 600 "$W/$name.csv"
	{
		printf '[job]\nname = %s\nstate = state/%s.db\nmanifest = %s.csv\nparallel = 1\n\n' "$name" "$name" "$name"
		printf '[source]\ntype = imap\nhost = 127.0.0.1\nport = %s\ntls = none\nauth = plain\n' "$sp"
		for l in "$@"; do echo "$l"; done
		printf '\n[sink]\ntype = imap\nhost = 127.0.0.1\nport = %s\ntls = none\nauth = plain\npassword = tpw\n' "$dp"
	} >"$W/$name.ini"
}
# dana on Dovecot -> dana on Cyrus; cyra on Cyrus -> cyra on Dovecot
job d2c "$DP" "$CP" "dana@example.org,dana,pd"
KILLS="store:7 pending:3 commit:2"
k=0
for point in $KILLS; do
	k=$((k + 1))
	job d2ck$k "$DP" "$CP" "dana-k$k@example.org,dana,pd"
	job c2dk$k "$CP" "$DP" "cyra-k$k@example.org,cyra@example.org,pc"
done
job d2ce "$DP" "$CP" "dana-e@example.org,dana,pd"
printf 'headers_8bit = encode\n' >>"$W/d2ce.ini"
job c2d "$CP" "$DP" "cyra@example.org,cyra@example.org,pc"
job c2dl "$CP" "$DP" "cyra-l@example.org,cyra@example.org,pc"
sed -i 's/^auth = plain$/auth = login/' "$W/c2dl.ini"
job c2dw "$CP" "$DP" "cyra-l@example.org,cyra@example.org,wrong-password"
job c2da "$CP" "$DP" "cyra-all@example.org,cyra@example.org,pc" "namespaces = all"

run() { # job [env...]
	local name=$1
	shift
	RC=0
	# (the subshell keeps bash's "Killed" notice out of the output)
	(env "$@" "$MF_BIN" run "$W/$name.ini" --no-progress >>"$W/$name.out" 2>>"$W/$name.err"; exit $?) 2>/dev/null || RC=$?
}

# ---- the independent check ---------------------------------------------------------
# The source's rows with folder names as the target must show them: Cyrus
# refuses some characters and mailferry maps them (README, "IMAP folder
# names a target refuses").
map_cyrus() { python3 -c '
import sys
# keep in step with mf_imap_name_map (sources/imap/imap_common.c): only in
# names with a character Cyrus refuses
for line in sys.stdin:
    f, rest = line.split("\t", 1)
    f = "/".join("".join(chr(0xff01 + ord(c) - 0x21) if c in "%*\";<>\\^`{|}" else c for c in p) for p in f.split("/"))
    sys.stdout.write(f + "\t" + rest)
'; }
compare() { # label exp got
	local label=$1 exp=$2 got=$3
	if diff -q "$exp" "$got" >/dev/null; then
		echo "ok: $label: $(wc -l <"$got") messages match (folders, flags, dates, content)"
		return 0
	fi
	diff "$exp" "$got" | head -20
	bad "$label: target differs ($(wc -l <"$exp") expected, $(wc -l <"$got") found, $(comm -13 "$exp" "$got" | wc -l) extra)"
	return 1
}
# Cyrus's munge8bit turns every raw 8-bit header byte into "X": what the
# target holds of such a message, unless mailferry encodes the header
# (headers_8bit = encode: then the expectation is the encoded copy)
munged() { python3 -c '
import hashlib, re, sys, glob
m = {}
for p in glob.glob(sys.argv[1] + "/gen/dana-*.eml"):
    d = re.sub(rb"\r?\n", b"\r\n", open(p, "rb").read())
    h = d.index(b"\r\n\r\n")
    if max(d[:h]) < 0x80:
        continue
    x = bytes(c if c < 0x80 else 0x58 for c in d[:h]) + d[h:]
    m[hashlib.sha256(d.replace(b"\r\n", b"\n")).hexdigest()] = hashlib.sha256(x.replace(b"\r\n", b"\n")).hexdigest()
for line in sys.stdin:
    f = line.rstrip("\n").split("\t")
    f[3] = m.get(f[3], f[3])
    print("\t".join(f))
' "$W"; }
check_d2c() { # label target-user
	dovecot_dump "$DP" dana pd | map_cyrus | munged | sort >"$W/exp.d2c"
	cyrus_dump "$CP" "$2@example.org" tpw | sort >"$W/got.$2"
	compare "$1" "$W/exp.d2c" "$W/got.$2"
}
check_c2d() { # label target-user
	cyrus_dump "$CP" cyra@example.org pc | sort >"$W/exp.c2d"
	dovecot_dump "$DP" "$2@example.org" tpw | sort >"$W/got.$2"
	compare "$1" "$W/exp.c2d" "$W/got.$2"
}

# 1. Dovecot -> Cyrus
run d2c
echo "Dovecot -> Cyrus: exit $RC: $(tail -1 "$W/d2c.out")"
[ "$RC" = 0 ] || { tail -5 "$W/d2c.err"; bad "Dovecot -> Cyrus run exited $RC"; }
check_d2c "Dovecot -> Cyrus" dana
run d2c
check_d2c "Dovecot -> Cyrus, second run" dana

# 2. Cyrus -> Dovecot
run c2d
echo "Cyrus -> Dovecot: exit $RC: $(tail -1 "$W/c2d.out")"
[ "$RC" = 0 ] || { tail -5 "$W/c2d.err"; bad "Cyrus -> Dovecot run exited $RC"; }
check_c2d "Cyrus -> Dovecot" cyra
run c2d
check_c2d "Cyrus -> Dovecot, second run" cyra
# other users' and shared folders are not cyra's mail
if grep -q -e '^Other Users' -e '^Shared Folders' -e '^Team Share' -e '^Public' "$W/got.cyra"; then
	bad "other users' or shared folders were moved into cyra's mailbox: $(cut -f1 "$W/got.cyra" | sort -u | grep -e Other -e Shared -e Team -e Public | tr '\n' ' ')"
else
	echo "ok: Cyrus -> Dovecot: Other Users/ and Shared Folders/ left out"
fi

# LOGIN instead of AUTHENTICATE PLAIN works too; a wrong password is "auth"
run c2dl
[ "$RC" = 0 ] || bad "auth = login against Cyrus: exit $RC"
check_c2d "Cyrus -> Dovecot, auth = login" cyra-l
run c2dw
cls=$("$MF_BIN" report "$W/c2dw.ini" --format json 2>/dev/null | python3 -c '
import json, sys
print(json.load(sys.stdin)["mailboxes"][0]["error_class"])' 2>/dev/null)
[ "$RC" = 1 ] && [ "$cls" = auth ] && echo "ok: a wrong password on Cyrus: exit 1, class auth" ||
	bad "a wrong password on Cyrus: exit $RC, class '$cls'"

# namespaces = all: they come too, under the server's namespace names
run c2da
dovecot_dump "$DP" cyra-all@example.org tpw | cut -f1 | sort | uniq -c | sed 's/^ *//' >"$W/got.all"
for f in "1 Other Users/user0002/Team Share" "1 Shared Folders/Public"; do
	grep -qxF "$f" "$W/got.all" || bad "namespaces = all: no '$f' in the target: $(tr '\n' ',' <"$W/got.all")"
done
[ "$(awk '{s+=$1} END {print s}' "$W/got.all")" = $(($(wc -l <"$W/exp.c2d") + 2)) ] &&
	echo "ok: namespaces = all: cyra's 24 messages and 1 each from Other Users/ and Shared Folders/" ||
	bad "namespaces = all: $(tr '\n' ',' <"$W/got.all")"

# 3. kill -9 in the middle (MF_FAULT_KILL_AT), in both directions, then
# rerun: the target must equal the source, nothing duplicated
k=0
dupd=0
dupc=0
for point in $KILLS; do
	k=$((k + 1))
	for name in d2ck$k c2dk$k; do
		run "$name" MF_FAULT_KILL_AT="$point"
		[ "$RC" = 137 ] || bad "$name: kill point $point not reached (exit $RC)"
		run "$name"
		[ "$RC" = 0 ] || { tail -5 "$W/$name.err"; bad "$name: rerun after kill exited $RC"; }
	done
	check_d2c "Dovecot -> Cyrus, killed at $point and rerun" dana-k$k
	check_c2d "Cyrus -> Dovecot, killed at $point and rerun" cyra-k$k
	dupd=$((dupd + $(comm -13 "$W/exp.d2c" "$W/got.dana-k$k" | wc -l)))
	dupc=$((dupc + $(comm -13 "$W/exp.c2d" "$W/got.cyra-k$k" | wc -l)))
done
echo "kill -9 at $KILLS: extra copies in the targets: Dovecot -> Cyrus $dupd, Cyrus -> Dovecot $dupc"

# 4. verify --repair + run against a target that rewrites (munge8bit): the
# rewritten copies are reported, and never stored again in a loop
n8=$(grep -c "Grüße aus Köln" "$W"/gen/dana-*.eml | awk -F: '$2 > 0' | wc -l)
grep -q "event=changed-by-target .*munge8bit" "$W/d2c.err" &&
	echo "ok: the run reported $n8 messages changed by the target" ||
	bad "the run did not report the messages Cyrus changed"
before=$(cyrus_dump "$CP" dana@example.org tpw | wc -l)
for cycle in 1 2; do
	"$MF_BIN" verify "$W/d2c.ini" --repair >"$W/repair$cycle.out" 2>&1
	run d2c
done
after=$(cyrus_dump "$CP" dana@example.org tpw | wc -l)
check_d2c "Dovecot -> Cyrus after 2 x (verify --repair, run)" dana
[ "$after" = "$before" ] && echo "ok: verify --repair + run twice: $after messages, no copy added" ||
	bad "verify --repair + run twice: $before -> $after messages in the target"

# 5. headers_8bit = encode: the fields are RFC 2047-encoded before the
# store, so Cyrus keeps what it is given. Checked by meaning, from the
# servers: per folder the same (flags, date, body bytes, every header field
# decoded), no raw 8-bit byte and no "X" left in a target header.
semantic() { # port user pass
	python3 - "$@" <<'PY'
import imaplib, sys, re, hashlib, time, base64, email.header
port, user, pw = sys.argv[1:4]
def utf7_dec(s):
    def rep(m):
        t = m.group(1)
        if t == "":
            return "&"
        t = t.replace(",", "/") + "=" * (-len(t.replace(",", "/")) % 4)
        return base64.b64decode(t).decode("utf-16-be")
    return re.sub(r"&([^-]*)-", rep, s)
def decoded(v):
    v = re.sub(rb"\r?\n[ \t]", b" ", v)
    try:
        parts = email.header.decode_header(v.decode("utf-8"))
        t = "".join(p.decode(c or "utf-8") if isinstance(p, bytes) else p for p, c in parts)
    except Exception:
        t = v.decode("utf-8", "replace")
    return re.sub(r"\s+", " ", t).strip()
M = imaplib.IMAP4("127.0.0.1", int(port))
M.login(user, pw)
typ, data = M.list('""', "*")
rows, bad8 = [], 0
for item in data:
    m = re.match(rb"\((.*?)\) \"(.)\" (.*)$", item)
    attrs, sep, name = m.group(1).decode(), m.group(2).decode(), m.group(3).decode()
    if name.startswith('"'):
        name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if name.startswith(("Other Users", "Shared Folders")) or "\\Noselect" in attrs:
        continue
    M.select('"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"', readonly=True)
    typ, d = M.uid("FETCH", "1:*", "(FLAGS INTERNALDATE BODY.PEEK[])")
    for part in d:
        if not isinstance(part, tuple):
            continue
        meta, body = part
        body = body.replace(b"\r\n", b"\n")
        h, _, b = body.partition(b"\n\n")
        if max(h) >= 0x80:
            bad8 += 1
        fields = re.split(rb"\n(?![ \t])", h)
        hd = [f.split(b":", 1)[0].lower().decode() + ":" + decoded(f.split(b":", 1)[1]) for f in fields]
        fl = " ".join(sorted(x for x in re.search(rb"FLAGS \((.*?)\)", meta).group(1).decode().split() if x != "\\Recent")) or "-"
        rows.append("%s\t%s\t%d\t%s" % ("/".join(utf7_dec(x) for x in name.split(sep)), fl,
                    int(time.mktime(imaplib.Internaldate2tuple(meta))),
                    hashlib.sha256(b + "\n".join(hd).encode()).hexdigest()))
    M.close()
for r in sorted(rows):
    print(r)
print("raw-8bit-headers\t%d" % bad8)
PY
}
run d2ce
echo "Dovecot -> Cyrus, headers_8bit = encode: exit $RC: $(tail -1 "$W/d2ce.out")"
semantic "$DP" dana pd | map_cyrus | sed 's/^raw-8bit-headers\t.*/raw-8bit-headers\t0/' | sort >"$W/exp.d2ce"
semantic "$CP" dana-e@example.org tpw | sort >"$W/got.d2ce"
compare "Dovecot -> Cyrus, headers_8bit = encode (by meaning, no raw 8-bit header left)" "$W/exp.d2ce" "$W/got.d2ce"
enc=$("$MF_BIN" report "$W/d2ce.ini" 2>/dev/null | grep -o '8bit-headers-encoded=[0-9]*' | head -1)
[ "$enc" = "8bit-headers-encoded=$n8" ] && echo "ok: the report counts the change: $enc" ||
	bad "the report does not count $n8 encoded messages: '${enc:-nothing}'"
grep -q "event=changed-by-target " "$W/d2ce.err" && bad "changed by the target although encoded"
"$MF_BIN" verify "$W/d2ce.ini" >"$W/verify.d2ce" 2>&1 && echo "ok: verify matches with headers_8bit = encode" ||
	bad "verify with headers_8bit = encode: $(grep -c MISMATCH "$W/verify.d2ce") folders differ"

# 6. COMPRESS refused in any way (NO, BAD, an answer libetpan cannot parse)
# by a server that offers it: the session goes on uncompressed. A proxy in
# front of Cyrus answers the COMPRESS command itself.
cat >"$W/zproxy.py" <<'PY'
import socket, sys, threading, re
lport, dport, answer = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", lport)); ls.listen(16)
def pump(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d: break
            b.sendall(d)
    except OSError: pass
    for s in (a, b):
        try: s.shutdown(socket.SHUT_RDWR)
        except OSError: pass
def client(c):
    s = socket.create_connection(("127.0.0.1", dport))
    threading.Thread(target=pump, args=(s, c), daemon=True).start()
    try:
        while True:
            d = c.recv(65536)
            if not d: break
            m = re.match(rb"(\S+) COMPRESS DEFLATE\r\n$", d)
            if m:
                c.sendall(m.group(1) + b" " + answer.encode() + b"\r\n"); continue
            s.sendall(d)
    except OSError: pass
    try: s.shutdown(socket.SHUT_RDWR)
    except OSError: pass
while True:
    c, _ = ls.accept()
    threading.Thread(target=client, args=(c,), daemon=True).start()
PY
z=0
for answer in "NO compression is off today" "BAD Unexpected extra arguments to Compress" "BAD [UNAVAILABLE"; do
	z=$((z + 1))
	ZP=$(dovecot_free_port $((DP + 10 + z)))
	python3 "$W/zproxy.py" "$ZP" "$CP" "$answer" 2>/dev/null &
	PROXY_PIDS+=($!)
	for i in $(seq 1 50); do python3 -c "import socket; socket.create_connection(('127.0.0.1', $ZP), 1)" 2>/dev/null && break; sleep 0.1; done
	job c2dz$z "$ZP" "$DP" "cyra-z$z@example.org,cyra@example.org,pc"
	run c2dz$z
	[ "$RC" = 0 ] || { grep -m1 "level=error" "$W/c2dz$z.err"; bad "COMPRESS answered '$answer': run exited $RC"; }
	check_c2d "Cyrus -> Dovecot, COMPRESS answered '$answer'" cyra-z$z
done

[ "$failures" = 0 ] || fail "$failures checks failed"
echo "all Cyrus checks passed"
