/* libfut — socket operations as futures: fut_read, fut_write, fut_accept,
 * fut_connect (<fut/io.h>), on any executor with fd readiness (the loop,
 * the libuv and GLib adapters, a custom one with an fd_ready op).
 * Executor-thread code, built on the executor kit alone (no lib/ header):
 * on the loop, its own fd layer's waits (fut__loop_fd_wait, loop_fd.c);
 * on any other executor, fut_fd_ready.  The per-fd queues of an executor
 * live in the loop's struct (its io field, freed by fut__loop_io_shutdown)
 * or, on any other executor, behind its handle's fut_kit_io_slot (never
 * freed: one table per executor that ever did socket I/O, reachable from
 * the handle, which lives for the process).  Each operation keeps its
 * home (struct io_home: the executor, the loop or NULL, the slot).  "The
 * loop thread" below is the executor's own thread: the thread inside the
 * loop's run, or one running the executor's work (fut_executor_current).
 *
 * PROTOCOL
 *
 * An operation (struct io_op) belongs to one fd and one of its two queues:
 * reads and accepts on side R, writes and connects on side W.  Only the
 * queue's head acts; the others wait their turn, so operations on one side
 * of an fd happen in the order they were made.  All queue state is the
 * loop thread's (on_thread), or the destroying thread's once no run can
 * start.
 *
 *   made on the loop thread, queue empty:  try the call at once on an
 *       operation on the caller's stack; done -> a settled future, no
 *       operation allocated at all (the fast path); else it is copied to
 *       the heap and queued
 *   on the loop only, a read on a DRAINED fd (its last read returned less
 *       than it asked: the socket's queue was emptied then) waits for
 *       readability first instead, as libuv does, which saves the EAGAIN
 *       call a request/response protocol would make each time; the flag
 *       clears when that read is made, and when fut_accept returns the
 *       fd's number (a new file: try first)
 *   made on another thread:  REMOTE, a task on the executor (start_task)
 *       adds it
 *
 *   REMOTE --start_task--> QUEUED --head--> HEAD: step()
 *   HEAD: claim F; system call; EAGAIN -> unclaim, wait (WAITING): on the
 *         loop its fd layer's wait without a future (op->w,
 *         fut__loop_fd_wait; wait_fire runs step() again); elsewhere a
 *         fut_fd_ready future watched by op->cont (fut_kit_watch;
 *         watch_fire runs step() again)
 *                                   done -> settle F (claimed), freed
 *         claim fails (a cancel won) -> ORPHAN until the hook runs
 *
 * The user's future F is a promise's, with a cancel hook on the executor
 * (fut_promise_on_cancel): when a cancel wins, on_cancel runs on the
 * loop thread exactly once (never once the executor is shut down).  Every
 * system call that touches the caller's buffer runs with F claimed
 * (fut_promise_claim, the executor kit): a cancel racing it waits for the
 * claim to end and then finds F settled (FUT_EALREADY, the result stands)
 * or let go (EAGAIN: the cancel wins and no call happens after it).
 *
 * Who frees an operation: step() when it settled F itself (the hook then
 * never runs); on_cancel when the cancel won (QUEUED: unlink; HEAD
 * waiting on the loop: it takes the wait off the fd, fut__loop_fd_unwait,
 * and frees; HEAD waiting elsewhere: it cancels the readiness future and
 * watch_fire frees; ORPHAN: unlink from the orphan list; LOST: enqueue
 * found no memory after the cancel won); start_task for a REMOTE one
 * already cancelled; start_failed for one whose start task the executor
 * refused or dropped; and on the loop fut__loop_io_shutdown for the rest
 * (a hook dropped at shutdown never runs), which takes a waiting head's
 * wait off its fd first.  The loop's wait is no future: the fd layer calls
 * wait_fire, on the loop thread, once.  On another executor there is no
 * shutdown call: its destroy rejects the head's readiness future
 * (FUT_ESHUTDOWN), watch_fire settles the head with it and pumps the
 * next, whose fut_fd_ready is refused in turn, so every queued operation
 * settles FUT_ESHUTDOWN; an ORPHAN or LOST one whose hook the destroy
 * dropped stays in the table.
 *
 * SPARES: FUT_ENOMEM means the operation did not happen (<fut/io.h>).
 * Whatever an operation may need to allocate after a system call that did
 * something is therefore made before that call: its fd's queues and, on
 * the loop, its fd table entry (room_for, also before a queued head's
 * first call), and, for the fast path, whose future and heap copy are
 * made only after its call, one spare pending promise and one spare
 * operation per executor (ready_for_call).  The fast path allocates as
 * before; only when that allocation fails after a call that read, wrote,
 * accepted or began a connect does the operation take the spare, and the
 * next fast-path operation makes a new one before its call (or rejects
 * FUT_ENOMEM, having done nothing). */
