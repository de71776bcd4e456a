#!/usr/bin/env bash
# imap_server_faults.sh - the servers misbehave, not the network:
#  1. the source Dovecot, then the target Dovecot, is restarted in the middle
#     of a run (same directories, same port): reruns give the exact result;
#  2. one target mailbox is over its real Dovecot quota: that mailbox fails
#     with a quota reason, the others finish;
#  3. a message bigger than the sink's max_message_mb: skipped, reported with
#     its size, the rest of that mailbox arrives;
#  4. a wrong source password on one manifest row: that mailbox fails with
#     class auth, the others finish; the run exits 1.
source "$MF_SRC/tests/lib/imap_fault.sh"

imapf_servers
imapf_corpus ann 40 2
imapf_corpus ben 20 0
imapf_corpus cat 10 2
# a 1.3 MB message for ben (over max_message_mb = 1)
python3 - "$T/gen/ben-huge.eml" <<'EOF'
import sys
body = "".join("huge line %06d ........................................................\r\n" % i for i in range(18000))
open(sys.argv[1], "wb").write(("From: a@example.org\r\nTo: ben@example.org\r\nSubject: huge\r\n"
    "Message-ID: <ben.huge@example.org>\r\nDate: Mon, 14 Sep 2020 12:00:00 +0000\r\n\r\n" + body).encode())
EOF
printf 'INBOX\t\\Seen\t1600000000\t%s\n' "$T/gen/ben-huge.eml" | dovecot_load "$SP" ben pw-ben
dovecot_dump "$SP" ben pw-ben | sort >"$T/exp.ben"
huge_size=$(stat -c %s "$T/gen/ben-huge.eml")
imapf_target ann-r1 ben-r1 ann-r2 ben-r2 ann-x ben-x
dovecot_add_user "$T/dst" cat-x@example.org tpw "userdb_quota_rule=*:storage=200K"
imapf_wait_login "$DP" cat-x@example.org tpw

# restart a server (its users file is written again by dovecot_start)
restart() { # DIR PORT SEP
	cp "$1/users" "$1/users.keep"
	# imap processes outlive their master: disconnect every session first
	echo "  kicked: $(dovecot_doveadm "$1" kick '*' 2>&1 | tr '\n' ' ')"
	dovecot_stop "$1"
	sleep 1
	dovecot_start "$1" "$2" "$3" || bad "restarting $1"
	cp "$1/users.keep" "$1/users"
}

# ---- 1. restarts ---------------------------------------------------------------------
for side in src dst; do
	name=r$([ $side = src ] && echo 1 || echo 2)
	imapf_manifest "$T/$name.csv" "ann=ann-$name" "ben=ben-$name"
	imapf_job $name $name.csv "$SP" "$DP" "[sink] max_message_mb = 10"
	MF_FAULT_DELAY_MS=60 "$MF_BIN" run "$T/$name.ini" --no-progress >>"$T/$name.log" 2>&1 &
	pid=$!
	sleep 0.6
	if [ $side = src ]; then restart "$T/src" "$SP" .; else restart "$T/dst" "$DP" /; fi
	imapf_wait_login "$SP" ann pw-ann
	imapf_wait_login "$DP" "ann-$name@example.org" tpw
	wait $pid && first=0 || first=$?
	rec=$(grep -c 'event=reconnect' "$T/$name.log" || true)
	echo "$side restarted: the interrupted run exited $first; $rec reconnects"
	check "$side restart hit the run (reconnects or a failed first run)" test "$rec" -gt 0 -o "$first" != 0
	imapf_until_done $name 4 || bad "$side restart: reruns did not finish (exit $RC)"
	imapf_check_exact "$side Dovecot restarted mid-run" "ann=ann-$name" "ben=ben-$name"
done

# ---- 2-4. quota, too big, wrong password: one job ----------------------------------------
cat >"$T/x.csv" <<EOF
EmailAddress,UserName,Password
ann-x@example.org,ann,wrong-password
ben-x@example.org,ben,pw-ben
cat-x@example.org,cat,pw-cat
EOF
chmod 600 "$T/x.csv"
imapf_job x x.csv "$SP" "$DP" "[job] parallel = 3" "[sink] max_message_mb = 1"
imapf_run x
check_eq "quota/too big/auth: exit 1" "$RC" 1
check_eq "wrong password: ann-x failed" "$(imapf_report_field x ann-x@example.org state)" failed
check_eq "wrong password: class auth" "$(imapf_report_field x ann-x@example.org error_class)" auth
echo "  ann-x: $(imapf_report_field x ann-x@example.org error)"
check_eq "wrong password: nothing written for ann-x" "$(dovecot_dump "$DP" ann-x@example.org tpw | wc -l)" 0
check_eq "over quota: cat-x failed" "$(imapf_report_field x cat-x@example.org state)" failed
check_eq "over quota: class quota" "$(imapf_report_field x cat-x@example.org error_class)" quota
qerr=$(imapf_report_field x cat-x@example.org error)
echo "  cat-x: $qerr"
case "$qerr" in *uota*) ok "over quota: the reason says quota" ;; *) bad "over quota: reason '$qerr'" ;; esac
imapf_compare cat cat-x
check_eq "over quota: nothing duplicated, something missing" "$DUPS/$([ "$MISSING" -gt 0 ] && echo some)" "0/some"
check_eq "too big: ben-x done" "$(imapf_report_field x ben-x@example.org state)" done
imapf_compare ben ben-x
check_eq "too big: only the huge message is missing" "$MISSING/$DUPS/$(comm -23 "$T/exp.ben" "$T/got.ben-x" | cut -f1,3)" \
	"1/0/INBOX	1600000000"
problems=$(imapf_report_field x ben-x@example.org problems)
echo "  ben-x: $problems"
echo "$problems" | grep -q '"state": "skipped"' && echo "$problems" | grep -q "\"size\": $huge_size," &&
	echo "$problems" | grep -q '"reason": "too-big: [0-9.]* MB > 1 MB"' &&
	ok "too big: skipped and reported with its size" || bad "too big: not reported with its size ($huge_size bytes)"

# a rerun changes nothing for the good mailbox and fails the others again
imapf_run x
imapf_compare ben ben-x
check_eq "rerun: ben-x still exact but for the huge message" "$MISSING/$DUPS" "1/0"
echo "restarts: 2; quota: 1; too big: 1; wrong passwords: 1; lost: $LOST_TOTAL; duplicated: $DUP_TOTAL"
finish
