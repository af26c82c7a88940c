/* libfut — the event-loop executor: tasks, timers and fd readiness on one
 * thread.  Include <fut.h>.
 *
 * A loop is an executor (fut_executor_t) whose tasks, timers (fut_delay,
 * fut_timeout placed on it) and fd readiness futures all run on the one
 * thread inside fut_loop_run.  Any thread may hand it work; the loop thread
 * must never block: fut_wait there returns FUT_EDEADLK for a pending future,
 * and a callback that runs longer than stall_ns is reported through the log
 * hook (FUT_LOG_STALL).  Tasks of one function that run back to back are
 * timed together, up to 16 of them (one clock read): such a run that
 * holds the loop longer than stall_ns is reported too, naming the
 * function, with the run's time (and longest_callback_ns counts it as one
 * callback).  After fork(), a loop the parent created is dead in
 * the child (<fut/executor.h>): make a new one there; destroying the old
 * one closes the child's copies of its fds and leaves the parent's epoll
 * registrations alone.
 *
 * A loop sleeps until a timer's deadline with epoll_pwait2 (nanoseconds).
 * Where that syscall is missing (kernels before 5.11; valgrind 3.19, which
 * does not know syscall 441 and warns about it) the first ENOSYS makes
 * every loop of the process use epoll_wait, its timeout rounded up to a
 * millisecond: under valgrind, one warning per process. */
#ifndef FUT_LOOP_H
#define FUT_LOOP_H

#include "executor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Loop options; a zeroed struct (or NULL) gives the defaults. */
typedef struct fut_loop_opts {
    uint64_t stall_ns; /* report callbacks longer than this; 0 = 100 ms,
                          UINT64_MAX = never (pinned name) */
    fut_log_fn log;    /* stall reports go here instead of the global hook
                          (fut_set_log); NULL = the global hook */
    void *log_ud;      /* passed back to LOG, borrowed */
} fut_loop_opts_t;

/* Creates a loop; it runs only inside fut_loop_run.  OPTS is copied.
 * Returns: 0 and *OUT; FUT_EINVAL (OUT NULL); FUT_ENOMEM; -errno of
 *   epoll_create1/eventfd.  Destroy it with fut_executor_destroy.
 * Threads: any. */
FUT_API int fut_loop_create(fut_executor_t **out, const fut_loop_opts_t *opts);

/* Runs LOOP on the calling thread until UNTIL (borrowed) settles, or, with
 * UNTIL NULL, until fut_loop_stop.  Tasks still queued when it returns stay
 * queued for the next run.  A fut_loop_stop that came before the run makes
 * it return after one round (as uv_stop does).
 * Returns: 0; FUT_EINVAL (not a loop); FUT_EALREADY if another thread is
 *   running it; FUT_ESHUTDOWN once fut_executor_destroy has begun (also
 *   long after it returned: the handle stays valid).
 * Threads: any, one at a time. */
FUT_API int fut_loop_run(fut_executor_t *loop, fut_t *until);

/* Makes a running fut_loop_run return soon (after the callback it is in).
 * Threads: any, including the loop's own callbacks; a no-op for NULL or a
 * loop being destroyed. */
FUT_API void fut_loop_stop(fut_executor_t *loop);

/* fut_fd_ready (<fut/executor.h>) on a loop: the loop's fd_ready op.  The
 * future fulfils, with fut_value_i64 = the ready subset of EVENTS,
 * when FD is ready for EVENTS (FUT_READABLE and/or FUT_WRITABLE).  It
 * rejects with -errno on an error (EPOLLERR: the socket's SO_ERROR, or
 * -EPIPE) or with -EPIPE on a hang-up (a reader is still fulfilled while
 * data is left to read).  SO_ERROR is read (which clears it) only to
 * reject a future so: an error that finds no waiter, or only a reader with
 * data left, stays for the application's next recv(2) or send(2).  Many
 * futures may wait on one fd.  Cancelling the future deregisters FD from
 * the loop (on the loop thread, soon).
 * Ownership: returns a new reference; FD is borrowed: close it only once no
 * future on it is pending (or after cancelling them).
 * Returns: never NULL; FUT_EINVAL (FD < 0, EVENTS empty or
 *   unknown), FUT_ENOMEM, FUT_ESHUTDOWN (destroyed while pending, or the
 *   loop's destroy began before the call), -EBADF for a number that is not
 *   an open fd (any number up to INT_MAX: the kernel is asked before the
 *   loop keeps anything for it), -errno of epoll_ctl (EPERM: FD is a
 *   regular file).  A number closed and reused (even within one callback,
 *   after cancelling the futures on it) is watched as the new file.
 * Threads: any; from another thread than the loop's, the fd is registered
 * when the loop next wakes (it is woken). */

#ifdef __cplusplus
}
#endif
#endif