#include "loop_impl.h"

#include <fcntl.h>

#define CONTAINER(ptr, type, field)                                            \
    ((type *)(void *)((char *)(ptr)-offsetof(type, field)))

enum { SIDE_R = 0, SIDE_W = 1 };
enum { OP_READ, OP_WRITE, OP_ACCEPT, OP_CONNECT };
enum { S_REMOTE, S_QUEUED, S_HEAD, S_ORPHAN, S_LOST };
/* What a step of a system call found. */
enum { R_DONE, R_AGAIN_IN, R_AGAIN_OUT };

/* Where an operation's queues live: its executor, the loop's struct if
 * that is the loop (NULL on another executor with fd readiness), and the
 * pointer to the executor's queues (the loop's io field, or the handle's
 * fut_kit_io_slot). */
struct io_home {
    fut_executor_t *ex;
    struct loop *l;
    struct loop_io **slot;
};

struct io_op {
    struct io_op *next;
    struct io_home h;
    fut_promise_t *p; /* F's promise; NULL once consumed */
    fut_t *wait;      /* elsewhere: the pending readiness future, or NULL */
    bool waiting;     /* a readiness wait is pending (W or WAIT) */
    bool arming;      /* inside arm() on the loop: wait_fire only records */
    int kind, fd, state;
    bool hooked;     /* on_cancel ran: F is cancelled */
    bool notsock;    /* recv/send said ENOTSOCK: read/write from now on */
    bool connecting; /* connect(2) said EINPROGRESS */
    int again;       /* R_AGAIN_* found by the fast path, 0 if none */
    int wait_err;    /* the readiness wait's error, 0 if none */
    char *buf;
    size_t len, done;
    socklen_t alen;
    /* Set when OP waits, so neither zeroed nor copied before (submit). */
    union {
        struct fdw w;         /* the loop: our wait on the fd, WAITING */
        fut_kit_watch_t cont; /* elsewhere: our node on WAIT */
    };
    struct sockaddr_storage addr; /* OP_CONNECT's alone: not allocated else */
};

struct ioq {
    struct io_op *head[2], *tail[2];
    bool drained; /* the last read came back short: wait before reading */
};

struct loop_io {
    struct ioq *q;
    size_t n;
    struct io_op *orphans;
    /* Spares for the fast path (see SPARES above): a pending promise and
     * its future, and a full-size operation; NULL once used, made again
     * before the next fast-path call. */
    fut_t *spare_f;
    fut_promise_t *spare_p;
    struct io_op *spare_op;
    /* The fast path may call at once on an fd below this (ready_for_call):
     * the spares are there and the queues and (on the loop) the fd table
     * hold it; 0 once a spare is taken.  Tables only grow, so a bound
     * computed earlier stays true. */
    size_t ready_below;
};

static void pump(const struct io_home *h, int fd, int side);

/* True on EX's own thread, where the queues live: the thread inside the
 * loop's run, or one running EX's work (fut_executor_current). */
static bool on_thread(const struct io_home *h)
{
    return h->l ? fut__loop_tl == h->l : fut_executor_current() == h->ex;
}

