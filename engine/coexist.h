/* coexist.h - `mailferry coexist JOB.ini`: a read-only pre-flight of every
 * manifest row against Microsoft's third-party coexistence address rules,
 * from the job's [coexistence] section and the on-premises directory
 * (directory/directory.h). Writes nothing but its report and, with
 * --emit-powershell FILE, a script for the admin to review.
 */
#ifndef MF_COEXIST_H
#define MF_COEXIST_H

/* The whole command: argv[0] is "coexist", then JOB.ini and options
 * (--format table|csv|json, --emit-powershell FILE). Returns the exit code:
 * 0 every row passes, 1 some rows break a rule, 2 usage, bad job file or
 * unreadable directory (nothing checked). */
int mf_coexist_main(int argc, char **argv);

#endif
