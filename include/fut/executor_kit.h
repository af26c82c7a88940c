/* libfut — the executor kit: what an executor needs beyond the ops table
 * of <fut/executor.h> to run libfut work as cheaply as the built-in loop
 * does.  Include <fut.h>.
 *
 * An executor built on the kit (the loop, the pool and the libuv and GLib
 * adapters are) brackets the stretch in which a thread of its own runs its
 * work with fut_kit_run_begin/fut_kit_run_end, learns of cancelled promises
 * of its own through fut_promise_on_cancel, follows a future it made with
 * an intrusive node (fut_kit_watch) instead of a continuation, and settles
 * a promise under a claim (fut_promise_claim) when a system call must not
 * touch a caller's buffer after a cancel won (the I/O operations).
 *
 * Idle threads of an executor may park with fut_kit_park/fut_kit_wake, as
 * the pool's workers and fut_wait do.  An executor that keeps timers may
 * keep them in the kit's timer heap (fut_kit_timer_heap_t), as the loop
 * and the library's timer thread do. */
#ifndef FUT_EXECUTOR_KIT_H
#define FUT_EXECUTOR_KIT_H

#include "executor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One thread's run of an executor's work, between fut_kit_run_begin and
 * fut_kit_run_end.  The caller owns the storage (a local); its fields are
 * the kit's: not part of the API. */
typedef struct fut_kit_run {
    fut_executor_t *ex_;   /* the executor */
    fut_executor_t *prev_; /* fut_executor_current() before the run */
} fut_kit_run_t;

/* The calling thread runs EX's work from now until fut_kit_run_end(RUN)
 * (a loop's fut_loop_run, a worker's life, a host loop's dispatch):
 *  - fut_executor_current() answers EX, so fut_wait here returns
 *    FUT_EDEADLK for a pending future when EX has FUT_EXECUTOR_NO_BLOCK,
 *    work handed from here to EX goes straight to its submit (no guard for
 *    foreign threads: EX's destroy must wait for the run to end before it
 *    frees what its ops use), and a fut_timeout made here keeps its timer
 *    on EX if EX has timers.
 * It costs two plain stores: no locked instruction (executor handles are
 *   never freed, so a continuation placed on EX counts no reference).
 * Ownership: RUN (not NULL) is the caller's storage, written here; EX is
 *   borrowed.  EX NULL makes a run of no executor: fut_executor_current()
 *   answers NULL until the end.
 * Threads: the calling thread; runs nest (LIFO), each ended on the thread
 *   that began it. */
FUT_API void fut_kit_run_begin(fut_kit_run_t *run, fut_executor_t *ex);

/* Ends RUN: fut_executor_current() answers what it did before the begin.
 * Threads: the one that began RUN. */
FUT_API void fut_kit_run_end(fut_kit_run_t *run);

/* Arranges for FN(ARG, F) to run once, as a task on EX, if the application
 * cancels F, P's future, before P settles it (fut_cancel is the only way a
 * promise's future becomes FUT_CANCELLED): the executor then lets go of
 * what the promise stands for (an fd registration, a host-loop watcher).
 * FN's return value is disposed of.  It never runs if P settles first, or
 * if EX no longer takes work when the cancel comes (shut down: its destroy
 * settles or frees what is left instead).  One hook per promise.
 * Ownership: P borrowed (set the hook right after fut_promise_new, before
 *   F is shared with anyone); EX borrowed, and held by the promise's
 *   future until its last release; ARG is FN's.
 * Returns: 0; FUT_EINVAL (P NULL, consumed or already hooked; EX or FN
 *   NULL).
 * Threads: the thread that made P, before F is shared. */
FUT_API int fut_promise_on_cancel(fut_promise_t *p, fut_executor_t *ex,
                                  fut_then_fn fn, void *arg);

/* A node that follows one future (fut_kit_watch).  The caller owns the
 * storage; NEXT and FIRE are the core's while the node is attached: not
 * part of the API. */
typedef struct fut_kit_watch fut_kit_watch_t;
struct fut_kit_watch {
    fut_kit_watch_t *next;
    void (*fire)(fut_kit_watch_t *w, fut_t *src);
};

/* Calls FN(W, F) once F settles: on the thread that settles F, inside that
 * settle (so keep FN short and never block in it), or at once on this
 * thread if F is settled already.  The cheapest way for an executor to
 * follow a future of its own (a readiness wait under an I/O operation):
 * no future, task or allocation of its own, one CAS, as a continuation's
 * node costs inside the core.  There is no detach: W stays attached until
 * FN ran.
 * Ownership: F borrowed, and must stay alive until FN ran (hold a
 *   reference); W (not NULL) is the caller's storage, written here and
 *   owned by the core until FN is called with it; FN receives F borrowed
 *   and settled.
 * Threads: any; safe concurrently with F settling. */
