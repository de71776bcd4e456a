/* pst_mime.c - one parsed libpst mail item -> RFC 5322 MIME (CRLF).
 *
 * Structure built (each level only when needed):
 *   multipart/mixed
 *     multipart/related            (HTML with inline images by Content-ID)
 *       multipart/alternative      (text/plain + text/html)
 *       image parts
 *     attachments, message/rfc822 for embedded messages
 * MIME boundaries are SHA-256 digests of what they enclose, so the same item
 * always gives the same bytes.
 *
 * Called with pst_lib_lock() held: attachment data and embedded messages are
 * read through libpst while the message is built.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <strings.h>

#include "pst_internal.h"

#include "engine/normalize/mimeenc.h"
#include "engine/spill.h"
#include "engine/normalize/rtf.h"

#define MAX_DEPTH 8 /* embedded messages inside embedded messages */
#define MAX_PARTS 4096

struct parts {
	struct mf_buf *v;
	size_t n, cap;
};

static void parts_free(struct parts *p)
{
	for (size_t i = 0; i < p->n; i++)
		mf_buf_free(&p->v[i]);
	free(p->v);
	p->v = NULL;
	p->n = p->cap = 0;
}

/* Move `b` into the list (b is emptied). */
static int parts_take(struct parts *p, struct mf_buf *b)
{
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 8;
		if (cap > MAX_PARTS)
			return MF_EMSG;
		struct mf_buf *v = realloc(p->v, cap * sizeof(*v));
		if (!v)
			return MF_ENOMEM;
		p->v = v;
		p->cap = cap;
	}
	p->v[p->n++] = *b;
	memset(b, 0, sizeof(*b));
	return 0;
}

/* ---- strings ------------------------------------------------------------ */

/* The Windows ANSI code page that goes with an Internet code page. */
static int ansi_codepage(int icp)
{
	switch (icp) {
	case 932: case 50220: case 50221: case 50222: case 51932:
		return 932;
	case 936: case 51936: case 52936: case 54936:
		return 936;
	case 949: case 51949: case 50225:
		return 949;
	case 950:
		return 950;
	case 20866: case 21866: case 28595:
		return 1251;
	case 28592:
		return 1250;
	case 28597:
		return 1253;
	case 28599:
		return 1254;
	case 28598:
		return 1255;
	case 28596:
		return 1256;
	case 28594: case 28603:
		return 1257;
	case 874:
		return 874;
	case 20127: case 28591: case 28605:
		return 1252;
	default:
		return icp >= 1250 && icp <= 1258 ? icp : 0;
	}
}

void pst_item_charset(const struct pst_mime_ctx *ctx, const pst_item *item, bool html,
		      char *mime, size_t mime_size, char *iconv_name, size_t iconv_size)
{
	/* HTML bodies are binary in the Internet code page; 8-bit strings
	 * (PT_STRING8) are in the store's ANSI code page, which the Internet
	 * code page implies when PR_MESSAGE_CODEPAGE is absent */
	int cp = html ? (item->internet_cpid ? item->internet_cpid : item->message_codepage)
		      : (item->message_codepage ? item->message_codepage
						: ansi_codepage(item->internet_cpid));
	if (cp <= 0 || cp > 65535)
		cp = ctx->dflt_cpid;
	pst_codepage_names(cp, mime, mime_size, iconv_name, iconv_size);
}

int pst_string_utf8(const struct pst_mime_ctx *ctx, const pst_item *item, const pst_string *s,
		    struct mf_buf *out)
{
	if (!s->str)
		return pst_utf8_sanitize("", 0, out);
	if (s->is_utf8)
		return pst_utf8_sanitize(s->str, strlen(s->str), out);
	char mime[32], ic[32];
	pst_item_charset(ctx, item, false, mime, sizeof(mime), ic, sizeof(ic));
	return pst_to_utf8(ic, s->str, strlen(s->str), out);
}

/* A pst_string as a malloc'd UTF-8 C string; NULL when absent or empty. *rc
 * is set to MF_ENOMEM on allocation failure. */
static char *str_utf8(const struct pst_mime_ctx *ctx, const pst_item *item,
		      const pst_string *s, int *rc)
{
	if (!s->str || !s->str[0])
		return NULL;
	struct mf_buf b = { 0 };
	if (pst_string_utf8(ctx, item, s, &b) < 0) {
		mf_buf_free(&b);
		*rc = MF_ENOMEM;
		return NULL;
	}
	return b.data;
}

/* ---- multiparts --------------------------------------------------------- */

