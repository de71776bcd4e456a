/* http.c - one libcurl multi on the engine loop (the pattern of curl's
 * docs/examples/multi-uv.c), and the blocking send-with-retries that worker
 * threads use. */
#include "http.h"

#include <ctype.h>
#include <unistd.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <uv.h>

#include "engine/conf.h"
#include "engine/stats.h"
#include "engine/log.h"
#include "engine/loop.h"

/* ------------------------------------------------------------------------ */
/* Loop side. Everything in this section runs on the loop thread only,
 * except the refcount (under `core_lock`). */

struct sock_ctx {
	uv_poll_t poll;
	curl_socket_t fd;
	struct sock_ctx *next, *prev;
};

struct xfer {
	CURL *easy;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done;
	CURLcode result;
};

struct core {
	CURLM *multi;
	uv_timer_t *timer;
	struct sock_ctx *socks;
};

static struct core core;                  /* loop thread */
static pthread_mutex_t core_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned core_users;               /* under core_lock */
static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void global_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void finish_xfer(struct xfer *x, CURLcode res)
{
	pthread_mutex_lock(&x->mu);
	x->result = res;
	x->done = 1;
	pthread_cond_signal(&x->cv);
	pthread_mutex_unlock(&x->mu);
}

static void check_multi_info(void)
{
	CURLMsg *m;
	int pending;
	while ((m = curl_multi_info_read(core.multi, &pending))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		struct xfer *x = NULL;
		CURL *easy = m->easy_handle;
		CURLcode res = m->data.result;
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
		curl_multi_remove_handle(core.multi, easy);
		if (x)
			finish_xfer(x, res);
	}
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
	struct sock_ctx *s = h->data;
	int flags = 0, running;
	if (status < 0)
		flags = CURL_CSELECT_ERR;
	if (!status && (events & UV_READABLE))
		flags |= CURL_CSELECT_IN;
	if (!status && (events & UV_WRITABLE))
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(core.multi, s->fd, flags, &running);
	check_multi_info();
}

static void timer_cb(uv_timer_t *t)
{
	(void)t;
	int running;
	curl_multi_socket_action(core.multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_multi_info();
}

static int start_timeout(CURLM *multi, long timeout_ms, void *userp)
{
	(void)multi;
	(void)userp;
	if (timeout_ms < 0)
		uv_timer_stop(core.timer);
	else
		uv_timer_start(core.timer, timer_cb, timeout_ms == 0 ? 1 : (uint64_t)timeout_ms, 0);
	return 0;
}

static void free_handle_cb(uv_handle_t *h)
{
	free(h->data);
}

static void sock_close(struct sock_ctx *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		core.socks = s->next;
	if (s->next)
		s->next->prev = s->prev;
	uv_poll_stop(&s->poll);
	if (!uv_is_closing((uv_handle_t *)&s->poll))
		uv_close((uv_handle_t *)&s->poll, free_handle_cb);
}

static int handle_socket(CURL *easy, curl_socket_t fd, int action, void *userp, void *socketp)
{
	(void)easy;
	(void)userp;
	struct sock_ctx *s = socketp;
	if (action == CURL_POLL_REMOVE) {
		if (s) {
			curl_multi_assign(core.multi, fd, NULL);
			sock_close(s);
		}
		return 0;
	}
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s)
			return -1;
		s->fd = fd;
		if (uv_poll_init_socket(mf_loop_get(), &s->poll, fd) < 0) {
			free(s);
			return -1;
		}
		s->poll.data = s;
		s->next = core.socks;
		if (core.socks)
			core.socks->prev = s;
		core.socks = s;
		curl_multi_assign(core.multi, fd, s);
	}
	int ev = 0;
	if (action != CURL_POLL_OUT)
		ev |= UV_READABLE;
	if (action != CURL_POLL_IN)
		ev |= UV_WRITABLE;
	uv_poll_start(&s->poll, ev, poll_cb);
	return 0;
}

