/* mime.h - the normalize stage's MIME toolkit: header-field lookup,
 * parameters, base64 and quoted-printable decoders, and a parser that splits
 * a message into entities with byte offsets so that one part can be replaced
 * and the rest kept byte for byte. The output buffer (struct mf_out), the
 * encoders and the date functions are in mimeenc.h, included here.
 *
 * Internal to engine/normalize/: pure functions, no globals, any thread.
 * Every input is borrowed for the call; every limit is explicit.
 */
#ifndef MF_NORM_MIME_H
#define MF_NORM_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../util.h"
#include "mimeenc.h" /* struct mf_out, the encoders, dates */

/* Header field `name` (case-insensitive, without colon) in the header block
 * p[0..hlen). On a hit sets fs..fe to the whole field (continuation lines and
 * the final line end included) and vs..ve to its raw value, returns true. */
bool mf_mime_field(const unsigned char *p, size_t hlen, const char *name, size_t *fs,
		   size_t *fe, size_t *vs, size_t *ve);

/* The value of parameter `param` of a structured header value (RFC 2045
 * syntax, quotes removed, RFC 2231 continuations joined, the charset prefix
 * of an extended value dropped and %XX decoded) into out (NUL-terminated,
 * truncated to outsz-1). Returns true if present. */
bool mf_mime_param(const unsigned char *v, size_t vlen, const char *param, char *out,
		   size_t outsz);

/* Lowercased "type/subtype" of a Content-Type value into out; "" if none. */
void mf_mime_type(const unsigned char *v, size_t vlen, char *out, size_t outsz);

/* Lenient decoders (skip what they cannot read). Append to o. */
void mf_b64_decode(const unsigned char *in, size_t len, struct mf_out *o);
void mf_qp_decode(const unsigned char *in, size_t len, struct mf_out *o);

/* One MIME entity of a parsed message, offsets into the parsed buffer. */
struct mf_part {
	size_t start; /* first header byte */
	size_t hend;  /* end of the header fields (where the blank line starts) */
	size_t body;  /* first body byte */
	size_t end;   /* end of the body (before the line end preceding a delimiter) */
	bool leaf;    /* not a multipart/message container we descended into */
	bool blank;   /* the header block ended with a blank line */
	int depth;
	char type[96]; /* lowercased type/subtype, "" when absent */
	char cte[32];  /* lowercased Content-Transfer-Encoding, "" when absent */
};

#define MF_MIME_MAX_PARTS 4096
#define MF_MIME_MAX_DEPTH 24

/* Split p[0..len) into entities in document order (the whole message is
 * parts[0]). *parts is malloc'd (caller frees). Returns 0 or MF_ENOMEM. */
int mf_mime_parse(const unsigned char *p, size_t len, struct mf_part **parts, size_t *n);

/* Decode an entity's body by its Content-Transfer-Encoding into o. */
void mf_mime_decode_body(const unsigned char *p, const struct mf_part *pt, struct mf_out *o);

#endif
