/* Time: fut_delay (never early; on the timer thread and on an executor with
 * its own timers), fut_timeout (late, in time, racing fut_cancel). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#include <fut.h>

#include "testexec.h"

#define USER_ERR (-100555)
#define MS (1000 * 1000ull)
#define SEC (1000 * MS)

static void test_delay_never_early(void **state)
{
    (void)state;
    const uint64_t delays[] = {0, 1000, 100 * 1000, 1 * MS, 5 * MS, 20 * MS};
    for (size_t i = 0; i < sizeof delays / sizeof delays[0]; i++) {
        uint64_t t0 = fut_now_ns();
        fut_t *d = fut_delay(fut_inline(), delays[i]);
        assert_int_equal(fut_wait(d, -1), 0);
        uint64_t dt = fut_now_ns() - t0;
        assert_int_equal(fut_state(d), FUT_FULFILLED);
        assert_true(dt >= delays[i]);
        assert_true(dt < delays[i] + 5 * SEC);
        fut_release(d);
    }
}

static void test_many_delays_fire_in_deadline_order(void **state)
{
    (void)state;
    enum { N = 20 };
    fut_t *d[N];
    uint64_t t0 = fut_now_ns();
    for (int i = 0; i < N; i++)
        d[i] = fut_delay(fut_inline(), (uint64_t)(N - i) * MS);
    for (int i = N - 1; i >= 0; i--) {
        assert_int_equal(fut_wait(d[i], -1), 0);
        assert_true(fut_now_ns() - t0 >= (uint64_t)(N - i) * MS);
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(fut_state(d[i]), FUT_FULFILLED);
        fut_release(d[i]);
    }
}

static void test_delay_null_executor_is_einval(void **state)
{
    (void)state;
    fut_t *d = fut_delay(NULL, 1000);
    assert_int_equal(fut_state(d), FUT_REJECTED);
    assert_int_equal(fut_error(d), FUT_EINVAL);
    fut_release(d);
}

static fut_result_t cb_where(void *arg, fut_t *src)
{
    *(fut_executor_t **)arg = fut_executor_current();
    return fut_forward(src);
}

static void test_delay_on_executor_timers_fires_when_told(void **state)
{
    (void)state;
    testexec_opts_t o = {.timers = true};
    testexec_t *tx = testexec_new(&o, NULL);
    assert_non_null(tx);
    fut_executor_t *where = NULL;
    uint64_t t0 = fut_now_ns();
    fut_t *d = fut_delay(testexec_ex(tx), 50 * MS);
    fut_t *c = fut_then(fut_retain(d), testexec_ex(tx), cb_where, &where);
    assert_int_equal(testexec_timers(tx), 1);
    /* not due yet: firing "now" leaves it */
    assert_int_equal(testexec_fire_timers(tx, t0), 0);
    assert_int_equal(fut_state(d), FUT_PENDING);
    assert_int_equal(testexec_fire_timers(tx, UINT64_MAX), 1);
    testexec_run_all(tx);
    assert_int_equal(fut_state(d), FUT_FULFILLED);
    assert_int_equal(fut_state(c), FUT_FULFILLED);
    assert_ptr_equal(where, testexec_ex(tx));
    fut_release(c);
    fut_release(d);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

