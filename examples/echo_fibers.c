/* echo_fibers -- the TCP echo server of echo_server.c, written with fibers:
 * each connection is straight-line code that reads like blocking I/O.
 *
 *   echo_fibers [--port N]   serve on 127.0.0.1:N (0: any free port) forever
 *   echo_fibers --smoke      serve on a free port, run 4 client threads that
 *                            check their echoes, stop; exit 0 if all matched
 *
 * Every connection is a fiber on the loop.  Where blocking code would block
 * (waiting for bytes, for room to write, for the pool's transform) the
 * fiber awaits a future instead and the loop serves the other connections
 * meanwhile:
 *
 *   for (;;) {
 *       await readable;  n = read(...);
 *       await fut_async(pool, transform);     (the CPU-heavy part)
 *       write(...), awaiting writable when the socket is full;
 *   }
 *
 * A read(2) on a blocking socket, or the transform called directly, would
 * still freeze the whole loop: awaiting is what makes the difference. */
#include <fut.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static fut_executor_t *g_loop, *g_pool;

struct chunk {
    char buf[4096];
    size_t len;
};

/* Waits, inside a fiber, until FD is ready for EVENTS; 0 or an error
 * (FUT_ESHUTDOWN when the loop is destroyed). */
static int await_fd(int fd, unsigned events)
{
    fut_t *ready = fut_fd_ready(g_loop, fd, events);
    int rc = fut_await(ready, NULL);
    fut_release(ready);
    return rc;
}

/* On the pool: upper-case the chunk, about 2000 mixing rounds per byte
 * (the CPU-heavy part the loop must not do). */
static fut_result_t transform(void *arg)
{
    struct chunk *c = arg;
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < c->len; i++) {
        for (int k = 0; k < 2000; k++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
        }
        c->buf[i] = (char)toupper((unsigned char)c->buf[i]);
    }
    return fut_ok_i64(x);
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && (errno == EAGAIN || errno == EINTR)) {
            int rc = await_fd(fd, FUT_WRITABLE);
            if (rc)
                return rc;
            continue;
        }
        if (k < 0)
            return -errno;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* One connection, start to end. */
static fut_result_t serve(void *arg)
{
    int fd = (int)(intptr_t)arg;
    struct chunk c;
    for (;;) {
        ssize_t n = read(fd, c.buf, sizeof c.buf);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (await_fd(fd, FUT_READABLE))
                break;
            continue;
        }
        if (n <= 0)
            break; /* the peer closed, or an error */
        c.len = (size_t)n;
        fut_t *t = fut_async(g_pool, transform, &c);
        int rc = fut_await(t, NULL);
        fut_release(t);
        if (rc || write_all(fd, c.buf, c.len))
            break;
    }
    close(fd);
    return fut_ok(NULL);
}

/* The listening socket: accept, and give each connection a fiber. */
static fut_result_t accept_loop(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            fut_release(fut_fiber(g_loop, serve, (void *)(intptr_t)fd, NULL));
            continue;
        }
        if (await_fd(lfd, FUT_READABLE))
            return fut_ok(NULL); /* the loop is shutting down */
    }
}

#define ECHO_NAME "echo_fibers"
#include "echo_client.h"

int main(int argc, char **argv)
{
    bool smoke;
    int port;
    if (parse_args(argc, argv, &smoke, &port))
        return 2;
    fut_pool_opts_t po = {.threads = 2};
    if (fut_loop_create(&g_loop, NULL) || fut_pool_create(&g_pool, &po)) {
        fprintf(stderr, "echo_fibers: cannot create the executors\n");
        return 1;
    }
    int lfd = listen_on(smoke ? 0 : port);
    g_port = port_of(lfd);
    printf("echo_fibers: listening on 127.0.0.1:%d\n", g_port);
    fflush(stdout);
    fut_t *acceptor =
        fut_fiber(g_loop, accept_loop, (void *)(intptr_t)lfd, NULL);

    fut_t *until = NULL;
    pthread_t th[CLIENTS];
    if (smoke)
        until = clients_start(th);
    fut_loop_run(g_loop, until); /* forever without --smoke */
    if (smoke)
        clients_join(th);
    fut_release(until);
    /* The pool first: a transform still running writes into its fiber's
     * stack, which must outlive it.  Then fibers still waiting (the
     * acceptor, connections still open) get FUT_ESHUTDOWN from their
     * await, close their socket and end. */
    fut_executor_destroy(g_pool);
    fut_executor_destroy(g_loop);
    fut_release(acceptor);
    close(lfd);
    int bad = atomic_load(&g_bad);
    if (smoke)
        printf("echo_fibers: %d clients x %d messages, %d mismatched\n",
               CLIENTS, MESSAGES, bad);
    return bad == 0 ? 0 : 1;
}
