/* libfut — the event-loop executor: epoll, an eventfd wake-up, a timer heap,
 * fd readiness and stall detection, all run by the one thread inside
 * fut_loop_run.
 *
 * PROTOCOL
 *
 * Who may touch what.  The loop's state splits in three:
 *   - loop-thread state: the local task FIFO, the timer heap, the fd table,
 *     the orphan list.  Touched only by the thread inside fut_loop_run
 *     (fut__loop_tl == l), or, once no run can start any more, by destroy.
 *   - hand-off stacks (rfd: fd registrations, rstart: timer starts,
 *     rcancel: timer cancels).  Any thread pushes with a CAS; only the loop
 *     thread takes, and it takes the whole stack at once (exchange with
 *     NULL), so there is no ABA and no per-node reclamation problem.  The
 *     taken batch is reversed, so each producer's items keep its order.
 *   - the task queue (rq): Vyukov's intrusive MPSC queue, because tasks are
 *     the hot hand-off (bench/loop/handoff).  A producer clears its node's
 *     link, exchanges the tail (seq_cst) and then links the old tail to its
 *     node (release); the loop pops at its private head (acquire loads of
 *     the links), oldest first, and re-pushes a stub node to let the last
 *     node go.  So the loop touches each node once, right before running
 *     it (a stack would be walked twice: reversed, then run), and producers
 *     never retry.  Between a producer's exchange and its link the queue
 *     looks non-empty but yields nothing: the loop then polls with a zero
 *     timeout until the link lands (a preempted producer costs the loop
 *     spins, never a lost task).
 *   - counters (stats), written by the loop thread only (plain load + store
 *     on atomics: no locked instruction), read by anyone.
 *
 * Cross-thread hand-off.  A producer writes its node's link, then pushes
 * with a seq_cst CAS or exchange (the release half publishes the node; the
 * loop's acquire exchange or load pairs with it).  A timer start links
 * through t->slot and a cancel through t->next, so a cancel can be pushed
 * while the start is still in flight: the loop drains starts first and,
 * when a cancel names a timer it cannot find in its heap, drains the starts
 * again (the start happened before the cancel, so it is there by now).
 *
 * Wake-up batching (one eventfd write per sleep, not per task).
 *
 *     loop:     sleeping = 1 (seq_cst); if any stack or rq non-empty
 *               (seq_cst loads): don't block; epoll_wait; sleeping = 0
 *     producer: push (seq_cst CAS or exchange; rq: then the link); if
 *               sleeping (seq_cst load) and exchange(sleeping, 0) == 1:
 *               write the eventfd
 *
 * It is Dekker's pattern: both sides store then load, all seq_cst, so at
 * least one sees the other.  Either the loop sees the pushed node and does
 * not block, or the producer sees sleeping == 1; then the exchange picks one
 * producer per sleep to write.  A busy loop (sleeping == 0) costs producers
 * one plain load and no syscall.  The loop reads the eventfd when epoll
 * reports it, before it drains the stacks, so a write is never consumed
 * without its node being seen.  fut_loop_stop and destroy write the eventfd
 * unconditionally (rare).
 *
 *     [running] --sleeping=1--> [checking] --stacks empty--> [epoll_wait]
 *         ^                        | non-empty                  | woken
 *         +------------------------+------ sleeping=0 <---------+
 *
 * Timers.  The core owns fut_timer_t; the loop holds one from a successful
 * timer_start until it calls fut_timer_fire or fut_timer_drop, and a
 * timer_cancel gives it a second hold that it ends with fut_timer_drop
 * (lib/timer.c).  The heap is an array of {deadline, seq, timer}; a timer's
 * slot is its index.  A timer fires when fut_now_ns() >= its deadline, never
 * before: epoll's timeout only decides when to look.
 *
 * fd readiness.  Each fut_fd_ready makes a waiter (struct fdw) with a
 * promise.  Registrations are level-triggered and kept from one readiness
 * future to the next while a chain goes on, with the rules for closed and
 * reused fd numbers at the top of loop_fd.c.  A cancel reaches the loop as
 * the promise's cancel hook (fut_promise_on_cancel, the executor kit), a task
 * on the loop that runs on_fd_cancel.  Ownership of a waiter: the loop
 * frees it when it settles the promise itself; when a cancel won the race
 * (settle returns FUT_EALREADY), on_fd_cancel is coming, so the waiter waits
 * for it on the orphan list; destroy frees whatever is left (the core then
 * never calls on_fd_cancel: it refuses work for a closed executor).
 *
 * Shutdown.  fut_executor_destroy closes the core's gate first (no foreign
 * thread calls our ops any more), then our destroy: mark dead, stop a
 * running loop (quit + eventfd) and wait for run to leave (mutex + cond),
 * then drop every task and timer (FUT_ESHUTDOWN), reject every fd waiter,
 * close the fds.  fut_fd_ready and fut_loop_stop from other threads pass our
 * own gate (users/closed, the same seq_cst pattern as lib/executor.c). */
