/* test_graph.c - the graph sink against the Graph test double
 * (tests/doubles/graph_double.py) on loopback: token endpoint, folders with
 * paging and ErrorFolderExists, importMime, the 4 MB cap and the JSON path
 * with an upload session, 150 MB skip, throttling, injected 503/504 (some
 * after the message was stored), tokens expiring mid-run, and the
 * Message-ID listing verify uses (paged). */
#include <pthread.h>

#include "../doubles/cloud_test.h"
#include "engine/loop.h"
#include "sinks/graph/graph.h"
#include "sinks/http/http.h"
#include "test.h"

extern const struct mf_sink_ops mf_sink_graph;

#define SECRET "s3cr3t-Value~1"

struct state {
	long r401, r429, r503, r504, issued, peak;
	int n, nhead, nfolder, natt;
	char att[32][256]; /* "msgid\tname\tisInline\tcontentId\tsize" */
	long r400, r403, r415, r509, ra_ignored;
	char line[64][512];
	char head[16][512]; /* "msgid\tsubject\tfrom\tto" of JSON-made messages */
};

static void graph_state(const char *mbx, struct state *st)
{
	char cmd[1024], buf[1024];
	memset(st, 0, sizeof(*st));
	snprintf(cmd, sizeof(cmd), "python3 '%s/tests/doubles/graph_state.py' 4570 '%s'", getenv("MF_SRC"), mbx);
	FILE *f = popen(cmd, "r");
	if (!f)
		return;
	while (fgets(buf, sizeof(buf), f)) {
		buf[strcspn(buf, "\n")] = '\0';
		char name[32];
		long v;
		if (sscanf(buf, "counter\t%31s\t%ld", name, &v) == 2) {
			if (!strcmp(name, "r401")) st->r401 = v;
			if (!strcmp(name, "r429")) st->r429 = v;
			if (!strcmp(name, "r503")) st->r503 = v;
			if (!strcmp(name, "r504")) st->r504 = v;
			if (!strcmp(name, "issued")) st->issued = v;
			if (!strcmp(name, "peak")) st->peak = v;
			if (!strcmp(name, "r400")) st->r400 = v;
			if (!strcmp(name, "r403")) st->r403 = v;
			if (!strcmp(name, "r415")) st->r415 = v;
			if (!strcmp(name, "r509")) st->r509 = v;
			if (!strcmp(name, "ra_ignored")) st->ra_ignored = v;
		} else if (!strncmp(buf, "msg\t", 4) && st->n < 64) {
			snprintf(st->line[st->n++], 512, "%s", buf + 4);
		} else if (!strncmp(buf, "att\t", 4) && st->natt < 32) {
			snprintf(st->att[st->natt++], 256, "%s", buf + 4);
		} else if (!strncmp(buf, "folder\t", 7)) {
			st->nfolder++;
		} else if (!strncmp(buf, "head\t", 5) && st->nhead < 16) {
			snprintf(st->head[st->nhead++], 512, "%s", buf + 5);
		}
	}
	pclose(f);
}

/* How many stored messages have this Message-ID (and, if given, this
 * line prefix "folder\tmsgid\tisDraft\tisRead\tflag\tvia"). */
static int count(const struct state *st, const char *prefix)
{
	int c = 0;
	for (int i = 0; i < st->n; i++)
		c += strncmp(st->line[i], prefix, strlen(prefix)) == 0;
	return c;
}

/* How many requests the double has seen (its /_state counts them). */
static long requests(void)
{
	char cmd[512], buf[64] = "";
	snprintf(cmd, sizeof(cmd), "python3 -c \"import json,urllib.request;"
		 "print(json.load(urllib.request.urlopen('http://127.0.0.1:4570/_state'))['requests'])\"");
	FILE *f = popen(cmd, "r");
	if (!f)
		return -1;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	pclose(f);
	return strtol(buf, NULL, 10);
}

static int count_att(const struct state *st, const char *line)
{
	int c = 0;
	for (int i = 0; i < st->natt; i++)
		c += strcmp(st->att[i], line) == 0;
	return c;
}

static void restart_double(const char *args)
{
	cloud_stop();
	char env[512];
	snprintf(env, sizeof(env), "GRAPH_ARGS='%s'", args);
	if (cloud_start("cloud-graph", "graph", env) != 0)
		fprintf(stderr, "cannot restart the double\n");
}

/* configure() with the double's settings, `mode` and one more key (k NULL:
 * none); its result, with the error in *err. */
static int configure_kv(const char *mode, const char *k, const char *v, void **cfg,
			struct mf_err *err)
{
	struct test_sec s;
	setenv("TEST_GRAPH_SECRET", SECRET, 1);
	test_sec_init(&s, "graph_url", "http://127.0.0.1:4570", "login_url", "http://127.0.0.1:4570",
		      "tenant", "contoso.onmicrosoft.com", "client_id", "client-1", "client_secret_env",
		      "TEST_GRAPH_SECRET", "mode", mode, k, v, NULL);
	*cfg = NULL;
	return mf_sink_graph.configure(&s.sec, cfg, err);
}

static void *open_cfg_kv(const char *mode, const char *k, const char *v)
{
	void *cfg = NULL;
	struct mf_err err = {0};
	if (configure_kv(mode, k, v, &cfg, &err) < 0)
		fprintf(stderr, "configure: %s\n", err.msg);
	return cfg;
}

static void *open_cfg(const char *mode)
{
	return open_cfg_kv(mode, NULL, NULL);
}

static void path_of(struct mf_path *p, const char *a, const char *b, const char *c)
{
	mf_path_init(p);
	if (a) mf_path_push(p, a, strlen(a));
	if (b) mf_path_push(p, b, strlen(b));
	if (c) mf_path_push(p, c, strlen(c));
}

TEST(import_mime_folders_probe)
{
	void *cfg = open_cfg("import-mime"), *snk = NULL, *inbox = NULL, *deep = NULL, *deep2 = NULL;
	struct mf_err err = {0};
	struct mf_unit unit = {.id = "g1", .mailbox = "alice@contoso.com"};
	struct mf_sink_caps caps;
	mf_sink_graph.caps(cfg, &caps);
	CHECK(caps.crlf && caps.needs_message_id && caps.needs_date);
	CHECK_INT(mf_sink_graph.open(cfg, &unit, &snk, &err), 0);
	struct mf_path pin, pdeep;
	path_of(&pin, "Inbox", NULL, NULL);
	path_of(&pdeep, "Projects", "2024", "Q1 'x'");
	CHECK_INT(mf_sink_graph.folder(snk, &pin, MF_ROLE_INBOX, &inbox, &err), 0);
	int rc = mf_sink_graph.folder(snk, &pdeep, MF_ROLE_NONE, &deep, &err);
	CHECK_INT(rc, 0);
	if (rc < 0)
		fprintf(stderr, "folder: %s\n", err.msg);
	size_t l1, l2;
	unsigned char *m1 = test_message(2000, "one", "<one@x>", &l1);
	unsigned char *m2 = test_message(2000, "two", "<tw'o@x>", &l2);
	struct test_item i1, i1b, i2;
	test_item_init(&i1, m1, l1, 0, "<one@x>", MF_FLAG_SEEN | MF_FLAG_FLAGGED);
	test_item_init(&i1b, m1, l1, 1, "<one@x>", 0);
	test_item_init(&i2, m2, l2, 0, "<tw'o@x>", 0);
	char id[MF_SINK_ID_MAX] = "", id2[MF_SINK_ID_MAX] = "";
	CHECK_INT(mf_sink_graph.probe(snk, inbox, &i1.it, id, &err), 0);
	rc = mf_sink_graph.store(snk, inbox, &i1.it, id, &err);
	CHECK_INT(rc, 0);
	if (rc < 0)
		fprintf(stderr, "store: %s\n", err.msg);
	CHECK(id[0] != '\0');
	CHECK_INT(mf_sink_graph.probe(snk, inbox, &i1.it, id2, &err), 1);
	CHECK_STR(id2, id);
	/* the second identical copy is a different message */
	CHECK_INT(mf_sink_graph.probe(snk, inbox, &i1b.it, id2, &err), 0);
	CHECK_INT(mf_sink_graph.store(snk, inbox, &i1b.it, id2, &err), 0);
	CHECK_INT(mf_sink_graph.probe(snk, inbox, &i1b.it, id2, &err), 1);
	CHECK_INT(mf_sink_graph.store(snk, deep, &i2.it, id, &err), 0);
	CHECK_INT(mf_sink_graph.probe(snk, deep, &i2.it, id, &err), 1);
	CHECK_INT(mf_sink_graph.probe(snk, inbox, &i2.it, id, &err), 0);
	mf_sink_graph.close(snk);

	/* a new session finds the folders by listing (pages of 2) */
	CHECK_INT(mf_sink_graph.open(cfg, &unit, &snk, &err), 0);
	CHECK_INT(mf_sink_graph.folder(snk, &pdeep, MF_ROLE_NONE, &deep2, &err), 0);
	CHECK_INT(mf_sink_graph.probe(snk, deep2, &i2.it, id, &err), 1);

	/* > 150 MB: skipped without a request */
	struct test_item huge;
	test_item_init(&huge, m1, l1, 0, "<huge@x>", 0);
	huge.it.len = (size_t)151 << 20;
	CHECK_INT(mf_sink_graph.store(snk, deep2, &huge.it, id, &err), MF_ETOOBIG);
	mf_sink_graph.close(snk);

	struct state st;
	graph_state("alice@contoso.com", &st);
	CHECK_INT(st.n, 3);
	CHECK_INT(count(&st, "Inbox\t<one@x>\t0\t1\tflagged\timportMime"), 1);
	CHECK_INT(count(&st, "Inbox\t<one@x>\t0\t0\tnotFlagged\timportMime"), 1);
	CHECK_INT(count(&st, "Projects/2024/Q1 'x'\t<tw'o@x>\t0\t0\tnotFlagged\timportMime"), 1);
	mf_path_free(&pin);
	mf_path_free(&pdeep);
	free(m1);
	free(m2);
	mf_sink_graph.free_config(cfg);
}

