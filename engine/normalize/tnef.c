/* tnef.c - TNEF (winmail.dat) to MIME: attributes, MAPI property lists,
 * embedded messages and meeting requests (compressed RTF and HTML
 * encapsulated in RTF: rtf.c; header encodings: mimeenc.c). See tnef.h for
 * why this is our own code and not libytnef. */
#include "tnef.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../error.h"

#define TNEF_SIGNATURE 0x223E9F78u
#define TNEF_MAX_DEPTH 4
#define TNEF_MAX_ATTACH 1024
#define MAPI_MAX_PROPS 65536
#define TNEF_MAX_RCPT 4096

/* TNEF attribute ids (low 16 bits of the attribute tag). */
enum {
	ATT_FROM = 0x8000,
	ATT_SUBJECT = 0x8004,
	ATT_DATE_SENT = 0x8005,
	ATT_MESSAGE_CLASS = 0x8008,
	ATT_BODY = 0x800C,
	ATT_ATTACH_DATA = 0x800F,
	ATT_ATTACH_TITLE = 0x8010,
	ATT_ATTACH_CREATE_DATE = 0x8012,
	ATT_ATTACH_MODIFY_DATE = 0x8013,
	ATT_DATE_START = 0x0006,
	ATT_DATE_END = 0x0007,
	ATT_ATTACH_RENDDATA = 0x9002,
	ATT_MSG_PROPS = 0x9003,
	ATT_RECIP_TABLE = 0x9004,
	ATT_ATTACHMENT = 0x9005,
	ATT_OEM_CODEPAGE = 0x9007,
};

/* MS-OXTNEF's name of a whole attribute tag (type and id), NULL when the tag
 * is not one it defines. The names go into the report's reasons, and only
 * a defined tag counts as the start of an attribute when telling data
 * appended after the stream from damage inside it. */
static const char *att_tag_name(uint32_t tag)
{
	static const struct {
		uint32_t tag;
		const char *name;
	} names[] = {
		{ 0x00000000, "attNull" },
		{ 0x00008000, "attFrom" },
		{ 0x00018004, "attSubject" },
		{ 0x00018009, "attMessageID" },
		{ 0x0001800A, "attParentID" },
		{ 0x0001800B, "attConversationID" },
		{ 0x00018010, "attAttachTitle" },
		{ 0x0002800C, "attBody" },
		{ 0x00030006, "attDateStart" },
		{ 0x00030007, "attDateEnd" },
		{ 0x00038005, "attDateSent" },
		{ 0x00038006, "attDateRecd" },
		{ 0x00038012, "attAttachCreateDate" },
		{ 0x00038013, "attAttachModifyDate" },
		{ 0x00038020, "attDateModified" },
		{ 0x00040009, "attRequestRes" },
		{ 0x0004800D, "attPriority" },
		{ 0x00050008, "attAidOwner" },
		{ 0x00060000, "attOwner" },
		{ 0x00060001, "attSentFor" },
		{ 0x00060002, "attDelegate" },
		{ 0x00068007, "attMessageStatus" },
		{ 0x0006800F, "attAttachData" },
		{ 0x00068011, "attAttachMetaFile" },
		{ 0x00069001, "attAttachTransportFilename" },
		{ 0x00069002, "attAttachRenddata" },
		{ 0x00069003, "attMsgProps" },
		{ 0x00069004, "attRecipTable" },
		{ 0x00069005, "attAttachment" },
		{ 0x00069007, "attOemCodepage" },
		{ 0x00070006, "attOriginalMessageClass" },
		{ 0x00078008, "attMessageClass" },
		{ 0x00089006, "attTnefVersion" },
	};
	for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++)
		if (names[k].tag == tag)
			return names[k].name;
	return NULL;
}

/* "attAttachData" or "0x12345678" for a reason text. */
static const char *tag_label(uint32_t tag, char *buf, size_t bufsz)
{
	const char *n = att_tag_name(tag);
	if (n)
		return n;
	snprintf(buf, bufsz, "0x%08x", (unsigned)tag);
	return buf;
}

/* Append a note to buf ("; " between notes); what does not fit is cut. */
static void add_why(char *buf, size_t bufsz, const char *note)
{
	size_t used = strnlen(buf, bufsz);
	if (!bufsz || used + 1 >= bufsz)
		return;
	snprintf(buf + used, bufsz - used, "%s%s", used ? "; " : "", note);
}

/* MAPI property types and ids. */
enum {
	PT_SHORT = 0x0002,
	PT_LONG = 0x0003,
	PT_FLOAT = 0x0004,
	PT_DOUBLE = 0x0005,
	PT_CURRENCY = 0x0006,
	PT_APPTIME = 0x0007,
	PT_ERROR = 0x000A,
	PT_BOOLEAN = 0x000B,
	PT_OBJECT = 0x000D,
	PT_I8 = 0x0014,
	PT_STRING8 = 0x001E,
	PT_UNICODE = 0x001F,
	PT_SYSTIME = 0x0040,
	PT_CLSID = 0x0048,
	PT_BINARY = 0x0102,
	MV_FLAG = 0x1000,
};
enum {
	PR_SUBJECT = 0x0037,
	PR_MESSAGE_CLASS = 0x001A,
	PR_START_DATE = 0x0060,
	PR_END_DATE = 0x0061,
	PR_SENDER_NAME = 0x0C1A,
	PR_SENDER_EMAIL = 0x0C1F,
	PR_BODY = 0x1000,
	PR_RTF_COMPRESSED = 0x1009,
	PR_BODY_HTML = 0x1013,
	PR_RECIPIENT_TYPE = 0x0C15,
	PR_INTERNET_MESSAGE_ID = 0x1035,
	PR_DISPLAY_NAME = 0x3001,
	PR_ADDRTYPE = 0x3002,
	PR_EMAIL_ADDRESS = 0x3003,
	PR_SMTP_ADDRESS = 0x39FE,
	PR_CREATION_TIME = 0x3007,
	PR_LAST_MODIFICATION_TIME = 0x3008,
	PR_ATTACH_DATA = 0x3701,
	PR_ATTACH_FILENAME = 0x3704,
	PR_ATTACH_METHOD = 0x3705,
	PR_ATTACH_LONG_FILENAME = 0x3707,
	PR_ATTACH_MIME_TAG = 0x370E,
	PR_ATTACH_CONTENT_ID = 0x3712,
	PR_ATTACH_FLAGS = 0x3714,
	PR_ATTACH_DISPOSITION = 0x3716,
	PR_INTERNET_CPID = 0x3FDE,
};

