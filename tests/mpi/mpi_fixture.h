/* mpi_fixture.h: what libfut-mpi's test programs (tests/mpi/test_mpi.c,
 * tests/mpi/test_mpi_calls.c) share.  Every rank of every program creates
 * the group and registers the same functions (a remote call finds its
 * function by name); rank 0 runs the cmocka tests, the others serve until
 * rank 0 destroys the group.  `--funneled` initialises MPI with
 * MPI_THREAD_FUNNELED (no progress thread: the main thread drives inside
 * fut_mpi_wait); the default asks for MPI_THREAD_MULTIPLE.  cmocka
 * asserts: include after <cmocka.h>. */
#ifndef TESTS_MPI_FIXTURE_H
#define TESTS_MPI_FIXTURE_H

#include <fut/mpi.h>

#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>


#define USER_ERR (-100555)
#define BOUND 4    /* max_in_flight of the group */
#define WORKERS 8  /* pool workers per rank: more than BOUND */
#define MS 1000000ull

static fut_mpi_t *g_m;
static bool g_funneled;

/* ---- the functions every rank registers ----------------------------------- */

static int64_t arg_i64(const void *arg, size_t len)
{
    int64_t v = 0;
    memcpy(&v, arg, len < sizeof v ? len : sizeof v);
    return v;
}

static inline void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static fut_result_t plus1(const void *arg, size_t len, void *ud)
{
    (void)ud;
    return fut_ok_i64(arg_i64(arg, len) + 1);
}

static fut_result_t reverse(const void *arg, size_t len, void *ud)
{
    (void)ud;
    unsigned char *r = malloc(len + 1);
    for (size_t i = 0; i < len; i++)
        r[i] = ((const unsigned char *)arg)[len - 1 - i];
    fut_result_t res = fut_ok_bytes(r, len);
    free(r);
    return res;
}

static fut_result_t echo(const void *arg, size_t len, void *ud)
{
    (void)ud;
    return fut_ok_bytes(arg, len);
}

static fut_result_t none(const void *arg, size_t len, void *ud)
{
    (void)arg, (void)len, (void)ud;
    return fut_ok(NULL);
}

static fut_result_t fail_with(const void *arg, size_t len, void *ud)
{
    (void)ud;
    return fut_fail((int)arg_i64(arg, len));
}

static int g_static_thing;
static fut_result_t pointer(const void *arg, size_t len, void *ud)
{
    (void)arg, (void)len, (void)ud;
    return fut_ok(&g_static_thing);
}

/* fut_adopt of a future settled before the function returns: it travels
 * as that future's outcome (an int64, or bytes made by fut_ok_bytes). */
static fut_result_t adopt_ready(const void *arg, size_t len, void *ud)
{
    (void)ud;
    return fut_adopt(fut_ready(fut_ok_i64(arg_i64(arg, len) + 1)));
}

static fut_result_t adopt_bytes(const void *arg, size_t len, void *ud)
{
    (void)ud;
    return fut_adopt(fut_ready(fut_ok_bytes(arg, len)));
}

/* fut_adopt of a future still pending cannot travel; drop_pending (on the
 * same rank) then drops the promise, so nothing is left behind. */
static fut_promise_t *g_pending;
static fut_result_t adopt_pending(const void *arg, size_t len, void *ud)
{
    (void)arg, (void)len, (void)ud;
    return fut_adopt(fut_promise_new(&g_pending));
}

static fut_result_t drop_pending(const void *arg, size_t len, void *ud)
{
    (void)arg, (void)len, (void)ud;
    fut_promise_drop(g_pending);
    g_pending = NULL;
    return fut_ok(NULL);
}

static atomic_long g_owned_freed;
static void counting_free(void *p)
{
    free(p);
    atomic_fetch_add(&g_owned_freed, 1);
}

