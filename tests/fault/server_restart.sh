#!/usr/bin/env bash
# The target server restarts in the middle of a run: Azurite (stopped with
# SIGTERM, down for a while, started again on the same data directory) and
# s3rver (the same, and once killed with SIGKILL). The run must finish, or a
# rerun must, with exactly what a clean run stores: every message once,
# judged from the target's listing. (The Graph double keeps its mailboxes in
# memory, so a restart would lose them: not a test of mailferry; skipped.)
# MF_SOAK=1: more restarts, longer outages, and Azurite killed with SIGKILL:
# Azurite keeps blobs in memory and saves them on an interval, so a kill loses
# blobs it had acknowledged while the state says "stored". There, the test
# requires `mailferry verify` to find the loss, `verify --repair` to mark
# exactly what is missing, and the next run to restore the exact target.
source "$MF_SRC/tests/lib/common.sh"

PST=$(pst_dir)
mapfile -t psts < <(cd "$PST" && for f in *.pst; do [ "$(stat -c %s "$f")" -gt 1000 ] && echo "$f"; done | sort)
[ ${#psts[@]} -ge 2 ] || skip "need PST files in $PST"
fault_lock server_restart
export AZURITE_PORT=10140 S3RVER_PORT=10141
export AZ_KEY=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==
export S3_SECRET=S3RVER
NPM=$(cloud_npm_prefix)
cloud_start "$T/srv-azurite" azurite
cloud_start "$T/srv-s3rver" s3rver
curl -s -o /dev/null --aws-sigv4 aws:amz:us-east-1:s3 --user S3RVER:S3RVER \
  -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' -X PUT "http://127.0.0.1:$S3RVER_PORT/rsbucket"

sink_conf() { # sink_conf SINK TARGET
  case $1 in
  azurite) printf 'type = azure-blob\nurl = http://127.0.0.1:%s/devstoreaccount1/%s\naccount = devstoreaccount1\nkey_env = AZ_KEY\n' $AZURITE_PORT "$2" ;;
  s3rver) printf 'type = s3\nurl = http://127.0.0.1:%s/rsbucket/%s\nregion = us-east-1\naccess_key_id = S3RVER\nsecret_access_key_env = S3_SECRET\n' $S3RVER_PORT "$2" ;;
  esac
}
listing() { # listing SINK TARGET: object names, the target prefix removed
  case $1 in
  azurite) python3 "$MF_SRC/tests/doubles/cloud_list.py" azure "http://127.0.0.1:$AZURITE_PORT/devstoreaccount1/$2" devstoreaccount1 "$AZ_KEY" ;;
  s3rver) python3 "$MF_SRC/tests/doubles/cloud_list.py" s3 "http://127.0.0.1:$S3RVER_PORT/rsbucket" | { grep "^$2/" || true; } | sed "s#^$2/##" ;;
  esac | sed -E "s#^$2-##" | sort
}
job() { # job DIR SINK TARGET
  mkdir -p "$1"
  {
    printf '[job]\nname = rs\nstate = state/rs.db\nmanifest = manifest.csv\nparallel = 2\nbatch = 4\n[source]\ntype = pst\nroot = %s\n[sink]\n' "$PST"
    sink_conf "$2" "$3"
  } >"$1/job.ini"
  {
    pst_manifest_header
    local i=0 who p
    for who in ann bob; do
      for p in "${psts[@]}"; do
        echo "Exchange,,$p,$3-$who@example.com,FALSE,/P$i,,,,"
        i=$((i + 1))
      done
    done
  } >"$1/manifest.csv"
}

declare -A ref ref_n
for s in azurite s3rver; do
  D=$T/$s-ref
  job "$D" "$s" ref
  "$MF_BIN" run "$D/job.ini" --no-progress >"$D/log" 2>&1 || bad "$s: the clean run failed"
  ref[$s]=$(listing "$s" ref)
  ref_n[$s]=$(report_sum "$D/job.ini" messages_stored)
  echo "$s reference: ${ref_n[$s]} messages"
  check "$s: the clean run stored messages" test "${ref_n[$s]}" -gt 10
done

