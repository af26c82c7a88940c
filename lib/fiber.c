/* libfut — fibers: fut_fiber, the suspending wait, fut_yield, and the
 * shutdown of fibers left suspended (the stack and the switch are in
 * fiber_stack.c and fiber_ctx.c).
 *
 * A fiber runs as tasks of its executor: its future is of its own kind
 * (FK_FIBER), and each run is that future's task, submitted again for the
 * next run (at most one is ever queued: the park word below decides who
 * submits it), which switches to the fiber's stack and comes back when the
 * fiber suspends, yields or ends.  So a fiber costs one block (its future)
 * and a stack from the thread's cache, and its wake never needs memory.
 * The first run enters the stack with a call (fut__ctx_start: nothing is
 * laid out on the stack at spawn) and the end is that call's return,
 * which saves nothing.  The thread's per-context state in fut__tls
 * (current executor and future, the continuation and inline trampolines'
 * queues, the current fiber) is swapped with the fiber's own copy around
 * each run (a fresh one at the first run; at the end only the scheduler's
 * comes back), so the fiber's frames and the scheduler's never see each
 * other's.
 *
 * THE PARK WORD.  Who may resume a suspended fiber is decided by one
 * atomic word, fiber.park: a state, a wake reason, sticky flags, and a
 * sequence number that counts the fiber's waits.
 *
 *     RUN --arm (fiber, own stack)--> ARMED --commit (scheduler, after the
 *      ^                               |      switch)--> PARKED
 *      |                               | claim                | claim
 *      +-------------------------------+----------------------+
 *
 *   arm:    the waiting fiber CASes RUN -> ARMED (fails if CANCEL or SHUT
 *           is set: the wait returns at once), then hangs its wait nodes
 *           (the future's, a timer's) and switches out.
 *   commit: the scheduler, now off the fiber's stack, CASes ARMED ->
 *           PARKED.  Only from PARKED may another thread resume the
 *           fiber, so nobody ever switches to a context still being
 *           saved.  If the CAS fails, a claim came first: the scheduler
 *           switches straight back in.
 *   claim:  whoever has a reason to wake the fiber (a wait node firing,
 *           the fiber's future being cancelled, the executor's destroy)
 *           CASes ARMED or PARKED, with the current sequence number, to
 *           RUN with sequence + 1 and its reason.  One claim wins per
 *           wait; a node of an older wait finds another sequence number
 *           and does nothing.  A winner that took PARKED resumes the fiber
 *           (submits its future's task again); one that took ARMED
 *           leaves that to the failing commit.
 *
 * Every change is a CAS on this one word (acq_rel), so the arm, the
 * commit and the claims are totally ordered and a claim's reason is read
 * with the state it came with.  The sticky flags: CANCEL (the fiber's
 * future was cancelled: every wait returns FUT_ECANCELED), SHUT (the
 * executor's destroy took the fiber: every wait returns FUT_ESHUTDOWN),
 * DONE (the fiber's function returned: a late cancel has nothing to wake).
 *
 * LIFETIME.  A fiber lives at the top of its own stack.  It holds one
 * reference on its future, dropped once it settled it (so the task being
 * resubmitted always lies in a live block; the future's own count has no
 * executor's hold for a fiber).  The fiber's references:
 * one for its life (dropped by the scheduler after the last switch out),
 * one for the node on its own future's list (the cancel watch, hung at
 * the fiber's first wait: a cancel before that is seen by the wait's own
 * check of the future, or by the first run), one per
 * wait node not yet fired (a wait that ended early, by cancel, timeout or
 * shutdown, leaves its node on the awaited future until that settles).
 * The last reference gives the stack back and drops the fiber's reference
 * on its executor's struct, so a late waker can still read the struct
 * (executor.c: a refused submit).
 *
 * SHUTDOWN.  Fibers of a non-static executor are listed in its struct
 * (ex->fibers, under ex->fiber_lock) from their first wait or yield (the
 * first time they switch out other than by ending) until they end; a fiber
 * that runs straight through never takes the lock.  One that never ran
 * needs no list: its executor's destroy drops its first run
 * (fut_task_drop), which settles it FUT_ESHUTDOWN, and a refused first
 * submit fails it in fut_fiber.  fut_executor_destroy, after the
 * executor's own destroy has run or dropped every task and joined its
 * threads, calls fut__fibers_shutdown: it takes each fiber still listed,
 * claims it with SHUT (a suspended one, or one whose run was dropped or
 * refused) and runs it to its end right there, on the destroying thread,
 * with no current executor.  A fiber that finds the list closed when it
 * first switches out (nothing of its executor runs any more) gets SHUT
 * instead: its wait returns FUT_ESHUTDOWN, its yield returns at once. */
