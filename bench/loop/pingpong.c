/* bench/loop/pingpong -- 1-byte round trips over a socketpair, both ends
 * driven by one event loop.
 *
 *   loop_pingpong [n] [runs]      defaults: n = 100000, runs = 5
 *
 * impl=fut       each end is a fut_fd_ready chain on a libfut loop: wait
 *                readable, read, write back, wait again (fire and forget,
 *                the idiomatic loop style)
 * baseline=epoll the same in a raw level-triggered epoll loop, fds
 *                registered once
 * baseline=libuv the same with uv_poll_t watchers
 * One line per baseline: ns per round trip, median and min-max of RUNS. */
#define _GNU_SOURCE
#include <fut.h>
#include <uv.h>

#include <fcntl.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_util.h"

static void pair(int sv[2])
{
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0) {
        perror("socketpair");
        exit(1);
    }
}

/* ---- libfut ------------------------------------------------------------- */

struct side {
    fut_executor_t *loop;
    int fd;
    bool counts; /* the initiating end counts round trips */
    long left;
    fut_promise_t *done;
};

static fut_result_t on_ready(void *arg, fut_t *src);

static void arm(struct side *s)
{
    fut_release(fut_then(fut_fd_ready(s->loop, s->fd, FUT_READABLE), s->loop,
                         on_ready, s));
}

static fut_result_t on_ready(void *arg, fut_t *src)
{
    struct side *s = arg;
    (void)src;
    char c;
    if (read(s->fd, &c, 1) != 1)
        abort();
    if (s->counts && --s->left == 0) {
        fut_promise_settle(s->done, fut_ok(NULL));
        return fut_ok(NULL);
    }
    if (write(s->fd, &c, 1) != 1)
        abort();
    arm(s);
    return fut_ok(NULL);
}

static double run_fut(long n)
{
    fut_executor_t *loop;
    if (fut_loop_create(&loop, NULL))
        abort();
    int sv[2];
    pair(sv);
    fut_promise_t *p;
    fut_t *done = fut_promise_new(&p);
    struct side a = {loop, sv[0], true, n, p}, b = {loop, sv[1], false, 0, 0};
    double t0 = now_s();
    arm(&a);
    arm(&b);
    if (write(sv[0], "x", 1) != 1)
        abort();
    fut_loop_run(loop, done);
    double t = now_s() - t0;
    fut_release(done);
    close(sv[0]);
    close(sv[1]);
    fut_executor_destroy(loop); /* b's last wait rejects FUT_ESHUTDOWN */
    return t;
}

/* ---- raw epoll ---------------------------------------------------------- */

static double run_epoll(long n)
{
    int sv[2];
    pair(sv);
    int ep = epoll_create1(0);
    for (int i = 0; i < 2; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = sv[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, sv[i], &ev);
    }
    double t0 = now_s();
    char c = 'x';
    if (write(sv[0], &c, 1) != 1)
        abort();
    long left = n;
    while (left > 0) {
        struct epoll_event evs[8];
        int k = epoll_wait(ep, evs, 8, -1);
        for (int i = 0; i < k && left > 0; i++) {
            int fd = evs[i].data.fd;
            if (read(fd, &c, 1) != 1)
                abort();
            if (fd == sv[0] && --left == 0)
                break;
            if (write(fd, &c, 1) != 1)
                abort();
        }
    }
    double t = now_s() - t0;
    close(ep);
    close(sv[0]);
    close(sv[1]);
    return t;
}

/* ---- libuv -------------------------------------------------------------- */

struct uside {
    uv_poll_t w;
    int fd;
    bool counts;
    long *left;
};

static void uv_ready(uv_poll_t *w, int status, int events)
{
    struct uside *s = w->data;
    (void)status;
    (void)events;
    char c;
    if (read(s->fd, &c, 1) != 1)
        abort();
    if (s->counts && --*s->left == 0) {
        uv_stop(w->loop);
        return;
    }
    if (write(s->fd, &c, 1) != 1)
        abort();
}

static double run_uv(long n)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    int sv[2];
    pair(sv);
    long left = n;
    struct uside a = {.fd = sv[0], .counts = true, .left = &left},
                 b = {.fd = sv[1], .counts = false, .left = &left};
    double t0 = now_s();
    struct uside *s[2] = {&a, &b};
    for (int i = 0; i < 2; i++) {
        uv_poll_init(&loop, &s[i]->w, s[i]->fd);
        s[i]->w.data = s[i];
        uv_poll_start(&s[i]->w, UV_READABLE, uv_ready);
    }
    if (write(sv[0], "x", 1) != 1)
        abort();
    uv_run(&loop, UV_RUN_DEFAULT);
    double t = now_s() - t0;
    uv_close((uv_handle_t *)&a.w, NULL);
    uv_close((uv_handle_t *)&b.w, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    close(sv[0]);
    close(sv[1]);
    return t;
}

int main(int argc, char **argv)
{
    long n = 100000;
    int runs = 5;
    if (parse_args(argc, argv, &n, &runs))
        return 2;
    double f[MAX_RUNS], e[MAX_RUNS], u[MAX_RUNS];
    for (int r = 0; r < runs; r++) { /* interleaved: drift hits all three */
        f[r] = run_fut(n) / (double)n * 1e9;
        e[r] = run_epoll(n) / (double)n * 1e9;
        u[r] = run_uv(n) / (double)n * 1e9;
    }
    summary_t sf = summarize(f, runs), se = summarize(e, runs),
              su = summarize(u, runs);
    print_line("pingpong", n, runs, "epoll", sf, se);
    print_line("pingpong", n, runs, "libuv", sf, su);
    return 0;
}
