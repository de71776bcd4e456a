/* pst_source.c - the PST source driver (libpst): mf_source_pst.
 *
 * One opened source = one pst_file. Folders are the folders under the PST's
 * IPM root ("Top of Personal Folders"), which itself is not listed. Message
 * keys are libpst node ids (NIDs) in decimal.
 *
 * Folders that are not mail: a folder whose container class
 * (PR_CONTAINER_CLASS) is a calendar, contacts, tasks, notes or journal one
 * is listed with not_mail set, so that the target gets it only for mail
 * found in it. Outlook-internal folders (class IPF.Configuration: Quick
 * Step Settings, Conversation Action Settings; the store's search root;
 * an OST's Sync Issues tree) are listed too, so that their items are
 * counted, but every item in them is skipped as "pst-internal-folder" and
 * the folder is never made. Mail right under the IPM root goes where the
 * root goes: a folder with the empty path (the job's TargetRootFolder
 * itself; with "/" the Inbox).
 *
 * Threads: libpst keeps process-wide state (a UTF-16 iconv descriptor that
 * pst_open() re-creates and pst_close() destroys, and a debug call stack), so
 * every libpst call below runs under one process-wide mutex. Sources on
 * different worker threads therefore never run libpst at the same time; the
 * engine's per-mailbox parallelism still overlaps their sink work.
 */
#include <errno.h>
#include <fcntl.h>
#include <iconv.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/conf.h"
#include "engine/source.h"
#include "pst_internal.h"

/* Not in libpst's public header, but exported: re-creates the UTF-16 iconv
 * descriptor that pst_close() destroyed. */
void pst_unicode_init(void);
/* Exported by libpst, declared only in its private debug header. */
void pst_debug_setlevel(int level);

/* ---- the libpst lock ---------------------------------------------------- */

static pthread_mutex_t lib_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static int lib_open_count; /* pst_files open, under lib_mutex */

static void lib_init(void)
{
	/* Levels above 3 switch off libpst's debug tracing, whose global call
	 * stack is pushed on every function entry otherwise. */
	pst_debug_setlevel(5);
}

void pst_lib_lock(void)
{
	pthread_once(&lib_once, lib_init);
	pthread_mutex_lock(&lib_mutex);
}

void pst_lib_unlock(void)
{
	pthread_mutex_unlock(&lib_mutex);
}

/* ---- configuration ------------------------------------------------------ */

struct pst_cfg {
	char *root;
	int cpid;          /* code page of 8-bit strings without one */
	char cp_iconv[32]; /* the same as an iconv name */
};

static const struct mf_conf_key pst_keys[] = {
	{ "root", true, "folder that the manifest's FilePath column is relative to" },
	{ "codepage", false,
	  "code page of ANSI (97-2002) PST text that names none: windows-1252 (default), "
	  "a number such as 1251, or cpNNNN / windows-NNNN" },
	{ NULL, false, NULL },
};

static int parse_codepage(const char *v, int *cp)
{
	const char *num = v;
	if (!strncasecmp(v, "windows-", 8))
		num = v + 8;
	else if (!strncasecmp(v, "cp", 2))
		num = v + 2;
	else if (!strcasecmp(v, "utf-8") || !strcasecmp(v, "utf8")) {
		*cp = 65001;
		return 0;
	} else if (!strcasecmp(v, "iso-8859-1") || !strcasecmp(v, "latin1")) {
		*cp = 28591;
		return 0;
	}
	char *end;
	errno = 0;
	long n = strtol(num, &end, 10);
	if (errno || end == num || *end || n <= 0 || n > 65535)
		return -1;
	*cp = (int)n;
	return 0;
}

