/* Continuations (then/catch/finally): when each callback runs, in what
 * order, exactly once, and on the executor the call names.  Results,
 * forward, adopt and references are tests/test_future.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>

#include <fut.h>

#include "future_helpers.h"

/* ---- continuations ------------------------------------------------------ */

static void test_then_runs_in_attach_order(void **state)
{
    (void)state;
    testexec_t *tx = new_tx();
    fut_promise_t *p;
    fut_t *src = fut_promise_new(&p);
    enum { N = 8 };
    rec_t r[N] = {0};
    fut_t *out[N];
    for (int i = 0; i < N; i++)
        out[i] = fut_then(fut_retain(src), testexec_ex(tx), cb_add_one, &r[i]);
    assert_int_equal(testexec_pending(tx), 0);
    order_next = 0;
    assert_int_equal(fut_promise_settle(p, fut_ok_i64(10)), 0);
    /* Nothing runs before the test executor is told to. */
    for (int i = 0; i < N; i++)
        assert_int_equal(r[i].calls, 0);
    assert_int_equal(testexec_pending(tx), N);
    assert_int_equal(testexec_run_all(tx), N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].order, i);
        assert_int_equal(fut_state(out[i]), FUT_FULFILLED);
        assert_int_equal(fut_value_i64(out[i]), 11);
        fut_release(out[i]);
    }
    fut_release(src);
    destroy_tx(tx);
}

static void test_then_on_settled_source_schedules_at_once(void **state)
{
    (void)state;
    testexec_t *tx = new_tx();
    rec_t r = {0};
    fut_t *f =
        fut_then(fut_ready(fut_ok_i64(1)), testexec_ex(tx), cb_add_one, &r);
    assert_int_equal(testexec_pending(tx), 1);
    assert_int_equal(fut_state(f), FUT_PENDING);
    assert_int_equal(testexec_run_all(tx), 1);
    assert_int_equal(r.calls, 1);
    assert_int_equal(fut_value_i64(f), 2);
    fut_release(f);
    destroy_tx(tx);
}

static void test_then_skips_callback_on_rejection(void **state)
{
    (void)state;
    rec_t r = {0}, r2 = {0};
    fut_t *f = fut_ready(fut_fail(USER_ERR));
    f = fut_then(f, fut_inline(), cb_add_one, &r);
    f = fut_then(f, fut_inline(), cb_add_one, &r2);
    assert_int_equal(fut_state(f), FUT_REJECTED);
    assert_int_equal(fut_error(f), USER_ERR);
    assert_int_equal(r.calls, 0);
    assert_int_equal(r2.calls, 0);
    fut_release(f);
}

static void test_then_skips_callback_on_cancellation(void **state)
{
    (void)state;
    rec_t r = {0};
    fut_promise_t *p;
    fut_t *src = fut_promise_new(&p);
    fut_t *f = fut_then(fut_retain(src), fut_inline(), cb_add_one, &r);
    assert_int_equal(fut_cancel(src), 0);
    assert_int_equal(fut_state(f), FUT_CANCELLED);
    assert_int_equal(fut_error(f), FUT_ECANCELED);
    assert_int_equal(r.calls, 0);
    assert_int_equal(fut_promise_settle(p, fut_ok_i64(1)), FUT_EALREADY);
    fut_release(f);
    fut_release(src);
}

static void test_catch_recovers_from_rejection(void **state)
{
    (void)state;
    rec_t r = {0};
    fut_t *f =
        fut_catch(fut_ready(fut_fail(USER_ERR)), fut_inline(), cb_recover, &r);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.src_state, FUT_REJECTED);
    assert_int_equal(r.src_err, USER_ERR);
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    assert_int_equal(fut_value_i64(f), 99);
    fut_release(f);
}

static void test_catch_recovers_from_cancellation(void **state)
{
    (void)state;
    rec_t r = {0};
    fut_promise_t *p;
    fut_t *src = fut_promise_new(&p);
    fut_t *f = fut_catch(fut_retain(src), fut_inline(), cb_recover, &r);
    assert_int_equal(r.calls, 0);
    assert_int_equal(fut_cancel(src), 0);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.src_state, FUT_CANCELLED);
    assert_int_equal(r.src_err, FUT_ECANCELED);
    assert_int_equal(fut_value_i64(f), 99);
    fut_promise_drop(p);
    fut_release(f);
    fut_release(src);
}

static void test_catch_passes_fulfilment_through(void **state)
{
    (void)state;
    rec_t r = {0};
    fut_t *f =
        fut_catch(fut_ready(fut_ok_i64(5)), fut_inline(), cb_recover, &r);
    assert_int_equal(r.calls, 0);
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    assert_int_equal(fut_value_i64(f), 5);
    fut_release(f);
}

static void test_catch_can_reject_again(void **state)
{
    (void)state;
    rec_t r = {0};
    fut_t *f = fut_catch(fut_ready(fut_fail(FUT_ETIMEDOUT)), fut_inline(),
                         cb_fail, &r);
    assert_int_equal(r.calls, 1);
    assert_int_equal(fut_state(f), FUT_REJECTED);
    assert_int_equal(fut_error(f), USER_ERR);
    fut_release(f);
}

