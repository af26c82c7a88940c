/* Fault injection for the pool and the loop.
 *
 *  - Allocation-failure sweeps (the method of tests/test_alloc.c, carried to
 *    the executors): a counting allocator installed with fut_set_allocator
 *    fails the k-th allocation; a scenario that exercises worker start-up,
 *    deque overflow into the injection queue (pool), timer-heap and
 *    fd-table growth, epoll registration and cross-thread submission (loop)
 *    runs for k = 1, 2, ... until a run completes with no failure injected.
 *    Every run must end with success or FUT_ENOMEM at the waiter, never
 *    hang or crash, and give back every block (live count 0 after the
 *    executor is destroyed and this thread's cache flushed).
 *  - System-call failures, by interposition: this binary defines
 *    pthread_create, eventfd and epoll_ctl, which pass through to the real
 *    ones (dlsym(RTLD_NEXT)) unless a test asks for a failure.  libfut is
 *    linked statically, so its calls reach these wrappers.
 *  - The fd limit (setrlimit RLIMIT_NOFILE): no fd left for epoll_create1,
 *    or exactly one (eventfd then fails).
 * Each failure must come back as the documented error with nothing left
 * behind: no thread, no fd, no block. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <fut.h>

#include "testexec.h"

#define MS (1000 * 1000ll)

/* ---- interposed system calls --------------------------------------------- */

static atomic_int fail_pthread_at; /* fail the n-th call from now; 0: none */
static atomic_int fail_eventfd;    /* errno to fail with; 0: none */
static atomic_int fail_epoll_ctl;  /* errno to fail with; 0: none */
static atomic_int fail_epoll_ctl_fd = -1; /* only for this fd; -1: any */
static atomic_int pthread_calls;

/* Stores the next definition of NAME (libc's, or a sanitizer's
 * interceptor) in the function pointer at FN: ISO C has no cast from
 * dlsym's void * to a function pointer, POSIX guarantees the bytes. */
static void real_sym(void *fn, size_t size, const char *name)
{
    void *p = dlsym(RTLD_NEXT, name);
    if (!p)
        abort();
    memcpy(fn, &p, size);
}

typedef int (*pthread_create_fn)(pthread_t *, const pthread_attr_t *,
                                 void *(*)(void *), void *);

int pthread_create(pthread_t *th, const pthread_attr_t *attr,
                   void *(*fn)(void *), void *arg)
{
    static pthread_create_fn real;
    if (!real)
        real_sym(&real, sizeof real, "pthread_create");
    int n = atomic_fetch_add(&pthread_calls, 1) + 1;
    if (n == atomic_load(&fail_pthread_at))
        return EAGAIN;
    return real(th, attr, fn, arg);
}

int eventfd(unsigned int initval, int flags)
{
    static int (*real)(unsigned int, int);
    if (!real)
        real_sym(&real, sizeof real, "eventfd");
    int e = atomic_load(&fail_eventfd);
    if (e) {
        errno = e;
        return -1;
    }
    return real(initval, flags);
}

int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    static int (*real)(int, int, int, struct epoll_event *);
    if (!real)
        real_sym(&real, sizeof real, "epoll_ctl");
    int e = atomic_load(&fail_epoll_ctl);
    int only = atomic_load(&fail_epoll_ctl_fd);
    if (e && op != EPOLL_CTL_DEL && (only < 0 || only == fd)) {
        errno = e;
        return -1;
    }
    return real(epfd, op, fd, ev);
}

static long g_k;    /* the sweep's current k, for messages */
static int g_where; /* which future of the scenario is checked */

static void sweep_begin(long k)
{
    g_k = k;
    g_where = -1;
    atomic_store(&failalloc_calls, 0);
    atomic_store(&failalloc_live, 0);
    atomic_store(&failalloc_failed, 0);
    atomic_store(&failalloc_at, k);
    fut_set_allocator(failalloc_alloc, failalloc_free);
}

