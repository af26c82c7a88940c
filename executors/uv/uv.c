/* libfut-uv — an executor that runs libfut work on a libuv loop's thread,
 * written only against the public headers (<fut.h>, the executor kit).
 *
 * PROTOCOL
 *
 * The queues, the timer hand-off and the wake-once-per-burst rule are
 * executors/host/host_queue.h's.  On the uv side:
 *   - one uv_async_t (WAKE), active and referenced while the executor
 *     lives.  Its callback is the session that takes handed-over timer
 *     starts and cancels and runs a batch of tasks; if tasks remain it
 *     sends itself once more, so the host loop polls between batches.
 *   - one uv_timer_t per started libfut timer (struct utimer), started on
 *     the loop thread with the deadline rounded up to a millisecond.  libuv
 *     measures from its cached time, which may lag, so the callback checks
 *     fut_now_ns() against the deadline and restarts for the rest if early:
 *     a timer never fires before its deadline.
 *   - tasks submitted inside a session go to the local FIFO, with no atomic
 *     and no wake: the session runs them before it ends.
 *   - fd readiness (fut_fd_ready): the waiters are host_fd.h's; each fd
 *     watched gets one uv_poll_t (struct upoll), made on its first wait
 *     and kept, started for the union of what its waiters want and
 *     stopped when none is left (each uv_poll_start is a fresh epoll
 *     registration: libuv stops the poll first).  libuv aborts the process when epoll_ctl
 *     refuses a watcher, so a stopped poll is restarted only after the
 *     number was shown to the kernel (fcntl): a closed fd rejects -EBADF
 *     instead.  Its callback is a session: the waiters it settles run
 *     their continuations in the same batch.
 *
 * Shutdown.  fut_executor_destroy closes the core's gate (no other thread
 * calls our ops any more), then uv_destroy, on the loop thread outside any
 * session (the header's rule): every queued task is dropped and every
 * timer given back (FUT_ESHUTDOWN), every fd wait rejected
 * (FUT_ESHUTDOWN), and the handles are uv_close'd.  Their
 * close callbacks free the memory: the struct goes with the last of them,
 * so the application runs the loop once more before uv_loop_close. */
#include <fut/uv.h>

#include <stdint.h>
#include <stdlib.h>

#include "../host/host_fd.h"
#include "../host/host_queue.h"

struct fut_uv {
    struct host_queue q; /* first: the session's pointer is the struct's */
    uv_loop_t *loop;
    uv_async_t wake;
    size_t closing; /* handles not closed yet: WAKE, and the timers and
                       polls being closed; the last close callback frees
                       the struct */
    struct host_fds fds;
};

/* One fd's uv_poll_t (host_fdrec.watch). */
struct upoll {
    uv_poll_t h;
    struct fut_uv *u;
    int fd;
};

struct utimer {
    struct host_timer h; /* first */
    uv_timer_t ut;
    struct fut_uv *u;
    bool inited; /* ut was uv_timer_init'ed (then freed by its close cb) */
};

static void maybe_free(struct fut_uv *u)
{
    if (--u->closing == 0)
        fut_free(u);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct utimer *n = h->data;
    struct fut_uv *u = n->u;
    fut_free(n);
    maybe_free(u);
}

static void close_timer(struct utimer *n)
{
    if (!n->inited) {
        fut_free(n);
        return;
    }
    n->u->closing++;
    uv_close((uv_handle_t *)&n->ut, on_timer_closed);
}

/* ---- timers (loop thread) ------------------------------------------------ */

static void on_timer(uv_timer_t *ut);

/* Starts N's uv timer for the rest of its deadline, rounded up to a ms. */
static void arm(struct utimer *n)
{
    uint64_t now = fut_now_ns(), dl = n->h.t->deadline_ns;
    uint64_t ms = dl > now ? (dl - now + 999999) / 1000000 : 0;
    uv_update_time(n->u->loop);
    uv_timer_start(&n->ut, on_timer, ms, 0);
}

static void start_timer(struct fut_uv *u, struct utimer *n)
{
    uv_timer_init(u->loop, &n->ut);
    n->ut.data = n;
    n->inited = true;
    n->h.state = HT_ACTIVE;
    host_timer_link(&u->q, &n->h);
    arm(n);
}

static void drain_starts(struct fut_uv *u)
{
    for (struct host_timer *h = host_take_starts(&u->q), *next; h; h = next) {
        next = h->link;
        start_timer(u, (struct utimer *)h);
    }
}

