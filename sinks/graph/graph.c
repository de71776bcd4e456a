/* graph.c - the graph sink: Microsoft 365 mailboxes through Microsoft Graph.
 * Role folders by well-known name, the others found or created under them
 * or the root (paging, ErrorFolderExists); messages by importMime (beta,
 * Mail-Advanced.ReadWrite.All; the path is decided once per job) or the
 * JSON path; probe by internetMessageId; check (plan) and open_read
 * (verify) read only. */
#include "graph.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "engine/log.h"
#include "engine/normalize/mime.h"
#include "sinks/http/json.h"

static const struct mf_conf_key g_keys[] = {
	{"graph_url", false, "Graph endpoint (default https://graph.microsoft.com)"},
	{"login_url", false, "token endpoint base (default https://login.microsoftonline.com)"},
	{"tenant", true, "tenant id or domain"},
	{"client_id", true, "application (client) id"},
	{"client_secret", false, "client secret (prefer client_secret_env or _file)"},
	{"client_secret_env", false, "environment variable holding the client secret"},
	{"client_secret_file", false, "file holding the client secret"},
	{"mode", false, "import-mime (default, beta importMime) | json (v1.0)"},
	{"mailbox_concurrency", false, "requests in flight per mailbox, 1..4 (default 4, Graph's limit)"},
	{"requests_per_10min", false, "requests per mailbox in any 10 minutes, 1..10000 (default 10000)"},
	{"upload_mb_per_5min", false, "MB uploaded per mailbox in any 5 minutes, 1..150 (default 150)"},
	{"max_message_mb", false,
	 "bigger messages are skipped before any byte is sent, 1..150 (default 35, Exchange Online's default limit)"},
	MF_HTTP_TLS_KEYS,
	{NULL, false, NULL},
};

static void g_free_config(void *p)
{
	struct g_cfg *c = p;
	if (!c)
		return;
	free(c->graph_url);
	free(c->login_url);
	free(c->tenant);
	free(c->client_id);
	mf_secret_free(c->secret);
	free(c->scope);
	if (c->path) {
		pthread_mutex_destroy(&c->path->mu);
		free(c->path);
	}
	free(c);
}

static char *trim_slash(const char *s)
{
	char *d = strdup(s);
	if (!d)
		return NULL;
	size_t l = strlen(d);
	while (l && d[l - 1] == '/')
		d[--l] = '\0';
	return d;
}

/* A pacing key: 1..max, where max is Graph's own limit (going above it
 * only collects 429s). */
static int pace_key(const struct mf_conf_section *sec, const char *key, uint64_t max,
		    const char *what, uint64_t *out, struct mf_err *err)
{
	int rc = mf_conf_uint(sec, key, 0, UINT64_MAX, max, out, err);
	if (rc == 0 && (*out < 1 || *out > max))
		rc = mf_conf_error(sec, key, err,
				   "%" PRIu64 " is out of range (1..%" PRIu64 "; Graph allows at most %" PRIu64
				   " %s per mailbox)",
				   *out, max, max, what);
	return rc;
}

static int g_configure(const struct mf_conf_section *sec, void **out, struct mf_err *err)
{
	static const char *const modes[] = {"import-mime", "json", NULL};
	int rc;
	struct g_cfg *c = calloc(1, sizeof(*c));
	if (!c)
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	uint64_t conc;
	if ((rc = mf_conf_enum(sec, "mode", modes, G_MODE_IMPORT, &c->mode, err)) < 0 ||
	    (rc = pace_key(sec, "mailbox_concurrency", G_MAX_CONCURRENCY, "concurrent requests",
			   &conc, err)) < 0 ||
	    (rc = pace_key(sec, "requests_per_10min", G_MAX_REQUESTS_10MIN,
			   "requests in 10 minutes", &c->requests_per_10min, err)) < 0 ||
	    (rc = pace_key(sec, "upload_mb_per_5min", G_MAX_UPLOAD_MB_5MIN,
			   "MB uploaded in 5 minutes", &c->upload_mb_per_5min, err)) < 0 ||
	    (rc = mf_conf_uint(sec, "max_message_mb", 1, G_MAX_MESSAGE / 1000000,
			       G_DEFAULT_MESSAGE_MB, &c->max_message_mb, err)) < 0)
		goto fail;
	c->concurrency = (unsigned)conc;
	if (!(c->path = calloc(1, sizeof(*c->path))))
		goto nomem;
	pthread_mutex_init(&c->path->mu, NULL);
	const char *gu = mf_conf_get(sec, "graph_url", "https://graph.microsoft.com");
	const char *lu = mf_conf_get(sec, "login_url", "https://login.microsoftonline.com");
	if (strncmp(gu, "https://", 8) != 0 && strncmp(gu, "http://", 7) != 0) {
		rc = mf_conf_error(sec, "graph_url", err, "not an http(s) URL");
		goto fail;
	}
	if (strncmp(lu, "https://", 8) != 0 && strncmp(lu, "http://", 7) != 0) {
		rc = mf_conf_error(sec, "login_url", err, "not an http(s) URL");
		goto fail;
	}
	c->graph_url = trim_slash(gu);
	c->login_url = trim_slash(lu);
	const char *tls_for[] = {c->graph_url, c->login_url};
	if ((rc = mf_http_tls_conf(sec, tls_for, 2, err)) < 0)
		goto fail;
	c->tenant = strdup(mf_conf_get(sec, "tenant", ""));
	c->client_id = strdup(mf_conf_get(sec, "client_id", ""));
	struct mf_buf sc = {0};
	/* The scope is the Graph resource's .default. */
	const char *host = strstr(c->graph_url ? c->graph_url : "", "://");
	if (mf_buf_printf(&sc, "%s/.default",
			  host && strncmp(c->graph_url, "http://127.", 11) != 0 ? c->graph_url
										: "https://graph.microsoft.com") < 0) {
		mf_buf_free(&sc);
		goto nomem;
	}
	c->scope = sc.data;
	if (!c->graph_url || !c->login_url || !c->tenant || !c->client_id)
		goto nomem;
	if ((rc = mf_conf_secret(sec, "client_secret", &c->secret, err)) < 0)
		goto fail;
	if (!c->secret) {
		rc = mf_conf_error(sec, NULL, err, "client_secret_env or client_secret_file is required");
		goto fail;
	}
	*out = c;
	return 0;
nomem:
	rc = mf_err_set(err, MF_ENOMEM, "out of memory");
fail:
	g_free_config(c);
	return rc;
}

