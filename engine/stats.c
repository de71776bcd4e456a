/* stats.c - process-wide counters (see stats.h). */
#include "stats.h"

#include <stdatomic.h>

static atomic_ullong retries;

void mf_stats_retry(void)
{
	atomic_fetch_add(&retries, 1);
}

unsigned long long mf_stats_retries(void)
{
	return atomic_load(&retries);
}
