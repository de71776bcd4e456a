/* Job file and manifest parsing: every problem named with file:line. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/job.h"
#include "test.h"

static char tmpdir[512];

static void write_file(const char *name, const char *text)
{
	char path[768];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	if (!f) {
		perror(path);
		exit(1);
	}
	fputs(text, f);
	fclose(f);
}

/* Load a job; returns rc and the diagnostics in diag (caller frees). */
static int load(const char *job_text, const char *manifest, char **diag, struct mf_job *job)
{
	write_file("job.ini", job_text);
	if (manifest)
		write_file("m.csv", manifest);
	char path[768];
	snprintf(path, sizeof(path), "%s/job.ini", tmpdir);
	size_t len;
	FILE *d = open_memstream(diag, &len);
	int rc = mf_job_load(path, job, d);
	fclose(d);
	return rc;
}

static const char *good_job = "[job]\n"
			      "name = wave1\n"
			      "state = state/w.db ; comment\n"
			      "manifest = m.csv\n"
			      "parallel = 3\n"
			      "[source]\n"
			      "type = imap\n"
			      "host = 127.0.0.1\n"
			      "port = 11143\n"
			      "tls = none\n"
			      "auth = plain\n"
			      "[sink]\n"
			      "type = maildir\n"
			      "path = out\n";

static const char *imap_csv = "EmailAddress,UserName,Password,UserRoot\r\n"
			      "alice@example.com,alice,\"pa,ss\"\"word\",\r\n"
			      "bob@example.com,bob,secret,/users/bob\r\n";

TEST(job_loads)
{
	struct mf_job job;
	char *diag = NULL;
	int rc = load(good_job, imap_csv, &diag, &job);
	CHECK_INT(rc, 0);
	if (rc == 0) {
		CHECK_STR(job.name, "wave1");
		CHECK_INT(job.parallel, 3);
		CHECK(strstr(job.state_path, "/state/w.db") != NULL);
		CHECK_INT(job.nunits, 2);
		CHECK_STR(job.units[0].password, "pa,ss\"word");
		CHECK(job.units[0].user_root == NULL);
		CHECK_STR(job.units[1].user_root, "/users/bob");
		CHECK_STR(job.units[1].mailbox, "bob@example.com");
		CHECK(!job.norm.crlf); /* maildir */
	} else {
		fprintf(stderr, "%s", diag);
	}
	mf_job_free(&job);
	free(diag);
}

TEST(job_errors_name_line_and_key)
{
	struct mf_job job;
	char *diag = NULL;
	const char *bad = "[job]\n"
			  "name = w\n"
			  "state = s.db\n"
			  "manifest = m.csv\n"
			  "paralel = 3\n"         /* line 5: unknown key */
			  "[source]\n"
			  "type = pst\n"
			  "root = .\n"
			  "[sink]\n"
			  "type = maildir\n"
			  "[extra]\n"             /* line 11: unknown section */
			  "x = 1\n";
	int rc = load(bad, imap_csv, &diag, &job);
	CHECK_INT(rc, MF_ECONFIG);
	CHECK(strstr(diag, "job.ini:5: [job] unknown key 'paralel'") != NULL);
	CHECK(strstr(diag, "job.ini:11: unknown section [extra]") != NULL);
	mf_job_free(&job);
	free(diag);
}

TEST(job_bad_values)
{
	struct mf_job job;
	char *diag = NULL;
	const char *bad = "[job]\n"
			  "name = w\n"
			  "state = s.db\n"
			  "manifest = m.csv\n"
			  "parallel = many\n"
			  "[source]\n"
			  "type = pop3\n"
			  "[sink]\n"
			  "type = maildir\n"
			  "path = out\n";
	int rc = load(bad, imap_csv, &diag, &job);
	CHECK_INT(rc, MF_ECONFIG);
	CHECK(strstr(diag, "job.ini:5: [job] parallel: 'many' is not a whole number") != NULL);
	CHECK(strstr(diag, "job.ini:7: [source] type: unknown source 'pop3'") != NULL);
	mf_job_free(&job);
	free(diag);
}

