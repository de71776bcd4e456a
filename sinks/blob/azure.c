/* azure.c - the azure-blob sink, over Shared Key or a SAS, through the
 * shared HTTP core. Two modes:
 *   upload = messages: each message a block blob
 *     {mailbox}/{folder}/{sha256}[-N].eml, created with If-None-Match: *;
 *   upload = pst-files: each manifest PST whole, in blocks, resumable, then
 *     the PST Import mapping CSV next to the files (see azure_pst.h). */
#include <errno.h>
#include <fcntl.h>
#include <nettle/hmac.h>
#include <nettle/sha2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "azure_pst.h"
#include "blob.h"
#include "engine/fault.h"
#include "engine/log.h"
#include "engine/sink.h"
#include "sinks/http/http.h"

#define AZ_VERSION "2025-11-05"

enum { UPLOAD_MESSAGES = 0, UPLOAD_PST = 1 };

/* pst-files: a PST blob this process uploaded (for the mapping CSV when the
 * credential may not list the container). */
struct az_row {
	char *name; /* blob name */
	char *mailbox, *root; /* raw (not escaped) */
	bool archive;
	struct az_row *next;
};

/* Mutable state shared by every sink opened from one configuration (all
 * worker threads): the CSV is rewritten under `lock`, so that the last
 * writer lists after every upload before it committed. */
struct az_shared {
	pthread_mutex_t lock;
	struct az_row *rows;
	bool warned_read; /* "cannot read" warned once */
};

struct az_cfg {
	char *base;      /* scheme://host[:port] */
	char *container; /* URL path of the container, escaped: "/acct/c" or "/c" */
	char *sub;       /* name prefix inside the container ("" or "x/y/") */
	char *account;
	unsigned char *key; /* decoded account key (secret), or NULL */
	size_t key_len;
	char *sas; /* SAS query (secret), or NULL */
	char sv[16]; /* service version: the SAS's sv, or AZ_VERSION */
	int upload;
	struct az_shared *shared; /* pst-files only */
};

struct az_snk {
	const struct az_cfg *cfg;
	const struct mf_unit *unit; /* borrowed: outlives the sink */
	char *mailbox;
	struct mf_blob_folder *folders;
	bool readonly; /* opened by open_read: probe deletes nothing, store refuses */
};

static const struct mf_conf_key az_keys[] = {
	{"url", true, "container URL: https://ACCOUNT.blob.core.windows.net/CONTAINER[/prefix]"},
	{"account", false, "storage account name (Shared Key)"},
	{"key", false, "account key (prefer key_env or key_file)"},
	{"key_env", false, "environment variable holding the account key"},
	{"key_file", false, "file holding the account key"},
	{"sas", false, "SAS query string (prefer sas_env or sas_file)"},
	{"sas_env", false, "environment variable holding a SAS"},
	{"sas_file", false, "file holding a SAS"},
	{"upload", false, "messages (default) | pst-files"},
	MF_HTTP_TLS_KEYS,
	{NULL, false, NULL},
};

static void az_free_config(void *p)
{
	struct az_cfg *c = p;
	if (!c)
		return;
	free(c->base);
	free(c->container);
	free(c->sub);
	free(c->account);
	if (c->key) {
		memset(c->key, 0, c->key_len);
		free(c->key);
	}
	mf_secret_free(c->sas);
	if (c->shared) {
		pthread_mutex_destroy(&c->shared->lock);
		while (c->shared->rows) {
			struct az_row *n = c->shared->rows->next;
			free(c->shared->rows->name);
			free(c->shared->rows->mailbox);
			free(c->shared->rows->root);
			free(c->shared->rows);
			c->shared->rows = n;
		}
		free(c->shared);
	}
	free(c);
}

/* The value of query parameter `name` in a SAS into out ("" if absent). */
static void sas_param(const char *sas, const char *name, char *out, size_t outsz)
{
	size_t nl = strlen(name);
	out[0] = '\0';
	for (const char *p = sas; p && *p;) {
		size_t l = strcspn(p, "&");
		if (l > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
			size_t vl = l - nl - 1;
			if (vl >= outsz)
				vl = outsz - 1;
			memcpy(out, p + nl + 1, vl);
			out[vl] = '\0';
			return;
		}
		p += l;
		if (*p == '&')
			p++;
	}
}

static int az_configure(const struct mf_conf_section *sec, void **out, struct mf_err *err)
{
	static const char *const modes[] = {"messages", "pst-files", NULL};
	int rc;
	char *key = NULL;
	struct mf_buf cont = {0}, sub = {0};
	struct az_cfg *c = calloc(1, sizeof(*c));
	if (!c)
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	if ((rc = mf_conf_enum(sec, "upload", modes, UPLOAD_MESSAGES, &c->upload, err)) < 0)
		goto fail;
	if (c->upload == UPLOAD_PST) {
		c->shared = calloc(1, sizeof(*c->shared));
		if (!c->shared)
			goto nomem;
		if (pthread_mutex_init(&c->shared->lock, NULL) != 0) {
			free(c->shared);
			c->shared = NULL;
			goto nomem;
		}
	}
	const char *url = mf_conf_get(sec, "url", "");
	const char *hs = strstr(url, "://");
	if (!hs || (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)) {
		rc = mf_conf_error(sec, "url", err, "not an http(s) URL");
		goto fail;
	}
	const char *ps = strchr(hs + 3, '/');
	if (!ps || !ps[1] || strchr(url, '?')) {
		rc = mf_conf_error(sec, "url", err, "needs a container path and no query (give a SAS with sas_env)");
		goto fail;
	}
	c->base = strndup(url, (size_t)(ps - url));
	const char *acct = mf_conf_get(sec, "account", NULL);
	const char *host = hs + 3;
	size_t hostlen = (size_t)(ps - host);
	if (!acct) {
		/* ACCOUNT.blob.core.windows.net */
		const char *dot = memchr(host, '.', hostlen);
		if (!dot) {
			rc = mf_conf_error(sec, "account", err, "needed when the URL does not name the account");
			goto fail;
		}
		c->account = strndup(host, (size_t)(dot - host));
	} else {
		c->account = strdup(acct);
	}
	if (!c->base || !c->account)
		goto nomem;
	const char *tls_for[] = {c->base};
	if ((rc = mf_http_tls_conf(sec, tls_for, 1, err)) < 0)
		goto fail;
	/* Split the path: [account/] container [/sub...] */
	const char *p = ps + 1;
	size_t al = strlen(c->account);
	bool path_style = !(hostlen > al && strncmp(host, c->account, al) == 0 && host[al] == '.') &&
			  strncmp(p, c->account, al) == 0 && p[al] == '/';
	if (mf_buf_addstr(&cont, "") < 0 || mf_buf_addstr(&sub, "") < 0)
		goto nomem;
	if (path_style) {
		if (mf_buf_printf(&cont, "/%s", c->account) < 0)
			goto nomem;
		p += al + 1;
	}
	size_t cl = strcspn(p, "/");
	if (cl == 0) {
		rc = mf_conf_error(sec, "url", err, "no container in the URL");
		goto fail;
	}
	if (mf_buf_printf(&cont, "/%.*s", (int)cl, p) < 0)
		goto nomem;
	p += cl;
	while (*p == '/')
		p++;
	if (*p) {
		if (mf_buf_addstr(&sub, p) < 0)
			goto nomem;
		while (sub.len && sub.data[sub.len - 1] == '/')
			sub.data[--sub.len] = '\0';
		if (mf_buf_addstr(&sub, "/") < 0)
			goto nomem;
	}
	c->container = cont.data;
	c->sub = sub.data;
	cont.data = sub.data = NULL;

	if ((rc = mf_conf_secret(sec, "key", &key, err)) < 0)
		goto fail;
	if ((rc = mf_conf_secret(sec, "sas", &c->sas, err)) < 0)
		goto fail;
	if (!key == !c->sas) {
		rc = mf_conf_error(sec, NULL, err, "give exactly one of key/key_env/key_file and sas/sas_env/sas_file");
		goto fail;
	}
	if (key) {
		c->key_len = strlen(key);
		c->key = malloc(c->key_len + 1);
		if (!c->key)
			goto nomem;
		if (mf_http_unbase64(key, strlen(key), c->key, c->key_len, &c->key_len) < 0 || !c->key_len) {
			rc = mf_conf_error(sec, "key", err, "the account key is not base64");
			goto fail;
		}
	} else {
		/* strip a leading '?' */
		if (c->sas[0] == '?')
			memmove(c->sas, c->sas + 1, strlen(c->sas));
	}
	/* A SAS request runs at the SAS's sv whatever x-ms-version says. */
	if (c->sas)
		sas_param(c->sas, "sv", c->sv, sizeof(c->sv));
	else
		snprintf(c->sv, sizeof(c->sv), "%s", AZ_VERSION);
	mf_secret_free(key);
	*out = c;
	return 0;
nomem:
	rc = mf_err_set(err, MF_ENOMEM, "out of memory");
fail:
	mf_secret_free(key);
	mf_buf_free(&cont);
	mf_buf_free(&sub);
	az_free_config(c);
	return rc;
}

