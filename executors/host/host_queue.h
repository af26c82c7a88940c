/* libfut — what the host-loop adapters (executors/uv, executors/glib) share:
 * the task queues, the timer hand-off, the run of a batch with stall
 * reports.  Header-only (static functions): each adapter is its own
 * library and gets its own copy.  Built on public headers only.
 *
 * PROTOCOL
 *
 * One thread runs the host loop (uv_run, or the thread iterating the
 * GMainContext); the adapter's callbacks on it are "sessions", bracketed by
 * host_session_begin/end (fut_kit_run_begin/end, plus HOST_TL == Q so the
 * adapter knows it is on its own thread).  State splits in three:
 *   - session state: the local FIFO (HEAD/TAIL), the list of started
 *     timers, the counters' writes.  Touched only inside a session, or by
 *     destroy once no session can run (the adapter's destroy rules).
 *   - hand-off stacks: REMOTE (tasks), RSTART (timer starts), RCANCEL
 *     (timer cancels).  Any thread pushes with a CAS (release on success:
 *     publishes the node; pairs with the acquire exchange in the take);
 *     only the loop thread takes, the whole stack at once (exchange with
 *     NULL), so there is no ABA.  A taken batch is reversed, so each
 *     producer's items keep their order.
 *   - counters: written by the loop thread only (relaxed load + store: no
 *     locked instruction), read by stats on any thread.
 *
 * Wake-up, once per burst.  A push that finds its stack empty returns true
 * and its caller wakes the host loop (uv_async_send, g_main_context_wakeup);
 * a push onto a non-empty stack does not: the wake of the push that made
 * it non-empty has not been consumed yet, because the loop empties the
 * stack (exchange) only after it was woken, and a push after that exchange
 * finds it empty again.  Both hosts promise that a wake sent while the
 * adapter's callback runs calls it once more.
 *
 * Timers.  A node (struct host_timer, first member of the adapter's own)
 * is made at timer_start and T->slot points at it while the adapter holds
 * T's first hold; 0 once fired or dropped.  A start from another thread is
 * pushed on RSTART (state HT_QUEUED); the loop starts the host timer when it
 * takes it (HT_ACTIVE).  A cancel from another thread is pushed on RCANCEL
 * through T->next.  The core calls timer_cancel only after timer_start
 * returned, so a cancel the loop takes whose node is still HT_QUEUED has
 * its start on RSTART: the loop drains the starts again first. */
#ifndef FUT_HOST_QUEUE_H
#define FUT_HOST_QUEUE_H

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <fut.h>

/* Tasks one session runs before letting the host loop poll again. */
#define HOST_BATCH 256
/* Default stall threshold, as the loop's (fut_loop_opts_t.stall_ns). */
#define HOST_STALL_NS (100 * 1000 * 1000ull)

enum { HT_QUEUED, HT_ACTIVE };

struct host_timer {
    struct host_timer *link;        /* RSTART */
    struct host_timer *prev, *next; /* the started list (session state) */
    fut_timer_t *t;
    int state; /* HT_QUEUED, HT_ACTIVE */
};

struct host_queue {
    _Atomic(fut_task_t *) remote;
    _Atomic(struct host_timer *) rstart;
    _Atomic(fut_timer_t *) rcancel;
    fut_task_t *head, *tail;  /* local FIFO */
    struct host_timer timers; /* started list sentinel */
    fut_executor_t *ex;
    const char *name;
    uint64_t stall_ns;
    _Atomic uint64_t n_run, n_taken, n_timers, n_wakes, n_stalls, n_longest,
        n_fd;
};

/* The queue whose session this thread is in, or NULL. */
static _Thread_local struct host_queue *host_tl;

static inline void host_init(struct host_queue *q, const char *name)
{
    memset(q, 0, sizeof *q);
    atomic_init(&q->remote, NULL);
    atomic_init(&q->rstart, NULL);
    atomic_init(&q->rcancel, NULL);
    q->timers.prev = q->timers.next = &q->timers;
    q->name = name;
    q->stall_ns = HOST_STALL_NS;
}

static inline bool host_on_thread(const struct host_queue *q)
{
    return host_tl == q;
}

/* Counter with one writer (the loop thread): relaxed, no locked
 * instruction; host_stats reads. */
static inline void host_bump(_Atomic uint64_t *c, uint64_t by)
{
    atomic_store_explicit(
        c, atomic_load_explicit(c, memory_order_relaxed) + by,
        memory_order_relaxed);
}

/* ---- hand-off stacks ------------------------------------------------------ */

