/* json.c - a bounded, allocation-free JSON reader (see json.h). */
#include "json.h"

#include <stdlib.h>
#include <string.h>

#include "engine/error.h"
#include "engine/util.h"

static const char *ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
		p++;
	return p;
}

static const char *skip_string(const char *p, const char *end)
{
	if (p >= end || *p != '"')
		return NULL;
	for (p++; p < end; p++) {
		if (*p == '\\') {
			p++;
			continue;
		}
		if (*p == '"')
			return p + 1;
	}
	return NULL;
}

const char *mf_json_skip(const char *p, const char *end)
{
	p = ws(p, end);
	if (p >= end)
		return NULL;
	if (*p == '"')
		return skip_string(p, end);
	if (*p == '{' || *p == '[') {
		int depth = 0;
		while (p < end) {
			if (*p == '"') {
				p = skip_string(p, end);
				if (!p)
					return NULL;
				continue;
			}
			if (*p == '{' || *p == '[')
				depth++;
			else if (*p == '}' || *p == ']') {
				if (--depth == 0)
					return p + 1;
			}
			p++;
		}
		return NULL;
	}
	/* number, true, false, null */
	const char *s = p;
	while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\r' &&
	       *p != '\n' && *p != '\t')
		p++;
	return p > s ? p : NULL;
}

const char *mf_json_member(const char *p, const char *end, const char *key, const char **vend)
{
	size_t kl = strlen(key);
	p = ws(p, end);
	if (p >= end || *p != '{')
		return NULL;
	p++;
	for (;;) {
		p = ws(p, end);
		if (p >= end || *p == '}')
			return NULL;
		const char *ks = p;
		const char *ke = skip_string(p, end);
		if (!ke)
			return NULL;
		p = ws(ke, end);
		if (p >= end || *p != ':')
			return NULL;
		const char *v = ws(p + 1, end);
		const char *ve = mf_json_skip(v, end);
		if (!ve)
			return NULL;
		if ((size_t)(ke - ks) == kl + 2 && memcmp(ks + 1, key, kl) == 0) {
			*vend = ve;
			return v;
		}
		p = ws(ve, end);
		if (p < end && *p == ',')
			p++;
	}
}

const char *mf_json_array_first(const char *p, const char *end, const char **eend)
{
	p = ws(p, end);
	if (p >= end || *p != '[')
		return NULL;
	p = ws(p + 1, end);
	if (p >= end || *p == ']')
		return NULL;
	*eend = mf_json_skip(p, end);
	return *eend ? p : NULL;
}

const char *mf_json_array_next(const char *prev_end, const char *end, const char **eend)
{
	const char *p = ws(prev_end, end);
	if (p >= end || *p != ',')
		return NULL;
	p = ws(p + 1, end);
	*eend = mf_json_skip(p, end);
	return *eend ? p : NULL;
}

static int put(char *out, size_t outsz, size_t *n, unsigned c)
{
	if (*n + 1 >= outsz)
		return MF_EINVAL;
	out[(*n)++] = (char)c;
	return 0;
}

int mf_json_string(const char *p, const char *end, char *out, size_t outsz)
{
	size_t n = 0;
	p = ws(p, end);
	if (!outsz || p >= end || *p != '"')
		return MF_EINVAL;
	for (p++; p < end && *p != '"'; p++) {
		unsigned c = (unsigned char)*p;
		if (c == '\\') {
			if (++p >= end)
				return MF_EINVAL;
			switch (*p) {
			case 'n': c = '\n'; break;
			case 't': c = '\t'; break;
			case 'r': c = '\r'; break;
			case 'b': c = '\b'; break;
			case 'f': c = '\f'; break;
			case 'u': {
				if (end - p < 5)
					return MF_EINVAL;
				char hex[5] = {p[1], p[2], p[3], p[4], 0};
				char *e;
				unsigned long u = strtoul(hex, &e, 16);
				if (*e)
					return MF_EINVAL;
				p += 4;
				/* surrogate pairs are kept as two 3-byte sequences'
				 * worth of replacement: rare in what we read */
				if (u < 0x80) {
					c = (unsigned)u;
					break;
				}
				if (u < 0x800) {
					if (put(out, outsz, &n, 0xC0 | (unsigned)(u >> 6)) < 0)
						return MF_EINVAL;
					c = 0x80 | (unsigned)(u & 0x3F);
					break;
				}
				if (put(out, outsz, &n, 0xE0 | (unsigned)(u >> 12)) < 0 ||
				    put(out, outsz, &n, 0x80 | (unsigned)((u >> 6) & 0x3F)) < 0)
					return MF_EINVAL;
				c = 0x80 | (unsigned)(u & 0x3F);
				break;
			}
			default: c = (unsigned char)*p; break;
			}
		}
		if (put(out, outsz, &n, c) < 0)
			return MF_EINVAL;
	}
	if (p >= end)
		return MF_EINVAL;
	out[n] = '\0';
	return 0;
}

int mf_json_get_str(const char *obj, const char *end, const char *key, char *out, size_t outsz)
{
	const char *ve;
	const char *v = mf_json_member(obj, end, key, &ve);
	if (!v)
		return MF_EINVAL;
	return mf_json_string(v, ve, out, outsz);
}

long long mf_json_get_int(const char *obj, const char *end, const char *key, long long dflt)
{
	const char *ve;
	const char *v = mf_json_member(obj, end, key, &ve);
	if (!v)
		return dflt;
	char tmp[32];
	size_t l = (size_t)(ve - v);
	if (*v == '"' && l >= 2) { /* some servers send "3599" */
		v++;
		l -= 2;
	}
	if (l == 0 || l >= sizeof(tmp))
		return dflt;
	memcpy(tmp, v, l);
	tmp[l] = '\0';
	char *e;
	long long n = strtoll(tmp, &e, 10);
	return *e ? dflt : n;
}

int mf_json_quote(struct mf_buf *buf, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	if (mf_buf_add(buf, "\"", 1) < 0)
		return MF_ENOMEM;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char e[6];
		size_t el = 0;
		if (c == '"' || c == '\\') {
			e[0] = '\\';
			e[1] = (char)c;
			el = 2;
		} else if (c < 0x20) {
			e[0] = '\\';
			e[1] = 'u';
			e[2] = '0';
			e[3] = '0';
			e[4] = hex[c >> 4];
			e[5] = hex[c & 15];
			el = 6;
		} else {
			e[0] = (char)c;
			el = 1;
		}
		if (mf_buf_add(buf, e, el) < 0)
			return MF_ENOMEM;
	}
	return mf_buf_add(buf, "\"", 1) < 0 ? MF_ENOMEM : 0;
}