static int multipart(const char *subtype, const char *extra, struct parts *ps, struct mf_buf *out)
{
	unsigned char digest[MF_SHA256_LEN];
	char hex[2 * MF_SHA256_LEN + 1], boundary[48];
	for (unsigned attempt = 0;; attempt++) {
		struct mf_buf h = { 0 };
		if (mf_buf_printf(&h, "%s/%u", subtype, attempt) < 0)
			return MF_ENOMEM;
		for (size_t i = 0; i < ps->n; i++) {
			unsigned char d[MF_SHA256_LEN];
			mf_sha256(ps->v[i].data ? ps->v[i].data : "", ps->v[i].len, d);
			if (mf_buf_add(&h, d, sizeof(d)) < 0) {
				mf_buf_free(&h);
				return MF_ENOMEM;
			}
		}
		mf_sha256(h.data, h.len, digest);
		mf_buf_free(&h);
		mf_hex(digest, 12, hex);
		snprintf(boundary, sizeof(boundary), "=_mf_%s", hex);
		bool clash = false;
		for (size_t i = 0; i < ps->n && !clash; i++)
			clash = ps->v[i].len && memmem(ps->v[i].data, ps->v[i].len, boundary,
						       strlen(boundary));
		if (!clash)
			break;
	}
	if (mf_buf_printf(out, "Content-Type: multipart/%s;%s\r\n\tboundary=\"%s\"\r\n\r\n", subtype,
			  extra ? extra : "", boundary) < 0)
		return MF_ENOMEM;
	for (size_t i = 0; i < ps->n; i++) {
		if (mf_buf_printf(out, "--%s\r\n", boundary) < 0 ||
		    mf_buf_add(out, ps->v[i].data, ps->v[i].len) < 0)
			return MF_ENOMEM;
		if ((ps->v[i].len < 2 || memcmp(ps->v[i].data + ps->v[i].len - 2, "\r\n", 2)) &&
		    mf_buf_add(out, "\r\n", 2) < 0)
			return MF_ENOMEM;
	}
	if (mf_buf_printf(out, "--%s--\r\n", boundary) < 0)
		return MF_ENOMEM;
	return 0;
}

/* Wrap parts in multipart/<subtype>, or return the single part as is. */
static int wrap(const char *subtype, const char *extra, struct parts *ps, struct mf_buf *out)
{
	if (ps->n == 1) {
		*out = ps->v[0];
		memset(&ps->v[0], 0, sizeof(ps->v[0]));
		ps->n = 0;
		return 0;
	}
	return multipart(subtype, extra, ps, out);
}

/* ---- leaf parts --------------------------------------------------------- */

static int text_part(const char *subtype, const char *charset, const unsigned char *data,
		     size_t len, struct mf_buf *out)
{
	bool seven = pst_is_7bit(data, len);
	if (mf_buf_printf(out, "Content-Type: text/%s; charset=\"%s\"\r\n", subtype,
			  seven ? "us-ascii" : charset) < 0)
		return MF_ENOMEM;
	if (seven) {
		if (mf_buf_addstr(out, "Content-Transfer-Encoding: 7bit\r\n\r\n") < 0)
			return MF_ENOMEM;
		if (pst_crlf_append(out, data, len) < 0)
			return MF_ENOMEM;
		if ((len == 0 || (data[len - 1] != '\n' && data[len - 1] != '\r')) &&
		    mf_buf_add(out, "\r\n", 2) < 0)
			return MF_ENOMEM;
		return 0;
	}
	if (mf_buf_addstr(out, "Content-Transfer-Encoding: quoted-printable\r\n\r\n") < 0)
		return MF_ENOMEM;
	return pst_qp_append(out, data, len);
}

struct exttype {
	const char *ext, *type;
};

static const struct exttype exttypes[] = {
	{ "txt", "text/plain" }, { "htm", "text/html" }, { "html", "text/html" },
	{ "csv", "text/csv" }, { "xml", "text/xml" }, { "rtf", "application/rtf" },
	{ "ics", "text/calendar" }, { "vcf", "text/vcard" }, { "eml", "message/rfc822" },
	{ "pdf", "application/pdf" }, { "zip", "application/zip" },
	{ "gz", "application/gzip" }, { "7z", "application/x-7z-compressed" },
	{ "doc", "application/msword" }, { "dot", "application/msword" },
	{ "xls", "application/vnd.ms-excel" }, { "ppt", "application/vnd.ms-powerpoint" },
	{ "docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document" },
	{ "xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" },
	{ "pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation" },
	{ "msg", "application/vnd.ms-outlook" }, { "odt", "application/vnd.oasis.opendocument.text" },
	{ "png", "image/png" }, { "jpg", "image/jpeg" }, { "jpeg", "image/jpeg" },
	{ "gif", "image/gif" }, { "bmp", "image/bmp" }, { "tif", "image/tiff" },
	{ "tiff", "image/tiff" }, { "svg", "image/svg+xml" }, { "webp", "image/webp" },
	{ "ico", "image/x-icon" }, { "wav", "audio/wav" }, { "mp3", "audio/mpeg" },
	{ "mp4", "video/mp4" }, { "avi", "video/x-msvideo" }, { "json", "application/json" },
	{ "exe", "application/octet-stream" }, { "p7m", "application/pkcs7-mime" },
	{ "p7s", "application/pkcs7-signature" },
};

