/* manifest.c - the manifests admins already have, parsed with libcsv:
 *   Microsoft 365 PST import mapping CSV:
 *     Workload,FilePath,Name,Mailbox,IsArchive,TargetRootFolder,
 *     ContentCodePage,SPFileContainer,SPManifestContainer,SPSiteUrl
 *   Exchange Online IMAP migration CSV:
 *     EmailAddress,UserName,Password[,UserRoot][,TargetPassword]
 * Every bad line is reported, not just the first.
 */
#include <csv.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "job.h"
#include "util.h"

#define MAX_FIELDS 32
#define MAX_FIELD_LEN 4096

struct row {
	char *f[MAX_FIELDS];
	size_t n;
	int line;
	bool too_many;
	bool too_long;
};

struct reader {
	const char *file;
	FILE *diag;
	int line;   /* line being fed to the parser */
	struct row cur;
	struct row *rows;
	size_t nrows, cap;
	bool oom;
};

static void field_cb(void *data, size_t len, void *arg)
{
	struct reader *r = arg;
	if (!r->cur.n)
		r->cur.line = r->line;
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
	/* a blank line is no record */
	if (r->cur.n == 1 && r->cur.f[0][0] == '\0') {
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
	if (*troot && troot[0] != '/')
		BAD("TargetRootFolder '%s' must be empty, '/' or start with '/'", troot);
	else if (*troot && !safe_relative(troot + 1))
		BAD("TargetRootFolder '%s' must not contain '..'", troot);
	if (bad)
		return MF_ECONFIG;
	u->mailbox = trimmed(mailbox);
	u->pst_path = join3(root ? root : ".", fpath, name);
	u->pst_relpath = join3("", fpath, name);
	if (u->pst_relpath) /* join3 put a '/' first */
		memmove(u->pst_relpath, u->pst_relpath + 1, strlen(u->pst_relpath));
	u->target_root = strdup(troot);
	u->is_archive = strcasecmp(archive, "TRUE") == 0;
	struct mf_buf id = {0};
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
	u->mailbox = trimmed(email);
	u->user = trimmed(user);
	u->password = strdup(pass); /* passwords are taken exactly as written */
	u->user_root = *root ? trimmed(root) : NULL;
	u->target_password = *tpass ? strdup(tpass) : NULL;
	struct mf_buf id = {0};
	mf_buf_printf(&id, "imap:%s:%s:%s", u->user ? u->user : "", root,
		      u->mailbox ? u->mailbox : "");
	u->id = id.data;
	u->source_desc = u->user ? strdup(u->user) : NULL;
	if (!u->mailbox || !u->user || !u->password || (*root && !u->user_root) ||
	    (*tpass && !u->target_password) || !u->id || !u->source_desc)
		return MF_ENOMEM;
	return 0;
}

int mf_manifest_parse(const char *file, const char *text, size_t len, const char *pst_root,
		      enum mf_manifest_kind *kind, struct mf_unit **units, size_t *n, FILE *diag)
{
	*units = NULL;
	*n = 0;
	struct csv_parser p;
	if (csv_init(&p, CSV_APPEND_NULL) != 0)
		return MF_ENOMEM;
	struct reader r = {.file = file, .diag = diag};
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
			fprintf(diag, "%s:%d: %s\n", file, r.line, csv_strerror(csv_error(&p)));
			rc = MF_ECONFIG;
			break;
		}
		pos = e;
	}
	if (!rc && csv_fini(&p, field_cb, record_cb, &r) != 0) {
		fprintf(diag, "%s:%d: unterminated quoted field\n", file, r.line);
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
		if (row->too_many || row->n > hdr->n) {
			fprintf(diag, "%s:%d: %zu fields, but the header has %zu\n", file,
				row->line, row->n, hdr->n);
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
