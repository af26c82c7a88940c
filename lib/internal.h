/* libfut — the core's internal definitions.  Only lib/, lib/inline.c
 * and tests that must look inside include this; executors use the public
 * interface in <fut/executor.h>.
 *
 * A future is one 128-byte block (two cache lines) from a per-thread free
 * list: its state word, value, reference count, the task it runs, the node it
 * hangs on its source's continuation list, and the part specific to its kind
 * (a callback, a timer, a combinator's inputs).  See future.c for the state
 * word's protocol. */
#ifndef FUT_INTERNAL_H
#define FUT_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "fut.h"

/* The core's spelling of <fut/common.h>'s sanitizer detection (FUT__TSAN,
 * FUT__ASAN), which also holds the branch hints FUT__LIKELY/UNLIKELY. */
#if FUT__TSAN && !defined(FUT_TSAN)
#define FUT_TSAN 1
#endif
#if FUT__ASAN && !defined(FUT_ASAN)
#define FUT_ASAN 1
#endif
#define FUT__CONTAINER(ptr, type, field)                                       \
    ((type *)(void *)((char *)(ptr)-offsetof(type, field)))

#define FUT__BLOCK 128 /* bytes in one slab block: two cache lines */

/* ---- continuation nodes -------------------------------------------------
 * A node hangs on a future's continuation list until the future settles;
 * then FIRE runs once with the settled future, on the settling thread (or on
 * the attaching thread if it attached late). */
/* The node is the executor kit's public fut_kit_watch_t (same layout, same
 * names), so an executor's watch (fut_kit_watch) is an attach and nothing
 * more. */
typedef fut_kit_watch_t fut_cont_t;

/* What kind of future, i.e. what its embedded task or node does. */
enum fut_kind {
    FK_PLAIN = 0, /* promise or fut_ready: settled from outside */
    FK_ASYNC,     /* runs call.fn.task(call.arg) */
    FK_FIBER,     /* a fiber's future; its task is each run of the fiber
                     (fiber.c): call.fn.task is the fiber's function (stall
                     reports name it), call.arg its struct fut_fiber */
    FK_THEN,      /* runs call.fn.then on fulfilment */
    FK_CATCH,     /* ... on rejection or cancellation */
    FK_FINALLY,   /* ... on any outcome */
    FK_COMBINE,   /* all / all_settled / any / race */
    FK_DELAY,     /* fulfils when its timer fires */
    FK_TIMEOUT,   /* follows an input unless its timer fires first */
    FK_POST,      /* fut_post's work: call.fn.post(call.arg), no future
                     (post.c); born closed, so fut_task_run's common path
                     never sees it */
    FK_MEMBER,    /* a scope's member: follows what its start returned */
    FK_SCOPE      /* a scope's close future: scope.c */
};

/* Value kinds.  VK_PTR_OWNS: a pointer that comes with work for the last
 * release, a destructor (dtor) or a borrow (owner); only then are those two
 * fields valid (written), so a plain value's life never touches them. */
enum { VK_NONE = 0, VK_PTR = 1, VK_I64 = 2, VK_PTR_OWNS = 3 };

/* Result kinds (fut_result_t.kind_). */
enum {
    RK_OK = FUT__RK_OK,
    RK_OWNED = FUT__RK_OWNED,
    RK_I64 = FUT__RK_I64,
    RK_FAIL = FUT__RK_FAIL,
    RK_FORWARD = FUT__RK_FORWARD,
    RK_ADOPT = FUT__RK_ADOPT
};

/* fut.hold: for DELAY and TIMEOUT the timer hand-off state (timer.c); for
 * a promise's future, 1 while the promise handle is outstanding. */
enum {
    TS_NONE = 0,    /* no timer armed */
    TS_ARMED,       /* an executor holds it */
    TS_CANCEL_SENT, /* the core asked the executor to let go */
    TS_DONE         /* fired or dropped: the executor let go */
};

/* Flags (fut.flags), written by one thread at a time. */
enum {
    FF_EX_REF = 1u << 0, /* holds a reference on ex */
    FF_HOOK = 1u << 1,   /* a promise's cancel hook: future.c, at the end */
    FF_FOLLOWS = 1u << 2 /* ASYNC or call kind: u.call.fn.follows is held */
};

