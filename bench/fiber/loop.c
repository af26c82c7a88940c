/* bench/fiber/loop -- fibers on the event loop.
 *
 *   fiber_loop [n] [runs] [spawn|pingpong]
 *                              defaults: n = 100000, runs = 5, both
 *
 * bench=fiber_spawn   spawn and finish an empty fiber on the loop (a loop
 *                     task spawns them 16 at a time, queued behind the
 *                     previous 16), beside
 *                     baseline=async: fut_async of the same function
 * bench=fiber_pingpong 1-byte round trips over a socketpair on one loop,
 *                     each end a fiber in a loop of
 *                     fut_await(fut_fd_ready(...)); read; write; beside
 *                     baseline=callback: the fut_then chain of
 *                     bench/loop/pingpong, and baseline=libuv: uv_poll_t
 * One line per baseline: ns per op, median and min-max of RUNS. */
#define _GNU_SOURCE
#include <fut.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "fiber_bench.h"

/* ---- spawn ----------------------------------------------------------------- */
static fut_result_t empty(void *arg)
{
    (void)arg;
    return fut_ok(NULL);
}

static fut_result_t settle_done(void *arg)
{
    fut_promise_settle(arg, fut_ok(NULL));
    return fut_ok(NULL);
}

struct spawner {
    fut_executor_t *loop;
    long left;
    bool fiber;
    fut_promise_t *done;
};

/* Spawns a batch of BATCH, then queues itself behind them: the loop's
 * queue is FIFO, so at most one batch is alive at once and the stacks
 * (or blocks) are recycled while still in cache, as in a steady server. */
#define BATCH 16

static fut_result_t spawn_batch(void *arg)
{
    struct spawner *s = arg;
    for (int i = 0; i < BATCH && s->left > 0; i++, s->left--)
        fut_release(s->fiber ? fut_fiber(s->loop, empty, NULL, NULL)
                             : fut_async(s->loop, empty, NULL));
    if (s->left > 0)
        fut_release(fut_async(s->loop, spawn_batch, s));
    else
        fut_release(fut_async(s->loop, settle_done, s->done));
    return fut_ok(NULL);
}

static double run_spawn(long n, bool fiber)
{
    fut_executor_t *loop;
    if (fut_loop_create(&loop, NULL))
        abort();
    fut_promise_t *p;
    fut_t *done = fut_promise_new(&p);
    struct spawner s = {loop, n, fiber, p};
    double t0 = now_s();
    fut_release(fut_async(loop, spawn_batch, &s));
    fut_loop_run(loop, done);
    double t = now_s() - t0;
    fut_release(done);
    fut_executor_destroy(loop);
    return t;
}

static double spawn_fiber(long n)
{
    return run_spawn(n, true);
}

static double spawn_async(long n)
{
    return run_spawn(n, false);
}

/* ---- pingpong --------------------------------------------------------------- */
static void pair(int sv[2])
{
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0)
        abort();
}

struct side {
    fut_executor_t *loop;
    int fd;
    bool counts;
    long left;
    fut_promise_t *done;
};

static fut_result_t fiber_side(void *arg)
{
    struct side *s = arg;
    for (;;) {
        fut_t *r = fut_fd_ready(s->loop, s->fd, FUT_READABLE);
        int rc = fut_await(r, NULL);
        fut_release(r);
        if (rc)
            return fut_fail(rc);
        char c;
        if (read(s->fd, &c, 1) != 1)
            abort();
        if (s->counts && --s->left == 0) {
            fut_promise_settle(s->done, fut_ok(NULL));
            return fut_ok(NULL);
        }
        if (write(s->fd, &c, 1) != 1)
            abort();
    }
}

static fut_result_t on_ready(void *arg, fut_t *src);

static void arm(struct side *s)
{
    fut_release(fut_then(fut_fd_ready(s->loop, s->fd, FUT_READABLE), s->loop,
                         on_ready, s));
}

static fut_result_t on_ready(void *arg, fut_t *src)
{
    struct side *s = arg;
    (void)src;
    char c;
    if (read(s->fd, &c, 1) != 1)
        abort();
    if (s->counts && --s->left == 0) {
        fut_promise_settle(s->done, fut_ok(NULL));
        return fut_ok(NULL);
    }
    if (write(s->fd, &c, 1) != 1)
        abort();
    arm(s);
    return fut_ok(NULL);
}