/* Pushes TASK for the loop thread; true if the stack was empty (wake). */
static inline bool host_push_task(struct host_queue *q, fut_task_t *task)
{
    fut_task_t *old = atomic_load_explicit(&q->remote, memory_order_relaxed);
    do {
        task->next = old;
        /* Release: publishes TASK; pairs with the acquire exchange in
         * host_take_tasks. */
    } while (!atomic_compare_exchange_weak_explicit(
        &q->remote, &old, task, memory_order_release, memory_order_relaxed));
    return old == NULL;
}

static inline bool host_push_start(struct host_queue *q, struct host_timer *h)
{
    struct host_timer *old =
        atomic_load_explicit(&q->rstart, memory_order_relaxed);
    do {
        h->link = old;
        /* Release: pairs with the acquire exchange in host_take_starts. */
    } while (!atomic_compare_exchange_weak_explicit(
        &q->rstart, &old, h, memory_order_release, memory_order_relaxed));
    return old == NULL;
}

static inline bool host_push_cancel(struct host_queue *q, fut_timer_t *t)
{
    fut_timer_t *old = atomic_load_explicit(&q->rcancel, memory_order_relaxed);
    do {
        t->next = old;
        /* Release: pairs with the acquire exchange in host_take_cancels. */
    } while (!atomic_compare_exchange_weak_explicit(
        &q->rcancel, &old, t, memory_order_release, memory_order_relaxed));
    return old == NULL;
}

/* Anything handed over or queued?  For a host's "is there work" poll
 * (GSource prepare/check); relaxed: a miss is covered by the wake. */
static inline bool host_has_work(struct host_queue *q)
{
    return q->head ||
           atomic_load_explicit(&q->remote, memory_order_relaxed) ||
           atomic_load_explicit(&q->rstart, memory_order_relaxed) ||
           atomic_load_explicit(&q->rcancel, memory_order_relaxed);
}

/* Moves the remote stack, oldest first, to the end of the local FIFO. */
static inline void host_take_tasks(struct host_queue *q)
{
    /* Relaxed peek (as the loop's drain_tasks): an empty stack costs no
     * locked instruction.  A push this misses found the stack empty and
     * woke the host, which calls the adapter once more (the wake rule). */
    if (!atomic_load_explicit(&q->remote, memory_order_relaxed))
        return;
    /* Acquire: pairs with the release CAS in host_push_task. */
    fut_task_t *s =
        atomic_exchange_explicit(&q->remote, NULL, memory_order_acquire);
    fut_task_t *rev = NULL;
    fut_task_t *last = s;
    while (s) {
        fut_task_t *n = s->next;
        s->next = rev;
        rev = s;
        s = n;
    }
    if (!rev)
        return;
    if (q->tail)
        q->tail->next = rev;
    else
        q->head = rev;
    q->tail = last;
}

static inline void host_push_local(struct host_queue *q, fut_task_t *task)
{
    task->next = NULL;
    if (q->tail)
        q->tail->next = task;
    else
        q->head = task;
    q->tail = task;
}

static inline fut_task_t *host_pop_local(struct host_queue *q)
{
    fut_task_t *t = q->head;
    if (t) {
        q->head = t->next;
        if (!q->head)
            q->tail = NULL;
        host_bump(&q->n_taken, 1);
    }
    return t;
}

/* The start stack, oldest first (a list through LINK). */
static inline struct host_timer *host_take_starts(struct host_queue *q)
{
    /* Relaxed peek, as in host_take_tasks. */
    if (!atomic_load_explicit(&q->rstart, memory_order_relaxed))
        return NULL;
    /* Acquire: pairs with the release CAS in host_push_start. */
    struct host_timer *s =
        atomic_exchange_explicit(&q->rstart, NULL, memory_order_acquire);
    struct host_timer *rev = NULL;
    while (s) {
        struct host_timer *n = s->link;
        s->link = rev;
        rev = s;
        s = n;
    }
    return rev;
}

/* The cancel stack, oldest first (a list through NEXT). */
static inline fut_timer_t *host_take_cancels(struct host_queue *q)
{
    /* Relaxed peek, as in host_take_tasks. */
    if (!atomic_load_explicit(&q->rcancel, memory_order_relaxed))
        return NULL;
    /* Acquire: pairs with the release CAS in host_push_cancel. */
    fut_timer_t *s =
        atomic_exchange_explicit(&q->rcancel, NULL, memory_order_acquire);
    fut_timer_t *rev = NULL;
    while (s) {
        fut_timer_t *n = s->next;
        s->next = rev;
        rev = s;
        s = n;
    }
    return rev;
}

