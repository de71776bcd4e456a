/* test_blob.c - the azure-blob and s3 sinks against real Azurite and s3rver,
 * and S3 signatures against the SigV4 verifier, all on loopback (started by
 * tools/cloud-servers.sh). */
#include <curl/curl.h>
#include <nettle/hmac.h>

#include "../doubles/azure_sas.h"
#include "../doubles/cloud_test.h"
#include "engine/loop.h"
#include "sinks/http/http.h"
#include "test.h"

extern const struct mf_sink_ops mf_sink_azure_blob, mf_sink_s3;

#define AZ_KEY "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
#define AZ_URL "http://127.0.0.1:10000/devstoreaccount1/mailarchive"

static size_t sink_write(char *p, size_t s, size_t n, void *ud)
{
	mf_buf_add(ud, p, s * n);
	return s * n;
}

/* A plain GET (or PUT) with curl_easy, outside the sinks: the test's own
 * view of the server. Returns the status. */
static long raw(const char *method, const char *url, const char *sigv4, struct mf_buf *out)
{
	CURL *e = curl_easy_init();
	struct curl_slist *h = NULL;
	long st = 0;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sink_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, out);
	if (sigv4) {
		curl_easy_setopt(e, CURLOPT_AWS_SIGV4, sigv4);
		curl_easy_setopt(e, CURLOPT_USERPWD, "S3RVER:S3RVER");
		h = curl_slist_append(h, "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	}
	if (curl_easy_perform(e) == CURLE_OK)
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &st);
	curl_slist_free_all(h);
	curl_easy_cleanup(e);
	return st;
}

/* A container service SAS (sv 2022-11-02 layout) minted here with the key. */
static void make_sas(char *out, size_t n, const char *perms)
{
	test_azure_sas(out, n, AZ_KEY, "mailarchive", "2022-11-02", perms);
}

struct hashes {
	char h[16][65];
	int n;
};
static int collect(void *arg, const char *hex)
{
	struct hashes *h = arg;
	if (h->n < 16)
		snprintf(h->h[h->n++], 65, "%s", hex);
	return 0;
}

static int count_hash(const struct hashes *h, const char *hex)
{
	int c = 0;
	for (int i = 0; i < h->n; i++)
		c += strcmp(h->h[i], hex) == 0;
	return c;
}

/* The same scenario for both sinks. `get_base` is how the test reads an
 * object back by name (URL prefix + optional SAS suffix). */
