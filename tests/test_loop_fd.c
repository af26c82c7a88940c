/* The loop's fd readiness: pipes and socketpairs, many futures on many
 * fds, hang-ups and errors, cancellation deregisters, registration from
 * another thread. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <fut.h>

#define MS (1000 * 1000ull)

static fut_executor_t *new_loop(void)
{
    fut_executor_t *l = NULL;
    assert_int_equal(fut_loop_create(&l, NULL), 0);
    return l;
}

/* Runs LOOP until F settles, or 5 s at most. */
static void run_until(fut_executor_t *loop, fut_t *f)
{
    fut_t *deadline = fut_delay(loop, 5000 * MS);
    fut_t *fs[2] = {fut_retain(f), deadline};
    fut_t *r = fut_race(fs, 2);
    assert_int_equal(fut_loop_run(loop, r), 0);
    fut_cancel(deadline);
    fut_release(r);
    assert_int_not_equal(fut_state(f), FUT_PENDING);
}

/* Runs LOOP for about NS. */
static void run_for(fut_executor_t *loop, uint64_t ns)
{
    fut_t *d = fut_delay(loop, ns);
    assert_int_equal(fut_loop_run(loop, d), 0);
    fut_release(d);
}

static void test_fd_pipe_readable_after_write(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int p[2];
    assert_int_equal(pipe(p), 0);
    fut_t *r = fut_fd_ready(loop, p[0], FUT_READABLE);
    fut_t *w = fut_fd_ready(loop, p[1], FUT_WRITABLE);
    run_until(loop, w);
    assert_int_equal(fut_value_i64(w), FUT_WRITABLE);
    run_for(loop, 5 * MS);
    assert_int_equal(fut_state(r), FUT_PENDING);
    assert_int_equal(write(p[1], "x", 1), 1);
    run_until(loop, r);
    assert_int_equal(fut_state(r), FUT_FULFILLED);
    assert_int_equal(fut_value_i64(r), FUT_READABLE);
    fut_stats_t st;
    fut_executor_stats(loop, &st);
    assert_true(st.fd_events >= 2);
    fut_release(r), fut_release(w);
    assert_int_equal(fut_executor_destroy(loop), 0);
    close(p[0]), close(p[1]);
}

