/* Races of cancellation that reaches the work (lib/cancel.c).
 *
 *   cancel_race [rounds]     default 3000 rounds per scenario (quick)
 *   cancel_race --long       100000 rounds per scenario
 *
 * retain:  a thread that holds the source swaps its reference (retain a
 *   new one, release the old) while the main thread cancels the source's
 *   only consumer.  The source is observed throughout, so it must stay
 *   pending: its promise still settles.
 * settle:  a thread settles the source while the main thread cancels its
 *   consumer (a then on the pool).  Either the settle wins (returns 0) or
 *   the cancel reached the source first (FUT_EALREADY): then the consumer
 *   is cancelled and its callback never runs.  Every value is destroyed
 *   once; ASan/TSan watch the source's reference, which the consumer's
 *   runner and the canceller must not both use.
 * adopt:   a thread runs a task that returns fut_adopt(inner), inner
 *   observed by nothing else, while the main thread cancels the task's
 *   future: the recorder/canceller Dekker pair.  Whenever the task ran,
 *   inner must end cancelled (with a store-load reordering both sides
 *   could miss each other, and inner would stay pending).
 * Exit status 0 on success; the first violation prints and exits 1. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fut.h>

static void die(const char *scenario, long round, const char *what)
{
    fprintf(stderr, "cancel_race: %s, round %ld: %s\n", scenario, round, what);
    exit(1);
}

static void jitter(unsigned *seed)
{
    for (int i = (int)(rand_r(seed) % 256); i > 0; i--)
        __asm__ volatile("" ::: "memory");
}

/* The peer: one thread for the whole run.  Each round the main thread
 * sets FN and ARG and bumps GO; both sides then spin-start together, wait
 * a random while and act; the peer bumps DONE when its part returned. */
static struct peer {
    atomic_long go, done;
    void (*fn)(void *arg);
    void *arg;
    unsigned seed;
} g_peer;

static void *peer_main(void *unused)
{
    (void)unused;
    for (long r = 1;; r++) {
        while (atomic_load_explicit(&g_peer.go, memory_order_acquire) < r)
            ;
        if (!g_peer.fn)
            return NULL;
        jitter(&g_peer.seed);
        g_peer.fn(g_peer.arg);
        atomic_store_explicit(&g_peer.done, r, memory_order_release);
    }
}

/* Runs FN(ARG) on the peer while the caller goes on; returns the round. */
static long peer_start(void (*fn)(void *), void *arg)
{
    g_peer.fn = fn;
    g_peer.arg = arg;
    return atomic_fetch_add_explicit(&g_peer.go, 1, memory_order_acq_rel) + 1;
}

static void peer_join(long r)
{
    while (atomic_load_explicit(&g_peer.done, memory_order_acquire) < r)
        ;
}

/* ---- retain ------------------------------------------------------------- */

struct swap {
    fut_t *held; /* the peer's reference; swapped for a new one */
};

static void swap_ref(void *arg)
{
    struct swap *s = arg;
    fut_t *mine = fut_retain(s->held);
    fut_release(s->held);
    s->held = mine;
}

static fut_result_t cb_pass(void *arg, fut_t *src)
{
    atomic_fetch_add((atomic_int *)arg, 1);
    return fut_forward(src);
}

static void retain_round(long round, unsigned seed)
{
    fut_promise_t *p;
    fut_t *src = fut_promise_new(&p);
    atomic_int calls = 0;
    struct swap s = {.held = fut_retain(src)};
    fut_t *d = fut_then(src, fut_inline(), cb_pass, &calls);
    long r = peer_start(swap_ref, &s);
    jitter(&seed);
    if (fut_cancel(d) != 0)
        die("retain", round, "fut_cancel of a pending then failed");
    peer_join(r);
    if (fut_state(s.held) != FUT_PENDING)
        die("retain", round, "an observed source was cancelled");
    if (fut_promise_settle(p, fut_ok_i64(1)) != 0)
        die("retain", round, "the observed source refused its settle");
    if (calls != 0)
        die("retain", round, "a cancelled then's callback ran");
    fut_release(s.held);
    fut_release(d);
}

/* ---- settle ------------------------------------------------------------- */

static atomic_int g_vals, g_dtors;

