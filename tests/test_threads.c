/* Threads: settle racing attaches, cancel racing settle, shared references.
 * Worker threads only record into atomics; the main thread asserts. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include <fut.h>

#include "testexec.h"

#define ROUNDS (TEST_UNDER_SANITIZER ? 600 : 2000)
enum { ATTACHERS = 3, PER_ATTACHER = 40 };

typedef fut_t *(*comb_fn_t)(fut_t *const *fs, size_t n);

typedef struct round {
    fut_t *f;
    fut_promise_t *p;
    atomic_int go;
    atomic_int calls; /* continuation runs */
    atomic_int bad;   /* wrong value seen or wrong wait result */
    atomic_int settle_rc;
    atomic_int dtors;
    unsigned spin;
} round_t;

static void start_line(round_t *r)
{
    while (!atomic_load_explicit(&r->go, memory_order_acquire))
        sched_yield(); /* more threads than cores: let the others start */
}

static fut_result_t cb_check(void *arg, fut_t *src)
{
    round_t *r = arg;
    atomic_fetch_add(&r->calls, 1);
    if (fut_value(src) == NULL)
        atomic_fetch_add(&r->bad, 1);
    return fut_ok_i64(1);
}

static void *attacher(void *arg)
{
    round_t *r = arg;
    fut_t *out[PER_ATTACHER];
    start_line(r);
    for (int i = 0; i < PER_ATTACHER; i++)
        out[i] = fut_then(fut_retain(r->f), fut_inline(), cb_check, r);
    for (int i = 0; i < PER_ATTACHER; i++) {
        if (fut_wait(out[i], -1) != 0 || fut_value_i64(out[i]) != 1)
            atomic_fetch_add(&r->bad, 1);
        fut_release(out[i]);
    }
    return NULL;
}

static void *settler(void *arg)
{
    round_t *r = arg;
    start_line(r);
    for (volatile unsigned i = 0; i < r->spin; i++)
        ;
    atomic_store(&r->settle_rc,
                 fut_promise_settle(
                     r->p, fut_ok_owned(counted_new(&r->dtors), counted_free)));
    return NULL;
}

static void test_settle_races_concurrent_attaches(void **state)
{
    (void)state;
    unsigned seed = 99;
    for (int round = 0; round < ROUNDS; round++) {
        round_t r = {.settle_rc = 1};
        r.f = fut_promise_new(&r.p);
        seed = seed * 1103515245u + 12345u;
        r.spin = (seed >> 16) % 30000;
        pthread_t th[ATTACHERS + 1];
        for (int i = 0; i < ATTACHERS; i++)
            assert_int_equal(pthread_create(&th[i], NULL, attacher, &r), 0);
        assert_int_equal(pthread_create(&th[ATTACHERS], NULL, settler, &r), 0);
        atomic_store_explicit(&r.go, 1, memory_order_release);
        for (int i = 0; i <= ATTACHERS; i++)
            pthread_join(th[i], NULL);
        assert_int_equal(atomic_load(&r.settle_rc), 0);
        assert_int_equal(atomic_load(&r.calls), ATTACHERS * PER_ATTACHER);
        assert_int_equal(atomic_load(&r.bad), 0);
        assert_int_equal(atomic_load(&r.dtors), 0);
        fut_release(r.f);
        assert_int_equal(atomic_load(&r.dtors), 1);
    }
}

/* Continuations attached from threads onto the test executor: the main
 * thread runs them all afterwards; each must run exactly once. */
static fut_result_t cb_count(void *arg, fut_t *src)
{
    (void)src;
    atomic_fetch_add(&((round_t *)arg)->calls, 1);
    return fut_ok_i64(2);
}

typedef struct tx_round {
    round_t *r;
    testexec_t *tx;
    fut_t *out[PER_ATTACHER];
} tx_round_t;

static void *tx_attacher(void *arg)
{
    tx_round_t *a = arg;
    start_line(a->r);
    for (int i = 0; i < PER_ATTACHER; i++)
        a->out[i] =
            fut_then(fut_retain(a->r->f), testexec_ex(a->tx), cb_count, a->r);
    return NULL;
}

