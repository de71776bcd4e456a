/* imap_common.c - one libetpan IMAP session as the IMAP source and sink use
 * it. See imap_common.h for the contract. */
#include "imap_common.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <libetpan/libetpan.h>
#include <zlib.h>

#include "engine/log.h"
#include "engine/spill.h"

/* ---- configuration ------------------------------------------------------ */

static int dup_opt(const struct mf_conf_section *sec, const char *key, char **out)
{
	const char *v = mf_conf_get(sec, key, NULL);
	*out = NULL;
	if (!v || !*v)
		return 0;
	*out = strdup(v);
	return *out ? 0 : MF_ENOMEM;
}

int mf_imap_conf_parse(const struct mf_conf_section *sec, struct mf_imap_conf *c,
		       struct mf_err *err)
{
	static const char *const tls_names[] = {"implicit", "starttls", "none", NULL};
	static const char *const auth_names[] = {"login", "plain", "xoauth2", NULL};
	uint64_t port = 0, timeout = 0;
	int tls = 0, auth = 0, rc;
	const char *secret_env;

	pthread_mutex_init(&c->token_lock, NULL);
	if ((rc = mf_conf_enum(sec, "tls", tls_names, MF_IMAP_TLS_IMPLICIT, &tls, err)) < 0)
		return rc;
	if ((rc = mf_conf_enum(sec, "auth", auth_names, MF_IMAP_AUTH_PLAIN, &auth, err)) < 0)
		return rc;
	if ((rc = mf_conf_uint(sec, "port", 1, 65535, tls == MF_IMAP_TLS_IMPLICIT ? 993 : 143,
			       &port, err)) < 0)
		return rc;
	if ((rc = mf_conf_uint(sec, "timeout", 1, 3600, 120, &timeout, err)) < 0)
		return rc;
	if ((rc = mf_conf_bool(sec, "tls_verify", true, &c->tls_verify, err)) < 0)
		return rc;
	if ((rc = mf_conf_bool(sec, "compress", true, &c->compress, err)) < 0)
		return rc;
	if ((rc = mf_conf_path(sec, "tls_ca_file", NULL, &c->tls_ca_file, err)) < 0)
		return rc;
	c->tls = (enum mf_imap_tls)tls;
	c->auth = (enum mf_imap_auth)auth;
	c->port = (uint16_t)port;
	c->timeout_s = (unsigned)timeout;
	if (dup_opt(sec, "host", &c->host) || dup_opt(sec, "token_cmd", &c->token_cmd) ||
	    dup_opt(sec, "token_url", &c->token_url) || dup_opt(sec, "client_id", &c->client_id) ||
	    dup_opt(sec, "scope", &c->scope))
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	if (!c->host)
		return mf_conf_error(sec, "host", err, "required");
	if (c->auth == MF_IMAP_AUTH_XOAUTH2) {
		if (!c->token_cmd && !c->token_url)
			return mf_conf_error(sec, "auth", err,
					     "xoauth2 needs token_cmd or token_url");
		if (c->token_url && !c->client_id)
			return mf_conf_error(sec, "client_id", err, "required with token_url");
		secret_env = mf_conf_get(sec, "client_secret_env", NULL);
		if (c->token_url && mf_conf_secrets_skipped()) {
			if (!(c->client_secret = strdup("bm90IHJlYWQ=")))
				return mf_err_set(err, MF_ENOMEM, "out of memory");
		} else if (c->token_url) {
			const char *v = secret_env ? getenv(secret_env) : NULL;
			if (!v || !*v)
				return mf_conf_error(sec, "client_secret_env", err,
						     "must name a set environment variable");
			if (!(c->client_secret = strdup(v)))
				return mf_err_set(err, MF_ENOMEM, "out of memory");
		}
	}
	if (c->tls != MF_IMAP_TLS_NONE && !c->tls_verify)
		mf_log(MF_LOG_WARN,
		       "event=tls_verify_off host=%s msg=\"server certificate not verified\"",
		       c->host);
	return 0;
}

void mf_imap_conf_free(struct mf_imap_conf *c)
{
	if (!c)
		return;
	free(c->host);
	free(c->tls_ca_file);
	free(c->token_cmd);
	free(c->token_url);
	free(c->client_id);
	mf_secret_free(c->client_secret);
	free(c->scope);
	mf_secret_free(c->token);
	pthread_mutex_destroy(&c->token_lock);
	memset(c, 0, sizeof(*c));
}

/* longest response line outside literals the guard layer lets through */
#define MAX_LINE_BYTES (16u * 1024 * 1024)

/* ---- error mapping --------------------------------------------------------- */

static const char *find_ci(const char *hay, const char *needle)
{
	size_t n = strlen(needle);
	for (; *hay; hay++)
		if (strncasecmp(hay, needle, n) == 0)
			return hay;
	return NULL;
}

static bool rc_is_conn(int rc)
{
	switch (rc) {
	case MAILIMAP_ERROR_STREAM:
	case MAILIMAP_ERROR_CONNECTION_REFUSED:
	case MAILIMAP_ERROR_FATAL:
	case MAILIMAP_ERROR_DONT_ACCEPT_CONNECTION:
	case MAILIMAP_ERROR_SSL:
	case MAILIMAP_ERROR_BAD_STATE:
		return true;
	default:
		return false;
	}
}

