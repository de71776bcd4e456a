/* test_maildir.c - the Maildir sink: names and escaping, store/probe/hashes
 * round trip, determinism, flags, mtime, path traversal, crash leftovers.
 *
 * Also a helper for the integration scripts:
 *   test_maildir --fixture DIR   write the sample mailbox "alice" under DIR
 *   test_maildir --enospc DIR    store into DIR (a tiny filesystem) until it
 *                                is full; exit 0 if the error is right
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/conf.h"
#include "engine/drivers.h"
#include "engine/util.h"
#include "sinks/maildir/maildir.h"
#include "test.h"

static char g_tmp[PATH_MAX];

/* --- helpers ------------------------------------------------------------------ */

static char *folder_name(const char *const *segs, size_t n, enum mf_role role, int *rc)
{
	struct mf_path p;
	struct mf_err err = {0};
	char *out = NULL;
	mf_path_init(&p);
	for (size_t i = 0; i < n; i++)
		mf_path_push(&p, segs[i], strlen(segs[i]));
	*rc = mf_maildir_folder_name(&p, role, &out, &err);
	mf_path_free(&p);
	return out;
}

static char *seg_name(const char *seg)
{
	int rc;
	return folder_name(&seg, 1, MF_ROLE_NONE, &rc);
}

/* Undo the %XX escaping of one component. */
static void unescape(const char *in, char *out, size_t size)
{
	size_t o = 0;
	for (size_t i = 0; in[i] && o + 1 < size; i++) {
		if (in[i] == '%' && in[i + 1] && in[i + 2]) {
			char h[3] = {in[i + 1], in[i + 2], 0};
			out[o++] = (char)strtol(h, NULL, 16);
			i += 2;
		} else {
			out[o++] = in[i];
		}
	}
	out[o] = '\0';
}

static void rm_rf(const char *path)
{
	DIR *d = opendir(path);
	if (d) {
		struct dirent *de;
		while ((de = readdir(d))) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			char sub[PATH_MAX];
			snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
			rm_rf(sub);
		}
		closedir(d);
		rmdir(path);
	} else {
		unlink(path);
	}
}

static void setup_tmp(void)
{
	const char *t = getenv("MF_TMP");
	snprintf(g_tmp, sizeof(g_tmp), "%s/maildir", t && *t ? t : "/tmp/mf-test");
	rm_rf(g_tmp);
	mf_mkdirs(g_tmp);
}

/* A [sink] section with path = `path`, relative to dir. */
struct sect {
	struct mf_conf_section s;
	struct mf_conf_kv kv[2];
};

static void make_sect(struct sect *x, const char *dir, const char *path, const char *fsync)
{
	memset(x, 0, sizeof(*x));
	x->kv[0] = (struct mf_conf_kv){.key = "path", .value = (char *)path, .line = 2};
	x->kv[1] = (struct mf_conf_kv){.key = "fsync", .value = (char *)fsync, .line = 3};
	x->s = (struct mf_conf_section){.file = "test.ini",
					.dir = dir,
					.name = "sink",
					.line = 1,
					.n = fsync ? 2 : 1,
					.kv = x->kv};
}

struct env {
	void *cfg;
	void *snk;
	struct mf_unit unit;
};

static int env_open_fs(struct env *e, const char *dir, const char *rel, const char *mailbox,
		       const char *fsync)
{
	struct sect x;
	struct mf_err err = {0};
	memset(e, 0, sizeof(*e));
	make_sect(&x, dir, rel, fsync);
	int rc = mf_sink_maildir.configure(&x.s, &e->cfg, &err);
	if (rc < 0) {
		fprintf(stderr, "configure: %s\n", err.msg);
		return rc;
	}
	e->unit.mailbox = (char *)mailbox;
	e->unit.id = (char *)mailbox;
	rc = mf_sink_maildir.open(e->cfg, &e->unit, &e->snk, &err);
	if (rc < 0)
		fprintf(stderr, "open: %s\n", err.msg);
	return rc;
}

static int env_open(struct env *e, const char *dir, const char *rel, const char *mailbox)
{
	return env_open_fs(e, dir, rel, mailbox, "yes");
}

static void env_close(struct env *e)
{
	if (e->snk)
		mf_sink_maildir.close(e->snk);
	if (e->cfg)
		mf_sink_maildir.free_config(e->cfg);
}

static void *env_folder(struct env *e, const char *const *segs, size_t n, enum mf_role role)
{
	struct mf_path p;
	struct mf_err err = {0};
	void *fh = NULL;
	mf_path_init(&p);
	for (size_t i = 0; i < n; i++)
		mf_path_push(&p, segs[i], strlen(segs[i]));
	int rc = mf_sink_maildir.folder(e->snk, &p, role, &fh, &err);
	if (rc < 0)
		fprintf(stderr, "folder: %s\n", err.msg);
	mf_path_free(&p);
	return rc < 0 ? NULL : fh;
}

struct msg {
	char text[512];
	unsigned char sha[MF_SHA256_LEN];
	char hex[2 * MF_SHA256_LEN + 1];
	char idem[33];
	struct mf_item item;
};

static void make_msg(struct msg *m, int n, int64_t idate, unsigned flags)
{
	snprintf(m->text, sizeof(m->text),
		 "From: a@example.com\nTo: b@example.com\nSubject: message %d\n"
		 "Message-ID: <%d@example.com>\n\nBody of message %d.\n",
		 n, n, n);
	size_t len = strlen(m->text);
	mf_sha256(m->text, len, m->sha);
	mf_hex(m->sha, MF_SHA256_LEN, m->hex);
	unsigned char k[MF_SHA256_LEN];
	char kin[32];
	snprintf(kin, sizeof(kin), "key-%d", n);
	mf_sha256(kin, strlen(kin), k);
	mf_hex(k, 16, m->idem);
	m->item = (struct mf_item){.data = (const unsigned char *)m->text,
				   .len = len,
				   .sha256 = m->sha,
				   .hash_hex = m->hex,
				   .idem = m->idem,
				   .idate = idate,
				   .flags = flags};
}

