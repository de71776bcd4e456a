/* graph.h - internals shared by the graph sink's files (graph.c: folders,
 * import-mime, probe; graph_json.c: the v1.0 JSON create path). Worker
 * thread only; one struct g_snk per opened mailbox. */
#ifndef MF_SINK_GRAPH_H
#define MF_SINK_GRAPH_H

#include <pthread.h>

#include "engine/normalize/mimeenc.h"
#include "engine/sink.h"
#include "sinks/http/http.h"

#define G_TOKEN_MAX 8192
#define G_ID_MAX 256
/* The request body cap Graph applies to MIME and JSON creates. */
#define G_MAX_REQUEST ((size_t)4 << 20)
/* The most max_message_mb may be (attachment upload sessions stop at 150
 * MB), and its default: Exchange Online's default message size limit. */
#define G_MAX_MESSAGE ((size_t)150000000)
#define G_DEFAULT_MESSAGE_MB 35
/* Attachments at least this big go through an upload session ("under 3 MB"
 * is a single POST; less than 3,000,000 is under 3 MB on both readings). A
 * service that reads 3 MiB refuses smaller sessions: those are POSTed after
 * all. */
#define G_SESSION_MIN ((size_t)3000000)
/* Upload chunks: "less than 4 MB" on either reading of MB, and a multiple
 * of 320 KiB (12 x 327,680 = 3,932,160). */
#define G_CHUNK ((size_t)12 * 327680)
/* Outlook's per app+mailbox limits, the most the pacing keys accept. */
#define G_MAX_CONCURRENCY 4
#define G_MAX_REQUESTS_10MIN 10000
#define G_MAX_UPLOAD_MB_5MIN 150
/* $top of a message listing (Graph pages messages at up to 1000). */
#define G_LIST_TOP "500"

enum { G_MODE_IMPORT = 0, G_MODE_JSON = 1 };

/* Which path a job's messages take, decided once per job (the first store
 * or check) and shared by every mailbox of the job: importMime needs the
 * beta endpoint (global cloud only) and the Mail-Advanced.ReadWrite.All
 * application role; without either, every message goes the JSON way. */
struct g_path {
	pthread_mutex_t mu;
	int decided; /* 0 not yet; 1 decided */
	int mode;    /* G_MODE_IMPORT or G_MODE_JSON */
	char why[200];
};

struct g_cfg {
	char *graph_url; /* without trailing '/' */
	char *login_url;
	char *tenant;
	char *client_id;
	char *secret; /* secret */
	char *scope;
	int mode;
	/* the per-mailbox limit ([sink] mailbox_concurrency, requests_per_10min,
	 * upload_mb_per_5min) */
	unsigned concurrency;
	uint64_t requests_per_10min;
	uint64_t upload_mb_per_5min;
	uint64_t max_message_mb; /* [sink] max_message_mb, MB of 1,000,000 bytes */
	struct g_path *path; /* shared, mutable: see struct g_path */
};

struct g_folder {
	char *key; /* mf_path_key of the target path, or "role:<name>" */
	char id[G_ID_MAX];
	struct g_folder *next;
};

struct g_snk {
	const struct g_cfg *cfg;
	char *mailbox;
	char *mbx_esc; /* URL-escaped */
	struct mf_http_limit *limit;
	struct g_folder *folders;
	bool read_only; /* opened by open_read: folder() only finds */
	char token[G_TOKEN_MAX]; /* secret: the token the last request used */
};

/* What a create would have made, so that an ambiguous failure (timeout, cut
 * connection, 5xx) can be resolved by looking before sending again: `find`
 * returns 1 = it is there (its id in `found`), 0 = not there, < 0 = error. */
struct g_create {
	int (*find)(struct g_snk *s, struct g_create *c, struct mf_err *err);
	const struct mf_item *item; /* a message (also names the client-request-id) */
	const char *fid;            /* ... in this folder */
	const char *msg_id;         /* an attachment: msg_id holds more than */
	size_t index;               /* `index` attachments once it landed */
	char found[G_ID_MAX];
};

