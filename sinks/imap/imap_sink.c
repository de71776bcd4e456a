/* imap_sink.c - the IMAP sink driver (type = imap in [sink]).
 *
 * One libetpan session per opened sink (the target mailbox), used from the
 * mailbox's worker thread only. Folders are created as needed with the
 * target's delimiter, namespace prefix and modified UTF-7; special folders
 * are mapped by role onto the target's own (SPECIAL-USE flags, else the
 * usual names in several languages). store() is APPEND with flags and
 * INTERNALDATE; with UIDPLUS the sink id is "UIDVALIDITY:UID". probe()
 * searches the folder (Message-ID, else the days around the INTERNALDATE
 * with RFC822.SIZE as FETCH reports it) and compares the SHA-256 of the
 * candidates' bytes: it never changes anything on the target. It does not
 * search by size (SEARCH LARGER/SMALLER): Courier counts the LF size on
 * disk there, while RFC822.SIZE is the CRLF size.
 *
 * Never APPEND into a mailbox selected with EXAMINE: Courier refuses
 * ("Current box is selected READ-ONLY."). folder() SELECTs (EXAMINE answers
 * PERMANENTFLAGS () on Courier, Cyrus and Dovecot alike, which would drop
 * every keyword); probe() and hashes() EXAMINE, and store() leaves such a
 * selection first (EXAMINE + CLOSE expunges nothing).
 *
 * Folder names: with UTF8=ACCEPT (RFC 6855) they go as UTF-8. Without it
 * they go in modified UTF-7, and when the target refuses to CREATE a name
 * with characters outside the BMP (Courier without UTF-8 mode), each such
 * character is written as "U+" and its code point in upper-case hex (at
 * least 4 digits), e.g. "Fun 😀" -> "Fun U+1F600": deterministic, so the
 * next run finds the same folder; the rename is logged (event=folder_renamed).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <libetpan/libetpan.h>

#include "engine/log.h"
#include "engine/sink.h"
#include "engine/util.h"
#include "sources/imap/imap_common.h"

/* Exported by libetpan 1.9 but not declared in its installed headers; used
 * to send APPEND with a LITERAL+ literal (no continuation round trip). */
char *mailimap_read_line(mailimap *session);
int mailimap_send_current_tag(mailimap *session);

#define PROBE_MAX_CANDIDATES 200
#define HASH_BATCH_MSGS 64
#define HASH_BATCH_BYTES (16u * 1024 * 1024)
#define CHECK_FOLDER "mailferry-plan-check"

struct snk_cfg {
	struct mf_imap_conf ic;
	char *password; /* a secret */
	char *admin_user;
	char *archive_login; /* IsArchive rows: "{mailbox}" in it is the mailbox */
	uint64_t max_bytes;
	uint64_t max_line;
	int encode_8bit; /* headers_8bit = encode */
	bool check_append; /* plan: APPEND a test message into CHECK_FOLDER */
};

struct snk_folder {
	char *wire;
	bool any_keyword;    /* PERMANENTFLAGS: keywords kept (see keep_keywords) */
	char *perm_keywords; /* or only these */
	bool told;           /* keywords dropped here were logged */
};

struct imap_snk {
	struct snk_cfg *cfg;
	const struct mf_unit *unit;
	char *archive; /* the archive's login for an IsArchive row, else NULL */
	struct mf_imap *im;
	struct mf_imap_folder *tf; /* the target's folders */
	size_t ntf;
	struct snk_folder **fh;
	size_t nfh;
	/* does the target store what it is given? (see check_stored) */
	bool first_checked;   /* the first store was read back */
	bool munges_8bit;     /* it replaces raw 8-bit header bytes (Cyrus munge8bit) */
	bool rewrites;        /* it changed a message some other way */
	unsigned kept_8bit;   /* 8-bit-header messages read back unchanged */
	unsigned long changed; /* messages stored altered, as far as known */
	bool ro; /* opened by open_read: finds folders, creates nothing */
};

static const struct mf_conf_key snk_keys[] = {
	MF_IMAP_CONF_KEYS,
	{"password", false, "target password (or password_env / password_file); a TargetPassword column wins"},
	{"password_env", false, "environment variable holding the target password"},
	{"password_file", false, "file whose first line is the target password"},
	{"admin_user", false, "log in as this user on behalf of each mailbox (SASL PLAIN authzid)"},
	{"archive_login", false, "IsArchive rows go to this login, {mailbox} standing for the mailbox (e.g. archive-{mailbox})"},
	{"max_message_mb", false, "larger messages are skipped and reported (default 150)"},
	{"max_line", false, "longest line the target accepts, 0 = no limit (default 0)"},
	{"headers_8bit", false, "keep (default): header fields with raw 8-bit bytes are stored as they are; encode: they are RFC 2047-encoded first (counted as 8bit-headers-encoded), for targets that would alter them (Cyrus munge8bit)"},
	{"plan_append_test", false, "plan: APPEND a test message into a scratch folder \"" CHECK_FOLDER "\", then delete that folder (default no)"},
	{NULL, false, NULL},
};

static int snk_configure(const struct mf_conf_section *sec, void **cfgp, struct mf_err *err)
{
	struct snk_cfg *c = calloc(1, sizeof(*c));
	uint64_t mb = 150;
	static const char *const h8[] = {"keep", "encode", NULL};
	const char *admin;
	int rc;

	if (!c)
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	if ((rc = mf_imap_conf_parse(sec, &c->ic, err)) < 0 ||
	    (rc = mf_conf_uint(sec, "max_message_mb", 1, 1 << 20, 150, &mb, err)) < 0 ||
	    (rc = mf_conf_uint(sec, "max_line", 0, UINT32_MAX, 0, &c->max_line, err)) < 0 ||
	    (rc = mf_conf_secret(sec, "password", &c->password, err)) < 0 ||
	    (rc = mf_conf_enum(sec, "headers_8bit", h8, 0, &c->encode_8bit, err)) < 0 ||
	    (rc = mf_conf_bool(sec, "plan_append_test", false, &c->check_append, err)) < 0)
		goto fail;
	c->max_bytes = mb * 1024 * 1024;
	admin = mf_conf_get(sec, "admin_user", NULL);
	if (admin && *admin) {
		if (!(c->admin_user = strdup(admin))) {
			rc = mf_err_set(err, MF_ENOMEM, "out of memory");
			goto fail;
		}
		if (c->ic.auth == MF_IMAP_AUTH_LOGIN) {
			rc = mf_conf_error(sec, "admin_user", err,
					   "needs auth = plain (SASL authorization identity)");
			goto fail;
		}
	}
	const char *arch = mf_conf_get(sec, "archive_login", NULL);
	if (arch && !strstr(arch, "{mailbox}")) {
		rc = mf_conf_error(sec, "archive_login", err,
				   "must contain {mailbox}, e.g. archive-{mailbox}");
		goto fail;
	}
	if (arch && !(c->archive_login = strdup(arch))) {
		rc = mf_err_set(err, MF_ENOMEM, "out of memory");
		goto fail;
	}
	*cfgp = c;
	return 0;
fail:
	mf_imap_conf_free(&c->ic);
	mf_secret_free(c->password);
	free(c->admin_user);
	free(c->archive_login);
	free(c);
	return rc;
}

