/* libfut — the work-stealing thread pool executor (its task groups are in
 * group.c, the definitions both share in pool_impl.h).
 *
 * PROTOCOL
 *
 * Where tasks live.  Each worker owns a bounded Chase–Lev deque (deque.h).
 * A task submitted by a task running on worker W goes to W's deque (owner
 * LIFO: the child is hot in cache); when it is full, to the injection queue.
 * A task submitted from any other thread goes to the injection queue, a
 * Treiber stack (ck_stack upmc push: one CAS).  A worker looking for work
 * tries, in order: its own deque; its private chain (the rest of the last
 * batch it took); one steal attempt on each other worker, starting at a
 * random victim; then the injection queue, taking the whole stack with one
 * xchg (ck_stack_batch_pop_upmc) and moving it into its deque so thieves
 * can share it (stealing first keeps idle workers off the stack's head, the
 * line outside submitters write, while a batch is still being shared).
 * Task-group children spawned on a worker go to its second deque, a split
 * deque (split.h): private to the owner until thieves ask for work, so a
 * spawn and its pop-back cost no locked instruction; thieves try it before
 * the Chase–Lev deque.  Group children spawned off-worker (or when the split
 * deque is full) use a second stack, ginject.  An entry in the Chase–Lev
 * deque is a fut_task_t *, or a fut_group_task_t * with bit 0 set (task
 * groups: group.c, whose essay covers their counting).
 *
 * Sleeping.  A worker that found nothing becomes a *spinner* (nspinning+1)
 * and polls for SPIN rounds; then it stops spinning and parks on an event
 * count (ck_ec32, multi-producer, our futex ops):
 *
 *     running --nothing found--> spinning --budget spent--> parking
 *        ^                          |                          |
 *        +------- found work -------+     re-check found work  |
 *        +------------------------------------------ woken ----+
 *
 * park():  v = ec.value;  nsleepers += 1 (locked);  [membarrier];
 *          re-check every queue;  if found: nsleepers -= 1, go run it;
 *          ck_ec32_wait(ec, v)  -- returns at once if ec moved past v;
 *          nsleepers -= 1.
 * submit(): publish the task;  if nspinning == 0 && nsleepers > 0 (two
 *          plain loads): ck_ec32_inc(ec) -- a futex wake only if someone
 *          really sleeps in ck_ec.
 *
 * Why no wake-up is lost.  The danger is a submitter that reads
 * nsleepers == 0 (so does not wake) while a worker that has already
 * re-checked the queues (and found nothing) goes to sleep.  That needs the
 * submitter's load of nsleepers to be ordered before the parker's increment
 * AND the parker's re-check to be ordered before the submitter's publish:
 * a store->load cycle (Dekker).  We break it on the sleeping side:
 *  - from outside, publication is the CAS of the injection push: a locked
 *    instruction, a full barrier on x86 (ck_pr_fence_atomic_load makes it
 *    one elsewhere), so the submitter's loads come after its publication;
 *    the parker's increment is locked too, so its re-check comes after it.
 *    One of the two sees the other.
 *  - from a worker, publication is a plain store of the deque's bottom (or
 *    of a split deque's TS word after all was stolen; a grow is a CAS), and
 *    the check is a plain load (the hot path pays nothing).  The parker pays
 *    instead: after its increment it calls membarrier(PRIVATE_EXPEDITED),
 *    which runs a full barrier on every thread of the process: the pusher's
 *    store is visible to the re-check, or its later load sees the increment.
 *    If the kernel refuses membarrier, a missed wake-up here only costs
 *    parallelism, never progress: the task sits in the pusher's own deque and
 *    the pusher runs it before it can park itself (it pops its own deque
 *    first), and its next push wakes the sleeper.
 *  - a spinner counts as awake: the submitter skips the wake-up because it
 *    saw nspinning > 0; that spinner either finds the task, or stops
 *    spinning (locked decrement) and parks, re-checking after its locked
 *    increment: the same argument applies.
 *  - the event count closes the last gap: the parker read v before its
 *    re-check, so a wake-up sent at any time after that changes the value
 *    and ck_ec32_wait returns at once instead of sleeping.
 * When a spinner finds work and was the last spinner while others sleep, it
 * wakes one, so parallelism ramps up one worker at a time (as Go does).
 * ck_ec wakes every sleeper (futex wake-all); those that find nothing park
 * again.
 *
 * Shutdown.  The core refuses submits from other threads once destroy has
 * begun and calls ops->destroy only after every such submit has returned.
 * Tasks still running on workers may submit (their deque, or the injection
 * queue on overflow): intake from workers stays open until the end, so
 * fork-join work in flight completes.  destroy sets STOPPING, bumps the
 * event count, and joins.  A worker exits only when STOPPING is set and its
 * park re-check finds every queue empty; work a still-running worker creates
 * later lands in that worker's own deque (or the injection queue, which it
 * checks too), so it runs it before it exits.
 *
 * Counters are written by their worker alone (ck_pr stores, no lock) and
 * read by stats() as a snapshot.  A task counts as submitted when it enters
 * a worker's deque (pushed there by a task, or moved there from the
 * injection queue), so outside submitters touch no shared counter.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pthread_setname_np; before ck_ec.h (POSIX clocks) */
