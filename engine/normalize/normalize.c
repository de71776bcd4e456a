/* normalize.c - the normalize stage's entry point: line endings, NUL bytes.
 * Further repairs (TNEF, long lines, Message-ID) hook in here. */
#include "normalize.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *mf_norm_kind_name(unsigned bit_index)
{
	static const char *const names[MF_NORM_NKINDS] = {
		"line-endings", "bare-cr",	      "nul-removed",
		"long-lines",	"message-id-added", "date-added",
		"tnef-decoded", "tnef-not-decoded", "read-receipt-dropped",
	};
	return bit_index < MF_NORM_NKINDS ? names[bit_index] : "unknown";
}

/* Does the message need its line ends rewritten for the target? */
static unsigned scan_line_ends(const unsigned char *in, size_t len, bool crlf)
{
	unsigned changes = 0;
	for (size_t i = 0; i < len; i++) {
		if (in[i] == '\0') {
			changes |= MF_NORM_NUL;
		} else if (in[i] == '\r') {
			if (i + 1 < len && in[i + 1] == '\n') {
				if (!crlf)
					changes |= MF_NORM_LINE_ENDINGS;
				i++;
			} else {
				changes |= MF_NORM_BARE_CR;
			}
		} else if (in[i] == '\n' && crlf) {
			changes |= MF_NORM_LINE_ENDINGS;
		}
	}
	return changes;
}

static size_t rewrite_line_ends(const unsigned char *in, size_t len, bool crlf,
				unsigned char *out)
{
	size_t w = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = in[i];
		if (c == '\0')
			continue;
		if (c == '\r' || c == '\n') {
			if (c == '\r' && i + 1 < len && in[i + 1] == '\n')
				i++;
			if (crlf)
				out[w++] = '\r';
			out[w++] = '\n';
			continue;
		}
		out[w++] = c;
	}
	return w;
}

int mf_normalize(const struct mf_norm_opts *opts, const unsigned char *in, size_t len,
		 int64_t idate, struct mf_norm_result *res)
{
	(void)idate;
	memset(res, 0, sizeof(*res));
	unsigned changes = scan_line_ends(in, len, opts->crlf);
	size_t cap = changes ? 2 * len + 1 : len + 1;
	res->data = malloc(cap);
	if (!res->data)
		return MF_ENOMEM;
	if (changes) {
		res->len = rewrite_line_ends(in, len, opts->crlf, res->data);
	} else {
		memcpy(res->data, in, len);
		res->len = len;
	}
	res->changes = changes;
	return 0;
}

char *mf_header_message_id(const unsigned char *msg, size_t len)
{
	size_t i = 0;
	while (i < len) {
		size_t eol = i;
		while (eol < len && msg[eol] != '\n')
			eol++;
		size_t end = eol;
		if (end > i && msg[end - 1] == '\r')
			end--;
		if (end == i)
			return NULL; /* end of the header block */
		if (end - i > 11 && strncasecmp((const char *)msg + i, "message-id:", 11) == 0) {
			/* The value, unfolded: this line and its continuation lines. */
			size_t vs = i + 11, ve = end;
			size_t next = eol + 1;
			while (next < len && (msg[next] == ' ' || msg[next] == '\t')) {
				size_t e2 = next;
				while (e2 < len && msg[e2] != '\n')
					e2++;
				ve = e2 > next && msg[e2 - 1] == '\r' ? e2 - 1 : e2;
				next = e2 + 1;
			}
			char *v = malloc(ve - vs + 1);
			if (!v)
				return NULL;
			size_t w = 0;
			for (size_t k = vs; k < ve; k++)
				if (msg[k] != '\r' && msg[k] != '\n' && msg[k] != ' ' &&
				    msg[k] != '\t')
					v[w++] = (char)msg[k];
			v[w] = '\0';
			if (!w) {
				free(v);
				return NULL;
			}
			return v;
		}
		i = eol + 1;
	}
	return NULL;
}