/* A usable MIME type from the PST's attach mime tag, else by extension. */
static void attach_type(const char *tag, const char *fname, char *out, size_t size)
{
	if (tag) {
		/* type/subtype of token characters only */
		size_t n = strlen(tag), slash = 0, i;
		for (i = 0; i < n; i++) {
			unsigned char c = (unsigned char)tag[i];
			if (c == '/' && !slash && i > 0)
				slash = i;
			else if (c <= 32 || c >= 127 || strchr("()<>@,;:\\\"[]?=/", c))
				break;
		}
		if (i == n && slash && slash + 1 < n && n < size) {
			for (i = 0; i <= n; i++)
				out[i] = (char)tolower((unsigned char)tag[i]);
			return;
		}
	}
	const char *dot = fname ? strrchr(fname, '.') : NULL;
	if (dot && dot[1]) {
		for (size_t i = 0; i < sizeof(exttypes) / sizeof(exttypes[0]); i++) {
			if (!strcasecmp(dot + 1, exttypes[i].ext)) {
				snprintf(out, size, "%s", exttypes[i].type);
				return;
			}
		}
	}
	snprintf(out, size, "application/octet-stream");
}

/* ---- the message -------------------------------------------------------- */

struct msgstate {
	const struct pst_mime_ctx *ctx;
	pst_item *item;
	pst_item_email *em; /* item->email or an empty one */
	int depth;
	struct mf_buf notes; /* X-Mailferry-Warning lines */
};

