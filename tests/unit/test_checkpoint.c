/* test_checkpoint.c - engine/checkpoint.c: the schema 1 -> 2 upgrade (an
 * old skip's rule is known from its reason, its setting is not), read-only
 * opens of a schema 1 database, skips recorded with their rule and setting,
 * first/last times of a unit, batch rows, and --repair's marking of skipped
 * rows. */
#include <sqlite3.h>
#include <stdint.h>
#include <unistd.h>

#include "engine/checkpoint.h"
#include "engine/util.h"
#include "test.h"

static char dir[512];

/* A state database as mailferry 1 wrote it: one unit, one folder with a
 * cursor, a stored message, one skipped as too big, one not mail. */
static const char v1[] =
	"CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"INSERT INTO meta VALUES('program','mailferry'),('schema','1'),('job','j');"
	"CREATE TABLE unit(id INTEGER PRIMARY KEY, ukey TEXT UNIQUE NOT NULL, mailbox TEXT NOT NULL,"
	" source TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'new', error TEXT, error_class TEXT,"
	" started INTEGER, finished INTEGER, runs INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE folder(id INTEGER PRIMARY KEY, unit_id INTEGER NOT NULL REFERENCES unit(id),"
	" path TEXT NOT NULL, validity TEXT NOT NULL, target TEXT NOT NULL, cursor TEXT,"
	" UNIQUE(unit_id, path, validity));"
	"CREATE TABLE message(folder_id INTEGER NOT NULL, skey TEXT NOT NULL, state INTEGER NOT NULL,"
	" size INTEGER NOT NULL DEFAULT 0, idate INTEGER NOT NULL DEFAULT 0,"
	" flags INTEGER NOT NULL DEFAULT 0, hash BLOB, sink_id TEXT,"
	" changes INTEGER NOT NULL DEFAULT 0, reason TEXT, err_class INTEGER NOT NULL DEFAULT 0,"
	" updated INTEGER NOT NULL, PRIMARY KEY(folder_id, skey)) WITHOUT ROWID;"
	"INSERT INTO unit VALUES(1,'u1','a@x','a','done',NULL,NULL,100,200,1);"
	"INSERT INTO folder VALUES(1,1,'INBOX','7','INBOX','12');"
	"INSERT INTO message(folder_id,skey,state,size,reason,updated) VALUES"
	" (1,'1',1,10,NULL,0),"
	" (1,'2',2,2000000,'too big: 2000000 bytes, the target takes at most 1048576',0),"
	" (1,'3',2,0,'not mail: contact',0);";

