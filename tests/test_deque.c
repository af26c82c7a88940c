/* Tests for the Chase–Lev deque (executors/pool/deque.h): single-threaded
 * semantics, then a short run with one owner and two thieves.  The long
 * version is tests/stress/deque_stress.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>

#include "../executors/pool/deque.h"

#define ITEM(i) ((void *)(uintptr_t)(i))

static void test_deque_init_rejects_non_power_of_two(void **state)
{
    fut__deque_t d;
    void *buf[6];

    (void)state;
    assert_false(fut__deque_init(&d, buf, 6));
    assert_false(fut__deque_init(&d, buf, 1));
    assert_true(fut__deque_init(&d, buf, 4));
}

static void test_deque_pop_is_lifo_steal_is_fifo(void **state)
{
    fut__deque_t d;
    void *buf[8];
    int i;

    (void)state;
    assert_true(fut__deque_init(&d, buf, 8));
    assert_null(fut__deque_pop(&d));
    assert_null(fut__deque_steal(&d, NULL));
    for (i = 1; i <= 4; i++)
        assert_true(fut__deque_push(&d, ITEM(i)));
    assert_int_equal(fut__deque_size(&d), 4);
    assert_ptr_equal(fut__deque_pop(&d), ITEM(4));
    assert_ptr_equal(fut__deque_steal(&d, NULL), ITEM(1));
    assert_ptr_equal(fut__deque_pop(&d), ITEM(3));
    assert_ptr_equal(fut__deque_steal(&d, NULL), ITEM(2));
    assert_null(fut__deque_pop(&d));
    assert_null(fut__deque_steal(&d, NULL));
    assert_int_equal(fut__deque_size(&d), 0);
}

static void test_deque_push_refuses_when_full_and_wraps(void **state)
{
    fut__deque_t d;
    void *buf[4];
    int round, i;

    (void)state;
    assert_true(fut__deque_init(&d, buf, 4));
    for (round = 0; round < 10; round++) {
        for (i = 1; i <= 4; i++)
            assert_true(fut__deque_push(&d, ITEM(i)));
        assert_false(fut__deque_push(&d, ITEM(5)));
        assert_ptr_equal(fut__deque_steal(&d, NULL), ITEM(1));
        assert_true(fut__deque_push(&d, ITEM(5)));
        for (i = 5; i >= 2; i--)
            assert_ptr_equal(fut__deque_pop(&d), ITEM(i));
        assert_null(fut__deque_pop(&d));
    }
}

/* --- one owner, two thieves ------------------------------------------- */

#define N_ITEMS 20000

static fut__deque_t shared;
static void *shared_buf[64];
static uint32_t taken[N_ITEMS];
static int owner_done;

static void *thief(void *arg)
{
    (void)arg;
    for (;;) {
        bool lost;
        void *x = fut__deque_steal(&shared, &lost);

        if (x != NULL)
            ck_pr_inc_32(&taken[(uintptr_t)x - 1]);
        else if (!lost && ck_pr_load_int(&owner_done))
            return NULL;
    }
}

static void test_deque_owner_and_two_thieves_take_each_item_once(void **state)
{
    pthread_t t[2];
    uintptr_t next = 0;
    void *x;
    int i;

    (void)state;
    assert_true(fut__deque_init(&shared, shared_buf, 64));
    for (i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, thief, NULL), 0);
    while (next < N_ITEMS) {
        if (fut__deque_push(&shared, ITEM(next + 1)))
            next++;
        if ((next & 3) == 0 && (x = fut__deque_pop(&shared)) != NULL)
            ck_pr_inc_32(&taken[(uintptr_t)x - 1]);
    }
    while ((x = fut__deque_pop(&shared)) != NULL)
        ck_pr_inc_32(&taken[(uintptr_t)x - 1]);
    ck_pr_store_int(&owner_done, 1);
    for (i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    for (i = 0; i < N_ITEMS; i++)
        assert_int_equal(taken[i], 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deque_init_rejects_non_power_of_two),
        cmocka_unit_test(test_deque_pop_is_lifo_steal_is_fifo),
        cmocka_unit_test(test_deque_push_refuses_when_full_and_wraps),
        cmocka_unit_test(test_deque_owner_and_two_thieves_take_each_item_once),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
