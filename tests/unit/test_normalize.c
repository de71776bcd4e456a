/* test_normalize.c - mf_normalize() on hand-made messages and on the
 * permissively licensed files in tests/data/eml and tests/data/tnef (runs
 * without ../shared). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/normalize/mime.h"
#include "engine/normalize/normalize.h"
#include "engine/normalize/tnef.h"
#include "engine/util.h"
#include "test.h"

static const struct mf_norm_opts imap = { .crlf = true, .max_line = 998 };

static int norm(const struct mf_norm_opts *o, const char *in, struct mf_norm_result *r)
{
	return mf_normalize(o, (const unsigned char *)in, strlen(in), 1700000000, r);
}

static bool same(const struct mf_norm_result *r, const char *s)
{
	return r->len == strlen(s) && memcmp(r->data, s, r->len) == 0;
}

static bool contains(const struct mf_norm_result *r, const char *s)
{
	return memmem(r->data, r->len, s, strlen(s)) != NULL;
}

static size_t longest(const unsigned char *p, size_t len)
{
	size_t best = 0, cur = 0;
	for (size_t i = 0; i < len; i++) {
		cur = p[i] == '\n' || p[i] == '\r' ? 0 : cur + 1;
		if (cur > best)
			best = cur;
	}
	return best;
}

static const char clean[] = "From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n"
			    "Date: Mon, 01 Jan 2024 00:00:00 +0000\r\nMessage-ID: <x@y>\r\n\r\n"
			    "body\r\n";

TEST(clean_message_passes_unchanged)
{
	struct mf_norm_result r;
	struct mf_norm_opts o = imap;
	o.add_message_id = o.add_date = o.drop_dnt = true;
	CHECK_INT(norm(&o, clean, &r), 0);
	CHECK_INT(r.changes, 0);
	CHECK(same(&r, clean));
	free(r.data);
}

TEST(line_endings_bare_cr_nul)
{
	struct mf_norm_result r;
	const char lf[] = "Subject: x\n\nline1\nline2\n";
	CHECK_INT(norm(&imap, lf, &r), 0);
	CHECK_INT(r.changes, MF_NORM_LINE_ENDINGS);
	CHECK(same(&r, "Subject: x\r\n\r\nline1\r\nline2\r\n"));
	free(r.data);
	struct mf_norm_opts maildir = { .crlf = false };
	CHECK_INT(norm(&maildir, lf, &r), 0);
	CHECK_INT(r.changes, 0);
	CHECK(same(&r, lf));
	free(r.data);
	const char odd[] = "Subject: x\r\n\r\na\rb\r\n";
	CHECK_INT(norm(&imap, odd, &r), 0);
	CHECK_INT(r.changes, MF_NORM_BARE_CR);
	CHECK(same(&r, "Subject: x\r\n\r\na\r\nb\r\n"));
	free(r.data);
	const unsigned char nul[] = "Subject: x\r\n\r\na\0b\r\n";
	CHECK_INT(mf_normalize(&imap, nul, sizeof(nul) - 1, 0, &r), 0);
	CHECK_INT(r.changes, MF_NORM_NUL);
	CHECK(same(&r, "Subject: x\r\n\r\nab\r\n"));
	free(r.data);
}

TEST(long_line_reencodes_only_that_part)
{
	char big[3000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	big[1500] = ' ';
	struct mf_out m = { 0 };
	const char *other = "--b\r\nContent-Type: text/plain\r\n\r\nshort part stays\r\n";
	mf_out_fmt(&m, "Subject: x\r\nMIME-Version: 1.0\r\n"
		       "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n%s"
		       "--b\r\nContent-Type: text/plain; charset=utf-8\r\n"
		       "Content-Transfer-Encoding: 8bit\r\n\r\n%s\r\n--b--\r\n",
		   other, big);
	CHECK(!m.err);
	struct mf_norm_result r;
	CHECK_INT(mf_normalize(&imap, (unsigned char *)m.b.data, m.b.len, 0, &r), 0);
	CHECK_INT(r.changes, MF_NORM_LONG_LINES);
	CHECK(longest(r.data, r.len) <= 998);
	CHECK(contains(&r, other)); /* the untouched part, byte for byte */
	CHECK(contains(&r, "Content-Transfer-Encoding: quoted-printable\r\n"));
	CHECK(!contains(&r, "8bit"));
	/* decoding the new part gives the original text back */
	struct mf_part *parts;
	size_t n;
	CHECK_INT(mf_mime_parse(r.data, r.len, &parts, &n), 0);
	CHECK_INT(n, 3);
	if (n == 3) {
		struct mf_out d = { 0 };
		mf_mime_decode_body(r.data, &parts[2], &d);
		CHECK(d.b.len == strlen(big) && memcmp(d.b.data, big, d.b.len) == 0);
		mf_out_free(&d);
	}
	free(parts);
	/* idempotent */
	struct mf_norm_result r2;
	CHECK_INT(mf_normalize(&imap, r.data, r.len, 0, &r2), 0);
	CHECK_INT(r2.changes, 0);
	free(r2.data);
	free(r.data);
	mf_out_free(&m);
}

