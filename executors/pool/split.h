/* libfut — a split deque (after Lace, van Dijk & van de Pol 2014) for the
 * pool's task-group children (internal).
 *
 * A worker's group children are a stack: the owner pushes at HEAD when it
 * spawns and pops at HEAD when it waits.  The slots below HEAD are split in
 * two parts:
 *
 *      0 ........ tail ........ split ........ head
 *      | stolen    | shared       | private       | free
 *
 *  - private [split, head): only the owner touches them.  Push and pop
 *    there are plain loads and stores: no fence, no locked instruction.
 *    This is the whole point (a Chase–Lev pop needs one xchg, ~3–5 ns).
 *  - shared [tail, split): thieves take the oldest with a CAS on the word
 *    TS = (tail, split), tail + 1.
 *  - below tail: stolen, not yet popped by the owner.
 *
 * Moving the split.  A thief that finds the shared part empty sets
 * MOVESPLIT; the owner, at its next push or pop, publishes part of its
 * private slots by moving split up (grow: a CAS on TS, which is the release
 * that publishes the slots, and the caller then wakes a sleeper if one
 * waits).  When the owner pops down to the shared part it takes half of it
 * back (shrink: a CAS on TS that lowers split, failing and retrying if a
 * thief moved tail meanwhile: the CAS decides who gets each slot, so no
 * separate store–load fence is needed); when tail == split, every slot left
 * below head was stolen (ALLSTOLEN), and the owner pops them one by one as
 * stolen.  The first push after that starts a new shared part holding just
 * the new slot (a plain store of TS; no thief CAS can succeed on the
 * all-stolen word it replaces, since tail == split there).
 *
 * A slot's reuse.  A thief reads the slot's pointer only after its CAS won
 * the slot, then marks the task STOLEN_ (release).  The owner pops a stolen
 * slot only after it sees that mark, so it can never overwrite a slot a
 * thief has won but not yet read.  (Reading the slot before the CAS would be
 * wrong: TS can come back to the same (tail, split) after the owner reused
 * the slot, and the thief would run the old task twice and lose the new
 * one.)
 *
 * Build with -DFUT_SPLIT_BROKEN_FENCE to replace the shrink's CAS by what
 * Lace does minus its mfence (store split, re-read tail): owner and thief
 * may then both take the same slot.  tests/stress/split_stress.c detects it
 * (tasks run twice).
 *
 * TSan cannot see ck_pr: publication (grow, reset) releases on &TS and a
 * successful steal acquires on it; the stolen mark is annotated the same
 * way on the task.
 */
#ifndef FUT_EXECUTORS_SPLIT_H
#define FUT_EXECUTORS_SPLIT_H

#include <ck_pr.h>
#include <stdbool.h>
#include <stdint.h>

#include "fut.h"

#include "deque.h" /* FUT__CACHELINE, FUT__DQ_RELEASE/ACQUIRE */

#define FUT__TS(tail, split) ((uint64_t)(split) << 32 | (uint32_t)(tail))
#define FUT__TS_TAIL(v) ((uint32_t)(v))
#define FUT__TS_SPLIT(v) ((uint32_t)((v) >> 32))

typedef struct fut__split {
    /* Thieves' line. */
    uint64_t ts;        /* (tail, split): thieves CAS tail, owner split */
    uint32_t allstolen; /* owner writes; thieves skip the CAS when set */
    uint32_t movesplit; /* thieves set it; the owner clears it */
    char pad0_[FUT__CACHELINE - 16];
    /* Owner's line: head, o_split (the owner's copy of split, or
     * FUT__GQ_ALLSTOLEN: its copy of allstolen), cap, slots; declared in
     * <fut/pool.h>, whose inline init, spawn and wait use it too. */
    fut__gq_t o; /* the struct's alignment pads it to a whole line */
} CK_CC_ALIGN(FUT__CACHELINE) fut__split_t;

_Static_assert(sizeof(fut__gq_t) <= FUT__CACHELINE,
               "the owner's half of a split deque fits one cache line");