struct tnef_att {
	char *title, *long_name, *short_name, *display, *mime, *cid, *disp;
	const unsigned char *data; /* attAttachData */
	size_t len;
	const unsigned char *bin; /* PR_ATTACH_DATA as binary */
	size_t binlen;
	const unsigned char *obj; /* PR_ATTACH_DATA as object (IID + data) */
	size_t objlen;
	uint32_t method, flags; /* PR_ATTACH_METHOD, PR_ATTACH_FLAGS */
	int64_t ctime, mtime;
};

/* A row of attRecipTable. */
struct tnef_rcpt {
	char *name, *email, *addrtype, *smtp;
	uint32_t type; /* PR_RECIPIENT_TYPE: 1 To, 2 Cc, 3 Bcc */
};

struct tnef {
	uint32_t cp, html_cp;
	char *msgclass, *subject, *sender_name, *sender_email, *msgid;
	struct tnef_rcpt *rcpt;
	size_t nrcpt, rcptcap;
	char rcpt_why[128]; /* why attRecipTable could not be read, "" if it could */
	char *text; /* UTF-8 */
	const unsigned char *html;
	size_t htmllen;
	const unsigned char *rtf;
	size_t rtflen;
	int64_t sent, start, end;
	struct tnef_att *att;
	size_t natt, attcap;
	const unsigned char *raw; /* the stream, for content-derived ids */
	size_t rawlen;
	int err; /* MF_ENOMEM */
};

static uint16_t rd16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

bool mf_tnef_sniff(const unsigned char *buf, size_t len)
{
	return len >= 6 && rd32(buf) == TNEF_SIGNATURE;
}

/* ---- strings --------------------------------------------------------------- */

static void utf16_to_utf8(const unsigned char *p, size_t len, struct mf_out *o)
{
	for (size_t i = 0; i + 1 < len; i += 2) {
		uint32_t c = rd16(p + i);
		if (c == 0)
			break;
		if (c >= 0xD800 && c < 0xDC00 && i + 3 < len) {
			uint32_t lo = rd16(p + i + 2);
			if (lo >= 0xDC00 && lo < 0xE000) {
				c = 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00);
				i += 2;
			}
		}
		mf_utf8_put(o, c);
	}
}

/* Bytes in Windows code page cp to UTF-8 (bytes that do not convert become
 * U+FFFD). No code page, and the UTF-16 ones that cannot describe 8-bit
 * strings, mean Windows-1252. */
static void cp_to_utf8(uint32_t cp, const unsigned char *p, size_t len, struct mf_out *o)
{
	char mime[32], name[32];
	if (cp == 0 || cp == 1200 || cp == 1201 || cp > 65535)
		cp = 1252;
	mf_codepage_names((int)cp, mime, sizeof(mime), name, sizeof(name));
	mf_charset_to_utf8(name, p, len, o);
}

/* A malloc'd UTF-8 copy of a MAPI/TNEF string value (stops at NUL). */
static char *dup_string(struct tnef *t, const unsigned char *p, size_t len, bool unicode)
{
	struct mf_out o = { 0 };
	if (unicode) {
		utf16_to_utf8(p, len, &o);
	} else {
		const unsigned char *nul = memchr(p, 0, len);
		cp_to_utf8(t->cp, p, nul ? (size_t)(nul - p) : len, &o);
	}
	mf_out_add(&o, "", 1);
	if (o.err) {
		t->err = MF_ENOMEM;
		mf_out_free(&o);
		return NULL;
	}
	/* trim trailing NULs and blanks */
	size_t n = strlen(o.b.data);
	while (n && (o.b.data[n - 1] == ' ' || o.b.data[n - 1] == '\r' || o.b.data[n - 1] == '\n'))
		o.b.data[--n] = '\0';
	return o.b.data;
}

static void set_string(struct tnef *t, char **dst, const unsigned char *p, size_t len, bool unicode)
{
	char *s = dup_string(t, p, len, unicode);
	if (!s)
		return;
	if (!*s) {
		free(s);
		return;
	}
	free(*dst);
	*dst = s;
}

static int64_t filetime_to_unix(uint64_t ft)
{
	return (int64_t)(ft / 10000000u) - 11644473600LL;
}

/* attDate: seven little-endian words (year, month, day, hour, min, sec, dow). */
static int64_t tnef_date(const unsigned char *p, size_t len)
{
	if (len < 12)
		return 0;
	int y = rd16(p), mo = rd16(p + 2), d = rd16(p + 4);
	int h = rd16(p + 6), mi = rd16(p + 8), s = rd16(p + 10);
	if (y < 1601 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
	    s > 60)
		return 0;
	return mf_mime_timegm(y, mo, d, h, mi, s);
}

/* ---- MAPI property lists ----------------------------------------------------- */

struct prop {
	uint16_t type, id;
	const unsigned char *v; /* first value */
	size_t vlen;
};

typedef void mf_tnef_prop_cb(struct tnef *t, struct tnef_att *a, const struct prop *pr);

static size_t fixed_size(uint16_t base)
{
	switch (base) {
	case PT_SHORT:
	case PT_LONG:
	case PT_FLOAT:
	case PT_ERROR:
	case PT_BOOLEAN:
	case 0x0001: /* PT_NULL */
		return 4;
	case PT_DOUBLE:
	case PT_CURRENCY:
	case PT_APPTIME:
	case PT_I8:
	case PT_SYSTIME:
		return 8;
	case PT_CLSID:
		return 16;
	default:
		return 0;
	}
}

/* One property list (a count, then the properties) at p[0..len); *used (if
 * not NULL) gets the bytes it took, for the rows of attRecipTable. */
