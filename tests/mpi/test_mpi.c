/* libfut-mpi: remote calls as futures (<fut/mpi.h>): values of every kind
 * and size there and back, names, bad input, FUT_MPI_ENOTSUP off the main
 * thread (funneled), and destroy with calls in flight.  Runs under
 * `mpirun --oversubscribe -np 4` (scons test does), plain and with
 * `--funneled`; mpi_fixture.h says what every rank does.  Calls in number
 * and in flight are tests/mpi/test_mpi_calls.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>

#include "mpi_fixture.h"

/* ---- values ------------------------------------------------------------------ */

static void test_i64_round_trips_on_every_rank(void **state)
{
    (void)state;
    for (int r = 0; r < fut_mpi_size(g_m); r++) {
        assert_int_equal(await_i64(call_i64(r, "plus1", 41)), 42);
        assert_int_equal(await_i64(call_i64(r, "plus1", INT64_MIN)),
                         INT64_MIN + 1);
        assert_int_equal(await_i64(call_i64(r, "whoami", 0)), r);
    }
}

static void test_bytes_round_trip_as_owned_fut_bytes(void **state)
{
    (void)state;
    const char text[] = "futures over MPI";
    fut_t *f = fut_mpi_call(g_m, 1, "reverse", text, strlen(text));
    assert_int_equal(fut_mpi_wait(g_m, f, -1), 0);
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    const fut_bytes_t *b = fut_value(f);
    assert_non_null(b);
    assert_int_equal(b->len, strlen(text));
    assert_memory_equal(b->data, "IPM revo serutuf", b->len);
    fut_release(f); /* frees the bytes (ASan's leak check watches) */
}

static void test_empty_argument_and_empty_bytes(void **state)
{
    (void)state;
    fut_t *f = fut_mpi_call(g_m, 2, "echo", NULL, 0);
    assert_int_equal(fut_mpi_wait(g_m, f, -1), 0);
    const fut_bytes_t *b = fut_value(f);
    assert_non_null(b);
    assert_int_equal(b->len, 0);
    fut_release(f);
}

static void test_no_value_arrives_as_no_value(void **state)
{
    (void)state;
    fut_t *f = fut_mpi_call(g_m, 3, "none", NULL, 0);
    assert_int_equal(fut_mpi_wait(g_m, f, -1), 0);
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    assert_null(fut_value(f));
    fut_release(f);
}

static void test_remote_rejection_propagates(void **state)
{
    (void)state;
    assert_int_equal(await_err(call_i64(1, "fail", USER_ERR)), USER_ERR);
    assert_int_equal(await_err(call_i64(0, "fail", FUT_ETIMEDOUT)),
                     FUT_ETIMEDOUT);
}

static void test_pointer_value_cannot_travel(void **state)
{
    (void)state;
    assert_int_equal(await_err(fut_mpi_call(g_m, 1, "pointer", NULL, 0)),
                     FUT_EINVAL);
}

static void test_owned_value_is_disposed_remotely_and_einval(void **state)
{
    (void)state;
    int64_t before = await_i64(fut_mpi_call(g_m, 2, "owned_freed", NULL, 0));
    assert_int_equal(await_err(fut_mpi_call(g_m, 2, "owned", NULL, 0)),
                     FUT_EINVAL);
    assert_int_equal(await_i64(fut_mpi_call(g_m, 2, "owned_freed", NULL, 0)),
                     before + 1);
}

static void test_adopted_settled_future_travels_as_its_outcome(void **state)
{
    (void)state;
    assert_int_equal(await_i64(call_i64(1, "adopt_ready", 41)), 42);
    fut_t *f = fut_mpi_call(g_m, 2, "adopt_bytes", "abc", 3);
    assert_int_equal(fut_mpi_wait(g_m, f, -1), 0);
    const fut_bytes_t *b = fut_value(f);
    assert_non_null(b);
    assert_int_equal(b->len, 3);
    assert_memory_equal(b->data, "abc", 3);
    fut_release(f);
}

static void test_adopted_pending_future_cannot_travel(void **state)
{
    (void)state;
    assert_int_equal(await_err(fut_mpi_call(g_m, 3, "adopt_pending", NULL, 0)),
                     FUT_EINVAL);
    assert_int_equal(await_err(fut_mpi_call(g_m, 3, "drop_pending", NULL, 0)),
                     0);
}

