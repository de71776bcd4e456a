/* coexist.c - the coexistence pre-flight (coexist.h).
 *
 * How mailferry reads Microsoft's rules (README, "Coexistence pre-flight"):
 * the guide says the target address (-ExternalEmailAddress) "must be the
 * user's valid primary SMTP address" in a verified domain matching the UPN
 * domain, yet its own example pairs a target in the routing subdomain
 * (user@domino.contoso.com) with a primary address in the main domain
 * (user@contoso.com). We check the reading the example implies: the UPN and
 * the primary SMTP address are in primary_domain, the target address is
 * LOCAL@routing_domain with the primary address's LOCAL, and both domains
 * are verified.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "directory/directory.h"
#include "directory/tenant.h"
#include "engine/coexist.h"
#include "engine/job.h"
#include "engine/log.h"
#include "engine/run.h"
#include "engine/util.h"

#define MAX_FINDINGS 12

struct cx_conf {
	const struct mf_conf_section *sec;
	struct mf_tenant *tenant; /* a graph sink: the tenant's side too */
	const char *manifest;     /* its path, for messages */
	const char *primary, *routing, *directory;
	char **verified;
	size_t nverified;
};

struct finding {
	const char *rule;
	char *detail;
};

struct row {
	const struct mf_unit *u;
	const struct mf_dir_user *user; /* NULL: not found or ambiguous */
	const char *primary;            /* primary SMTP address, borrowed, or NULL */
	struct finding f[MAX_FINDINGS];
	size_t nf;
};

/* A rule can be switched off through the environment for the test that
 * proves each rule's check matters (tests/integration/coexist.sh). */
static bool rule_off(const char *rule)
{
	const char *off = getenv("MF_COEXIST_TEST_RULE_OFF");
	return off && strcmp(off, rule) == 0;
}

static int add(struct row *r, const char *rule, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int add(struct row *r, const char *rule, const char *fmt, ...)
{
	if (rule_off(rule) || r->nf == MAX_FINDINGS)
		return 0;
	va_list ap;
	va_start(ap, fmt);
	char *s = NULL;
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		return MF_ENOMEM;
	r->f[r->nf].rule = rule;
	r->f[r->nf].detail = s;
	r->nf++;
	return 0;
}

static const char *strip_smtp(const char *s)
{
	return strncasecmp(s, "smtp:", 5) == 0 ? s + 5 : s;
}

static const char *domain_of(const char *addr)
{
	const char *at = addr ? strrchr(addr, '@') : NULL;
	return at && at != addr && at[1] ? at + 1 : NULL;
}

static bool verified(const struct cx_conf *c, const char *dom)
{
	for (size_t i = 0; dom && i < c->nverified; i++)
		if (strcasecmp(c->verified[i], dom) == 0)
			return true;
	return false;
}

static bool user_has(const struct mf_dir_user *u, const char *addr)
{
	if (strcasecmp(u->upn, addr) == 0 || strcasecmp(u->mail, addr) == 0)
		return true;
	for (size_t i = 0; i < u->nproxy; i++)
		if (strncasecmp(u->proxy[i], "smtp:", 5) == 0 &&
		    strcasecmp(u->proxy[i] + 5, addr) == 0)
			return true;
	return false;
}

/* The name a finding uses for a user: the same from CSV and LDAP. */
static const char *who(const struct mf_dir_user *u)
{
	return *u->sam ? u->sam : *u->upn ? u->upn : u->mail;
}

static const char *primary_of(const struct mf_dir_user *u)
{
	for (size_t i = 0; i < u->nproxy; i++)
		if (strncmp(u->proxy[i], "SMTP:", 5) == 0 && u->proxy[i][5])
			return u->proxy[i] + 5;
	return *u->mail ? u->mail : NULL;
}

static size_t local_len(const char *addr)
{
	const char *at = strrchr(addr, '@');
	return at ? (size_t)(at - addr) : strlen(addr);
}

static int by_who(const void *a, const void *b)
{
	return strcmp(who(*(const struct mf_dir_user *const *)a),
		      who(*(const struct mf_dir_user *const *)b));
}

/* "a, b, c" of users, sorted, so that the directory's order never shows. */
static int names_of(const struct mf_dir_user **u, size_t n, struct mf_buf *out)
{
	qsort(u, n, sizeof(*u), by_who);
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		if (i)
			rc = mf_buf_addstr(out, ", ");
		if (!rc)
			rc = mf_buf_addstr(out, who(u[i]));
	}
	return rc;
}

