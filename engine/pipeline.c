/* pipeline.c - one unit's migration (see pipeline.h). */
#include "pipeline.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "fault.h"
#include "log.h"
#include "normalize/normalize.h"
#include "strmap.h"
#include "util.h"
#include "spill.h"

#define MAX_ATTEMPTS 6
#define MAX_THROTTLE_WAITS 30

void mf_budget_init(struct mf_budget *b, uint64_t cap)
{
	pthread_mutex_init(&b->lock, NULL);
	pthread_cond_init(&b->freed, NULL);
	b->cap = cap;
	b->used = 0;
}

void mf_budget_destroy(struct mf_budget *b)
{
	pthread_mutex_destroy(&b->lock);
	pthread_cond_destroy(&b->freed);
}

/* Take n bytes; a message bigger than the whole cap waits until it is alone. */
static void budget_take(struct mf_budget *b, uint64_t n)
{
	pthread_mutex_lock(&b->lock);
	while (b->used > 0 && b->used + n > b->cap)
		pthread_cond_wait(&b->freed, &b->lock);
	b->used += n;
	pthread_mutex_unlock(&b->lock);
}

static void budget_give(struct mf_budget *b, uint64_t n)
{
	pthread_mutex_lock(&b->lock);
	b->used -= n;
	pthread_cond_broadcast(&b->freed);
	pthread_mutex_unlock(&b->lock);
}

/* --- per-unit context -------------------------------------------------------- */

struct ref {
	char *key;
	uint64_t size;
	int64_t idate;
	unsigned flags;
	char *skip;      /* non-mail kind */
	bool in_doubt;   /* pending or failed in an earlier run: probe first */
};

struct unit_ctx {
	struct mf_run_ctx *run;
	const struct mf_job *job;
	const struct mf_unit *u;
	struct mf_unit_stats *stats;
	int64_t unit_id;
	void *src, *snk;
	const struct mf_folder *folders;
	size_t nfolders;
	char mailbox_q[300];
};

struct folder_ctx {
	struct unit_ctx *c;
	size_t index; /* into c->folders; re-found after a reconnect */
	char *path_key;
	const char *validity;
	struct mf_path target;
	enum mf_role role;
	char *target_disp;
	void *fh;
	int64_t id;
	struct mf_strmap known;   /* source key -> state, or RE_DECIDE */
	struct mf_strmap seen;    /* hash -> stored copies in this folder */
	struct mf_strmap older;   /* hash -> copies stored under an older validity */
	struct ref *refs;
	size_t nrefs, cap;
	unsigned failed;
	size_t redecide; /* skipped rows whose rule's setting changed since */
	bool excluded;   /* the folder is excluded by [folders] */
};

/* In folder_ctx.known: a message skipped by a rule whose setting has changed
 * since: it is listed, fetched and decided again like a new one. */
#define RE_DECIDE (-1)

static const struct mf_folder *folder_of(struct folder_ctx *fc)
{
	return &fc->c->folders[fc->index];
}

static void backoff(struct unit_ctx *c, unsigned attempt)
{
	uint64_t ms = 500u << (attempt < 6 ? attempt : 6);
	mf_sleep_ms(ms, (const volatile int *)&c->run->stop);
}

/* Reopen the source after a dropped connection and find the folder again. */
static int reopen_source(struct unit_ctx *c, struct folder_ctx *fc, struct mf_err *err)
{
	char *key = fc ? fc->path_key : NULL;
	c->job->src->close(c->src);
	c->src = NULL;
	c->folders = NULL;
	int rc = c->job->src->open(c->job->src_cfg, c->u, &c->src, err);
	if (rc == 0)
		rc = c->job->src->folders(c->src, &c->folders, &c->nfolders, err);
	if (rc < 0 || !fc)
		return rc;
	for (size_t i = 0; i < c->nfolders; i++) {
		char *k = mf_path_key(&c->folders[i].path);
		bool same = k && strcmp(k, key) == 0;
		free(k);
		if (same) {
			fc->index = i;
			return 0;
		}
	}
	return mf_err_set(err, MF_EFOLDER, "folder %s is gone from the source", key);
}

static int reopen_sink(struct unit_ctx *c, struct folder_ctx *fc, struct mf_err *err)
{
	c->job->snk->close(c->snk);
	c->snk = NULL;
	int rc = c->job->snk->open(c->job->snk_cfg, c->u, &c->snk, err);
	if (rc == 0 && fc)
		rc = c->job->snk->folder(c->snk, &fc->target, fc->role, &fc->fh, err);
	return rc;
}

/* A reopen that failed with a connection error leaves the handle NULL; the
 * next attempt must reopen before using it (a NULL handle crashed the
 * driver: tests/fault/imap_network.sh, a stalled greeting on reconnect). */
static int ensure_source(struct unit_ctx *c, struct folder_ctx *fc, struct mf_err *err)
{
	return c->src ? 0 : reopen_source(c, fc, err);
}

static int ensure_sink(struct unit_ctx *c, struct folder_ctx *fc, struct mf_err *err)
{
	return c->snk ? 0 : reopen_sink(c, fc, err);
}

/* Should this error be retried, after waiting or reconnecting? */
static bool retryable(struct unit_ctx *c, const struct mf_err *err, unsigned *attempt,
		      unsigned *throttles)
{
	enum mf_class cls = mf_err_class(err->code);
	if (atomic_load(&c->run->stop))
		return false;
	if (cls == MF_CLASS_THROTTLED && ++*throttles <= MAX_THROTTLE_WAITS) {
		uint64_t ms = err->retry_after_ms > 0 ? (uint64_t)err->retry_after_ms : 1000;
		mf_log(MF_LOG_WARN, "event=throttled mailbox=%s wait_ms=%llu reason=\"%s\"",
		       c->mailbox_q, (unsigned long long)ms, err->msg);
		atomic_fetch_add(&c->stats->retries, 1);
		mf_sleep_ms(ms, (const volatile int *)&c->run->stop);
		return true;
	}
	if (cls == MF_CLASS_CONNECTION && ++*attempt < MAX_ATTEMPTS) {
		mf_log(MF_LOG_WARN, "event=reconnect mailbox=%s attempt=%u reason=\"%s\"",
		       c->mailbox_q, *attempt, err->msg);
		atomic_fetch_add(&c->stats->retries, 1);
		backoff(c, *attempt);
		return true;
	}
	return false;
}

