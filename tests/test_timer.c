/* Time: fut_delay (never early; on the timer thread and on an executor with
 * its own timers), fut_timeout (late, in time, racing fut_cancel),
 * fut_timeout_on (the timer on a chosen executor) and stopping the timer
 * thread (fut_timer_service_stop). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <fut.h>

#include "testexec.h"

#define USER_ERR (-100555)
#define MS (1000 * 1000ull)
#define SEC (1000 * MS)

static void test_delay_never_early(void **state)
{
    (void)state;
    const uint64_t delays[] = {0, 1000, 100 * 1000, 1 * MS, 5 * MS, 20 * MS};
    for (size_t i = 0; i < sizeof delays / sizeof delays[0]; i++) {
        uint64_t t0 = fut_now_ns();
        fut_t *d = fut_delay(fut_inline(), delays[i]);
        assert_int_equal(fut_wait(d, -1), 0);
        uint64_t dt = fut_now_ns() - t0;
        assert_int_equal(fut_state(d), FUT_FULFILLED);
        assert_true(dt >= delays[i]);
        assert_true(dt < delays[i] + 5 * SEC);
        fut_release(d);
    }
}

static void test_many_delays_fire_in_deadline_order(void **state)
{
    (void)state;
    enum { N = 20 };
    fut_t *d[N];
    uint64_t t0 = fut_now_ns();
    for (int i = 0; i < N; i++)
        d[i] = fut_delay(fut_inline(), (uint64_t)(N - i) * MS);
    for (int i = N - 1; i >= 0; i--) {
        assert_int_equal(fut_wait(d[i], -1), 0);
        assert_true(fut_now_ns() - t0 >= (uint64_t)(N - i) * MS);
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(fut_state(d[i]), FUT_FULFILLED);
        fut_release(d[i]);
    }
}

static void test_delay_null_executor_is_einval(void **state)
{
    (void)state;
    fut_t *d = fut_delay(NULL, 1000);
    assert_int_equal(fut_state(d), FUT_REJECTED);
    assert_int_equal(fut_error(d), FUT_EINVAL);
    fut_release(d);
}

static fut_result_t cb_where(void *arg, fut_t *src)
{
    *(fut_executor_t **)arg = fut_executor_current();
    return fut_forward(src);
}

static void test_delay_on_executor_timers_fires_when_told(void **state)
{
    (void)state;
    testexec_opts_t o = {.timers = true};
    testexec_t *tx = testexec_new(&o, NULL);
    assert_non_null(tx);
    fut_executor_t *where = NULL;
    uint64_t t0 = fut_now_ns();
    fut_t *d = fut_delay(testexec_ex(tx), 50 * MS);
    fut_t *c = fut_then(fut_retain(d), testexec_ex(tx), cb_where, &where);
    assert_int_equal(testexec_timers(tx), 1);
    /* not due yet: firing "now" leaves it */
    assert_int_equal(testexec_fire_timers(tx, t0), 0);
    assert_int_equal(fut_state(d), FUT_PENDING);
    assert_int_equal(testexec_fire_timers(tx, UINT64_MAX), 1);
    testexec_run_all(tx);
    assert_int_equal(fut_state(d), FUT_FULFILLED);
    assert_int_equal(fut_state(c), FUT_FULFILLED);
    assert_ptr_equal(where, testexec_ex(tx));
    fut_release(c);
    fut_release(d);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

