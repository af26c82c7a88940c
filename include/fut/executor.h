/* libfut — executors: where tasks and callbacks run.  The built-in ones are
 * fut_inline() (here), the pool (<fut/pool.h>) and the loop (<fut/loop.h>);
 * an application writes its own with a small ops table.  Include <fut.h>.
 *
 * fork().  A child process has only the thread that called fork(); the
 * parent's pool workers, loop runner and timer thread are not there.  In
 * the child:
 *  - executors, futures and timers made in the child work normally (the
 *    library's timer thread is started afresh when the child first needs
 *    it);
 *  - an executor the parent created is dead: anything submitted to it
 *    (fut_async, a continuation placed on it, fut_delay on a loop) gives
 *    FUT_ESHUTDOWN, its own calls (fut_loop_run, fut_fd_ready,
 *    fut_pool_worker_stats, fut_group_init) answer FUT_EINVAL, and
 *    fut_executor_destroy on it returns 0 having freed its memory without
 *    joining threads or touching what it shares with the parent (a loop
 *    closes its copies of its fds, and changes no epoll registration);
 *  - futures whose work or timer the parent's executors or timer thread
 *    held at the fork stay pending forever in the child: wait in the child
 *    only for futures made there.
 * Call fork() from a thread that is not running a task or callback (a
 * child forked inside one is still "inside" it).  Only fork() prepares the
 * child: after vfork(), clone() or _Fork() use no libfut call before exec. */
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
 *               threads, free IMPL.  Called once, by fut_executor_destroy,
 *               never on one of your own threads (see owns_thread).
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
 * name:         shown by fut_executor_name.
 * destroy_forked: optional.  Called instead of destroy, once, when a child
 *               process (after fork()) destroys an executor its parent
 *               created: free IMPL's memory and close its descriptors, and
 *               nothing else.  Your threads do not exist in the child and
 *               locks they held stay locked: join, wake or lock nothing; run
 *               or drop no task or timer you hold (they are the parent's:
 *               forget them); change no kernel object shared with the
 *               parent (an epoll set: close your fd of it, never
 *               epoll_ctl).  Without it the child leaks IMPL.
 * owns_thread:  optional.  True when the calling thread is one of yours (a
 *               worker, the thread inside your run loop), whatever it runs
 *               at the moment: a task of another executor, a fut_inline()
 *               continuation, code of your own.  fut_executor_destroy
 *               refuses there (FUT_EDEADLK) instead of calling destroy,
 *               which would join or free the very thread it runs on.
 *               Without it, only a thread inside one of your tasks
 *               (fut_executor_current) is refused.  Any thread, while IMPL
 *               lives; never concurrently with your destroy.
 * fd_ready:     optional.  Makes fut_fd_ready (and the socket operations
 *               of <fut/io.h>, built on it) work on you: return a new
 *               future (never NULL) that fulfils with fut_value_i64 = the
 *               ready subset of EVENTS once FD is ready, or rejects (-errno
 *               on an fd error, FUT_ENOMEM, FUT_ESHUTDOWN when your
 *               destroy settles it).  Settle it on your thread; let go of
 *               the registration when it is cancelled (a promise cancel
 *               hook, <fut/executor_kit.h>) and at destroy, whose waits
 *               reject FUT_ESHUTDOWN.  The core calls it with the
 *               arguments checked (FD >= 0; EVENTS a non-empty subset of
 *               FUT_READABLE|FUT_WRITABLE) and your destroy held off for
 *               the call (fut_executor_enter).  Any thread.  Without it,
 *               fut_fd_ready on you rejects FUT_EINVAL. */
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
    void (*destroy_forked)(void *impl);
    bool (*owns_thread)(void *impl);
    fut_t *(*fd_ready)(void *impl, int fd, unsigned events);
} fut_executor_ops_t;

/* Readiness bits of fut_fd_ready and ops->fd_ready. */
enum { FUT_READABLE = 1u << 0, FUT_WRITABLE = 1u << 1 };

