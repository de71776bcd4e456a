/* report.c - `mailferry status` and `mailferry report`, read from the state
 * database only (never from the live servers). */
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "checkpoint.h"
#include "normalize/normalize.h"
#include "run.h"
#include "util.h"

struct unit_row {
	int64_t id;
	char *ukey, *mailbox, *source, *state, *error, *error_class;
	int64_t started, finished, runs, first_started, last_finished;
	int64_t folders, stored, stored_bytes, skipped, failed, pending;
	char *skip_reason[32]; /* "contact", "too-big", ... */
	int64_t skip_count[32];
	size_t nskip;
	uint64_t changes[MF_NORM_NKINDS];
};

static char *col_dup(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return t ? strdup((const char *)t) : NULL;
}

static int open_db(struct mf_job *job, struct mf_ckpt **ck)
{
	struct mf_err err = {0};
	if (mf_ckpt_open(job->state_path, job->name, false, ck, &err) < 0) {
		fprintf(stderr, "mailferry: %s\n", err.msg);
		return -1;
	}
	return 0;
}

static void load_counts(sqlite3 *db, struct unit_row *u)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
			       "SELECT count(DISTINCT f.id),"
			       " coalesce(sum(m.state=1),0), coalesce(sum(CASE WHEN m.state=1 THEN"
			       " m.size END),0), coalesce(sum(m.state=2),0),"
			       " coalesce(sum(m.state=3),0), coalesce(sum(m.state=0),0)"
			       " FROM folder f LEFT JOIN message m ON m.folder_id=f.id"
			       " WHERE f.unit_id=?",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, u->id);
		if (sqlite3_step(st) == SQLITE_ROW) {
			u->folders = sqlite3_column_int64(st, 0);
			u->stored = sqlite3_column_int64(st, 1);
			u->stored_bytes = sqlite3_column_int64(st, 2);
			u->skipped = sqlite3_column_int64(st, 3);
			u->failed = sqlite3_column_int64(st, 4);
			u->pending = sqlite3_column_int64(st, 5);
		}
		sqlite3_finalize(st);
	}
	if (sqlite3_prepare_v2(db,
			       "SELECT m.reason, count(*) FROM message m JOIN folder f ON"
			       " f.id=m.folder_id WHERE f.unit_id=? AND m.state=2"
			       " GROUP BY CASE WHEN m.rule='too-big' THEN 'too-big'"
			       " ELSE m.reason END ORDER BY 1",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, u->id);
		while (sqlite3_step(st) == SQLITE_ROW) {
			const char *r = (const char *)sqlite3_column_text(st, 0);
			if (!r)
				r = "unknown";
			if (strncmp(r, "not mail: ", 10) == 0)
				r += 10;
			else if (strncmp(r, "too big", 7) == 0 || strncmp(r, "too-big", 7) == 0)
				r = "too-big";
			if (u->nskip < 32 && (u->skip_reason[u->nskip] = strdup(r)) != NULL)
				u->skip_count[u->nskip++] = sqlite3_column_int64(st, 1);
		}
		sqlite3_finalize(st);
	}
	if (sqlite3_prepare_v2(db,
			       "SELECT m.changes, count(*) FROM message m JOIN folder f ON"
			       " f.id=m.folder_id WHERE f.unit_id=? AND m.state=1 AND m.changes<>0"
			       " GROUP BY m.changes",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, u->id);
		while (sqlite3_step(st) == SQLITE_ROW) {
			unsigned ch = (unsigned)sqlite3_column_int(st, 0);
			for (unsigned b = 0; b < MF_NORM_NKINDS; b++)
				if (ch & (1u << b))
					u->changes[b] += (uint64_t)sqlite3_column_int64(st, 1);
		}
		sqlite3_finalize(st);
	}
}

/* Units in manifest order, with what the database knows of each. */
static struct unit_row *load_units(struct mf_job *job, sqlite3 *db)
{
	struct unit_row *rows = calloc(job->nunits ? job->nunits : 1, sizeof(*rows));
	if (!rows)
		return NULL;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
			       "SELECT id, state, error, error_class, started, finished, runs,"
			       " first_started, last_finished FROM unit WHERE ukey=?",
			       -1, &st, NULL) != SQLITE_OK) {
		free(rows);
		return NULL;
	}
	for (size_t i = 0; i < job->nunits; i++) {
		struct unit_row *u = &rows[i];
		u->ukey = job->units[i].id;
		u->mailbox = job->units[i].mailbox;
		u->source = job->units[i].source_desc;
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, u->ukey, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW) {
			u->id = sqlite3_column_int64(st, 0);
			u->state = col_dup(st, 1);
			u->error = col_dup(st, 2);
			u->error_class = col_dup(st, 3);
			u->started = sqlite3_column_int64(st, 4);
			u->finished = sqlite3_column_int64(st, 5);
			u->runs = sqlite3_column_int64(st, 6);
			u->first_started = sqlite3_column_int64(st, 7);
			u->last_finished = sqlite3_column_int64(st, 8);
			load_counts(db, u);
		}
		if (!u->state)
			u->state = strdup("not started");
	}
	sqlite3_finalize(st);
	return rows;
}

