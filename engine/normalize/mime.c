/* mime.c - header lookup, parameters, codecs and an offset-keeping MIME
 * splitter for the normalize stage. Lenient by design: real mail is broken
 * in every way, and the stage must never fail on it, only leave it alone. */
#include "mime.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../error.h"

void mf_out_add(struct mf_out *o, const void *p, size_t n)
{
	if (o->err || !n)
		return;
	if (mf_buf_add(&o->b, p, n) < 0)
		o->err = MF_ENOMEM;
}

void mf_out_str(struct mf_out *o, const char *s)
{
	mf_out_add(o, s, strlen(s));
}

void mf_out_fmt(struct mf_out *o, const char *fmt, ...)
{
	char small[256];
	va_list ap;
	if (o->err)
		return;
	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0) {
		o->err = MF_EINVAL;
		return;
	}
	if ((size_t)n < sizeof(small)) {
		mf_out_add(o, small, (size_t)n);
		return;
	}
	char *big = malloc((size_t)n + 1);
	if (!big) {
		o->err = MF_ENOMEM;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	mf_out_add(o, big, (size_t)n);
	free(big);
}

void mf_out_free(struct mf_out *o)
{
	mf_buf_free(&o->b);
	o->err = 0;
}

/* End of the line starting at i: index of its '\n', or len. */
static size_t line_end(const unsigned char *p, size_t i, size_t len)
{
	const unsigned char *nl = i < len ? memchr(p + i, '\n', len - i) : NULL;
	return nl ? (size_t)(nl - p) : len;
}

/* Does the line p[i..e) start a header field ("Name:")? Returns the
 * length of the name, 0 if not. */
static size_t field_name_len(const unsigned char *p, size_t i, size_t e)
{
	size_t k = i;
	while (k < e && p[k] > 32 && p[k] < 127 && p[k] != ':')
		k++;
	size_t nlen = k - i;
	while (k < e && (p[k] == ' ' || p[k] == '\t'))
		k++;
	return nlen && k < e && p[k] == ':' ? nlen : 0;
}

bool mf_mime_field(const unsigned char *p, size_t hlen, const char *name, size_t *fs,
		   size_t *fe, size_t *vs, size_t *ve)
{
	size_t want = strlen(name);
	size_t i = 0;
	while (i < hlen) {
		size_t e = line_end(p, i, hlen);
		size_t nlen = field_name_len(p, i, e);
		if (nlen == want && strncasecmp((const char *)p + i, name, want) == 0) {
			size_t next = e < hlen ? e + 1 : hlen;
			while (next < hlen && (p[next] == ' ' || p[next] == '\t')) {
				size_t e2 = line_end(p, next, hlen);
				next = e2 < hlen ? e2 + 1 : hlen;
			}
			const unsigned char *colon = memchr(p + i, ':', e - i);
			*fs = i;
			*fe = next;
			*vs = (size_t)(colon - p) + 1;
			*ve = next;
			while (*ve > *vs && (p[*ve - 1] == '\n' || p[*ve - 1] == '\r'))
				(*ve)--;
			return true;
		}
		i = e < hlen ? e + 1 : hlen;
	}
	return false;
}

static bool is_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

