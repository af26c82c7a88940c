/* Stress for the slabs' remote frees (lib/alloc.c): threads bounce blocks.
 *
 *   alloc_remote [threads [rounds]]   default 3 threads, 3 rounds (quick)
 *   alloc_remote --long               4 threads, 40 rounds
 *
 * In each round THREADS threads each make blocks (fut__alloc, 24 to 120
 * bytes), fill every byte they asked for from a unique token, and hand them
 * to the next thread through a mutex-guarded ring; the receiver checks the
 * whole pattern, scribbles over it and frees the block (fut__free), so
 * almost every free is a remote one.  A block handed out twice, a lost
 * push or a stale link (a missing fence) shows as a pattern mismatch, a
 * crash, or under ThreadSanitizer as a race.  Threads exit at the end of a
 * round with blocks still queued, which the main thread then frees (into
 * orphaned homes); the next round's threads adopt those homes.  A counting
 * allocator checks that fut_set_allocator(NULL, NULL) at the end gets every
 * block back.  Exit status 0 on success, 1 on the first failure. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

enum { MAXT = 16, RING = 256, PER_ROUND = 40000 };

typedef struct ring {
    pthread_mutex_t mu;
    unsigned head, n;
    void *b[RING];
    size_t size[RING];
} ring_t;

static ring_t g_ring[MAXT];
static int g_threads;
static atomic_int g_bad;
static atomic_long g_live, g_calls;

static void *count_alloc(size_t n)
{
    void *p = malloc(n);
    if (p) {
        atomic_fetch_add_explicit(&g_live, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&g_calls, 1, memory_order_relaxed);
    }
    return p;
}

static void count_free(void *p)
{
    if (p)
        atomic_fetch_sub_explicit(&g_live, 1, memory_order_relaxed);
    free(p);
}

static uint8_t byte_of(uint64_t token, size_t i)
{
    uint64_t x = token * 0x9E3779B97F4A7C15ull + i * 0xBF58476D1CE4E5B9ull;
    return (uint8_t)(x >> 56);
}

/* The first 8 bytes carry the token; the rest derive from it. */
static void fill(void *b, size_t size, uint64_t token)
{
    uint8_t *p = b;
    memcpy(p, &token, sizeof token);
    for (size_t i = sizeof token; i < size; i++)
        p[i] = byte_of(token, i);
}

static int intact(const void *b, size_t size)
{
    const uint8_t *p = b;
    uint64_t token;
    memcpy(&token, p, sizeof token);
    for (size_t i = sizeof token; i < size; i++)
        if (p[i] != byte_of(token, i))
            return 0;
    return 1;
}

static void check_and_free(void *b, size_t size)
{
    if (!intact(b, size) && !atomic_exchange(&g_bad, 1))
        fprintf(stderr, "alloc_remote: block %p corrupted\n", b);
    memset(b, 0x5a, size);
    fut__free(b, size);
}

static int put(ring_t *r, void *b, size_t size)
{
    pthread_mutex_lock(&r->mu);
    int ok = r->n < RING;
    if (ok) {
        unsigned i = (r->head + r->n++) % RING;
        r->b[i] = b;
        r->size[i] = size;
    }
    pthread_mutex_unlock(&r->mu);
    return ok;
}

static int get(ring_t *r, void **b, size_t *size)
{
    pthread_mutex_lock(&r->mu);
    int ok = r->n > 0;
    if (ok) {
        *b = r->b[r->head];
        *size = r->size[r->head];
        r->head = (r->head + 1) % RING;
        r->n--;
    }
    pthread_mutex_unlock(&r->mu);
    return ok;
}

typedef struct worker {
    int id;
    unsigned seed;
    uint64_t next_token; /* blocks made so far */
} worker_t;

static unsigned rnd(worker_t *w)
{
    w->seed = w->seed * 1103515245u + 12345u;
    return w->seed >> 8;
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    ring_t *out = &g_ring[(w->id + 1) % g_threads];
    ring_t *in = &g_ring[w->id];
    for (int i = 0; i < PER_ROUND && !atomic_load(&g_bad); i++) {
        /* make a few blocks; a full ring means we free one ourselves */
        for (unsigned k = rnd(w) % 4; k-- > 0;) {
            size_t size = 24 + rnd(w) % 97; /* 24 .. 120 */
            void *b = fut__alloc(size);
            if (!b) {
                atomic_store(&g_bad, 1);
                break;
            }
            fill(b, size, ((uint64_t)w->id << 48) | w->next_token++);
            if (!put(out, b, size))
                check_and_free(b, size);
        }
        void *b;
        size_t size;
        for (unsigned k = rnd(w) % 5; k-- > 0 && get(in, &b, &size);)
            check_and_free(b, size);
    }
    return NULL; /* leaves blocks in the rings */
}

int main(int argc, char **argv)
{
    int threads = 3, rounds = 3;
    if (argc > 1 && strcmp(argv[1], "--long") == 0) {
        threads = 4;
        rounds = 40;
    } else {
        if (argc > 1)
            threads = atoi(argv[1]);
        if (argc > 2)
            rounds = atoi(argv[2]);
    }
    if (threads < 2 || threads > MAXT || rounds < 1) {
        fprintf(stderr,
                "usage: alloc_remote [threads(2..%d) [rounds]] | "
                "--long\n",
                MAXT);
        return 2;
    }
    g_threads = threads;
    for (int i = 0; i < threads; i++)
        pthread_mutex_init(&g_ring[i].mu, NULL);
    fut_set_allocator(count_alloc, count_free);

    static worker_t ws[MAXT];
    for (int r = 0; r < rounds && !atomic_load(&g_bad); r++) {
        pthread_t th[MAXT];
        for (int i = 0; i < threads; i++) {
            ws[i].id = i;
            ws[i].seed = (unsigned)(r * 7919 + i * 104729 + 1);
            if (pthread_create(&th[i], NULL, worker_main, &ws[i]) != 0) {
                fprintf(stderr, "alloc_remote: pthread_create failed\n");
                return 1;
            }
        }
        for (int i = 0; i < threads; i++)
            pthread_join(th[i], NULL);
        /* Every thread has exited: what is queued goes to orphaned homes
         * (half now, half after the next round started, via the rings). */
        for (int i = 0; i < threads; i++) {
            void *b;
            size_t size;
            for (unsigned k = g_ring[i].n / 2;
                 k-- > 0 && get(&g_ring[i], &b, &size);)
                check_and_free(b, size);
        }
    }
    for (int i = 0; i < threads; i++) {
        void *b;
        size_t size;
        while (get(&g_ring[i], &b, &size))
            check_and_free(b, size);
    }
    long calls = atomic_load(&g_calls);
    long long made = 0;
    for (int i = 0; i < threads; i++)
        made += (long long)ws[i].next_token;
    fut_set_allocator(NULL, NULL);
    long live = atomic_load(&g_live);
    printf("alloc_remote: threads=%d rounds=%d allocator_calls=%ld "
           "blocks_made=%lld live_after_flush=%ld %s\n",
           threads, rounds, calls, made, live,
           atomic_load(&g_bad) ? "CORRUPT" : "ok");
    if (live != 0)
        fprintf(stderr, "alloc_remote: %ld blocks not returned\n", live);
    return atomic_load(&g_bad) || live != 0;
}
