/* Soak: random DAGs of futures on the pool and on the loop, checked node by
 * node, with the process's resident set printed as it goes.
 *
 *   soak [tasks]    default 200000 tasks per executor (quick)
 *   soak --long     50 million per executor (10^8 in all); RSS every 10^7
 *
 * Each round builds a DAG of NODES futures on one executor: sources (tasks,
 * some failing, some after a zero delay), then/catch links, and joins
 * (fut_all of up to three earlier nodes, then a callback summing the
 * inputs).  The expected outcome of every node is computed while building,
 * from its parents' expectations; after the round's sink (all_settled)
 * settles, every node is compared with it.  A task or callback counter gives
 * the task count.  The peak RSS (VmHWM) must stay flat once warmed up: at
 * the end it may exceed the peak seen at 20% of the run by at most 25% + 8
 * MiB (not checked under sanitizers, whose allocators keep quarantines).
 * Exit status 0 on success, 1 on the first mismatch. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fut.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SOAK_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SOAK_SANITIZER 1
#endif
#endif
#ifndef SOAK_SANITIZER
#define SOAK_SANITIZER 0
#endif

enum { NODES = 64, ERR = -1000 };
enum kind { SRC, DELAYED, THEN, CATCH, JOIN };

typedef struct node {
    fut_t *f;
    int64_t expect; /* value when err == 0 */
    int err;
} node_t;

static atomic_uint_fast64_t g_tasks;

static void counted(void)
{
    atomic_fetch_add_explicit(&g_tasks, 1, memory_order_relaxed);
}

static fut_result_t src_task(void *arg)
{
    counted();
    int64_t v = (int64_t)(intptr_t)arg;
    return v % 53 == 0 ? fut_fail(ERR) : fut_ok_i64(v);
}

static fut_result_t after_delay(void *arg, fut_t *src)
{
    (void)src;
    counted();
    return fut_ok_i64((int64_t)(intptr_t)arg);
}

static fut_result_t inc(void *arg, fut_t *src)
{
    (void)arg;
    counted();
    return fut_ok_i64(fut_value_i64(src) + 1);
}

static fut_result_t recover(void *arg, fut_t *src)
{
    (void)arg;
    (void)src;
    counted();
    return fut_ok_i64(0);
}

static fut_result_t sum_inputs(void *arg, fut_t *all)
{
    counted();
    size_t n = (size_t)(intptr_t)arg;
    int64_t s = 1;
    for (size_t i = 0; i < n; i++)
        s += fut_value_i64(fut_input(all, i));
    return fut_ok_i64(s);
}

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void build(node_t *n, fut_executor_t *ex, uint64_t *seed)
{
    for (int i = 0; i < NODES; i++) {
        uint64_t r = rnd(seed);
        enum kind k = i < 4 ? SRC : (enum kind)(r % 16 < 5   ? SRC
                                                : r % 16 < 6 ? DELAYED
                                                : r % 16 < 11 ? THEN
                                                : r % 16 < 13 ? CATCH
                                                              : JOIN);
        node_t *p = &n[(r >> 8) % (uint64_t)(i ? i : 1)];
        int64_t v = (int64_t)((r >> 16) % 1000);
        switch (k) {
        case SRC:
            n[i].f = fut_async(ex, src_task, (void *)(intptr_t)v);
            n[i].err = v % 53 == 0 ? ERR : 0;
            n[i].expect = v;
            break;
        case DELAYED:
            n[i].f = fut_then(fut_delay(ex, 0), ex, after_delay,
                              (void *)(intptr_t)v);
            n[i].err = 0;
            n[i].expect = v;
            break;
        case THEN:
            n[i].f = fut_then(fut_retain(p->f), ex, inc, NULL);
            n[i].err = p->err;
            n[i].expect = p->expect + 1;
            break;
        case CATCH:
            n[i].f = fut_catch(fut_retain(p->f), ex, recover, NULL);
            n[i].err = 0;
            n[i].expect = p->err ? 0 : p->expect;
            break;
        case JOIN: {
            size_t m = 1 + (r >> 40) % 3;
            fut_t *in[3];
            n[i].err = 0;
            n[i].expect = 1;
            for (size_t j = 0; j < m; j++) {
                node_t *q = &n[(r >> (12 + 8 * j)) % (uint64_t)i];
                in[j] = fut_retain(q->f);
                if (q->err && !n[i].err)
                    n[i].err = q->err;
                n[i].expect += q->expect;
            }
            n[i].f = fut_then(fut_all(in, m), ex, sum_inputs,
                              (void *)(intptr_t)m);
            break;
        }
        }
    }
}

