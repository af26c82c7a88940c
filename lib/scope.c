/* libfut — scopes (<fut/scope.h>): members, the limit, cancel and close.
 *
 * PROTOCOL
 *
 * A member costs the spawning thread and the thread that settles it no
 * shared lock and no line they both write per member, unless it needs
 * the limit, a first failure or a cancel.  The scope keeps three parts
 * apart, each on its own cache line:
 *
 *   spawners' line   the registry (head; a sweep takes it every 64
 *                    members' ends), the count of members tracked,
 *                    cancelled (read by every spawn, written once)
 *   settlers' line   remaining: the close counter, decremented once by
 *                    each tracked member when it closes
 *   the mutex        the limit (running, the FIFO queue of unstarted
 *                    members), the first failure, sweeping, cancelling
 *
 * THE CLOSE COUNTER.  remaining starts at BIAS (2^62, more members than
 * can exist).  Each tracked member (one spawned whose START did not
 * return a settled future, one queued, one added pending) is counted in
 * `tracked` by the thread that spawns it, before it is shared, and
 * decrements remaining once, after it closed (fut__member_close:
 * count_down, acq_rel).  fut_scope_close seals tracked (fetch_or of
 * SEALED, which returns the count) and subtracts BIAS - count: remaining
 * is then the number of tracked members not yet closed.  A member made
 * after the seal (from the work of a member still pending, which keeps
 * remaining above 0: hedged.c's attempts) sees SEALED in its own
 * increment of tracked and adds itself to remaining.  Whoever brings
 * remaining to 0 (the closer, or the last member) settles the close
 * future; before the close it cannot reach 0.  So the close future never settles before every member
 * closed, and it is settled exactly once.  The close future holds two
 * references from its creation: the handle's (returned by close) and the
 * members', dropped by whoever settles it; the scope's struct goes with
 * the close future (fut__scope_destroy), so it outlives every member's
 * bookkeeping: a member touches the scope only before its count_down.
 *
 *     spawn --> WAITING (queued) --slot free--> STARTED --src settles--> closed
 *                  \                               \
 *                   \--cancel----------------------+--cancel-----------> closed
 *
 * THE REGISTRY.  A tracked member that starts (or is added) pending is
 * pushed (CAS, seq_cst) on a lock-free stack through task.next, which a
 * member never gives an executor; the registry holds one reference on it.
 * The thread that settles a member does not unlink it: a closed member
 * stays until a sweep, which every 64th member's end on a thread tries
 * (trylock), and the close future's settle does for all.  Under the
 * mutex a sweep takes the stack (exchange) onto the older part's tail,
 * oldest first (absorb), unlinks the oldest while they are closed, and
 * walks the whole older part only once the members closed since its last
 * walk are half its length (prune): each walk is paid by as many ends,
 * and about twice the pending members are kept at most.  The references
 * are dropped outside the mutex, on the settling side (a block freed
 * there goes home in a batch: alloc.c), not in a burst where the close
 * future goes.  A queued member is in the queue (task.next too), not yet
 * on the registry; it is born with the registry's reference, which
 * start_member drops if START's future was settled, after the member
 * closed.
 *
 * CANCEL (fut_scope_cancel, the close future's cancel, fail_fast) sets
 * `cancelled` (seq_cst), then under the mutex takes the whole queue,
 * absorbs the stack (its exchange is seq_cst) and counts itself in
 * `cancelling`, which stops unlinking; outside the mutex it cancels the
 * queued members and walks the older part up to the tail it saw,
 * cancelling each member not closed.  A spawner pushes its member
 * (seq_cst), then loads `cancelled` (seq_cst): of the two, one sees the
 * other (a Dekker pair), so a member pushed too late for the walk
 * cancels itself.  A member popped from the queue just
 * before a cancel took it checks `cancelled` before START and after its
 * push.  What START returned is recorded with cancel.c's Dekker pair
 * (attach_started), so a cancel racing START still reaches it.
 * FUT_SCOPE_BROKEN_DEKKER (tests/stress/scope_race) loads `cancelled`
 * before the push instead; FUT_SCOPE_BROKEN_COUNT counts a member down
 * before it closes.
 *
 * THE LIMIT.  spawn takes a slot (running++) or queues the member, under
 * the mutex; a member that held a slot gives it back under the mutex when
 * it ends, popping the next queued members, which are started outside it
 * (start_all).  A member without a slot that fulfils takes no lock.
 *
 * A member started at once whose START returned a settled future is that
 * future: not tracked, not registered, its block back unused; the scope
 * hears only of a slot to give back or an outcome that is not a
 * fulfilment.  fut_scope_add of a settled future returns it the same way.
 */
