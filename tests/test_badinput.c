/* Bad input: one test per row of docs/BAD_INPUT.md (the core's rows here;
 * the executors', the pool's, the loop's and the misuse rows in
 * tests/test_badinput_exec.c).  Each passes a bad
 * argument (or misuses a handle) and checks the documented answer comes
 * back, that refused callbacks never run, and that nothing leaks (every
 * owned value's destructor runs exactly once; ASan/LSan builds check the
 * rest).  Misuse the library cannot answer (double release, a consumed
 * promise used again) is a use-after-free: those rows run in a forked child
 * and only in AddressSanitizer builds, where the child must die with a
 * report. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <fut.h>

#include "testexec.h"

#define MS (1000 * 1000ll)

static atomic_int g_calls; /* callbacks and tasks that ran */
static atomic_int g_dtors; /* counted_free calls */

static int setup(void **state)
{
    (void)state;
    atomic_store(&g_calls, 0);
    atomic_store(&g_dtors, 0);
    return 0;
}

static fut_result_t task_one(void *arg)
{
    (void)arg;
    atomic_fetch_add(&g_calls, 1);
    return fut_ok_i64(1);
}

static fut_result_t cb_one(void *arg, fut_t *src)
{
    (void)arg;
    (void)src;
    atomic_fetch_add(&g_calls, 1);
    return fut_ok_i64(1);
}

static void assert_rejected(fut_t *f, int err)
{
    assert_non_null(f);
    assert_int_equal(fut_state(f), FUT_REJECTED);
    assert_int_equal(fut_error(f), err);
}

/* ---- errors and results ------------------------------------------------- */

static void test_strerror_never_null(void **state)
{
    (void)state;
    int codes[] = {FUT_OK, FUT_ENOMEM, FUT_EINVAL, FUT_ECANCELED,
                   FUT_ETIMEDOUT, FUT_EBROKEN, FUT_ESHUTDOWN, FUT_EDEADLK,
                   FUT_EALREADY, -4000, -100999, INT_MIN, 1, INT_MAX};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *s = fut_strerror(codes[i]);
        assert_non_null(s);
        assert_true(strlen(s) > 0);
    }
    assert_string_equal(fut_strerror(-100999), "application error");
}

static void test_fail_with_nonnegative_code_is_einval(void **state)
{
    (void)state;
    fut_t *a = fut_ready(fut_fail(0));
    fut_t *b = fut_ready(fut_fail(42));
    fut_result_t (*mkfail)(int) = &fut_fail; /* the exported function */
    fut_t *c = fut_ready(mkfail(7));
    assert_rejected(a, FUT_EINVAL);
    assert_rejected(b, FUT_EINVAL);
    assert_rejected(c, FUT_EINVAL);
    fut_release(a);
    fut_release(b);
    fut_release(c);
}

static void test_ok_owned_with_null_dtor_is_borrowed(void **state)
{
    (void)state;
    static int x;
    fut_t *f = fut_ready(fut_ok_owned(&x, NULL));
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    assert_ptr_equal(fut_value(f), &x);
    fut_release(f); /* must not try to free &x */
}

static void test_ready_adopt_or_forward_null_is_einval(void **state)
{
    (void)state;
    fut_t *a = fut_ready(fut_adopt(NULL));
    fut_t *b = fut_ready(fut_forward(NULL));
    assert_rejected(a, FUT_EINVAL);
    assert_rejected(b, FUT_EINVAL);
    fut_release(a);
    fut_release(b);
}

/* ---- making futures ----------------------------------------------------- */

static void test_async_null_executor_or_fn_is_einval(void **state)
{
    (void)state;
    fut_t *a = fut_async(NULL, task_one, NULL);
    fut_t *b = fut_async(fut_inline(), NULL, NULL);
    assert_rejected(a, FUT_EINVAL);
    assert_rejected(b, FUT_EINVAL);
    assert_int_equal(atomic_load(&g_calls), 0);
    fut_release(a);
    fut_release(b);
}

