/* verify.c - `mailferry verify` (source vs sink, per folder: counts and
 * content hashes, or Message-IDs for targets that rewrite what they store)
 * and `mailferry plan` (pre-flight: logins, folders, sizes).
 * Both read the live servers and files, not the state database, and write
 * nothing: the target is opened with the sink's open_read, which finds
 * folders and never creates one (a folder that is not there is "missing"),
 * and cleans nothing a run may be using. A sink without open_read is
 * refused. `verify --repair` writes the state database only: it turns the
 * rows of messages found missing in the target from stored into failed, so
 * that the next run probes for them and stores them again; it never writes
 * to, or deletes from, a target.
 *
 * While a run holds the job lock, verify refuses (exit 2, naming the pid):
 * half a migration would only show as missing messages. It finds the lock
 * holder without taking the lock (/proc/locks), so that a run starting at
 * that very moment is not refused because of verify.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <uv.h>

#include "checkpoint.h"
#include "log.h"
#include "spill.h"
#include "loop.h"
#include "normalize/normalize.h"
#include "run.h"
#include "strmap.h"
#include "util.h"

/* --- is a run going on? ------------------------------------------------------------ */

/* Does a process hold the job lock (<state>.lock, see mf_run_lock)? 1 with
 * the holder's pid in pid[] (from the lock file, else from /proc/locks, else
 * "?"), 0 if not. Looks without locking and without creating the lock file:
 * the flock held by a run is found in /proc/locks by device and inode. Only
 * where /proc/locks cannot be read does it try a shared lock, let go at
 * once. */
static int lock_holder(const char *state_path, char pid[32])
{
	char path[4096];
	struct stat st;
	int held = 0;
	snprintf(pid, 32, "?");
	snprintf(path, sizeof(path), "%s.lock", state_path);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0; /* a run makes the file before it locks it */
	if (fstat(fd, &st) < 0) {
		close(fd);
		return 0;
	}
	FILE *pl = fopen("/proc/locks", "re");
	if (pl) {
		char line[256];
		while (!held && fgets(line, sizeof(line), pl)) {
			char type[16];
			long lpid;
			unsigned maj, min;
			unsigned long ino;
			/* "1: FLOCK  ADVISORY  WRITE 123 fe:00:5325194 0 EOF"; a
			 * waiter's line has "->" before the type */
			if (sscanf(line, "%*d: %15s %*s %*s %ld %x:%x:%lu", type, &lpid, &maj, &min,
				   &ino) == 5 &&
			    strcmp(type, "FLOCK") == 0 && maj == major(st.st_dev) &&
			    min == minor(st.st_dev) && ino == (unsigned long)st.st_ino) {
				held = 1;
				snprintf(pid, 32, "%ld", lpid);
			}
		}
		fclose(pl);
	} else if (flock(fd, LOCK_SH | LOCK_NB) < 0) {
		held = errno == EWOULDBLOCK;
	} else {
		flock(fd, LOCK_UN);
	}
	if (held) {
		char buf[32];
		ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
		if (n > 0) {
			buf[n] = '\0';
			buf[strcspn(buf, "\r\n")] = '\0';
			if (buf[0])
				snprintf(pid, 32, "%s", buf);
		}
	}
	close(fd);
	return held;
}

/* --- verify ------------------------------------------------------------------------ */

/* --repair: one source message, by the names the state database uses */
struct srcmsg {
	char *mkey;    /* hash (or Message-ID), as in target_folder.src */
	size_t folder; /* into vmailbox.sf */
	char *skey;    /* source key */
};

struct srcfolder {
	const struct mf_unit *u;
	char *path_key, *validity;
};

struct target_folder {
	char *key;            /* target path key */
	struct mf_path path;
	enum mf_role role;
	struct mf_strmap src; /* hash (or Message-ID) -> copies expected in the target */
	uint64_t src_count, too_big, unreadable, not_mail;
	struct srcmsg *msgs;  /* --repair only: every message keyed into src */
	size_t nmsgs, capmsgs;
	bool listed;          /* the target was listed: src holds what is missing */
};

struct vmailbox {
	struct target_folder *f;
	size_t n;
	unsigned source_errors;
	bool repair;          /* keep the source names of every message */
	bool duplicates;      /* the target holds more copies than the source */
	struct srcfolder *sf;
	size_t nsf;
};

