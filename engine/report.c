/* report.c - `mailferry status` and `mailferry report`, read from the state
 * database only (never from the live servers). */
#include <sqlite3.h>
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
	int64_t started, finished, runs;
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
			       " GROUP BY CASE WHEN m.reason LIKE 'too big%' THEN 'too big'"
			       " ELSE m.reason END ORDER BY 1",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, u->id);
		while (sqlite3_step(st) == SQLITE_ROW) {
			const char *r = (const char *)sqlite3_column_text(st, 0);
			if (!r)
				r = "unknown";
			if (strncmp(r, "not mail: ", 10) == 0)
				r += 10;
			else if (strncmp(r, "too big", 7) == 0)
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
			       "SELECT id, state, error, error_class, started, finished, runs"
			       " FROM unit WHERE ukey=?",
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

int mf_report(struct mf_job *job, const char *format)
{
	bool json = strcmp(format, "json") == 0;
	if (!json && strcmp(format, "csv") != 0) {
		fprintf(stderr, "mailferry: --format must be csv or json, not '%s'\n", format);
		return MF_EXIT_USAGE;
	}
	struct mf_ckpt *ck;
	if (open_db(job, &ck) < 0)
		return MF_EXIT_USAGE;
	sqlite3 *db = mf_ckpt_db(ck);
	struct unit_row *rows = load_units(job, db);
	if (!rows) {
		mf_ckpt_close(ck);
		fprintf(stderr, "mailferry: cannot read %s\n", job->state_path);
		return MF_EXIT_USAGE;
	}
	if (json) {
		fputs("{\"job\":", stdout);
		json_str(job->name);
		fputs(",\"mailboxes\":[", stdout);
	} else {
		puts("mailbox,source,archive,state,folders,messages_stored,bytes_stored,skipped,"
		     "skipped_by_reason,failed,in_doubt,changes,started,finished,runs,error_class,"
		     "error");
	}
	for (size_t i = 0; i < job->nunits; i++) {
		struct unit_row *u = &rows[i];
		char st[32], fi[32];
		iso_time(u->started, st, sizeof(st));
		iso_time(u->finished, fi, sizeof(fi));
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
			fputs("},\"started\":", stdout);
			json_str(st[0] ? st : NULL);
			fputs(",\"finished\":", stdout);
			json_str(fi[0] ? fi : NULL);
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
			printf(",%s,%s,%lld,", st, fi, (long long)u->runs);
			csv_field(u->error_class);
			putchar(',');
			csv_field(u->error);
			putchar('\n');
		}
		mf_buf_free(&ch);
	}
	if (json)
		puts("]}");
	free_units(rows, job->nunits);
	mf_ckpt_close(ck);
	return MF_EXIT_OK;
}
