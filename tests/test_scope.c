/* Scopes (<fut/scope.h>, lib/scope.c): spawn and its limit, add, close
 * (never early; its outcome), fail_fast, cancel (reaching the work and
 * stopping unstarted members), the close future's cancel, bad arguments,
 * one allocation per member, and the limit under four submitting
 * threads. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#include <fut.h>

#include "testexec.h"

#define USER_ERR (-100555)
#define SLOTS 4

/* Starts that hand out pending promises, one per call, and count. */
struct starter {
    atomic_int starts;
    pthread_t last_thread;
    fut_promise_t *p[SLOTS];
};

static fut_t *start_promise(void *arg)
{
    struct starter *st = arg;
    int i = atomic_fetch_add(&st->starts, 1);
    st->last_thread = pthread_self();
    return fut_promise_new(&st->p[i]);
}

static fut_scope_t *new_scope(size_t limit, bool fail_fast)
{
    fut_scope_t *s = NULL;
    fut_scope_opts_t o = {.limit = limit, .fail_fast = fail_fast};
    assert_int_equal(fut_scope_create(&s, &o), 0);
    assert_non_null(s);
    return s;
}

static void release_all(fut_t **fs, int n)
{
    for (int i = 0; i < n; i++)
        fut_release(fs[i]);
}

/* ---- spawn and the limit ------------------------------------------------ */

static void test_scope_spawn_without_limit_starts_at_once(void **state)
{
    (void)state;
    struct starter st = {0};
    fut_scope_t *s = new_scope(0, false);
    fut_t *m[3];
    for (int i = 0; i < 3; i++)
        m[i] = fut_scope_spawn(s, start_promise, &st);
    assert_int_equal(st.starts, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(fut_promise_settle(st.p[i], fut_ok_i64(i)), 0);
    assert_int_equal(fut_value_i64(m[2]), 2); /* follows START's future */
    fut_t *c = fut_scope_close(s);
    assert_int_equal(fut_state(c), FUT_FULFILLED);
    release_all(m, 3);
    fut_release(c);
}

static void test_scope_limit_starts_the_next_when_a_slot_frees(void **state)
{
    (void)state;
    struct starter st = {0};
    fut_scope_t *s = new_scope(1, false);
    fut_t *m[2] = {fut_scope_spawn(s, start_promise, &st),
                   fut_scope_spawn(s, start_promise, &st)};
    assert_int_equal(st.starts, 1);
    assert_int_equal(fut_state(m[1]), FUT_PENDING);
    st.last_thread = (pthread_t)0;
    assert_int_equal(fut_promise_settle(st.p[0], fut_ok_i64(1)), 0);
    assert_int_equal(st.starts, 2); /* on the thread that freed the slot */
    assert_true(pthread_equal(st.last_thread, pthread_self()));
    assert_int_equal(fut_promise_settle(st.p[1], fut_ok_i64(2)), 0);
    fut_t *c = fut_scope_close(s);
    assert_int_equal(fut_state(c), FUT_FULFILLED);
    release_all(m, 2);
    fut_release(c);
}

static fut_t *start_null(void *arg)
{
    (void)arg;
    return NULL;
}

static void test_scope_member_of_a_null_start_rejects_einval(void **state)
{
    (void)state;
    fut_scope_t *s = new_scope(0, false);
    fut_t *m = fut_scope_spawn(s, start_null, NULL);
    assert_int_equal(fut_error(m), FUT_EINVAL);
    fut_t *c = fut_scope_close(s);
    assert_int_equal(fut_error(c), FUT_EINVAL);
    fut_release(m);
    fut_release(c);
}

static fut_t *start_settled(void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
    return fut_ready(fut_ok_i64(1));
}

static void test_scope_queued_members_start_in_a_loop_not_nested(void **state)
{
    (void)state;
    /* 10^5 queued members whose starts settle at once: started by one
     * frame in a loop (a frame each would overflow the stack) */
    enum { N = 100000 };
    struct starter st = {0};
    atomic_int starts = 0;
    fut_scope_t *s = new_scope(1, false);
    fut_t *first = fut_scope_spawn(s, start_promise, &st);
    for (int i = 0; i < N; i++)
        fut_release(fut_scope_spawn(s, start_settled, &starts));
    assert_int_equal(starts, 0);
    assert_int_equal(fut_promise_settle(st.p[0], fut_ok_i64(1)), 0);
    assert_int_equal(starts, N);
    fut_t *c = fut_scope_close(s);
    assert_int_equal(fut_state(c), FUT_FULFILLED);
    fut_release(first);
    fut_release(c);
}

/* ---- close -------------------------------------------------------------- */

static void test_scope_close_never_settles_before_every_member(void **state)
{
    (void)state;
    struct starter st = {0};
    fut_scope_t *s = new_scope(0, false);
    fut_t *m[3];
    for (int i = 0; i < 3; i++)
        m[i] = fut_scope_spawn(s, start_promise, &st);
    fut_t *c = fut_scope_close(s);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(fut_state(c), FUT_PENDING);
        assert_int_equal(fut_promise_settle(st.p[i], fut_ok_i64(i)), 0);
    }
    assert_int_equal(fut_state(c), FUT_FULFILLED);
    assert_null(fut_value(c));
    release_all(m, 3);
    fut_release(c);
}

