/* test_blob.c - the azure-blob and s3 sinks against real Azurite and s3rver,
 * and S3 signatures against the SigV4 verifier, all on loopback (started by
 * tools/cloud-servers.sh). */
#include <curl/curl.h>
#include <nettle/hmac.h>

#include <time.h>

#include "../doubles/azure_sas.h"
#include "../doubles/cloud_test.h"
#include "engine/loop.h"
#include "sinks/blob/blob.h"
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
	ops->close(snk);

	/* open_read (verify, plan): finds what is there, stores nothing; a
	 * mailbox with nothing stored is MF_ENOTFOUND */
	snk = fh = NULL;
	CHECK(ops->open_read != NULL);
	CHECK_INT(ops->open_read(cfg, &unit, &snk, &err), 0);
	if (snk) {
		struct hashes h3 = {.n = 0};
		CHECK_INT(ops->folder(snk, &inbox, MF_ROLE_INBOX, &fh, &err), 0);
		CHECK_INT(ops->hashes(snk, fh, collect, &h3, &err), 0);
		CHECK_INT(h3.n, 2);
		CHECK_INT(ops->probe(snk, fh, &i1.it, id, &err), 1);
		CHECK_INT(ops->store(snk, fh, &i2.it, id, &err), MF_EINTERNAL);
		ops->close(snk);
	}
	struct mf_unit nobody = {.id = "u2", .mailbox = "nobody@example.com"};
	snk = NULL;
	CHECK_INT(ops->open_read(cfg, &nobody, &snk, &err), MF_ENOTFOUND);
	CHECK(snk == NULL);
	mf_path_free(&inbox);
	mf_path_free(&odd);
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

/* The names of the <Name> elements of a listing, each followed by '\n',
 * after a leading '\n' (so that "\nNAME\n" finds one). */
static void names_of(const struct mf_buf *xml, struct mf_buf *names)
{
	char name[1024];
	size_t pos = 0;
	mf_buf_addstr(names, "\n");
	while (mf_blob_xml_next(xml->data, xml->len, &pos, "Name", name, sizeof(name)))
		mf_buf_printf(names, "%s\n", name);
}

/* Azurite's containers, by List Containers signed here with the account key:
 * the test's own view, outside the sinks. Returns the status. */
static long az_containers(struct mf_buf *names)
{
	char date[64], line[160];
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	struct mf_buf sts = {0}, auth = {0}, xml = {0};
	mf_buf_printf(&sts, "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:%s\nx-ms-version:2025-11-05\n"
			    "/devstoreaccount1/devstoreaccount1\ncomp:list", date);
	unsigned char key[64];
	size_t kl = 0;
	mf_http_unbase64(AZ_KEY, strlen(AZ_KEY), key, sizeof(key), &kl);
	struct hmac_sha256_ctx ctx;
	uint8_t mac[32];
	hmac_sha256_set_key(&ctx, kl, key);
	hmac_sha256_update(&ctx, sts.len, (const uint8_t *)sts.data);
	hmac_sha256_digest(&ctx, sizeof(mac), mac);
	mf_buf_addstr(&auth, "Authorization: SharedKey devstoreaccount1:");
	mf_http_base64(&auth, mac, sizeof(mac));
	CURL *e = curl_easy_init();
	struct curl_slist *h = NULL;
	snprintf(line, sizeof(line), "x-ms-date: %s", date);
	h = curl_slist_append(h, line);
	h = curl_slist_append(h, "x-ms-version: 2025-11-05");
	h = curl_slist_append(h, auth.data);
	long st = 0;
	curl_easy_setopt(e, CURLOPT_URL, "http://127.0.0.1:10000/devstoreaccount1?comp=list");
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sink_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &xml);
	if (curl_easy_perform(e) == CURLE_OK)
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &st);
	if (st != 200)
		fprintf(stderr, "list containers: HTTP %ld %.*s\n", st, (int)xml.len, xml.data ? xml.data : "");
	names_of(&xml, names);
	curl_slist_free_all(h);
	curl_easy_cleanup(e);
	mf_buf_free(&sts);
	mf_buf_free(&auth);
	mf_buf_free(&xml);
	return st;
}

/* check() of azure-blob with these settings ("key" = the account key,
 * "bad-key", "sas:PERMS", "bad-sas"); fills err. */
