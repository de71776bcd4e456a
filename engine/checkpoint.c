/* checkpoint.c - SQLite checkpoint store with a group-commit writer thread. */
#include "checkpoint.h"

#include <pthread.h>
#include <stdio.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SCHEMA_VERSION "2"

/* Version 2 added, per message, the rule (and its setting) that skipped it
 * and what the report lists for each skipped, failed or changed message;
 * per unit, the first start and the last finish that did some work; and one
 * row per committed batch for the throughput chart. A version 1 database is
 * migrated in place when opened for writing (upgrade_v1), and read through
 * temporary views when opened read-only (views_v1). */

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS unit("
	" id INTEGER PRIMARY KEY, ukey TEXT UNIQUE NOT NULL, mailbox TEXT NOT NULL,"
	" source TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'new', error TEXT,"
	" error_class TEXT, started INTEGER, finished INTEGER, runs INTEGER NOT NULL DEFAULT 0,"
	" first_started INTEGER, last_finished INTEGER);"
	"CREATE TABLE IF NOT EXISTS folder("
	" id INTEGER PRIMARY KEY, unit_id INTEGER NOT NULL REFERENCES unit(id),"
	" path TEXT NOT NULL, validity TEXT NOT NULL, target TEXT NOT NULL, cursor TEXT,"
	" UNIQUE(unit_id, path, validity));"
	"CREATE TABLE IF NOT EXISTS message("
	" folder_id INTEGER NOT NULL, skey TEXT NOT NULL, state INTEGER NOT NULL,"
	" size INTEGER NOT NULL DEFAULT 0, idate INTEGER NOT NULL DEFAULT 0,"
	" flags INTEGER NOT NULL DEFAULT 0, hash BLOB, sink_id TEXT,"
	" changes INTEGER NOT NULL DEFAULT 0, reason TEXT, err_class INTEGER NOT NULL DEFAULT 0,"
	" updated INTEGER NOT NULL, rule TEXT, setting TEXT, subject TEXT, sender TEXT,"
	" hdate TEXT, msgid TEXT, note TEXT, PRIMARY KEY(folder_id, skey)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS batch("
	" unit_id INTEGER NOT NULL, t INTEGER NOT NULL, stored INTEGER NOT NULL,"
	" bytes INTEGER NOT NULL, skipped INTEGER NOT NULL, failed INTEGER NOT NULL);";

/* The columns version 2 added, for the in-place upgrade. The rule of an old
 * skip is known from its reason, its setting is not: NULL, which differs from
 * any current setting, so that the next run decides those messages again. */
static const char upgrade_v1[] =
	"ALTER TABLE unit ADD COLUMN first_started INTEGER;"
	"ALTER TABLE unit ADD COLUMN last_finished INTEGER;"
	"UPDATE unit SET first_started=started, last_finished=finished;"
	"ALTER TABLE message ADD COLUMN rule TEXT;"
	"ALTER TABLE message ADD COLUMN setting TEXT;"
	"ALTER TABLE message ADD COLUMN subject TEXT;"
	"ALTER TABLE message ADD COLUMN sender TEXT;"
	"ALTER TABLE message ADD COLUMN hdate TEXT;"
	"ALTER TABLE message ADD COLUMN msgid TEXT;"
	"ALTER TABLE message ADD COLUMN note TEXT;"
	"UPDATE message SET rule='too-big' WHERE state=2 AND reason LIKE 'too big%';"
	"UPDATE message SET rule='not-mail' WHERE state=2 AND reason LIKE 'not mail:%';"
	"UPDATE meta SET value='2' WHERE key='schema';";

/* A read-only connection cannot upgrade: temporary views (searched before
 * the main schema) give the version 2 names, with what version 1 knew. */
static const char views_v1[] =
	"CREATE TEMP VIEW unit AS SELECT *, started AS first_started,"
	" finished AS last_finished FROM main.unit;"
	"CREATE TEMP VIEW message AS SELECT *, CASE WHEN state=2 AND reason LIKE 'too big%'"
	" THEN 'too-big' WHEN state=2 AND reason LIKE 'not mail:%' THEN 'not-mail' END AS rule,"
	" NULL AS setting, NULL AS subject, NULL AS sender, NULL AS hdate, NULL AS msgid,"
	" NULL AS note FROM main.message;"
	"CREATE TEMP TABLE batch(unit_id INTEGER NOT NULL, t INTEGER NOT NULL,"
	" stored INTEGER NOT NULL, bytes INTEGER NOT NULL, skipped INTEGER NOT NULL,"
	" failed INTEGER NOT NULL);";

struct req {
	int (*fn)(sqlite3 *db, void *arg);
	void *arg;
	int rc;
	bool done;
	struct req *next;
};

struct mf_ckpt {
	sqlite3 *db;
	char *path;
	pthread_t writer;
	bool writer_running;
	pthread_mutex_t lock;
	pthread_cond_t wake; /* the writer: work queued or stop */
	pthread_cond_t done; /* the callers: a commit finished */
	struct req *head, *tail;
	bool stop;
	char last_error[256];
};

static int sql_error(sqlite3 *db)
{
	int e = sqlite3_extended_errcode(db) & 0xff;
	if (e == SQLITE_FULL)
		return MF_ENOSPC;
	if (e == SQLITE_NOMEM)
		return MF_ENOMEM;
	return MF_ESTATE;
}

static int exec(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : sql_error(db);
}

static void *writer_main(void *arg)
{
	struct mf_ckpt *ck = arg;
	pthread_mutex_lock(&ck->lock);
	for (;;) {
		while (!ck->head && !ck->stop)
			pthread_cond_wait(&ck->wake, &ck->lock);
		if (!ck->head && ck->stop)
			break;
		struct req *batch = ck->head;
		ck->head = ck->tail = NULL;
		pthread_mutex_unlock(&ck->lock);

		int rc = exec(ck->db, "BEGIN IMMEDIATE");
		for (struct req *r = batch; r; r = r->next) {
			if (rc < 0) {
				r->rc = rc;
				continue;
			}
			exec(ck->db, "SAVEPOINT one");
			r->rc = r->fn(ck->db, r->arg);
			if (r->rc < 0)
				exec(ck->db, "ROLLBACK TO one");
			exec(ck->db, "RELEASE one");
		}
		if (rc == 0 && exec(ck->db, "COMMIT") < 0) {
			rc = sql_error(ck->db);
			snprintf(ck->last_error, sizeof(ck->last_error), "%s",
				 sqlite3_errmsg(ck->db));
			exec(ck->db, "ROLLBACK");
			for (struct req *r = batch; r; r = r->next)
				r->rc = rc;
		} else if (rc < 0) {
			snprintf(ck->last_error, sizeof(ck->last_error), "%s",
				 sqlite3_errmsg(ck->db));
		}

		pthread_mutex_lock(&ck->lock);
		for (struct req *r = batch, *next; r; r = next) {
			next = r->next;
			r->done = true;
		}
		pthread_cond_broadcast(&ck->done);
	}
	pthread_mutex_unlock(&ck->lock);
	return NULL;
}

int mf_ckpt_exec(struct mf_ckpt *ck, int (*fn)(sqlite3 *db, void *arg), void *arg,
		 struct mf_err *err)
{
	struct req r = {.fn = fn, .arg = arg};
	if (!ck->writer_running) {
		/* no writer thread (read-only use): run inline */
		int rc = exec(ck->db, "BEGIN");
		if (rc == 0) {
			rc = fn(ck->db, arg);
			rc = rc < 0 ? (exec(ck->db, "ROLLBACK"), rc) : exec(ck->db, "COMMIT");
		}
		if (rc < 0)
			return mf_err_set(err, rc, "state database %s: %s", ck->path,
					  sqlite3_errmsg(ck->db));
		return 0;
	}
	pthread_mutex_lock(&ck->lock);
	if (ck->tail)
		ck->tail->next = &r;
	else
		ck->head = &r;
	ck->tail = &r;
	pthread_cond_signal(&ck->wake);
	while (!r.done)
		pthread_cond_wait(&ck->done, &ck->lock);
	pthread_mutex_unlock(&ck->lock);
	if (r.rc < 0)
		return mf_err_set(err, r.rc, "state database %s: %s", ck->path,
				  r.rc == MF_ENOSPC ? "no space left on device" : ck->last_error);
	return 0;
}

static int get_meta(sqlite3 *db, const char *key, char *out, size_t size)
{
	sqlite3_stmt *st;
	out[0] = '\0';
	if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = ?", -1, &st, NULL) !=
	    SQLITE_OK)
		return -1;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	int found = 0;
	if (sqlite3_step(st) == SQLITE_ROW) {
		snprintf(out, size, "%s", (const char *)sqlite3_column_text(st, 0));
		found = 1;
	}
	sqlite3_finalize(st);
	return found;
}

