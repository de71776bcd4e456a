/* pst_text.c - text helpers of the PST source: charsets, header encodings,
 * transfer encodings, dates, RTF. Pure functions, safe on any thread (each
 * conversion opens its own iconv descriptor; libpst's shared one is never
 * touched here).
 */
#include <errno.h>
#include <iconv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pst_internal.h"

#include <libpst/lzfu.h>

/* ---- code pages ---------------------------------------------------------- */

struct cpname {
	int cp;
	const char *mime, *iconv;
};

/* The Windows code pages Outlook writes into PR_MESSAGE_CODEPAGE and
 * PR_INTERNET_CPID, with their IANA names. */
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

void pst_codepage_names(int cp, char *mime, size_t mime_size, char *iconv_name,
			size_t iconv_size)
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

/* ---- UTF-8 --------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n, uint32_t *cp)
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

static int utf8_put(struct mf_buf *out, uint32_t c)
{
	unsigned char b[4];
	size_t n;
	if (c < 0x80) {
		b[0] = (unsigned char)c, n = 1;
	} else if (c < 0x800) {
		b[0] = (unsigned char)(0xC0 | (c >> 6));
		b[1] = (unsigned char)(0x80 | (c & 0x3F));
		n = 2;
	} else if (c < 0x10000) {
		b[0] = (unsigned char)(0xE0 | (c >> 12));
		b[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
		b[2] = (unsigned char)(0x80 | (c & 0x3F));
		n = 3;
	} else {
		b[0] = (unsigned char)(0xF0 | (c >> 18));
		b[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3F));
		b[2] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
		b[3] = (unsigned char)(0x80 | (c & 0x3F));
		n = 4;
	}
	return mf_buf_add(out, b, n);
}

/* mf_buf keeps its data NUL-terminated only if we make it so. */
static int buf_terminate(struct mf_buf *out)
{
	if (mf_buf_add(out, "", 1) < 0)
		return MF_ENOMEM;
	out->len--;
	return 0;
}

int pst_utf8_sanitize(const char *s, size_t len, struct mf_buf *out)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < len) {
		uint32_t c;
		size_t n = utf8_seq(p + i, len - i, &c);
		int rc;
		if (n == 0) {
			rc = utf8_put(out, 0xFFFD);
			n = 1;
		} else {
			rc = mf_buf_add(out, p + i, n);
		}
		if (rc < 0)
			return MF_ENOMEM;
		i += n;
	}
	return buf_terminate(out);
}

int pst_to_utf8(const char *from, const char *in, size_t len, struct mf_buf *out)
{
	if (!strcasecmp(from, "UTF-8"))
		return pst_utf8_sanitize(in, len, out);
	iconv_t cd = iconv_open("UTF-8", from);
	if (cd == (iconv_t)-1)
		cd = iconv_open("UTF-8", "WINDOWS-1252");
	if (cd == (iconv_t)-1)
		return pst_utf8_sanitize(in, len, out);
	int rc = 0;
	char *ip = (char *)in;
	size_t il = len;
	while (il > 0) {
		char tmp[1024];
		char *op = tmp;
		size_t ol = sizeof(tmp);
		size_t r = iconv(cd, &ip, &il, &op, &ol);
		int e = errno;
		if (mf_buf_add(out, tmp, (size_t)(op - tmp)) < 0) {
			rc = MF_ENOMEM;
			break;
		}
		if (r == (size_t)-1) {
			if (e == E2BIG)
				continue;
			/* EILSEQ or EINVAL (truncated input): one replacement
			 * character, skip a byte, go on. */
			if (utf8_put(out, 0xFFFD) < 0) {
				rc = MF_ENOMEM;
				break;
			}
			ip++;
			il--;
			iconv(cd, NULL, NULL, NULL, NULL);
		}
	}
	if (rc == 0) {
		char tmp[64];
		char *op = tmp;
		size_t ol = sizeof(tmp);
		iconv(cd, NULL, NULL, &op, &ol);
		if (mf_buf_add(out, tmp, (size_t)(op - tmp)) < 0)
			rc = MF_ENOMEM;
	}
	iconv_close(cd);
	if (rc == 0)
		rc = buf_terminate(out);
	return rc;
}

