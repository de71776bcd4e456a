/* tenant.h - the Microsoft 365 side of the coexistence check, read-only,
 * through the job's graph sink configuration ([sink] type = graph): the
 * tenant's verified domains (GET /v1.0/domains) and, per row, whether the
 * Exchange Online recipient exists (GET /v1.0/users/{m}) and has a mailbox
 * (GET /v1.0/users/{m}/mailboxSettings; MailboxNotEnabledForRESTAPI means
 * not licensed yet). Blocking calls on the calling thread, before anything
 * else runs; the token never reaches a message.
 */
#ifndef MF_TENANT_H
#define MF_TENANT_H

#include <stddef.h>

#include "engine/error.h"

struct mf_job;
struct mf_tenant;

/* NULL (and 0) when the job's sink is not graph; else *out is the
 * caller's: mf_tenant_close. MF_ENOMEM. */
int mf_tenant_open(const struct mf_job *job, struct mf_tenant **out);
void mf_tenant_close(struct mf_tenant *t);

/* The verified domains' names, lowercased as Graph gives them, in Graph's
 * order; *names (each string and the array) is the caller's to free. 0, or
 * a negative code with err (MF_EAUTH: the app may not read /domains). */
int mf_tenant_domains(struct mf_tenant *t, char ***names, size_t *n, struct mf_err *err);

enum mf_recipient {
	MF_RECIPIENT_MAILBOX = 0,    /* a user with a mailbox */
	MF_RECIPIENT_NONE = 1,       /* no such user in Entra ID / Exchange Online */
	MF_RECIPIENT_UNLICENSED = 2, /* the user exists, its mailbox does not (yet) */
};

/* The state of the recipient `mailbox` into *state: 0, or a negative code
 * with err when Graph could not tell (then *state is unset). */
int mf_tenant_recipient(struct mf_tenant *t, const char *mailbox, enum mf_recipient *state,
			struct mf_err *err);

#endif