#include <sched.h>
#include <stdint.h>
#include <string.h>

#include "fiber_ctx.h"
#include "internal.h"

#ifdef FUT_ASAN
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom,
                                    size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save,
                                     const void **bottom_old, size_t *size_old);
#endif
#ifdef FUT_TSAN
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
#endif

/* ---- the park word ------------------------------------------------------ */
enum { P_RUN = 0, P_ARMED = 1, P_PARKED = 2 };
#define P_STATE 3u
#define P_CANCEL 4u
#define P_SHUT 8u
#define P_DONE 16u
#define P_REASON_SHIFT 5
#define P_REASON (7u << P_REASON_SHIFT)
#define P_SEQ_ONE ((uint64_t)1 << 8)
#define P_SEQ(p) ((p) >> 8)
enum { R_SETTLED = 0, R_TIMEDOUT, R_CANCELED, R_SHUTDOWN, R_NOMEM };

/* What the fiber asked for when it switched out. */
enum { A_PARK = 1, A_YIELD, A_DONE };

struct fut_fiber {
    fut__ctx_t ctx;     /* the fiber's context while it is switched out */
    fut__ctx_t *back;   /* the scheduler's, during a run */
    _Atomic uint64_t park; /* the protocol above */
    _Atomic uint32_t refs; /* see LIFETIME */
    int action;            /* A_*: written by the fiber, read after switch */
    bool started;
    bool watching;   /* the cancel watch is on fut's list (first wait) */
    bool registered; /* on ex->fibers: under ex->fiber_lock */
    fut_executor_t *ex;
    fut_task_fn fn;
    void *arg;
    fut_result_t result; /* what fn returned, settled by the scheduler */
    fut_t *fut; /* the fiber's future, FK_FIBER (one reference): its task
                   is the fiber's next run */
    void *stack_lo;
    size_t stack_size;
    fut_cont_t watch; /* on fut's list: the cancel watch */
    struct fut_fiber *reg_next, *reg_prev;
    struct fut_tls_ctx saved; /* the other side's part of fut__tls */
#ifdef FUT_ASAN
    void *fake_fiber, *fake_sched;
    const void *sched_bottom;
    size_t sched_size;
#endif
#ifdef FUT_TSAN
    void *tsan_fiber, *tsan_sched;
#endif
};

/* A wait's node on the awaited future (or on its timer's delay). */
struct wait_node {
    fut_cont_t cont;
    struct fut_fiber *fb;
    uint64_t seq;
    bool timer;
};

static void fiber_release(struct fut_fiber *fb)
{
    /* Sole owner (nobody else can take a reference: only the running
     * fiber does): no locked instruction.  Acquire pairs with the other
     * releasers' release, as the decrement's would.  Else acq_rel: the
     * last one gives the stack back after everyone's use. */
    if (atomic_load_explicit(&fb->refs, memory_order_acquire) != 1 &&
        atomic_fetch_sub_explicit(&fb->refs, 1, memory_order_acq_rel) != 1)
        return;
    fut_executor_t *ex = fb->ex;
    fut__stack_put(fb->stack_lo, fb->stack_size);
    fut__ex_release(ex);
}

