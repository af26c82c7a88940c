/* Waiting: fut_wait with and without timeouts, polling, fut_await, helping
 * waits inside inline tasks, and FUT_EDEADLK for a task waiting on itself. */
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

#define USER_ERR (-100123)
#define MS (1000 * 1000LL)

static void test_wait_pending_times_out(void **state)
{
    (void)state;
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    uint64_t t0 = fut_now_ns();
    assert_int_equal(fut_wait(f, 20 * MS), FUT_ETIMEDOUT);
    uint64_t dt = fut_now_ns() - t0;
    assert_true(dt >= 20 * MS);
    assert_true(dt < 5000 * MS);
    assert_int_equal(fut_state(f), FUT_PENDING);
    fut_promise_drop(p);
    fut_release(f);
}

static void test_wait_settled_returns_zero(void **state)
{
    (void)state;
    fut_t *f = fut_ready(fut_fail(USER_ERR));
    assert_int_equal(fut_wait(f, 20 * MS), 0);
    assert_int_equal(fut_wait(f, -1), 0);
    assert_int_equal(fut_wait(f, 0), 0);
    fut_release(f);
}

static void test_wait_zero_polls(void **state)
{
    (void)state;
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    uint64_t t0 = fut_now_ns();
    assert_int_equal(fut_wait(f, 0), FUT_ETIMEDOUT);
    assert_true(fut_now_ns() - t0 < 1000 * MS);
    assert_int_equal(fut_promise_settle(p, fut_ok_i64(1)), 0);
    assert_int_equal(fut_wait(f, 0), 0);
    fut_release(f);
}

static void test_wait_null_is_einval(void **state)
{
    (void)state;
    assert_int_equal(fut_wait(NULL, -1), FUT_EINVAL);
    assert_int_equal(fut_wait(NULL, 0), FUT_EINVAL);
    assert_int_equal(fut_await(NULL, NULL), FUT_EINVAL);
}

static void test_await_returns_error_and_value(void **state)
{
    (void)state;
    static int x;
    void *v = NULL;
    fut_t *f = fut_ready(fut_ok(&x));
    assert_int_equal(fut_await(f, &v), 0);
    assert_ptr_equal(v, &x);
    assert_int_equal(fut_await(f, NULL), 0);
    fut_release(f);

    f = fut_ready(fut_fail(USER_ERR));
    v = &x;
    assert_int_equal(fut_await(f, &v), USER_ERR);
    assert_null(v);
    fut_release(f);

    fut_promise_t *p;
    f = fut_promise_new(&p);
    fut_cancel(f);
    assert_int_equal(fut_await(f, NULL), FUT_ECANCELED);
    fut_promise_drop(p);
    fut_release(f);
}

typedef struct later {
    fut_promise_t *p;
    int64_t delay_ns;
} later_t;

static void *settle_later(void *arg)
{
    later_t *l = arg;
    struct timespec ts = {0, (long)l->delay_ns};
    nanosleep(&ts, NULL);
    fut_promise_settle(l->p, fut_ok_i64(5));
    return NULL;
}

static void test_wait_forever_wakes_on_settle_from_thread(void **state)
{
    (void)state;
    later_t l = {.delay_ns = 5 * MS};
    fut_t *f = fut_promise_new(&l.p);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, settle_later, &l), 0);
    assert_int_equal(fut_wait(f, -1), 0);
    assert_int_equal(fut_value_i64(f), 5);
    pthread_join(th, NULL);
    fut_release(f);
}

static void test_wait_with_timeout_wakes_before_timeout(void **state)
{
    (void)state;
    later_t l = {.delay_ns = 5 * MS};
    fut_t *f = fut_promise_new(&l.p);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, settle_later, &l), 0);
    uint64_t t0 = fut_now_ns();
    assert_int_equal(fut_wait(f, 10000 * MS), 0);
    assert_true(fut_now_ns() - t0 < 5000 * MS);
    pthread_join(th, NULL);
    fut_release(f);
}

static void *cancel_later(void *arg)
{
    struct timespec ts = {0, 5 * MS};
    nanosleep(&ts, NULL);
    fut_cancel(arg);
    return NULL;
}

static void test_wait_wakes_on_cancel_from_thread(void **state)
{
    (void)state;
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, cancel_later, f), 0);
    assert_int_equal(fut_await(f, NULL), FUT_ECANCELED);
    pthread_join(th, NULL);
    fut_promise_drop(p);
    fut_release(f);
}

