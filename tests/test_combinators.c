/* Combinators: fut_all, fut_all_settled, fut_any, fut_race, fut_input. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdlib.h>

#include <fut.h>

#include "testexec.h"

#define E1 (-100001)
#define E2 (-100002)
#define E3 (-100003)

typedef fut_t *(*comb_fn)(fut_t *const *fs, size_t n);

enum { N = 3 };

static void make_promises(fut_promise_t **p, fut_t **f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        f[i] = fut_promise_new(&p[i]);
        assert_non_null(p[i]);
    }
}

/* ---- fut_all --------------------------------------------------------------
 */

static void test_all_fulfils_when_every_input_fulfils(void **state)
{
    (void)state;
    fut_promise_t *p[N];
    fut_t *f[N];
    make_promises(p, f, N);
    fut_t *c = fut_all(f, N);
    for (int i = N - 1; i >= 0; i--) {
        assert_int_equal(fut_state(c), FUT_PENDING);
        assert_int_equal(fut_promise_settle(p[i], fut_ok_i64(10 + i)), 0);
    }
    assert_int_equal(fut_state(c), FUT_FULFILLED);
    assert_int_equal(fut_error(c), 0);
    assert_null(fut_value(c));
    for (size_t i = 0; i < N; i++) {
        fut_t *in = fut_input(c, i);
        assert_ptr_equal(in, f[i]);
        assert_int_equal(fut_value_i64(in), 10 + (int)i);
    }
    assert_null(fut_input(c, N));
    fut_release(c);
}

static void test_all_settles_like_first_rejection(void **state)
{
    (void)state;
    fut_promise_t *p[N];
    fut_t *f[N];
    make_promises(p, f, N);
    fut_t *c = fut_all(f, N);
    assert_int_equal(fut_promise_settle(p[0], fut_ok_i64(0)), 0);
    assert_int_equal(fut_promise_settle(p[2], fut_fail(E2)), 0);
    /* settles at once, without waiting for p[1] */
    assert_int_equal(fut_state(c), FUT_REJECTED);
    assert_int_equal(fut_error(c), E2);
    /* the pending input nobody else observes was cancelled */
    assert_int_equal(fut_promise_settle(p[1], fut_fail(E1)), FUT_EALREADY);
    assert_int_equal(fut_state(fut_input(c, 1)), FUT_CANCELLED);
    assert_int_equal(fut_error(c), E2);
    fut_release(c);
}

static void test_all_settles_like_cancelled_input(void **state)
{
    (void)state;
    fut_promise_t *p[N];
    fut_t *f[N];
    make_promises(p, f, N);
    fut_t *c = fut_all(f, N);
    assert_int_equal(fut_cancel(fut_input(c, 1)), 0);
    assert_int_equal(fut_state(c), FUT_CANCELLED);
    assert_int_equal(fut_error(c), FUT_ECANCELED);
    fut_promise_drop(p[0]);
    fut_promise_drop(p[1]);
    fut_promise_drop(p[2]);
    fut_release(c);
}

static void test_all_of_zero_fulfils_at_once(void **state)
{
    (void)state;
    fut_t *c = fut_all(NULL, 0);
    assert_int_equal(fut_state(c), FUT_FULFILLED);
    assert_null(fut_input(c, 0));
    fut_release(c);
    fut_t *dummy[1] = {NULL};
    c = fut_all(dummy, 0);
    assert_int_equal(fut_state(c), FUT_FULFILLED);
    fut_release(c);
}

static void test_all_of_already_settled_inputs(void **state)
{
    (void)state;
    fut_t *f[2] = {fut_ready(fut_ok_i64(1)), fut_ready(fut_ok_i64(2))};
    fut_t *c = fut_all(f, 2);
    assert_int_equal(fut_state(c), FUT_FULFILLED);
    assert_int_equal(fut_value_i64(fut_input(c, 1)), 2);
    fut_release(c);
}

static void test_all_of_many_inputs(void **state)
{
    (void)state;
    enum { M = 1000 };
    static fut_promise_t *p[M];
    static fut_t *f[M];
    make_promises(p, f, M);
    fut_t *c = fut_all(f, M);
    for (int i = 0; i < M; i++) {
        assert_int_equal(fut_state(c), FUT_PENDING);
        fut_promise_settle(p[i], fut_ok_i64(i));
    }
    assert_int_equal(fut_state(c), FUT_FULFILLED);
    for (int i = 0; i < M; i++)
        assert_int_equal(fut_value_i64(fut_input(c, (size_t)i)), i);
    fut_release(c);
}

/* ---- fut_all_settled ------------------------------------------------------
 */