/* The marker: "<job name>\n<creation time>\n", written tmp -> fsync -> rename. */
static int write_marker(const char *marker, const char *job_name)
{
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s.tmp", marker);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return -1;
	fprintf(f, "%s\n%lld\n", job_name, (long long)time(NULL));
	int rc = fflush(f) == 0 && fsync(fileno(f)) == 0 ? 0 : -1;
	if (fclose(f) != 0)
		rc = -1;
	if (rc == 0)
		rc = rename(tmp, marker);
	return rc;
}

int mf_ckpt_open(const char *path, const char *job_name, bool create, struct mf_ckpt **out,
		 struct mf_err *err)
{
	*out = NULL;
	struct stat st;
	bool existed = stat(path, &st) == 0;
	if (!existed && !create)
		return mf_err_set(err, MF_ENOTFOUND,
				  "state database %s does not exist: this job has not run yet",
				  path);
	if (existed && st.st_size == 0)
		existed = false; /* created, then killed before the schema was written */
	/* A database that vanished after a run would make the next run store
	 * everything again: the marker written beside it says it existed. */
	char marker[4096];
	snprintf(marker, sizeof(marker), "%s.job", path);
	if (!existed && create && access(marker, F_OK) == 0)
		return mf_err_set(err, MF_ESTATE,
				  "state database %s is missing, but this job has run before (%s "
				  "exists). mailferry will not start over on its own, since that "
				  "would store every message again: restore the database from a "
				  "backup, or delete %s to start a new migration deliberately",
				  path, marker, marker);
	struct mf_ckpt *ck = calloc(1, sizeof(*ck));
	if (!ck)
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	ck->path = strdup(path);
	pthread_mutex_init(&ck->lock, NULL);
	pthread_cond_init(&ck->wake, NULL);
	pthread_cond_init(&ck->done, NULL);
	int flags = create ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY;
	int rc = 0;
	bool old_schema = false;
	char value[128];
	if (sqlite3_open_v2(path, &ck->db, flags | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
		rc = mf_err_set(err, MF_ESTATE, "cannot open state database %s: %s", path,
				ck->db ? sqlite3_errmsg(ck->db) : "out of memory");
		goto fail;
	}
	sqlite3_busy_timeout(ck->db, 10000);
	if (existed) {
		sqlite3_stmt *q;
		/* quick_check answers "ok" or rows naming the damage; a failing
		 * prepare or step leaves the reason in errmsg */
		char finding[200] = "";
		bool ok = false;
		if (sqlite3_prepare_v2(ck->db, "PRAGMA quick_check", -1, &q, NULL) == SQLITE_OK) {
			if (sqlite3_step(q) == SQLITE_ROW) {
				const char *t = (const char *)sqlite3_column_text(q, 0);
				ok = t && strcmp(t, "ok") == 0;
				snprintf(finding, sizeof(finding), "%s", t ? t : "");
			}
		}
		if (!finding[0])
			snprintf(finding, sizeof(finding), "%s", sqlite3_errmsg(ck->db));
		sqlite3_finalize(q);
		for (char *nl = finding; (nl = strchr(nl, '\n')) != NULL;)
			*nl = ' '; /* one line in logs */
		if (!ok) {
			rc = mf_err_set(err, MF_ESTATE,
					"state database %s is damaged (%s). mailferry will not "
					"start over on its own, since that would store every "
					"message again: restore the file from a backup, or move "
					"it aside to start a new migration deliberately",
					path, finding);
			goto fail;
		}
		int found = get_meta(ck->db, "program", value, sizeof(value));
		if (found <= 0 || strcmp(value, "mailferry") != 0) {
			rc = mf_err_set(err, MF_ESTATE,
					"%s is not a mailferry state database; refusing to use it",
					path);
			goto fail;
		}
		get_meta(ck->db, "job", value, sizeof(value));
		if (strcmp(value, job_name) != 0) {
			rc = mf_err_set(err, MF_ESTATE,
					"state database %s belongs to job '%s', not '%s'", path,
					value, job_name);
			goto fail;
		}
		get_meta(ck->db, "schema", value, sizeof(value));
		old_schema = strcmp(value, "1") == 0;
		if (!old_schema && strcmp(value, SCHEMA_VERSION) != 0) {
			rc = mf_err_set(err, MF_ESTATE,
					"state database %s has schema version %s; this mailferry "
					"knows version %s",
					path, value, SCHEMA_VERSION);
			goto fail;
		}
	}
	if (create) {
		if (exec(ck->db, "PRAGMA journal_mode=WAL") < 0 ||
		    exec(ck->db, "PRAGMA synchronous=FULL") < 0 || exec(ck->db, schema) < 0) {
			rc = mf_err_set(err, sql_error(ck->db), "state database %s: %s", path,
					sqlite3_errmsg(ck->db));
			goto fail;
		}
		if (old_schema) {
			/* one transaction: a kill leaves version 1 whole */
			if (exec(ck->db, "BEGIN IMMEDIATE") < 0 || exec(ck->db, upgrade_v1) < 0 ||
			    exec(ck->db, "COMMIT") < 0) {
				rc = mf_err_set(err, sql_error(ck->db),
						"state database %s: cannot upgrade it from schema "
						"version 1: %s",
						path, sqlite3_errmsg(ck->db));
				exec(ck->db, "ROLLBACK");
				goto fail;
			}
		}
		if (!existed) {
			sqlite3_stmt *ins;
			if (sqlite3_prepare_v2(ck->db,
					       "INSERT OR REPLACE INTO meta VALUES"
					       " ('program','mailferry'),('schema','" SCHEMA_VERSION
					       "'),('job',?)",
					       -1, &ins, NULL) != SQLITE_OK) {
				rc = mf_err_set(err, MF_ESTATE, "state database %s: %s", path,
						sqlite3_errmsg(ck->db));
				goto fail;
			}
			sqlite3_bind_text(ins, 1, job_name, -1, SQLITE_STATIC);
			int s = sqlite3_step(ins);
			sqlite3_finalize(ins);
			if (s != SQLITE_DONE) {
				rc = mf_err_set(err, sql_error(ck->db), "state database %s: %s",
						path, sqlite3_errmsg(ck->db));
				goto fail;
			}
		}
		if (!existed && write_marker(marker, job_name) < 0) {
			rc = mf_err_set(err, MF_ESTATE, "cannot write %s: %s", marker,
					strerror(errno));
			goto fail;
		}
		if (pthread_create(&ck->writer, NULL, writer_main, ck) != 0) {
			rc = mf_err_set(err, MF_EINTERNAL, "cannot start the checkpoint writer");
			goto fail;
		}
		ck->writer_running = true;
	} else if (old_schema && exec(ck->db, views_v1) < 0) {
		rc = mf_err_set(err, sql_error(ck->db), "state database %s (schema version 1): %s",
				path, sqlite3_errmsg(ck->db));
		goto fail;
	}
	*out = ck;
	return 0;
fail:
	mf_ckpt_close(ck);
	return rc;
}

void mf_ckpt_close(struct mf_ckpt *ck)
{
	if (!ck)
		return;
	if (ck->writer_running) {
		pthread_mutex_lock(&ck->lock);
		ck->stop = true;
		pthread_cond_signal(&ck->wake);
		pthread_mutex_unlock(&ck->lock);
		pthread_join(ck->writer, NULL);
	}
	if (ck->db)
		sqlite3_close(ck->db);
	pthread_mutex_destroy(&ck->lock);
	pthread_cond_destroy(&ck->wake);
	pthread_cond_destroy(&ck->done);
	free(ck->path);
	free(ck);
}

sqlite3 *mf_ckpt_db(struct mf_ckpt *ck)
{
	return ck->db;
}

/* --- operations ---------------------------------------------------------- */

static int64_t now(void)
{
	return (int64_t)time(NULL);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct unit_begin {
	const struct mf_unit *u;
	int64_t id;
};

static int do_unit_begin(sqlite3 *db, void *arg)
{
	struct unit_begin *a = arg;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
			       "INSERT INTO unit(ukey, mailbox, source, state, started, runs,"
			       " first_started) VALUES(?1, ?2, ?3, 'running', ?4, 1, ?4)"
			       " ON CONFLICT(ukey) DO UPDATE SET state='running', started=?4,"
			       " finished=NULL, error=NULL, error_class=NULL, runs=runs+1,"
			       " first_started=coalesce(first_started, started, ?4)"
			       " RETURNING id",
			       -1, &st, NULL) != SQLITE_OK)
		return sql_error(db);
	sqlite3_bind_text(st, 1, a->u->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, a->u->mailbox, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, a->u->source_desc, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, now());
	int rc = sqlite3_step(st) == SQLITE_ROW ? 0 : sql_error(db);
	if (!rc)
		a->id = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc;
}

