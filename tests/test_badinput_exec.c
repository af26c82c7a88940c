/* Bad input, the executors' rows of docs/BAD_INPUT.md: executor
 * creation, destruction and statistics, the allocator, the pool, the loop
 * and fd readiness, and misuse caught under AddressSanitizer
 * (tests/test_badinput.c has the core's rows and says how each test
 * checks its row). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <fut.h>

#include "testexec.h"

static atomic_int g_calls; /* tasks that ran */

static int setup(void **state)
{
    (void)state;
    atomic_store(&g_calls, 0);
    return 0;
}

static fut_result_t task_one(void *arg)
{
    (void)arg;
    atomic_fetch_add(&g_calls, 1);
    return fut_ok_i64(1);
}

static void assert_rejected(fut_t *f, int err)
{
    assert_non_null(f);
    assert_int_equal(fut_state(f), FUT_REJECTED);
    assert_int_equal(fut_error(f), err);
}

/* ---- executors ---------------------------------------------------------- */

static int nop_submit(void *impl, fut_task_t *t)
{
    (void)impl;
    (void)t;
    return FUT_ESHUTDOWN;
}
static void nop_destroy(void *impl) { (void)impl; }
static int nop_timer_start(void *impl, fut_timer_t *t)
{
    (void)impl;
    (void)t;
    return FUT_EINVAL;
}

static void test_executor_create_bad_args(void **state)
{
    (void)state;
    fut_executor_t *ex = (fut_executor_t *)&ex;
    fut_executor_ops_t ok = {.submit = nop_submit, .destroy = nop_destroy};
    fut_executor_ops_t no_submit = {.destroy = nop_destroy};
    fut_executor_ops_t no_destroy = {.submit = nop_submit};
    fut_executor_ops_t half_timers = {.submit = nop_submit,
                                      .destroy = nop_destroy,
                                      .timer_start = nop_timer_start};
    assert_int_equal(fut_executor_create(NULL, &ok, NULL), FUT_EINVAL);
    assert_int_equal(fut_executor_create(&ex, NULL, NULL), FUT_EINVAL);
    assert_int_equal(fut_executor_create(&ex, &no_submit, NULL), FUT_EINVAL);
    assert_int_equal(fut_executor_create(&ex, &no_destroy, NULL), FUT_EINVAL);
    assert_int_equal(fut_executor_create(&ex, &half_timers, NULL),
                     FUT_EINVAL);
    assert_ptr_equal(ex, (fut_executor_t *)&ex); /* untouched on error */
    assert_int_equal(fut_executor_create(&ex, &ok, &ok), 0);
    assert_ptr_equal(fut_executor_impl(ex, &ok), &ok);
    assert_null(fut_executor_impl(ex, &no_submit));
    assert_null(fut_executor_impl(NULL, &ok));
    assert_string_equal(fut_executor_name(ex), "custom");
    fut_t *f = fut_async(ex, task_one, NULL);
    assert_rejected(f, FUT_ESHUTDOWN);
    fut_release(f);
    assert_int_equal(fut_executor_destroy(ex), 0);
}

static void test_executor_destroy_bad_args(void **state)
{
    (void)state;
    assert_int_equal(fut_executor_destroy(NULL), FUT_EINVAL);
    assert_int_equal(fut_executor_destroy(fut_inline()), FUT_EINVAL);
    assert_string_equal(fut_executor_name(NULL), "(null)");
    assert_string_equal(fut_executor_name(fut_inline()), "inline");
}

static fut_executor_t *g_tx_ex;
static atomic_int g_destroy_rc;

static fut_result_t task_destroys_own_executor(void *arg)
{
    (void)arg;
    atomic_store(&g_destroy_rc, fut_executor_destroy(g_tx_ex));
    return fut_ok_i64(0);
}

