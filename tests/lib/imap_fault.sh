# tests/lib/imap_fault.sh - shared set-up for the IMAP fault tests
# (tests/fault/imap_*.sh): two private Dovecot servers, a deterministic
# corpus, job files, and the independent check of a target mailbox against
# its source (dovecot_dump on both sides: per folder the multiset of
# flags + INTERNALDATE + SHA-256 of the content), which counts what is
# missing and what is duplicated.
#
# Source it after nothing else; it sources common.sh and dovecot.sh.
#   imapf_servers             start SRC (separator ".") and DST ("/") Dovecots
#                             on free ports from 13143: $SP, $DP, dirs $T/src, $T/dst
#   imapf_corpus USER N [BIG] [PW]  load USER (password PW, default pw-USER) on the source with N
#                             generated messages over 4 folders (plus two identical
#                             copies and BIG messages of 300 KB)
#   imapf_target USER...      add target users USER@example.org (password tpw)
#   imapf_job NAME MANIFEST [SRCPORT] [DSTPORT] [extra lines...]   $T/NAME.ini
#                             (extra lines "[sink] key = v" or "[source] ..." or "[job] ...")
#   imapf_compare SRCUSER DSTUSER   sets MISSING and DUPS (counts) and prints a diff head
#   imapf_run NAME            run the job; exit code in RC, output in $T/NAME.log
source "$MF_SRC/tests/lib/common.sh"
source "$MF_SRC/tests/lib/dovecot.sh"
dovecot_available || skip "dovecot or python3 not installed (apt-get install dovecot-imapd)"

imapf_servers() {
	# two tests (or builds) may pick the same free port at once: try others
	local try
	for try in 1 2 3 4 5; do
		SP=$(dovecot_free_port $((13143 + (RANDOM % 50) * 20)))
		dovecot_start "$T/src" "$SP" . 2>"$T/src.start.err" && break
		dovecot_stop "$T/src"
		[ "$try" = 5 ] && { cat "$T/src.start.err"; skip "cannot start the source Dovecot"; }
	done
	on_exit "dovecot_stop '$T/src'"
	for try in 1 2 3 4 5; do
		DP=$(dovecot_free_port $((SP + 1 + RANDOM % 10)))
		dovecot_start "$T/dst" "$DP" / 2>"$T/dst.start.err" && break
		dovecot_stop "$T/dst"
		[ "$try" = 5 ] && { cat "$T/dst.start.err"; skip "cannot start the target Dovecot"; }
	done
	on_exit "dovecot_stop '$T/dst'"
}

# A port for a proxy: free, and not one of the servers'.
imapf_port() {
	local p
	p=$(dovecot_free_port "${1:-$((DP + 1))}")
	echo "$p"
}

