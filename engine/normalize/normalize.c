/* normalize.c - the normalize stage: line ends, bare CR and NUL first (whole
 * message), then per-entity edits on the parsed message (TNEF decoding,
 * re-encoding of parts with over-long lines, header folding, Message-ID,
 * Date, Disposition-Notification-To). Edits replace byte ranges; everything
 * outside them is copied unchanged, so a message that needs nothing comes
 * out byte for byte. */
#include "normalize.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../spill.h"
#include "../util.h"
#include "mime.h"
#include "tnef.h"

const char *mf_norm_kind_name(unsigned bit_index)
{
	static const char *const names[MF_NORM_NKINDS] = {
		"line-endings", "bare-cr",	      "nul-removed",
		"long-lines",	"message-id-added", "date-added",
		"tnef-decoded", "tnef-not-decoded", "read-receipt-dropped",
		"8bit-headers-encoded",
	};
	return bit_index < MF_NORM_NKINDS ? names[bit_index] : "unknown";
}

/* Does the message need its line ends rewritten for the target? */
static unsigned scan_line_ends(const unsigned char *in, size_t len, bool crlf)
{
	unsigned changes = 0;
	for (size_t i = 0; i < len; i++) {
		if (in[i] == '\0') {
			changes |= MF_NORM_NUL;
		} else if (in[i] == '\r') {
			if (i + 1 < len && in[i + 1] == '\n') {
				if (!crlf)
					changes |= MF_NORM_LINE_ENDINGS;
				i++;
			} else {
				changes |= MF_NORM_BARE_CR;
			}
		} else if (in[i] == '\n' && crlf) {
			changes |= MF_NORM_LINE_ENDINGS;
		}
	}
	return changes;
}

static size_t rewrite_line_ends(const unsigned char *in, size_t len, bool crlf,
				unsigned char *out)
{
	size_t w = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = in[i];
		if (c == '\0')
			continue;
		if (c == '\r' || c == '\n') {
			if (c == '\r' && i + 1 < len && in[i + 1] == '\n')
				i++;
			if (crlf)
				out[w++] = '\r';
			out[w++] = '\n';
			continue;
		}
		out[w++] = c;
	}
	return w;
}

static void add_note(struct mf_norm_result *res, const char *msg)
{
	size_t used = strlen(res->note);
	if (used + 3 >= sizeof(res->note))
		return;
	if (used)
		used += (size_t)snprintf(res->note + used, sizeof(res->note) - used, "; ");
	if (used < sizeof(res->note))
		snprintf(res->note + used, sizeof(res->note) - used, "%s", msg);
}

/* Fields a header edit may drop. */
enum {
	DROP_CT = 1u << 0,
	DROP_CTE = 1u << 1,
	DROP_CD = 1u << 2,
	DROP_DNT = 1u << 3,
};
static const char *const drop_names[] = { "content-type", "content-transfer-encoding",
					  "content-disposition", "disposition-notification-to" };

struct edit {
	size_t s, e; /* replace [s, e) by r */
	bool skip;   /* a reserved slot that was not needed */
	struct mf_out r;
};

struct ctx {
	const struct mf_norm_opts *opts;
	const unsigned char *p;
	size_t len;
	const char *eol;
	int64_t idate;
	struct edit *ed;
	size_t ned, edcap;
	struct mf_norm_result *res;
	int err;
};

static struct edit *new_edit(struct ctx *c, size_t s, size_t e)
{
	if (c->ned == c->edcap) {
		size_t cap = c->edcap ? 2 * c->edcap : 8;
		struct edit *g = realloc(c->ed, cap * sizeof(*g));
		if (!g) {
			c->err = MF_ENOMEM;
			return NULL;
		}
		c->ed = g;
		c->edcap = cap;
	}
	struct edit *ed = &c->ed[c->ned++];
	memset(ed, 0, sizeof(*ed));
	ed->s = s;
	ed->e = e;
	return ed;
}

