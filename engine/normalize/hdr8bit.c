/* hdr8bit.c - RFC 2047 encoding of raw 8-bit header fields (opts
 * encode_8bit_headers), for targets that would alter them: Cyrus IMAP's
 * default munge8bit turns every such byte into 'X', others refuse the
 * message. See mf_norm_encode_8bit_headers in normalize.h for the rule. */
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "mimeenc.h"
#include "normalize.h"

/* Fields whose value is an address list: only their display names and
 * comments may hold encoded words. */
static bool is_address_field(const unsigned char *name, size_t n)
{
	static const char *const names[] = {
		"from",	     "to",	   "cc",	  "bcc",	  "reply-to",
		"sender",    "resent-from", "resent-to", "resent-cc", "resent-bcc",
		"resent-sender", "mail-followup-to", "return-receipt-to",
		"disposition-notification-to", NULL,
	};
	for (size_t i = 0; names[i]; i++)
		if (strlen(names[i]) == n && strncasecmp((const char *)name, names[i], n) == 0)
			return true;
	return false;
}

static bool valid_utf8(const unsigned char *p, size_t n)
{
	size_t i = 0;
	uint32_t cp;
	while (i < n) {
		size_t k = mf_utf8_seq(p + i, n - i, &cp);
		if (!k)
			return false;
		i += k;
	}
	return true;
}

static bool has_8bit(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			return true;
	return false;
}

static bool is_special(char c)
{
	return strchr("\"<>(),:;@[]\\", c) != NULL;
}

/* An address-list value (UTF-8, unfolded) with its non-ASCII display names
 * and comments as encoded words; addresses (<...>, and words next to '@')
 * are copied as they are. */
static void encode_addresses(const char *v, const char *eol, struct mf_out *o)
{
	size_t n = strlen(v), i = 0;
	while (i < n) {
		char c = v[i];
		if (c == '"') {
			struct mf_out q = {0};
			size_t j = i + 1;
			while (j < n && v[j] != '"') {
				if (v[j] == '\\' && j + 1 < n)
					j++;
				mf_out_add(&q, v + j, 1);
				j++;
			}
			mf_out_add(&q, "", 1);
			if (!q.err && has_8bit(q.b.data, q.b.len))
				mf_hdr_phrase(o, q.b.data, eol);
			else
				mf_out_add(o, v + i, (j < n ? j + 1 : j) - i);
			if (q.err)
				o->err = q.err;
			mf_out_free(&q);
			i = j < n ? j + 1 : j;
		} else if (c == '<') {
			const char *e = strchr(v + i, '>');
			size_t j = e ? (size_t)(e - v) + 1 : n;
			mf_out_add(o, v + i, j - i);
			i = j;
		} else if (c == '(') {
			size_t j = i + 1, depth = 1;
			while (j < n && depth) {
				if (v[j] == '\\' && j + 1 < n)
					j++;
				else if (v[j] == '(')
					depth++;
				else if (v[j] == ')')
					depth--;
				j++;
			}
			size_t inner = j - i - (depth ? 1 : 2);
			if (has_8bit(v + i + 1, inner)) {
				struct mf_out t = {0};
				mf_out_add(&t, v + i + 1, inner);
				mf_out_add(&t, "", 1);
				mf_out_str(o, "(");
				if (!t.err)
					mf_hdr_text(o, t.b.data, 0, eol);
				mf_out_str(o, ")");
				if (t.err)
					o->err = t.err;
				mf_out_free(&t);
			} else {
				mf_out_add(o, v + i, j - i);
			}
			i = j;
		} else if (is_special(c) || c == ' ' || c == '\t') {
			mf_out_add(o, v + i, 1);
			i++;
		} else {
			/* a run of words up to the next special: a display name */
			size_t j = i;
			while (j < n && !is_special(v[j]))
				j++;
			size_t e = j;
			while (e > i && (v[e - 1] == ' ' || v[e - 1] == '\t'))
				e--;
			bool addr = (i > 0 && v[i - 1] == '@') || (j < n && v[j] == '@');
			if (!addr && has_8bit(v + i, e - i)) {
				struct mf_out t = {0};
				mf_out_add(&t, v + i, e - i);
				mf_out_add(&t, "", 1);
				if (!t.err)
					mf_hdr_phrase(o, t.b.data, eol);
				if (t.err)
					o->err = t.err;
				mf_out_free(&t);
				mf_out_add(o, v + e, j - e);
			} else {
				mf_out_add(o, v + i, j - i);
			}
			i = j;
		}
	}
}

/* One field p[s..e) (its line ends included) that has raw 8-bit bytes. */
static void encode_field(const unsigned char *p, size_t s, size_t e, const char *eol,
			 struct mf_out *o)
{
	const unsigned char *colon = memchr(p + s, ':', e - s);
	size_t name_len, vs, k;
	struct mf_out raw = {0}, v = {0};

	if (!colon) {
		mf_out_add(o, p + s, e - s);
		return;
	}
	name_len = (size_t)(colon - (p + s));
	vs = name_len + 1 + s;
	/* unfold: drop line ends, keep the white space after them */
	for (k = vs; k < e; k++)
		if (p[k] != '\r' && p[k] != '\n')
			mf_out_add(&raw, p + k, 1);
	if (valid_utf8((const unsigned char *)raw.b.data, raw.b.len))
		mf_out_add(&v, raw.b.data, raw.b.len);
	else
		mf_charset_to_utf8("WINDOWS-1252", (const unsigned char *)raw.b.data, raw.b.len,
				   &v);
	mf_out_add(&v, "", 1);
	mf_out_add(o, p + s, name_len);
	mf_out_str(o, ": ");
	if (!v.err && !raw.err) {
		const char *val = v.b.data;
		while (*val == ' ' || *val == '\t')
			val++;
		if (is_address_field(p + s, name_len))
			encode_addresses(val, eol, o);
		else
			mf_hdr_text(o, val, name_len + 2, eol);
	} else {
		o->err = v.err ? v.err : raw.err;
	}
	mf_out_str(o, eol);
	mf_out_free(&raw);
	mf_out_free(&v);
}

int mf_norm_encode_8bit_headers(const unsigned char *p, size_t len, const char *eol,
				struct mf_out *o, bool *changed)
{
	size_t i = 0;
	*changed = false;
	/* the top-level header block: up to the first empty line */
	while (i < len) {
		if (p[i] == '\n' || (p[i] == '\r' && i + 1 < len && p[i + 1] == '\n'))
			break; /* the empty line */
		size_t s = i, e = i;
		bool eight = false;
		/* a field: its first line and the continuation lines */
		do {
			const unsigned char *nl = memchr(p + e, '\n', len - e);
			size_t next = nl ? (size_t)(nl - p) + 1 : len;
			for (size_t k = e; k < next; k++)
				if (p[k] >= 0x80)
					eight = true;
			e = next;
		} while (e < len && (p[e] == ' ' || p[e] == '\t'));
		if (eight) {
			encode_field(p, s, e, eol, o);
			*changed = true;
		} else {
			mf_out_add(o, p + s, e - s);
		}
		i = e;
	}
	mf_out_add(o, p + i, len - i);
	return o->err;
}
