/* libfut — the event loop's fd readiness: fut_fd_ready, registration with
 * epoll, dispatch of events to waiters, cancellation.  Loop-thread code
 * except fut_fd_ready; the hand-off and wake-up protocol is loop.c's
 * (see the essay there).  The waiters themselves, their lists and what
 * this file shares with the host-loop adapters are
 * executors/common/fd_waiters.h's.
 *
 * A waiter's life (struct fdw), all transitions on the loop thread:
 *
 *   FDW_REMOTE --register--> FDW_FD --event/error--> settled: freed at once
 *      |                      |               \-> settle lost to a cancel:
 *      |                      |                   FDW_ORPHAN until on_fd_cancel
 *      |                      \--on_fd_cancel--> unlinked, freed
 *      |                                (EPOLL_CTL_DEL if it was the fd's last)
 *      \--on_fd_cancel first: marked cancelled; register frees it
 *
 * Registration is level-triggered and persistent, as libuv's: an fd stays
 * in the epoll set between one readiness future and the next, so a chain
 * (wait readable, read, write, wait readable again) costs no epoll_ctl per
 * step.  epoll never tells us that the application closed an fd (the
 * kernel drops the registration silently when the last dup closes) and
 * the number may come back as another file, so keeping a registration is
 * a bet, made under these rules:
 *
 *   - A new waiter on an fd with no waiter is kept on the old registration
 *     without a syscall (TRUSTED) only if the fd's last waiter settled in
 *     this poll round or the previous one (idle_round), i.e. the chain goes
 *     on.  Otherwise the registration is validated with EPOLL_CTL_MOD
 *     (ENOENT: the fd was closed, ADD the new file; EEXIST on ADD: MOD).
 *   - A trusted fd goes on vq.  An event for it confirms the bet.  A loop
 *     that would sleep with fds on vq sleeps at most TRUST_GRACE_NS (1 ms,
 *     loop.c), and if nothing came it validates them
 *     (fut__loop_fd_validate: a MOD each); a busy loop validates those
 *     trusted two polls ago without an event since
 *     (fut__loop_fd_prepoll).  So a number closed and reused within one
 *     round (a server accepting into the number it just closed) is at
 *     worst seen two rounds or 1 ms late, never lost; and a keep-alive
 *     server whose clients answer within the grace pays no MOD.
 *   - An event that settles nobody (spurious: the chain ended while the fd
 *     stays ready, a hang-up nobody waits for, a stale registration)
 *     narrows the registration to what the waiters still want, or deletes
 *     it.  If the kernel says ENOENT/EBADF there, the event came from a
 *     stale entry (the old file lives on in a dup and its number is now
 *     another file or none) that no epoll_ctl can reach: rebuild_epoll
 *     makes a fresh epoll set and re-registers every fd that has waiters.
 *   - Each registration's events carry a generation (tag = gen << 32 | fd;
 *     each ADD makes a new one).  An event whose generation is not the
 *     fd's current one, or for an fd we believe unregistered, came from an
 *     entry we no longer own: rebuild_epoll, and the rest of that batch is
 *     dropped (level-triggered: what is still ready reports again).
 *   - A stale entry of a dup'd old file fires with the generation we still
 *     trust, so events cannot confirm a bet for ever: a registration is
 *     trusted for VALIDATE_ROUNDS rounds after its last epoll_ctl at most,
 *     then validated (ENOENT -> ADD, a new generation; the stale entry's
 *     next event then triggers the rebuild).  Until then such an entry can
 *     report readiness of the old file to the new one's waiters: the one
 *     case where a readiness future may fulfil spuriously (a number closed
 *     and reused within one round while a dup of the old file lives).
 *   - A cancel that leaves an fd without waiters deletes its registration
 *     at once (test_fd_cancel_deregisters: no event after a cancel); one
 *     that leaves waiters validates it, since the hook runs after the
 *     callback that cancelled, which may have closed the number, got it
 *     back and waited on it again (test_fd_reused_after_*).
 *   - A number beyond the fd table is shown to the kernel (fcntl) before
 *     the table grows for it: a bad fd costs one syscall, no memory.
 *   - A waiter still pending when its fd is closed is the application's
 *     error, as with any epoll loop (cancel it first): it never fires.
 *
 * An I/O operation (loop_io.c) waits with a waiter of its own, embedded in
 * it and without a promise (fut__loop_fd_wait): settling it calls its FIRE
 * on the loop thread, and the operation's cancel or shutdown takes it off
 * the fd directly (fut__loop_fd_unwait), so it is never an orphan and
 * never freed here.  Registration and trust are the same for both kinds. */
