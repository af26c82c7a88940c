/* fut_post: a function handed to an executor with no future, on every
 * kind of executor (inline, pool, loop, a custom one through its ops), and
 * each error it documents. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include <fut.h>

#include "testexec.h"

/* What one posted call saw; the main thread asserts on it afterwards. */
struct seen {
    atomic_int calls;
    fut_executor_t *_Atomic ex; /* fut_executor_current() inside */
    atomic_bool cancel_requested;
    pthread_t main;          /* the test's thread, set before posting */
    atomic_int on_main;      /* calls that ran on it */
    fut_executor_t *loop; /* stop it after LAST calls, if set */
    int last;
};

static void record(void *arg)
{
    struct seen *s = arg;
    atomic_store(&s->ex, fut_executor_current());
    atomic_store(&s->cancel_requested, fut_cancel_requested());
    if (pthread_equal(pthread_self(), s->main))
        atomic_fetch_add(&s->on_main, 1);
    if (atomic_fetch_add(&s->calls, 1) + 1 == s->last && s->loop)
        fut_loop_stop(s->loop);
}

static void never(void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
}

static void test_post_on_inline_runs_at_once(void **state)
{
    (void)state;
    struct seen s = {.main = pthread_self()};
    assert_int_equal(fut_post(fut_inline(), record, &s), 0);
    assert_int_equal(atomic_load(&s.calls), 1);
    assert_int_equal(atomic_load(&s.on_main), 1);
    assert_ptr_equal(atomic_load(&s.ex), fut_inline());
    assert_false(atomic_load(&s.cancel_requested));
    assert_null(fut_executor_current()); /* restored after the call */
}

/* Posted from inside an inline task: queued, run when the task returns
 * (the trampoline), not nested in it. */
static fut_result_t post_inside(void *arg)
{
    struct seen *s = arg;
    int rc = fut_post(fut_inline(), record, s);
    return fut_ok_i64(rc == 0 ? atomic_load(&s->calls) : -1);
}

static void test_post_inside_an_inline_task_is_trampolined(void **state)
{
    (void)state;
    struct seen s = {0};
    fut_t *f = fut_async(fut_inline(), post_inside, &s);
    assert_int_equal(fut_value_i64(f), 0); /* not run inside the task */
    assert_int_equal(atomic_load(&s.calls), 1);
    fut_release(f);
}

static void test_post_on_the_pool_runs_on_a_worker(void **state)
{
    (void)state;
    fut_executor_t *pool;
    fut_pool_opts_t o = {.threads = 2};
    assert_int_equal(fut_pool_create(&pool, &o), 0);
    struct seen s = {.main = pthread_self()};
    enum { N = 1000 };
    for (int i = 0; i < N; i++)
        assert_int_equal(fut_post(pool, record, &s), 0);
    /* Pool destroy finishes queued work: every call has run after it. */
    assert_int_equal(fut_executor_destroy(pool), 0);
    assert_int_equal(atomic_load(&s.calls), N);
    assert_ptr_equal(atomic_load(&s.ex), pool);
    assert_int_equal(atomic_load(&s.on_main), 0);
}

struct producer {
    fut_executor_t *loop;
    struct seen *s;
    int n;
    atomic_int failed;
};

static void *produce(void *arg)
{
    struct producer *p = arg;
    for (int i = 0; i < p->n; i++)
        if (fut_post(p->loop, record, p->s) != 0)
            atomic_fetch_add(&p->failed, 1);
    return NULL;
}

/* Two threads post to a running loop: every call runs, on the loop's
 * thread, and the last one stops it. */
