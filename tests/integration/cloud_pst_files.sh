#!/usr/bin/env bash
# PST Import staging: a PST manifest through `mailferry run` with
# [sink] type = azure-blob, upload = pst-files, against Azurite, with a SAS of
# the old service version the import service hands out (sv=2015-04-05: 4 MiB
# blocks). kill -9 after the 2nd uploaded block (MF_FAULT_KILL_AT=block:2),
# rerun: exit 0, every blob byte-identical to its file, the mapping CSV lists
# every row, and the rerun sent only the missing blocks (Put Block requests
# counted in a request log of Azurite's, written by a node preload). A third
# run moves nothing and writes nothing.
set -u
[ -n "${MF_BIN:-}" ] && [ -n "${MF_SRC:-}" ] && [ -n "${MF_TMP:-}" ] || { echo "run through ctest"; exit 77; }
PST=$MF_SRC/tests/data/pst
for f in aspnet_Outlook_1.pst docfetcher_test.pst rubymsg_attachAndInline.pst; do
  [ -e "$PST/$f" ] || { echo "SKIP: tests/data/pst/$f missing"; exit 77; }
done
command -v python3 >/dev/null || { echo "SKIP: python3 missing"; exit 77; }
T=$MF_TMP; rm -rf "$T"; mkdir -p "$T"
NPM=${MF_NPM_PREFIX:-$(dirname "$MF_BIN")/npm}
exec 9>/tmp/mailferry-cloud.lock; flock 9
fail=0
check() { local what=$1; shift; if "$@"; then echo "ok - $what"; else echo "FAIL - $what"; fail=1; fi; }

# Azurite with a request log: one line "METHOD URL" per request (sig blanked).
cat >"$T/reqlog.js" <<'EOF'
const http = require('http'), fs = require('fs');
const log = process.env.MF_REQLOG, emit = http.Server.prototype.emit;
http.Server.prototype.emit = function (ev, req) {
  if (ev === 'request' && log)
    fs.appendFileSync(log, req.method + ' ' + req.url.replace(/([?&]sig=)[^&]*/, '$1-') + '\n');
  return emit.apply(this, arguments);
};
EOF
LOG=$T/requests.log
SRV=$T/srv
NODE_OPTIONS="--require $T/reqlog.js" MF_REQLOG=$LOG \
  bash "$MF_SRC/tools/cloud-servers.sh" start "$NPM" "$SRV" azurite >/dev/null || { echo "SKIP: cannot start Azurite"; exit 77; }
trap 'bash "$MF_SRC/tools/cloud-servers.sh" stop "$SRV"' EXIT

# The test's own access (Shared Key, Azurite's well-known key).
cat >"$T/az.py" <<'EOF'
import base64, hashlib, hmac, re, sys, urllib.parse, urllib.request, urllib.error
from email.utils import formatdate
ACCT, KEY = "devstoreaccount1", "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
BASE = "http://127.0.0.1:10000/devstoreaccount1"
def call(method, path, q):
    date = formatdate(usegmt=True)
    sts = "%s\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:%s\nx-ms-version:2025-11-05\n/%s/%s/%s" % (
        method, date, ACCT, ACCT, urllib.parse.quote(path)) + "".join("\n%s:%s" % (k, q[k]) for k in sorted(q))
    sig = base64.b64encode(hmac.new(base64.b64decode(KEY), sts.encode(), hashlib.sha256).digest()).decode()
    url = BASE + "/" + urllib.parse.quote(path) + ("?" + urllib.parse.urlencode(q) if q else "")
    req = urllib.request.Request(url, method=method, headers={"x-ms-date": date, "x-ms-version": "2025-11-05",
                                 "Authorization": "SharedKey %s:%s" % (ACCT, sig), "Content-Length": "0"})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
def sas(cont, perms, sv="2015-04-05", se="2099-01-01T00:00:00Z"):
    sts = "\n".join([perms, "", se, "/blob/%s/%s" % (ACCT, cont), "", "", "", sv, "", "", "", "", ""])
    sig = base64.b64encode(hmac.new(base64.b64decode(KEY), sts.encode(), hashlib.sha256).digest()).decode()
    return urllib.parse.urlencode({"sv": sv, "sr": "c", "sp": perms, "se": se, "sig": sig})
cmd = sys.argv[1]
if cmd == "mkcontainer":
    print(call("PUT", sys.argv[2], {"restype": "container"})[0])
elif cmd == "sas":
    print(sas(sys.argv[2], sys.argv[3]))
elif cmd == "sha256":          # sha256 and size of a committed blob, or "absent"
    st, body = call("GET", sys.argv[2], {})
    print("%s %d" % (hashlib.sha256(body).hexdigest(), len(body)) if st == 200 else "absent")
elif cmd == "cat":
    st, body = call("GET", sys.argv[2], {})
    sys.stdout.write(body.decode() if st == 200 else "")
elif cmd == "uncommitted":     # number of uncommitted blocks of a blob
    st, body = call("GET", sys.argv[2], {"comp": "blocklist", "blocklisttype": "all"})
    m = re.search(r"<UncommittedBlocks>(.*?)</UncommittedBlocks>", body.decode(), re.S)
    print(len(re.findall(r"<Block>", m.group(1))) if st == 200 and m else 0)
EOF
AZ() { python3 "$T/az.py" "$@"; }
check "container created" test "$(AZ mkcontainer ingestiondata)" = 201
export PST_SAS; PST_SAS=$(AZ sas ingestiondata racwl)