static void test_fd_pipe_hangups_reject_epipe(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int p[2];
    assert_int_equal(pipe(p), 0);
    /* Data before the hang-up is still readable. */
    assert_int_equal(write(p[1], "x", 1), 1);
    close(p[1]);
    fut_t *r = fut_fd_ready(loop, p[0], FUT_READABLE);
    run_until(loop, r);
    assert_int_equal(fut_state(r), FUT_FULFILLED);
    fut_release(r);
    char c;
    assert_int_equal(read(p[0], &c, 1), 1);
    r = fut_fd_ready(loop, p[0], FUT_READABLE);
    run_until(loop, r);
    assert_int_equal(fut_error(r), -EPIPE);
    fut_release(r);
    close(p[0]);
    /* The reader goes away: the writer's future rejects. */
    assert_int_equal(pipe(p), 0);
    close(p[0]);
    fut_t *w = fut_fd_ready(loop, p[1], FUT_WRITABLE);
    run_until(loop, w);
    assert_int_equal(fut_error(w), -EPIPE);
    fut_release(w);
    close(p[1]);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

static void test_fd_socketpair_peer_close(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fut_t *r = fut_fd_ready(loop, sv[0], FUT_READABLE);
    run_for(loop, 2 * MS);
    assert_int_equal(fut_state(r), FUT_PENDING);
    close(sv[1]);
    run_until(loop, r);
    assert_int_equal(fut_error(r), -EPIPE);
    fut_t *w = fut_fd_ready(loop, sv[0], FUT_WRITABLE);
    run_until(loop, w);
    assert_int_equal(fut_error(w), -EPIPE);
    fut_release(r), fut_release(w);
    close(sv[0]);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

static void test_fd_many_futures_on_many_fds(void **state)
{
    (void)state;
    enum { PAIRS = 64, PER = 3 };
    fut_executor_t *loop = new_loop();
    int sv[PAIRS][2];
    fut_t *fs[PAIRS * PER];
    for (int i = 0; i < PAIRS; i++) {
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]), 0);
        for (int k = 0; k < PER; k++)
            fs[i * PER + k] = fut_fd_ready(loop, sv[i][0],
                                           k == 2 ? FUT_READABLE | FUT_WRITABLE
                                                  : FUT_READABLE);
    }
    /* Only the read+write ones are ready (writable).  Run until they are,
     * not for a fixed time: registering 192 waiters may take longer than a
     * short delay on a loaded machine or under TSan. */
    fut_t *wr[PAIRS];
    for (int i = 0; i < PAIRS; i++)
        wr[i] = fut_retain(fs[i * PER + 2]);
    fut_t *wall = fut_all(wr, PAIRS);
    run_until(loop, wall);
    fut_release(wall);
    for (int i = 0; i < PAIRS; i++) {
        assert_int_equal(fut_state(fs[i * PER]), FUT_PENDING);
        assert_int_equal(fut_value_i64(fs[i * PER + 2]), FUT_WRITABLE);
    }
    for (int i = 0; i < PAIRS; i++)
        assert_int_equal(write(sv[i][1], "y", 1), 1);
    fut_t *all = fut_all(fs, PAIRS * PER);
    run_until(loop, all);
    assert_int_equal(fut_state(all), FUT_FULFILLED);
    for (int i = 0; i < PAIRS; i++)
        assert_int_equal(fut_value_i64(fut_input(all, (size_t)i * PER)),
                         FUT_READABLE);
    fut_release(all);
    for (int i = 0; i < PAIRS; i++)
        close(sv[i][0]), close(sv[i][1]);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

static void test_fd_cancel_deregisters(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int p[2];
    assert_int_equal(pipe(p), 0);
    fut_t *r = fut_fd_ready(loop, p[0], FUT_READABLE);
    run_for(loop, 1 * MS);
    assert_int_equal(fut_cancel(r), 0);
    run_for(loop, 1 * MS);
    fut_stats_t a, b;
    fut_executor_stats(loop, &a);
    assert_int_equal(write(p[1], "z", 1), 1);
    run_for(loop, 5 * MS);
    fut_executor_stats(loop, &b);
    assert_int_equal(b.fd_events, a.fd_events); /* nobody listens any more */
    assert_int_equal(fut_error(r), FUT_ECANCELED);
    fut_release(r);
    /* Cancelled before the loop ever saw it. */
    r = fut_fd_ready(loop, p[0], FUT_READABLE);
    fut_cancel(r);
    fut_t *r2 = fut_fd_ready(loop, p[0], FUT_READABLE);
    run_until(loop, r2);
    assert_int_equal(fut_value_i64(r2), FUT_READABLE);
    assert_int_equal(fut_error(r), FUT_ECANCELED);
    fut_release(r), fut_release(r2);
    close(p[0]), close(p[1]);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

static void test_fd_regular_file_is_eperm(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    char path[] = "/tmp/fut_loop_fdXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    fut_t *r = fut_fd_ready(loop, fd, FUT_READABLE);
    run_until(loop, r);
    assert_int_equal(fut_error(r), -EPERM);
    fut_release(r);
    close(fd);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

struct pong {
    fut_executor_t *loop;
    int fd;
    int left;
};

/* A readiness chain: wait readable, read, write back, again. */
static fut_result_t pong_step(void *arg, fut_t *src)
{
    struct pong *p = arg;
    (void)src;
    char c;
    if (read(p->fd, &c, 1) != 1)
        return fut_fail(-EIO);
    if (--p->left == 0)
        return fut_ok(NULL);
    if (write(p->fd, &c, 1) != 1)
        return fut_fail(-EIO);
    return fut_adopt(fut_then(fut_fd_ready(p->loop, p->fd, FUT_READABLE),
                              p->loop, pong_step, p));
}

static void *echo_peer(void *arg)
{
    int fd = *(int *)arg;
    char c;
    while (read(fd, &c, 1) == 1)
        if (write(fd, &c, 1) != 1)
            break;
    return NULL;
}

static void test_fd_chain_with_peer_thread(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, echo_peer, &sv[1]), 0);
    struct pong p = {loop, sv[0], 1000};
    assert_int_equal(write(sv[0], "a", 1), 1);
    fut_t *f =
        fut_then(fut_fd_ready(loop, sv[0], FUT_READABLE), loop, pong_step, &p);
    run_until(loop, f);
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    assert_int_equal(p.left, 0);
    fut_release(f);
    shutdown(sv[0], SHUT_RDWR);
    pthread_join(th, NULL);
    close(sv[0]), close(sv[1]);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

/* Runs FN(ARG) on a thread of its own and waits for it. */
static void on_other_thread(void *(*fn)(void *), void *arg)
{
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, fn, arg), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
}

