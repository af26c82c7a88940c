/* An executor's handle outlives fut_executor_destroy (issue 12, item 5):
 * the struct is never freed, so a call through a destroyed handle, from any
 * thread, at any time later, refuses instead of touching freed memory.
 *
 * Continuations made on EX from EX's own thread and from the test's thread,
 * half fired before the destroy (they run) and half after (FUT_ESHUTDOWN,
 * never run), for the loop and the pool; then every entry point that takes
 * the handle is called on the destroyed one and gives its documented
 * refusal.  Before the fix the handle was freed when destroy returned (or
 * when the last pending continuation let go), and each of these calls
 * read freed memory.  Last, fut_executor_enter: what the executors' own
 * entry points use to hold a racing destroy off, also nested. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include <fut.h>

#include "testexec.h"

enum { N = 64 }; /* continuations of each kind; even */

static atomic_int g_calls;

struct refs_case {
    fut_executor_t *ex;
    fut_promise_t *own_p[N], *other_p[N]; /* sources of the two kinds */
    fut_t *own[N], *other[N];             /* the continuations on EX */
};

static fut_result_t then_ok(void *arg, fut_t *src)
{
    (void)arg;
    (void)src;
    atomic_fetch_add(&g_calls, 1);
    return fut_ok_i64(7);
}

/* On EX's thread: continuations on EX, their references counted there. */
static fut_result_t make_own(void *arg)
{
    struct refs_case *c = arg;
    for (int i = 0; i < N; i++)
        c->own[i] = fut_then(fut_promise_new(&c->own_p[i]), c->ex, then_ok, c);
    return fut_ok(NULL);
}

/* On EX's thread: fires half of those made on the test's thread. */
static fut_result_t fire_other_half(void *arg)
{
    struct refs_case *c = arg;
    for (int i = 0; i < N / 2; i++)
        fut_promise_settle(c->other_p[i], fut_ok(NULL));
    return fut_ok(NULL);
}

static fut_result_t task_ok(void *arg)
{
    (void)arg;
    atomic_fetch_add(&g_calls, 1);
    return fut_ok_i64(1);
}

static void on_ex(struct refs_case *c, fut_task_fn fn)
{
    fut_t *f = fut_async(c->ex, fn, c);
    assert_int_equal(fut_wait(f, -1), 0);
    fut_release(f);
}

static void run_case(struct refs_case *c, void (*after_destroy)(void))
{
    on_ex(c, make_own);
    for (int i = 0; i < N; i++)
        c->other[i] =
            fut_then(fut_promise_new(&c->other_p[i]), c->ex, then_ok, c);
    /* Half of each kind fires on the other side: made on one thread,
     * fired from the other. */
    for (int i = 0; i < N / 2; i++)
        fut_promise_settle(c->own_p[i], fut_ok(NULL));
    on_ex(c, fire_other_half);
    for (int i = 0; i < N / 2; i++) {
        assert_int_equal(fut_wait(c->own[i], -1), 0);
        assert_int_equal(fut_wait(c->other[i], -1), 0);
        assert_int_equal(fut_value_i64(c->own[i]), 7);
        assert_int_equal(fut_value_i64(c->other[i]), 7);
    }
    assert_int_equal(atomic_load(&g_calls), N);
    assert_int_equal(fut_executor_destroy(c->ex), 0);
    after_destroy();
    /* N continuations still wait on EX: they settle FUT_ESHUTDOWN without
     * running. */
    for (int i = N / 2; i < N; i++) {
        fut_promise_settle(c->own_p[i], fut_ok(NULL));
        fut_promise_settle(c->other_p[i], fut_ok(NULL));
    }
    for (int i = N / 2; i < N; i++) {
        assert_int_equal(fut_error(c->own[i]), FUT_ESHUTDOWN);
        assert_int_equal(fut_error(c->other[i]), FUT_ESHUTDOWN);
    }
    assert_int_equal(atomic_load(&g_calls), N);
    for (int i = 0; i < N; i++) {
        fut_release(c->own[i]);
        fut_release(c->other[i]);
    }
}

static void *loop_main(void *arg)
{
    fut_loop_run(arg, NULL);
    return NULL;
}

static pthread_t loop_thread;

static int make_loop(fut_executor_t **ex)
{
    int rc = fut_loop_create(ex, NULL);
    return rc ? rc : pthread_create(&loop_thread, NULL, loop_main, *ex);
}

