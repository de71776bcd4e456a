/* unit.h - one unit of work: a manifest row, i.e. one source mailbox (an IMAP
 * login or a PST file) going into one target mailbox.
 */
#ifndef MF_UNIT_H
#define MF_UNIT_H

#include <stdbool.h>
#include <stddef.h>

struct mf_unit {
	char *id;          /* stable key in the state database, unique in the job */
	size_t id_mailbox_at; /* offset of `mailbox` in `id` (to find keys that
	                         older versions stored in another case) */
	char *mailbox;     /* target mailbox (EmailAddress / Mailbox column) in
	                      its one canonical form: ASCII letters in lower case */
	char *source_desc; /* what a human calls the source (login or PST path) */
	int line;          /* manifest line, for messages */

	/* PST jobs (Microsoft 365 PST import mapping CSV) */
	char *pst_path;    /* absolute path of the PST file */
	char *pst_relpath; /* FilePath/Name as in the manifest, '/'-separated */
	char *target_root; /* TargetRootFolder as written ("" / "/" / "/X") */
	bool is_archive;   /* IsArchive=TRUE: for the mailbox's archive */
	bool to_archive;   /* sinks: open the mailbox's archive, not its primary
	                      (is_archive, and no [job] archive_folder) */
	int codepage;      /* ContentCodePage (a Windows code page), 0 if empty:
	                      overrides [source] codepage for this PST */

	/* IMAP jobs (Exchange Online IMAP migration CSV) */
	char *user;            /* UserName */
	char *password;        /* Password: a secret, never logged */
	char *user_root;       /* UserRoot, or NULL */
	char *target_password; /* TargetPassword, or NULL: a secret */
};

#endif
