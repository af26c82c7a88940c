/* hedged -- taming tail latency with futures on the loop.  Three replicas
 * of a loopback service (compare.h) answer after 4..8 ms, but 1 request in
 * 25 takes 150 ms.  The same requests run three ways:
 *
 *   plain    one attempt, waited for however long it takes
 *   retry    fut_timeout per attempt (30 ms), then retry on the next
 *            replica after a backoff (fut_catch + fut_delay: 2, 4 ms ...)
 *   hedged   retry, plus a second request to another replica if the first
 *            has not answered within 10 ms; fut_any takes whichever
 *            answers first
 *
 * Cancellation does the clean-up: a timeout cancels its attempt down to
 * the fd wait, fut_any cancels the losing branch (a backup not yet sent is
 * never sent), and the request's fut_finally closes its socket whatever
 * ended it.  A scope per run tracks every request and every call: the run
 * ends when all have, with no list of them kept here.
 *
 * Requests arrive one every millisecond (an open-loop load, so a slow reply
 * does not delay the next request), and each is timed from its arrival.
 * Prints p50/p99/max latency of each way.  No answer may be wrong; a request
 * may fail only if all its attempts time out (it is counted, not hidden).
 * Usage: hedged [--requests N] [--smoke] */
#include "compare.h"

#define REPLICAS 3
#define ATTEMPTS 3
#define MS 1000000ull

enum { PLAIN, RETRY, HEDGED, MODES };
static const char *const mode_name[MODES] = {"plain", "retry", "hedged"};

static fut_executor_t *loop;
static uint16_t ports[REPLICAS];
static uint64_t attempt_timeout = 30 * MS, hedge_after = 10 * MS;

static fut_scope_t *calls; /* every request and call of the run */
static size_t sent;

struct request {
    int mode;
    uint64_t key, t0, ns;
    bool ok, wrong;
};

/* One branch of attempts (a request has two when hedged). */
struct branch {
    struct request *q;
    int replica, attempts;
};

/* One attempt on the branch's next replica, given up after the timeout
 * (which cancels the call: its fd wait goes, its socket is closed). */
static fut_t *attempt(struct branch *b)
{
    fut_t *call = svc_call_async(loop, ports[b->replica], b->q->key, 0);
    call = fut_scope_add(calls, call);
    b->replica = (b->replica + 1) % REPLICAS;
    b->attempts++;
    sent++;
    return b->q->mode == PLAIN ? call : fut_timeout(call, attempt_timeout);
}

static fut_t *with_retry(struct branch *b);

static fut_result_t again(void *arg, fut_t *src)
{
    (void)src;
    return fut_adopt(with_retry(arg));
}

/* An attempt failed (timed out, refused): back off, then try the next
 * replica, unless out of attempts.  (An answered request's other branch
 * was cancelled by fut_any: it never gets here.) */
static fut_result_t retry(void *arg, fut_t *src)
{
    struct branch *b = arg;
    if (b->attempts >= ATTEMPTS)
        return fut_forward(src);
    fut_t *f = fut_delay(loop, (2 * MS) << (b->attempts - 1));
    return fut_adopt(fut_then(f, loop, again, b));
}

static fut_t *with_retry(struct branch *b)
{
    fut_t *f = attempt(b);
    return b->q->mode == PLAIN ? f : fut_catch(f, loop, retry, b);
}

static fut_result_t finish(void *arg, fut_t *src)
{
    struct request *q = arg;
    q->ns = fut_now_ns() - q->t0;
    q->ok = fut_state(src) == FUT_FULFILLED;
    q->wrong = q->ok && (uint64_t)fut_value_i64(src) != svc_answer(q->key);
    return fut_forward(src);
}

static fut_result_t begin(void *arg, fut_t *arrival)
{
    (void)arrival;
    struct branch *b = arg; /* b[0] primary, b[1] backup */
    struct request *q = b->q;
    q->t0 = fut_now_ns();
    fut_t *f = with_retry(&b[0]);
    if (q->mode == HEDGED) {
        fut_t *backup =
            fut_then(fut_delay(loop, hedge_after), loop, again, &b[1]);
        f = fut_any((fut_t *[]){f, backup}, 2);
    }
    return fut_adopt(fut_finally(f, loop, finish, q));
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Runs N requests in MODE, all started at once; prints a line. */
static bool run_mode(int mode, size_t n)
{
    struct request *qs = calloc(n, sizeof *qs);
    struct branch *bs = calloc(2 * n, sizeof *bs);
    uint64_t *lat = calloc(n, sizeof *lat);
    if (!qs || !bs || !lat || fut_scope_create(&calls, NULL) != 0)
        return false;
    sent = 0;
    for (size_t i = 0; i < n; i++) {
        qs[i] = (struct request){.mode = mode, .key = mode * 100000 + i};
        bs[2 * i] = (struct branch){&qs[i], (int)(i % REPLICAS), 0};
        bs[2 * i + 1] = (struct branch){&qs[i], (int)(i + 1) % REPLICAS, 0};
        fut_t *f = fut_then(fut_delay(loop, i * MS), loop, begin, &bs[2 * i]);
        fut_release(fut_scope_add(calls, f));
    }
    fut_t *done = fut_scope_close(calls); /* every request and call ended */
    fut_loop_run(loop, done);
    fut_release(done);
    size_t ok = 0, wrong = 0;
    for (size_t i = 0; i < n; i++) {
        lat[i] = qs[i].ns;
        ok += qs[i].ok;
        wrong += qs[i].wrong;
    }
    qsort(lat, n, sizeof *lat, cmp_u64);
    printf("%-7s %8.1f %8.1f %8.1f %8zu %6zu/%zu\n", mode_name[mode],
           lat[n / 2] / 1e6, lat[(n * 99) / 100] / 1e6, lat[n - 1] / 1e6, sent,
           ok, n);
    free(qs);
    free(bs);
    free(lat);
    if (wrong)
        printf("%zu WRONG answers\n", wrong);
    /* Plain waits as long as it takes; the others may lose a request whose
     * every attempt timed out, but not many. */
    return !wrong && (mode == PLAIN ? ok == n : ok * 10 >= n * 9);
}

int main(int argc, char **argv)
{
    size_t n = 400;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--smoke"))
            n = 40;
        else if (!strcmp(argv[i], "--requests") && i + 1 < argc)
            n = strtoul(argv[++i], NULL, 10);
        else
            n = 0;
    }
    if (n == 0 || n > 20000) {
        fprintf(stderr, "usage: hedged [--requests N (1..20000)] [--smoke]\n");
        return 2;
    }
    svc_t svc[REPLICAS];
    for (int r = 0; r < REPLICAS; r++) { /* before any thread exists */
        svc_opts_t o = {.latency_us = 4000,
                        .jitter_us = 4000,
                        .slow_permille = 40,
                        .slow_us = 150000,
                        .seed = 1234567u * (r + 1)};
        if (svc_start(&svc[r], &o) != 0)
            return 1;
        ports[r] = svc[r].port;
    }
    if (fut_loop_create(&loop, NULL) != 0)
        return 1;
    printf("%zu requests, one per ms, 3 replicas (4-8 ms, 4%% take 150 ms); "
           "latency in ms\n%-7s %8s %8s %8s %8s %8s\n",
           n, "mode", "p50", "p99", "max", "sent", "ok");
    bool ok = true;
    for (int m = 0; m < MODES; m++)
        ok = run_mode(m, n) && ok;
    fut_executor_destroy(loop);
    for (int r = 0; r < REPLICAS; r++)
        svc_stop(&svc[r]);
    return ok ? 0 : 1;
}
