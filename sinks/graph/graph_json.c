/* graph_json.c - the v1.0 JSON path: the message rebuilt as a Graph message
 * resource (subject, addresses, body, Message-ID, dates and flags set in the
 * create, PR_MESSAGE_FLAGS read and unsent bits from the item's flags: a
 * draft stays a draft, anything else is not one), then its attachments
 * (inline parts with isInline and contentId): a POST below 3,000,000 bytes,
 * upload sessions (chunks of 12 x 320 KiB) up to 150 MB. MIME fidelity is
 * lost on this path by design (see cloud-sinks.md §1.3).
 * Subject and display names are decoded from RFC 2047 encoded words. */
#include <ctype.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "engine/log.h"
#include "engine/normalize/mime.h"
#include "engine/normalize/mimeenc.h"
#include "graph.h"
#include "sinks/http/json.h"

/* Append text as a JSON string, replacing invalid UTF-8 and control bytes. */
static int quote_text(struct mf_buf *b, const unsigned char *p, size_t n)
{
	struct mf_buf t = {0};
	for (size_t i = 0; i < n;) {
		unsigned char c = p[i];
		size_t l = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
		bool ok = l && i + l <= n;
		for (size_t k = 1; ok && k < l; k++)
			ok = (p[i + k] & 0xC0) == 0x80;
		if (c == 0)
			ok = false;
		if (ok) {
			if (mf_buf_add(&t, p + i, l) < 0)
				goto nomem;
			i += l;
		} else {
			if (mf_buf_add(&t, "?", 1) < 0)
				goto nomem;
			i++;
		}
	}
	if (mf_buf_add(&t, "", 0) < 0)
		goto nomem;
	int rc = mf_json_quote(b, t.data);
	mf_buf_free(&t);
	return rc;
nomem:
	mf_buf_free(&t);
	return MF_ENOMEM;
}

/* A header's unfolded raw value into a malloc'd string ("" if absent). */
static char *hdr(const unsigned char *p, size_t hlen, const char *name)
{
	size_t fs, fe, vs, ve;
	struct mf_buf b = {0};
	if (mf_mime_field(p, hlen, name, &fs, &fe, &vs, &ve)) {
		for (size_t i = vs; i < ve; i++) {
			char c = (char)p[i];
			if (c == '\r' || c == '\n')
				continue;
			if (c == '\t')
				c = ' ';
			mf_buf_add(&b, &c, 1);
		}
	}
	if (mf_buf_add(&b, "", 0) < 0) {
		mf_buf_free(&b);
		return NULL;
	}
	size_t l = b.len;
	while (l && b.data[l - 1] == ' ')
		b.data[--l] = '\0';
	char *s = b.data;
	while (*s == ' ')
		s++;
	memmove(b.data, s, strlen(s) + 1);
	return b.data;
}

/* ---- RFC 2047 encoded words ------------------------------------------------- */

static bool charset_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_' || c == '.' || c == ':' || c == '+' || c == '*';
}

/* Decode the encoded text t[0..n) ('q' or 'b') onto out: false when it is
 * not valid in that encoding (out then holds a partial result the caller
 * drops). Padding is optional; anything else outside the alphabet is not. */
static bool decode_text(char enc, const char *t, size_t n, struct mf_buf *out)
{
	if (enc == 'q') {
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)t[i];
			if (c == '=') {
				int hi = i + 2 < n ? mf_hex_value(t[i + 1]) : -1;
				int lo = hi >= 0 ? mf_hex_value(t[i + 2]) : -1;
				if (lo < 0)
					return false;
				c = (unsigned char)(hi << 4 | lo);
				i += 2;
			} else if (c == '_') {
				c = ' ';
			}
			if (mf_buf_add(out, &c, 1) < 0)
				return false;
		}
		return true;
	}
	size_t data = n;
	while (data && t[data - 1] == '=')
		data--;
	if (n - data > 2 || data % 4 == 1 || (n != data && n % 4 != 0))
		return false;
	/* the alphabet only (the HTTP core's decoder would skip white space) */
	for (size_t i = 0; i < data; i++)
		if (!isalnum((unsigned char)t[i]) && t[i] != '+' && t[i] != '/')
			return false;
	unsigned char *raw = malloc(data + 1);
	size_t got = 0;
	bool ok = raw && mf_http_unbase64(t, data, raw, data + 1, &got) == 0 &&
		  mf_buf_add(out, raw, got) == 0;
	free(raw);
	return ok;
}