static int core_init(void)
{
	if (core.multi)
		return 0;
	core.timer = calloc(1, sizeof(*core.timer));
	if (!core.timer)
		return -1;
	uv_timer_init(mf_loop_get(), core.timer);
	core.timer->data = core.timer;
	core.multi = curl_multi_init();
	if (!core.multi) {
		uv_close((uv_handle_t *)core.timer, free_handle_cb);
		core.timer = NULL;
		return -1;
	}
	curl_multi_setopt(core.multi, CURLMOPT_SOCKETFUNCTION, handle_socket);
	curl_multi_setopt(core.multi, CURLMOPT_TIMERFUNCTION, start_timeout);
	/* Per-host concurrency: curl queues the rest inside the multi. */
	curl_multi_setopt(core.multi, CURLMOPT_MAX_HOST_CONNECTIONS, 16L);
	curl_multi_setopt(core.multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, 256L);
	curl_multi_setopt(core.multi, CURLMOPT_MAXCONNECTS, 64L);
	return 0;
}

static void start_on_loop(void *arg)
{
	struct xfer *x = arg;
	if (core_init() < 0) {
		finish_xfer(x, CURLE_OUT_OF_MEMORY);
		return;
	}
	CURLMcode mc = curl_multi_add_handle(core.multi, x->easy);
	if (mc != CURLM_OK)
		finish_xfer(x, CURLE_FAILED_INIT);
}

struct shutdown_wait {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done;
};

static void shutdown_on_loop(void *arg)
{
	struct shutdown_wait *w = arg;
	pthread_mutex_lock(&core_lock);
	unsigned users = core_users;
	pthread_mutex_unlock(&core_lock);
	if (users == 0 && core.multi) {
		curl_multi_cleanup(core.multi);
		core.multi = NULL;
		while (core.socks)
			sock_close(core.socks);
		uv_timer_stop(core.timer);
		uv_close((uv_handle_t *)core.timer, free_handle_cb);
		core.timer = NULL;
	}
	pthread_mutex_lock(&w->mu);
	w->done = 1;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

void mf_http_acquire(void)
{
	pthread_once(&global_once, global_init);
	pthread_mutex_lock(&core_lock);
	core_users++;
	pthread_mutex_unlock(&core_lock);
}

void mf_http_release(void)
{
	pthread_mutex_lock(&core_lock);
	unsigned users = core_users ? --core_users : 0;
	pthread_mutex_unlock(&core_lock);
	if (users)
		return;
	struct shutdown_wait w = {.done = 0};
	pthread_mutex_init(&w.mu, NULL);
	pthread_cond_init(&w.cv, NULL);
	if (mf_loop_post(shutdown_on_loop, &w) == 0) {
		pthread_mutex_lock(&w.mu);
		while (!w.done)
			pthread_cond_wait(&w.cv, &w.mu);
		pthread_mutex_unlock(&w.mu);
	}
	pthread_mutex_destroy(&w.mu);
	pthread_cond_destroy(&w.cv);
}

/* ------------------------------------------------------------------------ */
/* Limits (any thread). */

/* A pacer spends its budget smoothly (GCRA, a virtual schedule): each
 * taken amount moves `tat` on by amount * window / (0.9 max), and a take
 * is allowed while tat is at most a tenth of the window ahead of now. Any
 * window then holds at most 1.1 * 0.9 = 0.99 of max, and a burst is at most
 * a tenth of the budget, so that a limit is never spent in one go (which
 * provokes 429s that resend whole bodies). */
struct pacer {
	uint64_t max, window_ms;
	uint64_t tat; /* ms: when the amounts taken so far are paid for */
};

struct mf_http_limit {
	char *key;
	unsigned max_inflight, inflight, peak;
	struct pacer req, bytes;
	uint64_t blocked_until; /* ms: a Retry-After the service gave the key */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct mf_http_limit *next;
};

static pthread_mutex_t limits_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mf_http_limit *limits;

struct mf_http_limit *mf_http_limit_get(const char *key, unsigned max_inflight,
					uint64_t max_requests, uint64_t requests_window_ms,
					uint64_t max_bytes, uint64_t bytes_window_ms)
{
	pthread_mutex_lock(&limits_lock);
	struct mf_http_limit *l;
	for (l = limits; l; l = l->next)
		if (strcmp(l->key, key) == 0)
			goto out;
	l = calloc(1, sizeof(*l));
	if (!l)
		goto out;
	l->key = strdup(key);
	if (!l->key) {
		free(l);
		l = NULL;
		goto out;
	}
	l->max_inflight = max_inflight ? max_inflight : 1;
	l->req.max = max_requests;
	l->req.window_ms = requests_window_ms;
	l->bytes.max = max_bytes;
	l->bytes.window_ms = bytes_window_ms;
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cv, NULL);
	l->next = limits;
	limits = l;
out:
	pthread_mutex_unlock(&limits_lock);
	return l;
}

