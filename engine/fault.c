/* fault.c - MF_FAULT_KILL_AT (see fault.h). */
#include "fault.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int armed_stage = -1;
static long armed_count;
static atomic_long seen[MF_FAULT_NSTAGES];
static long delay_ms;

static void arm(void)
{
	static const char *const names[MF_FAULT_NSTAGES] = {"pending", "store", "commit", "block"};
	const char *d = getenv("MF_FAULT_DELAY_MS");
	if (d)
		delay_ms = strtol(d, NULL, 10);
	const char *v = getenv("MF_FAULT_KILL_AT");
	if (!v)
		return;
	const char *colon = strchr(v, ':');
	if (!colon)
		return;
	for (int i = 0; i < MF_FAULT_NSTAGES; i++) {
		if (strlen(names[i]) == (size_t)(colon - v) &&
		    strncmp(v, names[i], (size_t)(colon - v)) == 0) {
			char *end;
			long n = strtol(colon + 1, &end, 10);
			if (*end == '\0' && n > 0) {
				armed_stage = i;
				armed_count = n;
			}
		}
	}
}

void mf_fault_point(enum mf_fault_stage stage)
{
	pthread_once(&once, arm);
	if (delay_ms > 0 && stage == MF_FAULT_STORE) {
		struct timespec ts = {.tv_sec = delay_ms / 1000,
				      .tv_nsec = (delay_ms % 1000) * 1000000L};
		nanosleep(&ts, NULL);
	}
	if (armed_stage != (int)stage)
		return;
	if (atomic_fetch_add(&seen[stage], 1) + 1 == armed_count)
		raise(SIGKILL);
}
