/* test_pst.c - the PST source on small real PSTs in tests/data/pst.
 *
 * Expected values were read independently with readpst 0.6.76 and
 * pffexport (libpff): folder names, mail counts per folder, subjects and
 * attachment names.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/source.h"
#include "engine/normalize/mimeenc.h"
#include "engine/normalize/rtf.h"
#include "sources/pst/pst_internal.h"
#include "test.h"

extern const struct mf_source_ops mf_source_pst;

static char datadir[1024];
static void *cfg;

static const char *data(const char *name)
{
	static _Thread_local char p[2048]; /* the thread test calls it from two threads */
	snprintf(p, sizeof(p), "%s/%s", datadir, name);
	return p;
}

static int open_pst(const char *path, void **src, struct mf_err *err)
{
	struct mf_unit u = { .pst_path = (char *)path, .line = 1 };
	return mf_source_pst.open(cfg, &u, src, err);
}

/* ---- collecting a folder's listing ------------------------------------- */

#define MAXREFS 256

struct listing {
	int n, mail, contact, appointment, other;
	char keys[MAXREFS][24];
	const char *kind[MAXREFS];
	unsigned flags[MAXREFS];
	int64_t idate[MAXREFS];
};

static int collect(void *arg, const struct mf_msgref *r)
{
	struct listing *l = arg;
	if (l->n >= MAXREFS)
		return MF_EINTERNAL;
	snprintf(l->keys[l->n], sizeof(l->keys[0]), "%s", r->key);
	l->kind[l->n] = r->skip_kind;
	l->flags[l->n] = r->flags;
	l->idate[l->n] = r->idate;
	l->n++;
	if (!r->skip_kind)
		l->mail++;
	else if (!strcmp(r->skip_kind, "contact"))
		l->contact++;
	else if (!strcmp(r->skip_kind, "appointment"))
		l->appointment++;
	else
		l->other++;
	return 0;
}

static const struct mf_folder *find_folder(const struct mf_folder *fs, size_t n, const char *path)
{
	for (size_t i = 0; i < n; i++) {
		char *j = mf_path_join(&fs[i].path, "/");
		int eq = j && !strcmp(j, path);
		free(j);
		if (eq)
			return &fs[i];
	}
	return NULL;
}

static int list_folder(void *src, const struct mf_folder *f, struct listing *l)
{
	struct mf_err err = { 0 };
	char *next = NULL;
	memset(l, 0, sizeof(*l));
	int rc = mf_source_pst.list(src, f, NULL, collect, l, &next, &err);
	free(next);
	return rc;
}

static int fetch_key(void *src, const struct mf_folder *f, const char *key, struct mf_msg *m,
		     struct mf_err *err)
{
	struct mf_msgref ref = { .key = key };
	memset(m, 0, sizeof(*m));
	return mf_source_pst.fetch(src, f, &ref, m, err);
}

static int contains(const struct mf_msg *m, const char *s)
{
	return memmem(m->data, m->len, s, strlen(s)) != NULL;
}

static int crlf_only(const struct mf_msg *m)
{
	for (size_t i = 0; i < m->len; i++) {
		if (m->data[i] == '\n' && (i == 0 || m->data[i - 1] != '\r'))
			return 0;
		if (m->data[i] == '\r' && (i + 1 >= m->len || m->data[i + 1] != '\n'))
			return 0;
	}
	return 1;
}

/* ---- tests ------------------------------------------------------------- */

TEST(configure_needs_only_root)
{
	struct mf_conf_kv kv[2] = { { "root", "pst", 3 }, { "codepage", "cp1251", 4 } };
	struct mf_conf_section sec = { .file = "job.ini", .dir = "/tmp", .name = "source",
				       .n = 1, .kv = kv };
	void *c = NULL;
	struct mf_err err = { 0 };
	CHECK_INT(mf_source_pst.configure(&sec, &c, &err), 0);
	mf_source_pst.free_config(c);
	sec.n = 2;
	c = NULL;
	CHECK_INT(mf_source_pst.configure(&sec, &c, &err), 0);
	mf_source_pst.free_config(c);
	kv[1].value = "klingon";
	c = NULL;
	CHECK_INT(mf_source_pst.configure(&sec, &c, &err), MF_ECONFIG);
	CHECK(strstr(err.msg, "codepage") != NULL);
	mf_source_pst.free_config(c);
	int has_root = 0;
	for (const struct mf_conf_key *k = mf_source_pst.keys; k->name; k++) {
		if (!strcmp(k->name, "root"))
			has_root = k->required;
		CHECK(k->help && k->help[0]);
	}
	CHECK(has_root);
}