unsigned mf_http_limit_inflight(struct mf_http_limit *l, unsigned *peak)
{
	pthread_mutex_lock(&l->mu);
	unsigned n = l->inflight;
	if (peak)
		*peak = l->peak;
	pthread_mutex_unlock(&l->mu);
	return n;
}

/* Take `amount` at `now` (ms): 0 when taken, else how long to wait. */
static uint64_t pace_take(struct pacer *p, uint64_t amount, uint64_t now)
{
	if (!p->max || !p->window_ms)
		return 0;
	uint64_t eff = p->max - p->max / 10, tau = p->window_ms / 10;
	if (amount > p->max)
		amount = p->max; /* a single huge upload: it waits for an idle pacer */
	uint64_t t = p->tat > now ? p->tat : now;
	if (t - now > tau)
		return t - now - tau;
	/* the cost rounded up: never faster than the rate */
	p->tat = t + (amount * p->window_ms + eff - 1) / (eff ? eff : 1);
	return 0;
}

/* Under l->mu: 0 when a request of `bytes` may go now (taken), else the ms
 * to wait (the key's Retry-After, or its pacing). */
static uint64_t limit_try_locked(struct mf_http_limit *l, uint64_t bytes, uint64_t now)
{
	if (l->blocked_until > now)
		return l->blocked_until - now;
	/* Check both before taking either. */
	struct pacer rq = l->req, by = l->bytes;
	uint64_t w1 = pace_take(&rq, 1, now);
	uint64_t w2 = pace_take(&by, bytes, now);
	if (!w1 && !w2) {
		l->req = rq;
		l->bytes = by;
		return 0;
	}
	return w1 > w2 ? w1 : w2;
}

uint64_t mf_http_limit_try(struct mf_http_limit *l, uint64_t bytes)
{
	pthread_mutex_lock(&l->mu);
	uint64_t w = limit_try_locked(l, bytes, mf_now_ms());
	pthread_mutex_unlock(&l->mu);
	return w;
}

void mf_http_limit_block(struct mf_http_limit *l, uint64_t ms)
{
	pthread_mutex_lock(&l->mu);
	uint64_t until = mf_now_ms() + ms;
	if (until > l->blocked_until)
		l->blocked_until = until;
	pthread_mutex_unlock(&l->mu);
}

static void limit_enter(struct mf_http_limit *l, uint64_t bytes)
{
	pthread_mutex_lock(&l->mu);
	for (;;) {
		if (l->inflight >= l->max_inflight) {
			pthread_cond_wait(&l->cv, &l->mu);
			continue;
		}
		uint64_t w = limit_try_locked(l, bytes, mf_now_ms());
		if (!w)
			break;
		mf_log(MF_LOG_INFO, "event=http_pacing key=%s wait_ms=%llu", l->key,
		       (unsigned long long)w);
		pthread_mutex_unlock(&l->mu);
		mf_sleep_ms(w, NULL);
		pthread_mutex_lock(&l->mu);
	}
	l->inflight++;
	if (l->inflight > l->peak)
		l->peak = l->inflight;
	pthread_mutex_unlock(&l->mu);
}

static void limit_leave(struct mf_http_limit *l)
{
	pthread_mutex_lock(&l->mu);
	l->inflight--;
	pthread_cond_signal(&l->cv);
	pthread_mutex_unlock(&l->mu);
}

/* ------------------------------------------------------------------------ */
/* Worker side. */

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct mf_http_req *r = userdata;
	size_t n = size * nmemb;
	size_t cap = r->max_response ? r->max_response : (size_t)8 << 20;
	if (r->resp.len >= cap)
		return n; /* keep the head only */
	size_t take = n;
	if (take > cap - r->resp.len)
		take = cap - r->resp.len;
	if (mf_buf_add(&r->resp, ptr, take) < 0)
		return 0;
	return n;
}

static void copy_value(char *dst, size_t dsz, const char *v, size_t vlen)
{
	while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
		vlen--;
	while (vlen && (*v == ' ' || *v == '\t')) {
		v++;
		vlen--;
	}
	if (vlen >= dsz)
		vlen = dsz - 1;
	memcpy(dst, v, vlen);
	dst[vlen] = '\0';
}

