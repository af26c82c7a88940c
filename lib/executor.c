/* libfut — executor handles: creation, the guard around calls into an
 * executor's ops, destruction, names and stats.
 *
 * PROTOCOL (why destroy cannot pull an executor from under a submit)
 *
 * An executor's IMPL dies in ops->destroy.  A thread of the executor itself
 * (fut__tls.cur_ex == ex) may call into its ops without ceremony: destroy
 * joins those threads before freeing anything.  Any other thread brackets
 * its call with the executor's inflight count:
 *
 *     caller:   inflight += 1 (seq_cst);  if closed: refuse;  else call ops;
 *               inflight -= 1 (release)
 *     destroy:  closed = 1 (seq_cst);  wait until inflight == 0 (acquire);
 *               ops->destroy(impl)
 *
 * Both sides' first two steps are seq_cst, so they are totally ordered:
 * either the caller's increment comes first (destroy waits for it) or the
 * store of closed comes first (the caller sees it and refuses).  The struct
 * itself outlives IMPL: it is reference counted by the application's handle
 * and by futures that may still call in (pending continuations, timers), so
 * a late caller finds closed set and settles FUT_ESHUTDOWN instead of
 * touching freed memory.  The inflight counter is shared, but only foreign
 * threads touch it: a pool's own workers (the hot path) never do.
 *
 * BIASED COUNTING (the struct's references without a shared counter on the
 * hot path).  Every pending continuation on EX holds a reference on EX's
 * struct, and most are made and fired by EX's own threads (a loop's chain
 * steps, a pool's continuations): one locked add and one locked sub per
 * continuation on a line every such thread shares.  Instead, a thread that
 * runs EX's work says so (fut__ex_bias_begin: the loop's run, a pool
 * worker's life) and counts EX's references in thread-local bias_n with
 * plain adds; other threads use the atomic REFS.  A reference may be taken
 * on one side and dropped on the other, so neither count alone is the
 * truth; the sum of REFS and every biased thread's bias_n is.  To keep
 * REFS from reaching 0 while a biased thread may hold references it counts
 * locally, each biased thread adds BIAS to REFS when it begins and folds
 * (bias_n - BIAS) into it when it ends; the fold that brings REFS to 0
 * frees the struct, as a last release would.
 *
 *     begin:    refs += BIAS (relaxed: the caller holds a reference)
 *     retain:   biased thread: bias_n += 1    others: refs += 1
 *     release:  biased thread: bias_n -= 1    others: refs -= 1 (acq_rel;
 *                                             0: free)
 *     end:      refs += bias_n - BIAS (acq_rel; 0: free)
 *
 * While a biased thread is between begin and end, REFS >= BIAS minus the
 * references it took locally that others dropped (far fewer than BIAS), so
 * no release frees early; once every biased thread has ended, REFS is the
 * exact count again.  bias_n is touched by its own thread only. */
#include <sched.h>
#include <string.h>

#include "internal.h"

int fut_executor_create(fut_executor_t **out, const fut_executor_ops_t *ops,
                        void *impl)
{
    if (!out || !ops || !ops->submit || !ops->destroy ||
        (ops->timer_start && !ops->timer_cancel))
        return FUT_EINVAL;
    fut_executor_t *ex = fut__sys_alloc(sizeof *ex);
    if (!ex)
        return FUT_ENOMEM;
    memset(ex, 0, sizeof *ex);
    ex->ops = ops;
    ex->impl = impl;
    atomic_init(&ex->refs, 1);
    atomic_init(&ex->inflight, 0);
    atomic_init(&ex->closed, 0);
    atomic_init(&ex->gone, 0);
    *out = ex;
    return 0;
}

void *fut_executor_impl(const fut_executor_t *ex, const fut_executor_ops_t *ops)
{
    /* Acquire: pairs with the release store of gone in destroy.  A handle
     * kept alive by pending futures after its destroy returned answers
     * NULL, so executors' own entry points refuse it (FUT_EINVAL) instead
     * of touching the freed IMPL. */
    if (!ex || ex->ops != ops ||
        atomic_load_explicit(&((fut_executor_t *)ex)->gone,
                             memory_order_acquire))
        return NULL;
    return ex->impl;
}

#define BIAS ((int64_t)1 << 40) /* per biased thread; see the protocol */