static void test_scope_close_of_an_empty_scope_fulfils_at_once(void **state)
{
    (void)state;
    fut_t *c = fut_scope_close(new_scope(0, false));
    assert_int_equal(fut_state(c), FUT_FULFILLED);
    fut_release(c);
}

static void test_scope_close_settles_like_the_first_rejection(void **state)
{
    (void)state;
    struct starter st = {0};
    fut_scope_t *s = new_scope(0, false);
    fut_t *m[3];
    for (int i = 0; i < 3; i++)
        m[i] = fut_scope_spawn(s, start_promise, &st);
    fut_t *c = fut_scope_close(s);
    assert_int_equal(fut_promise_settle(st.p[1], fut_fail(USER_ERR)), 0);
    assert_int_equal(fut_promise_settle(st.p[0], fut_fail(USER_ERR - 1)), 0);
    /* without fail_fast the rest keeps running */
    assert_int_equal(fut_state(c), FUT_PENDING);
    assert_int_equal(fut_promise_settle(st.p[2], fut_ok_i64(0)), 0);
    assert_int_equal(fut_state(c), FUT_REJECTED);
    assert_int_equal(fut_error(c), USER_ERR);
    release_all(m, 3);
    fut_release(c);
}

static void test_scope_fail_fast_cancels_the_rest(void **state)
{
    (void)state;
    struct starter st = {0};
    fut_scope_t *s = new_scope(2, true);
    fut_t *m[3];
    for (int i = 0; i < 3; i++)
        m[i] = fut_scope_spawn(s, start_promise, &st);
    fut_t *c = fut_scope_close(s);
    assert_int_equal(fut_promise_settle(st.p[1], fut_fail(USER_ERR)), 0);
    assert_int_equal(st.starts, 2); /* the queued third never starts */
    assert_int_equal(fut_state(m[0]), FUT_CANCELLED);
    assert_int_equal(fut_state(m[2]), FUT_CANCELLED);
    /* the cancel reached the work: the first one's promise is cancelled */
    assert_int_equal(fut_promise_settle(st.p[0], fut_ok_i64(1)), FUT_EALREADY);
    assert_int_equal(fut_error(c), USER_ERR);
    release_all(m, 3);
    fut_release(c);
}

/* ---- cancel ------------------------------------------------------------- */

static void test_scope_cancel_stops_unstarted_members(void **state)
{
    (void)state;
    struct starter st = {0};
    fut_scope_t *s = new_scope(1, false);
    fut_t *m[3];
    for (int i = 0; i < 3; i++)
        m[i] = fut_scope_spawn(s, start_promise, &st);
    fut_scope_cancel(s);
    assert_int_equal(st.starts, 1);
    for (int i = 0; i < 3; i++)
        assert_int_equal(fut_error(m[i]), FUT_ECANCELED);
    assert_int_equal(fut_promise_settle(st.p[0], fut_ok_i64(1)), FUT_EALREADY);
    fut_t *c = fut_scope_close(s);
    assert_int_equal(fut_error(c), FUT_ECANCELED);
    assert_int_equal(st.starts, 1);
    release_all(m, 3);
    fut_release(c);
}

