/* bench/loop/timers -- N timers scheduled on one loop, every other one
 * cancelled before the loop runs, the rest fired.
 *
 *   loop_timers [n] [runs]      defaults: n = 1000000, runs = 5
 *
 * impl=fut       inside a loop task: d = fut_delay(loop, ms), then
 *                fut_then(d, loop, count); fut_cancel on every odd d
 * baseline=libuv uv_timer_init + uv_timer_start(count, ms), uv_timer_stop
 *                on every odd one
 * Timeouts are the same pseudo-random 0..7 ms in both.  The time covers
 * scheduling, cancelling and firing (both wait the same last 7 ms); per
 * timer scheduled.  One line: median and min-max of RUNS. */
#define _GNU_SOURCE
#include <fut.h>
#include <uv.h>

#include <stdint.h>

#include "bench_util.h"

#define MS 1000000ull

static unsigned ms_of(long i)
{
    return (unsigned)(((uint64_t)i * 2654435761u) >> 7) % 8;
}

/* ---- libfut ------------------------------------------------------------- */

struct fctx {
    fut_executor_t *loop;
    long n, fired;
    fut_t **ds;
    fut_promise_t *done;
};

static fut_result_t count(void *arg, fut_t *src)
{
    struct fctx *c = arg;
    (void)src;
    if (++c->fired == c->n / 2)
        fut_promise_settle(c->done, fut_ok(NULL));
    return fut_ok(NULL);
}

static fut_result_t schedule(void *arg)
{
    struct fctx *c = arg;
    for (long i = 0; i < c->n; i++) {
        fut_t *d = fut_delay(c->loop, ms_of(i) * MS);
        if (i & 1)
            c->ds[i] = fut_retain(d);
        fut_release(fut_then(d, c->loop, count, c));
    }
    for (long i = 1; i < c->n; i += 2) {
        fut_cancel(c->ds[i]);
        fut_release(c->ds[i]);
    }
    return fut_ok(NULL);
}

static double run_fut(long n)
{
    fut_executor_t *loop;
    if (fut_loop_create(&loop, NULL))
        abort();
    struct fctx c = {loop, n, 0, calloc((size_t)n, sizeof(fut_t *)), NULL};
    fut_t *done = fut_promise_new(&c.done);
    double t0 = now_s();
    fut_release(fut_async(loop, schedule, &c));
    fut_loop_run(loop, done);
    double t = now_s() - t0;
    if (c.fired != n / 2)
        abort();
    fut_release(done);
    fut_executor_destroy(loop);
    free(c.ds);
    return t;
}

/* ---- libuv -------------------------------------------------------------- */

static long uv_fired;

static void uv_count(uv_timer_t *t)
{
    (void)t;
    uv_fired++;
}

static double run_uv(long n)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_timer_t *ts = malloc((size_t)n * sizeof *ts);
    uv_fired = 0;
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        uv_timer_init(&loop, &ts[i]);
        uv_timer_start(&ts[i], uv_count, ms_of(i), 0);
    }
    for (long i = 1; i < n; i += 2)
        uv_timer_stop(&ts[i]);
    uv_run(&loop, UV_RUN_DEFAULT);
    double t = now_s() - t0;
    if (uv_fired != n / 2)
        abort();
    for (long i = 0; i < n; i++)
        uv_close((uv_handle_t *)&ts[i], NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    free(ts);
    return t;
}

int main(int argc, char **argv)
{
    long n = 1000000;
    int runs = 5;
    if (parse_args(argc, argv, &n, &runs))
        return 2;
    double f[MAX_RUNS], u[MAX_RUNS];
    for (int r = 0; r < runs; r++) {
        f[r] = run_fut(n) / (double)n * 1e9;
        u[r] = run_uv(n) / (double)n * 1e9;
    }
    print_line("timers", n, runs, "libuv", summarize(f, runs),
               summarize(u, runs));
    return 0;
}
