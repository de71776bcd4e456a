/* test_blob_pst.c - the azure-blob sink's pst-files mode (PST Import
 * staging) against a real Azurite on loopback (tools/cloud-servers.sh),
 * calling the sink's ops. Azurite runs with a request log (a node preload
 * written by this test) so that Put Block requests can be counted. */
#include <curl/curl.h>
#include <nettle/hmac.h>
#include <nettle/sha2.h>

#include "../doubles/azure_sas.h"
#include "../doubles/cloud_test.h"
#include "engine/loop.h"
#include "sinks/blob/azure_pst.h"
#include "sinks/http/http.h"
#include "test.h"

extern const struct mf_sink_ops mf_sink_azure_blob;

#define AZ_KEY "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
#define AZ_CONT "http://127.0.0.1:10000/devstoreaccount1/pstc"
#define MIB (1u << 20)

static char tmp[1024], reqlog[1100];

/* ---- the test's own view of the server --------------------------------- */

struct resp {
	struct mf_buf body;
	char etag[128];
	char last_modified[128];
};

static size_t on_body(char *p, size_t s, size_t n, void *ud)
{
	mf_buf_add(&((struct resp *)ud)->body, p, s * n);
	return s * n;
}

static size_t on_header(char *p, size_t s, size_t n, void *ud)
{
	struct resp *r = ud;
	size_t l = s * n;
	char *dst = NULL;
	size_t skip = 0;
	if (l > 5 && strncasecmp(p, "ETag:", 5) == 0)
		dst = r->etag, skip = 5;
	else if (l > 14 && strncasecmp(p, "Last-Modified:", 14) == 0)
		dst = r->last_modified, skip = 14;
	if (dst) {
		while (skip < l && p[skip] == ' ')
			skip++;
		size_t vl = l - skip;
		while (vl && (p[skip + vl - 1] == '\r' || p[skip + vl - 1] == '\n'))
			vl--;
		snprintf(dst, 128, "%.*s", (int)vl, p + skip);
	}
	return l;
}

/* METHOD url [body] -> status; headers from `hdr` (may be NULL). */
static long raw(const char *method, const char *url, const void *body, size_t len,
		const char *hdr, struct resp *r)
{
	CURL *e = curl_easy_init();
	struct curl_slist *h = NULL;
	long st = 0;
	memset(r, 0, sizeof(*r));
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
	if (hdr)
		h = curl_slist_append(h, hdr);
	h = curl_slist_append(h, "Expect:");
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	if (body) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)len);
	}
	if (curl_easy_perform(e) == CURLE_OK)
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &st);
	curl_slist_free_all(h);
	curl_easy_cleanup(e);
	return st;
}

/* A container SAS for `pstc` with service version sv. */
static void make_sas(char *out, size_t n, const char *sv, const char *perms)
{
	test_azure_sas(out, n, AZ_KEY, "pstc", sv, perms);
}

static char sas_all[512]; /* sv=2015-04-05, racwl: the test's reads */

static char *url_of(const char *blob, const char *query)
{
	struct mf_buf u = {0};
	mf_buf_printf(&u, "%s/", AZ_CONT);
	mf_http_escape(&u, blob, strlen(blob), true);
	mf_buf_printf(&u, "?%s%s%s", query ? query : "", query ? "&" : "", sas_all);
	return u.data;
}

/* Put Block requests (and Put Block List ones) for a blob in Azurite's
 * request log so far. */
static int count_requests(const char *blob_path, const char *comp)
{
	FILE *f = fopen(reqlog, "r");
	char line[4096], want[64];
	int n = 0;
	snprintf(want, sizeof(want), "comp=%s", comp);
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char *q = strchr(line, '?');
		if (strncmp(line, "PUT ", 4) != 0 || !q)
			continue;
		*q = '\0';
		if (strcmp(line + 4, blob_path) != 0)
			continue;
		for (char *p = q + 1; (p = strstr(p, want)) != NULL; p += strlen(want)) {
			char after = p[strlen(want)];
			if ((p[-1] == '?' || p[-1] == '&' || p == q + 1) && (after == '&' || after == '\n' || !after)) {
				n++;
				break;
			}
		}
	}
	fclose(f);
	return n;
}

/* A deterministic pseudo-random file (xorshift64*), written in 1 MiB
 * pieces; its SHA-256 into sha. */
