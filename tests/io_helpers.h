/* io_helpers.h: what the socket operations' tests (tests/test_io.c,
 * tests/test_io_cancel.c, tests/test_io_reset.c) share: a loop, running it until a future settles
 * or for a while, socketpairs (small buffers too) and loopback TCP
 * sockets and pairs, reading N bytes whole.  cmocka
 * asserts: include after <cmocka.h>. */
#ifndef TESTS_IO_HELPERS_H
#define TESTS_IO_HELPERS_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fut.h>

#define MS (1000 * 1000ull)

static inline fut_executor_t *new_loop(void)
{
    fut_executor_t *l = NULL;
    assert_int_equal(fut_loop_create(&l, NULL), 0);
    return l;
}

/* Runs LOOP until F settles, or 10 s at most. */
static inline void run_until(fut_executor_t *loop, fut_t *f)
{
    fut_t *deadline = fut_delay(loop, 10000 * MS);
    fut_t *fs[2] = {fut_retain(f), deadline};
    fut_t *r = fut_race(fs, 2);
    assert_int_equal(fut_loop_run(loop, r), 0);
    fut_cancel(deadline);
    fut_release(r);
    assert_int_not_equal(fut_state(f), FUT_PENDING);
}

/* Runs LOOP for about NS. */
static inline void run_for(fut_executor_t *loop, uint64_t ns)
{
    fut_t *d = fut_delay(loop, ns);
    assert_int_equal(fut_loop_run(loop, d), 0);
    fut_release(d);
}

/* A socketpair, both ends non-blocking. */
static inline void pair(int sv[2])
{
    assert_int_equal(
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv),
        0);
}

/* A listening loopback TCP socket (non-blocking); *PORT its port. */
static inline int listener(int *port, int backlog)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(s >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t al = sizeof a;
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &al), 0);
    if (backlog)
        assert_int_equal(listen(s, backlog), 0);
    *port = ntohs(a.sin_port);
    return s;
}

static inline struct sockaddr_in loopback(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    return a;
}

static inline int tcp_socket(void)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(s >= 0);
    return s;
}

/* A connected loopback TCP pair through the loop: *C client, *S server. */
static inline void tcp_pair(fut_executor_t *loop, int *c, int *s)
{
    int port, l = listener(&port, 8);
    *c = tcp_socket();
    struct sockaddr_in a = loopback(port);
    fut_t *fc = fut_connect(loop, *c, (struct sockaddr *)&a, sizeof a);
    fut_t *fa = fut_accept(loop, l);
    run_until(loop, fc);
    run_until(loop, fa);
    assert_int_equal(fut_error(fc), 0);
    assert_int_equal(fut_error(fa), 0);
    *s = (int)fut_value_i64(fa);
    fut_release(fc), fut_release(fa);
    close(l);
}

/* Closes S so that its peer sees a reset (RST). */
static inline void reset_close(int s)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    assert_int_equal(setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    close(s);
}

/* Small socket buffers on a socketpair, so writes queue. */
static inline void small_buffers(int sv[2])
{
    int sz = 4096;
    assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz),
                     0);
    assert_int_equal(setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz),
                     0);
}

/* Reads N bytes from FD through fut_read into BUF (the loop runs meanwhile,
 * so pending writes progress). */
static inline void read_all(fut_executor_t *loop, int fd, unsigned char *buf,
                            size_t n)
{
    size_t got = 0;
    while (got < n) {
        fut_t *r = fut_read(loop, fd, buf + got, n - got);
        run_until(loop, r);
        assert_int_equal(fut_state(r), FUT_FULFILLED);
        assert_true(fut_value_i64(r) > 0);
        got += (size_t)fut_value_i64(r);
        fut_release(r);
    }
}

#endif
