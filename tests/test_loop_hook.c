/* The core's promise cancel hook (lib/promise.c, fut__promise_on_cancel),
 * which the loop's fut_fd_ready uses instead of a fut_catch per waiter:
 * it runs once, on its executor, only for a cancel that beats the
 * promise, never after the executor shut down, and refuses bad calls. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <fut.h>

#include "internal.h"

#define MS (1000 * 1000ull)

struct hook {
    fut_executor_t *ex;  /* where it must run */
    atomic_int calls;    /* how many times it ran */
    atomic_int on_ex;    /* it ran with fut_executor_current() == ex */
    atomic_int saw_cncl; /* SRC was cancelled when it ran */
    fut_t *src;          /* the future it was given */
    bool stop;           /* stop the loop after it ran */
};

static fut_result_t on_cancel(void *arg, fut_t *src)
{
    struct hook *h = arg;
    atomic_fetch_add(&h->calls, 1);
    if (fut_executor_current() == h->ex)
        atomic_fetch_add(&h->on_ex, 1);
    if (fut_state(src) == FUT_CANCELLED && fut_error(src) == FUT_ECANCELED)
        atomic_fetch_add(&h->saw_cncl, 1);
    h->src = src;
    if (h->stop)
        fut_loop_stop(h->ex);
    return fut_ok(NULL);
}

static fut_executor_t *new_loop(void)
{
    fut_executor_t *l = NULL;
    assert_int_equal(fut_loop_create(&l, NULL), 0);
    return l;
}

/* Runs LOOP for about NS. */
static void run_for(fut_executor_t *loop, uint64_t ns)
{
    fut_t *d = fut_delay(loop, ns);
    assert_int_equal(fut_loop_run(loop, d), 0);
    fut_release(d);
}

/* A new promise on P whose cancel hook is on_cancel(H) on EX; its future. */
static fut_t *hooked(fut_executor_t *ex, struct hook *h, fut_promise_t **p)
{
    fut_t *f = fut_promise_new(p);
    assert_int_equal(fut__promise_on_cancel(*p, ex, on_cancel, h), 0);
    return f;
}

