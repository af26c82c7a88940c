/* The executor kit's timer heap (fut_kit_timer_heap_t, <fut/executor_kit.h>)
 * on its own: order (earliest first, ties in push order), what is due,
 * removal from anywhere, membership, its memory (from fut_alloc, freed
 * when the heap empties, shrinking as it does, FUT_ENOMEM changing
 * nothing), bad arguments, and random operations against a plain model.
 * The loop and the timer thread that keep their timers in it are tested
 * through the timers themselves (test_loop.c, test_timer.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <fut.h>

static fut_timer_t tm(uint64_t deadline)
{
    return (fut_timer_t){.deadline_ns = deadline, .slot = 12345};
}

static void test_timer_heap_zeroed_is_empty(void **state)
{
    (void)state;
    fut_kit_timer_heap_t h = {0};
    fut_timer_t t = tm(5);
    assert_int_equal(fut_kit_timer_heap_size(&h), 0);
    assert_true(fut_kit_timer_heap_next_ns(&h) == UINT64_MAX);
    assert_null(fut_kit_timer_heap_first(&h));
    assert_null(fut_kit_timer_heap_pop_due(&h, UINT64_MAX));
    assert_false(fut_kit_timer_heap_contains(&h, &t));
    assert_false(fut_kit_timer_heap_remove(&h, &t));
}

static void test_timer_heap_pops_earliest_first(void **state)
{
    (void)state;
    static const uint64_t d[] = {50, 10, 40, 30, 20, 70, 60, 0, 90, 80};
    fut_timer_t t[10];
    fut_kit_timer_heap_t h = {0};
    for (int i = 0; i < 10; i++) {
        t[i] = tm(d[i]);
        assert_int_equal(fut_kit_timer_heap_push(&h, &t[i]), 0);
    }
    assert_int_equal(fut_kit_timer_heap_size(&h), 10);
    assert_true(fut_kit_timer_heap_next_ns(&h) == 0);
    assert_ptr_equal(fut_kit_timer_heap_first(&h), &t[7]);
    for (uint64_t want = 0; want < 100; want += 10) {
        fut_timer_t *x = fut_kit_timer_heap_pop_due(&h, UINT64_MAX);
        assert_non_null(x);
        assert_true(x->deadline_ns == want);
        assert_true(x->slot == SIZE_MAX);
    }
    assert_int_equal(fut_kit_timer_heap_size(&h), 0);
}

static void test_timer_heap_equal_deadlines_pop_in_push_order(void **state)
{
    (void)state;
    fut_timer_t t[8];
    fut_kit_timer_heap_t h = {0};
    for (int i = 0; i < 8; i++) {
        t[i] = tm(i % 2 ? 7 : 3); /* 3 3 3 3 and 7 7 7 7, interleaved */
        assert_int_equal(fut_kit_timer_heap_push(&h, &t[i]), 0);
    }
    static const int order[] = {0, 2, 4, 6, 1, 3, 5, 7};
    for (int i = 0; i < 8; i++)
        assert_ptr_equal(fut_kit_timer_heap_pop_due(&h, UINT64_MAX),
                         &t[order[i]]);
}

/* Due means deadline <= now: a timer at NOW is due, one after it is not
 * and stays. */
static void test_timer_heap_pop_due_takes_only_what_is_due(void **state)
{
    (void)state;
    fut_timer_t a = tm(100), b = tm(101);
    fut_kit_timer_heap_t h = {0};
    assert_int_equal(fut_kit_timer_heap_push(&h, &b), 0);
    assert_int_equal(fut_kit_timer_heap_push(&h, &a), 0);
    assert_null(fut_kit_timer_heap_pop_due(&h, 99));
    assert_ptr_equal(fut_kit_timer_heap_pop_due(&h, 100), &a);
    assert_null(fut_kit_timer_heap_pop_due(&h, 100));
    assert_true(fut_kit_timer_heap_next_ns(&h) == 101);
    assert_true(fut_kit_timer_heap_contains(&h, &b));
    assert_ptr_equal(fut_kit_timer_heap_pop_due(&h, UINT64_MAX), &b);
}