static uint32_t lower_cp(uint32_t c)
{
	if (c >= 'A' && c <= 'Z')
		return c + 32;
	if ((c >= 0xC0 && c <= 0xDE && c != 0xD7) || (c >= 0x391 && c <= 0x3A9) ||
	    (c >= 0x410 && c <= 0x42F))
		return c + 32;
	if (c >= 0x400 && c <= 0x40F)
		return c + 80;
	return c;
}

char *pst_utf8_lower(const char *s)
{
	struct mf_buf b = { 0 };
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strlen(s), i = 0;
	while (i < len) {
		uint32_t c;
		size_t n = utf8_seq(p + i, len - i, &c);
		if (n == 0) {
			c = 0xFFFD;
			n = 1;
		}
		if (utf8_put(&b, lower_cp(c)) < 0) {
			mf_buf_free(&b);
			return NULL;
		}
		i += n;
	}
	if (buf_terminate(&b) < 0) {
		mf_buf_free(&b);
		return NULL;
	}
	return b.data;
}

/* ---- folder roles ------------------------------------------------------- */

struct rolename {
	enum mf_role role;
	const char *name; /* lower case, as pst_utf8_lower gives */
};

/* Outlook's default folder names in the languages migrations meet most. */
static const struct rolename rolenames[] = {
	{ MF_ROLE_INBOX, "inbox" }, { MF_ROLE_INBOX, "posteingang" },
	{ MF_ROLE_INBOX, "boîte de réception" }, { MF_ROLE_INBOX, "caixa de entrada" },
	{ MF_ROLE_INBOX, "bandeja de entrada" }, { MF_ROLE_INBOX, "posta in arrivo" },
	{ MF_ROLE_INBOX, "postvak in" }, { MF_ROLE_INBOX, "inkorgen" },
	{ MF_ROLE_INBOX, "indbakke" }, { MF_ROLE_INBOX, "innboks" },
	{ MF_ROLE_INBOX, "saapuneet" }, { MF_ROLE_INBOX, "skrzynka odbiorcza" },
	{ MF_ROLE_INBOX, "doručená pošta" }, { MF_ROLE_INBOX, "beérkezett üzenetek" },
	{ MF_ROLE_INBOX, "входящие" }, { MF_ROLE_INBOX, "受信トレイ" },
	{ MF_ROLE_INBOX, "收件箱" }, { MF_ROLE_INBOX, "받은 편지함" },
	{ MF_ROLE_INBOX, "gelen kutusu" }, { MF_ROLE_INBOX, "εισερχόμενα" },

	{ MF_ROLE_SENT, "sent items" }, { MF_ROLE_SENT, "sent" },
	{ MF_ROLE_SENT, "sent mail" }, { MF_ROLE_SENT, "sent messages" },
	{ MF_ROLE_SENT, "gesendete elemente" }, { MF_ROLE_SENT, "gesendete objekte" },
	{ MF_ROLE_SENT, "éléments envoyés" }, { MF_ROLE_SENT, "itens enviados" },
	{ MF_ROLE_SENT, "elementos enviados" }, { MF_ROLE_SENT, "posta inviata" },
	{ MF_ROLE_SENT, "verzonden items" }, { MF_ROLE_SENT, "skickade objekt" },
	{ MF_ROLE_SENT, "sendte elementer" }, { MF_ROLE_SENT, "lähetetyt" },
	{ MF_ROLE_SENT, "elementy wysłane" }, { MF_ROLE_SENT, "отправленные" },
	{ MF_ROLE_SENT, "送信済みアイテム" }, { MF_ROLE_SENT, "已发送邮件" },
	{ MF_ROLE_SENT, "보낸 편지함" },

	{ MF_ROLE_DRAFTS, "drafts" }, { MF_ROLE_DRAFTS, "entwürfe" },
	{ MF_ROLE_DRAFTS, "brouillons" }, { MF_ROLE_DRAFTS, "rascunhos" },
	{ MF_ROLE_DRAFTS, "borradores" }, { MF_ROLE_DRAFTS, "bozze" },
	{ MF_ROLE_DRAFTS, "concepten" }, { MF_ROLE_DRAFTS, "utkast" },
	{ MF_ROLE_DRAFTS, "kladder" }, { MF_ROLE_DRAFTS, "luonnokset" },
	{ MF_ROLE_DRAFTS, "kopie robocze" }, { MF_ROLE_DRAFTS, "черновики" },
	{ MF_ROLE_DRAFTS, "下書き" }, { MF_ROLE_DRAFTS, "草稿" },
	{ MF_ROLE_DRAFTS, "임시 보관함" },

	{ MF_ROLE_TRASH, "deleted items" }, { MF_ROLE_TRASH, "trash" },
	{ MF_ROLE_TRASH, "deleted" }, { MF_ROLE_TRASH, "gelöschte elemente" },
	{ MF_ROLE_TRASH, "gelöschte objekte" }, { MF_ROLE_TRASH, "éléments supprimés" },
	{ MF_ROLE_TRASH, "itens excluídos" }, { MF_ROLE_TRASH, "itens eliminados" },
	{ MF_ROLE_TRASH, "elementos eliminados" }, { MF_ROLE_TRASH, "posta eliminata" },
	{ MF_ROLE_TRASH, "verwijderde items" }, { MF_ROLE_TRASH, "borttagna objekt" },
	{ MF_ROLE_TRASH, "slettede elementer" }, { MF_ROLE_TRASH, "poistetut" },
	{ MF_ROLE_TRASH, "elementy usunięte" }, { MF_ROLE_TRASH, "удаленные" },
	{ MF_ROLE_TRASH, "削除済みアイテム" }, { MF_ROLE_TRASH, "已删除邮件" },
	{ MF_ROLE_TRASH, "지운 편지함" },

	{ MF_ROLE_JUNK, "junk e-mail" }, { MF_ROLE_JUNK, "junk email" },
	{ MF_ROLE_JUNK, "junk" }, { MF_ROLE_JUNK, "spam" },
	{ MF_ROLE_JUNK, "junk-e-mail" }, { MF_ROLE_JUNK, "courrier indésirable" },
	{ MF_ROLE_JUNK, "lixo eletrônico" }, { MF_ROLE_JUNK, "correo no deseado" },
	{ MF_ROLE_JUNK, "posta indesiderata" }, { MF_ROLE_JUNK, "ongewenste e-mail" },
	{ MF_ROLE_JUNK, "skräppost" }, { MF_ROLE_JUNK, "uønsket e-mail" },
	{ MF_ROLE_JUNK, "roskaposti" }, { MF_ROLE_JUNK, "wiadomości-śmieci" },
	{ MF_ROLE_JUNK, "нежелательная почта" }, { MF_ROLE_JUNK, "迷惑メール" },
	{ MF_ROLE_JUNK, "垃圾邮件" }, { MF_ROLE_JUNK, "정크 메일" },

	{ MF_ROLE_ARCHIVE, "archive" }, { MF_ROLE_ARCHIVE, "archives" },
	{ MF_ROLE_ARCHIVE, "archiv" }, { MF_ROLE_ARCHIVE, "arquivo" },
	{ MF_ROLE_ARCHIVE, "archivo" }, { MF_ROLE_ARCHIVE, "archivio" },
	{ MF_ROLE_ARCHIVE, "archief" }, { MF_ROLE_ARCHIVE, "arkiv" },
	{ MF_ROLE_ARCHIVE, "arkisto" }, { MF_ROLE_ARCHIVE, "archiwum" },
	{ MF_ROLE_ARCHIVE, "архив" }, { MF_ROLE_ARCHIVE, "アーカイブ" },
	{ MF_ROLE_ARCHIVE, "存档" }, { MF_ROLE_ARCHIVE, "보관" },
};

