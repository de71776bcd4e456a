/* imap_source.c - the IMAP source driver (type = imap in [source]).
 *
 * One libetpan session per opened source, used from the mailbox's worker
 * thread only. Folders come from LIST (SPECIAL-USE/XLIST roles, NAMESPACE
 * prefix removed, UserRoot honoured) with UIDVALIDITY from STATUS; list()
 * streams UID FETCH (UID FLAGS INTERNALDATE RFC822.SIZE) from the cursor on;
 * fetch() asks for BODY.PEEK[] of the requested message and the next ones
 * listed in one UID FETCH (bounded in count and bytes) and hands them out in
 * order from a small cache, so a folder of small messages costs one round
 * trip per batch, not per message. With connections = N > 1, N-1 helper
 * sessions, each on its own thread, fetch the following batches ahead while
 * the engine works on the current one (at most one batch, BATCH_BYTES, per
 * helper in memory); the worker thread only waits for a batch that is not
 * there yet. Helpers fail quietly: the worker then fetches the batch itself
 * and reports any error.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/log.h"
#include "engine/source.h"
#include "engine/spill.h"
#include "sources/imap/imap_common.h"

#define BATCH_MSGS 64
#define BATCH_BYTES (8u * 1024 * 1024)
#define MAX_HELPERS 15

struct src_cfg {
	struct mf_imap_conf ic;
	unsigned connections;
	int copy_views; /* views = copy */
	int all_namespaces; /* namespaces = all */
};

struct cached {
	uint32_t uid;
	unsigned char *data;
	size_t len;
	int64_t idate;
	unsigned flags;
	char *keywords;
};

static void cached_free(struct cached *c)
{
	mf_bytes_free(c->data);
	free(c->keywords);
	c->data = NULL;
	c->keywords = NULL;
}

enum helper_state { H_IDLE, H_BUSY, H_DONE, H_QUIT };

struct helper {
	struct imap_src *s;
	pthread_t th;
	struct mf_imap *im; /* used by the helper thread only */
	/* the rest is guarded by s->lock; the helper owns req/res while BUSY */
	enum helper_state state;
	char wire[1024];
	uint32_t validity;
	uint32_t uids[BATCH_MSGS];
	size_t n;
	struct cached res[BATCH_MSGS];
	size_t nres;
	int rc;
};

struct imap_src {
	struct src_cfg *cfg;
	const struct mf_unit *unit;
	struct mf_imap *im;
	struct mf_imap_folder *ifolders;
	size_t nifolders;
	struct mf_folder *folders;
	size_t nfolders;
	/* the current folder's listing: ascending UIDs and sizes */
	const struct mf_folder *cur;
	uint32_t *uids;
	uint32_t *sizes;
	size_t nuids, capuids;
	/* bodies fetched ahead, ascending UIDs */
	struct cached cache[BATCH_MSGS];
	size_t ncache;
	/* fetch-ahead helpers (connections - 1) */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct helper helpers[MAX_HELPERS];
	size_t nhelpers;
	size_t ahead; /* listing index up to which batches are handed out */
	unsigned long batches_sync, batches_ahead; /* for the debug log */
};

static const struct mf_conf_key src_keys[] = {
	MF_IMAP_CONF_KEYS,
	{"connections", false, "IMAP connections per mailbox (default 2)"},
	{"views", false, "skip (default): folders flagged \\All, \\Flagged or \\Important (Gmail's All Mail, Starred, Important) hold copies of other folders' mail and are not moved; copy: move them too"},
	{"namespaces", false, "personal (default): only the user's own folders; all: also other users' and shared folders the login can read, moved under a top folder named as the server names that namespace (Cyrus: \"Other Users/u2/Team\", \"Shared Folders/Public\")"},
	{NULL, false, NULL},
};

