#!/usr/bin/env bash
# `mailferry verify` and `mailferry plan` write nothing: the whole target
# (every file and directory of the Maildir tree with its size and mtime; for
# Azurite and s3rver every container or bucket and every object with its
# size, time and ETag, by tests/doubles/cloud_list.py) and the job directory
# are listed before and after them, and must be unchanged:
#   - before any run (today's verify made the Maildir and its folders, and
#     the Shared Key container);
#   - after a run, with a folder deleted from the target and a leftover tmp/
#     file in another (today's verify recreated the folder and removed the
#     tmp file): verify must say the folder is missing, and not make it.
source "$MF_SRC/tests/lib/common.sh"

PST=$(pst_dir)
[ -e "$PST/aspnet_Outlook_1.pst" ] && [ -e "$PST/rubymsg_attachAndInline.pst" ] ||
  skip "tests/data/pst misses the PST files"
command -v python3 >/dev/null || skip "python3 is not installed"

# the job directory and the Maildir tree: path, type, size, mtime (ns)
tree() { # tree DIR
  if [ -e "$1" ]; then
    # SQLite's -shm file is the WAL index every reader of the state writes
    # its read mark into: not the target, and not content
    (cd "$1" && find . ! -name '*.db-shm' -printf '%p %y %s %T@\n' | LC_ALL=C sort)
  else
    echo "(absent)"
  fi
}
same() { # same "what" BEFORE AFTER
  if [ "$2" = "$3" ]; then ok "$1"; else
    bad "$1"
    diff <(echo "$2") <(echo "$3") | head -20 | sed 's/^/  | /' || true
  fi
}
# "missing N" summed over verify's lines
sum_missing() { sed -n 's/.* missing \([0-9]*\) .*/\1/p' | awk '{s += $1} END {print s + 0}'; }

manifest() {
  pst_manifest_header
  echo "Exchange,,aspnet_Outlook_1.pst,ann@example.com,FALSE,/,,,,"
  echo "Exchange,,rubymsg_attachAndInline.pst,bob@example.com,FALSE,/Old PST,,,,"
}

# --- Maildir -----------------------------------------------------------------
J=$T/md
pst_job "$J" ro "$PST"
manifest >"$J/manifest.csv"
before=$(tree "$J")
"$MF_BIN" verify "$J/job.ini" >"$T/v0.out" 2>&1 && rc=0 || rc=$?
check_eq "maildir: verify before any run exits 1 (nothing migrated yet)" "$rc" 1
check "maildir: it says the target mailbox does not exist" grep -q "the target mailbox does not exist" "$T/v0.out"
"$MF_BIN" plan "$J/job.ini" >"$T/p0.out" 2>&1 && rc=0 || rc=$?
check_eq "maildir: plan before any run exits 0" "$rc" 0
same "maildir: verify and plan before any run left the job directory as it was" "$before" "$(tree "$J")"
check "maildir: no target directory was made" test ! -e "$J/out"

"$MF_BIN" run "$J/job.ini" --no-progress >"$T/run.out" 2>&1 && rc=0 || rc=$?
check_eq "maildir: the run exits 0" "$rc" 0
"$MF_BIN" verify "$J/job.ini" >"$T/v1.out" 2>&1 && rc=0 || rc=$?
check_eq "maildir: verify after the run exits 0" "$rc" 0

# delete one folder with messages (a subfolder, not the Inbox) and leave a
# tmp/ file of ours in another, as a run in progress has them
gone=$(cd "$J/out/ann@example.com" && for d in .?*; do
  if [ -d "$d/cur" ] && [ -n "$(ls "$d/cur")" ]; then echo "$d"; fi; done | sort | head -1)
[ -n "$gone" ] || { bad "no folder with messages to delete"; finish; }
ngone=$(find "$J/out/ann@example.com/$gone" -path '*/cur/*' -type f | wc -l)
mkdir -p "$T/aside" && mv "$J/out/ann@example.com/$gone" "$T/aside/"
other=$(find "$J/out/bob@example.com" -type d -name tmp | sort | head -1)
echo partial >"$other/1600000000.abc.mailferry.T999999"
touch -d @1600000000 "$other/1600000000.abc.mailferry.T999999" "$other"
before=$(tree "$J")
"$MF_BIN" verify "$J/job.ini" >"$T/v2.out" 2>&1 && rc=0 || rc=$?
check_eq "maildir: verify with a folder deleted exits 1" "$rc" 1
check_eq "maildir: it counts the deleted folder's $ngone messages as missing" "$(sum_missing <"$T/v2.out")" "$ngone"
check "maildir: it says the folder is missing" grep -q "(folder missing in the target)" "$T/v2.out"
"$MF_BIN" plan "$J/job.ini" >"$T/p2.out" 2>&1 && rc=0 || rc=$?
check_eq "maildir: plan exits 0" "$rc" 0
after=$(tree "$J")
same "maildir: verify and plan after the run left the job directory (target and state) as it was" "$before" "$after"
check "maildir: the deleted folder was not made again" test ! -e "$J/out/ann@example.com/$gone"
check "maildir: the tmp/ file is still there" test -e "$other/1600000000.abc.mailferry.T999999"
out_before=$(tree "$J/out")
"$MF_BIN" verify "$J/job.ini" --repair >"$T/v3.out" 2>&1 && rc=0 || rc=$?
check "maildir: verify --repair marks the $ngone missing" grep -q "marked $ngone message" "$T/v3.out"
same "maildir: verify --repair left the target as it was" "$out_before" "$(tree "$J/out")"

