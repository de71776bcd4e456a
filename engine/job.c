/* job.c - load and check a job file (libinih) and its manifest. */
#include "job.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <fnmatch.h>
#include <ini.h>
#include <libgen.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "drivers.h"
#include "log.h"
#include "util.h"

#define MAX_JOB_FILE (1u << 20)
#define MAX_MANIFEST (256u << 20)

static const struct mf_conf_key job_keys[] = {
	{"name", true, "job name, shown in reports"},
	{"state", true, "SQLite checkpoint database (relative to the job file)"},
	{"manifest", true, "the manifest CSV (relative to the job file)"},
	{"parallel", false, "mailboxes migrated at once (default 4)"},
	{"inflight_mb", false, "cap on message bytes held in memory by all workers (default 256)"},
	{"batch", false, "messages per checkpoint commit (default 64)"},
	{"tnef", false, "decode | keep: what to do with winmail.dat (default decode)"},
	{"max_line", false, "longest line sent to the sink (default: the sink's limit)"},
	{"drop_read_receipts", false, "drop Disposition-Notification-To (default no)"},
	{"max_message_mb", false, "larger messages are skipped and reported, for any sink (default: the sink's limit)"},
	{"archive_folder", false,
	 "IsArchive rows go into this folder of the primary mailbox (default: into the "
	 "mailbox's archive, where the sink has one)"},
	{NULL, false, NULL},
};

static const struct mf_conf_key folders_keys[] = {
	{"include", false, "only folders matching these patterns (repeatable)"},
	{"exclude", false, "never these folders (repeatable)"},
	{"rename", false, "Source/Path => Target/Path (repeatable)"},
	{NULL, false, NULL},
};

/* --- INI parsing ---------------------------------------------------------- */

struct parse {
	const char *file;
	const char *text;
	size_t len, pos;
	size_t line_off, line_len; /* the raw line inih is looking at */
	int line;
	int errors;
	FILE *diag;
	struct mf_conf_section *sec;
	size_t nsec;
	int last_header_line;
};

/* ini_reader over a buffer that counts lines and notes section headers, so
 * the handler knows where each key was written. inih sees at most num - 1
 * bytes of a line (its buffer is small); the handler reads the key and the
 * value from the whole raw line, so long values are never cut. */
