/* Allocation-failure sweep: a counting allocator installed with
 * fut_set_allocator fails the k-th allocation; a scenario using every kind
 * of allocation runs for k = 1, 2, ... until a run completes with no
 * failure injected.  Each run must end with FUT_ENOMEM at the waiter or with
 * success, without a crash, and return every block it took (the live count
 * is checked after everything is released and fut_set_allocator(NULL, NULL)
 * flushed this thread's cache). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <fut.h>

#include "internal.h" /* fut__alloc / fut__free, FUT_ASAN */
#include "testexec.h"

#define USER_ERR (-100999)
#define MS (1000 * 1000ull)

/* The counting allocator that fails on demand: tests/testexec.h. */

/* ---- the scenario ---------------------------------------------------------
 */

typedef struct counts {
    atomic_int task_runs; /* tasks that returned an owned value */
    atomic_int dtors;     /* destructors of those values */
    atomic_int callbacks;
} counts_t;

static fut_result_t task_owned(void *arg)
{
    counts_t *c = arg;
    atomic_fetch_add(&c->task_runs, 1);
    return fut_ok_owned(counted_new(&c->dtors), counted_free);
}

static fut_result_t task_i64(void *arg)
{
    (void)arg;
    return fut_ok_i64(2);
}

static fut_result_t cb_add(void *arg, fut_t *src)
{
    atomic_fetch_add(&((counts_t *)arg)->callbacks, 1);
    return fut_ok_i64(fut_value_i64(src) + 1);
}

static fut_result_t cb_forward(void *arg, fut_t *src)
{
    atomic_fetch_add(&((counts_t *)arg)->callbacks, 1);
    return fut_forward(src);
}

static fut_result_t cb_adopt(void *arg, fut_t *src)
{
    (void)src;
    return fut_adopt(fut_async(fut_inline(), task_owned, arg));
}

static void pause_briefly(void)
{
    struct timespec ts = {0, 20 * 1000};
    nanosleep(&ts, NULL);
}

static void quiesce_timer_thread(void)
{
    for (int i = 0; i < 2; i++) {
        fut_t *s = fut_delay(fut_inline(), 0);
        fut_wait(s, -1);
        fut_release(s);
    }
    struct timespec ts = {0, (TEST_UNDER_SANITIZER ? 20 : 2) * 1000 * 1000};
    nanosleep(&ts, NULL);
}

