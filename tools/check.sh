#!/usr/bin/env bash
# tools/check.sh - `ninja check`: every test on the normal build, then the unit
# and integration tests again on the ASan+UBSan build, then each fuzz target
# over its corpus once (when clang is there).
set -uo pipefail
cd "$(dirname "$0")/.."
status=0

echo "== tests (build/)"
(cd build && ctest --output-on-failure --timeout 900) || status=1

echo "== unit and integration tests under ASan+UBSan (build-asan/)"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
(cd build-asan && ctest --output-on-failure --timeout 900 -L 'unit|integration') || status=1

if [ -x tests/fuzz/run_corpus.sh ]; then
  echo "== fuzz targets over their corpora"
  tests/fuzz/run_corpus.sh
  rc=$?
  if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then status=1; fi
fi
exit $status
