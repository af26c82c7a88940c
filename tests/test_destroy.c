/* fut_executor_destroy from one of the executor's own threads: refused with
 * FUT_EDEADLK whatever runs on that thread (issue 12, item 1), on the pool
 * (a fut_inline() continuation on a worker, a task-group child, a loop run
 * on a worker), the loop (a fut_inline() continuation inside its run, a
 * nested run of another loop) and a custom executor that says which
 * threads are its own (ops->owns_thread).  Before the fix the pool joined
 * and freed the worker it ran on, and the loop either deferred the destroy
 * (returning 0) or waited for its own run to end.
 *
 * The refused executor must still work afterwards, and a destroy from the
 * test's thread then succeeds.  Results travel through atomics: cmocka
 * asserts on the main thread only.
 *
 * Then what destroy does with work already on the executor, as
 * fut_executor_destroy's header lists it (issue 12, item 10): the pool runs
 * it, the loop drops it, continuations due later are refused uncalled. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>

#include <fut.h>

#define NOT_CALLED 12345

static atomic_int g_rc;

static fut_result_t ok_task(void *arg)
{
    (void)arg;
    return fut_ok_i64(1);
}

/* The executor still takes and runs work. */
static void assert_still_works(fut_executor_t *ex)
{
    fut_t *f = fut_async(ex, ok_task, NULL);
    assert_int_equal(fut_wait(f, -1), 0);
    assert_int_equal(fut_value_i64(f), 1);
    fut_release(f);
}

static fut_executor_t *make_pool(unsigned threads)
{
    fut_pool_opts_t o = {.threads = threads};
    fut_executor_t *ex = NULL;
    assert_int_equal(fut_pool_create(&ex, &o), 0);
    return ex;
}

/* A callback that destroys the executor ARG and records the answer. */
static fut_result_t destroy_cb(void *arg, fut_t *src)
{
    (void)src;
    atomic_store(&g_rc, fut_executor_destroy(arg));
    return fut_ok(NULL);
}

/* ---- pool ---------------------------------------------------------------- */

/* On a worker: a continuation on fut_inline() ("shut down when the last job
 * is done"), so fut_executor_current() is inline, not the pool. */
static fut_result_t task_with_inline_destroy(void *arg)
{
    fut_release(
        fut_then(fut_ready(fut_ok(NULL)), fut_inline(), destroy_cb, arg));
    return fut_ok(NULL);
}

static void test_pool_destroy_from_inline_continuation_is_edeadlk(void **st)
{
    (void)st;
    fut_executor_t *pool = make_pool(1);
    atomic_store(&g_rc, NOT_CALLED);
    fut_t *f = fut_async(pool, task_with_inline_destroy, pool);
    assert_int_equal(fut_wait(f, -1), 0);
    assert_int_equal(atomic_load(&g_rc), FUT_EDEADLK);
    fut_release(f);
    assert_still_works(pool);
    assert_int_equal(fut_executor_destroy(pool), 0);
}

static void child_destroys(void *arg)
{
    atomic_store(&g_rc, fut_executor_destroy(arg));
}

/* Spawned from the test's thread, the child runs on a worker outside any
 * task: fut_executor_current() is NULL there. */
static void test_pool_destroy_from_group_child_is_edeadlk(void **st)
{
    (void)st;
    fut_executor_t *pool = make_pool(1);
    atomic_store(&g_rc, NOT_CALLED);
    fut_group_t g;
    fut_group_task_t t;
    assert_int_equal(fut_group_init(&g, pool), 0);
    fut_group_spawn(&g, &t, child_destroys, pool);
    fut_group_wait(&g);
    assert_int_equal(atomic_load(&g_rc), FUT_EDEADLK);
    assert_still_works(pool);
    assert_int_equal(fut_executor_destroy(pool), 0);
}

/* On a worker: a loop run there, whose callback destroys the pool
 * (fut_executor_current() is the loop). */
