/* libfut — the executor kit (<fut/executor_kit.h>): the core's mechanisms
 * that an executor uses to run libfut work, behind public names.  The mark
 * is the thread's current executor (fut__tls.cur_ex), the one
 * fut_executor_current() reports; executor handles need no counting (they
 * are never freed: lib/executor.c); promise cancel hooks and claimed
 * settles are lib/promise.c's; a watch is a continuation node
 * (fut_cont_t is fut_kit_watch_t) attached as the core attaches its own.
 * The futex calls are here, once, for fut_wait
 * (lib/wait.c) and the pool's parking (executors/pool/pool.c). */
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

void fut_kit_run_begin(fut_kit_run_t *run, fut_executor_t *ex)
{
    struct fut_tls *t = &fut__tls;
    run->ex_ = ex;
    run->prev_ = t->cur_ex;
    t->cur_ex = ex;
}

void fut_kit_run_end(fut_kit_run_t *run)
{
    fut__tls.cur_ex = run->prev_;
}

int fut_promise_on_cancel(fut_promise_t *p, fut_executor_t *ex, fut_then_fn fn,
                          void *arg)
{
    return fut__promise_on_cancel(p, ex, fn, arg);
}

void fut_kit_watch(fut_t *f, fut_kit_watch_t *w,
                   void (*fn)(fut_kit_watch_t *w, fut_t *src))
{
    w->fire = fn;
    fut__attach(f, w);
}

void **fut_kit_io_slot(fut_executor_t *ex)
{
    /* Static executors (inline, the timer service) have no fd_ready. */
    return ex && !ex->is_static && ex->has_fd_ready ? &ex->io_slot : NULL;
}

void fut_kit_park(const uint32_t *word, uint32_t expected, uint64_t deadline_ns)
{
    struct timespec ts, *tp = NULL;
    if (!word)
        return;
    if (deadline_ns != UINT64_MAX) {
        ts.tv_sec = (time_t)(deadline_ns / 1000000000u);
        ts.tv_nsec = (long)(deadline_ns % 1000000000u);
        tp = &ts;
    }
    /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline,
     * fut_now_ns()'s clock.  EINTR, EAGAIN (the word changed) and ETIMEDOUT
     * all mean "look again".
     * The partner is fut_kit_wake's FUTEX_WAKE on the same word: the
     * kernel queues this thread and only then compares WORD with EXPECTED,
     * with full barriers on both sides (the futex "waiters" ordering), so
     * a waker that changed WORD before its FUTEX_WAKE either finds this
     * thread queued and wakes it or has its change seen by the compare.
     * The word's own accesses are the callers' (lib/wait.c: a release
     * store of signaled, an acquire load after the park; the pool's ck_ec
     * words): the system call orders them against the kernel's. */
    syscall(SYS_futex, word, FUTEX_WAIT_BITSET_PRIVATE, expected, tp, NULL,
            FUTEX_BITSET_MATCH_ANY);
}

int fut_kit_wake(const uint32_t *word, int n)
{
    if (!word || n <= 0)
        return 0;
    /* The partner is fut_kit_park's FUTEX_WAIT (see there): the caller's
     * change of the word precedes this call in program order, and the
     * system call is a full barrier for it. */
    long woken = syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
    return woken < 0 ? 0 : (int)woken;
}
