/* Futures: results, continuations (then/catch/finally), ordering, explicit
 * placement, fut_forward, fut_adopt, references and value destructors. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>

#include <fut.h>

#include "testexec.h"

#define USER_ERR (-100042)

static testexec_t *new_tx(void)
{
    int err = 1;
    testexec_t *tx = testexec_new(NULL, &err);
    assert_non_null(tx);
    assert_int_equal(err, 0);
    return tx;
}

static void destroy_tx(testexec_t *tx)
{
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

/* ---- callbacks ---------------------------------------------------------- */

typedef struct rec {
    atomic_int calls;
    int order;              /* position in the global order */
    fut_executor_t *ran_on; /* fut_executor_current() inside */
    fut_state_t src_state;
    int src_err;
    int64_t src_i64;
} rec_t;

static int order_next;

static void note(rec_t *r, fut_t *src)
{
    atomic_fetch_add(&r->calls, 1);
    r->order = order_next++;
    r->ran_on = fut_executor_current();
    if (src) {
        r->src_state = fut_state(src);
        r->src_err = fut_error(src);
        r->src_i64 = fut_value_i64(src);
    }
}

static fut_result_t cb_add_one(void *arg, fut_t *src)
{
    note(arg, src);
    return fut_ok_i64(fut_value_i64(src) + 1);
}

static fut_result_t cb_forward(void *arg, fut_t *src)
{
    note(arg, src);
    return fut_forward(src);
}

static fut_result_t cb_recover(void *arg, fut_t *src)
{
    note(arg, src);
    return fut_ok_i64(99);
}

static fut_result_t cb_fail(void *arg, fut_t *src)
{
    note(arg, src);
    return fut_fail(USER_ERR);
}

static fut_result_t task_i64(void *arg)
{
    note(arg, NULL);
    return fut_ok_i64(7);
}

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
