/* libfut — time: fut_delay, fut_timeout, the timer hand-off with executors,
 * and the timer service (a thread with the executor kit's timer heap,
 * lib/timer_heap.c) used by executors that keep no timers of their own.
 *
 * TIMER HAND-OFF
 *
 * A DELAY or TIMEOUT future embeds its fut_timer_t.  The executor that keeps
 * the timer holds a reference on the future from timer_start until it calls
 * fut_timer_fire or fut_timer_drop.  When the future settles another way (a
 * cancel, or a TIMEOUT's input settling first), the core asks the executor
 * to let go early with timer_cancel, at most once: fut.hold goes
 * ARMED -> CANCEL_SENT by CAS, and the core takes a second reference for the
 * request, because the executor may be firing the timer at this very moment
 * and must still be able to look at it.  The executor ends that second hold
 * with fut_timer_drop too.  Firing stores DONE, so a cancel that comes later
 * is not sent at all.
 *
 *     ARMED --fire/drop--> DONE
 *       \--cancel (CAS)--> CANCEL_SENT --fire/drop--> DONE
 *
 * A firing timeout claims its future (future.c), cancels its input, then
 * closes: the timeout wins atomically, its input is cancelled only if it
 * won, and anyone who sees it time out sees the input cancelled.
 *
 * THE SERVICE
 *
 * One mutex protects the heap (and each held timer's slot, the heap's while
 * the timer is in it: a timer being fired, or taken out by a stop, is not,
 * so timer_cancel has nothing to remove).  The thread sleeps on a
 * CLOCK_MONOTONIC condition variable until the earliest deadline, pops
 * everything due and fires it without the lock.  A deadline is never fired
 * early: due means now >= deadline on the same clock.  The heap array is
 * freed whenever the heap empties, before the last timer is handed back, so
 * no memory outlives the timers (the allocation-failure tests count on it).
 *
 * The thread starts with the first timer armed on the service and runs
 * until fut_timer_service_stop (or the library's destructor at exit) sets
 * STOPPING under the lock and joins it; the next timer starts a new one.
 * While a stop joins, starters wait on IDLE_CV (a callback on the very
 * thread being joined is refused: FUT_ESHUTDOWN), and timer_cancel finds
 * the timers the stop took out of the heap at slot SIZE_MAX, as it finds a
 * timer being fired.  In the child of a fork() the thread does not exist:
 * fut__timer_fork resets the service there.
 *
 *     idle --first timer--> started --stop: STOPPING, join--> idle
 *                              \--fork(), in the child-------> idle */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "internal.h"

uint64_t fut_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t deadline_after(uint64_t ns)
{
    uint64_t now = fut_now_ns();
    return ns > UINT64_MAX - now ? UINT64_MAX : now + ns;
}

/* ---- the hand-off ------------------------------------------------------- */

static fut_t *timer_future(fut_timer_t *t)
{
    return FUT__CONTAINER(t, fut_t, u.tm.timer);
}

void fut_timer_fire(fut_timer_t *t)
{
    fut_t *f = timer_future(t);
    if (f->kind == FK_DELAY) {
        /* Release: paired with the CAS in cancel_timer only to decide
         * whether a cancel is still worth sending. */
        atomic_store_explicit(&f->hold, TS_DONE, memory_order_release);
        fut__settle_err(f, FUT_FULFILLED, 0);
    } else {
        atomic_store_explicit(&f->hold, TS_DONE, memory_order_release);
        if (fut__claim(f)) {
            /* Claimed first: the timeout has won (a racing fut_cancel of F
             * answers FUT_EALREADY once F closes), the input is cancelled
             * only because it won, and the input's cancellation cannot
             * settle F as merely cancelled.  Closed last: whoever sees F
             * time out sees its input cancelled. */
            struct fut_tls *tls = &fut__tls;
            fut_t *prev = tls->claiming;
            tls->claiming = f;
            fut_cancel(f->u.tm.input);
            tls->claiming = prev;
            fut__close_claimed_err(f, FUT_CANCELLED, FUT_ETIMEDOUT);
        }
    }
    fut_release(f);
}

