/* Custom executors: fut_executor_create arguments, names, impl, stats,
 * refusal, destroy with pending work (run or drop: never lost, never run
 * twice), continuations due after shutdown, helping waits. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <string.h>

#include <fut.h>

#include "testexec.h"

static int dummy_submit(void *impl, fut_task_t *t)
{
    (void)impl;
    (void)t;
    return FUT_ESHUTDOWN;
}
static void dummy_destroy(void *impl)
{
    *(int *)impl += 1;
}
static int dummy_timer_start(void *impl, fut_timer_t *t)
{
    (void)impl;
    (void)t;
    return FUT_ESHUTDOWN;
}
static void dummy_timer_cancel(void *impl, fut_timer_t *t)
{
    (void)impl;
    (void)t;
}

static void test_executor_create_bad_arguments_einval(void **state)
{
    (void)state;
    int impl = 0;
    fut_executor_t *ex = NULL;
    fut_executor_ops_t ok = {
        .name = "dummy", .submit = dummy_submit, .destroy = dummy_destroy};
    assert_int_equal(fut_executor_create(NULL, &ok, &impl), FUT_EINVAL);
    assert_int_equal(fut_executor_create(&ex, NULL, &impl), FUT_EINVAL);
    fut_executor_ops_t o = ok;
    o.submit = NULL;
    assert_int_equal(fut_executor_create(&ex, &o, &impl), FUT_EINVAL);
    o = ok;
    o.destroy = NULL;
    assert_int_equal(fut_executor_create(&ex, &o, &impl), FUT_EINVAL);
    o = ok;
    o.timer_start = dummy_timer_start;
    assert_int_equal(fut_executor_create(&ex, &o, &impl), FUT_EINVAL);
    assert_int_equal(impl, 0);
    /* timer_cancel alone is harmless; both together are fine */
    o.timer_cancel = dummy_timer_cancel;
    assert_int_equal(fut_executor_create(&ex, &o, &impl), 0);
    assert_non_null(ex);
    assert_int_equal(fut_executor_destroy(ex), 0);
    assert_int_equal(impl, 1); /* destroy called once */
}

static void test_executor_name_impl_and_stats(void **state)
{
    (void)state;
    int impl = 0;
    fut_executor_t *ex = NULL;
    static const fut_executor_ops_t ops = {
        .name = "my-exec", .submit = dummy_submit, .destroy = dummy_destroy};
    static const fut_executor_ops_t other = {
        .name = "other", .submit = dummy_submit, .destroy = dummy_destroy};
    assert_int_equal(fut_executor_create(&ex, &ops, &impl), 0);
    assert_string_equal(fut_executor_name(ex), "my-exec");
    assert_string_equal(fut_executor_name(NULL), "(null)");
    assert_ptr_equal(fut_executor_impl(ex, &ops), &impl);
    assert_null(fut_executor_impl(ex, &other));
    assert_null(fut_executor_impl(fut_inline(), &ops));
    fut_stats_t st;
    memset(&st, 0xff, sizeof st);
    assert_int_equal(fut_executor_stats(ex, &st), 0);
    assert_int_equal(st.tasks_run, 0);
    assert_int_equal(st.tasks_submitted, 0);
    assert_int_equal(st.workers, 0);
    assert_int_equal(fut_executor_stats(NULL, &st), FUT_EINVAL);
    assert_int_equal(fut_executor_stats(ex, NULL), FUT_EINVAL);
    assert_int_equal(fut_executor_stats(fut_inline(), &st), 0);
    assert_int_equal(fut_executor_destroy(ex), 0);
}

