/* testexec: see testexec.h.
 *
 * Protocol: one mutex guards the task queue, the timer list and the
 * counters.  A task is popped under the mutex and run (fut_task_run) with the
 * mutex released, since the task may submit more work to this executor.
 * Timers the core cancels are only marked under the mutex (timer_cancel may
 * be called from inside the core); they are handed back with fut_timer_drop
 * at the next fire/run/destroy call, on the test's thread, as the executor
 * interface asks ("soon, on your thread"). */
#include "testexec.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct tx_timer {
    fut_timer_t *t;
    bool cancelled;
    struct tx_timer *next;
} tx_timer_t;

struct testexec {
    fut_executor_t *ex;
    fut_executor_ops_t ops;
    testexec_opts_t opts;
    pthread_mutex_t mu;
    fut_task_t *head, *tail;
    size_t pending, submitted, ran, taken;
    int refuse;
    bool closed;
    tx_timer_t *timers;
    size_t destroy_ran, destroy_dropped;
};

static int tx_submit(void *impl, fut_task_t *task)
{
    testexec_t *tx = impl;
    pthread_mutex_lock(&tx->mu);
    int err = tx->closed ? FUT_ESHUTDOWN : tx->refuse;
    if (err == 0) {
        task->next = NULL;
        if (tx->tail)
            tx->tail->next = task;
        else
            tx->head = task;
        tx->tail = task;
        tx->pending++;
        tx->submitted++;
    }
    pthread_mutex_unlock(&tx->mu);
    return err;
}

static fut_task_t *pop(testexec_t *tx)
{
    pthread_mutex_lock(&tx->mu);
    fut_task_t *t = tx->head;
    if (t) {
        tx->head = t->next;
        if (!tx->head)
            tx->tail = NULL;
        tx->pending--;
    }
    pthread_mutex_unlock(&tx->mu);
    return t;
}

/* Hands cancelled timers back to the core; never under the mutex. */
static void drop_cancelled(testexec_t *tx)
{
    for (;;) {
        tx_timer_t *found = NULL;
        pthread_mutex_lock(&tx->mu);
        for (tx_timer_t **pp = &tx->timers; *pp; pp = &(*pp)->next) {
            if ((*pp)->cancelled) {
                found = *pp;
                *pp = found->next;
                break;
            }
        }
        pthread_mutex_unlock(&tx->mu);
        if (!found)
            return;
        fut_timer_drop(found->t);
        free(found);
    }
}

/* ops->take: gives TASK back if it is the newest queued (a stack's top,
 * as a pool worker's own deque). */
static bool tx_take(void *impl, fut_task_t *task)
{
    testexec_t *tx = impl;
    bool took = false;
    pthread_mutex_lock(&tx->mu);
    if (tx->tail == task) {
        fut_task_t **pp = &tx->head;
        while (*pp != task)
            pp = &(*pp)->next;
        *pp = NULL;
        tx->tail = NULL;
        for (fut_task_t *t = tx->head; t; t = t->next)
            tx->tail = t;
        tx->pending--;
        tx->taken++;
        took = true;
    }
    pthread_mutex_unlock(&tx->mu);
    return took;
}

static bool tx_try_run_one(void *impl)
{
    testexec_t *tx = impl;
    fut_task_t *t = pop(tx);
    if (!t)
        return false;
    fut_task_run(t);
    pthread_mutex_lock(&tx->mu);
    tx->ran++;
    pthread_mutex_unlock(&tx->mu);
    return true;
}

static void tx_destroy(void *impl)
{
    testexec_t *tx = impl;
    pthread_mutex_lock(&tx->mu);
    tx->closed = true;
    pthread_mutex_unlock(&tx->mu);
    fut_task_t *t;
    while ((t = pop(tx)) != NULL) {
        if (tx->opts.on_destroy == TESTEXEC_RUN) {
            fut_task_run(t);
            tx->destroy_ran++;
        } else {
            fut_task_drop(t);
            tx->destroy_dropped++;
        }
    }
    drop_cancelled(tx);
    for (;;) {
        pthread_mutex_lock(&tx->mu);
        tx_timer_t *tm = tx->timers;
        if (tm)
            tx->timers = tm->next;
        pthread_mutex_unlock(&tx->mu);
        if (!tm)
            break;
        fut_timer_drop(tm->t);
        free(tm);
    }
    /* TX itself is freed by testexec_destroy, which reads the counts. */
}

static int tx_stats(void *impl, fut_stats_t *out)
{
    testexec_t *tx = impl;
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&tx->mu);
    out->tasks_run = tx->ran;
    out->tasks_submitted = tx->submitted;
    pthread_mutex_unlock(&tx->mu);
    out->workers = 1;
    return 0;
}

static int tx_timer_start(void *impl, fut_timer_t *t)
{
    testexec_t *tx = impl;
    tx_timer_t *tm = malloc(sizeof *tm);
    if (!tm)
        return FUT_ENOMEM;
    tm->t = t;
    tm->cancelled = false;
    pthread_mutex_lock(&tx->mu);
    int err = tx->closed ? FUT_ESHUTDOWN : tx->refuse;
    if (err == 0) {
        tm->next = tx->timers;
        tx->timers = tm;
    }
    pthread_mutex_unlock(&tx->mu);
    if (err)
        free(tm);
    return err;
}

static void tx_timer_cancel(void *impl, fut_timer_t *t)
{
    testexec_t *tx = impl;
    pthread_mutex_lock(&tx->mu);
    for (tx_timer_t *tm = tx->timers; tm; tm = tm->next)
        if (tm->t == t)
            tm->cancelled = true;
    pthread_mutex_unlock(&tx->mu);
    /* The cancel gave us a second hold on T (see executor.h): end it now.
     * The first, if we still hold T, ends in drop_cancelled. */
    fut_timer_drop(t);
}

