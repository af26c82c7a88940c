/* libfut — the event loop's timers: the executor kit's timer heap
 * (fut_kit_timer_heap_t, lib/timer_heap.c) on the loop thread, the
 * hand-off stacks of starts and cancels from other threads, and firing.
 * The protocol (who holds a timer, how a cancel can overtake its start,
 * the stacks' orderings) is in loop.c's essay, "Timers" and "Cross-thread
 * hand-off". */
#include "loop_impl.h"

static void drain_starts(struct loop *l)
{
    /* Relaxed peek, as in drain_tasks. */
    if (!atomic_load_explicit(&l->rstart, memory_order_relaxed))
        return;
    /* Acquire: pairs with the release half of the CAS in loop_timer_start. */
    fut_timer_t *t =
        atomic_exchange_explicit(&l->rstart, NULL, memory_order_acquire);
    REVERSE(fut_timer_t, t, slot);
    while (t) {
        fut_timer_t *next = (fut_timer_t *)(uintptr_t)t->slot;
        t->slot = SIZE_MAX;
        if (fut_kit_timer_heap_push(&l->timers, t))
            fut_timer_fail(t, FUT_ENOMEM); /* no memory for the heap */
        t = next;
    }
}

/* Cancel of T on the loop thread: end the start's hold if T still waits,
 * then the cancel's own hold. */
static void cancel_here(struct loop *l, fut_timer_t *t)
{
    if (!fut_kit_timer_heap_contains(&l->timers, t))
        drain_starts(l); /* its start may still be on the stack */
    if (fut_kit_timer_heap_remove(&l->timers, t))
        fut_timer_drop(t);
    fut_timer_drop(t);
}

static void drain_cancels(struct loop *l)
{
    /* Relaxed peek, as in drain_tasks. */
    if (!atomic_load_explicit(&l->rcancel, memory_order_relaxed))
        return;
    /* Acquire: pairs with the release half of the CAS in loop_timer_cancel. */
    fut_timer_t *t =
        atomic_exchange_explicit(&l->rcancel, NULL, memory_order_acquire);
    while (t) {
        fut_timer_t *next = t->next;
        cancel_here(l, t); /* may free T */
        t = next;
    }
}

int fut__loop_timer_start(void *impl, fut_timer_t *t)
{
    struct loop *l = impl;
    if (fut__loop_tl == l)
        return fut_kit_timer_heap_push(&l->timers, t);
    /* Relaxed: only a first guess for the CAS below. */
    fut_timer_t *h = atomic_load_explicit(&l->rstart, memory_order_relaxed);
    do
        t->slot = (size_t)(uintptr_t)h;
    /* seq_cst: release publishes T (acquire in drain_starts); Dekker. */
    while (!atomic_compare_exchange_weak_explicit(
        &l->rstart, &h, t, memory_order_seq_cst, memory_order_relaxed));
    wake_if_sleeping(l);
    return 0;
}

void fut__loop_timer_cancel(void *impl, fut_timer_t *t)
{
    struct loop *l = impl;
    if (fut__loop_tl == l) {
        cancel_here(l, t);
        return;
    }
    /* Relaxed: only a first guess for the CAS below. */
    fut_timer_t *h = atomic_load_explicit(&l->rcancel, memory_order_relaxed);
    do
        t->next = h;
    /* seq_cst: release publishes T (acquire in drain_cancels); Dekker. */
    while (!atomic_compare_exchange_weak_explicit(
        &l->rcancel, &h, t, memory_order_seq_cst, memory_order_relaxed));
    wake_if_sleeping(l);
}

/* Fires every timer due now.  One clock reading decides what is due, so a
 * timer armed by a firing callback waits for the next round. */
void fut__loop_fire_timers(struct loop *l)
{
    if (!fut_kit_timer_heap_size(&l->timers))
        return;
    uint64_t now = fut_now_ns(), n = 0;
    fut__loop_time_begin(l);
    fut_timer_t *t;
    while ((t = fut_kit_timer_heap_pop_due(&l->timers, now))) {
        fut_timer_fire(t);
        fut__loop_time_end(l, (const void *)(uintptr_t)fut_timer_fire);
        n++;
    }
    bump(&l->n_timers, n);
}

void fut__loop_drain_timers(struct loop *l)
{
    drain_starts(l);
    drain_cancels(l);
}

/* Shutdown (the destroying thread, once no run can start): starts still
 * in flight end their first hold here, cancels remove theirs from the
 * heap and end both, the rest is dropped. */
void fut__loop_timers_shutdown(struct loop *l)
{
    /* Acquire: pairs with the CAS in fut__loop_timer_start (no pusher is
     * left: the core's gate is closed). */
    fut_timer_t *t =
        atomic_exchange_explicit(&l->rstart, NULL, memory_order_acquire);
    while (t) {
        fut_timer_t *next = (fut_timer_t *)(uintptr_t)t->slot;
        t->slot = SIZE_MAX;
        fut_timer_drop(t);
        t = next;
    }
    drain_cancels(l);
    while ((t = fut_kit_timer_heap_pop_due(&l->timers, UINT64_MAX)))
        fut_timer_drop(t);
}
