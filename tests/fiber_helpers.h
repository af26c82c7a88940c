/* fiber_helpers.h: what the fibers' tests (tests/test_fiber.c,
 * tests/test_fiber_cancel.c) share: a loop and a pool, running a loop
 * until a future settles, and a fiber that awaits one future and records
 * how far it got.  cmocka asserts: include after <cmocka.h>. */
#ifndef TESTS_FIBER_HELPERS_H
#define TESTS_FIBER_HELPERS_H

#include <fut.h>

#define MS (1000 * 1000ull)

static inline fut_executor_t *new_loop(void)
{
    fut_executor_t *l = NULL;
    assert_int_equal(fut_loop_create(&l, NULL), 0);
    return l;
}

static inline fut_executor_t *new_pool(unsigned threads)
{
    fut_executor_t *p = NULL;
    fut_pool_opts_t o = {.threads = threads};
    assert_int_equal(fut_pool_create(&p, &o), 0);
    return p;
}

/* Drives LOOP until F settles; returns F's error. */
static inline int run_until(fut_executor_t *loop, fut_t *f)
{
    assert_int_equal(fut_loop_run(loop, f), 0);
    assert_int_not_equal(fut_state(f), FUT_PENDING);
    return fut_error(f);
}

struct awaiter {
    fut_t *on;     /* what it awaits (borrowed) */
    int rc;        /* what fut_await returned */
    void *value;   /* and the value */
    int steps;     /* how far it got */
};

static inline fut_result_t await_one(void *arg)
{
    struct awaiter *a = arg;
    a->steps = 1;
    a->rc = fut_await(a->on, &a->value);
    a->steps = 2;
    return fut_ok_i64(a->rc);
}

#endif
