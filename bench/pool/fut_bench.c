/* libfut pool benchmarks, each beside its sequential twin:
 *   fib     one fut_async per call (spawn fib(n-1), compute fib(n-2), wait)
 *           and the same with a task group (fut_group_t);
 *   skynet  10^6 leaves, fan-out 10, a future per node (and a group);
 *   submit  one outside thread submits 10^6 trivial tasks, then waits.
 * At 1 and 2 workers, interleaved round by round with the sequential twin
 * (see measure()); median and min-max of --runs N (default 5).
 * Output: see bench_common.h.  --quick: small sizes, one run (smoke).
 * --only fib|skynet|submit: that benchmark alone (for profiling). */
#include <stdatomic.h>

#include <fut.h>

#include "bench_common.h"

static fut_executor_t *g_ex;

/* ---- fib ------------------------------------------------------------------
 */

static fut_result_t fib_async(void *arg);

/* The real one: spawn n-1, compute n-2 here (recursively, inline), wait. */
static int64_t fib_fut(int n)
{
    fut_t *a;
    int64_t x, y;

    if (n < 2)
        return n;
    a = fut_async(g_ex, fib_async, (void *)(intptr_t)(n - 1));
    y = fib_fut(n - 2);
    fut_wait(a, -1);
    x = fut_value_i64(a);
    fut_release(a);
    return x + y;
}

static fut_result_t fib_async(void *arg)
{
    return fut_ok_i64(fib_fut((int)(intptr_t)arg));
}

#define fib_task fib_async

struct gfib {
    int n;
    int64_t r;
};

static void fib_group(void *arg)
{
    struct gfib *f = arg, a;
    fut_group_t g;
    fut_group_task_t t;
    struct gfib b;

    if (f->n < 2) {
        f->r = f->n;
        return;
    }
    a.n = f->n - 1;
    b.n = f->n - 2;
    fut_group_init(&g, g_ex);
    fut_group_spawn(&g, &t, fib_group, &a);
    fib_group(&b);
    fut_group_wait(&g);
    f->r = a.r + b.r;
}

static fut_result_t fib_group_task(void *arg)
{
    fib_group(arg);
    return fut_ok_i64(((struct gfib *)arg)->r);
}

/* ---- skynet ---------------------------------------------------------------
 */

struct sky {
    int64_t num, size, r;
};

static fut_result_t sky_async(void *arg);

static int64_t sky_fut(int64_t num, int64_t size)
{
    struct sky kids[10];
    fut_t *f[10];
    int64_t sum = 0;
    int i;

    if (size == 1)
        return num;
    for (i = 0; i < 10; i++) {
        kids[i].num = num + i * (size / 10);
        kids[i].size = size / 10;
        f[i] = fut_async(g_ex, sky_async, &kids[i]);
    }
    for (i = 0; i < 10; i++) {
        fut_wait(f[i], -1);
        sum += fut_value_i64(f[i]);
        fut_release(f[i]);
    }
    return sum;
}

static fut_result_t sky_async(void *arg)
{
    struct sky *s = arg;

    return fut_ok_i64(sky_fut(s->num, s->size));
}

static void sky_group(void *arg)
{
    struct sky *s = arg, kids[10];
    fut_group_task_t t[10];
    fut_group_t g;
    int i;

    if (s->size == 1) {
        s->r = s->num;
        return;
    }
    fut_group_init(&g, g_ex);
    for (i = 0; i < 10; i++) {
        kids[i].num = s->num + i * (s->size / 10);
        kids[i].size = s->size / 10;
        fut_group_spawn(&g, &t[i], sky_group, &kids[i]);
    }
    fut_group_wait(&g);
    s->r = 0;
    for (i = 0; i < 10; i++)
        s->r += kids[i].r;
}

static fut_result_t sky_group_task(void *arg)
{
    sky_group(arg);
    return fut_ok_i64(((struct sky *)arg)->r);
}

/* ---- submit ---------------------------------------------------------------
 */

static atomic_long g_left;
static fut_promise_t *g_done;

static fut_result_t submit_task(void *arg)
{
    (void)arg;
    /* The last task settles the promise the submitter waits on. */
    if (atomic_fetch_sub_explicit(&g_left, 1, memory_order_acq_rel) == 1)
        fut_promise_settle(g_done, fut_ok(NULL));
    return fut_ok(NULL);
}

static volatile long g_sink;

static void submit_seq_body(void *arg)
{
    (void)arg;
    g_sink++;
}

/* ---- driver ---------------------------------------------------------------
 */

static double run_pool_task(fut_task_fn fn, void *arg, int64_t want)
{
    uint64_t t0 = bench_now_ns();
    fut_t *f = fut_async(g_ex, fn, arg);

    fut_wait(f, -1);
    if (fut_value_i64(f) != want) {
        fprintf(stderr, "fut_bench: wrong result %lld, want %lld\n",
                (long long)fut_value_i64(f), (long long)want);
        exit(1);
    }
    fut_release(f);
    return (bench_now_ns() - t0) / 1e6;
}

static double run_submit(long n)
{
    uint64_t t0 = bench_now_ns();
    fut_t *done = fut_promise_new(&g_done);
    long i;

    atomic_store(&g_left, n);
    for (i = 0; i < n; i++)
        fut_release(fut_async(g_ex, submit_task, NULL));
    fut_wait(done, -1);
    fut_release(done);
    return (bench_now_ns() - t0) / 1e6;
}