/* The encoded word "=?charset[*lang]?enc?text?=" at s[0..n): its length,
 * with the charset (language dropped) in cs and the decoded bytes in out
 * (emptied first); 0 when s does not start a well-formed encoded word. */
static size_t encoded_word(const char *s, size_t n, char *cs, size_t cssz, struct mf_buf *out)
{
	size_t i = 2;
	out->len = 0;
	if (n < 2 || s[0] != '=' || s[1] != '?')
		return 0;
	while (i < n && charset_char(s[i]))
		i++;
	if (i >= n || s[i] != '?' || i == 2 || i - 2 >= cssz)
		return 0;
	memcpy(cs, s + 2, i - 2);
	cs[i - 2] = '\0';
	cs[strcspn(cs, "*")] = '\0';
	if (!cs[0] || i + 2 >= n || s[i + 2] != '?')
		return 0;
	char enc = (char)(s[i + 1] | 0x20);
	if (enc != 'q' && enc != 'b')
		return 0;
	size_t t = i + 3, e = t;
	while (e < n && s[e] != '?' && s[e] != ' ' && s[e] != '\t' && s[e] != '\r' && s[e] != '\n')
		e++;
	if (e + 1 >= n || s[e] != '?' || s[e + 1] != '=')
		return 0;
	if (!decode_text(enc, s + t, e - t, out))
		return 0;
	return e + 2;
}

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

void g_hdr_decode(const char *in, size_t len, struct mf_out *o)
{
	struct mf_buf run = {0}, w = {0};
	char cs[64] = "", wcs[64];
	bool after_word = false;
	for (size_t i = 0; i < len && !o->err;) {
		size_t wl = encoded_word(in + i, len - i, wcs, sizeof(wcs), &w);
		if (wl) {
			/* bytes of adjacent words in one charset are converted
			 * together: a character may be split across words */
			if (run.len && strcasecmp(wcs, cs) != 0) {
				mf_charset_to_utf8(cs, (const unsigned char *)run.data, run.len, o);
				run.len = 0;
			}
			if (mf_buf_add(&run, w.data ? w.data : "", w.len) < 0)
				o->err = MF_ENOMEM;
			snprintf(cs, sizeof(cs), "%s", wcs);
			after_word = true;
			i += wl;
			continue;
		}
		if (after_word && is_wsp(in[i])) {
			/* white space between two encoded words is dropped */
			size_t j = i;
			while (j < len && is_wsp(in[j]))
				j++;
			if (encoded_word(in + j, len - j, wcs, sizeof(wcs), &w)) {
				i = j;
				continue;
			}
		}
		if (run.len) {
			mf_charset_to_utf8(cs, (const unsigned char *)run.data, run.len, o);
			run.len = 0;
		}
		after_word = false;
		mf_out_add(o, in + i, 1);
		i++;
	}
	if (run.len)
		mf_charset_to_utf8(cs, (const unsigned char *)run.data, run.len, o);
	mf_buf_free(&run);
	mf_buf_free(&w);
}

/* Header text decoded (g_hdr_decode) into a malloc'd string, NULL on
 * ENOMEM. */
static char *decoded(const char *in, size_t len)
{
	struct mf_out o = {0};
	g_hdr_decode(in, len, &o);
	mf_out_add(&o, "", 1);
	if (o.err) {
		mf_out_free(&o);
		return NULL;
	}
	return o.b.data;
}

/* ---- addresses ------------------------------------------------------------- */

static void trim(const char **s, const char **e)
{
	while (*s < *e && is_wsp(**s))
		++*s;
	while (*e > *s && is_wsp((*e)[-1]))
		--*e;
}

/* The display name of an address, s[0..n): quotes and their backslash
 * escapes removed, encoded words decoded, white space trimmed. NULL on
 * ENOMEM; "" when there is none. */
