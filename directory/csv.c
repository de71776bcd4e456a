/* csv.c - the directory export that admins make with
 *   Get-ADUser -Filter * -Properties mail,proxyAddresses,targetAddress,userPrincipalName |
 *     Select SamAccountName,UserPrincipalName,mail,targetAddress,
 *            @{n='proxyAddresses';e={$_.proxyAddresses -join ';'}} | Export-Csv ...
 * PowerShell 5 writes it as UTF-16 LE with a BOM and a "#TYPE ..." first
 * line unless told otherwise; PowerShell 7 writes UTF-8 without either.
 * Parsed strictly with libcsv, as the manifest is: a syntax error is
 * FILE:LINE and nothing is checked.
 */
#include <csv.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "directory/directory.h"
#include "engine/error.h"
#include "engine/util.h"

#define MAX_DIRECTORY (256u << 20)
#define MAX_FIELD_LEN 65536 /* proxyAddresses of a big mailbox can be long */

enum { C_SAM, C_UPN, C_MAIL, C_TARGET, C_PROXY, NCOL };
static const char *const col_names[NCOL] = {"SamAccountName", "UserPrincipalName", "mail",
					    "targetAddress", "proxyAddresses"};

struct reader {
	const char *file;
	FILE *diag;
	struct mf_directory *d;
	int line;        /* line being fed */
	int rec_line;    /* line the current record starts on */
	char *f[16];     /* the current record's fields */
	size_t nf;
	bool too_many, too_long;
	int col[NCOL];   /* column of each name, -1 before the header */
	bool have_header;
	int errors;
	bool oom;
};

