/* Cancellation: before start, while running (fut_cancel_requested, late
 * result disposed), dependents, settled futures, delays. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include <fut.h>

#include "testexec.h"

#define USER_ERR (-100321)

static testexec_t *new_tx(void)
{
    testexec_t *tx = testexec_new(NULL, NULL);
    assert_non_null(tx);
    return tx;
}

static fut_result_t task_count(void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
    return fut_ok_i64(1);
}

static fut_result_t cb_count(void *arg, fut_t *src)
{
    atomic_fetch_add((atomic_int *)arg, 1);
    return fut_forward(src);
}

static void test_cancel_before_start_task_never_runs(void **state)
{
    (void)state;
    testexec_t *tx = new_tx();
    atomic_int runs = 0;
    fut_t *f = fut_async(testexec_ex(tx), task_count, &runs);
    assert_int_equal(fut_cancel(f), 0);
    assert_int_equal(fut_state(f), FUT_CANCELLED);
    assert_int_equal(fut_error(f), FUT_ECANCELED);
    testexec_run_all(tx);
    assert_int_equal(runs, 0);
    assert_int_equal(fut_state(f), FUT_CANCELLED);
    fut_release(f);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

static void test_cancel_released_task_before_start(void **state)
{
    (void)state;
    /* the executor's hold keeps the task safe after our release */
    testexec_t *tx = new_tx();
    atomic_int runs = 0;
    fut_t *f = fut_async(testexec_ex(tx), task_count, &runs);
    assert_int_equal(fut_cancel(f), 0);
    fut_release(f);
    testexec_run_all(tx);
    assert_int_equal(runs, 0);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

static void test_cancel_settled_is_ealready(void **state)
{
    (void)state;
    fut_t *f = fut_ready(fut_ok_i64(1));
    assert_int_equal(fut_cancel(f), FUT_EALREADY);
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    assert_int_equal(fut_value_i64(f), 1);
    fut_release(f);
    f = fut_ready(fut_fail(USER_ERR));
    assert_int_equal(fut_cancel(f), FUT_EALREADY);
    assert_int_equal(fut_error(f), USER_ERR);
    fut_release(f);
}

static void test_cancel_twice_second_is_ealready(void **state)
{
    (void)state;
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    assert_int_equal(fut_cancel(f), 0);
    assert_int_equal(fut_cancel(f), FUT_EALREADY);
    assert_int_equal(fut_state(f), FUT_CANCELLED);
    fut_promise_drop(p);
    fut_release(f);
}

static void test_cancel_null_is_einval(void **state)
{
    (void)state;
    assert_int_equal(fut_cancel(NULL), FUT_EINVAL);
}

static void test_cancel_requested_false_outside_tasks(void **state)
{
    (void)state;
    assert_false(fut_cancel_requested());
}

static fut_result_t task_record_requested(void *arg)
{
    *(int *)arg = fut_cancel_requested();
    return fut_ok_i64(0);
}

static void test_cancel_requested_false_in_uncancelled_task(void **state)
{
    (void)state;
    int seen = -1;
    fut_release(fut_async(fut_inline(), task_record_requested, &seen));
    assert_int_equal(seen, 0);
}

/* A task that cancels its own future while running (the test executor runs
 * it on this thread, after the test published the future). */
static fut_t *self_fut;
static int requested_before, requested_after;

static fut_result_t task_cancels_itself(void *arg)
{
    requested_before = fut_cancel_requested();
    fut_cancel(self_fut);
    requested_after = fut_cancel_requested();
    return fut_ok_owned(counted_new(arg), counted_free);
}

