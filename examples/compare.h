/* compare.h -- what fut-compare (compare.c) and hedged.c share: a loopback
 * service in a child process, the client side of its protocol (blocking,
 * and non-blocking on the loop through fut_fd_ready), hashing, and clocks.
 * A header of static inline functions, because every examples/NAME.c is its
 * own program.
 *
 * THE SERVICE
 *
 * svc_start forks a child (call it before any thread exists: fork copies
 * only the calling thread, and a lock held by another one would stay held
 * in the child forever).  The child runs one epoll loop over a listening
 * socket, its connections and one timerfd per connection: a request arms
 * its connection's timer for the latency, and the reply goes out when the
 * timer fires.  So hundreds of requests wait at once without a thread each.
 * The child exits when the parent closes the control pipe (svc_stop) or
 * dies (EOF on the pipe, and PR_SET_PDEATHSIG as a second line).
 *
 * Wire format, little-endian, one request at a time per connection:
 *   request  16 bytes: u64 key, u32 latency_us (0: the service's own), u32
 * magic reply    16 bytes: u64 key, u64 svc_answer(key) The answer is a pure
 * function of the key, so results can be checked. */
#ifndef COMPARE_H
#define COMPARE_H

#include <fut.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SVC_MAGIC 0x51545546u /* "FUTQ" */
#define SVC_MSG 16

/* ---- hashing and numbers ------------------------------------------------ */

/* splitmix64's finaliser: a good 64-bit mix. */
static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static inline uint64_t svc_answer(uint64_t key)
{
    return mix64(key ^ 0x5eedf00dull);
}

/* FNV-1a 64 over N bytes, continuing from H (start with FNV_INIT). */
#define FNV_INIT 0xcbf29ce484222325ull
static inline uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static inline void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

/* Lets the process open as many sockets as the hard limit allows. */
static inline void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max > 65536 ? 65536 : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* ---- the service (child process) ---------------------------------------- */

typedef struct svc_opts {
    uint32_t latency_us;    /* every reply waits this long ... */
    uint32_t jitter_us;     /* ... plus a uniform 0..jitter_us ... */
    uint32_t slow_permille; /* ... and this often, slow_us instead */
    uint32_t slow_us;
    uint64_t seed;
} svc_opts_t;

typedef struct svc {
    pid_t pid;
    int ctl; /* write end of the control pipe; closing it stops the child */
    uint16_t port; /* 127.0.0.1:port */
} svc_t;

struct svc_conn {
    int sock, tfd;
    size_t got;
    unsigned char buf[SVC_MSG];
};

static inline uint32_t svc_latency(const svc_opts_t *o, uint64_t *rng)
{
    *rng = mix64(*rng + 0x9e3779b97f4a7c15ull);
    if (o->slow_permille && *rng % 1000 < o->slow_permille)
        return o->slow_us;
    return o->latency_us +
           (o->jitter_us ? (uint32_t)((*rng >> 20) % (o->jitter_us + 1)) : 0);
}

static inline void svc_close_conn(int ep, struct svc_conn **byfd,
                                  struct svc_conn *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->sock, NULL);
    epoll_ctl(ep, EPOLL_CTL_DEL, c->tfd, NULL);
    byfd[c->sock] = byfd[c->tfd] = NULL;
    close(c->sock);
    close(c->tfd);
    free(c);
}

/* Reads what C's socket holds; arms the timer once a request is complete. */
static inline void svc_readable(int ep, struct svc_conn **byfd,
                                struct svc_conn *c, const svc_opts_t *o,
                                uint64_t *rng)
{
    for (;;) {
        ssize_t n = read(c->sock, c->buf + c->got, SVC_MSG - c->got);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            svc_close_conn(ep, byfd, c);
            return;
        }
        if (n < 0) {
            if (errno == EAGAIN)
                return;
            continue;
        }
        c->got += (size_t)n;
        if (c->got < SVC_MSG)
            continue;
        uint32_t us = get_u32(c->buf + 8);
        if (us == 0)
            us = svc_latency(o, rng);
        struct itimerspec its = {{0, 0}, {us / 1000000, us % 1000000 * 1000}};
        if (us == 0)
            its.it_value.tv_nsec = 1; /* 0 would disarm */
        timerfd_settime(c->tfd, 0, &its, NULL);
        /* One request at a time: stop reading until the reply is out. */
        struct epoll_event ev = {.events = 0, .data.fd = c->sock};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->sock, &ev);
        return;
    }
}