static void test_scope_spawn_after_cancel_never_starts(void **state)
{
    (void)state;
    struct starter st = {0};
    fut_scope_t *s = new_scope(0, false);
    fut_scope_cancel(s);
    fut_scope_cancel(s); /* idempotent */
    fut_t *m = fut_scope_spawn(s, start_promise, &st);
    assert_int_equal(fut_error(m), FUT_ECANCELED);
    assert_int_equal(st.starts, 0);
    fut_t *c = fut_scope_close(s);
    assert_int_equal(fut_error(c), FUT_ECANCELED);
    fut_release(m);
    fut_release(c);
}

static void test_scope_member_cancelled_while_queued_never_starts(void **state)
{
    (void)state;
    struct starter st = {0};
    fut_scope_t *s = new_scope(1, false);
    fut_t *m[3];
    for (int i = 0; i < 3; i++)
        m[i] = fut_scope_spawn(s, start_promise, &st);
    assert_int_equal(fut_cancel(m[1]), 0);
    assert_int_equal(fut_promise_settle(st.p[0], fut_ok_i64(1)), 0);
    assert_int_equal(st.starts, 2); /* the third took the slot */
    assert_int_equal(fut_promise_settle(st.p[1], fut_ok_i64(3)), 0);
    assert_int_equal(fut_value_i64(m[2]), 3);
    fut_t *c = fut_scope_close(s);
    assert_int_equal(fut_error(c), FUT_ECANCELED); /* m[1]'s outcome */
    release_all(m, 3);
    fut_release(c);
}

static void
test_scope_cancelling_the_close_future_cancels_the_scope(void **state)
{
    (void)state;
    struct starter st = {0};
    fut_scope_t *s = new_scope(0, false);
    fut_t *m = fut_scope_spawn(s, start_promise, &st);
    fut_t *c = fut_scope_close(s);
    assert_int_equal(fut_cancel(c), 0);
    assert_int_equal(fut_error(m), FUT_ECANCELED);
    assert_int_equal(fut_error(c), FUT_ECANCELED);
    assert_int_equal(fut_cancel(c), FUT_EALREADY);
    assert_int_equal(fut_promise_settle(st.p[0], fut_ok_i64(1)), FUT_EALREADY);
    fut_release(m);
    fut_release(c);
}

static void test_scope_add_tracks_a_started_future(void **state)
{
    (void)state;
    fut_promise_t *p;
    fut_scope_t *s = new_scope(0, false);
    fut_t *m = fut_scope_add(s, fut_promise_new(&p));
    fut_t *c = fut_scope_close(s);
    assert_int_equal(fut_state(c), FUT_PENDING);
    assert_int_equal(fut_promise_settle(p, fut_ok_i64(9)), 0);
    assert_int_equal(fut_value_i64(m), 9);
    assert_int_equal(fut_state(c), FUT_FULFILLED);
    fut_release(m);
    fut_release(c);
}

static void test_scope_add_is_not_counted_against_the_limit(void **state)
{
    (void)state;
    struct starter st = {0};
    fut_promise_t *p;
    fut_scope_t *s = new_scope(1, false);
    fut_t *a = fut_scope_add(s, fut_promise_new(&p));
    fut_t *m = fut_scope_spawn(s, start_promise, &st);
    assert_int_equal(st.starts, 1); /* the added one took no slot */
    assert_int_equal(fut_promise_settle(st.p[0], fut_ok_i64(1)), 0);
    assert_int_equal(fut_promise_settle(p, fut_ok_i64(2)), 0);
    fut_t *c = fut_scope_close(s);
    assert_int_equal(fut_state(c), FUT_FULFILLED);
    fut_release(a);
    fut_release(m);
    fut_release(c);
}