/* ---- the registry (shutdown) -------------------------------------------- */

static void reg_lock(fut_executor_t *ex)
{
    /* Acquire / release: the list's own lock (it guards only pointers). */
    while (atomic_exchange_explicit(&ex->fiber_lock, 1, memory_order_acquire))
        sched_yield();
}

static void reg_unlock(fut_executor_t *ex)
{
    atomic_store_explicit(&ex->fiber_lock, 0, memory_order_release);
}

static bool reg_add(struct fut_fiber *fb)
{
    fut_executor_t *ex = fb->ex;
    if (ex->is_static)
        return true;
    reg_lock(ex);
    bool ok = !ex->fibers_closed;
    if (ok) {
        fb->reg_prev = NULL;
        fb->reg_next = ex->fibers;
        if (ex->fibers)
            ex->fibers->reg_prev = fb;
        ex->fibers = fb;
        fb->registered = true;
    }
    reg_unlock(ex);
    return ok;
}

static void unlink_locked(struct fut_fiber *fb)
{
    fut_executor_t *ex = fb->ex;
    if (fb->reg_prev)
        fb->reg_prev->reg_next = fb->reg_next;
    else
        ex->fibers = fb->reg_next;
    if (fb->reg_next)
        fb->reg_next->reg_prev = fb->reg_prev;
    fb->registered = false;
}

/* Lists FB, running, before it first switches out other than by ending
 * (see SHUTDOWN); false if the list is closed: FB is then marked SHUT. */
static bool listed(struct fut_fiber *fb)
{
    if (fb->registered || reg_add(fb))
        return true;
    /* acq_rel, as every change of the park word. */
    atomic_fetch_or_explicit(&fb->park, P_SHUT, memory_order_acq_rel);
    return false;
}

/* True if FB was listed (and now is not): the caller owns its end. */
static bool reg_remove(struct fut_fiber *fb)
{
    fut_executor_t *ex = fb->ex;
    if (ex->is_static)
        return true;
    reg_lock(ex);
    bool was = fb->registered;
    if (was)
        unlink_locked(fb);
    reg_unlock(ex);
    return was;
}

/* ---- switching ------------------------------------------------------------ */

static fut__ctx_t *fiber_main(void *arg);

static void tls_swap(struct fut_tls *t, struct fut_tls_ctx *s)
{
    /* By 16-byte words: half the moves of a field-by-field copy. */
    unsigned char mine[sizeof *s], theirs[sizeof *s];
    memcpy(mine, &t->ctx, sizeof mine);
    memcpy(theirs, s, sizeof theirs);
    memcpy(&t->ctx, theirs, sizeof theirs);
    memcpy(s, mine, sizeof mine);
}

/* Scheduler side: runs FB until it switches out; returns its action.
 * The first run starts FB's stack with a call (fut__ctx_start: no context
 * made beforehand) and gives it a fresh part of fut__tls (its executor,
 * its future, itself; nothing queued), keeping the scheduler's in
 * fb->saved; later runs swap the two parts.  The end (A_DONE) only puts
 * the scheduler's part back: the fiber's is dead. */