static long parse_retry_after(const char *v)
{
	char *end;
	long s = strtol(v, &end, 10);
	if (end != v && s >= 0 && s < 86400)
		return s * 1000;
	/* HTTP-date form */
	time_t t = curl_getdate(v, NULL);
	if (t > 0) {
		time_t now = time(NULL);
		return t > now ? (long)(t - now) * 1000 : 0;
	}
	return -1;
}

static size_t header_cb(char *buf, size_t size, size_t nitems, void *userdata)
{
	struct mf_http_req *r = userdata;
	size_t n = size * nitems;
	const char *colon = memchr(buf, ':', n);
	if (!colon)
		return n;
	size_t nl = (size_t)(colon - buf);
	const char *v = colon + 1;
	size_t vl = n - nl - 1;
#define HDR(name) (nl == sizeof(name) - 1 && strncasecmp(buf, name, nl) == 0)
	if (HDR("request-id") || HDR("x-ms-request-id") || HDR("x-amz-request-id"))
		copy_value(r->request_id, sizeof(r->request_id), v, vl);
	else if (HDR("client-request-id") || HDR("x-ms-client-request-id"))
		copy_value(r->client_request_id, sizeof(r->client_request_id), v, vl);
	else if (HDR("x-ms-error-code"))
		copy_value(r->error_code, sizeof(r->error_code), v, vl);
	else if (HDR("etag"))
		copy_value(r->etag, sizeof(r->etag), v, vl);
	else if (HDR("x-ms-meta-sha256") || HDR("x-amz-meta-sha256"))
		copy_value(r->meta_sha256, sizeof(r->meta_sha256), v, vl);
	else if (HDR("content-length")) {
		char tmp[32], *end;
		copy_value(tmp, sizeof(tmp), v, vl);
		long long cl = strtoll(tmp, &end, 10);
		r->content_length = end != tmp && *end == '\0' && cl >= 0 ? cl : -1;
	}
	else if (HDR("location"))
		copy_value(r->location, sizeof(r->location), v, vl);
	else if (HDR("retry-after")) {
		char tmp[64];
		copy_value(tmp, sizeof(tmp), v, vl);
		r->retry_after_ms = parse_retry_after(tmp);
	}
#undef HDR
	return n;
}

static void reset_outputs(struct mf_http_req *r)
{
	r->status = 0;
	r->resp.len = 0;
	if (r->resp.data)
		r->resp.data[0] = '\0';
	r->request_id[0] = r->client_request_id[0] = r->error_code[0] = '\0';
	r->tls_untrusted = false;
	r->etag[0] = r->location[0] = r->meta_sha256[0] = '\0';
	r->content_length = -1;
	r->retry_after_ms = -1;
}

void mf_http_req_free(struct mf_http_req *req)
{
	curl_slist_free_all(req->headers);
	req->headers = NULL;
	mf_buf_free(&req->resp);
	reset_outputs(req);
	req->attempts = 0;
	req->resolved = false;
}

/* ---- TLS settings per service ---------------------------------------------- */

struct tls_rule {
	char *prefix;
	bool verify;
	char *ca_file;
};
static pthread_mutex_t tls_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tls_rule *tls_rules; /* under tls_lock */
static size_t ntls;

static int tls_add(const char *prefix, bool verify, const char *ca_file)
{
	char *p = strdup(prefix), *ca = ca_file ? strdup(ca_file) : NULL;
	if (!p || (ca_file && !ca)) {
		free(p);
		free(ca);
		return MF_ENOMEM;
	}
	pthread_mutex_lock(&tls_lock);
	for (size_t i = 0; i < ntls; i++) {
		if (strcmp(tls_rules[i].prefix, p) == 0) { /* reconfigured: replace */
			free(tls_rules[i].prefix);
			free(tls_rules[i].ca_file);
			tls_rules[i] = (struct tls_rule){.prefix = p, .verify = verify, .ca_file = ca};
			pthread_mutex_unlock(&tls_lock);
			return 0;
		}
	}
	struct tls_rule *r = realloc(tls_rules, (ntls + 1) * sizeof(*r));
	if (!r) {
		pthread_mutex_unlock(&tls_lock);
		free(p);
		free(ca);
		return MF_ENOMEM;
	}
	tls_rules = r;
	tls_rules[ntls++] = (struct tls_rule){.prefix = p, .verify = verify, .ca_file = ca};
	pthread_mutex_unlock(&tls_lock);
	return 0;
}

