#!/usr/bin/env bash
# Dovecot serves what the Maildir sink writes, as-is, with
#     mail_location = maildir:<path>/%u:UTF-8
# A throwaway Dovecot (own config, base_dir and passwd-file under MF_TMP,
# 127.0.0.1:11990, nothing system-wide touched) is checked over real IMAP:
# folder names (UTF-8 -> mUTF-7, nesting, escapes), message counts, flags,
# INTERNALDATE, subscriptions and message bytes. Skips without dovecot.
set -u
: "${MF_BIN:?}" "${MF_TMP:?}"
PORT=11990
if ! command -v dovecot >/dev/null 2>&1; then
	echo "SKIP: dovecot not installed (apt-get install dovecot-imapd)"
	exit 77
fi
if ! command -v python3 >/dev/null 2>&1; then
	echo "SKIP: python3 not found"
	exit 77
fi
helper="$(dirname "$MF_BIN")/tests/test_maildir"
if [ ! -x "$helper" ]; then
	echo "FAIL: helper $helper not built" >&2
	exit 1
fi

W="$MF_TMP"
rm -rf "$W"
mkdir -p "$W"
W="$(cd "$W" && pwd -P)"
cleanup_dir=
if [ "$(id -u)" = 0 ]; then
	# Dovecot's unprivileged processes must reach W: every parent needs o+x.
	d="$W"
	while [ "$d" != / ]; do
		d="$(dirname "$d")"
		case "$(stat -c %A "$d")" in
		*x | *t) ;;
		*)
			W="$(mktemp -d /tmp/mf-maildir-dovecot.XXXXXX)"
			cleanup_dir="$W"
			echo "note: $MF_TMP is not reachable by other users; using $W"
			break
			;;
		esac
	done
fi
chmod 755 "$W"
mkdir -p "$W/run" "$W/state"

# Write the sample mailbox "alice" with the sink itself.
if ! "$helper" --fixture "$W"; then
	echo "FAIL: writing the fixture mailbox" >&2
	exit 1
fi

me="$(id -un)"
if [ "$(id -u)" = 0 ]; then
	# Dovecot refuses to give mail access to uid 0: serve as nobody.
	muid=65534 mgid=65534
	chown -R "$muid:$mgid" "$W/mail"
	login_user=dovenull internal_user=dovecot
	getent passwd dovenull >/dev/null || login_user=nobody
	getent passwd dovecot >/dev/null || internal_user=nobody
else
	muid="$(id -u)" mgid="$(id -g)"
	login_user="$me" internal_user="$me"
fi
echo "alice:{PLAIN}secret:$muid:$mgid::$W/mail/alice::" >"$W/passwd"

cat >"$W/dovecot.conf" <<EOF
base_dir = $W/run
state_dir = $W/state
instance_name = mailferry-test-$$
log_path = $W/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
first_valid_uid = 1
default_login_user = $login_user
default_internal_user = $internal_user
mail_location = maildir:$W/mail/%u:UTF-8
passdb {
  driver = passwd-file
  args = scheme=PLAIN $W/passwd
}
userdb {
  driver = passwd-file
  args = $W/passwd
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $PORT
  }
  inet_listener imaps {
    port = 0
  }
}
service anvil {
  chroot =
}
service imap-login {
  chroot =
}
EOF

stop() {
	if [ -f "$W/run/master.pid" ]; then
		kill "$(cat "$W/run/master.pid")" 2>/dev/null
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			[ -f "$W/run/master.pid" ] || break
			sleep 0.2
		done
	fi
}
trap 'stop; [ -n "$cleanup_dir" ] && rm -rf "$cleanup_dir"' EXIT

if ! dovecot -c "$W/dovecot.conf"; then
	echo "FAIL: dovecot did not start" >&2
	cat "$W/dovecot.log" >&2 2>/dev/null
	exit 1
fi

python3 - "$PORT" <<'EOF'
import base64, datetime, imaplib, re, socket, sys, time

port = int(sys.argv[1])
for _ in range(50):
    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
        break
    except OSError:
        time.sleep(0.1)