restarts=0
# restart SINK NAME HOW DOWN_SECONDS [repair]: a slowed run; once it has
# stored a few messages the server goes away (HOW = TERM or KILL) for
# DOWN_SECONDS, then comes back on the same data directory. With "repair",
# the server may lose acknowledged writes: after the reruns, verify --repair
# and one more run must give the exact target.
restart() {
  local s=$1 name=$2 how=$3 down=$4 mode=${5:-} D=$T/$1-$2 rc runs
  job "$D" "$s" "$name"
  MF_FAULT_DELAY_MS=40 "$MF_BIN" run "$D/job.ini" --no-progress >"$D/log" 2>&1 &
  local pid=$! _
  for _ in $(seq 200); do
    [ "$(grep -c 'event=folder' "$D/log" || true)" -ge 3 ] && break
    sleep 0.05
  done
  local state=$T/srv-$s
  kill -"$how" "$(cat "$state/$s.pid")"
  for _ in $(seq 50); do kill -0 "$(cat "$state/$s.pid")" 2>/dev/null || break; sleep 0.1; done
  restarts=$((restarts + 1))
  kill -0 $pid 2>/dev/null && ok "$s $name: the server went away while the run was going" ||
    bad "$s $name: the run was over before the server went away (test too slow?)"
  sleep "$down"
  bash "$MF_SRC/tools/cloud-servers.sh" start "$NPM" "$state" "$s" >>"$state.start.log" 2>&1 ||
    { bad "$s $name: the server did not come back"; cat "$state.start.log"; }
  wait $pid && rc=0 || rc=$?
  runs=1
  while [ "$rc" -ne 0 ] && [ "$runs" -lt 4 ]; do
    runs=$((runs + 1))
    "$MF_BIN" run "$D/job.ini" --no-progress >>"$D/log" 2>&1 && rc=0 || rc=$?
  done
  check_eq "$s $name: finished (exit 0)" "$rc" 0
  if [ "$runs" -eq 1 ]; then ok "$s $name: the interrupted run itself finished (it waited and retried)"; else
    echo "  NOTE: $s $name: needed $runs runs ($(grep -c 'mailbox-failed' "$D/log" || true) mailbox failures in the first)"
  fi
  local got
  got=$(listing "$s" "$name")
  if [ "$mode" = repair ]; then
    local lost vout vrc rout rrc marked
    lost=$(comm -23 <(echo "${ref[$s]}") <(echo "$got") | grep -c . || true)
    vout=$("$MF_BIN" verify "$D/job.ini" 2>&1) && vrc=0 || vrc=$?
    echo "$vout" | grep 'MISMATCH' | sed "s/^/  $s $name verify | /" || true
    if [ "$lost" -gt 0 ]; then
      echo "  NOTE: $s $name: the server lost $lost acknowledged writes"
      check_eq "$s $name: verify detects the loss (exit 1)" "$vrc" 1
      check_eq "$s $name: verify counts the $lost missing" \
        "$(sed -n 's/.* missing \([0-9]*\) .*/\1/p' <<<"$vout" | awk '{s += $1} END {print s + 0}')" "$lost"
    else
      echo "  NOTE: $s $name: the server lost nothing this time (verify exit $vrc)"
    fi
    rout=$("$MF_BIN" verify "$D/job.ini" --repair 2>&1) && rrc=0 || rrc=$?
    echo "$rout" | grep 'repair' | sed "s/^/  $s $name | /" || true
    marked=$(sed -n 's/^verify --repair: marked \([0-9]*\) message.*/\1/p' <<<"$rout")
    # every stored copy of a lost content is marked; the probe sorts them out
    echo "  NOTE: $s $name: lost $lost, verify --repair marked ${marked:-0}"
    check "$s $name: verify --repair marks the $lost lost messages" test "${marked:-0}" -ge "$lost"
    if [ "$lost" -eq 0 ]; then check_eq "$s $name: and nothing else" "${marked:-0}" 0; fi
    check_eq "$s $name: verify --repair exits $((lost > 0))" "$rrc" $((lost > 0))
    rout=$("$MF_BIN" run "$D/job.ini" --no-progress 2>&1) && rc=0 || rc=$?
    echo "$rout" >>"$D/log"
    check_eq "$s $name: the run after --repair exits 0" "$rc" 0
    if [ "$lost" -gt 0 ]; then
      check "$s $name: that run stored the ${marked:-0} marked (probed first)" grep -q "moved ${marked:-0} messages" <<<"$rout"
    fi
    got=$(listing "$s" "$name")
    vout=$("$MF_BIN" verify "$D/job.ini" 2>&1) && vrc=0 || vrc=$?
    check_eq "$s $name: verify after the repair run exits 0" "$vrc" 0
  fi
  if [ "$got" = "${ref[$s]}" ]; then ok "$s $name: the target holds exactly what a clean run stores"; else
    bad "$s $name: the target differs from a clean run's"
    diff <(echo "${ref[$s]}") <(echo "$got") | head -6 || true
  fi
  check_eq "$s $name: no duplicates" "$(uniq -d <<<"$got" | wc -l)" 0
  check_eq "$s $name: the report counts every message once" "$(report_sum "$D/job.ini" messages_stored)" "${ref_n[$s]}"
  check_eq "$s $name: nothing in doubt" "$(report_sum "$D/job.ini" in_doubt)" 0
  check "$s $name: the log shows the retries" grep -q 'event=http_retry\|event=reconnect' "$D/log"
}

restart azurite term TERM 2
restart s3rver term TERM 2
restart s3rver kill KILL 1
if [ "${MF_SOAK:-0}" = 1 ]; then
  restart azurite long TERM 20
  restart s3rver long KILL 20
  restart azurite kill KILL 3 repair
fi
echo "server restarts survived: $restarts"
finish