/* The rules that need one row and the directory. */
static int check_row(const struct cx_conf *c, const struct mf_directory *d, struct row *r)
{
	const char *mbx = r->u->mailbox;
	size_t nmatch = 0;
	const struct mf_dir_user *m = NULL;
	struct mf_buf names = {0};
	int rc = 0;
	const struct mf_dir_user **hit = calloc(d->n ? d->n : 1, sizeof(*hit));
	if (!hit)
		return MF_ENOMEM;
	for (size_t i = 0; i < d->n; i++)
		if (user_has(&d->users[i], mbx))
			m = hit[nmatch++] = &d->users[i];
	if ((rc = names_of(hit, nmatch, &names)) < 0)
		goto out;
	if (nmatch == 0) {
		rc = add(r, "user-found", "no directory user has %s as mail, proxyAddresses or "
					  "userPrincipalName", mbx);
		goto routing;
	}
	if (nmatch > 1) {
		rc = add(r, "user-found", "%s belongs to %zu directory users (%s)", mbx, nmatch,
			 names.data);
		goto routing;
	}
	r->user = m;
	const char *upd = domain_of(m->upn);
	if (!*m->upn)
		rc = add(r, "upn-domain", "%s has no userPrincipalName", who(m));
	else if (!upd || strcasecmp(upd, c->primary) != 0)
		rc = add(r, "upn-domain", "UPN %s is not in %s", m->upn, c->primary);
	if (rc)
		goto out;
	r->primary = primary_of(m);
	if (!r->primary)
		rc = add(r, "primary-verified",
			 "%s has no primary SMTP address (no SMTP: in proxyAddresses, no mail)",
			 who(m));
	else if (!verified(c, domain_of(r->primary)))
		rc = add(r, "primary-verified", "primary SMTP address %s is not in a verified domain",
			 r->primary);
	if (rc)
		goto out;
	const char *t = strip_smtp(m->target);
	if (!*t) {
		rc = add(r, "target-present", "%s has no targetAddress (not mail-enabled)", who(m));
		goto routing;
	}
	const char *td = domain_of(t);
	const char *pl = r->primary ? r->primary : mbx;
	size_t ll = local_len(pl);
	if (!td || strcasecmp(td, c->routing) != 0 || local_len(t) != ll ||
	    strncasecmp(t, pl, ll) != 0)
		rc = add(r, "target-form", "targetAddress %s is not %.*s@%s", t, (int)ll, pl,
			 c->routing);
	if (!rc && !verified(c, td))
		rc = add(r, "target-verified", "targetAddress %s is not in a verified domain", t);
	if (rc)
		goto out;
	mf_buf_free(&names);
	nmatch = 0;
	for (size_t i = 0; i < d->n; i++)
		if (&d->users[i] != m && strcasecmp(strip_smtp(d->users[i].target), t) == 0)
			hit[nmatch++] = &d->users[i];
	rc = names_of(hit, nmatch, &names);
	if (!rc && nmatch)
		rc = add(r, "target-unique", "targetAddress %s is also on %s", t, names.data);
	if (rc)
		goto out;
routing:
	if (!rc && !verified(c, c->routing))
		rc = add(r, "routing-verified", "routing domain %s is not a verified domain",
			 c->routing);
out:
	free(hit);
	mf_buf_free(&names);
	return rc;
}

/* No two rows for one person: the same directory user, or (unmatched) the
 * same mailbox. */