static void test_async_refused_submit_rejects(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    assert_non_null(tx);
    testexec_refuse(tx, FUT_ESHUTDOWN);
    fut_t *a = fut_async(testexec_ex(tx), task_one, NULL);
    testexec_refuse(tx, FUT_ENOMEM);
    fut_t *b = fut_async(testexec_ex(tx), task_one, NULL);
    assert_rejected(a, FUT_ESHUTDOWN);
    assert_rejected(b, FUT_ENOMEM);
    assert_int_equal(testexec_pending(tx), 0);
    fut_release(a);
    fut_release(b);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
    assert_int_equal(atomic_load(&g_calls), 0);
}

static void test_promise_new_null_out_is_einval(void **state)
{
    (void)state;
    fut_t *f = fut_promise_new(NULL);
    assert_rejected(f, FUT_EINVAL);
    fut_release(f);
}

static void test_promise_settle_null_disposes_result(void **state)
{
    (void)state;
    assert_int_equal(fut_promise_settle(NULL, fut_ok_owned(
                                                  counted_new(&g_dtors),
                                                  counted_free)),
                     FUT_EINVAL);
    assert_int_equal(atomic_load(&g_dtors), 1);
    /* An adopted future handed to a NULL promise is released too. */
    assert_int_equal(
        fut_promise_settle(NULL, fut_adopt(fut_ready(fut_ok_owned(
                                     counted_new(&g_dtors), counted_free)))),
        FUT_EINVAL);
    assert_int_equal(atomic_load(&g_dtors), 2);
}

static void test_promise_double_settle_is_ealready(void **state)
{
    (void)state;
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    assert_int_equal(fut_promise_settle(p, fut_ok_i64(1)), 0);
    /* The caller still holds F, so the handle's memory is alive and the
     * core can tell it was consumed. */
    assert_int_equal(fut_promise_settle(p, fut_ok_owned(counted_new(&g_dtors),
                                                        counted_free)),
                     FUT_EALREADY);
    assert_int_equal(atomic_load(&g_dtors), 1); /* disposed at once */
    assert_int_equal(fut_value_i64(f), 1);
    fut_promise_drop(p); /* consumed: no-op */
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    fut_release(f);
}

static void test_promise_settle_after_drop_is_ealready(void **state)
{
    (void)state;
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    fut_promise_drop(p);
    assert_rejected(f, FUT_EBROKEN);
    assert_int_equal(fut_promise_settle(p, fut_ok_owned(counted_new(&g_dtors),
                                                        counted_free)),
                     FUT_EALREADY);
    assert_int_equal(atomic_load(&g_dtors), 1);
    fut_promise_drop(p);
    fut_promise_drop(NULL);
    assert_rejected(f, FUT_EBROKEN);
    fut_release(f);
}

static void test_promise_settle_after_cancel_is_ealready(void **state)
{
    (void)state;
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    assert_int_equal(fut_cancel(f), 0);
    assert_int_equal(fut_promise_settle(p, fut_ok_owned(counted_new(&g_dtors),
                                                        counted_free)),
                     FUT_EALREADY);
    assert_int_equal(atomic_load(&g_dtors), 1);
    assert_int_equal(fut_state(f), FUT_CANCELLED);
    fut_release(f);
}

static void test_promise_settle_with_itself_is_einval(void **state)
{
    (void)state;
    fut_promise_t *p, *q;
    fut_t *f = fut_promise_new(&p);
    assert_int_equal(fut_promise_settle(p, fut_adopt(fut_retain(f))), 0);
    assert_rejected(f, FUT_EINVAL);
    fut_release(f);
    fut_t *g = fut_promise_new(&q);
    assert_int_equal(fut_promise_settle(q, fut_forward(g)), 0);
    assert_rejected(g, FUT_EINVAL);
    fut_release(g);
}

