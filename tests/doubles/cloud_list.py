#!/usr/bin/env python3
"""cloud_list.py KIND ... - print one line per stored message, for tests.
  azure URL_CONTAINER ACCOUNT KEY   blob names (Shared Key signed List Blobs)
  s3 URL_BUCKET                     object keys (s3rver does not check signatures)
  graph PORT                        "mailbox<TAB>folder<TAB>internetMessageId<TAB>content" from
                                    the Graph double; content = sha256 of the imported MIME, or
                                    for a JSON-made message of its subject, body and attachments
"""
import base64, hashlib, hmac, json, re, sys, urllib.parse, urllib.request
from email.utils import formatdate

def azure(url, account, key):
    u = urllib.parse.urlsplit(url)
    marker = ""
    while True:
        q = {"comp": "list", "restype": "container"}
        if marker:
            q["marker"] = marker
        date = formatdate(usegmt=True)
        canon_h = "x-ms-date:%s\nx-ms-version:2025-11-05\n" % date
        canon_r = "/%s%s" % (account, u.path) + "".join("\n%s:%s" % (k, q[k]) for k in sorted(q))
        sts = "GET\n\n\n\n\n\n\n\n\n\n\n\n" + canon_h + canon_r
        sig = base64.b64encode(hmac.new(base64.b64decode(key), sts.encode(), hashlib.sha256).digest()).decode()
        req = urllib.request.Request(url + "?" + urllib.parse.urlencode(q), headers={
            "x-ms-date": date, "x-ms-version": "2025-11-05", "Authorization": "SharedKey %s:%s" % (account, sig)})
        body = urllib.request.urlopen(req).read().decode()
        for n in re.findall(r"<Name>(.*?)</Name>", body):
            print(n)
        m = re.search(r"<NextMarker>(.+?)</NextMarker>", body)
        if not m:
            break
        marker = m.group(1)

def s3(url):
    marker = ""
    while True:
        q = "?marker=" + urllib.parse.quote(marker, safe="") if marker else ""
        req = urllib.request.Request(url + q, headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
        body = urllib.request.urlopen(req).read().decode()
        keys = re.findall(r"<Key>(.*?)</Key>", body)
        for k in keys:
            print(k)
        if "<IsTruncated>true</IsTruncated>" not in body or not keys:
            break
        marker = keys[-1]

def graph(port):
    s = json.load(urllib.request.urlopen("http://127.0.0.1:%s/_state" % port))
    for mbx, mb in sorted(s["mailboxes"].items()):
        for m in mb["messages"].values():
            if m.get("sha256"):
                content = m["sha256"]
            else:
                parts = [m.get("subject") or "", json.dumps(m.get("body"), sort_keys=True)]
                parts += ["%s:%s:%s" % (a["name"], a["size"], a["sha256"]) for a in m.get("attachments", [])]
                content = hashlib.sha256("\n".join(parts).encode()).hexdigest()
            print("%s\t%s\t%s\t%s" % (mbx, m["parentFolderId"], m["internetMessageId"], content))

if __name__ == "__main__":
    {"azure": azure, "s3": s3, "graph": graph}[sys.argv[1]](*sys.argv[2:])