static int store(struct env *e, void *fh, struct msg *m, char id[MF_SINK_ID_MAX])
{
	struct mf_err err = {0};
	int rc = mf_sink_maildir.store(e->snk, fh, &m->item, id, &err);
	if (rc < 0)
		fprintf(stderr, "store: %s\n", err.msg);
	return rc;
}

static int probe(struct env *e, void *fh, struct msg *m, char id[MF_SINK_ID_MAX])
{
	struct mf_err err = {0};
	return mf_sink_maildir.probe(e->snk, fh, &m->item, id, &err);
}

/* Names in a directory, sorted, joined with '\n' into out. Returns count. */
static int cmp_s(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int list_dir(const char *dir, char *out, size_t size)
{
	char *names[256];
	int n = 0;
	out[0] = '\0';
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	struct dirent *de;
	while ((de = readdir(d)) && n < 256) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		names[n++] = strdup(de->d_name);
	}
	closedir(d);
	qsort(names, (size_t)n, sizeof(*names), cmp_s);
	size_t o = 0;
	for (int i = 0; i < n; i++) {
		int w = snprintf(out + o, size - o, "%s\n", names[i]);
		if (w > 0 && (size_t)w < size - o)
			o += (size_t)w;
		free(names[i]);
	}
	return n;
}

/* Walk `dir`; check every entry's realpath lies under `root`. Returns the
 * number of entries seen, or -1 when one escapes. */
static int walk_under(const char *dir, const char *root)
{
	int count = 0;
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char sub[PATH_MAX], real[PATH_MAX];
		snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name);
		if (!realpath(sub, real) || strncmp(real, root, strlen(root)) != 0 ||
		    real[strlen(root)] != '/') {
			fprintf(stderr, "escaped: %s -> %s\n", sub, real);
			closedir(d);
			return -1;
		}
		count++;
		struct stat st;
		if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode)) {
			int c = walk_under(sub, root);
			if (c < 0) {
				closedir(d);
				return -1;
			}
			count += c;
		}
	}
	closedir(d);
	return count;
}

/* --- name rules --------------------------------------------------------------- */

TEST(escape_segments)
{
	char *s;
	s = seg_name("Projects");
	CHECK_STR(s, ".Projects");
	free(s);
	s = seg_name("a.b");
	CHECK_STR(s, ".a%2Eb");
	free(s);
	s = seg_name("50%");
	CHECK_STR(s, ".50%25");
	free(s);
	s = seg_name("a/b");
	CHECK_STR(s, ".a%2Fb");
	free(s);
	s = seg_name("..");
	CHECK_STR(s, ".%2E%2E");
	free(s);
	s = seg_name(".");
	CHECK_STR(s, ".%2E");
	free(s);
	s = seg_name(".hidden");
	CHECK_STR(s, ".%2Ehidden");
	free(s);
	s = seg_name("../../etc");
	CHECK_STR(s, ".%2E%2E%2F%2E%2E%2Fetc");
	free(s);
	s = seg_name("tab\there\n");
	CHECK_STR(s, ".tab%09here%0A");
	free(s);
	s = seg_name("del\x7f");
	CHECK_STR(s, ".del%7F");
	free(s);
	s = seg_name("tmp");
	CHECK_STR(s, ".tmp");
	free(s);
	s = seg_name("new");
	CHECK_STR(s, ".new");
	free(s);
	s = seg_name("cur");
	CHECK_STR(s, ".cur");
	free(s);
	s = seg_name("Caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa7");
	CHECK_STR(s, ".Caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa7");
	free(s);
	/* invalid UTF-8: lone continuation, overlong '/', truncated sequence,
	 * surrogate */
	s = seg_name("a\x80z");
	CHECK_STR(s, ".a%80z");
	free(s);
	s = seg_name("\xc0\xaf");
	CHECK_STR(s, ".%C0%AF");
	free(s);
	s = seg_name("x\xe2\x82");
	CHECK_STR(s, ".x%E2%82");
	free(s);
	s = seg_name("\xed\xa0\x80");
	CHECK_STR(s, ".%ED%A0%80");
	free(s);
	/* '&', '*', spaces are fine for Dovecot with :UTF-8 */
	s = seg_name("R&D * x");
	CHECK_STR(s, ".R&D * x");
	free(s);
	/* nested: one component, '.' between levels */
	const char *nested[] = {"A", "b.c", "D"};
	int rc;
	s = folder_name(nested, 3, MF_ROLE_NONE, &rc);
	CHECK_STR(s, ".A.b%2Ec.D");
	free(s);
	/* an empty segment is refused rather than mapped to "." */
	const char *empty[] = {"A", ""};
	s = folder_name(empty, 2, MF_ROLE_NONE, &rc);
	CHECK(s == NULL);
	CHECK_INT(rc, MF_EFOLDER);
}

TEST(escape_is_reversible)
{
	const char *names[] = {"a.b", "50%", "%2E", "x/y/..", "\x01\x1f", "Caf\xc3\xa9.\xff",
			       ".",   "..",  "...", "tmp",    "%%"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char *s = seg_name(names[i]), back[256];
		CHECK(s && s[0] == '.');
		CHECK(strchr(s + 1, '.') == NULL);
		CHECK(strchr(s, '/') == NULL);
		unescape(s + 1, back, sizeof(back));
		CHECK_STR(back, names[i]);
		free(s);
	}
}