static void test_all_settled_waits_for_every_input(void **state)
{
    (void)state;
    fut_promise_t *p[N];
    fut_t *f[N];
    make_promises(p, f, N);
    fut_t *c = fut_all_settled(f, N);
    assert_int_equal(fut_promise_settle(p[1], fut_fail(E1)), 0);
    assert_int_equal(fut_state(c), FUT_PENDING);
    assert_int_equal(fut_cancel(fut_input(c, 2)), 0);
    assert_int_equal(fut_state(c), FUT_PENDING);
    assert_int_equal(fut_promise_settle(p[0], fut_ok_i64(5)), 0);
    assert_int_equal(fut_state(c), FUT_FULFILLED);
    assert_null(fut_value(c));
    assert_int_equal(fut_state(fut_input(c, 0)), FUT_FULFILLED);
    assert_int_equal(fut_value_i64(fut_input(c, 0)), 5);
    assert_int_equal(fut_error(fut_input(c, 1)), E1);
    assert_int_equal(fut_state(fut_input(c, 2)), FUT_CANCELLED);
    fut_promise_drop(p[2]);
    fut_release(c);
}

static void test_all_settled_of_zero_fulfils_at_once(void **state)
{
    (void)state;
    fut_t *c = fut_all_settled(NULL, 0);
    assert_int_equal(fut_state(c), FUT_FULFILLED);
    fut_release(c);
}

/* ---- fut_any --------------------------------------------------------------
 */

static void test_any_settles_like_first_fulfilment(void **state)
{
    (void)state;
    atomic_int dtors = 0;
    fut_promise_t *p[N];
    fut_t *f[N];
    make_promises(p, f, N);
    fut_t *c = fut_any(f, N);
    assert_int_equal(fut_promise_settle(p[0], fut_fail(E1)), 0);
    assert_int_equal(fut_state(c), FUT_PENDING);
    void *v = counted_new(&dtors);
    assert_int_equal(fut_promise_settle(p[2], fut_ok_owned(v, counted_free)),
                     0);
    assert_int_equal(fut_state(c), FUT_FULFILLED);
    assert_ptr_equal(fut_value(c), v);
    /* The loser nobody else observes was cancelled when any settled: its
     * late value is disposed at once. */
    assert_int_equal(fut_state(fut_input(c, 1)), FUT_CANCELLED);
    void *w = counted_new(&dtors);
    assert_int_equal(fut_promise_settle(p[1], fut_ok_owned(w, counted_free)),
                     FUT_EALREADY);
    assert_ptr_equal(fut_value(c), v);
    assert_int_equal(dtors, 1);
    fut_release(c);
    assert_int_equal(dtors, 2);
}

static void test_any_carries_i64_winner(void **state)
{
    (void)state;
    fut_t *f[2] = {fut_ready(fut_fail(E1)), fut_ready(fut_ok_i64(-9))};
    fut_t *c = fut_any(f, 2);
    assert_int_equal(fut_state(c), FUT_FULFILLED);
    assert_int_equal(fut_value_i64(c), -9);
    fut_release(c);
}

static void test_any_without_fulfilment_settles_like_last(void **state)
{
    (void)state;
    fut_promise_t *p[N];
    fut_t *f[N];
    make_promises(p, f, N);
    fut_t *c = fut_any(f, N);
    assert_int_equal(fut_promise_settle(p[2], fut_fail(E3)), 0);
    assert_int_equal(fut_promise_settle(p[0], fut_fail(E1)), 0);
    assert_int_equal(fut_state(c), FUT_PENDING);
    assert_int_equal(fut_promise_settle(p[1], fut_fail(E2)), 0);
    assert_int_equal(fut_state(c), FUT_REJECTED);
    assert_int_equal(fut_error(c), E2);
    fut_release(c);
}

static void test_any_of_zero_is_einval(void **state)
{
    (void)state;
    fut_t *c = fut_any(NULL, 0);
    assert_int_equal(fut_state(c), FUT_REJECTED);
    assert_int_equal(fut_error(c), FUT_EINVAL);
    fut_release(c);
}

/* ---- fut_race -------------------------------------------------------------
 */

static void test_race_settles_like_first_settlement(void **state)
{
    (void)state;
    fut_promise_t *p[N];
    fut_t *f[N];
    make_promises(p, f, N);
    fut_t *c = fut_race(f, N);
    assert_int_equal(fut_state(c), FUT_PENDING);
    assert_int_equal(fut_promise_settle(p[1], fut_fail(E1)), 0);
    assert_int_equal(fut_state(c), FUT_REJECTED);
    assert_int_equal(fut_error(c), E1);
    /* the losers were cancelled when the race settled */
    assert_int_equal(fut_promise_settle(p[0], fut_ok_i64(1)), FUT_EALREADY);
    assert_int_equal(fut_error(c), E1);
    assert_int_equal(fut_state(fut_input(c, 2)), FUT_CANCELLED);
    fut_promise_drop(p[2]);
    fut_release(c);
}

