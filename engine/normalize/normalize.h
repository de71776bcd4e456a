/* normalize.h - turn a source message into bytes the sink accepts.
 *
 * Pure functions: bytes + options in, bytes + a record of what changed out.
 * No I/O, no globals, safe to call from any thread, fuzzable in isolation.
 * A message that needs no change comes out byte for byte as it went in.
 */
#ifndef MF_NORMALIZE_H
#define MF_NORMALIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../error.h"

/* Kinds of change, as a bit set; each is counted in the report by name. */
enum mf_norm_change {
	MF_NORM_LINE_ENDINGS = 1u << 0,  /* line ends converted (CRLF <-> LF) */
	MF_NORM_BARE_CR = 1u << 1,       /* lone CR bytes turned into line ends */
	MF_NORM_NUL = 1u << 2,           /* NUL bytes removed */
	MF_NORM_LONG_LINES = 1u << 3,    /* a part re-encoded for line length */
	MF_NORM_MESSAGE_ID = 1u << 4,    /* deterministic Message-ID added */
	MF_NORM_DATE = 1u << 5,          /* Date added from the internal date */
	MF_NORM_TNEF = 1u << 6,          /* winmail.dat decoded into MIME */
	MF_NORM_TNEF_FAILED = 1u << 7,   /* TNEF found but not decodable: kept */
	MF_NORM_DNT_DROPPED = 1u << 8,   /* Disposition-Notification-To dropped */
	MF_NORM_HEADERS_8BIT = 1u << 9,  /* raw 8-bit header fields RFC 2047-encoded */
};
#define MF_NORM_NKINDS 10
/* "line-endings", "bare-cr", ... for bit index i (0..MF_NORM_NKINDS-1). */
const char *mf_norm_kind_name(unsigned bit_index);

enum mf_tnef_mode { MF_TNEF_DECODE = 0, MF_TNEF_KEEP = 1 };

struct mf_norm_opts {
	bool crlf;            /* CRLF line ends (true) or LF (false) */
	size_t max_line;      /* longest line the sink takes, 0 = no limit */
	bool add_message_id;  /* add a content-derived Message-ID if missing */
	bool add_date;        /* add Date from idate if missing */
	bool drop_dnt;        /* drop Disposition-Notification-To */
	bool encode_8bit_headers; /* RFC 2047-encode raw 8-bit header fields */
	enum mf_tnef_mode tnef;
};

struct mf_norm_result {
	unsigned char *data; /* malloc'd output; caller frees */
	size_t len;
	unsigned changes;    /* MF_NORM_* bits */
	char note[256];      /* why something was not done (e.g. TNEF failure) */
};

/* Normalize `in` (len bytes, borrowed). On success fills `res` (res->data
 * owned by the caller) and returns 0. Returns MF_ENOMEM only: a message
 * that cannot be improved is passed through unchanged with a note. */
int mf_normalize(const struct mf_norm_opts *opts, const unsigned char *in, size_t len,
		 int64_t idate, struct mf_norm_result *res);

struct mf_out;
/* The rule of encode_8bit_headers: p[0..len) (line ends already eol) into
 * o, with every field of the top-level header that holds raw 8-bit bytes
 * rewritten: its value unfolded, read as UTF-8 (or, when it is not valid
 * UTF-8, as Windows-1252) and written as RFC 2047 B encoded words (UTF-8),
 * folded. In address fields (From, To, Cc, Bcc, Reply-To, Sender, Resent-*,
 * ...) only display names, quoted or not, and comments are encoded;
 * addresses (<...>, words next to '@') stay as they are. Other fields and
 * the body are copied byte for byte. *changed says whether any field was
 * rewritten. 0 or MF_ENOMEM. Deterministic. */
int mf_norm_encode_8bit_headers(const unsigned char *p, size_t len, const char *eol,
				struct mf_out *o, bool *changed);

/* The Message-ID header's value (without folding, angle brackets kept),
 * malloc'd, or NULL if there is none. Only the header block is read. */
char *mf_header_message_id(const unsigned char *msg, size_t len);

#endif
