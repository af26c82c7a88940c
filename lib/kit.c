/* libfut — the executor kit (<fut/executor_kit.h>): the core's mechanisms
 * that an executor uses to run libfut work, behind public names.  The mark
 * is the thread's current executor (fut__tls.cur_ex), the one
 * fut_executor_current() reports; executor handles need no counting (they
 * are never freed: lib/executor.c); promise cancel hooks and claimed
 * settles are lib/promise.c's; a watch is a continuation node
 * (fut_cont_t is fut_kit_watch_t) attached as the core attaches its own. */
#include "internal.h"

void fut_kit_run_begin(fut_kit_run_t *run, fut_executor_t *ex)
{
    struct fut_tls *t = &fut__tls;
    run->ex_ = ex;
    run->prev_ = t->cur_ex;
    t->cur_ex = ex;
}

void fut_kit_run_end(fut_kit_run_t *run)
{
    fut__tls.cur_ex = run->prev_;
}

int fut_promise_on_cancel(fut_promise_t *p, fut_executor_t *ex, fut_then_fn fn,
                          void *arg)
{
    return fut__promise_on_cancel(p, ex, fn, arg);
}

void fut_kit_watch(fut_t *f, fut_kit_watch_t *w,
                   void (*fn)(fut_kit_watch_t *w, fut_t *src))
{
    w->fire = fn;
    fut__attach(f, w);
}

void **fut_kit_io_slot(fut_executor_t *ex)
{
    /* Static executors (inline, the timer service) have no fd_ready. */
    return ex && !ex->is_static && ex->has_fd_ready ? &ex->io_slot : NULL;
}
