/* libfut — fut_pread on a loop through io_uring: one ring per loop, made on
 * the loop thread at its first use, driven by raw system calls
 * (io_uring_setup, io_uring_enter, io_uring_register, mmap of the rings:
 * libfut links no liburing), its completions signalled on an eventfd
 * (IORING_REGISTER_EVENTFD) that the loop waits on with fut_fd_ready like
 * any fd.  io_file.c calls fut__uring_pread when RWF_NOWAIT found the data
 * out of the page cache (or for every read with FUT_IO_URING=all); a loop
 * whose ring cannot be made (ENOSYS, EPERM under seccomp, ENOMEM,
 * io_uring_disabled) gives its reads to io_file.c's offload threads,
 * silently, for the rest of its life.  FUT_IO_URING=0 forces that path.
 * Writes never come here (see CANCELLATION).
 *
 * CANCELLATION: the kernel reads into a buffer of ours (the bounce).
 *
 * The contract (<fut/io.h>) is: a cancel that wins means no byte was
 * read into the caller's buffer after it, a cancel that loses returns
 * FUT_EALREADY with the result standing, and once fut_cancel returned the
 * buffer is the caller's again.  A request in the ring may be copying at
 * any moment, so the kernel must not hold the caller's buffer:
 *
 *  - a claim held from submission to completion (as the offload threads
 *    hold theirs around pread) would make a cancel racing it wait for the
 *    claim; a cancel made on the loop thread would then wait for a
 *    completion that only the loop thread reaps: a deadlock.  The core
 *    (lib/future.c) has no "committed" state that makes a cancel lose at
 *    once without waiting, and it is not this file's to change;
 *  - IORING_OP_ASYNC_CANCEL with the settle deferred to the kernel's
 *    confirmation cannot keep the contract either: fut_cancel settles the
 *    future in the core before any hook of ours runs, so the buffer would
 *    still be the kernel's after fut_cancel returned 0.
 *
 * So the kernel reads into the bounce, which belongs to the job, and the
 * caller's buffer is written only on the loop thread when the completion
 * is reaped, under a claim held for one memcpy:
 *
 *     submitted --CQE--> claim F? --yes--> memcpy, settle (claimed), free
 *                                 --no---> (a cancel won) drop, free
 *
 * A cancel at any moment before that claim wins at once, from any thread
 * (the loop thread too: it never waits), and the caller's buffer is never
 * touched; one racing the claim waits for a memcpy and loses.  The price
 * is the copy (for 4 KiB, a few hundred of the ~1800 instructions a read
 * costs; for 1 MiB missing the cache, ~20% more CPU time than the offload
 * threads: docs/BENCHMARKS.md) and the bounce's memory (reused, 4 MiB
 * kept at most), so reads longer than RING_MAX_LEN go to the offload
 * threads.  Why RWF_NOWAIT still comes first, and the ring only on a
 * miss, is measured there too.  A pwrite cannot be done this way: once submitted it
 * happens, so a cancel would have to lose and wait (the deadlock above);
 * writes keep RWF_NOWAIT and the offload threads.
 *
 * Threads: the ring and its jobs are the loop thread's (fut__loop_tl ==
 * L), or the destroying thread's once no run can start.  A read made on
 * another thread reaches the loop as a task (remote_task); one its loop
 * refuses or drops settles with the task's error (FUT_ESHUTDOWN).
 *
 * Shutdown (fut__uring_shutdown, from loop_io.c's shutdown): every job in
 * the ring settles FUT_ESHUTDOWN at once (the kernel holds only bounces),
 * an IORING_OP_ASYNC_CANCEL goes in for each, and the thread waits for
 * the completions, SHUTDOWN_WAIT_NS at most; a bounce the kernel still
 * holds then is left allocated (never freed under the kernel), and the
 * ring is closed.  The ring struct itself lives until the eventfd wait,
 * if armed, has fired (it settles FUT_ESHUTDOWN right after). */
#include "loop_impl.h"