#include "loop_impl.h"

_Thread_local struct loop *fut__loop_tl;

/* ---- stall detection ---------------------------------------------------- */

static void report_stall(struct loop *l, const void *fn, uint64_t ns)
{
    char msg[128];
    snprintf(msg, sizeof msg, "loop: callback %p ran %.1f ms (stall)", fn,
             (double)ns / 1e6);
    fut_log_event_t ev = {.level = FUT_LOG_WARN,
                          .kind = FUT_LOG_STALL,
                          .msg = msg,
                          .executor = "loop",
                          .fn = fn,
                          .duration_ns = ns};
    bump(&l->n_stalls, 1);
    if (l->log)
        l->log(l->log_ud, &ev);
    else
        fut_log_emit(&ev);
}

/* Timing every callback must be cheap: clock_gettime costs 36-43 ns here,
 * the TSC 13.  Where the TSC is invariant (x86-64, CPUID says so) marks are
 * TSC ticks, converted with a rate calibrated against fut_now_ns once 10 ms
 * have passed since the loop was made; before that, and elsewhere, marks
 * are fut_now_ns.  The kind of mark changes only in calibrate(), which runs
 * between batches (poll_io), so T0 and T1 of one measure always agree. */
#if defined(__x86_64__)
#include <cpuid.h>
#include <x86intrin.h>

static bool tsc_invariant(void)
{
    unsigned a, b, c, d;
    return __get_cpuid(0x80000007u, &a, &b, &c, &d) && (d & (1u << 8));
}

static uint64_t tsc_now(void)
{
    return __rdtsc();
}
#else
static bool tsc_invariant(void)
{
    return false;
}

static uint64_t tsc_now(void)
{
    return 0;
}
#endif

static void calibrate_start(struct loop *l)
{
    l->ns_per_tick = 0;
    l->cal_ok = tsc_invariant();
    l->cal_tsc = tsc_now();
    l->cal_ns = fut_now_ns();
}

static void calibrate(struct loop *l)
{
    if (l->ns_per_tick > 0 || !l->cal_ok)
        return;
    uint64_t ns = fut_now_ns(), t = tsc_now();
    if (ns - l->cal_ns >= 10 * 1000 * 1000 && t > l->cal_tsc)
        l->ns_per_tick = (double)(ns - l->cal_ns) / (double)(t - l->cal_tsc);
}

static uint64_t mark(const struct loop *l)
{
    return l->ns_per_tick > 0 ? tsc_now() : fut_now_ns();
}

static void account(struct loop *l, const void *fn, uint64_t d, bool longest)
{
    /* Relaxed: a counter with one writer (this thread); loop_stats reads. */
    if (longest &&
        d > atomic_load_explicit(&l->n_longest, memory_order_relaxed))
        atomic_store_explicit(&l->n_longest, d, memory_order_relaxed);
    if (d > l->stall_ns)
        report_stall(l, fn, d);
}

/* Callback timing (stall reports, longest_callback).  A precise clock per
 * callback costs more than a small task does, so where the coarse clock's
 * tick is far below stall_ns (coarse_res != 0) callbacks are timed by it:
 * the loop keeps an anchor (AN_C, the coarse time; AN_T, the precise time
 * read in that tick), and reads the precise clock only when the coarse one
 * has moved.  Every callback that starts in the anchor's tick starts after
 * AN_T (begin re-anchors when a new tick began in between), so:
 *   - one that ends in the anchor's tick ran less than a tick: not a stall;
 *   - one that ends later is accounted now - AN_T: never short, and too
 *     long by less than one tick (the anchor tick's earlier callbacks).
 * A stall is never missed, its duration is never short, and a callback up
 * to a tick under stall_ns may be reported too.  longest_callback takes
 * such a bound only when the callback itself spanned two ticks (the bound
 * is then under twice the truth).  Without a usable coarse clock every
 * callback is timed by the precise mark (TSC or fut_now_ns), exactly. */
