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
 *
 * Shutdown.  fut_executor_destroy closes the core's gate (no other thread
 * calls our ops any more), then glib_destroy acquires the context (so no
 * other thread iterates it meanwhile; the thread iterating it may call it
 * from its own callbacks), drops every queued task and gives back every
 * timer (FUT_ESHUTDOWN), destroys its sources and frees everything: GLib
 * needs no further iteration. */
#include <fut/glib.h>

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "../host/host_queue.h"

struct fut_glib {
    struct host_queue q; /* first */
    GMainContext *ctx;
    GSource *work;
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

static void run_session(struct fut_glib *g, fut_timer_t *fire)
{
    struct host_session s;
    host_session_begin(&s, &g->q);
    drain_starts(g);
    drain_cancels(g);
    if (fire)
        host_fire(&g->q, fire);
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
    run_session(g, t);
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

static gboolean work_dispatch(GSource *s, GSourceFunc cb, gpointer ud)
{
    (void)cb;
    (void)ud;
    struct fut_glib *g = ((struct work_source *)s)->g;
    host_bump(&g->q.n_wakes, 1);
    run_session(g, NULL);
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
};

int fut_glib_create(fut_executor_t **out, GMainContext *ctx)
{
    if (!out)
        return FUT_EINVAL;
    struct fut_glib *g = fut_alloc(sizeof *g);
    if (!g)
        return FUT_ENOMEM;
    host_init(&g->q, "glib");
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
