/* libfut — the pool's task groups (fut_group_t): init, the slow halves of
 * spawn and wait, and the exported functions behind <fut/pool.h>'s inline
 * fast path.  The scheduler and its protocol (queues, stealing, parking,
 * wake-ups) are pool.c's: see the essay at the top of that file; the
 * definitions both share are in pool_impl.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* before ck_ec.h (POSIX clocks) */
#endif

#include <time.h>

#include "pool_impl.h"

/* ---- task groups ---------------------------------------------------------
 *
 * A group belongs to one thread.  Its children go to the worker's split
 * deque (split.h): pushed and popped back by the owner with plain stores
 * while they are private, and run right there, uncounted.  Only a child
 * that leaves the private slots is counted, in out_ (a plain field of the
 * owner thread): one that spawn had to spill (off-worker, or the split deque
 * full), counted at the spill; one a thief took, counted when the owner pops
 * its stolen slot.  Such a child ends with done_local_ += 1 if the owner
 * thread ran it (a spilled child it took back through its own queues), or
 * with a locked increment of done_remote_ elsewhere, which is the child's
 * last touch of the group or its storage (the waiter may return and pop the
 * frame that holds them right after).  The group is done when every slot
 * down to base_ was popped and done_local_ + done_remote_ == out_ (with
 * out_ == 0 the inline wait returns without reading done_remote_ at all:
 * every child ran on this thread).  The waiter's load of done_remote_ is
 * followed by a load fence (pairs with that locked increment), so the
 * children's writes are visible once the counts add up.
 *
 * The wait first pops every slot pushed since the group's init (base_,
 * lowered by a spawn that finds the deque lower than that):
 * its own children and, if groups were interleaved, those of groups made
 * after it on this thread, which it runs for them (a stolen one is counted
 * in its own group's out_, so nothing is lost).  Popping down to base_
 * before returning keeps a dead frame's task out of the deque.  Children
 * that cannot go to the split deque (off-worker spawns, overflow) go to the
 * pool's second injection stack, ginject, linked through next_; workers tag
 * them when they move them into a deque. */

static bool group_done(fut_group_t *g)
{
    /* Pairs with the locked increment of done_remote_ in group_run. */
    if (g->done_local_ + ck_pr_load_32(&g->done_remote_) != g->out_)
        return false;
    ck_pr_fence_load(); /* pairs with the locked inc in group_run */
    FUT__DQ_ACQUIRE(g);
    return true;
}

static int group_init_slow(fut_group_t *g, fut_executor_t *pool)
{
    struct worker *w = fut__pool_me;
    struct pool *p =
        pool != NULL ? fut_executor_impl(pool, &fut__pool_ops) : NULL;

    if (g == NULL || p == NULL)
        return FUT_EINVAL;
    g->pool_ = p;
    g->owner_ = w != NULL && w->pool == p ? w : NULL;
    g->q_ = g->owner_ != NULL ? &w->split.o : NULL;
    g->out_ = 0;
    g->done_local_ = 0;
    g->done_remote_ = 0;
    g->base_ = g->owner_ != NULL ? w->split.o.head : 0;
    return 0;
}

#undef fut_group_init

/* The header's inline init covers a worker's own pool (and calls this for
 * the rest); this is the whole of it, for TSan builds and for callers that
 * bind by name. */
int fut_group_init(fut_group_t *g, fut_executor_t *pool)
{
    struct worker *w = fut__pool_me;

    if (FUT__LIKELY(w != NULL && g != NULL &&
                         (pool == NULL || pool == w->pool->handle))) {
        g->pool_ = w->pool;
        g->owner_ = w;
        g->q_ = &w->split.o;
        g->out_ = 0;
        g->done_local_ = 0;
        g->done_remote_ = 0;
        g->base_ = w->split.o.head;
        return 0;
    }
    return group_init_slow(g, pool);
}

/* What the inline spawn (<fut/pool.h>) leaves to us: T is filled in; the
 * deque is full, not all private, or below G's base, or we are off a
 * worker. */
void fut__group_spawn_slow(fut_group_t *g, fut_group_task_t *t)
{
    struct worker *w = g->owner_;
    struct pool *p = g->pool_;

    if (w != NULL) {
        int r;

        /* Groups used out of nesting order (init A, init B, wait A, spawn
         * into B) may place a child below where the group began. */
        if (FUT__UNLIKELY(w->split.o.head < g->base_))
            g->base_ = w->split.o.head;
        r = fut__split_push(&w->split, t);

        if (r == 0)
            return; /* private: the common case, no fence, no wake-up */
        if (r > 0) {
            /* Published for thieves (a CAS or a store after a fence). */
            maybe_wake(p, &w->c.wakeups);
            return;
        }
    }
    /* Off-worker, or the split deque is full. */
    g->out_++;
    stack_push(&p->ginject, (ck_stack_entry_t *)(void *)t);
    ck_pr_fence_atomic_load(); /* as in inject_push */
    maybe_wake(p, NULL);
}

/* Off a worker: naps (1 us doubling to 1 ms) until the children are done. */
static void group_wait_outside(fut_group_t *g)
{
    long nap = 1000;

    while (!group_done(g)) {
        struct timespec ts = {0, nap};

        nanosleep(&ts, NULL);
        nap = nap < 1000000 ? nap * 2 : nap;
    }
}

int fut__group_wait_slow(fut_group_t *g)
{
    struct worker *w = g->owner_;

    if (w == NULL) {
        group_wait_outside(g);
    } else {
        /* Our own children, newest first: run the private ones here (the
         * fast path: plain loads and stores), skip the stolen ones. */
        while (w->split.o.head > g->base_) {
            fut_group_task_t *t;
            bool published = false;

            if (fut__split_pop(&w->split, &t, &published) == FUT__SPLIT_LOCAL) {
                t->fn_(t->arg_); /* never left: uncounted */
                count(&w->c.run);
            } else {
                t->group_->out_++; /* ours, or an interleaved group's */
            }
            if (published)
                maybe_wake(w->pool, &w->c.wakeups);
        }
        /* Only stolen ones remain: help with anything until they are done. */
        while (!group_done(g)) {
            void *e = fut__pool_find_work(w);

            if (e != NULL)
                run_entry(w, e);
            else
                ck_pr_stall();
        }
    }
    g->out_ = g->done_local_ = 0;
    ck_pr_store_32(&g->done_remote_, 0); /* every child is done with g */
    return 0;
}

/* The exported functions behind the header's inline spawn and wait, for
 * callers that take their address or bind by name. */
#undef fut_group_spawn
#undef fut_group_wait

void fut_group_spawn(fut_group_t *g, fut_group_task_t *t, fut_group_fn fn,
                     void *arg)
{
    fut__group_spawn_inline(g, t, fn, arg);
}

int fut_group_wait(fut_group_t *g)
{
    return fut__group_wait_inline(g);
}