static void test_finally_runs_on_fulfilment(void **state)
{
    (void)state;
    rec_t r = {0};
    fut_t *f =
        fut_finally(fut_ready(fut_ok_i64(3)), fut_inline(), cb_forward, &r);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.src_state, FUT_FULFILLED);
    assert_int_equal(r.src_i64, 3);
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    assert_int_equal(fut_value_i64(f), 3);
    fut_release(f);
}

static void test_finally_runs_on_rejection(void **state)
{
    (void)state;
    rec_t r = {0};
    fut_t *f = fut_finally(fut_ready(fut_fail(USER_ERR)), fut_inline(),
                           cb_forward, &r);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.src_state, FUT_REJECTED);
    assert_int_equal(fut_state(f), FUT_REJECTED);
    assert_int_equal(fut_error(f), USER_ERR);
    fut_release(f);
}

static void test_finally_runs_on_cancellation(void **state)
{
    (void)state;
    rec_t r = {0};
    fut_promise_t *p;
    fut_t *src = fut_promise_new(&p);
    fut_t *f = fut_finally(fut_retain(src), fut_inline(), cb_forward, &r);
    assert_int_equal(fut_cancel(src), 0);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.src_state, FUT_CANCELLED);
    assert_int_equal(fut_state(f), FUT_CANCELLED);
    assert_int_equal(fut_error(f), FUT_ECANCELED);
    fut_promise_drop(p);
    fut_release(f);
    fut_release(src);
}

static void test_finally_result_replaces_outcome(void **state)
{
    (void)state;
    rec_t r = {0};
    fut_t *f = fut_finally(fut_ready(fut_ok_i64(3)), fut_inline(), cb_fail, &r);
    assert_int_equal(r.calls, 1);
    assert_int_equal(fut_error(f), USER_ERR);
    fut_release(f);
}

static void test_callback_rejection_travels_down_chain(void **state)
{
    (void)state;
    rec_t a = {0}, b = {0}, c = {0};
    fut_t *f = fut_ready(fut_ok_i64(1));
    f = fut_then(f, fut_inline(), cb_fail, &a);
    f = fut_then(f, fut_inline(), cb_add_one, &b);
    f = fut_catch(f, fut_inline(), cb_recover, &c);
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 0);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.src_err, USER_ERR);
    assert_int_equal(fut_value_i64(f), 99);
    fut_release(f);
}

static void test_each_callback_runs_exactly_once(void **state)
{
    (void)state;
    testexec_t *tx = new_tx();
    fut_promise_t *p;
    fut_t *src = fut_promise_new(&p);
    rec_t t = {0}, c = {0}, fin = {0};
    fut_t *f1 = fut_then(fut_retain(src), testexec_ex(tx), cb_add_one, &t);
    fut_t *f2 = fut_catch(fut_retain(src), testexec_ex(tx), cb_recover, &c);
    fut_t *f3 = fut_finally(fut_retain(src), testexec_ex(tx), cb_forward, &fin);
    assert_int_equal(fut_promise_settle(p, fut_ok_i64(1)), 0);
    testexec_run_all(tx);
    /* Settled sources stay settled: a second cancel or wait re-runs nothing */
    assert_int_equal(fut_cancel(src), FUT_EALREADY);
    assert_int_equal(fut_wait(src, -1), 0);
    testexec_run_all(tx);
    assert_int_equal(t.calls, 1);
    assert_int_equal(c.calls, 0);
    assert_int_equal(fin.calls, 1);
    assert_int_equal(fut_value_i64(f1), 2);
    assert_int_equal(fut_value_i64(f2), 1);
    assert_int_equal(fut_value_i64(f3), 1);
    fut_release(f1);
    fut_release(f2);
    fut_release(f3);
    fut_release(src);
    destroy_tx(tx);
}

static void test_then_bad_arguments_give_einval(void **state)
{
    (void)state;
    rec_t r = {0};
    atomic_int dtors = 0;
    fut_t *f = fut_then(NULL, fut_inline(), cb_add_one, &r);
    assert_int_equal(fut_state(f), FUT_REJECTED);
    assert_int_equal(fut_error(f), FUT_EINVAL);
    fut_release(f);

    /* F is consumed even on error: its value's destructor runs. */
    f = fut_then(fut_ready(fut_ok_owned(counted_new(&dtors), counted_free)),
                 NULL, cb_add_one, &r);
    assert_int_equal(fut_error(f), FUT_EINVAL);
    fut_release(f);
    assert_int_equal(dtors, 1);

    f = fut_then(fut_ready(fut_ok_owned(counted_new(&dtors), counted_free)),
                 fut_inline(), NULL, &r);
    assert_int_equal(fut_error(f), FUT_EINVAL);
    fut_release(f);
    assert_int_equal(dtors, 2);

    f = fut_catch(fut_ready(fut_fail(USER_ERR)), NULL, cb_recover, &r);
    assert_int_equal(fut_error(f), FUT_EINVAL);
    fut_release(f);
    f = fut_finally(fut_ready(fut_ok_i64(1)), fut_inline(), NULL, &r);
    assert_int_equal(fut_error(f), FUT_EINVAL);
    fut_release(f);
    f = fut_catch(NULL, fut_inline(), cb_recover, &r);
    assert_int_equal(fut_error(f), FUT_EINVAL);
    fut_release(f);
    f = fut_finally(NULL, fut_inline(), cb_forward, &r);
    assert_int_equal(fut_error(f), FUT_EINVAL);
    fut_release(f);
    assert_int_equal(r.calls, 0);
}