int mf_http_tls_conf(const struct mf_conf_section *sec, const char *const *prefixes, size_t n,
		     struct mf_err *err)
{
	bool verify;
	char *ca = NULL;
	int rc = mf_conf_bool(sec, "tls_verify", true, &verify, err);
	if (rc == 0)
		rc = mf_conf_path(sec, "tls_ca_file", NULL, &ca, err);
	if (rc == 0 && ca && access(ca, R_OK) != 0)
		rc = mf_conf_error(sec, "tls_ca_file", err, "cannot read %s: %s", ca, strerror(errno));
	for (size_t i = 0; rc == 0 && i < n; i++) {
		if (!prefixes[i])
			continue;
		if ((rc = tls_add(prefixes[i], verify, ca)) < 0)
			rc = mf_err_set(err, rc, "out of memory");
		else if (!verify && strncasecmp(prefixes[i], "https:", 6) == 0)
			mf_log(MF_LOG_WARN,
			       "event=tls_verify_off url=%s msg=\"server certificate not verified (tls_verify = no)\"",
			       prefixes[i]);
	}
	free(ca);
	return rc;
}

/* Apply the rule of the longest matching prefix (default: verify against
 * the system's CAs). */
static void tls_apply(CURL *e, const char *url)
{
	bool verify = true;
	const char *ca = NULL;
	size_t best = 0;
	pthread_mutex_lock(&tls_lock);
	for (size_t i = 0; i < ntls; i++) {
		size_t l = strlen(tls_rules[i].prefix);
		if (l > best && strncmp(url, tls_rules[i].prefix, l) == 0) {
			best = l;
			verify = tls_rules[i].verify;
			ca = tls_rules[i].ca_file;
		}
	}
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, verify ? 1L : 0L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, verify ? 2L : 0L);
	if (ca)
		curl_easy_setopt(e, CURLOPT_CAINFO, ca); /* curl copies the string */
	pthread_mutex_unlock(&tls_lock);
}

static bool tls_trust_error(CURLcode c)
{
	return c == CURLE_PEER_FAILED_VERIFICATION || c == CURLE_SSL_CACERT_BADFILE ||
	       c == CURLE_SSL_ISSUER_ERROR || c == CURLE_SSL_PINNEDPUBKEYNOTMATCH;
}

int mf_http_attempt(struct mf_http_req *req, struct mf_err *err)
{
	int rc = 0;
	char cerr[CURL_ERROR_SIZE] = "";
	struct xfer x = {.done = 0};
	reset_outputs(req);
	x.easy = curl_easy_init();
	if (!x.easy)
		return mf_err_set(err, MF_ENOMEM, "cannot create a curl handle");
	pthread_mutex_init(&x.mu, NULL);
	pthread_cond_init(&x.cv, NULL);
	CURL *e = x.easy;
	curl_easy_setopt(e, CURLOPT_URL, req->url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)&x);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	tls_apply(e, req->url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, req);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, req);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 30000L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, req->timeout_ms > 0 ? req->timeout_ms : 300000L);
	/* a peer that stalls (sends under 1 byte/s for 60 s) is a dropped
	 * connection, not a slow upload: give up and let the retry logic work */
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, 60L);
	if (strcmp(req->method, "HEAD") == 0)
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	else if (strcmp(req->method, "GET") != 0)
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
	if (req->body || strcmp(req->method, "PUT") == 0 || strcmp(req->method, "POST") == 0) {
		/* POSTFIELDS does not copy: the borrowed body is sent as is. */
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body ? (const char *)req->body : "");
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
	}
	if (req->aws_sigv4)
		curl_easy_setopt(e, CURLOPT_AWS_SIGV4, req->aws_sigv4);
	if (req->userpwd)
		curl_easy_setopt(e, CURLOPT_USERPWD, req->userpwd);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, req->headers);

	if (req->limit)
		limit_enter(req->limit, req->body_len);
	if (mf_loop_post(start_on_loop, &x) < 0) {
		rc = mf_err_set(err, MF_ENOMEM, "cannot post to the loop");
		if (req->limit)
			limit_leave(req->limit);
		goto out;
	}
	pthread_mutex_lock(&x.mu);
	while (!x.done)
		pthread_cond_wait(&x.cv, &x.mu);
	pthread_mutex_unlock(&x.mu);
	if (req->limit) {
		/* a throttle's Retry-After holds the key before the slot is
		 * free again: no other request of it slips out meanwhile */
		long st = 0;
		if (x.result == CURLE_OK)
			curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &st);
		if ((st == 429 || st == 503 || st == 509) && req->retry_after_ms >= 0)
			mf_http_limit_block(req->limit, (uint64_t)req->retry_after_ms);
		limit_leave(req->limit);
	}
	req->attempts++;
	if (!req->resp.data)
		mf_buf_add(&req->resp, "", 0);
	if (req->resp.data)
		req->resp.data[req->resp.len] = '\0';
	if (x.result != CURLE_OK) {
		req->status = 0;
		req->tls_untrusted = tls_trust_error(x.result);
		rc = mf_err_set(err, x.result == CURLE_OUT_OF_MEMORY ? MF_ENOMEM
				     : req->tls_untrusted                ? MF_ECONFIG
									 : MF_ECONN,
				"%s%s", cerr[0] ? cerr : curl_easy_strerror(x.result),
				req->tls_untrusted ? " (the server's certificate is not trusted: "
						     "set tls_ca_file to its CA, or tls_verify = no)"
						   : "");
		mf_http_redact(err->msg);
		goto out;
	}
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &req->status);
out:
	curl_easy_cleanup(e);
	pthread_mutex_destroy(&x.mu);
	pthread_cond_destroy(&x.cv);
	return rc;
}