void fut__loop_time_begin(struct loop *l)
{
    if (!l->coarse_res) {
        l->an_t = mark(l);
        return;
    }
    uint64_t c = fut__coarse_now();
    if (c != l->an_c) {
        l->an_c = c;
        l->an_t = fut_now_ns();
    }
}

void fut__loop_time_slow(struct loop *l, const void *fn, uint64_t c)
{
    if (!l->coarse_res) {
        uint64_t t = mark(l), d = t - l->an_t;
        l->an_t = t;
        if (l->ns_per_tick > 0)
            d = (uint64_t)((double)d * l->ns_per_tick);
        account(l, fn, d, true);
        return;
    }
    uint64_t t = fut_now_ns(), d = t - l->an_t;
    bool longest = c - l->an_c >= 2 * l->coarse_res;
    l->an_c = c;
    l->an_t = t;
    account(l, fn, d, longest);
}

/* ---- tasks ---------------------------------------------------------------*/

static void local_push(struct loop *l, fut_task_t *t)
{
    t->next = NULL;
    if (l->lq_tail)
        l->lq_tail->next = t;
    else
        l->lq_head = t;
    l->lq_tail = t;
}

/* The task queue from other threads is Vyukov's intrusive MPSC queue
 * (see the essay): producers exchange the tail, then link the old tail to
 * their node; the loop pops from its private head, in arrival order, one
 * node at a time, so it touches each node once, right before running it. */
static void rq_push(struct loop *l, fut_task_t *t)
{
    /* Relaxed: T is ours until the exchange below publishes it. */
    __atomic_store_n(&t->next, NULL, __ATOMIC_RELAXED);
    /* seq_cst: the producer's store of Dekker (remote_pending's load);
     * release orders T's link before it, acquire takes PREV from the
     * producer that pushed it. */
    fut_task_t *prev =
        atomic_exchange_explicit(&l->rq, t, memory_order_seq_cst);
    /* Release: pairs with the acquire loads of NEXT in rq_pop. */
    __atomic_store_n(&prev->next, t, __ATOMIC_RELEASE);
}

/* The oldest task handed over, or NULL when there is none or the next one
 * is still being linked by its producer (then it is taken next round). */
static fut_task_t *rq_pop(struct loop *l)
{
    fut_task_t *h = l->rq_head;
    /* Acquire: pairs with the release store of the link in rq_push. */
    fut_task_t *next = __atomic_load_n(&h->next, __ATOMIC_ACQUIRE);
    if (h == &l->rq_stub) {
        if (!next)
            return NULL;
        l->rq_head = h = next;
        next = __atomic_load_n(&h->next, __ATOMIC_ACQUIRE); /* same pair */
    }
    if (next) {
        l->rq_head = next;
        return h;
    }
    /* H looks last.  Acquire: pairs with the exchange in rq_push. */
    if (h != atomic_load_explicit(&l->rq, memory_order_acquire))
        return NULL; /* a producer is between its exchange and its link */
    rq_push(l, &l->rq_stub); /* so that H can leave */
    next = __atomic_load_n(&h->next, __ATOMIC_ACQUIRE); /* same pair */
    if (next) {
        l->rq_head = next;
        return h;
    }
    return NULL;
}

/* Whether a task is handed over or being handed over.  Loop thread. */
static bool rq_pending(struct loop *l, memory_order mo)
{
    return l->rq_head != &l->rq_stub ||
           atomic_load_explicit(&l->rq, mo) != &l->rq_stub;
}

static fut_task_t *local_pop(struct loop *l)
{
    fut_task_t *t = l->lq_head;
    if (t) {
        l->lq_head = t->next;
        if (!l->lq_head)
            l->lq_tail = NULL;
    }
    return t;
}

static int loop_submit(void *impl, fut_task_t *t)
{
    struct loop *l = impl;
    if (fut__loop_tl == l) {
        local_push(l, t);
        bump(&l->n_submitted, 1);
        return 0;
    }
    rq_push(l, t);
    wake_if_sleeping(l);
    return 0;
}

/* Whether callbacks may be timed by the coarse clock (fut__loop_time_begin):
 * its tick must be far below stall_ns.  The tick, or 0. */