TEST(roles_and_inbox)
{
	int rc;
	const char *sent[] = {"Sent Items"}, *inbox[] = {"Posteingang"}, *del[] = {"Deleted"};
	char *s;
	s = folder_name(sent, 1, MF_ROLE_SENT, &rc);
	CHECK_STR(s, ".Sent");
	free(s);
	s = folder_name(inbox, 1, MF_ROLE_INBOX, &rc);
	CHECK_STR(s, "");
	free(s);
	s = folder_name(del, 1, MF_ROLE_TRASH, &rc);
	CHECK_STR(s, ".Trash");
	free(s);
	s = folder_name(del, 1, MF_ROLE_JUNK, &rc);
	CHECK_STR(s, ".Junk");
	free(s);
	s = folder_name(del, 1, MF_ROLE_DRAFTS, &rc);
	CHECK_STR(s, ".Drafts");
	free(s);
	s = folder_name(del, 1, MF_ROLE_ARCHIVE, &rc);
	CHECK_STR(s, ".Archive");
	free(s);
	s = folder_name(NULL, 0, MF_ROLE_NONE, &rc);
	CHECK_STR(s, "");
	free(s);
	const char *in1[] = {"inbox"}, *in2[] = {"Inbox", "Sub.x"};
	s = folder_name(in1, 1, MF_ROLE_NONE, &rc);
	CHECK_STR(s, "");
	free(s);
	s = folder_name(in2, 2, MF_ROLE_NONE, &rc);
	CHECK_STR(s, ".INBOX.Sub%2Ex");
	free(s);
	/* roles apply at the top level only */
	const char *deep[] = {"X", "Sent Items"};
	s = folder_name(deep, 2, MF_ROLE_SENT, &rc);
	CHECK_STR(s, ".X.Sent Items");
	free(s);
	/* "INBOX" deeper down is an ordinary name */
	const char *deep2[] = {"X", "INBOX"};
	s = folder_name(deep2, 2, MF_ROLE_NONE, &rc);
	CHECK_STR(s, ".X.INBOX");
	free(s);
}

TEST(long_names)
{
	char big[400], big2[400];
	memset(big, 'x', 300);
	big[300] = '\0';
	memcpy(big2, big, 301);
	big2[299] = 'y';
	char *a = seg_name(big), *b = seg_name(big), *c = seg_name(big2);
	CHECK(a && strlen(a) == MF_MAILDIR_NAME_MAX);
	CHECK(a && b && strcmp(a, b) == 0); /* deterministic */
	CHECK(a && c && strcmp(a, c) != 0); /* distinct */
	CHECK(a && strchr(a, '~') && strlen(strchr(a, '~')) == 17);
	free(a), free(b), free(c);
	/* multi-byte characters and escapes are never cut in half */
	char u[400] = "";
	for (int i = 0; i < 130; i++)
		memcpy(u + 2 * i, "\xc3\xa9", 3);
	a = seg_name(u);
	CHECK(a && strlen(a) <= MF_MAILDIR_NAME_MAX);
	size_t tl = a ? strlen(a) - 17 : 0;
	CHECK(a && ((unsigned char)a[tl - 1] == 0xA9));
	free(a);
	char d[400];
	memset(d, '.', 200);
	d[200] = '\0';
	a = seg_name(d);
	CHECK(a && strlen(a) <= MF_MAILDIR_NAME_MAX);
	tl = a ? strlen(a) - 17 : 0;
	CHECK(a && tl >= 4 && a[tl - 3] == '%' && a[tl - 2] == '2' && a[tl - 1] == 'E');
	free(a);
	/* a path nested too deep to fit is refused, not truncated silently */
	const char *segs[40];
	for (int i = 0; i < 40; i++)
		segs[i] = "twenty-characters-xx";
	int rc;
	a = folder_name(segs, 11, MF_ROLE_NONE, &rc);
	CHECK(a && strlen(a) <= MF_MAILDIR_NAME_MAX && rc == 0);
	free(a);
	a = folder_name(segs, 40, MF_ROLE_NONE, &rc);
	CHECK(a == NULL);
	CHECK_INT(rc, MF_EFOLDER);
	/* mailbox component */
	char *m = NULL;
	struct mf_err err = {0};
	char lm[600];
	memset(lm, 'm', 599);
	lm[599] = '\0';
	CHECK_INT(mf_maildir_mailbox_name(lm, &m, &err), 0);
	CHECK(m && strlen(m) == MF_MAILDIR_NAME_MAX);
	free(m);
}

