/* The socket operations (<fut/io.h>): fut_read, fut_write, fut_accept and
 * fut_connect on socketpairs, pipes and loopback TCP: partial reads and
 * writes, end of file, errors, queued order, bad input, shutdown.  Their
 * cancellation is tests/test_io_cancel.c's. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fut.h>

#include "io_helpers.h"

/* ---- reads -------------------------------------------------------------- */

static void test_read_gets_what_is_there_at_once(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int sv[2];
    pair(sv);
    assert_int_equal(write(sv[1], "hello", 5), 5);
    char buf[16];
    fut_t *r = fut_read(loop, sv[0], buf, sizeof buf);
    run_until(loop, r);
    assert_int_equal(fut_value_i64(r), 5);
    assert_memory_equal(buf, "hello", 5);
    fut_release(r);
    assert_int_equal(fut_executor_destroy(loop), 0);
    close(sv[0]), close(sv[1]);
}

static void test_read_waits_for_data(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int sv[2];
    pair(sv);
    char buf[16];
    fut_t *r = fut_read(loop, sv[0], buf, sizeof buf);
    run_for(loop, 5 * MS);
    assert_int_equal(fut_state(r), FUT_PENDING);
    assert_int_equal(write(sv[1], "abc", 3), 3);
    run_until(loop, r);
    assert_int_equal(fut_value_i64(r), 3);
    assert_memory_equal(buf, "abc", 3);
    fut_stats_t st; /* the wait was the loop's readiness: counted */
    assert_int_equal(fut_executor_stats(loop, &st), 0);
    assert_true(st.fd_events >= 1);
    fut_release(r);
    assert_int_equal(fut_executor_destroy(loop), 0);
    close(sv[0]), close(sv[1]);
}

static void test_read_partial_gets_at_most_len(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int sv[2];
    pair(sv);
    assert_int_equal(write(sv[1], "0123456789", 10), 10);
    char buf[4];
    fut_t *r = fut_read(loop, sv[0], buf, sizeof buf);
    run_until(loop, r);
    assert_int_equal(fut_value_i64(r), 4);
    assert_memory_equal(buf, "0123", 4);
    fut_release(r);
    char rest[16];
    r = fut_read(loop, sv[0], rest, sizeof rest);
    run_until(loop, r);
    assert_int_equal(fut_value_i64(r), 6);
    assert_memory_equal(rest, "456789", 6);
    fut_release(r);
    assert_int_equal(fut_executor_destroy(loop), 0);
    close(sv[0]), close(sv[1]);
}

static void test_read_at_eof_is_zero(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int sv[2];
    pair(sv);
    char buf[8];
    fut_t *r = fut_read(loop, sv[0], buf, sizeof buf); /* waits */
    run_for(loop, 2 * MS);
    close(sv[1]);
    run_until(loop, r);
    assert_int_equal(fut_state(r), FUT_FULFILLED);
    assert_int_equal(fut_value_i64(r), 0);
    fut_release(r);
    r = fut_read(loop, sv[0], buf, sizeof buf); /* at once */
    run_until(loop, r);
    assert_int_equal(fut_value_i64(r), 0);
    fut_release(r);
    assert_int_equal(fut_executor_destroy(loop), 0);
    close(sv[0]);
}

static void test_read_pipe_works_and_eof_after_writer_closes(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int p[2];
    assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    char buf[8];
    fut_t *r = fut_read(loop, p[0], buf, sizeof buf);
    run_for(loop, 2 * MS);
    assert_int_equal(write(p[1], "xy", 2), 2);
    run_until(loop, r);
    assert_int_equal(fut_value_i64(r), 2);
    fut_release(r);
    r = fut_read(loop, p[0], buf, sizeof buf);
    run_for(loop, 2 * MS);
    close(p[1]); /* a hang-up: read says end of file, not an error */
    run_until(loop, r);
    assert_int_equal(fut_state(r), FUT_FULFILLED);
    assert_int_equal(fut_value_i64(r), 0);
    fut_release(r);
    assert_int_equal(fut_executor_destroy(loop), 0);
    close(p[0]);
}

