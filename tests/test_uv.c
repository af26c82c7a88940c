/* The libuv adapter (<fut/uv.h>) on a real uv_loop_t: tasks and chains on
 * the loop thread, delays and timeouts (never early, cancelled ones leave
 * no uv handle), submissions from other threads wake a sleeping loop (one
 * wake-up for a burst), FUT_EDEADLK on the loop thread, stall reports,
 * destroy (queued work and timers settle FUT_ESHUTDOWN, handles closed by
 * the next run, the loop closes clean). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include <fut.h>
#include <fut/uv.h>

#define MS (1000 * 1000ull)

struct env {
    uv_loop_t loop;
    fut_executor_t *ex;
};

static struct env *g_env; /* for callbacks that stop the loop */

static void env_open(struct env *e)
{
    assert_int_equal(uv_loop_init(&e->loop), 0);
    assert_int_equal(fut_uv_create(&e->ex, &e->loop), 0);
    assert_non_null(e->ex);
    g_env = e;
}

/* Destroys the executor, lets the loop finish the closes, closes it. */
static void env_close(struct env *e)
{
    assert_int_equal(fut_executor_destroy(e->ex), 0);
    assert_int_equal(uv_run(&e->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&e->loop), 0);
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
        uv_run(&e->loop, UV_RUN_ONCE);
    fut_release(seen);
}

static fut_result_t stop_loop(void *arg, fut_t *src)
{
    (void)arg;
    (void)src;
    uv_stop(&g_env->loop);
    return fut_ok(NULL);
}

/* ---- create -----------------------------------------------------------------
 */

