/* http.h - the HTTP core shared by the cloud sinks (graph, azure-blob, s3).
 *
 * One libcurl multi handle lives on the engine's libuv loop (engine/loop.h),
 * driven by curl_multi_socket_action with uv_poll_t and uv_timer_t. A sink,
 * on its mailbox's worker thread, fills a struct mf_http_req and calls
 * mf_http_send(): the request is posted to the loop, the worker waits on a
 * condition variable, the loop's curl callbacks complete it. Connections are
 * reused across requests and mailboxes (the multi's connection cache); TLS is
 * always verified.
 *
 * Retries (mf_http_send): exponential backoff with full jitter, honouring
 * Retry-After on 429, 503 and 509 (for the whole limit key); 500/502/503/
 * 504/509 and transport errors are retried; 400, 403, 404, 409, 413, 507 never; 401 once, after the `reauth`
 * hook. A failed *create* (req->create) that may have reached the server
 * (timeout, 5xx) is resolved with the `resolve` hook before sending again.
 *
 * Secrets: URLs, headers and bodies may hold secrets (SAS, tokens). Nothing
 * from them reaches a log line or an mf_err unless it went through
 * mf_http_redact() first; this file's functions only ever log redacted text.
 */
#ifndef MF_HTTP_H
#define MF_HTTP_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"
#include "engine/util.h"

/* Users of the core: every opened sink holds one reference. The first
 * request after the count rose from 0 creates the multi (lazily, on the
 * loop); mf_http_release() dropping it to 0 tears the multi down on the loop
 * and waits for that. Call from worker threads while the loop runs. */
void mf_http_acquire(void);
void mf_http_release(void);

#define MF_HTTP_ID_MAX 128

struct mf_http_req;

/* Hooks, all called on the calling worker thread. */
struct mf_http_hooks {
	/* Before every attempt: (re)build req->headers (fresh date, token,
	 * signature). 0 or MF_E* (then the send fails with that code). */
	int (*prepare)(void *arg, struct mf_http_req *req, struct mf_err *err);
	/* After a 401: drop the cached credential. 0 = retry once, <0 = fail. */
	int (*reauth)(void *arg, struct mf_http_req *req, struct mf_err *err);
	/* After an ambiguous failure of a create: 1 = the item exists (the send
	 * returns 0 with req->resolved set), 0 = not there (send again), <0 =
	 * fail with that code. */
	int (*resolve)(void *arg, struct mf_http_req *req, struct mf_err *err);
	void *arg;
};

/* A per-key limit shared by every request naming it: at most `max_inflight`
 * at once, and (when non-zero) at most `max_requests` requests and
 * `max_bytes` uploaded bytes in any window of `window_ms`, enforced by
 * waiting (pacing, smooth: see mf_http_limit_try) rather than by collecting
 * 429s; a Retry-After one request gets holds for all (mf_http_limit_block). Keys are e.g.
 * "graph:user@example.com". Limits live until the process ends. */
struct mf_http_limit;
struct mf_http_limit *mf_http_limit_get(const char *key, unsigned max_inflight,
					uint64_t max_requests, uint64_t requests_window_ms,
					uint64_t max_bytes, uint64_t bytes_window_ms);
/* For tests: how many requests of this limit are in flight now, and the most
 * ever seen at once. */
unsigned mf_http_limit_inflight(struct mf_http_limit *l, unsigned *peak);
/* Take one request of `bytes` from the limit's budgets now, without
 * waiting: 0 when taken, else how many ms it would have to wait. The
 * budgets are spent smoothly: at most a tenth of each at once. Any thread. */
uint64_t mf_http_limit_try(struct mf_http_limit *l, uint64_t bytes);
/* The service asked the key to wait `ms` (a Retry-After on 429/503/509):
 * every request of the limit waits until then. mf_http_send does this
 * itself. Any thread. */
void mf_http_limit_block(struct mf_http_limit *l, uint64_t ms);

struct mf_http_req {
	/* --- in (borrowed for the call) --- */
	const char *method;          /* "GET", "PUT", "POST", "HEAD", "PATCH", "DELETE" */
	const char *url;             /* may hold a secret (SAS): never logged raw */
	struct curl_slist *headers;  /* owned by the req after prepare; freed by mf_http_req_free */
	const void *body;            /* NULL = no body */
	size_t body_len;
	const char *aws_sigv4;       /* CURLOPT_AWS_SIGV4 value, or NULL */
	const char *userpwd;         /* CURLOPT_USERPWD (secret), or NULL */
	struct mf_http_limit *limit; /* per-mailbox limit, or NULL */
	bool create;                 /* not idempotent: see `resolve` */
	long timeout_ms;             /* whole attempt; 0 = 300 s */
	size_t max_response;         /* cap on the kept body; 0 = 8 MiB */
	int max_attempts;            /* 0 = 8 */
	struct mf_http_hooks hooks;

