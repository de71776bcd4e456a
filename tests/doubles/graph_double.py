#!/usr/bin/env python3
"""graph_double.py - a Microsoft Graph + Entra token endpoint double for
mailferry's graph sink tests (python3 standard library only).

It behaves as ../shared/docs/cloud-sinks.md describes the real service:
  POST /{tenant}/oauth2/v2.0/token     client credentials -> {access_token, expires_in}
  Bearer tokens expire (--token-ttl); an expired or unknown one -> 401 InvalidAuthenticationToken
  GET  /v1.0/users/{m}/mailFolders/{id}/childFolders   paged (--page) with @odata.nextLink
  POST /v1.0/users/{m}/mailFolders/{id}/childFolders   201, or ErrorFolderExists (409)
  POST /beta/users/{m}/mailFolders/{id}/importMime     base64 MIME -> 201 isDraft:false;
                                                        body > 4 MiB -> 413; bad base64 -> 400
  POST /v1.0/users/{m}/messages                        base64 MIME (text/plain) -> draft in Drafts
  POST /v1.0/users/{m}/mailFolders/{id}/messages       JSON create honouring Integer 0x0E07 etc.;
                                                        text/plain there -> 400 UnableToDeserializePostBody
  POST /v1.0/users/{m}/messages/{id}/attachments       fileAttachment (< 3 MB)
  GET  /v1.0/users/{m}/messages/{id}/attachments       [{id, name, size}] in the order added
  POST .../attachments/createUploadSession             3..150 MB; uploadUrl carries ?authtoken=
  PUT  /upload/{sid}?authtoken=...                     chunks <= 4 MiB, in order, Content-Range
  PATCH /v1.0/users/{m}/messages/{id}                  isRead, flag (0x0E07 changes ignored)
  GET  /v1.0/users/{m}/mailFolders/{id}/messages?$filter=internetMessageId eq '...'
  GET  /v1.0/users/{m}/mailFolders/{id}/messages?$select=a,b&$top=N   all of the folder, paged
                                                        (min($top, --msg-page) a page, @odata.nextLink)
  DELETE /v1.0/users/{m}/messages/{id}                 204 (the message is gone)
  More than 4 requests in flight for one mailbox -> 429 ApplicationThrottled, Retry-After.
  --fail-before N: every Nth create gets 503 (Retry-After: 1) before storing.
  --no-retry-after: 429 and 503 answers carry no Retry-After (the client backs off).
  --expire-early K: every Kth Graph request finds its token expired (401).
  --fail-after M:  every Mth create is stored, then answered 504 (the ambiguous case).
  --fail-attach-after K: every Kth attachment POST or upload chunk PUT is taken,
                   then answered 504 (an attachment or chunk that landed unheard).
  GET /upload/{sid}?authtoken=...                     the session's nextExpectedRanges
  A request whose body is cut short is never acted on (no Content-Length on a
  request with a body -> 411), as with any real HTTP server.
  --tls-cert/--tls-key: HTTPS instead of HTTP.
  GET /_state (no auth): everything, as JSON, for the tests' checks.
"""
import argparse, base64, datetime, email.utils, hashlib, json, re, threading, time, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

A = None
LOCK = threading.RLock()  # send() may run under it (api) and takes it again
S = {"tokens": {}, "issued": 0, "r401": 0, "r429": 0, "r503": 0, "r504": 0, "creates": 0,
     "inflight": {}, "peak": {}, "mailboxes": {}, "uploads": {}, "requests": 0, "seq": 0}
WELL_KNOWN = [("inbox", "Inbox"), ("sentitems", "Sent Items"), ("drafts", "Drafts"),
              ("deleteditems", "Deleted Items"), ("junkemail", "Junk Email"), ("archive", "Archive")]
MAX_BODY = 4 * 1024 * 1024


def nid(prefix):
    S["seq"] += 1
    return "%s-%06d" % (prefix, S["seq"])


def mailbox(m):
    mb = S["mailboxes"].get(m)
    if mb is None:
        mb = {"folders": {"msgfolderroot": {"id": "msgfolderroot", "displayName": "Top", "parent": None}},
              "messages": {}}
        for wk, name in WELL_KNOWN:
            mb["folders"]["wk-" + wk] = {"id": "wk-" + wk, "displayName": name, "parent": "msgfolderroot",
                                         "wellKnown": wk}
        S["mailboxes"][m] = mb
    return mb