/* --- rules ------------------------------------------------------------------- */

/* The setting of a skipping rule, as recorded with each skip it made: a
 * skip is decided again when the job's setting is no longer the recorded
 * one. */
static void too_big_setting(const struct mf_job *job, char *out, size_t size)
{
	snprintf(out, size, "max_message_bytes=%llu",
		 (unsigned long long)job->caps.max_message_bytes);
}

/* [folders]' rules as recorded with a folder-excluded skip. */
static void folders_setting(const struct mf_job *job, struct mf_buf *b)
{
	for (size_t i = 0; i < job->rules.ninclude; i++)
		mf_buf_printf(b, "%sinclude = %s", b->len ? "; " : "", job->rules.include[i]);
	for (size_t i = 0; i < job->rules.nexclude; i++)
		mf_buf_printf(b, "%sexclude = %s", b->len ? "; " : "", job->rules.exclude[i]);
}

/* Is a skipped row's decision out of date? "not-mail" is not a job setting
 * and stands; a row without a rule (or a setting) from an older mailferry
 * is decided again once, when its rule is known to be a setting; a message
 * of a folder excluded by [folders] is decided again once its folder is
 * taken (`folder_taken`). */
static bool skip_outdated(const struct mf_job *job, const struct mf_ckpt_row *row,
			  bool folder_taken)
{
	if (row->state != MF_MSG_SKIPPED || !row->rule)
		return false;
	if (strcmp(row->rule, "folder-excluded") == 0)
		return folder_taken;
	if (strcmp(row->rule, "too-big") == 0) {
		char cur[64];
		too_big_setting(job, cur, sizeof(cur));
		return !row->setting || strcmp(row->setting, cur) != 0;
	}
	return false;
}

/* Sizes in a reason, in the unit max_message_mb is given in. */
static void mb_text(uint64_t bytes, char *out, size_t size)
{
	if (bytes % (1024 * 1024) == 0)
		snprintf(out, size, "%llu MB", (unsigned long long)(bytes >> 20));
	else
		snprintf(out, size, "%.1f MB", (double)bytes / (1024.0 * 1024.0));
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 if none. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	size_t l = p[0] < 0x80 ? 1 : p[0] >= 0xc2 && p[0] < 0xe0 ? 2 : p[0] >= 0xe0 && p[0] < 0xf0 ? 3
		   : p[0] >= 0xf0 && p[0] < 0xf5 ? 4 : 0;
	if (!l || l > n)
		return 0;
	for (size_t k = 1; k < l; k++)
		if ((p[k] & 0xc0) != 0x80)
			return 0;
	return l;
}

/* One header's value for the report (unfolded, runs of white space and
 * control bytes as one space, bytes that are not UTF-8 as '?', cut at a
 * character boundary to at most size-1 bytes), "" when absent. Only the
 * header block is read. */
static void header_value(const unsigned char *msg, size_t len, const char *name, char *out,
			 size_t size)
{
	size_t nl = strlen(name), w = 0, i = 0;
	out[0] = '\0';
	while (i < len) {
		if (msg[i] == '\n' || (msg[i] == '\r' && i + 1 < len && msg[i + 1] == '\n'))
			return; /* the blank line: end of the header */
		bool match = len - i > nl && strncasecmp((const char *)msg + i, name, nl) == 0 &&
			     msg[i + nl] == ':';
		size_t e = i;
		while (e < len && msg[e] != '\n')
			e++;
		if (!match) {
			i = e + 1;
			continue;
		}
		size_t k = i + nl + 1;
		bool full = false;
		while (!full) {
			while (k < e && !full) {
				unsigned char ch = msg[k];
				size_t l = ch < 0x20 || ch == 0x7f ? 1 : utf8_len(msg + k, e - k);
				if (ch < 0x20 || ch == 0x7f || ch == ' ') {
					if (w > 0 && out[w - 1] != ' ' && w + 1 < size)
						out[w++] = ' ';
					k++;
				} else if (!l) {
					if (w + 1 < size)
						out[w++] = '?';
					else
						full = true;
					k++;
				} else if (w + l < size) {
					memcpy(out + w, msg + k, l);
					w += l;
					k += l;
				} else {
					full = true;
				}
			}
			/* a folded continuation line */
			if (full || e + 1 >= len || (msg[e + 1] != ' ' && msg[e + 1] != '\t'))
				break;
			k = e + 1;
			for (e = k; e < len && msg[e] != '\n'; e++)
				;
		}
		while (w && out[w - 1] == ' ')
			w--;
		out[w] = '\0';
		return;
	}
}

/* --- listing ------------------------------------------------------------------ */

static int load_row(void *arg, const struct mf_ckpt_row *row)
{
	struct folder_ctx *fc = arg;
	int state = row->state;
	if (skip_outdated(fc->c->job, row, !fc->excluded)) {
		state = RE_DECIDE;
		fc->redecide++;
	}
	if (mf_strmap_set(&fc->known, row->key, state) < 0)
		return MF_ENOMEM;
	if (state == MF_MSG_STORED && row->hash_hex[0]) {
		int *n = mf_strmap_get(&fc->seen, row->hash_hex);
		if (mf_strmap_set(&fc->seen, row->hash_hex, n ? *n + 1 : 1) < 0)
			return MF_ENOMEM;
	}
	return 0;
}

static int load_older(void *arg, const char *hash_hex)
{
	struct folder_ctx *fc = arg;
	int *n = mf_strmap_get(&fc->older, hash_hex);
	return mf_strmap_set(&fc->older, hash_hex, n ? *n + 1 : 1);
}