int mf_ckpt_unit_begin(struct mf_ckpt *ck, const struct mf_unit *u, int64_t *unit_id,
		       struct mf_err *err)
{
	struct unit_begin a = {.u = u};
	int rc = mf_ckpt_exec(ck, do_unit_begin, &a, err);
	*unit_id = a.id;
	return rc;
}

struct unit_end {
	int64_t id;
	const char *state;
	const struct mf_err *why;
	bool worked;
};

static int do_unit_end(sqlite3 *db, void *arg)
{
	struct unit_end *a = arg;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
			       "UPDATE unit SET state=?2, finished=?3, error=?4, error_class=?5,"
			       " last_finished=CASE WHEN ?6 THEN ?3 ELSE last_finished END"
			       " WHERE id=?1",
			       -1, &st, NULL) != SQLITE_OK)
		return sql_error(db);
	sqlite3_bind_int64(st, 1, a->id);
	sqlite3_bind_text(st, 2, a->state, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now());
	if (a->why && a->why->code) {
		sqlite3_bind_text(st, 4, a->why->msg, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, mf_class_name(mf_err_class(a->why->code)), -1,
				  SQLITE_STATIC);
	}
	sqlite3_bind_int(st, 6, a->worked);
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : sql_error(db);
	sqlite3_finalize(st);
	return rc;
}