/* ---- chaining ----------------------------------------------------------- */

typedef fut_t *(*chain_fn)(fut_t *, fut_executor_t *, fut_then_fn, void *);

static void check_chain_bad_args(chain_fn chain)
{
    fut_t *owned = fut_ready(fut_ok_owned(counted_new(&g_dtors),
                                          counted_free));
    fut_t *a = chain(NULL, fut_inline(), cb_one, NULL);
    fut_t *b = chain(fut_retain(owned), NULL, cb_one, NULL);
    fut_t *c = chain(fut_retain(owned), fut_inline(), NULL, NULL);
    assert_rejected(a, FUT_EINVAL);
    assert_rejected(b, FUT_EINVAL);
    assert_rejected(c, FUT_EINVAL);
    fut_release(a);
    fut_release(b);
    fut_release(c);
    /* The refused attaches consumed their reference: this is the last. */
    assert_int_equal(atomic_load(&g_dtors), 0);
    fut_release(owned);
    assert_int_equal(atomic_load(&g_dtors), 1);
    assert_int_equal(atomic_load(&g_calls), 0);
}

static void test_then_bad_args_are_einval(void **state)
{
    (void)state;
    check_chain_bad_args(fut_then);
}

static void test_catch_bad_args_are_einval(void **state)
{
    (void)state;
    check_chain_bad_args(fut_catch);
}

static void test_finally_bad_args_are_einval(void **state)
{
    (void)state;
    check_chain_bad_args(fut_finally);
}

static void test_then_on_destroyed_executor_is_eshutdown(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    f = fut_then(f, testexec_ex(tx), cb_one, NULL);
    fut_t *g = fut_finally(fut_retain(f), testexec_ex(tx), cb_one, NULL);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
    /* The handle is gone; the futures attached to it stay safe. */
    assert_int_equal(fut_promise_settle(p, fut_ok_i64(1)), 0);
    assert_rejected(f, FUT_ESHUTDOWN);
    /* a finally's clean-up is never dropped: it ran here, on the thread
     * that settled its source, and its result is G's */
    assert_int_equal(fut_state(g), FUT_FULFILLED);
    assert_int_equal(fut_value_i64(g), 1);
    assert_int_equal(atomic_load(&g_calls), 1);
    fut_release(f);
    fut_release(g);
}

static void test_queued_callback_dropped_at_destroy_is_eshutdown(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    fut_t *f = fut_async(testexec_ex(tx), task_one, NULL);
    fut_t *g = fut_then(fut_ready(fut_ok_i64(1)), testexec_ex(tx), cb_one,
                        NULL);
    size_t dropped = 0;
    assert_int_equal(testexec_destroy(tx, NULL, &dropped), 0);
    assert_int_equal(dropped, 2);
    assert_rejected(f, FUT_ESHUTDOWN);
    assert_rejected(g, FUT_ESHUTDOWN);
    assert_int_equal(atomic_load(&g_calls), 0);
    fut_release(f);
    fut_release(g);
}

/* ---- combinators -------------------------------------------------------- */

typedef fut_t *(*comb_fn)(fut_t *const *, size_t);

static void test_combinators_null_array_is_einval(void **state)
{
    (void)state;
    comb_fn fns[] = {fut_all, fut_all_settled, fut_any, fut_race};
    for (int i = 0; i < 4; i++) {
        fut_t *f = fns[i](NULL, 3);
        assert_rejected(f, FUT_EINVAL);
        fut_release(f);
    }
}

static void test_combinators_null_element_consumes_the_rest(void **state)
{
    (void)state;
    comb_fn fns[] = {fut_all, fut_all_settled, fut_any, fut_race};
    for (int i = 0; i < 4; i++) {
        fut_t *in[3] = {
            fut_ready(fut_ok_owned(counted_new(&g_dtors), counted_free)),
            NULL,
            fut_ready(fut_ok_owned(counted_new(&g_dtors), counted_free))};
        fut_t *f = fns[i](in, 3);
        assert_rejected(f, FUT_EINVAL);
        assert_int_equal(atomic_load(&g_dtors), 2 * (i + 1));
        fut_release(f);
    }
}

