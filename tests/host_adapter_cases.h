/* The cases test_uv.c and test_glib.c share: the same behaviour checked on
 * two host-loop adapters (one binary each, as SConscript builds them; a
 * header, since a helper .c file in tests/ would be linked into every binary).
 *
 * The including file defines, before including this header:
 *   struct env      with a member `fut_executor_t *ex` (the adapter);
 *   env_open(e)     makes the host loop and the adapter on it;
 *   env_close(e)    destroys the adapter and the host loop;
 *   host_iterate(e, block)  runs one iteration of the host loop, sleeping
 *                   for work if BLOCK, not at all if not;
 *   host_timers_armed(e)    nonzero while a timer of the adapter is armed
 *                   in the host loop;
 *   HOST_NAME       the adapter's executor name ("uv", "glib").
 * and lists the host_case_* functions in its cmocka table under its own
 * test names with host_unit_test(). */
#ifndef HOST_ADAPTER_CASES_H
#define HOST_ADAPTER_CASES_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fut.h>

#define MS (1000 * 1000ull)

/* cmocka_unit_test() under an explicit name, so a shared case reports the
 * name the adapter's test file gives it. */
#define host_unit_test(name, f)                                                \
    {                                                                          \
        name, f, NULL, NULL, NULL                                              \
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
        host_iterate(e, 1);
    fut_release(seen);
}

static void host_case_executor_is_named(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    assert_string_equal(fut_executor_name(e.ex), HOST_NAME);
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

static void host_case_task_runs_on_the_loop_thread(void **state)
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

static void host_case_then_chain_of_1000_steps_runs_every_step(void **state)
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

static void host_case_continuation_of_pool_work_comes_back(void **state)
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

static void host_case_delay_fulfils_not_before_its_deadline(void **state)
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

static void host_case_timeout_made_on_loop_rejects_slow_future(void **state)
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
host_case_timeout_cancelled_from_other_thread_stops_timer(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    struct timeout_case c = {.ns = 3600 * 1000 * MS};
    c.inner = fut_promise_new(&c.p);
    fut_t *f = fut_async(e.ex, make_timeout, &c);
    while (!host_timers_armed(&e))
        host_iterate(&e, 1);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, settle_later, c.p), 0);
    run_until(&e, f);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(fut_value_i64(f), 5);
    while (host_timers_armed(&e)) /* the cancel was handed over */
        host_iterate(&e, 1);
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

static void host_case_burst_from_other_thread_takes_one_wakeup(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    atomic_store(&g_ran, 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, post_burst, &e), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    while (atomic_load(&g_ran) < BURST) /* batches of HOST_BATCH */
        host_iterate(&e, 0);
    fut_stats_t st;
    assert_int_equal(fut_executor_stats(e.ex, &st), 0);
    assert_int_equal(st.tasks_run, BURST);
    /* One wake-up for the burst, one per further batch of 256. */
    assert_int_equal(st.wakeups, (BURST + 255) / 256);
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
host_case_storm_of_posts_and_timers_from_threads_all_land(void **state)
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
        host_iterate(&e, 1);
    for (int i = 0; i < PRODUCERS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    /* The short delays fire (each start woke the loop), the long ones
     * are gone. */
    while (timers_fired(&e) < PRODUCERS * PER_PRODUCER / 10 ||
           host_timers_armed(&e))
        host_iterate(&e, 1);
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

static void host_case_wait_and_destroy_inside_work_are_edeadlk(void **state)
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

static void host_case_callback_over_100ms_is_reported_as_stall(void **state)
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
    assert_string_equal(g_stall_ex, HOST_NAME);
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

/* The fd readiness and socket operation cases, kept apart for size. */
#include "host_adapter_fd_cases.h"

#endif
