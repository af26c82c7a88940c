/* libfut — the event loop's private header, shared by executors/loop/loop.c
 * (tasks, the loop itself, creation and shutdown; its opening essay states
 * the protocol), loop_timers.c (the timer heap, the kit's, and its
 * hand-off stacks), loop_clock.c (callback timing, stall reports) and
 * loop_fd.c (fd readiness).  Not installed. */
#ifndef FUT_LOOP_IMPL_H
#define FUT_LOOP_IMPL_H

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fut.h"

#include "../common/fd_waiters.h"

#define DEFAULT_STALL_NS 100000000ull
#define MAX_EVENTS 128
#define TASK_BUDGET 1024 /* local tasks per round before looking at I/O */
#define EV_WAKE UINT64_MAX

struct loop;

/* An fd's waiters (struct fdw, ../common/fd_waiters.h) and our epoll
 * registration of it. */
struct fdrec {
    struct fdw_list ws;
    uint32_t kmask;       /* EPOLLIN/OUT we registered; 0: not registered */
    uint32_t gen;         /* tags our entry's events: bumped by each ADD */
    uint64_t set_round;   /* the round of the last epoll_ctl that succeeded */
    uint64_t idle_round;  /* the poll round in which ws last emptied */
    uint64_t trust_round; /* != 0: kept without a syscall since this round
                             and not confirmed by an event yet */
    bool on_vq;           /* listed on the loop's vq (loop_fd.c) */
};

struct loop {
    fut_executor_t *ex;
    int epfd, evfd;
    uint64_t stall_ns;
    double ns_per_tick;       /* > 0 once the TSC is calibrated (loop.c) */
    uint64_t cal_tsc, cal_ns; /* calibration start */
    bool cal_ok;              /* the TSC is invariant */
    uint64_t coarse_res;      /* CLOCK_MONOTONIC_COARSE's tick; 0: unusable */
    uint64_t an_t, an_c;      /* timing anchor: precise and coarse (loop.c) */
    fut_log_fn log;
    void *log_ud;

    /* Hand-off stacks: any thread pushes, the loop takes all. */
    char pad0_[64]; /* keep the hot shared words off the read-mostly ones */
    _Atomic(fut_task_t *) rq; /* the task queue's tail (loop.c: rq_push) */
    /* The queue's stub node: its link is written by the producer that
     * pushes after it, so it lives on the producers' line, not on the
     * loop's own (rq_head and the local FIFO below). */
    fut_task_t rq_stub;
    _Atomic(struct fdw *) rfd;
    _Atomic(fut_timer_t *) rstart;  /* linked through slot */
    _Atomic(fut_timer_t *) rcancel; /* linked through next */
    char pad1_[64];
    atomic_uint sleeping;
    atomic_uint stop; /* fut_loop_stop: release store, acquire load in run */
    atomic_uint quit; /* destroy: same pairing */
    atomic_uint gate_users, gate_closed; /* fut_fd_ready / stop vs destroy */

    /* run/destroy hand-off (rare; a mutex is enough) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool running, dead;
    pthread_t runner; /* the thread inside fut_loop_run, while running */

    /* Loop-thread state. */
    char pad2_[64];
    fut_task_t *lq_head, *lq_tail;
    fut_task_t *rq_head; /* the task queue's head: the oldest node or stub */
    union {
        fut_kit_timer_heap_t timers; /* the timer heap (loop_timers.c) */
        /* loop.c's read-only view of its first two fields (next_timeout
         * reads hn and heap[0].deadline, free_loop frees heap, NULL once
         * the heap is empty), through the union's common initial
         * sequence (checked below); loop.c is to read it with
         * fut_kit_timer_heap_next_ns instead, and then the view goes. */
        struct {
            fut_kit_timer_ent_t *heap;
            size_t hn;
        };
    };
    struct fdrec *fds;
    size_t nfds;
    struct fdw_list orphans;
    uint64_t round; /* poll rounds (loop_fd.c's persistence rules) */
    int *vq;        /* fds kept on trust, to verify (loop_fd.c) */
    size_t vn, vcap;
    struct fdw *wfree; /* spare waiter blocks (loop_fd.c) */
    unsigned wfree_n;
    struct loop_io *io;       /* the I/O operations' queues (loop_io.c) */
    struct fut__uring *uring; /* fut_pread's ring (io_uring.c), or NULL */