static int collect_ref(void *arg, const struct mf_msgref *r)
{
	struct folder_ctx *fc = arg;
	int *state = mf_strmap_get(&fc->known, r->key);
	if (state && (*state == MF_MSG_STORED || *state == MF_MSG_SKIPPED))
		return 0;
	if (fc->nrefs == fc->cap) {
		size_t cap = fc->cap ? 2 * fc->cap : 256;
		struct ref *grown = realloc(fc->refs, cap * sizeof(*grown));
		if (!grown)
			return MF_ENOMEM;
		fc->refs = grown;
		fc->cap = cap;
	}
	struct ref *ref = &fc->refs[fc->nrefs];
	memset(ref, 0, sizeof(*ref));
	ref->key = strdup(r->key);
	ref->skip = r->skip_kind ? strdup(r->skip_kind) : NULL;
	if (!ref->key || (r->skip_kind && !ref->skip)) {
		free(ref->key);
		free(ref->skip);
		return MF_ENOMEM;
	}
	ref->size = r->size;
	ref->idate = r->idate;
	ref->flags = r->flags;
	/* pending: the run died between recording and storing; failed: the last
	 * attempt may have landed (a timeout after the server took it) */
	ref->in_doubt = state && (*state == MF_MSG_PENDING || *state == MF_MSG_FAILED);
	/* a RE_DECIDE row never reached the sink: not in doubt */
	fc->nrefs++;
	return 0;
}

static void free_refs(struct folder_ctx *fc)
{
	for (size_t i = 0; i < fc->nrefs; i++) {
		free(fc->refs[i].key);
		free(fc->refs[i].skip);
	}
	free(fc->refs);
	fc->refs = NULL;
	fc->nrefs = fc->cap = 0;
}

/* --- one message ---------------------------------------------------------------- */

struct outcome {
	struct mf_ckpt_rec rec;
	char hash[65];
	char sink_id[MF_SINK_ID_MAX];
	char reason[600];
	char setting[64];
	/* for the report, recorded only with a skip, a failure or a change */
	char subject[256], sender[256], hdate[96], msgid[256], note[256];
};

static void skip_too_big(const struct mf_job *job, struct outcome *o, uint64_t size)
{
	char a[32], b[32];
	mb_text(size, a, sizeof(a));
	mb_text(job->caps.max_message_bytes, b, sizeof(b));
	o->rec.state = MF_MSG_SKIPPED;
	snprintf(o->reason, sizeof(o->reason), "too-big: %s > %s", a, b);
	o->rec.reason = o->reason;
	o->rec.rule = "too-big";
	too_big_setting(job, o->setting, sizeof(o->setting));
	o->rec.setting = o->setting;
}

/* What the report lists for a message, read from its header block. */
static void keep_headers(struct outcome *o, const unsigned char *data, size_t len)
{
	header_value(data, len, "Subject", o->subject, sizeof(o->subject));
	header_value(data, len, "From", o->sender, sizeof(o->sender));
	header_value(data, len, "Date", o->hdate, sizeof(o->hdate));
	header_value(data, len, "Message-ID", o->msgid, sizeof(o->msgid));
}

/* Attach the report's fields to the record when it is one the report lists. */
static void report_fields(struct outcome *o)
{
	/* line ends converted to the target's convention is how every message
	 * is stored there, not a change the report lists one by one */
	if (o->rec.state == MF_MSG_STORED && !(o->rec.changes & ~(unsigned)MF_NORM_LINE_ENDINGS))
		return;
	o->rec.subject = o->subject[0] ? o->subject : NULL;
	o->rec.sender = o->sender[0] ? o->sender : NULL;
	o->rec.hdate = o->hdate[0] ? o->hdate : NULL;
	o->rec.msgid = o->msgid[0] ? o->msgid : NULL;
	o->rec.note = o->note[0] ? o->note : NULL;
}

/* Returns 0 when the message has an outcome (stored, skipped or failed), or
 * a negative code (in err) that ends the folder or the unit. */
static int migrate_one(struct folder_ctx *fc, struct ref *ref, struct outcome *o,
		       struct mf_err *err)
{
	struct unit_ctx *c = fc->c;
	const struct mf_job *job = c->job;
	memset(o, 0, sizeof(*o));
	o->rec.key = ref->key;
	o->rec.size = ref->size;
	o->rec.idate = ref->idate;
	o->rec.flags = ref->flags;

	if (ref->skip) {
		o->rec.state = MF_MSG_SKIPPED;
		snprintf(o->reason, sizeof(o->reason), "not mail: %s", ref->skip);
		o->rec.reason = o->reason;
		o->rec.rule = "not-mail";
		return 0;
	}
	uint64_t max = job->caps.max_message_bytes;
	if (max && ref->size > max + max / 2) {
		/* clearly too big: do not even fetch it (so its headers are
		 * not known to the report) */
		skip_too_big(job, o, ref->size);
		return 0;
	}

	uint64_t held = ref->size ? ref->size : 65536;
	budget_take(&c->run->budget, held);
	struct mf_msg msg = {0};
	struct mf_norm_result norm = {0};
	char *message_id = NULL, *keywords = NULL;
	int rc = 0;
	unsigned attempt = 0, throttles = 0;
	struct mf_msgref r = {.key = ref->key, .size = ref->size, .idate = ref->idate,
			      .flags = ref->flags};
	for (;;) {
		mf_err_clear(err);
		rc = ensure_source(c, fc, err);
		if (rc == 0)
			rc = job->src->fetch(c->src, folder_of(fc), &r, &msg, err);
		if (rc == 0 || !retryable(c, err, &attempt, &throttles))
			break;
		if (mf_err_class(err->code) == MF_CLASS_CONNECTION &&
		    (rc = reopen_source(c, fc, err)) < 0 &&
		    mf_err_class(rc) != MF_CLASS_CONNECTION)
			break;
	}
	if (rc < 0)
		goto failed;
	if (!msg.idate)
		msg.idate = ref->idate;
	if (!msg.flags)
		msg.flags = ref->flags;
	o->rec.idate = msg.idate;
	o->rec.flags = msg.flags;
	keywords = msg.keywords; /* kept past mf_msg_clear, for the store */
	msg.keywords = NULL;
	o->rec.size = msg.len;