int mf_ckpt_unit_end(struct mf_ckpt *ck, int64_t unit_id, const char *state,
		     const struct mf_err *why, bool worked, struct mf_err *err)
{
	struct unit_end a = {.id = unit_id, .state = state, .why = why, .worked = worked};
	return mf_ckpt_exec(ck, do_unit_end, &a, err);
}

struct folder_args {
	int64_t unit_id;
	const char *path, *validity, *target;
	int64_t id;
	char *cursor;
	bool older;
};

static int do_folder(sqlite3 *db, void *arg)
{
	struct folder_args *a = arg;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
			       "INSERT INTO folder(unit_id, path, validity, target) VALUES(?,?,?,?)"
			       " ON CONFLICT(unit_id, path, validity) DO UPDATE SET"
			       " target=excluded.target RETURNING id, cursor",
			       -1, &st, NULL) != SQLITE_OK)
		return sql_error(db);
	sqlite3_bind_int64(st, 1, a->unit_id);
	sqlite3_bind_text(st, 2, a->path, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, a->validity, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, a->target, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st) == SQLITE_ROW ? 0 : sql_error(db);
	if (!rc) {
		a->id = sqlite3_column_int64(st, 0);
		const unsigned char *c = sqlite3_column_text(st, 1);
		a->cursor = c ? strdup((const char *)c) : NULL;
		if (c && !a->cursor)
			rc = MF_ENOMEM;
	}
	sqlite3_finalize(st);
	if (rc)
		return rc;
	if (sqlite3_prepare_v2(db,
			       "SELECT 1 FROM folder WHERE unit_id=? AND path=? AND validity<>?"
			       " LIMIT 1",
			       -1, &st, NULL) != SQLITE_OK)
		return sql_error(db);
	sqlite3_bind_int64(st, 1, a->unit_id);
	sqlite3_bind_text(st, 2, a->path, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, a->validity, -1, SQLITE_STATIC);
	a->older = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return 0;
}