static void test_race_carries_winner_value(void **state)
{
    (void)state;
    atomic_int dtors = 0;
    fut_promise_t *p[N];
    fut_t *f[N];
    make_promises(p, f, N);
    fut_t *c = fut_race(f, N);
    void *v = counted_new(&dtors);
    assert_int_equal(fut_promise_settle(p[2], fut_ok_owned(v, counted_free)),
                     0);
    assert_int_equal(fut_state(c), FUT_FULFILLED);
    assert_ptr_equal(fut_value(c), v);
    /* late settles of the cancelled losers: disposed at once */
    fut_promise_settle(p[0], fut_ok_owned(counted_new(&dtors), counted_free));
    fut_promise_settle(p[1], fut_ok_i64(3));
    assert_ptr_equal(fut_value(c), v);
    assert_int_equal(dtors, 1);
    fut_release(c);
    assert_int_equal(dtors, 2);
}

static void test_race_of_zero_is_einval(void **state)
{
    (void)state;
    fut_t *c = fut_race(NULL, 0);
    assert_int_equal(fut_state(c), FUT_REJECTED);
    assert_int_equal(fut_error(c), FUT_EINVAL);
    fut_release(c);
}

/* ---- bad arguments ---------------------------------------------------------
 */

static void null_array_case(comb_fn fn)
{
    fut_t *c = fn(NULL, 2);
    assert_non_null(c);
    assert_int_equal(fut_state(c), FUT_REJECTED);
    assert_int_equal(fut_error(c), FUT_EINVAL);
    assert_null(fut_input(c, 0));
    fut_release(c);
}

static void test_null_array_gives_einval(void **state)
{
    (void)state;
    null_array_case(fut_all);
    null_array_case(fut_all_settled);
    null_array_case(fut_any);
    null_array_case(fut_race);
}

static void null_element_case(comb_fn fn)
{
    atomic_int dtors = 0;
    fut_promise_t *p;
    fut_t *f[4] = {
        fut_ready(fut_ok_owned(counted_new(&dtors), counted_free)),
        NULL,
        fut_promise_new(&p),
        fut_ready(fut_ok_owned(counted_new(&dtors), counted_free)),
    };
    fut_t *c = fn(f, 4);
    assert_int_equal(fut_state(c), FUT_REJECTED);
    assert_int_equal(fut_error(c), FUT_EINVAL);
    fut_release(c);
    /* every non-NULL input was consumed: the last references are gone */
    assert_int_equal(dtors, 2);
    /* the promise's future went too: settling it now disposes the value */
    assert_int_equal(
        fut_promise_settle(p, fut_ok_owned(counted_new(&dtors), counted_free)),
        0);
    assert_int_equal(dtors, 3);
}

static void test_null_element_gives_einval_and_consumes_others(void **state)
{
    (void)state;
    null_element_case(fut_all);
    null_element_case(fut_all_settled);
    null_element_case(fut_any);
    null_element_case(fut_race);
}

/* ---- fut_input and lifetimes ------------------------------------------------
 */

static void test_input_out_of_range_or_not_combinator(void **state)
{
    (void)state;
    fut_t *f[2] = {fut_ready(fut_ok_i64(1)), fut_ready(fut_ok_i64(2))};
    fut_t *c = fut_race(f, 2);
    assert_non_null(fut_input(c, 0));
    assert_non_null(fut_input(c, 1));
    assert_null(fut_input(c, 2));
    assert_null(fut_input(c, SIZE_MAX));
    fut_t *plain = fut_ready(fut_ok_i64(1));
    assert_null(fut_input(plain, 0));
    fut_promise_t *p;
    fut_t *pf = fut_promise_new(&p);
    assert_null(fut_input(pf, 0));
    assert_null(fut_input(NULL, 0));
    fut_t *t = fut_then(fut_retain(c), fut_inline(), NULL, NULL);
    assert_null(fut_input(t, 0));
    fut_release(t);
    fut_promise_drop(p);
    fut_release(pf);
    fut_release(plain);
    fut_release(c);
}

static void test_combined_keeps_inputs_alive(void **state)
{
    (void)state;
    atomic_int dtors = 0;
    fut_t *f[2] = {
        fut_ready(fut_ok_owned(counted_new(&dtors), counted_free)),
        fut_ready(fut_ok_owned(counted_new(&dtors), counted_free)),
    };
    void *v0 = fut_value(f[0]), *v1 = fut_value(f[1]);
    fut_t *c = fut_all_settled(f, 2); /* the only references now */
    assert_int_equal(dtors, 0);
    assert_ptr_equal(fut_value(fut_input(c, 0)), v0);
    assert_ptr_equal(fut_value(fut_input(c, 1)), v1);
    fut_release(c);
    assert_int_equal(dtors, 2);
}

