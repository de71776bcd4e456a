/* test_imap_drivers.c - the IMAP source and sink ops against two real
 * Dovecot servers started on loopback by tests/lib/dovecot.sh (source on
 * 127.0.0.1:11144 with "." as separator, target on 127.0.0.1:12144 with "/").
 * Skips (77) when Dovecot or python3 is not installed. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/log.h"
#include "engine/sink.h"
#include "engine/source.h"
#include "engine/util.h"
#include "sources/imap/imap_common.h"
#include "test.h"

extern const struct mf_source_ops mf_source_imap;
extern const struct mf_sink_ops mf_sink_imap;

static char src_port[16] = "11144", dst_port[16] = "12144", tls_port[16] = "11145";
static char oauth_port[16] = "12190";

/* The OAuth2 side for XOAUTH2 tests: RFC 7662 introspection for Dovecot
 * (tokens "good-USER" are valid for USER) and a client-credentials token
 * endpoint for mailferry. */
static const char oauth_py[] =
	"import http.server, json, sys, urllib.parse\n"
	"class H(http.server.BaseHTTPRequestHandler):\n"
	"    def do_POST(self):\n"
	"        n = int(self.headers.get('Content-Length', 0))\n"
	"        f = urllib.parse.parse_qs(self.rfile.read(n).decode())\n"
	"        if self.path == '/token':\n"
	"            ok = f.get('grant_type') == ['client_credentials'] and f.get('client_secret') == ['s3cret']\n"
	"            r = {'access_token': 'good-' + f['client_id'][0], 'expires_in': 3600} if ok else {}\n"
	"            code = 200 if ok else 401\n"
	"        else:\n"
	"            t = f.get('token', [''])[0]\n"
	"            r = {'active': True, 'username': t[5:]} if t.startswith('good-') else {'active': False}\n"
	"            code = 200\n"
	"        b = json.dumps(r).encode()\n"
	"        self.send_response(code)\n"
	"        self.send_header('Content-Type', 'application/json')\n"
	"        self.send_header('Content-Length', str(len(b)))\n"
	"        self.end_headers()\n"
	"        self.wfile.write(b)\n"
	"    def log_message(self, *a):\n"
	"        pass\n"
	"http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()\n";
#define SRC_PORT src_port
#define DST_PORT dst_port

static char tmp[512], lib[512];

