/* libfut — futures, promises, continuations, combinators, waiting,
 * cancellation and time.  Include <fut.h> rather than this file.
 *
 * Ownership in one place (every declaration below repeats its own part):
 *  - a function returning fut_t * returns a new reference, never NULL;
 *  - chaining functions and combinators CONSUME the futures they are given;
 *  - fut_wait, fut_await, fut_state, fut_error, fut_value*, fut_cancel and
 *    fut_input BORROW;
 *  - releasing a future never cancels its work; fut_cancel does.
 *
 * Cancellation reaches the work.  Cancelling a pending future (fut_cancel,
 * a timeout, a scope) also cancels each source it waits on that nothing
 * else observes, and so on down to the root: a queued task never runs, a
 * promise's cancel hook fires (the loop deregisters an fd wait), a timer is
 * removed, a fiber's wait returns FUT_ECANCELED.  "Waits on": a
 * then/catch/finally's source, then what its callback returned
 * (fut_adopt/fut_forward); what an async task returned; a timeout's input;
 * a combinator's inputs; a scope's members.  "Nothing else observes S": S
 * is pending and nobody but the cancelled future holds a reference to S or
 * a continuation on it (an application handle, a retained copy, another
 * then, a waiter, another combinator all count).  It is decided when the
 * cancel happens and costs nothing before.  A source someone else holds is
 * left alone, and fut_release never cancels: fut_release(fut_then(...)) is
 * still fire-and-forget. */
#ifndef FUT_FUTURE_H
#define FUT_FUTURE_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fut fut_t;
typedef struct fut_promise fut_promise_t;
typedef struct fut_executor fut_executor_t;

typedef enum fut_state {
    FUT_PENDING = 0,
    FUT_FULFILLED = 1,
    FUT_REJECTED = 2,
    FUT_CANCELLED = 3
} fut_state_t;

/* What a task or callback returns.  Build it with the functions below; its
 * fields are private.  A result owns what it carries (an owned value, an
 * adopted future) until the library takes it. */
typedef struct fut_result {
    int kind_;
    int err_;
    union {
        void *ptr;
        int64_t i64;
        fut_t *fut;
    } u_;
    void (*dtor_)(void *);
} fut_result_t;

/* Fulfil with VALUE, borrowed: the future does not free it. */
FUT_API fut_result_t fut_ok(void *value);
/* Fulfil with VALUE, owned: DTOR(VALUE) runs exactly once, when the last
 * reference to the future goes, or at once if the result is discarded (a
 * late promise settle, a cancelled task).  DTOR NULL means fut_ok. */
FUT_API fut_result_t fut_ok_owned(void *value, void (*dtor)(void *));
/* Fulfil with an int64 stored inline (no allocation). */
FUT_API fut_result_t fut_ok_i64(int64_t v);
/* Reject with ERR, a negative code; 0 or a positive ERR becomes FUT_EINVAL. */
FUT_API fut_result_t fut_fail(int err);
/* Settle exactly like SRC (borrowed; it is retained until the new future
 * goes).  SRC may still be pending: the new future then follows it. */
FUT_API fut_result_t fut_forward(fut_t *src);
/* Settle like OTHER (consumed), when it settles: flattens a future returned
 * from a callback.  OTHER NULL gives FUT_EINVAL. */
FUT_API fut_result_t fut_adopt(fut_t *other);

/* The constructors above are also provided inline: building a result is on
 * every task's hot path.  The names still denote the exported functions when
 * not called (&fut_ok_i64 works). */
enum {
    FUT__RK_OK,
    FUT__RK_OWNED,
    FUT__RK_I64,
    FUT__RK_FAIL,
    FUT__RK_FORWARD,
    FUT__RK_ADOPT
};
static inline fut_result_t fut__result(int kind, int err, void *p, int64_t v,
                                       fut_t *f, void (*dtor)(void *))
{
    fut_result_t r;
    r.kind_ = kind == FUT__RK_OWNED && !dtor ? FUT__RK_OK : kind;
    r.err_ = kind == FUT__RK_FAIL && err >= 0 ? -EINVAL : err;
    if (kind == FUT__RK_I64)
        r.u_.i64 = v;
    else if (kind == FUT__RK_FORWARD || kind == FUT__RK_ADOPT)
        r.u_.fut = f;
    else
        r.u_.ptr = p;
    r.dtor_ = dtor;
    return r;
}
#define fut_ok(v) fut__result(FUT__RK_OK, 0, (v), 0, NULL, NULL)
#define fut_ok_owned(v, d) fut__result(FUT__RK_OWNED, 0, (v), 0, NULL, (d))
#define fut_ok_i64(v) fut__result(FUT__RK_I64, 0, NULL, (v), NULL, NULL)
#define fut_fail(e) fut__result(FUT__RK_FAIL, (e), NULL, 0, NULL, NULL)
#define fut_forward(s) fut__result(FUT__RK_FORWARD, 0, NULL, 0, (s), NULL)
#define fut_adopt(o) fut__result(FUT__RK_ADOPT, 0, NULL, 0, (o), NULL)