#endif

#include <ck_ec.h>
#include <ck_pr.h>
#include <ck_stack.h>
#include <limits.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "fut.h"

#include "pool_impl.h"

/* Memory comes from fut_alloc/fut_free (the application's allocator), so
 * fut_set_allocator and failure injection cover the pool too. */
#define DEFAULT_CAPACITY 4096u
#define DEFAULT_SPIN 1000u
#define MAX_THREADS 4096u
#define MAX_CAPACITY (1u << 30)

/* The worker this thread is, or NULL (pool_impl.h). */
_Thread_local struct worker *fut__pool_me
    __attribute__((tls_model("initial-exec")));
/* &fut__pool_me->split.o while that is set (<fut/pool.h>'s inline
 * fut_group_init). */
_Thread_local fut__gq_t *fut__group_self
    __attribute__((tls_model("initial-exec")));

/* ---- ck_ec platform ops: the kit's futex calls and CLOCK_MONOTONIC ----- */

static int ec_gettime(const struct ck_ec_ops *ops, struct timespec *out)
{
    (void)ops;
    return clock_gettime(CLOCK_MONOTONIC, out);
}

static void ec_wait32(const struct ck_ec_wait_state *st, const uint32_t *addr,
                      uint32_t expected, const struct timespec *deadline)
{
    (void)st;
    /* ck_ec passes an absolute CLOCK_MONOTONIC deadline (ec_gettime's
     * clock, fut_now_ns()'s).  Any early return is fine: ck_ec re-checks. */
    fut_kit_park(addr, expected,
                 deadline ? (uint64_t)deadline->tv_sec * 1000000000u +
                                (uint64_t)deadline->tv_nsec
                          : UINT64_MAX);
}

static void ec_wake32(const struct ck_ec_ops *ops, const uint32_t *addr)
{
    (void)ops;
    fut_kit_wake(addr, INT_MAX);
}

static const struct ck_ec_ops ec_ops = {
    .gettime = ec_gettime,
    .wait32 = ec_wait32,
    .wake32 = ec_wake32,
};

static const struct ck_ec_mode ec_mode = {
    .ops = &ec_ops,
    .single_producer = false,
};

/* ---- small helpers ------------------------------------------------------ */

