/* libfut — the work-stealing thread pool executor.  Include <fut.h>. */
#ifndef FUT_POOL_H
#define FUT_POOL_H

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
 *   not a pool, WORKER out of range).  Threads: any, while POOL lives. */
FUT_API int fut_pool_worker_stats(const fut_executor_t *pool, unsigned worker,
                                  fut_stats_t *out);

/* ---- task groups: the fork-join fast path --------------------------------
 *
 * For recursive CPU-bound code on a pool worker: spawn children whose
 * storage the caller provides, then wait for all of them while helping.
 * No allocation, no reference count, no future per task: a spawn is a few
 * plain stores and a deque push; a child that nobody stole is popped back
 * and run inline by the waiting parent.  Results travel through the
 * caller's own memory (the ARG of each task).
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
 * thread that initialised it: spawn and wait only there.  Off a worker of
 * POOL (e.g. main()), children go to the pool's injection queue and the wait
 * sleeps in short naps instead of helping. */

typedef void (*fut_group_fn)(void *arg);

/* One spawned child.  Fields are private; the caller only provides the
 * storage and keeps it alive until the group's wait returns. */
typedef struct fut_group_task {
    struct fut_group_task *next_; /* injection queue link; must be first */
    fut_group_fn fn_;
    void *arg_;
    struct fut_group *group_;
    uint32_t stolen_; /* set by a thief once it has taken the task */
} fut_group_task_t;

/* A fork-join scope.  Fields are private. */
typedef struct fut_group {
    void *pool_;           /* the pool's implementation */
    void *owner_;          /* the worker that owns it, or NULL */
    uint32_t spawned_;     /* written by the owner thread only */
    uint32_t done_local_;  /* children run by the owner thread */
    uint32_t done_remote_; /* children run elsewhere (atomic) */
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

#ifdef __cplusplus
}
#endif
#endif