static inline void fut__split_init(fut__split_t *d, fut_group_task_t **slots,
                                   uint32_t cap)
{
    d->ts = FUT__TS(0, 0);
    d->allstolen = 1;
    d->movesplit = 0;
    d->o.head = 0;
    d->o.o_split = FUT__GQ_ALLSTOLEN;
    d->o.cap = cap;
    d->o.slots = slots;
    d->o.movesplit = &d->movesplit;
    d->o.run_local = 0;
    d->o.pool = NULL; /* the pool fills these in */
    d->o.worker = NULL;
    d->o.handle = NULL;
}

/* Owner: makes slots [o_split, NEWSPLIT) shared.  Thieves only move tail,
 * so the CAS fails only on a steal; retry with the new tail. */
static inline void fut__split_grow(fut__split_t *d, uint32_t newsplit)
{
    uint64_t v = ck_pr_load_64(&d->ts);

    ck_pr_store_32(&d->movesplit, 0); /* a later request asks again */
    FUT__DQ_RELEASE(&d->ts); /* the slots; pairs with the steal's acquire */
    /* The CAS is the release of the slots' contents.  Pairs with the
     * thieves' CAS in fut__split_steal. */
    while (
        !ck_pr_cas_64_value(&d->ts, v, FUT__TS(FUT__TS_TAIL(v), newsplit), &v))
        ;
    d->o.o_split = newsplit;
}

/* Owner: adds T on top.  Returns 0 (private), 1 (published: the caller
 * should wake a sleeper), -1 (full: T was not added). */
static inline int fut__split_push(fut__split_t *d, fut_group_task_t *t)
{
    uint32_t h = d->o.head;

    if (FUT__UNLIKELY(h == d->o.cap))
        return -1;
    t->stolen_ = 0;
    d->o.slots[h] = t;
    d->o.head = h + 1;
    if (FUT__UNLIKELY(d->o.o_split == FUT__GQ_ALLSTOLEN)) {
        /* Every slot below was stolen: a new shared part with T alone. */
        ck_pr_store_32(&d->movesplit, 0);
        FUT__DQ_RELEASE(&d->ts); /* pairs with the steal's acquire */
        ck_pr_fence_store();     /* T and its slot before TS (free on x86) */
        ck_pr_store_64(&d->ts, FUT__TS(h, h + 1));
        /* TS before ALLSTOLEN: a thief that reads ALLSTOLEN == 0 then reads
         * the new TS.  Pairs with the load fence in fut__split_steal. */
        ck_pr_fence_store();
        ck_pr_store_32(&d->allstolen, 0);
        d->o.o_split = h + 1;
        return 1;
    }
    /* Plain load: pairs with a thief's store; a late look only delays. */
    if (FUT__UNLIKELY(ck_pr_load_32(&d->movesplit))) {
        fut__split_grow(d, (d->o.o_split + h + 2) / 2);
        return 1;
    }
    return 0;
}

/* Owner: takes back half of the shared part.  True if there was nothing to
 * take back: every slot below head was stolen. */
static inline bool fut__split_shrink(fut__split_t *d)
{
    /* A stale V only fails the CAS below (which reloads it); the CAS is
     * what pairs with the thieves' CAS. */
    uint64_t v = ck_pr_load_64(&d->ts);

    for (;;) {
        uint32_t tail = FUT__TS_TAIL(v), split = FUT__TS_SPLIT(v);
        uint32_t newsplit = (tail + split) / 2;

        if (tail >= split)
            break;
#ifdef FUT_SPLIT_BROKEN_FENCE
        /* Deliberately wrong (tests only): Lace's store and re-read
         * without the mfence between them. */
        uint32_t *tail_half = (uint32_t *)(void *)&d->ts; /* x86 layout */
        uint32_t *split_half = tail_half + 1;
        ck_pr_store_32(split_half, newsplit);
        ck_pr_barrier();
        tail = ck_pr_load_32(tail_half); /* may pass the store above */
        if (tail >= split)
            break;
        if (tail > newsplit) {
            newsplit = (tail + split) / 2;
            ck_pr_store_32(split_half, newsplit);
        }
        d->o.o_split = newsplit;
        return false;
#else
        /* Pairs with the thieves' CAS: exactly one of us moves TS from V. */
        if (ck_pr_cas_64_value(&d->ts, v, FUT__TS(tail, newsplit), &v)) {
            d->o.o_split = newsplit;
            return false;
        }
#endif
    }
    ck_pr_store_32(&d->allstolen, 1); /* pairs with the thieves' load */
    d->o.o_split = FUT__GQ_ALLSTOLEN;
    return true;
}

