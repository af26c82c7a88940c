/* Tests for the pool's task groups (executors/pool/group.c, the inline path
 * of <fut/pool.h>): fork-join on a worker and off it, overflow and steals,
 * nesting and interleaving, which pool the children run on.  The pool
 * itself is tests/test_pool.c's.
 * cmocka is not thread-safe: worker threads only record into atomics. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fut.h>

static fut_executor_t *make_pool(unsigned threads, unsigned spin)
{
    fut_pool_opts_t o = {.threads = threads, .spin = spin};
    fut_executor_t *ex = NULL;

    assert_int_equal(fut_pool_create(&ex, &o), 0);
    assert_non_null(ex);
    return ex;
}

/* ---- task groups -------------------------------------------------------- */

struct gfib {
    int n;
    int64_t r;
};

static void gfib(void *arg)
{
    struct gfib *f = arg, a, b;
    fut_group_t g;
    fut_group_task_t t;

    if (f->n < 2) {
        f->r = f->n;
        return;
    }
    a.n = f->n - 1;
    b.n = f->n - 2;
    if (fut_group_init(&g, NULL) != 0) {
        f->r = -1000000; /* not on a worker: makes the result wrong */
        return;
    }
    fut_group_spawn(&g, &t, gfib, &a);
    gfib(&b);
    fut_group_wait(&g);
    f->r = a.r + b.r;
}

static fut_result_t gfib_task(void *arg)
{
    struct gfib *f = arg;

    gfib(f);
    return fut_ok_i64(f->r);
}

static void test_group_fib_matches(void **state)
{
    unsigned threads;

    (void)state;
    for (threads = 1; threads <= 2; threads++) {
        fut_executor_t *ex = make_pool(threads, 0);
        struct gfib f = {.n = 22};
        fut_t *t = fut_async(ex, gfib_task, &f);
        fut_stats_t st;

        assert_int_equal(fut_wait(t, -1), 0);
        assert_int_equal(fut_value_i64(t), 17711);
        fut_release(t);
        /* Every child counts once, wherever it ran (popped back inline,
         * by the slow path, or stolen): fib(22) spawns 28656, plus the
         * root task. */
        for (int i = 0; i < 5000; i++) { /* the root's count lands last */
            assert_int_equal(fut_executor_stats(ex, &st), 0);
            if (st.tasks_run >= 28657)
                break;
            usleep(1000);
        }
        assert_int_equal(st.tasks_run, 28657);
        assert_int_equal(fut_executor_destroy(ex), 0);
    }
}

static void add_one(void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
}

static void test_group_off_worker_and_reuse(void **state)
{
    fut_executor_t *ex = make_pool(2, 0);
    fut_group_t g;
    fut_group_task_t t[100];
    atomic_int n = 0;
    int round, i;

    (void)state;
    assert_int_equal(fut_group_init(&g, ex), 0);
    for (round = 1; round <= 3; round++) {
        for (i = 0; i < 100; i++)
            fut_group_spawn(&g, &t[i], add_one, &n);
        assert_int_equal(fut_group_wait(&g), 0);
        assert_int_equal(atomic_load(&n), 100 * round);
    }
    assert_int_equal(fut_group_wait(&g), 0); /* empty: returns at once */
    assert_int_equal(fut_executor_destroy(ex), 0);
}

/* Many children from one worker: more than the deque holds (overflow to
 * the injection queue) and stolen by the other worker. */
struct wide {
    atomic_int n;
    fut_group_task_t t[3000];
};

static fut_result_t wide_task(void *arg)
{
    struct wide *w = arg;
    fut_group_t g;
    int i;

    if (fut_group_init(&g, fut_executor_current()) != 0)
        return fut_fail(FUT_EINVAL);
    for (i = 0; i < 3000; i++)
        fut_group_spawn(&g, &w->t[i], add_one, &w->n);
    fut_group_wait(&g);
    return fut_ok_i64(atomic_load(&w->n));
}

