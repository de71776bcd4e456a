#!/usr/bin/env python3
"""tests/lib/courier_login.py - the login front end of a test Courier-IMAP.

Courier's own front end (couriertcpd + imaplogin) authenticates through
authdaemond, a system daemon on a compiled-in socket path. For tests on
loopback this stands in for that part only: it listens on 127.0.0.1:PORT,
speaks the not-authenticated state (CAPABILITY, NOOP, LOGOUT, LOGIN,
AUTHENTICATE PLAIN with or without an initial response, STARTTLS refused),
checks the password against USERS (lines "user<TAB>password<TAB>maildir"),
and then execs Courier's real imapd on the connection, as imaplogin does:
AUTHENTICATED and IMAPLOGINTAG in the environment, so imapd itself answers
"TAG OK LOGIN Ok." and serves everything after the login.

usage: courier_login.py PORT USERS IMAPD LIBPATH LOGFILE
"""
import base64
import os
import signal
import socket
import sys

PORT, USERS, IMAPD, LIBPATH, LOG = sys.argv[1:6]

# what Courier 5.0's imapd.dist sets for a stock installation, except
# IMAP_EMPTYTRASH (stock: Trash:7, which purges Trash messages whose
# INTERNALDATE is older than 7 days at every login: the tests migrate old mail)
IMAPD_ENV = {
    "IMAP_CAPABILITY": "IMAP4rev1 UIDPLUS CHILDREN NAMESPACE THREAD=ORDEREDSUBJECT "
                       "THREAD=REFERENCES SORT QUOTA IDLE",
    "IMAP_KEYWORDS": "1",
    "IMAP_ACL": "1",
    "IMAP_IDLE_TIMEOUT": "60",
    "IMAP_MAILBOX_SANITY_CHECK": "1",
    "IMAP_CHECK_ALL_FOLDERS": "0",
    "IMAP_OBSOLETE_CLIENT": "0",
    "IMAP_UMASK": "022",
    "IMAP_USELOCKS": "1",
    "IMAP_ENHANCEDIDLE": "0",
    "IMAP_TRASHFOLDERNAME": "Trash",
    "IMAP_MOVE_EXPUNGE_TO_TRASH": "0",
    "IMAP_DISABLETHREADSORT": "0",
}
PRE_CAPS = IMAPD_ENV["IMAP_CAPABILITY"] + " AUTH=PLAIN"


def users():
    u = {}
    with open(USERS) as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            if len(p) == 3:
                u[p[0]] = (p[1], p[2])
    return u


def readline(c):
    # byte by byte: nothing after the login line may be swallowed, it is
    # imapd's to read
    b = bytearray()
    while not b.endswith(b"\r\n"):
        ch = c.recv(1)
        if not ch:
            return None
        b += ch
        if len(b) > 65536:
            return None
    return bytes(b[:-2])


def astrings(c, rest):
    """Parse atoms, quoted strings and literals from rest (more lines are
    read for literals)."""
    out = []
    while True:
        rest = rest.lstrip(b" ")
        if not rest:
            return out
        if rest[:1] == b'"':
            i, v = 1, bytearray()
            while i < len(rest) and rest[i:i + 1] != b'"':
                if rest[i:i + 1] == b"\\":
                    i += 1
                v += rest[i:i + 1]
                i += 1
            out.append(bytes(v))
            rest = rest[i + 1:]
        elif rest[:1] == b"{":
            j = rest.index(b"}")
            spec = rest[1:j]
            n = int(spec.rstrip(b"+"))
            if not spec.endswith(b"+"):
                c.sendall(b"+ OK\r\n")
            v = b""
            while len(v) < n:
                v += c.recv(n - len(v))
            out.append(v)
            rest = readline(c) or b""
        else:
            j = rest.find(b" ")
            j = len(rest) if j < 0 else j
            out.append(rest[:j])
            rest = rest[j:]


def serve(c, peer):
    c.sendall(b"* OK [CAPABILITY " + PRE_CAPS.encode() +
              b"] Courier-IMAP ready. (login front end: tests/lib/courier_login.py)\r\n")
    while True:
        line = readline(c)
        if line is None:
            return
        parts = line.split(b" ", 2)
        tag = parts[0]
        cmd = parts[1].upper() if len(parts) > 1 else b""
        rest = parts[2] if len(parts) > 2 else b""
        user = pw = None
        if cmd == b"CAPABILITY":
            c.sendall(b"* CAPABILITY " + PRE_CAPS.encode() + b"\r\n" + tag + b" OK CAPABILITY completed\r\n")
            continue
        if cmd == b"NOOP":
            c.sendall(tag + b" OK NOOP completed\r\n")
            continue
        if cmd == b"LOGOUT":
            c.sendall(b"* BYE Courier-IMAP server shutting down\r\n" + tag + b" OK LOGOUT completed\r\n")
            return
        if cmd == b"STARTTLS":
            c.sendall(tag + b" NO STARTTLS not available here\r\n")
            continue
        if cmd == b"LOGIN":
            a = astrings(c, rest)
            if len(a) == 2:
                user, pw = a
        elif cmd == b"AUTHENTICATE":
            a = rest.strip().split(b" ")
            if a[0].upper() != b"PLAIN":
                c.sendall(tag + b" NO Unsupported authentication mechanism.\r\n")
                continue
            if len(a) > 1:
                ir = a[1]
            else:
                c.sendall(b"+ \r\n")
                ir = readline(c) or b"*"
            if ir == b"*":
                c.sendall(tag + b" NO AUTHENTICATE aborted\r\n")
                continue
            try:
                z, user, pw = base64.b64decode(ir).split(b"\0")
            except Exception:
                c.sendall(tag + b" BAD invalid base64\r\n")
                continue
            if z and z != user:
                user = None
        else:
            c.sendall(tag + b" BAD Error in IMAP command received by server.\r\n")
            continue
        u = users()
        name = (user or b"").decode("utf-8", "replace")
        if user is None or name not in u or u[name][0].encode() != pw:
            c.sendall(tag + b" NO Login failed.\r\n")
            continue
        maildir = u[name][1]
        env = dict(IMAPD_ENV)
        env.update({
            "PATH": "/usr/bin:/bin",
            "LD_LIBRARY_PATH": LIBPATH,
            "AUTHENTICATED": name,
            "IMAPLOGINTAG": tag.decode(),
            "TCPREMOTEIP": peer[0],
            "TCPREMOTEPORT": str(peer[1]),
            "TCPLOCALIP": "127.0.0.1",
            "TCPLOCALPORT": PORT,
            "HOME": os.path.dirname(maildir),
            "MAILDIR": maildir,
            "IMAP_SHAREDINDEXFILE": os.path.join(os.path.dirname(maildir), "shared-index"),
            "HOSTNAME": "courier.test",
        })
        fd = c.fileno()
        os.dup2(fd, 0)
        os.dup2(fd, 1)
        lf = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(lf, 2)
        os.chdir(maildir)
        os.execve(IMAPD, [IMAPD, maildir], env)


def main():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(PORT)))
    s.listen(64)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children reaped by the kernel
    while True:
        c, peer = s.accept()
        if os.fork() == 0:
            s.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            try:
                serve(c, peer)
            finally:
                os._exit(0)
        c.close()


main()
