/* libfut — fork(): what a child process inherits, and what it may use.
 *
 * fork() copies the calling thread only.  Every other thread of the parent
 * (pool workers, a loop's runner, the timer thread) does not exist in the
 * child, but the memory that describes them does, and so do the locks they
 * may have held at that instant.  The rules (the headers repeat them):
 *
 *  - Fresh executors, timers and futures made in the child work as in any
 *    process: the library's global state (the timer service, the slab
 *    homes, the executor registry) is reset in the child.
 *  - Executors the parent created are dead in the child: submits, timers
 *    and their own entry points (fut_loop_run, fut_fd_ready,
 *    fut_pool_worker_stats) give FUT_ESHUTDOWN, as on a destroyed handle,
 *    and fut_executor_destroy releases their memory without joining or
 *    waking threads that are not there (ops->destroy_forked), without
 *    touching kernel objects shared with the parent (a loop's epoll set).
 *  - Work the parent had queued or armed (tasks, timers, fd waits) is the
 *    parent's: in the child those futures stay pending.
 *
 * HOW: pthread_atfork handlers, registered once when the library is loaded
 * (a constructor: registering lazily could deadlock against a fork that
 * holds glibc's atfork lock while our prepare handler waits for a lock the
 * registering thread holds).  BEFORE takes the three global locks (the
 * registry's, the timer service's, the slab homes'), in that order, so the
 * child's copies of what they guard are consistent; the parent lets go in
 * the reverse order; the child re-initialises them (their holder may be a
 * thread that the child does not have) and resets what they guard.  The
 * alternative, a pid check on every use, would put a getpid() (a system
 * call since glibc 2.25) on every submit and still leave a lock held by a
 * vanished thread locked.  Only fork() runs the handlers: a child made with
 * vfork(), clone() or _Fork() must exec (or _exit) without using libfut.
 *
 * The registry lists every executor made by fut_executor_create and not
 * yet destroyed; the child marks each closed (the core's gate refuses
 * work: executor.c), gone (fut_executor_impl answers NULL) and forked, and
 * empties the list. */
#include <pthread.h>

#include "guard.h"

static pthread_mutex_t g_reg_mu = PTHREAD_MUTEX_INITIALIZER;
static fut_executor_t *g_reg; /* live executors, under g_reg_mu */

void fut__ex_register(fut_executor_t *ex)
{
    pthread_mutex_lock(&g_reg_mu);
    ex->reg_prev = NULL;
    ex->reg_next = g_reg;
    if (g_reg)
        g_reg->reg_prev = ex;
    g_reg = ex;
    pthread_mutex_unlock(&g_reg_mu);
}

void fut__ex_unregister(fut_executor_t *ex)
{
    pthread_mutex_lock(&g_reg_mu);
    if (ex->reg_prev)
        ex->reg_prev->reg_next = ex->reg_next;
    else if (g_reg == ex)
        g_reg = ex->reg_next;
    if (ex->reg_next)
        ex->reg_next->reg_prev = ex->reg_prev;
    ex->reg_prev = ex->reg_next = NULL;
    pthread_mutex_unlock(&g_reg_mu);
}

/* In the child: every registered executor is the parent's. */
static void executors_forked(void)
{
    for (fut_executor_t *ex = g_reg; ex; ex = ex->reg_next) {
        /* Relaxed: the child has one thread. */
        atomic_store_explicit(&ex->closed, 1, memory_order_relaxed);
        atomic_store_explicit(&ex->gone, 1, memory_order_relaxed);
        atomic_store_explicit(&ex->inflight, 0, memory_order_relaxed);
        atomic_store_explicit(&ex->forked, 1, memory_order_relaxed);
    }
    g_reg = NULL;
    pthread_mutex_init(&g_reg_mu, NULL);
}

int fut__ex_destroy_forked(fut_executor_t *ex)
{
    uint32_t one = 1;
    /* Relaxed: only a second destroy of the same handle races this. */
    if (!atomic_compare_exchange_strong_explicit(
            &ex->forked, &one, 2, memory_order_relaxed, memory_order_relaxed))
        return FUT_EALREADY;
    if (ex->ops->destroy_forked)
        ex->ops->destroy_forked(ex->impl);
    /* The handle struct itself stays, as every handle does (executor.c). */
    return 0;
}

static void fork_before(void)
{
    pthread_mutex_lock(&g_reg_mu);
    fut__timer_fork(FUT_FORK_BEFORE);
    fut__alloc_fork(FUT_FORK_BEFORE);
}

static void fork_parent(void)
{
    fut__alloc_fork(FUT_FORK_PARENT);
    fut__timer_fork(FUT_FORK_PARENT);
    pthread_mutex_unlock(&g_reg_mu);
}

static void fork_child(void)
{
    fut__alloc_fork(FUT_FORK_CHILD);
    fut__timer_fork(FUT_FORK_CHILD);
    executors_forked();
    fut__guard_fork_child();
}

__attribute__((constructor)) static void fork_init(void)
{
    /* Fails only without memory at load time; fork safety is then lost
     * (nothing else is). */
    (void)pthread_atfork(fork_before, fork_parent, fork_child);
}
