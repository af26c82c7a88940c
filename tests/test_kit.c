/* The executor kit (<fut/executor_kit.h>): a thread's run of an executor's
 * work (the current-executor mark, nesting), promise cancel hooks, claimed
 * settles of a promise and watches, on custom executors. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <fut.h>

#include "testexec.h"

static void test_kit_run_marks_the_current_executor(void **state)
{
    (void)state;
    testexec_t *a = testexec_new(NULL, NULL), *b = testexec_new(NULL, NULL);
    fut_kit_run_t ra, rb;
    assert_null(fut_executor_current());
    fut_kit_run_begin(&ra, testexec_ex(a));
    assert_ptr_equal(fut_executor_current(), testexec_ex(a));
    fut_kit_run_begin(&rb, testexec_ex(b)); /* nested */
    assert_ptr_equal(fut_executor_current(), testexec_ex(b));
    fut_kit_run_end(&rb);
    assert_ptr_equal(fut_executor_current(), testexec_ex(a));
    fut_kit_run_end(&ra);
    assert_null(fut_executor_current());
    assert_int_equal(testexec_destroy(a, NULL, NULL), 0);
    assert_int_equal(testexec_destroy(b, NULL, NULL), 0);
}

/* A run of no executor (NULL) marks none and counts nothing. */
static void test_kit_run_of_null_marks_no_executor(void **state)
{
    (void)state;
    testexec_t *a = testexec_new(NULL, NULL);
    fut_kit_run_t ra, rn;
    fut_kit_run_begin(&ra, testexec_ex(a));
    fut_kit_run_begin(&rn, NULL);
    assert_null(fut_executor_current());
    fut_kit_run_end(&rn);
    assert_ptr_equal(fut_executor_current(), testexec_ex(a));
    fut_kit_run_end(&ra);
    assert_int_equal(testexec_destroy(a, NULL, NULL), 0);
}

/* An executor with FUT_EXECUTOR_NO_BLOCK: waiting inside its run for a
 * pending future is refused, as on the loop's thread. */
static int nb_submit(void *impl, fut_task_t *t)
{
    (void)impl;
    fut_task_drop(t);
    return 0;
}

static void nb_destroy(void *impl)
{
    (void)impl;
}

static const fut_executor_ops_t nb_ops = {
    .name = "noblock",
    .flags = FUT_EXECUTOR_NO_BLOCK,
    .submit = nb_submit,
    .destroy = nb_destroy,
};

static void test_kit_run_on_a_no_block_executor_makes_waits_edeadlk(
    void **state)
{
    (void)state;
    fut_executor_t *ex;
    assert_int_equal(fut_executor_create(&ex, &nb_ops, NULL), 0);
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    assert_int_equal(fut_wait(f, 0), FUT_ETIMEDOUT);
    fut_kit_run_t run;
    fut_kit_run_begin(&run, ex);
    assert_int_equal(fut_wait(f, -1), FUT_EDEADLK);
    fut_kit_run_end(&run);
    assert_int_equal(fut_wait(f, 0), FUT_ETIMEDOUT);
    fut_promise_drop(p);
    fut_release(f);
    assert_int_equal(fut_executor_destroy(ex), 0);
}

/* Inside a run, a continuation placed on the executor takes and drops
 * its reference on the handle without touching the shared count. */
/* Destroyed by another thread during the run: the handle stays readable
 * (it is never freed) and the run ends normally (ASan builds see a use
 * after free if the handle were freed). */
static void *destroy_it(void *arg)
{
    fut_executor_destroy(arg);
    return NULL;
}

static void test_kit_run_survives_a_destroy_during_the_run(
    void **state)
{
    (void)state;
    fut_executor_t *ex;
    assert_int_equal(fut_executor_create(&ex, &nb_ops, NULL), 0);
    fut_kit_run_t run;
    fut_kit_run_begin(&run, ex);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, destroy_it, ex), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_string_equal(fut_executor_name(ex), "noblock");
    assert_ptr_equal(fut_executor_current(), ex);
    fut_kit_run_end(&run);
    assert_null(fut_executor_current());
    assert_int_equal(fut_executor_destroy(ex), FUT_EALREADY);
}

/* ---- promise cancel hooks ----------------------------------------------- */

struct hooked {
    int calls;
    fut_t *seen;
    fut_state_t state;
};

static fut_result_t on_cancel(void *arg, fut_t *f)
{
    struct hooked *h = arg;
    h->calls++;
    h->seen = f;
    h->state = fut_state(f);
    return fut_ok(NULL);
}