enum mf_role pst_role_from_name(const char *name)
{
	char *low = pst_utf8_lower(name);
	enum mf_role role = MF_ROLE_NONE;
	if (!low)
		return role;
	for (size_t i = 0; i < sizeof(rolenames) / sizeof(rolenames[0]); i++) {
		if (!strcmp(low, rolenames[i].name)) {
			role = rolenames[i].role;
			break;
		}
	}
	free(low);
	return role;
}

/* ---- transfer encodings ------------------------------------------------- */

static const char b64chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void b64_quad(const unsigned char *in, size_t n, char q[4])
{
	uint32_t v = (uint32_t)in[0] << 16;
	if (n > 1)
		v |= (uint32_t)in[1] << 8;
	if (n > 2)
		v |= in[2];
	q[0] = b64chars[(v >> 18) & 63];
	q[1] = b64chars[(v >> 12) & 63];
	q[2] = n > 1 ? b64chars[(v >> 6) & 63] : '=';
	q[3] = n > 2 ? b64chars[v & 63] : '=';
}

int pst_b64_append(struct mf_buf *out, const unsigned char *in, size_t len)
{
	char line[80];
	size_t ll = 0;
	for (size_t i = 0; i < len; i += 3) {
		b64_quad(in + i, len - i >= 3 ? 3 : len - i, line + ll);
		ll += 4;
		if (ll == 76) {
			line[ll++] = '\r';
			line[ll++] = '\n';
			if (mf_buf_add(out, line, ll) < 0)
				return MF_ENOMEM;
			ll = 0;
		}
	}
	if (ll > 0) {
		line[ll++] = '\r';
		line[ll++] = '\n';
		if (mf_buf_add(out, line, ll) < 0)
			return MF_ENOMEM;
	}
	return 0;
}