TEST(job_missing_required)
{
	struct mf_job job;
	char *diag = NULL;
	const char *bad = "[job]\nname = w\nmanifest = m.csv\n[source]\ntype = imap\nhost = h\n"
			  "[sink]\ntype = maildir\npath = o\n";
	int rc = load(bad, imap_csv, &diag, &job);
	CHECK_INT(rc, MF_ECONFIG);
	CHECK(strstr(diag, "job.ini:1: [job] missing required key 'state'") != NULL);
	mf_job_free(&job);
	free(diag);
}

static int parse_ini(const char *text, size_t len, struct mf_conf_section **sec, size_t *nsec,
		     char **diag)
{
	size_t dl;
	FILE *d = open_memstream(diag, &dl);
	int rc = mf_job_parse_ini("job.ini", text, len, sec, nsec, d);
	fclose(d);
	return rc;
}

TEST(jobfile_comments_and_quotes)
{
	struct mf_conf_section *sec;
	size_t nsec;
	char *diag = NULL;
	char longv[400];
	memset(longv, 'x', sizeof(longv) - 1);
	longv[sizeof(longv) - 1] = '\0';
	char text[2048];
	snprintf(text, sizeof(text),
		 "\xEF\xBB\xBF[sink]\n"
		 "path = out   # the maildirs\n"
		 "a = out ; the maildirs\n"
		 "b = \"my out\"\n"
		 "c = 'it has # and ; in it'  # comment\n"
		 "d = pass#word;x\n"
		 "e = O'Brien\n"
		 "  f = indented\n"
		 "g = %s\n"
		 "h =\n"
		 "i =   # nothing\n"
		 "j =#x\n",
		 longv);
	CHECK_INT(parse_ini(text, strlen(text), &sec, &nsec, &diag), 0);
	if (nsec == 1) {
		CHECK_STR(mf_conf_get(&sec[0], "path", NULL), "out");
		CHECK_STR(mf_conf_get(&sec[0], "a", NULL), "out");
		CHECK_STR(mf_conf_get(&sec[0], "b", NULL), "my out");
		CHECK_STR(mf_conf_get(&sec[0], "c", NULL), "it has # and ; in it");
		CHECK_STR(mf_conf_get(&sec[0], "d", NULL), "pass#word;x");
		CHECK_STR(mf_conf_get(&sec[0], "e", NULL), "O'Brien");
		CHECK_STR(mf_conf_get(&sec[0], "f", NULL), "indented");
		CHECK_STR(mf_conf_get(&sec[0], "g", NULL), longv);
		CHECK_STR(mf_conf_get(&sec[0], "h", NULL), "");
		CHECK_STR(mf_conf_get(&sec[0], "i", NULL), "");
		CHECK_STR(mf_conf_get(&sec[0], "j", NULL), "#x");
		const struct mf_conf_kv *kv = mf_conf_find(&sec[0], "h");
		CHECK(kv && kv->line == 10);
	} else {
		fprintf(stderr, "%s", diag);
		CHECK(0);
	}
	mf_job_free_sections(sec, nsec);
	free(diag);

	/* what stays ambiguous is refused, naming the line */
	const char *bad = "[sink]\n"
			  "path = \"my out\n"          /* 2: never closed */
			  "b = my out\"\n"             /* 3: closed, never opened */
			  "c = \"my\" out\n"          /* 4: text after the quote */
			  "d = \"a ; b\"\n"           /* 5: fine: quoted */
			  "e = x\n"
			  "   continued\n";            /* 7: a continuation line */
	CHECK_INT(parse_ini(bad, strlen(bad), &sec, &nsec, &diag), MF_ECONFIG);
	CHECK(strstr(diag, "job.ini:2: [key path] the value opens a quote") != NULL);
	CHECK(strstr(diag, "job.ini:3: [key b] the value ends with a quote") != NULL);
	CHECK(strstr(diag, "job.ini:4: [key c] text after the closing quote") != NULL);
	CHECK(strstr(diag, "job.ini:5") == NULL);
	CHECK(strstr(diag, "job.ini:7: an indented line without '='") != NULL);
	free(diag);
}

