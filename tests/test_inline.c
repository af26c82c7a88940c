/* The inline executor: runs at once on the calling thread, trampolined (a
 * task submitted from inside an inline task waits for the outer one to
 * return), so chains of any length never grow the stack. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include <fut.h>

#include "testexec.h"

#if TEST_UNDER_SANITIZER
#define CHAIN_LINKS 1000000L
#else
#define CHAIN_LINKS 10000000L
#endif
#define SMALL_STACK (256 * 1024)

static void test_inline_name_and_identity(void **state)
{
    (void)state;
    assert_non_null(fut_inline());
    assert_ptr_equal(fut_inline(), fut_inline());
    assert_string_equal(fut_executor_name(fut_inline()), "inline");
}

static void test_inline_cannot_be_destroyed(void **state)
{
    (void)state;
    assert_int_equal(fut_executor_destroy(fut_inline()), FUT_EINVAL);
    /* still usable */
    fut_t *f = fut_ready(fut_ok_i64(1));
    f = fut_then(f, fut_inline(), NULL, NULL);
    assert_int_equal(fut_error(f), FUT_EINVAL);
    fut_release(f);
}

typedef struct where {
    fut_executor_t *ex;
    pthread_t thread;
    int depth_marker;
} where_t;

static fut_result_t task_where(void *arg)
{
    where_t *w = arg;
    w->ex = fut_executor_current();
    w->thread = pthread_self();
    return fut_ok_i64(1);
}

static void test_inline_runs_at_once_on_calling_thread(void **state)
{
    (void)state;
    where_t w = {0};
    fut_t *f = fut_async(fut_inline(), task_where, &w);
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    assert_ptr_equal(w.ex, fut_inline());
    assert_true(pthread_equal(w.thread, pthread_self()));
    assert_null(fut_executor_current());
    fut_release(f);
}

/* Trampolining: an inline task submitted from inside an inline task runs
 * after the outer one returns, in submission order. */
static int log_buf[16];
static int log_len;

static fut_result_t task_log(void *arg)
{
    log_buf[log_len++] = (int)(intptr_t)arg;
    return fut_ok_i64((intptr_t)arg);
}

static fut_t *inner_a, *inner_b;

static fut_result_t task_outer(void *arg)
{
    (void)arg;
    log_buf[log_len++] = 1;
    inner_a = fut_async(fut_inline(), task_log, (void *)(intptr_t)2);
    inner_b = fut_async(fut_inline(), task_log, (void *)(intptr_t)3);
    /* queued, not run: the outer frame runs them after we return */
    log_buf[log_len++] = fut_state(inner_a) == FUT_PENDING ? 10 : -10;
    return fut_ok_i64(0);
}

static void test_inline_trampolines_nested_submits(void **state)
{
    (void)state;
    log_len = 0;
    fut_t *f = fut_async(fut_inline(), task_outer, NULL);
    /* all done when the outermost call returns */
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    assert_int_equal(log_len, 4);
    assert_int_equal(log_buf[0], 1);
    assert_int_equal(log_buf[1], 10);
    assert_int_equal(log_buf[2], 2);
    assert_int_equal(log_buf[3], 3);
    assert_int_equal(fut_value_i64(inner_a), 2);
    assert_int_equal(fut_value_i64(inner_b), 3);
    fut_release(inner_a);
    fut_release(inner_b);
    fut_release(f);
}

/* Settling a promise inside an inline task: its inline continuations are
 * queued behind the running task, not run inside it. */
static int cont_ran_inside;
static int cont_runs;

static fut_result_t cb_note(void *arg, fut_t *src)
{
    (void)arg;
    cont_runs++;
    return fut_forward(src);
}

static fut_result_t task_settles(void *arg)
{
    fut_promise_settle(arg, fut_ok_i64(6));
    cont_ran_inside = cont_runs;
    return fut_ok_i64(0);
}

static void test_inline_settle_inside_task_defers_continuations(void **state)
{
    (void)state;
    fut_promise_t *p;
    cont_runs = 0;
    cont_ran_inside = -1;
    fut_t *c = fut_then(fut_promise_new(&p), fut_inline(), cb_note, NULL);
    fut_t *f = fut_async(fut_inline(), task_settles, p);
    assert_int_equal(cont_ran_inside, 0);
    assert_int_equal(cont_runs, 1);
    assert_int_equal(fut_value_i64(c), 6);
    fut_release(f);
    fut_release(c);
}

/* Recursive submission: each task submits the next; depth does not grow. */
typedef struct rec {
    long left;
    long runs;
    char *stack_top;
    long max_depth;
} recur_t;

static fut_result_t task_recurse(void *arg)
{
    recur_t *r = arg;
    char here;
    long d = (long)(r->stack_top - &here);
    if (d < 0)
        d = -d;
    if (d > r->max_depth)
        r->max_depth = d;
    r->runs++;
    if (--r->left > 0)
        fut_release(fut_async(fut_inline(), task_recurse, r));
    return fut_ok(NULL);
}

static void *recurse_body(void *arg)
{
    recur_t *r = arg;
    char top;
    r->stack_top = &top;
    fut_release(fut_async(fut_inline(), task_recurse, r));
    return NULL;
}

