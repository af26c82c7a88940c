/* fork(): in the child, fresh executors and timers work (the timer thread
 * starts afresh), executors inherited from the parent refuse work with a
 * clear error, and destroying them frees their memory without joining
 * threads that the child does not have.  Each test forks a child that
 * records what it saw into a report sent back through a pipe; the parent
 * (the only thread cmocka runs on) asserts on it and on the exit status.
 * A child that hangs is ended by alarm() and fails the test.
 *
 * Not built under ThreadSanitizer (tests/SConscript): gcc 12's TSan cannot
 * follow a child of a multi-threaded parent that starts threads (it stops
 * such a child, or, with die_after_fork=0, fails a check: "dup thread with
 * used id", as glibc gives the child's new thread a dead parent thread's
 * stack and so its pthread_t).
 *
 * Each fork waits first until every other thread of the parent sleeps
 * (wait_parent_idle).  POSIX allows a child of a multi-threaded process
 * only async-signal-safe calls; glibc's malloc goes further with fork
 * handlers, but ASan's allocator in gcc 12 has none: a worker still inside
 * malloc at the fork (say, in ASan's own thread start) leaves that lock
 * held forever in the child, whose new workers then hang (seen in CI). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fut.h>

#include "internal.h" /* fut__uring_set_mode, fut__uring_supported */
#include "testexec.h"

#define MS (1000 * 1000LL)
#define SEC (1000 * MS)

/* What a child saw: up to 16 numbers, in the order it recorded them. */
typedef struct report {
    int n;
    long v[16];
} report_t;

static void put(report_t *r, long v)
{
    if (r->n < 16)
        r->v[r->n++] = v;
}

/* True when every thread of this process but the caller is asleep (state
 * S in /proc/self/task/TID/stat): none can be inside an allocator then. */
static bool others_asleep(void)
{
    char self[32], path[300], buf[512];
    snprintf(self, sizeof self, "%ld", (long)gettid());
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    bool asleep = true;
    struct dirent *e;
    while (asleep && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, self) == 0)
            continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/stat", e->d_name);
        FILE *fp = fopen(path, "r");
        if (fp == NULL)
            continue; /* the thread has exited */
        size_t n = fread(buf, 1, sizeof buf - 1, fp);
        fclose(fp);
        buf[n] = '\0';
        const char *end = strrchr(buf, ')'); /* the name may hold spaces */
        asleep = end != NULL && end[1] == ' ' && end[2] == 'S';
    }
    closedir(d);
    return asleep;
}

/* Waits (10 s at most, then fails) until the parent's other threads have
 * slept through two looks 2 ms apart. */
static void wait_parent_idle(void)
{
    const struct timespec two_ms = {0, 2 * MS};
    for (int tries = 0; tries < 5000; tries++) {
        if (others_asleep()) {
            nanosleep(&two_ms, NULL);
            if (others_asleep())
                return;
        }
        nanosleep(&two_ms, NULL);
    }
    fail_msg("the parent's threads did not go idle in 10 s");
}

/* Forks; the child runs FN(R, ARG), sends R and exits 0.  The parent gets
 * the report back and returns the child's wait status. */