int mf_imap_classify(int rc, const char *line, int dflt, const char *what, struct mf_err *err)
{
	const char *p;
	char clean[200];
	size_t i, j;

	if (rc == MAILIMAP_NO_ERROR || rc == MAILIMAP_NO_ERROR_AUTHENTICATED ||
	    rc == MAILIMAP_NO_ERROR_NON_AUTHENTICATED)
		return 0;
	if (!line)
		line = "";
	/* drop the command tag ("13 NO [TOOBIG] ..."): it differs per message
	 * and would split one reason into many in the report */
	const char *sp = strchr(line, ' ');
	if (sp && sp != line && sp - line < 16 &&
	    (strncasecmp(sp + 1, "NO ", 3) == 0 || strncasecmp(sp + 1, "BAD ", 4) == 0))
		line = sp + 1;
	/* printable, one line, bounded: it goes into reports */
	for (i = 0, j = 0; line[i] && j + 1 < sizeof(clean); i++) {
		unsigned char ch = (unsigned char)line[i];
		if (ch == '\r' || ch == '\n')
			break;
		clean[j++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
	}
	clean[j] = 0;

	if (rc == MAILIMAP_ERROR_MEMORY)
		return mf_err_set(err, MF_ENOMEM, "%s: out of memory", what);
	if ((p = find_ci(line, "Suggested Backoff Time:")) != NULL) {
		unsigned long ms = strtoul(p + strlen("Suggested Backoff Time:"), NULL, 10);
		int code = mf_err_set(err, MF_ETHROTTLED, "%s: throttled: %s", what, clean);
		if (err)
			err->retry_after_ms = ms > 3600000ul ? 3600000 : (int)ms;
		return code;
	}
	if (find_ci(line, "throttl") || find_ci(line, "[UNAVAILABLE]") ||
	    find_ci(line, "[INUSE]") || find_ci(line, "[LIMIT]")) {
		int code = mf_err_set(err, MF_ETHROTTLED, "%s: server busy: %s", what, clean);
		if (err)
			err->retry_after_ms = 5000;
		return code;
	}
	if (rc_is_conn(rc))
		return mf_err_set(err, MF_ECONN, "%s: connection lost%s%s", what,
				  clean[0] ? ": " : "", clean);
	if (rc == MAILIMAP_ERROR_PARSE)
		return mf_err_set(err, MF_EPROTO, "%s: cannot parse the server's answer", what);
	if (find_ci(line, "[OVERQUOTA]") || find_ci(line, "quota"))
		return mf_err_set(err, MF_EQUOTA, "%s: %s", what, clean);
	if (find_ci(line, "[TOOBIG]") || find_ci(line, "APPENDLIMIT") ||
	    find_ci(line, "too large") || find_ci(line, "too big") ||
	    find_ci(line, "exceeds the maximum"))
		return mf_err_set(err, MF_ETOOBIG, "%s: %s", what, clean);
	/* BAD to a login is the server saying the command was malformed (Cyrus
	 * answered a trailing space that way): a protocol error, never "wrong
	 * password". Other commands keep their class (dflt). */
	if ((dflt == MF_EAUTH || rc == MAILIMAP_ERROR_LOGIN || rc == MAILIMAP_ERROR_SASL) &&
	    (strncasecmp(line, "BAD ", 4) == 0 || strcasecmp(line, "BAD") == 0))
		return mf_err_set(err, MF_EPROTO, "%s: the server rejected the command as malformed: %s",
				  what, clean);
	if (find_ci(line, "[AUTHENTICATIONFAILED]") || find_ci(line, "[AUTHORIZATIONFAILED]") ||
	    find_ci(line, "[EXPIRED]") || rc == MAILIMAP_ERROR_LOGIN ||
	    rc == MAILIMAP_ERROR_SASL)
		return mf_err_set(err, MF_EAUTH, "%s: %s", what, clean[0] ? clean : "refused");
	if (find_ci(line, "[NONEXISTENT]") && dflt != MF_EMSG)
		return mf_err_set(err, MF_EFOLDER, "%s: %s", what, clean);
	return mf_err_set(err, dflt, "%s: %s", what, clean[0] ? clean : "refused by the server");
}

const char *mf_imap_last_line(struct mf_imap *im, char *buf, size_t size)
{
	size_t end = im->tail_len, start;
	while (end > 0 && (im->tail[end - 1] == '\n' || im->tail[end - 1] == '\r'))
		end--;
	start = end;
	while (start > 0 && im->tail[start - 1] != '\n')
		start--;
	if (end - start >= size)
		end = start + size - 1;
	memcpy(buf, im->tail + start, end - start);
	buf[end - start] = 0;
	return buf;
}

int mf_imap_fail(struct mf_imap *im, int rc, int dflt, const char *what, struct mf_err *err)
{
	char line[512];
	int code;
	if (im->line_too_long)
		code = mf_err_set(err, MF_EPROTO,
				  "%s: the server sent a line of more than %u MB without an end", what,
				  MAX_LINE_BYTES / (1024 * 1024));
	else
		code = mf_imap_classify(rc, mf_imap_last_line(im, line, sizeof(line)), dflt, what,
					err);
	if (code == MF_ECONN || code == MF_EPROTO) {
		free(im->selected);
		im->selected = NULL;
	}
	return code;
}

/* Keep the last bytes received: libetpan drops unknown response codes
 * ([OVERQUOTA], [TOOBIG], ...) that decide the failure class. */
static void tail_logger(mailstream_low *s, int log_type, const char *str, size_t size,
			void *ctx)
{
	struct mf_imap *im = ctx;
	(void)s;
	if (log_type != MAILSTREAM_LOG_TYPE_DATA_RECEIVED || !str)
		return;
	if (size >= sizeof(im->tail)) {
		memcpy(im->tail, str + size - sizeof(im->tail), sizeof(im->tail));
		im->tail_len = sizeof(im->tail);
		return;
	}
	if (im->tail_len + size > sizeof(im->tail)) {
		size_t drop = im->tail_len + size - sizeof(im->tail);
		memmove(im->tail, im->tail + drop, im->tail_len - drop);
		im->tail_len -= drop;
	}
	memcpy(im->tail + im->tail_len, str, size);
	im->tail_len += size;
}

static void hook_logger(struct mf_imap *im)
{
	mailstream_low *low = mailstream_get_low(im->s->imap_stream);
	if (low)
		mailstream_low_set_logger(low, tail_logger, im);
}

/* ---- fetch machinery ---------------------------------------------------------- */

struct fetch_ctx {
	int (*cb)(void *arg, struct mf_imap_fmsg *m);
	void *arg;
	int rc;
};

static void progress_noop(size_t cur, size_t max, void *ctx)
{
	(void)cur;
	(void)max;
	(void)ctx;
}

static bool body_handler(int type, struct mailimap_msg_att_body_section *section,
			 const char *bytes, size_t len, void *ctx)
{
	struct mf_imap *im = ctx;
	(void)type;
	(void)section;
	if (!im->fetch_ctx)
		return true;
	im->body.spill = true; /* a big message goes to a spill file */
	return mf_buf_add(&im->body, bytes, len) == 0;
}

int64_t mf_imap_date_to_unix(int day, int month, int year, int hour, int min, int sec, int zone)
{
	/* days from civil (proleptic Gregorian), H. Hinnant's algorithm */
	int64_t y = year - (month <= 2);
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t mp = (month + 9) % 12;
	int64_t doy = (153 * mp + 2) / 5 + day - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	int64_t days = era * 146097 + doe - 719468;
	int az = zone < 0 ? -zone : zone;
	int64_t off = (int64_t)(az / 100) * 3600 + (az % 100) * 60;
	if (zone < 0)
		off = -off;
	return days * 86400 + hour * 3600 + min * 60 + sec - off;
}

/* System flags as MF_FLAG_*; keywords appended to *kw (space-separated);
 * *nomem set when one could not be. */
static unsigned flags_of(struct mailimap_msg_att_dynamic *dyn, struct mf_buf *kw, bool *nomem)
{
	unsigned f = 0;
	clistiter *it;
	if (!dyn || !dyn->att_list)
		return 0;
	for (it = clist_begin(dyn->att_list); it; it = clist_next(it)) {
		struct mailimap_flag_fetch *ff = clist_content(it);
		if (ff->fl_type != MAILIMAP_FLAG_FETCH_OTHER || !ff->fl_flag)
			continue;
		switch (ff->fl_flag->fl_type) {
		case MAILIMAP_FLAG_SEEN: f |= MF_FLAG_SEEN; break;
		case MAILIMAP_FLAG_ANSWERED: f |= MF_FLAG_ANSWERED; break;
		case MAILIMAP_FLAG_FLAGGED: f |= MF_FLAG_FLAGGED; break;
		case MAILIMAP_FLAG_DELETED: f |= MF_FLAG_DELETED; break;
		case MAILIMAP_FLAG_DRAFT: f |= MF_FLAG_DRAFT; break;
		case MAILIMAP_FLAG_KEYWORD:
			if (ff->fl_flag->fl_data.fl_keyword && kw->len < 4000 &&
			    mf_buf_printf(kw, "%s%s", kw->len ? " " : "",
					  ff->fl_flag->fl_data.fl_keyword) < 0)
				*nomem = true;
			break;
		default: break;
		}
	}
	return f;
}

static void att_handler(struct mailimap_msg_att *att, void *ctx)
{
	struct mf_imap *im = ctx;
	struct fetch_ctx *fc = im->fetch_ctx;
	struct mf_imap_fmsg m;
	struct mf_buf kw = {0};
	bool have_body = false;
	clistiter *it;

	memset(&m, 0, sizeof(m));
	if (!fc)
		goto out;
	for (it = clist_begin(att->att_list); it; it = clist_next(it)) {
		struct mailimap_msg_att_item *item = clist_content(it);
		if (item->att_type == MAILIMAP_MSG_ATT_ITEM_DYNAMIC) {
			bool nomem = false;
			kw.len = 0;
			m.flags = flags_of(item->att_data.att_dyn, &kw, &nomem);
			if (nomem)
				fc->rc = fc->rc ? fc->rc : MF_ENOMEM;
		} else if (item->att_type == MAILIMAP_MSG_ATT_ITEM_STATIC) {
			struct mailimap_msg_att_static *st = item->att_data.att_static;
			switch (st->att_type) {
			case MAILIMAP_MSG_ATT_UID:
				m.uid = st->att_data.att_uid;
				break;
			case MAILIMAP_MSG_ATT_RFC822_SIZE:
				m.size = st->att_data.att_rfc822_size;
				break;
			case MAILIMAP_MSG_ATT_INTERNALDATE: {
				struct mailimap_date_time *d = st->att_data.att_internal_date;
				if (d)
					m.idate = mf_imap_date_to_unix(d->dt_day, d->dt_month,
								       d->dt_year, d->dt_hour,
								       d->dt_min, d->dt_sec,
								       d->dt_zone);
				break;
			}
			case MAILIMAP_MSG_ATT_BODY_SECTION: {
				struct mailimap_msg_att_body_section *bs =
					st->att_data.att_body_section;
				have_body = true;
				/* without the streaming handler the body arrives here */
				im->body.spill = true;
				if (im->body.len == 0 && bs && bs->sec_body_part &&
				    bs->sec_length > 0 &&
				    mf_buf_add(&im->body, bs->sec_body_part, bs->sec_length) < 0)
					fc->rc = fc->rc ? fc->rc : MF_ENOMEM;
				break;
			}
			default:
				break;
			}
		}
	}
	if (m.uid == 0 || fc->rc)
		goto out; /* an unsolicited flag update, or stopped */
	if (have_body) {
		if (!im->body.data && mf_buf_add(&im->body, "", 0) < 0) {
			fc->rc = MF_ENOMEM;
			goto out;
		}
		m.body = (unsigned char *)im->body.data;
		m.body_len = im->body.len;
		memset(&im->body, 0, sizeof(im->body));
	}
	if (kw.len) {
		m.keywords = kw.data;
		kw.data = NULL;
	}
	fc->rc = fc->cb(fc->arg, &m);
	mf_bytes_free(m.body);
	free(m.keywords);
	mf_buf_free(&kw);
	return;
out:
	mf_buf_free(&kw);
	mf_buf_free(&im->body);
}

static struct mailimap_set *make_set(const uint32_t *uids, size_t n, uint32_t from, uint32_t to)
{
	struct mailimap_set *set = mailimap_set_new_empty();
	size_t i = 0;
	if (!set)
		return NULL;
	if (!uids) {
		if (mailimap_set_add_interval(set, from ? from : 1, to) != MAILIMAP_NO_ERROR)
			goto fail;
		return set;
	}
	while (i < n) {
		size_t j = i;
		while (j + 1 < n && uids[j + 1] == uids[j] + 1)
			j++;
		if (mailimap_set_add_interval(set, uids[i], uids[j]) != MAILIMAP_NO_ERROR)
			goto fail;
		i = j + 1;
	}
	return set;
fail:
	mailimap_set_free(set);
	return NULL;
}

int mf_imap_uid_fetch(struct mf_imap *im, const uint32_t *uids, size_t n, uint32_t from,
		      uint32_t to, unsigned what, int (*cb)(void *arg, struct mf_imap_fmsg *m), void *arg,
		      struct mf_err *err)
{
	struct fetch_ctx fc = {.cb = cb, .arg = arg, .rc = 0};
	struct mailimap_set *set = NULL;
	struct mailimap_fetch_type *ft = NULL;
	clist *result = NULL;
	int rc = 0, r;

	if (uids && n == 0)
		return 0;
	set = make_set(uids, n, from, to);
	ft = mailimap_fetch_type_new_fetch_att_list_empty();
	if (!set || !ft)
		goto nomem;
	if (mailimap_fetch_type_new_fetch_att_list_add(ft, mailimap_fetch_att_new_uid()) ||
	    mailimap_fetch_type_new_fetch_att_list_add(ft, mailimap_fetch_att_new_flags()) ||
	    mailimap_fetch_type_new_fetch_att_list_add(ft, mailimap_fetch_att_new_internaldate()))
		goto nomem;
	if ((what & MF_IMAP_F_META) &&
	    mailimap_fetch_type_new_fetch_att_list_add(ft, mailimap_fetch_att_new_rfc822_size()))
		goto nomem;
	if (what & MF_IMAP_F_BODY) {
		struct mailimap_section *sec = mailimap_section_new(NULL);
		struct mailimap_fetch_att *fa = sec ? mailimap_fetch_att_new_body_peek_section(sec)
						    : NULL;
		if (!fa) {
			if (sec)
				mailimap_section_free(sec);
			goto nomem;
		}
		if (mailimap_fetch_type_new_fetch_att_list_add(ft, fa)) {
			mailimap_fetch_att_free(fa);
			goto nomem;
		}
	}
	mf_buf_free(&im->body);
	im->fetch_ctx = &fc;
	r = mailimap_uid_fetch(im->s, set, ft, &result);
	im->fetch_ctx = NULL;
	mf_buf_free(&im->body);
	if (result)
		mailimap_fetch_list_free(result);
	if (r != MAILIMAP_NO_ERROR)
		rc = mf_imap_fail(im, r, MF_EMSG, "UID FETCH", err);
	else if (fc.rc)
		rc = fc.rc == MF_ENOMEM ? mf_err_set(err, MF_ENOMEM, "out of memory") : fc.rc;
	goto out;
nomem:
	rc = mf_err_set(err, MF_ENOMEM, "out of memory");
out:
	if (set)
		mailimap_set_free(set);
	if (ft)
		mailimap_fetch_type_free(ft);
	return rc;
}

int mf_imap_uid_search(struct mf_imap *im, const char *message_id, uint64_t size,
		       uint32_t **uids, size_t *n, struct mf_err *err)
{
	struct mailimap_search_key *key = mailimap_search_key_new_multiple_empty();
	clist *res = NULL;
	const char *charset = NULL;
	uint32_t *out = NULL;
	size_t cnt = 0;
	clistiter *it;
	int r, rc = 0;

	*uids = NULL;
	*n = 0;
	if (!key)
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	if (message_id) {
		char *name = strdup("Message-ID"), *val = strdup(message_id);
		struct mailimap_search_key *k =
			(name && val) ? mailimap_search_key_new_header(name, val) : NULL;
		const char *p;
		if (!k) {
			free(name);
			free(val);
			goto nomem;
		}
		if (mailimap_search_key_multiple_add(key, k)) {
			mailimap_search_key_free(k);
			goto nomem;
		}
		for (p = message_id; *p; p++)
			if ((unsigned char)*p >= 0x80)
				charset = "UTF-8";
	}
	if (size > 0 && size < UINT32_MAX) {
		struct mailimap_search_key *kl = mailimap_search_key_new_larger((uint32_t)size - 1);
		struct mailimap_search_key *ks = mailimap_search_key_new_smaller((uint32_t)size + 1);
		if (!kl || !ks || mailimap_search_key_multiple_add(key, kl)) {
			if (kl)
				mailimap_search_key_free(kl);
			if (ks)
				mailimap_search_key_free(ks);
			goto nomem;
		}
		if (mailimap_search_key_multiple_add(key, ks)) {
			mailimap_search_key_free(ks);
			goto nomem;
		}
	}
	if (!message_id && !(size > 0 && size < UINT32_MAX)) {
		struct mailimap_search_key *ka = mailimap_search_key_new_all();
		if (!ka || mailimap_search_key_multiple_add(key, ka)) {
			if (ka)
				mailimap_search_key_free(ka);
			goto nomem;
		}
	}
	r = mailimap_uid_search(im->s, charset, key, &res);
	if (r != MAILIMAP_NO_ERROR) {
		rc = mf_imap_fail(im, r, MF_EFOLDER, "UID SEARCH", err);
		goto out;
	}
	if (res && clist_count(res) > 0) {
		out = calloc((size_t)clist_count(res), sizeof(*out));
		if (!out)
			goto nomem;
		for (it = clist_begin(res); it; it = clist_next(it))
			out[cnt++] = *(uint32_t *)clist_content(it);
	}
	*uids = out;
	*n = cnt;
	out = NULL;
	goto out;
nomem:
	rc = mf_err_set(err, MF_ENOMEM, "out of memory");
out:
	free(out);
	if (res)
		mailimap_search_result_free(res);
	mailimap_search_key_free(key);
	return rc;
}

/* A command line sent exactly as given. libetpan's mailimap_custom_command
 * appends a space after the command ("2 AUTHENTICATE PLAIN AHVz... \r\n"):
 * Dovecot ignores it, Cyrus answers BAD "Unexpected extra arguments". So the
 * tag, the text and CRLF are written here and the answer parsed by libetpan
 * as it does for its own commands. MAILIMAP_NO_ERROR on OK,
 * MAILIMAP_ERROR_CUSTOM_COMMAND on NO, MAILIMAP_ERROR_PROTOCOL on BAD (as
 * libetpan's parser reports it), a stream or parse error otherwise; the
 * answer stays in im->tail for mf_imap_fail. */
static int raw_command(struct mf_imap *im, const char *cmd)
{
	struct mailimap_response *resp = NULL;
	size_t len = strlen(cmd);
	int r, type;

	if ((r = mailimap_send_current_tag(im->s)) != MAILIMAP_NO_ERROR)
		return r;
	if (mailstream_write(im->s->imap_stream, cmd, len) != (ssize_t)len ||
	    mailstream_write(im->s->imap_stream, "\r\n", 2) != 2 ||
	    mailstream_flush(im->s->imap_stream) == -1)
		return MAILIMAP_ERROR_STREAM;
	if (mailimap_read_line(im->s) == NULL)
		return MAILIMAP_ERROR_STREAM;
	if ((r = mailimap_parse_response(im->s, &resp)) != MAILIMAP_NO_ERROR)
		return r;
	type = resp->rsp_resp_done->rsp_data.rsp_tagged->rsp_cond_state->rsp_type;
	mailimap_response_free(resp);
	if (type == MAILIMAP_RESP_COND_STATE_OK)
		return MAILIMAP_NO_ERROR;
	return MAILIMAP_ERROR_CUSTOM_COMMAND;
}

int mf_imap_command(struct mf_imap *im, const char *cmd, struct mf_err *err)
{
	int r = raw_command(im, cmd);
	if (r != MAILIMAP_NO_ERROR)
		return mf_imap_fail(im, r, MF_EFOLDER, cmd, err);
	return 0;
}

int mf_imap_uid_search_date(struct mf_imap *im, int64_t t, uint32_t **uids, size_t *n,
			    struct mf_err *err)
{
	struct mailimap_search_key *key = mailimap_search_key_new_multiple_empty();
	struct mailimap_search_key *ks = NULL, *kb = NULL;
	struct mailimap_date *d1 = NULL, *d2 = NULL;
	clist *res = NULL;
	uint32_t *out = NULL;
	size_t cnt = 0;
	struct tm a, b;
	time_t ta = (time_t)(t - 86400), tb = (time_t)(t + 2 * 86400);
	int r, rc = 0;

	*uids = NULL;
	*n = 0;
	if (!key)
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	if (!gmtime_r(&ta, &a) || !gmtime_r(&tb, &b)) {
		mailimap_search_key_free(key);
		return mf_err_set(err, MF_EINVAL, "date out of range");
	}
	if (!(d1 = mailimap_date_new(a.tm_mday, a.tm_mon + 1, a.tm_year + 1900)) ||
	    !(ks = mailimap_search_key_new_since(d1)))
		goto nomem;
	d1 = NULL;
	if (mailimap_search_key_multiple_add(key, ks))
		goto nomem;
	ks = NULL;
	if (!(d2 = mailimap_date_new(b.tm_mday, b.tm_mon + 1, b.tm_year + 1900)) ||
	    !(kb = mailimap_search_key_new_before(d2)))
		goto nomem;
	d2 = NULL;
	if (mailimap_search_key_multiple_add(key, kb))
		goto nomem;
	kb = NULL;
	r = mailimap_uid_search(im->s, NULL, key, &res);
	if (r != MAILIMAP_NO_ERROR) {
		rc = mf_imap_fail(im, r, MF_EFOLDER, "UID SEARCH", err);
		goto out;
	}
	if (res && clist_count(res) > 0) {
		if (!(out = calloc((size_t)clist_count(res), sizeof(*out))))
			goto nomem;
		for (clistiter *it = clist_begin(res); it; it = clist_next(it))
			out[cnt++] = *(uint32_t *)clist_content(it);
	}
	*uids = out;
	*n = cnt;
	out = NULL;
	goto out;
nomem:
	rc = mf_err_set(err, MF_ENOMEM, "out of memory");
out:
	if (d1)
		mailimap_date_free(d1);
	if (d2)
		mailimap_date_free(d2);
	if (ks)
		mailimap_search_key_free(ks);
	if (kb)
		mailimap_search_key_free(kb);
	free(out);
	if (res)
		mailimap_search_result_free(res);
	mailimap_search_key_free(key);
	return rc;
}

int mf_imap_unselect(struct mf_imap *im, struct mf_err *err)
{
	int r;
	if (!im->selected)
		return 0;
	if (im->selected_rw) {
		r = mailimap_examine(im->s, im->selected);
		if (r != MAILIMAP_NO_ERROR)
			return mf_imap_fail(im, r, MF_EFOLDER, "EXAMINE", err);
	}
	r = mailimap_close(im->s);
	if (r != MAILIMAP_NO_ERROR)
		return mf_imap_fail(im, r, MF_EFOLDER, "CLOSE", err);
	free(im->selected);
	im->selected = NULL;
	im->selected_rw = false;
	return 0;
}

int mf_imap_select_fresh(struct mf_imap *im, const char *wire, bool rw, struct mf_err *err)
{
	free(im->selected);
	im->selected = NULL;
	return mf_imap_select(im, wire, rw, err);
}

/* What the selected mailbox's PERMANENTFLAGS says about keywords (RFC 3501
 * 7.1: without PERMANENTFLAGS every flag is permanent). */
static int perm_keywords(struct mf_imap *im)
{
	struct mailimap_selection_info *si = im->s->imap_selection_info;
	struct mf_buf kw = {0};
	free(im->perm_keywords);
	im->perm_keywords = NULL;
	im->any_keyword = !si || !si->sel_perm_flags;
	for (clistiter *it = si && si->sel_perm_flags ? clist_begin(si->sel_perm_flags) : NULL; it;
	     it = clist_next(it)) {
		struct mailimap_flag_perm *fp = clist_content(it);
		if (fp->fl_type == MAILIMAP_FLAG_PERM_ALL)
			im->any_keyword = true;
		else if (fp->fl_flag && fp->fl_flag->fl_type == MAILIMAP_FLAG_KEYWORD &&
			 fp->fl_flag->fl_data.fl_keyword &&
			 mf_buf_printf(&kw, "%s%s", kw.len ? " " : "", fp->fl_flag->fl_data.fl_keyword) < 0) {
			mf_buf_free(&kw);
			return MF_ENOMEM;
		}
	}
	im->perm_keywords = kw.data;
	return 0;
}

int mf_imap_select(struct mf_imap *im, const char *wire, bool rw, struct mf_err *err)
{
	int r;
	if (im->selected && strcmp(im->selected, wire) == 0 && (im->selected_rw || !rw)) {
		/* already there: a NOOP makes new messages visible */
		r = mailimap_noop(im->s);
		if (r != MAILIMAP_NO_ERROR)
			return mf_imap_fail(im, r, MF_EFOLDER, "NOOP", err);
		return 0;
	}
	free(im->selected);
	im->selected = NULL;
	r = rw ? mailimap_select(im->s, wire) : mailimap_examine(im->s, wire);
	if (r != MAILIMAP_NO_ERROR)
		return mf_imap_fail(im, r, MF_EFOLDER, rw ? "SELECT" : "EXAMINE", err);
	im->uidvalidity = im->s->imap_selection_info ? im->s->imap_selection_info->sel_uidvalidity
						      : 0;
	im->uidnext = im->s->imap_selection_info ? im->s->imap_selection_info->sel_uidnext : 0;
	im->selected = perm_keywords(im) == 0 ? strdup(wire) : NULL;
	im->selected_rw = rw;
	if (!im->selected)
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	return 0;
}

int mf_imap_status(struct mf_imap *im, const char *wire, uint32_t *uidvalidity,
		   uint32_t *messages, struct mf_err *err)
{
	struct mailimap_status_att_list *al = mailimap_status_att_list_new_empty();
	struct mailimap_mailbox_data_status *st = NULL;
	clistiter *it;
	int r;

	*uidvalidity = 0;
	*messages = 0;
	if (!al || mailimap_status_att_list_add(al, MAILIMAP_STATUS_ATT_UIDVALIDITY) ||
	    mailimap_status_att_list_add(al, MAILIMAP_STATUS_ATT_MESSAGES)) {
		if (al)
			mailimap_status_att_list_free(al);
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	}
	r = mailimap_status(im->s, wire, al, &st);
	mailimap_status_att_list_free(al);
	if (r != MAILIMAP_NO_ERROR)
		return mf_imap_fail(im, r, MF_EFOLDER, "STATUS", err);
	for (it = st && st->st_info_list ? clist_begin(st->st_info_list) : NULL; it;
	     it = clist_next(it)) {
		struct mailimap_status_info *si = clist_content(it);
		if (si->st_att == MAILIMAP_STATUS_ATT_UIDVALIDITY)
			*uidvalidity = si->st_value;
		else if (si->st_att == MAILIMAP_STATUS_ATT_MESSAGES)
			*messages = si->st_value;
	}
	if (st)
		mailimap_mailbox_data_status_free(st);
	return 0;
}

/* ---- COMPRESS=DEFLATE (RFC 4978) -------------------------------------------------------
 * Debian's libetpan is built without zlib (mailimap_compress then breaks the
 * session), so the deflate layer is ours: a mailstream_low driver that wraps
 * the TCP/TLS one. */

#define ZCHUNK 16384

struct zlow {
	mailstream_low *inner;
	z_stream in, out;
	unsigned char ibuf[ZCHUNK];
	unsigned char obuf[ZCHUNK];
	bool eof;
};

static ssize_t zlow_read(mailstream_low *s, void *buf, size_t count)
{
	struct zlow *z = s->data;
	z->in.next_out = buf;
	z->in.avail_out = (uInt)(count > ZCHUNK * 4 ? ZCHUNK * 4 : count);
	for (;;) {
		uInt before = z->in.avail_out;
		if (z->in.avail_in > 0) {
			int zr = inflate(&z->in, Z_SYNC_FLUSH);
			if (zr != Z_OK && zr != Z_BUF_ERROR && zr != Z_STREAM_END)
				return -1;
			if (z->in.avail_out < before)
				return (ssize_t)(before - z->in.avail_out);
		}
		if (z->eof)
			return -1;
		{
			ssize_t r = mailstream_low_read(z->inner, z->ibuf, sizeof(z->ibuf));
			if (r <= 0) {
				z->eof = true;
				return -1;
			}
			z->in.next_in = z->ibuf;
			z->in.avail_in = (uInt)r;
		}
	}
}

static ssize_t zlow_write(mailstream_low *s, const void *buf, size_t count)
{
	struct zlow *z = s->data;
	size_t n = count > ZCHUNK ? ZCHUNK : count;
	z->out.next_in = (Bytef *)(uintptr_t)buf;
	z->out.avail_in = (uInt)n;
	do {
		unsigned char *p = z->obuf;
		size_t left;
		z->out.next_out = z->obuf;
		z->out.avail_out = sizeof(z->obuf);
		if (deflate(&z->out, Z_SYNC_FLUSH) == Z_STREAM_ERROR)
			return -1;
		left = sizeof(z->obuf) - z->out.avail_out;
		while (left > 0) {
			ssize_t w = mailstream_low_write(z->inner, p, left);
			if (w <= 0)
				return -1;
			p += w;
			left -= (size_t)w;
		}
	} while (z->out.avail_in > 0 || z->out.avail_out == 0);
	return (ssize_t)n;
}

static int zlow_close(mailstream_low *s)
{
	struct zlow *z = s->data;
	return mailstream_low_close(z->inner);
}

static int zlow_get_fd(mailstream_low *s)
{
	struct zlow *z = s->data;
	return mailstream_low_get_fd(z->inner);
}

static void zlow_free(mailstream_low *s)
{
	struct zlow *z = s->data;
	inflateEnd(&z->in);
	deflateEnd(&z->out);
	mailstream_low_free(z->inner);
	free(z);
	free(s);
}

static void zlow_cancel(mailstream_low *s)
{
	struct zlow *z = s->data;
	mailstream_low_cancel(z->inner);
}

static struct mailstream_cancel *zlow_get_cancel(mailstream_low *s)
{
	struct zlow *z = s->data;
	return mailstream_low_get_cancel(z->inner);
}

static carray *zlow_certs(mailstream_low *s)
{
	(void)s;
	return NULL;
}

static int zlow_idle(mailstream_low *s)
{
	(void)s;
	return -1;
}

static mailstream_low_driver zlow_driver = {
	.mailstream_read = zlow_read,
	.mailstream_write = zlow_write,
	.mailstream_close = zlow_close,
	.mailstream_get_fd = zlow_get_fd,
	.mailstream_free = zlow_free,
	.mailstream_cancel = zlow_cancel,
	.mailstream_get_cancel = zlow_get_cancel,
	.mailstream_get_certificate_chain = zlow_certs,
	.mailstream_setup_idle = zlow_idle,
	.mailstream_unsetup_idle = zlow_idle,
	.mailstream_interrupt_idle = zlow_idle,
};

static mailstream_low_driver glow_driver;
struct glow;
static mailstream_low **glow_inner(mailstream_low *s);

static int start_compress(struct mf_imap *im, struct mf_err *err)
{
	/* under the guard layer, which must see the inflated bytes */
	mailstream_low *cur = mailstream_get_low(im->s->imap_stream), *low;
	mailstream_low **slot = cur && cur->driver == &glow_driver ? glow_inner(cur) : NULL;
	mailstream_low *inner = slot ? *slot : cur;
	struct zlow *z = calloc(1, sizeof(*z));
	int r;

	if (!z)
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	if (inflateInit2(&z->in, -15) != Z_OK) {
		free(z);
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	}
	if (deflateInit2(&z->out, 1, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
		inflateEnd(&z->in);
		free(z);
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	}
	r = raw_command(im, "COMPRESS DEFLATE");
	if (r != MAILIMAP_NO_ERROR) {
		inflateEnd(&z->in);
		deflateEnd(&z->out);
		free(z);
		/* refused in any way: NO, BAD (libetpan's parser turns a tagged
		 * BAD into MAILIMAP_ERROR_PROTOCOL), an answer it cannot parse.
		 * Compression is an optimisation: go on uncompressed */
		if (r == MAILIMAP_ERROR_CUSTOM_COMMAND || r == MAILIMAP_ERROR_PARSE ||
		    r == MAILIMAP_ERROR_PROTOCOL)
			return 0;
		return mf_imap_fail(im, r, MF_ECONN, "COMPRESS", err);
	}
	z->inner = inner;
	if (!(low = mailstream_low_new(z, &zlow_driver))) {
		inflateEnd(&z->in);
		deflateEnd(&z->out);
		free(z);
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	}
	mailstream_low_set_timeout(low, mailstream_low_get_timeout(inner));
	if (slot) {
		*slot = low;
	} else {
		mailstream_low_set_logger(inner, NULL, NULL);
		mailstream_set_low(im->s->imap_stream, low);
		hook_logger(im);
	}
	im->compressed = true;
	return 0;
}

/* ---- guard layer -------------------------------------------------------------------
 * The outermost mailstream_low driver of every session. It turns an end of
 * stream into a read error: libetpan's literal reader loops for ever on a
 * read that returns 0 (a connection closed inside a FETCH body spun at 100%
 * CPU). And it bounds a response line: libetpan keeps a whole line in memory,
 * so a server sending an endless line (no CRLF) outside a literal is cut off
 * after MAX_LINE_BYTES instead of eating all memory. */

struct glow {
	mailstream_low *inner;
	struct mf_imap *im;
	uint64_t line;         /* bytes since the last LF outside literals */
	uint64_t literal_left; /* bytes of a literal still to come */
	char tail[24];         /* the end of the current line, for "{n}\r" */
	size_t tail_len;
};

/* Does the line that just ended announce a literal ("{123}\r" or "{123+}\r")? */
static uint64_t literal_size(const char *t, size_t n)
{
	uint64_t v = 0, mul = 1;
	if (n >= 1 && t[n - 1] == '\r')
		n--;
	if (n < 3 || t[n - 1] != '}')
		return 0;
	n--;
	if (t[n - 1] == '+')
		n--;
	while (n > 0 && isdigit((unsigned char)t[n - 1]) && mul <= 100000000000ull) {
		v += (uint64_t)(t[n - 1] - '0') * mul;
		mul *= 10;
		n--;
	}
	return (n > 0 && t[n - 1] == '{') ? v : 0;
}

static mailstream_low **glow_inner(mailstream_low *s)
{
	struct glow *g = s->data;
	return &g->inner;
}

static ssize_t glow_read(mailstream_low *s, void *buf, size_t count)
{
	struct glow *g = s->data;
	const char *p = buf;
	ssize_t r = mailstream_low_read(g->inner, buf, count);
	size_t i = 0, n;

	if (r <= 0)
		return -1; /* end of stream: always an error in the middle of IMAP */
	n = (size_t)r;
	while (i < n) {
		if (g->literal_left > 0) {
			size_t k = n - i < g->literal_left ? n - i : (size_t)g->literal_left;
			g->literal_left -= k;
			i += k;
			continue;
		}
		if (p[i] == '\n') {
			g->literal_left = literal_size(g->tail, g->tail_len);
			g->line = 0;
			g->tail_len = 0;
		} else {
			if (++g->line > MAX_LINE_BYTES) {
				g->im->line_too_long = true;
				return -1;
			}
			if (g->tail_len == sizeof(g->tail)) {
				memmove(g->tail, g->tail + 1, sizeof(g->tail) - 1);
				g->tail_len--;
			}
			g->tail[g->tail_len++] = p[i];
		}
		i++;
	}
	return r;
}

static ssize_t glow_write(mailstream_low *s, const void *buf, size_t count)
{
	struct glow *g = s->data;
	return mailstream_low_write(g->inner, buf, count);
}

static int glow_close(mailstream_low *s)
{
	struct glow *g = s->data;
	return mailstream_low_close(g->inner);
}

static int glow_get_fd(mailstream_low *s)
{
	struct glow *g = s->data;
	return mailstream_low_get_fd(g->inner);
}

static void glow_free(mailstream_low *s)
{
	struct glow *g = s->data;
	mailstream_low_free(g->inner);
	free(g);
	free(s);
}

static void glow_cancel(mailstream_low *s)
{
	struct glow *g = s->data;
	mailstream_low_cancel(g->inner);
}

static struct mailstream_cancel *glow_get_cancel(mailstream_low *s)
{
	struct glow *g = s->data;
	return mailstream_low_get_cancel(g->inner);
}

static carray *glow_certs(mailstream_low *s)
{
	struct glow *g = s->data;
	mailstream_low *in = g->inner;
	if (in && in->driver && in->driver->mailstream_get_certificate_chain)
		return in->driver->mailstream_get_certificate_chain(in);
	return NULL;
}

static int glow_idle(mailstream_low *s)
{
	(void)s;
	return -1;
}

static mailstream_low_driver glow_driver = {
	.mailstream_read = glow_read,
	.mailstream_write = glow_write,
	.mailstream_close = glow_close,
	.mailstream_get_fd = glow_get_fd,
	.mailstream_free = glow_free,
	.mailstream_cancel = glow_cancel,
	.mailstream_get_cancel = glow_get_cancel,
	.mailstream_get_certificate_chain = glow_certs,
	.mailstream_setup_idle = glow_idle,
	.mailstream_unsetup_idle = glow_idle,
	.mailstream_interrupt_idle = glow_idle,
};

/* The guard over `inner`, or NULL (out of memory). */
static mailstream_low *guard_wrap(mailstream_low *inner, struct mf_imap *im)
{
	mailstream_low *low;
	struct glow *g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	g->inner = inner;
	g->im = im;
	if (!(low = mailstream_low_new(g, &glow_driver))) {
		free(g);
		return NULL;
	}
	mailstream_low_set_timeout(low, mailstream_low_get_timeout(inner));
	mailstream_low_set_logger(inner, NULL, NULL);
	return low;
}

/* Put the guard over the session's current stream driver again after
 * STARTTLS, which replaces it. */
static int start_guard(struct mf_imap *im, struct mf_err *err)
{
	mailstream_low *inner = mailstream_get_low(im->s->imap_stream), *low;

	if (!inner)
		return mf_err_set(err, MF_ECONN, "no connection");
	if (inner->driver == &glow_driver)
		return 0;
	if (!(low = guard_wrap(inner, im)))
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	mailstream_set_low(im->s->imap_stream, low);
	hook_logger(im);
	return 0;
}

static void ssl_cb(struct mailstream_ssl_context *ctx, void *data);

/* Exported by libetpan 1.9 but not declared in its installed headers. */
int mail_tcp_connect_timeout(const char *server, uint16_t port, time_t timeout);

/* TCP (and implicit TLS) with the guard under the greeting already: an
 * endless greeting must not eat memory either. A libetpan code. */
static int guarded_connect(struct mf_imap *im, const struct mf_imap_conf *c)
{
	mailstream_low *low, *g;
	mailstream *stream;
	int fd = mail_tcp_connect_timeout(c->host, c->port, (time_t)c->timeout_s);

	if (fd < 0)
		return MAILIMAP_ERROR_CONNECTION_REFUSED;
	if (c->tls == MF_IMAP_TLS_IMPLICIT)
		low = mailstream_low_ssl_open_with_callback_timeout(fd, (time_t)c->timeout_s, ssl_cb,
								     c->host);
	else
		low = mailstream_low_socket_open(fd);
	if (!low) {
		close(fd);
		return c->tls == MF_IMAP_TLS_IMPLICIT ? MAILIMAP_ERROR_SSL : MAILIMAP_ERROR_MEMORY;
	}
	mailstream_low_set_timeout(low, (time_t)c->timeout_s);
	if (!(g = guard_wrap(low, im))) {
		mailstream_low_close(low);
		mailstream_low_free(low);
		return MAILIMAP_ERROR_MEMORY;
	}
	if (!(stream = mailstream_new(g, 8192))) {
		mailstream_low_close(g);
		mailstream_low_free(g);
		return MAILIMAP_ERROR_MEMORY;
	}
	return mailimap_connect(im->s, stream);
}

/* ---- connect and log in ---------------------------------------------------------- */

static void read_caps(struct mf_imap *im, struct mailimap_capability_data *cd)
{
	clistiter *it;
	im->caps = 0;
	im->appendlimit = 0;
	if (!cd || !cd->cap_list)
		return;
	for (it = clist_begin(cd->cap_list); it; it = clist_next(it)) {
		struct mailimap_capability *c = clist_content(it);
		const char *n;
		if (c->cap_type != MAILIMAP_CAPABILITY_NAME || !(n = c->cap_data.cap_name))
			continue;
		if (!strcasecmp(n, "UIDPLUS"))
			im->caps |= MF_IMAP_CAP_UIDPLUS;
		else if (!strcasecmp(n, "LITERAL+"))
			im->caps |= MF_IMAP_CAP_LITERALPLUS;
		else if (!strcasecmp(n, "NAMESPACE"))
			im->caps |= MF_IMAP_CAP_NAMESPACE;
		else if (!strcasecmp(n, "SPECIAL-USE"))
			im->caps |= MF_IMAP_CAP_SPECIALUSE;
		else if (!strcasecmp(n, "XLIST"))
			im->caps |= MF_IMAP_CAP_XLIST;
		else if (!strcasecmp(n, "COMPRESS=DEFLATE"))
			im->caps |= MF_IMAP_CAP_COMPRESS;
		else if (!strcasecmp(n, "SASL-IR"))
			im->caps |= MF_IMAP_CAP_SASLIR;
		else if (!strcasecmp(n, "UTF8=ACCEPT"))
			im->caps |= MF_IMAP_CAP_UTF8ACCEPT;
		else if (!strncasecmp(n, "APPENDLIMIT=", 12)) {
			im->caps |= MF_IMAP_CAP_APPENDLIMIT;
			im->appendlimit = strtoull(n + 12, NULL, 10);
		}
	}
}

static int query_caps(struct mf_imap *im, struct mf_err *err)
{
	struct mailimap_capability_data *cd = NULL;
	int r = mailimap_capability(im->s, &cd);
	if (r != MAILIMAP_NO_ERROR)
		return mf_imap_fail(im, r, MF_EPROTO, "CAPABILITY", err);
	read_caps(im, cd);
	mailimap_capability_data_free(cd);
	return 0;
}

static void b64(const unsigned char *in, size_t n, struct mf_buf *out, int *rc)
{
	static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i;
	for (i = 0; i < n && *rc == 0; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) |
			     (i + 2 < n ? in[i + 2] : 0);
		char q[4] = {t[v >> 18 & 63], t[v >> 12 & 63], i + 1 < n ? t[v >> 6 & 63] : '=',
			     i + 2 < n ? t[v & 63] : '='};
		*rc = mf_buf_add(out, q, 4);
	}
}

/* AUTHENTICATE PLAIN with SASL-IR: one line, no continuation round trip,
 * and the authorization identity (admin on behalf of a user) under our
 * control. */
static int auth_plain_ir(struct mf_imap *im, const char *authzid, const char *login,
			 const char *password, struct mf_err *err)
{
	struct mf_buf raw = {0}, cmd = {0};
	int rc = 0, r;
	size_t zl = authzid ? strlen(authzid) : 0;

	if (mf_buf_add(&raw, authzid ? authzid : "", zl) || mf_buf_add(&raw, "", 1) ||
	    mf_buf_addstr(&raw, login) || mf_buf_add(&raw, "", 1) ||
	    mf_buf_addstr(&raw, password) || mf_buf_addstr(&cmd, "AUTHENTICATE PLAIN ")) {
		rc = mf_err_set(err, MF_ENOMEM, "out of memory");
		goto out;
	}
	b64((const unsigned char *)raw.data, raw.len, &cmd, &rc);
	if (rc || mf_buf_add(&cmd, "", 1)) {
		rc = mf_err_set(err, MF_ENOMEM, "out of memory");
		goto out;
	}
	r = raw_command(im, cmd.data);
	if (r != MAILIMAP_NO_ERROR) {
		/* NO is a refused login; BAD is told apart by mf_imap_classify */
		rc = mf_imap_fail(im, r == MAILIMAP_ERROR_CUSTOM_COMMAND ? MAILIMAP_ERROR_LOGIN : r,
				  MF_EAUTH, "AUTHENTICATE PLAIN", err);
		goto out;
	}
	im->s->imap_state = MAILIMAP_STATE_AUTHENTICATED;
out:
	if (raw.data)
		memset(raw.data, 0, raw.len);
	if (cmd.data)
		memset(cmd.data, 0, cmd.len);
	mf_buf_free(&raw);
	mf_buf_free(&cmd);
	return rc;
}

static int do_auth(struct mf_imap_conf *c, struct mf_imap *im, const char *login,
		   const char *authzid, const char *password, struct mf_err *err)
{
	int r;
	char *tok = NULL;

	switch (c->auth) {
	case MF_IMAP_AUTH_LOGIN:
		if (authzid)
			return mf_err_set(err, MF_ECONFIG,
					  "admin_user needs auth = plain (SASL authorization id)");
		r = mailimap_login(im->s, login, password);
		if (r != MAILIMAP_NO_ERROR)
			return mf_imap_fail(im, r == MAILIMAP_ERROR_STREAM ? r : MAILIMAP_ERROR_LOGIN,
					    MF_EAUTH, "LOGIN", err);
		return 0;
	case MF_IMAP_AUTH_PLAIN:
		if (im->caps & MF_IMAP_CAP_SASLIR)
			return auth_plain_ir(im, authzid, login, password, err);
		r = mailimap_authenticate(im->s, "PLAIN", c->host, NULL, NULL,
					  authzid ? authzid : login, login, password, NULL);
		if (r != MAILIMAP_NO_ERROR)
			return mf_imap_fail(im, r == MAILIMAP_ERROR_STREAM ? r : MAILIMAP_ERROR_LOGIN,
					    MF_EAUTH, "AUTHENTICATE PLAIN", err);
		return 0;
	case MF_IMAP_AUTH_XOAUTH2:
		for (int attempt = 0; attempt < 2; attempt++) {
			int rc = mf_imap_token(c, attempt > 0, &tok, err);
			if (rc < 0)
				return rc;
			r = mailimap_oauth2_authenticate(im->s, authzid ? authzid : login, tok);
			mf_secret_free(tok);
			tok = NULL;
			if (r == MAILIMAP_NO_ERROR)
				return 0;
			if (r == MAILIMAP_ERROR_STREAM || r == MAILIMAP_ERROR_FATAL)
				break;
		}
		return mf_imap_fail(im, r == MAILIMAP_ERROR_STREAM ? r : MAILIMAP_ERROR_LOGIN,
				    MF_EAUTH, "AUTHENTICATE XOAUTH2", err);
	}
	return mf_err_set(err, MF_EINTERNAL, "unknown auth");
}

/* libetpan (GnuTLS build) does not check the server's certificate: check
 * the chain the server sent against the system's CAs (or tls_ca_file) and
 * the host name, as a browser would. */
static int verify_tls(struct mf_imap *im, const struct mf_imap_conf *c, struct mf_err *err)
{
	mailstream_low *low = mailstream_get_low(im->s->imap_stream);
	carray *chain = NULL;
	gnutls_x509_crt_t crts[16];
	gnutls_x509_trust_list_t tl = NULL;
	gnutls_typed_vdata_st vd[2];
	unsigned n = 0, i, status = 0;
	int rc = 0, gr;

	if (low && low->driver && low->driver->mailstream_get_certificate_chain)
		chain = low->driver->mailstream_get_certificate_chain(low);
	if (!chain || carray_count(chain) == 0) {
		rc = mf_err_set(err, MF_ECONFIG, "TLS: %s sent no certificate", c->host);
		goto out;
	}
	for (i = 0; i < carray_count(chain) && n < 16; i++) {
		MMAPString *der = carray_get(chain, i);
		gnutls_datum_t d = {(unsigned char *)der->str, (unsigned)der->len};
		if (gnutls_x509_crt_init(&crts[n]) < 0) {
			rc = mf_err_set(err, MF_ENOMEM, "out of memory");
			goto out;
		}
		if (gnutls_x509_crt_import(crts[n], &d, GNUTLS_X509_FMT_DER) < 0) {
			gnutls_x509_crt_deinit(crts[n]);
			rc = mf_err_set(err, MF_ECONFIG, "TLS: cannot parse %s's certificate", c->host);
			goto out;
		}
		n++;
	}
	if (gnutls_x509_trust_list_init(&tl, 0) < 0) {
		rc = mf_err_set(err, MF_ENOMEM, "out of memory");
		goto out;
	}
	gr = c->tls_ca_file ? gnutls_x509_trust_list_add_trust_file(tl, c->tls_ca_file, NULL,
								   GNUTLS_X509_FMT_PEM, 0, 0)
			    : gnutls_x509_trust_list_add_system_trust(tl, 0, 0);
	if (gr <= 0) {
		rc = mf_err_set(err, MF_ECONFIG, "TLS: no trusted CA certificates in %s",
				c->tls_ca_file ? c->tls_ca_file : "the system store");
		goto out;
	}
	memset(vd, 0, sizeof(vd));
	vd[0].type = GNUTLS_DT_DNS_HOSTNAME;
	vd[0].data = (unsigned char *)c->host;
	vd[1].type = GNUTLS_DT_KEY_PURPOSE_OID;
	vd[1].data = (unsigned char *)GNUTLS_KP_TLS_WWW_SERVER;
	gr = gnutls_x509_trust_list_verify_crt2(tl, crts, n, vd, 2, 0, &status, NULL);
	if (gr < 0 || status != 0) {
		gnutls_datum_t why = {NULL, 0};
		if (gr >= 0)
			gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &why, 0);
		rc = mf_err_set(err, MF_ECONFIG,
				"TLS: certificate of %s not accepted: %s (tls_verify = no skips this check)",
				c->host, why.data ? (const char *)why.data : gnutls_strerror(gr));
		gnutls_free(why.data);
	}
out:
	if (tl)
		gnutls_x509_trust_list_deinit(tl, 1);
	for (i = 0; i < n; i++)
		gnutls_x509_crt_deinit(crts[i]);
	if (chain) {
		for (i = 0; i < carray_count(chain); i++)
			mmap_string_free(carray_get(chain, i));
		carray_free(chain);
	}
	return rc;
}

