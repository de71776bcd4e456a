/* manifest.c - the manifests admins already have, parsed with libcsv:
 *   Microsoft 365 PST import mapping CSV:
 *     Workload,FilePath,Name,Mailbox,IsArchive,TargetRootFolder,
 *     ContentCodePage,SPFileContainer,SPManifestContainer,SPSiteUrl
 *   Exchange Online IMAP migration CSV:
 *     EmailAddress,UserName,Password[,UserRoot][,TargetPassword]
 * Every bad line is reported, not just the first. The CSV is read strictly:
 * a quote that is not closed, a stray quote, a line break inside a field, a
 * NUL byte or a row with more or fewer fields than the header refuses the
 * manifest, since a lenient reader would merge or drop rows without saying
 * so. UTF-16 files and files separated by ';' or tabs are recognised and
 * refused with the way to fix them.
 */
#include <csv.h>
#include <iconv.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "job.h"
#include "normalize/mimeenc.h"
#include "util.h"

#define MAX_FIELDS 32
#define MAX_FIELD_LEN 4096

struct row {
	char *f[MAX_FIELDS];
	size_t n;
	int line;
	bool too_many;
	bool too_long;
	int newline; /* line on which a field holding a line break ended, 0 if none */
};

struct reader {
	const char *file;
	FILE *diag;
	int line;   /* line being fed to the parser */
	int rec_line; /* line the record being parsed starts on */
	struct row cur;
	struct row *rows;
	size_t nrows, cap;
	bool oom;
};

static void field_cb(void *data, size_t len, void *arg)
{
	struct reader *r = arg;
	if (!r->cur.n)
		r->cur.line = r->rec_line;
	if (data && (memchr(data, '\n', len) || memchr(data, '\r', len)) && !r->cur.newline)
		r->cur.newline = r->line; /* a quoted field ran over a line end */
	if (r->cur.n >= MAX_FIELDS) {
		r->cur.too_many = true;
		return;
	}
	if (len > MAX_FIELD_LEN)
		r->cur.too_long = true;
	char *v = strndup(data ? data : "", len);
	if (!v) {
		r->oom = true;
		return;
	}
	r->cur.f[r->cur.n++] = v;
}

static void row_free(struct row *row)
{
	for (size_t i = 0; i < row->n; i++)
		free(row->f[i]);
	memset(row, 0, sizeof(*row));
}

static void record_cb(int c, void *arg)
{
	(void)c;
	struct reader *r = arg;
	/* the next record starts on the next line: records end at line ends */
	r->rec_line = r->line + 1;
	/* a blank line is no record */
	if (r->cur.n == 1 && r->cur.f[0][0] == '\0' && !r->cur.newline) {
		row_free(&r->cur);
		return;
	}
	if (r->nrows == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 64;
		struct row *grown = realloc(r->rows, cap * sizeof(*grown));
		if (!grown) {
			r->oom = true;
			row_free(&r->cur);
			return;
		}
		r->rows = grown;
		r->cap = cap;
	}
	r->rows[r->nrows++] = r->cur;
	memset(&r->cur, 0, sizeof(r->cur));
}

void mf_unit_clear(struct mf_unit *u)
{
	free(u->id);
	free(u->mailbox);
	free(u->source_desc);
	free(u->pst_path);
	free(u->pst_relpath);
	free(u->target_root);
	free(u->user);
	mf_secret_free(u->password);
	free(u->user_root);
	mf_secret_free(u->target_password);
	memset(u, 0, sizeof(*u));
}

void mf_units_free(struct mf_unit *units, size_t n)
{
	for (size_t i = 0; i < n; i++)
		mf_unit_clear(&units[i]);
	free(units);
}

static char *trimmed(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t l = strlen(s);
	while (l && (s[l - 1] == ' ' || s[l - 1] == '\t' || s[l - 1] == '\r'))
		l--;
	return strndup(s, l);
}

/* The one form of a mailbox address that identity, state keys and target
 * directories use: trimmed, ASCII letters in lower case (mail systems treat
 * addresses case-insensitively; non-ASCII is left as written). */
