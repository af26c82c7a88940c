/* libfut — executors: where tasks and callbacks run.  The built-in ones are
 * fut_inline() (here), the pool (<fut/pool.h>) and the loop (<fut/loop.h>);
 * an application writes its own with a small ops table.  Include <fut.h>. */
#ifndef FUT_EXECUTOR_H
#define FUT_EXECUTOR_H

#include "common.h"
#include "future.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A unit of work the core hands to an executor.  The executor holds it from
 * a successful submit until it calls fut_task_run or fut_task_drop on it,
 * exactly once.  While it holds the task it may use NEXT for its queues. */
typedef struct fut_task {
    struct fut_task *next;
} fut_task_t;

/* A timer the core hands to an executor that keeps its own timers (the
 * loop).  DEADLINE_NS is CLOCK_MONOTONIC, read-only for the executor; SLOT
 * and NEXT are the executor's to use while it holds the timer. */
typedef struct fut_timer {
    uint64_t deadline_ns;
    size_t slot;
    struct fut_timer *next;
} fut_timer_t;

/* Counters an executor reports; fields it does not keep stay 0. */
typedef struct fut_stats {
    uint64_t tasks_run;           /* tasks and callbacks run */
    uint64_t tasks_submitted;     /* accepted by submit */
    uint64_t steals;              /* pool: tasks taken from another worker */
    uint64_t steal_failures;      /* pool: attempts that found nothing */
    uint64_t parks;               /* pool: times a worker went to sleep */
    uint64_t wakeups;             /* pool: wake-ups sent; loop: eventfd wakes */
    uint64_t injection_batches;   /* pool: batches taken from outside */
    uint64_t timers_fired;        /* loop */
    uint64_t fd_events;           /* loop */
    uint64_t stalls;              /* loop: stall reports */
    uint64_t longest_callback_ns; /* loop */
    unsigned workers;             /* threads that run tasks */
} fut_stats_t;

/* Flags in fut_executor_ops_t.flags. */
enum {
    /* The executor runs everything on one thread that must never block:
     * fut_wait on that thread for a pending future returns FUT_EDEADLK. */
    FUT_EXECUTOR_NO_BLOCK = 1u << 0
};

/* The executor interface.  IMPL is the executor's own state, borrowed.
 * submit:       required.  Take TASK and run it later (fut_task_run) on a
 *               thread of yours, or refuse: return FUT_ESHUTDOWN or
 *               FUT_ENOMEM and the core settles the task's future with it.
 *               Any thread, concurrently.
 * try_run_one:  optional.  Called by fut_wait on a thread currently running
 *               one of your tasks: run one queued task if there is one and
 *               return true, else false.  Makes waiting inside tasks help
 *               instead of block.
 * take:         optional.  Called by fut_wait on a thread currently running
 *               one of your tasks, waiting for the future whose task is
 *               TASK (which you hold): if TASK is queued where this thread
 *               can take it back at once (a pool worker's own deque, on
 *               top), remove it and return true: the waiting thread runs it
 *               itself, and your hold ends with that run (do not run or drop
 *               TASK yourself).  Else false, and nothing changes.  This is
 *               fork-join's fast path: the parent runs its own child.
 * destroy:      required.  Stop intake (later submits refuse), run or drop
 *               (fut_task_drop) every task and timer you hold, join your
 *               threads, free IMPL.  Called once, by fut_executor_destroy.
 * stats:        optional.  Fill OUT; any thread.
 * timer_start:  optional.  Hold T and call fut_timer_fire(T) at or after its
 *               deadline on your thread; or refuse with an error.  Any thread.
 *               A successful start gives you one hold on T; you end each
 *               hold with exactly one fut_timer_fire or fut_timer_drop.
 * timer_cancel: optional (required with timer_start).  The core no longer
 *               needs T (its future settled another way).  It may race your
 *               firing, so the call gives you a second hold, which keeps T's
 *               memory valid: remove T if you still hold the first (ending
 *               it with fut_timer_drop), then end the second with
 *               fut_timer_drop.  Any thread; at most once per T; never
 *               after your destroy began.
 * name:         shown by fut_executor_name. */
typedef struct fut_executor_ops {
    const char *name;
    unsigned flags;
    int (*submit)(void *impl, fut_task_t *task);
    bool (*try_run_one)(void *impl);
    void (*destroy)(void *impl);
    int (*stats)(void *impl, fut_stats_t *out);
    int (*timer_start)(void *impl, fut_timer_t *t);
    void (*timer_cancel)(void *impl, fut_timer_t *t);
    bool (*take)(void *impl, fut_task_t *task);
} fut_executor_ops_t;