TEST(jobfile_utf16)
{
	struct mf_conf_section *sec;
	size_t nsec;
	char *diag = NULL;
	const char *ascii = "[job]\r\nname = w\r\n";
	char buf[128];
	size_t l = 0;
	buf[l++] = (char)0xFF;
	buf[l++] = (char)0xFE;
	for (const char *p = ascii; *p; p++) {
		buf[l++] = *p;
		buf[l++] = 0;
	}
	CHECK_INT(parse_ini(buf, l, &sec, &nsec, &diag), MF_ECONFIG);
	CHECK(strstr(diag, "job.ini:1: the job file is UTF-16LE text") != NULL);
	CHECK(strstr(diag, "outside any section") == NULL);
	free(diag);
	/* without a byte order mark (Out-File in PowerShell 5 writes one; other tools not) */
	CHECK_INT(parse_ini(buf + 2, l - 2, &sec, &nsec, &diag), MF_ECONFIG);
	CHECK(strstr(diag, "UTF-16LE") != NULL);
	free(diag);
}

static int parse_manifest(const char *text, const char *root, struct mf_unit **u, size_t *n,
			  enum mf_manifest_kind *kind, char **diag)
{
	size_t len;
	FILE *d = open_memstream(diag, &len);
	int rc = mf_manifest_parse("m.csv", text, strlen(text), root, kind, u, n, d);
	fclose(d);
	return rc;
}

TEST(manifest_pst)
{
	const char *csv =
		"Workload,FilePath,Name,Mailbox,IsArchive,TargetRootFolder,ContentCodePage,"
		"SPFileContainer,SPManifestContainer,SPSiteUrl\n"
		"Exchange,,annb.pst,annb@contoso.onmicrosoft.com,FALSE,/,,,,\n"
		"Exchange,PSTs\\old,annb_archive.pst,annb@contoso.onmicrosoft.com,TRUE,,,,,\n"
		"Exchange,PSTs,donh.pst,donh@contoso.onmicrosoft.com,FALSE,/ImportedPst,,,,\n";
	struct mf_unit *u;
	size_t n;
	enum mf_manifest_kind kind;
	char *diag = NULL;
	int rc = parse_manifest(csv, "/data", &u, &n, &kind, &diag);
	CHECK_INT(rc, 0);
	CHECK_INT(kind, MF_MANIFEST_PST);
	CHECK_INT(n, 3);
	if (rc == 0 && n == 3) {
		CHECK_STR(u[0].pst_path, "/data/annb.pst");
		CHECK_STR(u[0].target_root, "/");
		CHECK_STR(u[1].pst_path, "/data/PSTs/old/annb_archive.pst");
		CHECK_STR(u[1].pst_relpath, "PSTs/old/annb_archive.pst");
		CHECK_STR(u[0].pst_relpath, "annb.pst");
		CHECK(u[1].is_archive);
		CHECK_STR(u[2].target_root, "/ImportedPst");
		CHECK_INT(u[2].line, 4);
	}
	mf_units_free(u, n);
	free(diag);
}

TEST(manifest_reports_every_bad_line)
{
	const char *csv = "Workload,FilePath,Name,Mailbox,IsArchive,TargetRootFolder\n"
			  "Exchange,,a.pst,a@x.com,FALSE,\n"
			  "SharePoint,,b.pst,b@x.com,FALSE,\n"     /* 3: workload */
			  "Exchange,../etc,c.pst,c@x.com,FALSE,\n" /* 4: traversal */
			  "Exchange,,d.txt,d@x.com,FALSE,\n"       /* 5: not a pst */
			  "Exchange,,e.pst,not-an-address,FALSE,\n" /* 6 */
			  "Exchange,,f.pst,f@x.com,MAYBE,\n"       /* 7 */
			  "Exchange,,g.pst,g@x.com,FALSE,Inbox\n"  /* 8 */
			  "Exchange,,a.pst,a@x.com,FALSE,\n";      /* 9: duplicate of 2 */
	struct mf_unit *u;
	size_t n;
	enum mf_manifest_kind kind;
	char *diag = NULL;
	int rc = parse_manifest(csv, "/r", &u, &n, &kind, &diag);
	CHECK_INT(rc, MF_ECONFIG);
	for (int line = 3; line <= 9; line++) {
		char want[32];
		snprintf(want, sizeof(want), "m.csv:%d: ", line);
		CHECK(strstr(diag, want) != NULL);
	}
	CHECK(strstr(diag, "m.csv:2: ") == NULL);
	CHECK(strstr(diag, "Workload is 'SharePoint'") != NULL);
	CHECK(strstr(diag, "the same row as line 2") != NULL);
	free(diag);
}

