/* s3.c - the s3 sink: the same object layout as azure-blob, over path-style
 * URLs, signed with SigV4 by libcurl (CURLOPT_AWS_SIGV4) while we always set
 * x-amz-content-sha256 ourselves (curl 7.88 would otherwise sign the hash of
 * an empty payload). Large objects go up as multipart uploads, aborted on
 * failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blob.h"
#include "engine/log.h"
#include "engine/sink.h"
#include "sinks/http/http.h"

#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct s3_cfg {
	char *base;   /* scheme://host[:port] */
	char *bucket; /* "/bucket" (escaped) */
	char *sub;    /* key prefix inside the bucket ("" or "x/y/") */
	char *sigv4;  /* "aws:amz:REGION:s3" */
	char *userpwd; /* "AKID:SECRET": a secret */
};

struct s3_snk {
	const struct s3_cfg *cfg;
	char *mailbox;
	struct mf_blob_folder *folders;
	bool readonly; /* opened by open_read: store refuses */
};

static const struct mf_conf_key s3_keys[] = {
	{"url", true, "bucket URL, path-style: https://HOST/BUCKET[/prefix]"},
	{"region", false, "signing region (default us-east-1)"},
	{"access_key_id", true, "access key id"},
	{"secret_access_key", false, "secret key (prefer secret_access_key_env or _file)"},
	{"secret_access_key_env", false, "environment variable holding the secret key"},
	{"secret_access_key_file", false, "file holding the secret key"},
	MF_HTTP_TLS_KEYS,
	{NULL, false, NULL},
};

static void s3_free_config(void *p)
{
	struct s3_cfg *c = p;
	if (!c)
		return;
	free(c->base);
	free(c->bucket);
	free(c->sub);
	free(c->sigv4);
	if (c->userpwd)
		mf_secret_free(c->userpwd);
	free(c);
}

static int s3_configure(const struct mf_conf_section *sec, void **out, struct mf_err *err)
{
	int rc;
	char *secret = NULL;
	struct mf_buf b = {0};
	struct s3_cfg *c = calloc(1, sizeof(*c));
	if (!c)
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	const char *url = mf_conf_get(sec, "url", "");
	const char *hs = strstr(url, "://");
	if (!hs || (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) ||
	    strchr(url, '?')) {
		rc = mf_conf_error(sec, "url", err, "not an http(s) URL without query");
		goto fail;
	}
	const char *ps = strchr(hs + 3, '/');
	if (!ps || !ps[1]) {
		rc = mf_conf_error(sec, "url", err, "needs a bucket path (path-style URL)");
		goto fail;
	}
	c->base = strndup(url, (size_t)(ps - url));
	if (!c->base)
		goto nomem;
	const char *tls_for[] = {c->base};
	if ((rc = mf_http_tls_conf(sec, tls_for, 1, err)) < 0)
		goto fail;
	size_t bl = strcspn(ps + 1, "/");
	if (mf_buf_printf(&b, "/%.*s", (int)bl, ps + 1) < 0)
		goto nomem;
	c->bucket = b.data;
	b.data = NULL;
	b.len = b.cap = 0;
	const char *rest = ps + 1 + bl;
	while (*rest == '/')
		rest++;
	if (mf_buf_addstr(&b, rest) < 0)
		goto nomem;
	while (b.len && b.data[b.len - 1] == '/')
		b.data[--b.len] = '\0';
	if (b.len && mf_buf_addstr(&b, "/") < 0)
		goto nomem;
	c->sub = b.data;
	b.data = NULL;
	const char *region = mf_conf_get(sec, "region", "us-east-1");
	struct mf_buf sg = {0};
	if (mf_buf_printf(&sg, "aws:amz:%s:s3", region) < 0)
		goto nomem;
	c->sigv4 = sg.data;
	if ((rc = mf_conf_secret(sec, "secret_access_key", &secret, err)) < 0)
		goto fail;
	if (!secret) {
		rc = mf_conf_error(sec, NULL, err, "secret_access_key_env or secret_access_key_file is required");
		goto fail;
	}
	struct mf_buf up = {0};
	if (mf_buf_printf(&up, "%s:%s", mf_conf_get(sec, "access_key_id", ""), secret) < 0)
		goto nomem;
	c->userpwd = up.data;
	if (!c->base)
		goto nomem;
	mf_secret_free(secret);
	*out = c;
	return 0;
nomem:
	rc = mf_err_set(err, MF_ENOMEM, "out of memory");
fail:
	mf_secret_free(secret);
	mf_buf_free(&b);
	s3_free_config(c);
	return rc;
}