static int pst_configure(const struct mf_conf_section *sec, void **cfgp, struct mf_err *err)
{
	struct pst_cfg *cfg = calloc(1, sizeof(*cfg));
	if (!cfg)
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	int rc = mf_conf_path(sec, "root", NULL, &cfg->root, err);
	if (rc < 0)
		goto fail;
	if (!cfg->root) {
		rc = mf_conf_error(sec, "root", err, "required: the folder holding the PST files");
		goto fail;
	}
	const char *cpv = mf_conf_get(sec, "codepage", "windows-1252");
	if (parse_codepage(cpv, &cfg->cpid) < 0) {
		rc = mf_conf_error(sec, "codepage", err, "not a code page: \"%s\"", cpv);
		goto fail;
	}
	char mime[32];
	pst_codepage_names(cfg->cpid, mime, sizeof(mime), cfg->cp_iconv, sizeof(cfg->cp_iconv));
	iconv_t cd = iconv_open("UTF-8", cfg->cp_iconv);
	if (cd == (iconv_t)-1) {
		rc = mf_conf_error(sec, "codepage", err, "code page %d is not supported here",
				   cfg->cpid);
		goto fail;
	}
	iconv_close(cd);
	*cfgp = cfg;
	return 0;
fail:
	free(cfg->root);
	free(cfg);
	return rc;
}

static void pst_free_config(void *p)
{
	struct pst_cfg *cfg = p;
	if (!cfg)
		return;
	free(cfg->root);
	free(cfg);
}

/* ---- the opened source -------------------------------------------------- */

#define NID_TYPE(nid) ((unsigned)((nid) & 0x1f))
#define NID_NORMAL_FOLDER 0x02u
#define NID_SEARCH_FOLDER 0x03u
#define NID_ASSOC_MESSAGE 0x08u
#define MAX_FOLDER_DEPTH 64

struct nidx {
	uint64_t nid;
	pst_desc_tree *d;
};

struct fdrv {
	pst_desc_tree *d;
	struct nidx *items; /* the folder's items by nid, built on first use */
	size_t nitems;
	bool indexed;
	bool internal; /* an Outlook-internal folder: every item is skipped */
};

/* The report's word for an item skipped because its folder is Outlook's own. */
#define SKIP_INTERNAL "pst-internal-folder"

struct pst_src {
	const struct pst_cfg *cfg;
	int cpid;          /* the unit's ContentCodePage, else [source] codepage */
	char cp_iconv[32]; /* the same as an iconv name */
	char *path;
	pst_file pf;
	bool opened;
	pst_item *root;
	pst_desc_tree *top;
	char store_id[80];
	uint64_t sent_nid, trash_nid, search_nid;
	bool ost; /* an Offline Storage file (Outlook's cache of a server mailbox) */
	struct mf_folder *folders;
	size_t nfolders, capfolders;
	uint64_t *folder_nids; /* sorted */
	bool walked;
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int cmp_nidx(const void *a, const void *b)
{
	return cmp_u64(&((const struct nidx *)a)->nid, &((const struct nidx *)b)->nid);
}

/* Check the file before libpst reads it: libpst believes the header blindly. */
static int precheck(const char *path, struct mf_err *err, off_t *size, bool *ost)
{
	/* O_NONBLOCK: opening a FIFO named x.pst must not wait for a writer;
	 * the regular-file check below then refuses it */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		int e = errno;
		if (e == ENOENT)
			return mf_err_set(err, MF_ENOTFOUND, "PST file not found: %s", path);
		return mf_err_set(err, MF_ECORRUPT, "cannot open PST file %s: %s", path, strerror(e));
	}
	struct stat st;
	unsigned char h[16];
	ssize_t n = -1;
	int rc = 0;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		rc = mf_err_set(err, MF_ECORRUPT, "not a regular file: %s", path);
		goto out;
	}
	*size = st.st_size;
	n = pread(fd, h, sizeof(h), 0);
	if (n < 0) {
		rc = mf_err_set(err, MF_ECORRUPT, "cannot read PST file %s: %s", path,
				strerror(errno));
		goto out;
	}
	if (n < 4 || memcmp(h, "!BDN", 4) != 0) {
		rc = mf_err_set(err, MF_ECORRUPT, "not a PST file: no !BDN signature (%lld bytes)",
				(long long)st.st_size);
		goto out;
	}
	unsigned ver = n >= 12 ? (unsigned)(h[10] | (h[11] << 8)) : 0;
	/* wMagicClient: "SM" for a PST, "SO" for an OST */
	*ost = n >= 10 && h[8] == 'S' && h[9] == 'O';
	off_t need;
	if (ver == 14 || ver == 15)
		need = 512; /* ANSI (97-2002) header */
	else if (ver >= 23)
		need = 564; /* Unicode header */
	else if (n < 12)
		need = 512;
	else {
		rc = mf_err_set(err, MF_ECORRUPT, "not a PST file libpst can read: version %u", ver);
		goto out;
	}
	if (st.st_size < need)
		rc = mf_err_set(err, MF_ECORRUPT, "not a PST file: header truncated (%lld bytes)",
				(long long)st.st_size);