static struct target_folder *target_get(struct vmailbox *m, const struct mf_path *path,
					enum mf_role role)
{
	char *key = mf_path_key(path);
	if (!key)
		return NULL;
	for (size_t i = 0; i < m->n; i++) {
		if (strcmp(m->f[i].key, key) == 0) {
			free(key);
			return &m->f[i];
		}
	}
	struct target_folder *grown = realloc(m->f, (m->n + 1) * sizeof(*grown));
	if (!grown) {
		free(key);
		return NULL;
	}
	m->f = grown;
	struct target_folder *t = &m->f[m->n++];
	memset(t, 0, sizeof(*t));
	t->key = key;
	t->role = role;
	mf_strmap_init(&t->src);
	if (mf_path_copy(&t->path, path) < 0) {
		m->n--;
		free(key);
		return NULL;
	}
	return t;
}

static void vmailbox_free(struct vmailbox *m)
{
	for (size_t i = 0; i < m->n; i++) {
		free(m->f[i].key);
		mf_path_free(&m->f[i].path);
		mf_strmap_free(&m->f[i].src);
		for (size_t k = 0; k < m->f[i].nmsgs; k++) {
			free(m->f[i].msgs[k].mkey);
			free(m->f[i].msgs[k].skey);
		}
		free(m->f[i].msgs);
	}
	free(m->f);
	for (size_t i = 0; i < m->nsf; i++) {
		free(m->sf[i].path_key);
		free(m->sf[i].validity);
	}
	free(m->sf);
}

/* --repair: a source folder as the state database names it; its index in
 * m->sf, or MF_ENOMEM. */
static int add_srcfolder(struct vmailbox *m, const struct mf_unit *u, const struct mf_folder *f)
{
	struct srcfolder *grown = realloc(m->sf, (m->nsf + 1) * sizeof(*grown));
	if (!grown)
		return MF_ENOMEM;
	m->sf = grown;
	struct srcfolder *sf = &m->sf[m->nsf];
	sf->u = u;
	sf->path_key = mf_path_key(&f->path);
	sf->validity = strdup(f->validity ? f->validity : "");
	if (!sf->path_key || !sf->validity) {
		free(sf->path_key);
		free(sf->validity);
		return MF_ENOMEM;
	}
	return (int)m->nsf++;
}

/* --repair: remember that source message `skey` of folder `sf` has `mkey`. */
static int add_srcmsg(struct target_folder *t, const char *mkey, size_t sf, const char *skey)
{
	if (t->nmsgs == t->capmsgs) {
		size_t cap = t->capmsgs ? 2 * t->capmsgs : 64;
		struct srcmsg *g = realloc(t->msgs, cap * sizeof(*g));
		if (!g)
			return MF_ENOMEM;
		t->msgs = g;
		t->capmsgs = cap;
	}
	struct srcmsg *sm = &t->msgs[t->nmsgs];
	sm->mkey = strdup(mkey);
	sm->skey = strdup(skey);
	sm->folder = sf;
	if (!sm->mkey || !sm->skey) {
		free(sm->mkey);
		free(sm->skey);
		return MF_ENOMEM;
	}
	t->nmsgs++;
	return 0;
}

struct refs {
	struct mf_msgref *r;
	size_t n, cap;
	uint64_t not_mail;
};

static int keep_ref(void *arg, const struct mf_msgref *ref)
{
	struct refs *rs = arg;
	if (ref->skip_kind) {
		rs->not_mail++;
		return 0;
	}
	if (rs->n == rs->cap) {
		size_t cap = rs->cap ? 2 * rs->cap : 64;
		struct mf_msgref *g = realloc(rs->r, cap * sizeof(*g));
		if (!g)
			return MF_ENOMEM;
		rs->r = g;
		rs->cap = cap;
	}
	rs->r[rs->n] = *ref;
	rs->r[rs->n].key = strdup(ref->key);
	if (!rs->r[rs->n].key)
		return MF_ENOMEM;
	rs->n++;
	return 0;
}

static void refs_free(struct refs *rs)
{
	for (size_t i = 0; i < rs->n; i++)
		free((char *)rs->r[i].key);
	free(rs->r);
}