static fut_result_t task_runs_loop(void *arg)
{
    fut_executor_t *loop;
    if (fut_loop_create(&loop, NULL) != 0)
        return fut_fail(FUT_ENOMEM);
    fut_t *f = fut_then(fut_ready(fut_ok(NULL)), loop, destroy_cb, arg);
    int rc = fut_loop_run(loop, f);
    fut_release(f);
    fut_executor_destroy(loop);
    return rc ? fut_fail(rc) : fut_ok(NULL);
}

static void test_pool_destroy_from_loop_run_on_worker_is_edeadlk(void **st)
{
    (void)st;
    fut_executor_t *pool = make_pool(1);
    atomic_store(&g_rc, NOT_CALLED);
    fut_t *f = fut_async(pool, task_runs_loop, pool);
    assert_int_equal(fut_wait(f, -1), 0);
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    assert_int_equal(atomic_load(&g_rc), FUT_EDEADLK);
    fut_release(f);
    assert_still_works(pool);
    assert_int_equal(fut_executor_destroy(pool), 0);
}

/* ---- loop ---------------------------------------------------------------- */

/* A loop callback whose fut_inline() continuation destroys the loop. */
static fut_result_t cb_with_inline_destroy(void *arg, fut_t *src)
{
    (void)src;
    fut_release(
        fut_then(fut_ready(fut_ok(NULL)), fut_inline(), destroy_cb, arg));
    return fut_ok(NULL);
}