static void free_units(struct unit_row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(rows[i].state);
		free(rows[i].error);
		free(rows[i].error_class);
		for (size_t k = 0; k < rows[i].nskip; k++)
			free(rows[i].skip_reason[k]);
	}
	free(rows);
}

int mf_status(struct mf_job *job)
{
	struct mf_ckpt *ck;
	if (open_db(job, &ck) < 0)
		return MF_EXIT_USAGE;
	struct unit_row *rows = load_units(job, mf_ckpt_db(ck));
	if (!rows) {
		mf_ckpt_close(ck);
		fprintf(stderr, "mailferry: cannot read %s\n", job->state_path);
		return MF_EXIT_USAGE;
	}
	printf("%-34s %-12s %7s %9s %10s %8s %7s %8s\n", "MAILBOX", "STATE", "FOLDERS", "STORED",
	       "MB", "SKIPPED", "FAILED", "IN-DOUBT");
	int64_t t_stored = 0, t_bytes = 0, t_skipped = 0, t_failed = 0;
	size_t done = 0;
	for (size_t i = 0; i < job->nunits; i++) {
		struct unit_row *u = &rows[i];
		printf("%-34s %-12s %7lld %9lld %10.1f %8lld %7lld %8lld\n", u->mailbox, u->state,
		       (long long)u->folders, (long long)u->stored, (double)u->stored_bytes / 1e6,
		       (long long)u->skipped, (long long)u->failed, (long long)u->pending);
		if (u->error)
			printf("    %s\n", u->error);
		t_stored += u->stored;
		t_bytes += u->stored_bytes;
		t_skipped += u->skipped;
		t_failed += u->failed;
		done += strcmp(u->state, "done") == 0;
	}
	printf("total: %zu of %zu mailboxes done, %lld messages stored (%.1f MB), %lld skipped, "
	       "%lld failed\n",
	       done, job->nunits, (long long)t_stored, (double)t_bytes / 1e6, (long long)t_skipped,
	       (long long)t_failed);
	free_units(rows, job->nunits);
	mf_ckpt_close(ck);
	return MF_EXIT_OK;
}

static void csv_field(const char *s)
{
	if (!s)
		s = "";
	if (!strpbrk(s, ",\"\r\n")) {
		fputs(s, stdout);
		return;
	}
	putchar('"');
	for (; *s; s++) {
		if (*s == '"')
			putchar('"');
		putchar(*s);
	}
	putchar('"');
}