static int note(struct msgstate *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int note(struct msgstate *m, const char *fmt, ...)
{
	char line[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* one header line: no line breaks from file names */
	for (char *c = line; *c; c++) {
		if ((unsigned char)*c < 32)
			*c = ' ';
	}
	if (mf_buf_printf(&m->notes, "X-Mailferry-Warning: %s\r\n", line) < 0)
		return MF_ENOMEM;
	return 0;
}

static int build_message(const struct pst_mime_ctx *ctx, pst_item *item, int depth,
			 struct mf_buf *out, struct mf_err *err);

struct header_seen {
	bool from, to, cc, subject, date, msgid, inreplyto, references;
};

static bool name_is(const char *line, size_t namelen, const char *name)
{
	return strlen(name) == namelen && !strncasecmp(line, name, namelen);
}

/* Transport headers as a clean header block (CRLF), without the MIME fields
 * we rebuild. Returns 0 and leaves `out` empty when the headers are absent or
 * not plausible RFC 5322 headers (PSTs sometimes hold body fragments there). */
static int transport_headers(struct msgstate *m, struct mf_buf *out, struct header_seen *seen)
{
	int rc = 0;
	struct mf_buf u = { 0 };
	if (!m->em->header.str || !m->em->header.str[0])
		return 0;
	if (pst_string_utf8(m->ctx, m->item, &m->em->header, &u) < 0)
		return MF_ENOMEM;
	/* split into lines (any line end), stop at the first empty line */
	char *p = u.data, *end = u.data + u.len;
	bool started = false, keep = false;
	size_t fields = 0;
	while (p < end) {
		char *e = p;
		while (e < end && *e != '\r' && *e != '\n')
			e++;
		size_t len = (size_t)(e - p);
		char *next = e;
		if (next < end && *next == '\r')
			next++;
		if (next < end && *next == '\n' && (next == e || next[-1] == '\r' || next == e))
			next++;
		if (len == 0) {
			if (started)
				break;
			p = next;
			continue;
		}
		if (*p == ' ' || *p == '\t') {
			/* continuation of the previous field */
			if (started && keep &&
			    (mf_buf_add(out, p, len) < 0 || mf_buf_add(out, "\r\n", 2) < 0)) {
				rc = MF_ENOMEM;
				break;
			}
			p = next;
			continue;
		}
		size_t nl = 0;
		while (nl < len && p[nl] > 32 && p[nl] < 127 && p[nl] != ':')
			nl++;
		if (nl == 0 || nl >= len || p[nl] != ':') {
			/* not a field: "Microsoft Mail Internet Headers
			 * Version 2.0" before the fields, or garbage */
			if (started)
				keep = false;
			p = next;
			continue;
		}
		started = true;
		keep = !(name_is(p, nl, "MIME-Version") || name_is(p, nl, "Content-Type") ||
			 name_is(p, nl, "Content-Transfer-Encoding") ||
			 name_is(p, nl, "Content-Disposition") || name_is(p, nl, "Content-Length") ||
			 name_is(p, nl, "Content-class") || name_is(p, nl, "X-MimeOLE"));
		if (name_is(p, nl, "From"))
			seen->from = true;
		else if (name_is(p, nl, "To"))
			seen->to = true;
		else if (name_is(p, nl, "Cc"))
			seen->cc = true;
		else if (name_is(p, nl, "Subject"))
			seen->subject = true;
		else if (name_is(p, nl, "Date"))
			seen->date = true;
		else if (name_is(p, nl, "Message-ID"))
			seen->msgid = true;
		else if (name_is(p, nl, "In-Reply-To"))
			seen->inreplyto = true;
		else if (name_is(p, nl, "References"))
			seen->references = true;
		if (keep) {
			fields++;
			if (mf_buf_add(out, p, len) < 0 || mf_buf_add(out, "\r\n", 2) < 0) {
				rc = MF_ENOMEM;
				break;
			}
		}
		p = next;
	}
	mf_buf_free(&u);
	/* without a From, Date or Received line it is no transport header */
	if (rc == 0 && (fields == 0 || !(seen->from || seen->date || seen->subject))) {
		out->len = 0;
		memset(seen, 0, sizeof(*seen));
	}
	return rc;
}

/* One address list entry from a display string ("Name" or "a@b.c"). */
static int address_entry(struct mf_buf *out, const char *s, size_t len)
{
	while (len && (*s == ' ' || *s == '\t'))
		s++, len--;
	while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	if (!len)
		return 0;
	char *t = strndup(s, len);
	if (!t)
		return MF_ENOMEM;
	int rc = 0;
	bool addr = strchr(t, '@') && !strpbrk(t, " \t\"<>,;:()[]\\");
	if (out->len && mf_buf_addstr(out, ",\r\n ") < 0)
		rc = MF_ENOMEM;
	if (rc == 0 && addr) {
		rc = mf_buf_printf(out, "<%s>", t) < 0 ? MF_ENOMEM : 0;
	} else if (rc == 0) {
		/* a display name without an address: an empty group keeps the
		 * name and is valid RFC 5322 */
		rc = pst_hdr_phrase(out, t);
		if (rc == 0 && mf_buf_addstr(out, ":;") < 0)
			rc = MF_ENOMEM;
	}
	free(t);
	return rc;
}

static int address_list(struct mf_buf *hdr, const char *name, const char *display)
{
	struct mf_buf v = { 0 };
	int rc = 0;
	const char *p = display;
	while (rc == 0 && *p) {
		const char *e = strchr(p, ';');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		rc = address_entry(&v, p, len);
		p += len;
		if (*p == ';')
			p++;
	}
	if (rc == 0 && v.len) {
		if (mf_buf_printf(hdr, "%s: ", name) < 0 || mf_buf_add(hdr, v.data, v.len) < 0 ||
		    mf_buf_addstr(hdr, "\r\n") < 0)
			rc = MF_ENOMEM;
	}
	mf_buf_free(&v);
	return rc;
}

/* Message ids as <...> tokens (PSTs hold them with or without brackets). */
static int msgid_header(struct mf_buf *hdr, const char *name, const char *v)
{
	struct mf_buf clean = { 0 };
	for (const char *p = v; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c > 32 && c < 127 && mf_buf_add(&clean, p, 1) < 0) {
			mf_buf_free(&clean);
			return MF_ENOMEM;
		}
	}
	int rc = 0;
	if (clean.len) {
		bool br = clean.data[0] == '<';
		if (mf_buf_printf(hdr, "%s: %s%.*s%s\r\n", name, br ? "" : "<", (int)clean.len,
				  clean.data, br ? "" : ">") < 0)
			rc = MF_ENOMEM;
	}
	mf_buf_free(&clean);
	return rc;
}

static int synth_headers(struct msgstate *m, struct mf_buf *hdr, const struct header_seen *seen)
{
	const struct pst_mime_ctx *ctx = m->ctx;
	pst_item *it = m->item;
	pst_item_email *em = m->em;
	int rc = 0;
	char *name = NULL, *addr = NULL, *to = NULL, *cc = NULL, *subj = NULL, *mid = NULL,
	     *irt = NULL;

	if (!seen->from) {
		name = str_utf8(ctx, it, &em->outlook_sender_name, &rc);
		if (!name)
			name = str_utf8(ctx, it, &em->outlook_sender_name2, &rc);
		addr = str_utf8(ctx, it, &em->sender_address, &rc);
		if (!addr || !strchr(addr, '@')) {
			free(addr);
			addr = str_utf8(ctx, it, &em->sender2_address, &rc);
		}
		if (addr && (!strchr(addr, '@') || strpbrk(addr, " \t\"<>,;:()[]\\"))) {
			free(addr);
			addr = NULL;
		}
		if (rc < 0)
			goto out;
		if (name || addr) {
			rc = mf_buf_addstr(hdr, "From: ") < 0 ? MF_ENOMEM : 0;
			if (rc == 0 && name)
				rc = pst_hdr_phrase(hdr, name);
			if (rc == 0 && addr)
				rc = mf_buf_printf(hdr, "%s<%s>", name ? " " : "", addr) < 0 ? MF_ENOMEM : 0;
			else if (rc == 0)
				/* no SMTP address (an Exchange-internal sender):
				 * an address that cannot be mistaken for one */
				rc = mf_buf_addstr(hdr, " <unknown@invalid>") < 0 ? MF_ENOMEM : 0;
			if (rc == 0 && mf_buf_addstr(hdr, "\r\n") < 0)
				rc = MF_ENOMEM;
			if (rc < 0)
				goto out;
		}
	}
	if (!seen->to && (to = str_utf8(ctx, it, &em->sentto_address, &rc)) &&
	    (rc = address_list(hdr, "To", to)) < 0)
		goto out;
	if (!seen->cc && (cc = str_utf8(ctx, it, &em->cc_address, &rc)) &&
	    (rc = address_list(hdr, "Cc", cc)) < 0)
		goto out;
	if (rc < 0)
		goto out;
	if (!seen->subject) {
		subj = str_utf8(ctx, it, &it->subject, &rc);
		if (rc < 0 || mf_buf_addstr(hdr, "Subject: ") < 0 ||
		    (subj && pst_hdr_text(hdr, subj, 9) < 0) || mf_buf_addstr(hdr, "\r\n") < 0) {
			rc = MF_ENOMEM;
			goto out;
		}
	}
	if (!seen->date) {
		int64_t t = pst_filetime_unix(em->sent_date);
		if (!t)
			t = pst_filetime_unix(em->arrival_date);
		if (!t)
			t = pst_filetime_unix(it->create_date);
		if (t) {
			char d[64];
			mf_mime_date(t, d, sizeof(d));
			if (mf_buf_printf(hdr, "Date: %s\r\n", d) < 0) {
				rc = MF_ENOMEM;
				goto out;
			}
		}
	}
	if (!seen->msgid && (mid = str_utf8(ctx, it, &em->messageid, &rc)) &&
	    (rc = msgid_header(hdr, "Message-ID", mid)) < 0)
		goto out;
	if (!seen->inreplyto && (irt = str_utf8(ctx, it, &em->in_reply_to, &rc)) &&
	    (rc = msgid_header(hdr, "In-Reply-To", irt)) < 0)
		goto out;
	if (rc < 0)
		goto out;
	/* PR_IMPORTANCE high; libpst cannot tell "low" from "absent" */
	if (!seen->from && em->importance == 2 && mf_buf_addstr(hdr, "Importance: high\r\n") < 0)
		rc = MF_ENOMEM;
out:
	free(name);
	free(addr);
	free(to);
	free(cc);
	free(subj);
	free(mid);
	free(irt);
	return rc;
}

/* ---- bodies ------------------------------------------------------------- */

static int body_entity(struct msgstate *m, struct mf_buf *out, bool *has_html,
		       struct mf_err *err)
{
	const struct pst_mime_ctx *ctx = m->ctx;
	pst_item *it = m->item;
	pst_item_email *em = m->em;
	char tmime[32], tic[32], hmime[32], hic[32];
	pst_item_charset(ctx, it, false, tmime, sizeof(tmime), tic, sizeof(tic));
	pst_item_charset(ctx, it, true, hmime, sizeof(hmime), hic, sizeof(hic));

	const pst_string *text = it->body.str ? &it->body : NULL;
	if (!text && it->type == PST_TYPE_REPORT && em->report_text.str)
		text = &em->report_text;
	const pst_string *html = em->htmlbody.str && em->htmlbody.str[0] ? &em->htmlbody : NULL;

	struct parts ps = { 0 };
	struct mf_buf part = { 0 }, conv = { 0 };
	char *rtf = NULL;
	size_t rtflen = 0;
	int rc = 0;

	if (text) {
		rc = text_part("plain", text->is_utf8 ? "utf-8" : tmime,
			       (const unsigned char *)text->str, strlen(text->str), &part);
		if (rc == 0)
			rc = parts_take(&ps, &part);
	}
	if (rc == 0 && html) {
		rc = text_part("html", html->is_utf8 ? "utf-8" : hmime,
			       (const unsigned char *)html->str, strlen(html->str), &part);
		if (rc == 0)
			rc = parts_take(&ps, &part);
		*has_html = true;
	}
	if (rc == 0 && !html && em->rtf_compressed.data && em->rtf_compressed.size) {
		struct mf_err rerr = { 0 };
		int r = pst_rtf_decompress((const unsigned char *)em->rtf_compressed.data,
					   em->rtf_compressed.size, &rtf, &rtflen, &rerr);
		if (r == MF_ENOMEM) {
			rc = r;
		} else if (r < 0) {
			rc = note(m, "%s", rerr.msg);
		} else if (mf_rtf_is_html((const unsigned char *)rtf, rtflen)) {
			rc = pst_rtf_to_html(rtf, rtflen, &conv);
			if (rc == 0)
				rc = text_part("html", "utf-8", (const unsigned char *)conv.data,
					       conv.len, &part);
			if (rc == 0)
				rc = parts_take(&ps, &part);
			*has_html = true;
		} else if (!text) {
			rc = text_part("rtf", "us-ascii", (const unsigned char *)rtf, rtflen, &part);
			if (rc == 0)
				rc = parts_take(&ps, &part);
		}
	}
	if (rc == 0 && ps.n == 0) {
		rc = text_part("plain", "us-ascii", (const unsigned char *)"", 0, &part);
		if (rc == 0)
			rc = parts_take(&ps, &part);
	}
	if (rc == 0)
		rc = wrap("alternative", NULL, &ps, out);
	if (rc == MF_EMSG)
		mf_err_set(err, MF_EMSG, "too many body parts");
	free(rtf);
	mf_buf_free(&conv);
	mf_buf_free(&part);
	parts_free(&ps);
	return rc;
}

/* ---- attachments -------------------------------------------------------- */

static int attach_headers(struct mf_buf *out, const char *type, const char *fname,
			  const char *cid, bool inline_)
{
	if (mf_buf_printf(out, "Content-Type: %s", type) < 0)
		return MF_ENOMEM;
	if (fname && pst_hdr_param(out, "name", fname) < 0)
		return MF_ENOMEM;
	if (mf_buf_addstr(out, "\r\n") < 0)
		return MF_ENOMEM;
	if (cid) {
		struct mf_buf c = { 0 };
		for (const char *p = cid; *p; p++) {
			if ((unsigned char)*p > 32 && (unsigned char)*p < 127 && *p != '<' && *p != '>' &&
			    mf_buf_add(&c, p, 1) < 0) {
				mf_buf_free(&c);
				return MF_ENOMEM;
			}
		}
		int r = c.len ? mf_buf_printf(out, "Content-ID: <%.*s>\r\n", (int)c.len, c.data) : 0;
		mf_buf_free(&c);
		if (r < 0)
			return MF_ENOMEM;
	}
	if (mf_buf_addstr(out, inline_ ? "Content-Disposition: inline" : "Content-Disposition: attachment") < 0)
		return MF_ENOMEM;
	if (fname && pst_hdr_param(out, "filename", fname) < 0)
		return MF_ENOMEM;
	if (mf_buf_addstr(out, "\r\n") < 0)
		return MF_ENOMEM;
	return 0;
}

static bool has_8bit(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)p[i] > 127 || p[i] == 0)
			return true;
	}
	return false;
}

