/* message.h - the things that travel between source, normalizer and sink:
 * folder paths, folder descriptions, message references and messages.
 */
#ifndef MF_MESSAGE_H
#define MF_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A folder path as a list of UTF-8 segments, independent of any server's
 * hierarchy delimiter. "Inbox/Projects/2024" has three segments. Segments are
 * never empty and hold no NUL; they may hold '/' or any other character (a
 * sink that stores on disk must make them safe itself). */
struct mf_path {
	size_t n;
	char **seg;
};

void mf_path_init(struct mf_path *p);
void mf_path_free(struct mf_path *p);
/* Append a copy of `seg` (length `len`). Returns 0 or MF_ENOMEM. */
int mf_path_push(struct mf_path *p, const char *seg, size_t len);
int mf_path_copy(struct mf_path *dst, const struct mf_path *src);
/* Display form joined with `sep` (e.g. "/"), newly allocated; NULL on ENOMEM.
 * An empty path is "". */
char *mf_path_join(const struct mf_path *p, const char *sep);
/* Escaped key form for the state database: segments joined with '/', with
 * '%' and '/' inside segments written %25 and %2F. Reversible with
 * mf_path_from_key. */
char *mf_path_key(const struct mf_path *p);
int mf_path_from_key(struct mf_path *p, const char *key);

/* Special folder roles (RFC 6154 SPECIAL-USE, PST default folders). */
enum mf_role {
	MF_ROLE_NONE = 0,
	MF_ROLE_INBOX,
	MF_ROLE_SENT,
	MF_ROLE_DRAFTS,
	MF_ROLE_TRASH,
	MF_ROLE_JUNK,
	MF_ROLE_ARCHIVE,
};
const char *mf_role_name(enum mf_role r); /* "inbox", "sent", ... "" */

/* A folder as a source lists it. Owned by the source; valid until the
 * source is closed. */
struct mf_folder {
	struct mf_path path;   /* relative to the mailbox (or UserRoot) root */
	enum mf_role role;
	char *validity;        /* UIDVALIDITY, or PST identity; a change means
	                          "this is a different folder now": rescan */
	uint64_t count_hint;   /* messages, 0 if unknown (dry-run, progress) */
	uint64_t bytes_hint;   /* bytes, 0 if unknown */
	void *drv;             /* the source driver's own data */
	bool not_mail;         /* not a mail folder (a PST calendar, contacts, an
	                          Outlook-internal folder): the target gets it only
	                          for mail stored in it, never empty */
};

/* Message flags (IMAP system flags; Maildir S R F T D). */
#define MF_FLAG_SEEN 0x01u
#define MF_FLAG_ANSWERED 0x02u
#define MF_FLAG_FLAGGED 0x04u
#define MF_FLAG_DELETED 0x08u
#define MF_FLAG_DRAFT 0x10u

/* One entry of a folder listing. Borrowed for the duration of the
 * callback only. */
struct mf_msgref {
	const char *key;       /* stable and unique within the folder
	                          (IMAP UID, PST node id), printable ASCII */
	uint64_t size;         /* best estimate, 0 if unknown */
	int64_t idate;         /* internal date (unix seconds), 0 if unknown */
	unsigned flags;        /* MF_FLAG_*, if known at listing time */
	const char *skip_kind; /* non-NULL: this item is not mail ("contact",
	                          "appointment", "task", ...); the engine records
	                          it as skipped and never fetches it */
};

/* Return 0 to go on, a negative MF_E* code to stop the listing (the listing
 * call then returns that code). */
typedef int (*mf_msgref_cb)(void *arg, const struct mf_msgref *ref);

/* A fetched message: RFC 5322 bytes and metadata. `data` and `keywords`
 * are owned by the struct (data from mf_bytes_alloc/mf_buf, keywords
 * malloc'd); mf_msg_clear frees them. */
struct mf_msg {
	unsigned char *data;
	size_t len;
	int64_t idate;  /* internal date, unix seconds (0 = unknown) */
	unsigned flags; /* MF_FLAG_* */
	char *keywords; /* IMAP keywords ($Forwarded, $Junk, $label1, ...),
	                   space-separated; NULL = none */
};
void mf_msg_clear(struct mf_msg *m);

/* What a sink is handed to store or probe. Everything is borrowed for the
 * call. */
struct mf_item {
	const unsigned char *data; /* normalized bytes, as they will be stored */
	size_t len;
	const unsigned char *sha256; /* 32 bytes: SHA-256 of data */
	const char *hash_hex;        /* the same as 64 lowercase hex digits */
	const char *idem;  /* idempotency key: 32 hex digits, stable for this
	                      (mailbox, source folder, source key); sinks that
	                      name things deterministically use it */
	unsigned dup;      /* 0 for the first message with this sha256 in this
	                      source folder, 1 for the second, ... */
	const char *message_id; /* Message-ID header value, or NULL */
	int64_t idate;
	unsigned flags;
	const char *keywords; /* space-separated IMAP keywords, or NULL */
};

#endif