static void test_executor_destroy_bad_arguments(void **state)
{
    (void)state;
    assert_int_equal(fut_executor_destroy(NULL), FUT_EINVAL);
    assert_int_equal(fut_executor_destroy(fut_inline()), FUT_EINVAL);
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

static void test_testexec_name_and_stats(void **state)
{
    (void)state;
    testexec_opts_t o = {.name = "tx-stats"};
    testexec_t *tx = testexec_new(&o, NULL);
    assert_non_null(tx);
    assert_string_equal(fut_executor_name(testexec_ex(tx)), "tx-stats");
    atomic_int runs = 0;
    fut_release(fut_async(testexec_ex(tx), task_count, &runs));
    fut_release(fut_async(testexec_ex(tx), task_count, &runs));
    testexec_run_all(tx);
    fut_stats_t st;
    assert_int_equal(fut_executor_stats(testexec_ex(tx), &st), 0);
    assert_int_equal(st.tasks_submitted, 2);
    assert_int_equal(st.tasks_run, 2);
    assert_int_equal(runs, 2);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

static void test_refused_submit_rejects_and_never_calls(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    assert_non_null(tx);
    atomic_int runs = 0;
    testexec_refuse(tx, FUT_ENOMEM);
    fut_t *f = fut_async(testexec_ex(tx), task_count, &runs);
    assert_int_equal(fut_state(f), FUT_REJECTED);
    assert_int_equal(fut_error(f), FUT_ENOMEM);
    fut_release(f);
    testexec_refuse(tx, FUT_ESHUTDOWN);
    f = fut_async(testexec_ex(tx), task_count, &runs);
    assert_int_equal(fut_error(f), FUT_ESHUTDOWN);
    fut_release(f);
    /* a continuation whose submit is refused when due */
    fut_promise_t *p;
    f = fut_then(fut_promise_new(&p), testexec_ex(tx), cb_count, &runs);
    assert_int_equal(fut_promise_settle(p, fut_ok_i64(1)), 0);
    assert_int_equal(fut_state(f), FUT_REJECTED);
    assert_int_equal(fut_error(f), FUT_ESHUTDOWN);
    fut_release(f);
    testexec_refuse(tx, 0);
    testexec_run_all(tx);
    assert_int_equal(runs, 0);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

/* Destroy with pending work: each task either runs once or is dropped
 * (FUT_ESHUTDOWN); none is lost, none runs twice. */
static void destroy_with_pending(testexec_on_destroy_t mode)
{
    enum { N = 10 };
    testexec_opts_t o = {.on_destroy = mode};
    testexec_t *tx = testexec_new(&o, NULL);
    assert_non_null(tx);
    atomic_int runs[N] = {0};
    atomic_int cont = 0;
    fut_t *f[N];
    for (int i = 0; i < N; i++)
        f[i] = fut_async(testexec_ex(tx), task_count, &runs[i]);
    fut_t *g = fut_then(fut_retain(f[0]), testexec_ex(tx), cb_count, &cont);
    /* also a fire-and-forget one */
    atomic_int ff = 0;
    fut_release(fut_async(testexec_ex(tx), task_count, &ff));
    assert_true(testexec_run_one(tx)); /* f[0] runs; g is queued now */
    size_t ran = 99, dropped = 99;
    assert_int_equal(testexec_destroy(tx, &ran, &dropped), 0);
    assert_int_equal(ran + dropped, N + 1); /* f[1..9], ff, g */
    for (int i = 0; i < N; i++) {
        assert_int_not_equal(fut_state(f[i]), FUT_PENDING);
        if (i == 0 || mode == TESTEXEC_RUN) {
            assert_int_equal(runs[i], 1);
            assert_int_equal(fut_value_i64(f[i]), 1);
        } else {
            assert_int_equal(runs[i], 0);
            assert_int_equal(fut_state(f[i]), FUT_REJECTED);
            assert_int_equal(fut_error(f[i]), FUT_ESHUTDOWN);
        }
        fut_release(f[i]);
    }
    assert_int_not_equal(fut_state(g), FUT_PENDING);
    if (mode == TESTEXEC_RUN) {
        assert_int_equal(ran, N + 1);
        assert_int_equal(cont, 1);
        assert_int_equal(ff, 1);
        assert_int_equal(fut_value_i64(g), 1);
    } else {
        assert_int_equal(dropped, N + 1);
        assert_int_equal(cont, 0);
        assert_int_equal(ff, 0);
        assert_int_equal(fut_error(g), FUT_ESHUTDOWN);
    }
    fut_release(g);
}

static void test_destroy_drops_pending_tasks_eshutdown(void **state)
{
    (void)state;
    destroy_with_pending(TESTEXEC_DROP);
}

static void test_destroy_runs_pending_tasks_once(void **state)
{
    (void)state;
    destroy_with_pending(TESTEXEC_RUN);
}

typedef struct more {
    fut_t *f;
    atomic_int runs;
} more_t;

static fut_result_t task_submit_more(void *arg)
{
    /* runs during destroy (RUN mode): intake has stopped, so this is refused */
    more_t *m = arg;
    m->f = fut_async(fut_executor_current(), task_count, &m->runs);
    return fut_ok_i64(1);
}

static void test_submit_during_destroy_is_refused(void **state)
{
    (void)state;
    testexec_opts_t o = {.on_destroy = TESTEXEC_RUN};
    testexec_t *tx = testexec_new(&o, NULL);
    assert_non_null(tx);
    more_t box = {0};
    fut_t *f = fut_async(testexec_ex(tx), task_submit_more, &box);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
    assert_int_equal(fut_value_i64(f), 1);
    assert_non_null(box.f);
    assert_int_equal(fut_error(box.f), FUT_ESHUTDOWN);
    assert_int_equal(box.runs, 0);
    fut_release(box.f);
    fut_release(f);
}

static void test_continuation_after_executor_destroyed_eshutdown(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    assert_non_null(tx);
    atomic_int calls = 0;
    fut_promise_t *p;
    fut_t *f = fut_then(fut_promise_new(&p), testexec_ex(tx), cb_count, &calls);
    fut_t *g = fut_catch(fut_retain(f), fut_inline(), cb_count, &calls);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
    assert_int_equal(fut_state(f), FUT_PENDING);
    assert_int_equal(fut_promise_settle(p, fut_ok_i64(1)), 0);
    assert_int_equal(fut_state(f), FUT_REJECTED);
    assert_int_equal(fut_error(f), FUT_ESHUTDOWN);
    assert_int_equal(calls, 1); /* only the inline catch */
    assert_int_equal(fut_error(g), FUT_ESHUTDOWN);
    fut_release(g);
    fut_release(f);
}

static void test_task_dropped_at_destroy_then_caught(void **state)
{
    (void)state;
    /* a settled-future attach after destroy: the core keeps what it needs */
    testexec_t *tx = testexec_new(NULL, NULL);
    assert_non_null(tx);
    atomic_int calls = 0;
    fut_t *f = fut_async(testexec_ex(tx), task_count, &calls);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
    assert_int_equal(fut_error(f), FUT_ESHUTDOWN);
    f = fut_catch(f, fut_inline(), cb_count, &calls);
    assert_int_equal(calls, 1);
    fut_release(f);
}

static fut_result_t task_destroy_own(void *arg)
{
    *(int *)arg = fut_executor_destroy(fut_executor_current());
    return fut_ok_i64(0);
}

static void test_destroy_from_own_task_edeadlk(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    assert_non_null(tx);
    int rc = 1;
    fut_t *f = fut_async(testexec_ex(tx), task_destroy_own, &rc);
    assert_true(testexec_run_one(tx));
    assert_int_equal(rc, FUT_EDEADLK);
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    fut_release(f);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

static fut_result_t task_where(void *arg)
{
    *(fut_executor_t **)arg = fut_executor_current();
    return fut_ok_i64(0);
}

static void test_current_executor_inside_custom_task(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    assert_non_null(tx);
    fut_executor_t *seen = NULL;
    fut_t *f = fut_async(testexec_ex(tx), task_where, &seen);
    assert_null(seen);
    assert_true(testexec_run_one(tx));
    assert_ptr_equal(seen, testexec_ex(tx));
    assert_null(fut_executor_current());
    fut_release(f);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

/* A wait inside a task of an executor with try_run_one helps: it runs the
 * queued task it waits for instead of blocking. */
typedef struct helper {
    testexec_t *tx;
    atomic_int child_runs;
    int rc;
} helper_t;

static fut_result_t task_wait_child(void *arg)
{
    helper_t *h = arg;
    fut_t *child = fut_async(testexec_ex(h->tx), task_count, &h->child_runs);
    h->rc = fut_wait(child, -1);
    fut_release(child);
    return fut_ok_i64(2);
}

static void test_wait_in_task_helps_with_try_run_one(void **state)
{
    (void)state;
    testexec_opts_t o = {.try_run_one = true};
    helper_t h = {.tx = testexec_new(&o, NULL), .rc = 1};
    assert_non_null(h.tx);
    fut_t *f = fut_async(testexec_ex(h.tx), task_wait_child, &h);
    assert_true(testexec_run_one(h.tx));
    assert_int_equal(h.rc, 0);
    assert_int_equal(h.child_runs, 1);
    assert_int_equal(fut_value_i64(f), 2);
    assert_int_equal(testexec_run_all(h.tx), 0);
    fut_release(f);
    assert_int_equal(testexec_destroy(h.tx, NULL, NULL), 0);
}

/* ---- fd readiness through ops->fd_ready --------------------------------- */

struct fdrec_exec {
    int calls, fd;
    unsigned events;
};

static int fdx_submit(void *impl, fut_task_t *t)
{
    (void)impl;
    fut_task_run(t);
    return 0;
}
static void fdx_destroy(void *impl)
{
    (void)impl;
}
static fut_t *fdx_fd_ready(void *impl, int fd, unsigned events)
{
    struct fdrec_exec *r = impl;
    r->calls++;
    r->fd = fd;
    r->events = events;
    return fut_ready(fut_ok_i64(events));
}
static const fut_executor_ops_t fdx_ops = {
    .name = "fdx",
    .submit = fdx_submit,
    .destroy = fdx_destroy,
    .fd_ready = fdx_fd_ready,
};

/* fut_fd_ready hands checked arguments to a custom executor's op and
 * returns its future. */
static void test_fd_ready_calls_the_executors_op(void **state)
{
    (void)state;
    struct fdrec_exec r = {0};
    fut_executor_t *ex;
    assert_int_equal(fut_executor_create(&ex, &fdx_ops, &r), 0);
    fut_t *f = fut_fd_ready(ex, 5, FUT_READABLE | FUT_WRITABLE);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.fd, 5);
    assert_int_equal(r.events, FUT_READABLE | FUT_WRITABLE);
    assert_int_equal(fut_value_i64(f), FUT_READABLE | FUT_WRITABLE);
    fut_release(f);
    /* Bad arguments never reach the op. */
    fut_t *bad[] = {fut_fd_ready(ex, -1, FUT_READABLE), fut_fd_ready(ex, 5, 0),
                    fut_fd_ready(ex, 5, 1u << 5)};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(fut_error(bad[i]), FUT_EINVAL);
        fut_release(bad[i]);
    }
    assert_int_equal(r.calls, 1);
    assert_int_equal(fut_executor_destroy(ex), 0);
    f = fut_fd_ready(ex, 5, FUT_READABLE); /* destroyed: refused */
    assert_int_equal(fut_error(f), FUT_ESHUTDOWN);
    assert_int_equal(r.calls, 1);
    fut_release(f);
}

/* Executors without the op (the pool, inline, a custom one) refuse. */
static void test_fd_ready_without_the_op_is_einval(void **state)
{
    (void)state;
    fut_executor_t *pool, *custom;
    assert_int_equal(fut_pool_create(&pool, &(fut_pool_opts_t){.threads = 1}),
                     0);
    int destroyed = 0;
    static const fut_executor_ops_t plain = {
        .submit = fdx_submit, .destroy = dummy_destroy};
    assert_int_equal(fut_executor_create(&custom, &plain, &destroyed), 0);
    fut_executor_t *exs[] = {pool, fut_inline(), custom, NULL};
    for (size_t i = 0; i < 4; i++) {
        fut_t *f = fut_fd_ready(exs[i], 0, FUT_READABLE);
        assert_int_equal(fut_error(f), FUT_EINVAL);
        fut_release(f);
    }
    assert_int_equal(fut_executor_destroy(pool), 0);
    assert_int_equal(fut_executor_destroy(custom), 0);
    assert_int_equal(destroyed, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_executor_create_bad_arguments_einval),
        cmocka_unit_test(test_executor_name_impl_and_stats),
        cmocka_unit_test(test_executor_destroy_bad_arguments),
        cmocka_unit_test(test_testexec_name_and_stats),
        cmocka_unit_test(test_refused_submit_rejects_and_never_calls),
        cmocka_unit_test(test_destroy_drops_pending_tasks_eshutdown),
        cmocka_unit_test(test_destroy_runs_pending_tasks_once),
        cmocka_unit_test(test_submit_during_destroy_is_refused),
        cmocka_unit_test(test_continuation_after_executor_destroyed_eshutdown),
        cmocka_unit_test(test_task_dropped_at_destroy_then_caught),
        cmocka_unit_test(test_destroy_from_own_task_edeadlk),
        cmocka_unit_test(test_current_executor_inside_custom_task),
        cmocka_unit_test(test_wait_in_task_helps_with_try_run_one),
        cmocka_unit_test(test_fd_ready_calls_the_executors_op),
        cmocka_unit_test(test_fd_ready_without_the_op_is_einval),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