static void scenario(const struct mf_sink_ops *ops, const struct mf_conf_section *sec,
		     const char *get_base, const char *get_suffix, const char *sigv4)
{
	void *cfg = NULL, *snk = NULL, *fh = NULL, *fh2 = NULL;
	struct mf_err err = {0};
	struct mf_unit unit = {.id = "u1", .mailbox = "alice@example.com"};
	CHECK_INT(ops->configure(sec, &cfg, &err), 0);
	if (!cfg) {
		fprintf(stderr, "configure: %s\n", err.msg);
		return;
	}
	struct mf_sink_caps caps;
	ops->caps(cfg, &caps);
	CHECK(caps.crlf);
	int rc = ops->open(cfg, &unit, &snk, &err);
	CHECK_INT(rc, 0);
	if (rc < 0) {
		fprintf(stderr, "open: %s\n", err.msg);
		ops->free_config(cfg);
		return;
	}
	struct mf_path inbox, odd;
	mf_path_init(&inbox);
	mf_path_init(&odd);
	mf_path_push(&inbox, "Inbox", 5);
	mf_path_push(&odd, "Projects", 8);
	mf_path_push(&odd, "Q1 a+b/c & d%", 13);
	CHECK_INT(ops->folder(snk, &inbox, MF_ROLE_INBOX, &fh, &err), 0);
	CHECK_INT(ops->folder(snk, &odd, MF_ROLE_NONE, &fh2, &err), 0);

	size_t l1, l2;
	unsigned char *m1 = test_message(3000, "hello", "<m1@example.com>", &l1);
	unsigned char *m2 = test_message(20u << 20, "big", "<m2@example.com>", &l2);
	struct test_item i1, i1dup, i2;
	test_item_init(&i1, m1, l1, 0, "<m1@example.com>", MF_FLAG_SEEN | MF_FLAG_FLAGGED);
	test_item_init(&i1dup, m1, l1, 1, "<m1@example.com>", 0);
	test_item_init(&i2, m2, l2, 0, "<m2@example.com>", 0);
	char id[MF_SINK_ID_MAX] = "";

	/* probe before: absent */
	CHECK_INT(ops->probe(snk, fh, &i1.it, id, &err), 0);
	/* store, probe, store again (a no-op), duplicate copy */
	rc = ops->store(snk, fh, &i1.it, id, &err);
	CHECK_INT(rc, 0);
	if (rc < 0)
		fprintf(stderr, "store: %s\n", err.msg);
	struct mf_buf want = {0};
	mf_buf_printf(&want, "alice@example.com/Inbox/%s.eml", i1.hex);
	CHECK_STR(id, want.data);
	id[0] = '\0';
	CHECK_INT(ops->probe(snk, fh, &i1.it, id, &err), 1);
	CHECK_STR(id, want.data);
	CHECK_INT(ops->store(snk, fh, &i1.it, id, &err), 0);
	CHECK_INT(ops->probe(snk, fh, &i1dup.it, id, &err), 0);
	CHECK_INT(ops->store(snk, fh, &i1dup.it, id, &err), 0);
	CHECK(strstr(id, "-2.eml") != NULL);
	/* odd folder names, and a large message in blocks / parts */
	rc = ops->store(snk, fh2, &i1.it, id, &err);
	CHECK_INT(rc, 0);
	if (rc < 0)
		fprintf(stderr, "store odd: %s\n", err.msg);
	rc = ops->store(snk, fh2, &i2.it, id, &err);
	CHECK_INT(rc, 0);
	if (rc < 0)
		fprintf(stderr, "store big: %s\n", err.msg);
	CHECK_INT(ops->probe(snk, fh2, &i2.it, id, &err), 1);

	/* read back byte for byte, from outside the sink */
	struct mf_buf u = {0}, got = {0};
	mf_buf_printf(&u, "%s/", get_base);
	mf_http_escape(&u, id, strlen(id), true);
	mf_buf_printf(&u, "%s", get_suffix);
	CHECK_INT(raw("GET", u.data, sigv4, &got), 200);
	CHECK_INT(got.len, l2);
	CHECK(got.len == l2 && memcmp(got.data, m2, l2) == 0);

	/* hashes: Inbox holds m1 twice; the odd folder m1 and m2 */
	struct hashes h1 = {.n = 0}, h2 = {.n = 0};
	CHECK_INT(ops->hashes(snk, fh, collect, &h1, &err), 0);
	CHECK_INT(h1.n, 2);
	CHECK_INT(count_hash(&h1, i1.hex), 2);
	CHECK_INT(ops->hashes(snk, fh2, collect, &h2, &err), 0);
	CHECK_INT(h2.n, 2);
	CHECK_INT(count_hash(&h2, i2.hex), 1);

	mf_buf_free(&u);
	mf_buf_free(&got);
	mf_buf_free(&want);
	free(m1);
	free(m2);
	mf_path_free(&inbox);
	mf_path_free(&odd);
	ops->close(snk);
	ops->free_config(cfg);
}

TEST(azure_shared_key)
{
	struct test_sec s;
	setenv("TEST_AZ_KEY", AZ_KEY, 1);
	test_sec_init(&s, "url", AZ_URL, "account", "devstoreaccount1", "key_env", "TEST_AZ_KEY", NULL);
	char sas[512];
	make_sas(sas, sizeof(sas), "racwl");
	char suffix[600];
	snprintf(suffix, sizeof(suffix), "?%s", sas);
	scenario(&mf_sink_azure_blob, &s.sec, AZ_URL, suffix, NULL);
}