static void ssl_cb(struct mailstream_ssl_context *ctx, void *data)
{
	mailstream_ssl_set_server_name(ctx, data);
}

/* Remember the prefixes of other users' and shared namespaces. An empty one
 * cannot be told from the personal namespace and is not kept. */
static int add_foreign_ns(struct mf_imap *im, struct mailimap_namespace_item *item)
{
	clistiter *it;
	for (it = item && item->ns_data_list ? clist_begin(item->ns_data_list) : NULL; it;
	     it = clist_next(it)) {
		struct mailimap_namespace_info *ni = clist_content(it);
		if (!ni->ns_prefix || !*ni->ns_prefix || im->nforeign == MF_IMAP_MAX_NS)
			continue;
		if (!(im->foreign_ns[im->nforeign] = strdup(ni->ns_prefix)))
			return MF_ENOMEM;
		im->nforeign++;
	}
	return 0;
}

static int learn_namespace(struct mf_imap *im, struct mf_err *err)
{
	int r;
	if (im->caps & MF_IMAP_CAP_NAMESPACE) {
		struct mailimap_namespace_data *ns = NULL;
		r = mailimap_namespace(im->s, &ns);
		if (r == MAILIMAP_NO_ERROR && ns && ns->ns_personal && ns->ns_personal->ns_data_list &&
		    clist_begin(ns->ns_personal->ns_data_list)) {
			struct mailimap_namespace_info *ni =
				clist_content(clist_begin(ns->ns_personal->ns_data_list));
			im->delim = ni->ns_delimiter;
			im->ns_prefix = strdup(ni->ns_prefix ? ni->ns_prefix : "");
			if (im->ns_prefix && (add_foreign_ns(im, ns->ns_other) < 0 ||
					      add_foreign_ns(im, ns->ns_shared) < 0)) {
				free(im->ns_prefix);
				im->ns_prefix = NULL;
			}
			mailimap_namespace_data_free(ns);
			if (!im->ns_prefix)
				return mf_err_set(err, MF_ENOMEM, "out of memory");
			return 0;
		}
		if (ns)
			mailimap_namespace_data_free(ns);
		if (r == MAILIMAP_ERROR_STREAM)
			return mf_imap_fail(im, r, MF_EPROTO, "NAMESPACE", err);
	}
	{
		clist *l = NULL;
		r = mailimap_list(im->s, "", "", &l);
		if (r != MAILIMAP_NO_ERROR)
			return mf_imap_fail(im, r, MF_EPROTO, "LIST", err);
		if (l && clist_begin(l)) {
			struct mailimap_mailbox_list *mb = clist_content(clist_begin(l));
			im->delim = mb->mb_delimiter;
		}
		if (l)
			mailimap_list_result_free(l);
	}
	im->ns_prefix = strdup("");
	return im->ns_prefix ? 0 : mf_err_set(err, MF_ENOMEM, "out of memory");
}

