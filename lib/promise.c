/* libfut — promises: making, settling and dropping them, and the cancel
 * hooks executors set on their own promises.  The state word they settle
 * and its protocol are future.c's (see the essay at the top of that file);
 * fut__enomem is the shared future a failed allocation returns. */
#include "internal.h"

/* ---- making and settling promises ---------------------------------------- */

fut_t *fut_promise_new(fut_promise_t **promise)
{
    if (!promise)
        return fut__rejected(FUT_EINVAL);
    fut_t *f = fut__new_block(FK_PLAIN, 2); /* the caller's, the promise's */
    if (!f) {
        *promise = NULL;
        return &fut__enomem;
    }
    atomic_store_explicit(&f->hold, 1, memory_order_relaxed);
    *promise = (fut_promise_t *)f;
    return f;
}

/* Takes the promise handle's right to settle; false if it was consumed
 * already (a double settle or drop while the future is still alive). */
static bool promise_take(fut_t *f)
{
    FUT__CHECK_LIVE(atomic_load_explicit(&f->refs, memory_order_relaxed), f,
                    "a promise handle's use");
    /* Relaxed: only decides who consumes the handle; the settle itself is
     * ordered by the state word. */
    return atomic_exchange_explicit(&f->hold, 0, memory_order_relaxed) == 1;
}

int fut_promise_settle(fut_promise_t *p, fut_result_t r)
{
    fut_t *f = (fut_t *)p;
    if (!f || f == &fut__enomem) {
        fut__dispose(r);
        return FUT_EINVAL;
    }
    if (!promise_take(f)) {
        fut__dispose(r);
        return FUT_EALREADY;
    }
    int rc = fut__settle(f, &r);
    fut_release(f);
    return rc;
}

void fut_promise_drop(fut_promise_t *p)
{
    fut_t *f = (fut_t *)p;
    if (!f || f == &fut__enomem || !promise_take(f))
        return;
    fut__settle_err(f, FUT_REJECTED, FUT_EBROKEN);
    fut_release(f);
}

/* ---- promise cancel hooks -----------------------------------------------
 * An executor that settles promises of its own (the loop's fut_fd_ready)
 * must learn when the application cancels one, to let go of what the
 * promise stands for (an fd registration).  A fut_catch per promise did
 * that at the price of a second future, an attach and a settle per
 * promise; a hook costs a flag and three fields of the promise's own
 * block, which a promise (FK_PLAIN) leaves unused: ex, u.call.fn.then,
 * u.call.arg.  Set once, before the future is shared, by the thread that
 * made it (so later readers see them through whatever shares the future).
 *
 * fut_cancel that wins on a hooked future (the only way a future becomes
 * FUT_CANCELLED; at most one caller wins) calls fut__hook_fire: it hands
 * the future's own embedded task to EX, holding a reference for it, as a
 * continuation's task is handed over.  fut_task_run finds the future
 * closed and, seeing FF_HOOK, calls fut__hook_run instead of the task.  If
 * EX refuses (shut down), the hook never runs, like a refused
 * continuation.  The block holds a reference on EX (FF_EX_REF) from the
 * hook's setting to its last release, so a late cancel finds EX's struct
 * alive and asks its gate.  A promise settled first never fires its
 * hook. */

int fut__promise_on_cancel(fut_promise_t *p, fut_executor_t *ex, fut_then_fn fn,
                           void *arg)
{
    fut_t *f = (fut_t *)p;
    if (!f || f == &fut__enomem || !ex || !fn || f->kind != FK_PLAIN ||
        (f->flags & FF_HOOK) ||
        /* Relaxed: the setter made F and shares it with nobody yet. */
        atomic_load_explicit(&f->hold, memory_order_relaxed) != 1)
        return FUT_EINVAL;
    f->ex = ex;
    f->u.call.fn.then = fn;
    f->u.call.arg = arg;
    fut__ex_retain(ex);
    f->flags |= FF_HOOK | FF_EX_REF;
    return 0;
}

void fut__hook_fire(fut_t *f)
{
    fut_retain(f); /* the executor's hold on the task */
    if (fut__ex_submit(f->ex, &f->task) != 0)
        fut_release(f); /* EX is gone: the hook never runs */
}

void fut__hook_run(fut_t *f)
{
    struct fut_tls *t = &fut__tls;
    fut_executor_t *pex = t->cur_ex;
    fut_t *pfut = t->cur_fut;
    t->cur_ex = f->ex;
    t->cur_fut = f;
    fut__dispose(f->u.call.fn.then(f->u.call.arg, f));
    t->cur_ex = pex;
    t->cur_fut = pfut;
    if (FUT__UNLIKELY(t->owed != NULL))
        fut__pay_owed(t); /* as in call() (task.c) */
}

/* ---- claimed settles of a promise (the executor kit) --------------------
 * An I/O operation (executors/loop/loop_io.c) must not read or write a
 * single byte after a cancel of its future won: it claims the promise's
 * future around each system call (fut_promise_claim, over fut__claim), so
 * that a racing fut_cancel waits for the call to end and then either finds the future settled (it lost:
 * FUT_EALREADY) or the claim let go (the call found nothing to do, EAGAIN)
 * and wins.  After a failed claim the operation knows the cancel won and
 * touches nothing of the caller's again. */

bool fut_promise_claim(fut_promise_t *p)
{
    return p && fut__claim((fut_t *)p);
}

void fut_promise_unclaim(fut_promise_t *p)
{
    fut__unclaim((fut_t *)p);
}

void fut_promise_settle_claimed(fut_promise_t *p, fut_result_t r)
{
    fut_t *f = (fut_t *)p;
    /* Relaxed, as in promise_take: the claim already made us the settler. */
    atomic_store_explicit(&f->hold, 0, memory_order_relaxed);
    if (r.kind_ == RK_FORWARD || r.kind_ == RK_ADOPT) {
        fut__dispose(r); /* an adopted future's reference, let go */
        r = fut_fail(FUT_EINVAL);
    }
    fut__close_claimed(f, r);
    fut_release(f);
}