void mf_mime_type(const unsigned char *v, size_t vlen, char *out, size_t outsz)
{
	size_t i = 0, w = 0;
	while (i < vlen && is_ws(v[i]))
		i++;
	while (i < vlen && v[i] != ';' && !is_ws(v[i]) && v[i] != '(' && w + 1 < outsz) {
		unsigned char c = v[i++];
		out[w++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
	}
	out[w] = '\0';
}

#define MAX_SECTIONS 64

bool mf_mime_param(const unsigned char *v, size_t vlen, const char *param, char *out,
		   size_t outsz)
{
	/* Sections of an RFC 2231 continued value by index; [0] also holds a
	 * plain value. Offsets into v. */
	size_t sec_s[MAX_SECTIONS], sec_e[MAX_SECTIONS];
	bool sec_ext[MAX_SECTIONS], sec_q[MAX_SECTIONS], have[MAX_SECTIONS];
	memset(have, 0, sizeof(have));
	size_t plen = strlen(param);
	size_t i = 0;
	bool found = false;
	/* skip the type */
	while (i < vlen && v[i] != ';') {
		if (v[i] == '"') {
			i++;
			while (i < vlen && v[i] != '"')
				i++;
		}
		i++;
	}
	while (i < vlen) {
		if (v[i] != ';') {
			i++;
			continue;
		}
		i++;
		while (i < vlen && is_ws(v[i]))
			i++;
		size_t as = i;
		while (i < vlen && v[i] != '=' && v[i] != ';' && !is_ws(v[i]))
			i++;
		size_t ae = i;
		while (i < vlen && is_ws(v[i]))
			i++;
		if (i >= vlen || v[i] != '=')
			continue;
		i++;
		while (i < vlen && is_ws(v[i]))
			i++;
		size_t vs, ve;
		bool quoted = false;
		if (i < vlen && v[i] == '"') {
			quoted = true;
			vs = ++i;
			while (i < vlen && v[i] != '"') {
				if (v[i] == '\\' && i + 1 < vlen)
					i++;
				i++;
			}
			ve = i;
			if (i < vlen)
				i++;
		} else {
			vs = i;
			while (i < vlen && v[i] != ';' && !is_ws(v[i]))
				i++;
			ve = i;
		}
		if (ae - as < plen || strncasecmp((const char *)v + as, param, plen) != 0)
			continue;
		size_t k = as + plen;
		int idx = 0;
		bool ext = false;
		if (k == ae) {
			idx = 0;
		} else if (v[k] == '*') {
			k++;
			if (k == ae) {
				ext = true;
			} else {
				int n = 0;
				while (k < ae && v[k] >= '0' && v[k] <= '9' && n < 1000)
					n = n * 10 + (v[k++] - '0');
				if (k < ae && v[k] == '*') {
					ext = true;
					k++;
				}
				if (k != ae || n >= MAX_SECTIONS)
					continue;
				idx = n;
			}
		} else {
			continue;
		}
		if (have[idx] && !ext)
			continue; /* an extended value wins over a plain one */
		have[idx] = true;
		sec_s[idx] = vs;
		sec_e[idx] = ve;
		sec_ext[idx] = ext;
		sec_q[idx] = quoted;
		found = true;
	}
	if (!found || !outsz)
		return false;
	size_t w = 0;
	for (int s = 0; s < MAX_SECTIONS && have[s]; s++) {
		size_t a = sec_s[s], b = sec_e[s];
		if (sec_ext[s] && s == 0) {
			/* charset'language'value: drop the prefix */
			const unsigned char *q1 = memchr(v + a, '\'', b - a);
			const unsigned char *q2 = q1 ? memchr(q1 + 1, '\'', (size_t)(v + b - q1 - 1)) : NULL;
			if (q2)
				a = (size_t)(q2 - v) + 1;
		}
		for (size_t k = a; k < b && w + 1 < outsz; k++) {
			unsigned char c = v[k];
			if (sec_ext[s] && c == '%' && k + 2 < b && hexval(v[k + 1]) >= 0 &&
			    hexval(v[k + 2]) >= 0) {
				c = (unsigned char)(hexval(v[k + 1]) * 16 + hexval(v[k + 2]));
				k += 2;
			} else if (sec_q[s] && c == '\\' && k + 1 < b) {
				c = v[++k];
			} else if (c == '\r' || c == '\n') {
				continue;
			}
			out[w++] = (char)c;
		}
	}
	out[w] = '\0';
	return true;
}

static int b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

void mf_b64_decode(const unsigned char *in, size_t len, struct mf_out *o)
{
	unsigned acc = 0;
	int bits = 0;
	unsigned char chunk[512];
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		if (in[i] == '=')
			break;
		int v = b64val(in[i]);
		if (v < 0)
			continue;
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			chunk[n++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
			if (n == sizeof(chunk)) {
				mf_out_add(o, chunk, n);
				n = 0;
			}
		}
	}
	mf_out_add(o, chunk, n);
}

void mf_qp_decode(const unsigned char *in, size_t len, struct mf_out *o)
{
	size_t i = 0, lit = 0;
	while (i < len) {
		if (in[i] != '=') {
			i++;
			continue;
		}
		mf_out_add(o, in + lit, i - lit);
		if (i + 2 < len && hexval(in[i + 1]) >= 0 && hexval(in[i + 2]) >= 0) {
			unsigned char c = (unsigned char)(hexval(in[i + 1]) * 16 + hexval(in[i + 2]));
			mf_out_add(o, &c, 1);
			i += 3;
		} else {
			/* soft line break: '=' then optional blanks then a line end */
			size_t k = i + 1;
			while (k < len && (in[k] == ' ' || in[k] == '\t'))
				k++;
			if (k < len && in[k] == '\r')
				k++;
			if (k < len && in[k] == '\n') {
				i = k + 1;
			} else if (k >= len) {
				i = len;
			} else {
				mf_out_add(o, "=", 1); /* stray '=' kept */
				i++;
			}
		}
		lit = i;
	}
	mf_out_add(o, in + lit, len - lit);
}

