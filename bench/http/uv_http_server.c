/* uv_http_server -- the libuv twin of examples/http_server for bench/http:
 * the same shape (one uv_loop per thread, each accepting on its own
 * SO_REUSEPORT socket, keep-alive, pipelined requests answered in order)
 * and byte-identical answers for /hello and 404 (no files, no pool).
 *
 *   uv_http_server --port P --threads N
 *
 * Prints "listening on 127.0.0.1:PORT"; ends on SIGTERM or SIGINT. */
#include <uv.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define IN_CAP 8192
#define OUT_CAP 16384

static const char HELLO[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                            "Content-Length: 13\r\n\r\nHello, world!";
static const char NOT_FOUND[] = "HTTP/1.1 404 Not Found\r\nContent-Type: "
                                "text/plain\r\nContent-Length: 10\r\n\r\n"
                                "not found\n";

struct conn {
    uv_tcp_t tcp;
    bool closing;
    size_t inlen, outlen;
    char in[IN_CAP];
    char out[OUT_CAP];
};

struct wreq {
    uv_write_t req;
    struct conn *c;
    char data[];
};

static void on_close(uv_handle_t *h)
{
    free(h->data);
}

static void conn_close(struct conn *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_close);
}

/* The same parser as examples/http_server.c (handle_one), without routes
 * beyond /hello: 1 answered, 0 need more, -1 bad. */
static int handle_one(struct conn *c)
{
    char *end = memmem(c->in, c->inlen, "\r\n\r\n", 4);
    if (!end)
        return c->inlen == IN_CAP ? -1 : 0;
    size_t used = (size_t)(end + 4 - c->in);
    *end = '\0';
    char method[8], path[512], version[16];
    if (sscanf(c->in, "%7s %511s %15s", method, path, version) != 3)
        return -1;
    bool http10 = strcmp(version, "HTTP/1.0") == 0;
    const char *conn_hdr = strcasestr(c->in, "\r\nconnection:");
    if (conn_hdr) {
        conn_hdr += 13;
        while (*conn_hdr == ' ')
            conn_hdr++;
        if (strncasecmp(conn_hdr, "close", 5) == 0)
            c->closing = true;
        else if (strncasecmp(conn_hdr, "keep-alive", 10) == 0)
            http10 = false;
    }
    if (http10)
        c->closing = true;
    memmove(c->in, c->in + used, c->inlen - used);
    c->inlen -= used;
    if (strcmp(method, "GET") != 0)
        return -1;
    const char *r = strcmp(path, "/hello") == 0 ? HELLO : NOT_FOUND;
    size_t n = r == HELLO ? sizeof HELLO - 1 : sizeof NOT_FOUND - 1;
    memcpy(c->out + c->outlen, r, n);
    c->outlen += n;
    return 1;
}

static void on_written(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    if (status < 0 || w->c->closing)
        conn_close(w->c);
    free(w);
}

/* Writes C->out: uv_try_write first, uv_write for what is left. */
static void flush(struct conn *c)
{
    int n = uv_try_write((uv_stream_t *)&c->tcp,
                         &(uv_buf_t){c->out, c->outlen}, 1);
    if (n == UV_EAGAIN)
        n = 0;
    if (n < 0) {
        conn_close(c);
        return;
    }
    size_t rest = c->outlen - (size_t)n;
    if (rest) {
        struct wreq *w = malloc(sizeof *w + rest);
        memcpy(w->data, c->out + n, rest);
        w->c = c;
        uv_buf_t b = {w->data, rest};
        if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written)) {
            free(w);
            conn_close(c);
        }
    } else if (c->closing) {
        conn_close(c);
    }
    c->outlen = 0;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    struct conn *c = h->data;
    buf->base = c->in + c->inlen;
    buf->len = IN_CAP - c->inlen;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    struct conn *c = s->data;
    if (n < 0) {
        conn_close(c);
        return;
    }
    c->inlen += (size_t)n;
    int r;
    while (!c->closing && c->outlen < OUT_CAP / 2 && (r = handle_one(c)) > 0)
        ;
    if (r < 0)
        c->closing = true;
    if (c->outlen)
        flush(c);
    else if (c->closing)
        conn_close(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0)
        return;
    struct conn *c = malloc(sizeof *c);
    c->closing = false;
    c->inlen = c->outlen = 0;
    uv_tcp_init(server->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) == 0)
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    else
        conn_close(c);
}

static int listen_on(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("uv_http_server: bind");
        exit(1);
    }
    return fd;
}

struct server {
    uv_loop_t loop;
    uv_tcp_t tcp;
    pthread_t thread;
};

static void *server_main(void *arg)
{
    struct server *s = arg;
    uv_run(&s->loop, UV_RUN_DEFAULT);
    return NULL;
}

int main(int argc, char **argv)
{
    int port = 8080, threads = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port"))
            port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    struct server *srv = calloc((size_t)threads, sizeof *srv);
    for (int i = 0; i < threads; i++) {
        int fd = listen_on(port);
        struct sockaddr_in a;
        socklen_t al = sizeof a;
        getsockname(fd, (struct sockaddr *)&a, &al);
        port = ntohs(a.sin_port);
        uv_loop_init(&srv[i].loop);
        uv_tcp_init(&srv[i].loop, &srv[i].tcp);
        if (uv_tcp_open(&srv[i].tcp, fd) ||
            uv_listen((uv_stream_t *)&srv[i].tcp, 4096, on_connection)) {
            fprintf(stderr, "uv_http_server: listen failed\n");
            return 1;
        }
    }
    for (int i = 0; i < threads; i++)
        pthread_create(&srv[i].thread, NULL, server_main, &srv[i]);
    printf("listening on 127.0.0.1:%d\n", port);
    fflush(stdout);
    int sig;
    sigwait(&set, &sig);
    _exit(0); /* a benchmark peer: no clean-up needed */
}