typedef struct many {
    fut_t *f;
    atomic_int ok;
} many_t;

static void *waiter(void *arg)
{
    many_t *m = arg;
    if (fut_wait(m->f, -1) == 0 && fut_value_i64(m->f) == 9)
        atomic_fetch_add(&m->ok, 1);
    return NULL;
}

static void test_many_waiters_all_wake(void **state)
{
    (void)state;
    enum { W = 8 };
    fut_promise_t *p;
    many_t m = {.f = fut_promise_new(&p)};
    pthread_t th[W];
    for (int i = 0; i < W; i++)
        assert_int_equal(pthread_create(&th[i], NULL, waiter, &m), 0);
    struct timespec ts = {0, 2 * MS};
    nanosleep(&ts, NULL);
    assert_int_equal(fut_promise_settle(p, fut_ok_i64(9)), 0);
    for (int i = 0; i < W; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(m.ok, W);
    fut_release(m.f);
}

/* ---- helping and deadlock ------------------------------------------------ */

static fut_result_t task_seven(void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
    return fut_ok_i64(7);
}

typedef struct helpctx {
    atomic_int inner_runs;
    int wait_rc;
    int64_t inner_value;
} helpctx_t;

/* Runs inline; the task it submits inline is queued (trampolined) until
 * this one returns, so waiting for it must help run it. */
static fut_result_t task_waits_for_child(void *arg)
{
    helpctx_t *h = arg;
    fut_t *child = fut_async(fut_inline(), task_seven, &h->inner_runs);
    h->wait_rc = fut_wait(child, -1);
    h->inner_value = fut_value_i64(child);
    fut_release(child);
    return fut_ok_i64(1);
}

static void test_wait_inside_inline_task_helps(void **state)
{
    (void)state;
    helpctx_t h = {0};
    fut_t *f = fut_async(fut_inline(), task_waits_for_child, &h);
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    assert_int_equal(h.wait_rc, 0);
    assert_int_equal(h.inner_value, 7);
    assert_int_equal(h.inner_runs, 1);
    fut_release(f);
}

static fut_result_t task_timed_wait(void *arg)
{
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    uint64_t t0 = fut_now_ns();
    int rc = fut_wait(f, 5 * MS);
    *(int64_t *)arg = rc == FUT_ETIMEDOUT ? (int64_t)(fut_now_ns() - t0) : -1;
    fut_promise_drop(p);
    fut_release(f);
    return fut_ok_i64(0);
}

static void test_timed_wait_inside_inline_task_times_out(void **state)
{
    (void)state;
    int64_t waited = 0;
    fut_release(fut_async(fut_inline(), task_timed_wait, &waited));
    assert_true(waited >= 5 * MS);
    assert_true(waited < 5000 * MS);
}

/* The self-wait: the outer inline task submits SELF_WAIT inline; it is
 * queued until the outer task returns, so the outer task can publish the
 * child's future in `self_fut` before the child runs and waits on it. */
static fut_t *self_fut;
static int self_wait_rc, self_await_rc, self_poll_rc;

static fut_result_t task_self_wait(void *arg)
{
    (void)arg;
    self_wait_rc = fut_wait(self_fut, -1);
    self_await_rc = fut_await(self_fut, NULL);
    self_poll_rc = fut_wait(self_fut, 0);
    return fut_ok_i64(3);
}

static fut_result_t task_spawn_self_waiter(void *arg)
{
    (void)arg;
    self_fut = fut_async(fut_inline(), task_self_wait, NULL);
    return fut_ok(NULL);
}

static void test_task_waiting_on_own_future_edeadlk_inline(void **state)
{
    (void)state;
    self_wait_rc = self_await_rc = self_poll_rc = 1;
    fut_t *outer = fut_async(fut_inline(), task_spawn_self_waiter, NULL);
    assert_int_equal(fut_state(outer), FUT_FULFILLED);
    assert_non_null(self_fut);
    assert_int_equal(fut_state(self_fut), FUT_FULFILLED);
    assert_int_equal(fut_value_i64(self_fut), 3);
    assert_int_equal(self_wait_rc, FUT_EDEADLK);
    assert_int_equal(self_await_rc, FUT_EDEADLK);
    /* a poll cannot deadlock: it just reports "not yet" */
    assert_true(self_poll_rc == FUT_ETIMEDOUT || self_poll_rc == FUT_EDEADLK);
    fut_release(self_fut);
    self_fut = NULL;
    fut_release(outer);
}

static void test_task_waiting_on_own_future_edeadlk_custom(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    assert_non_null(tx);
    self_wait_rc = self_await_rc = self_poll_rc = 1;
    self_fut = fut_async(testexec_ex(tx), task_self_wait, NULL);
    assert_true(testexec_run_one(tx));
    assert_int_equal(self_wait_rc, FUT_EDEADLK);
    assert_int_equal(self_await_rc, FUT_EDEADLK);
    assert_int_equal(fut_value_i64(self_fut), 3);
    fut_release(self_fut);
    self_fut = NULL;
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

static fut_result_t task_cancel_then_wait_self(void *arg)
{
    (void)arg;
    fut_cancel(self_fut);
    self_wait_rc = fut_wait(self_fut, -1); /* settled now: 0 */
    return fut_ok_i64(1);
}

static void test_task_waiting_on_own_cancelled_future_returns(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    assert_non_null(tx);
    self_wait_rc = 1;
    self_fut = fut_async(testexec_ex(tx), task_cancel_then_wait_self, NULL);
    assert_true(testexec_run_one(tx));
    assert_int_equal(self_wait_rc, 0);
    assert_int_equal(fut_state(self_fut), FUT_CANCELLED);
    fut_release(self_fut);
    self_fut = NULL;
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

/* ---- timed-out waits leave nothing behind (issue 12, item 3) ----------- */

#define POLLS 20000

static void counting_allocator_on(void)
{
    fut_set_allocator(NULL, NULL); /* empties this thread's cache */
    atomic_store(&failalloc_calls, 0);
    atomic_store(&failalloc_live, 0);
    atomic_store(&failalloc_at, 0);
    fut_set_allocator(failalloc_alloc, failalloc_free);
}

static fut_result_t count_call(void *arg, fut_t *src)
{
    (void)src;
    (*(int *)arg)++;
    return fut_ok(NULL);
}

/* Polling one long-pending future (while (fut_wait(f, t) == ETIMEDOUT)) must
 * not grow memory with the number of polls: a timed-out wait takes its node
 * off the future's list again.  A continuation attached before the polls
 * and one attached after stay on the list and still fire. */
static void test_timed_out_waits_do_not_grow_memory(void **state)
{
    (void)state;
    counting_allocator_on();
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    int calls = 0;
    fut_t *before = fut_then(fut_retain(f), fut_inline(), count_call, &calls);
    assert_int_equal(fut_wait(f, 1), FUT_ETIMEDOUT); /* warms the cache */
    long live0 = atomic_load(&failalloc_live);
    for (int i = 0; i < POLLS; i++)
        assert_int_equal(fut_wait(f, 1), FUT_ETIMEDOUT);
    long grown = atomic_load(&failalloc_live) - live0;
    fut_t *after = fut_then(fut_retain(f), fut_inline(), count_call, &calls);
    assert_true(grown <= 2); /* at most the `after` link; was POLLS */
    /* The settle finds only the two links: it frees nothing (the waiters'
     * nodes are long gone) and runs both callbacks. */
    long live1 = atomic_load(&failalloc_live);
    assert_int_equal(fut_promise_settle(p, fut_ok_i64(5)), 0);
    assert_int_equal(atomic_load(&failalloc_live), live1);
    assert_int_equal(calls, 2);
    fut_release(before);
    fut_release(after);
    fut_release(f);
    fut_set_allocator(NULL, NULL);
    assert_int_equal(atomic_load(&failalloc_live), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wait_pending_times_out),
        cmocka_unit_test(test_wait_settled_returns_zero),
        cmocka_unit_test(test_wait_zero_polls),
        cmocka_unit_test(test_wait_null_is_einval),
        cmocka_unit_test(test_await_returns_error_and_value),
        cmocka_unit_test(test_wait_forever_wakes_on_settle_from_thread),
        cmocka_unit_test(test_wait_with_timeout_wakes_before_timeout),
        cmocka_unit_test(test_wait_wakes_on_cancel_from_thread),
        cmocka_unit_test(test_many_waiters_all_wake),
        cmocka_unit_test(test_wait_inside_inline_task_helps),
        cmocka_unit_test(test_timed_wait_inside_inline_task_times_out),
        cmocka_unit_test(test_task_waiting_on_own_cancelled_future_returns),
        cmocka_unit_test(test_task_waiting_on_own_future_edeadlk_inline),
        cmocka_unit_test(test_task_waiting_on_own_future_edeadlk_custom),
        cmocka_unit_test(test_timed_out_waits_do_not_grow_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