def folder_id(mb, fid):
    if fid in mb["folders"]:
        return fid
    for f in mb["folders"].values():
        if f.get("wellKnown") == fid.lower():
            return f["id"]
    return None


def header(mime, name):
    head = mime.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    m = re.search(rb"(?im)^" + name.encode() + rb":[ \t]*(.*(?:\r?\n[ \t].*)*)", head)
    return m.group(1).decode("utf-8", "replace").strip() if m else None


SCHEME = "http"


def sent_iso(date):
    """sentDateTime as Graph gives it for a Date header (UTC), or None."""
    try:
        d = email.utils.parsedate_to_datetime(date) if date else None
    except (TypeError, ValueError):
        d = None
    if d is None:
        return None
    if d.tzinfo is None:
        d = d.replace(tzinfo=datetime.timezone.utc)
    return d.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def RA():
    """The Retry-After header of a 429/503, unless --no-retry-after."""
    return None if A.no_retry_after else {"Retry-After": "1"}


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        if A.verbose:
            super().log_message(fmt, *args)

    def done(self):
        """The request no longer counts as in flight: called before its answer
        is written, so that a client that sends its next request on reading
        the answer is never seen with one request too many."""
        mbx, self.counted = getattr(self, "counted", None), None
        if mbx is not None:
            with LOCK:
                S["inflight"][mbx] -= 1

    def send(self, code, obj=None, headers=None):
        self.done()
        body = b"" if obj is None else json.dumps(obj).encode()
        self.send_response(code)
        rid = "rid-%d" % S["requests"]
        self.send_header("request-id", rid)
        self.send_header("client-request-id", self.headers.get("client-request-id", rid))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def err(self, code, ecode, msg, headers=None):
        self.send(code, {"error": {"code": ecode, "message": msg,
                                   "innerError": {"request-id": "rid-%d" % S["requests"]}}}, headers)

    def body(self):
        """The request body, or None when the request is not whole: like a
        real server, a body cut short (the client or the network went away)
        is never acted on, and a request with a body needs Content-Length."""
        n = self.headers.get("Content-Length")
        if n is None:
            return b"" if self.command in ("GET", "DELETE", "HEAD") else None
        n = int(n)
        data = self.rfile.read(n) if n else b""
        return data if len(data) == n else None

    def do_GET(self): self.route("GET")
    def do_POST(self): self.route("POST")
    def do_PATCH(self): self.route("PATCH")
    def do_PUT(self): self.route("PUT")
    def do_DELETE(self): self.route("DELETE")

    def route(self, method):
        self.counted = None
        with LOCK:
            S["requests"] += 1
        u = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(u.path)
        q = urllib.parse.parse_qs(u.query)
        data = self.body()
        if data is None:
            self.close_connection = True
            if self.headers.get("Content-Length") is None:
                self.err(411, "LengthRequired", "Content-Length is required")
            return
        if path == "/_state":
            with LOCK:
                return self.send(200, {k: v for k, v in S.items() if k not in ("tokens", "uploads")})
        m = re.match(r"^/([^/]+)/oauth2/v2\.0/token$", path)
        if m and method == "POST":
            return self.token(m.group(1), data)
        if path.startswith("/upload/") and method in ("PUT", "GET"):
            return self.upload(path[8:], q, data)
        if coexist_route(self, method, path):  # the coexistence block below
            return
        m = re.match(r"^/(v1\.0|beta)/users/([^/]+)(/.*)$", path)
        if not m:
            return self.err(404, "ResourceNotFound", "no such path " + path)
        ver, mbx, rest = m.groups()
        auth = self.headers.get("Authorization", "")
        with LOCK:
            exp = S["tokens"].get(auth[7:]) if auth.startswith("Bearer ") else None
            if exp is not None and A.expire_early and S["requests"] % A.expire_early == 0:
                S["tokens"][auth[7:]] = exp = 0  # revoked / expired early (clock skew)
            if exp is None or exp < time.time():
                S["r401"] += 1
                bad = True
            else:
                bad = False
                n = S["inflight"].get(mbx, 0) + 1
                S["inflight"][mbx] = n
                S["peak"][mbx] = max(S["peak"].get(mbx, 0), n)
                self.counted = mbx
        if bad:
            return self.err(401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.")
        try:
            with LOCK:
                over = S["inflight"][mbx] > 4
                if over:
                    S["r429"] += 1
            if over:
                return self.err(429, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.",
                                RA())
            if A.latency:
                time.sleep(A.latency / 1000.0)
            with LOCK:
                return self.api(method, ver, mbx, rest, q, data)
        finally:
            self.done()

    def token(self, tenant, data):
        f = urllib.parse.parse_qs(data.decode())
        ok = (f.get("grant_type") == ["client_credentials"] and f.get("client_id") == [A.client_id]
              and f.get("client_secret") == [A.client_secret] and tenant == A.tenant
              and f.get("scope", [""])[0].endswith("/.default"))
        if not ok:
            return self.send(400, {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."})
        with LOCK:
            S["issued"] += 1
            tok = "tok%d.%s" % (S["issued"], hashlib.sha256(str(time.time()).encode()).hexdigest()[:16])
            S["tokens"][tok] = time.time() + A.token_ttl
        return self.send(200, {"token_type": "Bearer", "expires_in": A.token_ttl, "access_token": tok})

    def create_fault(self):
        """Called under LOCK for every create: 'before' (503), 'after' (504) or None."""
        S["creates"] += 1
        n = S["creates"]
        if A.fail_before and n % A.fail_before == 0:
            S["r503"] += 1
            return "before"
        if A.fail_after and n % A.fail_after == 0:
            S["r504"] += 1
            return "after"
        return None

    def attach_fault(self):
        """Called under LOCK for every attachment POST and chunk PUT: True =
        take it, then answer 504."""
        S["attach_ops"] = S.get("attach_ops", 0) + 1
        if A.fail_attach_after and S["attach_ops"] % A.fail_attach_after == 0:
            S["r504"] += 1
            return True
        return False

    def store(self, mb, fid, mime, msg):
        mid = nid("msg")
        msg.update({"id": mid, "parentFolderId": fid, "sha256": hashlib.sha256(mime).hexdigest() if mime else None,
                    "size": len(mime) if mime else 0, "attachments": []})
        mb["messages"][mid] = msg
        return msg

    def public(self, msg):
        return {k: v for k, v in msg.items() if k not in ("attachments",)}

    def api(self, method, ver, mbx, rest, q, data):
        mb = mailbox(mbx)
        m = re.match(r"^/mailFolders/([^/]+)/childFolders$", rest)
        if m:
            fid = folder_id(mb, m.group(1))
            if not fid:
                return self.err(404, "ErrorItemNotFound", "The specified folder could not be found.")
            if method == "GET":
                kids = sorted((f for f in mb["folders"].values() if f["parent"] == fid), key=lambda f: f["id"])
                skip = int(q.get("$skip", ["0"])[0])
                page = kids[skip:skip + A.page]
                out = {"value": [{"id": f["id"], "displayName": f["displayName"], "parentFolderId": fid}
                                 for f in page]}
                if skip + A.page < len(kids):
                    out["@odata.nextLink"] = "%s://127.0.0.1:%d/%s/users/%s/mailFolders/%s/childFolders?$skip=%d" % (SCHEME, 
                        A.port, ver, urllib.parse.quote(mbx), fid, skip + A.page)
                return self.send(200, out)
            if method == "POST":
                name = json.loads(data or b"{}").get("displayName", "")
                if not name:
                    return self.err(400, "ErrorInvalidRequest", "displayName missing")
                for f in mb["folders"].values():
                    if f["parent"] == fid and f["displayName"].lower() == name.lower():
                        return self.err(409, "ErrorFolderExists", "A folder with the specified name already exists.")
                f = {"id": nid("fld"), "displayName": name, "parent": fid}
                mb["folders"][f["id"]] = f
                if A.folder_race:
                    # another client created it a moment earlier
                    return self.err(409, "ErrorFolderExists", "A folder with the specified name already exists.")
                return self.send(201, {"id": f["id"], "displayName": name, "parentFolderId": fid})
        m = re.match(r"^/mailFolders/([^/]+)/importMime$", rest)
        if m and method == "POST" and ver == "beta":
            fid = folder_id(mb, m.group(1))
            if not fid:
                return self.err(404, "ErrorItemNotFound", "The specified folder could not be found.")
            if len(data) > MAX_BODY:
                return self.err(413, "RequestBodyTooLarge", "The request body exceeds 4 MB.")
            try:
                mime = base64.b64decode(data, validate=True)
            except Exception:
                return self.err(400, "ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content.")
            fault = self.create_fault()
            if fault == "before":
                return self.err(503, "ServiceUnavailable", "try later", RA())
            msg = self.store(mb, fid, mime, {"isDraft": False, "isRead": False, "flag": {"flagStatus": "notFlagged"},
                                            "internetMessageId": header(mime, "Message-ID"),
                                            "sentDateTime": sent_iso(header(mime, "Date")),
                                            "subject": header(mime, "Subject"), "via": "importMime"})
            if fault == "after":
                return self.err(504, "GatewayTimeout", "gateway timeout")
            return self.send(201, self.public(msg))
        m = re.match(r"^/messages$", rest)
        if m and method == "POST":
            if "text/plain" not in (self.headers.get("Content-Type") or ""):
                return self.err(400, "ErrorInvalidRequest", "only MIME here in this double")
            mime = base64.b64decode(data)
            msg = self.store(mb, folder_id(mb, "drafts"), mime, {"isDraft": True, "isRead": True,
                             "internetMessageId": header(mime, "Message-ID"), "via": "mime-create"})
            return self.send(201, self.public(msg))
        m = re.match(r"^/mailFolders/([^/]+)/messages$", rest)
        if m and method == "POST":
            fid = folder_id(mb, m.group(1))
            if not fid:
                return self.err(404, "ErrorItemNotFound", "The specified folder could not be found.")
            if "application/json" not in (self.headers.get("Content-Type") or ""):
                return self.err(400, "UnableToDeserializePostBody", "were unable to deserialize")
            if len(data) > MAX_BODY:
                return self.err(413, "RequestBodyTooLarge", "The request body exceeds 4 MB.")
            j = json.loads(data)
            props = {p["id"]: p["value"] for p in j.get("singleValueExtendedProperties", [])}
            fault = self.create_fault()
            if fault == "before":
                return self.err(503, "ServiceUnavailable", "try later", RA())
            msg = self.store(mb, fid, None, {
                "isDraft": str(props.get("Integer 0x0E07", "8")) != "1", "isRead": bool(j.get("isRead", False)),
                "flag": j.get("flag", {"flagStatus": "notFlagged"}), "internetMessageId": j.get("internetMessageId"),
                "subject": j.get("subject"), "receivedDateTime": props.get("SystemTime 0x0E06"),
                "sentDateTime": props.get("SystemTime 0x0039"), "body": j.get("body"),
                "from": j.get("from"), "toRecipients": j.get("toRecipients"), "via": "json"})
            if fault == "after":
                return self.err(504, "GatewayTimeout", "gateway timeout")
            return self.send(201, self.public(msg))
        m = re.match(r"^/mailFolders/([^/]+)/messages$", rest)
        if m and method == "GET":
            fid = folder_id(mb, m.group(1))
            if not fid:
                return self.err(404, "ErrorItemNotFound", "The specified folder could not be found.")
            flt = q.get("$filter", [""])[0]
            if not flt:
                return self.list_messages(ver, mbx, mb, fid, q)
            fm = re.match(r"^internetMessageId eq '((?:[^']|'')*)'$", flt)
            if not fm:
                return self.err(400, "BadRequest", "unsupported filter")
            want = fm.group(1).replace("''", "'")
            vals = [{"id": x["id"], "sentDateTime": x.get("sentDateTime")}
                    for x in sorted(mb["messages"].values(), key=lambda x: x["id"])
                    if x["parentFolderId"] == fid and x["internetMessageId"] == want]
            return self.send(200, {"value": vals})
        m = re.match(r"^/messages/([^/]+)$", rest)
        if m and method == "DELETE":
            if not mb["messages"].pop(m.group(1), None):
                return self.err(404, "ErrorItemNotFound", "The specified object was not found in the store.")
            return self.send(204)
        if m and method == "PATCH":
            msg = mb["messages"].get(m.group(1))
            if not msg:
                return self.err(404, "ErrorItemNotFound", "The specified object was not found in the store.")
            j = json.loads(data or b"{}")
            for k in ("isRead", "flag", "categories"):
                if k in j:
                    msg[k] = j[k]
            return self.send(200, self.public(msg))
        m = re.match(r"^/messages/([^/]+)/attachments$", rest)
        if m and method == "POST":
            msg = mb["messages"].get(m.group(1))
            if not msg:
                return self.err(404, "ErrorItemNotFound", "not found")
            if len(data) > MAX_BODY:
                return self.err(413, "RequestBodyTooLarge", "The request body exceeds 4 MB.")
            j = json.loads(data)
            raw = base64.b64decode(j.get("contentBytes", ""))
            msg["attachments"].append({"name": j.get("name"), "size": len(raw),
                                       "sha256": hashlib.sha256(raw).hexdigest()})
            if self.attach_fault():
                return self.err(504, "GatewayTimeout", "gateway timeout")
            return self.send(201, {"id": nid("att"), "name": j.get("name")})
        if m and method == "GET":
            msg = mb["messages"].get(m.group(1))
            if not msg:
                return self.err(404, "ErrorItemNotFound", "not found")
            return self.send(200, {"value": [{"id": "att-%d" % i, "name": a["name"], "size": a["size"]}
                                             for i, a in enumerate(msg["attachments"])]})
        m = re.match(r"^/messages/([^/]+)/attachments/createUploadSession$", rest)
        if m and method == "POST":
            msg = mb["messages"].get(m.group(1))
            if not msg:
                return self.err(404, "ErrorItemNotFound", "not found")
            it = json.loads(data).get("AttachmentItem", {})
            size = int(it.get("size", 0))
            if size < 3 * 1024 * 1024:
                return self.err(400, "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize", "too small")
            if size > 150 * 1024 * 1024:
                return self.err(413, "ErrorMessageSizeExceeded", "too big")
            sid = nid("up")
            S["uploads"][sid] = {"mbx": mbx, "msg": m.group(1), "name": it.get("name"), "size": size,
                                 "got": 0, "h": hashlib.sha256(), "secret": hashlib.sha256(sid.encode()).hexdigest()}
            return self.send(201, {"uploadUrl": "%s://127.0.0.1:%d/upload/%s?authtoken=%s" % (SCHEME, 
                A.port, sid, S["uploads"][sid]["secret"]), "nextExpectedRanges": ["0-"]})
        return self.err(404, "ResourceNotFound", "no route %s %s" % (method, rest))

    def list_messages(self, ver, mbx, mb, fid, q):
        """All messages of a folder, oldest first, paged like Graph: server-driven
        pages of at most min($top, --msg-page), @odata.nextLink carrying $skip."""
        sel = [f for f in q.get("$select", [""])[0].split(",") if f]
        top = int(q.get("$top", ["10"])[0])
        skip = int(q.get("$skip", ["0"])[0])
        if top < 1 or top > 1000 or skip < 0:
            return self.err(400, "ErrorInvalidUrlQuery", "bad $top or $skip")
        n = min(top, A.msg_page)
        msgs = sorted((x for x in mb["messages"].values() if x["parentFolderId"] == fid), key=lambda x: x["id"])
        page = msgs[skip:skip + n]
        out = {"value": [{k: v for k, v in self.public(x).items() if not sel or k in sel or k == "id"}
                         for x in page]}
        if skip + n < len(msgs):
            out["@odata.nextLink"] = "%s://127.0.0.1:%d/%s/users/%s/mailFolders/%s/messages?%s" % (SCHEME, 
                A.port, ver, urllib.parse.quote(mbx), fid, urllib.parse.urlencode(
                    {"$select": ",".join(sel), "$top": top, "$skip": skip + n}))
        return self.send(200, out)

    def upload(self, sid, q, data):
        with LOCK:
            up = S["uploads"].get(sid)
            if not up or q.get("authtoken", [""])[0] != up["secret"]:
                return self.err(401, "InvalidAuthenticationToken", "bad upload token")
            if self.headers.get("Authorization"):
                return self.err(400, "BadRequest", "upload URLs take no Authorization header")
            if self.command == "GET":
                return self.send(200, {"nextExpectedRanges": ["%d-" % up["got"]]})
            cr = re.match(r"^bytes (\d+)-(\d+)/(\d+)$", self.headers.get("Content-Range", ""))
            if not cr or int(cr.group(1)) != up["got"] or int(cr.group(3)) != up["size"]:
                return self.err(416, "InvalidRange", "expected %d" % up["got"])
            if len(data) > 4 * 1024 * 1024 or int(cr.group(2)) - int(cr.group(1)) + 1 != len(data):
                return self.err(413, "RequestBodyTooLarge", "chunk too big or wrong length")
            up["h"].update(data)
            up["got"] += len(data)
            lost = self.attach_fault()
            if up["got"] < up["size"]:
                if lost:
                    return self.err(504, "GatewayTimeout", "gateway timeout")
                return self.send(200, {"nextExpectedRanges": ["%d-" % up["got"]]})
            msg = S["mailboxes"][up["mbx"]]["messages"][up["msg"]]
            msg["attachments"].append({"name": up["name"], "size": up["size"], "sha256": up["h"].hexdigest()})
            del S["uploads"][sid]
            if lost:
                return self.err(504, "GatewayTimeout", "gateway timeout")
            return self.send(201, None, {"Location": "http://127.0.0.1/attachments/" + sid})


# --- coexistence pre-flight (mailferry coexist; tests/integration/coexist.sh) ---
# Only when MF_GRAPH_DOUBLE_TENANT names a JSON file
#   {"domains": [{"id": "contoso.com", "isVerified": true}, ...],
#    "users": {"ann@contoso.com": "mailbox", "bob@contoso.com": "unlicensed"}}
#   GET /v1.0/domains                     {"value": domains}, one per page (@odata.nextLink)
#   GET /v1.0/users/{m}                   {"id": m} when listed, else 404 Request_ResourceNotFound
#   GET /v1.0/users/{m}/mailboxSettings   200 "mailbox"; 404 MailboxNotEnabledForRESTAPI
#                                         "unlicensed"; 404 Request_ResourceNotFound unlisted
# Without it nothing here answers and the double behaves as before.
def coexist_route(h, method, path):
    import os
    f = os.environ.get("MF_GRAPH_DOUBLE_TENANT")
    if not f or method != "GET":
        return False
    m = re.match(r"^/v1\.0/(domains|users/([^/]+)(/mailboxSettings)?)$", path)
    if not m:
        return False
    with open(f, encoding="utf-8") as fh:
        t = json.load(fh)
    auth = h.headers.get("Authorization", "")
    with LOCK:
        exp = S["tokens"].get(auth[7:]) if auth.startswith("Bearer ") else None
        S.setdefault("coexist_requests", []).append(path)
    if exp is None or exp < time.time():
        h.err(401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.")
        return True
    if m.group(1) == "domains":
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(h.path).query)
        i = int(q.get("$skiptoken", ["0"])[0])
        out = {"value": t["domains"][i:i + 1]}
        if i + 1 < len(t["domains"]):
            out["@odata.nextLink"] = "%s://127.0.0.1:%d/v1.0/domains?$skiptoken=%d" % (SCHEME, A.port, i + 1)
        h.send(200, out)
        return True
    users = {k.lower(): v for k, v in t["users"].items()}
    state = users.get(m.group(2).lower())
    if state is None:
        h.err(404, "Request_ResourceNotFound", "Resource '%s' does not exist" % m.group(2))
    elif not m.group(3):
        h.send(200, {"id": m.group(2)})
    elif state == "unlicensed":
        h.err(404, "MailboxNotEnabledForRESTAPI", "The mailbox is either inactive, soft-deleted, or is hosted on-premise.")
    else:
        h.send(200, {"timeZone": "UTC"})
    return True


def main():
    global A
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=4570)
    p.add_argument("--tenant", default="contoso.onmicrosoft.com")
    p.add_argument("--client-id", default="client-1")
    p.add_argument("--client-secret", default="s3cr3t-Value~1")
    p.add_argument("--token-ttl", type=int, default=3599)
    p.add_argument("--page", type=int, default=2)
    p.add_argument("--msg-page", type=int, default=3, help="most messages in one listing page")
    p.add_argument("--latency", type=int, default=0, help="ms per Graph request")
    p.add_argument("--fail-before", type=int, default=0)
    p.add_argument("--fail-after", type=int, default=0)
    p.add_argument("--no-retry-after", action="store_true", help="429/503 without Retry-After")
    p.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate (and --tls-key)")
    p.add_argument("--tls-key")
    p.add_argument("--fail-attach-after", type=int, default=0)
    p.add_argument("--expire-early", type=int, default=0, help="every Nth request expires its token")
    p.add_argument("--folder-race", action="store_true")
    p.add_argument("--verbose", action="store_true")
    A = p.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", A.port), H)
    srv.daemon_threads = True
    if A.tls_cert:
        import ssl
        global SCHEME
        SCHEME = "https"
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(A.tls_cert, A.tls_key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
