#!/usr/bin/env python3
"""cloud_list.py KIND ... - print one line per stored message, for tests.
  azure URL_CONTAINER ACCOUNT KEY   blob names (Shared Key signed List Blobs)
  s3 URL_BUCKET                     object keys (s3rver does not check signatures)
  graph PORT                        "mailbox<TAB>folder<TAB>internetMessageId<TAB>content" from
                                    the Graph double; content = sha256 of the imported MIME, or
                                    for a JSON-made message of its subject, body and attachments
With what each message is (the kill tests), sorted, STRIP removed from the front of names:
  azure-full URL_ACCOUNT ACCOUNT KEY CONTAINER [STRIP]  name, flags, idate, sha256 of the content
  s3-full URL_BUCKET PREFIX [STRIP]                     key, flags, idate, sha256 of the content
  graph-full PORT [STRIP]                               mailbox, folder path, Message-ID, sha256,
                                                        isRead, flag, isDraft
The whole store, to see that nothing changed (verify_readonly.sh), sorted:
  azure-tree URL_ACCOUNT ACCOUNT KEY   every container and blob: name, size, Last-Modified, ETag
  s3-tree URL                          every bucket and object: name, size, LastModified, ETag
  azure-delete URL_ACCOUNT ACCOUNT KEY CONTAINER/BLOB   delete one blob
"""
import base64, hashlib, hmac, json, re, sys, urllib.parse, urllib.request
from email.utils import formatdate

def sha(b):
    return hashlib.sha256(b).hexdigest()

def az_req(url, account, key, path, q, method="GET"):
    """A Shared Key signed GET (or `method`) of `path` (already URL-encoded)
    with query q."""
    date = formatdate(usegmt=True)
    canon_h = "x-ms-date:%s\nx-ms-version:2025-11-05\n" % date
    canon_r = "/%s%s" % (account, path) + "".join("\n%s:%s" % (k, q[k]) for k in sorted(q))
    sts = method + "\n\n\n\n\n\n\n\n\n\n\n\n" + canon_h + canon_r
    sig = base64.b64encode(hmac.new(base64.b64decode(key), sts.encode(), hashlib.sha256).digest()).decode()
    full = url + path + ("?" + urllib.parse.urlencode(q) if q else "")
    return urllib.request.urlopen(urllib.request.Request(full, method=method, headers={
        "x-ms-date": date, "x-ms-version": "2025-11-05",
        "Authorization": "SharedKey %s:%s" % (account, sig)})).read()

def unxml(v):
    return v.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"') \
            .replace("&apos;", "'").replace("&amp;", "&")

def tag(body, t):
    m = re.search(r"<%s>(.*?)</%s>" % (t, t), body, re.S)
    return unxml(m.group(1)) if m else "-"

def azure_tree(url, account, key):
    """Every container (name/, Last-Modified, ETag) and every blob in it
    (container/name, size, Last-Modified, ETag)."""
    u = urllib.parse.urlsplit(url)
    host, base = "%s://%s" % (u.scheme, u.netloc), u.path.rstrip("/")
    out, marker = [], ""
    while True:
        q = {"comp": "list"}
        if marker:
            q["marker"] = marker
        body = az_req(host, account, key, base + "/", q).decode()
        for c in re.findall(r"<Container>(.*?)</Container>", body, re.S):
            name = tag(c, "Name")
            out.append("%s/\t-\t%s\t%s" % (name, tag(c, "Last-Modified"), tag(c, "Etag")))
            bm = ""
            while True:
                bq = {"comp": "list", "restype": "container"}
                if bm:
                    bq["marker"] = bm
                bb = az_req(host, account, key, "%s/%s" % (base, urllib.parse.quote(name)), bq).decode()
                for b in re.findall(r"<Blob>(.*?)</Blob>", bb, re.S):
                    out.append("%s/%s\t%s\t%s\t%s" % (name, tag(b, "Name"), tag(b, "Content-Length"),
                                                    tag(b, "Last-Modified"), tag(b, "Etag")))
                m = re.search(r"<NextMarker>(.+?)</NextMarker>", bb)
                if not m:
                    break
                bm = m.group(1)
        m = re.search(r"<NextMarker>(.+?)</NextMarker>", body)
        if not m:
            return out
        marker = m.group(1)

def azure_delete(url, account, key, name):
    u = urllib.parse.urlsplit(url)
    host, base = "%s://%s" % (u.scheme, u.netloc), u.path.rstrip("/")
    az_req(host, account, key, base + "/" + urllib.parse.quote(name, safe="/@"), {}, "DELETE")
    return []

def s3_tree(url):
    """Every bucket (name/, CreationDate) and every object in it
    (bucket/key, size, LastModified, ETag); s3rver does not check signatures."""
    h = {"x-amz-content-sha256": "UNSIGNED-PAYLOAD"}
    body = urllib.request.urlopen(urllib.request.Request(url + "/", headers=h)).read().decode()
    out = []
    for b in re.findall(r"<Bucket>(.*?)</Bucket>", body, re.S):
        name = tag(b, "Name")
        out.append("%s/\t-\t%s\t-" % (name, tag(b, "CreationDate")))
        marker = ""
        while True:
            q = "?marker=" + urllib.parse.quote(marker, safe="") if marker else ""
            lb = urllib.request.urlopen(urllib.request.Request(
                url + "/" + urllib.parse.quote(name) + q, headers=h)).read().decode()
            objs = re.findall(r"<Contents>(.*?)</Contents>", lb, re.S)
            for o in objs:
                out.append("%s/%s\t%s\t%s\t%s" % (name, tag(o, "Key"), tag(o, "Size"),
                                                tag(o, "LastModified"), tag(o, "ETag")))
            if "<IsTruncated>true</IsTruncated>" not in lb or not objs:
                break
            marker = tag(objs[-1], "Key")
    return out