/* A free port at or above `pref`, found by the harness. */
static void free_port(const char *pref, char *out, size_t size)
{
	char cmd[1024];
	FILE *p;
	snprintf(cmd, sizeof(cmd), "bash -c '. %s; dovecot_free_port %s'", lib, pref);
	if ((p = popen(cmd, "r")) != NULL) {
		if (fgets(out, (int)size, p))
			out[strcspn(out, "\n")] = 0;
		pclose(p);
	}
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[4096], full[8192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	snprintf(full, sizeof(full), "bash -c '. %s; %s'", lib, cmd);
	int st = system(full);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

struct kvs {
	struct mf_conf_kv kv[16];
	struct mf_conf_section sec;
};

static void sec_init(struct kvs *k, const char *name)
{
	memset(k, 0, sizeof(*k));
	k->sec.file = "test.ini";
	k->sec.dir = tmp;
	k->sec.name = (char *)name;
	k->sec.kv = k->kv;
}

static void sec_set(struct kvs *k, const char *key, const char *value)
{
	k->kv[k->sec.n].key = (char *)key;
	k->kv[k->sec.n].value = (char *)value;
	k->kv[k->sec.n].line = (int)k->sec.n + 1;
	k->sec.n++;
}

/* The generated source messages: folder, flags, date, body. */
struct gen {
	const char *folder; /* UTF-8, '/' between levels */
	const char *flags;
	long date;
	unsigned flagbits;
};
static const struct gen gens[] = {
	{"INBOX", "\\Seen", 1600000000, MF_FLAG_SEEN},
	{"INBOX", "-", 1600000100, 0},
	{"INBOX", "\\Seen \\Flagged", 1600000200, MF_FLAG_SEEN | MF_FLAG_FLAGGED},
	{"INBOX", "\\Answered", 1300000000, MF_FLAG_ANSWERED},
	{"Sent Items", "\\Seen", 1500000000, MF_FLAG_SEEN},
	{"Überweisungen/2024", "\\Seen \\Deleted", 1700000000, MF_FLAG_SEEN | MF_FLAG_DELETED},
	{"日本語", "\\Draft", 1400000000, MF_FLAG_DRAFT},
	{"A&B", "-", 1400000500, 0},
};
#define NGEN (sizeof(gens) / sizeof(gens[0]))

static void msg_text(size_t i, char *buf, size_t size)
{
	snprintf(buf, size,
		 "From: Sender %zu <s%zu@example.org>\r\nTo: alice@example.org\r\n"
		 "Subject: test message %zu\r\nMessage-ID: <gen%zu@example.org>\r\n"
		 "Date: Mon, 14 Sep 2020 12:00:00 +0000\r\n\r\nBody of message %zu.\r\n"
		 "Second line.\r\n",
		 i, i, i, i, i);
}

static int setup(void)
{
	char path[1024], text[1024];
	FILE *man;
	size_t i;
	const char *t = getenv("MF_TMP");
	const char *src = getenv("MF_SRC");

	snprintf(tmp, sizeof(tmp), "%s/imap_drivers", t ? t : "/tmp");
	snprintf(lib, sizeof(lib), "%s/tests/lib/dovecot.sh", src ? src : ".");
	if (sh("dovecot_available") != 0)
		return 77;
	sh("dovecot_stop %s/src; dovecot_stop %s/dst; rm -rf %s; mkdir -p %s", tmp, tmp, tmp, tmp);
	free_port("11144", src_port, sizeof(src_port));
	snprintf(text, sizeof(text), "%ld", strtol(src_port, NULL, 10) + 1);
	free_port(text, tls_port, sizeof(tls_port));
	free_port("12144", dst_port, sizeof(dst_port));
	free_port("12190", oauth_port, sizeof(oauth_port));
	if (sh("dovecot_make_cert %s/cert", tmp) != 0)
		return 1;
	snprintf(path, sizeof(path), "%s/oauth.py", tmp);
	if (!(man = fopen(path, "w")))
		return 1;
	fputs(oauth_py, man);
	fclose(man);
	if (sh("python3 %s/oauth.py %s >%s/oauth.log 2>&1 & echo $! >%s/oauth.pid", tmp, oauth_port,
	       tmp, tmp) != 0)
		return 1;
	if (sh("DOVECOT_SSL_DIR=%s/cert DOVECOT_IMAPS_PORT=%s dovecot_start %s/src %s .", tmp,
	       tls_port, tmp, SRC_PORT) != 0 ||
	    sh("DOVECOT_OAUTH2_URL=http://127.0.0.1:%s/introspect dovecot_start %s/dst %s /",
	       oauth_port, tmp, DST_PORT) != 0)
		return 1;
	sh("dovecot_add_user %s/src alice pw1", tmp);
	sh("dovecot_add_user %s/dst alice@example.org tpw", tmp);
	sh("dovecot_add_user %s/dst small@example.org spw userdb_quota_rule=*:storage=20K", tmp);
	sh("dovecot_add_master %s/dst admin apw", tmp);
	snprintf(path, sizeof(path), "%s/load.txt", tmp);
	if (!(man = fopen(path, "w")))
		return 1;
	for (i = 0; i < NGEN; i++) {
		char mp[1024];
		FILE *m;
		snprintf(mp, sizeof(mp), "%s/m%zu.eml", tmp, i);
		msg_text(i, text, sizeof(text));
		if (!(m = fopen(mp, "w")))
			return 1;
		fputs(text, m);
		fclose(m);
		fprintf(man, "%s\t%s\t%ld\t%s\n", gens[i].folder, gens[i].flags, gens[i].date, mp);
	}
	fclose(man);
	return sh("dovecot_load %s alice pw1 < %s/load.txt", SRC_PORT, tmp) == 0 ? 0 : 1;
}

static void teardown(void)
{
	sh("dovecot_stop %s/src; dovecot_stop %s/dst; kill $(cat %s/oauth.pid) 2>/dev/null", tmp,
	   tmp, tmp);
}

/* ---- source ---------------------------------------------------------------- */

static void *src_cfg;

struct collected {
	size_t n;
	char keys[32][16];
	uint64_t size[32];
	int64_t idate[32];
	unsigned flags[32];
};

static int collect(void *arg, const struct mf_msgref *ref)
{
	struct collected *c = arg;
	if (c->n < 32) {
		snprintf(c->keys[c->n], sizeof(c->keys[0]), "%s", ref->key);
		c->size[c->n] = ref->size;
		c->idate[c->n] = ref->idate;
		c->flags[c->n] = ref->flags;
		c->n++;
	}
	return 0;
}

static const struct mf_folder *find_folder(const struct mf_folder *fs, size_t n, const char *joined)
{
	size_t i;
	for (i = 0; i < n; i++) {
		char *j = mf_path_join(&fs[i].path, "/");
		int eq = j && strcmp(j, joined) == 0;
		free(j);
		if (eq)
			return &fs[i];
	}
	return NULL;
}

TEST(source_folders_list_fetch)
{
	struct mf_unit unit = {.user = "alice", .password = "pw1", .line = 2};
	struct mf_err err = {0};
	void *src = NULL;
	const struct mf_folder *fs = NULL, *inbox, *ueb, *jp, *amp, *sent;
	size_t n = 0, i;
	struct collected c = {0}, c2 = {0};
	char *next = NULL;
	int rc;

	rc = mf_source_imap.open(src_cfg, &unit, &src, &err);
	CHECK_INT(rc, 0);
	if (rc) {
		fprintf(stderr, "open: %s\n", err.msg);
		return;
	}
	rc = mf_source_imap.folders(src, &fs, &n, &err);
	CHECK_INT(rc, 0);
	inbox = find_folder(fs, n, "INBOX");
	ueb = find_folder(fs, n, "Überweisungen/2024");
	jp = find_folder(fs, n, "日本語");
	amp = find_folder(fs, n, "A&B");
	sent = find_folder(fs, n, "Sent Items");
	CHECK(inbox && ueb && jp && amp && sent);
	CHECK(find_folder(fs, n, "Sent") != NULL); /* Dovecot's own special folder */
	if (!inbox || !ueb || !jp || !amp || !sent)
		goto out;
	CHECK_INT(inbox->role, MF_ROLE_INBOX);
	CHECK_INT(sent->role, MF_ROLE_SENT); /* by name */
	CHECK_INT(find_folder(fs, n, "Trash")->role, MF_ROLE_TRASH); /* by SPECIAL-USE */
	CHECK_INT(ueb->role, MF_ROLE_NONE);
	CHECK(inbox->validity && strtoul(inbox->validity, NULL, 10) > 0);
	CHECK_INT(inbox->count_hint, 4);

	rc = mf_source_imap.list(src, inbox, NULL, collect, &c, &next, &err);
	CHECK_INT(rc, 0);
	CHECK_INT(c.n, 4);
	for (i = 1; i < c.n; i++)
		CHECK(strtoul(c.keys[i], NULL, 10) > strtoul(c.keys[i - 1], NULL, 10));
	CHECK_STR(next, c.keys[c.n - 1]);
	for (i = 0; i < c.n && i < 4; i++) {
		char text[1024];
		msg_text(i, text, sizeof(text));
		CHECK_INT(c.size[i], strlen(text));
		CHECK_INT(c.idate[i], gens[i].date);
		CHECK_INT(c.flags[i], gens[i].flagbits);
	}
	/* after the cursor: only what is newer */
	{
		char *nx = NULL;
		rc = mf_source_imap.list(src, inbox, c.keys[1], collect, &c2, &nx, &err);
		free(nx);
	}
	CHECK_INT(rc, 0);
	CHECK_INT(c2.n, 2);
	CHECK_STR(c2.keys[0], c.keys[2]);
	/* a cursor at the end lists nothing (not the last message again) */
	memset(&c2, 0, sizeof(c2));
	{
		char *nx = NULL;
		rc = mf_source_imap.list(src, inbox, c.keys[3], collect, &c2, &nx, &err);
		CHECK_INT(rc, 0);
		CHECK_INT(c2.n, 0);
		CHECK_STR(nx, c.keys[3]);
		free(nx);
	}

	/* fetch: exact bytes, metadata; the batch path is taken for 4 messages */
	for (i = 0; i < c.n; i++) {
		struct mf_msgref ref = {.key = c.keys[i]};
		struct mf_msg m = {0};
		char text[1024];
		msg_text(i, text, sizeof(text));
		rc = mf_source_imap.fetch(src, inbox, &ref, &m, &err);
		CHECK_INT(rc, 0);
		CHECK_INT(m.len, strlen(text));
		CHECK(m.data && memcmp(m.data, text, m.len) == 0);
		CHECK_INT(m.idate, gens[i].date);
		CHECK_INT(m.flags, gens[i].flagbits);
		mf_msg_clear(&m);
	}
	{
		struct mf_msgref ref = {.key = "999999"};
		struct mf_msg m = {0};
		rc = mf_source_imap.fetch(src, inbox, &ref, &m, &err);
		CHECK_INT(rc, MF_EMSG);
	}
	/* a non-ASCII folder */
	memset(&c2, 0, sizeof(c2));
	{
		char *nx = NULL;
		rc = mf_source_imap.list(src, ueb, NULL, collect, &c2, &nx, &err);
		CHECK_INT(rc, 0);
		CHECK_INT(c2.n, 1);
		CHECK_INT(c2.flags[0], MF_FLAG_SEEN | MF_FLAG_DELETED);
		free(nx);
	}
	/* the server drops the connection: MF_ECONN */
	sh("dovecot_doveadm %s/src kick alice >/dev/null", tmp);
	usleep(200000);
	{
		char *nx = NULL;
		memset(&c2, 0, sizeof(c2));
		rc = mf_source_imap.list(src, jp, NULL, collect, &c2, &nx, &err);
		CHECK_INT(rc, MF_ECONN);
		free(nx);
	}
out:
	free(next);
	mf_source_imap.close(src);
}

TEST(source_user_root_and_auth)
{
	struct mf_unit unit = {.user = "alice", .password = "pw1", .user_root = "Überweisungen"};
	struct mf_unit bad = {.user = "alice", .password = "wrong"};
	struct mf_err err = {0};
	void *src = NULL;
	const struct mf_folder *fs = NULL;
	size_t n = 0;
	int rc;

	rc = mf_source_imap.open(src_cfg, &unit, &src, &err);
	CHECK_INT(rc, 0);
	if (rc == 0) {
		rc = mf_source_imap.folders(src, &fs, &n, &err);
		CHECK_INT(rc, 0);
		CHECK_INT(n, 1);
		CHECK(n == 1 && find_folder(fs, n, "2024") != NULL);
		mf_source_imap.close(src);
	}
	/* COMPRESS=DEFLATE is used when offered (all tests above ran over it),
	 * and not when compress = no */
	for (int compress = 1; compress >= 0; compress--) {
		struct kvs k;
		struct mf_imap_conf ic;
		struct mf_imap *im = NULL;
		memset(&ic, 0, sizeof(ic));
		sec_init(&k, "source");
		sec_set(&k, "host", "127.0.0.1");
		sec_set(&k, "port", SRC_PORT);
		sec_set(&k, "tls", "none");
		sec_set(&k, "compress", compress ? "yes" : "no");
		CHECK_INT(mf_imap_conf_parse(&k.sec, &ic, &err), 0);
		rc = mf_imap_open(&ic, "alice", NULL, "pw1", &im, &err);
		CHECK_INT(rc, 0);
		if (rc == 0) {
			CHECK_INT(im->compressed, compress);
			CHECK_INT(im->delim, '.');
			CHECK(im->caps & MF_IMAP_CAP_UIDPLUS);
			mf_imap_close(im);
		}
		mf_imap_conf_free(&ic);
	}
	src = NULL;
	rc = mf_source_imap.open(src_cfg, &bad, &src, &err);
	CHECK_INT(rc, MF_EAUTH);
	CHECK_INT(mf_err_class(rc), MF_CLASS_AUTH);
	CHECK(strstr(err.msg, "wrong") == NULL);
}

/* A folder of 6000 messages with a hole of expunged UIDs: the windowed
 * listing returns each remaining message once, in order, and honours the
 * cursor. */
struct seen {
	size_t n;
	uint32_t last;
	int ordered;
};

static int count_cb(void *arg, const struct mf_msgref *ref)
{
	struct seen *seen = arg;
	uint32_t uid = (uint32_t)strtoul(ref->key, NULL, 10);
	if (uid <= seen->last)
		seen->ordered = 0;
	seen->last = uid;
	seen->n++;
	return 0;
}

/* Writes the folder straight into the Maildir (fast), then expunges over
 * IMAP. argv: port, the user's Maildir. */
static const char big_py[] =
	"import imaplib, os, sys\n"
	"md = sys.argv[2]\n"
	"st = os.stat(md)\n"
	"for d in ('', '/cur', '/new', '/tmp'):\n"
	"    os.makedirs(md + '/.Big' + d, exist_ok=True)\n"
	"    os.chown(md + '/.Big' + d, st.st_uid, st.st_gid)\n"
	"for i in range(6000):\n"
	"    p = md + '/.Big/cur/%d.%06d.test:2,' % (1600000000 + i, i)\n"
	"    open(p, 'wb').write(b'Subject: %d\\r\\n\\r\\nx\\r\\n' % i)\n"
	"    os.chown(p, st.st_uid, st.st_gid)\n"
	"M = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]))\n"
	"M.login('alice', 'pw1')\n"
	"M.subscribe('Big')\n"
	"M.select('Big')\n"
	"M.uid('STORE', '101:5000', '+FLAGS.SILENT', '\\\\Deleted')\n"
	"M.expunge()\n";

TEST(source_big_sparse_folder)
{
	struct mf_unit unit = {.user = "alice", .password = "pw1"};
	struct mf_err err = {0};
	void *src = NULL;
	const struct mf_folder *fs = NULL, *big;
	size_t n = 0;
	struct seen seen = {0, 0, 1};
	char *next = NULL, path[600];
	FILE *f;
	int rc;

	snprintf(path, sizeof(path), "%s/big.py", tmp);
	if (!(f = fopen(path, "w"))) {
		CHECK(0);
		return;
	}
	fputs(big_py, f);
	fclose(f);
	CHECK_INT(sh("python3 %s %s %s/src/mail/alice/Maildir", path, SRC_PORT, tmp), 0);
	rc = mf_source_imap.open(src_cfg, &unit, &src, &err);
	CHECK_INT(rc, 0);
	if (rc)
		return;
	CHECK_INT(mf_source_imap.folders(src, &fs, &n, &err), 0);
	big = find_folder(fs, n, "Big");
	CHECK(big != NULL);
	if (big) {
		rc = mf_source_imap.list(src, big, NULL, count_cb, &seen, &next, &err);
		CHECK_INT(rc, 0);
		CHECK_INT(seen.n, 1100); /* 6000 - UIDs 101..5000 */
		CHECK(seen.ordered);
		CHECK_STR(next, "6000");
		free(next);
		next = NULL;
		memset(&seen, 0, sizeof(seen));
		seen.ordered = 1;
		rc = mf_source_imap.list(src, big, "5500", count_cb, &seen, &next, &err);
		CHECK_INT(rc, 0);
		CHECK_INT(seen.n, 500);
		CHECK(seen.ordered);
		free(next);
	}
	mf_source_imap.close(src);
}

/* TLS: implicit and STARTTLS, the certificate checked against tls_ca_file;
 * the system store does not know our test CA, so without it the login is
 * refused (class CONFIG) unless tls_verify = no. */
TEST(source_tls)
{
	struct {
		const char *tls, *port_kind, *ca, *verify;
		int expect;
	} cases[] = {
		{"implicit", "tls", "ca", "yes", 0},
		{"starttls", "plain", "ca", "yes", 0},
		{"implicit", "tls", NULL, "yes", MF_ECONFIG},
		{"starttls", "plain", NULL, "yes", MF_ECONFIG},
		{"implicit", "tls", NULL, "no", 0},
	};
	char ca[600];
	size_t i;
	snprintf(ca, sizeof(ca), "%s/cert/ca.pem", tmp);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct kvs k;
		struct mf_imap_conf ic;
		struct mf_imap *im = NULL;
		struct mf_err err = {0};
		int rc;
		memset(&ic, 0, sizeof(ic));
		sec_init(&k, "source");
		sec_set(&k, "host", "127.0.0.1");
		sec_set(&k, "port", strcmp(cases[i].port_kind, "tls") ? SRC_PORT : tls_port);
		sec_set(&k, "tls", cases[i].tls);
		sec_set(&k, "tls_verify", cases[i].verify);
		if (cases[i].ca)
			sec_set(&k, "tls_ca_file", ca);
		CHECK_INT(mf_imap_conf_parse(&k.sec, &ic, &err), 0);
		rc = mf_imap_open(&ic, "alice", NULL, "pw1", &im, &err);
		if (rc != cases[i].expect)
			fprintf(stderr, "case %zu: %s\n", i, err.msg);
		CHECK_INT(rc, cases[i].expect);
		if (rc == 0) {
			CHECK(im->caps & MF_IMAP_CAP_UIDPLUS);
			mf_imap_close(im);
		}
		mf_imap_conf_free(&ic);
	}
}

/* ---- sink ------------------------------------------------------------------- */

static void item_of(struct mf_item *it, unsigned char *sha, char *hex, const char *data,
		    const char *msgid)
{
	memset(it, 0, sizeof(*it));
	it->data = (const unsigned char *)data;
	it->len = strlen(data);
	mf_sha256(data, it->len, sha);
	mf_hex(sha, MF_SHA256_LEN, hex);
	it->sha256 = sha;
	it->hash_hex = hex;
	it->idem = "0123456789abcdef0123456789abcdef";
	it->message_id = msgid;
	it->idate = 1234567890;
	it->flags = MF_FLAG_SEEN | MF_FLAG_FLAGGED;
}

struct hashset {
	size_t n;
	char h[16][65];
};
static int hash_cb(void *arg, const char *hex)
{
	struct hashset *hs = arg;
	if (hs->n < 16)
		snprintf(hs->h[hs->n++], 65, "%s", hex);
	return 0;
}

TEST(sink_store_probe_hashes)
{
	struct kvs k;
	struct mf_unit unit = {.mailbox = "alice@example.org", .line = 2};
	struct mf_err err = {0};
	struct mf_sink_caps caps;
	void *cfg = NULL, *snk = NULL, *fh = NULL, *fh2 = NULL, *fsent = NULL;
	struct mf_path p;
	struct mf_item it, other;
	unsigned char sha[32], sha2[32];
	char hex[65], hex2[65], id[MF_SINK_ID_MAX], id2[MF_SINK_ID_MAX];
	const char *msg = "From: a@example.org\r\nMessage-ID: <p1@example.org>\r\n"
			  "Subject: probe me\r\n\r\nhello\r\n";
	const char *msg2 = "From: a@example.org\r\nMessage-ID: <p1@example.org>\r\n"
			   "Subject: probe me\r\n\r\nhellO\r\n";
	struct hashset hs = {0};
	char dump[512];
	int rc;

	sec_init(&k, "sink");
	sec_set(&k, "host", "127.0.0.1");
	sec_set(&k, "port", DST_PORT);
	sec_set(&k, "tls", "none");
	sec_set(&k, "password", "tpw");
	sec_set(&k, "max_message_mb", "1");
	rc = mf_sink_imap.configure(&k.sec, &cfg, &err);
	CHECK_INT(rc, 0);
	if (rc)
		return;
	mf_sink_imap.caps(cfg, &caps);
	CHECK(caps.crlf);
	CHECK_INT(caps.max_message_bytes, 1024 * 1024);
	rc = mf_sink_imap.open(cfg, &unit, &snk, &err);
	CHECK_INT(rc, 0);
	if (rc)
		goto out;

	mf_path_init(&p);
	mf_path_push(&p, "Überweisungen", strlen("Überweisungen"));
	mf_path_push(&p, "2024", 4);
	rc = mf_sink_imap.folder(snk, &p, MF_ROLE_NONE, &fh, &err);
	CHECK_INT(rc, 0);
	mf_path_free(&p);
	mf_path_init(&p);
	mf_path_push(&p, "Sent Items", 10);
	rc = mf_sink_imap.folder(snk, &p, MF_ROLE_SENT, &fsent, &err);
	CHECK_INT(rc, 0);
	mf_path_free(&p);
	mf_path_init(&p);
	mf_path_push(&p, "a/b", 3); /* the target's delimiter inside a segment */
	rc = mf_sink_imap.folder(snk, &p, MF_ROLE_NONE, &fh2, &err);
	CHECK_INT(rc, 0);
	mf_path_free(&p);

	item_of(&it, sha, hex, msg, "<p1@example.org>");
	item_of(&other, sha2, hex2, msg2, "<p1@example.org>");
	rc = mf_sink_imap.probe(snk, fh, &it, id, &err);
	CHECK_INT(rc, 0);
	rc = mf_sink_imap.store(snk, fh, &it, id, &err);
	CHECK_INT(rc, 0);
	CHECK(strchr(id, ':') != NULL);
	rc = mf_sink_imap.probe(snk, fh, &it, id2, &err);
	CHECK_INT(rc, 1);
	CHECK_STR(id2, id);
	/* same Message-ID and size, other bytes: not found */
	rc = mf_sink_imap.probe(snk, fh, &other, id2, &err);
	CHECK_INT(rc, 0);
	/* the second identical copy is not there yet */
	it.dup = 1;
	rc = mf_sink_imap.probe(snk, fh, &it, id2, &err);
	CHECK_INT(rc, 0);
	it.dup = 0;
	/* without a Message-ID: by size and hash */
	it.message_id = NULL;
	rc = mf_sink_imap.probe(snk, fh, &it, id2, &err);
	CHECK_INT(rc, 1);
	rc = mf_sink_imap.store(snk, fsent, &it, id2, &err);
	CHECK_INT(rc, 0);
	rc = mf_sink_imap.store(snk, fh2, &it, id2, &err);
	CHECK_INT(rc, 0);

	rc = mf_sink_imap.hashes(snk, fh, hash_cb, &hs, &err);
	CHECK_INT(rc, 0);
	CHECK_INT(hs.n, 1);
	CHECK_STR(hs.h[0], hex);

	/* too big for max_message_mb = 1: skipped, class MESSAGE */
	{
		size_t big = 2 * 1024 * 1024;
		char *b = malloc(big + 1);
		struct mf_item bi;
		unsigned char bs[32];
		char bh[65];
		memset(b, 'x', big);
		b[big] = 0;
		item_of(&bi, bs, bh, b, NULL);
		rc = mf_sink_imap.store(snk, fh, &bi, id2, &err);
		CHECK_INT(rc, MF_ETOOBIG);
		free(b);
	}
	/* the target drops the connection: MF_ECONN, nothing half-stored */
	sh("dovecot_doveadm %s/dst kick alice@example.org >/dev/null", tmp);
	usleep(200000);
	rc = mf_sink_imap.store(snk, fh, &it, id2, &err);
	CHECK_INT(rc, MF_ECONN);
	CHECK_INT(mf_err_class(rc), MF_CLASS_CONNECTION);
	mf_sink_imap.close(snk);
	snk = NULL;

	/* open_read (verify, plan): finds folders, creates none (MF_ENOTFOUND);
	 * probe and hashes as usual */
	CHECK(mf_sink_imap.open_read != NULL);
	rc = mf_sink_imap.open_read ? mf_sink_imap.open_read(cfg, &unit, &snk, &err) : -1;
	CHECK_INT(rc, 0);
	if (rc == 0) {
		void *rfh = NULL, *rmiss = NULL;
		struct hashset hs2 = {0};
		mf_path_init(&p);
		mf_path_push(&p, "Nowhere", 7);
		mf_path_push(&p, "deeper", 6);
		CHECK_INT(mf_sink_imap.folder(snk, &p, MF_ROLE_NONE, &rmiss, &err), MF_ENOTFOUND);
		mf_path_free(&p);
		mf_path_init(&p);
		mf_path_push(&p, "Überweisungen", strlen("Überweisungen"));
		mf_path_push(&p, "2024", 4);
		CHECK_INT(mf_sink_imap.folder(snk, &p, MF_ROLE_NONE, &rfh, &err), 0);
		mf_path_free(&p);
		it.message_id = "<p1@example.org>";
		if (rfh) {
			CHECK_INT(mf_sink_imap.probe(snk, rfh, &it, id2, &err), 1);
			CHECK_INT(mf_sink_imap.hashes(snk, rfh, hash_cb, &hs2, &err), 0);
			CHECK_INT(hs2.n, 1);
		}
		mf_sink_imap.close(snk);
		snk = NULL;
		CHECK_INT(sh("dovecot_doveadm %s/dst mailbox list -u alice@example.org | grep -q Nowhere", tmp), 1);
	}

	/* what the target holds, seen by an independent client */
	snprintf(dump, sizeof(dump), "dovecot_dump %s alice@example.org tpw > %s/dump.txt",
		 DST_PORT, tmp);
	CHECK_INT(sh("%s", dump), 0);
	CHECK_INT(sh("grep -qP \"^Überweisungen/2024\\t.*Flagged.*\\t1234567890\\t\" %s/dump.txt", tmp), 0);
	CHECK_INT(sh("grep -qP \"^Sent\\t\" %s/dump.txt", tmp), 0);
	CHECK_INT(sh("grep -qP \"^a_b\\t\" %s/dump.txt", tmp), 0);
	CHECK_INT(sh("test $(wc -l < %s/dump.txt) = 3", tmp), 0);
out:
	mf_sink_imap.free_config(cfg);
}

TEST(sink_admin_and_quota)
{
	struct kvs k;
	struct mf_unit unit = {.mailbox = "alice@example.org"};
	struct mf_unit small = {.mailbox = "small@example.org", .target_password = "spw"};
	struct mf_unit nobody = {.mailbox = "alice@example.org", .target_password = "nope"};
	struct mf_err err = {0};
	void *cfg = NULL, *cfg2 = NULL, *snk = NULL, *fh = NULL;
	struct mf_path p;
	struct mf_item it;
	unsigned char sha[32];
	char hex[65], id[MF_SINK_ID_MAX];
	char *big = NULL;
	int rc, i;

	/* admin on behalf of alice: SASL PLAIN authzid with a Dovecot master user */
	setenv("MF_TEST_ADMIN_PW", "apw", 1);
	sec_init(&k, "sink");
	sec_set(&k, "host", "127.0.0.1");
	sec_set(&k, "port", DST_PORT);
	sec_set(&k, "tls", "none");
	sec_set(&k, "password_env", "MF_TEST_ADMIN_PW");
	sec_set(&k, "admin_user", "admin");
	rc = mf_sink_imap.configure(&k.sec, &cfg, &err);
	CHECK_INT(rc, 0);
	if (rc)
		return;
	rc = mf_sink_imap.open(cfg, &unit, &snk, &err);
	CHECK_INT(rc, 0);
	if (rc == 0) {
		mf_path_init(&p);
		mf_path_push(&p, "ViaAdmin", 8);
		CHECK_INT(mf_sink_imap.folder(snk, &p, MF_ROLE_NONE, &fh, &err), 0);
		mf_path_free(&p);
		item_of(&it, sha, hex, "Subject: via admin\r\n\r\nx\r\n", NULL);
		CHECK_INT(mf_sink_imap.store(snk, fh, &it, id, &err), 0);
		mf_sink_imap.close(snk);
		CHECK_INT(sh("dovecot_dump %s alice@example.org tpw | grep ^ViaAdmin >/dev/null", DST_PORT),
			  0);
	}
	mf_sink_imap.free_config(cfg);

	/* the unit's TargetPassword wins; a wrong one is MF_EAUTH */
	sec_init(&k, "sink");
	sec_set(&k, "host", "127.0.0.1");
	sec_set(&k, "port", DST_PORT);
	sec_set(&k, "tls", "none");
	sec_set(&k, "auth", "login");
	sec_set(&k, "password", "tpw");
	rc = mf_sink_imap.configure(&k.sec, &cfg2, &err);
	CHECK_INT(rc, 0);
	if (rc)
		return;
	snk = NULL;
	rc = mf_sink_imap.open(cfg2, &nobody, &snk, &err);
	CHECK_INT(rc, MF_EAUTH);

	/* over quota: MF_EQUOTA (class QUOTA), from the server's [OVERQUOTA] */
	rc = mf_sink_imap.open(cfg2, &small, &snk, &err);
	CHECK_INT(rc, 0);
	if (rc == 0) {
		size_t len = 8000;
		big = malloc(len + 64);
		snprintf(big, 64, "Subject: filler\r\n\r\n");
		memset(big + strlen(big), 'q', len);
		big[len] = 0;
		memcpy(big + len - 2, "\r\n", 3);
		mf_path_init(&p);
		mf_path_push(&p, "INBOX", 5);
		CHECK_INT(mf_sink_imap.folder(snk, &p, MF_ROLE_INBOX, &fh, &err), 0);
		mf_path_free(&p);
		for (i = 0; i < 10; i++) {
			big[20] = (char)('a' + i);
			item_of(&it, sha, hex, big, NULL);
			rc = mf_sink_imap.store(snk, fh, &it, id, &err);
			if (rc < 0)
				break;
		}
		CHECK_INT(rc, MF_EQUOTA);
		CHECK_INT(mf_err_class(rc), MF_CLASS_QUOTA);
		fprintf(stderr, "quota error: %s\n", err.msg);
		mf_sink_imap.close(snk);
	}
	free(big);
	mf_sink_imap.free_config(cfg2);
}

/* XOAUTH2: a token from token_cmd that the server refuses is fetched again
 * once (as after expiry), then the login succeeds; a token from an OAuth2
 * client-credentials grant (token_url) works; tokens always refused give
 * MF_EAUTH. */
TEST(sink_xoauth2)
{
	struct mf_unit unit = {.mailbox = "alice@example.org"};
	struct mf_err err = {0};
	char cmd[1024], url[128];
	int rc;

	snprintf(cmd, sizeof(cmd),
		 "f=%s/tok.n; n=$(cat $f 2>/dev/null || echo 0); echo $((n+1)) >$f; "
		 "if [ $n = 0 ]; then echo expired-token; else echo good-alice@example.org; fi",
		 tmp);
	snprintf(url, sizeof(url), "http://127.0.0.1:%s/token", oauth_port);
	setenv("MF_TEST_CLIENT_SECRET", "s3cret", 1);
	for (int kind = 0; kind < 3; kind++) {
		struct kvs k;
		void *cfg = NULL, *snk = NULL;
		sec_init(&k, "sink");
		sec_set(&k, "host", "127.0.0.1");
		sec_set(&k, "port", DST_PORT);
		sec_set(&k, "tls", "none");
		sec_set(&k, "auth", "xoauth2");
		if (kind == 0) {
			sec_set(&k, "token_cmd", cmd);
		} else if (kind == 1) {
			sec_set(&k, "token_url", url);
			sec_set(&k, "client_id", "alice@example.org");
			sec_set(&k, "client_secret_env", "MF_TEST_CLIENT_SECRET");
		} else {
			sec_set(&k, "token_cmd", "echo never-good");
		}
		rc = mf_sink_imap.configure(&k.sec, &cfg, &err);
		CHECK_INT(rc, 0);
		if (rc)
			continue;
		rc = mf_sink_imap.open(cfg, &unit, &snk, &err);
		if (rc != (kind == 2 ? MF_EAUTH : 0))
			fprintf(stderr, "xoauth2 case %d: %s\n", kind, err.msg);
		CHECK_INT(rc, kind == 2 ? MF_EAUTH : 0);
		if (rc == 0)
			mf_sink_imap.close(snk);
		mf_sink_imap.free_config(cfg);
	}
	CHECK_INT(sh("test $(cat %s/tok.n) = 2", tmp), 0); /* fetched twice, not more */
}

int main(void)
{
	struct kvs k;
	struct mf_err err = {0};
	int rc = setup();
	if (rc == 77) {
		printf("SKIP: dovecot or python3 not installed\n");
		return 77;
	}
	if (rc != 0) {
		fprintf(stderr, "cannot set up the Dovecot servers\n");
		teardown();
		return 1;
	}
	sec_init(&k, "source");
	sec_set(&k, "host", "127.0.0.1");
	sec_set(&k, "port", SRC_PORT);
	sec_set(&k, "tls", "none");
	sec_set(&k, "auth", "plain");
	if (mf_source_imap.configure(&k.sec, &src_cfg, &err) != 0) {
		fprintf(stderr, "configure: %s\n", err.msg);
		teardown();
		return 1;
	}
	RUN(source_folders_list_fetch);
	RUN(source_user_root_and_auth);
	RUN(source_tls);
	RUN(source_big_sparse_folder);
	RUN(sink_store_probe_hashes);
	RUN(sink_admin_and_quota);
	RUN(sink_xoauth2);
	mf_source_imap.free_config(src_cfg);
	teardown();
	return test_done();
}