/* fut.hold of ASYNC and call kinds: 1 once u.call.fn.follows is set (the
 * task or callback returned fut_adopt/fut_forward of a pending future);
 * of FK_MEMBER: MS_STARTED (holds a slot of the limit) and MS_LISTED (the
 * scope's registry holds a reference: scope.c; cancel.c counts it). */
enum { MS_WAITING = 0, MS_STARTED = 1, MS_LISTED = 2 };
struct fut_scope;
typedef fut_t *(*fut__start_fn)(void *arg);

struct fut_comb;

/* The first cache line holds everything a task's life touches (made,
 * handed over, run, settled with a plain value, released): a task handed
 * to another thread (the loop's hand-off, a stolen pool task) moves one
 * line there and, when freed, one line back.  The second holds what only
 * other kinds or values need; fut__new_block does not write it. */
struct fut {
    _Atomic uintptr_t word; /* state + continuation list: future.c */
    _Atomic uint32_t refs;
    uint8_t kind;         /* enum fut_kind */
    uint8_t vkind;        /* VK_*; valid once fulfilled */
    uint8_t flags;        /* FF_* */
    _Atomic uint8_t hold; /* TS_* or promise outstanding, see above */
    union {
        void *ptr;
        int64_t i64;
    } val;
    fut_executor_t *ex; /* where the task runs / the timer lives */
    fut_task_t task;    /* handed to ex */
    union {
        struct {
            fut_t *src; /* THEN/CATCH/FINALLY source; TIMEOUT input */
            union {
                fut_task_fn task;
                fut_then_fn then;
                void (*post)(void *);
                fut_t *follows; /* after the call: cancel.c */
            } fn;
            void *arg;
        } call;
        struct {
            _Atomic(fut_t *) src;    /* what START returned; kept until
                                        the member goes (scope.c) */
            fut__start_fn start;     /* until started */
            void *arg;
            struct fut_scope *scope; /* until closed */
        } member;
        struct {
            fut_t *input;      /* TIMEOUT: the future it follows */
            fut_timer_t timer; /* DELAY, TIMEOUT */
        } tm;
        struct fut_comb *comb; /* COMBINE */
    } u;
    /* The second line. */
    void (*dtor)(void *); /* VK_PTR_OWNS: runs on val.ptr at the last release */
    fut_t *owner;         /* VK_PTR_OWNS: future whose value this one borrows */
    fut_cont_t cont;      /* this future's node on its source's list */
    union {
        struct {
            fut_t *dnext;      /* deferred-completion queue: future.c; valid */
            fut_cont_t *dlist; /* while queued, or in the FUT_DEBUG
                                  quarantine (dnext) */
        };
    };
};

_Static_assert(sizeof(struct fut) <= FUT__BLOCK,
               "a future plus its task must fit in two cache lines");
_Static_assert(sizeof(struct fut) <= FUT__BLOCK - sizeof(void *),
               "and leaves the block's last pointer to the allocator");
_Static_assert(offsetof(struct fut, u.call.arg) + sizeof(void *) <= 64,
               "a task's life stays in the first cache line");
_Static_assert(offsetof(struct fut, u.member.src) ==
                       offsetof(struct fut, u.call.src) &&
                   offsetof(struct fut, u.tm.input) ==
                       offsetof(struct fut, u.call.src),
               "a member's and a timeout's source sit where a call's does");
_Static_assert(sizeof(uintptr_t) == 8, "the state word packs err in 64 bits");

/* ---- executors ---------------------------------------------------------- */
/* Never freed, once made: a destroyed one stays closed (executor.c).  OPS
 * is the application's and may be gone once destroy returned, so what is
 * read without the guard (executor.c) is copied here at creation. */
struct fut_executor {
    const fut_executor_ops_t *ops;
    void *impl;
    _Atomic uint32_t inflight; /* guarded calls beyond a slot: guard.c */
    _Atomic uint32_t closed;   /* set once by fut_executor_destroy */
    _Atomic uint32_t gone;     /* IMPL freed: fut_executor_impl says NULL */
    uint8_t is_static;         /* never destroyed (inline, timer service) */
    uint8_t has_timers;        /* ops->timer_start */
    uint8_t has_stats;         /* ops->stats */
    uint8_t has_fd_ready;      /* ops->fd_ready */
    _Atomic uint32_t forked;   /* the parent's, in a child: 1; destroyed: 2 */
    fut_executor_t *reg_prev, *reg_next; /* the live list: fork.c */
    struct fut_executor *next_handle;    /* every handle made: executor.c */
    char name[24];                       /* ops->name (or "custom"), cut */
    /* Fibers of this executor, for its destroy: fiber.c, SHUTDOWN. */
    _Atomic uint32_t fiber_lock;
    uint32_t fibers_closed;
    struct fut_fiber *fibers;
    void *io_slot; /* the socket operations' state: fut_kit_io_slot */
};