/* Returns the error the waiter saw (0: success). */
static int scenario(counts_t *c)
{
    int err = 0;
    testexec_opts_t o = {.timers = true, .on_destroy = TESTEXEC_RUN};
    testexec_t *tx = testexec_new(&o, &err);
    if (!tx)
        return err;
    fut_executor_t *ex = testexec_ex(tx);

    enum { N = 8 };
    fut_t *in[N];
    fut_promise_t *p = NULL;
    /* promise, then, catch (on the test executor), finally */
    in[0] = fut_then(fut_promise_new(&p), fut_inline(), cb_add, c);
    in[0] = fut_catch(in[0], ex, cb_forward, c);
    in[0] = fut_finally(in[0], fut_inline(), cb_forward, c);
    /* async inline (owned value) and on the test executor */
    in[1] = fut_async(fut_inline(), task_owned, c);
    in[2] = fut_async(ex, task_i64, NULL);
    /* adopt */
    in[3] = fut_then(fut_ready(fut_ok_i64(1)), ex, cb_adopt, c);
    /* delay on the timer thread, under a timeout that does not fire */
    fut_t *dl = fut_delay(fut_inline(), 1000);
    in[4] = fut_timeout(fut_retain(dl), 3600 * 1000 * MS);
    /* delay on the executor's own timers */
    in[5] = fut_delay(ex, 0);
    /* any of several, with owned values */
    fut_t *a[3] = {fut_ready(fut_fail(USER_ERR)), fut_async(ex, task_owned, c),
                   fut_async(fut_inline(), task_owned, c)};
    in[6] = fut_any(a, 3);
    /* a timeout that does fire (its input is cancelled), caught.  The
     * input's delay is 200x the timeout's own margin: with 2 ms, a thread
     * preempted between the two lines (TSan, a loaded machine) let the
     * delay fire first, and the value check below failed (err 1). */
    fut_t *dl2 = fut_delay(fut_inline(), 200 * MS);
    in[7] =
        fut_catch(fut_timeout(fut_retain(dl2), 1000), fut_inline(), cb_add, c);
    if (p)
        fut_promise_settle(p, fut_ok_i64(41));
    fut_t *all = fut_all(in, N);

    /* Drive the test executor until it has nothing left (its timer is due
     * at once); what remains then runs on the timer thread and inline, so a
     * blocking wait (which allocates its waiter node) finishes the job. */
    uint64_t end = fut_now_ns() + 20000 * MS;
    while ((testexec_pending(tx) > 0 || testexec_timers(tx) > 0) &&
           fut_now_ns() < end) {
        testexec_run_all(tx);
        testexec_fire_timers(tx, fut_now_ns());
        pause_briefly();
    }
    int rc = fut_wait(all, 20000 * MS);
    err = rc ? rc : fut_error(all);
    if (err == 0) {
        /* success: every value is what the scenario computes */
        if (fut_value_i64(fut_input(all, 0)) != 42 ||
            fut_value(fut_input(all, 1)) == NULL ||
            fut_value_i64(fut_input(all, 2)) != 2 ||
            fut_value(fut_input(all, 3)) == NULL ||
            fut_state(fut_input(all, 4)) != FUT_FULFILLED ||
            fut_value(fut_input(all, 6)) == NULL ||
            fut_value_i64(fut_input(all, 7)) != 1)
            err = 1; /* reported as a wrong outcome */
    }
    fut_release(all);
    /* The timer thread must be done before the allocator changes: wait for
     * everything it may hold, then let it fire two sentinels in turn (it
     * fires sequentially, so the second one proves the first fire, and
     * everything before it, returned), then give it a moment to drop its
     * reference to the second. */
    if (fut_wait(dl, 10000 * MS) != 0 || fut_wait(dl2, 10000 * MS) != 0)
        err = 2;
    fut_release(dl);
    fut_release(dl2);
    quiesce_timer_thread();
    if (testexec_destroy(tx, NULL, NULL) != 0)
        err = 3;
    return err;
}

static void test_alloc_failure_sweep(void **state)
{
    (void)state;
    long k;
    long enomem_runs = 0, ok_runs = 0;
    const long max_k = 100000;
    for (k = 1; k < max_k; k++) {
        counts_t c = {0};
        atomic_store(&failalloc_calls, 0);
        atomic_store(&failalloc_live, 0);
        atomic_store(&failalloc_failed, 0);
        atomic_store(&failalloc_at, k);
        fut_set_allocator(failalloc_alloc, failalloc_free);
        int err = scenario(&c);
        fut_set_allocator(NULL, NULL); /* flushes this thread's cache */
        long still = atomic_load(&failalloc_live);
        int injected = atomic_load(&failalloc_failed);
        if (err != 0 && err != FUT_ENOMEM)
            print_message("k=%ld: waiter saw %d (%s)\n", k, err,
                          fut_strerror(err));
        assert_true(err == 0 || err == FUT_ENOMEM);
        if (still != 0)
            print_message("k=%ld: %ld blocks leaked\n", k, still);
        assert_int_equal(still, 0);
        /* every owned value made was destroyed exactly once */
        assert_int_equal(atomic_load(&c.dtors), atomic_load(&c.task_runs));
        if (!injected) {
            assert_int_equal(err, 0); /* nothing failed: must succeed */
            ok_runs++;
            break;
        }
        if (err == FUT_ENOMEM)
            enomem_runs++;
        else
            ok_runs++;
    }
    assert_true(k < max_k);
    assert_true(k > 10); /* the scenario allocates more than a few blocks */
    print_message("alloc sweep: %ld allocations, %ld ENOMEM runs, %ld "
                  "successful runs\n",
                  k - 1, enomem_runs, ok_runs);
}

/* With no failure at all, the scenario leaks nothing either (a baseline the
 * sweep relies on), and runs again cleanly on the same thread. */