static char *display_name(const char *s, size_t n)
{
	struct mf_buf u = {0};
	bool inq = false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"') {
			inq = !inq;
			continue;
		}
		if (s[i] == '\\' && inq && i + 1 < n)
			i++;
		if (mf_buf_add(&u, s + i, 1) < 0) {
			mf_buf_free(&u);
			return NULL;
		}
	}
	char *d = decoded(u.data ? u.data : "", u.len);
	mf_buf_free(&u);
	if (!d)
		return NULL;
	const char *b = d, *e = d + strlen(d);
	trim(&b, &e);
	memmove(d, b, (size_t)(e - b));
	d[e - b] = '\0';
	return d;
}

/* Append one address s[0..n) ("Name <a@b>", "a@b (Name)" or "a@b") as a
 * Graph recipient object; 0 when it holds no address (nothing appended),
 * 1 when appended, MF_ENOMEM. */
static int recipient(struct mf_buf *b, bool comma, const char *s, size_t n)
{
	const char *as = NULL, *ae = NULL, *ns = s, *ne = s;
	bool inq = false;
	for (size_t i = 0; i < n && !as; i++) {
		if (s[i] == '\\' && inq)
			i++;
		else if (s[i] == '"')
			inq = !inq;
		else if (!inq && s[i] == '<') {
			ne = s + i;
			as = s + i + 1;
			ae = memchr(as, '>', n - i - 1);
			if (!ae)
				ae = s + n;
		}
	}
	if (!as) {
		/* a@b, or the old a@b (Name) */
		const char *paren = memchr(s, '(', n);
		as = s;
		ae = paren ? paren : s + n;
		if (paren) {
			const char *close = memchr(paren, ')', (size_t)(s + n - paren));
			ns = paren + 1;
			ne = close ? close : s + n;
		}
	}
	trim(&as, &ae);
	if (ae - as >= 320 || !memchr(as, '@', (size_t)(ae - as)))
		return 0;
	char *name = display_name(ns, (size_t)(ne - ns));
	if (!name)
		return MF_ENOMEM;
	int rc = 0;
	if ((comma && mf_buf_addstr(b, ",") < 0) || mf_buf_addstr(b, "{\"emailAddress\":{") < 0 ||
	    (name[0] && (mf_buf_addstr(b, "\"name\":") < 0 ||
			 quote_text(b, (const unsigned char *)name, strlen(name)) < 0 ||
			 mf_buf_addstr(b, ",") < 0)) ||
	    mf_buf_addstr(b, "\"address\":") < 0 ||
	    quote_text(b, (const unsigned char *)as, (size_t)(ae - as)) < 0 ||
	    mf_buf_addstr(b, "}}") < 0)
		rc = MF_ENOMEM;
	free(name);
	return rc < 0 ? rc : 1;
}

/* The addresses of a header value as a Graph recipients array, or with
 * `single` the first one alone (null when there is none). */
static int recipients(struct mf_buf *b, const char *v, bool single)
{
	if (!single && mf_buf_addstr(b, "[") < 0)
		return MF_ENOMEM;
	int n = 0;
	const char *p = v;
	while (*p && !(single && n)) {
		/* one address: up to a comma outside quotes and angle brackets */
		const char *s = p;
		int inq = 0, ina = 0;
		while (*p && (inq || ina || *p != ',')) {
			if (*p == '\\' && inq && p[1])
				p++;
			else if (*p == '"')
				inq = !inq;
			else if (*p == '<' && !inq)
				ina = 1;
			else if (*p == '>' && !inq)
				ina = 0;
			p++;
		}
		int rc = recipient(b, n > 0, s, (size_t)(p - s));
		if (rc < 0)
			return rc;
		n += rc;
		if (*p)
			p++;
	}
	if (single)
		return !n && mf_buf_addstr(b, "null") < 0 ? MF_ENOMEM : 0;
	return mf_buf_addstr(b, "]") < 0 ? MF_ENOMEM : 0;
}

