/* libfut — the event loop's fd readiness: fut_fd_ready, registration with
 * epoll, dispatch of events to waiters, cancellation.  Loop-thread code
 * except fut_fd_ready; the hand-off and wake-up protocol is loop.c's
 * (see the essay there).
 *
 * A waiter's life (struct fdw), all transitions on the loop thread:
 *
 *   W_REMOTE --register--> W_FD --event/error--> settled: freed at once
 *      |                    |                 \-> settle lost to a cancel:
 *      |                    |                      W_ORPHAN until on_fd_cancel
 *      |                    \--on_fd_cancel--> unlinked, freed (EPOLL_CTL_DEL
 *      |                                        if it was the fd's last)
 *      \--on_fd_cancel first: marked cancelled; register frees it
 *
 * EPOLLONESHOT: an event disarms the fd in the kernel, so a registration
 * nobody waits on never fires again, and a closed-and-reused fd number is
 * caught by arming with EPOLL_CTL_MOD (ENOENT -> ADD).  The price is one
 * epoll_ctl per arm (docs/BENCHMARKS.md, pingpong). */
#include "loop_impl.h"

/* ---- fd readiness (loop thread) ----------------------------------------- */

static void wl_append(struct wlist *ws, struct fdw *w)
{
    w->next = NULL;
    w->prev = ws->tail;
    if (ws->tail)
        ws->tail->next = w;
    else
        ws->head = w;
    ws->tail = w;
}

static void wl_unlink(struct wlist *ws, struct fdw *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        ws->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        ws->tail = w->prev;
    w->next = w->prev = NULL;
}

static struct wlist *home_of(struct loop *l, struct fdw *w)
{
    return w->where == W_FD ? &l->fds[w->fd].ws : &l->orphans;
}

static uint32_t to_epoll(unsigned events)
{
    return ((events & FUT_READABLE) ? EPOLLIN : 0u) |
           ((events & FUT_WRITABLE) ? EPOLLOUT : 0u);
}

static int grow_fds(struct loop *l, int fd)
{
    if ((size_t)fd < l->nfds)
        return 0;
    size_t n = l->nfds ? l->nfds : 64;
    while (n <= (size_t)fd)
        n *= 2;
    struct fdrec *r = xgrow(l->fds, l->nfds * sizeof *r, n * sizeof *r);
    if (!r)
        return FUT_ENOMEM;
    memset(r + l->nfds, 0, (n - l->nfds) * sizeof *r);
    l->fds = r;
    l->nfds = n;
    return 0;
}

/* Settles the waiters on list M (already unlinked) with their RES.  A waiter
 * whose future was cancelled first goes to the orphan list until
 * on_fd_cancel frees it. */
static void settle_list(struct loop *l, struct fdw *m)
{
    uint64_t t0 = fut__loop_mark(l);
    while (m) {
        struct fdw *w = m;
        m = w->next;
        int rc = fut_promise_settle(w->p, w->res);
        w->p = NULL;
        if (rc == 0) {
            xfree(w);
        } else {
            w->where = W_ORPHAN;
            wl_append(&l->orphans, w);
        }
        fut__loop_account(l, NULL, &t0);
    }
}

/* Makes the kernel watch FD for what its waiters want.  On failure every
 * waiter of FD is rejected with -errno. */
static void rearm(struct loop *l, int fd)
{
    struct fdrec *r = &l->fds[fd];
    uint32_t want = 0;
    for (struct fdw *w = r->ws.head; w; w = w->next)
        want |= to_epoll(w->events);
    if (!want || (r->armed & want) == want)
        return;
    struct epoll_event ev = {.events = want | EPOLLONESHOT,
                             .data.u64 = (uint64_t)fd};
    int op = r->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    int rc = epoll_ctl(l->epfd, op, fd, &ev);
    if (rc < 0 && (errno == ENOENT || errno == EEXIST)) {
        op = errno == ENOENT ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
        rc = epoll_ctl(l->epfd, op, fd, &ev);
    }
    if (rc == 0) {
        r->armed = want;
        r->registered = true;
        return;
    }
    int err = -errno;
    r->armed = 0;
    r->registered = false;
    struct fdw *m = r->ws.head;
    for (struct fdw *w = m; w; w = w->next)
        w->res = fut_fail(err);
    r->ws.head = r->ws.tail = NULL;
    settle_list(l, m);
}

/* Adds W to its fd's list and arms the fd (loop thread). */
static void register_here(struct loop *l, struct fdw *w)
{
    if (w->cancelled) { /* cancelled on its way here */
        xfree(w);
        return;
    }
    if (grow_fds(l, w->fd)) {
        w->res = fut_fail(FUT_ENOMEM);
        w->next = NULL;
        settle_list(l, w);
        return;
    }
    w->where = W_FD;
    wl_append(&l->fds[w->fd].ws, w);
    rearm(l, w->fd);
}

void fut__loop_drain_fds(struct loop *l)
{
    /* Relaxed peek, as in drain_tasks (loop.c). */
    if (!atomic_load_explicit(&l->rfd, memory_order_relaxed))
        return;
    /* Acquire: pairs with the release half of the CAS in fut_fd_ready. */
    struct fdw *w =
        atomic_exchange_explicit(&l->rfd, NULL, memory_order_acquire);
    REVERSE(struct fdw, w, next);
    while (w) {
        struct fdw *next = w->next;
        register_here(l, w);
        w = next;
    }
}

/* The error an EPOLLERR stands for: the socket's pending error, or EPIPE. */
static int fd_error(int fd)
{
    int e = 0;
    socklen_t len = sizeof e;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0 || e <= 0 ||
        e == ECANCELED)
        return -EPIPE;
    return -e;
}

