/* Futures: results, fut_forward, fut_adopt, references and value
 * destructors.  Continuations (then/catch/finally) and their placement
 * are tests/test_chain.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>

#include <fut.h>

#include "future_helpers.h"

/* ---- results ------------------------------------------------------------ */

static void test_ready_ok_i64(void **state)
{
    (void)state;
    fut_t *f = fut_ready(fut_ok_i64(-5));
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    assert_int_equal(fut_error(f), 0);
    assert_int_equal(fut_value_i64(f), -5);
    assert_null(fut_value(f));
    fut_release(f);
}

static void test_ready_ok_pointer_borrowed(void **state)
{
    (void)state;
    static int x;
    fut_t *f = fut_ready(fut_ok(&x));
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    assert_ptr_equal(fut_value(f), &x);
    assert_int_equal(fut_value_i64(f), 0);
    fut_release(f); /* must not free &x */
}

static void test_ready_fail_carries_error(void **state)
{
    (void)state;
    fut_t *f = fut_ready(fut_fail(USER_ERR));
    assert_int_equal(fut_state(f), FUT_REJECTED);
    assert_int_equal(fut_error(f), USER_ERR);
    assert_null(fut_value(f));
    assert_int_equal(fut_value_i64(f), 0);
    fut_release(f);
}

static void test_fail_zero_or_positive_is_einval(void **state)
{
    (void)state;
    fut_t *f = fut_ready(fut_fail(0));
    assert_int_equal(fut_state(f), FUT_REJECTED);
    assert_int_equal(fut_error(f), FUT_EINVAL);
    fut_release(f);
    f = fut_ready(fut_fail(17));
    assert_int_equal(fut_state(f), FUT_REJECTED);
    assert_int_equal(fut_error(f), FUT_EINVAL);
    fut_release(f);
}

static void test_owned_value_destructor_runs_once_at_last_release(void **state)
{
    (void)state;
    atomic_int dtors = 0;
    void *v = counted_new(&dtors);
    fut_t *f = fut_ready(fut_ok_owned(v, counted_free));
    assert_ptr_equal(fut_value(f), v);
    assert_ptr_equal(fut_retain(f), f);
    fut_release(f);
    assert_int_equal(dtors, 0);
    assert_ptr_equal(fut_value(f), v);
    fut_release(f);
    assert_int_equal(dtors, 1);
}

static void test_owned_with_null_dtor_is_borrowed(void **state)
{
    (void)state;
    static int x;
    fut_t *f = fut_ready(fut_ok_owned(&x, NULL));
    assert_ptr_equal(fut_value(f), &x);
    fut_release(f);
}

static void test_inspectors_on_null(void **state)
{
    (void)state;
    assert_int_equal(fut_state(NULL), FUT_PENDING);
    assert_int_equal(fut_error(NULL), FUT_EINVAL);
    assert_null(fut_value(NULL));
    assert_int_equal(fut_value_i64(NULL), 0);
    fut_release(NULL); /* no-op */
}

static void test_pending_promise_inspectors(void **state)
{
    (void)state;
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    assert_int_equal(fut_state(f), FUT_PENDING);
    assert_int_equal(fut_error(f), 0);
    assert_null(fut_value(f));
    assert_int_equal(fut_value_i64(f), 0);
    assert_int_equal(fut_promise_settle(p, fut_ok_i64(1)), 0);
    fut_release(f);
}

static void test_version_matches_header(void **state)
{
    (void)state;
    assert_int_equal(fut_version(), FUT_VERSION_HEX);
}

/* ---- async, references ----------------------------------------------------
 */

static void test_async_inline_runs_at_once(void **state)
{
    (void)state;
    rec_t r = {0};
    fut_t *f = fut_async(fut_inline(), task_i64, &r);
    assert_int_equal(r.calls, 1);
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    assert_int_equal(fut_value_i64(f), 7);
    fut_release(f);
}

static void test_async_bad_arguments_give_einval(void **state)
{
    (void)state;
    rec_t r = {0};
    fut_t *f = fut_async(NULL, task_i64, &r);
    assert_int_equal(fut_error(f), FUT_EINVAL);
    fut_release(f);
    f = fut_async(fut_inline(), NULL, &r);
    assert_int_equal(fut_error(f), FUT_EINVAL);
    fut_release(f);
    assert_int_equal(r.calls, 0);
}

static void test_release_never_cancels_fire_and_forget(void **state)
{
    (void)state;
    testexec_t *tx = new_tx();
    rec_t r = {0}, t = {0};
    fut_release(fut_async(testexec_ex(tx), task_i64, &r));
    fut_release(fut_then(fut_async(testexec_ex(tx), task_i64, &r),
                         testexec_ex(tx), cb_add_one, &t));
    assert_int_equal(r.calls, 0);
    assert_int_equal(testexec_run_all(tx), 3);
    assert_int_equal(r.calls, 2);
    assert_int_equal(t.calls, 1);
    destroy_tx(tx);
}