static int in_child(void (*fn)(report_t *, void *), void *arg, report_t *out)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    wait_parent_idle();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        alarm(30); /* a hang kills the child: the test fails, CI goes on */
        report_t r;
        memset(&r, 0, sizeof r);
        fn(&r, arg);
        ssize_t w = write(fds[1], &r, sizeof r);
        _exit(w == (ssize_t)sizeof r ? 0 : 3);
    }
    close(fds[1]);
    memset(out, 0, sizeof *out);
    size_t got = 0;
    while (got < sizeof *out) {
        ssize_t n = read(fds[0], (char *)out + got, sizeof *out - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fds[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (got != sizeof *out)
        out->n = -1; /* no report: the child died (see status) */
    return status;
}

static void assert_child_ok(int status, const report_t *r)
{
    assert_true(WIFEXITED(status)); /* not killed by alarm or a crash */
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_true(r->n >= 0);
}

static fut_result_t answer(void *arg)
{
    (void)arg;
    return fut_ok_i64(42);
}

/* Makes the parent's timer thread run (and keeps a timer armed on it). */
static fut_t *parent_uses_timers(void)
{
    fut_t *d = fut_delay(fut_inline(), 1000);
    assert_int_equal(fut_wait(d, -1), 0);
    fut_release(d);
    return fut_delay(fut_inline(), 3600 * SEC); /* armed across the fork */
}

static void child_timers(report_t *r, void *arg)
{
    (void)arg;
    fut_t *d = fut_delay(fut_inline(), 1 * MS);
    put(r, fut_wait(d, 10 * SEC));
    put(r, fut_state(d));
    fut_release(d);
    fut_promise_t *p;
    fut_t *t = fut_timeout(fut_promise_new(&p), 1 * MS); /* outside a loop */
    put(r, fut_wait(t, 10 * SEC));
    put(r, fut_error(t));
    fut_promise_drop(p);
    fut_release(t);
    put(r, fut_timer_service_stop());
}

static void test_child_timers_fire_after_parent_used_them(void **state)
{
    (void)state;
    fut_t *armed = parent_uses_timers();
    report_t r;
    int status = in_child(child_timers, NULL, &r);
    assert_child_ok(status, &r);
    assert_int_equal(r.n, 5);
    assert_int_equal(r.v[0], 0); /* was FUT_ETIMEDOUT: no timer thread */
    assert_int_equal(r.v[1], FUT_FULFILLED);
    assert_int_equal(r.v[2], 0);
    assert_int_equal(r.v[3], FUT_ETIMEDOUT);
    assert_int_equal(r.v[4], 0);
    /* the parent's service is untouched: its armed timer is still there */
    assert_int_equal(fut_state(armed), FUT_PENDING);
    fut_cancel(armed);
    fut_release(armed);
}

static void child_fresh_executors(report_t *r, void *arg)
{
    (void)arg;
    fut_executor_t *pool, *loop;
    fut_pool_opts_t o = {.threads = 2};
    put(r, fut_pool_create(&pool, &o));
    fut_t *f = fut_async(pool, answer, NULL);
    put(r, fut_wait(f, 10 * SEC));
    put(r, fut_value_i64(f));
    fut_release(f);
    fut_t *d = fut_delay(pool, 1 * MS); /* on the timer thread */
    put(r, fut_wait(d, 10 * SEC));
    fut_release(d);
    put(r, fut_executor_destroy(pool));
    put(r, fut_loop_create(&loop, NULL));
    d = fut_delay(loop, 1 * MS);
    put(r, fut_loop_run(loop, d));
    put(r, fut_state(d));
    fut_release(d);
    put(r, fut_executor_destroy(loop));
}

static void test_child_fresh_executors_work(void **state)
{
    (void)state;
    fut_executor_t *pool; /* the parent has a pool with running workers */
    fut_pool_opts_t o = {.threads = 2};
    assert_int_equal(fut_pool_create(&pool, &o), 0);
    fut_t *armed = parent_uses_timers();
    report_t r;
    int status = in_child(child_fresh_executors, NULL, &r);
    assert_child_ok(status, &r);
    assert_int_equal(r.n, 9);
    assert_int_equal(r.v[0], 0);
    assert_int_equal(r.v[1], 0);
    assert_int_equal(r.v[2], 42);
    assert_int_equal(r.v[3], 0);
    assert_int_equal(r.v[4], 0);
    assert_int_equal(r.v[5], 0);
    assert_int_equal(r.v[6], 0);
    assert_int_equal(r.v[7], FUT_FULFILLED);
    assert_int_equal(r.v[8], 0);
    fut_cancel(armed);
    fut_release(armed);
    assert_int_equal(fut_executor_destroy(pool), 0);
}

typedef struct inherited {
    fut_executor_t *pool, *loop;
} inherited_t;

static void child_inherited(report_t *r, void *arg)
{
    inherited_t *in = arg;
    fut_t *f = fut_async(in->pool, answer, NULL);
    put(r, fut_error(f));
    fut_release(f);
    f = fut_async(in->loop, answer, NULL);
    put(r, fut_error(f));
    fut_release(f);
    fut_t *d = fut_delay(in->loop, 1 * MS);
    put(r, fut_error(d));
    fut_release(d);
    put(r, fut_loop_run(in->loop, NULL));
    fut_stats_t st;
    put(r, fut_executor_stats(in->pool, &st));
    f = fut_fd_ready(in->loop, 0, FUT_READABLE);
    put(r, fut_error(f));
    fut_release(f);
    /* Memory comes back without joining the parent's workers. */
    long live = atomic_load(&failalloc_live);
    put(r, fut_executor_destroy(in->pool));
    put(r, fut_executor_destroy(in->loop));
    put(r, live - atomic_load(&failalloc_live));
}

static void test_parent_executors_refuse_work_in_child(void **state)
{
    (void)state;
    fut_set_allocator(failalloc_alloc, failalloc_free); /* counts blocks */
    inherited_t in;
    fut_pool_opts_t o = {.threads = 2};
    assert_int_equal(fut_pool_create(&in.pool, &o), 0);
    assert_int_equal(fut_loop_create(&in.loop, NULL), 0);
    fut_t *f = fut_async(in.pool, answer, NULL); /* workers have run */
    assert_int_equal(fut_wait(f, -1), 0);
    fut_release(f);
    report_t r;
    int status = in_child(child_inherited, &in, &r);
    assert_child_ok(status, &r);
    assert_int_equal(r.n, 9);
    assert_int_equal(r.v[0], FUT_ESHUTDOWN); /* was: hangs */
    assert_int_equal(r.v[1], FUT_ESHUTDOWN);
    assert_int_equal(r.v[2], FUT_ESHUTDOWN);
    assert_int_equal(r.v[3], FUT_ESHUTDOWN); /* fut_loop_run */
    assert_int_equal(r.v[4], FUT_ESHUTDOWN);
    assert_int_equal(r.v[5], FUT_ESHUTDOWN); /* fut_fd_ready */
    assert_int_equal(r.v[6], 0); /* was: hangs joining absent workers */
    assert_int_equal(r.v[7], 0);
    assert_true(r.v[8] >= 3); /* pool, its workers' deques, the loop */
    /* The parent's executors are untouched. */
    f = fut_async(in.pool, answer, NULL);
    assert_int_equal(fut_wait(f, -1), 0);
    assert_int_equal(fut_value_i64(f), 42);
    fut_release(f);
    assert_int_equal(fut_executor_destroy(in.pool), 0);
    assert_int_equal(fut_executor_destroy(in.loop), 0);
    fut_set_allocator(NULL, NULL);
}

/* ---- a loop with an io_uring ring, destroyed in the child ---------------- */

/* Entries of /proc/self/fd, less the directory's own fd. */
static long fds_now(void)
{
    long n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1;
}

/* Lines of /proc/self/maps that map an io_uring ring. */
static long uring_maps_now(void)
{
    FILE *fp = fopen("/proc/self/maps", "r");
    if (!fp)
        return -1;
    char line[512];
    long n = 0;
    while (fgets(line, sizeof line, fp))
        n += strstr(line, "io_uring") != NULL;
    fclose(fp);
    return n;
}

static void child_destroys_ring_loop(report_t *r, void *arg)
{
    fut_executor_t *loop = arg;
    put(r, uring_maps_now());
    put(r, fut_executor_destroy(loop));
    put(r, fds_now() - 1); /* less the report pipe's write end */
    put(r, uring_maps_now());
}

/* Was a leak: the child's destroy closed the epoll fd and the eventfd but
 * not the ring's fd, its eventfd or its mappings.  The parent's read in
 * the ring (an empty pipe's, which waits there) is untouched by it. */
static void test_child_destroy_closes_the_inherited_io_uring(void **state)
{
    (void)state;
    if (!fut__uring_supported())
        skip(); /* this kernel (or its seccomp policy) refuses io_uring */
    int p[2];
    assert_int_equal(pipe(p), 0);
    long before = fds_now();
    fut__uring_set_mode(2); /* FUT_IO_URING=all: the read goes to the ring */
    fut_executor_t *loop;
    assert_int_equal(fut_loop_create(&loop, NULL), 0);
    char buf[4] = {0}; /* the ring reads a pipe until all 4 bytes came */
    fut_t *rd = fut_pread(loop, p[0], buf, sizeof buf, 0);
    fut_t *d = fut_delay(loop, 1 * MS);
    assert_int_equal(fut_loop_run(loop, d), 0); /* the ring is armed */
    fut_release(d);
    assert_int_equal(fut_state(rd), FUT_PENDING);
    assert_true(fds_now() >= before + 4); /* epoll, eventfd, ring, its fd */
    report_t r;
    int status = in_child(child_destroys_ring_loop, loop, &r);
    assert_child_ok(status, &r);
    assert_int_equal(r.n, 4);
    assert_true(r.v[0] > 0); /* the child had the ring's mappings */
    assert_int_equal(r.v[1], 0);
    assert_int_equal(r.v[2], before); /* was before + 2 */
    assert_int_equal(r.v[3], 0);      /* was r.v[0] */
    /* The parent's read is still in the ring, and completes. */
    assert_int_equal(write(p[1], "ring", 4), 4);
    for (int i = 0; i < 10000 && fut_state(rd) == FUT_PENDING; i++) {
        d = fut_delay(loop, 1 * MS);
        assert_int_equal(fut_loop_run(loop, d), 0);
        fut_release(d);
    }
    assert_int_equal(fut_state(rd), FUT_FULFILLED);
    assert_int_equal(fut_value_i64(rd), 4);
    assert_memory_equal(buf, "ring", 4);
    fut_release(rd);
    assert_int_equal(fut_executor_destroy(loop), 0);
    fut__uring_set_mode(-1);
    close(p[0]);
    close(p[1]);
    assert_int_equal(fds_now(), before - 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_child_timers_fire_after_parent_used_them),
        cmocka_unit_test(test_child_fresh_executors_work),
        cmocka_unit_test(test_parent_executors_refuse_work_in_child),
        cmocka_unit_test(test_child_destroy_closes_the_inherited_io_uring),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