static void snk_free_config(void *cfgp)
{
	struct snk_cfg *c = cfgp;
	if (!c)
		return;
	mf_imap_conf_free(&c->ic);
	mf_secret_free(c->password);
	free(c->admin_user);
	free(c->archive_login);
	free(c);
}

static void snk_caps(const void *cfgp, struct mf_sink_caps *caps)
{
	const struct snk_cfg *c = cfgp;
	memset(caps, 0, sizeof(*caps));
	caps->crlf = true;
	caps->max_line = (size_t)c->max_line;
	caps->max_message_bytes = c->max_bytes;
	caps->archive_rows = c->archive_login != NULL;
	caps->ascii_headers = c->encode_8bit != 0;
}

static void snk_close(void *p)
{
	struct imap_snk *s = p;
	size_t i;
	if (!s)
		return;
	if (s->changed)
		mf_log(MF_LOG_WARN, "event=changed-by-target-total mailbox=%s messages=%lu",
		       s->unit->mailbox, s->changed);
	mf_imap_close(s->im);
	mf_imap_folders_free(s->tf, s->ntf);
	for (i = 0; i < s->nfh; i++) {
		free(s->fh[i]->wire);
		free(s->fh[i]->perm_keywords);
		free(s->fh[i]);
	}
	free(s->fh);
	free(s->archive);
	free(s);
}

static int open_common(const void *cfgp, const struct mf_unit *unit, bool ro, void **out,
		       struct mf_err *err)
{
	struct snk_cfg *cfg = (struct snk_cfg *)cfgp;
	const char *pw = unit->target_password ? unit->target_password : cfg->password;
	struct imap_snk *s;
	int rc;

	if (!unit->mailbox || !*unit->mailbox)
		return mf_err_set(err, MF_ECONFIG, "manifest row %d: no target mailbox", unit->line);
	/* an IsArchive row: the archive's own login, from archive_login */
	char *archive = NULL;
	if (unit->to_archive && cfg->archive_login) {
		const char *at = strstr(cfg->archive_login, "{mailbox}");
		size_t pre = (size_t)(at - cfg->archive_login);
		if (!(archive = malloc(strlen(cfg->archive_login) + strlen(unit->mailbox) + 1)))
			return mf_err_set(err, MF_ENOMEM, "out of memory");
		snprintf(archive, strlen(cfg->archive_login) + strlen(unit->mailbox) + 1, "%.*s%s%s",
			 (int)pre, cfg->archive_login, unit->mailbox, at + 9);
	}
	const char *target = archive ? archive : unit->mailbox;
	const char *login = cfg->admin_user ? cfg->admin_user : target;
	if (!pw && cfg->ic.auth != MF_IMAP_AUTH_XOAUTH2) {
		free(archive);
		return mf_err_set(err, MF_ECONFIG,
				  "no target password: set password, password_env or password_file in [sink], or a TargetPassword column");
	}
	if (!(s = calloc(1, sizeof(*s)))) {
		free(archive);
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	}
	s->cfg = cfg;
	s->unit = unit;
	s->archive = archive;
	s->ro = ro;
	rc = mf_imap_open(&cfg->ic, login, cfg->admin_user ? target : NULL, pw ? pw : "",
			  &s->im, err);
	if (rc < 0) {
		mf_err_prefix(err, "target %s:%u mailbox %s", cfg->ic.host, (unsigned)cfg->ic.port,
			      target);
		free(s->archive);
		free(s);
		return rc;
	}
	if ((rc = mf_imap_list(s->im, NULL, &s->tf, &s->ntf, err)) < 0) {
		mf_err_prefix(err, "target mailbox %s", unit->mailbox);
		snk_close(s);
		return rc;
	}
	*out = s;
	return 0;
}

static int snk_open(const void *cfgp, const struct mf_unit *unit, void **out, struct mf_err *err)
{
	return open_common(cfgp, unit, false, out, err);
}

/* Logs in and LISTs; folder() then only finds, with EXAMINE (see below). A
 * mailbox that cannot be logged in to is an error of its own class (auth,
 * connection), not MF_ENOTFOUND: IMAP cannot tell "no such user" apart. */
static int snk_open_read(const void *cfgp, const struct mf_unit *unit, void **out,
			 struct mf_err *err)
{
	return open_common(cfgp, unit, true, out, err);
}

/* One segment as the target takes it: UTF-8 in UTF8=ACCEPT mode, else
 * modified UTF-7; with `mapped`, the characters targets refuse are
 * replaced first by mf_imap_name_map's rule (characters outside the BMP
 * too, unless names go in UTF-8); *nmapped, if given, counts them. */
static int encode_seg(struct imap_snk *s, const char *seg, bool mapped, struct mf_buf *out,
		      int *nmapped)
{
	struct mf_buf m = {0};
	int rc = 0;

	if (mapped) {
		int k = mf_imap_name_map(seg, !s->im->utf8, &m);
		if (k < 0 || mf_buf_add(&m, "", 1) < 0) {
			mf_buf_free(&m);
			return MF_ENOMEM;
		}
		if (nmapped)
			*nmapped += k;
		seg = m.data;
	}
	if (s->im->utf8)
		rc = mf_buf_addstr(out, seg);
	else
		rc = mf_imap_utf7_encode(seg, strlen(seg), out);
	mf_buf_free(&m);
	return rc;
}

/* Log a folder made under another name than the source's (wire names as
 * sent; decoded for the log when they are modified UTF-7). */
