/* Cancellation that reaches the work (lib/cancel.c): cancelling a future
 * cancels the sources nothing else observes, down to the root; a source
 * observed elsewhere is left alone; combinators cancel their unobserved
 * inputs; fut_finally's callback runs exactly once whatever ends the
 * chain.  The timeout-over-fd cases are at the end (they need a loop). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include <fut.h>

#include "testexec.h"

#define MS (1000 * 1000ull)
#define USER_ERR (-100777)

static testexec_t *new_tx(void)
{
    testexec_t *tx = testexec_new(NULL, NULL);
    assert_non_null(tx);
    return tx;
}

static fut_result_t task_count(void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
    return fut_ok_i64(1);
}

static fut_result_t cb_count(void *arg, fut_t *src)
{
    atomic_fetch_add((atomic_int *)arg, 1);
    return fut_forward(src);
}

static fut_result_t cb_adopt(void *arg, fut_t *src)
{
    (void)src;
    return fut_adopt(fut_retain(arg));
}

/* A pending promise's future and its handle; the caller settles P. */
static fut_t *pending(fut_promise_t **p)
{
    fut_t *f = fut_promise_new(p);
    assert_int_equal(fut_state(f), FUT_PENDING);
    return f;
}

/* ---- chains ------------------------------------------------------------- */