int mf_ckpt_folder(struct mf_ckpt *ck, int64_t unit_id, const char *path_key,
		   const char *validity, const char *target_key, int64_t *folder_id, char **cursor,
		   bool *older_validity, struct mf_err *err)
{
	struct folder_args a = {
		.unit_id = unit_id, .path = path_key, .validity = validity, .target = target_key};
	int rc = mf_ckpt_exec(ck, do_folder, &a, err);
	*folder_id = a.id;
	*cursor = a.cursor;
	*older_validity = a.older;
	return rc;
}

struct folder_done {
	int64_t id;
	const char *cursor;
};

static int do_folder_done(sqlite3 *db, void *arg)
{
	struct folder_done *a = arg;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "UPDATE folder SET cursor=? WHERE id=?", -1, &st, NULL) !=
	    SQLITE_OK)
		return sql_error(db);
	sqlite3_bind_text(st, 1, a->cursor, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, a->id);
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : sql_error(db);
	sqlite3_finalize(st);
	return rc;
}

int mf_ckpt_folder_done(struct mf_ckpt *ck, int64_t folder_id, const char *cursor,
			struct mf_err *err)
{
	struct folder_done a = {.id = folder_id, .cursor = cursor};
	return mf_ckpt_exec(ck, do_folder_done, &a, err);
}

static void hash_hex(sqlite3_stmt *st, int col, char out[65])
{
	const unsigned char *h = sqlite3_column_blob(st, col);
	int n = sqlite3_column_bytes(st, col);
	out[0] = '\0';
	if (h && n == 32) {
		static const char digits[] = "0123456789abcdef";
		for (int i = 0; i < 32; i++) {
			out[2 * i] = digits[h[i] >> 4];
			out[2 * i + 1] = digits[h[i] & 15];
		}
		out[64] = '\0';
	}
}