#include <pthread.h>
#include <sched.h>
#include <stdalign.h>

#include "internal.h"

#define BIAS ((uint64_t)1 << 62)
#define SEALED ((uint64_t)1 << 63) /* in tracked: fut_scope_close counted */
#define SWEEP_EVERY 64u

struct fut_scope {
    /* Read-only after create. */
    void *raw; /* what fut__sys_alloc gave (the struct is aligned in it) */
    fut_t *closef; /* the close future; owns this struct */
    size_t limit;
    bool fail_fast;
    /* The spawners' line. */
    alignas(64) _Atomic(fut_t *) head; /* the registry, through task.next */
    _Atomic uint64_t tracked;          /* members ever tracked */
    atomic_bool cancelled;             /* set once, under the mutex */
    /* The settlers' line. */
    alignas(64) _Atomic uint64_t remaining; /* see the top */
    /* Under the mutex. */
    alignas(64) pthread_mutex_t mu;
    fut_task_t *qhead, *qtail; /* unstarted members, FIFO */
    size_t running;            /* started and unsettled, with a slot */
    fut_t *ohead, *otail;      /* the registry's older part, oldest first */
    size_t olen;               /* its length */
    uint64_t walked_at;        /* settled_count at the last full walk */
    uint64_t popped;           /* members unlinked as oldest since then */
    unsigned cancelling;       /* walks of the registry under way */
    fut_state_t bad_state;     /* first member not fulfilled, if any */
    int bad_err;
    bool cancel_close;
};

static bool is_cancelled(struct fut_scope *s)
{
    /* seq_cst: the spawners' half of the Dekker pair with cancel (see the
     * top); partner of the seq_cst store in set_cancelled and of the
     * registry's seq_cst head load in cancel_members.  (Under the mutex
     * the mutex orders it too.) */
    return atomic_load_explicit(&s->cancelled, memory_order_seq_cst);
}

static void set_cancelled(struct fut_scope *s)
{
    /* seq_cst, under the mutex: the canceller's half; partner of
     * is_cancelled after a push. */
    atomic_store_explicit(&s->cancelled, true, memory_order_seq_cst);
}

static fut_t *queued_member(fut_task_t *t)
{
    return FUT__CONTAINER(t, fut_t, task);
}

static fut_t *next_member(const fut_t *m)
{
    return m->task.next ? queued_member(m->task.next) : NULL;
}

/* Releases N references of each member of a chain through task.next. */
static void release_chain(fut_task_t *t, int n)
{
    for (fut_task_t *next; t; t = next) {
        next = t->next;
        for (int i = 0; i < n; i++)
            fut_release(queued_member(t));
    }
}

/* ---- making a scope ----------------------------------------------------- */

static void init_scope(struct fut_scope *s, void *raw, fut_t *cf,
                       const fut_scope_opts_t *opts)
{
    s->raw = raw;
    s->closef = cf;
    s->limit = opts ? opts->limit : 0;
    s->fail_fast = opts ? opts->fail_fast : false;
    atomic_init(&s->head, NULL);
    atomic_init(&s->tracked, 0);
    atomic_init(&s->cancelled, false);
    atomic_init(&s->remaining, BIAS);
    s->qhead = s->qtail = NULL;
    s->running = 0;
    s->ohead = s->otail = NULL;
    s->olen = 0;
    s->walked_at = s->popped = 0;
    s->cancelling = 0;
    s->bad_state = FUT_PENDING;
    s->bad_err = 0;
    s->cancel_close = false;
}