static void iso_time(int64_t t, char *out, size_t n)
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* Is this leaf an attachment? Fills its name. */
static bool attachment_name(const unsigned char *p, const struct mf_part *pt, char *name, size_t n)
{
	size_t fs, fe, vs, ve;
	size_t hlen = pt->hend - pt->start;
	const unsigned char *h = p + pt->start;
	name[0] = '\0';
	bool disp_att = false;
	if (mf_mime_field(h, hlen, "Content-Disposition", &fs, &fe, &vs, &ve)) {
		disp_att = ve - vs >= 10 && strncasecmp((const char *)h + vs, "attachment", 10) == 0;
		mf_mime_param(h + vs, ve - vs, "filename", name, n);
	}
	if (!name[0] && mf_mime_field(h, hlen, "Content-Type", &fs, &fe, &vs, &ve))
		mf_mime_param(h + vs, ve - vs, "name", name, n);
	if (name[0] || disp_att) {
		if (!name[0])
			snprintf(name, n, "attachment");
		return true;
	}
	return strncmp(pt->type, "text/", 5) != 0 && pt->type[0] != '\0';
}

/* How many attachments message msg_id holds now, into *n. 0 or < 0. */
static int count_attachments(struct g_snk *s, const char *msg_id, size_t *n, struct mf_err *err);

/* find for an attachment create: it landed if the message now holds more
 * than c->index attachments (they are added one at a time, in order). */
static int find_attachment(struct g_snk *s, struct g_create *c, struct mf_err *err)
{
	size_t n;
	int rc = count_attachments(s, c->msg_id, &n, err);
	return rc < 0 ? rc : n > c->index;
}

/* One chunk of an upload session, for its resolve hook. */
struct chunk {
	struct g_snk *s;
	const char *upload; /* the session's pre-authenticated URL */
	size_t end;         /* the chunk is [.., end) */
	bool last;          /* its landing makes the attachment */
	struct g_create att;
};

/* After an ambiguous chunk PUT: did it land? The session says where it
 * stands (nextExpectedRanges); after the last chunk there is no session
 * any more, but the attachment. 1 landed, 0 send again, < 0 error. */
static int chunk_landed(void *arg, struct mf_http_req *req, struct mf_err *err)
{
	(void)req;
	struct chunk *ck = arg;
	if (ck->last)
		return find_attachment(ck->s, &ck->att, err);
	struct mf_http_req get = {.method = "GET", .url = ck->upload, .limit = ck->s->limit};
	int rc = mf_http_send(&get, NULL, err);
	if (rc == 0) {
		const char *js = get.resp.data, *je = js + get.resp.len, *ve, *ee;
		const char *v = mf_json_member(js, je, "nextExpectedRanges", &ve);
		const char *e = v ? mf_json_array_first(v, ve, &ee) : NULL;
		char range[64];
		if (!e || mf_json_string(e, ee, range, sizeof(range)) < 0)
			rc = mf_http_fail(&get, MF_EPROTO, err, "upload session: no nextExpectedRanges");
		else
			rc = strtoull(range, NULL, 10) >= ck->end;
	}
	mf_http_req_free(&get);
	if (rc < 0)
		mf_err_prefix(err, "upload session state");
	return rc;
}

/* An inline part (an image the HTML body shows by "cid:"): its Content-ID
 * without angle brackets into cid, when it has one and is not marked
 * "attachment"; else cid is "". */
static void inline_cid(const unsigned char *p, const struct mf_part *pt, char *cid, size_t n)
{
	size_t fs, fe, vs, ve;
	size_t hlen = pt->hend - pt->start;
	const unsigned char *h = p + pt->start;
	cid[0] = '\0';
	if (mf_mime_field(h, hlen, "Content-Disposition", &fs, &fe, &vs, &ve)) {
		while (vs < ve && (h[vs] == ' ' || h[vs] == '\t' || h[vs] == '\r' || h[vs] == '\n'))
			vs++;
		if (ve - vs >= 10 && strncasecmp((const char *)h + vs, "attachment", 10) == 0)
			return;
	}
	if (!mf_mime_field(h, hlen, "Content-ID", &fs, &fe, &vs, &ve))
		return;
	size_t w = 0;
	for (size_t i = vs; i < ve && w + 1 < n; i++)
		if (h[i] != '<' && h[i] != '>' && h[i] != ' ' && h[i] != '\t' && h[i] != '\r' &&
		    h[i] != '\n' && h[i] != '"')
			cid[w++] = (char)h[i];
	cid[w] = '\0';
}

/* Add attachment number `index` (0-based, in MIME order) to msg_id; `cid`
 * non-empty makes it an inline one with that contentId. */