static void s3_caps(const void *cfg, struct mf_sink_caps *caps)
{
	(void)cfg;
	memset(caps, 0, sizeof(*caps));
	caps->crlf = true;
}

/* ---- requests ---------------------------------------------------------- */

struct s3_call {
	const struct s3_cfg *cfg;
	const char *payload_sha; /* hex */
	const char *ctype;
	const char *meta[4];
	size_t nmeta;
};

static int s3_prepare(void *arg, struct mf_http_req *req, struct mf_err *err)
{
	struct s3_call *c = arg;
	char h[256];
	struct curl_slist *l = NULL, *n;
	curl_slist_free_all(req->headers);
	req->headers = NULL;
#define ADD(s)                                   \
	do {                                     \
		if (!(n = curl_slist_append(l, s))) \
			goto nomem;              \
		l = n;                           \
	} while (0)
	snprintf(h, sizeof(h), "x-amz-content-sha256: %s", c->payload_sha ? c->payload_sha : EMPTY_SHA256);
	ADD(h);
	if (c->ctype) {
		snprintf(h, sizeof(h), "Content-Type: %s", c->ctype);
		ADD(h);
	} else {
		ADD("Content-Type:");
	}
	ADD("Expect:");
	for (size_t i = 0; i < c->nmeta; i++)
		ADD(c->meta[i]);
#undef ADD
	req->headers = l;
	req->aws_sigv4 = c->cfg->sigv4;
	req->userpwd = c->cfg->userpwd;
	return 0;
nomem:
	curl_slist_free_all(l);
	return mf_err_set(err, MF_ENOMEM, "out of memory");
}

/* url = base + bucket + "/" + escaped key [+ "?" + query]; query params are
 * given in canonical (sorted, escaped) order because curl 7.88 signs the
 * query as written. */
static int object_url(struct mf_buf *u, const struct s3_cfg *cfg, const char *key,
		      const char *query)
{
	u->len = 0;
	if (mf_buf_printf(u, "%s%s/", cfg->base, cfg->bucket) < 0 ||
	    (key && mf_http_escape(u, key, strlen(key), true) < 0) ||
	    (query && mf_buf_printf(u, "?%s", query) < 0))
		return MF_ENOMEM;
	return 0;
}

static int s3_do(struct s3_call *c, struct mf_http_req *req, const char *method, const char *url,
		 const long *ok, struct mf_err *err)
{
	req->method = method;
	req->url = url;
	req->hooks.prepare = s3_prepare;
	req->hooks.arg = c;
	return mf_http_send(req, ok, err);
}

/* ---- ops --------------------------------------------------------------- */

static int s3_open(const void *cfg, const struct mf_unit *unit, void **out, struct mf_err *err)
{
	struct s3_snk *s = calloc(1, sizeof(*s));
	if (!s)
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	s->cfg = cfg;
	s->mailbox = strdup(unit->mailbox ? unit->mailbox : "");
	if (!s->mailbox || !s->mailbox[0] || strchr(s->mailbox, '/')) {
		int rc = s->mailbox ? mf_err_set(err, MF_EMAILBOX, "target mailbox name '%s' is empty or holds '/'", s->mailbox)
				    : mf_err_set(err, MF_ENOMEM, "out of memory");
		free(s->mailbox);
		free(s);
		return rc;
	}
	mf_http_acquire();
	*out = s;
	return 0;
}

/* For `mailferry plan`: reads only. List Objects (max-keys=1) under the
 * prefix shows that the bucket exists, that the key and its signature are
 * good, and that the key may list (probe and verify need that). A missing
 * bucket is MF_ENOTFOUND (run does not create buckets); a refused key
 * MF_EAUTH. */