/* A task: runs once on its executor; ARG is the caller's. */
typedef fut_result_t (*fut_task_fn)(void *arg);
/* A continuation: SRC is settled and borrowed for the call. */
typedef fut_result_t (*fut_then_fn)(void *arg, fut_t *src);

/* ---- making futures ---------------------------------------------------- */

/* Runs FN(ARG) once on EX; the returned future settles with its result.
 * Ownership: EX and ARG borrowed; returns a new reference.  Releasing it does
 * not stop the task (fire and forget); fut_cancel before it starts does.
 * Returns: never NULL; FUT_EINVAL (EX or FN NULL), FUT_ENOMEM or
 *   FUT_ESHUTDOWN (EX shut down) as a rejected future, FN never called.
 * Threads: any. */
FUT_API fut_t *fut_async(fut_executor_t *ex, fut_task_fn fn, void *arg);

/* Returns a future already settled with R (consumed).  fut_adopt and
 * fut_forward results give a future that follows their source.
 * Allocation of the future itself may fail: then FUT_ENOMEM, and R's value
 * is disposed.  Threads: any. */
FUT_API fut_t *fut_ready(fut_result_t r);

/* Makes a pending future and the promise that settles it.
 * Ownership: returns a new reference to the future; *PROMISE receives the one
 *   handle that settles it, consumed by fut_promise_settle or
 *   fut_promise_drop (exactly one of them, exactly once).
 * Returns: never NULL; PROMISE NULL gives FUT_EINVAL, no memory FUT_ENOMEM
 *   (rejected future, *PROMISE set to NULL).  Threads: any. */
FUT_API fut_t *fut_promise_new(fut_promise_t **promise);

/* Settles the promise's future with R and consumes P and R.
 * Returns: 0; FUT_EALREADY if the future was settled first (cancelled or
 *   timed out): R is disposed at once (its destructor runs); FUT_EINVAL if P
 *   is NULL (R is disposed).
 * Threads: any, concurrently with waiters, attaches and cancels. */
FUT_API int fut_promise_settle(fut_promise_t *p, fut_result_t r);

/* Consumes P without a result: a pending future is rejected FUT_EBROKEN, so
 * no waiter hangs on a forgotten promise.  NULL is a no-op.  Threads: any. */
FUT_API void fut_promise_drop(fut_promise_t *p);

/* ---- chaining (consume F) ---------------------------------------------- */

/* Runs FN(ARG, F) on EX once F fulfils; the new future settles with FN's
 * result.  A rejected or cancelled F passes through and FN is not called.
 * Ownership: consumes F; EX and ARG borrowed; returns a new reference.
 * Returns: never NULL.  F, EX or FN NULL give FUT_EINVAL (F is released),
 *   no memory FUT_ENOMEM; FN is then never called.  If EX has shut down when
 *   FN is due, the new future rejects with FUT_ESHUTDOWN.
 * Callback: at most once, on EX.  Threads: any; safe while F settles. */
FUT_API fut_t *fut_then(fut_t *f, fut_executor_t *ex, fut_then_fn fn,
                        void *arg);
/* As fut_then, but FN runs only when F is rejected or cancelled (it may
 * recover with fut_ok*); a fulfilled F passes through. */
FUT_API fut_t *fut_catch(fut_t *f, fut_executor_t *ex, fut_then_fn fn,
                         void *arg);
/* As fut_then, but FN runs on every outcome of F: the place for clean-up.
 * FN runs exactly once whatever ends the chain: F settling; the returned
 * future being cancelled or timing out first (FN still runs, on EX, once F
 * settles, which the cancel hastens by cancelling F if nothing else
 * observes it; FN's result is then discarded, and fut_cancel_requested()
 * is true inside); EX shut down when FN is due (FN runs at once on the
 * thread that settled F) or destroyed with FN queued and not run (FN runs
 * on the thread that destroys EX).  Without an executor to run on, FN sees
 * fut_executor_current() == NULL.
 * FN's result replaces F's outcome: return fut_forward(src) to keep it. */
