/* Regression tests for what tests/fuzz/ and the stress programs found.
 * Each test names the finding; docs/BAD_INPUT.md and the reports to the
 * lead carry the details.  A finding not fixed yet is tolerated behind a
 * KNOWN_* switch (1 = still broken: the test prints the symptom instead of
 * failing, so CI stays green); set it to 0 with the fix. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include <fut.h>

#include "internal.h"
#include "testexec.h"

/* Found by fuzz_api (fut_cancel said settled but it is pending).  A
 * settler that must write a value while others may race to settle (a
 * combinator, an adopt, a timeout following its input) first sets the
 * CLAIMED bit of the state word, writes, then closes.  fut_cancel in that
 * window fails its CAS and returns FUT_EALREADY, yet fut_state still reads
 * FUT_PENDING (and fut_value NULL): "already settled" is not observable
 * yet.  Fixed in lib/future.c (await_close): a settler that loses to a
 * claimed word waits until it closes before answering FUT_EALREADY.  The
 * test makes the window deterministic by claiming the word by hand, as
 * claim() does. */

static void *close_later(void *arg)
{
    fut_t *f = arg;
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    /* What close_claimed() does: the settled word, CLAIMED cleared. */
    atomic_store(&f->word, (uintptr_t)2 | ((uintptr_t)FUT_FULFILLED << 2));
    return NULL;
}

static void test_cancel_of_claimed_future_is_not_pending_after(void **state)
{
    (void)state;
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    atomic_fetch_or(&f->word, (uintptr_t)1); /* claim(), as a settler does */
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, close_later, f), 0);
    int rc = fut_cancel(f);
    fut_state_t st = fut_state(f);
    pthread_join(th, NULL);
    assert_int_equal(rc, FUT_EALREADY);
    assert_int_not_equal(st, FUT_PENDING);
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    fut_promise_drop(p); /* consumed-by-nobody handle: a no-op now */
    fut_release(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cancel_of_claimed_future_is_not_pending_after),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