/* find for a message: g_lookup of c->item in c->fid. */
/* A token for cfg (cached in token[tsz], fetched or refreshed as needed)
 * and the headers every Graph request carries: Authorization and Accept.
 * *out gets the new list (caller appends to it, curl frees it). The one
 * place a Graph request is authorized: the sink and the coexistence
 * pre-flight (directory/graph.c) both use it. */
int g_auth_headers(const struct g_cfg *cfg, char *token, size_t tsz, struct curl_slist **out,
		   struct mf_err *err);

int g_find_message(struct g_snk *s, struct g_create *c, struct mf_err *err);

/* One Graph request with bearer auth and the mailbox limit. `ctype` NULL =
 * no body type; `create` non-NULL makes it a create resolved by
 * create->find after ambiguous failures (then req->resolved is set on
 * success and create->found holds the id). Returns as mf_http_send. */
int g_request(struct g_snk *s, struct mf_http_req *req, const char *method, const char *url,
	      const char *ctype, struct g_create *create, const long *ok, struct mf_err *err);

/* GET the collection at u and every page after it (@odata.nextLink, same
 * service only), handing each page's body [js, je) to `page`: its result
 * < 0 stops with that code, 1 stops early (returned), 0 goes on. `u` holds
 * the first URL and is reused. 0 when every page was seen. */
int g_get_pages(struct g_snk *s, struct mf_buf *u,
		int (*page)(void *arg, const char *js, const char *je), void *arg,
		struct mf_err *err);

/* Find the (item->dup + 1)-th message with item->message_id in folder fid:
 * 1 (id filled), 0, or a negative code. */
int g_lookup(struct g_snk *s, const char *fid, const struct mf_item *item, char id[G_ID_MAX],
	     struct mf_err *err);

/* The JSON path: create the message in fid as JSON (a draft only when the
 * item is one; dates, flags), then its attachments (inline or by upload session). A message
 * found after an ambiguous create gets the attachments it lacks; one whose
 * attachments fail is deleted again. */
int g_store_json(struct g_snk *s, const char *fid, const struct mf_item *item, char id[G_ID_MAX],
		 struct mf_err *err);

/* Is message `id`, found by Message-ID, whole as the JSON path makes
 * `item` (all its attachments there)? 1 yes; 0 no: it was left half-made
 * by a run that died, and is deleted so that a store makes it again; < 0
 * error. */
int g_json_check_whole(struct g_snk *s, const struct mf_item *item, const char *id,
		       struct mf_err *err);

/* RFC 2047: append the unfolded header text in[0..len) to o with its
 * encoded words ("=?charset?Q|B?text?=") decoded to UTF-8: white space
 * between two encoded words is dropped, adjacent words of one charset are
 * converted together (a character may straddle them), the charset goes
 * through mf_charset_to_utf8 (unknown ones read as windows-1252), a word
 * that is malformed or does not decode is kept as it is, other text is
 * copied unchanged. Words are also decoded where RFC 2047 forbids them
 * (inside quotes, next to other text), as mail readers do. Pure, any
 * thread; errors only through o->err. (A candidate for mimeenc.h.) */
void g_hdr_decode(const char *in, size_t len, struct mf_out *o);

/* Does `item` go the JSON way (mode json, importMime unavailable to the
 * job, a draft, or too big for importMime)? */
bool g_goes_json(const struct g_snk *s, const struct mf_item *item);

/* The job's path (struct g_path), deciding it on the first call: mode =
 * json, a national-cloud graph_url (no importMime there) or a token
 * without Mail-Advanced.ReadWrite.All make it JSON. Its reason in *why
 * (borrowed from the config). G_MODE_* or a negative code. */
int g_job_path(struct g_snk *s, const char **why, struct mf_err *err);

#endif