struct cross {
    fut_executor_t *loop;
    int fd;
    fut_t *f;
};

static void *register_from_thread(void *arg)
{
    struct cross *c = arg;
    c->f = fut_fd_ready(c->loop, c->fd, FUT_WRITABLE);
    return NULL;
}

static void test_fd_registered_from_another_thread(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int p[2];
    assert_int_equal(pipe(p), 0);
    struct cross c = {loop, p[1], NULL};
    on_other_thread(register_from_thread, &c);
    run_until(loop, c.f);
    assert_int_equal(fut_value_i64(c.f), FUT_WRITABLE);
    fut_release(c.f);
    close(p[0]), close(p[1]);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

/* A cancel from another thread while the loop runs reaches the loop (the
 * promise's cancel hook) and deregisters the fd: no event after it. */
static void *cancel_from_thread(void *arg)
{
    fut_cancel(arg);
    return NULL;
}

static void test_fd_cancel_from_another_thread_deregisters(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int p[2];
    assert_int_equal(pipe(p), 0);
    fut_t *r = fut_fd_ready(loop, p[0], FUT_READABLE);
    run_for(loop, 1 * MS);
    on_other_thread(cancel_from_thread, r);
    run_for(loop, 2 * MS);
    fut_stats_t a, b;
    fut_executor_stats(loop, &a);
    assert_int_equal(write(p[1], "z", 1), 1);
    run_for(loop, 5 * MS);
    fut_executor_stats(loop, &b);
    assert_int_equal(b.fd_events, a.fd_events);
    assert_int_equal(fut_error(r), FUT_ECANCELED);
    fut_release(r);
    close(p[0]), close(p[1]);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

/* Two fds ready in one poll; each readiness future's inline continuation
 * cancels the other's.  The first settled cancels the second while the
 * loop is about to settle it: the loop's settle loses (the waiter waits
 * for the cancel hook as an orphan), exactly one fulfils, nothing leaks,
 * and the cancelled fd works again afterwards. */
struct duel {
    fut_t *other;
    int fired;
};

static fut_result_t duel_step(void *arg, fut_t *src)
{
    struct duel *d = arg;
    (void)src;
    d->fired++;
    fut_cancel(d->other);
    return fut_ok(NULL);
}

static void test_fd_cancel_while_the_loop_settles(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int a[2], b[2];
    assert_int_equal(pipe(a), 0);
    assert_int_equal(pipe(b), 0);
    assert_int_equal(write(a[1], "a", 1), 1);
    assert_int_equal(write(b[1], "b", 1), 1);
    fut_t *ra = fut_fd_ready(loop, a[0], FUT_READABLE);
    fut_t *rb = fut_fd_ready(loop, b[0], FUT_READABLE);
    struct duel da = {rb, 0}, db = {ra, 0};
    fut_t *ca = fut_then(fut_retain(ra), fut_inline(), duel_step, &da);
    fut_t *cb = fut_then(fut_retain(rb), fut_inline(), duel_step, &db);
    run_for(loop, 5 * MS);
    assert_int_equal(da.fired + db.fired, 1);
    int ok =
        (fut_state(ra) == FUT_FULFILLED) + (fut_state(rb) == FUT_FULFILLED);
    int cancelled =
        (fut_error(ra) == FUT_ECANCELED) + (fut_error(rb) == FUT_ECANCELED);
    assert_int_equal(ok, 1);
    assert_int_equal(cancelled, 1);
    int fd = fut_state(ra) == FUT_CANCELLED ? a[0] : b[0];
    fut_t *again = fut_fd_ready(loop, fd, FUT_READABLE);
    run_until(loop, again);
    assert_int_equal(fut_value_i64(again), FUT_READABLE);
    fut_release(again);
    fut_release(ca), fut_release(cb), fut_release(ra), fut_release(rb);
    close(a[0]), close(a[1]), close(b[0]), close(b[1]);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

/* The loop keeps an fd registered from one readiness future to the next
 * (loop_fd.c).  These close the fd in a callback and get its number back
 * at once as another socket, the case a kept registration must survive:
 * the new socket's readiness must still be reported, and, when a dup
 * keeps the old socket alive (its entry stays in the epoll set and keeps
 * firing), only for a bounded number of rounds spuriously. */
struct reuse {
    fut_executor_t *loop;
    int fd, peer, dup; /* the first socket, its peer, a dup of it or -1 */
    int nfd, npeer;    /* the socket that took FD's number */
    bool same_number;  /* it did */
    int got, spurious; /* bytes read from NFD; wake-ups with nothing */
    int writes;
};

static fut_result_t reuse_write(void *arg, fut_t *src)
{
    struct reuse *u = arg;
    (void)src;
    if (write(u->npeer, "y", 1) == 1)
        u->writes++;
    return fut_ok(NULL);
}

static fut_result_t reuse_step(void *arg, fut_t *src)
{
    struct reuse *u = arg;
    (void)src;
    char c;
    ssize_t n = read(u->nfd, &c, 1);
    if (n == 1 && ++u->got == 3)
        return fut_ok(NULL);
    if (n == 1) /* the next byte comes later: the fd is not ready before */
        fut_release(
            fut_then(fut_delay(u->loop, 2 * MS), u->loop, reuse_write, u));
    else if (++u->spurious > 10000)
        return fut_fail(-ELOOP); /* woken for the old socket, forever */
    return fut_adopt(fut_then(fut_fd_ready(u->loop, u->nfd, FUT_READABLE),
                              u->loop, reuse_step, u));
}

static fut_result_t reuse_first(void *arg, fut_t *src)
{
    struct reuse *u = arg;
    (void)src;
    char c;
    if (read(u->fd, &c, 1) != 1)
        return fut_fail(-EIO);
    close(u->fd);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0)
        return fut_fail(-errno);
    u->nfd = sv[0], u->npeer = sv[1];
    u->same_number = sv[0] == u->fd;
    if (u->dup >= 0 && write(u->peer, "x", 1) != 1) /* the old one: ready */
        return fut_fail(-EIO);
    fut_release(fut_then(fut_delay(u->loop, 2 * MS), u->loop, reuse_write, u));
    return fut_adopt(fut_then(fut_fd_ready(u->loop, u->nfd, FUT_READABLE),
                              u->loop, reuse_step, u));
}

static void reuse_case(bool with_dup)
{
    fut_executor_t *loop = new_loop();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv),
                     0);
    struct reuse u = {
        loop, sv[0], sv[1], with_dup ? dup(sv[0]) : -1, -1, -1, false, 0, 0, 0};
    /* Warm the registration up: a few steps of a chain on FD first. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(write(sv[1], "w", 1), 1);
        fut_t *r = fut_fd_ready(loop, sv[0], FUT_READABLE);
        run_until(loop, r);
        char c;
        assert_int_equal(read(sv[0], &c, 1), 1);
        fut_release(r);
    }
    assert_int_equal(write(sv[1], "w", 1), 1);
    fut_t *f = fut_then(fut_fd_ready(loop, sv[0], FUT_READABLE), loop,
                        reuse_first, &u);
    run_until(loop, f);
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    assert_true(u.same_number);
    assert_int_equal(u.got, 3);
    if (!with_dup)
        assert_int_equal(u.spurious, 0);
    /* Bounded: VALIDATE_ROUNDS (512) rounds at most, see loop_fd.c. */
    assert_true(u.spurious <= 600);
    fut_release(f);
    assert_int_equal(fut_executor_destroy(loop), 0);
    close(u.nfd), close(u.npeer), close(sv[1]);
    if (u.dup >= 0)
        close(u.dup);
}