TEST(manifest_imap_quoting_and_lines)
{
	/* a quoted field spanning two lines: the next row's line is still right */
	const char *csv = "EmailAddress,UserName,Password\n"
			  "a@x.com,a,\"multi\nline\"\n"
			  "b@x.com,,pw\n";
	struct mf_unit *u;
	size_t n;
	enum mf_manifest_kind kind;
	char *diag = NULL;
	int rc = parse_manifest(csv, NULL, &u, &n, &kind, &diag);
	CHECK_INT(rc, MF_ECONFIG);
	CHECK(strstr(diag, "m.csv:4: UserName is empty") != NULL);
	CHECK(strstr(diag, "pw") == NULL); /* passwords never printed */
	free(diag);
}

TEST(manifest_unknown_header)
{
	struct mf_unit *u;
	size_t n;
	enum mf_manifest_kind kind;
	char *diag = NULL;
	int rc = parse_manifest("a,b,c\n1,2,3\n", NULL, &u, &n, &kind, &diag);
	CHECK_INT(rc, MF_ECONFIG);
	CHECK(strstr(diag, "m.csv:1: unknown header") != NULL);
	free(diag);
}

/* Parse text of an exact length (it may hold NULs); diag returned. */
static int parse_bytes(const char *text, size_t len, struct mf_unit **u, size_t *n, char **diag)
{
	size_t dl;
	enum mf_manifest_kind kind;
	FILE *d = open_memstream(diag, &dl);
	int rc = mf_manifest_parse("m.csv", text, len, "/r", &kind, u, n, d);
	fclose(d);
	return rc;
}

TEST(manifest_csv_errors_never_drop_rows)
{
	struct mf_unit *u;
	size_t n;
	char *diag = NULL;
	/* an unterminated quote in one Password swallowed every row after it */
	const char *csv = "EmailAddress,UserName,Password\n"
			  "a@x.com,a,\"pw\n"
			  "b@x.com,b,pw2\n"
			  "c@x.com,c,pw3\n";
	CHECK_INT(parse_bytes(csv, strlen(csv), &u, &n, &diag), MF_ECONFIG);
	CHECK_INT(n, 0);
	CHECK(strstr(diag, "m.csv:2: unterminated quoted field") != NULL);
	free(diag);
	/* the quote is "closed" by the next quoted field: a stray quote then */
	csv = "EmailAddress,UserName,Password\n"
	      "a@x.com,a,\"pw\n"
	      "b@x.com,b,\"pw2\"\n";
	CHECK_INT(parse_bytes(csv, strlen(csv), &u, &n, &diag), MF_ECONFIG);
	CHECK(strstr(diag, "m.csv:2: a quoted field opened on this row is not closed") != NULL);
	free(diag);
	/* a quote in the middle of an unquoted field */
	csv = "EmailAddress,UserName,Password\n"
	      "a@x.com,a,pw\"x\n";
	CHECK_INT(parse_bytes(csv, strlen(csv), &u, &n, &diag), MF_ECONFIG);
	CHECK(strstr(diag, "m.csv:2: a stray quote") != NULL);
	free(diag);
	/* too few and too many fields */
	csv = "EmailAddress,UserName,Password\n"
	      "a@x.com,a\n"
	      "b@x.com,b,pw,extra\n"
	      "c@x.com,c,pw\n";
	CHECK_INT(parse_bytes(csv, strlen(csv), &u, &n, &diag), MF_ECONFIG);
	CHECK(strstr(diag, "m.csv:2: 2 fields, but the header has 3") != NULL);
	CHECK(strstr(diag, "m.csv:3: 4 fields, but the header has 3") != NULL);
	CHECK(strstr(diag, "m.csv:4") == NULL);
	free(diag);
	/* a NUL byte */
	static const char nul[] = "EmailAddress,UserName,Password\n"
				  "a@x.com,a,p\0w\n"
				  "b@x.com,b,pw\n";
	CHECK_INT(parse_bytes(nul, sizeof(nul) - 1, &u, &n, &diag), MF_ECONFIG);
	CHECK(strstr(diag, "m.csv:2: a NUL byte") != NULL);
	free(diag);
}