	rc = mf_normalize(&job->norm, msg.data, msg.len, msg.idate, &norm);
	if (rc < 0) {
		mf_err_set(err, rc, "out of memory while normalizing");
		goto failed;
	}
	mf_msg_clear(&msg);
	o->rec.changes = norm.changes;
	o->rec.size = norm.len;
	keep_headers(o, norm.data, norm.len);
	snprintf(o->note, sizeof(o->note), "%s", norm.note);
	if (max && norm.len > max) {
		skip_too_big(job, o, norm.len);
		goto out;
	}
	unsigned char sha[MF_SHA256_LEN];
	mf_sha256(norm.data, norm.len, sha);
	mf_hex(sha, sizeof(sha), o->hash);
	o->rec.hash_hex = o->hash;

	int *copies = mf_strmap_get(&fc->seen, o->hash);
	unsigned dup = copies ? (unsigned)*copies : 0;

	/* After a UIDVALIDITY change the same content may already be there. */
	int *older = mf_strmap_get(&fc->older, o->hash);
	if (older && *older > 0) {
		(*older)--;
		o->rec.state = MF_MSG_STORED;
		snprintf(o->reason, sizeof(o->reason),
			 "already migrated under an earlier folder identity");
		o->rec.reason = o->reason;
		goto stored;
	}

	/* idempotency key: stable for (unit, folder, validity, source key) */
	char idem_src[1024], idem[33];
	unsigned char ih[MF_SHA256_LEN];
	int l = snprintf(idem_src, sizeof(idem_src), "%s\n%s\n%s\n%s", c->u->id, fc->path_key,
			 fc->validity, ref->key);
	mf_sha256(idem_src, (size_t)(l < (int)sizeof(idem_src) ? l : (int)sizeof(idem_src) - 1),
		  ih);
	mf_hex(ih, 16, idem);
	message_id = mf_header_message_id(norm.data, norm.len);
	struct mf_item item = {
		.data = norm.data,
		.len = norm.len,
		.sha256 = sha,
		.hash_hex = o->hash,
		.idem = idem,
		.dup = dup,
		.message_id = message_id,
		.idate = msg.idate ? msg.idate : ref->idate,
		.flags = o->rec.flags,
		.keywords = keywords,
	};

	attempt = throttles = 0;
	bool probe = ref->in_doubt;
	for (;;) {
		mf_err_clear(err);
		if ((rc = ensure_sink(c, fc, err)) < 0)
			probe = true; /* handled below as a failed attempt */
		else if (probe) {
			rc = job->snk->probe(c->snk, fc->fh, &item, o->sink_id, err);
			if (rc == 1) {
				mf_log(MF_LOG_INFO,
				       "event=probe-found mailbox=%s folder_id=%lld key=%s",
				       c->mailbox_q, (long long)fc->id, ref->key);
				rc = 0;
				break;
			}
			if (rc == 0)
				probe = false;
		}
		if (!probe && c->snk)
			rc = job->snk->store(c->snk, fc->fh, &item, o->sink_id, err);
		if (rc == 0 || !retryable(c, err, &attempt, &throttles))
			break;
		/* a store that failed ambiguously may have landed: probe first */
		probe = true;
		if (mf_err_class(err->code) == MF_CLASS_CONNECTION) {
			struct mf_err e2 = {0};
			if (reopen_sink(c, fc, &e2) < 0) {
				*err = e2;
				if (mf_err_class(e2.code) != MF_CLASS_CONNECTION) {
					rc = e2.code;
					break;
				}
			}
		}
	}
	if (rc < 0)
		goto failed;
	mf_fault_point(MF_FAULT_STORE);
stored:
	o->rec.state = MF_MSG_STORED;
	o->rec.sink_id = o->sink_id[0] ? o->sink_id : NULL;
	/* the copy count names the next identical message (blob sinks'
	 * "-2.eml"): without it that copy would be taken for this one. The
	 * outcome is not recorded, so the rerun probes this message. */
	if (mf_strmap_set(&fc->seen, o->hash, (int)dup + 1) < 0) {
		rc = mf_err_set(err, MF_ENOMEM, "out of memory counting copies");
		goto out;
	}
	atomic_fetch_add(&c->stats->stored, 1);
	atomic_fetch_add(&c->stats->stored_bytes, norm.len);
	goto out;

failed:
	switch (mf_err_class(err->code)) {
	case MF_CLASS_MESSAGE:
	case MF_CLASS_CONNECTION: /* gave up retrying: this message, next run again */
	case MF_CLASS_THROTTLED:
		o->rec.state = err->code == MF_ETOOBIG ? MF_MSG_SKIPPED : MF_MSG_FAILED;
		o->rec.err_class = (int)mf_err_class(err->code);
		snprintf(o->reason, sizeof(o->reason), "%s%s",
			 err->code == MF_ETOOBIG ? "too-big: " : "", err->msg);
		o->rec.reason = o->reason;
		if (err->code == MF_ETOOBIG) {
			/* the target's own limit: decided again when the job's
			 * limit changes */
			o->rec.rule = "too-big";
			too_big_setting(job, o->setting, sizeof(o->setting));
			o->rec.setting = o->setting;
		}
		rc = 0;
		if (err->code == MF_EINTERRUPTED || atomic_load(&c->run->stop))
			rc = MF_EINTERRUPTED;
		break;
	default:
		break; /* ends the folder or the unit: rc stays negative */
	}
out:
	report_fields(o);
	free(message_id);
	free(keywords);
	mf_bytes_free(norm.data);
	mf_msg_clear(&msg);
	budget_give(&c->run->budget, held);
	return rc;
}

/* --- one folder ------------------------------------------------------------------ */

static void folder_free(struct folder_ctx *fc)
{
	free(fc->path_key);
	free(fc->target_disp);
	mf_path_free(&fc->target);
	mf_strmap_free(&fc->known);
	mf_strmap_free(&fc->seen);
	mf_strmap_free(&fc->older);
	free_refs(fc);
}

static int list_folder(struct folder_ctx *fc, const char *cursor, char **next,
		       struct mf_err *err)
{
	struct unit_ctx *c = fc->c;
	unsigned attempt = 0, throttles = 0;
	for (;;) {
		free_refs(fc);
		free(*next);
		*next = NULL;
		mf_err_clear(err);
		int rc = ensure_source(c, fc, err);
		if (rc == 0)
			rc = c->job->src->list(c->src, folder_of(fc), cursor, collect_ref, fc, next,
					       err);
		if (rc == 0 || !retryable(c, err, &attempt, &throttles))
			return rc;
		if (mf_err_class(err->code) == MF_CLASS_CONNECTION &&
		    (rc = reopen_source(c, fc, err)) < 0 && mf_err_class(rc) != MF_CLASS_CONNECTION)
			return rc;
	}
}

