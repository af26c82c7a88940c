/* The event loop: task order, cross-thread storms, timers (order, never
 * early, many, cancelled ones leave no memory), stall reports, FUT_EDEADLK,
 * stop, run-until, destroy while running.  fd readiness is in
 * test_loop_fd.c, the pool hop in test_loop_pool.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <fut.h>

#define MS (1000 * 1000ull)

static fut_executor_t *new_loop(const fut_loop_opts_t *o)
{
    fut_executor_t *l = NULL;
    assert_int_equal(fut_loop_create(&l, o), 0);
    assert_non_null(l);
    return l;
}

/* ---- local order -------------------------------------------------------- */

struct order {
    int seen[200];
    int n;
    fut_executor_t *loop;
    fut_t *last;
};

struct step {
    struct order *o;
    int i;
};

static fut_result_t record(void *arg)
{
    struct step *s = arg;
    s->o->seen[s->o->n++] = s->i;
    return fut_ok_i64(s->i);
}

static struct step g_steps[200];

static fut_result_t spawn_all(void *arg)
{
    struct order *o = arg;
    for (int i = 0; i < 200; i++) {
        g_steps[i] = (struct step){o, i};
        fut_t *f = fut_async(o->loop, record, &g_steps[i]);
        if (i == 199)
            o->last = f;
        else
            fut_release(f);
    }
    return fut_ok(NULL);
}

static void test_loop_runs_own_submissions_in_fifo_order(void **state)
{
    (void)state;
    struct order o = {.n = 0};
    o.loop = new_loop(NULL);
    fut_t *f = fut_async(o.loop, spawn_all, &o);
    assert_int_equal(fut_loop_run(o.loop, f), 0);
    assert_non_null(o.last);
    assert_int_equal(fut_loop_run(o.loop, o.last), 0);
    assert_int_equal(o.n, 200);
    for (int i = 0; i < 200; i++)
        assert_int_equal(o.seen[i], i);
    fut_release(o.last);
    fut_release(f);
    fut_stats_t st;
    assert_int_equal(fut_executor_stats(o.loop, &st), 0);
    assert_true(st.tasks_run >= 201);
    assert_int_equal(fut_executor_destroy(o.loop), 0);
}

/* ---- cross-thread storm ------------------------------------------------- */

enum {
    STORM_THREADS = 4,
    STORM_PER = 25000,
    STORM_N = STORM_THREADS * STORM_PER
};

struct storm {
    fut_executor_t *loop;
    atomic_uchar runs[STORM_N];
    long done;               /* loop thread only */
    fut_promise_t *all_done; /* settled by the last task */
    int tid[STORM_THREADS];
    atomic_int bad;
};

static struct storm g_storm;

static fut_result_t storm_task(void *arg)
{
    size_t id = (size_t)(uintptr_t)arg;
    atomic_fetch_add_explicit(&g_storm.runs[id], 1, memory_order_relaxed);
    if (++g_storm.done == STORM_N)
        fut_promise_settle(g_storm.all_done, fut_ok(NULL));
    return fut_ok(NULL);
}

static void *storm_producer(void *arg)
{
    int t = *(int *)arg;
    for (size_t i = 0; i < STORM_PER; i++) {
        size_t id = (size_t)t * STORM_PER + i;
        fut_t *f = fut_async(g_storm.loop, storm_task, (void *)(uintptr_t)id);
        if (fut_state(f) == FUT_REJECTED)
            atomic_fetch_add(&g_storm.bad, 1);
        fut_release(f);
    }
    return NULL;
}

static void test_loop_cross_thread_storm_runs_each_task_once(void **state)
{
    (void)state;
    memset(&g_storm, 0, sizeof g_storm);
    g_storm.loop = new_loop(NULL);
    fut_t *done = fut_promise_new(&g_storm.all_done);
    pthread_t th[STORM_THREADS];
    for (int t = 0; t < STORM_THREADS; t++) {
        g_storm.tid[t] = t;
        pthread_create(&th[t], NULL, storm_producer, &g_storm.tid[t]);
    }
    assert_int_equal(fut_loop_run(g_storm.loop, done), 0);
    for (int t = 0; t < STORM_THREADS; t++)
        pthread_join(th[t], NULL);
    assert_int_equal(fut_state(done), FUT_FULFILLED);
    assert_int_equal(atomic_load(&g_storm.bad), 0);
    for (size_t i = 0; i < STORM_N; i++)
        assert_int_equal(atomic_load(&g_storm.runs[i]), 1);
    fut_stats_t st;
    fut_executor_stats(g_storm.loop, &st);
    assert_true(st.tasks_run >= STORM_N);
    /* Batching: far fewer eventfd wake-ups than tasks. */
    assert_true(st.wakeups < STORM_N / 2);
    fut_release(done);
    assert_int_equal(fut_executor_destroy(g_storm.loop), 0);
}

