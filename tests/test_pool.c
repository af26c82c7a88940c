/* Tests for the work-stealing pool (executors/pool/pool.c); its task groups
 * (executors/pool/group.c) are tests/test_group.c's.
 * Small counts; tests/stress/pool_stress.c has the long versions.
 * cmocka is not thread-safe: worker threads only record into atomics. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <fut.h>

#include "stress/pool_dag.h"

static fut_executor_t *make_pool(unsigned threads, unsigned spin)
{
    fut_pool_opts_t o = {.threads = threads, .spin = spin};
    fut_executor_t *ex = NULL;

    assert_int_equal(fut_pool_create(&ex, &o), 0);
    assert_non_null(ex);
    return ex;
}

/* ---- options ------------------------------------------------------------ */

static void test_pool_create_rejects_bad_options(void **state)
{
    fut_pool_opts_t o = {0};
    fut_executor_t *ex = (fut_executor_t *)&o;

    (void)state;
    assert_int_equal(fut_pool_create(NULL, NULL), FUT_EINVAL);
    o.deque_capacity = 3;
    assert_int_equal(fut_pool_create(&ex, &o), FUT_EINVAL);
    assert_null(ex);
    o.deque_capacity = 1;
    assert_int_equal(fut_pool_create(&ex, &o), FUT_EINVAL);
    o.deque_capacity = 4096 + 1;
    assert_int_equal(fut_pool_create(&ex, &o), FUT_EINVAL);
    o.deque_capacity = 0;
    o.threads = 100000;
    assert_int_equal(fut_pool_create(&ex, &o), FUT_EINVAL);
}

static void test_pool_defaults_use_online_cpus(void **state)
{
    fut_executor_t *ex = NULL;
    fut_stats_t st;

    (void)state;
    assert_int_equal(fut_pool_create(&ex, NULL), 0);
    assert_string_equal(fut_executor_name(ex), "pool");
    assert_int_equal(fut_executor_stats(ex, &st), 0);
    assert_int_equal(st.workers, (unsigned)sysconf(_SC_NPROCESSORS_ONLN));
    assert_int_equal(fut_executor_destroy(ex), 0);
}

static bool thread_named(const char *want)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    bool found = false;

    if (d == NULL)
        return true; /* no procfs: nothing to check */
    while (!found && (e = readdir(d)) != NULL) {
        char path[300], comm[32] = "";
        FILE *f;

        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        if ((f = fopen(path, "r")) == NULL)
            continue;
        if (fgets(comm, sizeof comm, f) != NULL)
            found = strncmp(comm, want, strlen(want)) == 0;
        fclose(f);
    }
    closedir(d);
    return found;
}

static void test_pool_names_its_threads(void **state)
{
    fut_pool_opts_t o = {.threads = 2, .name = "tpool"};
    fut_executor_t *ex = NULL;

    (void)state;
    assert_int_equal(fut_pool_create(&ex, &o), 0);
    assert_true(thread_named("tpool-1"));
    assert_int_equal(fut_executor_destroy(ex), 0);
}

/* ---- running tasks ------------------------------------------------------ */

static atomic_int ran;

static fut_result_t count_task(void *arg)
{
    atomic_fetch_add(&ran, 1);
    return fut_ok_i64((int64_t)(intptr_t)arg);
}