/* A timer due at UINT64_MAX (a saturated deadline) is popped by
 * UINT64_MAX, the call that empties a heap. */
static void test_timer_heap_pop_at_max_takes_a_saturated_deadline(void **state)
{
    (void)state;
    fut_timer_t a = tm(UINT64_MAX);
    fut_kit_timer_heap_t h = {0};
    assert_int_equal(fut_kit_timer_heap_push(&h, &a), 0);
    assert_null(fut_kit_timer_heap_pop_due(&h, UINT64_MAX - 1));
    assert_ptr_equal(fut_kit_timer_heap_pop_due(&h, UINT64_MAX), &a);
}

static void test_timer_heap_remove_from_the_middle_keeps_order(void **state)
{
    (void)state;
    enum { N = 200 };
    fut_timer_t t[N];
    fut_kit_timer_heap_t h = {0};
    for (int i = 0; i < N; i++) {
        t[i] = tm((uint64_t)((i * 7919) % N)); /* a permutation of 0..N-1 */
        assert_int_equal(fut_kit_timer_heap_push(&h, &t[i]), 0);
    }
    for (int i = 0; i < N; i += 3)
        assert_true(fut_kit_timer_heap_remove(&h, &t[i]));
    for (int i = 0; i < N; i++)
        assert_true(fut_kit_timer_heap_contains(&h, &t[i]) == (i % 3 != 0));
    uint64_t last = 0;
    size_t left = 0;
    fut_timer_t *x;
    while ((x = fut_kit_timer_heap_pop_due(&h, UINT64_MAX))) {
        assert_true(x->deadline_ns >= last);
        assert_true((x - t) % 3 != 0); /* never a removed one */
        last = x->deadline_ns;
        left++;
    }
    assert_int_equal(left, N - (N + 2) / 3);
}

/* A timer popped or removed already, or never pushed (its slot naming an
 * index of the heap), is not in the heap: remove says false and leaves
 * the heap alone. */
static void test_timer_heap_remove_of_a_timer_not_in_it_is_false(void **state)
{
    (void)state;
    fut_timer_t a = tm(1), b = tm(2), stranger = tm(3);
    fut_kit_timer_heap_t h = {0};
    assert_int_equal(fut_kit_timer_heap_push(&h, &a), 0);
    assert_int_equal(fut_kit_timer_heap_push(&h, &b), 0);
    stranger.slot = 0; /* names a's entry */
    assert_false(fut_kit_timer_heap_contains(&h, &stranger));
    assert_false(fut_kit_timer_heap_remove(&h, &stranger));
    assert_true(fut_kit_timer_heap_remove(&h, &a));
    assert_false(fut_kit_timer_heap_remove(&h, &a)); /* twice */
    assert_int_equal(fut_kit_timer_heap_size(&h), 1);
    assert_ptr_equal(fut_kit_timer_heap_pop_due(&h, UINT64_MAX), &b);
    assert_false(fut_kit_timer_heap_remove(&h, &b)); /* popped */
}

static void test_timer_heap_null_arguments(void **state)
{
    (void)state;
    fut_timer_t a = tm(1);
    fut_kit_timer_heap_t h = {0};
    assert_int_equal(fut_kit_timer_heap_push(NULL, &a), FUT_EINVAL);
    assert_int_equal(fut_kit_timer_heap_push(&h, NULL), FUT_EINVAL);
    assert_int_equal(fut_kit_timer_heap_size(&h), 0);
    assert_false(fut_kit_timer_heap_remove(NULL, &a));
    assert_false(fut_kit_timer_heap_remove(&h, NULL));
    assert_null(fut_kit_timer_heap_pop_due(NULL, UINT64_MAX));
}