#include <linux/io_uring.h>
#include <sys/mman.h>
#include <sys/syscall.h>


#define RING_ENTRIES 128u       /* jobs in flight per loop, at most */
#define RING_MAX_LEN (4u << 20) /* longer reads go to the offload */
#define SHUTDOWN_WAIT_NS 5000000000ull
#define CANCEL_TAG ((uint64_t)1)   /* user_data of our ASYNC_CANCELs */
#define SPARE_MIN_SHIFT 12         /* bounces are 4 KiB << class */
#define SPARE_CLASSES 11           /* 4 KiB .. 4 MiB (RING_MAX_LEN) */
#define SPARE_MAX_BYTES (4u << 20) /* kept for reuse per ring, at most */

struct rjob {
    struct rjob *next, *prev; /* the ring's list of jobs in flight */
    fut_promise_t *p;         /* NULL once settled at shutdown */
    int fd;
    char *dst;    /* the caller's buffer (its first DONE0 bytes were read) */
    char *bounce; /* the kernel reads here; 4 KiB << CLS bytes */
    int cls;
    size_t len, done, done0;
    off_t off;
};

struct fut__uring {
    struct loop *l;
    fut_executor_t *ex;
    int fd, efd;
    unsigned sq_mask, cq_mask, entries, inflight;
    _Atomic unsigned *sq_tail, *cq_head, *cq_tail;
    unsigned *sq_array;
    struct io_uring_sqe *sqes;
    struct io_uring_cqe *cqes;
    void *sq_map, *cq_map;
    size_t sq_len, cq_len, sqes_len;
    struct rjob *jobs;
    /* Bounces of finished jobs kept for the next (malloc and free of a
     * 4 KiB block cost ~600 instructions a read), by size class. */
    struct spare {
        struct spare *next;
    } * spare[SPARE_CLASSES];
    size_t spare_bytes;
    bool armed, dead;
    _Atomic uint64_t submitted; /* reads that went to the kernel (tests) */
};

/* l->uring after a failed setup: never try again on that loop. */
static struct fut__uring g_no_ring;

/* ---- the switch --------------------------------------------------------- */

/* -1: not read yet; else FUT_URING_OFF / _MISS / _ALL.  Relaxed: a racing
 * first read of the environment gives the same answer. */
static _Atomic int g_mode = -1;

int fut__uring_mode(void)
{
    int m = atomic_load_explicit(&g_mode, memory_order_relaxed);
    if (m < 0) {
        const char *e = getenv("FUT_IO_URING");
        m = !e || !*e               ? FUT_URING_MISS
            : strcmp(e, "0") == 0   ? FUT_URING_OFF
            : strcmp(e, "all") == 0 ? FUT_URING_ALL
                                    : FUT_URING_MISS;
        atomic_store_explicit(&g_mode, m, memory_order_relaxed);
    }
    return m;
}

void fut__uring_set_mode(int mode)
{
    atomic_store_explicit(&g_mode, mode, memory_order_relaxed);
}

/* ---- the ring ----------------------------------------------------------- */

static int sys_setup(unsigned n, struct io_uring_params *p)
{
    return (int)syscall(__NR_io_uring_setup, n, p);
}

static int sys_enter(int fd, unsigned submit, unsigned wait, unsigned flags,
                     void *arg, size_t argsz)
{
    return (int)syscall(__NR_io_uring_enter, fd, submit, wait, flags, arg,
                        argsz);
}

bool fut__uring_supported(void)
{
    static _Atomic int ok = -1; /* relaxed: every prober finds the same */
    int v = atomic_load_explicit(&ok, memory_order_relaxed);
    if (v < 0) {
        struct io_uring_params p;
        memset(&p, 0, sizeof p);
        int fd = sys_setup(2, &p);
        v = fd >= 0;
        if (fd >= 0)
            close(fd);
        atomic_store_explicit(&ok, v, memory_order_relaxed);
    }
    return v;
}

