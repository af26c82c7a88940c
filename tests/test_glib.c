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

static void host_iterate(struct env *e, int block)
{
    g_main_context_iteration(e->ctx, block ? TRUE : FALSE);
}

static int host_timers_armed(struct env *e)
{
    return poll_timeout(e) != -1;
}

#define HOST_NAME "glib"
#include "host_adapter_cases.h"

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

/* ---- fd readiness: a reset beside data ----------------------------------- */

/* A connected loopback TCP pair, blocking: *C the client, *S the server's. */
static void tcp_pair(int *c, int *s)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(l, 1), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &len), 0);
    *c = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(*c, (struct sockaddr *)&a, len), 0);
    *s = accept(l, NULL, NULL);
    assert_true(*s >= 0);
    close(l);
}

/* GLib's poll reports data and a reset at once (G_IO_IN with G_IO_ERR):
 * the reader is served readable, and the socket's error (SO_ERROR, which
 * reading clears) stays for the recv after the data, which says
 * ECONNRESET, not end of file (executors/common/fd_waiters.h, fdw_answer).
 * libuv instead stops a poll that reports an error and says so (its
 * waiter rejects), so this case is GLib's alone. */
static void test_glib_fd_ready_after_reset_leaves_the_error_to_recv(
    void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    int c, s;
    tcp_pair(&c, &s);
    fut_t *w = fut_fd_ready(e.ex, c, FUT_READABLE);
    iterate_n(&e, 3); /* registered */
    assert_int_equal(write(s, "xy", 2), 2);
    struct linger lg = {1, 0}; /* close sends a reset */
    assert_int_equal(setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    close(s);
    run_until(&e, w);
    assert_int_equal(fut_value_i64(w), FUT_READABLE);
    fut_release(w);
    char buf[8];
    assert_int_equal(recv(c, buf, sizeof buf, 0), 2);
    errno = 0;
    assert_int_equal(recv(c, buf, sizeof buf, 0), -1);
    assert_int_equal(errno, ECONNRESET);
    close(c);
    env_close(&e);
}

/* ---- timers -----------------------------------------------------------------
 */

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

/* ---- other threads ----------------------------------------------------------
 */

static void
test_glib_submission_from_other_thread_wakes_sleeping_context(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    atomic_store(&g_ran, 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, post_burst, &e), 0);
    while (atomic_load(&g_ran) < BURST) /* sleeps until the thread's work */
        g_main_context_iteration(e.ctx, TRUE);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(atomic_load(&g_ran), BURST);
    env_close(&e);
}

/* ---- destroy ----------------------------------------------------------------
 */

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
        host_unit_test("test_glib_executor_is_named_glib",
                       host_case_executor_is_named),
        host_unit_test(
            "test_glib_task_runs_on_the_thread_iterating_the_context",
            host_case_task_runs_on_the_loop_thread),
        host_unit_test("test_glib_then_chain_of_1000_steps_runs_every_step",
                       host_case_then_chain_of_1000_steps_runs_every_step),
        host_unit_test("test_glib_continuation_of_pool_work_comes_back",
                       host_case_continuation_of_pool_work_comes_back),
        host_unit_test("test_glib_delay_fulfils_not_before_its_deadline",
                       host_case_delay_fulfils_not_before_its_deadline),
        cmocka_unit_test(test_glib_cancelled_delay_destroys_its_timer_source),
        host_unit_test("test_glib_timeout_made_on_context_rejects_slow_future",
                       host_case_timeout_made_on_loop_rejects_slow_future),
        host_unit_test(
            "test_glib_timeout_cancelled_from_other_thread_stops_timer",
            host_case_timeout_cancelled_from_other_thread_stops_timer),
        host_unit_test("test_glib_burst_from_other_thread_takes_one_wakeup",
                       host_case_burst_from_other_thread_takes_one_wakeup),
        cmocka_unit_test(
            test_glib_submission_from_other_thread_wakes_sleeping_context),
        host_unit_test(
            "test_glib_storm_of_posts_and_timers_from_threads_all_land",
            host_case_storm_of_posts_and_timers_from_threads_all_land),
        host_unit_test("test_glib_wait_and_destroy_inside_work_are_edeadlk",
                       host_case_wait_and_destroy_inside_work_are_edeadlk),
        host_unit_test("test_glib_callback_over_100ms_is_reported_as_stall",
                       host_case_callback_over_100ms_is_reported_as_stall),
        cmocka_unit_test(
            test_glib_destroy_settles_queued_work_and_timers_eshutdown),
        cmocka_unit_test(
            test_glib_destroy_leaves_the_context_to_the_application),
        host_unit_test("test_glib_fd_ready_fulfils_when_readable",
                       host_case_fd_ready_fulfils_when_readable),
        host_unit_test("test_glib_fd_ready_serves_both_directions_of_one_fd",
                       host_case_fd_ready_serves_both_directions_of_one_fd),
        host_unit_test("test_glib_fd_cancel_deregisters",
                       host_case_fd_cancel_deregisters),
        host_unit_test("test_glib_fd_ready_from_another_thread",
                       host_case_fd_ready_from_another_thread),
        host_unit_test("test_glib_fd_closed_number_is_ebadf",
                       host_case_fd_closed_number_is_ebadf),
        host_unit_test("test_glib_destroy_rejects_pending_fd_waits_eshutdown",
                       host_case_destroy_rejects_pending_fd_waits_eshutdown),
        host_unit_test(
            "test_glib_fd_number_reused_after_cancel_in_a_callback",
            host_case_fd_number_reused_after_cancel_in_a_callback),
        host_unit_test("test_glib_io_read_and_write_over_a_socketpair",
                       host_case_io_read_and_write_over_a_socketpair),
        host_unit_test("test_glib_io_accept_and_connect_over_loopback_tcp",
                       host_case_io_accept_and_connect_over_loopback_tcp),
        host_unit_test("test_glib_io_cancelled_read_reads_nothing",
                       host_case_io_cancelled_read_reads_nothing),
        host_unit_test("test_glib_io_cancelled_read_stops_watching_its_fd",
                       host_case_io_cancelled_read_stops_watching_its_fd),
        host_unit_test(
            "test_glib_io_cancelled_read_leaves_a_reused_number_alone",
            host_case_io_cancelled_read_leaves_a_reused_number_alone),
        host_unit_test(
            "test_glib_io_destroy_rejects_pending_reads_eshutdown",
            host_case_io_destroy_rejects_pending_reads_eshutdown),
        cmocka_unit_test(
            test_glib_fd_ready_after_reset_leaves_the_error_to_recv),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
