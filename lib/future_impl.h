/* libfut — the private parts of the future block that its three files
 * share: future.c (the state word: attach, fire, settle, claim, detach),
 * block.c (making a block, references, the last release) and task.c
 * (running tasks and callbacks: fut_async, the executor's side of a task,
 * chaining).  The library is built without link-time optimisation, so what
 * a hot path of one file needs from another is here, static inline: the
 * state word's bits and its acquire load, writing a value, and the fast
 * path of a release (block.c has the slow one).  The protocol these
 * follow is the essay at the top of future.c; the block's layout is
 * internal.h's.  Only those three files include this. */
#ifndef FUT_FUTURE_IMPL_H
#define FUT_FUTURE_IMPL_H

#include "internal.h"

/* ---- the state word (future.c) ------------------------------------------ */

#define W_CLAIMED ((uintptr_t)1)
#define W_CLOSED ((uintptr_t)2)
#define W_DETACH ((uintptr_t)4) /* pending only: fut__detach is at work */
#define W_PTR ((uintptr_t) ~(uintptr_t)7)
#define W_SETTLED(state, err)                                                  \
    (W_CLOSED | ((uintptr_t)(state) << 2) | ((uintptr_t)(uint32_t)(err) << 32))

/* The outcome word W holds: FUT_PENDING and 0 while it is open. */
static inline fut_state_t fut__state_of(uintptr_t w)
{
    return (w & W_CLOSED) ? (fut_state_t)((w >> 2) & 3) : FUT_PENDING;
}

static inline int fut__err_of(uintptr_t w)
{
    return (w & W_CLOSED) ? (int)(int32_t)(uint32_t)(w >> 32) : 0;
}

static inline uintptr_t load_word(const fut_t *f)
{
    /* Pairs with the release in close_cas / the exchange in close_claimed:
     * a reader that sees CLOSED sees the value fields. */
    return atomic_load_explicit(&((fut_t *)f)->word, memory_order_acquire);
}

static inline bool is_call_kind(const fut_t *f)
{
    return f->kind == FK_THEN || f->kind == FK_CATCH || f->kind == FK_FINALLY;
}

/* Writes a value result into F's fields (single writer, before the word
 * is closed); false, writing nothing, for any other kind of result. */
static inline bool write_value(fut_t *f, const fut_result_t *r)
{
    switch (r->kind_) {
    case RK_OK:
        f->vkind = VK_PTR;
        f->val.ptr = r->u_.ptr;
        return true;
    case RK_OWNED: /* always with a dtor: fut_ok_owned */
        f->vkind = VK_PTR_OWNS;
        f->val.ptr = r->u_.ptr;
        f->dtor = r->dtor_;
        f->owner = NULL;
        return true;
    case RK_I64:
        f->vkind = VK_I64;
        f->val.i64 = r->u_.i64;
        return true;
    default:
        return false;
    }
}

/* ---- the last release (block.c) ------------------------------------------ */

/* The block goes back, marked dead (see FUT__DEAD in internal.h). */
static inline void free_block(fut_t *f)
{
    atomic_store_explicit(&f->refs, FUT__DEAD, memory_order_relaxed);
#ifdef FUT_DEBUG
    fut__quarantine(f);
#else
    fut__free(f, sizeof *f);
#endif
}

/* What destroy leaves to block.c: everything but the common block. */
void fut__destroy_slow(fut_t *f);

/* The last release.  Inline for the common block (a task's, a fiber's or
 * a promise's future with no destructor to run, nothing borrowed, no executor
 * reference): mark it dead and free it; everything else goes to
 * fut__destroy_slow.  (A dtor is set only with a pointer value, and dropped if
 * the value lost to a cancel: fut__settle.) */
static inline void destroy(fut_t *f)
{
    _Static_assert(FK_PLAIN == 0 && FK_ASYNC == 1 && FK_FIBER == 2,
                   "kind <= FK_FIBER below");
    if (FUT__LIKELY(f->vkind != VK_PTR_OWNS && f->kind <= FK_FIBER &&
                    f->flags == 0)) {
        free_block(f);
        return;
    }
    fut__destroy_slow(f);
}

/* Drops N references of F (N is 1, or 2 for a taken task's owed hold
 * together with its waiter's reference). */
/* Drops N references of F; true if they were the last (F is then the
 * caller's to destroy). */
static inline bool unref_n(fut_t *f, uint32_t n)
{
    /* Sole owner: nobody else holds a reference, so nobody can take one
     * (retaining needs a reference) and the count cannot change under us:
     * free without a locked instruction.  Acquire pairs with the release
     * of every earlier releaser, as the decrement below would. */
    uint32_t r = atomic_load_explicit(&f->refs, memory_order_acquire);
    FUT__CHECK_LIVE(r, f, "fut_release");
    if (r == n)
        return true;
    /* acq_rel: the release orders this thread's use of F before the free;
     * the acquire (taken by the last releaser) pairs with every other
     * releaser's release, so the destructor sees all their writes. */
    return atomic_fetch_sub_explicit(&f->refs, n, memory_order_acq_rel) == n;
}

static inline void release_n(fut_t *f, uint32_t n)
{
    if (unref_n(f, n))
        destroy(f);
}

/* Releases the hold this thread owes (see fut__run_taken), if any. */
static inline void pay_owed(struct fut_tls *t)
{
    fut_t *o = t->owed;
    if (o) {
        t->owed = NULL;
        release_n(o, 1);
    }
}

#endif