static int check_people(struct row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < n; j++) {
			if (i == j)
				continue;
			bool same = rows[i].user ? rows[i].user == rows[j].user
						 : strcasecmp(rows[i].u->mailbox,
							      rows[j].u->mailbox) == 0;
			if (!same)
				continue;
			int rc = add(&rows[i], "one-row-per-person", "line %d is the same person (%s)",
				     rows[j].u->line,
				     rows[i].user ? who(rows[i].user) : rows[j].u->mailbox);
			if (rc)
				return rc;
			break;
		}
	}
	return 0;
}

/* --- output -------------------------------------------------------------- */

static size_t width(const char *s)
{
	size_t w = 0;
	for (; *s; s++)
		w += ((unsigned char)*s & 0xC0) != 0x80;
	return w;
}

static void csv_field(FILE *out, const char *s)
{
	if (!strpbrk(s, ",\"\r\n")) {
		fputs(s, out);
		return;
	}
	fputc('"', out);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', out);
		fputc(*s, out);
	}
	fputc('"', out);
}

static void json_str(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			fprintf(out, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(out, "\\u%04x", ch);
		else
			fputc(ch, out);
	}
	fputc('"', out);
}

/* One row, one line: a control character from the directory is shown as '?'. */
static void put_plain(FILE *out, const char *s)
{
	for (; *s; s++)
		fputc((unsigned char)*s < 0x20 || *s == 0x7F ? '?' : *s, out);
}

static void print_table(FILE *out, const struct row *rows, size_t n)
{
	size_t w = strlen("MAILBOX");
	for (size_t i = 0; i < n; i++)
		if (width(rows[i].u->mailbox) > w)
			w = width(rows[i].u->mailbox);
	fprintf(out, "%-6s %s%*s %-6s %s\n", "LINE", "MAILBOX", (int)(w - 7), "", "RESULT",
		"FINDINGS");
	size_t bad = 0;
	for (size_t i = 0; i < n; i++) {
		const struct row *r = &rows[i];
		fprintf(out, "%-6d ", r->u->line);
		put_plain(out, r->u->mailbox);
		fprintf(out, "%*s %s", (int)(w - width(r->u->mailbox)), "", r->nf ? "FAIL  " : "ok");
		for (size_t k = 0; k < r->nf; k++) {
			fprintf(out, "%s%s: ", k ? "; " : " ", r->f[k].rule);
			put_plain(out, r->f[k].detail);
		}
		fputc('\n', out);
		bad += r->nf > 0;
	}
	fprintf(out, "%zu rows: %zu pass, %zu break a rule\n", n, n - bad, bad);
}

static void print_csv(FILE *out, const struct row *rows, size_t n)
{
	fputs("line,mailbox,result,rule,detail\n", out);
	for (size_t i = 0; i < n; i++) {
		const struct row *r = &rows[i];
		for (size_t k = 0; k < (r->nf ? r->nf : 1); k++) {
			fprintf(out, "%d,", r->u->line);
			csv_field(out, r->u->mailbox);
			fputs(r->nf ? ",fail," : ",ok,", out);
			if (r->nf) {
				fputs(r->f[k].rule, out);
				fputc(',', out);
				csv_field(out, r->f[k].detail);
			} else {
				fputc(',', out);
			}
			fputc('\n', out);
		}
	}
}

static void print_json(FILE *out, const struct row *rows, size_t n)
{
	fputs("[", out);
	for (size_t i = 0; i < n; i++) {
		const struct row *r = &rows[i];
		fprintf(out, "%s\n  {\"line\": %d, \"mailbox\": ", i ? "," : "", r->u->line);
		json_str(out, r->u->mailbox);
		fprintf(out, ", \"result\": \"%s\", \"findings\": [", r->nf ? "fail" : "ok");
		for (size_t k = 0; k < r->nf; k++) {
			fprintf(out, "%s{\"rule\": \"%s\", \"detail\": ", k ? ", " : "",
				r->f[k].rule);
			json_str(out, r->f[k].detail);
			fputc('}', out);
		}
		fputs("]}", out);
	}
	fputs(n ? "\n]\n" : "]\n", out);
}

/* --- PowerShell ---------------------------------------------------------- */

/* A PowerShell single-quoted string. PowerShell also takes the typographic
 * single quotes U+2018..U+201B as quote characters, so each is doubled like
 * '. Control characters cannot be written safely on one line: false. */
