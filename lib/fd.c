/* libfut — fut_fd_ready: fd readiness on any executor whose ops provide
 * it (ops->fd_ready: the loop, the libuv and GLib adapters, a custom
 * executor).  The core only checks the arguments and holds the executor's
 * destroy off around the op (fut_executor_enter), so the op may use IMPL
 * however the call races a destroy; what a readiness wait is belongs to
 * the executor. */
#include "internal.h"

fut_t *fut_fd_ready(fut_executor_t *ex, int fd, unsigned events)
{
    void *impl;
    /* The ops table is read only inside the guard: a custom executor's
     * may be freed once its destroy returned (fut_executor_create). */
    int rc = ex ? fut_executor_enter(ex, ex->ops, &impl) : FUT_EINVAL;
    if (rc)
        return fut_ready(fut_fail(rc));
    fut_t *f = NULL;
    if (!ex->ops->fd_ready || fd < 0 || !events ||
        (events & ~(unsigned)(FUT_READABLE | FUT_WRITABLE)))
        rc = FUT_EINVAL;
    else if (!(f = ex->ops->fd_ready(impl, fd, events)))
        rc = FUT_ENOMEM; /* the op broke its promise: never NULL here */
    fut_executor_leave(ex);
    return f ? f : fut_ready(fut_fail(rc));
}
