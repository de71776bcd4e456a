/* test_http.c - the HTTP core: redaction, codecs, JSON reading, pacing,
 * backoff, and retries honouring Retry-After against the Graph double when
 * more than 4 requests are in flight for a mailbox. */
#include <pthread.h>

#include "../doubles/cloud_test.h"
#include "engine/loop.h"
#include "sinks/http/http.h"
#include "sinks/http/json.h"
#include "test.h"

TEST(redact)
{
	char a[] = "PUT https://acct.blob.core.windows.net/c/b?sv=2015-04-05&sr=c&sig=AbC%2Bdef%3D&se=2030-01-01&sp=w failed";
	mf_http_redact(a);
	CHECK(strstr(a, "AbC") == NULL);
	CHECK(strstr(a, "sv=2015-04-05") != NULL);
	CHECK(strstr(a, "sig=REDACTED") != NULL);
	char b[] = "Authorization: Bearer eyJhbGciOi.xyz.abc and SharedKey acct:c2lnbmF0dXJl";
	mf_http_redact(b);
	CHECK(strstr(b, "eyJ") == NULL && strstr(b, "c2ln") == NULL);
	char c[] = "{\"access_token\":\"tok123\",\"x\":1} client_secret=hunter2&x=1 uploadUrl?authtoken=zzz";
	mf_http_redact(c);
	CHECK(strstr(c, "tok123") == NULL && strstr(c, "hunter2") == NULL && strstr(c, "zzz") == NULL);
	char d[] = "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/s3/aws4_request, Signature=0123abcd";
	mf_http_redact(d);
	CHECK(strstr(d, "AKID") == NULL && strstr(d, "0123abcd") == NULL);
}

TEST(codecs)
{
	struct mf_buf b = {0};
	CHECK_INT(mf_http_base64(&b, "hello!?", 7), 0);
	CHECK_STR(b.data, "aGVsbG8hPw==");
	unsigned char out[16];
	size_t n;
	CHECK_INT(mf_http_unbase64(b.data, b.len, out, sizeof(out), &n), 0);
	CHECK(n == 7 && memcmp(out, "hello!?", 7) == 0);
	CHECK_INT(mf_http_unbase64("a*b", 3, out, sizeof(out), &n), MF_EINVAL);
	mf_buf_free(&b);
	CHECK_INT(mf_http_escape(&b, "a b/ü+~", strlen("a b/ü+~"), true), 0);
	CHECK_STR(b.data, "a%20b/%C3%BC%2B~");
	mf_buf_free(&b);
}

TEST(json)
{
	const char *j = "{\"a\":{\"x\":[1,2]},\"value\":[{\"id\":\"f1\",\"displayName\":\"In\\\"box\"},"
			"{\"id\":\"f2\",\"displayName\":\"\\u00e9t\\u00e9\"}],\"@odata.nextLink\":\"http://h/n?$skip=2\","
			"\"expires_in\":3599}";
	const char *e = j + strlen(j), *ve, *ee;
	char s[64];
	CHECK_INT(mf_json_get_str(j, e, "@odata.nextLink", s, sizeof(s)), 0);
	CHECK_STR(s, "http://h/n?$skip=2");
	CHECK_INT(mf_json_get_int(j, e, "expires_in", 0), 3599);
	const char *v = mf_json_member(j, e, "value", &ve);
	CHECK(v != NULL);
	const char *el = mf_json_array_first(v, ve, &ee);
	CHECK_INT(mf_json_get_str(el, ee, "displayName", s, sizeof(s)), 0);
	CHECK_STR(s, "In\"box");
	el = mf_json_array_next(ee, ve, &ee);
	CHECK_INT(mf_json_get_str(el, ee, "displayName", s, sizeof(s)), 0);
	CHECK_STR(s, "été");
	CHECK(mf_json_array_next(ee, ve, &ee) == NULL);
	CHECK(mf_json_member(j, e, "missing", &ve) == NULL);
	CHECK_INT(mf_json_get_str("{\"a\":\"unterminated", NULL, "a", s, sizeof(s)) , MF_EINVAL);
	struct mf_buf q = {0};
	mf_json_quote(&q, "a\"b\\c\n");
	CHECK_STR(q.data, "\"a\\\"b\\\\c\\u000a\"");
	mf_buf_free(&q);
}