static int add_attachment(struct g_snk *s, const char *msg_id, size_t index, const char *name,
			  const char *ctype, const char *cid, const unsigned char *data, size_t len,
			  struct mf_err *err)
{
	struct mf_buf u = {0}, b = {0};
	struct mf_http_req req = {0};
	int rc = MF_ENOMEM;
	struct mf_buf base = {0};
	bool inline_post = len < G_SESSION_MIN;
	if (mf_buf_printf(&base, "%s/v1.0/users/%s/messages/", s->cfg->graph_url, s->mbx_esc) < 0 ||
	    mf_http_escape(&base, msg_id, strlen(msg_id), false) < 0)
		goto nomem;
again:
	if (inline_post) {
		u.len = b.len = 0;
		if (mf_buf_printf(&u, "%s/attachments", base.data) < 0 ||
		    mf_buf_addstr(&b, "{\"@odata.type\":\"#microsoft.graph.fileAttachment\",\"name\":") < 0 ||
		    quote_text(&b, (const unsigned char *)name, strlen(name)) < 0 ||
		    mf_buf_addstr(&b, ",\"contentType\":") < 0 || mf_json_quote(&b, ctype) < 0 ||
		    (cid[0] && (mf_buf_addstr(&b, ",\"isInline\":true,\"contentId\":") < 0 ||
				mf_json_quote(&b, cid) < 0)) ||
		    mf_buf_addstr(&b, ",\"contentBytes\":\"") < 0 || mf_http_base64(&b, data, len) < 0 ||
		    mf_buf_addstr(&b, "\"}") < 0)
			goto nomem;
		req.body = b.data;
		req.body_len = b.len;
		struct g_create cr = {.find = find_attachment, .msg_id = msg_id, .index = index};
		rc = g_request(s, &req, "POST", u.data, "application/json", &cr, NULL, err);
		goto out;
	}
	/* upload session ("between 3 MB and 150 MB") */
	static const long small[] = {400, 0};
	if (mf_buf_printf(&u, "%s/attachments/createUploadSession", base.data) < 0 ||
	    mf_buf_addstr(&b, "{\"AttachmentItem\":{\"attachmentType\":\"file\",\"name\":") < 0 ||
	    quote_text(&b, (const unsigned char *)name, strlen(name)) < 0 ||
	    mf_buf_printf(&b, ",\"size\":%zu,\"contentType\":", len) < 0 || mf_json_quote(&b, ctype) < 0 ||
	    mf_buf_printf(&b, ",\"isInline\":%s", cid[0] ? "true" : "false") < 0 ||
	    (cid[0] && (mf_buf_addstr(&b, ",\"contentId\":") < 0 || mf_json_quote(&b, cid) < 0)) ||
	    mf_buf_addstr(&b, "}}") < 0)
		goto nomem;
	req.body = b.data;
	req.body_len = b.len;
	rc = g_request(s, &req, "POST", u.data, "application/json", NULL, small, err);
	if (rc < 0)
		goto out;
	if (req.status == 400) {
		char code[128] = "";
		const char *js = req.resp.data, *je = js + req.resp.len, *ee;
		const char *e = js ? mf_json_member(js, je, "error", &ee) : NULL;
		if (e)
			mf_json_get_str(e, ee, "code", code, sizeof(code));
		/* "3 MB" read as 3 MiB by the service: under that, a single POST
		 * (it fits the 4 MB request as base64 up to about 3,145,600 bytes) */
		if (strcmp(code, "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize") == 0) {
			mf_log(MF_LOG_INFO, "event=graph_attachment_inline mailbox=%s size=%zu reason=%s",
			       s->mailbox, len, code);
			mf_http_req_free(&req);
			req = (struct mf_http_req){0};
			inline_post = true;
			goto again;
		}
		rc = mf_http_fail(&req, MF_EMSG, err, "create upload session");
		goto out;
	}
	char upload[4096];
	if (mf_json_get_str(req.resp.data, req.resp.data + req.resp.len, "uploadUrl", upload, sizeof(upload)) < 0) {
		rc = mf_http_fail(&req, MF_EPROTO, err, "upload session: no uploadUrl");
		goto out;
	}
	mf_http_req_free(&req);
	for (size_t off = 0; off < len;) {
		size_t n = len - off < G_CHUNK ? len - off : G_CHUNK;
		char cr[128];
		struct chunk ck = {.s = s, .upload = upload, .end = off + n, .last = off + n == len,
				   .att = {.msg_id = msg_id, .index = index}};
		struct mf_http_req put = {.method = "PUT", .url = upload, .body = data + off, .body_len = n,
					  .limit = s->limit, .create = true,
					  .hooks = {.resolve = chunk_landed, .arg = &ck}};
		snprintf(cr, sizeof(cr), "Content-Range: bytes %zu-%zu/%zu", off, off + n - 1, len);
		/* pre-authenticated URL: no Authorization header */
		put.headers = curl_slist_append(NULL, cr);
		if (put.headers)
			put.headers = curl_slist_append(put.headers, "Content-Type: application/octet-stream");
		if (put.headers)
			put.headers = curl_slist_append(put.headers, "Expect:");
		if (!put.headers) {
			mf_http_req_free(&put);
			goto nomem;
		}
		rc = mf_http_send(&put, NULL, err);
		mf_http_req_free(&put);
		if (rc < 0) {
			mf_err_prefix(err, "attachment upload at %zu", off);
			goto out;
		}
		off += n;
	}
	rc = 0;
	goto out;
nomem:
	rc = mf_err_set(err, MF_ENOMEM, "out of memory");
out:
	mf_buf_free(&base);
	mf_buf_free(&u);
	mf_buf_free(&b);
	mf_http_req_free(&req);
	return rc;
}