out:
	close(fd);
	return rc;
}

static char *hexdup(const unsigned char *p, size_t n)
{
	char *s = malloc(2 * n + 1);
	if (s)
		mf_hex(p, n, s);
	return s;
}

/* An identity of the store that copies keep and other PSTs do not share:
 * the store's PR_RECORD_KEY (a GUID written when the PST was created), with
 * the entry id of the IPM root as fallback. */
static void store_identity(struct pst_src *s)
{
	const unsigned char *key = NULL;
	size_t len = 0;
	if (s->root->record_key.data && s->root->record_key.size >= 16) {
		key = (const unsigned char *)s->root->record_key.data;
		len = s->root->record_key.size > 32 ? 32 : s->root->record_key.size;
	} else if (s->root->message_store->top_of_personal_folder) {
		key = (const unsigned char *)s->root->message_store->top_of_personal_folder->entryid;
		len = sizeof(s->root->message_store->top_of_personal_folder->entryid);
	}
	char *hex = key ? hexdup(key, len) : NULL;
	snprintf(s->store_id, sizeof(s->store_id), "pst:%s", hex ? hex : "unknown");
	free(hex);
	pst_item_message_store *ms = s->root->message_store;
	if (ms->sent_items_folder)
		s->sent_nid = ms->sent_items_folder->id;
	if (ms->deleted_items_folder)
		s->trash_nid = ms->deleted_items_folder->id;
	if (ms->search_root_folder)
		s->search_nid = ms->search_root_folder->id;
}

static void pst_close_src(void *p);

static int pst_open_src(const void *cfgp, const struct mf_unit *unit, void **out,
			struct mf_err *err)
{
	const struct pst_cfg *cfg = cfgp;
	if (!unit->pst_path || !unit->pst_path[0])
		return mf_err_set(err, MF_EINVAL, "manifest line %d: no PST file", unit->line);
	off_t size = 0;
	bool ost = false;
	int rc = precheck(unit->pst_path, err, &size, &ost);
	if (rc < 0)
		return rc;
	struct pst_src *s = calloc(1, sizeof(*s));
	if (!s)
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	s->cfg = cfg;
	s->ost = ost;
	s->cpid = unit->codepage ? unit->codepage : cfg->cpid;
	if (unit->codepage) {
		char mime[32];
		pst_codepage_names(s->cpid, mime, sizeof(mime), s->cp_iconv, sizeof(s->cp_iconv));
	} else {
		snprintf(s->cp_iconv, sizeof(s->cp_iconv), "%s", cfg->cp_iconv);
	}
	s->path = strdup(unit->pst_path);
	if (!s->path) {
		free(s);
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	}

