/* Promises: settle, drop, late settles, bad arguments, other threads. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>

#include <fut.h>

#include "testexec.h"

#define USER_ERR (-100077)

static void test_promise_settle_fulfils(void **state)
{
    (void)state;
    fut_promise_t *p = NULL;
    fut_t *f = fut_promise_new(&p);
    assert_non_null(f);
    assert_non_null(p);
    assert_int_equal(fut_state(f), FUT_PENDING);
    assert_int_equal(fut_promise_settle(p, fut_ok_i64(42)), 0);
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    assert_int_equal(fut_value_i64(f), 42);
    fut_release(f);
}

static void test_promise_settle_rejects(void **state)
{
    (void)state;
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    assert_int_equal(fut_promise_settle(p, fut_fail(USER_ERR)), 0);
    assert_int_equal(fut_state(f), FUT_REJECTED);
    assert_int_equal(fut_error(f), USER_ERR);
    fut_release(f);
}

static void test_promise_settle_owned_value_destructor_once(void **state)
{
    (void)state;
    atomic_int dtors = 0;
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    void *v = counted_new(&dtors);
    assert_int_equal(fut_promise_settle(p, fut_ok_owned(v, counted_free)), 0);
    assert_ptr_equal(fut_value(f), v);
    assert_int_equal(dtors, 0);
    fut_release(f);
    assert_int_equal(dtors, 1);
}

static void test_promise_outlives_released_future(void **state)
{
    (void)state;
    atomic_int dtors = 0;
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    fut_release(f); /* nobody listens any more: settling is still fine */
    assert_int_equal(
        fut_promise_settle(p, fut_ok_owned(counted_new(&dtors), counted_free)),
        0);
    assert_int_equal(dtors, 1);
}

static void test_promise_drop_rejects_ebroken(void **state)
{
    (void)state;
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    fut_promise_drop(p);
    assert_int_equal(fut_state(f), FUT_REJECTED);
    assert_int_equal(fut_error(f), FUT_EBROKEN);
    assert_int_equal(fut_wait(f, 0), 0);
    fut_release(f);
}

static void test_promise_drop_after_refused_attach(void **state)
{
    (void)state;
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    fut_t *g = fut_then(f, fut_inline(), NULL, NULL); /* EINVAL, f consumed */
    assert_int_equal(fut_error(g), FUT_EINVAL);
    fut_release(g);
    fut_promise_drop(p);
}

static void test_promise_drop_null_is_noop(void **state)
{
    (void)state;
    fut_promise_drop(NULL);
}

static void test_promise_drop_after_cancel_keeps_cancel(void **state)
{
    (void)state;
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    assert_int_equal(fut_cancel(f), 0);
    fut_promise_drop(p);
    assert_int_equal(fut_state(f), FUT_CANCELLED);
    assert_int_equal(fut_error(f), FUT_ECANCELED);
    fut_release(f);
}

static void test_promise_settle_after_cancel_ealready_disposes(void **state)
{
    (void)state;
    atomic_int dtors = 0;
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    assert_int_equal(fut_cancel(f), 0);
    void *v = counted_new(&dtors);
    assert_int_equal(fut_promise_settle(p, fut_ok_owned(v, counted_free)),
                     FUT_EALREADY);
    assert_int_equal(dtors, 1); /* at once, not when f goes */
    assert_int_equal(fut_state(f), FUT_CANCELLED);
    assert_null(fut_value(f));
    fut_release(f);
    assert_int_equal(dtors, 1);
}

static void test_promise_settle_after_timeout_ealready(void **state)
{
    (void)state;
    atomic_int dtors = 0;
    fut_promise_t *p;
    fut_t *f = fut_timeout(fut_promise_new(&p), 1000 * 1000);
    assert_int_equal(fut_wait(f, -1), 0);
    assert_int_equal(fut_error(f), FUT_ETIMEDOUT);
    assert_int_equal(
        fut_promise_settle(p, fut_ok_owned(counted_new(&dtors), counted_free)),
        FUT_EALREADY);
    assert_int_equal(dtors, 1);
    fut_release(f);
}

static void test_promise_settle_null_einval_disposes(void **state)
{
    (void)state;
    atomic_int dtors = 0;
    assert_int_equal(fut_promise_settle(
                         NULL, fut_ok_owned(counted_new(&dtors), counted_free)),
                     FUT_EINVAL);
    assert_int_equal(dtors, 1);
}

