/* The hop: a pool task whose continuation is placed on the loop, then back
 * on the pool, then on the loop again; each callback runs where it was
 * placed.  Skipped if the pool cannot be created. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>

#include <fut.h>

enum { HOPS = 200 };

struct hop {
    fut_executor_t *loop, *pool;
    pthread_t loop_thread;
    atomic_int wrong_place; /* callbacks that ran on the wrong thread */
    atomic_int loop_runs, pool_runs;
};

static fut_result_t on_pool(void *arg)
{
    struct hop *h = arg;
    if (pthread_equal(pthread_self(), h->loop_thread) ||
        fut_executor_current() != h->pool)
        atomic_fetch_add(&h->wrong_place, 1);
    atomic_fetch_add(&h->pool_runs, 1);
    return fut_ok_i64(21);
}

static fut_result_t on_loop(void *arg, fut_t *src)
{
    struct hop *h = arg;
    if (!pthread_equal(pthread_self(), h->loop_thread) ||
        fut_executor_current() != h->loop)
        atomic_fetch_add(&h->wrong_place, 1);
    atomic_fetch_add(&h->loop_runs, 1);
    return fut_ok_i64(fut_value_i64(src) * 2);
}

static fut_result_t back_on_pool(void *arg, fut_t *src)
{
    struct hop *h = arg;
    if (pthread_equal(pthread_self(), h->loop_thread) ||
        fut_executor_current() != h->pool)
        atomic_fetch_add(&h->wrong_place, 1);
    atomic_fetch_add(&h->pool_runs, 1);
    return fut_ok_i64(fut_value_i64(src) + 1);
}

static void test_loop_pool_hop_and_back(void **state)
{
    (void)state;
    struct hop h = {.loop_thread = pthread_self()};
    fut_pool_opts_t po = {.threads = 2};
    if (fut_pool_create(&h.pool, &po) != 0)
        skip();
    assert_int_equal(fut_loop_create(&h.loop, NULL), 0);
    fut_t *fs[HOPS];
    for (int i = 0; i < HOPS; i++) {
        fut_t *f = fut_async(h.pool, on_pool, &h); /* pool: 21 */
        f = fut_then(f, h.loop, on_loop, &h);      /* loop: 42 */
        f = fut_then(f, h.pool, back_on_pool, &h); /* pool: 43 */
        fs[i] = fut_then(f, h.loop, on_loop, &h);  /* loop: 86 */
    }
    fut_t *all = fut_all(fs, HOPS);
    assert_int_equal(fut_loop_run(h.loop, all), 0);
    assert_int_equal(fut_state(all), FUT_FULFILLED);
    for (int i = 0; i < HOPS; i++)
        assert_int_equal(fut_value_i64(fut_input(all, (size_t)i)), 86);
    assert_int_equal(atomic_load(&h.wrong_place), 0);
    assert_int_equal(atomic_load(&h.loop_runs), 2 * HOPS);
    assert_int_equal(atomic_load(&h.pool_runs), 2 * HOPS);
    fut_release(all);
    assert_int_equal(fut_executor_destroy(h.loop), 0);
    assert_int_equal(fut_executor_destroy(h.pool), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loop_pool_hop_and_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
