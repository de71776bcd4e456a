#!/usr/bin/env python3
"""imap_faultproxy.py - an IMAP-aware proxy for the fault tests that
misbehaves at chosen IMAP commands.

  imap_faultproxy.py --listen PORT --target HOST:PORT [--stats FILE]
                     [--rules JSON] [--hide-literalplus] [--hide-caps A,B,...]
                     [--no-perm-keywords]

Listens on 127.0.0.1:PORT and forwards every connection to HOST:PORT,
parsing both directions as IMAP (lines and literals), so that faults land
exactly where a test wants them: inside an APPEND literal, inside a FETCH
body, or instead of the server's answer to an APPEND.

Client literals: every literal the client sends, synchronizing ({n}) or
LITERAL+ ({n+}), is taken over by the proxy: for {n} the proxy itself sends
the "+" continuation, reads the n bytes, and passes the command on to the
server as LITERAL+. So a command is complete in the proxy before anything
is decided, and a rejected APPEND's literal is swallowed, never forwarded.
COMPRESS=DEFLATE and STARTTLS are removed from the server's capabilities
(the proxy must read the stream); --hide-literalplus removes LITERAL+ too,
so the client has to use synchronizing literals.

A capability-poor server (tests/integration/imap_nocaps.sh): --hide-caps
removes those capabilities from every CAPABILITY answer (untagged, and the
[CAPABILITY ...] codes of the greeting and the login), e.g.
"UIDPLUS,LITERAL+,SPECIAL-USE,SASL-IR" (COMPRESS is always removed), and with
SPECIAL-USE the attributes \All \Archive \Drafts \Flagged \Junk \Sent
\Trash from LIST answers too. --no-perm-keywords rewrites PERMANENTFLAGS
to the system flags only (no \*, no keywords), as Courier, Cyrus and
Dovecot answer to EXAMINE. --raw-client forwards what the client sends
untouched (no rules on APPEND then): for servers without LITERAL+ (Courier),
to which the proxy's own literal handling would send LITERAL+ literals.

Rules (JSON list); each rule counts its own events over all connections:
  {"on": "append", "nth": K}            the K-th APPEND (1-based)
  {"on": "append", "every": N, "max": M} every N-th APPEND, at most M times
  {"on": "append", "match": "TEXT"}     every APPEND whose message contains TEXT
  {"on": "fetch", "nth": K}             the K-th FETCH response carrying a
                                        literal (a message body) from the server
  with "do":
  "no", "text": "..."   (append) answer "tag NO text" instead of forwarding
  "drop", "after": B    forward B bytes of the literal, then close both sides
  "stall", "ms": MS     (append) forward the command, hold the server's answer
                        MS ms, then close; (fetch) hold the body MS ms, then close
An APPEND answered with a "Suggested Backoff Time" is remembered: the time
until the same connection's next APPEND is added to "throttle_wait_ms".

The stats FILE (JSON, rewritten after every event): {"connections", "appends",
"fetch_literals", "hits": {rule index: n}, "no": n, "dropped": n,
"stalled": n, "throttled": n, "throttle_wait_ms": total, "min_gap_ms": smallest
gap}. SIGTERM stops the proxy.
"""
import argparse
import asyncio
import json
import os
import re
import signal
import time

LIT = re.compile(rb"\{(\d+)(\+?)\}\r?\n$")
STRIP_CAPS = [b"COMPRESS=DEFLATE", b"STARTTLS", b"LOGINDISABLED"]


class Closed(Exception):
    pass


