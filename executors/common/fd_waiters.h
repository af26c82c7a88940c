/* libfut — fd readiness as the event loop (executors/loop/loop_fd.c) and
 * the host-loop adapters (executors/host/host_fd.h) both do it, kept once:
 * a waiter of fut_fd_ready (or of an I/O operation) and its lists, the fd
 * table's growth, answering waiters from a readiness report, settling them
 * (an orphan when a cancel won), the cancel hook's first half, and what a
 * socket's error or hang-up means.  Header-only (static inline functions),
 * built on public headers only, so neither the loop nor the adapters
 * depend on the other.  Not installed.
 *
 * All of it is the executor thread's (the loop's, or the host loop's
 * inside a session), or the destroying thread's once none can run: no
 * atomics here.  A waiter's life is the same in both:
 *
 *   FDW_REMOTE --register--> FDW_FD --answered--> settled: freed
 *      |                       |              \-> a cancel settled the
 *      |                       |                  future first: FDW_ORPHAN
 *      |                       |                  until the hook frees it
 *      |                       \--hook--> unlinked, freed; the fd refitted
 *      \--hook first: marked cancelled; register frees it
 *
 * What differs stays with each, because the registrations differ.  The
 * loop keeps epoll registrations level-triggered and persistent from one
 * wait to the next (a chain pays no epoll_ctl per step), which forces it to
 * reason about entries the kernel keeps for a closed and reused number:
 * trust rounds, generations, rebuilds (the essay of loop_fd.c).  A host
 * (libuv's uv_poll_t, a GLib unix fd) offers a watcher to start and stop,
 * and the adapters stop it as soon as no waiter is left, so there is no
 * stale registration to reason about.  The hand-off from other threads
 * differs too: the loop drains a lock-free stack of waiters each round,
 * an adapter receives each waiter as a task through the core. */
#ifndef FUT_FD_WAITERS_H
#define FUT_FD_WAITERS_H

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <fut.h>

enum { FDW_REMOTE = 0, FDW_FD, FDW_ORPHAN };

/* One fut_fd_ready future's waiter (P set), or an I/O operation's own wait
 * on the loop (FIRE set, P NULL, embedded in its operation). */
struct fdw {
    struct fdw *next, *prev; /* on a list; NEXT links hand-offs and the
                                lists being settled too */
    void *owner;             /* the loop, or the adapter's host_fds */
    fut_promise_t *p;        /* NULL once consumed */
    /* An operation's wait: called instead of settling a promise. */
    void (*fire)(struct fdw *w, int err);
    int fd;
    unsigned events; /* FUT_READABLE|FUT_WRITABLE */
    int where;       /* FDW_* */
    bool cancelled;  /* the cancel hook ran */
    /* The outcome, while being settled: -errno, or 0 and READY. */
    int err;
    unsigned ready;
};

struct fdw_list {
    struct fdw *head, *tail;
};

/* A new waiter of OWNER for EVENTS on FD, on its way to registration:
 * FIRE NULL for a future's (its promise, W->p, is the caller's to set),
 * else an operation's. */
static inline void fdw_init(struct fdw *w, void *owner, int fd, unsigned events,
                            void (*fire)(struct fdw *, int))
{
    w->next = w->prev = NULL;
    w->owner = owner;
    w->fire = fire;
    w->fd = fd;
    w->events = events;
    w->where = FDW_REMOTE;
    w->cancelled = false;
    w->err = 0;
    w->ready = 0;
}

static inline void fdw_append(struct fdw_list *ws, struct fdw *w)
{
    w->next = NULL;
    w->prev = ws->tail;
    if (ws->tail)
        ws->tail->next = w;
    else
        ws->head = w;
    ws->tail = w;
}

static inline void fdw_unlink(struct fdw_list *ws, struct fdw *w)
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

/* Empties WS onto the front of *ALL (linked through next). */
static inline void fdw_move_all(struct fdw_list *ws, struct fdw **all)
{
    struct fdw *w;
    while ((w = ws->head)) {
        fdw_unlink(ws, w);
        w->next = *all;
        *all = w;
    }
}

/* Takes every waiter off WS, each with outcome ERR; returns them linked
 * through next, in order. */
static inline struct fdw *fdw_take_all(struct fdw_list *ws, int err)
{
    struct fdw *m = ws->head;
    for (struct fdw *w = m; w; w = w->next)
        w->err = err;
    ws->head = ws->tail = NULL;
    return m;
}

/* What WS's waiters want together (FUT_READABLE|FUT_WRITABLE). */
static inline unsigned fdw_wanted(const struct fdw_list *ws)
{
    unsigned want = 0;
    for (const struct fdw *w = ws->head; w; w = w->next)
        want |= w->events;
    return want;
}