TEST(manifest_encodings_and_separators)
{
	struct mf_unit *u;
	size_t n;
	char *diag = NULL;
	const char *ascii = "EmailAddress,UserName,Password\r\na@x.com,a,pw\r\n";
	char buf[256];
	size_t l = 0;
	/* UTF-16LE with a byte order mark (PowerShell 5 Export-Csv -Encoding Unicode) */
	buf[l++] = (char)0xFF;
	buf[l++] = (char)0xFE;
	for (const char *p = ascii; *p; p++) {
		buf[l++] = *p;
		buf[l++] = 0;
	}
	CHECK_INT(parse_bytes(buf, l, &u, &n, &diag), MF_ECONFIG);
	CHECK(strstr(diag, "m.csv:1: the manifest is UTF-16LE text") != NULL);
	CHECK(strstr(diag, "iconv -f UTF-16 -t UTF-8") != NULL);
	free(diag);
	/* UTF-16BE without one */
	l = 0;
	for (const char *p = ascii; *p; p++) {
		buf[l++] = 0;
		buf[l++] = *p;
	}
	CHECK_INT(parse_bytes(buf, l, &u, &n, &diag), MF_ECONFIG);
	CHECK(strstr(diag, "UTF-16BE") != NULL);
	free(diag);
	/* ';' (Excel in a decimal-comma locale) and tabs */
	const char *semi = "Workload;FilePath;Name;Mailbox;IsArchive;TargetRootFolder\n"
			   "Exchange;;a.pst;a@x.com;FALSE;\n";
	CHECK_INT(parse_bytes(semi, strlen(semi), &u, &n, &diag), MF_ECONFIG);
	CHECK(strstr(diag, "m.csv:1: the columns are separated by ';'") != NULL);
	CHECK(strstr(diag, "unknown header") == NULL);
	free(diag);
	const char *tab = "EmailAddress\tUserName\tPassword\na@x.com\ta\tpw\n";
	CHECK_INT(parse_bytes(tab, strlen(tab), &u, &n, &diag), MF_ECONFIG);
	CHECK(strstr(diag, "separated by tabs") != NULL);
	free(diag);
	/* a UTF-8 byte order mark is simply accepted, and so are Excel's empty rows */
	const char *bom = "\xEF\xBB\xBF" "EmailAddress,UserName,Password\na@x.com,a,pw\n,,\n";
	CHECK_INT(parse_bytes(bom, strlen(bom), &u, &n, &diag), 0);
	CHECK_INT(n, 1);
	mf_units_free(u, n);
	free(diag);
}

