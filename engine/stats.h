/* stats.h - process-wide counters that drivers add to, for the run summary
 * and the report (e.g. retries an HTTP sink made on its own). Thread-safe. */
#ifndef MF_STATS_H
#define MF_STATS_H

void mf_stats_retry(void);
unsigned long long mf_stats_retries(void);

#endif
