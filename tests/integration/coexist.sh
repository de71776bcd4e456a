#!/usr/bin/env bash
# `mailferry coexist`: every manifest row checked against Microsoft's
# third-party coexistence address rules, from a Get-ADUser export (UTF-8,
# UTF-8 with BOM, UTF-16 LE and BE as PowerShell 5 writes them) and from a
# real slapd loaded with the same users. Findings (table, csv, json) and the
# --emit-powershell script are compared exactly with committed files; every
# rule is broken at least once, and switching any one rule off must change
# the findings. Bad input is file:line and exit 2.
source "$MF_SRC/tests/lib/common.sh"
source "$MF_SRC/tests/lib/dovecot.sh"

D=$MF_SRC/tests/integration/coexist
E=$D/expected
J=$T/job
mkdir -p "$J"
cp "$D"/job.ini "$D"/routing.ini "$D"/manifest.csv "$D"/directory.csv "$D"/directory-utf16.csv "$J"/
chmod 600 "$J"/manifest.csv
mf() { "$MF_BIN" coexist "$@"; }
same() { # same "what" FILE EXPECTED
  if cmp -s "$2" "$3"; then ok "$1"; else bad "$1"; diff "$3" "$2" | head -20 || true; fi
}

# --- the CSV path ------------------------------------------------------------
rc=0; mf "$J/job.ini" --emit-powershell "$J/out.ps1" >"$J/table.txt" 2>"$J/err" || rc=$?
check_eq "rows breaking a rule: exit 1" "$rc" 1
same "table findings" "$J/table.txt" "$E/findings.txt"
same "PowerShell script" "$J/out.ps1" "$E/coexist.ps1"
rc=0; mf "$J/job.ini" --format csv >"$J/f.csv" || rc=$?
check_eq "csv: exit 1" "$rc" 1
same "csv findings" "$J/f.csv" "$E/findings.csv"
rc=0; mf "$J/job.ini" --format json >"$J/f.json" || rc=$?
same "json findings" "$J/f.json" "$E/findings.json"
check "json parses" python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$J/f.json"
mf "$J/job.ini" --emit-powershell "$J/again.ps1" >/dev/null || true
check "the script is the same bytes on a second run" cmp -s "$J/out.ps1" "$J/again.ps1"
check "the script holds no manifest password" bash -c "! grep -Eq 'pw[0-9]+' '$J/out.ps1' '$J/table.txt' '$J/f.csv' '$J/f.json'"
# every rule is broken at least once by the test data
for rule in user-found upn-domain primary-verified target-present target-form \
            target-verified target-unique routing-verified one-row-per-person; do
  if grep -q " $rule: " "$E/findings.txt" "$E/findings-routing.txt"; then ok "the data breaks $rule"
  else bad "the data never breaks $rule"; fi
  # ... and switching the rule off changes the findings the test compares
  MF_COEXIST_TEST_RULE_OFF=$rule mf "$J/job.ini" >"$J/off.txt" 2>/dev/null || true
  MF_COEXIST_TEST_RULE_OFF=$rule mf "$J/routing.ini" >"$J/off-r.txt" 2>/dev/null || true
  if cmp -s "$J/off.txt" "$E/findings.txt" && cmp -s "$J/off-r.txt" "$E/findings-routing.txt"; then
    bad "with $rule switched off the findings are unchanged"
  else ok "with $rule switched off the test fails"; fi
done
grep -q '^2 .* ok$' "$J/table.txt" && ok "the guide's example pair (target in the routing subdomain, primary in the main domain) passes" \
  || bad "the guide's example pair does not pass"

# --- the same users in other encodings ----------------------------------------
sed 's/directory = directory.csv/directory = d.csv/' "$D/job.ini" >"$J/enc.ini"
for enc in utf16 utf-8-sig utf-16-be; do
  case $enc in
    utf16) cp "$D/directory-utf16.csv" "$J/d.csv" ;;
    *) python3 -c '
import sys
t = open(sys.argv[1], encoding="utf-8").read().replace("\n", "\r\n")
t = "#TYPE Selected.Microsoft.ActiveDirectory.Management.ADUser\r\n" + t
bom = {"utf-8-sig": b"", "utf-16-be": "\ufeff".encode("utf-16-be")}[sys.argv[2]]
open(sys.argv[3], "wb").write(bom + t.encode(sys.argv[2]))' "$D/directory.csv" "$enc" "$J/d.csv" ;;
  esac
  mf "$J/enc.ini" >"$J/enc.txt" || true
  same "the $enc export gives the same findings" "$J/enc.txt" "$E/findings.txt"
done
rc=0; mf "$J/routing.ini" >"$J/routing.txt" || rc=$?
check_eq "routing domain not verified: exit 1" "$rc" 1
same "findings with the routing domain not verified" "$J/routing.txt" "$E/findings-routing.txt"

