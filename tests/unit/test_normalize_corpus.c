/* test_normalize_corpus.c - the whole $MF_SHARED/testdata/eml corpus through
 * mf_normalize() under two target profiles:
 *   imap/graph-like: CRLF, lines <= 998, Message-ID and Date added, DNT dropped
 *   stress:          CRLF, lines <= 100 (re-encodes many parts)
 *   maildir-like:    LF, no line limit, nothing added
 * For every file: unchanged output unless a change bit is set; every bit set
 * is justified by an independent look at the input; the output has
 * consistent line ends, no NUL, no line over the limit (unless the note says
 * a header could not be folded), a header block that still ends in a blank
 * line, and normalizing it again changes nothing (idempotent).
 * Prints counts per kind. Skips (77) without the corpus. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/normalize/normalize.h"
#include "engine/util.h"
#include "test.h"

static char dir[1024];

struct profile {
	const char *name;
	struct mf_norm_opts o;
	int unchanged, changed, kinds[MF_NORM_NKINDS], fold_exceptions;
};

static struct profile profiles[] = {
	{ .name = "crlf/998/ids",
	  .o = { .crlf = true, .max_line = 998, .add_message_id = true, .add_date = true,
		 .drop_dnt = true, .tnef = MF_TNEF_DECODE } },
	/* a tight limit that makes many parts need re-encoding */
	{ .name = "crlf/100", .o = { .crlf = true, .max_line = 100, .tnef = MF_TNEF_DECODE } },
	{ .name = "lf/nolimit", .o = { .crlf = false, .max_line = 0, .tnef = MF_TNEF_DECODE } },
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* End of the header block: offset of the blank line, or len if none. */
static size_t header_len(const unsigned char *p, size_t len, bool *blank)
{
	size_t i = 0;
	*blank = false;
	while (i < len) {
		const unsigned char *nl = memchr(p + i, '\n', len - i);
		size_t le = nl ? (size_t)(nl - p) : len;
		size_t ce = le > i && p[le - 1] == '\r' ? le - 1 : le;
		if (ce == i) {
			*blank = true;
			return i;
		}
		i = nl ? le + 1 : len;
	}
	return len;
}

static bool header_has(const unsigned char *p, size_t len, const char *name)
{
	bool blank;
	size_t hl = header_len(p, len, &blank);
	size_t nl = strlen(name);
	for (size_t i = 0; i < hl; i++)
		if ((i == 0 || p[i - 1] == '\n') && hl - i > nl &&
		    strncasecmp((const char *)p + i, name, nl) == 0)
			return true;
	return false;
}

static size_t max_line_of(const unsigned char *p, size_t len)
{
	size_t best = 0, cur = 0;
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\n' || p[i] == '\r') {
			cur = 0;
			continue;
		}
		if (++cur > best)
			best = cur;
	}
	return best;
}

static bool contains_ci(const unsigned char *p, size_t len, const char *s)
{
	size_t n = strlen(s);
	for (size_t i = 0; i + n <= len; i++)
		if (strncasecmp((const char *)p + i, s, n) == 0)
			return true;
	return false;
}

static void justify(const char *file, const struct profile *pr, const unsigned char *in,
		    size_t len, unsigned changes)
{
	bool lf_only = false, crlf = false, bare_cr = false;
	for (size_t i = 0; i < len; i++) {
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
			lf_only = true;
		if (in[i] == '\r') {
			if (i + 1 < len && in[i + 1] == '\n')
				crlf = true;
			else
				bare_cr = true;
		}
	}
	struct {
		unsigned bit;
		bool ok;
	} why[] = {
		{ MF_NORM_LINE_ENDINGS, pr->o.crlf ? lf_only : crlf },
		{ MF_NORM_BARE_CR, bare_cr },
		{ MF_NORM_NUL, memchr(in, 0, len) != NULL },
		{ MF_NORM_LONG_LINES, pr->o.max_line && max_line_of(in, len) > pr->o.max_line },
		{ MF_NORM_MESSAGE_ID, pr->o.add_message_id && !header_has(in, len, "message-id:") },
		{ MF_NORM_DATE, pr->o.add_date && !header_has(in, len, "date:") },
		{ MF_NORM_TNEF, contains_ci(in, len, "ms-tnef") || contains_ci(in, len, "winmail.dat") },
		{ MF_NORM_TNEF_FAILED,
		  contains_ci(in, len, "ms-tnef") || contains_ci(in, len, "winmail.dat") },
		{ MF_NORM_DNT_DROPPED,
		  pr->o.drop_dnt && header_has(in, len, "disposition-notification-to") },
	};
	for (size_t k = 0; k < sizeof(why) / sizeof(why[0]); k++)
		if ((changes & why[k].bit) && !why[k].ok) {
			fprintf(stderr, "  %s [%s]: change %#x without a reason in the input\n", file,
				pr->name, why[k].bit);
			CHECK(!"unjustified change");
		}
}

