/* bench/loop/bench_util.h -- clock, runs and the one output line shared by
 * the loop benchmarks. */
#ifndef BENCH_LOOP_UTIL_H
#define BENCH_LOOP_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define MAX_RUNS 64

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct {
    double median, min, max;
} summary_t;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static inline summary_t summarize(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    summary_t s = {n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2, v[0],
                   v[n - 1]};
    return s;
}

/* One line: the measured implementation beside one baseline, ns per op. */
static inline void print_line(const char *bench, long n, int runs,
                              const char *baseline, summary_t s, summary_t b)
{
    printf("bench=loop_%s impl=fut baseline=%s n=%ld runs=%d "
           "ns_per_op=%.1f min=%.1f max=%.1f "
           "baseline_ns_per_op=%.1f baseline_min=%.1f baseline_max=%.1f "
           "ratio=%.2f\n",
           bench, baseline, n, runs, s.median, s.min, s.max, b.median, b.min,
           b.max, s.median / b.median);
    fflush(stdout);
}

/* The same with a case name, for a program that measures several ways of
 * doing one thing against one baseline (bench/run shows bench/case). */
static inline void print_case_line(const char *bench, const char *cas, long n,
                                   int runs, const char *baseline, summary_t s,
                                   summary_t b)
{
    printf("bench=loop_%s case=%s impl=fut baseline=%s n=%ld runs=%d "
           "ns_per_op=%.1f min=%.1f max=%.1f "
           "baseline_ns_per_op=%.1f baseline_min=%.1f baseline_max=%.1f "
           "ratio=%.2f\n",
           bench, cas, baseline, n, runs, s.median, s.min, s.max, b.median,
           b.min, b.max, s.median / b.median);
    fflush(stdout);
}

/* Parses "[n] [runs]" with defaults. */
static inline int parse_args(int argc, char **argv, long *n, int *runs)
{
    if (argc > 1)
        *n = atol(argv[1]);
    if (argc > 2)
        *runs = atoi(argv[2]);
    if (*n <= 0 || *runs < 1 || *runs > MAX_RUNS) {
        fprintf(stderr, "usage: %s [n > 0] [runs 1..%d]\n", argv[0], MAX_RUNS);
        return 2;
    }
    return 0;
}

#endif
