#!/usr/bin/env bash
# PST files -> azure-blob (Azurite), s3 (s3rver) and graph (the Graph double)
# through `mailferry run`: every message exactly once, a rerun moves nothing,
# and after kill -9 in the middle of a run, a rerun ends exact. Then
# `mailferry verify` against Graph (by Message-ID): 0 when exact, 1 naming the
# message deleted behind its back, 1 naming a duplicate imported twice.
set -u
[ -n "${MF_BIN:-}" ] && [ -n "${MF_SRC:-}" ] && [ -n "${MF_TMP:-}" ] || { echo "run through ctest"; exit 77; }
PST=$MF_SRC/tests/data/pst
[ -e "$PST/aspnet_Outlook_1.pst" ] && [ -e "$PST/rubymsg_attachAndInline.pst" ] || { echo "SKIP: tests/data/pst missing"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: python3 missing"; exit 77; }
T=$MF_TMP; rm -rf "$T"; mkdir -p "$T"
NPM=${MF_NPM_PREFIX:-$(dirname "$MF_BIN")/npm}
exec 9>/tmp/mailferry-cloud.lock; flock 9
SRV=$T/srv
GRAPH_ARGS="--latency 20 --fail-before 7 --fail-after 5 --expire-early 13" \
  bash "$MF_SRC/tools/cloud-servers.sh" start "$NPM" "$SRV" azurite s3rver graph >/dev/null || { echo "SKIP: cannot start servers"; exit 77; }
trap 'bash "$MF_SRC/tools/cloud-servers.sh" stop "$SRV"' EXIT
fail=0
check() { local what=$1; shift; if "$@"; then echo "ok - $what"; else echo "FAIL - $what"; fail=1; fi; }
export AZ_KEY=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==
export S3_SECRET=S3RVER GRAPH_SECRET='s3cr3t-Value~1'
curl -s -o /dev/null --aws-sigv4 aws:amz:us-east-1:s3 --user S3RVER:S3RVER -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' -X PUT http://127.0.0.1:4568/e2e

sink_conf() {
  case $1 in
  azure-blob) printf 'type = azure-blob\nurl = http://127.0.0.1:10000/devstoreaccount1/%s\naccount = devstoreaccount1\nkey_env = AZ_KEY\n' "$2" ;;
  s3) printf 'type = s3\nurl = http://127.0.0.1:4568/e2e/%s\nregion = us-east-1\naccess_key_id = S3RVER\nsecret_access_key_env = S3_SECRET\n' "$2" ;;
  graph) printf 'type = graph\ngraph_url = http://127.0.0.1:4570\nlogin_url = http://127.0.0.1:4570\ntenant = contoso.onmicrosoft.com\nclient_id = client-1\nclient_secret_env = GRAPH_SECRET\n' ;;
  esac
}
listing() {
  case $1 in
  azure-blob) python3 "$MF_SRC/tests/doubles/cloud_list.py" azure "http://127.0.0.1:10000/devstoreaccount1/$2" devstoreaccount1 "$AZ_KEY" ;;
  s3) python3 "$MF_SRC/tests/doubles/cloud_list.py" s3 http://127.0.0.1:4568/e2e | grep "^$2/" ;;
  graph) python3 "$MF_SRC/tests/doubles/cloud_list.py" graph 4570 | grep "^$2" ;;
  esac
}
stored() { "$MF_BIN" report "$1" --format json | python3 -c 'import json,sys; print(sum(m["messages_stored"] for m in json.load(sys.stdin)["mailboxes"]))'; }

job() { # DIR SINK TARGET MAILBOX_PREFIX
  mkdir -p "$1"
  { printf '[job]\nname = e2e\nstate = state/e2e.db\nmanifest = manifest.csv\nparallel = 2\n\n[source]\ntype = pst\nroot = %s\n\n[sink]\n' "$PST"; sink_conf "$2" "$3"; } >"$1/job.ini"
  { echo "Workload,FilePath,Name,Mailbox,IsArchive,TargetRootFolder,ContentCodePage,SPFileContainer,SPManifestContainer,SPSiteUrl"
    echo "Exchange,,aspnet_Outlook_1.pst,${4}a@contoso.example,FALSE,/,,,,"
    echo "Exchange,,rubymsg_attachAndInline.pst,${4}c@contoso.example,FALSE,/Old PST,,,,"; } >"$1/manifest.csv"
}