/* A static executor's OPS are static too: has_timers, has_stats and name
 * are not used for it. */
#define FUT__EXECUTOR_STATIC(OPS, IMPL)                                        \
    {                                                                          \
        .ops = (OPS), .impl = (IMPL), .is_static = 1                           \
    }

/* Whether EX keeps timers itself (ops->timer_start).  Any thread, also on a
 * destroyed handle. */
static inline bool fut__ex_has_timers(const fut_executor_t *ex)
{
    return ex->is_static ? ex->ops->timer_start != NULL : ex->has_timers;
}

/* ---- fork() (fork.c) ---------------------------------------------------- */
enum fut_fork_phase { FUT_FORK_BEFORE, FUT_FORK_PARENT, FUT_FORK_CHILD };
void fut__ex_register(fut_executor_t *ex);   /* fut_executor_create */
void fut__ex_unregister(fut_executor_t *ex); /* fut_executor_destroy */
/* fut_executor_destroy of an executor the parent created, in a child. */
int fut__ex_destroy_forked(fut_executor_t *ex);
/* The atfork handlers' parts: take, let go, or (child) reset the state. */
void fut__timer_fork(enum fut_fork_phase phase);
void fut__alloc_fork(enum fut_fork_phase phase);

/* ---- per-thread context -------------------------------------------------
 * The part of it that belongs to the code running (the scheduler's frames
 * or a fiber's), which fiber.c swaps as one struct around each run of a
 * fiber (struct fut_tls_ctx), and is named field by field everywhere else
 * (an anonymous member of struct fut_tls).  Listed once, here. */
#define FUT__TLS_CTX_FIELDS                                                    \
    fut_executor_t *cur_ex; /* executor whose task this thread runs */         \
    fut_t *cur_fut;         /* the future of that task or callback */          \
    int firing;             /* inside run_conts: defer nested lists */         \
    fut_t *active;          /* the future whose list is being fired */         \
    fut_cont_t *alist;      /* what is left of that list */                    \
    fut_t *dhead, *dtail;   /* deferred completions (FIFO) */                  \
    fut_task_t *inline_head, *inline_tail; /* inline.c's queue */              \
    struct fut_fiber *fiber; /* the fiber this thread runs: fiber.c */       \
    /* Not beside `firing`: gcc tests both with one 8-byte load right     \
     * after a 4-byte store to one of them, a failed store forward that  \
     * cost each fut_then link 4 ns (bench/chain then 17 -> 21 ns). */   \
    int inline_depth; /* inline executor's trampoline (inline.c) */
struct fut_tls_ctx {
    FUT__TLS_CTX_FIELDS
};
struct fut_tls {
    union {
        struct fut_tls_ctx ctx; /* fiber.c's swap */
        struct {
            FUT__TLS_CTX_FIELDS
        };
    };
    fut_t *owed;     /* a taken task's hold not yet released:
                        task.c, fut__run_taken */
    fut_t *claiming; /* future this thread claimed and acts for */
    void *slab;           /* free 128-byte blocks: alloc.c */
    int slab_n;           /* about how many (may dip below 0) */
    int slab_registered;
    int slab_off;          /* this thread frees straight to the allocator */
    struct fut_home *home; /* where blocks made here go back: alloc.c */
    void *rbatch, *rbatch_tail; /* blocks freed here for rbatch_home */
    struct fut_home *rbatch_home;
    unsigned rbatch_n;
    fut_t *quar_head, *quar_tail; /* FUT_DEBUG: released futures, kept */
    unsigned quar_n;
    struct fut_guard_slot *gslot; /* guarded calls' slot: guard.c */
    int gslot_off;                /* no slot (exiting): the counter */
};

extern _Thread_local struct fut_tls fut__tls
    __attribute__((tls_model("initial-exec")));

/* ---- allocation (alloc.c) -----------------------------------------------
 * The two fast paths are inline (every future is one of each); alloc.c has
 * the rest and the protocol.  A block of up to FUT__STAMPED bytes comes
 * from the thread's list and carries its home in its last pointer. */