static void test_pool_runs_tasks_and_counts_them(void **state)
{
    fut_executor_t *ex = make_pool(2, 0);
    fut_t *f[500];
    fut_stats_t st, w0, w1;
    int i;

    (void)state;
    atomic_store(&ran, 0);
    for (i = 0; i < 500; i++)
        f[i] = fut_async(ex, count_task, (void *)(intptr_t)i);
    for (i = 0; i < 500; i++) {
        assert_int_equal(fut_wait(f[i], -1), 0);
        assert_int_equal(fut_value_i64(f[i]), i);
        fut_release(f[i]);
    }
    assert_int_equal(atomic_load(&ran), 500);
    /* A worker counts a task after fut_task_run returns, which is after
     * the future settled: give the last count a moment to land. */
    for (i = 0; i < 5000; i++) {
        assert_int_equal(fut_executor_stats(ex, &st), 0);
        if (st.tasks_run >= 500)
            break;
        usleep(1000);
    }
    assert_true(st.tasks_run >= 500);
    assert_true(st.tasks_submitted >= 500);
    assert_true(st.injection_batches >= 1);
    assert_int_equal(st.workers, 2);
    assert_int_equal(fut_pool_worker_stats(ex, 0, &w0), 0);
    assert_int_equal(fut_pool_worker_stats(ex, 1, &w1), 0);
    assert_int_equal(w0.workers, 1);
    assert_true(w0.tasks_run + w1.tasks_run <= st.tasks_run + 2);
    assert_int_equal(fut_pool_worker_stats(ex, 2, &w1), FUT_EINVAL);
    assert_int_equal(fut_pool_worker_stats(NULL, 0, &w1), FUT_EINVAL);
    assert_int_equal(fut_pool_worker_stats(ex, 0, NULL), FUT_EINVAL);
    assert_int_equal(fut_pool_worker_stats(fut_inline(), 0, &w1), FUT_EINVAL);
    assert_int_equal(fut_executor_destroy(ex), 0);
}

static void test_pool_random_dags_match_oracle(void **state)
{
    fut_executor_t *ex = make_pool(2, 0);
    uint64_t seed;

    (void)state;
    for (seed = 1; seed <= 300; seed++)
        assert_int_equal(dag_run(ex, seed, 40), 0);
    assert_int_equal(fut_executor_destroy(ex), 0);
}

static void test_pool_random_dags_on_one_worker(void **state)
{
    fut_executor_t *ex = make_pool(1, 0);
    uint64_t seed;

    (void)state;
    for (seed = 1000; seed < 1100; seed++)
        assert_int_equal(dag_run(ex, seed, 40), 0);
    assert_int_equal(fut_executor_destroy(ex), 0);
}

/* ---- outside submitters ------------------------------------------------- */

#define SUBMITTERS 4
#define PER_SUBMITTER 2000

struct submitter {
    fut_executor_t *ex;
    atomic_int bad;
};

static void *submit_many(void *arg)
{
    struct submitter *s = arg;
    static _Thread_local fut_t *f[PER_SUBMITTER];
    int i;

    for (i = 0; i < PER_SUBMITTER; i++)
        f[i] = fut_async(s->ex, count_task, (void *)(intptr_t)i);
    for (i = 0; i < PER_SUBMITTER; i++) {
        if (fut_wait(f[i], -1) != 0 || fut_value_i64(f[i]) != i)
            atomic_fetch_add(&s->bad, 1);
        fut_release(f[i]);
    }
    return NULL;
}

static void test_pool_external_submission_from_four_threads(void **state)
{
    fut_executor_t *ex = make_pool(2, 0);
    struct submitter s = {.ex = ex};
    pthread_t t[SUBMITTERS];
    int i;

    (void)state;
    atomic_store(&ran, 0);
    for (i = 0; i < SUBMITTERS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, submit_many, &s), 0);
    for (i = 0; i < SUBMITTERS; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&s.bad), 0);
    assert_int_equal(atomic_load(&ran), SUBMITTERS * PER_SUBMITTER);
    assert_int_equal(fut_executor_destroy(ex), 0);
}

/* An outside submit is published by the time fut_async returns (the
 * injection stack's CAS): nothing sits in a buffer waiting for its
 * submitter to flush it.  The submitter here never calls into libfut
 * again before the task has run: it watches a flag the task sets.  spin = 1
 * makes workers park at once, so each submit races a worker going to
 * sleep (the Dekker argument in pool.c's protocol). */
static fut_result_t flag_task(void *arg)
{
    atomic_store((atomic_int *)arg, 1);
    return fut_ok(NULL);
}