TEST(manifest_mailbox_case_insensitive)
{
	struct mf_unit *u;
	size_t n;
	char *diag = NULL;
	/* three spellings of one mailbox, three PSTs: one mailbox */
	const char *csv = "Workload,FilePath,Name,Mailbox,IsArchive,TargetRootFolder\n"
			  "Exchange,,a.pst,SAME@x.com,FALSE,\n"
			  "Exchange,,b.pst,Same@X.com,FALSE,\n"
			  "Exchange,,c.pst,same@x.com,FALSE,\n";
	CHECK_INT(parse_bytes(csv, strlen(csv), &u, &n, &diag), 0);
	CHECK_INT(n, 3);
	for (size_t i = 0; i < n; i++) {
		CHECK_STR(u[i].mailbox, "same@x.com");
		CHECK(strncmp(u[i].id + u[i].id_mailbox_at, "same@x.com", 10) == 0);
	}
	mf_units_free(u, n);
	free(diag);
	/* the same row in another case: a duplicate, both lines named */
	csv = "EmailAddress,UserName,Password\n"
	      "SAME@x.com,u,pw\n"
	      "Same@x.com,u,pw\n";
	CHECK_INT(parse_bytes(csv, strlen(csv), &u, &n, &diag), MF_ECONFIG);
	CHECK(strstr(diag, "m.csv:3: the same row as line 2") != NULL);
	free(diag);
}

TEST(manifest_content_code_page)
{
	struct mf_unit *u;
	size_t n;
	char *diag = NULL;
	const char *csv = "Workload,FilePath,Name,Mailbox,IsArchive,TargetRootFolder,ContentCodePage\n"
			  "Exchange,,a.pst,a@x.com,FALSE,,932\n"
			  "Exchange,,b.pst,b@x.com,FALSE,,\n";
	CHECK_INT(parse_bytes(csv, strlen(csv), &u, &n, &diag), 0);
	CHECK_INT(n, 2);
	if (n == 2) {
		CHECK_INT(u[0].codepage, 932);
		CHECK_INT(u[1].codepage, 0);
	}
	mf_units_free(u, n);
	free(diag);
	csv = "Workload,FilePath,Name,Mailbox,IsArchive,TargetRootFolder,ContentCodePage\n"
	      "Exchange,,a.pst,a@x.com,FALSE,,shift-jis\n";
	CHECK_INT(parse_bytes(csv, strlen(csv), &u, &n, &diag), MF_ECONFIG);
	CHECK(strstr(diag, "m.csv:2: ContentCodePage is 'shift-jis'") != NULL);
	free(diag);
}

static void folder_with(struct mf_folder *f, const char *a, const char *b, enum mf_role role);

TEST(job_archive_rows)
{
	struct mf_job job;
	char *diag = NULL;
	char job_text[1024];
	const char *csv = "Workload,FilePath,Name,Mailbox,IsArchive,TargetRootFolder\n"
			  "Exchange,,a.pst,ann@x.com,FALSE,/\n"
			  "Exchange,,b.pst,ann@x.com,TRUE,/\n";
	snprintf(job_text, sizeof(job_text),
		 "[job]\nname = a\nstate = s.db\nmanifest = m.csv\n%s"
		 "[source]\ntype = pst\nroot = %s\n[sink]\ntype = maildir\npath = out\n",
		 "", tmpdir);
	int rc = load(job_text, csv, &diag, &job);
	CHECK_INT(rc, 0);
	if (rc == 0 && job.nunits == 2) {
		CHECK(!job.units[0].to_archive);
		CHECK(job.units[1].is_archive && job.units[1].to_archive);
		CHECK(strstr(job.units[1].id, ":archive") != NULL);
		CHECK(strcmp(job.units[0].id, job.units[1].id) != 0);
	} else {
		fprintf(stderr, "%s", diag);
	}
	mf_job_free(&job);
	free(diag);

	/* [job] archive_folder: into that folder of the primary mailbox */
	snprintf(job_text, sizeof(job_text),
		 "[job]\nname = a\nstate = s.db\nmanifest = m.csv\n%s"
		 "[source]\ntype = pst\nroot = %s\n[sink]\ntype = maildir\npath = out\n",
		 "archive_folder = /Online Archive/  # here\n", tmpdir);
	rc = load(job_text, csv, &diag, &job);
	CHECK_INT(rc, 0);
	if (rc == 0 && job.nunits == 2) {
		CHECK(!job.units[1].to_archive);
		CHECK_STR(job.archive_folder, "Online Archive");
		struct mf_folder f;
		struct mf_path t;
		enum mf_role role;
		folder_with(&f, "Inbox", NULL, MF_ROLE_INBOX);
		CHECK_INT(mf_job_target_folder(&job, &job.units[1], &f, 1, 0, &t, &role), 1);
		char *p = mf_path_join(&t, "/");
		CHECK_STR(p, "Online Archive/Inbox");
		CHECK_INT(role, MF_ROLE_NONE);
		free(p);
		mf_path_free(&t);
		CHECK_INT(mf_job_target_folder(&job, &job.units[0], &f, 1, 0, &t, &role), 1);
		p = mf_path_join(&t, "/");
		CHECK_STR(p, "Inbox");
		free(p);
		mf_path_free(&t);
		mf_path_free(&f.path);
	} else {
		fprintf(stderr, "%s", diag);
	}
	mf_job_free(&job);
	free(diag);
}