/* A message over the 4 MB request cap goes the JSON way, its big
 * attachment through an upload session. */
TEST(json_fallback_upload_session)
{
	void *cfg = open_cfg("import-mime"), *snk = NULL, *fh = NULL;
	struct mf_err err = {0};
	struct mf_unit unit = {.id = "g2", .mailbox = "bob@contoso.com"};
	CHECK_INT(mf_sink_graph.open(cfg, &unit, &snk, &err), 0);
	struct mf_path p;
	path_of(&p, "Archive 2019", NULL, NULL);
	CHECK_INT(mf_sink_graph.folder(snk, &p, MF_ROLE_NONE, &fh, &err), 0);
	/* multipart: html body + 3.5 MB binary attachment + small one */
	size_t alen = 3500000;
	unsigned char *att = malloc(alen);
	for (size_t i = 0; i < alen; i++)
		att[i] = (unsigned char)(i * 7 + (i >> 9));
	struct mf_buf b = {0};
	mf_buf_addstr(&b, "From: Carol <carol@example.com>\r\nTo: bob@contoso.com, \"D, E\" <de@example.com>\r\n"
			  "Subject: big one\r\nDate: Mon, 04 Mar 2024 10:00:00 +0000\r\nMessage-ID: <big@x>\r\n"
			  "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"BB\"\r\n\r\n"
			  "--BB\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>hello</p>\r\n"
			  "--BB\r\nContent-Type: application/octet-stream; name=\"data.bin\"\r\n"
			  "Content-Disposition: attachment; filename=\"data.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n");
	struct mf_buf enc = {0};
	mf_http_base64(&enc, att, alen);
	for (size_t o = 0; o < enc.len; o += 76) {
		mf_buf_add(&b, enc.data + o, enc.len - o < 76 ? enc.len - o : 76);
		mf_buf_addstr(&b, "\r\n");
	}
	mf_buf_addstr(&b, "--BB\r\nContent-Type: text/plain; name=\"n.txt\"\r\nContent-Disposition: attachment; filename=\"n.txt\"\r\n\r\nsmall\r\n--BB--\r\n");
	struct test_item it;
	test_item_init(&it, b.data, b.len, 0, "<big@x>", MF_FLAG_SEEN);
	char id[MF_SINK_ID_MAX];
	int rc = mf_sink_graph.store(snk, fh, &it.it, id, &err);
	CHECK_INT(rc, 0);
	if (rc < 0)
		fprintf(stderr, "store big: %s\n", err.msg);
	CHECK_INT(mf_sink_graph.probe(snk, fh, &it.it, id, &err), 1);
	mf_sink_graph.close(snk);
	unsigned char h[32];
	char hex[65];
	mf_sha256(att, alen, h);
	mf_hex(h, 32, hex);
	struct state st;
	graph_state("bob@contoso.com", &st);
	CHECK_INT(st.n, 1);
	CHECK_INT(count(&st, "Archive 2019\t<big@x>\t0\t1\tnotFlagged\tjson\t-\t"), 1);
	CHECK(st.n == 1 && strstr(st.line[0], hex) != NULL);
	mf_path_free(&p);
	mf_buf_free(&b);
	mf_buf_free(&enc);
	free(att);
	mf_sink_graph.free_config(cfg);
}

/* Many workers on one mailbox: the per-mailbox limit keeps the double from
 * ever seeing a 5th request in flight, so no 429 is collected. */
struct worker {
	void *cfg;
	char *mailbox; /* NULL: carol@contoso.com */
	int n;
	int failures;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct mf_err err = {0};
	struct mf_unit unit = {.id = "gw", .mailbox = "carol@contoso.com"};
	if (w->mailbox)
		unit.mailbox = w->mailbox;
	void *snk = NULL, *fh = NULL;
	if (mf_sink_graph.open(w->cfg, &unit, &snk, &err) < 0) {
		w->failures++;
		return NULL;
	}
	struct mf_path p;
	path_of(&p, "Shared", NULL, NULL);
	if (mf_sink_graph.folder(snk, &p, MF_ROLE_NONE, &fh, &err) < 0) {
		fprintf(stderr, "worker folder: %s\n", err.msg);
		w->failures++;
	}
	for (int i = 0; fh && i < 4; i++) {
		char subj[64], mid[64], id[MF_SINK_ID_MAX];
		snprintf(subj, sizeof(subj), "w%d-%d", w->n, i);
		snprintf(mid, sizeof(mid), "<w%d-%d@x>", w->n, i);
		size_t l;
		unsigned char *m = test_message(1000, subj, mid, &l);
		struct test_item it;
		test_item_init(&it, m, l, 0, mid, 0);
		if (mf_sink_graph.store(snk, fh, &it.it, id, &err) < 0) {
			fprintf(stderr, "worker store: %s\n", err.msg);
			w->failures++;
		}
		free(m);
	}
	mf_path_free(&p);
	mf_sink_graph.close(snk);
	return NULL;
}

TEST(concurrency_limit)
{
	void *cfg = open_cfg("import-mime");
	struct worker w[8];
	pthread_t t[8];
	for (int i = 0; i < 8; i++) {
		w[i] = (struct worker){.cfg = cfg, .n = i};
		pthread_create(&t[i], NULL, worker_main, &w[i]);
	}
	int fails = 0;
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		fails += w[i].failures;
	}
	CHECK_INT(fails, 0);
	struct state st;
	graph_state("carol@contoso.com", &st);
	CHECK_INT(st.n, 32);
	CHECK_INT(st.r429, 0);
	CHECK(st.peak >= 2 && st.peak <= 4);
	mf_sink_graph.free_config(cfg);
}

/* The pacing keys: out-of-range values are refused naming the key and the
 * range; mailbox_concurrency = 1 keeps a mailbox at one request in flight
 * however many workers share it. */
