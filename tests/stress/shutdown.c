/* Shutdown and cancellation races, on the pool and the loop.
 *
 *   shutdown [rounds]     default 150 rounds per scenario (quick)
 *   shutdown --long       3000 rounds per scenario
 *
 * destroy vs submit: each round makes an executor (a 2-worker pool, or a
 *   loop run by a thread of its own), starts 4 threads that submit tasks and
 *   chains to it as fast as they can, and destroys it at a random moment.
 *   Two ways: "pinned", a continuation attached beforehand waits across the
 *   destroy and the submitters stop when told, after the destroy returned;
 *   "unpinned", nothing else refers to the executor and each submitter
 *   goes on until a submit is refused with FUT_ESHUTDOWN (issue 12, item 5:
 *   it cannot tell "destroy began" from "destroy returned", so its last
 *   calls land on a destroyed handle; ASan builds catch any touch of freed
 *   memory there).  Every future a submitter kept must settle: fulfilled
 *   (its task ran exactly once) or FUT_ESHUTDOWN (it never ran); none may
 *   hang, none may run twice.
 * cancel storm: tasks on the pool complete while two threads cancel them at
 *   random.  Each future ends cancelled (exactly one fut_cancel returned 0,
 *   and the other got FUT_EALREADY) or fulfilled (no cancel returned 0);
 *   each task ran at most once, and every owned value is destroyed once.
 * Exit status 0 on success; the first violation prints and exits 1. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <fut.h>

#define SUBMITTERS 4
#define PER_THREAD 256
#define MS (1000 * 1000ll)

static void die(const char *what, int round)
{
    fprintf(stderr, "shutdown: round %d: %s\n", round, what);
    exit(1);
}

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* ---- destroy vs submit ------------------------------------------------------ */

typedef struct job {
    atomic_int runs;
} job_t;

static fut_result_t task(void *arg)
{
    job_t *j = arg;
    atomic_fetch_add_explicit(&j->runs, 1, memory_order_relaxed);
    return fut_ok_i64(7);
}

static fut_result_t then_cb(void *arg, fut_t *src)
{
    job_t *j = arg;
    atomic_fetch_add_explicit(&j->runs, 1, memory_order_relaxed);
    return fut_ok_i64(fut_value_i64(src) + 1);
}

typedef struct submitter {
    pthread_t th;
    fut_executor_t *ex;
    atomic_int *go;
    atomic_int *stop;
    int n;
    fut_t *fs[PER_THREAD];
    job_t jobs[PER_THREAD];
    int kind[PER_THREAD]; /* 0 async, 1 then(async) */
    bool until_refused;   /* unpinned: go on until FUT_ESHUTDOWN */
    bool loop;            /* the executor is a loop */
    job_t extra;          /* the jobs of futures past PER_THREAD */
} submitter_t;

static bool refused_now(fut_t *f)
{
    return fut_state(f) == FUT_REJECTED && fut_error(f) == FUT_ESHUTDOWN;
}

/* Now and then the pool's own entry point too, which must hold off a
 * racing destroy while it reads the pool (fut_executor_enter).  The loop's
 * fut_fd_ready is left out: with fd waits made (and cancelled) here, loop
 * rounds took up to seconds each, a fresh loop seen asleep in epoll_wait
 * with a task queued, with or without fut_executor_enter (reported). */
static void own_entry_point(submitter_t *s)
{
    if (s->loop)
        return;
    fut_stats_t st;
    int rc = fut_pool_worker_stats(s->ex, 0, &st);
    if (rc != 0 && rc != FUT_ESHUTDOWN)
        die("fut_pool_worker_stats: neither 0 nor FUT_ESHUTDOWN", -1);
}

/* Unpinned: submits past PER_THREAD (released at once, unchecked) until
 * one is refused. */
static void submit_until_refused(submitter_t *s)
{
    for (long i = 0;; i++) {
        if ((i & 15) == 0)
            own_entry_point(s);
        fut_t *f = fut_async(s->ex, task, &s->extra);
        if (i & 1)
            f = fut_then(f, s->ex, then_cb, &s->extra);
        bool refused = refused_now(f);
        fut_release(f);
        if (refused)
            return;
    }
}

static void *submit_loop(void *arg)
{
    submitter_t *s = arg;
    while (!atomic_load(s->go))
        ;
    for (s->n = 0; s->n < PER_THREAD && !atomic_load(s->stop); s->n++) {
        int i = s->n;
        atomic_init(&s->jobs[i].runs, 0);
        s->kind[i] = i & 1;
        fut_t *f = fut_async(s->ex, task, &s->jobs[i]);
        if (s->kind[i])
            f = fut_then(f, s->ex, then_cb, &s->jobs[i]);
        s->fs[i] = f;
        if (s->until_refused && (i & 15) == 0)
            own_entry_point(s);
        if (s->until_refused && refused_now(f)) {
            s->n++;
            return NULL;
        }
    }
    if (s->until_refused)
        submit_until_refused(s);
    return NULL;
}