static int s3_check(const void *cfg, const struct mf_unit *unit, struct mf_err *err)
{
	const struct s3_cfg *c = cfg;
	static const long ok[] = {404, 0};
	struct mf_buf url = {0}, q = {0};
	struct mf_http_req req = {0};
	struct s3_call call = {.cfg = c};
	int rc;
	if (!unit->mailbox || !unit->mailbox[0] || strchr(unit->mailbox, '/'))
		return mf_err_set(err, MF_EMAILBOX, "target mailbox name '%s' is empty or holds '/'",
				  unit->mailbox ? unit->mailbox : "");
	if (mf_buf_addstr(&q, "max-keys=1&prefix=") < 0 ||
	    mf_http_escape(&q, c->sub, strlen(c->sub), false) < 0 ||
	    object_url(&url, c, NULL, q.data) < 0) {
		rc = mf_err_set(err, MF_ENOMEM, "out of memory");
		goto out;
	}
	mf_http_acquire();
	rc = s3_do(&call, &req, "GET", url.data, ok, err);
	mf_http_release();
	if (rc == 0 && req.status == 404) {
		char code[64] = "";
		size_t pos = 0;
		mf_blob_xml_next(req.resp.data, req.resp.len, &pos, "Code", code, sizeof(code));
		rc = mf_http_fail(&req, MF_ENOTFOUND, err,
				  !code[0] || !strcmp(code, "NoSuchBucket")
					  ? "the bucket does not exist (run does not create buckets)"
					  : "not found");
	} else if (rc == MF_EAUTH) {
		const char *e = req.error_code;
		mf_err_prefix(err, "%s",
			      !strcmp(e, "AccessDenied") || !strcmp(e, "AllAccessDisabled")
				      ? "the key may not list the bucket (s3:ListBucket is needed to find "
					"stored messages again)"
				      : "the access key was refused (wrong access_key_id, secret or region?)");
	} else if (rc == MF_EMSG && !strcmp(req.error_code, "AuthorizationHeaderMalformed")) {
		err->code = rc = MF_ECONFIG;
		mf_err_prefix(err, "the bucket is in another region (set region)");
	}
	if (rc < 0)
		mf_err_prefix(err, "bucket %s", c->bucket);
out:
	mf_buf_free(&url);
	mf_buf_free(&q);
	mf_http_req_free(&req);
	return rc;
}

/* For verify and plan: List Objects (max-keys=1) under the mailbox's
 * prefix, nothing else. MF_ENOTFOUND when the bucket does not exist or
 * holds nothing of the mailbox. folder() then only makes a handle: a
 * bucket has no folders, and one without objects is empty. */
static int s3_open_read(const void *cfg, const struct mf_unit *unit, void **out,
			struct mf_err *err)
{
	const struct s3_cfg *c = cfg;
	static const long ok[] = {404, 0};
	struct mf_buf url = {0}, q = {0};
	struct mf_http_req req = {0};
	struct s3_call call = {.cfg = c};
	int rc;
	*out = NULL;
	if (!unit->mailbox || !unit->mailbox[0] || strchr(unit->mailbox, '/'))
		return mf_err_set(err, MF_EMAILBOX, "target mailbox name '%s' is empty or holds '/'",
				  unit->mailbox ? unit->mailbox : "");
	struct s3_snk *s = calloc(1, sizeof(*s));
	if (!s || !(s->mailbox = strdup(unit->mailbox))) {
		free(s);
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	}
	s->cfg = c;
	s->readonly = true;
	if (mf_buf_addstr(&q, "max-keys=1&prefix=") < 0 ||
	    mf_http_escape(&q, c->sub, strlen(c->sub), false) < 0 ||
	    mf_http_escape(&q, s->mailbox, strlen(s->mailbox), false) < 0 ||
	    mf_http_escape(&q, "/", 1, false) < 0 || object_url(&url, c, NULL, q.data) < 0) {
		rc = mf_err_set(err, MF_ENOMEM, "out of memory");
		goto out;
	}
	mf_http_acquire();
	rc = s3_do(&call, &req, "GET", url.data, ok, err);
	if (rc == 0 && req.status == 404)
		rc = mf_err_set(err, MF_ENOTFOUND, "bucket %s does not exist", c->bucket);
	else if (rc == 0 && !(req.resp.data && strstr(req.resp.data, "<Key>")))
		rc = mf_err_set(err, MF_ENOTFOUND, "bucket %s holds no object under %s%s/", c->bucket,
				c->sub, s->mailbox);
	else if (rc < 0)
		mf_err_prefix(err, "bucket %s", c->bucket);
	if (rc < 0)
		mf_http_release();
out:
	mf_buf_free(&url);
	mf_buf_free(&q);
	mf_http_req_free(&req);
	if (rc < 0) {
		free(s->mailbox);
		free(s);
		return rc;
	}
	*out = s;
	return 0;
}