static void test_cancel_running_task_self(void **state)
{
    (void)state;
    testexec_t *tx = new_tx();
    atomic_int dtors = 0;
    self_fut = fut_async(testexec_ex(tx), task_cancels_itself, &dtors);
    assert_true(testexec_run_one(tx));
    assert_int_equal(requested_before, 0);
    assert_int_equal(requested_after, 1);
    assert_int_equal(fut_state(self_fut), FUT_CANCELLED);
    assert_null(fut_value(self_fut));
    assert_int_equal(dtors, 1); /* the late result was disposed at once */
    fut_release(self_fut);
    assert_int_equal(dtors, 1);
    self_fut = NULL;
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

static fut_t *self_cont;

static fut_result_t cb_cancels_itself(void *arg, fut_t *src)
{
    (void)src;
    requested_before = fut_cancel_requested();
    fut_cancel(self_cont);
    requested_after = fut_cancel_requested();
    return fut_ok_owned(counted_new(arg), counted_free);
}

static void test_cancel_running_callback_disposes_late_result(void **state)
{
    (void)state;
    testexec_t *tx = new_tx();
    atomic_int dtors = 0;
    self_cont = fut_then(fut_ready(fut_ok_i64(1)), testexec_ex(tx),
                         cb_cancels_itself, &dtors);
    assert_true(testexec_run_one(tx));
    assert_int_equal(requested_before, 0);
    assert_int_equal(requested_after, 1);
    assert_int_equal(fut_state(self_cont), FUT_CANCELLED);
    assert_int_equal(dtors, 1);
    fut_release(self_cont);
    assert_int_equal(dtors, 1);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

/* The same, with the cancel coming from another thread while the task runs
 * on a worker thread.  The worker records into atomics. */
typedef struct running {
    testexec_t *tx;
    atomic_int started;
    atomic_int saw_request;
    atomic_int dtors;
} running_t;

static fut_result_t task_spins_until_cancelled(void *arg)
{
    running_t *r = arg;
    atomic_store(&r->started, 1);
    uint64_t end = fut_now_ns() + 10ull * 1000 * 1000 * 1000;
    while (!fut_cancel_requested() && fut_now_ns() < end)
        ;
    atomic_store(&r->saw_request, fut_cancel_requested());
    return fut_ok_owned(counted_new(&r->dtors), counted_free);
}

static void *run_one_thread(void *arg)
{
    running_t *r = arg;
    testexec_run_one(r->tx);
    return NULL;
}

static void test_cancel_running_task_from_another_thread(void **state)
{
    (void)state;
    running_t r = {.tx = new_tx()};
    atomic_int after = 0;
    fut_t *f = fut_async(testexec_ex(r.tx), task_spins_until_cancelled, &r);
    fut_t *dep = fut_then(fut_retain(f), fut_inline(), cb_count, &after);
    fut_t *rec = fut_catch(fut_retain(f), fut_inline(), cb_count, &after);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, run_one_thread, &r), 0);
    while (!atomic_load(&r.started))
        ;
    assert_int_equal(fut_cancel(f), 0);
    assert_int_equal(fut_state(f), FUT_CANCELLED);
    pthread_join(th, NULL);
    assert_int_equal(r.saw_request, 1);
    assert_int_equal(r.dtors, 1);
    assert_int_equal(fut_state(f), FUT_CANCELLED);
    assert_int_equal(fut_state(dep), FUT_CANCELLED);
    assert_int_equal(fut_error(dep), FUT_ECANCELED);
    assert_int_equal(fut_state(rec), FUT_CANCELLED); /* forwarded */
    assert_int_equal(after, 1);                      /* only the catch */
    fut_release(dep);
    fut_release(rec);
    fut_release(f);
    assert_int_equal(r.dtors, 1);
    assert_int_equal(testexec_destroy(r.tx, NULL, NULL), 0);
}