static int switch_in(struct fut_fiber *fb)
{
    struct fut_tls *t = &fut__tls;
    if (t->owed)
        fut__pay_owed(t); /* a debt never crosses a switch */
    bool first = !fb->started;
    if (first) {
        fb->saved = t->ctx;
        t->ctx = (struct fut_tls_ctx){
            .cur_ex = fb->ex, .cur_fut = fb->fut, .fiber = fb};
    } else {
        tls_swap(t, &fb->saved);
    }
    /* Relaxed: SHUT, if set, was set by the claim that handed FB to this
     * run (fut__fibers_shutdown's, on this very thread) or before an
     * earlier one; either happens before this run (program order, or the
     * executor's queue that carried the run here). */
    if (atomic_load_explicit(&fb->park, memory_order_relaxed) & P_SHUT)
        t->cur_ex = NULL; /* its executor is gone: nothing runs "on" it */
    fut__ctx_t here;
    fb->back = &here;
    fb->started = true;
#ifdef FUT_TSAN
    fb->tsan_sched = __tsan_get_current_fiber();
    __tsan_switch_to_fiber(fb->tsan_fiber, 0);
#endif
#ifdef FUT_ASAN
    __sanitizer_start_switch_fiber(&fb->fake_sched, fb->stack_lo,
                                   fb->stack_size);
#endif
    if (first)
        fut__ctx_start(&here, &fb->ctx, fb->stack_lo,
                       (uintptr_t)fb - (uintptr_t)fb->stack_lo, fiber_main,
                       fb);
    else
        fut__ctx_swap(&here, &fb->ctx);
#ifdef FUT_ASAN
    __sanitizer_finish_switch_fiber(fb->fake_sched, NULL, NULL);
#endif
    /* T is still this thread's: FB switches out to HERE, on the thread
     * that switched it in (only the fiber's own frames may come back on
     * another thread; none of them uses a fut__tls address from before
     * its switch out). */
    if (t->owed)
        fut__pay_owed(t);
    if (fb->action == A_DONE)
        t->ctx = fb->saved;
    else
        tls_swap(t, &fb->saved);
    return fb->action;
}

#ifdef FUT_STRESS_HOOKS
/* tests/stress/fiber_stress.c's builds only (tests/SConscript): called by
 * a fiber about to switch out, its context not saved yet, to widen the
 * window in which a claim races the switch (THE PARK WORD). */
void (*fut__stress_switch_out)(void);
#endif

/* Fiber side: back to the scheduler with ACTION (A_PARK or A_YIELD);
 * returns when resumed. */
static void switch_out(struct fut_fiber *fb, int action)
{
    fb->action = action;
#ifdef FUT_STRESS_HOOKS
    if (fut__stress_switch_out)
        fut__stress_switch_out();
#endif
#ifdef FUT_ASAN
    __sanitizer_start_switch_fiber(&fb->fake_fiber, fb->sched_bottom,
                                   fb->sched_size);
#endif
#ifdef FUT_TSAN
    __tsan_switch_to_fiber(fb->tsan_sched, 0);
#endif
    fut__ctx_swap(&fb->ctx, fb->back);
#ifdef FUT_ASAN
    __sanitizer_finish_switch_fiber(fb->fake_fiber, &fb->sched_bottom,
                                    &fb->sched_size);
#endif
}

/* The fiber's stack starts here (fut__ctx_start) and ends here: returning
 * the scheduler's context continues it, and nothing of the fiber's is
 * saved.  Under ASan and TSan the end is an ordinary switch, so that the
 * sanitizers see it where it happens (no instrumented return after they
 * were told the fiber is gone). */
static fut__ctx_t *fiber_main(void *arg)
{
    struct fut_fiber *fb = arg;
#ifdef FUT_ASAN
    __sanitizer_finish_switch_fiber(NULL, &fb->sched_bottom, &fb->sched_size);
#endif
    fb->result = fb->fn(fb->arg);
    fb->action = A_DONE;
#ifdef FUT_ASAN
    __sanitizer_start_switch_fiber(NULL, fb->sched_bottom, fb->sched_size);
#endif
#ifdef FUT_TSAN
    __tsan_switch_to_fiber(fb->tsan_sched, 0);
#endif
#if defined(FUT_ASAN) || defined(FUT_TSAN)
    fut__ctx_swap(&fb->ctx, fb->back); /* nothing switches back */
#endif
    return fb->back;
}

/* ---- running ---------------------------------------------------------- */

/* Hands FB's next run (its future's task) to its executor.  A refused run
 * (the executor is shutting down) leaves FB, listed, to
 * fut__fibers_shutdown. */
