/* libfut — the pool's private header, shared by executors/pool/pool.c (the
 * scheduler; its opening essay states the protocol) and executors/pool/group.c
 * (task groups).  Not installed. */
#ifndef FUT_POOL_IMPL_H
#define FUT_POOL_IMPL_H

#include <ck_ec.h>
#include <ck_pr.h>
#include <ck_stack.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "fut.h"

#include "deque.h"
#include "split.h"

/* An entry of a Chase-Lev deque with bit 0 set is a fut_group_task_t *. */
#define GROUP_TAG ((uintptr_t)1)

struct counters {
    uint64_t run, submitted, steals, steal_failures, parks, wakeups, batches;
};

struct worker {
    fut__deque_t dq;    /* first: cache-line aligned */
    fut__split_t split; /* group children spawned here (split.h) */
    struct pool *pool;
    ck_stack_entry_t *chain;  /* rest of the last injection batch (owner) */
    ck_stack_entry_t *gchain; /* same for group children (tagged) */
    uint64_t rng;
    unsigned index;
    pthread_t thread;
    void **slots;
    fut_group_task_t **gslots; /* the split deque's slots */
    struct counters c;         /* written by this worker only */
} CK_CC_ALIGN(FUT__CACHELINE);

struct pool {
    /* Pushed to by outside threads (CAS), popped by workers (xchg). */
    ck_stack_t inject CK_CC_ALIGN(FUT__CACHELINE);
    ck_stack_t ginject; /* group children spawned off-worker or overflowed */
    char pad0_[FUT__CACHELINE - 2 * sizeof(ck_stack_t)];
    /* Written when workers go idle or wake; read (plain) by every push. */
    unsigned nspinning;
    unsigned nsleepers;
    unsigned wake_pending; /* a wake-up is on its way (see fut__pool_wake()) */
    char pad1_[FUT__CACHELINE - 3 * sizeof(unsigned)];
    struct ck_ec32 ec;
    char pad2_[FUT__CACHELINE - sizeof(struct ck_ec32)];
    /* Wake-ups sent by threads that are not workers (rare: only when a
     * worker sleeps and none spins). */
    uint64_t ext_wakeups;
    char pad3_[FUT__CACHELINE - sizeof(uint64_t)];
    /* Read-mostly. */
    int stopping;
    bool membarrier;
    unsigned nworkers;
    unsigned started; /* threads running (joined by destroy) */
    unsigned spin;
    size_t capacity;
    struct worker *workers;
    void *workers_mem;
    void *mem;              /* this struct's allocation (unaligned) */
    fut_executor_t *handle; /* our executor handle (group_init's check) */
    char name[16];
};

/* The worker this thread is, or NULL (set by pool.c's worker_main).
 * Hidden, like the static it replaces: accesses compile to the same code. */
extern _Thread_local struct worker *fut__pool_me
    __attribute__((tls_model("initial-exec"), visibility("hidden")));
extern const fut_executor_ops_t fut__pool_ops;

/* pool.c: wakes sleepers (see the protocol there).  Any thread. */
void fut__pool_wake(struct pool *p, uint64_t *counter);
/* pool.c: one look everywhere for work, cheapest first.  Owner of W only. */
void *fut__pool_find_work(struct worker *w);

static inline void count(uint64_t *c)
{
    /* Single writer; the ck_pr store keeps readers from seeing a torn
     * value.  Pairs with the loads in add_counters (pool.c). */
    ck_pr_store_64(c, *c + 1);
}

/* After a publication: wake a sleeper only if nobody is spinning.  Plain
 * loads: the sleeping side orders itself (see the protocol in pool.c). */
static inline void maybe_wake(struct pool *p, uint64_t *counter)
{
    if (ck_pr_load_uint(&p->nspinning) == 0 &&
        ck_pr_load_uint(&p->nsleepers) != 0)
        fut__pool_wake(p, counter);
}

/* ck_stack_push_upmc.  Under TSan, the same loop with a release before
 * each CAS (after the last write of E->next), since TSan cannot see the
 * CAS.  Pairs with the acquire after the batch pop in take_stack
 * (pool.c). */
static inline void stack_push(ck_stack_t *st, ck_stack_entry_t *e)
{
#if FUT__TSAN
    ck_stack_entry_t *h = ck_pr_load_ptr(&st->head);

    do {
        e->next = h;
        ck_pr_fence_store();
        FUT__DQ_RELEASE(st);
    } while (!ck_pr_cas_ptr_value(&st->head, h, e, &h));
#else
    ck_stack_push_upmc(st, e);
#endif
}

/* Runs T, a child that left its owner's private slots (run_entry: a
 * spilled child from a deque, or one stolen from a split deque). */
static inline void group_run(struct worker *w, fut_group_task_t *t)
{
    fut_group_t *g = t->group_;

    t->fn_(t->arg_);
    if (g->owner_ == (void *)w) {
        g->done_local_++;
    } else {
        FUT__DQ_RELEASE(g); /* pairs with the acquire in group_done (group.c) */
        ck_pr_inc_32(&g->done_remote_);
    }
}

static inline void run_entry(struct worker *w, void *e)
{
    if (((uintptr_t)e & GROUP_TAG) != 0)
        group_run(w, (fut_group_task_t *)((uintptr_t)e - GROUP_TAG));
    else
        fut_task_run((fut_task_t *)e);
    count(&w->c.run);
}

#endif
