/* main.c - the mailferry command line. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coexist.h"
#include "drivers.h"
#include "job.h"
#include "log.h"
#include "run.h"

static void usage(FILE *out)
{
	fputs("usage: mailferry COMMAND JOB.ini [options]\n"
	      "\n"
	      "commands:\n"
	      "  run JOB.ini       run the job: migrate, resume after a crash, or move what is\n"
	      "                    new since the last run (delta pass)\n"
	      "  status JOB.ini    per-mailbox progress from the state database\n"
	      "  report JOB.ini    per-mailbox report with totals (--format csv|json|html);\n"
	      "                    --items: every skipped, failed or changed message\n"
	      "  verify JOB.ini    compare source and target: per folder, counts and content\n"
	      "                    hashes (Message-IDs where the target rewrites contents);\n"
	      "                    exit 0 only if everything matches; with --repair, messages\n"
	      "                    recorded as stored but missing in the target are marked so\n"
	      "                    that the next run stores them again (never deletes)\n"
	      "  plan JOB.ini      pre-flight: log in to both sides of every row, list folders,\n"
	      "                    counts and sizes, flag rows that will fail; writes nothing\n"
	      "  coexist JOB.ini   check every row against the coexistence address rules\n"
	      "                    ([coexistence]; --format, --emit-powershell FILE)\n"
	      "\n"
	      "options:\n"
	      "  --users A,B       only these mailboxes (target addresses or source logins)\n"
	      "  --parallel N      mailboxes at once (overrides [job] parallel)\n"
	      "  --shard I/N       only the I-th of N deterministic slices of the manifest\n"
	      "  --dry-run         list what would move (folders, counts, bytes); change nothing\n"
	      "  --repair          verify: mark what is missing in the target for the next run\n"
	      "  --format F        report format: csv (default), json or html\n"
	      "  --items           report: one row per skipped, failed or changed message\n"
	      "  --log FILE        also append the log lines to FILE (all levels shown)\n"
	      "  --progress        force the terminal progress display (default: on a terminal)\n"
	      "  --no-progress     periodic log lines instead of the progress display\n"
	      "  -v, --verbose     debug logging\n"
	      "  -h, --help        this help\n"
	      "  -V, --version     version\n"
	      "\n"
	      "exit codes: 0 all migrated (or skipped by a rule), 1 finished with failures,\n"
	      "            2 usage or configuration error (nothing done), 3 interrupted (rerun\n"
	      "            the same command to resume)\n",
	      out);
	fputs("\nsources:", out);
	for (size_t i = 0; mf_sources[i]; i++)
		fprintf(out, " %s", mf_sources[i]->name);
	fputs("\nsinks:  ", out);
	for (size_t i = 0; mf_sinks[i]; i++)
		fprintf(out, " %s", mf_sinks[i]->name);
	fputc('\n', out);
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	if (!s || !*s || *s == '-')
		return -1;
	unsigned long v = strtoul(s, &end, 10);
	if (*end || v > max)
		return -1;
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	enum { OPT_USERS = 256, OPT_PARALLEL, OPT_SHARD, OPT_DRY, OPT_FORMAT, OPT_PROGRESS,
	       OPT_NO_PROGRESS, OPT_REPAIR, OPT_ITEMS, OPT_LOG };
	static const struct option longopts[] = {
		{"users", required_argument, NULL, OPT_USERS},
		{"parallel", required_argument, NULL, OPT_PARALLEL},
		{"shard", required_argument, NULL, OPT_SHARD},
		{"dry-run", no_argument, NULL, OPT_DRY},
		{"format", required_argument, NULL, OPT_FORMAT},
		{"progress", no_argument, NULL, OPT_PROGRESS},
		{"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
		{"repair", no_argument, NULL, OPT_REPAIR},
		{"items", no_argument, NULL, OPT_ITEMS},
		{"log", required_argument, NULL, OPT_LOG},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	/* a peer closing a socket must give EPIPE to the writer, not kill us */
	signal(SIGPIPE, SIG_IGN);
	if (argc > 1 && strcmp(argv[1], "coexist") == 0)
		return mf_coexist_main(argc - 1, argv + 1);
	const char *users = NULL, *format = "csv";
	unsigned long parallel = 0, shard_i = 0, shard_n = 0;
	struct mf_run_opts ro = {.progress = isatty(STDERR_FILENO)};
	bool repair = false, items = false;
	const char *log_file = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "vhV", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_USERS:
			users = optarg;
			break;
		case OPT_PARALLEL:
			if (parse_uint(optarg, 1024, &parallel) < 0 || parallel == 0) {
				fprintf(stderr, "mailferry: --parallel needs a number from 1 to 1024\n");
				return MF_EXIT_USAGE;
			}
			break;
		case OPT_SHARD: {
			const char *slash = strchr(optarg, '/');
			char ibuf[16];
			if (!slash || (size_t)(slash - optarg) >= sizeof(ibuf)) {
				fprintf(stderr, "mailferry: --shard needs I/N, e.g. 0/4\n");
				return MF_EXIT_USAGE;
			}
			memcpy(ibuf, optarg, (size_t)(slash - optarg));
			ibuf[slash - optarg] = '\0';
			if (parse_uint(ibuf, 100000, &shard_i) < 0 ||
			    parse_uint(slash + 1, 100000, &shard_n) < 0 || shard_n == 0 ||
			    shard_i >= shard_n) {
				fprintf(stderr, "mailferry: --shard I/N needs 0 <= I < N\n");
				return MF_EXIT_USAGE;
			}
			break;
		}
		case OPT_DRY:
			ro.dry_run = true;
			break;
		case OPT_FORMAT:
			format = optarg;
			break;
		case OPT_PROGRESS:
			ro.progress = true;
			break;
		case OPT_NO_PROGRESS:
			ro.progress = false;
			break;
		case OPT_REPAIR:
			repair = true;
			break;
		case OPT_ITEMS:
			items = true;
			break;
		case OPT_LOG:
			log_file = optarg;
			break;
		case 'v':
			mf_log_set_level(MF_LOG_DEBUG);
			break;
		case 'h':
			usage(stdout);
			return MF_EXIT_OK;
		case 'V':
			printf("mailferry %s\n", MF_VERSION);
			return MF_EXIT_OK;
		default:
			usage(stderr);
			return MF_EXIT_USAGE;
		}
	}
	if (argc - optind != 2) {
		usage(stderr);
		return MF_EXIT_USAGE;
	}
	const char *cmd = argv[optind], *path = argv[optind + 1];
	if (repair && strcmp(cmd, "verify") != 0) {
		fprintf(stderr, "mailferry: --repair goes with verify only\n");
		return MF_EXIT_USAGE;
	}
	if (items && strcmp(cmd, "report") != 0) {
		fprintf(stderr, "mailferry: --items goes with report only\n");
		return MF_EXIT_USAGE;
	}
	if (log_file && mf_log_open_file(log_file) < 0) {
		fprintf(stderr, "mailferry: --log %s: cannot open it for appending: %s\n", log_file,
			strerror(errno));
		return MF_EXIT_USAGE;
	}
	static const char *const commands[] = {"run", "status", "report", "verify", "plan"};
	bool known = false;
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		known = known || strcmp(cmd, commands[i]) == 0;
	if (!known) {
		fprintf(stderr, "mailferry: unknown command '%s' (run, status, report, verify, plan)\n",
			cmd);
		return MF_EXIT_USAGE;
	}
	/* status and report read the state database only: no secret needed */
	mf_conf_skip_secrets(strcmp(cmd, "status") == 0 || strcmp(cmd, "report") == 0);
	struct mf_job job;
	if (mf_job_load(path, &job, stderr) < 0) {
		fprintf(stderr, "mailferry: %s: the job was not started\n", path);
		mf_job_free(&job);
		return MF_EXIT_USAGE;
	}
	if (parallel)
		job.parallel = (unsigned)parallel;
	int rc = MF_EXIT_USAGE;
	if ((users || shard_n > 1) &&
	    mf_job_select(&job, users, (unsigned)shard_i, (unsigned)shard_n, stderr) < 0)
		goto out;
	if (strcmp(cmd, "run") == 0 && mf_job_check_paths(&job, stderr) < 0)
		goto out;
	if (strcmp(cmd, "run") == 0)
		rc = mf_run(&job, &ro);
	else if (strcmp(cmd, "status") == 0)
		rc = mf_status(&job);
	else if (strcmp(cmd, "verify") == 0)
		rc = mf_verify(&job, repair);
	else if (strcmp(cmd, "plan") == 0)
		rc = mf_plan(&job);
	else
		rc = mf_report(&job, format, items);
out:
	mf_job_free(&job);
	return rc;
}