struct rows_args {
	int64_t id;
	mf_ckpt_row_cb cb;
	void *arg;
};

/* A row of the columns skey, state, hash, rule, setting (from col 0). */
static int row_cb(sqlite3_stmt *st, mf_ckpt_row_cb cb, void *arg)
{
	char hex[65];
	hash_hex(st, 2, hex);
	struct mf_ckpt_row r = {
		.key = (const char *)sqlite3_column_text(st, 0),
		.state = sqlite3_column_int(st, 1),
		.hash_hex = hex,
		.rule = (const char *)sqlite3_column_text(st, 3),
		.setting = (const char *)sqlite3_column_text(st, 4),
	};
	return cb(arg, &r);
}

static int do_rows(sqlite3 *db, void *arg)
{
	struct rows_args *a = arg;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
			       "SELECT skey, state, hash, rule, setting FROM message WHERE folder_id=?",
			       -1, &st, NULL) != SQLITE_OK)
		return sql_error(db);
	sqlite3_bind_int64(st, 1, a->id);
	int rc = 0, s;
	while (rc == 0 && (s = sqlite3_step(st)) == SQLITE_ROW)
		rc = row_cb(st, a->cb, a->arg);
	if (rc == 0 && s != SQLITE_DONE)
		rc = sql_error(db);
	sqlite3_finalize(st);
	return rc;
}

int mf_ckpt_folder_rows(struct mf_ckpt *ck, int64_t folder_id, mf_ckpt_row_cb cb, void *arg,
			struct mf_err *err)
{
	struct rows_args a = {.id = folder_id, .cb = cb, .arg = arg};
	return mf_ckpt_exec(ck, do_rows, &a, err);
}

struct older_args {
	int64_t unit_id;
	const char *path, *validity;
	int (*cb)(void *arg, const char *hash_hex);
	void *arg;
};

static int do_older(sqlite3 *db, void *arg)
{
	struct older_args *a = arg;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
			       "SELECT m.hash FROM message m JOIN folder f ON f.id = m.folder_id"
			       " WHERE f.unit_id=? AND f.path=? AND f.validity<>? AND m.state=1",
			       -1, &st, NULL) != SQLITE_OK)
		return sql_error(db);
	sqlite3_bind_int64(st, 1, a->unit_id);
	sqlite3_bind_text(st, 2, a->path, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, a->validity, -1, SQLITE_STATIC);
	int rc = 0, s;
	char hex[65];
	while (rc == 0 && (s = sqlite3_step(st)) == SQLITE_ROW) {
		hash_hex(st, 0, hex);
		if (hex[0])
			rc = a->cb(a->arg, hex);
	}
	if (rc == 0 && s != SQLITE_DONE)
		rc = sql_error(db);
	sqlite3_finalize(st);
	return rc;
}

int mf_ckpt_older_hashes(struct mf_ckpt *ck, int64_t unit_id, const char *path_key,
			 const char *validity, int (*cb)(void *arg, const char *hash_hex),
			 void *arg, struct mf_err *err)
{
	struct older_args a = {
		.unit_id = unit_id, .path = path_key, .validity = validity, .cb = cb, .arg = arg};
	return mf_ckpt_exec(ck, do_older, &a, err);
}

struct write_args {
	int64_t folder_id;
	const struct mf_ckpt_rec *recs;
	size_t n;
};

static int unhex(const char *hex, unsigned char out[32])
{
	for (int i = 0; i < 32; i++) {
		int v = 0;
		for (int k = 0; k < 2; k++) {
			char c = hex[2 * i + k];
			v <<= 4;
			if (c >= '0' && c <= '9')
				v |= c - '0';
			else if (c >= 'a' && c <= 'f')
				v |= c - 'a' + 10;
			else
				return -1;
		}
		out[i] = (unsigned char)v;
	}
	return 0;
}