static void test_pool_outside_submit_is_published_at_once(void **state)
{
    fut_executor_t *ex = make_pool(2, 1);
    uint64_t seed = 777;
    int i, stuck = 0;

    (void)state;
    for (i = 0; i < 300 && !stuck; i++) {
        atomic_int flag = 0;
        struct timespec gap = {0, (long)(dag_rand(&seed) % 200000)};
        uint64_t t0;
        fut_t *f;

        nanosleep(&gap, NULL);
        f = fut_async(ex, flag_task, &flag);
        t0 = fut_now_ns();
        /* A liveness bound, not a timing test. */
        while (atomic_load(&flag) == 0 && !stuck)
            if (fut_now_ns() - t0 > 5000000000ull)
                stuck = 1;
            else
                sched_yield();
        if (!stuck)
            assert_int_equal(fut_wait(f, -1), 0);
        fut_release(f);
    }
    assert_int_equal(stuck, 0);
    assert_int_equal(fut_executor_destroy(ex), 0);
}

/* A backlog from outside: with the only worker held by a gate task, four
 * submitters pile up 160000 tasks (many times the deque's capacity, so the
 * batch the worker then takes overflows its deque into its private chain).
 * Every task still runs exactly once. */
#define SPILL_THREADS 4
#define SPILL_PER_THREAD 40000 /* 160000 in all */

struct spill {
    fut_executor_t *ex;
    _Atomic uint32_t *hits;
    fut_t **f;
};

struct spiller {
    struct spill *sp;
    int k;
};

static fut_result_t hit_task(void *arg)
{
    _Atomic uint32_t *h = arg;

    atomic_fetch_add(h, 1);
    return fut_ok(NULL);
}

static fut_result_t gate_task(void *arg)
{
    while (atomic_load((atomic_int *)arg) == 0)
        sched_yield();
    return fut_ok(NULL);
}

static void *spill_submit(void *arg)
{
    struct spiller *s = arg;
    int i;

    for (i = s->k; i < SPILL_THREADS * SPILL_PER_THREAD; i += SPILL_THREADS)
        s->sp->f[i] = fut_async(s->sp->ex, hit_task, &s->sp->hits[i]);
    return NULL;
}

static void test_pool_outside_backlog_keeps_every_task(void **state)
{
    enum { N = SPILL_THREADS * SPILL_PER_THREAD };
    fut_executor_t *ex = make_pool(1, 0);
    struct spill sp = {.ex = ex};
    struct spiller s[SPILL_THREADS];
    pthread_t t[SPILL_THREADS];
    atomic_int open = 0;
    fut_stats_t st;
    fut_t *gate;
    int i, bad = 0;

    (void)state;
    sp.hits = calloc(N, sizeof *sp.hits);
    sp.f = calloc(N, sizeof *sp.f);
    assert_non_null(sp.hits);
    assert_non_null(sp.f);
    gate = fut_async(ex, gate_task, &open);
    for (i = 0; i < SPILL_THREADS; i++) {
        s[i].sp = &sp;
        s[i].k = i;
        assert_int_equal(pthread_create(&t[i], NULL, spill_submit, &s[i]), 0);
    }
    for (i = 0; i < SPILL_THREADS; i++)
        pthread_join(t[i], NULL);
    atomic_store(&open, 1);
    assert_int_equal(fut_wait(gate, -1), 0);
    fut_release(gate);
    for (i = 0; i < N; i++) {
        if (fut_wait(sp.f[i], -1) != 0 || atomic_load(&sp.hits[i]) != 1)
            bad++;
        fut_release(sp.f[i]);
    }
    assert_int_equal(bad, 0);
    assert_int_equal(fut_executor_stats(ex, &st), 0);
    assert_true(st.tasks_submitted >= (uint64_t)N + 1);
    assert_int_equal(fut_executor_destroy(ex), 0);
    free(sp.hits);
    free(sp.f);
}

/* ---- destroy ------------------------------------------------------------ */

static fut_result_t busy_task(void *arg)
{
    volatile unsigned k;

    (void)arg;
    for (k = 0; k < 2000; k++)
        ;
    atomic_fetch_add(&ran, 1);
    return fut_ok_i64(1);
}

/* A task that spawns a child and waits for it: work created while the pool
 * is being destroyed still completes. */
static fut_result_t parent_task(void *arg)
{
    fut_executor_t *ex = arg;
    fut_t *c = fut_async(ex, busy_task, NULL);
    int rc = fut_wait(c, -1);

    fut_release(c);
    atomic_fetch_add(&ran, 1);
    return rc == 0 ? fut_ok_i64(1) : fut_fail(rc);
}

