/* tnef.h - decode a TNEF stream (winmail.dat) into an ordinary MIME entity.
 *
 * Our own bounded decoder (MS-OXTNEF, MS-OXRTFCP, MS-OXRTFEX): Debian's
 * libytnef 2.0 failed on valid test files (data-before-name.tnef) and read
 * out of bounds on others under ASan (missing-filenames.tnef,
 * multi-value-attribute.tnef), and prints to stdout. Every length read from
 * the stream is checked against the bytes that remain; recursion (embedded
 * messages) is capped; nothing is allocated beyond a bound derived from the
 * input size.
 *
 * Pure function, no globals, any thread.
 */
#ifndef MF_NORM_TNEF_H
#define MF_NORM_TNEF_H

#include <stddef.h>

#include "mime.h"
#include "rtf.h" /* mf_rtf_decompress, mf_rtf_to_html */

struct mf_tnef_mime {
	struct mf_out ctype; /* Content-Type value (may be folded with eol) */
	struct mf_out body;  /* the entity's body */
	unsigned nattach;    /* attachments written */
};

/* Is buf a TNEF stream (signature 0x223E9F78)? */
bool mf_tnef_sniff(const unsigned char *buf, size_t len);

/* Decode tnef[0..len) (borrowed) into out (caller frees both mf_outs with
 * mf_out_free, also on error). Lines end with eol ("\r\n" or "\n");
 * boundaries derive from the content. Returns 0, with why holding what the
 * report must say about what was left out or kept as is (bytes appended
 * after the last attribute, an embedded message not decoded; "" when
 * nothing); MF_ECORRUPT with the reason in why when the stream is not
 * decoded (it names the attribute and the byte: "checksum mismatch in
 * attribute attAttachData at byte 812", "truncated at byte N: ...",
 * "unknown attribute level 7 at byte N"); MF_ENOMEM. why is NUL-terminated
 * and truncated to whysz. */
int mf_tnef_to_mime(const unsigned char *tnef, size_t len, const char *eol,
		    struct mf_tnef_mime *out, char *why, size_t whysz);

#endif