FUT_API fut_t *fut_finally(fut_t *f, fut_executor_t *ex, fut_then_fn fn,
                           void *arg);

/* ---- combinators (consume every input) --------------------------------- */

/* fut_all: fulfils (no value) when every input fulfils; else settles like
 *   the first input to reject or cancel.  n = 0: fulfilled at once.
 * fut_all_settled: fulfils (no value) once every input settled. n = 0: at once.
 * fut_any: settles like the first input to fulfil; if none does, like the
 *   last to settle.  n = 0: FUT_EINVAL.
 * fut_race: settles like the first input to settle.  n = 0: FUT_EINVAL.
 * any/race carry the winner's value (borrowed from it; the combined future
 * keeps its inputs alive); all/all_settled carry none: read inputs with
 * fut_input.
 * Cancellation: cancelling the combined future cancels every input that
 * nothing else observes (see the top of this file).  When any or race
 * settle, the losers nothing else observes are cancelled (a hedged request
 * stops its other attempts); when all rejects, the inputs still pending
 * that nothing else observes are cancelled.  Retain an input to keep it
 * running.  Ownership: every non-NULL FS[i] is consumed, also on error;
 * the array itself is borrowed.  Returns: never NULL; FS NULL with n > 0 or
 * a NULL element gives FUT_EINVAL, no memory FUT_ENOMEM; n >= 2^32 - 1
 * (more inputs than any array holds) gives FUT_EINVAL without reading FS,
 * and consumes nothing.  Threads: any. */
FUT_API fut_t *fut_all(fut_t *const *fs, size_t n);
FUT_API fut_t *fut_all_settled(fut_t *const *fs, size_t n);
FUT_API fut_t *fut_any(fut_t *const *fs, size_t n);
FUT_API fut_t *fut_race(fut_t *const *fs, size_t n);

/* Returns the I-th input of a combined future, borrowed (valid while
 * COMBINED is), or NULL if COMBINED is not a combinator or I >= n.
 * Threads: any. */
FUT_API fut_t *fut_input(const fut_t *combined, size_t i);

/* ---- inspecting and waiting (borrow F) --------------------------------- */

/* State of F; FUT_PENDING for NULL.  Threads: any. */
FUT_API fut_state_t fut_state(const fut_t *f);
/* 0 if F is fulfilled or pending, its negative error if rejected or
 * cancelled; FUT_EINVAL for NULL.  Threads: any. */
FUT_API int fut_error(const fut_t *f);
/* F's value if fulfilled with a pointer, else NULL.  Borrowed: valid while
 * F is.  Threads: any. */
FUT_API void *fut_value(const fut_t *f);
/* F's value if fulfilled with fut_ok_i64, else 0.  Threads: any. */
FUT_API int64_t fut_value_i64(const fut_t *f);

/* Blocks until F settles or TIMEOUT_NS passes (< 0: forever, 0: poll).
 * On a pool worker (or inside an inline task) it helps: runs other tasks of
 * that executor while it waits.  Inside a fiber (<fut/fiber.h>) it
 * suspends the fiber instead, on any executor, the loop included (a
 * settled F never switches).
 * Returns: 0 once F is settled (read the outcome with fut_state/fut_error);
 *   FUT_ETIMEDOUT; FUT_EDEADLK at once if F is pending and waiting could
 *   never end (on the loop thread outside a fiber; F is the calling task's
 *   or fiber's own future); FUT_EINVAL for NULL.  Inside a fiber also
 *   FUT_ECANCELED (the fiber's future was cancelled: this and every later
 *   wait), FUT_ESHUTDOWN (its executor is being destroyed) and FUT_ENOMEM
 *   (no memory to suspend: nothing waited).
 *   Threads: any. */
FUT_API int fut_wait(fut_t *f, int64_t timeout_ns);

/* Waits forever and returns fut_error(F) (or an error of the wait:
 * FUT_EDEADLK, FUT_EINVAL; in a fiber FUT_ECANCELED, FUT_ESHUTDOWN,
 * FUT_ENOMEM); if VALUE is not NULL it receives fut_value(F) (only when
 * the wait ended with F settled): a pointer value only.  A future
 * fulfilled with fut_ok_i64 gives NULL there: read its value with
 * fut_value_i64(F) after the await. */
FUT_API int fut_await(fut_t *f, void **value);

/* ---- references -------------------------------------------------------- */

