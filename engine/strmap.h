/* strmap.h - a string -> int map (open addressing), for per-folder sets of
 * source keys and content hashes. Not thread-safe; owned by one worker. */
#ifndef MF_STRMAP_H
#define MF_STRMAP_H

#include <stddef.h>

struct mf_strmap {
	char **keys;
	int *vals;
	size_t cap, n;
};

void mf_strmap_init(struct mf_strmap *m);
void mf_strmap_free(struct mf_strmap *m);
/* Pointer to the value of key, or NULL. */
int *mf_strmap_get(const struct mf_strmap *m, const char *key);
/* Set key (copied) to val. 0 or MF_ENOMEM. */
int mf_strmap_set(struct mf_strmap *m, const char *key, int val);

#endif
