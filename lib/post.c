/* libfut — fut_post: work handed to an executor with no future.
 *
 * A posted function travels as a task like any other, so every executor
 * (inline, pool, loop, an application's own through its ops) takes it
 * with no change: the block is an ordinary 128-byte future block of kind
 * FK_POST holding the function and its argument, with a single reference
 * (the executor's hold).  It is born closed: fut_task_run's common path
 * (a pending future's task) never sees it, and its closed branch hands it
 * to fut__post_run, which frees the block and calls the function.  Nobody
 * else ever sees the block: no reference counting, no settle, no CAS.  A
 * drop (an executor's shutdown) goes through fut_task_drop like any task:
 * the settle finds it closed and the release frees it, the function never
 * called. */
#include "internal.h"

/* The state word of a closed future with no outcome anyone reads
 * (future.c's W_CLOSED bit, which fut__closed tests). */
#define POST_WORD ((uintptr_t)2)

int fut_post(fut_executor_t *ex, void (*fn)(void *arg), void *arg)
{
    if (FUT__UNLIKELY(!ex || !fn))
        return FUT_EINVAL;
    fut_t *f = fut__new_block(FK_POST, 1); /* the executor's hold */
    if (FUT__UNLIKELY(!f))
        return FUT_ENOMEM;
    atomic_init(&f->word, POST_WORD);
    f->ex = ex;
    f->u.call.fn.post = fn;
    f->u.call.arg = arg;
    /* The block the next post will take, asked for now: a producer's
     * blocks come back from the thread that ran them, in that core's
     * cache, and the next post's locked exchange (the queue's) would wait
     * for the transfer of the lines it writes (the first) and reads (the
     * stamp, in the second) if that post started it. */
    uintptr_t next = (uintptr_t)fut__tls.slab; /* 0 at times: harmless */
    __builtin_prefetch((const void *)next, 1);
    __builtin_prefetch((const void *)(next + FUT__BLOCK - 1), 0);
    /* From a task of EX itself no guard is needed (executor.c's
     * protocol), as in fut_async. */
    int rc = fut__tls.cur_ex == ex ? ex->ops->submit(ex->impl, &f->task)
                                   : fut__ex_submit(ex, &f->task);
    if (FUT__UNLIKELY(rc != 0))
        fut_release(f); /* never handed over: ours to free */
    return rc;
}

void fut__post_run(fut_t *f)
{
    struct fut_tls *t = &fut__tls;
    void (*fn)(void *) = f->u.call.fn.post;
    void *arg = f->u.call.arg;
    fut_executor_t *pex = t->cur_ex;
    fut_t *pfut = t->cur_fut;
    t->cur_ex = f->ex;
    t->cur_fut = NULL; /* no future: fut_cancel_requested() is false */
    /* Freed before the call: the function's own allocations may reuse
     * the block while it is still in this core's cache.  Not through
     * fut_release: nobody else ever held it, and nobody checks it for
     * misuse (it is never marked dead or quarantined). */
    fut__free(f, sizeof *f);
    fn(arg);
    t->cur_ex = pex;
    t->cur_fut = pfut;
    if (FUT__UNLIKELY(t->owed != NULL))
        fut__pay_owed(t); /* as in call() (task.c) */
}