/* RFC 6855: with UTF8=ACCEPT, mailbox names travel as UTF-8. Courier
 * refuses characters outside the BMP (emoji) in names otherwise, and once
 * such a folder exists its LIST breaks for clients without it. A refusal
 * is not fatal: names stay in modified UTF-7. */
static int enable_utf8(struct mf_imap *im, struct mf_err *err)
{
	struct mailimap_capability_data *want = NULL, *got = NULL;
	struct mailimap_capability *cap = NULL;
	clist *l = clist_new();
	char *name = strdup("UTF8=ACCEPT");
	int r;

	if (!l || !name || !(cap = mailimap_capability_new(MAILIMAP_CAPABILITY_NAME, NULL, name))) {
		free(name);
		if (l)
			clist_free(l);
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	}
	if (clist_append(l, cap) < 0 || !(want = mailimap_capability_data_new(l))) {
		mailimap_capability_free(cap);
		clist_free(l);
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	}
	r = mailimap_enable(im->s, want, &got);
	mailimap_capability_data_free(want);
	if (r == MAILIMAP_NO_ERROR) {
		for (clistiter *it = got && got->cap_list ? clist_begin(got->cap_list) : NULL; it;
		     it = clist_next(it)) {
			struct mailimap_capability *c = clist_content(it);
			if (c->cap_type == MAILIMAP_CAPABILITY_NAME && c->cap_data.cap_name &&
			    !strcasecmp(c->cap_data.cap_name, "UTF8=ACCEPT"))
				im->utf8 = true;
		}
		/* a server that answers OK without the untagged ENABLED line
		 * (RFC 5161 3 makes it mandatory) is not trusted with UTF-8 */
	}
	if (got)
		mailimap_capability_data_free(got);
	if (r == MAILIMAP_ERROR_STREAM)
		return mf_imap_fail(im, r, MF_EPROTO, "ENABLE UTF8=ACCEPT", err);
	return 0;
}