static void test_alloc_scenario_without_failure_leaks_nothing(void **state)
{
    (void)state;
    for (int i = 0; i < 3; i++) {
        counts_t c = {0};
        atomic_store(&failalloc_live, 0);
        atomic_store(&failalloc_at, 0);
        fut_set_allocator(failalloc_alloc, failalloc_free);
        int err = scenario(&c);
        fut_set_allocator(NULL, NULL);
        assert_int_equal(err, 0);
        assert_int_equal(atomic_load(&failalloc_live), 0);
        assert_int_equal(c.dtors, c.task_runs);
        /* 3: any's loser queued on the test executor is cancelled when
         * its inline twin wins, so it never runs */
        assert_int_equal(c.task_runs, 3);
    }
}

/* A delay on an executor with its own timers, cancelled: the timer goes
 * back through timer_cancel and one fut_timer_drop, and nothing leaks. */
static void test_cancelled_custom_timer_leaks_nothing(void **state)
{
    (void)state;
    atomic_store(&failalloc_live, 0);
    atomic_store(&failalloc_at, 0);
    fut_set_allocator(failalloc_alloc, failalloc_free);
    testexec_opts_t o = {.timers = true};
    testexec_t *tx = testexec_new(&o, NULL);
    assert_non_null(tx);
    for (int i = 0; i < 5; i++) {
        fut_t *d = fut_delay(testexec_ex(tx), 3600 * 1000 * MS);
        assert_int_equal(fut_cancel(d), 0);
        fut_release(d);
        testexec_fire_timers(tx, 0);
        /* also one cancelled by a timeout settling first */
        fut_promise_t *p;
        fut_t *t = fut_timeout(fut_promise_new(&p), 3600 * 1000 * MS);
        fut_promise_settle(p, fut_ok_i64(1));
        fut_release(t);
        testexec_fire_timers(tx, 0);
    }
    /* one still armed when the executor goes */
    fut_t *d = fut_delay(testexec_ex(tx), 3600 * 1000 * MS);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
    assert_int_equal(fut_error(d), FUT_ESHUTDOWN);
    fut_release(d);
    quiesce_timer_thread();
    fut_set_allocator(NULL, NULL);
    assert_int_equal(atomic_load(&failalloc_live), 0);
}

/* ---- blocks freed on another thread go home (alloc.c) ---------------------
 * A block made on thread A and freed on thread B goes back to A's stack,
 * and A serves it again once its own list is empty.  Under AddressSanitizer
 * there are no slabs: every block goes straight back, so only the
 * accounting is checked there. */
#ifdef FUT_ASAN
#define SLABS 0
#else
#define SLABS 1
#endif

enum { NB = 256, BLOCK_USE = 120 };

typedef struct blocks {
    void *b[NB];
} blocks_t;

static void *free_all_thread(void *arg)
{
    blocks_t *bs = arg;
    for (int i = 0; i < NB; i++)
        fut__free(bs->b[i], BLOCK_USE);
    return NULL; /* exit sends the last partial batch home */
}

static void *alloc_all_thread(void *arg)
{
    blocks_t *bs = arg;
    for (int i = 0; i < NB; i++)
        bs->b[i] = fut__alloc(BLOCK_USE);
    return NULL; /* exits with every block still out */
}

static void run_thread(void *(*fn)(void *), void *arg)
{
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, fn, arg), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
}

static bool among(const blocks_t *bs, const void *p)
{
    for (int i = 0; i < NB; i++)
        if (bs->b[i] == p)
            return true;
    return false;
}

static void counting_allocator_on(void)
{
    fut_set_allocator(NULL, NULL); /* empties every cache */
    atomic_store(&failalloc_calls, 0);
    atomic_store(&failalloc_live, 0);
    atomic_store(&failalloc_at, 0);
    fut_set_allocator(failalloc_alloc, failalloc_free);
}

static void test_cross_thread_frees_come_home(void **state)
{
    (void)state;
    static blocks_t made, again;
    counting_allocator_on();
    for (int i = 0; i < NB; i++) {
        made.b[i] = fut__alloc(BLOCK_USE);
        assert_non_null(made.b[i]);
    }
    assert_int_equal(atomic_load(&failalloc_calls), NB);
    run_thread(free_all_thread, &made); /* B frees them all and exits */
    assert_int_equal(atomic_load(&failalloc_live), SLABS ? NB : 0);
    for (int i = 0; i < NB; i++) {
        again.b[i] = fut__alloc(BLOCK_USE);
        assert_non_null(again.b[i]);
        if (SLABS)
            assert_true(among(&made, again.b[i])); /* the very same block */
    }
    /* with slabs, nothing new was asked of the allocator */
    assert_int_equal(atomic_load(&failalloc_calls), SLABS ? NB : 2 * NB);
    for (int i = 0; i < NB; i++)
        fut__free(again.b[i], BLOCK_USE);
    fut_set_allocator(NULL, NULL);
    assert_int_equal(atomic_load(&failalloc_live), 0);
}