int fut_scope_create(fut_scope_t **out, const fut_scope_opts_t *opts)
{
    if (!out)
        return FUT_EINVAL;
    *out = NULL;
    void *raw = fut__sys_alloc(sizeof(struct fut_scope) + 63);
    struct fut_scope *s =
        raw ? (struct fut_scope *)(((uintptr_t)raw + 63) & ~(uintptr_t)63)
            : NULL;
    /* The handle's reference and the members' (see the top). */
    fut_t *cf = s ? fut__new(FK_SCOPE, 2) : NULL;
    if (cf)
        cf->u.member.scope = NULL;
    if (!cf || pthread_mutex_init(&s->mu, NULL) != 0) {
        if (cf) { /* no scope yet: its destroy frees nothing */
            fut_release(cf);
            fut_release(cf);
        }
        fut__sys_free(raw);
        return FUT_ENOMEM;
    }
    init_scope(s, raw, cf, opts);
    cf->u.member.scope = s;
    *out = s;
    return 0;
}

/* The close future's last release (block.c's fut__destroy_slow): every
 * member closed; what the registry and the queue still hold goes. */
void fut__scope_destroy(fut_t *f)
{
    struct fut_scope *s = f->u.member.scope;
    if (!s)
        return;
    fut_t *h = atomic_load_explicit(&s->head, memory_order_acquire);
    release_chain(h ? &h->task : NULL, 1);
    release_chain(s->ohead ? &s->ohead->task : NULL, 1);
    release_chain(s->qhead, 2); /* the queue's and the registry's */
    pthread_mutex_destroy(&s->mu);
    fut__sys_free(s->raw);
}

/* The members' reference on the close future is held until it settles,
 * so while it is pending it is always there (cancel.c). */
uint32_t fut__scope_holds(const fut_t *f)
{
    (void)f;
    return 1;
}

static void sweep(struct fut_scope *s, bool all);

/* ---- the close counter -------------------------------------------------- */

/* Every member closed and the scope is closed: settle its future and drop
 * the members' reference on it.  Nothing of S is touched after. */
static void settle_close(struct fut_scope *s)
{
    fut_t *cf = s->closef;
    sweep(s, true); /* here, not where the close future goes (see the top) */
    pthread_mutex_lock(&s->mu);
    fut_state_t st = s->cancel_close ? FUT_CANCELLED : s->bad_state;
    int err = s->cancel_close ? FUT_ECANCELED : s->bad_err;
    pthread_mutex_unlock(&s->mu);
    if (st == FUT_PENDING)
        fut__settle_err(cf, FUT_FULFILLED, 0);
    else
        fut__settle_err(cf, st, err);
    fut_release(cf); /* the members' */
}

/* A tracked member closed (see the top): its last touch of S. */
static void count_down(struct fut_scope *s)
{
    /* acq_rel: the release orders this member's close before the close
     * future's settle; the acquire (of the thread that reaches 0) pairs
     * with every other member's release and the closer's. */
    if (atomic_fetch_sub_explicit(&s->remaining, 1, memory_order_acq_rel) ==
        1)
        settle_close(s);
}

/* A new member, not yet shared, is tracked: counted for fut_scope_close
 * or, after it (a late member, made while another is pending: see the
 * top), in remaining itself. */
static void count_member(struct fut_scope *s)
{
    /* Relaxed: the RMWs on tracked are ordered among themselves, so either
     * the closer's fetch_or reads this increment or this one reads
     * SEALED; remaining cannot reach 0 meanwhile, since the member that
     * made this one is pending.  The member's count_down comes after,
     * through its publication. */
    if (atomic_fetch_add_explicit(&s->tracked, 1, memory_order_relaxed) &
        SEALED)
        atomic_fetch_add_explicit(&s->remaining, 1, memory_order_relaxed);
}

/* ---- the registry ------------------------------------------------------- */

/* This thread's members' ends, for sweeps. */
static _Thread_local unsigned t_ends;

/* Pushes M (tracked, its references set) on S's registry. */
static void registry_push(struct fut_scope *s, fut_t *m)
{
    fut_t *h = atomic_load_explicit(&s->head, memory_order_relaxed);
    do
        m->task.next = h ? &h->task : NULL;
    /* seq_cst: publishes M's link (release) and is the spawner's store of
     * the Dekker pair with cancel (partner: absorb's exchange). */
    while (!atomic_compare_exchange_weak_explicit(
        &s->head, &h, m, memory_order_seq_cst, memory_order_relaxed));
}

/* Under the mutex: moves the members pushed since the last call to the
 * older part's tail, oldest first.  Only the nodes it moves and the old
 * tail's link change, so a walk that stops at its own snapshot of the
 * tail may run meanwhile. */