static int parse_props(struct tnef *t, struct tnef_att *a, const unsigned char *p, size_t len,
		       mf_tnef_prop_cb *cb, char *why, size_t whysz, size_t *used)
{
	if (len < 4) {
		snprintf(why, whysz, "MAPI property list truncated");
		return MF_ECORRUPT;
	}
	uint32_t count = rd32(p);
	size_t i = 4;
	if (count > MAPI_MAX_PROPS || count > (len - 4) / 4) {
		snprintf(why, whysz, "MAPI property count %u impossible", (unsigned)count);
		return MF_ECORRUPT;
	}
	for (uint32_t k = 0; k < count; k++) {
		if (len - i < 4)
			goto truncated;
		struct prop pr = { .type = rd16(p + i), .id = rd16(p + i + 2) };
		i += 4;
		if (pr.id >= 0x8000) { /* named property: GUID, kind, id or name */
			if (len - i < 20)
				goto truncated;
			uint32_t kind = rd32(p + i + 16);
			i += 20;
			if (len - i < 4)
				goto truncated;
			if (kind == 1) {
				uint32_t nl = rd32(p + i);
				i += 4;
				size_t padded = ((size_t)nl + 3) & ~(size_t)3;
				if (nl > len - i || padded > len - i)
					goto truncated;
				i += padded;
			} else {
				i += 4;
			}
		}
		uint16_t base = pr.type & 0x0FFF;
		bool var = base == PT_STRING8 || base == PT_UNICODE || base == PT_BINARY ||
			   base == PT_OBJECT;
		size_t fsz = fixed_size(base);
		if (!var && !fsz) {
			snprintf(why, whysz, "unknown MAPI property type 0x%04x", (unsigned)pr.type);
			return MF_ECORRUPT;
		}
		uint32_t nval = 1;
		if (var || (pr.type & MV_FLAG)) {
			if (len - i < 4)
				goto truncated;
			nval = rd32(p + i);
			i += 4;
			if (nval > (len - i) / 4 + 1) {
				snprintf(why, whysz, "MAPI value count %u impossible", (unsigned)nval);
				return MF_ECORRUPT;
			}
		}
		for (uint32_t v = 0; v < nval; v++) {
			const unsigned char *vp;
			size_t vl;
			if (var) {
				if (len - i < 4)
					goto truncated;
				uint32_t l = rd32(p + i);
				i += 4;
				size_t padded = ((size_t)l + 3) & ~(size_t)3;
				if (l > len - i)
					goto truncated;
				if (padded > len - i)
					padded = len - i; /* last value without padding */
				vp = p + i;
				vl = l;
				i += padded;
			} else {
				if (len - i < fsz)
					goto truncated;
				vp = p + i;
				vl = fsz;
				i += fsz;
			}
			if (v == 0) {
				pr.v = vp;
				pr.vlen = vl;
			}
		}
		if (nval && pr.v && pr.id < 0x8000 && !(pr.type & MV_FLAG))
			cb(t, a, &pr);
		if (t->err)
			return t->err;
	}
	if (used)
		*used = i;
	return 0;
truncated:
	snprintf(why, whysz, "MAPI property list truncated");
	return MF_ECORRUPT;
}

static bool is_str(const struct prop *pr)
{
	return pr->type == PT_STRING8 || pr->type == PT_UNICODE;
}

static void msg_prop(struct tnef *t, struct tnef_att *a, const struct prop *pr)
{
	(void)a;
	bool uni = pr->type == PT_UNICODE;
	switch (pr->id) {
	case PR_SUBJECT:
		if (is_str(pr))
			set_string(t, &t->subject, pr->v, pr->vlen, uni);
		break;
	case PR_MESSAGE_CLASS:
		if (is_str(pr))
			set_string(t, &t->msgclass, pr->v, pr->vlen, uni);
		break;
	case PR_SENDER_NAME:
		if (is_str(pr))
			set_string(t, &t->sender_name, pr->v, pr->vlen, uni);
		break;
	case PR_SENDER_EMAIL:
		if (is_str(pr))
			set_string(t, &t->sender_email, pr->v, pr->vlen, uni);
		break;
	case PR_INTERNET_MESSAGE_ID:
		if (is_str(pr))
			set_string(t, &t->msgid, pr->v, pr->vlen, uni);
		break;
	case PR_BODY:
		if (is_str(pr))
			set_string(t, &t->text, pr->v, pr->vlen, uni);
		break;
	case PR_BODY_HTML:
		if (pr->type == PT_BINARY || pr->type == PT_STRING8) {
			t->html = pr->v;
			t->htmllen = pr->vlen;
			const unsigned char *nul = memchr(pr->v, 0, pr->vlen);
			if (nul)
				t->htmllen = (size_t)(nul - pr->v);
		}
		break;
	case PR_RTF_COMPRESSED:
		if (pr->type == PT_BINARY) {
			t->rtf = pr->v;
			t->rtflen = pr->vlen;
		}
		break;
	case PR_INTERNET_CPID:
		if (pr->type == PT_LONG)
			t->html_cp = rd32(pr->v);
		break;
	case PR_START_DATE:
		if (pr->type == PT_SYSTIME)
			t->start = filetime_to_unix((uint64_t)rd32(pr->v) |
						    (uint64_t)rd32(pr->v + 4) << 32);
		break;
	case PR_END_DATE:
		if (pr->type == PT_SYSTIME)
			t->end = filetime_to_unix((uint64_t)rd32(pr->v) |
						  (uint64_t)rd32(pr->v + 4) << 32);
		break;
	default:
		break;
	}
}

static void att_prop(struct tnef *t, struct tnef_att *a, const struct prop *pr)
{
	bool uni = pr->type == PT_UNICODE;
	switch (pr->id) {
	case PR_ATTACH_LONG_FILENAME:
		if (is_str(pr))
			set_string(t, &a->long_name, pr->v, pr->vlen, uni);
		break;
	case PR_ATTACH_FILENAME:
		if (is_str(pr))
			set_string(t, &a->short_name, pr->v, pr->vlen, uni);
		break;
	case PR_DISPLAY_NAME:
		if (is_str(pr))
			set_string(t, &a->display, pr->v, pr->vlen, uni);
		break;
	case PR_ATTACH_MIME_TAG:
		if (is_str(pr))
			set_string(t, &a->mime, pr->v, pr->vlen, uni);
		break;
	case PR_ATTACH_CONTENT_ID:
		if (is_str(pr))
			set_string(t, &a->cid, pr->v, pr->vlen, uni);
		break;
	case PR_ATTACH_DISPOSITION:
		if (is_str(pr))
			set_string(t, &a->disp, pr->v, pr->vlen, uni);
		break;
	case PR_ATTACH_METHOD:
		if (pr->type == PT_LONG)
			a->method = rd32(pr->v);
		break;
	case PR_ATTACH_FLAGS:
		if (pr->type == PT_LONG)
			a->flags = rd32(pr->v);
		break;
	case PR_ATTACH_DATA:
		if (pr->type == PT_BINARY) {
			a->bin = pr->v;
			a->binlen = pr->vlen;
		} else if (pr->type == PT_OBJECT) {
			a->obj = pr->v;
			a->objlen = pr->vlen;
		}
		break;
	case PR_CREATION_TIME:
		if (pr->type == PT_SYSTIME)
			a->ctime = filetime_to_unix((uint64_t)rd32(pr->v) |
						    (uint64_t)rd32(pr->v + 4) << 32);
		break;
	case PR_LAST_MODIFICATION_TIME:
		if (pr->type == PT_SYSTIME)
			a->mtime = filetime_to_unix((uint64_t)rd32(pr->v) |
						    (uint64_t)rd32(pr->v + 4) << 32);
		break;
	default:
		break;
	}
}