static void test_hook_runs_once_on_its_executor_when_cancelled(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    struct hook h = {.ex = loop};
    fut_promise_t *p;
    fut_t *f = hooked(loop, &h, &p);
    assert_int_equal(fut_cancel(f), 0);
    assert_int_equal(atomic_load(&h.calls), 0); /* a task on the loop */
    assert_int_equal(fut_cancel(f), FUT_EALREADY);
    run_for(loop, 1 * MS);
    assert_int_equal(atomic_load(&h.calls), 1);
    assert_int_equal(atomic_load(&h.on_ex), 1);
    assert_int_equal(atomic_load(&h.saw_cncl), 1);
    assert_ptr_equal(h.src, f);
    /* The promise stays the producer's to consume; it lost the race. */
    assert_int_equal(fut_promise_settle(p, fut_ok_i64(7)), FUT_EALREADY);
    run_for(loop, 1 * MS);
    assert_int_equal(atomic_load(&h.calls), 1);
    assert_int_equal(fut_error(f), FUT_ECANCELED);
    fut_release(f);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

static void test_hook_skipped_when_promise_settles_first(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    struct hook h = {.ex = loop};
    fut_promise_t *p;
    fut_t *f = hooked(loop, &h, &p);
    assert_int_equal(fut_promise_settle(p, fut_ok_i64(5)), 0);
    assert_int_equal(fut_cancel(f), FUT_EALREADY);
    run_for(loop, 1 * MS);
    assert_int_equal(atomic_load(&h.calls), 0);
    assert_int_equal(fut_value_i64(f), 5);
    fut_release(f);
    /* A dropped promise rejects (FUT_EBROKEN): not a cancel either. */
    f = hooked(loop, &h, &p);
    fut_promise_drop(p);
    assert_int_equal(fut_cancel(f), FUT_EALREADY);
    run_for(loop, 1 * MS);
    assert_int_equal(atomic_load(&h.calls), 0);
    assert_int_equal(fut_error(f), FUT_EBROKEN);
    fut_release(f);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

static void test_hook_never_runs_after_executor_shutdown(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    struct hook h = {.ex = loop};
    fut_promise_t *p;
    fut_t *f = hooked(loop, &h, &p);
    /* Cancelled, hook queued on the loop, then the loop is destroyed
     * before it runs: the queued hook is dropped, not run. */
    fut_promise_t *p2;
    fut_t *f2 = hooked(loop, &h, &p2);
    assert_int_equal(fut_cancel(f2), 0);
    assert_int_equal(fut_executor_destroy(loop), 0);
    /* Cancelled after the destroy: the future holds the executor's handle
     * alive (ASan would see a use after free otherwise); the hook is
     * refused. */
    assert_int_equal(fut_cancel(f), 0);
    assert_int_equal(atomic_load(&h.calls), 0);
    fut_promise_drop(p);
    fut_promise_drop(p2);
    fut_release(f);
    fut_release(f2);
}

static void test_hook_on_the_inline_executor_runs_in_cancel(void **state)
{
    (void)state;
    struct hook h = {.ex = fut_inline()};
    fut_promise_t *p;
    fut_t *f = hooked(fut_inline(), &h, &p);
    assert_int_equal(fut_cancel(f), 0);
    assert_int_equal(atomic_load(&h.calls), 1);
    assert_int_equal(atomic_load(&h.on_ex), 1);
    assert_int_equal(atomic_load(&h.saw_cncl), 1);
    fut_promise_drop(p);
    fut_release(f);
}

static void test_hook_refuses_bad_calls(void **state)
{
    (void)state;
    struct hook h = {.ex = fut_inline()};
    fut_executor_t *in = fut_inline();
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    assert_int_equal(fut__promise_on_cancel(NULL, in, on_cancel, &h),
                     FUT_EINVAL);
    assert_int_equal(fut__promise_on_cancel(p, NULL, on_cancel, &h),
                     FUT_EINVAL);
    assert_int_equal(fut__promise_on_cancel(p, in, NULL, &h), FUT_EINVAL);
    assert_int_equal(fut__promise_on_cancel(p, in, on_cancel, &h), 0);
    assert_int_equal(fut__promise_on_cancel(p, in, on_cancel, &h),
                     FUT_EINVAL); /* one hook per promise */
    /* Not a promise's future. */
    fut_t *r = fut_ready(fut_ok_i64(1));
    assert_int_equal(
        fut__promise_on_cancel((fut_promise_t *)r, in, on_cancel, &h),
        FUT_EINVAL);
    fut_release(r);
    /* A consumed promise (its future still alive through F2). */
    fut_promise_t *p2;
    fut_t *f2 = fut_promise_new(&p2);
    assert_int_equal(fut_promise_settle(p2, fut_ok_i64(2)), 0);
    assert_int_equal(fut__promise_on_cancel(p2, in, on_cancel, &h), FUT_EINVAL);
    fut_release(f2);
    assert_int_equal(fut_cancel(f), 0);
    assert_int_equal(atomic_load(&h.calls), 1);
    fut_promise_drop(p);
    fut_release(f);
}

/* Cancelled from another thread while the loop runs: the hook still runs
 * on the loop's thread. */
struct cross {
    fut_t *f;
};

static void *cancel_from_thread(void *arg)
{
    struct cross *c = arg;
    fut_cancel(c->f);
    return NULL;
}

static void test_hook_runs_on_the_loop_when_cancelled_elsewhere(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    struct hook h = {.ex = loop, .stop = true};
    fut_promise_t *p;
    fut_t *f = hooked(loop, &h, &p);
    struct cross c = {f};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, cancel_from_thread, &c), 0);
    fut_t *guard = fut_delay(loop, 5000 * MS); /* at most 5 s */
    assert_int_equal(fut_loop_run(loop, guard), 0);
    pthread_join(th, NULL);
    assert_int_equal(fut_state(guard), FUT_PENDING); /* the hook stopped it */
    fut_cancel(guard);
    fut_release(guard);
    assert_int_equal(atomic_load(&h.calls), 1);
    assert_int_equal(atomic_load(&h.on_ex), 1);
    fut_promise_drop(p);
    fut_release(f);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hook_runs_once_on_its_executor_when_cancelled),
        cmocka_unit_test(test_hook_skipped_when_promise_settles_first),
        cmocka_unit_test(test_hook_never_runs_after_executor_shutdown),
        cmocka_unit_test(test_hook_on_the_inline_executor_runs_in_cancel),
        cmocka_unit_test(test_hook_refuses_bad_calls),
        cmocka_unit_test(test_hook_runs_on_the_loop_when_cancelled_elsewhere),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