static void g_caps(const void *cfg, struct mf_sink_caps *caps)
{
	const struct g_cfg *c = cfg;
	memset(caps, 0, sizeof(*caps));
	caps->crlf = true;
	caps->max_message_bytes = c->max_message_mb * 1000000;
	caps->needs_message_id = true;
	caps->needs_date = true;
	caps->ancestor_role = true; /* children of Sent go under sentitems */
}

/* ---- requests ---------------------------------------------------------- */

struct g_call {
	struct g_snk *s;
	const char *ctype;
	struct g_create *create;
};

int g_auth_headers(const struct g_cfg *cfg, char *token, size_t tsz, struct curl_slist **out,
		   struct mf_err *err)
{
	int rc = mf_oauth_token(cfg->login_url, cfg->tenant, cfg->client_id, cfg->secret, cfg->scope,
				token, tsz, err);
	if (rc < 0)
		return rc;
	struct mf_buf h = {0};
	struct curl_slist *l = NULL, *n;
	rc = MF_ENOMEM;
	if (mf_buf_printf(&h, "Authorization: Bearer %s", token) < 0 ||
	    !(n = curl_slist_append(l, h.data)))
		goto out;
	l = n;
	if (!(n = curl_slist_append(l, "Accept: application/json")))
		goto out;
	*out = n;
	l = NULL;
	rc = 0;
out:
	curl_slist_free_all(l);
	if (h.data)
		memset(h.data, 0, h.len);
	mf_buf_free(&h);
	return rc < 0 ? mf_err_set(err, rc, "out of memory") : 0;
}

static int g_prepare(void *arg, struct mf_http_req *req, struct mf_err *err)
{
	struct g_call *c = arg;
	struct g_snk *s = c->s;
	curl_slist_free_all(req->headers);
	req->headers = NULL;
	struct curl_slist *l = NULL, *n;
	char line[160];
	int rc = g_auth_headers(s->cfg, s->token, sizeof(s->token), &l, err);
	if (rc < 0)
		return rc;
	snprintf(line, sizeof(line), "Content-Type:%s%s", c->ctype ? " " : "", c->ctype ? c->ctype : "");
	if (!(n = curl_slist_append(l, line)))
		goto nomem;
	l = n;
	if (!(n = curl_slist_append(l, "Expect:")))
		goto nomem;
	l = n;
	if (c->create && c->create->item && c->create->item->idem) {
		/* a GUID-shaped id derived from the idempotency key */
		const char *i = c->create->item->idem;
		snprintf(line, sizeof(line), "client-request-id: %.8s-%.4s-%.4s-%.4s-%.12s", i, i + 8,
			 i + 12, i + 16, i + 20);
		if (strlen(i) >= 32) {
			if (!(n = curl_slist_append(l, line)))
				goto nomem;
			l = n;
		}
	}
	req->headers = l;
	return 0;
nomem:
	curl_slist_free_all(l);
	return mf_err_set(err, MF_ENOMEM, "out of memory");
}

static int g_reauth(void *arg, struct mf_http_req *req, struct mf_err *err)
{
	(void)req;
	(void)err;
	struct g_call *c = arg;
	const struct g_cfg *cfg = c->s->cfg;
	mf_log(MF_LOG_INFO, "event=graph_reauth mailbox=%s", c->s->mailbox);
	mf_oauth_invalidate(cfg->login_url, cfg->tenant, cfg->client_id, cfg->scope, c->s->token);
	return 0;
}

static int g_resolve(void *arg, struct mf_http_req *req, struct mf_err *err)
{
	(void)req;
	struct g_call *c = arg;
	return c->create->find(c->s, c->create, err);
}

int g_find_message(struct g_snk *s, struct g_create *c, struct mf_err *err)
{
	if (!c->item || !c->fid || !c->item->message_id)
		return 0;
	return g_lookup(s, c->fid, c->item, c->found, err);
}

int g_request(struct g_snk *s, struct mf_http_req *req, const char *method, const char *url,
	      const char *ctype, struct g_create *create, const long *ok, struct mf_err *err)
{
	struct g_call c = {.s = s, .ctype = ctype, .create = create};
	req->method = method;
	req->url = url;
	req->limit = s->limit;
	req->hooks.prepare = g_prepare;
	req->hooks.reauth = g_reauth;
	req->hooks.resolve = create && create->find ? g_resolve : NULL;
	req->hooks.arg = &c;
	req->create = create != NULL;
	return mf_http_send(req, ok, err);
}

static int user_url(struct g_snk *s, struct mf_buf *u, const char *ver, const char *rest)
{
	u->len = 0;
	return mf_buf_printf(u, "%s/%s/users/%s%s", s->cfg->graph_url, ver, s->mbx_esc, rest) < 0
		       ? MF_ENOMEM
		       : 0;
}

/* The item's Date header as Graph shows it in sentDateTime, to the second
 * ("YYYY-MM-DDTHH:MM:SS", UTC), or "" when there is none to read. */