static char *canonical_mailbox(const char *s)
{
	char *c = trimmed(s);
	for (char *p = c; p && *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return c;
}

static int column(const struct row *hdr, const char *name)
{
	for (size_t i = 0; i < hdr->n; i++) {
		const char *h = hdr->f[i];
		if (i == 0 && (unsigned char)h[0] == 0xEF && (unsigned char)h[1] == 0xBB &&
		    (unsigned char)h[2] == 0xBF)
			h += 3; /* UTF-8 byte order mark, as Excel writes it */
		while (*h == ' ')
			h++;
		size_t l = strlen(name);
		if (strncasecmp(h, name, l) == 0) {
			const char *rest = h + l;
			while (*rest == ' ')
				rest++;
			if (!*rest)
				return (int)i;
		}
	}
	return -1;
}

static const char *get(const struct row *row, int col)
{
	return col >= 0 && (size_t)col < row->n ? row->f[col] : "";
}

static bool looks_like_address(const char *s)
{
	const char *at = strchr(s, '@');
	return at && at != s && at[1] && !strchr(at + 1, '@') && !strpbrk(s, " \t/\\");
}

/* A relative path with no "..", no NUL (impossible here), no leading '/'. */
static bool safe_relative(const char *s)
{
	if (s[0] == '/' || s[0] == '\\')
		return false;
	const char *p = s;
	while (*p) {
		const char *e = p;
		while (*e && *e != '/' && *e != '\\')
			e++;
		if (e - p == 2 && p[0] == '.' && p[1] == '.')
			return false;
		p = *e ? e + 1 : e;
	}
	return true;
}

static char *join3(const char *a, const char *b, const char *c)
{
	struct mf_buf buf = {0};
	int rc = mf_buf_addstr(&buf, a);
	if (!rc && *b) {
		rc = mf_buf_addstr(&buf, "/");
		if (!rc)
			rc = mf_buf_addstr(&buf, b);
	}
	if (!rc)
		rc = mf_buf_addstr(&buf, "/");
	if (!rc)
		rc = mf_buf_addstr(&buf, c);
	if (rc) {
		mf_buf_free(&buf);
		return NULL;
	}
	/* backslashes as Windows admins write them */
	for (char *p = buf.data; *p; p++)
		if (*p == '\\')
			*p = '/';
	return buf.data;
}

#define BAD(...)                                                                               \
	do {                                                                                   \
		fprintf(diag, "%s:%d: ", file, row->line);                                     \
		fprintf(diag, __VA_ARGS__);                                                    \
		fputc('\n', diag);                                                             \
		bad = true;                                                                    \
	} while (0)

static int pst_row(const char *file, const struct row *hdr, const struct row *row,
		   const char *root, struct mf_unit *u, FILE *diag)
{
	bool bad = false;
	const char *workload = get(row, column(hdr, "Workload"));
	const char *fpath = get(row, column(hdr, "FilePath"));
	const char *name = get(row, column(hdr, "Name"));
	const char *mailbox = get(row, column(hdr, "Mailbox"));
	const char *archive = get(row, column(hdr, "IsArchive"));
	const char *troot = get(row, column(hdr, "TargetRootFolder"));
	if (strcasecmp(workload, "Exchange") != 0)
		BAD("Workload is '%s'; only 'Exchange' rows can be imported", workload);
	if (!*name)
		BAD("Name (the PST file name) is empty");
	else if (strchr(name, '/') || strchr(name, '\\') || !safe_relative(name))
		BAD("Name '%s' must be a file name, not a path (put folders in FilePath)", name);
	else if (strlen(name) < 5 || (strcasecmp(name + strlen(name) - 4, ".pst") != 0 &&
				      strcasecmp(name + strlen(name) - 4, ".ost") != 0))
		BAD("Name '%s' is not a .pst file", name);
	if (!safe_relative(fpath))
		BAD("FilePath '%s' must be relative to [source] root and must not contain '..'",
		    fpath);
	if (!*mailbox)
		BAD("Mailbox is empty");
	else if (!looks_like_address(mailbox))
		BAD("Mailbox '%s' is not an email address", mailbox);
	if (*archive && strcasecmp(archive, "TRUE") != 0 && strcasecmp(archive, "FALSE") != 0)
		BAD("IsArchive is '%s'; expected TRUE, FALSE or empty", archive);
	const char *ccp = get(row, column(hdr, "ContentCodePage"));
	int cp = 0;
	if (*ccp) {
		char *end;
		long v = strtol(ccp, &end, 10);
		char mime[32], ic[32];
		iconv_t cd = (iconv_t)-1;
		if (end != ccp && !*end && v > 0 && v <= 65535) {
			mf_codepage_names((int)v, mime, sizeof(mime), ic, sizeof(ic));
			cd = iconv_open("UTF-8", ic);
		}
		if (cd == (iconv_t)-1)
			BAD("ContentCodePage is '%s'; expected a Windows code page number this "
			    "system can convert (e.g. 1252, 1251, 932, 936, 949, 950)",
			    ccp);
		else {
			iconv_close(cd);
			cp = (int)v;
		}
	}
	if (*troot && troot[0] != '/')
		BAD("TargetRootFolder '%s' must be empty, '/' or start with '/'", troot);
	else if (*troot && !safe_relative(troot + 1))
		BAD("TargetRootFolder '%s' must not contain '..'", troot);
	if (bad)
		return MF_ECONFIG;
	u->mailbox = canonical_mailbox(mailbox);
	u->codepage = cp;
	u->pst_path = join3(root ? root : ".", fpath, name);
	u->pst_relpath = join3("", fpath, name);
	if (u->pst_relpath) /* join3 put a '/' first */
		memmove(u->pst_relpath, u->pst_relpath + 1, strlen(u->pst_relpath));
	u->target_root = strdup(troot);
	u->is_archive = strcasecmp(archive, "TRUE") == 0;
	struct mf_buf id = {0};
	u->id_mailbox_at = 4;
	mf_buf_printf(&id, "pst:%s:%s%s%s:%s", u->mailbox ? u->mailbox : "", fpath,
		      *fpath ? "/" : "", name, troot);
	u->id = id.data;
	u->source_desc = u->pst_path ? strdup(u->pst_path) : NULL;
	if (!u->mailbox || !u->pst_path || !u->pst_relpath || !u->target_root || !u->id ||
	    !u->source_desc)
		return MF_ENOMEM;
	return 0;
}

static int imap_row(const char *file, const struct row *hdr, const struct row *row,
		    struct mf_unit *u, FILE *diag)
{
	bool bad = false;
	const char *email = get(row, column(hdr, "EmailAddress"));
	const char *user = get(row, column(hdr, "UserName"));
	const char *pass = get(row, column(hdr, "Password"));
	int rc = column(hdr, "UserRoot"), tc = column(hdr, "TargetPassword");
	const char *root = get(row, rc);
	const char *tpass = get(row, tc);
	if (!*email)
		BAD("EmailAddress is empty");
	else if (!looks_like_address(email))
		BAD("EmailAddress '%s' is not an email address", email);
	if (!*user)
		BAD("UserName is empty");
	if (!*pass)
		BAD("Password is empty"); /* never print it */
	if (bad)
		return MF_ECONFIG;
	u->mailbox = canonical_mailbox(email);
	u->user = trimmed(user);
	u->password = strdup(pass); /* passwords are taken exactly as written */
	u->user_root = *root ? trimmed(root) : NULL;
	u->target_password = *tpass ? strdup(tpass) : NULL;
	struct mf_buf id = {0};
	mf_buf_printf(&id, "imap:%s:%s:%s", u->user ? u->user : "", root,
		      u->mailbox ? u->mailbox : "");
	u->id = id.data;
	if (u->id && u->mailbox)
		u->id_mailbox_at = strlen(u->id) - strlen(u->mailbox);
	u->source_desc = u->user ? strdup(u->user) : NULL;
	if (!u->mailbox || !u->user || !u->password || (*root && !u->user_root) ||
	    (*tpass && !u->target_password) || !u->id || !u->source_desc)
		return MF_ENOMEM;
	return 0;
}

const char *mf_text_utf16(const char *text, size_t len)
{
	const unsigned char *t = (const unsigned char *)text;
	if (len >= 2 && t[0] == 0xFF && t[1] == 0xFE)
		return "UTF-16LE";
	if (len >= 2 && t[0] == 0xFE && t[1] == 0xFF)
		return "UTF-16BE";
	/* Without a byte order mark: ASCII text with every other byte NUL. */
	size_t even = 0, odd = 0, n = len < 256 ? len : 256;
	for (size_t i = 0; i < n; i++)
		if (!t[i])
			*(i % 2 ? &odd : &even) += 1;
	if (n >= 4 && odd * 4 >= n && even == 0)
		return "UTF-16LE";
	if (n >= 4 && even * 4 >= n && odd == 0)
		return "UTF-16BE";
	return NULL;
}

/* The header line split at `sep`: does it name the columns of a manifest? */
static bool header_with(const char *text, size_t len, char sep)
{
	static const char *const names[] = {"Workload", "FilePath", "Mailbox", "EmailAddress",
					    "UserName", "Password"};
	size_t e = 0;
	while (e < len && text[e] != '\n')
		e++;
	int found = 0;
	for (size_t i = 0; i < e;) {
		size_t f = i;
		while (f < e && text[f] != sep)
			f++;
		size_t a = i, b = f;
		while (a < b && (text[a] == ' ' || text[a] == '"' || (unsigned char)text[a] >= 0x80))
			a++;
		while (b > a && (text[b - 1] == ' ' || text[b - 1] == '"' || text[b - 1] == '\r'))
			b--;
		for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++)
			if (strlen(names[k]) == b - a && strncasecmp(text + a, names[k], b - a) == 0)
				found++;
		i = f + 1;
	}
	return found >= 2;
}

