/* test_directory.c - the directory export reader (directory/csv.c):
 * encodings, the #TYPE line, proxyAddresses splitting and sorting, and
 * bad input as FILE:LINE. */
#include <stdlib.h>
#include <string.h>

#include "directory/directory.h"
#include "engine/error.h"
#include "test.h"

static int parse(const char *text, size_t len, struct mf_directory *d, char **diag)
{
	size_t dl;
	FILE *f = open_memstream(diag, &dl);
	int rc = mf_directory_parse_csv("ad.csv", text, len, d, f);
	fclose(f);
	return rc;
}

static const char hdr[] = "SamAccountName,UserPrincipalName,mail,targetAddress,proxyAddresses\r\n";

TEST(utf8_plain)
{
	char text[512];
	snprintf(text, sizeof(text), "%s\"zoë\",\"zoe@c.com\",z@c.com,SMTP:z@r.c.com,"
				     "\"smtp:z@r.c.com; SMTP:z@c.com;;\"\r\n", hdr);
	struct mf_directory d;
	char *diag = NULL;
	CHECK_INT(parse(text, strlen(text), &d, &diag), 0);
	CHECK_INT(d.n, 1);
	if (d.n == 1) {
		CHECK_STR(d.users[0].sam, "zoë");
		CHECK_STR(d.users[0].target, "SMTP:z@r.c.com");
		CHECK_INT(d.users[0].nproxy, 2);
		/* sorted, so that the order of the export never matters */
		CHECK_STR(d.users[0].proxy[0], "SMTP:z@c.com");
		CHECK_STR(d.users[0].proxy[1], "smtp:z@r.c.com");
		CHECK_STR(d.users[0].where, "ad.csv:2");
	}
	mf_directory_free(&d);
	free(diag);
}

/* UTF-16 LE with BOM and a #TYPE line, as PowerShell 5 writes it: a
 * character outside the BMP (a surrogate pair) survives. */
TEST(utf16le_type_line)
{
	const char *u8 = "#TYPE Selected.Microsoft.ActiveDirectory.Management.ADUser\r\n"
			 "SamAccountName,UserPrincipalName,mail,targetAddress,proxyAddresses\r\n"
			 "\xF0\x9F\x98\x80x,a@c.com,a@c.com,,\r\n";
	unsigned char buf[1024];
	size_t n = 0;
	buf[n++] = 0xFF;
	buf[n++] = 0xFE;
	for (const unsigned char *p = (const unsigned char *)u8; *p;) {
		unsigned cp;
		if (*p == 0xF0) {
			cp = (unsigned)(p[0] & 7) << 18 | (unsigned)(p[1] & 63) << 12 |
			     (unsigned)(p[2] & 63) << 6 | (unsigned)(p[3] & 63);
			p += 4;
			unsigned hi = 0xD800 + ((cp - 0x10000) >> 10), lo = 0xDC00 + ((cp - 0x10000) & 0x3FF);
			buf[n++] = hi & 0xFF;
			buf[n++] = hi >> 8;
			buf[n++] = lo & 0xFF;
			buf[n++] = lo >> 8;
			continue;
		}
		buf[n++] = *p++;
		buf[n++] = 0;
	}
	struct mf_directory d;
	char *diag = NULL;
	CHECK_INT(parse((const char *)buf, n, &d, &diag), 0);
	CHECK_INT(d.n, 1);
	if (d.n == 1) {
		CHECK_STR(d.users[0].sam, "\xF0\x9F\x98\x80x");
		CHECK_STR(d.users[0].where, "ad.csv:3");
	}
	mf_directory_free(&d);
	free(diag);
}

TEST(errors_name_the_line)
{
	struct {
		const char *text;
		const char *msg;
	} cases[] = {
		{"SamAccountName,UserPrincipalName,mail,targetAddress,proxyAddresses\n"
		 "a,a@c.com,a@c.com,,\nb,b@c.com,\"b@c.com\"x,,\n", "ad.csv:3: "},
		{"SamAccountName,mail\n", "ad.csv:1: header lacks UserPrincipalName targetAddress proxyAddresses"},
		{"", "ad.csv:1: the directory export is empty"},
		{"SamAccountName,UserPrincipalName,mail,targetAddress,proxyAddresses\n\xC3(,,,,\n",
		 "ad.csv:2: not UTF-8"},
		{"\xFF\xFE\x00\xDC", "ad.csv:1: invalid UTF-16"},
		{"\xFF\xFE\x41", "odd number of bytes"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mf_directory d;
		char *diag = NULL;
		CHECK_INT(parse(cases[i].text, strlen(cases[i].text) + (i == 4 ? 2 : 0), &d, &diag),
			  MF_ECONFIG);
		if (!diag || !strstr(diag, cases[i].msg)) {
			fprintf(stderr, "case %zu: got '%s', expected '%s'\n", i, diag ? diag : "",
				cases[i].msg);
			CHECK(0);
		}
		CHECK_INT(d.n, 0);
		free(diag);
	}
}

int main(void)
{
	RUN(utf8_plain);
	RUN(utf16le_type_line);
	RUN(errors_name_the_line);
	return test_done();
}