# --- all rows pass: exit 0 ------------------------------------------------------
{ echo "EmailAddress,UserName,Password"; echo "terrya@contoso.com,terrya,pw1"; echo "zoe@contoso.com,zoe,pw2"; } >"$J/good.csv"
chmod 600 "$J/good.csv"
sed 's/^manifest = .*/manifest = good.csv/' "$D/job.ini" >"$J/good.ini"
rc=0; mf "$J/good.ini" >/dev/null || rc=$?
check_eq "every row passes: exit 0" "$rc" 0

# --- bad input: file:line, exit 2, nothing checked --------------------------------
bad_input() { # bad_input "what" "expected message" < directory text
  cat >"$J/d.csv"
  local rc=0
  mf "$J/enc.ini" >"$J/bad.out" 2>"$J/bad.err" || rc=$?
  if [ "$rc" = 2 ] && grep -qF -- "$2" "$J/bad.err" && [ ! -s "$J/bad.out" ]; then ok "$1"
  else bad "$1: exit $rc, $(cat "$J/bad.err")"; fi
}
printf '"SamAccountName","UserPrincipalName","mail","targetAddress","proxyAddresses"\n"a","a@contoso.com","a@contoso.com","",""\n"b","b@contoso.com","b"x@contoso.com","",""\n' |
  bad_input "a quote inside a field is a syntax error at its line" "d.csv:3:"
printf '"SamAccountName","UserPrincipalName","mail","targetAddress","proxyAddresses"\n"a","a@contoso.com","a@contoso.com","","\n' |
  bad_input "an unterminated quote is an error naming the file" "d.csv:2: unterminated"
printf 'SamAccountName,UserPrincipalName,mail\na,a@contoso.com,a@contoso.com\n' |
  bad_input "missing columns are named" "d.csv:1: header lacks targetAddress proxyAddresses"
printf 'SamAccountName,UserPrincipalName,mail,targetAddress,proxyAddresses\na,a@contoso.com,a@contoso.com,,Microsoft.ActiveDirectory.Management.ADPropertyValueCollection\n' |
  bad_input "an unjoined proxyAddresses collection is refused" "d.csv:2: proxyAddresses holds a type name"
printf 'SamAccountName,UserPrincipalName,mail,targetAddress,proxyAddresses\n\xe9,a@contoso.com,a@contoso.com,,\n' |
  bad_input "a Windows-1252 export is refused at its line" "d.csv:2: not UTF-8"
printf '\xff\xfeS\x00,\x00\n\x00\x00\xd8' |
  bad_input "damaged UTF-16 is refused" "d.csv"
sed 's/^routing_domain = .*/routing_domain = domino@contoso.com/' "$D/job.ini" >"$J/badconf.ini"
rc=0; mf "$J/badconf.ini" >/dev/null 2>"$J/bad.err" || rc=$?
check_eq "a bad [coexistence] value: exit 2" "$rc" 2
check "... naming file:line" grep -q 'badconf.ini:[0-9]*: \[coexistence\] routing_domain' "$J/bad.err"
grep -v '^primary_domain' "$D/job.ini" | sed 's/^directory = .*/&\ncolour = blue/' >"$J/badconf.ini"
rc=0; mf "$J/badconf.ini" >/dev/null 2>"$J/bad.err" || rc=$?
check_eq "a missing key and an unknown key: exit 2" "$rc" 2
check "... both named" bash -c "grep -q 'needs primary_domain' '$J/bad.err' && grep -q \"unknown key 'colour'\" '$J/bad.err'"

# --- a graph sink: verified domains from Graph /domains, recipients per row ------------
GP=$(dovecot_free_port 4670)
cat >"$J/tenant.json" <<'JSON'
{"domains": [{"id": "contoso.com", "isVerified": true}, {"id": "fabrikam.com", "isVerified": false},
             {"id": "domino.contoso.com", "isVerified": true}],
 "users": {"terrya@contoso.com": "mailbox", "zoe@contoso.com": "mailbox", "olafur@contoso.com": "unlicensed",
           "o'brien@contoso.com": "mailbox", "kim@contoso.com": "mailbox", "lee@contoso.com": "mailbox",
           "nop@contoso.com": "mailbox", "max@contoso.com": "mailbox", "ana@contoso.com": "mailbox",
           "shared@contoso.com": "mailbox", "amb@contoso.com": "mailbox", "pat@contoso.com": "mailbox",
           "patricia@contoso.com": "mailbox", "jorgen@contoso.com": "mailbox", "darcy@contoso.com": "mailbox",
           "tabby@contoso.com": "mailbox"}}