/* Delete message id (gone already is fine). 0 or < 0. */
static int delete_message(struct g_snk *s, const char *id, struct mf_err *err)
{
	struct mf_buf u = {0};
	struct mf_http_req req = {0};
	static const long ok[] = {404, 0};
	int rc = MF_ENOMEM;
	if (mf_buf_printf(&u, "%s/v1.0/users/%s/messages/", s->cfg->graph_url, s->mbx_esc) == 0 &&
	    mf_http_escape(&u, id, strlen(id), false) == 0)
		rc = g_request(s, &req, "DELETE", u.data, NULL, NULL, ok, err);
	else
		mf_err_set(err, rc, "out of memory");
	mf_buf_free(&u);
	mf_http_req_free(&req);
	if (rc < 0)
		mf_err_prefix(err, "delete a half-made message");
	return rc;
}

static int count_page(void *arg, const char *js, const char *je)
{
	size_t *n = arg;
	const char *ve, *ee;
	const char *v = mf_json_member(js, je, "value", &ve);
	for (const char *e = v ? mf_json_array_first(v, ve, &ee) : NULL; e;
	     e = mf_json_array_next(ee, ve, &ee))
		++*n;
	return 0;
}

static int count_attachments(struct g_snk *s, const char *msg_id, size_t *n, struct mf_err *err)
{
	struct mf_buf u = {0};
	*n = 0;
	if (mf_buf_printf(&u, "%s/v1.0/users/%s/messages/", s->cfg->graph_url, s->mbx_esc) < 0 ||
	    mf_http_escape(&u, msg_id, strlen(msg_id), false) < 0 ||
	    mf_buf_addstr(&u, "/attachments?$select=id") < 0) {
		mf_buf_free(&u);
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	}
	int rc = g_get_pages(s, &u, count_page, n, err);
	mf_buf_free(&u);
	if (rc < 0)
		mf_err_prefix(err, "count attachments");
	return rc;
}

/* The message as the JSON path sees it: its parts, the body part (-1 if
 * none) and which leaves become attachments. */
struct plan {
	struct mf_part *parts;
	size_t np;
	ssize_t body;
	size_t natt;
};

static bool is_attachment(const unsigned char *p, const struct plan *pl, size_t i, char *name, size_t n)
{
	return (ssize_t)i != pl->body && pl->parts[i].leaf && i != 0 &&
	       attachment_name(p, &pl->parts[i], name, n);
}

