/* libfut — fd readiness for the host-loop adapters (executors/uv,
 * executors/glib): the waiters of fut_fd_ready, one host registration per
 * fd for both directions, cancellation and shutdown.  Header-only (static
 * functions), like host_queue.h; built on public headers only.  The
 * adapter supplies the registration itself (struct host_fd_ops: a
 * uv_poll_t, a GLib unix fd tag) and calls host_fd_event from its host
 * callback.
 *
 * PROTOCOL
 *
 * Everything here is session state (host_queue.h): touched on the thread
 * that runs the host loop inside a session, or by the adapter's destroy
 * once no session can run.  A waiter (struct host_fdw) is a promise with a
 * cancel hook (fut_promise_on_cancel) on the adapter:
 *
 *   HW_REMOTE --register--> HW_FD --event/error--> settled: freed
 *      |                      |                \-> the settle lost to a
 *      |                      |                    cancel: HW_ORPHAN until
 *      |                      |                    the hook frees it
 *      |                      \--hook--> unlinked, freed; the fd refitted
 *      \--hook first: marked cancelled; register frees it
 *
 * A waiter made on another thread reaches the loop thread as a task
 * (fut_async on the adapter); if the adapter refuses or drops that task
 * (shut down), a fut_catch on fut_inline() settles the waiter with the
 * error and frees it.  The hook never runs once the adapter is shut down
 * (the core refuses it), so the destroy frees what is left.
 *
 * Registration.  R->watching is what the host watches FD for: the union
 * of what the fd's waiters want, or 0 when none wait (the registration is
 * stopped as soon as the last waiter leaves, so the host never reports an
 * fd nobody waits on, and a number closed and reused later starts from a
 * fresh registration).  A cancel that leaves other waiters re-registers
 * the fd afresh (AGAIN): the callback that cancelled may have closed the
 * number and got it back for another file, which the old registration
 * does not see. */
#ifndef FUT_HOST_FD_H
#define FUT_HOST_FD_H

#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "host_queue.h"

enum { HW_REMOTE, HW_FD, HW_ORPHAN };

struct host_fds;

/* One fut_fd_ready future's waiter. */
struct host_fdw {
    struct host_fdw *next, *prev;
    struct host_fds *fs;
    fut_promise_t *p; /* NULL once consumed */
    int fd;
    unsigned events; /* FUT_READABLE|FUT_WRITABLE */
    int where;       /* HW_* */
    bool cancelled;  /* the hook ran */
    fut_result_t res;
};

struct host_wlist {
    struct host_fdw *head, *tail;
};

struct host_fdrec {
    struct host_wlist ws;
    unsigned watching; /* what the host watches FD for; 0: stopped */
    void *watch;       /* the adapter's registration, NULL if none made */
};

struct host_fd_ops {
    /* Makes the host watch FD for EVENTS (not 0) in place of
     * R->watching; AGAIN: the number may be another file now, register
     * afresh.  0, or -errno (then nothing is watched). */
    int (*watch)(void *a, int fd, struct host_fdrec *r, unsigned events,
                 bool again);
    /* Stops watching FD (R->watching != 0); R->watch may be kept. */
    void (*unwatch)(void *a, int fd, struct host_fdrec *r);
    /* Lets go of R->watch (not NULL) for good: the adapter's destroy. */
    void (*release)(void *a, int fd, struct host_fdrec *r);
};

struct host_fds {
    struct host_queue *q;
    const struct host_fd_ops *ops;
    void *a; /* the adapter, for OPS */
    struct host_fdrec *recs;
    size_t n;
    struct host_wlist orphans;
};

static inline void host_fd_init(struct host_fds *fs, struct host_queue *q,
                                const struct host_fd_ops *ops, void *a)
{
    memset(fs, 0, sizeof *fs);
    fs->q = q;
    fs->ops = ops;
    fs->a = a;
}

/* FD's record, or NULL if FD was never registered. */
static inline struct host_fdrec *host_fd_rec(struct host_fds *fs, int fd)
{
    return fd >= 0 && (size_t)fd < fs->n ? &fs->recs[fd] : NULL;
}

/* The error a host's "error on FD" stands for: the socket's pending
 * error, or -EPIPE (as the loop's). */