/* A thread exits while blocks it made are still out: they are freed here
 * afterwards, do not pile up on the exited thread's (orphaned) home but
 * join this thread's list and are served here again; a new thread (which
 * adopts the orphan) makes and frees blocks too, and fut_set_allocator
 * returns every block. */
static void test_blocks_outliving_their_thread_are_returned(void **state)
{
    (void)state;
    static blocks_t made, again;
    counting_allocator_on();
    run_thread(alloc_all_thread, &made); /* A makes NB blocks and exits */
    assert_int_equal(atomic_load(&failalloc_live), NB);
    for (int i = 0; i < NB; i++) {
        assert_non_null(made.b[i]);
        fut__free(made.b[i], BLOCK_USE);
    }
    long calls = atomic_load(&failalloc_calls);
    for (int i = 0; i < NB; i++) {
        again.b[i] = fut__alloc(BLOCK_USE);
        assert_non_null(again.b[i]);
    }
    if (SLABS) {
        int reused = 0;
        for (int i = 0; i < NB; i++)
            reused += among(&made, again.b[i]);
        /* every one: NB is a multiple of BATCH_MAX (32), so no partial
         * batch is left over */
        assert_int_equal(reused, NB);
        assert_int_equal(atomic_load(&failalloc_calls), calls);
    }
    for (int i = 0; i < NB; i++)
        fut__free(again.b[i], BLOCK_USE);
    run_thread(alloc_all_thread, &again); /* C adopts A's home */
    for (int i = 0; i < NB; i++)
        fut__free(again.b[i], BLOCK_USE);
    run_thread(alloc_all_thread, &again); /* and D adopts C's */
    run_thread(free_all_thread, &again);
    fut_set_allocator(NULL, NULL);
    assert_int_equal(atomic_load(&failalloc_live), 0);
}

/* A freeing thread sends a full batch (BATCH_MAX, 32 blocks) home at once,
 * not when it exits: the home thread serves the blocks again while the
 * freeing thread still runs. */
enum { TWO_BATCHES = 64 };

static pthread_barrier_t g_freed, g_served;

static void *free_two_batches_and_wait(void *arg)
{
    blocks_t *bs = arg;
    for (int i = 0; i < TWO_BATCHES; i++)
        fut__free(bs->b[i], BLOCK_USE);
    pthread_barrier_wait(&g_freed);
    pthread_barrier_wait(&g_served); /* alive until the home took them */
    return NULL;
}

static void test_full_batches_go_home_while_their_thread_runs(void **state)
{
    (void)state;
    static blocks_t made, again;
    counting_allocator_on();
    for (int i = 0; i < TWO_BATCHES; i++)
        made.b[i] = fut__alloc(BLOCK_USE);
    long calls = atomic_load(&failalloc_calls);
    pthread_barrier_init(&g_freed, NULL, 2);
    pthread_barrier_init(&g_served, NULL, 2);
    pthread_t th;
    assert_int_equal(
        pthread_create(&th, NULL, free_two_batches_and_wait, &made), 0);
    pthread_barrier_wait(&g_freed);
    for (int i = 0; i < TWO_BATCHES; i++)
        again.b[i] = fut__alloc(BLOCK_USE);
    pthread_barrier_wait(&g_served);
    assert_int_equal(pthread_join(th, NULL), 0);
    if (SLABS) {
        for (int i = 0; i < TWO_BATCHES; i++)
            assert_true(among(&made, again.b[i]));
        assert_int_equal(atomic_load(&failalloc_calls), calls);
    }
    for (int i = 0; i < TWO_BATCHES; i++)
        fut__free(again.b[i], BLOCK_USE);
    pthread_barrier_destroy(&g_freed);
    pthread_barrier_destroy(&g_served);
    fut_set_allocator(NULL, NULL);
    assert_int_equal(atomic_load(&failalloc_live), 0);
}

