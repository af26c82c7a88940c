/* libfut — the event-loop executor: epoll, an eventfd wake-up, a timer heap,
 * fd readiness and stall detection, all run by the one thread inside
 * fut_loop_run.
 *
 * Files: this one has the protocol, the task queues, the loop itself,
 * creation and shutdown; loop_timers.c the timer heap and its hand-off
 * stacks; loop_clock.c callback timing and stall reports; loop_fd.c fd
 * readiness; loop_io.c and io_file.c the I/O operations.  All share
 * loop_impl.h; none includes another's code.
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
 * own gate (users/closed: a counter, the seq_cst pattern lib/guard.c keeps
 * for deep brackets). */
#include "loop_impl.h"

_Thread_local struct loop *fut__loop_tl;

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

/* A task's link, seen as the atomic the queue needs.  fut_task_t is public
 * and its NEXT a plain pointer (an executor owns it while it holds the
 * task); the queue's accesses go through this view, so the loop speaks
 * C11 <stdatomic.h> only.  Same size and alignment, checked here. */
typedef _Atomic(fut_task_t *) task_link_t;
_Static_assert(sizeof(task_link_t) == sizeof(fut_task_t *) &&
                   _Alignof(task_link_t) == _Alignof(fut_task_t *),
               "a task's link can be viewed as an atomic pointer");

static inline task_link_t *link_of(fut_task_t *t)
{
    return (task_link_t *)&t->next;
}

/* The task queue from other threads is Vyukov's intrusive MPSC queue
 * (see the essay): producers exchange the tail, then link the old tail to
 * their node; the loop pops from its private head, in arrival order, one
 * node at a time, so it touches each node once, right before running it. */
static void rq_push(struct loop *l, fut_task_t *t)
{
    /* Relaxed: T is ours until the exchange below publishes it. */
    atomic_store_explicit(link_of(t), NULL, memory_order_relaxed);
    /* seq_cst: the producer's store of Dekker (remote_pending's load);
     * release orders T's link before it, acquire takes PREV from the
     * producer that pushed it. */
    fut_task_t *prev =
        atomic_exchange_explicit(&l->rq, t, memory_order_seq_cst);
    /* Release: pairs with the acquire loads of NEXT in rq_pop. */
    atomic_store_explicit(link_of(prev), t, memory_order_release);
}

/* The oldest task handed over, or NULL when there is none or the next one
 * is still being linked by its producer (then it is taken next round). */
