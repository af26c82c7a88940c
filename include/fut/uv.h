/* libfut-uv — libfut work on a libuv loop.  Include <fut/uv.h> (it includes
 * <uv.h> and libfut's executor header); link with libfut-uv (pkg-config
 * fut-uv).  <uv.h> needs POSIX types: under strict -std=c11 define
 * _POSIX_C_SOURCE 200809L (or _GNU_SOURCE) before any include.
 *
 * The executor fut_uv_create makes runs its tasks, continuations and timers
 * (fut_delay, fut_timeout placed on it) on the thread that runs the libuv
 * loop (uv_run), between the application's own callbacks.  Any thread may
 * hand it work: the first hand-off of a burst wakes the loop (uv_async_send),
 * the others of the burst ride on that wake-up.  The loop thread must never
 * block: fut_wait inside work of the executor returns FUT_EDEADLK for a
 * pending future (from the application's own uv callbacks it would block
 * the loop: don't).  A task, continuation or timer firing that runs longer
 * than 100 ms is reported through the log hook (fut_set_log) as
 * FUT_LOG_STALL with executor "uv", as the loop's are.
 *
 * fd readiness: fut_fd_ready on the executor (and the socket operations
 * of <fut/io.h> built on it) watch the fd with one uv_poll_t per fd for
 * both directions, made on the fd's first wait and stopped when no wait
 * is left (a cancel stops it on the loop's thread, soon); uv_poll_init
 * makes the fd non-blocking, and fails with UV_EEXIST if the application
 * polls the same fd itself.  The future settles on the loop's thread: the
 * ready subset of the events (libuv reports a hang-up as readiness: the
 * read then finds end of file), -errno for an error on the fd (the
 * socket's SO_ERROR, or -EPIPE), -EBADF for a number that is not an open
 * fd, -EPERM for a regular file.  Close an fd only once no wait on it is
 * pending (cancel them first): libuv aborts the process when epoll
 * refuses a watcher it still holds.
 *
 * The executor holds one uv_async_t, active and referenced while it lives,
 * so uv_run(loop, UV_RUN_DEFAULT) keeps running until uv_stop or until
 * fut_executor_destroy closed it and nothing else is active; and one
 * uv_timer_t per pending libfut timer, and one uv_poll_t per fd it has
 * watched (closed by fut_executor_destroy, which rejects pending fd waits
 * with FUT_ESHUTDOWN).
 *
 * fut_executor_destroy(ex) must be called on the thread that runs the loop,
 * while no uv_run is inside the executor's own work: after uv_run returned,
 * or from one of the application's own uv callbacks (from the executor's
 * work it returns FUT_EDEADLK; from another thread while uv_run runs it is
 * a data race).  It drops the queued work (futures waiting on it settle
 * FUT_ESHUTDOWN), gives back the pending timers (a pending fut_delay
 * settles FUT_ESHUTDOWN) and uv_close()s its handles.  Their close
 * callbacks free the executor's memory: run the loop once more
 * (uv_run(loop, UV_RUN_DEFAULT) returns at once when nothing else is
 * active) before uv_loop_close, which otherwise returns UV_EBUSY.  The
 * loop itself stays the application's: the executor never runs, stops or
 * closes it. */
#ifndef FUT_UV_H
#define FUT_UV_H

#include <uv.h>

#include "executor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Makes an executor that runs on LOOP's thread (see above).
 * Ownership: LOOP borrowed: it must outlive the executor, up to the run
 *   that finishes the closes after fut_executor_destroy; *OUT receives the
 *   executor's handle.
 * Returns: 0 and *OUT; FUT_EINVAL (OUT or LOOP NULL); FUT_ENOMEM (if the
 *   handle could not be made after uv_async_init succeeded, the async is
 *   being closed: run LOOP once to free it); a libuv error (negative
 *   errno) from uv_async_init.
 * Threads: the thread that runs LOOP, outside uv_run or from one of its
 *   callbacks (libuv's rule for uv_async_init). */
FUT_API int fut_uv_create(fut_executor_t **out, uv_loop_t *loop);

#ifdef __cplusplus
}
#endif
#endif