static void test_uv_create_rejects_null_arguments(void **state)
{
    (void)state;
    uv_loop_t loop;
    fut_executor_t *ex = NULL;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(fut_uv_create(NULL, &loop), FUT_EINVAL);
    assert_int_equal(fut_uv_create(&ex, NULL), FUT_EINVAL);
    assert_null(ex);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_uv_executor_is_named_uv(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    assert_string_equal(fut_executor_name(e.ex), "uv");
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

static void test_uv_task_runs_on_the_thread_running_uv_run(void **state)
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

static void test_uv_then_chain_of_1000_steps_runs_every_step(void **state)
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

static fut_result_t back_on_loop(void *arg, fut_t *src)
{
    struct seen *s = arg;
    s->thread = pthread_self();
    s->current = fut_executor_current();
    return fut_ok_i64(fut_value_i64(src) * 2);
}

static void test_uv_continuation_of_pool_work_comes_back_to_loop(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    fut_executor_t *pool = NULL;
    fut_pool_opts_t po = {.threads = 2};
    assert_int_equal(fut_pool_create(&pool, &po), 0);
    struct seen s = {0};
    fut_t *f = fut_then(fut_async(pool, on_pool, NULL), e.ex, back_on_loop, &s);
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

static void test_uv_delay_fulfils_not_before_its_deadline(void **state)
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

static void count_timer(uv_handle_t *h, void *arg)
{
    if (h->type == UV_TIMER && uv_is_active(h))
        ++*(int *)arg;
}

static int active_timers(struct env *e)
{
    int n = 0;
    uv_walk(&e->loop, count_timer, &n);
    return n;
}

static void test_uv_cancelled_delay_stops_its_uv_timer(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    fut_t *f = fut_delay(e.ex, 3600 * 1000 * MS);
    uv_run(&e.loop, UV_RUN_NOWAIT); /* the start reaches the loop */
    assert_int_equal(active_timers(&e), 1);
    assert_int_equal(fut_cancel(f), 0);
    for (int i = 0; i < 3 && active_timers(&e); i++)
        uv_run(&e.loop, UV_RUN_NOWAIT);
    assert_int_equal(active_timers(&e), 0);
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

static void test_uv_timeout_made_on_loop_rejects_slow_future(void **state)
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
test_uv_timeout_cancelled_from_other_thread_stops_timer(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    struct timeout_case c = {.ns = 3600 * 1000 * MS};
    c.inner = fut_promise_new(&c.p);
    fut_t *f = fut_async(e.ex, make_timeout, &c);
    while (active_timers(&e) == 0)
        uv_run(&e.loop, UV_RUN_ONCE);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, settle_later, c.p), 0);
    run_until(&e, f);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(fut_value_i64(f), 5);
    while (active_timers(&e))
        uv_run(&e.loop, UV_RUN_ONCE); /* the cancel was handed over */
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

static void test_uv_burst_from_other_thread_takes_one_wakeup(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    atomic_store(&g_ran, 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, post_burst, &e), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    uv_run(&e.loop, UV_RUN_NOWAIT);
    while (atomic_load(&g_ran) < BURST) /* batches of HOST_BATCH */
        uv_run(&e.loop, UV_RUN_NOWAIT);
    fut_stats_t st;
    assert_int_equal(fut_executor_stats(e.ex, &st), 0);
    assert_int_equal(st.tasks_run, BURST);
    /* One wake-up for the burst, one per further batch of 256. */
    assert_int_equal(st.wakeups, (BURST + 255) / 256);
    env_close(&e);
}

static void *post_then_stop(void *arg)
{
    struct env *e = arg;
    for (int i = 0; i < BURST; i++)
        fut_post(e->ex, count_post, NULL);
    fut_release(fut_then(fut_ready(fut_ok(NULL)), e->ex, stop_loop, NULL));
    return NULL;
}

static void
test_uv_submission_from_other_thread_wakes_sleeping_loop(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    atomic_store(&g_ran, 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, post_then_stop, &e), 0);
    uv_run(&e.loop, UV_RUN_DEFAULT); /* sleeps until the thread's work */
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
test_uv_storm_of_posts_and_timers_from_threads_all_land(void **state)
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
        uv_run(&e.loop, UV_RUN_ONCE);
    for (int i = 0; i < PRODUCERS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    /* The short delays fire (each start woke the loop), the long ones
     * are gone. */
    while (timers_fired(&e) < PRODUCERS * PER_PRODUCER / 10 ||
           active_timers(&e) != 0)
        uv_run(&e.loop, UV_RUN_ONCE);
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

static fut_result_t wait_on_loop(void *arg)
{
    struct wait_case *w = arg;
    w->rc = fut_wait(w->pending, -1);
    w->destroy_rc = fut_executor_destroy(fut_executor_current());
    return fut_ok(NULL);
}

static void test_uv_wait_and_destroy_inside_work_are_edeadlk(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    fut_promise_t *p;
    struct wait_case w = {.pending = fut_promise_new(&p)};
    fut_t *f = fut_async(e.ex, wait_on_loop, &w);
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

static void test_uv_callback_over_100ms_is_reported_as_stall(void **state)
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
    assert_string_equal(g_stall_ex, "uv");
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
test_uv_destroy_settles_queued_work_and_timers_eshutdown(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    fut_t *started = fut_delay(e.ex, 3600 * 1000 * MS);
    uv_run(&e.loop, UV_RUN_NOWAIT); /* the start taken: a uv timer runs */
    fut_t *task = fut_async(e.ex, never_runs, NULL);   /* handed over only */
    fut_t *queued = fut_delay(e.ex, 3600 * 1000 * MS); /* likewise */
    assert_int_equal(active_timers(&e), 1);
    assert_int_equal(fut_executor_destroy(e.ex), 0);
    assert_int_equal(fut_error(task), FUT_ESHUTDOWN);
    assert_int_equal(fut_error(started), FUT_ESHUTDOWN);
    assert_int_equal(fut_error(queued), FUT_ESHUTDOWN);
    /* The next run finishes the closes; nothing of the adapter is left. */
    assert_int_equal(uv_run(&e.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&e.loop), 0);
    fut_release(task);
    fut_release(queued);
    fut_release(started);
}

static void noop_timer(uv_timer_t *t)
{
    (void)t;
}

static void test_uv_destroy_leaves_the_loop_to_the_application(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    uv_timer_t mine;
    assert_int_equal(uv_timer_init(&e.loop, &mine), 0);
    assert_int_equal(uv_timer_start(&mine, noop_timer, 3600 * 1000, 0), 0);
    assert_int_equal(fut_executor_destroy(e.ex), 0);
    uv_run(&e.loop, UV_RUN_NOWAIT);
    assert_false(uv_is_closing((uv_handle_t *)&mine));
    assert_true(uv_is_active((uv_handle_t *)&mine));
    uv_close((uv_handle_t *)&mine, NULL);
    assert_int_equal(uv_run(&e.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&e.loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uv_create_rejects_null_arguments),
        cmocka_unit_test(test_uv_executor_is_named_uv),
        cmocka_unit_test(test_uv_task_runs_on_the_thread_running_uv_run),
        cmocka_unit_test(test_uv_then_chain_of_1000_steps_runs_every_step),
        cmocka_unit_test(test_uv_continuation_of_pool_work_comes_back_to_loop),
        cmocka_unit_test(test_uv_delay_fulfils_not_before_its_deadline),
        cmocka_unit_test(test_uv_cancelled_delay_stops_its_uv_timer),
        cmocka_unit_test(test_uv_timeout_made_on_loop_rejects_slow_future),
        cmocka_unit_test(
            test_uv_timeout_cancelled_from_other_thread_stops_timer),
        cmocka_unit_test(test_uv_burst_from_other_thread_takes_one_wakeup),
        cmocka_unit_test(
            test_uv_submission_from_other_thread_wakes_sleeping_loop),
        cmocka_unit_test(
            test_uv_storm_of_posts_and_timers_from_threads_all_land),
        cmocka_unit_test(test_uv_wait_and_destroy_inside_work_are_edeadlk),
        cmocka_unit_test(test_uv_callback_over_100ms_is_reported_as_stall),
        cmocka_unit_test(
            test_uv_destroy_settles_queued_work_and_timers_eshutdown),
        cmocka_unit_test(test_uv_destroy_leaves_the_loop_to_the_application),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