static void
test_scope_cancel_leaves_an_added_future_held_elsewhere(void **state)
{
    (void)state;
    fut_promise_t *p, *q;
    fut_scope_t *s = new_scope(0, false);
    fut_t *kept = fut_promise_new(&p);
    fut_t *m[2] = {fut_scope_add(s, fut_retain(kept)),
                   fut_scope_add(s, fut_promise_new(&q))};
    fut_scope_cancel(s);
    assert_int_equal(fut_error(m[0]), FUT_ECANCELED);
    assert_int_equal(fut_promise_settle(p, fut_ok_i64(1)), 0); /* kept */
    assert_int_equal(fut_promise_settle(q, fut_ok_i64(1)), FUT_EALREADY);
    fut_t *c = fut_scope_close(s);
    assert_int_equal(fut_error(c), FUT_ECANCELED);
    release_all(m, 2);
    fut_release(kept);
    fut_release(c);
}

/* ---- bad arguments and memory ------------------------------------------- */

static void test_scope_bad_arguments(void **state)
{
    (void)state;
    assert_int_equal(fut_scope_create(NULL, NULL), FUT_EINVAL);
    fut_t *f = fut_scope_spawn(NULL, start_null, NULL);
    assert_int_equal(fut_error(f), FUT_EINVAL);
    fut_release(f);
    f = fut_scope_add(NULL, fut_ready(fut_ok_i64(1))); /* released */
    assert_int_equal(fut_error(f), FUT_EINVAL);
    fut_release(f);
    fut_scope_t *s = new_scope(0, false);
    f = fut_scope_add(s, NULL);
    assert_int_equal(fut_error(f), FUT_EINVAL);
    fut_release(f);
    fut_scope_cancel(NULL); /* no-op */
    f = fut_scope_close(NULL);
    assert_int_equal(fut_error(f), FUT_EINVAL);
    fut_release(f);
    f = fut_scope_close(s);
    fut_release(f);
}

static fut_t *g_shared;

static fut_t *start_shared(void *arg)
{
    (void)arg;
    return fut_retain(g_shared);
}

static void test_scope_create_without_memory_is_enomem(void **state)
{
    (void)state;
    atomic_store(&failalloc_calls, 0);
    atomic_store(&failalloc_live, 0);
    atomic_store(&failalloc_at, 1);
    fut_set_allocator(failalloc_alloc, failalloc_free);
    fut_scope_t *s = (fut_scope_t *)&s;
    assert_int_equal(fut_scope_create(&s, NULL), FUT_ENOMEM);
    assert_null(s);
    atomic_store(&failalloc_at, 2); /* the close future's block */
    atomic_store(&failalloc_calls, 0);
    assert_int_equal(fut_scope_create(&s, NULL), FUT_ENOMEM);
    assert_null(s);
    fut_set_allocator(NULL, NULL);
    assert_int_equal(atomic_load(&failalloc_live), 0); /* nothing kept */
}

static void test_scope_member_costs_one_allocation(void **state)
{
    (void)state;
    enum { N = 64 };
    atomic_store(&failalloc_at, 0);
    fut_set_allocator(failalloc_alloc, failalloc_free);
    fut_scope_t *s = new_scope(0, false);
    fut_promise_t *p[N];
    fut_t *f[N], *m[N];
    for (int i = 0; i < N; i++) /* what the starts will return */
        f[i] = fut_promise_new(&p[i]);
    atomic_store(&failalloc_calls, 0);
    for (int i = 0; i < N; i++) {
        g_shared = f[i];
        m[i] = fut_scope_spawn(s, start_shared, NULL);
    }
    assert_int_equal(atomic_load(&failalloc_calls), N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(fut_promise_settle(p[i], fut_ok_i64(i)), 0);
        assert_int_equal(fut_value_i64(m[i]), i);
    }
    release_all(m, N);
    release_all(f, N);
    fut_release(fut_scope_close(s));
    fut_set_allocator(NULL, NULL);
    assert_int_equal(atomic_load(&failalloc_live), 0);
}