static void make_v1(const char *path)
{
	sqlite3 *db;
	unlink(path);
	CHECK(sqlite3_open(path, &db) == SQLITE_OK);
	CHECK(sqlite3_exec(db, v1, NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(db);
}

static const char *one_text(struct mf_ckpt *ck, const char *sql, char *buf, size_t size)
{
	sqlite3_stmt *st;
	buf[0] = '\0';
	if (sqlite3_prepare_v2(mf_ckpt_db(ck), sql, -1, &st, NULL) != SQLITE_OK) {
		snprintf(buf, size, "error: %s", sqlite3_errmsg(mf_ckpt_db(ck)));
		return buf;
	}
	if (sqlite3_step(st) == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(st, 0);
		snprintf(buf, size, "%s", t ? (const char *)t : "NULL");
	}
	sqlite3_finalize(st);
	return buf;
}

struct seen {
	char rule[3][32], setting[3][64];
	int n;
};

static int collect(void *arg, const struct mf_ckpt_row *r)
{
	struct seen *s = arg;
	int k = r->key[0] - '1';
	if (k >= 0 && k < 3) {
		snprintf(s->rule[k], sizeof(s->rule[k]), "%s", r->rule ? r->rule : "NULL");
		snprintf(s->setting[k], sizeof(s->setting[k]), "%s", r->setting ? r->setting : "NULL");
	}
	s->n++;
	return 0;
}

TEST(read_only_v1)
{
	char path[600], b[200];
	snprintf(path, sizeof(path), "%s/ro.db", dir);
	make_v1(path);
	struct mf_ckpt *ck = NULL;
	struct mf_err err = {0};
	CHECK_INT(mf_ckpt_open(path, "j", false, &ck, &err), 0);
	if (!ck) {
		fprintf(stderr, "%s\n", err.msg);
		return;
	}
	CHECK_STR(one_text(ck, "SELECT rule FROM message WHERE skey='2'", b, sizeof(b)), "too-big");
	CHECK_STR(one_text(ck, "SELECT rule FROM message WHERE skey='3'", b, sizeof(b)), "not-mail");
	CHECK_STR(one_text(ck, "SELECT coalesce(setting,'NULL') FROM message WHERE skey='2'", b,
			   sizeof(b)),
		  "NULL");
	CHECK_STR(one_text(ck, "SELECT first_started FROM unit", b, sizeof(b)), "100");
	CHECK_STR(one_text(ck, "SELECT count(*) FROM batch", b, sizeof(b)), "0");
	/* read-only: still schema 1 on disk */
	CHECK_STR(one_text(ck, "SELECT value FROM meta WHERE key='schema'", b, sizeof(b)), "1");
	mf_ckpt_close(ck);
}

TEST(upgrade_and_rules)
{
	char path[600], b[200];
	snprintf(path, sizeof(path), "%s/up.db", dir);
	make_v1(path);
	struct mf_ckpt *ck = NULL;
	struct mf_err err = {0};
	CHECK_INT(mf_ckpt_open(path, "j", true, &ck, &err), 0);
	if (!ck) {
		fprintf(stderr, "%s\n", err.msg);
		return;
	}
	CHECK_STR(one_text(ck, "SELECT value FROM meta WHERE key='schema'", b, sizeof(b)), "2");
	CHECK_STR(one_text(ck, "SELECT first_started || ',' || last_finished FROM unit", b,
			   sizeof(b)),
		  "100,200");
	struct seen s = {0};
	CHECK_INT(mf_ckpt_folder_rows(ck, 1, collect, &s, &err), 0);
	CHECK_INT(s.n, 3);
	CHECK_STR(s.rule[0], "NULL");
	CHECK_STR(s.rule[1], "too-big");
	CHECK_STR(s.setting[1], "NULL"); /* unknown: the run decides it again */
	CHECK_STR(s.rule[2], "not-mail");

	/* a skip recorded now carries its setting and the report's fields */
	struct mf_ckpt_rec rec = {.key = "2", .state = MF_MSG_SKIPPED, .size = 2000000,
				  .reason = "too-big: 1.9 MB > 1 MB", .rule = "too-big",
				  .setting = "max_message_bytes=1048576", .subject = "Hello",
				  .sender = "Ann <a@x>", .msgid = "<m@x>"};
	CHECK_INT(mf_ckpt_write(ck, 1, &rec, 1, &err), 0);
	memset(&s, 0, sizeof(s));
	CHECK_INT(mf_ckpt_folder_rows(ck, 1, collect, &s, &err), 0);
	CHECK_STR(s.setting[1], "max_message_bytes=1048576");
	CHECK_STR(one_text(ck, "SELECT subject || '|' || sender || '|' || msgid FROM message"
			       " WHERE skey='2'", b, sizeof(b)),
		  "Hello|Ann <a@x>|<m@x>");
	CHECK_STR(one_text(ck, "SELECT count(*) || ',' || sum(skipped) FROM batch", b, sizeof(b)),
		  "1,1");

	/* a run that did nothing keeps last_finished; first_started stays */
	struct mf_unit u = {.id = "u1", .mailbox = "a@x", .source_desc = "a"};
	int64_t uid = 0;
	CHECK_INT(mf_ckpt_unit_begin(ck, &u, &uid, &err), 0);
	CHECK_INT(uid, 1);
	CHECK_INT(mf_ckpt_unit_end(ck, uid, "done", NULL, false, &err), 0);
	CHECK_STR(one_text(ck, "SELECT first_started || ',' || last_finished FROM unit", b,
			   sizeof(b)),
		  "100,200");
	CHECK_STR(one_text(ck, "SELECT runs FROM unit", b, sizeof(b)), "2");
	CHECK_INT(mf_ckpt_unit_end(ck, uid, "done", NULL, true, &err), 0);
	CHECK(strcmp(one_text(ck, "SELECT last_finished FROM unit", b, sizeof(b)), "200") != 0);

	/* --repair: the skipped row becomes failed (tried again), the cursor goes */
	struct mf_ckpt_missing miss[] = {
		{.unit_key = "u1", .path_key = "INBOX", .validity = "7", .key = "2"},
		{.unit_key = "u1", .path_key = "INBOX", .validity = "7", .key = "9"},
	};
	size_t marked = 0;
	CHECK_INT(mf_ckpt_mark_missing(ck, miss, 2, "missing", &marked, &err), 0);
	CHECK_INT(marked, 1);
	CHECK(miss[0].marked && !miss[1].marked);
	CHECK_STR(one_text(ck, "SELECT state || ':' || reason FROM message WHERE skey='2'", b,
			   sizeof(b)),
		  "3:missing; was skipped: too-big: 1.9 MB > 1 MB");
	CHECK_STR(one_text(ck, "SELECT coalesce(cursor,'NULL') FROM folder", b, sizeof(b)), "NULL");
	mf_ckpt_close(ck);

	/* and it opens again as schema 2 */
	CHECK_INT(mf_ckpt_open(path, "j", false, &ck, &err), 0);
	mf_ckpt_close(ck);
}

int main(void)
{
	const char *base = getenv("MF_TMP");
	snprintf(dir, sizeof(dir), "%s/test_checkpoint", base ? base : "/tmp");
	if (mf_mkdirs(dir) < 0) {
		fprintf(stderr, "cannot create %s\n", dir);
		return 1;
	}
	RUN(read_only_v1);
	RUN(upgrade_and_rules);
	return test_done();
}