static void test_64_mib_argument_and_value(void **state)
{
    (void)state;
    size_t n = 64u << 20;
    unsigned char *big = malloc(n);
    assert_non_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = (unsigned char)(i * 2654435761u >> 13);
    fut_t *f = fut_mpi_call(g_m, fut_mpi_size(g_m) - 1, "echo", big, n);
    assert_int_equal(fut_mpi_wait(g_m, f, -1), 0);
    assert_int_equal(fut_error(f), 0);
    const fut_bytes_t *b = fut_value(f);
    assert_int_equal(b->len, n);
    assert_true(memcmp(b->data, big, n) == 0);
    fut_release(f);
    free(big);
}

/* Around 4 KiB a message goes whole or as header + body (recv.c). */
static void test_bytes_around_the_small_message_size(void **state)
{
    (void)state;
    static unsigned char buf[8192];
    const size_t sizes[] = {4096 - 24 - 1, 4096 - 24, 4096 - 24 + 1, 4096,
                            8192};
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)(i * 7 + 3);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        fut_t *f = fut_mpi_call(g_m, (int)i % fut_mpi_size(g_m), "echo", buf,
                                sizes[i]);
        assert_int_equal(fut_mpi_wait(g_m, f, -1), 0);
        const fut_bytes_t *b = fut_value(f);
        assert_non_null(b);
        assert_int_equal(b->len, sizes[i]);
        assert_memory_equal(b->data, buf, sizes[i]);
        fut_release(f);
    }
}

static void test_fut_ok_bytes_is_an_owned_copy(void **state)
{
    (void)state;
    char text[] = "abc";
    fut_t *f = fut_ready(fut_ok_bytes(text, 3));
    text[0] = 'x';
    const fut_bytes_t *b = fut_value(f);
    assert_int_equal(b->len, 3);
    assert_memory_equal(b->data, "abc", 3);
    fut_release(f);
    f = fut_ready(fut_ok_bytes(NULL, 3));
    assert_int_equal(fut_error(f), FUT_EINVAL);
    fut_release(f);
}

/* ---- names -------------------------------------------------------------------- */

static void test_unknown_name_rejects_at_once_enosys(void **state)
{
    (void)state;
    fut_t *f = fut_mpi_call(g_m, 1, "no_such_function", NULL, 0);
    assert_int_equal(fut_state(f), FUT_REJECTED); /* before any message */
    assert_int_equal(fut_error(f), FUT_MPI_ENOSYS);
    assert_string_equal(fut_strerror(FUT_MPI_ENOSYS),
                        "Function not implemented");
    fut_release(f);
}

static void test_name_registered_differently_remotely_is_enosys(void **state)
{
    (void)state;
    assert_int_equal(await_i64(call_i64(1, "other_a", 1)), 2);
    assert_int_equal(await_err(call_i64(2, "other_a", 1)), FUT_MPI_ENOSYS);
}

static void test_register_after_first_call_is_ealready(void **state)
{
    (void)state;
    assert_int_equal(fut_mpi_register(g_m, "late", plus1, NULL),
                     FUT_EALREADY);
    fut_t *f = fut_mpi_call(g_m, 1, "late", NULL, 0);
    assert_int_equal(fut_error(f), FUT_MPI_ENOSYS);
    fut_release(f);
}

/* ---- bad input ------------------------------------------------------------------ */

static void test_bad_arguments_are_einval(void **state)
{
    (void)state;
    fut_mpi_t *m = NULL;
    assert_int_equal(fut_mpi_create(NULL, MPI_COMM_WORLD, NULL), FUT_EINVAL);
    assert_int_equal(fut_mpi_create(&m, MPI_COMM_NULL, NULL), FUT_EINVAL);
    assert_null(m);
    assert_int_equal(fut_mpi_register(NULL, "x", plus1, NULL), FUT_EINVAL);
    assert_int_equal(fut_mpi_register(g_m, NULL, plus1, NULL), FUT_EINVAL);
    assert_int_equal(fut_mpi_register(g_m, "", plus1, NULL), FUT_EINVAL);
    assert_int_equal(fut_mpi_register(g_m, "x", NULL, NULL), FUT_EINVAL);
    int64_t v = 1;
    fut_t *bad[] = {
        fut_mpi_call(NULL, 0, "plus1", &v, sizeof v),
        fut_mpi_call(g_m, 0, NULL, &v, sizeof v),
        fut_mpi_call(g_m, -2, "plus1", &v, sizeof v),
        fut_mpi_call(g_m, fut_mpi_size(g_m), "plus1", &v, sizeof v),
        fut_mpi_call(g_m, 0, "plus1", NULL, 8),
        fut_mpi_call(g_m, 0, "plus1", &v, (size_t)INT_MAX),
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(fut_error(bad[i]), FUT_EINVAL);
        fut_release(bad[i]);
    }
    assert_int_equal(fut_mpi_wait(NULL, bad[0], 0), FUT_EINVAL);
    assert_int_equal(fut_mpi_wait(g_m, NULL, 0), FUT_EINVAL);
    assert_int_equal(fut_mpi_rank(NULL), FUT_EINVAL);
    assert_int_equal(fut_mpi_size(NULL), FUT_EINVAL);
    assert_int_equal(fut_mpi_serve(NULL), FUT_EINVAL);
    assert_int_equal(fut_mpi_destroy(NULL), FUT_EINVAL);
    fut_mpi_opts_t big = {.max_in_flight = (1u << 20) + 1};
    assert_int_equal(fut_mpi_create(&m, MPI_COMM_WORLD, &big), FUT_EINVAL);
}

