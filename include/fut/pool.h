/* libfut — the work-stealing thread pool executor.  Include <fut.h>.
 * After fork(), a pool the parent created has no workers in the child and
 * refuses work there (<fut/executor.h>): make a new one in the child. */
#ifndef FUT_POOL_H
#define FUT_POOL_H

#include <ck_pr.h> /* the inline group path's load of a thief's flag */

#include "executor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Pool options; a zeroed struct (or NULL) gives the defaults.
 *  threads:        workers; 0 = online CPUs (pinned name).
 *  spin:           idle polling rounds before a worker parks; 0 = 1000.
 *  deque_capacity: per-worker deque slots, a power of two; 0 = 4096.
 *  name:           thread name prefix (top -H, gdb), copied; NULL =
 *                  "fut-pool"; threads are named "<prefix>-<index>". */
typedef struct fut_pool_opts {
    unsigned threads;
    unsigned spin;
    unsigned deque_capacity;
    const char *name;
} fut_pool_opts_t;

/* Starts a pool of worker threads; stop it with fut_executor_destroy.
 * Ownership: OPTS borrowed (NULL: defaults; NAME is copied); *OUT receives
 *   the pool's handle.
 * Returns: 0 and *OUT; FUT_EINVAL (OUT NULL, capacity not a power of two or
 *   above 2^30, more than 4096 threads); FUT_ENOMEM; or the error of a
 *   failed thread start (nothing is left running).  Threads: any. */
FUT_API int fut_pool_create(fut_executor_t **out, const fut_pool_opts_t *opts);

/* Fills OUT with the counters of worker WORKER (0 .. workers-1) of POOL:
 * tasks_run, tasks_submitted (tasks that entered its deque: pushed by its
 * own tasks or taken from the injection queue, so a task still waiting in
 * that queue is not counted yet), steals, steal_failures (steal attempts
 * that found nothing), parks, wakeups (sent by it), injection_batches;
 * workers is 1.  The totals (fut_executor_stats) also count wake-ups sent
 * by outside threads.  Values are read without stopping the workers: a
 * recent snapshot, not a consistent cut.
 * Ownership: POOL borrowed.  Returns: 0; FUT_EINVAL (NULL arguments, POOL
 *   not a pool, WORKER out of range); FUT_ESHUTDOWN once POOL's destroy
 *   began.  Threads: any. */
FUT_API int fut_pool_worker_stats(const fut_executor_t *pool, unsigned worker,
                                  fut_stats_t *out);

/* ---- task groups: the fork-join fast path --------------------------------
 *
 * For recursive CPU-bound code on a pool worker: spawn children whose
 * storage the caller provides, then wait for all of them while helping.
 * No allocation, no reference count, no future per task: a spawn is a few
 * plain stores into the worker's split deque (no locked instruction while
 * no thief asks for work; spawn and wait are inline, below); a child that
 * nobody stole is popped back and run by the waiting parent.  Results
 * travel through the caller's own memory (the ARG of each task).
 *
 *     fut_group_t g;
 *     fut_group_task_t t;
 *     fut_group_init(&g, pool);
 *     fut_group_spawn(&g, &t, child_fn, &child_args);
 *     ...do the other half here...
 *     fut_group_wait(&g);                 // child_args now holds the result
 *
 * The group, and every task spawned into it, must stay alive (typically on
 * the caller's stack) until fut_group_wait returns.  A group belongs to the
 * thread that initialised it: spawn and wait only there; wait for every
 * group before its frame ends (groups may interleave: init A, init B, wait
 * A, wait B is fine).  Off a worker of POOL (e.g. main()), children go to
 * the pool's injection queue and the wait sleeps in short naps instead of
 * helping. */

typedef void (*fut_group_fn)(void *arg);

/* One spawned child.  The caller only provides the storage and keeps it
 * alive until the group's wait returns; the fields are private (the inline
 * path at the end of this file uses them) and may change in any release. */
