/* fuzz_tnef.c - libFuzzer target: the TNEF decoder and its RTF helpers on
 * arbitrary bytes (a stream that fails must fail with MF_ECORRUPT and a
 * reason, never crash). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/error.h"
#include "engine/normalize/tnef.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mf_tnef_mime m;
	char why[128] = "";
	int rc = mf_tnef_to_mime(data, size, "\r\n", &m, why, sizeof(why));
	if (rc != 0 && rc != MF_ECORRUPT)
		abort();
	if (rc == MF_ECORRUPT && !why[0])
		abort();
	mf_out_free(&m.ctype);
	mf_out_free(&m.body);

	struct mf_out o = { 0 };
	rc = mf_rtf_decompress(data, size, &o);
	if (rc == MF_ENOMEM)
		abort();
	mf_out_free(&o);
	if (mf_rtf_to_html(data, size, &o) < 0)
		abort();
	mf_out_free(&o);
	return 0;
}
