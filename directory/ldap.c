/* ldap.c - the directory from a live LDAP query (OpenLDAP's libldap):
 * user objects with sAMAccountName, userPrincipalName, mail, targetAddress
 * and proxyAddresses, as Active Directory stores them. Simple bind (or
 * anonymous without bind_dn), StartTLS on request, ldaps:// with the
 * system's or ldap_ca_file's CAs; certificates are always checked.
 * Blocking: it runs once, before the check.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "directory/directory.h"
#include "engine/error.h"

#ifndef MF_HAVE_LDAP

int mf_directory_read_ldap(const char *url, const struct mf_conf_section *s,
			   struct mf_directory *d, FILE *diag)
{
	memset(d, 0, sizeof(*d));
	const struct mf_conf_kv *kv = mf_conf_find(s, "directory");
	fprintf(diag, "%s:%d: [coexistence] directory: this mailferry was built without "
		      "libldap (install libldap-dev and rebuild)\n", s->file, kv ? kv->line : s->line);
	return MF_ECONFIG;
}

#else

#define LDAP_DEPRECATED 0
#include <ldap.h>

static int conf_line(const struct mf_conf_section *s, const char *key)
{
	const struct mf_conf_kv *kv = mf_conf_find(s, key);
	return kv ? kv->line : s->line;
}

/* The first value of attr, or "" (copied into a static-free buffer by the
 * caller through mf_directory_add). */
static char *first(LDAP *ld, LDAPMessage *e, const char *attr)
{
	struct berval **v = ldap_get_values_len(ld, e, attr);
	char *out = v && v[0] ? strndup(v[0]->bv_val, v[0]->bv_len) : strdup("");
	ldap_value_free_len(v);
	return out;
}

static int add_entry(LDAP *ld, LDAPMessage *e, struct mf_directory *d)
{
	char *dn = ldap_get_dn(ld, e);
	char *sam = first(ld, e, "sAMAccountName"), *upn = first(ld, e, "userPrincipalName");
	char *mail = first(ld, e, "mail"), *target = first(ld, e, "targetAddress");
	struct berval **pv = ldap_get_values_len(ld, e, "proxyAddresses");
	size_t np = pv ? (size_t)ldap_count_values_len(pv) : 0;
	char **proxy = np ? calloc(np, sizeof(*proxy)) : NULL;
	int rc = MF_ENOMEM;
	if (!dn || !sam || !upn || !mail || !target || (np && !proxy))
		goto out;
	size_t k = 0;
	for (; k < np; k++)
		if (!(proxy[k] = strndup(pv[k]->bv_val, pv[k]->bv_len)))
			goto out;
	rc = mf_directory_add(d, sam, upn, mail, target, (const char *const *)proxy, np, dn);
out:
	for (size_t i = 0; proxy && i < np; i++)
		free(proxy[i]);
	free(proxy);
	ldap_value_free_len(pv);
	ldap_memfree(dn);
	free(sam);
	free(upn);
	free(mail);
	free(target);
	return rc;
}

/* libldap does not say when the TLS handshake was the problem */
#define TLS_HINT                                                                               \
	" (over TLS: is the server's certificate issued by a CA the system or ldap_ca_file "   \
	"trusts, for this host name?)"

/* libldap's own words on the last failure, or "". */
static void diagnostic(LDAP *ld, char *out, size_t outsz)
{
	char *msg = NULL;
	out[0] = '\0';
	if (ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &msg) == LDAP_OPT_SUCCESS && msg &&
	    *msg && strcmp(msg, "(unknown error code)") != 0)
		snprintf(out, outsz, " (%s)", msg);
	ldap_memfree(msg);
}

int mf_directory_read_ldap(const char *url, const struct mf_conf_section *s,
			   struct mf_directory *d, FILE *diag)
{
	memset(d, 0, sizeof(*d));
	LDAPURLDesc *lud = NULL;
	LDAP *ld = NULL;
	char *password = NULL;
	struct mf_err err = {0};
	int rc = MF_ECONFIG, lrc;
	int dline = conf_line(s, "directory");
	if (ldap_url_parse(url, &lud) != LDAP_URL_SUCCESS || !lud->lud_dn || !*lud->lud_dn) {
		fprintf(diag, "%s:%d: [coexistence] directory: '%s' is not "
			      "ldap://host[:port]/BASE-DN\n", s->file, dline, url);
		goto out;
	}
	const char *binddn = mf_conf_get(s, "bind_dn", NULL);
	if (mf_conf_secret(s, "bind_password", &password, &err) < 0) {
		fprintf(diag, "%s\n", err.msg);
		goto out;
	}
	if (!binddn != !password) {
		fprintf(diag, "%s:%d: [coexistence] bind_dn and bind_password go together\n",
			s->file, conf_line(s, binddn ? "bind_dn" : "bind_password"));
		goto out;
	}
	bool starttls = false;
	if (mf_conf_bool(s, "starttls", false, &starttls, &err) < 0) {
		fprintf(diag, "%s\n", err.msg);
		goto out;
	}
	char *ca = NULL;
	if (mf_conf_path(s, "ldap_ca_file", NULL, &ca, &err) < 0) {
		fprintf(diag, "%s\n", err.msg);
		goto out;
	}
	const char *filter = mf_conf_get(s, "ldap_filter", "(objectClass=user)");