static int embedded_part(struct msgstate *m, pst_item_attach *a, const char *fname,
			 struct mf_buf *out, bool *done)
{
	const struct pst_mime_ctx *ctx = m->ctx;
	*done = false;
	if (m->depth + 1 >= MAX_DEPTH)
		return note(m, "embedded message nested too deep (%s): not included", "> 8");
	pst_index_ll *ptr = pst_getID(ctx->pf, a->i_id);
	if (!ptr)
		return note(m, "embedded message %s cannot be found in the PST: not included",
			    fname ? fname : "(unnamed)");
	pst_desc_tree d;
	memset(&d, 0, sizeof(d));
	d.desc = ptr;
	pst_item *sub = pst_parse_item(ctx->pf, &d, a->id2_head);
	if (!sub)
		return note(m, "embedded message %s cannot be parsed: not included",
			    fname ? fname : "(unnamed)");
	struct mf_buf bytes = { 0 };
	struct mf_err serr = { 0 };
	int rc = build_message(ctx, sub, m->depth + 1, &bytes, &serr);
	pst_freeItem(sub);
	if (rc == MF_ENOMEM) {
		mf_buf_free(&bytes);
		return rc;
	}
	if (rc < 0) {
		mf_buf_free(&bytes);
		return note(m, "embedded message cannot be converted: %s", serr.msg);
	}
	if (mf_buf_addstr(out, "Content-Type: message/rfc822\r\n") < 0 ||
	    (has_8bit(bytes.data, bytes.len) &&
	     mf_buf_addstr(out, "Content-Transfer-Encoding: 8bit\r\n") < 0) ||
	    mf_buf_addstr(out, "Content-Disposition: attachment") < 0 ||
	    (fname && pst_hdr_param(out, "filename", fname) < 0) ||
	    mf_buf_addstr(out, "\r\n\r\n") < 0 || mf_buf_add(out, bytes.data, bytes.len) < 0)
		rc = MF_ENOMEM;
	mf_buf_free(&bytes);
	*done = rc == 0;
	return rc;
}