enum { FUT__SPLIT_LOCAL, FUT__SPLIT_STOLEN };

/* Owner, with head > 0: pops the top slot into *T.  LOCAL: run it here.
 * STOLEN: a thief has it (and has read the slot).  *PUBLISHED is set when
 * the pop also published slots for starving thieves (wake a sleeper). */
static inline int fut__split_pop(fut__split_t *d, fut_group_task_t **t,
                                 bool *published)
{
    uint32_t h = d->o.head - 1;

    /* h >= o_split: private (never true once all was stolen). */
    if (FUT__LIKELY(h >= d->o.o_split)) {
        /* If thieves starve, give them half of what lies below this slot
         * (as Lace's sync does).  Plain load of movesplit: pairs with a
         * thief's store in fut__split_steal; a late look only delays the
         * grow to the next push or pop. */
        if (FUT__UNLIKELY(ck_pr_load_32(&d->movesplit)) &&
            h - d->o.o_split >= 2) {
            fut__split_grow(d, d->o.o_split + (h - d->o.o_split) / 2);
            *published = true;
        }
        d->o.head = h;
        *t = d->o.slots[h];
        return FUT__SPLIT_LOCAL;
    }
    if (d->o.o_split != FUT__GQ_ALLSTOLEN && !fut__split_shrink(d)) {
        d->o.head = h; /* now private: shrink left split <= h */
        *t = d->o.slots[h];
        return FUT__SPLIT_LOCAL;
    }
    d->o.head = h;
    *t = d->o.slots[h];
    /* Wait until the thief has read the slot: only then may a push reuse
     * it.  A few instructions on the thief's side (it marks right after
     * its CAS).  Pairs with the store in fut__split_steal. */
    while (ck_pr_load_32(&(*t)->stolen_) == 0)
        ck_pr_stall();
    FUT__DQ_ACQUIRE(*t);
    return FUT__SPLIT_STOLEN;
}

/* Any thread but the owner: takes the oldest shared slot, or NULL (*LOST
 * set when another thread won the race: retrying may succeed). */
static inline fut_group_task_t *fut__split_steal(fut__split_t *d, bool *lost)
{
    uint64_t v;
    fut_group_task_t *t;

    if (ck_pr_load_32(&d->allstolen)) /* pairs with the owner's stores */
        return NULL;
    ck_pr_fence_load(); /* ALLSTOLEN before TS; pairs with push's fence */
    v = ck_pr_load_64(&d->ts);
    if (FUT__TS_TAIL(v) >= FUT__TS_SPLIT(v)) {
        /* Nothing shared: ask the owner to publish some. */
        if (ck_pr_load_32(&d->movesplit) == 0)
            ck_pr_store_32(&d->movesplit, 1);
        return NULL;
    }
    /* Pairs with the owner's CAS in grow/shrink and other thieves' CAS. */
    if (!ck_pr_cas_64(&d->ts, v, v + 1)) { /* tail + 1 */
        *lost = true;
        return NULL;
    }
    FUT__DQ_ACQUIRE(&d->ts); /* pairs with grow's and push's release */
    t = ck_pr_load_ptr(&d->o.slots[FUT__TS_TAIL(v)]);
    /* The slot is read: the owner may reuse it from now on.  Store
     * release; pairs with the owner's wait in fut__split_pop. */
    FUT__DQ_RELEASE(t);
    ck_pr_fence_store();
    ck_pr_store_32(&t->stolen_, 1);
    return t;
}

/* Whether thieves could take something now (the park re-check).  Any.
 * Plain loads: the parker's locked increment and membarrier come first,
 * and the owner publishes with a CAS or a store before its wake check
 * (pool.c's protocol), so one of the two sides sees the other. */
static inline bool fut__split_visible(const fut__split_t *d)
{
    uint64_t v = ck_pr_load_64((uint64_t *)&d->ts);

    return ck_pr_load_32((uint32_t *)&d->allstolen) == 0 &&
           FUT__TS_TAIL(v) < FUT__TS_SPLIT(v);
}

#endif
