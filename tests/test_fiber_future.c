/* Fibers' futures as the rest of the core sees them (tests/test_fiber.c
 * has the fibers themselves): a fiber's future is a source that a cancel
 * propagates to when nothing else observes it, a task of the fiber's
 * executor waiting on it never runs the fiber's function off its stack
 * (the fork-join take), and a stall report names the fiber's function. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <unistd.h>

#include <fut.h>

#include "testexec.h"

#define MS (1000 * 1000ull)

/* ---- cancellation reaching a fiber ----------------------------------------- */

struct awaiter {
    fut_t *on;
    int rc;
    bool requested;
};

static fut_result_t await_on(void *arg)
{
    struct awaiter *a = arg;
    a->rc = fut_await(a->on, NULL);
    a->requested = fut_cancel_requested();
    return fut_ok(NULL);
}

static fut_result_t pass(void *arg, fut_t *src)
{
    (void)arg;
    (void)src;
    return fut_ok(NULL);
}

static void test_cancel_reaches_unobserved_fiber_through_consumer(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    fut_promise_t *p;
    fut_t *never = fut_promise_new(&p);
    struct awaiter a = {.on = never, .rc = 1};
    fut_t *f = fut_fiber(testexec_ex(tx), await_on, &a, NULL);
    testexec_run_all(tx); /* suspended on NEVER */
    fut_t *d = fut_then(f, fut_inline(), pass, NULL); /* consumes F */
    assert_int_equal(fut_cancel(d), 0);
    testexec_run_all(tx); /* the fiber's wake */
    assert_int_equal(a.rc, FUT_ECANCELED);
    assert_true(a.requested);
    fut_release(d);
    fut_promise_drop(p);
    fut_release(never);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

static void test_cancel_spares_fiber_another_holder_observes(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    fut_promise_t *p;
    fut_t *never = fut_promise_new(&p);
    struct awaiter a = {.on = never, .rc = 1};
    fut_t *f = fut_fiber(testexec_ex(tx), await_on, &a, NULL);
    testexec_run_all(tx);
    fut_t *d = fut_then(fut_retain(f), fut_inline(), pass, NULL);
    assert_int_equal(fut_cancel(d), 0);
    testexec_run_all(tx);
    assert_int_equal(fut_state(f), FUT_PENDING); /* we still observe it */
    assert_int_equal(a.rc, 1);                    /* still suspended */
    assert_int_equal(fut_promise_settle(p, fut_ok(NULL)), 0);
    testexec_run_all(tx);
    assert_int_equal(a.rc, 0);
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    fut_release(f);
    fut_release(d);
    fut_release(never);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

/* ---- a task waiting on a fiber of its own executor --------------------------- */

static fut_result_t seven_in_fiber(void *arg)
{
    return fut_ok_i64(fut_in_fiber() ? *(const int *)arg : -1);
}

static fut_result_t spawn_and_wait(void *arg)
{
    static const int seven = 7;
    fut_t *g = fut_fiber(fut_executor_current(), seven_in_fiber,
                         (void *)(uintptr_t)&seven, NULL);
    int rc = fut_wait(g, -1);
    int64_t v = rc ? rc : fut_value_i64(g);
    fut_release(g);
    (void)arg;
    return fut_ok_i64(v);
}

static void test_task_waiting_on_fiber_of_its_executor_runs_it_on_its_stack(
    void **state)
{
    (void)state;
    testexec_opts_t o = {.take = true, .try_run_one = true};
    testexec_t *tx = testexec_new(&o, NULL);
    fut_t *outer = fut_async(testexec_ex(tx), spawn_and_wait, NULL);
    testexec_run_all(tx);
    assert_int_equal(fut_state(outer), FUT_FULFILLED);
    assert_int_equal(fut_value_i64(outer), 7); /* ran in the fiber */
    assert_int_equal(testexec_taken(tx), 0);
    fut_release(outer);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

/* ---- stall reports ------------------------------------------------------------- */

static fut_result_t block_in_fiber(void *arg)
{
    (void)arg;
    usleep(120 * 1000); /* a blocking call: no await, no suspension */
    return fut_ok(NULL);
}

static void record_fn(void *ud, const fut_log_event_t *ev)
{
    if (ev->kind == FUT_LOG_STALL)
        *(const void **)ud = ev->fn;
}

static void test_stall_report_names_the_fiber_function(void **state)
{
    (void)state;
    const void *fn = NULL;
    fut_loop_opts_t o = {.stall_ns = 50 * MS, .log = record_fn, .log_ud = &fn};
    fut_executor_t *loop = NULL;
    assert_int_equal(fut_loop_create(&loop, &o), 0);
    fut_t *f = fut_fiber(loop, block_in_fiber, NULL, NULL);
    assert_int_equal(fut_loop_run(loop, f), 0);
    assert_true(fn == (const void *)(uintptr_t)block_in_fiber);
    fut_release(f);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cancel_reaches_unobserved_fiber_through_consumer),
        cmocka_unit_test(test_cancel_spares_fiber_another_holder_observes),
        cmocka_unit_test(
            test_task_waiting_on_fiber_of_its_executor_runs_it_on_its_stack),
        cmocka_unit_test(test_stall_report_names_the_fiber_function),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
