/* bench/scope_steps -- a fixed amount of scope work, for callgrind counts
 * (bench/locked_per_member): no timing, no threads.
 *
 *   scope_steps async N     N x fut_async(fut_inline(), task) released
 *   scope_steps member N    one scope, N x fut_scope_spawn whose start
 *                           returns fut_async(fut_inline(), task), each
 *                           released at once; then close and wait
 *   scope_steps limit N     the same with limit 4
 *   scope_steps add N       N x fut_scope_add(s, fut_async(...))
 *   scope_steps promise N   N x a promise's future made, settled, released
 *   scope_steps pending N   N members whose start returns a promise's
 *                           future, each released, then its promise
 *                           settled (a member on a pool, on one thread)
 *
 * The difference of the counts at two N, divided by the difference of the
 * N, is the cost of one step; set-up and shutdown cancel out. */
#include <fut.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static fut_result_t task(void *arg)
{
    (void)arg;
    return fut_ok_i64(1);
}

static fut_t *start(void *arg)
{
    (void)arg;
    return fut_async(fut_inline(), task, NULL);
}

static fut_t *start_promise(void *arg)
{
    return fut_promise_new((fut_promise_t **)arg);
}

static int run_pending(long n)
{
    fut_scope_t *s;
    if (fut_scope_create(&s, NULL) != 0)
        return 1;
    for (long i = 0; i < n; i++) {
        fut_promise_t *p;
        fut_release(fut_scope_spawn(s, start_promise, &p));
        fut_promise_settle(p, fut_ok_i64(1));
    }
    fut_t *c = fut_scope_close(s);
    int rc = fut_wait(c, -1) == 0 ? fut_error(c) : 1;
    fut_release(c);
    return rc != 0;
}

static int run_scope(long n, size_t limit, int add)
{
    fut_scope_t *s;
    fut_scope_opts_t o = {.limit = limit};
    if (fut_scope_create(&s, &o) != 0)
        return 1;
    for (long i = 0; i < n; i++) {
        if (add)
            fut_release(fut_scope_add(s, start(NULL)));
        else
            fut_release(fut_scope_spawn(s, start, NULL));
    }
    fut_t *c = fut_scope_close(s);
    int rc = fut_wait(c, -1) == 0 ? fut_error(c) : 1;
    fut_release(c);
    return rc != 0;
}

int main(int argc, char **argv)
{
    long n = argc > 2 ? atol(argv[2]) : 0;
    if (argc != 3 || n <= 0) {
        fprintf(
            stderr,
            "usage: scope_steps async|member|limit|add|promise|pending N\n");
        return 2;
    }
    if (strcmp(argv[1], "async") == 0) {
        for (long i = 0; i < n; i++)
            fut_release(fut_async(fut_inline(), task, NULL));
        return 0;
    }
    if (strcmp(argv[1], "promise") == 0) {
        for (long i = 0; i < n; i++) {
            fut_promise_t *p;
            fut_t *f = fut_promise_new(&p);
            fut_promise_settle(p, fut_ok_i64(1));
            fut_release(f);
        }
        return 0;
    }
    if (strcmp(argv[1], "pending") == 0)
        return run_pending(n);
    if (strcmp(argv[1], "member") == 0)
        return run_scope(n, 0, 0);
    if (strcmp(argv[1], "limit") == 0)
        return run_scope(n, 4, 0);
    if (strcmp(argv[1], "add") == 0)
        return run_scope(n, 0, 1);
    fprintf(stderr, "scope_steps: unknown case %s\n", argv[1]);
    return 2;
}