static void test_promise_cancel_hook_runs_once_as_a_task(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    struct hooked h = {0};
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    assert_int_equal(fut_promise_on_cancel(p, testexec_ex(tx), on_cancel, &h),
                     0);
    assert_int_equal(fut_cancel(f), 0);
    assert_int_equal(h.calls, 0); /* a task on the executor, not here */
    assert_int_equal(testexec_run_all(tx), 1);
    assert_int_equal(h.calls, 1);
    assert_ptr_equal(h.seen, f);
    assert_int_equal(h.state, FUT_CANCELLED);
    assert_int_equal(fut_cancel(f), FUT_EALREADY);
    assert_int_equal(testexec_run_all(tx), 0);
    assert_int_equal(fut_promise_settle(p, fut_ok(NULL)), FUT_EALREADY);
    fut_release(f);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
    assert_int_equal(h.calls, 1);
}

static void test_promise_cancel_hook_never_runs_after_a_settle(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    struct hooked h = {0};
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    assert_int_equal(fut_promise_on_cancel(p, testexec_ex(tx), on_cancel, &h),
                     0);
    assert_int_equal(fut_promise_settle(p, fut_ok_i64(3)), 0);
    assert_int_equal(fut_cancel(f), FUT_EALREADY);
    assert_int_equal(testexec_run_all(tx), 0);
    assert_int_equal(h.calls, 0);
    fut_release(f);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

static void test_promise_cancel_hook_refused_by_a_shut_executor(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    struct hooked h = {0};
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    assert_int_equal(fut_promise_on_cancel(p, testexec_ex(tx), on_cancel, &h),
                     0);
    testexec_refuse(tx, FUT_ESHUTDOWN);
    assert_int_equal(fut_cancel(f), 0);
    assert_int_equal(testexec_pending(tx), 0);
    assert_int_equal(h.calls, 0);
    fut_promise_drop(p);
    fut_release(f);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
    assert_int_equal(h.calls, 0);
}

static void test_promise_cancel_hook_bad_args_are_einval(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    fut_executor_t *ex = testexec_ex(tx);
    struct hooked h = {0};
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    assert_int_equal(fut_promise_on_cancel(NULL, ex, on_cancel, &h),
                     FUT_EINVAL);
    assert_int_equal(fut_promise_on_cancel(p, NULL, on_cancel, &h),
                     FUT_EINVAL);
    assert_int_equal(fut_promise_on_cancel(p, ex, NULL, &h), FUT_EINVAL);
    assert_int_equal(fut_promise_on_cancel(p, ex, on_cancel, &h), 0);
    assert_int_equal(fut_promise_on_cancel(p, ex, on_cancel, &h),
                     FUT_EINVAL); /* hooked already */
    fut_promise_drop(p);
    fut_release(f);
    /* A consumed promise whose future is still alive. */
    f = fut_promise_new(&p);
    assert_int_equal(fut_promise_settle(p, fut_ok(NULL)), 0);
    assert_int_equal(fut_promise_on_cancel(p, ex, on_cancel, &h), FUT_EINVAL);
    fut_release(f);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
    assert_int_equal(h.calls, 0);
}

/* ---- claimed settles of a promise --------------------------------------- */

struct canceller {
    fut_t *f;
    atomic_int started;
    atomic_int rc;
};

static void *cancel_it(void *arg)
{
    struct canceller *c = arg;
    atomic_store(&c->started, 1);
    atomic_store(&c->rc, fut_cancel(c->f));
    return NULL;
}

/* Starts a thread that cancels F and returns once it is about to. */
static pthread_t start_canceller(struct canceller *c, fut_t *f)
{
    c->f = f;
    atomic_init(&c->started, 0);
    atomic_init(&c->rc, 1);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, cancel_it, c), 0);
    while (!atomic_load(&c->started))
        sched_yield();
    for (int i = 0; i < 100; i++)
        sched_yield(); /* most often it spins on our claim by now */
    return th;
}

/* A cancel racing a claim waits for it, then finds the settle made under
 * it: FUT_EALREADY, and the claimed result stands. */
static void test_promise_claim_makes_a_racing_cancel_lose(void **state)
{
    (void)state;
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    assert_true(fut_promise_claim(p));
    struct canceller c;
    pthread_t th = start_canceller(&c, f);
    assert_int_equal(fut_state(f), FUT_PENDING); /* the claim holds it */
    fut_promise_settle_claimed(p, fut_ok_i64(42));
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(atomic_load(&c.rc), FUT_EALREADY);
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    assert_int_equal(fut_value_i64(f), 42);
    fut_release(f);
}

