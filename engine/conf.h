/* conf.h - a parsed job file, as drivers see their section of it.
 *
 * The engine parses the INI file (libinih), checks every key against the
 * driver's key table (unknown keys and missing required keys are refused,
 * naming file:line) and then hands the section to the driver's configure().
 */
#ifndef MF_CONF_H
#define MF_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct mf_conf_kv {
	char *key;
	char *value;
	int line;
};

struct mf_conf_section {
	const char *file; /* job file path, for messages */
	const char *dir;  /* the job file's directory: relative paths start here */
	char *name;
	int line;
	size_t n;
	struct mf_conf_kv *kv;
};

/* A key a driver accepts. A table ends with an entry whose name is NULL. */
struct mf_conf_key {
	const char *name;
	bool required;
	const char *help; /* one line for --help and the README */
};

/* Lookup; NULL when absent. The result is borrowed from the section. */
const struct mf_conf_kv *mf_conf_find(const struct mf_conf_section *s, const char *key);
const char *mf_conf_get(const struct mf_conf_section *s, const char *key, const char *dflt);

/* Typed getters. On a bad value they fill `err` with MF_ECONFIG naming
 * file:line, the section and the key, and return MF_ECONFIG. An absent key
 * leaves *out at the default given. */
int mf_conf_uint(const struct mf_conf_section *s, const char *key, uint64_t min,
		 uint64_t max, uint64_t dflt, uint64_t *out, struct mf_err *err);
int mf_conf_bool(const struct mf_conf_section *s, const char *key, bool dflt, bool *out,
		 struct mf_err *err);
/* One of `choices` (NULL-terminated); *out is the index. */
int mf_conf_enum(const struct mf_conf_section *s, const char *key, const char *const *choices,
		 int dflt, int *out, struct mf_err *err);
/* A path: relative values are resolved against the job file's directory.
 * *out is malloc'd (NULL when absent and dflt is NULL). */
int mf_conf_path(const struct mf_conf_section *s, const char *key, const char *dflt, char **out,
		 struct mf_err *err);
/* Fill err with MF_ECONFIG "FILE:LINE: [section] key: <message>". */
int mf_conf_error(const struct mf_conf_section *s, const char *key, struct mf_err *err,
		  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* A secret read from `key`, `key_env` (environment variable name) or
 * `key_file` (file, first line). Exactly one may be given; none leaves *out
 * NULL. The value never appears in any message. Caller frees with
 * mf_secret_free. */
int mf_conf_secret(const struct mf_conf_section *s, const char *key, char **out,
		   struct mf_err *err);
/* For the commands that read only the state database and the job file
 * (status, report): with `skip` set, mf_conf_secret still checks which form
 * is given but reads no environment variable and no file, and returns a
 * placeholder (valid base64, never sent anywhere since these commands make
 * no connection) for a secret that is configured. Process-wide; set before
 * mf_job_load. */
void mf_conf_skip_secrets(bool skip);
bool mf_conf_secrets_skipped(void);
void mf_secret_free(char *secret);

#endif
