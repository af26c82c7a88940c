/* bench/loop/chain_steps -- one chain of N fut_then steps made and run on
 * the thread of a single-thread executor: the built-in loop, or the libuv
 * adapter (libfut-uv) on a uv loop.  For instruction counts, not time:
 *
 *   chain_steps loop|uv N
 *
 * A task on the executor builds the chain (f = fut_then(f, ex, step, NULL),
 * N times, from fut_ready) and the thread runs it to the end; the program
 * prints the final value (N).  bench/locked_per_step runs it under callgrind
 * for two N and reports the difference per step of locked instructions
 * executed in the program (libfut, the adapter), as docs/BENCHMARKS.md
 * counts them. */
#define _POSIX_C_SOURCE 200809L
#include <fut.h>
#include <fut/uv.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static fut_result_t step(void *arg, fut_t *src)
{
    (void)arg;
    return fut_ok_i64(fut_value_i64(src) + 1);
}

static fut_executor_t *ex;
static long n;

static fut_result_t build(void *arg)
{
    (void)arg;
    fut_t *f = fut_ready(fut_ok_i64(0));
    for (long i = 0; i < n; i++)
        f = fut_then(f, ex, step, NULL);
    return fut_adopt(f);
}

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "loop") && strcmp(argv[1], "uv"))) {
        fprintf(stderr, "usage: chain_steps loop|uv N\n");
        return 2;
    }
    n = atol(argv[2]);
    bool uv = strcmp(argv[1], "uv") == 0;
    uv_loop_t loop;
    int rc = uv ? uv_loop_init(&loop) || fut_uv_create(&ex, &loop)
                : fut_loop_create(&ex, NULL);
    if (rc)
        return 1;
    fut_t *f = fut_async(ex, build, NULL);
    if (uv) {
        while (fut_state(f) == FUT_PENDING)
            uv_run(&loop, UV_RUN_ONCE);
    } else {
        fut_loop_run(ex, f);
    }
    printf("%s %lld\n", argv[1], (long long)fut_value_i64(f));
    fut_release(f);
    fut_executor_destroy(ex);
    if (uv) {
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
    }
    return 0;
}
