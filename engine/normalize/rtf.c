/* rtf.c - RTF decompression (MS-OXRTFCP) and HTML de-encapsulation
 * (MS-OXRTFEX) with its control-word tokenizer. See rtf.h. */
#include "rtf.h"

#include <stdio.h>
#include <string.h>

#include "../error.h"

#define RTF_MAX_OUT (64u << 20)
#define RTF_MAX_NEST 256
#define RTF_SNIFF 4096

static uint32_t rd32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- decompression ------------------------------------------------------------ */

/* The LZ77 state of MS-OXRTFCP: a 4 KiB ring dictionary and a chunk of
 * output not yet appended. */
struct lz {
	unsigned char dict[4096];
	size_t wpos, produced, cn;
	unsigned char chunk[1024];
};

static void lz_put(struct lz *z, unsigned char c, struct mf_out *o)
{
	z->dict[z->wpos] = c;
	z->wpos = (z->wpos + 1) & 4095;
	z->chunk[z->cn++] = c;
	z->produced++;
	if (z->cn == sizeof(z->chunk)) {
		mf_out_add(o, z->chunk, z->cn);
		z->cn = 0;
	}
}

int mf_rtf_decompress(const unsigned char *in, size_t len, struct mf_out *o)
{
	static const char prebuf[] =
		"{\\rtf1\\ansi\\mac\\deff0\\deftab720{\\fonttbl;}{\\f0\\fnil \\froman "
		"\\fswiss \\fmodern \\fscript \\fdecor MS Sans SerifSymbolArialTimes New "
		"RomanCourier{\\colortbl\\red0\\green0\\blue0\r\n\\par "
		"\\pard\\plain\\f0\\fs20\\b\\i\\u\\tab\\tx";
	if (len < 16)
		return MF_ECORRUPT;
	uint32_t compsize = rd32(in), rawsize = rd32(in + 4), magic = rd32(in + 8);
	size_t end = compsize <= len - 4 ? (size_t)compsize + 4 : len;
	size_t cap = rawsize < RTF_MAX_OUT ? rawsize : RTF_MAX_OUT;
	if (magic == 0x414C454D) { /* "MELA": stored uncompressed */
		size_t n = end - 16 < cap ? end - 16 : cap;
		mf_out_add(o, in + 16, n);
		return o->err;
	}
	if (magic != 0x75465A4C) /* "LZFu" */
		return MF_ECORRUPT;
	struct lz lz = { .wpos = sizeof(prebuf) - 1 }; /* the rest of dict is zero */
	memcpy(lz.dict, prebuf, sizeof(prebuf) - 1);
	size_t i = 16;
	int rc = MF_ECORRUPT; /* until the end marker is seen */
	while (i < end && lz.produced < cap) {
		unsigned ctrl = in[i++];
		for (int bit = 0; bit < 8 && lz.produced < cap; bit++) {
			if (i >= end)
				goto out;
			if (ctrl & (1u << bit)) {
				if (end - i < 2)
					goto out;
				unsigned word = (unsigned)in[i] << 8 | in[i + 1];
				i += 2;
				size_t off = word >> 4, l = (word & 15) + 2;
				if (off == lz.wpos) {
					rc = 0;
					goto out;
				}
				for (size_t k = 0; k < l && lz.produced < cap; k++)
					lz_put(&lz, lz.dict[(off + k) & 4095], o);
			} else {
				lz_put(&lz, in[i++], o);
			}
		}
	}
	if (lz.produced >= cap)
		rc = 0;
out:
	mf_out_add(o, lz.chunk, lz.cn);
	if (o->err)
		return o->err;
	/* Accept a missing end marker if we produced what the header promised. */
	return lz.produced == rawsize ? 0 : rc;
}

/* ---- HTML de-encapsulation -------------------------------------------------------- */

