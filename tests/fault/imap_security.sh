#!/usr/bin/env bash
# imap_security.sh - IMAP secrets and TLS settings:
#  - tls_verify = no prints a warning on every run (STARTTLS target);
#  - the manifest's Password and TargetPassword columns, the sink's
#    password_env value and a wrong password never appear in any log (also
#    with -v), report, status, verify or plan output, the state database
#    (sqlite3 .dump and the raw bytes of the db and its WAL), or the
#    /proc/PID/cmdline of a running mailferry;
#  - a manifest holding passwords that others can read gets a warning, a
#    chmod 600 one does not.
source "$MF_SRC/tests/lib/imap_fault.sh"
command -v openssl >/dev/null || skip "openssl is not installed"

imapf_servers
SRC1='SrcPw-Q7x9Zk,"v'
SRC2='SrcPw2-M3t6Yp'
BADPW='BadPw-J8n2Dq'
TGT='TgtPw-R4n8Lm'
ENVPW='EnvPw-W2c5Hs'
imapf_corpus s1 12 0 "$SRC1"
imapf_corpus s2 8 0 "$SRC2"
imapf_corpus s3 4 0 pw-s3

# a TLS target (STARTTLS) with a certificate nobody trusts
dovecot_make_cert "$T/cert" || skip "cannot make a test certificate"
TP=$(imapf_port $((DP + 60)))
IP=$(imapf_port $((TP + 1)))
DOVECOT_SSL_DIR=$T/cert DOVECOT_IMAPS_PORT=$IP dovecot_start "$T/tls" "$TP" / || skip "cannot start a TLS Dovecot"
on_exit "dovecot_stop '$T/tls'"
dovecot_add_user "$T/tls" s1@example.org "$TGT"
dovecot_add_user "$T/tls" s2@example.org "$ENVPW"
dovecot_add_user "$T/tls" s3@example.org "$ENVPW"
imapf_wait_login "$TP" s3@example.org "$ENVPW"

q() { printf '"%s"' "${1//\"/\"\"}"; }
{
	echo "EmailAddress,UserName,Password,UserRoot,TargetPassword"
	echo "s1@example.org,s1,$(q "$SRC1"),,$TGT"
	echo "s2@example.org,s2,$SRC2,,"
	echo "s3@example.org,s3,$BADPW,,"
} >"$T/sec.csv"
chmod 600 "$T/sec.csv"
imapf_job sec sec.csv "$SP" "$TP" "[sink] tls = starttls" "[sink] tls_verify = no" \
	"[sink] password_env = MF_SEC_TARGET_PW"
export MF_SEC_TARGET_PW=$ENVPW

# 1. run (slowed, to read its cmdline while it runs); s3's wrong password fails it
MF_FAULT_DELAY_MS=40 "$MF_BIN" run "$T/sec.ini" --no-progress >"$T/run1.log" 2>&1 &
pid=$!
sleep 0.5
tr '\0' ' ' <"/proc/$pid/cmdline" >"$T/cmdline.txt" 2>/dev/null || true
wait $pid && rc=0 || rc=$?
check_eq "run 1: exit 1 (s3's source password is wrong)" "$rc" 1
check "the cmdline of the running process was read" test -s "$T/cmdline.txt"
imapf_compare s1 s1 "$TP" "$TGT" >/dev/null
check_eq "s1 arrived over STARTTLS (TargetPassword column)" "$MISSING/$DUPS" "0/0"
check_eq "s3 failed with class auth" "$(imapf_report_field sec s3@example.org error_class)" auth

# 2. a second run, with debug logging
"$MF_BIN" run "$T/sec.ini" --no-progress -v >"$T/run2.log" 2>&1 || true
for f in run1 run2; do
	check "tls_verify = no warned in $f" grep -q 'event=tls_verify_off' "$T/$f.log"
done

# everything a run leaves behind
"$MF_BIN" report "$T/sec.ini" --format json >"$T/report.json" 2>&1 || true
"$MF_BIN" report "$T/sec.ini" --format csv >"$T/report.csv" 2>&1 || true
"$MF_BIN" status "$T/sec.ini" >"$T/status.txt" 2>&1 || true
"$MF_BIN" verify "$T/sec.ini" >"$T/verify.txt" 2>&1 || true
"$MF_BIN" plan "$T/sec.ini" >"$T/plan.txt" 2>&1 || true
db=$T/state/sec.db
if command -v sqlite3 >/dev/null; then
	sqlite3 "$db" .dump >"$T/db.dump"
else
	python3 -c 'import sqlite3,sys; print("\n".join(sqlite3.connect(sys.argv[1]).iterdump()))' "$db" >"$T/db.dump"
fi
leaks=0
files=("$T/run1.log" "$T/run2.log" "$T/report.json" "$T/report.csv" "$T/status.txt" "$T/verify.txt"
	"$T/plan.txt" "$T/db.dump" "$T/cmdline.txt" "$db"*)
for secret in "$SRC1" "$SRC2" "$BADPW" "$TGT" "$ENVPW"; do
	hits=$(grep -l -a -F -- "$secret" "${files[@]}" 2>/dev/null || true)
	# also the part before the comma of SRC1, and base64 forms (SASL PLAIN)
	b64=$(printf '%s' "$secret" | base64)
	hits="$hits$(grep -l -a -F -- "${b64%%=*}" "${files[@]}" 2>/dev/null || true)"
	if [ -n "$hits" ]; then
		bad "secret ${secret:0:6}... found in: $(echo $hits)"
		leaks=$((leaks + 1))
	fi
done
check_eq "secrets found in ${#files[@]} files (logs, reports, status, verify, plan, db dump, db/WAL bytes, cmdline)" "$leaks" 0
check "the state database was really searched (it exists, $(stat -c %s "$db") bytes)" test -s "$db"

# 3. a manifest with passwords that others can read
check "no insecure-file warning for a chmod 600 manifest" test "$(grep -c 'event=insecure-file' "$T/run1.log" || true)" = 0
chmod 644 "$T/sec.csv"
"$MF_BIN" run "$T/sec.ini" --no-progress >"$T/run3.log" 2>&1 || true
check "a world-readable manifest with passwords gets a warning" grep -q 'event=insecure-file.*manifest' "$T/run3.log"
chmod 600 "$T/sec.csv"
finish