/* Plain base64 without line breaks, for encoded words. */
static int b64_raw(struct mf_buf *out, const unsigned char *in, size_t len)
{
	for (size_t i = 0; i < len; i += 3) {
		char q[4];
		b64_quad(in + i, len - i >= 3 ? 3 : len - i, q);
		if (mf_buf_add(out, q, 4) < 0)
			return MF_ENOMEM;
	}
	return 0;
}

int pst_qp_append(struct mf_buf *out, const unsigned char *in, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	char line[128];
	size_t ll = 0;
	for (size_t i = 0; i <= len; i++) {
		bool eol = (i == len) || in[i] == '\n' || in[i] == '\r';
		if (eol) {
			/* trailing white space must be encoded before a hard break */
			if (ll > 0 && (line[ll - 1] == ' ' || line[ll - 1] == '\t')) {
				unsigned char c = (unsigned char)line[ll - 1];
				ll--;
				if (ll + 3 > 75) {
					line[ll++] = '=';
					line[ll++] = '\r';
					line[ll++] = '\n';
					if (mf_buf_add(out, line, ll) < 0)
						return MF_ENOMEM;
					ll = 0;
				}
				line[ll++] = '=';
				line[ll++] = hex[c >> 4];
				line[ll++] = hex[c & 15];
			}
			if (i == len) {
				if (ll > 0) {
					line[ll++] = '\r';
					line[ll++] = '\n';
				}
			} else {
				line[ll++] = '\r';
				line[ll++] = '\n';
				if (in[i] == '\r' && i + 1 < len && in[i + 1] == '\n')
					i++;
			}
			if (ll > 0 && mf_buf_add(out, line, ll) < 0)
				return MF_ENOMEM;
			ll = 0;
			continue;
		}
		unsigned char c = in[i];
		char enc[3];
		size_t n;
		if ((c >= 33 && c <= 126 && c != '=') || c == ' ' || c == '\t') {
			enc[0] = (char)c;
			n = 1;
		} else {
			enc[0] = '=';
			enc[1] = hex[c >> 4];
			enc[2] = hex[c & 15];
			n = 3;
		}
		/* a leading '.' or "From " is harmless here; keep lines <= 76 */
		if (ll + n > 75) {
			line[ll++] = '=';
			line[ll++] = '\r';
			line[ll++] = '\n';
			if (mf_buf_add(out, line, ll) < 0)
				return MF_ENOMEM;
			ll = 0;
		}
		memcpy(line + ll, enc, n);
		ll += n;
	}
	return 0;
}

bool pst_is_7bit(const unsigned char *in, size_t len)
{
	size_t ll = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = in[i];
		if (c == 0 || c > 126)
			return false;
		if (c == '\r') {
			if (i + 1 >= len || in[i + 1] != '\n')
				return false;
			continue;
		}
		if (c == '\n') {
			ll = 0;
			continue;
		}
		if (++ll > 998)
			return false;
	}
	return true;
}

