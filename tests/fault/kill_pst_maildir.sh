#!/usr/bin/env bash
# kill -9 at many points of a PST -> Maildir run, then rerun: the Maildirs
# must end up exactly as after an uninterrupted run (every message once, none
# missing, same flags), judged from the files alone.
#
# Kill points: deterministic ones through MF_FAULT_KILL_AT (after a pending
# batch is durable, after the sink stored a message but before its commit,
# after an outcome batch is durable), chains of kills across reruns, and
# kills from outside at random moments.
source "$MF_SRC/tests/lib/common.sh"

PST=$(pst_dir)
mapfile -t psts < <(cd "$PST" && for f in *.pst; do [ "$(stat -c %s "$f")" -gt 1000 ] && echo "$f"; done | sort)
[ ${#psts[@]} -ge 2 ] || skip "need PST files in $PST"

manifest() {
  pst_manifest_header
  local i=0
  for who in ann bob cid dee; do
    for p in "${psts[@]}"; do
      echo "Exchange,,$p,$who@example.com,FALSE,/P$i,,,,"
      i=$((i + 1))
    done
  done
}
setup() { # setup DIR
  pst_job "$1" crash "$PST" "parallel = 2" "batch = 3"
  manifest >"$1/manifest.csv"
}
run() { "$MF_BIN" run "$1/job.ini" --no-progress >>"$1/log" 2>&1; }

R=$T/reference
setup "$R"
run "$R" || { bad "reference run failed"; finish; }
ref=$(maildir_digest "$R/out")
total=$(maildir_digest --count "$R/out")
echo "reference: $total messages"
[ "$total" -gt 10 ] || { bad "reference run moved too little ($total)"; finish; }

kills=0
# run_until_done DIR: rerun until exit 0 (at most 5 times)
run_until_done() {
  for _ in 1 2 3 4 5; do
    if run "$1"; then return 0; fi
  done
  return 1
}
verify() { # verify DIR what
  if ! run_until_done "$1"; then
    bad "$2: the rerun did not finish (see $1/log)"
    return
  fi
  local got
  got=$(maildir_digest "$1/out")
  if [ "$got" = "$ref" ]; then
    ok "$2: exact result after rerun"
  else
    bad "$2: differs from the uninterrupted run"
    diff <(echo "$ref") <(echo "$got") | head -5 || true
  fi
  local doubt
  doubt=$("$MF_BIN" report "$1/job.ini" --format csv | awk -F, 'NR>1 {s+=$10} END {print s+0}')
  check_eq "$2: nothing left in doubt" "$doubt" 0
}

# 1. one deterministic kill, then rerun
for point in pending:1 pending:2 pending:4 store:1 store:2 store:3 store:5 store:8 store:13 \
  store:21 store:$((total - 1)) commit:1 commit:2 commit:3 commit:5; do
  D=$T/kill-${point/:/-}
  setup "$D"
  MF_FAULT_KILL_AT=$point "$MF_BIN" run "$D/job.ini" --no-progress >>"$D/log" 2>&1 && rc=0 || rc=$?
  if [ "$rc" -eq 137 ]; then
    kills=$((kills + 1))
    verify "$D" "killed at $point"
  else
    bad "kill point $point was never reached (exit $rc)"
  fi
done

# 2. a chain: killed again and again during the reruns
D=$T/chain
setup "$D"
for point in store:2 pending:1 store:1 commit:1 store:3 store:4; do
  MF_FAULT_KILL_AT=$point "$MF_BIN" run "$D/job.ini" --no-progress >>"$D/log" 2>&1 && rc=0 || rc=$?
  [ "$rc" -eq 137 ] && kills=$((kills + 1))
done
verify "$D" "killed 6 times in a row"

# 3. kill -9 from outside at random moments (messages slowed down a little
#    so that the moments fall inside the run); ninja soak (MF_SOAK=1) adds
#    every store point and 30 more random kills
random_kills=6
if [ "${MF_SOAK:-0}" = 1 ]; then
  random_kills=36
  for n in $(seq 4 2 "$total"); do
    D=$T/soak-store-$n
    setup "$D"
    MF_FAULT_KILL_AT=store:$n "$MF_BIN" run "$D/job.ini" --no-progress >>"$D/log" 2>&1 && rc=0 || rc=$?
    if [ "$rc" -eq 137 ]; then
      kills=$((kills + 1))
      verify "$D" "killed at store:$n"
    fi
  done
fi
for i in $(seq "$random_kills"); do
  D=$T/random-$i
  setup "$D"
  MF_FAULT_DELAY_MS=3 "$MF_BIN" run "$D/job.ini" --no-progress >>"$D/log" 2>&1 &
  pid=$!
  sleep "0.$((RANDOM % 5 + 1))$((RANDOM % 10))"
  if kill -9 $pid 2>/dev/null; then kills=$((kills + 1)); fi
  wait $pid 2>/dev/null || true
  verify "$D" "kill -9 from outside #$i"
done

echo "kill points survived: $kills"
if [ "${MF_SOAK:-0}" = 1 ]; then
  check "at least 50 kill points (soak)" test "$kills" -ge 50
else
  check "at least 20 kill points" test "$kills" -ge 20
fi
finish