static char *reader(char *str, int num, void *stream)
{
	struct parse *p = stream;
	if (p->pos >= p->len || num < 2)
		return NULL;
	size_t e = p->pos;
	while (e < p->len && p->text[e] != '\n')
		e++;
	p->line_off = p->pos;
	p->line_len = e - p->pos;
	size_t n = 0;
	while (n < p->line_len && n + 2 < (size_t)num) {
		char c = p->text[p->pos + n];
		str[n++] = c == '\0' ? ' ' : c;
	}
	str[n++] = '\n';
	str[n] = '\0';
	p->pos = e < p->len ? e + 1 : e;
	p->line++;
	const char *s = str;
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s == '[')
		p->last_header_line = p->line;
	return str;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* The key and the value of the current raw line, by the rules the README
 * gives ("Job file syntax"):
 *   - key and value are separated by the first '=' (or ':');
 *   - a ';' or '#' after whitespace starts a comment (inih's inline comment
 *     prefix ';', and '#' as well);
 *   - a value that starts with a quote (" or ') ends at the same quote; the
 *     quotes are not part of it and inside them ';' and '#' are text; after
 *     the closing quote only whitespace or a comment may follow;
 *   - a value that ends with a quote it did not start with, or opens one it
 *     does not close, is refused: it is not clear what was meant.
 * Returns 1 with *key and *value malloc'd, 0 after writing an error to diag,
 * MF_ENOMEM. */
static int raw_key_value(struct parse *p, char **key, char **value)
{
	const char *l = p->text + p->line_off, *end = l + p->line_len;
	if (p->line_off == 0 && p->line_len >= 3 && (unsigned char)l[0] == 0xEF &&
	    (unsigned char)l[1] == 0xBB && (unsigned char)l[2] == 0xBF)
		l += 3; /* a UTF-8 byte order mark */
	while (end > l && is_space(end[-1]))
		end--;
	bool indented = l < end && (*l == ' ' || *l == '\t');
	while (l < end && is_space(*l))
		l++;
	const char *sep = l;
	while (sep < end && *sep != '=' && *sep != ':')
		sep++;
	if (sep == end) {
		fprintf(p->diag,
			"%s:%d: %s: expected key = value (a value cannot go on over several "
			"lines)\n",
			p->file, p->line,
			indented ? "an indented line without '='" : "a line without '='");
		return 0;
	}
	const char *ke = sep;
	while (ke > l && is_space(ke[-1]))
		ke--;
	const char *v = sep + 1;
	while (v < end && is_space(*v))
		v++;
	const char *ve = NULL;
	if (v < end && (*v == '"' || *v == '\'')) {
		const char *close = memchr(v + 1, *v, (size_t)(end - v - 1));
		if (!close) {
			fprintf(p->diag,
				"%s:%d: [key %.*s] the value opens a quote %c that is never closed\n",
				p->file, p->line, (int)(ke - l), l, *v);
			return 0;
		}
		const char *after = close + 1;
		while (after < end && is_space(*after))
			after++;
		if (after < end && !((*after == ';' || *after == '#') && is_space(after[-1]))) {
			fprintf(p->diag,
				"%s:%d: [key %.*s] text after the closing quote: quote the whole "
				"value, or none of it\n",
				p->file, p->line, (int)(ke - l), l);
			return 0;
		}
		ve = close;
		v++;
	} else {
		ve = v;
		/* the blank after '=' counts: "key =   # note" is empty */
		while (ve < end && !((*ve == ';' || *ve == '#') && ve > sep + 1 && is_space(ve[-1])))
			ve++;
		while (ve > v && is_space(ve[-1]))
			ve--;
		if (ve > v && (ve[-1] == '"' || ve[-1] == '\'')) {
			fprintf(p->diag,
				"%s:%d: [key %.*s] the value ends with a quote %c it does not start "
				"with\n",
				p->file, p->line, (int)(ke - l), l, ve[-1]);
			return 0;
		}
	}
	*key = strndup(l, (size_t)(ke - l));
	*value = strndup(v, (size_t)(ve - v));
	if (!*key || !*value) {
		free(*key);
		free(*value);
		return MF_ENOMEM;
	}
	return 1;
}

static struct mf_conf_section *find_section(struct parse *p, const char *name)
{
	for (size_t i = 0; i < p->nsec; i++)
		if (strcmp(p->sec[i].name, name) == 0)
			return &p->sec[i];
	return NULL;
}

static struct mf_conf_section *add_section(struct parse *p, const char *name, int line)
{
	struct mf_conf_section *grown = realloc(p->sec, (p->nsec + 1) * sizeof(*grown));
	if (!grown)
		return NULL;
	p->sec = grown;
	struct mf_conf_section *s = &p->sec[p->nsec];
	memset(s, 0, sizeof(*s));
	s->file = p->file;
	s->line = line;
	s->name = strdup(name);
	if (!s->name)
		return NULL;
	p->nsec++;
	return s;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse *p = user;
	if (!*section) {
		fprintf(p->diag, "%s:%d: key '%s' is outside any section\n", p->file, p->line,
			name);
		p->errors++;
		return 1;
	}
	(void)value;
	char *key = NULL, *val = NULL;
	int rc = raw_key_value(p, &key, &val);
	if (rc < 0)
		return 0;
	if (rc == 0) {
		p->errors++;
		return 1;
	}
	struct mf_conf_section *s = find_section(p, section);
	if (!s && !(s = add_section(p, section, p->last_header_line ? p->last_header_line
								    : p->line)))
		goto nomem;
	struct mf_conf_kv *grown = realloc(s->kv, (s->n + 1) * sizeof(*grown));
	if (!grown)
		goto nomem;
	s->kv = grown;
	struct mf_conf_kv *kv = &s->kv[s->n++];
	kv->key = key;
	kv->value = val;
	kv->line = p->line;
	return 1;
nomem:
	free(key);
	free(val);
	return 0;
}

void mf_job_free_sections(struct mf_conf_section *sec, size_t nsec)
{
	for (size_t i = 0; i < nsec; i++) {
		for (size_t k = 0; k < sec[i].n; k++) {
			free(sec[i].kv[k].key);
			free(sec[i].kv[k].value);
		}
		free(sec[i].kv);
		free(sec[i].name);
	}
	free(sec);
}

int mf_job_parse_ini(const char *file, const char *text, size_t len,
		     struct mf_conf_section **sec, size_t *nsec, FILE *diag)
{
	struct parse p = {.file = file, .text = text, .len = len, .diag = diag};
	const char *utf16 = mf_text_utf16(text, len);
	if (utf16) {
		fprintf(diag,
			"%s:1: the job file is %s text; save it as UTF-8 (Notepad: Save as, "
			"Encoding UTF-8; PowerShell: Set-Content -Encoding UTF8) or convert it: "
			"iconv -f UTF-16 -t UTF-8 %s > job-utf8.ini\n",
			file, utf16, file);
		return MF_ECONFIG;
	}
	int nline = 1;
	for (size_t i = 0; i < len; i++) {
		if (text[i] == '\n')
			nline++;
		else if (text[i] == '\0') {
			fprintf(diag, "%s:%d: a NUL byte: a job file is text\n", file, nline);
			p.errors++;
			while (i + 1 < len && text[i + 1] != '\n')
				i++;
		}
	}
	/* go on: the parse below names the other bad lines as well */
	int rc = ini_parse_stream(reader, &p, handler, &p);
	if (rc < 0) {
		fprintf(diag, "%s: out of memory\n", file);
		p.errors++;
	} else if (rc > 0) {
		fprintf(diag, "%s:%d: syntax error (expected [section] or key = value)\n", file,
			rc);
		p.errors++;
	}
	/* Empty sections never reach the handler: find their headers here. */
	int line = 0;
	for (size_t i = 0; i < len && !p.errors; i++) {
		if (i == 0 || text[i - 1] == '\n') {
			line++;
			size_t j = i;
			while (j < len && (text[j] == ' ' || text[j] == '\t'))
				j++;
			if (j < len && text[j] == '[') {
				size_t e = j + 1;
				while (e < len && text[e] != ']' && text[e] != '\n')
					e++;
				char name[64];
				size_t nl = e - j - 1 < sizeof(name) - 1 ? e - j - 1 : sizeof(name) - 1;
				memcpy(name, text + j + 1, nl);
				name[nl] = '\0';
				if (!nl || e >= len || text[e] != ']') {
					fprintf(diag, "%s:%d: a section header needs a name: [name]\n",
						file, line);
					p.errors++;
				} else if (!find_section(&p, name) && !add_section(&p, name, line)) {
					fprintf(diag, "%s: out of memory\n", file);
					p.errors++;
				}
			}
		}
	}
	*sec = p.sec;
	*nsec = p.nsec;
	if (p.errors) {
		mf_job_free_sections(p.sec, p.nsec);
		*sec = NULL;
		*nsec = 0;
		return MF_ECONFIG;
	}
	return 0;
}

/* --- checking ------------------------------------------------------------- */

/* Keys that may be given more than once: the [folders] rules. */
static bool repeatable(const char *section)
{
	return strcmp(section, "folders") == 0;
}

/* Unknown and duplicate keys, missing required keys. */
static int check_keys(const struct mf_conf_section *s, const struct mf_conf_key *keys,
		      bool has_type, FILE *diag)
{
	int errors = 0;
	for (size_t i = 0; i < s->n; i++) {
		const char *k = s->kv[i].key;
		bool known = has_type && strcmp(k, "type") == 0;
		for (size_t j = 0; keys && keys[j].name && !known; j++) {
			size_t l = strlen(keys[j].name);
			known = strcmp(k, keys[j].name) == 0;
			/* a secret key "x" also accepts x_env and x_file */
			if (!known && strncmp(k, keys[j].name, l) == 0 &&
			    (strcmp(k + l, "_env") == 0 || strcmp(k + l, "_file") == 0))
				known = true;
		}
		if (!known) {
			fprintf(diag, "%s:%d: [%s] unknown key '%s'\n", s->file, s->kv[i].line,
				s->name, k);
			errors++;
			continue;
		}
		for (size_t j = 0; j < i && !repeatable(s->name); j++) {
			if (strcmp(s->kv[j].key, k) == 0) {
				fprintf(diag, "%s:%d: [%s] key '%s' given twice (first on line %d)\n",
					s->file, s->kv[i].line, s->name, k, s->kv[j].line);
				errors++;
				break;
			}
		}
	}
	for (size_t j = 0; keys && keys[j].name; j++) {
		if (keys[j].required && !mf_conf_find(s, keys[j].name)) {
			char env[96], file[96];
			snprintf(env, sizeof(env), "%s_env", keys[j].name);
			snprintf(file, sizeof(file), "%s_file", keys[j].name);
			if (mf_conf_find(s, env) || mf_conf_find(s, file))
				continue;
			fprintf(diag, "%s:%d: [%s] missing required key '%s' (%s)\n", s->file,
				s->line, s->name, keys[j].name, keys[j].help);
			errors++;
		}
	}
	return errors;
}

static const struct mf_conf_section *section(const struct mf_job *job, const char *name)
{
	for (size_t i = 0; i < job->nsec; i++)
		if (strcmp(job->sec[i].name, name) == 0)
			return &job->sec[i];
	return NULL;
}

static void list_names(char *buf, size_t size, bool sources)
{
	buf[0] = '\0';
	for (size_t i = 0;; i++) {
		const char *name = sources ? (mf_sources[i] ? mf_sources[i]->name : NULL)
					   : (mf_sinks[i] ? mf_sinks[i]->name : NULL);
		if (!name)
			break;
		size_t l = strlen(buf);
		snprintf(buf + l, size - l, "%s%s", i ? ", " : "", name);
	}
}

static char *trim_path(const char *s, size_t len);

static int load_job_section(struct mf_job *job, FILE *diag)
{
	const struct mf_conf_section *s = section(job, "job");
	struct mf_err err = {0};
	int errors = 0;
	uint64_t v;
	if (mf_conf_path(s, "state", NULL, &job->state_path, &err) < 0 ||
	    mf_conf_path(s, "manifest", NULL, &job->manifest_path, &err) < 0) {
		fprintf(diag, "%s\n", err.msg);
		return 1;
	}
	job->name = strdup(mf_conf_get(s, "name", ""));
	if (!job->name || !*job->name) {
		mf_conf_error(s, "name", &err, "must not be empty");
		fprintf(diag, "%s\n", err.msg);
		errors++;
	}
	if (mf_conf_uint(s, "parallel", 1, 1024, 4, &v, &err) < 0) {
		fprintf(diag, "%s\n", err.msg);
		errors++;
	}
	job->parallel = (unsigned)v;
	if (mf_conf_uint(s, "inflight_mb", 1, 1u << 20, 256, &v, &err) < 0) {
		fprintf(diag, "%s\n", err.msg);
		errors++;
	}
	job->inflight_bytes = v << 20;
	if (mf_conf_uint(s, "batch", 1, 10000, 64, &v, &err) < 0) {
		fprintf(diag, "%s\n", err.msg);
		errors++;
	}
	job->batch = (unsigned)v;
	static const char *const tnef[] = {"decode", "keep", NULL};
	int t;
	if (mf_conf_enum(s, "tnef", tnef, 0, &t, &err) < 0) {
		fprintf(diag, "%s\n", err.msg);
		errors++;
	}
	job->norm.tnef = t == 1 ? MF_TNEF_KEEP : MF_TNEF_DECODE;
	bool dnt;
	if (mf_conf_bool(s, "drop_read_receipts", false, &dnt, &err) < 0) {
		fprintf(diag, "%s\n", err.msg);
		errors++;
	}
	job->norm.drop_dnt = dnt;
	if (mf_conf_uint(s, "max_line", 0, 1u << 30, 0, &v, &err) < 0) {
		fprintf(diag, "%s\n", err.msg);
		errors++;
	}
	job->norm.max_line = (size_t)v;
	if (mf_conf_uint(s, "max_message_mb", 0, 1u << 20, 0, &v, &err) < 0) {
		fprintf(diag, "%s\n", err.msg);
		errors++;
	}
	job->max_message_bytes = v << 20;
	const char *af = mf_conf_get(s, "archive_folder", NULL);
	if (af) {
		if (!(job->archive_folder = trim_path(af, strlen(af)))) {
			errors++;
		} else if (!*job->archive_folder) {
			mf_conf_error(s, "archive_folder", &err, "empty folder name");
			fprintf(diag, "%s\n", err.msg);
			errors++;
		}
	}
	return errors;
}

static int add_string(char ***arr, size_t *n, const char *s)
{
	char **grown = realloc(*arr, (*n + 1) * sizeof(char *));
	if (!grown)
		return MF_ENOMEM;
	*arr = grown;
	grown[*n] = strdup(s);
	if (!grown[*n])
		return MF_ENOMEM;
	(*n)++;
	return 0;
}

static char *trim_path(const char *s, size_t len)
{
	while (len && (*s == ' ' || *s == '\t' || *s == '/')) {
		s++;
		len--;
	}
	while (len && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '/'))
		len--;
	return strndup(s, len);
}