class Proxy:
    def __init__(self, args):
        self.host, port = args.target.rsplit(":", 1)
        self.port = int(port)
        self.rules = json.loads(args.rules) if args.rules else []
        self.counts = [0] * len(self.rules)   # events seen per rule
        self.fired = [0] * len(self.rules)
        self.hide_lp = args.hide_literalplus
        self.hide = [c.encode() for c in (args.hide_caps or "").split(",") if c]
        if self.hide_lp:
            self.hide += [b"LITERAL+", b"LITERAL-"]
        self.no_perm_kw = args.no_perm_keywords
        self.raw_up = args.raw_client
        self.stats_path = args.stats
        self.stats = {"connections": 0, "appends": 0, "fetch_literals": 0, "hits": {},
                      "no": 0, "dropped": 0, "stalled": 0, "throttled": 0,
                      "throttle_wait_ms": 0, "min_gap_ms": None}
        self.save()

    def save(self):
        if not self.stats_path:
            return
        tmp = self.stats_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.stats, f, sort_keys=True)
        os.replace(tmp, self.stats_path)

    def match(self, on, payload=b""):
        """The first rule that fires for this event, or None."""
        for i, r in enumerate(self.rules):
            if r.get("on") != on:
                continue
            if "match" in r:
                if r["match"].encode() not in payload:
                    continue
                self.counts[i] += 1
            else:
                self.counts[i] += 1
                n = self.counts[i]
                if "nth" in r and n != r["nth"]:
                    continue
                if "every" in r and n % r["every"] != 0:
                    continue
            if "max" in r and self.fired[i] >= r["max"]:
                continue
            self.fired[i] += 1
            self.stats["hits"][str(i)] = self.fired[i]
            return r
        return None

    async def handle(self, cr, cw):
        self.stats["connections"] += 1
        self.save()
        try:
            sr, sw = await asyncio.open_connection(self.host, self.port, limit=1 << 24)
        except OSError:
            cw.close()
            return
        conn = {"throttled_at": None, "closed": False}

        def close_all():
            conn["closed"] = True
            for w in (cw, sw):
                try:
                    w.transport.abort()
                except Exception:
                    pass

        async def up():
            while self.raw_up:
                # the client's bytes as they are: synchronizing literals
                # wait for the server's own "+" (servers without LITERAL+)
                chunk = await cr.read(65536)
                if not chunk:
                    raise Closed()
                sw.write(chunk)
                await sw.drain()
            while True:
                line = await cr.readuntil(b"\n")
                parts = [line]
                while True:
                    m = LIT.search(line)
                    if not m:
                        break
                    n = int(m.group(1))
                    if not m.group(2):
                        cw.write(b"+ proxy ready\r\n")
                        await cw.drain()
                    parts[-1] = line[:m.start()] + b"{%d+}\r\n" % n
                    parts.append(await cr.readexactly(n))
                    line = await cr.readuntil(b"\n")
                    parts.append(line)
                words = parts[0].split(b" ", 3)
                cmd = words[1].upper() if len(words) > 1 else b""
                tag = words[0]
                if cmd == b"APPEND" and len(parts) >= 3:
                    await append(tag, parts)
                    continue
                for p in parts:
                    sw.write(p)
                await sw.drain()

        async def append(tag, parts):
            self.stats["appends"] += 1
            now = time.monotonic()
            if conn["throttled_at"] is not None:
                gap = int((now - conn["throttled_at"]) * 1000)
                self.stats["throttle_wait_ms"] += gap
                mg = self.stats["min_gap_ms"]
                self.stats["min_gap_ms"] = gap if mg is None else min(mg, gap)
                conn["throttled_at"] = None
            r = self.match("append", parts[1])
            if r is None:
                for p in parts:
                    sw.write(p)
                await sw.drain()
                self.save()
                return
            do = r.get("do")
            if do == "no":
                text = r.get("text", "refused by the proxy")
                cw.write(tag + b" NO " + text.encode() + b"\r\n")
                await cw.drain()
                self.stats["no"] += 1
                if "Backoff" in text:
                    self.stats["throttled"] += 1
                    conn["throttled_at"] = time.monotonic()
                self.save()
            elif do == "drop":
                sw.write(parts[0])
                sw.write(parts[1][:r.get("after", 0)])
                await sw.drain()
                self.stats["dropped"] += 1
                self.save()
                close_all()
                raise Closed()
            elif do == "stall":
                conn["hold"] = r.get("ms", 1000)
                for p in parts:
                    sw.write(p)
                await sw.drain()

        async def down():
            while True:
                line = await sr.readuntil(b"\n")
                if conn.get("hold"):
                    # the answer to a stalled APPEND: never delivered
                    self.stats["stalled"] += 1
                    self.save()
                    await asyncio.sleep(conn["hold"] / 1000.0)
                    close_all()
                    raise Closed()
                if b"CAPABILITY" in line.upper():
                    for c in STRIP_CAPS + self.hide:
                        line = re.sub(rb"(?i) " + re.escape(c) + rb"(?=[ \]\r])", b"", line)
                if b"SPECIAL-USE" in self.hide and re.match(rb"\* (X?LIST|LSUB) \(", line):
                    line = re.sub(rb"(?i) ?\\(All|Archive|Drafts|Flagged|Junk|Sent|Trash|Important)(?=[ )])",
                                  b"", line)
                    line = line.replace(b"( ", b"(")
                if self.no_perm_kw and b"[PERMANENTFLAGS (" in line.upper():
                    line = re.sub(rb"(?i)\[PERMANENTFLAGS \([^)]*\)\]",
                                  lambda m: b"[PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)]",
                                  line)
                m = LIT.search(line)
                if not m:
                    cw.write(line)
                    await cw.drain()
                    continue
                n = int(m.group(1))
                r = None
                if b"FETCH" in line.upper():
                    self.stats["fetch_literals"] += 1
                    r = self.match("fetch")
                cw.write(line)
                if r is not None and r.get("do") == "stall":
                    self.stats["stalled"] += 1
                    self.save()
                    await cw.drain()
                    await asyncio.sleep(r.get("ms", 1000) / 1000.0)
                    close_all()
                    raise Closed()
                if r is not None and r.get("do") == "drop":
                    cw.write(await sr.readexactly(min(n, r.get("after", 0))))
                    await cw.drain()
                    self.stats["dropped"] += 1
                    self.save()
                    close_all()
                    raise Closed()
                left = n
                while left > 0:
                    chunk = await sr.read(min(left, 65536))
                    if not chunk:
                        raise Closed()
                    cw.write(chunk)
                    left -= len(chunk)
                await cw.drain()

        tasks = [asyncio.ensure_future(up()), asyncio.ensure_future(down())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            close_all()
            self.save()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", type=int, required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--stats", default="")
    ap.add_argument("--rules", default="")
    ap.add_argument("--hide-literalplus", action="store_true")
    ap.add_argument("--hide-caps", default="")
    ap.add_argument("--no-perm-keywords", action="store_true")
    ap.add_argument("--raw-client", action="store_true")
    args = ap.parse_args()
    p = Proxy(args)
    server = await asyncio.start_server(p.handle, "127.0.0.1", args.listen, limit=1 << 24)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("imap_faultproxy: 127.0.0.1:%d -> %s" % (args.listen, args.target), flush=True)
    async with server:
        await stop.wait()
    p.save()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
