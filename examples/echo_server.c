/* echo_server -- a TCP echo server on loopback made of fut_fd_ready chains.
 *
 *   echo_server [--port N]   serve on 127.0.0.1:N (0: any free port) forever
 *   echo_server --smoke      serve on a free port, run 4 client threads that
 *                            check their echoes, stop; exit 0 if all matched
 *
 * The idea: the loop thread only waits and moves bytes.  Each chunk read is
 * handed to the pool for a CPU-heavy transform (upper-casing, made
 * deliberately expensive), and the continuation that writes the result hops
 * back to the loop:
 *
 *   fd_ready(READABLE) -> [loop] read -> [pool] transform -> [loop] write
 *        ^                                                        |
 *        +--------------------------------------------------------+
 *
 * Every step is a continuation placed explicitly; none blocks the loop. */
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

#define EOF_CODE (-ENOTCONN) /* a step's way to say "peer closed" */

static fut_executor_t *g_loop, *g_pool;

struct conn {
    int fd;
    size_t len, off;
    char buf[4096];
};

/* ---- one connection's steps --------------------------------------------- */

static fut_result_t on_readable(void *arg, fut_t *src);
static fut_result_t on_transformed(void *arg, fut_t *src);

/* Any failure (or EOF) of a step ends the connection.  Runs inline on the
 * thread that settled the step, so it also runs at shutdown. */
static fut_result_t on_conn_end(void *arg, fut_t *src)
{
    struct conn *c = arg;
    (void)src;
    close(c->fd);
    free(c);
    return fut_ok(NULL);
}

/* Runs FN(C) on the loop once F fulfils; ends the connection otherwise. */
static void step(struct conn *c, fut_t *f, fut_then_fn fn)
{
    f = fut_then(f, g_loop, fn, c);
    fut_release(fut_catch(f, fut_inline(), on_conn_end, c));
}

static void wait_readable(struct conn *c)
{
    step(c, fut_fd_ready(g_loop, c->fd, FUT_READABLE), on_readable);
}

/* On the pool: upper-case the chunk, spending about 2000 rounds of a
 * mixing function per byte (the CPU-heavy part the loop must not do). */
static fut_result_t transform(void *arg)
{
    struct conn *c = arg;
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

static fut_result_t on_readable(void *arg, fut_t *src)
{
    struct conn *c = arg;
    (void)src;
    ssize_t n = read(c->fd, c->buf, sizeof c->buf);
    if (n == 0)
        return fut_fail(EOF_CODE);
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            return fut_fail(-errno);
        wait_readable(c);
        return fut_ok(NULL);
    }
    c->len = (size_t)n;
    c->off = 0;
    step(c, fut_async(g_pool, transform, c), on_transformed); /* the hop */
    return fut_ok(NULL);
}

/* On the loop again: write what the pool made, waiting if the socket is
 * full, then read the next chunk. */
static fut_result_t on_transformed(void *arg, fut_t *src)
{
    struct conn *c = arg;
    (void)src;
    while (c->off < c->len) {
        ssize_t n = write(c->fd, c->buf + c->off, c->len - c->off);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            step(c, fut_fd_ready(g_loop, c->fd, FUT_WRITABLE), on_transformed);
            return fut_ok(NULL);
        }
        if (n < 0)
            return fut_fail(-errno);
        c->off += (size_t)n;
    }
    wait_readable(c);
    return fut_ok(NULL);
}

/* ---- accepting ---------------------------------------------------------- */

static fut_result_t on_acceptable(void *arg, fut_t *src);

static void wait_acceptable(int *lfd)
{
    fut_release(fut_then(fut_fd_ready(g_loop, *lfd, FUT_READABLE), g_loop,
                         on_acceptable, lfd));
}

static fut_result_t on_acceptable(void *arg, fut_t *src)
{
    int *lfd = arg;
    (void)src;
    for (;;) {
        int fd = accept4(*lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            break; /* EAGAIN: all taken */
        struct conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        wait_readable(c);
    }
    wait_acceptable(lfd);
    return fut_ok(NULL);
}

#define ECHO_NAME "echo_server"
#include "echo_client.h"

int main(int argc, char **argv)
{
    bool smoke;
    int port;
    if (parse_args(argc, argv, &smoke, &port))
        return 2;
    fut_pool_opts_t po = {.threads = 2};
    if (fut_loop_create(&g_loop, NULL) || fut_pool_create(&g_pool, &po)) {
        fprintf(stderr, "echo_server: cannot create the executors\n");
        return 1;
    }
    int lfd = listen_on(smoke ? 0 : port);
    g_port = port_of(lfd);
    printf("echo_server: listening on 127.0.0.1:%d\n", g_port);
    fflush(stdout);
    wait_acceptable(&lfd);

    fut_t *until = NULL;
    pthread_t th[CLIENTS];
    if (smoke)
        until = clients_start(th);
    fut_loop_run(g_loop, until); /* forever without --smoke */
    if (smoke)
        clients_join(th);
    fut_release(until);
    /* Pending waits (the accept, connections still open) settle
     * FUT_ESHUTDOWN; their clean-up steps run inline. */
    fut_executor_destroy(g_loop);
    fut_executor_destroy(g_pool);
    close(lfd);
    int bad = atomic_load(&g_bad);
    if (smoke)
        printf("echo_server: %d clients x %d messages, %d mismatched\n",
               CLIENTS, MESSAGES, bad);
    return bad == 0 ? 0 : 1;
}
