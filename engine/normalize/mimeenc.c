/* mimeenc.c - output buffer, UTF-8 and charsets, base64 and quoted-printable
 * encoders, RFC 2047/2231 header encodings and RFC 5322 dates, shared by the
 * normalize stage and the sources (see mimeenc.h for the contracts). */
#include "mimeenc.h"

#include <errno.h>
#include <iconv.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../error.h"

/* ---- output buffer --------------------------------------------------------- */

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

/* ---- UTF-8 ------------------------------------------------------------------ */

size_t mf_utf8_seq(const unsigned char *s, size_t n, uint32_t *cp)
{
	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	size_t len;
	uint32_t c, min;
	if ((s[0] & 0xE0) == 0xC0) {
		len = 2, c = s[0] & 0x1F, min = 0x80;
	} else if ((s[0] & 0xF0) == 0xE0) {
		len = 3, c = s[0] & 0x0F, min = 0x800;
	} else if ((s[0] & 0xF8) == 0xF0) {
		len = 4, c = s[0] & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3F);
	}
	if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
		return 0;
	*cp = c;
	return len;
}

void mf_utf8_put(struct mf_out *o, uint32_t cp)
{
	unsigned char b[4];
	size_t n;
	if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		cp = 0xFFFD;
	if (cp < 0x80) {
		b[0] = (unsigned char)cp;
		n = 1;
	} else if (cp < 0x800) {
		b[0] = (unsigned char)(0xC0 | cp >> 6);
		b[1] = (unsigned char)(0x80 | (cp & 63));
		n = 2;
	} else if (cp < 0x10000) {
		b[0] = (unsigned char)(0xE0 | cp >> 12);
		b[1] = (unsigned char)(0x80 | (cp >> 6 & 63));
		b[2] = (unsigned char)(0x80 | (cp & 63));
		n = 3;
	} else {
		b[0] = (unsigned char)(0xF0 | cp >> 18);
		b[1] = (unsigned char)(0x80 | (cp >> 12 & 63));
		b[2] = (unsigned char)(0x80 | (cp >> 6 & 63));
		b[3] = (unsigned char)(0x80 | (cp & 63));
		n = 4;
	}
	mf_out_add(o, b, n);
}

void mf_utf8_sanitize(const char *s, size_t len, struct mf_out *o)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, run = 0; /* valid bytes not yet copied start at run */
	while (i < len && !o->err) {
		uint32_t c;
		size_t n = mf_utf8_seq(p + i, len - i, &c);
		if (n == 0) {
			mf_out_add(o, p + run, i - run);
			mf_utf8_put(o, 0xFFFD);
			i++;
			run = i;
		} else {
			i += n;
		}
	}
	mf_out_add(o, p + run, i - run);
}

/* ---- code pages and charsets ------------------------------------------------ */

struct cpname {
	int cp;
	const char *mime, *iconv;
};

/* The Windows code pages Outlook writes into PR_MESSAGE_CODEPAGE,
 * PR_INTERNET_CPID, attOemCodepage and \ansicpg, with their IANA names. */
static const struct cpname cpnames[] = {
	{ 874, "windows-874", "CP874" },
	{ 932, "shift_jis", "CP932" },
	{ 936, "gbk", "CP936" },
	{ 949, "ks_c_5601-1987", "CP949" },
	{ 950, "big5", "CP950" },
	{ 1200, "utf-16le", "UTF-16LE" },
	{ 1201, "utf-16be", "UTF-16BE" },
	{ 20127, "us-ascii", "WINDOWS-1252" }, /* read 8-bit bytes leniently */
	{ 20866, "koi8-r", "KOI8-R" },
	{ 21866, "koi8-u", "KOI8-U" },
	{ 28591, "iso-8859-1", "WINDOWS-1252" },
	{ 28592, "iso-8859-2", "ISO-8859-2" },
	{ 28593, "iso-8859-3", "ISO-8859-3" },
	{ 28594, "iso-8859-4", "ISO-8859-4" },
	{ 28595, "iso-8859-5", "ISO-8859-5" },
	{ 28596, "iso-8859-6", "ISO-8859-6" },
	{ 28597, "iso-8859-7", "ISO-8859-7" },
	{ 28598, "iso-8859-8", "ISO-8859-8" },
	{ 28599, "iso-8859-9", "ISO-8859-9" },
	{ 28603, "iso-8859-13", "ISO-8859-13" },
	{ 28605, "iso-8859-15", "ISO-8859-15" },
	{ 50220, "iso-2022-jp", "ISO-2022-JP" },
	{ 50221, "iso-2022-jp", "ISO-2022-JP" },
	{ 50222, "iso-2022-jp", "ISO-2022-JP" },
	{ 51932, "euc-jp", "EUC-JP" },
	{ 51936, "gb2312", "GB2312" },
	{ 51949, "euc-kr", "EUC-KR" },
	{ 52936, "hz-gb-2312", "GB2312" },
	{ 54936, "gb18030", "GB18030" },
	{ 65000, "utf-7", "UTF-7" },
	{ 65001, "utf-8", "UTF-8" },
};

