/* libuv uv_queue_work: one thread (the loop's) submits N trivial tasks,
 * then runs the loop until every after-work callback ran.  The thread pool
 * size is fixed per process (UV_THREADPOOL_SIZE, read once), so each worker
 * count runs in a child process.  Output and options: see bench_common.h. */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uv.h>

#include "bench_common.h"

static volatile long sink;
static long left;

static void work(uv_work_t *req)
{
    (void)req;
    sink++;
}

static void after(uv_work_t *req, int status)
{
    (void)req;
    (void)status;
    left--;
}

static double run(uv_loop_t *loop, uv_work_t *reqs, long n)
{
    uint64_t t0 = bench_now_ns();
    long i;

    left = n;
    for (i = 0; i < n; i++)
        uv_queue_work(loop, &reqs[i], work, after);
    uv_run(loop, UV_RUN_DEFAULT);
    if (left != 0)
        exit(1);
    return (bench_now_ns() - t0) / 1e6;
}

static void child(unsigned workers, long n, int runs)
{
    uv_work_t *reqs = calloc((size_t)n, sizeof *reqs);
    void (*volatile body)(uv_work_t *) = work;
    double ms[BENCH_MAXRUNS], seq;
    uv_loop_t *loop = uv_default_loop();
    int r;
    long i;

    if (reqs == NULL)
        exit(1);
    for (r = 0; r < runs; r++) {
        uint64_t t0 = bench_now_ns();

        for (i = 0; i < n; i++)
            body(NULL);
        ms[r] = (bench_now_ns() - t0) / 1e6;
    }
    seq = bench_summarize(ms, runs).median;
    run(loop, reqs, n / 10 > 0 ? n / 10 : 1); /* start the pool, warm */
    for (r = 0; r < runs; r++)
        ms[r] = run(loop, reqs, n);
    bench_print("submit", n, "libuv", workers, runs, bench_summarize(ms, runs),
                seq, (double)n);
    free(reqs);
}

int main(int argc, char **argv)
{
    int quick, runs = bench_runs(argc, argv, &quick);
    long n = quick ? 10000 : 1000000;
    unsigned w;

    for (w = 1; w <= 2; w++) {
        char num[16];
        pid_t pid;
        int st;

        snprintf(num, sizeof num, "%u", w);
        fflush(stdout);
        pid = fork();
        if (pid == 0) {
            setenv("UV_THREADPOOL_SIZE", num, 1);
            child(w, n, runs);
            fflush(stdout);
            _exit(0);
        }
        if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) ||
            WEXITSTATUS(st) != 0)
            return 1;
    }
    return 0;
}
