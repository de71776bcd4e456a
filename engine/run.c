/* run.c - `mailferry run`: the scheduler on the loop thread, one worker
 * thread per running unit, progress, signals, the job lock. */
#include "run.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "checkpoint.h"
#include "log.h"
#include "loop.h"
#include "pipeline.h"
#include "stats.h"
#include "spill.h"
#include "util.h"

struct worker {
	struct sched *s;
	size_t unit;
	uv_thread_t thread;
	struct mf_unit_stats stats;
	struct mf_err why;
	int rc;
	bool active;
	uint64_t started_ms; /* for its rate and ETA */
};

struct sched {
	struct mf_job *job;
	struct mf_run_ctx ctx;
	struct worker *w; /* one per unit */
	size_t next_scan;  /* units before this one have been started */
	size_t running, finished;
	bool stopping;
	unsigned signals;
	uv_signal_t sigint, sigterm;
	uv_timer_t tick;
	bool progress;
	unsigned drawn; /* lines of the progress display on screen */
	/* the display as last drawn, redrawn below each log line (under the
	 * log lock): text only, so the logging thread reads no live state */
	struct mf_buf block;
	unsigned block_lines;
	uint64_t started_ms;
	unsigned units_failed;
};

static void start_more(struct sched *s);

static void worker_main(void *arg)
{
	struct worker *w = arg;
	w->rc = mf_pipeline_run(&w->s->ctx, &w->s->job->units[w->unit], &w->stats, &w->why);
}

static void worker_done(void *arg);

static void worker_thread(void *arg)
{
	worker_main(arg);
	/* tell the loop; it joins this thread */
	if (mf_loop_post(worker_done, arg) < 0)
		abort(); /* cannot tell the scheduler: nothing sane is left */
}

static bool mailbox_busy(struct sched *s, size_t unit)
{
	for (size_t i = 0; i < s->job->nunits; i++)
		if (s->w[i].active &&
		    strcasecmp(s->job->units[i].mailbox, s->job->units[unit].mailbox) == 0)
			return true;
	return false;
}

static void log_unit_end(struct sched *s, struct worker *w)
{
	const struct mf_unit *u = &s->job->units[w->unit];
	char q[300];
	mf_log_quote(u->mailbox, q, sizeof(q));
	unsigned long long stored = atomic_load(&w->stats.stored),
			   skipped = atomic_load(&w->stats.skipped),
			   failed = atomic_load(&w->stats.failed);
	if (w->rc == 0)
		mf_log(failed ? MF_LOG_WARN : MF_LOG_INFO,
		       "event=mailbox-done mailbox=%s stored=%llu skipped=%llu failed=%llu", q,
		       stored, skipped, failed);
	else if (w->rc == MF_EINTERRUPTED)
		mf_log(MF_LOG_WARN, "event=mailbox-interrupted mailbox=%s stored=%llu", q, stored);
	else
		mf_log(MF_LOG_ERROR,
		       "event=mailbox-failed mailbox=%s class=%s stored=%llu reason=\"%s\"", q,
		       mf_class_name(mf_err_class(w->rc)), stored, w->why.msg);
}

static void worker_done(void *arg)
{
	struct worker *w = arg;
	struct sched *s = w->s;
	uv_thread_join(&w->thread);
	w->active = false;
	s->running--;
	s->finished++;
	if (w->rc < 0 && w->rc != MF_EINTERRUPTED)
		s->units_failed++;
	log_unit_end(s, w);
	/* a broken state database ends everything: nothing can be recorded */
	if (w->rc < 0 && mf_err_class(w->rc) == MF_CLASS_CONFIG && !s->stopping) {
		mf_log(MF_LOG_ERROR, "event=stop reason=\"%s\"", w->why.msg);
		s->stopping = true;
		atomic_store(&s->ctx.stop, 1);
	}
	start_more(s);
}

static void finish(struct sched *s);

static void start_more(struct sched *s)
{
	while (!s->stopping && s->running < s->job->parallel) {
		size_t pick = s->job->nunits;
		for (size_t i = s->next_scan; i < s->job->nunits; i++) {
			struct worker *w = &s->w[i];
			if (!w->active && w->rc == 1 && !mailbox_busy(s, i)) {
				pick = i;
				break;
			}
		}
		if (pick == s->job->nunits)
			break;
		struct worker *w = &s->w[pick];
		w->rc = 0;
		w->active = true;
		w->started_ms = mf_now_ms();
		s->running++;
		while (s->next_scan < s->job->nunits && s->w[s->next_scan].rc != 1)
			s->next_scan++;
		char q[300];
		mf_log(MF_LOG_INFO, "event=mailbox-start mailbox=%s source=%s",
		       mf_log_quote(s->job->units[pick].mailbox, q, sizeof(q)),
		       s->job->units[pick].source_desc);
		if (uv_thread_create(&w->thread, worker_thread, w) != 0) {
			mf_log(MF_LOG_ERROR, "event=thread-failed");
			w->active = false;
			w->rc = MF_EINTERNAL;
			mf_err_set(&w->why, MF_EINTERNAL, "cannot start a worker thread");
			s->running--;
			s->units_failed++;
		}
	}
	if (s->running == 0)
		finish(s);
}

