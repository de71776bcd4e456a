#!/usr/bin/env bash
# SIGINT and SIGTERM in the middle of a PST -> Maildir run (README, exit
# codes): the run stops taking new work, finishes and commits the message in
# flight, exits 3, leaves nothing in doubt and an intact state database; the
# rerun finishes with exactly the Maildirs of an uninterrupted run. A second
# signal exits at once (3) and the rerun is still exact.
# MF_SOAK=1: more signals at random moments.
source "$MF_SRC/tests/lib/common.sh"

PST=$(pst_dir)
mapfile -t psts < <(cd "$PST" && for f in *.pst; do [ "$(stat -c %s "$f")" -gt 1000 ] && echo "$f"; done | sort)
[ ${#psts[@]} -ge 2 ] || skip "need PST files in $PST"
command -v sqlite3 >/dev/null || skip "sqlite3 is not installed"

setup() { # setup DIR
  pst_job "$1" sig "$PST" "parallel = 2" "batch = 4"
  {
    pst_manifest_header
    local i=0 who p
    for who in ann bob cid; do
      for p in "${psts[@]}"; do
        echo "Exchange,,$p,$who@example.com,FALSE,/P$i,,,,"
        i=$((i + 1))
      done
    done
  } >"$1/manifest.csv"
}
in_doubt() { report_sum "$1/job.ini" in_doubt; }
started() { # wait until the run in DIR has stored something
  local _
  for _ in $(seq 200); do
    [ -n "$(find "$1/out" -path '*/cur/*' -type f 2>/dev/null | head -1)" ] && return 0
    sleep 0.02
  done
  return 1
}
now_ms() { date +%s%3N; }

R=$T/reference
setup "$R"
"$MF_BIN" run "$R/job.ini" --no-progress >"$R/log" 2>&1 || { bad "reference run failed"; finish; }
ref=$(maildir_digest "$R/out")
total=$(maildir_digest --count "$R/out")
echo "reference: $total messages"
[ "$total" -gt 10 ] || { bad "reference run moved too little ($total)"; finish; }

signals=0
rerun_exact() { # rerun_exact DIR what
  local rc
  "$MF_BIN" run "$1/job.ini" --no-progress >>"$1/log" 2>&1 && rc=0 || rc=$?
  check_eq "$2: the rerun exits 0" "$rc" 0
  local got
  got=$(maildir_digest "$1/out")
  if [ "$got" = "$ref" ]; then ok "$2: the rerun ends exactly as an uninterrupted run"; else
    bad "$2: the rerun's Maildirs differ from an uninterrupted run"
    diff <(echo "$ref") <(echo "$got") | head -5 || true
  fi
  check_eq "$2: nothing in doubt after the rerun" "$(in_doubt "$1")" 0
}

# --- one signal: graceful stop ---------------------------------------------
# Each store is slowed by DELAY ms, so the message in flight takes that long
# to finish; the run must exit about then, not run on to the end.
DELAY=60
one_signal() { # one_signal SIG DIR
  local sig=$1 D=$2 rc
  setup "$D"
  MF_FAULT_DELAY_MS=$DELAY "$MF_BIN" run "$D/job.ini" --no-progress >"$D/log" 2>&1 &
  local pid=$!
  started "$D" || { bad "$sig: the run never started storing"; kill -9 $pid; wait $pid || true; return; }
  sleep "0.$((RANDOM % 4 + 1))"
  local t0
  t0=$(now_ms)
  kill -"$sig" $pid
  signals=$((signals + 1))
  wait $pid && rc=0 || rc=$?
  local took=$(($(now_ms) - t0))
  check_eq "$sig: exit code 3" "$rc" 3
  echo "  $sig: exited ${took} ms after the signal"
  check "$sig: it stopped soon (${took} ms; the message in flight takes ${DELAY} ms)" test "$took" -lt 3000
  check "$sig: the log says why it stopped" grep -q "event=signal signal=SIG$sig" "$D/log"
  check "$sig: the summary says how to resume" grep -q "run the same command again to resume" "$D/log"
  local part
  part=$(maildir_digest --count "$D/out")
  check "$sig: it stopped part way ($part of $total)" test "$part" -lt "$total"
  # what is on disk is committed: every message in the Maildirs is counted
  # as stored, and nothing is left in doubt (the message in flight finished)
  check_eq "$sig: the report counts every message on disk as stored" \
    "$(report_sum "$D/job.ini" messages_stored)" "$part"
  check_eq "$sig: nothing is in doubt after a graceful stop" "$(in_doubt "$D")" 0
  check_eq "$sig: the state database is intact" "$(sqlite3 "$D/state/sig.db" 'PRAGMA integrity_check')" ok
  check_eq "$sig: no half-written file left in tmp/" "$(find "$D/out" -type f | grep -c '/tmp/[^/]*$' || true)" 0
  rerun_exact "$D" "$sig"
}
one_signal INT "$T/sigint"
one_signal TERM "$T/sigterm"

# --- a second signal: out at once, still resumable ---------------------------
# Slow stores (1.5 s each) so that finishing the message in flight would
# take long; the second signal must not wait for it.
D=$T/twice
setup "$D"
MF_FAULT_DELAY_MS=1500 "$MF_BIN" run "$D/job.ini" --no-progress >"$D/log" 2>&1 &
pid=$!
started "$D" || bad "second signal: the run never started storing"
sleep 0.3
kill -TERM $pid
sleep 0.2
t0=$(now_ms)
kill -INT $pid
signals=$((signals + 2))
wait $pid && rc=0 || rc=$?
took=$(($(now_ms) - t0))
check_eq "second signal: exit code 3" "$rc" 3
check "second signal: out at once (${took} ms, a store takes 1500 ms)" test "$took" -lt 1000
check "second signal: it says so" grep -q "second signal, exiting at once" "$D/log"
check_eq "second signal: the state database is intact" "$(sqlite3 "$D/state/sig.db" 'PRAGMA integrity_check')" ok
rerun_exact "$D" "second signal"

# --- soak: signals at random moments, chains of interrupted reruns ----------
if [ "${MF_SOAK:-0}" = 1 ]; then
  for i in $(seq "${MF_SOAK_SIGNALS:-10}"); do
    D=$T/soak-$i
    setup "$D"
    for round in 1 2 3; do
      MF_FAULT_DELAY_MS=20 "$MF_BIN" run "$D/job.ini" --no-progress >>"$D/log" 2>&1 &
      pid=$!
      sleep "0.$((RANDOM % 9 + 1))"
      sig=$([ $((RANDOM % 2)) = 0 ] && echo INT || echo TERM)
      kill -"$sig" $pid 2>/dev/null && signals=$((signals + 1))
      [ $((RANDOM % 3)) = 0 ] && kill -"$sig" $pid 2>/dev/null && signals=$((signals + 1))
      wait $pid || true
    done
    rerun_exact "$D" "soak #$i"
  done
fi

echo "signals sent: $signals"
finish
