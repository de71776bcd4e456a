#!/usr/bin/env bash
# imap_network.sh - network faults between mailferry and both Dovecot servers
# (source and target), from fault proxies in the middle:
#  1. IMAP-aware faults (tests/lib/imap_faultproxy.py): connections dropped
#     inside a FETCH body (source) and inside an APPEND literal (target), an
#     APPEND whose answer never comes (the server stored it: in doubt, must be
#     probed, not appended twice), and reads stalled far longer than the
#     driver's timeout on both sides.
#  2. byte-level faults (tests/lib/faultproxy.py): answers truncated, requests
#     cut mid-command, greetings stalled, every chunk delayed.
# Each phase must end (reruns allowed) with the exact result, the log must
# show event=reconnect lines and the summary "N retries", and a stall must
# cost about the timeout (3 s here), not the stall (30 s): a driver without a
# working timeout makes the phase take minutes and fails it.
source "$MF_SRC/tests/lib/imap_fault.sh"

imapf_servers
imapf_corpus ann 40 2
imapf_corpus ben 20 0
imapf_target ann-n1 ben-n1 ann-n2 ben-n2

STALL=30000
dropped=0
stalls=0
delayed=0

phase_run() { # NAME WHAT: run until done (at most 4 runs), time it, check
	local name=$1 what=$2 t0 secs
	t0=$(date +%s)
	imapf_until_done "$name" 4 || bad "$what: did not finish in 4 runs (exit $RC)"
	secs=$(($(date +%s) - t0))
	echo "$what: $(grep -c '^job ' "$T/$name.log") run(s), ${secs} s"
	check "$what: finished in bounded time (${secs} s < 45 s, stalls were ${STALL} ms)" test "$secs" -lt 45
	local rec
	rec=$(grep -c 'event=reconnect' "$T/$name.log" || true)
	check "$what: reconnects logged ($rec event=reconnect lines)" test "$rec" -ge 1
	local retries
	retries=$(grep -o '[0-9]* retries' "$T/$name.log" | awk '{s+=$1} END {print s+0}')
	check "$what: the summary shows the retries ($retries)" test "$retries" -ge 1
}

# ---- 1. IMAP-aware faults --------------------------------------------------------
PS=$(imapf_port $((DP + 20)))
imapf_proxy s1 "$PS" "$SP" --rules '[
 {"on": "fetch", "nth": 2, "do": "drop", "after": 3000},
 {"on": "fetch", "nth": 9, "do": "stall", "ms": '$STALL'},
 {"on": "fetch", "nth": 30, "do": "drop", "after": 0}]'
PT=$(imapf_port $((PS + 1)))
imapf_proxy d1 "$PT" "$DP" --rules '[
 {"on": "append", "match": "Message-ID: <ann.10000@example.org>", "max": 1, "do": "drop", "after": 150000},
 {"on": "append", "nth": 5, "do": "drop", "after": 10},
 {"on": "append", "nth": 12, "do": "stall", "ms": '$STALL'},
 {"on": "append", "nth": 25, "do": "stall", "ms": 1}]'
imapf_manifest "$T/n1.csv" ann=ann-n1 ben=ben-n1
imapf_job n1 n1.csv "$PS" "$PT" "[source] timeout = 3" "[sink] timeout = 3"
phase_run n1 "IMAP-aware faults"
imapf_check_exact "IMAP-aware faults" ann=ann-n1 ben=ben-n1
for p in s1 d1; do
	dropped=$((dropped + $(imapf_pstat $p dropped)))
	stalls=$((stalls + $(imapf_pstat $p stalled)))
done
check_eq "IMAP-aware faults: source drops and stalls fired" "$(imapf_pstat s1 dropped)/$(imapf_pstat s1 stalled)" 2/1
check_eq "IMAP-aware faults: target drops and stalls fired" "$(imapf_pstat d1 dropped)/$(imapf_pstat d1 stalled)" 2/2
# the stalled APPENDs reached the server: the rerun found them by probing
grep -q 'event=probe-found' "$T/n1.log" && ok "IMAP-aware faults: APPENDs whose answer was lost were found by the probe" ||
	bad "IMAP-aware faults: no probe-found event after a lost APPEND answer"

# ---- 2. byte-level faults (faultproxy.py) -------------------------------------------
PS2=$(imapf_port $((PT + 1)))
faultproxy_start s2 "$PS2" "$SP" "pass,drop-down:60000,drop-up:120,delay:20,stall:$STALL,drop-down:200000,delay:5"
PT2=$(imapf_port $((PS2 + 1)))
faultproxy_start d2 "$PT2" "$DP" "drop-down:1500,drop-up:40000,pass,stall:$STALL,drop-down:4000,delay:10,drop-up:100000,refuse"
imapf_manifest "$T/n2.csv" ann=ann-n2 ben=ben-n2
imapf_job n2 n2.csv "$PS2" "$PT2" "[source] timeout = 3" "[sink] timeout = 3"
phase_run n2 "byte-level faults"
imapf_check_exact "byte-level faults" ann=ann-n2 ben=ben-n2
for p in s2 d2; do
	d=$(($(faultproxy_stat $p dropped_up) + $(faultproxy_stat $p dropped_down) + $(faultproxy_stat $p refused)))
	s=$(faultproxy_stat $p stalled)
	echo "  proxy $p: $d dropped, $s stalled, $(faultproxy_stat $p delayed_chunks) delayed chunks, $(faultproxy_stat $p connections) connections"
	dropped=$((dropped + d))
	stalls=$((stalls + s))
	delayed=$((delayed + $(faultproxy_stat $p delayed_chunks)))
done
# Which connection gets which scheduled fault depends on how many sessions
# the run opens and in what order (helper sessions race), so the byte-level
# phase can only promise that some fault fired; the IMAP-aware phase above
# dropped exactly 4.
check "the byte-level faults dropped at least one connection" test "$((dropped - 4))" -ge 1
check "at least 5 connections dropped in all" test "$dropped" -ge 5

echo "connections dropped: $dropped; stalls: $stalls; delayed chunks: $delayed; lost: $LOST_TOTAL; duplicated: $DUP_TOTAL"
finish
