/* test_tnef_lists.c - the TNEF decoder against MimeKit's expected attachment
 * lists and on hand-built streams, without ../shared:
 *  - every tests/data/tnef file with a .expected.list: the names of the
 *    decoded entity's own attachments (not those inside embedded messages)
 *    are exactly the list, as a multiset ("body.rtf"/"body.html" entries
 *    name the body, which must be there instead);
 *  - MimeKit's panic.tnef (17 KB of text after the last attribute): decoded,
 *    its three images inline with their Content-IDs, the left-out bytes in
 *    the note;
 *  - MimeKit's christmas.tnef (two embedded messages): message/rfc822 parts
 *    named as MimeKit names them, with the text Outlook puts beside them;
 *  - hand-built streams: every stream left undecoded says why, naming the
 *    attribute and the byte, also through mf_normalize's note. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/normalize/mime.h"
#include "engine/normalize/normalize.h"
#include "engine/normalize/tnef.h"
#include "engine/util.h"
#include "test.h"

static char dir[1024];

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A decoded entity as a message the MIME parser reads. */
struct decoded {
	struct mf_out msg;
	struct mf_part *parts;
	size_t n;
	char why[256];
	int rc;
};

static void decode(const unsigned char *t, size_t len, struct decoded *d)
{
	struct mf_tnef_mime m;
	memset(d, 0, sizeof(*d));
	d->rc = mf_tnef_to_mime(t, len, "\r\n", &m, d->why, sizeof(d->why));
	if (d->rc == 0) {
		mf_out_str(&d->msg, "Content-Type: ");
		mf_out_add(&d->msg, m.ctype.b.data, m.ctype.b.len);
		mf_out_str(&d->msg, "\r\n\r\n");
		mf_out_add(&d->msg, m.body.b.data, m.body.b.len);
		CHECK(!d->msg.err);
		CHECK_INT(mf_mime_parse((const unsigned char *)d->msg.b.data, d->msg.b.len, &d->parts,
					&d->n),
			  0);
	}
	mf_out_free(&m.ctype);
	mf_out_free(&m.body);
}

static void decoded_free(struct decoded *d)
{
	free(d->parts);
	mf_out_free(&d->msg);
}

/* The value of header `field` of part k ("" if none), parameter `param` of it
 * when param is not NULL. */
static void part_hdr(const struct decoded *d, size_t k, const char *field, const char *param,
		     char *out, size_t outsz)
{
	const unsigned char *p = (const unsigned char *)d->msg.b.data;
	const struct mf_part *pt = &d->parts[k];
	size_t fs, fe, vs, ve;
	out[0] = '\0';
	if (!mf_mime_field(p + pt->start, pt->hend - pt->start, field, &fs, &fe, &vs, &ve))
		return;
	if (param) {
		mf_mime_param(p + pt->start + vs, ve - vs, param, out, outsz);
		return;
	}
	while (vs < ve && (p[pt->start + vs] == ' ' || p[pt->start + vs] == '\t'))
		vs++;
	size_t n = ve - vs < outsz - 1 ? ve - vs : outsz - 1;
	memcpy(out, p + pt->start + vs, n);
	out[n] = '\0';
}

static unsigned char *read_path(const char *path, size_t *len)
{
	char *d = NULL;
	if (mf_read_file(path, 16 << 20, &d, len) != 0)
		return NULL;
	return (unsigned char *)d;
}

static unsigned char *read_tnef(const char *name, size_t *len)
{
	char path[1200];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return read_path(path, len);
}

/* ---- MimeKit's lists ------------------------------------------------------ */

static void join(char **v, int n, char *out, size_t outsz)
{
	out[0] = '\0';
	for (int k = 0; k < n; k++) {
		size_t used = strlen(out);
		snprintf(out + used, outsz - used, "%s%s", k ? " | " : "", v[k]);
	}
}

