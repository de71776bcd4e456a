/* test_imap_codec.c - pure parts of the IMAP drivers: modified UTF-7,
 * server answers -> error classes, folder roles by name, INTERNALDATE. */
#include <libetpan/libetpan.h>

#include "engine/error.h"
#include "engine/util.h"
#include "engine/normalize/normalize.h"
#include "engine/spill.h"
#include "sources/imap/imap_common.h"
#include "test.h"

static char *dec(const char *in, int *rc)
{
	static char out[256];
	struct mf_buf b = {0};
	*rc = mf_imap_utf7_decode(in, strlen(in), &b);
	out[0] = 0;
	if (*rc == 0 && b.len < sizeof(out)) {
		memcpy(out, b.data, b.len);
		out[b.len] = 0;
	}
	mf_buf_free(&b);
	return out;
}

static char *enc(const char *in, int *rc)
{
	static char out[256];
	struct mf_buf b = {0};
	*rc = mf_imap_utf7_encode(in, strlen(in), &b);
	out[0] = 0;
	if (*rc == 0 && b.len < sizeof(out)) {
		memcpy(out, b.data, b.len);
		out[b.len] = 0;
	}
	mf_buf_free(&b);
	return out;
}

TEST(utf7_known_vectors)
{
	int rc;
	/* RFC 3501 5.1.3 example and common folder names */
	CHECK_STR(enc("~peter/mail/台北/日本語", &rc), "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
	CHECK_INT(rc, 0);
	CHECK_STR(dec("~peter/mail/&U,BTFw-/&ZeVnLIqe-", &rc), "~peter/mail/台北/日本語");
	CHECK_INT(rc, 0);
	CHECK_STR(enc("Überweisungen", &rc), "&ANw-berweisungen");
	CHECK_STR(dec("&ANw-berweisungen", &rc), "Überweisungen");
	CHECK_STR(enc("A&B", &rc), "A&-B");
	CHECK_STR(dec("A&-B", &rc), "A&B");
	CHECK_STR(enc("Entwürfe", &rc), "Entw&APw-rfe");
	CHECK_STR(enc("plain", &rc), "plain");
	/* a character outside the BMP goes through a surrogate pair */
	CHECK_STR(dec(enc("mail 📧 box", &rc), &rc), "mail 📧 box");
	CHECK_INT(rc, 0);
}

TEST(utf7_rejects_malformed)
{
	int rc;
	dec("&ANw", &rc); /* unterminated */
	CHECK_INT(rc, MF_EINVAL);
	dec("&AGE-", &rc); /* encodes printable ASCII 'a' */
	CHECK_INT(rc, MF_EINVAL);
	dec("a\x80", &rc);
	CHECK_INT(rc, MF_EINVAL);
	dec("&2D3-", &rc); /* lone high surrogate */
	CHECK_INT(rc, MF_EINVAL);
	enc("bad \xff utf8", &rc);
	CHECK_INT(rc, MF_EINVAL);
}

TEST(utf7_roundtrip_many)
{
	const char *names[] = {"日本語", "Gelöschte Elemente", "Éléments envoyés", "a&b&c",
			       "Корзина", "x y z", "Ω&Ω", "😀😀"};
	size_t i;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		int rc1, rc2;
		char e[256];
		snprintf(e, sizeof(e), "%s", enc(names[i], &rc1));
		CHECK_STR(dec(e, &rc2), names[i]);
		CHECK_INT(rc1, 0);
		CHECK_INT(rc2, 0);
		for (const char *p = e; *p; p++)
			CHECK(*p >= 0x20 && *p <= 0x7e);
	}
}