static void absorb(struct fut_scope *s)
{
    /* seq_cst: acquire pairs with the pushes' release (their links); the
     * canceller's load of the Dekker pair (partner: registry_push). */
    fut_t *h = atomic_exchange_explicit(&s->head, NULL, memory_order_seq_cst);
    fut_t *first = NULL;
    size_t n = 0;
    for (fut_t *m = h, *next; m; m = next, n++) {
        next = next_member(m);
        m->task.next = first ? &first->task : NULL;
        first = m;
    }
    if (!first)
        return;
    if (s->otail)
        s->otail->task.next = &first->task;
    else
        s->ohead = first;
    s->otail = h;
    s->olen += n;
}

/* About how many tracked members have closed: a heuristic for prune
 * (relaxed loads; a sweep racing the close may get a wild figure once). */
static uint64_t settled_count(struct fut_scope *s)
{
    uint64_t t = atomic_load_explicit(&s->tracked, memory_order_relaxed);
    uint64_t base = (t & SEALED) ? t & ~SEALED : BIAS;
    return base - atomic_load_explicit(&s->remaining, memory_order_relaxed);
}

/* Under the mutex, no walk under way: unlinks closed members onto *GONE:
 * the oldest while they are closed (members mostly end in the order they
 * started), and all of them once the members that closed since the last
 * full walk, less those unlinked as oldest, are half the older part (so
 * at most about twice the pending members stay, and each walk's cost is
 * paid by as many members' ends). */
static void prune(struct fut_scope *s, fut_task_t **gone)
{
    while (s->ohead && fut__closed(s->ohead)) {
        fut_t *m = s->ohead;
        s->ohead = next_member(m);
        m->task.next = *gone;
        *gone = &m->task;
        s->olen--;
        s->popped++;
    }
    if (!s->ohead)
        s->otail = NULL;
    uint64_t settled = settled_count(s);
    if (settled - s->walked_at < s->popped + s->olen / 2 + SWEEP_EVERY / 2)
        return;
    s->walked_at = settled;
    s->popped = 0;
    fut_t *prev = NULL;
    for (fut_t *m = s->ohead, *next; m; m = next) {
        next = next_member(m);
        if (!fut__closed(m)) {
            prev = m;
            continue;
        }
        if (prev)
            prev->task.next = next ? &next->task : NULL;
        else
            s->ohead = next;
        m->task.next = *gone;
        *gone = &m->task;
        s->olen--;
    }
    s->otail = prev;
}

/* Moves new members to the older part and unlinks closed ones, unless
 * the mutex is busy or a cancel walks the registry; drops them outside
 * the mutex.  ALL: every member has closed (the close future settles):
 * takes them all. */
static void sweep(struct fut_scope *s, bool all)
{
    if (pthread_mutex_trylock(&s->mu) != 0)
        return; /* someone else sweeps, cancels or ends a member */
    fut_task_t *gone = NULL;
    absorb(s);
    if (s->cancelling == 0) {
        if (all) {
            gone = s->ohead ? &s->ohead->task : NULL;
            s->ohead = s->otail = NULL;
            s->olen = 0;
        } else {
            prune(s, &gone);
        }
    }
    pthread_mutex_unlock(&s->mu);
    release_chain(gone, 1); /* values' destructors run outside the mutex */
}

/* ---- members ------------------------------------------------------------ */

static void member_fire(fut_cont_t *c, fut_t *src)
{
    fut_t *m = FUT__CONTAINER(c, fut_t, cont);
    if (fut__claim(m))
        fut__member_close(m, src, FUT_PENDING, 0);
    fut_release(m); /* the node's reference */
}

/* M (started) follows F, START's result (a reference M keeps until it
 * goes); the caller's reference on M becomes the node's, and the caller
 * holds another one (the registry's) until this returns. */
static void attach_started(fut_t *m, fut_t *f)
{
    m->cont.fire = member_fire;
    /* seq_cst: the recorder's half of cancel.c's Dekker pair. */
    atomic_store_explicit(&m->u.member.src, f, memory_order_seq_cst);
    fut__attach(f, &m->cont);
    if (atomic_load_explicit(&m->word, memory_order_seq_cst) & 2u)
        fut__cancel_unobserved(f, &m->cont); /* cancelled meanwhile */
}

/* Tracked M follows F (pending; NULL: attached already): registered,
 * attached, and cancelled if the scope was (the Dekker pair at the top). */
