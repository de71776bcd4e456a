#!/usr/bin/env python3
"""graph_admin.py PORT ACTION MAILBOX - change the Graph double's store the way
another Graph client would (token + Graph calls), for verify tests:
  delete     DELETE the mailbox's newest message; prints "folderId<TAB>internetMessageId"
  duplicate  importMime a second message with the Message-ID of the mailbox's
             newest message into the same folder; prints the same line
Retries what the double's fault options inject (401, 429, 503); a 504 from a
create means stored. Exit 0 when the store changed as asked.
"""
import base64, json, sys, time, urllib.error, urllib.parse, urllib.request

port, action, mbx = sys.argv[1], sys.argv[2], sys.argv[3]
base = "http://127.0.0.1:%s" % port


def state_msgs():
    s = json.load(urllib.request.urlopen(base + "/_state"))
    return s["mailboxes"].get(mbx, {"messages": {}})["messages"]


def token():
    body = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": "client-1",
                                   "client_secret": "s3cr3t-Value~1",
                                   "scope": "https://graph.microsoft.com/.default"}).encode()
    r = urllib.request.urlopen(base + "/contoso.onmicrosoft.com/oauth2/v2.0/token", body)
    return json.load(r)["access_token"]


def call(method, path, data=None, ctype=None, create=False):
    for _ in range(20):
        req = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Authorization": "Bearer " + token()})
        if ctype:
            req.add_header("Content-Type", ctype)
        try:
            return urllib.request.urlopen(req).status
        except urllib.error.HTTPError as e:
            if create and e.code == 504:
                return e.code  # stored, then the answer was lost
            if e.code not in (401, 429, 503):
                raise
        time.sleep(0.2)
    raise SystemExit("graph_admin: %s %s kept failing" % (method, path))


msgs = state_msgs()
if not msgs:
    raise SystemExit("graph_admin: no messages in %s" % mbx)
newest = max(msgs.values(), key=lambda m: m["id"])
q = urllib.parse.quote(mbx)
if action == "delete":
    call("DELETE", "/v1.0/users/%s/messages/%s" % (q, newest["id"]))
    ok = newest["id"] not in state_msgs()
elif action == "duplicate":
    mime = ("Message-ID: %s\r\nSubject: copy\r\nFrom: a@example.com\r\n"
            "Date: Mon, 04 Mar 2024 10:00:00 +0000\r\n\r\nanother copy\r\n" % newest["internetMessageId"])
    call("POST", "/beta/users/%s/mailFolders/%s/importMime" % (q, newest["parentFolderId"]),
         base64.b64encode(mime.encode()), "text/plain", create=True)
    ok = len(state_msgs()) == len(msgs) + 1
else:
    raise SystemExit("graph_admin: unknown action " + action)
print("%s\t%s" % (newest["parentFolderId"], newest["internetMessageId"]))
sys.exit(0 if ok else 1)