struct fut_home;
#define FUT__STAMPED (FUT__BLOCK - sizeof(void *))
#define FUT__STAMP(b)                                                          \
    (((struct fut_home **)(b))[FUT__BLOCK / sizeof(void *) - 1])
#define FUT__SLAB_MAX 1024 /* blocks on a thread's own list */
/* Under AddressSanitizer the lists are off (alloc.c says why). */
#ifdef FUT_ASAN
#define FUT__SLABS_ON 0
#else
#define FUT__SLABS_ON 1
#endif
void *fut__alloc_slow(size_t size);
void fut__free_slow(void *p, size_t size);

/* NULL on failure.  Any thread; a block may be freed on another thread. */
static inline void *fut__alloc(size_t size)
{
    struct fut_tls *t = &fut__tls;
    void **b = (void **)t->slab; /* always NULL without FUT__SLABS_ON */
    if (FUT__LIKELY(size <= FUT__STAMPED && b)) {
        t->slab = *b;
        t->slab_n--;
        /* Written only if it changed: most blocks come back to the home
         * they left, and a store would take the block's last line from
         * the thread that freed it (struct fut's lines, above). */
        if (FUT__UNLIKELY(FUT__STAMP(b) != t->home))
            FUT__STAMP(b) = t->home;
        return b;
    }
    return fut__alloc_slow(size);
}

/* SIZE as given to fut__alloc.  A thread with a home is never slab_off
 * (alloc.c), so a block stamped with this thread's home may go on its
 * list. */
static inline void fut__free(void *p, size_t size)
{
    struct fut_tls *t = &fut__tls;
    if (FUT__LIKELY(FUT__SLABS_ON && p && size <= FUT__STAMPED)) {
        void **b = (void **)p;
        struct fut_home *h = FUT__STAMP(b);
        if (FUT__LIKELY(h == t->home && h && t->slab_n < FUT__SLAB_MAX)) {
            *b = t->slab;
            t->slab = b;
            t->slab_n++;
            return;
        }
    }
    fut__free_slow(p, size);
}
void *fut__sys_alloc(size_t size); /* the installed allocator, no cache */
void fut__sys_free(void *p);

/* ---- misuse: a released future is marked dead ----------------------------
 * The last release sets the count to FUT__DEAD before the block goes back.
 * A double release, a retain after the last release or a consumed promise
 * used again then finds FUT__DEAD (as long as the block was not reused) and
 * is reported through the log hook (FUT_LOG_ERROR), or, with no hook
 * installed, as one line on stderr (the library's only output), before the
 * program is stopped with abort(), as assert() would.  Debug builds (FUT_DEBUG) also
 * keep released futures out of reuse for a while (a per-thread quarantine,
 * alloc.c), so the check catches late misuse too.  ASan builds catch the
 * same misuse as a use after free. */
#define FUT__DEAD 0xDEAD0000u
void fut__quarantine(fut_t *f);
void fut__misuse(const char *what, const void *f) __attribute__((noreturn));
#define FUT__CHECK_LIVE(refs, f, what)                                         \
    do {                                                                       \
        if (FUT__UNLIKELY((refs) >= FUT__DEAD))                                \
            fut__misuse((what), (f));                                          \
    } while (0)

/* ---- futures (future.c, block.c, task.c) ------------------------------- */
/* A new future of KIND with REFS references, or NULL on no memory.  Inline
 * for the hot makers (fut_async, chaining, fut_promise_new); fut__new for
 * the rest. */
static inline fut_t *fut__new_block(enum fut_kind kind, uint32_t refs)
{
    fut_t *f = fut__alloc(sizeof *f);
    if (FUT__UNLIKELY(!f))
        return NULL;
    /* Field by field: a memset of the whole block costs more (rep stos)
     * on the hot path than the stores that matter. */
    atomic_init(&f->word, 0);
    atomic_init(&f->refs, refs);
    f->kind = (uint8_t)kind;
    f->vkind = VK_NONE;
    f->flags = 0;
    atomic_init(&f->hold, 0);
    f->ex = NULL;
    f->u.call.src = NULL;
    /* Not the second line (internal.h): dtor and owner are written with
     * VK_PTR_OWNS, cont when attached, dnext and dlist when queued. */
    return f;
}

fut_t *fut__new(enum fut_kind kind, uint32_t refs); /* NULL on no memory */
fut_t *fut__rejected(int err); /* a settled-rejected future, or a
                                  shared static one if no memory */
