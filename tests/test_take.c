/* Fork-join's fast path (task.c, fut__run_taken; pool.c, pool_take): a
 * pool task waiting for the child it just spawned takes the child's task
 * back from the top of its own deque, runs it itself, and owes the
 * executor's hold until its next release.  These tests look inside
 * (refs, fut__tls.owed) to check that the debt is made only when the child
 * was on top, and always paid: with the waiter's release, by the next
 * release of another future, or when the enclosing task returns.  Leaks
 * (a debt never paid) show under ASan, where slabs are off. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "internal.h"
#include "testexec.h"

static fut_executor_t *g_pool;

/* cmocka asserts only on the main thread: tasks count what went wrong. */
static atomic_int g_bad;
#define EXPECT(c)                                                              \
    do {                                                                       \
        if (!(c))                                                              \
            atomic_fetch_add(&g_bad, 1);                                       \
    } while (0)

static fut_executor_t *pool1(void)
{
    fut_pool_opts_t o = {.threads = 1};
    fut_executor_t *p = NULL;
    assert_int_equal(fut_pool_create(&p, &o), 0);
    return p;
}

/* What a parent task saw, recorded for the main thread to assert. */
typedef struct {
    pthread_t parent, child;
    int child_depth;     /* parent's wait nesting seen by the child */
    int waiting;         /* set by the parent around its wait */
    uint32_t refs_after; /* child's refs right after the wait */
    int owed_after;      /* fut__tls.owed == child right after the wait */
    uint32_t refs_paid;  /* after the debt was paid */
    int owed_cleared;    /* fut__tls.owed == NULL after the release */
    int64_t value;
    int child_ran;
    fut_t *out; /* a child handed out of the task */
} rec_t;

static uint32_t refs_of(fut_t *f)
{
    return atomic_load_explicit(&f->refs, memory_order_acquire);
}

static fut_result_t child(void *arg)
{
    rec_t *r = arg;
    r->child = pthread_self();
    r->child_depth = r->waiting;
    r->child_ran++;
    return fut_ok_i64(42);
}

/* Inside a task: spawns the child on the executor running this task and
 * waits for it, recording what the wait left behind (the reference count,
 * whether this thread owes the child's hold).  Returns the child. */
static fut_t *spawn_and_wait(rec_t *r)
{
    fut_t *a = fut_async(fut_executor_current(), child, r);
    r->waiting = 1;
    EXPECT(fut_wait(a, -1) == 0);
    r->waiting = 0;
    r->refs_after = refs_of(a);
    r->owed_after = fut__tls.owed == a;
    return a;
}

/* Spawn, wait, release: the plain fork-join step (pool or testexec). */
static fut_result_t parent_release(void *arg)
{
    rec_t *r = arg;
    r->parent = pthread_self();
    fut_t *a = spawn_and_wait(r);
    r->value = fut_value_i64(a);
    fut_release(a);
    r->owed_cleared = fut__tls.owed == NULL;
    return fut_ok(NULL);
}

/* What parent_release saw when the child was taken back. */
static void assert_taken(const rec_t *r)
{
    assert_int_equal(r->child_ran, 1);
    assert_int_equal(r->child_depth, 1); /* ran inside the parent's wait */
    assert_int_equal(r->value, 42);
    assert_int_equal(r->refs_after, 2); /* caller's + the owed hold */
    assert_true(r->owed_after);
    assert_true(r->owed_cleared);
}

static void run_parent(fut_task_fn fn, rec_t *r)
{
    g_pool = pool1();
    fut_t *p = fut_async(g_pool, fn, r);
    assert_int_equal(fut_wait(p, -1), 0);
    assert_int_equal(fut_state(p), FUT_FULFILLED);
    fut_release(p);
    assert_int_equal(atomic_load(&g_bad), 0);
}

static void test_wait_runs_own_child_and_owes_the_hold(void **state)
{
    (void)state;
    rec_t r = {0};
    run_parent(parent_release, &r);
    assert_taken(&r);
    assert_true(pthread_equal(r.parent, r.child));
    assert_int_equal(fut_executor_destroy(g_pool), 0);
}

static fut_result_t parent_release_other(void *arg)
{
    rec_t *r = arg;
    fut_t *a = spawn_and_wait(r);
    fut_release(fut_ready(fut_ok_i64(1))); /* another future: pays */
    r->refs_paid = refs_of(a);
    r->owed_cleared = fut__tls.owed == NULL;
    r->value = fut_value_i64(a);
    fut_release(a);
    return fut_ok(NULL);
}

