/* strmap.c - string -> int map with linear probing (FNV-1a). */
#include "strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

void mf_strmap_init(struct mf_strmap *m)
{
	memset(m, 0, sizeof(*m));
}

void mf_strmap_free(struct mf_strmap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->keys[i]);
	free(m->keys);
	free(m->vals);
	mf_strmap_init(m);
}

static uint64_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

static size_t slot(const struct mf_strmap *m, const char *key)
{
	size_t i = (size_t)hash(key) & (m->cap - 1);
	while (m->keys[i] && strcmp(m->keys[i], key) != 0)
		i = (i + 1) & (m->cap - 1);
	return i;
}

int *mf_strmap_get(const struct mf_strmap *m, const char *key)
{
	if (!m->cap)
		return NULL;
	size_t i = slot(m, key);
	return m->keys[i] ? &m->vals[i] : NULL;
}

static int grow(struct mf_strmap *m)
{
	size_t cap = m->cap ? m->cap * 2 : 64;
	struct mf_strmap bigger = {
		.keys = calloc(cap, sizeof(char *)),
		.vals = calloc(cap, sizeof(int)),
		.cap = cap,
	};
	if (!bigger.keys || !bigger.vals) {
		free(bigger.keys);
		free(bigger.vals);
		return MF_ENOMEM;
	}
	for (size_t i = 0; i < m->cap; i++) {
		if (!m->keys[i])
			continue;
		size_t j = slot(&bigger, m->keys[i]);
		bigger.keys[j] = m->keys[i];
		bigger.vals[j] = m->vals[i];
	}
	bigger.n = m->n;
	free(m->keys);
	free(m->vals);
	*m = bigger;
	return 0;
}

int mf_strmap_set(struct mf_strmap *m, const char *key, int val)
{
	if ((m->n + 1) * 4 > m->cap * 3 && grow(m) < 0)
		return MF_ENOMEM;
	size_t i = slot(m, key);
	if (!m->keys[i]) {
		m->keys[i] = strdup(key);
		if (!m->keys[i])
			return MF_ENOMEM;
		m->n++;
	}
	m->vals[i] = val;
	return 0;
}