/* ---- timers ------------------------------------------------------------- */

enum { ORDER_N = 400 };

struct tcase {
    uint64_t lo, hi; /* the deadline lies in [lo, hi] */
    uint64_t fired;  /* when the continuation ran */
    int *order, *n;
    int i;
};

static fut_result_t tfired(void *arg, fut_t *src)
{
    struct tcase *c = arg;
    (void)src;
    c->fired = fut_now_ns();
    c->order[(*c->n)++] = c->i;
    return fut_ok(NULL);
}

struct tset {
    fut_executor_t *loop;
    struct tcase *c;
    int *order, n, count;
    fut_t **fs;
    uint64_t max_ns;
};

static fut_result_t arm_all(void *arg)
{
    struct tset *s = arg;
    for (int i = 0; i < s->count; i++) {
        uint64_t ns = (uint64_t)rand() % s->max_ns;
        s->c[i] = (struct tcase){.order = s->order, .n = &s->n, .i = i};
        s->c[i].lo = fut_now_ns() + ns;
        fut_t *d = fut_delay(s->loop, ns);
        s->c[i].hi = fut_now_ns() + ns;
        s->fs[i] = fut_then(d, s->loop, tfired, &s->c[i]);
    }
    return fut_ok(NULL);
}

static void run_timer_set(struct tset *s)
{
    s->c = calloc((size_t)s->count, sizeof *s->c);
    s->order = calloc((size_t)s->count, sizeof *s->order);
    s->fs = calloc((size_t)s->count, sizeof *s->fs);
    fut_t *armed = fut_async(s->loop, arm_all, s);
    assert_int_equal(fut_loop_run(s->loop, armed), 0);
    fut_release(armed);
    fut_t *all = fut_all(s->fs, (size_t)s->count);
    assert_int_equal(fut_loop_run(s->loop, all), 0);
    assert_int_equal(fut_state(all), FUT_FULFILLED);
    fut_release(all);
    assert_int_equal(s->n, s->count);
    for (int k = 0; k < s->count; k++) {
        struct tcase *c = &s->c[s->order[k]];
        assert_true(c->fired >= c->lo); /* never early */
        if (k > 0) /* deadline order: prev.deadline <= this.deadline */
            assert_true(s->c[s->order[k - 1]].lo <= c->hi);
    }
}

static void test_loop_timers_fire_in_deadline_order_never_early(void **state)
{
    (void)state;
    srand(7);
    struct tset s = {
        .loop = new_loop(NULL), .count = ORDER_N, .max_ns = 30 * MS};
    run_timer_set(&s);
    fut_stats_t st;
    fut_executor_stats(s.loop, &st);
    assert_int_equal(st.timers_fired, ORDER_N);
    assert_int_equal(fut_executor_destroy(s.loop), 0);
    free(s.c), free(s.order), free(s.fs);
}

static void test_loop_hundred_thousand_concurrent_timers(void **state)
{
    (void)state;
    srand(11);
    struct tset s = {
        .loop = new_loop(NULL), .count = 100000, .max_ns = 50 * MS};
    run_timer_set(&s);
    assert_int_equal(fut_executor_destroy(s.loop), 0);
    free(s.c), free(s.order), free(s.fs);
}

/* A counting allocator: live bytes and peak. */
static atomic_long g_live, g_peak;

static void *count_alloc(size_t n)
{
    size_t *p = malloc(n + 16);
    if (!p)
        return NULL;
    p[0] = n;
    long now = atomic_fetch_add(&g_live, (long)n) + (long)n;
    long pk = atomic_load(&g_peak);
    while (now > pk && !atomic_compare_exchange_weak(&g_peak, &pk, now))
        ;
    return (char *)p + 16;
}

static void count_free(void *q)
{
    if (!q)
        return;
    size_t *p = (size_t *)(void *)((char *)q - 16);
    atomic_fetch_sub(&g_live, (long)p[0]);
    free(p);
}

struct cancel_storm {
    fut_executor_t *loop;
    long n;
};

static fut_result_t delay_and_cancel(void *arg)
{
    struct cancel_storm *c = arg;
    for (long i = 0; i < c->n; i++) {
        fut_t *d = fut_delay(c->loop, 3600 * 1000 * MS);
        fut_cancel(d);
        fut_release(d);
    }
    return fut_ok(NULL);
}