static void test_combinators_empty(void **state)
{
    (void)state;
    fut_t *dummy[1] = {NULL};
    fut_t *a = fut_all(NULL, 0);
    fut_t *b = fut_all_settled(dummy, 0);
    fut_t *c = fut_any(NULL, 0);
    fut_t *d = fut_race(dummy, 0);
    assert_int_equal(fut_state(a), FUT_FULFILLED);
    assert_int_equal(fut_state(b), FUT_FULFILLED);
    assert_rejected(c, FUT_EINVAL);
    assert_rejected(d, FUT_EINVAL);
    assert_null(fut_input(a, 0));
    fut_release(a);
    fut_release(b);
    fut_release(c);
    fut_release(d);
}

static void test_combinator_same_input_twice(void **state)
{
    (void)state;
    /* The same future twice: two references, two nodes, one settle. */
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    fut_t *in[2] = {f, fut_retain(f)};
    fut_t *all = fut_all(in, 2);
    assert_int_equal(fut_state(all), FUT_PENDING);
    assert_int_equal(fut_promise_settle(p, fut_ok_owned(counted_new(&g_dtors),
                                                        counted_free)),
                     0);
    assert_int_equal(fut_state(all), FUT_FULFILLED);
    assert_ptr_equal(fut_input(all, 0), fut_input(all, 1));
    fut_release(all);
    assert_int_equal(atomic_load(&g_dtors), 1);
}

static void test_input_bad_args_are_null(void **state)
{
    (void)state;
    fut_t *one = fut_ready(fut_ok_i64(1));
    fut_t *in[1] = {fut_ready(fut_ok_i64(2))};
    fut_t *race = fut_race(in, 1);
    assert_null(fut_input(NULL, 0));
    assert_null(fut_input(one, 0));     /* not a combinator */
    assert_null(fut_input(race, 1));    /* out of range */
    assert_null(fut_input(race, SIZE_MAX));
    assert_non_null(fut_input(race, 0));
    fut_release(one);
    fut_release(race);
}

/* ---- inspecting ----------------------------------------------------------- */

static void test_accessors_on_null(void **state)
{
    (void)state;
    assert_int_equal(fut_state(NULL), FUT_PENDING);
    assert_int_equal(fut_error(NULL), FUT_EINVAL);
    assert_null(fut_value(NULL));
    assert_int_equal(fut_value_i64(NULL), 0);
    assert_null(fut_retain(NULL));
    fut_release(NULL);
}

static void test_accessors_on_wrong_kind(void **state)
{
    (void)state;
    static int x;
    fut_t *i = fut_ready(fut_ok_i64(7));
    fut_t *p = fut_ready(fut_ok(&x));
    fut_t *r = fut_ready(fut_fail(-100999));
    fut_promise_t *pr;
    fut_t *pend = fut_promise_new(&pr);
    assert_null(fut_value(i));
    assert_int_equal(fut_value_i64(p), 0);
    assert_null(fut_value(r));
    assert_int_equal(fut_value_i64(r), 0);
    assert_null(fut_value(pend));
    assert_int_equal(fut_error(pend), 0);
    fut_promise_drop(pr);
    fut_release(i);
    fut_release(p);
    fut_release(r);
    fut_release(pend);
}

/* ---- waiting ------------------------------------------------------------ */

static void test_wait_null_is_einval(void **state)
{
    (void)state;
    void *v = &v;
    assert_int_equal(fut_wait(NULL, -1), FUT_EINVAL);
    assert_int_equal(fut_wait(NULL, 0), FUT_EINVAL);
    assert_int_equal(fut_await(NULL, &v), FUT_EINVAL);
    assert_int_equal(fut_await(NULL, NULL), FUT_EINVAL);
}