bool mf_rtf_is_html(const unsigned char *rtf, size_t len)
{
	size_t lim = len < RTF_SNIFF ? len : RTF_SNIFF;
	return memmem(rtf, lim, "\\fromhtml1", 10) != NULL;
}

struct rtf_state {
	bool skip;    /* inside an ignored destination */
	bool htmltag; /* inside {\*\htmltag ...} */
	bool htmlrtf; /* \htmlrtf on: RTF-only content, not HTML */
	int uc;       /* \ucN: fallback characters after \uN */
};

struct rtf_out {
	struct mf_out *o;
	struct mf_out pend; /* 8-bit bytes in the RTF code page, not yet converted */
	char cp_iconv[32];
};

static bool emitting(const struct rtf_state *st)
{
	return !st->skip && (!st->htmlrtf || st->htmltag);
}

static void rtf_flush(struct rtf_out *r)
{
	if (r->pend.b.len == 0)
		return;
	mf_charset_to_utf8(r->cp_iconv, (const unsigned char *)r->pend.b.data, r->pend.b.len,
			   r->o);
	r->pend.b.len = 0;
}

static void rtf_byte(struct rtf_out *r, const struct rtf_state *st, unsigned char c)
{
	if (emitting(st))
		mf_out_add(&r->pend, &c, 1);
}

