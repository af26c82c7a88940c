/* libfut-glib — an executor that runs libfut work on the thread iterating
 * a GMainContext, written only against the public headers (<fut.h>, the
 * executor kit).
 *
 * PROTOCOL
 *
 * The queues, the timer hand-off and the wake-once-per-burst rule are
 * executors/host/host_queue.h's.  On the GLib side:
 *   - one custom GSource (struct work_source) attached to the context while
 *     the executor lives.  prepare and check answer whether anything is
 *     queued or handed over (host_has_work); dispatch is the session that
 *     takes handed-over timer starts and cancels and runs a batch of tasks.
 *     A batch that leaves tasks makes the next prepare answer true, so the
 *     context polls (with a zero timeout) between batches.  A push that
 *     finds its stack empty calls g_main_context_wakeup.
 *   - one GSource per started libfut timer (struct timer_source), its ready
 *     time the deadline rounded up to a microsecond of g_get_monotonic_time
 *     (CLOCK_MONOTONIC, as fut_now_ns): it never fires early.
 *   - tasks submitted inside a session go to the local FIFO, with no atomic
 *     and no wake.
 *   - fd readiness (fut_fd_ready): the waiters are host_fd.h's; each fd
 *     watched is one unix fd of the work source (g_source_add_unix_fd),
 *     its condition the union of what its waiters want, removed when none
 *     is left.  GLib polls the whole set each iteration (poll(2)), so no
 *     registration outlives a close.  GLib's check finds the source ready
 *     when one of its fds reports; the dispatch first reads each watched
 *     fd's revents (all of them, before any is reported, since reporting
 *     runs callbacks that may add or remove fds), then reports them.
 *
 * Shutdown.  fut_executor_destroy closes the core's gate (no other thread
 * calls our ops any more), then glib_destroy acquires the context (so no
 * other thread iterates it meanwhile; the thread iterating it may call it
 * from its own callbacks), drops every queued task and gives back every
 * timer (FUT_ESHUTDOWN), rejects every fd wait (FUT_ESHUTDOWN), destroys
 * its sources and frees everything: GLib
 * needs no further iteration. */
#include <fut/glib.h>

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "../host/host_fd.h"
#include "../host/host_queue.h"

/* An fd that reported, between reading the revents and reporting them. */
struct fd_report {
    int fd;
    unsigned short revents;
};

struct fut_glib {
    struct host_queue q; /* first */
    GMainContext *ctx;
    GSource *work;
    struct host_fds fds;
    size_t nwatched;          /* fds with a tag on WORK */
    struct fd_report *report; /* room for NWATCHED reports */
    size_t report_cap;
};

struct work_source {
    GSource base; /* first, as GLib wants */
    struct fut_glib *g;
};

struct timer_source {
    GSource base; /* first */
    struct host_timer h;
    struct fut_glib *g;
    bool attached;
};

static struct timer_source *of_host(struct host_timer *h)
{
    return (struct timer_source *)(void *)((char *)h -
                                           offsetof(struct timer_source, h));
}

/* ---- timers (loop thread) ------------------------------------------------ */

static gboolean timer_dispatch(GSource *s, GSourceFunc cb, gpointer ud);

static GSourceFuncs timer_funcs = {.dispatch = timer_dispatch};

static void arm(struct timer_source *n)
{
    /* Rounded up: ready at or after the deadline in fut_now_ns's clock. */
    g_source_set_ready_time(&n->base,
                            (gint64)((n->h.t->deadline_ns + 999) / 1000));
}

static void start_timer(struct fut_glib *g, struct timer_source *n)
{
    n->h.state = HT_ACTIVE;
    host_timer_link(&g->q, &n->h);
    arm(n);
    g_source_attach(&n->base, g->ctx);
    n->attached = true;
}

static void drain_starts(struct fut_glib *g)
{
    for (struct host_timer *h = host_take_starts(&g->q), *next; h; h = next) {
        next = h->link;
        start_timer(g, of_host(h));
    }
}

/* Lets go of N's source (never fired again; GLib frees it). */
static void release_timer(struct timer_source *n)
{
    if (n->attached)
        g_source_destroy(&n->base);
    g_source_unref(&n->base);
}

static void cancel_now(struct fut_glib *g, fut_timer_t *t)
{
    struct timer_source *n = (struct timer_source *)(uintptr_t)t->slot;
    if (n && n->h.state == HT_QUEUED)
        drain_starts(g); /* its start is on the stack (header) */
    if (n) {
        host_timer_unlink(&n->h);
        t->slot = 0;
        release_timer(n);
        fut_timer_drop(t);
    }
    fut_timer_drop(t);
}

