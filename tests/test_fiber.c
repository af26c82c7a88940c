/* Fibers (<fut/fiber.h>): fut_fiber on every kind of executor, waits that
 * suspend instead of blocking, fut_yield's order, the own-future deadlock,
 * cancellation and timeouts, destroy with fibers suspended, 10^5 fibers
 * suspended at once, and a stack overflow hitting the guard page. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fut.h>

#include "testexec.h"

#define MS (1000 * 1000ull)

static fut_executor_t *new_loop(void)
{
    fut_executor_t *l = NULL;
    assert_int_equal(fut_loop_create(&l, NULL), 0);
    return l;
}

static fut_executor_t *new_pool(unsigned threads)
{
    fut_executor_t *p = NULL;
    fut_pool_opts_t o = {.threads = threads};
    assert_int_equal(fut_pool_create(&p, &o), 0);
    return p;
}

/* Drives LOOP until F settles; returns F's error. */
static int run_until(fut_executor_t *loop, fut_t *f)
{
    assert_int_equal(fut_loop_run(loop, f), 0);
    assert_int_not_equal(fut_state(f), FUT_PENDING);
    return fut_error(f);
}

/* ---- basics ------------------------------------------------------------- */

static fut_result_t answer(void *arg)
{
    (void)arg;
    return fut_ok_i64(fut_in_fiber() ? 42 : -1);
}

static void test_fiber_returns_value_on_inline(void **state)
{
    (void)state;
    fut_t *f = fut_fiber(fut_inline(), answer, NULL, NULL);
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    assert_int_equal(fut_value_i64(f), 42);
    fut_release(f);
}

static void test_in_fiber_false_outside(void **state)
{
    (void)state;
    assert_false(fut_in_fiber());
    fut_yield(); /* returns at once */
    assert_false(fut_in_fiber());
}

static void test_fiber_bad_arguments_are_einval(void **state)
{
    (void)state;
    fut_fiber_opts_t big = {.stack_size = FUT_FIBER_STACK_MAX + 1};
    fut_t *f[3] = {fut_fiber(NULL, answer, NULL, NULL),
                   fut_fiber(fut_inline(), NULL, NULL, NULL),
                   fut_fiber(fut_inline(), answer, NULL, &big)};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(fut_error(f[i]), FUT_EINVAL);
        fut_release(f[i]);
    }
}

static void test_fiber_small_and_odd_stack_sizes_run(void **state)
{
    (void)state;
    size_t sizes[] = {1, FUT_FIBER_STACK_MIN, 100000, 1 << 20};
    for (int i = 0; i < 4; i++) {
        fut_fiber_opts_t o = {.stack_size = sizes[i]};
        fut_t *f = fut_fiber(fut_inline(), answer, NULL, &o);
        assert_int_equal(fut_value_i64(f), 42);
        fut_release(f);
    }
}