static void test_fd_number_reused_in_a_callback(void **state)
{
    (void)state;
    reuse_case(false);
}

static void test_fd_number_reused_while_a_dup_lives(void **state)
{
    (void)state;
    reuse_case(true);
}

/* ---- bad fd numbers cost nothing (issue 12, item 4) ---------------------
 * An allocator that records the largest request and refuses anything over
 * a megabyte: a loop that sized its fd table by the number asked for would
 * ask for gigabytes (and get FUT_ENOMEM here instead of a stall). */
static _Atomic size_t largest;

static void *capped_alloc(size_t n)
{
    size_t l = atomic_load(&largest);
    while (n > l && !atomic_compare_exchange_weak(&largest, &l, n))
        ;
    return n > (1u << 20) ? NULL : malloc(n);
}

static void bad_number_case(int fd)
{
    fut_set_allocator(capped_alloc, free);
    atomic_store(&largest, 0);
    fut_executor_t *loop = new_loop();
    fut_t *f = fut_fd_ready(loop, fd, FUT_READABLE);
    run_until(loop, f);
    assert_int_equal(fut_state(f), FUT_REJECTED);
    assert_int_equal(fut_error(f), -EBADF);
    fut_release(f);
    assert_int_equal(fut_executor_destroy(loop), 0);
    fut_set_allocator(NULL, NULL);
    assert_true(atomic_load(&largest) <= (1u << 20));
}