static void drain_cancels(struct fut_glib *g)
{
    for (fut_timer_t *t = host_take_cancels(&g->q), *next; t; t = next) {
        next = t->next;
        cancel_now(g, t);
    }
}

/* ---- sessions -------------------------------------------------------------- */

static void report_fds(struct fut_glib *g);

/* A session: takes handed-over timer starts and cancels, fires FIRE (if
 * not NULL), reports the fds that polled ready (FDS), runs a batch. */
static void run_session(struct fut_glib *g, fut_timer_t *fire, bool fds)
{
    struct host_session s;
    host_session_begin(&s, &g->q);
    drain_starts(g);
    drain_cancels(g);
    if (fire)
        host_fire(&g->q, fire);
    if (fds)
        report_fds(g);
    host_run_batch(&g->q); /* what is left makes prepare answer true */
    host_session_end(&s);
}

static gboolean timer_dispatch(GSource *s, GSourceFunc cb, gpointer ud)
{
    (void)cb;
    (void)ud;
    struct timer_source *n = (struct timer_source *)s;
    struct fut_glib *g = n->g;
    fut_timer_t *t = n->h.t;
    if (fut_now_ns() < t->deadline_ns) { /* not expected: check anyway */
        arm(n);
        return G_SOURCE_CONTINUE;
    }
    host_timer_unlink(&n->h);
    t->slot = 0;
    release_timer(n); /* GLib keeps it alive until dispatch returns */
    run_session(g, t, false);
    return G_SOURCE_REMOVE;
}

static gboolean work_prepare(GSource *s, gint *timeout)
{
    *timeout = -1;
    return host_has_work(&((struct work_source *)s)->g->q);
}

static gboolean work_check(GSource *s)
{
    return host_has_work(&((struct work_source *)s)->g->q);
}

/* ---- fd readiness (loop thread) ----------------------------------------- */

/* The error GLib's REVENTS (G_IO_NVAL, G_IO_ERR or G_IO_HUP) stand for. */
static int revents_error(int fd, unsigned rev)
{
    if (rev & G_IO_NVAL)
        return -EBADF;
    return (rev & G_IO_ERR) ? fdw_sock_error(fd) : -EPIPE;
}

/* What GLib's REVENTS mean for fut_fd_ready, as the loop reads epoll's:
 * the socket's error is read only for a waiter it answers (fdw_answer). */
static void report_fd(struct fut_glib *g, int fd, unsigned short rev)
{
    bool failed = rev & (G_IO_NVAL | G_IO_ERR | G_IO_HUP);
    unsigned ready =
        ((rev & G_IO_IN) && (!failed || fdw_data_left(fd)) ? FUT_READABLE
                                                           : 0u) |
        ((rev & G_IO_OUT) && !failed ? FUT_WRITABLE : 0u);
    host_bump(&g->q.n_fd, 1);
    host_fd_event(&g->fds, fd, ready, failed, revents_error, rev);
}

/* Reads the revents of every watched fd, then reports those that have
 * some (in a session). */
static void report_fds(struct fut_glib *g)
{
    size_t k = 0;
    for (size_t fd = 0; fd < g->fds.n && k < g->nwatched; fd++) {
        struct host_fdrec *r = &g->fds.recs[fd];
        if (!r->watch)
            continue;
        GIOCondition rev = g_source_query_unix_fd(g->work, r->watch);
        if (rev && k < g->report_cap)
            g->report[k++] = (struct fd_report){(int)fd, (unsigned short)rev};
    }
    for (size_t i = 0; i < k; i++)
        report_fd(g, g->report[i].fd, g->report[i].revents);
}

static int fd_watch(void *a, int fd, struct host_fdrec *r, unsigned events,
                    bool again)
{
    (void)again; /* GLib polls afresh each iteration */
    struct fut_glib *g = a;
    GIOCondition c = ((events & FUT_READABLE) ? G_IO_IN : 0) |
                     ((events & FUT_WRITABLE) ? G_IO_OUT : 0);
    if (r->watch) {
        g_source_modify_unix_fd(g->work, r->watch, c);
        return 0;
    }
    if (g->nwatched == g->report_cap) {
        size_t cap = g->report_cap ? 2 * g->report_cap : 16;
        struct fd_report *n = fut_alloc(cap * sizeof *n);
        if (!n)
            return FUT_ENOMEM;
        fut_free(g->report);
        g->report = n;
        g->report_cap = cap;
    }
    r->watch = g_source_add_unix_fd(g->work, fd, c);
    g->nwatched++;
    return 0;
}

static void fd_unwatch(void *a, int fd, struct host_fdrec *r)
{
    (void)fd;
    struct fut_glib *g = a;
    g_source_remove_unix_fd(g->work, r->watch);
    r->watch = NULL;
    g->nwatched--;
}

