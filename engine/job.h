/* job.h - a job: the job file (INI), its manifest (CSV) and the drivers
 * they select. Loading checks everything before anything runs: a job that
 * loads is one the engine can start.
 */
#ifndef MF_JOB_H
#define MF_JOB_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "conf.h"
#include "normalize/normalize.h"
#include "sink.h"
#include "source.h"
#include "unit.h"

/* [folders] rules: which source folders move and what they are called. */
struct mf_folder_rename {
	char *from; /* source path, '/'-separated */
	char *to;   /* target path, '/'-separated */
};
struct mf_folder_rules {
	char **include; /* fnmatch patterns on the '/'-joined source path */
	size_t ninclude;
	char **exclude;
	size_t nexclude;
	struct mf_folder_rename *rename;
	size_t nrename;
};

struct mf_job {
	char *file; /* job file path as given */
	char *dir;  /* its directory */
	struct mf_conf_section *sec;
	size_t nsec;

	/* [job] */
	char *name;
	char *state_path;
	char *manifest_path;
	unsigned parallel;
	uint64_t inflight_bytes; /* cap on message bytes held by all workers */
	unsigned batch;          /* messages per checkpoint batch */
	uint64_t max_message_bytes; /* [job] max_message_mb, 0 = the sink's limit */
	char *archive_folder;    /* IsArchive rows into this folder of the primary
	                            mailbox ('/'-separated), or NULL */
	struct mf_norm_opts norm;

	struct mf_folder_rules rules;

	const struct mf_source_ops *src;
	void *src_cfg;
	const struct mf_sink_ops *snk;
	void *snk_cfg;
	struct mf_sink_caps caps;

	struct mf_unit *units;
	size_t nunits;
};

/* Load and check a job file and its manifest, configuring both drivers.
 * Every problem found is written to `diag` as one line naming file:line;
 * the return value is then MF_ECONFIG (or MF_ENOMEM). On success the job is
 * owned by the caller: mf_job_free. */
int mf_job_load(const char *path, struct mf_job *job, FILE *diag);
void mf_job_free(struct mf_job *job);

/* Before a run: every directory the drivers' dir_keys name, and the state
 * database's directory, can be read (source) or written (sink). Each
 * problem is one line on diag naming file:line and the key; MF_ECONFIG
 * then. */
int mf_job_check_paths(const struct mf_job *job, FILE *diag);

/* Parse job file text only (no drivers, no manifest): the sections with
 * their keys and lines. For fuzzing and tests. Returns 0 or MF_ECONFIG with
 * lines written to diag. */
int mf_job_parse_ini(const char *file, const char *text, size_t len,
		     struct mf_conf_section **sec, size_t *nsec, FILE *diag);
void mf_job_free_sections(struct mf_conf_section *sec, size_t nsec);

/* The manifest formats. */
enum mf_manifest_kind {
	MF_MANIFEST_PST = 1,  /* Microsoft 365 PST import mapping CSV */
	MF_MANIFEST_IMAP = 2, /* Exchange Online IMAP migration CSV */
};

/* Parse manifest text. `file` names it in messages; `pst_root` (may be
 * NULL) anchors PST rows' FilePath. Every bad line is written to diag; the
 * result is MF_ECONFIG if there was any. On success *units (count *n) is
 * owned by the caller: mf_units_free. */
int mf_manifest_parse(const char *file, const char *text, size_t len, const char *pst_root,
		      enum mf_manifest_kind *kind, struct mf_unit **units, size_t *n, FILE *diag);
void mf_units_free(struct mf_unit *units, size_t n);
/* Free one unit's fields (not the unit itself). */
void mf_unit_clear(struct mf_unit *u);

/* "UTF-16LE" or "UTF-16BE" when text looks like UTF-16 (a byte order mark,
 * or ASCII with every other byte NUL), else NULL. Job files and manifests
 * must be UTF-8 (a UTF-8 byte order mark is accepted). */
const char *mf_text_utf16(const char *text, size_t len);

/* Select units: --users (comma-separated mailboxes or source logins) and
 * --shard I/N (stable hash of the target mailbox). Units not selected are
 * removed from the job. Returns the number kept, or MF_ECONFIG (unknown
 * user named, written to diag). */
int mf_job_select(struct mf_job *job, const char *users, unsigned shard_i, unsigned shard_n,
		  FILE *diag);

/* Map source folder folders[i] (of the n the source listed) to its target
 * path and role, applying the job's [folders] rules and the unit's
 * TargetRootFolder. The role is the folder's own for a top-level folder;
 * for a deeper one, where the sink takes it (caps.ancestor_role) and the
 * path was neither renamed nor put under a root folder, it is the role of
 * its top-level folder. Returns 1 if the folder moves (target filled,
 * caller frees with mf_path_free), 0 if excluded, or MF_ENOMEM. */
int mf_job_target_folder(const struct mf_job *job, const struct mf_unit *unit,
			 const struct mf_folder *folders, size_t n, size_t i,
			 struct mf_path *target, enum mf_role *role);

#endif
