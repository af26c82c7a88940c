/* Shared by the pool benchmarks (C and C++): timing, median/min/max over
 * runs, and the one-line machine-readable output bench/run parses:
 *
 *   bench=<fib|skynet|submit> n=<size> impl=<name> workers=<k> runs=<r>
 *   median_ms=<m> min_ms=<lo> max_ms=<hi> seq_ms=<s> tasks=<t>
 *   ns_per_task=<(median - seq) / tasks>
 *
 * seq_ms is the sequential twin (same computation, plain calls), measured
 * in the same process right before; ns_per_task is the scheduling overhead
 * per task at that worker count. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_RUNS 5
#define BENCH_MAXRUNS 32

static inline uint64_t bench_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct bench_stat {
    double median, min, max; /* ms */
};

static inline int bench_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static inline struct bench_stat bench_summarize(double *ms, int n)
{
    struct bench_stat s;

    qsort(ms, (size_t)n, sizeof *ms, bench_cmp);
    s.min = ms[0];
    s.max = ms[n - 1];
    s.median = n % 2 ? ms[n / 2] : (ms[n / 2 - 1] + ms[n / 2]) / 2;
    return s;
}

static inline void bench_print(const char *bench, long n, const char *impl,
                               unsigned workers, int runs, struct bench_stat st,
                               double seq_ms, double tasks)
{
    printf("bench=%s n=%ld impl=%s workers=%u runs=%d median_ms=%.3f "
           "min_ms=%.3f max_ms=%.3f seq_ms=%.3f tasks=%.0f "
           "ns_per_task=%.2f\n",
           bench, n, impl, workers, runs, st.median, st.min, st.max, seq_ms,
           tasks, (st.median - seq_ms) * 1e6 / tasks);
    fflush(stdout);
}

/* --quick (the smoke size) or --runs N on the command line. */
static inline int bench_runs(int argc, char **argv, int *quick)
{
    int i, runs = BENCH_RUNS;

    *quick = 0;
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0 || strcmp(argv[i], "--smoke") == 0)
            *quick = 1;
        else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
            runs = atoi(argv[++i]);
    }
    if (*quick)
        runs = 1;
    if (runs < 1)
        runs = 1;
    if (runs > BENCH_MAXRUNS)
        runs = BENCH_MAXRUNS;
    return runs;
}

/* Sequential twins shared by every implementation. */
static inline int64_t seq_fib(int n)
{
    return n < 2 ? n : seq_fib(n - 1) + seq_fib(n - 2);
}

static inline int64_t seq_skynet(int64_t num, int64_t size)
{
    int64_t sum = 0, i;

    if (size == 1)
        return num;
    for (i = 0; i < 10; i++)
        sum += seq_skynet(num + i * (size / 10), size / 10);
    return sum;
}

/* Tasks a fib(n) with one spawn per call of n >= 2 creates: calls(n) =
 * calls(n-1) + calls(n-2) + 1 for n >= 2. */
static inline double fib_tasks(int n)
{
    double a = 0, b = 0, c = 0; /* spawns(0), spawns(1) */
    int i;

    if (n < 2)
        return 0;
    for (i = 2; i <= n; i++) {
        c = a + b + 1;
        a = b;
        b = c;
    }
    return c;
}

#endif