/* An unclaim lets the waiting cancel win; the promise is not consumed. */
static void test_promise_unclaim_lets_a_waiting_cancel_win(void **state)
{
    (void)state;
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    assert_true(fut_promise_claim(p));
    struct canceller c;
    pthread_t th = start_canceller(&c, f);
    fut_promise_unclaim(p);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(atomic_load(&c.rc), 0);
    assert_int_equal(fut_state(f), FUT_CANCELLED);
    assert_false(fut_promise_claim(p)); /* the cancel won: touch nothing */
    assert_int_equal(fut_promise_settle(p, fut_ok(NULL)), FUT_EALREADY);
    fut_release(f);
}

/* A claim and its unclaim leave the future pending, settleable as ever. */
static void test_promise_unclaim_leaves_the_future_pending(void **state)
{
    (void)state;
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    assert_true(fut_promise_claim(p));
    fut_promise_unclaim(p);
    assert_int_equal(fut_state(f), FUT_PENDING);
    assert_int_equal(fut_promise_settle(p, fut_ok_i64(7)), 0);
    assert_int_equal(fut_value_i64(f), 7);
    fut_release(f);
}

static void test_promise_claim_fails_once_settled_or_null(void **state)
{
    (void)state;
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    assert_int_equal(fut_cancel(f), 0);
    assert_false(fut_promise_claim(p));
    fut_promise_drop(p);
    fut_release(f);
    assert_false(fut_promise_claim(NULL));
}

static int dtor_runs;
static void count_dtor(void *v)
{
    (void)v;
    dtor_runs++;
}

/* A forward or adopt is no result for a claimed settle: disposed of, and
 * the future rejects FUT_EINVAL. */
static void test_promise_settle_claimed_refuses_an_adopt_as_einval(
    void **state)
{
    (void)state;
    static int box;
    dtor_runs = 0;
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    assert_true(fut_promise_claim(p));
    fut_promise_settle_claimed(p,
                               fut_adopt(fut_ready(fut_ok_owned(&box, count_dtor))));
    assert_int_equal(fut_state(f), FUT_REJECTED);
    assert_int_equal(fut_error(f), FUT_EINVAL);
    assert_int_equal(dtor_runs, 1); /* the adopted future was let go */
    fut_release(f);
}

/* ---- watches ------------------------------------------------------------ */

struct watched {
    fut_kit_watch_t node;
    int fired;
    fut_t *src;
    fut_state_t state;
};

static void on_watch(fut_kit_watch_t *w, fut_t *src)
{
    struct watched *x = (struct watched *)(void *)w; /* NODE is first */
    x->fired++;
    x->src = src;
    x->state = fut_state(src);
}

static void test_kit_watch_fires_once_when_the_future_settles(void **state)
{
    (void)state;
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    struct watched a = {0}, b = {0};
    fut_kit_watch(f, &a.node, on_watch);
    fut_kit_watch(f, &b.node, on_watch);
    assert_int_equal(a.fired + b.fired, 0);
    assert_int_equal(fut_promise_settle(p, fut_fail(-5)), 0);
    assert_int_equal(a.fired, 1); /* here, inside the settle */
    assert_int_equal(b.fired, 1);
    assert_ptr_equal(a.src, f);
    assert_int_equal(a.state, FUT_REJECTED);
    assert_int_equal(fut_cancel(f), FUT_EALREADY);
    assert_int_equal(a.fired, 1);
    fut_release(f);
}

static void test_kit_watch_on_a_settled_future_fires_at_once(void **state)
{
    (void)state;
    fut_t *f = fut_ready(fut_ok_i64(1));
    struct watched a = {0};
    fut_kit_watch(f, &a.node, on_watch);
    assert_int_equal(a.fired, 1);
    assert_int_equal(a.state, FUT_FULFILLED);
    fut_release(f);
}

/* ---- the socket operations' slot ---------------------------------------- */

static fut_t *kit_fd_ready(void *impl, int fd, unsigned events)
{
    (void)impl;
    (void)fd;
    return fut_ready(fut_ok_i64(events));
}

static const fut_executor_ops_t fd_ops = {
    .name = "withfd",
    .submit = nb_submit,
    .destroy = nb_destroy,
    .fd_ready = kit_fd_ready,
};

/* Only executors with fd readiness have a slot; it starts NULL and stays
 * where it is, also after the destroy (the handle is never freed). */