static uint64_t coarse_usable(uint64_t stall_ns)
{
    struct timespec ts;
    if (clock_getres(CLOCK_MONOTONIC_COARSE, &ts) != 0 || ts.tv_sec ||
        (uint64_t)ts.tv_nsec * 8 > stall_ns)
        return 0;
    return ts.tv_nsec ? (uint64_t)ts.tv_nsec : 1;
}

/* Runs tasks, at most TASK_BUDGET of them: the local ones queued before
 * this round first (FIFO), then handed-over ones (arrival order), then
 * local ones queued by this round's tasks, so neither kind starves. */
static void run_tasks(struct loop *l)
{
    /* Relaxed: a peek; poll_io looks again, seq_cst, before it sleeps. */
    if (!l->lq_head && !rq_pending(l, memory_order_relaxed))
        return;
    fut__loop_time_begin(l);
    uint64_t n = 0, nr = 0;
    fut_task_t *last_local = l->lq_tail;
    while (n < TASK_BUDGET &&
           /* Relaxed: only a hint to stop early; fut_loop_run's acquire
            * load of quit decides. */
           !atomic_load_explicit(&l->quit, memory_order_relaxed)) {
        fut_task_t *t;
        if (last_local) {
            t = local_pop(l);
            if (t == last_local)
                last_local = NULL;
        } else if ((t = rq_pop(l))) {
            __builtin_prefetch(l->rq_head); /* the next node, while T runs */
            nr++;
        } else if (!(t = local_pop(l))) {
            break;
        }
        const void *fn = fut_task_fn_addr(t);
        fut_task_run(t);
        fut__loop_time_end(l, fn);
        n++;
    }
    bump(&l->n_tasks, n);
    bump(&l->n_submitted, nr);
}

/* ---- the timer heap (loop thread) -------------------------------------- */

static bool hless(const struct hent *a, const struct hent *b)
{
    return a->deadline < b->deadline ||
           (a->deadline == b->deadline && a->seq < b->seq);
}

static void hset(struct loop *l, size_t i, struct hent e)
{
    l->heap[i] = e;
    e.t->slot = i;
}

static void sift_up(struct loop *l, size_t i)
{
    struct hent e = l->heap[i];
    while (i > 0 && hless(&e, &l->heap[(i - 1) / 2])) {
        hset(l, i, l->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    hset(l, i, e);
}

static void sift_down(struct loop *l, size_t i)
{
    struct hent e = l->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= l->hn)
            break;
        if (c + 1 < l->hn && hless(&l->heap[c + 1], &l->heap[c]))
            c++;
        if (!hless(&l->heap[c], &e))
            break;
        hset(l, i, l->heap[c]);
        i = c;
    }
    hset(l, i, e);
}

static bool in_heap(const struct loop *l, const fut_timer_t *t)
{
    return t->slot < l->hn && l->heap[t->slot].t == t;
}

static int heap_insert(struct loop *l, fut_timer_t *t)
{
    if (l->hn == l->hcap) {
        size_t cap = l->hcap ? 2 * l->hcap : 64;
        struct hent *h = xgrow(l->heap, l->hn * sizeof *h, cap * sizeof *h);
        if (!h)
            return FUT_ENOMEM;
        l->heap = h;
        l->hcap = cap;
    }
    l->heap[l->hn] = (struct hent){t->deadline_ns, l->hseq++, t};
    t->slot = l->hn++;
    sift_up(l, l->hn - 1);
    return 0;
}

/* Removes the timer at I.  The array shrinks as the heap does and is freed
 * when it empties, so cancelled timers leave no memory behind. */
static void heap_remove(struct loop *l, size_t i)
{
    l->heap[i].t->slot = SIZE_MAX;
    l->hn--;
    if (i < l->hn) {
        hset(l, i, l->heap[l->hn]);
        if (i > 0 && hless(&l->heap[i], &l->heap[(i - 1) / 2]))
            sift_up(l, i);
        else
            sift_down(l, i);
    }
    if (l->hn == 0) {
        xfree(l->heap);
        l->heap = NULL;
        l->hcap = 0;
    } else if (l->hcap > 256 && l->hn < l->hcap / 4) {
        struct hent *h =
            xgrow(l->heap, l->hn * sizeof *h, l->hcap / 2 * sizeof *h);
        if (h) {
            l->heap = h;
            l->hcap /= 2;
        }
    }
}

