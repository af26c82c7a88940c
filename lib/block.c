/* libfut — the future block's life: made (fut__new, fut__rejected,
 * fut_ready), referenced (fut_retain, fut_release, and the hold a taken
 * task leaves owed: task.c), and destroyed by the last release.  The
 * release's fast path (free the common block at once) is inline in
 * future_impl.h, so that task.c keeps it; the rest of the last release is
 * here.  The state word it reads is future.c's.
 *
 * REFERENCES
 *
 * refs counts: the application's handles, a promise handle, each node of
 * this future hanging on another's list, an executor holding its task or
 * timer, and a future that borrows its value (owner).  The last release
 * runs the value's destructor and frees the block. */
#include "future_impl.h"

/* ---- allocation and references ----------------------------------------- */

fut_t *fut__new(enum fut_kind kind, uint32_t refs)
{
    return fut__new_block(kind, refs);
}

fut_t *fut__rejected(int err)
{
    fut_t *f = fut__new(FK_PLAIN, 1);
    if (!f)
        return &fut__enomem;
    /* Relaxed: F is not yet shared; whoever receives it does so through
     * some synchronisation (the return, a queue) that orders this store. */
    atomic_store_explicit(&f->word, W_SETTLED(FUT_REJECTED, err),
                          memory_order_relaxed);
    return f;
}

fut_t *fut_retain(fut_t *f)
{
    if (f && f != &fut__enomem) {
        /* Relaxed: the caller already holds a reference, so nothing is
         * published by taking another (as in every refcount). */
        uint32_t r =
            atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
        FUT__CHECK_LIVE(r, f, "fut_retain");
    }
    return f;
}

static bool unref(fut_t *f);

/* What F holds that goes with it, but the one future returned: the caller
 * drops that one, so that a long chain goes in a loop, not a frame per
 * link (a cancelled chain keeps its sources until it goes: cancel.c). */
static fut_t *destroy_parts(fut_t *f)
{
    fut_t *next = NULL;
    if (f->vkind == VK_PTR_OWNS) {
        if (fut__state_of(atomic_load_explicit(
                &f->word, memory_order_relaxed)) == FUT_FULFILLED &&
            f->dtor)
            f->dtor(f->val.ptr);
        if (f->owner)
            fut_release(f->owner);
    }
    if (f->flags & FF_FOLLOWS)
        next = f->u.call.fn.follows;
    /* The kinds that hold one source, all at u.call.src's place (a
     * timeout's input, a member's start result: internal.h). */
    enum {
        HOLDS_SRC = 1u << FK_THEN | 1u << FK_CATCH | 1u << FK_FINALLY |
                    1u << FK_TIMEOUT | 1u << FK_MEMBER
    };
    fut_t *src = NULL;
    if ((1u << f->kind) & HOLDS_SRC)
        src = f->u.call.src; /* no one else touches F now */
    else if (f->kind == FK_COMBINE)
        fut__comb_destroy(f);
    else if (f->kind == FK_SCOPE)
        fut__scope_destroy(f);
    if (next)
        fut_release(src); /* a callback's source and what it returned */
    else
        next = src;
    if (f->flags & FF_EX_REF)
        fut__ex_release(f->ex);
    free_block(f);
    return next;
}

/* F was the last reference of a source: destroy it and, in a loop, each
 * source whose last reference that drops. */
static __attribute__((noinline)) void destroy_chain(fut_t *f)
{
    do
        if (f->vkind != VK_PTR_OWNS && f->kind <= FK_FIBER && f->flags == 0) {
            free_block(f); /* destroy()'s inline case */
            return;
        }
    while ((f = destroy_parts(f)) != NULL && unref(f));
}

__attribute__((noinline)) void fut__destroy_slow(fut_t *f)
{
    fut_t *next = destroy_parts(f); /* most often NULL: nothing follows */
    if (next && unref(next))
        destroy_chain(next);
}

/* fut_release with a debt outstanding: out of line, off the common path. */
static __attribute__((noinline)) void release_owing(struct fut_tls *t, fut_t *f)
{
    if (t->owed == f) { /* the waiter lets go right after its wait */
        t->owed = NULL;
        release_n(f, 2);
        return;
    }
    pay_owed(t);
    release_n(f, 1);
}

/* pay_owed for promise.c (fut__hook_run). */
void fut__pay_owed(struct fut_tls *t)
{
    pay_owed(t);
}

/* fut_release without the destroy: true if F is now the caller's to
 * destroy (fut__destroy_slow's loop). */
static bool unref(fut_t *f)
{
    if (f == &fut__enomem)
        return false;
    struct fut_tls *t = &fut__tls;
    if (FUT__UNLIKELY(t->owed != NULL)) {
        if (t->owed == f) {
            t->owed = NULL;
            return unref_n(f, 2);
        }
        pay_owed(t);
    }
    return unref_n(f, 1);
}

void fut_release(fut_t *f)
{
    if (!f || f == &fut__enomem)
        return;
    struct fut_tls *t = &fut__tls;
    if (FUT__UNLIKELY(t->owed != NULL)) {
        release_owing(t, f);
        return;
    }
    release_n(f, 1);
}

/* ---- making futures ----------------------------------------------------- */

fut_t *fut_ready(fut_result_t r)
{
    if (r.kind_ == RK_ADOPT && r.u_.fut)
        return r.u_.fut; /* settles exactly like it: it is the answer */
    fut_t *f = fut__new(FK_PLAIN, 1);
    if (!f) {
        fut__dispose(r);
        return &fut__enomem;
    }
    fut__settle(f, &r);
    return f;
}
