/* mimeenc.h - the one implementation of the MIME building blocks that both
 * the normalize stage (mime.c, tnef.c) and the sources (the PST source's
 * pst_mime.c) need: an output buffer with a sticky error, UTF-8 helpers,
 * Windows code pages and charset conversion to UTF-8, base64 and
 * quoted-printable encoders, RFC 2047 encoded words, RFC 2231 parameters
 * and RFC 5322 dates.
 *
 * Pure functions, no globals, any thread (each conversion opens its own
 * iconv descriptor). Every input is borrowed for the call. Functions that
 * append to a struct mf_out never fail on their own: the first allocation
 * failure sticks in o->err (MF_ENOMEM) and later appends do nothing, so a
 * builder checks o->err once at the end. Output is deterministic: the same
 * input gives the same bytes.
 */
#ifndef MF_NORM_MIMEENC_H
#define MF_NORM_MIMEENC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../util.h"

/* ---- output buffer --------------------------------------------------------- */

/* An output buffer whose first allocation failure sticks (err = MF_ENOMEM;
 * MF_EINVAL for a bad format in mf_out_fmt) so that builders check once at
 * the end. Zero-initialise; free with mf_out_free (also after an error).
 * b.data is not NUL-terminated unless the caller adds one. */
struct mf_out {
	struct mf_buf b;
	int err;
};
void mf_out_add(struct mf_out *o, const void *p, size_t n);
void mf_out_str(struct mf_out *o, const char *s);
void mf_out_fmt(struct mf_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mf_out_free(struct mf_out *o);

/* ---- UTF-8 and charsets ---------------------------------------------------- */

/* Length (1..4) of the valid, shortest-form UTF-8 sequence at s (n > 0 bytes
 * available) and its code point in *cp; 0 if the bytes there are not valid
 * UTF-8 (surrogates and values above U+10FFFF included). */
size_t mf_utf8_seq(const unsigned char *s, size_t n, uint32_t *cp);

/* Append code point cp as UTF-8; a surrogate or a value above U+10FFFF is
 * written as U+FFFD. */
void mf_utf8_put(struct mf_out *o, uint32_t cp);

/* Append a copy of s[0..len) in which every byte that does not start a valid
 * UTF-8 sequence is replaced by U+FFFD. */
void mf_utf8_sanitize(const char *s, size_t len, struct mf_out *o);

/* Names of Windows code page cp: `mime` for a MIME charset parameter,
 * `iconv` for iconv_open() (8-bit US-ASCII and Latin-1 are read as
 * WINDOWS-1252, the lenient superset Outlook really writes). Unknown pages
 * give "windows-<cp>" / "WINDOWS-<cp>". Both buffers are always
 * NUL-terminated (truncated to their size); 32 bytes are enough. */
void mf_codepage_names(int cp, char *mime, size_t mime_size, char *iconv, size_t iconv_size);

/* Append in[0..len), text in charset `from` (an iconv name, e.g. from
 * mf_codepage_names), converted to UTF-8. Bytes that do not convert become
 * one U+FFFD each and conversion goes on; an unknown charset is read as
 * WINDOWS-1252; "UTF-8" input is only sanitized (mf_utf8_sanitize). Never
 * fails except through o->err. */
void mf_charset_to_utf8(const char *from, const unsigned char *in, size_t len, struct mf_out *o);

/* Value 0..15 of hexadecimal digit c (either case), -1 if it is none. */
int mf_hex_value(int c);

/* ---- transfer encodings ---------------------------------------------------- */

/* Base64 in lines of 76 characters, each (the last one too) ended by eol;
 * eol "" gives one unbroken run (as for encoded words). Empty input
 * appends nothing. */
void mf_b64_encode(const unsigned char *in, size_t len, const char *eol, struct mf_out *o);

/* Quoted-printable (RFC 2045), encoded lines of at most 76 characters.
 * text = true: CRLF and LF in the input are hard line breaks written as
 * eol, a lone CR is encoded (=0D), and white space before a hard break is
 * encoded; text = false: every byte outside 33..126 (but '='), CR and LF
 * included, is encoded. Non-empty output always ends with eol: a soft break
 * ("=" eol) when the input did not end with a line break, so the decoded
 * bytes are exactly the input. */
void mf_qp_encode(const unsigned char *in, size_t len, bool text, const char *eol,
		  struct mf_out *o);

/* ---- header fields ---------------------------------------------------------- */

/* The value of an unstructured header field (Subject, ...) from UTF-8 text:
 * invalid UTF-8 becomes U+FFFD, control characters (CR, LF, TAB...) become
 * spaces, runs of white space collapse into one and the ends are trimmed.
 * Pure ASCII (without "=?") is written as is, folded at spaces (eol plus the
 * space) so that lines stay within 78 columns where words allow; anything
 * else as RFC 2047 B encoded words ("=?UTF-8?B?...?=", at most 45 bytes of
 * whole UTF-8 characters each, 72 columns) separated by eol SP. `used` is
 * the column where the value starts (the length of "Name: "). An empty
 * value appends nothing. */
void mf_hdr_text(struct mf_out *o, const char *utf8, size_t used, const char *eol);

/* A display name as an RFC 5322 phrase: cleaned as for mf_hdr_text, then a
 * quoted string (with \" and \\ escapes) when ASCII, encoded words
 * otherwise. An empty name appends nothing. */
void mf_hdr_phrase(struct mf_out *o, const char *utf8, const char *eol);

/* A parameter `name` (ASCII token) with a UTF-8 value (cleaned as for
 * mf_hdr_text), each section preceded by `sep` (e.g. ";\r\n\t"): name="v"
 * for ASCII values of at most 60 characters (\" and \\ escaped), else the
 * RFC 2231 extended form name*=utf-8''%XX.. or, above 60 encoded
 * characters, continuations name*0*=utf-8''.., name*1*=.. of at most 60
 * characters that never split a %XX triplet. */
void mf_hdr_param(struct mf_out *o, const char *sep, const char *name, const char *utf8);

/* ---- dates ------------------------------------------------------------------ */

/* RFC 5322 date-time of unix time t in UTC ("Mon, 02 Jan 2006 15:04:05 +0000")
 * into out (NUL-terminated, truncated to outsz; 32 bytes are enough). Times
 * outside the years 1..9999 are clamped to them. */
void mf_mime_date(int64_t t, char *out, size_t outsz);
/* Broken-down UTC time of unix time t (clamped to the years 1..9999). */
void mf_mime_civil(int64_t t, int *y, int *mo, int *d, int *h, int *mi, int *s);
/* Unix time of a UTC calendar date (proleptic Gregorian; no range checks
 * beyond sanity). */
int64_t mf_mime_timegm(int y, int mo, int d, int h, int mi, int s);

#endif