    /* Counters: written by the loop thread only. */
    _Atomic uint64_t n_tasks, n_submitted, n_timers, n_fd, n_wakeups, n_longest,
        n_stalls;
};

_Static_assert(offsetof(struct loop, heap) ==
                       offsetof(struct loop, timers.ent_) &&
                   offsetof(struct loop, hn) == offsetof(struct loop, timers.n_),
               "loop.c's view of the timer heap");

/* The loop the calling thread is running (inside fut_loop_run), or NULL. */
extern _Thread_local struct loop *fut__loop_tl;
extern const fut_executor_ops_t fut__loop_ops;

static inline void *xalloc(size_t n)
{
    return fut_alloc(n);
}

static inline void *xzalloc(size_t n)
{
    void *p = fut_alloc(n);
    if (p)
        memset(p, 0, n);
    return p;
}

/* realloc through the application's allocator. */
static inline void *xgrow(void *old, size_t old_n, size_t n)
{
    void *p = fut_alloc(n);
    if (p && old)
        memcpy(p, old, old_n < n ? old_n : n);
    if (p)
        fut_free(old);
    return p;
}

static inline void xfree(void *p)
{
    fut_free(p);
}

static inline void bump(_Atomic uint64_t *c, uint64_t n)
{
    /* Single writer: relaxed load + store, no locked instruction. */
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline void wake_always(struct loop *l)
{
    eventfd_write(l->evfd, 1);
}

/* After a push: wake the loop if it sleeps (see the essay). */
static inline void wake_if_sleeping(struct loop *l)
{
    /* seq_cst load: pairs with the seq_cst store of sleeping = 1 in
     * poll_io (Dekker); the exchange picks the one producer that writes. */
    if (atomic_load_explicit(&l->sleeping, memory_order_seq_cst) &&
        atomic_exchange_explicit(&l->sleeping, 0, memory_order_acq_rel))
        wake_always(l);
}

/* ---- our gate for fut_fd_ready / fut_loop_stop from other threads ------ */

static inline bool gate_enter(struct loop *l)
{
    /* seq_cst: pairs with the seq_cst store of gate_closed in destroy. */
    atomic_fetch_add_explicit(&l->gate_users, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&l->gate_closed, memory_order_seq_cst)) {
        atomic_fetch_sub_explicit(&l->gate_users, 1, memory_order_release);
        return false;
    }
    return true;
}

static inline void gate_leave(struct loop *l)
{
    /* Release: pairs with the acquire load in loop_destroy. */
    atomic_fetch_sub_explicit(&l->gate_users, 1, memory_order_release);
}

/* Callback timing for stall detection (loop.c explains): begin before a
 * run of callbacks, end after each. */
static inline uint64_t fut__coarse_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void fut__loop_time_begin(struct loop *l);
void fut__loop_time_slow(struct loop *l, const void *fn, uint64_t c);

static inline void fut__loop_time_end(struct loop *l, const void *fn)
{
    uint64_t c = 0;
    if (l->coarse_res && (c = fut__coarse_now()) == l->an_c)
        return; /* still in the anchor's tick: far below stall_ns */
    fut__loop_time_slow(l, fn, c);
}

/* Reverses a taken stack linked through NEXT into arrival order. */
#define REVERSE(type, list, link)                                              \
    do {                                                                       \
        type *r_ = NULL;                                                       \
        while (list) {                                                         \
            type *n_ = (type *)(uintptr_t)list->link;                          \
            list->link = (__typeof__(list->link))(uintptr_t)r_;                \
            r_ = list;                                                         \
            list = n_;                                                         \
        }                                                                      \
        list = r_;                                                             \
    } while (0)

/* loop_timers.c: ops->timer_start and ->timer_cancel (any thread); the
 * rest on the loop thread (or the destroying one, for the shutdown). */
int fut__loop_timer_start(void *impl, fut_timer_t *t);
void fut__loop_timer_cancel(void *impl, fut_timer_t *t);
void fut__loop_drain_timers(struct loop *l); /* starts, then cancels */
void fut__loop_fire_timers(struct loop *l);  /* every timer due now */
void fut__loop_timers_shutdown(struct loop *l);