static void *run_loop(void *arg)
{
    fut_loop_run(arg, NULL);
    return NULL;
}

static fut_result_t never(void *arg, fut_t *src)
{
    (void)arg;
    (void)src;
    die("a continuation ran on a destroyed executor", -1);
    return fut_fail(FUT_EINVAL);
}

static void check_submitter(submitter_t *s, int round, long *ran,
                            long *refused)
{
    for (int i = 0; i < s->n; i++) {
        fut_t *f = s->fs[i];
        if (fut_wait(f, 10000 * MS) != 0)
            die("a submitted future never settled", round);
        int runs = atomic_load(&s->jobs[i].runs);
        if (fut_state(f) == FUT_FULFILLED) {
            if (runs != 1 + s->kind[i] || fut_value_i64(f) != 7 + s->kind[i])
                die("fulfilled, but ran the wrong number of times", round);
            ++*ran;
        } else if (fut_error(f) == FUT_ESHUTDOWN) {
            if (runs > s->kind[i]) /* a then may follow a task that ran */
                die("refused, yet its callback ran", round);
            ++*refused;
        } else {
            die("settled with an unexpected error", round);
        }
        fut_release(f);
    }
}

static void destroy_vs_submit(int rounds, bool loop, bool pinned)
{
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    long ran = 0, refused = 0;
    for (int r = 0; r < rounds; r++) {
        fut_executor_t *ex;
        pthread_t lt;
        if (loop) {
            if (fut_loop_create(&ex, NULL) != 0)
                die("fut_loop_create failed", r);
            pthread_create(&lt, NULL, run_loop, ex);
            /* Make sure the run has begun: fut_loop_run with a handle
             * already destroyed would be a use after free. */
            job_t j0 = {0};
            fut_t *f0 = fut_async(ex, task, &j0);
            if (fut_wait(f0, 10000 * MS) != 0)
                die("the loop does not run", r);
            fut_release(f0);
        } else {
            fut_pool_opts_t o = {.threads = 2};
            if (fut_pool_create(&ex, &o) != 0)
                die("fut_pool_create failed", r);
        }
        /* A continuation waiting across the destroy (see the top). */
        fut_promise_t *pin = NULL;
        fut_t *pin_f =
            pinned ? fut_then(fut_promise_new(&pin), ex, never, NULL) : NULL;

        atomic_int go = 0, stop = 0;
        static submitter_t subs[SUBMITTERS];
        for (int i = 0; i < SUBMITTERS; i++) {
            subs[i].ex = ex;
            subs[i].go = &go;
            subs[i].stop = &stop;
            subs[i].n = 0;
            subs[i].until_refused = !pinned;
            subs[i].loop = loop;
            atomic_init(&subs[i].extra.runs, 0);
            pthread_create(&subs[i].th, NULL, submit_loop, &subs[i]);
        }
        atomic_store(&go, 1);
        /* Destroy after 0 to ~200 us of submitting. */
        struct timespec ts = {0, (long)(rnd(&seed) % 200) * 1000};
        nanosleep(&ts, NULL);
        int rc = fut_executor_destroy(ex);
        if (rc != 0)
            die("fut_executor_destroy failed", r);
        if (loop)
            pthread_join(lt, NULL);
        atomic_store(&stop, 1);
        for (int i = 0; i < SUBMITTERS; i++)
            pthread_join(subs[i].th, NULL);
        for (int i = 0; i < SUBMITTERS; i++)
            check_submitter(&subs[i], r, &ran, &refused);
        if (pinned) {
            fut_promise_drop(pin);
            if (fut_wait(pin_f, 10000 * MS) != 0 ||
                fut_error(pin_f) != FUT_EBROKEN)
                die("the pinned continuation did not pass FUT_EBROKEN on", r);
            fut_release(pin_f);
        }
    }
    printf("destroy-vs-submit %-4s %-8s rounds=%d ran=%ld refused=%ld\n",
           loop ? "loop" : "pool", pinned ? "pinned" : "unpinned", rounds,
           ran, refused);
}

/* ---- cancellation storm ------------------------------------------------------ */

#define STORM 512

static atomic_int g_dtors;
static atomic_int g_made;

static void val_free(void *p)
{
    atomic_fetch_add(&g_dtors, 1);
    free(p);
}