/* The key verify compares a normalized message by: its SHA-256 (hex), or,
 * when the sink is listed by Message-ID, the Message-ID as the pipeline gives
 * it to the sink ("" if none). Malloc'd, NULL when out of memory. */
static char *message_key(bool by_id, const struct mf_norm_result *nr)
{
	if (by_id) {
		char *id = mf_header_message_id(nr->data, nr->len);
		return id ? id : strdup("");
	}
	unsigned char sha[MF_SHA256_LEN];
	char *hex = malloc(2 * MF_SHA256_LEN + 1);
	if (!hex)
		return NULL;
	mf_sha256(nr->data, nr->len, sha);
	mf_hex(sha, sizeof(sha), hex);
	return hex;
}

/* Key every message of one unit's source into the mailbox's target folders. */
static int key_source(const struct mf_job *job, const struct mf_unit *u, bool by_id,
		       struct vmailbox *m, struct mf_err *err)
{
	void *src = NULL;
	const struct mf_folder *folders;
	size_t nf;
	int rc = job->src->open(job->src_cfg, u, &src, err);
	if (rc == 0)
		rc = job->src->folders(src, &folders, &nf, err);
	for (size_t i = 0; rc == 0 && i < nf; i++) {
		struct mf_path target;
		enum mf_role role;
		int take = mf_job_target_folder(job, u, folders, nf, i, &target, &role);
		if (take <= 0) {
			rc = take;
			continue;
		}
		struct target_folder *t = target_get(m, &target, role);
		mf_path_free(&target);
		int sf = m->repair && t ? add_srcfolder(m, u, &folders[i]) : 0;
		if (!t || sf < 0) {
			rc = mf_err_set(err, MF_ENOMEM, "out of memory");
			break;
		}
		struct refs rs = {0};
		char *next = NULL;
		rc = job->src->list(src, &folders[i], NULL, keep_ref, &rs, &next, err);
		free(next);
		t->not_mail += rs.not_mail;
		for (size_t k = 0; rc == 0 && k < rs.n; k++) {
			struct mf_msg msg = {0};
			struct mf_err merr = {0};
			if (job->src->fetch(src, &folders[i], &rs.r[k], &msg, &merr) < 0) {
				if (mf_err_class(merr.code) != MF_CLASS_MESSAGE) {
					*err = merr;
					rc = merr.code;
				}
				t->unreadable++;
				continue;
			}
			struct mf_norm_result nr;
			rc = mf_normalize(&job->norm, msg.data, msg.len,
					  msg.idate ? msg.idate : rs.r[k].idate, &nr);
			mf_msg_clear(&msg);
			if (rc < 0)
				break;
			if (job->caps.max_message_bytes && nr.len > job->caps.max_message_bytes) {
				t->too_big++;
			} else {
				char *key = message_key(by_id, &nr);
				int *c = key ? mf_strmap_get(&t->src, key) : NULL;
				rc = key ? mf_strmap_set(&t->src, key, c ? *c + 1 : 1) : MF_ENOMEM;
				if (rc == 0 && m->repair)
					rc = add_srcmsg(t, key, (size_t)sf, rs.r[k].key);
				free(key);
				if (rc < 0)
					mf_err_set(err, rc, "out of memory");
				t->src_count++;
			}
			mf_bytes_free(nr.data);
		}
		refs_free(&rs);
	}
	if (src)
		job->src->close(src);
	return rc;
}

struct tally {
	struct mf_strmap left; /* hash -> copies still expected */
	uint64_t count, extra_dup, extra_other;
};

/* One message the target holds, by hash or by Message-ID. */
static int count_target(void *arg, const char *key)
{
	struct tally *t = arg;
	t->count++;
	int *c = mf_strmap_get(&t->left, key);
	if (c && *c > 0)
		(*c)--;
	else if (c)
		t->extra_dup++; /* one more copy than the source has: a duplicate */
	else
		t->extra_other++;
	return 0;
}