static int log_renamed(struct imap_snk *s, const char *from, const char *to, int n,
		       struct mf_err *err)
{
	struct mf_buf a = {0}, b = {0};
	int rc = 0;
	if (s->im->utf8) {
		rc = mf_buf_addstr(&a, from) < 0 || mf_buf_addstr(&b, to) < 0 ? MF_ENOMEM : 0;
	} else if (mf_imap_utf7_decode(from, strlen(from), &a) < 0 || mf_buf_add(&a, "", 1) < 0 ||
		   mf_imap_utf7_decode(to, strlen(to), &b) < 0 || mf_buf_add(&b, "", 1) < 0) {
		rc = MF_ENOMEM;
	}
	if (rc < 0)
		rc = mf_err_set(err, MF_ENOMEM, "out of memory");
	else
		mf_log(MF_LOG_WARN,
		       "event=folder-renamed mailbox=%s from=\"%s\" to=\"%s\" replaced=%d "
		       "reason=\"the target refused the name: characters it refuses replaced "
		       "(fullwidth forms; U+XXXX for characters outside the BMP)\"",
		       s->unit->mailbox, a.data, b.data, n);
	mf_buf_free(&a);
	mf_buf_free(&b);
	return rc;
}

/* The wire name for a target path: namespace prefix, segments in modified
 * UTF-7 joined with the target's delimiter (a delimiter inside a segment
 * becomes '_'). With `mapped`, characters targets refuse are replaced first
 * by mf_imap_name_map's rule (*nmapped, if given, counts them). */
static int wire_name_m(struct imap_snk *s, const struct mf_path *path, size_t upto, bool mapped,
		       struct mf_buf *out, int *nmapped)
{
	char d = s->im->delim ? s->im->delim : '_';
	size_t i, j;
	struct mf_buf seg = {0};
	int rc = 0;

	out->len = 0;
	if (!(path->n >= 1 && !strcasecmp(path->seg[0], "INBOX")))
		rc = mf_buf_addstr(out, s->im->ns_prefix ? s->im->ns_prefix : "");
	for (i = 0; i < upto && rc == 0; i++) {
		seg.len = 0;
		if (i > 0)
			rc = mf_buf_add(out, &d, 1);
		if (rc == 0 && i == 0 && !strcasecmp(path->seg[0], "INBOX")) {
			rc = mf_buf_addstr(&seg, "INBOX");
		} else if (rc == 0) {
			rc = encode_seg(s, path->seg[i], mapped, &seg, nmapped);
		}
		for (j = 0; rc == 0 && j < seg.len; j++)
			if (seg.data[j] == d)
				seg.data[j] = '_';
		if (rc == 0)
			rc = mf_buf_add(out, seg.data, seg.len);
	}
	if (rc == 0)
		rc = mf_buf_add(out, "", 1);
	mf_buf_free(&seg);
	return rc < 0 ? rc : 0;
}

static int wire_name(struct imap_snk *s, const struct mf_path *path, size_t upto,
		     struct mf_buf *out)
{
	return wire_name_m(s, path, upto, false, out, NULL);
}

static const struct mf_imap_folder *find_wire(struct imap_snk *s, const char *wire)
{
	size_t i;
	for (i = 0; i < s->ntf; i++)
		if (!strcmp(s->tf[i].wire, wire))
			return &s->tf[i];
	return NULL;
}

static int remember(struct imap_snk *s, const char *wire)
{
	struct mf_imap_folder *n = realloc(s->tf, (s->ntf + 1) * sizeof(*n));
	if (!n)
		return MF_ENOMEM;
	s->tf = n;
	memset(&n[s->ntf], 0, sizeof(n[0]));
	mf_path_init(&n[s->ntf].path);
	if (!(n[s->ntf].wire = strdup(wire)))
		return MF_ENOMEM;
	s->ntf++;
	return 0;
}

static int create_one(struct imap_snk *s, const char *wire, struct mf_err *err)
{
	int r = mailimap_create(s->im->s, wire);
	if (r != MAILIMAP_NO_ERROR) {
		char line[512];
		mf_imap_last_line(s->im, line, sizeof(line));
		if (!strstr(line, "[ALREADYEXISTS]"))
			return mf_imap_fail(s->im, r, MF_EFOLDER, "CREATE", err);
	} else {
		/* clients show subscribed folders; failure here is harmless */
		(void)mailimap_subscribe(s->im->s, wire);
	}
	if (remember(s, wire) < 0)
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	return 0;
}

/* CREATE the folder at `path` and its parents, those not listed yet (not
 * every server creates parents). */
static int create_path(struct imap_snk *s, const struct mf_path *path, bool mapped,
		       struct mf_err *err)
{
	int rc = 0;
	for (size_t k = 1; k <= path->n && rc == 0; k++) {
		struct mf_buf pw = {0};
		if (wire_name_m(s, path, k, mapped, &pw, NULL) < 0) {
			rc = mf_err_set(err, MF_ENOMEM, "out of memory");
		} else if (!find_wire(s, pw.data) && strcasecmp(pw.data, "INBOX")) {
			rc = create_one(s, pw.data, err);
			if (rc < 0)
				mf_err_prefix(err, "target folder %s", pw.data);
		}
		mf_buf_free(&pw);
	}
	return rc;
}

static int snk_folder(void *p, const struct mf_path *path, enum mf_role role, void **out,
		      struct mf_err *err)
{
	struct imap_snk *s = p;
	struct mf_buf w = {0}, m = {0};
	const char *target = NULL;
	struct snk_folder *h = NULL, **nfh;
	size_t i;
	int rc = 0;

