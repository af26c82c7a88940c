/* libfut — the future state machine: settling, continuations and
 * the readers.  The block's making, references and last release are in
 * block.c, running tasks and chaining in task.c (what their hot paths
 * share is inline in future_impl.h), promises (and their cancel hooks) in
 * promise.c, the exported result constructors in result.c.
 *
 * THE STATE WORD
 *
 * Everything that changes concurrently about a future lives in one atomic
 * word, fut.word:
 *
 *     pending:  [ continuation list head ........... | D | 0 | C ]
 *     settled:  [ err (32 bits) | ... | state (2 bits) | 1 | 0 ]
 *                                                        ^   ^
 *                                                   CLOSED   CLAIMED
 *
 * Nodes are 8-byte aligned, so the two low bits are free while pending.
 *
 *   attach:  CAS-push a node while CLOSED is clear (keeping C).  If CLOSED is
 *            set the list is gone: fire the node at once.
 *   close:   one CAS from "pending, not claimed" to the settled word; the old
 *            word's pointer bits are the list, which the closer reverses
 *            (pushes are LIFO) and fires in attach order.
 *   claim:   settlers that must write the value before anyone may see it
 *            while other threads race to settle too (combinators, adopt)
 *            first CAS the C bit on, write, then exchange in the settled
 *            word.  A claimed future still accepts attaches; closing CASes
 *            fail on it, so there is exactly one winner.
 *   detach:  a timed wait that gave up takes its node off again
 *            (fut__detach), or polling a long-pending future would grow
 *            its list by a node a poll.  It CASes the D bit (bit 2, free
 *            while pending) on, unlinks its node, and clears D.  D is a
 *            lock against closers, claimers and other detachers only:
 *            they wait while it is set (a walk of the list, a few stores),
 *            because the closer would fire (and free) the nodes the
 *            detacher is walking.  Attaches go on pushing on top (keeping
 *            C and D): they touch no node already on the list.
 *
 *        attach (push)                    claim
 *          +----+                   +----------------+
 *          v    |                   |                v
 *       PENDING-+--- close (CAS) ---+--> CLOSED <-- CLAIMED (xchg)
 *
 * Single-writer settles (a task's result, a promise) write the value fields
 * first and close with one CAS: if a cancel closed first, nobody reads the
 * fields (readers look at the value only when the word says FULFILLED) and
 * the writer disposes of its value.  fut_cancel never writes fields at all:
 * its outcome is entirely in the word.
 *
 * Ordering: closing is a release that publishes the value fields; every
 * reader loads the word with acquire.  Pushing a node is a release, paired
 * with the acquire of the close that takes the list, so the closer sees the
 * node's contents.
 *
 * RE-ENTRANCY
 *
 * Firing a node may settle another future (a pass-through, a combinator, an
 * adopted future, a callback run inline), whose nodes would fire from inside
 * the first: a chain of 10^7 pass-throughs would need 10^7 frames.  So each
 * thread fires one list at a time: a list closed while the thread is already
 * firing is queued (fut_tls.dhead, FIFO) and fired by the outermost frame.
 * A node attached to a settled future whose list this thread has not fired
 * yet joins the end of that list, so single-threaded code always sees
 * attach order. */
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "future_impl.h"

_Thread_local struct fut_tls fut__tls
    __attribute__((tls_model("initial-exec")));

/* The one future a failed allocation can still return: settled FUT_ENOMEM,
 * never freed (retain and release skip it). */
fut_t fut__enomem = {
    .word = W_SETTLED(FUT_REJECTED, FUT_ENOMEM),
    .refs = 1,
};

/* ---- firing continuations ---------------------------------------------- */

static fut_cont_t *reverse(fut_cont_t *c)
{
    fut_cont_t *r = NULL;
    while (c) {
        fut_cont_t *n = c->next;
        c->next = r;
        r = c;
        c = n;
    }
    return r;
}

/* Fires LIST (attach order) of settled F.  t->alist is the part not yet
 * fired, so a late attach on this thread can join its end. */