static void json_str(const char *s)
{
	if (!s) {
		fputs("null", stdout);
		return;
	}
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c == '\n')
			fputs("\\n", stdout);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void iso_time(int64_t t, char *out, size_t size)
{
	out[0] = '\0';
	if (!t)
		return;
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void changes_text(const struct unit_row *u, struct mf_buf *b)
{
	for (unsigned k = 0; k < MF_NORM_NKINDS; k++)
		if (u->changes[k])
			mf_buf_printf(b, "%s%s=%llu", b->len ? " " : "", mf_norm_kind_name(k),
				      (unsigned long long)u->changes[k]);
}

/* At most 10,000 per mailbox, for a quick look: `report --items` lists
 * every one. */
static void json_failures(sqlite3 *db, int64_t unit_id)
{
	sqlite3_stmt *st;
	fputs("\"problems\":[", stdout);
	if (sqlite3_prepare_v2(db,
			       "SELECT f.path, m.skey, m.state, m.reason, m.size FROM message m"
			       " JOIN folder f ON f.id=m.folder_id WHERE f.unit_id=? AND"
			       " (m.state=3 OR (m.state=2 AND m.reason NOT LIKE 'not mail:%'))"
			       " ORDER BY f.path, m.skey LIMIT 10000",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, unit_id);
		int n = 0;
		while (sqlite3_step(st) == SQLITE_ROW) {
			struct mf_path p;
			char *disp = NULL;
			if (mf_path_from_key(&p, (const char *)sqlite3_column_text(st, 0)) == 0) {
				disp = mf_path_join(&p, "/");
				mf_path_free(&p);
			}
			printf("%s{\"folder\":", n++ ? "," : "");
			json_str(disp);
			fputs(",\"key\":", stdout);
			json_str((const char *)sqlite3_column_text(st, 1));
			printf(",\"state\":\"%s\",\"size\":%lld,\"reason\":",
			       sqlite3_column_int(st, 2) == 3 ? "failed" : "skipped",
			       (long long)sqlite3_column_int64(st, 4));
			json_str((const char *)sqlite3_column_text(st, 3));
			putchar('}');
			free(disp);
		}
		sqlite3_finalize(st);
	}
	putchar(']');
}

/* The normalizer's changes that `report --items` lists: converting line
 * ends to the target's convention is how every message is stored there, not
 * an alteration worth a line per message (it is counted in `changes`). */
#define ITEM_CHANGES (~(unsigned)MF_NORM_LINE_ENDINGS)

/* "what happened" and "why" of one item row. */
static void item_why(int state, const char *reason, unsigned changes, const char *note,
		     const char *rule, const char *setting, const char **what, struct mf_buf *why)
{
	if (state == MF_MSG_SKIPPED || state == MF_MSG_FAILED) {
		*what = state == MF_MSG_SKIPPED ? "skipped" : "failed";
		mf_buf_addstr(why, reason ? reason : "unknown");
		/* which [folders] lines excluded it */
		if (state == MF_MSG_SKIPPED && rule && strcmp(rule, "folder-excluded") == 0 &&
		    setting && *setting)
			mf_buf_printf(why, " (%s)", setting);
		return;
	}
	*what = "changed";
	static const char kept[] = "winmail.dat kept: ";
	const char *tnef_why = note && strncmp(note, kept, sizeof(kept) - 1) == 0
				       ? note + sizeof(kept) - 1
				       : NULL;
	for (unsigned b = 0; b < MF_NORM_NKINDS; b++) {
		if (!(changes & ITEM_CHANGES & (1u << b)))
			continue;
		mf_buf_printf(why, "%s%s", why->len ? "; " : "", mf_norm_kind_name(b));
		if ((1u << b) == MF_NORM_TNEF_FAILED && tnef_why) {
			/* the note may carry more after "; ": only the TNEF part */
			const char *e = strstr(tnef_why, "; ");
			mf_buf_printf(why, ": %.*s", (int)(e ? (size_t)(e - tnef_why) : strlen(tnef_why)),
				      tnef_why);
		}
	}
	if (note && note[0] && !tnef_why)
		mf_buf_printf(why, " (%s)", note);
}

static char *folder_disp(const char *key)
{
	struct mf_path p;
	char *disp = NULL;
	if (key && mf_path_from_key(&p, key) == 0) {
		disp = mf_path_join(&p, "/");
		mf_path_free(&p);
	}
	return disp;
}

/* Every skipped, failed or changed message of the selected units, one row
 * each, streamed from the database (no cap, constant memory). */
static int report_items(struct mf_job *job, sqlite3 *db, bool json)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
			       "SELECT f.path, m.skey, m.state, m.reason, m.size, m.changes, m.note,"
			       " m.subject, m.sender, m.hdate, m.msgid, m.idate, m.rule, m.setting"
			       " FROM message m"
			       " JOIN folder f ON f.id=m.folder_id JOIN unit u ON u.id=f.unit_id"
			       " WHERE u.ukey=?1 AND (m.state IN (2,3) OR (m.state=1 AND"
			       " (m.changes & ?2)<>0)) ORDER BY f.path, f.validity, m.skey",
			       -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "mailferry: %s: %s\n", job->state_path, sqlite3_errmsg(db));
		return MF_EXIT_USAGE;
	}
	if (json) {
		fputs("{\"job\":", stdout);
		json_str(job->name);
		fputs(",\"items\":[", stdout);
	} else {
		puts("mailbox,folder,subject,from,date,message_id,size,what,why,source_key,"
		     "internal_date");
	}
	unsigned long long n = 0;
	int rc = 0;
	for (size_t i = 0; i < job->nunits && rc == 0; i++) {
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, job->units[i].id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, ITEM_CHANGES);
		int s;
		while ((s = sqlite3_step(st)) == SQLITE_ROW) {
			char *folder = folder_disp((const char *)sqlite3_column_text(st, 0));
			const char *what;
			struct mf_buf why = {0};
			item_why(sqlite3_column_int(st, 2), (const char *)sqlite3_column_text(st, 3),
				 (unsigned)sqlite3_column_int(st, 5),
				 (const char *)sqlite3_column_text(st, 6),
				 (const char *)sqlite3_column_text(st, 12),
				 (const char *)sqlite3_column_text(st, 13), &what, &why);
			char idate[32];
			iso_time(sqlite3_column_int64(st, 11), idate, sizeof(idate));
			const char *txt[] = {
				job->units[i].mailbox,
				folder,
				(const char *)sqlite3_column_text(st, 7),
				(const char *)sqlite3_column_text(st, 8),
				(const char *)sqlite3_column_text(st, 9),
				(const char *)sqlite3_column_text(st, 10),
			};
			static const char *const names[] = {"mailbox", "folder", "subject",
							    "from",    "date",   "message_id"};
			long long size = sqlite3_column_int64(st, 4);
			const char *key = (const char *)sqlite3_column_text(st, 1);
			if (json) {
				fputs(n ? ",\n{" : "\n{", stdout);
				for (size_t k = 0; k < 6; k++) {
					printf("%s\"%s\":", k ? "," : "", names[k]);
					json_str(txt[k]);
				}
				printf(",\"size\":%lld,\"what\":\"%s\",\"why\":", size, what);
				json_str(why.data ? why.data : "");
				fputs(",\"source_key\":", stdout);
				json_str(key);
				fputs(",\"internal_date\":", stdout);
				json_str(idate[0] ? idate : NULL);
				putchar('}');
			} else {
				for (size_t k = 0; k < 6; k++) {
					csv_field(txt[k]);
					putchar(',');
				}
				printf("%lld,%s,", size, what);
				csv_field(why.data);
				putchar(',');
				csv_field(key);
				printf(",%s\n", idate);
			}
			n++;
			mf_buf_free(&why);
			free(folder);
		}
		if (s != SQLITE_DONE)
			rc = -1;
	}
	if (json)
		printf("\n],\"count\":%llu}\n", n);
	sqlite3_finalize(st);
	if (rc < 0 || ferror(stdout)) {
		fprintf(stderr, "mailferry: report --items: %s\n",
			rc < 0 ? sqlite3_errmsg(db) : "cannot write the output");
		return MF_EXIT_FAILURES;
	}
	return MF_EXIT_OK;
}