static void test_scope_member_started_settled_is_that_future(void **state)
{
    (void)state;
    enum { N = 64 };
    atomic_store(&failalloc_at, 0);
    fut_set_allocator(failalloc_alloc, failalloc_free);
    g_shared = fut_ready(fut_ok_i64(1));
    fut_scope_t *s = new_scope(0, false);
    fut_t *m[N];
    long live = atomic_load(&failalloc_live);
    for (int i = 0; i < N; i++)
        m[i] = fut_scope_spawn(s, start_shared, NULL);
    /* each spawn's block went back unused (at most one kept for reuse by
     * the thread's free list) */
    assert_true(atomic_load(&failalloc_live) <= live + 1);
    for (int i = 0; i < N; i++)
        assert_ptr_equal(m[i], g_shared);
    release_all(m, N);
    fut_t *c = fut_scope_close(s);
    assert_int_equal(fut_state(c), FUT_FULFILLED);
    fut_release(c);
    fut_release(g_shared);
    fut_set_allocator(NULL, NULL);
    assert_int_equal(atomic_load(&failalloc_live), 0);
}

static void test_scope_add_of_a_settled_future_is_that_future(void **state)
{
    (void)state;
    fut_scope_t *s = new_scope(0, false);
    fut_t *f = fut_ready(fut_ok_i64(4));
    atomic_store(&failalloc_at, 0);
    atomic_store(&failalloc_calls, 0);
    fut_set_allocator(failalloc_alloc, failalloc_free);
    fut_t *m = fut_scope_add(s, fut_retain(f));
    fut_set_allocator(NULL, NULL);
    assert_ptr_equal(m, f);
    assert_int_equal(atomic_load(&failalloc_calls), 0); /* no member block */
    fut_t *c = fut_scope_close(s);
    assert_int_equal(fut_state(c), FUT_FULFILLED);
    fut_release(c);
    fut_release(m);
    fut_release(f);
}

static void test_scope_add_of_a_settled_rejection_rejects_the_close(void **state)
{
    (void)state;
    fut_scope_t *s = new_scope(0, false);
    fut_t *m = fut_scope_add(s, fut_ready(fut_fail(USER_ERR)));
    assert_int_equal(fut_error(m), USER_ERR);
    fut_t *c = fut_scope_close(s);
    assert_int_equal(fut_state(c), FUT_REJECTED);
    assert_int_equal(fut_error(c), USER_ERR);
    fut_release(c);
    fut_release(m);
}

/* hedged.c's attempts: a member's work adds more members after the
 * close; the close future waits for them too. */
static void test_scope_add_after_close_by_a_pending_member_counts(void **state)
{
    (void)state;
    fut_promise_t *p1, *p2;
    fut_scope_t *s = new_scope(0, false);
    fut_t *m1 = fut_scope_add(s, fut_promise_new(&p1));
    fut_t *c = fut_scope_close(s);
    fut_t *m2 = fut_scope_add(s, fut_promise_new(&p2)); /* m1 pending */
    assert_int_equal(fut_promise_settle(p1, fut_ok_i64(1)), 0);
    assert_int_equal(fut_state(c), FUT_PENDING); /* m2 still is */
    assert_int_equal(fut_promise_settle(p2, fut_ok_i64(2)), 0);
    assert_int_equal(fut_state(c), FUT_FULFILLED);
    fut_release(m1);
    fut_release(m2);
    fut_release(c);
}

static fut_result_t never_called(void *arg, fut_t *src)
{
    (void)src;
    atomic_fetch_add((atomic_int *)arg, 1);
    return fut_ok(NULL);
}

/* The scope's registry holds a member too (cancel.c counts it): a member
 * observed only by one consumer is still cancelled through it. */
static void test_scope_cancelling_a_members_consumer_reaches_its_work(
    void **state)
{
    (void)state;
    struct starter st = {0};
    atomic_int calls = 0;
    fut_scope_t *s = new_scope(0, false);
    fut_t *m = fut_scope_spawn(s, start_promise, &st);
    fut_t *d = fut_then(m, fut_inline(), never_called, &calls);
    assert_int_equal(fut_cancel(d), 0);
    assert_int_equal(fut_promise_settle(st.p[0], fut_ok_i64(1)),
                     FUT_EALREADY); /* the cancel reached the promise */
    fut_t *c = fut_scope_close(s);
    assert_int_equal(fut_state(c), FUT_CANCELLED);
    assert_int_equal(atomic_load(&calls), 0);
    fut_release(c);
    fut_release(d);
}

