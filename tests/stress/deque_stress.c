/* Stress for the Chase–Lev deque: one owner pushes and pops, THIEVES steal;
 * every item must be taken exactly once.
 *
 *   deque_stress [thieves [items]]   defaults 2 and 200000 (quick)
 *   deque_stress --long              2 thieves, 10 million items
 *
 * Built with -DFUT_DEQUE_BROKEN_FENCE (plain store instead of the xchg in
 * pop) it is expected to fail: the owner and a thief take the same item.
 * Exit status 0 when no item was lost or duplicated, 1 otherwise. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../executors/pool/deque.h"

#define CAPACITY 256

static fut__deque_t dq;
static void *slots[CAPACITY];
static uint32_t *taken; /* taken[i]: how many times item i was taken */
static uint64_t nitems;
static int done; /* owner finished; thieves drain and stop */
static uint64_t stolen_total;
static bool corrupt;   /* the owner found top > bottom */
static unsigned ready; /* thieves running; the owner waits for all */
static uint64_t full;    /* pushes refused (owner only) */
static uint64_t drained; /* of them, retried once the thieves drained it */

static void take(void *x)
{
    uint64_t i = (uint64_t)(uintptr_t)x - 1;

    ck_pr_inc_32(&taken[i]);
}

static void *thief(void *arg)
{
    uint64_t n = 0;

    (void)arg;
    ck_pr_inc_uint(&ready);
    for (;;) {
        bool lost;
        void *x = fut__deque_steal(&dq, &lost);

        if (x != NULL) {
            take(x);
            n++;
        } else if (!lost && ck_pr_load_int(&done)) {
            break;
        } else {
            ck_pr_stall();
        }
    }
    ck_pr_add_64(&stolen_total, n);
    return NULL;
}

/* The owner pushes two items, "works" a random while (so thieves find
 * them), then pops twice.  The first pop sees two items and takes the bottom
 * one without a CAS: exactly the case where, without the store->load fence
 * in pop, a thief that steals twice while the owner's store of bottom still
 * sits in its store buffer takes the same item.  Now and then the owner
 * pushes a longer burst so the deque also wraps and fills. */
static uint64_t owner(void)
{
    uint64_t next = 0, popped = 0, seed = 88172645463325252ull;

    while (next < nitems) {
        unsigned burst, spin;

        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        burst = (seed & 63) == 0 ? 300 : 2;
        spin = (unsigned)(seed >> 8 & 255);
        while (burst-- > 0 && next < nitems) {
            if (!fut__deque_push(&dq, (void *)(uintptr_t)(next + 1))) {
                /* Full.  Every other time pop some (below); else wait for
                 * the thieves to drain it: then the push must succeed (a
                 * deque broken by a duplicate take can keep top above
                 * bottom, and refuse pushes while empty), and item NEXT
                 * is in the deque like any pushed one.  (Once the retry
                 * happened only when a preemption let the thieves drain
                 * it, and NEXT was then pushed a second time.) */
                if (full++ % 2 == 0)
                    break;
                while (fut__deque_size(&dq) != 0)
                    ck_pr_stall();
                if (!fut__deque_push(&dq, (void *)(uintptr_t)(next + 1))) {
                    corrupt = true;
                    return popped;
                }
                drained++;
            }
            next++;
        }
        while (spin-- > 0)
            ck_pr_stall();
        for (burst = 0; burst < 2; burst++) {
            void *x = fut__deque_pop(&dq);

            if (x == NULL)
                break;
            take(x);
            popped++;
        }
    }
    for (;;) {
        void *x = fut__deque_pop(&dq);

        if (x == NULL)
            break;
        take(x);
        popped++;
    }
    return popped;
}

int main(int argc, char **argv)
{
    unsigned nthieves = 2, i;
    uint64_t popped, lost = 0, dup = 0, k;
    pthread_t *tids;

    nitems = 200000;
    if (argc > 1 && strcmp(argv[1], "--long") == 0) {
        nitems = 10000000;
    } else {
        if (argc > 1)
            nthieves = (unsigned)strtoul(argv[1], NULL, 10);
        if (argc > 2)
            nitems = strtoull(argv[2], NULL, 10);
    }
    if (nthieves == 0 || nitems == 0) {
        fprintf(stderr, "usage: deque_stress [thieves>0 [items>0]] | --long\n");
        return 2;
    }
    taken = calloc(nitems, sizeof *taken);
    tids = calloc(nthieves, sizeof *tids);
    if (taken == NULL || tids == NULL || !fut__deque_init(&dq, slots, CAPACITY))
        return 2;
    for (i = 0; i < nthieves; i++)
        if (pthread_create(&tids[i], NULL, thief, NULL) != 0)
            return 2;
    while (ck_pr_load_uint(&ready) < nthieves)
        ck_pr_stall();
    popped = owner();
    ck_pr_store_int(&done, 1);
    for (i = 0; i < nthieves; i++)
        pthread_join(tids[i], NULL);
    if (corrupt) {
        /* Items never pushed count as lost; report the corruption too. */
        printf("deque_stress: deque corrupted (top > bottom)\n");
    }
    for (k = 0; k < nitems; k++) {
        if (taken[k] == 0)
            lost++;
        else if (taken[k] > 1)
            dup += taken[k] - 1;
    }
    printf("deque_stress: thieves=%u items=%llu popped=%llu stolen=%llu "
           "full=%llu drained=%llu lost=%llu duplicated=%llu %s\n",
           nthieves, (unsigned long long)nitems, (unsigned long long)popped,
           (unsigned long long)stolen_total, (unsigned long long)full,
           (unsigned long long)drained, (unsigned long long)lost,
           (unsigned long long)dup,
           !corrupt && lost == 0 && dup == 0 ? "OK" : "FAIL");
    free(taken);
    free(tids);
    return !corrupt && lost == 0 && dup == 0 ? 0 : 1;
}
