#!/usr/bin/env bash
# tests/bench/big_message.sh - one big message (default 1024 MB) from a
# Dovecot of our own into a Maildir and into a second Dovecot over IMAP,
# with mailferry's wall time, peak anonymous memory (heap) and peak RSS
# (which also counts the spill files' mapped page cache). A benchmark: it
# runs tests/integration/imap_big_message.sh at that size and prints its
# figures; the anonymous-memory bound of that test still applies.
#
#   tests/bench/big_message.sh [MB=1024]
#
# Results go to build/bench/results.txt (appended) and stdout.
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${BENCH_DIR:-$PWD/build/bench}
mkdir -p "$B"
export MF_SRC=$PWD MF_BIN=${MF_BIN:-$PWD/build/mailferry} MF_TMP=$B/big
export MF_BIG_MB=${1:-1024} MF_BIG_ANON_MB=${MF_BIG_ANON_MB:-160}
out=$(bash tests/integration/imap_big_message.sh 2>&1) || { echo "$out"; exit 1; }
{
  echo "== big message, $(date -u +%FT%TZ), $(nproc) cores: one ${MF_BIG_MB} MB message =="
  grep -E '^source:|ms, peak' <<<"$out"
} | tee -a "$B/results.txt"