typedef struct fut_group_task {
    struct fut_group_task *next_; /* injection queue link; must be first */
    fut_group_fn fn_;
    void *arg_;
    struct fut_group *group_;
    uint32_t stolen_; /* set by a thief once it has taken the task */
} fut_group_task_t;

/* A fork-join scope.  Storage only, like fut_group_task_t: the fields are
 * private and may change in any release. */
typedef struct fut_group {
    void *pool_;           /* the pool's implementation */
    void *owner_;          /* the worker that owns it, or NULL */
    struct fut__gq *q_;    /* that worker's split deque, or NULL */
    uint32_t out_;         /* children that left the owner's private
                              slots (spilled or stolen): owner only */
    uint32_t done_local_;  /* of those, run by the owner thread */
    uint32_t done_remote_; /* of those, run elsewhere (atomic) */
    uint32_t base_;        /* the worker's split-deque head at init */
} fut_group_t;

/* Makes G an empty group whose children run on POOL (a pool made by
 * fut_pool_create), or, with POOL NULL, on the pool of the calling worker.
 * Children are not futures' tasks: inside one, fut_executor_current() tells
 * nothing about the pool (it may be NULL), so nested groups pass NULL or
 * the pool they were given.
 * Ownership: G is the caller's storage; POOL borrowed and must outlive the
 *   group.  Returns: 0; FUT_EINVAL (G NULL, POOL not a pool, or POOL NULL
 *   off a pool worker).  Threads: any; G then belongs to this thread. */
FUT_API int fut_group_init(fut_group_t *g, fut_executor_t *pool);

/* Schedules FN(ARG) as a child of G, using T as its storage.  FN runs
 * exactly once, on some worker of the pool (or on this thread while it
 * waits); it must not spawn into G itself (it may make its own groups).
 * Ownership: G, T and ARG borrowed; T and ARG must stay valid until
 * fut_group_wait(G) returns.  Threads: only G's thread.
 * Note: spawning into a pool that is being destroyed is a caller error. */
FUT_API void fut_group_spawn(fut_group_t *g, fut_group_task_t *t,
                             fut_group_fn fn, void *arg);

/* Returns once every child spawned into G so far has run; their writes are
 * visible to the caller.  On a worker it runs children (its own first,
 * then any other queued work) while it waits; elsewhere it naps.
 * Afterwards G is empty and may be reused.  Returns: 0.
 * Threads: only G's thread. */
FUT_API int fut_group_wait(fut_group_t *g);

/* ---- private: the inline fast path of init, spawn and wait ---------------
 * Not part of the API: everything from here to the end of the file (the
 * fut__ names, FUT__ macros and the layout of fut__gq_t) may change in any
 * release.  Programs call fut_group_init, fut_group_spawn and
 * fut_group_wait, which the macros at the end route here; it is inline
 * for speed (out of line, fib's group took 170 instructions per task
 * instead of 150: docs/BENCHMARKS.md).
 *
 * On the owner's worker, while the deque has room, nothing was stolen and
 * no thief asks for work, a spawn is six plain stores (four into the task,
 * the slot, the head) and a pop-back a plain load and a call: what Lace's
 * macros do.  A group counts only the children that leave the private
 * slots (out_), so this path keeps no per-child count.  Everything else
 * (thieves waiting, stolen children, off-worker groups) goes to the
 * out-of-line functions.  TSan builds take the functions (the pool's
 * atomics are invisible to TSan and annotated there). */

/* The owner's half of a worker's split deque of group children
 * (executors/pool/split.h), used on the owner's thread only.  One cache
 * line, written by the owner only. */
#define FUT__GQ_ALLSTOLEN 0xFFFFFFFFu
typedef struct fut__gq {
    uint32_t head;    /* next free slot */
    uint32_t o_split; /* slots at or above it (and below head) are private;
                         FUT__GQ_ALLSTOLEN: every slot below head was stolen */
    uint32_t cap;     /* slots */
    struct fut_group_task **slots;
    const uint32_t *movesplit; /* set by thieves that want work */
    uint64_t run_local;        /* children run by the inline wait */
    void *pool;                /* the pool's implementation */
    void *worker;              /* the worker that owns this deque */
    const void *handle;        /* the pool's fut_executor_t */
} fut__gq_t;