static void test_retain_release_keeps_future_alive(void **state)
{
    (void)state;
    atomic_int dtors = 0;
    fut_t *f = fut_ready(fut_ok_owned(counted_new(&dtors), counted_free));
    for (int i = 0; i < 100; i++)
        assert_ptr_equal(fut_retain(f), f);
    for (int i = 0; i < 100; i++)
        fut_release(f);
    assert_int_equal(dtors, 0);
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    fut_release(f);
    assert_int_equal(dtors, 1);
}

static void test_then_value_destructor_runs_once(void **state)
{
    (void)state;
    atomic_int dtors = 0;
    rec_t r = {0};
    fut_t *f = fut_ready(fut_ok_owned(counted_new(&dtors), counted_free));
    f = fut_then(f, fut_inline(), cb_add_one, &r);
    /* the source was consumed; the chain may keep it until f goes */
    fut_release(f);
    assert_int_equal(dtors, 1);
}

/* ---- fut_forward ----------------------------------------------------------
 */

typedef struct fwd_arg {
    fut_t *other;
    atomic_int calls;
} fwd_arg_t;

static fut_result_t cb_forward_other(void *arg, fut_t *src)
{
    (void)src;
    fwd_arg_t *a = arg;
    atomic_fetch_add(&a->calls, 1);
    return fut_forward(a->other);
}

static void test_forward_follows_pending_source(void **state)
{
    (void)state;
    atomic_int dtors = 0;
    fut_promise_t *p;
    fwd_arg_t a = {.other = fut_promise_new(&p)};
    fut_t *f =
        fut_then(fut_ready(fut_ok_i64(0)), fut_inline(), cb_forward_other, &a);
    assert_int_equal(a.calls, 1);
    assert_int_equal(fut_state(f), FUT_PENDING);
    void *v = counted_new(&dtors);
    assert_int_equal(fut_promise_settle(p, fut_ok_owned(v, counted_free)), 0);
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    assert_ptr_equal(fut_value(f), v);
    /* forward borrows: our reference still works */
    fut_release(a.other);
    assert_int_equal(dtors, 0);
    assert_ptr_equal(fut_value(f), v);
    fut_release(f);
    assert_int_equal(dtors, 1);
}

static void test_forward_of_rejection(void **state)
{
    (void)state;
    fwd_arg_t a = {.other = fut_ready(fut_fail(USER_ERR))};
    fut_t *f =
        fut_then(fut_ready(fut_ok_i64(0)), fut_inline(), cb_forward_other, &a);
    assert_int_equal(fut_state(f), FUT_REJECTED);
    assert_int_equal(fut_error(f), USER_ERR);
    fut_release(a.other);
    fut_release(f);
}

static void test_ready_forward_follows_source(void **state)
{
    (void)state;
    fut_promise_t *p;
    fut_t *src = fut_promise_new(&p);
    fut_t *f = fut_ready(fut_forward(src));
    fut_release(src);
    assert_int_equal(fut_state(f), FUT_PENDING);
    assert_int_equal(fut_promise_settle(p, fut_ok_i64(8)), 0);
    assert_int_equal(fut_value_i64(f), 8);
    fut_release(f);
}

/* ---- fut_adopt ------------------------------------------------------------
 */

typedef struct adopt_arg {
    fut_t *other; /* consumed by the callback */
    atomic_int calls;
} adopt_arg_t;

static fut_result_t cb_adopt(void *arg, fut_t *src)
{
    (void)src;
    adopt_arg_t *a = arg;
    atomic_fetch_add(&a->calls, 1);
    return fut_adopt(a->other);
}

static void test_adopt_flattens_settled_future(void **state)
{
    (void)state;
    atomic_int dtors = 0;
    void *v = counted_new(&dtors);
    adopt_arg_t a = {.other = fut_ready(fut_ok_owned(v, counted_free))};
    fut_t *f = fut_then(fut_ready(fut_ok_i64(0)), fut_inline(), cb_adopt, &a);
    assert_int_equal(a.calls, 1);
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    assert_ptr_equal(fut_value(f), v);
    assert_int_equal(dtors, 0);
    fut_release(f);
    assert_int_equal(dtors, 1);
}