static bool data_left(int fd)
{
    int n = 0;
    return ioctl(fd, FIONREAD, &n) == 0 && n > 0;
}

/* One epoll event for FD: settle the waiters it answers, re-arm for the
 * others. */
void fut__loop_dispatch(struct loop *l, int fd, uint32_t e)
{
    if ((size_t)fd >= l->nfds)
        return;
    struct fdrec *r = &l->fds[fd];
    r->armed = 0; /* EPOLLONESHOT disarmed it */
    int err = 0;
    if (e & EPOLLERR)
        err = fd_error(fd);
    else if (e & EPOLLHUP)
        err = -EPIPE;
    bool rd = (e & EPOLLIN) && (!err || data_left(fd));
    bool wr = (e & EPOLLOUT) && !err;
    struct fdw *m = NULL, **tail = &m;
    for (struct fdw *w = r->ws.head, *next; w; w = next) {
        next = w->next;
        unsigned ready = ((w->events & FUT_READABLE) && rd ? FUT_READABLE : 0) |
                         ((w->events & FUT_WRITABLE) && wr ? FUT_WRITABLE : 0);
        if (ready)
            w->res = fut_ok_i64(ready);
        else if (err)
            w->res = fut_fail(err);
        else
            continue;
        wl_unlink(&r->ws, w);
        *tail = w;
        tail = &w->next;
    }
    rearm(l, fd);
    settle_list(l, m);
}

/* The cancel hook: a fut_catch on the loop.  Runs on the loop thread for
 * every rejection or cancel of the readiness future; only a cancel (which
 * the loop never settles with) means W is still ours to look at. */
static fut_result_t on_fd_cancel(void *arg, fut_t *src)
{
    if (fut_error(src) != FUT_ECANCELED)
        return fut_ok(NULL); /* we settled it: W is gone */
    struct fdw *w = arg;
    struct loop *l = w->l;
    w->cancelled = true;
    if (w->p) {
        fut_promise_drop(w->p); /* consumes it; the future stays cancelled */
        w->p = NULL;
    }
    if (w->where == W_REMOTE)
        return fut_ok(NULL); /* register_here frees it */
    bool on_fd = w->where == W_FD;
    wl_unlink(home_of(l, w), w);
    int fd = w->fd;
    xfree(w);
    struct fdrec *r = on_fd ? &l->fds[fd] : NULL;
    if (r && !r->ws.head && r->registered) {
        epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
        r->registered = false;
        r->armed = 0;
    }
    return fut_ok(NULL);
}

fut_t *fut_fd_ready(fut_executor_t *ex, int fd, unsigned events)
{
    struct loop *l = fut_executor_impl(ex, &fut__loop_ops);
    if (!l || fd < 0 || !events || (events & ~(FUT_READABLE | FUT_WRITABLE)))
        return fut_ready(fut_fail(FUT_EINVAL));
    struct fdw *w = xzalloc(sizeof *w);
    if (!w)
        return fut_ready(fut_fail(FUT_ENOMEM));
    fut_t *f = fut_promise_new(&w->p);
    if (!w->p) {
        xfree(w);
        return f;
    }
    w->l = l;
    w->fd = fd;
    w->events = events;
    w->where = W_REMOTE;
    /* The cancel hook, attached before the loop can see W.  If this attach
     * fails (no memory) a cancel only stops being noticed early: the
     * waiter goes when the fd fires or the loop is destroyed. */
    fut_release(fut_catch(fut_retain(f), ex, on_fd_cancel, w));
    if (fut__loop_tl == l) {
        register_here(l, w);
        return f;
    }
    if (!gate_enter(l)) {
        fut_promise_settle(w->p, fut_fail(FUT_ESHUTDOWN));
        xfree(w); /* the settle was ours or the future was cancelled; either
                    way the hook found a closed loop and never runs */
        return f;
    }
    /* Relaxed: only a first guess for the CAS below. */
    struct fdw *h = atomic_load_explicit(&l->rfd, memory_order_relaxed);
    do
        w->next = h;
    /* seq_cst: release publishes W (acquire in drain_fds); Dekker. */
    while (!atomic_compare_exchange_weak_explicit(
        &l->rfd, &h, w, memory_order_seq_cst, memory_order_relaxed));
    wake_if_sleeping(l);
    gate_leave(l);
    return f;
}

/* Rejects every waiter still held with FUT_ESHUTDOWN and frees it: part of
 * the loop's shutdown, on the destroying thread.  The core refuses work for
 * the closed loop, so on_fd_cancel never runs for any of them. */
void fut__loop_fd_shutdown(struct loop *l)
{
    /* Acquire: pairs with the CAS in fut_fd_ready (our gate is closed). */
    struct fdw *w =
        atomic_exchange_explicit(&l->rfd, NULL, memory_order_acquire);
    struct fdw *all = NULL;
    while (w) {
        struct fdw *next = w->next;
        w->next = all;
        all = w;
        w = next;
    }
    for (size_t fd = 0; fd < l->nfds; fd++)
        while ((w = l->fds[fd].ws.head)) {
            wl_unlink(&l->fds[fd].ws, w);
            w->next = all;
            all = w;
        }
    while ((w = l->orphans.head)) {
        wl_unlink(&l->orphans, w);
        w->next = all;
        all = w;
    }
    while (all) {
        w = all;
        all = w->next;
        if (w->p)
            fut_promise_settle(w->p, fut_fail(FUT_ESHUTDOWN));
        xfree(w);
    }
}
