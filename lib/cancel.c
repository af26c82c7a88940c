/* libfut — cancellation that reaches the work: fut_cancel, and the
 * propagation of a cancel from a future to the sources it waits on.
 *
 * THE RULE
 *
 * When this thread cancels a pending future F (fut_cancel, a firing
 * timeout, a scope), each source S that F waits on is cancelled too if
 * nothing but F observes S, and so on down to the roots (a queued task, a
 * promise with a cancel hook, an fd wait, a timer).  F waits on:
 *
 *     then/catch/finally   u.call.src, then what its callback returned
 *     async                what its task returned (fut_adopt/fut_forward)
 *     timeout              u.tm.input
 *     combinator           every input (combinators.c)
 *     scope member         what its start returned (scope.c)
 *     scope close future   every member (scope.c)
 *
 * NOTHING ELSE OBSERVES S (fut__unobserved) is decided when the cancel
 * happens and costs nothing before: S is pending and unclaimed, F's node
 * heads its continuation list (a node pushed before it belongs to a
 * consumer holding a reference, which the count shows), and its count is
 * 1 (F's) plus the holds the library itself keeps on S while S is
 * pending (internal_holds: an executor's hold on a queued or running
 * task, the node a continuation hangs on its own source, an armed timer,
 * an outstanding promise handle, a combinator's unfired nodes, a scope
 * member's node (or queue slot) and registry references).  Those holders
 * never hand a reference to anyone, so every other reference is an
 * observer: an application handle, a waiter's borrowed one, another
 * consumer.
 *
 * WHY A RACING RETAIN CANNOT BE MISSED.  To retain S another thread must
 * hold a reference to S already, and that reference is in the count.  A
 * reference handed from one holder to another (fut_then consuming the
 * application's) is counted on both sides of the hand-over.  So if the
 * count read here equals 1 + internal holds, no third party holds S and
 * none can get it later: the only path to S is F, which we cancelled.
 * Internal holds are never over-counted: a hold that is released
 * concurrently is looked at after the count (its release is ordered after
 * its indicator changes, so an indicator still set means the hold was in
 * the count), and one that is taken concurrently (a member's node) is
 * looked at before it.  Over-counting the holds could cancel an observed
 * S; under-counting them only leaves an unobserved S running, and the
 * only under-counts are transient (a hold passing from one holder to the
 * next) or on an S that is settling anyway.
 *
 * WHY A RACING SETTLE IS HARMLESS.  S may settle at any moment, on any
 * thread.  Everything read above is re-validated by the one CAS that
 * cancels S: if S settled first, the cancel fails and nothing happens.
 * S stays allocated while we look at it because F holds it and F's
 * reference is not released under us: a call kind's source is released
 * only by the thread that closed F other than by fut_cancel (task.c,
 * drop_src), and we closed F; what F follows, a timeout's input, a
 * member's start result and a combinator's inputs are held until F goes.
 * (A cancelled chain thus keeps its sources until it goes; fut__destroy_slow
 * frees a long one in a loop.)
 *
 * THE ONE DEKKER PAIR.  What an async task or a callback returns
 * (fut_adopt) and what a member's start returns are recorded while F may
 * be cancelled on another thread:
 *
 *     recorder:   store the source (seq_cst); attach F's node to it;
 *                 load F's word (seq_cst): closed? cancel it ourselves
 *     canceller:  close F (CAS); fence (seq_cst); load the recorded source
 *
 * At least one side sees the other: the canceller finds the source, or
 * the recorder finds F closed.  Both may act; the CAS on the source lets
 * one cancel win.
 *
 * DEPTH.  A chain is followed in a loop (one source at a time), so a
 * cancel of a 10^7-link pending chain uses one frame; a combinator or a
 * scope recurses once per input, so the depth is their nesting depth. */
#include "internal.h"

#define W_CLAIMED ((uintptr_t)1)
#define W_CLOSED ((uintptr_t)2)
#define W_PTR ((uintptr_t) ~(uintptr_t)7)

/* Holds the library keeps on pending S (see above).  Read after the
 * reference count. */
static uint32_t internal_holds(const fut_t *s)
{
    /* Acquire: pairs with the release stores that end a timer's hold (a
     * later indicator than the count means the hold was counted). */
    uint8_t hold =
        atomic_load_explicit(&((fut_t *)s)->hold, memory_order_acquire);
    switch (s->kind) {
    case FK_ASYNC: /* the executor's hold, or its follow node */
    case FK_THEN:  /* its node on its source, the executor's hold, */
    case FK_CATCH: /* or its follow node */
    case FK_FINALLY:
        return 1;
    case FK_FIBER: /* the fiber's own, until it settled F, or its follow
                      node */
        return 1;
    case FK_PLAIN: /* the promise handle */
        return hold == 1 ? 1 : 0;
    case FK_DELAY:
        return hold == TS_ARMED ? 1 : 0;
    case FK_TIMEOUT: /* its node on its input, and its timer */
        return hold == TS_ARMED ? 2 : 1;
    case FK_COMBINE:
        return fut__comb_holds(s);
    case FK_MEMBER: /* its node (or queue slot), and the scope's registry
                       (every tracked member is MS_LISTED from birth) */
        return (hold & MS_LISTED) ? 2 : 1;
    case FK_SCOPE:
        return fut__scope_holds(s);
    default:
        return 0;
    }
}