static int load_folder_rules(struct mf_job *job, FILE *diag)
{
	const struct mf_conf_section *s = section(job, "folders");
	int errors = 0;
	for (size_t i = 0; s && i < s->n; i++) {
		const struct mf_conf_kv *kv = &s->kv[i];
		if (strcmp(kv->key, "include") == 0 || strcmp(kv->key, "exclude") == 0) {
			bool inc = kv->key[0] == 'i';
			/* comma-separated patterns */
			const char *p = kv->value;
			while (*p) {
				const char *e = strchr(p, ',');
				size_t l = e ? (size_t)(e - p) : strlen(p);
				char *pat = trim_path(p, l);
				if (!pat)
					return errors + 1;
				if (*pat && add_string(inc ? &job->rules.include : &job->rules.exclude,
						       inc ? &job->rules.ninclude
							   : &job->rules.nexclude,
						       pat) < 0)
					errors++;
				free(pat);
				p = e ? e + 1 : p + l;
			}
		} else if (strcmp(kv->key, "rename") == 0) {
			const char *arrow = strstr(kv->value, "=>");
			if (!arrow) {
				fprintf(diag, "%s:%d: [folders] rename: expected 'Source => Target'\n",
					s->file, kv->line);
				errors++;
				continue;
			}
			struct mf_folder_rename *grown = realloc(
				job->rules.rename, (job->rules.nrename + 1) * sizeof(*grown));
			if (!grown)
				return errors + 1;
			job->rules.rename = grown;
			struct mf_folder_rename *r = &grown[job->rules.nrename++];
			r->from = trim_path(kv->value, (size_t)(arrow - kv->value));
			r->to = trim_path(arrow + 2, strlen(arrow + 2));
			if (!r->from || !r->to || !*r->from || !*r->to) {
				fprintf(diag, "%s:%d: [folders] rename: empty folder name\n", s->file,
					kv->line);
				errors++;
			}
		}
	}
	return errors;
}

