/* Fibers (<fut/fiber.h>): fut_fiber on every kind of executor, waits that
 * suspend instead of blocking, fut_yield's order, the own-future deadlock.
 * Cancellation, timeouts and destroy with fibers suspended are
 * tests/test_fiber_cancel.c; 10^5 suspended stacks, no memory and the
 * guard page tests/test_fiber_stack.c. */
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
#include "fp_control.h"
#include "fiber_helpers.h"

/* ---- basics ------------------------------------------------------------- */

static fut_result_t answer(void *arg)
{
    (void)arg;
    return fut_ok_i64(fut_in_fiber() ? 42 : -1);
}

static void test_fiber_returns_value_on_inline(void **state)
{
    (void)state;
    fut_t *f = fut_fiber(fut_inline(), answer, NULL, NULL);
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    assert_int_equal(fut_value_i64(f), 42);
    fut_release(f);
}

static void test_in_fiber_false_outside(void **state)
{
    (void)state;
    assert_false(fut_in_fiber());
    fut_yield(); /* returns at once */
    assert_false(fut_in_fiber());
}

static void test_fiber_bad_arguments_are_einval(void **state)
{
    (void)state;
    fut_fiber_opts_t big = {.stack_size = FUT_FIBER_STACK_MAX + 1};
    fut_t *f[3] = {fut_fiber(NULL, answer, NULL, NULL),
                   fut_fiber(fut_inline(), NULL, NULL, NULL),
                   fut_fiber(fut_inline(), answer, NULL, &big)};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(fut_error(f[i]), FUT_EINVAL);
        fut_release(f[i]);
    }
}

static void test_fiber_small_and_odd_stack_sizes_run(void **state)
{
    (void)state;
    size_t sizes[] = {1, FUT_FIBER_STACK_MIN, 100000, 1 << 20};
    for (int i = 0; i < 4; i++) {
        fut_fiber_opts_t o = {.stack_size = sizes[i]};
        fut_t *f = fut_fiber(fut_inline(), answer, NULL, &o);
        assert_int_equal(fut_value_i64(f), 42);
        fut_release(f);
    }
}

