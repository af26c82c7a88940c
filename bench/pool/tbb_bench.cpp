// oneTBB task_group on fib and skynet, beside the sequential twin: the
// peer for the pool's fork-join benchmarks.  Output and options: see
// bench_common.h.  Worker counts through tbb::task_arena.
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>

#include "bench_common.h"

static int64_t fib_tbb(int n)
{
    if (n < 2)
        return n;
    int64_t x = 0, y;
    tbb::task_group g;
    g.run([&] { x = fib_tbb(n - 1); });
    y = fib_tbb(n - 2);
    g.wait();
    return x + y;
}

static int64_t sky_tbb(int64_t num, int64_t size)
{
    if (size == 1)
        return num;
    int64_t r[10], sum = 0;
    tbb::task_group g;
    for (int i = 0; i < 10; i++)
        g.run([&r, i, num, size] {
            r[i] = sky_tbb(num + i * (size / 10), size / 10);
        });
    g.wait();
    for (int i = 0; i < 10; i++)
        sum += r[i];
    return sum;
}

static volatile int64_t sink;

int main(int argc, char **argv)
{
    int quick, runs = bench_runs(argc, argv, &quick);
    int fibs[2] = {quick ? 20 : 30, 32}, nfib = quick ? 1 : 2;
    int64_t size = quick ? 10000 : 1000000;
    double ms[BENCH_MAXRUNS], seq, tasks = 0;

    for (int64_t s = size; s >= 1; s /= 10)
        tasks += (double)(size / s);
    tasks -= 1;
    for (int w = 1; w <= 2; w++) {
        tbb::task_arena arena(w);
        for (int i = 0; i < nfib; i++) {
            int n = fibs[i];
            for (int r = 0; r < runs; r++) {
                uint64_t t0 = bench_now_ns();
                sink = seq_fib(n);
                ms[r] = (bench_now_ns() - t0) / 1e6;
            }
            seq = bench_summarize(ms, runs).median;
            arena.execute([&] { sink = fib_tbb(n); }); // warm
            for (int r = 0; r < runs; r++) {
                uint64_t t0 = bench_now_ns();
                arena.execute([&] { sink = fib_tbb(n); });
                ms[r] = (bench_now_ns() - t0) / 1e6;
                if (sink != seq_fib(n))
                    return 1;
            }
            bench_print("fib", n, "onetbb", (unsigned)w, runs,
                        bench_summarize(ms, runs), seq, fib_tasks(n));
        }
        for (int r = 0; r < runs; r++) {
            uint64_t t0 = bench_now_ns();
            sink = seq_skynet(0, size);
            ms[r] = (bench_now_ns() - t0) / 1e6;
        }
        seq = bench_summarize(ms, runs).median;
        for (int r = 0; r < runs; r++) {
            uint64_t t0 = bench_now_ns();
            arena.execute([&] { sink = sky_tbb(0, size); });
            ms[r] = (bench_now_ns() - t0) / 1e6;
        }
        bench_print("skynet", (long)size, "onetbb", (unsigned)w, runs,
                    bench_summarize(ms, runs), seq, tasks);
    }
    return 0;
}