/* C's timer fired: send the reply and listen for the next request. */
static inline void svc_reply(int ep, struct svc_conn **byfd, struct svc_conn *c)
{
    uint64_t ticks;
    if (read(c->tfd, &ticks, sizeof ticks) < 0)
        return;
    unsigned char out[SVC_MSG];
    uint64_t key = get_u64(c->buf);
    put_u64(out, key);
    put_u64(out + 8, svc_answer(key));
    /* 16 bytes always fit an empty loopback socket buffer. */
    if (send(c->sock, out, sizeof out, MSG_NOSIGNAL) != (ssize_t)sizeof out) {
        svc_close_conn(ep, byfd, c);
        return;
    }
    c->got = 0;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = c->sock};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->sock, &ev);
}

static inline void svc_accept(int ep, int lfd, struct svc_conn **byfd,
                              int maxfd)
{
    for (;;) {
        int s = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (s < 0)
            return; /* EAGAIN: all taken; EMFILE: try later */
        int t = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        struct svc_conn *c = calloc(1, sizeof *c);
        if (t < 0 || !c || s >= maxfd || t >= maxfd) {
            close(s);
            if (t >= 0)
                close(t);
            free(c);
            continue;
        }
        c->sock = s;
        c->tfd = t;
        byfd[s] = byfd[t] = c;
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = s};
        epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
        ev.data.fd = t;
        epoll_ctl(ep, EPOLL_CTL_ADD, t, &ev);
    }
}

/* The child's whole life.  Never returns. */
static inline void svc_child(int lfd, int ctl, const svc_opts_t *o)
{
    struct rlimit rl;
    int maxfd = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 1 << 20
                    ? (int)rl.rlim_cur
                    : 1 << 20;
    struct svc_conn **byfd = calloc((size_t)maxfd, sizeof *byfd);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (!byfd || ep < 0)
        _exit(1);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    ev.data.fd = ctl;
    epoll_ctl(ep, EPOLL_CTL_ADD, ctl, &ev);
    uint64_t rng = o->seed ^ (uint64_t)getpid();
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == ctl)
                _exit(0); /* parent closed the pipe, or died */
            if (fd == lfd) {
                svc_accept(ep, lfd, byfd, maxfd);
                continue;
            }
            struct svc_conn *c = byfd[fd];
            if (!c)
                continue; /* closed earlier in this batch */
            if (fd == c->tfd)
                svc_reply(ep, byfd, c);
            else
                svc_readable(ep, byfd, c, o, &rng);
        }
    }
}

/* Starts the service.  Call before creating any thread.  Returns 0, or -1
 * with a message on stderr. */
static inline int svc_start(svc_t *s, const svc_opts_t *o)
{
    raise_fd_limit();
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    int p[2];
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 ||
        listen(lfd, 4096) < 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &alen) < 0 || pipe(p) < 0) {
        perror("service: socket");
        return -1;
    }
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("service: fork");
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(0); /* the parent died before prctl */
        /* Keep only the listener and the pipe's read end, so a sibling
         * service's pipe is not held open by this child. */
        if (dup2(lfd, 3) < 0 || dup2(p[0], 4) < 0)
            _exit(1);
        syscall(SYS_close_range, 5u, ~0u, 0u);
        svc_child(3, 4, o);
    }
    close(lfd);
    close(p[0]);
    fcntl(p[1], F_SETFD, FD_CLOEXEC);
    s->pid = pid;
    s->ctl = p[1];
    s->port = ntohs(a.sin_port);
    return 0;
}

static inline void svc_stop(svc_t *s)
{
    if (s->pid <= 0)
        return;
    close(s->ctl);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

/* ---- the client ------------------------------------------------------- */

static inline void svc_encode(unsigned char *out, uint64_t key, uint32_t us)
{
    put_u64(out, key);
    put_u32(out + 8, us);
    put_u32(out + 12, SVC_MAGIC);
}

static inline int svc_socket(uint16_t port, bool nonblock, int *out)
{
    int fd =
        socket(AF_INET,
               SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0)
        return -errno;
    /* Close with a reset: thousands of short connections would otherwise
     * pile up in TIME_WAIT and run out of ports. */
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 &&
        errno != EINPROGRESS) {
        int err = -errno;
        close(fd);
        return err;
    }
    *out = fd;
    return 0;
}