static void test_post_to_the_loop_from_other_threads(void **state)
{
    (void)state;
    fut_executor_t *loop;
    assert_int_equal(fut_loop_create(&loop, NULL), 0);
    enum { N = 20000 };
    struct seen s = {.main = pthread_self(), .loop = loop, .last = 2 * N};
    struct producer p = {loop, &s, N, 0};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, produce, &p), 0);
    assert_int_equal(fut_loop_run(loop, NULL), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(atomic_load(&p.failed), 0);
    assert_int_equal(atomic_load(&s.calls), 2 * N);
    assert_ptr_equal(atomic_load(&s.ex), loop);
    assert_int_equal(atomic_load(&s.on_main), 2 * N);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

/* From the loop's own thread (a task of the loop): runs later in the
 * loop, not inside the caller. */
static fut_result_t post_from_loop(void *arg)
{
    struct seen *s = arg;
    int rc = fut_post(s->loop, record, s);
    return fut_ok_i64(rc == 0 ? atomic_load(&s->calls) : -1);
}

static void test_post_from_the_loop_itself_runs_later(void **state)
{
    (void)state;
    fut_executor_t *loop;
    assert_int_equal(fut_loop_create(&loop, NULL), 0);
    struct seen s = {.loop = loop, .last = 1};
    fut_t *f = fut_async(loop, post_from_loop, &s);
    assert_int_equal(fut_loop_run(loop, NULL), 0);
    assert_int_equal(fut_value_i64(f), 0);
    assert_int_equal(atomic_load(&s.calls), 1);
    assert_ptr_equal(atomic_load(&s.ex), loop);
    fut_release(f);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

/* The loop's destroy drops what it has not run: the function is never
 * called (documented: free ARG some other way). */
static void test_post_queued_at_loop_destroy_never_runs(void **state)
{
    (void)state;
    fut_executor_t *loop;
    assert_int_equal(fut_loop_create(&loop, NULL), 0);
    atomic_int calls = 0;
    assert_int_equal(fut_post(loop, never, &calls), 0);
    assert_int_equal(fut_executor_destroy(loop), 0);
    assert_int_equal(atomic_load(&calls), 0);
}

/* A custom executor receives the work through its submit and runs it
 * with fut_task_run, or drops it with fut_task_drop. */
static void test_post_on_a_custom_executor_uses_its_ops(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    struct seen s = {0};
    assert_int_equal(fut_post(testexec_ex(tx), record, &s), 0);
    assert_int_equal(testexec_submitted(tx), 1);
    assert_int_equal(atomic_load(&s.calls), 0);
    assert_true(testexec_run_one(tx));
    assert_int_equal(atomic_load(&s.calls), 1);
    assert_ptr_equal(atomic_load(&s.ex), testexec_ex(tx));
    atomic_int calls = 0;
    assert_int_equal(fut_post(testexec_ex(tx), never, &calls), 0);
    size_t dropped = 0;
    assert_int_equal(testexec_destroy(tx, NULL, &dropped), 0);
    assert_int_equal(dropped, 1);
    assert_int_equal(atomic_load(&calls), 0);
}

static void test_post_null_executor_or_fn_is_einval(void **state)
{
    (void)state;
    atomic_int calls = 0;
    assert_int_equal(fut_post(NULL, never, &calls), FUT_EINVAL);
    assert_int_equal(fut_post(fut_inline(), NULL, &calls), FUT_EINVAL);
    assert_int_equal(atomic_load(&calls), 0);
}

static void test_post_refused_by_the_executor_returns_its_error(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    atomic_int calls = 0;
    testexec_refuse(tx, FUT_ESHUTDOWN);
    assert_int_equal(fut_post(testexec_ex(tx), never, &calls), FUT_ESHUTDOWN);
    testexec_refuse(tx, FUT_ENOMEM);
    assert_int_equal(fut_post(testexec_ex(tx), never, &calls), FUT_ENOMEM);
    assert_int_equal(testexec_pending(tx), 0);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
    assert_int_equal(atomic_load(&calls), 0);
}

static void test_post_without_memory_is_enomem(void **state)
{
    (void)state;
    atomic_int calls = 0;
    atomic_store(&failalloc_calls, 0);
    atomic_store(&failalloc_live, 0);
    atomic_store(&failalloc_at, 1); /* the first allocation fails */
    atomic_store(&failalloc_failed, 0);
    fut_set_allocator(failalloc_alloc, failalloc_free);
    int rc = fut_post(fut_inline(), never, &calls);
    fut_set_allocator(NULL, NULL);
    assert_int_equal(rc, FUT_ENOMEM);
    assert_int_equal(atomic_load(&failalloc_failed), 1);
    assert_int_equal(atomic_load(&calls), 0);
}

/* A loop whose destroy began refuses: its handle, kept alive here by a
 * continuation still attached to it, answers FUT_ESHUTDOWN. */
static fut_result_t cb_none(void *arg, fut_t *src)
{
    (void)arg;
    (void)src;
    return fut_ok(NULL);
}

static void test_post_to_a_destroyed_loop_is_eshutdown(void **state)
{
    (void)state;
    fut_executor_t *loop;
    assert_int_equal(fut_loop_create(&loop, NULL), 0);
    fut_promise_t *p;
    fut_t *f = fut_then(fut_promise_new(&p), loop, cb_none, NULL);
    assert_int_equal(fut_executor_destroy(loop), 0);
    atomic_int calls = 0;
    assert_int_equal(fut_post(loop, never, &calls), FUT_ESHUTDOWN);
    assert_int_equal(atomic_load(&calls), 0);
    fut_promise_settle(p, fut_ok(NULL)); /* the continuation lets go */
    assert_int_equal(fut_error(f), FUT_ESHUTDOWN);
    fut_release(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_post_on_inline_runs_at_once),
        cmocka_unit_test(test_post_inside_an_inline_task_is_trampolined),
        cmocka_unit_test(test_post_on_the_pool_runs_on_a_worker),
        cmocka_unit_test(test_post_to_the_loop_from_other_threads),
        cmocka_unit_test(test_post_from_the_loop_itself_runs_later),
        cmocka_unit_test(test_post_queued_at_loop_destroy_never_runs),
        cmocka_unit_test(test_post_on_a_custom_executor_uses_its_ops),
        cmocka_unit_test(test_post_null_executor_or_fn_is_einval),
        cmocka_unit_test(test_post_refused_by_the_executor_returns_its_error),
        cmocka_unit_test(test_post_without_memory_is_enomem),
        cmocka_unit_test(test_post_to_a_destroyed_loop_is_eshutdown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
