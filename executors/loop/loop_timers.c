/* libfut — the event loop's timers: a binary heap of {deadline, seq,
 * timer} on the loop thread, the hand-off stacks of starts and cancels from
 * other threads, and firing.  The protocol (who holds a timer, how a
 * cancel can overtake its start, the stacks' orderings) is in loop.c's
 * essay, "Timers" and "Cross-thread hand-off". */
#include "loop_impl.h"

static bool hless(const struct hent *a, const struct hent *b)
{
    return a->deadline < b->deadline ||
           (a->deadline == b->deadline && a->seq < b->seq);
}

static void hset(struct loop *l, size_t i, struct hent e)
{
    l->heap[i] = e;
    e.t->slot = i;
}

static void sift_up(struct loop *l, size_t i)
{
    struct hent e = l->heap[i];
    while (i > 0 && hless(&e, &l->heap[(i - 1) / 2])) {
        hset(l, i, l->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    hset(l, i, e);
}

static void sift_down(struct loop *l, size_t i)
{
    struct hent e = l->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= l->hn)
            break;
        if (c + 1 < l->hn && hless(&l->heap[c + 1], &l->heap[c]))
            c++;
        if (!hless(&l->heap[c], &e))
            break;
        hset(l, i, l->heap[c]);
        i = c;
    }
    hset(l, i, e);
}

static bool in_heap(const struct loop *l, const fut_timer_t *t)
{
    return t->slot < l->hn && l->heap[t->slot].t == t;
}

static int heap_insert(struct loop *l, fut_timer_t *t)
{
    if (l->hn == l->hcap) {
        size_t cap = l->hcap ? 2 * l->hcap : 64;
        struct hent *h = xgrow(l->heap, l->hn * sizeof *h, cap * sizeof *h);
        if (!h)
            return FUT_ENOMEM;
        l->heap = h;
        l->hcap = cap;
    }
    l->heap[l->hn] = (struct hent){t->deadline_ns, l->hseq++, t};
    t->slot = l->hn++;
    sift_up(l, l->hn - 1);
    return 0;
}

/* Removes the timer at I.  The array shrinks as the heap does and is freed
 * when it empties, so cancelled timers leave no memory behind. */
static void heap_remove(struct loop *l, size_t i)
{
    l->heap[i].t->slot = SIZE_MAX;
    l->hn--;
    if (i < l->hn) {
        hset(l, i, l->heap[l->hn]);
        if (i > 0 && hless(&l->heap[i], &l->heap[(i - 1) / 2]))
            sift_up(l, i);
        else
            sift_down(l, i);
    }
    if (l->hn == 0) {
        xfree(l->heap);
        l->heap = NULL;
        l->hcap = 0;
    } else if (l->hcap > 256 && l->hn < l->hcap / 4) {
        struct hent *h =
            xgrow(l->heap, l->hn * sizeof *h, l->hcap / 2 * sizeof *h);
        if (h) {
            l->heap = h;
            l->hcap /= 2;
        }
    }
}

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
        if (heap_insert(l, t))
            fut_timer_fail(t, FUT_ENOMEM); /* no memory for the heap */
        t = next;
    }
}

/* Cancel of T on the loop thread: end the start's hold if T still waits,
 * then the cancel's own hold. */
static void cancel_here(struct loop *l, fut_timer_t *t)
{
    if (!in_heap(l, t))
        drain_starts(l); /* its start may still be on the stack */
    if (in_heap(l, t)) {
        heap_remove(l, t->slot);
        fut_timer_drop(t);
    }
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
        return heap_insert(l, t);
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
    if (!l->hn)
        return;
    uint64_t now = fut_now_ns(), n = 0;
    fut__loop_time_begin(l);
    while (l->hn && l->heap[0].deadline <= now) {
        fut_timer_t *t = l->heap[0].t;
        heap_remove(l, 0);
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
    while (l->hn) {
        fut_timer_t *x = l->heap[l->hn - 1].t;
        heap_remove(l, l->hn - 1);
        fut_timer_drop(x);
    }
}
