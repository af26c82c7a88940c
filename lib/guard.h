/* libfut — the guard that keeps an executor's destroy off a foreign
 * thread's call into its ops: the per-thread slots (the protocol is at the
 * top of lib/guard.c).  Internal: lib/executor.c's enter and leave are
 * its fast path, lib/guard.c has the rest. */
#ifndef FUT_GUARD_H
#define FUT_GUARD_H

#include "internal.h"

/* Guards a thread holds at once through its slot; deeper ones (a submit
 * whose ops submit to another executor, four levels down) use the
 * executor's inflight counter instead. */
#define FUT__GUARD_DEPTH 4

/* One per thread that ever called into a foreign executor's ops, reused
 * after the thread exits, never freed (a destroy may be scanning it). */
struct fut_guard_slot {
    /* The executors this thread is inside, innermost at DEPTH - 1.  Stored
     * by the owner (relaxed in, release out), scanned by destroy. */
    _Alignas(64) _Atomic(fut_executor_t *) held[FUT__GUARD_DEPTH];
    unsigned depth;    /* how many of HELD are in use: owner only */
    _Atomic int owned; /* a live thread has it: CAS to take, store to give */
    struct fut_guard_slot *next; /* g_slots: push-only, set before the push */
};

/* Nonzero once membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) is registered
 * and works: a submitter then needs only a compiler barrier.  Set once, in
 * fut__guard_init, before the first handle exists (fut_executor_create);
 * a fork child keeps it, as it keeps the registration (the kernel's is
 * the address space's: copied at fork, dropped only by exec).  Relaxed
 * reads: see guard.c's essay. */
extern _Atomic int fut__guard_asym;

/* This thread's slot, taken on its first guarded call; NULL on a thread
 * that is exiting or could not get one (it then uses the counter). */
struct fut_guard_slot *fut__guard_slot_get(struct fut_tls *t);

/* Once per process, from fut_executor_create: register membarrier. */
void fut__guard_init(void);

/* fut_executor_destroy, after its seq_cst store of ex->closed: the
 * barrier, then wait until no slot holds EX. */
void fut__guard_close(fut_executor_t *ex);

/* fork child: the other threads' slots are free again (membarrier's
 * registration is inherited: nothing to redo). */
void fut__guard_fork_child(void);

/* The orderings of the submitter's store of its slot and load of closed,
 * and of destroy's scan.  ThreadSanitizer does not take fences (gcc:
 * -Werror=tsan) and cannot see what membarrier does, so under it the
 * guard is plain seq_cst Dekker instead: both accesses seq_cst, against
 * destroy's seq_cst exchange of closed and seq_cst loads of the slots
 * (guard.c).  Elsewhere relaxed around the barrier below, and acquire for
 * the scan. */
#ifdef FUT_TSAN
#define FUT__GUARD_MO memory_order_seq_cst
#define FUT__GUARD_SCAN_MO memory_order_seq_cst
#else
#define FUT__GUARD_MO memory_order_relaxed
#define FUT__GUARD_SCAN_MO memory_order_acquire
#endif

/* Between the store of the slot and the load of closed (see guard.c). */
static inline void fut__guard_fence(void)
{
#if defined(FUT_TSAN)
    /* Nothing: the accesses themselves are seq_cst (FUT__GUARD_MO). */
#elif !defined(FUT_GUARD_BROKEN_FENCE)
    /* Relaxed: set before any handle exists (see fut__guard_asym). */
    if (FUT__LIKELY(
            atomic_load_explicit(&fut__guard_asym, memory_order_relaxed))) {
        /* A compiler barrier: the store stays before the load in the
         * program; membarrier in fut__guard_close does the CPU's part. */
        atomic_signal_fence(memory_order_seq_cst);
        return;
    }
    /* No membarrier: a full fence.  Pairs with the seq_cst fence in
     * fut__guard_close. */
    atomic_thread_fence(memory_order_seq_cst);
#else
    /* Broken on purpose (tests/stress/guard_race.c must catch it): the
     * compiler keeps the order, the CPU's store buffer does not. */
    atomic_signal_fence(memory_order_seq_cst);
#endif
}

#endif