static void test_pool_destroy_finishes_queued_work(void **state)
{
    fut_executor_t *ex = make_pool(2, 0);
    fut_t *f[2000];
    int i;

    (void)state;
    atomic_store(&ran, 0);
    for (i = 0; i < 2000; i++)
        f[i] = i % 4 == 0 ? fut_async(ex, parent_task, ex)
                          : fut_async(ex, busy_task, NULL);
    assert_int_equal(fut_executor_destroy(ex), 0);
    assert_int_equal(atomic_load(&ran), 2000 + 500);
    for (i = 0; i < 2000; i++) {
        assert_int_equal(fut_state(f[i]), FUT_FULFILLED);
        fut_release(f[i]);
    }
}

struct racer {
    fut_executor_t *ex;
    atomic_int accepted, refused, other;
};

static void *race_submit(void *arg)
{
    struct racer *r = arg;

    for (;;) {
        fut_t *f = fut_async(r->ex, busy_task, NULL);
        int rc = fut_wait(f, -1);

        if (rc == 0 && fut_state(f) == FUT_FULFILLED)
            atomic_fetch_add(&r->accepted, 1);
        else if (fut_error(f) == FUT_ESHUTDOWN) {
            atomic_fetch_add(&r->refused, 1);
            fut_release(f);
            return NULL;
        } else
            atomic_fetch_add(&r->other, 1);
        fut_release(f);
    }
}

static fut_result_t never_called(void *arg, fut_t *src)
{
    (void)arg;
    (void)src;
    return fut_ok(NULL);
}

static void test_pool_destroy_races_submitters(void **state)
{
    fut_executor_t *ex = make_pool(2, 0);
    struct racer r = {.ex = ex};
    fut_promise_t *p;
    fut_t *keep;
    pthread_t t[3];
    struct timespec ms = {0, 2000000};
    int i;

    (void)state;
    atomic_store(&ran, 0);
    /* A continuation waiting on EX across the destroy: it settles
     * FUT_ESHUTDOWN afterwards, uncalled. */
    keep = fut_then(fut_promise_new(&p), ex, never_called, NULL);
    for (i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&t[i], NULL, race_submit, &r), 0);
    nanosleep(&ms, NULL);
    assert_int_equal(fut_executor_destroy(ex), 0);
    for (i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&r.other), 0);
    assert_int_equal(atomic_load(&r.refused), 3);
    assert_int_equal(atomic_load(&ran), atomic_load(&r.accepted));
    assert_int_equal(fut_promise_settle(p, fut_ok(NULL)), 0);
    assert_int_equal(fut_wait(keep, -1), 0);
    assert_int_equal(fut_error(keep), FUT_ESHUTDOWN);
    fut_release(keep);
}

/* ---- lost wake-ups ------------------------------------------------------ */

struct stamp {
    uint64_t submitted;
    _Atomic uint64_t started;
};

static fut_result_t stamp_task(void *arg)
{
    struct stamp *s = arg;

    atomic_store(&s->started, fut_now_ns());
    return fut_ok(NULL);
}

/* Runs on a worker: pushes a child to its own deque, then stays busy long
 * enough that the child must be stolen by the other (parked) worker. */
static fut_result_t spawn_and_spin(void *arg)
{
    struct stamp *s = arg;
    fut_t *c;

    s->submitted = fut_now_ns();
    c = fut_async(fut_executor_current(), stamp_task, s);
    while (atomic_load(&s->started) == 0 &&
           fut_now_ns() - s->submitted < 50000000ull)
        ;
    fut_release(c);
    return fut_ok(NULL);
}