static void join_loop(void)
{
    /* Destroy stopped the run. */
    pthread_join(loop_thread, NULL);
}

static int make_pool(fut_executor_t **ex)
{
    fut_pool_opts_t po = {.threads = 2};
    return fut_pool_create(ex, &po);
}

static void workers_joined(void)
{
    /* Destroy joined the workers. */
}

/* Every entry point common to all executors, on the destroyed EX. */
static void assert_refused_everywhere(fut_executor_t *ex, const char *name)
{
    atomic_store(&g_calls, 0);
    fut_t *f = fut_async(ex, task_ok, NULL);
    assert_int_equal(fut_error(f), FUT_ESHUTDOWN);
    fut_release(f);
    f = fut_then(fut_ready(fut_ok(NULL)), ex, then_ok, NULL);
    assert_int_equal(fut_error(f), FUT_ESHUTDOWN);
    fut_release(f);
    fut_promise_t *p;
    f = fut_catch(fut_promise_new(&p), ex, then_ok, NULL);
    fut_promise_drop(p);
    assert_int_equal(fut_error(f), FUT_ESHUTDOWN);
    fut_release(f);
    assert_int_equal(atomic_load(&g_calls), 0);
    f = fut_delay(ex, 1000);
    assert_int_equal(fut_error(f), FUT_ESHUTDOWN);
    fut_release(f);
    fut_stats_t st;
    assert_int_equal(fut_executor_stats(ex, &st), FUT_ESHUTDOWN);
    assert_int_equal(fut_executor_destroy(ex), FUT_EALREADY);
    assert_string_equal(fut_executor_name(ex), name);
}

/* Makes EX with MAKE and runs the case, then calls through the handle. */
static void handle_case(int (*make)(fut_executor_t **),
                        void (*after_destroy)(void), const char *name)
{
    atomic_store(&g_calls, 0);
    struct refs_case c = {0};
    assert_int_equal(make(&c.ex), 0);
    run_case(&c, after_destroy);
    assert_refused_everywhere(c.ex, name);
}

static void test_loop_handle_refuses_after_destroy(void **state)
{
    (void)state;
    fut_executor_t *ex = NULL;
    handle_case(make_loop, join_loop, "loop");
    /* The same again, to get at the loop's own entry points. */
    assert_int_equal(make_loop(&ex), 0);
    assert_int_equal(fut_executor_destroy(ex), 0);
    join_loop();
    assert_refused_everywhere(ex, "loop");
    assert_int_equal(fut_loop_run(ex, NULL), FUT_ESHUTDOWN);
    fut_loop_stop(ex); /* a no-op */
    fut_t *f = fut_fd_ready(ex, STDIN_FILENO, FUT_READABLE);
    assert_int_equal(fut_error(f), FUT_ESHUTDOWN);
    fut_release(f);
}

static void test_pool_handle_refuses_after_destroy(void **state)
{
    (void)state;
    fut_executor_t *ex = NULL;
    handle_case(make_pool, workers_joined, "pool");
    assert_int_equal(make_pool(&ex), 0);
    assert_int_equal(fut_executor_destroy(ex), 0);
    assert_refused_everywhere(ex, "pool");
    fut_stats_t st;
    assert_int_equal(fut_pool_worker_stats(ex, 0, &st), FUT_ESHUTDOWN);
    fut_group_t g;
    assert_int_equal(fut_group_init(&g, ex), FUT_EINVAL);
}

static void test_custom_handle_refuses_after_destroy(void **state)
{
    (void)state;
    testexec_opts_t o = {.name = "tx"};
    testexec_t *tx = testexec_new(&o, NULL);
    assert_non_null(tx);
    fut_executor_t *ex = testexec_ex(tx);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
    assert_refused_everywhere(ex, "tx");
}

/* fut_executor_enter, the guard executors' own entry points use. */
static atomic_int g_destroyed;

static int sink_submit(void *impl, fut_task_t *t)
{
    (void)impl;
    fut_task_drop(t);
    return 0;
}

static void flag_destroy(void *impl)
{
    (void)impl;
    atomic_store(&g_destroyed, 1);
}

static const fut_executor_ops_t flag_ops = {
    .name = "flag", .submit = sink_submit, .destroy = flag_destroy};