void fut_timer_fail(fut_timer_t *t, int err)
{
    fut_t *f = timer_future(t);
    atomic_store_explicit(&f->hold, TS_DONE, memory_order_release);
    fut__settle_err(f, FUT_REJECTED, err < 0 ? err : FUT_EINVAL);
    fut_release(f);
}

void fut_timer_drop(fut_timer_t *t)
{
    /* A pending future loses its timer only at shutdown. */
    fut_timer_fail(t, FUT_ESHUTDOWN);
}

/* Asks F's executor to let go of F's timer, if it may still hold it. */
static void cancel_timer(fut_t *f)
{
    uint8_t expect = TS_ARMED;
    /* acq_rel: pairs with the release store of DONE in fire/drop. */
    if (!atomic_compare_exchange_strong_explicit(
            &f->hold, &expect, TS_CANCEL_SENT, memory_order_acq_rel,
            memory_order_acquire))
        return;
    fut_retain(f); /* the second hold */
    fut__ex_timer_cancel(f->ex, &f->u.tm.timer);
}

void fut__on_cancel(fut_t *f)
{
    if (f->kind == FK_DELAY || f->kind == FK_TIMEOUT)
        cancel_timer(f);
}

/* The executor that keeps timers for work placed on EX: EX itself if it has
 * timers, else the service. */
static fut_executor_t *timer_home(fut_executor_t *ex)
{
    return ex && fut__ex_has_timers(ex) ? ex : &fut__timer_service;
}

/* Arms F's timer on F->ex; on failure settles F with the error. */
static void arm(fut_t *f, uint64_t ns)
{
    f->u.tm.timer.deadline_ns = deadline_after(ns);
    f->u.tm.timer.slot = SIZE_MAX;
    fut_retain(f); /* the executor's hold */
    atomic_store_explicit(&f->hold, TS_ARMED, memory_order_relaxed);
    int rc = fut__ex_timer_start(f->ex, &f->u.tm.timer);
    if (rc) {
        atomic_store_explicit(&f->hold, TS_NONE, memory_order_relaxed);
        fut__settle_err(f, FUT_REJECTED, rc);
        fut_release(f);
    }
}

fut_t *fut_delay(fut_executor_t *ex, uint64_t ns)
{
    if (!ex)
        return fut__rejected(FUT_EINVAL);
    /* A destroyed executor without timers of its own would still get a
     * delay from the service: refuse it as one with timers does.  Acquire:
     * pairs with the seq_cst store of closed in fut_executor_destroy. */
    if (atomic_load_explicit(&ex->closed, memory_order_acquire))
        return fut__rejected(FUT_ESHUTDOWN);
    fut_t *f = fut__new(FK_DELAY, 1);
    if (!f)
        return fut__rejected(FUT_ENOMEM);
    f->ex = timer_home(ex);
    if (!f->ex->is_static) {
        fut__ex_retain(f->ex);
        f->flags |= FF_EX_REF;
    }
    arm(f, ns);
    return f;
}

/* T's node on its input's list: the input settled first (or T was
 * cancelled or timed out, and this is just the input finishing). */
static void timeout_input_fire(fut_cont_t *c, fut_t *input)
{
    fut_t *t = FUT__CONTAINER(c, fut_t, cont);
    if (fut__settle_like(t, input))
        cancel_timer(t);
    fut_release(t);
}

/* A timeout of F (consumed) whose timer lives on HOME (timer_home). */
static fut_t *timeout_at(fut_t *f, fut_executor_t *home, uint64_t ns)
{
    fut_t *t = fut__new(FK_TIMEOUT, 2); /* the caller's and the node's */
    if (!t) {
        fut_release(f);
        return fut__rejected(FUT_ENOMEM);
    }
    t->u.tm.input = f; /* consumed */
    t->ex = home;
    if (!t->ex->is_static) {
        fut__ex_retain(t->ex);
        t->flags |= FF_EX_REF;
    }
    if (!fut__closed(f))
        arm(t, ns);
    t->cont.fire = timeout_input_fire;
    fut__attach(f, &t->cont);
    return t;
}

