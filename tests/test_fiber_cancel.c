/* Fibers (<fut/fiber.h>) cancelled: while suspended, before they start,
 * by a timeout around them, and by their executor's destroy (suspended
 * fibers resumed, unstarted ones dropped with FUT_ESHUTDOWN). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fut.h>

#include "testexec.h"
#include "fiber_helpers.h"

/* ---- cancellation ------------------------------------------------------------ */

struct cancellee {
    fut_t *on;
    bool started; /* the fiber has run up to its first await */
    int rc, rc_later;
    bool requested;
    atomic_int *freed;
};

static fut_result_t await_then_clean_up(void *arg)
{
    struct cancellee *c = arg;
    c->started = true;
    c->rc = fut_await(c->on, NULL);
    c->requested = fut_cancel_requested();
    c->rc_later = fut_await(c->on, NULL);
    return fut_ok_owned(counted_new(c->freed), counted_free);
}

static void test_cancel_while_suspended_wakes_with_ecanceled(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    atomic_int freed = 0;
    fut_promise_t *p;
    fut_t *never = fut_promise_new(&p);
    struct cancellee c = {.on = never, .freed = &freed};
    fut_t *f = fut_fiber(testexec_ex(tx), await_then_clean_up, &c, NULL);
    testexec_run_all(tx);
    assert_int_equal(fut_cancel(f), 0);
    assert_int_equal(fut_state(f), FUT_CANCELLED); /* at once */
    testexec_run_all(tx);
    assert_int_equal(c.rc, FUT_ECANCELED);
    assert_true(c.requested);
    assert_int_equal(c.rc_later, FUT_ECANCELED);
    assert_int_equal(atomic_load(&freed), 1); /* its value was disposed */
    fut_release(f);
    fut_promise_drop(p);
    fut_release(never);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

static void test_cancel_before_start_never_runs(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    struct awaiter a = {0};
    fut_t *f = fut_fiber(testexec_ex(tx), await_one, &a, NULL);
    assert_int_equal(fut_cancel(f), 0);
    testexec_run_all(tx);
    assert_int_equal(a.steps, 0);
    assert_int_equal(fut_error(f), FUT_ECANCELED);
    fut_release(f);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

static void test_timeout_around_fiber_wakes_it_like_cancel(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    atomic_int freed = 0;
    fut_promise_t *p;
    fut_t *never = fut_promise_new(&p);
    struct cancellee c = {.on = never, .freed = &freed};
    fut_t *f = fut_fiber(loop, await_then_clean_up, &c, NULL);
    fut_t *watch = fut_retain(f);
    /* The timeout is armed once the fiber is suspended: one that fires
     * before the fiber's first run (a loaded machine) cancels a fiber that
     * then never runs, which is another test's case. */
    for (int i = 0; i < 10000 && !c.started; i++) {
        fut_t *d = fut_delay(loop, 1 * MS);
        run_until(loop, d);
        fut_release(d);
    }
    assert_true(c.started);
    fut_t *t = fut_timeout(f, 5 * MS);
    assert_int_equal(run_until(loop, t), FUT_ETIMEDOUT);
    /* The fiber runs its clean-up on the loop soon after: the timer thread
     * settles T, then queues the fiber's wake (a loaded machine may hold
     * it between the two), so the loop runs until the await has returned,
     * 10 s at most. */
    for (int i = 0; i < 2000 && c.rc == 0; i++) {
        fut_t *d = fut_delay(loop, 5 * MS);
        run_until(loop, d);
        fut_release(d);
    }
    assert_int_equal(c.rc, FUT_ECANCELED);
    assert_int_equal(atomic_load(&freed), 1);
    fut_release(t);
    fut_release(watch);
    fut_promise_drop(p);
    fut_release(never);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

/* ---- destroy with fibers suspended -------------------------------------------- */

struct last_run {
    fut_t *on;
    int rc, rc_later;
    pthread_t thread;
};

static fut_result_t await_at_shutdown(void *arg)
{
    struct last_run *l = arg;
    l->rc = fut_await(l->on, NULL);
    l->rc_later = fut_await(l->on, NULL);
    fut_yield(); /* returns at once */
    l->thread = pthread_self();
    return fut_ok_i64(5);
}

static void destroy_with_suspended(fut_executor_t *ex, bool loop)
{
    enum { N = 50 };
    fut_promise_t *p;
    fut_t *never = fut_promise_new(&p);
    static struct last_run l[N];
    fut_t *fs[N];
    for (int i = 0; i < N; i++) {
        l[i] = (struct last_run){.on = never};
        fs[i] = fut_fiber(ex, await_at_shutdown, &l[i], NULL);
    }
    /* Let every fiber reach its await. */
    fut_t *d = fut_delay(ex, 10 * MS);
    if (loop)
        run_until(ex, d);
    else
        fut_wait(d, -1);
    fut_release(d);
    for (int i = 0; i < N; i++)
        assert_int_equal(fut_state(fs[i]), FUT_PENDING);
    assert_int_equal(fut_executor_destroy(ex), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(l[i].rc, FUT_ESHUTDOWN);
        assert_int_equal(l[i].rc_later, FUT_ESHUTDOWN);
        assert_true(pthread_equal(l[i].thread, pthread_self()));
        assert_int_equal(fut_value_i64(fs[i]), 5);
        fut_release(fs[i]);
    }
    fut_promise_drop(p);
    fut_release(never);
}

static void test_destroy_loop_resumes_suspended_fibers(void **state)
{
    (void)state;
    destroy_with_suspended(new_loop(), true);
}

static void test_destroy_pool_resumes_suspended_fibers(void **state)
{
    (void)state;
    destroy_with_suspended(new_pool(2), false);
}

static void test_destroy_drops_unstarted_fiber_eshutdown(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    struct awaiter a = {0};
    fut_t *f = fut_fiber(testexec_ex(tx), await_one, &a, NULL);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
    assert_int_equal(a.steps, 0);
    assert_int_equal(fut_error(f), FUT_ESHUTDOWN);
    fut_release(f);
}

static void test_destroy_resumes_fiber_whose_run_was_dropped(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    fut_promise_t *p;
    fut_t *pf = fut_promise_new(&p);
    struct awaiter a = {.on = pf};
    fut_t *f = fut_fiber(testexec_ex(tx), await_one, &a, NULL);
    testexec_run_all(tx);
    fut_promise_settle(p, fut_ok(NULL)); /* queues its resume ... */
    assert_int_equal(testexec_pending(tx), 1);
    /* ... which the destroy drops; the fiber's last run comes after. */
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
    assert_int_equal(a.steps, 2);
    assert_int_equal(a.rc, FUT_ESHUTDOWN);
    assert_int_equal(fut_value_i64(f), FUT_ESHUTDOWN);
    fut_release(f);
    fut_release(pf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cancel_while_suspended_wakes_with_ecanceled),
        cmocka_unit_test(test_cancel_before_start_never_runs),
        cmocka_unit_test(test_timeout_around_fiber_wakes_it_like_cancel),
        cmocka_unit_test(test_destroy_loop_resumes_suspended_fibers),
        cmocka_unit_test(test_destroy_pool_resumes_suspended_fibers),
        cmocka_unit_test(test_destroy_drops_unstarted_fiber_eshutdown),
        cmocka_unit_test(test_destroy_resumes_fiber_whose_run_was_dropped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
