/* libfut — the executor kit: what an executor needs beyond the ops table
 * of <fut/executor.h> to run libfut work as cheaply as the built-in loop
 * does.  Include <fut.h>.
 *
 * An executor built on the kit (the loop is; adapters over other event
 * loops are meant to be) brackets the stretch in which a thread of its own
 * runs its work with fut_kit_run_begin/fut_kit_run_end, learns of
 * cancelled promises of its own through fut_promise_on_cancel, and may
 * park its idle threads with fut_kit_park/fut_kit_wake, as the pool's
 * workers and fut_wait do. */
#ifndef FUT_EXECUTOR_KIT_H
#define FUT_EXECUTOR_KIT_H

#include "executor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One thread's run of an executor's work, between fut_kit_run_begin and
 * fut_kit_run_end.  The caller owns the storage (a local); its fields are
 * the kit's: not part of the API. */
typedef struct fut_kit_run {
    fut_executor_t *ex_;   /* the executor */
    fut_executor_t *prev_; /* fut_executor_current() before the run */
} fut_kit_run_t;

/* The calling thread runs EX's work from now until fut_kit_run_end(RUN)
 * (a loop's fut_loop_run, a worker's life, a host loop's dispatch):
 *  - fut_executor_current() answers EX, so fut_wait here returns
 *    FUT_EDEADLK for a pending future when EX has FUT_EXECUTOR_NO_BLOCK,
 *    work handed from here to EX goes straight to its submit (no guard for
 *    foreign threads: EX's destroy must wait for the run to end before it
 *    frees what its ops use), and a fut_timeout made here keeps its timer
 *    on EX if EX has timers.
 * It costs two plain stores: no locked instruction (executor handles are
 *   never freed, so a continuation placed on EX counts no reference).
 * Ownership: RUN (not NULL) is the caller's storage, written here; EX is
 *   borrowed.  EX NULL makes a run of no executor: fut_executor_current()
 *   answers NULL until the end.
 * Threads: the calling thread; runs nest (LIFO), each ended on the thread
 *   that began it. */
FUT_API void fut_kit_run_begin(fut_kit_run_t *run, fut_executor_t *ex);

/* Ends RUN: fut_executor_current() answers what it did before the begin.
 * Threads: the one that began RUN. */
FUT_API void fut_kit_run_end(fut_kit_run_t *run);

/* Arranges for FN(ARG, F) to run once, as a task on EX, if the application
 * cancels F, P's future, before P settles it (fut_cancel is the only way a
 * promise's future becomes FUT_CANCELLED): the executor then lets go of
 * what the promise stands for (an fd registration, a host-loop watcher).
 * FN's return value is disposed of.  It never runs if P settles first, or
 * if EX no longer takes work when the cancel comes (shut down: its destroy
 * settles or frees what is left instead).  One hook per promise.
 * Ownership: P borrowed (set the hook right after fut_promise_new, before
 *   F is shared with anyone); EX borrowed, and held by the promise's
 *   future until its last release; ARG is FN's.
 * Returns: 0; FUT_EINVAL (P NULL, consumed or already hooked; EX or FN
 *   NULL).
 * Threads: the thread that made P, before F is shared. */
FUT_API int fut_promise_on_cancel(fut_promise_t *p, fut_executor_t *ex,
                                  fut_then_fn fn, void *arg);

/* Sleeps while the 32-bit word at WORD holds EXPECTED (a futex wait,
 * private to this process), until fut_kit_wake on WORD, a signal, or the
 * time DEADLINE_NS on fut_now_ns()'s clock (UINT64_MAX: no deadline).  It
 * may also return early for no reason: the caller re-checks WORD.  A word
 * that no longer holds EXPECTED, a deadline passed, or WORD NULL return at
 * once.
 * Ownership: WORD borrowed; other threads change it with atomic stores.
 * Threads: any; the word is shared by its parkers and wakers. */
FUT_API void fut_kit_park(const uint32_t *word, uint32_t expected,
                          uint64_t deadline_ns);

/* Wakes up to N (> 0; INT_MAX: all) threads parked on WORD.  Change the
 * word before waking, so that a thread about to park sees the change.
 * Returns: how many it woke (0: none parked; also for WORD NULL or N <= 0).
 * Threads: any. */
FUT_API int fut_kit_wake(const uint32_t *word, int n);

#ifdef __cplusplus
}
#endif
#endif
