/* bench/fiber/fiber_bench.h -- bench/loop's clock and summaries, and the
 * one output line of the fiber benchmarks (bench=fiber_<name>). */
#ifndef BENCH_FIBER_H
#define BENCH_FIBER_H

#include "bench_util.h"

static inline void fiber_line(const char *bench, long n, int runs,
                              const char *baseline, summary_t s, summary_t b)
{
    printf("bench=fiber_%s impl=fut baseline=%s n=%ld runs=%d "
           "ns_per_op=%.1f min=%.1f max=%.1f "
           "baseline_ns_per_op=%.1f baseline_min=%.1f baseline_max=%.1f "
           "ratio=%.2f\n",
           bench, baseline, n, runs, s.median, s.min, s.max, b.median, b.min,
           b.max, s.median / b.median);
    fflush(stdout);
}

#endif
