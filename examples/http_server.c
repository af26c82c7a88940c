/* http_server -- an HTTP/1.1 server made of I/O futures (<fut/io.h>).
 *
 *   http_server --port P --threads N [--root DIR]
 *       serve 127.0.0.1:P (0: a free port) with N loops, one per thread,
 *       each accepting on its own SO_REUSEPORT socket; prints
 *       "listening on 127.0.0.1:PORT" once it accepts; exits 0 on
 *       SIGTERM or SIGINT
 *   http_server --smoke
 *       the same on a free port, fetched by a plain blocking client
 *
 * Routes (GET, keep-alive, pipelined requests answered in order):
 *   /hello       13 bytes "Hello, world!" (text/plain)
 *   /sum?n=N     a CPU-bound sum computed on the pool, answered on the loop
 *   /<path>      the file DIR/<path>, read with fut_pread in 64 KiB chunks
 *   else         404
 *
 * Each connection is one chain of futures on its loop:
 *
 *   accept -> read -> parse -> [respond: at once | pool | pread...] -> write
 *              ^                                                        |
 *              +--------------------------------------------------------+
 *
 * A step that finishes at once (a write the socket took whole, a read that
 * found data) goes straight on; only a pending one is continued with
 * fut_finally.  Socket operations settle on their loop's thread
 * (<fut/io.h>), so their continuations run inline (fut_inline()) right
 * where the operation finished, with no hop through the loop's queue;
 * fut_pread (an offload thread may finish it) and the pool's work hop
 * back with the loop as the executor. */
#include <fut.h>

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
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define IN_CAP 8192
#define OUT_CAP 16384
#define CHUNK (64 * 1024)