static int s3_folder(void *snk, const struct mf_path *path, enum mf_role role, void **fh,
		     struct mf_err *err)
{
	(void)role;
	struct s3_snk *s = snk;
	return mf_blob_folder_open(&s->folders, s->cfg->sub, s->mailbox, path, fh, err);
}

static int s3_probe(void *snk, void *fh, const struct mf_item *item, char sink_id[MF_SINK_ID_MAX],
		    struct mf_err *err)
{
	struct s3_snk *s = snk;
	struct mf_blob_folder *f = fh;
	static const long ok[] = {404, 0};
	struct mf_buf url = {0};
	struct mf_http_req req = {0};
	struct s3_call call = {.cfg = s->cfg};
	int rc;
	char *name = mf_blob_object_name(f->prefix, item);
	if (!name || object_url(&url, s->cfg, name, NULL) < 0) {
		rc = mf_err_set(err, MF_ENOMEM, "out of memory");
		goto out;
	}
	rc = s3_do(&call, &req, "HEAD", url.data, ok, err);
	if (rc < 0)
		goto out;
	/* a broken object is overwritten by the store's PUT */
	rc = req.status == 404 || !mf_blob_whole(&req, item, name) ? 0 : 1;
	if (rc)
		snprintf(sink_id, MF_SINK_ID_MAX, "%s", name);
out:
	free(name);
	mf_buf_free(&url);
	mf_http_req_free(&req);
	return rc;
}

static void s3_meta(const struct mf_item *item, char *fl, size_t fsz, char *idate, size_t isz,
		    char *sha, size_t ssz)
{
	char f[96];
	mf_blob_flags(item->flags, f, sizeof(f));
	snprintf(fl, fsz, "x-amz-meta-flags: %s", f);
	snprintf(idate, isz, "x-amz-meta-idate: %lld", (long long)item->idate);
	snprintf(sha, ssz, "x-amz-meta-sha256: %s", item->hash_hex);
}