static void fire_list(struct fut_tls *t, fut_t *f, fut_cont_t *list)
{
    fut_t *pa = t->active;
    fut_cont_t *pl = t->alist;
    t->active = f;
    t->alist = list;
    fut_cont_t *c;
    while ((c = t->alist) != NULL) {
        t->alist = c->next;
        c->fire(c, f);
    }
    t->active = pa;
    t->alist = pl;
}

bool fut__drain_deferred_one(void)
{
    struct fut_tls *t = &fut__tls;
    fut_t *g = t->dhead;
    if (!g)
        return false;
    t->dhead = g->dnext;
    if (!t->dhead)
        t->dtail = NULL;
    fut_cont_t *list = g->dlist;
    g->dlist = NULL;
    g->dnext = NULL;
    fire_list(t, g, list);
    fut_release(g); /* the queue's reference, taken in run_conts */
    return true;
}

/* Fires the list taken from F's word when F closed (LIFO order). */
static void run_conts(fut_t *f, fut_cont_t *lifo)
{
    if (!lifo)
        return;
    struct fut_tls *t = &fut__tls;
    fut_cont_t *list = reverse(lifo);
    if (t->firing) {
        f->dlist = list;
        f->dnext = NULL;
        fut_retain(f);
        if (t->dtail)
            t->dtail->dnext = f;
        else
            t->dhead = f;
        t->dtail = f;
        return;
    }
    t->firing = 1;
    fire_list(t, f, list);
    while (fut__drain_deferred_one())
        ;
    t->firing = 0;
}

/* If this thread holds F's list unfired (active or deferred), append C to
 * it and return true. */
static bool join_pending_list(struct fut_tls *t, fut_t *f, fut_cont_t *c)
{
    fut_cont_t **tail;
    if (t->active == f)
        tail = &t->alist;
    else {
        fut_t *g = t->dhead;
        while (g && g != f)
            g = g->dnext;
        if (!g)
            return false;
        tail = &g->dlist;
    }
    while (*tail)
        tail = &(*tail)->next;
    c->next = NULL;
    *tail = c;
    return true;
}

void fut__attach(fut_t *f, fut_cont_t *c)
{
    uintptr_t w = load_word(f);
    for (;;) {
        if (w & W_CLOSED) {
            struct fut_tls *t = &fut__tls;
            if (t->firing && join_pending_list(t, f, c))
                return;
            c->fire(c, f);
            return;
        }
        c->next = (fut_cont_t *)(w & W_PTR);
        /* Release: publishes *C to the closer, whose acquire exchange/CAS
         * takes the list.  Acquire on failure: we re-read the word and may
         * see CLOSED, after which we read F's outcome. */
        if (atomic_compare_exchange_weak_explicit(
                &f->word, &w, (uintptr_t)c | (w & (W_CLAIMED | W_DETACH)),
                memory_order_acq_rel, memory_order_acquire))
            return;
    }
}

/* ---- settling ----------------------------------------------------------- */

/* One CAS from pending-unclaimed to NW; false if someone settled or claimed
 * F first. */
/* F is claimed by another settler: wait until it closes, so that whoever
 * is told "already settled" finds it settled.  Most claim windows are a
 * few stores (settle_like: copy a value, exchange the word); a firing
 * timeout's also cancels its input, which runs that input's continuations,
 * so a callback there may come back here about F on the claiming thread
 * itself: fut__tls.claiming names F then, and we answer at once. */
/* True once F is closed (or the caller is F's own claimer); false if the
 * claimer let go of its claim without settling (fut__unclaim: an I/O
 * operation that found its fd not ready), and the caller may try again. */
static bool await_close(fut_t *f)
{
    if (fut__tls.claiming == f)
        return true; /* called back from inside our own claim window */
    uintptr_t w;
    for (unsigned i = 0; !((w = load_word(f)) & W_CLOSED); i++) {
        if (!(w & W_CLAIMED))
            return false;
        if (i >= 64)
            sched_yield(); /* the claimer was preempted */
    }
    return true;
}

/* A detacher holds F's list (fut__detach): wait until it lets go, and
 * return the word then.  (Bit 2 of a settled word is part of its state:
 * D means "detaching" only while CLOSED is clear.) */
