/* fuzz_http_text.c - libFuzzer target: what the HTTP sinks read from
 * servers and mail headers, on arbitrary bytes. The first byte picks:
 *   0: RFC 2047 header decoding (the Graph JSON path's g_hdr_decode)
 *   1: JSON answers (member lookup, array walk, strings, integers)
 *   2: redaction of secrets in a log line (mf_http_redact)
 *   3: base64 decoding (mf_http_unbase64) */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/normalize/mimeenc.h"
#include "sinks/graph/graph.h"
#include "sinks/http/http.h"
#include "sinks/http/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void json(const char *p, const char *end)
{
	const char *ve, *ee;
	char s[256];
	const char *v = mf_json_member(p, end, "value", &ve);
	for (const char *e = v ? mf_json_array_first(v, ve, &ee) : NULL; e;
	     e = mf_json_array_next(ee, ve, &ee)) {
		mf_json_get_str(e, ee, "id", s, sizeof(s));
		mf_json_get_int(e, ee, "size", -1);
		mf_json_string(e, ee, s, sizeof(s));
	}
	mf_json_get_str(p, end, "@odata.nextLink", s, sizeof(s));
	mf_json_skip(p, end);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *p = (const char *)data + 1;
	size_t n = size - 1;
	switch (data[0] & 3) {
	case 0: {
		struct mf_out o = {0};
		g_hdr_decode(p, n, &o);
		mf_out_free(&o);
		break;
	}
	case 1:
		json(p, p + n);
		break;
	case 2: {
		char *s = malloc(n + 1);
		if (!s)
			return 0;
		memcpy(s, p, n);
		s[n] = '\0';
		size_t before = strlen(s);
		mf_http_redact(s);
		if (strlen(s) > before)
			abort(); /* documented: never longer than the input */
		free(s);
		break;
	}
	default: {
		unsigned char out[4096];
		size_t ol;
		mf_http_unbase64(p, n, out, sizeof(out), &ol);
		break;
	}
	}
	return 0;
}