static void human_bytes(uint64_t b, char *out, size_t size)
{
	if (b >= 10ull << 30)
		snprintf(out, size, "%.1f GB", (double)b / 1e9);
	else
		snprintf(out, size, "%.1f MB", (double)b / 1e6);
}

/* Erase the progress block (called with the log lock held). */
static void erase(void *arg)
{
	struct sched *s = arg;
	for (unsigned i = 0; i < s->drawn; i++)
		fputs("\033[1A\033[2K", stderr);
	fflush(stderr);
	s->drawn = 0;
}

/* Draw the block again below a log line (called with the log lock held). */
static void redraw(void *arg)
{
	struct sched *s = arg;
	if (s->drawn || !s->block.len)
		return;
	fwrite(s->block.data, 1, s->block.len, stderr);
	fflush(stderr);
	s->drawn = s->block_lines;
}

/* "ETA 12s" / "ETA 3m05s" / "ETA 2h10m" for `left` items at `rate` per second. */
static void eta_text(uint64_t left, double rate, char *out, size_t size)
{
	if (!left) {
		snprintf(out, size, "-");
		return;
	}
	if (rate <= 0) {
		snprintf(out, size, "?");
		return;
	}
	double secs = (double)left / rate;
	unsigned long long t = (unsigned long long)(secs + 0.5);
	if (t < 60)
		snprintf(out, size, "%llus", t);
	else if (t < 3600)
		snprintf(out, size, "%llum%02llus", t / 60, t % 60);
	else
		snprintf(out, size, "%lluh%02llum", t / 3600, (t % 3600) / 60);
}

static void draw(struct sched *s, bool final)
{
	uint64_t listed = 0, lbytes = 0, stored = 0, sbytes = 0, failed = 0, skipped = 0;
	for (size_t i = 0; i < s->job->nunits; i++) {
		struct mf_unit_stats *st = &s->w[i].stats;
		listed += atomic_load(&st->listed);
		lbytes += atomic_load(&st->listed_bytes);
		stored += atomic_load(&st->stored);
		sbytes += atomic_load(&st->stored_bytes);
		failed += atomic_load(&st->failed);
		skipped += atomic_load(&st->skipped);
	}
	double secs = (double)(mf_now_ms() - s->started_ms) / 1000.0;
	double rate = secs > 0 ? (double)stored / secs : 0;
	double mbps = secs > 0 ? (double)sbytes / 1e6 / secs : 0;
	uint64_t left = listed > stored + failed + skipped ? listed - stored - failed - skipped : 0;
	char eta[32];
	eta_text(left, rate, eta, sizeof(eta));
	char sb[32];
	human_bytes(sbytes, sb, sizeof(sb));
	(void)lbytes;
	if (!s->progress) {
		mf_log(MF_LOG_INFO,
		       "event=progress mailboxes_done=%zu/%zu running=%zu messages=%llu/%llu "
		       "bytes=%llu failed=%llu skipped=%llu rate=%.1f/s mb_per_s=%.2f eta=%s",
		       s->finished, s->job->nunits, s->running, (unsigned long long)stored,
		       (unsigned long long)listed, (unsigned long long)sbytes,
		       (unsigned long long)failed, (unsigned long long)skipped, rate, mbps, eta);
	}
	/* the block: one line for the run, one per running mailbox */
	struct mf_buf b = {0};
	unsigned lines = 1;
	int bad = mf_buf_printf(&b,
				"total: mailboxes %zu/%zu  messages %llu/%llu  %s  %.1f msg/s  "
				"%.2f MB/s  ETA %s%s\n",
				s->finished, s->job->nunits, (unsigned long long)stored,
				(unsigned long long)listed, sb, rate, mbps, eta,
				failed ? "  (failures: see report)" : "");
	uint64_t now = mf_now_ms();
	for (size_t i = 0; i < s->job->nunits && !final && !bad; i++) {
		struct worker *w = &s->w[i];
		if (!w->active)
			continue;
		uint64_t st = atomic_load(&w->stats.stored), li = atomic_load(&w->stats.listed),
			 done = st + atomic_load(&w->stats.skipped) + atomic_load(&w->stats.failed),
			 by = atomic_load(&w->stats.stored_bytes);
		double ws = (double)(now - w->started_ms) / 1000.0;
		double wr = ws > 0 ? (double)st / ws : 0, wmb = ws > 0 ? (double)by / 1e6 / ws : 0;
		char hb[32], we[32];
		human_bytes(by, hb, sizeof(hb));
		eta_text(li > done ? li - done : 0, wr, we, sizeof(we));
		char q[300];
		if (!s->progress) {
			mf_log(MF_LOG_INFO,
			       "event=mailbox-progress mailbox=%s messages=%llu/%llu bytes=%llu "
			       "rate=%.1f/s mb_per_s=%.2f eta=%s",
			       mf_log_quote(s->job->units[i].mailbox, q, sizeof(q)),
			       (unsigned long long)st, (unsigned long long)li,
			       (unsigned long long)by, wr, wmb, we);
			continue;
		}
		bad = mf_buf_printf(&b, "  %-40s %llu/%llu messages  %s  %.1f msg/s  %.2f MB/s  "
				    "ETA %s\n",
				    s->job->units[i].mailbox, (unsigned long long)st,
				    (unsigned long long)li, hb, wr, wmb, we);
		lines++;
	}
	if (!s->progress || bad) {
		mf_buf_free(&b);
		return;
	}
	/* terminal: redraw the block in place, log lines scrolling above it */
	mf_log_lock();
	erase(s);
	mf_buf_free(&s->block);
	s->block = b;
	s->block_lines = lines;
	redraw(s);
	mf_log_unlock();
}