static int load_drivers(struct mf_job *job, FILE *diag)
{
	const struct mf_conf_section *src = section(job, "source");
	const struct mf_conf_section *snk = section(job, "sink");
	int errors = 0;
	char names[256];
	const char *type = mf_conf_get(src, "type", NULL);
	if (!type) {
		fprintf(diag, "%s:%d: [source] missing required key 'type'\n", job->file,
			src->line);
		errors++;
	} else if (!(job->src = mf_source_find(type))) {
		list_names(names, sizeof(names), true);
		fprintf(diag, "%s:%d: [source] type: unknown source '%s' (known: %s)\n",
			job->file, mf_conf_find(src, "type")->line, type, names);
		errors++;
	}
	type = mf_conf_get(snk, "type", NULL);
	if (!type) {
		fprintf(diag, "%s:%d: [sink] missing required key 'type'\n", job->file, snk->line);
		errors++;
	} else if (!(job->snk = mf_sink_find(type))) {
		list_names(names, sizeof(names), false);
		fprintf(diag, "%s:%d: [sink] type: unknown sink '%s' (known: %s)\n", job->file,
			mf_conf_find(snk, "type")->line, type, names);
		errors++;
	}
	if (job->src) {
		int e = check_keys(src, job->src->keys, true, diag);
		struct mf_err err = {0};
		if (!e && job->src->configure(src, &job->src_cfg, &err) < 0) {
			fprintf(diag, "%s\n", err.msg);
			e++;
		}
		errors += e;
	}
	if (job->snk) {
		int e = check_keys(snk, job->snk->keys, true, diag);
		struct mf_err err = {0};
		if (!e && job->snk->configure(snk, &job->snk_cfg, &err) < 0) {
			fprintf(diag, "%s\n", err.msg);
			e++;
		}
		if (!e)
			job->snk->caps(job->snk_cfg, &job->caps);
		errors += e;
	}
	return errors;
}

/* Keys that hold a secret in the job file itself (their *_env and *_file
 * forms do not). */
static bool is_inline_secret(const char *key)
{
	static const char *const keys[] = {"password", "client_secret", "key", "sas",
					   "secret_access_key", NULL};
	for (size_t i = 0; keys[i]; i++)
		if (strcmp(key, keys[i]) == 0)
			return true;
	return false;
}