int mf_manifest_parse(const char *file, const char *text, size_t len, const char *pst_root,
		      enum mf_manifest_kind *kind, struct mf_unit **units, size_t *n, FILE *diag)
{
	*units = NULL;
	*n = 0;
	const char *utf16 = mf_text_utf16(text, len);
	if (utf16) {
		fprintf(diag,
			"%s:1: the manifest is %s text (Excel's \"Unicode Text\" or PowerShell 5's "
			"Export-Csv write that); save it as \"CSV UTF-8 (Comma delimited)\" in "
			"Excel, use Export-Csv -Encoding UTF8, or convert it: iconv -f UTF-16 -t "
			"UTF-8 %s > manifest-utf8.csv\n",
			file, utf16, file);
		return MF_ECONFIG;
	}
	/* A NUL is never text; libcsv would pass it on and the field would be
	 * cut at it. Name every line that has one. */
	int nul_errors = 0, nline = 1;
	for (size_t i = 0; i < len; i++) {
		if (text[i] == '\n')
			nline++;
		else if (text[i] == '\0') {
			if (nul_errors++ < 20)
				fprintf(diag, "%s:%d: a NUL byte (column %zu): this is not a text line\n",
					file, nline, i + 1);
			while (i + 1 < len && text[i + 1] != '\n')
				i++;
		}
	}
	if (nul_errors)
		return MF_ECONFIG;
	struct csv_parser p;
	/* CSV_STRICT: a stray quote is an error, not part of a field;
	 * CSV_STRICT_FINI: a quote still open at the end is one too. */
	if (csv_init(&p, CSV_APPEND_NULL | CSV_STRICT | CSV_STRICT_FINI) != 0)
		return MF_ENOMEM;
	struct reader r = {.file = file, .diag = diag, .rec_line = 1};
	int rc = 0;
	size_t pos = 0;
	/* Feed line by line so that each record knows the line it starts on. */
	while (pos < len) {
		size_t e = pos;
		while (e < len && text[e] != '\n')
			e++;
		if (e < len)
			e++;
		r.line++;
		if (csv_parse(&p, text + pos, e - pos, field_cb, record_cb, &r) != e - pos) {
			if (csv_error(&p) == CSV_EPARSE && r.rec_line < r.line)
				fprintf(diag,
					"%s:%d: a quoted field opened on this row is not closed "
					"before line %d (a quote '\"' inside a field must be "
					"written twice, the whole field in quotes)\n",
					file, r.rec_line, r.line);
			else if (csv_error(&p) == CSV_EPARSE)
				fprintf(diag,
					"%s:%d: a stray quote: a field with '\"' in it must be in "
					"quotes, with each '\"' written twice\n",
					file, r.line);
			else
				fprintf(diag, "%s:%d: %s\n", file, r.line,
					csv_strerror(csv_error(&p)));
			rc = csv_error(&p) == CSV_ENOMEM ? MF_ENOMEM : MF_ECONFIG;
			break;
		}
		pos = e;
	}
	if (!rc && csv_fini(&p, field_cb, record_cb, &r) != 0) {
		fprintf(diag,
			"%s:%d: unterminated quoted field: the quote opened on this row is never "
			"closed, so every line after it would be read as part of one field\n",
			file, r.rec_line);
		rc = MF_ECONFIG;
	}
	csv_free(&p);
	row_free(&r.cur);
	if (r.oom)
		rc = MF_ENOMEM;
	if (rc < 0)
		goto out;
	if (r.nrows == 0) {
		fprintf(diag, "%s:1: the manifest is empty (expected a header line)\n", file);
		rc = MF_ECONFIG;
		goto out;
	}
	const struct row *hdr = &r.rows[0];
	bool pst = column(hdr, "Workload") >= 0 && column(hdr, "FilePath") >= 0 &&
		   column(hdr, "Name") >= 0 && column(hdr, "Mailbox") >= 0;
	bool imap = column(hdr, "EmailAddress") >= 0 && column(hdr, "UserName") >= 0 &&
		    column(hdr, "Password") >= 0;
	if (!pst && !imap && (header_with(text, len, ';') || header_with(text, len, '\t'))) {
		bool semi = header_with(text, len, ';');
		fprintf(diag,
			"%s:%d: the columns are separated by %s, not commas%s; save the file as "
			"\"CSV UTF-8 (Comma delimited)\" in Excel (or Export-Csv without "
			"-Delimiter), so that the separator is ','\n",
			file, hdr->line, semi ? "';'" : "tabs",
			semi ? " (Excel writes ';' in locales with a decimal comma)"
			     : " (Excel's \"Unicode Text\" and \"Text (Tab delimited)\" write tabs)");
		rc = MF_ECONFIG;
		goto out;
	}
	if (!pst && !imap) {
		fprintf(diag,
			"%s:%d: unknown header: expected a PST import mapping CSV "
			"(Workload,FilePath,Name,Mailbox,IsArchive,TargetRootFolder,...) or an "
			"IMAP migration CSV (EmailAddress,UserName,Password[,UserRoot])\n",
			file, hdr->line);
		rc = MF_ECONFIG;
		goto out;
	}
	*kind = pst ? MF_MANIFEST_PST : MF_MANIFEST_IMAP;
	if (r.nrows == 1) {
		fprintf(diag, "%s:%d: the manifest has a header but no rows\n", file, hdr->line);
		rc = MF_ECONFIG;
		goto out;
	}
	*units = calloc(r.nrows - 1, sizeof(**units));
	if (!*units) {
		rc = MF_ENOMEM;
		goto out;
	}
	int bad = 0;
	for (size_t i = 1; i < r.nrows; i++) {
		const struct row *row = &r.rows[i];
		/* ",,,,,,,,," is what Excel writes for rows that only have a
		 * format: no data, so no row */
		bool empty = !row->too_many && !row->newline;
		for (size_t k = 0; k < row->n && empty; k++)
			empty = row->f[k][strspn(row->f[k], " \t\r")] == '\0';
		if (empty)
			continue;
		if (row->newline) {
			fprintf(diag,
				"%s:%d: a quoted field runs over a line end (to line %d): no "
				"manifest field holds a line break, so a quote is probably not "
				"closed\n",
				file, row->line, row->newline);
			bad++;
			continue;
		}
		if (row->too_many || row->n != hdr->n) {
			fprintf(diag, "%s:%d: %s%zu fields, but the header has %zu\n", file,
				row->line, row->too_many ? "more than " : "", row->n, hdr->n);
			bad++;
			continue;
		}
		if (row->too_long) {
			fprintf(diag, "%s:%d: a field is longer than %d bytes\n", file, row->line,
				MAX_FIELD_LEN);
			bad++;
			continue;
		}
		struct mf_unit *u = &(*units)[*n];
		u->line = row->line;
		int e = pst ? pst_row(file, hdr, row, pst_root, u, diag)
			    : imap_row(file, hdr, row, u, diag);
		if (e == MF_ENOMEM) {
			mf_unit_clear(u);
			rc = MF_ENOMEM;
			goto out;
		}
		if (e < 0) {
			mf_unit_clear(u);
			bad++;
			continue;
		}
		for (size_t k = 0; k < *n; k++) {
			if (strcmp((*units)[k].id, u->id) == 0) {
				fprintf(diag, "%s:%d: the same row as line %d\n", file, u->line,
					(*units)[k].line);
				mf_unit_clear(u);
				bad++;
				goto next;
			}
		}
		(*n)++;
next:;
	}
	if (bad)
		rc = MF_ECONFIG;
out:
	for (size_t i = 0; i < r.nrows; i++)
		row_free(&r.rows[i]);
	free(r.rows);
	if (rc < 0) {
		mf_units_free(*units, *n);
		*units = NULL;
		*n = 0;
	}
	return rc;
}