static void test_next_release_of_another_future_pays(void **state)
{
    (void)state;
    rec_t r = {0};
    run_parent(parent_release_other, &r);
    assert_int_equal(r.refs_after, 2);
    assert_true(r.owed_after);
    assert_int_equal(r.refs_paid, 1);
    assert_true(r.owed_cleared);
    assert_int_equal(r.value, 42);
    assert_int_equal(fut_executor_destroy(g_pool), 0);
}

static fut_result_t parent_hands_out(void *arg)
{
    rec_t *r = arg;
    r->out = spawn_and_wait(r); /* our reference leaves with the record */
    return fut_ok(NULL);
}

static void test_debt_is_paid_when_the_task_returns(void **state)
{
    (void)state;
    rec_t r = {0};
    run_parent(parent_hands_out, &r);
    assert_true(r.owed_after);
    assert_non_null(r.out);
    /* The parent has returned: its debt is paid, one reference is left. */
    assert_int_equal(refs_of(r.out), 1);
    assert_int_equal(fut_value_i64(r.out), 42);
    fut_release(r.out);
    assert_int_equal(fut_executor_destroy(g_pool), 0);
}

static fut_result_t add_one(void *arg, fut_t *src)
{
    (void)arg;
    return fut_ok_i64(fut_value_i64(src) + 1);
}

static fut_result_t parent_chains(void *arg)
{
    rec_t *r = arg;
    fut_t *a = spawn_and_wait(r);
    a = fut_then(a, fut_inline(), add_one, NULL); /* consumes the taken one */
    EXPECT(fut_wait(a, -1) == 0);
    r->value = fut_value_i64(a);
    fut_release(a);
    r->owed_cleared = fut__tls.owed == NULL;
    return fut_ok(NULL);
}

static void test_chaining_on_a_taken_future(void **state)
{
    (void)state;
    rec_t r = {0};
    run_parent(parent_chains, &r);
    assert_int_equal(r.value, 43);
    assert_true(r.owed_cleared);
    assert_int_equal(fut_executor_destroy(g_pool), 0);
}

static fut_result_t parent_waits_older(void *arg)
{
    rec_t *r = arg;
    rec_t other = {0};
    fut_t *a = fut_async(g_pool, child, r);
    fut_t *b = fut_async(g_pool, child, &other); /* on top of a */
    EXPECT(fut_wait(a, -1) == 0);                /* a is not on top: no take */
    r->refs_after = refs_of(a);
    r->owed_after = fut__tls.owed == a;
    r->value = fut_value_i64(a);
    fut_release(a);
    EXPECT(fut_wait(b, -1) == 0);
    r->child_ran += other.child_ran;
    fut_release(b);
    return fut_ok(NULL);
}

static void test_only_the_top_task_is_taken(void **state)
{
    (void)state;
    rec_t r = {0};
    run_parent(parent_waits_older, &r);
    assert_int_equal(r.value, 42);
    assert_false(r.owed_after);
    assert_int_equal(r.refs_after, 1); /* its hold ended the usual way */
    assert_int_equal(r.child_ran, 2);
    assert_int_equal(fut_executor_destroy(g_pool), 0);
}

static fut_result_t parent_cancels(void *arg)
{
    rec_t *r = arg;
    fut_t *a = fut_async(g_pool, child, r);
    EXPECT(fut_cancel(a) == 0);
    EXPECT(fut_wait(a, -1) == 0); /* settled: no take, nothing runs */
    r->owed_after = fut__tls.owed == a;
    r->value = fut_error(a);
    fut_release(a);
    return fut_ok(NULL);
}

static void test_cancelled_child_is_not_run(void **state)
{
    (void)state;
    rec_t r = {0};
    run_parent(parent_cancels, &r);
    assert_int_equal(fut_executor_destroy(g_pool), 0); /* drains the deque */
    assert_int_equal(r.child_ran, 0);
    assert_false(r.owed_after);
    assert_int_equal(r.value, FUT_ECANCELED);
}

/* A waiter on another thread, holding its own reference, attaches to the
 * child while the parent takes and settles it: it must be woken. */
typedef struct {
    fut_t *f;
    atomic_int ready;
    int rc;
    int64_t value;
} side_t;