/* S/MIME items keep their original entity as the only attachment: that
 * attachment is the message body (MS-OXOSMIME). Returns 1 when handled. */
static int smime_entity(struct msgstate *m, struct mf_buf *out)
{
	pst_item *it = m->item;
	pst_item_attach *a = it->attach;
	if (!it->ascii_type || strncasecmp(it->ascii_type, "IPM.Note.SMIME", 14) || !a || a->next ||
	    a->method == PST_ATTACH_EMBEDDED)
		return 0;
	struct mf_buf mt = { 0 };
	if (pst_string_utf8(m->ctx, it, &a->mimetype, &mt) < 0)
		return MF_ENOMEM;
	bool signed_ = mt.len && !strncasecmp(mt.data, "multipart/signed", 16);
	bool p7m = mt.len && (!strncasecmp(mt.data, "application/pkcs7-mime", 22) ||
			      !strncasecmp(mt.data, "application/x-pkcs7-mime", 24));
	mf_buf_free(&mt);
	if (!signed_ && !p7m)
		return 0;
	pst_binary bin = pst_attach_to_mem(m->ctx->pf, a);
	if (!bin.data)
		return 0;
	int rc = 1;
	if (signed_) {
		/* the attachment holds the whole signed entity, headers
		 * included: use it byte for byte */
		if (mf_buf_add(out, bin.data, bin.size) < 0)
			rc = MF_ENOMEM;
	} else if (mf_buf_addstr(out, "Content-Type: application/pkcs7-mime; smime-type=enveloped-data;\r\n"
				      "\tname=\"smime.p7m\"\r\n"
				      "Content-Transfer-Encoding: base64\r\n"
				      "Content-Disposition: attachment; filename=\"smime.p7m\"\r\n\r\n") < 0 ||
		   pst_b64_append(out, (const unsigned char *)bin.data, bin.size) < 0) {
		rc = MF_ENOMEM;
	}
	free(bin.data);
	return rc;
}