static void test_inline_recursive_submission_constant_stack(void **state)
{
    (void)state;
    recur_t r = {.left = TEST_UNDER_SANITIZER ? 100000 : 1000000};
    long n = r.left;
    assert_int_equal(run_on_small_stack(recurse_body, &r, SMALL_STACK), 0);
    assert_int_equal(r.runs, n);
    assert_true(r.max_depth < 64 * 1024);
}

/* ---- the long chains
 * --------------------------------------------------------- */

static fut_result_t cb_inc(void *arg, fut_t *src)
{
    (void)arg;
    return fut_ok_i64(fut_value_i64(src) + 1);
}

typedef struct chain {
    long links;
    int64_t value;
    fut_state_t state;
    int settle_rc;
} chain_t;

/* Built on a pending promise: the whole chain runs when it is settled. */
static void *chain_pending_body(void *arg)
{
    chain_t *c = arg;
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    for (long i = 0; i < c->links; i++)
        f = fut_then(f, fut_inline(), cb_inc, NULL);
    c->state = fut_state(f);
    c->settle_rc = fut_promise_settle(p, fut_ok_i64(0));
    if (c->state == FUT_PENDING)
        c->state = fut_state(f);
    c->value = fut_value_i64(f);
    fut_release(f);
    return NULL;
}

static void test_long_chain_on_pending_head_small_stack(void **state)
{
    (void)state;
    chain_t c = {.links = CHAIN_LINKS, .state = FUT_PENDING};
    assert_int_equal(run_on_small_stack(chain_pending_body, &c, SMALL_STACK),
                     0);
    assert_int_equal(c.settle_rc, 0);
    assert_int_equal(c.state, FUT_FULFILLED);
    assert_int_equal(c.value, CHAIN_LINKS);
}

/* Built on a settled head: each link runs as it is attached. */
static void *chain_settled_body(void *arg)
{
    chain_t *c = arg;
    fut_t *f = fut_ready(fut_ok_i64(0));
    for (long i = 0; i < c->links; i++)
        f = fut_then(f, fut_inline(), cb_inc, NULL);
    c->state = fut_state(f);
    c->value = fut_value_i64(f);
    fut_release(f);
    return NULL;
}

static void test_long_chain_on_settled_head_small_stack(void **state)
{
    (void)state;
    chain_t c = {.links = CHAIN_LINKS, .state = FUT_PENDING};
    assert_int_equal(run_on_small_stack(chain_settled_body, &c, SMALL_STACK),
                     0);
    assert_int_equal(c.state, FUT_FULFILLED);
    assert_int_equal(c.value, CHAIN_LINKS);
}

/* A chain of adopts: each link returns the next future to flatten. */
static fut_result_t cb_adopt_next(void *arg, fut_t *src)
{
    (void)arg;
    return fut_adopt(fut_ready(fut_ok_i64(fut_value_i64(src) + 1)));
}

static void *chain_adopt_body(void *arg)
{
    chain_t *c = arg;
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    for (long i = 0; i < c->links; i++)
        f = fut_then(f, fut_inline(), cb_adopt_next, NULL);
    c->settle_rc = fut_promise_settle(p, fut_ok_i64(0));
    c->state = fut_state(f);
    c->value = fut_value_i64(f);
    fut_release(f);
    return NULL;
}

static void test_long_adopt_chain_small_stack(void **state)
{
    (void)state;
    chain_t c = {.links = CHAIN_LINKS / 10, .state = FUT_PENDING};
    assert_int_equal(run_on_small_stack(chain_adopt_body, &c, SMALL_STACK), 0);
    assert_int_equal(c.settle_rc, 0);
    assert_int_equal(c.state, FUT_FULFILLED);
    assert_int_equal(c.value, CHAIN_LINKS / 10);
}

/* Releasing a deep chain of pending futures must not recurse either. */
static void *chain_release_body(void *arg)
{
    chain_t *c = arg;
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    for (long i = 0; i < c->links; i++)
        f = fut_then(f, fut_inline(), cb_inc, NULL);
    fut_release(f);
    fut_promise_drop(p); /* the whole chain passes EBROKEN through */
    c->state = FUT_REJECTED;
    return NULL;
}

static void test_long_chain_dropped_small_stack(void **state)
{
    (void)state;
    chain_t c = {.links = CHAIN_LINKS / 10, .state = FUT_PENDING};
    assert_int_equal(run_on_small_stack(chain_release_body, &c, SMALL_STACK),
                     0);
    assert_int_equal(c.state, FUT_REJECTED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inline_name_and_identity),
        cmocka_unit_test(test_inline_cannot_be_destroyed),
        cmocka_unit_test(test_inline_runs_at_once_on_calling_thread),
        cmocka_unit_test(test_inline_trampolines_nested_submits),
        cmocka_unit_test(test_inline_settle_inside_task_defers_continuations),
        cmocka_unit_test(test_inline_recursive_submission_constant_stack),
        cmocka_unit_test(test_long_chain_on_pending_head_small_stack),
        cmocka_unit_test(test_long_chain_on_settled_head_small_stack),
        cmocka_unit_test(test_long_adopt_chain_small_stack),
        cmocka_unit_test(test_long_chain_dropped_small_stack),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
