/* test_pst_testdata.c - every PST/OST in $MF_SHARED/testdata/pst against
 * readpst: the mail items we convert must be at least as many as the .eml
 * files `readpst -e` writes, every item we fail must carry a reason, and the
 * truncated file must fail cleanly with MF_ECORRUPT.
 *
 * Skips (77) when ../shared or readpst is absent.
 */
#include <dirent.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/source.h"
#include "test.h"

extern const struct mf_source_ops mf_source_pst;

struct counts {
	void *src;
	const struct mf_folder *f;
	int mail_ok, mail_failed, unreasoned;
	int contact, appointment, task, note, dlist, journal, other;
	int internal; /* in Outlook-internal folders (Sync Issues ...): skipped by rule */
	char first_failure[256];
};

static int on_ref(void *arg, const struct mf_msgref *r)
{
	struct counts *c = arg;
	if (r->skip_kind) {
		const char *k = r->skip_kind;
		if (!strcmp(k, "contact"))
			c->contact++;
		else if (!strcmp(k, "appointment"))
			c->appointment++;
		else if (!strcmp(k, "task"))
			c->task++;
		else if (!strcmp(k, "note"))
			c->note++;
		else if (!strcmp(k, "distribution-list"))
			c->dlist++;
		else if (!strcmp(k, "journal"))
			c->journal++;
		else if (!strcmp(k, "pst-internal-folder"))
			c->internal++;
		else
			c->other++;
		return 0;
	}
	struct mf_msg m = { 0 };
	struct mf_err err = { 0 };
	int rc = mf_source_pst.fetch(c->src, c->f, r, &m, &err);
	if (rc == 0 && m.len > 0) {
		c->mail_ok++;
	} else {
		c->mail_failed++;
		if (!err.msg[0])
			c->unreasoned++;
		else if (!c->first_failure[0])
			snprintf(c->first_failure, sizeof(c->first_failure), "%s: %s", r->key, err.msg);
	}
	mf_msg_clear(&m);
	return 0;
}

static int eml_count;

static int count_eml(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	size_t n = strlen(path);
	if (flag == FTW_F && n > 4 && !strcmp(path + n - 4, ".eml"))
		eml_count++;
	return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Number of .eml files readpst -e writes for `file`, -1 on failure. */
static int readpst_count(const char *file, const char *outdir)
{
	nftw(outdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	if (mkdir(outdir, 0700) != 0)
		return -1;
	if (strchr(file, '\'') || strchr(outdir, '\''))
		return -1;
	char cmd[4096];
	snprintf(cmd, sizeof(cmd), "readpst -q -e -o '%s' '%s' >/dev/null 2>&1", outdir, file);
	int rc = system(cmd);
	eml_count = 0;
	nftw(outdir, count_eml, 16, FTW_PHYS);
	nftw(outdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	/* readpst exits non-zero on files it cannot open: that is 0 .eml */
	(void)rc;
	return eml_count;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void)
{
	const char *shared = getenv("MF_SHARED");
	const char *tmp = getenv("MF_TMP");
	char dir[1024];
	snprintf(dir, sizeof(dir), "%s/testdata/pst", shared ? shared : "");
	DIR *d = shared ? opendir(dir) : NULL;
	if (!d) {
		printf("SKIP: %s not found (MF_SHARED testdata absent)\n", dir);
		return 77;
	}
	if (system("readpst -V >/dev/null 2>&1") != 0) {
		closedir(d);
		printf("SKIP: readpst not installed (apt-get install pst-utils)\n");
		return 77;
	}
	char *names[256];
	size_t nn = 0;
	struct dirent *e;
	while ((e = readdir(d)) && nn < 256) {
		size_t l = strlen(e->d_name);
		if (l > 4 && (!strcasecmp(e->d_name + l - 4, ".pst") ||
			      !strcasecmp(e->d_name + l - 4, ".ost")))
			names[nn++] = strdup(e->d_name);
	}
	closedir(d);
	qsort(names, nn, sizeof(names[0]), cmp_str);
	char outdir[1024];
	snprintf(outdir, sizeof(outdir), "%s/pst-testdata-readpst", tmp ? tmp : "/tmp");
	if (tmp)
		mkdir(tmp, 0700);

	struct mf_conf_kv kv = { "root", dir, 1 };
	struct mf_conf_section sec = { .file = "test.ini", .dir = "/", .name = "source", .n = 1,
				       .kv = &kv };
	void *cfg = NULL;
	struct mf_err err = { 0 };
	if (mf_source_pst.configure(&sec, &cfg, &err) != 0) {
		fprintf(stderr, "configure: %s\n", err.msg);
		return 1;
	}
	test_current = "pst_testdata";
	printf("%-44s %7s %7s %6s %7s  %s\n", "file", "readpst", "ours", "failed", "folders",
	       "not mail (contact/appt/task/note/dlist/journal/other)");
	int total_ours = 0, total_rp = 0;
	for (size_t i = 0; i < nn; i++) {
		char path[2048];
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		int rp = readpst_count(path, outdir);
		CHECK(rp >= 0);
		struct mf_unit u = { .pst_path = path, .line = (int)i + 1 };
		void *src = NULL;
		memset(&err, 0, sizeof(err));
		int rc = mf_source_pst.open(cfg, &u, &src, &err);
		if (rc != 0) {
			printf("%-44s %7d %7s %6s %7s  open failed: %s (%s)\n", names[i], rp, "-", "-",
			       "-", err.msg, mf_err_name(rc));
			/* only the deliberately damaged file may fail, and
			 * only as corrupt */
			CHECK(strstr(names[i], "truncated") != NULL);
			CHECK_INT(rc, MF_ECORRUPT);
			CHECK(err.msg[0] != '\0');
			CHECK_INT(rp, 0);
			continue;
		}
		CHECK(strstr(names[i], "truncated") == NULL);
		const struct mf_folder *fs = NULL;
		size_t nf = 0;
		struct counts c = { .src = src };
		rc = mf_source_pst.folders(src, &fs, &nf, &err);
		CHECK_INT(rc, 0);
		for (size_t k = 0; rc == 0 && k < nf; k++) {
			char *next = NULL;
			c.f = &fs[k];
			CHECK_INT(mf_source_pst.list(src, &fs[k], NULL, on_ref, &c, &next, &err), 0);
			free(next);
		}
		mf_source_pst.close(src);
		printf("%-44s %7d %7d %6d %7zu  %d/%d/%d/%d/%d/%d/%d\n", names[i], rp, c.mail_ok,
		       c.mail_failed, nf, c.contact, c.appointment, c.task, c.note, c.dlist,
		       c.journal, c.other);
		if (c.first_failure[0])
			printf("    first failure: %s\n", c.first_failure);
		if (c.internal)
			printf("    %d items in Outlook-internal folders (skipped by rule)\n", c.internal);
		/* readpst also writes Outlook's own items (an OST's sync logs) */
		CHECK(c.mail_ok + c.internal >= rp);
		CHECK_INT(c.unreasoned, 0);
		total_ours += c.mail_ok;
		total_rp += rp;
	}
	printf("%-44s %7d %7d\n", "TOTAL", total_rp, total_ours);
	for (size_t i = 0; i < nn; i++)
		free(names[i]);
	mf_source_pst.free_config(cfg);
	if (test_failed_checks)
		test_failed++;
	else
		test_passed++;
	return test_done();
}