TEST(outlook_folders_and_counts)
{
	void *src = NULL;
	struct mf_err err = { 0 };
	CHECK_INT(open_pst(data("aspnet_Outlook_1.pst"), &src, &err), 0);
	if (!src)
		return;
	const struct mf_folder *fs;
	size_t n = 0;
	CHECK_INT(mf_source_pst.folders(src, &fs, &n, &err), 0);
	/* pffexport: 12 folders under Top of Personal Folders, SubInbox
	 * inside Inbox */
	static const char *const names[] = { "Deleted Items", "Inbox", "Inbox/SubInbox", "Outbox",
					      "Sent Items", "Calendar", "Contacts", "Journal",
					      "Notes", "Tasks", "Drafts", "RSS Feeds", "Junk E-mail" };
	CHECK_INT(n, sizeof(names) / sizeof(names[0]));
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!find_folder(fs, n, names[i])) {
			fprintf(stderr, "missing folder %s\n", names[i]);
			CHECK(0);
		}
	}
	const struct mf_folder *inbox = find_folder(fs, n, "Inbox");
	const struct mf_folder *sent = find_folder(fs, n, "Sent Items");
	const struct mf_folder *cal = find_folder(fs, n, "Calendar");
	const struct mf_folder *con = find_folder(fs, n, "Contacts");
	if (!inbox || !sent || !cal || !con)
		goto out;
	CHECK_INT(inbox->role, MF_ROLE_INBOX);
	CHECK_INT(sent->role, MF_ROLE_SENT);
	CHECK_INT(find_folder(fs, n, "Deleted Items")->role, MF_ROLE_TRASH);
	CHECK_INT(find_folder(fs, n, "Drafts")->role, MF_ROLE_DRAFTS);
	CHECK_INT(find_folder(fs, n, "Junk E-mail")->role, MF_ROLE_JUNK);
	CHECK_INT(find_folder(fs, n, "Inbox/SubInbox")->role, MF_ROLE_NONE);
	/* the container class says which folders are not mail: never made
	 * empty in the target (RSS Feeds, IPF.Note.OutlookHomepage, is mail) */
	static const char *const not_mail[] = { "Calendar", "Contacts", "Journal", "Notes", "Tasks" };
	for (size_t i = 0; i < n; i++) {
		char *j = mf_path_join(&fs[i].path, "/");
		bool want = false;
		for (size_t k = 0; j && k < sizeof(not_mail) / sizeof(not_mail[0]); k++)
			want = want || !strcmp(j, not_mail[k]);
		if (fs[i].not_mail != want) {
			fprintf(stderr, "folder %s: not_mail %d, want %d\n", j ? j : "?", fs[i].not_mail, want);
			CHECK(0);
		}
		free(j);
	}

	/* readpst -e writes 8 .eml for Inbox and 6 for Sent Items */
	struct listing l;
	CHECK_INT(list_folder(src, inbox, &l), 0);
	CHECK_INT(l.mail, 8);
	CHECK_INT(l.n, 8);
	for (int i = 1; i < l.n; i++)
		CHECK(strtoull(l.keys[i - 1], NULL, 10) < strtoull(l.keys[i], NULL, 10));
	CHECK_INT(list_folder(src, sent, &l), 0);
	CHECK_INT(l.mail, 6);
	/* one appointment and one contact (pffexport) */
	CHECK_INT(list_folder(src, cal, &l), 0);
	CHECK_INT(l.n, 1);
	CHECK_INT(l.appointment, 1);
	CHECK_INT(list_folder(src, con, &l), 0);
	CHECK_INT(l.n, 1);
	CHECK_INT(l.contact, 1);
	/* a non-mail item is refused by fetch with a reason */
	struct mf_msg m;
	CHECK_INT(fetch_key(src, con, l.keys[0], &m, &err), MF_EMSG);
	CHECK(strstr(err.msg, "contact") != NULL);
	CHECK_INT(fetch_key(src, con, "12345", &m, &err), MF_EMSG);
	CHECK_INT(fetch_key(src, con, "x1", &m, &err), MF_EMSG);