void mf_b64_encode(const unsigned char *in, size_t len, const char *eol, struct mf_out *o)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char line[80];
	size_t w = 0;
	for (size_t i = 0; i < len; i += 3) {
		unsigned v = (unsigned)in[i] << 16;
		if (i + 1 < len)
			v |= (unsigned)in[i + 1] << 8;
		if (i + 2 < len)
			v |= in[i + 2];
		line[w++] = tab[(v >> 18) & 63];
		line[w++] = tab[(v >> 12) & 63];
		line[w++] = i + 1 < len ? tab[(v >> 6) & 63] : '=';
		line[w++] = i + 2 < len ? tab[v & 63] : '=';
		if (w == 76) {
			mf_out_add(o, line, w);
			mf_out_str(o, eol);
			w = 0;
		}
	}
	if (w) {
		mf_out_add(o, line, w);
		mf_out_str(o, eol);
	}
}

void mf_qp_encode(const unsigned char *in, size_t len, bool text, const char *eol,
		  struct mf_out *o)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t col = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = in[i];
		if (text && (c == '\n' || (c == '\r' && i + 1 < len && in[i + 1] == '\n'))) {
			if (c == '\r')
				i++;
			mf_out_str(o, eol);
			col = 0;
			continue;
		}
		char tok[3];
		size_t t;
		bool before_break = i + 1 >= len || in[i + 1] == '\n' ||
				    (in[i + 1] == '\r' && i + 2 < len && in[i + 2] == '\n');
		if ((c >= 33 && c <= 126 && c != '=') ||
		    ((c == ' ' || c == '\t') && !(before_break && text) && i + 1 < len)) {
			tok[0] = (char)c;
			t = 1;
		} else {
			tok[0] = '=';
			tok[1] = hex[c >> 4];
			tok[2] = hex[c & 15];
			t = 3;
		}
		if (col + t > 75) {
			mf_out_str(o, "=");
			mf_out_str(o, eol);
			col = 0;
		}
		mf_out_add(o, tok, t);
		col += t;
	}
	if (col) {
		/* keep the encoded text ending with a line end (soft if the data
		 * did not end with one) */
		mf_out_str(o, "=");
		mf_out_str(o, eol);
	}
}

struct parse_ctx {
	const unsigned char *p;
	struct mf_part *parts;
	size_t n, cap;
	int err;
};

static size_t push_part(struct parse_ctx *c)
{
	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 16;
		struct mf_part *g = realloc(c->parts, cap * sizeof(*g));
		if (!g) {
			c->err = MF_ENOMEM;
			return (size_t)-1;
		}
		c->parts = g;
		c->cap = cap;
	}
	memset(&c->parts[c->n], 0, sizeof(c->parts[0]));
	return c->n++;
}

/* Is p[i..end) a delimiter line for boundary b? 1 = part delimiter,
 * 2 = close delimiter, 0 = no. */
static int delimiter(const unsigned char *p, size_t i, size_t end, const char *b, size_t blen)
{
	if (end - i < blen + 2 || p[i] != '-' || p[i + 1] != '-' ||
	    memcmp(p + i + 2, b, blen) != 0)
		return 0;
	size_t k = i + 2 + blen;
	int kind = 1;
	if (end - k >= 2 && p[k] == '-' && p[k + 1] == '-') {
		kind = 2;
		k += 2;
	}
	while (k < end && (p[k] == ' ' || p[k] == '\t' || p[k] == '\r'))
		k++;
	return k >= end || p[k] == '\n' ? kind : 0;
}

/* Where content before a delimiter at line start d ends: the line end
 * preceding the delimiter belongs to the delimiter. */
static size_t before_delim(const unsigned char *p, size_t from, size_t d)
{
	if (d > from && p[d - 1] == '\n')
		d--;
	if (d > from && p[d - 1] == '\r')
		d--;
	return d;
}