static void put_utf8(struct mf_buf *b, uint32_t cp, int *rc)
{
	unsigned char u[4];
	size_t n;
	if (cp < 0x80) {
		u[0] = (unsigned char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (unsigned char)(0xC0 | (cp >> 6));
		u[1] = (unsigned char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (unsigned char)(0xE0 | (cp >> 12));
		u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
		u[2] = (unsigned char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		u[0] = (unsigned char)(0xF0 | (cp >> 18));
		u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
		u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
		u[3] = (unsigned char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	if (!*rc)
		*rc = mf_buf_add(b, u, n);
}

/* UTF-16 with a BOM to UTF-8. A lone surrogate or an odd byte count is
 * an error on the line it is on: the export is damaged, and guessing
 * would change an address. */
static int from_utf16(const char *file, const unsigned char *s, size_t len, bool be,
		      struct mf_buf *out, FILE *diag)
{
	int rc = 0, line = 1;
	if (len % 2) {
		fprintf(diag, "%s: UTF-16 file with an odd number of bytes (truncated?)\n", file);
		return MF_ECONFIG;
	}
	for (size_t i = 2; i < len && !rc; i += 2) {
		uint32_t u = be ? (uint32_t)(s[i] << 8 | s[i + 1]) : (uint32_t)(s[i + 1] << 8 | s[i]);
		if (u >= 0xD800 && u < 0xDC00) {
			uint32_t lo = 0;
			if (i + 3 < len)
				lo = be ? (uint32_t)(s[i + 2] << 8 | s[i + 3])
					: (uint32_t)(s[i + 3] << 8 | s[i + 2]);
			if (lo < 0xDC00 || lo >= 0xE000) {
				fprintf(diag, "%s:%d: invalid UTF-16 (lone surrogate)\n", file, line);
				return MF_ECONFIG;
			}
			u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
			i += 2;
		} else if (u >= 0xDC00 && u < 0xE000) {
			fprintf(diag, "%s:%d: invalid UTF-16 (lone surrogate)\n", file, line);
			return MF_ECONFIG;
		}
		if (u == '\n')
			line++;
		put_utf8(out, u, &rc);
	}
	return rc;
}

/* The line of the first byte that is not UTF-8, or 0. */
static int bad_utf8_line(const unsigned char *s, size_t len)
{
	int line = 1;
	for (size_t i = 0; i < len;) {
		unsigned char c = s[i];
		size_t n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3
				     : (c & 0xF8) == 0xF0 ? 4 : 0;
		if (!n || (n == 2 && c < 0xC2) || i + n > len)
			return line;
		for (size_t k = 1; k < n; k++)
			if ((s[i + k] & 0xC0) != 0x80)
				return line;
		if (c == '\n')
			line++;
		i += n;
	}
	return 0;
}

static char *trimmed(const char *s, size_t l)
{
	while (l && (*s == ' ' || *s == '\t')) {
		s++;
		l--;
	}
	while (l && (s[l - 1] == ' ' || s[l - 1] == '\t' || s[l - 1] == '\r'))
		l--;
	return strndup(s, l);
}

static void field_cb(void *data, size_t len, void *arg)
{
	struct reader *r = arg;
	if (!r->nf)
		r->rec_line = r->line;
	if (r->nf >= sizeof(r->f) / sizeof(r->f[0])) {
		r->too_many = true;
		return;
	}
	if (len > MAX_FIELD_LEN)
		r->too_long = true;
	char *v = trimmed(data ? data : "", len);
	if (!v) {
		r->oom = true;
		return;
	}
	r->f[r->nf++] = v;
}

static void clear_record(struct reader *r)
{
	for (size_t i = 0; i < r->nf; i++)
		free(r->f[i]);
	r->nf = 0;
	r->too_many = r->too_long = false;
}

static const char *fld(const struct reader *r, int c)
{
	int i = r->col[c];
	return (size_t)i < r->nf ? r->f[i] : "";
}

static void header(struct reader *r)
{
	int missing = 0;
	for (int c = 0; c < NCOL; c++) {
		r->col[c] = -1;
		for (size_t i = 0; i < r->nf; i++)
			if (strcasecmp(r->f[i], col_names[c]) == 0)
				r->col[c] = (int)i;
		if (r->col[c] < 0)
			missing++;
	}
	if (missing) {
		fprintf(r->diag, "%s:%d: header lacks", r->file, r->rec_line);
		for (int c = 0; c < NCOL; c++)
			if (r->col[c] < 0)
				fprintf(r->diag, " %s", col_names[c]);
		fprintf(r->diag, " (expected the columns SamAccountName,UserPrincipalName,mail,"
				 "targetAddress,proxyAddresses of Get-ADUser | Export-Csv)\n");
		r->errors++;
	}
	r->have_header = true;
}

static void user(struct reader *r)
{
	const char *px = fld(r, C_PROXY);
	if (strncmp(px, "Microsoft.ActiveDirectory.Management.", 37) == 0) {
		/* Export-Csv of the bare collection writes its type name */
		fprintf(r->diag,
			"%s:%d: proxyAddresses holds a type name, not addresses: export it "
			"with @{n='proxyAddresses';e={$_.proxyAddresses -join ';'}}\n",
			r->file, r->rec_line);
		r->errors++;
		return;
	}
	char *copy = strdup(px);
	char **proxy = NULL;
	size_t np = 0;
	if (!copy) {
		r->oom = true;
		return;
	}
	for (char *p = copy, *e; p; p = e) {
		e = strchr(p, ';');
		if (e)
			*e++ = '\0';
		while (*p == ' ')
			p++;
		size_t l = strlen(p);
		while (l && p[l - 1] == ' ')
			p[--l] = '\0';
		if (!*p)
			continue;
		char **grown = realloc(proxy, (np + 1) * sizeof(*grown));
		if (!grown) {
			r->oom = true;
			break;
		}
		proxy = grown;
		proxy[np++] = p;
	}
	char where[64 + 4096];
	snprintf(where, sizeof(where), "%s:%d", r->file, r->rec_line);
	if (!r->oom && mf_directory_add(r->d, fld(r, C_SAM), fld(r, C_UPN), fld(r, C_MAIL),
					fld(r, C_TARGET), (const char *const *)proxy, np,
					where) < 0)
		r->oom = true;
	free(proxy);
	free(copy);
}

static void record_cb(int c, void *arg)
{
	(void)c;
	struct reader *r = arg;
	if (r->nf == 1 && !r->f[0][0]) {
		/* a blank line is no record */
	} else if (r->too_many) {
		fprintf(r->diag, "%s:%d: too many fields\n", r->file, r->rec_line);
		r->errors++;
	} else if (r->too_long) {
		fprintf(r->diag, "%s:%d: a field is longer than %d bytes\n", r->file, r->rec_line,
			MAX_FIELD_LEN);
		r->errors++;
	} else if (!r->have_header) {
		header(r);
	} else if (r->nf > (size_t)sizeof(r->f) / sizeof(r->f[0])) {
		r->errors++;
	} else {
		user(r);
	}
	clear_record(r);
}

int mf_directory_parse_csv(const char *file, const char *text, size_t len,
			   struct mf_directory *d, FILE *diag)
{
	memset(d, 0, sizeof(*d));
	const unsigned char *u = (const unsigned char *)text;
	struct mf_buf conv = {0};
	int rc = 0;
	if (len >= 2 && ((u[0] == 0xFF && u[1] == 0xFE) || (u[0] == 0xFE && u[1] == 0xFF))) {
		rc = from_utf16(file, u, len, u[0] == 0xFE, &conv, diag);
		if (rc < 0)
			goto out;
		text = conv.data ? conv.data : "";
		len = conv.len;
	} else {
		if (len >= 3 && u[0] == 0xEF && u[1] == 0xBB && u[2] == 0xBF) {
			text += 3;
			len -= 3;
		}
		int bad = bad_utf8_line((const unsigned char *)text, len);
		if (bad) {
			fprintf(diag,
				"%s:%d: not UTF-8 (export with -Encoding UTF8 or Unicode)\n",
				file, bad);
			rc = MF_ECONFIG;
			goto out;
		}
	}
	struct csv_parser p;
	if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0) {
		rc = MF_ENOMEM;
		goto out;
	}
	struct reader r = {.file = file, .diag = diag, .d = d};
	size_t pos = 0;
	/* Line by line, so that each record knows the line it starts on. */
	while (pos < len) {
		size_t e = pos;
		while (e < len && text[e] != '\n')
			e++;
		if (e < len)
			e++;
		r.line++;
		if (r.line == 1 && e - pos >= 5 && strncmp(text + pos, "#TYPE", 5) == 0) {
			pos = e; /* Export-Csv without -NoTypeInformation */
			continue;
		}
		if (csv_parse(&p, text + pos, e - pos, field_cb, record_cb, &r) != e - pos) {
			fprintf(diag, "%s:%d: %s\n", file, r.line, csv_strerror(csv_error(&p)));
			r.errors++;
			break;
		}
		pos = e;
	}
	if (!r.errors && csv_fini(&p, field_cb, record_cb, &r) != 0) {
		fprintf(diag, "%s:%d: unterminated quoted field\n", file, r.line);
		r.errors++;
	}
	csv_free(&p);
	clear_record(&r);
	if (!r.have_header && !r.errors) {
		fprintf(diag, "%s:1: the directory export is empty (expected a header line)\n",
			file);
		r.errors++;
	}
	rc = r.oom ? MF_ENOMEM : r.errors ? MF_ECONFIG : 0;
out:
	mf_buf_free(&conv);
	if (rc < 0)
		mf_directory_free(d);
	return rc;
}

int mf_directory_read_csv(const char *path, struct mf_directory *d, FILE *diag)
{
	char *text = NULL;
	size_t len = 0;
	memset(d, 0, sizeof(*d));
	int rc = mf_read_file(path, MAX_DIRECTORY, &text, &len);
	if (rc < 0) {
		fprintf(diag, "%s: cannot read the directory export: %s\n", path,
			rc == -EFBIG ? "larger than 256 MiB" : strerror(-rc));
		return MF_ECONFIG;
	}
	rc = mf_directory_parse_csv(path, text, len, d, diag);
	free(text);
	return rc;
}

int mf_directory_add(struct mf_directory *d, const char *sam, const char *upn, const char *mail,
		     const char *target, const char *const *proxy, size_t nproxy,
		     const char *where)
{
	struct mf_dir_user *grown = realloc(d->users, (d->n + 1) * sizeof(*grown));
	if (!grown)
		return MF_ENOMEM;
	d->users = grown;
	struct mf_dir_user *u = &d->users[d->n];
	memset(u, 0, sizeof(*u));
	d->n++;
	u->sam = strdup(sam ? sam : "");
	u->upn = strdup(upn ? upn : "");
	u->mail = strdup(mail ? mail : "");
	u->target = strdup(target ? target : "");
	u->where = strdup(where ? where : "");
	u->proxy = nproxy ? calloc(nproxy, sizeof(*u->proxy)) : NULL;
	if (!u->sam || !u->upn || !u->mail || !u->target || !u->where || (nproxy && !u->proxy))
		return MF_ENOMEM;
	for (size_t i = 0; i < nproxy; i++) {
		if (!(u->proxy[i] = strdup(proxy[i])))
			return MF_ENOMEM;
		u->nproxy++;
	}
	/* proxyAddresses is a set: neither an export's nor a server's order may
	 * change a finding (which SMTP: is primary when there are two) */
	for (size_t i = 1; i < u->nproxy; i++)
		for (size_t j = i; j > 0 && strcmp(u->proxy[j - 1], u->proxy[j]) > 0; j--) {
			char *t = u->proxy[j];
			u->proxy[j] = u->proxy[j - 1];
			u->proxy[j - 1] = t;
		}
	return 0;
}

void mf_directory_free(struct mf_directory *d)
{
	for (size_t i = 0; i < d->n; i++) {
		struct mf_dir_user *u = &d->users[i];
		free(u->sam);
		free(u->upn);
		free(u->mail);
		free(u->target);
		free(u->where);
		for (size_t k = 0; k < u->nproxy; k++)
			free(u->proxy[k]);
		free(u->proxy);
	}
	free(d->users);
	memset(d, 0, sizeof(*d));
}
