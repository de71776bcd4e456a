#!/usr/bin/env bash
# imap_throttle.sh - the target answers as Exchange Online does under load.
# Dovecot cannot say "Request is throttled. Suggested Backoff Time: N
# milliseconds", so an IMAP-aware proxy (tests/lib/imap_faultproxy.py) in
# front of the target Dovecot answers some APPENDs with it instead of
# forwarding them (the literal swallowed, LITERAL+ and synchronizing), and
# answers [TOOBIG] and [OVERQUOTA] for chosen messages.
# Expected: every throttle answer is honoured (the next APPEND on that
# connection comes at least the suggested time later), the run ends exact;
# the TOOBIG message is skipped and reported with its size; the OVERQUOTA
# mailbox stops with a clear quota reason while the others finish; exit 1.
source "$MF_SRC/tests/lib/imap_fault.sh"

imapf_servers
imapf_corpus ann 30 1
imapf_corpus ben 16 0
imapf_corpus cat 12 0
imapf_target ann ben cat ann-s

THROTTLE='Request is throttled. Suggested Backoff Time: 500 milliseconds'
rules() { # rules MAX_THROTTLES
	cat <<EOF
[{"on": "append", "match": "Message-ID: <ann.7@example.org>", "do": "no", "text": "[TOOBIG] Message too large for this mailbox"},
 {"on": "append", "match": "Message-ID: <cat.5@example.org>", "do": "no", "text": "[OVERQUOTA] Mailbox quota exceeded"},
 {"on": "append", "every": 4, "max": $1, "do": "no", "text": "$THROTTLE"}]
EOF
}
# the content hash of ann's message 7 as dovecot_dump shows it
toobig_hash=$(python3 -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read().replace(b"\r\n",b"\n")).hexdigest())' "$T/gen/ann-7.eml")
toobig_size=$(stat -c %s "$T/gen/ann-7.eml")

# 1. LITERAL+ (Dovecot offers it): three mailboxes
P1=$(imapf_port $((DP + 10)))
imapf_proxy lp "$P1" "$DP" --rules "$(rules 6)"
imapf_manifest "$T/m1.csv" ann=ann ben=ben cat=cat
imapf_job lp m1.csv "$SP" "$P1"
t0=$(date +%s%N)
imapf_run lp
secs=$(( ($(date +%s%N) - t0) / 1000000 ))
check_eq "LITERAL+: exit 1 (one mailbox over quota)" "$RC" 1
thr=$(imapf_pstat lp throttled)
gap=$(imapf_pstat lp min_gap_ms)
wait_ms=$(imapf_pstat lp throttle_wait_ms)
echo "LITERAL+: ${secs} ms; $thr throttle answers; waited $wait_ms ms in total, at least $gap ms each"
check_eq "LITERAL+: throttle answers given" "$thr" 6
check "LITERAL+: every throttle answer honoured (>= 500 ms before the retry)" test "$gap" -ge 500
check "LITERAL+: total wait >= 6 x 500 ms" test "$wait_ms" -ge 3000
check_eq "LITERAL+: throttled events logged" "$(grep -c 'event=throttled.*wait_ms=500' "$T/lp.log")" "$thr"
grep -q "retries" "$T/lp.log" && ok "LITERAL+: summary counts the retries: $(grep -o '[0-9]* retries' "$T/lp.log")" ||
	bad "LITERAL+: no retries in the summary"

imapf_check_exact "LITERAL+: ben" ben=ben
imapf_compare ann ann
LOST_TOTAL=$((LOST_TOTAL + MISSING - 1))
DUP_TOTAL=$((DUP_TOTAL + DUPS))
check_eq "LITERAL+: ann: only the TOOBIG message is missing" \
	"$MISSING/$DUPS/$(comm -23 "$T/exp.ann" "$T/got.ann" | cut -f4)" "1/0/$toobig_hash"
problems=$(imapf_report_field lp ann@example.org problems)
echo "  report: $problems"
echo "$problems" | grep -q '"state": "skipped"' && echo "$problems" | grep -q TOOBIG &&
	echo "$problems" | grep -q "\"size\": $toobig_size" &&
	ok "LITERAL+: TOOBIG skipped and reported with its size ($toobig_size bytes)" ||
	bad "LITERAL+: TOOBIG not reported as skipped with size $toobig_size"
check_eq "LITERAL+: ann's state" "$(imapf_report_field lp ann@example.org state)" done
check_eq "LITERAL+: cat's state" "$(imapf_report_field lp cat@example.org state)" failed
check_eq "LITERAL+: cat's error class" "$(imapf_report_field lp cat@example.org error_class)" quota
cerr=$(imapf_report_field lp cat@example.org error)
echo "  cat: $cerr"
case "$cerr" in *OVERQUOTA*) ok "LITERAL+: cat's reason names the quota" ;; *) bad "LITERAL+: cat's reason: $cerr" ;; esac
# cat stopped at its message 5: what came before is there once, nothing after
imapf_compare cat cat
check_eq "LITERAL+: cat: nothing duplicated" "$DUPS" 0

# 2. synchronizing literals (LITERAL+ hidden from the client)
P2=$(imapf_port $((P1 + 1)))
imapf_proxy sy "$P2" "$DP" --hide-literalplus --rules "$(rules 4)"
imapf_manifest "$T/m2.csv" ann=ann-s
imapf_job sy m2.csv "$SP" "$P2"
imapf_run sy
check_eq "sync literals: exit 0 (TOOBIG is a skip)" "$RC" 0
thr2=$(imapf_pstat sy throttled)
gap2=$(imapf_pstat sy min_gap_ms)
wait2=$(imapf_pstat sy throttle_wait_ms)
check_eq "sync literals: throttle answers given" "$thr2" 4
check "sync literals: every throttle answer honoured" test "$gap2" -ge 500
imapf_compare ann ann-s
LOST_TOTAL=$((LOST_TOTAL + MISSING - 1))
DUP_TOTAL=$((DUP_TOTAL + DUPS))
check_eq "sync literals: ann-s: only the TOOBIG message is missing" "$MISSING/$DUPS" "1/0"

# 3. a rerun through the throttling proxy moves nothing twice
imapf_run sy
imapf_compare ann ann-s
check_eq "sync literals: rerun: still only the TOOBIG message missing, none duplicated" "$MISSING/$DUPS" "1/0"

echo "throttle answers honoured: $((thr + thr2)) (waited $((wait_ms + wait2)) ms); too big: 2; over quota: 1; lost: $LOST_TOTAL; duplicated: $DUP_TOTAL"
finish