static const char HELLO[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                            "Content-Length: 13\r\n\r\nHello, world!";
static const char NOT_FOUND[] = "HTTP/1.1 404 Not Found\r\nContent-Type: "
                                "text/plain\r\nContent-Length: 10\r\n\r\n"
                                "not found\n";

static fut_executor_t *g_pool;
static const char *g_root;

struct server; /* one per thread: a loop, its listener, its connections */

struct conn {
    struct conn *prev, *next; /* the server's list (loop thread) */
    struct server *srv;
    int fd;
    bool closing; /* answer what is buffered, then close */
    size_t inlen, outlen;
    char in[IN_CAP];
    char out[OUT_CAP];
    /* a file being sent */
    int ffd;
    off_t foff, fsize;
    char *fbuf;
    fut_t *fread; /* the pending chunk read, if any */
    /* a sum being computed */
    uint64_t sum_n, sum;
};

struct server {
    fut_executor_t *loop;
    int lfd;
    pthread_t thread;
    struct conn head; /* list sentinel */
};

static void drive(struct conn *c);

/* ---- connections -------------------------------------------------------- */

static void conn_close(struct conn *c)
{
    c->prev->next = c->next;
    c->next->prev = c->prev;
    if (c->fread) {
        /* At shutdown: a read still on an offload thread.  Once the cancel
         * returns (won or not), fbuf is ours again (<fut/io.h>). */
        fut_cancel(c->fread);
        fut_release(c->fread);
    }
    if (c->ffd >= 0)
        close(c->ffd);
    free(c->fbuf);
    close(c->fd);
    free(c);
}

/* Continues C with FN on its loop once F settles. */
static void then_loop(struct conn *c, fut_t *f, fut_then_fn fn)
{
    fut_release(fut_finally(f, c->srv->loop, fn, c));
}

/* Continues C with FN once socket operation F settles: at once on the
 * thread that settles it, the loop's (or, at shutdown, the thread that
 * destroys the loop, after every loop thread has stopped). */
static void then_io(struct conn *c, fut_t *f, fut_then_fn fn)
{
    fut_release(fut_finally(f, fut_inline(), fn, c));
}

static void append(struct conn *c, const char *s, size_t n)
{
    if (c->outlen + n <= OUT_CAP) {
        memcpy(c->out + c->outlen, s, n);
        c->outlen += n;
    }
}

/* ---- routes ------------------------------------------------------------- */

static fut_result_t file_chunk_read(void *arg, fut_t *src);

/* Sends the next chunk of C's file (or finishes it). */
static void file_next(struct conn *c)
{
    if (c->foff >= c->fsize) {
        close(c->ffd);
        c->ffd = -1;
        drive(c);
        return;
    }
    size_t n = c->fsize - c->foff < CHUNK ? (size_t)(c->fsize - c->foff)
                                          : CHUNK;
    c->fread = fut_pread(c->srv->loop, c->ffd, c->fbuf, n, c->foff);
    then_loop(c, fut_retain(c->fread), file_chunk_read);
}

static fut_result_t file_chunk_written(void *arg, fut_t *src)
{
    struct conn *c = arg;
    if (fut_state(src) != FUT_FULFILLED)
        conn_close(c);
    else
        file_next(c);
    return fut_ok(NULL);
}

static fut_result_t file_chunk_read(void *arg, fut_t *src)
{
    struct conn *c = arg;
    int64_t n = fut_value_i64(src);
    fut_release(c->fread);
    c->fread = NULL;
    if (fut_state(src) != FUT_FULFILLED || n <= 0) {
        conn_close(c); /* the file shrank or failed: cut the response */
        return fut_ok(NULL);
    }
    c->foff += n;
    then_io(c, fut_write(c->srv->loop, c->fd, c->fbuf, (size_t)n),
            file_chunk_written);
    return fut_ok(NULL);
}

static fut_result_t headers_written(void *arg, fut_t *src)
{
    struct conn *c = arg;
    if (fut_state(src) != FUT_FULFILLED) {
        conn_close(c);
        return fut_ok(NULL);
    }
    c->outlen = 0;
    file_next(c);
    return fut_ok(NULL);
}

/* GET of a file under the root: false if there is none (404). */
static bool start_file(struct conn *c, const char *path)
{
    char full[1024];
    if (!g_root || strstr(path, "..") ||
        snprintf(full, sizeof full, "%s%s", g_root, path) >= (int)sizeof full)
        return false;
    int fd = open(full, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return false;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        (!c->fbuf && !(c->fbuf = malloc(CHUNK)))) {
        close(fd);
        return false;
    }
    c->ffd = fd;
    c->foff = 0;
    c->fsize = st.st_size;
    char h[128];
    int n = snprintf(h, sizeof h,
                     "HTTP/1.1 200 OK\r\nContent-Type: "
                     "application/octet-stream\r\nContent-Length: %lld\r\n\r\n",
                     (long long)st.st_size);
    append(c, h, (size_t)n);
    then_io(c, fut_write(c->srv->loop, c->fd, c->out, c->outlen),
            headers_written);
    return true;
}

static fut_result_t sum_task(void *arg)
{
    struct conn *c = arg;
    uint64_t s = 0;
    for (uint64_t i = 1; i <= c->sum_n; i++)
        s += i * i % 7919;
    c->sum = s;
    return fut_ok(NULL);
}

static fut_result_t sum_done(void *arg, fut_t *src)
{
    struct conn *c = arg;
    if (fut_state(src) != FUT_FULFILLED) {
        conn_close(c);
        return fut_ok(NULL);
    }
    char body[32], h[128];
    int bn = snprintf(body, sizeof body, "%llu\n", (unsigned long long)c->sum);
    int hn = snprintf(h, sizeof h,
                      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                      "Content-Length: %d\r\n\r\n",
                      bn);
    append(c, h, (size_t)hn);
    append(c, body, (size_t)bn);
    drive(c);
    return fut_ok(NULL);
}

/* ---- parsing ------------------------------------------------------------ */

enum { R_NEED_MORE, R_DONE, R_ASYNC, R_BAD };

/* Answers the first complete request in C->in; R_ASYNC if a route took
 * over (it calls drive when done).  The request's bytes are consumed. */
static int handle_one(struct conn *c)
{
    char *end = memmem(c->in, c->inlen, "\r\n\r\n", 4);
    if (!end)
        return c->inlen == IN_CAP ? R_BAD : R_NEED_MORE;
    size_t used = (size_t)(end + 4 - c->in);
    *end = '\0';
    char method[8], path[512], version[16];
    if (sscanf(c->in, "%7s %511s %15s", method, path, version) != 3)
        return R_BAD;
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
        return R_BAD;
    if (strcmp(path, "/hello") == 0) {
        append(c, HELLO, sizeof HELLO - 1);
        return R_DONE;
    }
    if (strncmp(path, "/sum?n=", 7) == 0) {
        c->sum_n = strtoull(path + 7, NULL, 10);
        then_loop(c, fut_async(g_pool, sum_task, c), sum_done);
        return R_ASYNC;
    }
    if (start_file(c, path))
        return R_ASYNC;
    append(c, NOT_FOUND, sizeof NOT_FOUND - 1);
    return R_DONE;
}

/* ---- the connection's driver -------------------------------------------- */

static fut_result_t on_read(void *arg, fut_t *src);
static fut_result_t on_written(void *arg, fut_t *src);

/* Answers buffered requests, writes, reads, until a step must wait. */
static void drive(struct conn *c)
{
    fut_executor_t *loop = c->srv->loop;
    for (;;) {
        int r = R_DONE;
        while (!c->closing && r == R_DONE && c->outlen < OUT_CAP / 2)
            r = handle_one(c);
        if (r == R_ASYNC)
            return;
        if (r == R_BAD) {
            c->closing = true;
            c->inlen = 0;
        }
        if (c->outlen) {
            fut_t *w = fut_write(loop, c->fd, c->out, c->outlen);
            if (fut_state(w) == FUT_PENDING) {
                then_io(c, w, on_written);
                return;
            }
            bool ok = fut_state(w) == FUT_FULFILLED;
            fut_release(w);
            c->outlen = 0;
            if (!ok)
                break;
            if (r == R_DONE)
                continue; /* more requests may be buffered */
        }
        if (c->closing || r != R_NEED_MORE)
            break;
        fut_t *f = fut_read(loop, c->fd, c->in + c->inlen, IN_CAP - c->inlen);
        if (fut_state(f) == FUT_PENDING) {
            then_io(c, f, on_read);
            return;
        }
        int64_t n = fut_value_i64(f);
        fut_release(f);
        if (n <= 0)
            break; /* end of file or an error */
        c->inlen += (size_t)n;
    }
    conn_close(c);
}

static fut_result_t on_written(void *arg, fut_t *src)
{
    struct conn *c = arg;
    c->outlen = 0;
    if (fut_state(src) == FUT_FULFILLED)
        drive(c);
    else
        conn_close(c);
    return fut_ok(NULL);
}

static fut_result_t on_read(void *arg, fut_t *src)
{
    struct conn *c = arg;
    if (fut_state(src) == FUT_FULFILLED && fut_value_i64(src) > 0) {
        c->inlen += (size_t)fut_value_i64(src);
        drive(c);
    } else {
        conn_close(c);
    }
    return fut_ok(NULL);
}

/* ---- accepting ---------------------------------------------------------- */

static fut_result_t on_accept(void *arg, fut_t *src);

static void accept_next(struct server *s)
{
    fut_release(fut_finally(fut_accept(s->loop, s->lfd), s->loop, on_accept, s));
}

static fut_result_t on_accept(void *arg, fut_t *src)
{
    struct server *s = arg;
    if (fut_state(src) == FUT_FULFILLED) {
        struct conn *c = malloc(sizeof *c);
        int fd = (int)fut_value_i64(src);
        if (!c) {
            close(fd);
        } else {
            c->srv = s;
            c->fd = fd;
            c->closing = false;
            c->inlen = c->outlen = 0;
            c->ffd = -1;
            c->fbuf = NULL;
            c->fread = NULL;
            c->next = s->head.next;
            c->prev = &s->head;
            s->head.next->prev = c;
            s->head.next = c;
            drive(c);
        }
    } else if (fut_error(src) == FUT_ESHUTDOWN) {
        return fut_ok(NULL);
    }
    accept_next(s); /* also after EMFILE and the like: keep serving */
    return fut_ok(NULL);
}

/* ---- servers: one loop per thread --------------------------------------- */

static int listen_on(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(fd, 4096) != 0) {
        perror("http_server: listen");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static int port_of(int fd)
{
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &al);
    return ntohs(a.sin_port);
}

static void *server_main(void *arg)
{
    struct server *s = arg;
    accept_next(s);
    fut_loop_run(s->loop, NULL); /* until fut_loop_stop */
    return NULL;
}

/* Starts N servers on PORT (0: a free one); returns the port, or -1. */
static int start(struct server *srv, int n, int port)
{
    for (int i = 0; i < n; i++) {
        struct server *s = &srv[i];
        s->head.next = s->head.prev = &s->head;
        if ((s->lfd = listen_on(port)) < 0 ||
            fut_loop_create(&s->loop, NULL) != 0)
            return -1;
        port = port_of(s->lfd);
    }
    for (int i = 0; i < n; i++)
        if (pthread_create(&srv[i].thread, NULL, server_main, &srv[i]) != 0)
            return -1;
    return port;
}

/* Stops the servers, then the pool (a sum still running finishes), then
 * frees the connections whose next step never ran. */
static void stop(struct server *srv, int n)
{
    for (int i = 0; i < n; i++)
        fut_loop_stop(srv[i].loop);
    for (int i = 0; i < n; i++) {
        pthread_join(srv[i].thread, NULL);
        fut_executor_destroy(srv[i].loop); /* pending steps: FUT_ESHUTDOWN */
    }
    fut_executor_destroy(g_pool);
    g_pool = NULL;
    for (int i = 0; i < n; i++) {
        while (srv[i].head.next != &srv[i].head)
            conn_close(srv[i].head.next);
        close(srv[i].lfd);
    }
}

/* ---- --smoke: a plain blocking client ----------------------------------- */

/* Sends REQ on a new connection to PORT and reads until the peer closes
 * or the response holds EXPECT; true if it does. */
static bool fetch(int port, const char *req, const char *expect)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
        if (fd >= 0)
            close(fd);
        return false;
    }
    static char buf[1 << 20];
    size_t got = 0;
    bool ok = false;
    for (ssize_t k; !ok && got < sizeof buf - 1 &&
                    (k = read(fd, buf + got, sizeof buf - 1 - got)) > 0;) {
        got += (size_t)k;
        buf[got] = '\0';
        ok = strstr(buf, expect) != NULL;
    }
    close(fd);
    printf("  %-24.*s %s\n", (int)strcspn(req, "\r"), req,
           ok ? "ok" : "FAILED");
    return ok;
}

