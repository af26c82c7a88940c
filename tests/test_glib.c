/* The GLib adapter (<fut/glib.h>) on a real GMainContext: tasks and chains
 * on the thread iterating it, the default context, delays and timeouts
 * (never early, cancelled ones leave no timer source), submissions from
 * other threads wake a sleeping context (one wake-up for a burst),
 * FUT_EDEADLK on that thread, stall reports, destroy (queued work and
 * timers settle FUT_ESHUTDOWN, every source gone at once). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include <fut.h>
#include <fut/glib.h>

#define MS (1000 * 1000ull)

struct env {
    GMainContext *ctx;
    fut_executor_t *ex;
};

static void env_open(struct env *e)
{
    e->ctx = g_main_context_new();
    assert_int_equal(fut_glib_create(&e->ex, e->ctx), 0);
    assert_non_null(e->ex);
}

static void env_close(struct env *e)
{
    assert_int_equal(fut_executor_destroy(e->ex), 0);
    g_main_context_unref(e->ctx);
}

static fut_result_t pass_on(void *arg, fut_t *src)
{
    (void)arg;
    return fut_forward(src);
}

/* Runs the loop until F settles.  F may settle on another thread (a
 * promise settled there), which wakes nothing: a follower on the executor
 * does, so the wait ends in the loop's own callback. */
static void run_until(struct env *e, fut_t *f)
{
    fut_t *seen = fut_finally(fut_retain(f), e->ex, pass_on, NULL);
    while (fut_state(seen) == FUT_PENDING)
        g_main_context_iteration(e->ctx, TRUE);
    fut_release(seen);
}

/* The timeout the context would poll with now: -1 if no timer source of
 * the adapter is attached (the test contexts hold nothing else). */
static int poll_timeout(struct env *e)
{
    GPollFD fds[8];
    gint prio, timeout = -1;
    assert_true(g_main_context_acquire(e->ctx));
    g_main_context_prepare(e->ctx, &prio);
    gint n = g_main_context_query(e->ctx, prio, &timeout, fds, 8);
    g_main_context_check(e->ctx, prio, fds, n);
    g_main_context_release(e->ctx);
    return timeout;
}

/* ---- create -----------------------------------------------------------------
 */

static void test_glib_create_rejects_null_out(void **state)
{
    (void)state;
    assert_int_equal(fut_glib_create(NULL, NULL), FUT_EINVAL);
}

static fut_result_t seven(void *arg)
{
    (void)arg;
    return fut_ok_i64(7);
}

static void test_glib_null_context_is_the_default_context(void **state)
{
    (void)state;
    fut_executor_t *ex = NULL;
    assert_int_equal(fut_glib_create(&ex, NULL), 0);
    fut_t *f = fut_async(ex, seven, NULL);
    while (fut_state(f) == FUT_PENDING)
        g_main_context_iteration(NULL, TRUE);
    assert_int_equal(fut_value_i64(f), 7);
    fut_release(f);
    assert_int_equal(fut_executor_destroy(ex), 0);
}

static void test_glib_executor_is_named_glib(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    assert_string_equal(fut_executor_name(e.ex), "glib");
    env_close(&e);
}

/* ---- tasks and chains -------------------------------------------------------
 */

struct seen {
    pthread_t thread;
    fut_executor_t *current;
};

static fut_result_t note_thread(void *arg)
{
    struct seen *s = arg;
    s->thread = pthread_self();
    s->current = fut_executor_current();
    return fut_ok_i64(7);
}

static void
test_glib_task_runs_on_the_thread_iterating_the_context(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    struct seen s = {0};
    fut_t *f = fut_async(e.ex, note_thread, &s);
    run_until(&e, f);
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    assert_int_equal(fut_value_i64(f), 7);
    assert_true(pthread_equal(s.thread, pthread_self()));
    assert_ptr_equal(s.current, e.ex);
    fut_release(f);
    env_close(&e);
}

static fut_result_t add_one(void *arg, fut_t *src)
{
    (void)arg;
    return fut_ok_i64(fut_value_i64(src) + 1);
}

static void test_glib_then_chain_of_1000_steps_runs_every_step(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    fut_t *f = fut_ready(fut_ok_i64(0));
    for (int i = 0; i < 1000; i++)
        f = fut_then(f, e.ex, add_one, NULL);
    run_until(&e, f);
    assert_int_equal(fut_value_i64(f), 1000);
    fut_release(f);
    env_close(&e);
}