static void test_wait_times_out_without_settling(void **state)
{
    (void)state;
    const char *path = gate_new();
    fut_t *f = call_gate(3, path);
    assert_int_equal(fut_mpi_wait(g_m, f, 1000), FUT_ETIMEDOUT);
    assert_int_equal(fut_state(f), FUT_PENDING);
    gate_open(path);
    assert_int_equal(await_err(f), 0);
    unlink(path);
}

static void *create_off_main(void *arg)
{
    fut_mpi_t *m = NULL;
    int *err = arg;
    err[0] = fut_mpi_create(&m, MPI_COMM_WORLD, NULL);
    err[1] = fut_mpi_serve(g_m);
    err[2] = fut_mpi_destroy(g_m);
    return NULL;
}

static void test_funneled_off_main_thread_is_enotsup(void **state)
{
    (void)state;
    int err[3] = {0, 0, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, create_off_main, err), 0);
    pthread_join(t, NULL);
    assert_int_equal(err[0], FUT_MPI_ENOTSUP);
    assert_int_equal(err[1], FUT_MPI_ENOTSUP);
    assert_int_equal(err[2], FUT_MPI_ENOTSUP);
    assert_int_equal(await_i64(call_i64(1, "plus1", 1)), 2);
}

/* Last: destroy with calls queued and in flight; all settle for real. */
static void test_destroy_settles_calls_in_flight(void **state)
{
    (void)state;
    enum { N = 2000 };
    fut_t *fs[N + 3];
    for (int64_t i = 0; i < N; i++)
        fs[i] = call_i64(FUT_MPI_ANY, "plus1", i);
    for (int i = 0; i < 3; i++)
        fs[N + i] = call_i64(i + 1, "sleep_bytes", 100);
    assert_int_equal(fut_mpi_destroy(g_m), 0);
    g_m = NULL;
    for (int i = 0; i < N + 3; i++) {
        assert_int_equal(fut_state(fs[i]), FUT_FULFILLED);
        if (i < N)
            assert_int_equal(fut_value_i64(fs[i]), i + 1);
        fut_release(fs[i]);
    }
}

int main(int argc, char **argv)
{
    mpi_test_start(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_i64_round_trips_on_every_rank),
        cmocka_unit_test(test_bytes_round_trip_as_owned_fut_bytes),
        cmocka_unit_test(test_empty_argument_and_empty_bytes),
        cmocka_unit_test(test_no_value_arrives_as_no_value),
        cmocka_unit_test(test_remote_rejection_propagates),
        cmocka_unit_test(test_pointer_value_cannot_travel),
        cmocka_unit_test(test_owned_value_is_disposed_remotely_and_einval),
        cmocka_unit_test(test_adopted_settled_future_travels_as_its_outcome),
        cmocka_unit_test(test_adopted_pending_future_cannot_travel),
        cmocka_unit_test(test_64_mib_argument_and_value),
        cmocka_unit_test(test_bytes_around_the_small_message_size),
        cmocka_unit_test(test_fut_ok_bytes_is_an_owned_copy),
        cmocka_unit_test(test_unknown_name_rejects_at_once_enosys),
        cmocka_unit_test(test_name_registered_differently_remotely_is_enosys),
        cmocka_unit_test(test_register_after_first_call_is_ealready),
        cmocka_unit_test(test_bad_arguments_are_einval),
        cmocka_unit_test(test_wait_times_out_without_settling),
    };
    /* Only a FUNNELED run can provoke FUT_MPI_ENOTSUP (MPI's level is set
     * once per process); the other run does not list it (no skip). */
    const struct CMUnitTest funneled_tests[] = {
        cmocka_unit_test(test_funneled_off_main_thread_is_enotsup),
    };
    const struct CMUnitTest last[] = {
        cmocka_unit_test(test_destroy_settles_calls_in_flight),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    if (g_funneled)
        failed += cmocka_run_group_tests(funneled_tests, NULL, NULL);
    failed += cmocka_run_group_tests(last, NULL, NULL);
    return mpi_test_finish(failed);
}