/* One run of each sequential twin, in ms. */
static double seq_once_fib(int n)
{
    uint64_t t0 = bench_now_ns();

    g_sink = (long)seq_fib(n);
    return (bench_now_ns() - t0) / 1e6;
}

static double seq_once_sky(int64_t size)
{
    uint64_t t0 = bench_now_ns();

    g_sink = (long)seq_skynet(0, size);
    return (bench_now_ns() - t0) / 1e6;
}

static double seq_once_submit(long n)
{
    void (*volatile body)(void *) = submit_seq_body;
    uint64_t t0 = bench_now_ns();
    long i;

    for (i = 0; i < n; i++)
        body(NULL);
    return (bench_now_ns() - t0) / 1e6;
}

/* What one benchmark runs, once, on g_ex (or sequentially). */
enum what { FIB_ASYNC, FIB_GROUP, SKY_ASYNC, SKY_GROUP, SUBMIT };

static double seq_once(enum what k, long n)
{
    switch (k) {
    case FIB_ASYNC:
    case FIB_GROUP:
        return seq_once_fib((int)n);
    case SKY_ASYNC:
    case SKY_GROUP:
        return seq_once_sky(n);
    default:
        return seq_once_submit(n);
    }
}

static double run_once(enum what k, long n)
{
    struct gfib gf = {(int)n, 0};
    struct sky sk = {0, n, 0};

    switch (k) {
    case FIB_ASYNC:
        return run_pool_task(fib_task, (void *)(intptr_t)n, seq_fib((int)n));
    case FIB_GROUP:
        return run_pool_task(fib_group_task, &gf, seq_fib((int)n));
    case SKY_ASYNC:
        return run_pool_task(sky_async, &sk, seq_skynet(0, n));
    case SKY_GROUP:
        return run_pool_task(sky_group_task, &sk, seq_skynet(0, n));
    default:
        return run_submit(n);
    }
}

/* Runs benchmark K at 1 and 2 workers and its sequential twin, interleaved
 * round by round (twin, 1 worker, 2 workers), so that all three sample the
 * same minutes of a VM whose speed drifts by 2x from one minute to the
 * next; prints both lines.  Each timed run comes right after an untimed
 * one on the same pool, so it starts with its workers awake (spinning), as
 * in a steady stream of work: waking a parked vCPU here can take longer
 * than a whole skynet run.  The 2-worker line also carries the median of
 * the rounds' own speedups (speedup_paired), which bench/run shows. */
static void measure(fut_executor_t *pools[2], enum what k, const char *bench,
                    const char *impl, long n, double tasks, int runs)
{
    double seq[BENCH_MAXRUNS], ms[2][BENCH_MAXRUNS], sp[BENCH_MAXRUNS];
    double seq_med;
    int r, w;

    for (r = 0; r < runs; r++) {
        seq[r] = seq_once(k, n);
        for (w = 0; w < 2; w++) {
            g_ex = pools[w];
            run_once(k, n); /* warm: workers awake, lists filled */
            ms[w][r] = run_once(k, n);
        }
        sp[r] = ms[0][r] / ms[1][r];
    }
    seq_med = bench_summarize(seq, runs).median;
    bench_print(bench, n, impl, 1, runs, bench_summarize(ms[0], runs), seq_med,
                tasks);
    printf("speedup_paired=%.2f ", bench_summarize(sp, runs).median);
    bench_print(bench, n, impl, 2, runs, bench_summarize(ms[1], runs), seq_med,
                tasks);
}

/* --only NAME: run just that benchmark (NULL: all). */
static const char *only_arg(int argc, char **argv)
{
    int i;

    for (i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--only") == 0)
            return argv[i + 1];
    return NULL;
}

static int wanted(const char *only, const char *name)
{
    return only == NULL || strcmp(only, name) == 0;
}

int main(int argc, char **argv)
{
    int quick, runs = bench_runs(argc, argv, &quick);
    const char *only = only_arg(argc, argv);
    int fibs[2] = {30, 32}, nfib = quick ? 1 : 2, i;
    int64_t sky_size = quick ? 10000 : 1000000, s;
    long nsubmit = quick ? 10000 : 1000000;
    double sky_tasks = 0;
    fut_executor_t *pools[2];

    if (quick)
        fibs[0] = 20;
    for (i = 0; i < 2; i++) {
        fut_pool_opts_t o = {.threads = (unsigned)i + 1};

        if (fut_pool_create(&pools[i], &o) != 0)
            return 1;
    }
    for (s = sky_size; s >= 1; s /= 10)
        sky_tasks += (double)(sky_size / s);
    sky_tasks -= 1; /* the root is not spawned */
    for (i = 0; i < (wanted(only, "fib") ? nfib : 0); i++) {
        measure(pools, FIB_ASYNC, "fib", "libfut-async", fibs[i],
                fib_tasks(fibs[i]), runs);
        measure(pools, FIB_GROUP, "fib", "libfut-group", fibs[i],
                fib_tasks(fibs[i]), runs);
    }
    if (wanted(only, "skynet")) {
        measure(pools, SKY_ASYNC, "skynet", "libfut-async", (long)sky_size,
                sky_tasks, runs);
        measure(pools, SKY_GROUP, "skynet", "libfut-group", (long)sky_size,
                sky_tasks, runs);
    }
    if (wanted(only, "submit"))
        measure(pools, SUBMIT, "submit", "libfut-async", nsubmit,
                (double)nsubmit, runs);
    for (i = 0; i < 2; i++)
        fut_executor_destroy(pools[i]);
    return 0;
}
