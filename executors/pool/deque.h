/* libfut — a bounded Chase–Lev work-stealing deque on ck_pr (internal).
 *
 * One owner thread pushes and pops at the bottom (LIFO); any number of
 * thieves steal at the top (FIFO).  The slot array is a power of two and
 * never grows: a full deque refuses the push and the pool sends the task to
 * its injection queue instead, so no memory is ever retired while a thief may
 * still read it (no reclamation scheme needed).
 *
 * Indices only grow (64 bits never wrap in practice); an item lives at
 * buf[i & mask] for top <= i < bottom.
 *
 *          top (thieves CAS it up)          bottom (owner only writes)
 *           v                                 v
 *   ... | stolen | item | item | item | item | free | ...
 *
 * The protocol, and why each barrier is there:
 *  - push: write the slot, then store bottom+1.  The store fence between
 *    them (a no-op on x86-TSO) pairs with the load fence in steal() between
 *    reading bottom and reading the slot: a thief that sees the new bottom
 *    sees the item.
 *  - pop: the owner first *publishes* bottom-1, then reads top.  This
 *    store->load order is the one x86 does not keep for free; it is the
 *    Dekker handshake with the thieves (thief: read top, read bottom, CAS
 *    top).  We get it from an xchg on bottom (one locked instruction, ~5 ns
 *    here) instead of store+mfence (~19 ns).  If top < new bottom at least
 *    two items remain and the owner takes the bottom one without a CAS:
 *    any thief that read the old bottom can only win index top.  If
 *    top == new bottom, owner and thieves race for the last item with a CAS
 *    on top; the loser backs off.
 *  - steal: read top, then bottom (load-load, free on TSO; a full fence on
 *    weaker machines, as in Lê et al. 2013), read the slot, CAS top+1.  The
 *    CAS fails if the owner or another thief took index top first.
 *
 * Build with -DFUT_DEQUE_BROKEN_FENCE to replace the xchg in pop by a plain
 * store: the owner may then read a stale top while its store of bottom sits
 * in the store buffer and take the same item a thief takes.
 * tests/stress/deque_stress.c detects that (items run twice).
 *
 * TSan cannot see ck_pr (inline asm): in TSan builds push releases on the
 * slot's address and a successful pop or steal acquires on it, so the item's
 * contents are seen as handed over.
 */
#ifndef FUT_EXECUTORS_DEQUE_H
#define FUT_EXECUTORS_DEQUE_H

#include <ck_cc.h>
#include <ck_pr.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fut/common.h" /* FUT__TSAN, FUT__LIKELY */

#if FUT__TSAN
#include <sanitizer/tsan_interface.h>
#define FUT__DQ_RELEASE(addr) __tsan_release((void *)(addr))
#define FUT__DQ_ACQUIRE(addr) __tsan_acquire((void *)(addr))
#else
#define FUT__DQ_RELEASE(addr) ((void)0)
#define FUT__DQ_ACQUIRE(addr) ((void)0)
#endif

#define FUT__CACHELINE 64

/* Between a thief's read of top and its read of bottom.  x86 keeps
 * load-load order; other machines need the full fence of the C11 proof. */
#if defined(__x86_64__) || defined(__i386__)
#define FUT__STEAL_FENCE() ck_pr_fence_load()
#else
#define FUT__STEAL_FENCE() ck_pr_fence_memory()
#endif

typedef struct fut__deque {
    /* Owner's line: bottom is read by thieves, written only by the owner. */
    uint64_t bottom;
    uint64_t top_cache; /* owner-private: a top value seen earlier (<= top) */
    char pad0_[FUT__CACHELINE - 2 * sizeof(uint64_t)];
    /* Thieves' line: top only grows, by CAS. */
    uint64_t top;
    char pad1_[FUT__CACHELINE - sizeof(uint64_t)];
    /* Read-only after init. */
    void **buf;
    uint64_t mask;
    char pad2_[FUT__CACHELINE - sizeof(void **) - sizeof(uint64_t)];
} CK_CC_ALIGN(FUT__CACHELINE) fut__deque_t;

/* Makes D empty over BUF, CAPACITY slots (a power of two >= 2), which the
 * caller owns and frees after the last use of D.  Returns false if CAPACITY
 * is not a power of two.  Threads: before D is shared. */
bool fut__deque_init(fut__deque_t *d, void **buf, size_t capacity);