static void schedule(struct fut_fiber *fb)
{
    (void)fut__ex_submit(fb->ex, &fb->fut->task);
}

/* The fiber returned: settle its future, let go of it.  Scheduler side. */
static void finish(struct fut_fiber *fb)
{
    /* acq_rel RMW on the park word: a cancel watch firing later sees DONE
     * (it has nothing to wake).  No watch, no list: nobody else looks. */
    if (fb->watching)
        atomic_fetch_or_explicit(&fb->park, P_DONE, memory_order_acq_rel);
#ifdef FUT_TSAN
    __tsan_destroy_fiber(fb->tsan_fiber);
#endif
    /* Unlocked look: only fut__fibers_shutdown, which runs FB on this very
     * thread, clears it concurrently with nothing. */
    if (fb->registered)
        reg_remove(fb);
    fut_t *f = fb->fut;
    /* A cancelled fiber's value is disposed here (its destructor runs). */
    fut__settle(f, &fb->result);
    fut_release(f);
    fiber_release(fb);
}

static void fail_unstarted(struct fut_fiber *fb, int err);

/* Runs FB until it parks for good, yields, or ends. */
static void run(struct fut_fiber *fb)
{
    /* Cancelled before it started (only a cancel settles its future
     * then): like a task, it never runs. */
    if (!fb->started && fut__closed(fb->fut)) {
        fail_unstarted(fb, FUT_ECANCELED);
        return;
    }
    for (;;) {
        int action = switch_in(fb);
        if (action == A_DONE) {
            finish(fb);
            return;
        }
        if (action == A_YIELD) {
            schedule(fb);
            return;
        }
#ifdef FUT_FIBER_BROKEN_HANDOFF
        return; /* committed already, on the fiber's stack (park_on) */
#endif
        /* A_PARK: commit, unless a claim came while it was armed.  Relaxed
         * load: only the CAS's value matters, and it reads again. */
        uint64_t p = atomic_load_explicit(&fb->park, memory_order_relaxed);
        /* THE HANDOFF.  acq_rel: the release half publishes FB's context,
         * saved by the switch just made on this thread, to the claim that
         * takes PARKED (claim's acq_rel CAS, its partner), which then
         * resumes FB, maybe on another thread; the acquire half, on
         * failure too, sees the claim that came while FB was ARMED. */
        if ((p & P_STATE) == P_ARMED &&
            atomic_compare_exchange_strong_explicit(
                &fb->park, &p, (p & ~(uint64_t)P_STATE) | P_PARKED,
                memory_order_acq_rel, memory_order_acquire))
            return; /* FB is another thread's to resume from here on */
    }
}

void fut__fiber_run(fut_t *f)
{
    run(f->u.call.arg);
}

void fut__fiber_drop(fut_t *f)
{
    struct fut_fiber *fb = f->u.call.arg;
    /* A started fiber's dropped run: FB is listed (it switched out), so
     * fut__fibers_shutdown, which comes next, runs it to its end. */
    if (!fb->started)
        fail_unstarted(fb, FUT_ESHUTDOWN);
}

/* Claims FB's current wait for REASON (only wait number SEQ unless ANY):
 * the word goes to RUN with the next sequence number and FLAGS added.
 * With ANY, a fiber that is not waiting gets FLAGS all the same.  Returns
 * the state taken (P_ARMED, P_PARKED: the caller resumes FB, or leaves it
 * to the failing commit), or P_RUN if there was nothing to claim. */
static unsigned claim(struct fut_fiber *fb, uint64_t seq, bool any,
                      unsigned reason, uint64_t flags)
{
    uint64_t p = atomic_load_explicit(&fb->park, memory_order_acquire);
    for (;;) {
        unsigned st = (unsigned)(p & P_STATE);
        if ((p & P_DONE) || (!any && (st == P_RUN || P_SEQ(p) != seq)))
            return P_RUN;
        uint64_t n = p | flags;
        if (st != P_RUN)
            n = ((n & ~(uint64_t)(P_STATE | P_REASON)) + P_SEQ_ONE) |
                ((uint64_t)reason << P_REASON_SHIFT);
        /* acq_rel: see THE PARK WORD. */
        if (atomic_compare_exchange_weak_explicit(&fb->park, &p, n,
                                                  memory_order_acq_rel,
                                                  memory_order_acquire))
            return st;
    }
}

