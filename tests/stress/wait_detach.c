/* Stress for timed waits that give up (lib/wait.c, fut__detach in
 * lib/future.c): waiters take their nodes off a future's list while other
 * threads push continuations on it and the main thread settles it.
 *
 *   wait_detach [threads [rounds]]   default 3 threads, 5000 rounds (quick)
 *   wait_detach --long               4 threads, 100000 rounds
 *
 * Each round the main thread publishes a new pending future F, lets the
 * pollers give up on it a random number of times and settles it.  Each
 * poller polls F with timed waits of 1 to 4000 ns (most give up: their
 * nodes are detached, some from the top of the list, some from below nodes
 * pushed later) and now and then attaches a counting fut_then.  Every callback
 * must run exactly once, every wait must end, and a counting allocator must get
 * every block back: a detach that loses a node (a broken link), a closer that
 * fires a list while it is being unlinked (a missing wait on the D bit) or a
 * missing fence shows as a wrong count, a leak, a crash, or under
 * ThreadSanitizer as a race.  Exit status 0 on success, 1 on the first failure.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fut.h>

enum { MAXT = 16 };

static _Atomic(fut_t *) g_fut; /* this round's future, retained for us */
static atomic_long g_round;    /* bumped after g_fut is published */
static atomic_long g_done;     /* threads finished with this round */
static atomic_long g_attached, g_fired, g_gaveup;
static atomic_long g_live;
static int g_threads;
static long g_rounds;

static void *count_alloc(size_t n)
{
    void *p = malloc(n);
    if (p)
        atomic_fetch_add_explicit(&g_live, 1, memory_order_relaxed);
    return p;
}

static void count_free(void *p)
{
    if (p)
        atomic_fetch_sub_explicit(&g_live, 1, memory_order_relaxed);
    free(p);
}

static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static fut_result_t count_fire(void *arg, fut_t *src)
{
    (void)arg;
    (void)src;
    atomic_fetch_add_explicit(&g_fired, 1, memory_order_relaxed);
    return fut_ok(NULL);
}

static void *poller(void *arg)
{
    uint64_t rng = (uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ull + 1;
    for (long r = 1; r <= g_rounds; r++) {
        /* Acquire: pairs with the main thread's release of the round. */
        while (atomic_load_explicit(&g_round, memory_order_acquire) < r)
            sched_yield(); /* 2 cores: let the others run */
        fut_t *f = atomic_load_explicit(&g_fut, memory_order_relaxed);
        for (;;) {
            if (next_rand(&rng) % 8 == 0) {
                atomic_fetch_add_explicit(&g_attached, 1, memory_order_relaxed);
                fut_release(
                    fut_then(fut_retain(f), fut_inline(), count_fire, NULL));
            }
            if (fut_wait(f, (int64_t)(1 + next_rand(&rng) % 4000)) == 0)
                break;
            atomic_fetch_add_explicit(&g_gaveup, 1, memory_order_relaxed);
        }
        /* Release: our use of F happens before main releases it. */
        atomic_fetch_add_explicit(&g_done, 1, memory_order_release);
    }
    return NULL;
}

static int run(void)
{
    pthread_t th[MAXT];
    for (int i = 0; i < g_threads; i++)
        if (pthread_create(&th[i], NULL, poller, (void *)(uintptr_t)(i + 1))) {
            fprintf(stderr, "wait_detach: pthread_create failed\n");
            return 1;
        }
    uint64_t rng = 88172645463325252ull;
    for (long r = 1; r <= g_rounds; r++) {
        fut_promise_t *p;
        fut_t *f = fut_promise_new(&p);
        atomic_store_explicit(&g_done, 0, memory_order_relaxed);
        atomic_store_explicit(&g_fut, f, memory_order_relaxed);
        atomic_store_explicit(&g_round, r, memory_order_release);
        /* Settle once the pollers gave up a random number of times (0 to
         * 15), so some settles race a detach and most rounds detach. */
        long until = atomic_load_explicit(&g_gaveup, memory_order_relaxed) +
                     (long)(next_rand(&rng) % 16);
        while (atomic_load_explicit(&g_gaveup, memory_order_relaxed) < until)
            sched_yield();
        fut_promise_settle(p, fut_ok_i64(r));
        /* Acquire: pairs with each poller's release of g_done. */
        while (atomic_load_explicit(&g_done, memory_order_acquire) < g_threads)
            sched_yield();
        fut_release(f);
    }
    for (int i = 0; i < g_threads; i++)
        pthread_join(th[i], NULL);
    return 0;
}

int main(int argc, char **argv)
{
    g_threads = 3;
    g_rounds = 5000;
    if (argc > 1 && strcmp(argv[1], "--long") == 0) {
        g_threads = 4;
        g_rounds = 100000;
    } else if (argc > 1) {
        g_threads = atoi(argv[1]);
        if (argc > 2)
            g_rounds = atol(argv[2]);
    }
    if (g_threads < 1 || g_threads > MAXT || g_rounds < 1) {
        fprintf(stderr,
                "usage: wait_detach [threads(1-%d) [rounds]] | "
                "--long\n",
                MAXT);
        return 2;
    }
    fut_set_allocator(count_alloc, count_free);
    if (run())
        return 1;
    fut_set_allocator(NULL, NULL); /* the pollers exited: all blocks back */
    long attached = atomic_load(&g_attached), fired = atomic_load(&g_fired);
    long live = atomic_load(&g_live);
    printf("wait_detach: %d threads, %ld rounds, %ld waits gave up, %ld "
           "callbacks attached, %ld fired, %ld blocks live at the end\n",
           g_threads, g_rounds, atomic_load(&g_gaveup), attached, fired, live);
    if (fired != attached || live != 0) {
        fprintf(stderr, "wait_detach: FAILED\n");
        return 1;
    }
    return 0;
}