def mutf7_decode(s):
    out, i = [], 0
    while i < len(s):
        if s[i] == "&":
            j = s.index("-", i)
            if j == i + 1:
                out.append("&")
            else:
                b = s[i + 1:j].replace(",", "/")
                b += "=" * (-len(b) % 4)
                out.append(base64.b64decode(b).decode("utf-16-be"))
            i = j + 1
        else:
            out.append(s[i])
            i += 1
    return "".join(out)

fail = []
def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        fail.append(what)

m = imaplib.IMAP4("127.0.0.1", port)
m.login("alice", "secret")

def parse_list(lines):
    names = {}
    for l in lines:
        l = l.decode()
        mm = re.match(r'\(([^)]*)\) "(.)" (.*)$', l)
        name = mm.group(3)
        if name.startswith('"'):
            name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        names[mutf7_decode(name)] = (mm.group(1), name)
    return names

typ, lines = m.list('""', "*")
names = parse_list(lines)
print("LIST:", sorted(names))
# message index n -> internal date 1600000000 + 86400 n (see the fixture)
expect = {  # display name: (count, flags, first message index)
    "INBOX": (3, {"\\Seen", "$Forwarded", "Work"}, 0),  # keywords: dovecot-keywords
    "Sent": (2, {"\\Seen", "\\Answered", "$MDNSent"}, 3),
    "Caf\u00e9 \u00dc": (1, {"\\Flagged"}, 5),
    "Projects": (0, set(), 0),
    "Projects.2024": (0, set(), 0),
    "Projects.2024.Q1%2Efinal": (2, {"\\Draft"}, 6),
    "INBOX.Sub": (1, {"\\Seen", "\\Deleted"}, 8),
    "50%25 off": (1, set(), 9),
}
check(set(names) == set(expect), "LIST has exactly the expected folders")
check("Caf\u00e9 \u00dc" in names and names["Caf\u00e9 \u00dc"][1] == "Caf&AOk- &ANw-",
      "non-ASCII name sent as mUTF-7 Caf&AOk- &ANw-")
check("\\HasChildren" in names.get("Projects", ("", ""))[0], "Projects has children")

for disp, (count, flags, first) in expect.items():
    if disp not in names:
        continue
    wire = names[disp][1]
    typ, data = m.select('"%s"' % wire, readonly=True)
    check(typ == "OK" and int(data[0]) == count, "%s: %d messages (got %s)" % (disp, count, data))
    if count == 0:
        continue
    typ, data = m.fetch("1:*", "(FLAGS INTERNALDATE RFC822.SIZE)")
    got_dates = []
    for item in data:
        s = item.decode() if isinstance(item, bytes) else item[0].decode()
        fl = set(re.search(r"FLAGS \(([^)]*)\)", s).group(1).split()) - {"\\Recent"}
        check(fl == flags, "%s: flags %s (got %s)" % (disp, sorted(flags), sorted(fl)))
        d = re.search(r'INTERNALDATE "([^"]+)"', s).group(1)
        got_dates.append(int(datetime.datetime.strptime(d, "%d-%b-%Y %H:%M:%S %z").timestamp()))
    want_dates = [1600000000 + 86400 * (first + k) for k in range(count)]
    check(sorted(got_dates) == want_dates,
          "%s: INTERNALDATE %s (got %s)" % (disp, want_dates, sorted(got_dates)))
    typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    subj = data[0][1].decode().strip()
    check(re.fullmatch(r"Subject: message \d+", subj) is not None, "%s: header readable (%s)" % (disp, subj))
    m.close()

typ, lines = m.lsub('""', "*")
subs = set(parse_list(lines))
check(subs == set(expect) - {"INBOX"}, "LSUB lists every migrated folder (got %s)" % sorted(subs))
m.logout()
print("%d checks failed" % len(fail))
sys.exit(1 if fail else 0)
EOF
rc=$?
if [ $rc -ne 0 ]; then
	echo "--- dovecot.log" >&2
	tail -20 "$W/dovecot.log" >&2
	exit 1
fi
echo "PASS"