out:
	mf_source_pst.close(src);
}

TEST(outlook_fetch_attachments_embedded_determinism)
{
	void *src = NULL;
	struct mf_err err = { 0 };
	CHECK_INT(open_pst(data("aspnet_Outlook_1.pst"), &src, &err), 0);
	if (!src)
		return;
	const struct mf_folder *fs;
	size_t n = 0;
	CHECK_INT(mf_source_pst.folders(src, &fs, &n, &err), 0);
	const struct mf_folder *inbox = find_folder(fs, n, "Inbox");
	struct listing l;
	int found_multi = 0, found_embedded = 0, fetched = 0;
	if (!inbox || list_folder(src, inbox, &l) != 0)
		goto out;
	for (int i = 0; i < l.n; i++) {
		struct mf_msg a, b;
		if (fetch_key(src, inbox, l.keys[i], &a, &err) != 0) {
			fprintf(stderr, "fetch %s: %s\n", l.keys[i], err.msg);
			CHECK(0);
			continue;
		}
		fetched++;
		CHECK(crlf_only(&a));
		CHECK(contains(&a, "MIME-Version: 1.0\r\n"));
		CHECK(a.idate > 0);
		CHECK(a.idate == l.idate[i]);
		CHECK_INT(fetch_key(src, inbox, l.keys[i], &b, &err), 0);
		CHECK(a.len == b.len && !memcmp(a.data, b.data, a.len));
		if (contains(&a, "Subject: Multiple attachments")) {
			found_multi++;
			CHECK(contains(&a, "filename=\"text file.txt\""));
			CHECK(contains(&a, "filename=\"Sunset.jpg\""));
			CHECK(contains(&a, "filename=\"Blue hills.jpg\""));
			CHECK(contains(&a, "Content-Type: image/jpeg"));
			CHECK(contains(&a, "Content-Transfer-Encoding: base64"));
		}
		if (contains(&a, "Subject: this message contains embedded MSG")) {
			found_embedded++;
			CHECK(contains(&a, "Content-Type: message/rfc822"));
		}
		/* base64 lines are at most 76 characters */
		const char *p = (const char *)a.data, *e = p + a.len;
		size_t maxline = 0;
		while (p < e) {
			const char *nl = memchr(p, '\n', (size_t)(e - p));
			size_t ll = nl ? (size_t)(nl - p) : (size_t)(e - p);
			if (ll > maxline)
				maxline = ll;
			p = nl ? nl + 1 : e;
		}
		CHECK(maxline <= 998);
		mf_msg_clear(&a);
		mf_msg_clear(&b);
	}
	CHECK_INT(fetched, 8);
	CHECK_INT(found_multi, 1);
	CHECK_INT(found_embedded, 1);
out:
	mf_source_pst.close(src);
}