/* A settled member's block goes back while the scope lives: the registry
 * is swept as members are spawned, so it keeps about twice the pending
 * members, not every member ever spawned. */
static void test_scope_settled_members_go_back_while_spawning(void **state)
{
    (void)state;
    enum { N = 20000 };
    atomic_store(&failalloc_at, 0);
    atomic_store(&failalloc_live, 0);
    fut_set_allocator(failalloc_alloc, failalloc_free);
    fut_scope_t *s = new_scope(0, false);
    struct starter st = {0};
    long most = 0;
    for (int i = 0; i < N; i++) {
        atomic_store(&st.starts, 0);
        fut_release(fut_scope_spawn(s, start_promise, &st));
        assert_int_equal(fut_promise_settle(st.p[0], fut_ok_i64(i)), 0);
        long live = atomic_load(&failalloc_live);
        most = live > most ? live : most;
    }
    /* Without sweeps 2 blocks a member (it and its promise's future)
     * would stay: 40000.  The thread's free list keeps up to 1024. */
    assert_true(most < 4000);
    fut_t *c = fut_scope_close(s);
    assert_int_equal(fut_state(c), FUT_FULFILLED);
    fut_release(c);
    fut_set_allocator(NULL, NULL);
    assert_int_equal(atomic_load(&failalloc_live), 0);
}

/* ---- four submitting threads -------------------------------------------- */

enum { SUBMITTERS = 4, PER_SUBMITTER = 200, LIMIT = 3 };

struct shared {
    fut_scope_t *s;
    fut_executor_t *pool;
    atomic_int running, max_running, done;
    atomic_int bad; /* a submitter's spawn came back NULL */
};

static fut_result_t limited_task(void *arg)
{
    struct shared *sh = arg;
    int now = atomic_fetch_add(&sh->running, 1) + 1;
    int max = atomic_load(&sh->max_running);
    while (now > max &&
           !atomic_compare_exchange_weak(&sh->max_running, &max, now))
        ;
    for (int i = 0; i < 50; i++)
        sched_yield(); /* stay a while: others try to start meanwhile */
    atomic_fetch_sub(&sh->running, 1);
    atomic_fetch_add(&sh->done, 1);
    return fut_ok_i64(1);
}

static fut_t *start_limited(void *arg)
{
    struct shared *sh = arg;
    return fut_async(sh->pool, limited_task, sh);
}

static void *submitter(void *arg)
{
    struct shared *sh = arg;
    for (int i = 0; i < PER_SUBMITTER; i++) {
        fut_t *m = fut_scope_spawn(sh->s, start_limited, sh);
        if (!m)
            atomic_fetch_add(&sh->bad, 1);
        fut_release(m); /* the scope keeps tracking it */
    }
    return NULL;
}

static void test_scope_limit_never_exceeded_with_four_submitters(void **state)
{
    (void)state;
    struct shared sh = {.s = new_scope(LIMIT, false)};
    fut_pool_opts_t po = {.threads = 2};
    assert_int_equal(fut_pool_create(&sh.pool, &po), 0);
    pthread_t th[SUBMITTERS];
    for (int i = 0; i < SUBMITTERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, submitter, &sh), 0);
    for (int i = 0; i < SUBMITTERS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    fut_t *c = fut_scope_close(sh.s);
    assert_int_equal(fut_wait(c, -1), 0);
    assert_int_equal(fut_state(c), FUT_FULFILLED);
    assert_int_equal(atomic_load(&sh.bad), 0);
    assert_int_equal(atomic_load(&sh.done), SUBMITTERS * PER_SUBMITTER);
    assert_true(atomic_load(&sh.max_running) <= LIMIT);
    assert_true(atomic_load(&sh.max_running) >= 1);
    fut_release(c);
    assert_int_equal(fut_executor_destroy(sh.pool), 0);
}

/* ---- a cancel racing spawns ---------------------------------------------
 * A member started at once is in no list while its START runs (scope.c);
 * a cancel in that window must still reach what START returns.  The
 * spawner spawns until told to stop, the main thread cancels meanwhile;
 * then every member must be settled, none left pending. */

