/* fault.h - fault injection for the crash tests (tests/fault/).
 *
 * MF_FAULT_KILL_AT=STAGE:N in the environment makes the process SIGKILL
 * itself at the N-th time (counting from 1, over all threads) it passes the
 * named point. Stages: pending (after a pending batch committed), store
 * (after the sink stored a message, before its commit), commit (after an
 * outcome batch committed), block (a sink uploaded one block of a large
 * object or file). Unset, a point costs one predictable branch.
 *
 * MF_FAULT_DELAY_MS=N sleeps N ms at every store point, so that signal and
 * kill tests can catch a small job in the middle of its work.
 */
#ifndef MF_FAULT_H
#define MF_FAULT_H

enum mf_fault_stage {
	MF_FAULT_PENDING,
	MF_FAULT_STORE,
	MF_FAULT_COMMIT,
	MF_FAULT_BLOCK, /* a sink uploaded one block of a large object */
	MF_FAULT_NSTAGES
};

void mf_fault_point(enum mf_fault_stage stage);

#endif
