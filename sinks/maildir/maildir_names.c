/* maildir_names.c - folder and file names on disk for the Maildir sink: pure
 * functions, the rules are in maildir.h. */
#include "maildir.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when the bytes there
 * are not one (overlong forms, surrogates and code points above U+10FFFF are
 * invalid). */
static size_t utf8_len(const unsigned char *s, size_t avail)
{
	unsigned c = s[0];
	size_t n;
	uint32_t cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF) {
		n = 2;
		cp = c & 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		n = 3;
		cp = c & 0x0F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (avail < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return n;
}

static int add_escaped(struct mf_buf *out, unsigned char c)
{
	static const char digits[] = "0123456789ABCDEF";
	char e[3] = {'%', digits[c >> 4], digits[c & 15]};
	return mf_buf_add(out, e, 3);
}

int mf_maildir_escape(const char *seg, size_t len, int first_dot_only, struct mf_buf *out)
{
	const unsigned char *s = (const unsigned char *)seg;
	size_t i = 0;
	while (i < len) {
		unsigned char c = s[i];
		int rc;
		if (c >= 0x80) {
			size_t n = utf8_len(s + i, len - i);
			if (n == 0) {
				rc = add_escaped(out, c);
				i++;
			} else {
				rc = mf_buf_add(out, s + i, n);
				i += n;
			}
		} else {
			int esc = c < 0x20 || c == 0x7F || c == '%' || c == '/' ||
				  (c == '.' && (!first_dot_only || i == 0));
			rc = esc ? add_escaped(out, c) : mf_buf_add(out, &c, 1);
			i++;
		}
		if (rc < 0)
			return MF_ENOMEM;
	}
	return 0;
}

/* Cut out->data[from..] so that out->len <= limit: keep a prefix ending on a
 * character boundary (never inside %XX or a UTF-8 sequence) and append
 * "~" + 16 hex digits of SHA-256(raw). Returns 0, or -1 when the limit
 * leaves no room for a prefix. */
static int shorten(struct mf_buf *out, size_t from, size_t limit, const char *raw, size_t rawlen)
{
	if (out->len <= limit)
		return 0;
	if (limit < from + 18)
		return -1;
	size_t keep = limit - 17; /* absolute end of the kept prefix */
	/* '%' only ever starts an escape: do not split one. */
	if (keep >= from + 1 && out->data[keep - 1] == '%')
		keep -= 1;
	else if (keep >= from + 2 && out->data[keep - 2] == '%')
		keep -= 2;
	while (keep > from && ((unsigned char)out->data[keep] & 0xC0) == 0x80)
		keep--;
	if (keep == from)
		return -1;
	unsigned char sum[MF_SHA256_LEN];
	char hex[2 * MF_SHA256_LEN + 1];
	mf_sha256(raw, rawlen, sum);
	mf_hex(sum, MF_SHA256_LEN, hex);
	out->len = keep;
	out->data[keep++] = '~';
	memcpy(out->data + keep, hex, 16);
	out->len = keep + 16;
	out->data[out->len] = '\0';
	return 0;
}

int mf_maildir_mailbox_name(const char *mailbox, char **out, struct mf_err *err)
{
	struct mf_buf b = {0};
	*out = NULL;
	if (!mailbox || !*mailbox)
		return mf_err_set(err, MF_EMAILBOX, "empty target mailbox name");
	size_t len = strlen(mailbox);
	if (mf_maildir_escape(mailbox, len, 1, &b) < 0) /* mf_buf keeps a NUL */
		goto nomem;
	if (shorten(&b, 0, MF_MAILDIR_NAME_MAX, mailbox, len) < 0)
		goto nomem; /* cannot happen with limit 255 */
	*out = b.data;
	return 0;
nomem:
	mf_buf_free(&b);
	return mf_err_set(err, MF_ENOMEM, "out of memory");
}

static const char *role_folder(enum mf_role role)
{
	switch (role) {
	case MF_ROLE_SENT:
		return "Sent";
	case MF_ROLE_DRAFTS:
		return "Drafts";
	case MF_ROLE_TRASH:
		return "Trash";
	case MF_ROLE_JUNK:
		return "Junk";
	case MF_ROLE_ARCHIVE:
		return "Archive";
	case MF_ROLE_INBOX:
	case MF_ROLE_NONE:
		break;
	}
	return NULL;
}

int mf_maildir_folder_name(const struct mf_path *path, enum mf_role role, char **out,
			   struct mf_err *err)
{
	struct mf_buf b = {0};
	int rc = 0;
	*out = NULL;
	if (path->n <= 1 && role != MF_ROLE_NONE) {
		const char *name = role_folder(role);
		if (name ? mf_buf_printf(&b, ".%s", name) < 0 : mf_buf_addstr(&b, "") < 0)
			goto nomem;
		*out = b.data;
		return 0;
	}
	if (mf_buf_addstr(&b, "") < 0)
		goto nomem;
	for (size_t i = 0; i < path->n; i++) {
		const char *seg = path->seg[i];
		size_t len = strlen(seg);
		if (len == 0) {
			mf_buf_free(&b);
			return mf_err_set(err, MF_EFOLDER, "empty folder name at level %zu", i + 1);
		}
		if (i == 0 && strcasecmp(seg, "INBOX") == 0) {
			/* INBOX is the Maildir root; its children are .INBOX.x */
			if (path->n == 1)
				break;
			if (mf_buf_addstr(&b, ".INBOX") < 0)
				goto nomem;
			continue;
		}
		size_t from = b.len + 1;
		if (mf_buf_add(&b, ".", 1) < 0 || mf_maildir_escape(seg, len, 0, &b) < 0)
			goto nomem;
		if (shorten(&b, from, MF_MAILDIR_NAME_MAX, seg, len) < 0) {
			char *shown = mf_path_join(path, "/");
			rc = mf_err_set(err, MF_EFOLDER,
					"folder \"%s\" is nested too deep for a Maildir++ name "
					"(%d bytes at most)",
					shown ? shown : "?", MF_MAILDIR_NAME_MAX);
			free(shown);
			mf_buf_free(&b);
			return rc;
		}
	}
	*out = b.data;
	return 0;
nomem:
	mf_buf_free(&b);
	return mf_err_set(err, MF_ENOMEM, "out of memory");
}

void mf_maildir_base_name(int64_t idate, const char *idem, char *out, size_t size)
{
	snprintf(out, size, "%" PRId64 ".M%s.mailferry", idate > 0 ? idate : 0, idem ? idem : "");
}

void mf_maildir_flag_info(unsigned flags, char out[8])
{
	size_t n = 0;
	out[n++] = '2';
	out[n++] = ',';
	if (flags & MF_FLAG_DRAFT)
		out[n++] = 'D';
	if (flags & MF_FLAG_FLAGGED)
		out[n++] = 'F';
	if (flags & MF_FLAG_ANSWERED)
		out[n++] = 'R';
	if (flags & MF_FLAG_SEEN)
		out[n++] = 'S';
	if (flags & MF_FLAG_DELETED)
		out[n++] = 'T';
	out[n] = '\0';
}