static void test_read_reset_by_peer_is_econnreset(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int c, s;
    tcp_pair(loop, &c, &s);
    char buf[8];
    fut_t *r = fut_read(loop, c, buf, sizeof buf); /* waiting when it comes */
    run_for(loop, 2 * MS);
    reset_close(s);
    run_until(loop, r);
    assert_int_equal(fut_error(r), -ECONNRESET);
    fut_release(r);
    close(c);
    /* And found at once by the first attempt. */
    tcp_pair(loop, &c, &s);
    reset_close(s);
    r = fut_read(loop, c, buf, sizeof buf);
    run_until(loop, r);
    assert_int_equal(fut_error(r), -ECONNRESET);
    fut_release(r);
    close(c);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

/* ---- writes ------------------------------------------------------------- */

#define BIG (16u << 20)

static void test_write_16mib_through_a_small_buffer_arrives_whole(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int sv[2];
    pair(sv);
    small_buffers(sv);
    unsigned char *out = malloc(BIG), *in = malloc(BIG);
    assert_non_null(out);
    assert_non_null(in);
    for (size_t i = 0; i < BIG; i++)
        out[i] = (unsigned char)(i * 2654435761u >> 13);
    fut_t *w = fut_write(loop, sv[1], out, BIG);
    assert_int_equal(fut_state(w), FUT_PENDING); /* it cannot fit at once */
    read_all(loop, sv[0], in, BIG);
    run_until(loop, w);
    assert_int_equal(fut_value_i64(w), BIG);
    assert_memory_equal(in, out, BIG);
    fut_release(w);
    free(out), free(in);
    assert_int_equal(fut_executor_destroy(loop), 0);
    close(sv[0]), close(sv[1]);
}

#define NWRITES 200
#define WLEN 1000

static void test_queued_writes_go_out_in_order(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int sv[2];
    pair(sv);
    small_buffers(sv);
    static unsigned char out[NWRITES][WLEN], in[NWRITES * WLEN];
    fut_t *w[NWRITES];
    for (int i = 0; i < NWRITES; i++) {
        memset(out[i], i, WLEN);
        w[i] = fut_write(loop, sv[1], out[i], WLEN);
    }
    read_all(loop, sv[0], in, sizeof in);
    for (int i = 0; i < NWRITES; i++) {
        run_until(loop, w[i]);
        assert_int_equal(fut_value_i64(w[i]), WLEN);
        fut_release(w[i]);
        for (int k = 0; k < WLEN; k++)
            assert_int_equal(in[i * WLEN + k], (unsigned char)i);
    }
    assert_int_equal(fut_executor_destroy(loop), 0);
    close(sv[0]), close(sv[1]);
}

static void test_write_to_a_closed_peer_is_epipe(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int sv[2];
    pair(sv);
    close(sv[0]);
    fut_t *w = fut_write(loop, sv[1], "x", 1); /* no SIGPIPE: MSG_NOSIGNAL */
    run_until(loop, w);
    assert_int_equal(fut_error(w), -EPIPE);
    fut_release(w);
    assert_int_equal(fut_executor_destroy(loop), 0);
    close(sv[1]);
}

static void test_write_pipe_reader_gone_is_epipe(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int p[2];
    assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    close(p[0]);
    signal(SIGPIPE, SIG_IGN); /* write(2) on a pipe raises it (header) */
    fut_t *w = fut_write(loop, p[1], "x", 1);
    run_until(loop, w);
    assert_int_equal(fut_error(w), -EPIPE);
    fut_release(w);
    signal(SIGPIPE, SIG_DFL);
    assert_int_equal(fut_executor_destroy(loop), 0);
    close(p[1]);
}

static void test_write_len_zero_fulfils_zero(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int sv[2];
    pair(sv);
    fut_t *w = fut_write(loop, sv[1], NULL, 0);
    run_until(loop, w);
    assert_int_equal(fut_state(w), FUT_FULFILLED);
    assert_int_equal(fut_value_i64(w), 0);
    fut_release(w);
    assert_int_equal(fut_executor_destroy(loop), 0);
    close(sv[0]), close(sv[1]);
}

/* ---- accept and connect ------------------------------------------------- */

static void test_connect_and_accept_make_a_connection(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int c, s;
    tcp_pair(loop, &c, &s);
    int fl = fcntl(s, F_GETFL), fd = fcntl(s, F_GETFD);
    assert_true(fl & O_NONBLOCK);
    assert_true(fd & FD_CLOEXEC);
    fut_t *w = fut_write(loop, c, "ping", 4);
    char buf[8];
    fut_t *r = fut_read(loop, s, buf, sizeof buf);
    run_until(loop, r);
    assert_int_equal(fut_value_i64(r), 4);
    assert_memory_equal(buf, "ping", 4);
    fut_release(w), fut_release(r);
    close(c), close(s);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

static void test_connect_refused_is_econnrefused(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int port, l = listener(&port, 0); /* bound, not listening */
    int c = tcp_socket();
    struct sockaddr_in a = loopback(port);
    fut_t *f = fut_connect(loop, c, (struct sockaddr *)&a, sizeof a);
    run_until(loop, f);
    assert_int_equal(fut_error(f), -ECONNREFUSED);
    fut_release(f);
    close(c), close(l);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

#define STORM 1000

static void test_accept_storm_of_1000_clients(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int port, l = listener(&port, STORM);
    static int cs[STORM];
    static fut_t *fc[STORM], *fa[STORM];
    struct sockaddr_in a = loopback(port);
    for (int i = 0; i < STORM; i++) {
        fa[i] = fut_accept(loop, l); /* queued in order on l */
        cs[i] = tcp_socket();
        fc[i] = fut_connect(loop, cs[i], (struct sockaddr *)&a, sizeof a);
    }
    fut_t *all = fut_all(fa, STORM);
    run_until(loop, all);
    int accepted = 0;
    for (int i = 0; i < STORM; i++) {
        fut_t *x = fut_input(all, i);
        assert_int_equal(fut_error(x), 0);
        assert_true(fut_value_i64(x) >= 0);
        close((int)fut_value_i64(x));
        accepted++;
    }
    assert_int_equal(accepted, STORM);
    fut_release(all);
    for (int i = 0; i < STORM; i++) {
        run_until(loop, fc[i]);
        assert_int_equal(fut_error(fc[i]), 0);
        fut_release(fc[i]);
        close(cs[i]);
    }
    close(l);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

static void test_accept_on_a_socket_not_listening_is_einval(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int port, l = listener(&port, 0);
    fut_t *f = fut_accept(loop, l);
    run_until(loop, f);
    assert_int_equal(fut_error(f), -EINVAL);
    fut_release(f);
    int p[2];
    assert_int_equal(pipe2(p, O_NONBLOCK), 0);
    f = fut_accept(loop, p[0]);
    run_until(loop, f);
    assert_int_equal(fut_error(f), -ENOTSOCK);
    fut_release(f);
    close(p[0]), close(p[1]), close(l);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

/* ---- threads, shutdown, bad input --------------------------------------- */

struct from_thread {
    fut_executor_t *loop;
    int fd;
    char *buf;
    fut_t *_Atomic r;
};

static void *read_from_thread(void *arg)
{
    struct from_thread *t = arg;
    atomic_store(&t->r, fut_read(t->loop, t->fd, t->buf, 8));
    return NULL;
}

static void test_read_made_on_another_thread_runs_on_the_loop(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int sv[2];
    pair(sv);
    char buf[8];
    struct from_thread t = {.loop = loop, .fd = sv[0], .buf = buf};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, read_from_thread, &t), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    fut_t *r = atomic_load(&t.r);
    assert_int_equal(fut_state(r), FUT_PENDING);
    assert_int_equal(write(sv[1], "thr", 3), 3);
    run_until(loop, r);
    assert_int_equal(fut_value_i64(r), 3);
    assert_memory_equal(buf, "thr", 3);
    fut_release(r);
    assert_int_equal(fut_executor_destroy(loop), 0);
    close(sv[0]), close(sv[1]);
}

static void test_pending_operations_at_destroy_are_eshutdown(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int sv[2], wv[2];
    pair(sv);
    pair(wv);
    small_buffers(wv);
    static char big[1 << 20];
    char buf[8];
    fut_t *r1 = fut_read(loop, sv[0], buf, sizeof buf);
    fut_t *r2 = fut_read(loop, sv[0], buf, sizeof buf); /* queued */
    fut_t *w = fut_write(loop, wv[1], big, sizeof big);
    run_for(loop, 2 * MS);
    struct from_thread t = {.loop = loop, .fd = sv[0], .buf = buf};
    pthread_t th; /* a remote one whose start never ran */
    assert_int_equal(pthread_create(&th, NULL, read_from_thread, &t), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(fut_executor_destroy(loop), 0);
    fut_t *all[] = {r1, r2, w, atomic_load(&t.r)};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(fut_error(all[i]), FUT_ESHUTDOWN);
        fut_release(all[i]);
    }
    /* The fds are the caller's, still open. */
    assert_int_equal(fcntl(sv[0], F_GETFD) >= 0, 1);
    close(sv[0]), close(sv[1]), close(wv[0]), close(wv[1]);
}

static void test_bad_arguments_are_einval(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop(), *pool;
    assert_int_equal(fut_pool_create(&pool, NULL), 0);
    char buf[4];
    struct sockaddr_in a = loopback(1);
    fut_t *fs[] = {
        fut_read(NULL, 0, buf, 4),
        fut_read(pool, 0, buf, 4), /* not a loop */
        fut_read(fut_inline(), 0, buf, 4),
        fut_read(loop, -1, buf, 4),
        fut_read(loop, 0, NULL, 4),
        fut_read(loop, 0, buf, 0), /* 0 would read as end of file */
        fut_write(loop, -1, buf, 4),
        fut_write(loop, 0, NULL, 4),
        fut_accept(loop, -1),
        fut_accept(pool, 0),
        fut_connect(loop, -1, (struct sockaddr *)&a, sizeof a),
        fut_connect(loop, 0, NULL, sizeof a),
        fut_connect(loop, 0, (struct sockaddr *)&a, 0),
        fut_connect(loop, 0, (struct sockaddr *)&a, 4096),
    };
    for (size_t i = 0; i < sizeof fs / sizeof *fs; i++) {
        assert_int_equal(fut_error(fs[i]), FUT_EINVAL);
        fut_release(fs[i]);
    }
    assert_int_equal(fut_executor_destroy(pool), 0);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

static void test_closed_fd_is_ebadf(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int sv[2];
    pair(sv);
    close(sv[0]), close(sv[1]);
    char buf[4];
    fut_t *fs[] = {fut_read(loop, sv[0], buf, 4), fut_write(loop, sv[1], "x", 1),
                   fut_accept(loop, sv[0])};
    for (size_t i = 0; i < 3; i++) {
        run_until(loop, fs[i]);
        assert_int_equal(fut_error(fs[i]), -EBADF);
        fut_release(fs[i]);
    }
    assert_int_equal(fut_executor_destroy(loop), 0);
}

static void test_fd_closed_while_pending_ends_with_a_cancel(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int sv[2];
    pair(sv);
    char buf[4];
    fut_t *r = fut_read(loop, sv[0], buf, sizeof buf);
    run_for(loop, 2 * MS);
    close(sv[0]); /* the caller's error: the read never settles */
    close(sv[1]);
    run_for(loop, 5 * MS);
    assert_int_equal(fut_state(r), FUT_PENDING);
    assert_int_equal(fut_cancel(r), 0); /* ends it; nothing leaks */
    run_for(loop, 2 * MS);
    fut_release(r);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

/* ---- the stall detector -------------------------------------------------- */

static atomic_int g_stalls;

static void count_stalls(void *ud, const fut_log_event_t *ev)
{
    (void)ud;
    if (ev->kind == FUT_LOG_STALL)
        atomic_fetch_add(&g_stalls, 1);
}

struct late_writer {
    pid_t loop_tid; /* the thread that runs the loop */
    int rfd, wfd;
};

/* True while thread TID sits in read(2) on FD (/proc's syscall file: the
 * call's number, then its arguments in hex). */
static bool in_read_on(pid_t tid, int fd)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
    FILE *fp = fopen(path, "r");
    if (!fp)
        return false;
    long nr = -1;
    unsigned long a0 = 0;
    bool yes = fgets(line, sizeof line, fp) &&
               sscanf(line, "%ld %lx", &nr, &a0) == 2 && nr == SYS_read &&
               a0 == (unsigned long)fd;
    fclose(fp);
    return yes;
}

/* Writes once the loop thread is blocked in read(2), 50 ms later: the
 * callback that made the read then ran at least that long. */
static void *write_when_blocked(void *arg)
{
    struct late_writer *w = arg;
    struct timespec ms = {0, 1000 * 1000}, fifty = {0, 50 * 1000 * 1000};
    for (int i = 0; i < 10000 && !in_read_on(w->loop_tid, w->rfd); i++)
        nanosleep(&ms, NULL);
    nanosleep(&fifty, NULL);
    ssize_t n = write(w->wfd, "late", 4);
    (void)n; /* the main thread checks what the read got */
    return NULL;
}

/* A blocking pipe blocks the loop thread in read(2) (<fut/io.h>): the
 * stall detector times that call and reports it. */
static void test_read_on_a_blocking_pipe_is_reported_as_a_stall(void **state)
{
    (void)state;
    atomic_store(&g_stalls, 0);
    fut_loop_opts_t o = {.stall_ns = 20 * MS, .log = count_stalls};
    fut_executor_t *loop;
    assert_int_equal(fut_loop_create(&loop, &o), 0);
    int p[2];
    assert_int_equal(pipe(p), 0); /* blocking, as the header warns */
    struct late_writer w = {.loop_tid = gettid(), .rfd = p[0], .wfd = p[1]};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, write_when_blocked, &w), 0);
    char buf[8];
    fut_t *r = fut_read(loop, p[0], buf, sizeof buf); /* runs in a task */
    run_until(loop, r);
    pthread_join(th, NULL);
    assert_int_equal(fut_value_i64(r), 4);
    assert_memory_equal(buf, "late", 4);
    assert_true(atomic_load(&g_stalls) >= 1);
    fut_stats_t st;
    assert_int_equal(fut_executor_stats(loop, &st), 0);
    assert_true(st.stalls >= 1);
    assert_true(st.longest_callback_ns >= 50 * MS);
    fut_release(r);
    assert_int_equal(fut_executor_destroy(loop), 0);
    close(p[0]), close(p[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_gets_what_is_there_at_once),
        cmocka_unit_test(test_read_waits_for_data),
        cmocka_unit_test(test_read_partial_gets_at_most_len),
        cmocka_unit_test(test_read_at_eof_is_zero),
        cmocka_unit_test(test_read_pipe_works_and_eof_after_writer_closes),
        cmocka_unit_test(test_read_reset_by_peer_is_econnreset),
        cmocka_unit_test(test_write_16mib_through_a_small_buffer_arrives_whole),
        cmocka_unit_test(test_queued_writes_go_out_in_order),
        cmocka_unit_test(test_write_to_a_closed_peer_is_epipe),
        cmocka_unit_test(test_write_pipe_reader_gone_is_epipe),
        cmocka_unit_test(test_write_len_zero_fulfils_zero),
        cmocka_unit_test(test_connect_and_accept_make_a_connection),
        cmocka_unit_test(test_connect_refused_is_econnrefused),
        cmocka_unit_test(test_accept_storm_of_1000_clients),
        cmocka_unit_test(test_accept_on_a_socket_not_listening_is_einval),
        cmocka_unit_test(test_read_made_on_another_thread_runs_on_the_loop),
        cmocka_unit_test(test_pending_operations_at_destroy_are_eshutdown),
        cmocka_unit_test(test_bad_arguments_are_einval),
        cmocka_unit_test(test_closed_fd_is_ebadf),
        cmocka_unit_test(test_fd_closed_while_pending_ends_with_a_cancel),
        cmocka_unit_test(test_read_on_a_blocking_pipe_is_reported_as_a_stall),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