/* One request, blocking: connect, send, wait for the reply (this thread
 * sleeps for the whole latency).  Returns 0 and *VALUE, or -errno. */
static inline int svc_call_blocking(uint16_t port, uint64_t key, uint32_t us,
                                    uint64_t *value)
{
    int fd = -1, err = svc_socket(port, false, &fd);
    if (err)
        return err;
    unsigned char buf[SVC_MSG];
    svc_encode(buf, key, us);
    if (send(fd, buf, sizeof buf, MSG_NOSIGNAL) != (ssize_t)sizeof buf) {
        err = -EIO;
        goto out;
    }
    for (size_t got = 0; got < SVC_MSG;) {
        ssize_t n = recv(fd, buf + got, SVC_MSG - got, 0);
        if (n <= 0 && !(n < 0 && errno == EINTR)) {
            err = n == 0 ? -ECONNRESET : -errno;
            goto out;
        }
        got += n > 0 ? (size_t)n : 0;
    }
    *value = get_u64(buf + 8);
out:
    close(fd);
    return err;
}

/* One request on LOOP without blocking it: a small state machine whose
 * every wait is a fut_fd_ready future.  The returned future fulfils with
 * the answer (int64) or rejects with -errno. */
struct svc_areq {
    fut_executor_t *loop;
    int fd;
    size_t done;
    unsigned char buf[SVC_MSG];
};

static inline fut_t *svc_await_fd(struct svc_areq *r, unsigned events,
                                  fut_then_fn next)
{
    return fut_then(fut_fd_ready(r->loop, r->fd, events), r->loop, next, r);
}

static inline fut_result_t svc_on_readable(void *arg, fut_t *src)
{
    (void)src;
    struct svc_areq *r = arg;
    for (;;) {
        ssize_t n = recv(r->fd, r->buf + r->done, SVC_MSG - r->done, 0);
        if (n > 0) {
            r->done += (size_t)n;
            if (r->done == SVC_MSG)
                return fut_ok_i64((int64_t)get_u64(r->buf + 8));
        } else if (n == 0) {
            return fut_fail(-ECONNRESET);
        } else if (errno == EAGAIN) {
            return fut_adopt(svc_await_fd(r, FUT_READABLE, svc_on_readable));
        } else if (errno != EINTR) {
            return fut_fail(-errno);
        }
    }
}

static inline fut_result_t svc_on_writable(void *arg, fut_t *src)
{
    (void)src;
    struct svc_areq *r = arg;
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (r->done == 0 &&
        (getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0 || soerr))
        return fut_fail(soerr ? -soerr : -errno); /* connect failed */
    while (r->done < SVC_MSG) {
        ssize_t n =
            send(r->fd, r->buf + r->done, SVC_MSG - r->done, MSG_NOSIGNAL);
        if (n < 0 && errno == EAGAIN)
            return fut_adopt(svc_await_fd(r, FUT_WRITABLE, svc_on_writable));
        if (n < 0 && errno != EINTR)
            return fut_fail(-errno);
        r->done += n > 0 ? (size_t)n : 0;
    }
    r->done = 0; /* now counts reply bytes */
    return fut_adopt(svc_await_fd(r, FUT_READABLE, svc_on_readable));
}

/* Runs on any outcome: the request's fd and state go here, once. */
static inline fut_result_t svc_areq_free(void *arg, fut_t *src)
{
    struct svc_areq *r = arg;
    close(r->fd);
    free(r);
    return fut_forward(src);
}

/* Starts one request on LOOP.  Call it on the loop's thread or before the
 * loop runs.  Never blocks. */
static inline fut_t *svc_call_async(fut_executor_t *loop, uint16_t port,
                                    uint64_t key, uint32_t us)
{
    struct svc_areq *r = calloc(1, sizeof *r);
    if (!r)
        return fut_ready(fut_fail(FUT_ENOMEM));
    int err = svc_socket(port, true, &r->fd);
    if (err) {
        free(r);
        return fut_ready(fut_fail(err));
    }
    r->loop = loop;
    svc_encode(r->buf, key, us);
    fut_t *f = svc_await_fd(r, FUT_WRITABLE, svc_on_writable);
    return fut_finally(f, loop, svc_areq_free, r);
}

#endif
