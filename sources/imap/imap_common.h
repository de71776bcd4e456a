/* imap_common.h - what the IMAP source and the IMAP sink share: connection
 * settings from the job file, one logged-in libetpan session, the modified
 * UTF-7 codec, folder listing with roles, batched UID FETCH that streams
 * bodies into one buffer each, and the mapping of server answers onto
 * mailferry's error codes.
 *
 * Threads: a struct mf_imap is used by one thread at a time (libetpan is
 * blocking and not thread-safe per session). Configurations are read-only
 * after configure and may be shared by all threads; the XOAUTH2 token cache
 * inside them is guarded by a mutex.
 *
 * Secrets: passwords and tokens are passed in and never formatted into a
 * message or a log line.
 */
#ifndef MF_IMAP_COMMON_H
#define MF_IMAP_COMMON_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/conf.h"
#include "engine/error.h"
#include "engine/message.h"
#include "engine/util.h"

enum mf_imap_tls { MF_IMAP_TLS_IMPLICIT = 0, MF_IMAP_TLS_STARTTLS, MF_IMAP_TLS_NONE };
enum mf_imap_auth { MF_IMAP_AUTH_LOGIN = 0, MF_IMAP_AUTH_PLAIN, MF_IMAP_AUTH_XOAUTH2 };

/* Connection settings shared by the source and the sink. */
struct mf_imap_conf {
	char *host;
	uint16_t port;
	enum mf_imap_tls tls;
	bool tls_verify;
	char *tls_ca_file;     /* CA certificates (PEM) instead of the system's */
	enum mf_imap_auth auth;
	unsigned timeout_s;
	bool compress; /* use COMPRESS=DEFLATE when offered */
	/* XOAUTH2 */
	char *token_cmd;
	char *token_url;
	char *client_id;
	char *client_secret; /* a secret (from client_secret_env) */
	char *scope;
	pthread_mutex_t token_lock;
	char *token;           /* cached bearer token: a secret */
	uint64_t token_expiry; /* mf_now_ms() deadline */
};

/* The [source]/[sink] keys every IMAP driver accepts. */
#define MF_IMAP_CONF_KEYS                                                              \
	{"host", true, "IMAP server host name or address"},                            \
	{"port", false, "TCP port (default 993, or 143 for tls = starttls|none)"},    \
	{"tls", false, "implicit | starttls | none (default implicit)"},               \
	{"tls_verify", false, "verify the server certificate (default yes)"},           \
	{"tls_ca_file", false, "PEM file of CAs to trust instead of the system store"}, \
	{"auth", false, "login | plain | xoauth2 (default plain)"},                   \
	{"timeout", false, "network timeout in seconds (default 120)"},                \
	{"compress", false, "use COMPRESS=DEFLATE when the server offers it (default yes)"}, \
	{"token_cmd", false, "xoauth2: command whose stdout is the bearer token"},     \
	{"token_url", false, "xoauth2: OAuth2 token endpoint (client credentials)"},   \
	{"client_id", false, "xoauth2: OAuth2 client id"},                            \
	{"client_secret_env", false, "xoauth2: environment variable with the client secret"}, \
	{"scope", false, "xoauth2: OAuth2 scope"}

/* Parse the shared keys of `sec` into `c` (zeroed by the caller).
 * MF_ECONFIG naming file:line on a bad value. */
int mf_imap_conf_parse(const struct mf_conf_section *sec, struct mf_imap_conf *c,
		       struct mf_err *err);
void mf_imap_conf_free(struct mf_imap_conf *c);

/* Capabilities the drivers care about. */
#define MF_IMAP_CAP_UIDPLUS 0x01u
#define MF_IMAP_CAP_LITERALPLUS 0x02u
#define MF_IMAP_CAP_NAMESPACE 0x04u
#define MF_IMAP_CAP_SPECIALUSE 0x08u
#define MF_IMAP_CAP_XLIST 0x10u
#define MF_IMAP_CAP_COMPRESS 0x20u
#define MF_IMAP_CAP_SASLIR 0x40u
#define MF_IMAP_CAP_APPENDLIMIT 0x80u
#define MF_IMAP_CAP_UTF8ACCEPT 0x100u /* RFC 6855 UTF8=ACCEPT */

struct mailimap;

#define MF_IMAP_MAX_NS 8