static void test_kit_io_slot_only_with_fd_ready_and_stable(void **state)
{
    (void)state;
    fut_executor_t *with, *without;
    assert_int_equal(fut_executor_create(&with, &fd_ops, NULL), 0);
    assert_int_equal(fut_executor_create(&without, &nb_ops, NULL), 0);
    assert_null(fut_kit_io_slot(NULL));
    assert_null(fut_kit_io_slot(fut_inline()));
    assert_null(fut_kit_io_slot(without));
    void **slot = fut_kit_io_slot(with);
    assert_non_null(slot);
    assert_null(*slot);
    static int mark;
    *slot = &mark;
    assert_int_equal(fut_executor_destroy(with), 0);
    assert_ptr_equal(fut_kit_io_slot(with), slot);
    assert_ptr_equal(*slot, &mark);
    assert_int_equal(fut_executor_destroy(without), 0);
}

/* ---- parking (fut_kit_park / fut_kit_wake) ----------------------------- */

static void test_kit_park_returns_at_once_when_the_word_differs(void **state)
{
    (void)state;
    uint32_t word = 1;
    fut_kit_park(&word, 0, UINT64_MAX); /* would sleep forever if it slept */
    assert_int_equal(word, 1);
}

static void test_kit_park_returns_at_a_passed_deadline(void **state)
{
    (void)state;
    uint32_t word = 0;
    fut_kit_park(&word, 0, fut_now_ns()); /* already passed */
    fut_kit_park(&word, 0, 0);
    assert_int_equal(word, 0);
}

struct parker {
    _Atomic uint32_t word; /* 0 while the parker must stay */
    atomic_int parks;      /* park calls made */
};

static void *parker_main(void *arg)
{
    struct parker *pk = arg;
    while (atomic_load(&pk->word) == 0) {
        atomic_fetch_add(&pk->parks, 1);
        fut_kit_park((const uint32_t *)&pk->word, 0, UINT64_MAX);
    }
    return NULL;
}

/* The waker sees a parked thread (a wake that reports one woken), then
 * releases it for good; a wake that wakes no one hangs here (the test
 * binary's timeout fails it). */
static void test_kit_wake_wakes_a_parked_thread(void **state)
{
    (void)state;
    struct parker pk = {0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, parker_main, &pk), 0);
    int woken;
    while ((woken = fut_kit_wake((const uint32_t *)&pk.word, 1)) == 0)
        sched_yield();
    atomic_store(&pk.word, 1);
    fut_kit_wake((const uint32_t *)&pk.word, INT_MAX);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(woken, 1);
    assert_true(atomic_load(&pk.parks) >= 1);
}

static void test_kit_wake_without_parkers_or_word_wakes_none(void **state)
{
    (void)state;
    uint32_t word = 0;
    assert_int_equal(fut_kit_wake(&word, 1), 0);
    assert_int_equal(fut_kit_wake(&word, 0), 0);
    assert_int_equal(fut_kit_wake(NULL, INT_MAX), 0);
    fut_kit_park(NULL, 0, UINT64_MAX); /* returns at once */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kit_run_marks_the_current_executor),
        cmocka_unit_test(test_kit_run_of_null_marks_no_executor),
        cmocka_unit_test(
            test_kit_run_on_a_no_block_executor_makes_waits_edeadlk),
        cmocka_unit_test(
            test_kit_run_survives_a_destroy_during_the_run),
        cmocka_unit_test(test_promise_cancel_hook_runs_once_as_a_task),
        cmocka_unit_test(test_promise_cancel_hook_never_runs_after_a_settle),
        cmocka_unit_test(test_promise_cancel_hook_refused_by_a_shut_executor),
        cmocka_unit_test(test_promise_cancel_hook_bad_args_are_einval),
        cmocka_unit_test(test_promise_claim_makes_a_racing_cancel_lose),
        cmocka_unit_test(test_promise_unclaim_lets_a_waiting_cancel_win),
        cmocka_unit_test(test_promise_unclaim_leaves_the_future_pending),
        cmocka_unit_test(test_promise_claim_fails_once_settled_or_null),
        cmocka_unit_test(
            test_promise_settle_claimed_refuses_an_adopt_as_einval),
        cmocka_unit_test(test_kit_watch_fires_once_when_the_future_settles),
        cmocka_unit_test(test_kit_watch_on_a_settled_future_fires_at_once),
        cmocka_unit_test(test_kit_io_slot_only_with_fd_ready_and_stable),
        cmocka_unit_test(test_kit_park_returns_at_once_when_the_word_differs),
        cmocka_unit_test(test_kit_park_returns_at_a_passed_deadline),
        cmocka_unit_test(test_kit_wake_wakes_a_parked_thread),
        cmocka_unit_test(test_kit_wake_without_parkers_or_word_wakes_none),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
