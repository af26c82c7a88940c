/* libfut — fibers: tasks with a stack of their own, in which fut_await and
 * fut_wait suspend the fiber instead of blocking the thread.  Include
 * <fut.h>.
 *
 * A fiber runs FN(ARG) as work of an executor, like fut_async, but on its
 * own stack: when it waits for a pending future it is switched out, the
 * thread goes on with the executor's other work, and when the future
 * settles the fiber is handed back to the executor as a task and resumes
 * where it stopped.  On the loop this is the await that the loop thread
 * otherwise refuses (FUT_EDEADLK): many requests wait at once, each written
 * as straight-line code.
 *
 * Threads and state across a wait: a fiber on a pool may resume on another
 * worker than the one it suspended on, so a thread-local variable (errno
 * included) read after fut_await may be another thread's.  A blocking call
 * (read(2), sleep, a mutex held long) inside a fiber still blocks the whole
 * thread, and on the loop freezes every other fiber and callback: the
 * loop's stall warnings report it.  Only the fiber's own code suspends: a
 * callback the library runs inline on the fiber's stack (fut_then on
 * fut_inline(), a continuation fired by a settle inside the fiber) waits
 * as it would outside a fiber, and fut_yield there returns at once.  Memory on
 * a fiber's stack lent to work it awaits must outlive that work: a wait that
 * returns FUT_ECANCELED or FUT_ESHUTDOWN does not stop the work (cancel it, or
 * wait for it with fut_wait outside the fiber, before the fiber returns).
 * Floating-point control (rounding, exception masks): a fiber starts with
 * that of the thread that first runs it, as a task does, and keeps its
 * own across its switches; the thread's comes back intact whenever the
 * fiber switches out or ends, whatever the fiber changed.
 *
 * Stacks: FUT_FIBER_STACK_DEFAULT usable bytes each, below which lies a
 * guard page (an overflow is a SIGSEGV there, never silent corruption).
 * Stacks come from a pool and go back to it when the fiber ends, so a
 * steady stream of fibers makes no system call for stacks.  At rest a
 * suspended fiber uses the stack pages it touched (one or two for shallow
 * code: 4.3 KiB measured, docs/BENCHMARKS.md, "Fibers") and a 128-byte
 * block for its wait. */
#ifndef FUT_FIBER_H
#define FUT_FIBER_H

#include "common.h"
#include "future.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The usable stack of a fiber made with stack_size 0: 64 KiB. */
#define FUT_FIBER_STACK_DEFAULT ((size_t)64 * 1024)
/* Bounds of fut_fiber_opts_t.stack_size (other than 0). */
#define FUT_FIBER_STACK_MIN ((size_t)16 * 1024)
#define FUT_FIBER_STACK_MAX ((size_t)256 * 1024 * 1024)

/* Options of fut_fiber; a zeroed struct (or NULL) gives the defaults. */
typedef struct fut_fiber_opts {
    /* Usable stack bytes: 0 = FUT_FIBER_STACK_DEFAULT (64 KiB); otherwise
     * FUT_FIBER_STACK_MIN..FUT_FIBER_STACK_MAX, rounded up to a power of
     * two. */
    size_t stack_size;
} fut_fiber_opts_t;

/* Runs FN(ARG) on a stack of its own as work of EX (any executor: inline,
 * pool, loop, custom) and returns the future of what FN returns, exactly
 * like fut_async.  Inside FN, fut_await and fut_wait suspend the fiber
 * (see fut_wait); fut_yield lets other work run.
 * Cancellation: fut_cancel on the returned future (or a fut_timeout
 * around it) settles it at once, as for any task; the fiber itself goes
 * on: its current or next wait returns FUT_ECANCELED (and so does every
 * later one), fut_cancel_requested() is true inside it, and what FN then
 * returns is disposed (its destructor runs).  Like a task's future, it is
 * also cancelled when a future waiting on it is cancelled and nothing else
 * observes it (see fut_cancel).
 * Shutdown: when EX is destroyed with fibers still suspended, each is
 * resumed one last time by fut_executor_destroy, on the thread that called
 * it, with its wait returning FUT_ESHUTDOWN (and every later wait and
 * fut_yield returning at once), and runs to its end there; its future
 * settles with what FN returns.  A fiber whose first run never started
 * settles FUT_ESHUTDOWN without running, like a dropped fut_async task.
 * Ownership: EX, ARG and OPTS are borrowed (OPTS only during the call; EX
 * must stay alive until the fiber ends or EX's destroy); returns a new
 * reference.
 * Returns: never NULL; FUT_EINVAL (EX or FN NULL, stack_size out of
 *   range), FUT_ENOMEM (no memory for the fiber or its stack),
 *   FUT_ESHUTDOWN (EX refuses work) give a rejected future and FN never
 *   runs.
 * Threads: any.  On fut_inline() the fiber runs at once on the calling
 * thread until its first suspension, and resumes on the thread that
 * settles what it waits for. */
FUT_API fut_t *fut_fiber(fut_executor_t *ex, fut_task_fn fn, void *arg,
                         const fut_fiber_opts_t *opts);

/* True when the caller runs inside a fiber (on its stack), so fut_await
 * and fut_wait would suspend rather than block.  Threads: any. */
FUT_API bool fut_in_fiber(void);

/* Inside a fiber: hands the fiber back to its executor as a new task, so
 * that work queued before it runs first (on the loop and a custom FIFO
 * executor: everything queued; on a pool: whatever the worker or a thief
 * picks first), then returns.  Outside a fiber, or in a fiber being shut
 * down, returns at once.  Threads: any. */
FUT_API void fut_yield(void);

#ifdef __cplusplus
}
#endif
#endif