static int do_write(sqlite3 *db, void *arg)
{
	struct write_args *a = arg;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(
		    db,
		    "INSERT INTO message(folder_id, skey, state, size, idate, flags, hash, sink_id,"
		    " changes, reason, err_class, updated, rule, setting, subject, sender, hdate,"
		    " msgid, note) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
		    " ON CONFLICT(folder_id, skey) DO UPDATE SET state=excluded.state,"
		    " size=excluded.size, idate=excluded.idate, flags=excluded.flags,"
		    " hash=coalesce(excluded.hash, hash), sink_id=coalesce(excluded.sink_id, sink_id),"
		    " changes=excluded.changes, reason=excluded.reason, err_class=excluded.err_class,"
		    " updated=excluded.updated, rule=excluded.rule, setting=excluded.setting,"
		    " subject=excluded.subject, sender=excluded.sender, hdate=excluded.hdate,"
		    " msgid=excluded.msgid, note=excluded.note",
		    -1, &st, NULL) != SQLITE_OK)
		return sql_error(db);
	int rc = 0;
	int64_t t = now(), stored = 0, skipped = 0, failed = 0, outcomes = 0;
	uint64_t bytes = 0;
	for (size_t i = 0; i < a->n && rc == 0; i++) {
		const struct mf_ckpt_rec *r = &a->recs[i];
		unsigned char h[32];
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
		sqlite3_bind_int64(st, 1, a->folder_id);
		sqlite3_bind_text(st, 2, r->key, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 3, r->state);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)r->size);
		sqlite3_bind_int64(st, 5, r->idate);
		sqlite3_bind_int(st, 6, (int)r->flags);
		if (r->hash_hex && strlen(r->hash_hex) == 64 && unhex(r->hash_hex, h) == 0)
			sqlite3_bind_blob(st, 7, h, 32, SQLITE_TRANSIENT);
		if (r->sink_id)
			sqlite3_bind_text(st, 8, r->sink_id, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 9, (int)r->changes);
		if (r->reason)
			sqlite3_bind_text(st, 10, r->reason, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 11, r->err_class);
		sqlite3_bind_int64(st, 12, t);
		const char *text[] = {r->rule, r->setting, r->subject, r->sender,
				      r->hdate, r->msgid, r->note};
		for (int k = 0; k < 7; k++)
			if (text[k])
				sqlite3_bind_text(st, 13 + k, text[k], -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = sql_error(db);
		if (r->state == MF_MSG_PENDING)
			continue;
		outcomes++;
		stored += r->state == MF_MSG_STORED;
		bytes += r->state == MF_MSG_STORED ? r->size : 0;
		skipped += r->state == MF_MSG_SKIPPED;
		failed += r->state == MF_MSG_FAILED;
	}
	sqlite3_finalize(st);
	if (rc || !outcomes)
		return rc;
	/* one row per batch of outcomes: the report's throughput over time */
	if (sqlite3_prepare_v2(db,
			       "INSERT INTO batch(unit_id, t, stored, bytes, skipped, failed)"
			       " SELECT unit_id, ?2, ?3, ?4, ?5, ?6 FROM folder WHERE id=?1",
			       -1, &st, NULL) != SQLITE_OK)
		return sql_error(db);
	sqlite3_bind_int64(st, 1, a->folder_id);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)now_ms());
	sqlite3_bind_int64(st, 3, stored);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)bytes);
	sqlite3_bind_int64(st, 5, skipped);
	sqlite3_bind_int64(st, 6, failed);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = sql_error(db);
	sqlite3_finalize(st);
	return rc;
}

int mf_ckpt_write(struct mf_ckpt *ck, int64_t folder_id, const struct mf_ckpt_rec *recs,
		  size_t n, struct mf_err *err)
{
	if (!n)
		return 0;
	struct write_args a = {.folder_id = folder_id, .recs = recs, .n = n};
	return mf_ckpt_exec(ck, do_write, &a, err);
}

struct forget_args {
	int64_t folder_id;
	const char *const *keys;
	size_t n;
};

static int do_forget(sqlite3 *db, void *arg)
{
	struct forget_args *a = arg;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "DELETE FROM message WHERE folder_id=? AND skey=? AND state=?",
			       -1, &st, NULL) != SQLITE_OK)
		return sql_error(db);
	int rc = 0;
	for (size_t i = 0; i < a->n && rc == 0; i++) {
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, a->folder_id);
		sqlite3_bind_text(st, 2, a->keys[i], -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 3, MF_MSG_PENDING);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = sql_error(db);
	}
	sqlite3_finalize(st);
	return rc;
}

int mf_ckpt_forget_pending(struct mf_ckpt *ck, int64_t folder_id, const char *const *keys,
			   size_t n, struct mf_err *err)
{
	if (!n)
		return 0;
	struct forget_args a = {.folder_id = folder_id, .keys = keys, .n = n};
	return mf_ckpt_exec(ck, do_forget, &a, err);
}