void mf_codepage_names(int cp, char *mime, size_t mime_size, char *iconv_name, size_t iconv_size)
{
	for (size_t i = 0; i < sizeof(cpnames) / sizeof(cpnames[0]); i++) {
		if (cpnames[i].cp == cp) {
			snprintf(mime, mime_size, "%s", cpnames[i].mime);
			snprintf(iconv_name, iconv_size, "%s", cpnames[i].iconv);
			return;
		}
	}
	snprintf(mime, mime_size, "windows-%d", cp);
	snprintf(iconv_name, iconv_size, "WINDOWS-%d", cp);
}

void mf_charset_to_utf8(const char *from, const unsigned char *in, size_t len,
			struct mf_out *o)
{
	if (!strcasecmp(from, "UTF-8")) {
		mf_utf8_sanitize((const char *)in, len, o);
		return;
	}
	iconv_t cd = iconv_open("UTF-8", from);
	if (cd == (iconv_t)-1)
		cd = iconv_open("UTF-8", "WINDOWS-1252");
	if (cd == (iconv_t)-1) {
		mf_utf8_sanitize((const char *)in, len, o);
		return;
	}
	/* iconv's prototype wants char ** for input it does not modify */
	char *ip = (char *)(uintptr_t)in;
	size_t il = len;
	while (il > 0 && !o->err) {
		char tmp[1024];
		char *op = tmp;
		size_t ol = sizeof(tmp);
		size_t r = iconv(cd, &ip, &il, &op, &ol);
		int e = errno;
		mf_out_add(o, tmp, (size_t)(op - tmp));
		if (r == (size_t)-1) {
			if (e == E2BIG)
				continue;
			/* EILSEQ or EINVAL (truncated input): one replacement
			 * character, skip a byte, go on. */
			mf_utf8_put(o, 0xFFFD);
			ip++;
			il--;
			iconv(cd, NULL, NULL, NULL, NULL);
		}
	}
	/* the shift state of a stateful charset (UTF-7, ISO-2022-JP) */
	char tmp[64];
	char *op = tmp;
	size_t ol = sizeof(tmp);
	iconv(cd, NULL, NULL, &op, &ol);
	mf_out_add(o, tmp, (size_t)(op - tmp));
	iconv_close(cd);
}

int mf_hex_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* ---- transfer encodings ----------------------------------------------------- */

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

/* ---- header fields ------------------------------------------------------------ */

/* A sanitized, single-line copy of a UTF-8 value (controls -> spaces, runs
 * of white space collapsed, trimmed), NUL-terminated in out. */
static void clean_value(const char *utf8, struct mf_out *out)
{
	struct mf_out tmp = { 0 };
	mf_utf8_sanitize(utf8, strlen(utf8), &tmp);
	if (tmp.err)
		out->err = tmp.err;
	bool space = true; /* drops leading white space */
	for (size_t i = 0; i < tmp.b.len && !out->err; i++) {
		unsigned char c = (unsigned char)tmp.b.data[i];
		if (c < 32 || c == 127)
			c = ' ';
		if (c == ' ') {
			if (space)
				continue;
			space = true;
		} else {
			space = false;
		}
		mf_out_add(out, &c, 1);
	}
	while (out->b.len > 0 && out->b.data[out->b.len - 1] == ' ')
		out->b.len--;
	mf_out_add(out, "", 1);
	if (!out->err)
		out->b.len--;
	mf_out_free(&tmp);
}

/* Non-ASCII, control characters, or "=?" (which would be taken for an
 * encoded word). */
static bool needs_encoding(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c > 126 || c < 32)
			return true;
		if (c == '=' && i + 1 < len && s[i + 1] == '?')
			return true;
	}
	return false;
}

/* Encoded words of at most 72 characters, split at character boundaries,
 * separated by eol SP. `col` is the current column. */
static void encoded_words(struct mf_out *o, const char *s, size_t len, size_t col,
			  const char *eol)
{
	const size_t maxraw = 45; /* 45 bytes -> 60 base64 chars + 12 = 72 */
	size_t i = 0;
	bool first = true;
	while (i < len && !o->err) {
		size_t take = 0;
		while (i + take < len) {
			uint32_t c;
			size_t n = mf_utf8_seq((const unsigned char *)s + i + take, len - i - take, &c);
			if (n == 0)
				n = 1;
			if (take + n > maxraw)
				break;
			take += n;
		}
		if (take == 0)
			take = 1;
		size_t wlen = 12 + ((take + 2) / 3) * 4;
		if ((!first || col + wlen > 78) && (!first || col > 1)) {
			mf_out_str(o, eol);
			mf_out_str(o, " ");
			col = 1;
		}
		mf_out_str(o, "=?UTF-8?B?");
		mf_b64_encode((const unsigned char *)s + i, take, "", o);
		mf_out_str(o, "?=");
		col += wlen;
		i += take;
		first = false;
	}
}

