/* azure.c - the azure-blob sink: each message a block blob
 * {mailbox}/{folder}/{sha256}[-N].eml, created with If-None-Match: *, over
 * Shared Key or a SAS, through the shared HTTP core. */
#include <nettle/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "blob.h"
#include "engine/log.h"
#include "engine/sink.h"
#include "sinks/http/http.h"

#define AZ_VERSION "2025-11-05"

enum { UPLOAD_MESSAGES = 0, UPLOAD_PST = 1 };

struct az_cfg {
	char *base;      /* scheme://host[:port] */
	char *container; /* URL path of the container, escaped: "/acct/c" or "/c" */
	char *sub;       /* name prefix inside the container ("" or "x/y/") */
	char *account;
	unsigned char *key; /* decoded account key (secret), or NULL */
	size_t key_len;
	char *sas; /* SAS query (secret), or NULL */
	int upload;
};

struct az_snk {
	const struct az_cfg *cfg;
	char *mailbox;
	struct az_folder *folders;
};

struct az_folder {
	char *prefix; /* {sub}{mailbox}/{folder key}/ */
	struct az_folder *next;
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
	free(c);
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
		rc = mf_conf_error(sec, "upload", err, "pst-files is not implemented yet");
		goto fail;
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
	(void)cfg;
	memset(caps, 0, sizeof(*caps));
	caps->crlf = true;
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
	const char *xms[8]; /* extra "x-ms-name:value" headers, lowercase names */
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
	char date[64], hdr[512];
	struct mf_buf sts = {0};
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
		snprintf(hdr, sizeof(hdr), "%.*s: %s", (int)(colon - xms[i]), xms[i], colon + 1);
		ADD(hdr);
	}
	if (c->ctype) {
		snprintf(hdr, sizeof(hdr), "Content-Type: %s", c->ctype);
		ADD(hdr);
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
	s->mailbox = strdup(unit->mailbox ? unit->mailbox : "");
	if (!s->mailbox) {
		free(s);
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	}
	if (!s->mailbox[0] || strchr(s->mailbox, '/')) {
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

static int az_folder(void *snk, const struct mf_path *path, enum mf_role role, void **fh,
		     struct mf_err *err)
{
	(void)role;
	struct az_snk *s = snk;
	struct az_folder *f = calloc(1, sizeof(*f));
	char *fp = mf_blob_folder_prefix(s->mailbox, path);
	struct mf_buf b = {0};
	if (!f || !fp || mf_buf_printf(&b, "%s%s", s->cfg->sub, fp) < 0) {
		free(f);
		free(fp);
		mf_buf_free(&b);
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	}
	free(fp);
	f->prefix = b.data;
	f->next = s->folders;
	s->folders = f;
	*fh = f;
	return 0;
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
	struct az_folder *f = fh;
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
	struct az_folder *f = fh;
	int rc;
	struct mf_http_req req = {0};
	char fl[160], idate[64], sha[96];
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
	struct az_folder *f = fh;
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

static void az_close(void *snk)
{
	struct az_snk *s = snk;
	if (!s)
		return;
	while (s->folders) {
		struct az_folder *n = s->folders->next;
		free(s->folders->prefix);
		free(s->folders);
		s->folders = n;
	}
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
	.open = az_open,
	.folder = az_folder,
	.probe = az_probe,
	.store = az_store,
	.hashes = az_hashes,
	.close = az_close,
};