static void az_caps(const void *cfg, struct mf_sink_caps *caps)
{
	const struct az_cfg *c = cfg;
	memset(caps, 0, sizeof(*caps));
	caps->crlf = true;
	caps->whole_files = c->upload == UPLOAD_PST;
	caps->archive_rows = c->upload == UPLOAD_PST; /* IsArchive goes into the mapping CSV */
}

/* ---- requests ---------------------------------------------------------- */

struct qparam {
	const char *name, *value; /* raw; sorted by name by the caller */
};

struct az_call {
	const struct az_cfg *cfg;
	const char *method;
	char *path;        /* escaped URL path */
	const struct qparam *q;
	size_t nq;
	const char *ctype; /* Content-Type, NULL = none sent */
	bool if_none_match;
	const char *xms[10]; /* extra "x-ms-name:value" headers, lowercase names */
	size_t nxms;
	struct mf_buf url;
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void http_date(char *out, size_t n)
{
	static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *const mons[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	snprintf(out, n, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
		 mons[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static int az_prepare(void *arg, struct mf_http_req *req, struct mf_err *err)
{
	struct az_call *c = arg;
	const struct az_cfg *cfg = c->cfg;
	char date[64];
	struct mf_buf sts = {0}, hdr = {0};
	const char *xms[12];
	char xdate[96];
	size_t nx = 0;
	int rc = MF_ENOMEM;

	curl_slist_free_all(req->headers);
	req->headers = NULL;
	http_date(date, sizeof(date));
	snprintf(xdate, sizeof(xdate), "x-ms-date:%s", date);
	xms[nx++] = xdate;
	xms[nx++] = "x-ms-version:" AZ_VERSION;
	for (size_t i = 0; i < c->nxms; i++)
		xms[nx++] = c->xms[i];
	qsort(xms, nx, sizeof(xms[0]), cmp_str);

	struct curl_slist *h = NULL;
#define ADD(s)                                                  \
	do {                                                    \
		struct curl_slist *n_ = curl_slist_append(h, s); \
		if (!n_)                                        \
			goto out;                               \
		h = n_;                                         \
	} while (0)
	for (size_t i = 0; i < nx; i++) {
		const char *colon = strchr(xms[i], ':');
		hdr.len = 0;
		if (mf_buf_printf(&hdr, "%.*s: %s", (int)(colon - xms[i]), xms[i], colon + 1) < 0)
			goto out;
		ADD(hdr.data);
	}
	if (c->ctype) {
		hdr.len = 0;
		if (mf_buf_printf(&hdr, "Content-Type: %s", c->ctype) < 0)
			goto out;
		ADD(hdr.data);
	} else {
		ADD("Content-Type:");
	}
	if (c->if_none_match)
		ADD("If-None-Match: *");
	ADD("Expect:");
	if (cfg->key) {
		char len[32] = "";
		if (req->body_len)
			snprintf(len, sizeof(len), "%zu", req->body_len);
		if (mf_buf_printf(&sts, "%s\n\n\n%s\n\n%s\n\n\n\n%s\n\n\n", c->method, len,
				  c->ctype ? c->ctype : "", c->if_none_match ? "*" : "") < 0)
			goto out;
		for (size_t i = 0; i < nx; i++)
			if (mf_buf_printf(&sts, "%s\n", xms[i]) < 0)
				goto out;
		if (mf_buf_printf(&sts, "/%s%s", cfg->account, c->path) < 0)
			goto out;
		for (size_t i = 0; i < c->nq; i++)
			if (mf_buf_printf(&sts, "\n%s:%s", c->q[i].name, c->q[i].value) < 0)
				goto out;
		struct hmac_sha256_ctx ctx;
		uint8_t mac[SHA256_DIGEST_SIZE];
		hmac_sha256_set_key(&ctx, cfg->key_len, cfg->key);
		hmac_sha256_update(&ctx, sts.len, (const uint8_t *)sts.data);
		hmac_sha256_digest(&ctx, sizeof(mac), mac);
		struct mf_buf sig = {0};
		if (mf_buf_printf(&sig, "Authorization: SharedKey %s:", cfg->account) < 0 ||
		    mf_http_base64(&sig, mac, sizeof(mac)) < 0) {
			mf_buf_free(&sig);
			goto out;
		}
		struct curl_slist *n = curl_slist_append(h, sig.data);
		memset(sig.data, 0, sig.len);
		mf_buf_free(&sig);
		if (!n)
			goto out;
		h = n;
	}
#undef ADD
	req->headers = h;
	h = NULL;
	rc = 0;
out:
	curl_slist_free_all(h);
	mf_buf_free(&sts);
	mf_buf_free(&hdr);
	return rc < 0 ? mf_err_set(err, rc, "out of memory") : 0;
}

/* Build the URL of a call (path + query [+ SAS]). */
static int az_url(struct az_call *c)
{
	c->url.len = 0;
	if (mf_buf_printf(&c->url, "%s%s", c->cfg->base, c->path) < 0)
		return MF_ENOMEM;
	for (size_t i = 0; i < c->nq; i++) {
		if (mf_buf_printf(&c->url, "%c%s=", i ? '&' : '?', c->q[i].name) < 0 ||
		    mf_http_escape(&c->url, c->q[i].value, strlen(c->q[i].value), false) < 0)
			return MF_ENOMEM;
	}
	if (c->cfg->sas && mf_buf_printf(&c->url, "%c%s", c->nq ? '&' : '?', c->cfg->sas) < 0)
		return MF_ENOMEM;
	return 0;
}

/* The escaped path of a blob. */
static char *blob_path(const struct az_cfg *cfg, const char *name)
{
	struct mf_buf b = {0};
	if (mf_buf_addstr(&b, cfg->container) < 0 || mf_buf_addstr(&b, "/") < 0 ||
	    mf_http_escape(&b, name, strlen(name), true) < 0) {
		mf_buf_free(&b);
		return NULL;
	}
	return b.data;
}

static int az_do(struct az_call *c, struct mf_http_req *req, const long *ok, struct mf_err *err)
{
	if (az_url(c) < 0)
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	req->method = c->method;
	req->url = c->url.data;
	req->hooks.prepare = az_prepare;
	req->hooks.arg = c;
	int rc = mf_http_send(req, ok, err);
	if (rc == MF_EAUTH && req->status == 403)
		mf_err_prefix(err, "storage refused the credentials (check key/SAS permissions)");
	return rc;
}

/* ---- sink ops ------------------------------------------------------------ */

static int az_open(const void *cfg, const struct mf_unit *unit, void **out, struct mf_err *err)
{
	const struct az_cfg *c = cfg;
	struct az_snk *s = calloc(1, sizeof(*s));
	if (!s)
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	s->cfg = c;
	s->unit = unit;
	s->mailbox = strdup(unit->mailbox ? unit->mailbox : "");
	if (!s->mailbox) {
		free(s);
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	}
	/* messages: the mailbox is a name segment; pst-files: only metadata */
	if (c->upload == UPLOAD_MESSAGES && (!s->mailbox[0] || strchr(s->mailbox, '/'))) {
		free(s->mailbox);
		free(s);
		return mf_err_set(err, MF_EMAILBOX, "target mailbox name '%s' is empty or holds '/'",
				  unit->mailbox ? unit->mailbox : "");
	}
	mf_http_acquire();
	int rc = 0;
	if (c->key) {
		/* Shared Key may create the container; a SAS usually may not. */
		static const struct qparam q[] = {{"restype", "container"}};
		static const long ok[] = {409, 0};
		struct az_call call = {.cfg = c, .method = "PUT", .q = q, .nq = 1};
		struct mf_http_req req = {0};
		call.path = strdup(c->container);
		if (!call.path)
			rc = mf_err_set(err, MF_ENOMEM, "out of memory");
		else
			rc = az_do(&call, &req, ok, err);
		free(call.path);
		mf_buf_free(&call.url);
		mf_http_req_free(&req);
	}
	if (rc < 0) {
		mf_err_prefix(err, "container %s", c->container);
		mf_http_release();
		free(s->mailbox);
		free(s);
		return rc;
	}
	*out = s;
	return 0;
}

/* For verify and plan: List Blobs (maxresults=1) under the mailbox's
 * prefix, nothing else: no container is made (open() makes it with Shared
 * Key). MF_ENOTFOUND when the container does not exist or, in messages
 * mode, holds nothing of the mailbox. folder() then only makes a handle: a
 * blob store has no folders, and one without blobs is empty. */
static int az_open_read(const void *cfg, const struct mf_unit *unit, void **out,
			struct mf_err *err)
{
	const struct az_cfg *c = cfg;
	static const long ok[] = {404, 0};
	struct mf_buf prefix = {0};
	struct qparam q[4];
	size_t nq = 0;
	int rc;
	*out = NULL;
	if (c->upload == UPLOAD_MESSAGES &&
	    (!unit->mailbox || !unit->mailbox[0] || strchr(unit->mailbox, '/')))
		return mf_err_set(err, MF_EMAILBOX, "target mailbox name '%s' is empty or holds '/'",
				  unit->mailbox ? unit->mailbox : "");
	struct az_snk *s = calloc(1, sizeof(*s));
	if (!s || !(s->mailbox = strdup(unit->mailbox ? unit->mailbox : "")) ||
	    (c->upload == UPLOAD_MESSAGES ? mf_buf_printf(&prefix, "%s%s/", c->sub, s->mailbox)
					  : mf_buf_addstr(&prefix, c->sub)) < 0) {
		if (s)
			free(s->mailbox);
		free(s);
		mf_buf_free(&prefix);
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	}
	s->cfg = c;
	s->unit = unit;
	s->readonly = true;
	q[nq++] = (struct qparam){"comp", "list"};
	q[nq++] = (struct qparam){"maxresults", "1"};
	q[nq++] = (struct qparam){"prefix", prefix.data};
	q[nq++] = (struct qparam){"restype", "container"};
	struct az_call call = {.cfg = c, .method = "GET", .q = q, .nq = nq};
	struct mf_http_req req = {0};
	mf_http_acquire();
	call.path = strdup(c->container);
	rc = call.path ? az_do(&call, &req, ok, err) : mf_err_set(err, MF_ENOMEM, "out of memory");
	if (rc == 0 && req.status == 404)
		rc = mf_err_set(err, MF_ENOTFOUND, "container %s does not exist", c->container);
	else if (rc == 0 && c->upload == UPLOAD_MESSAGES &&
		 !(req.resp.data && strstr(req.resp.data, "<Blob>")))
		rc = mf_err_set(err, MF_ENOTFOUND, "container %s holds no blob under %s",
				c->container, prefix.data);
	else if (rc < 0)
		mf_err_prefix(err, "container %s", c->container);
	free(call.path);
	mf_buf_free(&call.url);
	mf_http_req_free(&req);
	mf_buf_free(&prefix);
	if (rc < 0) {
		mf_http_release();
		free(s->mailbox);
		free(s);
		return rc;
	}
	*out = s;
	return 0;
}

/* For `mailferry plan`: reads only, so that a plan never makes the
 * container that open() would make. Shared Key: Get Container Properties;
 * a missing container is fine (open() creates it) and is said in err->msg
 * with err->code left 0. SAS: its permissions (sp) must allow writing,
 * then List Blobs (maxresults=1) shows that the container exists and the
 * signature is good; a SAS that may not list passes (writing cannot be
 * tried without writing). Any other 403 (wrong key or signature, expired,
 * firewall): MF_EAUTH; a container a SAS cannot create: MF_ENOTFOUND. */
static int az_check(const void *cfg, const struct mf_unit *unit, struct mf_err *err)
{
	const struct az_cfg *c = cfg;
	static const long ok[] = {403, 404, 0};
	struct qparam q[4];
	size_t nq = 0;
	int rc;
	if (c->upload == UPLOAD_MESSAGES &&
	    (!unit->mailbox || !unit->mailbox[0] || strchr(unit->mailbox, '/')))
		return mf_err_set(err, MF_EMAILBOX, "target mailbox name '%s' is empty or holds '/'",
				  unit->mailbox ? unit->mailbox : "");
	if (c->sas) {
		char sp[64];
		sas_param(c->sas, "sp", sp, sizeof(sp));
		if (sp[0] && !strpbrk(sp, "cw"))
			return mf_err_set(err, MF_EAUTH,
					  "container %s: the SAS may not write blobs (its permissions, sp, "
					  "hold neither c nor w)",
					  c->container);
		q[nq++] = (struct qparam){"comp", "list"};
		q[nq++] = (struct qparam){"maxresults", "1"};
		q[nq++] = (struct qparam){"prefix", c->sub};
	}
	q[nq++] = (struct qparam){"restype", "container"};
	struct az_call call = {.cfg = c, .method = "GET", .q = q, .nq = nq};
	struct mf_http_req req = {0};
	mf_http_acquire();
	call.path = strdup(c->container);
	rc = call.path ? az_do(&call, &req, ok, err) : mf_err_set(err, MF_ENOMEM, "out of memory");
	if (rc < 0) {
		mf_err_prefix(err, "container %s", c->container);
		goto out;
	}
	if (req.status == 404 && (!req.error_code[0] || !strcmp(req.error_code, "ContainerNotFound"))) {
		if (c->key) {
			mf_log(MF_LOG_INFO, "event=azure_plan container=%s note=\"does not exist; run would create it\"",
			       c->container);
			mf_err_set(err, 0, "container %s does not exist; run would create it", c->container);
		} else {
			rc = mf_http_fail(&req, MF_ENOTFOUND, err,
					  "the container does not exist and a SAS cannot create it "
					  "(create it, or give the account key)");
		}
	} else if (req.status == 404) {
		rc = mf_http_fail(&req, MF_ENOTFOUND, err, "not found");
	} else if (req.status == 403 && c->sas &&
		   (!strcmp(req.error_code, "AuthorizationPermissionMismatch") ||
		    !strcmp(req.error_code, "AuthorizationResourceTypeMismatch"))) {
		mf_log(MF_LOG_INFO, "event=azure_plan container=%s code=%s note=\"the SAS may not list the "
		       "container; write access not tested\"",
		       c->container, req.error_code[0] ? req.error_code : "-");
	} else if (req.status == 403) {
		rc = mf_http_fail(&req, MF_EAUTH, err,
				  c->key ? "the account key was refused (wrong key or account name)"
					 : "the SAS was refused (wrong signature, expired, or not for this container)");
	}
	if (rc < 0)
		mf_err_prefix(err, "container %s", c->container);
out:
	free(call.path);
	mf_buf_free(&call.url);
	mf_http_req_free(&req);
	mf_http_release();
	return rc;
}

static int az_folder(void *snk, const struct mf_path *path, enum mf_role role, void **fh,
		     struct mf_err *err)
{
	(void)role;
	struct az_snk *s = snk;
	return mf_blob_folder_open(&s->folders, s->cfg->sub, s->mailbox, path, fh, err);
}

static void meta_headers(const struct mf_item *item, char *flags, size_t fsz, char *idate,
			 size_t isz, char *sha, size_t ssz)
{
	char fl[96];
	mf_blob_flags(item->flags, fl, sizeof(fl));
	snprintf(flags, fsz, "x-ms-meta-flags:%s", fl);
	snprintf(idate, isz, "x-ms-meta-idate:%lld", (long long)item->idate);
	snprintf(sha, ssz, "x-ms-meta-sha256:%s", item->hash_hex);
}

static int az_probe(void *snk, void *fh, const struct mf_item *item, char sink_id[MF_SINK_ID_MAX],
		    struct mf_err *err)
{
	struct az_snk *s = snk;
	struct mf_blob_folder *f = fh;
	static const long ok[] = {404, 0};
	struct az_call call = {.cfg = s->cfg, .method = "HEAD"};
	struct mf_http_req req = {0};
	int rc;
	char *name = mf_blob_object_name(f->prefix, item);
	call.path = name ? blob_path(s->cfg, name) : NULL;
	if (!call.path) {
		rc = mf_err_set(err, MF_ENOMEM, "out of memory");
		goto out;
	}
	rc = az_do(&call, &req, ok, err);
	if (rc < 0)
		goto out;
	rc = req.status == 404 ? 0 : 1;
	if (rc == 1 && s->readonly && !mf_blob_whole(&req, item, name)) {
		rc = 0; /* broken, so not there; left as it is */
	} else if (rc == 1 && !mf_blob_whole(&req, item, name)) {
		/* the store's If-None-Match would keep a broken blob: away with it */
		struct az_call del = {.cfg = s->cfg, .method = "DELETE", .path = call.path};
		struct mf_http_req dreq = {0};
		rc = az_do(&del, &dreq, ok, err);
		mf_buf_free(&del.url);
		mf_http_req_free(&dreq);
		if (rc < 0)
			goto out;
	}
	if (rc == 1)
		snprintf(sink_id, MF_SINK_ID_MAX, "%s", name);
out:
	free(name);
	free(call.path);
	mf_buf_free(&call.url);
	mf_http_req_free(&req);
	return rc;
}

static bool exists_ok(const struct mf_http_req *req)
{
	return req->status == 409 && strcmp(req->error_code, "BlobAlreadyExists") == 0;
}

static int put_blocks(struct az_snk *s, struct az_call *call, const struct mf_item *item,
		      struct mf_err *err)
{
	int rc = 0;
	size_t nblocks = (item->len + MF_BLOB_AZURE_BLOCK - 1) / MF_BLOB_AZURE_BLOCK;
	struct mf_buf list = {0};
	char *base_path = call->path;
	if (mf_buf_addstr(&list, "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>") < 0)
		goto nomem;
	for (size_t i = 0; i < nblocks; i++) {
		char raw[16], id[32];
		struct mf_buf b64 = {0};
		/* 12 raw bytes: base64 without '=' and the same length for all */
		snprintf(raw, sizeof(raw), "block-%06zu", i);
		if (mf_http_base64(&b64, raw, 12) < 0)
			goto nomem;
		snprintf(id, sizeof(id), "%s", b64.data);
		mf_buf_free(&b64);
		if (mf_buf_printf(&list, "<Latest>%s</Latest>", id) < 0)
			goto nomem;
		struct qparam q[] = {{"blockid", id}, {"comp", "block"}};
		struct az_call bc = {.cfg = s->cfg, .method = "PUT", .path = base_path, .q = q, .nq = 2};
		struct mf_http_req req = {0};
		size_t off = i * MF_BLOB_AZURE_BLOCK;
		req.body = item->data + off;
		req.body_len = item->len - off < MF_BLOB_AZURE_BLOCK ? item->len - off : MF_BLOB_AZURE_BLOCK;
		rc = az_do(&bc, &req, NULL, err);
		mf_buf_free(&bc.url);
		mf_http_req_free(&req);
		if (rc < 0) {
			mf_err_prefix(err, "block %zu of %zu", i + 1, nblocks);
			goto out;
		}
	}
	if (mf_buf_addstr(&list, "</BlockList>") < 0)
		goto nomem;
	{
		static const long ok[] = {409, 0};
		struct qparam q[] = {{"comp", "blocklist"}};
		char fl[160], idate[64], sha[96];
		meta_headers(item, fl, sizeof(fl), idate, sizeof(idate), sha, sizeof(sha));
		struct az_call lc = {.cfg = s->cfg, .method = "PUT", .path = base_path, .q = q, .nq = 1,
				     .ctype = "application/xml", .if_none_match = true,
				     .xms = {"x-ms-blob-content-type:message/rfc822", fl, idate, sha},
				     .nxms = 4};
		struct mf_http_req req = {.body = list.data, .body_len = list.len};
		rc = az_do(&lc, &req, ok, err);
		if (rc == 0 && req.status == 409 && !exists_ok(&req))
			rc = mf_http_fail(&req, MF_EMSG, err, "block list");
		mf_buf_free(&lc.url);
		mf_http_req_free(&req);
	}
	goto out;
nomem:
	rc = mf_err_set(err, MF_ENOMEM, "out of memory");
out:
	mf_buf_free(&list);
	return rc;
}

static int az_store(void *snk, void *fh, const struct mf_item *item, char sink_id[MF_SINK_ID_MAX],
		    struct mf_err *err)
{
	struct az_snk *s = snk;
	struct mf_blob_folder *f = fh;
	int rc;
	struct mf_http_req req = {0};
	char fl[160], idate[64], sha[96];
	if (s->readonly)
		return mf_err_set(err, MF_EINTERNAL, "azure-blob: store on a sink opened read-only");
	char *name = mf_blob_object_name(f->prefix, item);
	struct az_call call = {.cfg = s->cfg, .method = "PUT"};
	call.path = name ? blob_path(s->cfg, name) : NULL;
	if (!call.path) {
		rc = mf_err_set(err, MF_ENOMEM, "out of memory");
		goto out;
	}
	if (strlen(name) >= MF_SINK_ID_MAX || strlen(name) > 1024) {
		rc = mf_err_set(err, MF_EFOLDER, "blob name too long (%zu bytes)", strlen(name));
		goto out;
	}
	if (item->len > MF_BLOB_SINGLE_MAX) {
		rc = put_blocks(s, &call, item, err);
	} else {
		static const long ok[] = {409, 0};
		meta_headers(item, fl, sizeof(fl), idate, sizeof(idate), sha, sizeof(sha));
		call.ctype = "message/rfc822";
		call.if_none_match = true;
		call.xms[0] = "x-ms-blob-type:BlockBlob";
		call.xms[1] = fl;
		call.xms[2] = idate;
		call.xms[3] = sha;
		call.nxms = 4;
		req.body = item->data;
		req.body_len = item->len;
		rc = az_do(&call, &req, ok, err);
		if (rc == 0 && req.status == 409 && !exists_ok(&req))
			rc = mf_http_fail(&req, MF_EMSG, err, NULL);
	}
	if (rc == 0)
		snprintf(sink_id, MF_SINK_ID_MAX, "%s", name);
out:
	free(name);
	free(call.path);
	mf_buf_free(&call.url);
	mf_http_req_free(&req);
	return rc;
}

static int az_hashes(void *snk, void *fh, int (*cb)(void *arg, const char *hash_hex), void *arg,
		     struct mf_err *err)
{
	struct az_snk *s = snk;
	struct mf_blob_folder *f = fh;
	char marker[1024] = "", name[2048], hex[65];
	int rc = 0;
	for (;;) {
		struct qparam q[] = {{"comp", "list"}, {"marker", marker}, {"prefix", f->prefix},
				     {"restype", "container"}};
		struct qparam q2[] = {{"comp", "list"}, {"prefix", f->prefix},
				      {"restype", "container"}};
		struct az_call call = {.cfg = s->cfg, .method = "GET", .q = marker[0] ? q : q2,
				       .nq = marker[0] ? 4 : 3};
		struct mf_http_req req = {.max_response = 64u << 20};
		call.path = strdup(s->cfg->container);
		if (!call.path)
			return mf_err_set(err, MF_ENOMEM, "out of memory");
		rc = az_do(&call, &req, NULL, err);
		free(call.path);
		mf_buf_free(&call.url);
		if (rc < 0) {
			mf_http_req_free(&req);
			return rc;
		}
		size_t pos = 0;
		while (mf_blob_xml_next(req.resp.data, req.resp.len, &pos, "Name", name, sizeof(name))) {
			if (mf_blob_name_hash(name, strlen(name), f->prefix, hex) && (rc = cb(arg, hex)) < 0)
				break;
		}
		pos = 0;
		marker[0] = '\0';
		mf_blob_xml_next(req.resp.data, req.resp.len, &pos, "NextMarker", marker, sizeof(marker));
		mf_http_req_free(&req);
		if (rc < 0 || !marker[0])
			return rc;
	}
}

/* ---- pst-files ------------------------------------------------------------- */

#define MIB ((size_t)1 << 20)
#define PST_LIST_MAX ((size_t)64 << 20) /* cap on a listing / block list body */
#define PST_META_MAX 2048               /* escaped metadata value, blob name */

static bool is_version(const char *sv)
{
	if (!sv || strlen(sv) != 10)
		return false;
	for (int i = 0; i < 10; i++) {
		bool dash = i == 4 || i == 7;
		if (dash ? sv[i] != '-' : (sv[i] < '0' || sv[i] > '9'))
			return false;
	}
	return true;
}

size_t mf_azure_pst_block_size(const char *sv, uint64_t file_size)
{
	size_t chosen = 4 * MIB, limit = 4 * MIB;
	if (is_version(sv) && strcmp(sv, "2016-05-31") >= 0) {
		chosen = 16 * MIB;
		limit = 100 * MIB;
	}
	uint64_t need = (file_size + MF_AZURE_PST_MAX_BLOCKS - 1) / MF_AZURE_PST_MAX_BLOCKS;
	if (need > chosen) {
		need = (need + MIB - 1) / MIB * MIB;
		if (need > limit)
			return 0;
		chosen = (size_t)need;
	}
	return chosen;
}

void mf_azure_pst_block_id(const unsigned char tag[6], unsigned index, char out[17])
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	unsigned char raw[12];
	memcpy(raw, tag, 6);
	for (int i = 11; i >= 6; i--) {
		raw[i] = (unsigned char)('0' + index % 10);
		index /= 10;
	}
	size_t o = 0;
	for (size_t i = 0; i < 12; i += 3) {
		unsigned v = (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8 | raw[i + 2];
		out[o++] = b64[v >> 18 & 63];
		out[o++] = b64[v >> 12 & 63];
		out[o++] = b64[v >> 6 & 63];
		out[o++] = b64[v & 63];
	}
	out[16] = '\0';
}

/* Metadata values must be ASCII without leading/trailing blanks: keep
 * unreserved characters, '/' and '@', percent-encode every other byte. */
static int meta_escape(struct mf_buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	if (mf_buf_addstr(b, "") < 0)
		return MF_ENOMEM;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		unsigned char c = *p;
		bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			    strchr("-._~/@", c);
		char e[3] = {'%', hex[c >> 4], hex[c & 15]};
		if (keep ? mf_buf_add(b, p, 1) < 0 : mf_buf_add(b, e, 3) < 0)
			return MF_ENOMEM;
	}
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode %XX in place. */
static void meta_unescape(char *s)
{
	char *o = s;
	for (const char *p = s; *p; p++) {
		if (p[0] == '%' && hexval(p[1]) >= 0 && hexval(p[2]) >= 0) {
			*o++ = (char)(hexval(p[1]) << 4 | hexval(p[2]));
			p += 2;
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
}

/* The blob name of the unit's PST: {sub}{FilePath/Name}. */
static int pst_blob_name(const struct az_snk *s, const char *path, struct mf_buf *name,
			 struct mf_err *err)
{
	const char *rel = s->unit && s->unit->pst_relpath && s->unit->pst_relpath[0]
				  ? s->unit->pst_relpath
				  : path;
	if (rel == path) {
		const char *slash = strrchr(path, '/');
		rel = slash ? slash + 1 : path;
	}
	while (*rel == '/')
		rel++;
	/* Segments must survive URL normalisation as they are. */
	for (const char *p = rel;;) {
		size_t l = strcspn(p, "/");
		if (l == 0 || (l == 1 && p[0] == '.') || (l == 2 && p[0] == '.' && p[1] == '.'))
			return mf_err_set(err, MF_EMAILBOX, "PST path '%s' has an empty, '.' or '..' segment",
					  rel);
		for (size_t i = 0; i < l; i++)
			if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f || p[i] == '\\')
				return mf_err_set(err, MF_EMAILBOX,
						  "PST path '%s' holds a control character or '\\'", rel);
		p += l;
		if (!*p)
			break;
		p++;
	}
	if (mf_buf_printf(name, "%s%s", s->cfg->sub, rel) < 0)
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	if (name->len > 1024 || name->len >= MF_SINK_ID_MAX)
		return mf_err_set(err, MF_EMAILBOX, "blob name for '%s' too long (%zu bytes, at most %d)",
				  rel, name->len, MF_SINK_ID_MAX - 1);
	return 0;
}

/* Read exactly len bytes at off. */
static int read_at(int fd, const char *path, void *buf, size_t len, uint64_t off,
		   struct mf_err *err)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return mf_err_set(err, MF_EIO, "cannot read %s: %s", path, strerror(errno));
		if (n == 0)
			return mf_err_set(err, MF_EIO, "cannot read %s: the file shrank during the upload",
					  path);
		got += (size_t)n;
	}
	return 0;
}

static int hash_file(int fd, const char *path, uint64_t size, unsigned char *buf, size_t bufsz,
		     uint8_t sha[SHA256_DIGEST_SIZE], struct mf_err *err)
{
	struct sha256_ctx ctx;
	sha256_init(&ctx);
	for (uint64_t off = 0; off < size;) {
		size_t n = size - off < bufsz ? (size_t)(size - off) : bufsz;
		int rc = read_at(fd, path, buf, n, off, err);
		if (rc < 0)
			return rc;
		sha256_update(&ctx, n, buf);
		off += n;
	}
	sha256_digest(&ctx, SHA256_DIGEST_SIZE, sha);
	return 0;
}

/* A blob of a listing, with what pst-files metadata it has. */
struct az_entry {
	char name[PST_META_MAX];
	uint64_t size;
	char sha[PST_META_MAX];
	char mailbox[PST_META_MAX];
	char archive[PST_META_MAX];
	char root[PST_META_MAX];
	bool has_root;
};

/* The next <Blob> element of a List Blobs answer after *pos into e:
 * 1 found, 0 no more, MF_ENOMEM. Metadata values are decoded. */
static int next_entry(const struct mf_buf *xml, size_t *pos, struct az_entry *e)
{
	if (!xml->data || *pos >= xml->len)
		return 0;
	const char *b = strstr(xml->data + *pos, "<Blob>");
	const char *end = b ? strstr(b, "</Blob>") : NULL;
	if (!end)
		return 0;
	*pos = (size_t)(end - xml->data) + 7;
	char *el = strndup(b, (size_t)(end - b));
	if (!el)
		return MF_ENOMEM;
	size_t l = strlen(el), p;
	char len[32] = "";
	memset(e, 0, sizeof(*e));
	p = 0;
	mf_blob_xml_next(el, l, &p, "Name", e->name, sizeof(e->name));
	p = 0;
	mf_blob_xml_next(el, l, &p, "Content-Length", len, sizeof(len));
	e->size = strtoull(len, NULL, 10);
	p = 0;
	mf_blob_xml_next(el, l, &p, "sha256", e->sha, sizeof(e->sha));
	p = 0;
	mf_blob_xml_next(el, l, &p, "mailbox", e->mailbox, sizeof(e->mailbox));
	p = 0;
	mf_blob_xml_next(el, l, &p, "isarchive", e->archive, sizeof(e->archive));
	p = 0;
	e->has_root = mf_blob_xml_next(el, l, &p, "targetrootfolder", e->root, sizeof(e->root));
	free(el);
	meta_unescape(e->mailbox);
	meta_unescape(e->root);
	return 1;
}

/* One page of List Blobs with metadata under `prefix`, from `marker` (in;
 * out: the next marker or ""). 0, 1 = the credential may not list (403),
 * or an error. The answer is left in req->resp. */
static int list_page(struct az_snk *s, const char *prefix, char *marker, size_t msz,
		     struct mf_http_req *req, struct mf_err *err)
{
	static const long ok[] = {403, 0};
	struct qparam q[5];
	size_t nq = 0;
	q[nq++] = (struct qparam){"comp", "list"};
	q[nq++] = (struct qparam){"include", "metadata"};
	if (marker[0])
		q[nq++] = (struct qparam){"marker", marker};
	q[nq++] = (struct qparam){"prefix", prefix};
	q[nq++] = (struct qparam){"restype", "container"};
	struct az_call call = {.cfg = s->cfg, .method = "GET", .q = q, .nq = nq};
	req->max_response = PST_LIST_MAX;
	call.path = strdup(s->cfg->container);
	int rc = call.path ? az_do(&call, req, ok, err) : mf_err_set(err, MF_ENOMEM, "out of memory");
	free(call.path);
	mf_buf_free(&call.url);
	if (rc < 0)
		return rc;
	if (req->status == 403)
		return 1;
	size_t pos = 0;
	marker[0] = '\0';
	mf_blob_xml_next(req->resp.data, req->resp.len, &pos, "NextMarker", marker, msz);
	return 0;
}

/* Warn once per configuration that a read was refused. */
static void warn_read(struct az_snk *s, const char *what)
{
	struct az_shared *sh = s->cfg->shared;
	pthread_mutex_lock(&sh->lock);
	bool first = !sh->warned_read;
	sh->warned_read = true;
	pthread_mutex_unlock(&sh->lock);
	if (first)
		mf_log(MF_LOG_WARN, "event=pst-no-read reason=\"the credential may not %s: uploads "
		       "cannot resume or be skipped, and the mapping CSV lists only this run's files\"",
		       what);
}

/* Is `name` committed? Fills *e (e->name[0] == 0 when absent). 0, 1 (may not
 * read), or an error. The exact name sorts first among names it prefixes,
 * so the first page holds it. */
static int remote_entry(struct az_snk *s, const char *name, struct az_entry *e,
			struct mf_err *err)
{
	char marker[8] = "";
	struct mf_http_req req = {0};
	int rc = list_page(s, name, marker, sizeof(marker), &req, err);
	memset(e, 0, sizeof(*e));
	if (rc == 0) {
		size_t pos = 0;
		int r;
		while ((r = next_entry(&req.resp, &pos, e)) == 1 && strcmp(e->name, name) != 0)
			;
		if (r < 0)
			rc = mf_err_set(err, MF_ENOMEM, "out of memory");
		else if (r == 0)
			e->name[0] = '\0';
	}
	mf_http_req_free(&req);
	return rc;
}

/* The sizes of this file's blocks already on the server (committed or not;
 * an uncommitted one wins, as <Latest> picks it), by index; -1 = absent.
 * 0, 1 (may not read), or an error. */
static int block_sizes(struct az_snk *s, const char *bpath, const unsigned char tag[6],
		       int64_t *have, size_t nblocks, struct mf_err *err)
{
	static const long ok[] = {403, 404, 0};
	static const struct qparam q[] = {{"blocklisttype", "all"}, {"comp", "blocklist"}};
	struct az_call call = {.cfg = s->cfg, .method = "GET", .path = (char *)bpath, .q = q, .nq = 2};
	struct mf_http_req req = {.max_response = PST_LIST_MAX};
	for (size_t i = 0; i < nblocks; i++)
		have[i] = -1;
	int rc = az_do(&call, &req, ok, err);
	mf_buf_free(&call.url);
	if (rc < 0 || req.status == 404)
		goto out;
	if (req.status == 403) {
		rc = 1;
		goto out;
	}
	size_t pos = 0;
	char id[96], size[32];
	while (mf_blob_xml_next(req.resp.data, req.resp.len, &pos, "Name", id, sizeof(id)) &&
	       mf_blob_xml_next(req.resp.data, req.resp.len, &pos, "Size", size, sizeof(size))) {
		unsigned char raw[16];
		size_t rl;
		if (strlen(id) != 16 || mf_http_unbase64(id, 16, raw, sizeof(raw), &rl) < 0 || rl != 12 ||
		    memcmp(raw, tag, 6) != 0)
			continue;
		size_t idx = 0;
		bool digits = true;
		for (int i = 6; i < 12; i++) {
			digits = digits && raw[i] >= '0' && raw[i] <= '9';
			idx = idx * 10 + (size_t)(raw[i] - '0');
		}
		if (digits && idx < nblocks)
			have[idx] = (int64_t)strtoll(size, NULL, 10);
	}
out:
	mf_http_req_free(&req);
	return rc;
}

static int put_block(struct az_snk *s, const char *bpath, const char *id, const void *data,
		     size_t len, struct mf_err *err)
{
	struct qparam q[] = {{"blockid", id}, {"comp", "block"}};
	struct az_call call = {.cfg = s->cfg, .method = "PUT", .path = (char *)bpath, .q = q, .nq = 2};
	struct mf_http_req req = {.body = data, .body_len = len};
	int rc = az_do(&call, &req, NULL, err);
	mf_buf_free(&call.url);
	mf_http_req_free(&req);
	return rc;
}

/* Commit the block list with the metadata. */
static int put_block_list(struct az_snk *s, const char *bpath, const unsigned char tag[6],
			  size_t nblocks, const char *sha_hex, struct mf_err *err)
{
	static const struct qparam q[] = {{"comp", "blocklist"}};
	const struct mf_unit *u = s->unit;
	struct mf_buf list = {0}, h_sha = {0}, h_mbx = {0}, h_arch = {0}, h_root = {0};
	struct az_call call = {.cfg = s->cfg, .method = "PUT", .path = (char *)bpath, .q = q, .nq = 1,
			       .ctype = "application/xml"};
	struct mf_http_req req = {0};
	int rc;
	if (mf_buf_addstr(&list, "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>") < 0)
		goto nomem;
	for (size_t i = 0; i < nblocks; i++) {
		char id[17];
		mf_azure_pst_block_id(tag, (unsigned)i, id);
		if (mf_buf_printf(&list, "<Latest>%s</Latest>", id) < 0)
			goto nomem;
	}
	if (mf_buf_addstr(&list, "</BlockList>") < 0 ||
	    mf_buf_printf(&h_sha, "x-ms-meta-sha256:%s", sha_hex) < 0 ||
	    mf_buf_printf(&h_arch, "x-ms-meta-isarchive:%s", u && u->is_archive ? "TRUE" : "FALSE") < 0 ||
	    mf_buf_addstr(&h_mbx, "x-ms-meta-mailbox:") < 0 ||
	    meta_escape(&h_mbx, s->mailbox) < 0 || mf_buf_addstr(&h_root, "x-ms-meta-targetrootfolder:") < 0 ||
	    meta_escape(&h_root, u && u->target_root ? u->target_root : "") < 0)
		goto nomem;
	call.xms[call.nxms++] = "x-ms-blob-content-type:application/vnd.ms-outlook";
	call.xms[call.nxms++] = h_sha.data;
	call.xms[call.nxms++] = h_arch.data;
	/* An empty header would vanish in curl (and from the signature). */
	if (s->mailbox[0])
		call.xms[call.nxms++] = h_mbx.data;
	if (u && u->target_root && u->target_root[0])
		call.xms[call.nxms++] = h_root.data;
	req.body = list.data;
	req.body_len = list.len;
	rc = az_do(&call, &req, NULL, err);
	if (rc < 0)
		mf_err_prefix(err, "block list");
	goto out;
nomem:
	rc = mf_err_set(err, MF_ENOMEM, "out of memory");
out:
	mf_buf_free(&call.url);
	mf_http_req_free(&req);
	mf_buf_free(&list);
	mf_buf_free(&h_sha);
	mf_buf_free(&h_mbx);
	mf_buf_free(&h_arch);
	mf_buf_free(&h_root);
	return rc;
}

/* ---- the mapping CSV ---- */

struct az_rows {
	struct az_row *v;
	size_t n, cap;
};

static int rows_add(struct az_rows *r, const char *name, const char *mailbox, const char *root,
		    bool archive)
{
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		struct az_row *v = realloc(r->v, cap * sizeof(*v));
		if (!v)
			return MF_ENOMEM;
		r->v = v;
		r->cap = cap;
	}
	struct az_row *row = &r->v[r->n];
	memset(row, 0, sizeof(*row));
	row->name = strdup(name);
	row->mailbox = strdup(mailbox);
	row->root = strdup(root);
	row->archive = archive;
	r->n++;
	return row->name && row->mailbox && row->root ? 0 : MF_ENOMEM;
}

static void rows_free(struct az_rows *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->v[i].name);
		free(r->v[i].mailbox);
		free(r->v[i].root);
	}
	free(r->v);
	memset(r, 0, sizeof(*r));
}

static int cmp_row(const void *a, const void *b)
{
	return strcmp(((const struct az_row *)a)->name, ((const struct az_row *)b)->name);
}

/* Remember a PST this process stored (registry for the no-list fallback). */
static int remember(struct az_shared *sh, const char *name, const char *mailbox, const char *root,
		    bool archive)
{
	int rc = 0;
	pthread_mutex_lock(&sh->lock);
	struct az_row *r = sh->rows;
	while (r && strcmp(r->name, name) != 0)
		r = r->next;
	if (!r) {
		r = calloc(1, sizeof(*r));
		if (r && !(r->name = strdup(name))) {
			free(r);
			r = NULL;
		}
		if (!r) {
			rc = MF_ENOMEM;
			goto out;
		}
		r->next = sh->rows;
		sh->rows = r;
	}
	free(r->mailbox);
	free(r->root);
	r->mailbox = strdup(mailbox);
	r->root = strdup(root);
	r->archive = archive;
	if (!r->mailbox || !r->root)
		rc = MF_ENOMEM;
out:
	pthread_mutex_unlock(&sh->lock);
	return rc;
}

/* One CSV field: quoted when it holds a comma, quote or line break. */
static int csv_field(struct mf_buf *b, const char *v, bool last)
{
	int rc;
	if (strpbrk(v, ",\"\r\n")) {
		rc = mf_buf_addstr(b, "\"");
		for (const char *p = v; rc == 0 && *p; p++)
			rc = mf_buf_add(b, p, 1) < 0 || (*p == '"' && mf_buf_add(b, p, 1) < 0) ? MF_ENOMEM : 0;
		if (rc == 0)
			rc = mf_buf_addstr(b, "\"");
	} else {
		rc = mf_buf_addstr(b, v);
	}
	return rc < 0 ? MF_ENOMEM : mf_buf_addstr(b, last ? "\r\n" : ",");
}

/* The CSV bytes for rows sorted by name. FilePath is the blob's folder
 * inside the container (what the import service resolves it against). */
static int csv_build(const struct az_rows *r, struct mf_buf *out)
{
	if (mf_buf_addstr(out, MF_AZURE_PST_CSV_HEADER "\r\n") < 0)
		return MF_ENOMEM;
	for (size_t i = 0; i < r->n; i++) {
		const struct az_row *row = &r->v[i];
		const char *slash = strrchr(row->name, '/');
		char *dir = strndup(row->name, slash ? (size_t)(slash - row->name) : 0);
		int rc = !dir ? MF_ENOMEM : 0;
		if (rc == 0)
			rc = csv_field(out, "Exchange", false);
		if (rc == 0)
			rc = csv_field(out, dir, false);
		if (rc == 0)
			rc = csv_field(out, slash ? slash + 1 : row->name, false);
		if (rc == 0)
			rc = csv_field(out, row->mailbox, false);
		if (rc == 0)
			rc = csv_field(out, row->archive ? "TRUE" : "FALSE", false);
		if (rc == 0)
			rc = csv_field(out, row->root, false);
		if (rc == 0)
			rc = mf_buf_addstr(out, ",,,\r\n") < 0 ? MF_ENOMEM : 0;
		free(dir);
		if (rc < 0)
			return MF_ENOMEM;
	}
	return 0;
}

/* The rows of every PST blob under the prefix. 0, 1 (may not list), error. */
static int csv_rows(struct az_snk *s, const char *csv_name, struct az_rows *rows,
		    struct mf_err *err)
{
	char marker[1024] = "";
	struct az_entry *e = malloc(sizeof(*e));
	int rc = 0;
	if (!e)
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	do {
		struct mf_http_req req = {0};
		rc = list_page(s, s->cfg->sub, marker, sizeof(marker), &req, err);
		size_t pos = 0;
		int r = 0;
		while (rc == 0 && (r = next_entry(&req.resp, &pos, e)) == 1) {
			if (!e->sha[0] || !e->archive[0] || strcmp(e->name, csv_name) == 0)
				continue; /* not a PST blob of ours */
			if (rows_add(rows, e->name, e->mailbox, e->root, strcmp(e->archive, "TRUE") == 0) < 0)
				r = MF_ENOMEM;
			if (r < 0)
				break;
		}
		mf_http_req_free(&req);
		if (rc == 0 && r < 0)
			rc = mf_err_set(err, MF_ENOMEM, "out of memory");
	} while (rc == 0 && marker[0]);
	free(e);
	return rc;
}

/* (Re)write {sub}mailferry-pst-import-mapping.csv from the listing, under
 * the configuration's lock. Unchanged bytes are not written again. */
static int write_csv(struct az_snk *s, struct mf_err *err)
{
	struct az_shared *sh = s->cfg->shared;
	struct az_rows rows = {0};
	struct mf_buf name = {0}, csv = {0};
	char *path = NULL;
	int rc;
	pthread_mutex_lock(&sh->lock);
	if (mf_buf_printf(&name, "%s%s", s->cfg->sub, MF_AZURE_PST_CSV_NAME) < 0 ||
	    !(path = blob_path(s->cfg, name.data))) {
		rc = mf_err_set(err, MF_ENOMEM, "out of memory");
		goto out;
	}
	rc = csv_rows(s, name.data, &rows, err);
	if (rc == 1) {
		/* may not list: what this process stored (lock already held) */
		rows_free(&rows);
		rc = 0;
		for (struct az_row *r = sh->rows; r && rc == 0; r = r->next)
			rc = rows_add(&rows, r->name, r->mailbox, r->root, r->archive);
		if (rc < 0)
			rc = mf_err_set(err, MF_ENOMEM, "out of memory");
	}
	if (rc < 0)
		goto out;
	qsort(rows.v, rows.n, sizeof(rows.v[0]), cmp_row);
	if (csv_build(&rows, &csv) < 0) {
		rc = mf_err_set(err, MF_ENOMEM, "out of memory");
		goto out;
	}
	{
		/* same bytes already there? (a read refused = not known) */
		static const long ok[] = {403, 404, 0};
		struct az_call call = {.cfg = s->cfg, .method = "GET", .path = path};
		struct mf_http_req req = {.max_response = csv.len + 1};
		rc = az_do(&call, &req, ok, err);
		bool same = rc == 0 && req.status == 200 && req.resp.len == csv.len &&
			    memcmp(req.resp.data, csv.data, csv.len) == 0;
		mf_buf_free(&call.url);
		mf_http_req_free(&req);
		if (rc < 0 || same)
			goto out;
	}
	{
		struct az_call call = {.cfg = s->cfg, .method = "PUT", .path = path,
				       .ctype = "text/csv; charset=utf-8",
				       .xms = {"x-ms-blob-type:BlockBlob"}, .nxms = 1};
		struct mf_http_req req = {.body = csv.data, .body_len = csv.len};
		rc = az_do(&call, &req, NULL, err);
		mf_buf_free(&call.url);
		mf_http_req_free(&req);
	}
	if (rc == 0) {
		char q[PST_META_MAX];
		mf_log(MF_LOG_INFO, "event=pst-mapping-csv blob=%s rows=%zu bytes=%zu",
		       mf_log_quote(name.data, q, sizeof(q)), rows.n, csv.len);
	}
out:
	pthread_mutex_unlock(&sh->lock);
	if (rc < 0)
		mf_err_prefix(err, "mapping CSV");
	rows_free(&rows);
	mf_buf_free(&name);
	mf_buf_free(&csv);
	free(path);
	return rc;
}

/* Upload the unit's PST (see sink.h upload_file and azure_pst.h). One pass
 * reads the file for its SHA-256 (the idempotency check and the block ids
 * need it), a second one streams the blocks that are not on the server yet;
 * memory: one block. */
static int az_upload_file(void *snk, const char *path, char sink_id[MF_SINK_ID_MAX],
			  struct mf_err *err)
{
	struct az_snk *s = snk;
	const struct mf_unit *u = s->unit;
	struct mf_buf name = {0};
	char *bpath = NULL, qname[PST_META_MAX];
	unsigned char *buf = NULL;
	int64_t *have = NULL;
	struct az_entry *e = NULL;
	struct stat st;
	uint8_t sha[SHA256_DIGEST_SIZE], tag[SHA256_DIGEST_SIZE];
	char hex[2 * SHA256_DIGEST_SIZE + 1];
	size_t put = 0, reused = 0, nblocks = 0, bs;
	bool unchanged = false;
	int rc, fd = -1;

