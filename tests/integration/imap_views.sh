#!/usr/bin/env bash
# imap_views.sh - folders that are views of other folders (SPECIAL-USE \All,
# \Flagged: Gmail's "All Mail" and "Starred") hold copies of mail kept in
# other folders; moving them would duplicate every message. A Dovecot of our
# own with such folders, IMAP -> Maildir:
#   - by default they are skipped, with a log line naming them, and every
#     other folder arrives;
#   - with `views = copy` they are moved too.
# Skips without dovecot.
set -u
: "${MF_BIN:?}" "${MF_SRC:?}"
W=${MF_TMP:-$(mktemp -d /tmp/mf-views.XXXXXX)}
. "$MF_SRC/tests/lib/dovecot.sh"
dovecot_available || { echo "SKIP: dovecot or python3 not installed (apt-get install dovecot-imapd)"; exit 77; }
source "$MF_SRC/tests/lib/common.sh"
T=$W

cleanup() { dovecot_stop "$W/src"; }
on_exit cleanup
SP=$(dovecot_free_port 11173)
DOVECOT_NS_EXTRA='  mailbox "All Mail" {
    special_use = \All
  }
  mailbox Starred {
    special_use = \Flagged
  }' dovecot_start "$W/src" "$SP" / || { bad "source dovecot"; finish; }
dovecot_add_user "$W/src" ann pa

mkdir -p "$W/gen"
for i in 1 2 3 4; do
	printf 'From: b@example.org\r\nTo: ann@example.org\r\nSubject: m%s\r\nMessage-ID: <m%s@example.org>\r\nDate: Mon, 02 Nov 2026 10:0%s:00 +0000\r\n\r\nbody %s\r\n' \
		"$i" "$i" "$i" "$i" >"$W/gen/m$i.eml"
done
{
	for i in 1 2 3; do printf 'INBOX\t-\t1793620800\t%s\n' "$W/gen/m$i.eml"; done
	printf 'Projects\t-\t1793620800\t%s\n' "$W/gen/m4.eml"
	# the views: copies of the mail above
	for i in 1 2 3 4; do printf 'All Mail\t-\t1793620800\t%s\n' "$W/gen/m$i.eml"; done
	printf 'Starred\t\\Flagged\t1793620800\t%s\n' "$W/gen/m2.eml"
} | dovecot_load "$SP" ann pa || bad "loading the source"

printf 'EmailAddress,UserName,Password\nann@example.org,ann,pa\n' >"$W/manifest.csv"
chmod 600 "$W/manifest.csv"
job() { # NAME [source lines]
	local n=$1
	shift
	{
		printf '[job]\nname = %s\nstate = state/%s.db\nmanifest = manifest.csv\n' "$n" "$n"
		printf '[source]\ntype = imap\nhost = 127.0.0.1\nport = %s\ntls = none\nauth = plain\n' "$SP"
		printf '%s\n' "$@"
		printf '[sink]\ntype = maildir\npath = out-%s\n' "$n"
	} >"$W/$n.ini"
}
count() { find "$W/out-$1" -type f \( -path '*/cur/*' -o -path '*/new/*' \) | wc -l; }
folders() { find "$W/out-$1/ann@example.org" -mindepth 1 -maxdepth 1 -type d -name '.*' -printf '%f\n' | sort | tr '\n' ' '; }

job skip
"$MF_BIN" run "$W/skip.ini" --no-progress >"$W/skip.log" 2>&1 && rc=0 || rc=$?
check_eq "default: the run succeeds" "$rc" 0
check_eq "default: the 4 messages arrive once each (not 9)" "$(count skip)" 4
check "default: All Mail skipped, named in the log" grep -q 'event=folder_skipped .*folder="\?All Mail' "$W/skip.log"
check "default: Starred skipped, named in the log" grep -q 'event=folder_skipped .*folder=Starred' "$W/skip.log"
check "default: no All Mail or Starred folder in the target ($(folders skip))" \
	bash -c "! ls -a '$W/out-skip/ann@example.org' | grep -q 'All Mail\|Starred'"
check "default: Projects is there" test -d "$W/out-skip/ann@example.org/.Projects"

job copy "views = copy"
"$MF_BIN" run "$W/copy.ini" --no-progress >"$W/copy.log" 2>&1 && rc=0 || rc=$?
check_eq "views = copy: the run succeeds" "$rc" 0
check_eq "views = copy: the views are moved too (4 + 4 + 1)" "$(count copy)" 9
check_eq "views = copy: nothing skipped" "$(grep -c event=folder_skipped "$W/copy.log" || true)" 0

job bad "views = maybe"
out=$("$MF_BIN" run "$W/bad.ini" --no-progress 2>&1) && rc=0 || rc=$?
check_eq "views = maybe: refused as a usage error" "$rc" 2
check "views = maybe: the error names the key" grep -q "views" <<<"$out"
finish