/* A future that fulfils, with fut_value_i64 = the ready subset of EVENTS,
 * when FD is ready for EVENTS (FUT_READABLE and/or FUT_WRITABLE), watched
 * by EX: any executor whose ops provide fd_ready (the loop, <fut/loop.h>
 * for its rules; the libuv and GLib adapters, <fut/uv.h>, <fut/glib.h>).
 * It settles on EX's thread.  Many futures may wait on one fd.
 * Cancelling the future deregisters FD (on EX's thread, soon) once no
 * other future waits on it.
 * Ownership: returns a new reference; EX and FD are borrowed: close FD
 *   only once no future on it is pending (or after cancelling them).
 * Returns: never NULL.  Rejects with FUT_EINVAL (EX NULL or without
 *   fd_ready, such as the pool and fut_inline(); FD < 0; EVENTS empty or
 *   unknown), FUT_ESHUTDOWN (EX's destroy began before the call, or came
 *   while the future was pending), FUT_ENOMEM, or what EX's fd_ready
 *   rejects with (-errno: -EBADF for a number that is not an open fd,
 *   -EPERM for a regular file, the socket's error).
 * Threads: any; from a thread other than EX's, FD is registered when EX
 *   next runs its work (it is woken). */
FUT_API fut_t *fut_fd_ready(fut_executor_t *ex, int fd, unsigned events);

/* The inline executor: runs a task at once on the submitting thread, but
 * trampolined (a task submitted while this thread already runs an inline
 * task is queued and run by the outermost one), so chains of any length
 * never grow the stack.  Static: never destroyed.  Threads: any. */
FUT_API fut_executor_t *fut_inline(void);

/* Runs FN(ARG) on EX soon, with no future (as dispatch_async_f or
 * g_main_context_invoke do): the cheapest way to hand work to an executor,
 * from any thread.  FN runs once, on EX's thread as any task of EX does
 * (fut_inline(): at once on this thread, trampolined), with
 * fut_executor_current() == EX and fut_cancel_requested() false.
 * Ownership: EX borrowed; ARG is passed to FN untouched.
 * Returns: 0 once EX took the work; FUT_EINVAL (EX or FN NULL), FUT_ENOMEM
 *   (no memory for the task), FUT_ESHUTDOWN (EX's destroy began), or what
 *   a custom executor's submit refused with.  On an error FN is never
 *   called.  Accepted work still queued when EX is destroyed runs if the
 *   destroy finishes queued work (the pool) and is dropped, FN never
 *   called, where it drops it (the loop): post before the destroy, or
 *   free ARG some other way.
 * Threads: any, concurrently. */
FUT_API int fut_post(fut_executor_t *ex, void (*fn)(void *arg), void *arg);

/* Wraps OPS and IMPL into an executor.  OPS is borrowed until
 * fut_executor_destroy returns (OPS->name is copied, up to 23 characters).
 * The handle itself is never freed (see fut_executor_destroy), so it comes
 * from malloc, not from the allocator installed with fut_set_allocator.
 * Returns: 0 and *OUT; FUT_EINVAL (OUT, OPS, submit or destroy NULL; or
 *   timer_start without timer_cancel); FUT_ENOMEM (malloc failed).
 * Threads: any. */
FUT_API int fut_executor_create(fut_executor_t **out,
                                const fut_executor_ops_t *ops, void *impl);

/* Returns IMPL if EX was created with OPS, else NULL (a checked downcast for
 * executor implementations).  Threads: any. */
FUT_API void *fut_executor_impl(const fut_executor_t *ex,
                                const fut_executor_ops_t *ops);