	/* a URL without the base DN, for ldap_initialize */
	char server[1024];
	if (lud->lud_port)
		snprintf(server, sizeof(server), "%s://%s:%d", lud->lud_scheme,
			 lud->lud_host ? lud->lud_host : "", lud->lud_port);
	else
		snprintf(server, sizeof(server), "%s://%s", lud->lud_scheme,
			 lud->lud_host ? lud->lud_host : "");
	if ((lrc = ldap_initialize(&ld, server)) != LDAP_SUCCESS) {
		fprintf(diag, "%s:%d: [coexistence] directory: %s\n", s->file, dline,
			ldap_err2string(lrc));
		free(ca);
		goto out;
	}
	int v3 = LDAP_VERSION3, demand = LDAP_OPT_X_TLS_DEMAND, zero = 0;
	struct timeval tmo = {.tv_sec = 30};
	ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3);
	ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
	ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tmo);
	ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tmo);
	ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand);
	if (ca)
		ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, ca);
	free(ca);
	/* the options above apply to a new TLS context only */
	ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &zero);
	rc = MF_ECONN;
	if (starttls && (lrc = ldap_start_tls_s(ld, NULL, NULL)) != LDAP_SUCCESS) {
		char why[512];
		diagnostic(ld, why, sizeof(why));
		if (!why[0] && (lrc == LDAP_SERVER_DOWN || lrc == LDAP_CONNECT_ERROR))
			snprintf(why, sizeof(why), TLS_HINT);
		fprintf(diag, "%s:%d: [coexistence] directory %s: StartTLS failed: %s%s\n",
			s->file, dline, server, ldap_err2string(lrc), why);
		goto out;
	}
	struct berval cred = {.bv_val = password, .bv_len = password ? strlen(password) : 0};
	lrc = ldap_sasl_bind_s(ld, binddn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
	if (lrc != LDAP_SUCCESS) {
		/* the server's words, never the password */
		char why[512];
		diagnostic(ld, why, sizeof(why));
		if (!why[0] && strcasecmp(lud->lud_scheme, "ldaps") == 0 &&
		    (lrc == LDAP_SERVER_DOWN || lrc == LDAP_CONNECT_ERROR))
			snprintf(why, sizeof(why), TLS_HINT);
		fprintf(diag, "%s:%d: [coexistence] directory %s: bind as %s failed: %s%s\n",
			s->file, conf_line(s, "bind_dn"), server, binddn ? binddn : "(anonymous)",
			ldap_err2string(lrc), why);
		rc = lrc == LDAP_INVALID_CREDENTIALS ? MF_ECONFIG : MF_ECONN;
		goto out;
	}
	char *attrs[] = {"sAMAccountName", "userPrincipalName", "mail", "targetAddress",
			 "proxyAddresses", NULL};
	LDAPMessage *res = NULL;
	lrc = ldap_search_ext_s(ld, lud->lud_dn, LDAP_SCOPE_SUBTREE, filter, attrs, 0, NULL,
				NULL, &tmo, LDAP_NO_LIMIT, &res);
	if (lrc != LDAP_SUCCESS) {
		fprintf(diag, "%s:%d: [coexistence] directory %s: search under %s for %s: %s\n",
			s->file, dline, server, lud->lud_dn, filter, ldap_err2string(lrc));
		ldap_msgfree(res);
		goto out;
	}
	rc = 0;
	for (LDAPMessage *e = ldap_first_entry(ld, res); e && !rc; e = ldap_next_entry(ld, e))
		rc = add_entry(ld, e, d);
	ldap_msgfree(res);
out:
	if (ld)
		ldap_unbind_ext_s(ld, NULL, NULL);
	if (lud)
		ldap_free_urldesc(lud);
	mf_secret_free(password);
	if (rc < 0)
		mf_directory_free(d);
	return rc;
}

#endif