static const fut_executor_ops_t inline_like_ops = {
    .name = "other", .submit = sink_submit, .destroy = flag_destroy};

static void *destroy_thread(void *arg)
{
    fut_executor_destroy(arg);
    return NULL;
}

static void test_enter_holds_off_a_racing_destroy(void **state)
{
    (void)state;
    int impl_obj;
    fut_executor_t *ex;
    void *impl = NULL;
    assert_int_equal(fut_executor_create(&ex, &flag_ops, &impl_obj), 0);
    assert_int_equal(fut_executor_enter(NULL, &flag_ops, &impl), FUT_EINVAL);
    assert_int_equal(fut_executor_enter(ex, &inline_like_ops, &impl),
                     FUT_EINVAL);
    assert_int_equal(fut_executor_enter(ex, &flag_ops, &impl), 0);
    assert_ptr_equal(impl, &impl_obj);
    atomic_store(&g_destroyed, 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, destroy_thread, ex), 0);
    /* Wait until the destroy began (a new enter is refused)... */
    void *again;
    for (;;) {
        int rc = fut_executor_enter(ex, &flag_ops, &again);
        if (rc == FUT_ESHUTDOWN)
            break;
        assert_int_equal(rc, 0);
        fut_executor_leave(ex);
        sched_yield();
    }
    /* ...it cannot reach ops->destroy while we are inside. */
    for (int i = 0; i < 1000; i++)
        sched_yield();
    assert_int_equal(atomic_load(&g_destroyed), 0);
    fut_executor_leave(ex);
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&g_destroyed), 1);
    assert_int_equal(fut_executor_enter(ex, &flag_ops, &impl), FUT_ESHUTDOWN);
}

/* Brackets nest: a thread inside six executors at once (deeper than its
 * per-thread slot holds, lib/guard.c: the deepest use the counter) holds
 * off a racing destroy of each, and every destroy returns once the
 * brackets end in LIFO order. */
enum { NEST = 6 };
static atomic_int g_nest_destroyed[NEST];

static void nest_destroy(void *impl)
{
    atomic_store(&g_nest_destroyed[*(int *)impl], 1);
}

static const fut_executor_ops_t nest_ops = {
    .name = "nest", .submit = sink_submit, .destroy = nest_destroy};

static void test_nested_enters_hold_off_destroy_at_every_depth(void **state)
{
    (void)state;
    static int ids[NEST];
    fut_executor_t *ex[NEST];
    pthread_t th[NEST];
    void *impl;
    for (int i = 0; i < NEST; i++) {
        ids[i] = i;
        atomic_store(&g_nest_destroyed[i], 0);
        assert_int_equal(fut_executor_create(&ex[i], &nest_ops, &ids[i]), 0);
    }
    for (int i = 0; i < NEST; i++) {
        assert_int_equal(fut_executor_enter(ex[i], &nest_ops, &impl), 0);
        assert_ptr_equal(impl, &ids[i]);
    }
    for (int i = 0; i < NEST; i++)
        assert_int_equal(pthread_create(&th[i], NULL, destroy_thread, ex[i]),
                         0);
    /* Wait until every destroy began (a new enter is refused)... */
    for (int i = 0; i < NEST; i++) {
        void *again;
        int rc;
        while ((rc = fut_executor_enter(ex[i], &nest_ops, &again)) == 0) {
            fut_executor_leave(ex[i]);
            sched_yield();
        }
        assert_int_equal(rc, FUT_ESHUTDOWN);
    }
    /* ...none reaches ops->destroy while we are inside. */
    for (int i = 0; i < 1000; i++)
        sched_yield();
    for (int i = 0; i < NEST; i++)
        assert_int_equal(atomic_load(&g_nest_destroyed[i]), 0);
    for (int i = NEST - 1; i >= 0; i--)
        fut_executor_leave(ex[i]);
    for (int i = 0; i < NEST; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(atomic_load(&g_nest_destroyed[i]), 1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loop_handle_refuses_after_destroy),
        cmocka_unit_test(test_pool_handle_refuses_after_destroy),
        cmocka_unit_test(test_custom_handle_refuses_after_destroy),
        cmocka_unit_test(test_enter_holds_off_a_racing_destroy),
        cmocka_unit_test(test_nested_enters_hold_off_destroy_at_every_depth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