JSON
MF_GRAPH_DOUBLE_TENANT=$J/tenant.json python3 "$MF_SRC/tests/doubles/graph_double.py" --port "$GP" >"$J/double.log" 2>&1 &
on_exit "kill $! 2>/dev/null"
if ! wait_port "$GP" 100; then
  bad "the Graph double did not start"
else
  export GRAPH_SECRET='s3cr3t-Value~1'
  awk -v gp="$GP" '/^\[sink\]/ {print; print "type = graph"; print "graph_url = http://127.0.0.1:" gp;
      print "login_url = http://127.0.0.1:" gp; print "tenant = contoso.onmicrosoft.com";
      print "client_id = client-1"; print "client_secret_env = GRAPH_SECRET"; skip = 1; next}
    /^\[/ {skip = 0} skip {next} /^verified_domains/ {next} {print}' "$D/job.ini" >"$J/graph.ini"
  rc=0; mf "$J/graph.ini" >"$J/graph.txt" 2>"$J/graph.err" || rc=$?
  check_eq "graph: exit 1" "$rc" 1
  same "graph: findings with Graph's verified domains and recipients" "$J/graph.txt" "$E/findings-graph.txt"
  [ -s "$J/graph.err" ] && cat "$J/graph.err"
  for rule in recipient-exists mailbox-licensed; do
    if grep -q " $rule: " "$E/findings-graph.txt"; then ok "the data breaks $rule"; else bad "the data never breaks $rule"; fi
    MF_COEXIST_TEST_RULE_OFF=$rule mf "$J/graph.ini" >"$J/off.txt" 2>/dev/null || true
    if cmp -s "$J/off.txt" "$E/findings-graph.txt"; then bad "with $rule switched off the findings are unchanged"
    else ok "with $rule switched off the test fails"; fi
  done
  python3 - "$GP" >"$J/state.txt" <<'PY'
import json, sys, urllib.request
s = json.load(urllib.request.urlopen("http://127.0.0.1:%s/_state" % sys.argv[1]))
paths = s.get("coexist_requests", [])
print(s["creates"], len(s.get("mailboxes", {})), sum(p == "/v1.0/domains" for p in paths))
PY
  # three runs so far (one, and one per rule switched off), /domains one page each of 3
  check_eq "graph: read-only (no creates, no mailbox touched), /domains read page by page" "$(cat "$J/state.txt")" "0 0 9"
  GRAPH_SECRET=wrong mf "$J/graph.ini" >/dev/null 2>"$J/graph.err" && rc=0 || rc=$?
  check_eq "graph: a refused client secret is exit 2" "$rc" 2
  check "... and the secret is in no message" bash -c "! grep -q 's3cr3t\|wrong' '$J/graph.err'"
fi

# --- LDAP: a real slapd with the same users ----------------------------------------
SLAPD=/usr/sbin/slapd
if [ ! -x "$SLAPD" ] || [ ! -x /usr/sbin/slapadd ] || ! "$MF_BIN" --help >/dev/null; then
  echo "SKIP (LDAP part): slapd not installed (Debian package slapd)"
else
  L=$T/ldap
  mkdir -p "$L/db"
  port=$(dovecot_free_port 38900)
  cat >"$L/slapd.conf" <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include $D/ad-lite.schema
pidfile $L/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 10485760
suffix "dc=contoso,dc=com"
rootdn "cn=admin,dc=contoso,dc=com"
rootpw coexist-test-secret
directory $L/db
CONF
  tls=no
  if dovecot_make_cert "$L/pki"; then
    tls=yes
    printf 'TLSCACertificateFile %s\nTLSCertificateFile %s\nTLSCertificateKeyFile %s\n' \
      "$L/pki/ca.pem" "$L/pki/server.pem" "$L/pki/server.key" >>"$L/slapd.conf"
  else
    echo "SKIP (LDAP TLS part): cannot make a test certificate with openssl"
  fi
  sport=$(dovecot_free_port $((port + 1)))
  python3 "$D/to_ldif.py" "$D/directory.csv" >"$L/users.ldif"
  if ! /usr/sbin/slapadd -q -f "$L/slapd.conf" -l "$L/users.ldif" >"$L/slapadd.log" 2>&1; then
    bad "slapadd loads the users"; cat "$L/slapadd.log"
  else
    urls="ldap://127.0.0.1:$port/"
    [ $tls = yes ] && urls="$urls ldaps://127.0.0.1:$sport/"
    "$SLAPD" -f "$L/slapd.conf" -h "$urls" -s 0 >"$L/slapd.log" 2>&1
    on_exit "kill \$(cat '$L/slapd.pid' 2>/dev/null) 2>/dev/null"
    for _ in $(seq 50); do [ -s "$L/slapd.pid" ] && break; sleep 0.1; done
    sleep 0.3
    ldap_job() { # ldap_job FILE [extra lines...]
      local f=$1; shift
      sed "s|^directory = .*|directory = ldap://127.0.0.1:$port/ou=users,dc=contoso,dc=com|" "$D/job.ini" >"$f"
      printf '%s\n' "$@" >>"$f"
    }
    ldap_job "$J/ldap.ini" "bind_dn = cn=admin,dc=contoso,dc=com" "bind_password_env = MF_TEST_LDAP_PW"
    rc=0; MF_TEST_LDAP_PW=coexist-test-secret mf "$J/ldap.ini" --emit-powershell "$J/ldap.ps1" >"$J/ldap.txt" 2>"$J/ldap.err" || rc=$?
    check_eq "LDAP: exit 1" "$rc" 1
    same "LDAP: the same findings as the CSV export" "$J/ldap.txt" "$E/findings.txt"
    # the first line names the job file, which differs
    tail -n +2 "$J/ldap.ps1" >"$J/ldap-body.ps1"; tail -n +2 "$E/coexist.ps1" >"$J/exp-body.ps1"
    same "LDAP: the same PowerShell script" "$J/ldap-body.ps1" "$J/exp-body.ps1"
    [ -s "$J/ldap.err" ] && cat "$J/ldap.err"
    rc=0; MF_TEST_LDAP_PW=wrong-Pa55 mf "$J/ldap.ini" >/dev/null 2>"$J/ldap.err" || rc=$?
    check_eq "LDAP: a wrong password is exit 2" "$rc" 2
    check "... naming the bind, not the password" bash -c "grep -q 'bind as cn=admin,dc=contoso,dc=com failed' '$J/ldap.err' && ! grep -q 'wrong-Pa55' '$J/ldap.err'"
    if [ $tls = yes ]; then
      ldap_job "$J/ldap-tls.ini" "bind_dn = cn=admin,dc=contoso,dc=com" "bind_password_env = MF_TEST_LDAP_PW" "starttls = yes"
      rc=0; MF_TEST_LDAP_PW=coexist-test-secret mf "$J/ldap-tls.ini" >/dev/null 2>"$J/ldap.err" || rc=$?
      check_eq "LDAP: StartTLS to a certificate from an unknown CA is exit 2, no plain-text fallback" "$rc" 2
      check "... saying StartTLS failed" grep -q 'StartTLS failed' "$J/ldap.err"
      cat "$J/ldap.err"
      ldap_job "$J/ldap-tls.ini" "bind_dn = cn=admin,dc=contoso,dc=com" "bind_password_env = MF_TEST_LDAP_PW" "starttls = yes" "ldap_ca_file = $L/pki/ca.pem"
      rc=0; MF_TEST_LDAP_PW=coexist-test-secret mf "$J/ldap-tls.ini" >"$J/ldap.txt" 2>"$J/ldap.err" || rc=$?
      check_eq "LDAP StartTLS with the test CA: exit 1" "$rc" 1
      same "LDAP StartTLS: the same findings" "$J/ldap.txt" "$E/findings.txt"
      sed "s|^directory = .*|directory = ldaps://127.0.0.1:$sport/ou=users,dc=contoso,dc=com|" "$D/job.ini" >"$J/ldaps.ini"
      printf '%s\n' "bind_dn = cn=admin,dc=contoso,dc=com" "bind_password_file = pw.txt" "ldap_ca_file = $L/pki/ca.pem" >>"$J/ldaps.ini"
      printf 'coexist-test-secret\n' >"$J/pw.txt"; chmod 600 "$J/pw.txt"
      rc=0; mf "$J/ldaps.ini" >"$J/ldap.txt" 2>"$J/ldap.err" || rc=$?
      check_eq "LDAPS with the test CA and the password from a file: exit 1" "$rc" 1
      same "LDAPS: the same findings" "$J/ldap.txt" "$E/findings.txt"
      grep -v '^ldap_ca_file' "$J/ldaps.ini" >"$J/ldaps-noca.ini"
      rc=0; mf "$J/ldaps-noca.ini" >/dev/null 2>"$J/ldap.err" || rc=$?
      check_eq "LDAPS to a certificate from an unknown CA: exit 2" "$rc" 2
      check "... pointing at the certificate" grep -qi 'certificate' "$J/ldap.err"
      cat "$J/ldap.err"
    fi
    kill "$(cat "$L/slapd.pid")" 2>/dev/null || true
    for _ in $(seq 50); do [ -e "$L/slapd.pid" ] || break; sleep 0.1; done
    rc=0; MF_TEST_LDAP_PW=coexist-test-secret mf "$J/ldap.ini" >/dev/null 2>"$J/ldap.err" || rc=$?
    check_eq "LDAP: a server that is down is exit 2" "$rc" 2
  fi
fi
finish