int mf_imap_open(struct mf_imap_conf *c, const char *login, const char *authzid,
		 const char *password, struct mf_imap **out, struct mf_err *err)
{
	struct mf_imap *im = calloc(1, sizeof(*im));
	int r, rc;

	*out = NULL;
	{
		/* a server closing the socket must show up as an error from
		 * write(), not kill the process: block SIGPIPE on this (worker)
		 * thread */
		sigset_t ss;
		sigemptyset(&ss);
		sigaddset(&ss, SIGPIPE);
		pthread_sigmask(SIG_BLOCK, &ss, NULL);
	}
	if (!im || !(im->s = mailimap_new(0, NULL))) {
		free(im);
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	}
	mailimap_set_timeout(im->s, c->timeout_s);
	r = guarded_connect(im, c);
	if (r != MAILIMAP_NO_ERROR_AUTHENTICATED && r != MAILIMAP_NO_ERROR_NON_AUTHENTICATED) {
		rc = mf_err_set(err, MF_ECONN, "cannot connect to %s:%u%s", c->host,
				(unsigned)c->port,
				r == MAILIMAP_ERROR_SSL ? " (TLS handshake failed)"
				: im->line_too_long ? ": the greeting is a line of more than 16 MB"
				: "");
		goto fail;
	}
	hook_logger(im);
	if (c->tls == MF_IMAP_TLS_IMPLICIT && c->tls_verify && (rc = verify_tls(im, c, err)) < 0)
		goto fail;
	if ((rc = query_caps(im, err)) < 0)
		goto fail;
	if (c->tls == MF_IMAP_TLS_STARTTLS) {
		r = mailimap_socket_starttls(im->s);
		if (r != MAILIMAP_NO_ERROR) {
			rc = mf_err_set(err, r == MAILIMAP_ERROR_STREAM ? MF_ECONN : MF_ECONFIG,
					"STARTTLS with %s:%u failed", c->host, (unsigned)c->port);
			goto fail;
		}
		if ((rc = start_guard(im, err)) < 0)
			goto fail;
		if (c->tls_verify && (rc = verify_tls(im, c, err)) < 0)
			goto fail;
		if ((rc = query_caps(im, err)) < 0)
			goto fail;
	}
	if (im->s->imap_state == MAILIMAP_STATE_NON_AUTHENTICATED &&
	    (rc = do_auth(c, im, login, authzid, password, err)) < 0)
		goto fail;
	if ((rc = query_caps(im, err)) < 0)
		goto fail;
	if (c->compress && (im->caps & MF_IMAP_CAP_COMPRESS) &&
	    (rc = start_compress(im, err)) < 0)
		goto fail;
	if ((im->caps & MF_IMAP_CAP_UTF8ACCEPT) && (rc = enable_utf8(im, err)) < 0)
		goto fail;
	if ((rc = learn_namespace(im, err)) < 0)
		goto fail;
	mailimap_set_progress_callback(im->s, progress_noop, NULL, im);
	mailimap_set_msg_att_handler(im->s, att_handler, im);
	mailimap_set_msg_body_handler(im->s, body_handler, im);
	*out = im;
	return 0;
fail:
	mf_imap_close(im);
	return rc;
}