static void test_executor_destroy_from_own_thread_is_edeadlk(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    g_tx_ex = testexec_ex(tx);
    fut_t *f = fut_async(g_tx_ex, task_destroys_own_executor, NULL);
    assert_true(testexec_run_one(tx));
    assert_int_equal(atomic_load(&g_destroy_rc), FUT_EDEADLK);
    fut_release(f);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

static void test_executor_stats_bad_args(void **state)
{
    (void)state;
    fut_stats_t st;
    memset(&st, 0xff, sizeof st);
    assert_int_equal(fut_executor_stats(NULL, &st), FUT_EINVAL);
    assert_int_equal(fut_executor_stats(fut_inline(), NULL), FUT_EINVAL);
    assert_int_equal(fut_executor_stats(fut_inline(), &st), 0);
    assert_int_equal(st.tasks_run, 0);
    assert_int_equal(st.workers, 0);
}

static void *never_alloc(size_t n)
{
    (void)n;
    abort();
}

static void test_set_allocator_half_pair_resets_to_malloc(void **state)
{
    (void)state;
    /* One of the pair NULL resets both: never_alloc must not be used. */
    fut_set_allocator(never_alloc, NULL);
    fut_t *f = fut_ready(fut_ok_i64(1));
    fut_release(f);
    fut_set_allocator(NULL, NULL);
    fut_set_log(NULL, NULL);
}

/* ---- pool ----------------------------------------------------------------- */

static void test_pool_create_bad_args(void **state)
{
    (void)state;
    fut_executor_t *ex = (fut_executor_t *)&ex;
    fut_pool_opts_t three = {.threads = 1, .deque_capacity = 3};
    fut_pool_opts_t one = {.threads = 1, .deque_capacity = 1};
    fut_pool_opts_t huge = {.threads = 1, .deque_capacity = 1u << 31};
    fut_pool_opts_t many = {.threads = 4097};
    assert_int_equal(fut_pool_create(NULL, NULL), FUT_EINVAL);
    assert_int_equal(fut_pool_create(&ex, &three), FUT_EINVAL);
    assert_int_equal(fut_pool_create(&ex, &one), FUT_EINVAL);
    assert_int_equal(fut_pool_create(&ex, &huge), FUT_EINVAL);
    assert_int_equal(fut_pool_create(&ex, &many), FUT_EINVAL);
    fut_stats_t st;
    assert_int_equal(fut_pool_worker_stats(NULL, 0, &st), FUT_EINVAL);
    assert_int_equal(fut_pool_worker_stats(fut_inline(), 0, &st), FUT_EINVAL);
    fut_group_t g;
    assert_int_equal(fut_group_init(NULL, NULL), FUT_EINVAL);
    assert_int_equal(fut_group_init(&g, fut_inline()), FUT_EINVAL);
    assert_int_equal(fut_group_init(&g, NULL), FUT_EINVAL); /* off a worker */
}

static fut_executor_t *g_pool;

static fut_result_t task_destroys_pool(void *arg)
{
    (void)arg;
    return fut_ok_i64(fut_executor_destroy(g_pool));
}

static void test_pool_bad_uses(void **state)
{
    (void)state;
    fut_pool_opts_t o = {.threads = 1};
    assert_int_equal(fut_pool_create(&g_pool, &o), 0);
    fut_stats_t st;
    assert_int_equal(fut_pool_worker_stats(g_pool, 1, &st), FUT_EINVAL);
    assert_int_equal(fut_pool_worker_stats(g_pool, 0, NULL), FUT_EINVAL);
    /* Destroying the pool from its own worker would join itself. */
    fut_t *f = fut_async(g_pool, task_destroys_pool, NULL);
    assert_int_equal(fut_await(f, NULL), 0);
    assert_int_equal(fut_value_i64(f), FUT_EDEADLK);
    fut_release(f);
    assert_int_equal(fut_executor_destroy(g_pool), 0);
}

/* ---- loop ----------------------------------------------------------------- */

static void test_loop_bad_args(void **state)
{
    (void)state;
    assert_int_equal(fut_loop_create(NULL, NULL), FUT_EINVAL);
    assert_int_equal(fut_loop_run(NULL, NULL), FUT_EINVAL);
    assert_int_equal(fut_loop_run(fut_inline(), NULL), FUT_EINVAL);
    fut_loop_stop(NULL);        /* no-op */
    fut_loop_stop(fut_inline()); /* no-op */
    fut_executor_t *loop;
    assert_int_equal(fut_loop_create(&loop, NULL), 0);
    fut_t *bad[] = {
        fut_fd_ready(NULL, 0, FUT_READABLE),
        fut_fd_ready(fut_inline(), 0, FUT_READABLE),
        fut_fd_ready(loop, -1, FUT_READABLE),
        fut_fd_ready(loop, 0, 0),
        fut_fd_ready(loop, 0, 1u << 7),
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_rejected(bad[i], FUT_EINVAL);
        fut_release(bad[i]);
    }
    assert_int_equal(fut_executor_destroy(loop), 0);
}

static fut_result_t loop_misuse(void *arg, fut_t *src)
{
    fut_executor_t *loop = arg;
    (void)src;
    fut_promise_t *p;
    fut_t *pending = fut_promise_new(&p);
    int w = fut_wait(pending, -1);           /* would freeze the loop */
    int a = fut_await(pending, NULL);
    int r = fut_loop_run(loop, NULL);        /* nested run */
    int d = fut_executor_destroy(loop);      /* from its own thread */
    fut_promise_drop(p);
    fut_release(pending);
    return fut_ok_i64((w == FUT_EDEADLK) + 2 * (a == FUT_EDEADLK) +
                      4 * (r == FUT_EALREADY) + 8 * (d == FUT_EDEADLK));
}

static void test_loop_bad_uses_from_a_callback(void **state)
{
    (void)state;
    fut_executor_t *loop;
    assert_int_equal(fut_loop_create(&loop, NULL), 0);
    fut_t *f = fut_then(fut_ready(fut_ok(NULL)), loop, loop_misuse, loop);
    assert_int_equal(fut_loop_run(loop, f), 0);
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    assert_int_equal(fut_value_i64(f), 15);
    fut_release(f);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

static void test_fd_ready_bad_fds(void **state)
{
    (void)state;
    fut_executor_t *loop;
    assert_int_equal(fut_loop_create(&loop, NULL), 0);
    int p[2];
    assert_int_equal(pipe(p), 0);
    int closed = dup(p[0]);
    close(closed);
    fut_t *f = fut_fd_ready(loop, closed, FUT_READABLE);
    assert_int_equal(fut_loop_run(loop, f), 0);
    assert_rejected(f, -EBADF);
    fut_release(f);
    int reg = open("/proc/self/exe", O_RDONLY);
    f = fut_fd_ready(loop, reg, FUT_READABLE);
    assert_int_equal(fut_loop_run(loop, f), 0);
    assert_rejected(f, -EPERM);
    fut_release(f);
    close(reg);
    /* Pending at destroy: FUT_ESHUTDOWN. */
    f = fut_fd_ready(loop, p[0], FUT_READABLE);
    assert_int_equal(fut_executor_destroy(loop), 0);
    assert_rejected(f, FUT_ESHUTDOWN);
    fut_release(f);
    close(p[0]);
    close(p[1]);
}

/* ---- misuse: use after release (AddressSanitizer builds only) ----------- */

#if defined(__SANITIZE_ADDRESS__)
#define BADINPUT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BADINPUT_ASAN 1
#endif
#endif

#ifdef BADINPUT_ASAN
/* Runs FN in a child; true if the child died or exited non-zero. */
static bool child_dies(void (*fn)(void))
{
    pid_t pid = fork();
    if (pid == 0) {
        /* Keep the report out of the test's log but let it kill us. */
        if (!getenv("BADINPUT_VERBOSE")) {
            FILE *null = freopen("/dev/null", "w", stderr);
            (void)null;
        }
        fn();
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void double_release(void)
{
    fut_t *f = fut_ready(fut_ok_i64(1));
    fut_release(f);
    fut_release(f);
}

static void settle_consumed_promise(void)
{
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    fut_release(f);
    fut_promise_settle(p, fut_ok_i64(1));
    fut_promise_settle(p, fut_ok_i64(2)); /* F and P are gone */
}

static void use_after_release(void)
{
    fut_t *f = fut_ready(fut_ok_i64(1));
    fut_release(f);
    (void)fut_state(f);
}
#endif

static void test_misuse_caught_under_asan(void **state)
{
    (void)state;
#ifdef BADINPUT_ASAN
    assert_true(child_dies(double_release));
    assert_true(child_dies(settle_consumed_promise));
    assert_true(child_dies(use_after_release));
#else
    skip();
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup(name, setup)
        T(test_executor_create_bad_args),
        T(test_executor_destroy_bad_args),
        T(test_executor_destroy_from_own_thread_is_edeadlk),
        T(test_executor_stats_bad_args),
        T(test_set_allocator_half_pair_resets_to_malloc),
        T(test_pool_create_bad_args),
        T(test_pool_bad_uses),
        T(test_loop_bad_args),
        T(test_loop_bad_uses_from_a_callback),
        T(test_fd_ready_bad_fds),
        T(test_misuse_caught_under_asan),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