TEST(long_base64_line_rewrapped)
{
	unsigned char bin[2000];
	for (size_t i = 0; i < sizeof(bin); i++)
		bin[i] = (unsigned char)(i * 7);
	struct mf_out b64 = { 0 }, m = { 0 };
	mf_b64_encode(bin, sizeof(bin), "", &b64); /* one long line */
	mf_out_str(&m, "Subject: x\r\nContent-Type: application/octet-stream\r\n"
		       "Content-Transfer-Encoding: base64\r\n\r\n");
	mf_out_add(&m, b64.b.data, b64.b.len);
	mf_out_str(&m, "\r\n");
	struct mf_norm_result r;
	struct mf_norm_opts o = { .crlf = true, .max_line = 76 };
	CHECK_INT(mf_normalize(&o, (unsigned char *)m.b.data, m.b.len, 0, &r), 0);
	CHECK_INT(r.changes, MF_NORM_LONG_LINES);
	CHECK(longest(r.data, r.len) <= 76);
	CHECK(contains(&r, "Content-Transfer-Encoding: base64\r\n"));
	const unsigned char *body = memmem(r.data, r.len, "\r\n\r\n", 4);
	CHECK(body != NULL);
	if (body) {
		struct mf_out d = { 0 };
		mf_b64_decode(body + 4, (size_t)(r.data + r.len - body - 4), &d);
		CHECK(d.b.len == sizeof(bin) && memcmp(d.b.data, bin, sizeof(bin)) == 0);
		mf_out_free(&d);
	}
	free(r.data);
	mf_out_free(&b64);
	mf_out_free(&m);
}

TEST(long_header_folded)
{
	struct mf_out m = { 0 };
	mf_out_str(&m, "Subject: x\r\nReferences:");
	for (int i = 0; i < 60; i++)
		mf_out_fmt(&m, " <message-%d@example.org>", i);
	mf_out_str(&m, "\r\n\r\nbody\r\n");
	struct mf_norm_result r;
	struct mf_norm_opts o = { .crlf = true, .max_line = 200 };
	CHECK_INT(mf_normalize(&o, (unsigned char *)m.b.data, m.b.len, 0, &r), 0);
	CHECK_INT(r.changes, MF_NORM_LONG_LINES);
	CHECK(longest(r.data, r.len) <= 200);
	/* unfolding gives the original back */
	struct mf_out u = { 0 };
	for (size_t i = 0; i < r.len; i++) {
		if (r.data[i] == '\r' && i + 2 < r.len && r.data[i + 1] == '\n' &&
		    (r.data[i + 2] == ' ' || r.data[i + 2] == '\t')) {
			i++;
			continue;
		}
		mf_out_add(&u, r.data + i, 1);
	}
	CHECK(u.b.len == m.b.len && memcmp(u.b.data, m.b.data, m.b.len) == 0);
	mf_out_free(&u);
	free(r.data);
	mf_out_free(&m);
}

TEST(message_id_date_dnt_only_when_asked)
{
	const char msg[] = "From: a@example.org\r\nDisposition-Notification-To: a@example.org\r\n"
			   "Subject: x\r\n\r\nbody\r\n";
	struct mf_norm_result r, r2;
	CHECK_INT(norm(&imap, msg, &r), 0);
	CHECK_INT(r.changes, 0);
	CHECK(same(&r, msg));
	free(r.data);
	struct mf_norm_opts o = imap;
	o.add_message_id = o.add_date = o.drop_dnt = true;
	CHECK_INT(norm(&o, msg, &r), 0);
	CHECK_INT(r.changes, MF_NORM_MESSAGE_ID | MF_NORM_DATE | MF_NORM_DNT_DROPPED);
	CHECK(contains(&r, "\r\nDate: Tue, 14 Nov 2023 22:13:20 +0000\r\n\r\nbody"));
	CHECK(contains(&r, "@mailferry.invalid>\r\n"));
	CHECK(!contains(&r, "Disposition-Notification-To"));
	char *id = mf_header_message_id(r.data, r.len);
	CHECK(id && strncmp(id, "<", 1) == 0 && strstr(id, "@mailferry.invalid>"));
	/* deterministic: the same input gives the same id */
	CHECK_INT(norm(&o, msg, &r2), 0);
	CHECK(r2.len == r.len && memcmp(r2.data, r.data, r.len) == 0);
	free(id);
	free(r.data);
	free(r2.data);
}