struct totals {
	size_t mailboxes, done, failed_mailboxes;
	int64_t folders, stored, bytes, skipped, failed, pending;
	int64_t first_started, last_finished, last_run;
	uint64_t changes[MF_NORM_NKINDS];
};

static void add_totals(struct totals *t, const struct unit_row *u)
{
	t->mailboxes++;
	t->done += strcmp(u->state, "done") == 0;
	t->failed_mailboxes += strcmp(u->state, "failed") == 0;
	t->folders += u->folders;
	t->stored += u->stored;
	t->bytes += u->stored_bytes;
	t->skipped += u->skipped;
	t->failed += u->failed;
	t->pending += u->pending;
	if (u->first_started && (!t->first_started || u->first_started < t->first_started))
		t->first_started = u->first_started;
	if (u->last_finished > t->last_finished)
		t->last_finished = u->last_finished;
	if (u->started > t->last_run)
		t->last_run = u->started;
	for (unsigned k = 0; k < MF_NORM_NKINDS; k++)
		t->changes[k] += u->changes[k];
}

/* --- HTML --------------------------------------------------------------------------- */

/* "2026-12-04 18:36:09 UTC", for people */
static void human_time(int64_t t, char *out, size_t size)
{
	out[0] = '\0';
	if (!t)
		return;
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(out, size, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

static void html_text(FILE *o, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '<': fputs("&lt;", o); break;
		case '>': fputs("&gt;", o); break;
		case '&': fputs("&amp;", o); break;
		case '"': fputs("&quot;", o); break;
		default: fputc(*s, o);
		}
	}
}

static const char html_css[] =
	"body{font:14px/1.4 -apple-system,'Segoe UI',Helvetica,Arial,sans-serif;color:#1a202c;"
	"margin:24px;background:#fff}"
	"h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}"
	".sub{color:#4a5568;margin-bottom:16px}"
	".cards{display:flex;flex-wrap:wrap;gap:12px}"
	".card{border:1px solid #cbd5e0;border-radius:6px;padding:10px 16px;min-width:120px}"
	".card b{display:block;font-size:22px}.card span{color:#4a5568;font-size:12px}"
	".bad b{color:#c53030}"
	"table{border-collapse:collapse;width:100%}"
	"th,td{border-bottom:1px solid #e2e8f0;padding:4px 8px;text-align:left;vertical-align:top}"
	"th{background:#edf2f7;font-weight:600}td.n,th.n{text-align:right}td.t,th{white-space:nowrap}td.s{word-break:break-all}"
	".st-done{color:#276749}.st-failed,.st-partial{color:#c53030}"
	".st-interrupted,.st-running{color:#b7791f}"
	"svg text{font-size:11px;fill:#4a5568}";

/* Throughput over time: the batches' stored messages in up to 48 equal
 * slices of the time from the first batch to the last, as bars. */