static int src_configure(const struct mf_conf_section *sec, void **cfgp, struct mf_err *err)
{
	struct src_cfg *c = calloc(1, sizeof(*c));
	uint64_t conns = 2;
	static const char *const views[] = {"skip", "copy", NULL};
	static const char *const namespaces[] = {"personal", "all", NULL};
	int rc;

	if (!c)
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	if ((rc = mf_imap_conf_parse(sec, &c->ic, err)) < 0 ||
	    (rc = mf_conf_uint(sec, "connections", 1, 16, 2, &conns, err)) < 0 ||
	    (rc = mf_conf_enum(sec, "views", views, 0, &c->copy_views, err)) < 0 ||
	    (rc = mf_conf_enum(sec, "namespaces", namespaces, 0, &c->all_namespaces, err)) < 0) {
		mf_imap_conf_free(&c->ic);
		free(c);
		return rc;
	}
	c->connections = (unsigned)conns;
	*cfgp = c;
	return 0;
}

static void src_free_config(void *cfgp)
{
	struct src_cfg *c = cfgp;
	if (!c)
		return;
	mf_imap_conf_free(&c->ic);
	free(c);
}

static void cache_clear(struct imap_src *s)
{
	size_t i;
	for (i = 0; i < s->ncache; i++)
		cached_free(&s->cache[i]);
	s->ncache = 0;
}

static void free_res(struct helper *h)
{
	size_t i;
	for (i = 0; i < h->nres; i++)
		cached_free(&h->res[i]);
	h->nres = 0;
}

static void stop_helpers(struct imap_src *s)
{
	size_t i;
	pthread_mutex_lock(&s->lock);
	for (i = 0; i < s->nhelpers; i++)
		s->helpers[i].state = H_QUIT;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	for (i = 0; i < s->nhelpers; i++) {
		pthread_join(s->helpers[i].th, NULL);
		free_res(&s->helpers[i]);
	}
	s->nhelpers = 0;
}

static void src_close(void *p)
{
	struct imap_src *s = p;
	size_t i;
	if (!s)
		return;
	stop_helpers(s);
	if (s->batches_sync + s->batches_ahead > 0)
		mf_log(MF_LOG_DEBUG, "event=imap_source_close user=%s batches=%lu fetched_ahead=%lu",
		       s->unit->user, s->batches_sync + s->batches_ahead, s->batches_ahead);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	cache_clear(s);
	mf_imap_close(s->im);
	for (i = 0; i < s->nfolders; i++) {
		mf_path_free(&s->folders[i].path);
		free(s->folders[i].validity);
	}
	free(s->folders);
	mf_imap_folders_free(s->ifolders, s->nifolders);
	free(s->uids);
	free(s->sizes);
	free(s);
}

static int src_open(const void *cfgp, const struct mf_unit *unit, void **out, struct mf_err *err)
{
	struct src_cfg *cfg = (struct src_cfg *)cfgp;
	struct imap_src *s;
	int rc;

	if (!unit->user || !*unit->user)
		return mf_err_set(err, MF_ECONFIG, "manifest row %d: no UserName for the IMAP source",
				  unit->line);
	if (cfg->ic.auth != MF_IMAP_AUTH_XOAUTH2 && !unit->password)
		return mf_err_set(err, MF_ECONFIG, "manifest row %d: no Password for the IMAP source",
				  unit->line);
	if (!(s = calloc(1, sizeof(*s))))
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	s->cfg = cfg;
	s->unit = unit;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	rc = mf_imap_open(&cfg->ic, unit->user, NULL, unit->password ? unit->password : "", &s->im,
			  err);
	if (rc < 0) {
		mf_err_prefix(err, "source %s:%u login %s", cfg->ic.host, (unsigned)cfg->ic.port,
			      unit->user);
		src_close(s);
		return rc;
	}
	mf_log(MF_LOG_DEBUG, "event=imap_source_open user=%s caps=0x%x delim=%c compress=%d",
	       unit->user, s->im->caps, s->im->delim ? s->im->delim : '-', s->im->compressed);
	*out = s;
	return 0;
}

