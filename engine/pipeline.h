/* pipeline.h - one unit's migration, on its worker thread:
 * source -> normalize -> sink -> checkpoint, folder by folder, in batches,
 * with the pending -> stored protocol of DESIGN.md.
 */
#ifndef MF_PIPELINE_H
#define MF_PIPELINE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "checkpoint.h"
#include "job.h"

/* A cap on message bytes held by all workers together. */
struct mf_budget {
	pthread_mutex_t lock;
	pthread_cond_t freed;
	uint64_t cap, used;
};
void mf_budget_init(struct mf_budget *b, uint64_t cap);
void mf_budget_destroy(struct mf_budget *b);

/* Shared by every worker of a run. */
struct mf_run_ctx {
	const struct mf_job *job;
	struct mf_ckpt *ck;
	struct mf_budget budget;
	atomic_int stop; /* raised by SIGINT/SIGTERM: finish the message, commit, return */
};

/* What one unit did, read by the loop thread for progress (atomics). */
struct mf_unit_stats {
	atomic_uint_fast64_t listed, listed_bytes; /* to do in this run */
	atomic_uint_fast64_t stored, stored_bytes; /* stored (or found) in this run */
	atomic_uint_fast64_t skipped, failed, retries;
};

/* Migrate one unit. Returns 0 when every folder was handled (some messages
 * may have failed: stats->failed), MF_EINTERRUPTED when stopped, or the error
 * that ended the unit (described in *why, already recorded in the state
 * database). */
int mf_pipeline_run(struct mf_run_ctx *run, const struct mf_unit *u, struct mf_unit_stats *stats,
		    struct mf_err *why);

/* --dry-run: list what would move for one unit (folders, counts, bytes) on
 * `out`, reading the state database if there is one (ck may be NULL);
 * changes nothing anywhere. Adds to *msgs and *bytes. */
int mf_pipeline_dry_run(const struct mf_job *job, struct mf_ckpt *ck, const struct mf_unit *u,
			FILE *out, uint64_t *msgs, uint64_t *bytes, struct mf_err *why);

#endif
