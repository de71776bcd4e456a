#!/usr/bin/env python3
"""graph_state.py PORT MAILBOX - print the Graph double's state for one
mailbox as tab-separated lines the C tests read:
  counter<TAB>name<TAB>value                 (r401 r429 r503 r504 issued peak)
  msg<TAB>folder path<TAB>internetMessageId<TAB>isDraft<TAB>isRead<TAB>flag<TAB>via<TAB>sha256|-<TAB>attachment sha256s
  head<TAB>internetMessageId<TAB>subject<TAB>from<TAB>toRecipients   (JSON-made messages only)
  att<TAB>internetMessageId<TAB>name<TAB>isInline<TAB>contentId|-<TAB>size
  folder<TAB>path<TAB>wellKnownName|-                    (every folder but the root)
where from and each recipient read name<address> (name "" when the JSON had
none) and recipients are separated by "|". Output is UTF-8.
"""
import json, sys, urllib.request
from cloud_list import folder_path  # tests/doubles/ is the script's own directory
sys.stdout.reconfigure(encoding="utf-8")
port, mbx = sys.argv[1], sys.argv[2]
s = json.load(urllib.request.urlopen("http://127.0.0.1:%s/_state" % port))
for k in ("r401", "r429", "r503", "r504", "r509", "r400", "r403", "r415", "ra_ignored", "issued"):
    print("counter\t%s\t%s" % (k, s[k]))
print("counter\tpeak\t%s" % s["peak"].get(mbx, 0))
mb = s["mailboxes"].get(mbx, {"folders": {}, "messages": {}})
def path(fid):
    return folder_path(mb, fid)
for m in sorted(mb["messages"].values(), key=lambda m: m["id"]):
    print("msg\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s" % (path(m["parentFolderId"]), m["internetMessageId"],
          m["isDraft"], m["isRead"], m["flag"]["flagStatus"], m["via"], m.get("sha256") or "-",
          ",".join(a["sha256"] for a in m["attachments"])))
def who(r):
    ea = (r or {}).get("emailAddress", {})
    return "%s<%s>" % (ea.get("name", ""), ea.get("address", ""))
def flat(t):
    return (t or "").replace("\t", " ").replace("\n", " ")
for m in sorted(mb["messages"].values(), key=lambda m: m["id"]):
    if m["via"] == "json":
        print("head\t%s\t%s\t%s\t%s" % (m["internetMessageId"], flat(m.get("subject")), flat(who(m.get("from"))),
              flat("|".join(who(r) for r in m.get("toRecipients") or []))))
for m in sorted(mb["messages"].values(), key=lambda m: m["id"]):
    for a in m["attachments"]:
        print("att\t%s\t%s\t%d\t%s\t%d" % (m["internetMessageId"], a["name"], a.get("isInline", False),
              a.get("contentId") or "-", a["size"]))
for fid, f in sorted(mb["folders"].items()):
    if f.get("parent"):
        print("folder\t%s\t%s" % (path(fid), f.get("wellKnown") or "-"))
