/* libfut — scopes (<fut/scope.h>): members, the limit, cancel and close.
 *
 * PROTOCOL
 *
 * A scope is a small struct under one mutex, owned by its close future (an
 * FK_SCOPE block made with it): the struct goes when that future does.
 * The close future's references: the handle (until fut_scope_close hands
 * it to the caller) and one for all unsettled members together (taken when
 * their count leaves 0, dropped when it returns to 0, after that last
 * member's bookkeeping), so the struct outlives every member's.
 *
 * A member is one FK_MEMBER future (its only allocation), with references
 * from the caller and either its place in the queue of unstarted members
 * (task.next, FIFO), the start under way, or, once started, its node on
 * what START returned (u.member.src, held until the member goes).  The
 * scope's list of unsettled members (snext/sprev, under the mutex) holds
 * none: a member leaves it before that reference can go.
 *
 * A member started at once by spawn (a free slot, or no limit) is not in
 * the list, nor counted unsettled, while its START runs: the caller holds
 * its only reference and close cannot come before spawn returns.  If
 * START's future is settled already (an inline task, a ready value), that
 * future is the member: the block goes back unused, and the scope only
 * hears of the slot given back and of an outcome that is not a
 * fulfilment, so with no limit such a member takes no lock and no locked
 * instruction.  Otherwise the member joins the list then, under the
 * mutex, and is cancelled there if the scope was cancelled meanwhile: a
 * cancel racing START still reaches what START returned.  Without a limit
 * spawn reads `cancelled` without the mutex (relaxed): a cancel it misses
 * is found again by that check under the mutex.
 *
 *     spawn --> WAITING --slot free--> STARTED --src settles--> settled
 *                  \                      \
 *                   \--cancel-------------+--cancel----------> settled
 *
 * A member's end runs once, by the thread that claimed it
 * (fut__member_close): under the mutex, while it is claimed and before it
 * closes (its list fields share room with the deferred-completion queue's,
 * which closing may use), it leaves the list, gives its slot to the next
 * queued member and keeps the first non-fulfilment; then it closes; then,
 * outside the mutex, START runs for the members popped, fail_fast cancels
 * the rest, and the last member of a closed scope settles the close
 * future (after every member closed: never early).  A queued member that was
 * cancelled stays queued, settled, until popped (or the scope goes).
 *
 * A member is started (STARTED, counted in running) under the mutex, and
 * START is called after it, unless the member was cancelled in between.
 * What START returned is recorded with the Dekker pair of cancel.c, so a
 * cancel racing START still reaches it.
 *
 * Cancel walks the list: under the mutex, the first member not yet
 * closed; outside it, fut_cancel (which takes the mutex to unlink).
 * Members spawned after a cancel are cancelled at once. */
#include <pthread.h>

#include "internal.h"

struct fut_scope {
    pthread_mutex_t mu;
    fut_t *closef;             /* the close future; owns this struct */
    fut_t *head;               /* unsettled members */
    fut_task_t *qhead, *qtail; /* unstarted members, FIFO */
    size_t limit, running, unsettled;
    fut_state_t bad_state; /* first member not fulfilled, if any */
    int bad_err;
    /* Written under the mutex; read without it only by spawn with no
     * limit, which checks again under the mutex (see the top). */
    atomic_bool cancelled;
    bool fail_fast, closing, cancel_close;
};

static bool is_cancelled(struct fut_scope *s)
{
    /* Relaxed: under the mutex, the mutex orders it; without it (spawn's
     * fast path) a stale false is caught by start_now's check. */
    return atomic_load_explicit(&s->cancelled, memory_order_relaxed);
}

static void set_cancelled(struct fut_scope *s)
{
    /* Relaxed: written under the mutex, partner of is_cancelled. */
    atomic_store_explicit(&s->cancelled, true, memory_order_relaxed);
}

static fut_t *queued_member(fut_task_t *t)
{
    return FUT__CONTAINER(t, fut_t, task);
}

