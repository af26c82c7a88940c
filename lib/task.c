/* libfut — running the work: fut_async and the private fast path of a
 * future that runs before its constructor returns, the executor's side of
 * a task (fut_task_run, fut_task_drop, and fork-join's taken task), and
 * chaining (fut_then, fut_catch, fut_finally: a node on the source's list
 * that hands the callback to its executor).  A task's future settles
 * through the state word (future.c's essay); the reference a call kind
 * holds on its source and the hold a taken task leaves owed are described
 * below, where they are dropped. */
#include "future_impl.h"

/* ---- the private fast path ---------------------------------------------
 * A future made by fut_async or chained to an already settled source, to
 * run on the inline executor from a thread that is not already inside an
 * inline task or a list of continuations, runs its callback before the
 * constructor returns.  Until then nobody else can see it (it is attached
 * nowhere and not yet returned), so it needs no executor hold and settles
 * with a plain store instead of a CAS: a link of a settled chain costs no
 * locked instruction at all.  Whoever receives it later does so through
 * some synchronisation of the application's (the return, a queue), which
 * orders these stores before their reads. */

static bool can_run_private(fut_executor_t *ex)
{
    const struct fut_tls *t = &fut__tls;
    return ex == &fut__inline && t->inline_depth == 0 && !t->firing;
}

static void settle_private(fut_t *f, const fut_result_t *r)
{
    uintptr_t w;
    if (write_value(f, r))
        w = W_SETTLED(FUT_FULFILLED, 0);
    else if (r->kind_ == RK_FAIL)
        w = W_SETTLED(FUT_REJECTED, r->err_);
    else {
        fut__settle(f, r); /* forward, adopt: may attach elsewhere */
        return;
    }
    atomic_store_explicit(&f->word, w, memory_order_relaxed);
}

/* Calls F's task or callback with F as the thread's current future (for
 * fut_cancel_requested and fut_executor_current), then drops F's source. */
static fut_result_t call_on(fut_t *f, fut_executor_t *ex)
{
    struct fut_tls *t = &fut__tls;
    fut_executor_t *pex = t->cur_ex;
    fut_t *pfut = t->cur_fut;
    t->cur_ex = ex;
    t->cur_fut = f;
    fut_result_t r = f->kind == FK_ASYNC
                         ? f->u.call.fn.task(f->u.call.arg)
                         : f->u.call.fn.then(f->u.call.arg, f->u.call.src);
    t->cur_ex = pex;
    t->cur_fut = pfut;
    if (FUT__UNLIKELY(t->owed != NULL))
        fut__pay_owed(t); /* a debt never outlives the task that made it */
    return r;
}

static fut_result_t call(fut_t *f)
{
    return call_on(f, f->ex);
}

/* THE SOURCE REFERENCE OF A CALL KIND.  A then/catch/finally future D
 * holds its source until the thread that closes D releases it, unless
 * fut_cancel closed D: then a canceller may be reading the source
 * (cancel.c) and D keeps it until D goes (fut__destroy_slow).  Closing is one
 * CAS (or a claim), so exactly one thread knows it closed D. */
static void drop_src(fut_t *f)
{
    if (is_call_kind(f)) {
        fut_release(f->u.call.src);
        f->u.call.src = NULL;
    }
}

void fut__drop_src(fut_t *f)
{
    drop_src(f);
}

/* Settles F, whose task or callback ran, with R; releases its source if
 * this settle closed F (a value or an error: forward and adopt close it
 * later, in follow). */
static void settle_ran(fut_t *f, fut_result_t *r)
{
    bool closes = r->kind_ != RK_FORWARD && r->kind_ != RK_ADOPT;
    if (fut__settle(f, r) == 0 && closes)
        drop_src(f);
}

static void run_private(fut_t *f)
{
    struct fut_tls *t = &fut__tls;
    t->inline_depth++; /* tasks the callback submits inline are queued */
    fut_result_t r = call(f);
    settle_private(f, &r);
    drop_src(f);
    fut__inline_drain();
    t->inline_depth--;
}