static void test_pool_no_lost_wakeups(void **state)
{
    /* spin = 1: workers park almost at once, so every submit races a
     * worker that is going to sleep. */
    fut_executor_t *ex = make_pool(2, 1);
    uint64_t worst = 0, seed = 12345;
    fut_stats_t st;
    int i;

    (void)state;
    for (i = 0; i < 300; i++) {
        struct stamp s = {0};
        struct timespec gap = {0, (long)(dag_rand(&seed) % 300000)};
        fut_t *f;

        nanosleep(&gap, NULL);
        if (i % 2 == 0) {
            s.submitted = fut_now_ns();
            f = fut_async(ex, stamp_task, &s);
        } else {
            f = fut_async(ex, spawn_and_spin, &s);
        }
        /* A liveness bound, not a timing test. */
        assert_int_equal(fut_wait(f, 2000000000ll), 0);
        while (atomic_load(&s.started) == 0)
            sched_yield();
        if (atomic_load(&s.started) - s.submitted > worst)
            worst = atomic_load(&s.started) - s.submitted;
        fut_release(f);
    }
    assert_true(worst < 1000000000ull);
    assert_int_equal(fut_executor_stats(ex, &st), 0);
    assert_true(st.parks > 0);
    assert_int_equal(fut_executor_destroy(ex), 0);
}

/* ---- nested fork-join --------------------------------------------------- */

static fut_result_t fib_task(void *arg)
{
    int64_t n = (int64_t)(intptr_t)arg;
    fut_t *a, *b;
    int64_t v;

    if (n < 2)
        return fut_ok_i64(n);
    a = fut_async(fut_executor_current(), fib_task, (void *)(intptr_t)(n - 1));
    b = fut_async(fut_executor_current(), fib_task, (void *)(intptr_t)(n - 2));
    if (fut_wait(a, -1) != 0 || fut_wait(b, -1) != 0)
        v = -1;
    else
        v = fut_value_i64(a) + fut_value_i64(b);
    fut_release(a);
    fut_release(b);
    return fut_ok_i64(v);
}

static void test_pool_nested_fib_on_one_worker(void **state)
{
    fut_executor_t *ex = make_pool(1, 0);
    fut_t *f;

    (void)state;
    f = fut_async(ex, fib_task, (void *)(intptr_t)16);
    assert_int_equal(fut_wait(f, 30000000000ll), 0);
    assert_int_equal(fut_value_i64(f), 987);
    fut_release(f);
    assert_int_equal(fut_executor_destroy(ex), 0);
}

static void test_pool_nested_fib_on_two_workers(void **state)
{
    fut_executor_t *ex = make_pool(2, 0);
    fut_t *f;

    (void)state;
    f = fut_async(ex, fib_task, (void *)(intptr_t)18);
    assert_int_equal(fut_wait(f, 30000000000ll), 0);
    assert_int_equal(fut_value_i64(f), 2584);
    fut_release(f);
    assert_int_equal(fut_executor_destroy(ex), 0);
}

static fut_result_t destroy_own_pool(void *arg)
{
    (void)arg;
    return fut_ok_i64(fut_executor_destroy(fut_executor_current()));
}

static void test_pool_destroy_from_worker_is_edeadlk(void **state)
{
    fut_executor_t *ex = make_pool(1, 0);
    fut_t *f;

    (void)state;
    f = fut_async(ex, destroy_own_pool, NULL);
    assert_int_equal(fut_wait(f, -1), 0);
    assert_int_equal(fut_value_i64(f), FUT_EDEADLK);
    fut_release(f);
    assert_int_equal(fut_executor_destroy(ex), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_create_rejects_bad_options),
        cmocka_unit_test(test_pool_defaults_use_online_cpus),
        cmocka_unit_test(test_pool_names_its_threads),
        cmocka_unit_test(test_pool_runs_tasks_and_counts_them),
        cmocka_unit_test(test_pool_random_dags_match_oracle),
        cmocka_unit_test(test_pool_random_dags_on_one_worker),
        cmocka_unit_test(test_pool_external_submission_from_four_threads),
        cmocka_unit_test(test_pool_outside_submit_is_published_at_once),
        cmocka_unit_test(test_pool_outside_backlog_keeps_every_task),
        cmocka_unit_test(test_pool_destroy_finishes_queued_work),
        cmocka_unit_test(test_pool_destroy_races_submitters),
        cmocka_unit_test(test_pool_no_lost_wakeups),
        cmocka_unit_test(test_pool_nested_fib_on_one_worker),
        cmocka_unit_test(test_pool_nested_fib_on_two_workers),
        cmocka_unit_test(test_pool_destroy_from_worker_is_edeadlk),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