static fut_result_t on_pool(void *arg)
{
    (void)arg;
    return fut_ok_i64(20);
}

static fut_result_t back_on_context(void *arg, fut_t *src)
{
    struct seen *s = arg;
    s->thread = pthread_self();
    s->current = fut_executor_current();
    return fut_ok_i64(fut_value_i64(src) * 2);
}

static void test_glib_continuation_of_pool_work_comes_back(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    fut_executor_t *pool = NULL;
    fut_pool_opts_t po = {.threads = 2};
    assert_int_equal(fut_pool_create(&pool, &po), 0);
    struct seen s = {0};
    fut_t *f =
        fut_then(fut_async(pool, on_pool, NULL), e.ex, back_on_context, &s);
    run_until(&e, f);
    assert_int_equal(fut_value_i64(f), 40);
    assert_true(pthread_equal(s.thread, pthread_self()));
    assert_ptr_equal(s.current, e.ex);
    fut_release(f);
    assert_int_equal(fut_executor_destroy(pool), 0);
    env_close(&e);
}

/* ---- timers -----------------------------------------------------------------
 */

static void test_glib_delay_fulfils_not_before_its_deadline(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    uint64_t t0 = fut_now_ns();
    fut_t *f = fut_delay(e.ex, 20 * MS);
    run_until(&e, f);
    assert_true(fut_now_ns() - t0 >= 20 * MS);
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    fut_stats_t st;
    assert_int_equal(fut_executor_stats(e.ex, &st), 0);
    assert_int_equal(st.timers_fired, 1);
    fut_release(f);
    env_close(&e);
}

static void test_glib_cancelled_delay_destroys_its_timer_source(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    fut_t *f = fut_delay(e.ex, 3600 * 1000 * MS);
    g_main_context_iteration(e.ctx, FALSE);      /* the start is taken */
    assert_true(poll_timeout(&e) > 1000 * 1000); /* its source: ~1 h */
    assert_int_equal(fut_cancel(f), 0);
    g_main_context_iteration(e.ctx, FALSE); /* the cancel was handed over */
    assert_int_equal(poll_timeout(&e), -1);
    assert_int_equal(fut_state(f), FUT_CANCELLED);
    fut_release(f);
    env_close(&e);
}

struct timeout_case {
    fut_promise_t *p;
    fut_t *inner;
    uint64_t ns;
};

static fut_result_t make_timeout(void *arg)
{
    struct timeout_case *c = arg;
    return fut_adopt(fut_timeout(c->inner, c->ns));
}

static void test_glib_timeout_made_on_context_rejects_slow_future(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    struct timeout_case c = {.ns = 10 * MS};
    c.inner = fut_promise_new(&c.p);
    fut_t *f = fut_async(e.ex, make_timeout, &c);
    run_until(&e, f);
    assert_int_equal(fut_error(f), FUT_ETIMEDOUT);
    fut_stats_t st;
    assert_int_equal(fut_executor_stats(e.ex, &st), 0);
    assert_int_equal(st.timers_fired, 1); /* kept by the adapter */
    fut_promise_drop(c.p);
    fut_release(f);
    env_close(&e);
}

static void *settle_later(void *arg)
{
    fut_promise_settle(arg, fut_ok_i64(5));
    return NULL;
}

static void
test_glib_timeout_cancelled_from_other_thread_stops_timer(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    struct timeout_case c = {.ns = 3600 * 1000 * MS};
    c.inner = fut_promise_new(&c.p);
    fut_t *f = fut_async(e.ex, make_timeout, &c);
    while (poll_timeout(&e) == -1)
        g_main_context_iteration(e.ctx, TRUE);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, settle_later, c.p), 0);
    run_until(&e, f);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(fut_value_i64(f), 5);
    while (poll_timeout(&e) != -1) /* the cancel was handed over */
        g_main_context_iteration(e.ctx, TRUE);
    fut_release(f);
    env_close(&e);
}

/* ---- other threads ----------------------------------------------------------
 */

#define BURST 1000

static atomic_int g_ran;

static void count_post(void *arg)
{
    (void)arg;
    atomic_fetch_add_explicit(&g_ran, 1, memory_order_relaxed);
}

static void *post_burst(void *arg)
{
    struct env *e = arg;
    for (int i = 0; i < BURST; i++)
        fut_post(e->ex, count_post, NULL);
    return NULL;
}

