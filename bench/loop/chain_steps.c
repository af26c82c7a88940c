/* bench/loop/chain_steps -- chain steps made and run on the thread of a
 * single-thread executor: the built-in loop, the libuv adapter (libfut-uv)
 * on a uv loop, or the GLib adapter (libfut-glib) on a GMainContext.  For
 * instruction counts, not time:
 *
 *   chain_steps loop|uv|glib N [chain|fd]
 *
 * chain (the default): a task on the executor builds one chain of N
 * fut_then steps (f = fut_then(f, ex, step, NULL), N times, from
 * fut_ready) and the thread runs it to the end; it prints N.
 * fd: N one-byte round trips over a socketpair, both ends on the executor,
 * each end a fut_fd_ready chain (wait readable, read, write back, wait
 * again: bench/loop/pingpong's libfut side); it prints N.
 * bench/locked_per_step runs it under callgrind for two N and reports the
 * difference per step of locked instructions executed in the program
 * (libfut, the adapters), as docs/BENCHMARKS.md counts them. */
#define _GNU_SOURCE
#include <fut.h>
#include <fut/glib.h>
#include <fut/uv.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static fut_executor_t *ex;
static long n;

/* ---- a chain of fut_then steps ------------------------------------------ */

static fut_result_t step(void *arg, fut_t *src)
{
    (void)arg;
    return fut_ok_i64(fut_value_i64(src) + 1);
}

static fut_result_t build(void *arg)
{
    (void)arg;
    fut_t *f = fut_ready(fut_ok_i64(0));
    for (long i = 0; i < n; i++)
        f = fut_then(f, ex, step, NULL);
    return fut_adopt(f);
}

/* ---- fd round trips --------------------------------------------------- */

struct side {
    int fd;
    bool counts; /* the initiating end counts round trips */
    long left;
    fut_promise_t *done;
};

static int sv[2];
static struct side ends[2];

static fut_result_t on_ready(void *arg, fut_t *src);

static void arm(struct side *s)
{
    fut_release(
        fut_then(fut_fd_ready(ex, s->fd, FUT_READABLE), ex, on_ready, s));
}

static fut_result_t on_ready(void *arg, fut_t *src)
{
    struct side *s = arg;
    char c;
    if (fut_error(src) || read(s->fd, &c, 1) != 1)
        abort();
    if (s->counts && --s->left == 0) {
        fut_promise_settle(s->done, fut_ok_i64(n));
        return fut_ok(NULL);
    }
    if (write(s->fd, &c, 1) != 1)
        abort();
    arm(s);
    return fut_ok(NULL);
}

static fut_result_t start_pingpong(void *arg)
{
    fut_promise_t *p;
    fut_t *done = fut_promise_new(&p);
    ends[0] = (struct side){sv[0], true, n, p};
    ends[1] = (struct side){sv[1], false, 0, NULL};
    (void)arg;
    arm(&ends[0]);
    arm(&ends[1]);
    if (write(sv[0], "x", 1) != 1)
        abort();
    return fut_adopt(done);
}

/* ---- driving the executor's thread -------------------------------------- */

int main(int argc, char **argv)
{
    const char *kind = argc > 1 ? argv[1] : "";
    bool uv = !strcmp(kind, "uv"), gl = !strcmp(kind, "glib");
    bool fd = argc > 3 && !strcmp(argv[3], "fd");
    if (argc < 3 || argc > 4 || (!uv && !gl && strcmp(kind, "loop")) ||
        (argc == 4 && !fd && strcmp(argv[3], "chain"))) {
        fprintf(stderr, "usage: chain_steps loop|uv|glib N [chain|fd]\n");
        return 2;
    }
    n = atol(argv[2]);
    uv_loop_t loop;
    GMainContext *ctx = gl ? g_main_context_new() : NULL;
    int rc = uv   ? uv_loop_init(&loop) || fut_uv_create(&ex, &loop)
             : gl ? fut_glib_create(&ex, ctx)
                  : fut_loop_create(&ex, NULL);
    if (rc || (fd && socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv)))
        return 1;
    fut_t *f = fut_async(ex, fd ? start_pingpong : build, NULL);
    if (uv) {
        while (fut_state(f) == FUT_PENDING)
            uv_run(&loop, UV_RUN_ONCE);
    } else if (gl) {
        while (fut_state(f) == FUT_PENDING)
            g_main_context_iteration(ctx, TRUE);
    } else {
        fut_loop_run(ex, f);
    }
    printf("%s %s %lld\n", kind, fd ? "fd" : "chain",
           (long long)fut_value_i64(f));
    fut_release(f);
    fut_executor_destroy(ex); /* the answering end's last wait: ESHUTDOWN */
    if (fd)
        close(sv[0]), close(sv[1]);
    if (uv) {
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
    }
    if (gl)
        g_main_context_unref(ctx);
    return 0;
}
