/* An executor handle's struct lives while continuations wait on it, and is
 * freed exactly once when the last of them lets go, however the references
 * were taken and dropped: by the executor's own threads, which count them
 * in thread-local memory (the loop's run, a pool's workers), or by other
 * threads, which count them atomically (lib/executor.c, biased counting).
 *
 * Each case makes continuations on EX from EX's own thread and from the
 * test's thread, fires half of each kind from the other side, destroys EX
 * with the rest pending, and fires those after.  The allocator installed
 * here watches the handle: it must not be freed before the last pending
 * continuation fires, and must be freed once by then. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include <fut.h>

enum { N = 64 }; /* continuations of each kind; even */

static void *_Atomic watched;
static atomic_int watched_frees;

static void *rec_alloc(size_t size)
{
    return malloc(size);
}

static void rec_free(void *p)
{
    if (p && p == atomic_load(&watched)) {
        atomic_fetch_add(&watched_frees, 1);
        atomic_store(&watched, NULL); /* the address may come back */
    }
    free(p);
}

struct refs_case {
    fut_executor_t *ex;
    fut_promise_t *own_p[N], *other_p[N]; /* sources of the two kinds */
    fut_t *own[N], *other[N];             /* the continuations on EX */
};

static fut_result_t then_ok(void *arg, fut_t *src)
{
    (void)arg;
    (void)src;
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
    /* Half of each kind fires on the other side: a reference taken by a
     * biased thread is dropped by another, and the other way round. */
    for (int i = 0; i < N / 2; i++)
        fut_promise_settle(c->own_p[i], fut_ok(NULL));
    on_ex(c, fire_other_half);
    for (int i = 0; i < N / 2; i++) {
        assert_int_equal(fut_wait(c->own[i], -1), 0);
        assert_int_equal(fut_wait(c->other[i], -1), 0);
        assert_int_equal(fut_value_i64(c->own[i]), 7);
        assert_int_equal(fut_value_i64(c->other[i]), 7);
    }
    assert_int_equal(fut_executor_destroy(c->ex), 0);
    after_destroy();
    /* N continuations still wait on EX: its struct must live until the
     * last of them (other_p[N - 1]'s) lets go. */
    for (int i = N / 2; i < N; i++) {
        assert_int_equal(atomic_load(&watched_frees), 0);
        fut_promise_settle(c->own_p[i], fut_ok(NULL));
        assert_int_equal(atomic_load(&watched_frees), 0);
        fut_promise_settle(c->other_p[i], fut_ok(NULL));
    }
    for (int i = N / 2; i < N; i++) {
        assert_int_equal(fut_error(c->own[i]), FUT_ESHUTDOWN);
        assert_int_equal(fut_error(c->other[i]), FUT_ESHUTDOWN);
    }
    assert_int_equal(atomic_load(&watched_frees), 1);
    for (int i = 0; i < N; i++) {
        fut_release(c->own[i]);
        fut_release(c->other[i]);
    }
    assert_int_equal(atomic_load(&watched_frees), 1);
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
    /* Destroy stopped the run; the thread's last act is its fold. */
    pthread_join(loop_thread, NULL);
}

static int make_pool(fut_executor_t **ex)
{
    fut_pool_opts_t po = {.threads = 2};
    return fut_pool_create(ex, &po);
}

static void workers_joined(void)
{
    /* Destroy joined the workers, each folding its count as it left. */
}

/* Makes EX with MAKE under the watching allocator and runs the case. */
static void watched_case(int (*make)(fut_executor_t **),
                         void (*after_destroy)(void))
{
    fut_set_allocator(rec_alloc, rec_free);
    atomic_store(&watched_frees, 0);
    struct refs_case c = {0};
    assert_int_equal(make(&c.ex), 0);
    atomic_store(&watched, c.ex);
    run_case(&c, after_destroy);
    fut_set_allocator(NULL, NULL);
}

static void
test_loop_handle_outlives_destroy_until_its_last_reference(void **state)
{
    (void)state;
    watched_case(make_loop, join_loop);
}

static void
test_pool_handle_outlives_destroy_until_its_last_reference(void **state)
{
    (void)state;
    watched_case(make_pool, workers_joined);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            test_loop_handle_outlives_destroy_until_its_last_reference),
        cmocka_unit_test(
            test_pool_handle_outlives_destroy_until_its_last_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