static void
test_delay_on_executor_without_timers_uses_timer_thread(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    assert_non_null(tx);
    uint64_t t0 = fut_now_ns();
    fut_t *d = fut_delay(testexec_ex(tx), 2 * MS);
    /* the delay itself needs no task of TX to fulfil */
    assert_int_equal(fut_wait(d, 5 * SEC), 0);
    assert_true(fut_now_ns() - t0 >= 2 * MS);
    assert_int_equal(fut_state(d), FUT_FULFILLED);
    testexec_run_all(tx);
    fut_release(d);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

static void test_delay_on_destroyed_executor_timers_eshutdown(void **state)
{
    (void)state;
    testexec_opts_t o = {.timers = true};
    testexec_t *tx = testexec_new(&o, NULL);
    assert_non_null(tx);
    fut_t *d = fut_delay(testexec_ex(tx), 3600 * SEC);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
    assert_int_equal(fut_state(d), FUT_REJECTED);
    assert_int_equal(fut_error(d), FUT_ESHUTDOWN);
    fut_release(d);
}

static fut_result_t never_runs(void *arg, fut_t *src)
{
    (void)arg, (void)src;
    return fut_ok(NULL);
}

/* An executor without timers of its own (the pool; the service keeps its
 * delays): once destroyed, a delay on its handle (kept valid here by a
 * pending continuation) is refused at once, not armed on the service. */
static void
test_delay_on_destroyed_executor_without_timers_eshutdown(void **state)
{
    (void)state;
    fut_executor_t *pool;
    fut_pool_opts_t o = {.threads = 1};
    assert_int_equal(fut_pool_create(&pool, &o), 0);
    fut_promise_t *p;
    fut_t *pin = fut_then(fut_promise_new(&p), pool, never_runs, NULL);
    assert_int_equal(fut_executor_destroy(pool), 0);
    fut_t *d = fut_delay(pool, 1 * MS);
    assert_int_equal(fut_state(d), FUT_REJECTED);
    assert_int_equal(fut_error(d), FUT_ESHUTDOWN);
    fut_release(d);
    fut_promise_drop(p);
    fut_release(pin);
}

static void test_delay_timer_refused_gives_error(void **state)
{
    (void)state;
    testexec_opts_t o = {.timers = true};
    testexec_t *tx = testexec_new(&o, NULL);
    assert_non_null(tx);
    testexec_refuse(tx, FUT_ESHUTDOWN);
    fut_t *d = fut_delay(testexec_ex(tx), 1 * MS);
    assert_int_equal(fut_error(d), FUT_ESHUTDOWN);
    fut_release(d);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

/* ---- fut_timeout ------------------------------------------------------- */

static void test_timeout_late_cancels_input(void **state)
{
    (void)state;
    atomic_int dtors = 0;
    fut_promise_t *p;
    fut_t *in = fut_promise_new(&p);
    uint64_t t0 = fut_now_ns();
    fut_t *t = fut_timeout(fut_retain(in), 10 * MS);
    assert_int_equal(fut_wait(t, -1), 0);
    assert_true(fut_now_ns() - t0 >= 10 * MS);
    assert_int_equal(fut_state(t), FUT_CANCELLED);
    assert_int_equal(fut_error(t), FUT_ETIMEDOUT);
    assert_int_equal(fut_state(in), FUT_CANCELLED);
    assert_int_equal(
        fut_promise_settle(p, fut_ok_owned(counted_new(&dtors), counted_free)),
        FUT_EALREADY);
    assert_int_equal(dtors, 1);
    assert_int_equal(fut_cancel(t), FUT_EALREADY);
    fut_release(t);
    fut_release(in);
}

static void test_timeout_in_time_settles_like_input(void **state)
{
    (void)state;
    atomic_int dtors = 0;
    fut_promise_t *p;
    fut_t *t = fut_timeout(fut_promise_new(&p), 3600 * SEC);
    assert_int_equal(fut_state(t), FUT_PENDING);
    void *v = counted_new(&dtors);
    assert_int_equal(fut_promise_settle(p, fut_ok_owned(v, counted_free)), 0);
    assert_int_equal(fut_wait(t, 5 * SEC), 0);
    assert_int_equal(fut_state(t), FUT_FULFILLED);
    assert_ptr_equal(fut_value(t), v);
    assert_int_equal(dtors, 0);
    fut_release(t);
    assert_int_equal(dtors, 1);

    t = fut_timeout(fut_promise_new(&p), 3600 * SEC);
    assert_int_equal(fut_promise_settle(p, fut_fail(USER_ERR)), 0);
    assert_int_equal(fut_wait(t, 5 * SEC), 0);
    assert_int_equal(fut_state(t), FUT_REJECTED);
    assert_int_equal(fut_error(t), USER_ERR);
    fut_release(t);
}

static void test_timeout_of_settled_input(void **state)
{
    (void)state;
    fut_t *t = fut_timeout(fut_ready(fut_ok_i64(4)), 0);
    assert_int_equal(fut_wait(t, 5 * SEC), 0);
    /* settled before the timeout started: settles like the input */
    assert_int_equal(fut_state(t), FUT_FULFILLED);
    assert_int_equal(fut_value_i64(t), 4);
    fut_release(t);
}

static void test_timeout_null_is_einval(void **state)
{
    (void)state;
    fut_t *t = fut_timeout(NULL, MS);
    assert_int_equal(fut_state(t), FUT_REJECTED);
    assert_int_equal(fut_error(t), FUT_EINVAL);
    fut_release(t);
}

static void test_cancel_timeout_before_it_fires(void **state)
{
    (void)state;
    fut_promise_t *p;
    fut_t *in = fut_promise_new(&p);
    fut_t *t = fut_timeout(fut_retain(in), 3600 * SEC);
    assert_int_equal(fut_cancel(t), 0);
    assert_int_equal(fut_state(t), FUT_CANCELLED);
    assert_int_equal(fut_error(t), FUT_ECANCELED);
    fut_promise_drop(p);
    fut_release(t);
    fut_release(in);
}

/* ---- timeout racing cancel --------------------------------------------------
 */

typedef struct race {
    fut_t *t;
    atomic_int go;
    atomic_int rc;
    unsigned spin;
} race_t;

static void *canceller(void *arg)
{
    race_t *r = arg;
    while (!atomic_load(&r->go))
        sched_yield();
    for (volatile unsigned i = 0; i < r->spin; i++)
        ;
    atomic_store(&r->rc, fut_cancel(r->t));
    return NULL;
}

static void test_timeout_racing_cancel_has_one_agreed_outcome(void **state)
{
    (void)state;
    const int rounds = TEST_UNDER_SANITIZER ? 300 : 3000;
    int cancels = 0, timeouts = 0;
    unsigned seed = 12345;
    for (int i = 0; i < rounds; i++) {
        fut_promise_t *p;
        fut_t *in = fut_promise_new(&p);
        race_t r = {.rc = 1};
        seed = seed * 1103515245u + 12345u;
        r.spin = (seed >> 16) % 20000;
        uint64_t ns = ((seed >> 8) % 50) * 1000; /* 0..49 us */
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, canceller, &r), 0);
        r.t = fut_timeout(fut_retain(in), ns);
        atomic_store(&r.go, 1);
        pthread_join(th, NULL);
        assert_int_equal(fut_wait(r.t, -1), 0);
        int rc = atomic_load(&r.rc);
        assert_int_equal(fut_state(r.t), FUT_CANCELLED);
        if (rc == 0) {
            assert_int_equal(fut_error(r.t), FUT_ECANCELED);
            cancels++;
        } else {
            assert_int_equal(rc, FUT_EALREADY);
            assert_int_equal(fut_error(r.t), FUT_ETIMEDOUT);
            timeouts++;
        }
        /* the input is cancelled either way: by the timeout, or (maybe)
         * by the cancel; in any case the producer learns it is late */
        int settled = fut_promise_settle(p, fut_ok_i64(1)) == 0;
        assert_int_equal(settled, fut_state(in) == FUT_FULFILLED);
        fut_release(r.t);
        fut_release(in);
    }
    assert_int_equal(cancels + timeouts, rounds);
    print_message("timeout/cancel race: %d cancels, %d timeouts\n", cancels,
                  timeouts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delay_never_early),
        cmocka_unit_test(test_many_delays_fire_in_deadline_order),
        cmocka_unit_test(test_delay_null_executor_is_einval),
        cmocka_unit_test(test_delay_on_executor_timers_fires_when_told),
        cmocka_unit_test(
            test_delay_on_executor_without_timers_uses_timer_thread),
        cmocka_unit_test(test_delay_on_destroyed_executor_timers_eshutdown),
        cmocka_unit_test(
            test_delay_on_destroyed_executor_without_timers_eshutdown),
        cmocka_unit_test(test_delay_timer_refused_gives_error),
        cmocka_unit_test(test_timeout_late_cancels_input),
        cmocka_unit_test(test_timeout_in_time_settles_like_input),
        cmocka_unit_test(test_timeout_of_settled_input),
        cmocka_unit_test(test_timeout_null_is_einval),
        cmocka_unit_test(test_cancel_timeout_before_it_fires),
        cmocka_unit_test(test_timeout_racing_cancel_has_one_agreed_outcome),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
