#!/usr/bin/env bash
# The run log (issue 10): `--log FILE` appends every log line to FILE (run
# after run, mode 0600); with the terminal progress display, info lines stay
# visible above it (played through a small terminal emulator: what is left
# on screen holds every line the log file got, in order), and the display's
# per-mailbox lines show rate and ETA. A --log file that cannot be opened
# is refused with exit 2 before anything runs.
source "$MF_SRC/tests/lib/common.sh"

PST=$(pst_dir)
J=$T/job
pst_job "$J" logs "$PST" "parallel = 2" "batch = 2"
{
  pst_manifest_header
  echo "Exchange,,aspnet_Outlook_1.pst,ann@example.com,FALSE,/,,,,"
  echo "Exchange,,docfetcher_test.pst,bob@example.com,FALSE,/,,,,"
} >"$J/manifest.csv"

# slow stores: the run lasts a few seconds, so the display is drawn often
MF_FAULT_DELAY_MS=250 "$MF_BIN" run "$J/job.ini" --progress --log "$T/run.log" \
  >"$T/out1" 2>"$T/err1" && rc=0 || rc=$?
check_eq "the run exits 0" "$rc" 0
check "the log file exists with mode 0600" test "$(stat -c %a "$T/run.log" 2>/dev/null)" = 600
check "the log file has the run's info lines" grep -q "level=info event=mailbox-start mailbox=ann@example.com" "$T/run.log"
check_eq "the log file holds no terminal control codes" "$(grep -c $'\033' "$T/run.log" || true)" 0

check "what stays on screen: every log line, in order, above the display" python3 - "$T/err1" "$T/run.log" <<'EOF'
import re, sys
raw = open(sys.argv[1], encoding="utf-8", errors="replace").read()
log = [l for l in open(sys.argv[2]).read().splitlines() if l]
# a terminal: ESC[1A cursor up, ESC[2K erase the line, \n next line
screen, row = [""], 0
for tok in re.split(r"(\x1b\[1A|\x1b\[2K|\n)", raw):
    if tok == "\x1b[1A":
        row = max(0, row - 1)
    elif tok == "\x1b[2K":
        screen[row] = ""
    elif tok == "\n":
        row += 1
        if row == len(screen):
            screen.append("")
    elif tok:
        screen[row] += tok
shown = [l for l in screen if l]
logged = [l for l in shown if " level=" in l]
assert logged == log, "\n".join(["on screen:"] + logged + ["in the log file:"] + log)
info = [l for l in logged if " level=info event=mailbox-start " in l]
assert len(info) == 2, "the info lines are not on screen: %r" % logged
assert shown[-1].startswith("total: mailboxes 2/2"), shown[-3:]
print("  %d log lines on screen above the display" % len(logged))
EOF
check "the display's per-mailbox lines show rate and ETA" \
  grep -Eq '^  (ann|bob)@example\.com +[0-9]+/[0-9]+ messages +[0-9.]+ [MG]B +[0-9.]+ msg/s +[0-9.]+ MB/s +ETA [-0-9hms?]+' \
  < <(tr '\033' '\n' <"$T/err1" | sed 's/^\[[0-9]*[AK]//')
grep -E '^  (ann|bob)@' < <(tr '\033' '\n' <"$T/err1" | sed 's/^\[[0-9]*[AK]//') | tail -2 | sed 's/^/  | /'

# a second run appends
before=$(wc -l <"$T/run.log")
"$MF_BIN" run "$J/job.ini" --no-progress --log "$T/run.log" >/dev/null 2>&1 && rc=0 || rc=$?
check_eq "the second run exits 0" "$rc" 0
check_eq "the log file now holds two runs" "$(grep -c 'event=run-start' "$T/run.log")" 2
check "the first run's lines are still there" test "$(wc -l <"$T/run.log")" -gt "$before"

# a log file that cannot be opened
out=$("$MF_BIN" run "$J/job.ini" --no-progress --log "$T/no/such/dir/x.log" 2>&1) && rc=0 || rc=$?
check_eq "--log into a missing directory: exit 2" "$rc" 2
check "naming the file" grep -q -- "--log $T/no/such/dir/x.log: cannot open" <<<"$out"
finish