/* ---- fut_fiber ---------------------------------------------------------- */

/* The fiber's future settled.  Unless the fiber did it (DONE), that is a
 * cancel (or a timeout's cancel): wake a waiting fiber, mark a running
 * one (its next wait sees CANCEL). */
static void watch_fire(fut_cont_t *c, fut_t *f)
{
    (void)f;
    struct fut_fiber *fb = FUT__CONTAINER(c, struct fut_fiber, watch);
    if (claim(fb, 0, true, R_CANCELED, P_CANCEL) == P_PARKED)
        schedule(fb);
    fiber_release(fb);
}

/* Lays FB out at the top of the stack [LO, LO + SIZE), for future F. */
static struct fut_fiber *fiber_init(void *lo, size_t size, fut_t *f,
                                    fut_task_fn fn, void *arg)
{
    uintptr_t top = fut__stack_top(lo, size); /* coloured: fiber_ctx.h */
    struct fut_fiber *fb =
        (struct fut_fiber *)((top - sizeof *fb) & ~(uintptr_t)63);
    fb->fut = f;
    atomic_init(&fb->park, 0);
    atomic_init(&fb->refs, 1); /* life */
    fb->action = 0;
    fb->started = fb->watching = fb->registered = false;
    fb->ex = f->ex;
    fut__ex_retain(f->ex);
    fb->fn = fn;
    fb->arg = arg;
    fb->stack_lo = lo;
    fb->stack_size = size;
#ifdef FUT_ASAN
    fb->fake_fiber = fb->fake_sched = NULL;
#endif
#ifdef FUT_TSAN
    fb->tsan_fiber = __tsan_create_fiber(0);
#endif
    return fb;
}

/* FB never ran: settle its future with ERR and let it go. */
static void fail_unstarted(struct fut_fiber *fb, int err)
{
#ifdef FUT_TSAN
    __tsan_destroy_fiber(fb->tsan_fiber);
#endif
    fut_t *f = fb->fut;
    fut__settle_err(f, FUT_REJECTED, err); /* false: cancelled first */
    fut_release(f);
    fiber_release(fb);
}

fut_t *fut_fiber(fut_executor_t *ex, fut_task_fn fn, void *arg,
                 const fut_fiber_opts_t *opts)
{
    if (!ex || !fn)
        return fut__rejected(FUT_EINVAL);
    size_t size = FUT_FIBER_STACK_DEFAULT; /* NULL or zeroed OPTS */
    if (opts && opts->stack_size &&
        !(size = fut__stack_size(opts->stack_size)))
        return fut__rejected(FUT_EINVAL);
    void *lo = fut__stack_get(size);
    if (!lo)
        return &fut__enomem;
    fut_t *f = fut__new_block(FK_FIBER, 2); /* the caller's, the fiber's */
    if (!f) {
        fut__stack_put(lo, size);
        return &fut__enomem;
    }
    f->ex = ex;
    f->u.call.fn.task = fn;
    f->u.call.arg = fiber_init(lo, size, f, fn, arg);
    /* As fut_async: from a task of EX itself, no guard (executor.c).
     * Once submitted, the fiber may run and end on another thread: only
     * F, the caller's reference, is touched after. */
    int rc = fut__tls.cur_ex == ex ? ex->ops->submit(ex->impl, &f->task)
                                   : fut__ex_submit(ex, &f->task);
    if (rc)
        fail_unstarted(f->u.call.arg, rc);
    return f;
}

/* ---- waiting and yielding (inside a fiber) -------------------------------- */