# --- Azurite and s3rver ------------------------------------------------------
if ! command -v node >/dev/null; then
  echo "NOTE: node is not installed: the Azurite and s3rver part is skipped"
  finish
  exit
fi
exec 9>/tmp/mailferry-cloud.lock
flock 9
SRV=$T/srv
mkdir -p "$SRV"
if ! bash "$MF_SRC/tools/cloud-servers.sh" start "$(cloud_npm_prefix)" "$SRV" azurite s3rver >"$SRV.log" 2>&1; then
  bash "$MF_SRC/tools/cloud-servers.sh" stop "$SRV" >/dev/null 2>&1 || true
  echo "NOTE: cannot start Azurite and s3rver: that part is skipped"
  finish
  exit
fi
on_exit "bash '$MF_SRC/tools/cloud-servers.sh' stop '$SRV' >/dev/null 2>&1"
export AZ_KEY=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==
export S3_SECRET=S3RVER
AZ=http://127.0.0.1:10000/devstoreaccount1
S3=http://127.0.0.1:4568
# s3 never makes buckets: the admin does
curl -sf -o /dev/null --aws-sigv4 aws:amz:us-east-1:s3 --user S3RVER:S3RVER \
  -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -X PUT "$S3/robucket" || { bad "cannot make the s3 bucket"; finish; }
cloud_tree() { # the whole account / server
  case $1 in
  azure-blob) python3 "$MF_SRC/tests/doubles/cloud_list.py" azure-tree "$AZ" devstoreaccount1 "$AZ_KEY" ;;
  s3) python3 "$MF_SRC/tests/doubles/cloud_list.py" s3-tree "$S3" ;;
  esac
}
cloud_delete() { # cloud_delete SINK NAME
  case $1 in
  azure-blob) python3 "$MF_SRC/tests/doubles/cloud_list.py" azure-delete "$AZ" devstoreaccount1 "$AZ_KEY" "$2" ;;
  s3) curl -sf -o /dev/null -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' -X DELETE "$S3/$2" ;;
  esac
}
for sink in azure-blob s3; do
  C=$T/$sink
  mkdir -p "$C"
  {
    printf '[job]\nname = ro\nstate = state/ro.db\nmanifest = manifest.csv\n[source]\ntype = pst\nroot = %s\n[sink]\n' "$PST"
    case $sink in
    azure-blob) printf 'type = azure-blob\nurl = %s/rocont\naccount = devstoreaccount1\nkey_env = AZ_KEY\n' "$AZ" ;;
    s3) printf 'type = s3\nurl = %s/robucket/pre\nregion = us-east-1\naccess_key_id = S3RVER\nsecret_access_key_env = S3_SECRET\n' "$S3" ;;
    esac
  } >"$C/job.ini"
  manifest >"$C/manifest.csv"
  before=$(cloud_tree $sink)
  "$MF_BIN" verify "$C/job.ini" >"$C/v0.out" 2>&1 && rc=0 || rc=$?
  check_eq "$sink: verify before any run exits 1" "$rc" 1
  "$MF_BIN" plan "$C/job.ini" >"$C/p0.out" 2>&1 && rc=0 || rc=$?
  check_eq "$sink: plan before any run exits 0" "$rc" 0
  same "$sink: verify and plan before any run left the store as it was" "$before" "$(cloud_tree $sink)"
  "$MF_BIN" run "$C/job.ini" --no-progress >"$C/run.out" 2>&1 && rc=0 || rc=$?
  check_eq "$sink: the run exits 0" "$rc" 0
  # delete every message of ann's biggest folder below her root
  names=$(cloud_tree $sink | cut -f1 | grep '/ann@example\.com/.*/[0-9a-f-]*\.eml$' || true)
  folder=$(sed 's|/[^/]*$||' <<<"$names" | sort | uniq -c | sort -k1,1nr -k2 | head -1 | sed 's/^ *[0-9]* //')
  [ -n "$folder" ] || { bad "$sink: no folder of ann's in the store"; continue; }
  ngone=0
  while IFS= read -r n; do
    [ "${n%/*}" = "$folder" ] || continue
    cloud_delete $sink "$n"
    ngone=$((ngone + 1))
  done <<<"$names"
  check "$sink: deleted the $ngone messages of $folder" test "$ngone" -gt 0
  before=$(cloud_tree $sink)
  "$MF_BIN" verify "$C/job.ini" >"$C/v1.out" 2>&1 && rc=0 || rc=$?
  check_eq "$sink: verify with a folder's messages deleted exits 1" "$rc" 1
  check_eq "$sink: it counts the $ngone deleted as missing" "$(sum_missing <"$C/v1.out")" "$ngone"
  "$MF_BIN" plan "$C/job.ini" >"$C/p1.out" 2>&1 && rc=0 || rc=$?
  check_eq "$sink: plan exits 0" "$rc" 0
  same "$sink: verify and plan after the run left the store as it was" "$before" "$(cloud_tree $sink)"
done
finish
