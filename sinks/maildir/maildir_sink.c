/* maildir_sink.c - the Maildir sink driver: mailbox and folder creation,
 * durable store (tmp -> fsync -> rename -> fsync dir), probe by
 * deterministic name, hashes for verify. Layout and naming: maildir.h.
 * Opened with open_read (verify, plan) it only looks: no directory is made,
 * no tmp/ file removed (they may be a running job's), no subscriptions or
 * dovecot-keywords written. */
#include "maildir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <nettle/sha2.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/conf.h"
#include "engine/log.h"

#define SUBS_MAX (16u * 1024 * 1024)
#define TMP_MARK ".mailferry.T" /* our files in tmp/: <base>.T<pid> */

struct mdcfg {
	char *root;
	char *archive_root; /* IsArchive rows: one archive Maildir per mailbox here */
	bool fsync;
};

/* A set of strings (open addressing, linear probing). */
struct nameset {
	char **slot;
	size_t cap, n;
};

/* Dovecot keeps up to 26 keywords per Maildir folder in dovecot-keywords
 * ("N name" lines); message file names carry them as the letters a..z
 * after the flags. */
#define MD_KEYWORDS 26

struct mdfolder {
	struct mdfolder *next;
	char *dirname;	      /* "" (INBOX) or ".A.B" */
	char *dir;	      /* <mbdir>/<dirname> */
	struct nameset names; /* message base names in cur/ and new/ */
	bool loaded;
	char *kw[MD_KEYWORDS]; /* dovecot-keywords: keyword of each letter */
	bool kw_loaded, kw_told;
};

struct mdsink {
	const struct mdcfg *cfg;
	char *mbdir;
	struct mdfolder *folders;
	/* Dovecot's subscriptions file: its text and the names in it. */
	struct mf_buf subs;
	struct nameset subnames;
	bool subs_loaded, subs_foreign;
	bool readonly; /* opened by open_read: folder() finds, store() refuses */
};

/* --- small helpers --------------------------------------------------------- */

static char *pathf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *pathf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	char *out = malloc((size_t)n + 1);
	if (!out)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(out, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return out;
}

/* Describe a failed system call on `path` (errno `e`) in err. */
static int sys_err(struct mf_err *err, int e, const char *what, const char *path)
{
	char buf[128];
	const char *text = strerror_r(e, buf, sizeof(buf));
	switch (e) {
	case ENOSPC:
		return mf_err_set(err, MF_ENOSPC, "no space left on device: cannot %s %s", what,
				  path);
	case EDQUOT:
		return mf_err_set(err, MF_EQUOTA, "disk quota exceeded: cannot %s %s", what, path);
	case ENOMEM:
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	default:
		return mf_err_set(err, MF_EIO, "cannot %s %s: %s", what, path, text);
	}
}

static int nomem(struct mf_err *err)
{
	return mf_err_set(err, MF_ENOMEM, "out of memory");
}

static uint64_t fnv1a(const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	return h;
}

static char **set_find(const struct nameset *s, const char *name, size_t len)
{
	size_t i = (size_t)fnv1a(name, len) & (s->cap - 1);
	while (s->slot[i]) {
		if (strncmp(s->slot[i], name, len) == 0 && s->slot[i][len] == '\0')
			return &s->slot[i];
		i = (i + 1) & (s->cap - 1);
	}
	return &s->slot[i];
}

static bool set_has(const struct nameset *s, const char *name, size_t len)
{
	return s->cap && *set_find(s, name, len) != NULL;
}

/* Add name[0..len) unless present. 0 or MF_ENOMEM. */
static int set_add(struct nameset *s, const char *name, size_t len)
{
	if ((s->n + 1) * 2 > s->cap) {
		struct nameset g = {.cap = s->cap ? s->cap * 2 : 64};
		g.slot = calloc(g.cap, sizeof(*g.slot));
		if (!g.slot)
			return MF_ENOMEM;
		for (size_t i = 0; i < s->cap; i++)
			if (s->slot[i])
				*set_find(&g, s->slot[i], strlen(s->slot[i])) = s->slot[i];
		g.n = s->n;
		free(s->slot);
		*s = g;
	}
	char **slot = set_find(s, name, len);
	if (*slot)
		return 0;
	if (!(*slot = strndup(name, len)))
		return MF_ENOMEM;
	s->n++;
	return 0;
}

static void set_free(struct nameset *s)
{
	for (size_t i = 0; i < s->cap; i++)
		free(s->slot[i]);
	free(s->slot);
	s->slot = NULL;
	s->cap = s->n = 0;
}

