/* rtf.h - compressed RTF (MS-OXRTFCP) and HTML encapsulated in RTF
 * (MS-OXRTFEX), for the TNEF decoder and the PST source alike.
 *
 * Pure functions, no globals, any thread. Inputs are borrowed for the call;
 * output goes to a struct mf_out (mimeenc.h) whose first allocation failure
 * sticks in o->err. Bounded: output is capped (see mf_rtf_decompress),
 * group nesting is tracked to a fixed depth and counted beyond it.
 */
#ifndef MF_NORM_RTF_H
#define MF_NORM_RTF_H

#include <stdbool.h>
#include <stddef.h>

#include "mimeenc.h"

/* Decompress an RTF_COMPRESSED blob (PR_RTF_COMPRESSED: "LZFu" compressed
 * or "MELA" stored) into o; at most the size its header claims and never
 * more than 64 MiB. Returns 0; MF_ECORRUPT when the blob is too short, of
 * an unknown kind, or ends before its end marker without having produced
 * the claimed size (o may hold a partial result); MF_ENOMEM. */
int mf_rtf_decompress(const unsigned char *in, size_t len, struct mf_out *o);

/* Does the RTF encapsulate HTML (\fromhtml1 in its first 4 KiB)? */
bool mf_rtf_is_html(const unsigned char *rtf, size_t len);

/* If rtf is encapsulated HTML (mf_rtf_is_html), append the HTML as UTF-8 to
 * o and return 1: the text of {\*\htmltag} groups and the text outside
 * \htmlrtf runs, with \'hh bytes read in the \ansicpg code page, \uN as
 * Unicode (its \ucN fallback skipped), \par and \line as CRLF, \tab as TAB;
 * the font table, stylesheet and similar destinations and other {\*...}
 * groups (\mhtmltag included) are dropped. Return 0 (o untouched) if it is
 * not encapsulated HTML; MF_ENOMEM. Malformed RTF never fails: unbalanced
 * braces and truncated escapes are tolerated. */
int mf_rtf_to_html(const unsigned char *rtf, size_t len, struct mf_out *o);

#endif
