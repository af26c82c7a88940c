/* FUT_ENOMEM from an I/O operation means that it did not happen (<fut/io.h>):
 * no byte read or written, no connection accepted, no connect begun, no
 * byte read into the buffer of a fut_pread.  Each test is an allocation
 * failure sweep (the method of tests/test_fault.c): a counting allocator
 * (tests/testexec.c) fails the k-th allocation of one run, for k = 1, 2,
 * ... until a run completes with no failure injected.  Every run ends with
 * the operation's result, or FUT_ENOMEM and the fd (or file) as it was
 * before, and gives back every block once its loop is destroyed.
 *
 * Socket operations are made on the loop thread (in a task), where they
 * try their system call at once: the path whose allocations came after
 * the call (a fast read's future, a partial write's heap copy) before the
 * executors kept spares (executors/loop/loop_io.c, SPARES). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <fut.h>

#include "io_helpers.h"
#include "testexec.h"

static long g_k; /* the sweep's current k, for messages */

static void sweep_begin(long k)
{
    g_k = k;
    atomic_store(&failalloc_calls, 0);
    atomic_store(&failalloc_live, 0);
    atomic_store(&failalloc_failed, 0);
    atomic_store(&failalloc_at, k);
    fut_set_allocator(failalloc_alloc, failalloc_free);
}

