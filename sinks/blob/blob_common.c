/* blob_common.c - object layout and listing helpers for azure-blob and s3. */
#include "blob.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/log.h"

char *mf_blob_folder_prefix(const char *mailbox, const struct mf_path *path)
{
	char *key = mf_path_key(path);
	if (!key)
		return NULL;
	struct mf_buf b = {0};
	int rc = key[0] ? mf_buf_printf(&b, "%s/%s/", mailbox, key) : mf_buf_printf(&b, "%s/", mailbox);
	free(key);
	if (rc < 0) {
		mf_buf_free(&b);
		return NULL;
	}
	return b.data;
}

char *mf_blob_object_name(const char *folder_prefix, const struct mf_item *item)
{
	struct mf_buf b = {0};
	int rc = item->dup ? mf_buf_printf(&b, "%s%s-%u.eml", folder_prefix, item->hash_hex, item->dup + 1)
			   : mf_buf_printf(&b, "%s%s.eml", folder_prefix, item->hash_hex);
	if (rc < 0) {
		mf_buf_free(&b);
		return NULL;
	}
	return b.data;
}

static int is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

int mf_blob_name_hash(const char *name, size_t len, const char *prefix, char hex[65])
{
	size_t pl = strlen(prefix);
	if (len < pl + 68 || memcmp(name, prefix, pl) != 0)
		return 0;
	const char *b = name + pl;
	size_t bl = len - pl;
	for (size_t i = 0; i < 64; i++)
		if (!is_hex(b[i]))
			return 0;
	if (memcmp(b + bl - 4, ".eml", 4) != 0)
		return 0;
	if (bl != 68) {
		if (b[64] != '-' || bl < 70)
			return 0;
		for (size_t i = 65; i < bl - 4; i++)
			if (b[i] < '0' || b[i] > '9')
				return 0;
	}
	memcpy(hex, b, 64);
	hex[64] = '\0';
	return 1;
}

void mf_blob_flags(unsigned flags, char *out, size_t outsz)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = {
		{MF_FLAG_SEEN, "seen"},       {MF_FLAG_ANSWERED, "answered"},
		{MF_FLAG_FLAGGED, "flagged"}, {MF_FLAG_DELETED, "deleted"},
		{MF_FLAG_DRAFT, "draft"},
	};
	size_t n = 0;
	out[0] = '\0';
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!(flags & names[i].bit))
			continue;
		int w = snprintf(out + n, outsz - n, "%s%s", n ? "," : "", names[i].name);
		if (w < 0 || (size_t)w >= outsz - n)
			break;
		n += (size_t)w;
	}
	if (!n)
		snprintf(out, outsz, "none");
}

const char *mf_blob_xml_next(const char *xml, size_t xml_len, size_t *pos, const char *tag,
			     char *out, size_t outsz)
{
	char open[64], close[64];
	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	size_t ol = strlen(open);
	if (!xml || *pos >= xml_len)
		return NULL;
	const char *s = strstr(xml + *pos, open);
	if (!s)
		return NULL;
	s += ol;
	const char *e = strstr(s, close);
	if (!e)
		return NULL;
	*pos = (size_t)(e - xml) + strlen(close);
	size_t n = 0;
	static const struct {
		const char *ent;
		char c;
	} ents[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
	for (const char *p = s; p < e && n + 1 < outsz; p++) {
		char c = *p;
		if (c == '&') {
			for (size_t i = 0; i < 5; i++) {
				size_t el = strlen(ents[i].ent);
				if ((size_t)(e - p) >= el && memcmp(p, ents[i].ent, el) == 0) {
					c = ents[i].c;
					p += el - 1;
					break;
				}
			}
		}
		out[n++] = c;
	}
	out[n] = '\0';
	return s;
}

int mf_blob_folder_open(struct mf_blob_folder **list, const char *sub, const char *mailbox,
			const struct mf_path *path, void **fh, struct mf_err *err)
{
	struct mf_blob_folder *f = calloc(1, sizeof(*f));
	char *fp = mf_blob_folder_prefix(mailbox, path);
	struct mf_buf b = {0};
	if (!f || !fp || mf_buf_printf(&b, "%s%s", sub, fp) < 0) {
		free(f);
		free(fp);
		mf_buf_free(&b);
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	}
	free(fp);
	f->prefix = b.data;
	f->next = *list;
	*list = f;
	*fh = f;
	return 0;
}

void mf_blob_folders_free(struct mf_blob_folder **list)
{
	while (*list) {
		struct mf_blob_folder *n = (*list)->next;
		free((*list)->prefix);
		free(*list);
		*list = n;
	}
}

bool mf_blob_whole(const struct mf_http_req *head, const struct mf_item *item, const char *name)
{
	bool len_ok = head->content_length < 0 || (unsigned long long)head->content_length == item->len;
	bool sha_ok = !head->meta_sha256[0] || strcasecmp(head->meta_sha256, item->hash_hex) == 0;
	if (len_ok && sha_ok)
		return true;
	mf_log(MF_LOG_WARN,
	       "event=blob_broken object=%s size=%lld want=%zu sha256_meta=%s note=\"not this message whole (a write cut short?): stored again\"",
	       name, head->content_length, item->len, head->meta_sha256[0] ? head->meta_sha256 : "-");
	return false;
}