/* Gives T back after a cancel: both holds if still started, else the
 * second only. */
static void cancel_now(struct fut_uv *u, fut_timer_t *t)
{
    struct utimer *n = (struct utimer *)(uintptr_t)t->slot;
    if (n && n->h.state == HT_QUEUED)
        drain_starts(u); /* its start is on the stack (header) */
    if (n) {
        uv_timer_stop(&n->ut);
        host_timer_unlink(&n->h);
        t->slot = 0;
        close_timer(n);
        fut_timer_drop(t);
    }
    fut_timer_drop(t);
}

static void drain_cancels(struct fut_uv *u)
{
    for (fut_timer_t *t = host_take_cancels(&u->q), *next; t; t = next) {
        next = t->next;
        cancel_now(u, t);
    }
}

/* ---- sessions ------------------------------------------------------------- */

static int poll_error(int fd, unsigned how);

/* A session: takes handed-over timer starts and cancels, fires FIRE (if
 * not NULL) or reports fd FD (if >= 0: READY, or FAILED), runs a batch. */
static void run_session(struct fut_uv *u, fut_timer_t *fire, int fd,
                        unsigned ready, bool failed)
{
    struct host_session s;
    host_session_begin(&s, &u->q);
    drain_starts(u);
    drain_cancels(u);
    if (fire)
        host_fire(&u->q, fire);
    if (fd >= 0)
        host_fd_event(&u->fds, fd, ready, failed, poll_error, 0);
    bool more = host_run_batch(&u->q);
    host_session_end(&s);
    if (more)
        uv_async_send(&u->wake); /* come back after the host polls */
}

static void on_wake(uv_async_t *a)
{
    struct fut_uv *u = a->data;
    host_bump(&u->q.n_wakes, 1);
    run_session(u, NULL, -1, 0, false);
}

static void on_timer(uv_timer_t *ut)
{
    struct utimer *n = ut->data;
    struct fut_uv *u = n->u;
    fut_timer_t *t = n->h.t;
    if (fut_now_ns() < t->deadline_ns) { /* uv's clock lagged: not yet */
        arm(n);
        return;
    }
    host_timer_unlink(&n->h);
    t->slot = 0;
    close_timer(n);
    run_session(u, t, -1, 0, false);
}

/* ---- fd readiness (loop thread) ----------------------------------------- */

/* The error a poll that libuv stopped on an error stands for: the socket's
 * (fdw_sock_error). */
static int poll_error(int fd, unsigned how)
{
    (void)how;
    return fdw_sock_error(fd);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct upoll *p = h->data;
    struct fut_uv *u = p->u;
    if (status < 0) {
        /* libuv stopped the poll (an error on the fd, POLLERR). */
        host_fd_rec(&u->fds, p->fd)->watching = 0;
        host_bump(&u->q.n_fd, 1);
        run_session(u, NULL, p->fd, 0, true);
        return;
    }
    unsigned ready = ((events & UV_READABLE) ? FUT_READABLE : 0u) |
                     ((events & UV_WRITABLE) ? FUT_WRITABLE : 0u);
    host_bump(&u->q.n_fd, 1);
    run_session(u, NULL, p->fd, ready, false);
}

static int poll_watch(void *a, int fd, struct host_fdrec *r, unsigned events,
                      bool again)
{
    struct fut_uv *u = a;
    struct upoll *p = r->watch;
    if (!p) {
        if (!(p = fut_alloc(sizeof *p)))
            return FUT_ENOMEM;
        int rc = uv_poll_init(u->loop, &p->h, fd); /* checks FD itself */
        if (rc) {
            fut_free(p);
            return rc;
        }
        p->h.data = p;
        p->u = u;
        p->fd = fd;
        r->watch = p;
    } else if (!r->watching || again) {
        if (fcntl(fd, F_GETFD) < 0)
            return -errno; /* closed: libuv would abort on it */
    }
    /* libuv's start stops the poll first (epoll_ctl DEL) and registers it
     * again in its next poll (ADD), so a restart (AGAIN) sees the file
     * that has the number now. */
    return uv_poll_start(&p->h,
                         ((events & FUT_READABLE) ? UV_READABLE : 0) |
                             ((events & FUT_WRITABLE) ? UV_WRITABLE : 0),
                         on_poll);
}