static void warn_if_readable(const char *path, const char *what)
{
	struct stat st;
	if (stat(path, &st) == 0 && (st.st_mode & 0077))
		mf_log(MF_LOG_WARN,
		       "event=insecure-file file=%s what=\"%s holds passwords and is readable by "
		       "others: chmod 600 it\"",
		       path, what);
}

/* IsArchive rows: into the mailbox's archive where the sink has one
 * (caps.archive_rows), into [job] archive_folder of the primary mailbox
 * when that is set, else refused, every row named: archive content never
 * lands in the primary mailbox unasked. The unit key says where the row
 * goes, so that moving it elsewhere later copies it there instead of
 * taking the old place's state for the new one. */
static int place_archive_rows(struct mf_job *job, FILE *diag)
{
	int refused = 0;
	for (size_t i = 0; i < job->nunits; i++) {
		struct mf_unit *u = &job->units[i];
		if (!u->is_archive)
			continue;
		if (!job->archive_folder && !job->caps.archive_rows) {
			if (mf_conf_secrets_skipped())
				continue;
			fprintf(diag,
				"%s:%d: IsArchive=TRUE for %s, but [sink] type = %s cannot write "
				"into an archive mailbox\n",
				job->manifest_path, u->line, u->mailbox, job->snk->name);
			refused++;
			continue;
		}
		u->to_archive = !job->archive_folder;
		struct mf_buf id = {0};
		if (mf_buf_printf(&id, "%s:archive%s%s", u->id, job->archive_folder ? ":" : "",
				  job->archive_folder ? job->archive_folder : "") < 0) {
			mf_buf_free(&id);
			return MF_ENOMEM;
		}
		free(u->id);
		u->id = id.data;
	}
	/* report and status only read the state: they show such rows */
	if (refused && !mf_conf_secrets_skipped()) {
		fprintf(diag,
			"%s: %d archive row%s refused. Either stage the PST files for Microsoft's "
			"import service, which takes IsArchive ([sink] type = azure-blob, upload = "
			"pst-files), or put archive rows into a folder of the primary mailbox "
			"([job] archive_folder = Online Archive); an IMAP target with archives as "
			"logins of their own takes [sink] archive_login = archive-{mailbox}\n",
			job->file, refused, refused == 1 ? " was" : "s were");
		return MF_ECONFIG;
	}
	return 0;
}

/* Older versions kept the mailbox in the unit key as the manifest spelled
 * it. A unit whose key the state database holds in another case of the
 * mailbox takes that stored key, so that its state (and the idempotency
 * keys derived from it) is found again. Read-only; a database that cannot
 * be read is left to mf_ckpt_open to report. */
static int adopt_state_keys(struct mf_job *job)
{
	struct stat st;
	if (!job->state_path || stat(job->state_path, &st) < 0)
		return 0;
	sqlite3 *db = NULL;
	sqlite3_stmt *q = NULL;
	int rc = 0;
	if (sqlite3_open_v2(job->state_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db,
			       "SELECT ukey, mailbox FROM unit WHERE mailbox <> lower(mailbox)"
			       " ORDER BY id",
			       -1, &q, NULL) != SQLITE_OK)
		goto out;
	bool *adopted = calloc(job->nunits ? job->nunits : 1, sizeof(bool));
	if (!adopted) {
		rc = MF_ENOMEM;
		goto out;
	}
	while (sqlite3_step(q) == SQLITE_ROW) {
		const char *ukey = (const char *)sqlite3_column_text(q, 0);
		const char *mbox = (const char *)sqlite3_column_text(q, 1);
		if (!ukey || !mbox)
			continue;
		size_t kl = strlen(ukey), ml = strlen(mbox);
		for (size_t i = 0; i < job->nunits; i++) {
			struct mf_unit *u = &job->units[i];
			size_t at = u->id_mailbox_at, ul = strlen(u->mailbox);
			if (adopted[i] || strlen(u->id) != kl || ul != ml || at + ml > kl ||
			    strcasecmp(u->mailbox, mbox) != 0 || memcmp(u->id, ukey, at) != 0 ||
			    strncasecmp(u->id + at, ukey + at, ml) != 0 ||
			    strcmp(u->id + at + ml, ukey + at + ml) != 0)
				continue;
			/* a row under the canonical key itself wins */
			sqlite3_stmt *x = NULL;
			bool exact = sqlite3_prepare_v2(db, "SELECT 1 FROM unit WHERE ukey=?1", -1, &x,
							NULL) == SQLITE_OK &&
				     sqlite3_bind_text(x, 1, u->id, -1, SQLITE_STATIC) == SQLITE_OK &&
				     sqlite3_step(x) == SQLITE_ROW;
			sqlite3_finalize(x);
			if (exact) {
				adopted[i] = true;
				continue;
			}
			char *key = strdup(ukey);
			if (!key) {
				rc = MF_ENOMEM;
				break;
			}
			mf_log(MF_LOG_INFO,
			       "event=state-key-adopted mailbox=%s key=\"%s\" what=\"the state "
			       "database has this row with the mailbox spelt %s\"",
			       u->mailbox, key, mbox);
			free(u->id);
			u->id = key;
			adopted[i] = true;
		}
	}
	free(adopted);
out:
	sqlite3_finalize(q);
	sqlite3_close(db);
	return rc;
}