static void test_wait_timeouts_on_pending(void **state)
{
    (void)state;
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    assert_int_equal(fut_wait(f, 0), FUT_ETIMEDOUT);
    assert_int_equal(fut_wait(f, 1), FUT_ETIMEDOUT);
    assert_int_equal(fut_wait(f, 2 * MS), FUT_ETIMEDOUT);
    fut_promise_drop(p);
    /* Settled: any timeout, even absurd ones, answers 0 at once. */
    assert_int_equal(fut_wait(f, 0), 0);
    assert_int_equal(fut_wait(f, -1), 0);
    assert_int_equal(fut_wait(f, INT64_MIN), 0);
    assert_int_equal(fut_wait(f, INT64_MAX), 0);
    assert_int_equal(fut_await(f, NULL), FUT_EBROKEN);
    fut_release(f);
}

static void *settle_later(void *arg)
{
    struct timespec ts = {0, 10 * MS};
    nanosleep(&ts, NULL);
    fut_promise_settle(arg, fut_ok_i64(5));
    return NULL;
}

static void test_wait_huge_timeouts_do_not_overflow(void **state)
{
    (void)state;
    int64_t timeouts[] = {INT64_MAX, INT64_MIN, -1};
    for (int i = 0; i < 3; i++) {
        fut_promise_t *p;
        fut_t *f = fut_promise_new(&p);
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, settle_later, p), 0);
        assert_int_equal(fut_wait(f, timeouts[i]), 0);
        pthread_join(th, NULL);
        assert_int_equal(fut_value_i64(f), 5);
        fut_release(f);
    }
}

static fut_t *g_self;
static atomic_int g_self_rc;

static fut_result_t task_waits_on_itself(void *arg)
{
    (void)arg;
    atomic_store(&g_self_rc, fut_wait(g_self, -1));
    return fut_ok_i64(0);
}