static void drain_starts(struct loop *l)
{
    /* Relaxed peek, as in drain_tasks. */
    if (!atomic_load_explicit(&l->rstart, memory_order_relaxed))
        return;
    /* Acquire: pairs with the release half of the CAS in loop_timer_start. */
    fut_timer_t *t =
        atomic_exchange_explicit(&l->rstart, NULL, memory_order_acquire);
    REVERSE(fut_timer_t, t, slot);
    while (t) {
        fut_timer_t *next = (fut_timer_t *)(uintptr_t)t->slot;
        t->slot = SIZE_MAX;
        if (heap_insert(l, t))
            fut_timer_fail(t, FUT_ENOMEM); /* no memory for the heap */
        t = next;
    }
}

/* Cancel of T on the loop thread: end the start's hold if T still waits,
 * then the cancel's own hold. */
static void cancel_here(struct loop *l, fut_timer_t *t)
{
    if (!in_heap(l, t))
        drain_starts(l); /* its start may still be on the stack */
    if (in_heap(l, t)) {
        heap_remove(l, t->slot);
        fut_timer_drop(t);
    }
    fut_timer_drop(t);
}

static void drain_cancels(struct loop *l)
{
    /* Relaxed peek, as in drain_tasks. */
    if (!atomic_load_explicit(&l->rcancel, memory_order_relaxed))
        return;
    /* Acquire: pairs with the release half of the CAS in loop_timer_cancel. */
    fut_timer_t *t =
        atomic_exchange_explicit(&l->rcancel, NULL, memory_order_acquire);
    while (t) {
        fut_timer_t *next = t->next;
        cancel_here(l, t); /* may free T */
        t = next;
    }
}

static int loop_timer_start(void *impl, fut_timer_t *t)
{
    struct loop *l = impl;
    if (fut__loop_tl == l)
        return heap_insert(l, t);
    /* Relaxed: only a first guess for the CAS below. */
    fut_timer_t *h = atomic_load_explicit(&l->rstart, memory_order_relaxed);
    do
        t->slot = (size_t)(uintptr_t)h;
    /* seq_cst: release publishes T (acquire in drain_starts); Dekker. */
    while (!atomic_compare_exchange_weak_explicit(
        &l->rstart, &h, t, memory_order_seq_cst, memory_order_relaxed));
    wake_if_sleeping(l);
    return 0;
}

static void loop_timer_cancel(void *impl, fut_timer_t *t)
{
    struct loop *l = impl;
    if (fut__loop_tl == l) {
        cancel_here(l, t);
        return;
    }
    /* Relaxed: only a first guess for the CAS below. */
    fut_timer_t *h = atomic_load_explicit(&l->rcancel, memory_order_relaxed);
    do
        t->next = h;
    /* seq_cst: release publishes T (acquire in drain_cancels); Dekker. */
    while (!atomic_compare_exchange_weak_explicit(
        &l->rcancel, &h, t, memory_order_seq_cst, memory_order_relaxed));
    wake_if_sleeping(l);
}

/* Fires every timer due now.  One clock reading decides what is due, so a
 * timer armed by a firing callback waits for the next round. */
static void fire_timers(struct loop *l)
{
    if (!l->hn)
        return;
    uint64_t now = fut_now_ns(), n = 0;
    fut__loop_time_begin(l);
    while (l->hn && l->heap[0].deadline <= now) {
        fut_timer_t *t = l->heap[0].t;
        heap_remove(l, 0);
        fut_timer_fire(t);
        fut__loop_time_end(l, (const void *)(uintptr_t)fut_timer_fire);
        n++;
    }
    bump(&l->n_timers, n);
}

/* ---- the loop ----------------------------------------------------------- */

static bool remote_pending(struct loop *l)
{
    /* seq_cst loads: the loop's side of Dekker (see the essay). */
    return rq_pending(l, memory_order_seq_cst) ||
           atomic_load_explicit(&l->rfd, memory_order_seq_cst) ||
           atomic_load_explicit(&l->rstart, memory_order_seq_cst) ||
           atomic_load_explicit(&l->rcancel, memory_order_seq_cst);
}

/* Set once epoll_pwait2 said ENOSYS: a kernel before 5.11, or valgrind
 * (3.19 does not know syscall 441 and prints a warning at every call), so
 * the process asks once and every loop then uses epoll_wait with the
 * timeout rounded up to milliseconds.  Relaxed, both sides: a thread that
 * has not seen it yet asks once more. */
static atomic_bool no_pwait2;