#include "loop_impl.h"

#include <fcntl.h>

/* ---- waiter blocks ------------------------------------------------------
 * A chain step makes and frees one waiter; on the loop thread they come
 * from, and go back to, a small loop-owned free list instead of malloc.
 * Other threads (fut_fd_ready from outside, destroy) use the allocator. */

#define WFREE_MAX 64

static struct fdw *fdw_new(struct loop *l)
{
    struct fdw *w;
    if (fut__loop_tl == l && (w = l->wfree)) { /* loop-thread state */
        l->wfree = w->next;
        l->wfree_n--;
        return w;
    }
    return xalloc(sizeof *w);
}

static void fdw_free(struct loop *l, struct fdw *w)
{
    if (fut__loop_tl == l && l->wfree_n < WFREE_MAX) {
        w->next = l->wfree;
        l->wfree = w;
        l->wfree_n++;
        return;
    }
    xfree(w);
}

void fut__loop_fdw_free_all(struct loop *l)
{
    while (l->wfree) {
        struct fdw *w = l->wfree;
        l->wfree = w->next;
        xfree(w);
    }
    l->wfree_n = 0;
}

/* ---- fd readiness (loop thread) ----------------------------------------- */

static struct fdw_list *home_of(struct loop *l, struct fdw *w)
{
    return w->where == FDW_FD ? &l->fds[w->fd].ws : &l->orphans;
}

static uint32_t to_epoll(unsigned events)
{
    return ((events & FUT_READABLE) ? EPOLLIN : 0u) |
           ((events & FUT_WRITABLE) ? EPOLLOUT : 0u);
}

/* Makes room for FD in the fd table (fdw_table_room: a bad number costs
 * one fcntl and no memory): 0, -EBADF for a number that is not an open
 * fd, or FUT_ENOMEM. */
static int grow_fds(struct loop *l, int fd)
{
    if (fd >= 0 && (size_t)fd < l->nfds)
        return 0;
    void *t;
    size_t n;
    int err = fdw_table_room(l->fds, l->nfds, sizeof *l->fds, fd, &t, &n);
    l->fds = t;
    l->nfds = n;
    return err;
}

int fut__loop_fd_room(struct loop *l, int fd)
{
    return grow_fds(l, fd);
}

/* Settles the waiters on list M (already unlinked) with their outcome (an
 * operation's wait: its FIRE call).  A waiter whose future was cancelled
 * first goes to the orphan list until on_fd_cancel frees it. */
static void settle_list(struct loop *l, struct fdw *m)
{
    /* Loop thread, inside fut_loop_run: its kit run marks this thread as
     * the loop's own, so the continuations we hand the loop skip the
     * core's guard for foreign threads (two locked instructions a step). */
    fut__loop_time_begin(l);
    while (m) {
        struct fdw *w = m;
        m = w->next;
        if (w->fire) { /* its owner may free W or wait again on the fd */
            w->fire(w, w->err);
            fut__loop_time_end(l, NULL);
            continue;
        }
        if (fdw_settle(w, &l->orphans))
            fdw_free(l, w);
        fut__loop_time_end(l, NULL);
    }
}

/* Trust a registration this many rounds.  The price of each bound: a busy
 * chain on an fd pays one EPOLL_CTL_MOD per VALIDATE_ROUNDS rounds (at 64,
 * 0.064 syscalls per pingpong round trip, about 1% of its time; at 512,
 * 0.008), and the corner case above (a number closed and reused within a
 * round while a dup of the old file lives) is woken spuriously for up to
 * VALIDATE_ROUNDS rounds, a millisecond or two of idle rounds. */
