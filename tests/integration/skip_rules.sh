#!/usr/bin/env bash
# Skips are decided again when the job's rules change (issue 10): a message
# skipped by [job] max_message_mb is recorded with the rule and its setting;
# after the limit is raised, the next run fetches and stores it (the source's
# cursor is past it, so the folder is listed again), judged from the Maildir
# files. `verify --repair` on such skips marks them, and what it prints comes
# true on the next run. A folder excluded by [folders] is reported message by
# message, and arrives once the exclusion is removed. IMAP source (a Dovecot
# of our own) -> Maildir.
source "$MF_SRC/tests/lib/common.sh"
source "$MF_SRC/tests/lib/dovecot.sh"
dovecot_available || skip "dovecot or python3 not installed (apt-get install dovecot-imapd)"

J=$T/job
mkdir -p "$J"
SP=$(dovecot_free_port 13201)
dovecot_start "$T/src" "$SP" / || skip "cannot start dovecot"
on_exit "dovecot_stop '$T/src'"
dovecot_add_user "$T/src" alice pa
dovecot_add_user "$T/src" bob pb

# Per user: a small message, one of 1.2 MB (fetched, then too big for 1 MB)
# and one of 3 MB (too big before fetching); bob also has a folder "Old".
python3 - "$T/msgs" <<'EOF'
import os, random, sys
d = sys.argv[1]
os.makedirs(d, exist_ok=True)
rnd = random.Random(10)
def msg(name, subject, kb):
    body = "".join("%076x\n" % rnd.getrandbits(300) for _ in range(kb * 1024 // 77 + 1))
    with open(os.path.join(d, name), "w") as f:
        f.write("From: Ann <ann@example.org>\nTo: x@example.org\nSubject: %s\n"
                "Date: Tue, 03 Nov 2026 10:00:00 +0000\nMessage-ID: <%s@example.org>\n\n%s"
                % (subject, name, body))
for u in ("alice", "bob"):
    msg(u + "-small", "small one of " + u, 8)
    msg(u + "-mid", "mid-size one of " + u, 1230)
    msg(u + "-big", "big one of " + u, 3100)
msg("bob-old", "an old one", 4)
EOF
for u in alice bob; do
  printf 'INBOX\t-\t1700000000\t%s\nINBOX\t\\Seen\t1700000100\t%s\nINBOX\t-\t1700000200\t%s\n' \
    "$T/msgs/$u-small" "$T/msgs/$u-mid" "$T/msgs/$u-big" | dovecot_load "$SP" "$u" "p${u:0:1}"
done
printf 'Old\t-\t1700000300\t%s\n' "$T/msgs/bob-old" | dovecot_load "$SP" bob pb

write_job() { # write_job MAX_MB [folders lines...]
  local mb=$1
  shift
  {
    echo "[job]"
    echo "name = skips"
    echo "state = state/skips.db"
    echo "manifest = manifest.csv"
    echo "max_message_mb = $mb"
    echo "[source]"
    echo "type = imap"
    echo "host = 127.0.0.1"
    echo "port = $SP"
    echo "tls = none"
    echo "[sink]"
    echo "type = maildir"
    echo "path = out"
    if [ $# -gt 0 ]; then echo "[folders]"; for l in "$@"; do echo "$l"; done; fi
  } >"$J/job.ini"
}
printf 'EmailAddress,UserName,Password\nalice@example.org,alice,pa\nbob@example.org,bob,pb\n' >"$J/manifest.csv"
chmod 600 "$J/manifest.csv"
mf() { "$MF_BIN" "$@" --no-progress 2>>"$T/log"; }
# messages in one mailbox's Maildir tree (all folders), from the files
count() { find "$J/out/$1" -path '*/cur/*' -o -path '*/new/*' 2>/dev/null | grep -c . || true; }
subjects() { grep -rhs '^Subject:' "$J/out/$1" | sed 's/^Subject: //' | sort | tr '\n' ';'; }

# --- 1: max 1 MB, folder Old excluded
write_job 1 "exclude = Old"
out=$(mf run "$J/job.ini") && rc=0 || rc=$?
echo "$out" | sed 's/^/  | /'
check_eq "the first run exits 0" "$rc" 0
check_eq "alice's Maildir holds 1 message" "$(count alice@example.org)" 1
check_eq "bob's Maildir holds 1 message" "$(count bob@example.org)" 1
check "no folder Old yet" test ! -e "$J/out/bob@example.org/.Old"
check_eq "report: 5 skipped (4 too big, 1 in the excluded folder)" "$(report_sum "$J/job.ini" skipped)" 5
items=$("$MF_BIN" report "$J/job.ini" --items)
check_eq "report --items: 2 too-big skips for each mailbox" \
  "$(grep -c '^[a-z]*@example.org,INBOX,.*,skipped,too-big: [0-9.]* MB > 1 MB,' <<<"$items")" 4
check "report --items: the excluded folder's message, with its rule" \
  grep -q '^bob@example.org,Old,.*,skipped,folder excluded by \[folders\] (exclude = Old),' <<<"$items"
out=$(mf run "$J/job.ini") && rc=0 || rc=$?
check "a rerun with the same rules has nothing to do" grep -q "already migrated" <<<"$out"
out=$("$MF_BIN" verify "$J/job.ini" 2>&1) && rc=0 || rc=$?
check_eq "verify with the 1 MB limit matches (exit 0)" "$rc" 0

# --- 2: limit raised to 150 MB; alice is repaired first, bob is not
write_job 150 "exclude = Old"
out=$("$MF_BIN" verify "$J/job.ini" --users alice@example.org 2>&1) && rc=0 || rc=$?
check_eq "verify after raising the limit exits 1 (2 messages now belong in the target)" "$rc" 1
out=$("$MF_BIN" verify "$J/job.ini" --users alice@example.org --repair 2>&1) && rc=0 || rc=$?
echo "$out" | grep repair | sed 's/^/  | /'
check "verify --repair marks alice's 2 skipped messages" \
  grep -q "repair: alice@example.org: marked 2 messages to be tried again by the next run" <<<"$out"
check "verify --repair names the next step" grep -q "verify --repair: marked 2 messages in 1 mailbox" <<<"$out"

# the folder exclusion is lifted too
write_job 150
out=$(mf run "$J/job.ini") && rc=0 || rc=$?
echo "$out" | sed 's/^/  | /'
check_eq "the run after raising the limit exits 0" "$rc" 0
check "it does not say everything is already migrated" eval '! grep -q "already migrated" <<<"$out"'
check "it says it moved 5 messages" grep -q "moved 5 messages" <<<"$out"
check "and skipped none" grep -q "skipped 0, failed 0" <<<"$out"
check_eq "alice's Maildir now holds 3 messages (what --repair promised)" "$(count alice@example.org)" 3
check_eq "bob's Maildir now holds 4 messages (skips re-decided, Old included)" "$(count bob@example.org)" 4
check_eq "alice's subjects" "$(subjects alice@example.org)" "big one of alice;mid-size one of alice;small one of alice;"
check_eq "bob's subjects" "$(subjects bob@example.org)" "an old one;big one of bob;mid-size one of bob;small one of bob;"
check "bob's folder Old exists" test -d "$J/out/bob@example.org/.Old"
# the files are the source's messages, byte for byte (the sink writes LF)
for u in alice bob; do
  for k in mid big; do
    want=$(sha256sum <"$T/msgs/$u-$k" | cut -d' ' -f1)
    got=$(grep -rls "^Subject: $([ $k = mid ] && echo mid-size || echo big) one of $u" "$J/out/$u@example.org" | head -1)
    check_eq "$u's $k message arrived whole" "$(sha256sum <"$got" | cut -d' ' -f1)" "$want"
  done
done
out=$("$MF_BIN" verify "$J/job.ini" 2>&1) && rc=0 || rc=$?
check_eq "verify now matches (exit 0)" "$rc" 0
check_eq "report: nothing skipped any more" "$(report_sum "$J/job.ini" skipped)" 0

# --- 3: a rerun with the same rules does nothing
out=$(mf run "$J/job.ini") && rc=0 || rc=$?
check "a rerun with unchanged rules has nothing to do" grep -q "already migrated" <<<"$out"

# --- 4: the limit lowered again: stored messages stay stored, nothing moves
write_job 1
out=$(mf run "$J/job.ini") && rc=0 || rc=$?
check_eq "after lowering the limit the run exits 0" "$rc" 0
check_eq "alice still has 3 messages" "$(count alice@example.org)" 3
finish