static void test_wait_on_own_future_is_edeadlk(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    g_self = fut_async(testexec_ex(tx), task_waits_on_itself, NULL);
    assert_true(testexec_run_one(tx));
    assert_int_equal(atomic_load(&g_self_rc), FUT_EDEADLK);
    assert_int_equal(fut_state(g_self), FUT_FULFILLED);
    fut_release(g_self);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

/* ---- cancellation and time ---------------------------------------------- */

static void test_cancel_null_and_settled(void **state)
{
    (void)state;
    fut_t *f = fut_ready(fut_ok_i64(1));
    assert_int_equal(fut_cancel(NULL), FUT_EINVAL);
    assert_int_equal(fut_cancel(f), FUT_EALREADY);
    assert_int_equal(fut_value_i64(f), 1);
    fut_release(f);
    fut_promise_t *p;
    fut_t *g = fut_promise_new(&p);
    assert_int_equal(fut_cancel(g), 0);
    assert_int_equal(fut_cancel(g), FUT_EALREADY);
    assert_int_equal(fut_error(g), FUT_ECANCELED);
    fut_promise_drop(p);
    assert_int_equal(fut_state(g), FUT_CANCELLED);
    fut_release(g);
    assert_false(fut_cancel_requested());
}

static void test_delay_null_executor_is_einval(void **state)
{
    (void)state;
    fut_t *f = fut_delay(NULL, 0);
    assert_rejected(f, FUT_EINVAL);
    fut_release(f);
}

static void test_delay_overflowing_deadline_never_fires(void **state)
{
    (void)state;
    /* (uint64_t)-1 is what a negative count becomes: "never". */
    fut_t *f = fut_delay(fut_inline(), (uint64_t)-1);
    fut_t *g = fut_delay(fut_inline(), UINT64_MAX - 1);
    assert_int_equal(fut_wait(f, 2 * MS), FUT_ETIMEDOUT);
    assert_int_equal(fut_state(g), FUT_PENDING);
    assert_int_equal(fut_cancel(f), 0);
    assert_int_equal(fut_cancel(g), 0);
    fut_release(f);
    fut_release(g);
    fut_t *z = fut_delay(fut_inline(), 0);
    assert_int_equal(fut_wait(z, 5000 * MS), 0);
    assert_int_equal(fut_state(z), FUT_FULFILLED);
    fut_release(z);
}

static void test_timeout_null_is_einval(void **state)
{
    (void)state;
    fut_t *f = fut_timeout(NULL, 1);
    assert_rejected(f, FUT_EINVAL);
    fut_release(f);
}

static void test_timeout_extremes(void **state)
{
    (void)state;
    /* 0 on a settled input: the input wins. */
    fut_t *a = fut_timeout(fut_ready(fut_ok_i64(3)), 0);
    assert_int_equal(fut_value_i64(a), 3);
    fut_release(a);
    /* 0 on a pending input: times out and cancels the input. */
    fut_promise_t *p;
    fut_t *in = fut_promise_new(&p);
    fut_t *b = fut_timeout(fut_retain(in), 0);
    assert_int_equal(fut_wait(b, 5000 * MS), 0);
    assert_int_equal(fut_state(b), FUT_CANCELLED);
    assert_int_equal(fut_error(b), FUT_ETIMEDOUT);
    assert_int_equal(fut_state(in), FUT_CANCELLED);
    assert_int_equal(fut_promise_settle(p, fut_ok_owned(counted_new(&g_dtors),
                                                        counted_free)),
                     FUT_EALREADY);
    assert_int_equal(atomic_load(&g_dtors), 1);
    assert_int_equal(fut_cancel(b), FUT_EALREADY);
    fut_release(in);
    fut_release(b);
    /* Overflowing: never times out; cancelling removes the timer. */
    fut_promise_t *q;
    fut_t *c = fut_timeout(fut_promise_new(&q), UINT64_MAX);
    assert_int_equal(fut_wait(c, 2 * MS), FUT_ETIMEDOUT);
    assert_int_equal(fut_cancel(c), 0);
    assert_int_equal(fut_error(c), FUT_ECANCELED);
    fut_promise_drop(q);
    fut_release(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup(name, setup)
        T(test_strerror_never_null),
        T(test_fail_with_nonnegative_code_is_einval),
        T(test_ok_owned_with_null_dtor_is_borrowed),
        T(test_ready_adopt_or_forward_null_is_einval),
        T(test_async_null_executor_or_fn_is_einval),
        T(test_async_refused_submit_rejects),
        T(test_promise_new_null_out_is_einval),
        T(test_promise_settle_null_disposes_result),
        T(test_promise_double_settle_is_ealready),
        T(test_promise_settle_after_drop_is_ealready),
        T(test_promise_settle_after_cancel_is_ealready),
        T(test_promise_settle_with_itself_is_einval),
        T(test_then_bad_args_are_einval),
        T(test_catch_bad_args_are_einval),
        T(test_finally_bad_args_are_einval),
        T(test_then_on_destroyed_executor_is_eshutdown),
        T(test_queued_callback_dropped_at_destroy_is_eshutdown),
        T(test_combinators_null_array_is_einval),
        T(test_combinators_null_element_consumes_the_rest),
        T(test_combinators_empty),
        T(test_combinator_same_input_twice),
        T(test_input_bad_args_are_null),
        T(test_accessors_on_null),
        T(test_accessors_on_wrong_kind),
        T(test_wait_null_is_einval),
        T(test_wait_timeouts_on_pending),
        T(test_wait_huge_timeouts_do_not_overflow),
        T(test_wait_on_own_future_is_edeadlk),
        T(test_cancel_null_and_settled),
        T(test_delay_null_executor_is_einval),
        T(test_delay_overflowing_deadline_never_fires),
        T(test_timeout_null_is_einval),
        T(test_timeout_extremes),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
