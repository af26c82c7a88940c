/* libfut — the guard around a foreign thread's call into an executor's
 * ops, without a shared counter.
 *
 * PROTOCOL (lib/executor.c's enter and leave are the submitter's side)
 *
 * An executor's IMPL dies in ops->destroy, and any thread may be calling
 * one of its ops at that moment (a submit, a timer start, stats).  Such a
 * call is bracketed: the calling thread writes the executor into its own
 * slot (one per thread, never shared, so no locked instruction and no
 * cache line that other submitters write), then reads ex->closed; destroy
 * writes closed, then reads every slot:
 *
 *     submitter:  held[d] = ex (relaxed);  BARRIER;  if closed (relaxed):
 *                 held[d] = NULL, refuse;  else call ops ...;
 *                 held[d] = NULL (release)
 *     destroy:    closed = 1 (seq_cst exchange);  MEMBARRIER;
 *                 for each slot, each d: wait while held[d] == ex (acquire);
 *                 ops->destroy(impl)
 *
 * It is Dekker's pattern (store mine, load yours) made asymmetric, as in
 * liburcu and folly's asymmetric barrier: the submitter's BARRIER is only
 * a compiler barrier (atomic_signal_fence), so its store may still sit in
 * the CPU's store buffer while its load runs; destroy's MEMBARRIER is
 * membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED), which returns only once
 * every other running thread of the process has executed a full memory
 * barrier (a thread not running has passed one at its context switch).
 * That barrier falls somewhere in each submitter's program:
 *   - before its load of closed: the load comes after destroy's store of
 *     closed was visible everywhere, so it sees 1 and refuses;
 *   - after its load: its store of held, earlier in program order, was
 *     drained by the barrier, so destroy's scan sees it and waits for the
 *     release store of NULL, which orders the call's use of IMPL before
 *     the acquire load that ends the wait, hence before ops->destroy.
 * Either way destroy never frees IMPL under a call.  (The same holds for
 * the slot itself: a thread takes and publishes its slot, below, before
 * it stores into it, so the scan that sees the store sees the slot.)
 *
 * Without membarrier (an old kernel, seccomp, MEMBARRIER_CMD_QUERY without
 * PRIVATE_EXPEDITED, registration refused), fut__guard_asym stays 0 and
 * BARRIER is a seq_cst fence (mfence: still no shared line, no contention)
 * paired with the seq_cst fence in fut__guard_close: C11's fence rule
 * gives the same either-or.  The choice is made once, in fut__guard_init,
 * before any handle exists, so every thread that can reach a handle sees
 * it (pthread_once and the hand-over of the handle pointer order it).
 *
 * Why: the old guard was one shared inflight counter per executor, an add
 * and a sub (two locked instructions on one line written by every
 * submitter and the executor) per submit: a shared counter on the hot
 * path.  Now a submit from another thread costs two plain stores and a
 * load on lines no other thread writes; destroy pays one membarrier (a few
 * microseconds of IPIs) and a walk of the slots.
 *
 * Nesting.  A thread may be inside several executors' ops at once (a
 * custom submit that submits elsewhere): HELD is a stack of
 * FUT__GUARD_DEPTH entries, used in LIFO order.  Beyond that depth, on a
 * thread that has no slot (exiting, or no memory for one) the old counter
 * takes over: inflight += 1 (seq_cst), check closed (seq_cst), ...,
 * inflight -= 1 (release); destroy, after its seq_cst exchange of closed,
 * waits for inflight == 0 (seq_cst: plain Dekker, every access in C11's
 * single order; an acquire load there could miss the increment)
 * before its scan.  leave() tells the two apart by the top of the stack:
 * a slot entry is on top exactly when it is the innermost bracket of the
 * same executor (LIFO); mistaking one bracket of EX for another of EX
 * only swaps which of the two keeps the destroy off, never both.
 *
 * A bracket must end on the thread that began it (not across a fiber's
 * wait, which may resume elsewhere): executor.h says so.
 *
 * Slots.  Taken on a thread's first guarded call (a CAS on a free one's
 * OWNED, else a new one pushed on g_slots), given back by a pthread key
 * destructor at thread exit (with nothing held: brackets are short).
 * Never freed: a destroy may be walking the list.  There are as many as
 * threads ever made guarded calls at once.  A thread that is exiting (its
 * destructor ran) uses the counter from then on.  In a fork child only the
 * forking thread exists: every other slot is free again.
 *
 * Under ThreadSanitizer (which takes no fences and cannot see membarrier)
 * the guard is the symmetric seq_cst Dekker instead: guard.h.
 *
 * Build with -DFUT_GUARD_BROKEN_FENCE to drop the submitter's CPU barrier
 * (a compiler barrier alone, and no membarrier): calls into ops after
 * destroy began then happen.  tests/stress/guard_litmus.c provokes that
 * store-buffer window round after round, and `scons test` runs it twice:
 * against this file (no violation allowed) and as guard_litmus_broken,
 * against this file built with the switch (it must see one). */
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "guard.h"

_Atomic int fut__guard_asym;

/* Every slot ever made, newest first; pushed with a release CAS, walked
 * after an acquire load (the slot's fields are set before its push). */
static _Atomic(struct fut_guard_slot *) g_slots;

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_key_t g_key;
static int g_key_ok;

