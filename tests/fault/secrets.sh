#!/usr/bin/env bash
# Secrets never leak (issue 6, Security): jobs with distinctive secrets run
# against each HTTP sink (Azure Blob on Azurite with its own account key via
# key_env, a SAS via sas_env, S3 on the SigV4-verifying endpoint with
# secret_access_key_env, Graph on the double with client_secret_file), with
# debug logging, succeeding and failing (wrong key, wrong SAS, wrong secret),
# through plan, run, run --dry-run, status, report and verify. Then
# EVERYTHING they wrote is searched for every secret (and for the access
# tokens the Graph double issued): logs, stdout, reports, the state databases
# (sqlite3 .dump and raw bytes, WAL included), and what landed in the
# targets. /proc/PID/cmdline of a running mailferry must hold none either.
# A world-readable job file holding a secret inline must get a warning, one
# holding it via *_env or *_file none.
source "$MF_SRC/tests/lib/common.sh"

PST=$(pst_dir)
for f in aspnet_Outlook_1.pst rubymsg_attachAndInline.pst; do
  [ -e "$PST/$f" ] || skip "need $PST/$f"
done
command -v sqlite3 >/dev/null || skip "sqlite3 is not installed"
fault_lock secrets
export AZURITE_PORT=10150 SIGV4_PORT=10151 GRAPH_PORT=10152

# --- distinctive secrets -----------------------------------------------------
AZ_RAW="mfsecret-AZKEY-$RANDOM$RANDOM-0123456789abcdefghijklmnop"
AZ_KEY=$(printf '%s' "$AZ_RAW" | base64 -w0)
AZ_WRONG_RAW="mfsecret-AZWRONG-$RANDOM$RANDOM-qrstuvwxyz0123456789"
AZ_WRONG=$(printf '%s' "$AZ_WRONG_RAW" | base64 -w0)
AZ_SAS="sv=2021-08-06&ss=b&srt=sco&sp=rwdlac&se=2099-01-01T00:00:00Z&sig=mfsecretSAS$RANDOM$RANDOM%2Fxyz%3D"
S3_SECRET='wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' # the SigV4 verifier knows AKIDEXAMPLE's
S3_WRONG="mfsecret-S3WRONG-$RANDOM$RANDOM/abcdefghijklmn"
GRAPH_SECRET="mfsecret-GRAPH-$RANDOM$RANDOM~Value.1"
GRAPH_WRONG="mfsecret-GRAPHWRONG-$RANDOM$RANDOM~x"
export AZ_KEY AZ_WRONG AZ_SAS S3_SECRET S3_WRONG
secrets=("$AZ_KEY" "$AZ_RAW" "$AZ_WRONG" "$AZ_WRONG_RAW" "mfsecretSAS" "$S3_SECRET" "$S3_WRONG"
  "$GRAPH_SECRET" "$GRAPH_WRONG")

SRV=$T/srv
AZURITE_ACCOUNTS="mfacct:$AZ_KEY" GRAPH_ARGS="--client-secret $GRAPH_SECRET" \
  cloud_start "$SRV" azurite sigv4 graph