static void html_chart(FILE *o, sqlite3 *db, const struct mf_job *job)
{
	enum { SLICES = 48, W = 1000, H = 220, L = 60, B = 30 };
	int64_t t0 = 0, t1 = 0;
	sqlite3_stmt *st;
	/* only the selected units' batches */
	if (sqlite3_prepare_v2(db, "CREATE TEMP TABLE IF NOT EXISTS sel(id INTEGER PRIMARY KEY)",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_step(st);
		sqlite3_finalize(st);
	}
	if (sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO sel SELECT id FROM unit WHERE ukey=?",
			       -1, &st, NULL) == SQLITE_OK) {
		for (size_t i = 0; i < job->nunits; i++) {
			sqlite3_reset(st);
			sqlite3_bind_text(st, 1, job->units[i].id, -1, SQLITE_STATIC);
			sqlite3_step(st);
		}
		sqlite3_finalize(st);
	}
	if (sqlite3_prepare_v2(db,
			       "SELECT min(t), max(t), count(*) FROM batch WHERE unit_id IN"
			       " (SELECT id FROM sel)",
			       -1, &st, NULL) != SQLITE_OK)
		return;
	int64_t nb = 0;
	if (sqlite3_step(st) == SQLITE_ROW) {
		t0 = sqlite3_column_int64(st, 0);
		t1 = sqlite3_column_int64(st, 1);
		nb = sqlite3_column_int64(st, 2);
	}
	sqlite3_finalize(st);
	fputs("<h2>Throughput over time</h2>\n", o);
	if (nb == 0) {
		fputs("<p>No batch has been recorded yet.</p>\n", o);
		return;
	}
	/* the shortest round slice that gives at most SLICES bars */
	static const double steps[] = {100,    200,    500,     1000,    2000,    5000,
				       10000,  15000,  30000,   60000,   120000,  300000,
				       600000, 900000, 1800000, 3600000, 7200000, 21600000,
				       43200000, 86400000};
	double slice_ms = 0;
	for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]) && !slice_ms; k++)
		if ((double)(t1 - t0) / steps[k] < SLICES)
			slice_ms = steps[k];
	if (!slice_ms)
		slice_ms = (double)(t1 - t0 + 1) / SLICES;
	int nslices = (int)((double)(t1 - t0) / slice_ms) + 1;
	if (nslices > SLICES)
		nslices = SLICES;
	double msgs[SLICES] = {0}, mb[SLICES] = {0};
	if (sqlite3_prepare_v2(db,
			       "SELECT t, stored, bytes FROM batch WHERE unit_id IN"
			       " (SELECT id FROM sel) ORDER BY t",
			       -1, &st, NULL) != SQLITE_OK)
		return;
	while (sqlite3_step(st) == SQLITE_ROW) {
		int k = (int)((double)(sqlite3_column_int64(st, 0) - t0) / slice_ms);
		if (k >= nslices)
			k = nslices - 1;
		msgs[k] += (double)sqlite3_column_int64(st, 1);
		mb[k] += (double)sqlite3_column_int64(st, 2) / 1e6;
	}
	sqlite3_finalize(st);
	/* bars in messages per second over their slice */
	double per_s = slice_ms / 1000.0, top = 0, total = 0;
	for (int k = 0; k < nslices; k++) {
		total += msgs[k];
		msgs[k] /= per_s;
		if (msgs[k] > top)
			top = msgs[k];
	}
	double peak = top, nice = 0.1;
	/* the axis goes to the next 1, 2, 4, 5 or 8 x 10^k above the peak */
	while (nice * 8 < peak)
		nice *= 10;
	static const double m[] = {1, 2, 4, 5, 8, 10};
	for (size_t k = 0; k < 6; k++)
		if (nice * m[k] >= peak) {
			top = nice * m[k];
			break;
		}
	if (top <= 0)
		top = 1;
	fprintf(o,
		"<p class=\"sub\">Messages stored per second, averaged over %g s slices; %d "
		"batches, %.0f messages; the highest rate is %.1f messages/s.</p>\n",
		per_s, (int)nb, total, peak);
	fprintf(o,
		"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
		"viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"messages stored over time\">\n",
		W, H, W, H);
	int pw = W - L - 10, ph = H - B - 10;
	fprintf(o, "<rect x=\"%d\" y=\"10\" width=\"%d\" height=\"%d\" fill=\"#f7fafc\" "
		   "stroke=\"#cbd5e0\"/>\n", L, pw, ph);
	for (int g = 0; g <= 4; g++) {
		int y = 10 + ph - ph * g / 4;
		fprintf(o, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#e2e8f0\"/>"
			   "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%.*f</text>\n",
			L, y, L + pw, y, L - 6, y + 4, top < 8 ? 1 : 0, top * g / 4);
	}
	double bw = (double)pw / nslices;
	for (int k = 0; k < nslices; k++) {
		double h = msgs[k] / top * ph;
		if (msgs[k] <= 0)
			continue;
		fprintf(o, "<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
			   "height=\"%.1f\" fill=\"#2b6cb0\"><title>%.1f messages/s, %.1f MB"
			   "</title></rect>\n",
			L + k * bw + 1, 10 + ph - h, bw > 3 ? bw - 2 : bw, h, msgs[k], mb[k]);
	}
	char a[32], b[32];
	human_time(t0 / 1000, a, sizeof(a));
	human_time(t1 / 1000, b, sizeof(b));
	fprintf(o, "<text x=\"%d\" y=\"%d\">%s</text><text x=\"%d\" y=\"%d\" "
		   "text-anchor=\"end\">%s</text><text x=\"14\" y=\"%d\" "
		   "transform=\"rotate(-90 14 %d)\" text-anchor=\"middle\">messages/s</text>\n"
		   "</svg>\n",
		L, H - 8, a, L + pw, H - 8, b, 10 + ph / 2, 10 + ph / 2);
}

static void html_card(FILE *o, const char *label, const char *value, bool bad)
{
	fprintf(o, "<div class=\"card%s\"><b>", bad ? " bad" : "");
	html_text(o, value);
	fputs("</b><span>", o);
	html_text(o, label);
	fputs("</span></div>\n", o);
}

