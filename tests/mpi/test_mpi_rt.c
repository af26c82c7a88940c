/* libfut-mpi: who drives MPI between calls made one at a time (the round
 * trip's fast path; executors/mpi/mpi.c, recv.c).  Runs under
 * `mpirun --oversubscribe -np 4` as test_mpi does (scons test runs it
 * plain and with --funneled): every rank creates a group whose functions
 * run on the MPI thread (opts.run_inline, as bench/mpi's rt case), rank 0
 * runs the cmocka tests, the others serve until its destroy.  No test
 * measures time: a wait that would hang when a step is missing is bounded
 * by TIMEOUT and fails instead. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fut/mpi.h>

#include <stdio.h>
#include <string.h>

#define TIMEOUT 20000000000ll /* 20 s: only a broken build waits this long */

static fut_mpi_t *g_m;

static fut_result_t plus1(const void *arg, size_t len, void *ud)
{
    (void)ud;
    int64_t v = 0;
    memcpy(&v, arg, len < sizeof v ? len : sizeof v);
    return fut_ok_i64(v + 1);
}

static fut_t *call_plus1(int rank, int64_t v)
{
    return fut_mpi_call(g_m, rank, "plus1", &v, sizeof v);
}

/* One call at a time, each waited for by fut_mpi_wait: the caller's
 * reply receive is posted again only by the round after the reply (when
 * no other reply is due), which sends the next call first.  Every reply
 * must still arrive: a repost that never came would time the wait out. */
static void test_calls_one_at_a_time_are_each_answered(void **state)
{
    (void)state;
    for (int64_t i = 0; i < 1000; i++) {
        int rank = (int)(i % fut_mpi_size(g_m));
        fut_t *f = call_plus1(rank, i);
        assert_int_equal(fut_mpi_wait(g_m, f, TIMEOUT), 0);
        assert_int_equal(fut_state(f), FUT_FULFILLED);
        assert_int_equal(fut_value_i64(f), i + 1);
        fut_release(f);
    }
}

/* Calls in flight to every rank while their replies arrive (the reply
 * receive is posted again at once then), alternated with single calls. */
static void test_calls_in_flight_and_single_calls_alternate(void **state)
{
    (void)state;
    enum { K = 8 };
    for (int round = 0; round < 100; round++) {
        fut_t *fs[K];
        for (int k = 0; k < K; k++)
            fs[k] = call_plus1(k % fut_mpi_size(g_m), round * K + k);
        for (int k = K - 1; k >= 0; k--) {
            assert_int_equal(fut_mpi_wait(g_m, fs[k], TIMEOUT), 0);
            assert_int_equal(fut_value_i64(fs[k]), round * K + k + 1);
            fut_release(fs[k]);
        }
        fut_t *f = call_plus1(1 % fut_mpi_size(g_m), round);
        assert_int_equal(fut_mpi_wait(g_m, f, TIMEOUT), 0);
        assert_int_equal(fut_value_i64(f), round + 1);
        fut_release(f);
    }
}

/* After a fut_mpi_wait handed MPI back with nothing outstanding, the
 * progress thread stays napping only while waiters keep coming (it looks
 * for a hand-back since its last look); with none, it takes MPI over, so
 * a call waited for with a plain fut_wait (which drives nothing) is
 * answered.  Not under FUNNELED: there is no progress thread there, and
 * <fut/mpi.h> says a plain fut_wait waits forever. */
static void test_call_after_a_waiter_left_is_answered_without_one(void **state)
{
    (void)state;
    for (int i = 0; i < 20; i++) {
        fut_t *f = call_plus1(1, i);
        assert_int_equal(fut_mpi_wait(g_m, f, TIMEOUT), 0);
        fut_release(f);
        f = call_plus1(1, 100 + i);
        assert_int_equal(fut_wait(f, TIMEOUT), 0);
        assert_int_equal(fut_value_i64(f), 101 + i);
        fut_release(f);
    }
}

int main(int argc, char **argv)
{
    int provided = 0;
    bool funneled = argc > 1 && !strcmp(argv[1], "--funneled");
    MPI_Init_thread(&argc, &argv,
                    funneled ? MPI_THREAD_FUNNELED : MPI_THREAD_MULTIPLE,
                    &provided);
    fut_mpi_opts_t o = {.run_inline = true};
    int err = fut_mpi_create(&g_m, MPI_COMM_WORLD, &o);
    if (!err)
        err = fut_mpi_register(g_m, "plus1", plus1, NULL);
    if (err) {
        fprintf(stderr, "test_mpi_rt: setup failed: %s\n", fut_strerror(err));
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    if (fut_mpi_rank(g_m) != 0) {
        err = fut_mpi_serve(g_m);
        err = err ? err : fut_mpi_destroy(g_m);
        MPI_Finalize();
        return err ? 1 : 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_calls_one_at_a_time_are_each_answered),
        cmocka_unit_test(test_calls_in_flight_and_single_calls_alternate),
    };
    /* A progress thread exists only above FUNNELED; the FUNNELED run does
     * not list this one (no skip). */
    const struct CMUnitTest threaded[] = {
        cmocka_unit_test(
            test_call_after_a_waiter_left_is_answered_without_one),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    if (!funneled)
        failed += cmocka_run_group_tests(threaded, NULL, NULL);
    err = fut_mpi_destroy(g_m);
    MPI_Finalize();
    return failed || err ? 1 : 0;
}