static void
test_delay_on_executor_without_timers_uses_timer_thread(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    assert_non_null(tx);
    uint64_t t0 = fut_now_ns();
    fut_t *d = fut_delay(testexec_ex(tx), 2 * MS);
    /* the delay itself needs no task of TX to fulfil */
    assert_int_equal(fut_wait(d, 5 * SEC), 0);
    assert_true(fut_now_ns() - t0 >= 2 * MS);
    assert_int_equal(fut_state(d), FUT_FULFILLED);
    testexec_run_all(tx);
    fut_release(d);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

static void test_delay_on_destroyed_executor_timers_eshutdown(void **state)
{
    (void)state;
    testexec_opts_t o = {.timers = true};
    testexec_t *tx = testexec_new(&o, NULL);
    assert_non_null(tx);
    fut_t *d = fut_delay(testexec_ex(tx), 3600 * SEC);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
    assert_int_equal(fut_state(d), FUT_REJECTED);
    assert_int_equal(fut_error(d), FUT_ESHUTDOWN);
    fut_release(d);
}

static fut_result_t never_runs(void *arg, fut_t *src)
{
    (void)arg, (void)src;
    return fut_ok(NULL);
}

/* An executor without timers of its own (the pool; the service keeps its
 * delays): once destroyed, a delay on its handle (kept valid here by a
 * pending continuation) is refused at once, not armed on the service. */
static void
test_delay_on_destroyed_executor_without_timers_eshutdown(void **state)
{
    (void)state;
    fut_executor_t *pool;
    fut_pool_opts_t o = {.threads = 1};
    assert_int_equal(fut_pool_create(&pool, &o), 0);
    fut_promise_t *p;
    fut_t *pin = fut_then(fut_promise_new(&p), pool, never_runs, NULL);
    assert_int_equal(fut_executor_destroy(pool), 0);
    fut_t *d = fut_delay(pool, 1 * MS);
    assert_int_equal(fut_state(d), FUT_REJECTED);
    assert_int_equal(fut_error(d), FUT_ESHUTDOWN);
    fut_release(d);
    fut_promise_drop(p);
    fut_release(pin);
}

static void test_delay_timer_refused_gives_error(void **state)
{
    (void)state;
    testexec_opts_t o = {.timers = true};
    testexec_t *tx = testexec_new(&o, NULL);
    assert_non_null(tx);
    testexec_refuse(tx, FUT_ESHUTDOWN);
    fut_t *d = fut_delay(testexec_ex(tx), 1 * MS);
    assert_int_equal(fut_error(d), FUT_ESHUTDOWN);
    fut_release(d);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

/* ---- fut_timeout ------------------------------------------------------- */

static void test_timeout_late_cancels_input(void **state)
{
    (void)state;
    atomic_int dtors = 0;
    fut_promise_t *p;
    fut_t *in = fut_promise_new(&p);
    uint64_t t0 = fut_now_ns();
    fut_t *t = fut_timeout(fut_retain(in), 10 * MS);
    assert_int_equal(fut_wait(t, -1), 0);
    assert_true(fut_now_ns() - t0 >= 10 * MS);
    assert_int_equal(fut_state(t), FUT_CANCELLED);
    assert_int_equal(fut_error(t), FUT_ETIMEDOUT);
    assert_int_equal(fut_state(in), FUT_CANCELLED);
    assert_int_equal(
        fut_promise_settle(p, fut_ok_owned(counted_new(&dtors), counted_free)),
        FUT_EALREADY);
    assert_int_equal(dtors, 1);
    assert_int_equal(fut_cancel(t), FUT_EALREADY);
    fut_release(t);
    fut_release(in);
}

static void test_timeout_in_time_settles_like_input(void **state)
{
    (void)state;
    atomic_int dtors = 0;
    fut_promise_t *p;
    fut_t *t = fut_timeout(fut_promise_new(&p), 3600 * SEC);
    assert_int_equal(fut_state(t), FUT_PENDING);
    void *v = counted_new(&dtors);
    assert_int_equal(fut_promise_settle(p, fut_ok_owned(v, counted_free)), 0);
    assert_int_equal(fut_wait(t, 5 * SEC), 0);
    assert_int_equal(fut_state(t), FUT_FULFILLED);
    assert_ptr_equal(fut_value(t), v);
    assert_int_equal(dtors, 0);
    fut_release(t);
    assert_int_equal(dtors, 1);

    t = fut_timeout(fut_promise_new(&p), 3600 * SEC);
    assert_int_equal(fut_promise_settle(p, fut_fail(USER_ERR)), 0);
    assert_int_equal(fut_wait(t, 5 * SEC), 0);
    assert_int_equal(fut_state(t), FUT_REJECTED);
    assert_int_equal(fut_error(t), USER_ERR);
    fut_release(t);
}

static void test_timeout_of_settled_input(void **state)
{
    (void)state;
    fut_t *t = fut_timeout(fut_ready(fut_ok_i64(4)), 0);
    assert_int_equal(fut_wait(t, 5 * SEC), 0);
    /* settled before the timeout started: settles like the input */
    assert_int_equal(fut_state(t), FUT_FULFILLED);
    assert_int_equal(fut_value_i64(t), 4);
    fut_release(t);
}

static void test_timeout_null_is_einval(void **state)
{
    (void)state;
    fut_t *t = fut_timeout(NULL, MS);
    assert_int_equal(fut_state(t), FUT_REJECTED);
    assert_int_equal(fut_error(t), FUT_EINVAL);
    fut_release(t);
}

static void test_cancel_timeout_before_it_fires(void **state)
{
    (void)state;
    fut_promise_t *p;
    fut_t *in = fut_promise_new(&p);
    fut_t *t = fut_timeout(fut_retain(in), 3600 * SEC);
    assert_int_equal(fut_cancel(t), 0);
    assert_int_equal(fut_state(t), FUT_CANCELLED);
    assert_int_equal(fut_error(t), FUT_ECANCELED);
    fut_promise_drop(p);
    fut_release(t);
    fut_release(in);
}

/* ---- timeout racing cancel --------------------------------------------------
 */

typedef struct race {
    fut_t *t;
    atomic_int go;
    atomic_int rc;
    unsigned spin;
} race_t;

static void *canceller(void *arg)
{
    race_t *r = arg;
    while (!atomic_load(&r->go))
        sched_yield();
    for (volatile unsigned i = 0; i < r->spin; i++)
        ;
    atomic_store(&r->rc, fut_cancel(r->t));
    return NULL;
}

static void test_timeout_racing_cancel_has_one_agreed_outcome(void **state)
{
    (void)state;
    const int rounds = TEST_UNDER_SANITIZER ? 300 : 3000;
    int cancels = 0, timeouts = 0;
    unsigned seed = 12345;
    for (int i = 0; i < rounds; i++) {
        fut_promise_t *p;
        fut_t *in = fut_promise_new(&p);
        race_t r = {.rc = 1};
        seed = seed * 1103515245u + 12345u;
        r.spin = (seed >> 16) % 20000;
        uint64_t ns = ((seed >> 8) % 50) * 1000; /* 0..49 us */
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, canceller, &r), 0);
        r.t = fut_timeout(fut_retain(in), ns);
        atomic_store(&r.go, 1);
        pthread_join(th, NULL);
        assert_int_equal(fut_wait(r.t, -1), 0);
        int rc = atomic_load(&r.rc);
        assert_int_equal(fut_state(r.t), FUT_CANCELLED);
        if (rc == 0) {
            assert_int_equal(fut_error(r.t), FUT_ECANCELED);
            cancels++;
        } else {
            assert_int_equal(rc, FUT_EALREADY);
            assert_int_equal(fut_error(r.t), FUT_ETIMEDOUT);
            timeouts++;
        }
        /* the input is cancelled either way: by the timeout, or (maybe)
         * by the cancel; in any case the producer learns it is late */
        int settled = fut_promise_settle(p, fut_ok_i64(1)) == 0;
        assert_int_equal(settled, fut_state(in) == FUT_FULFILLED);
        fut_release(r.t);
        fut_release(in);
    }
    assert_int_equal(cancels + timeouts, rounds);
    print_message("timeout/cancel race: %d cancels, %d timeouts\n", cancels,
                  timeouts);
}