static void rcpt_prop(struct tnef *t, struct tnef_att *a, const struct prop *pr)
{
	(void)a;
	struct tnef_rcpt *r = &t->rcpt[t->nrcpt - 1];
	bool uni = pr->type == PT_UNICODE;
	switch (pr->id) {
	case PR_RECIPIENT_TYPE:
		if (pr->type == PT_LONG)
			r->type = rd32(pr->v);
		break;
	case PR_DISPLAY_NAME:
		if (is_str(pr))
			set_string(t, &r->name, pr->v, pr->vlen, uni);
		break;
	case PR_EMAIL_ADDRESS:
		if (is_str(pr))
			set_string(t, &r->email, pr->v, pr->vlen, uni);
		break;
	case PR_ADDRTYPE:
		if (is_str(pr))
			set_string(t, &r->addrtype, pr->v, pr->vlen, uni);
		break;
	case PR_SMTP_ADDRESS:
		if (is_str(pr))
			set_string(t, &r->smtp, pr->v, pr->vlen, uni);
		break;
	default:
		break;
	}
}

/* attRecipTable: a row count, then per row a property list. An embedded
 * message's To, Cc and Bcc come from here (MimeKit reads them the same). */
static int parse_rcpt_table(struct tnef *t, const unsigned char *p, size_t len, char *why,
			    size_t whysz)
{
	if (len < 4) {
		snprintf(why, whysz, "recipient table truncated");
		return MF_ECORRUPT;
	}
	uint32_t rows = rd32(p);
	if (rows > TNEF_MAX_RCPT || rows > (len - 4) / 4) {
		snprintf(why, whysz, "recipient row count %u impossible", (unsigned)rows);
		return MF_ECORRUPT;
	}
	size_t off = 4;
	for (uint32_t k = 0; k < rows; k++) {
		if (t->nrcpt == t->rcptcap) {
			size_t cap = t->rcptcap ? 2 * t->rcptcap : 8;
			struct tnef_rcpt *g = realloc(t->rcpt, cap * sizeof(*g));
			if (!g)
				return t->err = MF_ENOMEM;
			t->rcpt = g;
			t->rcptcap = cap;
		}
		if (t->nrcpt == TNEF_MAX_RCPT) {
			snprintf(why, whysz, "more than %d recipients", TNEF_MAX_RCPT);
			return MF_ECORRUPT;
		}
		memset(&t->rcpt[t->nrcpt++], 0, sizeof(t->rcpt[0]));
		size_t used = 0;
		int rc = parse_props(t, NULL, p + off, len - off, rcpt_prop, why, whysz, &used);
		if (rc)
			return rc;
		off += used;
	}
	return 0;
}

/* ---- the attribute stream ------------------------------------------------------ */

static struct tnef_att *new_att(struct tnef *t)
{
	if (t->natt == TNEF_MAX_ATTACH)
		return NULL;
	if (t->natt == t->attcap) {
		size_t cap = t->attcap ? 2 * t->attcap : 8;
		struct tnef_att *g = realloc(t->att, cap * sizeof(*g));
		if (!g) {
			t->err = MF_ENOMEM;
			return NULL;
		}
		t->att = g;
		t->attcap = cap;
	}
	memset(&t->att[t->natt], 0, sizeof(t->att[0]));
	return &t->att[t->natt++];
}

static void tnef_free(struct tnef *t)
{
	for (size_t i = 0; i < t->natt; i++) {
		struct tnef_att *a = &t->att[i];
		free(a->title);
		free(a->long_name);
		free(a->short_name);
		free(a->display);
		free(a->mime);
		free(a->cid);
		free(a->disp);
	}
	free(t->att);
	for (size_t i = 0; i < t->nrcpt; i++) {
		free(t->rcpt[i].name);
		free(t->rcpt[i].email);
		free(t->rcpt[i].addrtype);
		free(t->rcpt[i].smtp);
	}
	free(t->rcpt);
	free(t->msgid);
	free(t->msgclass);
	free(t->subject);
	free(t->sender_name);
	free(t->sender_email);
	free(t->text);
	memset(t, 0, sizeof(*t));
}

/* Can an attribute start at p[j]: a level byte MS-OXTNEF allows, a tag it
 * defines, and a length that fits in what remains? */
static bool plausible_header(const unsigned char *p, size_t len, size_t j)
{
	if (len - j < 11 || (p[j] != 1 && p[j] != 2) || !att_tag_name(rd32(p + j + 1)))
		return false;
	return rd32(p + j + 5) <= len - j - 11;
}

/* Does a whole attribute (plausible header, matching checksum) start
 * anywhere in p[from..len)? If so, bytes at `from` that cannot start an
 * attribute are damage inside the stream, not data appended after its end.
 * The checksum work is capped at len bytes; past the cap the answer is yes,
 * so that the stream is kept rather than cut short. */
static bool attribute_follows(const unsigned char *p, size_t len, size_t from)
{
	size_t budget = len;
	for (size_t j = from; j < len; j++) {
		if (!plausible_header(p, len, j))
			continue;
		size_t al = rd32(p + j + 5);
		if (al == 0 || rd32(p + j + 1) == 0)
			continue; /* an empty attNull is any run of zeros after a 1 */
		if (al > budget)
			return true;
		budget -= al;
		uint16_t sum = 0;
		for (size_t k = 0; k < al; k++)
			sum = (uint16_t)(sum + p[j + 9 + k]);
		if (sum == rd16(p + j + 9 + al))
			return true;
	}
	return false;
}

/* Bytes that a transport may add after the stream (line ends, padding). */
static bool only_padding(const unsigned char *p, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (p[k] != '\r' && p[k] != '\n' && p[k] != '\0' && p[k] != ' ')
			return false;
	return true;
}

/* Parse the attribute stream. Returns 0 with notes on what was left out in
 * why (empty when nothing), or MF_ECORRUPT with the reason in why. The rules,
 * compared with MimeKit's TnefReader (loose mode) and libytnef:
 *  - a checksum that does not match, or an attribute that claims more bytes
 *    than remain (truncation), keeps the whole stream undecoded: the data it
 *    would give is not the data that was sent. MimeKit decodes on in loose
 *    mode; we do not guess.
 *  - bytes after a complete attribute that cannot start one (a level other
 *    than 1 or 2, or a tag MS-OXTNEF does not define) end the stream when no
 *    whole attribute follows anywhere in them: data appended after the TNEF
 *    (MimeKit's panic.tnef has 17 KB of base64 text there). Everything before
 *    them is decoded and a note says how many bytes were left out. When a
 *    whole attribute does follow, it is damage inside the stream: undecoded.
 *  - unknown tags of a valid level are skipped, as both readers do. */