fut_t *fut_async(fut_executor_t *ex, fut_task_fn fn, void *arg)
{
    if (!ex || !fn)
        return fut__rejected(FUT_EINVAL);
    if (can_run_private(ex)) {
        fut_t *f = fut__new_block(FK_ASYNC, 1);
        if (!f)
            return &fut__enomem;
        f->ex = ex;
        f->u.call.fn.task = fn;
        f->u.call.arg = arg;
        run_private(f);
        return f;
    }
    fut_t *f =
        fut__new_block(FK_ASYNC, 2); /* the caller's and the executor's */
    if (!f)
        return &fut__enomem;
    f->ex = ex;
    f->u.call.fn.task = fn;
    f->u.call.arg = arg;
    /* From a task of EX itself (fork-join), no guard is needed (see
     * executor.c's protocol): call its submit directly. */
    int rc = fut__tls.cur_ex == ex ? ex->ops->submit(ex->impl, &f->task)
                                   : fut__ex_submit(ex, &f->task);
    if (rc) {
        fut__settle_err(f, FUT_REJECTED, rc);
        fut_release(f);
    }
    return f;
}

/* ---- tasks -------------------------------------------------------------- */

static void drop_ex_ref(fut_t *f)
{
    if (f->flags & FF_EX_REF) {
        f->flags &= (uint8_t)~FF_EX_REF;
        fut__ex_release(f->ex);
    }
}

/* A finally's callback runs even when its future was cancelled first
 * (cancel.c): the clean-up is never dropped; its result is then
 * disposed of. */
void fut_task_run(fut_task_t *task)
{
    fut_t *f = FUT__CONTAINER(task, fut_t, task);
    if (FUT__UNLIKELY(f->kind == FK_FIBER)) {
        fut__fiber_run(f); /* the fiber holds F: no executor's hold */
        return;
    }
    if (FUT__LIKELY(!fut__closed(f)) || f->kind == FK_FINALLY) {
        fut_result_t r = call(f);
        settle_ran(f, &r);
    } else if (FUT__UNLIKELY(f->kind == FK_PLAIN && (f->flags & FF_HOOK))) {
        fut__hook_run(f); /* a cancelled promise's hook (promise.c) */
    } else if (f->kind == FK_POST) {
        fut__post_run(f); /* fut_post's work (post.c): frees F */
        return;
    }
    fut_release(f); /* the executor's hold */
}

/* THE TAKEN-TASK FAST PATH (fork-join)
 *
 * A task waiting for its child F finds F's task on top of its own worker's
 * deque and takes it back (ops->take: the pop is the one locked instruction
 * that settles the race with thieves) and runs it here.  Settling still
 * closes the word with a CAS, since another thread may be attaching to F
 * through a reference of its own.  What it saves is the executor's hold:
 * instead of a locked decrement now, the hold is *owed* by this thread
 * (fut_tls.owed) and released later, with the waiter's own reference when
 * the waiter releases F next (fut_release(F) then drops two at once, with
 * no locked instruction if they are the last two), or at this thread's
 * next fut_release of another future, or when the enclosing task or
 * callback returns (call()), whichever comes first.  Until then the count
 * only over-counts, so no other thread can free F early; nothing but this
 * thread touches the debt. */
void fut__run_taken(fut_t *f)
{
    struct fut_tls *t = &fut__tls;

    if (FUT__LIKELY(!fut__closed(f)) || f->kind == FK_FINALLY) {
        /* call(), minus what the take already guarantees: this thread
         * runs a task of F's executor (fut_wait checked f->ex == cur_ex),
         * so cur_ex stays as it is. */
        fut_t *pfut = t->cur_fut;
        t->cur_fut = f;
        fut_result_t r = f->kind == FK_ASYNC
                             ? f->u.call.fn.task(f->u.call.arg)
                             : f->u.call.fn.then(f->u.call.arg, f->u.call.src);
        t->cur_fut = pfut;
        pay_owed(t); /* debts made inside F's task, or an earlier one */
        /* fut__settle's common case, inline: a value, nothing attached,
         * nobody claiming (word 0); acq_rel as in close_cas.  Anything
         * else (fut__settle writes the value again, the same). */
        uintptr_t w0 = 0;
        if (write_value(f, &r) &&
            atomic_compare_exchange_strong_explicit(
                &f->word, &w0, W_SETTLED(FUT_FULFILLED, 0),
                memory_order_acq_rel, memory_order_relaxed))
            drop_src(f);
        else
            settle_ran(f, &r);
    } else {
        pay_owed(t);
    }
    t->owed = f;
}

const void *fut_task_fn_addr(const fut_task_t *task)
{
    if (!task)
        return NULL;
    const fut_t *f = FUT__CONTAINER(task, fut_t, task);
    return f->kind == FK_ASYNC || f->kind == FK_FIBER
               ? (const void *)(uintptr_t)f->u.call.fn.task
               : (const void *)(uintptr_t)f->u.call.fn.then;
}