/* Ends one run; returns whether a failure was injected. */
static bool sweep_end(void)
{
    fut_set_allocator(NULL, NULL); /* returns this thread's cached blocks */
    /* The timer thread may still be letting go of a block it fired. */
    for (int i = 0; i < 1000 && atomic_load(&failalloc_live) != 0; i++) {
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (atomic_load(&failalloc_live) != 0)
        print_error("k=%ld: %ld blocks leaked\n", g_k,
                    atomic_load(&failalloc_live));
    assert_int_equal(atomic_load(&failalloc_live), 0);
    return atomic_load(&failalloc_failed) != 0;
}

/* Runs LOOP until F settles (1 ms rounds, 10 s at most: a round's delay
 * wakes the loop even where an injected failure lost a wake-up). */
static void drive(fut_executor_t *loop, fut_t *f)
{
    for (int i = 0; i < 10000 && fut_state(f) == FUT_PENDING; i++) {
        fut_t *d = fut_delay(loop, 1 * MS);
        assert_int_equal(fut_loop_run(loop, d), 0);
        fut_release(d);
    }
    assert_int_not_equal(fut_state(f), FUT_PENDING);
}

/* The outcome of an operation: its result, or FUT_ENOMEM.  Reports which
 * k gave anything else. */
static bool fulfilled_or_enomem(fut_t *f)
{
    if (fut_state(f) == FUT_FULFILLED)
        return true;
    if (fut_error(f) != FUT_ENOMEM)
        print_error("k=%ld: state %d error %d (%s)\n", g_k, fut_state(f),
                    fut_error(f), fut_strerror(fut_error(f)));
    assert_int_equal(fut_error(f), FUT_ENOMEM);
    return false;
}

/* One sweep: RUN(k) for k = 1, 2, ... until a run had no failure. */
static void sweep(bool (*run)(long k), const char *what)
{
    long k;
    for (k = 1; k < 10000; k++)
        if (run(k))
            break;
    print_message("%s sweep: %ld runs\n", what, k);
    assert_true(k > 3 && k < 10000);
}

/* ---- an operation made on the loop thread ------------------------------- */

struct call {
    int kind, fd;
    char *buf;
    size_t len;
    struct sockaddr_in addr;
    fut_t *f; /* the operation's future, once the task ran */
};

enum { C_READ, C_WRITE, C_ACCEPT, C_CONNECT };

static fut_result_t make_call(void *arg)
{
    struct call *c = arg;
    fut_executor_t *loop = fut_executor_current();
    switch (c->kind) {
    case C_READ:
        c->f = fut_read(loop, c->fd, c->buf, c->len);
        break;
    case C_WRITE:
        c->f = fut_write(loop, c->fd, c->buf, c->len);
        break;
    case C_ACCEPT:
        c->f = fut_accept(loop, c->fd);
        break;
    default:
        c->f = fut_connect(loop, c->fd, (struct sockaddr *)&c->addr,
                           sizeof c->addr);
        break;
    }
    return fut_ok_i64(0);
}

/* Runs C's operation in a task on LOOP and LOOP until it settles; false
 * if the task itself found no memory (the operation was never made). */
static bool call_on_loop(fut_executor_t *loop, struct call *c)
{
    c->f = NULL;
    fut_t *t = fut_async(loop, make_call, c);
    drive(loop, t);
    fut_release(t);
    if (!c->f)
        return false;
    drive(loop, c->f);
    return true;
}

/* A loop, or NULL if the injected failure hit its creation. */
static fut_executor_t *sweep_loop(void)
{
    fut_executor_t *loop = NULL;
    int rc = fut_loop_create(&loop, NULL);
    if (rc != 0)
        assert_int_equal(rc, FUT_ENOMEM);
    return loop;
}

/* ---- fut_read ----------------------------------------------------------- */

static bool read_run(long k)
{
    sweep_begin(k);
    fut_executor_t *loop = sweep_loop();
    if (!loop) {
        sweep_end();
        return false; /* a failure was injected: keep sweeping */
    }
    int sv[2];
    pair(sv);
    assert_int_equal(write(sv[1], "hello", 5), 5);
    char buf[16] = {0};
    struct call c = {.kind = C_READ, .fd = sv[0], .buf = buf, .len = 16};
    if (call_on_loop(loop, &c) && fulfilled_or_enomem(c.f)) {
        assert_int_equal(fut_value_i64(c.f), 5);
        assert_memory_equal(buf, "hello", 5);
    } else { /* nothing was read: the bytes are still in the socket */
        char again[16];
        assert_int_equal(recv(sv[0], again, sizeof again, MSG_DONTWAIT), 5);
        assert_memory_equal(again, "hello", 5);
    }
    fut_release(c.f);
    assert_int_equal(fut_executor_destroy(loop), 0);
    close(sv[0]), close(sv[1]);
    return !sweep_end();
}

/* Was: the bytes recv took were lost when the future made after it found
 * no memory. */
static void test_read_enomem_consumes_no_byte(void **state)
{
    (void)state;
    sweep(read_run, "fut_read");
}

/* ---- fut_write ---------------------------------------------------------- */

static bool write_run(long k)
{
    sweep_begin(k);
    fut_executor_t *loop = sweep_loop();
    if (!loop) {
        sweep_end();
        return false; /* a failure was injected: keep sweeping */
    }
    int sv[2];
    pair(sv);
    struct call c = {.kind = C_WRITE, .fd = sv[0], .buf = "hello", .len = 5};
    char got[16];
    if (call_on_loop(loop, &c) && fulfilled_or_enomem(c.f)) {
        assert_int_equal(fut_value_i64(c.f), 5);
        assert_int_equal(recv(sv[1], got, sizeof got, MSG_DONTWAIT), 5);
        assert_memory_equal(got, "hello", 5);
    } else { /* nothing was written */
        assert_int_equal(recv(sv[1], got, sizeof got, MSG_DONTWAIT), -1);
        assert_int_equal(errno, EAGAIN);
    }
    fut_release(c.f);
    assert_int_equal(fut_executor_destroy(loop), 0);
    close(sv[0]), close(sv[1]);
    return !sweep_end();
}

static void test_write_enomem_writes_no_byte(void **state)
{
    (void)state;
    sweep(write_run, "fut_write");
}

/* A write larger than the socket's buffers: its first call writes a part
 * and it must wait (its heap copy and future made after that call).  A
 * thread drains the peer meanwhile and counts what arrives. */
enum { BIG = 64 * 1024 };

struct drain {
    int fd;
    atomic_long got;
    atomic_int stop;
};

static void *drain_main(void *arg)
{
    struct drain *d = arg;
    char buf[16384];
    while (!atomic_load(&d->stop)) {
        ssize_t n = recv(d->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            atomic_fetch_add(&d->got, n);
        } else {
            struct timespec ts = {0, 100 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    ssize_t n; /* what is left in the socket */
    while ((n = recv(d->fd, buf, sizeof buf, MSG_DONTWAIT)) > 0)
        atomic_fetch_add(&d->got, n);
    return NULL;
}

static bool big_write_run(long k)
{
    static char big[BIG];
    sweep_begin(k);
    fut_executor_t *loop = sweep_loop();
    if (!loop) {
        sweep_end();
        return false; /* a failure was injected: keep sweeping */
    }
    int sv[2];
    pair(sv);
    small_buffers(sv);
    struct drain d = {.fd = sv[1]};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, drain_main, &d), 0);
    struct call c = {.kind = C_WRITE, .fd = sv[0], .buf = big, .len = BIG};
    bool ok = call_on_loop(loop, &c) && fulfilled_or_enomem(c.f);
    for (int i = 0; ok && i < 10000 && atomic_load(&d.got) < BIG; i++) {
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    atomic_store(&d.stop, 1);
    pthread_join(th, NULL);
    if (ok)
        assert_int_equal(fut_value_i64(c.f), BIG);
    if (!ok && atomic_load(&d.got) != 0)
        print_error("k=%ld: FUT_ENOMEM after %ld bytes went out\n", k,
                    atomic_load(&d.got));
    assert_int_equal(atomic_load(&d.got), ok ? BIG : 0);
    fut_release(c.f);
    assert_int_equal(fut_executor_destroy(loop), 0);
    close(sv[0]), close(sv[1]);
    return !sweep_end();
}

/* Was: a write whose first call wrote a part, then found no memory for
 * its heap copy or its future, rejected FUT_ENOMEM with that part sent. */
static void test_partial_write_enomem_writes_no_byte(void **state)
{
    (void)state;
    sweep(big_write_run, "partial fut_write");
}

/* ---- fut_accept, fut_connect -------------------------------------------- */

static bool accept_run(long k)
{
    sweep_begin(k);
    fut_executor_t *loop = sweep_loop();
    if (!loop) {
        sweep_end();
        return false; /* a failure was injected: keep sweeping */
    }
    int port, l = listener(&port, 8);
    int cl = tcp_socket();
    struct sockaddr_in a = loopback(port);
    int rc = connect(cl, (struct sockaddr *)&a, sizeof a);
    assert_true(rc == 0 || errno == EINPROGRESS); /* the backlog takes it */
    struct call c = {.kind = C_ACCEPT, .fd = l};
    int fd;
    if (call_on_loop(loop, &c) && fulfilled_or_enomem(c.f)) {
        fd = (int)fut_value_i64(c.f);
    } else { /* nothing accepted: the client is still in the backlog */
        for (int i = 0; i < 1000; i++) {
            if ((fd = accept4(l, NULL, NULL, SOCK_CLOEXEC)) >= 0 ||
                errno != EAGAIN)
                break;
            struct timespec ts = {0, 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    assert_true(fd >= 0);
    close(fd);
    fut_release(c.f);
    assert_int_equal(fut_executor_destroy(loop), 0);
    close(cl), close(l);
    return !sweep_end();
}

/* Was: the fd accept4 returned leaked, its connection lost, when the future
 * made after it found no memory. */
static void test_accept_enomem_accepts_no_connection(void **state)
{
    (void)state;
    sweep(accept_run, "fut_accept");
}

static bool connect_run(long k)
{
    sweep_begin(k);
    fut_executor_t *loop = sweep_loop();
    if (!loop) {
        sweep_end();
        return false; /* a failure was injected: keep sweeping */
    }
    int port, l = listener(&port, 8);
    int cl = tcp_socket();
    struct call c = {.kind = C_CONNECT, .fd = cl, .addr = loopback(port)};
    if (call_on_loop(loop, &c) && fulfilled_or_enomem(c.f)) {
        int fd = -1;
        for (int i = 0; i < 1000 && fd < 0; i++) {
            fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
            struct timespec ts = {0, 1000 * 1000};
            if (fd < 0)
                nanosleep(&ts, NULL);
        }
        assert_true(fd >= 0);
        close(fd);
    } else { /* no connect began: the listener has nobody, CL no peer */
        struct sockaddr_in peer;
        socklen_t pl = sizeof peer;
        assert_int_equal(getpeername(cl, (struct sockaddr *)&peer, &pl), -1);
        assert_int_equal(errno, ENOTCONN);
        assert_int_equal(accept4(l, NULL, NULL, SOCK_CLOEXEC), -1);
        assert_int_equal(errno, EAGAIN);
    }
    fut_release(c.f);
    assert_int_equal(fut_executor_destroy(loop), 0);
    close(cl), close(l);
    return !sweep_end();
}

/* Was: a connect that said EINPROGRESS, then found no memory for its heap
 * copy or its future, rejected FUT_ENOMEM with the handshake under way. */
static void test_connect_enomem_begins_no_connect(void **state)
{
    (void)state;
    sweep(connect_run, "fut_connect");
}

/* ---- fut_pread, fut_pwrite ---------------------------------------------- */

/* A temporary file holding "0123456789" (unlinked: closing it removes it). */
static int temp_file(void)
{
    char path[] = "/tmp/fut_io_fault_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(pwrite(fd, "0123456789", 10, 0), 10);
    return fd;
}

static bool pread_run(long k)
{
    int fd = temp_file();
    sweep_begin(k);
    fut_executor_t *loop = sweep_loop();
    if (!loop) {
        close(fd);
        sweep_end();
        return false;
    }
    char buf[4] = "XXXX";
    fut_t *f = fut_pread(loop, fd, buf, 4, 2); /* from the page cache */
    drive(loop, f);
    if (fulfilled_or_enomem(f)) {
        assert_int_equal(fut_value_i64(f), 4);
        assert_memory_equal(buf, "2345", 4);
    } else {
        assert_memory_equal(buf, "XXXX", 4); /* nothing read into it */
    }
    fut_release(f);
    assert_int_equal(fut_executor_destroy(loop), 0);
    close(fd);
    return !sweep_end();
}

/* Was: preadv2 filled the buffer, then the future made after it found no
 * memory: FUT_ENOMEM with the buffer written. */
static void test_pread_enomem_reads_nothing_into_the_buffer(void **state)
{
    (void)state;
    sweep(pread_run, "fut_pread");
}

static bool pwrite_run(long k)
{
    int fd = temp_file();
    sweep_begin(k);
    fut_executor_t *loop = sweep_loop();
    if (!loop) {
        close(fd);
        sweep_end();
        return false;
    }
    fut_t *f = fut_pwrite(loop, fd, "abcd", 4, 2);
    drive(loop, f);
    char now[10];
    assert_int_equal(pread(fd, now, 10, 0), 10);
    if (fulfilled_or_enomem(f)) {
        assert_int_equal(fut_value_i64(f), 4);
        assert_memory_equal(now, "01abcd6789", 10);
    } else {
        assert_memory_equal(now, "0123456789", 10); /* nothing written */
    }
    fut_release(f);
    assert_int_equal(fut_executor_destroy(loop), 0);
    close(fd);
    return !sweep_end();
}

/* Was: pwritev2 wrote, then the future made after it found no memory.
 * Where the file system has no RWF_NOWAIT for buffered writes (ext4 on
 * the machine this was written on: EOPNOTSUPP) every write goes to the
 * offload threads, whose future was made before already: there this
 * guards that path only, and passed before the fix too. */
static void test_pwrite_enomem_writes_nothing(void **state)
{
    (void)state;
    sweep(pwrite_run, "fut_pwrite");
}

/* After a failed test too: the next one starts with malloc again. */
static int reset(void **state)
{
    (void)state;
    fut_set_allocator(NULL, NULL);
    atomic_store(&failalloc_at, 0);
    return 0;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
#define T(name) cmocka_unit_test_teardown(name, reset)
    const struct CMUnitTest tests[] = {
        T(test_read_enomem_consumes_no_byte),
        T(test_write_enomem_writes_no_byte),
        T(test_partial_write_enomem_writes_no_byte),
        T(test_accept_enomem_accepts_no_connection),
        T(test_connect_enomem_begins_no_connect),
        T(test_pread_enomem_reads_nothing_into_the_buffer),
        T(test_pwrite_enomem_writes_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