static int multipart(struct s3_snk *s, const char *name, const struct mf_item *item,
		     struct mf_err *err)
{
	int rc;
	char upload_id[512] = "", fl[160], idate[64], sha[96];
	struct mf_buf url = {0}, q = {0}, done = {0};
	struct mf_http_req req = {0};
	s3_meta(item, fl, sizeof(fl), idate, sizeof(idate), sha, sizeof(sha));
	struct s3_call init = {.cfg = s->cfg, .ctype = "message/rfc822", .meta = {fl, idate, sha}, .nmeta = 3};
	if (object_url(&url, s->cfg, name, "uploads=") < 0)
		goto nomem;
	rc = s3_do(&init, &req, "POST", url.data, NULL, err);
	if (rc < 0)
		goto out;
	size_t pos = 0;
	if (!mf_blob_xml_next(req.resp.data, req.resp.len, &pos, "UploadId", upload_id, sizeof(upload_id)) ||
	    !upload_id[0]) {
		rc = mf_http_fail(&req, MF_EPROTO, err, "multipart: no UploadId");
		goto out;
	}
	mf_http_req_free(&req);
	if (mf_buf_addstr(&done, "<CompleteMultipartUpload>") < 0)
		goto nomem;
	size_t nparts = (item->len + MF_BLOB_S3_PART - 1) / MF_BLOB_S3_PART;
	for (size_t i = 0; i < nparts; i++) {
		size_t off = i * MF_BLOB_S3_PART;
		size_t len = item->len - off < MF_BLOB_S3_PART ? item->len - off : MF_BLOB_S3_PART;
		unsigned char h[MF_SHA256_LEN];
		char hex[65];
		mf_sha256(item->data + off, len, h);
		mf_hex(h, sizeof(h), hex);
		q.len = 0;
		if (mf_buf_printf(&q, "partNumber=%zu&uploadId=", i + 1) < 0 ||
		    mf_http_escape(&q, upload_id, strlen(upload_id), false) < 0 ||
		    object_url(&url, s->cfg, name, q.data) < 0)
			goto nomem;
		struct s3_call pc = {.cfg = s->cfg, .payload_sha = hex};
		req.body = item->data + off;
		req.body_len = len;
		rc = s3_do(&pc, &req, "PUT", url.data, NULL, err);
		if (rc < 0) {
			mf_err_prefix(err, "part %zu of %zu", i + 1, nparts);
			goto abort;
		}
		if (!req.etag[0]) {
			rc = mf_http_fail(&req, MF_EPROTO, err, "multipart: part without ETag");
			goto abort;
		}
		if (mf_buf_printf(&done, "<Part><PartNumber>%zu</PartNumber><ETag>%s</ETag></Part>", i + 1,
				  req.etag) < 0)
			goto nomem_abort;
		mf_http_req_free(&req);
		req.body = NULL;
		req.body_len = 0;
	}
	if (mf_buf_addstr(&done, "</CompleteMultipartUpload>") < 0)
		goto nomem_abort;
	{
		unsigned char h[MF_SHA256_LEN];
		char hex[65];
		mf_sha256(done.data, done.len, h);
		mf_hex(h, sizeof(h), hex);
		q.len = 0;
		if (mf_buf_addstr(&q, "uploadId=") < 0 ||
		    mf_http_escape(&q, upload_id, strlen(upload_id), false) < 0 ||
		    object_url(&url, s->cfg, name, q.data) < 0)
			goto nomem_abort;
		struct s3_call cc = {.cfg = s->cfg, .payload_sha = hex, .ctype = "application/xml"};
		req.body = done.data;
		req.body_len = done.len;
		rc = s3_do(&cc, &req, "POST", url.data, NULL, err);
		if (rc == 0 && req.resp.data && strstr(req.resp.data, "<Error>")) {
			/* S3 may answer 200 with an error body on Complete */
			req.status = 500;
			rc = mf_http_fail(&req, MF_ECONN, err, "complete multipart");
		}
		if (rc < 0)
			goto abort;
	}
	goto out;
nomem_abort:
	rc = mf_err_set(err, MF_ENOMEM, "out of memory");
abort : {
	struct mf_http_req ab = {0};
	struct mf_err aerr = {0};
	struct s3_call ac = {.cfg = s->cfg};
	q.len = 0;
	if (mf_buf_addstr(&q, "uploadId=") == 0 &&
	    mf_http_escape(&q, upload_id, strlen(upload_id), false) == 0 &&
	    object_url(&url, s->cfg, name, q.data) == 0) {
		static const long ok[] = {404, 0};
		ab.max_attempts = 3;
		if (s3_do(&ac, &ab, "DELETE", url.data, ok, &aerr) < 0)
			mf_log(MF_LOG_WARN, "event=s3_abort_failed %s", aerr.msg);
	}
	mf_http_req_free(&ab);
	goto out;
}
nomem:
	rc = mf_err_set(err, MF_ENOMEM, "out of memory");
out:
	mf_buf_free(&url);
	mf_buf_free(&q);
	mf_buf_free(&done);
	mf_http_req_free(&req);
	return rc;
}