static bool has_field(const unsigned char *p, const struct mf_part *pt, const char *name)
{
	size_t fs, fe, vs, ve;
	return mf_mime_field(p + pt->start, pt->hend - pt->start, name, &fs, &fe, &vs, &ve);
}

/* Length of the longest line in p[s..e), line ends excluded. */
static size_t longest_line(const unsigned char *p, size_t s, size_t e)
{
	size_t best = 0;
	while (s < e) {
		const unsigned char *nl = memchr(p + s, '\n', e - s);
		size_t le = nl ? (size_t)(nl - p) : e;
		size_t ce = le > s && p[le - 1] == '\r' ? le - 1 : le;
		if (ce - s > best)
			best = ce - s;
		s = nl ? le + 1 : e;
	}
	return best;
}

static bool is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* Copy the physical header line p[s..e) (no line end), folding it before
 * white space so that no piece is longer than max. Returns false if some
 * piece could not be made short enough (no white space to fold at). */
static bool fold_line(const unsigned char *p, size_t s, size_t e, size_t max, const char *eol,
		      struct mf_out *o, unsigned *breaks)
{
	bool ok = true;
	size_t pos = s;
	size_t want = max < 78 ? max : 78;
	while (e - pos > max) {
		size_t first = pos;
		while (first < e && is_wsp(p[first]))
			first++;
		size_t k = 0;
		for (size_t j = pos + want; j > first; j--)
			if (j < e && is_wsp(p[j])) {
				k = j;
				break;
			}
		if (!k)
			for (size_t j = pos + want + 1; j <= pos + max && j < e; j++)
				if (is_wsp(p[j]) && j > first)
					k = j;
		if (!k) {
			ok = false;
			break;
		}
		/* do not leave trailing blanks (a blank-only piece) before the break */
		size_t cut = k;
		while (cut > first + 1 && is_wsp(p[cut - 1]))
			cut--;
		mf_out_add(o, p + pos, cut - pos);
		mf_out_str(o, eol);
		(*breaks)++;
		pos = cut;
	}
	mf_out_add(o, p + pos, e - pos);
	return ok;
}

/* Rebuild the header block p[start..hend): drop fields in `drop`, fold long
 * lines, then append `adds` (complete lines). */
static void rebuild_header(struct ctx *c, const struct mf_part *pt, unsigned drop,
			   const struct mf_out *adds, struct mf_out *o)
{
	const unsigned char *p = c->p;
	size_t max = c->opts->max_line;
	size_t i = pt->start;
	bool dropping = false;
	unsigned breaks = 0;
	while (i < pt->hend) {
		const unsigned char *nl = memchr(p + i, '\n', pt->hend - i);
		size_t le = nl ? (size_t)(nl - p) : pt->hend;
		size_t ce = le > i && p[le - 1] == '\r' ? le - 1 : le;
		size_t next = nl ? le + 1 : pt->hend;
		if (!is_wsp(p[i])) {
			dropping = false;
			for (unsigned k = 0; k < 4; k++) {
				size_t nlen = strlen(drop_names[k]);
				if (!(drop & (1u << k)) || ce - i <= nlen ||
				    strncasecmp((const char *)p + i, drop_names[k], nlen) != 0)
					continue;
				size_t j = i + nlen;
				while (j < ce && is_wsp(p[j]))
					j++;
				if (j < ce && p[j] == ':')
					dropping = true;
			}
		}
		if (!dropping) {
			if (max && ce - i > max) {
				if (!fold_line(p, i, ce, max, c->eol, o, &breaks))
					add_note(c->res, "a header line too long has no place to fold");
			} else {
				mf_out_add(o, p + i, ce - i);
			}
			if (nl)
				mf_out_add(o, p + ce, next - ce);
			else if (adds->b.len)
				mf_out_str(o, c->eol);
		}
		i = next;
	}
	mf_out_add(o, adds->b.data, adds->b.len);
	if (!pt->blank && adds->b.len)
		mf_out_str(o, c->eol); /* the header block had no blank line: make one */
	if (breaks)
		c->res->changes |= MF_NORM_LONG_LINES;
}