	pst_lib_lock();
	/* libpst keeps this pointer: s outlives its pst_file */
	if (pst_open(&s->pf, s->path, s->cp_iconv) != 0) {
		pst_lib_unlock();
		rc = mf_err_set(err, MF_ECORRUPT, "not a PST file libpst can open: %s", s->path);
		goto fail;
	}
	s->opened = true;
	lib_open_count++;
	uint64_t fsize = (uint64_t)size;
	if (s->pf.index1 == 0 || s->pf.index2 == 0 || s->pf.index1 >= fsize ||
	    s->pf.index2 >= fsize) {
		pst_lib_unlock();
		rc = mf_err_set(err, MF_ECORRUPT,
				"PST truncated or damaged: index at offset %" PRIu64 "/%" PRIu64
				" beyond the file's %" PRIu64 " bytes",
				s->pf.index1, s->pf.index2, fsize);
		goto fail;
	}
	if (s->pf.size > fsize) {
		pst_lib_unlock();
		rc = mf_err_set(err, MF_ECORRUPT,
				"PST truncated: header says %" PRIu64 " bytes, file has %" PRIu64,
				s->pf.size, fsize);
		goto fail;
	}
	if (pst_load_index(&s->pf) != 0 || !s->pf.d_head) {
		pst_lib_unlock();
		rc = mf_err_set(err, MF_ECORRUPT, "PST index cannot be read: %s", s->path);
		goto fail;
	}
	pst_load_extended_attributes(&s->pf);
	s->root = pst_parse_item(&s->pf, s->pf.d_head, NULL);
	if (!s->root || !s->root->message_store) {
		pst_lib_unlock();
		rc = mf_err_set(err, MF_ECORRUPT, "PST has no message store record: %s", s->path);
		goto fail;
	}
	s->top = pst_getTopOfFolders(&s->pf, s->root);
	pst_lib_unlock();
	if (!s->top) {
		rc = mf_err_set(err, MF_ECORRUPT, "PST has no top of folders: %s", s->path);
		goto fail;
	}
	store_identity(s);
	*out = s;
	return 0;
fail:
	pst_close_src(s);
	return rc;
}

static void pst_close_src(void *p)
{
	struct pst_src *s = p;
	if (!s)
		return;
	for (size_t i = 0; i < s->nfolders; i++) {
		struct fdrv *fd = s->folders[i].drv;
		if (fd)
			free(fd->items);
		free(fd);
		mf_path_free(&s->folders[i].path);
		free(s->folders[i].validity);
	}
	free(s->folders);
	free(s->folder_nids);
	pst_lib_lock();
	if (s->root)
		pst_freeItem(s->root);
	if (s->opened) {
		pst_close(&s->pf);
		/* pst_close() destroyed libpst's shared UTF-16 converter;
		 * other open PSTs still need it */
		if (--lib_open_count > 0)
			pst_unicode_init();
	}
	pst_lib_unlock();
	free(s->path);
	free(s);
}

/* ---- folders ------------------------------------------------------------ */

static int add_folder(struct pst_src *s, const struct mf_path *parent, const char *name,
		      pst_desc_tree *d, const pst_item *it)
{
	if (s->nfolders == s->capfolders) {
		size_t cap = s->capfolders ? s->capfolders * 2 : 16;
		struct mf_folder *v = realloc(s->folders, cap * sizeof(*v));
		if (!v)
			return MF_ENOMEM;
		s->folders = v;
		s->capfolders = cap;
	}
	struct mf_folder *f = &s->folders[s->nfolders];
	memset(f, 0, sizeof(*f));
	struct fdrv *fd = calloc(1, sizeof(*fd));
	if (!fd || mf_path_copy(&f->path, parent) < 0) {
		free(fd);
		return MF_ENOMEM;
	}
	fd->d = d;
	f->drv = fd;
	s->nfolders++;
	if (name && mf_path_push(&f->path, name, strlen(name)) < 0)
		return MF_ENOMEM;
	if (asprintf(&f->validity, "%s:%" PRIx64, s->store_id, d->d_id) < 0) {
		f->validity = NULL;
		return MF_ENOMEM;
	}
	if (it && it->folder && it->folder->item_count > 0)
		f->count_hint = (uint64_t)it->folder->item_count;
	if (d->d_id == s->trash_nid)
		f->role = MF_ROLE_TRASH;
	else if (d->d_id == s->sent_nid)
		f->role = MF_ROLE_SENT;
	else if (parent->n == 0 && name)
		f->role = pst_role_from_name(name);
	return 0;
}