/* Waits for I/O at most TIMEOUT_NS (< 0: no limit) and dispatches it.
 * epoll_wait for "no limit" and "don't sleep", the busy loop's calls:
 * epoll_pwait2 costs more in the kernel even with a NULL or zero timeout
 * (it copies the timespec, sets up a timeout and a signal mask; perf on
 * bench/loop/pingpong put it at ~0.3 us per round trip).  epoll_pwait2
 * only where its nanosecond timeout matters: a timer's deadline. */
static int wait_events(struct loop *l, struct epoll_event *evs,
                       int64_t timeout_ns)
{
    if (timeout_ns <= 0)
        return epoll_wait(l->epfd, evs, MAX_EVENTS, timeout_ns < 0 ? -1 : 0);
    if (!atomic_load_explicit(&no_pwait2, memory_order_relaxed)) {
        struct timespec ts = {(time_t)(timeout_ns / 1000000000),
                              (long)(timeout_ns % 1000000000)};
        int n = epoll_pwait2(l->epfd, evs, MAX_EVENTS, &ts, NULL);
        if (n >= 0 || errno != ENOSYS)
            return n;
        atomic_store_explicit(&no_pwait2, true, memory_order_relaxed);
    }
    int ms = timeout_ns > (int64_t)INT_MAX * 1000000
                 ? INT_MAX
                 : (int)((timeout_ns + 999999) / 1000000);
    return epoll_wait(l->epfd, evs, MAX_EVENTS, ms);
}

static void poll_io(struct loop *l, int64_t timeout_ns)
{
    calibrate(l);
    fut__loop_fd_prepoll(l);
    struct epoll_event evs[MAX_EVENTS];
    int n = -1;
    if (timeout_ns != 0 && l->vn) {
        /* fds kept on trust and not confirmed yet (loop_fd.c): before the
         * loop sleeps, look without sleeping; only if nothing is ready,
         * validate them, so a broken bet never makes the loop sleep
         * through a readiness.  (A bounded sleep instead would cost every
         * busy round: a finite epoll timeout is dearer than none.) */
        n = wait_events(l, evs, 0);
        if (n == 0) {
            n = -1;
            fut__loop_fd_validate(l);
            if (l->lq_head) /* a validation rejected waiters */
                timeout_ns = 0;
        }
    }
    if (n < 0) {
        bool slept = false;
        if (timeout_ns != 0) {
            /* seq_cst: Dekker with wake_if_sleeping's load. */
            atomic_store_explicit(&l->sleeping, 1, memory_order_seq_cst);
            slept = true;
            if (remote_pending(l))
                timeout_ns = 0;
        }
        n = wait_events(l, evs, timeout_ns);
        /* Relaxed: producers only need to see it eventually; a stale 1
         * costs at most one spare eventfd write.  Written only if we set
         * it: producers read this line on every push. */
        if (slept)
            atomic_store_explicit(&l->sleeping, 0, memory_order_relaxed);
    }
    uint64_t nfd = 0;
    for (int i = 0; i < n; i++) {
        if (evs[i].data.u64 == EV_WAKE) {
            eventfd_t v;
            eventfd_read(l->evfd, &v); /* before draining: see the essay */
            bump(&l->n_wakeups, 1);
        } else {
            nfd++;
            if (!fut__loop_dispatch(l, evs[i].data.u64, evs[i].events))
                break; /* a fresh epoll set: the rest is stale */
        }
    }
    bump(&l->n_fd, nfd);
}

/* How long the loop may sleep: 0 with work queued, until the next timer,
 * or forever. */
static int64_t next_timeout(struct loop *l)
{
    if (l->lq_head || rq_pending(l, memory_order_relaxed))
        return 0;
    if (!l->hn)
        return -1;
    uint64_t now = fut_now_ns(), d = l->heap[0].deadline;
    return d <= now ? 0 : (int64_t)(d - now > INT64_MAX ? INT64_MAX : d - now);
}

static void drain_remote(struct loop *l)
{
    drain_starts(l);
    drain_cancels(l);
    fut__loop_drain_fds(l);
}

static fut_result_t until_noop(void *arg, fut_t *src)
{
    (void)arg;
    (void)src;
    return fut_ok(NULL); /* its only job was to wake the loop */
}

/* fut_loop_run is one loop over: take what other threads handed over,
 * fire due timers, run queued tasks, then wait for I/O (not at all if tasks
 * remain) and dispatch it. */