/* ---- memory --------------------------------------------------------------- */

static atomic_long g_live, g_allocs, g_fail_at;
static size_t g_last_size;

static void *count_alloc(size_t n)
{
    long k = atomic_fetch_add(&g_allocs, 1) + 1;
    if (k == atomic_load(&g_fail_at))
        return NULL;
    g_last_size = n;
    atomic_fetch_add(&g_live, 1);
    return malloc(n);
}

static void count_free(void *p)
{
    if (p)
        atomic_fetch_sub(&g_live, 1);
    free(p);
}

static void counting(long fail_at)
{
    atomic_store(&g_live, 0);
    atomic_store(&g_allocs, 0);
    atomic_store(&g_fail_at, fail_at);
    fut_set_allocator(count_alloc, count_free);
}

static void test_timer_heap_frees_its_array_when_it_empties(void **state)
{
    (void)state;
    enum { N = 300 };
    fut_timer_t t[N];
    fut_kit_timer_heap_t h = {0};
    counting(0);
    for (int i = 0; i < N; i++) {
        t[i] = tm((uint64_t)i);
        assert_int_equal(fut_kit_timer_heap_push(&h, &t[i]), 0);
    }
    assert_int_equal(atomic_load(&g_live), 1); /* one array */
    for (int i = 0; i < N / 2; i++)
        assert_true(fut_kit_timer_heap_remove(&h, &t[i]));
    while (fut_kit_timer_heap_pop_due(&h, UINT64_MAX))
        ;
    long live = atomic_load(&g_live);
    fut_set_allocator(NULL, NULL);
    assert_int_equal(live, 0);
}

/* The array halves once the heap is under a quarter of it (beyond 256
 * entries): 2048 entries' room after 1500 pushes, 1024 once fewer than
 * 512 are left. */
static void test_timer_heap_array_shrinks_as_the_heap_does(void **state)
{
    (void)state;
    enum { N = 1500 };
    static fut_timer_t t[N];
    fut_kit_timer_heap_t h = {0};
    counting(0);
    for (int i = 0; i < N; i++) {
        t[i] = tm((uint64_t)i);
        assert_int_equal(fut_kit_timer_heap_push(&h, &t[i]), 0);
    }
    size_t grown = g_last_size;
    long allocs = atomic_load(&g_allocs);
    for (int i = 0; i < N - 511; i++)
        assert_non_null(fut_kit_timer_heap_pop_due(&h, UINT64_MAX));
    long shrinks = atomic_load(&g_allocs) - allocs;
    size_t shrunk = g_last_size;
    while (fut_kit_timer_heap_pop_due(&h, UINT64_MAX))
        ;
    long live = atomic_load(&g_live);
    fut_set_allocator(NULL, NULL);
    assert_int_equal(grown, 2048 * sizeof(fut_kit_timer_ent_t));
    assert_int_equal(shrinks, 1);
    assert_int_equal(shrunk, 1024 * sizeof(fut_kit_timer_ent_t));
    assert_int_equal(live, 0);
}

/* The push that needs the array to grow and finds no memory answers
 * FUT_ENOMEM and changes nothing: the heap keeps its timers, in order,
 * and the timer is not in it. */
static void test_timer_heap_push_without_memory_is_enomem_unchanged(
    void **state)
{
    (void)state;
    enum { N = 64 }; /* the first array's room */
    fut_timer_t t[N + 1];
    fut_kit_timer_heap_t h = {0};
    counting(2); /* the first array, then the growth fails */
    for (int i = 0; i < N; i++) {
        t[i] = tm((uint64_t)(N - i));
        assert_int_equal(fut_kit_timer_heap_push(&h, &t[i]), 0);
    }
    t[N] = tm(0);
    int rc = fut_kit_timer_heap_push(&h, &t[N]);
    size_t n = fut_kit_timer_heap_size(&h);
    bool in = fut_kit_timer_heap_contains(&h, &t[N]);
    uint64_t last = 0;
    bool sorted = true;
    fut_timer_t *x;
    while ((x = fut_kit_timer_heap_pop_due(&h, UINT64_MAX))) {
        sorted = sorted && x->deadline_ns >= last;
        last = x->deadline_ns;
    }
    long live = atomic_load(&g_live);
    fut_set_allocator(NULL, NULL);
    assert_int_equal(rc, FUT_ENOMEM);
    assert_int_equal(n, N);
    assert_false(in);
    assert_true(sorted);
    assert_int_equal(live, 0);
}

