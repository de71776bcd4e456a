/* checkpoint.h - the checkpoint store: one SQLite database (WAL) per job.
 *
 * Per unit (manifest row), folder (path + UIDVALIDITY/PST identity) and
 * message: source key, state, size, internal date, flags, SHA-256 of the
 * stored bytes, the sink's id, the normalizer's changes and the reason for a
 * skip or failure. No secret is ever written here.
 *
 * Writes go through one writer thread that commits whatever is queued in
 * one transaction (group commit); a call returns only once its change is
 * durable (synchronous=FULL). Any thread may call; calls block.
 */
#ifndef MF_CHECKPOINT_H
#define MF_CHECKPOINT_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "unit.h"

struct sqlite3;
struct mf_ckpt;

enum mf_msg_state {
	MF_MSG_PENDING = 0, /* recorded before the sink was asked: in doubt */
	MF_MSG_STORED = 1,
	MF_MSG_SKIPPED = 2, /* by a rule (not mail, too big): decided again only
			     * when the rule's setting changes (mf_ckpt_row) */
	MF_MSG_FAILED = 3,  /* retried by the next run */
};

/* Open (create = make it if missing) the state database at path for job
 * `job_name`. A database that is corrupt, of another program or of another
 * job is refused with MF_ESTATE and a message saying what to do. */
int mf_ckpt_open(const char *path, const char *job_name, bool create, struct mf_ckpt **out,
		 struct mf_err *err);
void mf_ckpt_close(struct mf_ckpt *ck);
/* The connection, for read-only queries on the calling thread when no
 * worker is running (status, report). */
struct sqlite3 *mf_ckpt_db(struct mf_ckpt *ck);

/* Run fn(db, arg) on the writer thread inside the next group transaction
 * and wait until it is committed. fn returns 0 or a negative MF_E* code; a
 * failing fn's changes are rolled back alone. */
int mf_ckpt_exec(struct mf_ckpt *ck, int (*fn)(struct sqlite3 *db, void *arg), void *arg,
		 struct mf_err *err);

/* A unit starts running: its row is created if needed. */
int mf_ckpt_unit_begin(struct mf_ckpt *ck, const struct mf_unit *u, int64_t *unit_id,
		       struct mf_err *err);
/* A unit ends: state is "done", "failed" or "interrupted". `worked`: this
 * run stored, skipped or failed something (a run that found nothing to do
 * keeps the unit's last_finished; started/finished always say the last run;
 * first_started is set once). */
int mf_ckpt_unit_end(struct mf_ckpt *ck, int64_t unit_id, const char *state,
		     const struct mf_err *why, bool worked, struct mf_err *err);

/* A folder of a unit: found or created. *cursor (malloc'd or NULL) is the
 * source cursor saved by the last complete pass. *older_validity is set
 * when the same path was seen with another validity before. */
int mf_ckpt_folder(struct mf_ckpt *ck, int64_t unit_id, const char *path_key,
		   const char *validity, const char *target_key, int64_t *folder_id, char **cursor,
		   bool *older_validity, struct mf_err *err);
int mf_ckpt_folder_done(struct mf_ckpt *ck, int64_t folder_id, const char *cursor,
			struct mf_err *err);

/* One message row as the run reads it back. Strings are borrowed for the
 * callback. A skipped row names the rule that skipped it ("too-big",
 * "not-mail", ...) and the rule's setting when it did (NULL if unknown: a
 * row from schema version 1), so that the run can decide it again when the
 * job's setting differs. */
struct mf_ckpt_row {
	const char *key;
	int state;            /* enum mf_msg_state */
	const char *hash_hex; /* "" if unknown */
	const char *rule;     /* NULL unless skipped by a rule */
	const char *setting;  /* NULL if unknown */
};
typedef int (*mf_ckpt_row_cb)(void *arg, const struct mf_ckpt_row *row);

/* Call cb for every message row of the folder. */
int mf_ckpt_folder_rows(struct mf_ckpt *ck, int64_t folder_id, mf_ckpt_row_cb cb, void *arg,
			struct mf_err *err);
/* Call cb for the hash of every stored message of the same unit and path
 * under another validity (for the rescan after a UIDVALIDITY change). */
int mf_ckpt_older_hashes(struct mf_ckpt *ck, int64_t unit_id, const char *path_key,
			 const char *validity, int (*cb)(void *arg, const char *hash_hex),
			 void *arg, struct mf_err *err);

struct mf_ckpt_rec {
	const char *key;
	int state;          /* enum mf_msg_state */
	uint64_t size;
	int64_t idate;
	unsigned flags;
	const char *hash_hex; /* NULL or 64 hex digits */
	const char *sink_id;  /* NULL or the sink's id */
	unsigned changes;     /* MF_NORM_* bits */
	const char *reason;   /* skip/failure reason, NULL otherwise */
	int err_class;        /* enum mf_class of a failure, 0 otherwise */
	/* a skip: the rule and its setting, e.g. "too-big" and
	 * "max_message_bytes=1048576" (NULL otherwise) */
	const char *rule, *setting;
	/* for `report --items`, kept only for skipped, failed or changed
	 * messages: header values as the message carries them (never a body,
	 * never a secret), and the normalizer's note on what it changed or
	 * could not do; NULL when unknown */
	const char *subject, *sender, *hdate, *msgid, *note;
};
/* Record n messages of one folder in one durable commit. Outcomes (rows
 * that are not pending) also add one row to the batch table: time (ms),
 * counts and stored bytes, for the report's throughput chart. */
int mf_ckpt_write(struct mf_ckpt *ck, int64_t folder_id, const struct mf_ckpt_rec *recs,
		  size_t n, struct mf_err *err);

/* Read-only, on the calling thread (no writer needed): call cb for every
 * message row of the unit `unit_key`'s folder (path_key, validity), if the
 * database has it. For --dry-run. */
int mf_ckpt_lookup_rows(struct mf_ckpt *ck, const char *unit_key, const char *path_key,
			const char *validity, mf_ckpt_row_cb cb, void *arg, struct mf_err *err);

/* Delete the rows of these keys that are still pending (messages recorded
 * but never handed to the sink). */
int mf_ckpt_forget_pending(struct mf_ckpt *ck, int64_t folder_id, const char *const *keys,
			   size_t n, struct mf_err *err);

/* One message `mailferry verify --repair` found missing in the target,
 * named as the run records it. The strings are borrowed for the call. */
struct mf_ckpt_missing {
	const char *unit_key; /* the unit's id (struct mf_unit.id) */
	const char *path_key; /* the source folder's mf_path_key() */
	const char *validity; /* the source folder's validity, "" if none */
	const char *key;      /* the message's source key */
	bool marked;          /* out: its row was stored and is now failed */
};
/* Turn the stored or skipped rows of these messages into failed rows with
 * `reason` (a skip's reason kept after it), so that the next run treats each
 * as in doubt: it probes the target and stores the message only if the probe
 * finds it absent (a skipped one is decided again by the job's rules of
 * then). The saved source cursor of every folder named is cleared, so the
 * next run lists that whole folder again and also finds the messages that
 * have no row. A pending or failed row is left as it is: the next run
 * probes and retries it anyway. All in one
 * durable commit through the writer; *marked = the rows changed. Needs a
 * database opened with create = true. Errors: MF_ESTATE, MF_ENOSPC,
 * MF_ENOMEM, described in err. */
int mf_ckpt_mark_missing(struct mf_ckpt *ck, struct mf_ckpt_missing *rows, size_t n,
			 const char *reason, size_t *marked, struct mf_err *err);

#endif
