#!/usr/bin/env bash
# tools/fuzz.sh - build the libFuzzer targets (clang, -DMF_FUZZ=ON) in
# build-fuzz and run each for a while (`ninja fuzz` calls this).
#   MF_FUZZ_SECONDS  seconds per target (default 60)
#   MF_FUZZ_BUILD    build directory (default <repo>/build-fuzz)
#   --build-only     configure and build, do not run (used by run_corpus.sh)
# New corpus entries go to build-fuzz/fuzz-corpus/<target>/, crashes to
# build-fuzz/fuzz-artifacts/. Exit 77 when clang or libFuzzer is missing.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${MF_FUZZ_BUILD:-$SRC/build-fuzz}
SECS=${MF_FUZZ_SECONDS:-60}
CC_FUZZ=${CC_FUZZ:-clang}

if ! command -v "$CC_FUZZ" >/dev/null 2>&1; then
	echo "fuzz: $CC_FUZZ not found (apt-get install clang libclang-rt-14-dev)" >&2
	exit 77
fi
if ! echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n){return 0;}' |
	"$CC_FUZZ" -x c -fsanitize=fuzzer - -o /dev/null 2>/dev/null; then
	echo "fuzz: $CC_FUZZ cannot link -fsanitize=fuzzer (apt-get install libclang-rt-14-dev)" >&2
	exit 77
fi

SAN="-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer"
cmake -S "$SRC" -B "$BUILD" -G Ninja -DCMAKE_C_COMPILER="$CC_FUZZ" -DMF_FUZZ=ON \
	-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS="$SAN" \
	-DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
cmake --build "$BUILD" --target fuzz_targets

[ "${1:-}" = "--build-only" ] && exit 0

mkdir -p "$BUILD/fuzz-artifacts"
status=0
for exe in "$BUILD"/tests/fuzz/fuzz_*; do
	[ -x "$exe" ] || continue
	name=$(basename "$exe")
	work="$BUILD/fuzz-corpus/$name"
	mkdir -p "$work"
	seeds="$SRC/tests/fuzz/corpus/$name"
	echo "== $name: ${SECS}s"
	if ! "$exe" -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=20 \
		-artifact_prefix="$BUILD/fuzz-artifacts/$name-" -print_final_stats=1 \
		"$work" ${seeds:+"$seeds"} 2>"$BUILD/fuzz-$name.log"; then
		echo "!! $name found a problem: see $BUILD/fuzz-$name.log and $BUILD/fuzz-artifacts/" >&2
		status=1
	fi
	grep -E '^stat::number_of_executed_units|^stat::new_units_added' "$BUILD/fuzz-$name.log" || true
done
exit $status