static void test_promise_new_null_gives_einval(void **state)
{
    (void)state;
    fut_t *f = fut_promise_new(NULL);
    assert_non_null(f);
    assert_int_equal(fut_state(f), FUT_REJECTED);
    assert_int_equal(fut_error(f), FUT_EINVAL);
    fut_release(f);
}

static void test_promise_settle_with_adopt(void **state)
{
    (void)state;
    fut_promise_t *p, *q;
    fut_t *f = fut_promise_new(&p);
    fut_t *g = fut_promise_new(&q);
    assert_int_equal(fut_promise_settle(p, fut_adopt(g)), 0);
    assert_int_equal(fut_state(f), FUT_PENDING);
    assert_int_equal(fut_promise_settle(q, fut_ok_i64(5)), 0);
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    assert_int_equal(fut_value_i64(f), 5);
    fut_release(f);
}

static void test_promise_settle_with_forward(void **state)
{
    (void)state;
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    fut_t *g = fut_ready(fut_fail(USER_ERR));
    assert_int_equal(fut_promise_settle(p, fut_forward(g)), 0);
    fut_release(g);
    assert_int_equal(fut_error(f), USER_ERR);
    fut_release(f);
}

static void *settle_thread(void *arg)
{
    struct timespec ts = {0, 1000 * 1000};
    nanosleep(&ts, NULL);
    fut_promise_settle(arg, fut_ok_i64(77));
    return NULL;
}

static void test_promise_settled_on_another_thread_wakes_waiter(void **state)
{
    (void)state;
    for (int i = 0; i < 50; i++) {
        fut_promise_t *p;
        fut_t *f = fut_promise_new(&p);
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, settle_thread, p), 0);
        void *v = (void *)1;
        assert_int_equal(fut_await(f, &v), 0);
        assert_null(v);
        assert_int_equal(fut_value_i64(f), 77);
        pthread_join(th, NULL);
        fut_release(f);
    }
}

static void *drop_thread(void *arg)
{
    struct timespec ts = {0, 1000 * 1000};
    nanosleep(&ts, NULL);
    fut_promise_drop(arg);
    return NULL;
}

static void test_promise_dropped_on_another_thread_wakes_waiter(void **state)
{
    (void)state;
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, drop_thread, p), 0);
    assert_int_equal(fut_await(f, NULL), FUT_EBROKEN);
    pthread_join(th, NULL);
    fut_release(f);
}

static fut_result_t cb_count(void *arg, fut_t *src)
{
    atomic_fetch_add((atomic_int *)arg, 1);
    return fut_forward(src);
}

static void test_promise_settle_runs_attached_continuations(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    assert_non_null(tx);
    atomic_int calls = 0;
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    fut_t *g1 = fut_then(fut_retain(f), testexec_ex(tx), cb_count, &calls);
    fut_t *g2 = fut_finally(fut_retain(f), fut_inline(), cb_count, &calls);
    assert_int_equal(calls, 0);
    assert_int_equal(fut_promise_settle(p, fut_ok_i64(3)), 0);
    assert_int_equal(calls, 1);
    testexec_run_all(tx);
    assert_int_equal(calls, 2);
    assert_int_equal(fut_value_i64(g1), 3);
    assert_int_equal(fut_value_i64(g2), 3);
    fut_release(g1);
    fut_release(g2);
    fut_release(f);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_promise_settle_fulfils),
        cmocka_unit_test(test_promise_settle_rejects),
        cmocka_unit_test(test_promise_settle_owned_value_destructor_once),
        cmocka_unit_test(test_promise_outlives_released_future),
        cmocka_unit_test(test_promise_drop_rejects_ebroken),
        cmocka_unit_test(test_promise_drop_after_refused_attach),
        cmocka_unit_test(test_promise_drop_null_is_noop),
        cmocka_unit_test(test_promise_drop_after_cancel_keeps_cancel),
        cmocka_unit_test(test_promise_settle_after_cancel_ealready_disposes),
        cmocka_unit_test(test_promise_settle_after_timeout_ealready),
        cmocka_unit_test(test_promise_settle_null_einval_disposes),
        cmocka_unit_test(test_promise_new_null_gives_einval),
        cmocka_unit_test(test_promise_settle_with_adopt),
        cmocka_unit_test(test_promise_settle_with_forward),
        cmocka_unit_test(test_promise_settled_on_another_thread_wakes_waiter),
        cmocka_unit_test(test_promise_dropped_on_another_thread_wakes_waiter),
        cmocka_unit_test(test_promise_settle_runs_attached_continuations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
