/* libfut — executor handles: creation, the guard around calls into an
 * executor's ops, destruction, names and stats.
 *
 * PROTOCOL (why destroy cannot pull an executor from under a submit)
 *
 * An executor's IMPL dies in ops->destroy.  A thread of the executor itself
 * (fut__tls.cur_ex == ex) may call into its ops without ceremony: destroy
 * joins those threads before freeing anything, and refuses to run on one
 * of them (FUT_EDEADLK, asked of ops->owns_thread under the guard).  Any
 * other thread brackets its call with enter() and leave(): it writes EX
 * into its own per-thread slot, then reads closed; destroy writes closed,
 * then waits until no slot holds EX:
 *
 *     caller:   slot = ex;  BARRIER;  if closed: refuse;  else call ops;
 *               slot = NULL (release)
 *     destroy:  closed = 1 (seq_cst);  MEMBARRIER;  wait until no slot
 *               holds ex (acquire);  ops->destroy(impl);  gone = 1 (release)
 *
 * Either the caller's store comes first (destroy waits for it) or the
 * store of closed does (the caller sees it and refuses).  BARRIER is a
 * compiler barrier where membarrier(2) is available and a fence elsewhere;
 * lib/guard.c proves it, and has the counter used beyond a slot's depth.
 * Nothing is shared between submitters: no locked instruction, no line
 * they all write (the guard was once a shared inflight counter).
 *
 * THE HANDLE OUTLIVES DESTROY (issue 12, item 5).  The struct itself is
 * never freed: once destroyed it stays closed and gone for the rest of the
 * process, so any later call through the handle, from any thread, finds
 * closed set and refuses (FUT_ESHUTDOWN, FUT_EALREADY, or NULL from
 * fut_executor_impl) instead of touching freed memory.  This is what makes
 * "submit until FUT_ESHUTDOWN while another thread destroys" safe: such a
 * submitter cannot tell "destroy began" from "destroy returned", and its
 * next call may come any time later.  No weaker rule is sound: the library
 * cannot see when the last copy of a handle in the application's memory is
 * dropped (a thread preempted with the pointer in a register calls in
 * seconds later), so "free when no thread can still see it" has no point
 * at which it becomes true.  The price is one small struct per executor
 * ever made (sizeof(struct fut_executor), 64 bytes, plus malloc's header),
 * taken from malloc rather than the application's allocator (it would
 * never be given back) and listed in g_handles, so leak checkers see it
 * reachable.  What is read from the application's OPS outside the guard
 * (timers or not, stats or not, the name) is copied into the struct at
 * creation: OPS may be gone once destroy returned, the handle is not.  It
 * also means nothing counts references to the struct: a pending
 * continuation or timer needs no hold on it (fut__ex_retain and
 * fut__ex_release are empty; internal.h). */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guard.h"

/* Every handle ever made (see the protocol), linked through next_handle.
 * Only pushed, once per handle; nobody walks it but a leak checker. */
static _Atomic(fut_executor_t *) g_handles;

static void list_handle(fut_executor_t *ex)
{
    /* Relaxed: the list is never read by the library. */
    fut_executor_t *head =
        atomic_load_explicit(&g_handles, memory_order_relaxed);
    do
        ex->next_handle = head;
    while (!atomic_compare_exchange_weak_explicit(
        &g_handles, &head, ex, memory_order_relaxed, memory_order_relaxed));
}

int fut_executor_create(fut_executor_t **out, const fut_executor_ops_t *ops,
                        void *impl)
{
    if (!out || !ops || !ops->submit || !ops->destroy ||
        (ops->timer_start && !ops->timer_cancel))
        return FUT_EINVAL;
    /* malloc, not the application's allocator: the struct is never freed
     * (see the protocol). */
    fut_executor_t *ex = malloc(sizeof *ex);
    if (!ex)
        return FUT_ENOMEM;
    memset(ex, 0, sizeof *ex);
    ex->ops = ops;
    ex->impl = impl;
    /* What is read without the guard, copied: OPS may be gone once destroy
     * returned (the handle is not). */
    ex->has_timers = ops->timer_start != NULL;
    ex->has_stats = ops->stats != NULL;
    ex->has_fd_ready = ops->fd_ready != NULL;
    fut__guard_init(); /* before any handle exists: guard.c */
    snprintf(ex->name, sizeof ex->name, "%s", ops->name ? ops->name : "custom");
    atomic_init(&ex->inflight, 0);
    atomic_init(&ex->closed, 0);
    atomic_init(&ex->gone, 0);
    atomic_init(&ex->forked, 0);
    list_handle(ex);
    fut__ex_register(ex); /* fork.c: the child knows it is the parent's */
    *out = ex;
    return 0;
}