static unsigned char *read_data(const char *rel, size_t *len)
{
	const char *src = getenv("MF_SRC");
	char path[1024];
	snprintf(path, sizeof(path), "%s/tests/data/%s", src ? src : ".", rel);
	char *d = NULL;
	if (mf_read_file(path, 16 << 20, &d, len) != 0)
		return NULL;
	return (unsigned char *)d;
}

static int wrap_and_normalize(const char *rel, enum mf_tnef_mode mode, struct mf_norm_result *r,
			      struct mf_out *m)
{
	size_t len;
	unsigned char *t = read_data(rel, &len);
	if (!t)
		return -1;
	mf_out_str(m, "From: a@example.org\r\nSubject: t\r\nMIME-Version: 1.0\r\n"
		      "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n"
		      "Content-Type: application/octet-stream; name=\"WINMAIL.DAT\"\r\n"
		      "Content-Transfer-Encoding: base64\r\n\r\n");
	mf_b64_encode(t, len, "\r\n", m);
	mf_out_str(m, "--b--\r\n");
	free(t);
	struct mf_norm_opts o = { .crlf = true, .max_line = 998, .tnef = mode };
	return mf_normalize(&o, (unsigned char *)m->b.data, m->b.len, 0, r);
}

TEST(tnef_decoded_kept_and_failed)
{
	struct mf_norm_result r;
	struct mf_out m = { 0 };
	CHECK_INT(wrap_and_normalize("tnef/mimekit_attachments.tnef", MF_TNEF_DECODE, &r, &m), 0);
	CHECK_INT(r.changes, MF_NORM_TNEF);
	CHECK(contains(&r, "filename=\"zappa_av1.jpg\""));
	CHECK(contains(&r, "filename=\"bookmark.htm\""));
	CHECK(contains(&r, "Content-Type: image/jpeg"));
	CHECK(contains(&r, "Content-Type: multipart/mixed;\r\n boundary=\"=_mf_"));
	CHECK(longest(r.data, r.len) <= 998);
	free(r.data);
	mf_out_free(&m);

	CHECK_INT(wrap_and_normalize("tnef/mimekit_attachments.tnef", MF_TNEF_KEEP, &r, &m), 0);
	CHECK_INT(r.changes, 0);
	CHECK(r.len == m.b.len && memcmp(r.data, m.b.data, r.len) == 0);
	free(r.data);
	mf_out_free(&m);

	CHECK_INT(wrap_and_normalize("tnef/poi_oom.tnef", MF_TNEF_DECODE, &r, &m), 0);
	CHECK_INT(r.changes, MF_NORM_TNEF_FAILED);
	CHECK(strstr(r.note, "winmail.dat kept") != NULL);
	CHECK(r.len == m.b.len && memcmp(r.data, m.b.data, r.len) == 0);
	free(r.data);
	mf_out_free(&m);

	CHECK_INT(wrap_and_normalize("tnef/poi_quick-winmail.dat", MF_TNEF_DECODE, &r, &m), 0);
	CHECK_INT(r.changes, MF_NORM_TNEF);
	const char *names[] = { "quick.doc", "quick.html", "quick.pdf", "quick.txt", "quick.xml" };
	for (size_t k = 0; k < 5; k++) {
		char want[64];
		snprintf(want, sizeof(want), "filename=\"%s\"", names[k]);
		CHECK(contains(&r, want));
	}
	free(r.data);
	mf_out_free(&m);
}

TEST(rtf_html_deencapsulation)
{
	const char rtf[] = "{\\rtf1\\ansi\\ansicpg1252\\fromhtml1 {\\fonttbl{\\f0 Arial;}}"
			   "{\\*\\htmltag19 <html>}\\htmlrtf {\\b hidden}\\htmlrtf0 Hello \\'e9"
			   "\\par{\\*\\htmltag27 </html>}}";
	struct mf_out o = { 0 };
	CHECK_INT(mf_rtf_to_html((const unsigned char *)rtf, strlen(rtf), &o), 1);
	mf_out_add(&o, "", 1);
	CHECK_STR(o.b.data, "<html>Hello \xc3\xa9\r\n</html>");
	mf_out_free(&o);
	const char plain[] = "{\\rtf1\\ansi hello}";
	CHECK_INT(mf_rtf_to_html((const unsigned char *)plain, strlen(plain), &o), 0);
	mf_out_free(&o);
	/* uncompressed ("MELA") compressed-RTF container */
	unsigned char mela[16 + 5] = { 0 };
	mela[0] = 5 + 12;
	mela[4] = 5;
	memcpy(mela + 8, "MELA", 4);
	memcpy(mela + 16, "{\\rtf", 5);
	CHECK_INT(mf_rtf_decompress(mela, sizeof(mela), &o), 0);
	CHECK(o.b.len == 5 && memcmp(o.b.data, "{\\rtf", 5) == 0);
	mf_out_free(&o);
}

