/* error.c - the one table of error codes, texts and classes. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct entry {
	int code;
	enum mf_class cls;
	const char *name;
	const char *text;
};

static const struct entry table[] = {
#define MF_X_ENTRY(name, val, cls, text) {val, cls, #name, text},
	MF_ERRORS(MF_X_ENTRY)
#undef MF_X_ENTRY
};

static const struct entry *lookup(int code)
{
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (table[i].code == code)
			return &table[i];
	return &table[sizeof(table) / sizeof(table[0]) - 1]; /* MF_EINTERNAL */
}

const char *mf_err_name(int code)
{
	return lookup(code)->name;
}

const char *mf_err_text(int code)
{
	return lookup(code)->text;
}

enum mf_class mf_err_class(int code)
{
	return lookup(code)->cls;
}

const char *mf_class_name(enum mf_class cls)
{
	static const char *const names[] = {
		[MF_CLASS_NONE] = "none",	    [MF_CLASS_MESSAGE] = "message",
		[MF_CLASS_FOLDER] = "folder",	    [MF_CLASS_MAILBOX] = "mailbox",
		[MF_CLASS_CONNECTION] = "connection", [MF_CLASS_THROTTLED] = "throttled",
		[MF_CLASS_QUOTA] = "quota",	    [MF_CLASS_AUTH] = "auth",
		[MF_CLASS_CONFIG] = "config",	    [MF_CLASS_INTERNAL] = "internal",
	};
	if ((unsigned)cls >= sizeof(names) / sizeof(names[0]))
		return "internal";
	return names[cls];
}

int mf_err_set(struct mf_err *err, int code, const char *fmt, ...)
{
	if (!err)
		return code;
	err->code = code;
	err->retry_after_ms = 0;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return code;
}

void mf_err_prefix(struct mf_err *err, const char *fmt, ...)
{
	if (!err)
		return;
	char prefix[256], old[sizeof(err->msg)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	snprintf(err->msg, sizeof(err->msg), "%s: %s", prefix, old);
}

void mf_err_clear(struct mf_err *err)
{
	if (!err)
		return;
	err->code = 0;
	err->retry_after_ms = 0;
	err->msg[0] = '\0';
}
