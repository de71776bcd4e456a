#!/usr/bin/env bash
# Network faults between mailferry and each HTTP target: a TCP fault proxy
# (tests/lib/faultproxy.py) in front of Azurite, s3rver and the Graph double
# cuts requests mid-headers and mid-body, cuts answers (also right after the
# server did the work: the ambiguous case), stalls, delays and refuses
# connections, connection after connection. PST -> sink runs through it must
# end with exactly what a clean run stores: every message once, judged from
# the target's own listing; the log must show the retries. First a single
# run is tried (the HTTP core retries by itself); reruns (at most 4) only if
# it does not finish.
# MF_SOAK=1 adds: a stall longer than the HTTP timeout (300 s) and longer,
# denser fault schedules. NET_ONLY=REGEX runs only the variants whose
# "sink-name" matches (to repeat one while debugging).
source "$MF_SRC/tests/lib/common.sh"

PST=$(pst_dir)
mapfile -t psts < <(cd "$PST" && for f in *.pst; do [ "$(stat -c %s "$f")" -gt 1000 ] && echo "$f"; done | sort)
[ ${#psts[@]} -ge 2 ] || skip "need PST files in $PST"
fault_lock network
export AZURITE_PORT=10110 S3RVER_PORT=10111 GRAPH_PORT=10112
PX_AZ=10120 PX_S3=10121 PX_GRAPH=10122
SRV=$T/srv
# (the Graph double writes its own port into @odata.nextLink, which the sink
# rightly refuses behind the proxy: pages large enough to need none)
GRAPH_ARGS="--page 1000" cloud_start "$SRV" azurite s3rver graph
export AZ_KEY=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==
export S3_SECRET=S3RVER GRAPH_SECRET='s3cr3t-Value~1'
curl -s -o /dev/null --aws-sigv4 aws:amz:us-east-1:s3 --user S3RVER:S3RVER \
  -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' -X PUT "http://127.0.0.1:$S3RVER_PORT/net"

sink_conf() { # sink_conf SINK PORT TARGET
  case $1 in
  azure-blob) printf 'type = azure-blob\nurl = http://127.0.0.1:%s/devstoreaccount1/%s\naccount = devstoreaccount1\nkey_env = AZ_KEY\n' "$2" "$3" ;;
  s3) printf 'type = s3\nurl = http://127.0.0.1:%s/net/%s\nregion = us-east-1\naccess_key_id = S3RVER\nsecret_access_key_env = S3_SECRET\n' "$2" "$3" ;;
  graph) printf 'type = graph\ngraph_url = http://127.0.0.1:%s\nlogin_url = http://127.0.0.1:%s\ntenant = contoso.onmicrosoft.com\nclient_id = client-1\nclient_secret_env = GRAPH_SECRET\n' "$2" "$2" ;;
  esac
}
# The target's contents, one line per stored object, independent of mailferry's
# state: blob/object names (deterministic: mailbox/folder/sha256[-N].eml),
# or for Graph "mailbox<TAB>internetMessageId<TAB>content hash" (folder ids
# are random; the hash catches a message stored cut short), with
# the run's mailbox prefix TARGET removed so that runs compare.
listing() { # listing SINK TARGET
  case $1 in
  azure-blob) python3 "$MF_SRC/tests/doubles/cloud_list.py" azure "http://127.0.0.1:$AZURITE_PORT/devstoreaccount1/$2" devstoreaccount1 "$AZ_KEY" | sed "s#^$2-##" ;;
  s3) python3 "$MF_SRC/tests/doubles/cloud_list.py" s3 "http://127.0.0.1:$S3RVER_PORT/net" | { grep "^$2/" || true; } | sed "s#^$2/$2-##" ;;
  graph) python3 "$MF_SRC/tests/doubles/cloud_list.py" graph "$GRAPH_PORT" | { grep "^$2-" || true; } | cut -f1,3,4 | sed "s#^$2-##" ;;
  esac | sort
}
job() { # job DIR SINK PORT TARGET
  mkdir -p "$1"
  {
    printf '[job]\nname = net\nstate = state/net.db\nmanifest = manifest.csv\nparallel = 2\n[source]\ntype = pst\nroot = %s\n[sink]\n' "$PST"
    sink_conf "$2" "$3" "$4"
  } >"$1/job.ini"
  {
    pst_manifest_header
    local i=0 who p
    for who in ann bob; do
      for p in "${psts[@]}"; do
        echo "Exchange,,$p,$4-$who@example.com,FALSE,/P$i,,,,"
        i=$((i + 1))
      done
    done
  } >"$1/manifest.csv"
}
server_port() { case $1 in azure-blob) echo $AZURITE_PORT ;; s3) echo $S3RVER_PORT ;; graph) echo $GRAPH_PORT ;; esac; }
proxy_port() { case $1 in azure-blob) echo $PX_AZ ;; s3) echo $PX_S3 ;; graph) echo $PX_GRAPH ;; esac; }

