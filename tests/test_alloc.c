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

#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include <fut.h>

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
    /* a timeout that does fire (its input is cancelled), caught */
    fut_t *dl2 = fut_delay(fut_inline(), 2 * MS);
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
        assert_int_equal(c.task_runs, 4);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_scenario_without_failure_leaks_nothing),
        cmocka_unit_test(test_cancelled_custom_timer_leaks_nothing),
        cmocka_unit_test(test_alloc_failure_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