/* Compare one mailbox; prints its verdict. Returns 1 if it matches. */
static int verify_mailbox(const struct mf_job *job, const struct mf_unit *first, bool by_id,
			  struct vmailbox *m)
{
	void *snk = NULL;
	struct mf_err err = {0};
	int ok = 1;
	int orc = job->snk->open_read(job->snk_cfg, first, &snk, &err);
	if (orc < 0 && orc != MF_ENOTFOUND) {
		printf("%s: MISMATCH: cannot open the target: %s\n", first->mailbox, err.msg);
		return 0;
	}
	printf("%s:%s\n", first->mailbox,
	       by_id ? " (by Message-ID: the target rewrites message contents)" : "");
	if (orc == MF_ENOTFOUND)
		printf("  the target mailbox does not exist: %s\n", err.msg);
	for (size_t i = 0; i < m->n; i++) {
		struct target_folder *f = &m->f[i];
		if (f->src_count == 0 && f->too_big == 0 && f->unreadable == 0)
			continue; /* nothing expected */
		char *name = mf_path_join(&f->path, "/");
		void *fh = NULL;
		struct tally t = {.left = f->src};
		uint64_t missing = 0;
		/* a folder (or mailbox) that is not there holds nothing: all
		 * of it is missing, which --repair may mark */
		int rc = snk ? job->snk->folder(snk, &f->path, f->role, &fh, &err) : MF_ENOTFOUND;
		bool absent = rc == MF_ENOTFOUND;
		if (absent)
			rc = 0;
		else if (rc == 0)
			rc = by_id ? job->snk->message_ids(snk, fh, count_target, &t, &err)
				   : job->snk->hashes(snk, fh, count_target, &t, &err);
		if (rc < 0) {
			printf("  %-40s cannot list the target: %s\n", name ? name : "?", err.msg);
			ok = 0;
			free(name);
			continue;
		}
		f->listed = true;
		for (size_t k = 0; k < f->src.cap; k++)
			if (f->src.keys[k] && f->src.vals[k] > 0)
				missing += (uint64_t)f->src.vals[k];
		bool match = missing == 0 && t.extra_dup == 0 && f->unreadable == 0;
		printf("  %-40s source %6llu  target %6llu  missing %llu  duplicates %llu%s%s%s%s\n",
		       name && *name ? name : "(root)", (unsigned long long)f->src_count,
		       (unsigned long long)t.count, (unsigned long long)missing,
		       (unsigned long long)t.extra_dup, match ? "  ok" : "  MISMATCH",
		       absent && orc == 0 ? "  (folder missing in the target)" : "",
		       t.extra_other ? "  (+ other mail not from this source)" : "",
		       f->unreadable ? "  (unreadable in the source)" : "");
		if (f->too_big)
			printf("  %-40s %llu too big for the target (skipped by rule)\n", "",
			       (unsigned long long)f->too_big);
		if (!match)
			ok = 0;
		if (t.extra_dup)
			m->duplicates = true;
		free(name);
	}
	if (snk)
		job->snk->close(snk);
	return ok;
}

/* --- verify --repair ---------------------------------------------------------------- */

#define REPAIR_REASON "missing in the target at verify (repair)"

struct repair {
	struct mf_ckpt *ck;
	int lock_fd;
	uint64_t marked, mailboxes, failed;
	bool duplicates;
};

/* Open the job's state database for writing; only one that exists. */
static int repair_open(const struct mf_job *job, struct repair *r)
{
	struct mf_err err = {0};
	r->lock_fd = -1;
	if (access(job->state_path, F_OK) != 0) {
		fprintf(stderr,
			"mailferry: state database %s does not exist: this job has not run yet, "
			"so there is nothing to repair\n",
			job->state_path);
		return -1;
	}
	if (mf_run_lock(job->state_path, &r->lock_fd, stderr) < 0)
		return -1;
	if (mf_ckpt_open(job->state_path, job->name, true, &r->ck, &err) < 0) {
		fprintf(stderr, "mailferry: %s\n", err.msg);
		close(r->lock_fd);
		r->lock_fd = -1;
		return -1;
	}
	return 0;
}

static void repair_close(struct repair *r)
{
	mf_ckpt_close(r->ck);
	r->ck = NULL;
	if (r->lock_fd >= 0)
		close(r->lock_fd);
	r->lock_fd = -1;
}

/* Mark, in one commit, every stored source message of the mailbox whose
 * content (or Message-ID) has fewer copies in the target than in the
 * source. All the source copies of such a content are marked, not only as
 * many as are missing: which copies are gone is for the sink's probe to say
 * (a Maildir names a copy by its source key, a blob store by its copy
 * number), and the probe finds the others present and leaves them. */
