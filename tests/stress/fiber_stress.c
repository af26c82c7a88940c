/* Fibers suspending and resuming across threads, cancelled and shut down
 * at random: the park word's races (fiber.c, THE PARK WORD).
 *
 *   fiber_stress [rounds]    default 40 rounds (quick)
 *   fiber_stress --long      1000 rounds
 *
 * Each round makes a 2-worker pool and FIBERS fibers on it.  Each fiber
 * awaits STEPS promises in turn, which two settler threads settle as soon
 * as they are published (so a wake often races the fiber's own switch
 * out: a claim while ARMED, or right after the commit), and yields between
 * steps.  A canceller thread cancels some fibers' futures meanwhile; every
 * few rounds the pool is destroyed while fibers are still suspended.
 * Checks: every fiber's future settles; a fulfilled fiber saw every step's
 * value in order (its context survived every switch); a fiber that saw a
 * wait fail saw FUT_ECANCELED or FUT_ESHUTDOWN only, and every wait after
 * that failed too.  A commit that let a context be resumed before it was
 * saved, or a claim that woke the wrong wait, crashes or breaks the order.
 * Exit status 0 on success; the first violation prints and exits 1.
 *
 * Built with -DFUT_STRESS_HOOKS (fiber_stress_hooks, tests/SConscript:
 * lib/fiber.c compiled with the same switch), every switch out of a fiber
 * first spins ~1 us, its context not yet saved: claims then often land
 * while the fiber is ARMED, and the commit's failure path runs.  Built so
 * and with -DFUT_FIBER_BROKEN_HANDOFF as well (fiber_stress_broken, built
 * only when asked for: `scons -Q build/release/tests/stress/
 * fiber_stress_broken`), the commit is made on the fiber's own stack
 * before the switch, and a claim in that window resumes a context still
 * being saved: this program must then fail (a crash, a step out of order
 * or a double end). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fut.h>

#define FIBERS 64
#define STEPS 20

struct slot {
    _Atomic(fut_promise_t *) p; /* published by the fiber, taken by a settler */
    /* The step's value.  Atomic: a fiber whose wait was cancelled goes on
     * to its next step (and writes v) while a settler that took the old
     * promise may still read it (its value is then never checked). */
    _Atomic int64_t v;
};

struct fiber_arg {
    struct slot slot;
    int failed_at; /* first step whose wait failed, or STEPS */
    int err;
    bool bad;
};

static struct fiber_arg args[FIBERS];

#ifdef FUT_STRESS_HOOKS
extern void (*fut__stress_switch_out)(void); /* lib/fiber.c */

/* ~1 us of a fiber about to switch out (see the header). */
static void switching_out(void)
{
    for (int i = 0; i < 3000; i++)
        atomic_signal_fence(memory_order_seq_cst);
}
#endif
static atomic_int stop;

static fut_result_t body(void *arg)
{
    struct fiber_arg *a = arg;
    a->failed_at = STEPS;
    for (int i = 0; i < STEPS; i++) {
        fut_promise_t *p;
        fut_t *f = fut_promise_new(&p);
        /* Relaxed: published by the release store of p below. */
        atomic_store_explicit(&a->slot.v, i, memory_order_relaxed);
        /* Release: the settler's acquire exchange sees v. */
        atomic_store_explicit(&a->slot.p, p, memory_order_release);
        int rc = fut_await(f, NULL);
        if (rc == 0 && (fut_state(f) != FUT_FULFILLED ||
                        fut_value_i64(f) != i || a->failed_at < STEPS))
            a->bad = true;
        if (rc != 0 && a->failed_at == STEPS) {
            a->failed_at = i;
            a->err = rc;
        }
        if (rc != 0 && rc != FUT_ECANCELED && rc != FUT_ESHUTDOWN)
            a->bad = true;
        if (rc != 0) { /* the promise may still be out: take it back */
            fut_promise_t *q = atomic_exchange(&a->slot.p, NULL);
            if (q)
                fut_promise_drop(q);
        }
        fut_release(f);
        fut_yield();
    }
    return fut_ok_i64(STEPS);
}

static void *settler(void *unused)
{
    (void)unused;
    unsigned seed = (unsigned)(uintptr_t)&seed;
    while (!atomic_load(&stop)) {
        int i = (int)(rand_r(&seed) % FIBERS);
        /* Acquire: pairs with the fiber's release store. */
        fut_promise_t *p = atomic_exchange_explicit(&args[i].slot.p, NULL,
                                                    memory_order_acquire);
        if (p)
            fut_promise_settle(p, fut_ok_i64(atomic_load_explicit(
                                      &args[i].slot.v, memory_order_relaxed)));
    }
    return NULL;
}

static fut_t *futs[FIBERS];
static _Atomic(fut_t *) cancel_target;

static void *canceller(void *unused)
{
    (void)unused;
    while (!atomic_load(&stop)) {
        fut_t *f = atomic_exchange(&cancel_target, NULL);
        if (f) {
            fut_cancel(f);
            fut_release(f);
        }
    }
    return NULL;
}

static void fail(int round, int i, const char *what)
{
    fprintf(stderr, "fiber_stress: round %d fiber %d: %s\n", round, i, what);
    exit(1);
}

static void one_round(int round, bool destroy_early)
{
    fut_executor_t *pool;
    fut_pool_opts_t o = {.threads = 2};
    if (fut_pool_create(&pool, &o))
        fail(round, -1, "pool_create");
    memset(args, 0, sizeof args);
    atomic_store(&stop, 0);
    pthread_t th[3];
    for (int i = 0; i < FIBERS; i++)
        futs[i] = fut_fiber(pool, body, &args[i], NULL);
    pthread_create(&th[0], NULL, settler, NULL);
    pthread_create(&th[1], NULL, settler, NULL);
    pthread_create(&th[2], NULL, canceller, NULL);
    if (round % 3 == 0)
        atomic_store(&cancel_target, fut_retain(futs[round % FIBERS]));
    if (destroy_early) {
        atomic_store(&stop, 1);
        for (int i = 0; i < 3; i++)
            pthread_join(th[i], NULL);
        fut_executor_destroy(pool);
    } else {
        for (int i = 0; i < FIBERS; i++)
            fut_wait(futs[i], -1);
        atomic_store(&stop, 1);
        for (int i = 0; i < 3; i++)
            pthread_join(th[i], NULL);
        fut_executor_destroy(pool);
    }
    fut_release(atomic_exchange(&cancel_target, NULL));
    for (int i = 0; i < FIBERS; i++) {
        if (fut_state(futs[i]) == FUT_PENDING)
            fail(round, i, "future still pending after destroy");
        if (args[i].bad)
            fail(round, i, "a wait saw the wrong value or error");
        if (fut_state(futs[i]) == FUT_FULFILLED &&
            fut_value_i64(futs[i]) != STEPS)
            fail(round, i, "fulfilled with a wrong value");
        fut_release(futs[i]);
        fut_promise_t *q = atomic_exchange(&args[i].slot.p, NULL);
        if (q)
            fut_promise_drop(q);
    }
}

int main(int argc, char **argv)
{
#ifdef FUT_STRESS_HOOKS
    fut__stress_switch_out = switching_out;
#endif
    int rounds = 40;
    if (argc > 1)
        rounds = strcmp(argv[1], "--long") == 0 ? 1000 : atoi(argv[1]);
    for (int r = 0; r < rounds; r++)
        one_round(r, r % 4 == 3);
    printf("fiber_stress: %d rounds ok\n", rounds);
    return 0;
}
