/* libfut — fd readiness for the host-loop adapters (executors/uv,
 * executors/glib): the waiters of fut_fd_ready, one host registration per
 * fd for both directions, cancellation and shutdown.  Header-only (static
 * functions), like host_queue.h; built on public headers only.  The
 * adapter supplies the registration itself (struct host_fd_ops: a
 * uv_poll_t, a GLib unix fd tag) and calls host_fd_event from its host
 * callback.  The waiters, their lists, the table's growth, answering and
 * settling them and the cancel hook's first half are shared with the
 * loop (executors/common/fd_waiters.h, which also says why registration
 * differs).
 *
 * PROTOCOL
 *
 * Everything here is session state (host_queue.h): touched on the thread
 * that runs the host loop inside a session, or by the adapter's destroy
 * once no session can run.  A waiter (struct fdw, owner: the host_fds) is
 * a promise with a cancel hook (fut_promise_on_cancel) on the adapter, and
 * lives as fd_waiters.h draws it.
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

#include "../common/fd_waiters.h"
#include "host_queue.h"

struct host_fdrec {
    struct fdw_list ws;
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
    struct fdw_list orphans;
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

/* Makes room for FD (fdw_table_room): 0, -EBADF for a number that is not
 * an open fd, or FUT_ENOMEM. */
static inline int host_fd_grow(struct host_fds *fs, int fd)
{
    if (fd >= 0 && (size_t)fd < fs->n)
        return 0;
    void *t;
    size_t n;
    int err = fdw_table_room(fs->recs, fs->n, sizeof *fs->recs, fd, &t, &n);
    fs->recs = t;
    fs->n = n;
    return err;
}

/* Settles the (unlinked) waiters on list M with their outcome; one whose
 * future a cancel settled first waits for its hook on the orphan list. */
static inline void host_fd_settle_list(struct host_fds *fs, struct fdw *m)
{
    while (m) {
        struct fdw *w = m;
        m = w->next;
        if (fdw_settle(w, &fs->orphans))
            fut_free(w);
    }
}

/* Fits FD's registration to what its waiters want (AGAIN: afresh).  On a
 * failure every waiter of FD rejects with it. */
static inline void host_fd_refit(struct host_fds *fs, int fd, bool again)
{
    struct host_fdrec *r = &fs->recs[fd];
    unsigned want = fdw_wanted(&r->ws);
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
        host_fd_settle_list(fs, fdw_take_all(&r->ws, err));
}

/* Adds W to its fd's waiters and fits the registration (session). */
static inline void host_fd_register(struct host_fds *fs, struct fdw *w)
{
    if (w->cancelled) { /* the hook came first */
        fut_free(w);
        return;
    }
    int err = host_fd_grow(fs, w->fd);
    if (err) {
        w->err = err;
        w->next = NULL;
        host_fd_settle_list(fs, w);
        return;
    }
    w->where = FDW_FD;
    fdw_append(&fs->recs[w->fd].ws, w);
    host_fd_refit(fs, w->fd, false);
}

/* The host reported FD (session): READY (FUT_READABLE|FUT_WRITABLE) serves
 * the waiters that want it; if FAILED, every other waiter rejects with
 * ERR_OF(FD, HOW), read only if one needs it (fdw_answer). */
static inline void host_fd_event(struct host_fds *fs, int fd, unsigned ready,
                                 bool failed, int (*err_of)(int, unsigned),
                                 unsigned how)
{
    struct host_fdrec *r = host_fd_rec(fs, fd);
    if (!r)
        return;
    struct fdw *m = NULL, **tail = &m;
    fdw_answer(&r->ws, ready, failed, err_of, fd, how, &tail);
    host_fd_refit(fs, fd, false);
    host_fd_settle_list(fs, m);
}

/* The cancel hook: a cancel won on W's future (loop thread, in a session
 * of the adapter, once). */
static fut_result_t host_fd_on_cancel(void *arg, fut_t *src)
{
    (void)src;
    struct fdw *w = arg;
    struct host_fds *fs = w->owner;
    int where = fdw_cancelled(w);
    if (where == FDW_REMOTE)
        return fut_ok(NULL); /* host_fd_register frees it */
    int fd = w->fd;
    fdw_unlink(where == FDW_FD ? &fs->recs[fd].ws : &fs->orphans, w);
    fut_free(w);
    if (where == FDW_FD)
        host_fd_refit(fs, fd, true); /* none left: stop; else afresh */
    return fut_ok(NULL);
}

static fut_result_t host_fd_remote(void *arg)
{
    struct fdw *w = arg;
    host_fd_register(w->owner, w);
    return fut_ok(NULL);
}

/* The adapter refused or dropped host_fd_remote (shut down): W never got
 * there, and its hook never runs. */
static fut_result_t host_fd_remote_failed(void *arg, fut_t *src)
{
    struct fdw *w = arg;
    if (w->p)
        fut_promise_settle(w->p, fut_fail(fut_error(src)));
    fut_free(w);
    return fut_ok(NULL);
}

/* The adapter's fd_ready op (any thread, inside the core's guard). */
static inline fut_t *host_fd_ready(struct host_fds *fs, int fd, unsigned events)
{
    struct fdw *w = fut_alloc(sizeof *w);
    if (!w)
        return fut_ready(fut_fail(FUT_ENOMEM));
    fut_t *f = fut_promise_new(&w->p);
    if (!w->p) {
        fut_free(w);
        return f;
    }
    fdw_init(w, fs, fd, events, NULL);
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
        struct fdw *m = fdw_take_all(&r->ws, FUT_ESHUTDOWN);
        while (m) {
            struct fdw *w = m;
            m = w->next;
            fut_promise_settle(w->p, fut_fail(w->err));
            fut_free(w); /* a cancel that won: its hook never runs now */
        }
        if (r->watching)
            fs->ops->unwatch(fs->a, (int)fd, r);
        r->watching = 0;
        if (r->watch)
            fs->ops->release(fs->a, (int)fd, r);
        r->watch = NULL;
    }
    struct fdw *all = NULL;
    fdw_move_all(&fs->orphans, &all);
    while (all) {
        struct fdw *w = all;
        all = w->next;
        fut_free(w);
    }
    fut_free(fs->recs);
    fs->recs = NULL;
    fs->n = 0;
}

#endif