static bool sibling_has(const struct pst_src *s, size_t first, const struct mf_path *parent,
			const char *name)
{
	for (size_t i = first; i < s->nfolders; i++) {
		const struct mf_path *p = &s->folders[i].path;
		if (p->n == parent->n + 1 && !strcmp(p->seg[parent->n], name))
			return true;
	}
	return false;
}

/* A folder's name as a path segment: its display name in UTF-8, control
 * characters turned into spaces, `fallback` when it has none. */
static int folder_name(struct pst_src *s, pst_item *it, const char *fallback, struct mf_buf *name)
{
	int rc = 0;
	if (it && it->file_as.str) {
		struct pst_mime_ctx ctx = { .pf = &s->pf, .dflt_cp = s->cp_iconv,
					    .dflt_cpid = s->cpid };
		rc = pst_string_utf8(&ctx, it, &it->file_as, name);
	}
	for (size_t i = 0; rc == 0 && i < name->len; i++) {
		if ((unsigned char)name->data[i] < 32)
			name->data[i] = ' ';
	}
	if (rc == 0 && name->len == 0)
		rc = mf_buf_addstr(name, fallback) < 0 ? MF_ENOMEM : 0;
	return rc;
}

enum fkind { FOLDER_MAIL, FOLDER_NOT_MAIL, FOLDER_INTERNAL };

static bool prefix(const char *s, const char *p);

/* Outlook's names for an OST's Sync Issues folder. Its container class is
 * IPF.Note, like any mail folder, and libpst does not give the property that
 * names it (PR_ADDITIONAL_REN_ENTRYIDS), so here the name decides; only in
 * an OST and only at the top level. A name missing from this list leaves
 * the folder a mail folder, as before. */
static const char *const sync_issues_names[] = {
	"Sync Issues",		     /* en */
	"Synchronisierungsprobleme", /* de */
	"Problèmes de synchronisation", /* fr */
	"Problemas de sincronización",  /* es */
	"Problemas de Sincronização",   /* pt */
	"Problemi di sincronizzazione", /* it */
	"Synchronisatieproblemen",	/* nl */
	"同期の失敗",		     /* ja */
};

/* What a folder is, from its container class (and, for the exceptions
 * above, where it is). `it` is the folder's item, NULL if unreadable. */
static enum fkind folder_kind(const struct pst_src *s, const pst_desc_tree *d, const pst_item *it,
			      int depth)
{
	static const char *const not_mail[] = {"IPF.Appointment", "IPF.Contact", "IPF.Task",
					       "IPF.StickyNote", "IPF.Journal"};
	const char *cls = it ? it->ascii_type : NULL;
	if (s->search_nid && d->d_id == s->search_nid)
		return FOLDER_INTERNAL;
	if (cls && prefix(cls, "IPF.Configuration"))
		return FOLDER_INTERNAL;
	if (s->ost && depth == 0 && it && it->file_as.str &&
	    (!cls || !*cls || !strcasecmp(cls, "IPF.Note"))) {
		for (size_t i = 0; i < sizeof(sync_issues_names) / sizeof(sync_issues_names[0]); i++)
			if (!strcmp(it->file_as.str, sync_issues_names[i]))
				return FOLDER_INTERNAL;
	}
	for (size_t i = 0; cls && i < sizeof(not_mail) / sizeof(not_mail[0]); i++) {
		size_t l = strlen(not_mail[i]);
		if (!strncasecmp(cls, not_mail[i], l) && (cls[l] == '\0' || cls[l] == '.'))
			return FOLDER_NOT_MAIL;
	}
	return FOLDER_MAIL;
}

