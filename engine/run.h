/* run.h - the commands that act on a job: run (and dry-run), status, report. */
#ifndef MF_RUN_H
#define MF_RUN_H

#include <stdbool.h>
#include <stdio.h>

#include "job.h"

/* Exit codes (README, "Exit codes"). */
enum {
	MF_EXIT_OK = 0,          /* every message migrated or skipped by a rule */
	MF_EXIT_FAILURES = 1,    /* finished, but some messages or mailboxes failed */
	MF_EXIT_USAGE = 2,       /* usage or configuration error: nothing done */
	MF_EXIT_INTERRUPTED = 3, /* SIGINT/SIGTERM: committed, a rerun resumes */
};

struct mf_run_opts {
	bool dry_run;
	bool progress; /* draw the progress display (a terminal) */
};

/* Run the job's (selected) units on the loop; returns an exit code. */
int mf_run(struct mf_job *job, const struct mf_run_opts *opts);

/* Source vs sink for every mailbox: per folder, counts and content hashes.
 * Exit code 0 only if everything matches. With `repair`, also turns the
 * state rows of messages recorded as stored or skipped but missing in the
 * target into failed ones, and clears those folders' source cursors, so
 * that the next run lists them again, probes for them and stores them again
 * (mf_ckpt_mark_missing)
 * (it takes the job lock; exit 2 if the job has no state database or is
 * running); the exit code still says whether the target matched now. */
int mf_verify(struct mf_job *job, bool repair);
/* The job lock (<state>.lock, flock, holder's pid inside): one process that
 * changes a job's state at a time. 0 with *fd_out held until closed, or
 * MF_ESTATE / MF_ELOCKED after telling `diag` why (naming the holder). */
int mf_run_lock(const char *state_path, int *fd_out, FILE *diag);
/* Pre-flight: log in to both sides of every row, list folders, counts and
 * sizes, flag rows that will fail. Writes nothing. */
int mf_plan(struct mf_job *job);

/* Per-unit progress from the state database. Returns an exit code. */
int mf_status(struct mf_job *job);
/* Per-unit report on stdout: "csv" or "json" (with a totals row/object), or
 * "html" (one self-contained page: totals, a throughput chart, mailboxes,
 * failures). With `items` (csv or json): every skipped, failed or changed
 * message instead, streamed. Reads the state database only. Returns an exit
 * code. */
int mf_report(struct mf_job *job, const char *format, bool items);

#endif