TEST(mailbox_names)
{
	struct mf_err err = {0};
	char *m = NULL;
	struct {
		const char *in, *out;
	} cases[] = {
	    {"alice@example.com", "alice@example.com"},
	    {"a.b@example.com", "a.b@example.com"},
	    {".", "%2E"},
	    {"..", "%2E."},
	    {"../etc", "%2E.%2Fetc"},
	    {"/abs", "%2Fabs"},
	    {".hidden", "%2Ehidden"},
	    {"a\nb", "a%0Ab"},
	    {"100%", "100%25"},
	    {"J\xc3\xb6rg", "J\xc3\xb6rg"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		CHECK_INT(mf_maildir_mailbox_name(cases[i].in, &m, &err), 0);
		CHECK_STR(m, cases[i].out);
		free(m);
	}
	CHECK_INT(mf_maildir_mailbox_name("", &m, &err), MF_EMAILBOX);
}

TEST(flag_letters)
{
	char info[8];
	mf_maildir_flag_info(0, info);
	CHECK_STR(info, "2,");
	mf_maildir_flag_info(MF_FLAG_SEEN | MF_FLAG_FLAGGED | MF_FLAG_ANSWERED | MF_FLAG_DRAFT |
				 MF_FLAG_DELETED,
			     info);
	CHECK_STR(info, "2,DFRST");
	mf_maildir_flag_info(MF_FLAG_DELETED | MF_FLAG_SEEN, info);
	CHECK_STR(info, "2,ST");
	mf_maildir_flag_info(MF_FLAG_ANSWERED | MF_FLAG_FLAGGED, info);
	CHECK_STR(info, "2,FR");
	char base[MF_SINK_ID_MAX];
	mf_maildir_base_name(1700000000, "0123456789abcdef0123456789abcdef", base, sizeof(base));
	CHECK_STR(base, "1700000000.M0123456789abcdef0123456789abcdef.mailferry");
	mf_maildir_base_name(-5, "ab", base, sizeof(base));
	CHECK_STR(base, "0.Mab.mailferry");
}

/* --- the sink on disk --------------------------------------------------------- */

static int cb(void *arg, const char *hex)
{
	struct mf_buf *b = arg;
	mf_buf_addstr(b, hex);
	mf_buf_addstr(b, "\n");
	return 0;
}

TEST(registered)
{
	/* mf_sinks[] directly: linking mf_sink_find alone from a test trips the
	 * static-library order (drivers.c sits in mf_core before mf_engine). */
	const struct mf_sink_ops *found = NULL;
	for (size_t i = 0; mf_sinks[i]; i++)
		if (strcmp(mf_sinks[i]->name, "maildir") == 0)
			found = mf_sinks[i];
	CHECK(found == &mf_sink_maildir);
	struct mf_sink_caps caps;
	memset(&caps, 0xff, sizeof(caps));
	mf_sink_maildir.caps(NULL, &caps);
	CHECK(!caps.crlf && caps.max_line == 0 && caps.max_message_bytes == 0 &&
	      !caps.needs_message_id);
}

TEST(configure_errors)
{
	struct sect x;
	struct mf_err err = {0};
	void *cfg = NULL;
	make_sect(&x, g_tmp, "out", "maybe");
	CHECK_INT(mf_sink_maildir.configure(&x.s, &cfg, &err), MF_ECONFIG);
	CHECK(strstr(err.msg, "fsync") != NULL);
	CHECK(cfg == NULL);
	make_sect(&x, g_tmp, "out", "no");
	x.s.n = 0;
	CHECK_INT(mf_sink_maildir.configure(&x.s, &cfg, &err), MF_ECONFIG);
	CHECK(strstr(err.msg, "path") != NULL);
}

TEST(store_probe_hashes)
{
	struct env e;
	char dir[PATH_MAX], id[MF_SINK_ID_MAX], id2[MF_SINK_ID_MAX];
	snprintf(dir, sizeof(dir), "%s/rt", g_tmp);
	mf_mkdirs(dir);
	CHECK_INT(env_open(&e, dir, "out", "alice@example.com"), 0);
	void *inbox = env_folder(&e, NULL, 0, MF_ROLE_INBOX);
	CHECK(inbox != NULL);
	if (!inbox)
		goto out;
	struct msg m[4];
	make_msg(&m[0], 0, 1700000000, MF_FLAG_SEEN | MF_FLAG_FLAGGED);
	make_msg(&m[1], 1, 1600000000, 0);
	make_msg(&m[2], 2, 0, MF_FLAG_DELETED | MF_FLAG_DRAFT);
	make_msg(&m[3], 3, 1500000000, MF_FLAG_ANSWERED);
	for (int i = 0; i < 3; i++) {
		CHECK_INT(probe(&e, inbox, &m[i], id), 0);
		CHECK_INT(store(&e, inbox, &m[i], id), 0);
		CHECK_INT(probe(&e, inbox, &m[i], id2), 1);
		CHECK_STR(id2, id);
	}
	char expect[MF_SINK_ID_MAX];
	mf_maildir_base_name(1700000000, m[0].idem, expect, sizeof(expect));
	CHECK_INT(probe(&e, inbox, &m[0], id), 1);
	CHECK_STR(id, expect);

	char path[PATH_MAX], listing[4096];
	snprintf(path, sizeof(path), "%s/out/alice@example.com/cur", dir);
	CHECK_INT(list_dir(path, listing, sizeof(listing)), 3);
	char want[1024];
	snprintf(want, sizeof(want),
		 "0.M%s.mailferry:2,DT\n1600000000.M%s.mailferry:2,\n"
		 "1700000000.M%s.mailferry:2,FS\n",
		 m[2].idem, m[1].idem, m[0].idem);
	CHECK_STR(listing, want);
	/* content and mtime */
	snprintf(path, sizeof(path), "%s/out/alice@example.com/cur/%s:2,FS", dir, expect);
	struct stat st; /* before reading it, which may move atime */
	CHECK_INT(stat(path, &st), 0);
	CHECK_INT(st.st_mtime, 1700000000);
	CHECK_INT(st.st_atime, 1700000000);
	char *data = NULL;
	size_t len = 0;
	CHECK_INT(mf_read_file(path, 1 << 20, &data, &len), 0);
	CHECK(data && len == m[0].item.len && memcmp(data, m[0].text, len) == 0);
	free(data);
	/* nothing left in tmp/, nothing in new/ */
	snprintf(path, sizeof(path), "%s/out/alice@example.com/tmp", dir);
	CHECK_INT(list_dir(path, listing, sizeof(listing)), 0);

	/* storing the same item again makes no duplicate */
	CHECK_INT(store(&e, inbox, &m[0], id), 0);
	CHECK_STR(id, expect);
	snprintf(path, sizeof(path), "%s/out/alice@example.com/cur", dir);
	CHECK_INT(list_dir(path, listing, sizeof(listing)), 3);

	/* hashes: one per file, equal to the SHA-256 of what was stored */
	struct mf_buf got = {0};
	struct mf_err err = {0};
	CHECK_INT(mf_sink_maildir.hashes(e.snk, inbox, cb, &got, &err), 0);
	CHECK(got.data && strstr(got.data, m[0].hex) && strstr(got.data, m[1].hex) &&
	      strstr(got.data, m[2].hex) && !strstr(got.data, m[3].hex));
	CHECK_INT(got.len, 3 * 65);
	mf_buf_free(&got);
	env_close(&e);

	/* a new session: flags changed by a reader, a message in new/; probe
	 * still finds them by base name; m[3] is not there */
	CHECK_INT(env_open(&e, dir, "out", "alice@example.com"), 0);
	inbox = env_folder(&e, NULL, 0, MF_ROLE_INBOX);
	char from[PATH_MAX], to[PATH_MAX];
	snprintf(from, sizeof(from), "%s/out/alice@example.com/cur/%s:2,FS", dir, expect);
	snprintf(to, sizeof(to), "%s/out/alice@example.com/cur/%s:2,RS", dir, expect);
	CHECK_INT(rename(from, to), 0);
	mf_maildir_base_name(1500000000, m[3].idem, expect, sizeof(expect));
	CHECK_INT(probe(&e, inbox, &m[3], id), 0);
	env_close(&e);
	CHECK_INT(env_open(&e, dir, "out", "alice@example.com"), 0);
	inbox = env_folder(&e, NULL, 0, MF_ROLE_INBOX);
	snprintf(to, sizeof(to), "%s/out/alice@example.com/new/%s,S=99", dir, expect);
	int fd = open(to, O_WRONLY | O_CREAT, 0600);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
	CHECK_INT(probe(&e, inbox, &m[0], id), 1);
	CHECK_INT(probe(&e, inbox, &m[3], id), 1);
	CHECK_STR(id, expect);
out:
	env_close(&e);
}

/* Write the same messages into two roots: same names, same bytes. */
static void write_set(const char *dir, const char *rel, const char *fsync)
{
	struct env e;
	if (env_open_fs(&e, dir, rel, "bob", fsync) < 0)
		return;
	const char *f1[] = {"Projects", "2024"}, *f2[] = {"Sent Items"};
	void *a = env_folder(&e, f1, 2, MF_ROLE_NONE), *b = env_folder(&e, f2, 1, MF_ROLE_SENT);
	char id[MF_SINK_ID_MAX];
	for (int i = 0; i < 5 && a && b; i++) {
		struct msg m;
		make_msg(&m, 10 + i, 1650000000 + i, (unsigned)i);
		store(&e, i % 2 ? a : b, &m, id);
	}
	env_close(&e);
}

TEST(deterministic)
{
	char d1[PATH_MAX], d2[PATH_MAX], l1[4096], l2[4096];
	snprintf(d1, sizeof(d1), "%s/det1", g_tmp);
	snprintf(d2, sizeof(d2), "%s/det2", g_tmp);
	mf_mkdirs(d1);
	mf_mkdirs(d2);
	write_set(d1, "out", "yes");
	write_set(d2, "out", "no"); /* fsync changes durability, not the result */
	const char *sub[] = {"/out/bob", "/out/bob/.Projects.2024/cur", "/out/bob/.Sent/cur",
			     "/out/bob/.Projects/cur"};
	for (size_t i = 0; i < 4; i++) {
		char p1[PATH_MAX], p2[PATH_MAX];
		snprintf(p1, sizeof(p1), "%s%s", d1, sub[i]);
		snprintf(p2, sizeof(p2), "%s%s", d2, sub[i]);
		int n1 = list_dir(p1, l1, sizeof(l1)), n2 = list_dir(p2, l2, sizeof(l2));
		CHECK(n1 >= 0);
		CHECK_INT(n1, n2);
		CHECK_STR(l1, l2);
		/* same bytes in every message file */
		for (char *name = l1; i > 0 && *name;) {
			char *nl = strchr(name, '\n'), f1[PATH_MAX], f2[PATH_MAX];
			*nl = '\0';
			snprintf(f1, sizeof(f1), "%s/%s", p1, name);
			snprintf(f2, sizeof(f2), "%s/%s", p2, name);
			char *b1 = NULL, *b2 = NULL;
			size_t s1 = 0, s2 = 0;
			CHECK_INT(mf_read_file(f1, 1 << 20, &b1, &s1), 0);
			CHECK_INT(mf_read_file(f2, 1 << 20, &b2, &s2), 0);
			CHECK(b1 && b2 && s1 == s2 && memcmp(b1, b2, s1) == 0);
			free(b1);
			free(b2);
			name = nl + 1;
		}
	}
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/out/bob", d1);
	list_dir(p, l1, sizeof(l1));
	CHECK_STR(l1, ".Projects\n.Projects.2024\n.Sent\ncur\nnew\nsubscriptions\ntmp\n");
	snprintf(p, sizeof(p), "%s/out/bob/.Projects.2024/cur", d1);
	CHECK_INT(list_dir(p, l1, sizeof(l1)), 2);
	snprintf(p, sizeof(p), "%s/out/bob/.Projects/maildirfolder", d1);
	CHECK_INT(access(p, F_OK), 0);
	snprintf(p, sizeof(p), "%s/out/bob/subscriptions", d1);
	char *data = NULL;
	size_t len;
	CHECK_INT(mf_read_file(p, 4096, &data, &len), 0);
	CHECK_STR(data, "V\t2\n\nProjects\nProjects\t2024\nSent\n");
	free(data);
}

/* Every hostile folder name: each lands in its own directory, and nothing
 * is created outside the root. */
TEST(no_path_traversal)
{
	char jail[PATH_MAX], root[PATH_MAX], real[PATH_MAX], listing[8192];
	snprintf(jail, sizeof(jail), "%s/jail", g_tmp);
	mf_mkdirs(jail);
	struct env e;
	/* the mailbox name itself is hostile too */
	CHECK_INT(env_open(&e, jail, "root", "../../escape"), 0);
	snprintf(root, sizeof(root), "%s/root", jail);
	CHECK(realpath(root, real) != NULL);
	const char *evil[][3] = {
	    {"..", NULL},	  {".", NULL},		{"../..", NULL},    {"/etc/passwd", NULL},
	    {"a/../../..", NULL}, {"..", ".."},		{".", "..", ".."},  {"x\nnew", NULL},
	    {"tmp", NULL},	  {"new", NULL},	{"cur", NULL},	    {"cur", "tmp"},
	    {".hidden", NULL},	  {"...", NULL},	{"a.b", NULL},	    {"a", "b"},
	    {"%2E%2E", NULL},	  {"\x01\x02", NULL},	{"\xff\xfe", NULL}, {"INBOX", ".."},
	    {"Inbox", "cur"},	  {"sub\\..\\x", NULL},
	};
	size_t nevil = sizeof(evil) / sizeof(evil[0]);
	char id[MF_SINK_ID_MAX];
	void *handles[64];
	for (size_t i = 0; i < nevil; i++) {
		size_t n = 0;
		while (n < 3 && evil[i][n])
			n++;
		handles[i] = env_folder(&e, evil[i], n, MF_ROLE_NONE);
		CHECK(handles[i] != NULL);
		if (!handles[i])
			continue;
		struct msg m;
		make_msg(&m, 100 + (int)i, 1700000000, MF_FLAG_SEEN);
		CHECK_INT(store(&e, handles[i], &m, id), 0);
	}
	/* a NUL inside a segment cannot reach us (segments are C strings);
	 * a 300-byte segment is shortened, below a 200-byte parent too */
	char big[301], mid[201];
	memset(big, 'z', 300);
	big[300] = '\0';
	memset(mid, 'm', 200);
	mid[200] = '\0';
	const char *bigp[] = {big}, *deep[] = {mid, big}, *toodeep[] = {big, big};
	CHECK(env_folder(&e, bigp, 1, MF_ROLE_NONE) != NULL);
	CHECK(env_folder(&e, deep, 2, MF_ROLE_NONE) != NULL);
	/* a child of a 255-byte name cannot fit Maildir++: the folder fails
	 * (class FOLDER) instead of landing somewhere else */
	void *fh = NULL;
	struct mf_err err = {0};
	struct mf_path tp;
	mf_path_init(&tp);
	mf_path_push(&tp, toodeep[0], 300);
	mf_path_push(&tp, toodeep[1], 300);
	CHECK_INT(mf_sink_maildir.folder(e.snk, &tp, MF_ROLE_NONE, &fh, &err), MF_EFOLDER);
	CHECK_INT(mf_err_class(MF_EFOLDER), MF_CLASS_FOLDER);
	mf_path_free(&tp);
	env_close(&e);
	/* nothing but root/ in the jail, and nothing under root escapes it */
	CHECK_INT(list_dir(jail, listing, sizeof(listing)), 1);
	CHECK_STR(listing, "root\n");
	CHECK_INT(list_dir(root, listing, sizeof(listing)), 1);
	CHECK_STR(listing, "%2E.%2F..%2Fescape\n");
	int n = walk_under(root, real);
	CHECK(n > 0);
	/* each hostile name got its own message: no two folders collapsed
	 * into one (the INBOX/.. case is a child of INBOX) */
	char mb[PATH_MAX];
	snprintf(mb, sizeof(mb), "%s/%%2E.%%2F..%%2Fescape", root);
	int dirs = list_dir(mb, listing, sizeof(listing));
	/* cur new tmp subscriptions + .z..(2) + one per hostile path + the
	 * parents created for the nested ones (.a, .cur, ".%2E%2E" already
	 * counted, .%2E for {".","..",".."} and .%2E.%2E%2E) */
	CHECK(dirs >= (int)nevil + 4);
	for (size_t i = 0; i < nevil; i++) {
		if (!handles[i])
			continue;
		struct msg m;
		make_msg(&m, 100 + (int)i, 1700000000, MF_FLAG_SEEN);
		struct env e2;
		CHECK_INT(env_open(&e2, jail, "root", "../../escape"), 0);
		size_t k = 0;
		while (k < 3 && evil[i][k])
			k++;
		void *fh2 = env_folder(&e2, evil[i], k, MF_ROLE_NONE);
		char got[MF_SINK_ID_MAX];
		struct mf_buf hs = {0};
		struct mf_err err2 = {0};
		CHECK_INT(probe(&e2, fh2, &m, got), 1);
		CHECK_INT(mf_sink_maildir.hashes(e2.snk, fh2, cb, &hs, &err2), 0);
		CHECK_INT(hs.len, 65); /* exactly this folder's one message */
		mf_buf_free(&hs);
		env_close(&e2);
	}
}

TEST(tmp_leftovers_removed)
{
	char dir[PATH_MAX], p[PATH_MAX], listing[1024];
	snprintf(dir, sizeof(dir), "%s/leftover", g_tmp);
	mf_mkdirs(dir);
	struct env e;
	const char *f[] = {"Work"};
	CHECK_INT(env_open(&e, dir, "out", "carol"), 0);
	CHECK(env_folder(&e, f, 1, MF_ROLE_NONE) != NULL);
	env_close(&e);
	snprintf(p, sizeof(p), "%s/out/carol/.Work/tmp/1.Mabc.mailferry.T4242", dir);
	int fd = open(p, O_WRONLY | O_CREAT, 0600);
	CHECK(fd >= 0 && write(fd, "partial", 7) == 7);
	close(fd);
	snprintf(p, sizeof(p), "%s/out/carol/.Work/tmp/12345.other-mda.host", dir);
	fd = open(p, O_WRONLY | O_CREAT, 0600);
	close(fd);
	CHECK_INT(env_open(&e, dir, "out", "carol"), 0);
	CHECK(env_folder(&e, f, 1, MF_ROLE_NONE) != NULL);
	env_close(&e);
	snprintf(p, sizeof(p), "%s/out/carol/.Work/tmp", dir);
	CHECK_INT(list_dir(p, listing, sizeof(listing)), 1);
	CHECK_STR(listing, "12345.other-mda.host\n");
}

static int count_cb(void *arg, const char *hex)
{
	(void)hex;
	(*(int *)arg)++;
	return 0;
}

/* open_read: looks only. A missing mailbox or folder is MF_ENOTFOUND and
 * nothing is made; tmp/ files of a run, subscriptions and dovecot-keywords
 * stay as they are; probe and hashes work; store refuses. */
TEST(open_read_writes_nothing)
{
	char dir[PATH_MAX], p[PATH_MAX], listing[1024], id[MF_SINK_ID_MAX];
	snprintf(dir, sizeof(dir), "%s/ro", g_tmp);
	mf_mkdirs(dir);
	struct env e;
	struct mf_err err = {0};
	struct mf_path path;
	void *snk = NULL, *fh = NULL;
	const char *work[] = {"Work", "Sub"};
	CHECK_INT(env_open(&e, dir, "out", "erin"), 0);
	CHECK(mf_sink_maildir.open_read != NULL);
	/* no such mailbox: nothing made */
	struct mf_unit other = {.mailbox = (char *)"frank", .id = (char *)"frank"};
	CHECK_INT(mf_sink_maildir.open_read(e.cfg, &other, &snk, &err), MF_ENOTFOUND);
	CHECK(snk == NULL);
	snprintf(p, sizeof(p), "%s/out/frank", dir);
	CHECK(access(p, F_OK) != 0);
	/* a folder with one message and a run's tmp/ file */
	void *wf = env_folder(&e, work, 2, MF_ROLE_NONE);
	CHECK(wf != NULL);
	struct msg m;
	make_msg(&m, 9, 1600000000, MF_FLAG_SEEN);
	CHECK_INT(store(&e, wf, &m, id), 0);
	env_close(&e);
	snprintf(p, sizeof(p), "%s/out/erin/.Work.Sub/tmp/2.Mxyz.mailferry.T777", dir);
	int fd = open(p, O_WRONLY | O_CREAT, 0600);
	CHECK(fd >= 0 && write(fd, "partial", 7) == 7);
	close(fd);
	snprintf(p, sizeof(p), "%s/out/erin", dir);
	char before[1024];
	CHECK(list_dir(p, before, sizeof(before)) > 0);

	memset(&e, 0, sizeof(e));
	struct sect x;
	make_sect(&x, dir, "out", "yes");
	CHECK_INT(mf_sink_maildir.configure(&x.s, &e.cfg, &err), 0);
	e.unit.mailbox = e.unit.id = (char *)"erin";
	CHECK_INT(mf_sink_maildir.open_read(e.cfg, &e.unit, &snk, &err), 0);
	/* the folder is found, its message hashed and probed */
	mf_path_init(&path);
	for (size_t i = 0; i < 2; i++)
		mf_path_push(&path, work[i], strlen(work[i]));
	CHECK_INT(mf_sink_maildir.folder(snk, &path, MF_ROLE_NONE, &fh, &err), 0);
	mf_path_free(&path);
	int n = 0;
	CHECK_INT(mf_sink_maildir.hashes(snk, fh, count_cb, &n, &err), 0);
	CHECK_INT(n, 1);
	CHECK_INT(mf_sink_maildir.probe(snk, fh, &m.item, id, &err), 1);
	CHECK_INT(mf_sink_maildir.store(snk, fh, &m.item, id, &err), MF_EINTERNAL);
	/* a folder that is not there: MF_ENOTFOUND, not made */
	const char *gone[] = {"Gone", "Deeper"};
	mf_path_init(&path);
	for (size_t i = 0; i < 2; i++)
		mf_path_push(&path, gone[i], strlen(gone[i]));
	fh = NULL;
	CHECK_INT(mf_sink_maildir.folder(snk, &path, MF_ROLE_NONE, &fh, &err), MF_ENOTFOUND);
	mf_path_free(&path);
	mf_sink_maildir.close(snk);
	mf_sink_maildir.free_config(e.cfg);
	snprintf(p, sizeof(p), "%s/out/erin", dir);
	CHECK_INT(list_dir(p, listing, sizeof(listing)) > 0, 1);
	CHECK_STR(listing, before);
	snprintf(p, sizeof(p), "%s/out/erin/.Work.Sub/tmp", dir);
	CHECK_INT(list_dir(p, listing, sizeof(listing)), 1);
	CHECK_STR(listing, "2.Mxyz.mailferry.T777\n");
}

TEST(errors_name_the_path)
{
	char dir[PATH_MAX], p[PATH_MAX], id[MF_SINK_ID_MAX];
	snprintf(dir, sizeof(dir), "%s/errs", g_tmp);
	mf_mkdirs(dir);
	struct env e;
	CHECK_INT(env_open(&e, dir, "out", "dave"), 0);
	void *fh = env_folder(&e, NULL, 0, MF_ROLE_INBOX);
	/* tmp/ replaced by a file: the store fails with MF_EIO naming it */
	snprintf(p, sizeof(p), "%s/out/dave/tmp", dir);
	rmdir(p);
	int fd = open(p, O_WRONLY | O_CREAT, 0600);
	close(fd);
	struct msg m;
	struct mf_err err = {0};
	make_msg(&m, 7, 1, 0);
	CHECK_INT(mf_sink_maildir.store(e.snk, fh, &m.item, id, &err), MF_EIO);
	CHECK(strstr(err.msg, "/out/dave/tmp/") != NULL);
	unlink(p);
	mkdir(p, 0700);
	/* permission denied (only meaningful when not root) */
	if (geteuid() != 0) {
		snprintf(p, sizeof(p), "%s/out/dave/cur", dir);
		chmod(p, 0500);
		memset(&err, 0, sizeof(err));
		CHECK_INT(mf_sink_maildir.store(e.snk, fh, &m.item, id, &err), MF_EIO);
		CHECK(strstr(err.msg, "/out/dave/cur/") != NULL);
		chmod(p, 0700);
		snprintf(p, sizeof(p), "%s/out/dave/tmp", dir);
		CHECK_INT(list_dir(p, id, sizeof(id)), 0); /* partial file removed */
	}
	/* a bad idempotency key cannot reach the file system */
	m.item.idem = "../../x";
	CHECK_INT(mf_sink_maildir.store(e.snk, fh, &m.item, id, &err), MF_EINVAL);
	env_close(&e);
	/* the root cannot be created: the mailbox fails naming the path */
	snprintf(p, sizeof(p), "%s/afile", dir);
	fd = open(p, O_WRONLY | O_CREAT, 0600);
	close(fd);
	struct sect x;
	void *cfg = NULL, *snk = NULL;
	make_sect(&x, dir, "afile/out", NULL);
	CHECK_INT(mf_sink_maildir.configure(&x.s, &cfg, &err), 0);
	struct mf_unit u = {.mailbox = "erin"};
	CHECK_INT(mf_sink_maildir.open(cfg, &u, &snk, &err), MF_EIO);
	CHECK(strstr(err.msg, "afile") != NULL);
	mf_sink_maildir.free_config(cfg);
}

/* --- helpers for the integration scripts ------------------------------------- */

static int fixture(const char *dir)
{
	struct env e;
	char id[MF_SINK_ID_MAX];
	if (env_open(&e, dir, "mail", "alice") < 0)
		return 1;
	struct {
		const char *segs[3];
		size_t n;
		enum mf_role role;
		int count;
		unsigned flags;
		const char *keywords;
	} f[] = {
	    {{NULL}, 0, MF_ROLE_INBOX, 3, MF_FLAG_SEEN, "$Forwarded Work"},
	    {{"Sent Items"}, 1, MF_ROLE_SENT, 2, MF_FLAG_SEEN | MF_FLAG_ANSWERED, "$MDNSent"},
	    {{"Caf\xc3\xa9 \xc3\x9c"}, 1, MF_ROLE_NONE, 1, MF_FLAG_FLAGGED, NULL},
	    {{"Projects", "2024", "Q1.final"}, 3, MF_ROLE_NONE, 2, MF_FLAG_DRAFT, NULL},
	    {{"Inbox", "Sub"}, 2, MF_ROLE_NONE, 1, MF_FLAG_DELETED | MF_FLAG_SEEN, NULL},
	    {{"50% off"}, 1, MF_ROLE_NONE, 1, 0, NULL},
	};
	int n = 0, rc = 0;
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]) && rc == 0; i++) {
		void *fh = env_folder(&e, f[i].segs, f[i].n, f[i].role);
		if (!fh) {
			rc = 1;
			break;
		}
		for (int k = 0; k < f[i].count; k++, n++) {
			struct msg m;
			make_msg(&m, 1000 + n, 1600000000 + 86400 * n, f[i].flags);
			m.item.keywords = f[i].keywords;
			if (store(&e, fh, &m, id) < 0)
				rc = 1;
		}
	}
	env_close(&e);
	return rc;
}