TEST(classify_answers)
{
	struct mf_err err;
	int code;

	mf_err_clear(&err);
	code = mf_imap_classify(MAILIMAP_ERROR_APPEND,
				"5 NO Request is throttled. Suggested Backoff Time: 12345 milliseconds",
				MF_EMSG, "APPEND", &err);
	CHECK_INT(code, MF_ETHROTTLED);
	CHECK_INT(err.retry_after_ms, 12345);
	CHECK_INT(mf_err_class(code), MF_CLASS_THROTTLED);

	code = mf_imap_classify(MAILIMAP_ERROR_APPEND,
				"7 NO [OVERQUOTA] Quota exceeded (mailbox for user is full)", MF_EMSG,
				"APPEND", &err);
	CHECK_INT(code, MF_EQUOTA);
	CHECK(strstr(err.msg, "OVERQUOTA") != NULL);

	code = mf_imap_classify(MAILIMAP_ERROR_APPEND, "8 NO [TOOBIG] Message too large", MF_EMSG,
				"APPEND", &err);
	CHECK_INT(code, MF_ETOOBIG);
	CHECK_INT(mf_err_class(code), MF_CLASS_MESSAGE);
	/* no command tag in the reason: one reason per kind in the report */
	CHECK_STR(err.msg, "APPEND: NO [TOOBIG] Message too large");
	code = mf_imap_classify(MAILIMAP_ERROR_APPEND, "8 NO Message size exceeds APPENDLIMIT",
				MF_EMSG, "APPEND", &err);
	CHECK_INT(code, MF_ETOOBIG);

	code = mf_imap_classify(MAILIMAP_ERROR_STREAM, "", MF_EMSG, "UID FETCH", &err);
	CHECK_INT(code, MF_ECONN);
	CHECK_INT(mf_err_class(code), MF_CLASS_CONNECTION);

	code = mf_imap_classify(MAILIMAP_ERROR_LOGIN,
				"1 NO [AUTHENTICATIONFAILED] Authentication failed.", MF_EAUTH,
				"LOGIN", &err);
	CHECK_INT(code, MF_EAUTH);
	/* BAD to a login is a malformed command (Cyrus and a trailing space),
	 * not a wrong password */
	code = mf_imap_classify(MAILIMAP_ERROR_LOGIN,
				"2 BAD Unexpected extra arguments to Authenticate", MF_EAUTH,
				"AUTHENTICATE PLAIN", &err);
	CHECK_INT(code, MF_EPROTO);
	CHECK(strstr(err.msg, "malformed") != NULL);
	code = mf_imap_classify(MAILIMAP_ERROR_APPEND, "9 BAD Invalid argument", MF_EMSG, "APPEND",
				&err);
	CHECK_INT(code, MF_EMSG);
	code = mf_imap_classify(MAILIMAP_ERROR_LOGIN, "1 NO [UNAVAILABLE] try later", MF_EAUTH,
				"LOGIN", &err);
	CHECK_INT(code, MF_ETHROTTLED);
	CHECK(err.retry_after_ms > 0);

	code = mf_imap_classify(MAILIMAP_ERROR_SELECT, "3 NO [NONEXISTENT] Mailbox doesn't exist",
				MF_EFOLDER, "SELECT", &err);
	CHECK_INT(code, MF_EFOLDER);

	code = mf_imap_classify(MAILIMAP_ERROR_APPEND, "9 NO some other refusal", MF_EMSG,
				"APPEND", &err);
	CHECK_INT(code, MF_EMSG);
	CHECK(strstr(err.msg, "some other refusal") != NULL);

	code = mf_imap_classify(MAILIMAP_NO_ERROR, "x OK", MF_EMSG, "NOOP", &err);
	CHECK_INT(code, 0);

	/* control bytes never reach the report */
	code = mf_imap_classify(MAILIMAP_ERROR_APPEND, "9 NO bad\x01\x7f byte", MF_EMSG, "APPEND",
				&err);
	CHECK(strchr(err.msg, '\x01') == NULL);
}