int pst_crlf_append(struct mf_buf *out, const unsigned char *in, size_t len)
{
	size_t start = 0;
	for (size_t i = 0; i < len; i++) {
		if (in[i] != '\r' && in[i] != '\n')
			continue;
		if (mf_buf_add(out, in + start, i - start) < 0 || mf_buf_add(out, "\r\n", 2) < 0)
			return MF_ENOMEM;
		if (in[i] == '\r' && i + 1 < len && in[i + 1] == '\n')
			i++;
		start = i + 1;
	}
	if (start < len && mf_buf_add(out, in + start, len - start) < 0)
		return MF_ENOMEM;
	return 0;
}

/* ---- headers ------------------------------------------------------------ */

/* A sanitized, single-line copy of a UTF-8 value (controls -> spaces,
 * runs of white space collapsed, trimmed). */
static int clean_value(const char *utf8, struct mf_buf *out)
{
	struct mf_buf tmp = { 0 };
	int rc = pst_utf8_sanitize(utf8, strlen(utf8), &tmp);
	if (rc < 0)
		return rc;
	bool space = true; /* drops leading white space */
	for (size_t i = 0; i < tmp.len; i++) {
		unsigned char c = (unsigned char)tmp.data[i];
		if (c < 32 || c == 127)
			c = ' ';
		if (c == ' ') {
			if (space)
				continue;
			space = true;
		} else {
			space = false;
		}
		if (mf_buf_add(out, &c, 1) < 0) {
			rc = MF_ENOMEM;
			break;
		}
	}
	while (rc == 0 && out->len > 0 && out->data[out->len - 1] == ' ')
		out->len--;
	if (rc == 0)
		rc = buf_terminate(out);
	mf_buf_free(&tmp);
	return rc;
}

static bool needs_encoding(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c > 126 || c < 32)
			return true;
		/* "=?" would be taken for an encoded word */
		if (c == '=' && i + 1 < len && s[i + 1] == '?')
			return true;
	}
	return false;
}

/* Encoded words of at most 75 characters, split at character boundaries,
 * separated by CRLF SP. `col` is the current column. */
static int encoded_words(struct mf_buf *out, const char *s, size_t len, size_t col)
{
	const size_t maxraw = 45; /* 45 bytes -> 60 base64 chars + 12 = 72 */
	size_t i = 0;
	bool first = true;
	while (i < len) {
		size_t take = 0;
		while (i + take < len) {
			uint32_t c;
			size_t n = utf8_seq((const unsigned char *)s + i + take, len - i - take, &c);
			if (n == 0)
				n = 1;
			if (take + n > maxraw)
				break;
			take += n;
		}
		if (take == 0)
			take = 1;
		size_t wlen = 12 + ((take + 2) / 3) * 4;
		if (!first || col + wlen > 78) {
			if (!first || col > 1) {
				if (mf_buf_add(out, "\r\n ", 3) < 0)
					return MF_ENOMEM;
				col = 1;
			}
		}
		if (mf_buf_add(out, "=?UTF-8?B?", 10) < 0 ||
		    b64_raw(out, (const unsigned char *)s + i, take) < 0 ||
		    mf_buf_add(out, "?=", 2) < 0)
			return MF_ENOMEM;
		col += wlen;
		i += take;
		first = false;
	}
	return 0;
}

/* Fold plain ASCII text at spaces so that lines stay under 78 columns
 * where possible. */
static int fold_ascii(struct mf_buf *out, const char *s, size_t len, size_t col)
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
			if (mf_buf_add(out, "\r\n", 2) < 0)
				return MF_ENOMEM;
			col = 0;
		}
		if (mf_buf_add(out, s + i, end - i) < 0)
			return MF_ENOMEM;
		col += end - i;
		i = end;
	}
	return 0;
}

int pst_hdr_text(struct mf_buf *out, const char *utf8, size_t used)
{
	struct mf_buf v = { 0 };
	int rc = clean_value(utf8, &v);
	if (rc == 0 && v.len > 0) {
		if (needs_encoding(v.data, v.len))
			rc = encoded_words(out, v.data, v.len, used);
		else
			rc = fold_ascii(out, v.data, v.len, used);
	}
	mf_buf_free(&v);
	return rc;
}