TEST(pacing_config)
{
	static const struct {
		const char *key, *value, *range;
	} bad[] = {
		{"mailbox_concurrency", "0", "(1..4"},
		{"mailbox_concurrency", "5", "(1..4"},
		{"requests_per_10min", "0", "(1..10000"},
		{"requests_per_10min", "10001", "(1..10000"},
		{"upload_mb_per_5min", "0", "(1..150"},
		{"upload_mb_per_5min", "151", "(1..150"},
		{"mailbox_concurrency", "two", "not a whole number"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		void *cfg = NULL;
		struct mf_err err = {0};
		CHECK_INT(configure_kv("import-mime", bad[i].key, bad[i].value, &cfg, &err), MF_ECONFIG);
		CHECK(cfg == NULL);
		CHECK(strstr(err.msg, bad[i].key) != NULL);
		CHECK(strstr(err.msg, bad[i].range) != NULL);
		if (!strstr(err.msg, bad[i].key) || !strstr(err.msg, bad[i].range))
			fprintf(stderr, "%s = %s: %s\n", bad[i].key, bad[i].value, err.msg);
		mf_sink_graph.free_config(cfg);
	}
	void *cfg = open_cfg_kv("import-mime", "mailbox_concurrency", "1");
	CHECK(cfg != NULL);
	if (!cfg)
		return;
	struct worker w[6];
	pthread_t t[6];
	for (int i = 0; i < 6; i++) {
		w[i] = (struct worker){.cfg = cfg, .mailbox = "hank@contoso.com", .n = i};
		pthread_create(&t[i], NULL, worker_main, &w[i]);
	}
	int fails = 0;
	for (int i = 0; i < 6; i++) {
		pthread_join(t[i], NULL);
		fails += w[i].failures;
	}
	CHECK_INT(fails, 0);
	struct state st;
	graph_state("hank@contoso.com", &st);
	CHECK_INT(st.n, 24);
	CHECK_INT(st.peak, 1);
	mf_sink_graph.free_config(cfg);
}

/* RFC 2047 decoding, alone. */
static void check_decode(const char *in, const char *want)
{
	struct mf_out o = {0};
	g_hdr_decode(in, strlen(in), &o);
	mf_out_add(&o, "", 1);
	CHECK_INT(o.err, 0);
	CHECK_STR(o.b.data ? o.b.data : "", want);
	mf_out_free(&o);
}

TEST(hdr_decode)
{
	check_decode("=?ISO-8859-1?Q?Andr=E9_M=FCller?=", "Andr\xC3\xA9 M\xC3\xBCller");
	check_decode("=?iso-8859-1?q?Andr=e9?=", "Andr\xC3\xA9");
	/* adjacent words, white space (folding included) between them dropped */
	check_decode("=?UTF-8?B?R3LDvMOfZQ==?=\t =?ISO-8859-1?Q?_aus_K=F6ln?=",
		     "Gr\xC3\xBC\xC3\x9F" "e aus K\xC3\xB6ln");
	/* a character split across two words of one charset */
	check_decode("=?UTF-8?B?R3LD?= =?utf-8?b?vG4=?=", "Gr\xC3\xBCn");
	/* unpadded base64, a language tag */
	check_decode("=?UTF-8?B?5pel5pys?= =?UTF-8*ja?B?5pel?=", "\xE6\x97\xA5\xE6\x9C\xAC\xE6\x97\xA5");
	/* text between words keeps its spaces */
	check_decode("=?UTF-8?Q?a?= b =?UTF-8?Q?c?=", "a b c");
	check_decode("Re: =?UTF-8?Q?caf=C3=A9?= ok", "Re: caf\xC3\xA9 ok");
	/* unknown charset: windows-1252 (0x80 is the euro sign there) */
	check_decode("=?x-unknown?Q?caf=E9_=80?=", "caf\xC3\xA9 \xE2\x82\xAC");
	/* malformed words stay as they are, and so does the space before them */
	check_decode("=?UTF-8?B?@@?= x", "=?UTF-8?B?@@?= x");
	check_decode("=?UTF-8?Q?bad=ZZ?=", "=?UTF-8?Q?bad=ZZ?=");
	check_decode("=?UTF-8?X?abc?=", "=?UTF-8?X?abc?=");
	check_decode("=?UTF-8?B?YQ?= =?UTF-8?B?Y?=", "a =?UTF-8?B?Y?=");
	check_decode("=?UTF-8?Q?open", "=?UTF-8?Q?open");
	check_decode("=??Q?x?=", "=??Q?x?=");
	check_decode("1 =? 2 ?= 3", "1 =? 2 ?= 3");
	/* invalid UTF-8 in a UTF-8 word: U+FFFD */
	check_decode("=?UTF-8?Q?a=FFb?=", "a\xEF\xBF\xBD" "b");
	check_decode("", "");
}

/* The JSON path decodes encoded words in the subject and the display
 * names (quotes removed), and sends names with the addresses. */
TEST(json_encoded_words)
{
	void *cfg = open_cfg("json"), *snk = NULL, *fh = NULL;
	struct mf_err err = {0};
	struct mf_unit unit = {.id = "g7", .mailbox = "ivan@contoso.com"};
	CHECK_INT(mf_sink_graph.open(cfg, &unit, &snk, &err), 0);
	struct mf_path p;
	path_of(&p, "Encoded", NULL, NULL);
	CHECK_INT(mf_sink_graph.folder(snk, &p, MF_ROLE_NONE, &fh, &err), 0);
	static const char msg[] =
		"From: =?ISO-8859-1?Q?Andr=E9_M=FCller?= <andre@example.com>\r\n"
		"To: \"=?UTF-8?B?w5xiZXJ0?=\" <ue@example.com>, \"Doe, \\\"JD\\\" Jane\" <jd@example.com>,\r\n"
		" =?UTF-8?B?R3LD?=\r\n =?UTF-8?B?vG4=?= <gruen@example.com>, plain@example.com,\r\n"
		" old@example.com (=?ISO-8859-1?Q?J=F6rg?=)\r\n"
		"Subject: =?UTF-8?B?R3LDvMOfZQ==?=\r\n =?ISO-8859-1?Q?_aus_K=F6ln?= -\r\n"
		" =?x-unknown?Q?caf=E9?= =?UTF-8?B?@@?=\r\n"
		"Date: Mon, 04 Mar 2024 10:00:00 +0000\r\nMessage-ID: <enc@x>\r\nMIME-Version: 1.0\r\n"
		"Content-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n";
	struct test_item it;
	test_item_init(&it, msg, sizeof(msg) - 1, 0, "<enc@x>", 0);
	char id[MF_SINK_ID_MAX];
	int rc = mf_sink_graph.store(snk, fh, &it.it, id, &err);
	CHECK_INT(rc, 0);
	if (rc < 0)
		fprintf(stderr, "store: %s\n", err.msg);
	mf_sink_graph.close(snk);
	struct state st;
	graph_state("ivan@contoso.com", &st);
	CHECK_INT(st.nhead, 1);
	CHECK_STR(st.head[0],
		  "<enc@x>\t"
		  "Gr\xC3\xBC\xC3\x9F" "e aus K\xC3\xB6ln - caf\xC3\xA9 =?UTF-8?B?@@?=\t"
		  "Andr\xC3\xA9 M\xC3\xBCller<andre@example.com>\t"
		  "\xC3\x9C" "bert<ue@example.com>|Doe, \"JD\" Jane<jd@example.com>|"
		  "Gr\xC3\xBCn<gruen@example.com>|<plain@example.com>|J\xC3\xB6rg<old@example.com>");
	mf_path_free(&p);
	mf_sink_graph.free_config(cfg);
}

/* 503 before storing, 504 after storing, tokens expiring: every message
 * still exactly once. */
TEST(faults_exactly_once)
{
	restart_double("--fail-before 3 --fail-after 4 --expire-early 7 --folder-race");
	void *cfg = open_cfg("import-mime"), *snk = NULL, *fh = NULL, *fj = NULL;
	struct mf_err err = {0};
	struct mf_unit unit = {.id = "g3", .mailbox = "dave@contoso.com"};
	CHECK_INT(mf_sink_graph.open(cfg, &unit, &snk, &err), 0);
	struct mf_path p, pj;
	path_of(&p, "Faulty", "Child", NULL);
	path_of(&pj, "Json", NULL, NULL);
	int rc = mf_sink_graph.folder(snk, &p, MF_ROLE_NONE, &fh, &err);
	CHECK_INT(rc, 0);
	if (rc < 0)
		fprintf(stderr, "folder: %s\n", err.msg);
	CHECK_INT(mf_sink_graph.folder(snk, &pj, MF_ROLE_NONE, &fj, &err), 0);
	void *cfgj = open_cfg("json"), *snkj = NULL;
	CHECK_INT(mf_sink_graph.open(cfgj, &unit, &snkj, &err), 0);
	void *fj2 = NULL;
	CHECK_INT(mf_sink_graph.folder(snkj, &pj, MF_ROLE_NONE, &fj2, &err), 0);
	int fails = 0;
	for (int i = 0; i < 12; i++) {
		char subj[64], mid[64], id[MF_SINK_ID_MAX];
		snprintf(subj, sizeof(subj), "f%d", i);
		snprintf(mid, sizeof(mid), "<f%d@x>", i);
		size_t l;
		unsigned char *m = test_message(1500, subj, mid, &l);
		struct test_item it;
		test_item_init(&it, m, l, 0, mid, MF_FLAG_SEEN);
		if (i % 3 == 2)
			rc = mf_sink_graph.store(snkj, fj2, &it.it, id, &err);
		else
			rc = mf_sink_graph.store(snk, fh, &it.it, id, &err);
		if (rc < 0) {
			fprintf(stderr, "store %d: %s\n", i, err.msg);
			fails++;
		}
		CHECK(strstr(err.msg, SECRET) == NULL);
		free(m);
	}
	CHECK_INT(fails, 0);
	mf_sink_graph.close(snk);
	mf_sink_graph.close(snkj);
	struct state st;
	graph_state("dave@contoso.com", &st);
	CHECK_INT(st.n, 12);
	for (int i = 0; i < 12; i++) {
		char pre[128];
		snprintf(pre, sizeof(pre), "%s\t<f%d@x>\t0\t1\t", i % 3 == 2 ? "Json" : "Faulty/Child", i);
		CHECK_INT(count(&st, pre), 1);
	}
	CHECK(st.r503 > 0);
	CHECK(st.r504 > 0);
	CHECK(st.r401 > 0);
	CHECK(st.issued >= 2);
	mf_path_free(&p);
	mf_path_free(&pj);
	mf_sink_graph.free_config(cfg);
	mf_sink_graph.free_config(cfgj);
}

/* message_ids(): every message of the folder once per copy, across pages
 * (the double serves at most 3 a page), nothing from other folders. */
struct ids {
	int n, stop_at;
	char id[16][64];
};

static int collect_id(void *arg, const char *message_id)
{
	struct ids *l = arg;
	if (l->stop_at && l->n == l->stop_at)
		return MF_EINTERRUPTED;
	if (l->n < 16)
		snprintf(l->id[l->n], sizeof(l->id[0]), "%s", message_id);
	l->n++;
	return 0;
}

static int count_id(const struct ids *l, const char *id)
{
	int c = 0;
	for (int i = 0; i < l->n && i < 16; i++)
		c += strcmp(l->id[i], id) == 0;
	return c;
}

TEST(message_ids_paged)
{
	void *cfg = open_cfg("import-mime"), *snk = NULL, *fh = NULL, *other = NULL, *empty = NULL;
	struct mf_err err = {0};
	struct mf_unit unit = {.id = "g5", .mailbox = "frank@contoso.com"};
	CHECK_INT(mf_sink_graph.open(cfg, &unit, &snk, &err), 0);
	struct mf_path p, po, pe;
	path_of(&p, "Listed", NULL, NULL);
	path_of(&po, "Other", NULL, NULL);
	path_of(&pe, "Empty", NULL, NULL);
	CHECK_INT(mf_sink_graph.folder(snk, &p, MF_ROLE_NONE, &fh, &err), 0);
	CHECK_INT(mf_sink_graph.folder(snk, &po, MF_ROLE_NONE, &other, &err), 0);
	CHECK_INT(mf_sink_graph.folder(snk, &pe, MF_ROLE_NONE, &empty, &err), 0);
	/* 7 in "Listed" (<m3@x> twice), 1 in "Other" */
	for (int i = 0; i < 8; i++) {
		char subj[32], mid[32], id[MF_SINK_ID_MAX];
		snprintf(subj, sizeof(subj), "m%d", i);
		snprintf(mid, sizeof(mid), "<m%d@x>", i == 6 ? 3 : i);
		size_t l;
		unsigned char *m = test_message(800, subj, mid, &l);
		struct test_item it;
		test_item_init(&it, m, l, i == 6, mid, 0);
		int rc = mf_sink_graph.store(snk, i == 7 ? other : fh, &it.it, id, &err);
		CHECK_INT(rc, 0);
		if (rc < 0)
			fprintf(stderr, "store %d: %s\n", i, err.msg);
		free(m);
	}
	struct ids got = {0};
	int rc = mf_sink_graph.message_ids(snk, fh, collect_id, &got, &err);
	CHECK_INT(rc, 0);
	if (rc < 0)
		fprintf(stderr, "message_ids: %s\n", err.msg);
	CHECK_INT(got.n, 7);
	CHECK_INT(count_id(&got, "<m0@x>"), 1);
	CHECK_INT(count_id(&got, "<m3@x>"), 2);
	CHECK_INT(count_id(&got, "<m5@x>"), 1);
	CHECK_INT(count_id(&got, "<m6@x>"), 0);
	CHECK_INT(count_id(&got, "<m7@x>"), 0);
	struct ids one = {0};
	CHECK_INT(mf_sink_graph.message_ids(snk, other, collect_id, &one, &err), 0);
	CHECK_INT(one.n, 1);
	CHECK_INT(count_id(&one, "<m7@x>"), 1);
	struct ids none = {0};
	CHECK_INT(mf_sink_graph.message_ids(snk, empty, collect_id, &none, &err), 0);
	CHECK_INT(none.n, 0);
	/* the callback stops the listing, on the second page */
	struct ids stop = {.stop_at = 4};
	CHECK_INT(mf_sink_graph.message_ids(snk, fh, collect_id, &stop, &err), MF_EINTERRUPTED);
	CHECK_INT(stop.n, 4);
	mf_sink_graph.close(snk);
	mf_path_free(&p);
	mf_path_free(&po);
	mf_path_free(&pe);
	mf_sink_graph.free_config(cfg);
}

TEST(bad_secret)
{
	setenv("TEST_GRAPH_SECRET2", "wrong~secret", 1);
	struct test_sec s;
	test_sec_init(&s, "graph_url", "http://127.0.0.1:4570", "login_url", "http://127.0.0.1:4570",
		      "tenant", "contoso.onmicrosoft.com", "client_id", "client-2",
		      "client_secret_env", "TEST_GRAPH_SECRET2", NULL);
	void *cfg = NULL, *snk = NULL, *fh = NULL;
	struct mf_err err = {0};
	struct mf_unit unit = {.id = "g4", .mailbox = "erin@contoso.com"};
	CHECK_INT(mf_sink_graph.configure(&s.sec, &cfg, &err), 0);
	CHECK_INT(mf_sink_graph.open(cfg, &unit, &snk, &err), 0);
	struct mf_path p;
	path_of(&p, "X", NULL, NULL);
	CHECK_INT(mf_sink_graph.folder(snk, &p, MF_ROLE_NONE, &fh, &err), MF_EAUTH);
	CHECK(strstr(err.msg, "wrong~secret") == NULL && strstr(err.msg, "wrong%7Esecret") == NULL);
	CHECK(strstr(err.msg, "invalid_client") != NULL);
	mf_sink_graph.close(snk);
	mf_sink_graph.free_config(cfg);
	mf_path_free(&p);
}

/* Multipart with an html body, `nsmall` small attachments and one of
 * `big` bytes (0 = none) into b. */
static void multipart(struct mf_buf *b, const char *msgid, int nsmall, size_t big)
{
	mf_buf_printf(b, "From: Carol <carol@example.com>\r\nTo: bob@contoso.com\r\nSubject: parts\r\n"
			 "Date: Mon, 04 Mar 2024 10:00:00 +0000\r\nMessage-ID: %s\r\nMIME-Version: 1.0\r\n"
			 "Content-Type: multipart/mixed; boundary=\"BB\"\r\n\r\n"
			 "--BB\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>hello</p>\r\n", msgid);
	for (int i = 0; i < nsmall; i++)
		mf_buf_printf(b, "--BB\r\nContent-Type: text/plain; name=\"s%d.txt\"\r\n"
				 "Content-Disposition: attachment; filename=\"s%d.txt\"\r\n\r\nsmall %d\r\n", i, i, i);
	if (big) {
		mf_buf_addstr(b, "--BB\r\nContent-Type: application/octet-stream; name=\"big.bin\"\r\n"
				 "Content-Disposition: attachment; filename=\"big.bin\"\r\n"
				 "Content-Transfer-Encoding: base64\r\n\r\n");
		unsigned char *att = malloc(big);
		for (size_t i = 0; i < big; i++)
			att[i] = (unsigned char)(i * 13 + (i >> 11));
		struct mf_buf enc = {0};
		mf_http_base64(&enc, att, big);
		for (size_t o = 0; o < enc.len; o += 76) {
			mf_buf_add(b, enc.data + o, enc.len - o < 76 ? enc.len - o : 76);
			mf_buf_addstr(b, "\r\n");
		}
		mf_buf_free(&enc);
		free(att);
	}
	mf_buf_addstr(b, "--BB--\r\n");
}

/* The JSON path under lost answers: attachment POSTs and upload chunks that
 * landed but were answered 504 are found (attachment count, the session's
 * nextExpectedRanges) instead of being sent twice; a message left
 * half-made by a dead run is not taken for stored by the probe. */
TEST(json_attachments_exactly_once)
{
	restart_double("--fail-attach-after 2");
	void *cfg = open_cfg("json"), *snk = NULL, *fh = NULL;
	struct mf_err err = {0};
	struct mf_unit unit = {.id = "g6", .mailbox = "gina@contoso.com"};
	CHECK_INT(mf_sink_graph.open(cfg, &unit, &snk, &err), 0);
	struct mf_path p;
	path_of(&p, "Parts", NULL, NULL);
	CHECK_INT(mf_sink_graph.folder(snk, &p, MF_ROLE_NONE, &fh, &err), 0);
	struct mf_buf whole = {0}, bare = {0}, half = {0};
	multipart(&whole, "<whole@x>", 3, 5000000); /* the big one takes 2 chunks */
	multipart(&bare, "<half@x>", 0, 0);
	multipart(&half, "<half@x>", 2, 0);
	struct test_item iw, ib, ih;
	test_item_init(&iw, whole.data, whole.len, 0, "<whole@x>", 0);
	test_item_init(&ib, bare.data, bare.len, 0, "<half@x>", 0);
	test_item_init(&ih, half.data, half.len, 0, "<half@x>", 0);
	char id[MF_SINK_ID_MAX];
	int rc = mf_sink_graph.store(snk, fh, &iw.it, id, &err);
	CHECK_INT(rc, 0);
	if (rc < 0)
		fprintf(stderr, "store: %s\n", err.msg);
	CHECK_INT(mf_sink_graph.probe(snk, fh, &iw.it, id, &err), 1);
	/* "<half@x>" made without its attachments stands for a run killed
	 * between the create and the attachments */
	CHECK_INT(mf_sink_graph.store(snk, fh, &ib.it, id, &err), 0);
	CHECK_INT(mf_sink_graph.probe(snk, fh, &ih.it, id, &err), 0);
	struct state st;
	graph_state("gina@contoso.com", &st);
	CHECK_INT(count(&st, "Parts\t<half@x>"), 0); /* deleted by the probe */
	CHECK_INT(mf_sink_graph.store(snk, fh, &ih.it, id, &err), 0);
	CHECK_INT(mf_sink_graph.probe(snk, fh, &ih.it, id, &err), 1);
	mf_sink_graph.close(snk);
	graph_state("gina@contoso.com", &st);
	CHECK_INT(st.n, 2);
	CHECK(st.r504 >= 2);
	/* each attachment exactly once: 4 and 2 sha256s, comma separated */
	for (int i = 0; i < st.n; i++) {
		const char *tab = strrchr(st.line[i], '\t');
		int commas = 0;
		for (const char *c = tab ? tab : ""; *c; c++)
			commas += *c == ',';
		if (strstr(st.line[i], "<whole@x>"))
			CHECK_INT(commas, 3);
		else
			CHECK_INT(commas, 1);
	}
	mf_path_free(&p);
	mf_buf_free(&whole);
	mf_buf_free(&bare);
	mf_buf_free(&half);
	mf_sink_graph.free_config(cfg);
}

/* 503 answers without Retry-After: the client backs off by itself (full
 * jitter) and every message still arrives once. */
TEST(no_retry_after)
{
	restart_double("--fail-before 2 --no-retry-after");
	void *cfg = open_cfg("import-mime"), *snk = NULL, *fh = NULL;
	struct mf_err err = {0};
	struct mf_unit unit = {.id = "g7", .mailbox = "hank@contoso.com"};
	CHECK_INT(mf_sink_graph.open(cfg, &unit, &snk, &err), 0);
	struct mf_path p;
	path_of(&p, "NoRA", NULL, NULL);
	CHECK_INT(mf_sink_graph.folder(snk, &p, MF_ROLE_NONE, &fh, &err), 0);
	for (int i = 0; i < 6; i++) {
		char subj[32], mid[32], id[MF_SINK_ID_MAX];
		snprintf(subj, sizeof(subj), "r%d", i);
		snprintf(mid, sizeof(mid), "<r%d@x>", i);
		size_t l;
		unsigned char *m = test_message(700, subj, mid, &l);
		struct test_item it;
		test_item_init(&it, m, l, 0, mid, 0);
		int rc = mf_sink_graph.store(snk, fh, &it.it, id, &err);
		CHECK_INT(rc, 0);
		if (rc < 0)
			fprintf(stderr, "store %d: %s\n", i, err.msg);
		free(m);
	}
	mf_sink_graph.close(snk);
	struct state st;
	graph_state("hank@contoso.com", &st);
	CHECK_INT(st.n, 6);
	CHECK(st.r503 >= 3);
	for (int i = 0; i < 6; i++) {
		char pre[64];
		snprintf(pre, sizeof(pre), "NoRA\t<r%d@x>\t", i);
		CHECK_INT(count(&st, pre), 1);
	}
	mf_path_free(&p);
	mf_sink_graph.free_config(cfg);
}

/* Two different messages with one Message-ID (a broken mailer, an edited
 * copy) in one folder: the probe for the second must not take the first
 * for it (that would lose the second after a crash). Told apart by the
 * Date header (Graph's sentDateTime). */
TEST(shared_message_id)
{
	void *cfg = open_cfg("import-mime"), *snk = NULL, *fh = NULL;
	struct mf_err err = {0};
	struct mf_unit unit = {.id = "g8", .mailbox = "ivy@contoso.com"};
	CHECK_INT(mf_sink_graph.open(cfg, &unit, &snk, &err), 0);
	struct mf_path p;
	path_of(&p, "Same", NULL, NULL);
	CHECK_INT(mf_sink_graph.folder(snk, &p, MF_ROLE_NONE, &fh, &err), 0);
	const char *a = "From: a@example.com\r\nTo: b@example.com\r\nSubject: first\r\n"
			"Date: Tue, 14 Nov 2023 22:13:20 +0000\r\nMessage-ID: <same@x>\r\n\r\nfirst body\r\n";
	const char *b = "From: a@example.com\r\nTo: b@example.com\r\nSubject: second\r\n"
			"Date: Wed, 15 Nov 2023 09:00:00 +0100\r\nMessage-ID: <same@x>\r\n\r\nsecond body\r\n";
	struct test_item ia, ib;
	test_item_init(&ia, a, strlen(a), 0, "<same@x>", 0);
	test_item_init(&ib, b, strlen(b), 0, "<same@x>", 0);
	char ida[MF_SINK_ID_MAX], idb[MF_SINK_ID_MAX], got[MF_SINK_ID_MAX];
	CHECK_INT(mf_sink_graph.store(snk, fh, &ia.it, ida, &err), 0);
	CHECK_INT(mf_sink_graph.probe(snk, fh, &ib.it, got, &err), 0); /* not the first one */
	CHECK_INT(mf_sink_graph.store(snk, fh, &ib.it, idb, &err), 0);
	CHECK_INT(mf_sink_graph.probe(snk, fh, &ib.it, got, &err), 1);
	CHECK_STR(got, idb);
	CHECK_INT(mf_sink_graph.probe(snk, fh, &ia.it, got, &err), 1);
	CHECK_STR(got, ida);
	mf_sink_graph.close(snk);
	mf_path_free(&p);
	mf_sink_graph.free_config(cfg);
}

/* importMime needs Mail-Advanced.ReadWrite.All and the global service's
 * beta endpoint: an app without the role (403) and a national cloud (no
 * importMime: 400) still migrate, by the JSON path, decided once per job;
 * check() (plan) says which path and why. */
/* check() and open_read, failing the test (not crashing it) on a sink
 * without them */
static int do_check(void *cfg, const struct mf_unit *u, struct mf_err *err)
{
	CHECK(mf_sink_graph.check != NULL);
	return mf_sink_graph.check ? mf_sink_graph.check(cfg, u, err) : MF_EINTERNAL;
}

static int do_open_read(void *cfg, const struct mf_unit *u, void **snk, struct mf_err *err)
{
	CHECK(mf_sink_graph.open_read != NULL);
	return mf_sink_graph.open_read ? mf_sink_graph.open_read(cfg, u, snk, err) : MF_EINTERNAL;
}

static void store_some(void *cfg, const char *mbx, const char *folder, int n, int *fails)
{
	void *snk = NULL, *fh = NULL;
	struct mf_err err = {0};
	struct mf_unit unit = {.id = "gp", .mailbox = (char *)mbx};
	struct mf_path p;
	path_of(&p, folder, NULL, NULL);
	if (mf_sink_graph.open(cfg, &unit, &snk, &err) < 0 ||
	    mf_sink_graph.folder(snk, &p, MF_ROLE_NONE, &fh, &err) < 0) {
		fprintf(stderr, "open/folder: %s\n", err.msg);
		++*fails;
	}
	for (int i = 0; fh && i < n; i++) {
		char subj[32], mid[64], id[MF_SINK_ID_MAX];
		snprintf(subj, sizeof(subj), "p%d", i);
		snprintf(mid, sizeof(mid), "<p%d-%s@x>", i, folder);
		size_t l;
		unsigned char *m = test_message(900, subj, mid, &l);
		struct test_item it;
		test_item_init(&it, m, l, 0, mid, MF_FLAG_SEEN);
		if (mf_sink_graph.store(snk, fh, &it.it, id, &err) < 0) {
			fprintf(stderr, "store %s %d: %s\n", folder, i, err.msg);
			++*fails;
		} else if (mf_sink_graph.probe(snk, fh, &it.it, id, &err) != 1) {
			fprintf(stderr, "probe %s %d: not found\n", folder, i);
			++*fails;
		}
		free(m);
	}
	if (snk)
		mf_sink_graph.close(snk);
	mf_path_free(&p);
}

TEST(import_path_fallback)
{
	restart_double("--no-advanced-role");
	void *cfg = open_cfg("import-mime");
	struct mf_err err = {0};
	struct mf_unit unit = {.id = "gp", .mailbox = "kim@contoso.com"};
	CHECK_INT(do_check(cfg, &unit, &err), 0);
	CHECK(strstr(err.msg, "path JSON") != NULL);
	CHECK(strstr(err.msg, "Mail-Advanced.ReadWrite.All") != NULL);
	fprintf(stderr, "plan note: %s\n", err.msg);
	int fails = 0;
	store_some(cfg, "kim@contoso.com", "NoRole", 3, &fails);
	CHECK_INT(fails, 0);
	struct state st;
	graph_state("kim@contoso.com", &st);
	CHECK_INT(count(&st, "NoRole\t<p"), 3);
	CHECK_INT(count(&st, "NoRole\t<p0-NoRole@x>\t0\t1\tnotFlagged\tjson"), 1);
	mf_sink_graph.free_config(cfg);

	/* the role is there (the token says so) but the endpoint has no
	 * importMime: the first answer switches the job to JSON */
	restart_double("--sovereign");
	cfg = open_cfg("import-mime");
	fails = 0;
	store_some(cfg, "kim@contoso.com", "Sovereign", 3, &fails);
	CHECK_INT(fails, 0);
	graph_state("kim@contoso.com", &st);
	CHECK_INT(count(&st, "Sovereign\t<p"), 3);
	CHECK_INT(count(&st, "Sovereign\t<p2-Sovereign@x>\t0\t1\tnotFlagged\tjson"), 1);
	CHECK(st.r400 == 1); /* importMime tried once only */
	err = (struct mf_err){0};
	CHECK_INT(do_check(cfg, &unit, &err), 0);
	CHECK(strstr(err.msg, "path JSON") != NULL && strstr(err.msg, "importMime answered 400") != NULL);
	mf_sink_graph.free_config(cfg);

	/* with the role and importMime, plan says so */
	restart_double("");
	cfg = open_cfg("import-mime");
	err = (struct mf_err){0};
	CHECK_INT(do_check(cfg, &unit, &err), 0);
	CHECK(strstr(err.msg, "path importMime") != NULL);
	CHECK(strstr(err.msg, "inbox=Inbox") != NULL && strstr(err.msg, "sentitems=Sent Items") != NULL);
	mf_sink_graph.free_config(cfg);
}

/* Role folders by well-known name, their children under them, in a
 * German mailbox: Sent/2019, INBOX/Projekte and Trash/old land under
 * Gesendete Elemente, Posteingang and Geloeschte Elemente; open_read finds
 * them and makes nothing. */
TEST(role_folders_localized)
{
	restart_double("--locale de");
	void *cfg = open_cfg("import-mime"), *snk = NULL;
	struct mf_err err = {0};
	struct mf_unit unit = {.id = "gl", .mailbox = "lena@contoso.com"};
	CHECK_INT(do_check(cfg, &unit, &err), 0);
	CHECK(strstr(err.msg, "inbox=Posteingang") != NULL);
	CHECK_INT(mf_sink_graph.open(cfg, &unit, &snk, &err), 0);
	static const char *const paths[][2] = {
		{"Sent", "2019"}, {"INBOX", "Projekte"}, {"Trash", "old"}, {"INBOX", NULL}, {"Sent", NULL},
		{"Gesendet", "2020"},
	};
	/* the last: a child of a source folder with the Sent role whose name
	 * no table knows (the engine gives it its parent's role,
	 * caps.ancestor_role) */
	static const enum mf_role roles[] = {MF_ROLE_NONE, MF_ROLE_NONE, MF_ROLE_NONE, MF_ROLE_INBOX,
					      MF_ROLE_SENT, MF_ROLE_SENT};
	for (int i = 0; i < 6; i++) {
		struct mf_path p;
		void *fh = NULL;
		path_of(&p, paths[i][0], paths[i][1], NULL);
		int rc = mf_sink_graph.folder(snk, &p, roles[i], &fh, &err);
		CHECK_INT(rc, 0);
		if (rc < 0)
			fprintf(stderr, "folder %s: %s\n", paths[i][0], err.msg);
		char mid[64], id[MF_SINK_ID_MAX];
		snprintf(mid, sizeof(mid), "<loc%d@x>", i);
		size_t l;
		unsigned char *m = test_message(700, "loc", mid, &l);
		struct test_item it;
		test_item_init(&it, m, l, 0, mid, 0);
		if (fh)
			CHECK_INT(mf_sink_graph.store(snk, fh, &it.it, id, &err), 0);
		free(m);
		mf_path_free(&p);
	}
	mf_sink_graph.close(snk);
	struct state st;
	graph_state("lena@contoso.com", &st);
	CHECK_INT(count(&st, "Gesendete Elemente/2019\t<loc0@x>"), 1);
	CHECK_INT(count(&st, "Posteingang/Projekte\t<loc1@x>"), 1);
	CHECK_INT(count(&st, "Gel\xC3\xB6schte Elemente/old\t<loc2@x>"), 1);
	CHECK_INT(count(&st, "Posteingang\t<loc3@x>"), 1);
	CHECK_INT(count(&st, "Gesendete Elemente\t<loc4@x>"), 1);
	CHECK_INT(count(&st, "Gesendete Elemente/2020\t<loc5@x>"), 1);
	CHECK_INT(st.nfolder, 10); /* 6 well-known + 4 children: no new top level */

	/* open_read: finds, never makes */
	void *ro = NULL, *fh = NULL;
	CHECK_INT(do_open_read(cfg, &unit, &ro, &err), 0);
	if (!ro) {
		mf_sink_graph.free_config(cfg);
		return;
	}
	struct mf_path p, miss;
	path_of(&p, "Trash", "old", NULL);
	path_of(&miss, "Trash", "missing", NULL);
	CHECK_INT(mf_sink_graph.folder(ro, &p, MF_ROLE_NONE, &fh, &err), 0);
	size_t l;
	unsigned char *m = test_message(700, "loc", "<loc2@x>", &l);
	struct test_item it;
	test_item_init(&it, m, l, 0, "<loc2@x>", 0);
	char id[MF_SINK_ID_MAX];
	if (fh)
		CHECK_INT(mf_sink_graph.probe(ro, fh, &it.it, id, &err), 1);
	CHECK_INT(mf_sink_graph.folder(ro, &miss, MF_ROLE_NONE, &fh, &err), MF_ENOTFOUND);
	mf_path_free(&miss);
	path_of(&miss, "Nowhere", NULL, NULL);
	CHECK_INT(mf_sink_graph.folder(ro, &miss, MF_ROLE_NONE, &fh, &err), MF_ENOTFOUND);
	mf_sink_graph.close(ro);
	graph_state("lena@contoso.com", &st);
	CHECK_INT(st.nfolder, 10); /* open_read made none */
	/* no such mailbox */
	struct mf_unit nobody = {.id = "gn", .mailbox = "nobody@contoso.com"};
	restart_double("--locale de --no-such-mailbox nobody@contoso.com");
	CHECK_INT(do_open_read(cfg, &nobody, &ro, &err), MF_ENOTFOUND);
	free(m);
	mf_path_free(&p);
	mf_path_free(&miss);
	mf_sink_graph.free_config(cfg);
}

/* Attachment sizes at the edges of "under 3 MB" (a POST) and "between 3 MB
 * and 150 MB" (an upload session, chunks < 4 MB in multiples of 320 KiB),
 * on both readings of MB: each arrives whole, once. */
TEST(attachment_edges)
{
	static const size_t sizes[] = {2999999, 3000000, 3145728, 3145729};
	static const char *const modes[] = {"--mb binary", "--mb decimal"};
	for (int m = 0; m < 2; m++) {
		restart_double(modes[m]);
		void *cfg = open_cfg("json"), *snk = NULL, *fh = NULL;
		struct mf_err err = {0};
		struct mf_unit unit = {.id = "ge", .mailbox = "mia@contoso.com"};
		CHECK_INT(mf_sink_graph.open(cfg, &unit, &snk, &err), 0);
		struct mf_path p;
		path_of(&p, "Edges", NULL, NULL);
		CHECK_INT(mf_sink_graph.folder(snk, &p, MF_ROLE_NONE, &fh, &err), 0);
		for (int i = 0; fh && i < 4; i++) {
			struct mf_buf b = {0};
			char mid[64], id[MF_SINK_ID_MAX];
			snprintf(mid, sizeof(mid), "<edge%zu@x>", sizes[i]);
			multipart(&b, mid, 0, sizes[i]);
			struct test_item it;
			test_item_init(&it, b.data, b.len, 0, mid, 0);
			int rc = mf_sink_graph.store(snk, fh, &it.it, id, &err);
			CHECK_INT(rc, 0);
			if (rc < 0)
				fprintf(stderr, "%s, %zu bytes: %s\n", modes[m], sizes[i], err.msg);
			mf_buf_free(&b);
		}
		mf_sink_graph.close(snk);
		struct state st;
		graph_state("mia@contoso.com", &st);
		for (int i = 0; i < 4; i++) {
			char want[128];
			snprintf(want, sizeof(want), "<edge%zu@x>\tbig.bin\t0\t-\t%zu", sizes[i], sizes[i]);
			CHECK_INT(count_att(&st, want), 1);
		}
		mf_path_free(&p);
		mf_sink_graph.free_config(cfg);
	}
}

/* Exchange's sentDateTime need not be the Date header as we read it: the
 * probe must still find the message it made (else every rerun and every
 * ambiguous retry imports it again). importMime only: the JSON path sets
 * sentDateTime itself. */
TEST(probe_date_skew)
{
	restart_double("--sent-skew 3600");
	static const char *const modes[] = {"import-mime"};
	for (int m = 0; m < 1; m++) {
		void *cfg = open_cfg(modes[m]), *snk = NULL, *fh = NULL;
		struct mf_err err = {0};
		struct mf_unit unit = {.id = "gs", .mailbox = "nina@contoso.com"};
		CHECK_INT(mf_sink_graph.open(cfg, &unit, &snk, &err), 0);
		struct mf_path p;
		path_of(&p, modes[m], NULL, NULL);
		CHECK_INT(mf_sink_graph.folder(snk, &p, MF_ROLE_NONE, &fh, &err), 0);
		const char *msg = "From: a@example.com\r\nTo: b@example.com\r\n"
				  "Subject: =?UTF-8?Q?skewed_caf=C3=A9?=\r\n"
				  "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\nMessage-ID: <skew@x>\r\n\r\nbody\r\n";
		struct test_item it;
		test_item_init(&it, msg, strlen(msg), 0, "<skew@x>", 0);
		char id[MF_SINK_ID_MAX], got[MF_SINK_ID_MAX] = "";
		CHECK_INT(mf_sink_graph.store(snk, fh, &it.it, id, &err), 0);
		CHECK_INT(mf_sink_graph.probe(snk, fh, &it.it, got, &err), 1);
		CHECK_STR(got, id);
		mf_sink_graph.close(snk);
		mf_path_free(&p);
		mf_sink_graph.free_config(cfg);
	}
}

/* Read and draft state: PR_MESSAGE_FLAGS carries the read (0x1) and unsent
 * (0x8) bits of the item's flags; drafts arrive as drafts on both paths
 * (importMime would make them non-drafts: they go the JSON way). */
TEST(read_draft_state)
{
	static const char *const modes[] = {"import-mime", "json"};
	static const unsigned flags[] = {0, MF_FLAG_SEEN, MF_FLAG_DRAFT, MF_FLAG_DRAFT | MF_FLAG_SEEN};
	for (int m = 0; m < 2; m++) {
		void *cfg = open_cfg(modes[m]), *snk = NULL, *fh = NULL;
		struct mf_err err = {0};
		struct mf_unit unit = {.id = "gd", .mailbox = "olga@contoso.com"};
		CHECK_INT(mf_sink_graph.open(cfg, &unit, &snk, &err), 0);
		struct mf_path p;
		path_of(&p, modes[m], NULL, NULL);
		CHECK_INT(mf_sink_graph.folder(snk, &p, MF_ROLE_NONE, &fh, &err), 0);
		for (int i = 0; fh && i < 4; i++) {
			char mid[64], id[MF_SINK_ID_MAX];
			snprintf(mid, sizeof(mid), "<rd%d@x>", i);
			size_t l;
			unsigned char *msg = test_message(600, "rd", mid, &l);
			struct test_item it;
			test_item_init(&it, msg, l, 0, mid, flags[i]);
			CHECK_INT(mf_sink_graph.store(snk, fh, &it.it, id, &err), 0);
			free(msg);
		}
		mf_sink_graph.close(snk);
		struct state st;
		graph_state("olga@contoso.com", &st);
		for (int i = 0; i < 4; i++) {
			char pre[128];
			snprintf(pre, sizeof(pre), "%s\t<rd%d@x>\t%d\t%d\t", modes[m], i,
				 !!(flags[i] & MF_FLAG_DRAFT), !!(flags[i] & MF_FLAG_SEEN));
			CHECK_INT(count(&st, pre), 1);
			if (count(&st, pre) != 1)
				fprintf(stderr, "want %s\n", pre);
		}
		mf_path_free(&p);
		mf_sink_graph.free_config(cfg);
	}
}

/* An HTML message with inline images (cid: references): the images arrive
 * with isInline and their contentId, a small one by POST and a big one by
 * upload session; a real attachment stays a plain one. */
TEST(inline_images)
{
	void *cfg = open_cfg("json"), *snk = NULL, *fh = NULL;
	struct mf_err err = {0};
	struct mf_unit unit = {.id = "gi", .mailbox = "paul@contoso.com"};
	CHECK_INT(mf_sink_graph.open(cfg, &unit, &snk, &err), 0);
	struct mf_path p;
	path_of(&p, "Inline", NULL, NULL);
	CHECK_INT(mf_sink_graph.folder(snk, &p, MF_ROLE_NONE, &fh, &err), 0);
	struct mf_buf b = {0}, enc = {0};
	size_t big = 3200000;
	unsigned char *img = malloc(big);
	for (size_t i = 0; i < big; i++)
		img[i] = (unsigned char)(i * 31 + (i >> 7));
	mf_http_base64(&enc, img, big);
	mf_buf_addstr(&b, "From: a@example.com\r\nTo: b@example.com\r\nSubject: pictures\r\n"
			  "Date: Mon, 04 Mar 2024 10:00:00 +0000\r\nMessage-ID: <cid@x>\r\nMIME-Version: 1.0\r\n"
			  "Content-Type: multipart/mixed; boundary=\"MM\"\r\n\r\n"
			  "--MM\r\nContent-Type: multipart/related; boundary=\"RR\"\r\n\r\n"
			  "--RR\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
			  "<p><img src=\"cid:logo@x\"><img src=\"cid:photo@x\"></p>\r\n"
			  "--RR\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\n"
			  "Content-Disposition: inline; filename=\"logo.png\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
			  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==\r\n"
			  "--RR\r\nContent-Type: image/jpeg; name=\"photo.jpg\"\r\nContent-ID: <photo@x>\r\n"
			  "Content-Transfer-Encoding: base64\r\n\r\n");
	for (size_t o = 0; o < enc.len; o += 76) {
		mf_buf_add(&b, enc.data + o, enc.len - o < 76 ? enc.len - o : 76);
		mf_buf_addstr(&b, "\r\n");
	}
	mf_buf_addstr(&b, "--RR--\r\n--MM\r\nContent-Type: text/plain; name=\"a.txt\"\r\n"
			  "Content-ID: <att@x>\r\nContent-Disposition: attachment; filename=\"a.txt\"\r\n\r\n"
			  "plain\r\n--MM--\r\n");
	struct test_item it;
	test_item_init(&it, b.data, b.len, 0, "<cid@x>", 0);
	char id[MF_SINK_ID_MAX];
	int rc = mf_sink_graph.store(snk, fh, &it.it, id, &err);
	CHECK_INT(rc, 0);
	if (rc < 0)
		fprintf(stderr, "store: %s\n", err.msg);
	mf_sink_graph.close(snk);
	struct state st;
	graph_state("paul@contoso.com", &st);
	CHECK_INT(count_att(&st, "<cid@x>\tlogo.png\t1\tlogo@x\t70"), 1);
	CHECK_INT(count_att(&st, "<cid@x>\tphoto.jpg\t1\tphoto@x\t3200000"), 1);
	CHECK_INT(count_att(&st, "<cid@x>\ta.txt\t0\t-\t5"), 1);
	for (int i = 0; i < st.natt; i++)
		fprintf(stderr, "att %s\n", st.att[i]);
	mf_path_free(&p);
	mf_buf_free(&b);
	mf_buf_free(&enc);
	free(img);
	mf_sink_graph.free_config(cfg);
}

/* Pacing: the upload budget is Microsoft's 150 MB (150,000,000 bytes, not
 * MiB) per 5 minutes, spent smoothly (never in one burst); 509 is retried
 * like 429; a Retry-After one request gets holds for every request of the
 * mailbox. */
TEST(pacing_budgets)
{
	/* the limit an open makes for a mailbox, in bytes */
	void *cfg = open_cfg_kv("import-mime", "upload_mb_per_5min", "1"), *snk = NULL;
	struct mf_err err = {0};
	struct mf_unit unit = {.id = "gb", .mailbox = "quinn@contoso.com"};
	CHECK_INT(mf_sink_graph.open(cfg, &unit, &snk, &err), 0);
	struct mf_http_limit *l = snk ? ((struct g_snk *)snk)->limit : NULL;
	CHECK(l != NULL);
	if (l) {
		/* 1 MB = 1,000,000 bytes in 5 minutes, smoothly (a tenth of the
		 * window's worth at once): 100,000 bytes go, the next 100,000
		 * wait 100,000 / (0.9 x 1,000,000) x 300 s - 30 s = 3.33 s (with
		 * MiB it would be 1.79 s; spent in a burst, 0) */
		CHECK_INT((long)mf_http_limit_try(l, 100000), 0);
		uint64_t w = mf_http_limit_try(l, 100000);
		CHECK(w > 3200 && w < 3400);
		if (!(w > 3200 && w < 3400))
			fprintf(stderr, "second 100,000 bytes wait %llu ms\n", (unsigned long long)w);
	}
	mf_sink_graph.close(snk);
	mf_sink_graph.free_config(cfg);

	/* 509 Bandwidth Limit Exceeded: retried after its Retry-After */
	restart_double("--fault-509 2");
	cfg = open_cfg("import-mime");
	int fails = 0;
	store_some(cfg, "quinn@contoso.com", "B509", 4, &fails);
	CHECK_INT(fails, 0);
	struct state st;
	graph_state("quinn@contoso.com", &st);
	CHECK_INT(count(&st, "B509\t<p"), 4);
	CHECK(st.r509 >= 2);
	mf_sink_graph.free_config(cfg);

	/* one request in flight at a time, a tight request budget: after a
	 * 429 with Retry-After no other worker's request comes before it */
	restart_double("--req-budget 12 --req-window 2");
	cfg = open_cfg_kv("import-mime", "mailbox_concurrency", "1");
	struct worker w[3];
	pthread_t t[3];
	for (int i = 0; i < 3; i++) {
		w[i] = (struct worker){.cfg = cfg, .mailbox = "rita@contoso.com", .n = i};
		pthread_create(&t[i], NULL, worker_main, &w[i]);
	}
	for (int i = 0; i < 3; i++) {
		pthread_join(t[i], NULL);
		fails += w[i].failures;
	}
	CHECK_INT(fails, 0);
	graph_state("rita@contoso.com", &st);
	CHECK_INT(st.n, 12);
	CHECK(st.r429 >= 1);
	CHECK_INT(st.ra_ignored, 0);
	mf_sink_graph.free_config(cfg);
}

/* max_message_mb: 35 MB by default (Exchange Online's default limit),
 * raised up to 150; a bigger message fails before any request is made. */
TEST(message_size_cap)
{
	void *cfg = open_cfg("json"), *snk = NULL, *fh = NULL;
	struct mf_sink_caps caps;
	mf_sink_graph.caps(cfg, &caps);
	CHECK_INT((long)caps.max_message_bytes, 35000000);
	struct mf_err err = {0};
	struct mf_unit unit = {.id = "gm", .mailbox = "sam@contoso.com"};
	CHECK_INT(mf_sink_graph.open(cfg, &unit, &snk, &err), 0);
	struct mf_path p;
	path_of(&p, "Big", NULL, NULL);
	CHECK_INT(mf_sink_graph.folder(snk, &p, MF_ROLE_NONE, &fh, &err), 0);
	long before = requests();
	size_t l;
	unsigned char *m = test_message(1000, "big", "<cap@x>", &l);
	struct test_item it;
	test_item_init(&it, m, l, 0, "<cap@x>", 0);
	it.it.len = 36000000; /* only the length is looked at */
	char id[MF_SINK_ID_MAX];
	CHECK_INT(mf_sink_graph.store(snk, fh, &it.it, id, &err), MF_ETOOBIG);
	CHECK(strstr(err.msg, "max_message_mb") != NULL);
	CHECK_INT(requests(), before + 1); /* only the second look at /_state */
	mf_sink_graph.close(snk);
	mf_sink_graph.free_config(cfg);
	cfg = open_cfg_kv("json", "max_message_mb", "150");
	mf_sink_graph.caps(cfg, &caps);
	CHECK_INT((long)caps.max_message_bytes, 150000000);
	mf_sink_graph.free_config(cfg);
	void *bad = NULL;
	CHECK_INT(configure_kv("json", "max_message_mb", "151", &bad, &err), MF_ECONFIG);
	free(m);
	mf_path_free(&p);
}

/* The double refuses what Graph refuses (wrong Content-Type 415, unknown
 * property or enum value 400), and the sink's own requests pass it. */
static long raw_request(struct g_snk *s, const char *method, const char *path, const char *ctype,
			const char *body)
{
	static const long ok[] = {400, 404, 415, 0};
	struct mf_buf u = {0};
	struct mf_http_req req = {0};
	struct mf_err err = {0};
	mf_buf_printf(&u, "http://127.0.0.1:4570%s", path);
	req.body = body;
	req.body_len = body ? strlen(body) : 0;
	int rc = g_request(s, &req, method, u.data, ctype, NULL, ok, &err);
	long st = rc < 0 ? rc : req.status;
	mf_buf_free(&u);
	mf_http_req_free(&req);
	return st;
}

TEST(double_is_strict)
{
	restart_double("--fail-get 4 --fail-patch 2 --fail-delete 2");
	void *cfg = open_cfg("import-mime"), *snk = NULL, *fh = NULL;
	struct mf_err err = {0};
	struct mf_unit unit = {.id = "gx", .mailbox = "tom@contoso.com"};
	CHECK_INT(mf_sink_graph.open(cfg, &unit, &snk, &err), 0);
	struct mf_path p;
	path_of(&p, "Strict", NULL, NULL);
	CHECK_INT(mf_sink_graph.folder(snk, &p, MF_ROLE_NONE, &fh, &err), 0);
	size_t l;
	unsigned char *m = test_message(800, "strict", "<strict@x>", &l);
	struct test_item it;
	test_item_init(&it, m, l, 0, "<strict@x>", MF_FLAG_SEEN | MF_FLAG_FLAGGED);
	char id[MF_SINK_ID_MAX] = "", path[512];
	CHECK_INT(mf_sink_graph.store(snk, fh, &it.it, id, &err), 0);
	CHECK_INT(mf_sink_graph.probe(snk, fh, &it.it, id, &err), 1);
	struct g_snk *s = snk;
	snprintf(path, sizeof(path), "/v1.0/users/tom%%40contoso.com/messages/%s", id);
	CHECK_INT(raw_request(s, "PATCH", path, "application/json", "{\"flag\":{\"flagStatus\":\"bogus\"}}"), 400);
	CHECK_INT(raw_request(s, "PATCH", path, "application/json", "{\"isUnread\":true}"), 400);
	CHECK_INT(raw_request(s, "PATCH", path, "text/plain", "{\"isRead\":true}"), 415);
	CHECK_INT(raw_request(s, "PATCH", path, "application/json", "{\"isRead\":true}"), 200);
	CHECK_INT(raw_request(s, "POST", "/beta/users/tom%40contoso.com/mailFolders/inbox/importMime",
			      "application/json", "TWltZQ=="), 415);
	CHECK_INT(raw_request(s, "POST", "/v1.0/users/tom%40contoso.com/mailFolders/inbox/childFolders",
			      "application/json", "{\"displayName\":\"x\",\"color\":\"red\"}"), 400);
	/* the sink's JSON path, attachments and DELETE of a half-made
	 * message, under faults on GET, PATCH and DELETE */
	mf_sink_graph.close(snk);
	void *cfgj = open_cfg("json");
	CHECK_INT(mf_sink_graph.open(cfgj, &unit, &snk, &err), 0);
	CHECK_INT(mf_sink_graph.folder(snk, &p, MF_ROLE_NONE, &fh, &err), 0);
	struct mf_buf bare = {0}, half = {0};
	multipart(&bare, "<strict2@x>", 0, 0);
	multipart(&half, "<strict2@x>", 2, 3300000);
	struct test_item ib, ih;
	test_item_init(&ib, bare.data, bare.len, 0, "<strict2@x>", 0);
	test_item_init(&ih, half.data, half.len, 0, "<strict2@x>", MF_FLAG_FLAGGED);
	CHECK_INT(mf_sink_graph.store(snk, fh, &ib.it, id, &err), 0);
	CHECK_INT(mf_sink_graph.probe(snk, fh, &ih.it, id, &err), 0); /* half-made: deleted */
	int rc = mf_sink_graph.store(snk, fh, &ih.it, id, &err);
	CHECK_INT(rc, 0);
	if (rc < 0)
		fprintf(stderr, "store: %s\n", err.msg);
	CHECK_INT(mf_sink_graph.probe(snk, fh, &ih.it, id, &err), 1);
	mf_sink_graph.close(snk);
	struct state st;
	graph_state("tom@contoso.com", &st);
	CHECK_INT(st.r400, 3); /* the three refused above, none of the sink's */
	CHECK_INT(st.r415, 2);
	CHECK(st.r503 >= 3);
	CHECK_INT(count(&st, "Strict\t<strict@x>\t0\t1\tflagged\timportMime"), 1);
	CHECK_INT(count(&st, "Strict\t<strict2@x>\t0\t0\tflagged\tjson"), 1);
	CHECK_INT(st.n, 2);
	free(m);
	mf_buf_free(&bare);
	mf_buf_free(&half);
	mf_path_free(&p);
	mf_sink_graph.free_config(cfg);
	mf_sink_graph.free_config(cfgj);
}

int main(void)
{
	setenv("GRAPH_ARGS", "--latency 30", 1);
	int rc = cloud_start("cloud-graph", "graph", "GRAPH_ARGS='--latency 30'");
	if (rc)
		return rc;
	mf_loop_start_thread();
	RUN(import_mime_folders_probe);
	RUN(json_fallback_upload_session);
	RUN(concurrency_limit);
	RUN(pacing_config);
	RUN(hdr_decode);
	RUN(json_encoded_words);
	RUN(message_ids_paged);
	RUN(shared_message_id);
	RUN(bad_secret);
	RUN(faults_exactly_once);
	RUN(json_attachments_exactly_once);
	RUN(no_retry_after);
	RUN(import_path_fallback);
	RUN(role_folders_localized);
	RUN(attachment_edges);
	RUN(probe_date_skew);
	RUN(read_draft_state);
	RUN(inline_images);
	RUN(pacing_budgets);
	RUN(message_size_cap);
	RUN(double_is_strict);
	mf_loop_stop_thread();
	cloud_stop();
	return test_done();
}
