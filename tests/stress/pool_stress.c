/* Long runs for the pool: random DAGs over many seeds, outside submitters,
 * lost-wake-up hunting, group fork-join, create/destroy cycles.
 *
 *   pool_stress [seeds [threads]]   defaults 200 seeds, 2 workers (quick)
 *   pool_stress --long              5000 seeds and longer phases
 *
 * Exit status 0 when every check passed. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <fut.h>

#include "pool_dag.h"

static int failures;

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "pool_stress: FAIL %s:%d: ", __FILE__, __LINE__);  \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
            failures++;                                                        \
        }                                                                      \
    } while (0)

static fut_executor_t *make_pool(unsigned threads, unsigned spin)
{
    fut_pool_opts_t o = {.threads = threads, .spin = spin};
    fut_executor_t *ex = NULL;
    int rc = fut_pool_create(&ex, &o);

    if (rc != 0) {
        fprintf(stderr, "pool_stress: fut_pool_create: %s\n", fut_strerror(rc));
        exit(2);
    }
    return ex;
}

static fut_result_t stamp_task(void *arg)
{
    atomic_store((_Atomic uint64_t *)arg, fut_now_ns());
    return fut_ok(NULL);
}

static void wakeups(unsigned threads, int rounds)
{
    fut_executor_t *ex = make_pool(threads, 1);
    uint64_t seed = 99, worst = 0;
    int i;

    for (i = 0; i < rounds; i++) {
        _Atomic uint64_t started = 0;
        struct timespec gap = {0, (long)(dag_rand(&seed) % 500000)};
        uint64_t t0;
        fut_t *f;

        nanosleep(&gap, NULL);
        t0 = fut_now_ns();
        f = fut_async(ex, stamp_task, &started);
        CHECK(fut_wait(f, 2000000000ll) == 0, "task did not run within 2 s");
        fut_release(f);
        if (atomic_load(&started) - t0 > worst)
            worst = atomic_load(&started) - t0;
    }
    printf("pool_stress: wakeups rounds=%d worst_start_us=%.1f\n", rounds,
           worst / 1e3);
    fut_executor_destroy(ex);
}

struct gfib {
    int n;
    int64_t r;
};

static void gfib(void *arg)
{
    struct gfib *f = arg, a, b;
    fut_group_t g;
    fut_group_task_t t;

    if (f->n < 2) {
        f->r = f->n;
        return;
    }
    a.n = f->n - 1;
    b.n = f->n - 2;
    fut_group_init(&g, NULL);
    fut_group_spawn(&g, &t, gfib, &a);
    gfib(&b);
    fut_group_wait(&g);
    f->r = a.r + b.r;
}

static fut_result_t gfib_task(void *arg)
{
    gfib(arg);
    return fut_ok_i64(((struct gfib *)arg)->r);
}

static void groups(unsigned threads, int rounds)
{
    fut_executor_t *ex = make_pool(threads, 0);
    int i;

    for (i = 0; i < rounds; i++) {
        struct gfib f = {.n = 20 + i % 6};
        int64_t want[] = {6765, 10946, 17711, 28657, 46368, 75025};
        fut_t *t = fut_async(ex, gfib_task, &f);

        CHECK(fut_wait(t, -1) == 0 && fut_value_i64(t) == want[i % 6],
              "group fib(%d) = %lld", f.n, (long long)fut_value_i64(t));
        fut_release(t);
    }
    fut_executor_destroy(ex);
}

static fut_result_t nop(void *arg)
{
    (void)arg;
    return fut_ok(NULL);
}

static void cycles(int rounds)
{
    int i, k;

    for (i = 0; i < rounds; i++) {
        fut_executor_t *ex = make_pool(1 + i % 3, 0);

        for (k = 0; k < 100; k++)
            fut_release(fut_async(ex, nop, NULL));
        CHECK(fut_executor_destroy(ex) == 0, "destroy");
    }
}

int main(int argc, char **argv)
{
    int seeds = 200, rounds = 200, nodes = 60;
    unsigned threads = 2;
    fut_executor_t *ex;
    int s, bad = 0;

    if (argc > 1 && strcmp(argv[1], "--long") == 0) {
        seeds = 5000;
        rounds = 3000;
        nodes = 200;
    } else {
        if (argc > 1)
            seeds = atoi(argv[1]);
        if (argc > 2)
            threads = (unsigned)atoi(argv[2]);
    }
    ex = make_pool(threads, 0);
    for (s = 1; s <= seeds; s++)
        bad += dag_run(ex, (uint64_t)s, nodes);
    CHECK(bad == 0, "%d DAG nodes differ from the oracle", bad);
    printf("pool_stress: dags seeds=%d nodes=%d workers=%u bad=%d\n", seeds,
           nodes, threads, bad);
    fut_executor_destroy(ex);
    wakeups(threads, rounds);
    groups(threads, rounds / 10 + 1);
    cycles(rounds / 10 + 1);
    printf("pool_stress: %s\n", failures == 0 ? "OK" : "FAIL");
    return failures == 0 ? 0 : 1;
}