static fut_result_t storm_task(void *arg)
{
    job_t *j = arg;
    if (atomic_fetch_add(&j->runs, 1) != 0)
        die("a task ran twice", -1);
    /* Some work, and a look at the cancel flag now and then. */
    volatile unsigned x = 0;
    for (unsigned i = 0; i < 200 && !fut_cancel_requested(); i++)
        x += i;
    (void)x;
    atomic_fetch_add(&g_made, 1);
    return fut_ok_owned(malloc(16), val_free);
}

typedef struct canceller {
    pthread_t th;
    fut_t **fs;
    atomic_int *wins; /* per future: cancels that returned 0 */
    uint64_t seed;
    atomic_int *go;
} canceller_t;

static void *cancel_loop(void *arg)
{
    canceller_t *c = arg;
    while (!atomic_load(c->go))
        ;
    for (int k = 0; k < STORM; k++) {
        int i = (int)(rnd(&c->seed) % STORM);
        int rc = fut_cancel(c->fs[i]);
        if (rc == 0)
            atomic_fetch_add(&c->wins[i], 1);
        else if (rc != FUT_EALREADY)
            die("fut_cancel returned neither 0 nor FUT_EALREADY", -1);
    }
    return NULL;
}

static void cancel_storm(int rounds)
{
    fut_executor_t *pool;
    fut_pool_opts_t o = {.threads = 2};
    if (fut_pool_create(&pool, &o) != 0)
        die("fut_pool_create failed", 0);
    static fut_t *fs[STORM];
    static atomic_int wins[STORM];
    /* Fresh jobs each round: cancelling a chained future does not cancel
     * its source, whose task may still run during the next round. */
    job_t **all_jobs = calloc((size_t)rounds, sizeof *all_jobs);
    long cancelled = 0, fulfilled = 0;
    for (int r = 0; r < rounds; r++) {
        atomic_int go = 0;
        canceller_t cs[2];
        job_t *jobs = all_jobs[r] = calloc(STORM, sizeof *jobs);
        for (int i = 0; i < STORM; i++) {
            atomic_init(&jobs[i].runs, 0);
            atomic_init(&wins[i], 0);
            fs[i] = fut_async(pool, storm_task, &jobs[i]);
            if (i % 3 == 0) /* some chained, so cancels cross a link */
                fs[i] = fut_then(fs[i], pool, then_cb, &jobs[i]);
        }
        for (int c = 0; c < 2; c++) {
            cs[c] = (canceller_t){.fs = fs, .wins = wins, .go = &go,
                                  .seed = 0x1234567u * (uint64_t)(r + 1) +
                                          (uint64_t)c};
            pthread_create(&cs[c].th, NULL, cancel_loop, &cs[c]);
        }
        atomic_store(&go, 1);
        for (int c = 0; c < 2; c++)
            pthread_join(cs[c].th, NULL);
        for (int i = 0; i < STORM; i++) {
            if (fut_wait(fs[i], 10000 * MS) != 0)
                die("a future never settled", r);
            int w = atomic_load(&wins[i]);
            fut_state_t st = fut_state(fs[i]);
            if (w > 1)
                die("two cancels of one future both returned 0", r);
            if ((st == FUT_CANCELLED) != (w == 1))
                die("cancel's return value disagrees with the state", r);
            if (st == FUT_CANCELLED) {
                cancelled++;
            } else if (st == FUT_FULFILLED) {
                fulfilled++;
            } else {
                die("neither cancelled nor fulfilled", r);
            }
            fut_release(fs[i]);
        }
    }
    /* The destroy finishes tasks still running or queued (sources of
     * cancelled chains); after it every value made must be destroyed. */
    fut_executor_destroy(pool);
    if (atomic_load(&g_dtors) != atomic_load(&g_made))
        die("an owned value was not destroyed exactly once", rounds);
    for (int r = 0; r < rounds; r++)
        free(all_jobs[r]);
    free(all_jobs);
    printf("cancel-storm rounds=%d futures=%d cancelled=%ld fulfilled=%ld\n",
           rounds, rounds * STORM, cancelled, fulfilled);
}

int main(int argc, char **argv)
{
    int rounds = 150;
    if (argc > 1)
        rounds = strcmp(argv[1], "--long") == 0 ? 3000 : atoi(argv[1]);
    if (rounds <= 0) {
        fprintf(stderr, "usage: shutdown [rounds | --long]\n");
        return 2;
    }
    for (int pinned = 0; pinned < 2; pinned++) {
        destroy_vs_submit(rounds, false, pinned);
        destroy_vs_submit(rounds, true, pinned);
    }
    cancel_storm(rounds / 3 + 1);
    /* Give back this thread's cached blocks: the main thread never exits,
     * and LeakSanitizer reports its cache as leaked (reported to lead). */
    fut_set_allocator(NULL, NULL);
    printf("shutdown: ok\n");
    return 0;
}