/* Fold plain ASCII text before a space so that lines stay within 78
 * columns where words allow. */
static void fold_ascii(struct mf_out *o, const char *s, size_t len, size_t col, const char *eol)
{
	size_t i = 0;
	while (i < len) {
		size_t end = i;
		/* next word including the space before it */
		if (s[end] == ' ')
			end++;
		while (end < len && s[end] != ' ')
			end++;
		if (col + (end - i) > 78 && s[i] == ' ' && col > 1) {
			mf_out_str(o, eol);
			col = 0;
		}
		mf_out_add(o, s + i, end - i);
		col += end - i;
		i = end;
	}
}

static void quoted_string(struct mf_out *o, const char *s, size_t len)
{
	mf_out_add(o, "\"", 1);
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '"' || s[i] == '\\')
			mf_out_add(o, "\\", 1);
		mf_out_add(o, s + i, 1);
	}
	mf_out_add(o, "\"", 1);
}

void mf_hdr_text(struct mf_out *o, const char *utf8, size_t used, const char *eol)
{
	struct mf_out v = { 0 };
	clean_value(utf8, &v);
	if (v.err) {
		o->err = v.err;
	} else if (v.b.len > 0) {
		if (needs_encoding(v.b.data, v.b.len))
			encoded_words(o, v.b.data, v.b.len, used, eol);
		else
			fold_ascii(o, v.b.data, v.b.len, used, eol);
	}
	mf_out_free(&v);
}

void mf_hdr_phrase(struct mf_out *o, const char *utf8, const char *eol)
{
	struct mf_out v = { 0 };
	clean_value(utf8, &v);
	if (v.err) {
		o->err = v.err;
	} else if (v.b.len > 0) {
		if (needs_encoding(v.b.data, v.b.len))
			encoded_words(o, v.b.data, v.b.len, 0, eol);
		else
			quoted_string(o, v.b.data, v.b.len);
	}
	mf_out_free(&v);
}

static bool attr_char(unsigned char c)
{
	/* RFC 2231 attribute-char: token chars except '*', '\'', '%' */
	if (c <= 32 || c >= 127)
		return false;
	return !strchr("*'%()<>@,;:\\\"/[]?=", c);
}

void mf_hdr_param(struct mf_out *o, const char *sep, const char *name, const char *utf8)
{
	static const char hex[] = "0123456789ABCDEF";
	struct mf_out v = { 0 }, enc = { 0 };
	clean_value(utf8, &v);
	if (v.err) {
		o->err = v.err;
		goto done;
	}
	const char *s = v.b.data ? v.b.data : "";
	if (!needs_encoding(s, v.b.len) && v.b.len <= 60) {
		mf_out_fmt(o, "%s%s=", sep, name);
		quoted_string(o, s, v.b.len);
		goto done;
	}
	/* percent-encode, then cut into continuations of <= 60 characters
	 * (never inside a %XX triplet) */
	for (size_t i = 0; i < v.b.len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (attr_char(c)) {
			mf_out_add(&enc, &c, 1);
		} else {
			char t[3] = { '%', hex[c >> 4], hex[c & 15] };
			mf_out_add(&enc, t, 3);
		}
	}
	if (enc.err) {
		o->err = enc.err;
		goto done;
	}
	size_t pos = 0;
	unsigned idx = 0;
	while (pos < enc.b.len && !o->err) {
		size_t take = enc.b.len - pos;
		if (take > 60) {
			take = 60;
			/* back off to the start of a %XX triplet if inside one */
			if (enc.b.data[pos + take - 1] == '%')
				take -= 1;
			else if (enc.b.data[pos + take - 2] == '%')
				take -= 2;
		}
		if (pos == 0 && take == enc.b.len)
			mf_out_fmt(o, "%s%s*=utf-8''", sep, name);
		else if (pos == 0)
			mf_out_fmt(o, "%s%s*0*=utf-8''", sep, name);
		else
			mf_out_fmt(o, "%s%s*%u*=", sep, name, idx);
		mf_out_add(o, enc.b.data + pos, take);
		pos += take;
		idx++;
	}
done:
	mf_out_free(&enc);
	mf_out_free(&v);
}

/* ---- dates -------------------------------------------------------------------- */

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