int mf_job_load(const char *path, struct mf_job *job, FILE *diag)
{
	memset(job, 0, sizeof(*job));
	char *text = NULL;
	size_t len;
	int rc = mf_read_file(path, MAX_JOB_FILE, &text, &len);
	if (rc < 0) {
		fprintf(diag, "%s: cannot read job file: %s\n", path,
			rc == -EFBIG ? "larger than 1 MiB" : strerror(-rc));
		return MF_ECONFIG;
	}
	job->file = strdup(path);
	/* relative paths in the job file start at its directory, made absolute
	 * so that reports and logs name files unambiguously */
	char *tmp = strdup(path);
	job->dir = tmp ? realpath(dirname(tmp), NULL) : NULL;
	free(tmp);
	if (!job->file || !job->dir) {
		free(text);
		return MF_ENOMEM;
	}
	rc = mf_job_parse_ini(job->file, text, len, &job->sec, &job->nsec, diag);
	free(text);
	if (rc < 0)
		return rc;

	int errors = 0, missing = 0;
	static const char *const required[] = {"job", "source", "sink"};
	for (size_t i = 0; i < 3; i++) {
		if (!section(job, required[i])) {
			fprintf(diag, "%s: missing section [%s]\n", job->file, required[i]);
			missing++;
		}
	}
	for (size_t i = 0; i < job->nsec; i++) {
		struct mf_conf_section *s = &job->sec[i];
		s->dir = job->dir;
		const char *n = s->name;
		if (strcmp(n, "job") == 0)
			errors += check_keys(s, job_keys, false, diag);
		else if (strcmp(n, "folders") == 0)
			errors += check_keys(s, folders_keys, false, diag);
		else if (strcmp(n, "source") != 0 && strcmp(n, "sink") != 0 &&
			 strcmp(n, "coexistence") != 0) { /* coexist.c checks its keys */
			fprintf(diag,
				"%s:%d: unknown section [%s] (known: job, source, sink, folders, "
				"coexistence)\n",
				job->file, s->line, n);
			errors++;
		}
	}
	/* unknown keys and sections do not stop the checks below, so that one
	 * pass reports every bad line; a missing section does */
	if (missing)
		return MF_ECONFIG;
	errors += load_job_section(job, diag);
	errors += load_folder_rules(job, diag);
	errors += load_drivers(job, diag);
	if (errors)
		return MF_ECONFIG;

	if (job->caps.whole_files && !job->snk->upload_file) {
		fprintf(diag, "%s: [sink] %s: whole-file mode without upload_file\n", job->file,
			job->snk->name);
		return MF_ECONFIG;
	}
	/* [job] max_message_mb lowers the sink's limit (or sets one) */
	if (job->max_message_bytes && (!job->caps.max_message_bytes ||
				       job->max_message_bytes < job->caps.max_message_bytes))
		job->caps.max_message_bytes = job->max_message_bytes;
	/* The sink's needs decide the normalizer's options. */
	job->norm.crlf = job->caps.crlf;
	if (!job->norm.max_line || (job->caps.max_line && job->caps.max_line < job->norm.max_line))
		job->norm.max_line = job->caps.max_line;
	job->norm.add_message_id = job->caps.needs_message_id;
	job->norm.add_date = job->caps.needs_date;
	job->norm.encode_8bit_headers = job->caps.ascii_headers;

	/* The manifest. */
	char *mtext = NULL;
	size_t mlen;
	rc = mf_read_file(job->manifest_path, MAX_MANIFEST, &mtext, &mlen);
	if (rc < 0) {
		const struct mf_conf_section *js = section(job, "job");
		fprintf(diag, "%s:%d: [job] manifest: cannot read %s: %s\n", job->file,
			mf_conf_find(js, "manifest")->line, job->manifest_path,
			rc == -EFBIG ? "larger than 256 MiB" : strerror(-rc));
		return MF_ECONFIG;
	}
	char *pst_root = NULL;
	struct mf_err err = {0};
	if (strcmp(job->src->name, "pst") == 0 &&
	    mf_conf_path(section(job, "source"), "root", ".", &pst_root, &err) < 0) {
		fprintf(diag, "%s\n", err.msg);
		free(mtext);
		return MF_ECONFIG;
	}
	enum mf_manifest_kind kind;
	rc = mf_manifest_parse(job->manifest_path, mtext, mlen, pst_root, &kind, &job->units,
			       &job->nunits, diag);
	free(mtext);
	free(pst_root);
	if (rc < 0)
		return rc;
	bool pst_source = strcmp(job->src->name, "pst") == 0;
	if (pst_source != (kind == MF_MANIFEST_PST)) {
		fprintf(diag,
			"%s:1: this is %s, but [source] type = %s needs %s\n", job->manifest_path,
			kind == MF_MANIFEST_PST ? "a PST import mapping CSV"
						: "an IMAP migration CSV",
			job->src->name,
			pst_source ? "a PST import mapping CSV (Workload,FilePath,Name,Mailbox,...)"
				   : "an IMAP migration CSV (EmailAddress,UserName,Password)");
		return MF_ECONFIG;
	}
	rc = place_archive_rows(job, diag);
	if (rc < 0)
		return rc;
	if (adopt_state_keys(job) < 0)
		return MF_ENOMEM;
	if (kind == MF_MANIFEST_IMAP)
		warn_if_readable(job->manifest_path, "the manifest");
	for (size_t i = 0; i < job->nsec; i++)
		for (size_t k = 0; k < job->sec[i].n; k++)
			if (is_inline_secret(job->sec[i].kv[k].key))
				warn_if_readable(job->file, "the job file");
	return 0;
}