static void val_free(void *v)
{
    atomic_fetch_add(&g_dtors, 1);
    free(v);
}

struct settler {
    fut_promise_t *p;
    int rc;
};

static void settle_src(void *arg)
{
    struct settler *s = arg;
    atomic_fetch_add(&g_vals, 1);
    s->rc = fut_promise_settle(s->p, fut_ok_owned(malloc(8), val_free));
}

static void settle_round(long round, unsigned seed, fut_executor_t *pool)
{
    struct settler s = {0};
    atomic_int calls = 0;
    fut_t *d = fut_then(fut_promise_new(&s.p), pool, cb_pass, &calls);
    long r = peer_start(settle_src, &s);
    jitter(&seed);
    int rc = fut_cancel(d);
    peer_join(r);
    if (rc != 0 && rc != FUT_EALREADY)
        die("settle", round, "fut_cancel failed");
    if (s.rc == FUT_EALREADY && rc != 0)
        die("settle", round, "the source was cancelled, not by our cancel");
    if (s.rc != 0 && s.rc != FUT_EALREADY)
        die("settle", round, "fut_promise_settle failed");
    if (fut_wait(d, -1) != 0)
        die("settle", round, "fut_wait failed");
    if (rc == 0 && fut_state(d) != FUT_CANCELLED)
        die("settle", round, "a cancelled then is not cancelled");
    if (s.rc == FUT_EALREADY && calls != 0)
        die("settle", round, "a callback ran on a cancelled source");
    fut_release(d);
}

/* ---- adopt -------------------------------------------------------------- */

struct adopter {
    fut_t *inner;
    atomic_int ran;
};

static fut_result_t cb_adopt(void *arg, fut_t *src)
{
    (void)src;
    struct adopter *a = arg;
    atomic_store(&a->ran, 1);
    return fut_adopt(a->inner); /* our reference, handed over */
}

/* Opens the gate: settles its promise, so that the then whose callback
 * adopts runs on this thread (inline), racing the main thread's cancel. */
static void open_gate(void *arg)
{
    fut_promise_settle(arg, fut_ok_i64(0));
}

static void adopt_round(long round, unsigned seed)
{
    struct adopter a = {0};
    fut_promise_t *ip;
    a.inner = fut_promise_new(&ip);
    fut_promise_t *gp;
    fut_t *gate = fut_promise_new(&gp);
    fut_t *f = fut_then(fut_retain(gate), fut_inline(), cb_adopt, &a);
    long r = peer_start(open_gate, gp);
    jitter(&seed);
    int rc = fut_cancel(f);
    peer_join(r);
    if (rc != 0)
        die("adopt", round, "fut_cancel of a pending future failed");
    int src = fut_promise_settle(ip, fut_ok_i64(1));
    if (atomic_load(&a.ran) && src != FUT_EALREADY)
        die("adopt", round, "the adopted future outlived the cancel");
    if (!atomic_load(&a.ran))
        fut_release(a.inner); /* never handed over */
    fut_release(gate);
    fut_release(f);
}

int main(int argc, char **argv)
{
    long rounds = 3000;
    if (argc > 1)
        rounds = strcmp(argv[1], "--long") == 0 ? 100000 : atol(argv[1]);
    fut_executor_t *pool;
    fut_pool_opts_t o = {.threads = 2};
    if (fut_pool_create(&pool, &o) != 0)
        die("setup", 0, "fut_pool_create");
    pthread_t peer;
    g_peer.seed = 12345;
    if (pthread_create(&peer, NULL, peer_main, NULL) != 0)
        die("setup", 0, "pthread_create");
    for (long r = 0; r < rounds; r++) {
        unsigned seed = (unsigned)r * 2654435761u;
        retain_round(r, seed);
        settle_round(r, seed, pool);
        adopt_round(r, seed);
    }
    peer_start(NULL, NULL); /* stop the peer */
    pthread_join(peer, NULL);
    if (fut_executor_destroy(pool) != 0)
        die("teardown", 0, "fut_executor_destroy");
    if (atomic_load(&g_vals) != atomic_load(&g_dtors))
        die("teardown", rounds, "an owned value was not destroyed once");
    printf("cancel_race: %ld rounds of retain, settle and adopt passed\n",
           rounds);
    return 0;
}
