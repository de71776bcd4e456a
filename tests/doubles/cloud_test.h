/* cloud_test.h - helpers for the cloud sink tests (test_blob*, test_graph*,
 * test_http*): start the loopback servers with tools/cloud-servers.sh,
 * build job-file sections and items in memory. Header-only, test use only. */
#ifndef MF_CLOUD_TEST_H
#define MF_CLOUD_TEST_H

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "engine/message.h"
#include "engine/sink.h"
#include "engine/util.h"

static char cloud_state[1024];

/* Serialise the cloud tests (fixed loopback ports) and start `what`
 * ("azurite s3rver sigv4", "graph"). Returns 0, or 77 to skip. */
static inline int cloud_start(const char *name, const char *what, const char *env)
{
	const char *src = getenv("MF_SRC"), *tmp = getenv("MF_TMP");
	if (!src || !tmp) {
		fprintf(stderr, "SKIP: MF_SRC/MF_TMP not set (run through ctest)\n");
		return 77;
	}
	static int lock = -1; /* once per process: flock on a second fd would wait on ourselves */
	if (lock < 0) {
		lock = open("/tmp/mailferry-cloud.lock", O_CREAT | O_RDWR | O_CLOEXEC, 0666);
		if (lock >= 0)
			flock(lock, LOCK_EX); /* held until the process exits */
	}
	char prefix[1024], cmd[4096];
	const char *np = getenv("MF_NPM_PREFIX");
	if (np)
		snprintf(prefix, sizeof(prefix), "%s", np);
	else
		snprintf(prefix, sizeof(prefix), "%s/../../npm", tmp);
	snprintf(cloud_state, sizeof(cloud_state), "%s/%s", tmp, name);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mkdir -p '%s' && %s bash '%s/tools/cloud-servers.sh' start '%s' '%s' %s",
		 cloud_state, cloud_state, env ? env : "", src, prefix, cloud_state, what);
	if (system(cmd) != 0) {
		char stop[2048];
		snprintf(stop, sizeof(stop), "bash '%s/tools/cloud-servers.sh' stop '%s'", src, cloud_state);
		if (system(stop) != 0)
			fprintf(stderr, "stop failed\n");
		fprintf(stderr, "SKIP: cannot start %s (npm or node missing?)\n", what);
		return 77;
	}
	return 0;
}

static inline void cloud_stop(void)
{
	char cmd[2048];
	snprintf(cmd, sizeof(cmd), "bash '%s/tools/cloud-servers.sh' stop '%s'", getenv("MF_SRC"),
		 cloud_state);
	if (system(cmd) != 0)
		fprintf(stderr, "cloud-servers stop failed\n");
}

/* A [sink] section from "key", "value", ... NULL. */
struct test_sec {
	struct mf_conf_section sec;
	struct mf_conf_kv kv[16];
};

static inline void test_sec_init(struct test_sec *t, ...)
{
	va_list ap;
	memset(t, 0, sizeof(*t));
	t->sec.file = "test.ini";
	t->sec.dir = ".";
	t->sec.name = (char *)"sink";
	t->sec.line = 1;
	t->sec.kv = t->kv;
	va_start(ap, t);
	const char *k;
	while ((k = va_arg(ap, const char *)) && t->sec.n < 16) {
		t->kv[t->sec.n].key = (char *)k;
		t->kv[t->sec.n].value = va_arg(ap, char *);
		t->kv[t->sec.n].line = (int)t->sec.n + 2;
		t->sec.n++;
	}
	va_end(ap);
}

struct test_item {
	struct mf_item it;
	unsigned char sha[MF_SHA256_LEN];
	char hex[65];
};

static inline void test_item_init(struct test_item *t, const void *data, size_t len, unsigned dup,
			   const char *msgid, unsigned flags)
{
	memset(t, 0, sizeof(*t));
	mf_sha256(data, len, t->sha);
	mf_hex(t->sha, MF_SHA256_LEN, t->hex);
	t->it.data = data;
	t->it.len = len;
	t->it.sha256 = t->sha;
	t->it.hash_hex = t->hex;
	t->it.idem = "0123456789abcdef0123456789abcdef";
	t->it.dup = dup;
	t->it.message_id = msgid;
	t->it.idate = 1700000000;
	t->it.flags = flags;
}

/* A deterministic message of about `size` bytes with CRLF lines. */
static inline unsigned char *test_message(size_t size, const char *subject, const char *msgid, size_t *len)
{
	struct mf_buf b = {0};
	mf_buf_printf(&b,
		      "From: Alice <alice@example.com>\r\nTo: Bob <bob@example.com>\r\n"
		      "Subject: %s\r\nDate: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
		      "Message-ID: %s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
		      subject, msgid);
	unsigned n = 0;
	while (b.len < size)
		mf_buf_printf(&b, "line %08u of the body of %s, padding padding padding\r\n", n++, subject);
	*len = b.len;
	return (unsigned char *)b.data;
}

#endif