/* The calling thread's deque when it is a pool worker, else NULL.  Set by
 * the pool (executors/pool/pool.c); read by the inline fut_group_init. */
#ifdef __cplusplus
FUT_API extern thread_local fut__gq_t *fut__group_self
    __attribute__((tls_model("initial-exec")));
#else
FUT_API extern _Thread_local fut__gq_t *fut__group_self
    __attribute__((tls_model("initial-exec")));
#endif

/* The out-of-line halves of spawn and wait (executors/pool/group.c):
 * exported for the inline code below. */
FUT_API void fut__group_spawn_slow(fut_group_t *g, fut_group_task_t *t);
FUT_API int fut__group_wait_slow(fut_group_t *g);

#define FUT__GROUP_INLINE (!FUT__TSAN) /* FUT__TSAN: <fut/common.h> */

/* Plain slots while the deque is all private; an unfenced load of
 * movesplit (ck_pr, the pool's vocabulary: thieves set it with
 * ck_pr_store_32 in executors/pool/split.h): a thief's late request is seen
 * at the next spawn or pop. */
static inline int fut__gq_private(const fut__gq_t *q, uint32_t h)
{
    return h >= q->o_split && !ck_pr_load_32(q->movesplit);
}

/* On a worker, for its own pool: fill G in from the worker's deque. */
static inline int fut__group_init_inline(fut_group_t *g, fut_executor_t *pool)
{
    fut__gq_t *q = FUT__GROUP_INLINE ? fut__group_self : NULL;
    if (q != NULL && g != NULL &&
        (pool == NULL || (const void *)pool == q->handle)) {
        g->pool_ = q->pool;
        g->owner_ = q->worker;
        g->q_ = q;
        g->out_ = 0;
        g->done_local_ = 0;
        g->done_remote_ = 0;
        g->base_ = q->head;
        return 0;
    }
    return (fut_group_init)(g, pool);
}

static inline void fut__group_spawn_inline(fut_group_t *g, fut_group_task_t *t,
                                           fut_group_fn fn, void *arg)
{
    fut__gq_t *q = g->q_;

    t->fn_ = fn;
    t->arg_ = arg;
    t->group_ = g;
    if (FUT__GROUP_INLINE && q != NULL) {
        uint32_t h = q->head;

        if (h < q->cap && h >= g->base_ && fut__gq_private(q, h)) {
            t->stolen_ = 0;
            q->slots[h] = t;
            q->head = h + 1;
            return;
        }
    }
    fut__group_spawn_slow(g, t);
}

static inline int fut__group_wait_inline(fut_group_t *g)
{
    fut__gq_t *q = g->q_;

    if (FUT__GROUP_INLINE && q != NULL) {
        uint32_t h;

        /* Private children, newest first (ours, or those of a group made
         * after ours on this thread), run right here. */
        while ((h = q->head) > g->base_ && fut__gq_private(q, h - 1)) {
            fut_group_task_t *t = q->slots[h - 1];

            q->head = h - 1;
            t->fn_(t->arg_);
            q->run_local++;
        }
        /* Every child ran here and none left the private slots: done
         * (nothing ran elsewhere, so nothing to synchronise with). */
        if (q->head <= g->base_ && g->out_ == 0)
            return 0;
    }
    return fut__group_wait_slow(g);
}

#define fut_group_init(g, pool) fut__group_init_inline(g, pool)
#define fut_group_spawn(g, t, fn, arg) fut__group_spawn_inline(g, t, fn, arg)
#define fut_group_wait(g) fut__group_wait_inline(g)

#ifdef __cplusplus
}
#endif
#endif