int fut_loop_run(fut_executor_t *ex, fut_t *until)
{
    /* The core's guard around the start: a destroy racing it either finds
     * the run registered (and stops it) or is seen here (FUT_ESHUTDOWN),
     * and cannot free L in between. */
    struct loop *l;
    int rc = fut_executor_enter(ex, &fut__loop_ops, (void **)&l);
    if (rc)
        return rc;
    pthread_mutex_lock(&l->mu);
    rc = l->dead ? FUT_ESHUTDOWN : l->running ? FUT_EALREADY : 0;
    l->running = rc == 0;
    if (l->running)
        l->runner = pthread_self();
    pthread_mutex_unlock(&l->mu);
    fut_executor_leave(ex);
    if (rc)
        return rc;
    /* This thread runs the loop's work (the executor kit): it is the
     * loop's own thread for the core (continuations and timers it hands
     * the loop skip the guard for foreign threads; fut_wait here is
     * FUT_EDEADLK). */
    fut_kit_run_t run;
    fut_kit_run_begin(&run, ex);
    struct loop *prev = fut__loop_tl;
    fut__loop_tl = l;
    l->round += 3; /* no fd registration is trusted across runs (loop_fd.c) */
    if (until && fut_state(until) == FUT_PENDING)
        fut_release(fut_finally(fut_retain(until), ex, until_noop, NULL));
    for (;;) {
        drain_remote(l);
        fire_timers(l);
        run_tasks(l);
        /* Acquire: pairs with the release stores in fut_loop_stop and
         * loop_destroy. */
        if (atomic_load_explicit(&l->quit, memory_order_acquire) ||
            atomic_load_explicit(&l->stop, memory_order_acquire) ||
            (until && fut_state(until) != FUT_PENDING))
            break;
        poll_io(l, next_timeout(l));
    }
    fut__loop_tl = prev;
    /* Relaxed: a stop that races this reset is for the run that just
     * ended (the next run starts fresh, like uv_run). */
    atomic_store_explicit(&l->stop, 0, memory_order_relaxed);
    pthread_mutex_lock(&l->mu);
    l->running = false;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    fut_kit_run_end(&run);
    return 0;
}

void fut_loop_stop(fut_executor_t *ex)
{
    /* The core's guard: L cannot be freed under us by a racing destroy. */
    struct loop *l;
    if (fut_executor_enter(ex, &fut__loop_ops, (void **)&l))
        return;
    /* Release: pairs with the acquire load in fut_loop_run. */
    atomic_store_explicit(&l->stop, 1, memory_order_release);
    if (fut__loop_tl != l) /* else a callback of the run: seen after it */
        wake_always(l);
    fut_executor_leave(ex);
}

/* ---- creation, stats, shutdown ------------------------------------------ */

static int loop_stats(void *impl, fut_stats_t *out)
{
    struct loop *l = impl;
    /* Relaxed: counters, each written by the loop thread alone (bump). */
#define RD(x) atomic_load_explicit(&l->x, memory_order_relaxed)
    out->tasks_run = RD(n_tasks);
    out->tasks_submitted = RD(n_submitted);
    out->timers_fired = RD(n_timers);
    out->fd_events = RD(n_fd);
    out->wakeups = RD(n_wakeups);
    out->longest_callback_ns = RD(n_longest);
    out->stalls = RD(n_stalls);
#undef RD
    out->workers = 1;
    return 0;
}

/* Settles or drops everything the loop still holds.  Runs on the
 * destroying thread once no run can start; the core refuses new work for
 * the closed executor. */
static void shutdown_drain(struct loop *l)
{
    for (fut_task_t *t; (t = local_pop(l));)
        fut_task_drop(t);
    /* Acquire: pairs with the exchange in rq_push; no producer is left
     * (the core's gate is closed), but the last may still be linking. */
    while (rq_pending(l, memory_order_acquire)) {
        fut_task_t *t = rq_pop(l);
        if (t)
            fut_task_drop(t);
        else
            sched_yield();
    }
    /* Timers: starts still in flight end their first hold here, cancels
     * remove theirs from the heap and end both, the rest is dropped. */
    /* Acquire: pairs with the CAS in loop_timer_start (no pusher is left:
     * the core's gate is closed). */
    fut_timer_t *t =
        atomic_exchange_explicit(&l->rstart, NULL, memory_order_acquire);
    while (t) {
        fut_timer_t *next = (fut_timer_t *)(uintptr_t)t->slot;
        t->slot = SIZE_MAX;
        fut_timer_drop(t);
        t = next;
    }
    drain_cancels(l);
    while (l->hn) {
        fut_timer_t *x = l->heap[l->hn - 1].t;
        heap_remove(l, l->hn - 1);
        fut_timer_drop(x);
    }
    fut__loop_io_shutdown(l);
    fut__loop_fd_shutdown(l);
}