	if (s->cfg->upload != UPLOAD_PST)
		return mf_err_set(err, MF_EINTERNAL, "upload_file outside pst-files mode");
	if ((rc = pst_blob_name(s, path, &name, err)) < 0)
		goto out;
	mf_log_quote(name.data, qname, sizeof(qname));
	if (!(bpath = blob_path(s->cfg, name.data)) || !(e = malloc(sizeof(*e)))) {
		rc = mf_err_set(err, MF_ENOMEM, "out of memory");
		goto out;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		rc = mf_err_set(err, MF_EIO, "cannot open %s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = mf_err_set(err, MF_EIO, "%s is not a regular file", path);
		goto out;
	}
	uint64_t size = (uint64_t)st.st_size;
	bs = mf_azure_pst_block_size(s->cfg->sv, size);
	if (!bs) {
		rc = mf_err_set(err, MF_EMAILBOX, "%s: %llu bytes do not fit in %u blocks at service "
				"version %s", path, (unsigned long long)size, MF_AZURE_PST_MAX_BLOCKS,
				s->cfg->sv[0] ? s->cfg->sv : "(none)");
		goto out;
	}
	nblocks = (size_t)((size + bs - 1) / bs);
	if (!(buf = malloc(bs)) || !(have = malloc((nblocks ? nblocks : 1) * sizeof(*have)))) {
		rc = mf_err_set(err, MF_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = hash_file(fd, path, size, buf, bs, sha, err)) < 0)
		goto out;
	mf_hex(sha, sizeof(sha), hex);

	/* Already there, committed, same bytes: nothing to upload. */
	rc = remote_entry(s, name.data, e, err);
	if (rc < 0)
		goto out;
	if (rc == 1)
		warn_read(s, "list the container");
	if (rc == 0 && e->name[0] && e->size == size && strcmp(e->sha, hex) == 0) {
		unchanged = true;
		goto done;
	}

	/* Block ids bound to this content and block size. */
	{
		struct sha256_ctx ctx;
		uint8_t bsz[8];
		for (int i = 0; i < 8; i++)
			bsz[i] = (uint8_t)((uint64_t)bs >> (56 - 8 * i));
		sha256_init(&ctx);
		sha256_update(&ctx, sizeof(sha), sha);
		sha256_update(&ctx, sizeof(bsz), bsz);
		sha256_digest(&ctx, sizeof(tag), tag);
	}
	rc = block_sizes(s, bpath, tag, have, nblocks, err);
	if (rc < 0)
		goto out;
	if (rc == 1)
		warn_read(s, "read block lists");
	for (size_t i = 0; i < nblocks; i++) {
		uint64_t off = (uint64_t)i * bs;
		size_t len = size - off < bs ? (size_t)(size - off) : bs;
		if (have[i] == (int64_t)len) {
			reused++;
			continue;
		}
		char id[17];
		mf_azure_pst_block_id(tag, (unsigned)i, id);
		if ((rc = read_at(fd, path, buf, len, off, err)) < 0)
			goto out;
		if ((rc = put_block(s, bpath, id, buf, len, err)) < 0) {
			mf_err_prefix(err, "block %zu of %zu", i + 1, nblocks);
			goto out;
		}
		put++;
		mf_fault_point(MF_FAULT_BLOCK);
	}
	if ((rc = put_block_list(s, bpath, tag, nblocks, hex, err)) < 0)
		goto out;
done:
	if ((rc = remember(s->cfg->shared, name.data, s->mailbox,
			   u && u->target_root ? u->target_root : "", u && u->is_archive)) < 0) {
		rc = mf_err_set(err, MF_ENOMEM, "out of memory");
		goto out;
	}
	mf_log(MF_LOG_INFO, "event=pst-upload blob=%s bytes=%llu block_size=%zu blocks=%zu put=%zu "
	       "reused=%zu%s", qname, (unsigned long long)size, bs, nblocks, put, reused,
	       unchanged ? " unchanged=1" : "");
	if ((rc = write_csv(s, err)) < 0)
		goto out;
	snprintf(sink_id, MF_SINK_ID_MAX, "%s", name.data);
out:
	if (rc < 0 && rc != MF_ENOMEM)
		mf_err_prefix(err, "PST %s -> blob %s", u && u->pst_relpath ? u->pst_relpath : path,
			      name.data ? name.data : "?");
	if (fd >= 0)
		close(fd);
	free(buf);
	free(have);
	free(e);
	free(bpath);
	mf_buf_free(&name);
	return rc;
}

static void az_close(void *snk)
{
	struct az_snk *s = snk;
	if (!s)
		return;
	mf_blob_folders_free(&s->folders);
	free(s->mailbox);
	free(s);
	mf_http_release();
}

const struct mf_sink_ops mf_sink_azure_blob = {
	.name = "azure-blob",
	.keys = az_keys,
	.configure = az_configure,
	.free_config = az_free_config,
	.caps = az_caps,
	.check = az_check,
	.open = az_open,
	.open_read = az_open_read,
	.folder = az_folder,
	.probe = az_probe,
	.store = az_store,
	.hashes = az_hashes,
	.upload_file = az_upload_file,
	.close = az_close,
};