	if (path->n == 0)
		return mf_err_set(err, MF_EFOLDER, "empty folder path");
	if (role == MF_ROLE_INBOX)
		target = "INBOX";
	else if (role != MF_ROLE_NONE) {
		/* the target's folder of that role, by SPECIAL-USE or by name */
		for (i = 0; i < s->ntf && !target; i++)
			if (s->tf[i].role == role && !s->tf[i].noselect)
				target = s->tf[i].wire;
	}
	if (!target) {
		int nm = 0;
		if (wire_name(s, path, path->n, &w) < 0 ||
		    wire_name_m(s, path, path->n, true, &m, &nm) < 0) {
			rc = mf_err_set(err, MF_ENOMEM, "out of memory");
			goto out;
		}
		if (find_wire(s, w.data))
			target = w.data;
		else if (nm > 0 && find_wire(s, m.data))
			target = m.data; /* renamed by an earlier run */
		else if (s->ro) {
			rc = mf_err_set(err, MF_ENOTFOUND, "target folder %s does not exist", w.data);
			goto out;
		} else if ((rc = create_path(s, path, false, err)) == 0) {
			target = w.data;
		} else if (nm > 0 && mf_err_class(rc) == MF_CLASS_FOLDER) {
			/* refused: once more with the characters targets refuse
			 * replaced (mf_imap_name_map's rule) */
			struct mf_err first = *err;
			mf_err_clear(err);
			if ((rc = create_path(s, path, true, err)) < 0) {
				*err = first;
				rc = first.code;
				goto out;
			}
			target = m.data;
			if ((rc = log_renamed(s, w.data, m.data, nm, err)) < 0)
				goto out;
		} else {
			goto out;
		}
	}
	for (i = 0; i < s->nfh; i++)
		if (!strcmp(s->fh[i]->wire, target)) {
			*out = s->fh[i];
			goto out;
		}
	nfh = realloc(s->fh, (s->nfh + 1) * sizeof(*nfh));
	if (!nfh || !(h = calloc(1, sizeof(*h))) || !(h->wire = strdup(target))) {
		if (nfh)
			s->fh = nfh;
		free(h);
		rc = mf_err_set(err, MF_ENOMEM, "out of memory");
		goto out;
	}
	s->fh = nfh;
	s->fh[s->nfh++] = h;
	*out = h;
	if (s->ro)
		goto out; /* probe() and hashes() EXAMINE it themselves */
	/* which keywords the folder keeps: PERMANENTFLAGS of a SELECT (to
	 * EXAMINE, servers answer PERMANENTFLAGS ()); if it cannot be
	 * selected, APPEND will say what is wrong */
	{
		struct mf_err e2 = {0};
		if (mf_imap_select(s->im, target, true, &e2) == 0) {
			h->any_keyword = s->im->any_keyword;
			if (s->im->perm_keywords && !(h->perm_keywords = strdup(s->im->perm_keywords)))
				rc = mf_err_set(err, MF_ENOMEM, "out of memory");
		} else if (mf_err_class(e2.code) == MF_CLASS_CONNECTION) {
			*err = e2;
			rc = e2.code;
		}
	}
out:
	mf_buf_free(&w);
	mf_buf_free(&m);
	return rc;
}

/* Is keyword kw (length n) in the space-separated list? */
static bool in_list(const char *list, const char *kw, size_t n)
{
	for (const char *p = list; p && *p;) {
		size_t l = strcspn(p, " ");
		if (l == n && strncasecmp(p, kw, n) == 0)
			return true;
		p += l;
		p += *p == ' ';
	}
	return false;
}

/* The item's keywords the target folder keeps, into out (space-separated;
 * empty for none). Dropped ones are logged once per folder. */
static int keep_keywords(struct imap_snk *s, struct snk_folder *fh, const char *kws,
			 struct mf_buf *out)
{
	struct mf_buf dropped = {0};
	int rc = mf_buf_addstr(out, "");
	for (const char *p = kws; rc == 0 && p && *p;) {
		size_t l = strcspn(p, " ");
		if (l) {
			struct mf_buf *to = fh->any_keyword || in_list(fh->perm_keywords, p, l) ? out : &dropped;
			if ((to->len && mf_buf_add(to, " ", 1) < 0) || mf_buf_add(to, p, l) < 0)
				rc = MF_ENOMEM;
		}
		p += l;
		p += *p == ' ';
	}
	if (rc == 0 && dropped.len && !fh->told) {
		fh->told = true;
		mf_log(MF_LOG_INFO,
		       "event=keywords_dropped mailbox=%s folder=%s keywords=\"%s\" reason=\"the target folder's PERMANENTFLAGS does not keep them\"",
		       s->unit->mailbox, fh->wire, dropped.data);
	}
	mf_buf_free(&dropped);
	return rc;
}

static struct mailimap_flag_list *make_flags(unsigned f, const char *kws)
{
	struct mailimap_flag_list *fl = mailimap_flag_list_new_empty();
	struct {
		unsigned bit;
		struct mailimap_flag *(*make)(void);
	} map[] = {
		{MF_FLAG_SEEN, mailimap_flag_new_seen},
		{MF_FLAG_ANSWERED, mailimap_flag_new_answered},
		{MF_FLAG_FLAGGED, mailimap_flag_new_flagged},
		{MF_FLAG_DELETED, mailimap_flag_new_deleted},
		{MF_FLAG_DRAFT, mailimap_flag_new_draft},
	};
	size_t i;
	if (!fl)
		return NULL;
	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		struct mailimap_flag *one;
		if (!(f & map[i].bit))
			continue;
		if (!(one = map[i].make()) || mailimap_flag_list_add(fl, one) != MAILIMAP_NO_ERROR) {
			if (one)
				mailimap_flag_free(one);
			mailimap_flag_list_free(fl);
			return NULL;
		}
	}
	for (const char *p = kws; p && *p;) {
		size_t l = strcspn(p, " ");
		char *k = l ? strndup(p, l) : NULL;
		struct mailimap_flag *one = k ? mailimap_flag_new_flag_keyword(k) : NULL;
		if (l && (!one || mailimap_flag_list_add(fl, one) != MAILIMAP_NO_ERROR)) {
			if (one)
				mailimap_flag_free(one);
			else
				free(k);
			mailimap_flag_list_free(fl);
			return NULL;
		}
		p += l;
		p += *p == ' ';
	}
	return fl;
}

/* APPEND mailbox (flags) "date" {N+}: one round trip per message. Returns a
 * libetpan code; *uid stays 0 without APPENDUID. */
