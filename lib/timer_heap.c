/* libfut — the executor kit's timer heap (<fut/executor_kit.h>): one binary
 * min-heap of {deadline, seq, timer} entries, ordered by deadline and then
 * by push number, kept once for every executor that keeps timers (the
 * loop, executors/loop/loop_timers.c; the library's timer thread,
 * lib/timer.c).  No lock and no atomic: its user serialises the calls.
 *
 * Invariants: ent_[0 .. n_) is a heap (no entry earlier than its parent,
 * (i - 1) / 2); every entry's timer has slot == its index; a timer out of
 * the heap by pop or remove has slot == SIZE_MAX; ent_ is NULL exactly
 * when cap_ is 0, and cap_ is 0 whenever n_ is (the array is freed as the
 * heap empties). */
#include <string.h>

#include "internal.h"

#define FIRST_CAP 64
#define SHRINK_ABOVE 256 /* never shrink an array this small */

static bool earlier(const fut_kit_timer_ent_t *a, const fut_kit_timer_ent_t *b)
{
    return a->deadline < b->deadline ||
           (a->deadline == b->deadline && a->seq < b->seq);
}

static void put(fut_kit_timer_heap_t *h, size_t i, fut_kit_timer_ent_t e)
{
    h->ent_[i] = e;
    e.timer->slot = i;
}

static void sift_up(fut_kit_timer_heap_t *h, size_t i)
{
    fut_kit_timer_ent_t e = h->ent_[i];
    while (i > 0 && earlier(&e, &h->ent_[(i - 1) / 2])) {
        put(h, i, h->ent_[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    put(h, i, e);
}

static void sift_down(fut_kit_timer_heap_t *h, size_t i)
{
    fut_kit_timer_ent_t e = h->ent_[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n_)
            break;
        if (c + 1 < h->n_ && earlier(&h->ent_[c + 1], &h->ent_[c]))
            c++;
        if (!earlier(&h->ent_[c], &e))
            break;
        put(h, i, h->ent_[c]);
        i = c;
    }
    put(h, i, e);
}

/* Moves the entries to an array of CAP (>= n_); false if none. */
static bool resize(fut_kit_timer_heap_t *h, size_t cap)
{
    fut_kit_timer_ent_t *a = fut_alloc(cap * sizeof *a);
    if (!a)
        return false;
    if (h->n_)
        memcpy(a, h->ent_, h->n_ * sizeof *a);
    fut_free(h->ent_);
    h->ent_ = a;
    h->cap_ = cap;
    return true;
}

int fut_kit_timer_heap_push(fut_kit_timer_heap_t *h, fut_timer_t *t)
{
    if (!h || !t)
        return FUT_EINVAL;
    if (h->n_ == h->cap_ && !resize(h, h->cap_ ? 2 * h->cap_ : FIRST_CAP))
        return FUT_ENOMEM;
    size_t i = h->n_++;
    h->ent_[i] = (fut_kit_timer_ent_t){t->deadline_ns, h->seq_++, t};
    sift_up(h, i);
    return 0;
}

/* Removes the entry at I (the inline remove and pop_due of the header
 * checked it); the array shrinks as the heap does (a failed shrink keeps
 * the larger one) and is freed when the heap empties. */
void fut__kit_timer_heap_take(fut_kit_timer_heap_t *h, size_t i)
{
    h->ent_[i].timer->slot = SIZE_MAX;
    h->n_--;
    if (i < h->n_) {
        put(h, i, h->ent_[h->n_]);
        if (i > 0 && earlier(&h->ent_[i], &h->ent_[(i - 1) / 2]))
            sift_up(h, i);
        else
            sift_down(h, i);
    }
    if (h->n_ == 0) {
        fut_free(h->ent_);
        h->ent_ = NULL;
        h->cap_ = 0;
    } else if (h->cap_ > SHRINK_ABOVE && h->n_ < h->cap_ / 4) {
        resize(h, h->cap_ / 2);
    }
}
