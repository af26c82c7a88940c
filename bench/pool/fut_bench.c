/* libfut pool benchmarks, each beside its sequential twin:
 *   fib     one fut_async per call (spawn fib(n-1), compute fib(n-2), wait)
 *           and the same with a task group (fut_group_t);
 *   skynet  10^6 leaves, fan-out 10, a future per node (and a group);
 *   submit  one outside thread submits 10^6 trivial tasks, then waits.
 * At 1 and 2 workers; median and min-max of --runs N (default 5).
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

static double seq_ms_fib(int n, int runs)
{
    double ms[BENCH_MAXRUNS];
    int r;

    for (r = 0; r < runs; r++) {
        uint64_t t0 = bench_now_ns();

        g_sink = (long)seq_fib(n);
        ms[r] = (bench_now_ns() - t0) / 1e6;
    }
    return bench_summarize(ms, runs).median;
}

static double seq_ms_sky(int64_t size, int runs)
{
    double ms[BENCH_MAXRUNS];
    int r;

    for (r = 0; r < runs; r++) {
        uint64_t t0 = bench_now_ns();

        g_sink = (long)seq_skynet(0, size);
        ms[r] = (bench_now_ns() - t0) / 1e6;
    }
    return bench_summarize(ms, runs).median;
}

static double seq_ms_submit(long n, int runs)
{
    double ms[BENCH_MAXRUNS];
    void (*volatile body)(void *) = submit_seq_body;
    int r;
    long i;

    for (r = 0; r < runs; r++) {
        uint64_t t0 = bench_now_ns();

        for (i = 0; i < n; i++)
            body(NULL);
        ms[r] = (bench_now_ns() - t0) / 1e6;
    }
    return bench_summarize(ms, runs).median;
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
    int fibs[2] = {30, 32}, nfib = quick ? 1 : 2, i, r;
    int64_t sky_size = quick ? 10000 : 1000000;
    long nsubmit = quick ? 10000 : 1000000;
    unsigned workers;

    if (quick)
        fibs[0] = 20;
    for (workers = 1; workers <= 2; workers++) {
        fut_pool_opts_t o = {.threads = workers};
        double ms[BENCH_MAXRUNS], seq;

        if (fut_pool_create(&g_ex, &o) != 0)
            return 1;
        for (i = 0; i < (wanted(only, "fib") ? nfib : 0); i++) {
            int n = fibs[i];
            int64_t want = seq_fib(n);
            struct gfib gf;

            seq = seq_ms_fib(n, runs);
            run_pool_task(fib_task, (void *)(intptr_t)n, want); /* warm */
            for (r = 0; r < runs; r++)
                ms[r] = run_pool_task(fib_task, (void *)(intptr_t)n, want);
            bench_print("fib", n, "libfut-async", workers, runs,
                        bench_summarize(ms, runs), seq, fib_tasks(n));
            for (r = 0; r < runs; r++) {
                gf.n = n;
                ms[r] = run_pool_task(fib_group_task, &gf, want);
            }
            bench_print("fib", n, "libfut-group", workers, runs,
                        bench_summarize(ms, runs), seq, fib_tasks(n));
        }
        if (wanted(only, "skynet")) {
            int64_t want = seq_skynet(0, sky_size);
            double tasks = 0;
            int64_t s;
            struct sky sk;

            for (s = sky_size; s >= 1; s /= 10)
                tasks += (double)(sky_size / s);
            tasks -= 1; /* the root is not spawned */
            seq = seq_ms_sky(sky_size, runs);
            for (r = 0; r < runs; r++) {
                struct sky root = {0, sky_size, 0};

                ms[r] = run_pool_task(sky_async, &root, want);
            }
            bench_print("skynet", (long)sky_size, "libfut-async", workers, runs,
                        bench_summarize(ms, runs), seq, tasks);
            for (r = 0; r < runs; r++) {
                sk.num = 0;
                sk.size = sky_size;
                ms[r] = run_pool_task(sky_group_task, &sk, want);
            }
            bench_print("skynet", (long)sky_size, "libfut-group", workers, runs,
                        bench_summarize(ms, runs), seq, tasks);
        }
        if (wanted(only, "submit")) {
            seq = seq_ms_submit(nsubmit, runs);
            run_submit(nsubmit); /* warm the allocator's free lists */
            for (r = 0; r < runs; r++)
                ms[r] = run_submit(nsubmit);
            bench_print("submit", nsubmit, "libfut-async", workers, runs,
                        bench_summarize(ms, runs), seq, (double)nsubmit);
        }
        fut_executor_destroy(g_ex);
    }
    return 0;
}
