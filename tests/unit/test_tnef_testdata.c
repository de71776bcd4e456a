/* test_tnef_testdata.c - every TNEF file in $MF_SHARED/testdata/tnef, wrapped
 * in a message as a winmail.dat attachment and normalized:
 *  - nothing crashes (run under ASan+UBSan in CI);
 *  - a file that is not decoded passes through unchanged, flagged
 *    MF_NORM_TNEF_FAILED with a note;
 *  - for a file with a .expected.list, every listed name is produced. The
 *    lists are the upstream tools' test oracles: the files a test checks,
 *    a subset of what is extracted. "<stem>-body.rtf", "<stem>-body.html",
 *    "body.rtf" and "body.html" name the message body: we require a
 *    text/rtf or text/html body part (HTML de-encapsulated from RTF counts
 *    for .rtf).
 * Also runs the .eml files of that folder. Skips (77) without the folder. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/normalize/mime.h"
#include "engine/normalize/normalize.h"
#include "engine/util.h"
#include "test.h"

static char dir[1024];
static int n_files, n_decoded, n_failed, n_lists, n_lists_ok;

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static unsigned char *wrap(const unsigned char *tnef, size_t len, size_t *outlen)
{
	struct mf_out o = { 0 };
	mf_out_str(&o, "From: a@example.org\r\nTo: b@example.org\r\nSubject: tnef\r\n"
		       "Date: Mon, 01 Jan 2024 00:00:00 +0000\r\nMessage-ID: <t@example.org>\r\n"
		       "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
		       "--b\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n--b\r\n"
		       "Content-Type: application/ms-tnef; name=\"winmail.dat\"\r\n"
		       "Content-Transfer-Encoding: base64\r\n\r\n");
	mf_b64_encode(tnef, len, "\r\n", &o);
	mf_out_str(&o, "--b--\r\n");
	if (o.err) {
		mf_out_free(&o);
		return NULL;
	}
	*outlen = o.b.len;
	return (unsigned char *)o.b.data;
}

/* Names and body kinds found in a normalized message. */
struct found {
	char *names[256];
	int n;
	bool rtf_body, html_body, calendar;
};

static void collect(const unsigned char *p, size_t len, struct found *f)
{
	struct mf_part *parts;
	size_t n;
	memset(f, 0, sizeof(*f));
	if (mf_mime_parse(p, len, &parts, &n))
		return;
	for (size_t k = 0; k < n; k++) {
		const struct mf_part *pt = &parts[k];
		size_t fs, fe, vs, ve;
		char name[512] = "";
		const unsigned char *h = p + pt->start;
		size_t hl = pt->hend - pt->start;
		bool named = mf_mime_field(h, hl, "content-disposition", &fs, &fe, &vs, &ve) &&
			     mf_mime_param(h + vs, ve - vs, "filename", name, sizeof(name));
		if (named && f->n < 256)
			f->names[f->n++] = strdup(name);
		if (!named && strcmp(pt->type, "text/rtf") == 0)
			f->rtf_body = true;
		if (!named && strcmp(pt->type, "text/html") == 0)
			f->html_body = true;
		if (strcmp(pt->type, "text/calendar") == 0)
			f->calendar = true;
		/* embedded messages: their parts are parsed too (nested) */
	}
	free(parts);
}

static void free_found(struct found *f)
{
	for (int k = 0; k < f->n; k++)
		free(f->names[k]);
}

/* MimeKit's lists name the bodies "body.rtf" and "body.html" (its test
 * gives them those names); the tnef tool's "<stem>-body.rtf/.html". */
static bool is_body_name(const char *s, bool *html)
{
	size_t l = strlen(s);
	*html = strcmp(s, "body.html") == 0 || (l > 10 && strcmp(s + l - 10, "-body.html") == 0);
	return *html || strcmp(s, "body.rtf") == 0 ||
	       (l > 9 && strcmp(s + l - 9, "-body.rtf") == 0);
}