/* Remove the pending rows of messages this run recorded but never handed to
 * the sink (a graceful stop): they are not in doubt. Best effort: a row left
 * behind is only probed on the rerun. */
static void forget_untried(struct mf_ckpt *ck, int64_t folder_id, const struct ref *refs,
			   size_t n)
{
	const char **keys = calloc(n ? n : 1, sizeof(*keys));
	size_t nk = 0;
	if (!keys)
		return;
	for (size_t i = 0; i < n; i++)
		if (!refs[i].skip && !refs[i].in_doubt) /* written as pending by this batch */
			keys[nk++] = refs[i].key;
	struct mf_err err = {0};
	if (mf_ckpt_forget_pending(ck, folder_id, keys, nk, &err) < 0)
		mf_log(MF_LOG_WARN, "event=forget-untried-failed reason=\"%s\"", err.msg);
	free(keys);
}

/* A folder excluded by [folders]: its messages are listed (never fetched)
 * and recorded as skipped by that rule, so that the report says what was
 * left behind and a later run that takes the folder decides them again.
 * Rows of another state (stored when the folder was taken before) are left
 * as they are. A source that cannot list the folder costs a warning, not
 * the mailbox. Listing is metadata only, but it is done on every run. */
static int record_excluded(struct folder_ctx *fc, struct mf_err *err)
{
	struct unit_ctx *c = fc->c;
	const struct mf_folder *f = folder_of(fc);
	struct mf_ckpt *ck = c->run->ck;
	char *cursor = NULL, *next = NULL;
	struct mf_ckpt_rec *recs = NULL;
	struct mf_buf setting = {0};
	bool older;
	char q[300];
	char *name = mf_path_join(&f->path, "/");
	fc->path_key = mf_path_key(&f->path);
	fc->validity = f->validity ? f->validity : "";
	int rc = 0;
	if (!name || !fc->path_key) {
		rc = mf_err_set(err, MF_ENOMEM, "out of memory");
		goto out;
	}
	folders_setting(c->job, &setting);
	rc = mf_ckpt_folder(ck, c->unit_id, fc->path_key, fc->validity, "", &fc->id, &cursor,
			    &older, err);
	if (rc == 0)
		rc = mf_ckpt_folder_rows(ck, fc->id, load_row, fc, err);
	if (rc < 0)
		goto out;
	struct mf_err lerr = {0};
	if (list_folder(fc, cursor, &next, &lerr) < 0) {
		if (mf_err_class(lerr.code) == MF_CLASS_CONFIG || lerr.code == MF_ENOMEM) {
			*err = lerr;
			rc = lerr.code;
		} else {
			mf_log(MF_LOG_WARN,
			       "event=folder-excluded-unlisted mailbox=%s folder=%s reason=\"%s\"",
			       c->mailbox_q, mf_log_quote(name, q, sizeof(q)), lerr.msg);
		}
		goto out;
	}
	size_t n = 0;
	for (size_t i = 0; i < fc->nrefs; i++)
		n += !fc->refs[i].in_doubt;
	if (n)
		mf_log(MF_LOG_INFO, "event=folder-excluded mailbox=%s folder=%s messages=%zu",
		       c->mailbox_q, mf_log_quote(name, q, sizeof(q)), n);
	size_t batch = c->job->batch;
	recs = calloc(batch, sizeof(*recs));
	if (!recs) {
		rc = mf_err_set(err, MF_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t start = 0; start < fc->nrefs && rc == 0; start += batch) {
		size_t end = start + batch < fc->nrefs ? start + batch : fc->nrefs, k = 0;
		for (size_t i = start; i < end; i++) {
			const struct ref *r = &fc->refs[i];
			if (r->in_doubt)
				continue; /* pending or failed from when it was taken */
			recs[k++] = (struct mf_ckpt_rec){
				.key = r->key, .state = MF_MSG_SKIPPED, .size = r->size,
				.idate = r->idate, .flags = r->flags,
				.reason = "folder excluded by [folders]", .rule = "folder-excluded",
				.setting = setting.data};
		}
		rc = mf_ckpt_write(ck, fc->id, recs, k, err);
		if (rc == 0)
			atomic_fetch_add(&c->stats->skipped, k);
	}
	/* no cursor is saved: the folder is listed whole on every run, so that
	 * the run that takes it again finds every message (and creates it even
	 * if it is empty) */
out:
	free(name);
	free(cursor);
	free(next);
	free(recs);
	mf_buf_free(&setting);
	return rc;
}

/* The target folder cannot be had (refused name, no rights): every message
 * of it is recorded as failed with that reason, so that the report counts
 * what the run counts (it counted the folder once, the report nothing). */
static void fail_folder(struct folder_ctx *fc, const struct mf_err *why)
{
	struct unit_ctx *c = fc->c;
	size_t batch = c->job->batch ? c->job->batch : 1;
	struct mf_ckpt_rec *recs = calloc(batch, sizeof(*recs));
	uint64_t n = 0;
	if (!recs) {
		mf_log(MF_LOG_WARN, "event=out-of-memory what=failed-folder-rows");
		return;
	}
	for (size_t start = 0; start < fc->nrefs; start += batch) {
		size_t np = 0;
		for (size_t i = start; i < fc->nrefs && i < start + batch; i++) {
			const struct ref *r = &fc->refs[i];
			if (r->skip)
				continue;
			recs[np++] = (struct mf_ckpt_rec){.key = r->key, .state = MF_MSG_FAILED,
							  .size = r->size, .idate = r->idate,
							  .flags = r->flags, .reason = why->msg,
							  .err_class = (int)MF_CLASS_FOLDER};
		}
		struct mf_err werr = {0};
		if (np && mf_ckpt_write(c->run->ck, fc->id, recs, np, &werr) < 0) {
			mf_log(MF_LOG_WARN, "event=failed-folder-rows-not-written reason=\"%s\"",
			       werr.msg);
			break;
		}
		n += np;
	}
	free(recs);
	atomic_fetch_add(&c->stats->failed, n);
}

static int run_folder(struct unit_ctx *c, size_t index, struct mf_err *err)
{
	const struct mf_job *job = c->job;
	struct folder_ctx fc = {.c = c, .index = index};
	mf_path_init(&fc.target);
	mf_strmap_init(&fc.known);
	mf_strmap_init(&fc.seen);
	mf_strmap_init(&fc.older);
	const struct mf_folder *f = folder_of(&fc);
	const bool not_mail = f->not_mail; /* f may move when the source reopens */
	char *cursor = NULL, *next = NULL, *target_key = NULL;
	struct mf_ckpt_rec *recs = NULL;
	struct outcome *outs = NULL;
	int rc = mf_job_target_folder(job, c->u, c->folders, c->nfolders, index, &fc.target,
				      &fc.role);
	if (rc == 0) {
		fc.excluded = true;
		rc = record_excluded(&fc, err);
		folder_free(&fc);
		return rc;
	}
	if (rc < 0)
		return rc; /* ENOMEM */
	fc.path_key = mf_path_key(&f->path);
	target_key = mf_path_key(&fc.target);
	fc.target_disp = mf_path_join(&fc.target, "/");
	fc.validity = f->validity ? f->validity : "";
	if (!fc.path_key || !target_key || !fc.target_disp) {
		rc = mf_err_set(err, MF_ENOMEM, "out of memory");
		goto out;
	}
	struct mf_ckpt *ck = c->run->ck;
	bool older = false;
	rc = mf_ckpt_folder(ck, c->unit_id, fc.path_key, fc.validity, target_key, &fc.id, &cursor,
			    &older, err);
	if (rc == 0)
		rc = mf_ckpt_folder_rows(ck, fc.id, load_row, &fc, err);
	if (rc == 0 && older)
		rc = mf_ckpt_older_hashes(ck, c->unit_id, fc.path_key, fc.validity, load_older,
					  &fc, err);
	if (rc == 0 && fc.redecide) {
		/* the source's cursor is past those messages: list them all */
		mf_log(MF_LOG_INFO,
		       "event=skips-redecided mailbox=%s folder_id=%lld messages=%zu "
		       "reason=\"the rule that skipped them has another setting now\"",
		       c->mailbox_q, (long long)fc.id, fc.redecide);
		free(cursor);
		cursor = NULL;
	}
	if (rc == 0)
		rc = list_folder(&fc, cursor, &next, err);
	if (rc < 0)
		goto out;
	uint64_t bytes = 0;
	for (size_t i = 0; i < fc.nrefs; i++)
		bytes += fc.refs[i].skip ? 0 : fc.refs[i].size;
	atomic_fetch_add(&c->stats->listed, fc.nrefs);
	atomic_fetch_add(&c->stats->listed_bytes, bytes);
	/* An empty folder is created once, the first time it is seen, so that
	 * the target gets the whole folder tree; after that, nothing to do. */
	bool first_time = fc.known.n == 0 && !cursor;
	/* ... except a folder that is not mail: made only for mail found in it
	 * (its other items are still counted as skipped below) */
	bool any_mail = !not_mail;
	for (size_t i = 0; i < fc.nrefs && !any_mail; i++)
		any_mail = !fc.refs[i].skip;
	if (fc.nrefs == 0 && (!first_time || !any_mail)) {
		if (next && (!cursor || strcmp(cursor, next) != 0))
			rc = mf_ckpt_folder_done(ck, fc.id, next, err);
		goto out;
	}
	char q[300];
	mf_log(MF_LOG_INFO, "event=folder mailbox=%s target=%s todo=%zu", c->mailbox_q,
	       mf_log_quote(fc.target_disp, q, sizeof(q)), fc.nrefs);
	if (any_mail) {
		unsigned attempt = 0, throttles = 0;
		for (;;) {
			mf_err_clear(err);
			rc = ensure_sink(c, NULL, err);
			if (rc == 0)
				rc = job->snk->folder(c->snk, &fc.target, fc.role, &fc.fh, err);
			if (rc == 0 || !retryable(c, err, &attempt, &throttles))
				break;
			if (mf_err_class(err->code) == MF_CLASS_CONNECTION &&
			    (rc = reopen_sink(c, NULL, err)) < 0 &&
			    mf_err_class(rc) != MF_CLASS_CONNECTION)
				break;
		}
		if (rc < 0 && mf_err_class(rc) == MF_CLASS_FOLDER)
			fail_folder(&fc, err);
		if (rc < 0)
			goto out;
	}
	if (fc.nrefs == 0) {
		rc = mf_ckpt_folder_done(ck, fc.id, next ? next : "", err);
		goto out;
	}

	size_t batch = job->batch;
	recs = calloc(batch, sizeof(*recs));
	outs = calloc(batch, sizeof(*outs));
	if (!recs || !outs) {
		rc = mf_err_set(err, MF_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t start = 0; start < fc.nrefs && rc == 0; start += batch) {
		size_t end = start + batch < fc.nrefs ? start + batch : fc.nrefs;
		if (atomic_load(&c->run->stop)) {
			rc = MF_EINTERRUPTED;
			break;
		}
		/* 1. pending, durably, before the sink sees anything */
		size_t np = 0;
		for (size_t i = start; i < end; i++) {
			struct ref *r = &fc.refs[i];
			if (r->skip || r->in_doubt)
				continue;
			recs[np++] = (struct mf_ckpt_rec){.key = r->key, .state = MF_MSG_PENDING,
							  .size = r->size, .idate = r->idate,
							  .flags = r->flags};
		}
		rc = mf_ckpt_write(ck, fc.id, recs, np, err);
		if (rc < 0)
			break;
		if (np)
			mf_fault_point(MF_FAULT_PENDING);
		/* 2. store */
		size_t done = 0;
		for (size_t i = start; i < end; i++) {
			if (i > start && atomic_load(&c->run->stop)) {
				rc = MF_EINTERRUPTED;
				break;
			}
			rc = migrate_one(&fc, &fc.refs[i], &outs[done], err);
			if (rc < 0 && rc != MF_EINTERRUPTED)
				break;
			struct outcome *o = &outs[done++];
			if (o->rec.state == MF_MSG_SKIPPED)
				atomic_fetch_add(&c->stats->skipped, 1);
			if (o->rec.state == MF_MSG_FAILED) {
				atomic_fetch_add(&c->stats->failed, 1);
				fc.failed++;
				mf_log(MF_LOG_WARN,
				       "event=message-failed mailbox=%s folder=%s key=%s "
				       "class=%s reason=\"%s\"",
				       c->mailbox_q, mf_log_quote(fc.target_disp, q, sizeof(q)),
				       o->rec.key, mf_class_name((enum mf_class)o->rec.err_class),
				       o->reason);
			}
			if (rc == MF_EINTERRUPTED)
				break;
		}
		/* 3. outcomes, durably (also when stopping: what is done is done) */
		for (size_t i = 0; i < done; i++)
			recs[i] = outs[i].rec;
		struct mf_err werr = {0};
		int wrc = mf_ckpt_write(ck, fc.id, recs, done, &werr);
		if (wrc < 0) {
			*err = werr;
			rc = wrc;
		} else if (done) {
			mf_fault_point(MF_FAULT_COMMIT);
		}
		/* a graceful stop: the rest of the batch never reached the sink,
		 * so its pending rows are not in doubt; drop them */
		if (rc == MF_EINTERRUPTED && start + done < end)
			forget_untried(ck, fc.id, &fc.refs[start + done], end - start - done);
	}
	if (rc == 0 && fc.failed == 0 && next)
		rc = mf_ckpt_folder_done(ck, fc.id, next, err);
	if (rc == MF_EINTERRUPTED)
		mf_err_set(err, MF_EINTERRUPTED, "interrupted");
out:
	free(cursor);
	free(next);
	free(target_key);
	free(recs);
	free(outs);
	folder_free(&fc);
	return rc;
}

/* --- one unit ----------------------------------------------------------------------- */

static int open_with_retry(struct unit_ctx *c, bool source, struct mf_err *err)
{
	unsigned attempt = 0, throttles = 0;
	for (;;) {
		mf_err_clear(err);
		int rc = source ? c->job->src->open(c->job->src_cfg, c->u, &c->src, err)
				: c->job->snk->open(c->job->snk_cfg, c->u, &c->snk, err);
		if (rc == 0 && source)
			rc = c->job->src->folders(c->src, &c->folders, &c->nfolders, err);
		if (rc == 0 || !retryable(c, err, &attempt, &throttles))
			return rc;
		if (source && c->src) {
			c->job->src->close(c->src);
			c->src = NULL;
		}
	}
}

/* Whole-file mode: the unit's file is one item, under the same pending ->
 * stored protocol as a message (folder "", key "file"). */
static int upload_whole_file(struct unit_ctx *c, struct mf_err *err)
{
	struct mf_ckpt *ck = c->run->ck;
	const char *path = c->u->pst_path;
	if (!path)
		return mf_err_set(err, MF_ECONFIG, "the %s sink takes whole PST files: use a PST "
				  "manifest", c->job->snk->name);
	int64_t fid;
	char *cursor = NULL;
	bool older;
	int rc = mf_ckpt_folder(ck, c->unit_id, "", "file", "", &fid, &cursor, &older, err);
	free(cursor);
	if (rc < 0)
		return rc;
	struct mf_strmap known;
	mf_strmap_init(&known);
	struct unit_ctx pc = {.job = c->job};
	struct folder_ctx probe = {.c = &pc, .known = known};
	rc = mf_ckpt_folder_rows(ck, fid, load_row, &probe, err);
	int *state = mf_strmap_get(&probe.known, "file");
	bool done = state && *state == MF_MSG_STORED;
	mf_strmap_free(&probe.known);
	mf_strmap_free(&probe.seen);
	if (rc < 0 || done)
		return rc;
	struct mf_ckpt_rec rec = {.key = "file", .state = MF_MSG_PENDING};
	rc = mf_ckpt_write(ck, fid, &rec, 1, err);
	if (rc < 0)
		return rc;
	char sink_id[MF_SINK_ID_MAX] = "";
	unsigned attempt = 0, throttles = 0;
	for (;;) {
		mf_err_clear(err);
		rc = ensure_sink(c, NULL, err);
		if (rc == 0)
			rc = c->job->snk->upload_file(c->snk, path, sink_id, err);
		if (rc == 0 || !retryable(c, err, &attempt, &throttles))
			break;
		if (mf_err_class(err->code) == MF_CLASS_CONNECTION) {
			struct mf_err e2 = {0};
			if (reopen_sink(c, NULL, &e2) < 0 && mf_err_class(e2.code) != MF_CLASS_CONNECTION)
				return (*err = e2).code;
		}
	}
	if (rc < 0)
		return rc;
	struct stat st;
	rec = (struct mf_ckpt_rec){.key = "file", .state = MF_MSG_STORED, .sink_id = sink_id,
				   .size = stat(path, &st) == 0 ? (uint64_t)st.st_size : 0};
	rc = mf_ckpt_write(ck, fid, &rec, 1, err);
	if (rc == 0) {
		atomic_fetch_add(&c->stats->stored, 1);
		atomic_fetch_add(&c->stats->stored_bytes, rec.size);
	}
	return rc;
}

int mf_pipeline_run(struct mf_run_ctx *run, const struct mf_unit *u, struct mf_unit_stats *stats,
		    struct mf_err *why)
{
	struct unit_ctx c = {.run = run, .job = run->job, .u = u, .stats = stats};
	mf_log_quote(u->mailbox, c.mailbox_q, sizeof(c.mailbox_q));
	mf_err_clear(why);
	int rc = mf_ckpt_unit_begin(run->ck, u, &c.unit_id, why);
	if (rc < 0)
		return rc;
	struct mf_buf folder_errors = {0};
	unsigned nfolder_errors = 0;
	if (!run->job->caps.whole_files) {
		rc = open_with_retry(&c, true, why);
		if (rc < 0) {
			mf_err_prefix(why, "source %s", u->source_desc);
			goto out;
		}
	}
	rc = open_with_retry(&c, false, why);
	if (rc < 0) {
		mf_err_prefix(why, "target %s", u->mailbox);
		goto out;
	}
	if (run->job->caps.whole_files) {
		rc = upload_whole_file(&c, why);
		goto out;
	}
	for (size_t i = 0; i < c.nfolders; i++) {
		struct mf_err ferr = {0};
		if (!c.src && (rc = open_with_retry(&c, true, why)) < 0) {
			/* the last reconnect of the previous folder failed */
			mf_err_prefix(why, "source %s", u->source_desc);
			break;
		}
		if (i >= c.nfolders)
			break;
		char *name = mf_path_join(&c.folders[i].path, "/");
		rc = run_folder(&c, i, &ferr);
		if (rc == MF_EINTERRUPTED || (rc < 0 && atomic_load(&run->stop))) {
			*why = ferr;
			rc = MF_EINTERRUPTED;
			free(name);
			break;
		}
		if (rc < 0 && mf_err_class(rc) == MF_CLASS_FOLDER) {
			mf_log(MF_LOG_WARN, "event=folder-failed mailbox=%s reason=\"%s\"",
			       c.mailbox_q, ferr.msg);
			if (mf_buf_printf(&folder_errors, "%sfolder %s: %s",
					  nfolder_errors ? "; " : "", name ? name : "?",
					  ferr.msg) < 0)
				mf_log(MF_LOG_WARN, "event=out-of-memory what=folder-errors");
			nfolder_errors++;
			/* its messages are counted failed by fail_folder() */
			rc = 0;
		} else if (rc < 0) {
			*why = ferr;
			mf_err_prefix(why, "folder %s", name ? name : "?");
			free(name);
			break;
		}
		free(name);
	}
out:
	if (c.src)
		run->job->src->close(c.src);
	if (c.snk)
		run->job->snk->close(c.snk);
	const char *state = "done";
	struct mf_err summary = {0};
	if (rc == MF_EINTERRUPTED) {
		state = "interrupted";
	} else if (rc < 0) {
		state = "failed";
	} else if (nfolder_errors) {
		state = "partial";
		mf_err_set(&summary, MF_EFOLDER, "%s", folder_errors.data);
	}
	mf_buf_free(&folder_errors);
	struct mf_err werr = {0};
	bool worked = atomic_load(&stats->stored) || atomic_load(&stats->skipped) ||
		      atomic_load(&stats->failed);
	int wrc = mf_ckpt_unit_end(run->ck, c.unit_id, state,
				   rc < 0 ? why : (summary.code ? &summary : NULL), worked, &werr);
	if (wrc < 0 && rc == 0) {
		*why = werr;
		rc = wrc;
	}
	return rc;
}

/* --- dry run --------------------------------------------------------------------- */

struct dry {
	const struct mf_job *job;
	struct mf_strmap known;
	uint64_t msgs, bytes, skipped;
};

static int dry_ref(void *arg, const struct mf_msgref *r)
{
	struct dry *d = arg;
	int *state = mf_strmap_get(&d->known, r->key);
	if (state && (*state == MF_MSG_STORED || *state == MF_MSG_SKIPPED))
		return 0;
	if (r->skip_kind) {
		d->skipped++;
		return 0;
	}
	d->msgs++;
	d->bytes += r->size;
	return 0;
}

static int dry_row(void *arg, const struct mf_ckpt_row *row)
{
	struct dry *d = arg;
	return mf_strmap_set(&d->known, row->key,
			     skip_outdated(d->job, row, true) ? RE_DECIDE : row->state);
}

/* Read-only: the rows already recorded for this folder, if any. */
static int dry_known(struct mf_ckpt *ck, const struct mf_unit *u, const char *path_key,
		     const char *validity, struct dry *d)
{
	if (!ck)
		return 0;
	return mf_ckpt_lookup_rows(ck, u->id, path_key, validity, dry_row, d, NULL);
}

int mf_pipeline_dry_run(const struct mf_job *job, struct mf_ckpt *ck, const struct mf_unit *u,
			FILE *out, uint64_t *msgs, uint64_t *bytes, struct mf_err *why)
{
	void *src = NULL;
	const struct mf_folder *folders;
	size_t n;
	int rc = job->src->open(job->src_cfg, u, &src, why);
	if (rc == 0)
		rc = job->src->folders(src, &folders, &n, why);
	if (rc < 0) {
		mf_err_prefix(why, "source %s", u->source_desc);
		fprintf(out, "%s <- %s: cannot read the source: %s\n", u->mailbox, u->source_desc,
			why->msg);
		goto out;
	}
	fprintf(out, "%s <- %s\n", u->mailbox, u->source_desc);
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct mf_path target;
		enum mf_role role;
		int take = mf_job_target_folder(job, u, folders, n, i, &target, &role);
		char *name = mf_path_join(&folders[i].path, "/");
		if (take < 0 || !name) {
			free(name);
			rc = mf_err_set(why, MF_ENOMEM, "out of memory");
			break;
		}
		if (take == 0) {
			fprintf(out, "  %-40s excluded by [folders]\n", name);
			free(name);
			continue;
		}
		char *tname = mf_path_join(&target, "/");
		char *key = mf_path_key(&folders[i].path);
		struct dry d = {.job = job};
		mf_strmap_init(&d.known);
		char *next = NULL;
		rc = dry_known(ck, u, key ? key : "", folders[i].validity ? folders[i].validity : "",
			       &d);
		if (rc == 0)
			rc = job->src->list(src, &folders[i], NULL, dry_ref, &d, &next, why);
		if (rc == 0) {
			fprintf(out, "  %-40s -> %-30s %6llu messages %10.1f MB",
				name, tname ? tname : "?", (unsigned long long)d.msgs,
				(double)d.bytes / 1e6);
			if (d.skipped)
				fprintf(out, "  (%llu not mail, skipped)",
					(unsigned long long)d.skipped);
			fputc('\n', out);
			*msgs += d.msgs;
			*bytes += d.bytes;
		}
		free(next);
		free(key);
		free(tname);
		free(name);
		mf_path_free(&target);
		mf_strmap_free(&d.known);
	}
out:
	if (src)
		job->src->close(src);
	return rc;
}
