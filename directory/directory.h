/* directory.h - the on-premises directory as the coexistence check sees it:
 * one record per user object with the attributes Microsoft's coexistence
 * rules are about. Two readers fill it: a Get-ADUser | Export-Csv file
 * (csv.c) and a live LDAP query (ldap.c). Both give the same records for
 * the same users, so that the check cannot tell them apart.
 */
#ifndef MF_DIRECTORY_H
#define MF_DIRECTORY_H

#include <stddef.h>
#include <stdio.h>

#include "engine/conf.h"

struct mf_dir_user {
	char *sam;     /* sAMAccountName, "" when absent */
	char *upn;     /* userPrincipalName, "" when absent */
	char *mail;    /* mail, "" when absent */
	char *target;  /* targetAddress as stored (often "SMTP:x@y"), "" when absent */
	char **proxy;  /* proxyAddresses as stored ("SMTP:a@b", "smtp:c@d", "X500:..") */
	size_t nproxy;
	char *where;   /* "FILE:LINE" or the entry's DN: for messages */
};

struct mf_directory {
	struct mf_dir_user *users;
	size_t n;
};

/* Read a directory export (UTF-8 with or without BOM, UTF-16 LE/BE with
 * BOM; a leading "#TYPE ..." line is skipped) with the columns
 * SamAccountName, UserPrincipalName, mail, targetAddress, proxyAddresses
 * (';'-joined). Any problem is one line "FILE:LINE: ..." on diag and
 * MF_ECONFIG; MF_ENOMEM. On success *d is the caller's: mf_directory_free. */
int mf_directory_read_csv(const char *path, struct mf_directory *d, FILE *diag);

/* Parse export text already in memory (for tests and fuzzing); as above. */
int mf_directory_parse_csv(const char *file, const char *text, size_t len,
			   struct mf_directory *d, FILE *diag);

/* Query ldap://host[:port]/BASE-DN (or ldaps://) for user objects: the
 * [coexistence] section gives bind_dn, bind_password(_env|_file), starttls
 * (yes/no), ldap_filter and ldap_ca_file. A failure is one line on diag naming the job
 * file's key or the server's answer (never the password), and MF_ECONFIG
 * (bad setting) or MF_ECONN (server). Blocking; runs before anything else. */
int mf_directory_read_ldap(const char *url, const struct mf_conf_section *s,
			   struct mf_directory *d, FILE *diag);

void mf_directory_free(struct mf_directory *d);

/* A user record's fields are all set ("" when absent); append one. The
 * strings are copied. MF_ENOMEM. */
int mf_directory_add(struct mf_directory *d, const char *sam, const char *upn, const char *mail,
		     const char *target, const char *const *proxy, size_t nproxy,
		     const char *where);

#endif