void mf_imap_close(struct mf_imap *im)
{
	if (!im)
		return;
	if (im->s) {
		if (im->s->imap_stream)
			mailimap_logout(im->s);
		mailimap_free(im->s);
	}
	mf_buf_free(&im->body);
	free(im->ns_prefix);
	for (size_t i = 0; i < im->nforeign; i++)
		free(im->foreign_ns[i]);
	free(im->selected);
	free(im->perm_keywords);
	free(im);
}

/* ---- folders ------------------------------------------------------------------------ */

static const struct {
	const char *name;
	enum mf_role role;
} role_names[] = {
	{"Sent", MF_ROLE_SENT}, {"Sent Items", MF_ROLE_SENT}, {"Sent Messages", MF_ROLE_SENT},
	{"Sent Mail", MF_ROLE_SENT}, {"Gesendete Elemente", MF_ROLE_SENT},
	{"Gesendet", MF_ROLE_SENT}, {"Gesendete Objekte", MF_ROLE_SENT},
	{"Éléments envoyés", MF_ROLE_SENT}, {"Envoyés", MF_ROLE_SENT},
	{"Elementos enviados", MF_ROLE_SENT}, {"Enviados", MF_ROLE_SENT},
	{"Posta inviata", MF_ROLE_SENT}, {"Inviata", MF_ROLE_SENT},
	{"Verzonden items", MF_ROLE_SENT}, {"Skickat", MF_ROLE_SENT},
	{"Drafts", MF_ROLE_DRAFTS}, {"Entwürfe", MF_ROLE_DRAFTS}, {"Brouillons", MF_ROLE_DRAFTS},
	{"Borradores", MF_ROLE_DRAFTS}, {"Bozze", MF_ROLE_DRAFTS}, {"Concepten", MF_ROLE_DRAFTS},
	{"Trash", MF_ROLE_TRASH}, {"Deleted Items", MF_ROLE_TRASH},
	{"Deleted Messages", MF_ROLE_TRASH}, {"Bin", MF_ROLE_TRASH},
	{"Gelöschte Elemente", MF_ROLE_TRASH}, {"Gelöschte Objekte", MF_ROLE_TRASH},
	{"Papierkorb", MF_ROLE_TRASH}, {"Éléments supprimés", MF_ROLE_TRASH},
	{"Corbeille", MF_ROLE_TRASH}, {"Elementos eliminados", MF_ROLE_TRASH},
	{"Papelera", MF_ROLE_TRASH}, {"Cestino", MF_ROLE_TRASH},
	{"Verwijderde items", MF_ROLE_TRASH},
	{"Junk", MF_ROLE_JUNK}, {"Junk E-mail", MF_ROLE_JUNK}, {"Junk Email", MF_ROLE_JUNK},
	{"Junk-E-Mail", MF_ROLE_JUNK}, {"Spam", MF_ROLE_JUNK},
	{"Courrier indésirable", MF_ROLE_JUNK}, {"Correo no deseado", MF_ROLE_JUNK},
	{"Posta indesiderata", MF_ROLE_JUNK}, {"Ongewenste e-mail", MF_ROLE_JUNK},
	{"Archive", MF_ROLE_ARCHIVE}, {"Archives", MF_ROLE_ARCHIVE}, {"Archiv", MF_ROLE_ARCHIVE},
	{"Archivio", MF_ROLE_ARCHIVE}, {"Archivo", MF_ROLE_ARCHIVE},
};