static void *cancel_from_thread(void *arg)
{
    struct cancel_storm *c = arg;
    delay_and_cancel(c);
    return NULL;
}

static void test_loop_cancelled_delays_free_at_once(void **state)
{
    (void)state;
    fut_set_allocator(count_alloc, count_free);
    struct cancel_storm c = {.loop = new_loop(NULL), .n = 1000000};
    long base = atomic_load(&g_live);
    atomic_store(&g_peak, base);
    fut_t *f = fut_async(c.loop, delay_and_cancel, &c);
    assert_int_equal(fut_loop_run(c.loop, f), 0);
    fut_release(f);
    /* 10^6 delays of 128 bytes would be 128 MB; all we allow is slab and
     * heap slack. */
    assert_true(atomic_load(&g_peak) - base < 4 * 1024 * 1024);
    assert_true(atomic_load(&g_live) - base < 1024 * 1024);
    /* From another thread: the cancels travel to the loop. */
    c.n = 20000;
    pthread_t th;
    pthread_create(&th, NULL, cancel_from_thread, &c);
    pthread_join(th, NULL);
    fut_t *tick = fut_delay(c.loop, 1 * MS);
    assert_int_equal(fut_loop_run(c.loop, tick), 0);
    fut_release(tick);
    assert_true(atomic_load(&g_live) - base < 1024 * 1024);
    assert_int_equal(fut_executor_destroy(c.loop), 0);
    fut_set_allocator(NULL, NULL);
    assert_true(atomic_load(&g_live) < 64 * 1024);
}

/* Starts and cancels from another thread while the loop runs: a cancel may
 * reach the loop before its start does. */
enum { XT_N = 20000 };

struct xtimers {
    fut_executor_t *loop;
    fut_t *fs[XT_N];
    fut_promise_t *done;
};

static void *start_and_cancel(void *arg)
{
    struct xtimers *x = arg;
    for (int i = 0; i < XT_N; i++) {
        bool fire = i % 3 == 0;
        x->fs[i] = fut_delay(x->loop, fire ? (uint64_t)(i % 7) * 1000
                                           : 3600 * 1000 * MS);
        if (!fire)
            fut_cancel(x->fs[i]);
    }
    fut_promise_settle(x->done, fut_ok(NULL));
    return NULL;
}

static void test_loop_cross_thread_timer_start_and_cancel_race(void **state)
{
    (void)state;
    static struct xtimers x;
    x.loop = new_loop(NULL);
    fut_t *done = fut_promise_new(&x.done);
    pthread_t th;
    pthread_create(&th, NULL, start_and_cancel, &x);
    assert_int_equal(fut_loop_run(x.loop, done), 0);
    pthread_join(th, NULL);
    fut_release(done);
    for (int i = 0; i < XT_N; i++)
        fut_retain(x.fs[i]);
    fut_t *all = fut_all_settled(x.fs, XT_N);
    assert_int_equal(fut_loop_run(x.loop, all), 0);
    fut_release(all);
    int fired = 0;
    for (int i = 0; i < XT_N; i++) {
        if (i % 3 == 0) {
            assert_int_equal(fut_state(x.fs[i]), FUT_FULFILLED);
            fired++;
        } else {
            assert_int_equal(fut_error(x.fs[i]), FUT_ECANCELED);
        }
        fut_release(x.fs[i]);
    }
    fut_stats_t st;
    fut_executor_stats(x.loop, &st);
    assert_int_equal(st.timers_fired, (uint64_t)fired);
    assert_int_equal(fut_executor_destroy(x.loop), 0);
}

/* ---- stalls, FUT_EDEADLK ------------------------------------------------ */

static atomic_int g_stalls;
static atomic_ullong g_stall_ns;
static const void *_Atomic g_stall_fn;

static void stall_hook(void *ud, const fut_log_event_t *ev)
{
    (void)ud;
    if (ev->kind != FUT_LOG_STALL)
        return;
    atomic_fetch_add(&g_stalls, 1);
    atomic_store(&g_stall_ns, ev->duration_ns);
    atomic_store(&g_stall_fn, ev->fn);
}

static fut_result_t sleepy(void *arg)
{
    (void)arg;
    struct timespec ts = {0, 200 * 1000 * 1000};
    nanosleep(&ts, NULL);
    return fut_ok(NULL);
}

static fut_result_t quick(void *arg)
{
    (void)arg;
    return fut_ok(NULL);
}