static void make_file(const char *path, size_t size, uint64_t seed, uint8_t sha[32])
{
	FILE *f = fopen(path, "wb");
	uint64_t x = seed | 1;
	unsigned char *b = malloc(MIB);
	struct sha256_ctx ctx;
	sha256_init(&ctx);
	for (size_t done = 0; done < size;) {
		size_t n = size - done < MIB ? size - done : MIB;
		for (size_t i = 0; i < n; i += 8) {
			x ^= x >> 12;
			x ^= x << 25;
			x ^= x >> 27;
			uint64_t v = x * 0x2545F4914F6CDD1DULL;
			memcpy(b + i, &v, n - i < 8 ? n - i : 8);
		}
		fwrite(b, 1, n, f);
		sha256_update(&ctx, n, b);
		done += n;
	}
	sha256_digest(&ctx, 32, sha);
	fclose(f);
	free(b);
}

static void hex_of(const uint8_t sha[32], char hex[65])
{
	mf_hex(sha, 32, hex);
}

/* ---- the sink ---------------------------------------------------------- */

struct snk {
	void *cfg, *s;
	struct mf_unit unit;
};

static int sink_open(struct snk *k, const struct mf_conf_section *sec, const char *pst_path,
		     const char *relpath, const char *mailbox, bool archive, const char *root,
		     struct mf_err *err)
{
	memset(k, 0, sizeof(*k));
	k->unit = (struct mf_unit){.id = (char *)relpath, .mailbox = (char *)mailbox,
				   .pst_path = (char *)pst_path, .pst_relpath = (char *)relpath,
				   .target_root = (char *)root, .is_archive = archive};
	int rc = mf_sink_azure_blob.configure(sec, &k->cfg, err);
	if (rc == 0) {
		struct mf_sink_caps caps;
		mf_sink_azure_blob.caps(k->cfg, &caps);
		CHECK(caps.whole_files);
		rc = mf_sink_azure_blob.open(k->cfg, &k->unit, &k->s, err);
	}
	if (rc < 0)
		fprintf(stderr, "open: %s\n", err->msg);
	return rc;
}

static void sink_close(struct snk *k)
{
	if (k->s)
		mf_sink_azure_blob.close(k->s);
	if (k->cfg)
		mf_sink_azure_blob.free_config(k->cfg);
}

/* ---- tests ------------------------------------------------------------- */

TEST(block_size_from_sv)
{
	CHECK_INT(mf_azure_pst_block_size("2012-02-12", 13 * MIB), 4 * MIB);
	CHECK_INT(mf_azure_pst_block_size("2015-04-05", 13 * MIB), 4 * MIB);
	CHECK_INT(mf_azure_pst_block_size("2016-05-30", 1), 4 * MIB);
	CHECK_INT(mf_azure_pst_block_size("2016-05-31", 13 * MIB), 16 * MIB);
	CHECK_INT(mf_azure_pst_block_size("2019-07-07", 0), 16 * MIB);
	CHECK_INT(mf_azure_pst_block_size("2025-11-05", 20000ull * MIB), 16 * MIB);
	CHECK_INT(mf_azure_pst_block_size(NULL, 13 * MIB), 4 * MIB);
	CHECK_INT(mf_azure_pst_block_size("", 13 * MIB), 4 * MIB);
	CHECK_INT(mf_azure_pst_block_size("2025-1-05xx", 13 * MIB), 4 * MIB);
	/* 50,000 blocks at most: 4 MiB holds 195 GiB; beyond, the old
	 * versions cannot, the newer ones grow the block (whole MiB) */
	CHECK_INT(mf_azure_pst_block_size("2015-04-05", 50000ull * 4 * MIB), 4 * MIB);
	CHECK_INT(mf_azure_pst_block_size("2015-04-05", 50000ull * 4 * MIB + 1), 0);
	CHECK_INT(mf_azure_pst_block_size("2020-02-10", 50000ull * 16 * MIB + 1), 17 * MIB);
	CHECK_INT(mf_azure_pst_block_size("2020-02-10", 50000ull * 100 * MIB), 100 * MIB);
	CHECK_INT(mf_azure_pst_block_size("2020-02-10", 50000ull * 100 * MIB + 1), 0);
}

TEST(block_ids)
{
	const unsigned char tag[6] = {0xfb, 0xff, 0x00, 0x3e, 0x10, 0x80};
	char a[17], b[17], c[17];
	mf_azure_pst_block_id(tag, 0, a);
	mf_azure_pst_block_id(tag, 1, b);
	mf_azure_pst_block_id(tag, 49999, c);
	CHECK_INT(strlen(a), 16);
	CHECK_INT(strlen(c), 16);
	CHECK(strcmp(a, b) != 0 && strchr(a, '=') == NULL);
	unsigned char raw[16];
	size_t rl = 0;
	CHECK_INT(mf_http_unbase64(c, 16, raw, sizeof(raw), &rl), 0);
	CHECK_INT(rl, 12);
	CHECK(memcmp(raw, tag, 6) == 0 && memcmp(raw + 6, "049999", 6) == 0);
}

