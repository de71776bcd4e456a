/* blob.h - what the azure-blob and s3 sinks share: the object layout
 * `{prefix}{mailbox}/{folder key}/{sha256}[-N].eml`, metadata values, and
 * reading names out of a listing.
 *
 * All functions are pure or touch only their arguments; any thread.
 */
#ifndef MF_SINK_BLOB_H
#define MF_SINK_BLOB_H

#include <stddef.h>

#include "engine/error.h"
#include "engine/message.h"
#include "engine/util.h"
#include "sinks/http/http.h"

/* Threshold above which a message is uploaded in blocks / parts, and the
 * block size. 4 MiB blocks are valid for every Azure service version
 * (a PST Import SAS has sv=2015-04-05: Put Block <= 4 MiB) and 8 MiB parts
 * are above S3's 5 MiB minimum. */
#define MF_BLOB_SINGLE_MAX ((size_t)16 << 20)
#define MF_BLOB_AZURE_BLOCK ((size_t)4 << 20)
#define MF_BLOB_S3_PART ((size_t)8 << 20)

/* The folder's object-name prefix "{mailbox}/{folder key}/" (unescaped; the
 * caller escapes for the URL). mf_path_key keeps '/' inside a segment
 * unambiguous (%2F). Newly allocated, NULL on ENOMEM. */
char *mf_blob_folder_prefix(const char *mailbox, const struct mf_path *path);

/* A folder handle of a blob sink: the object-name prefix of the folder,
 * "{sub}{mailbox}/{folder key}/". Kept in a list owned by the sink. */
struct mf_blob_folder {
	char *prefix;
	struct mf_blob_folder *next;
};

/* The sink's folder() for both blob stores: a new handle for `path` under
 * `sub` (the URL's sub-path prefix), added to *list and returned in *fh.
 * 0 or MF_ENOMEM (described in err). */
int mf_blob_folder_open(struct mf_blob_folder **list, const char *sub, const char *mailbox,
			const struct mf_path *path, void **fh, struct mf_err *err);
/* Free every handle of the list. */
void mf_blob_folders_free(struct mf_blob_folder **list);

/* The object name for an item inside a folder prefix: prefix + hash_hex +
 * ("-N" for dup = N-1 > 0) + ".eml". Newly allocated, NULL on ENOMEM. */
char *mf_blob_object_name(const char *folder_prefix, const struct mf_item *item);

/* After a HEAD that found the object: is it this item, whole? Its length
 * must be item->len and its sha256 metadata (when present) the item's. A
 * PUT cut short by a crash can leave an empty or partial object on stores
 * that are not atomic (s3rver did). false is logged as event=blob_broken. */
bool mf_blob_whole(const struct mf_http_req *head, const struct mf_item *item, const char *name);

/* If `name` (a full object name from a listing) is directly in the folder
 * `prefix` and shaped `<64 hex>[-N].eml`, copy the hex into hex[65] and
 * return 1; else 0. */
int mf_blob_name_hash(const char *name, size_t len, const char *prefix, char hex[65]);

/* "seen,answered,flagged,deleted,draft" subset, or "none". */
void mf_blob_flags(unsigned flags, char *out, size_t outsz);

/* Iterate the text content of every <tag>...</tag> in an XML listing:
 * returns the start of the next value after *pos and sets *len, or NULL.
 * XML entities (&amp; &lt; &gt; &quot; &apos;) are decoded into out. */
const char *mf_blob_xml_next(const char *xml, size_t xml_len, size_t *pos, const char *tag,
			     char *out, size_t outsz);

#endif