TEST(azure_sas)
{
	char sas[512];
	make_sas(sas, sizeof(sas), "racwl");
	setenv("TEST_AZ_SAS", sas, 1);
	struct test_sec s;
	test_sec_init(&s, "url", AZ_URL "/sas-prefix", "account", "devstoreaccount1", "sas_env",
		      "TEST_AZ_SAS", NULL);
	void *cfg = NULL, *snk = NULL, *fh = NULL;
	struct mf_err err = {0};
	struct mf_unit unit = {.id = "u2", .mailbox = "bob@example.com"};
	CHECK_INT(mf_sink_azure_blob.configure(&s.sec, &cfg, &err), 0);
	CHECK_INT(mf_sink_azure_blob.open(cfg, &unit, &snk, &err), 0);
	struct mf_path p;
	mf_path_init(&p);
	mf_path_push(&p, "Sent Items", 10);
	CHECK_INT(mf_sink_azure_blob.folder(snk, &p, MF_ROLE_SENT, &fh, &err), 0);
	size_t l;
	unsigned char *m = test_message(500, "sas", "<sas@example.com>", &l);
	struct test_item it;
	test_item_init(&it, m, l, 0, NULL, 0);
	char id[MF_SINK_ID_MAX];
	int rc = mf_sink_azure_blob.store(snk, fh, &it.it, id, &err);
	CHECK_INT(rc, 0);
	if (rc < 0)
		fprintf(stderr, "sas store: %s\n", err.msg);
	CHECK(strncmp(id, "sas-prefix/bob@example.com/Sent Items/", strlen("sas-prefix/bob@example.com/Sent Items/")) == 0);
	CHECK_INT(mf_sink_azure_blob.probe(snk, fh, &it.it, id, &err), 1);
	/* The secret never shows in an error: a read-only SAS cannot write. */
	mf_sink_azure_blob.close(snk);
	mf_sink_azure_blob.free_config(cfg);
	char ro[512];
	make_sas(ro, sizeof(ro), "r");
	setenv("TEST_AZ_SAS", ro, 1);
	CHECK_INT(mf_sink_azure_blob.configure(&s.sec, &cfg, &err), 0);
	CHECK_INT(mf_sink_azure_blob.open(cfg, &unit, &snk, &err), 0);
	CHECK_INT(mf_sink_azure_blob.folder(snk, &p, MF_ROLE_SENT, &fh, &err), 0);
	struct test_item it2;
	test_item_init(&it2, m, l - 2, 0, NULL, 0);
	rc = mf_sink_azure_blob.store(snk, fh, &it2.it, id, &err);
	CHECK_INT(rc, MF_EAUTH);
	const char *sig = strstr(ro, "sig=");
	CHECK(sig && strstr(err.msg, sig + 4) == NULL);
	CHECK(strstr(err.msg, "403") != NULL);
	mf_sink_azure_blob.close(snk);
	mf_sink_azure_blob.free_config(cfg);
	mf_path_free(&p);
	free(m);
}