static void test_dependents_see_cancellation(void **state)
{
    (void)state;
    testexec_t *tx = new_tx();
    atomic_int thens = 0, catches = 0, finals = 0;
    fut_promise_t *p;
    fut_t *src = fut_promise_new(&p);
    fut_t *a = fut_then(fut_retain(src), testexec_ex(tx), cb_count, &thens);
    a = fut_then(a, testexec_ex(tx), cb_count, &thens);
    fut_t *b = fut_catch(fut_retain(src), testexec_ex(tx), cb_count, &catches);
    fut_t *c = fut_finally(fut_retain(src), testexec_ex(tx), cb_count, &finals);
    assert_int_equal(fut_cancel(src), 0);
    testexec_run_all(tx);
    assert_int_equal(thens, 0);
    assert_int_equal(catches, 1);
    assert_int_equal(finals, 1);
    assert_int_equal(fut_state(a), FUT_CANCELLED);
    assert_int_equal(fut_error(a), FUT_ECANCELED);
    assert_int_equal(fut_state(b), FUT_CANCELLED);
    assert_int_equal(fut_state(c), FUT_CANCELLED);
    assert_int_equal(fut_promise_settle(p, fut_ok_i64(1)), FUT_EALREADY);
    fut_release(a);
    fut_release(b);
    fut_release(c);
    fut_release(src);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

static void test_cancel_continuation_before_it_runs(void **state)
{
    (void)state;
    testexec_t *tx = new_tx();
    atomic_int calls = 0;
    fut_t *f =
        fut_then(fut_ready(fut_ok_i64(1)), testexec_ex(tx), cb_count, &calls);
    assert_int_equal(testexec_pending(tx), 1);
    assert_int_equal(fut_cancel(f), 0);
    testexec_run_all(tx);
    assert_int_equal(calls, 0);
    assert_int_equal(fut_state(f), FUT_CANCELLED);
    fut_release(f);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

static void test_cancel_pending_continuation_callback_never_runs(void **state)
{
    (void)state;
    atomic_int calls = 0;
    fut_promise_t *p;
    fut_t *src = fut_promise_new(&p); /* kept: the cancel leaves it alone */
    fut_t *f = fut_then(fut_retain(src), fut_inline(), cb_count, &calls);
    assert_int_equal(fut_cancel(f), 0);
    assert_int_equal(fut_promise_settle(p, fut_ok_i64(1)), 0);
    assert_int_equal(calls, 0);
    assert_int_equal(fut_state(f), FUT_CANCELLED);
    fut_release(f);
    fut_release(src);
}

static void test_cancel_delay_removes_timer(void **state)
{
    (void)state;
    testexec_opts_t o = {.timers = true};
    testexec_t *tx = testexec_new(&o, NULL);
    assert_non_null(tx);
    fut_t *d = fut_delay(testexec_ex(tx), 3600ull * 1000 * 1000 * 1000);
    assert_int_equal(testexec_timers(tx), 1);
    assert_int_equal(fut_cancel(d), 0);
    assert_int_equal(testexec_timers(tx), 0);
    assert_int_equal(fut_state(d), FUT_CANCELLED);
    assert_int_equal(testexec_fire_timers(tx, UINT64_MAX), 0);
    assert_int_equal(fut_state(d), FUT_CANCELLED);
    fut_release(d);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

static void test_cancel_long_delay_on_timer_thread(void **state)
{
    (void)state;
    fut_t *d = fut_delay(fut_inline(), 3600ull * 1000 * 1000 * 1000);
    uint64_t t0 = fut_now_ns();
    assert_int_equal(fut_cancel(d), 0);
    assert_int_equal(fut_wait(d, -1), 0);
    assert_true(fut_now_ns() - t0 < 1000ull * 1000 * 1000);
    assert_int_equal(fut_error(d), FUT_ECANCELED);
    fut_release(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cancel_before_start_task_never_runs),
        cmocka_unit_test(test_cancel_released_task_before_start),
        cmocka_unit_test(test_cancel_settled_is_ealready),
        cmocka_unit_test(test_cancel_twice_second_is_ealready),
        cmocka_unit_test(test_cancel_null_is_einval),
        cmocka_unit_test(test_cancel_requested_false_outside_tasks),
        cmocka_unit_test(test_cancel_requested_false_in_uncancelled_task),
        cmocka_unit_test(test_cancel_running_task_self),
        cmocka_unit_test(test_cancel_running_callback_disposes_late_result),
        cmocka_unit_test(test_cancel_running_task_from_another_thread),
        cmocka_unit_test(test_dependents_see_cancellation),
        cmocka_unit_test(test_cancel_continuation_before_it_runs),
        cmocka_unit_test(test_cancel_pending_continuation_callback_never_runs),
        cmocka_unit_test(test_cancel_delay_removes_timer),
        cmocka_unit_test(test_cancel_long_delay_on_timer_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
