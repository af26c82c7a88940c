/* hello_future -- the smallest chain: a task, two continuations and a
 * recovery, on the inline executor (everything runs on this thread, at
 * once).  Usage: hello_future [--smoke]  (both print the same).
 *
 * Reads top to bottom because chaining consumes its input and returns the
 * next future: f = fut_then(f, ...).  The last reference is released at the
 * end; nothing else needs freeing. */
#include <fut.h>

#include <stdio.h>
#include <string.h>

static fut_result_t answer(void *arg)
{
    (void)arg;
    return fut_ok_i64(6);
}

static fut_result_t times_seven(void *arg, fut_t *src)
{
    (void)arg;
    return fut_ok_i64(fut_value_i64(src) * 7);
}

static fut_result_t refuse_odd(void *arg, fut_t *src)
{
    (void)arg;
    int64_t v = fut_value_i64(src);
    return v % 2 ? fut_fail(FUT_EINVAL) : fut_ok_i64(v);
}

static fut_result_t fall_back(void *arg, fut_t *src)
{
    printf("recovered from: %s\n", fut_strerror(fut_error(src)));
    return fut_ok_i64(*(const int64_t *)arg);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--smoke") != 0) {
        fprintf(stderr, "usage: hello_future [--smoke]\n");
        return 2;
    }
    int64_t fallback = -1;
    fut_executor_t *ex = fut_inline();

    fut_t *f = fut_async(ex, answer, NULL);     /* 6 */
    f = fut_then(f, ex, times_seven, NULL);     /* 42 */
    f = fut_then(f, ex, refuse_odd, NULL);      /* 42 is even: kept */
    f = fut_catch(f, ex, fall_back, &fallback); /* not called */
    int err = fut_await(f, NULL);
    printf("hello, future: %lld (%s)\n", (long long)fut_value_i64(f),
           err ? fut_strerror(err) : "ok");
    int ok = err == 0 && fut_value_i64(f) == 42;
    fut_release(f);

    /* The same chain from 7: refuse_odd rejects, fut_catch recovers. */
    fut_t *g = fut_ready(fut_ok_i64(7));
    g = fut_then(g, ex, refuse_odd, NULL);
    g = fut_catch(g, ex, fall_back, &fallback);
    err = fut_await(g, NULL);
    printf("after recovery: %lld\n", (long long)fut_value_i64(g));
    ok = ok && err == 0 && fut_value_i64(g) == -1;
    fut_release(g);
    return ok ? 0 : 1;
}
