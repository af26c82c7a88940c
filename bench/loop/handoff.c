/* bench/loop/handoff -- N tasks handed from another thread to a loop.
 *
 *   loop_handoff [n] [runs]      defaults: n = 1000000, runs = 5
 *
 * case=fut_async  the producer calls fut_release(fut_async(loop, task, c))
 *                 N times; the loop runs them (one eventfd write per sleep
 *                 of the loop, not per task)
 * case=fut_post   the producer calls fut_post(loop, fn, c) N times: the
 *                 same hand-off with no future
 * baseline=libuv  the way an expert writes it with libuv: nodes
 *                 preallocated by the caller (outside the timed part), a
 *                 mutex-protected list and uv_async_send (which coalesces
 *                 too); the async callback takes the list and runs the
 *                 nodes
 * The three are interleaved run by run.  Time from the producer's start to
 * the last task run, per task.  A last line gives the loop's eventfd
 * wake-ups (stats.wakeups) per fut_async run.
 *
 *   loop_handoff --only CASE n   one run of CASE (fut_async, fut_post or
 *                                libuv), nothing printed: for callgrind
 *                                (bench/locked_per_post) */
#define _GNU_SOURCE
#include <fut.h>
#include <uv.h>

#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "bench_util.h"

/* ---- libfut ------------------------------------------------------------- */

/* RAN is the loop's, N and LOOP the producer's: on separate cache lines,
 * or every task would bounce the line between the two threads (a harness
 * cost that is neither implementation's; the same for uctx). */
struct fctx {
    fut_executor_t *loop;
    long n;
    _Alignas(64) long ran;
};

static fut_result_t task(void *arg)
{
    struct fctx *c = arg;
    if (++c->ran == c->n)
        fut_loop_stop(c->loop);
    return fut_ok(NULL);
}

static void post_task(void *arg)
{
    struct fctx *c = arg;
    if (++c->ran == c->n)
        fut_loop_stop(c->loop);
}

static void *fut_producer(void *arg)
{
    struct fctx *c = arg;
    fut_executor_t *loop = c->loop;
    long n = c->n; /* not re-read from C's line after every call */
    for (long i = 0; i < n; i++)
        fut_release(fut_async(loop, task, c));
    return NULL;
}

static void *post_producer(void *arg)
{
    struct fctx *c = arg;
    fut_executor_t *loop = c->loop;
    long n = c->n;
    for (long i = 0; i < n; i++)
        if (fut_post(loop, post_task, c) != 0)
            abort();
    return NULL;
}

/* POST: fut_post, else fut_async. */
static double run_fut(long n, bool post, uint64_t *wakeups)
{
    fut_executor_t *loop;
    if (fut_loop_create(&loop, NULL))
        abort();
    struct fctx c = {loop, n, 0};
    pthread_t th;
    double t0 = now_s();
    pthread_create(&th, NULL, post ? post_producer : fut_producer, &c);
    fut_loop_run(loop, NULL);
    double t = now_s() - t0;
    pthread_join(th, NULL);
    if (c.ran != n)
        abort();
    fut_stats_t st;
    fut_executor_stats(loop, &st);
    *wakeups = st.wakeups;
    fut_executor_destroy(loop);
    return t;
}

/* ---- libuv -------------------------------------------------------------- */

struct node {
    struct node *next;
    void (*fn)(void *);
    void *arg;
};

struct uctx {
    uv_async_t async;
    pthread_mutex_t mu;
    struct node *head, *tail;
    struct node *nodes; /* the caller's, one per task, made untimed */
    long n;
    _Alignas(64) long ran;
};

static void uv_task(void *arg)
{
    struct uctx *c = arg;
    if (++c->ran == c->n)
        uv_close((uv_handle_t *)&c->async, NULL);
}

static void on_async(uv_async_t *a)
{
    struct uctx *c = a->data;
    pthread_mutex_lock(&c->mu);
    struct node *q = c->head;
    c->head = c->tail = NULL;
    pthread_mutex_unlock(&c->mu);
    while (q) {
        struct node *next = q->next; /* the caller's node: not freed here */
        q->fn(q->arg);
        q = next;
    }
}

static void *uv_producer(void *arg)
{
    struct uctx *c = arg;
    long n = c->n;
    struct node *nodes = c->nodes;
    for (long i = 0; i < n; i++) {
        struct node *nd = &nodes[i];
        nd->next = NULL;
        nd->fn = uv_task;
        nd->arg = c;
        pthread_mutex_lock(&c->mu);
        if (c->tail)
            c->tail->next = nd;
        else
            c->head = nd;
        c->tail = nd;
        pthread_mutex_unlock(&c->mu);
        uv_async_send(&c->async);
    }
    return NULL;
}

static double run_uv(long n)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct uctx c = {.n = n, .nodes = calloc((size_t)n, sizeof(struct node))};
    if (!c.nodes)
        abort();
    pthread_mutex_init(&c.mu, NULL);
    uv_async_init(&loop, &c.async, on_async);
    c.async.data = &c;
    pthread_t th;
    double t0 = now_s();
    pthread_create(&th, NULL, uv_producer, &c);
    uv_run(&loop, UV_RUN_DEFAULT);
    double t = now_s() - t0;
    pthread_join(th, NULL);
    if (c.ran != n)
        abort();
    uv_loop_close(&loop);
    pthread_mutex_destroy(&c.mu);
    free(c.nodes);
    return t;
}

/* --only CASE N: one run of one case, for instruction counts. */
static int only(const char *c, long n)
{
    uint64_t wk;
    if (n <= 0)
        return 2;
    if (strcmp(c, "fut_async") == 0)
        run_fut(n, false, &wk);
    else if (strcmp(c, "fut_post") == 0)
        run_fut(n, true, &wk);
    else if (strcmp(c, "libuv") == 0)
        run_uv(n);
    else
        return 2;
    return 0;
}

int main(int argc, char **argv)
{
    long n = 1000000;
    int runs = 5;
    if (argc == 4 && strcmp(argv[1], "--only") == 0)
        return only(argv[2], atol(argv[3]));
    if (parse_args(argc, argv, &n, &runs))
        return 2;
    double fa[MAX_RUNS], fp[MAX_RUNS], u[MAX_RUNS];
    uint64_t wk[MAX_RUNS], wkp;
    for (int r = 0; r < runs; r++) {
        fa[r] = run_fut(n, false, &wk[r]) / (double)n * 1e9;
        fp[r] = run_fut(n, true, &wkp) / (double)n * 1e9;
        u[r] = run_uv(n) / (double)n * 1e9;
    }
    summary_t us = summarize(u, runs);
    print_case_line("handoff", "fut_async", n, runs, "libuv",
                    summarize(fa, runs), us);
    print_case_line("handoff", "fut_post", n, runs, "libuv",
                    summarize(fp, runs), us);
    printf("bench=loop_handoff_wakeups impl=fut n=%ld runs=%d", n, runs);
    for (int r = 0; r < runs; r++)
        printf(" %llu", (unsigned long long)wk[r]);
    printf("\n");
    return 0;
}
