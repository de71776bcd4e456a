/* sink.h - the interface every sink driver implements (sinks/maildir,
 * sinks/imap, sinks/graph, sinks/blob).
 *
 * Threading and errors as in source.h: functions are called from the
 * mailbox's worker thread, may block, return 0 or a negative MF_E* code and
 * describe the error once in `err`. A sink that talks HTTP hands its requests
 * to the shared libcurl multi handle on the loop and waits for them; the
 * worker thread is the only caller of one opened sink.
 *
 * Exactly-once (DESIGN.md): before store() the engine has durably recorded
 * the message as pending; after a crash it calls probe() for every pending
 * message before storing it again. A sink must be able to answer probe()
 * without having changed the message: by a deterministic name derived from
 * item->idem, or by searching the target (Message-ID, size, content hash).
 */
#ifndef MF_SINK_H
#define MF_SINK_H

#include <stdbool.h>
#include <stddef.h>

#include "conf.h"
#include "error.h"
#include "message.h"
#include "unit.h"

/* What the sink accepts; the normalizer fixes messages to fit. */
struct mf_sink_caps {
	bool crlf;                  /* wants CRLF line ends (else LF) */
	size_t max_line;            /* longest line accepted, 0 = no limit */
	uint64_t max_message_bytes; /* bigger messages are skipped, 0 = no limit */
	bool needs_message_id;      /* finds messages again only by Message-ID */
	bool needs_date;            /* takes the date from the Date header */
	bool ascii_headers;         /* raw 8-bit header fields are RFC 2047-encoded first */
	bool whole_files;           /* takes each unit's source file whole (PST
	                               import staging): see upload_file */
	bool ancestor_role;         /* folder()'s role, for a path deeper than one
	                               segment, is the role of its top-level folder
	                               path->seg[0] (the children of Sent go under
	                               the target's Sent Items whatever the source
	                               calls Sent); without it roles come with
	                               top-level folders only */
	bool archive_rows;          /* takes IsArchive rows: for a unit with
	                               to_archive set, open() (and check,
	                               open_read) reach the mailbox's archive,
	                               never its primary. Without it the engine
	                               refuses IsArchive rows before anything
	                               runs, unless [job] archive_folder sends
	                               them to a folder of the primary (then
	                               to_archive is false) */
};

#define MF_SINK_ID_MAX 256

struct mf_sink_ops {
	const char *name;               /* the [sink] type = value */
	const struct mf_conf_key *keys; /* keys accepted in [sink] ("type" is implied) */
	/* Optional: the keys (NULL-terminated) that name directories the sink
	 * writes into or creates; `mailferry run` checks them before anything
	 * runs (the directory or its nearest existing parent writable). */
	const char *const *dir_keys;

	int (*configure)(const struct mf_conf_section *sec, void **cfg, struct mf_err *err);
	void (*free_config)(void *cfg);
	/* Capabilities for this configuration. */
	void (*caps)(const void *cfg, struct mf_sink_caps *caps);

	/* Optional (NULL: the engine calls open() and close() instead, so such
	 * a sink's open() must write nothing): can `unit->mailbox` be written?
	 * Logs in or looks, never writes. For `mailferry plan`. Returns 0 or a
	 * negative code; with 0 it may leave a note for the admin in err->msg
	 * (e.g. "container X does not exist; run would create it"). */
	int (*check)(const void *cfg, const struct mf_unit *unit, struct mf_err *err);

	/* Open the target mailbox `unit->mailbox`. */
	int (*open)(const void *cfg, const struct mf_unit *unit, void **snk, struct mf_err *err);

	/* Open the target mailbox for reading only, for `mailferry verify`
	 * and `plan`. It creates, cleans, locks, renames or changes nothing on
	 * the target, and must not disturb a run of the same job going on at
	 * the same time (no clean-up of tmp files, no folder creation). On a
	 * sink opened this way folder() only finds: for a folder that does not
	 * exist it returns MF_ENOTFOUND and creates nothing; probe(), hashes()
	 * and message_ids() work as usual; store() is never called. Returns
	 * MF_ENOTFOUND when the mailbox itself does not exist. NULL: verify and
	 * plan refuse this sink ("cannot be read without writing"). */
	int (*open_read)(const void *cfg, const struct mf_unit *unit, void **snk,
			 struct mf_err *err);

	/* Make sure a folder exists (creating parents as needed) and return a
	 * handle for it, owned by the sink until close. `path` is the target
	 * path; `role` is set when the folder is the mailbox's special folder
	 * of that role (the sink maps it to its own Inbox, Sent Items, ...). */
	int (*folder)(void *snk, const struct mf_path *path, enum mf_role role, void **fh,
		      struct mf_err *err);

	/* Is this message already in the folder? 1 yes (sink_id filled), 0 no,
	 * or a negative code. Must not modify anything. */
	int (*probe)(void *snk, void *fh, const struct mf_item *item, char sink_id[MF_SINK_ID_MAX],
		     struct mf_err *err);

	/* Store the message durably; fill sink_id (may be "" when the target
	 * gives none). Returns only once the target holds the message. */
	int (*store)(void *snk, void *fh, const struct mf_item *item, char sink_id[MF_SINK_ID_MAX],
		     struct mf_err *err);

	/* Optional (NULL if unsupported): list the SHA-256 (hex) of every
	 * message in the folder, for `mailferry verify`. */
	int (*hashes)(void *snk, void *fh, int (*cb)(void *arg, const char *hash_hex), void *arg,
		      struct mf_err *err);

	/* Optional (NULL if unsupported; used by `mailferry verify` only when
	 * hashes is NULL, for targets that rewrite what they store): list the
	 * Message-ID of every message in the folder, one cb call per message
	 * (duplicates included), on the calling worker thread, before this
	 * returns. The id is as mf_header_message_id() gives it (angle
	 * brackets kept, no whitespace), "" for a message without one; it is
	 * borrowed for the call. A cb result < 0 stops the listing and is
	 * returned. 0, or a negative code described in `err`. */
	int (*message_ids)(void *snk, void *fh, int (*cb)(void *arg, const char *message_id),
			   void *arg, struct mf_err *err);

	/* Whole-file mode (caps.whole_files, e.g. Azure PST import staging):
	 * the engine reads no messages; for each unit it calls this once with
	 * the unit's file (unit->pst_path), after recording it pending. It must
	 * be resumable (a rerun after a crash continues or finds the upload
	 * complete) and idempotent. Fills sink_id with where the file went. */
	int (*upload_file)(void *snk, const char *path, char sink_id[MF_SINK_ID_MAX],
			   struct mf_err *err);

	void (*close)(void *snk);
};

#endif