/* ---- making a scope ----------------------------------------------------- */

int fut_scope_create(fut_scope_t **out, const fut_scope_opts_t *opts)
{
    if (!out)
        return FUT_EINVAL;
    *out = NULL;
    struct fut_scope *s = fut__sys_alloc(sizeof *s);
    fut_t *cf = s ? fut__new(FK_SCOPE, 1) : NULL; /* the handle's */
    if (cf)
        cf->u.member.scope = NULL;
    if (!cf || pthread_mutex_init(&s->mu, NULL) != 0) {
        fut_release(cf); /* no scope yet: its destroy frees nothing */
        fut__sys_free(s);
        return FUT_ENOMEM;
    }
    s->closef = cf;
    s->head = NULL;
    s->qhead = s->qtail = NULL;
    s->limit = s->running = s->unsettled = 0;
    s->bad_state = FUT_PENDING;
    s->bad_err = 0;
    atomic_init(&s->cancelled, false);
    s->fail_fast = s->closing = s->cancel_close = false;
    if (opts) {
        s->limit = opts->limit;
        s->fail_fast = opts->fail_fast;
    }
    cf->u.member.scope = s;
    *out = s;
    return 0;
}

/* The close future's last release (future.c's destroy_slow). */
void fut__scope_destroy(fut_t *f)
{
    struct fut_scope *s = f->u.member.scope;
    if (!s)
        return;
    for (fut_task_t *t = s->qhead, *n; t; t = n) {
        n = t->next;
        fut_release(queued_member(t)); /* settled: cancelled while queued */
    }
    pthread_mutex_destroy(&s->mu);
    fut__sys_free(s);
}