static void check_list(const char *file, const struct found *f)
{
	char path[1200];
	snprintf(path, sizeof(path), "%s/%s.expected.list", dir, file);
	char *list;
	size_t ll;
	if (mf_read_file(path, 1 << 20, &list, &ll) != 0)
		return;
	n_lists++;
	bool ok = true;
	bool used[256] = { false };
	char *save = NULL;
	for (char *line = strtok_r(list, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save)) {
		if (!*line)
			continue;
		bool html;
		if (is_body_name(line, &html)) {
			bool hit = html ? f->html_body : (f->rtf_body || f->html_body);
			if (!hit) {
				fprintf(stderr, "  %s: expected body %s, none decoded\n", file, line);
				ok = false;
			}
			continue;
		}
		bool hit = false;
		for (int k = 0; k < f->n && !hit; k++)
			if (!used[k] && strcmp(f->names[k], line) == 0)
				hit = used[k] = true;
		if (!hit) {
			fprintf(stderr, "  %s: expected attachment \"%s\" not decoded\n", file, line);
			ok = false;
		}
	}
	free(list);
	if (ok)
		n_lists_ok++;
	CHECK(ok);
}

static void run_one(const char *file)
{
	char path[1200];
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	char *raw;
	size_t rawlen;
	if (mf_read_file(path, 64 << 20, &raw, &rawlen) != 0) {
		CHECK(!"read failed");
		return;
	}
	bool eml = strlen(file) > 4 && strcasecmp(file + strlen(file) - 4, ".eml") == 0;
	size_t mlen = rawlen;
	unsigned char *msg = eml ? (unsigned char *)raw : wrap((unsigned char *)raw, rawlen, &mlen);
	CHECK(msg != NULL);
	if (!msg) {
		free(raw);
		return;
	}
	struct mf_norm_opts o = { .crlf = true, .max_line = 998, .tnef = MF_TNEF_DECODE };
	struct mf_norm_result r;
	CHECK_INT(mf_normalize(&o, msg, mlen, 0, &r), 0);
	n_files++;
	struct found f;
	collect(r.data, r.len, &f);
	if (r.changes & MF_NORM_TNEF) {
		n_decoded++;
		CHECK(!(r.changes & MF_NORM_TNEF_FAILED));
	} else {
		n_failed++;
		CHECK(r.changes & MF_NORM_TNEF_FAILED);
		CHECK(r.note[0] != '\0');
		if (!eml) /* the wrapper needs nothing else: unchanged */
			CHECK(r.len == mlen && memcmp(r.data, msg, mlen) == 0);
	}
	qsort(f.names, (size_t)f.n, sizeof(f.names[0]), cmp_str);
	printf("%-36s %s [", file, r.changes & MF_NORM_TNEF ? "decoded" : "KEPT   ");
	for (int k = 0; k < f.n; k++)
		printf("%s%s", k ? " | " : "", f.names[k]);
	printf("]%s%s%s %s\n", f.rtf_body ? " +rtf" : "", f.html_body ? " +html" : "",
	       f.calendar ? " +ics" : "", r.note);
	if (!eml)
		check_list(file, &f);
	/* deterministic: a second run gives the same bytes */
	struct mf_norm_result r2;
	CHECK_INT(mf_normalize(&o, msg, mlen, 0, &r2), 0);
	CHECK(r2.len == r.len && memcmp(r2.data, r.data, r.len) == 0);
	free(r2.data);
	free_found(&f);
	free(r.data);
	if (msg != (unsigned char *)raw)
		free(msg);
	free(raw);
}

TEST(tnef_testdata)
{
	DIR *d = opendir(dir);
	CHECK(d != NULL);
	if (!d)
		return;
	char *names[512];
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) && n < 512) {
		if (e->d_name[0] == '.' || strstr(e->d_name, ".expected.list"))
			continue;
		names[n++] = strdup(e->d_name);
	}
	closedir(d);
	qsort(names, (size_t)n, sizeof(names[0]), cmp_str);
	for (int k = 0; k < n; k++) {
		run_one(names[k]);
		free(names[k]);
	}
	printf("files %d: decoded %d, kept %d; expected lists %d/%d matched\n", n_files, n_decoded,
	       n_failed, n_lists_ok, n_lists);
	CHECK(n_lists > 0);
}

int main(void)
{
	const char *shared = getenv("MF_SHARED");
	if (!shared || !*shared) {
		printf("SKIP: MF_SHARED not set (no ../shared/testdata)\n");
		return 77;
	}
	snprintf(dir, sizeof(dir), "%s/testdata/tnef", shared);
	DIR *d = opendir(dir);
	if (!d) {
		printf("SKIP: %s absent\n", dir);
		return 77;
	}
	closedir(d);
	RUN(tnef_testdata);
	return test_done();
}
