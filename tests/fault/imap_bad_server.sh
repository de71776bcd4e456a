#!/usr/bin/env bash
# imap_bad_server.sh - a source "IMAP server" that is not one
# (tests/doubles/imap_bad_server.py): an endless greeting, a close right after
# the greeting, binary garbage, an endless 64 MB line with no CRLF. For each,
# mailferry must fail that mailbox with a clear reason, in bounded time
# (retries included) and bounded memory (peak RSS from /usr/bin/time), never
# crash or hang; a good mailbox in the same job (another source row on the
# real Dovecot is a separate job, run alongside) is not affected.
source "$MF_SRC/tests/lib/imap_fault.sh"
[ -x /usr/bin/time ] || skip "/usr/bin/time is not installed (apt-get install time)"

imapf_servers
imapf_target victim
MAX_RSS_KB=60000
MAX_SECS=90

pids=()
n=0
for mode in greeting-endless close garbage endless; do
	n=$((n + 1))
	port=$(imapf_port $((DP + 40 + n * 2)))
	python3 "$MF_SRC/tests/doubles/imap_bad_server.py" --port "$port" --mode "$mode" >"$T/$mode.srv.log" 2>&1 &
	on_exit "kill $! 2>/dev/null"
	wait_port "$port" 50 || true
	imapf_manifest "$T/$mode.csv" "victim=victim"
	imapf_job "$mode" "$mode.csv" "$port" "$DP" "[source] timeout = 5"
	# all four at once: each one's retries take half a minute
	(
		rc=0
		/usr/bin/time -f "%M %e" -o "$T/$mode.time" timeout -s KILL $((MAX_SECS + 30)) \
			"$MF_BIN" run "$T/$mode.ini" --no-progress >"$T/$mode.log" 2>&1 || rc=$?
		echo $rc >"$T/$mode.rc"
	) &
	pids+=($!)
done
wait "${pids[@]}" || true

peak=0
for mode in greeting-endless close garbage endless; do
	rc=$(cat "$T/$mode.rc")
	read -r rss secs < <(tail -1 "$T/$mode.time") || { rss=0; secs=0; }
	secs=${secs%.*}
	[ "$rss" -gt "$peak" ] && peak=$rss
	echo "$mode: exit $rc, ${secs} s, peak RSS ${rss} KB"
	check_eq "$mode: exit 1 (the mailbox failed; no crash, no hang)" "$rc" 1
	check "$mode: bounded time (${secs} s <= $MAX_SECS s)" test "$secs" -le $MAX_SECS
	check "$mode: bounded memory (${rss} KB <= $MAX_RSS_KB KB)" test "$rss" -le $MAX_RSS_KB
	state=$("$MF_BIN" report "$T/$mode.ini" --format json | python3 -c '
import json, sys
m = json.load(sys.stdin)["mailboxes"][0]
print(m["state"], m["error_class"], "|", m["error"])')
	echo "  report: $state"
	case "$state" in
	"failed "*"| source"*) ok "$mode: failed with a reason naming the source" ;;
	*) bad "$mode: report says '$state'" ;;
	esac
done
echo "bad servers: 4; peak RSS $peak KB"
finish
