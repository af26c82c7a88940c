/* Error codes: fut_strerror, and one provocation of every library code
 * through the public API. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <fut.h>

#include "testexec.h"

static const int codes[] = {FUT_OK,        FUT_ENOMEM,    FUT_EINVAL,
                            FUT_ECANCELED, FUT_ETIMEDOUT, FUT_EBROKEN,
                            FUT_ESHUTDOWN, FUT_EDEADLK,   FUT_EALREADY};
#define NCODES (sizeof codes / sizeof codes[0])

static void test_codes_are_distinct_and_negative(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCODES; i++) {
        if (i > 0)
            assert_true(codes[i] < 0);
        for (size_t j = 0; j < i; j++)
            assert_int_not_equal(codes[i], codes[j]);
    }
}

static void test_strerror_distinct_nonempty_for_library_codes(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCODES; i++) {
        const char *s = fut_strerror(codes[i]);
        assert_non_null(s);
        assert_true(strlen(s) > 0);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(s, fut_strerror(codes[j]));
    }
}

static void test_strerror_unknown_and_foreign_codes(void **state)
{
    (void)state;
    const int odd[] = {1, 12345, INT32_MAX, -1000000, INT32_MIN, -4095};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        const char *s = fut_strerror(odd[i]);
        assert_non_null(s);
        assert_true(strlen(s) > 0);
    }
    /* an application's own code */
    assert_string_equal(fut_strerror(-1000000), "application error");
    /* a foreign -errno gets strerror's words */
    assert_string_equal(fut_strerror(-EPERM), strerror(EPERM));
    assert_string_equal(fut_strerror(-EBADF), strerror(EBADF));
}

/* ---- every code, provoked ---------------------------------------------------
 */

/* An allocator that fails while `failing` is set.  It is installed while no
 * libfut object is alive, as fut_set_allocator requires; the switch to
 * failing happens later, with objects alive. */
static atomic_int failing;

static void *flag_alloc(size_t n)
{
    return atomic_load(&failing) ? NULL : malloc(n);
}

static fut_result_t task_count(void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
    return fut_ok_i64(0);
}

static fut_result_t cb_count(void *arg, fut_t *src)
{
    atomic_fetch_add((atomic_int *)arg, 1);
    return fut_forward(src);
}

static int dummy_submit(void *impl, fut_task_t *t)
{
    (void)impl;
    (void)t;
    return FUT_ESHUTDOWN;
}

static void dummy_destroy(void *impl)
{
    (void)impl;
}

static void test_provoke_enomem(void **state)
{
    (void)state;
    atomic_int dtors = 0, calls = 0;
    /* the switch returns this thread's cached blocks: from here on every
     * block comes from flag_alloc, until something is freed again */
    fut_set_allocator(flag_alloc, free);
    fut_t *a = fut_ready(fut_ok_owned(counted_new(&dtors), counted_free));
    assert_int_equal(fut_state(a), FUT_FULFILLED);
    atomic_store(&failing, 1);

    fut_promise_t *p = (fut_promise_t *)&p;
    fut_t *f = fut_promise_new(&p);
    assert_non_null(f);
    assert_null(p);
    assert_int_equal(fut_state(f), FUT_REJECTED);
    assert_int_equal(fut_error(f), FUT_ENOMEM);
    fut_release(f);

    f = fut_async(fut_inline(), task_count, &calls);
    assert_int_equal(fut_error(f), FUT_ENOMEM);
    fut_release(f);

    /* the result's value is disposed when the future cannot be made */
    f = fut_ready(fut_ok_owned(counted_new(&dtors), counted_free));
    assert_int_equal(fut_error(f), FUT_ENOMEM);
    assert_int_equal(dtors, 1);
    fut_release(f);

    fut_executor_t *ex = NULL;
    static const fut_executor_ops_t ops = {
        .name = "x", .submit = dummy_submit, .destroy = dummy_destroy};
    /* Not from the installed allocator: an executor's handle is never
     * freed (fut_executor_destroy), so it comes from malloc, and creating
     * one still works here. */
    assert_int_equal(fut_executor_create(&ex, &ops, NULL), 0);
    assert_int_equal(fut_executor_destroy(ex), 0);

    /* the input is consumed although the new future could not be made */
    f = fut_then(a, fut_inline(), cb_count, &calls);
    assert_int_equal(fut_error(f), FUT_ENOMEM);
    fut_release(f);
    assert_int_equal(dtors, 2);
    assert_int_equal(calls, 0);

    atomic_store(&failing, 0);
    fut_set_allocator(NULL, NULL);
}