static int walk(struct pst_src *s, pst_desc_tree *dir, const struct mf_path *parent, int depth,
		bool internal, struct mf_err *err)
{
	if (depth > MAX_FOLDER_DEPTH)
		return 0;
	size_t first = depth == 0 ? 0 : s->nfolders;
	for (pst_desc_tree *c = dir->child; c; c = c->next) {
		unsigned t = NID_TYPE(c->d_id);
		if (t == NID_SEARCH_FOLDER)
			continue;
		if (t != NID_NORMAL_FOLDER && !c->child)
			continue;
		pst_lib_lock();
		pst_item *it = c->desc ? pst_parse_item(&s->pf, c, NULL) : NULL;
		pst_lib_unlock();
		if (t != NID_NORMAL_FOLDER && (!it || !it->folder)) {
			if (it)
				pst_freeItem(it);
			continue;
		}
		struct mf_buf name = { 0 };
		char fallback[40];
		snprintf(fallback, sizeof(fallback), "Folder %" PRIu64, c->d_id);
		int rc = folder_name(s, it, fallback, &name);
		if (rc == 0 && sibling_has(s, first, parent, name.data))
			rc = mf_buf_printf(&name, " (%" PRIu64 ")", c->d_id) < 0 ? MF_ENOMEM : 0;
		enum fkind kind = internal ? FOLDER_INTERNAL : folder_kind(s, c, it, depth);
		if (rc == 0)
			rc = add_folder(s, parent, name.data, c, it);
		if (rc == 0) {
			struct mf_folder *f = &s->folders[s->nfolders - 1];
			f->not_mail = kind != FOLDER_MAIL;
			((struct fdrv *)f->drv)->internal = kind == FOLDER_INTERNAL;
			if (kind != FOLDER_MAIL)
				f->role = MF_ROLE_NONE;
		}
		mf_buf_free(&name);
		if (it) {
			pst_lib_lock();
			pst_freeItem(it);
			pst_lib_unlock();
		}
		if (rc < 0)
			return mf_err_set(err, rc, "out of memory listing folders");
		if (c->child) {
			struct mf_path here;
			if (mf_path_copy(&here, &s->folders[s->nfolders - 1].path) < 0)
				return mf_err_set(err, MF_ENOMEM, "out of memory listing folders");
			rc = walk(s, c, &here, depth + 1, kind == FOLDER_INTERNAL, err);
			mf_path_free(&here);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

/* Items right under the IPM root (older Outlook versions and some tools put
 * mail there) are listed in a folder with the empty path: where the root
 * itself goes (TargetRootFolder; with "/" the Inbox, hence the role), not in
 * a folder named as the root is named ("Top of Personal Folders", localized),
 * which is Outlook's and no folder of the user's. */
static int root_items_folder(struct pst_src *s, struct mf_err *err)
{
	bool any = false;
	for (pst_desc_tree *c = s->top->child; c && !any; c = c->next) {
		unsigned t = NID_TYPE(c->d_id);
		any = t != NID_NORMAL_FOLDER && t != NID_SEARCH_FOLDER && !c->child;
	}
	if (!any)
		return 0;
	struct mf_path root;
	mf_path_init(&root);
	int rc = add_folder(s, &root, NULL, s->top, NULL);
	if (rc == 0)
		s->folders[s->nfolders - 1].role = MF_ROLE_INBOX;
	return rc < 0 ? mf_err_set(err, rc, "out of memory listing folders") : 0;
}

static int pst_folders(void *p, const struct mf_folder **out, size_t *n, struct mf_err *err)
{
	struct pst_src *s = p;
	if (!s->walked) {
		struct mf_path root;
		mf_path_init(&root);
		int rc = root_items_folder(s, err);
		if (rc == 0)
			rc = walk(s, s->top, &root, 0, false, err);
		mf_path_free(&root);
		if (rc < 0)
			return rc;
		s->folder_nids = calloc(s->nfolders + 1, sizeof(uint64_t));
		if (!s->folder_nids)
			return mf_err_set(err, MF_ENOMEM, "out of memory listing folders");
		for (size_t i = 0; i < s->nfolders; i++)
			s->folder_nids[i] = ((struct fdrv *)s->folders[i].drv)->d->d_id;
		qsort(s->folder_nids, s->nfolders, sizeof(uint64_t), cmp_u64);
		s->walked = true;
	}
	*out = s->folders;
	*n = s->nfolders;
	return 0;
}

/* ---- items -------------------------------------------------------------- */

static bool is_folder_nid(const struct pst_src *s, uint64_t nid)
{
	unsigned t = NID_TYPE(nid);
	if (t == NID_NORMAL_FOLDER || t == NID_SEARCH_FOLDER)
		return true;
	return s->folder_nids &&
	       bsearch(&nid, s->folder_nids, s->nfolders, sizeof(uint64_t), cmp_u64) != NULL;
}

static int index_folder(struct pst_src *s, struct fdrv *fd, struct mf_err *err)
{
	if (fd->indexed)
		return 0;
	size_t n = 0;
	for (pst_desc_tree *c = fd->d->child; c; c = c->next)
		n++;
	fd->items = calloc(n + 1, sizeof(*fd->items));
	if (!fd->items)
		return mf_err_set(err, MF_ENOMEM, "out of memory listing a folder");
	n = 0;
	for (pst_desc_tree *c = fd->d->child; c; c = c->next) {
		if (is_folder_nid(s, c->d_id))
			continue;
		fd->items[n].nid = c->d_id;
		fd->items[n].d = c;
		n++;
	}
	qsort(fd->items, n, sizeof(*fd->items), cmp_nidx);
	fd->nitems = n;
	fd->indexed = true;
	return 0;
}

static bool prefix(const char *s, const char *p)
{
	return !strncasecmp(s, p, strlen(p));
}

/* NULL for mail, else the kind of non-mail item (the report's words). */
static const char *skip_kind(const pst_item *it)
{
	const char *c = it->ascii_type;
	if (!c || !*c)
		return it->email ? NULL : "other";
	if (!strcasecmp(c, "IPM") || prefix(c, "IPM.Note") || prefix(c, "IPM.Schedule.Meeting") ||
	    prefix(c, "REPORT.") || prefix(c, "IPM.Post") || prefix(c, "IPM.Recall") ||
	    prefix(c, "IPM.Outlook.Recall") || prefix(c, "IPM.Sharing"))
		return NULL;
	if (prefix(c, "IPM.Contact"))
		return "contact";
	if (prefix(c, "IPM.DistList"))
		return "distribution-list";
	if (prefix(c, "IPM.Appointment"))
		return "appointment";
	if (prefix(c, "IPM.Task"))
		return "task";
	if (prefix(c, "IPM.StickyNote"))
		return "note";
	if (prefix(c, "IPM.Activity"))
		return "journal";
	return "other";
}

static int64_t item_idate(const pst_item *it)
{
	int64_t t = 0;
	if (it->email) {
		t = pst_filetime_unix(it->email->arrival_date);
		if (!t)
			t = pst_filetime_unix(it->email->sent_date);
	}
	if (!t)
		t = pst_filetime_unix(it->create_date);
	return t;
}

static unsigned item_flags(const pst_item *it)
{
	unsigned f = 0;
	if (it->flags & PST_FLAG_READ)
		f |= MF_FLAG_SEEN;
	if (it->flags & PST_FLAG_UNSENT)
		f |= MF_FLAG_DRAFT;
	return f;
}

static int pst_list(void *p, const struct mf_folder *f, const char *cursor, mf_msgref_cb cb,
		    void *arg, char **next_cursor, struct mf_err *err)
{
	struct pst_src *s = p;
	struct fdrv *fd = f->drv;
	(void)cursor; /* node ids are not ordered by arrival: list everything */
	if (next_cursor)
		*next_cursor = NULL;
	int rc = index_folder(s, fd, err);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < fd->nitems; i++) {
		pst_desc_tree *d = fd->items[i].d;
		char key[24];
		snprintf(key, sizeof(key), "%" PRIu64, fd->items[i].nid);
		struct mf_msgref ref = { .key = key };
		bool listed = true;
		pst_lib_lock();
		pst_item *it = d->desc ? pst_parse_item(&s->pf, d, NULL) : NULL;
		if (it) {
			ref.skip_kind = skip_kind(it);
			/* hidden folder-associated items (views, rules, forms)
			 * are not user content */
			if (NID_TYPE(d->d_id) == NID_ASSOC_MESSAGE && ref.skip_kind)
				listed = false;
			ref.size = it->message_size > 0 ? (uint64_t)it->message_size : 0;
			ref.idate = item_idate(it);
			ref.flags = item_flags(it);
			pst_freeItem(it);
		} else if (d->desc) {
			ref.size = d->desc->size;
		}
		pst_lib_unlock();
		if (fd->internal)
			ref.skip_kind = SKIP_INTERNAL; /* mail or not: counted, not moved */
		/* an item libpst cannot parse is listed all the same: fetch
		 * reports why it fails, so that the report counts it */
		if (listed && (rc = cb(arg, &ref)) != 0)
			return rc;
	}
	return 0;
}

static pst_desc_tree *find_item(struct fdrv *fd, uint64_t nid)
{
	struct nidx k = { .nid = nid };
	struct nidx *r = bsearch(&k, fd->items, fd->nitems, sizeof(*fd->items), cmp_nidx);
	return r ? r->d : NULL;
}

static int pst_fetch(void *p, const struct mf_folder *f, const struct mf_msgref *ref,
		     struct mf_msg *out, struct mf_err *err)
{
	struct pst_src *s = p;
	struct fdrv *fd = f->drv;
	memset(out, 0, sizeof(*out));
	int rc = index_folder(s, fd, err);
	if (rc < 0)
		return rc;
	char *end;
	errno = 0;
	unsigned long long nid = strtoull(ref->key, &end, 10);
	if (errno || end == ref->key || *end)
		return mf_err_set(err, MF_EMSG, "not a PST item key: \"%s\"", ref->key);
	pst_desc_tree *d = find_item(fd, nid);
	if (!d)
		return mf_err_set(err, MF_EMSG, "item %llu is not in this folder of the PST", nid);
	if (!d->desc)
		return mf_err_set(err, MF_EMSG, "item %llu has no data block in the PST index", nid);

	struct mf_buf buf = { .spill = true }; /* a big message goes to a spill file */
	pst_lib_lock();
	pst_item *it = pst_parse_item(&s->pf, d, NULL);
	if (!it) {
		rc = mf_err_set(err, MF_EMSG, "libpst cannot parse item %llu (damaged PST data)", nid);
	} else if (skip_kind(it)) {
		rc = mf_err_set(err, MF_EMSG, "item %llu is a %s (%s), not mail", nid, skip_kind(it),
				it->ascii_type ? it->ascii_type : "no message class");
	} else {
		struct pst_mime_ctx ctx = { .pf = &s->pf, .dflt_cp = s->cp_iconv,
					    .dflt_cpid = s->cpid, .nid = nid };
		rc = pst_mime_build(&ctx, it, &buf, err);
		if (rc == 0) {
			out->idate = item_idate(it);
			out->flags = item_flags(it);
		}
	}
	if (it)
		pst_freeItem(it);
	pst_lib_unlock();
	if (rc < 0) {
		mf_buf_free(&buf);
		return rc;
	}
	out->data = (unsigned char *)buf.data;
	out->len = buf.len;
	return 0;
}

const struct mf_source_ops mf_source_pst = {
	.name = "pst",
	.keys = pst_keys,
	.dir_keys = (const char *const[]){ "root", NULL },
	.configure = pst_configure,
	.free_config = pst_free_config,
	.open = pst_open_src,
	.folders = pst_folders,
	.list = pst_list,
	.fetch = pst_fetch,
	.close = pst_close_src,
};
