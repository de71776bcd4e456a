/* pst_text.c - text helpers of the PST source: charsets, header and
 * transfer encodings on struct mf_buf, folder roles, FILETIMEs, RTF bodies.
 * The encoders themselves are the engine's (engine/normalize/mimeenc.h,
 * rtf.h); the functions here adapt them to the PST code's NUL-terminated
 * mf_buf outputs and CRLF line ends. Pure functions, safe on any thread
 * (libpst's shared iconv descriptor is never touched here).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pst_internal.h"

#include "engine/normalize/mimeenc.h"
#include "engine/normalize/rtf.h"

/* The engine's encoders append to a struct mf_out, an mf_buf with a sticky
 * error: lend it `out`, then take the buffer back. With `nul` the result
 * is NUL-terminated (not counted in len). Returns 0 or MF_ENOMEM (out then
 * holds what was written before the failure). */
static struct mf_out out_lend(struct mf_buf *out)
{
	struct mf_out o = { .b = *out };
	return o;
}

static int out_return(struct mf_out *o, struct mf_buf *out, bool nul)
{
	if (nul) {
		mf_out_add(o, "", 1);
		if (!o->err)
			o->b.len--;
	}
	*out = o->b;
	return o->err ? MF_ENOMEM : 0;
}

/* ---- code pages and UTF-8 ------------------------------------------------ */

void pst_codepage_names(int cp, char *mime, size_t mime_size, char *iconv_name,
			size_t iconv_size)
{
	mf_codepage_names(cp, mime, mime_size, iconv_name, iconv_size);
}

int pst_utf8_sanitize(const char *s, size_t len, struct mf_buf *out)
{
	struct mf_out o = out_lend(out);
	mf_utf8_sanitize(s, len, &o);
	return out_return(&o, out, true);
}

int pst_to_utf8(const char *from, const char *in, size_t len, struct mf_buf *out)
{
	struct mf_out o = out_lend(out);
	mf_charset_to_utf8(from, (const unsigned char *)in, len, &o);
	return out_return(&o, out, true);
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
	struct mf_out o = { 0 };
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strlen(s), i = 0;
	while (i < len && !o.err) {
		uint32_t c;
		size_t n = mf_utf8_seq(p + i, len - i, &c);
		if (n == 0) {
			c = 0xFFFD;
			n = 1;
		}
		mf_utf8_put(&o, lower_cp(c));
		i += n;
	}
	mf_out_add(&o, "", 1);
	if (o.err) {
		mf_out_free(&o);
		return NULL;
	}
	return o.b.data;
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

int pst_b64_append(struct mf_buf *out, const unsigned char *in, size_t len)
{
	struct mf_out o = out_lend(out);
	mf_b64_encode(in, len, "\r\n", &o);
	return out_return(&o, out, false);
}

int pst_qp_append(struct mf_buf *out, const unsigned char *in, size_t len)
{
	/* mf_qp_encode breaks lines at CRLF and LF only and ends unterminated
	 * text with a soft break; this contract also breaks at a lone CR and
	 * ends with a hard break, so give it the text with CRLF line ends and a
	 * final one */
	struct mf_buf text = { 0 };
	int rc = pst_crlf_append(&text, in, len);
	if (rc == 0 && len > 0 && in[len - 1] != '\n' && in[len - 1] != '\r' &&
	    mf_buf_add(&text, "\r\n", 2) < 0)
		rc = MF_ENOMEM;
	if (rc == 0) {
		struct mf_out o = out_lend(out);
		mf_qp_encode((const unsigned char *)text.data, text.len, true, "\r\n", &o);
		rc = out_return(&o, out, false);
	}
	mf_buf_free(&text);
	return rc;
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

int pst_hdr_text(struct mf_buf *out, const char *utf8, size_t used)
{
	struct mf_out o = out_lend(out);
	mf_hdr_text(&o, utf8, used, "\r\n");
	return out_return(&o, out, true);
}

int pst_hdr_phrase(struct mf_buf *out, const char *utf8)
{
	struct mf_out o = out_lend(out);
	mf_hdr_phrase(&o, utf8, "\r\n");
	return out_return(&o, out, true);
}

int pst_hdr_param(struct mf_buf *out, const char *name, const char *utf8)
{
	struct mf_out o = out_lend(out);
	mf_hdr_param(&o, ";\r\n\t", name, utf8);
	return out_return(&o, out, true);
}

/* ---- dates -------------------------------------------------------------- */

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
	/* the header checks give the note a precise reason */
	if (len < 16)
		return mf_err_set(err, MF_EMSG, "compressed RTF body too short (%zu bytes)", len);
	uint32_t raw = le32(in + 4), magic = le32(in + 8);
	if (raw > RTF_MAX)
		return mf_err_set(err, MF_EMSG, "compressed RTF body claims %u bytes", raw);
	if (magic != 0x414c454du && magic != 0x75465a4cu) /* "MELA", "LZFu" */
		return mf_err_set(err, MF_EMSG, "RTF body has unknown compression 0x%08x", magic);
	/* every input byte yields at most 17/3*8 output bytes */
	if (magic == 0x75465a4cu && (uint64_t)raw > (uint64_t)len * 48 + 4096)
		return mf_err_set(err, MF_EMSG, "compressed RTF body size is implausible");
	struct mf_out o = { 0 };
	int rc = mf_rtf_decompress(in, len, &o);
	if (rc == 0) {
		mf_out_add(&o, "", 1);
		rc = o.err;
	}
	if (rc < 0) {
		mf_out_free(&o);
		if (rc == MF_ENOMEM)
			return rc;
		return mf_err_set(err, MF_EMSG, "RTF body cannot be decompressed");
	}
	*out = o.b.data;
	*outlen = o.b.len - 1;
	return 0;
}

int pst_rtf_to_html(const char *rtf, size_t len, struct mf_buf *out)
{
	struct mf_out o = out_lend(out);
	mf_rtf_to_html((const unsigned char *)rtf, len, &o);
	return out_return(&o, out, true);
}
