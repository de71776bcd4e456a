#!/usr/bin/env bash
# soak.sh - the long version of the fault suite (`ninja soak`): every
# tests/fault/*.sh with MF_SOAK=1, which turns on their extra iterations
# (random signals, a stall longer than the HTTP timeout, longer outages, a
# real 10,000-mailbox run, ...). Takes tens of minutes.
#
#   tools/soak.sh [BUILD_DIR] [TEST_NAME...]
#
# BUILD_DIR defaults to build/ (it must hold the mailferry binary). With
# TEST_NAMEs (e.g. signals network), only those. Exit 0 when every test
# passed or skipped.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bld=$(cd "${1:-$here/build}" && pwd)
shift || true
[ -x "$bld/mailferry" ] || { echo "soak: no mailferry in $bld (run ninja first)" >&2; exit 2; }
export MF_SOAK=1 MF_BIN=$bld/mailferry MF_SRC=$here
export MF_SHARED=${MF_SHARED:-$(cd "$here/.." && pwd)/shared}
# more iterations than `ninja check` (each test reads what it knows)
export MF_SOAK_SIGNALS=${MF_SOAK_SIGNALS:-20}
tests=("$@")
if [ ${#tests[@]} -eq 0 ]; then
  for f in "$here"/tests/fault/*.sh; do tests+=("$(basename "$f" .sh)"); done
fi
pass=0 fail=0 skipped=0
failed_names=()
for name in "${tests[@]}"; do
  script=$here/tests/fault/$name.sh
  [ -f "$script" ] || { echo "soak: no test $name" >&2; fail=$((fail + 1)); continue; }
  log=$bld/soak/$name.log
  mkdir -p "$bld/soak"
  export MF_TMP=$bld/soak/tmp/$name
  start=$SECONDS
  bash "$script" >"$log" 2>&1
  rc=$?
  took=$((SECONDS - start))
  case $rc in
  0) pass=$((pass + 1)); echo "soak: $name passed (${took}s)" ;;
  77) skipped=$((skipped + 1)); echo "soak: $name skipped: $(grep -m1 SKIP "$log")" ;;
  *) fail=$((fail + 1)); failed_names+=("$name"); echo "soak: $name FAILED (exit $rc, ${took}s); see $log"
     grep '^FAIL' "$log" | head -10 ;;
  esac
  grep -E '^(kill points survived|signals sent|network faults|server restarts survived|bad inputs tried|10,000)' "$log" | sed 's/^/  /'
done
echo "soak: $pass passed, $skipped skipped, $fail failed${failed_names:+ (${failed_names[*]})}"
[ "$fail" -eq 0 ]
