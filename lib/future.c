/* libfut — the future state machine: settling, continuations, references,
 * tasks and chaining.  Promises (and their cancel hooks) are in promise.c,
 * the exported result constructors in result.c.
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
 * attach order.
 *
 * REFERENCES
 *
 * refs counts: the application's handles, a promise handle, each node of
 * this future hanging on another's list, an executor holding its task or
 * timer, and a future that borrows its value (owner).  The last release
 * runs the value's destructor and frees the block. */
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define W_CLAIMED ((uintptr_t)1)
#define W_CLOSED ((uintptr_t)2)
#define W_DETACH ((uintptr_t)4) /* pending only: fut__detach is at work */
#define W_PTR ((uintptr_t) ~(uintptr_t)7)
#define W_SETTLED(state, err)                                                  \
    (W_CLOSED | ((uintptr_t)(state) << 2) | ((uintptr_t)(uint32_t)(err) << 32))

_Thread_local struct fut_tls fut__tls
    __attribute__((tls_model("initial-exec")));

/* The one future a failed allocation can still return: settled FUT_ENOMEM,
 * never freed (retain and release skip it). */
fut_t fut__enomem = {
    .word = W_SETTLED(FUT_REJECTED, FUT_ENOMEM),
    .refs = 1,
};

fut_state_t fut__state_of(uintptr_t w)
{
    return (w & W_CLOSED) ? (fut_state_t)((w >> 2) & 3) : FUT_PENDING;
}

int fut__err_of(uintptr_t w)
{
    return (w & W_CLOSED) ? (int)(int32_t)(uint32_t)(w >> 32) : 0;
}

static uintptr_t load_word(const fut_t *f)
{
    /* Pairs with the release in close_cas / the exchange in close_claimed:
     * a reader that sees CLOSED sees the value fields. */
    return atomic_load_explicit(&((fut_t *)f)->word, memory_order_acquire);
}

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

static __attribute__((noinline)) void destroy_slow(fut_t *f)
{
    fut_t *next = destroy_parts(f); /* most often NULL: nothing follows */
    if (next && unref(next))
        destroy_chain(next);
}

/* The last release.  Inline for the common block (a task's, a fiber's or
 * a promise's future with no destructor to run, nothing borrowed, no executor
 * reference): mark it dead and free it; everything else goes to
 * destroy_slow.  (A dtor is set only with a pointer value, and dropped if
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
    destroy_slow(f);
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
static void pay_owed(struct fut_tls *t)
{
    fut_t *o = t->owed;
    if (o) {
        t->owed = NULL;
        release_n(o, 1);
    }
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
 * destroy (destroy_slow's loop). */
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

static inline bool write_value(fut_t *f, const fut_result_t *r);

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

static bool is_call_kind(const fut_t *f);

/* F follows OTHER (our reference): settles like it when it settles.  A
 * follower that recorded OTHER (FF_FOLLOWS) keeps it until F goes: a
 * canceller of F, or the recorder's check in follow(), may be looking at
 * it (cancel.c).  (OTHER settles only now, so this keeps nothing longer
 * than a chain of followers kept anyway; destroy_slow frees such a chain
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

/* ---- the private fast path ---------------------------------------------
 * A future made by fut_async or chained to an already settled source, to
 * run on the inline executor from a thread that is not already inside an
 * inline task or a list of continuations, runs its callback before the
 * constructor returns.  Until then nobody else can see it (it is attached
 * nowhere and not yet returned), so it needs no executor hold and settles
 * with a plain store instead of a CAS: a link of a settled chain costs no
 * locked instruction at all.  Whoever receives it later does so through
 * some synchronisation of the application's (the return, a queue), which
 * orders these stores before their reads. */

static bool can_run_private(fut_executor_t *ex)
{
    const struct fut_tls *t = &fut__tls;
    return ex == &fut__inline && t->inline_depth == 0 && !t->firing;
}