testexec_t *testexec_new(const testexec_opts_t *opts, int *err)
{
    testexec_t *tx = calloc(1, sizeof *tx);
    if (!tx) {
        if (err)
            *err = FUT_ENOMEM;
        return NULL;
    }
    if (opts)
        tx->opts = *opts;
    pthread_mutex_init(&tx->mu, NULL);
    tx->ops.name = tx->opts.name ? tx->opts.name : "testexec";
    tx->ops.submit = tx_submit;
    tx->ops.destroy = tx_destroy;
    tx->ops.stats = tx_stats;
    if (tx->opts.try_run_one)
        tx->ops.try_run_one = tx_try_run_one;
    if (tx->opts.take)
        tx->ops.take = tx_take;
    if (tx->opts.timers) {
        tx->ops.timer_start = tx_timer_start;
        tx->ops.timer_cancel = tx_timer_cancel;
    }
    int rc = fut_executor_create(&tx->ex, &tx->ops, tx);
    if (err)
        *err = rc;
    if (rc != 0) {
        pthread_mutex_destroy(&tx->mu);
        free(tx);
        return NULL;
    }
    return tx;
}

fut_executor_t *testexec_ex(testexec_t *tx)
{
    return tx->ex;
}

size_t testexec_pending(testexec_t *tx)
{
    pthread_mutex_lock(&tx->mu);
    size_t n = tx->pending;
    pthread_mutex_unlock(&tx->mu);
    return n;
}

bool testexec_run_one(testexec_t *tx)
{
    drop_cancelled(tx);
    return tx_try_run_one(tx);
}

size_t testexec_run_all(testexec_t *tx)
{
    size_t n = 0;
    while (testexec_run_one(tx))
        n++;
    drop_cancelled(tx);
    return n;
}

size_t testexec_submitted(testexec_t *tx)
{
    pthread_mutex_lock(&tx->mu);
    size_t n = tx->submitted;
    pthread_mutex_unlock(&tx->mu);
    return n;
}

size_t testexec_ran(testexec_t *tx)
{
    pthread_mutex_lock(&tx->mu);
    size_t n = tx->ran;
    pthread_mutex_unlock(&tx->mu);
    return n;
}

size_t testexec_taken(testexec_t *tx)
{
    pthread_mutex_lock(&tx->mu);
    size_t n = tx->taken;
    pthread_mutex_unlock(&tx->mu);
    return n;
}

void testexec_refuse(testexec_t *tx, int err)
{
    pthread_mutex_lock(&tx->mu);
    tx->refuse = err;
    pthread_mutex_unlock(&tx->mu);
}

size_t testexec_timers(testexec_t *tx)
{
    size_t n = 0;
    pthread_mutex_lock(&tx->mu);
    for (tx_timer_t *tm = tx->timers; tm; tm = tm->next)
        n += !tm->cancelled;
    pthread_mutex_unlock(&tx->mu);
    return n;
}

size_t testexec_fire_timers(testexec_t *tx, uint64_t now)
{
    size_t fired = 0;
    drop_cancelled(tx);
    for (;;) {
        tx_timer_t *found = NULL;
        pthread_mutex_lock(&tx->mu);
        for (tx_timer_t **pp = &tx->timers; *pp; pp = &(*pp)->next) {
            if (!(*pp)->cancelled && (*pp)->t->deadline_ns <= now) {
                found = *pp;
                *pp = found->next;
                break;
            }
        }
        pthread_mutex_unlock(&tx->mu);
        if (!found)
            break;
        fut_timer_fire(found->t);
        free(found);
        fired++;
    }
    drop_cancelled(tx);
    return fired;
}

int testexec_destroy(testexec_t *tx, size_t *ran, size_t *dropped)
{
    int rc = fut_executor_destroy(tx->ex);
    if (ran)
        *ran = tx->destroy_ran;
    if (dropped)
        *dropped = tx->destroy_dropped;
    if (rc == 0) {
        pthread_mutex_destroy(&tx->mu);
        free(tx);
    }
    return rc;
}

void *counted_new(atomic_int *counter)
{
    atomic_int **p = malloc(sizeof *p);
    if (p)
        *p = counter;
    return p;
}

void counted_free(void *p)
{
    atomic_int **c = p;
    atomic_fetch_add_explicit(*c, 1, memory_order_relaxed);
    free(p);
}

int run_on_small_stack(void *(*fn)(void *), void *arg, size_t stack_bytes)
{
    pthread_attr_t attr;
    pthread_t th;
    pthread_attr_init(&attr);
    int rc = pthread_attr_setstacksize(&attr, stack_bytes);
    if (rc == 0)
        rc = pthread_create(&th, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    if (rc == 0)
        rc = pthread_join(th, NULL);
    return rc;
}

atomic_long failalloc_calls, failalloc_live, failalloc_at;
atomic_int failalloc_failed;

void *failalloc_alloc(size_t n)
{
    long k = atomic_fetch_add(&failalloc_calls, 1) + 1;
    if (k == atomic_load(&failalloc_at)) {
        atomic_store(&failalloc_failed, 1);
        return NULL;
    }
    void *p = malloc(n);
    if (p)
        atomic_fetch_add(&failalloc_live, 1);
    return p;
}

void failalloc_free(void *p)
{
    if (!p)
        return;
    atomic_fetch_sub(&failalloc_live, 1);
    free(p);
}
