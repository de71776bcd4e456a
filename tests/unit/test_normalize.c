/* test_normalize.c - mf_normalize() on hand-made messages and on the
 * permissively licensed files in tests/data/eml and tests/data/tnef (runs
 * without ../shared). */
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
	RUN(data_eml_idempotent);
	return test_done();
}