static int src_folders(void *p, const struct mf_folder **out, size_t *n, struct mf_err *err)
{
	struct imap_src *s = p;
	size_t i;
	int rc;

	if (!s->folders) {
		s->im->list_foreign = s->cfg->all_namespaces != 0;
		rc = mf_imap_list(s->im, s->unit->user_root, &s->ifolders, &s->nifolders, err);
		if (rc < 0)
			return rc;
		if (!(s->folders = calloc(s->nifolders ? s->nifolders : 1, sizeof(*s->folders))))
			return mf_err_set(err, MF_ENOMEM, "out of memory");
		for (i = 0; i < s->nifolders; i++) {
			struct mf_imap_folder *fi = &s->ifolders[i];
			struct mf_folder *f = &s->folders[s->nfolders];
			uint32_t uv = 0, msgs = 0;
			char v[16];

			if (fi->noselect)
				continue;
			if (fi->view && !s->cfg->copy_views) {
				mf_log(MF_LOG_INFO,
				       "event=folder_skipped mailbox=%s folder=%s reason=\"a view of other folders "
				       "(special-use); views = copy moves it\"",
				       s->unit->mailbox, fi->wire);
				continue;
			}
			rc = mf_imap_status(s->im, fi->wire, &uv, &msgs, err);
			if (rc == MF_EFOLDER) {
				/* vanished between LIST and STATUS: nothing to move */
				mf_err_clear(err);
				continue;
			}
			if (rc < 0)
				return rc;
			snprintf(v, sizeof(v), "%" PRIu32, uv);
			mf_path_init(&f->path);
			if (mf_path_copy(&f->path, &fi->path) < 0 || !(f->validity = strdup(v))) {
				mf_path_free(&f->path);
				return mf_err_set(err, MF_ENOMEM, "out of memory");
			}
			f->role = fi->role;
			f->count_hint = msgs;
			f->drv = fi;
			s->nfolders++;
		}
	}
	*out = s->folders;
	*n = s->nfolders;
	return 0;
}

/* Make `f` the selected folder (read-only; afresh for a listing, so that
 * UIDNEXT is current) and check it is still the folder the engine knows. */
static int enter(struct imap_src *s, const struct mf_folder *f, bool fresh, struct mf_err *err)
{
	const struct mf_imap_folder *fi = f->drv;
	char v[16];
	int rc;

	if (s->cur != f) {
		cache_clear(s);
		s->nuids = 0;
		s->ahead = 0;
		s->cur = f;
	}
	rc = fresh ? mf_imap_select_fresh(s->im, fi->wire, false, err)
		   : mf_imap_select(s->im, fi->wire, false, err);
	if (rc < 0)
		return rc;
	snprintf(v, sizeof(v), "%" PRIu32, s->im->uidvalidity);
	if (strcmp(v, f->validity) != 0)
		/* the engine reopens, lists the folders again and sees the
		 * new validity */
		return mf_err_set(err, MF_ECONN, "UIDVALIDITY of %s changed from %s to %s",
				  fi->wire, f->validity, v);
	return 0;
}

struct list_arg {
	struct imap_src *s;
	uint32_t from, max;
	mf_msgref_cb cb;
	void *arg;
	struct mf_err *err;
};

static int list_one(void *p, struct mf_imap_fmsg *m)
{
	struct list_arg *la = p;
	struct imap_src *s = la->s;
	struct mf_msgref ref;
	char key[16];
	int rc;

	if (m->uid < la->from)
		return 0; /* "n:*" beyond the last UID returns the last message */
	if (s->nuids == s->capuids) {
		size_t nc = s->capuids ? s->capuids * 2 : 256;
		uint32_t *nu = realloc(s->uids, nc * sizeof(*nu));
		uint32_t *ns;
		if (!nu)
			return mf_err_set(la->err, MF_ENOMEM, "out of memory");
		s->uids = nu;
		if (!(ns = realloc(s->sizes, nc * sizeof(*ns))))
			return mf_err_set(la->err, MF_ENOMEM, "out of memory");
		s->sizes = ns;
		s->capuids = nc;
	}
	s->uids[s->nuids] = m->uid;
	s->sizes[s->nuids] = m->size;
	s->nuids++;
	if (m->uid > la->max)
		la->max = m->uid;
	snprintf(key, sizeof(key), "%" PRIu32, m->uid);
	memset(&ref, 0, sizeof(ref));
	ref.key = key;
	ref.size = m->size;
	ref.idate = m->idate;
	ref.flags = m->flags;
	rc = la->cb(la->arg, &ref);
	if (rc < 0 && la->err && la->err->code == 0)
		mf_err_set(la->err, rc, "listing stopped");
	return rc;
}

