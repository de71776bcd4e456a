/* error.h - mailferry error codes and failure classes.
 *
 * Functions return 0 on success or a negative MF_E* code. One table (error.c)
 * gives every code its name, its default text and its failure class; the class
 * decides what the engine does next (DESIGN.md, "Failure classes").
 *
 * A driver that detects an error describes it once in a struct mf_err (code +
 * human text + optional retry hint). Upper layers add context; they do not log
 * it again.
 */
#ifndef MF_ERROR_H
#define MF_ERROR_H

#include <stddef.h>

enum mf_class {
	MF_CLASS_NONE = 0,
	MF_CLASS_MESSAGE,    /* skip this message, record why, go on */
	MF_CLASS_FOLDER,     /* skip this folder, go on with the mailbox */
	MF_CLASS_MAILBOX,    /* this mailbox fails, the others go on */
	MF_CLASS_CONNECTION, /* reconnect with backoff, then retry */
	MF_CLASS_THROTTLED,  /* wait as the server asks (retry_after_ms), retry */
	MF_CLASS_QUOTA,      /* target mailbox full: the mailbox stops */
	MF_CLASS_AUTH,       /* credentials refused: the mailbox stops */
	MF_CLASS_CONFIG,     /* cannot succeed as configured: stop */
	MF_CLASS_INTERNAL,   /* a bug */
};

#define MF_ERRORS(X)                                                           \
	X(MF_ENOMEM, -1, MF_CLASS_INTERNAL, "out of memory")                   \
	X(MF_EINVAL, -2, MF_CLASS_INTERNAL, "invalid argument")                \
	X(MF_ECONFIG, -3, MF_CLASS_CONFIG, "configuration error")              \
	X(MF_EIO, -4, MF_CLASS_MAILBOX, "input/output error")                  \
	X(MF_ECORRUPT, -5, MF_CLASS_MAILBOX, "source is corrupt or unreadable")\
	X(MF_EMSG, -6, MF_CLASS_MESSAGE, "message cannot be migrated")         \
	X(MF_ETOOBIG, -7, MF_CLASS_MESSAGE, "message too big for the target")  \
	X(MF_EFOLDER, -8, MF_CLASS_FOLDER, "folder cannot be migrated")        \
	X(MF_ECONN, -9, MF_CLASS_CONNECTION, "connection failed")              \
	X(MF_ETHROTTLED, -10, MF_CLASS_THROTTLED, "throttled by server")       \
	X(MF_EQUOTA, -11, MF_CLASS_QUOTA, "target mailbox over quota")         \
	X(MF_EAUTH, -12, MF_CLASS_AUTH, "authentication failed")               \
	X(MF_ENOSPC, -13, MF_CLASS_MAILBOX, "no space left on device")         \
	X(MF_EINTERRUPTED, -14, MF_CLASS_NONE, "interrupted")                  \
	X(MF_ENOTFOUND, -15, MF_CLASS_MAILBOX, "not found")                    \
	X(MF_ESTATE, -16, MF_CLASS_CONFIG, "state database problem")           \
	X(MF_ELOCKED, -17, MF_CLASS_CONFIG, "job is already running")          \
	X(MF_EPROTO, -18, MF_CLASS_CONNECTION, "protocol error")               \
	X(MF_EMAILBOX, -19, MF_CLASS_MAILBOX, "mailbox cannot be migrated")    \
	X(MF_EINTERNAL, -20, MF_CLASS_INTERNAL, "internal error")

enum mf_errcode {
#define MF_X_ENUM(name, val, cls, text) name = val,
	MF_ERRORS(MF_X_ENUM)
#undef MF_X_ENUM
};

/* An error as described by the layer that detected it. `msg` is plain text
 * meant for the report; it must never hold a secret. */
struct mf_err {
	int code;            /* a negative MF_E* code, 0 when no error */
	int retry_after_ms;  /* THROTTLED: how long the server asked us to wait */
	char msg[512];
};

/* Name ("MF_EIO"), default text and class of a code. Unknown codes map to
 * MF_EINTERNAL. Never NULL. */
const char *mf_err_name(int code);
const char *mf_err_text(int code);
enum mf_class mf_err_class(int code);
const char *mf_class_name(enum mf_class cls);

/* Fill `err` (may be NULL) with `code` and a printf-style message; returns
 * `code` so that drivers can write `return mf_err_set(err, MF_EIO, ...)`. */
int mf_err_set(struct mf_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefix context to an existing message ("folder Inbox: <old>"). */
void mf_err_prefix(struct mf_err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

void mf_err_clear(struct mf_err *err);

#endif