bool fut_in_fiber(void)
{
    return fut__tls.fiber != NULL;
}

static void node_fire(fut_cont_t *c, fut_t *src)
{
    struct wait_node *w = FUT__CONTAINER(c, struct wait_node, cont);
    int err = w->timer ? fut_error(src) : 0;
    /* A timer the wait cancelled itself (it ended another way) claims
     * nothing: its wait number is past anyway. */
    if (err != FUT_ECANCELED) {
        unsigned reason = !w->timer               ? R_SETTLED
                          : err == 0              ? R_TIMEDOUT
                          : err == FUT_ESHUTDOWN ? R_SHUTDOWN
                                                  : R_NOMEM;
        if (claim(w->fb, w->seq, false, reason, 0) == P_PARKED)
            schedule(w->fb);
    }
    fiber_release(w->fb);
    fut__free(w, sizeof *w);
}

/* Hangs a node for wait SEQ of FB on F; false if no memory. */
static bool hang(struct fut_fiber *fb, fut_t *f, uint64_t seq, bool timer)
{
    struct wait_node *w = fut__alloc(sizeof *w);
    if (!w)
        return false;
    w->fb = fb;
    w->seq = seq;
    w->timer = timer;
    w->cont.fire = node_fire;
    /* Relaxed: a reference made from the fiber's own (its life's), as any
     * count's increment; fiber_release's acq_rel decrement orders uses. */
    atomic_fetch_add_explicit(&fb->refs, 1, memory_order_relaxed);
    fut__attach(f, &w->cont);
    return true;
}

static int sticky_error(uint64_t p)
{
    if (p & P_SHUT)
        return FUT_ESHUTDOWN;
    return (p & P_CANCEL) ? FUT_ECANCELED : 0;
}

static int reason_error(uint64_t p)
{
    static const int err[] = {0, FUT_ETIMEDOUT, FUT_ECANCELED, FUT_ESHUTDOWN,
                              FUT_ENOMEM};
    unsigned r = (unsigned)((p & P_REASON) >> P_REASON_SHIFT);
    return r < sizeof err / sizeof err[0] ? err[r] : FUT_ENOMEM;
}

/* Arms wait number SEQ (P is the word seen); 0 or the sticky error. */
static int arm(struct fut_fiber *fb, uint64_t *p)
{
    for (;;) {
        int err = sticky_error(*p);
        if (err)
            return err;
        /* acq_rel: see THE PARK WORD (ordered with the cancel watch). */
        if (atomic_compare_exchange_weak_explicit(
                &fb->park, p, *p | P_ARMED, memory_order_acq_rel,
                memory_order_acquire))
            return 0;
    }
}