imapf_corpus() { # USER N [BIG] [PASSWORD]
	local user=$1 n=$2 big=${3:-1} pw=${4:-pw-$1}
	mkdir -p "$T/gen"
	dovecot_add_user "$T/src" "$user" "$pw"
	imapf_wait_login "$SP" "$user" "$pw"
	python3 - "$T/gen" "$user" "$n" "$big" >"$T/gen/$user.lst" <<'EOF'
import os, sys, random, base64
out, user, n, big = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rnd = random.Random(user)
folders = ["INBOX", "INBOX", "Work", "Work/Sub", "Sent", "Ünïcode Ordner"]
flagsets = ["-", "\\Seen", "\\Seen \\Flagged", "\\Answered \\Seen", "\\Draft"]
def msg(i, size):
    body = "".join("line %d of message %d for %s %s\r\n" % (k, i, user, rnd.random()) for k in range(size // 60 + 1))
    return ("From: Sender %d <s%d@example.org>\r\nTo: %s@example.org\r\nSubject: test %d\r\n"
            "Message-ID: <%s.%d@example.org>\r\nDate: Mon, 14 Sep 2020 12:%02d:00 +0000\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" % (i, i, user, i, user, i, i % 60)
            + body).encode()
rows = []
for i in range(n):
    rows.append((folders[i % len(folders)], rnd.choice(flagsets), 1200000000 + rnd.randrange(400000000),
                 msg(i, rnd.choice([300, 800, 2000, 6000]))))
for k in range(big):
    rows.append(("INBOX", "\\Seen", 1500000000 + k, msg(10000 + k, 300000)))
# the same message twice in one folder: both copies must arrive, no more
rows.append(("INBOX", "\\Seen", 1400000000, rows[0][3]))
for j, (f, fl, d, data) in enumerate(rows):
    p = os.path.join(out, "%s-%d.eml" % (user, j))
    with open(p, "wb") as fh:
        fh.write(data)
    print("%s\t%s\t%d\t%s" % (f, fl, d, p))
EOF
	dovecot_load "$SP" "$user" "$pw" <"$T/gen/$user.lst" 2>>"$T/load.err" ||
		{ cat "$T/load.err"; bad "loading $user"; finish; }
	# the expected target contents, computed once (the source does not change)
	dovecot_dump "$SP" "$user" "$pw" | sort >"$T/exp.$user"
}

imapf_target() {
	local u
	for u in "$@"; do dovecot_add_user "$T/dst" "$u@example.org" tpw; done
	[ $# -gt 0 ] && imapf_wait_login "$DP" "${!#}@example.org" tpw
}

# Dovecot re-reads its passwd-file at most once a second: wait until a user
# just added can log in.
imapf_wait_login() { # PORT USER PASS
	python3 - "$@" <<'EOF'
import imaplib, sys, time
for i in range(60):
    try:
        M = imaplib.IMAP4("127.0.0.1", int(sys.argv[1])); M.login(sys.argv[2], sys.argv[3]); M.logout()
        sys.exit(0)
    except imaplib.IMAP4.error:
        time.sleep(0.1)
sys.exit("user %s cannot log in" % sys.argv[2])
EOF
}

imapf_job() { # NAME MANIFEST [SRCPORT] [DSTPORT] [extra...]
	local name=$1 manifest=$2 sp=${3:-$SP} dp=${4:-$DP}
	shift 2
	[ $# -gt 0 ] && shift
	[ $# -gt 0 ] && shift
	local jobx=() srcx=() snkx=() l
	for l in "$@"; do
		case "$l" in
		"[job] "*) jobx+=("${l#\[job\] }") ;;
		"[source] "*) srcx+=("${l#\[source\] }") ;;
		"[sink] "*) snkx+=("${l#\[sink\] }") ;;
		esac
	done
	# d KEY VALUE EXTRAS...: a default line, unless an extra sets KEY
	d() {
		local k=$1 v=$2 e
		shift 2
		for e in "$@"; do [ "${e%% =*}" = "$k" ] && return 0; done
		echo "$k = $v"
	}
	{
		echo "[job]"
		echo "name = $name"
		echo "state = state/$name.db"
		echo "manifest = $manifest"
		d parallel 2 "${jobx[@]}"
		d batch 4 "${jobx[@]}"
		for l in "${jobx[@]}"; do echo "$l"; done
		echo "[source]"
		echo "type = imap"
		echo "host = 127.0.0.1"
		echo "port = $sp"
		d tls none "${srcx[@]}"
		d auth plain "${srcx[@]}"
		d connections 2 "${srcx[@]}"
		for l in "${srcx[@]}"; do echo "$l"; done
		echo "[sink]"
		echo "type = imap"
		echo "host = 127.0.0.1"
		echo "port = $dp"
		d tls none "${snkx[@]}"
		d auth plain "${snkx[@]}"
		d password_env MF_IMAPF_TPW "${snkx[@]}"
		for l in "${snkx[@]}"; do echo "$l"; done
	} >"$T/$name.ini"
}
export MF_IMAPF_TPW=tpw

# A manifest: imapf_manifest FILE SRCUSER=DSTUSER...
imapf_manifest() {
	local f=$1 m
	shift
	echo "EmailAddress,UserName,Password" >"$f"
	for m in "$@"; do
		echo "${m#*=}@example.org,${m%%=*},pw-${m%%=*}" >>"$f"
	done
	chmod 600 "$f"
}

imapf_run() { # NAME [args...]
	local name=$1
	shift
	RC=0
	"$MF_BIN" run "$T/$name.ini" --no-progress "$@" >>"$T/$name.log" 2>&1 || RC=$?
}

# Compare the target mailbox DSTUSER@example.org with the source SRCUSER.
imapf_compare() { # SRCUSER DSTUSER [PORT] [PASSWORD]
	local su=$1 du=$2 port=${3:-$DP} pw=${4:-tpw}
	dovecot_dump "$port" "$du@example.org" "$pw" | sort >"$T/got.$du"
	MISSING=$(comm -23 "$T/exp.$su" "$T/got.$du" | wc -l)
	DUPS=$(comm -13 "$T/exp.$su" "$T/got.$du" | wc -l)
	if [ "$MISSING" != 0 ] || [ "$DUPS" != 0 ]; then
		echo "  $du: $MISSING missing, $DUPS extra (of $(wc -l <"$T/exp.$su")):"
		diff "$T/exp.$su" "$T/got.$du" | head -6 | sed 's/^/    /' || true
	fi
	return 0
}

# Check that every pair SRC=DST matches exactly; adds to LOST_TOTAL/DUP_TOTAL.
LOST_TOTAL=0
DUP_TOTAL=0
imapf_check_exact() { # "what" SRC=DST...
	local what=$1 m fails=0
	shift
	for m in "$@"; do
		imapf_compare "${m%%=*}" "${m#*=}"
		LOST_TOTAL=$((LOST_TOTAL + MISSING))
		DUP_TOTAL=$((DUP_TOTAL + DUPS))
		[ "$MISSING" = 0 ] && [ "$DUPS" = 0 ] || fails=$((fails + 1))
	done
	if [ "$fails" = 0 ]; then ok "$what: exact"; else bad "$what: $fails mailbox(es) differ"; fi
}

# Rerun a job until it exits 0 (at most N times, default 5).
imapf_until_done() { # NAME [N]
	local i
	for i in $(seq 1 "${2:-5}"); do
		imapf_run "$1"
		[ "$RC" = 0 ] && return 0
	done
	return 1
}

# A row of `mailferry report --format json` by mailbox: prints FIELD.
imapf_report_field() { # NAME MAILBOX FIELD
	"$MF_BIN" report "$T/$1.ini" --format json | python3 -c '
import json, sys
for m in json.load(sys.stdin)["mailboxes"]:
    if m.get("mailbox") == sys.argv[1]:
        v = m.get(sys.argv[2], "")
        print(json.dumps(v) if not isinstance(v, str) else v)' "$2" "$3"
}

# The IMAP-aware fault proxy (tests/lib/imap_faultproxy.py) in the background,
# stopped at exit: imapf_proxy NAME LISTEN_PORT TARGET_PORT [options...]
imapf_proxy() {
	local name=$1 listen=$2 target=$3
	shift 3
	python3 "$MF_SRC/tests/lib/imap_faultproxy.py" --listen "$listen" --target "127.0.0.1:$target" \
		--stats "$T/$name.iproxy.json" "$@" >"$T/$name.iproxy.log" 2>&1 &
	echo $! >"$T/$name.iproxy.pid"
	on_exit "kill $! 2>/dev/null"
	wait_line "imap_faultproxy: 127.0.0.1:$listen" "$T/$name.iproxy.log" 100 && return 0
	cat "$T/$name.iproxy.log"
	return 1
}
imapf_proxy_stop() { kill "$(cat "$T/$1.iproxy.pid")" 2>/dev/null || true; }
imapf_pstat() { # NAME KEY
	python3 -c 'import json,sys; v=json.load(open(sys.argv[1])).get(sys.argv[2]); print(v if v is not None else 0)' \
		"$T/$1.iproxy.json" "$2"
}