/* Adds a reference; returns F.  Threads: any. */
FUT_API fut_t *fut_retain(fut_t *f);
/* Drops a reference; the last one frees F and runs its value's destructor.
 * Never cancels F's work.  NULL is a no-op.  Threads: any. */
FUT_API void fut_release(fut_t *f);

/* ---- cancellation and time --------------------------------------------- */

/* Settles a pending F as FUT_CANCELLED (error FUT_ECANCELED): a task not yet
 * started never runs; a running one can poll fut_cancel_requested and its
 * result is discarded (a future that result adopted is cancelled if nothing
 * else observes it); dependents see the cancellation.  The sources F waits
 * on that nothing else observes are cancelled too, down to the root (see
 * the top of this file); a scope's close future is the exception: it
 * settles once the members it cancels have (<fut/scope.h>).
 * Returns: 0 if this call cancelled F, FUT_EALREADY if F was settled (by
 *   anyone, including a racing timeout), FUT_EINVAL for NULL.
 * Threads: any. */
FUT_API int fut_cancel(fut_t *f);

/* True inside a running task or callback whose own future was cancelled or
 * timed out; false elsewhere.  Threads: any (answers for the calling one). */
FUT_API bool fut_cancel_requested(void);

/* A future that fulfils (no value) once NS nanoseconds have passed, never
 * earlier.  Where its timer lives: on EX if EX keeps timers of its own (a
 * loop: it fires on the loop's thread, inside fut_loop_run); for any other
 * EX (the pool, fut_inline(), an executor without timer ops) on libfut's
 * timer thread, which starts with the first such timer (see
 * fut_timer_service_stop); it then settles on that thread, and
 * continuations run where they were placed.  Cancelling it removes the
 * timer at once.
 * Returns: never NULL; FUT_EINVAL (EX NULL), FUT_ENOMEM, FUT_ESHUTDOWN (at
 * once when EX's destroy began; a pending delay whose executor keeps it,
 * the loop, when the destroy drops it).  Threads: any. */
FUT_API fut_t *fut_delay(fut_executor_t *ex, uint64_t ns);

/* Settles like F (consumed) if F settles within NS; otherwise the returned
 * future is cancelled with error FUT_ETIMEDOUT and F is cancelled.  A timeout
 * racing fut_cancel of the result has exactly one winner: fut_cancel returns
 * 0 only if the outcome is FUT_ECANCELED.
 * Where its timer lives: on the executor whose task or callback calls
 * fut_timeout, if that executor keeps timers (inside a loop callback: the
 * loop); everywhere else (main(), a pool task, an inline task outside a
 * loop) on libfut's timer thread, as fut_delay's.  To choose, use
 * fut_timeout_on.
 * Returns: never NULL; FUT_EINVAL (F NULL), FUT_ENOMEM.  Threads: any. */
FUT_API fut_t *fut_timeout(fut_t *f, uint64_t ns);

/* As fut_timeout, but the timer lives where fut_delay(EX, NS)'s would: on
 * EX if it keeps timers (a loop: then a program whose only executor is a
 * loop starts no library thread, wherever it makes its timeouts), else on
 * libfut's timer thread.  The timeout fires (F is cancelled) on that
 * thread; a loop fires it only while fut_loop_run runs.
 * Ownership: consumes F (also on error); EX borrowed.
 * Returns: never NULL; FUT_EINVAL (F or EX NULL), FUT_ESHUTDOWN (EX's
 *   destroy began; EX is the parent's in a fork() child), FUT_ENOMEM.
 * Threads: any. */
FUT_API fut_t *fut_timeout_on(fut_t *f, fut_executor_t *ex, uint64_t ns);

/* Stops libfut's timer thread (the one fut_delay and fut_timeout use when
 * no executor of theirs keeps timers) and joins it, if it runs.  Timers
 * still armed on it are dropped as an executor's destroy drops them: a
 * pending fut_delay rejects FUT_ESHUTDOWN, a pending fut_timeout rejects
 * FUT_ESHUTDOWN and leaves its input alone; their callbacks run on the
 * calling thread.  The next timer that needs the thread starts it again.
 * At exit the library joins the thread by itself (without firing or
 * dropping anything), so leak checkers see nothing of it; call this to
 * stop it earlier, e.g. before checking for threads or memory.
 * Returns: 0 (also when it did not run); FUT_EDEADLK when called on the
 *   timer thread itself (from a callback it runs).
 * Threads: any other; concurrent calls wait for one another. */
FUT_API int fut_timer_service_stop(void);

#ifdef __cplusplus
}
#endif
#endif