/* Suspends FB until F settles or TIMEOUT_NS passes (> 0 or < 0). */
static int park_on(struct fut_fiber *fb, fut_t *f, int64_t timeout_ns)
{
    if (!fb->watching) { /* the first wait: from now on a cancel wakes it */
        fb->watching = true;
        fb->watch.fire = watch_fire;
        /* Relaxed: as in hang. */
        atomic_fetch_add_explicit(&fb->refs, 1, memory_order_relaxed);
        fut__attach(fb->fut, &fb->watch);
    }
    if (!listed(fb))
        return FUT_ESHUTDOWN;
    /* Acquire: pairs with a claim's or listed's RMW (the sticky flags). */
    uint64_t p = atomic_load_explicit(&fb->park, memory_order_acquire);
    int err = arm(fb, &p);
    if (err)
        return err;
    uint64_t seq = P_SEQ(p);
    fut_t *delay = NULL;
    bool ok = hang(fb, f, seq, false);
    if (ok && timeout_ns > 0) {
        delay = fut_delay(fb->ex, (uint64_t)timeout_ns);
        ok = hang(fb, delay, seq, true);
    }
    if (!ok) /* no memory for a node: give up the wait (ARMED: no switch) */
        claim(fb, seq, false, R_NOMEM, 0);
#ifndef FUT_FIBER_BROKEN_HANDOFF
    /* Acquire: pairs with a claim's acq_rel CAS (its reason, read below,
     * and what the claimer did before).  Still ARMED: switch out, and the
     * scheduler commits (run); RUN: claimed already, no switch. */
    if ((atomic_load_explicit(&fb->park, memory_order_acquire) & P_STATE) !=
        P_RUN)
        switch_out(fb, A_PARK);
#else
    /* Broken on purpose (tests/stress/fiber_stress.c must catch it): the
     * commit made here, on the fiber's own stack, before switch_out saves
     * its context, so a claim right after it may resume (on another
     * thread) a context that is still being saved. */
    uint64_t q = atomic_load_explicit(&fb->park, memory_order_acquire);
    if ((q & P_STATE) == P_ARMED &&
        atomic_compare_exchange_strong_explicit(
            &fb->park, &q, (q & ~(uint64_t)P_STATE) | P_PARKED,
            memory_order_acq_rel, memory_order_acquire))
        switch_out(fb, A_PARK);
#endif
    /* Acquire: pairs with the acq_rel CAS of the claim that woke FB (its
     * reason). */
    p = atomic_load_explicit(&fb->park, memory_order_acquire);
    if (delay) {
        fut_cancel(delay);
        fut_release(delay);
    }
    err = (p & P_SHUT) ? FUT_ESHUTDOWN : reason_error(p);
    if (err == FUT_ETIMEDOUT && fut__closed(f))
        err = 0; /* settled as the timer fired: as fut_wait does */
    return err;
}

/* True when the running code is the fiber's own, not a callback the core
 * runs inline on the fiber's stack (a private fut_then, a continuation
 * fired by a settle): those frames keep fut__tls's address across the call
 * and must come back on the same thread, so they never suspend. */
static bool at_fiber_base(const struct fut_tls *t, const struct fut_fiber *fb)
{
    return t->cur_fut == fb->fut && t->inline_depth == 0 && !t->firing;
}

int fut__fiber_wait(fut_t *f, int64_t timeout_ns)
{
    struct fut_tls *t = &fut__tls;
    struct fut_fiber *fb = t->fiber;
    if (!at_fiber_base(t, fb)) { /* an ordinary wait, on this thread */
        t->fiber = NULL;
        int rc = fut_wait(f, timeout_ns);
        t->fiber = fb;
        return rc;
    }
    int err = sticky_error(atomic_load_explicit(&fb->park,
                                                memory_order_acquire));
    if (err)
        return err;
    if (fut__closed(fb->fut))
        return FUT_ECANCELED; /* settled by a cancel: the watch may lag */
    if (f == fb->fut)
        return FUT_EDEADLK;
    if (fut__closed(f))
        return 0;
    if (timeout_ns == 0)
        return FUT_ETIMEDOUT;
    return park_on(fb, f, timeout_ns);
}

void fut_yield(void)
{
    struct fut_tls *t = &fut__tls;
    struct fut_fiber *fb = t->fiber;
    if (!fb || !at_fiber_base(t, fb) ||
        (atomic_load_explicit(&fb->park, memory_order_acquire) & P_SHUT))
        return;
    if (listed(fb))
        switch_out(fb, A_YIELD);
}

/* ---- shutdown ------------------------------------------------------------ */

void fut__fibers_shutdown(fut_executor_t *ex)
{
    for (;;) {
        reg_lock(ex);
        struct fut_fiber *fb = ex->fibers;
        if (fb)
            unlink_locked(fb);
        else
            ex->fibers_closed = 1;
        reg_unlock(ex);
        if (!fb)
            return;
        /* Suspended: claim it.  Not suspended: its run was dropped or
         * refused (nothing of EX runs any more); mark it all the same. */
        claim(fb, 0, true, R_SHUTDOWN, P_SHUT);
        run(fb); /* listed: it has run (SHUTDOWN) */
    }
}