/* The inline executor: runs a task at once on the submitting thread, but
 * trampolined (a task submitted while this thread already runs an inline
 * task is queued and run by the outermost one), so chains of any length
 * never grow the stack.  Static: never destroyed.  Threads: any. */
FUT_API fut_executor_t *fut_inline(void);

/* Wraps OPS (borrowed; must outlive the executor) and IMPL into an executor.
 * Returns: 0 and *OUT; FUT_EINVAL (OUT, OPS, submit or destroy NULL; or
 *   timer_start without timer_cancel); FUT_ENOMEM.  Threads: any. */
FUT_API int fut_executor_create(fut_executor_t **out,
                                const fut_executor_ops_t *ops, void *impl);

/* Returns IMPL if EX was created with OPS, else NULL (a checked downcast for
 * executor implementations).  Threads: any. */
FUT_API void *fut_executor_impl(const fut_executor_t *ex,
                                const fut_executor_ops_t *ops);

/* Shuts EX down: stops intake (continuations due later settle
 * FUT_ESHUTDOWN), finishes or drops queued work, joins its threads.  The
 * handle must not be used afterwards; futures still attached to EX stay
 * safe (the core keeps what they need).
 * Queued work: the pool runs every task and callback already queued (and
 * what they queue) before its workers exit; the loop runs nothing more:
 * queued tasks settle FUT_ESHUTDOWN and its timers are dropped (a pending
 * delay settles FUT_ESHUTDOWN); a custom executor runs or drops as its
 * destroy op does.  A fut_finally callback is never dropped: one dropped
 * runs on the thread that calls this, one due later on the thread that
 * settles its source.
 * Returns: 0; FUT_EINVAL for NULL or fut_inline(); FUT_EDEADLK when called
 *   from a task running on EX; FUT_EALREADY when a destroy of EX already
 *   began (a second call racing the first; after the first returned, the
 *   handle is gone and using it is a use after free).
 * Threads: any other than EX's own. */
FUT_API int fut_executor_destroy(fut_executor_t *ex);

/* EX's name: the ops' name ("inline", "pool", "loop", ...), "custom" when
 * the ops have none, "(null)" for NULL.  Static storage.  Threads: any. */
FUT_API const char *fut_executor_name(const fut_executor_t *ex);

/* Fills OUT with EX's counters (totals).  Returns 0; FUT_EINVAL for NULL
 * arguments; FUT_ESHUTDOWN (OUT zeroed) once EX's destroy began; an
 * executor without stats gives all zeros.  Threads: any. */
FUT_API int fut_executor_stats(const fut_executor_t *ex, fut_stats_t *out);

/* The executor whose task the calling thread is running, or NULL. */
FUT_API fut_executor_t *fut_executor_current(void);

/* For executors: run TASK here and now (once), ending the executor's hold.
 * Must be called on a thread that may run user code; never while holding a
 * lock the task might need. */
FUT_API void fut_task_run(fut_task_t *task);

/* For executors: give TASK back without running it; its future settles
 * FUT_ESHUTDOWN (unless settled already).  Ends the executor's hold. */
FUT_API void fut_task_drop(fut_task_t *task);

/* For executors with timers: T's deadline passed; settle what waits on it.
 * Ends the executor's hold.  Call on the executor's thread. */
FUT_API void fut_timer_fire(fut_timer_t *t);

/* For executors with timers: give T back unfired (after timer_cancel, or at
 * shutdown: a pending delay then settles FUT_ESHUTDOWN).  Ends the hold. */
FUT_API void fut_timer_drop(fut_timer_t *t);

/* For executors with timers: give T back unfired because it could not be
 * kept (ERR, e.g. FUT_ENOMEM when a deferred start finds no memory): a
 * pending delay or timeout settles with ERR.  Ends the hold. */
FUT_API void fut_timer_fail(fut_timer_t *t, int err);

/* For executors: the address of the application function TASK will call
 * (its fut_async task or its then/catch/finally callback), for diagnostics
 * such as stall reports.  Threads: any, while the executor holds TASK. */
FUT_API const void *fut_task_fn_addr(const fut_task_t *task);

/* For executors and extensions: allocate and free through the allocator the
 * application installed with fut_set_allocator (malloc/free by default),
 * so fault-injection tests reach executor memory too.  fut_alloc returns
 * NULL on failure; fut_free(NULL) is a no-op.  Threads: any. */
FUT_API void *fut_alloc(size_t size);
FUT_API void fut_free(void *p);

/* CLOCK_MONOTONIC now, in nanoseconds.  Threads: any. */
FUT_API uint64_t fut_now_ns(void);

#ifdef __cplusplus
}
#endif
#endif
