/* Fibers' stacks (<fut/fiber.h>): 10^5 fibers suspended at once, every
 * allocation of a fiber's life failing in turn, a wake that needs no
 * memory, and a stack overflow hitting the guard page. */
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
        cmocka_unit_test(test_hundred_thousand_suspended_fibers),
        cmocka_unit_test(test_allocation_failures_end_in_enomem_never_a_hang),
        cmocka_unit_test(test_wake_needs_no_memory),
        cmocka_unit_test(test_stack_overflow_faults_at_the_guard),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