static int smoke(void)
{
    char dir[] = "/tmp/http_smoke_XXXXXX", file[64];
    if (!mkdtemp(dir))
        return 1;
    snprintf(file, sizeof file, "%s/page.txt", dir);
    FILE *fp = fopen(file, "w");
    if (!fp)
        return 1;
    for (int i = 0; i < 20000; i++)
        fprintf(fp, "line %d\n", i); /* about 200 KB: several chunks */
    fclose(fp);
    g_root = dir;
    struct server srv[2];
    int port = start(srv, 2, 0);
    bool ok = port > 0;
    printf("listening on 127.0.0.1:%d\n", port);
    ok = ok && fetch(port, "GET /hello HTTP/1.1\r\n\r\n", "\r\n\r\nHello, world!");
    ok = ok && fetch(port, "GET /nope HTTP/1.1\r\n\r\n", "404 Not Found");
    ok = ok && fetch(port,
                     "GET /hello HTTP/1.1\r\n\r\nGET /sum?n=10 HTTP/1.1\r\n"
                     "Connection: close\r\n\r\n",
                     "Hello, world!HTTP/1.1 200 OK");
    ok = ok && fetch(port, "GET /page.txt HTTP/1.0\r\n\r\n", "line 19999\n");
    stop(srv, 2);
    unlink(file);
    rmdir(dir);
    printf("smoke: %s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}

/* ---- main --------------------------------------------------------------- */

int main(int argc, char **argv)
{
    int port = 8080, threads = 1;
    bool smoke_mode = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--root") && i + 1 < argc)
            g_root = argv[++i];
        else if (!strcmp(argv[i], "--smoke"))
            smoke_mode = true;
        else {
            fprintf(stderr, "usage: http_server --port P --threads N "
                            "[--root DIR] | --smoke\n");
            return 2;
        }
    }
    if (threads < 1 || threads > 256 || port < 0 || port > 65535) {
        fprintf(stderr, "http_server: bad --threads or --port\n");
        return 2;
    }
    /* Signals: the main thread waits for them; the servers never see them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (fut_pool_create(&g_pool, NULL) != 0)
        return 1;
    int rc = 0;
    if (smoke_mode) {
        rc = smoke();
    } else {
        struct server *srv = calloc((size_t)threads, sizeof *srv);
        if (!srv || (port = start(srv, threads, port)) < 0)
            return 1;
        printf("listening on 127.0.0.1:%d\n", port);
        fflush(stdout);
        int sig;
        sigwait(&set, &sig);
        stop(srv, threads);
        free(srv);
    }
    if (g_pool)
        fut_executor_destroy(g_pool);
    return rc;
}