def azure_full(host, account, key, container, strip=""):
    """name, flags, idate, sha256 of the content: from List Blobs (with
    metadata) and a download of every blob."""
    marker, out = "", []
    while True:
        q = {"comp": "list", "restype": "container", "include": "metadata"}
        if marker:
            q["marker"] = marker
        try:
            body = az_req(host, account, key, "/%s/%s" % (account, container), q).decode()
        except urllib.error.HTTPError as e:
            if e.code == 404:   # no container: nothing stored
                return out
            raise
        for b in re.findall(r"<Blob>(.*?)</Blob>", body, re.S):
            name = re.search(r"<Name>(.*?)</Name>", b, re.S).group(1)
            name = name.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"') \
                       .replace("&apos;", "'").replace("&amp;", "&")
            mm = re.search(r"<Metadata>(.*?)</Metadata>", b, re.S)
            meta = dict(re.findall(r"<(\w+)>([^<]*)</\1>", mm.group(1))) if mm else {}
            data = az_req(host, account, key, "/%s/%s/%s" % (account, container,
                          urllib.parse.quote(name, safe="/@")), {})
            n = name[len(strip):] if name.startswith(strip) else name
            out.append("%s\t%s\t%s\t%s" % (n, meta.get("flags", "?"), meta.get("idate", "?"), sha(data)))
        m = re.search(r"<NextMarker>(.+?)</NextMarker>", body)
        if not m:
            return out
        marker = m.group(1)

def s3_full(bucket_url, prefix, strip=""):
    """key, flags, idate, sha256 of the content (s3rver does not check
    signatures)."""
    marker, out = "", []
    while True:
        q = "?prefix=" + urllib.parse.quote(prefix, safe="")
        if marker:
            q += "&marker=" + urllib.parse.quote(marker, safe="")
        h = {"x-amz-content-sha256": "UNSIGNED-PAYLOAD"}
        body = urllib.request.urlopen(urllib.request.Request(bucket_url + q, headers=h)).read().decode()
        keys = [k.replace("&amp;", "&") for k in re.findall(r"<Key>(.*?)</Key>", body)]
        for k in keys:
            r = urllib.request.urlopen(urllib.request.Request(
                bucket_url + "/" + urllib.parse.quote(k, safe="/@"), headers=h))
            data = r.read()
            n = k[len(strip):] if k.startswith(strip) else k
            out.append("%s\t%s\t%s\t%s" % (n, r.headers.get("x-amz-meta-flags", "?"),
                                           r.headers.get("x-amz-meta-idate", "?"), sha(data)))
        if "<IsTruncated>true</IsTruncated>" not in body or not keys:
            return out
        marker = keys[-1]

def folder_path(mb, fid):
    """A Graph double mailbox's folder id as its display path (ids differ
    between runs)."""
    p = []
    while fid and fid != "msgfolderroot":
        f = mb["folders"][fid]
        p.append(f["displayName"])
        fid = f["parent"]
    return "/".join(reversed(p))

def graph_full(port, strip=""):
    """mailbox, folder path, internetMessageId, sha256, isRead, flag, isDraft
    from the double's /_state (folder ids differ between runs: paths)."""
    s = json.load(urllib.request.urlopen("http://127.0.0.1:%s/_state" % port))
    out = []
    for mbx, mb in s["mailboxes"].items():
        if not mbx.startswith(strip):
            continue
        for m in mb["messages"].values():
            out.append("%s\t%s\t%s\t%s\tread=%d\t%s\tdraft=%d" % (
                mbx[len(strip):], folder_path(mb, m["parentFolderId"]), m["internetMessageId"], m.get("sha256") or "-",
                m["isRead"], m["flag"]["flagStatus"], m["isDraft"]))
    return out

def azure(url, account, key):
    u = urllib.parse.urlsplit(url)
    host = "%s://%s" % (u.scheme, u.netloc)
    marker = ""
    while True:
        q = {"comp": "list", "restype": "container"}
        if marker:
            q["marker"] = marker
        body = az_req(host, account, key, u.path, q).decode()
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

def print_full(lines):
    sys.stdout.buffer.write("".join(l + "\n" for l in sorted(lines)).encode())

if __name__ == "__main__":
    full = {"azure-full": azure_full, "s3-full": s3_full, "graph-full": graph_full,
            "azure-tree": azure_tree, "s3-tree": s3_tree, "azure-delete": azure_delete}
    if sys.argv[1] in full:
        print_full(full[sys.argv[1]](*sys.argv[2:]))
    else:
        {"azure": azure, "s3": s3, "graph": graph}[sys.argv[1]](*sys.argv[2:])
