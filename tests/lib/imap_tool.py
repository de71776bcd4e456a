#!/usr/bin/env python3
"""tests/lib/imap_tool.py - an IMAP client of its own (imaplib) for the
tests, for any server: Dovecot, Courier, or a proxy in front of either.

  imap_tool.py load PORT USER PASS < LINES
      APPEND messages; every line is "folder<TAB>flags<TAB>unix-date<TAB>file"
      (folder in UTF-8 with "/" between levels, flags like "\\Seen $Label"
      or "-"). Folders are created under the personal namespace prefix with
      the server's separator.
  imap_tool.py dump PORT USER PASS
      one line per message, sorted: "folder<TAB>flags<TAB>unix-idate<TAB>sha256"
      (folder in UTF-8 with "/", namespace prefix removed; flags sorted,
      \\Recent left out; sha256 of the bytes with CRLF -> LF)
  imap_tool.py folders PORT USER PASS
      the folder names (UTF-8, "/"), sorted

With UTF8=ACCEPT offered (RFC 6855) it is enabled and names travel as
UTF-8; otherwise in modified UTF-7. Courier refuses non-BMP characters
(emoji) in names without it, and its LIST breaks for clients that do not
enable it once such a folder exists, so this is what a real client does.
"""
import base64
import hashlib
import imaplib
import re
import sys
import time


def utf7_enc(s):
    out, buf = [], []

    def flush():
        if buf:
            b = "".join(buf).encode("utf-16-be")
            out.append("&" + base64.b64encode(b).decode().rstrip("=").replace("/", ",") + "-")
            buf.clear()
    for ch in s:
        if 0x20 <= ord(ch) <= 0x7e:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            buf.append(ch)
    flush()
    return "".join(out)


def utf7_dec(s):
    def rep(m):
        t = m.group(1)
        if t == "":
            return "&"
        t = t.replace(",", "/")
        t += "=" * (-len(t) % 4)
        return base64.b64decode(t).decode("utf-16-be")
    return re.sub(r"&([^-]*)-", rep, s)


def quote(s):
    return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\""


class Conn:
    def __init__(self, port, user, pw):
        self.M = imaplib.IMAP4("127.0.0.1", int(port))
        self.M.login(user, pw)
        self.utf8 = False
        typ, caps = self.M.capability()
        caps = caps[0].decode().upper().split()
        self.M.capabilities = tuple(caps)  # imaplib keeps the greeting's
        if "UTF8=ACCEPT" in caps:
            self.M.enable("UTF8=ACCEPT")
            self.utf8 = True
        self.prefix, self.sep = "", "/"
        if "NAMESPACE" in caps:
            typ, d = self.M.namespace()
            m = re.match(rb'\(\("([^"]*)" (?:"(.)"|NIL)', d[0] or b"")
            if m:
                self.prefix = m.group(1).decode()
                self.sep = m.group(2).decode() if m.group(2) else "/"
                return
        typ, data = self.M.list('""', '""')
        m = re.match(rb'\(.*?\) "(.)"', data[0] or b"")
        if m:
            self.sep = m.group(1).decode()

    def enc(self, seg):
        return seg if self.utf8 else utf7_enc(seg)

    def dec(self, seg):
        return seg if self.utf8 else utf7_dec(seg)

    def wire(self, folder):
        if folder.upper() == "INBOX":
            return "INBOX"
        return self.prefix + self.sep.join(self.enc(p) for p in folder.split("/"))

    def unwire(self, name):
        if name.upper() == "INBOX":
            return "INBOX"
        if self.prefix and name.startswith(self.prefix):
            name = name[len(self.prefix):]
        return "/".join(self.dec(p) for p in name.split(self.sep))

    def listing(self):
        typ, data = self.M.list('""', "*")
        out = []
        for item in data:
            if isinstance(item, tuple):  # a literal name
                meta, lit = item
                m = re.match(rb"\((.*?)\) (NIL|\"(.)\") ", meta)
                out.append((m.group(1).decode(), lit.decode("utf-8", "replace")))
                continue
            m = re.match(rb"\((.*?)\) (?:NIL|\"(?:\\.|.)\") (.*)$", item)
            if not m:
                continue
            attrs, name = m.group(1).decode(), m.group(2).decode("utf-8", "replace")
            if name.startswith("\""):
                name = name[1:-1].replace("\\\"", "\"").replace("\\\\", "\\")
            out.append((attrs, name))
        return out


def load(port, user, pw):
    c = Conn(port, user, pw)
    made = set()
    bad = 0
    for line in sys.stdin:
        line = line.rstrip("\n")
        if not line:
            continue
        folder, flags, date, path = line.split("\t")
        w = c.wire(folder)
        if w not in made and folder.upper() != "INBOX":
            parts = folder.split("/")
            for i in range(1, len(parts) + 1):
                c.M.create(quote(c.wire("/".join(parts[:i]))))
            made.add(w)
        data = open(path, "rb").read()
        data = re.sub(rb"\r?\n", b"\r\n", data)
        fl = "" if flags == "-" else "(" + flags + ")"
        try:
            typ, resp = c.M.append(quote(w), fl or None, imaplib.Time2Internaldate(int(date)), data)
        except imaplib.IMAP4.error as e:
            typ, resp = "NO", str(e)
        if typ != "OK":
            bad += 1
            sys.stderr.write("imap_tool load: APPEND %s to %s refused: %r\n" % (path, w, resp))
    c.M.logout()
    sys.exit(1 if bad else 0)


def dump(port, user, pw):
    c = Conn(port, user, pw)
    rows = []
    for attrs, name in c.listing():
        if "\\Noselect" in attrs or "\\NonExistent" in attrs:
            continue
        folder = c.unwire(name)
        typ, _ = c.M.select(quote(name), readonly=True)
        if typ != "OK":
            # listed but not selectable: a row of its own, so that a
            # comparison notices it
            sys.stderr.write("imap_tool dump: cannot examine %r\n" % name)
            rows.append("%s\tUNREADABLE\t0\t-" % folder)
            continue
        typ, d = c.M.uid("FETCH", "1:*", "(FLAGS INTERNALDATE BODY.PEEK[])")
        for part in d:
            if not isinstance(part, tuple):
                continue
            meta, body = part
            fl = re.search(rb"FLAGS \((.*?)\)", meta).group(1).decode().split()
            fl = " ".join(sorted(f for f in fl if f != "\\Recent")) or "-"
            idate = int(time.mktime(imaplib.Internaldate2tuple(meta)))
            h = hashlib.sha256(body.replace(b"\r\n", b"\n")).hexdigest()
            rows.append("%s\t%s\t%d\t%s" % (folder, fl, idate, h))
        c.M.close()
    c.M.logout()
    for r in sorted(rows):
        print(r)


def folders(port, user, pw):
    c = Conn(port, user, pw)
    names = sorted(c.unwire(n) for a, n in c.listing())
    c.M.logout()
    for n in names:
        print(n)


cmd = sys.argv[1]
{"load": load, "dump": dump, "folders": folders}[cmd](*sys.argv[2:5])