static void poll_unwatch(void *a, int fd, struct host_fdrec *r)
{
    (void)a;
    (void)fd;
    uv_poll_stop(&((struct upoll *)r->watch)->h);
}

static void on_poll_closed(uv_handle_t *h)
{
    struct upoll *p = h->data;
    struct fut_uv *u = p->u;
    fut_free(p);
    maybe_free(u);
}

static void poll_release(void *a, int fd, struct host_fdrec *r)
{
    (void)fd;
    struct fut_uv *u = a;
    struct upoll *p = r->watch;
    u->closing++;
    uv_close((uv_handle_t *)&p->h, on_poll_closed);
}

static const struct host_fd_ops poll_ops = {
    .watch = poll_watch, .unwatch = poll_unwatch, .release = poll_release};

static fut_t *uv_fd_ready(void *impl, int fd, unsigned events)
{
    return host_fd_ready(&((struct fut_uv *)impl)->fds, fd, events);
}

/* ---- ops ------------------------------------------------------------------ */

static int uv_submit(void *impl, fut_task_t *task)
{
    struct fut_uv *u = impl;
    if (host_on_thread(&u->q)) {
        host_push_local(&u->q, task);
        return 0;
    }
    if (host_push_task(&u->q, task))
        uv_async_send(&u->wake);
    return 0;
}

static int uv_timer_start_op(void *impl, fut_timer_t *t)
{
    struct fut_uv *u = impl;
    struct utimer *n = fut_alloc(sizeof *n);
    if (!n)
        return FUT_ENOMEM;
    memset(n, 0, sizeof *n);
    n->u = u;
    n->h.t = t;
    n->h.state = HT_QUEUED;
    t->slot = (size_t)(uintptr_t)n;
    if (host_on_thread(&u->q))
        start_timer(u, n);
    else if (host_push_start(&u->q, &n->h))
        uv_async_send(&u->wake);
    return 0;
}

static void uv_timer_cancel_op(void *impl, fut_timer_t *t)
{
    struct fut_uv *u = impl;
    if (host_on_thread(&u->q))
        cancel_now(u, t);
    else if (host_push_cancel(&u->q, t))
        uv_async_send(&u->wake);
}

static int uv_stats(void *impl, fut_stats_t *out)
{
    return host_stats(&((struct fut_uv *)impl)->q, out);
}

static void on_wake_closed(uv_handle_t *h)
{
    maybe_free(h->data);
}

static void uv_destroy(void *impl)
{
    struct fut_uv *u = impl;
    host_drop_tasks(&u->q);
    drain_starts(u);
    drain_cancels(u);
    while (u->q.timers.next != &u->q.timers) {
        struct utimer *n = (struct utimer *)u->q.timers.next;
        fut_timer_t *t = n->h.t;
        uv_timer_stop(&n->ut);
        host_timer_unlink(&n->h);
        t->slot = 0;
        close_timer(n);
        fut_timer_drop(t);
    }
    host_drop_tasks(&u->q); /* what the drops above may have queued */
    host_fd_shutdown(&u->fds);
    host_drop_tasks(&u->q);
    uv_close((uv_handle_t *)&u->wake, on_wake_closed);
}

static const fut_executor_ops_t uv_ops = {
    .name = "uv",
    .flags = FUT_EXECUTOR_NO_BLOCK,
    .submit = uv_submit,
    .destroy = uv_destroy,
    .stats = uv_stats,
    .timer_start = uv_timer_start_op,
    .timer_cancel = uv_timer_cancel_op,
    .fd_ready = uv_fd_ready,
};

int fut_uv_create(fut_executor_t **out, uv_loop_t *loop)
{
    if (!out || !loop)
        return FUT_EINVAL;
    struct fut_uv *u = fut_alloc(sizeof *u);
    if (!u)
        return FUT_ENOMEM;
    host_init(&u->q, "uv");
    host_fd_init(&u->fds, &u->q, &poll_ops, u);
    u->loop = loop;
    u->closing = 1; /* WAKE */
    int rc = uv_async_init(loop, &u->wake, on_wake);
    if (rc) {
        fut_free(u);
        return rc;
    }
    u->wake.data = u;
    rc = fut_executor_create(&u->q.ex, &uv_ops, u);
    if (rc) {
        uv_close((uv_handle_t *)&u->wake, on_wake_closed);
        return rc;
    }
    *out = u->q.ex;
    return 0;
}
