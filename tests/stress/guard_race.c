/* Stress for the guard around foreign calls into an executor's ops
 * (lib/guard.c): destroy must never run ops->destroy while another thread
 * is inside one of its ops.
 *
 *   guard_race [rounds [spin]]   defaults: 500 rounds, spin 8 (quick)
 *   guard_race --long            100000 rounds
 *
 * Each round makes a custom executor whose IMPL records its own death
 * (ops->destroy sets DEAD and frees nothing, so a late call is seen, not a
 * crash).  A submitter thread calls fut_post on it as fast as it can, until
 * FUT_ESHUTDOWN; the main thread, once the submitter is in its loop,
 * destroys it.  Its submit reads DEAD when it starts, then SPIN times more
 * as if working on IMPL: any of those reads that sees DEAD is a call into
 * freed IMPL (a violation).  Also, every fut_post that returned 0 must
 * have reached submit exactly once.
 *
 * The race it aims at is the guard's store-buffer window: a submitter
 * writes its slot, reads closed == 0 while its store still sits in the
 * CPU's store buffer, and destroy, scanning, does not see the slot.  Built
 * with -DFUT_GUARD_BROKEN_FENCE (no membarrier, no fence) the library
 * fails this test only now and then (docs/BENCHMARKS.md, "fut_post": 1
 * run in 6 under load); correct builds never do.  guard_litmus.c is the
 * stress that aims at that window and catches the broken build every
 * run; this one keeps the end-to-end check (every accepted post reached
 * submit once).  Each round leaves its handle behind (handles
 * are never freed: about 100 bytes each).
 * Exit status 0 on success; 1 with the count of violations. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fut.h>

struct impl {
    atomic_int dead;
    atomic_long submits;
};

static int spin = 8;
static atomic_long violations;

static int ex_submit(void *p, fut_task_t *t)
{
    struct impl *im = p;
    /* Relaxed, all: DEAD is a flag that destroy sets; any sighting of it
     * inside the call is the violation, however late. */
    int dead = atomic_load_explicit(&im->dead, memory_order_relaxed);
    for (int i = 0; i < spin; i++)
        dead |= atomic_load_explicit(&im->dead, memory_order_relaxed);
    if (dead)
        atomic_fetch_add_explicit(&violations, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&im->submits, 1, memory_order_relaxed);
    fut_task_drop(t); /* a post: freed, its function never called */
    return 0;
}

static void ex_destroy(void *p)
{
    struct impl *im = p;
    atomic_store_explicit(&im->dead, 1, memory_order_relaxed);
}

static const fut_executor_ops_t ops = {
    .name = "guard_race", .submit = ex_submit, .destroy = ex_destroy};

static void never(void *arg)
{
    (void)arg;
    abort(); /* every post is dropped */
}

/* The round's executor, handed to the submitter; NULL between rounds. */
static _Atomic(fut_executor_t *) cur;
static atomic_long posted; /* this round's successful posts */
static atomic_int done;

static void *submitter(void *arg)
{
    (void)arg;
    /* Acquire: pairs with the release stores of CUR and DONE in main. */
    while (!atomic_load_explicit(&done, memory_order_acquire)) {
        fut_executor_t *ex = atomic_load_explicit(&cur, memory_order_acquire);
        if (!ex) {
            sched_yield();
            continue;
        }
        long n = 0;
        while (fut_post(ex, never, NULL) == 0)
            /* Release: main reads it (acquire) after the destroy. */
            atomic_store_explicit(&posted, ++n, memory_order_release);
        /* Refused: wait for main to take the handle away. */
        while (atomic_load_explicit(&cur, memory_order_acquire) == ex)
            sched_yield();
    }
    return NULL;
}

/* A late call was seen: stop (the counts no longer match, and a late
 * call may still be on its way).  Relaxed: a flag. */
static bool broken(void)
{
    return atomic_load_explicit(&violations, memory_order_relaxed) != 0;
}

int main(int argc, char **argv)
{
    long rounds = 500;
    if (argc > 1 && strcmp(argv[1], "--long") == 0)
        rounds = 100000;
    else if (argc > 1)
        rounds = strtol(argv[1], NULL, 10);
    if (argc > 2)
        spin = atoi(argv[2]);
    if (rounds <= 0 || spin < 0) {
        fprintf(stderr, "usage: guard_race [rounds>0 [spin>=0]] | --long\n");
        return 2;
    }
    pthread_t th;
    if (pthread_create(&th, NULL, submitter, NULL) != 0)
        return 2;
    long r;
    for (r = 0; r < rounds; r++) {
        struct impl *im = calloc(1, sizeof *im);
        fut_executor_t *ex;
        if (!im || fut_executor_create(&ex, &ops, im) != 0)
            return 2;
        atomic_store_explicit(&posted, 0, memory_order_relaxed);
        atomic_store_explicit(&cur, ex, memory_order_release);
        /* Destroy once the submitter is posting, at a varying point. */
        while (atomic_load_explicit(&posted, memory_order_acquire) <
                   1 + r % 7 &&
               !broken())
            sched_yield();
        if (fut_executor_destroy(ex) != 0)
            return 2;
        if (broken())
            break;
        atomic_store_explicit(&cur, NULL, memory_order_release);
        /* The submitter stops at its first refusal: wait for it to see
         * CUR change, so POSTED is final. */
        while (atomic_load_explicit(&posted, memory_order_acquire) !=
                   atomic_load_explicit(&im->submits, memory_order_acquire) &&
               !broken())
            sched_yield();
        if (broken())
            break;
        /* Every call into IMPL has counted itself: it may go.  (With the
         * broken fence a late call may still be reading it; that build is
         * not run under ASan.) */
        free(im);
    }
    long v = atomic_load_explicit(&violations, memory_order_relaxed);
    if (v) {
        /* The submitter may be stuck on the broken round: no join. */
        fprintf(stderr,
                "guard_race: round %ld: a call into ops after "
                "destroy began\n",
                r);
        exit(1);
    }
    atomic_store_explicit(&done, 1, memory_order_release);
    pthread_join(th, NULL);
    printf("guard_race rounds=%ld spin=%d violations=0\n", rounds, spin);
    printf("guard_race: ok\n");
    return 0;
}
