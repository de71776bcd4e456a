#!/usr/bin/env bash
# imap_kill.sh - kill -9 during IMAP -> IMAP runs (two real Dovecot servers),
# rerun until done, then compare every target mailbox with its source through
# an independent IMAP client: per folder the multiset of (flags, INTERNALDATE,
# SHA-256 of the content). Zero missing, zero duplicated.
#
# APPEND is not idempotent, so this is where duplicates can really happen: a
# message APPENDed just before the kill is pending in the state database and
# must be found again by the sink's probe (Message-ID, size, content hash),
# not appended a second time. The corpus holds two identical copies of one
# message in INBOX (both must arrive, no third) and 300 KB messages.
#
# Kill points: MF_FAULT_KILL_AT pending/store/commit at various N, a chain
# of kills across reruns, and kills from outside at random moments.
# MF_SOAK=1: many more (>= 50). Each scenario writes to its own target users,
# so the servers are started once.
source "$MF_SRC/tests/lib/imap_fault.sh"

imapf_servers
imapf_corpus ann 40 2
imapf_corpus ben 20 0
total=$(($(wc -l <"$T/exp.ann") + $(wc -l <"$T/exp.ben")))
echo "corpus: $total messages in 2 mailboxes"

# target users for every scenario, made up front (Dovecot re-reads its
# users file at most once a second)
users=()
for i in $(seq 1 80); do users+=("ann-k$i" "ben-k$i"); done
imapf_target "${users[@]}"

kills=0
n=0
# scenario NAME: fresh target users ann-NAME, ben-NAME and a job NAME
scenario() {
	imapf_manifest "$T/$1.csv" "ann=ann-$1" "ben=ben-$1"
	imapf_job "$1" "$1.csv"
}
verify() { # NAME what
	if ! imapf_until_done "$1"; then
		bad "$2: the reruns did not finish (exit $RC, see $T/$1.log)"
		tail -5 "$T/$1.log"
		return
	fi
	imapf_check_exact "$2" "ann=ann-$1" "ben=ben-$1"
	local doubt
	doubt=$("$MF_BIN" report "$T/$1.ini" --format csv | awk -F, 'NR>1 {s+=$10} END {print s+0}')
	[ "$doubt" = 0 ] || bad "$2: $doubt messages left in doubt"
}

points="pending:1 pending:3 store:1 store:2 store:5 store:13 store:$((total - 1)) commit:1 commit:4"
if [ "${MF_SOAK:-0}" = 1 ]; then
	points="$points pending:2 pending:5 pending:8 pending:12 commit:2 commit:3 commit:6 commit:9 commit:12"
	for i in $(seq 3 3 60); do points="$points store:$i"; done
fi

# 1. one deterministic kill, then rerun
for point in $points; do
	n=$((n + 1))
	name=k$n
	scenario $name
	RC=0
	MF_FAULT_KILL_AT=$point "$MF_BIN" run "$T/$name.ini" --no-progress >>"$T/$name.log" 2>&1 || RC=$?
	if [ "$RC" = 137 ]; then
		kills=$((kills + 1))
		verify $name "killed at $point"
	else
		bad "kill point $point was never reached (exit $RC)"
	fi
done

# 2. a chain: killed again during the reruns (the probe itself gets killed)
n=$((n + 1))
name=k$n
scenario $name
chain="store:2 store:1 pending:1 store:3 commit:1 store:4"
[ "${MF_SOAK:-0}" = 1 ] && chain="$chain store:1 store:7 commit:2 store:2 pending:2 store:5"
for point in $chain; do
	RC=0
	MF_FAULT_KILL_AT=$point "$MF_BIN" run "$T/$name.ini" --no-progress >>"$T/$name.log" 2>&1 || RC=$?
	[ "$RC" = 137 ] && kills=$((kills + 1))
done
verify $name "killed $(echo $chain | wc -w) times in a row"

# 3. kill -9 from outside at random moments (each store slowed by 15 ms)
outside=3
[ "${MF_SOAK:-0}" = 1 ] && outside=12
for i in $(seq 1 $outside); do
	n=$((n + 1))
	name=k$n
	scenario $name
	MF_FAULT_DELAY_MS=15 "$MF_BIN" run "$T/$name.ini" --no-progress >>"$T/$name.log" 2>&1 &
	pid=$!
	ms=$((150 + RANDOM % 600))
	sleep "$((ms / 1000)).$(printf %03d $((ms % 1000)))"
	kill -9 $pid 2>/dev/null || true
	RC=0
	wait $pid 2>/dev/null || RC=$?
	# a zombie takes kill -9 too: count only runs that died of it
	if [ "$RC" = 137 ]; then kills=$((kills + 1)); else echo "  (run had finished, exit $RC)"; fi
	verify $name "kill -9 from outside after ${ms} ms"
done

echo "kill points survived: $kills; lost: $LOST_TOTAL; duplicated: $DUP_TOTAL"
want=10
[ "${MF_SOAK:-0}" = 1 ] && want=50
check "at least $want kill points" test "$kills" -ge $want
check_eq "messages lost over all scenarios" "$LOST_TOTAL" 0
check_eq "messages duplicated over all scenarios" "$DUP_TOTAL" 0
finish
