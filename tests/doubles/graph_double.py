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

As strict as the service (rules from Microsoft's docs; property names and enum
values from graph_schema.json, extracted from msgraph-metadata's CSDL):
  A wrong Content-Type -> 415 (importMime wants text/plain, JSON bodies
  application/json). An unknown property or enum value in a JSON body ->
  400 RequestBodyRead, as Graph's OData reader answers. Tokens are JWT-shaped
  and carry the app's roles: importMime needs Mail-Advanced.ReadWrite.All
  (--no-advanced-role: 403 ErrorAccessDenied); --sovereign: no beta, no
  importMime (400 "Resource not found for the segment"). --locale de: the
  well-known folders have German display names. Upload sessions: 3 MB
  minimum, chunks under 4 MB and multiples of 320 KiB (the last excepted);
  --mb decimal|binary picks the reading of "MB" (default binary: 3 MiB
  minimum, chunks < 4 MiB; decimal: 3,000,000 and < 4,000,000).
  Budgets per mailbox: 4 in flight, --req-budget requests per --req-window
  seconds (10,000 / 600), --upload-budget bytes per --upload-window seconds
  (150,000,000 / 300); over one -> 429 with Retry-After, and until that time
  every request of the mailbox gets 429 (counted in ra_ignored).
  --fail-get / --fail-patch / --fail-delete N: every Nth such request 503s;
  --fault-509 N: every Nth create gets 509. --sent-skew S: importMime's
  sentDateTime is S seconds off the Date header (Exchange reading it its own
  way). --max-message-mb M: messages (with attachments) over M MB -> 413
  ErrorMessageSizeExceeded. --count-until-written: a request stays in flight
  until its answer is written. --no-such-mailbox M: /users/M/... -> 404.
"""
import argparse, base64, datetime, email.header, email.utils, hashlib, json, os, re, threading, time, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

A = None
LOCK = threading.RLock()  # send() may run under it (api) and takes it again
S = {"tokens": {}, "issued": 0, "r401": 0, "r429": 0, "r503": 0, "r504": 0, "r509": 0, "creates": 0,
     "inflight": {}, "peak": {}, "mailboxes": {}, "uploads": {}, "requests": 0, "seq": 0,
     "r400": 0, "r403": 0, "r415": 0, "ra_ignored": 0, "budget": {}, "ops": {}}
SCHEMA = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "graph_schema.json")))
GERMAN = {"inbox": "Posteingang", "sentitems": "Gesendete Elemente", "drafts": "Entw\u00fcrfe",
          "deleteditems": "Gel\u00f6schte Elemente", "junkemail": "Junk-E-Mail", "archive": "Archiv"}
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
            if A.locale == "de":
                name = GERMAN[wk]
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


def decode_subject(v):
    """The subject as Graph shows it: encoded words decoded."""
    try:
        return str(email.header.make_header(email.header.decode_header(v))) if v else v
    except Exception:
        return v


def sent_iso(date, skew=0):
    """sentDateTime as Graph gives it for a Date header (UTC), or None."""
    try:
        d = email.utils.parsedate_to_datetime(date) if date else None
    except (TypeError, ValueError):
        d = None
    if d is None:
        return None
    if d.tzinfo is None:
        d = d.replace(tzinfo=datetime.timezone.utc)
    d = d + datetime.timedelta(seconds=skew)
    return d.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def mb_unit():
    return 1000000 if A.mb == "decimal" else 1048576


KIB320 = 320 * 1024


class Reject(Exception):
    """A request body Graph's OData reader refuses: 400 RequestBodyRead."""


def check_obj(obj, tname, where):
    """Every key of obj must be a property of the CSDL type tname (annotations
    "@odata.*" aside); nested values are checked by their types."""
    if not isinstance(obj, dict):
        raise Reject("%s: an object of type microsoft.graph.%s was expected" % (where, tname))
    props = SCHEMA["types"][tname]
    for k, v in obj.items():
        if k.startswith("@odata."):
            continue
        if k not in props:
            raise Reject("The property '%s' does not exist on type 'microsoft.graph.%s'. Make sure to "
                         "only use property names that are defined by the type or mark the type as "
                         "open type." % (k, tname))
        sub = {"flag": "followupFlag", "body": "itemBody", "from": "recipient", "sender": "recipient",
               "emailAddress": "emailAddress", "dueDateTime": "dateTimeTimeZone",
               "startDateTime": "dateTimeTimeZone", "completedDateTime": "dateTimeTimeZone"}.get(k)
        if k in ("toRecipients", "ccRecipients", "bccRecipients", "replyTo"):
            for r in v or []:
                check_obj(r, "recipient", k)
        elif sub and v is not None:
            check_obj(v, sub, k)
        enum = {"flagStatus": "followupFlagStatus", "importance": "importance",
                "inferenceClassification": "inferenceClassificationType",
                "attachmentType": "attachmentType"}.get(k)
        if tname == "itemBody" and k == "contentType":
            enum = "bodyType"
        if enum and v not in SCHEMA["enums"][enum]:
            raise Reject("Requested value '%s' was not found." % v)
        if k == "singleValueExtendedProperties":
            for e in v:
                if set(e) - {"id", "value"}:
                    raise Reject("singleValueLegacyExtendedProperty takes id and value only")


def jwt(roles, exp):
    """A token shaped like Entra's (header.payload.signature, base64url)."""
    def b64(o):
        return base64.urlsafe_b64encode(json.dumps(o).encode()).rstrip(b"=").decode()
    sig = hashlib.sha256(str(time.time()).encode() + os.urandom(8)).hexdigest()[:32]
    return "%s.%s.%s" % (b64({"typ": "JWT", "alg": "RS256"}),
                         b64({"aud": "https://graph.microsoft.com", "roles": roles, "exp": int(exp),
                              "iss": "https://sts.windows.net/" + A.tenant + "/"}), sig)


def budget_over(mbx, nbytes):
    """Charge one request of nbytes to the mailbox's budgets (under LOCK):
    None, or how many seconds to wait when one is spent."""
    now = time.time()
    b = S["budget"].setdefault(mbx, {"req": [], "up": []})
    b["req"] = [t for t in b["req"] if t > now - A.req_window]
    b["up"] = [(t, n) for t, n in b["up"] if t > now - A.upload_window]
    if len(b["req"]) + 1 > A.req_budget:
        return max(1, int(b["req"][0] + A.req_window - now + 1))
    if nbytes and sum(n for _, n in b["up"]) + nbytes > A.upload_budget:
        return max(1, int(b["up"][0][0] + A.upload_window - now + 1)) if b["up"] else A.upload_window
    b["req"].append(now)
    if nbytes:
        b["up"].append((now, nbytes))
    return None


def op_fault(kind):
    """Every Nth GET / PATCH / DELETE (--fail-get etc.) fails with 503."""
    n = {"GET": A.fail_get, "PATCH": A.fail_patch, "DELETE": A.fail_delete}.get(kind, 0)
    if not n:
        return False
    S["ops"][kind] = S["ops"].get(kind, 0) + 1
    if S["ops"][kind] % n == 0:
        S["r503"] += 1
        return True
    return False


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
        if not A.count_until_written:
            self.done()
        if code in (400, 403, 415):
            S["r%d" % code] += 1
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
                wait = None
                until = S.setdefault("ra_until", {}).get(mbx, 0)
                if not over and until > time.time():
                    # a mailbox-wide Retry-After not waited for
                    S["ra_ignored"] += 1
                    wait = max(1, int(until - time.time() + 0.999))
                elif not over:
                    wait = budget_over(mbx, len(data) if method in ("POST", "PUT", "PATCH") else 0)
                    if wait:
                        S["ra_until"][mbx] = time.time() + wait
                if over or wait:
                    S["r429"] += 1
            if over:
                return self.err(429, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.",
                                RA())
            if wait:
                return self.err(429, "ApplicationThrottled", "Application is over its MailboxRequests or "
                                "upload limit.", None if A.no_retry_after else {"Retry-After": str(wait)})
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            want = None
            if method in ("POST", "PATCH"):
                want = "text/plain" if rest.endswith("/importMime") or rest == "/messages" and ctype == "text/plain" \
                    else "application/json"
            if want and data and ctype != want:
                return self.err(415, "UnsupportedMediaType", "Content-Type %r is not supported here; %s is "
                                "expected." % (ctype, want))
            if mbx in A.no_such_mailbox:
                return self.err(404, "ErrorInvalidUser", "The requested user '%s' is invalid." % mbx)
            with LOCK:
                faulty = op_fault(method)
            if faulty:
                return self.err(503, "ServiceUnavailable", "try later", RA())
            if A.latency:
                time.sleep(A.latency / 1000.0)
            with LOCK:
                try:
                    return self.api(method, ver, mbx, rest, q, data)
                except Reject as e:
                    return self.err(400, "RequestBodyRead", str(e))
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
            roles = ["Mail.ReadWrite"] + ([] if A.no_advanced_role else ["Mail-Advanced.ReadWrite.All"])
            tok = jwt(roles, time.time() + A.token_ttl)
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
        if A.fault_509 and n % A.fault_509 == 0:
            S["r509"] += 1
            return "509"
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

    def too_big(self, msg, add):
        """Would the message with `add` more attachment bytes be over the
        mailbox's message size limit (--max-message-mb)?"""
        have = sum(a["size"] for a in msg["attachments"]) + len(json.dumps(msg.get("body") or ""))
        return have + add > A.max_message_mb * 1000000

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
                j = json.loads(data or b"{}")
                check_obj(j, "mailFolder", "mailFolder")
                name = j.get("displayName", "")
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
        m = re.match(r"^/mailFolders/([^/]+)$", rest)
        if m and method == "GET":
            fid = folder_id(mb, m.group(1))
            if not fid:
                return self.err(404, "ErrorItemNotFound", "The specified folder could not be found.")
            f = mb["folders"][fid]
            return self.send(200, {"id": fid, "displayName": f["displayName"], "parentFolderId": f["parent"]})
        m = re.match(r"^/mailFolders/([^/]+)/importMime$", rest)
        if m and method == "POST" and ver == "beta" and A.sovereign:
            return self.err(400, "BadRequest", "Resource not found for the segment 'importMime'.")
        if m and method == "POST" and ver == "beta":
            if A.no_advanced_role:
                return self.err(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
            fid = folder_id(mb, m.group(1))
            if not fid:
                return self.err(404, "ErrorItemNotFound", "The specified folder could not be found.")
            if len(data) > MAX_BODY:
                return self.err(413, "RequestBodyTooLarge", "The request body exceeds 4 MB.")
            try:
                mime = base64.b64decode(data, validate=True)
            except Exception:
                mime = b""
            if not mime:
                return self.err(400, "ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content.")
            fault = self.create_fault()
            if fault == "before":
                return self.err(503, "ServiceUnavailable", "try later", RA())
            if fault == "509":
                return self.err(509, "BandwidthLimitExceeded", "bandwidth limit exceeded", RA())
            msg = self.store(mb, fid, mime, {"isDraft": False, "isRead": False, "flag": {"flagStatus": "notFlagged"},
                                            "internetMessageId": header(mime, "Message-ID"),
                                            "sentDateTime": sent_iso(header(mime, "Date"), A.sent_skew),
                                            "subject": decode_subject(header(mime, "Subject")),
                                            "via": "importMime"})
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
            if len(data) > MAX_BODY:
                return self.err(413, "RequestBodyTooLarge", "The request body exceeds 4 MB.")
            j = json.loads(data)
            check_obj(j, "message", "message")
            props = {p["id"]: p["value"] for p in j.get("singleValueExtendedProperties", [])}
            # Exchange reads PR_MESSAGE_FLAGS (0x0E07): 0x1 read, 0x8 unsent
            # (a draft); absent, a created message is a draft
            mflags = int(props["Integer 0x0E07"]) if "Integer 0x0E07" in props else None
            fault = self.create_fault()
            if fault == "before":
                return self.err(503, "ServiceUnavailable", "try later", RA())
            if fault == "509":
                return self.err(509, "BandwidthLimitExceeded", "bandwidth limit exceeded", RA())
            msg = self.store(mb, fid, None, {
                "isDraft": mflags is None or bool(mflags & 8),
                "isRead": bool(mflags & 1) if mflags is not None else bool(j.get("isRead", False)),
                "categories": j.get("categories", []),
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
            sel = [f for f in q.get("$select", ["id"])[0].split(",") if f]
            for f in sel:
                if f not in SCHEMA["types"]["message"]:
                    return self.err(400, "RequestBroker--ParseUri", "Could not find a property named '%s' on "
                                    "type 'microsoft.graph.message'." % f)
            vals = [dict({k: x.get(k) for k in sel}, id=x["id"])
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
            check_obj(j, "message", "message")
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
            check_obj(j, "fileAttachment", "attachment")
            raw = base64.b64decode(j.get("contentBytes", ""))
            if self.too_big(msg, len(raw)):
                return self.err(413, "ErrorMessageSizeExceeded", "The message exceeds the maximum supported size.")
            msg["attachments"].append({"name": j.get("name"), "size": len(raw),
                                       "sha256": hashlib.sha256(raw).hexdigest(),
                                       "isInline": bool(j.get("isInline", False)), "contentId": j.get("contentId")})
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
            j = json.loads(data)
            if set(j) - {"AttachmentItem"}:
                raise Reject("The parameter '%s' in the request payload is not a valid parameter for the "
                             "operation 'createUploadSession'." % sorted(set(j) - {"AttachmentItem"})[0])
            it = j.get("AttachmentItem", {})
            check_obj(it, "attachmentItem", "AttachmentItem")
            size = int(it.get("size", 0))
            if size < 3 * mb_unit():
                return self.err(400, "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize",
                                "Attachment size must be greater than the minimum size.")
            if size > 150 * mb_unit() or self.too_big(msg, size):
                return self.err(413, "ErrorMessageSizeExceeded", "The message exceeds the maximum supported size.")
            sid = nid("up")
            S["uploads"][sid] = {"mbx": mbx, "msg": m.group(1), "name": it.get("name"), "size": size,
                                 "isInline": bool(it.get("isInline", False)), "contentId": it.get("contentId"),
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
            # chunks count against the mailbox's upload budget and its Retry-After
            until = S.setdefault("ra_until", {}).get(up["mbx"], 0)
            if until > time.time():
                S["ra_ignored"] += 1
                S["r429"] += 1
                return self.err(429, "ApplicationThrottled", "over the upload limit",
                                {"Retry-After": str(max(1, int(until - time.time() + 0.999)))})
            wait = budget_over(up["mbx"], len(data))
            if wait:
                S["ra_until"][up["mbx"]] = time.time() + wait
                S["r429"] += 1
                return self.err(429, "ApplicationThrottled", "over the upload limit", {"Retry-After": str(wait)})
            cr = re.match(r"^bytes (\d+)-(\d+)/(\d+)$", self.headers.get("Content-Range", ""))
            if not cr or int(cr.group(1)) != up["got"] or int(cr.group(3)) != up["size"]:
                return self.err(416, "InvalidRange", "expected %d" % up["got"])
            if int(cr.group(2)) - int(cr.group(1)) + 1 != len(data):
                return self.err(400, "InvalidRange", "Content-Range does not match the body's length")
            # "less than 4 MB", and every chunk but the last a multiple of 320 KiB
            if len(data) >= 4 * mb_unit():
                return self.err(413, "RequestBodyTooLarge", "a chunk must be less than 4 MB")
            if up["got"] + len(data) < up["size"] and len(data) % KIB320:
                return self.err(400, "InvalidChunkSize", "chunks must be multiples of 320 KiB")
            up["h"].update(data)
            up["got"] += len(data)
            lost = self.attach_fault()
            if up["got"] < up["size"]:
                if lost:
                    return self.err(504, "GatewayTimeout", "gateway timeout")
                return self.send(200, {"nextExpectedRanges": ["%d-" % up["got"]]})
            msg = S["mailboxes"][up["mbx"]]["messages"][up["msg"]]
            msg["attachments"].append({"name": up["name"], "size": up["size"], "sha256": up["h"].hexdigest(),
                                       "isInline": up["isInline"], "contentId": up["contentId"]})
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
    p.add_argument("--no-advanced-role", action="store_true", help="the app lacks Mail-Advanced.ReadWrite.All")
    p.add_argument("--sovereign", action="store_true", help="a national cloud: no importMime")
    p.add_argument("--locale", default="en", choices=["en", "de"])
    p.add_argument("--mb", default="binary", choices=["binary", "decimal"])
    p.add_argument("--req-budget", type=int, default=10000)
    p.add_argument("--req-window", type=float, default=600)
    p.add_argument("--upload-budget", type=int, default=150000000)
    p.add_argument("--upload-window", type=float, default=300)
    p.add_argument("--fail-get", type=int, default=0)
    p.add_argument("--fail-patch", type=int, default=0)
    p.add_argument("--fail-delete", type=int, default=0)
    p.add_argument("--fault-509", type=int, default=0)
    p.add_argument("--sent-skew", type=int, default=0)
    p.add_argument("--max-message-mb", type=int, default=150)
    p.add_argument("--count-until-written", action="store_true")
    p.add_argument("--no-such-mailbox", action="append", default=[], help="this mailbox does not exist")
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