static char pst_dir[1100], x_path[1200], y_path[1200];
static uint8_t x_sha[32], y_sha[32];

/* GET a blob and compare its SHA-256 and length. */
static void check_blob(const char *blob, size_t len, const uint8_t sha[32])
{
	char *u = url_of(blob, NULL);
	struct resp r;
	CHECK_INT(raw("GET", u, NULL, 0, NULL, &r), 200);
	CHECK_INT(r.body.len, len);
	uint8_t got[32];
	mf_sha256(r.body.data, r.body.len, got);
	CHECK(memcmp(got, sha, 32) == 0);
	mf_buf_free(&r.body);
	free(u);
}

TEST(upload_resume_noop_csv)
{
	struct mf_err err = {0};
	char id[MF_SINK_ID_MAX] = "";
	struct test_sec key, sas;
	setenv("TEST_PST_KEY", AZ_KEY, 1);
	setenv("TEST_PST_SAS", sas_all, 1);
	test_sec_init(&key, "url", AZ_CONT "/stage", "account", "devstoreaccount1", "key_env",
		      "TEST_PST_KEY", "upload", "pst-files", NULL);
	test_sec_init(&sas, "url", AZ_CONT "/stage", "account", "devstoreaccount1", "sas_env",
		      "TEST_PST_SAS", "upload", "pst-files", NULL);

	/* Shared Key: creates the container; current version -> 16 MiB, one block */
	struct snk k;
	if (sink_open(&k, &key.sec, y_path, "small/y.pst", "bob@contoso.example", true, "/",
		      &err) < 0) {
		CHECK(0);
		sink_close(&k);
		return;
	}
	CHECK_INT(mf_sink_azure_blob.upload_file(k.s, y_path, id, &err), 0);
	CHECK_STR(id, "stage/small/y.pst");
	CHECK_INT(count_requests("/devstoreaccount1/pstc/stage/small/y.pst", "block"), 1);
	sink_close(&k);
	check_blob("stage/small/y.pst", 9 * MIB + 5, y_sha);

	/* SAS sv=2015-04-05: 4 MiB blocks, 13 MiB -> 4 blocks */
	if (sink_open(&k, &sas.sec, x_path, "sub/x.pst", "alice@contoso.example", false,
		      "/Imported PST, 2019", &err) < 0) {
		CHECK(0);
		sink_close(&k);
		return;
	}
	int rc = mf_sink_azure_blob.upload_file(k.s, x_path, id, &err);
	CHECK_INT(rc, 0);
	if (rc < 0)
		fprintf(stderr, "upload: %s\n", err.msg);
	CHECK_STR(id, "stage/sub/x.pst");
	const char *xp = "/devstoreaccount1/pstc/stage/sub/x.pst";
	CHECK_INT(count_requests(xp, "block"), 4);
	CHECK_INT(count_requests(xp, "blocklist"), 1);
	check_blob("stage/sub/x.pst", 13 * MIB, x_sha);

	/* metadata */
	char hex[65];
	hex_of(x_sha, hex);
	struct resp r;
	char *u = url_of("", "restype=container&comp=list&include=metadata&prefix=stage/sub/x.pst");
	/* url_of("") left a trailing '/' before '?': list on the container */
	char *slash = strstr(u, "/pstc/?");
	if (slash)
		memmove(slash + 5, slash + 6, strlen(slash + 6) + 1);
	CHECK_INT(raw("GET", u, NULL, 0, NULL, &r), 200);
	free(u);
	char want[256];
	snprintf(want, sizeof(want), "<sha256>%s</sha256>", hex);
	CHECK(r.body.data && strstr(r.body.data, want));
	CHECK(r.body.data && strstr(r.body.data, "<mailbox>alice@contoso.example</mailbox>"));
	CHECK(r.body.data && strstr(r.body.data, "<isarchive>FALSE</isarchive>"));
	CHECK(r.body.data && strstr(r.body.data, "<targetrootfolder>/Imported%20PST%2C%202019</targetrootfolder>"));
	CHECK(r.body.data && strstr(r.body.data, "application/vnd.ms-outlook"));
	mf_buf_free(&r.body);

	/* the ETag and Last-Modified of the PST blob, then a second upload */
	u = url_of("stage/sub/x.pst", NULL);
	struct resp h1, h2;
	CHECK_INT(raw("HEAD", u, NULL, 0, NULL, &h1), 200);
	sleep(1); /* Last-Modified has 1 s resolution */
	CHECK_INT(mf_sink_azure_blob.upload_file(k.s, x_path, id, &err), 0);
	CHECK_STR(id, "stage/sub/x.pst");
	CHECK_INT(count_requests(xp, "block"), 4);
	CHECK_INT(count_requests(xp, "blocklist"), 1);
	CHECK_INT(raw("HEAD", u, NULL, 0, NULL, &h2), 200);
	CHECK(h1.etag[0] && strcmp(h1.etag, h2.etag) == 0);
	CHECK(h1.last_modified[0] && strcmp(h1.last_modified, h2.last_modified) == 0);
	free(u);
	sink_close(&k);

	/* Resume: blocks 0 and 2 of y.pst (4 MiB blocks) already there as the
	 * sink would have left them, block 1 with a wrong size: only block 1
	 * goes up again. The block ids are derived as azure.c does. */
	{
		const char *yp = "/devstoreaccount1/pstc/stage/resume/y.pst";
		unsigned char tag[32], bsz[8] = {0, 0, 0, 0, 0, 0x40, 0, 0};
		struct sha256_ctx c;
		sha256_init(&c);
		sha256_update(&c, 32, y_sha);
		sha256_update(&c, 8, bsz);
		sha256_digest(&c, 32, tag);
		FILE *f = fopen(y_path, "rb");
		unsigned char *blk = malloc(4 * MIB);
		for (unsigned i = 0; i < 3; i++) {
			char bid[17], q[64];
			mf_azure_pst_block_id(tag, i, bid);
			struct mf_buf esc = {0};
			mf_http_escape(&esc, bid, 16, false);
			snprintf(q, sizeof(q), "comp=block&blockid=%s", esc.data);
			mf_buf_free(&esc);
			fseek(f, (long)i * 4 * MIB, SEEK_SET);
			size_t n = fread(blk, 1, 4 * MIB, f);
			CHECK_INT(n, i == 2 ? MIB + 5 : 4 * MIB);
			char *bu = url_of("stage/resume/y.pst", q);
			CHECK_INT(raw("PUT", bu, blk, i == 1 ? 1024 : n, NULL, &r), 201);
			mf_buf_free(&r.body);
			free(bu);
		}
		fclose(f);
		free(blk);
		int before = count_requests(yp, "block");
		CHECK_INT(before, 3);
		CHECK_INT(sink_open(&k, &sas.sec, y_path, "resume/y.pst", "carol@contoso.example",
				    true, "", &err), 0);
		rc = mf_sink_azure_blob.upload_file(k.s, y_path, id, &err);
		CHECK_INT(rc, 0);
		if (rc < 0)
			fprintf(stderr, "resume: %s\n", err.msg);
		CHECK_INT(count_requests(yp, "block") - before, 1); /* block 1 only */
		sink_close(&k);
		check_blob("stage/resume/y.pst", 9 * MIB + 5, y_sha);
	}

	/* The mapping CSV: every PST blob under the prefix, sorted by name. */
	u = url_of("stage/" MF_AZURE_PST_CSV_NAME, NULL);
	CHECK_INT(raw("GET", u, NULL, 0, NULL, &r), 200);
	free(u);
	const char *csv =
		"Workload,FilePath,Name,Mailbox,IsArchive,TargetRootFolder,ContentCodePage,"
		"SPFileContainer,SPManifestContainer,SPSiteUrl\r\n"
		"Exchange,stage/resume,y.pst,carol@contoso.example,TRUE,,,,,\r\n"
		"Exchange,stage/small,y.pst,bob@contoso.example,TRUE,/,,,,\r\n"
		"Exchange,stage/sub,x.pst,alice@contoso.example,FALSE,\"/Imported PST, 2019\",,,,\r\n";
	CHECK_STR(r.body.data, csv);
	mf_buf_free(&r.body);
}

