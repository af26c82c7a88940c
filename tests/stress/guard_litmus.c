/* Litmus-style stress for the guard's store/barrier/load pair (lib/guard.c,
 * the protocol at its top): the one reordering the guard's barrier exists
 * to forbid, provoked on purpose, round after round.
 *
 *   guard_litmus [rounds [stuff [sweep]]]   defaults 4000, 32, 4096 (quick)
 *   guard_litmus --long                     200000 rounds
 *
 * The race.  A foreign call into an executor's ops stores the executor
 * into the caller's slot, then loads closed; destroy exchanges closed,
 * then scans the slots.  That is the store-buffering litmus test: on x86
 * the caller's store may still sit in its CPU's store buffer when its load
 * runs, so without a barrier both sides read the old value (closed == 0,
 * slot empty), the call goes on into ops and destroy frees IMPL under it.
 * guard_race.c meets that window only by chance (1 run in 6 under load);
 * this program aims at it.  Each round:
 *
 *   main (the destroyer):  make EX over IMPL; write the STUFF lines;
 *                          go = round; wait a swept delay;
 *                          fut_executor_destroy(EX)  (ops->destroy marks
 *                          IMPL dead); wait for the caller's round to end
 *   caller thread:         wait for go; write the STUFF lines;
 *                          fut_executor_stats(EX)  (the guard's enter: the
 *                          slot store, the barrier, the load of closed; its
 *                          ops->stats reads IMPL's dead flag SPIN times)
 *
 * What widens the window, without touching the library:
 *   - the two threads are pinned on two different CPUs (a reordering needs
 *     both running at once; unpinned, the scheduler often stacks them);
 *   - STUFF cache lines, written by both threads every round, so each is
 *     in the other CPU's cache: the caller's stores to them just before
 *     the call each need the line back, and its slot store, which TSO
 *     commits after them, lingers in the store buffer for several
 *     cross-core round trips after its load of closed has run;
 *   - the destroyer's start is swept over SWEEP delay steps (a
 *     pseudo-random number of compiler-barrier iterations each round), so
 *     some rounds put its exchange and scan inside that window.
 * A call that sees IMPL dead inside ops is a violation: with the barrier
 * it cannot happen (destroy waits for the release store that empties the
 * slot, which comes after every read), without it it does.
 *
 * Built as guard_litmus_broken (tests/SConscript: lib/guard.c,
 * lib/executor.c and lib/fork.c compiled with -DFUT_GUARD_BROKEN_FENCE,
 * in every variant but TSan's, whose guard ignores that switch) the
 * expectation is reversed (-DGUARD_LITMUS_EXPECT_CATCH): the program stops
 * at the first violation and exits 0, and exits 1 if ROUNDS went by
 * without one (the stress no longer catches a broken fence, or the
 * process has one CPU only, where no store is ever reordered: it says so
 * on stderr).  Each round leaves its handle behind (handles are never
 * freed: ~80 bytes each).
 *
 * Exit status 0 on success; 1 as said above; 2 on a setup failure. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fut.h>

#define STUFF_MAX 48
#define SPIN 2000 /* reads of DEAD inside ops, ~1-2 us */
#define YIELD_AFTER (1L << 12)

#ifdef GUARD_LITMUS_EXPECT_CATCH
#define NAME "guard_litmus_broken"
#define ROUNDS_QUICK 200000
#else
#define NAME "guard_litmus"
#define ROUNDS_QUICK 4000
#endif
#define ROUNDS_LONG 200000

/* One cache line each, bounced between the two CPUs (see the header).
 * Relaxed stores, all: only where they sit in the store buffer matters. */
static struct {
    _Alignas(64) atomic_long v;
} stuff[STUFF_MAX];
static int nstuff = 32;

struct impl {
    _Alignas(64) atomic_int dead; /* set by ops->destroy */
};
static struct impl impl;

static atomic_long violations;
static atomic_long entered, refused; /* the caller's calls, by outcome */

/* The round the destroyer opened (release) and the caller closed
 * (release); each side's acquire load pairs with the other's store. */
static _Alignas(64) atomic_long go;
static _Alignas(64) atomic_long closed_round;
static _Atomic(fut_executor_t *) cur; /* published by the store of GO */

static int ex_submit(void *p, fut_task_t *t)
{
    (void)p;
    fut_task_drop(t); /* never used: the calls here are stats */
    return 0;
}

static int ex_stats(void *p, fut_stats_t *out)
{
    (void)out;
    int dead = 0;
    /* Relaxed: DEAD is a flag that ops->destroy sets; any sighting of it
     * inside the call is the violation, however late. */
    for (int i = 0; i < SPIN && !dead; i++)
        dead = atomic_load_explicit(&((struct impl *)p)->dead,
                                    memory_order_relaxed);
    if (dead)
        atomic_fetch_add_explicit(&violations, 1, memory_order_relaxed);
    return 0;
}

static void ex_destroy(void *p)
{
    atomic_store_explicit(&((struct impl *)p)->dead, 1, memory_order_relaxed);
}

static const fut_executor_ops_t ops = {.name = NAME,
                                       .submit = ex_submit,
                                       .stats = ex_stats,
                                       .destroy = ex_destroy};