/* An attachment's bytes. libpst reads it block by block into an unlinked
 * spill file (engine/spill.h), mapped here, so that a big one costs page
 * cache rather than heap; one already in memory is used where it is. When
 * the spill directory cannot take it (full), libpst reads it into the heap
 * as before. */
struct att_bytes {
	const unsigned char *data;
	size_t size;
	void *map;  /* the mapping, or NULL */
	char *heap; /* pst_attach_to_mem's buffer, or NULL */
};

static bool att_spill(const struct pst_mime_ctx *ctx, pst_item_attach *a, struct att_bytes *ab)
{
	FILE *f = mf_spill_file();
	if (!f)
		return false;
	size_t n = pst_attach_to_file(ctx->pf, a, f);
	bool ok = fflush(f) == 0 && !ferror(f);
	if (ok && n > 0) {
		void *p = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fileno(f), 0);
		ok = p != MAP_FAILED;
		if (ok) {
			ab->data = p;
			ab->size = n;
			ab->map = p;
		}
	}
	fclose(f); /* the mapping stays */
	return ok;
}

static void att_open(const struct pst_mime_ctx *ctx, pst_item_attach *a, struct att_bytes *ab)
{
	memset(ab, 0, sizeof(*ab));
	if (a->data.data) {
		ab->data = (const unsigned char *)a->data.data;
		ab->size = a->data.size;
		return;
	}
	if (att_spill(ctx, a, ab))
		return;
	pst_binary bin = pst_attach_to_mem(ctx->pf, a);
	ab->heap = bin.data;
	ab->data = (const unsigned char *)bin.data;
	ab->size = bin.data ? bin.size : 0;
}

static void att_close(struct att_bytes *ab)
{
	if (ab->map)
		munmap(ab->map, ab->size);
	free(ab->heap);
	memset(ab, 0, sizeof(*ab));
}