void *fut_executor_impl(const fut_executor_t *ex, const fut_executor_ops_t *ops)
{
    /* Acquire: pairs with the release store of gone in destroy.  A handle
     * kept alive by pending futures after its destroy returned answers
     * NULL, so executors' own entry points refuse it (FUT_EINVAL) instead
     * of touching the freed IMPL. */
    if (!ex || ex->ops != ops ||
        atomic_load_explicit(&((fut_executor_t *)ex)->gone,
                             memory_order_acquire))
        return NULL;
    return ex->impl;
}

/* The counter, for a bracket the slot cannot take (guard.c). */
static bool enter_counted(fut_executor_t *ex)
{
    /* seq_cst: pairs with the seq_cst store of closed in destroy. */
    atomic_fetch_add_explicit(&ex->inflight, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&ex->closed, memory_order_seq_cst)) {
        atomic_fetch_sub_explicit(&ex->inflight, 1, memory_order_release);
        return false;
    }
    return true;
}

static inline bool enter(fut_executor_t *ex)
{
    struct fut_tls *t = &fut__tls;
    if (ex->is_static || t->cur_ex == ex)
        return true;
    struct fut_guard_slot *s = t->gslot;
    if (FUT__UNLIKELY(!s) && !(s = fut__guard_slot_get(t)))
        return enter_counted(ex);
    unsigned d = s->depth;
    if (FUT__UNLIKELY(d == FUT__GUARD_DEPTH))
        return enter_counted(ex);
    /* Relaxed store, barrier, relaxed load (seq_cst both under TSan,
     * guard.h): the submitter's side of guard.c's asymmetric Dekker; the
     * partner is fut__guard_close's membarrier (or fence) and its scan. */
    atomic_store_explicit(&s->held[d], ex, FUT__GUARD_MO);
    fut__guard_fence();
    if (FUT__UNLIKELY(atomic_load_explicit(&ex->closed, FUT__GUARD_MO))) {
        /* Relaxed: nothing of IMPL was touched. */
        atomic_store_explicit(&s->held[d], NULL, memory_order_relaxed);
        return false;
    }
    s->depth = d + 1;
    return true;
}

static inline void leave(fut_executor_t *ex)
{
    struct fut_tls *t = &fut__tls;
    if (ex->is_static || t->cur_ex == ex)
        return;
    struct fut_guard_slot *s = t->gslot;
    /* The bracket on top of the slot is ours when it names EX (guard.c:
     * brackets nest LIFO); else enter_counted took it. */
    if (FUT__LIKELY(s && s->depth)) {
        unsigned d = s->depth - 1;
        /* Relaxed: our own store. */
        if (atomic_load_explicit(&s->held[d], memory_order_relaxed) == ex) {
            s->depth = d;
            /* Release: pairs with the acquire scan in fut__guard_close, so
             * our use of IMPL happens before it is freed. */
            atomic_store_explicit(&s->held[d], NULL, memory_order_release);
            return;
        }
    }
    /* Release: pairs with destroy's acquire load of inflight. */
    atomic_fetch_sub_explicit(&ex->inflight, 1, memory_order_release);
}

/* A submit bracketed by enter and leave, for the cases the fast path
 * below leaves out. */
static __attribute__((noinline)) int submit_bracketed(fut_executor_t *ex,
                                                      fut_task_t *t)
{
    if (FUT__UNLIKELY(!enter(ex)))
        return FUT_ESHUTDOWN;
    int rc = ex->ops->submit(ex->impl, t);
    leave(ex);
    return rc;
}

/* The hot bracket (every fut_post, fut_async and continuation handed over
 * from a foreign thread): enter and leave fused for a thread whose slot
 * has room, the slot and depth kept across the call instead of re-derived
 * by leave.  The accesses and their partners are enter's and leave's. */
int fut__ex_submit(fut_executor_t *ex, fut_task_t *t)
{
    struct fut_tls *tls = &fut__tls;
    if (ex->is_static || tls->cur_ex == ex) /* no guard: enter's rule */
        return ex->ops->submit(ex->impl, t);
    struct fut_guard_slot *s = tls->gslot;
    if (FUT__UNLIKELY(!s || s->depth == FUT__GUARD_DEPTH))
        return submit_bracketed(ex, t);
    unsigned d = s->depth;
    /* As in enter: relaxed store, barrier, relaxed load (guard.c). */
    atomic_store_explicit(&s->held[d], ex, FUT__GUARD_MO);
    fut__guard_fence();
    if (FUT__UNLIKELY(atomic_load_explicit(&ex->closed, FUT__GUARD_MO))) {
        /* Relaxed: nothing of IMPL was touched. */
        atomic_store_explicit(&s->held[d], NULL, memory_order_relaxed);
        return FUT_ESHUTDOWN;
    }
    s->depth = d + 1;
    int rc = ex->ops->submit(ex->impl, t);
    s->depth = d; /* brackets inside the submit nest LIFO: back to d + 1 */
    /* As in leave: release, pairs with the acquire scan in
     * fut__guard_close. */
    atomic_store_explicit(&s->held[d], NULL, memory_order_release);
    return rc;
}