TEST(sas_without_write)
{
	char ro[512];
	make_sas(ro, sizeof(ro), "2015-04-05", "rl");
	setenv("TEST_PST_RO", ro, 1);
	struct test_sec sec;
	test_sec_init(&sec, "url", AZ_CONT "/ro", "account", "devstoreaccount1", "sas_env",
		      "TEST_PST_RO", "upload", "pst-files", NULL);
	struct snk k;
	struct mf_err err = {0};
	char id[MF_SINK_ID_MAX] = "";
	if (sink_open(&k, &sec.sec, y_path, "y.pst", "d@contoso.example", false, "/", &err) == 0) {
		CHECK_INT(mf_sink_azure_blob.upload_file(k.s, y_path, id, &err), MF_EAUTH);
		const char *sig = strstr(ro, "sig=");
		CHECK(sig && strstr(err.msg, sig + 4) == NULL);
		CHECK(strstr(err.msg, "403") != NULL);
		/* an unreadable file: MF_EIO naming it */
		char missing[1300];
		snprintf(missing, sizeof(missing), "%s/no-such.pst", pst_dir);
		mf_err_clear(&err);
		CHECK_INT(mf_sink_azure_blob.upload_file(k.s, missing, id, &err), MF_EIO);
		CHECK(strstr(err.msg, missing) != NULL);
	} else {
		CHECK(0);
	}
	sink_close(&k);
}