int mf_ckpt_lookup_rows(struct mf_ckpt *ck, const char *unit_key, const char *path_key,
			const char *validity, mf_ckpt_row_cb cb, void *arg, struct mf_err *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(ck->db,
			       "SELECT m.skey, m.state, m.hash, m.rule, m.setting FROM message m"
			       " JOIN folder f ON"
			       " f.id = m.folder_id JOIN unit un ON un.id = f.unit_id"
			       " WHERE un.ukey=? AND f.path=? AND f.validity=?",
			       -1, &st, NULL) != SQLITE_OK)
		return mf_err_set(err, MF_ESTATE, "state database %s: %s", ck->path,
				  sqlite3_errmsg(ck->db));
	sqlite3_bind_text(st, 1, unit_key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, path_key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, validity, -1, SQLITE_STATIC);
	int rc = 0;
	while (rc == 0 && sqlite3_step(st) == SQLITE_ROW)
		rc = row_cb(st, cb, arg);
	sqlite3_finalize(st);
	return rc;
}

struct mark_args {
	struct mf_ckpt_missing *rows;
	size_t n;
	const char *reason;
	size_t marked;
};

static int do_mark(sqlite3 *db, void *arg)
{
	struct mark_args *a = arg;
	sqlite3_stmt *upd = NULL, *cur = NULL;
	int rc = 0;
	/* a row is changed only if it says stored or skipped: a pending or
	 * failed one is already in doubt for the next run. A skipped one (the
	 * target may refuse it, or a rule may have been relaxed) is tried again
	 * by the next run and decided by today's rules. */
	if (sqlite3_prepare_v2(db,
			       "UPDATE message SET state=?1, reason=?2 || coalesce('; was ' ||"
			       " CASE WHEN state=2 THEN 'skipped: ' || reason END, ''),"
			       " err_class=0, updated=?3"
			       " WHERE state IN (?4, ?9) AND skey=?5 AND folder_id=(SELECT f.id FROM"
			       " folder f JOIN unit u ON u.id=f.unit_id WHERE u.ukey=?6 AND f.path=?7"
			       " AND f.validity=?8)",
			       -1, &upd, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db,
			       "UPDATE folder SET cursor=NULL WHERE id=(SELECT f.id FROM folder f"
			       " JOIN unit u ON u.id=f.unit_id WHERE u.ukey=?1 AND f.path=?2 AND"
			       " f.validity=?3)",
			       -1, &cur, NULL) != SQLITE_OK) {
		rc = sql_error(db);
		goto out;
	}
	int64_t t = now();
	a->marked = 0;
	for (size_t i = 0; i < a->n && rc == 0; i++) {
		struct mf_ckpt_missing *m = &a->rows[i];
		m->marked = false;
		sqlite3_reset(upd);
		sqlite3_bind_int(upd, 1, MF_MSG_FAILED);
		sqlite3_bind_text(upd, 2, a->reason, -1, SQLITE_STATIC);
		sqlite3_bind_int64(upd, 3, t);
		sqlite3_bind_int(upd, 4, MF_MSG_STORED);
		sqlite3_bind_text(upd, 5, m->key, -1, SQLITE_STATIC);
		sqlite3_bind_text(upd, 6, m->unit_key, -1, SQLITE_STATIC);
		sqlite3_bind_text(upd, 7, m->path_key, -1, SQLITE_STATIC);
		sqlite3_bind_text(upd, 8, m->validity, -1, SQLITE_STATIC);
		sqlite3_bind_int(upd, 9, MF_MSG_SKIPPED);
		if (sqlite3_step(upd) != SQLITE_DONE) {
			rc = sql_error(db);
			break;
		}
		if (sqlite3_changes(db) != 0) {
			m->marked = true;
			a->marked++;
		}
		/* a source that lists from its cursor (IMAP UIDs) would not list
		 * this message again, marked or not (a message with no row) */
		sqlite3_reset(cur);
		sqlite3_bind_text(cur, 1, m->unit_key, -1, SQLITE_STATIC);
		sqlite3_bind_text(cur, 2, m->path_key, -1, SQLITE_STATIC);
		sqlite3_bind_text(cur, 3, m->validity, -1, SQLITE_STATIC);
		if (sqlite3_step(cur) != SQLITE_DONE)
			rc = sql_error(db);
	}
out:
	sqlite3_finalize(upd);
	sqlite3_finalize(cur);
	return rc;
}

int mf_ckpt_mark_missing(struct mf_ckpt *ck, struct mf_ckpt_missing *rows, size_t n,
			 const char *reason, size_t *marked, struct mf_err *err)
{
	struct mark_args a = {.rows = rows, .n = n, .reason = reason};
	*marked = 0;
	if (!n)
		return 0;
	int rc = mf_ckpt_exec(ck, do_mark, &a, err);
	if (rc < 0) {
		/* rolled back: nothing was marked */
		for (size_t i = 0; i < n; i++)
			rows[i].marked = false;
		return rc;
	}
	*marked = a.marked;
	return 0;
}