static int append_literalplus(struct mf_imap *im, const char *wire, const struct mf_item *item,
			      const char *kws, uint32_t *uv, uint32_t *uid)
{
	static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	struct mf_buf cmd = {0};
	struct mailimap_response *resp = NULL;
	struct mailimap_resp_cond_state *cs;
	const char *p;
	int r;

	if (mf_buf_addstr(&cmd, "APPEND \"") < 0)
		goto nomem;
	for (p = wire; *p; p++) {
		if ((*p == '"' || *p == '\\') && mf_buf_add(&cmd, "\\", 1) < 0)
			goto nomem;
		if (mf_buf_add(&cmd, p, 1) < 0)
			goto nomem;
	}
	if (mf_buf_addstr(&cmd, "\" (") < 0 ||
	    ((item->flags & MF_FLAG_SEEN) && mf_buf_addstr(&cmd, "\\Seen ") < 0) ||
	    ((item->flags & MF_FLAG_ANSWERED) && mf_buf_addstr(&cmd, "\\Answered ") < 0) ||
	    ((item->flags & MF_FLAG_FLAGGED) && mf_buf_addstr(&cmd, "\\Flagged ") < 0) ||
	    ((item->flags & MF_FLAG_DELETED) && mf_buf_addstr(&cmd, "\\Deleted ") < 0) ||
	    ((item->flags & MF_FLAG_DRAFT) && mf_buf_addstr(&cmd, "\\Draft ") < 0) ||
	    (kws && *kws && mf_buf_printf(&cmd, "%s ", kws) < 0))
		goto nomem;
	if (cmd.data[cmd.len - 1] == ' ')
		cmd.len--;
	if (mf_buf_addstr(&cmd, ")") < 0)
		goto nomem;
	if (item->idate > 0) {
		struct tm tm;
		time_t t = (time_t)item->idate;
		if (gmtime_r(&t, &tm) &&
		    mf_buf_printf(&cmd, " \"%02d-%s-%04d %02d:%02d:%02d +0000\"", tm.tm_mday,
				  mon[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
				  tm.tm_sec) < 0)
			goto nomem;
	}
	if (mf_buf_printf(&cmd, " {%zu+}\r\n", item->len) < 0)
		goto nomem;
	r = mailimap_send_current_tag(im->s);
	if (r != MAILIMAP_NO_ERROR)
		goto out;
	if (mailstream_write(im->s->imap_stream, cmd.data, cmd.len) < 0 ||
	    mailstream_write(im->s->imap_stream, item->data, item->len) < 0 ||
	    mailstream_write(im->s->imap_stream, "\r\n", 2) < 0 ||
	    mailstream_flush(im->s->imap_stream) < 0 || !mailimap_read_line(im->s)) {
		r = MAILIMAP_ERROR_STREAM;
		goto out;
	}
	r = mailimap_parse_response(im->s, &resp);
	if (r != MAILIMAP_NO_ERROR)
		goto out;
	cs = resp->rsp_resp_done->rsp_type == MAILIMAP_RESP_DONE_TYPE_TAGGED
		     ? resp->rsp_resp_done->rsp_data.rsp_tagged->rsp_cond_state
		     : NULL;
	if (!cs || cs->rsp_type != MAILIMAP_RESP_COND_STATE_OK) {
		r = MAILIMAP_ERROR_APPEND;
		goto out;
	}
	/* libetpan moves response codes of extensions (APPENDUID) here */
	if (im->s->imap_response_info && im->s->imap_response_info->rsp_extension_list) {
		clistiter *it;
		for (it = clist_begin(im->s->imap_response_info->rsp_extension_list); it;
		     it = clist_next(it)) {
			struct mailimap_extension_data *ed = clist_content(it);
			struct mailimap_uidplus_resp_code_apnd *a;
			clistiter *si;
			if (ed->ext_extension != &mailimap_extension_uidplus ||
			    ed->ext_type != MAILIMAP_UIDPLUS_RESP_CODE_APND)
				continue;
			a = ed->ext_data;
			si = a->uid_set ? clist_begin(a->uid_set->set_list) : NULL;
			*uv = a->uid_uidvalidity;
			if (si)
				*uid = ((struct mailimap_set_item *)clist_content(si))->set_first;
		}
	}
	r = MAILIMAP_NO_ERROR;
	goto out;
nomem:
	r = MAILIMAP_ERROR_MEMORY;
out:
	if (resp)
		mailimap_response_free(resp);
	mf_buf_free(&cmd);
	return r;
}

/* Length of the header block, blank line included (all of it if none). */
static size_t header_len(const unsigned char *d, size_t n)
{
	for (size_t i = 0; i + 3 < n; i++)
		if (d[i] == '\r' && d[i + 1] == '\n' && d[i + 2] == '\r' && d[i + 3] == '\n')
			return i + 4;
	return n;
}

/* Raw 8-bit bytes in the header block (not RFC 2047 encoded). */
static bool header_8bit(const unsigned char *d, size_t n)
{
	size_t h = header_len(d, n);
	for (size_t i = 0; i < h; i++)
		if (d[i] >= 0x80)
			return true;
	return false;
}

/* Is `got` the item as a target stores it that replaces raw 8-bit header
 * bytes (Cyrus's munge8bit makes each one 'X')? The same length and body,
 * the header the same except where the item had a byte >= 0x80. */
static bool same_but_8bit_header(const struct mf_item *item, const unsigned char *got, size_t n)
{
	size_t h;
	bool differs = false;
	if (n != item->len)
		return false;
	h = header_len(item->data, item->len);
	for (size_t i = 0; i < h; i++)
		if (got[i] != item->data[i]) {
			if (item->data[i] < 0x80 || got[i] >= 0x80)
				return false;
			differs = true;
		}
	return differs && memcmp(got + h, item->data + h, n - h) == 0;
}

struct readback {
	const struct mf_item *item;
	int verdict; /* 0 not seen, 1 same, 2 8-bit header bytes replaced, 3 other change */
	char hash[2 * MF_SHA256_LEN + 1];
};

static int readback_cb(void *p, struct mf_imap_fmsg *m)
{
	struct readback *rb = p;
	unsigned char h[MF_SHA256_LEN];
	if (!m->body)
		return 0;
	mf_sha256(m->body, m->body_len, h);
	mf_hex(h, MF_SHA256_LEN, rb->hash);
	if (memcmp(h, rb->item->sha256, MF_SHA256_LEN) == 0)
		rb->verdict = 1;
	else if (same_but_8bit_header(rb->item, m->body, m->body_len))
		rb->verdict = 2;
	else
		rb->verdict = 3;
	return 0;
}

/* After a store: does the target keep what it was given? The first message
 * of a session and each one with raw 8-bit header bytes (until the target
 * is known to replace them, or three came back unchanged) is read back once
 * by its APPENDUID. A target
 * that rewrites is reported ("changed by the target"), and probe() then
 * recognises the rewritten copy, so that a rerun or `verify --repair`
 * never stores it again in a loop. Failures here change nothing: the
 * message is stored. */
static void check_stored(struct imap_snk *s, struct snk_folder *fh, const struct mf_item *item,
			 uint32_t uid)
{
	bool h8 = header_8bit(item->data, item->len);
	struct readback rb = {.item = item};
	struct mf_err e = {0};

	if (h8 && s->munges_8bit) {
		s->changed++;
		mf_log(MF_LOG_WARN,
		       "event=changed-by-target mailbox=%s folder=%s message_id=%s reason=\"the target replaced raw 8-bit header bytes (Cyrus munge8bit); headers_8bit = encode in [sink] stores them RFC 2047-encoded instead\"",
		       s->unit->mailbox, fh->wire, item->message_id ? item->message_id : "-");
		return;
	}
	/* three unchanged 8-bit-header messages: the target keeps them, stop
	 * paying a read per message */
	if (!uid || s->rewrites || (s->first_checked && (!h8 || s->kept_8bit >= 3)))
		return;
	s->first_checked = true;
	if (mf_imap_select(s->im, fh->wire, true, &e) < 0 ||
	    mf_imap_uid_fetch(s->im, &uid, 1, 0, 0, MF_IMAP_F_BODY, readback_cb, &rb, &e) < 0) {
		mf_log(MF_LOG_DEBUG, "event=readback-failed mailbox=%s folder=%s reason=\"%s\"",
		       s->unit->mailbox, fh->wire, e.msg);
		return;
	}
	if (rb.verdict == 1 && h8)
		s->kept_8bit++;
	if (rb.verdict == 2) {
		s->munges_8bit = true;
		s->changed++;
		mf_log(MF_LOG_WARN,
		       "event=changed-by-target mailbox=%s folder=%s message_id=%s target_sha256=%s reason=\"the target replaced raw 8-bit header bytes (Cyrus munge8bit); headers_8bit = encode in [sink] stores them RFC 2047-encoded instead\"",
		       s->unit->mailbox, fh->wire, item->message_id ? item->message_id : "-", rb.hash);
	} else if (rb.verdict == 3) {
		s->rewrites = true;
		s->changed++;
		mf_log(MF_LOG_WARN,
		       "event=changed-by-target mailbox=%s folder=%s message_id=%s target_sha256=%s reason=\"the target stored an altered copy; verify will count such messages as missing\"",
		       s->unit->mailbox, fh->wire, item->message_id ? item->message_id : "-", rb.hash);
	}
}

static int snk_store(void *p, void *fhp, const struct mf_item *item, char sink_id[MF_SINK_ID_MAX],
		     struct mf_err *err)
{
	struct imap_snk *s = p;
	struct snk_folder *fh = fhp;
	struct mailimap_flag_list *fl = NULL;
	struct mailimap_date_time *dt = NULL;
	struct mf_buf kws = {0};
	uint32_t uv = 0, uid = 0;
	int r, rc = 0;

	sink_id[0] = 0;
	if (s->cfg->max_bytes && item->len > s->cfg->max_bytes)
		return mf_err_set(err, MF_ETOOBIG, "%zu bytes, over max_message_mb (%" PRIu64 " MB)",
				  item->len, s->cfg->max_bytes / (1024 * 1024));
	if (s->im->appendlimit && item->len > s->im->appendlimit)
		return mf_err_set(err, MF_ETOOBIG, "%zu bytes, over the target's APPENDLIMIT %" PRIu64,
				  item->len, s->im->appendlimit);
	if (keep_keywords(s, fh, item->keywords, &kws) < 0)
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	/* not into an EXAMINEd mailbox (a probe's): Courier refuses */
	if (s->im->selected && !s->im->selected_rw && (rc = mf_imap_unselect(s->im, err)) < 0) {
		mf_err_prefix(err, "target folder %s", fh->wire);
		goto out;
	}
	if (s->im->caps & MF_IMAP_CAP_LITERALPLUS) {
		r = append_literalplus(s->im, fh->wire, item, kws.data, &uv, &uid);
		goto done;
	}
	if (!(fl = make_flags(item->flags, kws.data))) {
		rc = mf_err_set(err, MF_ENOMEM, "out of memory");
		goto out;
	}
	if (item->idate > 0) {
		struct tm tm;
		time_t t = (time_t)item->idate;
		if (gmtime_r(&t, &tm) &&
		    !(dt = mailimap_date_time_new(tm.tm_mday, tm.tm_mon + 1, tm.tm_year + 1900,
						  tm.tm_hour, tm.tm_min, tm.tm_sec, 0))) {
			rc = mf_err_set(err, MF_ENOMEM, "out of memory");
			goto out;
		}
	}
	if (s->im->caps & MF_IMAP_CAP_UIDPLUS)
		r = mailimap_uidplus_append(s->im->s, fh->wire, fl, dt, (const char *)item->data,
					    item->len, &uv, &uid);
	else
		r = mailimap_append(s->im->s, fh->wire, fl, dt, (const char *)item->data, item->len);
done:
	if (r != MAILIMAP_NO_ERROR) {
		rc = mf_imap_fail(s->im, r, MF_EMSG, "APPEND", err);
		mf_err_prefix(err, "target folder %s", fh->wire);
		goto out;
	}
	if (uid)
		snprintf(sink_id, MF_SINK_ID_MAX, "%" PRIu32 ":%" PRIu32, uv, uid);
	check_stored(s, fh, item, uid);
out:
	if (fl)
		mailimap_flag_list_free(fl);
	if (dt)
		mailimap_date_time_free(dt);
	mf_buf_free(&kws);
	return rc;
}

struct probe_arg {
	const struct mf_item *item;
	bool rewritten; /* the copy found was altered by the target */
	unsigned matches;
	uint32_t match_uid;
	uint32_t *same_size; /* widened search: candidates whose RFC822.SIZE fits */
	size_t nsame;
	bool nomem;
};

static int probe_cb(void *p, struct mf_imap_fmsg *m)
{
	struct probe_arg *pa = p;
	unsigned char h[MF_SHA256_LEN];
	if (!m->body)
		return 0;
	mf_sha256(m->body, m->body_len, h);
	/* a copy the target altered as it stored it (8-bit header bytes
	 * replaced) is this message too: storing again would only add
	 * another altered copy */
	bool same = memcmp(h, pa->item->sha256, MF_SHA256_LEN) == 0;
	if (same || same_but_8bit_header(pa->item, m->body, m->body_len)) {
		/* the n-th identical copy in the source is the n-th here */
		if (pa->matches == pa->item->dup) {
			pa->match_uid = m->uid;
			pa->rewritten = !same;
		}
		pa->matches++;
	}
	return 0;
}

/* RFC822.SIZE as FETCH reports it (the CRLF size on every server seen) */
static int size_cb(void *p, struct mf_imap_fmsg *m)
{
	struct probe_arg *pa = p;
	if (m->size != pa->item->len)
		return 0;
	uint32_t *n = realloc(pa->same_size, (pa->nsame + 1) * sizeof(*n));
	if (!n) {
		pa->nomem = true;
		return MF_ENOMEM;
	}
	pa->same_size = n;
	n[pa->nsame++] = m->uid;
	return 0;
}

static int fetch_compare(struct imap_snk *s, const uint32_t *uids, size_t n, struct probe_arg *pa,
			 struct mf_err *err)
{
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i += PROBE_MAX_CANDIDATES) {
		size_t k = n - i < PROBE_MAX_CANDIDATES ? n - i : PROBE_MAX_CANDIDATES;
		rc = mf_imap_uid_fetch(s->im, uids + i, k, 0, 0, MF_IMAP_F_BODY, probe_cb, pa, err);
		if (pa->matches > pa->item->dup)
			break;
	}
	return rc;
}