/* Room for FD in an fd table of N records of REC bytes at TAB: 0 with
 * *GROWN and *GROWN_N (TAB and N if FD fits; else a table twice as long as
 * needed, the old records copied, the new ones zeroed, TAB freed), -EBADF
 * (or another -errno) for a number that is not an open fd, FUT_ENOMEM.  A
 * number beyond the table is shown to the kernel (one fcntl) before the
 * table grows: a bad number (10^8 never opened, INT_MAX) costs that call
 * and no memory, and an open one is below RLIMIT_NOFILE, which bounds the
 * table as it bounds the kernel's own. */
static inline int fdw_table_room(void *tab, size_t n, size_t rec, int fd,
                                 void **grown, size_t *grown_n)
{
    *grown = tab;
    *grown_n = n;
    if (fd >= 0 && (size_t)fd < n)
        return 0;
    if (fcntl(fd, F_GETFD) < 0)
        return -errno;
    size_t m = n ? n : 64;
    while (m <= (size_t)fd)
        m *= 2;
    char *r = fut_alloc(m * rec);
    if (!r)
        return FUT_ENOMEM;
    if (n)
        memcpy(r, tab, n * rec);
    memset(r + n * rec, 0, (m - n) * rec);
    fut_free(tab);
    *grown = r;
    *grown_n = m;
    return 0;
}

/* The error a socket's error report stands for: its pending error (reading
 * it clears it), -EBADF for a closed number, else -EPIPE (also for
 * ECANCELED, which a reader would take for libfut's cancellation). */
static inline int fdw_sock_error(int fd)
{
    int e = 0;
    socklen_t len = sizeof e;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0)
        return errno == EBADF ? -EBADF : -EPIPE;
    return e > 0 && e != ECANCELED ? -e : -EPIPE;
}

/* True if FD has bytes left to read: a reader is still served after a
 * hang-up or an error while data is queued. */
static inline bool fdw_data_left(int fd)
{
    int n = 0;
    return ioctl(fd, FIONREAD, &n) == 0 && n > 0;
}

/* Takes off WS, in order, the waiters a readiness report on FD answers,
 * and appends them at **TAILP (a list linked through next), leaving *TAILP
 * at the last one's next: one that wants a bit of READY gets those bits;
 * if FAILED (an error or a hang-up), every other one gets ERR_OF(FD, HOW),
 * called once, at the first waiter that needs it.  A socket's error is
 * cleared by reading it, so it is read for someone or not at all: read for
 * nobody, or beside data a reader still gets, the next recv would see end
 * of file instead of ECONNRESET (tests/test_io_reset.c). */
static inline void fdw_answer(struct fdw_list *ws, unsigned ready, bool failed,
                              int (*err_of)(int, unsigned), int fd,
                              unsigned how, struct fdw ***tailp)
{
    struct fdw **tail = *tailp;
    int err = 0;
    for (struct fdw *w = ws->head, *next; w; w = next) {
        next = w->next;
        unsigned got = w->events & ready;
        if (got)
            w->err = 0, w->ready = got;
        else if (failed)
            w->err = err ? err : (err = err_of(fd, how));
        else
            continue;
        fdw_unlink(ws, w);
        *tail = w;
        tail = &w->next;
    }
    *tailp = tail;
}

/* Settles W's promise with its outcome (FUT_READABLE|FUT_WRITABLE bits, or
 * the error) and consumes it.  True: settled, the caller frees W.  False:
 * a cancel settled the future first, so its hook is coming: W waits for it
 * on ORPHANS (FDW_ORPHAN). */
static inline bool fdw_settle(struct fdw *w, struct fdw_list *orphans)
{
    int rc = fut_promise_settle(w->p, w->err ? fut_fail(w->err)
                                             : fut_ok_i64(w->ready));
    w->p = NULL;
    if (rc == 0)
        return true;
    w->where = FDW_ORPHAN;
    fdw_append(orphans, w);
    return false;
}

/* The cancel hook's first half (fut_promise_on_cancel: a cancel won on W's
 * future; the executor's thread, once): marks W and lets go of its promise
 * (the future stays cancelled).  Returns where W is: FDW_REMOTE (not
 * registered yet, and the registration frees it: nothing more to do),
 * FDW_FD (on its fd's list) or FDW_ORPHAN (on the orphan list); the caller
 * unlinks and frees it then, and refits the fd if it was on one. */
static inline int fdw_cancelled(struct fdw *w)
{
    w->cancelled = true;
    if (w->p) {
        fut_promise_drop(w->p); /* consumes it; the future stays cancelled */
        w->p = NULL;
    }
    return w->where;
}

#endif
