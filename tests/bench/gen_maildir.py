#!/usr/bin/env python3
"""Write a deterministic benchmark corpus straight into Dovecot Maildirs.

usage: gen_maildir.py MAILROOT USERS MSGS_PER_USER AVG_KB [FOLDERS]
Each user gets MAILROOT/<user>/Maildir with INBOX, .Sent and .Archive.2023
(or one folder when FOLDERS=1). Sizes vary around AVG_KB (small text mails
and some with base64 attachments), dates spread over two years, some flags.
Prints the total bytes written.
"""
import base64
import os
import random
import sys

root, users, per_user, avg_kb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
nfolders = int(sys.argv[5]) if len(sys.argv) > 5 else 3
rng = random.Random(20261127)
folders = ["", ".Sent", ".Archive.2023"][:nfolders]
words = ("migration mailbox weekly report budget meeting notes project status invoice "
         "schedule review draft final customer support release plan").split()
total = 0
for u in range(users):
    user = f"user{u:04d}@bench.example"
    md = os.path.join(root, user, "Maildir")
    for f in folders:
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(md, f, sub), exist_ok=True)
    for i in range(per_user):
        f = folders[i % len(folders)]
        date = 1640995200 + rng.randrange(0, 2 * 365 * 86400)
        body_words = " ".join(rng.choice(words) for _ in range(rng.randrange(50, 400)))
        size = int(rng.expovariate(1.0 / (avg_kb * 1024)))
        parts = []
        hdr = (f"From: Sender {i} <sender{i % 97}@old.example>\r\n"
               f"To: {user}@new.example\r\n"
               f"Subject: {rng.choice(words)} {rng.choice(words)} #{i}\r\n"
               f"Date: {__import__('email.utils').utils.formatdate(date)}\r\n"
               f"Message-ID: <{user}.{i}.{date}@bench.example>\r\n"
               f"MIME-Version: 1.0\r\n")
        if size > 8192:
            blob = rng.randbytes(size * 3 // 4)
            b64 = base64.encodebytes(blob).decode().replace("\n", "\r\n")
            msg = (hdr + 'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
                   f"--b\r\nContent-Type: text/plain\r\n\r\n{body_words}\r\n"
                   '--b\r\nContent-Type: application/octet-stream\r\n'
                   'Content-Disposition: attachment; filename="data.bin"\r\n'
                   f"Content-Transfer-Encoding: base64\r\n\r\n{b64}--b--\r\n")
        else:
            msg = hdr + "Content-Type: text/plain\r\n\r\n" + body_words + "\r\n"
        data = msg.replace("\r\n", "\n").encode()  # Maildir on disk: LF
        flags = "S" if rng.random() < 0.7 else ""
        if rng.random() < 0.1:
            flags = "F" + flags
        name = f"{date}.M{i}P{u}.bench,S={len(data)}:2,{flags}"
        p = os.path.join(md, f, "cur", name)
        with open(p, "wb") as fh:
            fh.write(data)
        os.utime(p, (date, date))
        total += len(data)
print(total)
