#!/usr/bin/env bash
# tests/fuzz/run_corpus.sh - run every libFuzzer target once over its
# committed seed corpus (tests/fuzz/corpus/<target>/) under ASan+UBSan, and,
# when ../shared/testdata is present, over the matching real files there
# (eml -> fuzz_normalize, tnef -> fuzz_tnef, pst -> fuzz_pst_mime).
# Builds build-fuzz through tools/fuzz.sh --build-only. Exit 77 without clang.
set -uo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${MF_FUZZ_BUILD:-$SRC/build-fuzz}
SHARED=${MF_SHARED:-$SRC/../shared}

"$SRC/tools/fuzz.sh" --build-only
rc=$?
if [ $rc -eq 77 ]; then
	echo "run_corpus: skipped (no clang with libFuzzer)"
	exit 77
fi
[ $rc -eq 0 ] || { echo "run_corpus: build failed" >&2; exit 1; }

status=0
run() { # target, files...
	local exe="$BUILD/tests/fuzz/$1"
	shift
	[ -x "$exe" ] || { echo "run_corpus: $(basename "$exe") not built, skipped"; return; }
	[ $# -gt 0 ] || return
	if "$exe" -runs=1 -rss_limit_mb=2048 -timeout=60 "$@" >"$BUILD/run_corpus-$(basename "$exe").log" 2>&1; then
		echo "ok   $(basename "$exe"): $# inputs"
	else
		echo "FAIL $(basename "$exe"): see $BUILD/run_corpus-$(basename "$exe").log" >&2
		status=1
	fi
}
for dir in "$SRC"/tests/fuzz/corpus/*/; do
	name=$(basename "$dir")
	mapfile -t files < <(find "$dir" -type f | sort)
	run "$name" "${files[@]}"
done
# normalize runs the whole eml/tnef-wrapped corpora through its selector 0
if [ -d "$SHARED/testdata" ]; then
	mapfile -t files < <(find "$SHARED/testdata/tnef" -type f ! -name '*.list' | sort)
	run fuzz_tnef "${files[@]}"
	mapfile -t files < <(find "$SHARED/testdata/eml" "$SHARED/testdata/tnef" -name '*.eml' -type f | sort)
	run fuzz_normalize "${files[@]}"
	mapfile -t files < <(find "$SHARED/testdata/pst" -type f | sort)
	run fuzz_pst_mime "${files[@]}"
else
	echo "run_corpus: $SHARED/testdata absent, only the committed corpora were run"
fi
exit $status
