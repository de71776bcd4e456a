/* azure_sas.h - mint an Azure container service SAS in tests (Azurite's
 * well-known key), for the blob sink tests. Header-only: tests include it. */
#ifndef MF_TEST_AZURE_SAS_H
#define MF_TEST_AZURE_SAS_H

#include <nettle/hmac.h>
#include <stdio.h>
#include <string.h>

#include "sinks/http/http.h"

/* A container SAS for `container` of devstoreaccount1, signed with the
 * base64 account key, service version sv (the 2015-04-05 string to sign with
 * 13 fields, or the 2020-12-06 one with 16), permissions perms, expiring in
 * 2099. Written into out as a query string. */
static inline void test_azure_sas(char *out, size_t n, const char *key_b64, const char *container,
				  const char *sv, const char *perms)
{
	const char *se = "2099-01-01T00:00:00Z";
	char canon[256];
	snprintf(canon, sizeof(canon), "/blob/devstoreaccount1/%s", container);
	struct mf_buf sts = {0}, sig = {0}, esc = {0}, ese = {0};
	if (strcmp(sv, "2020-12-06") >= 0)
		mf_buf_printf(&sts, "%s\n\n%s\n%s\n\n\n\n%s\nc\n\n\n\n\n\n\n", perms, se, canon, sv);
	else
		mf_buf_printf(&sts, "%s\n\n%s\n%s\n\n\n\n%s\n\n\n\n\n", perms, se, canon, sv);
	unsigned char key[64];
	size_t kl;
	mf_http_unbase64(key_b64, strlen(key_b64), key, sizeof(key), &kl);
	struct hmac_sha256_ctx ctx;
	uint8_t mac[32];
	hmac_sha256_set_key(&ctx, kl, key);
	hmac_sha256_update(&ctx, sts.len, (const uint8_t *)sts.data);
	hmac_sha256_digest(&ctx, 32, mac);
	mf_http_base64(&sig, mac, 32);
	mf_http_escape(&esc, sig.data, sig.len, false);
	mf_http_escape(&ese, se, strlen(se), false);
	snprintf(out, n, "sv=%s&sr=c&sp=%s&se=%s&sig=%s", sv, perms, ese.data, esc.data);
	mf_buf_free(&sts);
	mf_buf_free(&sig);
	mf_buf_free(&esc);
	mf_buf_free(&ese);
}

#endif