for sink in azure-blob s3 graph; do
  J=$T/$sink-1; job "$J" "$sink" "cont1" "one-"
  out=$("$MF_BIN" run "$J/job.ini" --no-progress 2>&1); rc=$?
  check "$sink: first run exits 0" test "$rc" -eq 0
  n=$(stored "$J/job.ini"); have=$(listing "$sink" "$([ $sink = graph ] && echo one- || echo cont1)" | wc -l)
  check "$sink: target holds what the report counts ($n = $have)" test "$n" -gt 0 -a "$n" -eq "$have"
  out=$("$MF_BIN" run "$J/job.ini" --no-progress 2>&1)
  check "$sink: rerun moves nothing" grep -q "nothing new to move" <<<"$out"
  check "$sink: rerun left the target as it was" test "$(listing "$sink" "$([ $sink = graph ] && echo one- || echo cont1)" | wc -l)" -eq "$have"

  # kill -9 mid-run, then rerun: exact
  K=$T/$sink-2; job "$K" "$sink" "cont2" "two-"
  "$MF_BIN" run "$K/job.ini" --no-progress >/dev/null 2>&1 & pid=$!
  sleep "$([ $sink = graph ] && echo 0.8 || echo 0.15)"; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
  "$MF_BIN" run "$K/job.ini" --no-progress >"$K/rerun.log" 2>&1; rc=$?
  check "$sink: rerun after kill -9 exits 0" test "$rc" -eq 0
  n2=$(stored "$K/job.ini"); lst=$(listing "$sink" "$([ $sink = graph ] && echo two- || echo cont2)")
  check "$sink: after kill -9 every message once ($n2 stored, $(wc -l <<<"$lst") in target)" test "$n2" -eq "$n" -a "$(wc -l <<<"$lst")" -eq "$n"
  check "$sink: no duplicates in the target" test "$(sort <<<"$lst" | uniq -d | wc -l)" -eq "$( [ $sink = graph ] && sort <<<"$(listing graph one-)" | uniq -d | wc -l || echo 0)"
done

# verify against Graph: by Message-ID (Exchange rewrites MIME on import)
G1=$T/graph-1 G2=$T/graph-2
out=$("$MF_BIN" verify "$G1/job.ini" 2>&1); rc=$?
check "graph: verify after the run exits 0 ($rc)" test "$rc" -eq 0
check "graph: verify says every mailbox matches" grep -q "^verify: 2 of 2 mailboxes match$" <<<"$out"
check "graph: verify compares by Message-ID" test "$(grep -c "(by Message-ID: the target rewrites message contents)" <<<"$out")" -eq 2
check "graph: verify compared messages" grep -Eq "source +[1-9][0-9]* +target +[1-9]" <<<"$out"
out=$("$MF_BIN" verify "$G2/job.ini" 2>&1); rc=$?
check "graph: verify after kill -9 and rerun exits 0 ($rc)" test "$rc" -eq 0
[ "$rc" -eq 0 ] || echo "$out"

gone=$(python3 "$MF_SRC/tests/doubles/graph_admin.py" 4570 delete one-a@contoso.example)
check "graph: a message deleted from one-a ($gone)" test -n "$gone"
out=$("$MF_BIN" verify "$G1/job.ini" 2>&1); rc=$?
check "graph: verify exits 1 after the delete ($rc)" test "$rc" -eq 1
check "graph: verify names 1 missing in one folder" test "$(grep -c "missing 1  duplicates 0  MISMATCH" <<<"$out")" -eq 1
check "graph: no other folder is off" test "$(grep -c MISMATCH <<<"$out")" -eq 2 # the folder line + the summary
check "graph: one-c still matches" grep -q "^verify: 1 of 2 mailboxes match" <<<"$out"
[ "$rc" -eq 1 ] || echo "$out"

dup=$(python3 "$MF_SRC/tests/doubles/graph_admin.py" 4570 duplicate two-c@contoso.example)
check "graph: a message imported twice into two-c ($dup)" test -n "$dup"
out=$("$MF_BIN" verify "$G2/job.ini" 2>&1); rc=$?
check "graph: verify exits 1 with a duplicate ($rc)" test "$rc" -eq 1
check "graph: verify names duplicates 1" test "$(grep -c "missing 0  duplicates 1  MISMATCH" <<<"$out")" -eq 1
check "graph: one mailbox off" grep -q "^verify: 1 of 2 mailboxes match" <<<"$out"
[ "$rc" -eq 1 ] || echo "$out"
exit $fail