static void check_output(const char *file, struct profile *pr, const unsigned char *in,
			 size_t inlen, const struct mf_norm_result *r)
{
	bool bad_eol = false;
	for (size_t i = 0; i < r->len; i++) {
		if (pr->o.crlf) {
			if ((r->data[i] == '\n' && (i == 0 || r->data[i - 1] != '\r')) ||
			    (r->data[i] == '\r' && (i + 1 >= r->len || r->data[i + 1] != '\n')))
				bad_eol = true;
		} else if (r->data[i] == '\r') {
			bad_eol = true;
		}
	}
	if (bad_eol)
		fprintf(stderr, "  %s [%s]: inconsistent line ends\n", file, pr->name);
	CHECK(!bad_eol);
	CHECK(memchr(r->data, 0, r->len) == NULL);
	if (pr->o.max_line && max_line_of(r->data, r->len) > pr->o.max_line) {
		if (strstr(r->note, "no place to fold")) {
			pr->fold_exceptions++;
		} else {
			fprintf(stderr, "  %s [%s]: line of %zu > %zu (%s)\n", file, pr->name,
				max_line_of(r->data, r->len), pr->o.max_line, r->note);
			CHECK(!"line limit");
		}
	}
	bool bin, bout;
	header_len(in, inlen, &bin);
	header_len(r->data, r->len, &bout);
	if (bin && !bout)
		fprintf(stderr, "  %s [%s]: header block lost its end\n", file, pr->name);
	CHECK(!bin || bout);
	/* idempotent */
	struct mf_norm_result r2;
	CHECK_INT(mf_normalize(&pr->o, r->data, r->len, 1700000000, &r2), 0);
	bool same = r2.len == r->len && memcmp(r2.data, r->data, r->len) == 0;
	/* an undecodable winmail.dat is reported again, the bytes stay */
	unsigned again = r2.changes & ~(unsigned)MF_NORM_TNEF_FAILED;
	if (!same || again)
		fprintf(stderr, "  %s [%s]: second pass changed it again (%#x)\n", file, pr->name,
			r2.changes);
	CHECK(same && !again);
	free(r2.data);
}

static void run_file(const char *file)
{
	char path[1200];
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	char *raw;
	size_t len;
	if (mf_read_file(path, 64 << 20, &raw, &len) != 0) {
		CHECK(!"read");
		return;
	}
	const unsigned char *in = (const unsigned char *)raw;
	for (size_t p = 0; p < sizeof(profiles) / sizeof(profiles[0]); p++) {
		struct profile *pr = &profiles[p];
		struct mf_norm_result r;
		int rc = mf_normalize(&pr->o, in, len, 1700000000, &r);
		CHECK_INT(rc, 0);
		if (rc)
			continue;
		bool same = r.len == len && memcmp(r.data, in, len) == 0;
		if (!r.changes) {
			if (!same)
				fprintf(stderr, "  %s [%s]: changed without a reason\n", file, pr->name);
			CHECK(same);
			pr->unchanged++;
		} else {
			pr->changed++;
			for (unsigned b = 0; b < MF_NORM_NKINDS; b++)
				if (r.changes & (1u << b))
					pr->kinds[b]++;
		}
		justify(file, pr, in, len, r.changes);
		check_output(file, pr, in, len, &r);
		free(r.data);
	}
	free(raw);
}

TEST(corpus)
{
	DIR *d = opendir(dir);
	CHECK(d != NULL);
	if (!d)
		return;
	char *names[2048];
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) && n < 2048)
		if (e->d_name[0] != '.')
			names[n++] = strdup(e->d_name);
	closedir(d);
	qsort(names, (size_t)n, sizeof(names[0]), cmp_str);
	for (int k = 0; k < n; k++) {
		run_file(names[k]);
		free(names[k]);
	}
	for (size_t p = 0; p < sizeof(profiles) / sizeof(profiles[0]); p++) {
		struct profile *pr = &profiles[p];
		printf("%s: %d files, %d unchanged, %d changed;", pr->name, n, pr->unchanged,
		       pr->changed);
		for (unsigned b = 0; b < MF_NORM_NKINDS; b++)
			if (pr->kinds[b])
				printf(" %s=%d", mf_norm_kind_name(b), pr->kinds[b]);
		printf("; unfoldable headers %d\n", pr->fold_exceptions);
	}
	CHECK(n > 0);
}

int main(void)
{
	const char *shared = getenv("MF_SHARED");
	if (!shared || !*shared) {
		printf("SKIP: MF_SHARED not set (no ../shared/testdata)\n");
		return 77;
	}
	snprintf(dir, sizeof(dir), "%s/testdata/eml", shared);
	DIR *d = opendir(dir);
	if (!d) {
		printf("SKIP: %s absent\n", dir);
		return 77;
	}
	closedir(d);
	RUN(corpus);
	return test_done();
}
