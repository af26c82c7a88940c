/* Races of a scope's lock-free member path (lib/scope.c's protocol).
 *
 *   scope_race [rounds]     default 300 rounds per scenario (quick)
 *   scope_race --long       20000 rounds per scenario
 *
 * cancel:  a thread spawns members whose START returns a promise's
 *   future (settled by nobody) while the main thread cancels the scope;
 *   every member spawned must then be settled: the spawner's push and the
 *   canceller's walk of the registry form a Dekker pair, and a member
 *   pushed too late for the walk must see the cancel itself.  Built with
 *   -DFUT_SCOPE_BROKEN_DEKKER (the spawner looks at the cancel before its
 *   push: what a store-load reordering would do) a member stays pending.
 * close:   one pool worker runs the members' tasks while the main thread
 *   closes the scope (with no limit and with limit 3) and spins until the
 *   close future settles; at that moment every member must be settled
 *   (the close counter counts a member down only after it closed).  Built
 *   with -DFUT_SCOPE_BROKEN_COUNT (a member counted down before it
 *   closes) the main thread may find the last member pending.
 * cancel-close: members wait on promises; the main thread closes the
 *   scope, hangs a finally on the close future (inline: it runs the
 *   moment the close future settles, on the thread that settles it) and
 *   cancels the close future, which cancels every member on this thread:
 *   the finally must find every member settled.  With
 *   -DFUT_SCOPE_BROKEN_COUNT the last member is still being closed.
 * Exit status 0 on success; the first violation prints and exits 1. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fut.h>

enum { MAX_MEMBERS = 256 };

static void die(const char *scenario, long round, const char *what)
{
    fprintf(stderr, "scope_race: %s, round %ld: %s\n", scenario, round, what);
    exit(1);
}

/* ---- cancel ------------------------------------------------------------- */

struct race {
    fut_scope_t *s;
    atomic_int spawned, stop;
    fut_t *m[MAX_MEMBERS];
    fut_promise_t *p[MAX_MEMBERS];
};

static fut_t *start_promise(void *arg)
{
    return fut_promise_new((fut_promise_t **)arg);
}

static void *race_spawner(void *arg)
{
    struct race *r = arg;
    for (int i = 0; i < MAX_MEMBERS && !atomic_load(&r->stop); i++) {
        r->m[i] = fut_scope_spawn(r->s, start_promise, &r->p[i]);
        atomic_store(&r->spawned, i + 1);
    }
    return NULL;
}

static void cancel_round(long round)
{
    static struct race r;
    memset(&r, 0, sizeof r);
    if (fut_scope_create(&r.s, NULL) != 0)
        die("cancel", round, "fut_scope_create failed");
    pthread_t th;
    if (pthread_create(&th, NULL, race_spawner, &r) != 0)
        die("cancel", round, "pthread_create failed");
    while (atomic_load(&r.spawned) < 1 + (int)(round % 64))
        ;
    fut_scope_cancel(r.s);
    atomic_store(&r.stop, 1);
    pthread_join(th, NULL);
    int n = atomic_load(&r.spawned);
    for (int i = 0; i < n; i++)
        if (fut_state(r.m[i]) == FUT_PENDING)
            die("cancel", round, "a member outlived the scope's cancel");
    for (int i = 0; i < n; i++)
        if (r.p[i])
            fut_promise_settle(r.p[i], fut_ok_i64(1)); /* FUT_EALREADY */
    fut_t *c = fut_scope_close(r.s);
    if (fut_wait(c, -1) != 0 || fut_state(c) != FUT_CANCELLED)
        die("cancel", round, "the close future did not settle cancelled");
    fut_release(c);
    for (int i = 0; i < n; i++)
        fut_release(r.m[i]);
}

/* ---- close -------------------------------------------------------------- */

static fut_executor_t *g_pool;

static fut_result_t tiny(void *arg)
{
    return fut_ok_i64((int64_t)(intptr_t)arg);
}

static fut_t *start_task(void *arg)
{
    return fut_async(g_pool, tiny, arg);
}

static void close_round(long round, size_t limit)
{
    fut_scope_t *s;
    fut_scope_opts_t o = {.limit = limit};
    fut_t *m[MAX_MEMBERS];
    int n = 1 + (int)(round % 64);
    if (fut_scope_create(&s, &o) != 0)
        die("close", round, "fut_scope_create failed");
    for (int i = 0; i < n; i++)
        m[i] = fut_scope_spawn(s, start_task, (void *)(intptr_t)i);
    fut_t *c = fut_scope_close(s);
    while (fut_state(c) == FUT_PENDING)
        ; /* no futex: look the moment it settles */
    for (int i = n - 1; i >= 0; i--) /* the last to settle first */
        if (fut_state(m[i]) == FUT_PENDING)
            die("close", round, "the close future settled before a member");
    if (fut_state(c) != FUT_FULFILLED)
        die("close", round, "the close future did not fulfil");
    fut_release(c);
    for (int i = 0; i < n; i++)
        fut_release(m[i]);
}

/* ---- cancel-close -------------------------------------------------------- */

struct members {
    int n;
    fut_t *m[MAX_MEMBERS];
    atomic_int early; /* members pending when the close future settled */
};

static fut_result_t check_members(void *arg, fut_t *src)
{
    struct members *ms = arg;
    for (int i = 0; i < ms->n; i++)
        if (fut_state(ms->m[i]) == FUT_PENDING)
            atomic_fetch_add(&ms->early, 1);
    return fut_forward(src);
}

static void cancel_close_round(long round)
{
    static struct members ms;
    fut_promise_t *p[MAX_MEMBERS];
    fut_scope_t *s;
    if (fut_scope_create(&s, NULL) != 0)
        die("cancel-close", round, "fut_scope_create failed");
    ms.n = 1 + (int)(round % 64);
    atomic_store(&ms.early, 0);
    for (int i = 0; i < ms.n; i++)
        ms.m[i] = fut_scope_spawn(s, start_promise, &p[i]);
    fut_t *c = fut_finally(fut_scope_close(s), fut_inline(), check_members, &ms);
    fut_cancel(c); /* reaches the close future: it is c's only source */
    if (fut_state(c) != FUT_CANCELLED)
        die("cancel-close", round, "the close future was not cancelled");
    if (atomic_load(&ms.early) != 0)
        die("cancel-close", round, "the close future settled before a member");
    for (int i = 0; i < ms.n; i++) {
        fut_promise_settle(p[i], fut_ok_i64(1)); /* FUT_EALREADY */
        fut_release(ms.m[i]);
    }
    fut_release(c);
}

int main(int argc, char **argv)
{
    long rounds = 300;
    if (argc > 1)
        rounds = strcmp(argv[1], "--long") == 0 ? 20000 : atol(argv[1]);
    if (rounds <= 0) {
        fprintf(stderr, "usage: scope_race [rounds | --long]\n");
        return 2;
    }
    for (long i = 0; i < rounds; i++)
        cancel_round(i);
    for (long i = 0; i < rounds; i++)
        cancel_close_round(i);
    fut_pool_opts_t po = {.threads = 1};
    if (fut_pool_create(&g_pool, &po) != 0)
        die("close", 0, "fut_pool_create failed");
    for (long i = 0; i < rounds; i++)
        close_round(i, i % 2 ? 3 : 0);
    fut_executor_destroy(g_pool);
    printf("scope_race: %ld rounds of each scenario passed\n", rounds);
    return 0;
}