static void test_glib_burst_from_other_thread_takes_one_wakeup(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    atomic_store(&g_ran, 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, post_burst, &e), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    while (atomic_load(&g_ran) < BURST) /* batches of HOST_BATCH */
        g_main_context_iteration(e.ctx, FALSE);
    fut_stats_t st;
    assert_int_equal(fut_executor_stats(e.ex, &st), 0);
    assert_int_equal(st.tasks_run, BURST);
    /* One wake-up for the burst, one per further batch of 256. */
    assert_int_equal(st.wakeups, (BURST + 255) / 256);
    env_close(&e);
}

static void *post_burst_2(void *arg)
{
    struct env *e = arg;
    for (int i = 0; i < BURST; i++)
        fut_post(e->ex, count_post, NULL);
    return NULL;
}

static void
test_glib_submission_from_other_thread_wakes_sleeping_context(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    atomic_store(&g_ran, 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, post_burst_2, &e), 0);
    while (atomic_load(&g_ran) < BURST) /* sleeps until the thread's work */
        g_main_context_iteration(e.ctx, TRUE);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(atomic_load(&g_ran), BURST);
    env_close(&e);
}

/* ---- a storm of hand-offs
 * ---------------------------------------------------- */

#define PRODUCERS 3
#define PER_PRODUCER 3000

static atomic_int g_done;

static uint64_t timers_fired(struct env *e)
{
    fut_stats_t st;
    assert_int_equal(fut_executor_stats(e->ex, &st), 0);
    return st.timers_fired;
}

/* Posts, and every tenth time starts a long delay and cancels it at once
 * (a cancel the loop may take before the start) and a short one left to
 * fire: the three hand-off stacks from several threads at once.  TSan
 * checks the publication of every node (a relaxed push CAS is reported). */
static void *storm(void *arg)
{
    struct env *e = arg;
    for (int i = 0; i < PER_PRODUCER; i++) {
        fut_post(e->ex, count_post, NULL);
        if (i % 10 == 0) {
            fut_t *f = fut_delay(e->ex, 3600 * 1000 * MS);
            fut_cancel(f);
            fut_release(f);
            fut_release(fut_delay(e->ex, MS));
        }
    }
    atomic_fetch_add(&g_done, 1);
    return NULL;
}

static void
test_glib_storm_of_posts_and_timers_from_threads_all_land(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    atomic_store(&g_ran, 0);
    atomic_store(&g_done, 0);
    pthread_t th[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, storm, &e), 0);
    while (atomic_load(&g_ran) < PRODUCERS * PER_PRODUCER)
        g_main_context_iteration(e.ctx, TRUE);
    for (int i = 0; i < PRODUCERS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    /* The short delays fire (each start woke the loop), the long ones
     * are gone. */
    while (timers_fired(&e) < PRODUCERS * PER_PRODUCER / 10 ||
           poll_timeout(&e) != -1)
        g_main_context_iteration(e.ctx, TRUE);
    fut_stats_t st;
    assert_int_equal(fut_executor_stats(e.ex, &st), 0);
    assert_int_equal(st.tasks_run, PRODUCERS * PER_PRODUCER);
    assert_int_equal(st.timers_fired, PRODUCERS * PER_PRODUCER / 10);
    env_close(&e);
}

/* ---- never block, stalls ----------------------------------------------------
 */

struct wait_case {
    fut_t *pending;
    int rc;
    int destroy_rc;
};

static fut_result_t wait_on_context(void *arg)
{
    struct wait_case *w = arg;
    w->rc = fut_wait(w->pending, -1);
    w->destroy_rc = fut_executor_destroy(fut_executor_current());
    return fut_ok(NULL);
}

static void test_glib_wait_and_destroy_inside_work_are_edeadlk(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    fut_promise_t *p;
    struct wait_case w = {.pending = fut_promise_new(&p)};
    fut_t *f = fut_async(e.ex, wait_on_context, &w);
    run_until(&e, f);
    assert_int_equal(w.rc, FUT_EDEADLK);
    assert_int_equal(w.destroy_rc, FUT_EDEADLK);
    fut_promise_drop(p);
    fut_release(w.pending);
    fut_release(f);
    env_close(&e);
}

static int g_stalls;
static uint64_t g_stall_ns;
static const char *g_stall_ex;

static void on_log(void *ud, const fut_log_event_t *ev)
{
    (void)ud;
    if (ev->kind != FUT_LOG_STALL)
        return;
    g_stalls++;
    g_stall_ns = ev->duration_ns;
    g_stall_ex = ev->executor;
}