static void folder_with(struct mf_folder *f, const char *a, const char *b, enum mf_role role)
{
	memset(f, 0, sizeof(*f));
	mf_path_init(&f->path);
	mf_path_push(&f->path, a, strlen(a));
	if (b)
		mf_path_push(&f->path, b, strlen(b));
	f->role = role;
}

/* Children of a role folder keep its role where the sink takes that
 * (caps.ancestor_role: Graph puts Sent/2019 under sentitems, whatever the
 * source or the mailbox's language calls Sent); renamed or rooted paths and
 * sinks without the cap get none. */
TEST(target_folder_ancestor_role)
{
	struct mf_job job;
	memset(&job, 0, sizeof(job));
	struct mf_unit u = {.target_root = NULL}; /* an IMAP row: merged at the top */
	struct mf_folder fs[3];
	struct mf_path t;
	enum mf_role role;
	folder_with(&fs[0], "Gesendet", NULL, MF_ROLE_SENT);
	folder_with(&fs[1], "Gesendet", "2019", MF_ROLE_NONE);
	folder_with(&fs[2], "Projekte", "2019", MF_ROLE_NONE);
	CHECK_INT(mf_job_target_folder(&job, &u, fs, 3, 1, &t, &role), 1);
	CHECK_INT(role, MF_ROLE_NONE); /* the sink does not take it */
	mf_path_free(&t);
	job.caps.ancestor_role = true;
	CHECK_INT(mf_job_target_folder(&job, &u, fs, 3, 0, &t, &role), 1);
	CHECK_INT(role, MF_ROLE_SENT);
	mf_path_free(&t);
	CHECK_INT(mf_job_target_folder(&job, &u, fs, 3, 1, &t, &role), 1);
	char *s = mf_path_join(&t, "/");
	CHECK_STR(s, "Gesendet/2019");
	CHECK_INT(role, MF_ROLE_SENT);
	free(s);
	mf_path_free(&t);
	CHECK_INT(mf_job_target_folder(&job, &u, fs, 3, 2, &t, &role), 1);
	CHECK_INT(role, MF_ROLE_NONE);
	mf_path_free(&t);
	/* renamed: the role goes */
	struct mf_folder_rename ren[] = {{.from = "Gesendet", .to = "Old/Gesendet"}};
	job.rules = (struct mf_folder_rules){.rename = ren, .nrename = 1};
	CHECK_INT(mf_job_target_folder(&job, &u, fs, 3, 1, &t, &role), 1);
	CHECK_INT(role, MF_ROLE_NONE);
	mf_path_free(&t);
	/* under a PST TargetRootFolder: none either */
	job.rules = (struct mf_folder_rules){0};
	struct mf_unit p = {.pst_path = "/x.pst", .target_root = "/Old Mail"};
	CHECK_INT(mf_job_target_folder(&job, &p, fs, 3, 1, &t, &role), 1);
	CHECK_INT(role, MF_ROLE_NONE);
	mf_path_free(&t);
	for (int i = 0; i < 3; i++)
		mf_path_free(&fs[i].path);
}