int pst_hdr_phrase(struct mf_buf *out, const char *utf8)
{
	struct mf_buf v = { 0 };
	int rc = clean_value(utf8, &v);
	if (rc == 0 && v.len > 0) {
		if (needs_encoding(v.data, v.len)) {
			rc = encoded_words(out, v.data, v.len, 0);
		} else {
			rc = mf_buf_add(out, "\"", 1);
			for (size_t i = 0; rc == 0 && i < v.len; i++) {
				if ((v.data[i] == '"' || v.data[i] == '\\') && mf_buf_add(out, "\\", 1) < 0)
					rc = MF_ENOMEM;
				if (rc == 0 && mf_buf_add(out, v.data + i, 1) < 0)
					rc = MF_ENOMEM;
			}
			if (rc == 0 && mf_buf_add(out, "\"", 1) < 0)
				rc = MF_ENOMEM;
		}
	}
	mf_buf_free(&v);
	return rc < 0 ? MF_ENOMEM : 0;
}

static bool attr_char(unsigned char c)
{
	/* RFC 2231 attribute-char: token chars except '*', '\'', '%' */
	if (c <= 32 || c >= 127)
		return false;
	return !strchr("*'%()<>@,;:\\\"/[]?=", c);
}

int pst_hdr_param(struct mf_buf *out, const char *name, const char *utf8)
{
	static const char hex[] = "0123456789ABCDEF";
	struct mf_buf v = { 0 };
	int rc = clean_value(utf8, &v);
	if (rc < 0)
		return rc;
	bool plain = !needs_encoding(v.data ? v.data : "", v.len) && v.len <= 60;
	if (plain) {
		rc = mf_buf_printf(out, ";\r\n\t%s=\"", name);
		for (size_t i = 0; rc == 0 && i < v.len; i++) {
			if ((v.data[i] == '"' || v.data[i] == '\\') && mf_buf_add(out, "\\", 1) < 0)
				rc = MF_ENOMEM;
			if (rc == 0 && mf_buf_add(out, v.data + i, 1) < 0)
				rc = MF_ENOMEM;
		}
		if (rc == 0 && mf_buf_add(out, "\"", 1) < 0)
			rc = MF_ENOMEM;
		mf_buf_free(&v);
		return rc < 0 ? MF_ENOMEM : 0;
	}
	/* percent-encode, then cut into continuations of <= 60 characters
	 * (never inside a %XX triplet) */
	struct mf_buf enc = { 0 };
	for (size_t i = 0; rc == 0 && i < v.len; i++) {
		unsigned char c = (unsigned char)v.data[i];
		char t[3] = { (char)c, 0, 0 };
		size_t n = 1;
		if (!attr_char(c)) {
			t[0] = '%', t[1] = hex[c >> 4], t[2] = hex[c & 15];
			n = 3;
		}
		if (mf_buf_add(&enc, t, n) < 0)
			rc = MF_ENOMEM;
	}
	size_t pos = 0;
	unsigned idx = 0;
	while (rc == 0 && pos < enc.len) {
		size_t take = enc.len - pos;
		if (take > 60) {
			take = 60;
			/* back off to the start of a %XX triplet if inside one */
			if (enc.data[pos + take - 1] == '%')
				take -= 1;
			else if (enc.data[pos + take - 2] == '%')
				take -= 2;
		}
		bool single = (pos == 0 && take == enc.len);
		if (single)
			rc = mf_buf_printf(out, ";\r\n\t%s*=utf-8''", name);
		else if (pos == 0)
			rc = mf_buf_printf(out, ";\r\n\t%s*0*=utf-8''", name);
		else
			rc = mf_buf_printf(out, ";\r\n\t%s*%u*=", name, idx);
		if (rc == 0 && mf_buf_add(out, enc.data + pos, take) < 0)
			rc = MF_ENOMEM;
		pos += take;
		idx++;
	}
	mf_buf_free(&enc);
	mf_buf_free(&v);
	return rc < 0 ? MF_ENOMEM : 0;
}

/* ---- dates -------------------------------------------------------------- */

void pst_rfc5322_date(int64_t t, char *buf, size_t size)
{
	static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t tt = (time_t)t;
	struct tm tm;
	if (!gmtime_r(&tt, &tm)) {
		snprintf(buf, size, "Thu, 01 Jan 1970 00:00:00 +0000");
		return;
	}
	snprintf(buf, size, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday % 7],
		 tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
		 tm.tm_sec);
}