FUT_API void fut_kit_watch(fut_t *f, fut_kit_watch_t *w,
                           void (*fn)(fut_kit_watch_t *w, fut_t *src));

/* Claims P's future for a settle that must act before anyone can settle
 * it another way: while the claim lasts, a racing fut_cancel (or a
 * timeout) waits for it to end, and then finds the future settled
 * (FUT_EALREADY: the result stands) or, after fut_promise_unclaim, pending
 * again, and wins.  So an I/O operation that runs its system call under
 * the claim never reads or writes a caller's buffer after a cancel won.
 * Cost: one CAS (the unclaim or the settle, one more).  Keep the claim
 * short (one system call that does not block): cancellers spin on it.
 * Returns: true, and the caller must end the claim with exactly one
 *   fut_promise_unclaim or fut_promise_settle_claimed; false when the
 *   future is settled already (a cancel won: touch nothing the future
 *   stands for again; P itself is not consumed) or P is NULL.
 * Ownership: P borrowed; not consumed.
 * Threads: any; one claim at a time per promise (a second claimer waits
 *   for the first to end, as a canceller does). */
FUT_API bool fut_promise_claim(fut_promise_t *p);

/* Ends a claim of P (fut_promise_claim) without settling: the future is
 * pending again, and a canceller that waited for the claim wins now.
 * Ownership: P borrowed; not consumed.
 * Threads: the one that holds the claim. */
FUT_API void fut_promise_unclaim(fut_promise_t *p);

/* Settles P's future, claimed by this thread (fut_promise_claim), with R,
 * and consumes P: as fut_promise_settle, except that it cannot lose.  R is
 * a value (fut_ok, fut_ok_owned, fut_ok_i64) or fut_fail; a fut_forward or
 * fut_adopt is disposed of and the future rejects with FUT_EINVAL.  The
 * future's continuations run here, on this thread.
 * Ownership: consumes P and R.
 * Threads: the one that holds the claim. */
FUT_API void fut_promise_settle_claimed(fut_promise_t *p, fut_result_t r);

/* The one pointer EX keeps for the socket operations of <fut/io.h>
 * (fut_read, fut_write, fut_accept, fut_connect: their per-fd queues on an
 * executor with fd readiness), which are built on the kit like an
 * executor: not for executors or applications to use.  NULL until they
 * set it; the core never reads or frees what it points to.
 * Returns: the slot's address, valid for the life of the process (the
 *   handle is never freed), also after EX's destroy; NULL if EX is NULL or
 *   its ops have no fd_ready (the pool, fut_inline()).
 * Threads: any; the slot itself is its user's to synchronise (the socket
 *   operations touch it on EX's thread only). */
FUT_API void **fut_kit_io_slot(fut_executor_t *ex);
/* Sleeps while the 32-bit word at WORD holds EXPECTED (a futex wait,
 * private to this process), until fut_kit_wake on WORD, a signal, or the
 * time DEADLINE_NS on fut_now_ns()'s clock (UINT64_MAX: no deadline).  It
 * may also return early for no reason: the caller re-checks WORD.  A word
 * that no longer holds EXPECTED, a deadline passed, or WORD NULL return at
 * once.
 * Ownership: WORD borrowed; other threads change it with atomic stores.
 * Threads: any; the word is shared by its parkers and wakers. */
FUT_API void fut_kit_park(const uint32_t *word, uint32_t expected,
                          uint64_t deadline_ns);

/* Wakes up to N (> 0; INT_MAX: all) threads parked on WORD.  Change the
 * word before waking, so that a thread about to park sees the change.
 * Returns: how many it woke (0: none parked; also for WORD NULL or N <= 0).
 * Threads: any. */
FUT_API int fut_kit_wake(const uint32_t *word, int n);