static inline void host_timer_link(struct host_queue *q, struct host_timer *h)
{
    h->prev = &q->timers;
    h->next = q->timers.next;
    h->next->prev = h;
    q->timers.next = h;
}

static inline void host_timer_unlink(struct host_timer *h)
{
    h->prev->next = h->next;
    h->next->prev = h->prev;
    h->prev = h->next = h;
}

/* ---- sessions, stalls ------------------------------------------------------ */

struct host_session {
    fut_kit_run_t run;
    struct host_queue *prev;
};

/* This thread runs Q's work until host_session_end (the executor kit). */
static inline void host_session_begin(struct host_session *s,
                                      struct host_queue *q)
{
    fut_kit_run_begin(&s->run, q->ex);
    s->prev = host_tl;
    host_tl = q;
}

static inline void host_session_end(struct host_session *s)
{
    host_tl = s->prev;
    fut_kit_run_end(&s->run);
}

static inline void host_report_stall(struct host_queue *q, const void *fn,
                                     uint64_t ns)
{
    char msg[128];
    snprintf(msg, sizeof msg, "%s: callback %p ran %.1f ms (stall)", q->name,
             fn, (double)ns / 1e6);
    fut_log_event_t ev = {.level = FUT_LOG_WARN,
                          .kind = FUT_LOG_STALL,
                          .msg = msg,
                          .executor = q->name,
                          .fn = fn,
                          .duration_ns = ns};
    host_bump(&q->n_stalls, 1);
    fut_log_emit(&ev);
}

static inline void host_account(struct host_queue *q, const void *fn,
                                uint64_t t0)
{
    uint64_t d = fut_now_ns() - t0;
    /* Relaxed: one writer (this thread); host_stats reads. */
    if (d > atomic_load_explicit(&q->n_longest, memory_order_relaxed))
        atomic_store_explicit(&q->n_longest, d, memory_order_relaxed);
    if (d > q->stall_ns)
        host_report_stall(q, fn, d);
}

/* Runs TASK (in a session), timed. */
static inline void host_run_task(struct host_queue *q, fut_task_t *task)
{
    const void *fn = fut_task_fn_addr(task);
    uint64_t t0 = fut_now_ns();
    fut_task_run(task);
    host_bump(&q->n_run, 1);
    host_account(q, fn, t0);
}

/* Fires T (in a session), timed. */
static inline void host_fire(struct host_queue *q, fut_timer_t *t)
{
    uint64_t t0 = fut_now_ns();
    fut_timer_fire(t);
    host_bump(&q->n_timers, 1);
    host_account(q, NULL, t0); /* a timer: no application function */
}

/* Takes the remote tasks and runs at most HOST_BATCH queued tasks (in a
 * session).  True if tasks remain: the caller comes back soon. */
static inline bool host_run_batch(struct host_queue *q)
{
    host_take_tasks(q);
    for (int i = 0; i < HOST_BATCH; i++) {
        fut_task_t *t = host_pop_local(q);
        if (!t) {
            host_take_tasks(q);
            t = host_pop_local(q);
            if (!t)
                return false;
        }
        host_run_task(q, t);
    }
    return q->head ||
           atomic_load_explicit(&q->remote, memory_order_relaxed) != NULL;
}

/* Drops every queued task (FUT_ESHUTDOWN): destroy, no session runs. */
static inline void host_drop_tasks(struct host_queue *q)
{
    host_take_tasks(q);
    for (fut_task_t *t; (t = host_pop_local(q));)
        fut_task_drop(t);
}

/* tasks_submitted counts the tasks the loop thread took from its queues
 * (counting each there, on one thread, costs producers nothing): a task
 * accepted but not yet taken is not in it.  wakeups counts the adapter's
 * wake callbacks (the uv async's, the work source's dispatches). */
static inline int host_stats(struct host_queue *q, fut_stats_t *out)
{
    /* Relaxed: counters, each written by the loop thread alone. */
#define HOST_RD(x) atomic_load_explicit(&q->x, memory_order_relaxed)
    out->tasks_run = HOST_RD(n_run);
    out->tasks_submitted = HOST_RD(n_taken);
    out->timers_fired = HOST_RD(n_timers);
    out->wakeups = HOST_RD(n_wakes);
    out->fd_events = HOST_RD(n_fd);
    out->stalls = HOST_RD(n_stalls);
    out->longest_callback_ns = HOST_RD(n_longest);
#undef HOST_RD
    out->workers = 1;
    return 0;
}

#endif