TEST(validity_follows_content_not_path)
{
	const char *tmp = getenv("MF_TMP");
	char copy[1024];
	snprintf(copy, sizeof(copy), "%s/pst-copy-%d.pst", tmp ? tmp : "/tmp", (int)getpid());
	if (tmp)
		mkdir(tmp, 0700);
	char *bytes = NULL;
	size_t len = 0;
	CHECK_INT(mf_read_file(data("docfetcher_test.pst"), 1 << 24, &bytes, &len), 0);
	FILE *fp = fopen(copy, "wb");
	CHECK(fp != NULL);
	if (!fp || !bytes) {
		free(bytes);
		return;
	}
	CHECK_INT(fwrite(bytes, 1, len, fp), len);
	fclose(fp);
	free(bytes);

	void *a = NULL, *b = NULL, *c = NULL;
	struct mf_err err = { 0 };
	CHECK_INT(open_pst(data("docfetcher_test.pst"), &a, &err), 0);
	CHECK_INT(open_pst(copy, &b, &err), 0);
	CHECK_INT(open_pst(data("rubymsg_attachAndInline.pst"), &c, &err), 0);
	if (a && b && c) {
		const struct mf_folder *fa, *fb, *fc;
		size_t na, nb, nc;
		CHECK_INT(mf_source_pst.folders(a, &fa, &na, &err), 0);
		CHECK_INT(mf_source_pst.folders(b, &fb, &nb, &err), 0);
		CHECK_INT(mf_source_pst.folders(c, &fc, &nc, &err), 0);
		CHECK_INT(na, nb);
		for (size_t i = 0; i < na && i < nb; i++)
			CHECK_STR(fa[i].validity, fb[i].validity);
		/* both PSTs have a "Deleted Items" folder with node id 0x8062,
		 * yet their validity differs */
		const struct mf_folder *da = NULL, *dc = NULL;
		for (size_t i = 0; i < na; i++)
			if (fa[i].role == MF_ROLE_TRASH)
				da = &fa[i];
		for (size_t i = 0; i < nc; i++)
			if (fc[i].role == MF_ROLE_TRASH)
				dc = &fc[i];
		CHECK(da && dc && strcmp(da->validity, dc->validity) != 0);
	}
	mf_source_pst.close(a);
	mf_source_pst.close(b);
	mf_source_pst.close(c);
	remove(copy);
}

TEST(docfetcher_non_ascii_folder_and_pdf)
{
	void *src = NULL;
	struct mf_err err = { 0 };
	CHECK_INT(open_pst(data("docfetcher_test.pst"), &src, &err), 0);
	if (!src)
		return;
	const struct mf_folder *fs;
	size_t n = 0;
	CHECK_INT(mf_source_pst.folders(src, &fs, &n, &err), 0);
	/* readpst: "Gelöschte Objekte" and "Test" (UTF-8) */
	const struct mf_folder *del = find_folder(fs, n, "Gel\xc3\xb6schte Objekte");
	const struct mf_folder *test = find_folder(fs, n, "Test");
	CHECK(del != NULL);
	CHECK(test != NULL);
	if (del)
		CHECK_INT(del->role, MF_ROLE_TRASH);
	struct listing l;
	if (test && list_folder(src, test, &l) == 0) {
		CHECK_INT(l.mail, 1);
		CHECK(l.flags[0] & MF_FLAG_SEEN);
		struct mf_msg m;
		if (l.n == 1 && fetch_key(src, test, l.keys[0], &m, &err) == 0) {
			CHECK(contains(&m, "Subject: Subject1\r\n"));
			CHECK(contains(&m, "Content-Type: application/pdf"));
			CHECK(contains(&m, "filename=\"test.pdf\""));
			/* base64 of "%PDF-1.4" */
			CHECK(contains(&m, "\r\n\r\nJVBERi0xLjQK"));
			CHECK(crlf_only(&m));
			mf_msg_clear(&m);
		} else {
			CHECK(0);
		}
	}
	mf_source_pst.close(src);
}

TEST(inline_image_gets_related_and_content_id)
{
	void *src = NULL;
	struct mf_err err = { 0 };
	CHECK_INT(open_pst(data("rubymsg_attachAndInline.pst"), &src, &err), 0);
	if (!src)
		return;
	const struct mf_folder *fs;
	size_t n = 0;
	CHECK_INT(mf_source_pst.folders(src, &fs, &n, &err), 0);
	/* the mail sits right under the IPM root: it goes where the root
	 * goes (the folder with the empty path, the Inbox with "/"), not into
	 * a folder named as the (Japanese) root is named */
	const struct mf_folder *top = find_folder(fs, n, "");
	CHECK(top != NULL);
	CHECK(top && top->role == MF_ROLE_INBOX && !top->not_mail);
	CHECK(find_folder(fs, n,
		"Outlook \xe3\x83\x87\xe3\x83\xbc\xe3\x82\xbf \xe3\x83\x95\xe3\x82\xa1\xe3\x82\xa4\xe3\x83\xab"
		"\xe3\x81\xae\xe3\x83\x88\xe3\x83\x83\xe3\x83\x97") == NULL);
	struct listing l;
	if (top && list_folder(src, top, &l) == 0 && l.n == 1) {
		struct mf_msg m;
		CHECK_INT(fetch_key(src, top, l.keys[0], &m, &err), 0);
		CHECK(contains(&m, "Subject: Attach and inline\r\n"));
		CHECK(contains(&m, "Content-Type: multipart/related;"));
		CHECK(contains(&m, "Content-ID: <image001.png@01D78380.EF6DC500>"));
		CHECK(contains(&m, "Content-Disposition: inline;\r\n\tfilename=\"image001.png\""));
		CHECK(contains(&m, "Content-Disposition: attachment;\r\n\tfilename=\"attach.png\""));
		/* the PST has no mime tag for attach.png: guessed */
		CHECK(contains(&m, "Content-Type: image/png;\r\n\tname=\"attach.png\""));
		mf_msg_clear(&m);
	} else {
		CHECK(0);
	}
	mf_source_pst.close(src);
}