static fut_result_t owned(const void *arg, size_t len, void *ud)
{
    (void)arg, (void)len, (void)ud;
    return fut_ok_owned(malloc(16), counting_free);
}

static fut_result_t owned_freed(const void *arg, size_t len, void *ud)
{
    (void)arg, (void)len, (void)ud;
    return fut_ok_i64(atomic_load(&g_owned_freed));
}

static fut_result_t whoami(const void *arg, size_t len, void *ud)
{
    (void)arg, (void)len, (void)ud;
    return fut_ok_i64(fut_mpi_rank(g_m));
}

/* The bound: every call waits (up to 10 s) until BOUND calls arrived, so
 * BOUND run at once; more would show in g_meet_max. */
static atomic_int g_meet_now, g_meet_max, g_meet_arrived;
static fut_result_t meet(const void *arg, size_t len, void *ud)
{
    (void)arg, (void)len, (void)ud;
    int now = atomic_fetch_add(&g_meet_now, 1) + 1;
    for (int max = atomic_load(&g_meet_max);
         now > max && !atomic_compare_exchange_weak(&g_meet_max, &max, now);)
        ;
    atomic_fetch_add(&g_meet_arrived, 1);
    for (int i = 0; i < 10000 && atomic_load(&g_meet_arrived) < BOUND; i++)
        sleep_ms(1);
    sleep_ms(5); /* let extra calls arrive, if the bound let them */
    atomic_fetch_sub(&g_meet_now, 1);
    return fut_ok_i64(0);
}

static fut_result_t meet_max(const void *arg, size_t len, void *ud)
{
    (void)arg, (void)len, (void)ud;
    return fut_ok_i64(atomic_load(&g_meet_max));
}

/* Sleeps ARG ms, then returns 64 KiB of bytes (a late reply to discard). */
static fut_result_t sleep_bytes(const void *arg, size_t len, void *ud)
{
    (void)ud;
    static const unsigned char zeros[64 * 1024];
    sleep_ms(arg_i64(arg, len));
    return fut_ok_bytes(zeros, sizeof zeros);
}

/* Waits (up to 60 s) until the file named by ARG exists, then returns 64
 * KiB of bytes: rank 0 opens the gate (gate_open) when it is ready, so
 * tests that need a call to stay in flight do not depend on timing. */
static fut_result_t gate(const void *arg, size_t len, void *ud)
{
    (void)ud;
    static const unsigned char zeros[64 * 1024];
    char path[256];
    snprintf(path, sizeof path, "%.*s", (int)len, (const char *)arg);
    for (int i = 0; i < 60000 && access(path, F_OK) != 0; i++)
        sleep_ms(1);
    return fut_ok_bytes(zeros, sizeof zeros);
}

static atomic_long g_runs;
static fut_result_t count_run(const void *arg, size_t len, void *ud)
{
    (void)arg, (void)len, (void)ud;
    return fut_ok_i64(atomic_fetch_add(&g_runs, 1) + 1);
}

static fut_result_t runs(const void *arg, size_t len, void *ud)
{
    (void)arg, (void)len, (void)ud;
    return fut_ok_i64(atomic_load(&g_runs));
}

/* Calls out from a function: refused once this rank serves. */
static fut_result_t call_out(const void *arg, size_t len, void *ud)
{
    (void)arg, (void)len, (void)ud;
    fut_t *f = fut_mpi_call(g_m, 0, "whoami", NULL, 0);
    int err = fut_state(f) == FUT_REJECTED ? fut_error(f) : 0;
    fut_release(f);
    return fut_ok_i64(err);
}

