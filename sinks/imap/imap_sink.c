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
	uint64_t max_bytes;
	uint64_t max_line;
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
	struct mf_imap *im;
	struct mf_imap_folder *tf; /* the target's folders */
	size_t ntf;
	struct snk_folder **fh;
	size_t nfh;
	bool ro; /* opened by open_read: finds folders, creates nothing */
};

static const struct mf_conf_key snk_keys[] = {
	MF_IMAP_CONF_KEYS,
	{"password", false, "target password (or password_env / password_file); a TargetPassword column wins"},
	{"password_env", false, "environment variable holding the target password"},
	{"password_file", false, "file whose first line is the target password"},
	{"admin_user", false, "log in as this user on behalf of each mailbox (SASL PLAIN authzid)"},
	{"max_message_mb", false, "larger messages are skipped and reported (default 150)"},
	{"max_line", false, "longest line the target accepts, 0 = no limit (default 0)"},
	{"plan_append_test", false, "plan: APPEND a test message into a scratch folder \"" CHECK_FOLDER "\", then delete that folder (default no)"},
	{NULL, false, NULL},
};

static int snk_configure(const struct mf_conf_section *sec, void **cfgp, struct mf_err *err)
{
	struct snk_cfg *c = calloc(1, sizeof(*c));
	uint64_t mb = 150;
	const char *admin;
	int rc;

	if (!c)
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	if ((rc = mf_imap_conf_parse(sec, &c->ic, err)) < 0 ||
	    (rc = mf_conf_uint(sec, "max_message_mb", 1, 1 << 20, 150, &mb, err)) < 0 ||
	    (rc = mf_conf_uint(sec, "max_line", 0, UINT32_MAX, 0, &c->max_line, err)) < 0 ||
	    (rc = mf_conf_secret(sec, "password", &c->password, err)) < 0 ||
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
	*cfgp = c;
	return 0;
fail:
	mf_imap_conf_free(&c->ic);
	mf_secret_free(c->password);
	free(c->admin_user);
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
	free(c);
}

static void snk_caps(const void *cfgp, struct mf_sink_caps *caps)
{
	const struct snk_cfg *c = cfgp;
	memset(caps, 0, sizeof(*caps));
	caps->crlf = true;
	caps->max_line = (size_t)c->max_line;
	caps->max_message_bytes = c->max_bytes;
}

static void snk_close(void *p)
{
	struct imap_snk *s = p;
	size_t i;
	if (!s)
		return;
	mf_imap_close(s->im);
	mf_imap_folders_free(s->tf, s->ntf);
	for (i = 0; i < s->nfh; i++) {
		free(s->fh[i]->wire);
		free(s->fh[i]->perm_keywords);
		free(s->fh[i]);
	}
	free(s->fh);
	free(s);
}

static int open_common(const void *cfgp, const struct mf_unit *unit, bool ro, void **out,
		       struct mf_err *err)
{
	struct snk_cfg *cfg = (struct snk_cfg *)cfgp;
	const char *pw = unit->target_password ? unit->target_password : cfg->password;
	const char *login = cfg->admin_user ? cfg->admin_user : unit->mailbox;
	struct imap_snk *s;
	int rc;

	if (!unit->mailbox || !*unit->mailbox)
		return mf_err_set(err, MF_ECONFIG, "manifest row %d: no target mailbox", unit->line);
	if (!pw && cfg->ic.auth != MF_IMAP_AUTH_XOAUTH2)
		return mf_err_set(err, MF_ECONFIG,
				  "no target password: set password, password_env or password_file in [sink], or a TargetPassword column");
	if (!(s = calloc(1, sizeof(*s))))
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	s->cfg = cfg;
	s->unit = unit;
	s->ro = ro;
	rc = mf_imap_open(&cfg->ic, login, cfg->admin_user ? unit->mailbox : NULL, pw ? pw : "",
			  &s->im, err);
	if (rc < 0) {
		mf_err_prefix(err, "target %s:%u mailbox %s", cfg->ic.host, (unsigned)cfg->ic.port,
			      unit->mailbox);
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
 * modified UTF-7; with `map_astral`, characters outside the BMP become
 * "U+XXXX" first (the documented rule above). */
static int encode_seg(struct imap_snk *s, const char *seg, bool map_astral, struct mf_buf *out)
{
	struct mf_buf m = {0};
	const unsigned char *p = (const unsigned char *)seg;
	int rc = 0;

	if (map_astral) {
		while (*p && rc == 0) {
			if (*p >= 0xf0 && p[1] && p[2] && p[3]) {
				uint32_t cp = (uint32_t)(p[0] & 0x07) << 18 | (uint32_t)(p[1] & 0x3f) << 12 |
					      (uint32_t)(p[2] & 0x3f) << 6 | (p[3] & 0x3f);
				rc = mf_buf_printf(&m, "U+%04" PRIX32, cp);
				p += 4;
			} else {
				rc = mf_buf_add(&m, p, 1);
				p++;
			}
		}
		if (rc == 0)
			rc = mf_buf_add(&m, "", 1);
		if (rc < 0) {
			mf_buf_free(&m);
			return rc;
		}
		seg = m.data;
	}
	if (s->im->utf8)
		rc = mf_buf_addstr(out, seg);
	else
		rc = mf_imap_utf7_encode(seg, strlen(seg), out);
	mf_buf_free(&m);
	return rc;
}

static bool has_astral(const struct mf_path *path, size_t upto)
{
	for (size_t i = 0; i < upto; i++)
		for (const unsigned char *p = (const unsigned char *)path->seg[i]; *p; p++)
			if (*p >= 0xf0)
				return true;
	return false;
}

/* The wire name for a target path: namespace prefix, segments in modified
 * UTF-7 joined with the target's delimiter (a delimiter inside a segment
 * becomes '_'). */
static int wire_name2(struct imap_snk *s, const struct mf_path *path, size_t upto,
		      bool map_astral, struct mf_buf *out)
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
		if (rc == 0 && i == 0 && !strcasecmp(path->seg[0], "INBOX"))
			rc = mf_buf_addstr(&seg, "INBOX");
		else if (rc == 0)
			rc = encode_seg(s, path->seg[i], map_astral, &seg);
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
	return wire_name2(s, path, upto, false, out);
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
static int create_path(struct imap_snk *s, const struct mf_path *path, bool map_astral,
		       struct mf_err *err)
{
	int rc = 0;
	for (size_t k = 1; k <= path->n && rc == 0; k++) {
		struct mf_buf pw = {0};
		if (wire_name2(s, path, k, map_astral, &pw) < 0) {
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
		bool astral = !s->im->utf8 && has_astral(path, path->n);
		if (wire_name(s, path, path->n, &w) < 0 ||
		    (astral && wire_name2(s, path, path->n, true, &m) < 0)) {
			rc = mf_err_set(err, MF_ENOMEM, "out of memory");
			goto out;
		}
		if (find_wire(s, w.data))
			target = w.data;
		else if (astral && find_wire(s, m.data))
			target = m.data; /* renamed by an earlier run */
		else if (s->ro) {
			rc = mf_err_set(err, MF_ENOTFOUND, "target folder %s does not exist", w.data);
			goto out;
		} else if ((rc = create_path(s, path, false, err)) == 0) {
			target = w.data;
		} else if (astral && mf_err_class(rc) == MF_CLASS_FOLDER) {
			struct mf_err first = *err;
			mf_err_clear(err);
			if ((rc = create_path(s, path, true, err)) < 0) {
				*err = first;
				rc = first.code;
				goto out;
			}
			target = m.data;
			mf_log(MF_LOG_WARN,
			       "event=folder_renamed mailbox=%s folder=%s as=%s reason=\"the target refused characters outside the BMP and offers no UTF8=ACCEPT; each is written as U+XXXX\"",
			       s->unit->mailbox, w.data, m.data);
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
	if (memcmp(h, pa->item->sha256, MF_SHA256_LEN) == 0) {
		/* the n-th identical copy in the source is the n-th here */
		if (pa->matches == pa->item->dup)
			pa->match_uid = m->uid;
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