static inline int host_fd_error(int fd)
{
    int e = 0;
    socklen_t len = sizeof e;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0)
        return errno == EBADF ? -EBADF : -EPIPE;
    return e > 0 ? -e : -EPIPE;
}

/* True if FD has bytes left to read (a reader is still served after a
 * hang-up, as on the loop). */
static inline bool host_fd_data_left(int fd)
{
    int n = 0;
    return ioctl(fd, FIONREAD, &n) == 0 && n > 0;
}

static inline void host_wl_append(struct host_wlist *ws, struct host_fdw *w)
{
    w->next = NULL;
    w->prev = ws->tail;
    if (ws->tail)
        ws->tail->next = w;
    else
        ws->head = w;
    ws->tail = w;
}

static inline void host_wl_unlink(struct host_wlist *ws, struct host_fdw *w)
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

/* Makes room for FD: 0, -EBADF for a number that is not an open fd (the
 * kernel is asked before the table grows: a bad number costs no memory),
 * or FUT_ENOMEM. */
static inline int host_fd_grow(struct host_fds *fs, int fd)
{
    if ((size_t)fd < fs->n)
        return 0;
    if (fcntl(fd, F_GETFD) < 0)
        return -errno;
    size_t n = fs->n ? fs->n : 64;
    while (n <= (size_t)fd)
        n *= 2;
    struct host_fdrec *r = fut_alloc(n * sizeof *r);
    if (!r)
        return FUT_ENOMEM;
    if (fs->n)
        memcpy(r, fs->recs, fs->n * sizeof *r);
    memset(r + fs->n, 0, (n - fs->n) * sizeof *r);
    fut_free(fs->recs);
    fs->recs = r;
    fs->n = n;
    return 0;
}

/* Settles the (unlinked) waiters on list M with their RES; one whose
 * future a cancel settled first waits for its hook on the orphan list. */
static inline void host_fd_settle_list(struct host_fds *fs, struct host_fdw *m)
{
    while (m) {
        struct host_fdw *w = m;
        m = w->next;
        int rc = fut_promise_settle(w->p, w->res);
        w->p = NULL;
        if (rc == 0) {
            fut_free(w);
        } else {
            w->where = HW_ORPHAN;
            host_wl_append(&fs->orphans, w);
        }
    }
}

/* Takes every waiter of R off its list, each with result ERR. */
static inline struct host_fdw *host_fd_take_all(struct host_fdrec *r, int err)
{
    struct host_fdw *m = r->ws.head;
    for (struct host_fdw *w = m; w; w = w->next)
        w->res = fut_fail(err);
    r->ws.head = r->ws.tail = NULL;
    return m;
}

/* Fits FD's registration to what its waiters want (AGAIN: afresh).  On a
 * failure every waiter of FD rejects with it. */
static inline void host_fd_refit(struct host_fds *fs, int fd, bool again)
{
    struct host_fdrec *r = &fs->recs[fd];
    unsigned want = 0;
    for (struct host_fdw *w = r->ws.head; w; w = w->next)
        want |= w->events;
    if (!want) {
        if (r->watching)
            fs->ops->unwatch(fs->a, fd, r);
        r->watching = 0;
        return;
    }
    if (want == r->watching && !again)
        return;
    int err = fs->ops->watch(fs->a, fd, r, want, again);
    r->watching = err ? 0 : want;
    if (err)
        host_fd_settle_list(fs, host_fd_take_all(r, err));
}

/* Adds W to its fd's waiters and fits the registration (session). */
static inline void host_fd_register(struct host_fds *fs, struct host_fdw *w)
{
    if (w->cancelled) { /* the hook came first */
        fut_free(w);
        return;
    }
    int err = host_fd_grow(fs, w->fd);
    if (err) {
        w->res = fut_fail(err);
        w->next = NULL;
        host_fd_settle_list(fs, w);
        return;
    }
    w->where = HW_FD;
    host_wl_append(&fs->recs[w->fd].ws, w);
    host_fd_refit(fs, w->fd, false);
}

/* The host reported FD (session): READY (FUT_READABLE|FUT_WRITABLE) or
 * ERR (< 0: every waiter not served by READY rejects with it). */