TEST(bad_files_fail_cleanly)
{
	void *src = NULL;
	struct mf_err err = { 0 };
	/* 40 bytes of a real PST header (pstreader's truncated-in-header) */
	CHECK_INT(open_pst(data("pstreader_truncated-in-header.pst"), &src, &err), MF_ECORRUPT);
	CHECK(strstr(err.msg, "truncated") != NULL);
	CHECK(src == NULL);

	/* a real PST cut after 64 KiB */
	const char *tmp = getenv("MF_TMP");
	char cut[1024], junk[1024];
	if (tmp)
		mkdir(tmp, 0700);
	snprintf(cut, sizeof(cut), "%s/pst-cut-%d.pst", tmp ? tmp : "/tmp", (int)getpid());
	snprintf(junk, sizeof(junk), "%s/pst-junk-%d.pst", tmp ? tmp : "/tmp", (int)getpid());
	char *bytes = NULL;
	size_t len = 0;
	CHECK_INT(mf_read_file(data("docfetcher_test.pst"), 1 << 24, &bytes, &len), 0);
	FILE *fp = fopen(cut, "wb");
	if (fp && bytes) {
		fwrite(bytes, 1, 65536, fp);
		fclose(fp);
		memset(&err, 0, sizeof(err));
		CHECK_INT(open_pst(cut, &src, &err), MF_ECORRUPT);
		CHECK(strstr(err.msg, "truncated") != NULL);
	}
	free(bytes);
	fp = fopen(junk, "wb");
	if (fp) {
		fputs("From: someone\r\n\r\nnot a PST at all\r\n", fp);
		fclose(fp);
		CHECK_INT(open_pst(junk, &src, &err), MF_ECORRUPT);
		CHECK(strstr(err.msg, "not a PST") != NULL);
	}
	CHECK_INT(open_pst("/nonexistent/nothing.pst", &src, &err), MF_ENOTFOUND);
	remove(cut);
	remove(junk);
}

/* libpst's shared UTF-16 converter is destroyed by pst_close(): closing one
 * PST must not break another that is still open, and two threads reading
 * two PSTs must get the same bytes as one thread reading them in turn. */
static uint64_t digest_all(void *src)
{
	const struct mf_folder *fs;
	size_t n = 0;
	struct mf_err err = { 0 };
	uint64_t h = 1469598103934665603ULL;
	if (mf_source_pst.folders(src, &fs, &n, &err) != 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		struct listing *l = calloc(1, sizeof(*l));
		if (!l || list_folder(src, &fs[i], l) != 0) {
			free(l);
			return 0;
		}
		for (int k = 0; k < l->n; k++) {
			struct mf_msg m;
			if (l->kind[k] || fetch_key(src, &fs[i], l->keys[k], &m, &err) != 0)
				continue;
			for (size_t j = 0; j < m.len; j++)
				h = (h ^ m.data[j]) * 1099511628211ULL;
			mf_msg_clear(&m);
		}
		free(l);
	}
	return h;
}

struct job {
	const char *file;
	uint64_t digest;
};