static void test_cancel_then_stops_its_queued_task(void **state)
{
    (void)state;
    testexec_t *tx = new_tx();
    atomic_int runs = 0, calls = 0;
    fut_t *f = fut_async(testexec_ex(tx), task_count, &runs);
    f = fut_then(f, fut_inline(), cb_count, &calls);
    assert_int_equal(fut_cancel(f), 0);
    testexec_run_all(tx);
    assert_int_equal(runs, 0); /* the queued task never ran */
    assert_int_equal(calls, 0);
    fut_release(f);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

struct long_chain {
    int n;
    atomic_int calls;
    int cancel_rc, settle_rc;
};

/* On a small stack (no assert here: cmocka wants the main thread). */
static void *long_chain(void *arg)
{
    struct long_chain *lc = arg;
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    for (int i = 0; i < lc->n; i++)
        f = fut_then(f, fut_inline(), cb_count, &lc->calls);
    lc->cancel_rc = fut_cancel(f);
    lc->settle_rc = fut_promise_settle(p, fut_ok_i64(1));
    fut_release(f);
    return NULL;
}

static void test_cancel_reaches_the_root_of_a_long_chain(void **state)
{
    (void)state;
    /* One frame for both on a 256 KiB stack: the walk is a loop, and so
     * is the release of the cancelled chain (which keeps its sources
     * until it goes). */
    struct long_chain lc = {.n = 1000000};
    assert_int_equal(run_on_small_stack(long_chain, &lc, 256 * 1024), 0);
    assert_int_equal(lc.cancel_rc, 0);
    assert_int_equal(lc.settle_rc, FUT_EALREADY);
    assert_int_equal(lc.calls, 0);
}

static void test_cancel_leaves_a_retained_source_running(void **state)
{
    (void)state;
    testexec_t *tx = new_tx();
    atomic_int runs = 0, calls = 0;
    fut_t *src = fut_async(testexec_ex(tx), task_count, &runs);
    fut_t *f = fut_then(fut_retain(src), fut_inline(), cb_count, &calls);
    assert_int_equal(fut_cancel(f), 0);
    assert_int_equal(fut_state(src), FUT_PENDING);
    testexec_run_all(tx);
    assert_int_equal(runs, 1);
    assert_int_equal(fut_state(src), FUT_FULFILLED);
    assert_int_equal(calls, 0);
    fut_release(f);
    fut_release(src);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

static void test_cancel_leaves_a_source_with_another_continuation(void **state)
{
    (void)state;
    atomic_int calls = 0;
    fut_promise_t *p;
    fut_t *src = pending(&p);
    fut_t *a = fut_then(fut_retain(src), fut_inline(), cb_count, &calls);
    fut_t *b = fut_then(src, fut_inline(), cb_count, &calls); /* consumed */
    assert_int_equal(fut_cancel(a), 0);
    assert_int_equal(fut_promise_settle(p, fut_ok_i64(3)), 0);
    assert_int_equal(calls, 1); /* b's */
    assert_int_equal(fut_value_i64(b), 3);
    fut_release(a);
    fut_release(b);
}

static void test_release_never_cancels_the_chain(void **state)
{
    (void)state;
    atomic_int calls = 0;
    fut_promise_t *p;
    fut_release(fut_then(pending(&p), fut_inline(), cb_count, &calls));
    assert_int_equal(fut_promise_settle(p, fut_ok_i64(1)), 0);
    assert_int_equal(calls, 1);
}

static void test_cancel_reaches_what_a_callback_adopted(void **state)
{
    (void)state;
    fut_promise_t *p;
    fut_t *inner = pending(&p);
    fut_t *f =
        fut_then(fut_ready(fut_ok_i64(0)), fut_inline(), cb_adopt, inner);
    fut_release(inner); /* now only F follows it */
    assert_int_equal(fut_state(f), FUT_PENDING);
    assert_int_equal(fut_cancel(f), 0);
    assert_int_equal(fut_promise_settle(p, fut_ok_i64(1)), FUT_EALREADY);
    fut_release(f);
}

static fut_result_t task_adopt(void *arg)
{
    return fut_adopt(fut_retain(arg));
}

static void test_cancel_reaches_what_a_task_adopted(void **state)
{
    (void)state;
    testexec_t *tx = new_tx();
    fut_promise_t *p;
    fut_t *inner = pending(&p);
    fut_t *f = fut_async(testexec_ex(tx), task_adopt, inner);
    testexec_run_all(tx);
    fut_release(inner);
    assert_int_equal(fut_cancel(f), 0);
    assert_int_equal(fut_promise_settle(p, fut_ok_i64(1)), FUT_EALREADY);
    fut_release(f);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

struct late {
    fut_t *self;  /* the future whose callback this is */
    fut_t *inner; /* what it adopts (our reference, handed over) */
};

static fut_result_t cb_cancel_self_then_adopt(void *arg, fut_t *src)
{
    (void)src;
    struct late *l = arg;
    fut_cancel(l->self); /* cancelled while its callback runs */
    return fut_adopt(l->inner);
}

static void test_cancel_during_a_callback_reaches_what_it_adopts(void **state)
{
    (void)state;
    testexec_t *tx = new_tx();
    fut_promise_t *p;
    struct late l = {.inner = pending(&p)};
    l.self = fut_then(fut_ready(fut_ok_i64(0)), testexec_ex(tx),
                      cb_cancel_self_then_adopt, &l);
    testexec_run_all(tx);
    assert_int_equal(fut_error(l.self), FUT_ECANCELED);
    /* the orphaned work nobody observes was cancelled, not left running */
    assert_int_equal(fut_promise_settle(p, fut_ok_i64(1)), FUT_EALREADY);
    fut_release(l.self);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

static void test_timeout_cancels_the_chain_down_to_the_root(void **state)
{
    (void)state;
    atomic_int calls = 0;
    fut_promise_t *p;
    fut_t *f = fut_then(pending(&p), fut_inline(), cb_count, &calls);
    f = fut_timeout(f, 1 * MS);
    assert_int_equal(fut_wait(f, -1), 0);
    assert_int_equal(fut_error(f), FUT_ETIMEDOUT);
    assert_int_equal(fut_promise_settle(p, fut_ok_i64(1)), FUT_EALREADY);
    assert_int_equal(calls, 0);
    fut_release(f);
}

static void test_cancel_of_a_timeout_reaches_its_input(void **state)
{
    (void)state;
    fut_promise_t *p;
    fut_t *f = fut_timeout(pending(&p), 3600 * 1000 * MS);
    assert_int_equal(fut_cancel(f), 0);
    assert_int_equal(fut_promise_settle(p, fut_ok_i64(1)), FUT_EALREADY);
    fut_release(f);
}

/* ---- combinators -------------------------------------------------------- */

static void test_cancel_all_cancels_unobserved_inputs(void **state)
{
    (void)state;
    fut_promise_t *p[3];
    fut_t *in[3] = {pending(&p[0]), pending(&p[1]), pending(&p[2])};
    fut_t *kept = fut_retain(in[2]);
    fut_t *c = fut_all(in, 3);
    assert_int_equal(fut_cancel(c), 0);
    assert_int_equal(fut_promise_settle(p[0], fut_ok_i64(1)), FUT_EALREADY);
    assert_int_equal(fut_promise_settle(p[1], fut_ok_i64(1)), FUT_EALREADY);
    assert_int_equal(fut_promise_settle(p[2], fut_ok_i64(1)), 0); /* kept */
    fut_release(kept);
    fut_release(c);
}

static void test_cancel_all_settled_cancels_unobserved_inputs(void **state)
{
    (void)state;
    fut_promise_t *p[2];
    fut_t *in[2] = {pending(&p[0]), pending(&p[1])};
    fut_t *c = fut_all_settled(in, 2);
    assert_int_equal(fut_cancel(c), 0);
    assert_int_equal(fut_state(fut_input(c, 0)), FUT_CANCELLED);
    assert_int_equal(fut_state(fut_input(c, 1)), FUT_CANCELLED);
    fut_promise_drop(p[0]);
    fut_promise_drop(p[1]);
    fut_release(c);
}

static void test_all_rejection_cancels_unobserved_pending_inputs(void **state)
{
    (void)state;
    testexec_t *tx = new_tx();
    atomic_int runs = 0;
    fut_promise_t *p;
    fut_t *in[3] = {fut_async(testexec_ex(tx), task_count, &runs), pending(&p),
                    fut_async(testexec_ex(tx), task_count, &runs)};
    fut_t *kept = fut_retain(in[2]);
    fut_t *c = fut_all(in, 3);
    assert_int_equal(fut_promise_settle(p, fut_fail(USER_ERR)), 0);
    assert_int_equal(fut_error(c), USER_ERR);
    testexec_run_all(tx);
    assert_int_equal(runs, 1); /* in[0] never ran; the kept in[2] did */
    assert_int_equal(fut_state(fut_input(c, 0)), FUT_CANCELLED);
    assert_int_equal(fut_state(kept), FUT_FULFILLED);
    fut_release(kept);
    fut_release(c);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

static void test_any_cancels_its_unobserved_losers(void **state)
{
    (void)state;
    /* the hedged request: the first reply wins, the other never runs */
    testexec_t *tx = new_tx();
    atomic_int runs = 0;
    fut_t *in[2] = {fut_async(testexec_ex(tx), task_count, &runs),
                    fut_async(fut_inline(), task_count, &runs)};
    fut_t *c = fut_any(in, 2);
    assert_int_equal(fut_state(c), FUT_FULFILLED);
    testexec_run_all(tx);
    assert_int_equal(runs, 1);
    assert_int_equal(fut_state(fut_input(c, 0)), FUT_CANCELLED);
    fut_release(c);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

static void test_race_leaves_a_retained_loser_running(void **state)
{
    (void)state;
    testexec_t *tx = new_tx();
    atomic_int runs = 0;
    fut_t *loser = fut_async(testexec_ex(tx), task_count, &runs);
    fut_t *in[2] = {fut_retain(loser), fut_ready(fut_ok_i64(5))};
    fut_t *c = fut_race(in, 2);
    assert_int_equal(fut_value_i64(c), 5);
    testexec_run_all(tx);
    assert_int_equal(runs, 1);
    assert_int_equal(fut_state(loser), FUT_FULFILLED);
    fut_release(loser);
    fut_release(c);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

static void test_cancel_any_reaches_through_chains_of_inputs(void **state)
{
    (void)state;
    atomic_int calls = 0;
    fut_promise_t *p[2];
    fut_t *in[2] = {fut_then(pending(&p[0]), fut_inline(), cb_count, &calls),
                    fut_then(pending(&p[1]), fut_inline(), cb_count, &calls)};
    fut_t *c = fut_any(in, 2);
    assert_int_equal(fut_cancel(c), 0);
    assert_int_equal(fut_promise_settle(p[0], fut_ok_i64(1)), FUT_EALREADY);
    assert_int_equal(fut_promise_settle(p[1], fut_ok_i64(1)), FUT_EALREADY);
    assert_int_equal(calls, 0);
    fut_release(c);
}

/* ---- fut_finally -------------------------------------------------------- */

struct fin {
    atomic_int calls;
    atomic_int on_ex;      /* ran with fut_executor_current() == ex */
    atomic_int no_ex;      /* ran with no current executor */
    atomic_int saw_cancel; /* fut_cancel_requested() inside */
    fut_executor_t *ex;
    pthread_t thread;
};

static fut_result_t cb_fin(void *arg, fut_t *src)
{
    struct fin *f = arg;
    atomic_fetch_add(&f->calls, 1);
    if (fut_executor_current() == f->ex)
        atomic_fetch_add(&f->on_ex, 1);
    if (fut_executor_current() == NULL)
        atomic_fetch_add(&f->no_ex, 1);
    if (fut_cancel_requested())
        atomic_fetch_add(&f->saw_cancel, 1);
    f->thread = pthread_self();
    return fut_forward(src);
}

static void test_finally_runs_once_when_its_future_is_cancelled(void **state)
{
    (void)state;
    testexec_t *tx = new_tx();
    struct fin fin = {.ex = testexec_ex(tx)};
    fut_promise_t *p;
    fut_t *f = fut_finally(pending(&p), fin.ex, cb_fin, &fin);
    assert_int_equal(fut_cancel(f), 0);
    /* its source was cancelled with it, so the clean-up is due now */
    assert_int_equal(fut_promise_settle(p, fut_ok_i64(1)), FUT_EALREADY);
    testexec_run_all(tx);
    assert_int_equal(fin.calls, 1);
    assert_int_equal(fin.on_ex, 1);
    assert_int_equal(fin.saw_cancel, 1);
    assert_int_equal(fut_error(f), FUT_ECANCELED); /* its result discarded */
    fut_release(f);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

static void test_finally_queued_then_cancelled_still_runs_once(void **state)
{
    (void)state;
    testexec_t *tx = new_tx();
    struct fin fin = {.ex = testexec_ex(tx)};
    fut_t *f = fut_finally(fut_ready(fut_ok_i64(1)), fin.ex, cb_fin, &fin);
    assert_int_equal(fut_cancel(f), 0);
    assert_int_equal(fut_cancel(f), FUT_EALREADY);
    testexec_run_all(tx);
    assert_int_equal(fin.calls, 1);
    fut_release(f);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

static void test_finally_runs_when_its_future_times_out(void **state)
{
    (void)state;
    struct fin fin = {.ex = fut_inline()};
    fut_promise_t *p;
    fut_t *f = fut_finally(pending(&p), fut_inline(), cb_fin, &fin);
    f = fut_timeout(f, 1 * MS);
    assert_int_equal(fut_wait(f, -1), 0);
    assert_int_equal(fut_error(f), FUT_ETIMEDOUT);
    assert_int_equal(fin.calls, 1);
    assert_int_equal(fut_promise_settle(p, fut_ok_i64(1)), FUT_EALREADY);
    fut_release(f);
}

static void test_finally_queued_at_destroy_runs_on_the_destroyer(void **state)
{
    (void)state;
    testexec_t *tx = new_tx(); /* drops queued tasks on destroy */
    struct fin fin = {.ex = testexec_ex(tx)};
    fut_t *f = fut_finally(fut_ready(fut_ok_i64(4)), fin.ex, cb_fin, &fin);
    size_t dropped = 0;
    assert_int_equal(testexec_destroy(tx, NULL, &dropped), 0);
    assert_int_equal(dropped, 1);
    assert_int_equal(fin.calls, 1);
    assert_int_equal(fin.no_ex, 1);
    assert_true(pthread_equal(fin.thread, pthread_self()));
    assert_int_equal(fut_value_i64(f), 4); /* its result is F's */
    fut_release(f);
}

static fut_result_t cb_replace(void *arg, fut_t *src)
{
    (void)arg;
    (void)src;
    return fut_ok_i64(7);
}

static void test_finally_result_replaces_the_outcome(void **state)
{
    (void)state;
    fut_t *f = fut_finally(fut_ready(fut_fail(USER_ERR)), fut_inline(),
                           cb_replace, NULL);
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    assert_int_equal(fut_value_i64(f), 7);
    fut_release(f);
    struct fin fin = {.ex = fut_inline()};
    f = fut_finally(fut_ready(fut_fail(USER_ERR)), fut_inline(), cb_fin, &fin);
    assert_int_equal(fut_error(f), USER_ERR); /* fut_forward keeps it */
    fut_release(f);
}

/* ---- fd waits on the loop ----------------------------------------------- */

static fut_result_t cb_never(void *arg, fut_t *src)
{
    (void)src;
    atomic_fetch_add((atomic_int *)arg, 1);
    return fut_ok(NULL);
}

static void run_for(fut_executor_t *loop, uint64_t ns)
{
    fut_t *d = fut_delay(loop, ns);
    assert_int_equal(fut_loop_run(loop, d), 0);
    fut_release(d);
}

/* A then-chain over fut_fd_ready under a timeout; RETAIN keeps the fd
 * wait observed elsewhere.  Returns the fd wait (or NULL) and the number
 * of fd events the loop saw after the pipe became readable. */
static uint64_t timeout_over_fd(bool retain, fut_t **kept, atomic_int *calls)
{
    fut_executor_t *loop = NULL;
    assert_int_equal(fut_loop_create(&loop, NULL), 0);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fut_t *r = fut_fd_ready(loop, fds[0], FUT_READABLE);
    *kept = retain ? fut_retain(r) : NULL;
    fut_t *f = fut_then(r, loop, cb_never, calls);
    f = fut_then(f, loop, cb_never, calls);
    f = fut_timeout(f, 2 * MS);
    assert_int_equal(fut_loop_run(loop, f), 0);
    assert_int_equal(fut_error(f), FUT_ETIMEDOUT);
    run_for(loop, 1 * MS); /* the loop lets go of a cancelled wait */
    fut_stats_t a, b;
    assert_int_equal(fut_executor_stats(loop, &a), 0);
    assert_int_equal(write(fds[1], "z", 1), 1);
    run_for(loop, 5 * MS);
    assert_int_equal(fut_executor_stats(loop, &b), 0);
    fut_release(f);
    if (*kept)
        assert_int_equal(fut_value_i64(*kept), FUT_READABLE);
    fut_release(*kept);
    close(fds[0]);
    close(fds[1]);
    assert_int_equal(fut_executor_destroy(loop), 0);
    return b.fd_events - a.fd_events;
}

static void
test_timeout_of_a_chain_over_fd_ready_deregisters_the_fd(void **state)
{
    (void)state;
    atomic_int calls = 0;
    fut_t *kept;
    assert_int_equal(timeout_over_fd(false, &kept, &calls), 0);
    assert_int_equal(calls, 0);
}

static void
test_timeout_of_a_chain_over_a_retained_fd_wait_keeps_it(void **state)
{
    (void)state;
    atomic_int calls = 0;
    fut_t *kept;
    /* the kept wait fulfils READABLE (checked inside); the loop saw it */
    assert_true(timeout_over_fd(true, &kept, &calls) >= 1);
    assert_int_equal(calls, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cancel_then_stops_its_queued_task),
        cmocka_unit_test(test_cancel_reaches_the_root_of_a_long_chain),
        cmocka_unit_test(test_cancel_leaves_a_retained_source_running),
        cmocka_unit_test(test_cancel_leaves_a_source_with_another_continuation),
        cmocka_unit_test(test_release_never_cancels_the_chain),
        cmocka_unit_test(test_cancel_reaches_what_a_callback_adopted),
        cmocka_unit_test(test_cancel_reaches_what_a_task_adopted),
        cmocka_unit_test(test_cancel_during_a_callback_reaches_what_it_adopts),
        cmocka_unit_test(test_timeout_cancels_the_chain_down_to_the_root),
        cmocka_unit_test(test_cancel_of_a_timeout_reaches_its_input),
        cmocka_unit_test(test_cancel_all_cancels_unobserved_inputs),
        cmocka_unit_test(test_cancel_all_settled_cancels_unobserved_inputs),
        cmocka_unit_test(test_all_rejection_cancels_unobserved_pending_inputs),
        cmocka_unit_test(test_any_cancels_its_unobserved_losers),
        cmocka_unit_test(test_race_leaves_a_retained_loser_running),
        cmocka_unit_test(test_cancel_any_reaches_through_chains_of_inputs),
        cmocka_unit_test(test_finally_runs_once_when_its_future_is_cancelled),
        cmocka_unit_test(test_finally_queued_then_cancelled_still_runs_once),
        cmocka_unit_test(test_finally_runs_when_its_future_times_out),
        cmocka_unit_test(test_finally_queued_at_destroy_runs_on_the_destroyer),
        cmocka_unit_test(test_finally_result_replaces_the_outcome),
        cmocka_unit_test(
            test_timeout_of_a_chain_over_fd_ready_deregisters_the_fd),
        cmocka_unit_test(
            test_timeout_of_a_chain_over_a_retained_fd_wait_keeps_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
