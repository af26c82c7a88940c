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

static fut_result_t stop_loop(void *arg, fut_t *src)
{
    (void)arg;
    (void)src;
    uv_stop(&g_env->loop);
    return fut_ok(NULL);
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

static void host_iterate(struct env *e, int block)
{
    uv_run(&e->loop, block ? UV_RUN_ONCE : UV_RUN_NOWAIT);
}

static int host_timers_armed(struct env *e)
{
    return active_timers(e) != 0;
}

#define HOST_NAME "uv"
#include "host_adapter_cases.h"

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

/* ---- timers -----------------------------------------------------------------
 */

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

/* ---- other threads ----------------------------------------------------------
 */

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

/* ---- destroy ----------------------------------------------------------------
 */

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
        host_unit_test("test_uv_executor_is_named_uv",
                       host_case_executor_is_named),
        host_unit_test("test_uv_task_runs_on_the_thread_running_uv_run",
                       host_case_task_runs_on_the_loop_thread),
        host_unit_test("test_uv_then_chain_of_1000_steps_runs_every_step",
                       host_case_then_chain_of_1000_steps_runs_every_step),
        host_unit_test("test_uv_continuation_of_pool_work_comes_back_to_loop",
                       host_case_continuation_of_pool_work_comes_back),
        host_unit_test("test_uv_delay_fulfils_not_before_its_deadline",
                       host_case_delay_fulfils_not_before_its_deadline),
        cmocka_unit_test(test_uv_cancelled_delay_stops_its_uv_timer),
        host_unit_test("test_uv_timeout_made_on_loop_rejects_slow_future",
                       host_case_timeout_made_on_loop_rejects_slow_future),
        host_unit_test(
            "test_uv_timeout_cancelled_from_other_thread_stops_timer",
            host_case_timeout_cancelled_from_other_thread_stops_timer),
        host_unit_test("test_uv_burst_from_other_thread_takes_one_wakeup",
                       host_case_burst_from_other_thread_takes_one_wakeup),
        cmocka_unit_test(
            test_uv_submission_from_other_thread_wakes_sleeping_loop),
        host_unit_test(
            "test_uv_storm_of_posts_and_timers_from_threads_all_land",
            host_case_storm_of_posts_and_timers_from_threads_all_land),
        host_unit_test("test_uv_wait_and_destroy_inside_work_are_edeadlk",
                       host_case_wait_and_destroy_inside_work_are_edeadlk),
        host_unit_test("test_uv_callback_over_100ms_is_reported_as_stall",
                       host_case_callback_over_100ms_is_reported_as_stall),
        cmocka_unit_test(
            test_uv_destroy_settles_queued_work_and_timers_eshutdown),
        cmocka_unit_test(test_uv_destroy_leaves_the_loop_to_the_application),
        host_unit_test("test_uv_fd_ready_fulfils_when_readable",
                       host_case_fd_ready_fulfils_when_readable),
        host_unit_test("test_uv_fd_ready_serves_both_directions_of_one_fd",
                       host_case_fd_ready_serves_both_directions_of_one_fd),
        host_unit_test("test_uv_fd_cancel_deregisters",
                       host_case_fd_cancel_deregisters),
        host_unit_test("test_uv_fd_ready_from_another_thread",
                       host_case_fd_ready_from_another_thread),
        host_unit_test("test_uv_fd_closed_number_is_ebadf",
                       host_case_fd_closed_number_is_ebadf),
        host_unit_test("test_uv_destroy_rejects_pending_fd_waits_eshutdown",
                       host_case_destroy_rejects_pending_fd_waits_eshutdown),
        host_unit_test(
            "test_uv_fd_number_reused_after_cancel_in_a_callback",
            host_case_fd_number_reused_after_cancel_in_a_callback),
        host_unit_test("test_uv_io_read_and_write_over_a_socketpair",
                       host_case_io_read_and_write_over_a_socketpair),
        host_unit_test("test_uv_io_accept_and_connect_over_loopback_tcp",
                       host_case_io_accept_and_connect_over_loopback_tcp),
        host_unit_test("test_uv_io_cancelled_read_reads_nothing",
                       host_case_io_cancelled_read_reads_nothing),
        host_unit_test("test_uv_io_cancelled_read_stops_watching_its_fd",
                       host_case_io_cancelled_read_stops_watching_its_fd),
        host_unit_test(
            "test_uv_io_cancelled_read_leaves_a_reused_number_alone",
            host_case_io_cancelled_read_leaves_a_reused_number_alone),
        host_unit_test(
            "test_uv_io_destroy_rejects_pending_reads_eshutdown",
            host_case_io_destroy_rejects_pending_reads_eshutdown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
