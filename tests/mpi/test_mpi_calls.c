/* libfut-mpi: remote calls in numbers and in flight (<fut/mpi.h>): load
 * spread over the ranks, volume, the bound on calls in flight, many
 * calling threads, chaining, timeouts, cancels, and the calls refused on
 * the MPI thread or from a serving rank.  Runs like tests/mpi/test_mpi.c
 * (mpi_fixture.h says how). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>

#include "mpi_fixture.h"

/* ---- load, volume, the bound ----------------------------------------------- */

static void test_any_spreads_load_over_every_rank(void **state)
{
    (void)state;
    enum { N = 400 };
    int size = fut_mpi_size(g_m);
    long served[64] = {0};
    fut_t *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = fut_mpi_call(g_m, FUT_MPI_ANY, "whoami", NULL, 0);
    for (int i = 0; i < N; i++) {
        int64_t r = await_i64(fs[i]);
        assert_in_range(r, 0, size - 1);
        served[r]++;
    }
    for (int r = 0; r < size; r++)
        assert_true(served[r] > 0);
    /* One at a time too: ties go round the ranks. */
    for (int i = 0; i < size; i++)
        served[await_i64(fut_mpi_call(g_m, FUT_MPI_ANY, "whoami", NULL,
                                      0))] = -1;
    for (int r = 0; r < size; r++)
        assert_int_equal(served[r], -1);
}

static void test_many_small_calls_all_answered(void **state)
{
    (void)state;
    enum { N = 100000 };
    fut_t **fs = malloc(N * sizeof *fs);
    for (int64_t i = 0; i < N; i++)
        fs[i] = call_i64(FUT_MPI_ANY, "plus1", i);
    int64_t sum = 0;
    for (int i = 0; i < N; i++)
        sum += await_i64(fs[i]);
    assert_int_equal(sum, (int64_t)N * (N + 1) / 2);
    free(fs);
}

static void test_in_flight_calls_per_rank_are_bounded(void **state)
{
    (void)state;
    enum { N = 3 * BOUND };
    fut_t *fs[N];
    for (int i = 0; i < N; i++) /* WORKERS > BOUND could run them all */
        fs[i] = fut_mpi_call(g_m, 3, "meet", NULL, 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(await_i64(fs[i]), 0);
    assert_int_equal(await_i64(fut_mpi_call(g_m, 3, "meet_max", NULL, 0)),
                     BOUND);
}

struct caller {
    int id;
    atomic_int *bad;
    atomic_int *left;
    fut_promise_t *all_done;
};

static void *caller_main(void *arg)
{
    struct caller *c = arg;
    for (int i = 0; i < 2000; i++) {
        fut_t *f = call_i64(FUT_MPI_ANY, "plus1", c->id * 100000 + i);
        if (fut_mpi_wait(g_m, f, -1) != 0 ||
            fut_value_i64(f) != c->id * 100000 + i + 1)
            atomic_fetch_add(c->bad, 1);
        fut_release(f);
    }
    if (atomic_fetch_sub(c->left, 1) == 1)
        fut_promise_settle(c->all_done, fut_ok(NULL));
    return NULL;
}

static void test_calls_and_waits_from_many_threads(void **state)
{
    (void)state;
    enum { T = 4 };
    atomic_int bad = 0, left = T;
    fut_promise_t *p;
    fut_t *done = fut_promise_new(&p);
    struct caller cs[T];
    pthread_t th[T];
    for (int i = 0; i < T; i++) {
        cs[i] = (struct caller){i, &bad, &left, p};
        assert_int_equal(pthread_create(&th[i], NULL, caller_main, &cs[i]), 0);
    }
    /* Under FUNNELED only this thread drives: wait here, not in join. */
    assert_int_equal(fut_mpi_wait(g_m, done, -1), 0);
    for (int i = 0; i < T; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&bad), 0);
    fut_release(done);
}

/* ---- chaining, timeouts, cancels -------------------------------------------- */

static fut_result_t add_pair(void *arg, fut_t *all)
{
    (void)arg;
    return fut_ok_i64(fut_value_i64(fut_input(all, 0)) +
                      fut_value_i64(fut_input(all, 1)));
}

static void test_calls_chain_like_any_future(void **state)
{
    (void)state;
    fut_executor_t *pool;
    assert_int_equal(fut_pool_create(&pool, &(fut_pool_opts_t){.threads = 2}),
                     0);
    fut_t *two[2] = {call_i64(1, "plus1", 10), call_i64(2, "plus1", 20)};
    fut_t *f = fut_then(fut_all(two, 2), pool, add_pair, NULL);
    assert_int_equal(await_i64(f), 32);
    fut_executor_destroy(pool);
}