#define VALIDATE_ROUNDS 512

static uint32_t wanted(const struct fdrec *r)
{
    return to_epoll(fdw_wanted(&r->ws));
}

/* Registers FD for WANT (level-triggered): MOD if we believe the kernel
 * knows it, else ADD, each falling back to the other on ENOENT/EEXIST
 * (closed and reused numbers).  0 or -errno; on failure FD counts as not
 * registered. */
static int kernel_set(struct loop *l, int fd, uint32_t want)
{
    struct fdrec *r = &l->fds[fd];
    int op = r->kmask ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, rc;
    for (int tries = 0;; tries++) {
        uint32_t gen = op == EPOLL_CTL_ADD ? r->gen + 1 : r->gen;
        struct epoll_event ev = {
            .events = want, .data.u64 = (uint64_t)gen << 32 | (uint32_t)fd};
        rc = epoll_ctl(l->epfd, op, fd, &ev);
        if (rc == 0) {
            r->gen = gen;
            break;
        }
        if (tries || (errno != ENOENT && errno != EEXIST))
            break;
        op = errno == ENOENT ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    }
    r->trust_round = 0;
    if (rc == 0) {
        r->kmask = want;
        r->set_round = l->round;
        return 0;
    }
    r->kmask = 0;
    return -errno;
}

/* Keeps FD's registration on trust (see the top): false if vq cannot
 * grow, and then the caller validates at once. */
static bool trust(struct loop *l, int fd)
{
    struct fdrec *r = &l->fds[fd];
    if (r->trust_round)
        return true; /* already trusted, since an older round */
    r->trust_round = l->round;
    if (r->on_vq)
        return true;
    if (l->vn == l->vcap) {
        size_t cap = l->vcap ? 2 * l->vcap : 16;
        int *q = xgrow(l->vq, l->vn * sizeof *q, cap * sizeof *q);
        if (!q) {
            r->trust_round = 0;
            return false;
        }
        l->vq = q;
        l->vcap = cap;
    }
    l->vq[l->vn++] = fd;
    r->on_vq = true;
    return true;
}

/* Makes the kernel watch FD for what its waiters want; FRESH: the waiter
 * just added is the only one.  On failure every waiter of FD is rejected
 * with -errno. */
static void rearm(struct loop *l, int fd, bool fresh)
{
    struct fdrec *r = &l->fds[fd];
    uint32_t want = wanted(r);
    if (!want)
        return;
    if (!fresh && (r->kmask & want) == want)
        return; /* others wait on the same registration */
    if (fresh && r->kmask == want && l->round - r->idle_round <= 1 &&
        l->round - r->set_round < VALIDATE_ROUNDS && trust(l, fd))
        return; /* the chain goes on */
    int err = kernel_set(l, fd, want);
    if (err)
        settle_list(l, fdw_take_all(&r->ws, err));
}

/* Replaces the epoll set with a fresh one holding the eventfd and every fd
 * that has waiters: the only way to be rid of a stale entry.  Rare. */
static void rebuild_epoll(struct loop *l)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        return; /* no fd left: the stale entry stays (it fires again) */
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = EV_WAKE};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, l->evfd, &ev) < 0 ||
        dup3(ep, l->epfd, O_CLOEXEC) < 0) { /* closes the old set */
        close(ep);
        return;
    }
    close(ep);
    struct fdw *m = NULL;
    l->vn = 0;
    for (size_t fd = 0; fd < l->nfds; fd++) {
        struct fdrec *r = &l->fds[fd];
        r->kmask = 0;
        r->trust_round = 0;
        r->on_vq = false;
        uint32_t want = wanted(r);
        int err = want ? kernel_set(l, (int)fd, want) : 0;
        if (err) {
            struct fdw *f = fdw_take_all(&r->ws, err), *t = f;
            while (t->next)
                t = t->next;
            t->next = m;
            m = f;
        }
    }
    settle_list(l, m);
}

/* FD has no waiter left: delete its registration (test_fd_cancel_deregisters:
 * no event after a cancel). */
