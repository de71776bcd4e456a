/* pst_internal.h - what the PST source's files share (not a public header).
 *
 * pst_source.c  the mf_source_ops vtable: open, folders, list, fetch, close
 * pst_mime.c    one parsed libpst item -> RFC 5322 MIME bytes
 * pst_text.c    charsets, RFC 2047/2231, base64, quoted-printable, dates,
 *               RTF decompression and HTML de-encapsulation, folder roles
 *
 * libpst is not thread-safe: its UTF-16 conversion uses one process-wide iconv
 * descriptor that pst_open() re-creates and pst_close() destroys, and its
 * debug tracing keeps a global call stack. Every libpst call in this driver is
 * therefore made with pst_lib_lock() held (see pst_source.c). The helpers in
 * pst_text.c never call libpst (except pst_lzfu_decompress, which is pure) and
 * are safe on any thread.
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
 * for iconv_open(). Unknown pages give "windows-<cp>". Buffers are filled
 * and returned; each must hold at least 32 bytes. */
void pst_codepage_names(int cp, char *mime, size_t mime_size, char *iconv_name,
			size_t iconv_size);

/* Convert `len` bytes from charset `from` (an iconv name) to UTF-8, appending
 * to `out` (NUL-terminated). Invalid input bytes become U+FFFD, so this never
 * fails except on ENOMEM (MF_ENOMEM). An unknown charset is read as
 * windows-1252. */
int pst_to_utf8(const char *from, const char *in, size_t len, struct mf_buf *out);

/* Replace invalid UTF-8 sequences in place-copy: appends a valid UTF-8 copy
 * of s to out. */
int pst_utf8_sanitize(const char *s, size_t len, struct mf_buf *out);

/* Lower-case a UTF-8 string for name comparisons (ASCII, Latin-1, Greek,
 * Cyrillic). Returns a malloc'd string or NULL on ENOMEM. */
char *pst_utf8_lower(const char *s);

/* The folder role that a folder's (UTF-8) display name implies, in English
 * and the most common Outlook languages; MF_ROLE_NONE if none. */
enum mf_role pst_role_from_name(const char *name);

/* Append `len` bytes base64-encoded in lines of 76 characters, CRLF after
 * each line (also after the last one). */
int pst_b64_append(struct mf_buf *out, const unsigned char *in, size_t len);

/* Append text as quoted-printable (RFC 2045) with CRLF hard line breaks;
 * any of CRLF, LF and lone CR in the input is a line break. */
int pst_qp_append(struct mf_buf *out, const unsigned char *in, size_t len);

/* True when text can go as 7bit: only bytes 1..126, no lone CR, lines of at
 * most 998 bytes. */
bool pst_is_7bit(const unsigned char *in, size_t len);

/* Append text with every line break (CRLF, LF, CR) written as CRLF. */
int pst_crlf_append(struct mf_buf *out, const unsigned char *in, size_t len);

/* Append an unstructured header value (UTF-8), RFC 2047-encoding it (B,
 * UTF-8) when it holds non-ASCII or control characters, folded so that no
 * line exceeds 78 characters. `used` is the length of the header name and
 * ": " already written on the line. Control characters (CR, LF, TAB...) are
 * replaced by spaces. */
int pst_hdr_text(struct mf_buf *out, const char *utf8, size_t used);

/* Append a display name as an RFC 5322 phrase: a quoted string when ASCII,
 * encoded words otherwise. */
int pst_hdr_phrase(struct mf_buf *out, const char *utf8);

/* Append `; name*=utf-8''...` (RFC 2231, with continuations when long) or
 * `; name="..."` for plain ASCII values. */
int pst_hdr_param(struct mf_buf *out, const char *name, const char *utf8);

/* RFC 5322 date ("Tue, 04 Mar 2008 10:55:12 +0000") of unix time t. */
void pst_rfc5322_date(int64_t t, char *buf, size_t size);

/* Unix seconds of a FILETIME, 0 for NULL or dates before 1970. */
int64_t pst_filetime_unix(const FILETIME *ft);

/* Decompress a PR_RTF_COMPRESSED blob (compressed "LZFu" or stored "MELA").
 * On success *out is malloc'd (NUL-terminated beyond *outlen). MF_EMSG with
 * a message in err for a damaged blob. */
int pst_rtf_decompress(const unsigned char *in, size_t len, char **out, size_t *outlen,
		       struct mf_err *err);

/* True when the RTF encapsulates HTML (\fromhtml1 in its header). */
bool pst_rtf_is_html(const char *rtf, size_t len);

/* De-encapsulate HTML from RTF (MS-OXRTFEX) as UTF-8 into out. */
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