static void test_adopt_flattens_pending_future(void **state)
{
    (void)state;
    fut_promise_t *p;
    adopt_arg_t a = {.other = fut_promise_new(&p)};
    fut_t *f = fut_then(fut_ready(fut_ok_i64(0)), fut_inline(), cb_adopt, &a);
    assert_int_equal(fut_state(f), FUT_PENDING);
    assert_int_equal(fut_promise_settle(p, fut_fail(USER_ERR)), 0);
    assert_int_equal(fut_state(f), FUT_REJECTED);
    assert_int_equal(fut_error(f), USER_ERR);
    fut_release(f);
}

static void *settle_later(void *arg)
{
    fut_promise_t *p = arg;
    struct timespec ts = {0, 2 * 1000 * 1000};
    nanosleep(&ts, NULL);
    fut_promise_settle(p, fut_ok_i64(1234));
    return NULL;
}

static void test_adopt_future_settled_later_on_another_thread(void **state)
{
    (void)state;
    for (int round = 0; round < 20; round++) {
        fut_promise_t *p;
        adopt_arg_t a = {.other = fut_promise_new(&p)};
        rec_t r = {0};
        fut_t *f =
            fut_then(fut_ready(fut_ok_i64(0)), fut_inline(), cb_adopt, &a);
        f = fut_then(f, fut_inline(), cb_add_one, &r);
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, settle_later, p), 0);
        assert_int_equal(fut_wait(f, -1), 0);
        assert_int_equal(fut_state(f), FUT_FULFILLED);
        assert_int_equal(fut_value_i64(f), 1235);
        assert_int_equal(r.calls, 1);
        pthread_join(th, NULL);
        fut_release(f);
    }
}

static void test_adopt_null_gives_einval(void **state)
{
    (void)state;
    adopt_arg_t a = {.other = NULL};
    fut_t *f = fut_then(fut_ready(fut_ok_i64(0)), fut_inline(), cb_adopt, &a);
    assert_int_equal(a.calls, 1);
    assert_int_equal(fut_state(f), FUT_REJECTED);
    assert_int_equal(fut_error(f), FUT_EINVAL);
    fut_release(f);
    f = fut_ready(fut_adopt(NULL));
    assert_int_equal(fut_error(f), FUT_EINVAL);
    fut_release(f);
}

static void test_ready_adopt_consumes_and_follows(void **state)
{
    (void)state;
    atomic_int dtors = 0;
    fut_promise_t *p;
    fut_t *f = fut_ready(fut_adopt(fut_promise_new(&p)));
    assert_int_equal(fut_state(f), FUT_PENDING);
    void *v = counted_new(&dtors);
    assert_int_equal(fut_promise_settle(p, fut_ok_owned(v, counted_free)), 0);
    assert_ptr_equal(fut_value(f), v);
    fut_release(f);
    assert_int_equal(dtors, 1);
}

static fut_result_t task_adopt(void *arg)
{
    return fut_adopt(arg);
}

static void test_async_task_may_adopt(void **state)
{
    (void)state;
    testexec_t *tx = new_tx();
    fut_promise_t *p;
    fut_t *f = fut_async(testexec_ex(tx), task_adopt, fut_promise_new(&p));
    testexec_run_all(tx);
    assert_int_equal(fut_state(f), FUT_PENDING);
    fut_promise_drop(p);
    assert_int_equal(fut_error(f), FUT_EBROKEN);
    fut_release(f);
    destroy_tx(tx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ready_ok_i64),
        cmocka_unit_test(test_ready_ok_pointer_borrowed),
        cmocka_unit_test(test_ready_fail_carries_error),
        cmocka_unit_test(test_fail_zero_or_positive_is_einval),
        cmocka_unit_test(test_owned_value_destructor_runs_once_at_last_release),
        cmocka_unit_test(test_owned_with_null_dtor_is_borrowed),
        cmocka_unit_test(test_inspectors_on_null),
        cmocka_unit_test(test_pending_promise_inspectors),
        cmocka_unit_test(test_version_matches_header),
        cmocka_unit_test(test_async_inline_runs_at_once),
        cmocka_unit_test(test_async_bad_arguments_give_einval),
        cmocka_unit_test(test_release_never_cancels_fire_and_forget),
        cmocka_unit_test(test_retain_release_keeps_future_alive),
        cmocka_unit_test(test_then_value_destructor_runs_once),
        cmocka_unit_test(test_forward_follows_pending_source),
        cmocka_unit_test(test_forward_of_rejection),
        cmocka_unit_test(test_ready_forward_follows_source),
        cmocka_unit_test(test_adopt_flattens_settled_future),
        cmocka_unit_test(test_adopt_flattens_pending_future),
        cmocka_unit_test(test_adopt_future_settled_later_on_another_thread),
        cmocka_unit_test(test_adopt_null_gives_einval),
        cmocka_unit_test(test_ready_adopt_consumes_and_follows),
        cmocka_unit_test(test_async_task_may_adopt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