int64_t pst_filetime_unix(const FILETIME *ft)
{
	if (!ft)
		return 0;
	uint64_t v = ((uint64_t)ft->dwHighDateTime << 32) | ft->dwLowDateTime;
	const uint64_t epoch = 116444736000000000ULL; /* 1970-01-01 in 100ns */
	if (v <= epoch)
		return 0;
	uint64_t s = (v - epoch) / 10000000ULL;
	/* year 9999 at most: anything later is damage */
	if (s > 253402300799ULL)
		return 0;
	return (int64_t)s;
}

/* ---- RTF ---------------------------------------------------------------- */

#define RTF_MAX (256u * 1024 * 1024)

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
	       ((uint32_t)p[3] << 24);
}

int pst_rtf_decompress(const unsigned char *in, size_t len, char **out, size_t *outlen,
		       struct mf_err *err)
{
	*out = NULL;
	*outlen = 0;
	if (len < 16)
		return mf_err_set(err, MF_EMSG, "compressed RTF body too short (%zu bytes)", len);
	uint32_t comp = le32(in), raw = le32(in + 4), magic = le32(in + 8);
	if (raw > RTF_MAX)
		return mf_err_set(err, MF_EMSG, "compressed RTF body claims %u bytes", raw);
	if (magic == 0x414c454du) { /* "MELA": stored uncompressed */
		size_t n = len - 16 < raw ? len - 16 : raw;
		char *p = malloc(n + 1);
		if (!p)
			return MF_ENOMEM;
		memcpy(p, in + 16, n);
		p[n] = '\0';
		*out = p;
		*outlen = n;
		return 0;
	}
	if (magic != 0x75465a4cu) /* "LZFu" */
		return mf_err_set(err, MF_EMSG, "RTF body has unknown compression 0x%08x", magic);
	/* every input byte yields at most 17/3*8 output bytes; a larger claim
	 * is damage (and would make libpst allocate it) */
	if ((uint64_t)raw > (uint64_t)len * 48 + 4096)
		return mf_err_set(err, MF_EMSG, "compressed RTF body size is implausible");
	(void)comp;
	size_t n = 0;
	char *dec = pst_lzfu_decompress((char *)in, (uint32_t)len, &n);
	if (!dec)
		return mf_err_set(err, MF_EMSG, "RTF body cannot be decompressed");
	char *p = realloc(dec, n + 1);
	if (!p) {
		free(dec);
		return MF_ENOMEM;
	}
	p[n] = '\0';
	*out = p;
	*outlen = n;
	return 0;
}

bool pst_rtf_is_html(const char *rtf, size_t len)
{
	size_t lim = len < 4096 ? len : 4096;
	const char *key = "\\fromhtml1";
	size_t kl = strlen(key);
	for (size_t i = 0; i + kl <= lim; i++) {
		if (!memcmp(rtf + i, key, kl))
			return true;
	}
	return false;
}

struct rtf_state {
	bool skip;    /* inside an ignored destination */
	bool htmltag; /* inside {\*\htmltag ...} */
	bool htmlrtf; /* \htmlrtf on: RTF-only content, not HTML */
	int uc;       /* \ucN: fallback characters after \uN */
};

struct rtf_out {
	struct mf_buf *out;
	struct mf_buf pend; /* 8-bit bytes in the RTF code page, not yet converted */
	char cp_iconv[32];
};

static int rtf_flush(struct rtf_out *o)
{
	if (o->pend.len == 0)
		return 0;
	/* pst_to_utf8 terminates o->out; remove that again */
	int rc = pst_to_utf8(o->cp_iconv, o->pend.data, o->pend.len, o->out);
	o->pend.len = 0;
	return rc;
}

static int rtf_byte(struct rtf_out *o, const struct rtf_state *st, unsigned char c)
{
	if (st->skip || (st->htmlrtf && !st->htmltag))
		return 0;
	return mf_buf_add(&o->pend, &c, 1) < 0 ? MF_ENOMEM : 0;
}