# Source root: three test PSTs and a generated 13 MiB one in a subfolder.
R=$T/root; mkdir -p "$R/big one"
cp "$PST/aspnet_Outlook_1.pst" "$PST/docfetcher_test.pst" "$PST/rubymsg_attachAndInline.pst" "$R/"
python3 - "$R/big one/huge.pst" <<'EOF'
import random, sys
r = random.Random(20261127)
with open(sys.argv[1], "wb") as f:
    for _ in range(13):
        f.write(r.randbytes(1 << 20))
EOF
J=$T/job; mkdir -p "$J"
cat >"$J/job.ini" <<EOF
[job]
name = pstimport
state = state/pst.db
manifest = manifest.csv
parallel = 1

[source]
type = pst
root = $R

[sink]
type = azure-blob
url = http://127.0.0.1:10000/devstoreaccount1/ingestiondata/PSTFiles
account = devstoreaccount1
sas_env = PST_SAS
upload = pst-files
EOF
cat >"$J/manifest.csv" <<'EOF'
Workload,FilePath,Name,Mailbox,IsArchive,TargetRootFolder,ContentCodePage,SPFileContainer,SPManifestContainer,SPSiteUrl
Exchange,big one,huge.pst,annb@contoso.example,FALSE,/Imported PST,,,,
Exchange,,aspnet_Outlook_1.pst,annb@contoso.example,TRUE,/,,,,
Exchange,,docfetcher_test.pst,kiml@contoso.example,FALSE,,,,,
Exchange,,rubymsg_attachAndInline.pst,zoe@contoso.example,FALSE,"/Old, PSTs",,,,
EOF
HUGE=PSTFiles/big%20one/huge.pst
puts() { grep -c "^PUT /devstoreaccount1/ingestiondata/$1?\(.*&\)\?comp=block\(&\|$\)" "$LOG"; }
writes() { grep -c "^PUT " "$LOG"; }

# 1. killed after the 2nd block of huge.pst
MF_FAULT_KILL_AT=block:2 "$MF_BIN" run "$J/job.ini" --no-progress >"$T/run1.log" 2>&1; rc=$?
check "run 1 killed by the fault point (rc $rc)" test "$rc" -eq 137
check "huge.pst not committed after the kill" test "$(AZ sha256 "ingestiondata/PSTFiles/big one/huge.pst")" = absent
check "2 uncommitted blocks left" test "$(AZ uncommitted "ingestiondata/PSTFiles/big one/huge.pst")" -eq 2
p1=$(puts "$HUGE")
check "run 1 sent 2 Put Block for huge.pst ($p1)" test "$p1" -eq 2

# 2. rerun: resumes, only the 2 missing blocks go up
"$MF_BIN" run "$J/job.ini" --no-progress >"$T/run2.log" 2>&1; rc=$?
check "run 2 exits 0 (rc $rc)" test "$rc" -eq 0
p2=$(puts "$HUGE")
check "run 2 sent only the 2 missing blocks of huge.pst ($((p2 - p1)))" test $((p2 - p1)) -eq 2
for n in aspnet_Outlook_1.pst docfetcher_test.pst rubymsg_attachAndInline.pst; do
  check "one Put Block for $n" test "$(puts "PSTFiles/$n")" -eq 1
done
for f in "big one/huge.pst" aspnet_Outlook_1.pst docfetcher_test.pst rubymsg_attachAndInline.pst; do
  want="$(sha256sum <"$R/$f" | cut -d' ' -f1) $(stat -c %s "$R/$f")"
  check "blob $f byte-identical" test "$(AZ sha256 "ingestiondata/PSTFiles/$f")" = "$want"
done
AZ cat ingestiondata/PSTFiles/mailferry-pst-import-mapping.csv >"$T/mapping.csv"
printf '%s\r\n' \
  'Workload,FilePath,Name,Mailbox,IsArchive,TargetRootFolder,ContentCodePage,SPFileContainer,SPManifestContainer,SPSiteUrl' \
  'Exchange,PSTFiles,aspnet_Outlook_1.pst,annb@contoso.example,TRUE,/,,,,' \
  'Exchange,PSTFiles/big one,huge.pst,annb@contoso.example,FALSE,/Imported PST,,,,' \
  'Exchange,PSTFiles,docfetcher_test.pst,kiml@contoso.example,FALSE,,,,,' \
  'Exchange,PSTFiles,rubymsg_attachAndInline.pst,zoe@contoso.example,FALSE,"/Old, PSTs",,,,' >"$T/want.csv"
check "mapping CSV lists every row" cmp "$T/mapping.csv" "$T/want.csv"
"$MF_BIN" report "$J/job.ini" --format json >"$T/report.json" 2>/dev/null
check "report: 4 files stored" python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
sys.exit(0 if sum(m["messages_stored"] for m in r["mailboxes"]) == 4 else 1)' "$T/report.json"

# 3. nothing new: no write at all
w=$(writes)
out=$("$MF_BIN" run "$J/job.ini" --no-progress 2>&1); rc=$?
check "run 3 exits 0" test "$rc" -eq 0
check "run 3: nothing new to move" grep -q "nothing new to move" <<<"$out"
check "run 3 wrote nothing ($(( $(writes) - w )) PUTs)" test "$(writes)" -eq "$w"
[ $fail -eq 0 ] || { echo "--- run 1"; cat "$T/run1.log"; echo "--- run 2"; cat "$T/run2.log"; diff "$T/mapping.csv" "$T/want.csv"; }
exit $fail
