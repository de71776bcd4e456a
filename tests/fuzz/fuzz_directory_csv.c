/* fuzz_directory_csv.c - libFuzzer target: the directory export reader
 * (directory/csv.c: BOMs, UTF-16, #TYPE, strict CSV) on arbitrary bytes,
 * diagnostics to /dev/null. */
#include <stdint.h>
#include <stdio.h>

#include "directory/directory.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *diag;
	if (!diag)
		diag = fopen("/dev/null", "w");
	struct mf_directory d;
	if (mf_directory_parse_csv("fuzz.csv", (const char *)data, size, &d, diag) == 0)
		mf_directory_free(&d);
	return 0;
}