/* the documented rule for folder names a target refuses */
TEST(name_map)
{
	struct mf_buf b = {0};
	CHECK_INT(mf_imap_name_map("Rabatt 100%", false, &b), 1);
	CHECK_INT(mf_buf_add(&b, "", 1), 0);
	CHECK_STR(b.data, "Rabatt 100\xef\xbc\x85"); /* U+FF05 */
	b.len = 0;
	CHECK_INT(mf_imap_name_map("Say \"hi\" \\ ^x", false, &b), 4);
	CHECK_INT(mf_buf_add(&b, "", 1), 0);
	CHECK_STR(b.data, "Say \xef\xbc\x82hi\xef\xbc\x82 \xef\xbc\xbc \xef\xbc\xbex");
	b.len = 0;
	/* nothing to map: the same bytes, UTF-8 and & untouched */
	CHECK_INT(mf_imap_name_map("A&B \xc3\xbc 日本", true, &b), 0);
	CHECK_INT(mf_buf_add(&b, "", 1), 0);
	CHECK_STR(b.data, "A&B \xc3\xbc 日本");
	b.len = 0;
	/* outside the BMP: U+XXXX only when names cannot go in UTF-8 */
	CHECK_INT(mf_imap_name_map("Fun \xf0\x9f\x98\x80 50%", true, &b), 2);
	CHECK_INT(mf_buf_add(&b, "", 1), 0);
	CHECK_STR(b.data, "Fun U+1F600 50\xef\xbc\x85");
	b.len = 0;
	CHECK_INT(mf_imap_name_map("Fun \xf0\x9f\x98\x80", false, &b), 0);
	CHECK_INT(mf_buf_add(&b, "", 1), 0);
	CHECK_STR(b.data, "Fun \xf0\x9f\x98\x80");
	mf_buf_free(&b);
}

/* headers_8bit = encode (for Cyrus's munge8bit): raw 8-bit header fields
 * become RFC 2047 encoded words, display names only in address fields */
TEST(encode_8bit_headers)
{
	struct mf_norm_opts o = {.crlf = true, .encode_8bit_headers = true};
	struct mf_norm_result r, r2;
	static const char in[] =
		"Subject: Gr\xc3\xbc\xc3\x9f" "e aus K\xc3\xb6ln\r\n"
		"From: J\xc3\xbcrgen M\xc3\xbcller <j@example.org>\r\n"
		"To: \"\xc3\x9cnal, A.\" <a@example.org>, plain@example.org\r\n"
		"Message-ID: <x@example.org>\r\n"
		"\r\nB\xc3\xb6" "dy \xc3\xbc\r\n";
	static const char want[] =
		"Subject: =?UTF-8?B?R3LDvMOfZSBhdXMgS8O2bG4=?=\r\n"
		"From: =?UTF-8?B?SsO8cmdlbiBNw7xsbGVy?= <j@example.org>\r\n"
		"To: =?UTF-8?B?w5xuYWwsIEEu?= <a@example.org>, plain@example.org\r\n"
		"Message-ID: <x@example.org>\r\n"
		"\r\nB\xc3\xb6" "dy \xc3\xbc\r\n";
	CHECK_INT(mf_normalize(&o, (const unsigned char *)in, sizeof(in) - 1, 0, &r), 0);
	CHECK_INT(r.len, sizeof(want) - 1);
	CHECK(r.len == sizeof(want) - 1 && memcmp(r.data, want, r.len) == 0);
	CHECK(r.changes & MF_NORM_HEADERS_8BIT);
	/* the same bytes every time */
	CHECK_INT(mf_normalize(&o, (const unsigned char *)in, sizeof(in) - 1, 0, &r2), 0);
	CHECK(r2.len == r.len && memcmp(r2.data, r.data, r.len) == 0);
	mf_bytes_free(r.data);
	mf_bytes_free(r2.data);

	/* not UTF-8: read as Windows-1252 */
	static const char latin[] = "Subject: caf\xe9\r\n\r\nx\r\n";
	static const char latin_want[] = "Subject: =?UTF-8?B?Y2Fmw6k=?=\r\n\r\nx\r\n";
	CHECK_INT(mf_normalize(&o, (const unsigned char *)latin, sizeof(latin) - 1, 0, &r), 0);
	CHECK(r.len == sizeof(latin_want) - 1 && memcmp(r.data, latin_want, r.len) == 0);
	mf_bytes_free(r.data);

	/* ASCII headers (and 8-bit bodies) are left alone */
	static const char plain[] = "Subject: hi\r\n\r\nB\xc3\xb6" "dy\r\n";
	CHECK_INT(mf_normalize(&o, (const unsigned char *)plain, sizeof(plain) - 1, 0, &r), 0);
	CHECK(r.len == sizeof(plain) - 1 && memcmp(r.data, plain, r.len) == 0);
	CHECK(!(r.changes & MF_NORM_HEADERS_8BIT));
	mf_bytes_free(r.data);

	/* off by default: kept as they are */
	o.encode_8bit_headers = false;
	CHECK_INT(mf_normalize(&o, (const unsigned char *)in, sizeof(in) - 1, 0, &r), 0);
	CHECK(r.len == sizeof(in) - 1 && memcmp(r.data, in, r.len) == 0);
	mf_bytes_free(r.data);
}

