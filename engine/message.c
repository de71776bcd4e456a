/* message.c - folder paths and message helpers. */
#include "message.h"
#include "spill.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

void mf_path_init(struct mf_path *p)
{
	p->n = 0;
	p->seg = NULL;
}

void mf_path_free(struct mf_path *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->seg[i]);
	free(p->seg);
	mf_path_init(p);
}

int mf_path_push(struct mf_path *p, const char *seg, size_t len)
{
	char **grown = realloc(p->seg, (p->n + 1) * sizeof(*grown));
	if (!grown)
		return MF_ENOMEM;
	p->seg = grown;
	char *copy = strndup(seg, len);
	if (!copy)
		return MF_ENOMEM;
	p->seg[p->n++] = copy;
	return 0;
}

int mf_path_copy(struct mf_path *dst, const struct mf_path *src)
{
	mf_path_init(dst);
	for (size_t i = 0; i < src->n; i++) {
		if (mf_path_push(dst, src->seg[i], strlen(src->seg[i])) < 0) {
			mf_path_free(dst);
			return MF_ENOMEM;
		}
	}
	return 0;
}

char *mf_path_join(const struct mf_path *p, const char *sep)
{
	size_t seplen = strlen(sep), total = 1;
	for (size_t i = 0; i < p->n; i++)
		total += strlen(p->seg[i]) + seplen;
	char *out = malloc(total), *w = out;
	if (!out)
		return NULL;
	for (size_t i = 0; i < p->n; i++) {
		if (i) {
			memcpy(w, sep, seplen);
			w += seplen;
		}
		size_t l = strlen(p->seg[i]);
		memcpy(w, p->seg[i], l);
		w += l;
	}
	*w = '\0';
	return out;
}

char *mf_path_key(const struct mf_path *p)
{
	size_t total = 1;
	for (size_t i = 0; i < p->n; i++)
		total += 3 * strlen(p->seg[i]) + 1;
	char *out = malloc(total), *w = out;
	if (!out)
		return NULL;
	for (size_t i = 0; i < p->n; i++) {
		if (i)
			*w++ = '/';
		for (const char *s = p->seg[i]; *s; s++) {
			if (*s == '/' || *s == '%') {
				*w++ = '%';
				*w++ = '2';
				*w++ = *s == '/' ? 'F' : '5';
			} else {
				*w++ = *s;
			}
		}
	}
	*w = '\0';
	return out;
}

int mf_path_from_key(struct mf_path *p, const char *key)
{
	mf_path_init(p);
	if (!*key)
		return 0;
	size_t cap = strlen(key) + 1;
	char *buf = malloc(cap);
	if (!buf)
		return MF_ENOMEM;
	const char *s = key;
	for (;;) {
		size_t n = 0;
		while (*s && *s != '/') {
			if (s[0] == '%' && s[1] == '2' && (s[2] == 'F' || s[2] == '5')) {
				buf[n++] = s[2] == 'F' ? '/' : '%';
				s += 3;
			} else {
				buf[n++] = *s++;
			}
		}
		if (mf_path_push(p, buf, n) < 0) {
			free(buf);
			mf_path_free(p);
			return MF_ENOMEM;
		}
		if (!*s)
			break;
		s++;
	}
	free(buf);
	return 0;
}

const char *mf_role_name(enum mf_role r)
{
	switch (r) {
	case MF_ROLE_INBOX: return "inbox";
	case MF_ROLE_SENT: return "sent";
	case MF_ROLE_DRAFTS: return "drafts";
	case MF_ROLE_TRASH: return "trash";
	case MF_ROLE_JUNK: return "junk";
	case MF_ROLE_ARCHIVE: return "archive";
	case MF_ROLE_NONE: break;
	}
	return "";
}

void mf_msg_clear(struct mf_msg *m)
{
	mf_bytes_free(m->data);
	m->data = NULL;
	free(m->keywords);
	m->keywords = NULL;
	m->len = 0;
}