static __attribute__((noinline)) uintptr_t await_detach(fut_t *f)
{
    uintptr_t w;
    for (unsigned i = 0;
         ((w = atomic_load_explicit(&f->word, memory_order_relaxed)) &
          (W_DETACH | W_CLOSED)) == W_DETACH;
         i++)
        if (i >= 64)
            sched_yield(); /* the detacher was preempted */
    return w;
}

static bool close_cas(fut_t *f, uintptr_t nw)
{
    uintptr_t w = atomic_load_explicit(&f->word, memory_order_relaxed);
    for (;;) {
        if (w & (W_CLAIMED | W_CLOSED | W_DETACH)) {
            if (w & W_CLAIMED) {
                if (await_close(f))
                    return false;
                /* The claimer let go unsettled (fut__unclaim): again. */
                w = atomic_load_explicit(&f->word, memory_order_relaxed);
                continue;
            }
            if (w & W_CLOSED)
                return false;
            w = await_detach(f);
            continue;
        }
        /* acq_rel: the release publishes the value fields written before
         * (pairs with load_word); the acquire pairs with attach's release
         * so the nodes we take are complete, and with fut__detach's
         * release so we see the links it changed. */
        if (atomic_compare_exchange_weak_explicit(
                &f->word, &w, nw, memory_order_acq_rel, memory_order_relaxed))
            break;
    }
    run_conts(f, (fut_cont_t *)(w & W_PTR));
    return true;
}

bool fut__claim(fut_t *f)
{
    uintptr_t w = atomic_load_explicit(&f->word, memory_order_relaxed);
    for (;;) {
        if (w & (W_CLAIMED | W_CLOSED | W_DETACH)) {
            if (w & W_CLAIMED) {
                if (await_close(f))
                    return false;
                /* The claimer let go unsettled (fut__unclaim): again. */
                w = atomic_load_explicit(&f->word, memory_order_relaxed);
                continue;
            }
            if (w & W_CLOSED)
                return false;
            w = await_detach(f); /* close_claimed takes the list */
            continue;
        }
        /* Relaxed is enough: the claim publishes nothing; close_claimed's
         * exchange is the release that matters (and pairs with detach's
         * release through the word's modification order). */
        if (atomic_compare_exchange_weak_explicit(&f->word, &w, w | W_CLAIMED,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed))
            return true;
    }
}

/* Unlinks C, which the D bit's holder knows to be on the list whose head
 * word is W; returns the word to store when letting go (D cleared). */
static uintptr_t unlink_node(fut_t *f, uintptr_t w, fut_cont_t *c)
{
    for (;;) {
        fut_cont_t *head = (fut_cont_t *)(w & W_PTR);
        if (head != c)
            break;
        /* On top: pop it and let go in one step.  Release: pairs with the
         * acquire of the next closer, claimer or detacher.  Acquire on
         * failure: an attach pushed on top; we walk its node. */
        if (atomic_compare_exchange_weak_explicit(
                &f->word, &w, (uintptr_t)c->next | (w & ~W_PTR & ~W_DETACH),
                memory_order_release, memory_order_acquire))
            return 0;
    }
    /* Below the top: only we may change links of nodes already on the list
     * (attaches only write their own node before pushing it). */
    for (fut_cont_t *p = (fut_cont_t *)(w & W_PTR); p; p = p->next)
        if (p->next == c) {
            p->next = c->next;
            break;
        }
    return W_DETACH;
}

bool fut__detach(fut_t *f, fut_cont_t *c)
{
    uintptr_t w = atomic_load_explicit(&f->word, memory_order_relaxed);
    for (;;) {
        if (w & (W_CLAIMED | W_CLOSED))
            return false; /* settled or about to: C fires */
        if (w & W_DETACH) {
            w = await_detach(f);
            continue;
        }
        /* Acquire: pairs with attach's release, so the nodes we walk are
         * complete (and with the last detacher's release). */
        if (atomic_compare_exchange_weak_explicit(&f->word, &w, w | W_DETACH,
                                                  memory_order_acquire,
                                                  memory_order_relaxed))
            break;
    }
    if (unlink_node(f, w | W_DETACH, c))
        /* Release: pairs with the acquire of the next closer, claimer or
         * detacher, which then sees the link we changed. */
        atomic_fetch_and_explicit(&f->word, ~W_DETACH, memory_order_release);
    return true;
}

