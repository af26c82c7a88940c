/* libfut — waiting: fut_wait, fut_await, and the futex they sleep on.
 *
 * A blocked waiter hangs a small node on the future's continuation list;
 * firing it sets the node's flag and wakes the futex.  The node is shared
 * by two parties that may finish in either order (the waiter may time out
 * while the future settles), so it has a reference count of two: the
 * waiter's and the list's.  A waiter that times out takes its node off the
 * list (fut__detach) and then holds both, unless the future is settling,
 * in which case the node fires as usual: timed-out waits leave nothing on
 * a future however often one polls it.
 *
 * Waiting inside a task helps instead of blocking, when the executor
 * running the task can run another one (try_run_one): a pool worker waiting
 * for a child runs the child itself.  Between helping rounds it sleeps on
 * the node with a short timeout that doubles up to 1 ms, because new work
 * for it to help with arrives without waking its futex.  On an executor
 * whose thread must never block (the loop), a wait for a pending future is
 * refused with FUT_EDEADLK, as is a task waiting for its own future.
 * Inside a fiber none of this happens: the fiber suspends (fiber.c). */
#include <time.h>

#include "internal.h"

/* The futex calls are the executor kit's (lib/kit.c), which the pool parks
 * on too.  The word is an _Atomic uint32_t: same size and representation
 * as the uint32_t the kernel compares. */
static void park(_Atomic uint32_t *word, uint32_t val, int64_t timeout_ns)
{
    fut_kit_park((const uint32_t *)word, val,
                 timeout_ns < 0 ? UINT64_MAX
                                : fut_now_ns() + (uint64_t)timeout_ns);
}

struct waiter {
    fut_cont_t cont;
    _Atomic uint32_t signaled;
    _Atomic uint32_t refs;
};

static void waiter_release(struct waiter *w)
{
    /* acq_rel: the last of the two parties frees after the other's use. */
    if (atomic_fetch_sub_explicit(&w->refs, 1, memory_order_acq_rel) == 1)
        fut__free(w, sizeof *w);
}

static void waiter_fire(fut_cont_t *c, fut_t *src)
{
    (void)src;
    struct waiter *w = FUT__CONTAINER(c, struct waiter, cont);
    /* Release: pairs with the waiter's acquire load of signaled. */
    atomic_store_explicit(&w->signaled, 1, memory_order_release);
    fut_kit_wake((const uint32_t *)&w->signaled, 1);
    waiter_release(w);
}

/* Runs queued work this thread may run while it waits; true if it ran any. */
static bool help_once(fut_executor_t *cur)
{
    if (fut__tls.dhead && fut__drain_deferred_one())
        return true;
    return cur && cur->ops->try_run_one && cur->ops->try_run_one(cur->impl);
}

static int64_t remaining(uint64_t deadline)
{
    if (deadline == UINT64_MAX)
        return -1;
    uint64_t now = fut_now_ns();
    return now >= deadline ? 0 : (int64_t)(deadline - now);
}

static int wait_slow(fut_t *f, int64_t timeout_ns, fut_executor_t *cur);

int fut_wait(fut_t *f, int64_t timeout_ns)
{
    if (!f)
        return FUT_EINVAL;
    if (FUT__UNLIKELY(fut__tls.fiber != NULL))
        return fut__fiber_wait(f, timeout_ns); /* suspends: fiber.c */
    if (FUT__LIKELY(fut__closed(f)))
        return 0;
    fut_executor_t *cur = fut__tls.cur_ex;
    if (cur) {
        if ((cur->ops->flags & FUT_EXECUTOR_NO_BLOCK) || f == fut__tls.cur_fut)
            return FUT_EDEADLK;
        /* Fork-join: F's task waits on top of our own queue; run it here
         * (task.c, fut__run_taken).  F->ex is fixed before F is shared.
         * Not a fiber's: its run may suspend with F still pending. */
        if (f->ex == cur && f->kind != FK_FIBER && cur->ops->take &&
            cur->ops->take(cur->impl, &f->task)) {
            fut__run_taken(f);
            return 0;
        }
    }
    return wait_slow(f, timeout_ns, cur);
}

/* Everything but the two fast answers: helping, then sleeping. */
static __attribute__((noinline)) int wait_slow(fut_t *f, int64_t timeout_ns,
                                               fut_executor_t *cur)
{
    if (timeout_ns == 0)
        return FUT_ETIMEDOUT;
    uint64_t deadline = UINT64_MAX;
    if (timeout_ns > 0) {
        uint64_t now = fut_now_ns();
        deadline = (uint64_t)timeout_ns > UINT64_MAX - 1 - now
                       ? UINT64_MAX - 1
                       : now + (uint64_t)timeout_ns;
    }
    bool helping = cur && cur->ops->try_run_one;
    while (!fut__closed(f) && help_once(cur))
        ;
    if (fut__closed(f))
        return 0;

    struct waiter *w = fut__alloc(sizeof *w);
    int64_t backoff = 1000; /* ns; only used while helping */
    if (w) {
        atomic_init(&w->signaled, 0);
        atomic_init(&w->refs, 2);
        w->cont.fire = waiter_fire;
        fut__attach(f, &w->cont);
    }
    int rc = 0;
    /* Acquire: pairs with waiter_fire's release (and the state word's). */
    while (!(w && atomic_load_explicit(&w->signaled, memory_order_acquire)) &&
           !fut__closed(f)) {
        int64_t left = remaining(deadline);
        if (left == 0) {
            rc = FUT_ETIMEDOUT;
            break;
        }
        int64_t nap = left;
        if (helping || !w) {
            nap = left < 0 || left > backoff ? backoff : left;
            backoff = backoff < 1000000 ? backoff * 2 : 1000000;
        }
        if (w) {
            park(&w->signaled, 0, nap);
        } else {
            struct timespec ts = {0, (long)nap};
            nanosleep(&ts, NULL); /* no memory for a node: poll */
        }
        while (helping && !fut__closed(f) && help_once(cur))
            backoff = 1000;
    }
    /* Gave up: take the node off again, or polling a long-pending future
     * would leave a node on it per poll until it settles.  If F is
     * settling, the node fires (and drops the list's reference) instead. */
    if (rc == FUT_ETIMEDOUT && w && fut__detach(f, &w->cont))
        waiter_release(w); /* the list's reference */
    if (rc == FUT_ETIMEDOUT && fut__closed(f))
        rc = 0;
    if (w)
        waiter_release(w);
    return rc;
}

int fut_await(fut_t *f, void **value)
{
    int rc = fut_wait(f, -1);
    if (rc)
        return rc;
    if (value)
        *value = fut_value(f);
    return fut_error(f);
}