void fut__ex_release_shared(fut_executor_t *ex)
{
    /* acq_rel as for futures: the last one frees after everyone's use
     * (pairs with every other release and with the folds in bias_end). */
    if (atomic_fetch_sub_explicit(&ex->refs, 1, memory_order_acq_rel) == 1)
        fut__sys_free(ex);
}

bool fut__ex_bias_begin(fut_executor_t *ex)
{
    struct fut_tls *t = &fut__tls;
    if (t->bias_ex || ex->is_static)
        return false;
    /* Relaxed: the caller holds a reference (as in a retain). */
    atomic_fetch_add_explicit(&ex->refs, BIAS, memory_order_relaxed);
    t->bias_ex = ex;
    t->bias_n = 0;
    return true;
}

void fut__ex_bias_end(fut_executor_t *ex)
{
    struct fut_tls *t = &fut__tls;
    int64_t n = t->bias_n;
    t->bias_ex = NULL;
    t->bias_n = 0;
    /* acq_rel: the fold is this thread's release of everything it counted
     * locally, paired like the shared release above. */
    if (atomic_fetch_add_explicit(&ex->refs, n - BIAS, memory_order_acq_rel) ==
        BIAS - n)
        fut__sys_free(ex);
}

static inline bool enter(fut_executor_t *ex)
{
    if (ex->is_static || fut__tls.cur_ex == ex)
        return true;
    /* seq_cst: pairs with the seq_cst store of closed in destroy. */
    atomic_fetch_add_explicit(&ex->inflight, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&ex->closed, memory_order_seq_cst)) {
        atomic_fetch_sub_explicit(&ex->inflight, 1, memory_order_release);
        return false;
    }
    return true;
}

static inline void leave(fut_executor_t *ex)
{
    if (ex->is_static || fut__tls.cur_ex == ex)
        return;
    /* Release: pairs with destroy's acquire load of inflight, so our use
     * of IMPL happens before it is freed. */
    atomic_fetch_sub_explicit(&ex->inflight, 1, memory_order_release);
}

int fut__ex_submit(fut_executor_t *ex, fut_task_t *t)
{
    if (FUT__UNLIKELY(!enter(ex)))
        return FUT_ESHUTDOWN;
    int rc = ex->ops->submit(ex->impl, t);
    leave(ex);
    return rc;
}

int fut__ex_timer_start(fut_executor_t *ex, fut_timer_t *t)
{
    if (!ex->ops->timer_start)
        return FUT_EINVAL;
    if (!enter(ex))
        return FUT_ESHUTDOWN;
    int rc = ex->ops->timer_start(ex->impl, t);
    leave(ex);
    return rc;
}

void fut__ex_timer_cancel(fut_executor_t *ex, fut_timer_t *t)
{
    if (!enter(ex)) {
        /* The executor's destroy drops every timer it holds; the second
         * hold the cancel would have given is ours to end. */
        fut_timer_drop(t);
        return;
    }
    ex->ops->timer_cancel(ex->impl, t);
    leave(ex);
}

int fut_executor_destroy(fut_executor_t *ex)
{
    if (!ex || ex->is_static)
        return FUT_EINVAL;
    if (fut__tls.cur_ex == ex)
        return FUT_EDEADLK;
    if (atomic_exchange_explicit(&ex->closed, 1, memory_order_seq_cst))
        return FUT_EALREADY;
    /* Acquire: pairs with leave()'s release. */
    while (atomic_load_explicit(&ex->inflight, memory_order_acquire) != 0)
        sched_yield();
    ex->ops->destroy(ex->impl);
    atomic_store_explicit(&ex->gone, 1, memory_order_release);
    fut__fibers_shutdown(ex); /* the last run of suspended fibers */
    fut__ex_release(ex);
    return 0;
}

const char *fut_executor_name(const fut_executor_t *ex)
{
    if (!ex)
        return "(null)";
    return ex->ops->name ? ex->ops->name : "custom";
}

int fut_executor_stats(const fut_executor_t *cex, fut_stats_t *out)
{
    fut_executor_t *ex = (fut_executor_t *)cex;
    if (!ex || !out)
        return FUT_EINVAL;
    memset(out, 0, sizeof *out);
    if (!ex->ops->stats)
        return 0;
    if (!enter(ex))
        return FUT_ESHUTDOWN;
    int rc = ex->ops->stats(ex->impl, out);
    leave(ex);
    return rc;
}

fut_executor_t *fut_executor_current(void)
{
    return fut__tls.cur_ex;
}