/* Narrow: the Message-ID. Wide, when that finds nothing (no Message-ID, a
 * server that cannot search headers, or no candidate): the messages whose
 * INTERNALDATE lies in the days around the item's, of the item's size as
 * FETCH RFC822.SIZE gives it. Either way the SHA-256 of the bytes decides. */
static int snk_probe(void *p, void *fhp, const struct mf_item *item, char sink_id[MF_SINK_ID_MAX],
		     struct mf_err *err)
{
	struct imap_snk *s = p;
	struct snk_folder *fh = fhp;
	struct probe_arg pa = {.item = item};
	uint32_t *uids = NULL;
	size_t n = 0;
	int rc;

	sink_id[0] = 0;
	if ((rc = mf_imap_select(s->im, fh->wire, false, err)) < 0)
		goto out;
	if (item->message_id) {
		rc = mf_imap_uid_search(s->im, item->message_id, 0, &uids, &n, err);
		if (rc < 0 && mf_err_class(rc) == MF_CLASS_CONNECTION)
			goto out;
		if (rc < 0) {
			/* a Message-ID the server cannot search for: widen */
			mf_err_clear(err);
			rc = 0;
			n = 0;
		}
		if (n && (rc = fetch_compare(s, uids, n, &pa, err)) < 0)
			goto out;
	}
	if (n == 0 && item->idate > 0) {
		free(uids);
		uids = NULL;
		if ((rc = mf_imap_uid_search_date(s->im, item->idate, &uids, &n, err)) < 0)
			goto out;
		if (n && (rc = mf_imap_uid_fetch(s->im, uids, n, 0, 0, MF_IMAP_F_META, size_cb, &pa,
						 err)) < 0) {
			if (pa.nomem)
				rc = mf_err_set(err, MF_ENOMEM, "out of memory");
			goto out;
		}
		if (pa.nsame && (rc = fetch_compare(s, pa.same_size, pa.nsame, &pa, err)) < 0)
			goto out;
	}
	if (pa.matches > item->dup) {
		snprintf(sink_id, MF_SINK_ID_MAX, "%" PRIu32 ":%" PRIu32, s->im->uidvalidity,
			 pa.match_uid);
		if (pa.rewritten)
			mf_log(MF_LOG_WARN,
			       "event=changed-by-target mailbox=%s folder=%s message_id=%s uid=%" PRIu32 " reason=\"found in the target as it altered it (raw 8-bit header bytes replaced): not stored again; headers_8bit = encode in [sink] avoids the change\"",
			       s->unit->mailbox, fh->wire, item->message_id ? item->message_id : "-",
			       pa.match_uid);
		rc = 1;
	}
out:
	if (rc < 0)
		mf_err_prefix(err, "probe in %s", fh->wire);
	free(uids);
	free(pa.same_size);
	return rc;
}