/* ---- against a model ---------------------------------------------------- */

/* 20000 random pushes, removes and pops against a plain array kept in the
 * same order (deadline, then push number): every pop and every remove
 * answers as the model does. */
static void test_timer_heap_matches_a_model_over_random_operations(
    void **state)
{
    (void)state;
    enum { POOL = 500, OPS = 20000 };
    static fut_timer_t t[POOL];
    static uint64_t pushed_at[POOL];
    static bool in[POOL];
    memset(in, 0, sizeof in);
    fut_kit_timer_heap_t h = {0};
    uint64_t seed = 88172645463325252ull, pushes = 0, now = 0;
    for (int op = 0; op < OPS; op++) {
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        int i = (int)(seed % POOL), what = (int)((seed >> 20) % 4);
        if (what <= 1 && !in[i]) { /* push */
            t[i] = tm(now + (seed >> 32) % 64);
            assert_int_equal(fut_kit_timer_heap_push(&h, &t[i]), 0);
            in[i] = true;
            pushed_at[i] = pushes++;
        } else if (what == 2) { /* remove: false unless in */
            assert_true(fut_kit_timer_heap_remove(&h, &t[i]) == in[i]);
            in[i] = false;
        } else { /* pop what is due at NOW, in the model's order */
            now += (seed >> 40) % 8;
            for (;;) {
                int best = -1;
                for (int k = 0; k < POOL; k++)
                    if (in[k] && t[k].deadline_ns <= now &&
                        (best < 0 || t[k].deadline_ns < t[best].deadline_ns ||
                         (t[k].deadline_ns == t[best].deadline_ns &&
                          pushed_at[k] < pushed_at[best])))
                        best = k;
                fut_timer_t *x = fut_kit_timer_heap_pop_due(&h, now);
                if (best < 0) {
                    assert_null(x);
                    break;
                }
                assert_ptr_equal(x, &t[best]);
                in[best] = false;
            }
        }
        size_t n = 0;
        for (int k = 0; k < POOL; k++)
            n += in[k];
        assert_int_equal(fut_kit_timer_heap_size(&h), n);
    }
    while (fut_kit_timer_heap_pop_due(&h, UINT64_MAX))
        ;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timer_heap_zeroed_is_empty),
        cmocka_unit_test(test_timer_heap_pops_earliest_first),
        cmocka_unit_test(test_timer_heap_equal_deadlines_pop_in_push_order),
        cmocka_unit_test(test_timer_heap_pop_due_takes_only_what_is_due),
        cmocka_unit_test(
            test_timer_heap_pop_at_max_takes_a_saturated_deadline),
        cmocka_unit_test(test_timer_heap_remove_from_the_middle_keeps_order),
        cmocka_unit_test(
            test_timer_heap_remove_of_a_timer_not_in_it_is_false),
        cmocka_unit_test(test_timer_heap_null_arguments),
        cmocka_unit_test(test_timer_heap_frees_its_array_when_it_empties),
        cmocka_unit_test(test_timer_heap_array_shrinks_as_the_heap_does),
        cmocka_unit_test(
            test_timer_heap_push_without_memory_is_enomem_unchanged),
        cmocka_unit_test(
            test_timer_heap_matches_a_model_over_random_operations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