static void test_timeout_gives_etimedout_and_discards_late_reply(void **state)
{
    (void)state;
    const char *g1 = gate_new();
    fut_t *f = fut_timeout(call_gate(1, g1), 10 * MS);
    assert_int_equal(await_err(f), FUT_ETIMEDOUT);
    gate_open(g1);
    /* The late reply (64 KiB) arrives while these run; it is freed, and
     * does not settle anything else. */
    for (int i = 0; i < 50; i++)
        assert_int_equal(await_i64(call_i64(1, "plus1", i)), i + 1);
    const char *g2 = gate_new();
    fut_t *g = call_gate(1, g2);
    assert_int_equal(fut_cancel(g), 0);
    assert_int_equal(await_err(g), FUT_ECANCELED);
    gate_open(g2);
    assert_int_equal(await_i64(call_i64(1, "plus1", 7)), 8);
    unlink(g1);
    unlink(g2);
}

static void test_cancelled_queued_call_is_never_sent(void **state)
{
    (void)state;
    int64_t before = await_i64(fut_mpi_call(g_m, 2, "runs", NULL, 0));
    fut_t *busy[BOUND];
    const char *path = gate_new();
    for (int i = 0; i < BOUND; i++) /* every slot to rank 2 held */
        busy[i] = call_gate(2, path);
    fut_t *queued = fut_mpi_call(g_m, 2, "count_run", NULL, 0);
    assert_int_equal(fut_cancel(queued), 0);
    fut_t *timed = fut_timeout(fut_mpi_call(g_m, 2, "count_run", NULL, 0), 1);
    assert_int_equal(await_err(queued), FUT_ECANCELED);
    assert_int_equal(await_err(timed), FUT_ETIMEDOUT);
    gate_open(path);
    for (int i = 0; i < BOUND; i++)
        assert_int_equal(await_err(busy[i]), 0);
    unlink(path);
    assert_int_equal(await_i64(fut_mpi_call(g_m, 2, "runs", NULL, 0)),
                     before);
}

static atomic_int g_wait_in_callback = 1, g_serve_in_callback = 1,
                  g_destroy_in_callback = 1;
static fut_result_t wait_in_callback(void *arg, fut_t *src)
{
    (void)src;
    atomic_store(&g_wait_in_callback, fut_mpi_wait(g_m, arg, -1));
    atomic_store(&g_serve_in_callback, fut_mpi_serve(g_m));
    atomic_store(&g_destroy_in_callback, fut_mpi_destroy(g_m));
    return fut_ok(NULL);
}

static void test_wait_serve_destroy_on_the_mpi_thread_are_edeadlk(void **state)
{
    (void)state;
    fut_promise_t *p;
    fut_t *never = fut_promise_new(&p);
    const char *path = gate_new();
    fut_t *f = fut_then(call_gate(1, path), fut_inline(), wait_in_callback,
                        never);
    gate_open(path); /* the callback is attached: let the call finish */
    assert_int_equal(await_err(f), 0);
    unlink(path);
    assert_int_equal(atomic_load(&g_wait_in_callback), FUT_EDEADLK);
    /* Refused before doing anything: the group still works. */
    assert_int_equal(atomic_load(&g_serve_in_callback), FUT_EDEADLK);
    assert_int_equal(atomic_load(&g_destroy_in_callback), FUT_EDEADLK);
    assert_int_equal(await_i64(call_i64(1, "plus1", 1)), 2);
    fut_promise_drop(p);
    fut_release(never);
}

static void test_call_from_a_serving_rank_is_eshutdown(void **state)
{
    (void)state;
    assert_int_equal(await_i64(fut_mpi_call(g_m, 1, "call_out", NULL, 0)),
                     FUT_ESHUTDOWN);
}

int main(int argc, char **argv)
{
    mpi_test_start(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_any_spreads_load_over_every_rank),
        cmocka_unit_test(test_many_small_calls_all_answered),
        cmocka_unit_test(test_in_flight_calls_per_rank_are_bounded),
        cmocka_unit_test(test_calls_and_waits_from_many_threads),
        cmocka_unit_test(test_calls_chain_like_any_future),
        cmocka_unit_test(test_timeout_gives_etimedout_and_discards_late_reply),
        cmocka_unit_test(test_cancelled_queued_call_is_never_sent),
        cmocka_unit_test(
            test_wait_serve_destroy_on_the_mpi_thread_are_edeadlk),
        cmocka_unit_test(test_call_from_a_serving_rank_is_eshutdown),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    return mpi_test_finish(failed);
}
