/* GLib GThreadPool: one outside thread pushes N trivial tasks, then waits
 * until the last one ran (a counter and a condition variable).  Output and
 * options: see bench_common.h. */
#include <glib.h>

#include "bench_common.h"

static volatile long sink;
static gint left;
static GMutex mu;
static GCond cv;
static gboolean done;

static void work(gpointer data, gpointer user)
{
    (void)data;
    (void)user;
    sink++;
    if (g_atomic_int_dec_and_test(&left)) {
        g_mutex_lock(&mu);
        done = TRUE;
        g_cond_signal(&cv);
        g_mutex_unlock(&mu);
    }
}

static double run(GThreadPool *pool, long n)
{
    uint64_t t0 = bench_now_ns();
    long i;

    g_atomic_int_set(&left, (gint)n);
    done = FALSE;
    for (i = 0; i < n; i++)
        g_thread_pool_push(pool, GINT_TO_POINTER(1), NULL);
    g_mutex_lock(&mu);
    while (!done)
        g_cond_wait(&cv, &mu);
    g_mutex_unlock(&mu);
    return (bench_now_ns() - t0) / 1e6;
}

int main(int argc, char **argv)
{
    int quick, runs = bench_runs(argc, argv, &quick), r;
    long n = quick ? 10000 : 1000000, i;
    void (*volatile body)(gpointer, gpointer) = work;
    double ms[BENCH_MAXRUNS], seq;
    unsigned w;

    for (w = 1; w <= 2; w++) {
        GThreadPool *pool = g_thread_pool_new(work, NULL, (gint)w, TRUE, NULL);

        for (r = 0; r < runs; r++) {
            uint64_t t0 = bench_now_ns();

            g_atomic_int_set(&left, (gint)n + 1); /* never reaches 0 here */
            for (i = 0; i < n; i++)
                body(NULL, NULL);
            ms[r] = (bench_now_ns() - t0) / 1e6;
        }
        seq = bench_summarize(ms, runs).median;
        run(pool, n / 10 > 0 ? n / 10 : 1); /* warm */
        for (r = 0; r < runs; r++)
            ms[r] = run(pool, n);
        bench_print("submit", n, "glib", w, runs, bench_summarize(ms, runs),
                    seq, (double)n);
        g_thread_pool_free(pool, FALSE, TRUE);
    }
    return 0;
}