void fut__unclaim(fut_t *f)
{
    /* Release: the claimer's reads of the buffer it acted on happen before
     * a canceller that now wins (its acquire load in await_close) returns.
     * A CAS loop, not a store: attaches may push nodes meanwhile. */
    uintptr_t w = atomic_load_explicit(&f->word, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&f->word, &w, w & ~W_CLAIMED,
                                                  memory_order_release,
                                                  memory_order_relaxed))
        ;
}

static void close_claimed(fut_t *f, uintptr_t nw)
{
    /* acq_rel: pairs with load_word (value) and with attach (nodes). */
    uintptr_t w = atomic_exchange_explicit(&f->word, nw, memory_order_acq_rel);
    run_conts(f, (fut_cont_t *)(w & W_PTR));
}

void fut__close_claimed_err(fut_t *f, fut_state_t state, int err)
{
    close_claimed(f, W_SETTLED(state, err));
}

void fut__close_claimed(fut_t *f, fut_result_t r)
{
    if (write_value(f, &r))
        close_claimed(f, W_SETTLED(FUT_FULFILLED, 0));
    else
        close_claimed(f, W_SETTLED(FUT_REJECTED, r.kind_ == RK_FAIL
                                                     ? r.err_
                                                     : FUT_EINVAL));
}

bool fut__settle_err(fut_t *f, fut_state_t state, int err)
{
    return close_cas(f, W_SETTLED(state, err));
}

/* Copies settled SRC's value into F (claimed or single writer).  A pointer
 * with a destructor stays owned by the future that owns it; F keeps that
 * one alive through F->owner. */
static void copy_value(fut_t *f, fut_t *src)
{
    f->val = src->val;
    if (src->vkind == VK_PTR_OWNS) { /* F pending: no owner of its own yet */
        f->dtor = NULL;
        f->owner = fut_retain(src->owner ? src->owner : src);
    }
    f->vkind = src->vkind;
}

bool fut__settle_like(fut_t *f, fut_t *src)
{
    if (!fut__claim(f))
        return false;
    fut__close_claimed_like(f, src);
    return true;
}

void fut__close_claimed_like(fut_t *f, fut_t *src)
{
    uintptr_t sw = load_word(src);
    fut_state_t s = fut__state_of(sw);
    if (s == FUT_FULFILLED)
        copy_value(f, src);
    close_claimed(f, W_SETTLED(s, fut__err_of(sw)));
}

/* F follows OTHER (our reference): settles like it when it settles.  A
 * follower that recorded OTHER (FF_FOLLOWS) keeps it until F goes: a
 * canceller of F, or the recorder's check in follow(), may be looking at
 * it (cancel.c).  (OTHER settles only now, so this keeps nothing longer
 * than a chain of followers kept anyway; fut__destroy_slow frees such a chain
 * in a loop.) */
static void follow_fire(fut_cont_t *c, fut_t *other)
{
    fut_t *f = FUT__CONTAINER(c, fut_t, cont);
    if (fut__settle_like(f, other))
        fut__drop_src(f);
    if (!(f->flags & FF_FOLLOWS))
        fut_release(other); /* the reference the result handed over */
    fut_release(f);         /* the node's reference */
}

/* The task or callback of ASYNC or call-kind F returned a pending OTHER:
 * record it where a canceller of F finds it (u.call.fn is dead once the
 * call returned), so that cancelling F reaches OTHER.  The protocol with
 * fut__cancel_from is in cancel.c (a Dekker pair: we store, then look at
 * F's word; the canceller closes F, then looks at hold). */
static void record_follows(fut_t *f, fut_t *other)
{
    f->u.call.fn.follows = other;
    f->flags |= FF_FOLLOWS;
    atomic_store_explicit(&f->hold, 1, memory_order_seq_cst);
}