/* One logged-in session. */
struct mf_imap {
	struct mailimap *s;
	unsigned caps;
	uint64_t appendlimit; /* APPENDLIMIT=N, 0 if none */
	char delim;           /* hierarchy delimiter of the personal namespace, 0 = flat */
	char *ns_prefix;      /* personal namespace prefix as on the wire ("" or "INBOX.") */
	/* other users' and shared namespace prefixes (NAMESPACE), wire form, e.g.
	 * "Other Users/" and "Shared Folders/" on Cyrus with altnamespace: not
	 * the user's own mail, left out of mf_imap_list unless list_foreign */
	char *foreign_ns[MF_IMAP_MAX_NS];
	size_t nforeign;
	bool list_foreign;
	char *selected;       /* mailbox selected now (wire name), or NULL */
	bool selected_rw;
	uint32_t uidvalidity; /* of the selected mailbox */
	uint32_t uidnext;     /* of the selected mailbox when selected, 0 if unknown */
	bool any_keyword;     /* its PERMANENTFLAGS has \* (or is missing) */
	char *perm_keywords;  /* else the keywords it lists, space-separated, or NULL */
	bool compressed;
	bool utf8; /* ENABLE UTF8=ACCEPT done: mailbox names are UTF-8 on the
	              wire, not modified UTF-7 (RFC 6855 3) */
	bool line_too_long; /* the guard layer cut the stream (see imap_common.c) */
	/* the last bytes received, to read response codes libetpan drops */
	char tail[1024];
	size_t tail_len;
	/* fetch machinery (imap_common.c) */
	struct mf_buf body;
	void *fetch_ctx;
};

/* Connect and log in as `login` (with `authzid` as the SASL PLAIN
 * authorization identity when non-NULL: log in as an admin on behalf of a
 * user). `password` is borrowed. MF_EAUTH when refused, MF_ECONN when the
 * server cannot be reached, MF_ECONFIG for a mechanism the server lacks. */
int mf_imap_open(struct mf_imap_conf *c, const char *login, const char *authzid,
		 const char *password, struct mf_imap **out, struct mf_err *err);
void mf_imap_close(struct mf_imap *im);

/* Select (rw) or examine (read-only) a mailbox by wire name. Sets
 * im->uidvalidity, im->uidnext and the keywords it keeps (any_keyword,
 * perm_keywords). When it is selected already, only a NOOP
 * is sent (uidnext then stays as it was) unless `fresh`. MF_EFOLDER when it
 * does not exist. */
int mf_imap_select(struct mf_imap *im, const char *wire, bool rw, struct mf_err *err);
int mf_imap_select_fresh(struct mf_imap *im, const char *wire, bool rw, struct mf_err *err);

/* STATUS (UIDVALIDITY MESSAGES) of a mailbox by wire name. */
int mf_imap_status(struct mf_imap *im, const char *wire, uint32_t *uidvalidity,
		   uint32_t *messages, struct mf_err *err);

/* One listed folder. */
struct mf_imap_folder {
	char *wire;  /* name as on the wire (modified UTF-7) */
	struct mf_path path; /* decoded, split on the delimiter, namespace prefix removed */
	enum mf_role role;
	bool noselect;
	bool view;   /* \All, \Flagged, \Important (Gmail's "All Mail", "Starred",
	                "Important"): a view of messages kept in other folders */
};

/* LIST the personal namespace (or only `root` and what lies under it, when
 * non-NULL: a UserRoot in UTF-8, relative paths then start below it). The
 * root folder itself is not in the result. Folders under another users' or
 * a shared namespace are left out (an empty personal prefix makes "*" match
 * them too), unless im->list_foreign: then, without a root, they are listed
 * as well with the namespace prefix as their first levels ("Other Users",
 * "user0002", "Team Share"). Caller frees with mf_imap_folders_free. */
int mf_imap_list(struct mf_imap *im, const char *root, struct mf_imap_folder **out, size_t *n,
		 struct mf_err *err);
void mf_imap_folders_free(struct mf_imap_folder *f, size_t n);

/* A message as UID FETCH returns it. */
struct mf_imap_fmsg {
	uint32_t uid;
	uint32_t size;  /* RFC822.SIZE, 0 if not asked */
	int64_t idate;  /* INTERNALDATE as unix seconds, 0 if not asked */
	unsigned flags; /* MF_FLAG_* */
	unsigned char *body; /* BODY[] (free with mf_bytes_free), NULL if not
	                        asked; the callback may take it (set to NULL) */
	char *keywords; /* keywords among FLAGS, space-separated (malloc'd), or
	                   NULL; the callback may take it (set to NULL) */
	size_t body_len;
};

#define MF_IMAP_F_META 0x01u /* UID FLAGS INTERNALDATE RFC822.SIZE */
#define MF_IMAP_F_BODY 0x02u /* UID FLAGS INTERNALDATE BODY.PEEK[] */