SEC=$T/secret-files # secret files and job files: hold secrets by design
mkdir -p "$SEC"
printf '%s\n' "$GRAPH_SECRET" >"$SEC/graph.secret"
printf '%s\n' "$GRAPH_WRONG" >"$SEC/graph-wrong.secret"
chmod 600 "$SEC"/*.secret

sink_conf() { # sink_conf KIND: the [sink] lines
  case $1 in
  azure) printf 'type = azure-blob\nurl = http://127.0.0.1:%s/mfacct/sec\naccount = mfacct\nkey_env = AZ_KEY\n' $AZURITE_PORT ;;
  azure-wrong) printf 'type = azure-blob\nurl = http://127.0.0.1:%s/mfacct/sec2\naccount = mfacct\nkey_env = AZ_WRONG\n' $AZURITE_PORT ;;
  azure-sas) printf 'type = azure-blob\nurl = http://127.0.0.1:%s/mfacct/sec3\naccount = mfacct\nsas_env = AZ_SAS\n' $AZURITE_PORT ;;
  s3) printf 'type = s3\nurl = http://127.0.0.1:%s/bucket/sec\nregion = us-east-1\naccess_key_id = AKIDEXAMPLE\nsecret_access_key_env = S3_SECRET\n' $SIGV4_PORT ;;
  s3-wrong) printf 'type = s3\nurl = http://127.0.0.1:%s/bucket/sec\nregion = us-east-1\naccess_key_id = AKIDEXAMPLE\nsecret_access_key_env = S3_WRONG\n' $SIGV4_PORT ;;
  graph) printf 'type = graph\ngraph_url = http://127.0.0.1:%s\nlogin_url = http://127.0.0.1:%s\ntenant = contoso.onmicrosoft.com\nclient_id = client-1\nclient_secret_file = %s\n' $GRAPH_PORT $GRAPH_PORT "$SEC/graph.secret" ;;
  graph-wrong) printf 'type = graph\ngraph_url = http://127.0.0.1:%s\nlogin_url = http://127.0.0.1:%s\ntenant = contoso.onmicrosoft.com\nclient_id = client-1\nclient_secret_file = %s\n' $GRAPH_PORT $GRAPH_PORT "$SEC/graph-wrong.secret" ;;
  esac
}
job() { # job KIND: $T/KIND with job.ini (in $SEC) and manifest
  local D=$T/$1
  mkdir -p "$D"
  {
    printf '[job]\nname = sec-%s\nstate = %s/state/sec.db\nmanifest = %s/manifest.csv\nparallel = 2\n' "$1" "$D" "$D"
    printf '[source]\ntype = pst\nroot = %s\n[sink]\n' "$PST"
    sink_conf "$1"
  } >"$SEC/$1.ini"
  {
    pst_manifest_header
    echo "Exchange,,aspnet_Outlook_1.pst,ann-$1@contoso.example,FALSE,/,,,,"
    echo "Exchange,,rubymsg_attachAndInline.pst,bob-$1@contoso.example,FALSE,/Old,,,,"
  } >"$D/manifest.csv"
}
# every command, with debug logging; output into $T/KIND/*.out
exercise() { # exercise KIND EXPECT_RUN_RC
  local k=$1 D=$T/$1 rc
  job "$k"
  "$MF_BIN" -v plan "$SEC/$k.ini" >"$D/plan.out" 2>&1 && rc=0 || rc=$?
  check "$k: plan finishes (exit $rc, not a crash)" test "$rc" -le 2
  "$MF_BIN" -v run "$SEC/$k.ini" --dry-run --no-progress >"$D/dry.out" 2>&1 || true
  "$MF_BIN" -v run "$SEC/$k.ini" --no-progress >"$D/run.out" 2>&1 && rc=0 || rc=$?
  check_eq "$k: run exits $2" "$rc" "$2"
  "$MF_BIN" -v run "$SEC/$k.ini" --no-progress >"$D/rerun.out" 2>&1 || true
  "$MF_BIN" -v status "$SEC/$k.ini" >"$D/status.out" 2>&1 || true
  "$MF_BIN" -v report "$SEC/$k.ini" --format csv >"$D/report.csv" 2>&1 || true
  "$MF_BIN" -v report "$SEC/$k.ini" --format json >"$D/report.json" 2>&1 || true
  "$MF_BIN" -v verify "$SEC/$k.ini" >"$D/verify.out" 2>&1 && rc=0 || rc=$?
  check "$k: verify finishes (exit $rc, not a crash)" test "$rc" -le 2
  sqlite3 "$D/state/sec.db" .dump >"$D/state.dump" 2>&1 || true
}

exercise azure 0
check "azure: the run stored messages" grep -q "moved [1-9]" "$T/azure/run.out"
exercise s3 0
check "s3: the run stored messages" grep -q "moved [1-9]" "$T/s3/run.out"
exercise graph 0
check "graph: the run stored messages" grep -q "moved [1-9]" "$T/graph/run.out"
exercise azure-wrong 1
check "azure, wrong key: the failure is an authentication error" grep -Eiq 'class=auth|403|authori[sz]' "$T/azure-wrong/run.out"
exercise azure-sas 1
check "azure, bad SAS: the failure is an authentication error" grep -Eiq 'class=auth|403|authori[sz]' "$T/azure-sas/run.out"
exercise s3-wrong 1
check "s3, wrong secret: the failure is an authentication error" grep -Eiq 'class=auth|403|signature' "$T/s3-wrong/run.out"
exercise graph-wrong 1
check "graph, wrong secret: the failure is an authentication error" grep -Eiq 'class=auth|401|invalid_client' "$T/graph-wrong/run.out"

# --- argv of a running mailferry -----------------------------------------------
# (slowed down so that it is still running when looked at)
job azure
rm -rf "$T/azure-argv"
sed "s#$T/azure/#$T/azure-argv/#g" "$SEC/azure.ini" >"$SEC/azure-argv.ini"
mkdir -p "$T/azure-argv" && cp "$T/azure/manifest.csv" "$T/azure-argv/"
MF_FAULT_DELAY_MS=300 "$MF_BIN" -v run "$SEC/azure-argv.ini" --no-progress >"$T/azure-argv/run.out" 2>&1 &
pid=$!
seen=""
for _ in $(seq 100); do
  [ -r /proc/$pid/cmdline ] && grep -q event=folder "$T/azure-argv/run.out" 2>/dev/null && { seen=$(tr '\0' ' ' </proc/$pid/cmdline); break; }
  sleep 0.05
done
kill -9 $pid 2>/dev/null || true
wait $pid 2>/dev/null || true
check "argv: read /proc/$pid/cmdline of a running mailferry ('$seen')" test -n "$seen"
for s in "${secrets[@]}"; do
  case "$seen" in *"$s"*) bad "argv holds a secret (${s:0:12}...)" ;; esac
done

# --- the Graph double's access tokens are secrets too -------------------------------
# (it issues "tok<N>.<16 hex digits>"; searched for by pattern below)
issued=$(curl -s "http://127.0.0.1:$GRAPH_PORT/_state" | python3 -c 'import json,sys; print(json.load(sys.stdin)["issued"])')
check "the Graph double issued access tokens ($issued)" test "$issued" -gt 0

# --- what landed in the targets ---------------------------------------------------
mkdir -p "$T/targets"
cp -r "$SRV/azurite.data" "$T/targets/" 2>/dev/null || true
curl -s "http://127.0.0.1:$GRAPH_PORT/_state" |
  python3 -c 'import json,sys; json.dump(json.load(sys.stdin)["mailboxes"], sys.stdout)' >"$T/targets/graph-mailboxes.json"
check "the Azure target holds blobs to search" test "$(find "$T/targets/azurite.data" -type f | wc -l)" -gt 0

# --- the warning for a world-readable job file with an inline secret ------------
W=$T/warn
mkdir -p "$W"
job azure
warn_case() { # warn_case NAME MODE EXPECT(yes|no) SINK-LINES...
  local name=$1 mode=$2 expect=$3
  shift 3
  {
    printf '[job]\nname = warn\nstate = %s/state-%s/w.db\nmanifest = %s\n' "$W" "$name" "$T/azure/manifest.csv"
    printf '[source]\ntype = pst\nroot = %s\n[sink]\n' "$PST"
    printf '%s\n' "$@"
  } >"$SEC/warn-$name.ini"
  chmod "$mode" "$SEC/warn-$name.ini"
  "$MF_BIN" run "$SEC/warn-$name.ini" --dry-run --no-progress >"$W/$name.out" 2>&1 || true
  if grep -q "readable by others" "$W/$name.out"; then got=yes; else got=no; fi
  check_eq "job file $name, mode $mode: warning $expect" "$got" "$expect"
}
azl=("type = azure-blob" "url = http://127.0.0.1:$AZURITE_PORT/mfacct/w" "account = mfacct")
s3l=("type = s3" "url = http://127.0.0.1:$SIGV4_PORT/bucket/w" "region = us-east-1" "access_key_id = AKIDEXAMPLE")
grl=("type = graph" "graph_url = http://127.0.0.1:$GRAPH_PORT" "login_url = http://127.0.0.1:$GRAPH_PORT"
  "tenant = contoso.onmicrosoft.com" "client_id = client-1")
warn_case azure-key 644 yes "${azl[@]}" "key = $AZ_KEY"
warn_case azure-key-private 600 no "${azl[@]}" "key = $AZ_KEY"
warn_case azure-sas 644 yes "${azl[@]}" "sas = $AZ_SAS"
warn_case azure-key-env 644 no "${azl[@]}" "key_env = AZ_KEY"
warn_case s3-secret 644 yes "${s3l[@]}" "secret_access_key = $S3_SECRET"
warn_case s3-secret-env 644 no "${s3l[@]}" "secret_access_key_env = S3_SECRET"
warn_case graph-secret 640 yes "${grl[@]}" "client_secret = $GRAPH_SECRET"
warn_case graph-secret-file 644 no "${grl[@]}" "client_secret_file = $SEC/graph.secret"

# --- search everything written (job files and secret files excepted) -----------
# also the SQLite WAL/SHM files and the servers' copies of the targets
mapfile -t files < <(find "$T" -path "$SEC" -prune -o -path "$SRV" -prune -o -type f -print)
echo "searching ${#files[@]} files for ${#secrets[@]} secrets"
check "there is a lot to search (${#files[@]} files)" test "${#files[@]}" -gt 50
hits=0
for s in "${secrets[@]}"; do
  [ -n "$s" ] || continue
  if h=$(grep -rlaF -- "$s" "${files[@]}" 2>/dev/null); then
    hits=$((hits + 1))
    bad "secret ${s:0:14}... found in: $(echo "$h" | head -5 | tr '\n' ' ')"
  fi
done
if h=$(grep -rlaE -- 'tok[0-9]+\.[0-9a-f]{16}' "${files[@]}" 2>/dev/null); then
  hits=$((hits + 1))
  bad "a Graph access token found in: $(echo "$h" | head -5 | tr '\n' ' ')"
fi
check_eq "no secret in anything mailferry wrote" "$hits" 0
finish