/* ---- where timers live: fut_timeout_on, fut_timer_service_stop --------- */

/* Threads of this process named "fut-timers" (the library's timer thread). */
static int timer_threads(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], name[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue; /* the thread just exited */
        if (fgets(name, sizeof name, f) && strncmp(name, "fut-timers", 10) == 0)
            n++;
        fclose(f);
    }
    closedir(d);
    return n;
}

/* timer_threads(), once it says N or after 10 s: a joined thread may still
 * be listed for a moment (the kernel wakes the joiner before it lets go of
 * the thread's entry). */
static int timer_threads_settle(int n)
{
    int got = timer_threads();
    for (int i = 0; got != n && i < 10000; i++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
        got = timer_threads();
    }
    return got;
}

static void test_timeout_on_places_timer_on_chosen_executor(void **state)
{
    (void)state;
    testexec_opts_t o = {.timers = true};
    testexec_t *tx = testexec_new(&o, NULL);
    assert_non_null(tx);
    fut_promise_t *p;
    fut_t *in = fut_promise_new(&p);
    fut_t *t = fut_timeout_on(fut_retain(in), testexec_ex(tx), 1 * MS);
    assert_int_equal(testexec_timers(tx), 1); /* made on main, kept by TX */
    assert_int_equal(testexec_fire_timers(tx, UINT64_MAX), 1);
    assert_int_equal(fut_error(t), FUT_ETIMEDOUT);
    assert_int_equal(fut_state(in), FUT_CANCELLED);
    assert_int_equal(fut_promise_settle(p, fut_ok_i64(1)), FUT_EALREADY);
    fut_release(t);
    fut_release(in);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

static void test_timeout_on_loop_starts_no_timer_thread(void **state)
{
    (void)state;
    assert_int_equal(fut_timer_service_stop(), 0);
    assert_int_equal(timer_threads_settle(0), 0);
    fut_executor_t *loop;
    assert_int_equal(fut_loop_create(&loop, NULL), 0);
    fut_promise_t *p;
    fut_t *t = fut_timeout_on(fut_promise_new(&p), loop, 1 * MS);
    assert_int_equal(fut_loop_run(loop, t), 0);
    assert_int_equal(fut_error(t), FUT_ETIMEDOUT);
    /* fut_timeout (from main) would have started one */
    assert_int_equal(timer_threads_settle(0), 0);
    fut_promise_drop(p);
    fut_release(t);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

static void test_timeout_on_executor_without_timers_uses_timer_thread(
    void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    assert_non_null(tx);
    fut_promise_t *p;
    fut_t *t = fut_timeout_on(fut_promise_new(&p), testexec_ex(tx), 1 * MS);
    assert_int_equal(fut_wait(t, -1), 0);
    assert_int_equal(fut_error(t), FUT_ETIMEDOUT);
    fut_promise_drop(p);
    fut_release(t);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

static fut_result_t never_called(void *arg, fut_t *src)
{
    (void)arg;
    (void)src;
    return fut_ok(NULL);
}

static void test_timeout_on_bad_args(void **state)
{
    (void)state;
    fut_t *t = fut_timeout_on(NULL, fut_inline(), 1 * MS);
    assert_int_equal(fut_error(t), FUT_EINVAL);
    fut_release(t);
    atomic_int freed = 0;
    fut_t *in = fut_ready(fut_ok_owned(counted_new(&freed), counted_free));
    t = fut_timeout_on(in, NULL, 1 * MS); /* consumes IN */
    assert_int_equal(fut_error(t), FUT_EINVAL);
    assert_int_equal(atomic_load(&freed), 1);
    fut_release(t);
    /* An executor whose destroy began (its struct kept by a pending
     * continuation) refuses, though its timers would go to the thread. */
    fut_executor_t *pool;
    fut_pool_opts_t po = {.threads = 1};
    assert_int_equal(fut_pool_create(&pool, &po), 0);
    fut_promise_t *p;
    fut_t *src = fut_promise_new(&p);
    fut_t *c = fut_then(fut_retain(src), pool, never_called, NULL);
    assert_int_equal(fut_executor_destroy(pool), 0);
    t = fut_timeout_on(fut_retain(src), pool, 1 * MS);
    assert_int_equal(fut_error(t), FUT_ESHUTDOWN);
    fut_release(t);
    assert_int_equal(fut_promise_settle(p, fut_ok_i64(1)), 0);
    assert_int_equal(fut_error(c), FUT_ESHUTDOWN);
    fut_release(c);
    fut_release(src);
}

static void test_timer_service_stop_joins_its_thread(void **state)
{
    (void)state;
    fut_t *d = fut_delay(fut_inline(), 1000);
    assert_int_equal(fut_wait(d, -1), 0);
    fut_release(d);
    assert_int_equal(timer_threads_settle(1), 1);
    assert_int_equal(fut_timer_service_stop(), 0);
    assert_int_equal(timer_threads_settle(0), 0);
    assert_int_equal(fut_timer_service_stop(), 0); /* not running: 0 */
    d = fut_delay(fut_inline(), 1000); /* starts it again */
    assert_int_equal(fut_wait(d, -1), 0);
    assert_int_equal(fut_state(d), FUT_FULFILLED);
    fut_release(d);
    assert_int_equal(timer_threads_settle(1), 1);
    assert_int_equal(fut_timer_service_stop(), 0);
    assert_int_equal(timer_threads_settle(0), 0);
}

static void test_timer_service_stop_drops_armed_timers(void **state)
{
    (void)state;
    fut_t *d = fut_delay(fut_inline(), 3600 * SEC);
    fut_promise_t *p;
    fut_t *in = fut_promise_new(&p);
    fut_t *t = fut_timeout(fut_retain(in), 3600 * SEC);
    assert_int_equal(fut_timer_service_stop(), 0);
    assert_int_equal(fut_error(d), FUT_ESHUTDOWN);
    assert_int_equal(fut_error(t), FUT_ESHUTDOWN);
    assert_int_equal(fut_state(in), FUT_PENDING); /* left alone */
    assert_int_equal(fut_promise_settle(p, fut_ok_i64(1)), 0);
    fut_release(in);
    fut_release(t);
    fut_release(d);
}

static atomic_int stop_rc = 1;
static atomic_bool stopped_elsewhere;
static pthread_t test_thread;

static fut_result_t stop_from_timer_thread(void *arg, fut_t *src)
{
    (void)arg;
    (void)src;
    /* On the test's own thread the delay fired before fut_then attached
     * (a preempted test thread): then this run proves nothing. */
    if (!pthread_equal(pthread_self(), test_thread)) {
        atomic_store(&stop_rc, fut_timer_service_stop());
        atomic_store(&stopped_elsewhere, true);
    }
    return fut_ok(NULL);
}

static void test_timer_service_stop_on_its_thread_is_edeadlk(void **state)
{
    (void)state;
    test_thread = pthread_self();
    /* fut_inline(): the callback runs where the delay settles, on the
     * timer thread, unless the delay fired before the attach; a few tries
     * make that race irrelevant on a loaded machine. */
    for (int i = 0; i < 20 && !atomic_load(&stopped_elsewhere); i++) {
        fut_t *c = fut_then(fut_delay(fut_inline(), 20 * 1000 * 1000),
                            fut_inline(), stop_from_timer_thread, NULL);
        assert_int_equal(fut_wait(c, -1), 0);
        fut_release(c);
    }
    assert_true(atomic_load(&stopped_elsewhere));
    assert_int_equal(atomic_load(&stop_rc), FUT_EDEADLK);
    assert_int_equal(fut_timer_service_stop(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delay_never_early),
        cmocka_unit_test(test_many_delays_fire_in_deadline_order),
        cmocka_unit_test(test_delay_null_executor_is_einval),
        cmocka_unit_test(test_delay_on_executor_timers_fires_when_told),
        cmocka_unit_test(
            test_delay_on_executor_without_timers_uses_timer_thread),
        cmocka_unit_test(test_delay_on_destroyed_executor_timers_eshutdown),
        cmocka_unit_test(
            test_delay_on_destroyed_executor_without_timers_eshutdown),
        cmocka_unit_test(test_delay_timer_refused_gives_error),
        cmocka_unit_test(test_timeout_late_cancels_input),
        cmocka_unit_test(test_timeout_in_time_settles_like_input),
        cmocka_unit_test(test_timeout_of_settled_input),
        cmocka_unit_test(test_timeout_null_is_einval),
        cmocka_unit_test(test_cancel_timeout_before_it_fires),
        cmocka_unit_test(test_timeout_racing_cancel_has_one_agreed_outcome),
        cmocka_unit_test(test_timeout_on_places_timer_on_chosen_executor),
        cmocka_unit_test(test_timeout_on_loop_starts_no_timer_thread),
        cmocka_unit_test(
            test_timeout_on_executor_without_timers_uses_timer_thread),
        cmocka_unit_test(test_timeout_on_bad_args),
        cmocka_unit_test(test_timer_service_stop_joins_its_thread),
        cmocka_unit_test(test_timer_service_stop_drops_armed_timers),
        cmocka_unit_test(test_timer_service_stop_on_its_thread_is_edeadlk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