/* Number of items, approximately (exact when no one else is acting on D).
 * Threads: any; used for hints and the parking re-check. */
size_t fut__deque_size(const fut__deque_t *d);

/* Owner: adds X (non-NULL) at the bottom.  Returns false when full.
 * Costs two plain stores and no locked instruction. */
static inline bool fut__deque_push(fut__deque_t *d, void *x)
{
    uint64_t b = d->bottom; /* only we write it */
    uint64_t idx;

    if (b - d->top_cache > d->mask) {
        /* Looks full with the cached top; thieves may have moved it. */
        d->top_cache = ck_pr_load_64(&d->top);
        if (b - d->top_cache > d->mask)
            return false;
    }
    idx = b & d->mask;
    FUT__DQ_RELEASE(&d->buf[idx]); /* pairs with the acquire in pop/steal */
    ck_pr_store_ptr(&d->buf[idx], x);
    /* Slot before bottom; pairs with the load fence in fut__deque_steal. */
    ck_pr_fence_store();
    ck_pr_store_64(&d->bottom, b + 1);
    return true;
}

/* Owner: whether X is the most recently pushed item still in D (a thief
 * may take it before the owner pops it: pop decides).  Plain loads of
 * fields only the owner writes. */
static inline bool fut__deque_owns_top(const fut__deque_t *d, const void *x)
{
    uint64_t b = d->bottom;

    return (int64_t)(b - d->top_cache) > 0 && d->buf[(b - 1) & d->mask] == x;
}

/* Owner: takes the most recently pushed item, or NULL when empty (or when a
 * thief won the last one).  One locked instruction unless empty. */
static inline void *fut__deque_pop(fut__deque_t *d)
{
    uint64_t b = d->bottom, t;
    void *x;

    /* Cheap emptiness check: top_cache <= top, so this never lies "empty". */
    if ((int64_t)(b - d->top_cache) <= 0)
        return NULL;
    b--;
#ifdef FUT_DEQUE_BROKEN_FENCE
    /* Deliberately wrong (tests only): no store->load order. */
    ck_pr_store_64(&d->bottom, b);
    ck_pr_barrier();
#else
    /* Publish bottom-1 before reading top: the xchg is the store->load
     * fence.  Pairs with the CAS on top in fut__deque_steal (a thief that
     * read the old bottom can then only win index top). */
    ck_pr_fas_64(&d->bottom, b);
#endif
    t = ck_pr_load_64(&d->top);
    d->top_cache = t;
    if ((int64_t)(t - b) > 0) { /* empty: a thief took the last one */
        ck_pr_store_64(&d->bottom, b + 1);
        return NULL;
    }
    x = ck_pr_load_ptr(&d->buf[b & d->mask]);
    if (t == b) {
        /* The last item: race the thieves for it.  Pairs with their CAS. */
        if (!ck_pr_cas_64(&d->top, t, t + 1))
            x = NULL;
        else
            d->top_cache = t + 1;
        ck_pr_store_64(&d->bottom, b + 1);
    }
    if (x != NULL)
        FUT__DQ_ACQUIRE(&d->buf[b & d->mask]); /* pairs with push */
    return x;
}

/* Any thread but the owner: takes the oldest item.  Returns it, or NULL
 * when D looked empty (*LOST false) or another thread won the race (*LOST
 * true: there was work; retrying may succeed).  LOST may be NULL. */
static inline void *fut__deque_steal(fut__deque_t *d, bool *lost)
{
    uint64_t t = ck_pr_load_64(&d->top);
    uint64_t b;
    void *x;

    if (lost != NULL)
        *lost = false;
    FUT__STEAL_FENCE(); /* top before bottom; pairs with pop's xchg */
    b = ck_pr_load_64(&d->bottom);
    if ((int64_t)(b - t) <= 0)
        return NULL;
    /* Bottom before the slot; pairs with the store fence in push. */
    ck_pr_fence_load();
    x = ck_pr_load_ptr(&d->buf[t & d->mask]);
    /* Claim index t.  Pairs with the owner's CAS in pop and other thieves'
     * CAS here; on success no one else can have taken index t, and the owner
     * cannot have overwritten the slot (it needs top > t to reuse it). */
    if (!ck_pr_cas_64(&d->top, t, t + 1)) {
        if (lost != NULL)
            *lost = true;
        return NULL;
    }
    FUT__DQ_ACQUIRE(&d->buf[t & d->mask]); /* pairs with push */
    return x;
}

#endif
