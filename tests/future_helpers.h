/* future_helpers.h: what the futures' tests (tests/test_future.c,
 * tests/test_chain.c) share: a test executor, a callback record (how often,
 * in what order, on which executor, what source it saw) and the callbacks
 * and task that fill it.  cmocka asserts: include after <cmocka.h>. */
#ifndef TESTS_FUTURE_HELPERS_H
#define TESTS_FUTURE_HELPERS_H

#include <stdatomic.h>

#include <fut.h>

#include "testexec.h"

#define USER_ERR (-100042)

static inline testexec_t *new_tx(void)
{
    int err = 1;
    testexec_t *tx = testexec_new(NULL, &err);
    assert_non_null(tx);
    assert_int_equal(err, 0);
    return tx;
}

static inline void destroy_tx(testexec_t *tx)
{
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

/* ---- callbacks ---------------------------------------------------------- */

typedef struct rec {
    atomic_int calls;
    int order;              /* position in the global order */
    fut_executor_t *ran_on; /* fut_executor_current() inside */
    fut_state_t src_state;
    int src_err;
    int64_t src_i64;
} rec_t;

static int order_next;

static inline void note(rec_t *r, fut_t *src)
{
    atomic_fetch_add(&r->calls, 1);
    r->order = order_next++;
    r->ran_on = fut_executor_current();
    if (src) {
        r->src_state = fut_state(src);
        r->src_err = fut_error(src);
        r->src_i64 = fut_value_i64(src);
    }
}

static inline fut_result_t cb_add_one(void *arg, fut_t *src)
{
    note(arg, src);
    return fut_ok_i64(fut_value_i64(src) + 1);
}

static inline fut_result_t cb_forward(void *arg, fut_t *src)
{
    note(arg, src);
    return fut_forward(src);
}

static inline fut_result_t cb_recover(void *arg, fut_t *src)
{
    note(arg, src);
    return fut_ok_i64(99);
}

static inline fut_result_t cb_fail(void *arg, fut_t *src)
{
    note(arg, src);
    return fut_fail(USER_ERR);
}

static inline fut_result_t task_i64(void *arg)
{
    note(arg, NULL);
    return fut_ok_i64(7);
}

#endif
