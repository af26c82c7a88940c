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
 *   - hand-off stacks (rq: tasks, rfd: fd registrations, rstart: timer
 *     starts, rcancel: timer cancels).  Any thread pushes with a CAS; only
 *     the loop thread takes, and it takes the whole stack at once (exchange
 *     with NULL), so there is no ABA and no per-node reclamation problem.
 *     The taken batch is reversed, so each producer's items keep its order.
 *   - counters (stats), written by the loop thread only (plain load + store
 *     on atomics: no locked instruction), read by anyone.
 *
 * Cross-thread hand-off.  A producer writes its node's link, then pushes
 * with a seq_cst CAS (the release half publishes the node; the loop's
 * acquire exchange pairs with it).  A timer start links through t->slot and
 * a cancel through t->next, so a cancel can be pushed while the start is
 * still in flight: the loop drains starts first and, when a cancel names a
 * timer it cannot find in its heap, drains the starts again (the start
 * happened before the cancel, so it is there by now).
 *
 * Wake-up batching (one eventfd write per sleep, not per task).
 *
 *     loop:     sleeping = 1 (seq_cst); if any stack non-empty (seq_cst
 *               loads): don't block; epoll_wait; sleeping = 0
 *     producer: push (seq_cst CAS); if sleeping (seq_cst load) and
 *               exchange(sleeping, 0) == 1: write the eventfd
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
 * promise.  The fd is registered EPOLLONESHOT: an event disarms it in the
 * kernel, so a registration nobody waits on never fires twice; arming again
 * is one EPOLL_CTL_MOD (ENOENT -> ADD, which also catches a closed and
 * reused fd number).  A cancel reaches the loop through a fut_catch on the
 * loop (on_fd_cancel).  Ownership of a waiter: the loop frees it when it
 * settles the promise itself; when a cancel won the race (settle returns
 * FUT_EALREADY), on_fd_cancel is coming, so the waiter waits for it on the
 * orphan list; destroy frees whatever is left (the core then never calls
 * on_fd_cancel: it refuses work for a closed executor).
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

uint64_t fut__loop_mark(const struct loop *l)
{
    return l->ns_per_tick > 0 ? tsc_now() : fut_now_ns();
}