static void test_fiber_refused_is_eshutdown_and_never_runs(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    testexec_refuse(tx, FUT_ESHUTDOWN);
    fut_t *f = fut_fiber(testexec_ex(tx), answer, NULL, NULL);
    assert_int_equal(fut_error(f), FUT_ESHUTDOWN);
    assert_int_equal(testexec_ran(tx), 0);
    fut_release(f);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

/* ---- suspending waits ----------------------------------------------------- */

static void test_await_settled_does_not_switch(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    fut_t *ready = fut_ready(fut_ok((void *)&tx));
    struct awaiter a = {.on = ready};
    fut_t *f = fut_fiber(testexec_ex(tx), await_one, &a, NULL);
    assert_true(testexec_run_one(tx));
    assert_int_equal(a.steps, 2); /* one run, no second task */
    assert_ptr_equal(a.value, &tx);
    assert_int_equal(testexec_submitted(tx), 1);
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    fut_release(f);
    fut_release(ready);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

static void test_await_pending_suspends_and_resumes_as_task(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    fut_promise_t *p;
    fut_t *pf = fut_promise_new(&p);
    struct awaiter a = {.on = pf};
    fut_t *f = fut_fiber(testexec_ex(tx), await_one, &a, NULL);
    assert_int_equal(testexec_run_all(tx), 1);
    assert_int_equal(a.steps, 1); /* suspended, the thread went on */
    assert_int_equal(fut_state(f), FUT_PENDING);
    assert_int_equal(fut_promise_settle(p, fut_ok(&a)), 0);
    assert_int_equal(testexec_pending(tx), 1); /* resumes as a task */
    assert_int_equal(a.steps, 1);
    assert_int_equal(testexec_run_all(tx), 1);
    assert_int_equal(a.steps, 2);
    assert_int_equal(a.rc, 0);
    assert_ptr_equal(a.value, &a);
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    fut_release(f);
    fut_release(pf);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

static void test_await_on_inline_resumes_on_settling_thread(void **state)
{
    (void)state;
    fut_promise_t *p;
    fut_t *pf = fut_promise_new(&p);
    struct awaiter a = {.on = pf};
    fut_t *f = fut_fiber(fut_inline(), await_one, &a, NULL);
    assert_int_equal(a.steps, 1);
    assert_int_equal(fut_state(f), FUT_PENDING);
    fut_promise_settle(p, fut_ok_i64(7));
    assert_int_equal(a.steps, 2);
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    fut_release(f);
    fut_release(pf);
}

static fut_result_t wait_own(void *arg)
{
    fut_t **own = arg;
    int rc = fut_wait(*own, -1);
    int rc2 = fut_await(*own, NULL);
    return fut_ok_i64(rc == FUT_EDEADLK && rc2 == FUT_EDEADLK);
}

static void test_wait_on_own_future_is_edeadlk(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    fut_t *own = NULL;
    fut_t *f = fut_fiber(loop, wait_own, &own, NULL);
    own = f;
    assert_int_equal(run_until(loop, f), 0);
    assert_int_equal(fut_value_i64(f), 1);
    fut_release(f);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

struct settler {
    fut_promise_t *p;
    int64_t v;
};

static void *settle_later(void *arg)
{
    struct settler *s = arg;
    usleep(2000);
    fut_promise_settle(s->p, fut_ok_i64(s->v));
    return NULL;
}

static fut_result_t await_i64(void *arg)
{
    fut_t *on = arg;
    int rc = fut_await(on, NULL);
    return rc ? fut_fail(rc) : fut_ok_i64(fut_value_i64(on) + 1);
}

/* EX runs a fiber awaiting a promise another thread settles. */
static void await_from_other_thread(fut_executor_t *ex, bool loop)
{
    struct settler s = {.v = 41};
    fut_t *pf = fut_promise_new(&s.p);
    fut_t *f = fut_fiber(ex, await_i64, pf, NULL);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, settle_later, &s), 0);
    if (loop)
        assert_int_equal(run_until(ex, f), 0);
    else
        assert_int_equal(fut_wait(f, -1), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(fut_value_i64(f), 42);
    fut_release(f);
    fut_release(pf);
    assert_int_equal(fut_executor_destroy(ex), 0);
}

static void test_await_promise_from_other_thread_on_loop(void **state)
{
    (void)state;
    await_from_other_thread(new_loop(), true);
}

static void test_await_promise_from_other_thread_on_pool(void **state)
{
    (void)state;
    await_from_other_thread(new_pool(2), false);
}

static fut_result_t delays(void *arg)
{
    fut_executor_t *loop = arg;
    for (int i = 0; i < 3; i++) {
        fut_t *d = fut_delay(loop, 20 * MS);
        int rc = fut_await(d, NULL);
        fut_release(d);
        if (rc)
            return fut_fail(rc);
    }
    return fut_ok_i64(1);
}

/* Overlap, not speed: 1000 fibers x 3 awaits of 20 ms would take 60 s one
 * after another; suspended side by side they take about 60 ms.  The bound
 * (half the sum) is far from both, so load cannot make this flaky.  (TSan
 * makes a thread state per fiber, milliseconds each: 100 fibers there.) */
static void test_thousand_fibers_on_loop_overlap_their_delays(void **state)
{
    (void)state;
    enum { MAX = 1000 };
    const int n = TEST_UNDER_TSAN ? 100 : MAX;
    fut_executor_t *loop = new_loop();
    static fut_t *fs[MAX];
    uint64_t t0 = fut_now_ns();
    for (int i = 0; i < n; i++)
        fs[i] = fut_fiber(loop, delays, loop, NULL);
    fut_t *all = fut_all(fs, (size_t)n);
    assert_int_equal(run_until(loop, all), 0);
    assert_true(fut_now_ns() - t0 < (uint64_t)n * 3 * 20 * MS / 2);
    for (int i = 0; i < n; i++)
        assert_int_equal(fut_value_i64(fut_input(all, (size_t)i)), 1);
    fut_release(all);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

static fut_result_t timed_wait(void *arg)
{
    fut_t *never = arg;
    int rc = fut_wait(never, 5 * MS);
    int rc0 = fut_wait(never, 0);
    return fut_ok_i64(rc == FUT_ETIMEDOUT && rc0 == FUT_ETIMEDOUT);
}

static void test_timed_wait_in_fiber_times_out(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    fut_promise_t *p;
    fut_t *never = fut_promise_new(&p);
    fut_t *f = fut_fiber(loop, timed_wait, never, NULL);
    assert_int_equal(run_until(loop, f), 0);
    assert_int_equal(fut_value_i64(f), 1);
    fut_release(f);
    fut_promise_drop(p);
    fut_release(never);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

struct two_waits {
    fut_t *a, *b;
    int rc_a, rc_b;
    fut_state_t b_state;
};

static fut_result_t timed_then_forever(void *arg)
{
    struct two_waits *w = arg;
    w->rc_a = fut_wait(w->a, 1 * MS);
    w->rc_b = fut_await(w->b, NULL);
    w->b_state = fut_state(w->b);
    return fut_ok(NULL);
}

/* The timed-out wait's node stays on A; A settling later must not wake
 * the fiber's next wait (on B). */
static void test_stale_wait_does_not_wake_a_later_wait(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    fut_promise_t *pa, *pb;
    struct two_waits w = {.a = fut_promise_new(&pa), .b = fut_promise_new(&pb)};
    fut_t *f = fut_fiber(loop, timed_then_forever, &w, NULL);
    fut_t *d = fut_delay(loop, 20 * MS);
    run_until(loop, d); /* A timed out, the fiber waits on B */
    fut_release(d);
    fut_promise_settle(pa, fut_ok(NULL));
    d = fut_delay(loop, 5 * MS);
    run_until(loop, d);
    fut_release(d);
    assert_int_equal(w.rc_a, FUT_ETIMEDOUT);
    assert_int_equal(fut_state(f), FUT_PENDING); /* still on B */
    fut_promise_settle(pb, fut_ok(NULL));
    assert_int_equal(run_until(loop, f), 0);
    assert_int_equal(w.rc_b, 0);
    assert_int_equal(w.b_state, FUT_FULFILLED);
    fut_release(f);
    fut_release(w.a);
    fut_release(w.b);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

/* ---- the switch keeps each context's floating-point control ---------- */


struct fp_probe {
    unsigned before, after;
};

static fut_result_t change_rounding(void *arg)
{
    struct fp_probe *p = arg;
    set_fp_control(fp_control() | ROUND_TO_ZERO);
    p->before = fp_control();
    fut_yield();
    p->after = fp_control();
    set_fp_control(p->before & ~ROUND_TO_ZERO);
    return fut_ok(NULL);
}

static void test_switch_keeps_fp_control_per_context(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    struct fp_probe p = {0};
    unsigned mine = fp_control();
    fut_t *f = fut_fiber(testexec_ex(tx), change_rounding, &p, NULL);
    assert_true(testexec_run_one(tx)); /* runs until the yield */
    assert_int_equal(fp_control(), mine); /* the scheduler's is back */
    assert_true(testexec_run_one(tx));
    assert_int_equal(p.after, p.before); /* the fiber's came back too */
    assert_int_equal(fp_control(), mine);
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    fut_release(f);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

/* ---- only the fiber's own code suspends ------------------------------- */

struct nested {
    fut_executor_t *loop;
    fut_t *on;
    atomic_int other_ran;
    int ran_when_woken;
    int rc;
};

static fut_result_t mark(void *arg)
{
    atomic_store(&((struct nested *)arg)->other_ran, 1);
    return fut_ok(NULL);
}

static fut_result_t wait_in_callback(void *arg, fut_t *src)
{
    struct nested *n = arg;
    (void)src;
    n->rc = fut_wait(n->on, -1); /* blocks the loop: no suspension here */
    n->ran_when_woken = atomic_load(&n->other_ran);
    return fut_ok(NULL);
}

static fut_result_t fiber_with_inline_callback(void *arg)
{
    struct nested *n = arg;
    fut_release(fut_fiber(n->loop, mark, n, NULL)); /* queued behind us */
    fut_t *r = fut_ready(fut_ok(NULL));
    fut_release(fut_then(r, fut_inline(), wait_in_callback, n));
    return fut_ok(NULL);
}

static void test_wait_in_inline_callback_inside_fiber_blocks(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    struct settler s = {.v = 1};
    struct nested n = {.loop = loop, .on = fut_promise_new(&s.p)};
    fut_t *f = fut_fiber(loop, fiber_with_inline_callback, &n, NULL);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, settle_later, &s), 0);
    assert_int_equal(run_until(loop, f), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(n.rc, 0);
    assert_int_equal(n.ran_when_woken, 0); /* the loop was blocked */
    fut_t *d = fut_delay(loop, 1 * MS);
    run_until(loop, d);
    fut_release(d);
    assert_int_equal(atomic_load(&n.other_ran), 1);
    fut_release(f);
    fut_release(n.on);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

/* ---- the pitfall: blocking inside a fiber still freezes the loop ------- */

static fut_result_t block_in_fiber(void *arg)
{
    (void)arg;
    usleep(120 * 1000); /* a blocking call: no await, no suspension */
    return fut_ok(NULL);
}

static void test_blocking_call_in_fiber_is_reported_as_a_stall(void **state)
{
    (void)state;
    fut_loop_opts_t o = {.stall_ns = 50 * MS};
    fut_executor_t *loop = NULL;
    assert_int_equal(fut_loop_create(&loop, &o), 0);
    fut_t *f = fut_fiber(loop, block_in_fiber, NULL, NULL);
    assert_int_equal(run_until(loop, f), 0);
    fut_stats_t st;
    assert_int_equal(fut_executor_stats(loop, &st), 0);
    assert_int_equal(st.stalls, 1);
    assert_true(st.longest_callback_ns >= 120 * MS);
    fut_release(f);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

/* ---- yield ----------------------------------------------------------------- */

struct yielder {
    char *log;
    atomic_int *n;
    char name;
};

static fut_result_t yield_thrice(void *arg)
{
    struct yielder *y = arg;
    for (int i = 0; i < 3; i++) {
        y->log[atomic_fetch_add(y->n, 1)] = y->name;
        fut_yield();
    }
    return fut_ok(NULL);
}

static void test_yield_interleaves_fibers_in_order(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    char log[8] = {0};
    atomic_int n = 0;
    struct yielder a = {log, &n, 'a'}, b = {log, &n, 'b'};
    fut_t *fs[2] = {fut_fiber(loop, yield_thrice, &a, NULL),
                    fut_fiber(loop, yield_thrice, &b, NULL)};
    fut_t *all = fut_all(fs, 2);
    assert_int_equal(run_until(loop, all), 0);
    assert_string_equal(log, "ababab");
    fut_release(all);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

/* ---- fibers in fibers ------------------------------------------------------ */

static fut_result_t fib_fiber(void *arg)
{
    intptr_t n = (intptr_t)arg;
    if (n < 2)
        return fut_ok_i64(n);
    fut_executor_t *ex = fut_executor_current();
    fut_t *a = fut_fiber(ex, fib_fiber, (void *)(n - 1), NULL);
    fut_t *b = fut_fiber(ex, fib_fiber, (void *)(n - 2), NULL);
    int ra = fut_await(a, NULL), rb = fut_await(b, NULL);
    int64_t v = fut_value_i64(a) + fut_value_i64(b);
    fut_release(a);
    fut_release(b);
    return ra || rb ? fut_fail(ra ? ra : rb) : fut_ok_i64(v);
}

static void test_fibers_spawn_and_await_fibers_on_loop(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    fut_t *f = fut_fiber(loop, fib_fiber, (void *)(intptr_t)12, NULL);
    assert_int_equal(run_until(loop, f), 0);
    assert_int_equal(fut_value_i64(f), 144);
    fut_release(f);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

static void test_fibers_spawn_and_await_fibers_on_pool(void **state)
{
    (void)state;
    fut_executor_t *pool = new_pool(2);
    fut_t *f = fut_fiber(pool, fib_fiber, (void *)(intptr_t)15, NULL);
    assert_int_equal(fut_wait(f, -1), 0);
    assert_int_equal(fut_value_i64(f), 610);
    fut_release(f);
    assert_int_equal(fut_executor_destroy(pool), 0);
}

static void test_fibers_spawn_and_await_fibers_on_custom(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    fut_t *f = fut_fiber(testexec_ex(tx), fib_fiber, (void *)(intptr_t)10,
                         NULL);
    testexec_run_all(tx);
    assert_int_equal(fut_value_i64(f), 55);
    fut_release(f);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

static void test_fibers_spawn_and_await_fibers_on_inline(void **state)
{
    (void)state;
    fut_t *f = fut_fiber(fut_inline(), fib_fiber, (void *)(intptr_t)10, NULL);
    assert_int_equal(fut_value_i64(f), 55);
    fut_release(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fiber_returns_value_on_inline),
        cmocka_unit_test(test_in_fiber_false_outside),
        cmocka_unit_test(test_fiber_bad_arguments_are_einval),
        cmocka_unit_test(test_fiber_small_and_odd_stack_sizes_run),
        cmocka_unit_test(test_fiber_refused_is_eshutdown_and_never_runs),
        cmocka_unit_test(test_await_settled_does_not_switch),
        cmocka_unit_test(test_await_pending_suspends_and_resumes_as_task),
        cmocka_unit_test(test_await_on_inline_resumes_on_settling_thread),
        cmocka_unit_test(test_wait_on_own_future_is_edeadlk),
        cmocka_unit_test(test_await_promise_from_other_thread_on_loop),
        cmocka_unit_test(test_await_promise_from_other_thread_on_pool),
        cmocka_unit_test(test_thousand_fibers_on_loop_overlap_their_delays),
        cmocka_unit_test(test_timed_wait_in_fiber_times_out),
        cmocka_unit_test(test_stale_wait_does_not_wake_a_later_wait),
        cmocka_unit_test(test_switch_keeps_fp_control_per_context),
        cmocka_unit_test(test_wait_in_inline_callback_inside_fiber_blocks),
        cmocka_unit_test(test_blocking_call_in_fiber_is_reported_as_a_stall),
        cmocka_unit_test(test_yield_interleaves_fibers_in_order),
        cmocka_unit_test(test_fibers_spawn_and_await_fibers_on_loop),
        cmocka_unit_test(test_fibers_spawn_and_await_fibers_on_pool),
        cmocka_unit_test(test_fibers_spawn_and_await_fibers_on_custom),
        cmocka_unit_test(test_fibers_spawn_and_await_fibers_on_inline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