/* Failed and skipped messages, grouped by mailbox and reason. */
static void html_failures(FILE *o, sqlite3 *db, const struct mf_job *job,
			  const struct unit_row *rows)
{
	fputs("<h2>Failures and skips</h2>\n", o);
	int shown = 0;
	for (size_t i = 0; i < job->nunits; i++)
		if (rows[i].error)
			shown++;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
			       "SELECT CASE m.state WHEN 3 THEN 'failed' ELSE 'skipped' END,"
			       " CASE WHEN m.rule='too-big' THEN 'too-big' ELSE m.reason END,"
			       " count(*), sum(m.size) FROM message m JOIN folder f ON"
			       " f.id=m.folder_id WHERE f.unit_id=? AND m.state IN (2,3)"
			       " GROUP BY 1, 2 ORDER BY 1, 3 DESC",
			       -1, &st, NULL) != SQLITE_OK)
		return;
	fputs("<table><tr><th>Mailbox</th><th>What</th><th>Why</th><th class=\"n\">Messages</th>"
	      "<th class=\"n\">MB</th></tr>\n", o);
	for (size_t i = 0; i < job->nunits; i++) {
		const struct unit_row *u = &rows[i];
		if (u->error) {
			fputs("<tr><td>", o);
			html_text(o, u->mailbox);
			fprintf(o, "</td><td class=\"st-failed\">mailbox %s</td><td>", u->state);
			html_text(o, u->error);
			fputs("</td><td></td><td></td></tr>\n", o);
		}
		if (!u->id)
			continue;
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, u->id);
		while (sqlite3_step(st) == SQLITE_ROW) {
			shown++;
			const char *what = (const char *)sqlite3_column_text(st, 0);
			fputs("<tr><td>", o);
			html_text(o, u->mailbox);
			fprintf(o, "</td><td class=\"%s\">%s</td><td>",
				strcmp(what, "failed") == 0 ? "st-failed" : "", what);
			html_text(o, (const char *)sqlite3_column_text(st, 1));
			fprintf(o, "</td><td class=\"n\">%lld</td><td class=\"n\">%.1f</td></tr>\n",
				(long long)sqlite3_column_int64(st, 2),
				(double)sqlite3_column_int64(st, 3) / 1e6);
		}
	}
	fputs("</table>\n", o);
	sqlite3_finalize(st);
	if (!shown)
		fputs("<p>None: every message was stored.</p>\n", o);
	else
		fputs("<p class=\"sub\">Every message, with its subject, sender and folder: "
		      "<code>mailferry report JOB.ini --items</code>.</p>\n", o);
}