static int check(node_t *n, int round)
{
    for (int i = 0; i < NODES; i++) {
        fut_t *f = n[i].f;
        bool ok = n[i].err ? fut_state(f) == FUT_REJECTED &&
                                 fut_error(f) == n[i].err
                           : fut_state(f) == FUT_FULFILLED &&
                                 fut_value_i64(f) == n[i].expect;
        if (!ok) {
            fprintf(stderr,
                    "soak: round %d node %d: state %d err %d value %" PRId64
                    ", expected err %d value %" PRId64 "\n",
                    round, i, fut_state(f), fut_error(f), fut_value_i64(f),
                    n[i].err, n[i].expect);
            return 1;
        }
        fut_release(f);
    }
    return 0;
}

/* VmRSS and VmHWM of this process, in KiB. */
static void rss(long *now, long *peak)
{
    char line[256];
    FILE *f = fopen("/proc/self/status", "r");
    *now = *peak = -1;
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0)
            *now = atol(line + 6);
        else if (strncmp(line, "VmHWM:", 6) == 0)
            *peak = atol(line + 6);
    }
    fclose(f);
}

static int soak(const char *name, fut_executor_t *ex, bool loop,
                uint64_t total, uint64_t every)
{
    node_t n[NODES];
    uint64_t seed = 0x2545F4914F6CDD1Dull, next = every, start =
        atomic_load(&g_tasks);
    long warm_peak = -1, now, peak;
    int round = 0;
    for (;;) {
        uint64_t done = atomic_load(&g_tasks) - start;
        if (done >= next || done >= total) {
            rss(&now, &peak);
            printf("soak %-4s tasks=%" PRIu64 " rss_kb=%ld peak_kb=%ld\n",
                   name, done, now, peak);
            fflush(stdout);
            if (warm_peak < 0 && done >= total / 5)
                warm_peak = peak;
            next += every;
        }
        if (done >= total)
            break;
        build(n, ex, &seed);
        fut_t *all[NODES];
        for (int i = 0; i < NODES; i++)
            all[i] = fut_retain(n[i].f);
        fut_t *sink = fut_all_settled(all, NODES);
        if (loop)
            fut_loop_run(ex, sink);
        else
            fut_wait(sink, -1);
        if (fut_state(sink) != FUT_FULFILLED) {
            fprintf(stderr, "soak: round %d: sink %d\n", round,
                    fut_state(sink));
            return 1;
        }
        fut_release(sink);
        if (check(n, round))
            return 1;
        round++;
    }
    rss(&now, &peak);
    if (!SOAK_SANITIZER && warm_peak > 0 &&
        peak > warm_peak + warm_peak / 4 + 8192) {
        fprintf(stderr, "soak %s: peak RSS grew from %ld to %ld KiB after "
                "warm-up\n", name, warm_peak, peak);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    uint64_t total = 200000, every = 40000;
    if (argc > 1 && strcmp(argv[1], "--long") == 0) {
        total = 50000000;
        every = 10000000;
    } else if (argc > 1) {
        total = strtoull(argv[1], NULL, 10);
        every = total / 5 ? total / 5 : 1;
    }
    if (SOAK_SANITIZER && argc == 1)
        total /= 4, every /= 4;
    fut_executor_t *pool, *loop;
    fut_pool_opts_t po = {.threads = 2};
    if (fut_pool_create(&pool, &po) || fut_loop_create(&loop, NULL)) {
        fprintf(stderr, "soak: cannot create the executors\n");
        return 1;
    }
    int rc = soak("pool", pool, false, total, every);
    if (!rc)
        rc = soak("loop", loop, true, total, every);
    fut_executor_destroy(pool);
    fut_executor_destroy(loop);
    /* Give back this thread's cached blocks: the main thread never exits,
     * and LeakSanitizer reports its cache as leaked (reported to lead). */
    fut_set_allocator(NULL, NULL);
    if (!rc)
        printf("soak: ok\n");
    return rc;
}