static void fd_release(void *a, int fd, struct host_fdrec *r)
{
    (void)a;
    (void)fd;
    (void)r; /* unwatch removed the tag already */
}

static const struct host_fd_ops fd_ops = {
    .watch = fd_watch, .unwatch = fd_unwatch, .release = fd_release};

static fut_t *glib_fd_ready(void *impl, int fd, unsigned events)
{
    return host_fd_ready(&((struct fut_glib *)impl)->fds, fd, events);
}

static gboolean work_dispatch(GSource *s, GSourceFunc cb, gpointer ud)
{
    (void)cb;
    (void)ud;
    struct fut_glib *g = ((struct work_source *)s)->g;
    host_bump(&g->q.n_wakes, 1);
    run_session(g, NULL, g->nwatched != 0);
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs work_funcs = {
    .prepare = work_prepare, .check = work_check, .dispatch = work_dispatch};

/* ---- ops ------------------------------------------------------------------ */

static int glib_submit(void *impl, fut_task_t *task)
{
    struct fut_glib *g = impl;
    if (host_on_thread(&g->q)) {
        host_push_local(&g->q, task);
        return 0;
    }
    if (host_push_task(&g->q, task))
        g_main_context_wakeup(g->ctx);
    return 0;
}

static int glib_timer_start(void *impl, fut_timer_t *t)
{
    struct fut_glib *g = impl;
    struct timer_source *n = (struct timer_source *)g_source_new(
        &timer_funcs, sizeof(struct timer_source));
    n->g = g;
    n->attached = false;
    memset(&n->h, 0, sizeof n->h);
    n->h.t = t;
    n->h.state = HT_QUEUED;
    t->slot = (size_t)(uintptr_t)n;
    if (host_on_thread(&g->q))
        start_timer(g, n);
    else if (host_push_start(&g->q, &n->h))
        g_main_context_wakeup(g->ctx);
    return 0;
}

static void glib_timer_cancel(void *impl, fut_timer_t *t)
{
    struct fut_glib *g = impl;
    if (host_on_thread(&g->q))
        cancel_now(g, t);
    else if (host_push_cancel(&g->q, t))
        g_main_context_wakeup(g->ctx);
}

static int glib_stats(void *impl, fut_stats_t *out)
{
    return host_stats(&((struct fut_glib *)impl)->q, out);
}

static void glib_destroy(void *impl)
{
    struct fut_glib *g = impl;
    if (!g_main_context_acquire(g->ctx)) {
        fputs("libfut-glib: fut_executor_destroy while another thread "
              "iterates the context (see <fut/glib.h>)\n",
              stderr);
        abort();
    }
    host_drop_tasks(&g->q);
    drain_starts(g);
    drain_cancels(g);
    while (g->q.timers.next != &g->q.timers) {
        struct timer_source *n = of_host(g->q.timers.next);
        fut_timer_t *t = n->h.t;
        host_timer_unlink(&n->h);
        t->slot = 0;
        release_timer(n);
        fut_timer_drop(t);
    }
    host_drop_tasks(&g->q); /* what the drops above may have queued */
    host_fd_shutdown(&g->fds);
    host_drop_tasks(&g->q);
    fut_free(g->report);
    g_source_destroy(g->work);
    g_source_unref(g->work);
    g_main_context_release(g->ctx);
    g_main_context_unref(g->ctx);
    fut_free(g);
}

static const fut_executor_ops_t glib_ops = {
    .name = "glib",
    .flags = FUT_EXECUTOR_NO_BLOCK,
    .submit = glib_submit,
    .destroy = glib_destroy,
    .stats = glib_stats,
    .timer_start = glib_timer_start,
    .timer_cancel = glib_timer_cancel,
    .fd_ready = glib_fd_ready,
};

int fut_glib_create(fut_executor_t **out, GMainContext *ctx)
{
    if (!out)
        return FUT_EINVAL;
    struct fut_glib *g = fut_alloc(sizeof *g);
    if (!g)
        return FUT_ENOMEM;
    host_init(&g->q, "glib");
    host_fd_init(&g->fds, &g->q, &fd_ops, g);
    g->nwatched = 0;
    g->report = NULL;
    g->report_cap = 0;
    g->ctx = g_main_context_ref(ctx ? ctx : g_main_context_default());
    int rc = fut_executor_create(&g->q.ex, &glib_ops, g);
    if (rc) {
        g_main_context_unref(g->ctx);
        fut_free(g);
        return rc;
    }
    g->work = g_source_new(&work_funcs, sizeof(struct work_source));
    ((struct work_source *)g->work)->g = g;
    g_source_set_name(g->work, "libfut");
    g_source_attach(g->work, g->ctx);
    *out = g->q.ex;
    return 0;
}