/* ---- a timer heap ---------------------------------------------------------
 * A binary min-heap of the core's timers (fut_timer_t) for an executor that
 * keeps timers of its own (the loop and the library's timer thread keep
 * theirs in one): earliest deadline first, and timers with equal deadlines
 * in the order they were pushed.  Push, remove and pop cost O(log n), the
 * size, the first deadline and a membership test O(1).  Each entry keeps
 * the deadline beside its timer, so sifting reads no timer.  While T is in
 * the heap, T->slot is the heap's (its index); T->next is never touched.
 * The array comes from fut_alloc (allocation-failure tests reach it),
 * doubles as it fills, halves when it is three-quarters empty (beyond 256
 * entries) and is freed when the heap empties: an empty heap holds no
 * memory, so a heap needs no destroy, only to be emptied.
 * A zeroed fut_kit_timer_heap_t ({0}, or memory from calloc) is an empty
 * heap.  Its fields, and an entry's, are the kit's: not part of the API.
 * Threads: the heap has no lock; its user serialises every call on one
 * heap (the loop's thread, the timer thread's mutex). */
typedef struct fut_kit_timer_ent {
    uint64_t deadline; /* the timer's deadline_ns, copied by the push */
    uint64_t seq;      /* the push's number: ties go first-pushed first */
    fut_timer_t *timer;
} fut_kit_timer_ent_t;

typedef struct fut_kit_timer_heap {
    fut_kit_timer_ent_t *ent_; /* ent_[0] is the earliest */
    size_t n_, cap_;
    uint64_t seq_;
} fut_kit_timer_heap_t;

/* Adds T, due at T->deadline_ns, to H.
 * Returns: 0; FUT_ENOMEM (the array could not grow: H and T unchanged);
 *   FUT_EINVAL (H or T NULL).
 * Ownership: H and T borrowed; T stays the caller's, and must stay alive
 *   (and out of any other heap) until it leaves H by pop or remove. */
FUT_API int fut_kit_timer_heap_push(fut_kit_timer_heap_t *h, fut_timer_t *t);

/* How many timers H holds.  This and every call below are inline; the
 * four accessors (size, next_ns, first, contains) take H and T not NULL. */
static inline size_t fut_kit_timer_heap_size(const fut_kit_timer_heap_t *h)
{
    return h->n_;
}

/* The earliest deadline in H, or UINT64_MAX if H is empty (a timer due at
 * UINT64_MAX never fires either): how long an executor may sleep. */
static inline uint64_t fut_kit_timer_heap_next_ns(const fut_kit_timer_heap_t *h)
{
    return h->n_ ? h->ent_[0].deadline : UINT64_MAX;
}

/* H's earliest timer (the next pop_due's), or NULL if H is empty. */
static inline fut_timer_t *
fut_kit_timer_heap_first(const fut_kit_timer_heap_t *h)
{
    return h->n_ ? h->ent_[0].timer : NULL;
}

/* Whether T is in H.  T->slot may hold anything when T is not in a heap
 * (an executor links timers through it meanwhile): the answer checks the
 * entry it names. */
static inline bool fut_kit_timer_heap_contains(const fut_kit_timer_heap_t *h,
                                               const fut_timer_t *t)
{
    return t->slot < h->n_ && h->ent_[t->slot].timer == t;
}

/* Not part of the API: removes the entry at I (< size), for the inline
 * remove and pop_due below, which keep a call out of their checks. */
FUT_API void fut__kit_timer_heap_take(fut_kit_timer_heap_t *h, size_t i);

/* Takes T out of H if it is there (fut_kit_timer_heap_contains).
 * Returns: true if T was in H and is removed (T->slot is SIZE_MAX then);
 *   false if it was not (popped or removed already, never pushed, in
 *   another heap; T untouched), or H or T is NULL.
 * Ownership: H and T borrowed. */
static inline bool fut_kit_timer_heap_remove(fut_kit_timer_heap_t *h,
                                             fut_timer_t *t)
{
    if (!h || !t || !fut_kit_timer_heap_contains(h, t))
        return false;
    fut__kit_timer_heap_take(h, t->slot);
    return true;
}

/* Takes out of H and returns its earliest timer if that one is due, i.e.
 * its deadline is at or before NOW_NS (fut_now_ns()'s clock; UINT64_MAX
 * takes every timer, one call each, to empty the heap).
 * Returns: the timer (its slot SIZE_MAX), or NULL if H is empty, its
 *   earliest timer is not due, or H is NULL.
 * Ownership: H borrowed; the timer returned is the caller's again. */
static inline fut_timer_t *fut_kit_timer_heap_pop_due(fut_kit_timer_heap_t *h,
                                                      uint64_t now_ns)
{
    if (!h || !h->n_ || h->ent_[0].deadline > now_ns)
        return NULL;
    fut_timer_t *t = h->ent_[0].timer;
    fut__kit_timer_heap_take(h, 0);
    return t;
}

#ifdef __cplusplus
}
#endif
#endif
