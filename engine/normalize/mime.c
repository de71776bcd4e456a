/* mime.c - header lookup, parameters, decoders and an offset-keeping MIME
 * splitter for the normalize stage. Lenient by design: real mail is broken
 * in every way, and the stage must never fail on it, only leave it alone. */
#include "mime.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../error.h"

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
			if (sec_ext[s] && c == '%' && k + 2 < b && mf_hex_value(v[k + 1]) >= 0 &&
			    mf_hex_value(v[k + 2]) >= 0) {
				c = (unsigned char)(mf_hex_value(v[k + 1]) * 16 + mf_hex_value(v[k + 2]));
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
		if (i + 2 < len && mf_hex_value(in[i + 1]) >= 0 && mf_hex_value(in[i + 2]) >= 0) {
			unsigned char c = (unsigned char)(mf_hex_value(in[i + 1]) * 16 + mf_hex_value(in[i + 2]));
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