/* Blocks start on a cache line (alloc.c: block_alloc), whatever the
 * allocator's own alignment, so a future's first line is one line.  This
 * allocator's memory starts 8 bytes past a line, the worst case. */
static void *misaligned_alloc(size_t n)
{
    char *base = failalloc_alloc(n + 8 + 63);
    if (!base)
        return NULL;
    char *p = base + 8 + (-(uintptr_t)base & 63);
    ((char **)p)[-1] = base;
    return p;
}

static void misaligned_free(void *p)
{
    failalloc_free(((char **)p)[-1]);
}

static void test_blocks_start_on_a_cache_line(void **state)
{
    (void)state;
    static blocks_t made;
    counting_allocator_on();
    fut_set_allocator(misaligned_alloc, misaligned_free);
    for (int i = 0; i < NB; i++) {
        made.b[i] = fut__alloc(BLOCK_USE);
        assert_non_null(made.b[i]);
        if (SLABS)
            assert_int_equal((uintptr_t)made.b[i] % 64, 0);
        memset(made.b[i], 0xab, BLOCK_USE); /* what a block's user may write */
    }
    for (int i = 0; i < NB; i++)
        fut__free(made.b[i], BLOCK_USE);
    fut_set_allocator(NULL, NULL);
    assert_int_equal(atomic_load(&failalloc_live), 0);
}

/* Remote frees do not make a home grow without bound: a thread that frees
 * many blocks made here leaves about REMOTE_MAX (alloc.c: 262144) plus a
 * batch on this thread's home and returns the rest when it exits. */
enum { REMOTE_MAX = 262144, MANY = REMOTE_MAX + 8192 };

static void *free_many_thread(void *arg)
{
    void **bs = arg;
    for (int i = 0; i < MANY; i++)
        fut__free(bs[i], BLOCK_USE);
    return NULL;
}

static void test_remote_frees_stay_bounded(void **state)
{
    (void)state;
    void **bs = malloc(MANY * sizeof *bs);
    assert_non_null(bs);
    counting_allocator_on();
    for (int i = 0; i < MANY; i++) {
        bs[i] = fut__alloc(BLOCK_USE);
        assert_non_null(bs[i]);
    }
    run_thread(free_many_thread, bs);
    long kept = atomic_load(&failalloc_live);
    assert_true(kept <= REMOTE_MAX + 64);
    if (SLABS)
        assert_true(kept >= REMOTE_MAX - 64); /* and most of that came home */
    fut_set_allocator(NULL, NULL);
    assert_int_equal(atomic_load(&failalloc_live), 0);
    free(bs);
}

/* Requests above 120 bytes (a large combinator record) bypass the slabs,
 * from any thread. */
static void *free_big_thread(void *arg)
{
    fut__free(arg, 4000);
    return NULL;
}

static void test_large_blocks_bypass_slabs(void **state)
{
    (void)state;
    counting_allocator_on();
    void *big = fut__alloc(4000);
    void *edge = fut__alloc(FUT__BLOCK);
    assert_non_null(big);
    assert_non_null(edge);
    memset(big, 0xab, 4000);
    memset(edge, 0xcd, FUT__BLOCK); /* all 128 bytes: no stamp in them */
    fut__free(edge, FUT__BLOCK);
    run_thread(free_big_thread, big);
    assert_int_equal(atomic_load(&failalloc_live), 0);
    fut_set_allocator(NULL, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_scenario_without_failure_leaks_nothing),
        cmocka_unit_test(test_cancelled_custom_timer_leaks_nothing),
        cmocka_unit_test(test_alloc_failure_sweep),
        cmocka_unit_test(test_cross_thread_frees_come_home),
        cmocka_unit_test(test_blocks_outliving_their_thread_are_returned),
        cmocka_unit_test(test_full_batches_go_home_while_their_thread_runs),
        cmocka_unit_test(test_blocks_start_on_a_cache_line),
        cmocka_unit_test(test_remote_frees_stay_bounded),
        cmocka_unit_test(test_large_blocks_bypass_slabs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