static void ring_unmap(struct fut__uring *r)
{
    if (r->sqes && r->sqes != MAP_FAILED)
        munmap(r->sqes, r->sqes_len);
    if (r->cq_map && r->cq_map != MAP_FAILED && r->cq_map != r->sq_map)
        munmap(r->cq_map, r->cq_len);
    if (r->sq_map && r->sq_map != MAP_FAILED)
        munmap(r->sq_map, r->sq_len);
}

static bool ring_map(struct fut__uring *r, const struct io_uring_params *p)
{
    r->sq_len = p->sq_off.array + p->sq_entries * sizeof(unsigned);
    r->cq_len = p->cq_off.cqes + p->cq_entries * sizeof(struct io_uring_cqe);
    bool single = p->features & IORING_FEAT_SINGLE_MMAP;
    if (single && r->cq_len > r->sq_len)
        r->sq_len = r->cq_len;
    r->sq_map = mmap(NULL, r->sq_len, PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQ_RING);
    if (r->sq_map == MAP_FAILED)
        return false;
    r->cq_map =
        single ? r->sq_map
               : mmap(NULL, r->cq_len, PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_CQ_RING);
    if (r->cq_map == MAP_FAILED)
        return false;
    r->sqes_len = p->sq_entries * sizeof(struct io_uring_sqe);
    r->sqes = mmap(NULL, r->sqes_len, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQES);
    if (r->sqes == MAP_FAILED)
        return false;
    char *sq = r->sq_map, *cq = r->cq_map;
    r->sq_mask = *(unsigned *)(sq + p->sq_off.ring_mask);
    r->sq_tail = (_Atomic unsigned *)(sq + p->sq_off.tail);
    r->sq_array = (unsigned *)(sq + p->sq_off.array);
    r->cq_mask = *(unsigned *)(cq + p->cq_off.ring_mask);
    r->cq_head = (_Atomic unsigned *)(cq + p->cq_off.head);
    r->cq_tail = (_Atomic unsigned *)(cq + p->cq_off.tail);
    r->cqes = (struct io_uring_cqe *)(cq + p->cq_off.cqes);
    /* The SQ array maps slot i to SQE i once and for all. */
    for (unsigned i = 0; i < p->sq_entries; i++)
        r->sq_array[i] = i;
    return true;
}

static void ring_close(struct fut__uring *r)
{
    ring_unmap(r);
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
}

/* L's ring, made now if it has none; NULL if L cannot have one. */
static struct fut__uring *ring_of(struct loop *l)
{
    if (l->uring)
        return l->uring == &g_no_ring ? NULL : l->uring;
    struct fut__uring *r = xzalloc(sizeof *r);
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    if (r) {
        r->l = l;
        r->ex = l->ex;
        r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        r->fd = r->efd >= 0 ? sys_setup(RING_ENTRIES, &p) : -1;
    }
    if (!r || r->fd < 0 || !ring_map(r, &p) ||
        syscall(__NR_io_uring_register, r->fd, IORING_REGISTER_EVENTFD, &r->efd,
                1) != 0) {
        if (r) {
            ring_close(r);
            if (r->efd >= 0)
                close(r->efd);
            xfree(r);
        }
        l->uring = &g_no_ring; /* the offload threads, from now on */
        return NULL;
    }
    r->entries = p.sq_entries;
    l->uring = r;
    return r;
}

/* ---- submitting and reaping --------------------------------------------- */

