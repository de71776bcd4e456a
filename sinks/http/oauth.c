/* oauth.c - OAuth2 client-credentials tokens, one cached per
 * (login_url, tenant, client_id, scope), shared by every mailbox. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/log.h"
#include "http.h"
#include "json.h"

#define TOKEN_MAX 8192

struct token {
	char *key;
	char value[TOKEN_MAX];
	uint64_t expires_ms; /* mf_now_ms() time; 0 = none */
	uint64_t margin_ms;
	pthread_mutex_t fetch; /* one fetch at a time for this key */
	struct token *next;
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct token *cache;

static char *make_key(const char *login_url, const char *tenant, const char *client_id,
		      const char *scope)
{
	struct mf_buf b = {0};
	if (mf_buf_printf(&b, "%s\n%s\n%s\n%s", login_url, tenant, client_id, scope) < 0) {
		mf_buf_free(&b);
		return NULL;
	}
	return b.data;
}

static struct token *find(const char *key, bool create)
{
	struct token *t;
	for (t = cache; t; t = t->next)
		if (strcmp(t->key, key) == 0)
			return t;
	if (!create)
		return NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->key = strdup(key);
	if (!t->key) {
		free(t);
		return NULL;
	}
	pthread_mutex_init(&t->fetch, NULL);
	t->next = cache;
	cache = t;
	return t;
}

static bool fresh(const struct token *t)
{
	return t->value[0] && mf_now_ms() + t->margin_ms < t->expires_ms;
}

static int fetch(struct token *t, const char *login_url, const char *tenant,
		 const char *client_id, const char *secret, const char *scope, struct mf_err *err)
{
	int rc;
	struct mf_buf url = {0}, body = {0};
	struct mf_http_req req = {0};
	rc = MF_ENOMEM;
	if (mf_buf_addstr(&url, login_url) < 0)
		goto out;
	while (url.len && url.data[url.len - 1] == '/')
		url.data[--url.len] = '\0';
	if (mf_buf_addstr(&url, "/") < 0 || mf_http_escape(&url, tenant, strlen(tenant), false) < 0 ||
	    mf_buf_addstr(&url, "/oauth2/v2.0/token") < 0)
		goto out;
	if (mf_buf_addstr(&body, "grant_type=client_credentials&client_id=") < 0 ||
	    mf_http_escape(&body, client_id, strlen(client_id), false) < 0 ||
	    mf_buf_addstr(&body, "&scope=") < 0 ||
	    mf_http_escape(&body, scope, strlen(scope), false) < 0 ||
	    mf_buf_addstr(&body, "&client_secret=") < 0 ||
	    mf_http_escape(&body, secret, strlen(secret), false) < 0)
		goto out;
	req.method = "POST";
	req.url = url.data;
	req.body = body.data;
	req.body_len = body.len;
	req.timeout_ms = 60000;
	req.max_attempts = 5;
	req.headers = curl_slist_append(NULL, "Content-Type: application/x-www-form-urlencoded");
	if (!req.headers)
		goto out;
	rc = mf_http_send(&req, NULL, err);
	if (rc < 0) {
		if (rc == MF_EMSG)
			rc = MF_EAUTH;
		char e[128] = "";
		mf_json_get_str(req.resp.data, req.resp.data + req.resp.len, "error", e, sizeof(e));
		mf_err_prefix(err, "token for tenant %s (%s)", tenant, e[0] ? e : "-");
		err->code = rc;
		mf_http_redact(err->msg);
		goto out;
	}
	const char *js = req.resp.data, *je = req.resp.data + req.resp.len;
	if (mf_json_get_str(js, je, "access_token", t->value, sizeof(t->value)) < 0 || !t->value[0]) {
		t->value[0] = '\0';
		rc = mf_err_set(err, MF_EAUTH, "token for tenant %s: no access_token in the answer",
				tenant);
		goto out;
	}
	long long exp = mf_json_get_int(js, je, "expires_in", 3599);
	if (exp < 1)
		exp = 1;
	t->expires_ms = mf_now_ms() + (uint64_t)exp * 1000;
	t->margin_ms = (uint64_t)exp * 1000 / 2 < 300000 ? (uint64_t)exp * 1000 / 2 : 300000;
	mf_log(MF_LOG_INFO, "event=oauth_token tenant=%s client=%s expires_in=%lld", tenant,
	       client_id, exp);
	rc = 0;
out:
	if (body.data)
		memset(body.data, 0, body.len);
	mf_buf_free(&body);
	mf_buf_free(&url);
	mf_http_req_free(&req);
	return rc;
}

int mf_oauth_token(const char *login_url, const char *tenant, const char *client_id,
		   const char *secret, const char *scope, char *out, size_t outsz,
		   struct mf_err *err)
{
	char *key = make_key(login_url, tenant, client_id, scope);
	if (!key)
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	pthread_mutex_lock(&cache_lock);
	struct token *t = find(key, true);
	pthread_mutex_unlock(&cache_lock);
	free(key);
	if (!t)
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	int rc = 0;
	pthread_mutex_lock(&t->fetch);
	if (!fresh(t))
		rc = fetch(t, login_url, tenant, client_id, secret, scope, err);
	if (rc == 0) {
		if (strlen(t->value) >= outsz)
			rc = mf_err_set(err, MF_EAUTH, "token too long");
		else
			snprintf(out, outsz, "%s", t->value);
	}
	pthread_mutex_unlock(&t->fetch);
	return rc;
}

void mf_oauth_invalidate(const char *login_url, const char *tenant, const char *client_id,
			 const char *scope, const char *token)
{
	char *key = make_key(login_url, tenant, client_id, scope);
	if (!key)
		return;
	pthread_mutex_lock(&cache_lock);
	struct token *t = find(key, false);
	pthread_mutex_unlock(&cache_lock);
	free(key);
	if (!t)
		return;
	pthread_mutex_lock(&t->fetch);
	if (strcmp(t->value, token) == 0) {
		memset(t->value, 0, sizeof(t->value));
		t->expires_ms = 0;
	}
	pthread_mutex_unlock(&t->fetch);
}
