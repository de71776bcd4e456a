/* graph.c - the tenant side of the coexistence check through Microsoft
 * Graph (tenant.h), with the graph sink's configuration and token cache.
 * GETs only: nothing in the tenant changes.
 */
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "directory/tenant.h"
#include "engine/job.h"
#include "engine/loop.h"
#include "sinks/graph/graph.h"
#include "sinks/http/http.h"
#include "sinks/http/json.h"

struct mf_tenant {
	const struct g_cfg *cfg;
	char token[G_TOKEN_MAX]; /* secret */
};

int mf_tenant_open(const struct mf_job *job, struct mf_tenant **out)
{
	*out = NULL;
	if (!job->snk || strcmp(job->snk->name, "graph") != 0 || !job->snk_cfg)
		return 0;
	struct mf_tenant *t = calloc(1, sizeof(*t));
	if (!t)
		return MF_ENOMEM;
	t->cfg = job->snk_cfg;
	/* the HTTP core sends its requests through the engine's loop; this
	 * thread is then a worker, as the sinks' are */
	if (mf_loop_start_thread() < 0) {
		free(t);
		return MF_ENOMEM;
	}
	mf_http_acquire();
	*out = t;
	return 0;
}

void mf_tenant_close(struct mf_tenant *t)
{
	if (!t)
		return;
	memset(t->token, 0, sizeof(t->token));
	free(t);
	mf_http_release();
	mf_loop_stop_thread();
}

static int prepare(void *arg, struct mf_http_req *req, struct mf_err *err)
{
	struct mf_tenant *t = arg;
	curl_slist_free_all(req->headers);
	req->headers = NULL;
	return g_auth_headers(t->cfg, t->token, sizeof(t->token), &req->headers, err);
}

static int reauth(void *arg, struct mf_http_req *req, struct mf_err *err)
{
	(void)req;
	(void)err;
	struct mf_tenant *t = arg;
	const struct g_cfg *c = t->cfg;
	mf_oauth_invalidate(c->login_url, c->tenant, c->client_id, c->scope, t->token);
	return 0;
}

static int get(struct mf_tenant *t, struct mf_http_req *req, const char *url, const long *ok,
	       struct mf_err *err)
{
	req->method = "GET";
	req->url = url;
	req->hooks.prepare = prepare;
	req->hooks.reauth = reauth;
	req->hooks.arg = t;
	return mf_http_send(req, ok, err);
}

int mf_tenant_domains(struct mf_tenant *t, char ***names, size_t *n, struct mf_err *err)
{
	*names = NULL;
	*n = 0;
	struct mf_buf url = {0};
	struct mf_http_req req = {0};
	int rc = MF_ENOMEM;
	if (mf_buf_printf(&url, "%s/v1.0/domains?$select=id,isVerified", t->cfg->graph_url) < 0)
		goto out;
	/* Graph pages /domains too: follow @odata.nextLink */
	for (int page = 0; page < 100; page++) {
		if ((rc = get(t, &req, url.data, NULL, err)) < 0) {
			mf_err_prefix(err, "verified domains from Graph");
			goto out;
		}
		const char *b = req.resp.data, *e = b + req.resp.len, *ve, *ee;
		const char *v = mf_json_member(b, e, "value", &ve);
		rc = MF_EPROTO;
		if (!v) {
			mf_err_set(err, rc, "verified domains from Graph: no value array in the answer");
			goto out;
		}
		for (const char *d = mf_json_array_first(v, ve, &ee); d;
		     d = mf_json_array_next(ee, ve, &ee)) {
			char id[256];
			const char *vv, *vend;
			if (mf_json_get_str(d, ee, "id", id, sizeof(id)) < 0)
				continue;
			vv = mf_json_member(d, ee, "isVerified", &vend);
			if (!vv || vend - vv != 4 || strncmp(vv, "true", 4) != 0)
				continue;
			char **grown = realloc(*names, (*n + 1) * sizeof(*grown));
			if (!grown || !(grown[*n] = strdup(id))) {
				if (grown)
					*names = grown;
				rc = MF_ENOMEM;
				goto out;
			}
			*names = grown;
			(*n)++;
		}
		char next[2048];
		if (mf_json_get_str(b, e, "@odata.nextLink", next, sizeof(next)) < 0 || !*next) {
			rc = 0;
			goto out;
		}
		url.len = 0;
		if (mf_buf_addstr(&url, next) < 0) {
			rc = MF_ENOMEM;
			goto out;
		}
		mf_http_req_free(&req);
	}
	rc = mf_err_set(err, MF_EPROTO, "verified domains from Graph: more than 100 pages");
out:
	mf_http_req_free(&req);
	mf_buf_free(&url);
	if (rc < 0) {
		for (size_t i = 0; i < *n; i++)
			free((*names)[i]);
		free(*names);
		*names = NULL;
		*n = 0;
	}
	return rc;
}

int mf_tenant_recipient(struct mf_tenant *t, const char *mailbox, enum mf_recipient *state,
			struct mf_err *err)
{
	struct mf_buf url = {0}, esc = {0};
	struct mf_http_req req = {0};
	static const long ok404[] = {404, 0};
	int rc = MF_ENOMEM;
	if (mf_http_escape(&esc, mailbox, strlen(mailbox), false) < 0 ||
	    mf_buf_printf(&url, "%s/v1.0/users/%s?$select=id", t->cfg->graph_url, esc.data) < 0)
		goto out;
	if ((rc = get(t, &req, url.data, ok404, err)) < 0)
		goto out;
	if (req.status == 404) {
		*state = MF_RECIPIENT_NONE;
		goto out;
	}
	mf_http_req_free(&req);
	url.len = 0;
	rc = MF_ENOMEM;
	if (mf_buf_printf(&url, "%s/v1.0/users/%s/mailboxSettings", t->cfg->graph_url,
			  esc.data) < 0)
		goto out;
	if ((rc = get(t, &req, url.data, ok404, err)) < 0)
		goto out;
	/* Graph's error.code, from the body: a listed status is not a failure,
	 * so the core left it unread */
	char code[128] = "";
	const char *b = req.resp.data ? req.resp.data : "", *ee;
	const char *eo = mf_json_member(b, b + req.resp.len, "error", &ee);
	if (eo && mf_json_get_str(eo, ee, "code", code, sizeof(code)) < 0)
		code[0] = '\0';
	if (req.status == 404 && strcmp(code, "MailboxNotEnabledForRESTAPI") != 0) {
		/* the user was there a moment ago: say what Graph said */
		rc = mf_http_fail(&req, MF_ENOTFOUND, err, "mailbox of the recipient");
		goto out;
	}
	*state = req.status == 404 ? MF_RECIPIENT_UNLICENSED : MF_RECIPIENT_MAILBOX;
out:
	mf_http_req_free(&req);
	mf_buf_free(&url);
	mf_buf_free(&esc);
	return rc;
}
