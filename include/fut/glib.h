/* libfut-glib — libfut work on a GLib main context.  Include <fut/glib.h>
 * (it includes <glib.h> and libfut's executor header); link with
 * libfut-glib (pkg-config fut-glib).
 *
 * The executor fut_glib_create makes runs its tasks, continuations and
 * timers (fut_delay, fut_timeout placed on it) on the thread iterating the
 * context (g_main_loop_run, g_main_context_iteration), between the other
 * sources' callbacks.  Any thread may hand it work: the first hand-off of a
 * burst wakes the context (g_main_context_wakeup), the others of the burst
 * ride on that wake-up.  That thread must never block: fut_wait inside
 * work of the executor returns FUT_EDEADLK for a pending future (from other
 * sources' callbacks it would block the context: don't).  A task,
 * continuation or timer firing that runs longer than 100 ms is reported
 * through the log hook (fut_set_log) as FUT_LOG_STALL with executor
 * "glib", as the loop's are.
 *
 * fd readiness: fut_fd_ready on the executor (and the socket operations
 * of <fut/io.h> built on it) watch the fd as a unix fd of the executor's
 * GSource (g_source_add_unix_fd), one per fd for both directions, removed
 * when no wait is left (a cancel removes it on the context's thread,
 * soon).  The future settles on the context's thread as on the loop: the
 * ready subset of the events, or -errno for an error (G_IO_ERR: the
 * socket's SO_ERROR, or -EPIPE), -EPIPE for a hang-up (a reader is still
 * served while data is left), -EBADF for a number that is not an open
 * fd.  GLib polls with poll(2): a regular file is always ready.
 *
 * The executor attaches one GSource (named "libfut") to the context while
 * it lives, and one per pending libfut timer.  fut_executor_destroy(ex)
 * drops the queued work (futures waiting on it settle FUT_ESHUTDOWN),
 * gives back the pending timers (a pending fut_delay settles
 * FUT_ESHUTDOWN), rejects pending fd waits (FUT_ESHUTDOWN), destroys its
 * sources and frees everything at once; the
 * context needs no further iteration and stays the application's.  Call it
 * from the thread iterating the context (from another source's callback or
 * between iterations; from the executor's own work it returns
 * FUT_EDEADLK), or from any thread while no thread iterates the context:
 * it acquires the context, and if another thread holds it the program
 * stops (one line on stderr, abort). */
#ifndef FUT_GLIB_H
#define FUT_GLIB_H

#include <glib.h>

#include "executor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Makes an executor that runs on the thread iterating CTX (see above).
 * Ownership: CTX borrowed (NULL: g_main_context_default()); the executor
 *   holds a reference on it until its destroy; *OUT receives the
 *   executor's handle.
 * Returns: 0 and *OUT; FUT_EINVAL (OUT NULL); FUT_ENOMEM.
 * Threads: any. */
FUT_API int fut_glib_create(fut_executor_t **out, GMainContext *ctx);

#ifdef __cplusplus
}
#endif
#endif