/* loop_clock.c, loop thread: set up the timing at creation; calibrate the
 * TSC between batches (poll_io). */
void fut__loop_clock_init(struct loop *l);
void fut__loop_calibrate(struct loop *l);

/* loop_fd.c, all on the loop thread (or the destroying one). */
void fut__loop_drain_fds(struct loop *l);
bool fut__loop_dispatch(struct loop *l, uint64_t tag, uint32_t events);
void fut__loop_fd_shutdown(struct loop *l);
void fut__loop_fd_prepoll(struct loop *l);
void fut__loop_fd_validate(struct loop *l);
void fut__loop_fdw_free_all(struct loop *l);
/* An I/O operation's readiness wait without a future (loop_io.c): W, owned
 * by the caller (FIRE set), waits on FD for EVENTS; W->fire(W, err) then
 * runs once on the loop thread, ERR 0 for ready, else what fut_fd_ready's
 * future would reject with; it may run before this returns (a bad fd, an
 * epoll_ctl failing).  Loop thread. */
void fut__loop_fd_wait(struct loop *l, struct fdw *w, int fd, unsigned events);
/* Takes W, waiting, off its fd, as a cancel of a readiness future does (no
 * epoll_ctl if QUIET: at shutdown); W->fire never runs. */
void fut__loop_fd_unwait(struct loop *l, struct fdw *w, bool quiet);
/* Grows the fd table to hold FD now, so that a later wait on FD needs no
 * memory (an I/O operation makes room before its first system call): 0,
 * FUT_ENOMEM, or -errno for an fd that is not open.  Loop thread. */
int fut__loop_fd_room(struct loop *l, int fd);
/* The loop's fd_ready op (any thread, inside the core's guard). */
fut_t *fut__loop_fd_ready(void *impl, int fd, unsigned events);
/* io_file.c, for tests (declared for them in lib/internal.h too): 1 sends
 * every fut_pread/fut_pwrite on a loop to the offload threads, 0 tries
 * RWF_NOWAIT first; the count of jobs sent to those threads. */
void fut__io_force_offload(int on);
unsigned long fut__io_offload_count(void);
/* loop_io.c: settles the I/O operations still queued (FUT_ESHUTDOWN) and
 * frees their queues; part of shutdown, before fut__loop_fd_shutdown. */
void fut__loop_io_shutdown(struct loop *l);

/* io_uring.c: fut_pread on a loop through a ring of its own, and the
 * offload threads of io_file.c it falls back to. */
enum { FUT_URING_OFF, FUT_URING_MISS, FUT_URING_ALL };
int fut__uring_mode(void); /* FUT_IO_URING: 0 OFF, all ALL, else MISS */
/* Reads LEN - DONE bytes at OFF + DONE into BUF + DONE (the first DONE
 * were read already) on loop EX; settles P (consumed) with DONE + the
 * bytes read (with DONE alone, a short read, if memory runs out). */
void fut__uring_pread(fut_executor_t *ex, fut_promise_t *p, int fd, char *buf,
                      size_t len, off_t off, size_t done);
/* Settles the ring's reads FUT_ESHUTDOWN and closes it (loop_io.c). */
void fut__uring_shutdown(struct loop *l);
/* A child's destroy of a loop inherited across fork(): closes the child's
 * copies of the ring's fds and mappings, frees its memory, and leaves the
 * parent's reads in the ring alone (loop.c). */
void fut__uring_destroy_forked(struct loop *l);
/* For tests (declared for them in lib/internal.h too): force a mode (-1:
 * read FUT_IO_URING again), whether this kernel makes a ring, and the reads
 * loop EX's ring sent to the kernel. */
void fut__uring_set_mode(int mode);
bool fut__uring_supported(void);
uint64_t fut__uring_submitted(fut_executor_t *ex);
/* io_file.c: the same read as a job of the offload threads, settling P
 * (consumed); if no thread can run it, with DONE (a short read) or, for
 * DONE 0, FUT_ENOMEM. */
void fut__io_offload_pread(fut_promise_t *p, int fd, char *buf, size_t len,
                           off_t off, size_t done);

#endif
