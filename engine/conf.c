/* conf.c - typed access to job file sections. Parsing is in job.c. */
#include "conf.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const struct mf_conf_kv *mf_conf_find(const struct mf_conf_section *s, const char *key)
{
	if (!s)
		return NULL;
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->kv[i].key, key) == 0)
			return &s->kv[i];
	return NULL;
}

const char *mf_conf_get(const struct mf_conf_section *s, const char *key, const char *dflt)
{
	const struct mf_conf_kv *kv = mf_conf_find(s, key);
	return kv ? kv->value : dflt;
}

int mf_conf_error(const struct mf_conf_section *s, const char *key, struct mf_err *err,
		  const char *fmt, ...)
{
	const struct mf_conf_kv *kv = key ? mf_conf_find(s, key) : NULL;
	char text[384];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	int line = kv ? kv->line : s->line;
	if (key)
		return mf_err_set(err, MF_ECONFIG, "%s:%d: [%s] %s: %s", s->file, line, s->name,
				  key, text);
	return mf_err_set(err, MF_ECONFIG, "%s:%d: [%s]: %s", s->file, line, s->name, text);
}

int mf_conf_uint(const struct mf_conf_section *s, const char *key, uint64_t min, uint64_t max,
		 uint64_t dflt, uint64_t *out, struct mf_err *err)
{
	const char *v = mf_conf_get(s, key, NULL);
	*out = dflt;
	if (!v)
		return 0;
	char *end;
	errno = 0;
	if (*v == '-' || *v == '\0')
		return mf_conf_error(s, key, err, "'%s' is not a whole number", v);
	unsigned long long n = strtoull(v, &end, 10);
	if (errno || *end)
		return mf_conf_error(s, key, err, "'%s' is not a whole number", v);
	if (n < min || n > max)
		return mf_conf_error(s, key, err, "%llu is out of range (%" PRIu64 "..%" PRIu64 ")",
				     n, min, max);
	*out = n;
	return 0;
}

int mf_conf_bool(const struct mf_conf_section *s, const char *key, bool dflt, bool *out,
		 struct mf_err *err)
{
	const char *v = mf_conf_get(s, key, NULL);
	*out = dflt;
	if (!v)
		return 0;
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return mf_conf_error(s, key, err, "'%s' is not yes or no", v);
}

int mf_conf_enum(const struct mf_conf_section *s, const char *key, const char *const *choices,
		 int dflt, int *out, struct mf_err *err)
{
	const char *v = mf_conf_get(s, key, NULL);
	*out = dflt;
	if (!v)
		return 0;
	char allowed[256] = "";
	for (int i = 0; choices[i]; i++) {
		if (strcasecmp(v, choices[i]) == 0) {
			*out = i;
			return 0;
		}
		size_t l = strlen(allowed);
		snprintf(allowed + l, sizeof(allowed) - l, "%s%s", i ? " | " : "", choices[i]);
	}
	return mf_conf_error(s, key, err, "'%s' is not one of: %s", v, allowed);
}

int mf_conf_path(const struct mf_conf_section *s, const char *key, const char *dflt, char **out,
		 struct mf_err *err)
{
	const char *v = mf_conf_get(s, key, dflt);
	*out = NULL;
	if (!v)
		return 0;
	if (!*v)
		return mf_conf_error(s, key, err, "empty path");
	if (v[0] == '/' || !s->dir || !*s->dir) {
		*out = strdup(v);
	} else {
		size_t l = strlen(s->dir) + strlen(v) + 2;
		*out = malloc(l);
		if (*out)
			snprintf(*out, l, "%s/%s", s->dir, v);
	}
	if (!*out)
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	/* "jobs/../data" reads better as "/srv/data" in reports, where it exists */
	char *real = realpath(*out, NULL);
	if (real) {
		free(*out);
		*out = real;
	}
	return 0;
}

static char *read_first_line(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, f);
	fclose(f);
	if (n < 0) {
		free(line);
		return strdup("");
	}
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	return line;
}

static bool skip_secrets;

void mf_conf_skip_secrets(bool skip)
{
	skip_secrets = skip;
}

bool mf_conf_secrets_skipped(void)
{
	return skip_secrets;
}

int mf_conf_secret(const struct mf_conf_section *s, const char *key, char **out,
		   struct mf_err *err)
{
	char kenv[128], kfile[128];
	snprintf(kenv, sizeof(kenv), "%s_env", key);
	snprintf(kfile, sizeof(kfile), "%s_file", key);
	const char *direct = mf_conf_get(s, key, NULL);
	const char *env = mf_conf_get(s, kenv, NULL);
	const char *file = mf_conf_get(s, kfile, NULL);
	*out = NULL;
	if (!!direct + !!env + !!file > 1)
		return mf_conf_error(s, key, err, "give only one of %s, %s and %s", key, kenv,
				     kfile);
	if (skip_secrets && (direct || env || file)) {
		*out = strdup("bm90IHJlYWQ="); /* base64 of "not read" */
		return *out ? 0 : mf_err_set(err, MF_ENOMEM, "out of memory");
	}
	if (direct) {
		*out = strdup(direct);
	} else if (env) {
		const char *v = getenv(env);
		if (!v)
			return mf_conf_error(s, kenv, err, "environment variable %s is not set",
					     env);
		*out = strdup(v);
	} else if (file) {
		char *path = NULL;
		int rc = mf_conf_path(s, kfile, NULL, &path, err);
		if (rc < 0)
			return rc;
		*out = read_first_line(path);
		if (!*out) {
			int e = errno;
			rc = mf_conf_error(s, kfile, err, "cannot read %s: %s", path, strerror(e));
			free(path);
			return rc;
		}
		free(path);
	} else {
		return 0;
	}
	return *out ? 0 : mf_err_set(err, MF_ENOMEM, "out of memory");
}

void mf_secret_free(char *secret)
{
	if (!secret)
		return;
	/* explicit_bzero keeps the wipe from being optimised away. */
	explicit_bzero(secret, strlen(secret));
	free(secret);
}