static void *side_waiter(void *arg)
{
    side_t *s = arg;
    while (!atomic_load(&s->ready))
        ;
    s->rc = fut_wait(s->f, -1);
    s->value = fut_value_i64(s->f);
    fut_release(s->f);
    return NULL;
}

static fut_result_t slow_child(void *arg)
{
    side_t *s = arg;
    atomic_store(&s->ready, 1);
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL); /* let the side thread attach */
    return fut_ok_i64(7);
}

typedef struct {
    side_t side;
    pthread_t th;
} race_t;

static fut_result_t parent_with_side_waiter(void *arg)
{
    race_t *rc = arg;
    fut_t *a = fut_async(g_pool, slow_child, &rc->side);
    rc->side.f = fut_retain(a); /* the side thread's own reference */
    if (pthread_create(&rc->th, NULL, side_waiter, &rc->side) != 0)
        return fut_fail(FUT_ENOMEM);
    EXPECT(fut_wait(a, -1) == 0);
    fut_release(a);
    return fut_ok(NULL);
}

static void test_taken_child_wakes_other_waiters(void **state)
{
    (void)state;
    for (int i = 0; i < 20; i++) {
        race_t rc = {0};
        g_pool = pool1();
        fut_t *p = fut_async(g_pool, parent_with_side_waiter, &rc);
        assert_int_equal(fut_wait(p, -1), 0);
        assert_int_equal(fut_state(p), FUT_FULFILLED);
        fut_release(p);
        pthread_join(rc.th, NULL);
        assert_int_equal(atomic_load(&g_bad), 0);
        assert_int_equal(rc.side.rc, 0);
        assert_int_equal(rc.side.value, 7);
        assert_int_equal(fut_executor_destroy(g_pool), 0);
    }
}

/* The take contract with a custom executor (testexec, one thread): the
 * core asks for exactly the awaited task, runs it inside the wait when the
 * executor gives it back, and the executor never runs it itself. */
static testexec_t *g_tx;

static void test_custom_executor_take(void **state)
{
    (void)state;
    testexec_opts_t o = {.take = true, .try_run_one = true};
    rec_t r = {0};
    g_tx = testexec_new(&o, NULL);
    assert_non_null(g_tx);
    fut_t *p = fut_async(testexec_ex(g_tx), parent_release, &r);
    assert_true(testexec_run_one(g_tx)); /* the parent; it takes the child */
    assert_int_equal(fut_state(p), FUT_FULFILLED);
    assert_int_equal(atomic_load(&g_bad), 0);
    assert_taken(&r);
    assert_int_equal(testexec_taken(g_tx), 1);
    assert_int_equal(testexec_ran(g_tx), 1); /* the parent only */
    assert_int_equal(testexec_pending(g_tx), 0);
    fut_release(p);
    assert_int_equal(testexec_destroy(g_tx, NULL, NULL), 0);
}

/* An executor without take: the wait helps (try_run_one) as before, no
 * debt is made. */
static void test_executor_without_take_helps(void **state)
{
    (void)state;
    testexec_opts_t o = {.try_run_one = true};
    rec_t r = {0};
    g_tx = testexec_new(&o, NULL);
    assert_non_null(g_tx);
    fut_t *p = fut_async(testexec_ex(g_tx), parent_release, &r);
    assert_true(testexec_run_one(g_tx));
    assert_int_equal(fut_state(p), FUT_FULFILLED);
    assert_int_equal(r.child_ran, 1);
    assert_int_equal(r.value, 42);
    assert_int_equal(r.refs_after, 1); /* its hold ended the usual way */
    assert_false(r.owed_after);
    assert_int_equal(testexec_taken(g_tx), 0);
    assert_int_equal(testexec_ran(g_tx), 2);
    fut_release(p);
    assert_int_equal(testexec_destroy(g_tx, NULL, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wait_runs_own_child_and_owes_the_hold),
        cmocka_unit_test(test_next_release_of_another_future_pays),
        cmocka_unit_test(test_debt_is_paid_when_the_task_returns),
        cmocka_unit_test(test_chaining_on_a_taken_future),
        cmocka_unit_test(test_only_the_top_task_is_taken),
        cmocka_unit_test(test_cancelled_child_is_not_run),
        cmocka_unit_test(test_taken_child_wakes_other_waiters),
        cmocka_unit_test(test_custom_executor_take),
        cmocka_unit_test(test_executor_without_take_helps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