enum mf_role mf_imap_role_by_name(const char *name)
{
	size_t i;
	if (!strcasecmp(name, "INBOX"))
		return MF_ROLE_INBOX;
	for (i = 0; i < sizeof(role_names) / sizeof(role_names[0]); i++)
		if (!strcasecmp(name, role_names[i].name))
			return role_names[i].role;
	return MF_ROLE_NONE;
}

static enum mf_role role_by_flag(const char *f, bool *view)
{
	if (!strcasecmp(f, "Sent"))
		return MF_ROLE_SENT;
	if (!strcasecmp(f, "Drafts"))
		return MF_ROLE_DRAFTS;
	if (!strcasecmp(f, "Trash"))
		return MF_ROLE_TRASH;
	if (!strcasecmp(f, "Junk") || !strcasecmp(f, "Spam"))
		return MF_ROLE_JUNK;
	if (!strcasecmp(f, "Archive"))
		return MF_ROLE_ARCHIVE;
	if (!strcasecmp(f, "Inbox"))
		return MF_ROLE_INBOX;
	if (!strcasecmp(f, "All") || !strcasecmp(f, "AllMail") || !strcasecmp(f, "Flagged") ||
	    !strcasecmp(f, "Starred") || !strcasecmp(f, "Important"))
		*view = true;
	return MF_ROLE_NONE;
}

void mf_imap_folders_free(struct mf_imap_folder *f, size_t n)
{
	size_t i;
	if (!f)
		return;
	for (i = 0; i < n; i++) {
		free(f[i].wire);
		mf_path_free(&f[i].path);
	}
	free(f);
}

/* Split a relative wire name on the delimiter and decode every segment. */
static int wire_to_path(const char *rel, char delim, bool utf8, struct mf_path *p)
{
	struct mf_buf seg = {0};
	const char *s = rel, *e;
	int rc = 0;

	while (*s && rc == 0) {
		e = delim ? strchr(s, delim) : NULL;
		if (!e)
			e = s + strlen(s);
		if (e > s) {
			seg.len = 0;
			if (utf8) {
				rc = mf_buf_add(&seg, s, (size_t)(e - s));
			} else if (mf_imap_utf7_decode(s, (size_t)(e - s), &seg) < 0) {
				seg.len = 0; /* not valid mUTF-7: keep the bytes */
				rc = mf_buf_add(&seg, s, (size_t)(e - s));
			}
			if (rc == 0)
				rc = mf_path_push(p, seg.data, seg.len);
		}
		s = *e ? e + 1 : e;
	}
	mf_buf_free(&seg);
	return rc;
}

/* The name lies in another users' or a shared namespace. */
static bool in_foreign_ns(const struct mf_imap *im, const char *name)
{
	for (size_t i = 0; i < im->nforeign; i++) {
		size_t pl = strlen(im->foreign_ns[i]);
		/* "Other Users/x" and the namespace root "Other Users" itself */
		if (!strncmp(name, im->foreign_ns[i], pl) ||
		    (pl > 1 && im->foreign_ns[i][pl - 1] == im->delim && strlen(name) == pl - 1 &&
		     !strncmp(name, im->foreign_ns[i], pl - 1)))
			return true;
	}
	return false;
}

static int add_listing(struct mf_imap *im, clist *l, const char *strip, bool foreign,
		       struct mf_imap_folder **arr, size_t *n, size_t *cap)
{
	clistiter *it;
	for (it = l ? clist_begin(l) : NULL; it; it = clist_next(it)) {
		struct mailimap_mailbox_list *mb = clist_content(it);
		struct mf_imap_folder f;
		const char *rel = mb->mb_name;
		bool is_inbox = !strcasecmp(mb->mb_name, "INBOX");
		size_t i;
		clistiter *fi;

		memset(&f, 0, sizeof(f));
		for (i = 0; i < *n; i++)
			if (!strcmp((*arr)[i].wire, mb->mb_name))
				break;
		if (i < *n)
			continue;
		if (!foreign && !is_inbox && in_foreign_ns(im, mb->mb_name))
			continue;
		if (!is_inbox && strip && *strip) {
			if (strncmp(rel, strip, strlen(strip)) != 0)
				continue;
			rel += strlen(strip);
		}
		if (!*rel)
			continue; /* the root itself */
		if (mb->mb_flag) {
			if (mb->mb_flag->mbf_type == MAILIMAP_MBX_LIST_FLAGS_SFLAG &&
			    mb->mb_flag->mbf_sflag == MAILIMAP_MBX_LIST_SFLAG_NOSELECT)
				f.noselect = true;
			for (fi = mb->mb_flag->mbf_oflags ? clist_begin(mb->mb_flag->mbf_oflags)
							    : NULL;
			     fi; fi = clist_next(fi)) {
				struct mailimap_mbx_list_oflag *of = clist_content(fi);
				if (of->of_type != MAILIMAP_MBX_LIST_OFLAG_FLAG_EXT ||
				    !of->of_flag_ext)
					continue;
				if (!strcasecmp(of->of_flag_ext, "NonExistent"))
					f.noselect = true;
				else if (f.role == MF_ROLE_NONE)
					f.role = role_by_flag(of->of_flag_ext, &f.view);
			}
		}
		mf_path_init(&f.path);
		if (is_inbox) {
			if (mf_path_push(&f.path, "INBOX", 5) < 0)
				return MF_ENOMEM;
			f.role = MF_ROLE_INBOX;
		} else if (wire_to_path(rel, mb->mb_delimiter ? mb->mb_delimiter : im->delim, im->utf8,
					&f.path) < 0) {
			mf_path_free(&f.path);
			return MF_ENOMEM;
		}
		if (f.path.n == 0) {
			mf_path_free(&f.path);
			continue;
		}
		if (f.role == MF_ROLE_NONE && f.path.n == 1)
			f.role = mf_imap_role_by_name(f.path.seg[0]);
		if (!(f.wire = strdup(mb->mb_name))) {
			mf_path_free(&f.path);
			return MF_ENOMEM;
		}
		if (*n == *cap) {
			size_t nc = *cap ? *cap * 2 : 16;
			struct mf_imap_folder *na = realloc(*arr, nc * sizeof(*na));
			if (!na) {
				free(f.wire);
				mf_path_free(&f.path);
				return MF_ENOMEM;
			}
			*arr = na;
			*cap = nc;
		}
		(*arr)[(*n)++] = f;
	}
	return 0;
}

int mf_imap_list(struct mf_imap *im, const char *root, struct mf_imap_folder **out, size_t *n,
		 struct mf_err *err)
{
	struct mf_imap_folder *arr = NULL;
	size_t cnt = 0, cap = 0;
	struct mf_buf pat = {0}, strip = {0};
	clist *l = NULL;
	int r, rc = 0;
	bool xlist = !(im->caps & MF_IMAP_CAP_SPECIALUSE) && (im->caps & MF_IMAP_CAP_XLIST);

	*out = NULL;
	*n = 0;
	if (root && *root) {
		char d[2] = {im->delim, 0};
		if (mf_imap_utf7_encode(root, strlen(root), &strip) < 0 ||
		    mf_buf_add(&strip, d, im->delim ? 1 : 0) < 0 || mf_buf_add(&strip, "", 1) < 0 ||
		    mf_buf_addstr(&pat, strip.data) < 0 || mf_buf_add(&pat, "*", 2) < 0)
			goto nomem;
	} else {
		if (mf_buf_addstr(&strip, im->ns_prefix ? im->ns_prefix : "") < 0 ||
		    mf_buf_add(&strip, "", 1) < 0 || mf_buf_addstr(&pat, strip.data) < 0 ||
		    mf_buf_add(&pat, "*", 2) < 0)
			goto nomem;
		/* INBOX may lie outside a prefixed namespace ("INBOX." on Courier) */
		r = xlist ? mailimap_xlist(im->s, "", "INBOX", &l)
			  : mailimap_list(im->s, "", "INBOX", &l);
		if (r != MAILIMAP_NO_ERROR) {
			rc = mf_imap_fail(im, r, MF_EMAILBOX, "LIST", err);
			goto out;
		}
		if (add_listing(im, l, strip.data, false, &arr, &cnt, &cap) < 0)
			goto nomem;
		mailimap_list_result_free(l);
		l = NULL;
	}
	r = xlist ? mailimap_xlist(im->s, "", pat.data, &l)
		  : mailimap_list(im->s, "", pat.data, &l);
	if (r != MAILIMAP_NO_ERROR) {
		rc = mf_imap_fail(im, r, MF_EMAILBOX, "LIST", err);
		goto out;
	}
	if (add_listing(im, l, strip.data, false, &arr, &cnt, &cap) < 0)
		goto nomem;
	/* other users' and shared folders, when asked: as the server names
	 * them, prefix included */
	for (size_t i = 0; im->list_foreign && !(root && *root) && i < im->nforeign; i++) {
		mailimap_list_result_free(l);
		l = NULL;
		pat.len = 0;
		if (mf_buf_addstr(&pat, im->foreign_ns[i]) < 0 || mf_buf_add(&pat, "*", 2) < 0)
			goto nomem;
		r = xlist ? mailimap_xlist(im->s, "", pat.data, &l)
			  : mailimap_list(im->s, "", pat.data, &l);
		if (r != MAILIMAP_NO_ERROR) {
			rc = mf_imap_fail(im, r, MF_EMAILBOX, "LIST", err);
			goto out;
		}
		if (add_listing(im, l, NULL, true, &arr, &cnt, &cap) < 0)
			goto nomem;
	}
	*out = arr;
	*n = cnt;
	arr = NULL;
	cnt = 0;
	goto out;
nomem:
	rc = mf_err_set(err, MF_ENOMEM, "out of memory");
out:
	if (l)
		mailimap_list_result_free(l);
	mf_imap_folders_free(arr, cnt);
	mf_buf_free(&pat);
	mf_buf_free(&strip);
	return rc;
}

/* ---- modified UTF-7 ------------------------------------------------------------------ */

static int b64val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == ',')
		return 63;
	return -1;
}