/* *T0 becomes now, so a run of callbacks reads the clock once each. */
void fut__loop_account(struct loop *l, const void *fn, uint64_t *t0)
{
    uint64_t t1 = fut__loop_mark(l), d = t1 - *t0;
    *t0 = t1;
    if (l->ns_per_tick > 0)
        d = (uint64_t)((double)d * l->ns_per_tick);
    /* Relaxed: a counter with one writer (this thread); loop_stats reads. */
    if (d > atomic_load_explicit(&l->n_longest, memory_order_relaxed))
        atomic_store_explicit(&l->n_longest, d, memory_order_relaxed);
    if (d > l->stall_ns)
        report_stall(l, fn, d);
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

static int loop_submit(void *impl, fut_task_t *t)
{
    struct loop *l = impl;
    if (fut__loop_tl == l) {
        local_push(l, t);
        bump(&l->n_submitted, 1);
        return 0;
    }
    /* Relaxed: only a first guess for the CAS below. */
    fut_task_t *h = atomic_load_explicit(&l->rq, memory_order_relaxed);
    do
        t->next = h;
    /* seq_cst: release publishes T (pairs with the acquire exchange in
     * drain_tasks); the store half is the producer's side of Dekker. */
    while (!atomic_compare_exchange_weak_explicit(
        &l->rq, &h, t, memory_order_seq_cst, memory_order_relaxed));
    wake_if_sleeping(l);
    return 0;
}

static void drain_tasks(struct loop *l)
{
    /* Relaxed peek: an empty stack is not worth a locked exchange; a push
     * we miss now is taken next round (the loop checks again before it
     * sleeps, seq_cst, in poll_io). */
    if (!atomic_load_explicit(&l->rq, memory_order_relaxed))
        return;
    /* Acquire: pairs with the release half of the CAS in loop_submit. */
    fut_task_t *t =
        atomic_exchange_explicit(&l->rq, NULL, memory_order_acquire);
    /* Reverse into arrival order; the newest (first taken) ends as tail,
     * and the whole batch is spliced onto the local FIFO at once. */
    fut_task_t *head = NULL, *tail = t;
    uint64_t n = 0;
    while (t) {
        fut_task_t *next = t->next;
        t->next = head;
        head = t;
        t = next;
        n++;
    }
    if (l->lq_tail)
        l->lq_tail->next = head;
    else
        l->lq_head = head;
    l->lq_tail = tail;
    bump(&l->n_submitted, n);
}

/* Runs local tasks in FIFO order, at most TASK_BUDGET of them. */
static void run_tasks(struct loop *l)
{
    if (!l->lq_head)
        return;
    uint64_t t0 = fut__loop_mark(l), n = 0;
    while (l->lq_head && n < TASK_BUDGET &&
           /* Relaxed: only a hint to stop early; fut_loop_run's acquire
            * load of quit decides. */
           !atomic_load_explicit(&l->quit, memory_order_relaxed)) {
        fut_task_t *t = l->lq_head;
        l->lq_head = t->next;
        if (!l->lq_head)
            l->lq_tail = NULL;
        const void *fn = fut_task_fn_addr(t);
        fut_task_run(t);
        fut__loop_account(l, fn, &t0);
        n++;
    }
    bump(&l->n_tasks, n);
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
    uint64_t now = fut_now_ns(), t0 = fut__loop_mark(l), n = 0;
    while (l->hn && l->heap[0].deadline <= now) {
        fut_timer_t *t = l->heap[0].t;
        heap_remove(l, 0);
        fut_timer_fire(t);
        fut__loop_account(l, (const void *)(uintptr_t)fut_timer_fire, &t0);
        n++;
    }
    bump(&l->n_timers, n);
}

/* ---- the loop ----------------------------------------------------------- */

static bool remote_pending(struct loop *l)
{
    /* seq_cst loads: the loop's side of Dekker (see the essay). */
    return atomic_load_explicit(&l->rq, memory_order_seq_cst) ||
           atomic_load_explicit(&l->rfd, memory_order_seq_cst) ||
           atomic_load_explicit(&l->rstart, memory_order_seq_cst) ||
           atomic_load_explicit(&l->rcancel, memory_order_seq_cst);
}

/* Waits for I/O at most TIMEOUT_NS (< 0: no limit) and dispatches it. */
static void poll_io(struct loop *l, int64_t timeout_ns)
{
    calibrate(l);
    if (timeout_ns != 0) {
        /* seq_cst: Dekker with wake_if_sleeping's load. */
        atomic_store_explicit(&l->sleeping, 1, memory_order_seq_cst);
        if (remote_pending(l))
            timeout_ns = 0;
    }
    struct epoll_event evs[MAX_EVENTS];
    struct timespec ts = {(time_t)(timeout_ns / 1000000000),
                          (long)(timeout_ns % 1000000000)};
    int n = epoll_pwait2(l->epfd, evs, MAX_EVENTS, timeout_ns < 0 ? NULL : &ts,
                         NULL);
    if (n < 0 && errno == ENOSYS) {
        int ms = timeout_ns < 0 ? -1
                 : timeout_ns > (int64_t)INT_MAX * 1000000
                     ? INT_MAX
                     : (int)((timeout_ns + 999999) / 1000000);
        n = epoll_wait(l->epfd, evs, MAX_EVENTS, ms);
    }
    /* Relaxed: producers only need to see it eventually; a stale 1 costs
     * at most one spare eventfd write. */
    atomic_store_explicit(&l->sleeping, 0, memory_order_relaxed);
    uint64_t nfd = 0;
    for (int i = 0; i < n; i++) {
        if (evs[i].data.u64 == EV_WAKE) {
            eventfd_t v;
            eventfd_read(l->evfd, &v); /* before draining: see the essay */
            bump(&l->n_wakeups, 1);
        } else {
            fut__loop_dispatch(l, (int)evs[i].data.u64, evs[i].events);
            nfd++;
        }
    }
    bump(&l->n_fd, nfd);
}

/* How long the loop may sleep: 0 with work queued, until the next timer,
 * or forever. */
static int64_t next_timeout(struct loop *l)
{
    if (l->lq_head)
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
    drain_tasks(l);
}

static fut_result_t until_noop(void *arg, fut_t *src)
{
    (void)arg;
    (void)src;
    return fut_ok(NULL); /* its only job was to wake the loop */
}

static void shutdown_drain(struct loop *l);
static void free_loop(struct loop *l);

/* fut_loop_run is one loop over: take what other threads handed over,
 * fire due timers, run queued tasks, then wait for I/O (not at all if tasks
 * remain) and dispatch it. */
int fut_loop_run(fut_executor_t *ex, fut_t *until)
{
    struct loop *l = fut_executor_impl(ex, &fut__loop_ops);
    if (!l)
        return FUT_EINVAL;
    pthread_mutex_lock(&l->mu);
    int rc = l->dead ? FUT_ESHUTDOWN : l->running ? FUT_EALREADY : 0;
    l->running = rc == 0;
    pthread_mutex_unlock(&l->mu);
    if (rc)
        return rc;
    struct loop *prev = fut__loop_tl;
    fut__loop_tl = l;
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
    bool deferred = l->destroy_deferred;
    l->running = false;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    if (deferred) { /* destroyed from a callback on this very thread */
        shutdown_drain(l);
        free_loop(l);
    }
    return 0;
}

void fut_loop_stop(fut_executor_t *ex)
{
    struct loop *l = fut_executor_impl(ex, &fut__loop_ops);
    if (!l)
        return;
    if (fut__loop_tl == l) { /* a callback of the run: seen after it */
        atomic_store_explicit(&l->stop, 1, memory_order_release);
        return;
    }
    if (!gate_enter(l))
        return;
    /* Release: pairs with the acquire load in fut_loop_run. */
    atomic_store_explicit(&l->stop, 1, memory_order_release);
    wake_always(l);
    gate_leave(l);
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
 * destroying thread once no run can start (or on the loop thread after a
 * deferred destroy); the core refuses new work for the closed executor. */
static void shutdown_drain(struct loop *l)
{
    for (;;) {
        drain_tasks(l);
        if (!l->lq_head)
            break;
        while (l->lq_head) {
            fut_task_t *t = l->lq_head;
            l->lq_head = t->next;
            if (!l->lq_head)
                l->lq_tail = NULL;
            fut_task_drop(t);
        }
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
    fut__loop_fd_shutdown(l);
}

static void free_loop(struct loop *l)
{
    close(l->epfd);
    close(l->evfd);
    xfree(l->heap);
    xfree(l->fds);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    xfree(l);
}

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
        if (fut__loop_tl == l) { /* from a callback of our own run */
            l->destroy_deferred = true;
            pthread_mutex_unlock(&l->mu);
            return;
        }
        wake_always(l);
        while (l->running)
            pthread_cond_wait(&l->cv, &l->mu);
    }
    pthread_mutex_unlock(&l->mu);
    shutdown_drain(l);
    free_loop(l);
}

const fut_executor_ops_t fut__loop_ops = {
    .name = "loop",
    .flags = FUT_EXECUTOR_NO_BLOCK,
    .submit = loop_submit,
    .destroy = loop_destroy,
    .stats = loop_stats,
    .timer_start = loop_timer_start,
    .timer_cancel = loop_timer_cancel,
};

int fut_loop_create(fut_executor_t **out, const fut_loop_opts_t *opts)
{
    if (!out)
        return FUT_EINVAL;
    struct loop *l = xalloc(sizeof *l);
    if (!l)
        return FUT_ENOMEM;
    memset(l, 0, sizeof *l);
    l->stall_ns = opts && opts->stall_ns ? opts->stall_ns : DEFAULT_STALL_NS;
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
