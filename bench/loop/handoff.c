/* bench/loop/handoff -- N tasks handed from another thread to a loop.
 *
 *   loop_handoff [n] [runs]      defaults: n = 1000000, runs = 5
 *
 * impl=fut       the producer calls fut_release(fut_async(loop, task, c))
 *                N times; the loop runs them (one eventfd write per sleep
 *                of the loop, not per task)
 * baseline=libuv the producer mallocs a node, queues it under a mutex and
 *                calls uv_async_send (which coalesces too); the async
 *                callback takes the queue and runs the nodes
 * Time from the producer's start to the last task run, per task.  A second
 * line gives the loop's eventfd wake-ups (stats.wakeups) per run. */
#define _GNU_SOURCE
#include <fut.h>
#include <uv.h>

#include <pthread.h>

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

static void *fut_producer(void *arg)
{
    struct fctx *c = arg;
    fut_executor_t *loop = c->loop;
    long n = c->n; /* not re-read from C's line after every call */
    for (long i = 0; i < n; i++)
        fut_release(fut_async(loop, task, c));
    return NULL;
}

static double run_fut(long n, uint64_t *wakeups)
{
    fut_executor_t *loop;
    if (fut_loop_create(&loop, NULL))
        abort();
    struct fctx c = {loop, n, 0};
    pthread_t th;
    double t0 = now_s();
    pthread_create(&th, NULL, fut_producer, &c);
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
        struct node *next = q->next;
        q->fn(q->arg);
        free(q);
        q = next;
    }
}

static void *uv_producer(void *arg)
{
    struct uctx *c = arg;
    long n = c->n;
    for (long i = 0; i < n; i++) {
        struct node *nd = malloc(sizeof *nd);
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
    struct uctx c = {.n = n};
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
    return t;
}

int main(int argc, char **argv)
{
    long n = 1000000;
    int runs = 5;
    if (parse_args(argc, argv, &n, &runs))
        return 2;
    double f[MAX_RUNS], u[MAX_RUNS];
    uint64_t wk[MAX_RUNS];
    for (int r = 0; r < runs; r++) {
        f[r] = run_fut(n, &wk[r]) / (double)n * 1e9;
        u[r] = run_uv(n) / (double)n * 1e9;
    }
    print_line("handoff", n, runs, "libuv", summarize(f, runs),
               summarize(u, runs));
    printf("bench=loop_handoff_wakeups impl=fut n=%ld runs=%d", n, runs);
    for (int r = 0; r < runs; r++)
        printf(" %llu", (unsigned long long)wk[r]);
    printf("\n");
    return 0;
}
