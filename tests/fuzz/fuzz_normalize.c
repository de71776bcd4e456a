/* fuzz_normalize.c - libFuzzer target: mf_normalize() on arbitrary bytes.
 * The first byte picks the options so that every path (CRLF/LF, line
 * limits, added ids, TNEF decode/keep) is reached. Checks the contract:
 * success, no NUL and consistent line ends in the output, and a message
 * whose result reports no change is returned byte for byte. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/normalize/normalize.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	static const size_t limits[] = { 0, 76, 200, 998 };
	unsigned sel = data[0];
	struct mf_norm_opts o = {
		.crlf = sel & 1,
		.max_line = limits[(sel >> 1) & 3],
		.add_message_id = sel & 8,
		.add_date = sel & 16,
		.drop_dnt = sel & 32,
		.tnef = (sel & 64) ? MF_TNEF_KEEP : MF_TNEF_DECODE,
		.encode_8bit_headers = sel & 128,
	};
	const unsigned char *in = data + 1;
	size_t len = size - 1;
	struct mf_norm_result r;
	if (mf_normalize(&o, in, len, 1700000000, &r) != 0)
		abort(); /* only MF_ENOMEM is allowed, and fuzzing has memory */
	if (!r.changes && (r.len != len || memcmp(r.data, in, len) != 0))
		abort();
	if (memchr(r.data, 0, r.len))
		abort();
	for (size_t i = 0; i < r.len; i++) {
		if (o.crlf && r.data[i] == '\n' && (i == 0 || r.data[i - 1] != '\r'))
			abort();
		if (!o.crlf && r.data[i] == '\r')
			abort();
	}
	free(r.data);
	return 0;
}