static fut_result_t task_nop(void *arg)
{
    (void)arg;
    return fut_ok_i64(0);
}

static void test_provoke_enomem_from_executor(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    assert_non_null(tx);
    testexec_refuse(tx, FUT_ENOMEM);
    fut_t *f = fut_async(testexec_ex(tx), task_nop, NULL);
    assert_int_equal(fut_await(f, NULL), FUT_ENOMEM);
    fut_release(f);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

static void test_provoke_einval(void **state)
{
    (void)state;
    fut_t *f = fut_promise_new(NULL);
    assert_int_equal(fut_error(f), FUT_EINVAL);
    fut_release(f);
    assert_int_equal(fut_wait(NULL, 0), FUT_EINVAL);
    assert_int_equal(fut_cancel(NULL), FUT_EINVAL);
    assert_int_equal(fut_executor_destroy(fut_inline()), FUT_EINVAL);
    f = fut_race(NULL, 0);
    assert_int_equal(fut_error(f), FUT_EINVAL);
    fut_release(f);
    f = fut_ready(fut_fail(0));
    assert_int_equal(fut_error(f), FUT_EINVAL);
    fut_release(f);
}

static void test_provoke_ecanceled(void **state)
{
    (void)state;
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    assert_int_equal(fut_cancel(f), 0);
    assert_int_equal(fut_await(f, NULL), FUT_ECANCELED);
    fut_promise_drop(p);
    fut_release(f);
}

static void test_provoke_etimedout(void **state)
{
    (void)state;
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    assert_int_equal(fut_wait(f, 1000), FUT_ETIMEDOUT);
    f = fut_timeout(f, 1000);
    assert_int_equal(fut_await(f, NULL), FUT_ETIMEDOUT);
    fut_promise_drop(p);
    fut_release(f);
}

static void test_provoke_ebroken(void **state)
{
    (void)state;
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    fut_promise_drop(p);
    assert_int_equal(fut_await(f, NULL), FUT_EBROKEN);
    fut_release(f);
}

static void test_provoke_eshutdown(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    assert_non_null(tx);
    fut_t *f = fut_async(testexec_ex(tx), task_nop, NULL);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
    assert_int_equal(fut_await(f, NULL), FUT_ESHUTDOWN);
    fut_release(f);
}

static fut_t *self_fut;
static int self_rc;

static fut_result_t task_wait_self(void *arg)
{
    (void)arg;
    self_rc = fut_wait(self_fut, -1);
    return fut_ok_i64(0);
}

static void test_provoke_edeadlk(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    assert_non_null(tx);
    self_rc = 1;
    self_fut = fut_async(testexec_ex(tx), task_wait_self, NULL);
    assert_true(testexec_run_one(tx));
    assert_int_equal(self_rc, FUT_EDEADLK);
    fut_release(self_fut);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

static void test_provoke_ealready(void **state)
{
    (void)state;
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    assert_int_equal(fut_cancel(f), 0);
    assert_int_equal(fut_cancel(f), FUT_EALREADY);
    assert_int_equal(fut_promise_settle(p, fut_ok_i64(1)), FUT_EALREADY);
    fut_release(f);
}

static void test_application_error_travels_unchanged(void **state)
{
    (void)state;
    fut_t *f = fut_ready(fut_fail(-1000000));
    f = fut_then(f, fut_inline(), NULL, NULL); /* refused: EINVAL */
    assert_int_equal(fut_error(f), FUT_EINVAL);
    fut_release(f);
    f = fut_ready(fut_fail(-1000000));
    assert_int_equal(fut_await(f, NULL), -1000000);
    fut_release(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codes_are_distinct_and_negative),
        cmocka_unit_test(test_strerror_distinct_nonempty_for_library_codes),
        cmocka_unit_test(test_strerror_unknown_and_foreign_codes),
        cmocka_unit_test(test_provoke_enomem),
        cmocka_unit_test(test_provoke_enomem_from_executor),
        cmocka_unit_test(test_provoke_einval),
        cmocka_unit_test(test_provoke_ecanceled),
        cmocka_unit_test(test_provoke_etimedout),
        cmocka_unit_test(test_provoke_ebroken),
        cmocka_unit_test(test_provoke_eshutdown),
        cmocka_unit_test(test_provoke_edeadlk),
        cmocka_unit_test(test_provoke_ealready),
        cmocka_unit_test(test_application_error_travels_unchanged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