static void repair_mailbox(const struct mf_unit *first, struct vmailbox *m, struct repair *r)
{
	struct mf_ckpt_missing *rows = NULL;
	size_t n = 0, cap = 0, marked = 0, unlisted = 0;
	uint64_t missing = 0;
	for (size_t i = 0; i < m->n; i++) {
		struct target_folder *f = &m->f[i];
		if (!f->listed) {
			/* the target could not be listed: nothing is known */
			unlisted += f->src_count > 0;
			continue;
		}
		for (size_t k = 0; k < f->nmsgs; k++) {
			const int *left = mf_strmap_get(&f->src, f->msgs[k].mkey);
			if (!left || *left <= 0)
				continue;
			if (n == cap) {
				cap = cap ? 2 * cap : 64;
				struct mf_ckpt_missing *g = realloc(rows, cap * sizeof(*g));
				if (!g) {
					printf("  repair: out of memory: nothing marked\n");
					r->failed++;
					free(rows);
					return;
				}
				rows = g;
			}
			const struct srcfolder *sf = &m->sf[f->msgs[k].folder];
			rows[n++] = (struct mf_ckpt_missing){.unit_key = sf->u->id,
							     .path_key = sf->path_key,
							     .validity = sf->validity,
							     .key = f->msgs[k].skey};
		}
		for (size_t k = 0; k < f->src.cap; k++)
			if (f->src.keys[k] && f->src.vals[k] > 0)
				missing += (uint64_t)f->src.vals[k];
	}
	if (unlisted)
		printf("  repair: %s: %zu folder%s not marked: the target could not be listed\n",
		       first->mailbox, unlisted, unlisted == 1 ? "" : "s");
	if (n == 0) {
		free(rows);
		return;
	}
	struct mf_err err = {0};
	if (mf_ckpt_mark_missing(r->ck, rows, n, REPAIR_REASON, &marked, &err) < 0) {
		printf("  repair: FAILED, nothing marked for %s: %s\n", first->mailbox, err.msg);
		r->failed++;
		free(rows);
		return;
	}
	printf("  repair: %s: marked %zu message%s to be tried again by the next run (stored "
	       "where the target lacks them and the job's rules let them through)",
	       first->mailbox, marked, marked == 1 ? "" : "s");
	if (marked > missing)
		printf(" (for %llu missing: the other copies of the same content are probed "
		       "and left alone)",
		       (unsigned long long)missing);
	putchar('\n');
	if (n > marked)
		printf("  repair: %zu more not marked: recorded as in doubt or failed, or not at "
		       "all; the next run lists their folders again and sends them\n",
		       n - marked);
	if (marked) {
		r->marked += marked;
		r->mailboxes++;
	}
	free(rows);
}