static void settle_private(fut_t *f, const fut_result_t *r)
{
    uintptr_t w;
    if (write_value(f, r))
        w = W_SETTLED(FUT_FULFILLED, 0);
    else if (r->kind_ == RK_FAIL)
        w = W_SETTLED(FUT_REJECTED, r->err_);
    else {
        fut__settle(f, r); /* forward, adopt: may attach elsewhere */
        return;
    }
    atomic_store_explicit(&f->word, w, memory_order_relaxed);
}

/* Calls F's task or callback with F as the thread's current future (for
 * fut_cancel_requested and fut_executor_current), then drops F's source. */
static fut_result_t call_on(fut_t *f, fut_executor_t *ex)
{
    struct fut_tls *t = &fut__tls;
    fut_executor_t *pex = t->cur_ex;
    fut_t *pfut = t->cur_fut;
    t->cur_ex = ex;
    t->cur_fut = f;
    fut_result_t r = f->kind == FK_ASYNC
                         ? f->u.call.fn.task(f->u.call.arg)
                         : f->u.call.fn.then(f->u.call.arg, f->u.call.src);
    t->cur_ex = pex;
    t->cur_fut = pfut;
    if (FUT__UNLIKELY(t->owed != NULL))
        pay_owed(t); /* a debt never outlives the task that made it */
    return r;
}

static fut_result_t call(fut_t *f)
{
    return call_on(f, f->ex);
}

/* THE SOURCE REFERENCE OF A CALL KIND.  A then/catch/finally future D
 * holds its source until the thread that closes D releases it, unless
 * fut_cancel closed D: then a canceller may be reading the source
 * (cancel.c) and D keeps it until D goes (destroy_slow).  Closing is one
 * CAS (or a claim), so exactly one thread knows it closed D. */
static void drop_src(fut_t *f)
{
    if (is_call_kind(f)) {
        fut_release(f->u.call.src);
        f->u.call.src = NULL;
    }
}

void fut__drop_src(fut_t *f)
{
    drop_src(f);
}

/* Settles F, whose task or callback ran, with R; releases its source if
 * this settle closed F (a value or an error: forward and adopt close it
 * later, in follow). */
static void settle_ran(fut_t *f, fut_result_t *r)
{
    bool closes = r->kind_ != RK_FORWARD && r->kind_ != RK_ADOPT;
    if (fut__settle(f, r) == 0 && closes)
        drop_src(f);
}

static void run_private(fut_t *f)
{
    struct fut_tls *t = &fut__tls;
    t->inline_depth++; /* tasks the callback submits inline are queued */
    fut_result_t r = call(f);
    settle_private(f, &r);
    drop_src(f);
    fut__inline_drain();
    t->inline_depth--;
}

fut_t *fut_async(fut_executor_t *ex, fut_task_fn fn, void *arg)
{
    if (!ex || !fn)
        return fut__rejected(FUT_EINVAL);
    if (can_run_private(ex)) {
        fut_t *f = fut__new_block(FK_ASYNC, 1);
        if (!f)
            return &fut__enomem;
        f->ex = ex;
        f->u.call.fn.task = fn;
        f->u.call.arg = arg;
        run_private(f);
        return f;
    }
    fut_t *f =
        fut__new_block(FK_ASYNC, 2); /* the caller's and the executor's */
    if (!f)
        return &fut__enomem;
    f->ex = ex;
    f->u.call.fn.task = fn;
    f->u.call.arg = arg;
    /* From a task of EX itself (fork-join), no guard is needed (see
     * executor.c's protocol): call its submit directly. */
    int rc = fut__tls.cur_ex == ex ? ex->ops->submit(ex->impl, &f->task)
                                   : fut__ex_submit(ex, &f->task);
    if (rc) {
        fut__settle_err(f, FUT_REJECTED, rc);
        fut_release(f);
    }
    return f;
}

/* ---- tasks -------------------------------------------------------------- */

static bool is_call_kind(const fut_t *f)
{
    return f->kind == FK_THEN || f->kind == FK_CATCH || f->kind == FK_FINALLY;
}