	/* --- out --- */
	long status;               /* last HTTP status, 0 = transport error */
	struct mf_buf resp;        /* response body (NUL-terminated), capped */
	char request_id[MF_HTTP_ID_MAX];  /* request-id / x-ms-request-id / x-amz-request-id */
	char client_request_id[MF_HTTP_ID_MAX];
	char error_code[MF_HTTP_ID_MAX];  /* x-ms-error-code, Graph error.code, S3 <Code> */
	char etag[MF_HTTP_ID_MAX];
	long long content_length;  /* Content-Length of the answer, -1 if none */
	char meta_sha256[65];      /* x-ms-meta-sha256 / x-amz-meta-sha256, or "" */
	char location[512];
	long retry_after_ms;       /* from Retry-After, -1 when absent */
	int attempts;
	bool resolved;             /* the resolve hook found the item */
	bool tls_untrusted;        /* the last attempt failed the certificate check */
};

/* Free what a request owns (headers, response) and zero the outputs; the
 * request can be sent again. */
void mf_http_req_free(struct mf_http_req *req);

/* One attempt, no retry: 0 when an HTTP answer came (any status; look at
 * req->status), MF_ECONN/MF_ENOMEM otherwise. Worker threads only. */
int mf_http_attempt(struct mf_http_req *req, struct mf_err *err);

/* Send with retries as described above. Returns 0 when the final status is
 * 2xx (or the resolve hook found the item), else a negative code with `err`
 * describing the failure (method, redacted URL, status, error code, request
 * ids): 401 -> MF_EAUTH, 403 -> MF_EAUTH, 404 -> MF_ENOTFOUND, 413 ->
 * MF_ETOOBIG, 507 -> MF_EQUOTA, 429/503 after all attempts -> MF_ETHROTTLED,
 * other 4xx -> MF_EMSG, 5xx/transport -> MF_ECONN, a server certificate
 * that is not trusted -> MF_ECONFIG (no retry). Non-2xx statuses the
 * caller wants to handle itself (e.g. 409 for "exists") are listed in `ok`
 * (0-terminated, may be NULL): they return 0 too. */
int mf_http_send(struct mf_http_req *req, const long *ok, struct mf_err *err);

/* Describe the failed request into err with `code` (redacted). */
int mf_http_fail(struct mf_http_req *req, int code, struct mf_err *err, const char *what);

/* Remove secrets from text in place: values of query parameters that carry
 * credentials (sig, se, st, sv, sp, skoid..., authtoken, access_token,
 * client_secret, X-Amz-Signature, X-Amz-Credential, X-Amz-Security-Token,
 * code, token), and what follows "Bearer ", "SharedKey ", "Signature=",
 * "Credential=". The result is never longer than the input. */
void mf_http_redact(char *s);

/* Backoff for attempt n (1-based) with full jitter, in ms, capped at 60 s. */
uint64_t mf_http_backoff_ms(int attempt);

/* Percent-encode `s` into `out` for a URL: RFC 3986 unreserved characters
 * are kept, and '/' too when keep_slash. Returns 0 or MF_ENOMEM. */
int mf_http_escape(struct mf_buf *out, const char *s, size_t len, bool keep_slash);

/* Base64 (standard alphabet, padded) of data into out, appended. */
int mf_http_base64(struct mf_buf *out, const void *data, size_t len);
/* Decode base64; returns 0, or MF_EINVAL on bad input. */
int mf_http_unbase64(const char *in, size_t len, unsigned char *out, size_t cap, size_t *outlen);

/* --- TLS settings per service --- */

/* The [sink] keys every HTTP sink takes for TLS, for its key table. */
#define MF_HTTP_TLS_KEYS                                                                    \
	{"tls_verify", false,                                                               \
	 "yes (default): check the server's certificate and name; no: do not (warned on every run)"}, \
	{"tls_ca_file", false, "PEM file of the CAs to trust instead of the system's"}

/* Read tls_verify / tls_ca_file from sec and apply them to every request
 * whose URL starts with one of the n `prefixes` (the sink's service URLs).
 * tls_verify = no logs a warning naming each prefix. Call from configure
 * (once per run). 0 or MF_ECONFIG / MF_ENOMEM. */
struct mf_conf_section;
int mf_http_tls_conf(const struct mf_conf_section *sec, const char *const *prefixes, size_t n,
		     struct mf_err *err);

/* --- OAuth2 client credentials (oauth.c) --- */

/* A bearer token for (login_url, tenant, client_id, scope), from the
 * process-wide cache or freshly from {login_url}/{tenant}/oauth2/v2.0/token.
 * Renewed when less than min(300 s, expires_in / 2) remain. `secret` is
 * borrowed. Writes the token (a secret) into out. 0, MF_EAUTH (the
 * endpoint said no), MF_ECONN. Thread-safe; callers for the same key wait
 * for one request. */
int mf_oauth_token(const char *login_url, const char *tenant, const char *client_id,
		   const char *secret, const char *scope, char *out, size_t outsz,
		   struct mf_err *err);
/* Forget the cached token if it is still `token` (after a 401). */
void mf_oauth_invalidate(const char *login_url, const char *tenant, const char *client_id,
			 const char *scope, const char *token);

#endif