int mf_verify(struct mf_job *job, bool repair)
{
	/* a target that rewrites what it stores is compared by Message-ID */
	bool by_id = !job->snk->hashes && job->snk->message_ids;
	if (!job->snk->hashes && !by_id) {
		fprintf(stderr,
			"mailferry: the %s sink cannot list what it holds, so verify cannot "
			"compare contents; use `mailferry report` for what was stored\n",
			job->snk->name);
		return MF_EXIT_USAGE;
	}
	/* --repair takes the lock itself (and says who holds it) */
	char pid[32];
	if (!repair && lock_holder(job->state_path, pid)) {
		fprintf(stderr,
			"mailferry: job %s is running (process %s holds %s.lock): verify compares "
			"a finished migration; wait for the run to end, or stop it, then verify\n",
			job->name, pid, job->state_path);
		return MF_EXIT_USAGE;
	}
	if (!job->snk->open_read) {
		fprintf(stderr,
			"mailferry: the %s sink cannot be read without writing (it has no "
			"read-only open), so verify does not look at its target\n",
			job->snk->name);
		return MF_EXIT_USAGE;
	}
	struct repair r = {.lock_fd = -1};
	if (repair && repair_open(job, &r) < 0)
		return MF_EXIT_USAGE;
	bool *done = calloc(job->nunits ? job->nunits : 1, sizeof(bool));
	if (!done) {
		repair_close(&r);
		return MF_EXIT_FAILURES;
	}
	/* the HTTP sinks send their requests through the loop */
	if (mf_loop_start_thread() < 0) {
		free(done);
		repair_close(&r);
		fprintf(stderr, "mailferry: cannot start the event loop\n");
		return MF_EXIT_FAILURES;
	}
	unsigned good = 0, total = 0;
	for (size_t i = 0; i < job->nunits; i++) {
		if (done[i])
			continue;
		struct vmailbox m = {.repair = repair};
		bool src_ok = true;
		/* every row of the same target mailbox: their folders may merge */
		for (size_t k = i; k < job->nunits; k++) {
			if (done[k] || strcasecmp(job->units[k].mailbox, job->units[i].mailbox) != 0)
				continue;
			done[k] = true;
			struct mf_err err = {0};
			if (key_source(job, &job->units[k], by_id, &m, &err) < 0) {
				printf("%s: cannot read the source %s: %s\n", job->units[k].mailbox,
				       job->units[k].source_desc, err.msg);
				src_ok = false;
			}
		}
		total++;
		if (src_ok && verify_mailbox(job, &job->units[i], by_id, &m))
			good++;
		else if (src_ok && repair)
			repair_mailbox(&job->units[i], &m, &r);
		else if (repair)
			printf("  repair: nothing marked: the source could not be read in full\n");
		r.duplicates = r.duplicates || m.duplicates;
		vmailbox_free(&m);
	}
	free(done);
	mf_loop_stop_thread();
	printf("verify: %u of %u mailboxes match%s\n", good, total,
	       good == total ? "" : " (see MISMATCH above)");
	if (!repair && lock_holder(job->state_path, pid))
		printf("verify: a run of job %s (process %s) started while verify was reading: "
		       "what it stored since is not counted; verify again when it ends\n",
		       job->name, pid);
	if (repair) {
		repair_close(&r);
		if (r.marked)
			printf("verify --repair: marked %llu message%s in %llu mailbox%s as missing "
			       "in the target; next: `mailferry run %s` stores them again, then "
			       "`mailferry verify %s` should match\n",
			       (unsigned long long)r.marked, r.marked == 1 ? "" : "s",
			       (unsigned long long)r.mailboxes, r.mailboxes == 1 ? "" : "es",
			       job->file, job->file);
		else
			printf("verify --repair: nothing marked: no message recorded as stored is "
			       "missing in the target\n");
		if (r.duplicates)
			printf("verify --repair: duplicates are only reported: mailferry never "
			       "deletes from a target\n");
		if (r.failed)
			printf("verify --repair: %llu mailbox%s could not be marked (see above)\n",
			       (unsigned long long)r.failed, r.failed == 1 ? "" : "es");
	}
	return good == total ? MF_EXIT_OK : MF_EXIT_FAILURES;
}

/* --- plan --------------------------------------------------------------------------- */

struct plan_unit {
	const struct mf_job *job;
	const struct mf_unit *u;
	uv_thread_t thread;
	struct mf_err src_err, snk_err;
	uint64_t folders, msgs, bytes, biggest, oversized, not_mail;
	struct mf_buf listing;
};

struct plan_list {
	struct plan_unit *p;
	uint64_t msgs, bytes;
};

static int plan_ref(void *arg, const struct mf_msgref *r)
{
	struct plan_list *l = arg;
	if (r->skip_kind) {
		l->p->not_mail++;
		return 0;
	}
	uint64_t max = l->p->job->caps.max_message_bytes;
	l->msgs++;
	l->bytes += r->size;
	if (r->size > l->p->biggest)
		l->p->biggest = r->size;
	if (max && r->size > max)
		l->p->oversized++;
	return 0;
}