static int follow(fut_t *f, fut_t *other)
{
    if (fut__closed(other)) {
        bool won = fut__settle_like(f, other);
        fut_release(other);
        if (won)
            fut__drop_src(f);
        return won ? 0 : FUT_EALREADY;
    }
    if (fut__closed(f)) {
        /* F was cancelled while its task or callback ran: what it
         * adopted is orphaned work; cancel it if nothing observes it. */
        if (fut__state_of(load_word(f)) == FUT_CANCELLED)
            fut__cancel_unobserved(other, NULL);
        fut_release(other);
        return FUT_EALREADY;
    }
    f->cont.fire = follow_fire;
    fut_retain(f);
    bool rec = f->kind == FK_ASYNC || is_call_kind(f);
    if (!rec) {
        fut__attach(other, &f->cont);
        return 0;
    }
    record_follows(f, other);
    fut__attach(other, &f->cont);
    /* seq_cst: the other half of the Dekker pair (cancel.c). */
    if (atomic_load_explicit(&f->word, memory_order_seq_cst) & W_CLOSED)
        fut__cancel_followed(f, other);
    return 0;
}

int fut__settle(fut_t *f, const fut_result_t *r)
{
    if (!write_value(f, r))
        switch (r->kind_) {
        case RK_FAIL:
            return fut__settle_err(f, FUT_REJECTED, r->err_) ? 0 : FUT_EALREADY;
        case RK_FORWARD:
            if (!r->u_.fut || r->u_.fut == f)
                return fut__settle_err(f, FUT_REJECTED, FUT_EINVAL)
                           ? 0
                           : FUT_EALREADY;
            return follow(f, fut_retain(r->u_.fut));
        case RK_ADOPT:
            if (!r->u_.fut || r->u_.fut == f) {
                fut_release(r->u_.fut);
                return fut__settle_err(f, FUT_REJECTED, FUT_EINVAL)
                           ? 0
                           : FUT_EALREADY;
            }
            return follow(f, r->u_.fut);
        default:
            return fut__settle_err(f, FUT_REJECTED, FUT_EINVAL) ? 0
                                                                : FUT_EALREADY;
        }
    /* The common case, inline: nothing attached, nobody claiming (word 0).
     * acq_rel as in close_cas; on failure close_cas looks again.  Looked
     * at first (relaxed, only a guess): a CAS bound to fail (a promise
     * with its continuation attached) is a locked instruction wasted. */
    uintptr_t w0 = atomic_load_explicit(&f->word, memory_order_relaxed);
    if (FUT__LIKELY(w0 == 0 && atomic_compare_exchange_strong_explicit(
                                   &f->word, &w0, W_SETTLED(FUT_FULFILLED, 0),
                                   memory_order_acq_rel, memory_order_relaxed)))
        return 0;
    if (close_cas(f, W_SETTLED(FUT_FULFILLED, 0)))
        return 0;
    /* Lost to a cancel or timeout: nobody will read the value; drop it. */
    f->vkind = VK_NONE;
    fut__dispose(*r);
    return FUT_EALREADY;
}

/* ---- inspecting and cancelling ----------------------------------------- */

fut_state_t fut_state(const fut_t *f)
{
    return f ? fut__state_of(load_word(f)) : FUT_PENDING;
}

int fut_error(const fut_t *f)
{
    return f ? fut__err_of(load_word(f)) : FUT_EINVAL;
}

void *fut_value(const fut_t *f)
{
    if (!f || fut__state_of(load_word(f)) != FUT_FULFILLED)
        return NULL;
    return f->vkind == VK_PTR || f->vkind == VK_PTR_OWNS ? f->val.ptr : NULL;
}

int64_t fut_value_i64(const fut_t *f)
{
    if (!f || fut__state_of(load_word(f)) != FUT_FULFILLED)
        return 0;
    return f->vkind == VK_I64 ? f->val.i64 : 0;
}

bool fut_cancel_requested(void)
{
    fut_t *f = fut__tls.cur_fut;
    return f && fut__closed(f);
}