static void check_list(const char *file)
{
	char path[1200];
	snprintf(path, sizeof(path), "%s/%s.expected.list", dir, file);
	char *list;
	size_t ll;
	if (mf_read_file(path, 1 << 20, &list, &ll) != 0)
		return;
	size_t len;
	unsigned char *t = read_tnef(file, &len);
	CHECK(t != NULL);
	struct decoded d;
	decode(t, len, &d);
	CHECK_INT(d.rc, 0);

	char *want[256], *got[256];
	int nw = 0, ng = 0;
	bool want_html = false, want_rtf = false, have_html = false, have_rtf = false;
	char *save = NULL;
	for (char *line = strtok_r(list, "\r\n", &save); line && nw < 256;
	     line = strtok_r(NULL, "\r\n", &save)) {
		if (strcmp(line, "body.html") == 0)
			want_html = true;
		else if (strcmp(line, "body.rtf") == 0)
			want_rtf = true;
		else if (*line)
			want[nw++] = line;
	}
	for (size_t k = 0; k < d.n && ng < 256; k++) {
		char name[512];
		part_hdr(&d, k, "content-disposition", "filename", name, sizeof(name));
		if (d.parts[k].depth == 1 && name[0])
			got[ng++] = strdup(name);
		/* the body: unnamed, directly or in the alternative */
		if (!name[0] && d.parts[k].depth <= 2 && strcmp(d.parts[k].type, "text/html") == 0)
			have_html = true;
		if (!name[0] && d.parts[k].depth <= 2 && strcmp(d.parts[k].type, "text/rtf") == 0)
			have_rtf = true;
	}
	qsort(want, (size_t)nw, sizeof(want[0]), cmp_str);
	qsort(got, (size_t)ng, sizeof(got[0]), cmp_str);
	char ws[4096], gs[4096];
	join(want, nw, ws, sizeof(ws));
	join(got, ng, gs, sizeof(gs));
	printf("%-36s expected [%s]%s%s\n%-36s ours     [%s]%s%s %s\n", file, ws,
	       want_rtf ? " +rtf" : "", want_html ? " +html" : "", "", gs,
	       have_rtf ? " +rtf" : "", have_html ? " +html" : "", d.why);
	CHECK_STR(gs, ws);
	if (want_html)
		CHECK(have_html);
	if (want_rtf) /* HTML de-encapsulated from the RTF stands for it */
		CHECK(have_rtf || have_html);
	for (int k = 0; k < ng; k++)
		free(got[k]);
	decoded_free(&d);
	free(t);
	free(list);
}

TEST(mimekit_lists)
{
	DIR *dd = opendir(dir);
	CHECK(dd != NULL);
	if (!dd)
		return;
	char *names[256];
	int n = 0;
	struct dirent *e;
	while ((e = readdir(dd)) && n < 256)
		if (e->d_name[0] != '.' && !strstr(e->d_name, ".expected.list"))
			names[n++] = strdup(e->d_name);
	closedir(dd);
	qsort(names, (size_t)n, sizeof(names[0]), cmp_str);
	int lists = 0;
	for (int k = 0; k < n; k++) {
		char path[1200];
		snprintf(path, sizeof(path), "%s/%s.expected.list", dir, names[k]);
		FILE *f = fopen(path, "rb");
		if (f) {
			fclose(f);
			lists++;
			check_list(names[k]);
		}
		free(names[k]);
	}
	CHECK(lists >= 3);
}

TEST(panic_inline_images)
{
	size_t len;
	unsigned char *t = read_tnef("mimekit_panic.tnef", &len);
	CHECK(t != NULL);
	if (!t)
		return;
	struct decoded d;
	decode(t, len, &d);
	CHECK_INT(d.rc, 0);
	CHECK(strstr(d.why, "17497 bytes after the last attribute (from byte 49862) are not TNEF") !=
	      NULL);
	const char *names[] = { "image001.jpg", "image002.jpg", "image003.png" };
	int found = 0;
	for (size_t k = 0; k < d.n; k++) {
		char name[128], disp[256], cid[128], want[128];
		part_hdr(&d, k, "content-disposition", "filename", name, sizeof(name));
		for (int j = 0; j < 3; j++) {
			if (strcmp(name, names[j]) != 0)
				continue;
			found++;
			part_hdr(&d, k, "content-disposition", NULL, disp, sizeof(disp));
			CHECK(strncmp(disp, "inline;", 7) == 0);
			part_hdr(&d, k, "content-id", NULL, cid, sizeof(cid));
			snprintf(want, sizeof(want), "<%s@01D139A1.76DB0C80>", names[j]);
			CHECK_STR(cid, want);
		}
	}
	CHECK_INT(found, 3);
	/* deterministic */
	struct decoded d2;
	decode(t, len, &d2);
	CHECK(d2.msg.b.len == d.msg.b.len && memcmp(d2.msg.b.data, d.msg.b.data, d.msg.b.len) == 0);
	decoded_free(&d2);
	decoded_free(&d);
	free(t);
}