static void drop_ex_ref(fut_t *f)
{
    if (f->flags & FF_EX_REF) {
        f->flags &= (uint8_t)~FF_EX_REF;
        fut__ex_release(f->ex);
    }
}

/* A finally's callback runs even when its future was cancelled first
 * (cancel.c): the clean-up is never dropped; its result is then
 * disposed of. */
void fut_task_run(fut_task_t *task)
{
    fut_t *f = FUT__CONTAINER(task, fut_t, task);
    if (FUT__UNLIKELY(f->kind == FK_FIBER)) {
        fut__fiber_run(f); /* the fiber holds F: no executor's hold */
        return;
    }
    if (FUT__LIKELY(!fut__closed(f)) || f->kind == FK_FINALLY) {
        fut_result_t r = call(f);
        settle_ran(f, &r);
    } else if (FUT__UNLIKELY(f->kind == FK_PLAIN && (f->flags & FF_HOOK))) {
        fut__hook_run(f); /* a cancelled promise's hook (promise.c) */
    } else if (f->kind == FK_POST) {
        fut__post_run(f); /* fut_post's work (post.c): frees F */
        return;
    }
    fut_release(f); /* the executor's hold */
}

/* THE TAKEN-TASK FAST PATH (fork-join)
 *
 * A task waiting for its child F finds F's task on top of its own worker's
 * deque and takes it back (ops->take: the pop is the one locked instruction
 * that settles the race with thieves) and runs it here.  Settling still
 * closes the word with a CAS, since another thread may be attaching to F
 * through a reference of its own.  What it saves is the executor's hold:
 * instead of a locked decrement now, the hold is *owed* by this thread
 * (fut_tls.owed) and released later, with the waiter's own reference when
 * the waiter releases F next (fut_release(F) then drops two at once, with
 * no locked instruction if they are the last two), or at this thread's
 * next fut_release of another future, or when the enclosing task or
 * callback returns (call()), whichever comes first.  Until then the count
 * only over-counts, so no other thread can free F early; nothing but this
 * thread touches the debt. */
void fut__run_taken(fut_t *f)
{
    struct fut_tls *t = &fut__tls;

    if (FUT__LIKELY(!fut__closed(f)) || f->kind == FK_FINALLY) {
        /* call(), minus what the take already guarantees: this thread
         * runs a task of F's executor (fut_wait checked f->ex == cur_ex),
         * so cur_ex stays as it is. */
        fut_t *pfut = t->cur_fut;
        t->cur_fut = f;
        fut_result_t r = f->kind == FK_ASYNC
                             ? f->u.call.fn.task(f->u.call.arg)
                             : f->u.call.fn.then(f->u.call.arg, f->u.call.src);
        t->cur_fut = pfut;
        pay_owed(t); /* debts made inside F's task, or an earlier one */
        /* fut__settle's common case, inline: a value, nothing attached,
         * nobody claiming (word 0); acq_rel as in close_cas.  Anything
         * else (fut__settle writes the value again, the same). */
        uintptr_t w0 = 0;
        if (write_value(f, &r) &&
            atomic_compare_exchange_strong_explicit(
                &f->word, &w0, W_SETTLED(FUT_FULFILLED, 0),
                memory_order_acq_rel, memory_order_relaxed))
            drop_src(f);
        else
            settle_ran(f, &r);
    } else {
        pay_owed(t);
    }
    t->owed = f;
}

const void *fut_task_fn_addr(const fut_task_t *task)
{
    if (!task)
        return NULL;
    const fut_t *f = FUT__CONTAINER(task, fut_t, task);
    return f->kind == FK_ASYNC || f->kind == FK_FIBER
               ? (const void *)(uintptr_t)f->u.call.fn.task
               : (const void *)(uintptr_t)f->u.call.fn.then;
}

/* A dropped finally still runs its callback, here, on the thread that
 * drops it (the executor's destroy), with no current executor. */
