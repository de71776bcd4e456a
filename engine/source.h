/* source.h - the interface every source driver implements (sources/imap,
 * sources/pst).
 *
 * Threading: the engine runs each mailbox's pipeline on a worker thread of
 * its own and calls a source's functions only from that thread, one call at a
 * time per opened source. Calls may block (libetpan and libpst are blocking
 * libraries); they must return when the engine's stop flag is raised between
 * messages. Nothing here runs on the loop thread.
 *
 * Errors: every function returns 0 or a negative MF_E* code and then fills
 * `err` once with what went wrong. The code's class (error.h) decides what
 * the engine does: MESSAGE skips the message, FOLDER the folder, MAILBOX and
 * AUTH end this mailbox, CONNECTION makes the engine close and reopen the
 * source and retry, THROTTLED waits err->retry_after_ms.
 */
#ifndef MF_SOURCE_H
#define MF_SOURCE_H

#include "conf.h"
#include "error.h"
#include "message.h"
#include "unit.h"

struct mf_source_ops {
	const char *name;               /* the [source] type = value */
	const struct mf_conf_key *keys; /* keys accepted in [source] ("type" is implied) */
	/* Optional: the keys (NULL-terminated) that name directories the source
	 * reads; `mailferry run` checks them before anything runs. */
	const char *const *dir_keys;

	/* Parse and check the [source] section. *cfg is owned by the engine and
	 * released with free_config. Called once, before anything runs. */
	int (*configure)(const struct mf_conf_section *sec, void **cfg, struct mf_err *err);
	void (*free_config)(void *cfg);

	/* Open the source side of one unit (log in, open the PST file). `cfg`
	 * and `unit` are borrowed and outlive the source. */
	int (*open)(const void *cfg, const struct mf_unit *unit, void **src, struct mf_err *err);

	/* List the unit's folders. The array stays owned by the source and
	 * valid until close. Folders that hold nothing to migrate may be
	 * listed; the root itself is not listed. */
	int (*folders)(void *src, const struct mf_folder **out, size_t *n, struct mf_err *err);

	/* List the messages of `f` whose key comes after `cursor` (NULL: all),
	 * in ascending order, calling `cb` for each. A driver that cannot
	 * filter by cursor lists everything (the engine skips what it already
	 * has). *next_cursor (malloc'd, may be NULL) is what to pass next time
	 * once everything listed now is migrated. */
	int (*list)(void *src, const struct mf_folder *f, const char *cursor, mf_msgref_cb cb,
		    void *arg, char **next_cursor, struct mf_err *err);

	/* Fetch one message as RFC 5322 bytes. Sets every field of *out (zero
	 * what it does not know); on success `out` owns data and keywords.
	 * MF_EMSG (class MESSAGE) for a message that cannot be converted. */
	int (*fetch)(void *src, const struct mf_folder *f, const struct mf_msgref *ref,
		     struct mf_msg *out, struct mf_err *err);

	/* Close and free everything, including the folder array. */
	void (*close)(void *src);
};

#endif