static void on_tick(uv_timer_t *t)
{
	draw(t->data, false);
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct sched *s = h->data;
	if (++s->signals > 1) {
		/* second signal: leave now; every commit so far is durable and a
		 * rerun probes whatever was in flight */
		static const char msg[] = "mailferry: second signal, exiting at once\n";
		ssize_t wr = write(STDERR_FILENO, msg, sizeof(msg) - 1);
		(void)wr;
		_exit(MF_EXIT_INTERRUPTED);
	}
	mf_log(MF_LOG_WARN,
	       "event=signal signal=%s action=\"finishing the messages in flight, then exiting; "
	       "a second signal exits at once\"",
	       signum == SIGINT ? "SIGINT" : "SIGTERM");
	s->stopping = true;
	atomic_store(&s->ctx.stop, 1);
	if (s->running == 0)
		finish(s);
}

static void finish(struct sched *s)
{
	if (uv_is_closing((uv_handle_t *)&s->tick))
		return;
	draw(s, true);
	mf_loop_stop();
}

int mf_run_lock(const char *state_path, int *fd_out, FILE *diag)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s.lock", state_path);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(diag, "mailferry: cannot create lock file %s: %s\n", path,
			strerror(errno));
		return MF_ESTATE;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		char pid[32] = "";
		ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
		if (n > 0)
			pid[n] = '\0';
		fprintf(diag,
			"mailferry: this job is already running (lock %s held by process %s); "
			"wait for it to finish or stop it first\n",
			path, n > 0 ? pid : "?");
		close(fd);
		return MF_ELOCKED;
	}
	char pid[32];
	int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) == 0 && pwrite(fd, pid, (size_t)n, 0) < 0)
		mf_log(MF_LOG_WARN, "event=lock-write-failed file=%s", path);
	*fd_out = fd;
	return 0;
}

/* The state database's directory: made if missing, and where big messages
 * spill (engine/spill.h): a disk the admin chose, not a /tmp that may be a
 * small tmpfs. */
static int state_dir(const char *state_path)
{
	char *copy = strdup(state_path);
	if (!copy)
		return MF_ENOMEM;
	char *slash = strrchr(copy, '/');
	int rc = 0;
	if (slash && slash != copy) {
		*slash = '\0';
		rc = mf_mkdirs(copy);
	} else if (slash) {
		copy[1] = '\0'; /* "/state.db": the root */
	}
	if (rc == 0)
		mf_spill_set_dir(slash ? copy : ".");
	free(copy);
	return rc;
}

static int dry_run(struct mf_job *job)
{
	struct mf_ckpt *ck = NULL;
	struct mf_err err = {0};
	if (access(job->state_path, F_OK) == 0 &&
	    mf_ckpt_open(job->state_path, job->name, false, &ck, &err) < 0) {
		fprintf(stderr, "mailferry: %s\n", err.msg);
		return MF_EXIT_USAGE;
	}
	uint64_t msgs = 0, bytes = 0;
	unsigned bad = 0;
	printf("dry run of job %s: nothing is written\n", job->name);
	for (size_t i = 0; i < job->nunits; i++) {
		mf_err_clear(&err);
		if (mf_pipeline_dry_run(job, ck, &job->units[i], stdout, &msgs, &bytes, &err) < 0)
			bad++;
	}
	printf("would move %llu messages, %.1f MB, from %zu mailbox%s%s\n",
	       (unsigned long long)msgs, (double)bytes / 1e6, job->nunits,
	       job->nunits == 1 ? "" : "es", bad ? " (some sources could not be read)" : "");
	mf_ckpt_close(ck);
	return bad ? MF_EXIT_FAILURES : MF_EXIT_OK;
}