static void test_fd_never_opened_large_number_is_ebadf(void **state)
{
    (void)state;
    bad_number_case(100000000);
}

static void test_fd_int_max_is_ebadf(void **state)
{
    (void)state;
    bad_number_case(INT_MAX);
}

/* An open fd above the table's current size still works (the table grows
 * once the kernel knows the number). */
static void test_fd_open_number_above_the_table_works(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int p[2];
    assert_int_equal(pipe(p), 0);
    int hi = fcntl(p[0], F_DUPFD_CLOEXEC, 900);
    assert_true(hi >= 900);
    assert_int_equal(write(p[1], "x", 1), 1);
    fut_t *f = fut_fd_ready(loop, hi, FUT_READABLE);
    run_until(loop, f);
    assert_int_equal(fut_value_i64(f), FUT_READABLE);
    fut_release(f);
    close(hi), close(p[0]), close(p[1]);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

/* ---- a number reused right after a cancel (issue 12, item 7) ------------
 * Inside one loop callback: a pending readiness future on FD (registered
 * with the kernel in an earlier round) is cancelled, FD is closed, its
 * number comes back as a new pipe's read end with a byte in it, and a new
 * readiness future waits on it, the cancel taking each place among the
 * other steps.  The new future must fulfil, whatever the order. */
enum { CANCEL_FIRST, CANCEL_AFTER_CLOSE, CANCEL_AFTER_REUSE, CANCEL_LAST };

struct recycle {
    fut_executor_t *loop;
    int order;
    int fd, wr;  /* the old pipe: read end (the number reused), write end */
    int nwr;     /* the new pipe's write end; its read end takes FD */
    fut_t *old;  /* pending on the old pipe, cancelled in the callback */
    fut_t *neu;  /* the new wait */
    int err;     /* a step that failed: -errno */
};

static void recycle_reuse(struct recycle *c)
{
    int p[2];
    if (pipe(p) != 0) {
        c->err = -errno;
        return;
    }
    if (p[0] != c->fd) { /* a lower number was free: move it */
        if (dup2(p[0], c->fd) < 0)
            c->err = -errno;
        close(p[0]);
    }
    c->nwr = p[1];
    if (write(c->nwr, "n", 1) != 1)
        c->err = -EIO;
}

static fut_result_t recycle_step(void *arg)
{
    struct recycle *c = arg;
    if (c->order == CANCEL_FIRST)
        fut_cancel(c->old);
    close(c->fd);
    if (c->order == CANCEL_AFTER_CLOSE)
        fut_cancel(c->old);
    recycle_reuse(c);
    if (c->order == CANCEL_AFTER_REUSE)
        fut_cancel(c->old);
    c->neu = fut_fd_ready(c->loop, c->fd, FUT_READABLE);
    if (c->order == CANCEL_LAST)
        fut_cancel(c->old);
    return fut_ok(NULL);
}

static void recycle_case(int order)
{
    fut_executor_t *loop = new_loop();
    int p[2];
    assert_int_equal(pipe(p), 0);
    struct recycle c = {loop, order, p[0], p[1], -1, NULL, NULL, 0};
    c.old = fut_fd_ready(loop, p[0], FUT_READABLE);
    run_for(loop, 1 * MS); /* registered with the kernel */
    fut_t *step = fut_async(loop, recycle_step, &c);
    run_until(loop, step);
    fut_release(step);
    assert_int_equal(c.err, 0);
    assert_non_null(c.neu);
    run_until(loop, c.neu);
    assert_int_equal(fut_value_i64(c.neu), FUT_READABLE);
    assert_int_equal(fut_error(c.old), FUT_ECANCELED);
    fut_release(c.neu), fut_release(c.old);
    assert_int_equal(fut_executor_destroy(loop), 0);
    close(c.fd), close(c.wr), close(c.nwr);
}

static void test_fd_reused_after_cancel_close_reuse_wait(void **state)
{
    (void)state;
    recycle_case(CANCEL_FIRST);
}

static void test_fd_reused_after_close_cancel_reuse_wait(void **state)
{
    (void)state;
    recycle_case(CANCEL_AFTER_CLOSE);
}

static void test_fd_reused_after_close_reuse_cancel_wait(void **state)
{
    (void)state;
    recycle_case(CANCEL_AFTER_REUSE);
}

static void test_fd_reused_after_close_reuse_wait_cancel(void **state)
{
    (void)state;
    recycle_case(CANCEL_LAST);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fd_pipe_readable_after_write),
        cmocka_unit_test(test_fd_pipe_hangups_reject_epipe),
        cmocka_unit_test(test_fd_socketpair_peer_close),
        cmocka_unit_test(test_fd_many_futures_on_many_fds),
        cmocka_unit_test(test_fd_cancel_deregisters),
        cmocka_unit_test(test_fd_cancel_from_another_thread_deregisters),
        cmocka_unit_test(test_fd_cancel_while_the_loop_settles),
        cmocka_unit_test(test_fd_regular_file_is_eperm),
        cmocka_unit_test(test_fd_chain_with_peer_thread),
        cmocka_unit_test(test_fd_registered_from_another_thread),
        cmocka_unit_test(test_fd_number_reused_in_a_callback),
        cmocka_unit_test(test_fd_number_reused_while_a_dup_lives),
        cmocka_unit_test(test_fd_never_opened_large_number_is_ebadf),
        cmocka_unit_test(test_fd_int_max_is_ebadf),
        cmocka_unit_test(test_fd_open_number_above_the_table_works),
        cmocka_unit_test(test_fd_reused_after_cancel_close_reuse_wait),
        cmocka_unit_test(test_fd_reused_after_close_cancel_reuse_wait),
        cmocka_unit_test(test_fd_reused_after_close_reuse_cancel_wait),
        cmocka_unit_test(test_fd_reused_after_close_reuse_wait_cancel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
