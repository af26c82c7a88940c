/* uv_embed -- futures inside a libuv program.  The application owns the
 * uv loop; libfut's uv executor runs continuations on its thread, so the
 * result of work done on a pool comes back to the loop like any other uv
 * callback, and fut_delay is a uv timer.
 *
 * The program: a uv timer ticks every 10 ms (the application's own work);
 * meanwhile fib(N) is computed on a pool, its result comes back to the
 * loop, waits 20 ms there (fut_delay on the uv executor) and is printed;
 * then the loop is stopped, the executor destroyed, the loop run once more
 * to finish the closes, and closed.
 * Usage: uv_embed [--smoke]  (--smoke: a smaller N). */
#define _POSIX_C_SOURCE 200809L
#include <fut.h>
#include <fut/uv.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uv_loop_t loop;
static uv_timer_t ticker;
static int ticks;

static int64_t fib(int n)
{
    return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

static fut_result_t compute(void *arg) /* on a pool worker */
{
    return fut_ok_i64(fib((int)(intptr_t)arg));
}

static fut_result_t after_delay(void *arg, fut_t *src) /* on the loop */
{
    (void)src;
    int64_t *v = arg;
    printf("fib = %lld, back on the loop after %d ticks\n", (long long)*v,
           ticks);
    uv_timer_stop(&ticker);
    uv_stop(&loop);
    return fut_ok(NULL);
}

static fut_result_t got_result(void *arg, fut_t *src) /* on the loop */
{
    fut_executor_t *uv = arg;
    static int64_t v;
    v = fut_value_i64(src);
    /* A 20 ms wait that is a uv timer of this loop, not a blocking sleep. */
    return fut_adopt(fut_then(fut_delay(uv, 20 * 1000 * 1000), uv,
                              after_delay, &v));
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
    ticks++;
}

int main(int argc, char **argv)
{
    int n = argc > 1 && strcmp(argv[1], "--smoke") == 0 ? 25 : 35;
    fut_executor_t *uv, *pool;
    if (uv_loop_init(&loop) || fut_uv_create(&uv, &loop) ||
        fut_pool_create(&pool, NULL)) {
        fprintf(stderr, "uv_embed: setup failed\n");
        return 1;
    }
    uv_timer_init(&loop, &ticker);
    uv_timer_start(&ticker, on_tick, 10, 10);

    fut_t *f = fut_async(pool, compute, (void *)(intptr_t)n);
    f = fut_then(f, uv, got_result, uv);

    uv_run(&loop, UV_RUN_DEFAULT); /* until after_delay stops it */
    int err = fut_error(f);
    fut_release(f);
    fut_executor_destroy(pool);
    fut_executor_destroy(uv);    /* closes the executor's uv handles */
    uv_close((uv_handle_t *)&ticker, NULL);
    uv_run(&loop, UV_RUN_DEFAULT); /* finishes the closes */
    if (uv_loop_close(&loop) != 0 || err) {
        fprintf(stderr, "uv_embed: %s\n", err ? fut_strerror(err) : "busy");
        return 1;
    }
    return 0;
}
