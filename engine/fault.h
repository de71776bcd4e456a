/* fault.h - fault injection for the crash tests (tests/fault/).
 *
 * MF_FAULT_KILL_AT=STAGE:N in the environment makes the process SIGKILL
 * itself at the N-th time (counting from 1, over all threads) it passes the
 * named point. Stages: pending (after a pending batch committed), store
 * (after the sink stored a message, before its commit), commit (after an
 * outcome batch committed). Unset, a point costs one predictable branch.
 */
#ifndef MF_FAULT_H
#define MF_FAULT_H

enum mf_fault_stage { MF_FAULT_PENDING, MF_FAULT_STORE, MF_FAULT_COMMIT, MF_FAULT_NSTAGES };

void mf_fault_point(enum mf_fault_stage stage);

#endif