static int az_check(const char *url, const char *cred, const char *mailbox, struct mf_err *err)
{
	struct test_sec s;
	char sas[512], container[64];
	const char *c = strstr(url, "devstoreaccount1/") + strlen("devstoreaccount1/");
	snprintf(container, sizeof(container), "%.*s", (int)strcspn(c, "/"), c);
	if (!strcmp(cred, "key") || !strcmp(cred, "bad-key")) {
		setenv("TEST_AZ_CK", !strcmp(cred, "key") ? AZ_KEY
			: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==", 1);
		test_sec_init(&s, "url", url, "account", "devstoreaccount1", "key_env", "TEST_AZ_CK", NULL);
	} else {
		if (!strncmp(cred, "sas:", 4))
			test_azure_sas(sas, sizeof(sas), AZ_KEY, container, "2022-11-02", cred + 4);
		else
			test_azure_sas(sas, sizeof(sas), "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=", container,
				       "2022-11-02", "racwl");
		setenv("TEST_AZ_CK", sas, 1);
		test_sec_init(&s, "url", url, "account", "devstoreaccount1", "sas_env", "TEST_AZ_CK", NULL);
	}
	void *cfg = NULL;
	struct mf_unit unit = {.id = "ck", .mailbox = (char *)mailbox};
	memset(err, 0, sizeof(*err));
	int rc = mf_sink_azure_blob.configure(&s.sec, &cfg, err);
	if (rc == 0) {
		rc = mf_sink_azure_blob.check(cfg, &unit, err);
		mf_sink_azure_blob.free_config(cfg);
	}
	CHECK(strstr(err->msg, "sig=") == NULL && strstr(err->msg, "AAAAAAAAAA") == NULL &&
	      strstr(err->msg, AZ_KEY) == NULL);
	return rc;
}

#define AZ_MISSING "http://127.0.0.1:10000/devstoreaccount1/plan-missing"

/* `mailferry plan` looks and never writes: check() on a missing container
 * leaves it missing (the account's containers are the same before and
 * after), says that run would create it (Shared Key) or that it cannot be
 * (SAS); wrong credentials are MF_EAUTH. open(), as run does, creates it. */
TEST(azure_check_plan)
{
	struct mf_buf before = {0}, after = {0}, created = {0};
	struct mf_err err;
	CHECK_INT(az_containers(&before), 200);
	CHECK(before.data && strstr(before.data, "\nmailarchive\n") != NULL);
	CHECK(before.data && strstr(before.data, "\nplan-missing\n") == NULL);

	CHECK_INT(az_check(AZ_MISSING, "key", "a@example.com", &err), 0);
	CHECK_INT(err.code, 0);
	CHECK(strstr(err.msg, "does not exist; run would create it") != NULL);
	CHECK_INT(az_check(AZ_MISSING, "sas:racwl", "a@example.com", &err), MF_ENOTFOUND);
	CHECK(strstr(err.msg, "does not exist") != NULL && strstr(err.msg, "SAS cannot create it") != NULL);
	CHECK_INT(az_check(AZ_MISSING, "bad-key", "a@example.com", &err), MF_EAUTH);
	CHECK_INT(az_containers(&after), 200);
	CHECK_STR(after.data, before.data);

	/* the existing container: nothing to say */
	CHECK_INT(az_check(AZ_URL, "key", "a@example.com", &err), 0);
	CHECK_STR(err.msg, "");
	CHECK_INT(az_check(AZ_URL "/sub", "sas:racwl", "a@example.com", &err), 0);
	CHECK_STR(err.msg, "");
	/* a SAS that may write but not list passes: writing is not tried */
	CHECK_INT(az_check(AZ_URL, "sas:cw", "a@example.com", &err), 0);
	/* wrong key, wrong SAS signature, a SAS that may not write */
	CHECK_INT(az_check(AZ_URL, "bad-key", "a@example.com", &err), MF_EAUTH);
	CHECK(strstr(err.msg, "account key was refused") != NULL);
	CHECK_INT(az_check(AZ_URL, "bad-sas", "a@example.com", &err), MF_EAUTH);
	CHECK(strstr(err.msg, "SAS was refused") != NULL);
	CHECK_INT(az_check(AZ_URL, "sas:rl", "a@example.com", &err), MF_EAUTH);
	CHECK(strstr(err.msg, "may not write") != NULL);
	CHECK_INT(az_check(AZ_URL, "key", "a/b@example.com", &err), MF_EMAILBOX);
	mf_buf_free(&after);
	CHECK_INT(az_containers(&after), 200);
	CHECK_STR(after.data, before.data);

	/* what run does: open() makes the container */
	struct test_sec s;
	setenv("TEST_AZ_KEY", AZ_KEY, 1);
	test_sec_init(&s, "url", AZ_MISSING, "account", "devstoreaccount1", "key_env", "TEST_AZ_KEY", NULL);
	void *cfg = NULL, *snk = NULL;
	struct mf_unit unit = {.id = "ck", .mailbox = "a@example.com"};
	CHECK_INT(mf_sink_azure_blob.configure(&s.sec, &cfg, &err), 0);
	CHECK_INT(mf_sink_azure_blob.open(cfg, &unit, &snk, &err), 0);
	mf_sink_azure_blob.close(snk);
	mf_sink_azure_blob.free_config(cfg);
	CHECK_INT(az_containers(&created), 200);
	CHECK(created.data && strstr(created.data, "\nplan-missing\n") != NULL);
	CHECK_INT(az_check(AZ_MISSING, "key", "a@example.com", &err), 0);
	CHECK_STR(err.msg, "");
	mf_buf_free(&before);
	mf_buf_free(&after);
	mf_buf_free(&created);
}

/* open_read on a container that does not exist: MF_ENOTFOUND, and the
 * container is not made (open() would make it with Shared Key). */
TEST(azure_open_read_missing)
{
	struct mf_buf before = {0}, after = {0};
	struct mf_err err = {0};
	struct test_sec s;
	void *cfg = NULL, *snk = NULL;
	struct mf_unit unit = {.id = "rd", .mailbox = "a@example.com"};
	CHECK_INT(az_containers(&before), 200);
	CHECK(before.data && strstr(before.data, "\nread-missing\n") == NULL);
	setenv("TEST_AZ_KEY", AZ_KEY, 1);
	test_sec_init(&s, "url", "http://127.0.0.1:10000/devstoreaccount1/read-missing", "account",
		      "devstoreaccount1", "key_env", "TEST_AZ_KEY", NULL);
	CHECK_INT(mf_sink_azure_blob.configure(&s.sec, &cfg, &err), 0);
	CHECK_INT(mf_sink_azure_blob.open_read(cfg, &unit, &snk, &err), MF_ENOTFOUND);
	CHECK(strstr(err.msg, "does not exist") != NULL);
	mf_sink_azure_blob.free_config(cfg);
	CHECK_INT(az_containers(&after), 200);
	CHECK_STR(after.data, before.data);
	mf_buf_free(&before);
	mf_buf_free(&after);
}

static int s3_check(const char *url, const char *akid, const char *secret, struct mf_err *err)
{
	struct test_sec s;
	setenv("TEST_S3_CK", secret, 1);
	test_sec_init(&s, "url", url, "region", "us-east-1", "access_key_id", akid,
		      "secret_access_key_env", "TEST_S3_CK", NULL);
	void *cfg = NULL;
	struct mf_unit unit = {.id = "ck", .mailbox = "a@example.com"};
	memset(err, 0, sizeof(*err));
	int rc = mf_sink_s3.configure(&s.sec, &cfg, err);
	if (rc == 0) {
		rc = mf_sink_s3.check(cfg, &unit, err);
		mf_sink_s3.free_config(cfg);
	}
	CHECK(strstr(err->msg, secret) == NULL);
	return rc;
}

/* s3: check() reads only; a missing bucket is reported (run does not make
 * buckets) and stays missing; a refused key is MF_EAUTH (the SigV4
 * verifier checks signatures, s3rver does not). */
TEST(s3_check_plan)
{
	struct mf_buf x1 = {0}, x2 = {0}, before = {0}, after = {0};
	struct mf_err err;
	CHECK_INT(raw("GET", "http://127.0.0.1:4568/", "aws:amz:us-east-1:s3", &x1), 200);
	names_of(&x1, &before);
	CHECK(before.data && strstr(before.data, "\nmailarchive\n") != NULL);
	CHECK(before.data && strstr(before.data, "\nplan-missing\n") == NULL);
	CHECK_INT(s3_check("http://127.0.0.1:4568/plan-missing/pre", "S3RVER", "S3RVER", &err), MF_ENOTFOUND);
	CHECK(strstr(err.msg, "bucket /plan-missing: the bucket does not exist") != NULL);
	CHECK_INT(raw("GET", "http://127.0.0.1:4568/", "aws:amz:us-east-1:s3", &x2), 200);
	names_of(&x2, &after);
	CHECK_STR(after.data, before.data);
	CHECK_INT(s3_check("http://127.0.0.1:4568/mailarchive", "S3RVER", "S3RVER", &err), 0);
	CHECK_INT(s3_check("http://127.0.0.1:4569/bucket/pre", "AKIDEXAMPLE",
			   "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", &err), 0);
	CHECK_INT(s3_check("http://127.0.0.1:4569/bucket/pre", "AKIDEXAMPLE", "wrong-secret", &err), MF_EAUTH);
	CHECK(strstr(err.msg, "access key was refused") != NULL);
	/* open_read: a missing bucket is MF_ENOTFOUND */
	{
		struct test_sec s;
		void *cfg = NULL, *snk = NULL;
		struct mf_unit unit = {.id = "rd", .mailbox = "a@example.com"};
		setenv("TEST_S3_CK", "S3RVER", 1);
		test_sec_init(&s, "url", "http://127.0.0.1:4568/plan-missing/pre", "region", "us-east-1",
			      "access_key_id", "S3RVER", "secret_access_key_env", "TEST_S3_CK", NULL);
		CHECK_INT(mf_sink_s3.configure(&s.sec, &cfg, &err), 0);
		CHECK_INT(mf_sink_s3.open_read(cfg, &unit, &snk, &err), MF_ENOTFOUND);
		CHECK(strstr(err.msg, "does not exist") != NULL);
		mf_sink_s3.free_config(cfg);
	}
	mf_buf_free(&x1);
	mf_buf_free(&x2);
	mf_buf_free(&before);
	mf_buf_free(&after);
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
	RUN(azure_check_plan);
	RUN(azure_open_read_missing);
	RUN(s3_check_plan);
	mf_loop_stop_thread();
	cloud_stop();
	return test_done();
}