enum { RACE_ROUNDS = 200, RACE_MAX = 512 };

struct race_slot {
    fut_promise_t *p;
};

struct race {
    fut_scope_t *s;
    atomic_int spawned, stop;
    fut_t *m[RACE_MAX];
    struct race_slot slot[RACE_MAX];
};

static fut_t *start_yielding(void *arg)
{
    struct race_slot *sl = arg;
    sched_yield(); /* widen the window between START and its listing */
    return fut_promise_new(&sl->p);
}

static void *race_spawner(void *arg)
{
    struct race *r = arg;
    int i;
    for (i = 0; i < RACE_MAX && !atomic_load(&r->stop); i++) {
        r->m[i] = fut_scope_spawn(r->s, start_yielding, &r->slot[i]);
        atomic_store(&r->spawned, i + 1);
    }
    return NULL;
}

static void test_scope_cancel_racing_spawns_reaches_every_member(void **state)
{
    (void)state;
    static struct race r;
    int pending = 0, started = 0;
    for (int round = 0; round < RACE_ROUNDS; round++) {
        memset(&r, 0, sizeof r);
        r.s = new_scope(0, false);
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, race_spawner, &r), 0);
        while (atomic_load(&r.spawned) < 1 + round % 8)
            sched_yield();
        fut_scope_cancel(r.s);
        atomic_store(&r.stop, 1);
        assert_int_equal(pthread_join(th, NULL), 0);
        int n = atomic_load(&r.spawned);
        for (int i = 0; i < n; i++) {
            pending += fut_state(r.m[i]) == FUT_PENDING;
            if (r.slot[i].p) { /* started: its work is settled too */
                started++;
                fut_promise_settle(r.slot[i].p, fut_ok_i64(1));
            }
        }
        fut_t *c = fut_scope_close(r.s);
        assert_int_equal(fut_wait(c, -1), 0);
        release_all(r.m, n);
        fut_release(c);
    }
    assert_int_equal(pending, 0);
    assert_true(started > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scope_spawn_without_limit_starts_at_once),
        cmocka_unit_test(test_scope_limit_starts_the_next_when_a_slot_frees),
        cmocka_unit_test(test_scope_member_of_a_null_start_rejects_einval),
        cmocka_unit_test(test_scope_queued_members_start_in_a_loop_not_nested),
        cmocka_unit_test(test_scope_close_never_settles_before_every_member),
        cmocka_unit_test(test_scope_close_of_an_empty_scope_fulfils_at_once),
        cmocka_unit_test(test_scope_close_settles_like_the_first_rejection),
        cmocka_unit_test(test_scope_fail_fast_cancels_the_rest),
        cmocka_unit_test(test_scope_cancel_stops_unstarted_members),
        cmocka_unit_test(test_scope_spawn_after_cancel_never_starts),
        cmocka_unit_test(test_scope_member_cancelled_while_queued_never_starts),
        cmocka_unit_test(
            test_scope_cancelling_the_close_future_cancels_the_scope),
        cmocka_unit_test(test_scope_add_tracks_a_started_future),
        cmocka_unit_test(test_scope_add_is_not_counted_against_the_limit),
        cmocka_unit_test(
            test_scope_cancel_leaves_an_added_future_held_elsewhere),
        cmocka_unit_test(test_scope_bad_arguments),
        cmocka_unit_test(test_scope_create_without_memory_is_enomem),
        cmocka_unit_test(test_scope_member_costs_one_allocation),
        cmocka_unit_test(test_scope_member_started_settled_is_that_future),
        cmocka_unit_test(test_scope_add_of_a_settled_future_is_that_future),
        cmocka_unit_test(
            test_scope_add_of_a_settled_rejection_rejects_the_close),
        cmocka_unit_test(
            test_scope_cancelling_a_members_consumer_reaches_its_work),
        cmocka_unit_test(test_scope_settled_members_go_back_while_spawning),
        cmocka_unit_test(test_scope_add_after_close_by_a_pending_member_counts),
        cmocka_unit_test(test_scope_limit_never_exceeded_with_four_submitters),
        cmocka_unit_test(test_scope_cancel_racing_spawns_reaches_every_member),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