TEST(backoff)
{
	for (int a = 1; a < 20; a++) {
		uint64_t w = mf_http_backoff_ms(a);
		CHECK(w <= 60000);
		CHECK(w >= 25);
	}
}

/* Pacing: 5 requests per 1 s window: the 6th..10th wait for the window. */
struct pace_arg {
	struct mf_http_limit *l;
};

TEST(pacing)
{
	struct mf_http_limit *l = mf_http_limit_get("test:pace", 4, 5, 1000, 0, 0);
	CHECK(l != NULL);
	/* requests against the double's token endpoint are cheap: use a HEAD
	 * to a closed path; the status does not matter, only the timing */
	uint64_t t0 = mf_now_ms();
	for (int i = 0; i < 10; i++) {
		struct mf_http_req r = {.method = "GET", .url = "http://127.0.0.1:4570/_state", .limit = l};
		struct mf_err err = {0};
		CHECK_INT(mf_http_attempt(&r, &err), 0);
		CHECK_INT(r.status, 200);
		mf_http_req_free(&r);
	}
	uint64_t dt = mf_now_ms() - t0;
	CHECK(dt >= 1000); /* 10 requests at 5 per second cannot take less */
	unsigned peak = 0;
	CHECK_INT(mf_http_limit_inflight(l, &peak), 0);
	CHECK_INT(peak, 1);
}

/* 8 threads without a limit: the double throttles the 5th+ concurrent
 * request with 429 + Retry-After; mf_http_send waits and retries. */
struct tk {
	char token[8192];
	int failures;
	long attempts;
	int n;
};

static void *hammer(void *arg)
{
	struct tk *t = arg;
	char auth[8300];
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", t->token);
	for (int i = 0; i < 3; i++) {
		struct mf_http_req r = {.method = "GET",
					.url = "http://127.0.0.1:4570/v1.0/users/hammer%40x/mailFolders/inbox/childFolders"};
		r.headers = curl_slist_append(NULL, auth);
		struct mf_err err = {0};
		if (mf_http_send(&r, NULL, &err) < 0) {
			fprintf(stderr, "hammer: %s\n", err.msg);
			t->failures++;
		}
		CHECK(strstr(err.msg, "Bearer tok") == NULL);
		t->attempts += r.attempts;
		mf_http_req_free(&r);
	}
	return NULL;
}

TEST(retry_after_429)
{
	struct mf_err err = {0};
	static struct tk t[8];
	char tok[8192];
	int rc = mf_oauth_token("http://127.0.0.1:4570", "contoso.onmicrosoft.com", "client-1",
				"s3cr3t-Value~1", "https://graph.microsoft.com/.default", tok, sizeof(tok), &err);
	CHECK_INT(rc, 0);
	pthread_t th[8];
	uint64_t t0 = mf_now_ms();
	for (int i = 0; i < 8; i++) {
		snprintf(t[i].token, sizeof(t[i].token), "%s", tok);
		pthread_create(&th[i], NULL, hammer, &t[i]);
	}
	long attempts = 0;
	int fails = 0;
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		attempts += t[i].attempts;
		fails += t[i].failures;
	}
	CHECK_INT(fails, 0);
	CHECK(attempts > 24);               /* some were throttled and retried */
	CHECK(mf_now_ms() - t0 >= 1000);    /* ... after Retry-After: 1 */
	/* the token is cached: a second call does not fetch again */
	char tok2[8192];
	CHECK_INT(mf_oauth_token("http://127.0.0.1:4570", "contoso.onmicrosoft.com", "client-1",
				 "s3cr3t-Value~1", "https://graph.microsoft.com/.default", tok2, sizeof(tok2), &err), 0);
	CHECK_STR(tok2, tok);
}

int main(void)
{
	RUN(redact);
	RUN(codecs);
	RUN(json);
	RUN(backoff);
	int rc = cloud_start("cloud-http", "graph", "GRAPH_ARGS='--latency 200'");
	if (rc)
		return test_done() ? 1 : rc;
	mf_loop_start_thread();
	mf_http_acquire();
	RUN(pacing);
	RUN(retry_after_429);
	mf_http_release();
	mf_loop_stop_thread();
	cloud_stop();
	return test_done();
}