static void forget(struct loop *l, int fd)
{
    struct fdrec *r = &l->fds[fd];
    if (r->kmask)
        epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
    r->kmask = 0;
    r->trust_round = 0;
}

/* Validates (EPOLL_CTL_MOD, ENOENT -> ADD) trusted fd R; failures reject
 * its waiters. */
static void validate(struct loop *l, int fd)
{
    struct fdrec *r = &l->fds[fd];
    r->trust_round = 0;
    uint32_t want = wanted(r);
    int err = want ? kernel_set(l, fd, want) : 0;
    if (err)
        settle_list(l, fdw_take_all(&r->ws, err));
}

/* Before each epoll_wait: a new round; validate the fds trusted two polls
 * ago and not confirmed by an event since (a busy loop never sleeps, so
 * fut__loop_fd_validate alone would not do). */
void fut__loop_fd_prepoll(struct loop *l)
{
    l->round++;
    size_t k = 0;
    for (size_t i = 0; i < l->vn; i++) {
        int fd = l->vq[i];
        struct fdrec *r = &l->fds[fd];
        if (r->trust_round && l->round - r->trust_round < 3) {
            l->vq[k++] = fd;
            continue;
        }
        r->on_vq = false;
        if (r->trust_round)
            validate(l, fd);
    }
    l->vn = k;
}

/* Before the loop sleeps: validate every fd still trusted. */
void fut__loop_fd_validate(struct loop *l)
{
    for (size_t i = 0; i < l->vn; i++) {
        int fd = l->vq[i];
        l->fds[fd].on_vq = false;
        if (l->fds[fd].trust_round)
            validate(l, fd);
    }
    l->vn = 0;
}

/* Adds W to its fd's list and arms the fd (loop thread). */
static void register_here(struct loop *l, struct fdw *w)
{
    if (w->cancelled) { /* cancelled on its way here */
        fdw_free(l, w);
        return;
    }
    int err = grow_fds(l, w->fd);
    if (err) {
        w->err = err;
        w->next = NULL;
        settle_list(l, w);
        return;
    }
    w->where = FDW_FD;
    bool fresh = !l->fds[w->fd].ws.head;
    fdw_append(&l->fds[w->fd].ws, w);
    rearm(l, w->fd, fresh);
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

/* The error that epoll event E (EPOLLERR or EPOLLHUP) stands for: the
 * socket's pending error for EPOLLERR (fdw_sock_error), else EPIPE. */
static int epoll_error(int fd, unsigned e)
{
    return (e & EPOLLERR) ? fdw_sock_error(fd) : -EPIPE;
}

/* One epoll event, tagged gen << 32 | fd: settle the waiters it answers;
 * narrow or drop the registration if the event answered nobody or left
 * bits nobody wants with waiters still there (level-triggered: they would
 * fire again).  False: the epoll set was rebuilt, so the rest of the batch
 * is stale (level-triggered, what is still ready reports again). */
bool fut__loop_dispatch(struct loop *l, uint64_t tag, uint32_t e)
{
    int fd = (int)(uint32_t)tag;
    if ((size_t)fd >= l->nfds)
        return true;
    struct fdrec *r = &l->fds[fd];
    if (!r->kmask || (uint32_t)(tag >> 32) != r->gen) {
        rebuild_epoll(l); /* an entry we did not make or no longer own */
        return false;
    }
    r->trust_round = 0; /* an entry of ours is alive */
    /* An error or hang-up answers a waiter that it does not leave ready.
     * SO_ERROR is read only then, once: reading it clears it, and an
     * error read for an event that settles nobody, or beside data a
     * reader still gets, would turn the next recv's ECONNRESET into end
     * of file (tests/test_io_reset.c). */
    bool failed = e & (EPOLLERR | EPOLLHUP);
    bool rd = (e & EPOLLIN) && (!failed || fdw_data_left(fd));
    bool wr = (e & EPOLLOUT) && !failed;
    struct fdw *m = NULL, **tail = &m;
    fdw_answer(&r->ws, (rd ? FUT_READABLE : 0u) | (wr ? FUT_WRITABLE : 0u),
               failed, epoll_error, fd, e, &tail);
    uint32_t want = wanted(r);
    if (m && !want) {
        r->idle_round = l->round; /* kept for the chain's next step */
    } else if (!m || (e & (EPOLLIN | EPOLLOUT) & ~want)) {
        /* Spurious, or bits left over: fit the registration to WANT.  A
         * registration we believe absent, or an ENOENT/EBADF, means the
         * event came from a stale entry. */
        struct epoll_event ev = {
            .events = want, .data.u64 = (uint64_t)r->gen << 32 | (uint32_t)fd};
        int rc = want ? epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev)
                      : epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
        if (rc == 0) {
            r->kmask = want;
            r->set_round = l->round;
        } else if (errno == ENOENT || errno == EBADF) {
            r->kmask = 0;
            settle_list(l, m);
            rebuild_epoll(l);
            return false;
        } else {
            r->kmask = 0;
            struct fdw *f = fdw_take_all(&r->ws, -errno);
            *tail = f;
        }
    }
    settle_list(l, m);
    return true;
}