/* UID FETCH in the selected mailbox: the `n` UIDs in `uids` (ascending), or
 * when uids is NULL the range from:to (to = 0: "from:*"; the caller filters
 * the one message a server returns for a range beyond the last UID). cb is
 * called for each message as it arrives; bodies are streamed into one
 * buffer per message (held once). A cb returning non-zero stops further
 * callbacks and that code is returned once the command is done. Messages
 * that do not exist are simply not reported. */
int mf_imap_uid_fetch(struct mf_imap *im, const uint32_t *uids, size_t n, uint32_t from,
		      uint32_t to, unsigned what, int (*cb)(void *arg, struct mf_imap_fmsg *m), void *arg,
		      struct mf_err *err);

/* UID SEARCH in the selected mailbox for messages with this Message-ID
 * header (NULL: any) and exactly this RFC822.SIZE (0: any). The UIDs found
 * are returned in a malloc'd array (ascending). */
int mf_imap_uid_search(struct mf_imap *im, const char *message_id, uint64_t size,
		       uint32_t **uids, size_t *n, struct mf_err *err);

/* UID SEARCH in the selected mailbox for messages whose INTERNALDATE lies
 * in the days around unix time `t` (SINCE the day before, BEFORE the day
 * after next: servers compare dates in their own time zone). For probes
 * that must not depend on the server's size arithmetic. As above. */
int mf_imap_uid_search_date(struct mf_imap *im, int64_t t, uint32_t **uids, size_t *n,
			    struct mf_err *err);

/* Leave the selected mailbox without expunging anything: EXAMINE it (if it
 * was selected read-write), then CLOSE, which expunges nothing on a
 * read-only mailbox (RFC 3501 6.4.2). (libetpan has no UNSELECT, and its
 * custom-command sender adds a trailing space some servers refuse.) */
int mf_imap_unselect(struct mf_imap *im, struct mf_err *err);

/* Send a raw command (no literals) and wait for its tagged answer; 0 on OK. */
int mf_imap_command(struct mf_imap *im, const char *cmd, struct mf_err *err);

/* The last response line received (for messages), "" if none. */
const char *mf_imap_last_line(struct mf_imap *im, char *buf, size_t size);

/* Map a libetpan result code and the server's response line onto an MF_E*
 * code and describe it in err (pure: unit-tested). `dflt` is the code for a
 * plain NO/BAD (e.g. MF_EMSG for a fetch, MF_EFOLDER for a select). `what`
 * names the operation for the message. Returns the code. */
int mf_imap_classify(int etpan_rc, const char *line, int dflt, const char *what,
		     struct mf_err *err);
/* Same, reading the line from the session. */
int mf_imap_fail(struct mf_imap *im, int etpan_rc, int dflt, const char *what,
		 struct mf_err *err);

/* Modified UTF-7 (RFC 3501 5.1.3) <-> UTF-8. Append to `out`. MF_EINVAL on
 * malformed input, MF_ENOMEM. */
int mf_imap_utf7_decode(const char *in, size_t len, struct mf_buf *out);
int mf_imap_utf7_encode(const char *in, size_t len, struct mf_buf *out);

/* Folder names a target refuses (Cyrus 3.6 with altnamespace refuses
 * % ; < > ^ ` { | } " and \ in a name; % and * are LIST wildcards many
 * servers refuse): the one rule mailferry maps them by. Every character of
 * MF_IMAP_NAME_MAPPED in the UTF-8 segment `in` is replaced by its
 * fullwidth form (U+FF01 + c - '!': % -> U+FF05, " -> U+FF02, \ -> U+FF3C,
 * ...); with `astral` (names not sent in UTF-8: Courier refuses
 * characters outside the BMP in modified UTF-7), each character outside the
 * BMP becomes "U+" and its code point in hex (U+1F600); everything else is
 * copied. Deterministic: the same name always maps to the same one. Appends
 * to `out`; returns the number of characters replaced (0: nothing to map)
 * or MF_ENOMEM. */
#define MF_IMAP_NAME_MAPPED "%*\";<>\\^`{|}"
int mf_imap_name_map(const char *in, bool astral, struct mf_buf *out);

/* The role a folder usually has by its (top-level, UTF-8) name in several
 * languages ("Sent Items", "Gesendete Elemente", "Papierkorb", ...), or
 * MF_ROLE_NONE. */
enum mf_role mf_imap_role_by_name(const char *name);

/* XOAUTH2: a bearer token (cached; `force` fetches a new one). *tok is a
 * malloc'd secret, free with mf_secret_free. */
int mf_imap_token(struct mf_imap_conf *c, bool force, char **tok, struct mf_err *err);

/* INTERNALDATE helpers (exposed for tests). */
int64_t mf_imap_date_to_unix(int day, int month, int year, int hour, int min, int sec, int zone);

#endif