/* Ends one run; returns whether a failure was injected. */
static bool sweep_end(long k)
{
    fut_set_allocator(NULL, NULL); /* returns this thread's cached blocks */
    /* The timer thread may still be letting go of a block it fired. */
    for (int i = 0; i < 1000 && atomic_load(&failalloc_live) != 0; i++) {
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (atomic_load(&failalloc_live) != 0)
        print_error("k=%ld: %ld blocks leaked\n", k,
                    atomic_load(&failalloc_live));
    assert_int_equal(atomic_load(&failalloc_live), 0);
    return atomic_load(&failalloc_failed) != 0;
}

static int threads_now(void);

/* A joined thread can linger in /proc/self/task for a moment after
 * pthread_join returns (the kernel reaps it just after it clears the tid
 * the join waits on): wait up to 2 s for the count to come down to WANT. */
static int threads_settle(int want)
{
    int n = threads_now();
    for (int i = 0; i < 2000 && n > want; i++) {
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
        n = threads_now();
    }
    return n;
}

/* Entries of directory PATH other than . and .., or -1. */
static int dir_entries(const char *path)
{
    int n = 0;
    DIR *d = opendir(path);
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static int threads_now(void)
{
    return dir_entries("/proc/self/task");
}

static int fds_now(void)
{
    return dir_entries("/proc/self/fd") - 1; /* the directory's own fd */
}

static void assert_ok_or_enomem(fut_t *f)
{
    fut_state_t s = fut_state(f);
    if (s == FUT_FULFILLED)
        return;
    if (fut_error(f) != FUT_ENOMEM)
        print_error("k=%ld, future %d: state %d error %d (%s)\n", g_k, g_where,
                    s, fut_error(f), fut_strerror(fut_error(f)));
    assert_int_equal(fut_error(f), FUT_ENOMEM);
}

/* ---- pool scenario ---------------------------------------------------------
 */

enum { KIDS = 16, PARENTS = 4 };

static atomic_int g_dtors;

static fut_result_t leaf(void *arg)
{
    (void)arg;
    return fut_ok_i64(1);
}

/* Runs on a worker: spawns KIDS children (its deque holds 4, so the rest
 * overflow into the injection queue) and waits for them (helping). */
static fut_result_t parent(void *arg)
{
    (void)arg;
    fut_executor_t *ex = fut_executor_current();
    fut_t *kids[KIDS];
    for (int i = 0; i < KIDS; i++)
        kids[i] = fut_async(ex, leaf, NULL);
    int64_t sum = 0;
    int err = 0;
    for (int i = 0; i < KIDS; i++) {
        fut_wait(kids[i], -1);
        if (fut_state(kids[i]) == FUT_FULFILLED)
            sum += fut_value_i64(kids[i]);
        else
            err = fut_error(kids[i]);
        fut_release(kids[i]);
    }
    return err ? fut_fail(err) : fut_ok_i64(sum);
}

static fut_result_t plus_one(void *arg, fut_t *src)
{
    (void)arg;
    return fut_ok_i64(fut_value_i64(src) + 1);
}

static fut_result_t owned_task(void *arg)
{
    (void)arg;
    return fut_ok_owned(counted_new(&g_dtors), counted_free);
}

/* Returns true if the run completed without an injected failure. */
static bool pool_run(long k)
{
    atomic_store(&g_dtors, 0);
    sweep_begin(k);
    fut_executor_t *pool = NULL;
    fut_pool_opts_t o = {.threads = 2, .deque_capacity = 4};
    int rc = fut_pool_create(&pool, &o);
    if (rc != 0) {
        assert_int_equal(rc, FUT_ENOMEM);
        assert_null(pool);
        sweep_end(k);
        return false; /* a failure was injected: keep sweeping */
    }
    fut_t *fs[PARENTS + 1];
    for (int i = 0; i < PARENTS; i++)
        fs[i] = fut_then(fut_async(pool, parent, NULL), pool, plus_one, NULL);
    fs[PARENTS] = fut_async(pool, owned_task, NULL);
    bool owned_ran = false;
    fut_t *all = fut_all_settled(fs, PARENTS + 1);
    assert_int_equal(fut_wait(all, 20000 * MS), 0);
    bool any_failed = fut_state(all) != FUT_FULFILLED;
    if (!any_failed) {
        for (int i = 0; i < PARENTS; i++) {
            fut_t *f = fut_input(all, (size_t)i);
            assert_ok_or_enomem(f);
            if (fut_state(f) == FUT_FULFILLED)
                assert_int_equal(fut_value_i64(f), KIDS + 1);
        }
        fut_t *ow = fut_input(all, PARENTS);
        assert_ok_or_enomem(ow);
        owned_ran = fut_state(ow) == FUT_FULFILLED;
    } else {
        assert_ok_or_enomem(all);
    }
    fut_release(all);
    assert_int_equal(fut_executor_destroy(pool), 0);
    /* Exactly once if its future was seen fulfilled; at most once if the
     * combinator itself failed (the task may still have run). */
    if (any_failed)
        assert_true(atomic_load(&g_dtors) <= 1);
    else
        assert_int_equal(atomic_load(&g_dtors), owned_ran ? 1 : 0);
    return !sweep_end(k);
}

static void test_pool_allocation_failure_sweep(void **state)
{
    (void)state;
    long k;
    for (k = 1; k < 100000; k++)
        if (pool_run(k))
            break;
    print_message("pool sweep: %ld runs\n", k);
    assert_true(k > 3);
}

/* ---- loop scenario
 * ----------------------------------------------------------- */

/* Once a bug: when the loop thread failed to grow its timer heap for a
 * timer started from another thread, it could only fut_timer_drop the
 * timer, so the delay rejected FUT_ESHUTDOWN instead of FUT_ENOMEM.  Fixed
 * with fut_timer_fail; 1 tolerates the old behaviour. */
#ifndef KNOWN_TIMER_HEAP_ENOMEM_IS_ESHUTDOWN
#define KNOWN_TIMER_HEAP_ENOMEM_IS_ESHUTDOWN 0
#endif

enum { DELAYS = 130 }; /* more than two growths of a 64-slot heap */

struct remote {
    fut_executor_t *loop;
    fut_t *f;
};

static void *submit_from_thread(void *arg)
{
    struct remote *r = arg;
    r->f = fut_then(fut_async(r->loop, leaf, NULL), r->loop, plus_one, NULL);
    return NULL;
}

struct watchdog {
    fut_executor_t *loop;
    atomic_int done;
    atomic_int fired;
};

static void *watch(void *arg)
{
    struct watchdog *w = arg;
    for (int i = 0; i < 2000 && !atomic_load(&w->done); i++) {
        struct timespec ts = {0, 5 * MS};
        nanosleep(&ts, NULL);
    }
    if (!atomic_load(&w->done)) {
        atomic_store(&w->fired, 1);
        fut_loop_stop(w->loop);
    }
    return NULL;
}

static bool loop_run(long k)
{
    sweep_begin(k);
    fut_executor_t *loop = NULL;
    int rc = fut_loop_create(&loop, NULL);
    if (rc != 0) {
        assert_int_equal(rc, FUT_ENOMEM);
        sweep_end(k);
        return false; /* a failure was injected: keep sweeping */
    }
    int p[2];
    assert_int_equal(pipe(p), 0);
    int high = dup2(p[0], 100); /* past the 64-entry fd table */
    assert_int_equal(high, 100);
    fut_t *fs[6];
    fs[0] = fut_fd_ready(loop, high, FUT_READABLE);
    fs[1] = fut_fd_ready(loop, p[1], FUT_WRITABLE);
    fut_t *delays[DELAYS];
    for (int i = 0; i < DELAYS; i++)
        delays[i] = fut_delay(loop, (uint64_t)(i % 7) * 100000);
    fs[2] = fut_all(delays, DELAYS);
    struct remote r = {.loop = loop};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, submit_from_thread, &r), 0);
    pthread_join(th, NULL);
    fs[3] = r.f;
    fs[4] = fut_then(fut_async(loop, leaf, NULL), loop, plus_one, NULL);
    /* A timeout on the loop's thread keeps its timer in the loop too. */
    fs[5] = fut_timeout(fut_delay(loop, 1000), 1000 * 1000 * MS);
    assert_int_equal(write(p[1], "x", 1), 1);
    fut_t *all = fut_all_settled(fs, 6);

    struct watchdog w = {.loop = loop};
    pthread_t wt;
    assert_int_equal(pthread_create(&wt, NULL, watch, &w), 0);
    rc = fut_loop_run(loop, all);
    atomic_store(&w.done, 1);
    pthread_join(wt, NULL);
    assert_int_equal(rc, 0);
    if (atomic_load(&w.fired))
        print_error("k=%ld: the loop did not finish in 10 s\n", k);
    assert_false(atomic_load(&w.fired));
    assert_int_not_equal(fut_state(all), FUT_PENDING);
    if (fut_state(all) == FUT_FULFILLED)
        for (int i = 0; i < 6; i++) {
            g_where = i;
            fut_t *in = fut_input(all, (size_t)i);
            if (KNOWN_TIMER_HEAP_ENOMEM_IS_ESHUTDOWN && i == 2 &&
                fut_error(in) == FUT_ESHUTDOWN) {
                print_message("k=%ld: KNOWN BUG: timer heap growth failure "
                              "settled a delay FUT_ESHUTDOWN, not "
                              "FUT_ENOMEM (reported)\n",
                              k);
                continue;
            }
            assert_ok_or_enomem(in);
        }
    else
        assert_ok_or_enomem(all);
    fut_release(all);
    assert_int_equal(fut_executor_destroy(loop), 0);
    close(p[0]);
    close(p[1]);
    close(high);
    return !sweep_end(k);
}