static int tnef_parse(struct tnef *t, const unsigned char *p, size_t len, uint32_t cp,
		      char *why, size_t whysz)
{
	memset(t, 0, sizeof(*t));
	t->cp = cp; /* until attOemCodepage says otherwise */
	t->raw = p;
	t->rawlen = len;
	if (whysz)
		why[0] = '\0';
	if (!mf_tnef_sniff(p, len)) {
		snprintf(why, whysz, "no TNEF signature");
		return MF_ECORRUPT;
	}
	size_t i = 6;
	struct tnef_att *cur = NULL;
	size_t nattr = 0;
	char lbl[16];
	while (i < len) {
		size_t left = len - i;
		unsigned level = left ? p[i] : 0;
		uint32_t tag = left >= 5 ? rd32(p + i + 1) : 0;
		uint32_t alen = left >= 9 ? rd32(p + i + 5) : 0;
		size_t ds = i + 9;
		bool level_ok = left >= 9 && (level == 1 || level == 2);
		bool fits = left >= 11 && alen <= left - 11;
		const unsigned char *d = p + ds;
		bool sum_ok = false;
		if (fits) {
			uint16_t sum = 0;
			for (size_t k = 0; k < alen; k++)
				sum = (uint16_t)(sum + d[k]);
			sum_ok = sum == rd16(d + alen);
		}
		/* not an attribute at all, after whole ones: appended data? */
		if (nattr && !(level_ok && (att_tag_name(tag) || sum_ok)) &&
		    !attribute_follows(p, len, i + 1)) {
			if (!only_padding(p + i, left)) {
				char note[128];
				snprintf(note, sizeof(note),
					 "%zu byte%s after the last attribute (from byte %zu) %s not TNEF "
					 "and %s left out",
					 left, left == 1 ? "" : "s", i, left == 1 ? "is" : "are",
					 left == 1 ? "was" : "were");
				add_why(why, whysz, note);
			}
			break;
		}
		if (left < 9) {
			snprintf(why, whysz,
				 "truncated at byte %zu: %zu bytes left, an attribute header takes 9", len,
				 left);
			return MF_ECORRUPT;
		}
		if (!level_ok) {
			snprintf(why, whysz, "unknown attribute level %u at byte %zu%s", level, i,
				 nattr ? " (whole attributes follow: damage inside the stream)" : "");
			return MF_ECORRUPT;
		}
		if (!fits) {
			snprintf(why, whysz,
				 "truncated at byte %zu: attribute %s at byte %zu needs %llu bytes, %zu "
				 "remain",
				 len, tag_label(tag, lbl, sizeof(lbl)), i,
				 (unsigned long long)alen + 2, len - ds);
			return MF_ECORRUPT;
		}
		if (!sum_ok) {
			snprintf(why, whysz, "checksum mismatch in attribute %s at byte %zu",
				 tag_label(tag, lbl, sizeof(lbl)), i);
			return MF_ECORRUPT;
		}
		uint16_t id = (uint16_t)(tag & 0xFFFF);
		int rc = 0;
		char pwhy[128] = "";
		if (level == 1) {
			switch (id) {
			case ATT_OEM_CODEPAGE:
				if (alen >= 4 && rd32(d))
					t->cp = rd32(d);
				break;
			case ATT_MESSAGE_CLASS:
				set_string(t, &t->msgclass, d, alen, false);
				break;
			case ATT_SUBJECT:
				set_string(t, &t->subject, d, alen, false);
				break;
			case ATT_BODY:
				if (!t->text)
					set_string(t, &t->text, d, alen, false);
				break;
			case ATT_DATE_SENT:
				t->sent = tnef_date(d, alen);
				break;
			case ATT_DATE_START:
				if (!t->start)
					t->start = tnef_date(d, alen);
				break;
			case ATT_DATE_END:
				if (!t->end)
					t->end = tnef_date(d, alen);
				break;
			case ATT_MSG_PROPS:
				rc = parse_props(t, NULL, d, alen, msg_prop, pwhy, sizeof(pwhy), NULL);
				break;
			case ATT_RECIP_TABLE:
				/* only an embedded message's header uses it: a table
				 * we cannot read costs its recipients (noted there),
				 * not the stream */
				if (parse_rcpt_table(t, d, alen, pwhy, sizeof(pwhy)) == MF_ECORRUPT) {
					snprintf(t->rcpt_why, sizeof(t->rcpt_why), "%s at byte %zu",
						 pwhy, i);
					pwhy[0] = '\0';
				}
				break;
			default:
				break;
			}
		} else {
			if (id == ATT_ATTACH_RENDDATA || !cur) {
				cur = new_att(t);
				if (!cur) {
					if (t->err)
						return t->err;
					snprintf(why, whysz, "more than %d attachments", TNEF_MAX_ATTACH);
					return MF_ECORRUPT;
				}
			}
			switch (id) {
			case ATT_ATTACH_TITLE:
				set_string(t, &cur->title, d, alen, false);
				break;
			case ATT_ATTACH_DATA:
				cur->data = d;
				cur->len = alen;
				break;
			case ATT_ATTACH_CREATE_DATE:
				cur->ctime = tnef_date(d, alen);
				break;
			case ATT_ATTACH_MODIFY_DATE:
				cur->mtime = tnef_date(d, alen);
				break;
			case ATT_ATTACHMENT:
				rc = parse_props(t, cur, d, alen, att_prop, pwhy, sizeof(pwhy), NULL);
				break;
			default:
				break;
			}
		}
		if (t->err)
			return t->err;
		if (rc) {
			snprintf(why, whysz, "%s in attribute %s at byte %zu", pwhy,
				 tag_label(tag, lbl, sizeof(lbl)), i);
			return rc;
		}
		nattr++;
		i = ds + alen + 2;
	}
	if (!nattr) {
		snprintf(why, whysz, "TNEF stream has no attributes");
		return MF_ECORRUPT;
	}
	return 0;
}

/* ---- MIME building -------------------------------------------------------------- */

/* The Content-ID to write for PR_ATTACH_CONTENT_ID s, without the angle
 * brackets some writers include, into out; false when it is empty, has
 * bytes a msg-id cannot hold, or would not fit a header line. */