static void test_settle_races_attaches_onto_custom_executor(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    assert_non_null(tx);
    unsigned seed = 7;
    for (int round = 0; round < ROUNDS; round++) {
        round_t r = {.settle_rc = 1};
        r.f = fut_promise_new(&r.p);
        seed = seed * 1103515245u + 12345u;
        r.spin = (seed >> 16) % 30000;
        tx_round_t a[ATTACHERS];
        pthread_t th[ATTACHERS + 1];
        for (int i = 0; i < ATTACHERS; i++) {
            a[i].r = &r;
            a[i].tx = tx;
            assert_int_equal(pthread_create(&th[i], NULL, tx_attacher, &a[i]),
                             0);
        }
        assert_int_equal(pthread_create(&th[ATTACHERS], NULL, settler, &r), 0);
        atomic_store_explicit(&r.go, 1, memory_order_release);
        for (int i = 0; i <= ATTACHERS; i++)
            pthread_join(th[i], NULL);
        assert_int_equal(atomic_load(&r.settle_rc), 0);
        assert_int_equal(testexec_pending(tx), ATTACHERS * PER_ATTACHER);
        assert_int_equal(testexec_run_all(tx), ATTACHERS * PER_ATTACHER);
        assert_int_equal(atomic_load(&r.calls), ATTACHERS * PER_ATTACHER);
        for (int i = 0; i < ATTACHERS; i++)
            for (int j = 0; j < PER_ATTACHER; j++) {
                assert_int_equal(fut_value_i64(a[i].out[j]), 2);
                fut_release(a[i].out[j]);
            }
        fut_release(r.f);
        assert_int_equal(atomic_load(&r.dtors), 1);
    }
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

/* Cancel racing settle: exactly one wins, and the loser's value is
 * disposed exactly once. */
static void *cancel_thread(void *arg)
{
    round_t *r = arg;
    start_line(r);
    atomic_store(&r->calls, fut_cancel(r->f));
    return NULL;
}

static void test_cancel_races_settle_one_winner(void **state)
{
    (void)state;
    unsigned seed = 3;
    int cancels = 0, settles = 0;
    for (int round = 0; round < ROUNDS * 2; round++) {
        round_t r = {.settle_rc = 1, .calls = 1};
        r.f = fut_promise_new(&r.p);
        seed = seed * 1103515245u + 12345u;
        r.spin = (seed >> 16) % 3000;
        pthread_t a, b;
        assert_int_equal(pthread_create(&a, NULL, cancel_thread, &r), 0);
        assert_int_equal(pthread_create(&b, NULL, settler, &r), 0);
        atomic_store_explicit(&r.go, 1, memory_order_release);
        pthread_join(a, NULL);
        pthread_join(b, NULL);
        int crc = atomic_load(&r.calls), src = atomic_load(&r.settle_rc);
        if (crc == 0) {
            assert_int_equal(src, FUT_EALREADY);
            assert_int_equal(fut_state(r.f), FUT_CANCELLED);
            assert_int_equal(atomic_load(&r.dtors), 1); /* disposed at once */
            cancels++;
        } else {
            assert_int_equal(crc, FUT_EALREADY);
            assert_int_equal(src, 0);
            assert_int_equal(fut_state(r.f), FUT_FULFILLED);
            assert_int_equal(atomic_load(&r.dtors), 0);
            settles++;
        }
        fut_release(r.f);
        assert_int_equal(atomic_load(&r.dtors), 1);
    }
    print_message("cancel/settle race: %d cancels, %d settles\n", cancels,
                  settles);
}

/* Shared references: retains and releases from many threads; the value's
 * destructor runs once, after the last. */
typedef struct refs {
    fut_t *f;
    atomic_int go;
    atomic_int bad;
} refs_t;

static void *retain_release(void *arg)
{
    refs_t *s = arg;
    while (!atomic_load_explicit(&s->go, memory_order_acquire))
        sched_yield();
    for (int i = 0; i < 2000; i++) {
        fut_t *g = fut_retain(s->f);
        if (g != s->f || fut_value(g) == NULL)
            atomic_fetch_add(&s->bad, 1);
        fut_release(g);
    }
    fut_release(s->f); /* each thread owns one reference */
    return NULL;
}

static void test_concurrent_retain_release(void **state)
{
    (void)state;
    enum { T = 4 };
    for (int round = 0; round < (TEST_UNDER_SANITIZER ? 20 : 200); round++) {
        atomic_int dtors = 0;
        refs_t s = {0};
        s.f = fut_ready(fut_ok_owned(counted_new(&dtors), counted_free));
        for (int i = 1; i < T; i++)
            fut_retain(s.f);
        pthread_t th[T];
        for (int i = 0; i < T; i++)
            assert_int_equal(pthread_create(&th[i], NULL, retain_release, &s),
                             0);
        atomic_store_explicit(&s.go, 1, memory_order_release);
        for (int i = 0; i < T; i++)
            pthread_join(th[i], NULL);
        assert_int_equal(atomic_load(&s.bad), 0);
        assert_int_equal(atomic_load(&dtors), 1);
    }
}

/* Futures crossing threads: a chain built on one thread, settled on a
 * second, awaited on a third. */
static void *await_thread(void *arg)
{
    round_t *r = arg;
    start_line(r);
    if (fut_await(r->f, NULL) != 0 || fut_value_i64(r->f) != 1)
        atomic_fetch_add(&r->bad, 1);
    return NULL;
}

static void test_chain_settled_and_awaited_on_other_threads(void **state)
{
    (void)state;
    for (int round = 0; round < ROUNDS; round++) {
        round_t r = {.settle_rc = 1};
        fut_t *head = fut_promise_new(&r.p);
        r.f = fut_then(fut_retain(head), fut_inline(), cb_check, &r);
        pthread_t a, b;
        assert_int_equal(pthread_create(&a, NULL, await_thread, &r), 0);
        assert_int_equal(pthread_create(&b, NULL, settler, &r), 0);
        atomic_store_explicit(&r.go, 1, memory_order_release);
        pthread_join(a, NULL);
        pthread_join(b, NULL);
        assert_int_equal(atomic_load(&r.bad), 0);
        assert_int_equal(atomic_load(&r.calls), 1);
        fut_release(r.f);
        fut_release(head);
        assert_int_equal(atomic_load(&r.dtors), 1);
    }
}

/* Catches attached from threads while another thread cancels: every catch
 * callback runs exactly once, and every then-callback never. */
static fut_result_t cb_never(void *arg, fut_t *src)
{
    (void)src;
    atomic_fetch_add(&((round_t *)arg)->bad, 1);
    return fut_ok_i64(0);
}

static fut_result_t cb_caught(void *arg, fut_t *src)
{
    round_t *r = arg;
    atomic_fetch_add(&r->calls, 1);
    if (fut_error(src) != FUT_ECANCELED)
        atomic_fetch_add(&r->bad, 1);
    return fut_ok_i64(1);
}

static void *catch_attacher(void *arg)
{
    round_t *r = arg;
    fut_t *out[PER_ATTACHER];
    start_line(r);
    for (int i = 0; i < PER_ATTACHER; i++) {
        out[i] = fut_catch(fut_retain(r->f), fut_inline(), cb_caught, r);
        fut_release(fut_then(fut_retain(r->f), fut_inline(), cb_never, r));
    }
    for (int i = 0; i < PER_ATTACHER; i++) {
        if (fut_wait(out[i], -1) != 0 || fut_value_i64(out[i]) != 1)
            atomic_fetch_add(&r->bad, 1);
        fut_release(out[i]);
    }
    return NULL;
}

static void *spin_cancel(void *arg)
{
    round_t *r = arg;
    start_line(r);
    for (volatile unsigned i = 0; i < r->spin; i++)
        ;
    atomic_store(&r->settle_rc, fut_cancel(r->f));
    return NULL;
}

static void test_cancel_races_concurrent_attaches(void **state)
{
    (void)state;
    unsigned seed = 5;
    for (int round = 0; round < ROUNDS; round++) {
        round_t r = {.settle_rc = 1};
        r.f = fut_promise_new(&r.p);
        seed = seed * 1103515245u + 12345u;
        r.spin = (seed >> 16) % 30000;
        pthread_t th[ATTACHERS + 1];
        for (int i = 0; i < ATTACHERS; i++)
            assert_int_equal(pthread_create(&th[i], NULL, catch_attacher, &r),
                             0);
        assert_int_equal(pthread_create(&th[ATTACHERS], NULL, spin_cancel, &r),
                         0);
        atomic_store_explicit(&r.go, 1, memory_order_release);
        for (int i = 0; i <= ATTACHERS; i++)
            pthread_join(th[i], NULL);
        assert_int_equal(atomic_load(&r.settle_rc), 0);
        assert_int_equal(atomic_load(&r.calls), ATTACHERS * PER_ATTACHER);
        assert_int_equal(atomic_load(&r.bad), 0);
        assert_int_equal(fut_promise_settle(r.p, fut_ok_i64(1)), FUT_EALREADY);
        fut_release(r.f);
    }
}

/* Timed waits racing the settle: waiters give up and retry with tiny
 * timeouts while another thread settles (the waiter node is shared by the
 * waiter and the list, in either order). */
static void *timed_waiter(void *arg)
{
    round_t *r = arg;
    start_line(r);
    int64_t t = 1;
    int rc;
    while ((rc = fut_wait(r->f, t)) == FUT_ETIMEDOUT)
        t = t < 100000 ? t * 3 : 100000;
    if (rc != 0 || fut_state(r->f) != FUT_FULFILLED)
        atomic_fetch_add(&r->bad, 1);
    return NULL;
}

static void test_timed_waits_race_settle(void **state)
{
    (void)state;
    unsigned seed = 11;
    for (int round = 0; round < ROUNDS; round++) {
        round_t r = {.settle_rc = 1};
        r.f = fut_promise_new(&r.p);
        seed = seed * 1103515245u + 12345u;
        r.spin = (seed >> 16) % 30000;
        pthread_t th[ATTACHERS + 1];
        for (int i = 0; i < ATTACHERS; i++)
            assert_int_equal(pthread_create(&th[i], NULL, timed_waiter, &r), 0);
        assert_int_equal(pthread_create(&th[ATTACHERS], NULL, settler, &r), 0);
        atomic_store_explicit(&r.go, 1, memory_order_release);
        for (int i = 0; i <= ATTACHERS; i++)
            pthread_join(th[i], NULL);
        assert_int_equal(atomic_load(&r.settle_rc), 0);
        assert_int_equal(atomic_load(&r.bad), 0);
        fut_release(r.f);
        assert_int_equal(atomic_load(&r.dtors), 1);
    }
}

/* A combinator whose inputs settle on different threads at once. */
enum { INPUTS = 4 };

typedef struct comb_round {
    fut_promise_t *p[INPUTS];
    atomic_int go;
    atomic_int dtors;
} comb_round_t;

typedef struct comb_arg {
    comb_round_t *r;
    int i;
} comb_arg_t;

static void *settle_input(void *arg)
{
    comb_arg_t *a = arg;
    while (!atomic_load_explicit(&a->r->go, memory_order_acquire))
        sched_yield();
    fut_promise_settle(a->r->p[a->i],
                       fut_ok_owned(counted_new(&a->r->dtors), counted_free));
    return NULL;
}

static void test_combinator_inputs_settled_concurrently(void **state)
{
    (void)state;
    comb_fn_t fns[3] = {fut_all, fut_all_settled, fut_race};
    for (int round = 0; round < ROUNDS; round++) {
        comb_round_t r = {0};
        fut_t *in[INPUTS];
        for (int i = 0; i < INPUTS; i++)
            in[i] = fut_promise_new(&r.p[i]);
        fut_t *c = fns[round % 3](in, INPUTS);
        pthread_t th[INPUTS];
        comb_arg_t a[INPUTS];
        for (int i = 0; i < INPUTS; i++) {
            a[i].r = &r;
            a[i].i = i;
            assert_int_equal(pthread_create(&th[i], NULL, settle_input, &a[i]),
                             0);
        }
        atomic_store_explicit(&r.go, 1, memory_order_release);
        assert_int_equal(fut_wait(c, -1), 0);
        for (int i = 0; i < INPUTS; i++)
            pthread_join(th[i], NULL);
        assert_int_equal(fut_state(c), FUT_FULFILLED);
        /* race cancels the losers still pending when it settles */
        for (int i = 0; i < INPUTS; i++)
            if (round % 3 != 2 ||
                fut_state(fut_input(c, (size_t)i)) != FUT_CANCELLED)
                assert_int_equal(fut_state(fut_input(c, (size_t)i)),
                                 FUT_FULFILLED);
        if (round % 3 == 2)
            assert_non_null(fut_value(c));
        fut_release(c);
        assert_int_equal(atomic_load(&r.dtors), INPUTS);
    }
}

/* Continuations due on an executor while another thread destroys it: each
 * one either runs exactly once or settles FUT_ESHUTDOWN; none is lost. */
enum { DUE = 64 };

typedef struct destroy_round {
    fut_promise_t *p[DUE];
    atomic_int go;
    atomic_int settled;
    atomic_int runs[DUE];
} destroy_round_t;

static fut_result_t cb_run_once(void *arg, fut_t *src)
{
    (void)src;
    atomic_fetch_add((atomic_int *)arg, 1);
    return fut_ok_i64(5);
}

static void *settle_all(void *arg)
{
    destroy_round_t *r = arg;
    while (!atomic_load_explicit(&r->go, memory_order_acquire))
        sched_yield();
    for (int i = 0; i < DUE; i++) {
        fut_promise_settle(r->p[i], fut_ok_i64(i));
        atomic_fetch_add(&r->settled, 1);
    }
    return NULL;
}

static void test_destroy_races_due_continuations(void **state)
{
    (void)state;
    int ran_total = 0, shut_total = 0;
    for (int round = 0; round < ROUNDS / 4; round++) {
        testexec_opts_t o = {.on_destroy =
                                 round % 2 ? TESTEXEC_RUN : TESTEXEC_DROP};
        testexec_t *tx = testexec_new(&o, NULL);
        assert_non_null(tx);
        destroy_round_t r = {0};
        fut_t *c[DUE];
        for (int i = 0; i < DUE; i++)
            c[i] = fut_then(fut_promise_new(&r.p[i]), testexec_ex(tx),
                            cb_run_once, &r.runs[i]);
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, settle_all, &r), 0);
        atomic_store_explicit(&r.go, 1, memory_order_release);
        /* destroy somewhere in the middle of the settles */
        int target = (round * 7) % DUE;
        while (atomic_load(&r.settled) < target)
            sched_yield();
        for (int i = 0; i < DUE / 8; i++)
            testexec_run_one(tx);
        assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
        pthread_join(th, NULL);
        for (int i = 0; i < DUE; i++) {
            int runs = atomic_load(&r.runs[i]);
            assert_true(runs == 0 || runs == 1);
            if (runs == 1) {
                assert_int_equal(fut_state(c[i]), FUT_FULFILLED);
                assert_int_equal(fut_value_i64(c[i]), 5);
                ran_total++;
            } else {
                assert_int_equal(fut_state(c[i]), FUT_REJECTED);
                assert_int_equal(fut_error(c[i]), FUT_ESHUTDOWN);
                shut_total++;
            }
            fut_release(c[i]);
        }
    }
    print_message("destroy race: %d ran, %d shut down\n", ran_total,
                  shut_total);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_settle_races_concurrent_attaches),
        cmocka_unit_test(test_settle_races_attaches_onto_custom_executor),
        cmocka_unit_test(test_cancel_races_settle_one_winner),
        cmocka_unit_test(test_concurrent_retain_release),
        cmocka_unit_test(test_chain_settled_and_awaited_on_other_threads),
        cmocka_unit_test(test_cancel_races_concurrent_attaches),
        cmocka_unit_test(test_timed_waits_race_settle),
        cmocka_unit_test(test_combinator_inputs_settled_concurrently),
        cmocka_unit_test(test_destroy_races_due_continuations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