static int put_utf8(struct mf_buf *out, uint32_t cp)
{
	unsigned char b[4];
	size_t n;
	if (cp < 0x80) {
		b[0] = (unsigned char)cp;
		n = 1;
	} else if (cp < 0x800) {
		b[0] = (unsigned char)(0xc0 | cp >> 6);
		b[1] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		b[0] = (unsigned char)(0xe0 | cp >> 12);
		b[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
		b[2] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		b[0] = (unsigned char)(0xf0 | cp >> 18);
		b[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
		b[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
		b[3] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	return mf_buf_add(out, b, n);
}

int mf_imap_name_map(const char *in, bool astral, struct mf_buf *out)
{
	int n = 0;
	for (const char *p = in; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (strchr(MF_IMAP_NAME_MAPPED, c)) {
			/* U+FF01..U+FF5E mirror '!'..'~' */
			uint32_t cp = 0xff01u + (uint32_t)(c - '!');
			if (put_utf8(out, cp) < 0)
				return MF_ENOMEM;
			n++;
		} else if (astral && c >= 0xf0 && p[1] && p[2] && p[3]) {
			uint32_t cp = (uint32_t)(c & 0x07) << 18 | (uint32_t)(p[1] & 0x3f) << 12 |
				      (uint32_t)(p[2] & 0x3f) << 6 | (uint32_t)(p[3] & 0x3f);
			if (mf_buf_printf(out, "U+%04" PRIX32, cp) < 0)
				return MF_ENOMEM;
			p += 3;
			n++;
		} else if (mf_buf_add(out, p, 1) < 0) {
			return MF_ENOMEM;
		}
	}
	return n;
}

int mf_imap_utf7_decode(const char *in, size_t len, struct mf_buf *out)
{
	size_t i = 0;
	while (i < len) {
		unsigned char c = (unsigned char)in[i];
		if (c < 0x20 || c > 0x7e)
			return MF_EINVAL;
		if (c != '&') {
			if (mf_buf_add(out, in + i, 1) < 0)
				return MF_ENOMEM;
			i++;
			continue;
		}
		i++;
		if (i < len && in[i] == '-') {
			if (mf_buf_add(out, "&", 1) < 0)
				return MF_ENOMEM;
			i++;
			continue;
		}
		{
			uint32_t acc = 0, hi = 0;
			int bits = 0, nchars = 0;
			while (i < len && in[i] != '-') {
				int v = b64val((unsigned char)in[i]);
				if (v < 0)
					return MF_EINVAL;
				acc = (acc << 6 | (uint32_t)v) & 0xffffff;
				bits += 6;
				i++;
				if (bits >= 16) {
					uint32_t u = (acc >> (bits - 16)) & 0xffff;
					bits -= 16;
					nchars++;
					if (u >= 0xd800 && u <= 0xdbff) {
						if (hi)
							return MF_EINVAL;
						hi = u;
						continue;
					}
					if (u >= 0xdc00 && u <= 0xdfff) {
						if (!hi)
							return MF_EINVAL;
						u = 0x10000 + ((hi - 0xd800) << 10) + (u - 0xdc00);
						hi = 0;
					} else if (hi) {
						return MF_EINVAL;
					}
					/* printable ASCII must not be encoded */
					if (u >= 0x20 && u <= 0x7e)
						return MF_EINVAL;
					if (put_utf8(out, u) < 0)
						return MF_ENOMEM;
				}
			}
			if (i >= len || hi || nchars == 0 || bits >= 6 ||
			    (acc & ((1u << bits) - 1)) != 0)
				return MF_EINVAL;
			i++; /* the '-' */
		}
	}
	return 0;
}

/* Next code point of UTF-8; -1 on malformed input. */
static int32_t next_cp(const unsigned char *s, size_t len, size_t *i)
{
	unsigned char c = s[*i];
	uint32_t cp;
	size_t n, k;
	if (c < 0x80) {
		(*i)++;
		return c;
	}
	if ((c & 0xe0) == 0xc0) {
		n = 1;
		cp = c & 0x1f;
	} else if ((c & 0xf0) == 0xe0) {
		n = 2;
		cp = c & 0x0f;
	} else if ((c & 0xf8) == 0xf0) {
		n = 3;
		cp = c & 0x07;
	} else {
		return -1;
	}
	for (k = 1; k <= n; k++) {
		if (*i + k >= len || (s[*i + k] & 0xc0) != 0x80)
			return -1;
		cp = cp << 6 | (s[*i + k] & 0x3f);
	}
	if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return -1;
	*i += n + 1;
	return (int32_t)cp;
}

int mf_imap_utf7_encode(const char *in, size_t len, struct mf_buf *out)
{
	static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";
	const unsigned char *s = (const unsigned char *)in;
	size_t i = 0;
	while (i < len) {
		if (s[i] >= 0x20 && s[i] <= 0x7e) {
			if (mf_buf_add(out, s[i] == '&' ? "&-" : (const char *)s + i,
				       s[i] == '&' ? 2 : 1) < 0)
				return MF_ENOMEM;
			i++;
			continue;
		}
		{
			uint32_t acc = 0;
			int bits = 0;
			if (mf_buf_add(out, "&", 1) < 0)
				return MF_ENOMEM;
			while (i < len && !(s[i] >= 0x20 && s[i] <= 0x7e)) {
				int32_t cp = next_cp(s, len, &i);
				uint32_t units[2];
				int nu, k;
				if (cp < 0)
					return MF_EINVAL;
				if (cp >= 0x10000) {
					units[0] = 0xd800 + (((uint32_t)cp - 0x10000) >> 10);
					units[1] = 0xdc00 + (((uint32_t)cp - 0x10000) & 0x3ff);
					nu = 2;
				} else {
					units[0] = (uint32_t)cp;
					nu = 1;
				}
				for (k = 0; k < nu; k++) {
					acc = (acc << 16 | units[k]) & 0xffffffu;
					bits += 16;
					while (bits >= 6) {
						char ch = t[(acc >> (bits - 6)) & 63];
						bits -= 6;
						if (mf_buf_add(out, &ch, 1) < 0)
							return MF_ENOMEM;
					}
				}
			}
			if (bits > 0) {
				char ch = t[(acc << (6 - bits)) & 63];
				if (mf_buf_add(out, &ch, 1) < 0)
					return MF_ENOMEM;
			}
			if (mf_buf_add(out, "-", 1) < 0)
				return MF_ENOMEM;
		}
	}
	return 0;
}

/* ---- XOAUTH2 tokens ------------------------------------------------------------------- */

static int run_token_cmd(const char *cmd, char **tok, struct mf_err *err)
{
	FILE *p;
	char buf[8192];
	size_t n, lead = 0;
	int st;

	p = popen(cmd, "r");
	if (!p)
		return mf_err_set(err, MF_EAUTH, "token_cmd: cannot run: %s", strerror(errno));
	n = fread(buf, 1, sizeof(buf) - 1, p);
	st = pclose(p);
	buf[n] = 0;
	while (n > 0 && isspace((unsigned char)buf[n - 1]))
		buf[--n] = 0;
	if (st != 0 || n == 0) {
		memset(buf, 0, sizeof(buf));
		return mf_err_set(err, MF_EAUTH, "token_cmd: exited with status %d%s",
				  WIFEXITED(st) ? WEXITSTATUS(st) : -1, n ? "" : ", no token");
	}
	while (isspace((unsigned char)buf[lead]))
		lead++;
	*tok = strdup(buf + lead);
	memset(buf, 0, sizeof(buf));
	return *tok ? 0 : mf_err_set(err, MF_ENOMEM, "out of memory");
}

static size_t curl_sink(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct mf_buf *b = ud;
	size_t n = size * nmemb;
	if (b->len + n > 65536 || mf_buf_add(b, ptr, n) < 0)
		return 0;
	return n;
}

/* The value of "key": "..." or "key": 123 in a flat JSON object. */
static char *json_field(const char *js, const char *key)
{
	char pat[64];
	const char *p, *e;
	char *v;
	snprintf(pat, sizeof(pat), "\"%s\"", key);
	if (!(p = strstr(js, pat)))
		return NULL;
	p += strlen(pat);
	while (*p == ' ' || *p == ':' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	if (*p == '"') {
		e = strchr(++p, '"');
	} else {
		e = p;
		while (*e >= '0' && *e <= '9')
			e++;
	}
	if (!e || e == p)
		return NULL;
	if (!(v = malloc((size_t)(e - p) + 1)))
		return NULL;
	memcpy(v, p, (size_t)(e - p));
	v[e - p] = 0;
	return v;
}

static int client_credentials(struct mf_imap_conf *c, char **tok, uint64_t *ttl_ms,
			      struct mf_err *err)
{
	CURL *h = curl_easy_init();
	struct mf_buf body = {0}, resp = {0};
	char *e_id = NULL, *e_sec = NULL, *e_scope = NULL, *exp = NULL;
	long status = 0;
	int rc = 0;
	CURLcode cr;

	if (!h)
		return mf_err_set(err, MF_ENOMEM, "out of memory");
	e_id = curl_easy_escape(h, c->client_id, 0);
	e_sec = curl_easy_escape(h, c->client_secret, 0);
	e_scope = curl_easy_escape(h, c->scope ? c->scope : "https://outlook.office365.com/.default", 0);
	if (!e_id || !e_sec || !e_scope ||
	    mf_buf_printf(&body, "grant_type=client_credentials&client_id=%s&client_secret=%s&scope=%s",
			  e_id, e_sec, e_scope) < 0 ||
	    mf_buf_add(&body, "", 1) < 0) {
		rc = mf_err_set(err, MF_ENOMEM, "out of memory");
		goto out;
	}
	curl_easy_setopt(h, CURLOPT_URL, c->token_url);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, curl_sink);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	cr = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (cr != CURLE_OK) {
		rc = mf_err_set(err, MF_ECONN, "token_url: %s", curl_easy_strerror(cr));
		goto out;
	}
	if (mf_buf_add(&resp, "", 1) < 0) {
		rc = mf_err_set(err, MF_ENOMEM, "out of memory");
		goto out;
	}
	if (status != 200 || !(*tok = json_field(resp.data, "access_token"))) {
		rc = mf_err_set(err, status >= 500 ? MF_ECONN : MF_EAUTH,
				"token_url: HTTP %ld, no access_token", status);
		goto out;
	}
	exp = json_field(resp.data, "expires_in");
	*ttl_ms = exp ? strtoull(exp, NULL, 10) * 1000 : 3600 * 1000;
out:
	if (body.data)
		memset(body.data, 0, body.len);
	if (resp.data)
		memset(resp.data, 0, resp.len);
	mf_buf_free(&body);
	mf_buf_free(&resp);
	curl_free(e_id);
	curl_free(e_sec);
	curl_free(e_scope);
	free(exp);
	curl_easy_cleanup(h);
	return rc;
}

int mf_imap_token(struct mf_imap_conf *c, bool force, char **tok, struct mf_err *err)
{
	int rc = 0;
	uint64_t now = mf_now_ms(), ttl = 5 * 60 * 1000;
	char *fresh = NULL;

	*tok = NULL;
	pthread_mutex_lock(&c->token_lock);
	/* refresh a minute before expiry, and after a refused login */
	if (force || !c->token || now + 60000 >= c->token_expiry) {
		rc = c->token_cmd ? run_token_cmd(c->token_cmd, &fresh, err)
				  : client_credentials(c, &fresh, &ttl, err);
		if (rc == 0) {
			mf_secret_free(c->token);
			c->token = fresh;
			c->token_expiry = now + ttl;
		}
	}
	if (rc == 0 && !(*tok = strdup(c->token)))
		rc = mf_err_set(err, MF_ENOMEM, "out of memory");
	pthread_mutex_unlock(&c->token_lock);
	return rc;
}