/* Find the error code in a JSON ("code":"X") or XML (<Code>X</Code>) body,
 * when no header gave one. */
static void body_error_code(struct mf_http_req *r)
{
	if (r->error_code[0] || !r->resp.data)
		return;
	const char *p = strstr(r->resp.data, "\"code\"");
	if (p) {
		p = strchr(p + 6, '"');
		if (p) {
			const char *q = strchr(p + 1, '"');
			if (q)
				copy_value(r->error_code, sizeof(r->error_code), p + 1,
					   (size_t)(q - p - 1));
		}
		return;
	}
	p = strstr(r->resp.data, "<Code>");
	if (p) {
		const char *q = strstr(p, "</Code>");
		if (q)
			copy_value(r->error_code, sizeof(r->error_code), p + 6, (size_t)(q - p - 6));
	}
}

int mf_http_fail(struct mf_http_req *req, int code, struct mf_err *err, const char *what)
{
	char url[512];
	const char *u = req->url ? req->url : "";
	/* scheme://host/path only: the query may carry a SAS */
	size_t ul = strcspn(u, "?");
	if (ul >= sizeof(url))
		ul = sizeof(url) - 1;
	memcpy(url, u, ul);
	url[ul] = '\0';
	mf_http_redact(url);
	char detail[256] = "";
	if (req->status == 0 && err && err->code)
		snprintf(detail, sizeof(detail), "%s", err->msg);
	mf_err_set(err, code, "%s%s%s %s: %s%ld%s%s request-id=%s client-request-id=%s attempts=%d",
		   what ? what : "", what ? ": " : "", req->method, url,
		   req->status ? "HTTP " : "transport error ", req->status,
		   req->error_code[0] ? " " : "", req->error_code,
		   req->request_id[0] ? req->request_id : "-",
		   req->client_request_id[0] ? req->client_request_id : "-", req->attempts);
	if (detail[0] && err) {
		size_t l = strlen(err->msg);
		snprintf(err->msg + l, sizeof(err->msg) - l, " (%s)", detail);
	}
	if (err) {
		mf_http_redact(err->msg);
		if (code == MF_ETHROTTLED && req->retry_after_ms > 0)
			err->retry_after_ms = (int)req->retry_after_ms;
		mf_log(MF_LOG_WARN, "event=http_fail %s", err->msg);
	}
	return code;
}

static bool in_list(long st, const long *ok)
{
	for (; ok && *ok; ok++)
		if (*ok == st)
			return true;
	return false;
}

static int code_for(long st)
{
	switch (st) {
	case 0:
		return MF_ECONN;
	case 401:
	case 403:
		return MF_EAUTH;
	case 404:
		return MF_ENOTFOUND;
	case 413:
		return MF_ETOOBIG;
	case 429:
	case 509: /* Bandwidth Limit Exceeded: a throttle like 429 */
		return MF_ETHROTTLED;
	case 507:
		return MF_EQUOTA;
	default:
		break;
	}
	if (st == 503)
		return MF_ETHROTTLED;
	if (st >= 500)
		return MF_ECONN;
	return MF_EMSG;
}