static int plan_parts(const struct mf_item *item, struct plan *pl, struct mf_err *err)
{
	const unsigned char *p = item->data;
	char aname[256];
	memset(pl, 0, sizeof(*pl));
	pl->body = -1;
	if (mf_mime_parse(p, item->len, &pl->parts, &pl->np) < 0 || pl->np == 0)
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	/* body: the first text/html leaf, else the first text/plain leaf */
	for (size_t i = 0; i < pl->np; i++) {
		const struct mf_part *pt = &pl->parts[i];
		if (!pt->leaf || attachment_name(p, pt, aname, sizeof(aname)))
			continue;
		if (strcmp(pt->type, "text/html") == 0) {
			pl->body = (ssize_t)i;
			break;
		}
		if (pl->body < 0 && (strcmp(pt->type, "text/plain") == 0 || pt->type[0] == '\0'))
			pl->body = (ssize_t)i;
	}
	for (size_t i = 0; i < pl->np; i++)
		pl->natt += is_attachment(p, pl, i, aname, sizeof(aname));
	return 0;
}

/* Add the attachments from number `from` on to message id. */
static int add_attachments(struct g_snk *s, const char *id, const struct mf_item *item,
			   const struct plan *pl, size_t from, struct mf_err *err)
{
	const unsigned char *p = item->data;
	char aname[256];
	size_t k = 0;
	for (size_t i = 0; i < pl->np; i++) {
		if (!is_attachment(p, pl, i, aname, sizeof(aname)) || k++ < from)
			continue;
		const struct mf_part *pt = &pl->parts[i];
		struct mf_out data = {0};
		char cid[256];
		int rc;
		inline_cid(p, pt, cid, sizeof(cid));
		mf_mime_decode_body(p, pt, &data);
		if (data.err)
			rc = mf_err_set(err, MF_ENOMEM, "out of memory");
		else
			rc = add_attachment(s, id, k - 1, aname,
					    pt->type[0] ? pt->type : "application/octet-stream", cid,
					    (const unsigned char *)data.b.data, data.b.len, err);
		mf_out_free(&data);
		if (rc < 0) {
			mf_err_prefix(err, "attachment '%s'", aname);
			return rc;
		}
	}
	return 0;
}

int g_json_check_whole(struct g_snk *s, const struct mf_item *item, const char *id,
		       struct mf_err *err)
{
	struct plan pl;
	size_t have = 0;
	int rc = plan_parts(item, &pl, err);
	if (rc == 0 && pl.natt > 0)
		rc = count_attachments(s, id, &have, err);
	if (rc == 0) {
		rc = have >= pl.natt;
		if (!rc) {
			mf_log(MF_LOG_WARN,
			       "event=graph_half_made mailbox=%s attachments=%zu/%zu note=\"deleted, to be stored again\"",
			       s->mailbox, have, pl.natt);
			rc = delete_message(s, id, err);
		}
	}
	free(pl.parts);
	return rc;
}

