/* echo_client.h -- what echo_server.c and echo_fibers.c share: the
 * listening socket, the arguments, and the --smoke test's clients (plain
 * blocking threads that send lines and check they come back upper-cased).
 * A header, included once by each program (every .c file in examples/ is a
 * program); the includer defines ECHO_NAME, the program's name, first. */
#ifndef ECHO_CLIENT_H
#define ECHO_CLIENT_H

#include <fut.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int listen_on(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        listen(fd, 128) < 0) {
        perror(ECHO_NAME ": listen");
        exit(1);
    }
    return fd;
}

static int port_of(int fd)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    return ntohs(a.sin_port);
}

/* ---- the smoke test's clients (plain blocking threads) ------------------ */

enum { CLIENTS = 4, MESSAGES = 100 };

static int g_port;
static atomic_int g_bad, g_left = CLIENTS;
static fut_promise_t *g_clients_done;

static bool read_exactly(int fd, char *buf, size_t n)
{
    for (size_t got = 0; got < n;) {
        ssize_t k = read(fd, buf + got, n - got);
        if (k <= 0)
            return false;
        got += (size_t)k;
    }
    return true;
}

static void *client(void *arg)
{
    int id = (int)(intptr_t)arg;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)g_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int bad = 0;
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        bad = MESSAGES;
    } else {
        for (int i = 0; i < MESSAGES; i++) {
            char msg[64], want[64], got[64];
            int n =
                snprintf(msg, sizeof msg, "hello %d from client %d\n", i, id);
            for (int k = 0; k <= n; k++)
                want[k] = (char)toupper((unsigned char)msg[k]);
            if (write(fd, msg, (size_t)n) != n ||
                !read_exactly(fd, got, (size_t)n) ||
                memcmp(got, want, (size_t)n) != 0)
                bad++;
        }
    }
    if (fd >= 0)
        close(fd);
    atomic_fetch_add(&g_bad, bad);
    if (atomic_fetch_sub(&g_left, 1) == 1)
        fut_promise_settle(g_clients_done, fut_ok(NULL)); /* wakes the loop */
    return NULL;
}

/* Reads the arguments into *SMOKE and *PORT; 0, or 2 after a usage line. */
static int parse_args(int argc, char **argv, bool *smoke, int *port)
{
    *smoke = false;
    *port = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--smoke"))
            *smoke = true;
        else if (!strcmp(argv[i], "--port") && i + 1 < argc)
            *port = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: " ECHO_NAME " [--port N] [--smoke]\n");
            return 2;
        }
    }
    return 0;
}

/* Starts the CLIENTS threads into TH; returns the future that fulfils when
 * the last one is done (run the loop until it). */
static fut_t *clients_start(pthread_t th[CLIENTS])
{
    fut_t *until = fut_promise_new(&g_clients_done);
    for (int i = 0; i < CLIENTS; i++)
        pthread_create(&th[i], NULL, client, (void *)(intptr_t)i);
    return until;
}

static void clients_join(pthread_t th[CLIENTS])
{
    for (int i = 0; i < CLIENTS; i++)
        pthread_join(th[i], NULL);
}

#endif