static void test_loop_allocation_failure_sweep(void **state)
{
    (void)state;
    long k;
    for (k = 1; k < 100000; k++)
        if (loop_run(k))
            break;
    print_message("loop sweep: %ld runs\n", k);
    assert_true(k > 3);
}

/* ---- pthread_create failing --------------------------------------------- */

static void *nothing(void *arg)
{
    return arg;
}

static void test_pool_create_thread_start_fails(void **state)
{
    (void)state;
    /* Sanitizer runtimes start a helper thread at the first
     * pthread_create: make that happen before counting. */
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, nothing, NULL), 0);
    pthread_join(th, NULL);
    int before = threads_now();
    for (int at = 1; at <= 4; at++) {
        sweep_begin(0);
        atomic_store(&pthread_calls, 0);
        atomic_store(&fail_pthread_at, at);
        fut_executor_t *pool = (fut_executor_t *)&pool;
        fut_pool_opts_t o = {.threads = 4};
        int rc = fut_pool_create(&pool, &o);
        atomic_store(&fail_pthread_at, 0);
        assert_int_equal(rc, -EAGAIN);
        assert_null(pool);
        /* nothing left running */
        assert_int_equal(threads_settle(before), before);
        sweep_end(0);
    }
    /* And it works again afterwards. */
    fut_executor_t *pool;
    assert_int_equal(fut_pool_create(&pool, NULL), 0);
    fut_t *f = fut_async(pool, leaf, NULL);
    assert_int_equal(fut_await(f, NULL), 0);
    fut_release(f);
    assert_int_equal(fut_executor_destroy(pool), 0);
}