static int s3_store(void *snk, void *fh, const struct mf_item *item, char sink_id[MF_SINK_ID_MAX],
		    struct mf_err *err)
{
	struct s3_snk *s = snk;
	struct mf_blob_folder *f = fh;
	struct mf_buf url = {0};
	struct mf_http_req req = {0};
	int rc;
	char fl[160], idate[64], sha[96];
	if (s->readonly)
		return mf_err_set(err, MF_EINTERNAL, "s3: store on a sink opened read-only");
	char *name = mf_blob_object_name(f->prefix, item);
	if (!name) {
		rc = mf_err_set(err, MF_ENOMEM, "out of memory");
		goto out;
	}
	if (strlen(name) >= MF_SINK_ID_MAX) {
		rc = mf_err_set(err, MF_EFOLDER, "object key too long (%zu bytes)", strlen(name));
		goto out;
	}
	if (item->len > MF_BLOB_SINGLE_MAX) {
		rc = multipart(s, name, item, err);
	} else {
		s3_meta(item, fl, sizeof(fl), idate, sizeof(idate), sha, sizeof(sha));
		struct s3_call call = {.cfg = s->cfg, .payload_sha = item->hash_hex,
				       .ctype = "message/rfc822", .meta = {fl, idate, sha}, .nmeta = 3};
		if (object_url(&url, s->cfg, name, NULL) < 0) {
			rc = mf_err_set(err, MF_ENOMEM, "out of memory");
			goto out;
		}
		req.body = item->data;
		req.body_len = item->len;
		/* A PUT of the same name carries the same bytes: idempotent. */
		rc = s3_do(&call, &req, "PUT", url.data, NULL, err);
	}
	if (rc == 0)
		snprintf(sink_id, MF_SINK_ID_MAX, "%s", name);
out:
	free(name);
	mf_buf_free(&url);
	mf_http_req_free(&req);
	return rc;
}

static int s3_hashes(void *snk, void *fh, int (*cb)(void *arg, const char *hash_hex), void *arg,
		     struct mf_err *err)
{
	struct s3_snk *s = snk;
	struct mf_blob_folder *f = fh;
	char marker[2048] = "", key[2048], hex[65], trunc[16];
	struct mf_buf url = {0}, q = {0};
	int rc = 0;
	for (;;) {
		struct mf_http_req req = {.max_response = 64u << 20};
		struct s3_call call = {.cfg = s->cfg};
		q.len = 0;
		if ((marker[0] && (mf_buf_addstr(&q, "marker=") < 0 ||
				   mf_http_escape(&q, marker, strlen(marker), false) < 0 ||
				   mf_buf_addstr(&q, "&") < 0)) ||
		    mf_buf_addstr(&q, "prefix=") < 0 ||
		    mf_http_escape(&q, f->prefix, strlen(f->prefix), false) < 0 ||
		    object_url(&url, s->cfg, NULL, q.data) < 0) {
			rc = mf_err_set(err, MF_ENOMEM, "out of memory");
			break;
		}
		rc = s3_do(&call, &req, "GET", url.data, NULL, err);
		if (rc < 0) {
			mf_http_req_free(&req);
			break;
		}
		size_t pos = 0;
		marker[0] = '\0';
		while (mf_blob_xml_next(req.resp.data, req.resp.len, &pos, "Key", key, sizeof(key))) {
			snprintf(marker, sizeof(marker), "%s", key);
			if (mf_blob_name_hash(key, strlen(key), f->prefix, hex) && (rc = cb(arg, hex)) < 0)
				break;
		}
		pos = 0;
		trunc[0] = '\0';
		mf_blob_xml_next(req.resp.data, req.resp.len, &pos, "IsTruncated", trunc, sizeof(trunc));
		mf_http_req_free(&req);
		if (rc < 0 || strcmp(trunc, "true") != 0 || !marker[0])
			break;
	}
	mf_buf_free(&url);
	mf_buf_free(&q);
	return rc;
}

static void s3_close(void *snk)
{
	struct s3_snk *s = snk;
	if (!s)
		return;
	mf_blob_folders_free(&s->folders);
	free(s->mailbox);
	free(s);
	mf_http_release();
}

const struct mf_sink_ops mf_sink_s3 = {
	.name = "s3",
	.keys = s3_keys,
	.configure = s3_configure,
	.free_config = s3_free_config,
	.caps = s3_caps,
	.check = s3_check,
	.open = s3_open,
	.open_read = s3_open_read,
	.folder = s3_folder,
	.probe = s3_probe,
	.store = s3_store,
	.hashes = s3_hashes,
	.close = s3_close,
};