static void test_group_overflow_and_steals(void **state)
{
    fut_pool_opts_t o = {.threads = 2, .deque_capacity = 64};
    fut_executor_t *ex = NULL;
    static struct wide w;
    fut_t *f;

    (void)state;
    assert_int_equal(fut_pool_create(&ex, &o), 0);
    atomic_store(&w.n, 0);
    f = fut_async(ex, wide_task, &w);
    assert_int_equal(fut_wait(f, -1), 0);
    assert_int_equal(fut_value_i64(f), 3000);
    fut_release(f);
    assert_int_equal(fut_executor_destroy(ex), 0);
}

/* A random tree of groups: every node spawns its children into a group,
 * works a little, waits, and checks that each child has run exactly once
 * by then.  Counts are per node, so a child run twice (a slot taken by the
 * owner and a thief) or never (lost) shows, wherever it ran. */
struct tnode {
    atomic_int runs;
    unsigned first, n; /* children: nodes[first .. first+n) */
};

static struct tnode *g_tree;
static atomic_int g_tree_bad;

static void tree_run(void *arg)
{
    struct tnode *t = arg;
    fut_group_t g;
    fut_group_task_t kids[4];
    volatile unsigned spin = 0;

    atomic_fetch_add(&t->runs, 1);
    if (t->n == 0)
        return;
    fut_group_init(&g, NULL);
    for (unsigned i = 0; i < t->n; i++)
        fut_group_spawn(&g, &kids[i], tree_run, &g_tree[t->first + i]);
    for (unsigned i = 0; i < (t->first * 7u) % 300u; i++)
        spin = spin + i; /* uneven work: thieves get a chance */
    fut_group_wait(&g);
    for (unsigned i = 0; i < t->n; i++)
        if (atomic_load(&g_tree[t->first + i].runs) != 1)
            atomic_fetch_add(&g_tree_bad, 1);
}

static fut_result_t tree_root(void *arg)
{
    tree_run(arg);
    return fut_ok(NULL);
}

static void test_group_tree_runs_each_child_once(void **state)
{
    enum { N = 60000 };
    uint64_t rng = 88172645463325252ull;
    unsigned made = 1, i;

    (void)state;
    g_tree = calloc(N, sizeof *g_tree);
    assert_non_null(g_tree);
    /* Breadth-first: node i gets 0-4 children while room remains. */
    for (i = 0; i < N && made < N; i++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        unsigned k = (unsigned)(rng % 5);
        if (k > N - made)
            k = N - made;
        g_tree[i].first = made;
        g_tree[i].n = k;
        made += k;
    }
    for (unsigned threads = 1; threads <= 4; threads *= 2) {
        fut_executor_t *ex = make_pool(threads, 0);
        for (i = 0; i < N; i++)
            atomic_store(&g_tree[i].runs, 0);
        atomic_store(&g_tree_bad, 0);
        fut_t *f = fut_async(ex, tree_root, &g_tree[0]);
        assert_int_equal(fut_wait(f, -1), 0);
        fut_release(f);
        assert_int_equal(fut_executor_destroy(ex), 0);
        assert_int_equal(atomic_load(&g_tree_bad), 0);
        for (i = 0; i < made; i++)
            assert_int_equal(atomic_load(&g_tree[i].runs), 1);
    }
    free(g_tree);
}

/* Groups used out of nesting order on one worker: A and B interleave their
 * spawns, and A (made first) is waited first.  A's wait runs B's child on
 * top of the deque for it; B's wait then finds it done. */
static fut_result_t interleaved(void *arg)
{
    atomic_int *n = arg;
    fut_group_t a, b;
    fut_group_task_t a1, a2, b1, b2;

    fut_group_init(&a, NULL);
    fut_group_spawn(&a, &a1, add_one, &n[0]);
    fut_group_init(&b, NULL);
    fut_group_spawn(&b, &b1, add_one, &n[1]);
    fut_group_spawn(&a, &a2, add_one, &n[0]);
    fut_group_wait(&a);
    int a_done = atomic_load(&n[0]);
    fut_group_spawn(&b, &b2, add_one, &n[1]);
    fut_group_wait(&b);
    return fut_ok_i64(a_done * 10 + atomic_load(&n[1]));
}