/* Write and remove a file in directory `dir`: access() says yes to root
 * everywhere, also on read-only mounts and in /proc. 0 or an errno value. */
static int try_write(const char *dir)
{
	char name[PATH_MAX];
	if (snprintf(name, sizeof(name), "%s/.mailferry-check.%ld", dir, (long)getpid()) >=
	    (int)sizeof(name))
		return ENAMETOOLONG;
	int fd = open(name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return errno;
	close(fd);
	unlink(name);
	return 0;
}

/* Can directory `path` be written, or created (its nearest existing
 * ancestor writable)? 0, or an errno value with *where set to the directory
 * that failed. */
static int dir_writable(const char *path, char **where)
{
	char *p = strdup(path);
	if (!p)
		return ENOMEM;
	struct stat st;
	for (;;) {
		if (stat(p, &st) == 0) {
			int e = !S_ISDIR(st.st_mode) ? ENOTDIR : try_write(p);
			if (e)
				*where = p;
			else
				free(p);
			return e;
		}
		if (errno != ENOENT && errno != ENOTDIR) {
			*where = p;
			return errno;
		}
		char *slash = strrchr(p, '/');
		if (!slash || slash == p) {
			*where = p;
			return ENOENT;
		}
		*slash = '\0';
	}
}

static int check_dir_key(const struct mf_conf_section *s, const char *key, bool out,
			 FILE *diag)
{
	struct mf_err err = {0};
	char *path = NULL, *where = NULL;
	if (mf_conf_path(s, key, NULL, &path, &err) < 0) {
		fprintf(diag, "%s\n", err.msg);
		return 1;
	}
	if (!path)
		return 0;
	int errors = 0;
	struct stat st;
	if (!out) {
		if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode) || access(path, R_OK | X_OK) < 0) {
			int e = errno;
			mf_conf_error(s, key, &err, "%s: %s", path,
				      stat(path, &st) == 0 && !S_ISDIR(st.st_mode)
					  ? "not a directory"
					  : strerror(e));
			fprintf(diag, "%s\n", err.msg);
			errors++;
		}
	} else {
		int e = dir_writable(path, &where);
		if (e) {
			if (strcmp(where, path) == 0)
				mf_conf_error(s, key, &err, "cannot write into %s: %s", path,
					      strerror(e));
			else
				mf_conf_error(s, key, &err, "cannot create %s: %s: %s", path, where,
					      strerror(e));
			fprintf(diag, "%s\n", err.msg);
			errors++;
		}
	}
	free(where);
	free(path);
	return errors;
}

int mf_job_check_paths(const struct mf_job *job, FILE *diag)
{
	int errors = 0;
	const char *const *keys[] = {job->src ? job->src->dir_keys : NULL,
				     job->snk ? job->snk->dir_keys : NULL};
	const char *names[] = {"source", "sink"};
	for (size_t t = 0; t < 2; t++) {
		const struct mf_conf_section *s = section(job, names[t]);
		for (size_t i = 0; s && keys[t] && keys[t][i]; i++)
			errors += check_dir_key(s, keys[t][i], t == 1, diag);
	}
	/* the state database's directory is made by run */
	char *dir = job->state_path ? strdup(job->state_path) : NULL, *where = NULL;
	if (dir) {
		char *slash = strrchr(dir, '/');
		if (slash && slash != dir)
			*slash = '\0';
		int e = dir_writable(dir, &where);
		if (e) {
			const struct mf_conf_section *js = section(job, "job");
			const struct mf_conf_kv *kv = mf_conf_find(js, "state");
			fprintf(diag, "%s:%d: [job] state: cannot create %s: %s: %s\n", job->file,
				kv ? kv->line : 0, job->state_path, where, strerror(e));
			errors++;
		}
	}
	free(dir);
	free(where);
	return errors ? MF_ECONFIG : 0;
}

void mf_job_free(struct mf_job *job)
{
	if (job->src && job->src_cfg)
		job->src->free_config(job->src_cfg);
	if (job->snk && job->snk_cfg)
		job->snk->free_config(job->snk_cfg);
	mf_units_free(job->units, job->nunits);
	mf_job_free_sections(job->sec, job->nsec);
	for (size_t i = 0; i < job->rules.ninclude; i++)
		free(job->rules.include[i]);
	for (size_t i = 0; i < job->rules.nexclude; i++)
		free(job->rules.exclude[i]);
	for (size_t i = 0; i < job->rules.nrename; i++) {
		free(job->rules.rename[i].from);
		free(job->rules.rename[i].to);
	}
	free(job->rules.include);
	free(job->rules.exclude);
	free(job->rules.rename);
	free(job->file);
	free(job->dir);
	free(job->name);
	free(job->state_path);
	free(job->manifest_path);
	free(job->archive_folder);
	memset(job, 0, sizeof(*job));
}

/* --- selection and folder mapping ------------------------------------------ */