static bool retryable(long st)
{
	return st == 0 || st == 408 || st == 429 || st == 500 || st == 502 || st == 503 ||
	       st == 504 || st == 509;
}

uint64_t mf_http_backoff_ms(int attempt)
{
	static __thread unsigned seed;
	if (!seed)
		seed = (unsigned)mf_now_ms() ^ (unsigned)(uintptr_t)&seed;
	uint64_t cap = 250ull << (attempt < 9 ? attempt : 9);
	if (cap > 60000)
		cap = 60000;
	/* full jitter, but never under a tenth of the cap */
	uint64_t j = (uint64_t)rand_r(&seed) % (cap + 1);
	return j < cap / 10 ? cap / 10 : j;
}

int mf_http_send(struct mf_http_req *req, const long *ok, struct mf_err *err)
{
	int max = req->max_attempts > 0 ? req->max_attempts : 8;
	bool reauthed = false, ambiguous = false;
	req->attempts = 0;
	req->resolved = false;
	for (;;) {
		if (ambiguous && req->create && req->hooks.resolve) {
			int f = req->hooks.resolve(req->hooks.arg, req, err);
			if (f < 0)
				return f;
			if (f > 0) {
				req->resolved = true;
				mf_log(MF_LOG_INFO,
				       "event=http_resolved method=%s attempts=%d note=\"create found after an ambiguous failure\"",
				       req->method, req->attempts);
				return 0;
			}
		}
		if (req->hooks.prepare) {
			int rc = req->hooks.prepare(req->hooks.arg, req, err);
			if (rc < 0)
				return rc;
		}
		struct mf_err aerr = {0};
		int rc = mf_http_attempt(req, &aerr);
		if (rc == MF_ENOMEM)
			return mf_err_set(err, rc, "%s", aerr.msg);
		long st = req->status;
		if (st >= 200 && st < 300)
			return 0;
		if (st && in_list(st, ok))
			return 0;
		body_error_code(req);
		if (st == 401 && !reauthed && req->hooks.reauth) {
			reauthed = true;
			if (req->hooks.reauth(req->hooks.arg, req, err) < 0)
				return mf_http_fail(req, MF_EAUTH, err, NULL);
			continue;
		}
		if (req->tls_untrusted) { /* no retry fixes trust */
			if (err)
				*err = aerr;
			return mf_http_fail(req, MF_ECONFIG, err, NULL);
		}
		if (!retryable(st) || req->attempts >= max) {
			if (err && st == 0)
				*err = aerr;
			return mf_http_fail(req, code_for(st), err, NULL);
		}
		/* A create that timed out or got a 5xx may have been stored. 429
		 * means "not processed". */
		ambiguous = st != 429 && st != 509;
		uint64_t wait = mf_http_backoff_ms(req->attempts);
		if ((st == 429 || st == 503 || st == 509) && req->retry_after_ms >= 0) {
			/* (mf_http_attempt has held the whole key as long) */
			wait = (uint64_t)req->retry_after_ms;
		}
		char url[256];
		size_t ul = strcspn(req->url, "?");
		snprintf(url, sizeof(url), "%.*s", (int)(ul < 255 ? ul : 255), req->url);
		mf_http_redact(url);
		mf_stats_retry();
		mf_log(MF_LOG_INFO,
		       "event=http_retry method=%s url=%s status=%ld code=%s request-id=%s attempt=%d wait_ms=%llu",
		       req->method, url, st, req->error_code[0] ? req->error_code : "-",
		       req->request_id[0] ? req->request_id : "-", req->attempts,
		       (unsigned long long)wait);
		mf_sleep_ms(wait, NULL);
	}
}

/* ------------------------------------------------------------------------ */
/* Text helpers. */

static const char *const secret_params[] = {
	"sig", "se", "st", "skoid", "sktid", "skt", "ske", "sks", "skv", "authtoken",
	"access_token", "client_secret", "x-amz-signature", "x-amz-credential",
	"x-amz-security-token", "code", "token", "refresh_token", "client_assertion", NULL,
};