static bool plain_cid(const char *s, char *out, size_t outsz)
{
	size_t n = strlen(s);
	if (n >= 2 && s[0] == '<' && s[n - 1] == '>') {
		s++;
		n -= 2;
	}
	if (n == 0 || n >= outsz || n > 900)
		return false;
	for (size_t k = 0; k < n; k++) {
		unsigned char c = (unsigned char)s[k];
		if (c <= 32 || c >= 127 || c == '"' || c == '\\' || c == '<' || c == '>')
			return false;
	}
	memcpy(out, s, n);
	out[n] = '\0';
	return true;
}

/* ; param="value" or its RFC 2231 form, each section on its own folded line. */
static void put_param(struct mf_out *o, const char *param, const char *value, const char *eol)
{
	char sep[8];
	snprintf(sep, sizeof(sep), ";%s ", eol);
	mf_hdr_param(o, sep, param, value);
}

static const char *guess_type(const char *name)
{
	static const struct {
		const char *ext, *type;
	} map[] = {
		{ ".pdf", "application/pdf" },	 { ".doc", "application/msword" },
		{ ".xls", "application/vnd.ms-excel" },
		{ ".ppt", "application/vnd.ms-powerpoint" },
		{ ".docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document" },
		{ ".xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" },
		{ ".pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation" },
		{ ".zip", "application/zip" },	 { ".jpg", "image/jpeg" },
		{ ".jpeg", "image/jpeg" },	 { ".png", "image/png" },
		{ ".gif", "image/gif" },	 { ".bmp", "image/bmp" },
		{ ".txt", "text/plain" },	 { ".htm", "text/html" },
		{ ".html", "text/html" },	 { ".xml", "application/xml" },
		{ ".rtf", "application/rtf" },	 { ".mp3", "audio/mpeg" },
		{ ".wav", "audio/wav" },	 { ".ics", "text/calendar" },
		{ ".vcf", "text/vcard" },	 { ".eml", "message/rfc822" },
	};
	const char *dot = name ? strrchr(name, '.') : NULL;
	if (dot)
		for (size_t k = 0; k < sizeof(map) / sizeof(map[0]); k++)
			if (strcasecmp(dot, map[k].ext) == 0)
				return map[k].type;
	return "application/octet-stream";
}

static bool sane_mime(const char *m)
{
	if (!m || !strchr(m, '/') || strlen(m) > 100)
		return false;
	for (const char *p = m; *p; p++)
		if (*p <= 32 || *p >= 127 || *p == ';' || *p == '"')
			return false;
	return true;
}

static const char *att_name(const struct tnef_att *a)
{
	if (a->long_name)
		return a->long_name;
	if (a->title)
		return a->title;
	if (a->short_name)
		return a->short_name;
	if (a->display)
		return a->display;
	return "Untitled Attachment";
}

/* Content-Type (with name), Content-Disposition (with filename and dates;
 * inline when PR_ATTACH_FLAGS says the body renders it, ATT_MHTML_REF, or
 * PR_ATTACH_DISPOSITION says so, as MimeKit reads them) and Content-ID of
 * an attachment, each line ended with eol; the blank line is the caller's. */
static void put_att_headers(struct mf_out *o, const char *type, const struct tnef_att *a,
			    const char *ctname, const char *filename, const char *eol)
{
	bool inl = (a->flags & 4) || (a->disp && strcasecmp(a->disp, "inline") == 0);
	mf_out_fmt(o, "Content-Type: %s", type);
	put_param(o, "name", ctname, eol);
	mf_out_fmt(o, "%sContent-Disposition: %s", eol, inl ? "inline" : "attachment");
	put_param(o, "filename", filename, eol);
	char d[64];
	if (a->ctime > 0) {
		mf_mime_date(a->ctime, d, sizeof(d));
		mf_out_fmt(o, ";%s creation-date=\"%s\"", eol, d);
	}
	if (a->mtime > 0) {
		mf_mime_date(a->mtime, d, sizeof(d));
		mf_out_fmt(o, ";%s modification-date=\"%s\"", eol, d);
	}
	mf_out_str(o, eol);
	char cid[912];
	if (a->cid && plain_cid(a->cid, cid, sizeof(cid)))
		mf_out_fmt(o, "Content-ID: <%s>%s", cid, eol);
}

static void put_text(struct mf_out *o, const char *type, const unsigned char *data, size_t len,
		     const char *eol, const char *extra_hdr)
{
	mf_out_fmt(o, "Content-Type: %s; charset=utf-8%s", type, eol);
	if (extra_hdr)
		mf_out_fmt(o, "%s%s", extra_hdr, eol);
	mf_out_fmt(o, "Content-Transfer-Encoding: quoted-printable%s%s", eol, eol);
	mf_qp_encode(data, len, true, eol, o);
}

static int build(struct tnef *t, const char *eol, int depth, struct mf_tnef_mime *out,
		 char *why, size_t whysz);

/* An address we can put between angle brackets as it is. */
static bool plain_addr(const char *s)
{
	if (!s || !strchr(s, '@') || strlen(s) > 254)
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= 32 || *p >= 127 || *p == '<' || *p == '>' || *p == '"' || *p == ',' ||
		    *p == '\\')
			return false;
	return true;
}

/* "To: ", "Cc: " or "Bcc: " with the recipients of that type, one per line;
 * one with a display name but no Internet address (an Exchange-only
 * recipient) is kept as an empty group with that name ("Name:;"). */
static void put_rcpts(struct mf_out *o, const struct tnef *t, uint32_t type, const char *field,
		      const char *eol)
{
	bool any = false;
	for (size_t k = 0; k < t->nrcpt; k++) {
		const struct tnef_rcpt *r = &t->rcpt[k];
		if (r->type != type)
			continue;
		const char *addr = plain_addr(r->smtp)	? r->smtp
				   : plain_addr(r->email) ? r->email
							  : NULL;
		if (!addr && !r->name)
			continue;
		mf_out_fmt(o, "%s", any ? "," : field);
		mf_out_str(o, any ? eol : ": ");
		if (any)
			mf_out_str(o, " ");
		if (r->name && (!addr || strcmp(r->name, addr) != 0)) {
			mf_hdr_phrase(o, r->name, eol);
			mf_out_str(o, addr ? " " : ":;");
		}
		if (addr)
			mf_out_fmt(o, "<%s>", addr);
		any = true;
	}
	if (any)
		mf_out_str(o, eol);
}

