#!/usr/bin/env bash
# https_tls.sh - the HTTP sinks check server certificates. The Graph test
# double serves HTTPS with a certificate from a test CA of our own; a PST ->
# Graph job must:
#   - by default (system CAs) refuse it at once, naming the certificate and
#     what to set, without retrying and without storing anything;
#   - with tls_ca_file = the test CA, migrate every message;
#   - refuse a certificate from that CA whose name is not the host's;
#   - with tls_verify = no, migrate and warn in the log on every run.
source "$MF_SRC/tests/lib/common.sh"
command -v openssl >/dev/null || skip "openssl not installed"
. "$MF_SRC/tests/lib/dovecot.sh"
dovecot_make_cert "$T/pki" || skip "cannot make a test certificate with openssl"
# a second certificate from the same CA, for another name
openssl req -newkey rsa:2048 -nodes -subj "/CN=other.example" -keyout "$T/pki/other.key" \
	-out "$T/pki/other.csr" 2>/dev/null &&
	printf 'subjectAltName=DNS:other.example\n' >"$T/pki/other.cnf" &&
	openssl x509 -req -in "$T/pki/other.csr" -CA "$T/pki/ca.pem" -CAkey "$T/pki/ca.key" \
		-CAcreateserial -days 2 -extfile "$T/pki/other.cnf" -out "$T/pki/other.pem" 2>/dev/null ||
	skip "cannot make the second certificate"

P=$(dovecot_free_port 4591)
P2=$(dovecot_free_port $((P + 1)))
double() { # PORT CERT KEY
	python3 "$MF_SRC/tests/doubles/graph_double.py" --port "$1" --page 1000 \
		--tls-cert "$2" --tls-key "$3" >"$T/double-$1.log" 2>&1 &
	on_exit "kill $! 2>/dev/null"
	wait_port "$1" 100 || bad "the HTTPS double on $1 did not start"
}
double "$P" "$T/pki/server.pem" "$T/pki/server.key"
double "$P2" "$T/pki/other.pem" "$T/pki/other.key"
export GRAPH_SECRET='s3cr3t-Value~1'
stored_in_double() { # PORT MAILBOX-PREFIX
	python3 - "$1" "$2" "$T/pki/ca.pem" <<'EOF'
import json, ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[3])
ctx.check_hostname = False  # the test tool also reads the wrong-name double
s = json.load(urllib.request.urlopen("https://127.0.0.1:%s/_state" % sys.argv[1], context=ctx))
print(sum(len(mb["messages"]) for name, mb in s["mailboxes"].items() if name.startswith(sys.argv[2])))
EOF
}
job() { # NAME PORT [extra [sink] lines]
	local n=$1 port=$2
	shift 2
	mkdir -p "$T/$n"
	{
		printf '[job]\nname = %s\nstate = state.db\nmanifest = manifest.csv\n[source]\ntype = pst\nroot = %s\n' "$n" "$(pst_dir)"
		printf '[sink]\ntype = graph\ngraph_url = https://127.0.0.1:%s\nlogin_url = https://127.0.0.1:%s\n' "$port" "$port"
		printf 'tenant = contoso.onmicrosoft.com\nclient_id = client-1\nclient_secret_env = GRAPH_SECRET\n'
		printf '%s\n' "$@"
	} >"$T/$n/job.ini"
	{
		pst_manifest_header
		echo "Exchange,,aspnet_Outlook_1.pst,$n@example.com,FALSE,/,,,,"
	} >"$T/$n/manifest.csv"
}
run() { # NAME: exit code; log in $T/NAME/log
	local rc t0=$SECONDS
	timeout 120 "$MF_BIN" run "$T/$1/job.ini" --no-progress >"$T/$1/log" 2>&1 && rc=0 || rc=$?
	echo "  $1: exit $rc in $((SECONDS - t0)) s"
	return "$rc"
}

# 1. default trust: the test CA is not a system CA
job untrusted "$P"
t0=$SECONDS
run untrusted && rc=0 || rc=$?
check "untrusted certificate: the run fails (exit $rc)" test "$rc" -ne 0 -a "$rc" -ne 124
check "untrusted certificate: the log names the certificate and the fix" \
	grep -q "certificate is not trusted: set tls_ca_file" "$T/untrusted/log"
echo "  untrusted certificate: failed in $((SECONDS - t0)) s"
check "untrusted certificate: one attempt, no retry" grep -q "event=http_fail .*attempts=1 " "$T/untrusted/log"
check_eq "untrusted certificate: no http_retry in the log" "$(grep -c event=http_retry "$T/untrusted/log" || true)" 0
check_eq "untrusted certificate: nothing stored" "$(stored_in_double "$P" untrusted@)" 0

# 2. the test CA given
job trusted "$P" "tls_ca_file = $T/pki/ca.pem"
run trusted && rc=0 || rc=$?
check_eq "tls_ca_file: the run succeeds" "$rc" 0
n=$(report_sum "$T/trusted/job.ini" messages_stored)
check "tls_ca_file: messages stored ($n)" test "$n" -gt 0
check_eq "tls_ca_file: the double holds what the report counts" "$(stored_in_double "$P" trusted@)" "$n"
check_eq "tls_ca_file: no verification warning" "$(grep -c event=tls_verify_off "$T/trusted/log" || true)" 0

# 3. trusted CA, wrong name
job wrongname "$P2" "tls_ca_file = $T/pki/ca.pem"
run wrongname && rc=0 || rc=$?
check "wrong host name: the run fails (exit $rc)" test "$rc" -ne 0 -a "$rc" -ne 124
check_eq "wrong host name: nothing stored" "$(stored_in_double "$P2" wrongname@)" 0

# 4. verification off: works, warned on every run
job noverify "$P" "tls_verify = no"
run noverify && rc=0 || rc=$?
check_eq "tls_verify = no: the run succeeds" "$rc" 0
check "tls_verify = no: warned" grep -q "event=tls_verify_off url=https://127.0.0.1:$P" "$T/noverify/log"
run noverify >/dev/null && rc=0 || rc=$?
check "tls_verify = no: warned again on the next run" grep -q "event=tls_verify_off" "$T/noverify/log"
check_eq "tls_verify = no: the double holds what the report counts" \
	"$(stored_in_double "$P" noverify@)" "$(report_sum "$T/noverify/job.ini" messages_stored)"
finish
