# tests/lib/courier.sh - start and stop private Courier-IMAP 5.0 instances.
#
# Source this file (after tests/lib/dovecot.sh, for dovecot_free_port), then:
#   courier_available              0 when Courier's imapd is unpacked (tools/courier.sh)
#                                  and runs; else prints why
#   courier_start DIR PORT         users, Maildirs and logs under DIR; IMAP on
#                                  127.0.0.1:PORT. Returns 77 when Courier is not
#                                  unpacked.
#   courier_add_user DIR USER PASS a user with an empty Maildir (DIR/mail/USER/Maildir)
#   courier_stop DIR
#   courier_load PORT USER PASS < LINES, courier_dump PORT USER PASS,
#   courier_folders PORT USER PASS   as tests/lib/imap_tool.py (any server)
#
# The server that answers every command after the login is Courier's own
# imapd (from Debian's courier-imap, unpacked by tools/courier.sh under
# build/servers/courier, or COURIER_ROOT). The login itself is done by
# tests/lib/courier_login.py instead of couriertcpd + imaplogin + authdaemond
# (a system daemon on a compiled-in socket): it checks the password and
# execs imapd on the connection as imaplogin would. Maildirs are Courier's
# layout ("INBOX." namespace, "." separator, keywords in courierimapkeywords).
# Without gam_server, imapd is given tests/lib/courier_nofam.c as its libfam
# (libgamin would wait 1.2 s for gam_server at every SELECT and APPEND).

[ -n "${COURIER_ROOT:-}" ] && COURIER_ROOT_SET=1
COURIER_ROOT=${COURIER_ROOT:-${MF_SRC:-.}/build/servers/courier/root}
COURIER_LIBPATH="$COURIER_ROOT/usr/lib/x86_64-linux-gnu:$COURIER_ROOT/usr/lib"

courier_available() {
	# not unpacked yet (a build without `ninja deps`): try once
	if [ ! -x "$COURIER_ROOT/usr/bin/imapd" ] && [ -z "${COURIER_ROOT_SET:-}" ] &&
		[ -x "${MF_SRC:-.}/tools/courier.sh" ]; then
		"${MF_SRC:-.}/tools/courier.sh" "${MF_SRC:-.}/build/servers/courier" >&2 || true
	fi
	if [ ! -x "$COURIER_ROOT/usr/bin/imapd" ]; then
		echo "Courier-IMAP not unpacked under $COURIER_ROOT (run tools/courier.sh)"
		return 1
	fi
	if ! LD_LIBRARY_PATH=$COURIER_LIBPATH "$COURIER_ROOT/usr/bin/imapd" --version >/dev/null 2>&1; then
		echo "Courier's imapd under $COURIER_ROOT does not run (missing libraries?)"
		return 1
	fi
	command -v python3 >/dev/null 2>&1 || { echo "python3 not installed"; return 1; }
}

courier_start() {
	local dir=$1 port=$2
	courier_available >&2 || return 77
	mkdir -p "$dir/mail" "$dir/log" "$dir/lib"
	dir=$(cd "$dir" && pwd)
	touch "$dir/users"
	# no gam_server here: a libfam that says so at once (courier_nofam.c)
	cc -shared -fPIC -O2 -o "$dir/lib/libfam.so.0" "${MF_SRC:-.}/tests/lib/courier_nofam.c" ||
		{ echo "cannot build courier_nofam.c" >&2; return 1; }
	setsid python3 "${MF_SRC:-.}/tests/lib/courier_login.py" "$port" "$dir/users" \
		"$COURIER_ROOT/usr/bin/imapd" "$dir/lib:$COURIER_LIBPATH" "$dir/log/imapd.log" \
		>>"$dir/log/login.log" 2>&1 </dev/null &
	echo $! >"$dir/login.pid"
	local i
	for i in $(seq 1 100); do
		# ours, not some other server that took the port first
		kill -0 "$(cat "$dir/login.pid")" 2>/dev/null || break
		if python3 -c "import socket,sys; s=socket.create_connection(('127.0.0.1',$port),1); sys.exit(0 if b'courier_login.py' in s.recv(300) else 1)" 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	echo "courier on port $port did not come up" >&2
	cat "$dir/log/login.log" >&2 2>/dev/null
	return 1
}

courier_add_user() {
	local dir=$1 user=$2 pass=$3
	dir=$(cd "$dir" && pwd)
	mkdir -p "$dir/mail/$user"
	LD_LIBRARY_PATH=$COURIER_LIBPATH "$COURIER_ROOT/usr/bin/maildirmake.courier" \
		"$dir/mail/$user/Maildir" || return 1
	printf '%s\t%s\t%s\n' "$user" "$pass" "$dir/mail/$user/Maildir" >>"$dir/users"
}

courier_stop() {
	local dir=$1 pid
	[ -f "$dir/login.pid" ] || return 0
	pid=$(cat "$dir/login.pid")
	# the listener leads its own process group (setsid): the imapd of any
	# connection still open goes with it
	kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
	local i
	for i in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	rm -f "$dir/login.pid"
}

courier_load() { python3 "${MF_SRC:-.}/tests/lib/imap_tool.py" load "$@"; }
courier_dump() { python3 "${MF_SRC:-.}/tests/lib/imap_tool.py" dump "$@"; }
courier_folders() { python3 "${MF_SRC:-.}/tests/lib/imap_tool.py" folders "$@"; }