static int rtf_uchar(struct rtf_out *o, const struct rtf_state *st, long v)
{
	if (st->skip || (st->htmlrtf && !st->htmltag))
		return 0;
	if (rtf_flush(o) < 0)
		return MF_ENOMEM;
	if (v < 0)
		v += 65536;
	if (v <= 0 || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
		v = 0xFFFD;
	return utf8_put(o->out, (uint32_t)v) < 0 ? MF_ENOMEM : 0;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
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

#define RTF_DEPTH 256

int pst_rtf_to_html(const char *rtf, size_t len, struct mf_buf *out)
{
	struct rtf_state stack[RTF_DEPTH];
	int depth = 0, overflow = 0;
	struct rtf_state st = { .uc = 1 };
	struct rtf_out o = { .out = out };
	snprintf(o.cp_iconv, sizeof(o.cp_iconv), "WINDOWS-1252");
	int skipchars = 0; /* fallback characters still to skip after \uN */
	bool group_start = false;
	int rc = 0;
	size_t i = 0;
	while (i < len && rc == 0) {
		unsigned char c = (unsigned char)rtf[i];
		if (c == '{') {
			if (depth < RTF_DEPTH)
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
			if (skipchars > 0) {
				skipchars--;
			} else {
				rc = rtf_byte(&o, &st, c);
			}
			i++;
			continue;
		}
		/* control symbol or word */
		i++;
		if (i >= len)
			break;
		c = (unsigned char)rtf[i];
		if (c == '\'') {
			int h = i + 2 < len ? hexval(rtf[i + 1]) : -1;
			int l = i + 2 < len ? hexval(rtf[i + 2]) : -1;
			i += 3;
			if (h < 0 || l < 0)
				continue;
			if (skipchars > 0) {
				skipchars--;
				continue;
			}
			rc = rtf_byte(&o, &st, (unsigned char)(h * 16 + l));
			continue;
		}
		if (c == '*') {
			/* \* marks an optional destination: ignored unless it
			 * is one we know (\htmltag, checked below) */
			i++;
			if (was_start) {
				/* look at the control word that follows */
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
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) {
			/* control symbol: \{ \} \\ are literal, \~ nbsp, \- \_ */
			i++;
			if (skipchars > 0) {
				skipchars--;
				continue;
			}
			if (c == '{' || c == '}' || c == '\\')
				rc = rtf_byte(&o, &st, c);
			else if (c == '~')
				rc = rtf_uchar(&o, &st, 0xA0);
			else if (c == '_')
				rc = rtf_byte(&o, &st, '-');
			continue;
		}
		char word[32];
		size_t wl = 0;
		while (i < len && ((rtf[i] >= 'a' && rtf[i] <= 'z') || (rtf[i] >= 'A' && rtf[i] <= 'Z'))) {
			if (wl + 1 < sizeof(word))
				word[wl++] = rtf[i];
			i++;
		}
		word[wl] = '\0';
		bool has_num = false, neg = false;
		long num = 0;
		if (i < len && rtf[i] == '-') {
			neg = true;
			i++;
		}
		while (i < len && rtf[i] >= '0' && rtf[i] <= '9') {
			if (num < 100000000)
				num = num * 10 + (rtf[i] - '0');
			has_num = true;
			i++;
		}
		if (neg)
			num = -num;
		if (i < len && rtf[i] == ' ')
			i++; /* the delimiter space belongs to the control word */

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
		} else if (!strcmp(word, "ansicpg") && has_num) {
			char mime[32];
			if ((rc = rtf_flush(&o)) < 0)
				break;
			pst_codepage_names((int)num, mime, sizeof(mime), o.cp_iconv,
					   sizeof(o.cp_iconv));
		} else if (!strcmp(word, "uc") && has_num) {
			st.uc = num < 0 ? 0 : (int)(num > 10 ? 10 : num);
		} else if (!strcmp(word, "u") && has_num) {
			rc = rtf_uchar(&o, &st, num);
			skipchars = st.uc;
		} else if (!strcmp(word, "par") || !strcmp(word, "line")) {
			if (!st.skip && (!st.htmlrtf || st.htmltag))
				rc = mf_buf_add(&o.pend, "\r\n", 2) < 0 ? MF_ENOMEM : 0;
		} else if (!strcmp(word, "tab")) {
			rc = rtf_byte(&o, &st, '\t');
		}
	}
	if (rc == 0)
		rc = rtf_flush(&o);
	mf_buf_free(&o.pend);
	if (rc == 0)
		rc = buf_terminate(out);
	return rc;
}
