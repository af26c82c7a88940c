/* libfut — the executor kit (<fut/executor_kit.h>): the core's mechanisms
 * that an executor uses to run libfut work, behind public names.  Biased
 * counting is lib/executor.c's (its protocol is at the top of that file);
 * the mark is the thread's current executor (fut__tls.cur_ex), the one
 * fut_executor_current() reports; promise cancel hooks are lib/promise.c's. */
#include "internal.h"

void fut_kit_run_begin(fut_kit_run_t *run, fut_executor_t *ex)
{
    struct fut_tls *t = &fut__tls;
    run->ex_ = ex;
    run->prev_ = t->cur_ex;
    run->counted_ = ex && fut__ex_bias_begin(ex);
    t->cur_ex = ex;
}

void fut_kit_run_end(fut_kit_run_t *run)
{
    fut__tls.cur_ex = run->prev_;
    if (run->counted_)
        fut__ex_bias_end(run->ex_); /* may free the struct: last */
}

int fut_promise_on_cancel(fut_promise_t *p, fut_executor_t *ex, fut_then_fn fn,
                          void *arg)
{
    return fut__promise_on_cancel(p, ex, fn, arg);
}