int g_store_json(struct g_snk *s, const char *fid, const struct mf_item *item, char id[G_ID_MAX],
		 struct mf_err *err)
{
	const unsigned char *p = item->data;
	struct plan pl;
	struct mf_buf b = {0}, u = {0};
	struct mf_out body = {0};
	struct mf_http_req req = {0};
	char *subject = NULL, *from = NULL, *to = NULL, *cc = NULL, *date = NULL;
	struct g_create cr = {.find = g_find_message, .item = item, .fid = fid};
	int rc = plan_parts(item, &pl, err);
	if (rc < 0)
		goto out;
	size_t hlen = pl.parts[0].hend - pl.parts[0].start;
	{
		char *raw = hdr(p, hlen, "Subject");
		subject = raw ? decoded(raw, strlen(raw)) : NULL;
		free(raw);
	}
	from = hdr(p, hlen, "From");
	to = hdr(p, hlen, "To");
	cc = hdr(p, hlen, "Cc");
	date = hdr(p, hlen, "Date");
	if (!subject || !from || !to || !cc || !date) {
		rc = mf_err_set(err, MF_ENOMEM, "out of memory");
		goto out;
	}
	ssize_t bi = pl.body;
	if (bi >= 0)
		mf_mime_decode_body(p, &pl.parts[bi], &body);
	char recv[32], sent[32];
	iso_time(item->idate, recv, sizeof(recv));
	time_t dt = date[0] ? curl_getdate(date, NULL) : -1;
	iso_time(dt > 0 ? (int64_t)dt : item->idate, sent, sizeof(sent));
	if (mf_buf_addstr(&b, "{\"subject\":") < 0 ||
	    quote_text(&b, (const unsigned char *)subject, strlen(subject)) < 0 ||
	    mf_buf_printf(&b, ",\"body\":{\"contentType\":\"%s\",\"content\":",
			  bi >= 0 && strcmp(pl.parts[bi].type, "text/html") == 0 ? "html" : "text") < 0 ||
	    quote_text(&b, (const unsigned char *)(body.b.data ? body.b.data : ""), body.b.len) < 0 ||
	    mf_buf_addstr(&b, "},\"from\":") < 0)
		goto nomem;
	/* from is a single recipient, not an array */
	if (recipients(&b, from, true) < 0)
		goto nomem;
	if (mf_buf_addstr(&b, ",\"toRecipients\":") < 0 || recipients(&b, to, false) < 0 ||
	    mf_buf_addstr(&b, ",\"ccRecipients\":") < 0 || recipients(&b, cc, false) < 0)
		goto nomem;
	if (item->message_id && (mf_buf_addstr(&b, ",\"internetMessageId\":") < 0 ||
				 quote_text(&b, (const unsigned char *)item->message_id,
					    strlen(item->message_id)) < 0))
		goto nomem;
	if (mf_buf_printf(&b,
			  ",\"isRead\":%s,\"flag\":{\"flagStatus\":\"%s\"},\"singleValueExtendedProperties\":["
			  "{\"id\":\"Integer 0x0E07\",\"value\":\"%d\"},"
			  "{\"id\":\"SystemTime 0x0E06\",\"value\":\"%s\"},"
			  "{\"id\":\"SystemTime 0x0039\",\"value\":\"%s\"}]}",
			  item->flags & MF_FLAG_SEEN ? "true" : "false",
			  item->flags & MF_FLAG_FLAGGED ? "flagged" : "notFlagged",
			  /* PR_MESSAGE_FLAGS: MSGFLAG_READ 0x1, MSGFLAG_UNSENT 0x8
			   * (a draft); without UNSENT the message is not a draft */
			  (item->flags & MF_FLAG_SEEN ? 0x1 : 0) | (item->flags & MF_FLAG_DRAFT ? 0x8 : 0),
			  recv, sent) < 0)
		goto nomem;
	if (b.len > G_MAX_REQUEST) {
		rc = mf_err_set(err, MF_ETOOBIG, "message body alone is %zu bytes of JSON, over Graph's 4 MB request limit",
				b.len);
		goto out;
	}
	if (mf_buf_printf(&u, "%s/v1.0/users/%s/mailFolders/", s->cfg->graph_url, s->mbx_esc) < 0 ||
	    mf_http_escape(&u, fid, strlen(fid), false) < 0 || mf_buf_addstr(&u, "/messages") < 0)
		goto nomem;
	req.body = b.data;
	req.body_len = b.len;
	rc = g_request(s, &req, "POST", u.data, "application/json", &cr, NULL, err);
	if (rc < 0)
		goto out;
	if (req.resolved)
		snprintf(id, G_ID_MAX, "%s", cr.found);
	else if (mf_json_get_str(req.resp.data, req.resp.data + req.resp.len, "id", id, G_ID_MAX) < 0) {
		rc = mf_http_fail(&req, MF_EPROTO, err, "create message: no id");
		goto out;
	}
	/* attachments (a message found after an ambiguous create is the one
	 * this create made, with none yet); on failure the half-made message
	 * goes away again so that a probe does not take it for stored */
	if ((rc = add_attachments(s, id, item, &pl, 0, err)) < 0) {
		struct mf_err e2 = {0};
		delete_message(s, id, &e2);
		goto out;
	}
	rc = 0;
	goto out;
nomem:
	rc = mf_err_set(err, MF_ENOMEM, "out of memory");
out:
	free(pl.parts);
	free(subject);
	free(from);
	free(to);
	free(cc);
	free(date);
	mf_out_free(&body);
	mf_buf_free(&b);
	mf_buf_free(&u);
	mf_http_req_free(&req);
	return rc;
}