/* Puts one SQE in and enters it; false if the kernel took nothing. */
static bool push_sqe(struct fut__uring *r, uint8_t op, int fd, uint64_t addr,
                     uint32_t len, uint64_t off, uint64_t data)
{
    /* Relaxed: we are the ring's only producer, and the only writer of the
     * tail (the kernel only reads it).  The SQ head, which the kernel
     * moves, is never read here: without SQPOLL the kernel takes SQEs only
     * inside io_uring_enter, so the ring is empty again whenever
     * sys_enter below returns (it took our one SQE, or we take it back). */
    unsigned tail = atomic_load_explicit(r->sq_tail, memory_order_relaxed);
    struct io_uring_sqe *s = &r->sqes[tail & r->sq_mask];
    memset(s, 0, sizeof *s);
    s->opcode = op;
    s->fd = fd;
    s->addr = addr;
    s->len = len;
    s->off = off;
    s->user_data = data;
    /* Release: the SQE's fields (and sq_array's, set at ring_map) before
     * the tail.  The partner is the kernel: its smp_load_acquire of the SQ
     * tail when io_uring_enter takes SQEs (io_uring.c's "smp_store_release
     * to store the tail will do").  Without SQPOLL that load runs in the
     * sys_enter below, on this thread, so program order alone would do;
     * the release is the ABI's rule, and costs a plain store on x86. */
    atomic_store_explicit(r->sq_tail, tail + 1, memory_order_release);
    int n;
    do
        n = sys_enter(r->fd, 1, 0, 0, NULL, 0);
    while (n < 0 && errno == EINTR);
    if (n == 1)
        return true;
    /* Nothing consumed (EAGAIN, EBUSY, ENOMEM): take the SQE back.
     * Relaxed: the kernel reads the tail again only in our next
     * io_uring_enter, after this store in program order. */
    atomic_store_explicit(r->sq_tail, tail, memory_order_relaxed);
    return false;
}

static bool submit(struct fut__uring *r, struct rjob *j)
{
    size_t left = j->len - j->done;
    bool ok =
        push_sqe(r, IORING_OP_READ, j->fd,
                 (uint64_t)(uintptr_t)(j->bounce + j->done), (uint32_t)left,
                 (uint64_t)(j->off + (off_t)j->done), (uint64_t)(uintptr_t)j);
    if (ok)
        bump(&r->submitted, 1);
    return ok;
}

static void job_unlink(struct fut__uring *r, struct rjob *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        r->jobs = j->next;
    if (j->next)
        j->next->prev = j->prev;
    r->inflight--;
}

/* The size class of a LEN-byte bounce (LEN <= RING_MAX_LEN). */
static int class_of(size_t len)
{
    int c = 0;
    while (((size_t)1 << (SPARE_MIN_SHIFT + c)) < len)
        c++;
    return c;
}

static bool bounce_get(struct fut__uring *r, struct rjob *j)
{
    j->cls = class_of(j->len);
    struct spare *s = r->spare[j->cls];
    if (s) {
        r->spare[j->cls] = s->next;
        r->spare_bytes -= (size_t)1 << (SPARE_MIN_SHIFT + j->cls);
        j->bounce = (char *)s;
        return true;
    }
    j->bounce = xalloc((size_t)1 << (SPARE_MIN_SHIFT + j->cls));
    return j->bounce != NULL;
}

static void bounce_put(struct fut__uring *r, struct rjob *j)
{
    size_t n = (size_t)1 << (SPARE_MIN_SHIFT + j->cls);
    if (!j->bounce || r->spare_bytes + n > SPARE_MAX_BYTES) {
        xfree(j->bounce);
    } else {
        struct spare *s = (struct spare *)(void *)j->bounce;
        s->next = r->spare[j->cls];
        r->spare[j->cls] = s;
        r->spare_bytes += n;
    }
    j->bounce = NULL;
}

/* J is done with RES (bytes of its last read, or -errno): the caller's
 * buffer gets the bytes under a claim, or nothing if a cancel won. */
static void job_finish(struct fut__uring *r, struct rjob *j, int res)
{
    if (!j->p) {
        /* settled at shutdown */
    } else if (fut_promise_claim(j->p)) {
        if (res < 0) {
            fut_promise_settle_claimed(j->p, fut_fail(res));
        } else {
            if (j->done) /* DST may be NULL for a read of 0 bytes */
                memcpy(j->dst, j->bounce, j->done);
            fut_promise_settle_claimed(
                j->p, fut_ok_i64((int64_t)(j->done0 + j->done)));
        }
    } else {
        fut_promise_drop(j->p); /* cancelled: the buffer is not touched */
    }
    bounce_put(r, j);
    xfree(j);
}

