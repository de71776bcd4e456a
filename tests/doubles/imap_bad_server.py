#!/usr/bin/env python3
"""imap_bad_server.py - an IMAP server that misbehaves, for imap_bad_server.sh.

  imap_bad_server.py --port P --mode MODE

MODE decides what every connection gets:
  greeting-endless  a greeting line that never ends (MB of 'x', no CRLF)
  close             a normal greeting, then the connection is closed
  garbage           a normal greeting, then binary garbage for every command
  endless           a normal greeting and CAPABILITY, then an endless line
                    (64 MB, no CRLF) as the answer to the next command
Loopback only; stops on SIGTERM.
"""
import argparse, asyncio, os, random, signal

GREETING = b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] bad server ready\r\n"


async def endless(w, total):
    chunk = b"x" * 65536
    sent = 0
    while sent < total:
        w.write(chunk)
        await w.drain()
        sent += len(chunk)


async def handle(r, w, mode):
    try:
        if mode == "greeting-endless":
            w.write(b"* OK ")
            await endless(w, 64 << 20)
            return
        w.write(GREETING)
        await w.drain()
        if mode == "close":
            return
        rnd = random.Random(7)
        while True:
            line = await r.readline()
            if not line:
                return
            tag = line.split(b" ", 1)[0]
            if mode == "garbage":
                w.write(bytes(rnd.randrange(256) for _ in range(300)) + b"\r\n")
                await w.drain()
            elif mode == "endless":
                if b"CAPABILITY" in line.upper():
                    w.write(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR\r\n" + tag + b" OK done\r\n")
                    await w.drain()
                else:
                    w.write(b"* ")
                    await endless(w, 64 << 20)
                    return
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        try:
            w.close()
        except Exception:
            pass


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mode", required=True)
    a = ap.parse_args()
    srv = await asyncio.start_server(lambda r, w: handle(r, w, a.mode), "127.0.0.1", a.port)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with srv:
        await stop.wait()

asyncio.run(main())
