/* fuzz_manifest.c - libFuzzer target: the manifest (CSV) parser on
 * arbitrary text, diagnostics to /dev/null. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine/job.h"
#include "engine/unit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *diag;
	if (!diag)
		diag = fopen("/dev/null", "w");
	enum mf_manifest_kind kind;
	struct mf_unit *units = NULL;
	size_t n = 0;
	if (mf_manifest_parse("fuzz.csv", (const char *)data, size, "/nonexistent", &kind, &units,
			      &n, diag) == 0)
		mf_units_free(units, n);
	return 0;
}
