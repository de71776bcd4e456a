/* registry.c - find a driver by its type name. */
#include <string.h>

#include "drivers.h"

const struct mf_source_ops *mf_source_find(const char *name)
{
	for (size_t i = 0; mf_sources[i]; i++)
		if (strcmp(mf_sources[i]->name, name) == 0)
			return mf_sources[i];
	return NULL;
}

const struct mf_sink_ops *mf_sink_find(const char *name)
{
	for (size_t i = 0; mf_sinks[i]; i++)
		if (strcmp(mf_sinks[i]->name, name) == 0)
			return mf_sinks[i];
	return NULL;
}