static int side_of(int kind)
{
    return kind == OP_READ || kind == OP_ACCEPT ? SIDE_R : SIDE_W;
}

/* FD's queues, or NULL if FD has none yet (nothing ever queued). */
static struct ioq *queue_of(const struct io_home *h, int fd)
{
    struct loop_io *io = *h->slot;
    return io && (size_t)fd < io->n ? &io->q[fd] : NULL;
}

static struct ioq *queue_grow(const struct io_home *h, int fd)
{
    if (!*h->slot && !(*h->slot = xzalloc(sizeof(struct loop_io))))
        return NULL;
    struct loop_io *io = *h->slot;
    if ((size_t)fd >= io->n) {
        size_t n = io->n ? io->n : 64;
        while (n <= (size_t)fd)
            n *= 2;
        struct ioq *q = xgrow(io->q, io->n * sizeof *q, n * sizeof *q);
        if (!q)
            return NULL;
        memset(q + io->n, 0, (n - io->n) * sizeof *q);
        io->q = q;
        io->n = n;
    }
    return &io->q[fd];
}

/* Makes sure an operation on FD can wait and be queued without
 * allocating after its first system call: FD's queues, and on the loop
 * its fd table's entry.  False if there is no memory for them (a bad fd
 * is not refused here: its call says EBADF). */
static bool room_for(const struct io_home *h, int fd)
{
    if (!queue_grow(h, fd))
        return false;
    return !h->l || fut__loop_fd_room(h->l, fd) != FUT_ENOMEM;
}

/* True if room_for(H, FD) has nothing to do (the common case). */
static bool has_room(const struct io_home *h, int fd)
{
    const struct loop_io *io = *h->slot;
    return io && (size_t)fd < io->n && (!h->l || (size_t)fd < h->l->nfds);
}

/* True if the fast path may make its call on FD: room_for's part done and
 * the spares there.  Loop thread. */
static bool ready_for_call(const struct io_home *h, int fd)
{
    const struct loop_io *io = *h->slot;
    return io && (size_t)fd < io->ready_below;
}

/* Makes what ready_for_call wants; false if there is no memory for it.
 * Out of line: the fast path's frame stays small. */
static __attribute__((noinline)) bool make_ready(const struct io_home *h,
                                                 int fd)
{
    if (!room_for(h, fd))
        return false;
    struct loop_io *io = *h->slot;
    if (!io->spare_p) {
        io->spare_f = fut_promise_new(&io->spare_p);
        if (!io->spare_p)
            return false; /* spare_f is the shared FUT_ENOMEM future */
    }
    if (!io->spare_op && !(io->spare_op = xalloc(sizeof(struct io_op))))
        return false;
    /* FD itself may stay above it: a closed fd past the fd table (its
     * call fails EBADF, nothing to make room for) comes here each time. */
    size_t n = io->n;
    io->ready_below = h->l && h->l->nfds < n ? h->l->nfds : n;
    return true;
}

/* Lets go of H's spares (at shutdown). */
static void spares_free(struct loop_io *io)
{
    io->ready_below = 0;
    if (io->spare_p) {
        fut_promise_drop(io->spare_p);
        fut_release(io->spare_f);
    }
    xfree(io->spare_op);
    io->spare_p = NULL;
    io->spare_f = NULL;
    io->spare_op = NULL;
}

/* Notes what OP's finished call found that the next operation should
 * know (OP->done: bytes read, or the accepted fd + 1, 0 on an error): a
 * short read drains the fd, an accepted fd's number is a new file.  The
 * loop's alone: elsewhere no fd is ever marked drained.  Loop thread. */
static void note_result(const struct io_op *op)
{
    struct ioq *q;
    if (!op->h.l)
        return;
    if (op->kind == OP_READ && op->done && op->done < op->len) {
        if ((q = queue_grow(&op->h, op->fd)))
            q->drained = true; /* no memory: only the hint is lost */
    } else if (op->kind == OP_ACCEPT && op->done &&
               (q = queue_of(&op->h, (int)op->done - 1))) {
        q->drained = false;
    }
}