static bool ps_quote(struct mf_buf *b, const char *s, int *rc)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7F)
			return false;
	if (!*rc)
		*rc = mf_buf_addstr(b, "'");
	for (const char *p = s; *p && !*rc; p++) {
		const unsigned char *u = (const unsigned char *)p;
		if (*p == '\'') {
			*rc = mf_buf_addstr(b, "''");
		} else if (u[0] == 0xE2 && u[1] == 0x80 && u[2] >= 0x98 && u[2] <= 0x9B) {
			*rc = mf_buf_add(b, p, 3);
			if (!*rc)
				*rc = mf_buf_add(b, p, 3);
			p += 2;
		} else {
			*rc = mf_buf_add(b, p, 1);
		}
	}
	if (!*rc)
		*rc = mf_buf_addstr(b, "'");
	return true;
}

/* A comment holds no control character (it would end the comment). */
static void ps_comment(struct mf_buf *b, const char *s, int *rc)
{
	for (; *s && !*rc; s++)
		*rc = mf_buf_add(b, (unsigned char)*s < 0x20 || *s == 0x7F ? "?" : s, 1);
}

static bool has_finding(const struct row *r, const char *rule)
{
	for (size_t k = 0; k < r->nf; k++)
		if (strcmp(r->f[k].rule, rule) == 0)
			return true;
	return false;
}

static int emit_row(struct mf_buf *b, const struct cx_conf *c, const struct row *r)
{
	int rc = 0;
	const struct mf_dir_user *u = r->user;
	bool enable = u && has_finding(r, "target-present");
	bool fix = u && (has_finding(r, "target-form") || has_finding(r, "target-verified"));
	if (!enable && !fix && !r->nf)
		return 0;
	rc = mf_buf_printf(b, "# line %d: ", r->u->line);
	ps_comment(b, r->u->mailbox, &rc);
	if (!rc)
		rc = mf_buf_addstr(b, "\n");
	for (size_t k = 0; k < r->nf && !rc; k++) {
		rc = mf_buf_printf(b, "#   %s: ", r->f[k].rule);
		ps_comment(b, r->f[k].detail, &rc);
		if (!rc)
			rc = mf_buf_addstr(b, "\n");
	}
	if (rc || (!enable && !fix))
		return rc;
	if (has_finding(r, "upn-domain") || has_finding(r, "primary-verified"))
		return mf_buf_addstr(b, "#   not mail-enabled here: fix the UPN and primary "
					"SMTP address first\n");
	const char *addr = r->primary ? r->primary : r->u->mailbox;
	size_t ll = local_len(addr);
	char *local = strndup(addr, ll);
	char *ext = NULL, *prim = NULL;
	if (!local || asprintf(&ext, "%s@%s", local, c->routing) < 0 ||
	    asprintf(&prim, "%s@%s", local, c->primary) < 0) {
		rc = MF_ENOMEM;
		goto out;
	}
	const char *id = *u->sam ? u->sam : u->upn;
	struct mf_buf line = {0};
	bool ok = true;
	rc = mf_buf_addstr(&line, enable ? "Enable-MailUser -Identity " : "Set-MailUser -Identity ");
	ok = ok && ps_quote(&line, id, &rc);
	if (!rc)
		rc = mf_buf_addstr(&line, " -ExternalEmailAddress ");
	ok = ok && ps_quote(&line, ext, &rc);
	if (enable) {
		if (!rc)
			rc = mf_buf_addstr(&line, " -PrimarySMTPAddress ");
		ok = ok && ps_quote(&line, prim, &rc);
		if (!rc)
			rc = mf_buf_addstr(&line, "\nSet-MailUser -Identity ");
		ok = ok && ps_quote(&line, id, &rc);
		if (!rc)
			rc = mf_buf_addstr(&line, " -UseMapiRichTextFormat Never");
	}
	if (!rc)
		rc = mf_buf_addstr(&line, "\n");
	if (!rc)
		rc = ok ? mf_buf_add(b, line.data, line.len)
			: mf_buf_addstr(b, "#   a value holds a control character: do this one "
					   "by hand\n");
	mf_buf_free(&line);
out:
	free(local);
	free(ext);
	free(prim);
	return rc;
}