static uint64_t fnv(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

int mf_job_select(struct mf_job *job, const char *users, unsigned shard_i, unsigned shard_n,
		  FILE *diag)
{
	bool *keep = calloc(job->nunits ? job->nunits : 1, sizeof(bool));
	if (!keep)
		return MF_ENOMEM;
	int errors = 0;
	for (size_t i = 0; i < job->nunits; i++)
		keep[i] = !users;
	if (users) {
		char *list = strdup(users);
		if (!list) {
			free(keep);
			return MF_ENOMEM;
		}
		for (char *u = list, *next; u; u = next) {
			next = strchr(u, ',');
			if (next)
				*next++ = '\0';
			while (*u == ' ')
				u++;
			if (!*u)
				continue;
			bool found = false;
			for (size_t i = 0; i < job->nunits; i++) {
				const struct mf_unit *un = &job->units[i];
				if (strcasecmp(un->mailbox, u) == 0 ||
				    (un->user && strcmp(un->user, u) == 0)) {
					keep[i] = found = true;
				}
			}
			if (!found) {
				fprintf(diag, "--users: '%s' is not in the manifest\n", u);
				errors++;
			}
		}
		free(list);
	}
	if (shard_n > 1) {
		for (size_t i = 0; i < job->nunits; i++) {
			char lower[512];
			size_t l = 0;
			for (const char *p = job->units[i].mailbox; *p && l + 1 < sizeof(lower); p++)
				lower[l++] = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
			lower[l] = '\0';
			if (fnv(lower) % shard_n != shard_i)
				keep[i] = false;
		}
	}
	if (errors) {
		free(keep);
		return MF_ECONFIG;
	}
	size_t w = 0;
	for (size_t i = 0; i < job->nunits; i++) {
		if (keep[i])
			job->units[w++] = job->units[i];
		else
			mf_unit_clear(&job->units[i]);
	}
	job->nunits = w;
	free(keep);
	return (int)w;
}

static int path_from_slashes(struct mf_path *p, const char *s)
{
	mf_path_init(p);
	while (*s) {
		const char *e = strchr(s, '/');
		size_t l = e ? (size_t)(e - s) : strlen(s);
		if (l && mf_path_push(p, s, l) < 0)
			return MF_ENOMEM;
		s += l;
		if (*s)
			s++;
	}
	return 0;
}

/* The role of the top-level folder above folders[i] (NONE if the source
 * lists none). */
static enum mf_role top_level_role(const struct mf_folder *folders, size_t n, size_t i)
{
	const struct mf_path *p = &folders[i].path;
	for (size_t j = 0; j < n && p->n > 1; j++)
		if (folders[j].path.n == 1 && strcmp(folders[j].path.seg[0], p->seg[0]) == 0)
			return folders[j].role;
	return MF_ROLE_NONE;
}

int mf_job_target_folder(const struct mf_job *job, const struct mf_unit *unit,
			 const struct mf_folder *folders, size_t n, size_t idx,
			 struct mf_path *target, enum mf_role *role)
{
	const struct mf_folder *f = &folders[idx];
	bool placed = false; /* renamed, or put under a root or archive folder */
	char *joined = mf_path_join(&f->path, "/");
	if (!joined)
		return MF_ENOMEM;
	const struct mf_folder_rules *r = &job->rules;
	bool take = r->ninclude == 0;
	for (size_t i = 0; i < r->ninclude && !take; i++)
		take = fnmatch(r->include[i], joined, 0) == 0;
	for (size_t i = 0; i < r->nexclude && take; i++)
		take = fnmatch(r->exclude[i], joined, 0) != 0;
	if (!take) {
		free(joined);
		return 0;
	}
	int rc = 0;
	struct mf_path mapped;
	mf_path_init(&mapped);
	*role = f->role;
	const struct mf_folder_rename *ren = NULL;
	size_t best = 0;
	for (size_t i = 0; i < r->nrename; i++) {
		size_t l = strlen(r->rename[i].from);
		if (strncmp(joined, r->rename[i].from, l) == 0 &&
		    (joined[l] == '\0' || joined[l] == '/') && l > best) {
			ren = &r->rename[i];
			best = l;
		}
	}
	if (ren) {
		struct mf_buf b = {0};
		if (mf_buf_addstr(&b, ren->to) < 0 || mf_buf_addstr(&b, joined + best) < 0 ||
		    path_from_slashes(&mapped, b.data) < 0)
			rc = MF_ENOMEM;
		mf_buf_free(&b);
		*role = MF_ROLE_NONE;
		placed = true;
	} else if (mf_path_copy(&mapped, &f->path) < 0) {
		rc = MF_ENOMEM;
	}
	free(joined);
	if (rc < 0) {
		mf_path_free(&mapped);
		return rc;
	}

	/* TargetRootFolder (PST jobs): "" -> under "Imported", "/" -> merged
	 * into the top level, "/X" -> under X. IMAP jobs merge. */
	mf_path_init(target);
	if (unit->is_archive && job->archive_folder) {
		rc = path_from_slashes(target, job->archive_folder);
		*role = MF_ROLE_NONE;
		placed = true;
	}
	const char *root = unit->pst_path ? (unit->target_root ? unit->target_root : "") : "/";
	if (rc == 0 && strcmp(root, "/") != 0) {
		rc = path_from_slashes(target, *root ? root : "Imported");
		*role = MF_ROLE_NONE;
		placed = true;
	}
	for (size_t i = 0; rc == 0 && i < mapped.n; i++)
		rc = mf_path_push(target, mapped.seg[i], strlen(mapped.seg[i]));
	if (mapped.n > 1) /* a child: its top-level folder's role, where the sink takes it */
		*role = !placed && job->caps.ancestor_role ? top_level_role(folders, n, idx)
							   : MF_ROLE_NONE;
	mf_path_free(&mapped);
	if (rc < 0) {
		mf_path_free(target);
		return rc;
	}
	return 1;
}