/* ---- the loop's file descriptors ---------------------------------------- */

static void test_loop_create_eventfd_fails(void **state)
{
    (void)state;
    int before = fds_now();
    fut_executor_t *loop = (fut_executor_t *)&loop;
    atomic_store(&fail_eventfd, ENFILE);
    int rc = fut_loop_create(&loop, NULL);
    atomic_store(&fail_eventfd, 0);
    assert_int_equal(rc, -ENFILE);
    assert_int_equal(fds_now(), before); /* the epoll fd was closed */
}

static void test_loop_create_epoll_ctl_fails(void **state)
{
    (void)state;
    int before = fds_now();
    fut_executor_t *loop = (fut_executor_t *)&loop;
    atomic_store(&fail_epoll_ctl, ENOSPC);
    int rc = fut_loop_create(&loop, NULL);
    atomic_store(&fail_epoll_ctl, 0);
    assert_int_equal(rc, -ENOSPC);
    assert_int_equal(fds_now(), before);
}

/* Sets RLIMIT_NOFILE so that exactly FREE descriptors can still be opened;
 * returns the old limit. */
static struct rlimit limit_fds(int free_fds, int *fillers, int *nfill)
{
    struct rlimit old;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    /* Fill the holes below the highest open fd, so the limit counts. */
    int top = 0;
    for (int fd = 0; fd < 1024; fd++)
        if (fcntl(fd, F_GETFD) != -1)
            top = fd;
    *nfill = 0;
    for (int fd = 0; fd < top; fd++)
        if (fcntl(fd, F_GETFD) == -1)
            fillers[(*nfill)++] = open("/dev/null", O_RDONLY);
    struct rlimit lim = old;
    lim.rlim_cur = (rlim_t)(top + 1 + free_fds);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &lim), 0);
    return old;
}