/* A waiter left FD (cancelled).  The waiters left wait on what it saw: if
 * the number was closed and reused since (within this round, or the
 * cancel would have come first), that entry is dead, so look again (MOD,
 * ENOENT -> ADD).  A cancel that leaves no waiter deletes the
 * registration. */
static void after_unwait(struct loop *l, int fd)
{
    if (l->fds[fd].ws.head)
        validate(l, fd);
    else
        forget(l, fd);
}

/* The cancel hook (fut_promise_on_cancel, the executor kit): runs as a task
 * on the loop thread, once, when the application cancelled the readiness
 * future before the loop settled it (a settle that lost the race put W on
 * the orphan list to wait for us).  Never runs once the loop is shut down:
 * destroy frees W then. */
static fut_result_t on_fd_cancel(void *arg, fut_t *src)
{
    (void)src;
    struct fdw *w = arg;
    struct loop *l = w->owner;
    int where = fdw_cancelled(w);
    if (where == FDW_REMOTE)
        return fut_ok(NULL); /* register_here frees it */
    bool on_fd = where == FDW_FD;
    fdw_unlink(home_of(l, w), w);
    int fd = w->fd;
    fdw_free(l, w);
    if (on_fd)
        after_unwait(l, fd);
    return fut_ok(NULL);
}

void fut__loop_fd_wait(struct loop *l, struct fdw *w, int fd, unsigned events)
{
    fdw_init(w, l, fd, events, w->fire);
    w->p = NULL;
    register_here(l, w);
}

void fut__loop_fd_unwait(struct loop *l, struct fdw *w, bool quiet)
{
    fdw_unlink(&l->fds[w->fd].ws, w);
    w->where = FDW_REMOTE;
    if (!quiet)
        after_unwait(l, w->fd);
}

/* The loop's fd_ready op (fut_fd_ready, lib/fd.c): called inside the
 * core's guard (fut_executor_enter), so L cannot be freed under it by a
 * racing destroy; the arguments are checked. */
fut_t *fut__loop_fd_ready(void *impl, int fd, unsigned events)
{
    struct loop *l = impl;
    fut_executor_t *ex = l->ex;
    struct fdw *w = fdw_new(l);
    if (!w)
        return fut_ready(fut_fail(FUT_ENOMEM));
    fut_t *f = fut_promise_new(&w->p);
    if (!w->p) {
        fdw_free(l, w);
        return f;
    }
    fdw_init(w, l, fd, events, NULL);
    /* The cancel hook, set before anyone can see F or the loop W.  It
     * cannot fail here (a fresh promise, a live EX). */
    fut_promise_on_cancel(w->p, ex, on_fd_cancel, w);
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
        fdw_move_all(&l->fds[fd].ws, &all);
    fdw_move_all(&l->orphans, &all);
    while (all) {
        w = all;
        all = w->next;
        if (w->fire)
            continue; /* an operation's: fut__loop_io_shutdown ends it */
        if (w->p)
            fut_promise_settle(w->p, fut_fail(FUT_ESHUTDOWN));
        xfree(w);
    }
}