static bool is_tnef_part(const unsigned char *p, const struct mf_part *pt)
{
	if (strcmp(pt->type, "application/ms-tnef") == 0 ||
	    strcmp(pt->type, "application/vnd.ms-tnef") == 0)
		return true;
	size_t fs, fe, vs, ve;
	char name[64];
	const unsigned char *h = p + pt->start;
	size_t hlen = pt->hend - pt->start;
	if (mf_mime_field(h, hlen, "content-type", &fs, &fe, &vs, &ve) &&
	    mf_mime_param(h + vs, ve - vs, "name", name, sizeof(name)) &&
	    strcasecmp(name, "winmail.dat") == 0)
		return true;
	if (mf_mime_field(h, hlen, "content-disposition", &fs, &fe, &vs, &ve) &&
	    mf_mime_param(h + vs, ve - vs, "filename", name, sizeof(name)) &&
	    strcasecmp(name, "winmail.dat") == 0)
		return true;
	return false;
}

/* Try to replace a TNEF leaf; returns true if its body was replaced (and
 * fills the header plan). */
static bool do_tnef(struct ctx *c, const struct mf_part *pt, unsigned *drop, struct mf_out *adds)
{
	struct mf_out raw = { 0 };
	struct mf_tnef_mime m = { 0 };
	char why[256] = "";
	bool done = false;
	mf_mime_decode_body(c->p, pt, &raw);
	if (raw.err) {
		c->err = raw.err;
		goto out;
	}
	int rc = mf_tnef_to_mime((const unsigned char *)raw.b.data, raw.b.len, c->eol, &m, why,
				 sizeof(why));
	if (rc == MF_ENOMEM) {
		c->err = rc;
		goto out;
	}
	if (rc) {
		c->res->changes |= MF_NORM_TNEF_FAILED;
		char msg[300];
		snprintf(msg, sizeof(msg), "winmail.dat kept: %s", why[0] ? why : "not decodable");
		add_note(c->res, msg);
		goto out;
	}
	struct edit *ed = new_edit(c, pt->body, pt->end);
	if (!ed)
		goto out;
	ed->r = m.body;
	memset(&m.body, 0, sizeof(m.body));
	*drop |= DROP_CT | DROP_CTE | DROP_CD;
	mf_out_str(adds, "Content-Type: ");
	mf_out_add(adds, m.ctype.b.data, m.ctype.b.len);
	mf_out_str(adds, c->eol);
	c->res->changes |= MF_NORM_TNEF;
	if (why[0]) { /* decoded, but something in the stream was left out */
		char msg[300];
		snprintf(msg, sizeof(msg), "winmail.dat decoded: %s", why);
		add_note(c->res, msg);
	}
	done = true;
out:
	mf_out_free(&raw);
	mf_out_free(&m.ctype);
	mf_out_free(&m.body);
	return done;
}

/* Re-encode a leaf whose body has lines longer than the limit. */
static bool do_long_lines(struct ctx *c, const struct mf_part *pt, unsigned *drop,
			  struct mf_out *adds)
{
	struct mf_out raw = { 0 };
	mf_mime_decode_body(c->p, pt, &raw);
	if (raw.err) {
		c->err = raw.err;
		mf_out_free(&raw);
		return false;
	}
	bool text = pt->type[0] == '\0' || strncmp(pt->type, "text/", 5) == 0;
	const unsigned char *d = (const unsigned char *)raw.b.data;
	size_t n = raw.b.len, ctl = 0;
	for (size_t k = 0; k < n; k++)
		if (d[k] < 32 && d[k] != '\r' && d[k] != '\n' && d[k] != '\t')
			ctl++;
	if (ctl > n / 100)
		text = false;
	struct edit *ed = new_edit(c, pt->body, pt->end);
	if (!ed) {
		mf_out_free(&raw);
		return false;
	}
	if (text)
		mf_qp_encode(d, n, true, c->eol, &ed->r);
	else
		mf_b64_encode(d, n, c->eol, &ed->r);
	mf_out_free(&raw);
	*drop |= DROP_CTE;
	mf_out_fmt(adds, "Content-Transfer-Encoding: %s%s", text ? "quoted-printable" : "base64",
		   c->eol);
	if (strncmp(pt->type, "multipart/", 10) == 0 || strncmp(pt->type, "message/", 8) == 0) {
		char msg[160];
		snprintf(msg, sizeof(msg), "%s part re-encoded (no other way to shorten its lines)",
			 pt->type);
		add_note(c->res, msg);
	}
	c->res->changes |= MF_NORM_LONG_LINES;
	return true;
}