static int report_html(struct mf_job *job, sqlite3 *db, struct unit_row *rows)
{
	FILE *o = stdout;
	struct totals t = {0};
	for (size_t i = 0; i < job->nunits; i++)
		add_totals(&t, &rows[i]);
	char a[32], b[32];
	/* "as of" the state's last event, not the clock: the same state gives
	 * the same file */
	int64_t asof = t.last_run > t.last_finished ? t.last_run : t.last_finished;
	for (size_t i = 0; i < job->nunits; i++)
		if (rows[i].finished > asof)
			asof = rows[i].finished;
	human_time(asof, a, sizeof(a));
	fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>", o);
	fputs("mailferry report: ", o);
	html_text(o, job->name);
	fprintf(o, "</title>\n<style>%s</style></head><body>\n<h1>Migration report: ", html_css);
	html_text(o, job->name);
	fputs("</h1>\n<div class=\"sub\">", o);
	fprintf(o, "%zu mailboxes; state as of %s", t.mailboxes, a[0] ? a : "(never run)");
	human_time(t.first_started, a, sizeof(a));
	human_time(t.last_finished, b, sizeof(b));
	if (a[0])
		fprintf(o, "; first started %s", a);
	if (b[0])
		fprintf(o, "; last finished %s", b);
	fputs("</div>\n<div class=\"cards\">\n", o);
	char v[64];
	snprintf(v, sizeof(v), "%zu / %zu", t.done, t.mailboxes);
	html_card(o, "mailboxes done", v, false);
	snprintf(v, sizeof(v), "%lld", (long long)t.stored);
	html_card(o, "messages stored", v, false);
	snprintf(v, sizeof(v), "%.1f", (double)t.bytes / 1e6);
	html_card(o, "MB stored", v, false);
	snprintf(v, sizeof(v), "%lld", (long long)t.skipped);
	html_card(o, "skipped by a rule", v, false);
	snprintf(v, sizeof(v), "%lld", (long long)t.failed);
	html_card(o, "messages failed", v, t.failed > 0);
	snprintf(v, sizeof(v), "%zu", t.failed_mailboxes);
	html_card(o, "mailboxes failed", v, t.failed_mailboxes > 0);
	if (t.pending) {
		snprintf(v, sizeof(v), "%lld", (long long)t.pending);
		html_card(o, "in doubt (the next run checks)", v, true);
	}
	fputs("</div>\n", o);
	html_chart(o, db, job);
	fputs("<h2>Mailboxes</h2>\n<table><tr><th>Mailbox</th><th>Source</th><th>State</th>"
	      "<th class=\"n\">Folders</th><th class=\"n\">Stored</th><th class=\"n\">MB</th>"
	      "<th class=\"n\">Skipped</th><th class=\"n\">Failed</th><th>First started</th>"
	      "<th>Last finished</th></tr>\n", o);
	for (size_t i = 0; i < job->nunits; i++) {
		const struct unit_row *u = &rows[i];
		human_time(u->first_started, a, sizeof(a));
		human_time(u->last_finished, b, sizeof(b));
		fputs("<tr><td>", o);
		html_text(o, u->mailbox);
		fputs("</td><td class=\"s\">", o);
		html_text(o, u->source);
		fputs("</td><td class=\"st-", o);
		for (const char *p = u->state; *p; p++)
			fputc(*p == ' ' ? '-' : *p, o);
		fputs("\">", o);
		html_text(o, u->state);
		fprintf(o, "</td><td class=\"n\">%lld</td><td class=\"n\">%lld</td>"
			   "<td class=\"n\">%.1f</td><td class=\"n\">%lld</td><td class=\"n\">%lld"
			   "</td><td class=\"t\">%s</td><td class=\"t\">%s</td></tr>\n",
			(long long)u->folders, (long long)u->stored, (double)u->stored_bytes / 1e6,
			(long long)u->skipped, (long long)u->failed, a, b);
	}
	fprintf(o, "<tr><th>Total</th><th></th><th>%zu done</th><th class=\"n\">%lld</th>"
		   "<th class=\"n\">%lld</th><th class=\"n\">%.1f</th><th class=\"n\">%lld</th>"
		   "<th class=\"n\">%lld</th><th></th><th></th></tr>\n</table>\n",
		t.done, (long long)t.folders, (long long)t.stored, (double)t.bytes / 1e6,
		(long long)t.skipped, (long long)t.failed);
	html_failures(o, db, job, rows);
	fputs("<p class=\"sub\">Written by mailferry " MF_VERSION " from the job's state "
	      "database.</p>\n</body></html>\n", o);
	if (fflush(o) != 0 || ferror(o)) {
		fprintf(stderr, "mailferry: report: cannot write the output\n");
		return MF_EXIT_FAILURES;
	}
	return MF_EXIT_OK;
}

/* --- CSV and JSON ------------------------------------------------------------------- */