static void complete(struct fut__uring *r, struct rjob *j, int res)
{
    if (!r->dead) {
        if (res == -EINTR || res == -EAGAIN) {
            if (submit(r, j))
                return;
        } else if (res > 0 && (j->done += (size_t)res) < j->len) {
            if (submit(r, j)) /* a short read: the rest, or 0 at EOF */
                return;
        }
    }
    job_unlink(r, j);
    job_finish(r, j, res > 0 ? 0 : res);
}

/* Takes every completion the kernel posted. */
static void reap(struct fut__uring *r)
{
    for (;;) {
        /* Relaxed head: we are its only writer (the kernel only reads
         * it).  Acquire tail: its partner is the kernel, whose
         * smp_store_release of the CQ tail (io_commit_cqring) comes after
         * it wrote the CQE, so the CQE read below is whole. */
        unsigned head = atomic_load_explicit(r->cq_head, memory_order_relaxed);
        if (head == atomic_load_explicit(r->cq_tail, memory_order_acquire))
            return;
        struct io_uring_cqe c = r->cqes[head & r->cq_mask];
        /* Release: our read of the CQE before the slot is given back.
         * The partner is the kernel: it reads the head before it writes a
         * CQE into a free slot (io_get_cqe: a control dependency on that
         * read, which its io_uring.c says a release store of the head
         * pairs with). */
        atomic_store_explicit(r->cq_head, head + 1, memory_order_release);
        if (c.user_data != CANCEL_TAG)
            complete(r, (struct rjob *)(uintptr_t)c.user_data, c.res);
    }
}

static void ring_free(struct fut__uring *r)
{
    for (int c = 0; c < SPARE_CLASSES; c++)
        while (r->spare[c]) {
            struct spare *s = r->spare[c];
            r->spare[c] = s->next;
            xfree(s);
        }
    close(r->efd);
    xfree(r);
}

static void arm(struct fut__uring *r);

/* The eventfd is readable (or the loop shut down: R is dead). */
static fut_result_t on_ready(void *arg, fut_t *src)
{
    struct fut__uring *r = arg;
    (void)src;
    r->armed = false;
    if (r->dead) {
        ring_free(r);
        return fut_ok(NULL);
    }
    eventfd_t v;
    (void)eventfd_read(r->efd, &v); /* before reaping: a later CQE re-arms */
    reap(r);
    arm(r);
    return fut_ok(NULL);
}

/* Waits for completions while jobs are in flight. */
static void arm(struct fut__uring *r)
{
    if (r->armed || !r->inflight)
        return;
    r->armed = true;
    fut_t *w = fut_fd_ready(r->ex, r->efd, FUT_READABLE);
    fut_release(fut_finally(w, fut_inline(), on_ready, r));
}

/* ---- the reads ---------------------------------------------------------- */

/* On L's thread: J into L's ring, or to the offload threads. */
static void start(struct loop *l, struct rjob *j)
{
    struct fut__uring *r = ring_of(l);
    if (r && r->inflight < r->entries && bounce_get(r, j)) {
        j->prev = NULL;
        j->next = r->jobs;
        if (r->jobs)
            r->jobs->prev = j;
        r->jobs = j;
        r->inflight++;
        if (submit(r, j)) {
            reap(r); /* a cached read completes inside io_uring_enter */
            arm(r);
            return;
        }
        job_unlink(r, j);
        bounce_put(r, j);
    }
    fut__io_offload_pread(j->p, j->fd, j->dst - j->done0, j->done0 + j->len,
                          j->off - (off_t)j->done0, j->done0);
    xfree(j);
}

static fut_result_t remote_task(void *arg)
{
    struct rjob *j = arg;
    start(fut__loop_tl, j);
    return fut_ok(NULL);
}

/* The loop refused or dropped remote_task: J never started (no memory
 * for the task: the bytes RWF_NOWAIT read, a short read, stand). */