struct hash_arg {
	int (*cb)(void *arg, const char *hash_hex);
	void *arg;
	uint32_t *uids, *sizes;
	size_t n, cap;
	struct mf_err *err;
};

static int meta_cb(void *p, struct mf_imap_fmsg *m)
{
	struct hash_arg *ha = p;
	if (ha->n == ha->cap) {
		size_t nc = ha->cap ? ha->cap * 2 : 256;
		uint32_t *a = realloc(ha->uids, nc * sizeof(*a)), *b;
		if (!a)
			return mf_err_set(ha->err, MF_ENOMEM, "out of memory");
		ha->uids = a;
		if (!(b = realloc(ha->sizes, nc * sizeof(*b))))
			return mf_err_set(ha->err, MF_ENOMEM, "out of memory");
		ha->sizes = b;
		ha->cap = nc;
	}
	ha->uids[ha->n] = m->uid;
	ha->sizes[ha->n] = m->size;
	ha->n++;
	return 0;
}

static int body_hash_cb(void *p, struct mf_imap_fmsg *m)
{
	struct hash_arg *ha = p;
	unsigned char h[MF_SHA256_LEN];
	char hex[2 * MF_SHA256_LEN + 1];
	if (!m->body)
		return 0;
	mf_sha256(m->body, m->body_len, h);
	mf_hex(h, MF_SHA256_LEN, hex);
	return ha->cb(ha->arg, hex);
}

static int snk_hashes(void *p, void *fhp, int (*cb)(void *arg, const char *hash_hex), void *arg,
		      struct mf_err *err)
{
	struct imap_snk *s = p;
	struct snk_folder *fh = fhp;
	struct hash_arg ha = {.cb = cb, .arg = arg, .err = err};
	size_t i = 0;
	int rc;

	if ((rc = mf_imap_select(s->im, fh->wire, false, err)) < 0)
		goto out;
	if (s->im->s->imap_selection_info && s->im->s->imap_selection_info->sel_exists == 0)
		goto out;
	if ((rc = mf_imap_uid_fetch(s->im, NULL, 0, 1, 0, MF_IMAP_F_META, meta_cb, &ha, err)) < 0)
		goto out;
	while (i < ha.n && rc == 0) {
		size_t k = 1;
		uint64_t bytes = ha.sizes[i];
		while (i + k < ha.n && k < HASH_BATCH_MSGS && bytes + ha.sizes[i + k] <= HASH_BATCH_BYTES)
			bytes += ha.sizes[i + k++];
		rc = mf_imap_uid_fetch(s->im, ha.uids + i, k, 0, 0, MF_IMAP_F_BODY, body_hash_cb, &ha,
				       err);
		i += k;
	}
out:
	if (rc < 0)
		mf_err_prefix(err, "hashes of %s", fh->wire);
	free(ha.uids);
	free(ha.sizes);
	return rc;
}