static int parse_uid(const char *s, uint32_t *out)
{
	char *end;
	unsigned long long v;
	if (!s || !*s)
		return -1;
	v = strtoull(s, &end, 10);
	if (*end || v > UINT32_MAX)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static int src_list(void *p, const struct mf_folder *f, const char *cursor, mf_msgref_cb cb,
		    void *arg, char **next_cursor, struct mf_err *err)
{
	struct imap_src *s = p;
	struct list_arg la = {.s = s, .from = 1, .cb = cb, .arg = arg, .err = err};
	uint32_t c = 0;
	char v[16];
	int rc;

	*next_cursor = NULL;
	if (cursor && parse_uid(cursor, &c) == 0)
		la.from = c + 1;
	la.max = c;
	if ((rc = enter(s, f, true, err)) < 0)
		return rc;
	cache_clear(s);
	s->nuids = 0;
	s->ahead = 0;
	if (s->im->uidnext == 0) {
		rc = mf_imap_uid_fetch(s->im, NULL, 0, la.from, 0, MF_IMAP_F_META, list_one, &la,
				       err);
	} else {
		/* UID windows keep libetpan's response buffer (it holds a whole
		 * response) small in big folders; the window grows over sparse
		 * UID ranges and shrinks over dense ones */
		uint64_t lo = la.from, win = 4096;
		while (rc == 0 && lo < s->im->uidnext) {
			uint64_t hi = lo + win - 1;
			size_t before = s->nuids;
			if (hi >= s->im->uidnext)
				hi = s->im->uidnext - 1;
			rc = mf_imap_uid_fetch(s->im, NULL, 0, (uint32_t)lo, (uint32_t)hi,
					       MF_IMAP_F_META, list_one, &la, err);
			if (s->nuids - before < win / 16 && win < (1u << 24))
				win *= 4;
			else if (s->nuids - before > 8192 && win > 1024)
				win /= 2;
			lo = hi + 1;
		}
	}
	if (rc < 0) {
		mf_err_prefix(err, "folder %s", ((const struct mf_imap_folder *)f->drv)->wire);
		return rc;
	}
	if (la.max > 0) {
		snprintf(v, sizeof(v), "%" PRIu32, la.max);
		if (!(*next_cursor = strdup(v)))
			return mf_err_set(err, MF_ENOMEM, "out of memory");
	}
	return 0;
}

/* Take a fetched message's body into a batch (at most BATCH_MSGS). */
static int put_cached(struct cached *arr, size_t *n, struct mf_imap_fmsg *m)
{
	if (*n == BATCH_MSGS || !m->body)
		return 0;
	struct cached *c = &arr[(*n)++];
	c->uid = m->uid;
	c->data = m->body;
	c->len = m->body_len;
	c->idate = m->idate;
	c->flags = m->flags;
	c->keywords = m->keywords;
	m->body = NULL;
	m->keywords = NULL;
	return 0;
}

static int cache_put(void *p, struct mf_imap_fmsg *m)
{
	struct imap_src *s = p;
	return put_cached(s->cache, &s->ncache, m);
}

/* Index of the first listed UID >= uid. */
static size_t lower_bound(const uint32_t *a, size_t n, uint32_t uid)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (a[mid] < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int helper_put(void *p, struct mf_imap_fmsg *m)
{
	struct helper *h = p;
	return put_cached(h->res, &h->nres, m);
}

static void *helper_main(void *p)
{
	struct helper *h = p;
	struct imap_src *s = h->s;
	struct mf_err err;

	for (;;) {
		int rc = 0;
		pthread_mutex_lock(&s->lock);
		while (h->state != H_BUSY && h->state != H_QUIT)
			pthread_cond_wait(&s->cond, &s->lock);
		if (h->state == H_QUIT) {
			pthread_mutex_unlock(&s->lock);
			break;
		}
		pthread_mutex_unlock(&s->lock);

		mf_err_clear(&err);
		if (!h->im)
			rc = mf_imap_open(&s->cfg->ic, s->unit->user, NULL,
					  s->unit->password ? s->unit->password : "", &h->im, &err);
		if (rc == 0)
			rc = mf_imap_select(h->im, h->wire, false, &err);
		if (rc == 0 && h->im->uidvalidity != h->validity)
			rc = MF_ECONN;
		if (rc == 0)
			rc = mf_imap_uid_fetch(h->im, h->uids, h->n, 0, 0, MF_IMAP_F_BODY, helper_put, h,
					       &err);
		if (rc < 0 && h->im && (rc == MF_ECONN || rc == MF_EPROTO)) {
			mf_imap_close(h->im);
			h->im = NULL;
		}
		pthread_mutex_lock(&s->lock);
		h->rc = rc;
		if (h->state == H_BUSY)
			h->state = H_DONE;
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->lock);
	}
	mf_imap_close(h->im);
	h->im = NULL;
	return NULL;
}

/* Start the helper threads (once). A failure only means no fetch-ahead. */
static void start_helpers(struct imap_src *s)
{
	size_t want = s->cfg->connections > 1 ? s->cfg->connections - 1 : 0;
	if (want > MAX_HELPERS)
		want = MAX_HELPERS;
	while (s->nhelpers < want) {
		struct helper *h = &s->helpers[s->nhelpers];
		memset(h, 0, sizeof(*h));
		h->s = s;
		h->state = H_IDLE;
		if (pthread_create(&h->th, NULL, helper_main, h) != 0)
			break;
		s->nhelpers++;
	}
}

/* A batch of listed UIDs from index i: at most BATCH_MSGS and BATCH_BYTES
 * (always at least one). Returns the index after it. */
static size_t plan_batch(struct imap_src *s, size_t i, uint32_t *batch, size_t *nb)
{
	uint64_t bytes = 0;
	*nb = 0;
	while (i < s->nuids && *nb < BATCH_MSGS &&
	       (*nb == 0 || bytes + s->sizes[i] <= BATCH_BYTES)) {
		bytes += s->sizes[i];
		batch[(*nb)++] = s->uids[i++];
	}
	return i;
}

/* Hand the batches after listing index `from` to idle helpers. */
static void schedule_ahead(struct imap_src *s, const struct mf_folder *f, size_t from)
{
	const struct mf_imap_folder *fi = f->drv;
	size_t i;

	if (s->nhelpers == 0 || s->nuids == 0)
		return;
	if (s->ahead < from)
		s->ahead = from;
	pthread_mutex_lock(&s->lock);
	for (i = 0; i < s->nhelpers && s->ahead < s->nuids; i++) {
		struct helper *h = &s->helpers[i];
		if (h->state != H_IDLE)
			continue;
		snprintf(h->wire, sizeof(h->wire), "%s", fi->wire);
		h->validity = (uint32_t)strtoul(f->validity, NULL, 10);
		s->ahead = plan_batch(s, s->ahead, h->uids, &h->n);
		h->nres = 0;
		h->rc = 0;
		h->state = H_BUSY;
	}
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

/* If a helper fetched (or is fetching) the batch holding `uid` of the folder
 * `wire`, wait for it and move its messages from `uid` on into the cache.
 * Finished batches that are no longer of use are dropped. */
static void take_ahead(struct imap_src *s, const char *wire, uint32_t uid)
{
	size_t i, k;
	pthread_mutex_lock(&s->lock);
	for (i = 0; i < s->nhelpers; i++) {
		struct helper *h = &s->helpers[i];
		bool mine = h->state != H_IDLE && h->n > 0 && !strcmp(h->wire, wire) &&
			    h->uids[0] <= uid && uid <= h->uids[h->n - 1];
		if (mine) {
			while (h->state == H_BUSY)
				pthread_cond_wait(&s->cond, &s->lock);
			if (h->rc == 0 && s->ncache == 0) {
				s->batches_ahead++;
				for (k = 0; k < h->nres; k++) {
					if (h->res[k].uid >= uid && s->ncache < BATCH_MSGS) {
						s->cache[s->ncache++] = h->res[k];
						h->res[k].data = NULL;
						h->res[k].keywords = NULL;
					}
				}
			}
			free_res(h);
			h->state = H_IDLE;
		} else if (h->state == H_DONE &&
			   (strcmp(h->wire, wire) != 0 || h->n == 0 || h->uids[h->n - 1] < uid)) {
			free_res(h);
			h->state = H_IDLE;
		}
	}
	pthread_mutex_unlock(&s->lock);
}

static int src_fetch(void *p, const struct mf_folder *f, const struct mf_msgref *ref,
		     struct mf_msg *out, struct mf_err *err)
{
	struct imap_src *s = p;
	uint32_t uid, batch[BATCH_MSGS];
	size_t nb = 0, i, k;
	int rc;

	memset(out, 0, sizeof(*out));
	if (parse_uid(ref->key, &uid) < 0)
		return mf_err_set(err, MF_EMSG, "bad IMAP key \"%s\"", ref->key);
	if (s->cur != f || !s->im->selected) {
		if ((rc = enter(s, f, false, err)) < 0)
			return rc;
	}
	/* drop what the engine skipped */
	for (k = 0; k < s->ncache && s->cache[k].uid < uid; k++)
		cached_free(&s->cache[k]);
	if (k > 0) {
		memmove(s->cache, s->cache + k, (s->ncache - k) * sizeof(s->cache[0]));
		s->ncache -= k;
	}
	if (s->ncache == 0 || s->cache[0].uid != uid) {
		const struct mf_imap_folder *fi = f->drv;
		cache_clear(s);
		start_helpers(s);
		take_ahead(s, fi->wire, uid);
		if (s->ncache == 0 || s->cache[0].uid != uid) {
			cache_clear(s);
			i = lower_bound(s->uids, s->nuids, uid);
			if (i < s->nuids && s->uids[i] == uid) {
				i = plan_batch(s, i, batch, &nb);
			} else {
				batch[nb++] = uid;
				i = s->nuids;
			}
			rc = mf_imap_uid_fetch(s->im, batch, nb, 0, 0, MF_IMAP_F_BODY, cache_put, s,
					       err);
			if (rc < 0) {
				cache_clear(s);
				mf_err_prefix(err, "UID %" PRIu32, uid);
				return rc;
			}
			s->ahead = i;
			s->batches_sync++;
		}
		if (s->ncache > 0)
			schedule_ahead(s, f, lower_bound(s->uids, s->nuids,
							 s->cache[s->ncache - 1].uid + 1));
	}
	if (s->ncache == 0 || s->cache[0].uid != uid)
		return mf_err_set(err, MF_EMSG, "folder %s: message UID %" PRIu32 " no longer exists",
				  ((const struct mf_imap_folder *)f->drv)->wire, uid);
	out->data = s->cache[0].data;
	out->len = s->cache[0].len;
	out->idate = s->cache[0].idate;
	out->flags = s->cache[0].flags;
	out->keywords = s->cache[0].keywords;
	memmove(s->cache, s->cache + 1, (s->ncache - 1) * sizeof(s->cache[0]));
	s->ncache--;
	return 0;
}

const struct mf_source_ops mf_source_imap = {
	.name = "imap",
	.keys = src_keys,
	.configure = src_configure,
	.free_config = src_free_config,
	.open = src_open,
	.folders = src_folders,
	.list = src_list,
	.fetch = src_fetch,
	.close = src_close,
};