/* ---- the shared encoders (mimeenc.c, rtf.c) ------------------------------------ */

static char *out_cstr(struct mf_out *o)
{
	mf_out_add(o, "", 1);
	return o->err ? NULL : o->b.data;
}

TEST(qp_encode_edges)
{
	struct mf_out o = { 0 };
	/* a lone CR is data, white space before a break is encoded, the end
	 * gets a soft break so nothing is added to the text */
	mf_qp_encode((const unsigned char *)"a\rb \nc", 6, true, "\r\n", &o);
	CHECK_STR(out_cstr(&o), "a=0Db=20\r\nc=\r\n");
	mf_out_free(&o);
	/* binary mode: every byte survives a round trip, lines stay <= 76 */
	unsigned char bin[3000];
	uint32_t x = 12345;
	for (size_t i = 0; i < sizeof(bin); i++) {
		x = x * 1103515245u + 12345u;
		bin[i] = (unsigned char)(x >> 16);
	}
	mf_qp_encode(bin, sizeof(bin), false, "\r\n", &o);
	CHECK(!o.err && longest((unsigned char *)o.b.data, o.b.len) <= 76);
	struct mf_out d = { 0 };
	mf_qp_decode((const unsigned char *)o.b.data, o.b.len, &d);
	CHECK(d.b.len == sizeof(bin) && memcmp(d.b.data, bin, sizeof(bin)) == 0);
	mf_out_free(&d);
	mf_out_free(&o);
}

TEST(header_encoders)
{
	struct mf_out o = { 0 };
	/* 80 bytes of two-byte characters: words of 44 and 36 bytes (never a
	 * split character); 9 + 72 columns do not fit, so it starts folded */
	char uu[81] = "";
	for (int i = 0; i < 40; i++)
		memcpy(uu + 2 * i, "\xc3\xbc", 3);
	mf_hdr_text(&o, uu, 9, "\n");
	CHECK_STR(out_cstr(&o),
		  "\n =?UTF-8?B?w7zDvMO8w7zDvMO8w7zDvMO8w7zDvMO8w7zDvMO8w7zDvMO8w7zDvMO8w7w=?="
		  "\n =?UTF-8?B?w7zDvMO8w7zDvMO8w7zDvMO8w7zDvMO8w7zDvMO8w7zDvMO8?=");
	mf_out_free(&o);
	/* ASCII that looks like an encoded word is encoded */
	mf_hdr_text(&o, "a =?x?= b", 9, "\r\n");
	CHECK(strncmp(out_cstr(&o), "=?UTF-8?B?", 10) == 0);
	mf_out_free(&o);
	/* long ASCII folds at spaces within 78 columns and unfolds unchanged */
	char words[400] = "";
	for (int i = 0; i < 40; i++)
		snprintf(words + strlen(words), sizeof(words) - strlen(words), "%sword%02d",
			 i ? " " : "", i);
	mf_out_str(&o, "Subject: ");
	mf_hdr_text(&o, words, 9, "\r\n");
	char *folded = out_cstr(&o);
	CHECK(folded && longest((unsigned char *)folded, strlen(folded)) <= 78);
	CHECK(folded && strstr(folded, "\r\n "));
	char unf[400];
	size_t w = 0;
	for (const char *p = folded; p && *p && w + 1 < sizeof(unf); p++)
		if (*p != '\r' && *p != '\n')
			unf[w++] = *p;
	unf[w] = '\0';
	CHECK(strncmp(unf, "Subject: ", 9) == 0);
	CHECK_STR(unf + 9, words);
	mf_out_free(&o);
	/* a display name with specials is quoted */
	mf_hdr_phrase(&o, "Doe, J (x@y)", "\r\n");
	CHECK_STR(out_cstr(&o), "\"Doe, J (x@y)\"");
	mf_out_free(&o);
	/* RFC 2231: continuations of <= 60 characters that the parser joins */
	char name[200] = "";
	for (int i = 0; i < 30; i++)
		memcpy(name + strlen(name), "\xc3\xa9t\xc3\xa9 ", 7);
	mf_out_str(&o, "attachment");
	mf_hdr_param(&o, ";\r\n\t", "filename", name);
	char *v = out_cstr(&o);
	CHECK(v && strstr(v, "filename*0*=utf-8''%C3%A9t") && strstr(v, "filename*1*="));
	/* TAB, "filename*0*=", "utf-8''", 60 characters, ";" */
	CHECK(v && longest((unsigned char *)v, strlen(v)) <= 1 + 12 + 7 + 60 + 1);
	char back[256];
	CHECK(v && mf_mime_param((unsigned char *)v, strlen(v), "filename", back, sizeof(back)));
	name[strlen(name) - 1] = '\0'; /* the trailing space is trimmed */
	CHECK_STR(back, name);
	mf_out_free(&o);
}

