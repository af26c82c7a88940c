/* bench/chain -- what one link of a chain costs on the inline executor.
 *
 *   chain [n] [runs]      defaults: n = 10000000, runs = 5
 *
 * case=then   f = fut_then(f, fut_inline(), step, NULL), n times, starting
 *             from fut_ready(fut_ok_i64(0)); each link is released as the
 *             next one consumes it, so memory must not grow with n.
 * case=async  g = fut_async(fut_inline(), task, &i); fut_wait(g, -1);
 *             read the value; fut_release(g); n times.
 * Each beside its baseline, measured in the same run: the same loop calling
 * a plain noinline function whose result goes to a volatile sink.
 *
 * One line per result: median and min-max over RUNS of ns per operation,
 * the baseline's, their ratio (median / baseline median), and the process's
 * peak RSS.  case=rss lines give peak RSS after a single chain of 10^6 and
 * then of 10^7 links: equal figures show a chain's memory does not grow
 * with its length. */
#include <fut.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define MAX_RUNS 64

static volatile int64_t sink;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static long peak_rss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss; /* kilobytes on Linux */
}

/* ---- the measured operations -------------------------------------------- */

static fut_result_t step(void *arg, fut_t *src)
{
    (void)arg;
    return fut_ok_i64(fut_value_i64(src) + 1);
}

static fut_result_t task(void *arg)
{
    return fut_ok_i64(*(const int64_t *)arg);
}

/* Returns the chain's final value (n if every link ran). */
static int64_t run_then(int64_t n)
{
    fut_t *f = fut_ready(fut_ok_i64(0));
    for (int64_t i = 0; i < n; i++)
        f = fut_then(f, fut_inline(), step, NULL);
    int64_t v = fut_state(f) == FUT_FULFILLED ? fut_value_i64(f) : -1;
    fut_release(f);
    return v;
}

static int64_t run_async(int64_t n)
{
    int64_t sum = 0;
    for (int64_t i = 0; i < n; i++) {
        fut_t *g = fut_async(fut_inline(), task, &i);
        if (fut_wait(g, -1) != 0 || fut_state(g) != FUT_FULFILLED) {
            fut_release(g);
            return -1;
        }
        sum += fut_value_i64(g);
        fut_release(g);
    }
    return sum;
}

/* ---- the baselines: the same loops around a plain call ------------------ */

__attribute__((noinline)) static int64_t plain_step(int64_t v)
{
    __asm__ volatile("" ::: "memory");
    return v + 1;
}

__attribute__((noinline)) static int64_t plain_task(const int64_t *arg)
{
    __asm__ volatile("" ::: "memory");
    return *arg;
}

static int64_t base_then(int64_t n)
{
    int64_t v = 0;
    for (int64_t i = 0; i < n; i++)
        v = plain_step(v);
    sink = v;
    return v;
}

static int64_t base_async(int64_t n)
{
    int64_t sum = 0;
    for (int64_t i = 0; i < n; i++)
        sum += plain_task(&i);
    sink = sum;
    return sum;
}

/* ---- measuring ---------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct {
    double median, min, max;
} stats_t;

static stats_t summarize(double *v, int runs)
{
    qsort(v, (size_t)runs, sizeof v[0], cmp_double);
    stats_t s = {v[runs / 2], v[0], v[runs - 1]};
    if (runs % 2 == 0)
        s.median = (v[runs / 2 - 1] + v[runs / 2]) / 2;
    return s;
}

/* Runs FN(n) RUNS times; fills *OUT with ns per op; returns false if any
 * run gave a result other than EXPECT. */
static bool measure(int64_t (*fn)(int64_t), int64_t n, int runs, int64_t expect,
                    stats_t *out)
{
    double per_op[MAX_RUNS];
    for (int r = 0; r < runs; r++) {
        uint64_t t0 = now_ns();
        int64_t got = fn(n);
        uint64_t t1 = now_ns();
        if (got != expect) {
            fprintf(stderr, "chain: wrong result %lld, expected %lld\n",
                    (long long)got, (long long)expect);
            return false;
        }
        per_op[r] = (double)(t1 - t0) / (double)n;
    }
    *out = summarize(per_op, runs);
    return true;
}

static bool bench_case(const char *name, int64_t (*fn)(int64_t),
                       int64_t (*base)(int64_t), int64_t n, int runs,
                       int64_t expect)
{
    stats_t s, b;
    if (!measure(base, n, runs, expect, &b) ||
        !measure(fn, n, runs, expect, &s))
        return false;
    printf("bench=chain case=%s executor=inline n=%lld runs=%d "
           "ns_per_op=%.2f min=%.2f max=%.2f "
           "baseline_ns_per_op=%.2f baseline_min=%.2f baseline_max=%.2f "
           "ratio=%.1f rss_kib=%ld\n",
           name, (long long)n, runs, s.median, s.min, s.max, b.median, b.min,
           b.max, s.median / b.median, peak_rss_kib());
    fflush(stdout);
    return true;
}

static bool rss_probe(int64_t n)
{
    if (run_then(n) != n)
        return false;
    printf("bench=chain case=rss executor=inline n=%lld rss_kib=%ld\n",
           (long long)n, peak_rss_kib());
    fflush(stdout);
    return true;
}

int main(int argc, char **argv)
{
    int64_t n = argc > 1 ? strtoll(argv[1], NULL, 10) : 10000000;
    int runs = argc > 2 ? atoi(argv[2]) : 5;
    if (n <= 0 || runs <= 0 || runs > MAX_RUNS) {
        fprintf(stderr, "usage: chain [n > 0] [runs 1..%d]\n", MAX_RUNS);
        return 2;
    }

    printf("bench=chain case=rss executor=inline n=0 rss_kib=%ld\n",
           peak_rss_kib());
    if (!rss_probe(1000000) || !rss_probe(10000000))
        return 1;

    int64_t async_sum = n * (n - 1) / 2;
    if (!bench_case("then", run_then, base_then, n, runs, n) ||
        !bench_case("async", run_async, base_async, n, runs, async_sum))
        return 1;
    return 0;
}