static int build_entity(struct msgstate *m, struct mf_buf *out, struct mf_err *err)
{
	const struct pst_mime_ctx *ctx = m->ctx;
	pst_item *it = m->item;
	int rc = smime_entity(m, out);
	if (rc != 0)
		return rc < 0 ? rc : 0;

	bool has_html = false;
	/* message bytes: big ones spill to a file (engine/spill.h) */
	struct mf_buf body = { .spill = true }, part = { 0 }, rel = { .spill = true };
	struct parts related = { 0 }, mixed = { 0 };
	char *fname = NULL, *cid = NULL;
	unsigned n = 0;

	rc = body_entity(m, &body, &has_html, err);
	if (rc < 0)
		goto out;
	for (pst_item_attach *a = it->attach; a && rc == 0; a = a->next, n++) {
		part.spill = true;
		free(fname);
		free(cid);
		fname = str_utf8(ctx, it, a->filename2.str ? &a->filename2 : &a->filename1, &rc);
		cid = str_utf8(ctx, it, &a->content_id, &rc);
		if (rc < 0)
			break;
		if (a->method == PST_ATTACH_EMBEDDED) {
			bool done;
			rc = embedded_part(m, a, fname, &part, &done);
			if (rc == 0 && done)
				rc = parts_take(&mixed, &part);
			continue;
		}
		if (!a->data.data && (a->i_id == 0 || a->i_id == (uint64_t)-1) &&
		    a->method == PST_ATTACH_NONE)
			continue; /* an empty attachment record: nothing there */
		if (!a->data.data && a->i_id == (uint64_t)-1) {
			rc = note(m, "attachment %s is a reference to a file outside the PST: not included",
				  fname ? fname : "(unnamed)");
			continue;
		}
		struct att_bytes bin;
		struct mf_buf mt = { 0 };
		char type[128];
		att_open(ctx, a, &bin);
		if (pst_string_utf8(ctx, it, &a->mimetype, &mt) < 0) {
			att_close(&bin);
			rc = MF_ENOMEM;
			break;
		}
		attach_type(mt.len ? mt.data : NULL, fname, type, sizeof(type));
		mf_buf_free(&mt);
		bool inline_ = cid && has_html;
		rc = attach_headers(&part, type, fname, cid, inline_);
		if (rc == 0 && (mf_buf_addstr(&part, "Content-Transfer-Encoding: base64\r\n\r\n") < 0 ||
				pst_b64_append(&part, bin.data, bin.size) < 0))
			rc = MF_ENOMEM;
		att_close(&bin);
		if (rc == 0)
			rc = parts_take(inline_ ? &related : &mixed, &part);
	}
	if (rc < 0)
		goto out;
	if (related.n) {
		/* body first, then the parts it refers to */
		struct parts all = { 0 };
		if ((rc = parts_take(&all, &body)) == 0) {
			for (size_t i = 0; i < related.n && rc == 0; i++)
				rc = parts_take(&all, &related.v[i]);
			related.n = 0;
		}
		if (rc == 0)
			rc = multipart("related", NULL, &all, &rel);
		parts_free(&all);
		if (rc < 0)
			goto out;
		body = rel;
		memset(&rel, 0, sizeof(rel));
	}
	if (mixed.n) {
		struct parts all = { 0 };
		if ((rc = parts_take(&all, &body)) == 0) {
			for (size_t i = 0; i < mixed.n && rc == 0; i++)
				rc = parts_take(&all, &mixed.v[i]);
			mixed.n = 0;
		}
		if (rc == 0)
			rc = multipart(it->type == PST_TYPE_REPORT ? "report" : "mixed", NULL, &all, out);
		parts_free(&all);
	} else {
		*out = body;
		memset(&body, 0, sizeof(body));
	}
out:
	if (rc == MF_EMSG && err && !err->code)
		mf_err_set(err, MF_EMSG, "too many attachments (more than %d)", MAX_PARTS);
	free(fname);
	free(cid);
	mf_buf_free(&body);
	mf_buf_free(&part);
	mf_buf_free(&rel);
	parts_free(&related);
	parts_free(&mixed);
	return rc;
}

static int build_message(const struct pst_mime_ctx *ctx, pst_item *item, int depth,
			 struct mf_buf *out, struct mf_err *err)
{
	static pst_item_email empty; /* read only: all fields absent */
	struct msgstate m = { .ctx = ctx, .item = item, .depth = depth };
	m.em = item->email ? item->email : &empty;
	struct mf_buf hdr = { 0 }, ent = { 0 };
	struct header_seen seen = { 0 };
	int rc = transport_headers(&m, &hdr, &seen);
	if (rc == 0)
		rc = synth_headers(&m, &hdr, &seen);
	if (rc == 0)
		rc = build_entity(&m, &ent, err);
	if (rc == 0 && (mf_buf_add(out, hdr.data, hdr.len) < 0 ||
			mf_buf_add(out, m.notes.data, m.notes.len) < 0 ||
			mf_buf_addstr(out, "MIME-Version: 1.0\r\n") < 0 ||
			mf_buf_add(out, ent.data, ent.len) < 0))
		rc = MF_ENOMEM;
	if (rc == MF_ENOMEM)
		mf_err_set(err, MF_ENOMEM, "out of memory building the message");
	mf_buf_free(&hdr);
	mf_buf_free(&ent);
	mf_buf_free(&m.notes);
	return rc;
}

int pst_mime_build(const struct pst_mime_ctx *ctx, pst_item *item, struct mf_buf *out,
		   struct mf_err *err)
{
	return build_message(ctx, item, 0, out, err);
}