static bool is_secret_param(const char *k, size_t kl)
{
	for (size_t i = 0; secret_params[i]; i++)
		if (strlen(secret_params[i]) == kl && strncasecmp(k, secret_params[i], kl) == 0)
			return true;
	return false;
}

static const char *const secret_prefixes[] = {
	"Bearer ", "SharedKey ", "Signature=", "Credential=", "\"access_token\":\"",
	"\"access_token\": \"", "\"client_secret\":\"", NULL,
};

#define REDACTED "REDACTED"

void mf_http_redact(char *s)
{
	if (!s)
		return;
	/* Query-style parameters: [?&]key=value */
	for (char *p = s; *p; p++) {
		if (*p != '?' && *p != '&' && *p != ' ' && p != s)
			continue;
		char *k = (*p == '?' || *p == '&' || *p == ' ') ? p + 1 : p;
		char *eq = k;
		while (*eq && (isalnum((unsigned char)*eq) || *eq == '_' || *eq == '-'))
			eq++;
		if (*eq != '=' || !is_secret_param(k, (size_t)(eq - k)))
			continue;
		char *v = eq + 1;
		size_t vl = strcspn(v, "& \t\r\n\"'<>");
		if (vl == 0)
			continue;
		size_t rl = sizeof(REDACTED) - 1 < vl ? sizeof(REDACTED) - 1 : vl;
		memcpy(v, REDACTED, rl);
		memmove(v + rl, v + vl, strlen(v + vl) + 1);
	}
	/* Credentials after a marker */
	for (size_t i = 0; secret_prefixes[i]; i++) {
		size_t pl = strlen(secret_prefixes[i]);
		for (char *p = strstr(s, secret_prefixes[i]); p; p = strstr(p + pl, secret_prefixes[i])) {
			char *v = p + pl;
			size_t vl = strcspn(v, " ,\t\r\n\"'<>&");
			if (vl == 0)
				continue;
			size_t rl = sizeof(REDACTED) - 1 < vl ? sizeof(REDACTED) - 1 : vl;
			memcpy(v, REDACTED, rl);
			memmove(v + rl, v + vl, strlen(v + vl) + 1);
		}
	}
}

int mf_http_escape(struct mf_buf *out, const char *s, size_t len, bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' ||
		    (keep_slash && c == '/')) {
			if (mf_buf_add(out, &s[i], 1) < 0)
				return MF_ENOMEM;
		} else {
			char e[3] = {'%', hex[c >> 4], hex[c & 15]};
			if (mf_buf_add(out, e, 3) < 0)
				return MF_ENOMEM;
		}
	}
	return mf_buf_add(out, "", 0) < 0 ? MF_ENOMEM : 0;
}

static const char b64chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int mf_http_base64(struct mf_buf *out, const void *data, size_t len)
{
	const unsigned char *d = data;
	size_t need = out->len + (len + 2) / 3 * 4 + 1;
	if (need > out->cap) {
		char *n = realloc(out->data, need);
		if (!n)
			return MF_ENOMEM;
		out->data = n;
		out->cap = need;
	}
	char *o = out->data + out->len;
	size_t i = 0;
	for (; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | d[i + 2];
		*o++ = b64chars[v >> 18];
		*o++ = b64chars[(v >> 12) & 63];
		*o++ = b64chars[(v >> 6) & 63];
		*o++ = b64chars[v & 63];
	}
	if (i < len) {
		uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < len ? (uint32_t)d[i + 1] << 8 : 0);
		*o++ = b64chars[v >> 18];
		*o++ = b64chars[(v >> 12) & 63];
		*o++ = i + 1 < len ? b64chars[(v >> 6) & 63] : '=';
		*o++ = '=';
	}
	out->len = (size_t)(o - out->data);
	*o = '\0';
	return 0;
}

int mf_http_unbase64(const char *in, size_t len, unsigned char *out, size_t cap, size_t *outlen)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		char c = in[i];
		const char *p;
		if (c == '=' || c == '\r' || c == '\n' || c == ' ' || c == '\t')
			continue;
		if (!(p = strchr(b64chars, c)) || !c)
			return MF_EINVAL;
		acc = acc << 6 | (uint32_t)(p - b64chars);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n >= cap)
				return MF_EINVAL;
			out[n++] = (unsigned char)(acc >> bits);
		}
	}
	*outlen = n;
	return 0;
}