/* idem is used in a file name: accept letters and digits only. */
static int check_idem(const struct mf_item *item, struct mf_err *err)
{
	const char *s = item->idem;
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > 64)
		return mf_err_set(err, MF_EINVAL, "maildir: bad idempotency key length %zu", n);
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= 'A' && s[i] <= 'Z')))
			return mf_err_set(err, MF_EINVAL, "maildir: bad idempotency key");
	return 0;
}

/* The part of a Maildir file name that identifies the message: up to the
 * first ':' (info) or ',' (Dovecot's S= / W= fields). */
static size_t base_len(const char *name)
{
	return strcspn(name, ":,");
}

/* --- directories ------------------------------------------------------------ */

/* mkdir that accepts an existing directory; *created tells which. */
static int ensure_dir(const char *path, bool *created, struct mf_err *err)
{
	if (mkdir(path, 0700) == 0) {
		*created = true;
		return 0;
	}
	int e = errno;
	struct stat st;
	if (e == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	if (e == EEXIST)
		return mf_err_set(err, MF_EIO, "cannot create directory %s: not a directory", path);
	return sys_err(err, e, "create directory", path);
}

static int fsync_dir(const struct mdsink *s, const char *path, struct mf_err *err)
{
	if (!s->cfg->fsync)
		return 0;
	int rc = mf_fsync_dir(path);
	return rc < 0 ? sys_err(err, -rc, "fsync directory", path) : 0;
}

/* Make `dir` a Maildir (dir, cur, new, tmp; `maildirfolder` for a
 * Maildir++ subfolder), syncing what it creates. */
static int make_maildir(const struct mdsink *s, const char *dir, bool sub, struct mf_err *err)
{
	static const char *const parts[] = {"cur", "new", "tmp"};
	bool created = false, top = false;
	char *p = NULL;
	int rc = ensure_dir(dir, &top, err);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < 3; i++) {
		free(p);
		if (!(p = pathf("%s/%s", dir, parts[i]))) {
			rc = nomem(err);
			goto out;
		}
		if ((rc = ensure_dir(p, &created, err)) < 0)
			goto out;
	}
	if (sub) {
		free(p);
		if (!(p = pathf("%s/maildirfolder", dir))) {
			rc = nomem(err);
			goto out;
		}
		int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0) {
			rc = sys_err(err, errno, "create", p);
			goto out;
		}
		close(fd);
	}
	if (created || top) {
		if ((rc = fsync_dir(s, dir, err)) < 0)
			goto out;
		if (top) {
			free(p);
			if (!(p = pathf("%s/..", dir))) {
				rc = nomem(err);
				goto out;
			}
			rc = fsync_dir(s, p, err);
		}
	}
out:
	free(p);
	return rc;
}

/* Remove what a crashed run of ours left in tmp/. Other programs' files
 * are left alone. */
static int clean_tmp(const char *dir, struct mf_err *err)
{
	char *tmp = pathf("%s/tmp", dir);
	if (!tmp)
		return nomem(err);
	int rc = 0;
	DIR *d = opendir(tmp);
	if (!d) {
		rc = sys_err(err, errno, "open directory", tmp);
		goto out;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || !strstr(de->d_name, TMP_MARK))
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT)
			mf_log(MF_LOG_WARN, "event=maildir_tmp_cleanup dir=%s file=%s error=%d",
			       tmp, de->d_name, errno);
	}
	closedir(d);
out:
	free(tmp);
	return rc;
}

/* Read the base names of the messages in cur/ and new/ into f->names. A
 * missing cur/ or new/ is an empty one when `absent_ok` (read-only: the
 * sink made neither). */
static int load_names(struct mdfolder *f, bool absent_ok, struct mf_err *err)
{
	static const char *const parts[] = {"cur", "new"};
	int rc = 0;
	for (size_t i = 0; i < 2 && rc == 0; i++) {
		char *p = pathf("%s/%s", f->dir, parts[i]);
		if (!p)
			return nomem(err);
		DIR *d = opendir(p);
		if (!d && errno == ENOENT && absent_ok) {
			free(p);
			continue;
		}
		if (!d) {
			rc = sys_err(err, errno, "open directory", p);
			free(p);
			break;
		}
		struct dirent *de;
		while ((de = readdir(d)) && rc == 0) {
			if (de->d_name[0] == '.')
				continue;
			if (set_add(&f->names, de->d_name, base_len(de->d_name)) < 0)
				rc = nomem(err);
		}
		closedir(d);
		free(p);
	}
	if (rc == 0)
		f->loaded = true;
	return rc;
}

