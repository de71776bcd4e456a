/* pst_internal.h - what the PST source's files share (not a public header).
 *
 * pst_source.c  the mf_source_ops vtable: open, folders, list, fetch, close
 * pst_mime.c    one parsed libpst item -> RFC 5322 MIME bytes
 * pst_text.c    folder roles, FILETIMEs, and adapters that put the engine's
 *               charset, RFC 2047/2231, base64, quoted-printable and RTF code
 *               (engine/normalize/mimeenc.h, rtf.h) on NUL-terminated mf_bufs
 *
 * libpst is not thread-safe: its UTF-16 conversion uses one process-wide iconv
 * descriptor that pst_open() re-creates and pst_close() destroys, and its
 * debug tracing keeps a global call stack. Every libpst call in this driver is
 * therefore made with pst_lib_lock() held (see pst_source.c). The helpers in
 * pst_text.c never call libpst and are safe on any thread.
 */
#ifndef MF_PST_INTERNAL_H
#define MF_PST_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpst/libpst.h>

#include "engine/error.h"
#include "engine/message.h"
#include "engine/util.h"

/* ---- pst_source.c ------------------------------------------------------ */
void pst_lib_lock(void);
void pst_lib_unlock(void);

/* ---- pst_text.c -------------------------------------------------------- */

/* A Windows code page as names: `mime` for a MIME charset parameter, `iconv`
 * for iconv_open() (mf_codepage_names). Unknown pages give "windows-<cp>".
 * Each buffer should hold 32 bytes. */
void pst_codepage_names(int cp, char *mime, size_t mime_size, char *iconv_name,
			size_t iconv_size);

/* Convert `len` bytes from charset `from` (an iconv name) to UTF-8, appending
 * to `out` (NUL-terminated). Invalid input bytes become U+FFFD, so this never
 * fails except on ENOMEM (MF_ENOMEM). An unknown charset is read as
 * windows-1252. */
int pst_to_utf8(const char *from, const char *in, size_t len, struct mf_buf *out);

/* Append a valid UTF-8 copy of s (invalid bytes become U+FFFD) to out,
 * NUL-terminated. Returns 0 or MF_ENOMEM. */
int pst_utf8_sanitize(const char *s, size_t len, struct mf_buf *out);

/* Lower-case a UTF-8 string for name comparisons (ASCII, Latin-1, Greek,
 * Cyrillic). Returns a malloc'd string or NULL on ENOMEM. */
char *pst_utf8_lower(const char *s);

/* The folder role that a folder's (UTF-8) display name implies, in English
 * and the most common Outlook languages; MF_ROLE_NONE if none. */
enum mf_role pst_role_from_name(const char *name);

/* Append `len` bytes base64-encoded in lines of 76 characters, CRLF after
 * each line (also after the last one). Returns 0 or MF_ENOMEM. */
int pst_b64_append(struct mf_buf *out, const unsigned char *in, size_t len);

/* Append text as quoted-printable (RFC 2045) with CRLF hard line breaks;
 * any of CRLF, LF and lone CR in the input is a line break, and non-empty
 * output ends with a hard break. Returns 0 or MF_ENOMEM. */
int pst_qp_append(struct mf_buf *out, const unsigned char *in, size_t len);

/* True when text can go as 7bit: only bytes 1..126, no lone CR, lines of at
 * most 998 bytes. */
bool pst_is_7bit(const unsigned char *in, size_t len);

/* Append text with every line break (CRLF, LF, CR) written as CRLF. */
int pst_crlf_append(struct mf_buf *out, const unsigned char *in, size_t len);

/* mf_hdr_text with CRLF folds, out NUL-terminated: an unstructured header
 * value (UTF-8), RFC 2047-encoded (B, UTF-8) when it holds non-ASCII, folded
 * within 78 columns. `used` is the length of the header name and ": "
 * already written on the line. Control characters (CR, LF, TAB...) become
 * spaces. Returns 0 or MF_ENOMEM. */
int pst_hdr_text(struct mf_buf *out, const char *utf8, size_t used);

/* mf_hdr_phrase with CRLF folds, out NUL-terminated: a display name as a
 * quoted string when ASCII, encoded words otherwise. 0 or MF_ENOMEM. */
int pst_hdr_phrase(struct mf_buf *out, const char *utf8);

/* mf_hdr_param with ";" CRLF TAB before each section, out NUL-terminated:
 * `name*=utf-8''...` (RFC 2231, with continuations when long) or
 * `name="..."` for plain ASCII values. Returns 0 or MF_ENOMEM. */
int pst_hdr_param(struct mf_buf *out, const char *name, const char *utf8);

/* Unix seconds of a FILETIME, 0 for NULL or dates before 1970. */
int64_t pst_filetime_unix(const FILETIME *ft);

/* Decompress a PR_RTF_COMPRESSED blob (compressed "LZFu" or stored "MELA")
 * with mf_rtf_decompress. On success *out is malloc'd (NUL-terminated beyond
 * *outlen). MF_EMSG with a message in err for a damaged blob; MF_ENOMEM. */
int pst_rtf_decompress(const unsigned char *in, size_t len, char **out, size_t *outlen,
		       struct mf_err *err);

/* De-encapsulate HTML from RTF (MS-OXRTFEX, mf_rtf_to_html) as UTF-8 into
 * out, NUL-terminated; appends nothing when mf_rtf_is_html says the RTF is
 * not encapsulated HTML. Returns 0 or MF_ENOMEM. */
int pst_rtf_to_html(const char *rtf, size_t len, struct mf_buf *out);

/* ---- pst_mime.c -------------------------------------------------------- */

struct pst_mime_ctx {
	pst_file *pf;          /* libpst file; calls made under pst_lib_lock */
	const char *dflt_cp;   /* iconv name for 8-bit strings without a code page */
	int dflt_cpid;         /* the same as a Windows code page number */
	uint64_t nid;          /* node id of the outermost item */
};

/* Build RFC 5322 bytes (CRLF line ends) for a mail item. `out` receives the
 * message; `idate` the internal date (delivery, submit, creation time).
 * Returns 0, MF_ENOMEM, or MF_EMSG with the reason in err. */
int pst_mime_build(const struct pst_mime_ctx *ctx, pst_item *item, struct mf_buf *out,
		   struct mf_err *err);

/* The charset (iconv name) that 8-bit strings of `item` are in. */
void pst_item_charset(const struct pst_mime_ctx *ctx, const pst_item *item, bool html,
		      char *mime, size_t mime_size, char *iconv_name, size_t iconv_size);

/* A pst_string as UTF-8 (appended to out, NUL-terminated). */
int pst_string_utf8(const struct pst_mime_ctx *ctx, const pst_item *item, const pst_string *s,
		    struct mf_buf *out);

#endif
