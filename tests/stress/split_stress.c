/* Stress for the split deque of task-group children (executors/pool/split.h):
 * one owner pushes and pops in random bursts (as nested spawns and waits
 * do), THIEVES steal; every item must be taken exactly once, by the owner
 * (a LOCAL pop) or by a thief, and every STOLEN pop must match an item a
 * thief took.
 *
 *   split_stress [thieves [items]]   defaults 2 and 300000 (quick)
 *   split_stress --long              2 thieves, 5 million items
 *
 * Built with -DFUT_SPLIT_BROKEN_FENCE (Lace's shrink without its mfence)
 * it is expected to fail: owner and thief both take the same slot, and
 * then either the item runs twice or the owner, finding the shared part
 * empty, waits for a thief's mark that never comes (the watchdog reports
 * that as "stuck" after 30 s without progress).
 * Exit status 0 when no item was lost or duplicated, 1 otherwise. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../executors/pool/split.h"

#define CAPACITY 512

static fut__split_t dq;
static fut_group_task_t *slots[CAPACITY];
static fut_group_task_t *items;
static uint32_t *taken; /* taken[i]: how many times item i was taken */
static uint64_t nitems;
static int done;
static unsigned ready;
static uint64_t stolen_total, stolen_pops;
static uint64_t progress; /* items pushed so far, for the watchdog */

static void watchdog(int sig)
{
    static uint64_t last = UINT64_MAX;
    static const char msg[] =
        "split_stress: stuck: no progress for 30 s (the owner waits for a "
        "slot no thief took)\n";

    (void)sig;
    if (ck_pr_load_64(&progress) == last) {
        (void)!write(2, msg, sizeof msg - 1);
        _exit(1);
    }
    last = ck_pr_load_64(&progress);
    alarm(30);
}

static void take(fut_group_task_t *t)
{
    ck_pr_inc_32(&taken[t - items]);
}

static void *thief(void *arg)
{
    uint64_t n = 0;

    (void)arg;
    ck_pr_inc_uint(&ready);
    for (;;) {
        bool lost = false;
        fut_group_task_t *t = fut__split_steal(&dq, &lost);

        if (t != NULL) {
            take(t);
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

static uint64_t rng = 0x2545F4914F6CDD1Dull;

static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

static void pop_one(void)
{
    fut_group_task_t *t;
    bool published = false;

    if (fut__split_pop(&dq, &t, &published) == FUT__SPLIT_LOCAL)
        take(t);
    else
        stolen_pops++;
}

int main(int argc, char **argv)
{
    unsigned nthieves = 2, i;
    pthread_t th[16];
    uint64_t next = 0, bad = 0, dup = 0, lost = 0;

    nitems = 300000;
    if (argc > 1 && strcmp(argv[1], "--long") == 0) {
        nitems = 5000000;
    } else {
        if (argc > 1)
            nthieves = (unsigned)atoi(argv[1]);
        if (argc > 2)
            nitems = strtoull(argv[2], NULL, 10);
    }
    if (nthieves < 1 || nthieves > 16 || nitems == 0) {
        fprintf(stderr, "usage: split_stress [thieves 1-16 [items]]\n");
        return 2;
    }
    items = calloc(nitems, sizeof *items);
    taken = calloc(nitems, sizeof *taken);
    if (items == NULL || taken == NULL)
        return 2;
    fut__split_init(&dq, slots, CAPACITY);
    signal(SIGALRM, watchdog);
    alarm(30);
    for (i = 0; i < nthieves; i++)
        if (pthread_create(&th[i], NULL, thief, NULL) != 0)
            return 2;
    while (ck_pr_load_uint(&ready) < nthieves)
        ck_pr_stall();

    /* Bursts: push a few (a spawn loop), pop some back (a wait), as nested
     * groups do; the depth wanders so every part of the deque is used. */
    while (next < nitems) {
        unsigned burst = 1 + rnd(8), k;

        for (k = 0; k < burst && next < nitems && dq.o.head < CAPACITY; k++) {
            if (fut__split_push(&dq, &items[next]) < 0)
                break;
            next++;
            ck_pr_store_64(&progress, next);
        }
        /* Often a short pause: thieves ask for work (movesplit), the next
         * push or pop publishes some, they steal it, and the owner's pops
         * come down into the shared part while they do: the races of
         * interest (shrink against steal). */
        if (rnd(4) == 0)
            for (k = rnd(400); k > 0; k--)
                ck_pr_stall();
        for (k = rnd(burst + 2); k > 0 && dq.o.head > 0; k--)
            pop_one();
    }
    while (dq.o.head > 0)
        pop_one();
    ck_pr_store_64(&progress, next + 1);
    ck_pr_store_int(&done, 1);
    for (i = 0; i < nthieves; i++)
        pthread_join(th[i], NULL);

    for (uint64_t j = 0; j < nitems; j++) {
        if (taken[j] == 0)
            lost++;
        else if (taken[j] > 1)
            dup++;
    }
    if (stolen_pops != stolen_total)
        bad++;
    printf("split_stress: %llu items, %u thieves: %llu stolen, %llu stolen "
           "pops, %llu lost, %llu duplicated\n",
           (unsigned long long)nitems, nthieves,
           (unsigned long long)stolen_total, (unsigned long long)stolen_pops,
           (unsigned long long)lost, (unsigned long long)dup);
    free(items);
    free(taken);
    return lost || dup || bad ? 1 : 0;
}