/* Replace `path` by data[0..len) atomically: written to `tmp`, fsync'd,
 * renamed over it, its directory `dir` fsync'd. */
static int replace_file(const struct mdsink *s, const char *dir, const char *path, const char *tmp,
			const char *data, size_t len, struct mf_err *err)
{
	int rc = 0;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return sys_err(err, errno, "create", tmp);
	size_t off = 0;
	while (off < len && rc == 0) {
		ssize_t w = write(fd, data + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			rc = sys_err(err, errno, "write", tmp);
		else
			off += (size_t)w;
	}
	if (rc == 0 && s->cfg->fsync && fsync(fd) < 0)
		rc = sys_err(err, errno, "fsync", tmp);
	if (close(fd) < 0 && rc == 0)
		rc = sys_err(err, errno, "close", tmp);
	if (rc == 0 && rename(tmp, path) < 0)
		rc = sys_err(err, errno, "rename into place", path);
	if (rc < 0)
		unlink(tmp);
	else
		rc = fsync_dir(s, dir, err);
	return rc;
}

/* --- subscriptions ---------------------------------------------------------- */

static int subs_load(struct mdsink *s, struct mf_err *err)
{
	char *path = pathf("%s/subscriptions", s->mbdir), *data = NULL;
	size_t len = 0;
	int rc = 0;
	if (!path)
		return nomem(err);
	int r = mf_read_file(path, SUBS_MAX, &data, &len);
	if (r == -ENOENT) {
		if (mf_buf_addstr(&s->subs, "V\t2\n\n") < 0)
			rc = nomem(err);
	} else if (r < 0) {
		rc = sys_err(err, -r, "read", path);
	} else if (len < 5 || memcmp(data, "V\t2\n\n", 5) != 0) {
		/* A format we do not write: leave it as it is. */
		s->subs_foreign = true;
	} else if (mf_buf_add(&s->subs, data, len) < 0) {
		rc = nomem(err);
	} else {
		if (s->subs.len && s->subs.data[s->subs.len - 1] != '\n' &&
		    mf_buf_add(&s->subs, "\n", 1) < 0)
			rc = nomem(err);
		for (char *l = s->subs.data + 5; rc == 0 && *l;) {
			size_t n = strcspn(l, "\n");
			if (n && set_add(&s->subnames, l, n) < 0)
				rc = nomem(err);
			l += n + (l[n] == '\n');
		}
	}
	if (rc == 0)
		s->subs_loaded = true;
	free(data);
	free(path);
	return rc;
}

/* Subscribe the folder whose directory is `dirname` (".A.B" -> "A\tB"). */
static int subscribe(struct mdsink *s, const char *dirname, size_t dlen, struct mf_err *err)
{
	int rc = 0;
	char *name = NULL, *path = NULL, *tmp = NULL;
	if (!s->subs_loaded && (rc = subs_load(s, err)) < 0)
		return rc;
	if (s->subs_foreign || dlen < 2)
		return 0;
	if (!(name = strndup(dirname + 1, dlen - 1)))
		return nomem(err);
	for (char *c = name; *c; c++)
		if (*c == '.')
			*c = '\t';
	size_t nlen = dlen - 1;
	if (set_has(&s->subnames, name, nlen))
		goto out;
	if (set_add(&s->subnames, name, nlen) < 0 || mf_buf_add(&s->subs, name, nlen) < 0 ||
	    mf_buf_add(&s->subs, "\n", 1) < 0) {
		rc = nomem(err);
		goto out;
	}
	path = pathf("%s/subscriptions", s->mbdir);
	tmp = pathf("%s/subscriptions" TMP_MARK "%ld", s->mbdir, (long)getpid());
	if (!path || !tmp) {
		rc = nomem(err);
		goto out;
	}
	rc = replace_file(s, s->mbdir, path, tmp, s->subs.data, s->subs.len, err);
out:
	free(name);
	free(path);
	free(tmp);
	return rc;
}

/* A crash while rewriting the subscriptions file leaves its temp file. */
static void remove_stale_subs_tmp(const char *mbdir)
{
	DIR *d = opendir(mbdir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strncmp(de->d_name, "subscriptions" TMP_MARK,
			    strlen("subscriptions" TMP_MARK)) == 0)
			unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
}

/* --- driver ----------------------------------------------------------------- */

static const struct mf_conf_key md_keys[] = {
    {.name = "path",
     .required = true,
     .help = "root directory: one Maildir per target mailbox at <path>/<mailbox>/"},
    {.name = "archive_path",
     .required = false,
     .help = "root directory of the archive Maildirs: IsArchive rows go to "
	     "<archive_path>/<mailbox>/ (default <path>/../<basename of path>-archive)"},
    {.name = "fsync",
     .required = false,
     .help = "yes|no: fsync every message and directory change (default yes)"},
    {.name = NULL},
};

static void md_free_config(void *cfgv)
{
	struct mdcfg *c = cfgv;
	if (!c)
		return;
	free(c->root);
	free(c->archive_root);
	free(c);
}

static int md_configure(const struct mf_conf_section *sec, void **out, struct mf_err *err)
{
	struct mdcfg *c = calloc(1, sizeof(*c));
	int rc;
	*out = NULL;
	if (!c)
		return nomem(err);
	if ((rc = mf_conf_path(sec, "path", NULL, &c->root, err)) < 0)
		goto fail;
	if (!c->root) {
		rc = mf_conf_error(sec, "path", err, "required");
		goto fail;
	}
	if ((rc = mf_conf_path(sec, "archive_path", NULL, &c->archive_root, err)) < 0)
		goto fail;
	if (!c->archive_root && !(c->archive_root = pathf("%s-archive", c->root))) {
		rc = nomem(err);
		goto fail;
	}
	if (strcmp(c->archive_root, c->root) == 0) {
		rc = mf_conf_error(sec, "archive_path", err,
				   "must not be [sink] path: archives are kept apart from the "
				   "primary mailboxes");
		goto fail;
	}
	if ((rc = mf_conf_bool(sec, "fsync", true, &c->fsync, err)) < 0)
		goto fail;
	*out = c;
	return 0;
fail:
	md_free_config(c);
	return rc;
}

static void md_caps(const void *cfg, struct mf_sink_caps *caps)
{
	*caps = (struct mf_sink_caps){
	    .archive_rows = true, /* into the mailbox's archive Maildir */
	    .crlf = false,
	    .max_line = 0,
	    .max_message_bytes = 0,
	    .needs_message_id = false,
	    .needs_date = false,
	};
}

static void md_close(void *snkv)
{
	struct mdsink *s = snkv;
	if (!s)
		return;
	while (s->folders) {
		struct mdfolder *f = s->folders;
		s->folders = f->next;
		set_free(&f->names);
		for (size_t k = 0; k < MD_KEYWORDS; k++)
			free(f->kw[k]);
		free(f->dirname);
		free(f->dir);
		free(f);
	}
	mf_buf_free(&s->subs);
	set_free(&s->subnames);
	free(s->mbdir);
	free(s);
}

/* The mailbox's Maildir: <root>/<mailbox> (<archive root> for an IsArchive
 * row). Mailbox names are canonical (lower case); a Maildir that an older
 * version made with the manifest's spelling (another case) is found and
 * used, so that a mailbox is never split over two directories. Several
 * such spellings are refused (MF_EMAILBOX): they must be merged by hand.
 * *out is malloc'd. */
static int mailbox_dir(const struct mdcfg *c, const struct mf_unit *unit, char **out,
		       struct mf_err *err)
{
	const char *root = unit->to_archive ? c->archive_root : c->root;
	char *comp = NULL, *found = NULL;
	struct stat st;
	int rc = mf_maildir_mailbox_name(unit->mailbox, &comp, err);
	*out = NULL;
	if (rc < 0)
		return rc;
	if (!(*out = pathf("%s/%s", root, comp))) {
		free(comp);
		return nomem(err);
	}
	DIR *d = lstat(*out, &st) < 0 ? opendir(root) : NULL;
	for (struct dirent *e; d && (e = readdir(d));) {
		if (strcasecmp(e->d_name, comp) != 0)
			continue;
		if (found) {
			rc = mf_err_set(err, MF_EMAILBOX,
					"two Maildirs for mailbox %s: %s/%s and %s/%s (made by an "
					"older version from rows spelt differently): merge them",
					unit->mailbox, root, found, root, e->d_name);
			break;
		}
		if (!(found = strdup(e->d_name))) {
			rc = nomem(err);
			break;
		}
	}
	if (d)
		closedir(d);
	if (!rc && found) {
		free(*out);
		if (!(*out = pathf("%s/%s", root, found)))
			rc = nomem(err);
	}
	if (rc < 0) {
		free(*out);
		*out = NULL;
	}
	free(found);
	free(comp);
	return rc;
}

static int md_open(const void *cfgv, const struct mf_unit *unit, void **out, struct mf_err *err)
{
	const struct mdcfg *c = cfgv;
	struct mdsink *s = calloc(1, sizeof(*s));
	int rc;
	*out = NULL;
	if (!s)
		return nomem(err);
	s->cfg = c;
	const char *root = unit->to_archive ? c->archive_root : c->root;
	int r = mf_mkdirs(root);
	if (r < 0) {
		rc = sys_err(err, -r, "create directory", root);
		goto fail;
	}
	if ((rc = mailbox_dir(c, unit, &s->mbdir, err)) < 0)
		goto fail;
	if ((rc = make_maildir(s, s->mbdir, false, err)) < 0)
		goto fail;
	remove_stale_subs_tmp(s->mbdir);
	*out = s;
	return 0;
fail:
	md_close(s);
	return rc;
}

/* The mailbox's Maildir for verify and plan: looks only. No directory is
 * made and nothing removed (the stale-subscriptions clean-up of md_open is
 * for a writer). MF_ENOTFOUND when the Maildir does not exist. */
static int md_open_read(const void *cfgv, const struct mf_unit *unit, void **out,
			struct mf_err *err)
{
	const struct mdcfg *c = cfgv;
	struct mdsink *s = calloc(1, sizeof(*s));
	char *comp = NULL;
	struct stat st;
	int rc;
	*out = NULL;
	if (!s)
		return nomem(err);
	s->cfg = c;
	s->readonly = true;
	if ((rc = mf_maildir_mailbox_name(unit->mailbox, &comp, err)) < 0)
		goto fail;
	if (!(s->mbdir = pathf("%s/%s", c->root, comp))) {
		rc = nomem(err);
		goto fail;
	}
	if (stat(s->mbdir, &st) < 0) {
		rc = errno == ENOENT ? mf_err_set(err, MF_ENOTFOUND, "no Maildir %s", s->mbdir)
				     : sys_err(err, errno, "look at", s->mbdir);
		goto fail;
	}
	if (!S_ISDIR(st.st_mode)) {
		rc = mf_err_set(err, MF_EIO, "%s is not a directory", s->mbdir);
		goto fail;
	}
	free(comp);
	*out = s;
	return 0;
fail:
	free(comp);
	md_close(s);
	return rc;
}

/* Can the mailbox's Maildir be created or written? Looks only: the nearest
 * existing directory on the way must be writable. */
static int md_check(const void *cfgv, const struct mf_unit *unit, struct mf_err *err)
{
	const struct mdcfg *c = cfgv;
	char *dir = NULL;
	int rc = mailbox_dir(c, unit, &dir, err);
	if (rc < 0)
		return rc;
	for (;;) {
		if (access(dir, F_OK) == 0) {
			if (access(dir, W_OK | X_OK) < 0)
				rc = sys_err(err, errno, "write into", dir);
			break;
		}
		char *slash = strrchr(dir, '/');
		if (!slash || slash == dir) {
			rc = mf_err_set(err, MF_EIO, "no existing directory above %s", c->root);
			break;
		}
		*slash = '\0';
	}
	free(dir);
	return rc;
}

/* folder() of a read-only sink: the folder's directory must exist (its
 * parents need not be folders of their own); nothing is made, subscribed
 * or cleaned. Takes `dirname`. */
static int find_folder(struct mdsink *s, char *dirname, void **fh, struct mf_err *err)
{
	struct mdfolder *f = calloc(1, sizeof(*f));
	struct stat st;
	int rc;
	if (!f) {
		free(dirname);
		return nomem(err);
	}
	f->dirname = dirname;
	if (!(f->dir = *dirname ? pathf("%s/%s", s->mbdir, dirname) : strdup(s->mbdir))) {
		rc = nomem(err);
		goto fail;
	}
	if (stat(f->dir, &st) < 0) {
		rc = errno == ENOENT ? mf_err_set(err, MF_ENOTFOUND, "no folder %s", f->dir)
				     : sys_err(err, errno, "look at", f->dir);
		goto fail;
	}
	if (!S_ISDIR(st.st_mode)) {
		rc = mf_err_set(err, MF_EIO, "%s is not a directory", f->dir);
		goto fail;
	}
	f->next = s->folders;
	s->folders = f;
	*fh = f;
	return 0;
fail:
	free(f->dirname);
	free(f->dir);
	free(f);
	return rc;
}

static int md_folder(void *snkv, const struct mf_path *path, enum mf_role role, void **fh,
		     struct mf_err *err)
{
	struct mdsink *s = snkv;
	struct mdfolder *f = NULL;
	char *dirname = NULL, *p = NULL;
	int rc;
	*fh = NULL;
	if ((rc = mf_maildir_folder_name(path, role, &dirname, err)) < 0)
		return rc;
	for (struct mdfolder *g = s->folders; g; g = g->next) {
		if (strcmp(g->dirname, dirname) == 0) {
			free(dirname);
			*fh = g;
			return 0;
		}
	}
	if (s->readonly)
		return find_folder(s, dirname, fh, err);
	/* Parents first, as folders of their own (".A" for ".A.B"); ".INBOX"
	 * is the Maildir root itself. */
	for (size_t i = 1; dirname[0] && dirname[i]; i++) {
		if (dirname[i] != '.')
			continue;
		if (i == 6 && strncmp(dirname, ".INBOX", 6) == 0)
			continue;
		free(p);
		if (!(p = pathf("%s/%.*s", s->mbdir, (int)i, dirname))) {
			rc = nomem(err);
			goto fail;
		}
		if ((rc = make_maildir(s, p, true, err)) < 0 ||
		    (rc = subscribe(s, dirname, i, err)) < 0)
			goto fail;
	}
	if (!(f = calloc(1, sizeof(*f)))) {
		rc = nomem(err);
		goto fail;
	}
	f->dirname = dirname;
	dirname = NULL;
	if (!(f->dir = *f->dirname ? pathf("%s/%s", s->mbdir, f->dirname) : strdup(s->mbdir))) {
		rc = nomem(err);
		goto fail;
	}
	if ((rc = make_maildir(s, f->dir, *f->dirname != '\0', err)) < 0 ||
	    (rc = subscribe(s, f->dirname, strlen(f->dirname), err)) < 0 ||
	    (rc = clean_tmp(f->dir, err)) < 0)
		goto fail;
	f->next = s->folders;
	s->folders = f;
	*fh = f;
	free(p);
	return 0;
fail:
	if (f) {
		free(f->dirname);
		free(f->dir);
		free(f);
	}
	free(dirname);
	free(p);
	return rc;
}

/* --- keywords ---------------------------------------------------------------- */

/* Read the folder's dovecot-keywords (none yet is fine). */
static int kw_load(struct mdfolder *f, struct mf_err *err)
{
	char *path = pathf("%s/dovecot-keywords", f->dir), *data = NULL;
	size_t len = 0;
	if (!path)
		return nomem(err);
	int r = mf_read_file(path, 1 << 20, &data, &len);
	int rc = 0;
	if (r < 0 && r != -ENOENT)
		rc = sys_err(err, -r, "read", path);
	for (char *line = data, *nl; rc == 0 && line && line < data + len; line = nl + 1) {
		nl = memchr(line, '\n', (size_t)(data + len - line));
		if (!nl)
			nl = data + len;
		*nl = '\0';
		char *end;
		long i = strtol(line, &end, 10);
		if (end != line && *end == ' ' && end[1] && i >= 0 && i < MD_KEYWORDS && !f->kw[i] &&
		    !(f->kw[i] = strdup(end + 1)))
			rc = nomem(err);
	}
	free(data);
	free(path);
	f->kw_loaded = rc == 0;
	return rc;
}

/* The letters (a..z, ascending) naming the item's keywords in this folder,
 * into out; new keywords are added to dovecot-keywords first. Over 26 in a
 * folder, the rest are dropped (logged once per folder). */
static int kw_letters(struct mdsink *s, struct mdfolder *f, const char *kws, char out[MD_KEYWORDS + 1],
		      struct mf_err *err)
{
	bool used[MD_KEYWORDS] = {false}, added = false;
	int rc = 0;
	out[0] = '\0';
	if (!kws || !*kws)
		return 0;
	if (!f->kw_loaded && (rc = kw_load(f, err)) < 0)
		return rc;
	for (const char *p = kws; *p;) {
		size_t l = strcspn(p, " "), k, slot = MD_KEYWORDS;
		for (k = 0; l && k < MD_KEYWORDS; k++) {
			if (f->kw[k] && strlen(f->kw[k]) == l && strncmp(f->kw[k], p, l) == 0)
				break;
			if (!f->kw[k] && slot == MD_KEYWORDS)
				slot = k;
		}
		if (l && k == MD_KEYWORDS && slot < MD_KEYWORDS) {
			if (!(f->kw[slot] = strndup(p, l)))
				return nomem(err);
			k = slot;
			added = true;
		}
		if (l && k < MD_KEYWORDS)
			used[k] = true;
		else if (l && !f->kw_told) {
			f->kw_told = true;
			mf_log(MF_LOG_INFO,
			       "event=keywords_dropped dir=%s keyword=%.*s reason=\"a Maildir folder holds at most 26 keywords\"",
			       f->dir, (int)l, p);
		}
		p += l;
		p += *p == ' ';
	}
	if (added) {
		struct mf_buf text = {0};
		char *path = pathf("%s/dovecot-keywords", f->dir);
		char *tmp = pathf("%s/tmp/dovecot-keywords" TMP_MARK "%ld", f->dir, (long)getpid());
		for (size_t k = 0; k < MD_KEYWORDS && rc == 0; k++)
			if (f->kw[k] && mf_buf_printf(&text, "%zu %s\n", k, f->kw[k]) < 0)
				rc = nomem(err);
		if (rc == 0 && (!path || !tmp))
			rc = nomem(err);
		if (rc == 0)
			rc = replace_file(s, f->dir, path, tmp, text.data, text.len, err);
		mf_buf_free(&text);
		free(path);
		free(tmp);
		if (rc < 0)
			return rc;
	}
	size_t n = 0;
	for (size_t k = 0; k < MD_KEYWORDS; k++)
		if (used[k])
			out[n++] = (char)('a' + k);
	out[n] = '\0';
	return 0;
}

static int md_probe(void *snkv, void *fhv, const struct mf_item *item, char sink_id[MF_SINK_ID_MAX],
		    struct mf_err *err)
{
	struct mdsink *s = snkv;
	struct mdfolder *f = fhv;
	char base[MF_SINK_ID_MAX];
	int rc;
	if ((rc = check_idem(item, err)) < 0)
		return rc;
	if (!f->loaded && (rc = load_names(f, s->readonly, err)) < 0)
		return rc;
	mf_maildir_base_name(item->idate, item->idem, base, sizeof(base));
	if (!set_has(&f->names, base, strlen(base)))
		return 0;
	snprintf(sink_id, MF_SINK_ID_MAX, "%s", base);
	return 1;
}

static int write_all(int fd, const unsigned char *data, size_t len)
{
	size_t off = 0;
	while (off < len) {
		ssize_t w = write(fd, data + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		off += (size_t)w;
	}
	return 0;
}

static int md_store(void *snkv, void *fhv, const struct mf_item *item, char sink_id[MF_SINK_ID_MAX],
		    struct mf_err *err)
{
	struct mdsink *s = snkv;
	struct mdfolder *f = fhv;
	char base[MF_SINK_ID_MAX], info[8 + MD_KEYWORDS], letters[MD_KEYWORDS + 1];
	char *tmp = NULL, *dst = NULL, *cur = NULL;
	int fd = -1, rc;
	if (s->readonly)
		return mf_err_set(err, MF_EINTERNAL, "maildir: store on a sink opened read-only");
	if ((rc = check_idem(item, err)) < 0)
		return rc;
	if (!f->loaded && (rc = load_names(f, s->readonly, err)) < 0)
		return rc;
	mf_maildir_base_name(item->idate, item->idem, base, sizeof(base));
	size_t blen = strlen(base);
	if (set_has(&f->names, base, blen)) {
		/* Same idempotency key already here: storing it again would make a
		 * duplicate (its flags may differ after a user changed them). */
		snprintf(sink_id, MF_SINK_ID_MAX, "%s", base);
		return 0;
	}
	mf_maildir_flag_info(item->flags, info);
	if ((rc = kw_letters(s, f, item->keywords, letters, err)) < 0)
		return rc;
	size_t il = strlen(info);
	snprintf(info + il, sizeof(info) - il, "%s", letters); /* keywords after the flags */
	tmp = pathf("%s/tmp/%s.T%ld", f->dir, base, (long)getpid()); /* base ends .mailferry */
	dst = pathf("%s/cur/%s:%s", f->dir, base, info);
	cur = pathf("%s/cur", f->dir);
	if (!tmp || !dst || !cur) {
		rc = nomem(err);
		goto out;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST && unlink(tmp) == 0)
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = sys_err(err, errno, "create", tmp);
		goto out;
	}
	int e = -write_all(fd, item->data, item->len);
	if (e) {
		rc = sys_err(err, e, "write", tmp);
		goto fail;
	}
	if (item->idate > 0) {
		struct timespec ts[2] = {{.tv_sec = (time_t)item->idate},
					 {.tv_sec = (time_t)item->idate}};
		if (futimens(fd, ts) < 0) {
			rc = sys_err(err, errno, "set the time of", tmp);
			goto fail;
		}
	}
	if (s->cfg->fsync && fsync(fd) < 0) {
		rc = sys_err(err, errno, "fsync", tmp);
		goto fail;
	}
	e = close(fd) < 0 ? errno : 0;
	fd = -1;
	if (e) {
		rc = sys_err(err, e, "close", tmp);
		goto fail;
	}
	if (rename(tmp, dst) < 0) {
		rc = sys_err(err, errno, "rename into place", dst);
		goto fail;
	}
	if ((rc = fsync_dir(s, cur, err)) < 0)
		goto out; /* the file is in place; durability unknown */
	if (set_add(&f->names, base, blen) < 0) {
		rc = nomem(err);
		goto out;
	}
	snprintf(sink_id, MF_SINK_ID_MAX, "%s", base);
	goto out;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
out:
	free(tmp);
	free(dst);
	free(cur);
	return rc;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* SHA-256 of a file, as hex. */
static int hash_file(const char *path, unsigned char *buf, size_t bufsize,
		     char hex[2 * MF_SHA256_LEN + 1], struct mf_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return sys_err(err, errno, "open", path);
	struct sha256_ctx ctx;
	unsigned char sum[MF_SHA256_LEN];
	int rc = 0;
	sha256_init(&ctx);
	for (;;) {
		ssize_t n = read(fd, buf, bufsize);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = sys_err(err, errno, "read", path);
			break;
		}
		if (n == 0)
			break;
		sha256_update(&ctx, (size_t)n, buf);
	}
	close(fd);
	if (rc == 0) {
		sha256_digest(&ctx, MF_SHA256_LEN, sum);
		mf_hex(sum, MF_SHA256_LEN, hex);
	}
	return rc;
}

static int md_hashes(void *snkv, void *fhv, int (*cb)(void *arg, const char *hash_hex), void *arg,
		     struct mf_err *err)
{
	static const char *const parts[] = {"cur", "new"};
	struct mdsink *s = snkv;
	struct mdfolder *f = fhv;
	char **names = NULL;
	size_t n = 0, cap = 0;
	unsigned char *buf = NULL;
	int rc = 0;
	for (size_t i = 0; i < 2 && rc == 0; i++) {
		char *p = pathf("%s/%s", f->dir, parts[i]);
		if (!p) {
			rc = nomem(err);
			break;
		}
		DIR *d = opendir(p);
		if (!d && errno == ENOENT && s->readonly) {
			free(p); /* read-only: a folder without new/ has nothing in it */
			continue;
		}
		if (!d) {
			rc = sys_err(err, errno, "open directory", p);
			free(p);
			break;
		}
		struct dirent *de;
		while ((de = readdir(d)) && rc == 0) {
			if (de->d_name[0] == '.')
				continue;
			if (n == cap) {
				size_t ncap = cap ? cap * 2 : 64;
				char **g = realloc(names, ncap * sizeof(*names));
				if (!g) {
					rc = nomem(err);
					break;
				}
				names = g;
				cap = ncap;
			}
			if (!(names[n] = pathf("%s/%s", p, de->d_name)))
				rc = nomem(err);
			else
				n++;
		}
		closedir(d);
		free(p);
	}
	if (rc == 0 && n)
		qsort(names, n, sizeof(*names), cmp_str);
	if (rc == 0 && !(buf = malloc(65536)))
		rc = nomem(err);
	for (size_t i = 0; i < n && rc == 0; i++) {
		char hex[2 * MF_SHA256_LEN + 1];
		if ((rc = hash_file(names[i], buf, 65536, hex, err)) < 0)
			break;
		/* A negative answer stops the listing; the callback described it. */
		if ((rc = cb(arg, hex)) > 0)
			rc = 0;
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(buf);
	return rc;
}

const struct mf_sink_ops mf_sink_maildir = {
    .name = "maildir",
    .keys = md_keys,
    .dir_keys = (const char *const[]){"path", "archive_path", NULL},
    .configure = md_configure,
    .free_config = md_free_config,
    .caps = md_caps,
    .open = md_open,
    .open_read = md_open_read,
    .folder = md_folder,
    .probe = md_probe,
    .store = md_store,
    .hashes = md_hashes,
    .check = md_check,
    .close = md_close,
};