int mf_run(struct mf_job *job, const struct mf_run_opts *opts)
{
	if (opts->dry_run)
		return dry_run(job);
	int lock_fd = -1, rc = state_dir(job->state_path);
	if (rc < 0) {
		fprintf(stderr, "mailferry: cannot create the directory of %s: %s\n",
			job->state_path, strerror(-rc));
		return MF_EXIT_USAGE;
	}
	if (mf_run_lock(job->state_path, &lock_fd, stderr) < 0)
		return MF_EXIT_USAGE;
	struct sched s = {.job = job, .progress = opts->progress, .started_ms = mf_now_ms()};
	struct mf_err err = {0};
	int exit_code = MF_EXIT_OK;
	if (mf_ckpt_open(job->state_path, job->name, true, &s.ctx.ck, &err) < 0) {
		fprintf(stderr, "mailferry: %s\n", err.msg);
		close(lock_fd);
		return MF_EXIT_USAGE;
	}
	s.ctx.job = job;
	mf_budget_init(&s.ctx.budget, job->inflight_bytes);
	s.w = calloc(job->nunits ? job->nunits : 1, sizeof(*s.w));
	if (!s.w || mf_loop_init() < 0) {
		fprintf(stderr, "mailferry: out of memory\n");
		exit_code = MF_EXIT_FAILURES;
		goto out;
	}
	for (size_t i = 0; i < job->nunits; i++) {
		s.w[i].s = &s;
		s.w[i].unit = i;
		s.w[i].rc = 1; /* not started */
	}
	uv_loop_t *loop = mf_loop_get();
	uv_signal_init(loop, &s.sigint);
	uv_signal_init(loop, &s.sigterm);
	s.sigint.data = s.sigterm.data = &s;
	uv_signal_start(&s.sigint, on_signal, SIGINT);
	uv_signal_start(&s.sigterm, on_signal, SIGTERM);
	uv_timer_init(loop, &s.tick);
	s.tick.data = &s;
	uint64_t every = opts->progress ? 1000 : 10000;
	uv_timer_start(&s.tick, on_tick, every, every);
	mf_log(MF_LOG_INFO, "event=run-start job=%s mailboxes=%zu parallel=%u", job->name,
	       job->nunits, job->parallel);
	/* log lines (info too) scroll above the display */
	if (opts->progress)
		mf_log_set_hook(erase, redraw, &s);
	start_more(&s);
	mf_loop_run();
	mf_loop_close();
	mf_log_set_hook(NULL, NULL, NULL);
	mf_buf_free(&s.block);

	uint64_t stored = 0, bytes = 0, failed = 0, skipped = 0, retries = 0;
	for (size_t i = 0; i < job->nunits; i++) {
		stored += atomic_load(&s.w[i].stats.stored);
		bytes += atomic_load(&s.w[i].stats.stored_bytes);
		failed += atomic_load(&s.w[i].stats.failed);
		skipped += atomic_load(&s.w[i].stats.skipped);
		retries += atomic_load(&s.w[i].stats.retries);
	}
	retries += mf_stats_retries(); /* those the drivers made on their own */
	double secs = (double)(mf_now_ms() - s.started_ms) / 1000.0;
	if (s.signals)
		exit_code = MF_EXIT_INTERRUPTED;
	else if (failed || s.units_failed)
		exit_code = MF_EXIT_FAILURES;
	if (stored == 0 && failed == 0 && skipped == 0 && !s.units_failed && !s.signals)
		printf("job %s: nothing new to move: every message is already migrated\n",
		       job->name);
	else
		printf("job %s: moved %llu messages (%.1f MB) in %.1f s; skipped %llu, failed "
		       "%llu messages; %u of %zu mailboxes failed; %llu retries%s\n",
		       job->name, (unsigned long long)stored, (double)bytes / 1e6, secs,
		       (unsigned long long)skipped, (unsigned long long)failed, s.units_failed,
		       job->nunits, (unsigned long long)retries,
		       s.signals ? "; interrupted: run the same command again to resume" : "");
out:
	mf_ckpt_close(s.ctx.ck);
	mf_budget_destroy(&s.ctx.budget);
	free(s.w);
	close(lock_fd);
	return exit_code;
}