static void test_fiber_refused_is_eshutdown_and_never_runs(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    testexec_refuse(tx, FUT_ESHUTDOWN);
    fut_t *f = fut_fiber(testexec_ex(tx), answer, NULL, NULL);
    assert_int_equal(fut_error(f), FUT_ESHUTDOWN);
    assert_int_equal(testexec_ran(tx), 0);
    fut_release(f);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

/* ---- suspending waits ----------------------------------------------------- */

struct awaiter {
    fut_t *on;     /* what it awaits (borrowed) */
    int rc;        /* what fut_await returned */
    void *value;   /* and the value */
    int steps;     /* how far it got */
};

static fut_result_t await_one(void *arg)
{
    struct awaiter *a = arg;
    a->steps = 1;
    a->rc = fut_await(a->on, &a->value);
    a->steps = 2;
    return fut_ok_i64(a->rc);
}

static void test_await_settled_does_not_switch(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    fut_t *ready = fut_ready(fut_ok((void *)&tx));
    struct awaiter a = {.on = ready};
    fut_t *f = fut_fiber(testexec_ex(tx), await_one, &a, NULL);
    assert_true(testexec_run_one(tx));
    assert_int_equal(a.steps, 2); /* one run, no second task */
    assert_ptr_equal(a.value, &tx);
    assert_int_equal(testexec_submitted(tx), 1);
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    fut_release(f);
    fut_release(ready);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

static void test_await_pending_suspends_and_resumes_as_task(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    fut_promise_t *p;
    fut_t *pf = fut_promise_new(&p);
    struct awaiter a = {.on = pf};
    fut_t *f = fut_fiber(testexec_ex(tx), await_one, &a, NULL);
    assert_int_equal(testexec_run_all(tx), 1);
    assert_int_equal(a.steps, 1); /* suspended, the thread went on */
    assert_int_equal(fut_state(f), FUT_PENDING);
    assert_int_equal(fut_promise_settle(p, fut_ok(&a)), 0);
    assert_int_equal(testexec_pending(tx), 1); /* resumes as a task */
    assert_int_equal(a.steps, 1);
    assert_int_equal(testexec_run_all(tx), 1);
    assert_int_equal(a.steps, 2);
    assert_int_equal(a.rc, 0);
    assert_ptr_equal(a.value, &a);
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    fut_release(f);
    fut_release(pf);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

static void test_await_on_inline_resumes_on_settling_thread(void **state)
{
    (void)state;
    fut_promise_t *p;
    fut_t *pf = fut_promise_new(&p);
    struct awaiter a = {.on = pf};
    fut_t *f = fut_fiber(fut_inline(), await_one, &a, NULL);
    assert_int_equal(a.steps, 1);
    assert_int_equal(fut_state(f), FUT_PENDING);
    fut_promise_settle(p, fut_ok_i64(7));
    assert_int_equal(a.steps, 2);
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    fut_release(f);
    fut_release(pf);
}

static fut_result_t wait_own(void *arg)
{
    fut_t **own = arg;
    int rc = fut_wait(*own, -1);
    int rc2 = fut_await(*own, NULL);
    return fut_ok_i64(rc == FUT_EDEADLK && rc2 == FUT_EDEADLK);
}

static void test_wait_on_own_future_is_edeadlk(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    fut_t *own = NULL;
    fut_t *f = fut_fiber(loop, wait_own, &own, NULL);
    own = f;
    assert_int_equal(run_until(loop, f), 0);
    assert_int_equal(fut_value_i64(f), 1);
    fut_release(f);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

struct settler {
    fut_promise_t *p;
    int64_t v;
};

static void *settle_later(void *arg)
{
    struct settler *s = arg;
    usleep(2000);
    fut_promise_settle(s->p, fut_ok_i64(s->v));
    return NULL;
}

static fut_result_t await_i64(void *arg)
{
    fut_t *on = arg;
    int rc = fut_await(on, NULL);
    return rc ? fut_fail(rc) : fut_ok_i64(fut_value_i64(on) + 1);
}

/* EX runs a fiber awaiting a promise another thread settles. */
static void await_from_other_thread(fut_executor_t *ex, bool loop)
{
    struct settler s = {.v = 41};
    fut_t *pf = fut_promise_new(&s.p);
    fut_t *f = fut_fiber(ex, await_i64, pf, NULL);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, settle_later, &s), 0);
    if (loop)
        assert_int_equal(run_until(ex, f), 0);
    else
        assert_int_equal(fut_wait(f, -1), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(fut_value_i64(f), 42);
    fut_release(f);
    fut_release(pf);
    assert_int_equal(fut_executor_destroy(ex), 0);
}

static void test_await_promise_from_other_thread_on_loop(void **state)
{
    (void)state;
    await_from_other_thread(new_loop(), true);
}

static void test_await_promise_from_other_thread_on_pool(void **state)
{
    (void)state;
    await_from_other_thread(new_pool(2), false);
}

static fut_result_t delays(void *arg)
{
    fut_executor_t *loop = arg;
    for (int i = 0; i < 3; i++) {
        fut_t *d = fut_delay(loop, 20 * MS);
        int rc = fut_await(d, NULL);
        fut_release(d);
        if (rc)
            return fut_fail(rc);
    }
    return fut_ok_i64(1);
}

/* Overlap, not speed: 1000 fibers x 3 awaits of 20 ms would take 60 s one
 * after another; suspended side by side they take about 60 ms.  The bound
 * (half the sum) is far from both, so load cannot make this flaky.  (TSan
 * makes a thread state per fiber, milliseconds each: 100 fibers there.) */
static void test_thousand_fibers_on_loop_overlap_their_delays(void **state)
{
    (void)state;
    enum { MAX = 1000 };
    const int n = TEST_UNDER_TSAN ? 100 : MAX;
    fut_executor_t *loop = new_loop();
    static fut_t *fs[MAX];
    uint64_t t0 = fut_now_ns();
    for (int i = 0; i < n; i++)
        fs[i] = fut_fiber(loop, delays, loop, NULL);
    fut_t *all = fut_all(fs, (size_t)n);
    assert_int_equal(run_until(loop, all), 0);
    assert_true(fut_now_ns() - t0 < (uint64_t)n * 3 * 20 * MS / 2);
    for (int i = 0; i < n; i++)
        assert_int_equal(fut_value_i64(fut_input(all, (size_t)i)), 1);
    fut_release(all);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

static fut_result_t timed_wait(void *arg)
{
    fut_t *never = arg;
    int rc = fut_wait(never, 5 * MS);
    int rc0 = fut_wait(never, 0);
    return fut_ok_i64(rc == FUT_ETIMEDOUT && rc0 == FUT_ETIMEDOUT);
}

static void test_timed_wait_in_fiber_times_out(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    fut_promise_t *p;
    fut_t *never = fut_promise_new(&p);
    fut_t *f = fut_fiber(loop, timed_wait, never, NULL);
    assert_int_equal(run_until(loop, f), 0);
    assert_int_equal(fut_value_i64(f), 1);
    fut_release(f);
    fut_promise_drop(p);
    fut_release(never);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

struct two_waits {
    fut_t *a, *b;
    int rc_a, rc_b;
    fut_state_t b_state;
};

static fut_result_t timed_then_forever(void *arg)
{
    struct two_waits *w = arg;
    w->rc_a = fut_wait(w->a, 1 * MS);
    w->rc_b = fut_await(w->b, NULL);
    w->b_state = fut_state(w->b);
    return fut_ok(NULL);
}

/* The timed-out wait's node stays on A; A settling later must not wake
 * the fiber's next wait (on B). */
static void test_stale_wait_does_not_wake_a_later_wait(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    fut_promise_t *pa, *pb;
    struct two_waits w = {.a = fut_promise_new(&pa), .b = fut_promise_new(&pb)};
    fut_t *f = fut_fiber(loop, timed_then_forever, &w, NULL);
    fut_t *d = fut_delay(loop, 20 * MS);
    run_until(loop, d); /* A timed out, the fiber waits on B */
    fut_release(d);
    fut_promise_settle(pa, fut_ok(NULL));
    d = fut_delay(loop, 5 * MS);
    run_until(loop, d);
    fut_release(d);
    assert_int_equal(w.rc_a, FUT_ETIMEDOUT);
    assert_int_equal(fut_state(f), FUT_PENDING); /* still on B */
    fut_promise_settle(pb, fut_ok(NULL));
    assert_int_equal(run_until(loop, f), 0);
    assert_int_equal(w.rc_b, 0);
    assert_int_equal(w.b_state, FUT_FULFILLED);
    fut_release(f);
    fut_release(w.a);
    fut_release(w.b);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

/* ---- the switch keeps each context's floating-point control ---------- */

static unsigned fp_control(void)
{
#if defined(__x86_64__)
    unsigned m;
    __asm__ volatile("stmxcsr %0" : "=m"(m));
    return m;
#elif defined(__aarch64__)
    uint64_t c;
    __asm__ volatile("mrs %0, fpcr" : "=r"(c));
    return (unsigned)c;
#else
    return 0;
#endif
}

static void set_fp_control(unsigned v)
{
#if defined(__x86_64__)
    __asm__ volatile("ldmxcsr %0" : : "m"(v));
#elif defined(__aarch64__)
    uint64_t c = v;
    __asm__ volatile("msr fpcr, %0" : : "r"(c));
#else
    (void)v;
#endif
}

/* Round toward zero: MXCSR RC = 11b; FPCR RMode = 11b. */
#if defined(__aarch64__)
#define ROUND_TO_ZERO (3u << 22)
#else
#define ROUND_TO_ZERO (3u << 13)
#endif

struct fp_probe {
    unsigned before, after;
};

static fut_result_t change_rounding(void *arg)
{
    struct fp_probe *p = arg;
    set_fp_control(fp_control() | ROUND_TO_ZERO);
    p->before = fp_control();
    fut_yield();
    p->after = fp_control();
    set_fp_control(p->before & ~ROUND_TO_ZERO);
    return fut_ok(NULL);
}

static void test_switch_keeps_fp_control_per_context(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    struct fp_probe p = {0};
    unsigned mine = fp_control();
    fut_t *f = fut_fiber(testexec_ex(tx), change_rounding, &p, NULL);
    assert_true(testexec_run_one(tx)); /* runs until the yield */
    assert_int_equal(fp_control(), mine); /* the scheduler's is back */
    assert_true(testexec_run_one(tx));
    assert_int_equal(p.after, p.before); /* the fiber's came back too */
    assert_int_equal(fp_control(), mine);
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    fut_release(f);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

/* ---- only the fiber's own code suspends ------------------------------- */

struct nested {
    fut_executor_t *loop;
    fut_t *on;
    atomic_int other_ran;
    int ran_when_woken;
    int rc;
};

static fut_result_t mark(void *arg)
{
    atomic_store(&((struct nested *)arg)->other_ran, 1);
    return fut_ok(NULL);
}

static fut_result_t wait_in_callback(void *arg, fut_t *src)
{
    struct nested *n = arg;
    (void)src;
    n->rc = fut_wait(n->on, -1); /* blocks the loop: no suspension here */
    n->ran_when_woken = atomic_load(&n->other_ran);
    return fut_ok(NULL);
}

static fut_result_t fiber_with_inline_callback(void *arg)
{
    struct nested *n = arg;
    fut_release(fut_fiber(n->loop, mark, n, NULL)); /* queued behind us */
    fut_t *r = fut_ready(fut_ok(NULL));
    fut_release(fut_then(r, fut_inline(), wait_in_callback, n));
    return fut_ok(NULL);
}

static void test_wait_in_inline_callback_inside_fiber_blocks(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    struct settler s = {.v = 1};
    struct nested n = {.loop = loop, .on = fut_promise_new(&s.p)};
    fut_t *f = fut_fiber(loop, fiber_with_inline_callback, &n, NULL);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, settle_later, &s), 0);
    assert_int_equal(run_until(loop, f), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(n.rc, 0);
    assert_int_equal(n.ran_when_woken, 0); /* the loop was blocked */
    fut_t *d = fut_delay(loop, 1 * MS);
    run_until(loop, d);
    fut_release(d);
    assert_int_equal(atomic_load(&n.other_ran), 1);
    fut_release(f);
    fut_release(n.on);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

/* ---- the pitfall: blocking inside a fiber still freezes the loop ------- */

static fut_result_t block_in_fiber(void *arg)
{
    (void)arg;
    usleep(120 * 1000); /* a blocking call: no await, no suspension */
    return fut_ok(NULL);
}

static void test_blocking_call_in_fiber_is_reported_as_a_stall(void **state)
{
    (void)state;
    fut_loop_opts_t o = {.stall_ns = 50 * MS};
    fut_executor_t *loop = NULL;
    assert_int_equal(fut_loop_create(&loop, &o), 0);
    fut_t *f = fut_fiber(loop, block_in_fiber, NULL, NULL);
    assert_int_equal(run_until(loop, f), 0);
    fut_stats_t st;
    assert_int_equal(fut_executor_stats(loop, &st), 0);
    assert_int_equal(st.stalls, 1);
    assert_true(st.longest_callback_ns >= 120 * MS);
    fut_release(f);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

/* ---- yield ----------------------------------------------------------------- */

struct yielder {
    char *log;
    atomic_int *n;
    char name;
};

static fut_result_t yield_thrice(void *arg)
{
    struct yielder *y = arg;
    for (int i = 0; i < 3; i++) {
        y->log[atomic_fetch_add(y->n, 1)] = y->name;
        fut_yield();
    }
    return fut_ok(NULL);
}

static void test_yield_interleaves_fibers_in_order(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    char log[8] = {0};
    atomic_int n = 0;
    struct yielder a = {log, &n, 'a'}, b = {log, &n, 'b'};
    fut_t *fs[2] = {fut_fiber(loop, yield_thrice, &a, NULL),
                    fut_fiber(loop, yield_thrice, &b, NULL)};
    fut_t *all = fut_all(fs, 2);
    assert_int_equal(run_until(loop, all), 0);
    assert_string_equal(log, "ababab");
    fut_release(all);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

/* ---- fibers in fibers ------------------------------------------------------ */

static fut_result_t fib_fiber(void *arg)
{
    intptr_t n = (intptr_t)arg;
    if (n < 2)
        return fut_ok_i64(n);
    fut_executor_t *ex = fut_executor_current();
    fut_t *a = fut_fiber(ex, fib_fiber, (void *)(n - 1), NULL);
    fut_t *b = fut_fiber(ex, fib_fiber, (void *)(n - 2), NULL);
    int ra = fut_await(a, NULL), rb = fut_await(b, NULL);
    int64_t v = fut_value_i64(a) + fut_value_i64(b);
    fut_release(a);
    fut_release(b);
    return ra || rb ? fut_fail(ra ? ra : rb) : fut_ok_i64(v);
}

static void test_fibers_spawn_and_await_fibers_on_loop(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    fut_t *f = fut_fiber(loop, fib_fiber, (void *)(intptr_t)12, NULL);
    assert_int_equal(run_until(loop, f), 0);
    assert_int_equal(fut_value_i64(f), 144);
    fut_release(f);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

static void test_fibers_spawn_and_await_fibers_on_pool(void **state)
{
    (void)state;
    fut_executor_t *pool = new_pool(2);
    fut_t *f = fut_fiber(pool, fib_fiber, (void *)(intptr_t)15, NULL);
    assert_int_equal(fut_wait(f, -1), 0);
    assert_int_equal(fut_value_i64(f), 610);
    fut_release(f);
    assert_int_equal(fut_executor_destroy(pool), 0);
}

static void test_fibers_spawn_and_await_fibers_on_custom(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    fut_t *f = fut_fiber(testexec_ex(tx), fib_fiber, (void *)(intptr_t)10,
                         NULL);
    testexec_run_all(tx);
    assert_int_equal(fut_value_i64(f), 55);
    fut_release(f);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

static void test_fibers_spawn_and_await_fibers_on_inline(void **state)
{
    (void)state;
    fut_t *f = fut_fiber(fut_inline(), fib_fiber, (void *)(intptr_t)10, NULL);
    assert_int_equal(fut_value_i64(f), 55);
    fut_release(f);
}

/* ---- cancellation ------------------------------------------------------------ */

struct cancellee {
    fut_t *on;
    int rc, rc_later;
    bool requested;
    atomic_int *freed;
};

static fut_result_t await_then_clean_up(void *arg)
{
    struct cancellee *c = arg;
    c->rc = fut_await(c->on, NULL);
    c->requested = fut_cancel_requested();
    c->rc_later = fut_await(c->on, NULL);
    return fut_ok_owned(counted_new(c->freed), counted_free);
}

static void test_cancel_while_suspended_wakes_with_ecanceled(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    atomic_int freed = 0;
    fut_promise_t *p;
    fut_t *never = fut_promise_new(&p);
    struct cancellee c = {.on = never, .freed = &freed};
    fut_t *f = fut_fiber(testexec_ex(tx), await_then_clean_up, &c, NULL);
    testexec_run_all(tx);
    assert_int_equal(fut_cancel(f), 0);
    assert_int_equal(fut_state(f), FUT_CANCELLED); /* at once */
    testexec_run_all(tx);
    assert_int_equal(c.rc, FUT_ECANCELED);
    assert_true(c.requested);
    assert_int_equal(c.rc_later, FUT_ECANCELED);
    assert_int_equal(atomic_load(&freed), 1); /* its value was disposed */
    fut_release(f);
    fut_promise_drop(p);
    fut_release(never);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

static void test_cancel_before_start_never_runs(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    struct awaiter a = {0};
    fut_t *f = fut_fiber(testexec_ex(tx), await_one, &a, NULL);
    assert_int_equal(fut_cancel(f), 0);
    testexec_run_all(tx);
    assert_int_equal(a.steps, 0);
    assert_int_equal(fut_error(f), FUT_ECANCELED);
    fut_release(f);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

static void test_timeout_around_fiber_wakes_it_like_cancel(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    atomic_int freed = 0;
    fut_promise_t *p;
    fut_t *never = fut_promise_new(&p);
    struct cancellee c = {.on = never, .freed = &freed};
    fut_t *f = fut_fiber(loop, await_then_clean_up, &c, NULL);
    fut_t *watch = fut_retain(f);
    fut_t *t = fut_timeout(f, 5 * MS);
    assert_int_equal(run_until(loop, t), FUT_ETIMEDOUT);
    /* The fiber runs its clean-up on the loop right after. */
    fut_t *d = fut_delay(loop, 5 * MS);
    run_until(loop, d);
    fut_release(d);
    assert_int_equal(c.rc, FUT_ECANCELED);
    assert_int_equal(atomic_load(&freed), 1);
    fut_release(t);
    fut_release(watch);
    fut_promise_drop(p);
    fut_release(never);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

/* ---- destroy with fibers suspended -------------------------------------------- */

struct last_run {
    fut_t *on;
    int rc, rc_later;
    pthread_t thread;
};

static fut_result_t await_at_shutdown(void *arg)
{
    struct last_run *l = arg;
    l->rc = fut_await(l->on, NULL);
    l->rc_later = fut_await(l->on, NULL);
    fut_yield(); /* returns at once */
    l->thread = pthread_self();
    return fut_ok_i64(5);
}

static void destroy_with_suspended(fut_executor_t *ex, bool loop)
{
    enum { N = 50 };
    fut_promise_t *p;
    fut_t *never = fut_promise_new(&p);
    static struct last_run l[N];
    fut_t *fs[N];
    for (int i = 0; i < N; i++) {
        l[i] = (struct last_run){.on = never};
        fs[i] = fut_fiber(ex, await_at_shutdown, &l[i], NULL);
    }
    /* Let every fiber reach its await. */
    fut_t *d = fut_delay(ex, 10 * MS);
    if (loop)
        run_until(ex, d);
    else
        fut_wait(d, -1);
    fut_release(d);
    for (int i = 0; i < N; i++)
        assert_int_equal(fut_state(fs[i]), FUT_PENDING);
    assert_int_equal(fut_executor_destroy(ex), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(l[i].rc, FUT_ESHUTDOWN);
        assert_int_equal(l[i].rc_later, FUT_ESHUTDOWN);
        assert_true(pthread_equal(l[i].thread, pthread_self()));
        assert_int_equal(fut_value_i64(fs[i]), 5);
        fut_release(fs[i]);
    }
    fut_promise_drop(p);
    fut_release(never);
}

static void test_destroy_loop_resumes_suspended_fibers(void **state)
{
    (void)state;
    destroy_with_suspended(new_loop(), true);
}

static void test_destroy_pool_resumes_suspended_fibers(void **state)
{
    (void)state;
    destroy_with_suspended(new_pool(2), false);
}

static void test_destroy_drops_unstarted_fiber_eshutdown(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    struct awaiter a = {0};
    fut_t *f = fut_fiber(testexec_ex(tx), await_one, &a, NULL);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
    assert_int_equal(a.steps, 0);
    assert_int_equal(fut_error(f), FUT_ESHUTDOWN);
    fut_release(f);
}

static void test_destroy_resumes_fiber_whose_run_was_dropped(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    fut_promise_t *p;
    fut_t *pf = fut_promise_new(&p);
    struct awaiter a = {.on = pf};
    fut_t *f = fut_fiber(testexec_ex(tx), await_one, &a, NULL);
    testexec_run_all(tx);
    fut_promise_settle(p, fut_ok(NULL)); /* queues its resume ... */
    assert_int_equal(testexec_pending(tx), 1);
    /* ... which the destroy drops; the fiber's last run comes after. */
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
    assert_int_equal(a.steps, 2);
    assert_int_equal(a.rc, FUT_ESHUTDOWN);
    assert_int_equal(fut_value_i64(f), FUT_ESHUTDOWN);
    fut_release(f);
    fut_release(pf);
}

/* ---- many ----------------------------------------------------------------------- */

static fut_result_t await_count(void *arg)
{
    fut_t *on = arg;
    int rc = fut_await(on, NULL);
    return fut_ok_i64(rc == 0);
}

/* 10^5 fibers suspended at once with the default stack: more than
 * vm.max_map_count (65530) if each guard page cost map entries.  (TSan
 * keeps a thread's state per fiber and stops at 8128 of them.) */
static void test_hundred_thousand_suspended_fibers(void **state)
{
    (void)state;
    const int N = TEST_UNDER_TSAN ? 5000 : 100000;
    fut_promise_t *p;
    fut_t *pf = fut_promise_new(&p);
    fut_t **fs = malloc(N * sizeof *fs);
    assert_non_null(fs);
    for (int i = 0; i < N; i++)
        fs[i] = fut_fiber(fut_inline(), await_count, pf, NULL);
    int pending = 0, enomem = 0;
    for (int i = 0; i < N; i++) {
        pending += fut_state(fs[i]) == FUT_PENDING;
        enomem += fut_error(fs[i]) == FUT_ENOMEM;
    }
    if (enomem) /* says why, then fails */
        print_message("%d fibers got FUT_ENOMEM: a kernel before 6.13 has "
                      "no MADV_GUARD_INSTALL, and mprotect guards cost two "
                      "map entries per stack (vm.max_map_count)\n",
                      enomem);
    assert_int_equal(pending, N);
    fut_promise_settle(p, fut_ok(NULL));
    int64_t ok = 0;
    for (int i = 0; i < N; i++) {
        ok += fut_value_i64(fs[i]);
        fut_release(fs[i]);
    }
    assert_int_equal(ok, N);
    free(fs);
    fut_release(pf);
}

/* ---- no memory ------------------------------------------------------------ */

static atomic_int g_freed;

static fut_result_t await_and_yield(void *arg)
{
    fut_t *on = arg;
    int rc = fut_wait(on, -1);
    fut_yield();
    return rc ? fut_fail(rc) : fut_ok_owned(counted_new(&g_freed), counted_free);
}

/* One fiber on a test executor awaiting a promise settled from outside,
 * with the K-th allocation after the executor's making failing: returns
 * what the fiber's future says (0 or the error; 1 if still pending). */
static int nomem_scenario(long k)
{
    testexec_t *tx = testexec_new(NULL, NULL);
    atomic_store(&failalloc_at, atomic_load(&failalloc_calls) + k);
    fut_promise_t *p;
    fut_t *pf = fut_promise_new(&p);
    fut_t *f = fut_fiber(testexec_ex(tx), await_and_yield, pf, NULL);
    testexec_run_all(tx);
    fut_promise_settle(p, fut_ok(NULL));
    testexec_run_all(tx);
    int err = fut_state(f) == FUT_PENDING ? 1 : fut_error(f);
    fut_release(f);
    fut_release(pf);
    atomic_store(&failalloc_at, 0);
    testexec_destroy(tx, NULL, NULL);
    return err;
}

/* Every allocation of a fiber's life fails in turn: the fiber's future
 * settles (0 or FUT_ENOMEM, never stuck pending: its wake needs no
 * memory), nothing leaks, its value is destroyed once. */
static void test_allocation_failures_end_in_enomem_never_a_hang(void **state)
{
    (void)state;
    long k;
    for (k = 1; k < 1000; k++) {
        atomic_store(&failalloc_calls, 0);
        atomic_store(&failalloc_live, 0);
        atomic_store(&failalloc_failed, 0);
        atomic_store(&failalloc_at, 0);
        atomic_store(&g_freed, 0);
        fut_set_allocator(failalloc_alloc, failalloc_free);
        int err = nomem_scenario(k);
        fut_set_allocator(NULL, NULL); /* returns this thread's blocks */
        if (err != 0 && err != FUT_ENOMEM)
            print_message("k=%ld: fiber ended with %d\n", k, err);
        assert_true(err == 0 || err == FUT_ENOMEM);
        assert_int_equal(atomic_load(&failalloc_live), 0);
        assert_int_equal(atomic_load(&g_freed), err == 0);
        if (!atomic_load(&failalloc_failed))
            break; /* past the last allocation: it succeeded */
    }
    assert_true(k > 3 && k < 1000);
}

static void *refuse_alloc(size_t n)
{
    (void)n;
    return NULL;
}

/* Once a fiber is suspended, waking it needs no memory: its next run is
 * its own future's task.  (Installing an allocator empties the thread's cached
 * blocks, so here every allocation fails.) */
static void test_wake_needs_no_memory(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    fut_promise_t *p;
    fut_t *pf = fut_promise_new(&p);
    atomic_store(&g_freed, 0);
    fut_t *f = fut_fiber(testexec_ex(tx), await_and_yield, pf, NULL);
    testexec_run_all(tx); /* suspended */
    fut_set_allocator(refuse_alloc, free);
    fut_promise_settle(p, fut_ok(NULL));
    testexec_run_all(tx);
    fut_set_allocator(NULL, NULL);
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    fut_release(f);
    assert_int_equal(atomic_load(&g_freed), 1);
    fut_release(pf);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

/* ---- the guard page ------------------------------------------------------------- */

static int recurse(int n)
{
    volatile char pad[512];
    pad[0] = (char)n;
    return n > 0 ? recurse(n + 1) + pad[0] : 0;
}

static fut_result_t overflow(void *arg)
{
    (void)arg;
    return fut_ok_i64(recurse(1));
}

static void test_stack_overflow_faults_at_the_guard(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        fut_t *f = fut_fiber(fut_inline(), overflow, NULL, NULL);
        _exit(fut_state(f) == FUT_FULFILLED ? 0 : 3);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (TEST_UNDER_SANITIZER) /* ASan reports the overflow and aborts */
        assert_true(WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st)));
    else
        assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fiber_returns_value_on_inline),
        cmocka_unit_test(test_in_fiber_false_outside),
        cmocka_unit_test(test_fiber_bad_arguments_are_einval),
        cmocka_unit_test(test_fiber_small_and_odd_stack_sizes_run),
        cmocka_unit_test(test_fiber_refused_is_eshutdown_and_never_runs),
        cmocka_unit_test(test_await_settled_does_not_switch),
        cmocka_unit_test(test_await_pending_suspends_and_resumes_as_task),
        cmocka_unit_test(test_await_on_inline_resumes_on_settling_thread),
        cmocka_unit_test(test_wait_on_own_future_is_edeadlk),
        cmocka_unit_test(test_await_promise_from_other_thread_on_loop),
        cmocka_unit_test(test_await_promise_from_other_thread_on_pool),
        cmocka_unit_test(test_thousand_fibers_on_loop_overlap_their_delays),
        cmocka_unit_test(test_timed_wait_in_fiber_times_out),
        cmocka_unit_test(test_stale_wait_does_not_wake_a_later_wait),
        cmocka_unit_test(test_switch_keeps_fp_control_per_context),
        cmocka_unit_test(test_wait_in_inline_callback_inside_fiber_blocks),
        cmocka_unit_test(test_blocking_call_in_fiber_is_reported_as_a_stall),
        cmocka_unit_test(test_yield_interleaves_fibers_in_order),
        cmocka_unit_test(test_fibers_spawn_and_await_fibers_on_loop),
        cmocka_unit_test(test_fibers_spawn_and_await_fibers_on_pool),
        cmocka_unit_test(test_fibers_spawn_and_await_fibers_on_custom),
        cmocka_unit_test(test_fibers_spawn_and_await_fibers_on_inline),
        cmocka_unit_test(test_cancel_while_suspended_wakes_with_ecanceled),
        cmocka_unit_test(test_cancel_before_start_never_runs),
        cmocka_unit_test(test_timeout_around_fiber_wakes_it_like_cancel),
        cmocka_unit_test(test_destroy_loop_resumes_suspended_fibers),
        cmocka_unit_test(test_destroy_pool_resumes_suspended_fibers),
        cmocka_unit_test(test_destroy_drops_unstarted_fiber_eshutdown),
        cmocka_unit_test(test_destroy_resumes_fiber_whose_run_was_dropped),
        cmocka_unit_test(test_hundred_thousand_suspended_fibers),
        cmocka_unit_test(test_allocation_failures_end_in_enomem_never_a_hang),
        cmocka_unit_test(test_wake_needs_no_memory),
        cmocka_unit_test(test_stack_overflow_faults_at_the_guard),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