/* Shuts EX down: stops intake, finishes or drops the work EX holds, joins
 * its threads, frees what it owns.  Blocks until that is done.
 * Work already on EX when the destroy begins:
 *  - pool: all of it runs before destroy returns (tasks, callbacks, group
 *    children, and what those submit from the workers); only submits from
 *    other threads are refused (FUT_ESHUTDOWN) once the destroy began.
 *  - loop: none of it runs (a task the loop's thread starts before it sees
 *    the destroy still runs to its end, and fut_loop_run then returns 0
 *    there): queued tasks and callbacks settle FUT_ESHUTDOWN uncalled
 *    (fut_finally's excepted, below); delays and timeouts kept by the
 *    loop settle FUT_ESHUTDOWN; pending fut_fd_ready futures reject
 *    FUT_ESHUTDOWN.
 *  - custom: as its ops->destroy decides, task by task (fut_task_run: the
 *    task runs; fut_task_drop: FUT_ESHUTDOWN, its callback not called).
 *  - inline (fut_inline()): never destroyed; it keeps nothing queued
 *    between calls.
 * A continuation on EX whose source settles later (from a thread not of
 * EX) settles FUT_ESHUTDOWN without its callback.  A fut_finally callback
 * is never dropped: one dropped at the destroy runs on the thread that
 * calls this, one due later on the thread that settles its source.
 * Delays on an executor without timers of its own (pool, most custom ones)
 * live on libfut's timer thread and still fire.
 * The handle stays valid after destroy, for the life of the process (its
 * struct, about 80 bytes, is never freed): every later call through it,
 * from any thread, refuses: fut_async, continuations and fut_delay
 * FUT_ESHUTDOWN, fut_executor_stats, fut_loop_run, fut_fd_ready and
 * fut_pool_worker_stats FUT_ESHUTDOWN, a second destroy FUT_EALREADY,
 * fut_loop_stop nothing, fut_group_init FUT_EINVAL.  So other
 * threads may go on submitting until they see FUT_ESHUTDOWN while one
 * thread destroys EX, without knowing whether the destroy has returned.
 * In a child process, on an executor the parent created: frees its memory
 * only (fork(), above).
 * Returns: 0; FUT_EINVAL for NULL or fut_inline(); FUT_EDEADLK when called
 *   on one of EX's own threads, whatever runs there: a task of EX, and on
 *   a pool worker or the thread inside the loop's run also a fut_inline()
 *   continuation, a task-group child or a nested run of another loop (a
 *   custom executor: as its ops->owns_thread says, else inside its tasks
 *   only); FUT_EALREADY once a destroy of EX began (racing or returned).
 * Threads: any other than EX's own. */
FUT_API int fut_executor_destroy(fut_executor_t *ex);

/* EX's name: the ops' name ("inline", "pool", "loop", ...; a custom one
 * cut to 23 characters), "custom" when the ops have none, "(null)" for
 * NULL.  Valid for the life of the process, also after EX's destroy.
 * Threads: any. */
FUT_API const char *fut_executor_name(const fut_executor_t *ex);

/* Fills OUT with EX's counters (totals).  Returns 0; FUT_EINVAL for NULL
 * arguments; FUT_ESHUTDOWN (OUT zeroed) once EX's destroy began; an
 * executor without stats gives all zeros.  Threads: any. */
FUT_API int fut_executor_stats(const fut_executor_t *ex, fut_stats_t *out);

/* The executor whose task the calling thread is running, or NULL. */
FUT_API fut_executor_t *fut_executor_current(void);

/* For an executor's own entry points that take a handle (the loop's
 * fut_fd_ready, fut_loop_run, fut_loop_stop; the pool's worker stats):
 * checks that EX was made with OPS and that its destroy has not begun, and
 * holds the destroy off (ops->destroy is not called) until the matching
 * fut_executor_leave(EX), so *IMPL may be used in between however the
 * calling thread races a destroy.  Keep the bracket short; never block or
 * wait for EX's own threads inside it; end it on the thread that began it
 * (not across a fiber's wait), innermost first when brackets nest.
 * Returns: 0 and *IMPL; FUT_EINVAL (EX NULL or not made with OPS);
 *   FUT_ESHUTDOWN (EX's destroy began or returned).  Only 0 needs a leave.
 * Threads: any; free on a thread running one of EX's tasks. */
FUT_API int fut_executor_enter(fut_executor_t *ex,
                               const fut_executor_ops_t *ops, void **impl);
FUT_API void fut_executor_leave(fut_executor_t *ex);

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
