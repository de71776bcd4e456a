#!/usr/bin/env bash
# tools/build.sh DIR [CMAKE FLAGS...] - configure (once) and build into DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$1
shift
flags=("$@")
if [ "${CI:-}" = "true" ]; then
  flags+=(-DMF_WERROR=ON)
fi
if [ ! -f "$dir/build.ninja" ]; then
  cmake -S . -B "$dir" -G Ninja "${flags[@]}" >/dev/null
fi
cmake --build "$dir"