TEST(target_folder_mapping)
{
	struct mf_job job;
	memset(&job, 0, sizeof(job));
	struct mf_unit u = {.pst_path = "/x.pst", .target_root = ""};
	struct mf_folder f;
	struct mf_path t;
	enum mf_role role;
	folder_with(&f, "Inbox", NULL, MF_ROLE_INBOX);
	CHECK_INT(mf_job_target_folder(&job, &u, &f, 1, 0, &t, &role), 1);
	char *s = mf_path_join(&t, "/");
	CHECK_STR(s, "Imported/Inbox");
	CHECK_INT(role, MF_ROLE_NONE);
	free(s);
	mf_path_free(&t);

	u.target_root = "/";
	CHECK_INT(mf_job_target_folder(&job, &u, &f, 1, 0, &t, &role), 1);
	s = mf_path_join(&t, "/");
	CHECK_STR(s, "Inbox");
	CHECK_INT(role, MF_ROLE_INBOX);
	free(s);
	mf_path_free(&t);

	u.target_root = "/Old Mail/2019";
	CHECK_INT(mf_job_target_folder(&job, &u, &f, 1, 0, &t, &role), 1);
	s = mf_path_join(&t, "/");
	CHECK_STR(s, "Old Mail/2019/Inbox");
	free(s);
	mf_path_free(&t);
	mf_path_free(&f.path);

	/* [folders] rules */
	char *inc[] = {"*"}, *exc[] = {"Junk*"};
	struct mf_folder_rename ren[] = {{.from = "Projects", .to = "Archive/Projects"}};
	job.rules = (struct mf_folder_rules){.include = inc, .ninclude = 1, .exclude = exc,
					     .nexclude = 1, .rename = ren, .nrename = 1};
	u.target_root = "/";
	folder_with(&f, "Junk E-mail", NULL, MF_ROLE_JUNK);
	CHECK_INT(mf_job_target_folder(&job, &u, &f, 1, 0, &t, &role), 0);
	mf_path_free(&f.path);
	folder_with(&f, "Projects", "2024", MF_ROLE_NONE);
	CHECK_INT(mf_job_target_folder(&job, &u, &f, 1, 0, &t, &role), 1);
	s = mf_path_join(&t, "/");
	CHECK_STR(s, "Archive/Projects/2024");
	free(s);
	mf_path_free(&t);
	mf_path_free(&f.path);
}

TEST(path_keys_roundtrip)
{
	struct mf_path p, q;
	mf_path_init(&p);
	mf_path_push(&p, "a/b", 3);
	mf_path_push(&p, "100%", 4);
	mf_path_push(&p, "Überweisungen", strlen("Überweisungen"));
	char *k = mf_path_key(&p);
	CHECK_STR(k, "a%2Fb/100%25/Überweisungen");
	CHECK_INT(mf_path_from_key(&q, k), 0);
	CHECK_INT(q.n, 3);
	if (q.n == 3) {
		CHECK_STR(q.seg[0], "a/b");
		CHECK_STR(q.seg[1], "100%");
	}
	free(k);
	mf_path_free(&p);
	mf_path_free(&q);
}

int main(void)
{
	const char *base = getenv("MF_TMP") ? getenv("MF_TMP") : "/tmp";
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "mkdir -p %s", base);
	if (system(cmd) != 0)
		return 1;
	snprintf(tmpdir, sizeof(tmpdir), "%s/test_job.XXXXXX", base);
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(job_loads);
	RUN(job_errors_name_line_and_key);
	RUN(job_bad_values);
	RUN(job_missing_required);
	RUN(jobfile_comments_and_quotes);
	RUN(jobfile_utf16);
	RUN(manifest_pst);
	RUN(manifest_reports_every_bad_line);
	RUN(manifest_imap_quoting_and_lines);
	RUN(manifest_unknown_header);
	RUN(manifest_csv_errors_never_drop_rows);
	RUN(manifest_encodings_and_separators);
	RUN(manifest_mailbox_case_insensitive);
	RUN(manifest_content_code_page);
	RUN(target_folder_mapping);
	RUN(target_folder_ancestor_role);
	RUN(job_archive_rows);
	RUN(path_keys_roundtrip);
	return test_done();
}