/* ---- explicit placement ------------------------------------------------- */

static void test_callback_runs_on_named_executor(void **state)
{
    (void)state;
    testexec_t *tx = new_tx();
    testexec_t *ty = new_tx();
    assert_null(fut_executor_current());
    fut_promise_t *p;
    fut_t *src = fut_promise_new(&p);
    rec_t a = {0}, b = {0}, c = {0};
    fut_t *fa = fut_then(fut_retain(src), testexec_ex(tx), cb_add_one, &a);
    fut_t *fb = fut_then(fut_retain(src), testexec_ex(ty), cb_add_one, &b);
    fut_t *fc = fut_then(fut_retain(src), fut_inline(), cb_add_one, &c);
    assert_int_equal(fut_promise_settle(p, fut_ok_i64(0)), 0);
    /* inline ran at once, on this thread, as an inline task */
    assert_int_equal(c.calls, 1);
    assert_ptr_equal(c.ran_on, fut_inline());
    /* the others wait for their own executors */
    assert_int_equal(a.calls, 0);
    assert_int_equal(b.calls, 0);
    assert_int_equal(testexec_run_all(ty), 1);
    assert_int_equal(b.calls, 1);
    assert_ptr_equal(b.ran_on, testexec_ex(ty));
    assert_int_equal(a.calls, 0);
    assert_int_equal(testexec_run_all(tx), 1);
    assert_ptr_equal(a.ran_on, testexec_ex(tx));
    assert_null(fut_executor_current());
    /* catch and finally are placed the same way */
    rec_t d = {0}, e = {0};
    fut_t *fd = fut_catch(fut_ready(fut_fail(USER_ERR)), testexec_ex(ty),
                          cb_recover, &d);
    fut_t *fe =
        fut_finally(fut_ready(fut_ok_i64(1)), testexec_ex(tx), cb_forward, &e);
    assert_int_equal(d.calls + e.calls, 0);
    testexec_run_all(tx);
    testexec_run_all(ty);
    assert_int_equal(d.calls, 1);
    assert_int_equal(e.calls, 1);
    assert_ptr_equal(d.ran_on, testexec_ex(ty));
    assert_ptr_equal(e.ran_on, testexec_ex(tx));
    fut_release(fd);
    fut_release(fe);
    fut_release(fa);
    fut_release(fb);
    fut_release(fc);
    fut_release(src);
    destroy_tx(tx);
    destroy_tx(ty);
}

static void test_chain_hops_between_executors(void **state)
{
    (void)state;
    testexec_t *tx = new_tx();
    rec_t a = {0}, b = {0}, c = {0};
    fut_t *f = fut_async(testexec_ex(tx), task_i64, &a);
    f = fut_then(f, fut_inline(), cb_add_one, &b);
    f = fut_then(f, testexec_ex(tx), cb_add_one, &c);
    assert_true(testexec_run_one(tx)); /* the task; b follows inline */
    assert_ptr_equal(a.ran_on, testexec_ex(tx));
    assert_int_equal(b.calls, 1);
    assert_ptr_equal(b.ran_on, fut_inline());
    assert_int_equal(c.calls, 0);
    assert_true(testexec_run_one(tx));
    assert_ptr_equal(c.ran_on, testexec_ex(tx));
    assert_int_equal(fut_value_i64(f), 9);
    fut_release(f);
    destroy_tx(tx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_then_runs_in_attach_order),
        cmocka_unit_test(test_then_on_settled_source_schedules_at_once),
        cmocka_unit_test(test_then_skips_callback_on_rejection),
        cmocka_unit_test(test_then_skips_callback_on_cancellation),
        cmocka_unit_test(test_catch_recovers_from_rejection),
        cmocka_unit_test(test_catch_recovers_from_cancellation),
        cmocka_unit_test(test_catch_passes_fulfilment_through),
        cmocka_unit_test(test_catch_can_reject_again),
        cmocka_unit_test(test_finally_runs_on_fulfilment),
        cmocka_unit_test(test_finally_runs_on_rejection),
        cmocka_unit_test(test_finally_runs_on_cancellation),
        cmocka_unit_test(test_finally_result_replaces_outcome),
        cmocka_unit_test(test_callback_rejection_travels_down_chain),
        cmocka_unit_test(test_each_callback_runs_exactly_once),
        cmocka_unit_test(test_then_bad_arguments_give_einval),
        cmocka_unit_test(test_callback_runs_on_named_executor),
        cmocka_unit_test(test_chain_hops_between_executors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