static void item_sent(const struct mf_item *item, char out[24])
{
	const unsigned char *p = item->data;
	size_t scan = item->len < 262144 ? item->len : 262144, hlen = scan, fs, fe, vs, ve;
	const unsigned char *end = memmem(p, scan, "\r\n\r\n", 4);
	out[0] = '\0';
	if (end)
		hlen = (size_t)(end - p) + 2;
	if (!mf_mime_field(p, hlen, "Date", &fs, &fe, &vs, &ve))
		return;
	char d[256];
	size_t n = 0;
	for (size_t i = vs; i < ve && n + 1 < sizeof(d); i++)
		d[n++] = p[i] == '\r' || p[i] == '\n' ? ' ' : (char)p[i];
	d[n] = '\0';
	time_t t = curl_getdate(d, NULL);
	struct tm tm;
	if (t > 0 && gmtime_r(&t, &tm))
		snprintf(out, 24, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
			 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* Copy text with white space runs made one space and trimmed (subjects
 * compared as Exchange shows them: unfolded). */
static void squeeze(const char *in, size_t n, char *out, size_t outsz)
{
	size_t w = 0;
	bool sp = false;
	for (size_t i = 0; i < n && w + 1 < outsz; i++) {
		char c = in[i];
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			sp = w > 0;
			continue;
		}
		if (sp && w + 2 < outsz)
			out[w++] = ' ';
		sp = false;
		out[w++] = c;
	}
	out[w] = '\0';
}

/* The item's Subject as Graph shows it (encoded words decoded, unfolded),
 * into out ("" when none). */
static void item_subject(const struct mf_item *item, char *out, size_t outsz)
{
	const unsigned char *p = item->data;
	size_t scan = item->len < 262144 ? item->len : 262144, hlen = scan, fs, fe, vs, ve;
	const unsigned char *end = memmem(p, scan, "\r\n\r\n", 4);
	out[0] = '\0';
	if (end)
		hlen = (size_t)(end - p) + 2;
	if (!mf_mime_field(p, hlen, "Subject", &fs, &fe, &vs, &ve))
		return;
	struct mf_out o = {0};
	g_hdr_decode((const char *)p + vs, ve - vs, &o);
	if (!o.err && o.b.data)
		squeeze(o.b.data, o.b.len, out, outsz);
	mf_out_free(&o);
}

int g_lookup(struct g_snk *s, const char *fid, const struct mf_item *item, char id[G_ID_MAX],
	     struct mf_err *err)
{
	if (!item->message_id)
		return 0;
	struct mf_buf u = {0}, f = {0};
	struct mf_http_req req = {0};
	int rc = MF_ENOMEM;
	/* OData string literal: quotes doubled */
	if (mf_buf_addstr(&f, "internetMessageId eq '") < 0)
		goto out;
	for (const char *p = item->message_id; *p; p++)
		if (mf_buf_add(&f, p, 1) < 0 || (*p == '\'' && mf_buf_add(&f, "'", 1) < 0))
			goto out;
	if (mf_buf_addstr(&f, "'") < 0)
		goto out;
	if (user_url(s, &u, "v1.0", "/mailFolders/") < 0 ||
	    mf_http_escape(&u, fid, strlen(fid), false) < 0 ||
	    mf_buf_addstr(&u, "/messages?$select=id,sentDateTime,subject&$top=100&$filter=") < 0 ||
	    mf_http_escape(&u, f.data, f.len, false) < 0)
		goto out;
	rc = g_request(s, &req, "GET", u.data, NULL, NULL, NULL, err);
	if (rc < 0) {
		mf_err_prefix(err, "probe");
		goto out;
	}
	const char *js = req.resp.data, *je = js + req.resp.len, *ve, *ee;
	const char *v = mf_json_member(js, je, "value", &ve);
	rc = 0;
	/* One Message-ID may name different messages (broken mailers, edited
	 * copies): the hits sent at the item's Date are this one's copies.
	 * When none is, Exchange may have read the Date its own way: the hits
	 * with the item's subject are. Only when neither tells is it not
	 * there (the date chooses among hits; it does not hide the only one). */
	char want[24], sent[64], subj[1024], got[1024], raw[1024];
	item_sent(item, want);
	item_subject(item, subj, sizeof(subj));
	for (int pass = 0; pass < 2 && rc == 0; pass++) {
		unsigned n = 0;
		for (const char *e = v ? mf_json_array_first(v, ve, &ee) : NULL; e;
		     e = mf_json_array_next(ee, ve, &ee)) {
			bool date_ok = !want[0] ||
				       mf_json_get_str(e, ee, "sentDateTime", sent, sizeof(sent)) < 0 ||
				       strncmp(sent, want, 19) == 0;
			if (pass == 0 && !date_ok)
				continue;
			if (pass == 1) {
				if (mf_json_get_str(e, ee, "subject", raw, sizeof(raw)) < 0)
					raw[0] = '\0';
				squeeze(raw, strlen(raw), got, sizeof(got));
				if (strcmp(got, subj) != 0)
					continue;
			}
			if (n++ == item->dup) {
				if (mf_json_get_str(e, ee, "id", id, G_ID_MAX) == 0)
					rc = 1;
				break;
			}
		}
		if (pass == 0 && n > 0)
			break; /* dated copies exist: the (dup+1)-th is not there */
	}
out:
	mf_buf_free(&u);
	mf_buf_free(&f);
	mf_http_req_free(&req);
	return rc < 0 && rc != MF_ENOMEM ? rc : rc == MF_ENOMEM ? mf_err_set(err, rc, "out of memory") : rc;
}

/* ---- which path: importMime or JSON -------------------------------------- */

/* Decide the job's path (first caller wins; later calls keep it). */
static void set_path(const struct g_cfg *cfg, int mode, const char *why, const char *mailbox)
{
	struct g_path *p = cfg->path;
	pthread_mutex_lock(&p->mu);
	if (!p->decided || (p->mode == G_MODE_IMPORT && mode == G_MODE_JSON)) {
		bool change = p->decided;
		p->decided = 1;
		p->mode = mode;
		snprintf(p->why, sizeof(p->why), "%s", why);
		mf_log(change ? MF_LOG_WARN : MF_LOG_INFO, "event=graph_path mailbox=%s path=%s why=\"%s\"",
		       mailbox, mode == G_MODE_JSON ? "json" : "import-mime", why);
	}
	pthread_mutex_unlock(&p->mu);
}

static int get_path(const struct g_cfg *cfg, const char **why)
{
	struct g_path *p = cfg->path;
	pthread_mutex_lock(&p->mu);
	int mode = p->decided ? p->mode : -1;
	if (why)
		*why = p->why;
	pthread_mutex_unlock(&p->mu);
	return mode;
}

/* Graph's national clouds (US Government L4/L5, China/21Vianet): importMime
 * is a global-service-only beta action (see its "API availability"). */
static bool national_cloud(const char *url)
{
	static const char *const hosts[] = {"graph.microsoft.us", "dod-graph.microsoft.us",
					    "microsoftgraph.chinacloudapi.cn", NULL};
	const char *h = strstr(url, "://");
	h = h ? h + 3 : url;
	size_t hl = strcspn(h, "/:");
	for (size_t i = 0; hosts[i]; i++)
		if (hl == strlen(hosts[i]) && strncasecmp(h, hosts[i], hl) == 0)
			return true;
	return false;
}

/* Does the app-only token carry application role `role` (its "roles"
 * claim)? 1 yes, 0 no, -1 the token cannot be read (not a JWT). The token
 * is not verified: it only tells what the service will allow. */
static int token_has_role(const char *tok, const char *role)
{
	const char *a = strchr(tok, '.'), *b = a ? strchr(a + 1, '.') : NULL;
	if (!a || !b || b - a - 1 > 6000)
		return -1;
	char enc[6004];
	size_t n = 0;
	for (const char *p = a + 1; p < b; p++)
		enc[n++] = *p == '-' ? '+' : *p == '_' ? '/' : *p;
	while (n % 4)
		enc[n++] = '=';
	unsigned char js[4600];
	size_t got = 0;
	if (mf_http_unbase64(enc, n, js, sizeof(js) - 1, &got) < 0)
		return -1;
	const char *je, *ve, *ee;
	const char *start = (const char *)js;
	je = start + got;
	const char *v = mf_json_member(start, je, "roles", &ve);
	if (!v)
		return mf_json_member(start, je, "aud", &ee) ? 0 : -1;
	char r[128];
	for (const char *e = mf_json_array_first(v, ve, &ee); e; e = mf_json_array_next(ee, ve, &ee))
		if (mf_json_string(e, ee, r, sizeof(r)) == 0 && strcmp(r, role) == 0)
			return 1;
	return 0;
}

int g_job_path(struct g_snk *s, const char **why, struct mf_err *err)
{
	const struct g_cfg *cfg = s->cfg;
	int mode = get_path(cfg, why);
	if (mode >= 0)
		return mode;
	if (cfg->mode == G_MODE_JSON) {
		set_path(cfg, G_MODE_JSON, "mode = json", s->mailbox);
	} else if (national_cloud(cfg->graph_url)) {
		set_path(cfg, G_MODE_JSON,
			 "importMime is a beta action of the global service only; graph_url is a national cloud",
			 s->mailbox);
	} else {
		int rc = mf_oauth_token(cfg->login_url, cfg->tenant, cfg->client_id, cfg->secret,
					cfg->scope, s->token, sizeof(s->token), err);
		if (rc < 0)
			return rc;
		int has = token_has_role(s->token, "Mail-Advanced.ReadWrite.All");
		if (has == 0)
			set_path(cfg, G_MODE_JSON,
				 "the app's token lacks the Mail-Advanced.ReadWrite.All role importMime needs",
				 s->mailbox);
		else
			set_path(cfg, G_MODE_IMPORT,
				 has == 1 ? "the app has Mail-Advanced.ReadWrite.All; beta endpoint"
					  : "token roles unreadable; importMime tried, JSON on 403/404/400",
				 s->mailbox);
	}
	return get_path(cfg, why);
}

/* ---- folders ------------------------------------------------------------ */

static const char *role_name(enum mf_role r)
{
	switch (r) {
	case MF_ROLE_INBOX: return "inbox";
	case MF_ROLE_SENT: return "sentitems";
	case MF_ROLE_DRAFTS: return "drafts";
	case MF_ROLE_TRASH: return "deleteditems";
	case MF_ROLE_JUNK: return "junkemail";
	case MF_ROLE_ARCHIVE: return "archive";
	default: return NULL;
	}
}

/* The role of a top-level source folder by its name, for the first segment
 * of a deeper path (the engine gives the role of top-level folders only):
 * the names IMAP servers and PST files use for their special folders
 * (RFC 3501 makes INBOX the inbox in any case). */
static enum mf_role role_by_name(const char *n)
{
	static const struct {
		const char *name;
		enum mf_role role;
	} t[] = {
		{"INBOX", MF_ROLE_INBOX},          {"Sent", MF_ROLE_SENT},
		{"Sent Items", MF_ROLE_SENT},      {"Sent Messages", MF_ROLE_SENT},
		{"Sent Mail", MF_ROLE_SENT},       {"Drafts", MF_ROLE_DRAFTS},
		{"Trash", MF_ROLE_TRASH},          {"Deleted Items", MF_ROLE_TRASH},
		{"Deleted Messages", MF_ROLE_TRASH}, {"Junk", MF_ROLE_JUNK},
		{"Junk Email", MF_ROLE_JUNK},      {"Junk E-mail", MF_ROLE_JUNK},
		{"Spam", MF_ROLE_JUNK},            {"Archive", MF_ROLE_ARCHIVE},
		{"Archives", MF_ROLE_ARCHIVE},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (strcasecmp(n, t[i].name) == 0)
			return t[i].role;
	return MF_ROLE_NONE;
}

static struct g_folder *cache_find(struct g_snk *s, const char *key)
{
	for (struct g_folder *f = s->folders; f; f = f->next)
		if (strcmp(f->key, key) == 0)
			return f;
	return NULL;
}

static struct g_folder *cache_add(struct g_snk *s, const char *key, const char *id)
{
	struct g_folder *f = calloc(1, sizeof(*f));
	if (!f || !(f->key = strdup(key))) {
		free(f);
		return NULL;
	}
	snprintf(f->id, sizeof(f->id), "%s", id);
	f->next = s->folders;
	s->folders = f;
	return f;
}

int g_get_pages(struct g_snk *s, struct mf_buf *u,
		int (*page)(void *arg, const char *js, const char *je), void *arg,
		struct mf_err *err)
{
	int rc = 0;
	for (int n = 0; n < 1000000; n++) {
		struct mf_http_req req = {0};
		rc = g_request(s, &req, "GET", u->data, NULL, NULL, NULL, err);
		if (rc < 0) {
			mf_http_req_free(&req);
			return rc;
		}
		const char *js = req.resp.data, *je = js + req.resp.len;
		const char *ne;
		char next[4096] = "";
		rc = page(arg, js, je);
		if (rc == 0 && mf_json_member(js, je, "@odata.nextLink", &ne) &&
		    mf_json_get_str(js, je, "@odata.nextLink", next, sizeof(next)) < 0)
			rc = mf_err_set(err, MF_EPROTO, "unreadable or over-long @odata.nextLink");
		mf_http_req_free(&req);
		if (rc != 0 || !next[0])
			return rc;
		/* follow only links to the same service: the token goes with it */
		if (strncmp(next, s->cfg->graph_url, strlen(s->cfg->graph_url)) != 0)
			return mf_err_set(err, MF_EPROTO, "nextLink points outside %s",
					  s->cfg->graph_url);
		u->len = 0;
		if (mf_buf_addstr(u, next) < 0)
			return mf_err_set(err, MF_ENOMEM, "out of memory");
	}
	return mf_err_set(err, MF_EPROTO, "too many pages");
}

struct child_find {
	const char *name;
	char *id;
};

static int child_page(void *arg, const char *js, const char *je)
{
	struct child_find *c = arg;
	const char *ve, *ee;
	const char *v = mf_json_member(js, je, "value", &ve);
	char dn[1024];
	for (const char *e = v ? mf_json_array_first(v, ve, &ee) : NULL; e;
	     e = mf_json_array_next(ee, ve, &ee)) {
		if (mf_json_get_str(e, ee, "displayName", dn, sizeof(dn)) == 0 &&
		    strcasecmp(dn, c->name) == 0 &&
		    mf_json_get_str(e, ee, "id", c->id, G_ID_MAX) == 0)
			return 1;
	}
	return 0;
}

/* Look for a child named `name` under parent (all pages). 1 found, 0 not,
 * <0 error. */
static int find_child(struct g_snk *s, const char *parent, const char *name, char id[G_ID_MAX],
		      struct mf_err *err)
{
	struct mf_buf u = {0};
	struct child_find c = {.name = name, .id = id};
	int rc;
	if (user_url(s, &u, "v1.0", "/mailFolders/") < 0 ||
	    mf_http_escape(&u, parent, strlen(parent), false) < 0 ||
	    mf_buf_addstr(&u, "/childFolders?includeHiddenFolders=true") < 0)
		rc = mf_err_set(err, MF_ENOMEM, "out of memory");
	else
		rc = g_get_pages(s, &u, child_page, &c, err);
	mf_buf_free(&u);
	return rc;
}

static int create_child(struct g_snk *s, const char *parent, const char *name, char id[G_ID_MAX],
			struct mf_err *err)
{
	static const long ok[] = {400, 409, 0};
	struct mf_buf u = {0}, b = {0};
	struct mf_http_req req = {0};
	int rc = MF_ENOMEM;
	if (user_url(s, &u, "v1.0", "/mailFolders/") < 0 ||
	    mf_http_escape(&u, parent, strlen(parent), false) < 0 ||
	    mf_buf_addstr(&u, "/childFolders") < 0 || mf_buf_addstr(&b, "{\"displayName\":") < 0 ||
	    mf_json_quote(&b, name) < 0 || mf_buf_addstr(&b, ",\"isHidden\":false}") < 0) {
		rc = mf_err_set(err, MF_ENOMEM, "out of memory");
		goto out;
	}
	req.body = b.data;
	req.body_len = b.len;
	rc = g_request(s, &req, "POST", u.data, "application/json", NULL, ok, err);
	if (rc < 0)
		goto out;
	if (req.status == 400 || req.status == 409) {
		char code[128] = "";
		const char *js = req.resp.data, *je = js + req.resp.len, *ee;
		const char *e = mf_json_member(js, je, "error", &ee);
		if (e)
			mf_json_get_str(e, ee, "code", code, sizeof(code));
		if (strcmp(code, "ErrorFolderExists") == 0) {
			rc = find_child(s, parent, name, id, err);
			if (rc == 0)
				rc = mf_err_set(err, MF_EFOLDER,
						"folder '%s' exists but cannot be found (hidden or search folder?)",
						name);
			goto out;
		}
		rc = mf_http_fail(&req, MF_EFOLDER, err, "create folder");
		goto out;
	}
	if (mf_json_get_str(req.resp.data, req.resp.data + req.resp.len, "id", id, G_ID_MAX) < 0) {
		rc = mf_http_fail(&req, MF_EPROTO, err, "create folder: no id");
		goto out;
	}
	mf_log(MF_LOG_INFO, "event=graph_folder_created mailbox=%s", s->mailbox);
	rc = 0;
out:
	mf_buf_free(&u);
	mf_buf_free(&b);
	mf_http_req_free(&req);
	return rc;
}

/* Role folders are addressed by their well-known names (inbox, sentitems,
 * ...), never by display name, so that placement does not depend on the
 * mailbox's language ("Posteingang", "Gesendete Elemente"); their children
 * are looked up and made under them. Other folders hang from
 * msgfolderroot. With `create` false (open_read) a missing folder is
 * MF_ENOTFOUND and nothing is made. */
static int g_folder(void *snk, const struct mf_path *path, enum mf_role role, void **fh,
		    struct mf_err *err)
{
	struct g_snk *s = snk;
	const char *wk = role_name(role); /* for a deeper path: its top-level folder's */
	struct g_folder *f;
	char key[512];
	/* a top-level folder's children follow it into the role folder its
	 * name gives it (and so does the folder itself, to stay with them) */
	if (!wk && path->n >= 1)
		wk = role_name(role_by_name(path->seg[0]));
	if (wk && path->n <= 1) {
		snprintf(key, sizeof(key), "role:%s", wk);
		if (!(f = cache_find(s, key)) && !(f = cache_add(s, key, wk)))
			return mf_err_set(err, MF_ENOMEM, "out of memory");
		*fh = f;
		return 0;
	}
	if (path->n == 0)
		return mf_err_set(err, MF_EFOLDER, "empty folder path");
	char parent[G_ID_MAX] = "msgfolderroot";
	struct mf_path pre;
	mf_path_init(&pre);
	int rc = 0;
	f = NULL;
	size_t first = 0;
	if (wk) {
		/* the first segment is the role folder: walk from it */
		snprintf(parent, sizeof(parent), "%s", wk);
		if (mf_path_push(&pre, path->seg[0], strlen(path->seg[0])) < 0) {
			mf_path_free(&pre);
			return mf_err_set(err, MF_ENOMEM, "out of memory");
		}
		first = 1;
	}
	for (size_t i = first; i < path->n; i++) {
		if (mf_path_push(&pre, path->seg[i], strlen(path->seg[i])) < 0) {
			rc = mf_err_set(err, MF_ENOMEM, "out of memory");
			break;
		}
		char *k = mf_path_key(&pre);
		if (!k) {
			rc = mf_err_set(err, MF_ENOMEM, "out of memory");
			break;
		}
		f = cache_find(s, k);
		if (!f) {
			char id[G_ID_MAX];
			rc = find_child(s, parent, path->seg[i], id, err);
			if (rc == 0 && s->read_only)
				rc = mf_err_set(err, MF_ENOTFOUND, "no such folder");
			else if (rc == 0)
				rc = create_child(s, parent, path->seg[i], id, err);
			if (rc >= 0 && !(f = cache_add(s, k, id)))
				rc = mf_err_set(err, MF_ENOMEM, "out of memory");
		}
		free(k);
		if (rc < 0) {
			if (rc == MF_EMSG || (rc == MF_ENOTFOUND && !s->read_only))
				err->code = rc = MF_EFOLDER;
			mf_err_prefix(err, "folder '%s'", path->seg[i]);
			break;
		}
		snprintf(parent, sizeof(parent), "%s", f->id);
	}
	mf_path_free(&pre);
	if (rc < 0)
		return rc;
	*fh = f;
	return 0;
}

/* ---- messages ----------------------------------------------------------- */

static int patch_flags(struct g_snk *s, const char *id, unsigned flags, struct mf_err *err)
{
	if (!(flags & (MF_FLAG_SEEN | MF_FLAG_FLAGGED)))
		return 0;
	struct mf_buf u = {0}, b = {0};
	struct mf_http_req req = {0};
	int rc;
	if (user_url(s, &u, "v1.0", "/messages/") < 0 || mf_http_escape(&u, id, strlen(id), false) < 0 ||
	    mf_buf_printf(&b, "{\"isRead\":%s,\"flag\":{\"flagStatus\":\"%s\"}}",
			  flags & MF_FLAG_SEEN ? "true" : "false",
			  flags & MF_FLAG_FLAGGED ? "flagged" : "notFlagged") < 0) {
		rc = mf_err_set(err, MF_ENOMEM, "out of memory");
		goto out;
	}
	req.body = b.data;
	req.body_len = b.len;
	rc = g_request(s, &req, "PATCH", u.data, "application/json", NULL, NULL, err);
	if (rc < 0)
		mf_err_prefix(err, "set read/flag state");
out:
	mf_buf_free(&u);
	mf_buf_free(&b);
	mf_http_req_free(&req);
	return rc;
}

static int import_mime(struct g_snk *s, const char *fid, const struct mf_item *item,
		       char id[G_ID_MAX], struct mf_err *err)
{
	static const long ok[] = {400, 403, 404, 413, 0};
	struct mf_buf u = {0}, b = {0};
	struct mf_http_req req = {0};
	struct g_create cr = {.find = g_find_message, .item = item, .fid = fid};
	int rc;
	if (user_url(s, &u, "beta", "/mailFolders/") < 0 ||
	    mf_http_escape(&u, fid, strlen(fid), false) < 0 || mf_buf_addstr(&u, "/importMime") < 0 ||
	    mf_http_base64(&b, item->data, item->len) < 0) {
		rc = mf_err_set(err, MF_ENOMEM, "out of memory");
		goto out;
	}
	req.body = b.data;
	req.body_len = b.len;
	req.timeout_ms = 300000;
	rc = g_request(s, &req, "POST", u.data, "text/plain", &cr, ok, err);
	if (rc < 0)
		goto out;
	if (req.status == 413) {
		rc = 1; /* too big for this endpoint: the caller goes the JSON way */
		goto out;
	}
	if (req.status == 400 || req.status == 403 || req.status == 404) {
		char code[128] = "", msg[256] = "", why[200];
		const char *js = req.resp.data, *je = js + req.resp.len, *ee;
		const char *e = js ? mf_json_member(js, je, "error", &ee) : NULL;
		if (e) {
			mf_json_get_str(e, ee, "code", code, sizeof(code));
			mf_json_get_str(e, ee, "message", msg, sizeof(msg));
		}
		if (req.status == 404 && strcmp(code, "ErrorItemNotFound") == 0) {
			rc = mf_http_fail(&req, MF_EFOLDER, err, "importMime");
			goto out;
		}
		/* 403: the app lacks Mail-Advanced.ReadWrite.All; 404 or a 400
		 * about the URL: no importMime on this endpoint. Either holds
		 * for the whole job. Another 400 is about this message: it alone
		 * goes the JSON way. */
		bool job = req.status != 400 || strncmp(code, "ErrorMime", 9) != 0;
		snprintf(why, sizeof(why), "importMime answered %ld %s", req.status, code[0] ? code : "-");
		if (job)
			set_path(s->cfg, G_MODE_JSON, why, s->mailbox);
		else
			mf_log(MF_LOG_INFO, "event=graph_json_fallback mailbox=%s size=%zu reason=\"%s\"",
			       s->mailbox, item->len, why);
		rc = 2;
		goto out;
	}
	if (req.resolved) {
		snprintf(id, G_ID_MAX, "%s", cr.found);
	} else if (mf_json_get_str(req.resp.data, req.resp.data + req.resp.len, "id", id, G_ID_MAX) < 0) {
		rc = mf_http_fail(&req, MF_EPROTO, err, "importMime: no id in the answer");
		goto out;
	}
	rc = patch_flags(s, id, item->flags, err);
out:
	mf_buf_free(&u);
	mf_buf_free(&b);
	mf_http_req_free(&req);
	return rc;
}

bool g_goes_json(const struct g_snk *s, const struct mf_item *item)
{
	/* importMime makes every message a non-draft: drafts go the JSON way,
	 * which keeps them drafts */
	return s->cfg->mode == G_MODE_JSON || get_path(s->cfg, NULL) == G_MODE_JSON ||
	       (item->flags & MF_FLAG_DRAFT) || (item->len + 2) / 3 * 4 > G_MAX_REQUEST;
}

static int g_store(void *snk, void *fh, const struct mf_item *item, char sink_id[MF_SINK_ID_MAX],
		   struct mf_err *err)
{
	struct g_snk *s = snk;
	struct g_folder *f = fh;
	char id[G_ID_MAX] = "";
	int rc;
	/* refused before any byte is sent: Exchange would take the attachments
	 * and then refuse the message */
	if (item->len > s->cfg->max_message_mb * 1000000)
		return mf_err_set(err, MF_ETOOBIG,
				  "message of %zu bytes is over max_message_mb (%" PRIu64
				  " MB; Exchange Online's default message size limit is 35 MB)",
				  item->len, s->cfg->max_message_mb);
	if ((rc = g_job_path(s, NULL, err)) < 0)
		return rc;
	if (!g_goes_json(s, item)) {
		rc = import_mime(s, f->id, item, id, err);
		if (rc == 1)
			mf_log(MF_LOG_INFO, "event=graph_json_fallback mailbox=%s size=%zu reason=413",
			       s->mailbox, item->len);
		if (rc == 1 || rc == 2)
			rc = g_store_json(s, f->id, item, id, err);
	} else {
		if (get_path(s->cfg, NULL) == G_MODE_IMPORT)
			mf_log(MF_LOG_INFO, "event=graph_json_fallback mailbox=%s size=%zu reason=over-4MB",
			       s->mailbox, item->len);
		rc = g_store_json(s, f->id, item, id, err);
	}
	if (rc < 0)
		return rc;
	snprintf(sink_id, MF_SINK_ID_MAX, "%s", id);
	return 0;
}

static int g_probe(void *snk, void *fh, const struct mf_item *item, char sink_id[MF_SINK_ID_MAX],
		   struct mf_err *err)
{
	struct g_snk *s = snk;
	struct g_folder *f = fh;
	char id[G_ID_MAX];
	/* which path made it decides what "whole" means: decide it first */
	int rc = g_job_path(s, NULL, err);
	if (rc >= 0)
		rc = g_lookup(s, f->id, item, id, err);
	/* a JSON-made message is whole only with all its attachments */
	if (rc == 1 && g_goes_json(s, item))
		rc = g_json_check_whole(s, item, id, err);
	/* an import answered but not yet PATCHed when a run died has the
	 * default read/flag state: set it again (idempotent) */
	if (rc == 1 && !g_goes_json(s, item) && patch_flags(s, id, item->flags, err) < 0)
		rc = err->code;
	if (rc == 1)
		snprintf(sink_id, MF_SINK_ID_MAX, "%s", id);
	return rc;
}

/* ---- verify: Message-IDs of a folder ------------------------------------- */

/* The longest internetMessageId read from a listing (a longer one fails the
 * listing: RFC 5322 caps header lines at 998 bytes). */
#define G_MSGID_MAX 1000

struct id_list {
	int (*cb)(void *arg, const char *message_id);
	void *arg;
	struct mf_err *err;
};

static int id_page(void *arg, const char *js, const char *je)
{
	struct id_list *l = arg;
	const char *ve, *ee, *me;
	const char *v = mf_json_member(js, je, "value", &ve);
	if (!v)
		return mf_err_set(l->err, MF_EPROTO, "list messages: no value array in the answer");
	for (const char *e = mf_json_array_first(v, ve, &ee); e;
	     e = mf_json_array_next(ee, ve, &ee)) {
		char raw[G_MSGID_MAX], id[G_MSGID_MAX];
		const char *m = mf_json_member(e, ee, "internetMessageId", &me);
		raw[0] = '\0';
		/* absent or null: a message without a Message-ID */
		if (m && *m == '"' && mf_json_string(m, me, raw, sizeof(raw)) < 0)
			return mf_err_set(l->err, MF_EPROTO,
					  "list messages: unreadable internetMessageId");
		/* as mf_header_message_id gives it: no whitespace */
		size_t w = 0;
		for (const char *p = raw; *p; p++)
			if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
				id[w++] = *p;
		id[w] = '\0';
		int rc = l->cb(l->arg, id);
		if (rc < 0)
			return mf_err_set(l->err, rc, "list messages: stopped (%s)",
					  mf_err_name(rc));
	}
	return 0;
}

static int g_message_ids(void *snk, void *fh, int (*cb)(void *arg, const char *message_id),
			 void *arg, struct mf_err *err)
{
	struct g_snk *s = snk;
	struct g_folder *f = fh;
	struct mf_buf u = {0};
	struct id_list l = {.cb = cb, .arg = arg, .err = err};
	int rc;
	if (user_url(s, &u, "v1.0", "/mailFolders/") < 0 ||
	    mf_http_escape(&u, f->id, strlen(f->id), false) < 0 ||
	    mf_buf_addstr(&u, "/messages?$select=internetMessageId&$top=" G_LIST_TOP) < 0)
		rc = mf_err_set(err, MF_ENOMEM, "out of memory");
	else
		rc = g_get_pages(s, &u, id_page, &l, err);
	mf_buf_free(&u);
	return rc;
}

static int g_open(const void *cfg, const struct mf_unit *unit, void **out, struct mf_err *err)
{
	struct g_snk *s = calloc(1, sizeof(*s));
	struct mf_buf e = {0}, key = {0};
	if (!s)
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	s->cfg = cfg;
	if (!unit->mailbox || !unit->mailbox[0]) {
		free(s);
		return mf_err_set(err, MF_EMAILBOX, "no target mailbox in the manifest row");
	}
	s->mailbox = strdup(unit->mailbox);
	if (!s->mailbox || mf_http_escape(&e, unit->mailbox, strlen(unit->mailbox), false) < 0 ||
	    mf_buf_printf(&key, "graph:%s", unit->mailbox) < 0)
		goto nomem;
	s->mbx_esc = e.data;
	/* Outlook's per app+mailbox limits (4 concurrent, 10,000 requests per
	 * 10 minutes, 150 MB uploaded per 5 minutes) or less, as configured.
	 * The limit is made by the first open of the mailbox in the process
	 * and shared by every later one (one job, one configuration). */
	s->limit = mf_http_limit_get(key.data, s->cfg->concurrency, s->cfg->requests_per_10min,
				     600000, s->cfg->upload_mb_per_5min * 1000000, 300000);
	mf_buf_free(&key);
	if (!s->limit)
		goto nomem2;
	mf_http_acquire();
	*out = s;
	return 0;
nomem:
	mf_buf_free(&key);
	mf_buf_free(&e);
nomem2:
	free(s->mbx_esc);
	free(s->mailbox);
	free(s);
	return mf_err_set(err, MF_ENOMEM, "out of memory");
}

/* GET a well-known folder: its displayName into dn (""), 0 / MF_ENOTFOUND
 * (no such mailbox or folder) / < 0. */
static int get_well_known(struct g_snk *s, const char *wk, char *dn, size_t dnsz,
			  struct mf_err *err)
{
	struct mf_buf u = {0};
	struct mf_http_req req = {0};
	int rc;
	dn[0] = '\0';
	if (user_url(s, &u, "v1.0", "/mailFolders/") < 0 || mf_buf_addstr(&u, wk) < 0 ||
	    mf_buf_addstr(&u, "?$select=id,displayName") < 0)
		rc = mf_err_set(err, MF_ENOMEM, "out of memory");
	else
		rc = g_request(s, &req, "GET", u.data, NULL, NULL, NULL, err);
	if (rc == 0)
		mf_json_get_str(req.resp.data, req.resp.data + req.resp.len, "displayName", dn, dnsz);
	mf_buf_free(&u);
	mf_http_req_free(&req);
	return rc;
}

static void g_close(void *snk);

static int g_open_read(const void *cfg, const struct mf_unit *unit, void **out, struct mf_err *err)
{
	int rc = g_open(cfg, unit, out, err);
	if (rc < 0)
		return rc;
	struct g_snk *s = *out;
	char dn[256];
	s->read_only = true;
	/* the mailbox is there when its inbox is */
	if ((rc = get_well_known(s, "inbox", dn, sizeof(dn), err)) < 0) {
		mf_err_prefix(err, "mailbox %s", unit->mailbox);
		g_close(s);
		*out = NULL;
	}
	return rc;
}

/* For plan: log in, decide the path, show where the role folders are. */
static int g_check(const void *cfg, const struct mf_unit *unit, struct mf_err *err)
{
	void *p = NULL;
	int rc = g_open_read(cfg, unit, &p, err);
	if (rc < 0)
		return rc;
	struct g_snk *s = p;
	const char *why = "";
	struct mf_buf n = {0};
	if ((rc = g_job_path(s, &why, err)) < 0)
		goto out;
	mf_buf_printf(&n, "%s (%s); needs %s. Role folders by well-known name:",
		      rc == G_MODE_IMPORT ? "path importMime (beta), JSON on 403/404/400"
					  : "path JSON (v1.0)",
		      why, rc == G_MODE_IMPORT ? "Mail-Advanced.ReadWrite.All + Mail.ReadWrite"
					       : "Mail.ReadWrite");
	for (int r = MF_ROLE_INBOX; r <= MF_ROLE_ARCHIVE; r++) {
		char dn[128];
		const char *wk = role_name((enum mf_role)r);
		rc = get_well_known(s, wk, dn, sizeof(dn), err);
		if (rc == MF_ENOTFOUND) {
			snprintf(dn, sizeof(dn), "(none)");
			rc = 0;
		}
		if (rc < 0)
			goto out;
		mf_buf_printf(&n, " %s=%s", wk, dn);
	}
	mf_err_clear(err);
	snprintf(err->msg, sizeof(err->msg), "%s", n.data ? n.data : "");
	rc = 0;
out:
	mf_buf_free(&n);
	g_close(s);
	return rc;
}

static void g_close(void *snk)
{
	struct g_snk *s = snk;
	if (!s)
		return;
	while (s->folders) {
		struct g_folder *n = s->folders->next;
		free(s->folders->key);
		free(s->folders);
		s->folders = n;
	}
	memset(s->token, 0, sizeof(s->token));
	free(s->mailbox);
	free(s->mbx_esc);
	free(s);
	mf_http_release();
}

const struct mf_sink_ops mf_sink_graph = {
	.name = "graph",
	.keys = g_keys,
	.configure = g_configure,
	.free_config = g_free_config,
	.caps = g_caps,
	.check = g_check,
	.open = g_open,
	.open_read = g_open_read,
	.folder = g_folder,
	.probe = g_probe,
	.store = g_store,
	.hashes = NULL, /* Exchange rewrites MIME on import: no content hash */
	.message_ids = g_message_ids,
	.close = g_close,
};