static fut_result_t remote_dropped(void *arg, fut_t *src)
{
    struct rjob *j = arg;
    int err = fut_error(src);
    fut_promise_settle(j->p, err == FUT_ENOMEM && j->done0
                                 ? fut_ok_i64((int64_t)j->done0)
                                 : fut_fail(err));
    xfree(j);
    return fut_ok(NULL);
}

void fut__uring_pread(fut_executor_t *ex, fut_promise_t *p, int fd, char *buf,
                      size_t len, off_t off, size_t done)
{
    struct loop *l = fut_executor_impl(ex, &fut__loop_ops);
    struct rjob *j = xzalloc(sizeof *j);
    size_t left = len - done;
    if (!j) { /* the bytes read by RWF_NOWAIT, a short read, stand */
        fut_promise_settle(p, done ? fut_ok_i64((int64_t)done)
                                   : fut_fail(FUT_ENOMEM));
        return;
    }
    j->p = p;
    j->fd = fd;
    j->dst = buf + done;
    j->len = left;
    j->done0 = done;
    j->off = off + (off_t)done;
    if (left > RING_MAX_LEN) {
        fut__io_offload_pread(j->p, fd, buf, len, off, done);
        xfree(j);
        return;
    }
    if (fut__loop_tl == l) {
        start(l, j);
        return;
    }
    fut_t *t = fut_async(ex, remote_task, j);
    fut_release(fut_catch(t, fut_inline(), remote_dropped, j));
}

uint64_t fut__uring_submitted(fut_executor_t *ex)
{
    struct loop *l = fut_executor_impl(ex, &fut__loop_ops);
    struct fut__uring *r = l ? l->uring : NULL;
    return r && r != &g_no_ring
               ? atomic_load_explicit(&r->submitted, memory_order_relaxed)
               : 0;
}

/* ---- shutdown ----------------------------------------------------------- */

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Waits up to SHUTDOWN_WAIT_NS for R's jobs' completions (freeing them). */
static void drain(struct fut__uring *r)
{
    for (struct rjob *j = r->jobs; j; j = j->next)
        (void)push_sqe(r, IORING_OP_ASYNC_CANCEL, -1, (uint64_t)(uintptr_t)j, 0,
                       0, CANCEL_TAG);
    uint64_t end = mono_ns() + SHUTDOWN_WAIT_NS;
    while (r->inflight && mono_ns() < end) {
        struct __kernel_timespec ts = {0, 100 * 1000 * 1000};
        struct io_uring_getevents_arg a = {.ts = (uint64_t)(uintptr_t)&ts};
        (void)sys_enter(r->fd, 0, 1,
                        IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &a,
                        sizeof a);
        reap(r);
    }
}

void fut__uring_shutdown(struct loop *l)
{
    struct fut__uring *r = l->uring;
    l->uring = NULL;
    if (!r || r == &g_no_ring)
        return;
    r->dead = true;
    for (struct rjob *j = r->jobs; j; j = j->next) {
        fut_promise_settle(j->p, fut_fail(FUT_ESHUTDOWN));
        j->p = NULL;
    }
    drain(r);
    /* Jobs still in flight keep their bounces: the kernel may write there
     * until the ring's own teardown ends, so they are left allocated. */
    ring_close(r);
    if (!r->armed)
        ring_free(r);
}

/* In a child process, on a loop inherited from the parent (loop.c's
 * loop_destroy_forked): the ring is the parent's too (fork() shares the
 * kernel object), so nothing is submitted, cancelled or reaped here; the
 * child only lets go of its own copies: the ring's mappings and fd, the
 * eventfd, and the memory of the jobs and bounces (the kernel writes the
 * parent's reads into the parent's memory, never into the child's).  The
 * jobs' promises are the parent's futures: not touched. */
void fut__uring_destroy_forked(struct loop *l)
{
    struct fut__uring *r = l->uring;
    l->uring = NULL;
    if (!r || r == &g_no_ring)
        return;
    while (r->jobs) {
        struct rjob *j = r->jobs;
        r->jobs = j->next;
        xfree(j->bounce);
        xfree(j);
    }
    ring_close(r);
    ring_free(r);
}