static void parse_entity(struct parse_ctx *c, size_t start, size_t end, int depth)
{
	const unsigned char *p = c->p;
	size_t idx = push_part(c);
	if (idx == (size_t)-1)
		return;
	struct mf_part pt = { .start = start, .hend = end, .body = end, .end = end,
			      .leaf = true, .depth = depth };
	size_t i = start;
	while (i < end) {
		size_t e = line_end(p, i, end);
		size_t ce = e > i && p[e - 1] == '\r' ? e - 1 : e;
		if (ce == i) {
			pt.hend = i;
			pt.body = e < end ? e + 1 : end;
			pt.blank = true;
			break;
		}
		bool cont = i > start && (p[i] == ' ' || p[i] == '\t');
		/* an mbox "From " envelope line heading the message stays with
		 * the header block */
		bool envelope = i == 0 && ce - i >= 5 && memcmp(p, "From ", 5) == 0;
		if (!cont && !envelope && !field_name_len(p, i, ce)) {
			pt.hend = pt.body = i;
			break;
		}
		i = e < end ? e + 1 : end;
	}
	size_t fs, fe, vs, ve;
	char boundary[256] = "";
	const unsigned char *h = p + start;
	size_t hlen = pt.hend - start;
	if (mf_mime_field(h, hlen, "content-type", &fs, &fe, &vs, &ve)) {
		mf_mime_type(h + vs, ve - vs, pt.type, sizeof(pt.type));
		mf_mime_param(h + vs, ve - vs, "boundary", boundary, sizeof(boundary));
	}
	if (mf_mime_field(h, hlen, "content-transfer-encoding", &fs, &fe, &vs, &ve))
		mf_mime_type(h + vs, ve - vs, pt.cte, sizeof(pt.cte));
	c->parts[idx] = pt;
	if (depth >= MF_MIME_MAX_DEPTH || c->n >= MF_MIME_MAX_PARTS)
		return;
	if (strncmp(pt.type, "multipart/", 10) == 0 && boundary[0]) {
		size_t blen = strlen(boundary);
		size_t part_start = (size_t)-1;
		bool any = false;
		for (i = pt.body; i < end;) {
			size_t e = line_end(p, i, end);
			int kind = delimiter(p, i, e, boundary, blen);
			if (kind) {
				if (part_start != (size_t)-1) {
					size_t pe = before_delim(p, part_start, i);
					c->parts[idx].leaf = false;
					parse_entity(c, part_start, pe, depth + 1);
					if (c->err)
						return;
				}
				any = true;
				part_start = e < end ? e + 1 : end;
				if (kind == 2) {
					part_start = (size_t)-1;
					break;
				}
			}
			i = e < end ? e + 1 : end;
		}
		if (any && part_start != (size_t)-1 && part_start < end) {
			c->parts[idx].leaf = false;
			parse_entity(c, part_start, end, depth + 1);
		}
		if (any)
			c->parts[idx].leaf = false;
	} else if ((strcmp(pt.type, "message/rfc822") == 0 ||
		    strcmp(pt.type, "message/global") == 0) &&
		   strcmp(pt.cte, "base64") != 0 && strcmp(pt.cte, "quoted-printable") != 0 &&
		   pt.body < end) {
		c->parts[idx].leaf = false;
		parse_entity(c, pt.body, end, depth + 1);
	}
}

int mf_mime_parse(const unsigned char *p, size_t len, struct mf_part **parts, size_t *n)
{
	struct parse_ctx c = { .p = p };
	parse_entity(&c, 0, len, 0);
	if (c.err) {
		free(c.parts);
		*parts = NULL;
		*n = 0;
		return c.err;
	}
	*parts = c.parts;
	*n = c.n;
	return 0;
}

void mf_mime_decode_body(const unsigned char *p, const struct mf_part *pt, struct mf_out *o)
{
	const unsigned char *b = p + pt->body;
	size_t blen = pt->end > pt->body ? pt->end - pt->body : 0;
	if (strcmp(pt->cte, "base64") == 0)
		mf_b64_decode(b, blen, o);
	else if (strcmp(pt->cte, "quoted-printable") == 0)
		mf_qp_decode(b, blen, o);
	else
		mf_out_add(o, b, blen);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * well-known algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

int64_t mf_mime_timegm(int y, int mo, int d, int h, int mi, int s)
{
	return days_from_civil(y, mo, d) * 86400 + (int64_t)h * 3600 + (int64_t)mi * 60 + s;
}

void mf_mime_civil(int64_t t, int *y, int *mo, int *d, int *h, int *mi, int *s)
{
	/* clamp to years 1..9999 so that every field stays in range */
	if (t < -62135596800LL)
		t = -62135596800LL;
	if (t > 253402300799LL)
		t = 253402300799LL;
	int64_t days = t >= 0 ? t / 86400 : (t - 86399) / 86400;
	int64_t secs = t - days * 86400;
	int64_t z = days + 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	int64_t dd = doy - (153 * mp + 2) / 5 + 1;
	int64_t mm = mp < 10 ? mp + 3 : mp - 9;
	*y = (int)(yoe + era * 400 + (mm <= 2));
	*mo = (int)mm;
	*d = (int)dd;
	*h = (int)(secs / 3600);
	*mi = (int)(secs / 60 % 60);
	*s = (int)(secs % 60);
}

void mf_mime_date(int64_t t, char *out, size_t outsz)
{
	static const char *const wd[] = { "Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed" };
	static const char *const mn[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	int y, mo, d, h, mi, s;
	mf_mime_civil(t, &y, &mo, &d, &h, &mi, &s);
	int64_t days = mf_mime_timegm(y, mo, d, 0, 0, 0) / 86400;
	int64_t w = days % 7;
	if (w < 0)
		w += 7;
	snprintf(out, outsz, "%s, %02d %s %04d %02d:%02d:%02d +0000", wd[w], d, mn[mo - 1], y, h,
		 mi, s);
}