/* True once F is settled.  Acquire: pairs with the release that closed
 * the word (future.c), so the outcome is readable after it.  Inline: it
 * is on every wait's and every task's path. */
static inline bool fut__closed(const fut_t *f)
{
    return (atomic_load_explicit(&((fut_t *)f)->word, memory_order_acquire) &
            2u) != 0;
}
/* Settles F from a single writer (its task, its promise): 0 or
 * FUT_EALREADY, in which case R is disposed. */
int fut__settle(fut_t *f, const fut_result_t *r);
/* Settles F with STATE/ERR, no value; false if F was already settled. */
bool fut__settle_err(fut_t *f, fut_state_t state, int err);
/* Settles F like settled SRC (value borrowed through owner); claim-based, so
 * several threads may race to do it.  False if F was settled first. */
bool fut__settle_like(fut_t *f, fut_t *src);
/* Two-step settle for an outcome that must act before anyone sees it (a
 * firing timeout cancels its input first): claim F (false if settled or
 * claimed already), act with fut__tls.claiming = F, then close it. */
bool fut__claim(fut_t *f);
void fut__close_claimed_like(fut_t *f, fut_t *src); /* F claimed */
void fut__close_claimed_err(fut_t *f, fut_state_t state, int err);
/* Closes claimed F with R: a value (ok, owned, i64) or a failure; a
 * forward or adopt is refused as FUT_EINVAL. */
void fut__close_claimed(fut_t *f, fut_result_t r);
/* Lets go of a claim without settling F: a racing settle or cancel that
 * waited for the claim then tries again (the I/O operations, which claim
 * their future around each system call and let go on EAGAIN). */
void fut__unclaim(fut_t *f);
void fut__attach(fut_t *f, fut_cont_t *c);
/* Takes C, attached to F by this thread earlier, off F's list again: true
 * if it did (C will never fire), false if F is settled or being settled
 * (C has fired or will).  A timed wait that gave up calls it. */
bool fut__detach(fut_t *f, fut_cont_t *c);
/* Fires one deferred completion of this thread, if any (helping waits). */
bool fut__drain_deferred_one(void);
/* Drops what R owns (a value with a dtor, an adopted future): result.c. */
void fut__dispose(fut_result_t r);
void fut__on_cancel(fut_t *f); /* kind-specific clean-up: timers */
/* Cancellation reaching the work (cancel.c).  fut__cancel_from(F) runs
 * after this thread cancelled F: it cancels F's sources that nothing else
 * observes, down to the roots. */
void fut__cancel_from(fut_t *f);
/* True if S is pending and nothing but the consumer whose node is MINE
 * (and who holds one reference on S) observes it; MINE NULL: a holder of
 * one reference with no node on S. */
bool fut__unobserved(fut_t *s, const fut_cont_t *mine);
/* Cancels S if fut__unobserved(S, MINE); true if it did. */
bool fut__cancel_unobserved(fut_t *s, const fut_cont_t *mine);
/* A source recorded by follow() after F was cancelled: cancel it if
 * unobserved (the canceller may have looked before it was recorded). */
void fut__cancel_followed(fut_t *f, fut_t *other);
/* Releases a call kind's source after this thread closed it (not by
 * fut_cancel): task.c. */
void fut__drop_src(fut_t *f);
/* combinators.c: cancel unobserved inputs of combined F (pending ones only
 * when SKIP is not NULL, skipping that one); internal holds of F. */
void fut__comb_cancel_inputs(fut_t *f, const fut_t *skip);
uint32_t fut__comb_holds(const fut_t *f);
/* scope.c */
/* Closes claimed member M with STATE/ERR (or like SRC when not NULL),
 * its scope's bookkeeping around it. */
void fut__member_close(fut_t *m, fut_t *src, fut_state_t state, int err);
void fut__scope_cancel_close(fut_t *f);
uint32_t fut__scope_holds(const fut_t *f);
void fut__scope_destroy(fut_t *f);
/* Runs F's task, which this thread took back from its executor (ops->take)
 * while waiting for F, from inside a task of that same executor
 * (fut__tls.cur_ex == F->ex): fork-join's fast path. */