static fut_task_t *rq_pop(struct loop *l)
{
    fut_task_t *h = l->rq_head;
    /* Acquire: pairs with the release store of the link in rq_push. */
    fut_task_t *next = atomic_load_explicit(link_of(h), memory_order_acquire);
    if (h == &l->rq_stub) {
        if (!next)
            return NULL;
        l->rq_head = h = next;
        /* Acquire: the same pair. */
        next = atomic_load_explicit(link_of(h), memory_order_acquire);
    }
    if (next) {
        l->rq_head = next;
        return h;
    }
    /* H looks last.  Acquire: pairs with the exchange in rq_push. */
    if (h != atomic_load_explicit(&l->rq, memory_order_acquire))
        return NULL; /* a producer is between its exchange and its link */
    rq_push(l, &l->rq_stub); /* so that H can leave */
    /* Acquire: the same pair. */
    next = atomic_load_explicit(link_of(h), memory_order_acquire);
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

/* Consecutive tasks of one function are timed together, up to this many:
 * one clock read for them all (see run_tasks). */
#define TIMED_RUN_MAX 16

/* Runs tasks, at most TASK_BUDGET of them: the local ones queued before
 * this round first (FIFO), then handed-over ones (arrival order), then
 * local ones queued by this round's tasks, so neither kind starves.
 *
 * Stall timing (loop_clock.c) reads the coarse clock after a callback;
 * that read costs 13 ns on the machine of docs/BENCHMARKS.md, a third of
 * a posted task's whole hand-off.  So a run of consecutive tasks of one
 * function (a producer posting the same handler, a fan-out of one
 * continuation), up to TIMED_RUN_MAX of them, is timed as one callback:
 * one read when the run ends.  A stall report then names the function
 * with the run's time: one call that long, or up to TIMED_RUN_MAX calls of
 * it back to back that together held the loop that long.  Tasks of
 * different functions are still timed one by one. */
static void run_tasks(struct loop *l)
{
    /* Relaxed: a peek; poll_io looks again, seq_cst, before it sleeps. */
    if (!l->lq_head && !rq_pending(l, memory_order_relaxed))
        return;
    fut__loop_time_begin(l);
    uint64_t n = 0, nr = 0;
    const void *run_fn = NULL; /* the function of the run being timed */
    unsigned run_n = 0;        /* its tasks so far */
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
        if (fn != run_fn || run_n == TIMED_RUN_MAX) {
            if (run_n)
                fut__loop_time_end(l, run_fn); /* the run before T */
            run_fn = fn;
            run_n = 0;
        }
        fut_task_run(t);
        run_n++;
        n++;
    }
    if (run_n)
        fut__loop_time_end(l, run_fn);
    bump(&l->n_tasks, n);
    bump(&l->n_submitted, nr);
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

/* Waits as wait_events, marked asleep (so that other threads' work wakes
 * us) unless TIMEOUT_NS is 0. */
static int sleep_events(struct loop *l, struct epoll_event *evs,
                        int64_t timeout_ns)
{
    if (timeout_ns == 0)
        return wait_events(l, evs, 0);
    /* seq_cst: Dekker with wake_if_sleeping's load. */
    atomic_store_explicit(&l->sleeping, 1, memory_order_seq_cst);
    if (remote_pending(l))
        timeout_ns = 0;
    int n = wait_events(l, evs, timeout_ns);
    /* Relaxed: producers only need to see it eventually; a stale 1 costs
     * at most one spare eventfd write.  Written only if we set it:
     * producers read this line on every push. */
    atomic_store_explicit(&l->sleeping, 0, memory_order_relaxed);
    return n;
}

/* How long the loop sleeps with fds kept on trust and not confirmed yet
 * (loop_fd.c) before it validates them. */
#define TRUST_GRACE_NS (1000 * 1000)

static void poll_io(struct loop *l, int64_t timeout_ns)
{
    fut__loop_calibrate(l);
    fut__loop_fd_prepoll(l);
    struct epoll_event evs[MAX_EVENTS];
    int n;
    if (timeout_ns != 0 && l->vn) {
        /* fds kept on trust and not confirmed yet: look without sleeping
         * first (an answer already there, as in a ping-pong, confirms them
         * with no timer); if nothing is ready, sleep at most
         * TRUST_GRACE_NS, and only if nothing came, validate them and end
         * the round (the next one sleeps for real), so a broken bet costs
         * a readiness at most that long.  A server whose clients answer
         * within the grace validates nothing: validating before every
         * sleep cost it an epoll_ctl per keep-alive request (0.8 of them
         * under wrk -c100).  Going straight to the timed sleep cost
         * bench/loop/pingpong 10-17% (a third of its sleeps were a timed
         * epoll_pwait2, 972c0a5's were all untimed); the look costs
         * http_server about 0.02 epoll_wait per request
         * (bench/http/per_request.sh syscalls). */
        int64_t grace = timeout_ns > 0 && timeout_ns < TRUST_GRACE_NS
                            ? timeout_ns
                            : TRUST_GRACE_NS;
        n = wait_events(l, evs, 0);
        if (n == 0) {
            n = sleep_events(l, evs, grace);
            if (n == 0)
                fut__loop_fd_validate(l);
        }
    } else {
        n = sleep_events(l, evs, timeout_ns);
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
    fut__loop_drain_timers(l);
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
        fut__loop_fire_timers(l);
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
    fut__loop_timers_shutdown(l); /* loop_timers.c */
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
 * (the epoll set and fut_pread's io_uring ring live on in the parent,
 * untouched: no epoll_ctl, no io_uring_enter) and free the memory; the
 * mutex may be held by a thread the child does not have, so it is not
 * touched.  Tasks, timers and fd waits are the parent's. */
static void loop_destroy_forked(void *impl)
{
    struct loop *l = impl;
    close(l->epfd);
    close(l->evfd);
    fut__uring_destroy_forked(l); /* fut_pread's ring: its fds and maps */
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
    .timer_start = fut__loop_timer_start,
    .timer_cancel = fut__loop_timer_cancel,
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
    fut__loop_clock_init(l);
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
