#!/usr/bin/env python3
"""faultproxy.py - a TCP proxy for the fault tests that misbehaves on purpose.

  faultproxy.py --listen PORT --target HOST:PORT --schedule SPEC --stats FILE [--loop]

Listens on 127.0.0.1:PORT (loopback only) and forwards every connection to
HOST:PORT. Each new connection takes the next action of SPEC, a comma
separated list; "ACTION*K" repeats an action K times. When the list is used
up, connections pass untouched, unless --loop starts it again.

Actions (byte counts are over the whole connection, so on a keep-alive
connection the fault hits whichever request is under way at that point):
  pass          forward both ways
  drop-up:N     forward N bytes of the client's data, then close both sides
                (the server sees a request cut mid-headers or mid-body)
  drop-down:N   forward all the client sends but only N bytes of the
                server's answers, then close both sides (a truncated
                response; drop-down:0 = the server did the work, the client
                never hears of it)
  stall:MS      forward the request, then hold the server's answer for MS ms
                without reading it, then close both sides (a stall: with MS
                over the client's timeout the client must give up by itself)
  delay:MS      forward both ways, delaying every chunk of the answer by MS ms
  refuse        close the connection at once, nothing forwarded
  pass@N, delay:MS@N   as above, but cut the connection (as drop-up:N) once
                the client has sent N bytes, so that a well-behaved
                keep-alive connection does not carry the rest of the run

The stats FILE (JSON, rewritten after every event) counts connections per
action and what was done: {"connections":N, "actions":{...}, "dropped_up":N,
"dropped_down":N, "stalled":N, "delayed_chunks":N, "refused":N,
"bytes_up":N, "bytes_down":N}. SIGTERM stops the proxy.
"""
import argparse
import asyncio
import json
import os
import signal
import sys


def parse_schedule(spec):
    out = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        count = 1
        if "*" in item:
            item, k = item.rsplit("*", 1)
            count = int(k)
        cut = 0
        if "@" in item:
            item, c = item.split("@", 1)
            cut = int(c)
        name, _, arg = item.partition(":")
        if cut and name not in ("pass", "delay"):
            raise SystemExit("faultproxy: @N only goes with pass and delay")
        if name not in ("pass", "drop-up", "drop-down", "stall", "delay", "refuse"):
            raise SystemExit("faultproxy: unknown action %r" % name)
        if name in ("drop-up", "drop-down", "stall", "delay") and not arg.isdigit():
            raise SystemExit("faultproxy: %s needs a number" % name)
        out.extend([(name, int(arg) if arg else 0, cut)] * count)
    return out


class Proxy:
    def __init__(self, args):
        self.host, port = args.target.rsplit(":", 1)
        self.port = int(port)
        self.schedule = parse_schedule(args.schedule)
        self.loop_schedule = args.loop
        self.stats_path = args.stats
        self.n = 0
        self.stats = {"connections": 0, "actions": {}, "dropped_up": 0, "dropped_down": 0,
                      "stalled": 0, "delayed_chunks": 0, "refused": 0, "bytes_up": 0,
                      "bytes_down": 0}
        self.save()

    def save(self):
        tmp = self.stats_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.stats, f, sort_keys=True)
        os.replace(tmp, self.stats_path)

    def next_action(self):
        i = self.n
        self.n += 1
        if self.schedule and self.loop_schedule:
            return self.schedule[i % len(self.schedule)]
        return self.schedule[i] if i < len(self.schedule) else ("pass", 0, 0)

    async def handle(self, cr, cw):
        action, arg, cut = self.next_action()
        self.stats["connections"] += 1
        key = action if action in ("pass", "refuse") else "%s:%d" % (action, arg)
        if cut:
            key += "@%d" % cut
        self.stats["actions"][key] = self.stats["actions"].get(key, 0) + 1
        if action == "refuse":
            self.stats["refused"] += 1
            self.save()
            cw.close()
            return
        self.save()
        try:
            sr, sw = await asyncio.open_connection(self.host, self.port)
        except OSError:
            cw.close()
            return
        done = asyncio.Event()

        def close_all():
            for w in (cw, sw):
                try:
                    w.transport.abort()
                except Exception:
                    pass
            done.set()

        async def up():
            sent = 0
            try:
                while True:
                    data = await cr.read(65536)
                    if not data:
                        break
                    limit = arg if action == "drop-up" else cut
                    if limit and sent + len(data) >= limit:
                        part = data[:limit - sent]
                        if part:
                            sw.write(part)
                            await sw.drain()
                        self.stats["bytes_up"] += len(part)
                        self.stats["dropped_up"] += 1
                        self.save()
                        close_all()
                        return
                    sw.write(data)
                    await sw.drain()
                    sent += len(data)
                    self.stats["bytes_up"] += len(data)
                try:
                    sw.write_eof()
                except Exception:
                    pass
            except Exception:
                close_all()

        async def down():
            got = 0
            try:
                while True:
                    data = await sr.read(65536)
                    if not data:
                        break
                    if action == "stall":
                        self.stats["stalled"] += 1
                        self.save()
                        await asyncio.sleep(arg / 1000.0)
                        close_all()
                        return
                    if action == "drop-down" and got + len(data) >= arg:
                        part = data[:arg - got]
                        if part:
                            cw.write(part)
                            await cw.drain()
                        self.stats["bytes_down"] += len(part)
                        self.stats["dropped_down"] += 1
                        self.save()
                        close_all()
                        return
                    if action == "delay":
                        self.stats["delayed_chunks"] += 1
                        await asyncio.sleep(arg / 1000.0)
                    cw.write(data)
                    await cw.drain()
                    got += len(data)
                    self.stats["bytes_down"] += len(data)
            except Exception:
                pass
            close_all()

        tasks = [asyncio.ensure_future(up()), asyncio.ensure_future(down())]
        await done.wait()
        for t in tasks:
            t.cancel()
        self.save()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", type=int, required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--schedule", default="")
    ap.add_argument("--stats", required=True)
    ap.add_argument("--loop", action="store_true")
    args = ap.parse_args()
    p = Proxy(args)
    server = await asyncio.start_server(p.handle, "127.0.0.1", args.listen)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("faultproxy: 127.0.0.1:%d -> %s" % (args.listen, args.target), flush=True)
    async with server:
        await stop.wait()
    p.save()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