/* A dropped finally still runs its callback, here, on the thread that
 * drops it (the executor's destroy), with no current executor. */
void fut_task_drop(fut_task_t *task)
{
    fut_t *f = FUT__CONTAINER(task, fut_t, task);
    if (f->kind == FK_FIBER) {
        fut__fiber_drop(f); /* fiber.c: it settles F */
        return;
    }
    if (f->kind == FK_FINALLY) {
        fut_result_t r = call_on(f, NULL);
        settle_ran(f, &r);
    } else if (fut__settle_err(f, FUT_REJECTED, FUT_ESHUTDOWN)) {
        drop_src(f);
    }
    fut_release(f);
}

/* ---- chaining ----------------------------------------------------------- */

static bool wants_call(const fut_t *d, fut_state_t s)
{
    switch (d->kind) {
    case FK_THEN:
        return s == FUT_FULFILLED;
    case FK_CATCH:
        return s != FUT_FULFILLED;
    default:
        return true;
    }
}

/* D's node on its source's list: SRC settled.  Either hand D's task to its
 * executor (the node's reference becomes the executor's hold) or settle D
 * right here without a callback (pass-through, shutdown, already
 * cancelled). */
/* D's node on its source's list: SRC settled.  Either hand D's task to its
 * executor (the node's reference becomes the executor's hold) or settle D
 * right here without a callback (pass-through, shutdown, already
 * cancelled).  A finally's task is handed over even if D was cancelled;
 * if its executor refuses it (shut down), the callback runs here, on the
 * thread that settled SRC, with no current executor. */
static void then_fire(fut_cont_t *c, fut_t *src)
{
    fut_t *d = FUT__CONTAINER(c, fut_t, cont);
    bool open = !fut__closed(d);
    if (open ? wants_call(d, fut__state_of(load_word(src)))
             : d->kind == FK_FINALLY) {
        /* Once submitted, D may run and be freed on another thread:
         * take what we need from it first. */
        fut_executor_t *ex = d->ex;
        bool ref = (d->flags & FF_EX_REF) != 0;
        d->flags &= (uint8_t)~FF_EX_REF;
        int rc = fut__ex_submit(ex, &d->task);
        if (ref)
            fut__ex_release(ex);
        if (FUT__LIKELY(rc == 0))
            return;
        if (d->kind == FK_FINALLY) {
            fut_result_t r = call_on(d, NULL);
            settle_ran(d, &r);
        } else if (fut__settle_err(d, FUT_REJECTED, rc)) {
            drop_src(d);
        }
    } else if (open && fut__settle_like(d, src)) {
        drop_src(d);
    }
    drop_ex_ref(d);
    fut_release(d);
}

static fut_t *chain(fut_t *f, fut_executor_t *ex, fut_then_fn fn, void *arg,
                    enum fut_kind kind)
{
    if (!f || !ex || !fn) {
        fut_release(f);
        return fut__rejected(FUT_EINVAL);
    }
    bool private = can_run_private(ex) && fut__closed(f);
    fut_t *d =
        fut__new_block(kind, private ? 1 : 2); /* the caller's, the node's */
    if (!d) {
        fut_release(f);
        return &fut__enomem;
    }
    d->ex = ex;
    d->u.call.src = f; /* the caller's reference, consumed */
    d->u.call.fn.then = fn;
    d->u.call.arg = arg;
    if (private) {
        if (wants_call(d, fut__state_of(load_word(f))))
            run_private(d);
        else if (fut__settle_like(d, f))
            drop_src(d);
        return d;
    }
    d->cont.fire = then_fire;
    if (!ex->is_static && !fut__closed(f)) {
        /* D may outlive the application's handle on EX while it waits. */
        fut__ex_retain(ex);
        d->flags |= FF_EX_REF;
    }
    fut__attach(f, &d->cont);
    return d;
}

fut_t *fut_then(fut_t *f, fut_executor_t *ex, fut_then_fn fn, void *arg)
{
    return chain(f, ex, fn, arg, FK_THEN);
}

fut_t *fut_catch(fut_t *f, fut_executor_t *ex, fut_then_fn fn, void *arg)
{
    return chain(f, ex, fn, arg, FK_CATCH);
}

fut_t *fut_finally(fut_t *f, fut_executor_t *ex, fut_then_fn fn, void *arg)
{
    return chain(f, ex, fn, arg, FK_FINALLY);
}