static int enospc(const char *dir)
{
	struct env e;
	char id[MF_SINK_ID_MAX];
	if (env_open(&e, dir, "mail", "full") < 0)
		return 1;
	void *fh = env_folder(&e, NULL, 0, MF_ROLE_INBOX);
	if (!fh)
		return 1;
	size_t big = 16 * 1024;
	char *text = malloc(big + 1);
	memset(text, 'x', big);
	text[big] = '\0';
	struct msg m;
	struct mf_err err = {0};
	int rc = 0, stored = 0;
	for (int i = 0; i < 1000; i++) {
		make_msg(&m, i, 1600000000, 0);
		m.item.data = (const unsigned char *)text;
		m.item.len = big;
		rc = mf_sink_maildir.store(e.snk, fh, &m.item, id, &err);
		if (rc < 0)
			break;
		stored++;
	}
	int ok = 1;
	printf("stored %d messages, then rc=%s class=%s: %s\n", stored, mf_err_name(rc),
	       mf_class_name(mf_err_class(rc)), err.msg);
	if (rc != MF_ENOSPC || mf_err_class(rc) != MF_CLASS_MAILBOX || !strstr(err.msg, "space"))
		ok = 0;
	char p[PATH_MAX], listing[4096];
	snprintf(p, sizeof(p), "%s/mail/full/tmp", dir);
	int left = list_dir(p, listing, sizeof(listing));
	printf("tmp files left: %d\n", left);
	if (left != 0)
		ok = 0;
	/* everything that was reported stored is complete */
	snprintf(p, sizeof(p), "%s/mail/full/cur", dir);
	int files = list_dir(p, listing, sizeof(listing));
	printf("files in cur: %d\n", files);
	if (files != stored)
		ok = 0;
	free(text);
	env_close(&e);
	return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--fixture") == 0)
		return fixture(argv[2]);
	if (argc == 3 && strcmp(argv[1], "--enospc") == 0)
		return enospc(argv[2]);
	setup_tmp();
	RUN(escape_segments);
	RUN(escape_is_reversible);
	RUN(roles_and_inbox);
	RUN(long_names);
	RUN(mailbox_names);
	RUN(flag_letters);
	RUN(registered);
	RUN(configure_errors);
	RUN(store_probe_hashes);
	RUN(deterministic);
	RUN(no_path_traversal);
	RUN(tmp_leftovers_removed);
	RUN(open_read_writes_nothing);
	RUN(errors_name_the_path);
	return test_done();
}