static int register_all(fut_mpi_t *m)
{
    static const struct {
        const char *name;
        fut_mpi_fn fn;
    } fns[] = {{"plus1", plus1},
               {"reverse", reverse},
               {"echo", echo},
               {"none", none},
               {"fail", fail_with},
               {"pointer", pointer},
               {"owned", owned},
               {"owned_freed", owned_freed},
               {"whoami", whoami},
               {"meet", meet},
               {"meet_max", meet_max},
               {"sleep_bytes", sleep_bytes},
               {"gate", gate},
               {"count_run", count_run},
               {"runs", runs},
               {"call_out", call_out},
               {"adopt_ready", adopt_ready},
               {"adopt_bytes", adopt_bytes},
               {"adopt_pending", adopt_pending},
               {"drop_pending", drop_pending}};
    int err = 0;
    for (size_t i = 0; !err && i < sizeof fns / sizeof fns[0]; i++)
        err = fut_mpi_register(m, fns[i].name, fns[i].fn, NULL);
    /* The last name differs on rank 2: registrations that do not match. */
    if (!err)
        err = fut_mpi_register(m, fut_mpi_rank(m) == 2 ? "other_b" : "other_a",
                               plus1, NULL);
    return err;
}

/* ---- helpers (rank 0) ------------------------------------------------------ */

/* A closed gate: a fresh path (not yet a file) shared by every rank. */
static inline const char *gate_new(void)
{
    static char path[64];
    static int n;
    snprintf(path, sizeof path, "/tmp/fut-mpi-gate-%d-%d", (int)getpid(),
             n++);
    unlink(path);
    return path;
}

static inline fut_t *call_gate(int rank, const char *path)
{
    return fut_mpi_call(g_m, rank, "gate", path, strlen(path));
}

static inline void gate_open(const char *path)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
}

static inline fut_t *call_i64(int rank, const char *name, int64_t v)
{
    return fut_mpi_call(g_m, rank, name, &v, sizeof v);
}

/* Waits for F (consumed) and returns its int64 value; asserts it fulfilled. */
static inline int64_t await_i64(fut_t *f)
{
    assert_int_equal(fut_mpi_wait(g_m, f, -1), 0);
    assert_int_equal(fut_error(f), 0);
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    int64_t v = fut_value_i64(f);
    fut_release(f);
    return v;
}

/* Waits for F (consumed); returns its error. */
static inline int await_err(fut_t *f)
{
    assert_int_equal(fut_mpi_wait(g_m, f, -1), 0);
    int err = fut_error(f);
    fut_release(f);
    return err;
}

/* ---- every program's main ------------------------------------------------ */

/* Every rank: MPI, the group, the functions.  A rank other than 0 serves
 * until rank 0 destroys the group, then exits; rank 0 returns. */
static inline void mpi_test_start(int argc, char **argv)
{
    int provided = 0;
    g_funneled = argc > 1 && !strcmp(argv[1], "--funneled");
    MPI_Init_thread(&argc, &argv,
                    g_funneled ? MPI_THREAD_FUNNELED : MPI_THREAD_MULTIPLE,
                    &provided);
    fut_mpi_opts_t o = {.workers = WORKERS, .max_in_flight = BOUND};
    int err = fut_mpi_create(&g_m, MPI_COMM_WORLD, &o);
    if (!err)
        err = register_all(g_m);
    if (err) {
        fprintf(stderr, "%s: setup failed: %s\n", argv[0],
                fut_strerror(err));
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    int rank = fut_mpi_rank(g_m);
    if (rank != 0) {
        err = fut_mpi_serve(g_m);
        err = err ? err : fut_mpi_destroy(g_m);
        MPI_Finalize();
        exit(err ? 1 : 0);
    }
    printf("MPI thread level %d (%s), %d ranks\n", provided,
           g_funneled ? "funneled" : "multiple", fut_mpi_size(g_m));
}

/* Rank 0, after its tests: destroys the group if a test did not (the
 * others wait for it), ends MPI; the exit status. */
static inline int mpi_test_finish(int failed)
{
    if (g_m) /* a failed test left it: the others wait for our destroy */
        fut_mpi_destroy(g_m);
    MPI_Finalize();
    return failed ? 1 : 0;
}

#endif