total_dropped=0 total_stalled=0 total_refused=0 total_conns=0 total_retries=0
# faulty SINK NAME SCHEDULE [--loop]: a run through the proxy with SCHEDULE
faulty() {
  local sink=$1 name=$2 sched=$3
  shift 3
  [[ -z ${NET_ONLY:-} || $sink-$name =~ $NET_ONLY ]] || return 0
  local tgt=$name D=$T/$sink-$name rc runs=0
  job "$D" "$sink" "$(proxy_port "$sink")" "$tgt"
  faultproxy_start "$sink-$name" "$(proxy_port "$sink")" "$(server_port "$sink")" "$sched" "$@" ||
    { bad "$sink $name: the proxy did not start"; return; }
  local t0=$SECONDS
  for runs in 1 2 3 4 5; do
    timeout 900 "$MF_BIN" run "$D/job.ini" --no-progress >>"$D/log" 2>&1 && rc=0 || rc=$?
    [ "$rc" -eq 0 ] && break
    [ "$rc" -eq 124 ] && { bad "$sink $name: a run hung for 900 s"; break; }
  done
  faultproxy_stop "$sink-$name"
  sleep 0.2
  local took=$((SECONDS - t0))
  check_eq "$sink $name: finished (exit 0)" "$rc" 0
  echo "  $sink $name: $runs run(s), ${took}s"
  [ "$runs" -eq 1 ] && ok "$sink $name: one run was enough (the HTTP core retried by itself)" ||
    echo "  NOTE: $sink $name needed $runs runs"
  local got
  got=$(listing "$sink" "$tgt")
  if [ "$got" = "${ref[$sink]}" ]; then
    ok "$sink $name: the target holds exactly what a clean run stores ($(wc -l <<<"$got") objects)"
  else
    bad "$sink $name: the target differs from a clean run's"
    diff <(echo "${ref[$sink]}") <(echo "$got") | head -6 || true
  fi
  check_eq "$sink $name: no duplicates in the target" "$(uniq -d <<<"$got" | wc -l)" 0
  check_eq "$sink $name: the report counts every message once" \
    "$(report_sum "$D/job.ini" messages_stored)" "${ref_n[$sink]}"
  check_eq "$sink $name: nothing in doubt" "$(report_sum "$D/job.ini" in_doubt)" 0
  local p="$sink-$name" dropped stalled refused conns retries
  dropped=$(($(faultproxy_stat "$p" dropped_up) + $(faultproxy_stat "$p" dropped_down)))
  stalled=$(faultproxy_stat "$p" stalled)
  refused=$(faultproxy_stat "$p" refused)
  conns=$(faultproxy_stat "$p" connections)
  retries=$(grep -c 'event=http_retry\|event=reconnect\|event=throttled' "$D/log" || true)
  echo "  $sink $name: proxy: $conns connections, $dropped cut, $stalled stalled, $refused refused; log: $retries retries"
  check "$sink $name: the proxy did inject faults ($((dropped + stalled + refused)))" test $((dropped + stalled + refused)) -gt 0
  check "$sink $name: the log shows the retries ($retries)" test "$retries" -gt 0
  total_dropped=$((total_dropped + dropped)) total_stalled=$((total_stalled + stalled))
  total_refused=$((total_refused + refused)) total_conns=$((total_conns + conns))
  total_retries=$((total_retries + retries))
}

# --- reference: clean runs straight to the servers -------------------------------
declare -A ref ref_n
for sink in azure-blob s3 graph; do
  D=$T/$sink-ref
  job "$D" "$sink" "$(server_port "$sink")" ref
  "$MF_BIN" run "$D/job.ini" --no-progress >"$D/log" 2>&1 || { bad "$sink: the clean run failed"; cat "$D/log" | tail -5; }
  ref[$sink]=$(listing "$sink" ref)
  ref_n[$sink]=$(report_sum "$D/job.ini" messages_stored)
  echo "$sink reference: ${ref_n[$sink]} messages, $(wc -l <<<"${ref[$sink]}") objects"
  check "$sink: the clean run stored messages" test "${ref_n[$sink]}" -gt 10
done

# --- faults --------------------------------------------------------------------------
# Cuts early in a request (headers), mid-body, answers cut to nothing after the
# server did the work, answers cut mid-headers, a stall (shorter than the
# timeout) that ends in a cut, a refused connection, slow-but-working
# connections; after these ten connections, the rest pass.
MIX="drop-up:300,drop-down:0,pass@40000,drop-down:120,stall:2000,refuse,drop-up:9000,delay:30@60000,drop-down:0,drop-up:20000"
for sink in azure-blob s3 graph; do
  faulty "$sink" mix "$MIX"
done
# the ambiguous case again and again: answers lost after the server stored;
# only a probe (or the HTTP core's resolve hook) avoids duplicates here
AMB="drop-down:0,pass@20000,drop-down:0,pass@20000,drop-down:0,pass@20000,drop-down:0"
faulty azure-blob ambiguous "$AMB"
faulty graph ambiguous "$AMB"

if [ "${MF_SOAK:-0}" = 1 ]; then
  # the mix over and over, for the whole run
  for sink in azure-blob s3 graph; do
    faulty "$sink" loop "$MIX,pass@150000" --loop
  done
  # a stall longer than the HTTP timeout (300 s): the client must give up on
  # its own and retry, not hang
  faulty azure-blob stall-past-timeout "stall:330000"
fi

echo "network faults: $total_conns connections, $total_dropped cut, $total_stalled stalled, $total_refused refused; $total_retries retries logged"
finish