TEST(roles_by_name)
{
	CHECK_INT(mf_imap_role_by_name("Sent Items"), MF_ROLE_SENT);
	CHECK_INT(mf_imap_role_by_name("Gesendete Elemente"), MF_ROLE_SENT);
	CHECK_INT(mf_imap_role_by_name("sent"), MF_ROLE_SENT);
	CHECK_INT(mf_imap_role_by_name("Deleted Items"), MF_ROLE_TRASH);
	CHECK_INT(mf_imap_role_by_name("Papierkorb"), MF_ROLE_TRASH);
	CHECK_INT(mf_imap_role_by_name("Junk E-mail"), MF_ROLE_JUNK);
	CHECK_INT(mf_imap_role_by_name("Entwürfe"), MF_ROLE_DRAFTS);
	CHECK_INT(mf_imap_role_by_name("inbox"), MF_ROLE_INBOX);
	CHECK_INT(mf_imap_role_by_name("Projects"), MF_ROLE_NONE);
}

TEST(internaldate)
{
	/* 17-Jul-1996 02:44:25 -0700 = 1996-07-17T09:44:25Z */
	CHECK_INT(mf_imap_date_to_unix(17, 7, 1996, 2, 44, 25, -700), 837596665);
	CHECK_INT(mf_imap_date_to_unix(1, 1, 1970, 0, 0, 0, 0), 0);
	CHECK_INT(mf_imap_date_to_unix(29, 2, 2024, 23, 59, 59, 130), 1709245799);
}

/* XOAUTH2 tokens from token_cmd: cached, refreshed when forced (after a
 * refused login); a failing command is MF_EAUTH. */
TEST(token_cmd_cache_and_refresh)
{
	struct mf_imap_conf c;
	struct mf_err err = {0};
	char *t1 = NULL, *t2 = NULL, *t3 = NULL;
	char cmd[600];
	const char *tmp = getenv("MF_TMP");

	memset(&c, 0, sizeof(c));
	pthread_mutex_init(&c.token_lock, NULL);
	snprintf(cmd, sizeof(cmd),
		 "f=%s/imap_token_count; n=$(cat $f 2>/dev/null || echo 0); "
		 "echo $((n+1)) > $f; echo \"  token-$n  \"",
		 tmp ? tmp : "/tmp");
	{
		char rm[700];
		snprintf(rm, sizeof(rm), "mkdir -p %s; rm -f %s/imap_token_count", tmp ? tmp : "/tmp",
			 tmp ? tmp : "/tmp");
		CHECK_INT(system(rm), 0);
	}
	c.token_cmd = strdup(cmd);
	CHECK_INT(mf_imap_token(&c, false, &t1, &err), 0);
	CHECK_INT(mf_imap_token(&c, false, &t2, &err), 0);
	CHECK_INT(mf_imap_token(&c, true, &t3, &err), 0);
	CHECK_STR(t1, "token-0"); /* trimmed */
	CHECK_STR(t2, "token-0"); /* cached */
	CHECK_STR(t3, "token-1"); /* forced */
	mf_secret_free(t1);
	mf_secret_free(t2);
	mf_secret_free(t3);
	free(c.token_cmd);
	c.token_cmd = strdup("exit 3");
	t1 = NULL;
	CHECK_INT(mf_imap_token(&c, true, &t1, &err), MF_EAUTH);
	CHECK(t1 == NULL);
	mf_imap_conf_free(&c);
}

int main(void)
{
	RUN(utf7_known_vectors);
	RUN(utf7_rejects_malformed);
	RUN(utf7_roundtrip_many);
	RUN(classify_answers);
	RUN(name_map);
	RUN(encode_8bit_headers);
	RUN(roles_by_name);
	RUN(internaldate);
	RUN(token_cmd_cache_and_refresh);
	return test_done();
}