static void *run_job(void *arg)
{
	struct job *j = arg;
	for (int round = 0; round < 3; round++) {
		void *src = NULL;
		struct mf_err err = { 0 };
		if (open_pst(data(j->file), &src, &err) != 0)
			return NULL;
		uint64_t h = digest_all(src);
		mf_source_pst.close(src);
		if (round == 0)
			j->digest = h;
		else if (h != j->digest)
			j->digest = 0;
	}
	return NULL;
}

TEST(independent_sources_and_threads)
{
	void *a = NULL, *b = NULL;
	struct mf_err err = { 0 };
	CHECK_INT(open_pst(data("aspnet_Outlook_1.pst"), &a, &err), 0);
	CHECK_INT(open_pst(data("rubymsg_attachAndInline.pst"), &b, &err), 0);
	if (!a || !b) {
		mf_source_pst.close(a);
		mf_source_pst.close(b);
		return;
	}
	uint64_t before = digest_all(a);
	mf_source_pst.close(b);
	CHECK(before != 0);
	CHECK(digest_all(a) == before);
	mf_source_pst.close(a);

	struct job j1 = { "aspnet_Outlook_1.pst", 0 }, j2 = { "docfetcher_test.pst", 0 };
	uint64_t seq1, seq2;
	run_job(&j1);
	run_job(&j2);
	seq1 = j1.digest;
	seq2 = j2.digest;
	CHECK(seq1 != 0 && seq2 != 0 && seq1 == before);
	pthread_t t1, t2;
	j1.digest = j2.digest = 0;
	CHECK_INT(pthread_create(&t1, NULL, run_job, &j1), 0);
	CHECK_INT(pthread_create(&t2, NULL, run_job, &j2), 0);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	CHECK(j1.digest == seq1);
	CHECK(j2.digest == seq2);
}

/* ---- helpers of pst_text.c --------------------------------------------- */

TEST(header_encodings)
{
	struct mf_buf b = { 0 };
	CHECK_INT(pst_hdr_text(&b, "Gr\xc3\xbc\xc3\x9f" "e aus K\xc3\xb6ln", 9), 0);
	CHECK_STR(b.data, "=?UTF-8?B?R3LDvMOfZSBhdXMgS8O2bG4=?=");
	mf_buf_free(&b);
	CHECK_INT(pst_hdr_text(&b, "plain\r\nsubject", 9), 0);
	CHECK_STR(b.data, "plain subject");
	mf_buf_free(&b);
	CHECK_INT(pst_hdr_param(&b, "filename", "r\xc3\xa9sum\xc3\xa9 2024.pdf"), 0);
	CHECK_STR(b.data, ";\r\n\tfilename*=utf-8''r%C3%A9sum%C3%A9%202024.pdf");
	mf_buf_free(&b);
	CHECK_INT(pst_hdr_phrase(&b, "Doe, \"J\""), 0);
	CHECK_STR(b.data, "\"Doe, \\\"J\\\"\"");
	mf_buf_free(&b);
	char d[64];
	mf_mime_date(1301760816, d, sizeof(d));
	CHECK_STR(d, "Sat, 02 Apr 2011 16:13:36 +0000");
}

TEST(transfer_encodings)
{
	struct mf_buf b = { 0 };
	unsigned char bin[100];
	for (int i = 0; i < 100; i++)
		bin[i] = (unsigned char)(i * 7);
	CHECK_INT(pst_b64_append(&b, bin, sizeof(bin)), 0);
	/* 100 bytes -> 136 characters: one line of 76, one of 60 */
	CHECK_INT(b.len, 76 + 2 + 60 + 2);
	CHECK(b.data[76] == '\r' && b.data[77] == '\n');
	mf_buf_free(&b);
	CHECK_INT(pst_qp_append(&b, (const unsigned char *)"caf\xc3\xa9 = ok \nline2", 17), 0);
	CHECK_STR(b.data, "caf=C3=A9 =3D ok=20\r\nline2\r\n");
	mf_buf_free(&b);
	CHECK(pst_is_7bit((const unsigned char *)"a\r\nb\n", 5));
	CHECK(!pst_is_7bit((const unsigned char *)"a\rb", 3));
	CHECK(!pst_is_7bit((const unsigned char *)"\xe9", 1));
}