int fut__ex_timer_start(fut_executor_t *ex, fut_timer_t *t)
{
    if (!fut__ex_has_timers(ex))
        return FUT_EINVAL;
    if (!enter(ex))
        return FUT_ESHUTDOWN;
    int rc = ex->ops->timer_start(ex->impl, t);
    leave(ex);
    return rc;
}

void fut__ex_timer_cancel(fut_executor_t *ex, fut_timer_t *t)
{
    if (!enter(ex)) {
        /* The executor's destroy drops every timer it holds; the second
         * hold the cancel would have given is ours to end. */
        fut_timer_drop(t);
        return;
    }
    ex->ops->timer_cancel(ex->impl, t);
    leave(ex);
}

int fut_executor_enter(fut_executor_t *ex, const fut_executor_ops_t *ops,
                       void **impl)
{
    if (!ex || ex->ops != ops || !impl)
        return FUT_EINVAL;
    if (!enter(ex))
        return FUT_ESHUTDOWN;
    /* enter() lets EX's own threads through without looking at closed;
     * IMPL is theirs until destroy joins them, but not after it returned.
     * Acquire: pairs with the release store of gone in destroy. */
    if (atomic_load_explicit(&ex->gone, memory_order_acquire)) {
        leave(ex);
        return FUT_ESHUTDOWN;
    }
    *impl = ex->impl;
    return 0;
}

void fut_executor_leave(fut_executor_t *ex)
{
    leave(ex);
}

/* FUT_EDEADLK when the calling thread is one of EX's own: inside one of its
 * tasks, or, as ops->owns_thread says, one of its threads whatever runs
 * there (a pool worker inside a fut_inline() continuation or a group child,
 * the thread inside a loop's run).  Destroy would join or free that very
 * thread.  The question goes to IMPL inside the guard, so a destroy begun
 * meanwhile on another thread cannot free IMPL under it: that one answers
 * FUT_EALREADY here.  0 otherwise. */
static int on_own_thread(fut_executor_t *ex)
{
    if (fut__tls.cur_ex == ex)
        return FUT_EDEADLK;
    if (!enter(ex))
        return FUT_EALREADY;
    bool own = ex->ops->owns_thread && ex->ops->owns_thread(ex->impl);
    leave(ex);
    return own ? FUT_EDEADLK : 0;
}

int fut_executor_destroy(fut_executor_t *ex)
{
    if (!ex || ex->is_static)
        return FUT_EINVAL;
    /* Relaxed: set in this very process's fork child handler, if at all.
     * Before the own-thread question: a child's copy is closed already. */
    if (FUT__UNLIKELY(atomic_load_explicit(&ex->forked, memory_order_relaxed)))
        return fut__ex_destroy_forked(ex); /* a child's copy: fork.c */
    int own = on_own_thread(ex);
    if (own)
        return own;
    /* seq_cst: with the load of inflight below, destroy's side of the
     * counted brackets' Dekker pair (enter_counted: a seq_cst increment,
     * then a seq_cst load of closed).  The slots' side needs only the
     * exchange's atomicity: fut__guard_close's barrier comes after it. */
    if (atomic_exchange_explicit(&ex->closed, 1, memory_order_seq_cst))
        return FUT_EALREADY;
    fut__ex_unregister(ex);
    /* seq_cst, not acquire: an acquire load is outside C11's single total
     * order, so nothing would stop it reading 0 from before the increment
     * of a bracket that read closed == 0 (x86's exchange is a full barrier
     * and hides that; an RCpc load after a store-release on AArch64, or
     * POWER, need not).  Also acquire: pairs with leave()'s release
     * decrement, so the bracket's use of IMPL happens before its destroy. */
    while (atomic_load_explicit(&ex->inflight, memory_order_seq_cst) != 0)
        sched_yield();
    fut__guard_close(ex); /* the slots' brackets (guard.c) */
    ex->ops->destroy(ex->impl);
    atomic_store_explicit(&ex->gone, 1, memory_order_release);
    fut__fibers_shutdown(ex); /* the last run of suspended fibers */
    /* The struct stays: closed and gone for good (see the protocol). */
    return 0;
}

const char *fut_executor_name(const fut_executor_t *ex)
{
    if (!ex)
        return "(null)";
    if (ex->is_static)
        return ex->ops->name;
    return ex->name;
}

int fut_executor_stats(const fut_executor_t *cex, fut_stats_t *out)
{
    fut_executor_t *ex = (fut_executor_t *)cex;
    if (!ex || !out)
        return FUT_EINVAL;
    memset(out, 0, sizeof *out);
    if (ex->is_static ? !ex->ops->stats : !ex->has_stats)
        return 0;
    if (!enter(ex))
        return FUT_ESHUTDOWN;
    int rc = ex->ops->stats(ex->impl, out);
    leave(ex);
    return rc;
}

fut_executor_t *fut_executor_current(void)
{
    return fut__tls.cur_ex;
}