int mf_report(struct mf_job *job, const char *format, bool items)
{
	bool json = strcmp(format, "json") == 0, html = strcmp(format, "html") == 0;
	if (!json && !html && strcmp(format, "csv") != 0) {
		fprintf(stderr, "mailferry: --format must be csv, json or html, not '%s'\n", format);
		return MF_EXIT_USAGE;
	}
	if (items && html) {
		fprintf(stderr, "mailferry: --items goes with --format csv or json\n");
		return MF_EXIT_USAGE;
	}
	struct mf_ckpt *ck;
	if (open_db(job, &ck) < 0)
		return MF_EXIT_USAGE;
	sqlite3 *db = mf_ckpt_db(ck);
	if (items) {
		int rc = report_items(job, db, json);
		mf_ckpt_close(ck);
		return rc;
	}
	struct unit_row *rows = load_units(job, db);
	if (!rows) {
		mf_ckpt_close(ck);
		fprintf(stderr, "mailferry: cannot read %s\n", job->state_path);
		return MF_EXIT_USAGE;
	}
	if (html) {
		int rc = report_html(job, db, rows);
		free_units(rows, job->nunits);
		mf_ckpt_close(ck);
		return rc;
	}
	if (json) {
		fputs("{\"job\":", stdout);
		json_str(job->name);
		fputs(",\"mailboxes\":[", stdout);
	} else {
		puts("mailbox,source,archive,state,folders,messages_stored,bytes_stored,skipped,"
		     "skipped_by_reason,failed,in_doubt,changes,first_started,last_finished,runs,"
		     "last_run,error_class,error");
	}
	struct totals tot = {0};
	for (size_t i = 0; i < job->nunits; i++) {
		struct unit_row *u = &rows[i];
		add_totals(&tot, u);
		char fs[32], lf[32], lr[32];
		iso_time(u->first_started, fs, sizeof(fs));
		iso_time(u->last_finished, lf, sizeof(lf));
		iso_time(u->started, lr, sizeof(lr));
		struct mf_buf ch = {0};
		changes_text(u, &ch);
		if (json) {
			printf("%s{\"mailbox\":", i ? "," : "");
			json_str(u->mailbox);
			fputs(",\"source\":", stdout);
			json_str(u->source);
			printf(",\"archive\":%s", job->units[i].is_archive ? "true" : "false");
			fputs(",\"state\":", stdout);
			json_str(u->state);
			printf(",\"folders\":%lld,\"messages_stored\":%lld,\"bytes_stored\":%lld,"
			       "\"skipped\":%lld,\"failed\":%lld,\"in_doubt\":%lld,\"runs\":%lld,",
			       (long long)u->folders, (long long)u->stored,
			       (long long)u->stored_bytes, (long long)u->skipped,
			       (long long)u->failed, (long long)u->pending, (long long)u->runs);
			fputs("\"skipped_by_reason\":{", stdout);
			for (size_t k = 0; k < u->nskip; k++) {
				printf("%s", k ? "," : "");
				json_str(u->skip_reason[k]);
				printf(":%lld", (long long)u->skip_count[k]);
			}
			int n = 0;
			fputs("},\"changes\":{", stdout);
			for (unsigned k = 0; k < MF_NORM_NKINDS; k++)
				if (u->changes[k])
					printf("%s\"%s\":%llu", n++ ? "," : "", mf_norm_kind_name(k),
					       (unsigned long long)u->changes[k]);
			fputs("},\"first_started\":", stdout);
			json_str(fs[0] ? fs : NULL);
			fputs(",\"last_finished\":", stdout);
			json_str(lf[0] ? lf : NULL);
			fputs(",\"last_run\":", stdout);
			json_str(lr[0] ? lr : NULL);
			fputs(",\"error_class\":", stdout);
			json_str(u->error_class);
			fputs(",\"error\":", stdout);
			json_str(u->error);
			putchar(',');
			json_failures(db, u->id);
			putchar('}');
		} else {
			csv_field(u->mailbox);
			putchar(',');
			csv_field(u->source);
			printf(",%s,", job->units[i].is_archive ? "TRUE" : "FALSE");
			csv_field(u->state);
			printf(",%lld,%lld,%lld,%lld,", (long long)u->folders, (long long)u->stored,
			       (long long)u->stored_bytes, (long long)u->skipped);
			struct mf_buf sb = {0};
			for (size_t k = 0; k < u->nskip; k++)
				mf_buf_printf(&sb, "%s%s=%lld", k ? " " : "", u->skip_reason[k],
					      (long long)u->skip_count[k]);
			csv_field(sb.data);
			mf_buf_free(&sb);
			printf(",%lld,%lld,", (long long)u->failed, (long long)u->pending);
			csv_field(ch.data);
			printf(",%s,%s,%lld,%s,", fs, lf, (long long)u->runs, lr);
			csv_field(u->error_class);
			putchar(',');
			csv_field(u->error);
			putchar('\n');
		}
		mf_buf_free(&ch);
	}
	char fs[32], lf[32], lr[32];
	iso_time(tot.first_started, fs, sizeof(fs));
	iso_time(tot.last_finished, lf, sizeof(lf));
	iso_time(tot.last_run, lr, sizeof(lr));
	struct mf_buf ch = {0};
	for (unsigned k = 0; k < MF_NORM_NKINDS; k++)
		if (tot.changes[k])
			mf_buf_printf(&ch, "%s%s=%llu", ch.len ? " " : "", mf_norm_kind_name(k),
				      (unsigned long long)tot.changes[k]);
	if (json) {
		printf("],\"totals\":{\"mailboxes\":%zu,\"mailboxes_done\":%zu,"
		       "\"mailboxes_failed\":%zu,\"folders\":%lld,\"messages_stored\":%lld,"
		       "\"bytes_stored\":%lld,\"skipped\":%lld,\"failed\":%lld,\"in_doubt\":%lld,"
		       "\"changes\":{",
		       tot.mailboxes, tot.done, tot.failed_mailboxes, (long long)tot.folders,
		       (long long)tot.stored, (long long)tot.bytes, (long long)tot.skipped,
		       (long long)tot.failed, (long long)tot.pending);
		int n = 0;
		for (unsigned k = 0; k < MF_NORM_NKINDS; k++)
			if (tot.changes[k])
				printf("%s\"%s\":%llu", n++ ? "," : "", mf_norm_kind_name(k),
				       (unsigned long long)tot.changes[k]);
		fputs("},\"first_started\":", stdout);
		json_str(fs[0] ? fs : NULL);
		fputs(",\"last_finished\":", stdout);
		json_str(lf[0] ? lf : NULL);
		fputs(",\"last_run\":", stdout);
		json_str(lr[0] ? lr : NULL);
		puts("}}");
	} else {
		/* the totals row: "(total)" in the mailbox column, the number of
		 * mailboxes done in the state column */
		printf("(total),,,%zu of %zu done,%lld,%lld,%lld,%lld,,%lld,%lld,", tot.done,
		       tot.mailboxes, (long long)tot.folders, (long long)tot.stored,
		       (long long)tot.bytes, (long long)tot.skipped, (long long)tot.failed,
		       (long long)tot.pending);
		csv_field(ch.data);
		printf(",%s,%s,,%s,,\n", fs, lf, lr);
	}
	mf_buf_free(&ch);
	free_units(rows, job->nunits);
	mf_ckpt_close(ck);
	return MF_EXIT_OK;
}