TEST(rtf_html_deencapsulation)
{
	const char *rtf = "{\\rtf1\\ansi\\ansicpg1252\\fromhtml1 \\deff0{\\fonttbl{\\f0 Arial;}}"
			  "{\\*\\htmltag19 <html>}{\\*\\htmltag50 <body>}\\htmlrtf {\\htmlrtf0 "
			  "Caf\\'e9 \\{x\\}\\par{\\*\\htmltag84 <br>}\\u8364?"
			  "\\htmlrtf }\\htmlrtf0 {\\*\\htmltag58 </body>}{\\*\\htmltag27 </html>}}";
	CHECK(mf_rtf_is_html((const unsigned char *)rtf, strlen(rtf)));
	struct mf_buf b = { 0 };
	CHECK_INT(pst_rtf_to_html(rtf, strlen(rtf), &b), 0);
	CHECK_STR(b.data, "<html><body>Caf\xc3\xa9 {x}\r\n<br>\xe2\x82\xac</body></html>");
	mf_buf_free(&b);
	CHECK(!mf_rtf_is_html((const unsigned char *)"{\\rtf1\\ansi hello}", 18));
	/* damaged compressed RTF is refused, never read past its end */
	char *out = NULL;
	size_t outlen = 0;
	struct mf_err err = { 0 };
	const unsigned char junk[20] = { 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 0x7f,
					 'L', 'Z', 'F', 'u' };
	CHECK_INT(pst_rtf_decompress(junk, sizeof(junk), &out, &outlen, &err), MF_EMSG);
	CHECK_INT(pst_rtf_decompress(junk, 8, &out, &outlen, &err), MF_EMSG);
	CHECK(out == NULL);
}

TEST(role_names)
{
	CHECK_INT(pst_role_from_name("Posteingang"), MF_ROLE_INBOX);
	CHECK_INT(pst_role_from_name("Bo\xc3\xaete de r\xc3\xa9" "ception"), MF_ROLE_INBOX);
	CHECK_INT(pst_role_from_name("Caixa de Entrada"), MF_ROLE_INBOX);
	CHECK_INT(pst_role_from_name("Bandeja de entrada"), MF_ROLE_INBOX);
	CHECK_INT(pst_role_from_name("\xd0\x92\xd1\x85\xd0\xbe\xd0\xb4\xd1\x8f\xd1\x89\xd0\xb8\xd0\xb5"),
		  MF_ROLE_INBOX);
	CHECK_INT(pst_role_from_name("Junk Email"), MF_ROLE_JUNK);
	CHECK_INT(pst_role_from_name("Gesendete Elemente"), MF_ROLE_SENT);
	CHECK_INT(pst_role_from_name("Archive"), MF_ROLE_ARCHIVE);
	CHECK_INT(pst_role_from_name("Projects"), MF_ROLE_NONE);
}

int main(void)
{
	const char *srcdir = getenv("MF_SRC");
	snprintf(datadir, sizeof(datadir), "%s/tests/data/pst", srcdir ? srcdir : ".");
	struct mf_conf_kv kv = { "root", datadir, 1 };
	struct mf_conf_section sec = { .file = "test.ini", .dir = "/", .name = "source", .n = 1,
				       .kv = &kv };
	struct mf_err err = { 0 };
	if (mf_source_pst.configure(&sec, &cfg, &err) != 0) {
		fprintf(stderr, "configure: %s\n", err.msg);
		return 1;
	}
	RUN(configure_needs_only_root);
	RUN(outlook_folders_and_counts);
	RUN(outlook_fetch_attachments_embedded_determinism);
	RUN(validity_follows_content_not_path);
	RUN(docfetcher_non_ascii_folder_and_pdf);
	RUN(inline_image_gets_related_and_content_id);
	RUN(bad_files_fail_cleanly);
	RUN(independent_sources_and_threads);
	RUN(header_encodings);
	RUN(transfer_encodings);
	RUN(rtf_html_deencapsulation);
	RUN(role_names);
	mf_source_pst.free_config(cfg);
	return test_done();
}