static inline void host_fd_event(struct host_fds *fs, int fd, unsigned ready,
                                 int err)
{
    struct host_fdrec *r = host_fd_rec(fs, fd);
    if (!r)
        return;
    struct host_fdw *m = NULL, **tail = &m;
    for (struct host_fdw *w = r->ws.head, *next; w; w = next) {
        next = w->next;
        unsigned got = w->events & ready;
        if (got)
            w->res = fut_ok_i64(got);
        else if (err)
            w->res = fut_fail(err);
        else
            continue;
        host_wl_unlink(&r->ws, w);
        *tail = w;
        tail = &w->next;
    }
    host_fd_refit(fs, fd, false);
    host_fd_settle_list(fs, m);
}

/* The cancel hook: a cancel won on W's future (loop thread, in a session
 * of the adapter, once). */
static fut_result_t host_fd_on_cancel(void *arg, fut_t *src)
{
    (void)src;
    struct host_fdw *w = arg;
    struct host_fds *fs = w->fs;
    w->cancelled = true;
    if (w->p) {
        fut_promise_drop(w->p); /* lets go; the future stays cancelled */
        w->p = NULL;
    }
    if (w->where == HW_REMOTE)
        return fut_ok(NULL); /* host_fd_register frees it */
    int fd = w->fd;
    bool on_fd = w->where == HW_FD;
    host_wl_unlink(on_fd ? &fs->recs[fd].ws : &fs->orphans, w);
    fut_free(w);
    if (on_fd)
        host_fd_refit(fs, fd, true); /* none left: stop; else afresh */
    return fut_ok(NULL);
}

static fut_result_t host_fd_remote(void *arg)
{
    struct host_fdw *w = arg;
    host_fd_register(w->fs, w);
    return fut_ok(NULL);
}

/* The adapter refused or dropped host_fd_remote (shut down): W never got
 * there, and its hook never runs. */
static fut_result_t host_fd_remote_failed(void *arg, fut_t *src)
{
    struct host_fdw *w = arg;
    if (w->p)
        fut_promise_settle(w->p, fut_fail(fut_error(src)));
    fut_free(w);
    return fut_ok(NULL);
}

/* The adapter's fd_ready op (any thread, inside the core's guard). */
static inline fut_t *host_fd_ready(struct host_fds *fs, int fd,
                                   unsigned events)
{
    struct host_fdw *w = fut_alloc(sizeof *w);
    if (!w)
        return fut_ready(fut_fail(FUT_ENOMEM));
    memset(w, 0, sizeof *w);
    fut_t *f = fut_promise_new(&w->p);
    if (!w->p) {
        fut_free(w);
        return f;
    }
    w->fs = fs;
    w->fd = fd;
    w->events = events;
    w->where = HW_REMOTE;
    /* Set before anyone sees F; cannot fail (fresh promise, live EX). */
    fut_promise_on_cancel(w->p, fs->q->ex, host_fd_on_cancel, w);
    if (host_on_thread(fs->q)) {
        host_fd_register(fs, w);
        return f;
    }
    fut_t *s = fut_async(fs->q->ex, host_fd_remote, w);
    fut_release(fut_catch(s, fut_inline(), host_fd_remote_failed, w));
    return f;
}

/* The adapter's destroy, no session running: every waiter rejects
 * FUT_ESHUTDOWN, every registration is stopped and released. */
static inline void host_fd_shutdown(struct host_fds *fs)
{
    for (size_t fd = 0; fd < fs->n; fd++) {
        struct host_fdrec *r = &fs->recs[fd];
        struct host_fdw *m = host_fd_take_all(r, FUT_ESHUTDOWN);
        while (m) {
            struct host_fdw *w = m;
            m = w->next;
            fut_promise_settle(w->p, w->res);
            fut_free(w); /* a cancel that won: its hook never runs now */
        }
        if (r->watching)
            fs->ops->unwatch(fs->a, (int)fd, r);
        r->watching = 0;
        if (r->watch)
            fs->ops->release(fs->a, (int)fd, r);
        r->watch = NULL;
    }
    while (fs->orphans.head) {
        struct host_fdw *w = fs->orphans.head;
        host_wl_unlink(&fs->orphans, w);
        fut_free(w);
    }
    fut_free(fs->recs);
    fs->recs = NULL;
    fs->n = 0;
}

#endif