fut_t *fut_timeout(fut_t *f, uint64_t ns)
{
    if (!f)
        return fut__rejected(FUT_EINVAL);
    return timeout_at(f, timer_home(fut__tls.cur_ex), ns);
}

fut_t *fut_timeout_on(fut_t *f, fut_executor_t *ex, uint64_t ns)
{
    if (!f || !ex) {
        fut_release(f);
        return fut__rejected(FUT_EINVAL);
    }
    /* Acquire: pairs with destroy's store of closed.  An executor without
     * timers of its own would hand the timer to the service, which would
     * accept it: refuse here, as its own timer_start would. */
    if (!ex->is_static &&
        atomic_load_explicit(&ex->closed, memory_order_acquire)) {
        fut_release(f);
        return fut__rejected(FUT_ESHUTDOWN);
    }
    return timeout_at(f, timer_home(ex), ns);
}

/* ---- the timer service -------------------------------------------------- */

struct svc {
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* the thread sleeps on it (CLOCK_MONOTONIC) */
    pthread_cond_t idle_cv; /* a stop ended: starters and stoppers wait */
    fut_kit_timer_heap_t heap; /* the kit's (lib/timer_heap.c) */
    bool cv_ready; /* cv initialised */
    bool started;  /* THREAD runs (and is joinable) */
    bool stopping; /* a stop is joining THREAD: no new timers for it */
    pthread_t thread;
};

static struct svc g_svc = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .idle_cv = PTHREAD_COND_INITIALIZER,
};