TEST(charsets_and_dates)
{
	struct mf_out o = { 0 };
	/* a truncated EUC-JP character becomes one U+FFFD */
	mf_charset_to_utf8("EUC-JP", (const unsigned char *)"\xa4\xa2x\xa4", 4, &o);
	CHECK_STR(out_cstr(&o), "\xe3\x81\x82x\xef\xbf\xbd");
	mf_out_free(&o);
	/* an unknown charset is read as Windows-1252 */
	mf_charset_to_utf8("X-NO-SUCH", (const unsigned char *)"caf\xe9\x80", 5, &o);
	CHECK_STR(out_cstr(&o), "caf\xc3\xa9\xe2\x82\xac");
	mf_out_free(&o);
	char mime[32], ic[32];
	mf_codepage_names(20866, mime, sizeof(mime), ic, sizeof(ic));
	CHECK_STR(mime, "koi8-r");
	CHECK_STR(ic, "KOI8-R");
	char d[40];
	mf_mime_date(-1, d, sizeof(d));
	CHECK_STR(d, "Wed, 31 Dec 1969 23:59:59 +0000");
	mf_mime_date(INT64_MAX, d, sizeof(d));
	CHECK_STR(d, "Fri, 31 Dec 9999 23:59:59 +0000");
}

TEST(rtf_tokenizer_edges)
{
	/* \mhtmltag copies are dropped, \<LF> is a paragraph, \u0 is U+FFFD,
	 * \ansicpg picks the code page of \'hh, a \* inside a group is not a
	 * destination, unbalanced braces are tolerated */
	const char rtf[] = "{\\rtf1\\ansi\\ansicpg1251\\fromhtml1 {\\*\\htmltag4 <p>}"
			   "{\\*\\mhtmltag4 <p>}\\'e0\\\n\\u0?x{\\b \\* y}}}";
	struct mf_out o = { 0 };
	CHECK_INT(mf_rtf_to_html((const unsigned char *)rtf, strlen(rtf), &o), 1);
	CHECK_STR(out_cstr(&o), "<p>\xd0\xb0\r\n\xef\xbf\xbdx y");
	mf_out_free(&o);
}

TEST(data_eml_idempotent)
{
	const char *files[] = { "eml/mikelmail_rfc2822__example14.eml",
				"eml/mimekit_multipart-digest.eml", "eml/zbateson_m0009.eml",
				"eml/stalwart_malformed_006.eml", "eml/spamscope_mail_test_19.eml" };
	struct mf_norm_opts o = { .crlf = true, .max_line = 998, .add_message_id = true };
	for (size_t k = 0; k < sizeof(files) / sizeof(files[0]); k++) {
		size_t len;
		unsigned char *d = read_data(files[k], &len);
		CHECK(d != NULL);
		if (!d)
			continue;
		struct mf_norm_result r, r2;
		CHECK_INT(mf_normalize(&o, d, len, 0, &r), 0);
		CHECK(longest(r.data, r.len) <= 998);
		CHECK_INT(mf_normalize(&o, r.data, r.len, 0, &r2), 0);
		CHECK_INT(r2.changes, 0);
		CHECK(r2.len == r.len && memcmp(r2.data, r.data, r.len) == 0);
		free(r.data);
		free(r2.data);
		free(d);
	}
}

int main(void)
{
	RUN(clean_message_passes_unchanged);
	RUN(line_endings_bare_cr_nul);
	RUN(long_line_reencodes_only_that_part);
	RUN(long_base64_line_rewrapped);
	RUN(long_header_folded);
	RUN(message_id_date_dnt_only_when_asked);
	RUN(tnef_decoded_kept_and_failed);
	RUN(rtf_html_deencapsulation);
	RUN(qp_encode_edges);
	RUN(header_encoders);
	RUN(charsets_and_dates);
	RUN(rtf_tokenizer_edges);
	RUN(data_eml_idempotent);
	return test_done();
}