static void track(struct fut_scope *s, fut_t *m, fut_t *f)
{
#ifdef FUT_SCOPE_BROKEN_DEKKER
    /* Broken on purpose: the load before the push, and the push late (a
     * store-load reordering, its store kept in a store buffer a while). */
    bool cancelled = is_cancelled(s);
    sched_yield();
    registry_push(s, m);
#else
    registry_push(s, m);
    bool cancelled = is_cancelled(s);
#endif
    if (f)
        attach_started(m, f);
    if (cancelled)
        fut_cancel(m);
}

/* Runs popped M's START (M STARTED, tracked, with the queue's reference,
 * which becomes its node's, and the registry's), unless M was cancelled
 * first. */
static void start_member(fut_t *m)
{
    struct fut_scope *s = m->u.member.scope;
    if (!fut__closed(m) && is_cancelled(s))
        fut_cancel(m); /* popped just before a cancel took the queue */
    if (fut__closed(m)) { /* cancelled before it started: never starts */
        fut_release(m);
        fut_release(m);
        return;
    }
    fut_t *f = m->u.member.start(m->u.member.arg);
    if (!f)
        f = fut__rejected(FUT_EINVAL);
    if (!fut__closed(f)) {
        track(s, m, f);
        return;
    }
    attach_started(m, f); /* fires at once: M closes */
    if (fut__closed(m))
        fut_release(m); /* the registry's, unused: after M closed (cancel.c) */
    else
        track(s, m, NULL); /* F's list is still this thread's to fire */
}

/* Under the mutex: pops queued members into the free slots (onto *GO in
 * order, marked STARTED) and settled ones onto *DROP. */
static void fill_slots(struct fut_scope *s, fut_task_t **go, fut_task_t **drop)
{
    fut_task_t **tail = go;
    while (!is_cancelled(s) && s->qhead &&
           (s->limit == 0 || s->running < s->limit)) {
        fut_task_t *t = s->qhead;
        s->qhead = t->next;
        if (!s->qhead)
            s->qtail = NULL;
        fut_t *w = queued_member(t);
        if (fut__closed(w)) {
            t->next = *drop;
            *drop = t;
            continue;
        }
        /* Relaxed: read by the thread that closes W, which the START and
         * attach that follow order. */
        atomic_store_explicit(&w->hold, MS_LISTED | MS_STARTED,
                              memory_order_relaxed);
        s->running++;
        t->next = NULL;
        *tail = t;
        tail = &t->next;
    }
}

/* Members this thread must start, in order (task.next; any scope).  A
 * START whose future is already settled frees its slot inside the start
 * (member_fire runs at attach), which pops the next member: started here
 * it would nest one frame per queued member, so nested pops are appended
 * and the outermost call starts them in a loop. */
static _Thread_local struct {
    int depth;
    fut_task_t *head, *tail;
} t_starts;

static void start_all(fut_task_t *go)
{
    for (fut_task_t *n; go; go = n) {
        n = go->next;
        go->next = NULL;
        if (t_starts.tail)
            t_starts.tail->next = go;
        else
            t_starts.head = go;
        t_starts.tail = go;
    }
    if (t_starts.depth)
        return; /* the outer call starts them */
    t_starts.depth = 1;
    fut_task_t *t;
    while ((t = t_starts.head) != NULL) {
        t_starts.head = t->next;
        if (!t_starts.head)
            t_starts.tail = NULL;
        start_member(queued_member(t));
    }
    t_starts.depth = 0;
}

static void cancel_members(struct fut_scope *s);

/* Under the mutex: a member's outcome ST/ERR, and its slot if it held one
 * (SLOT) given to the queue's next (popped onto *GO and *DROP, see
 * fill_slots).  True if it is fail_fast's first rejection. */
static bool member_ended(struct fut_scope *s, fut_state_t st, int err,
                         bool slot, fut_task_t **go, fut_task_t **drop)
{
    if (slot)
        s->running--;
    if (st != FUT_FULFILLED && s->bad_state == FUT_PENDING) {
        s->bad_state = st;
        s->bad_err = err;
    }
    bool ff = s->fail_fast && st == FUT_REJECTED && !is_cancelled(s);
    if (ff)
        set_cancelled(s);
    fill_slots(s, go, drop);
    return ff;
}