static void stall_once(fut_executor_t *loop)
{
    atomic_store(&g_stalls, 0);
    fut_t *fs[3] = {fut_async(loop, quick, NULL), fut_async(loop, sleepy, NULL),
                    fut_async(loop, quick, NULL)};
    fut_t *all = fut_all(fs, 3);
    assert_int_equal(fut_loop_run(loop, all), 0);
    fut_release(all);
    assert_int_equal(atomic_load(&g_stalls), 1);
    assert_true(atomic_load(&g_stall_ns) >= 200 * MS);
    assert_ptr_equal(atomic_load(&g_stall_fn), (const void *)(uintptr_t)sleepy);
    fut_stats_t st;
    fut_executor_stats(loop, &st);
    assert_int_equal(st.stalls, 1);
    assert_true(st.longest_callback_ns >= 200 * MS);
}

static void test_loop_reports_a_stall_once_through_the_option_hook(void **s)
{
    (void)s;
    fut_loop_opts_t o = {.log = stall_hook};
    fut_executor_t *loop = new_loop(&o);
    stall_once(loop);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

static void test_loop_reports_a_stall_once_through_fut_set_log(void **s)
{
    (void)s;
    fut_set_log(stall_hook, NULL);
    fut_executor_t *loop = new_loop(NULL);
    stall_once(loop);
    fut_set_log(NULL, NULL);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

/* Tasks of one function back to back are timed as one run (loop.c:
 * run_tasks): a long call among quick ones of the same function is still
 * reported once, naming the function. */
static fut_result_t nap_if(void *arg)
{
    if (arg) {
        struct timespec ts = {0, (long)(uintptr_t)arg * (long)MS};
        nanosleep(&ts, NULL);
    }
    return fut_ok(NULL);
}

/* Runs N tasks of nap_if on LOOP, the I-th sleeping MS_OF(I) ms. */
static void run_naps(fut_executor_t *loop, int n, uintptr_t (*ms_of)(int))
{
    fut_t *fs[8];
    for (int i = 0; i < n; i++)
        fs[i] = fut_async(loop, nap_if, (void *)ms_of(i));
    fut_t *all = fut_all(fs, (size_t)n);
    assert_int_equal(fut_loop_run(loop, all), 0);
    fut_release(all);
}

static uintptr_t one_long_nap(int i)
{
    return i == 3 ? 200 : 0;
}

static void test_loop_reports_a_stall_inside_a_run_of_one_function(void **s)
{
    (void)s;
    fut_loop_opts_t o = {.log = stall_hook};
    fut_executor_t *loop = new_loop(&o);
    atomic_store(&g_stalls, 0);
    run_naps(loop, 7, one_long_nap);
    assert_int_equal(atomic_load(&g_stalls), 1);
    assert_true(atomic_load(&g_stall_ns) >= 200 * MS);
    assert_ptr_equal(atomic_load(&g_stall_fn), (const void *)(uintptr_t)nap_if);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

static uintptr_t short_naps(int i)
{
    (void)i;
    return 40;
}

/* Four calls of 40 ms, each under stall_ns (100 ms), hold the loop 160 ms
 * back to back: reported as one stall of their function. */
static void test_loop_reports_a_run_of_one_function_that_holds_it(void **s)
{
    (void)s;
    fut_loop_opts_t o = {.log = stall_hook};
    fut_executor_t *loop = new_loop(&o);
    atomic_store(&g_stalls, 0);
    run_naps(loop, 4, short_naps);
    assert_int_equal(atomic_load(&g_stalls), 1);
    assert_true(atomic_load(&g_stall_ns) >= 160 * MS);
    assert_ptr_equal(atomic_load(&g_stall_fn), (const void *)(uintptr_t)nap_if);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

static int g_wait_rc;

static fut_result_t wait_on_loop(void *arg)
{
    (void)arg;
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    g_wait_rc = fut_wait(f, -1);
    fut_promise_drop(p);
    fut_release(f);
    return fut_ok(NULL);
}

static void test_loop_wait_on_loop_thread_is_edeadlk(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop(NULL);
    g_wait_rc = 0;
    fut_t *f = fut_async(loop, wait_on_loop, NULL);
    assert_int_equal(fut_loop_run(loop, f), 0);
    assert_int_equal(g_wait_rc, FUT_EDEADLK);
    fut_release(f);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

/* ---- run, stop, destroy ------------------------------------------------- */

struct runner {
    fut_executor_t *loop;
    fut_t *until;
    int rc;
    atomic_int started;
};

static void *run_thread(void *arg)
{
    struct runner *r = arg;
    atomic_store(&r->started, 1);
    r->rc = fut_loop_run(r->loop, r->until);
    return NULL;
}

static void *settle_later(void *arg)
{
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    fut_promise_settle(arg, fut_ok_i64(5));
    return NULL;
}

static void test_loop_run_returns_when_until_settles_elsewhere(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop(NULL);
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    pthread_t th;
    pthread_create(&th, NULL, settle_later, p);
    assert_int_equal(fut_loop_run(loop, f), 0);
    assert_int_equal(fut_value_i64(f), 5);
    pthread_join(th, NULL);
    fut_release(f);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

static void test_loop_stop_from_another_thread(void **state)
{
    (void)state;
    struct runner r = {.loop = new_loop(NULL)};
    pthread_t th;
    pthread_create(&th, NULL, run_thread, &r);
    while (!atomic_load(&r.started))
        sched_yield();
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
    assert_int_equal(fut_loop_run(r.loop, NULL), FUT_EALREADY);
    fut_loop_stop(r.loop);
    pthread_join(th, NULL);
    assert_int_equal(r.rc, 0);
    /* A stop before the run makes it return after one round. */
    fut_loop_stop(r.loop);
    assert_int_equal(fut_loop_run(r.loop, NULL), 0);
    assert_int_equal(fut_executor_destroy(r.loop), 0);
}

static fut_result_t never(void *arg, fut_t *src)
{
    (void)arg, (void)src;
    return fut_ok(NULL);
}

static void test_loop_destroy_while_running_settles_eshutdown(void **state)
{
    (void)state;
    struct runner r = {.loop = new_loop(NULL)};
    pthread_t th;
    pthread_create(&th, NULL, run_thread, &r);
    while (!atomic_load(&r.started))
        sched_yield();
    fut_t *d = fut_delay(r.loop, 3600 * 1000 * MS);
    fut_t *t =
        fut_then(fut_delay(r.loop, 3600 * 1000 * MS), r.loop, never, NULL);
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    fut_t *rd = fut_fd_ready(r.loop, pfd[0], FUT_READABLE);
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    assert_int_equal(fut_executor_destroy(r.loop), 0);
    pthread_join(th, NULL);
    assert_int_equal(r.rc, 0);
    assert_int_equal(fut_error(d), FUT_ESHUTDOWN);
    assert_int_equal(fut_error(t), FUT_ESHUTDOWN);
    assert_int_equal(fut_error(rd), FUT_ESHUTDOWN);
    fut_release(d), fut_release(t), fut_release(rd);
    close(pfd[0]), close(pfd[1]);
}

static void test_loop_bad_arguments(void **state)
{
    (void)state;
    assert_int_equal(fut_loop_create(NULL, NULL), FUT_EINVAL);
    assert_int_equal(fut_loop_run(fut_inline(), NULL), FUT_EINVAL);
    fut_t *f = fut_fd_ready(fut_inline(), 0, FUT_READABLE);
    assert_int_equal(fut_error(f), FUT_EINVAL);
    fut_release(f);
    fut_executor_t *loop = new_loop(NULL);
    f = fut_fd_ready(loop, -1, FUT_READABLE);
    assert_int_equal(fut_error(f), FUT_EINVAL);
    fut_release(f);
    f = fut_fd_ready(loop, 0, 0);
    assert_int_equal(fut_error(f), FUT_EINVAL);
    fut_release(f);
    assert_string_equal(fut_executor_name(loop), "loop");
    fut_loop_stop(NULL);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loop_runs_own_submissions_in_fifo_order),
        cmocka_unit_test(test_loop_cross_thread_storm_runs_each_task_once),
        cmocka_unit_test(test_loop_timers_fire_in_deadline_order_never_early),
        cmocka_unit_test(test_loop_hundred_thousand_concurrent_timers),
        cmocka_unit_test(test_loop_cancelled_delays_free_at_once),
        cmocka_unit_test(test_loop_cross_thread_timer_start_and_cancel_race),
        cmocka_unit_test(
            test_loop_reports_a_stall_once_through_the_option_hook),
        cmocka_unit_test(test_loop_reports_a_stall_once_through_fut_set_log),
        cmocka_unit_test(
            test_loop_reports_a_stall_inside_a_run_of_one_function),
        cmocka_unit_test(test_loop_reports_a_run_of_one_function_that_holds_it),
        cmocka_unit_test(test_loop_wait_on_loop_thread_is_edeadlk),
        cmocka_unit_test(test_loop_run_returns_when_until_settles_elsewhere),
        cmocka_unit_test(test_loop_stop_from_another_thread),
        cmocka_unit_test(test_loop_destroy_while_running_settles_eshutdown),
        cmocka_unit_test(test_loop_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