static double run_pp(long n, bool fiber)
{
    fut_executor_t *loop;
    if (fut_loop_create(&loop, NULL))
        abort();
    int sv[2];
    pair(sv);
    fut_promise_t *p;
    fut_t *done = fut_promise_new(&p);
    struct side a = {loop, sv[0], true, n, p}, b = {loop, sv[1], false, 0, 0};
    fut_t *fa = NULL, *fb = NULL;
    double t0 = now_s();
    if (fiber) {
        fa = fut_fiber(loop, fiber_side, &a, NULL);
        fb = fut_fiber(loop, fiber_side, &b, NULL);
    } else {
        arm(&a);
        arm(&b);
    }
    if (write(sv[0], "x", 1) != 1)
        abort();
    fut_loop_run(loop, done);
    double t = now_s() - t0;
    fut_release(done);
    fut_executor_destroy(loop); /* b's last wait: FUT_ESHUTDOWN */
    fut_release(fa);
    fut_release(fb);
    close(sv[0]);
    close(sv[1]);
    return t;
}

static double pp_fiber(long n)
{
    return run_pp(n, true);
}

static double pp_callback(long n)
{
    return run_pp(n, false);
}

struct uside {
    uv_poll_t w;
    int fd;
    bool counts;
    long *left;
};

static void uv_ready(uv_poll_t *w, int status, int events)
{
    struct uside *s = w->data;
    (void)status;
    (void)events;
    char c;
    if (read(s->fd, &c, 1) != 1)
        abort();
    if (s->counts && --*s->left == 0) {
        uv_stop(w->loop);
        return;
    }
    if (write(s->fd, &c, 1) != 1)
        abort();
}

static double pp_uv(long n)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    int sv[2];
    pair(sv);
    long left = n;
    struct uside a = {.fd = sv[0], .counts = true, .left = &left},
                 b = {.fd = sv[1], .counts = false, .left = &left};
    struct uside *s[2] = {&a, &b};
    double t0 = now_s();
    for (int i = 0; i < 2; i++) {
        uv_poll_init(&loop, &s[i]->w, s[i]->fd);
        s[i]->w.data = s[i];
        uv_poll_start(&s[i]->w, UV_READABLE, uv_ready);
    }
    if (write(sv[0], "x", 1) != 1)
        abort();
    uv_run(&loop, UV_RUN_DEFAULT);
    double t = now_s() - t0;
    for (int i = 0; i < 2; i++)
        uv_close((uv_handle_t *)&s[i]->w, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    close(sv[0]);
    close(sv[1]);
    return t;
}

/* Runs the N benchmarks round by round (interleaved), ns per op. */
static void interleave(double (**fn)(long), int k, long n, int runs,
                       summary_t *out)
{
    double v[4][MAX_RUNS];
    for (int i = 0; i < k; i++)
        fn[i](n / 10 + 1); /* warm */
    for (int r = 0; r < runs; r++)
        for (int i = 0; i < k; i++)
            v[i][r] = fn[i](n) * 1e9 / (double)n;
    for (int i = 0; i < k; i++)
        out[i] = summarize(v[i], runs);
}

int main(int argc, char **argv)
{
    long n = 100000;
    int runs = 5;
    const char *only = argc > 3 ? argv[3] : NULL;
    if (parse_args(argc > 3 ? 3 : argc, argv, &n, &runs) ||
        (only && strcmp(only, "spawn") && strcmp(only, "pingpong")))
        return 2;
    summary_t s[3];
    double (*spawn[2])(long) = {spawn_fiber, spawn_async};
    if (!only || !strcmp(only, "spawn")) {
        interleave(spawn, 2, n, runs, s);
        fiber_line("spawn", n, runs, "async", s[0], s[1]);
    }
    if (only && strcmp(only, "pingpong"))
        return 0;
    double (*pp[3])(long) = {pp_fiber, pp_callback, pp_uv};
    interleave(pp, 3, n, runs, s);
    fiber_line("pingpong", n, runs, "callback", s[0], s[1]);
    fiber_line("pingpong", n, runs, "libuv", s[0], s[2]);
    return 0;
}