/* Under the mutex: the members' one reference on the close future. */
uint32_t fut__scope_holds(const fut_t *f)
{
    struct fut_scope *s = f->u.member.scope;
    pthread_mutex_lock(&s->mu);
    uint32_t n = s->unsettled > 0;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* ---- members ------------------------------------------------------------ */

static void member_fire(fut_cont_t *c, fut_t *src)
{
    fut_t *m = FUT__CONTAINER(c, fut_t, cont);
    if (fut__claim(m))
        fut__member_close(m, src, FUT_PENDING, 0);
    fut_release(m); /* the node's reference */
}

/* M (STARTED) follows F, START's result (a reference M keeps until it
 * goes); the reference M's start held becomes the node's.  HELD: the
 * caller holds another reference on M until this returns. */
static void attach_started(fut_t *m, fut_t *f, bool held)
{
    m->cont.fire = member_fire;
    /* seq_cst: the recorder's half of cancel.c's Dekker pair. */
    atomic_store_explicit(&m->u.member.src, f, memory_order_seq_cst);
    if (!held)
        fut_retain(m); /* a settled F fires the node, which may drop M */
    fut__attach(f, &m->cont);
    if (atomic_load_explicit(&m->word, memory_order_seq_cst) & 2u)
        fut__cancel_unobserved(f, &m->cont); /* cancelled meanwhile */
    if (!held)
        fut_release(m);
}

/* Runs M's START (M counted as started; the caller's reference on M is
 * the one its node will hold), unless M was cancelled first. */
static void start_member(fut_t *m)
{
    if (fut__closed(m)) { /* cancelled before it started: never starts */
        fut_release(m);
        return;
    }
    fut_t *f = m->u.member.start(m->u.member.arg);
    attach_started(m, f ? f : fut__rejected(FUT_EINVAL), false);
}

static void link_member(struct fut_scope *s, fut_t *m)
{
    m->sprev = NULL;
    m->snext = s->head;
    if (s->head)
        s->head->sprev = m;
    s->head = m;
    if (s->unsettled++ == 0)
        fut_retain(s->closef); /* members keep the scope: see the top */
}

static void unlink_member(struct fut_scope *s, fut_t *m)
{
    if (m->sprev)
        m->sprev->snext = m->snext;
    else
        s->head = m->snext;
    if (m->snext)
        m->snext->sprev = m->sprev;
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
        atomic_store_explicit(&w->hold, MS_STARTED, memory_order_relaxed);
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
static void settle_close(struct fut_scope *s);

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

/* Outside the mutex, after member_ended: frees what it dropped, starts
 * what it popped and, for fail_fast (FF), cancels the other members. */
static void after_end(struct fut_scope *s, fut_task_t *go, fut_task_t *drop,
                      bool ff)
{
    for (fut_task_t *n; drop; drop = n) {
        n = drop->next;
        fut_release(queued_member(drop));
    }
    start_all(go);
    if (ff) {
        /* A member cancelled here may be the scope's last: its own close
         * then drops the members' reference, which must not free S while
         * cancel_members still walks it (the fuzzer's heap-use-after-free,
         * crash-ff9e185e: fail_fast, a rejection, the others cancelled). */
        fut_t *cf = fut_retain(s->closef);
        cancel_members(s);
        fut_release(cf);
    }
}

void fut__member_close(fut_t *m, fut_t *src, fut_state_t st, int err)
{
    struct fut_scope *s = m->u.member.scope;
    fut_t *cf = s->closef;
    if (src) {
        st = fut_state(src);
        err = fut_error(src);
    }
    bool slot =
        atomic_load_explicit(&m->hold, memory_order_relaxed) == MS_STARTED;
    fut_task_t *go = NULL, *drop = NULL;
    pthread_mutex_lock(&s->mu);
    unlink_member(s, m);
    bool last = --s->unsettled == 0;
    bool ff = member_ended(s, st, err, slot, &go, &drop);
    bool done = s->closing && last;
    pthread_mutex_unlock(&s->mu);
    /* M closes before anything it freed happens: the close future and
     * the members started into its slot come after it. */
    if (src)
        fut__close_claimed_like(m, src);
    else
        fut__close_claimed_err(m, st, err);
    after_end(s, go, drop, ff);
    if (done)
        settle_close(s);
    if (last)
        fut_release(cf); /* the members' reference on the scope */
}

/* A new member of S: 2 references (the caller's, and its queue slot's or
 * node's; the list takes none: a member leaves it before that one goes). */
static fut_t *new_member(struct fut_scope *s)
{
    fut_t *m = fut__new(FK_MEMBER, 2);
    if (!m)
        return NULL;
    m->u.member.scope = s;
    return m;
}

/* START's future F was settled when START returned (see the top): F is
 * the member.  The scope hears of its slot (SLOT) and of an outcome that
 * is not a fulfilment; with neither, nothing is locked. */
static void settled_at_start(struct fut_scope *s, fut_t *f, bool slot)
{
    fut_state_t st = fut_state(f);
    if (FUT__LIKELY(!slot && st == FUT_FULFILLED))
        return;
    fut_task_t *go = NULL, *drop = NULL;
    pthread_mutex_lock(&s->mu);
    bool ff = member_ended(s, st, fut_error(f), slot, &go, &drop);
    pthread_mutex_unlock(&s->mu);
    after_end(s, go, drop, ff);
}

/* Spawn's member M runs its START now: M (plain, the caller's reference
 * its only one) is neither listed nor counted while START runs; SLOT: M
 * took one of the limit's slots.  Returns the member. */
static fut_t *start_now(struct fut_scope *s, fut_t *m, bool slot)
{
    fut_t *f = m->u.member.start(m->u.member.arg);
    if (!f)
        f = fut__rejected(FUT_EINVAL);
    if (fut__closed(f)) {
        fut_release(m); /* plain and private: back to the free list */
        settled_at_start(s, f, slot);
        return f;
    }
    m->kind = FK_MEMBER;
    /* Relaxed: M is published by the mutex below. */
    atomic_store_explicit(&m->refs, 2, memory_order_relaxed);
    if (slot)
        atomic_store_explicit(&m->hold, MS_STARTED, memory_order_relaxed);
    pthread_mutex_lock(&s->mu);
    link_member(s, m);
    bool cancelled = is_cancelled(s); /* since spawn looked: see the top */
    pthread_mutex_unlock(&s->mu);
    attach_started(m, f, true);
    if (cancelled)
        fut_cancel(m);
    return m;
}

fut_t *fut_scope_spawn(fut_scope_t *s, fut_start_fn start, void *arg)
{
    if (!s || !start)
        return fut__rejected(FUT_EINVAL);
    /* Plain until it is shared: one START settles at once does not need
     * (start_now), so that fut_release frees it inline. */
    fut_t *m = fut__new(FK_PLAIN, 1);
    if (!m)
        return fut__rejected(FUT_ENOMEM);
    m->u.member.scope = s;
    m->u.member.start = start;
    m->u.member.arg = arg;
    if (s->limit == 0 && !is_cancelled(s))
        return start_now(s, m, false);
    pthread_mutex_lock(&s->mu);
    bool cancelled = is_cancelled(s);
    bool now = !cancelled && (s->limit == 0 || s->running < s->limit);
    if (now) {
        s->running++;
    } else {
        m->kind = FK_MEMBER;
        atomic_store_explicit(&m->refs, 2, memory_order_relaxed);
        link_member(s, m);
    }
    if (!now && !cancelled) {
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
        fut_release(m); /* no queue slot, no node */
        fut_cancel(m);
    }
    return m;
}

fut_t *fut_scope_add(fut_scope_t *s, fut_t *f)
{
    if (!s || !f) {
        fut_release(f);
        return fut__rejected(FUT_EINVAL);
    }
    fut_t *m = new_member(s);
    if (!m) {
        fut_release(f);
        return fut__rejected(FUT_ENOMEM);
    }
    /* Not counted against the limit (MS_WAITING: no slot to give back):
     * F was started by the caller, and a slot it held could be the one a
     * queued member that F waits for needs. */
    pthread_mutex_lock(&s->mu);
    link_member(s, m);
    bool cancelled = is_cancelled(s);
    pthread_mutex_unlock(&s->mu);
    attach_started(m, f, true);
    if (cancelled)
        fut_cancel(m);
    return m;
}

/* ---- cancel and close --------------------------------------------------- */

/* Cancels each unsettled member, one at a time, outside the mutex. */
static void cancel_members(struct fut_scope *s)
{
    for (;;) {
        pthread_mutex_lock(&s->mu);
        fut_t *m = s->head;
        while (m && fut__closed(m))
            m = m->snext;
        if (m)
            fut_retain(m);
        pthread_mutex_unlock(&s->mu);
        if (!m)
            return;
        fut_cancel(m); /* unlinks it (or it closed another way) */
        fut_release(m);
    }
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

/* Every member settled and the scope is closed: settle its future. */
static void settle_close(struct fut_scope *s)
{
    pthread_mutex_lock(&s->mu);
    fut_state_t st = s->cancel_close ? FUT_CANCELLED : s->bad_state;
    int err = s->cancel_close ? FUT_ECANCELED : s->bad_err;
    pthread_mutex_unlock(&s->mu);
    if (st == FUT_PENDING)
        fut__settle_err(s->closef, FUT_FULFILLED, 0);
    else
        fut__settle_err(s->closef, st, err);
}

fut_t *fut_scope_close(fut_scope_t *s)
{
    if (!s)
        return fut__rejected(FUT_EINVAL);
    fut_t *cf = s->closef;
    pthread_mutex_lock(&s->mu);
    s->closing = true;
    bool done = s->unsettled == 0;
    pthread_mutex_unlock(&s->mu);
    if (done)
        settle_close(s);
    return cf; /* the handle's reference */
}

/* fut_cancel of a pending close future (cancel.c). */
void fut__scope_cancel_close(fut_t *f)
{
    struct fut_scope *s = f->u.member.scope;
    pthread_mutex_lock(&s->mu);
    s->cancel_close = true;
    set_cancelled(s);
    pthread_mutex_unlock(&s->mu);
    cancel_members(s);
}