static void unlimit_fds(struct rlimit old, int *fillers, int nfill)
{
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    for (int i = 0; i < nfill; i++)
        close(fillers[i]);
}

static void test_loop_create_at_fd_limit(void **state)
{
    (void)state;
    static int fillers[1024];
    int nfill;
    for (int free_fds = 0; free_fds <= 1; free_fds++) {
        int before = fds_now();
        struct rlimit old = limit_fds(free_fds, fillers, &nfill);
        fut_executor_t *loop = (fut_executor_t *)&loop;
        int rc = fut_loop_create(&loop, NULL);
        unlimit_fds(old, fillers, nfill);
        /* none free: epoll_create1 fails; one free: eventfd does */
        assert_int_equal(rc, -EMFILE);
        assert_int_equal(fds_now(), before);
    }
}

static fut_t *fd_ready_run(fut_executor_t *loop, int fd, unsigned ev)
{
    fut_t *f = fut_fd_ready(loop, fd, ev);
    assert_int_equal(fut_loop_run(loop, f), 0);
    return f;
}

static void test_fd_ready_registration_failures(void **state)
{
    (void)state;
    fut_executor_t *loop;
    assert_int_equal(fut_loop_create(&loop, NULL), 0);
    int p[2];
    assert_int_equal(pipe(p), 0);

    /* epoll_ctl refuses (max_user_watches reached, say). */
    atomic_store(&fail_epoll_ctl_fd, p[1]);
    atomic_store(&fail_epoll_ctl, ENOSPC);
    fut_t *f = fd_ready_run(loop, p[1], FUT_WRITABLE);
    atomic_store(&fail_epoll_ctl, 0);
    atomic_store(&fail_epoll_ctl_fd, -1);
    assert_int_equal(fut_state(f), FUT_REJECTED);
    assert_int_equal(fut_error(f), -ENOSPC);
    fut_release(f);

    /* The loop is not poisoned by it: the same fd works now. */
    f = fd_ready_run(loop, p[1], FUT_WRITABLE);
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    fut_release(f);

    /* A regular file: epoll refuses it with EPERM. */
    int reg = open("/proc/self/exe", O_RDONLY);
    assert_true(reg >= 0);
    f = fd_ready_run(loop, reg, FUT_READABLE);
    assert_int_equal(fut_error(f), -EPERM);
    fut_release(f);
    close(reg);

    /* A closed fd. */
    int closed = dup(p[0]);
    close(closed);
    f = fd_ready_run(loop, closed, FUT_READABLE);
    assert_int_equal(fut_error(f), -EBADF);
    fut_release(f);

    close(p[0]);
    close(p[1]);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

/* A failed assertion leaves its test early: put the world back. */
static int reset(void **state)
{
    (void)state;
    fut_set_allocator(NULL, NULL);
    atomic_store(&failalloc_at, 0);
    atomic_store(&fail_pthread_at, 0);
    atomic_store(&fail_eventfd, 0);
    atomic_store(&fail_epoll_ctl, 0);
    atomic_store(&fail_epoll_ctl_fd, -1);
    return 0;
}

int main(void)
{
#define T(name) cmocka_unit_test_teardown(name, reset)
    const struct CMUnitTest tests[] = {
        T(test_pool_create_thread_start_fails),
        T(test_loop_create_eventfd_fails),
        T(test_loop_create_epoll_ctl_fails),
        T(test_loop_create_at_fd_limit),
        T(test_fd_ready_registration_failures),
        T(test_pool_allocation_failure_sweep),
        T(test_loop_allocation_failure_sweep),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