/* The scope's part of a member's end, with ST/ERR its outcome and SLOT
 * whether it gives a slot back: under the mutex only for a slot or an
 * outcome that is not a fulfilment; then (outside it) frees what was
 * dropped from the queue, starts what was popped and, for fail_fast's
 * first rejection, cancels the other members. */
static void note_end(struct fut_scope *s, fut_state_t st, int err, bool slot)
{
    if (FUT__LIKELY(!slot && st == FUT_FULFILLED))
        return;
    fut_task_t *go = NULL, *drop = NULL;
    pthread_mutex_lock(&s->mu);
    bool ff = member_ended(s, st, err, slot, &go, &drop);
    pthread_mutex_unlock(&s->mu);
    release_chain(drop, 2); /* the queue's and the registry's */
    start_all(go);
    if (ff) {
        /* The close future may settle while cancel_members still walks S
         * (the fuzzer's heap-use-after-free, crash-ff9e185e: fail_fast, a
         * rejection, the others cancelled): hold it until the walk ends. */
        fut_t *cf = fut_retain(s->closef);
        cancel_members(s);
        fut_release(cf);
    }
}

void fut__member_close(fut_t *m, fut_t *src, fut_state_t st, int err)
{
    struct fut_scope *s = m->u.member.scope;
    if (src) {
        st = fut_state(src);
        err = fut_error(src);
    }
    bool slot = (atomic_load_explicit(&m->hold, memory_order_relaxed) &
                 MS_STARTED) != 0;
#ifdef FUT_SCOPE_BROKEN_COUNT
    count_down(s); /* broken on purpose: before M closes */
#endif
    /* M closes first: the members started into its slot, the others'
     * cancel and the close future come after it. */
    if (src)
        fut__close_claimed_like(m, src);
    else
        fut__close_claimed_err(m, st, err);
    note_end(s, st, err, slot);
    if (++t_ends % SWEEP_EVERY == 0)
        sweep(s, false); /* before count_down: S lives until then */
#ifndef FUT_SCOPE_BROKEN_COUNT
    count_down(s);
#endif
}

/* A member of a cancelled scope, spawned after the cancel: settled
 * FUT_ECANCELED, START never called, not tracked. */
static fut_t *cancelled_member(struct fut_scope *s)
{
    note_end(s, FUT_CANCELLED, FUT_ECANCELED, false);
    fut_t *f = fut__new(FK_PLAIN, 1);
    if (!f)
        return fut__rejected(FUT_ENOMEM);
    fut__settle_err(f, FUT_CANCELLED, FUT_ECANCELED);
    return f;
}

/* Spawn's member M runs its START now: M (plain, the caller's reference
 * its only one) is neither tracked nor registered while START runs; SLOT:
 * M took one of the limit's slots.  Returns the member. */
static fut_t *start_now(struct fut_scope *s, fut_t *m, bool slot)
{
    fut_t *f = m->u.member.start(m->u.member.arg);
    if (!f)
        f = fut__rejected(FUT_EINVAL);
    if (fut__closed(f)) {
        fut_release(m); /* plain and private: back to the free list */
        note_end(s, fut_state(f), fut_error(f), slot);
        return f;
    }
    m->kind = FK_MEMBER;
    /* Relaxed: M is private until registry_push publishes it. */
    atomic_store_explicit(&m->refs, 3, memory_order_relaxed); /* the
        caller's, the node's, the registry's */
    atomic_store_explicit(&m->hold, slot ? MS_LISTED | MS_STARTED : MS_LISTED,
                          memory_order_relaxed);
    count_member(s);
    track(s, m, f);
    return m;
}

/* Spawn with a limit: M takes a slot and starts now, or waits in the
 * queue (tracked, with the queue's and the registry's references). */
static fut_t *spawn_limited(struct fut_scope *s, fut_t *m)
{
    pthread_mutex_lock(&s->mu);
    bool cancelled = is_cancelled(s);
    bool now = !cancelled && s->running < s->limit;
    if (now) {
        s->running++;
    } else if (!cancelled) {
        m->kind = FK_MEMBER;
        atomic_store_explicit(&m->refs, 3, memory_order_relaxed);
        atomic_store_explicit(&m->hold, MS_LISTED, memory_order_relaxed);
        count_member(s);
        m->task.next = NULL;
        if (s->qtail)
            s->qtail->next = &m->task;
        else
            s->qhead = &m->task;
        s->qtail = &m->task;
    }
    pthread_mutex_unlock(&s->mu);
    if (now)
        return start_now(s, m, true);
    if (cancelled) {
        fut_release(m);
        return cancelled_member(s);
    }
    return m;
}