/* An embedded message (IID + TNEF stream) as a message/rfc822 body. */
static int put_embedded(struct mf_out *o, const unsigned char *p, size_t len, uint32_t cp,
			const char *eol, int depth, char *why, size_t whysz)
{
	struct tnef sub;
	struct mf_tnef_mime m = { 0 };
	int rc = tnef_parse(&sub, p, len, cp, why, whysz);
	if (!rc)
		rc = build(&sub, eol, depth + 1, &m, why, whysz);
	if (!rc) {
		if (sub.sender_email || sub.sender_name) {
			mf_out_str(o, "From: ");
			if (sub.sender_name)
				mf_hdr_phrase(o, sub.sender_name, eol);
			if (sub.sender_email && !strchr(sub.sender_email, '>') &&
			    strchr(sub.sender_email, '@') && strlen(sub.sender_email) < 200)
				mf_out_fmt(o, "%s<%s>", sub.sender_name ? " " : "", sub.sender_email);
			mf_out_str(o, eol);
		}
		if (sub.rcpt_why[0]) {
			char note[200];
			snprintf(note, sizeof(note),
				 "recipient table damaged, recipients from there on left out (%s)",
				 sub.rcpt_why);
			add_why(why, whysz, note);
		}
		put_rcpts(o, &sub, 1, "To", eol);
		put_rcpts(o, &sub, 2, "Cc", eol);
		put_rcpts(o, &sub, 3, "Bcc", eol);
		if (sub.subject) {
			mf_out_str(o, "Subject: ");
			mf_hdr_text(o, sub.subject, 9, eol);
			mf_out_str(o, eol);
		}
		if (sub.sent) {
			char d[64];
			mf_mime_date(sub.sent, d, sizeof(d));
			mf_out_fmt(o, "Date: %s%s", d, eol);
		}
		char id[912];
		if (sub.msgid && plain_cid(sub.msgid, id, sizeof(id)))
			mf_out_fmt(o, "Message-ID: <%s>%s", id, eol);
		mf_out_fmt(o, "MIME-Version: 1.0%sContent-Type: ", eol);
		mf_out_add(o, m.ctype.b.data, m.ctype.b.len);
		mf_out_fmt(o, "%s%s", eol, eol);
		mf_out_add(o, m.body.b.data, m.body.b.len);
		if (m.ctype.err || m.body.err)
			rc = MF_ENOMEM;
	}
	mf_out_free(&m.ctype);
	mf_out_free(&m.body);
	tnef_free(&sub);
	return rc;
}

static void ical_time(struct mf_out *o, const char *prop, int64_t t, const char *eol)
{
	int y, mo, d, h, mi, s;
	mf_mime_civil(t, &y, &mo, &d, &h, &mi, &s);
	mf_out_fmt(o, "%s:%04d%02d%02dT%02d%02d%02dZ%s", prop, y, mo, d, h, mi, s, eol);
}

/* text/calendar for a meeting request, cancellation or response. */
static void put_calendar(struct mf_out *o, const struct tnef *t, const char *method,
			 const char *eol)
{
	unsigned char h[MF_SHA256_LEN];
	char hex[2 * MF_SHA256_LEN + 1];
	mf_sha256(t->raw, t->rawlen, h);
	mf_hex(h, 16, hex);
	struct mf_out ics = { 0 };
	mf_out_fmt(&ics, "BEGIN:VCALENDAR\r\nPRODID:-//mailferry//TNEF//EN\r\nVERSION:2.0\r\n"
			 "METHOD:%s\r\nBEGIN:VEVENT\r\nUID:%s@mailferry.invalid\r\n",
		   method, hex);
	ical_time(&ics, "DTSTAMP", t->sent ? t->sent : t->start, "\r\n");
	if (t->start)
		ical_time(&ics, "DTSTART", t->start, "\r\n");
	if (t->end)
		ical_time(&ics, "DTEND", t->end, "\r\n");
	if (t->subject) {
		mf_out_str(&ics, "SUMMARY:");
		for (const char *p = t->subject; *p; p++) {
			if (*p == ',' || *p == ';' || *p == '\\')
				mf_out_add(&ics, "\\", 1);
			if (*p != '\r' && *p != '\n')
				mf_out_add(&ics, p, 1);
		}
		mf_out_str(&ics, "\r\n");
	}
	mf_out_str(&ics, "END:VEVENT\r\nEND:VCALENDAR\r\n");
	char hdr[64];
	snprintf(hdr, sizeof(hdr), "Content-Type: text/calendar; method=%s", method);
	mf_out_fmt(o, "%s; charset=utf-8%sContent-Transfer-Encoding: quoted-printable%s%s", hdr,
		   eol, eol, eol);
	mf_qp_encode((const unsigned char *)ics.b.data, ics.b.len, true, eol, o);
	if (ics.err)
		o->err = ics.err;
	mf_out_free(&ics);
}

static const char *meeting_method(const char *cls)
{
	if (!cls)
		return NULL;
	if (strncasecmp(cls, "IPM.Microsoft Schedule.MtgReq", 29) == 0 ||
	    strncasecmp(cls, "IPM.Schedule.Meeting.Request", 28) == 0)
		return "REQUEST";
	if (strncasecmp(cls, "IPM.Microsoft Schedule.MtgCncl", 30) == 0 ||
	    strncasecmp(cls, "IPM.Schedule.Meeting.Canceled", 29) == 0)
		return "CANCEL";
	if (strncasecmp(cls, "IPM.Microsoft Schedule.MtgResp", 30) == 0 ||
	    strncasecmp(cls, "IPM.Schedule.Meeting.Resp", 25) == 0)
		return "REPLY";
	return NULL;
}

