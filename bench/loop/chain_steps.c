/* bench/loop/chain_steps -- chain steps made and run on the thread of a
 * single-thread executor: the built-in loop, the libuv adapter (libfut-uv)
 * on a uv loop, or the GLib adapter (libfut-glib) on a GMainContext.  For
 * instruction counts, not time:
 *
 *   chain_steps loop|uv|glib N [chain|fd]
 *
 * chain (the default): a task on the executor builds one chain of N
 * fut_then steps (f = fut_then(f, ex, step, NULL), N times, from
 * fut_ready) and the thread runs it to the end; it prints N.
 * fd: N one-byte round trips over a socketpair, both ends on the executor,
 * each end a fut_fd_ready chain (wait readable, read, write back, wait
 * again: bench/loop/pingpong's libfut side); it prints N.
 * bench/locked_per_step runs it under callgrind for two N and reports the
 * difference per step of locked instructions executed in the program
 * (libfut, the adapters), as docs/BENCHMARKS.md counts them.
 *
 *   chain_steps time [N [RUNS]]      defaults: N = 100000, RUNS = 5
 *
 * times both modes on the three executors, interleaved (each round runs
 * loop, uv and glib in a rotated order), and prints one line per adapter
 * and mode: ns per step (chain step, fd round trip), median and min-max of
 * RUNS, beside the built-in loop's (the baseline) and their ratio. */
#define _GNU_SOURCE
#include <fut.h>
#include <fut/glib.h>
#include <fut/uv.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_util.h"

static fut_executor_t *ex;
static long n;

/* ---- a chain of fut_then steps ------------------------------------------ */

static fut_result_t step(void *arg, fut_t *src)
{
    (void)arg;
    return fut_ok_i64(fut_value_i64(src) + 1);
}

static fut_result_t build(void *arg)
{
    (void)arg;
    fut_t *f = fut_ready(fut_ok_i64(0));
    for (long i = 0; i < n; i++)
        f = fut_then(f, ex, step, NULL);
    return fut_adopt(f);
}

/* ---- fd round trips --------------------------------------------------- */

struct side {
    int fd;
    bool counts; /* the initiating end counts round trips */
    long left;
    fut_promise_t *done;
};

static int sv[2];
static struct side ends[2];

static fut_result_t on_ready(void *arg, fut_t *src);

static void arm(struct side *s)
{
    fut_release(
        fut_then(fut_fd_ready(ex, s->fd, FUT_READABLE), ex, on_ready, s));
}

static fut_result_t on_ready(void *arg, fut_t *src)
{
    struct side *s = arg;
    char c;
    if (fut_error(src) || read(s->fd, &c, 1) != 1)
        abort();
    if (s->counts && --s->left == 0) {
        fut_promise_settle(s->done, fut_ok_i64(n));
        return fut_ok(NULL);
    }
    if (write(s->fd, &c, 1) != 1)
        abort();
    arm(s);
    return fut_ok(NULL);
}

static fut_result_t start_pingpong(void *arg)
{
    fut_promise_t *p;
    fut_t *done = fut_promise_new(&p);
    ends[0] = (struct side){sv[0], true, n, p};
    ends[1] = (struct side){sv[1], false, 0, NULL};
    (void)arg;
    arm(&ends[0]);
    arm(&ends[1]);
    if (write(sv[0], "x", 1) != 1)
        abort();
    return fut_adopt(done);
}

/* ---- driving the executor's thread -------------------------------------- */

enum { K_LOOP, K_UV, K_GLIB };

/* One run of MODE (FD) on executor KIND with N steps: seconds from the
 * first task to the last step, or -1 if something failed. */
static double run_once(int kind, bool fd, long steps)
{
    n = steps;
    uv_loop_t loop;
    GMainContext *ctx = kind == K_GLIB ? g_main_context_new() : NULL;
    int rc = kind == K_UV     ? uv_loop_init(&loop) || fut_uv_create(&ex, &loop)
             : kind == K_GLIB ? fut_glib_create(&ex, ctx)
                              : fut_loop_create(&ex, NULL);
    if (rc || (fd && socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv)))
        return -1;
    double t0 = now_s();
    fut_t *f = fut_async(ex, fd ? start_pingpong : build, NULL);
    if (kind == K_UV) {
        while (fut_state(f) == FUT_PENDING)
            uv_run(&loop, UV_RUN_ONCE);
    } else if (kind == K_GLIB) {
        while (fut_state(f) == FUT_PENDING)
            g_main_context_iteration(ctx, TRUE);
    } else {
        fut_loop_run(ex, f);
    }
    double t = now_s() - t0;
    bool ok = fut_value_i64(f) == n;
    fut_release(f);
    fut_executor_destroy(ex); /* the answering end's last wait: ESHUTDOWN */
    if (fd)
        close(sv[0]), close(sv[1]);
    if (kind == K_UV) {
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
    }
    if (ctx)
        g_main_context_unref(ctx);
    return ok ? t : -1;
}

static const char *const kinds[] = {"loop", "uv", "glib"};

static int timed(long steps, int runs)
{
    for (int fd = 0; fd < 2; fd++) {
        double v[3][MAX_RUNS];
        for (int r = 0; r < runs; r++)
            for (int i = 0; i < 3; i++) {
                int k = (r + i) % 3; /* rotated: drift hits all three */
                double t = run_once(k, fd, steps);
                if (t < 0)
                    return 1;
                v[k][r] = t / (double)steps * 1e9;
            }
        summary_t base = summarize(v[K_LOOP], runs);
        for (int k = K_UV; k <= K_GLIB; k++) {
            char cas[32];
            snprintf(cas, sizeof cas, "%s_%s", kinds[k],
                     fd ? "fd_round_trip" : "chain_step");
            print_case_line("adapters", cas, steps, runs, "loop",
                            summarize(v[k], runs), base);
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *kind = argc > 1 ? argv[1] : "";
    if (!strcmp(kind, "time")) {
        long steps = 100000;
        int runs = 5;
        return parse_args(argc - 1, argv + 1, &steps, &runs)
                   ? 2
                   : timed(steps, runs);
    }
    int k = !strcmp(kind, "uv") ? K_UV : !strcmp(kind, "glib") ? K_GLIB : -1;
    bool fd = argc > 3 && !strcmp(argv[3], "fd");
    if (!strcmp(kind, "loop"))
        k = K_LOOP;
    if (argc < 3 || argc > 4 || k < 0 ||
        (argc == 4 && !fd && strcmp(argv[3], "chain"))) {
        fprintf(stderr, "usage: chain_steps loop|uv|glib N [chain|fd]\n"
                        "       chain_steps time [N [RUNS]]\n");
        return 2;
    }
    if (run_once(k, fd, atol(argv[2])) < 0)
        return 1;
    printf("%s %s %ld\n", kind, fd ? "fd" : "chain", n);
    return 0;
}