/* The PST Import service's SAS may only write: no resume, no skip, and the
 * CSV lists what this process uploaded. */
TEST(write_only_sas)
{
	char wo[512];
	make_sas(wo, sizeof(wo), "2015-04-05", "w");
	setenv("TEST_PST_WO", wo, 1);
	struct test_sec sec;
	test_sec_init(&sec, "url", AZ_CONT "/wo/", "sas_env", "TEST_PST_WO", "account",
		      "devstoreaccount1", "upload", "pst-files", NULL);
	struct snk k;
	struct mf_err err = {0};
	char id[MF_SINK_ID_MAX] = "";
	if (sink_open(&k, &sec.sec, y_path, "y.pst", "eve@contoso.example", false, "", &err) == 0) {
		int rc = mf_sink_azure_blob.upload_file(k.s, y_path, id, &err);
		CHECK_INT(rc, 0);
		if (rc < 0)
			fprintf(stderr, "write-only: %s\n", err.msg);
		CHECK_STR(id, "wo/y.pst");
		CHECK_INT(count_requests("/devstoreaccount1/pstc/wo/y.pst", "block"), 3);
	} else {
		CHECK(0);
	}
	sink_close(&k);
	check_blob("wo/y.pst", 9 * MIB + 5, y_sha);
	char *u = url_of("wo/" MF_AZURE_PST_CSV_NAME, NULL);
	struct resp r;
	CHECK_INT(raw("GET", u, NULL, 0, NULL, &r), 200);
	CHECK_STR(r.body.data, MF_AZURE_PST_CSV_HEADER "\r\nExchange,wo,y.pst,eve@contoso.example,FALSE,,,,,\r\n");
	mf_buf_free(&r.body);
	free(u);
}

static const char preload[] =
	"const http = require('http'), fs = require('fs');\n"
	"const log = process.env.MF_REQLOG, emit = http.Server.prototype.emit;\n"
	"http.Server.prototype.emit = function (ev, req) {\n"
	"  if (ev === 'request' && log)\n"
	"    fs.appendFileSync(log, req.method + ' ' + req.url.replace(/([?&]sig=)[^&]*/, '$1-') + '\\n');\n"
	"  return emit.apply(this, arguments);\n"
	"};\n";

int main(void)
{
	const char *t = getenv("MF_TMP");
	if (!t || !getenv("MF_SRC")) {
		fprintf(stderr, "SKIP: run through ctest\n");
		return 77;
	}
	RUN(block_size_from_sv);
	RUN(block_ids);
	snprintf(tmp, sizeof(tmp), "%s/blob-pst", t);
	snprintf(pst_dir, sizeof(pst_dir), "%s/files", tmp);
	snprintf(reqlog, sizeof(reqlog), "%s/requests.log", tmp);
	char cmd[4096], js[1200], env[4096];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mkdir -p '%s'", tmp, pst_dir);
	if (system(cmd) != 0)
		return 1;
	snprintf(js, sizeof(js), "%s/reqlog.js", tmp);
	FILE *f = fopen(js, "w");
	if (!f)
		return 1;
	fputs(preload, f);
	fclose(f);
	snprintf(x_path, sizeof(x_path), "%s/x.pst", pst_dir);
	snprintf(y_path, sizeof(y_path), "%s/y.pst", pst_dir);
	make_file(x_path, 13 * MIB, 0x5eed, x_sha);
	make_file(y_path, 9 * MIB + 5, 0xfeed, y_sha);
	snprintf(env, sizeof(env), "NODE_OPTIONS='--require %s' MF_REQLOG='%s'", js, reqlog);
	int rc = cloud_start("cloud-blob-pst", "azurite", env);
	if (rc)
		return rc;
	make_sas(sas_all, sizeof(sas_all), "2015-04-05", "racwl");
	curl_global_init(CURL_GLOBAL_DEFAULT);
	mf_loop_start_thread();
	RUN(upload_resume_noop_csv);
	RUN(sas_without_write);
	RUN(write_only_sas);
	mf_loop_stop_thread();
	cloud_stop();
	return test_done();
}
