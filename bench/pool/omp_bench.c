/* OpenMP tasks (gcc -fopenmp) on fib and skynet, beside the sequential
 * twin: the peer for the pool's fork-join benchmarks.  Output and options:
 * see bench_common.h. */
#include <omp.h>

#include "bench_common.h"

static int64_t fib_omp(int n)
{
    int64_t x, y;

    if (n < 2)
        return n;
#pragma omp task shared(x) firstprivate(n)
    x = fib_omp(n - 1);
    y = fib_omp(n - 2);
#pragma omp taskwait
    return x + y;
}

static int64_t sky_omp(int64_t num, int64_t size)
{
    int64_t r[10], sum = 0;
    int i;

    if (size == 1)
        return num;
    for (i = 0; i < 10; i++) {
#pragma omp task shared(r) firstprivate(i, num, size)
        r[i] = sky_omp(num + i * (size / 10), size / 10);
    }
#pragma omp taskwait
    for (i = 0; i < 10; i++)
        sum += r[i];
    return sum;
}

static volatile int64_t sink;

static double time_fib(int n, int workers, int seq)
{
    uint64_t t0 = bench_now_ns();
    int64_t r = 0;

    if (seq) {
        r = seq_fib(n);
    } else {
#pragma omp parallel num_threads(workers)
#pragma omp single
        r = fib_omp(n);
    }
    sink = r;
    if (r != seq_fib(n))
        exit(1);
    return (bench_now_ns() - t0) / 1e6;
}

static double time_sky(int64_t size, int workers, int seq)
{
    uint64_t t0 = bench_now_ns();
    int64_t r = 0;

    if (seq) {
        r = seq_skynet(0, size);
    } else {
#pragma omp parallel num_threads(workers)
#pragma omp single
        r = sky_omp(0, size);
    }
    sink = r;
    return (bench_now_ns() - t0) / 1e6;
}

int main(int argc, char **argv)
{
    int quick, runs = bench_runs(argc, argv, &quick);
    int fibs[2] = {quick ? 20 : 30, 32}, nfib = quick ? 1 : 2, i, r, w;
    int64_t size = quick ? 10000 : 1000000, s;
    double ms[BENCH_MAXRUNS], seq, tasks = 0;

    for (s = size; s >= 1; s /= 10)
        tasks += (double)(size / s);
    tasks -= 1;
    for (w = 1; w <= 2; w++) {
        for (i = 0; i < nfib; i++) {
            for (r = 0; r < runs; r++)
                ms[r] = time_fib(fibs[i], w, 1);
            seq = bench_summarize(ms, runs).median;
            time_fib(fibs[i], w, 0); /* warm the thread team */
            for (r = 0; r < runs; r++)
                ms[r] = time_fib(fibs[i], w, 0);
            bench_print("fib", fibs[i], "openmp", (unsigned)w, runs,
                        bench_summarize(ms, runs), seq, fib_tasks(fibs[i]));
        }
        for (r = 0; r < runs; r++)
            ms[r] = time_sky(size, w, 1);
        seq = bench_summarize(ms, runs).median;
        for (r = 0; r < runs; r++)
            ms[r] = time_sky(size, w, 0);
        bench_print("skynet", (long)size, "openmp", (unsigned)w, runs,
                    bench_summarize(ms, runs), seq, tasks);
    }
    return 0;
}