/* True if read OP should wait for readability before its first call (its
 * fd, whose queues are Q or NULL, drained), and clears the hint: the wait
 * is what it asked for. */
static bool wait_first(const struct io_op *op, struct ioq *q)
{
    if (op->kind != OP_READ || !q || !q->drained)
        return false;
    q->drained = false;
    return true;
}

/* ---- one system call ---------------------------------------------------- */

/* What one call found besides R_DONE and R_AGAIN_*. */
enum { R_RETRY = R_AGAIN_OUT + 1, R_ERRNO };

/* OP_CONNECT's call: connect(2), or once it said EINPROGRESS and the
 * socket turned writable, the handshake's outcome (SO_ERROR). */
static int connect_call(struct io_op *op, fut_result_t *res)
{
    if (op->connecting) {
        int e = 0;
        socklen_t el = sizeof e;
        if (getsockopt(op->fd, SOL_SOCKET, SO_ERROR, &e, &el))
            e = errno;
        *res = e ? fut_fail(-e) : fut_ok_i64(0);
        return R_DONE;
    }
    if (connect(op->fd, (struct sockaddr *)&op->addr, op->alen) == 0) {
        *res = fut_ok_i64(0);
        return R_DONE;
    }
    if (errno == EINPROGRESS || errno == EINTR) {
        op->connecting = true; /* EINTR: it goes on regardless */
        return R_AGAIN_OUT;
    }
    return R_ERRNO;
}

/* One system call of OP: R_DONE with *RES, R_AGAIN_OUT (a partial write,
 * a connect under way), R_RETRY (call again at once) or R_ERRNO. */