static fut_result_t spin_150ms(void *arg)
{
    (void)arg;
    uint64_t t0 = fut_now_ns();
    while (fut_now_ns() - t0 < 150 * MS)
        ;
    return fut_ok(NULL);
}

static void test_glib_callback_over_100ms_is_reported_as_stall(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    g_stalls = 0;
    fut_set_log(on_log, NULL);
    fut_t *f = fut_async(e.ex, spin_150ms, NULL);
    run_until(&e, f);
    fut_set_log(NULL, NULL);
    assert_int_equal(g_stalls, 1);
    assert_true(g_stall_ns >= 150 * MS);
    assert_string_equal(g_stall_ex, "glib");
    fut_stats_t st;
    assert_int_equal(fut_executor_stats(e.ex, &st), 0);
    assert_int_equal(st.stalls, 1);
    assert_true(st.longest_callback_ns >= 150 * MS);
    fut_release(f);
    env_close(&e);
}

/* ---- destroy ----------------------------------------------------------------
 */

static fut_result_t never_runs(void *arg)
{
    (void)arg;
    fail_msg("a task of a destroyed executor ran");
    return fut_ok(NULL);
}

static void
test_glib_destroy_settles_queued_work_and_timers_eshutdown(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    fut_t *started = fut_delay(e.ex, 3600 * 1000 * MS);
    g_main_context_iteration(e.ctx, FALSE); /* the start taken */
    assert_true(poll_timeout(&e) > 1000 * 1000);
    fut_t *task = fut_async(e.ex, never_runs, NULL);   /* handed over only */
    fut_t *queued = fut_delay(e.ex, 3600 * 1000 * MS); /* likewise */
    assert_int_equal(fut_executor_destroy(e.ex), 0);
    assert_int_equal(fut_error(task), FUT_ESHUTDOWN);
    assert_int_equal(fut_error(started), FUT_ESHUTDOWN);
    assert_int_equal(fut_error(queued), FUT_ESHUTDOWN);
    /* Every source of the adapter is gone already. */
    assert_int_equal(poll_timeout(&e), -1);
    assert_false(g_main_context_pending(e.ctx));
    g_main_context_unref(e.ctx);
    fut_release(task);
    fut_release(queued);
    fut_release(started);
}

static gboolean count_tick(gpointer arg)
{
    ++*(int *)arg;
    return G_SOURCE_CONTINUE;
}

static void
test_glib_destroy_leaves_the_context_to_the_application(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    int ticks = 0;
    GSource *mine = g_idle_source_new();
    g_source_set_callback(mine, count_tick, &ticks, NULL);
    g_source_attach(mine, e.ctx);
    assert_int_equal(fut_executor_destroy(e.ex), 0);
    g_main_context_iteration(e.ctx, FALSE);
    assert_int_equal(ticks, 1);
    assert_false(g_source_is_destroyed(mine));
    g_source_destroy(mine);
    g_source_unref(mine);
    g_main_context_unref(e.ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_glib_create_rejects_null_out),
        cmocka_unit_test(test_glib_null_context_is_the_default_context),
        cmocka_unit_test(test_glib_executor_is_named_glib),
        cmocka_unit_test(
            test_glib_task_runs_on_the_thread_iterating_the_context),
        cmocka_unit_test(test_glib_then_chain_of_1000_steps_runs_every_step),
        cmocka_unit_test(test_glib_continuation_of_pool_work_comes_back),
        cmocka_unit_test(test_glib_delay_fulfils_not_before_its_deadline),
        cmocka_unit_test(test_glib_cancelled_delay_destroys_its_timer_source),
        cmocka_unit_test(test_glib_timeout_made_on_context_rejects_slow_future),
        cmocka_unit_test(
            test_glib_timeout_cancelled_from_other_thread_stops_timer),
        cmocka_unit_test(test_glib_burst_from_other_thread_takes_one_wakeup),
        cmocka_unit_test(
            test_glib_submission_from_other_thread_wakes_sleeping_context),
        cmocka_unit_test(
            test_glib_storm_of_posts_and_timers_from_threads_all_land),
        cmocka_unit_test(test_glib_wait_and_destroy_inside_work_are_edeadlk),
        cmocka_unit_test(test_glib_callback_over_100ms_is_reported_as_stall),
        cmocka_unit_test(
            test_glib_destroy_settles_queued_work_and_timers_eshutdown),
        cmocka_unit_test(
            test_glib_destroy_leaves_the_context_to_the_application),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