TEST(azure_bad_key)
{
	struct test_sec s;
	setenv("TEST_AZ_BAD", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==", 1);
	test_sec_init(&s, "url", AZ_URL, "account", "devstoreaccount1", "key_env", "TEST_AZ_BAD", NULL);
	void *cfg = NULL, *snk = NULL;
	struct mf_err err = {0};
	struct mf_unit unit = {.id = "u3", .mailbox = "c@example.com"};
	CHECK_INT(mf_sink_azure_blob.configure(&s.sec, &cfg, &err), 0);
	CHECK_INT(mf_sink_azure_blob.open(cfg, &unit, &snk, &err), MF_EAUTH);
	CHECK(strstr(err.msg, "request-id=") != NULL);
	CHECK(strstr(err.msg, "AAAAAAAAAA") == NULL);
	mf_sink_azure_blob.free_config(cfg);
}

TEST(s3_s3rver)
{
	struct mf_buf o = {0};
	CHECK_INT(raw("PUT", "http://127.0.0.1:4568/mailarchive", "aws:amz:us-east-1:s3", &o), 200);
	mf_buf_free(&o);
	setenv("TEST_S3_SECRET", "S3RVER", 1);
	struct test_sec s;
	test_sec_init(&s, "url", "http://127.0.0.1:4568/mailarchive", "region", "us-east-1",
		      "access_key_id", "S3RVER", "secret_access_key_env", "TEST_S3_SECRET", NULL);
	scenario(&mf_sink_s3, &s.sec, "http://127.0.0.1:4568/mailarchive", "", "aws:amz:us-east-1:s3");
}

/* Signatures checked for real: the verifier answers 200 only for a correct
 * SigV4 signature over the body's hash. */
TEST(s3_sigv4_verified)
{
	struct test_sec s;
	setenv("TEST_S3_SECRET2", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", 1);
	test_sec_init(&s, "url", "http://127.0.0.1:4569/bucket/pre", "region", "eu-west-1",
		      "access_key_id", "AKIDEXAMPLE", "secret_access_key_env", "TEST_S3_SECRET2", NULL);
	void *cfg = NULL, *snk = NULL, *fh = NULL;
	struct mf_err err = {0};
	struct mf_unit unit = {.id = "u4", .mailbox = "d+x@example.com"};
	CHECK_INT(mf_sink_s3.configure(&s.sec, &cfg, &err), 0);
	CHECK_INT(mf_sink_s3.open(cfg, &unit, &snk, &err), 0);
	struct mf_path p;
	mf_path_init(&p);
	mf_path_push(&p, "A b+c~d", 7);
	mf_path_push(&p, "ünï", strlen("ünï"));
	CHECK_INT(mf_sink_s3.folder(snk, &p, MF_ROLE_NONE, &fh, &err), 0);
	size_t l;
	unsigned char *m = test_message(4000, "sig", "<sig@example.com>", &l);
	struct test_item it;
	test_item_init(&it, m, l, 0, NULL, MF_FLAG_SEEN);
	char id[MF_SINK_ID_MAX];
	int rc = mf_sink_s3.store(snk, fh, &it.it, id, &err);
	CHECK_INT(rc, 0);
	if (rc < 0)
		fprintf(stderr, "sigv4 store: %s\n", err.msg);
	CHECK_INT(mf_sink_s3.probe(snk, fh, &it.it, id, &err), 1);
	mf_sink_s3.close(snk);
	mf_sink_s3.free_config(cfg);

	setenv("TEST_S3_SECRET2", "wrong-secret", 1);
	CHECK_INT(mf_sink_s3.configure(&s.sec, &cfg, &err), 0);
	CHECK_INT(mf_sink_s3.open(cfg, &unit, &snk, &err), 0);
	CHECK_INT(mf_sink_s3.folder(snk, &p, MF_ROLE_NONE, &fh, &err), 0);
	rc = mf_sink_s3.store(snk, fh, &it.it, id, &err);
	CHECK_INT(rc, MF_EAUTH);
	CHECK(strstr(err.msg, "wrong-secret") == NULL);
	mf_sink_s3.close(snk);
	mf_sink_s3.free_config(cfg);
	mf_path_free(&p);
	free(m);
}

int main(void)
{
	int rc = cloud_start("cloud-blob", "azurite s3rver sigv4", NULL);
	if (rc)
		return rc;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	mf_loop_start_thread();
	RUN(azure_shared_key);
	RUN(azure_sas);
	RUN(azure_bad_key);
	RUN(s3_s3rver);
	RUN(s3_sigv4_verified);
	mf_loop_stop_thread();
	cloud_stop();
	return test_done();
}