static void plan_main(void *arg)
{
	struct plan_unit *p = arg;
	const struct mf_job *job = p->job;
	void *src = NULL;
	const struct mf_folder *folders;
	size_t nf;
	if (job->src->open(job->src_cfg, p->u, &src, &p->src_err) == 0 &&
	    job->src->folders(src, &folders, &nf, &p->src_err) == 0) {
		for (size_t i = 0; i < nf; i++) {
			struct plan_list l = {.p = p};
			char *next = NULL;
			struct mf_err e = {0};
			char *name = mf_path_join(&folders[i].path, "/");
			if (job->src->list(src, &folders[i], NULL, plan_ref, &l, &next, &e) < 0)
				mf_buf_printf(&p->listing, "    %-40s cannot list: %s\n",
					      name ? name : "?", e.msg);
			else
				mf_buf_printf(&p->listing, "    %-40s %6llu messages %9.1f MB%s\n",
					      name && *name ? name : "(root)",
					      (unsigned long long)l.msgs, (double)l.bytes / 1e6,
					      folders[i].not_mail
						      ? "  (not a mail folder: never made empty)"
						      : "");
			free(name);
			free(next);
			p->folders++;
			p->msgs += l.msgs;
			p->bytes += l.bytes;
		}
	}
	if (src)
		job->src->close(src);
	if (job->snk->check) {
		job->snk->check(job->snk_cfg, p->u, &p->snk_err);
	} else {
		/* never open(): it may create the mailbox or its folders */
		void *snk = NULL;
		if (job->snk->open_read(job->snk_cfg, p->u, &snk, &p->snk_err) == 0)
			job->snk->close(snk);
	}
}

int mf_plan(struct mf_job *job)
{
	if (!job->snk->check && !job->snk->open_read) {
		fprintf(stderr,
			"mailferry: the %s sink cannot be read without writing (it has no "
			"read-only open), so plan cannot check the target\n",
			job->snk->name);
		return MF_EXIT_USAGE;
	}
	struct plan_unit *p = calloc(job->nunits ? job->nunits : 1, sizeof(*p));
	if (!p)
		return MF_EXIT_FAILURES;
	/* the HTTP sinks send their requests through the loop */
	if (mf_loop_start_thread() < 0) {
		free(p);
		fprintf(stderr, "mailferry: cannot start the event loop\n");
		return MF_EXIT_FAILURES;
	}
	/* in parallel, `parallel` at a time */
	for (size_t start = 0; start < job->nunits; start += job->parallel) {
		size_t end = start + job->parallel < job->nunits ? start + job->parallel
								 : job->nunits;
		for (size_t i = start; i < end; i++) {
			p[i].job = job;
			p[i].u = &job->units[i];
			if (uv_thread_create(&p[i].thread, plan_main, &p[i]) != 0)
				plan_main(&p[i]);
		}
		for (size_t i = start; i < end; i++)
			uv_thread_join(&p[i].thread);
	}
	mf_loop_stop_thread();
	unsigned bad = 0;
	uint64_t msgs = 0, bytes = 0;
	for (size_t i = 0; i < job->nunits; i++) {
		struct plan_unit *u = &p[i];
		bool fails = u->src_err.code || u->snk_err.code;
		bad += fails;
		printf("%s <- %s: %s\n", u->u->mailbox, u->u->source_desc,
		       fails ? "WILL FAIL" : "ok");
		if (u->src_err.code)
			printf("    source: %s\n", u->src_err.msg);
		if (u->snk_err.code || u->snk_err.msg[0]) /* a note with code 0 is information */
			printf("    target: %s\n", u->snk_err.msg);
		if (!u->src_err.code) {
			fputs(u->listing.data ? u->listing.data : "", stdout);
			printf("    total: %llu folders, %llu messages, %.1f MB, biggest %.1f MB",
			       (unsigned long long)u->folders, (unsigned long long)u->msgs,
			       (double)u->bytes / 1e6, (double)u->biggest / 1e6);
			if (u->not_mail)
				printf(", %llu items that are not mail (skipped)",
				       (unsigned long long)u->not_mail);
			putchar('\n');
		}
		if (u->oversized)
			printf("    %llu messages are bigger than the target takes (%.1f MB): they "
			       "will be skipped and reported\n",
			       (unsigned long long)u->oversized,
			       (double)job->caps.max_message_bytes / 1e6);
		msgs += u->msgs;
		bytes += u->bytes;
		mf_buf_free(&u->listing);
	}
	printf("plan: %zu mailboxes, %llu messages, %.1f MB; %u will fail\n", job->nunits,
	       (unsigned long long)msgs, (double)bytes / 1e6, bad);
	free(p);
	return bad ? MF_EXIT_FAILURES : MF_EXIT_OK;
}