static void free_loop(struct loop *l)
{
    close(l->epfd);
    close(l->evfd);
    xfree(l->heap);
    xfree(l->fds);
    xfree(l->vq);
    fut__loop_fdw_free_all(l);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    xfree(l);
}

/* ops->owns_thread: the calling thread is inside our run, whatever it runs
 * there (a fut_inline() continuation, a nested run of another loop):
 * destroy would wait for that run to end, on the thread that runs it. */
static bool loop_owns_thread(void *impl)
{
    struct loop *l = impl;
    if (fut__loop_tl == l)
        return true;
    /* Only this thread can make the answer true for itself, so it stays
     * true (or false) after the unlock. */
    pthread_mutex_lock(&l->mu);
    bool own = l->running && pthread_equal(l->runner, pthread_self());
    pthread_mutex_unlock(&l->mu);
    return own;
}

/* Never on our own thread (the core asks loop_owns_thread first). */
static void loop_destroy(void *impl)
{
    struct loop *l = impl;
    /* seq_cst: pairs with gate_enter's seq_cst increment and load. */
    atomic_store_explicit(&l->gate_closed, 1, memory_order_seq_cst);
    /* Acquire: pairs with gate_leave's release. */
    while (atomic_load_explicit(&l->gate_users, memory_order_acquire))
        sched_yield();
    pthread_mutex_lock(&l->mu);
    l->dead = true;
    if (l->running) {
        /* Release: pairs with the acquire load in fut_loop_run. */
        atomic_store_explicit(&l->quit, 1, memory_order_release);
        wake_always(l);
        while (l->running)
            pthread_cond_wait(&l->cv, &l->mu);
    }
    pthread_mutex_unlock(&l->mu);
    shutdown_drain(l);
    free_loop(l);
}

/* In a child process, on the parent's loop: close our copies of the fds
 * (the epoll set lives on in the parent, untouched: no epoll_ctl) and free
 * the memory; the mutex may be held by a thread the child does not have,
 * so it is not touched.  Tasks, timers and fd waits are the parent's. */
static void loop_destroy_forked(void *impl)
{
    struct loop *l = impl;
    close(l->epfd);
    close(l->evfd);
    xfree(l->heap);
    xfree(l->fds);
    xfree(l->vq);
    fut__loop_fdw_free_all(l);
    xfree(l);
}

const fut_executor_ops_t fut__loop_ops = {
    .name = "loop",
    .flags = FUT_EXECUTOR_NO_BLOCK,
    .submit = loop_submit,
    .destroy = loop_destroy,
    .stats = loop_stats,
    .timer_start = loop_timer_start,
    .timer_cancel = loop_timer_cancel,
    .destroy_forked = loop_destroy_forked,
    .owns_thread = loop_owns_thread,
    .fd_ready = fut__loop_fd_ready,
};

int fut_loop_create(fut_executor_t **out, const fut_loop_opts_t *opts)
{
    if (!out)
        return FUT_EINVAL;
    struct loop *l = xalloc(sizeof *l);
    if (!l)
        return FUT_ENOMEM;
    memset(l, 0, sizeof *l);
    atomic_init(&l->rq, &l->rq_stub);
    l->rq_head = &l->rq_stub;
    l->stall_ns = opts && opts->stall_ns ? opts->stall_ns : DEFAULT_STALL_NS;
    l->coarse_res = coarse_usable(l->stall_ns);
    l->an_c = UINT64_MAX; /* no anchor yet */
    calibrate_start(l);
    l->log = opts ? opts->log : NULL;
    l->log_ud = opts ? opts->log_ud : NULL;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    l->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int rc = 0;
    if (l->epfd < 0 || l->evfd < 0)
        rc = -errno;
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = EV_WAKE};
    if (!rc && epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->evfd, &ev) < 0)
        rc = -errno;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    if (!rc)
        rc = fut_executor_create(&l->ex, &fut__loop_ops, l);
    if (rc) {
        if (l->epfd >= 0)
            close(l->epfd);
        if (l->evfd >= 0)
            close(l->evfd);
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->cv);
        xfree(l);
        return rc;
    }
    *out = l->ex;
    return 0;
}
