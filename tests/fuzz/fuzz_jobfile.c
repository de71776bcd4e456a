/* fuzz_jobfile.c - libFuzzer target: the job file (INI) parser on
 * arbitrary text, diagnostics to /dev/null. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine/conf.h"
#include "engine/job.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *diag;
	if (!diag)
		diag = fopen("/dev/null", "w");
	struct mf_conf_section *sec = NULL;
	size_t nsec = 0;
	if (mf_job_parse_ini("fuzz.ini", (const char *)data, size, &sec, &nsec, diag) == 0)
		mf_job_free_sections(sec, nsec);
	return 0;
}