static void write_stuff(long value)
{
    for (int i = 0; i < nstuff; i++)
        atomic_store_explicit(&stuff[i].v, value, memory_order_relaxed);
}

/* Waits until WORD holds VALUE (true) or -1 (false: the other side
 * stopped): spins, as both threads are meant to run at once, yielding now
 * and then so that a descheduled partner gets a CPU. */
static bool wait_for(atomic_long *word, long value)
{
    for (long n = 1;; n++) {
        long v = atomic_load_explicit(word, memory_order_acquire);
        if (v == value || v == -1)
            return v == value;
        if (n % YIELD_AFTER == 0)
            sched_yield();
    }
}

static void pin(int cpu)
{
    if (cpu < 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    (void)pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static int cpus[2] = {-1, -1};
static long rounds = ROUNDS_QUICK;

static void *caller(void *arg)
{
    (void)arg;
    pin(cpus[1]);
    fut_stats_t st;
    for (long r = 1; r <= rounds; r++) {
        if (!wait_for(&go, r)) /* the destroyer stopped: see main */
            break;
        fut_executor_t *ex = atomic_load_explicit(&cur, memory_order_relaxed);
        write_stuff(-r);
        int rc = fut_executor_stats(ex, &st);
        atomic_fetch_add_explicit(rc == 0 ? &entered : &refused, 1,
                                  memory_order_relaxed);
        atomic_store_explicit(&closed_round, r, memory_order_release);
    }
    return NULL;
}

/* The first two CPUs this process may run on, or -1s if only one. */
static void pick_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return;
    int n = 0;
    for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
        if (CPU_ISSET(c, &set))
            cpus[n++] = c;
    if (n < 2)
        cpus[0] = cpus[1] = -1;
}

static bool parse(int argc, char **argv, unsigned *sweep)
{
    if (argc > 1 && strcmp(argv[1], "--long") == 0) {
        rounds = ROUNDS_LONG;
        return argc == 2;
    }
    if (argc > 1)
        rounds = strtol(argv[1], NULL, 10);
    if (argc > 2)
        nstuff = atoi(argv[2]);
    if (argc > 3)
        *sweep = (unsigned)strtoul(argv[3], NULL, 10);
    return rounds > 0 && nstuff >= 0 && nstuff <= STUFF_MAX && *sweep > 0 &&
           argc <= 4;
}

/* One round on the destroyer's side; false on a setup failure. */
static bool destroy_round(long r, unsigned delay)
{
    fut_executor_t *ex;
    /* Relaxed: the last round's caller is done (closed_round, acquire). */
    atomic_store_explicit(&impl.dead, 0, memory_order_relaxed);
    if (fut_executor_create(&ex, &ops, &impl) != 0)
        return false;
    write_stuff(r);
    atomic_store_explicit(&cur, ex, memory_order_relaxed);
    /* Release: the caller's acquire wait_for sees CUR and DEAD. */
    atomic_store_explicit(&go, r, memory_order_release);
    for (unsigned i = 0; i < delay; i++)
        atomic_signal_fence(memory_order_seq_cst);
    if (fut_executor_destroy(ex) != 0)
        return false;
    wait_for(&closed_round, r);
    return true;
}

int main(int argc, char **argv)
{
    unsigned sweep = 4096;
    if (!parse(argc, argv, &sweep)) {
        fprintf(stderr, "usage: %s [rounds>0 [stuff 0..%d [sweep>0]]] | "
                        "--long\n",
                NAME, STUFF_MAX);
        return 2;
    }
    pick_cpus();
    if (cpus[0] < 0) /* no reordering without two CPUs */
        fprintf(stderr, "%s: one CPU only: the race cannot happen here\n",
                NAME);
    pin(cpus[0]);
    pthread_t th;
    if (pthread_create(&th, NULL, caller, NULL) != 0)
        return 2;
    uint32_t seed = 2463534242u;
    long r;
    for (r = 1; r <= rounds; r++) {
        seed ^= seed << 13; /* xorshift32: the round's delay */
        seed ^= seed >> 17;
        seed ^= seed << 5;
        if (!destroy_round(r, seed % sweep))
            return 2;
        /* Relaxed: the caller's count, ordered by closed_round. */
        if (atomic_load_explicit(&violations, memory_order_relaxed))
            break;
    }
    long v = atomic_load_explicit(&violations, memory_order_relaxed);
    if (v) /* the caller stopped at its round; let it out of its wait */
        atomic_store_explicit(&go, -1, memory_order_release);
    pthread_join(th, NULL);
    printf("%s rounds=%ld stuff=%d sweep=%u cpus=%d,%d entered=%ld "
           "refused=%ld violations=%ld\n",
           NAME, v ? r : rounds, nstuff, sweep, cpus[0], cpus[1],
           atomic_load(&entered), atomic_load(&refused), v);
#ifdef GUARD_LITMUS_EXPECT_CATCH
    if (!v) {
        fprintf(stderr, "%s: the broken fence was not caught in %ld rounds\n",
                NAME, rounds);
        return 1;
    }
    printf("%s: ok (caught at round %ld)\n", NAME, r);
    return 0;
#else
    if (v) {
        fprintf(stderr, "%s: round %ld: a call into ops after destroy "
                        "began\n", NAME, r);
        return 1;
    }
    printf("%s: ok\n", NAME);
    return 0;
#endif
}
