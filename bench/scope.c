/* bench/scope -- what a scope member costs over a bare fut_async.
 *
 *   scope [n] [runs]      defaults: n = 200000, runs = 7
 *
 * case=member-inline  n x fut_scope_spawn(s, start, NULL) whose start
 *                     returns fut_async(fut_inline(), task), each member
 *                     released at once, then fut_scope_close and its wait;
 *                     baseline: n x fut_async(fut_inline(), task) released.
 * case=member-pool    the same with the tasks on a 2-worker pool; the
 *                     baseline waits for a counter the tasks bump.
 * Each round times the baseline, then the scope, on the same executor;
 * the line gives median ns per operation (min-max) of both and the median
 * of the rounds' own ratios (scope / baseline).  No limit is set: the
 * figure is the member's bookkeeping, not waiting for a slot. */
#include <fut.h>

#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define MAX_RUNS 64

static atomic_long g_ran;
static fut_executor_t *g_ex;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static fut_result_t task(void *arg)
{
    (void)arg;
    atomic_fetch_add_explicit(&g_ran, 1, memory_order_relaxed);
    return fut_ok_i64(1);
}

static fut_t *start(void *arg)
{
    (void)arg;
    return fut_async(g_ex, task, NULL);
}

static void wait_ran(long n)
{
    while (atomic_load_explicit(&g_ran, memory_order_relaxed) < n)
        sched_yield();
}

/* ns per op of N bare fut_async on g_ex. */
static double run_bare(long n)
{
    atomic_store(&g_ran, 0);
    uint64_t t0 = now_ns();
    for (long i = 0; i < n; i++)
        fut_release(fut_async(g_ex, task, NULL));
    wait_ran(n);
    return (double)(now_ns() - t0) / (double)n;
}

/* ns per op of N scope members, closed and waited for; -1 on failure. */
static double run_scope(long n)
{
    atomic_store(&g_ran, 0);
    uint64_t t0 = now_ns();
    fut_scope_t *s;
    if (fut_scope_create(&s, NULL) != 0)
        return -1;
    for (long i = 0; i < n; i++)
        fut_release(fut_scope_spawn(s, start, NULL));
    fut_t *c = fut_scope_close(s);
    int rc = fut_wait(c, -1) == 0 ? fut_error(c) : -1;
    fut_release(c);
    double per = (double)(now_ns() - t0) / (double)n;
    return rc == 0 && atomic_load(&g_ran) == n ? per : -1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof v[0], cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int bench_case(const char *name, long n, int runs)
{
    double bare[MAX_RUNS], scope[MAX_RUNS], ratio[MAX_RUNS];
    run_bare(n / 10 + 1); /* warm the free lists and the workers */
    run_scope(n / 10 + 1);
    for (int r = 0; r < runs; r++) {
        bare[r] = run_bare(n);
        scope[r] = run_scope(n);
        if (scope[r] < 0) {
            fprintf(stderr, "scope: a run failed\n");
            return 1;
        }
        ratio[r] = scope[r] / bare[r];
    }
    double rm = median(ratio, runs);
    double bm = median(bare, runs), sm = median(scope, runs);
    printf("bench=scope case=%s baseline=fut_async n=%ld runs=%d "
           "ns_per_op=%.2f min=%.2f max=%.2f baseline_ns_per_op=%.2f "
           "baseline_min=%.2f baseline_max=%.2f ratio=%.2f\n",
           name, n, runs, sm, scope[0], scope[runs - 1], bm, bare[0],
           bare[runs - 1], rm);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 200000;
    int runs = argc > 2 ? atoi(argv[2]) : 7;
    if (n <= 0 || runs <= 0 || runs > MAX_RUNS) {
        fprintf(stderr, "usage: scope [n > 0] [runs 1..%d]\n", MAX_RUNS);
        return 2;
    }
    g_ex = fut_inline();
    if (bench_case("member-inline", n, runs))
        return 1;
    fut_pool_opts_t o = {.threads = 2};
    if (fut_pool_create(&g_ex, &o) != 0)
        return 1;
    int rc = bench_case("member-pool", n, runs);
    fut_executor_destroy(g_ex);
    return rc;
}