#ifndef FUT_GUARD_BROKEN_FENCE /* that build never calls it */
static int membarrier(int cmd)
{
    return (int)syscall(SYS_membarrier, cmd, 0, 0);
}
#endif

static void slot_exit(void *arg);

static void init_once(void)
{
    g_key_ok = pthread_key_create(&g_key, slot_exit) == 0;
#ifndef FUT_GUARD_BROKEN_FENCE
    int cmds = membarrier(MEMBARRIER_CMD_QUERY);
    if (cmds > 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
        membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0 &&
        membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0)
        /* Relaxed: published by pthread_once to this thread, and with the
         * first handle to every other (see the essay). */
        atomic_store_explicit(&fut__guard_asym, 1, memory_order_relaxed);
#endif
}

void fut__guard_init(void)
{
    pthread_once(&g_once, init_once);
}

/* A free slot from the list, or a new one pushed on it; NULL without
 * memory. */
static struct fut_guard_slot *slot_take(void)
{
    /* Acquire: pairs with the release CAS below (the slot's fields). */
    struct fut_guard_slot *s =
        atomic_load_explicit(&g_slots, memory_order_acquire);
    for (; s; s = s->next) {
        int zero = 0;
        /* Acquire: pairs with slot_exit's release store (its thread's
         * last stores to HELD happen before our first). */
        if (!atomic_load_explicit(&s->owned, memory_order_relaxed) &&
            atomic_compare_exchange_strong_explicit(&s->owned, &zero, 1,
                                                    memory_order_acquire,
                                                    memory_order_relaxed))
            return s;
    }
    /* libc, never freed (a destroy may be walking the list). */
    void *mem = NULL;
    if (posix_memalign(&mem, 64, sizeof *s) != 0)
        return NULL;
    s = mem;
    for (int d = 0; d < FUT__GUARD_DEPTH; d++)
        atomic_init(&s->held[d], NULL);
    s->depth = 0;
    atomic_init(&s->owned, 1);
    s->next = atomic_load_explicit(&g_slots, memory_order_relaxed);
    /* Release: pairs with the acquire loads of g_slots (slot_take and the
     * scan in fut__guard_close), so S's fields are seen whole. */
    while (!atomic_compare_exchange_weak_explicit(
        &g_slots, &s->next, s, memory_order_release, memory_order_relaxed))
        ;
    return s;
}

struct fut_guard_slot *fut__guard_slot_get(struct fut_tls *t)
{
    if (t->gslot_off)
        return NULL;
    pthread_once(&g_once, init_once);
    struct fut_guard_slot *s = g_key_ok ? slot_take() : NULL;
    if (s && pthread_setspecific(g_key, s) != 0) {
        /* Release: pairs with slot_take's acquire CAS. */
        atomic_store_explicit(&s->owned, 0, memory_order_release);
        s = NULL;
    }
    if (!s)
        t->gslot_off = 1; /* the counter from now on */
    t->gslot = s;
    return s;
}

/* The key's destructor: the exiting thread gives its slot back (it holds
 * nothing: brackets do not span a thread's end) and uses the counter for
 * whatever a later destructor calls. */
static void slot_exit(void *arg)
{
    struct fut_guard_slot *s = arg;
    fut__tls.gslot = NULL;
    fut__tls.gslot_off = 1;
    s->depth = 0;
    /* Release: pairs with the acquire CAS in slot_take. */
    atomic_store_explicit(&s->owned, 0, memory_order_release);
}

void fut__guard_close(fut_executor_t *ex)
{
#if !defined(FUT_GUARD_BROKEN_FENCE) && !defined(FUT_TSAN)
    /* Relaxed: set once before any handle existed (the essay).  (Under
     * TSan the guard is seq_cst Dekker instead: guard.h.) */
    if (atomic_load_explicit(&fut__guard_asym, memory_order_relaxed)) {
        /* The submitters' barrier (the essay).  Registered in init_once,
         * which checked that it works; the registration is the process's
         * for good (a fork child inherits it). */
        (void)membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED);
    } else {
        /* Pairs with the seq_cst fence in fut__guard_fence. */
        atomic_thread_fence(memory_order_seq_cst);
    }
#endif
    /* Acquire: pairs with the release CAS in slot_take. */
    struct fut_guard_slot *s =
        atomic_load_explicit(&g_slots, memory_order_acquire);
    for (; s; s = s->next)
        for (int d = 0; d < FUT__GUARD_DEPTH; d++)
            /* Acquire (seq_cst under TSan): pairs with the release store
             * of NULL in leave (executor.c): the call's use of IMPL
             * happens before. */
            while (atomic_load_explicit(&s->held[d], FUT__GUARD_SCAN_MO) == ex)
                sched_yield();
}

void fut__guard_fork_child(void)
{
    struct fut_guard_slot *mine = fut__tls.gslot;
    /* Relaxed, all: the child has one thread. */
    struct fut_guard_slot *s =
        atomic_load_explicit(&g_slots, memory_order_relaxed);
    for (; s; s = s->next) {
        if (s == mine)
            continue;
        for (int d = 0; d < FUT__GUARD_DEPTH; d++)
            atomic_store_explicit(&s->held[d], NULL, memory_order_relaxed);
        s->depth = 0;
        atomic_store_explicit(&s->owned, 0, memory_order_relaxed);
    }
}
