/* maildir.h - the Maildir sink (`[sink] type = maildir`) and the on-disk
 * naming rules it uses, exposed for the unit tests.
 *
 * Layout: one Maildir per target mailbox at <path>/<mailbox>/ (an IsArchive
 * row's at <archive_path>/<mailbox>/, default <path>-archive), in Maildir++
 * layout with folder names in UTF-8. Dovecot serves it as-is with
 *
 *     mail_location = maildir:<path>/%u:UTF-8
 *
 * (or `maildir:~:UTF-8` when the userdb home is <path>/<mailbox>), keeping
 * Dovecot's default Maildir++ hierarchy separator ".". Tested against Dovecot
 * 2.3.19 (tests/integration/maildir_dovecot.sh).
 *
 *   INBOX                 <path>/<mailbox>/{cur,new,tmp}
 *   folder A/B            <path>/<mailbox>/.A.B/{cur,new,tmp}  (+ .A/ as well)
 *   role SENT/DRAFTS/...  .Sent .Drafts .Trash .Junk .Archive
 *   top-level "INBOX"     (any case) is the Maildir root; "INBOX/x" is .INBOX.x
 *   message               cur/<idate>.M<idem>.mailferry:2,<flags>
 *
 * Escaping of a folder segment (reversible except for shortening): the bytes
 * '%' '.' '/' 0x00-0x1F 0x7F and every byte of an invalid UTF-8 sequence are
 * written %XX (upper-case hex). Everything else, including non-ASCII UTF-8,
 * is kept. Because every subfolder directory starts with '.', and '.' inside
 * a segment is escaped, no folder name can become "", ".", "..", "cur",
 * "new", "tmp" or a path with more than one component. A directory name
 * longer than 255 bytes is shortened deterministically: its last segment is
 * cut at a character boundary and "~" + 16 hex digits of the SHA-256 of the
 * raw segment are appended.
 * The mailbox component is escaped the same way except that '.' is escaped
 * only in first position.
 *
 * Besides the folders the sink keeps Dovecot's `subscriptions` file (format
 * "V\t2\n\n" then one name per line, '\t' between levels) so that clients
 * that show only subscribed folders see the migrated ones.
 *
 * Threads: as sink.h; nothing here is global or shared between sinks.
 */
#ifndef MF_SINK_MAILDIR_H
#define MF_SINK_MAILDIR_H

#include <stddef.h>

#include "engine/error.h"
#include "engine/message.h"
#include "engine/sink.h"
#include "engine/util.h"

#define MF_MAILDIR_NAME_MAX 255

extern const struct mf_sink_ops mf_sink_maildir;

/* Append the escaped form of one folder segment (`first_dot_only`: escape
 * '.' only in first position, for the mailbox component) to `out`.
 * 0 or MF_ENOMEM. */
int mf_maildir_escape(const char *seg, size_t len, int first_dot_only, struct mf_buf *out);

/* The mailbox directory component for `mailbox` (never "", ".", ".." and
 * without '/'), malloc'd into *out. MF_EMAILBOX for an empty name,
 * MF_ENOMEM. */
int mf_maildir_mailbox_name(const char *mailbox, char **out, struct mf_err *err);

/* The Maildir++ directory name of a folder relative to the mailbox's
 * Maildir: "" for INBOX, ".A.B" otherwise. `role` is honoured for
 * single-segment (or empty) paths only. *out is malloc'd. MF_EFOLDER when
 * the path is too deep to fit 255 bytes, MF_ENOMEM. */
int mf_maildir_folder_name(const struct mf_path *path, enum mf_role role, char **out,
			   struct mf_err *err);

/* The message file's base name ("<idate>.M<idem>.mailferry", the sink_id)
 * and its flag suffix ("2,DFRST" subset in ASCII order). */
void mf_maildir_base_name(int64_t idate, const char *idem, char *out, size_t size);
void mf_maildir_flag_info(unsigned flags, char out[8]);

#endif