TEST(christmas_embedded_messages)
{
	size_t len;
	unsigned char *t = read_tnef("mimekit_christmas.tnef", &len);
	CHECK(t != NULL);
	if (!t)
		return;
	struct decoded d;
	decode(t, len, &d);
	CHECK_INT(d.rc, 0);
	CHECK_STR(d.why, "");
	const char *subjects[] = { "Build a train table", "Christmas Celebration!" };
	int msgs = 0, stubs = 0;
	for (size_t k = 0; k < d.n; k++) {
		if (d.parts[k].depth != 1)
			continue;
		char name[128], fname[128];
		part_hdr(&d, k, "content-type", "name", name, sizeof(name));
		part_hdr(&d, k, "content-disposition", "filename", fname, sizeof(fname));
		if (strcmp(d.parts[k].type, "message/rfc822") == 0) {
			CHECK(msgs < 2);
			if (msgs < 2)
				CHECK_STR(name, subjects[msgs]);
			CHECK_STR(fname, "Untitled Attachment");
			/* the embedded message's own header and attachment */
			CHECK(k + 1 < d.n && d.parts[k + 1].depth == 2);
			msgs++;
		} else if (strcmp(fname, "Untitled Attachment") == 0) {
			struct mf_out body = { 0 };
			mf_mime_decode_body((const unsigned char *)d.msg.b.data, &d.parts[k], &body);
			CHECK(body.b.len > 40 &&
			      memcmp(body.b.data, "This attachment is a MAPI 1.0 embedded message",
				     40) == 0);
			mf_out_free(&body);
			stubs++;
		}
	}
	CHECK_INT(msgs, 2);
	CHECK_INT(stubs, 2);
	/* the kitten of the second one is inside it, not beside it */
	int kittens = 0;
	for (size_t k = 0; k < d.n; k++) {
		char fname[128];
		part_hdr(&d, k, "content-disposition", "filename", fname, sizeof(fname));
		if (strcmp(fname, "kitten-playing-with-a-christmas-tree.jpg") == 0)
			kittens += d.parts[k].depth == 1 ? 1 : 100;
	}
	CHECK_INT(kittens, 101);
	decoded_free(&d);
	free(t);
}

/* ---- hand-built streams ---------------------------------------------------- */

static void put16(struct mf_out *o, unsigned v)
{
	unsigned char b[2] = { (unsigned char)v, (unsigned char)(v >> 8) };
	mf_out_add(o, b, 2);
}