static int build(struct tnef *t, const char *eol, int depth, struct mf_tnef_mime *out,
		 char *why, size_t whysz)
{
	unsigned char h[MF_SHA256_LEN];
	char hex[2 * MF_SHA256_LEN + 1];
	char bmix[96], balt[96];
	mf_sha256(t->raw, t->rawlen, h);
	mf_hex(h, 12, hex);
	/* "=_" cannot occur in base64 or quoted-printable text */
	snprintf(bmix, sizeof(bmix), "=_mf_%s_m%d", hex, depth);
	snprintf(balt, sizeof(balt), "=_mf_%s_a%d", hex, depth);
	struct mf_out *o = &out->body;
	struct mf_out html = { 0 }, rtf = { 0 };
	bool have_html = false, have_rtf = false;
	int rc = 0;

	if (t->html && t->htmllen) {
		cp_to_utf8(t->html_cp ? t->html_cp : t->cp, t->html, t->htmllen, &html);
		have_html = true;
	}
	if (t->rtf && t->rtflen) {
		int r = mf_rtf_decompress(t->rtf, t->rtflen, &rtf);
		if (r == MF_ENOMEM) {
			rc = r;
			goto done;
		}
		if (r == 0 && rtf.b.len) {
			have_rtf = true;
			if (!have_html) {
				int hr = mf_rtf_to_html((const unsigned char *)rtf.b.data, rtf.b.len,
							&html);
				if (hr < 0) {
					rc = hr;
					goto done;
				}
				if (hr == 1) {
					have_html = true;
					have_rtf = false;
				}
			} else {
				have_rtf = false; /* the HTML body says it all */
			}
		}
	}
	bool have_text = t->text && *t->text;
	const char *method = meeting_method(t->msgclass);

	mf_out_fmt(&out->ctype, "multipart/mixed;%s boundary=\"%s\"", eol, bmix);
	mf_out_fmt(o, "--%s%s", bmix, eol);
	int nbody = have_text + have_html + have_rtf;
	if (nbody > 1)
		mf_out_fmt(o, "Content-Type: multipart/alternative;%s boundary=\"%s\"%s%s--%s%s",
			   eol, balt, eol, eol, balt, eol);
	if (have_text || nbody == 0)
		put_text(o, "text/plain", (const unsigned char *)(have_text ? t->text : ""),
			 have_text ? strlen(t->text) : 0, eol, NULL);
	if (have_html) {
		if (nbody > 1)
			mf_out_fmt(o, "%s--%s%s", eol, balt, eol);
		put_text(o, "text/html", (const unsigned char *)html.b.data, html.b.len, eol, NULL);
	}
	if (have_rtf) {
		if (nbody > 1)
			mf_out_fmt(o, "%s--%s%s", eol, balt, eol);
		mf_out_fmt(o, "Content-Type: text/rtf%sContent-Disposition: inline%s"
			      "Content-Transfer-Encoding: quoted-printable%s%s",
			   eol, eol, eol, eol);
		mf_qp_encode((const unsigned char *)rtf.b.data, rtf.b.len, true, eol, o);
	}
	if (nbody > 1)
		mf_out_fmt(o, "%s--%s--%s", eol, balt, eol);
	if (method) {
		mf_out_fmt(o, "%s--%s%s", eol, bmix, eol);
		put_calendar(o, t, method, eol);
	}
	for (size_t k = 0; k < t->natt; k++) {
		struct tnef_att *a = &t->att[k];
		const char *name = att_name(a);
		const unsigned char *obj = a->obj && a->objlen >= 16 ? a->obj + 16 : NULL;
		size_t objlen = obj ? a->objlen - 16 : 0;
		bool is_msg = obj && mf_tnef_sniff(obj, objlen);
		bool embedded = is_msg && depth < TNEF_MAX_DEPTH;
		char note[320];
		if (is_msg && a->data && a->len) {
			/* Outlook writes a line of text for readers without MAPI
			 * into attAttachData of an embedded message; MimeKit gives
			 * it as a part of its own, and so do we: nothing in the
			 * stream is left out. */
			mf_out_fmt(o, "%s--%s%s", eol, bmix, eol);
			put_att_headers(o, guess_type(name), a, name, name, eol);
			mf_out_fmt(o, "Content-Transfer-Encoding: base64%s%s", eol, eol);
			mf_b64_encode(a->data, a->len, eol, o);
			out->nattach++;
		}
		mf_out_fmt(o, "%s--%s%s", eol, bmix, eol);
		if (is_msg && !embedded) {
			snprintf(note, sizeof(note),
				 "embedded message \"%.60s\" nested deeper than %d levels kept as "
				 "application/ms-tnef",
				 name, TNEF_MAX_DEPTH);
			add_why(why, whysz, note);
		}
		if (embedded) {
			struct mf_out msg = { 0 };
			char subwhy[256] = "";
			/* an embedded message without attOemCodepage has its
			 * parent's, as MimeKit reads it */
			int r = put_embedded(&msg, obj, objlen, t->cp, eol, depth, subwhy,
					     sizeof(subwhy));
			if (r == MF_ENOMEM) {
				mf_out_free(&msg);
				rc = r;
				goto done;
			}
			if (r == 0) {
				/* named as MimeKit names it: filename from the
				 * attachment's names, name from PR_DISPLAY_NAME */
				put_att_headers(o, "message/rfc822", a, a->display ? a->display : name,
						name, eol);
				mf_out_str(o, eol);
				mf_out_add(o, msg.b.data, msg.b.len);
				mf_out_free(&msg);
				out->nattach++;
				if (subwhy[0]) {
					/* one prefix for a chain of nested messages */
					static const char in[] = "in embedded message ";
					bool chain = strncmp(subwhy, in, sizeof(in) - 1) == 0;
					snprintf(note, sizeof(note), "%s\"%.40s\"%s%s", in, name,
						 chain ? " / " : ": ",
						 subwhy + (chain ? sizeof(in) - 1 : 0));
					add_why(why, whysz, note);
				}
				continue;
			}
			mf_out_free(&msg); /* undecodable: attach the raw stream */
			snprintf(note, sizeof(note),
				 "embedded message \"%.40s\" not decoded (%s), kept as "
				 "application/ms-tnef",
				 name, subwhy);
			add_why(why, whysz, note);
		}
		/* the embedded stream itself, not the text beside it */
		const unsigned char *data = is_msg	? obj
					    : a->data	? a->data
					    : a->bin	? a->bin
							: obj;
		size_t len = is_msg ? objlen : a->data ? a->len : a->bin ? a->binlen : objlen;
		const char *type = is_msg	      ? "application/ms-tnef"
				   : sane_mime(a->mime) ? a->mime
							: guess_type(name);
		put_att_headers(o, type, a, name, name, eol);
		mf_out_fmt(o, "Content-Transfer-Encoding: base64%s%s", eol, eol);
		mf_b64_encode(data ? data : (const unsigned char *)"", data ? len : 0, eol, o);
		out->nattach++;
	}
	mf_out_fmt(o, "%s--%s--%s", eol, bmix, eol);
done:
	if (!rc && (html.err || rtf.err || o->err || out->ctype.err))
		rc = MF_ENOMEM;
	mf_out_free(&html);
	mf_out_free(&rtf);
	return rc;
}

int mf_tnef_to_mime(const unsigned char *tnef, size_t len, const char *eol,
		    struct mf_tnef_mime *out, char *why, size_t whysz)
{
	struct tnef t;
	memset(out, 0, sizeof(*out));
	int rc = tnef_parse(&t, tnef, len, 1252, why, whysz);
	if (!rc)
		rc = build(&t, eol, 0, out, why, whysz);
	tnef_free(&t);
	return rc;
}