void fut_task_drop(fut_task_t *task)
{
    fut_t *f = FUT__CONTAINER(task, fut_t, task);
    if (f->kind == FK_FIBER) {
        fut__fiber_drop(f); /* fiber.c: it settles F */
        return;
    }
    if (f->kind == FK_FINALLY) {
        fut_result_t r = call_on(f, NULL);
        settle_ran(f, &r);
    } else if (fut__settle_err(f, FUT_REJECTED, FUT_ESHUTDOWN)) {
        drop_src(f);
    }
    fut_release(f);
}

/* ---- chaining ----------------------------------------------------------- */

static bool wants_call(const fut_t *d, fut_state_t s)
{
    switch (d->kind) {
    case FK_THEN:
        return s == FUT_FULFILLED;
    case FK_CATCH:
        return s != FUT_FULFILLED;
    default:
        return true;
    }
}

/* D's node on its source's list: SRC settled.  Either hand D's task to its
 * executor (the node's reference becomes the executor's hold) or settle D
 * right here without a callback (pass-through, shutdown, already
 * cancelled). */
/* D's node on its source's list: SRC settled.  Either hand D's task to its
 * executor (the node's reference becomes the executor's hold) or settle D
 * right here without a callback (pass-through, shutdown, already
 * cancelled).  A finally's task is handed over even if D was cancelled;
 * if its executor refuses it (shut down), the callback runs here, on the
 * thread that settled SRC, with no current executor. */
static void then_fire(fut_cont_t *c, fut_t *src)
{
    fut_t *d = FUT__CONTAINER(c, fut_t, cont);
    bool open = !fut__closed(d);
    if (open ? wants_call(d, fut__state_of(load_word(src)))
             : d->kind == FK_FINALLY) {
        /* Once submitted, D may run and be freed on another thread:
         * take what we need from it first. */
        fut_executor_t *ex = d->ex;
        bool ref = (d->flags & FF_EX_REF) != 0;
        d->flags &= (uint8_t)~FF_EX_REF;
        int rc = fut__ex_submit(ex, &d->task);
        if (ref)
            fut__ex_release(ex);
        if (FUT__LIKELY(rc == 0))
            return;
        if (d->kind == FK_FINALLY) {
            fut_result_t r = call_on(d, NULL);
            settle_ran(d, &r);
        } else if (fut__settle_err(d, FUT_REJECTED, rc)) {
            drop_src(d);
        }
    } else if (open && fut__settle_like(d, src)) {
        drop_src(d);
    }
    drop_ex_ref(d);
    fut_release(d);
}

static fut_t *chain(fut_t *f, fut_executor_t *ex, fut_then_fn fn, void *arg,
                    enum fut_kind kind)
{
    if (!f || !ex || !fn) {
        fut_release(f);
        return fut__rejected(FUT_EINVAL);
    }
    bool private = can_run_private(ex) && fut__closed(f);
    fut_t *d = fut__new(kind, private ? 1 : 2); /* the caller's, the node's */
    if (!d) {
        fut_release(f);
        return &fut__enomem;
    }
    d->ex = ex;
    d->u.call.src = f; /* the caller's reference, consumed */
    d->u.call.fn.then = fn;
    d->u.call.arg = arg;
    if (private) {
        if (wants_call(d, fut__state_of(load_word(f))))
            run_private(d);
        else if (fut__settle_like(d, f))
            drop_src(d);
        return d;
    }
    d->cont.fire = then_fire;
    if (!ex->is_static && !fut__closed(f)) {
        /* D may outlive the application's handle on EX while it waits. */
        fut__ex_retain(ex);
        d->flags |= FF_EX_REF;
    }
    fut__attach(f, &d->cont);
    return d;
}

fut_t *fut_then(fut_t *f, fut_executor_t *ex, fut_then_fn fn, void *arg)
{
    return chain(f, ex, fn, arg, FK_THEN);
}

fut_t *fut_catch(fut_t *f, fut_executor_t *ex, fut_then_fn fn, void *arg)
{
    return chain(f, ex, fn, arg, FK_CATCH);
}

fut_t *fut_finally(fut_t *f, fut_executor_t *ex, fut_then_fn fn, void *arg)
{
    return chain(f, ex, fn, arg, FK_FINALLY);
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
