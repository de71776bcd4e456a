#!/usr/bin/env python3
"""Digest Maildir trees independently of mailferry's state database.

Usage: maildir_digest.py ROOT        -> one line per message:
         "<mailbox>/<folder dir> <sha256 of content> <flags>", sorted
       maildir_digest.py --count ROOT -> number of messages
Duplicates stay visible: two identical messages give two identical lines.
"""
import hashlib
import os
import sys


def walk(root):
    lines = []
    for dirpath, dirnames, filenames in os.walk(root):
        base = os.path.basename(dirpath)
        if base not in ("cur", "new"):
            continue
        folder = os.path.relpath(os.path.dirname(dirpath), root)
        for name in filenames:
            with open(os.path.join(dirpath, name), "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            flags = name.split(":2,", 1)[1] if ":2," in name else ""
            lines.append(f"{folder} {digest} {flags}")
    return sorted(lines)


def main():
    args = sys.argv[1:]
    count = False
    if args and args[0] == "--count":
        count = True
        args = args[1:]
    if len(args) != 1:
        sys.exit(__doc__)
    lines = walk(args[0]) if os.path.isdir(args[0]) else []
    if count:
        print(len(lines))
    else:
        print("\n".join(lines))


main()