static void rtf_uchar(struct rtf_out *r, const struct rtf_state *st, long v)
{
	if (!emitting(st))
		return;
	rtf_flush(r);
	if (v < 0)
		v += 65536;
	if (v <= 0 || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
		v = 0xFFFD;
	mf_utf8_put(r->o, (uint32_t)v);
}

static bool is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Destinations whose text is not part of the document. */
static bool ignored_dest(const char *w)
{
	static const char *const d[] = { "fonttbl", "colortbl", "stylesheet", "info",
					  "pict", "object", "header", "footer", "listtable",
					  "listoverridetable", "rsidtbl", "generator", "xmlnstbl",
					  "themedata", "datastore", "latentstyles", NULL };
	for (size_t i = 0; d[i]; i++) {
		if (!strcmp(w, d[i]))
			return true;
	}
	return false;
}

/* One control word: letters (truncated to fit `word`), an optional signed
 * number, and the space that delimits it. `i` is on the first letter;
 * returns the index after the word. */
static size_t control_word(const unsigned char *rtf, size_t len, size_t i, char *word,
			   size_t wsize, bool *has_num, long *num)
{
	size_t wl = 0;
	while (i < len && is_alpha(rtf[i])) {
		if (wl + 1 < wsize)
			word[wl++] = (char)rtf[i];
		i++;
	}
	word[wl] = '\0';
	bool neg = false;
	*has_num = false;
	*num = 0;
	if (i < len && rtf[i] == '-') {
		neg = true;
		i++;
	}
	while (i < len && rtf[i] >= '0' && rtf[i] <= '9') {
		if (*num < 100000000)
			*num = *num * 10 + (rtf[i] - '0');
		*has_num = true;
		i++;
	}
	if (neg)
		*num = -*num;
	if (i < len && rtf[i] == ' ')
		i++; /* the delimiter space belongs to the control word */
	return i;
}

int mf_rtf_to_html(const unsigned char *rtf, size_t len, struct mf_out *o)
{
	if (!mf_rtf_is_html(rtf, len))
		return 0;
	struct rtf_state stack[RTF_MAX_NEST];
	int depth = 0, overflow = 0; /* groups deeper than the stack: counted */
	struct rtf_state st = { .uc = 1 };
	struct rtf_out r = { .o = o };
	snprintf(r.cp_iconv, sizeof(r.cp_iconv), "WINDOWS-1252");
	int skipchars = 0; /* fallback characters still to skip after \uN */
	bool group_start = false;
	size_t i = 0;
	while (i < len && !o->err && !r.pend.err) {
		unsigned char c = rtf[i];
		if (c == '{') {
			if (depth < RTF_MAX_NEST)
				stack[depth++] = st;
			else
				overflow++;
			group_start = true;
			skipchars = 0;
			i++;
			continue;
		}
		if (c == '}') {
			if (overflow > 0)
				overflow--;
			else if (depth > 0)
				st = stack[--depth];
			group_start = false;
			skipchars = 0;
			i++;
			continue;
		}
		if (c == '\r' || c == '\n') {
			i++;
			continue;
		}
		bool was_start = group_start;
		group_start = false;
		if (c != '\\') {
			if (skipchars > 0)
				skipchars--;
			else
				rtf_byte(&r, &st, c);
			i++;
			continue;
		}
		/* control symbol or word */
		i++;
		if (i >= len)
			break;
		c = rtf[i];
		if (c == '\'') {
			int h = i + 2 < len ? mf_hex_value(rtf[i + 1]) : -1;
			int l = i + 2 < len ? mf_hex_value(rtf[i + 2]) : -1;
			i += 3;
			if (h < 0 || l < 0)
				continue;
			if (skipchars > 0) {
				skipchars--;
				continue;
			}
			rtf_byte(&r, &st, (unsigned char)(h * 16 + l));
			continue;
		}
		if (c == '*') {
			/* \* marks an optional destination: ignored unless it is
			 * \htmltag; it means something only at a group's start */
			i++;
			if (was_start) {
				size_t j = i;
				while (j < len && (rtf[j] == '\r' || rtf[j] == '\n' || rtf[j] == ' '))
					j++;
				if (j + 8 <= len && !memcmp(rtf + j, "\\htmltag", 8)) {
					st.htmltag = true;
					st.skip = false;
				} else {
					st.skip = true;
				}
			}
			continue;
		}
		if (!is_alpha(c)) {
			/* control symbol: \{ \} \\ are literal, \~ nbsp, \_ hyphen,
			 * \<CR> and \<LF> a paragraph, \- and others nothing */
			i++;
			if (skipchars > 0) {
				skipchars--;
				continue;
			}
			if (c == '{' || c == '}' || c == '\\')
				rtf_byte(&r, &st, c);
			else if (c == '~')
				rtf_uchar(&r, &st, 0xA0);
			else if (c == '_')
				rtf_byte(&r, &st, '-');
			else if ((c == '\r' || c == '\n') && emitting(&st))
				mf_out_add(&r.pend, "\r\n", 2);
			continue;
		}
		char word[32];
		bool has_num;
		long num;
		i = control_word(rtf, len, i, word, sizeof(word), &has_num, &num);
		if (skipchars > 0) {
			skipchars--;
			continue;
		}
		if (was_start && ignored_dest(word)) {
			st.skip = true;
			continue;
		}
		if (!strcmp(word, "htmltag")) {
			st.htmltag = true;
		} else if (!strcmp(word, "htmlrtf")) {
			st.htmlrtf = !(has_num && num == 0);
		} else if (!strcmp(word, "ansicpg") && has_num && num > 0) {
			char mime[32];
			rtf_flush(&r);
			mf_codepage_names((int)num, mime, sizeof(mime), r.cp_iconv, sizeof(r.cp_iconv));
		} else if (!strcmp(word, "uc") && has_num) {
			st.uc = num < 0 ? 0 : (int)(num > 10 ? 10 : num);
		} else if (!strcmp(word, "u") && has_num) {
			rtf_uchar(&r, &st, num);
			skipchars = st.uc;
		} else if (!strcmp(word, "par") || !strcmp(word, "line")) {
			if (emitting(&st))
				mf_out_add(&r.pend, "\r\n", 2);
		} else if (!strcmp(word, "tab")) {
			rtf_byte(&r, &st, '\t');
		}
	}
	rtf_flush(&r);
	if (r.pend.err && !o->err)
		o->err = r.pend.err;
	mf_out_free(&r.pend);
	return o->err ? o->err : 1;
}