static int one_call(struct io_op *op, fut_result_t *res)
{
    ssize_t n;
    switch (op->kind) {
    case OP_READ:
        n = op->notsock ? read(op->fd, op->buf, op->len)
                        : recv(op->fd, op->buf, op->len, MSG_DONTWAIT);
        break;
    case OP_WRITE:
        if (op->done == op->len) {
            *res = fut_ok_i64((int64_t)op->len);
            return R_DONE;
        }
        n = op->notsock ? write(op->fd, op->buf + op->done, op->len - op->done)
                        : send(op->fd, op->buf + op->done, op->len - op->done,
                               MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0)
            return R_ERRNO;
        op->done += (size_t)n; /* short: the buffer is full, wait */
        return op->done < op->len ? R_AGAIN_OUT : R_RETRY;
    case OP_ACCEPT:
        n = accept4(op->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (n < 0 && errno == ECONNABORTED)
            return R_RETRY; /* that client left; the next may be there */
        break;
    default:
        return connect_call(op, res);
    }
    if (n < 0)
        return R_ERRNO;
    op->done = (size_t)n + (op->kind == OP_ACCEPT); /* for note_result */
    *res = fut_ok_i64(n);
    return R_DONE;
}

/* Tries OP's system call (EINTR retried).  R_DONE with *RES set, or
 * R_AGAIN_IN/OUT: wait for readability / writability. */
static int attempt(struct io_op *op, fut_result_t *res)
{
    /* Woken by a socket error (EPOLLERR: SO_ERROR, which the readiness
     * future read and so cleared): that is the answer.  A hang-up (-EPIPE)
     * is not: the call tells end of file or EPIPE itself. */
    if (op->wait_err && op->wait_err != -EPIPE) {
        *res = fut_fail(op->wait_err);
        return R_DONE;
    }
    for (;;) {
        int r = one_call(op, res);
        if (r == R_RETRY || (r == R_ERRNO && errno == EINTR))
            continue;
        if (r != R_ERRNO)
            return r;
        if (errno == ENOTSOCK && !op->notsock &&
            (op->kind == OP_READ || op->kind == OP_WRITE)) {
            op->notsock = true; /* a pipe, a tty: read(2), write(2) */
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            /* Woken by a hang-up, yet nothing to do: that is the answer
             * (else we would wait for ever on a dead fd). */
            if (op->wait_err) {
                *res = fut_fail(op->wait_err);
                return R_DONE;
            }
            return side_of(op->kind) == SIDE_R ? R_AGAIN_IN : R_AGAIN_OUT;
        }
        *res = fut_fail(-errno);
        return R_DONE;
    }
}

/* ---- the queue's head --------------------------------------------------- */

static void op_free(struct io_op *op)
{
    if (op->p)
        fut_promise_drop(op->p); /* F is cancelled: this only lets go */
    xfree(op);
}

static void wait_fire(struct fdw *w, int err);
static void watch_fire(fut_kit_watch_t *c, fut_t *src);

/* Removes OP (the head of its side) from its queue. */
static void pop_head(struct io_op *op)
{
    struct ioq *q = queue_of(&op->h, op->fd);
    int s = side_of(op->kind);
    q->head[s] = op->next;
    if (!q->head[s])
        q->tail[s] = NULL;
    op->next = NULL;
}

/* Makes OP wait for EVENTS on its fd: on the loop with its fd layer's
 * wait, elsewhere with a fut_fd_ready future.  False if the wait ended at
 * once (an error, no memory: OP->wait_err is set, step again). */
static bool arm(struct io_op *op, unsigned events)
{
    op->waiting = true;
    if (op->h.l) {
        op->arming = true;
        op->w.fire = wait_fire;
        fut__loop_fd_wait(op->h.l, &op->w, op->fd, events);
        op->arming = false;
        return op->waiting;
    }
    fut_t *w = fut_fd_ready(op->h.ex, op->fd, events);
    if (fut_state(w) != FUT_PENDING) {
        op->waiting = false;
        op->wait_err = fut_error(w) ? fut_error(w) : FUT_ENOMEM;
        fut_release(w);
        return false;
    }
    op->wait = w;
    fut_kit_watch(w, &op->cont, watch_fire); /* pending; only we settle it */
    return true;
}

/* Runs head OP as far as it goes without waiting.  True if OP is finished
 * (settled or found cancelled, and taken off the queue). */
static bool step(struct io_op *op)
{
    for (;;) {
        int r = op->again; /* the fast path's attempt said EAGAIN already */
        op->again = 0;
        if (!r) {
            if (!fut_promise_claim(op->p)) { /* a cancel won */
                pop_head(op);
                if (op->hooked) {
                    op_free(op);
                } else {
                    struct loop_io *io = *op->h.slot;
                    op->state = S_ORPHAN; /* until on_cancel comes */
                    op->next = io->orphans;
                    io->orphans = op;
                }
                return true;
            }
            fut_result_t res;
            r = wait_first(op, queue_of(&op->h, op->fd)) ? R_AGAIN_IN
                                                         : attempt(op, &res);
            if (r == R_DONE) {
                fut_promise_t *p = op->p;
                op->p = NULL;
                note_result(op);
                pop_head(op);
                xfree(op);
                fut_promise_settle_claimed(p, res);
                return true;
            }
            fut_promise_unclaim(op->p);
        }
        op->wait_err = 0;
        if (arm(op, r == R_AGAIN_IN ? FUT_READABLE : FUT_WRITABLE))
            return false;
    }
}

/* Steps the heads of FD's SIDE until one has to wait. */
static void pump(const struct io_home *h, int fd, int side)
{
    struct ioq *q;
    struct io_op *op;
    while ((q = queue_of(h, fd)) && (op = q->head[side]) && !op->waiting) {
        op->state = S_HEAD;
        if (!step(op))
            return;
    }
}

/* The loop: OP's readiness wait ended with ERR (0: ready), on the loop
 * thread. */
static void wait_fire(struct fdw *w, int err)
{
    struct io_op *op = CONTAINER(w, struct io_op, w);
    op->waiting = false;
    op->wait_err = err;
    if (!op->arming) { /* else arm() returns false and step() goes on */
        struct io_home h = op->h; /* OP may be freed below */
        pump(&h, op->fd, side_of(op->kind));
    }
}

/* Elsewhere: OP's readiness future settled (on the executor's thread; at
 * its destroy, FUT_ESHUTDOWN, on the destroying one). */
static void watch_fire(fut_kit_watch_t *c, fut_t *src)
{
    struct io_op *op = CONTAINER(c, struct io_op, cont);
    struct io_home h = op->h; /* OP may be freed below */
    fut_state_t st = fut_state(src);
    int err = fut_error(src);
    fut_release(op->wait);
    op->wait = NULL;
    op->waiting = false;
    if (st == FUT_CANCELLED && op->hooked) { /* on_cancel cancelled it */
        int fd = op->fd, side = side_of(op->kind);
        pop_head(op);
        op_free(op);
        pump(&h, fd, side);
        return;
    }
    op->wait_err = st == FUT_FULFILLED ? 0 : err ? err : FUT_ECANCELED;
    pump(&h, op->fd, side_of(op->kind));
}

/* Adds OP to its queue and runs it if it is the head (loop thread). */
static void enqueue(struct io_op *op)
{
    /* Before its first call (a REMOTE one's): afterwards it could not
     * fail without leaving a call done. */
    bool room = has_room(&op->h, op->fd) || room_for(&op->h, op->fd);
    struct ioq *q = room ? queue_of(&op->h, op->fd) : NULL;
    if (!q) {
        int rc = fut_promise_settle(op->p, fut_fail(FUT_ENOMEM));
        op->p = NULL;
        if (rc == 0 || op->hooked)
            xfree(op);
        else
            op->state = S_LOST; /* cancelled: on_cancel is coming */
        return;
    }
    int s = side_of(op->kind);
    op->state = S_QUEUED;
    op->next = NULL;
    if (q->tail[s])
        q->tail[s]->next = op;
    else
        q->head[s] = op;
    q->tail[s] = op;
    struct io_home h = op->h; /* pump may free OP */
    pump(&h, op->fd, s);
}

/* ---- cancellation and hand-off ------------------------------------------ */

/* F's cancel hook: a cancel won (loop thread, once). */
static fut_result_t on_cancel(void *arg, fut_t *src)
{
    (void)src;
    struct io_op *op = arg;
    op->hooked = true;
    struct io_op **pp;
    switch (op->state) {
    case S_QUEUED:
    case S_ORPHAN: {
        pp = op->state == S_ORPHAN
                 ? &(*op->h.slot)->orphans
                 : &queue_of(&op->h, op->fd)->head[side_of(op->kind)];
        struct io_op *prev = NULL;
        while (*pp != op) {
            prev = *pp;
            pp = &(*pp)->next;
        }
        *pp = op->next;
        if (op->state == S_QUEUED) {
            struct ioq *q = queue_of(&op->h, op->fd);
            if (q->tail[side_of(op->kind)] == op)
                q->tail[side_of(op->kind)] = prev;
        }
        op_free(op);
        break;
    }
    case S_HEAD: /* waiting: a head that runs cannot be cancelled here */
        if (op->waiting && !op->h.l) {
            fut_cancel(op->wait); /* watch_fire frees OP */
        } else if (op->waiting) {
            struct io_home h = op->h;
            int fd = op->fd, side = side_of(op->kind);
            fut__loop_fd_unwait(h.l, &op->w, false);
            pop_head(op);
            op_free(op);
            pump(&h, fd, side);
        }
        break;
    case S_LOST: /* enqueue found no memory after the cancel won */
        xfree(op);
        break;
    default: /* S_REMOTE: start_task frees it */
        break;
    }
    return fut_ok(NULL);
}

/* Runs on the loop: a REMOTE operation joins its queue. */
static fut_result_t start_task(void *arg)
{
    struct io_op *op = arg;
    if (op->hooked)
        op_free(op); /* cancelled before it got here */
    else
        enqueue(op);
    return fut_ok_i64(1);
}

/* The loop refused or dropped start_task: OP never got there. */
static fut_result_t start_failed(void *arg, fut_t *src)
{
    struct io_op *op = arg;
    fut_promise_settle(op->p, fut_fail(fut_error(src)));
    op->p = NULL;
    xfree(op);
    return fut_ok(NULL);
}

/* ---- making operations -------------------------------------------------- */

/* OP's future: a promise with the cancel hook; then OP starts here or is
 * handed to the loop thread.  BEGAN: the fast path's call did something
 * (a partial write, a connect under way), so no memory takes the spare
 * promise (SPARES) instead of failing. */
static fut_t *launch(struct io_op *op, bool began)
{
    fut_t *f = fut_promise_new(&op->p);
    if (FUT__UNLIKELY(!op->p) && began) {
        struct loop_io *io = *op->h.slot;
        f = io->spare_f;
        op->p = io->spare_p;
        io->spare_f = NULL;
        io->spare_p = NULL;
        io->ready_below = 0;
    }
    if (!op->p) {
        xfree(op);
        return f;
    }
    op->wait = NULL;
    op->waiting = false;
    op->hooked = false;
    op->wait_err = 0;
    fut_promise_on_cancel(op->p, op->h.ex, on_cancel, op);
    if (on_thread(&op->h)) {
        enqueue(op);
        return f;
    }
    op->state = S_REMOTE;
    fut_t *s = fut_async(op->h.ex, start_task, op);
    fut_release(fut_catch(s, fut_inline(), start_failed, op));
    return f;
}

/* F, fut_ready's answer for RES (the result of a fast-path call that did
 * its work), is FUT_ENOMEM: a failed allocation, or RES itself.  RES goes
 * out through the spare promise instead (SPARES).  Loop thread. */
static __attribute__((noinline)) fut_t *
from_spare(const struct io_home *h, fut_t *f, const fut_result_t *res)
{
    struct loop_io *io = *h->slot;
    fut_release(f); /* the shared FUT_ENOMEM future, or a -ENOMEM result */
    f = io->spare_f;
    fut_promise_settle(io->spare_p, *res); /* not shared: cannot lose */
    io->spare_f = NULL;
    io->spare_p = NULL;
    io->ready_below = 0;
    return f;
}

/* The fast path: on the loop thread with nothing queued on FD's SIDE, one
 * attempt; a settled future if it did it all (or found no memory for the
 * spares before its call: FUT_ENOMEM), else NULL (and *OP keeps what was
 * done: a partial write).  OP is the caller's (on its stack): an
 * operation done at once is never allocated. */
static fut_t *try_now(struct io_op *op)
{
    if (!on_thread(&op->h))
        return NULL;
    struct ioq *q = queue_of(&op->h, op->fd);
    if (q && q->head[side_of(op->kind)])
        return NULL;
    if (FUT__UNLIKELY(!ready_for_call(&op->h, op->fd))) {
        if (!make_ready(&op->h, op->fd))
            return fut_ready(fut_fail(FUT_ENOMEM)); /* nothing done */
        q = queue_of(&op->h, op->fd);
    }
    fut_result_t res;
    int r = wait_first(op, q) ? R_AGAIN_IN : attempt(op, &res);
    if (r != R_DONE) {
        op->again = r;
        return NULL;
    }
    note_result(op);
    /* RES holds no owned value (fut_ok_i64, fut_fail): from_spare may
     * reuse it after fut_ready disposed of it. */
    fut_t *f = fut_ready(res);
    if (FUT__UNLIKELY(fut_error(f) == FUT_ENOMEM))
        f = from_spare(&op->h, f, &res);
    return f;
}

/* Checks the loop, makes the operation and starts it. */
static fut_t *submit(fut_executor_t *ex, int kind, int fd, const void *buf,
                     size_t len, const struct sockaddr *addr, socklen_t alen)
{
    /* The loop keeps the queues in its own struct; any other executor
     * with fd readiness in its handle's slot. */
    struct loop *l = fut_executor_impl(ex, &fut__loop_ops);
    struct loop_io **slot =
        l ? &l->io : (struct loop_io **)fut_kit_io_slot(ex);
    if (!slot || fd < 0)
        return fut_ready(fut_fail(FUT_EINVAL));
    size_t size =
        kind == OP_CONNECT ? sizeof(struct io_op) : offsetof(struct io_op, addr);
    /* The fast path's; copied to the heap if it waits (the wait's fields
     * are set only when it waits). */
    struct io_op now;
    size_t head = offsetof(struct io_op, w);
    memset(&now, 0, head);
    now.h = (struct io_home){ex, l, slot};
    now.kind = kind;
    now.fd = fd;
    now.buf = (char *)(uintptr_t)buf; /* a write never writes through it */
    now.len = len;
    if (addr) {
        memcpy(&now.addr, addr, alen);
        now.alen = alen;
    }
    fut_t *f = try_now(&now);
    if (f)
        return f;
    /* A write's prefix is out, or a connect under way: a failed allocation
     * now takes the spare (SPARES), which try_now made sure of. */
    bool began = now.done || now.connecting;
    struct io_op *op = xalloc(size);
    if (FUT__UNLIKELY(!op) && began) {
        op = (*slot)->spare_op;
        (*slot)->spare_op = NULL;
        (*slot)->ready_below = 0;
    }
    if (!op) /* nothing done */
        return fut_ready(fut_fail(FUT_ENOMEM));
    memcpy(op, &now, head);
    if (addr)
        memcpy(&op->addr, addr, alen);
    return launch(op, began);
}

fut_t *fut_read(fut_executor_t *loop, int fd, void *buf, size_t len)
{
    if (!buf || !len)
        return fut_ready(fut_fail(FUT_EINVAL));
    return submit(loop, OP_READ, fd, buf, len, NULL, 0);
}

fut_t *fut_write(fut_executor_t *loop, int fd, const void *buf, size_t len)
{
    if (!buf && len)
        return fut_ready(fut_fail(FUT_EINVAL));
    return submit(loop, OP_WRITE, fd, buf, len, NULL, 0);
}

fut_t *fut_accept(fut_executor_t *loop, int listen_fd)
{
    return submit(loop, OP_ACCEPT, listen_fd, NULL, 0, NULL, 0);
}

fut_t *fut_connect(fut_executor_t *loop, int fd, const struct sockaddr *addr,
                   socklen_t addrlen)
{
    if (!addr || !addrlen || addrlen > sizeof(struct sockaddr_storage))
        return fut_ready(fut_fail(FUT_EINVAL));
    return submit(loop, OP_CONNECT, fd, NULL, 0, addr, addrlen);
}

/* ---- shutdown ----------------------------------------------------------- */

void fut__loop_io_shutdown(struct loop *l)
{
    fut__uring_shutdown(l); /* fut_pread's ring (io_uring.c) */
    struct loop_io *io = l->io;
    if (!io)
        return;
    for (size_t fd = 0; fd < io->n; fd++)
        for (int s = 0; s < 2; s++) {
            struct io_op *op = io->q[fd].head[s];
            while (op) {
                struct io_op *next = op->next;
                fut_promise_settle(op->p, fut_fail(FUT_ESHUTDOWN));
                op->p = NULL;
                if (op->waiting)
                    fut__loop_fd_unwait(l, &op->w, true);
                xfree(op);
                op = next;
            }
        }
    while (io->orphans) {
        struct io_op *op = io->orphans;
        io->orphans = op->next;
        op_free(op);
    }
    spares_free(io);
    xfree(io->q);
    xfree(io);
    l->io = NULL;
}