/* plan_append_test: what run does, once, into a scratch folder: CREATE,
 * SELECT (PERMANENTFLAGS), EXAMINE as a probe does, APPEND (which must
 * leave the EXAMINE first), probe again (it must find the message by
 * Message-ID), then DELETE the folder. */
static int append_test(struct imap_snk *s, struct mf_buf *note, struct mf_err *err)
{
	static const char msg[] = "From: mailferry <plan@mailferry.invalid>\r\n"
				  "To: mailferry <plan@mailferry.invalid>\r\n"
				  "Subject: mailferry plan check (deleted right away)\r\n"
				  "Message-ID: <plan-check@mailferry.invalid>\r\n"
				  "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
				  "\r\n"
				  "mailferry plan_append_test\r\n";
	unsigned char h[MF_SHA256_LEN];
	char hex[2 * MF_SHA256_LEN + 1], id[MF_SINK_ID_MAX];
	struct mf_path path;
	void *fh = NULL;
	int rc, drc;

	mf_sha256((const unsigned char *)msg, sizeof(msg) - 1, h);
	mf_hex(h, MF_SHA256_LEN, hex);
	struct mf_item it = {.data = (const unsigned char *)msg, .len = sizeof(msg) - 1,
			     .sha256 = h, .hash_hex = hex, .idem = "00000000000000000000000000000000",
			     .message_id = "<plan-check@mailferry.invalid>", .idate = 1704067200,
			     .flags = MF_FLAG_SEEN};
	mf_path_init(&path);
	if (mf_path_push(&path, CHECK_FOLDER, strlen(CHECK_FOLDER)) < 0)
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	s->ro = false;
	rc = snk_folder(s, &path, MF_ROLE_NONE, &fh, err);
	/* as after a crash: the probe EXAMINEs, then APPEND follows */
	if (rc == 0)
		rc = mf_imap_select_fresh(s->im, ((struct snk_folder *)fh)->wire, false, err);
	if (rc == 0 && (rc = snk_probe(s, fh, &it, id, err)) == 0)
		rc = snk_store(s, fh, &it, id, err);
	else if (rc == 1)
		rc = 0; /* left over from an earlier check: the probe found it */
	if (rc == 0) {
		rc = snk_probe(s, fh, &it, id, err);
		if (rc == 0)
			rc = mf_err_set(err, MF_EPROTO,
					"APPEND test: the probe does not find the message just appended (a rerun after a crash would duplicate)");
		else if (rc == 1)
			rc = 0;
	}
	s->ro = true;
	if (fh) {
		/* clean up even after a failure; a failure here is only noted */
		struct mf_err e2 = {0};
		const char *wire = ((struct snk_folder *)fh)->wire;
		if ((drc = mf_imap_unselect(s->im, &e2)) == 0 &&
		    (drc = mailimap_delete(s->im->s, wire)) != MAILIMAP_NO_ERROR)
			drc = mf_imap_fail(s->im, drc, MF_EFOLDER, "DELETE", &e2);
		if (drc < 0)
			mf_buf_printf(note, "; could not delete the scratch folder %s: %s", wire, e2.msg);
	}
	mf_path_free(&path);
	if (rc < 0)
		mf_err_prefix(err, "plan_append_test in %s", CHECK_FOLDER);
	else
		mf_buf_printf(note, "; APPEND test into %s passed (folder deleted)", CHECK_FOLDER);
	return rc;
}

/* For `mailferry plan`: what run will do, without writing (unless
 * plan_append_test): log in (a refused login fails here, classed as run
 * would class it), LIST, SELECT INBOX for write and leave it without
 * expunging, UID SEARCH by Message-ID (what the probe after a crash uses),
 * PERMANENTFLAGS (keywords kept?), and how folder names will be written. */
static int snk_check(const void *cfgp, const struct mf_unit *unit, struct mf_err *err)
{
	const struct snk_cfg *cfg = cfgp;
	struct imap_snk *s = NULL;
	struct mf_buf note = {0};
	uint32_t *uids = NULL;
	size_t n = 0;
	int rc;

	if ((rc = open_common(cfgp, unit, true, (void **)&s, err)) < 0)
		return rc;
	mf_buf_printf(&note, "logged in, %zu folders", s->ntf);
	if ((rc = mf_imap_select(s->im, "INBOX", true, err)) < 0) {
		mf_err_prefix(err, "SELECT INBOX (run appends into selected folders)");
		goto out;
	}
	if (!s->im->any_keyword)
		mf_buf_printf(&note, "; INBOX keeps %s%s (other keywords are dropped and logged)",
			      s->im->perm_keywords ? "only the keywords " : "no keywords",
			      s->im->perm_keywords ? s->im->perm_keywords : "");
	rc = mf_imap_uid_search(s->im, "<plan-check@mailferry.invalid>", 0, &uids, &n, err);
	free(uids);
	if (rc < 0 && mf_err_class(rc) == MF_CLASS_CONNECTION)
		goto out;
	if (rc < 0) {
		mf_buf_printf(&note, "; SEARCH HEADER Message-ID refused (%s): probes after a crash search by date and size instead",
			      err->msg);
		mf_err_clear(err);
	}
	if ((rc = mf_imap_unselect(s->im, err)) < 0) {
		mf_err_prefix(err, "leaving INBOX");
		goto out;
	}
	if (s->im->utf8)
		mf_buf_printf(&note, "; UTF8=ACCEPT: folder names are sent as UTF-8");
	else
		mf_buf_printf(&note, "; folder names in modified UTF-7: if the target refuses a name with characters outside the BMP (emoji), each such character is written as U+XXXX (e.g. U+1F600)");
	if (!(s->im->caps & MF_IMAP_CAP_UIDPLUS))
		mf_buf_printf(&note, "; no UIDPLUS: stored messages get no sink id");
	if (cfg->check_append)
		rc = append_test(s, &note, err);
out:
	if (rc == 0)
		mf_err_set(err, 0, "%s", note.data ? note.data : "");
	mf_buf_free(&note);
	snk_close(s);
	return rc;
}

const struct mf_sink_ops mf_sink_imap = {
	.name = "imap",
	.keys = snk_keys,
	.configure = snk_configure,
	.free_config = snk_free_config,
	.caps = snk_caps,
	.check = snk_check,
	.open = snk_open,
	.open_read = snk_open_read,
	.folder = snk_folder,
	.probe = snk_probe,
	.store = snk_store,
	.hashes = snk_hashes,
	.close = snk_close,
};