static int emit_powershell(const char *path, const char *jobname, const struct cx_conf *c,
			   const struct row *rows, size_t n)
{
	struct mf_buf b = {0};
	int rc = mf_buf_addstr(&b, "# mailferry coexist ");
	ps_comment(&b, jobname, &rc);
	if (!rc)
		rc = mf_buf_addstr(&b, ": review before running.\n"
				       "# On-premises, in the Exchange Management Shell:\n");
	for (size_t i = 0; i < n && !rc; i++)
		rc = emit_row(&b, c, &rows[i]);
	if (!rc)
		rc = mf_buf_addstr(&b, "# Exchange Online: mail to the on-premises domain "
				       "without TNEF (no winmail.dat):\n");
	bool ok = true;
	if (!rc)
		rc = mf_buf_addstr(&b, "New-RemoteDomain -Name ");
	ok = ok && ps_quote(&b, c->primary, &rc);
	if (!rc)
		rc = mf_buf_addstr(&b, " -DomainName ");
	ok = ok && ps_quote(&b, c->primary, &rc);
	if (!rc)
		rc = mf_buf_addstr(&b, "\nSet-RemoteDomain -Identity ");
	ok = ok && ps_quote(&b, c->primary, &rc);
	if (!rc)
		rc = mf_buf_addstr(&b, " -TNEFEnabled $false\n");
	if (rc)
		goto out;
	/* tmp, then rename: a half-written script is never left to be run */
	char *tmp = NULL;
	if (asprintf(&tmp, "%s.tmp", path) < 0) {
		rc = MF_ENOMEM;
		goto out;
	}
	FILE *f = fopen(tmp, "w");
	if (!f || fwrite(b.data, 1, b.len, f) != b.len || fclose(f) != 0 ||
	    rename(tmp, path) != 0) {
		fprintf(stderr, "mailferry: %s: cannot write: %s\n", path, strerror(errno));
		unlink(tmp);
		rc = MF_EIO;
	}
	free(tmp);
out:
	mf_buf_free(&b);
	return rc;
}

/* --- configuration --------------------------------------------------------- */

static const char *const known_keys[] = {
	"primary_domain", "routing_domain", "verified_domains", "directory", "bind_dn",
	"bind_password", "bind_password_env", "bind_password_file", "starttls",
	"ldap_ca_file", "ldap_filter", NULL,
};

static bool plain_domain(const char *s)
{
	if (!*s || strlen(s) > 253)
		return false;
	for (const char *p = s; *p; p++)
		if (*p == '@' || *p == ' ' || *p == '\t' || *p == '/' || *p == ',')
			return false;
	return true;
}