bool fut__unobserved(fut_t *s, const fut_cont_t *mine)
{
    /* Acquire: pairs with every releaser's acq_rel decrement, so holds
     * released before this count are seen as released below. */
    uint32_t refs = atomic_load_explicit(&s->refs, memory_order_acquire);
    /* Acquire: pairs with attach's release, so MINE->next is complete. */
    uintptr_t w = atomic_load_explicit(&s->word, memory_order_acquire);
    if (w & (W_CLAIMED | W_CLOSED))
        return false;
    /* MINE heads the list.  Nodes pushed before it are not looked at
     * (MINE->next may be rewritten by a closer right now): each belongs
     * to a consumer that holds a reference, which the count shows. */
    if ((const fut_cont_t *)(w & W_PTR) != mine)
        return false;
    return refs == 1 + internal_holds(s);
}

/* Cancels F alone (its own clean-up, not its sources); false if F was
 * settled first. */
static bool cancel_one(fut_t *f)
{
    if (FUT__UNLIKELY(f->kind == FK_MEMBER)) {
        /* Claimed first: the member leaves its scope's list before its
         * list fields are reused by the deferred queue (scope.c). */
        if (!fut__claim(f))
            return false;
        fut__member_close(f, NULL, FUT_CANCELLED, FUT_ECANCELED);
        return true;
    }
    if (!fut__settle_err(f, FUT_CANCELLED, FUT_ECANCELED))
        return false;
    fut__on_cancel(f); /* timers: timer.c */
    /* A promise's flags are written only before it is shared (a call
     * kind's change as its continuation fires: look at the kind first). */
    if (FUT__UNLIKELY(f->kind == FK_PLAIN && (f->flags & FF_HOOK)))
        fut__hook_fire(f); /* promise.c */
    return true;
}

/* What ASYNC or call-kind F recorded as followed, or NULL. */
static fut_t *followed(fut_t *f)
{
    /* Acquire: pairs with the seq_cst store in record_follows (future.c),
     * which comes after the pointer. */
    if (atomic_load_explicit(&f->hold, memory_order_acquire) != 1)
        return NULL;
    return f->u.call.fn.follows;
}

/* Cancels S (F's source, F's node MINE) if unobserved; S, or NULL. */
static fut_t *step(fut_t *s, const fut_cont_t *mine)
{
    if (!s || !fut__unobserved(s, mine))
        return NULL;
    if (FUT__UNLIKELY(s->kind == FK_SCOPE)) {
        fut_cancel(s); /* its members, not a chain: scope.c */
        return NULL;
    }
    return cancel_one(s) ? s : NULL;
}

/* F's one source (chains), or NULL after handling several (combinators,
 * scopes) or none. */
static fut_t *next_source(fut_t *f)
{
    fut_t *s;
    switch (f->kind) {
    case FK_THEN:
    case FK_CATCH:
    case FK_FINALLY:
        /* The source first: a callback and what it returned are never
         * pending at once. */
        if ((s = step(f->u.call.src, &f->cont)) != NULL)
            return s;
        return step(followed(f), &f->cont);
    case FK_ASYNC:
        return step(followed(f), &f->cont);
    case FK_TIMEOUT:
        return step(f->u.tm.input, &f->cont);
    case FK_MEMBER:
        /* Acquire: pairs with the seq_cst store in scope.c's attach. */
        return step(
            atomic_load_explicit(&f->u.member.src, memory_order_acquire),
            &f->cont);
    case FK_COMBINE:
        fut__comb_cancel_inputs(f, NULL);
        return NULL;
    default:
        return NULL;
    }
}

void fut__cancel_from(fut_t *f)
{
    /* seq_cst: the canceller's half of the Dekker pair (see above); also
     * orders our closing CAS before the loads of what F waits on. */
    atomic_thread_fence(memory_order_seq_cst);
    while ((f = next_source(f)) != NULL)
        atomic_thread_fence(memory_order_seq_cst);
}

bool fut__cancel_unobserved(fut_t *s, const fut_cont_t *mine)
{
    fut_t *c = step(s, mine);
    if (!c)
        return false;
    fut__cancel_from(c);
    return true;
}

void fut__cancel_followed(fut_t *f, fut_t *other)
{
    fut__cancel_unobserved(other, &f->cont);
}

int fut_cancel(fut_t *f)
{
    if (!f)
        return FUT_EINVAL;
    if (FUT__UNLIKELY(f->kind == FK_SCOPE)) {
        /* A scope's close future settles only once every member has:
         * cancelling it cancels the scope (scope.c). */
        if (fut__closed(f))
            return FUT_EALREADY;
        fut__scope_cancel_close(f);
        return 0;
    }
    if (!cancel_one(f))
        return FUT_EALREADY;
    fut__cancel_from(f);
    return 0;
}