static void test_loop_destroy_from_inline_continuation_is_edeadlk(void **st)
{
    (void)st;
    fut_executor_t *loop;
    assert_int_equal(fut_loop_create(&loop, NULL), 0);
    atomic_store(&g_rc, NOT_CALLED);
    fut_t *f =
        fut_then(fut_ready(fut_ok(NULL)), loop, cb_with_inline_destroy, loop);
    assert_int_equal(fut_loop_run(loop, f), 0);
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    assert_int_equal(atomic_load(&g_rc), FUT_EDEADLK);
    fut_release(f);
    /* Still a loop: it runs work on the next run. */
    f = fut_async(loop, ok_task, NULL);
    assert_int_equal(fut_loop_run(loop, f), 0);
    assert_int_equal(fut_value_i64(f), 1);
    fut_release(f);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

/* A callback of loop A (the outer) runs loop B, whose callback destroys A:
 * the thread is inside A's run, though B is what it runs now. */
static fut_result_t cb_runs_inner_loop(void *arg, fut_t *src)
{
    (void)src;
    fut_executor_t *inner;
    if (fut_loop_create(&inner, NULL) != 0)
        return fut_fail(FUT_ENOMEM);
    fut_t *f = fut_then(fut_ready(fut_ok(NULL)), inner, destroy_cb, arg);
    int rc = fut_loop_run(inner, f);
    fut_release(f);
    fut_executor_destroy(inner);
    return rc ? fut_fail(rc) : fut_ok(NULL);
}

static void test_loop_destroy_from_nested_run_is_edeadlk(void **st)
{
    (void)st;
    fut_executor_t *outer;
    assert_int_equal(fut_loop_create(&outer, NULL), 0);
    atomic_store(&g_rc, NOT_CALLED);
    fut_t *f =
        fut_then(fut_ready(fut_ok(NULL)), outer, cb_runs_inner_loop, outer);
    assert_int_equal(fut_loop_run(outer, f), 0);
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    assert_int_equal(atomic_load(&g_rc), FUT_EDEADLK);
    fut_release(f);
    assert_int_equal(fut_executor_destroy(outer), 0);
}

/* ---- a custom executor with a thread of its own ------------------------- */

/* One thread running submitted tasks in order; destroy drops what is left
 * and joins the thread. */
struct onethread {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    fut_task_t *head, *tail;
    bool stop;
    pthread_t th;
};

static void *onethread_main(void *arg)
{
    struct onethread *o = arg;
    pthread_mutex_lock(&o->mu);
    for (;;) {
        while (!o->head && !o->stop)
            pthread_cond_wait(&o->cv, &o->mu);
        if (!o->head)
            break;
        fut_task_t *t = o->head;
        o->head = t->next;
        if (!o->head)
            o->tail = NULL;
        pthread_mutex_unlock(&o->mu);
        fut_task_run(t);
        pthread_mutex_lock(&o->mu);
    }
    pthread_mutex_unlock(&o->mu);
    return NULL;
}

static int onethread_submit(void *impl, fut_task_t *t)
{
    struct onethread *o = impl;
    t->next = NULL;
    pthread_mutex_lock(&o->mu);
    if (o->tail)
        o->tail->next = t;
    else
        o->head = t;
    o->tail = t;
    pthread_cond_signal(&o->cv);
    pthread_mutex_unlock(&o->mu);
    return 0;
}

static void onethread_destroy(void *impl)
{
    struct onethread *o = impl;
    pthread_mutex_lock(&o->mu);
    o->stop = true; /* the thread runs what is queued, then leaves */
    pthread_cond_signal(&o->cv);
    pthread_mutex_unlock(&o->mu);
    pthread_join(o->th, NULL);
    pthread_mutex_destroy(&o->mu);
    pthread_cond_destroy(&o->cv);
}

static bool onethread_owns(void *impl)
{
    struct onethread *o = impl;
    return pthread_equal(o->th, pthread_self());
}

static const fut_executor_ops_t onethread_ops = {
    .name = "onethread",
    .submit = onethread_submit,
    .destroy = onethread_destroy,
    .owns_thread = onethread_owns,
};

static fut_executor_t *onethread_new(struct onethread *o)
{
    fut_executor_t *ex;
    pthread_mutex_init(&o->mu, NULL);
    pthread_cond_init(&o->cv, NULL);
    o->head = o->tail = NULL;
    o->stop = false;
    assert_int_equal(fut_executor_create(&ex, &onethread_ops, o), 0);
    assert_int_equal(pthread_create(&o->th, NULL, onethread_main, o), 0);
    return ex;
}

static void test_custom_destroy_from_its_own_thread_is_edeadlk(void **st)
{
    (void)st;
    struct onethread o;
    fut_executor_t *ex = onethread_new(&o);
    atomic_store(&g_rc, NOT_CALLED);
    fut_t *f = fut_async(ex, task_with_inline_destroy, ex);
    assert_int_equal(fut_wait(f, -1), 0);
    assert_int_equal(atomic_load(&g_rc), FUT_EDEADLK);
    fut_release(f);
    assert_still_works(ex);
    assert_int_equal(fut_executor_destroy(ex), 0);
}

/* ---- what destroy does with work already there (the header's list) ----- */

static atomic_int g_calls;

static fut_result_t count_task(void *arg)
{
    (void)arg;
    atomic_fetch_add(&g_calls, 1);
    return fut_ok_i64(1);
}

static fut_result_t count_cb(void *arg, fut_t *src)
{
    (void)arg;
    (void)src;
    atomic_fetch_add(&g_calls, 1);
    return fut_ok_i64(1);
}

static void assert_eshutdown(fut_t *f)
{
    assert_int_equal(fut_state(f), FUT_REJECTED);
    assert_int_equal(fut_error(f), FUT_ESHUTDOWN);
    fut_release(f);
}

/* Pool: everything queued runs before destroy returns, continuations
 * (fut_finally's too) included. */
static void test_pool_destroy_runs_queued_tasks_and_callbacks(void **st)
{
    (void)st;
    enum { K = 200 };
    fut_executor_t *pool = make_pool(1);
    fut_t *fs[2 * K];
    atomic_store(&g_calls, 0);
    for (int i = 0; i < K; i++) {
        fs[2 * i] = fut_async(pool, count_task, NULL);
        fs[2 * i + 1] =
            fut_finally(fut_ready(fut_ok(NULL)), pool, count_cb, NULL);
    }
    assert_int_equal(fut_executor_destroy(pool), 0);
    assert_int_equal(atomic_load(&g_calls), 2 * K);
    for (int i = 0; i < 2 * K; i++) {
        assert_int_equal(fut_state(fs[i]), FUT_FULFILLED);
        fut_release(fs[i]);
    }
}

/* Everywhere: a continuation whose source settles after the destroy is
 * refused uncalled; a fut_finally's callback still runs, once, on the
 * thread that settles its source (issue 14: no cleanup is dropped).  A
 * pool's delay lives on the timer thread and fulfils whenever it fires,
 * before or after the destroy. */
static void test_continuation_due_after_destroy_is_refused_uncalled(void **st)
{
    (void)st;
    fut_executor_t *pool = make_pool(1);
    atomic_store(&g_calls, 0);
    fut_promise_t *p, *q;
    fut_t *then = fut_then(fut_promise_new(&q), pool, count_cb, NULL);
    fut_t *fin = fut_finally(fut_promise_new(&p), pool, count_cb, NULL);
    fut_t *d = fut_delay(pool, 1000 * 1000);
    assert_int_equal(fut_executor_destroy(pool), 0);
    assert_int_equal(fut_promise_settle(q, fut_ok(NULL)), 0);
    assert_eshutdown(then);
    assert_int_equal(atomic_load(&g_calls), 0);
    assert_int_equal(fut_promise_settle(p, fut_ok(NULL)), 0);
    assert_int_equal(atomic_load(&g_calls), 1); /* the finally, here */
    assert_int_equal(fut_state(fin), FUT_FULFILLED);
    assert_int_equal(fut_value_i64(fin), 1); /* its result replaces */
    fut_release(fin);
    assert_int_equal(fut_wait(d, -1), 0);
    assert_int_equal(fut_state(d), FUT_FULFILLED);
    fut_release(d);
}

/* On the loop: makes a timeout the loop keeps (fut_timeout inside a loop
 * task places its timer there), on an input that stays pending. */
struct on_loop_timeout {
    fut_promise_t *p;
    fut_t *timeout;
};

static fut_result_t make_timeout_on_loop(void *arg)
{
    struct on_loop_timeout *t = arg;
    t->timeout = fut_timeout(fut_promise_new(&t->p), 3600ull * 1000000000ull);
    return fut_ok(NULL);
}

/* Loop: nothing queued runs; tasks, callbacks, delays and timeouts it
 * keeps settle FUT_ESHUTDOWN; a queued fut_finally callback runs once, on
 * the destroying thread. */
static void test_loop_destroy_drops_queued_work_uncalled(void **st)
{
    (void)st;
    fut_executor_t *loop;
    assert_int_equal(fut_loop_create(&loop, NULL), 0);
    atomic_store(&g_calls, 0);
    struct on_loop_timeout tm = {NULL, NULL};
    fut_t *mk = fut_async(loop, make_timeout_on_loop, &tm);
    assert_int_equal(fut_loop_run(loop, mk), 0);
    fut_release(mk);
    assert_int_equal(fut_state(tm.timeout), FUT_PENDING);
    fut_t *task = fut_async(loop, count_task, NULL);
    fut_t *fin = fut_finally(fut_ready(fut_ok(NULL)), loop, count_cb, NULL);
    fut_t *d = fut_delay(loop, 3600ull * 1000000000ull);
    assert_int_equal(fut_executor_destroy(loop), 0);
    assert_eshutdown(task);
    assert_eshutdown(d);
    assert_eshutdown(tm.timeout);
    assert_int_equal(atomic_load(&g_calls), 1); /* the finally alone */
    assert_int_equal(fut_state(fin), FUT_FULFILLED);
    fut_release(fin);
    fut_promise_drop(tm.p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_destroy_from_inline_continuation_is_edeadlk),
        cmocka_unit_test(test_pool_destroy_from_group_child_is_edeadlk),
        cmocka_unit_test(test_pool_destroy_from_loop_run_on_worker_is_edeadlk),
        cmocka_unit_test(test_loop_destroy_from_inline_continuation_is_edeadlk),
        cmocka_unit_test(test_loop_destroy_from_nested_run_is_edeadlk),
        cmocka_unit_test(test_custom_destroy_from_its_own_thread_is_edeadlk),
        cmocka_unit_test(test_pool_destroy_runs_queued_tasks_and_callbacks),
        cmocka_unit_test(
            test_continuation_due_after_destroy_is_refused_uncalled),
        cmocka_unit_test(test_loop_destroy_drops_queued_work_uncalled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