fut_t *fut_scope_spawn(fut_scope_t *s, fut_start_fn start, void *arg)
{
    if (!s || !start)
        return fut__rejected(FUT_EINVAL);
    /* Relaxed: a guess; start_now's check after the push decides. */
    if (atomic_load_explicit(&s->cancelled, memory_order_relaxed))
        return cancelled_member(s);
    /* Plain until it is shared: one START settles at once does not need
     * (start_now), so that fut_release frees it inline. */
    fut_t *m = fut__new(FK_PLAIN, 1);
    if (!m)
        return fut__rejected(FUT_ENOMEM);
    m->u.member.scope = s;
    m->u.member.start = start;
    m->u.member.arg = arg;
    if (s->limit == 0)
        return start_now(s, m, false);
    return spawn_limited(s, m);
}

fut_t *fut_scope_add(fut_scope_t *s, fut_t *f)
{
    if (!s || !f) {
        fut_release(f);
        return fut__rejected(FUT_EINVAL);
    }
    if (fut__closed(f)) { /* settled: F is the member (see the top) */
        note_end(s, fut_state(f), fut_error(f), false);
        return f;
    }
    /* Not counted against the limit (no slot to give back): F was
     * started by the caller, and a slot it held could be the one a
     * queued member that F waits for needs. */
    fut_t *m = fut__new(FK_MEMBER, 3); /* caller, node, registry */
    if (!m) {
        fut_release(f);
        return fut__rejected(FUT_ENOMEM);
    }
    m->u.member.scope = s;
    atomic_store_explicit(&m->hold, MS_LISTED, memory_order_relaxed);
    count_member(s);
    track(s, m, f);
    return m;
}

/* ---- cancel and close --------------------------------------------------- */

/* Cancels the queued members and every registered member not closed,
 * outside the mutex (see the top).  The caller holds the close future. */
static void cancel_members(struct fut_scope *s)
{
    pthread_mutex_lock(&s->mu);
    s->cancelling++;
    fut_task_t *q = s->qhead;
    s->qhead = s->qtail = NULL;
    absorb(s); /* after set_cancelled: the Dekker pair's load */
    fut_t *first = s->ohead, *last = s->otail;
    pthread_mutex_unlock(&s->mu);
    for (fut_task_t *n; q; q = n) {
        n = q->next;
        fut_cancel(queued_member(q)); /* never starts */
        fut_release(queued_member(q));
        fut_release(queued_member(q));
    }
    /* From FIRST to LAST nothing is unlinked while cancelling > 0 (and
     * LAST's link may grow meanwhile: not read); each member is held by
     * the registry. */
    for (fut_t *m = first; m; m = m == last ? NULL : next_member(m))
        if (!fut__closed(m))
            fut_cancel(m);
    pthread_mutex_lock(&s->mu);
    s->cancelling--;
    pthread_mutex_unlock(&s->mu);
}

void fut_scope_cancel(fut_scope_t *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    set_cancelled(s);
    pthread_mutex_unlock(&s->mu);
    cancel_members(s);
}

fut_t *fut_scope_close(fut_scope_t *s)
{
    if (!s)
        return fut__rejected(FUT_EINVAL);
    fut_t *cf = s->closef;
    /* Relaxed: see count_member. */
    uint64_t adj = BIAS - (atomic_fetch_or_explicit(&s->tracked, SEALED,
                                                    memory_order_relaxed) &
                           ~SEALED);
    /* acq_rel: as count_down's (see the top). */
    if (atomic_fetch_sub_explicit(&s->remaining, adj, memory_order_acq_rel) ==
        adj)
        settle_close(s);
    return cf; /* the handle's reference */
}

/* fut_cancel of a pending close future (cancel.c); its caller holds it. */
void fut__scope_cancel_close(fut_t *f)
{
    struct fut_scope *s = f->u.member.scope;
    pthread_mutex_lock(&s->mu);
    s->cancel_close = true;
    set_cancelled(s);
    pthread_mutex_unlock(&s->mu);
    cancel_members(s);
}