static fut_result_t cb_adopt_owned(void *arg, fut_t *src)
{
    (void)src;
    return fut_adopt(fut_ready(fut_ok_owned(counted_new(arg), counted_free)));
}

static void test_destructors_once_through_nested_combinators(void **state)
{
    (void)state;
    atomic_int dtors = 0;
    fut_t *a[2] = {
        fut_ready(fut_ok_owned(counted_new(&dtors), counted_free)),
        fut_then(fut_ready(fut_ok_i64(0)), fut_inline(), cb_adopt_owned,
                 &dtors),
    };
    fut_t *inner = fut_any(a, 2);
    fut_t *b[2] = {
        inner,
        fut_ready(fut_ok_owned(counted_new(&dtors), counted_free)),
    };
    fut_t *outer = fut_all(b, 2);
    assert_int_equal(fut_state(outer), FUT_FULFILLED);
    assert_non_null(fut_value(fut_input(outer, 0)));
    assert_non_null(fut_value(fut_input(fut_input(outer, 0), 1)));
    assert_int_equal(dtors, 0);
    fut_release(outer);
    assert_int_equal(dtors, 3);
}

/* Inputs settled by tasks on the test executor: nothing settles until run. */
static fut_result_t task_val(void *arg)
{
    return fut_ok_i64((int64_t)(intptr_t)arg);
}

static void test_race_with_executor_tasks_in_order(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    assert_non_null(tx);
    fut_t *f[3];
    for (int i = 0; i < 3; i++)
        f[i] = fut_async(testexec_ex(tx), task_val, (void *)(intptr_t)(i + 1));
    fut_t *r = fut_race(f, 3);
    assert_int_equal(fut_state(r), FUT_PENDING);
    assert_true(testexec_run_one(tx));
    assert_int_equal(fut_value_i64(r), 1);
    testexec_run_all(tx);
    assert_int_equal(fut_value_i64(r), 1);
    fut_release(r);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

/* A count no array can have is refused before the array is read: the
 * inputs (a short array, on the heap so ASan sees any read past it) are
 * neither read nor consumed, and stay the caller's. */
static void test_too_large_count_reads_nothing(void **state)
{
    (void)state;
    comb_fn fns[] = {fut_all, fut_all_settled, fut_any, fut_race};
    size_t counts[] = {SIZE_MAX, SIZE_MAX / 16, UINT32_MAX};
    atomic_int dtors = 0;
    fut_t **in = malloc(2 * sizeof *in);
    assert_non_null(in);
    for (int k = 0; k < 2; k++)
        in[k] = fut_ready(fut_ok_owned(counted_new(&dtors), counted_free));
    for (int i = 0; i < 4; i++)
        for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
            fut_t *f = fns[i](in, counts[c]);
            assert_int_equal(fut_state(f), FUT_REJECTED);
            assert_int_equal(fut_error(f), FUT_EINVAL);
            fut_release(f);
        }
    assert_int_equal(atomic_load(&dtors), 0); /* not consumed */
    for (int k = 0; k < 2; k++) {
        assert_int_equal(fut_state(in[k]), FUT_FULFILLED);
        fut_release(in[k]);
    }
    assert_int_equal(atomic_load(&dtors), 2);
    free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_fulfils_when_every_input_fulfils),
        cmocka_unit_test(test_all_settles_like_first_rejection),
        cmocka_unit_test(test_all_settles_like_cancelled_input),
        cmocka_unit_test(test_all_of_zero_fulfils_at_once),
        cmocka_unit_test(test_all_of_already_settled_inputs),
        cmocka_unit_test(test_all_of_many_inputs),
        cmocka_unit_test(test_all_settled_waits_for_every_input),
        cmocka_unit_test(test_all_settled_of_zero_fulfils_at_once),
        cmocka_unit_test(test_any_settles_like_first_fulfilment),
        cmocka_unit_test(test_any_carries_i64_winner),
        cmocka_unit_test(test_any_without_fulfilment_settles_like_last),
        cmocka_unit_test(test_any_of_zero_is_einval),
        cmocka_unit_test(test_race_settles_like_first_settlement),
        cmocka_unit_test(test_race_carries_winner_value),
        cmocka_unit_test(test_race_of_zero_is_einval),
        cmocka_unit_test(test_null_array_gives_einval),
        cmocka_unit_test(test_null_element_gives_einval_and_consumes_others),
        cmocka_unit_test(test_too_large_count_reads_nothing),
        cmocka_unit_test(test_input_out_of_range_or_not_combinator),
        cmocka_unit_test(test_combined_keeps_inputs_alive),
        cmocka_unit_test(test_destructors_once_through_nested_combinators),
        cmocka_unit_test(test_race_with_executor_tasks_in_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