static int load_conf(const struct mf_job *job, struct cx_conf *c, FILE *diag)
{
	memset(c, 0, sizeof(*c));
	c->manifest = job->manifest_path;
	if (mf_tenant_open(job, &c->tenant) < 0)
		return MF_ENOMEM;
	for (size_t i = 0; i < job->nsec; i++)
		if (strcmp(job->sec[i].name, "coexistence") == 0)
			c->sec = &job->sec[i];
	if (!c->sec) {
		fprintf(diag, "%s: missing section [coexistence] (primary_domain, routing_domain, "
			      "verified_domains, directory)\n", job->file);
		return MF_ECONFIG;
	}
	const struct mf_conf_section *s = c->sec;
	int errors = 0;
	for (size_t k = 0; k < s->n; k++) {
		bool known = false;
		for (size_t j = 0; known_keys[j] && !known; j++)
			known = strcmp(s->kv[k].key, known_keys[j]) == 0;
		if (!known) {
			fprintf(diag, "%s:%d: [coexistence] unknown key '%s'\n", s->file,
				s->kv[k].line, s->kv[k].key);
			errors++;
		}
	}
	static const char *const required[] = {"primary_domain", "routing_domain",
					       "verified_domains", "directory"};
	const char **dst[] = {&c->primary, &c->routing, NULL, &c->directory};
	for (size_t i = 0; i < 4; i++) {
		const struct mf_conf_kv *kv = mf_conf_find(s, required[i]);
		if ((!kv || !*kv->value) && i == 2 && c->tenant) {
			/* taken from Graph /domains (tenant_domains) */
		} else if (!kv || !*kv->value) {
			fprintf(diag, "%s:%d: [coexistence] needs %s\n", s->file, s->line,
				required[i]);
			errors++;
		} else if (dst[i]) {
			*dst[i] = kv->value;
			if (i < 2 && !plain_domain(kv->value)) {
				fprintf(diag, "%s:%d: [coexistence] %s: '%s' is not a domain name\n",
					s->file, kv->line, required[i], kv->value);
				errors++;
			}
		}
	}
	const struct mf_conf_kv *vd = mf_conf_find(s, "verified_domains");
	if (vd && *vd->value) {
		char *copy = strdup(vd->value);
		if (!copy)
			return MF_ENOMEM;
		for (char *p = copy, *e; p && !errors; p = e) {
			e = strchr(p, ',');
			if (e)
				*e++ = '\0';
			while (*p == ' ' || *p == '\t')
				p++;
			size_t l = strlen(p);
			while (l && (p[l - 1] == ' ' || p[l - 1] == '\t'))
				p[--l] = '\0';
			if (!plain_domain(p)) {
				fprintf(diag, "%s:%d: [coexistence] verified_domains: '%s' is not "
					      "a domain name\n", s->file, vd->line, p);
				errors++;
				break;
			}
			char **grown = realloc(c->verified, (c->nverified + 1) * sizeof(*grown));
			if (!grown || !(grown[c->nverified] = strdup(p))) {
				if (grown)
					c->verified = grown;
				free(copy);
				return MF_ENOMEM;
			}
			c->verified = grown;
			c->nverified++;
		}
		free(copy);
	}
	return errors ? MF_ECONFIG : 0;
}

/* With a graph sink and no verified_domains: the tenant's verified domains. */
static int tenant_domains(struct cx_conf *c, FILE *diag)
{
	if (!c->tenant || c->nverified)
		return 0;
	struct mf_err err = {0};
	int rc = mf_tenant_domains(c->tenant, &c->verified, &c->nverified, &err);
	if (rc < 0)
		fprintf(diag, "mailferry: %s\n", err.msg);
	return rc;
}

/* The Exchange Online side of one row: the recipient and its mailbox. */
static int check_tenant(const struct cx_conf *c, struct row *r, FILE *diag)
{
	if (!c->tenant)
		return 0;
	enum mf_recipient st;
	struct mf_err err = {0};
	int rc = mf_tenant_recipient(c->tenant, r->u->mailbox, &st, &err);
	if (rc < 0) {
		fprintf(diag, "%s:%d: %s: %s\n", c->manifest, r->u->line, r->u->mailbox, err.msg);
		return rc;
	}
	if (st == MF_RECIPIENT_NONE)
		return add(r, "recipient-exists", "Exchange Online has no recipient %s",
			   r->u->mailbox);
	if (st == MF_RECIPIENT_UNLICENSED)
		return add(r, "mailbox-licensed",
			   "%s has no Exchange Online mailbox yet (MailboxNotEnabledForRESTAPI: "
			   "not licensed yet)", r->u->mailbox);
	return 0;
}

static void free_conf(struct cx_conf *c)
{
	mf_tenant_close(c->tenant);
	for (size_t i = 0; i < c->nverified; i++)
		free(c->verified[i]);
	free(c->verified);
}

