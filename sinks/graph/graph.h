/* graph.h - internals shared by the graph sink's files (graph.c: folders,
 * import-mime, probe; graph_json.c: the v1.0 JSON create path). Worker
 * thread only; one struct g_snk per opened mailbox. */
#ifndef MF_SINK_GRAPH_H
#define MF_SINK_GRAPH_H

#include "engine/sink.h"
#include "sinks/http/http.h"

#define G_TOKEN_MAX 8192
#define G_ID_MAX 256
/* The request body cap Graph applies to MIME and JSON creates. */
#define G_MAX_REQUEST ((size_t)4 << 20)
/* Bigger messages are skipped (attachment upload sessions stop at 150 MB). */
#define G_MAX_MESSAGE ((size_t)150 << 20)
/* Attachments at least this big go through an upload session. */
#define G_SESSION_MIN ((size_t)3000000)
#define G_CHUNK ((size_t)4 << 20)
/* $top of a message listing (Graph pages messages at up to 1000). */
#define G_LIST_TOP "500"

enum { G_MODE_IMPORT = 0, G_MODE_JSON = 1 };

struct g_cfg {
	char *graph_url; /* without trailing '/' */
	char *login_url;
	char *tenant;
	char *client_id;
	char *secret; /* secret */
	char *scope;
	int mode;
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
	char token[G_TOKEN_MAX]; /* secret: the token the last request used */
};

/* One Graph request with bearer auth and the mailbox limit. `ctype` NULL =
 * no body type; `item`/`fid` make a create resolvable by lookup (ambiguous
 * failures). On success with req->resolved, *found holds the looked-up id.
 * Returns as mf_http_send. */
int g_request(struct g_snk *s, struct mf_http_req *req, const char *method, const char *url,
	      const char *ctype, const struct mf_item *item, const char *fid, char *found,
	      const long *ok, struct mf_err *err);

/* Find the (item->dup + 1)-th message with item->message_id in folder fid:
 * 1 (id filled), 0, or a negative code. */
int g_lookup(struct g_snk *s, const char *fid, const struct mf_item *item, char id[G_ID_MAX],
	     struct mf_err *err);

/* The JSON path: create the message in fid as JSON (non-draft, dates,
 * flags), then its attachments (inline or by upload session). */
int g_store_json(struct g_snk *s, const char *fid, const struct mf_item *item, char id[G_ID_MAX],
		 struct mf_err *err);

#endif