static void plan_part(struct ctx *c, const struct mf_part *pts, size_t idx)
{
	const struct mf_part *pt = &pts[idx];
	const struct mf_norm_opts *o = c->opts;
	unsigned drop = 0;
	struct mf_out adds = { 0 };
	bool top = idx == 0;
	bool body_changed = false;
	if (top && o->drop_dnt && has_field(c->p, pt, "disposition-notification-to")) {
		drop |= DROP_DNT;
		c->res->changes |= MF_NORM_DNT_DROPPED;
	}
	/* Body edits first: their edit must follow the header edit in the
	 * list, so remember where the header edit goes. */
	size_t hdr_slot = c->ned;
	if (!new_edit(c, pt->start, pt->hend))
		return;
	if (pt->leaf && pt->body <= pt->end) {
		if (o->tnef == MF_TNEF_DECODE && is_tnef_part(c->p, pt))
			body_changed = do_tnef(c, pt, &drop, &adds);
		if (!body_changed && !c->err && o->max_line &&
		    longest_line(c->p, pt->body, pt->end) > o->max_line)
			body_changed = do_long_lines(c, pt, &drop, &adds);
	}
	if (body_changed && top && !has_field(c->p, pt, "mime-version"))
		mf_out_fmt(&adds, "MIME-Version: 1.0%s", c->eol);
	if (top && o->add_message_id && !has_field(c->p, pt, "message-id")) {
		unsigned char h[MF_SHA256_LEN];
		char hex[2 * MF_SHA256_LEN + 1];
		mf_sha256(c->p, c->len, h);
		mf_hex(h, 16, hex);
		mf_out_fmt(&adds, "Message-ID: <%s@mailferry.invalid>%s", hex, c->eol);
		c->res->changes |= MF_NORM_MESSAGE_ID;
	}
	if (top && o->add_date && c->idate > 0 && !has_field(c->p, pt, "date")) {
		char d[64];
		mf_mime_date(c->idate, d, sizeof(d));
		mf_out_fmt(&adds, "Date: %s%s", d, c->eol);
		c->res->changes |= MF_NORM_DATE;
	}
	bool fold = o->max_line && longest_line(c->p, pt->start, pt->hend) > o->max_line;
	struct edit *he = &c->ed[hdr_slot];
	if (c->err || adds.err) {
		c->err = c->err ? c->err : adds.err;
	} else if (drop || adds.b.len || fold) {
		rebuild_header(c, pt, drop, &adds, &he->r);
	} else {
		he->skip = true;
	}
	mf_out_free(&adds);
}

static void free_edits(struct ctx *c)
{
	for (size_t k = 0; k < c->ned; k++)
		mf_out_free(&c->ed[k].r);
	free(c->ed);
	c->ed = NULL;
	c->ned = c->edcap = 0;
}