static int read_directory(const struct cx_conf *c, struct mf_directory *d, FILE *diag)
{
	if (strncasecmp(c->directory, "ldap://", 7) == 0 ||
	    strncasecmp(c->directory, "ldaps://", 8) == 0)
		return mf_directory_read_ldap(c->directory, c->sec, d, diag);
	static const char *const ldap_only[] = {"bind_dn", "bind_password",
						"bind_password_env", "bind_password_file",
						"starttls", "ldap_ca_file", "ldap_filter", NULL};
	for (size_t i = 0; ldap_only[i]; i++) {
		const struct mf_conf_kv *kv = mf_conf_find(c->sec, ldap_only[i]);
		if (kv) {
			fprintf(diag, "%s:%d: [coexistence] %s goes with an ldap:// directory\n",
				c->sec->file, kv->line, ldap_only[i]);
			return MF_ECONFIG;
		}
	}
	char *path = NULL;
	struct mf_err err = {0};
	int rc = mf_conf_path(c->sec, "directory", NULL, &path, &err);
	if (rc < 0) {
		fprintf(diag, "%s\n", err.msg);
		return rc;
	}
	rc = mf_directory_read_csv(path, d, diag);
	free(path);
	return rc;
}

static void usage(FILE *out)
{
	fputs("usage: mailferry coexist JOB.ini [--format table|csv|json] "
	      "[--emit-powershell FILE]\n", out);
}

int mf_coexist_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"format", required_argument, NULL, 'f'},
		{"emit-powershell", required_argument, NULL, 'p'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *format = "table", *ps = NULL;
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'f':
			format = optarg;
			break;
		case 'p':
			ps = optarg;
			break;
		case 'v':
			mf_log_set_level(MF_LOG_DEBUG);
			break;
		case 'h':
			usage(stdout);
			return MF_EXIT_OK;
		default:
			usage(stderr);
			return MF_EXIT_USAGE;
		}
	}
	if (argc - optind != 1 || (strcmp(format, "table") && strcmp(format, "csv") &&
				   strcmp(format, "json"))) {
		usage(stderr);
		return MF_EXIT_USAGE;
	}
	const char *path = argv[optind];
	struct mf_job job;
	struct cx_conf c = {0};
	struct mf_directory d = {0};
	struct row *rows = NULL;
	int rc = MF_EXIT_USAGE;
	if (mf_job_load(path, &job, stderr) < 0) {
		fprintf(stderr, "mailferry: %s: nothing was checked\n", path);
		goto out;
	}
	if (load_conf(&job, &c, stderr) < 0 || tenant_domains(&c, stderr) < 0 ||
	    read_directory(&c, &d, stderr) < 0) {
		fprintf(stderr, "mailferry: %s: nothing was checked\n", path);
		goto out;
	}
	rows = calloc(job.nunits ? job.nunits : 1, sizeof(*rows));
	if (!rows)
		goto oom;
	for (size_t i = 0; i < job.nunits; i++) {
		rows[i].u = &job.units[i];
		if (check_row(&c, &d, &rows[i]) < 0)
			goto oom;
		int trc = check_tenant(&c, &rows[i], stderr);
		if (trc == MF_ENOMEM)
			goto oom;
		if (trc < 0) {
			fprintf(stderr, "mailferry: %s: Graph could not tell; nothing reported\n",
				path);
			goto out;
		}
	}
	if (check_people(rows, job.nunits) < 0)
		goto oom;
	if (strcmp(format, "csv") == 0)
		print_csv(stdout, rows, job.nunits);
	else if (strcmp(format, "json") == 0)
		print_json(stdout, rows, job.nunits);
	else
		print_table(stdout, rows, job.nunits);
	if (fflush(stdout) != 0)
		goto out;
	const char *base = strrchr(job.file, '/');
	if (ps && emit_powershell(ps, base ? base + 1 : job.file, &c, rows, job.nunits) < 0)
		goto out;
	rc = MF_EXIT_OK;
	for (size_t i = 0; i < job.nunits; i++)
		if (rows[i].nf)
			rc = MF_EXIT_FAILURES;
	goto out;
oom:
	fprintf(stderr, "mailferry: out of memory\n");
	rc = MF_EXIT_USAGE;
out:
	if (rows)
		for (size_t i = 0; i < job.nunits; i++)
			for (size_t k = 0; k < rows[i].nf; k++)
				free(rows[i].f[k].detail);
	free(rows);
	mf_directory_free(&d);
	free_conf(&c);
	mf_job_free(&job);
	return rc;
}
