/* json.h - just enough JSON reading for Graph and OAuth answers.
 *
 * Works on a borrowed, bounded text [p, end); never allocates. Values are
 * returned as pointers into the text (start of the value) plus its end.
 * Malformed input makes the lookups fail (NULL / MF_EINVAL), never read past
 * `end`.
 */
#ifndef MF_HTTP_JSON_H
#define MF_HTTP_JSON_H

#include <stddef.h>

/* End of the JSON value starting at p (whitespace skipped), or NULL. */
const char *mf_json_skip(const char *p, const char *end);

/* In the object starting at p: the value of member `key` (start in the
 * return value, end in *vend), or NULL when absent or malformed. */
const char *mf_json_member(const char *p, const char *end, const char *key, const char **vend);

/* Array iteration: start with it = mf_json_array_first(p, end); while it,
 * the element is [it, *eend); next with mf_json_array_next(*eend, end). */
const char *mf_json_array_first(const char *p, const char *end, const char **eend);
const char *mf_json_array_next(const char *prev_end, const char *end, const char **eend);

/* Decode the JSON string value at p into out (NUL-terminated, \u escapes to
 * UTF-8). 0, or MF_EINVAL if it is not a string or does not fit. */
int mf_json_string(const char *p, const char *end, char *out, size_t outsz);

/* Shorthand: member `key` of the object as a string. 0 or MF_EINVAL. */
int mf_json_get_str(const char *obj, const char *end, const char *key, char *out, size_t outsz);

/* Member `key` as an integer; returns dflt when absent or not a number. */
long long mf_json_get_int(const char *obj, const char *end, const char *key, long long dflt);

/* Append s to buf as a JSON string literal (quotes included). */
struct mf_buf;
int mf_json_quote(struct mf_buf *buf, const char *s);

#endif