static void put32(struct mf_out *o, uint32_t v)
{
	unsigned char b[4] = { (unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
			       (unsigned char)(v >> 24) };
	mf_out_add(o, b, 4);
}

static void tnef_start(struct mf_out *o)
{
	put32(o, 0x223E9F78u);
	put16(o, 0);
}

static void tnef_attr(struct mf_out *o, int level, uint32_t tag, const void *data, size_t n)
{
	unsigned char lv = (unsigned char)level;
	const unsigned char *d = data;
	unsigned sum = 0;
	for (size_t k = 0; k < n; k++)
		sum += d[k];
	mf_out_add(o, &lv, 1);
	put32(o, tag);
	put32(o, (uint32_t)n);
	mf_out_add(o, d, n);
	put16(o, sum & 0xFFFF);
}

/* MAPI property values for attAttachment / attMsgProps. */
static void prop_long(struct mf_out *o, unsigned id, uint32_t v)
{
	put16(o, 0x0003);
	put16(o, id);
	put32(o, v);
}

static void prop_var(struct mf_out *o, unsigned type, unsigned id, const void *v, size_t n)
{
	static const unsigned char pad[4] = { 0 };
	put16(o, type);
	put16(o, id);
	put32(o, 1);
	put32(o, (uint32_t)n);
	mf_out_add(o, v, n);
	mf_out_add(o, pad, (4 - n % 4) % 4);
}

static void props_attr(struct mf_out *o, uint32_t tag, uint32_t count, const struct mf_out *p)
{
	struct mf_out a = { 0 };
	put32(&a, count);
	mf_out_add(&a, p->b.data, p->b.len);
	tnef_attr(o, 2 - (tag == 0x00069003), tag, a.b.data, a.b.len);
	mf_out_free(&a);
}

/* A message with one attachment "a.txt" (attAttachData "hello"). */
static void simple_stream(struct mf_out *o)
{
	static const unsigned char rend[14] = { 0 };
	tnef_start(o);
	tnef_attr(o, 1, 0x00078008, "IPM.Note", 9);
	tnef_attr(o, 2, 0x00069002, rend, sizeof(rend));
	tnef_attr(o, 2, 0x00018010, "a.txt", 6);
	tnef_attr(o, 2, 0x0006800F, "hello", 5);
}

static int decode_buf(const struct mf_out *o, char *why, size_t whysz)
{
	struct mf_tnef_mime m;
	int rc = mf_tnef_to_mime((const unsigned char *)o->b.data, o->b.len, "\r\n", &m, why, whysz);
	mf_out_free(&m.ctype);
	mf_out_free(&m.body);
	return rc;
}

TEST(reasons_name_attribute_and_byte)
{
	char why[256];
	struct mf_out o = { 0 };

	/* text appended after a whole stream: decoded, the rest noted */
	simple_stream(&o);
	size_t end = o.b.len;
	mf_out_str(&o, "-- appended by a gateway --\r\n");
	CHECK_INT(decode_buf(&o, why, sizeof(why)), 0);
	char want[160];
	snprintf(want, sizeof(want),
		 "29 bytes after the last attribute (from byte %zu) are not TNEF and were left out",
		 end);
	CHECK_STR(why, want);
	mf_out_free(&o);

	/* appended binary data where zeros after a 1 look like an empty attNull:
	 * still appended data, not damage */
	simple_stream(&o);
	end = o.b.len;
	mf_out_add(&o, "junk\x01\0\0\0\0\0\0\0\0\0\0junk", 19);
	CHECK_INT(decode_buf(&o, why, sizeof(why)), 0);
	snprintf(want, sizeof(want),
		 "19 bytes after the last attribute (from byte %zu) are not TNEF and were left out",
		 end);
	CHECK_STR(why, want);
	mf_out_free(&o);

	/* a line end added in transit is no loss: no note */
	simple_stream(&o);
	mf_out_str(&o, "\r\n");
	CHECK_INT(decode_buf(&o, why, sizeof(why)), 0);
	CHECK_STR(why, "");
	mf_out_free(&o);

	/* a damaged byte with whole attributes after it: not decoded */
	simple_stream(&o);
	size_t bad = o.b.len;
	mf_out_str(&o, "\x07");
	tnef_attr(&o, 2, 0x00018010, "b.txt", 6);
	tnef_attr(&o, 2, 0x0006800F, "world", 5);
	CHECK_INT(decode_buf(&o, why, sizeof(why)), MF_ECORRUPT);
	snprintf(want, sizeof(want), "unknown attribute level 7 at byte %zu", bad);
	CHECK(strncmp(why, want, strlen(want)) == 0);
	mf_out_free(&o);

	/* an unknown level where the stream starts */
	tnef_start(&o);
	tnef_attr(&o, 3, 0x00078008, "IPM.Note", 9);
	CHECK_INT(decode_buf(&o, why, sizeof(why)), MF_ECORRUPT);
	CHECK_STR(why, "unknown attribute level 3 at byte 6");
	mf_out_free(&o);

	/* truncated inside attAttachData */
	simple_stream(&o);
	size_t at = o.b.len - 16;
	o.b.len -= 3;
	CHECK_INT(decode_buf(&o, why, sizeof(why)), MF_ECORRUPT);
	snprintf(want, sizeof(want),
		 "truncated at byte %zu: attribute attAttachData at byte %zu needs 7 bytes, 4 remain",
		 o.b.len, at);
	CHECK_STR(why, want);
	mf_out_free(&o);

	/* one bit flipped in attAttachData */
	simple_stream(&o);
	o.b.data[o.b.len - 4] ^= 1;
	CHECK_INT(decode_buf(&o, why, sizeof(why)), MF_ECORRUPT);
	snprintf(want, sizeof(want), "checksum mismatch in attribute attAttachData at byte %zu",
		 o.b.len - 16);
	CHECK_STR(why, want);

	/* and through the normalizer, as report --items shows it */
	struct mf_out m = { 0 };
	mf_out_str(&m, "From: a@example.org\r\nSubject: t\r\nMIME-Version: 1.0\r\n"
		       "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n"
		       "Content-Type: application/ms-tnef; name=\"winmail.dat\"\r\n"
		       "Content-Transfer-Encoding: base64\r\n\r\n");
	mf_b64_encode((const unsigned char *)o.b.data, o.b.len, "\r\n", &m);
	mf_out_str(&m, "--b--\r\n");
	struct mf_norm_opts no = { .crlf = true, .max_line = 998, .tnef = MF_TNEF_DECODE };
	struct mf_norm_result r;
	CHECK_INT(mf_normalize(&no, (unsigned char *)m.b.data, m.b.len, 0, &r), 0);
	CHECK_INT(r.changes, MF_NORM_TNEF_FAILED);
	snprintf(want, sizeof(want),
		 "winmail.dat kept: checksum mismatch in attribute attAttachData at byte %zu",
		 o.b.len - 16);
	CHECK_STR(r.note, want);
	CHECK(r.len == m.b.len && memcmp(r.data, m.b.data, m.b.len) == 0);
	free(r.data);
	mf_out_free(&m);
	mf_out_free(&o);

	/* a MAPI property list that ends early */
	simple_stream(&o);
	struct mf_out p = { 0 };
	prop_long(&p, 0x3705, 1);
	size_t pat = o.b.len;
	props_attr(&o, 0x00069005, 2, &p);
	CHECK_INT(decode_buf(&o, why, sizeof(why)), MF_ECORRUPT);
	snprintf(want, sizeof(want), "MAPI property list truncated in attribute attAttachment at byte %zu",
		 pat);
	CHECK_STR(why, want);
	mf_out_free(&p);
	mf_out_free(&o);
}

/* The normalizer carries the note of a decoded stream too. */
TEST(normalize_notes_left_out_bytes)
{
	size_t len;
	unsigned char *t = read_tnef("mimekit_panic.tnef", &len);
	CHECK(t != NULL);
	if (!t)
		return;
	struct mf_out m = { 0 };
	mf_out_str(&m, "From: a@example.org\r\nSubject: t\r\nMIME-Version: 1.0\r\n"
		       "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n"
		       "Content-Type: application/ms-tnef; name=\"winmail.dat\"\r\n"
		       "Content-Transfer-Encoding: base64\r\n\r\n");
	mf_b64_encode(t, len, "\r\n", &m);
	mf_out_str(&m, "--b--\r\n");
	struct mf_norm_opts no = { .crlf = true, .max_line = 998, .tnef = MF_TNEF_DECODE };
	struct mf_norm_result r;
	CHECK_INT(mf_normalize(&no, (unsigned char *)m.b.data, m.b.len, 0, &r), 0);
	CHECK_INT(r.changes, MF_NORM_TNEF);
	CHECK_STR(r.note, "winmail.dat decoded: 17497 bytes after the last attribute (from byte "
			  "49862) are not TNEF and were left out");
	free(r.data);
	mf_out_free(&m);
	free(t);
}

/* An embedded message (attach method 5, PR_ATTACH_DATA_OBJ) with Outlook's
 * down-level text in attAttachData; Content-ID in angle brackets, and
 * PR_ATTACH_DISPOSITION "inline", on a second attachment. */
TEST(embedded_message_cid_disposition)
{
	static const unsigned char rend[14] = { 0 };
	static const char stub[] = "This attachment is a MAPI 1.0 embedded message and is not "
				   "supported by this mail system.";
	struct mf_out inner = { 0 }, p = { 0 }, o = { 0 };
	tnef_start(&inner);
	tnef_attr(&inner, 1, 0x00078008, "IPM.Note", 9);
	prop_var(&p, 0x001E, 0x0037, "Inner subject", 14);
	props_attr(&inner, 0x00069003, 1, &p);
	mf_out_free(&p);

	tnef_start(&o);
	tnef_attr(&o, 1, 0x00078008, "IPM.Note", 9);
	tnef_attr(&o, 2, 0x00069002, rend, sizeof(rend));
	tnef_attr(&o, 2, 0x00018010, "Untitled Attachment", 20);
	tnef_attr(&o, 2, 0x0006800F, stub, sizeof(stub));
	struct mf_out obj = { 0 };
	static const unsigned char iid[16] = { 0x07, 0x03, 0x02, 0, 0, 0, 0, 0, 0xC0, 0, 0, 0, 0, 0,
					       0, 0x46 };
	mf_out_add(&obj, iid, sizeof(iid));
	mf_out_add(&obj, inner.b.data, inner.b.len);
	prop_var(&p, 0x001E, 0x3001, "Inner subject", 14);
	prop_long(&p, 0x3705, 5);
	prop_var(&p, 0x000D, 0x3701, obj.b.data, obj.b.len);
	props_attr(&o, 0x00069005, 3, &p);
	mf_out_free(&p);
	mf_out_free(&obj);

	tnef_attr(&o, 2, 0x00069002, rend, sizeof(rend));
	tnef_attr(&o, 2, 0x00018010, "logo.png", 9);
	tnef_attr(&o, 2, 0x0006800F, "PNG", 3);
	prop_var(&p, 0x001E, 0x3712, "<logo@example.org>", 19);
	prop_var(&p, 0x001E, 0x3716, "inline", 7);
	props_attr(&o, 0x00069005, 2, &p);
	mf_out_free(&p);

	struct decoded d;
	decode((const unsigned char *)o.b.data, o.b.len, &d);
	CHECK_INT(d.rc, 0);
	int seen = 0;
	for (size_t k = 0; k < d.n; k++) {
		if (d.parts[k].depth != 1)
			continue;
		char name[128], fname[128], disp[128], cid[128];
		part_hdr(&d, k, "content-type", "name", name, sizeof(name));
		part_hdr(&d, k, "content-disposition", "filename", fname, sizeof(fname));
		part_hdr(&d, k, "content-disposition", NULL, disp, sizeof(disp));
		part_hdr(&d, k, "content-id", NULL, cid, sizeof(cid));
		if (strcmp(d.parts[k].type, "message/rfc822") == 0) {
			CHECK_STR(name, "Inner subject");
			CHECK_STR(fname, "Untitled Attachment");
			CHECK(k + 1 < d.n);
			char subj[64];
			if (k + 1 < d.n) {
				/* the embedded message's header is parts[k+1]'s */
				part_hdr(&d, k + 1, "subject", NULL, subj, sizeof(subj));
				CHECK_STR(subj, "Inner subject");
			}
			seen |= 1;
		} else if (strcmp(fname, "Untitled Attachment") == 0) {
			struct mf_out body = { 0 };
			mf_mime_decode_body((const unsigned char *)d.msg.b.data, &d.parts[k], &body);
			CHECK(body.b.len == sizeof(stub) && memcmp(body.b.data, stub, sizeof(stub)) == 0);
			mf_out_free(&body);
			seen |= 2;
		} else if (strcmp(fname, "logo.png") == 0) {
			CHECK_STR(cid, "<logo@example.org>");
			CHECK(strncmp(disp, "inline;", 7) == 0);
			seen |= 4;
		}
	}
	CHECK_INT(seen, 7);
	decoded_free(&d);
	mf_out_free(&o);
	mf_out_free(&inner);
}

/* An embedded message without attOemCodepage reads its 8-bit strings in its
 * parent's code page (MimeKit hands the parent's to the embedded reader). */
TEST(embedded_inherits_codepage)
{
	static const unsigned char rend[14] = { 0 };
	static const unsigned char cp1251[8] = { 0xE3, 0x04, 0, 0, 0, 0, 0, 0 };
	/* "Привет.txt" in Windows-1251 */
	static const char title[] = "\xcf\xf0\xe8\xe2\xe5\xf2.txt";
	struct mf_out inner = { 0 }, p = { 0 }, o = { 0 }, obj = { 0 };
	tnef_start(&inner);
	tnef_attr(&inner, 1, 0x00078008, "IPM.Note", 9);
	tnef_attr(&inner, 2, 0x00069002, rend, sizeof(rend));
	tnef_attr(&inner, 2, 0x00018010, title, sizeof(title));
	tnef_attr(&inner, 2, 0x0006800F, "x", 1);

	tnef_start(&o);
	tnef_attr(&o, 1, 0x00069007, cp1251, sizeof(cp1251));
	tnef_attr(&o, 1, 0x00078008, "IPM.Note", 9);
	tnef_attr(&o, 2, 0x00069002, rend, sizeof(rend));
	static const unsigned char iid[16] = { 0x07, 0x03, 0x02 };
	mf_out_add(&obj, iid, sizeof(iid));
	mf_out_add(&obj, inner.b.data, inner.b.len);
	prop_long(&p, 0x3705, 5);
	prop_var(&p, 0x000D, 0x3701, obj.b.data, obj.b.len);
	props_attr(&o, 0x00069005, 2, &p);

	struct decoded d;
	decode((const unsigned char *)o.b.data, o.b.len, &d);
	CHECK_INT(d.rc, 0);
	bool hit = false;
	for (size_t k = 0; k < d.n; k++) {
		char fname[128];
		part_hdr(&d, k, "content-disposition", "filename", fname, sizeof(fname));
		if (d.parts[k].depth > 1 && strstr(fname, ".txt")) {
			CHECK_STR(fname, "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82.txt");
			hit = true;
		}
	}
	CHECK(hit);
	decoded_free(&d);
	mf_out_free(&o);
	mf_out_free(&p);
	mf_out_free(&obj);
	mf_out_free(&inner);
}

/* A message with one embedded message (method 5, PR_ATTACH_DATA_OBJ) holding
 * `inner`, with Outlook's down-level text beside it when stub is set. */
static void embed(struct mf_out *o, const struct mf_out *inner, bool stub)
{
	static const unsigned char rend[14] = { 0 };
	static const unsigned char iid[16] = { 0x07, 0x03, 0x02 };
	struct mf_out obj = { 0 }, p = { 0 };
	tnef_start(o);
	tnef_attr(o, 1, 0x00078008, "IPM.Note", 9);
	tnef_attr(o, 2, 0x00069002, rend, sizeof(rend));
	tnef_attr(o, 2, 0x00018010, "Untitled Attachment", 20);
	if (stub)
		tnef_attr(o, 2, 0x0006800F, "stub", 4);
	mf_out_add(&obj, iid, sizeof(iid));
	mf_out_add(&obj, inner->b.data, inner->b.len);
	prop_long(&p, 0x3705, 5);
	prop_var(&p, 0x000D, 0x3701, obj.b.data, obj.b.len);
	props_attr(o, 0x00069005, 2, &p);
	mf_out_free(&obj);
	mf_out_free(&p);
}

/* An embedded message that cannot be decoded is attached as the TNEF stream
 * it is (not the text beside it), and the note says which and why; one
 * nested too deep likewise. */
TEST(embedded_not_decoded_kept_and_noted)
{
	struct mf_out inner = { 0 }, o = { 0 };
	simple_stream(&inner);
	inner.b.data[inner.b.len - 4] ^= 1; /* attAttachData's checksum fails */
	embed(&o, &inner, true);
	struct decoded d;
	decode((const unsigned char *)o.b.data, o.b.len, &d);
	CHECK_INT(d.rc, 0);
	char want[256];
	snprintf(want, sizeof(want),
		 "embedded message \"Untitled Attachment\" not decoded (checksum mismatch in "
		 "attribute attAttachData at byte %zu), kept as application/ms-tnef",
		 inner.b.len - 16);
	CHECK_STR(d.why, want);
	int raw = 0;
	for (size_t k = 0; k < d.n; k++) {
		if (strcmp(d.parts[k].type, "application/ms-tnef") != 0)
			continue;
		struct mf_out body = { 0 };
		mf_mime_decode_body((const unsigned char *)d.msg.b.data, &d.parts[k], &body);
		CHECK(body.b.len == inner.b.len && memcmp(body.b.data, inner.b.data, inner.b.len) == 0);
		mf_out_free(&body);
		raw++;
	}
	CHECK_INT(raw, 1);
	decoded_free(&d);
	mf_out_free(&o);
	mf_out_free(&inner);

	/* five levels: the fifth stays a TNEF stream inside the fourth */
	simple_stream(&inner);
	for (int level = 0; level < 5; level++) {
		embed(&o, &inner, false);
		mf_out_free(&inner);
		inner = o;
		memset(&o, 0, sizeof(o));
	}
	decode((const unsigned char *)inner.b.data, inner.b.len, &d);
	CHECK_INT(d.rc, 0);
	printf("five levels: %s\n", d.why);
	CHECK(strstr(d.why, "embedded message \"Untitled Attachment\" nested deeper than 4 levels "
			    "kept as application/ms-tnef") != NULL);
	raw = 0;
	for (size_t k = 0; k < d.n; k++)
		raw += strcmp(d.parts[k].type, "application/ms-tnef") == 0;
	CHECK_INT(raw, 1);
	decoded_free(&d);
	mf_out_free(&inner);
}

/* An embedded message keeps its recipients (attRecipTable) and Message-ID
 * (PR_INTERNET_MESSAGE_ID), as MimeKit's ConvertToMessage does. */
TEST(embedded_recipients_and_message_id)
{
	struct mf_out inner = { 0 }, t = { 0 }, p = { 0 }, o = { 0 };
	tnef_start(&inner);
	tnef_attr(&inner, 1, 0x00078008, "IPM.Note", 9);
	put32(&t, 3); /* rows */
	put32(&t, 3);
	prop_long(&t, 0x0C15, 1);
	prop_var(&t, 0x001E, 0x3001, "Ann Smith", 10);
	prop_var(&t, 0x001E, 0x39FE, "ann@example.org", 16);
	put32(&t, 3);
	prop_long(&t, 0x0C15, 2);
	prop_var(&t, 0x001E, 0x3001, "Bob Ex", 7);
	prop_var(&t, 0x001E, 0x3003, "/o=ExchangeLabs/cn=bob", 23);
	put32(&t, 3);
	prop_long(&t, 0x0C15, 1);
	prop_var(&t, 0x001E, 0x3002, "SMTP", 5);
	prop_var(&t, 0x001E, 0x3003, "cy@example.org", 15);
	tnef_attr(&inner, 1, 0x00069004, t.b.data, t.b.len);
	prop_var(&p, 0x001E, 0x1035, "<abc@example.org>", 18);
	props_attr(&inner, 0x00069003, 1, &p);
	embed(&o, &inner, false);

	struct decoded d;
	decode((const unsigned char *)o.b.data, o.b.len, &d);
	CHECK_INT(d.rc, 0);
	size_t k = 0;
	while (k < d.n && strcmp(d.parts[k].type, "message/rfc822") != 0)
		k++;
	CHECK(k + 1 < d.n);
	if (k + 1 < d.n) {
		char v[256];
		part_hdr(&d, k + 1, "to", NULL, v, sizeof(v));
		CHECK_STR(v, "\"Ann Smith\" <ann@example.org>,\r\n <cy@example.org>");
		part_hdr(&d, k + 1, "cc", NULL, v, sizeof(v));
		CHECK_STR(v, "\"Bob Ex\":;");
		part_hdr(&d, k + 1, "message-id", NULL, v, sizeof(v));
		CHECK_STR(v, "<abc@example.org>");
	}
	decoded_free(&d);
	mf_out_free(&o);
	mf_out_free(&p);
	mf_out_free(&inner);

	/* a table that claims a fourth row: the stream decodes, the three
	 * rows are there, and the note says the rest is missing */
	t.b.data[0] = 4;
	tnef_start(&inner);
	tnef_attr(&inner, 1, 0x00078008, "IPM.Note", 9);
	size_t at = inner.b.len;
	tnef_attr(&inner, 1, 0x00069004, t.b.data, t.b.len);
	embed(&o, &inner, false);
	decode((const unsigned char *)o.b.data, o.b.len, &d);
	CHECK_INT(d.rc, 0);
	char want[256];
	snprintf(want, sizeof(want),
		 "in embedded message \"Untitled Attachment\": recipient table damaged, recipients "
		 "from there on left out (MAPI property list truncated at byte %zu)",
		 at);
	CHECK_STR(d.why, want);
	CHECK(memmem(d.msg.b.data, d.msg.b.len, "Cc: \"Bob Ex\":;", 14) != NULL);
	decoded_free(&d);
	mf_out_free(&o);
	mf_out_free(&t);
	mf_out_free(&inner);
}

int main(void)
{
	const char *src = getenv("MF_SRC");
	snprintf(dir, sizeof(dir), "%s/tests/data/tnef", src && *src ? src : ".");
	RUN(mimekit_lists);
	RUN(panic_inline_images);
	RUN(christmas_embedded_messages);
	RUN(reasons_name_attribute_and_byte);
	RUN(normalize_notes_left_out_bytes);
	RUN(embedded_message_cid_disposition);
	RUN(embedded_inherits_codepage);
	RUN(embedded_not_decoded_kept_and_noted);
	RUN(embedded_recipients_and_message_id);
	return test_done();
}
