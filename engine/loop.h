/* loop.h - the engine's one libuv loop, and how other threads hand it work.
 *
 * The loop thread owns all engine state (scheduler, progress, signals) and
 * the HTTP sinks' libcurl multi handle. Nothing blocking runs on it. Worker
 * threads (one per running mailbox) reach it only through mf_loop_post().
 */
#ifndef MF_LOOP_H
#define MF_LOOP_H

#include <uv.h>

/* Create the loop. Call once, from the thread that will run it. 0 or MF_E*. */
int mf_loop_init(void);
/* The loop. Use it only on the loop thread (or before it runs). */
uv_loop_t *mf_loop_get(void);

/* Run fn(arg) on the loop thread, soon, in posting order. Thread-safe; fn
 * never runs inside this call. Returns 0, or MF_ENOMEM (then fn never runs). */
int mf_loop_post(void (*fn)(void *arg), void *arg);

/* Run the loop on the calling thread until mf_loop_stop() (from the loop
 * thread) and every handle is closed. */
int mf_loop_run(void);
void mf_loop_stop(void);

/* For tests and tools that have no engine: run the loop on a background
 * thread, and stop and join it. */
int mf_loop_start_thread(void);
void mf_loop_stop_thread(void);

/* Close the loop after mf_loop_run returned. */
void mf_loop_close(void);

#endif