static void *svc_main(void *arg)
{
    struct svc *s = arg;
    fut__tls.slab_off = 1; /* blocks must not outlive an allocator swap */
    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        if (!fut_kit_timer_heap_size(&s->heap)) {
            pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        uint64_t now = fut_now_ns();
        fut_timer_t *due = NULL, **tail = &due, *t;
        while ((t = fut_kit_timer_heap_pop_due(&s->heap, now))) {
            t->next = NULL;
            *tail = t;
            tail = &t->next;
        }
        if (due) {
            pthread_mutex_unlock(&s->mu);
            while (due) {
                fut_timer_t *t = due;
                due = t->next;
                fut_timer_fire(t);
            }
            pthread_mutex_lock(&s->mu);
            continue;
        }
        uint64_t d = fut_kit_timer_heap_next_ns(&s->heap);
        struct timespec ts = {.tv_sec = (time_t)(d / 1000000000u),
                              .tv_nsec = (long)(d % 1000000000u)};
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static bool on_svc_thread(const struct svc *s)
{
    return s->started && pthread_equal(pthread_self(), s->thread);
}

/* Starts the thread if it does not run (retrying later if it failed),
 * after a stop under way has ended.  Under s->mu. */
static int svc_start(struct svc *s)
{
    if (s->stopping && on_svc_thread(s))
        return FUT_ESHUTDOWN; /* a callback of the thread being joined */
    while (s->stopping)
        pthread_cond_wait(&s->idle_cv, &s->mu);
    if (s->started)
        return 0;
    if (!s->cv_ready) {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&s->cv, &ca);
        pthread_condattr_destroy(&ca);
        s->cv_ready = true;
    }
    int rc = pthread_create(&s->thread, NULL, svc_main, s);
    if (rc)
        return rc == EAGAIN ? FUT_ENOMEM : -rc;
#ifdef __GLIBC__
    pthread_setname_np(s->thread, "fut-timers");
#endif
    s->started = true;
    return 0;
}

/* Takes every timer out of the heap (freeing its array); returns them
 * linked through next.  Under s->mu. */
static fut_timer_t *svc_take_all(struct svc *s)
{
    fut_timer_t *all = NULL, *t;
    while ((t = fut_kit_timer_heap_pop_due(&s->heap, UINT64_MAX))) {
        t->next = all;
        all = t;
    }
    return all;
}

int fut_timer_service_stop(void)
{
    struct svc *s = &g_svc;
    pthread_mutex_lock(&s->mu);
    if (on_svc_thread(s)) {
        pthread_mutex_unlock(&s->mu);
        return FUT_EDEADLK;
    }
    while (s->stopping) /* another stop: done when it is */
        pthread_cond_wait(&s->idle_cv, &s->mu);
    if (!s->started) {
        pthread_mutex_unlock(&s->mu);
        return 0;
    }
    s->stopping = true;
    fut_timer_t *left = svc_take_all(s);
    pthread_cond_signal(&s->cv);
    pthread_t th = s->thread;
    pthread_mutex_unlock(&s->mu);
    pthread_join(th, NULL); /* it fires what it popped, then sees STOPPING */
    pthread_mutex_lock(&s->mu);
    s->started = false;
    s->stopping = false;
    pthread_cond_broadcast(&s->idle_cv);
    pthread_mutex_unlock(&s->mu);
    while (left) { /* the first holds; a racing cancel ends its own */
        fut_timer_t *t = left;
        left = t->next;
        fut_timer_drop(t);
    }
    return 0;
}

/* At exit (the library's destructor): stop and join the thread, so that
 * leak checkers find nothing of it, but fire or drop nothing: no user code
 * runs this late.  Timers still armed stay in the heap (reachable).  A
 * thread busy in a callback gets a second; then it is left to the exit. */
__attribute__((destructor)) static void svc_at_exit(void)
{
    struct svc *s = &g_svc;
    pthread_mutex_lock(&s->mu);
    if (!s->started || s->stopping || on_svc_thread(s)) {
        pthread_mutex_unlock(&s->mu);
        return;
    }
    s->stopping = true;
    pthread_cond_signal(&s->cv);
    pthread_t th = s->thread;
    pthread_mutex_unlock(&s->mu);
#ifdef __GLIBC__
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 1;
    if (pthread_timedjoin_np(th, NULL, &ts) == 0)
        s->started = false;
#else
    (void)th;
#endif
}

/* fork() (fork.c): BEFORE takes the lock so that the child's copy of the
 * heap is consistent; the parent lets go; the child has no timer thread:
 * it forgets the parent's timers (their futures are the parent's work and
 * stay pending in the child, like tasks held by the parent's executors),
 * and starts a thread of its own with its first timer. */
void fut__timer_fork(enum fut_fork_phase phase)
{
    struct svc *s = &g_svc;
    if (phase == FUT_FORK_BEFORE) {
        pthread_mutex_lock(&s->mu);
        return;
    }
    if (phase == FUT_FORK_CHILD) {
        svc_take_all(s); /* the parent's timers: forgotten here */
        s->started = s->stopping = false;
        pthread_mutex_init(&s->mu, NULL); /* the parent's holder is gone */
        pthread_cond_init(&s->idle_cv, NULL);
        s->cv_ready = false; /* waiters' state in it is the parent's */
        return;
    }
    pthread_mutex_unlock(&s->mu);
}

static int svc_timer_start(void *impl, fut_timer_t *t)
{
    struct svc *s = impl;
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    if ((rc = svc_start(s)) != 0)
        goto out;
    if ((rc = fut_kit_timer_heap_push(&s->heap, t)) != 0)
        goto out;
    if (fut_kit_timer_heap_first(&s->heap) == t) /* sooner than it sleeps */
        pthread_cond_signal(&s->cv);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static void svc_timer_cancel(void *impl, fut_timer_t *t)
{
    struct svc *s = impl;
    pthread_mutex_lock(&s->mu);
    bool held = fut_kit_timer_heap_remove(&s->heap, t);
    pthread_mutex_unlock(&s->mu);
    if (held)
        fut_timer_drop(t); /* the first hold */
    fut_timer_drop(t);     /* the second, given by the cancel */
}

static int svc_submit(void *impl, fut_task_t *task)
{
    (void)impl;
    (void)task;
    return FUT_EINVAL; /* timers only; never handed tasks by the core */
}

static void svc_destroy(void *impl)
{
    (void)impl; /* static: fut_executor_destroy refuses it */
}

static const fut_executor_ops_t svc_ops = {
    .name = "timers",
    .submit = svc_submit,
    .destroy = svc_destroy,
    .timer_start = svc_timer_start,
    .timer_cancel = svc_timer_cancel,
};

fut_executor_t fut__timer_service = FUT__EXECUTOR_STATIC(&svc_ops, &g_svc);
