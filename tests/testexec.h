/* A deterministic executor for tests, plus small helpers shared by the
 * test binaries (destructor counters).
 *
 * testexec queues every task it is given and runs one only when the test
 * says so (testexec_run_one / testexec_run_all), on the calling thread.  It
 * can refuse submits with a chosen error, keeps timers (fut_delay on it)
 * that fire only when the test calls testexec_fire_timers, and on destroy
 * either runs or drops (fut_task_drop) whatever is still queued.
 *
 * Threads: submit and timer_start/timer_cancel may be called from any
 * thread (a mutex guards the queues); run/fire/destroy from one thread.
 * Helpers only: cmocka asserts stay in the test files. */
#ifndef TESTEXEC_H
#define TESTEXEC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <fut.h>

typedef struct testexec testexec_t;

/* What destroy does with tasks still queued. */
typedef enum testexec_on_destroy {
    TESTEXEC_DROP = 0, /* fut_task_drop each: futures settle FUT_ESHUTDOWN */
    TESTEXEC_RUN = 1   /* fut_task_run each, in order */
} testexec_on_destroy_t;

typedef struct testexec_opts {
    const char *name; /* ops.name; NULL gives "testexec" */
    testexec_on_destroy_t on_destroy;
    bool timers;      /* provide timer_start/timer_cancel */
    bool try_run_one; /* provide try_run_one (helping waits) */
    bool take;        /* provide take: the newest queued task comes back */
} testexec_opts_t;

/* Makes a test executor; NULL opts give the defaults (drop on destroy, no
 * timers, no try_run_one).  Returns NULL only if fut_executor_create fails
 * (its error is stored in *ERR when ERR is not NULL). */
testexec_t *testexec_new(const testexec_opts_t *opts, int *err);

/* The executor handle to pass to libfut. */
fut_executor_t *testexec_ex(testexec_t *tx);

/* Tasks queued now. */
size_t testexec_pending(testexec_t *tx);
/* Runs the oldest queued task; false if none was queued. */
bool testexec_run_one(testexec_t *tx);
/* Runs tasks (also ones submitted meanwhile) until none is queued; returns
 * how many ran. */
size_t testexec_run_all(testexec_t *tx);
/* Totals: tasks accepted by submit, tasks run. */
size_t testexec_submitted(testexec_t *tx);
size_t testexec_ran(testexec_t *tx);
/* Tasks handed back to the core by take. */
size_t testexec_taken(testexec_t *tx);

/* Makes later submits (and timer_starts) return ERR (0: accept again). */
void testexec_refuse(testexec_t *tx, int err);

/* Timers held (started, not fired, dropped or cancelled). */
size_t testexec_timers(testexec_t *tx);
/* Fires every held timer whose deadline is <= NOW (UINT64_MAX: all), and
 * drops the ones the core cancelled; returns how many fired. */
size_t testexec_fire_timers(testexec_t *tx, uint64_t now);

/* Destroys through fut_executor_destroy and returns its result; *RAN and
 * *DROPPED (when not NULL) receive how many queued tasks the destroy ran or
 * dropped.  TX is freed. */
int testexec_destroy(testexec_t *tx, size_t *ran, size_t *dropped);

/* ---- destructor counting ------------------------------------------------ */

/* A malloc'd block whose destructor (counted_free) bumps *COUNTER and frees
 * it; a double destructor call is a double free (ASan catches it). */
void *counted_new(atomic_int *counter);
void counted_free(void *p);

/* A counting allocator for fut_set_allocator that fails on demand: the
 * FAILALLOC_AT-th call (counted in FAILALLOC_CALLS from the last reset;
 * 0: none) returns NULL and sets FAILALLOC_FAILED; FAILALLOC_LIVE counts
 * blocks handed out and not yet freed.  Tests reset the counters before
 * installing it. */
extern atomic_long failalloc_calls, failalloc_live, failalloc_at;
extern atomic_int failalloc_failed;
void *failalloc_alloc(size_t n);
void failalloc_free(void *p);

/* Runs FN on a new thread with a STACK_BYTES stack and joins it; returns
 * pthread_create's error or 0. */
int run_on_small_stack(void *(*fn)(void *), void *arg, size_t stack_bytes);

/* Sanitizer builds get smaller loop counts (never fewer assertions). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TEST_UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TEST_UNDER_SANITIZER 1
#endif
#endif
#ifndef TEST_UNDER_SANITIZER
#define TEST_UNDER_SANITIZER 0
#endif
#if defined(__SANITIZE_THREAD__)
#define TEST_UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TEST_UNDER_TSAN 1
#endif
#endif
#ifndef TEST_UNDER_TSAN
#define TEST_UNDER_TSAN 0
#endif

#endif