static uint64_t next_rand(uint64_t *s)
{
    uint64_t x = *s;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static void full_barrier_everywhere(struct pool *p)
{
    if (p->membarrier)
        syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
}

/* Wakes sleepers (all of them: ck_ec is wake-all).  Any thread.
 * WAKE_PENDING keeps a burst of submits from sending one wake-up each
 * while the first one is still on its way (a sleeper takes microseconds to
 * run again, a submit nanoseconds): only the submitter that flips it 0->1
 * bumps the event count.  Every worker clears it in park() right AFTER it
 * reads the event count (v), and before its announce and re-check.  Why a
 * submit S skipped because the flag was set cannot strand its task: the
 * flag was set by a bump B that S's load saw.  A worker that later sleeps
 * either read v before B (its wait returns at once, and it loops and
 * re-checks), or read v after B and then cleared the flag after S's load
 * saw it set; its locked increment and re-check come after that, and S
 * published before its load, so the re-check sees S's task.
 * Two wrong placements, both found with tests/model (spin) and kept there
 * as broken variants: clearing on the way out of the wait (a worker that
 * leaves through the re-check never clears), and clearing before reading
 * v (two workers can both read v after B, find nothing, and sleep while
 * the flag stays set, so every later submit skips its wake-up). */
void fut__pool_wake(struct pool *p, uint64_t *counter)
{
    if (ck_pr_load_uint(&p->wake_pending) != 0 ||
        !ck_pr_cas_uint(&p->wake_pending, 0, 1))
        return;
    ck_ec32_inc(&p->ec, &ec_mode); /* locked; pairs with ck_ec32_wait */
    if (counter != NULL)
        count(counter);
    else
        ck_pr_inc_64(&p->ext_wakeups);
}

/* Wakes unconditionally (shutdown). */
static void wake_all(struct pool *p)
{
    ck_ec32_inc(&p->ec, &ec_mode); /* pairs with ck_ec32_wait */
}

static void inject_push(struct pool *p, fut_task_t *t)
{
    /* fut_task_t and ck_stack_entry_t are both a lone next pointer. */
    stack_push(&p->inject, (ck_stack_entry_t *)(void *)t);
    /* The CAS above is the publication; make it a full barrier before
     * maybe_wake's loads (free on x86).  Pairs with park's increment. */
    ck_pr_fence_atomic_load();
}

/* Park's re-check: pairs with the CAS of inject_push (a submit published
 * before our locked increment of nsleepers is seen here). */
static bool inject_nonempty(struct pool *p)
{
    return ck_pr_load_ptr(&p->inject.head) != NULL ||
           ck_pr_load_ptr(&p->ginject.head) != NULL;
}

/* ---- running ------------------------------------------------------------ */

/* Moves a private chain into the deque while it has room; TAG marks group
 * children.  The link is read before the push: once pushed, a thief may run
 * (and free) the entry. */
static void refill_chain(struct worker *w, ck_stack_entry_t **chain,
                         uintptr_t tag)
{
    while (*chain != NULL) {
        ck_stack_entry_t *next = (*chain)->next;

        if (!fut__deque_push(&w->dq, (void *)((uintptr_t)*chain | tag)))
            return;
        if (tag == 0)
            count(&w->c.submitted); /* counted here, not by the submitter */
        *chain = next;
    }
}

static void refill(struct worker *w)
{
    refill_chain(w, &w->chain, 0);
    refill_chain(w, &w->gchain, GROUP_TAG);
}

/* Takes a whole injection stack (newest first) into a chain and the deque:
 * pushing in that order leaves the oldest at the bottom, which this worker
 * pops first (thieves take the newest). */
static bool take_stack(struct worker *w, ck_stack_t *st,
                       ck_stack_entry_t **chain)
{
    ck_stack_entry_t *batch;

    /* Plain load first, no xchg when empty; pairs with inject_push's CAS
     * (a stale NULL only delays the batch to the next look). */
    if (*chain != NULL || ck_pr_load_ptr(&st->head) == NULL)
        return false;
    batch = ck_stack_batch_pop_upmc(st);
    if (batch == NULL)
        return false;
    FUT__DQ_ACQUIRE(st); /* pairs with the release before the push */
    count(&w->c.batches);
    *chain = batch;
    return true;
}

static bool take_batch(struct worker *w)
{
    struct pool *p = w->pool;
    bool got = take_stack(w, &p->inject, &w->chain);

    got |= take_stack(w, &p->ginject, &w->gchain);
    if (got)
        refill(w);
    return got;
}

static void *steal_any(struct worker *w)
{
    struct pool *p = w->pool;
    unsigned n = p->nworkers, start, i;

    if (n < 2)
        return NULL;
    start = (unsigned)(next_rand(&w->rng) % n);
    for (i = 0; i < n; i++) {
        struct worker *v = &p->workers[(start + i) % n];
        bool lost;
        void *e;

        if (v == w)
            continue;
        /* Group children first: fork-join work, and the owner is told
         * (movesplit) when there is none to share. */
        lost = false;
        e = fut__split_steal(&v->split, &lost);
        if (e == NULL && lost)
            e = fut__split_steal(&v->split, &lost);
        if (e != NULL) {
            count(&w->c.steals);
            return (void *)((uintptr_t)e | GROUP_TAG);
        }
        e = fut__deque_steal(&v->dq, &lost);
        if (e == NULL && lost)
            e = fut__deque_steal(&v->dq, &lost); /* there was work: retry */
        if (e != NULL) {
            count(&w->c.steals);
            return e;
        }
        count(&w->c.steal_failures);
    }
    return NULL;
}

/* One look everywhere, cheapest first.  Owner of W only. */
void *fut__pool_find_work(struct worker *w)
{
    void *e = fut__deque_pop(&w->dq);

    if (e != NULL)
        return e;
    if (w->chain != NULL || w->gchain != NULL) {
        refill(w);
        if ((e = fut__deque_pop(&w->dq)) != NULL)
            return e;
    }
    /* Steal before taking a batch: while another worker holds the last
     * batch in its deque, sharing it beats grabbing the injection stack's
     * head (a line the outside submitters write) a few tasks at a time. */
    if ((e = steal_any(w)) != NULL)
        return e;
    if (take_batch(w) && (e = fut__deque_pop(&w->dq)) != NULL)
        return e;
    return NULL;
}

/* Whether any queue holds work (the park re-check).  Any worker. */
static bool work_visible(struct pool *p)
{
    unsigned i;

    if (inject_nonempty(p))
        return true;
    for (i = 0; i < p->nworkers; i++)
        if (fut__deque_size(&p->workers[i].dq) != 0 ||
            fut__split_visible(&p->workers[i].split))
            return true;
    return false;
}

/* ---- idling ------------------------------------------------------------- */

/* Spins up to the budget looking for work; returns it or NULL. */
static void *spin_for_work(struct worker *w)
{
    struct pool *p = w->pool;
    void *e = NULL;
    unsigned i;

    /* Pairs with maybe_wake's plain load: while we count as spinning, a
     * submitter leaves the wake-up to us. */
    ck_pr_inc_uint(&p->nspinning);
    for (i = 0; i < p->spin && e == NULL; i++) {
        e = fut__pool_find_work(w);
        if (e == NULL)
            ck_pr_stall();
    }
    /* Locked: the decrement is ordered before park's re-check.  Pairs with
     * the submitters' plain load of nspinning in maybe_wake. */
    if (ck_pr_faa_uint(&p->nspinning, (unsigned)-1) == 1 && e != NULL &&
        ck_pr_load_uint(&p->nsleepers) != 0)
        fut__pool_wake(p, &w->c.wakeups); /* last spinner got work: ramp up */
    return e;
}

/* Parks until woken.  Returns false when the pool is stopping and there is
 * nothing left to do (the worker exits). */
static bool park(struct worker *w)
{
    struct pool *p = w->pool;
    uint32_t v;

    v = ck_ec32_value(&p->ec); /* acquire; before the re-check */
    /* Re-arm wake-ups (see fut__pool_wake()), only now that V is read: a
     * wake-up skipped because the flag was still set was sent before this
     * point, so V already counts it... and any submit after the clear bumps
     * the count past V.  The locked increment of nsleepers below makes this
     * store visible before the re-check. */
    ck_pr_store_uint(&p->wake_pending, 0);

    /* Locked: orders the increment before the re-check.  Pairs with
     * maybe_wake's plain load of nsleepers (see the protocol). */
    ck_pr_inc_uint(&p->nsleepers);
    full_barrier_everywhere(p);
    if (w->chain != NULL || w->gchain != NULL || work_visible(p)) {
        ck_pr_dec_uint(&p->nsleepers);
        return true;
    }
    if (ck_pr_load_int(&p->stopping)) { /* pairs with destroy's store */
        ck_pr_dec_uint(&p->nsleepers);
        return false;
    }
    count(&w->c.parks);
    ck_ec32_wait(&p->ec, &ec_mode, v, NULL);
    ck_pr_dec_uint(&p->nsleepers); /* pairs with maybe_wake's load */
    return true;
}

/* The scheduler loop of one worker.  Runs until the pool stops. */
static void *worker_main(void *arg)
{
    struct worker *w = arg;

    fut__pool_me = w;
    fut__group_self = &w->split.o;
    for (;;) {
        void *e = fut__pool_find_work(w);

        if (e == NULL)
            e = spin_for_work(w);
        if (e != NULL) {
            run_entry(w, e);
            continue;
        }
        if (!park(w))
            break;
    }
    fut__pool_me = NULL;
    fut__group_self = NULL;
    return NULL;
}

/* ---- ops ---------------------------------------------------------------- */

static int pool_submit(void *impl, fut_task_t *task)
{
    struct pool *p = impl;
    struct worker *w = fut__pool_me;

    if (w != NULL && w->pool == p) {
        if (fut__deque_push(&w->dq, task)) {
            count(&w->c.submitted);
            maybe_wake(p, &w->c.wakeups);
            return 0;
        }
        inject_push(p, task); /* overflow; counted when taken */
        maybe_wake(p, &w->c.wakeups);
        return 0;
    }
    /* From outside.  Not counted here (a shared counter would cost a
     * locked instruction per submit): the worker that takes it from the
     * injection queue counts it. */
    inject_push(p, task);
    maybe_wake(p, NULL);
    return 0;
}

static bool pool_try_run_one(void *impl)
{
    struct worker *w = fut__pool_me;
    void *e;

    if (w == NULL || w->pool != impl)
        return false;
    e = fut__pool_find_work(w);
    if (e == NULL)
        return false;
    run_entry(w, e);
    return true;
}

/* ops->take: TASK is on top of our own deque when nothing pushed after it
 * is still there (fork-join: the parent computed its other half and now
 * waits for the child it spawned).  The peek is a plain load of our own
 * slot; the pop then settles the race with thieves as any pop does.  The
 * core runs the task; it counts as run here. */
static bool pool_take(void *impl, fut_task_t *task)
{
    struct worker *w = fut__pool_me;

    if (w == NULL || w->pool != impl || !fut__deque_owns_top(&w->dq, task) ||
        fut__deque_pop(&w->dq) == NULL)
        return false;
    count(&w->c.run);
    return true;
}

/* ops->owns_thread: the calling thread is one of our workers, whatever it
 * runs (a group child, a fut_inline() continuation, a loop's run): destroy
 * from there would join the thread it runs on. */
static bool pool_owns_thread(void *impl)
{
    struct worker *w = fut__pool_me;

    return w != NULL && w->pool == impl;
}

static void add_counters(fut_stats_t *out, const struct counters *c)
{
    /* Pairs with count()'s stores: untorn, possibly a little stale. */
    out->tasks_run += ck_pr_load_64((uint64_t *)&c->run);
    out->tasks_submitted += ck_pr_load_64((uint64_t *)&c->submitted);
    out->steals += ck_pr_load_64((uint64_t *)&c->steals);
    out->steal_failures += ck_pr_load_64((uint64_t *)&c->steal_failures);
    out->parks += ck_pr_load_64((uint64_t *)&c->parks);
    out->wakeups += ck_pr_load_64((uint64_t *)&c->wakeups);
    out->injection_batches += ck_pr_load_64((uint64_t *)&c->batches);
}

static int pool_stats(void *impl, fut_stats_t *out)
{
    struct pool *p = impl;
    unsigned i;

    memset(out, 0, sizeof *out);
    for (i = 0; i < p->nworkers; i++) {
        add_counters(out, &p->workers[i].c);
        /* Written by the owner's inline wait (<fut/pool.h>). */
        out->tasks_run += ck_pr_load_64(&p->workers[i].split.o.run_local);
    }
    out->wakeups += ck_pr_load_64(&p->ext_wakeups);
    out->workers = p->nworkers;
    return 0;
}

static void pool_free(struct pool *p)
{
    unsigned i;

    if (p->workers != NULL)
        for (i = 0; i < p->nworkers; i++)
            if (p->workers[i].slots != NULL) {
                fut_free(p->workers[i].slots);
                fut_free(p->workers[i].gslots);
            }
    if (p->workers_mem != NULL)
        fut_free(p->workers_mem);
    fut_free(p->mem);
}

/* Stops and joins N started workers. */
static void stop_workers(struct pool *p, unsigned n)
{
    unsigned i;

    /* Store then a locked inc: a worker that read STOPPING == 0 in park
     * read the event count before it, so it cannot sleep through this. */
    ck_pr_store_int(&p->stopping, 1);
    ck_pr_fence_store_atomic();
    wake_all(p);
    for (i = 0; i < n; i++)
        pthread_join(p->workers[i].thread, NULL);
}

static void pool_destroy(void *impl)
{
    struct pool *p = impl;

    stop_workers(p, p->started);
    pool_free(p);
}

/* In a child process, on the parent's pool: its workers are not there, so
 * only the memory goes (the tasks in the deques are the parent's). */
static void pool_destroy_forked(void *impl)
{
    pool_free(impl);
}

const fut_executor_ops_t fut__pool_ops = {
    .name = "pool",
    .flags = 0,
    .submit = pool_submit,
    .try_run_one = pool_try_run_one,
    .take = pool_take,
    .destroy = pool_destroy,
    .stats = pool_stats,
    .destroy_forked = pool_destroy_forked,
    .owns_thread = pool_owns_thread,
};

/* ---- creation ----------------------------------------------------------- */

static int check_opts(const fut_pool_opts_t *o, unsigned *threads, size_t *cap,
                      unsigned *spin)
{
    long ncpu;

    *threads = o->threads;
    if (*threads == 0) {
        ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        *threads = ncpu > 0 ? (unsigned)ncpu : 1;
    }
    if (*threads > MAX_THREADS)
        return FUT_EINVAL;
    *cap = o->deque_capacity ? o->deque_capacity : DEFAULT_CAPACITY;
    if (*cap < 2 || *cap > MAX_CAPACITY || (*cap & (*cap - 1)) != 0)
        return FUT_EINVAL;
    *spin = o->spin ? o->spin : DEFAULT_SPIN;
    return 0;
}

static int start_worker(struct pool *p, unsigned i)
{
    struct worker *w = &p->workers[i];
    char name[16];
    int rc;

    rc = pthread_create(&w->thread, NULL, worker_main, w);
    if (rc != 0)
        return -rc;
    /* 15 visible characters at most (the kernel's limit): 10 + "-" + 4. */
    snprintf(name, sizeof name, "%.10s-%u", p->name, i % 10000u);
    pthread_setname_np(w->thread, name); /* best effort */
    return 0;
}

static int init_workers(struct pool *p, size_t cap)
{
    unsigned i;

    p->workers_mem =
        fut_alloc(sizeof(struct worker) * p->nworkers + FUT__CACHELINE);
    if (p->workers_mem == NULL)
        return FUT_ENOMEM;
    p->workers =
        (struct worker *)(((uintptr_t)p->workers_mem + FUT__CACHELINE - 1) &
                          ~(uintptr_t)(FUT__CACHELINE - 1));
    memset(p->workers, 0, sizeof(struct worker) * p->nworkers);
    for (i = 0; i < p->nworkers; i++) {
        struct worker *w = &p->workers[i];

        w->slots = fut_alloc(sizeof(void *) * cap);
        if (w->slots == NULL)
            return FUT_ENOMEM;
        w->gslots = fut_alloc(sizeof(fut_group_task_t *) * cap);
        if (w->gslots == NULL)
            return FUT_ENOMEM;
        fut__deque_init(&w->dq, w->slots, cap);
        fut__split_init(&w->split, w->gslots, (uint32_t)cap);
        w->split.o.pool = p;
        w->split.o.worker = w;
        w->pool = p;
        w->index = i;
        w->rng = 0x9E3779B97F4A7C15ull * (i + 1) | 1;
    }
    return 0;
}

int fut_pool_create(fut_executor_t **out, const fut_pool_opts_t *opts)
{
    static const fut_pool_opts_t defaults;
    struct pool *p;
    unsigned threads, spin, i;
    size_t cap;
    int rc;

    if (out == NULL)
        return FUT_EINVAL;
    *out = NULL;
    if (opts == NULL)
        opts = &defaults;
    if ((rc = check_opts(opts, &threads, &cap, &spin)) != 0)
        return rc;
    void *mem = fut_alloc(sizeof *p + FUT__CACHELINE);
    if (mem == NULL)
        return FUT_ENOMEM;
    p = (struct pool *)(((uintptr_t)mem + FUT__CACHELINE - 1) &
                        ~(uintptr_t)(FUT__CACHELINE - 1));
    memset(p, 0, sizeof *p);
    p->mem = mem;
    ck_stack_init(&p->inject);
    ck_stack_init(&p->ginject);
    ck_ec32_init(&p->ec, 0);
    p->nworkers = threads;
    p->spin = spin;
    p->capacity = cap;
    snprintf(p->name, sizeof p->name, "%s",
             opts->name ? opts->name : "fut-pool");
    p->membarrier =
        syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0,
                0) == 0;
    if ((rc = init_workers(p, cap)) != 0 ||
        (rc = fut_executor_create(out, &fut__pool_ops, p)) != 0) {
        pool_free(p);
        return rc;
    }
    p->handle = *out;
    for (i = 0; i < p->nworkers; i++)
        p->workers[i].split.o.handle = p->handle;
    for (i = 0; i < threads; i++) {
        if ((rc = start_worker(p, i)) != 0) {
            /* Stops and joins the STARTED workers, frees everything. */
            fut_executor_destroy(*out);
            *out = NULL;
            return rc;
        }
        p->started = i + 1;
    }
    return 0;
}

int fut_pool_worker_stats(const fut_executor_t *pool, unsigned worker,
                          fut_stats_t *out)
{
    struct pool *p;
    /* The core's guard: P cannot be freed under us by a racing destroy. */
    int rc = fut_executor_enter((fut_executor_t *)pool, &fut__pool_ops,
                                (void **)&p);

    if (rc != 0)
        return rc;
    if (out == NULL || worker >= p->nworkers) {
        fut_executor_leave((fut_executor_t *)pool);
        return FUT_EINVAL;
    }
    memset(out, 0, sizeof *out);
    add_counters(out, &p->workers[worker].c);
    out->tasks_run += ck_pr_load_64(&p->workers[worker].split.o.run_local);
    out->workers = 1;
    fut_executor_leave((fut_executor_t *)pool);
    return 0;
}