static void test_group_interleaved_groups(void **state)
{
    (void)state;
    for (unsigned threads = 1; threads <= 2; threads++) {
        fut_executor_t *ex = make_pool(threads, 0);
        for (int r = 0; r < 200; r++) {
            atomic_int n[2] = {0, 0};
            fut_t *f = fut_async(ex, interleaved, n);
            assert_int_equal(fut_wait(f, -1), 0);
            assert_int_equal(fut_value_i64(f), 22); /* A: 2 by its wait; B: 2 */
            fut_release(f);
        }
        assert_int_equal(fut_executor_destroy(ex), 0);
    }
}

/* fut_group_init on a worker names which pool the children run on: its
 * own (NULL or its handle: children on its deque) or another pool (an
 * off-worker group there).  Children check where they run by making a
 * group of their own for the other pool: only on that pool's workers is
 * it worker-owned (owner_, a private field, is set). */
struct cross {
    fut_executor_t *other;
    atomic_int ran, on_other;
    fut_group_task_t t[64];
};

static void cross_child(void *arg)
{
    struct cross *c = arg;
    fut_group_t probe;

    if (fut_group_init(&probe, c->other) == 0 && probe.owner_ != NULL)
        atomic_fetch_add(&c->on_other, 1);
    atomic_fetch_add(&c->ran, 1);
}

static fut_result_t cross_task(void *arg)
{
    struct cross *c = arg;
    fut_group_t g, own, named, bad;
    int64_t r = 0;

    if (fut_group_init(&g, c->other) != 0 || g.owner_ != NULL)
        r |= 1; /* not this worker's group: an off-worker one there */
    if (fut_group_init(&own, NULL) != 0 || own.owner_ == NULL ||
        fut_group_init(&named, fut_executor_current()) != 0 ||
        named.owner_ != own.owner_)
        r |= 2; /* this worker's own pool, by NULL or by handle */
    if (fut_group_init(&bad, fut_inline()) != FUT_EINVAL)
        r |= 4;
    for (int i = 0; i < 64; i++)
        fut_group_spawn(&g, &c->t[i], cross_child, c);
    fut_group_wait(&g);
    fut_group_wait(&own); /* empty groups return at once */
    fut_group_wait(&named);
    return fut_ok_i64(r);
}

static void test_group_init_names_the_pool(void **state)
{
    fut_executor_t *a = make_pool(1, 0), *b = make_pool(2, 0);
    static struct cross c;

    (void)state;
    c.other = b;
    atomic_store(&c.ran, 0);
    atomic_store(&c.on_other, 0);
    fut_t *f = fut_async(a, cross_task, &c);
    assert_int_equal(fut_wait(f, -1), 0);
    assert_int_equal(fut_value_i64(f), 0);
    fut_release(f);
    assert_int_equal(atomic_load(&c.ran), 64);
    assert_int_equal(atomic_load(&c.on_other), 64);
    assert_int_equal(fut_executor_destroy(a), 0);
    assert_int_equal(fut_executor_destroy(b), 0);
}

static void test_group_init_rejects_non_pool(void **state)
{
    fut_group_t g;
    fut_executor_t *ex = make_pool(1, 0);

    (void)state;
    assert_int_equal(fut_group_init(NULL, ex), FUT_EINVAL);
    assert_int_equal(fut_group_init(&g, NULL), FUT_EINVAL);
    assert_int_equal(fut_group_init(&g, fut_inline()), FUT_EINVAL);
    assert_int_equal(fut_group_init(&g, NULL), FUT_EINVAL); /* not a worker */
    assert_int_equal(fut_executor_destroy(ex), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_group_fib_matches),
        cmocka_unit_test(test_group_off_worker_and_reuse),
        cmocka_unit_test(test_group_overflow_and_steals),
        cmocka_unit_test(test_group_tree_runs_each_child_once),
        cmocka_unit_test(test_group_interleaved_groups),
        cmocka_unit_test(test_group_init_names_the_pool),
        cmocka_unit_test(test_group_init_rejects_non_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