int mf_normalize(const struct mf_norm_opts *opts, const unsigned char *in, size_t len,
		 int64_t idate, struct mf_norm_result *res)
{
	memset(res, 0, sizeof(*res));
	struct ctx c = { .opts = opts, .eol = opts->crlf ? "\r\n" : "\n", .idate = idate,
			 .res = res };
	struct mf_part *parts = NULL;
	size_t nparts = 0;
	unsigned char *fixed = NULL;
	struct mf_out enc8 = { 0 };
	int rc = 0;

	unsigned changes = scan_line_ends(in, len, opts->crlf);
	c.p = in;
	c.len = len;
	if (changes) {
		/* every LF may become CRLF: at most twice the size */
		fixed = mf_bytes_alloc(2 * len + 1);
		if (!fixed) {
			rc = MF_ENOMEM;
			goto out;
		}
		c.len = rewrite_line_ends(in, len, opts->crlf, fixed);
		c.p = fixed;
	}
	res->changes = changes;
	if (opts->encode_8bit_headers) {
		bool enc = false;
		if (mf_norm_encode_8bit_headers(c.p, c.len, c.eol, &enc8, &enc) < 0) {
			rc = MF_ENOMEM;
			goto out;
		}
		if (enc) {
			c.p = (const unsigned char *)enc8.b.data;
			c.len = enc8.b.len;
			res->changes |= MF_NORM_HEADERS_8BIT;
		}
	}
	rc = mf_mime_parse(c.p, c.len, &parts, &nparts);
	if (rc)
		goto out;
	for (size_t k = 0; k < nparts && !c.err; k++)
		plan_part(&c, parts, k);
	if (c.err) {
		rc = c.err;
		goto out;
	}
	size_t total = c.len, prev = 0;
	bool ordered = true;
	for (size_t k = 0; k < c.ned; k++) {
		if (c.ed[k].skip)
			continue;
		if (c.ed[k].s < prev || c.ed[k].e < c.ed[k].s)
			ordered = false;
		prev = c.ed[k].e;
		total += c.ed[k].r.b.len;
	}
	if (!ordered) {
		/* cannot happen with a document-order parse; refuse to guess */
		rc = MF_EINTERNAL;
		goto out;
	}
	res->data = mf_bytes_alloc(total + 1);
	if (!res->data) {
		rc = MF_ENOMEM;
		goto out;
	}
	size_t w = 0, pos = 0;
	for (size_t k = 0; k < c.ned; k++) {
		struct edit *ed = &c.ed[k];
		if (ed->skip)
			continue;
		memcpy(res->data + w, c.p + pos, ed->s - pos);
		w += ed->s - pos;
		if (ed->r.b.len)
			memcpy(res->data + w, ed->r.b.data, ed->r.b.len);
		w += ed->r.b.len;
		pos = ed->e;
	}
	memcpy(res->data + w, c.p + pos, c.len - pos);
	w += c.len - pos;
	res->len = w;
out:
	if (rc) {
		mf_bytes_free(res->data);
		res->data = NULL;
		res->len = 0;
	}
	free_edits(&c);
	free(parts);
	mf_bytes_free(fixed);
	mf_out_free(&enc8);
	return rc;
}

char *mf_header_message_id(const unsigned char *msg, size_t len)
{
	size_t i = 0;
	while (i < len) {
		size_t eol = i;
		while (eol < len && msg[eol] != '\n')
			eol++;
		size_t end = eol;
		if (end > i && msg[end - 1] == '\r')
			end--;
		if (end == i)
			return NULL; /* end of the header block */
		if (end - i > 11 && strncasecmp((const char *)msg + i, "message-id:", 11) == 0) {
			/* The value, unfolded: this line and its continuation lines. */
			size_t vs = i + 11, ve = end;
			size_t next = eol + 1;
			while (next < len && (msg[next] == ' ' || msg[next] == '\t')) {
				size_t e2 = next;
				while (e2 < len && msg[e2] != '\n')
					e2++;
				ve = e2 > next && msg[e2 - 1] == '\r' ? e2 - 1 : e2;
				next = e2 + 1;
			}
			char *v = malloc(ve - vs + 1);
			if (!v)
				return NULL;
			size_t w = 0;
			for (size_t k = vs; k < ve; k++)
				if (msg[k] != '\r' && msg[k] != '\n' && msg[k] != ' ' &&
				    msg[k] != '\t')
					v[w++] = (char)msg[k];
			v[w] = '\0';
			if (!w) {
				free(v);
				return NULL;
			}
			return v;
		}
		i = eol + 1;
	}
	return NULL;
}