void fut__run_taken(fut_t *f);
/* Promise cancel hooks (promise.c): FN(ARG, F) runs once,
 * as a task on EX, if and only if F (P's future) is cancelled before P
 * settles it and EX still takes work then.  Call right after
 * fut_promise_new, before F is shared.  0, or FUT_EINVAL (P consumed or
 * hooked already, EX or FN NULL).  Executors use it instead of a fut_catch
 * per promise (loop_fd.c: deregister a cancelled fd). */
int fut__promise_on_cancel(fut_promise_t *p, fut_executor_t *ex, fut_then_fn fn,
                           void *arg);
/* Runs a fut_post block's function and frees the block (post.c); F is
 * the block of the task fut_task_run was given. */
void fut__post_run(fut_t *f);
/* executors/loop/io_file.c: 1 sends every fut_pread/fut_pwrite on a loop to
 * the offload threads (what FUT_IO_OFFLOAD=1 does), 0 tries RWF_NOWAIT
 * first (tests cover both paths). */
void fut__io_force_offload(int on);
unsigned long fut__io_offload_count(void); /* jobs sent to those threads */
/* executors/loop/io_uring.c: FUT_IO_URING's modes for tests (0: never the
 * ring, 1: the ring when RWF_NOWAIT misses, 2: every read; -1: read the
 * environment again at the next read), whether this
 * kernel lets us make a ring at all, and the reads loop EX's ring sent to
 * the kernel (read once the loop is idle). */
void fut__uring_set_mode(int mode);
bool fut__uring_supported(void);
uint64_t fut__uring_submitted(fut_executor_t *ex);
void fut__hook_fire(fut_t *f); /* fut_cancel won on hooked F */
void fut__hook_run(fut_t *f);  /* F's hook task runs (fut_task_run) */
/* The one future a failed allocation can still return: settled FUT_ENOMEM,
 * never freed (future.c; promise.c compares against it). */
extern fut_t fut__enomem;
/* Releases the hold this thread owes (block.c; promise.c's hook run). */
void fut__pay_owed(struct fut_tls *t);

/* ---- executors (executor.c) --------------------------------------------- */
int fut__ex_submit(fut_executor_t *ex, fut_task_t *t);
/* References on an executor's struct: none are needed any more, since the
 * struct is never freed (executor.c).  Empty, so the places that took and
 * dropped them (FF_EX_REF in block.c, task.c, timer.c, promise.c)
 * compile to nothing; they can go once no branch in flight still touches
 * them. */
static inline void fut__ex_retain(fut_executor_t *ex)
{
    (void)ex;
}
static inline void fut__ex_release(fut_executor_t *ex)
{
    (void)ex;
}
int fut__ex_timer_start(fut_executor_t *ex, fut_timer_t *t);
void fut__ex_timer_cancel(fut_executor_t *ex, fut_timer_t *t);
extern fut_executor_t fut__timer_service;
/* The inline executor (lib/inline.c) and its trampoline: runs the
 * tasks queued on this thread while it was inside an inline task. */
extern fut_executor_t fut__inline;
void fut__inline_drain(void);

/* ---- fibers (fiber.c) ----------------------------------------------------
 * fut_wait's suspending path, taken when fut__tls.fiber is set; the last
 * run of EX's suspended fibers, by fut_executor_destroy once EX's own
 * destroy has returned; and the runs of a fiber (FK_FIBER). */
int fut__fiber_wait(fut_t *f, int64_t timeout_ns);
void fut__fibers_shutdown(fut_executor_t *ex);
/* fut_task_run and fut_task_drop of FK_FIBER F's task: a run of the fiber,
 * or its executor letting the run go.  Neither drops a reference of F. */
void fut__fiber_run(fut_t *f);
void fut__fiber_drop(fut_t *f);

/* ---- combinators (combinators.c) ---------------------------------------- */
void fut__comb_destroy(fut_t *f);

/* ---- logging (error.c) -------------------------------------------------- */
/* Reports EV through the application's hook, if any (true: a hook heard
 * it).  Any thread. */
bool fut__log_event(const fut_log_event_t *ev);
void fut__log(fut_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- TSan annotations for hand-offs TSan cannot see --------------------- */
#ifdef FUT_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define FUT__TSAN_ACQUIRE(p) __tsan_acquire((void *)(p))
#define FUT__TSAN_RELEASE(p) __tsan_release((void *)(p))
#else
#define FUT__TSAN_ACQUIRE(p) ((void)0)
#define FUT__TSAN_RELEASE(p) ((void)0)
#endif

#endif
