/* The fd cases test_uv.c and test_glib.c share (fut_fd_ready and the socket
 * operations of <fut/io.h> through an adapter's fd_ready op); included by
 * host_adapter_cases.h, whose opening comment says what the including file
 * defines, and which provides run_until, MS and the includes. */
#ifndef HOST_ADAPTER_FD_CASES_H
#define HOST_ADAPTER_FD_CASES_H

/* ---- fd readiness (fut_fd_ready through the adapter's fd_ready op) ------- */

/* Runs N iterations of the host loop that do not sleep. */
static void iterate_n(struct env *e, int n)
{
    for (int i = 0; i < n; i++)
        host_iterate(e, 0);
}

static uint64_t fd_events(struct env *e)
{
    fut_stats_t st;
    assert_int_equal(fut_executor_stats(e->ex, &st), 0);
    return st.fd_events;
}

struct fd_seen {
    pthread_t thread;
    fut_executor_t *current;
};

static fut_result_t note_fd_thread(void *arg, fut_t *src)
{
    struct fd_seen *s = arg;
    s->thread = pthread_self();
    s->current = fut_executor_current();
    return fut_forward(src);
}

static void host_case_fd_ready_fulfils_when_readable(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct fd_seen seen = {0};
    fut_t *f = fut_then(fut_fd_ready(e.ex, sv[0], FUT_READABLE), e.ex,
                        note_fd_thread, &seen);
    iterate_n(&e, 5);
    assert_int_equal(fut_state(f), FUT_PENDING); /* nothing to read yet */
    assert_int_equal(write(sv[1], "x", 1), 1);
    run_until(&e, f);
    assert_int_equal(fut_value_i64(f), FUT_READABLE);
    assert_true(pthread_equal(seen.thread, pthread_self()));
    assert_ptr_equal(seen.current, e.ex);
    assert_true(fd_events(&e) >= 1);
    fut_release(f);
    close(sv[0]), close(sv[1]);
    env_close(&e);
}

/* One fd, a reader and a writer: one registration for both directions;
 * each settles with its own direction. */
static void host_case_fd_ready_serves_both_directions_of_one_fd(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fut_t *r = fut_fd_ready(e.ex, sv[0], FUT_READABLE);
    fut_t *w = fut_fd_ready(e.ex, sv[0], FUT_WRITABLE);
    fut_t *rw = fut_fd_ready(e.ex, sv[0], FUT_READABLE | FUT_WRITABLE);
    run_until(&e, w);
    run_until(&e, rw);
    assert_int_equal(fut_value_i64(w), FUT_WRITABLE);
    assert_int_equal(fut_value_i64(rw), FUT_WRITABLE);
    assert_int_equal(fut_state(r), FUT_PENDING);
    assert_int_equal(write(sv[1], "x", 1), 1);
    run_until(&e, r);
    assert_int_equal(fut_value_i64(r), FUT_READABLE);
    fut_release(r), fut_release(w), fut_release(rw);
    close(sv[0]), close(sv[1]);
    env_close(&e);
}

/* A cancelled wait deregisters: data arriving later makes no event. */
static void host_case_fd_cancel_deregisters(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    int p[2];
    assert_int_equal(pipe(p), 0);
    fut_t *r = fut_fd_ready(e.ex, p[0], FUT_READABLE);
    iterate_n(&e, 3);
    assert_int_equal(fut_cancel(r), 0);
    iterate_n(&e, 3); /* the cancel hook runs */
    uint64_t before = fd_events(&e);
    assert_int_equal(write(p[1], "z", 1), 1);
    iterate_n(&e, 5);
    assert_int_equal(fd_events(&e), before); /* nobody listens any more */
    assert_int_equal(fut_error(r), FUT_ECANCELED);
    fut_release(r);
    /* The fd works again for a new wait. */
    r = fut_fd_ready(e.ex, p[0], FUT_READABLE);
    run_until(&e, r);
    assert_int_equal(fut_value_i64(r), FUT_READABLE);
    fut_release(r);
    close(p[0]), close(p[1]);
    env_close(&e);
}

struct fd_remote {
    fut_executor_t *ex;
    int fd;
    fut_t *f;
};

static void *wait_from_thread(void *arg)
{
    struct fd_remote *x = arg;
    x->f = fut_fd_ready(x->ex, x->fd, FUT_READABLE);
    return NULL;
}

static void host_case_fd_ready_from_another_thread(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct fd_remote x = {e.ex, sv[0], NULL};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, wait_from_thread, &x), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(write(sv[1], "x", 1), 1);
    run_until(&e, x.f);
    assert_int_equal(fut_value_i64(x.f), FUT_READABLE);
    fut_release(x.f);
    close(sv[0]), close(sv[1]);
    env_close(&e);
}

static void host_case_fd_closed_number_is_ebadf(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    int p[2];
    assert_int_equal(pipe(p), 0);
    close(p[0]), close(p[1]);
    fut_t *f = fut_fd_ready(e.ex, p[0], FUT_READABLE);
    run_until(&e, f);
    assert_int_equal(fut_error(f), -EBADF);
    fut_release(f);
    env_close(&e);
}

/* Waits pending (registered, and one still on its way from another
 * thread's hand-off) reject FUT_ESHUTDOWN when the adapter is destroyed. */
static void host_case_destroy_rejects_pending_fd_waits_eshutdown(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fut_t *a = fut_fd_ready(e.ex, sv[0], FUT_READABLE);
    iterate_n(&e, 3); /* registered */
    struct fd_remote x = {e.ex, sv[1], NULL};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, wait_from_thread, &x), 0);
    assert_int_equal(pthread_join(th, NULL), 0); /* queued, not run */
    env_close(&e);
    assert_int_equal(fut_error(a), FUT_ESHUTDOWN);
    assert_int_equal(fut_error(x.f), FUT_ESHUTDOWN);
    fut_release(a), fut_release(x.f);
    close(sv[0]), close(sv[1]);
}

/* In one callback: cancel the wait on a number, close it, get the number
 * back for another pipe, wait on it: the new wait sees the new file. */
struct fd_recycle {
    fut_executor_t *ex;
    fut_t *old, *neu;
    int fd, wr, nwr;
};

static fut_result_t recycle_in_callback(void *arg)
{
    struct fd_recycle *c = arg;
    fut_cancel(c->old);
    close(c->fd);
    int p[2];
    if (pipe(p) != 0)
        return fut_fail(-errno);
    if (p[0] != c->fd) { /* make the number come back */
        dup2(p[0], c->fd);
        close(p[0]);
    }
    c->nwr = p[1];
    c->neu = fut_fd_ready(c->ex, c->fd, FUT_READABLE);
    return fut_ok(NULL);
}

static void host_case_fd_number_reused_after_cancel_in_a_callback(
    void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    int p[2];
    assert_int_equal(pipe(p), 0);
    struct fd_recycle c = {e.ex, NULL, NULL, p[0], p[1], -1};
    c.old = fut_fd_ready(e.ex, p[0], FUT_READABLE);
    iterate_n(&e, 3); /* registered with the host */
    fut_t *step = fut_async(e.ex, recycle_in_callback, &c);
    run_until(&e, step);
    assert_int_equal(fut_error(step), 0);
    fut_release(step);
    assert_int_equal(write(c.nwr, "n", 1), 1);
    run_until(&e, c.neu);
    assert_int_equal(fut_value_i64(c.neu), FUT_READABLE);
    assert_int_equal(fut_error(c.old), FUT_ECANCELED);
    fut_release(c.neu), fut_release(c.old);
    close(c.fd), close(c.wr), close(c.nwr);
    env_close(&e);
}

/* ---- socket operations (<fut/io.h>) on the adapter ------------------------ */

/* A read made before the data waits for readability; a write made from
 * this thread (the hand-off path) and one queued behind it go out in
 * order. */
static void host_case_io_read_and_write_over_a_socketpair(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv),
                     0);
    char buf[16] = {0};
    fut_t *r = fut_read(e.ex, sv[1], buf, sizeof buf);
    iterate_n(&e, 3);
    assert_int_equal(fut_state(r), FUT_PENDING); /* waits for data */
    fut_t *w1 = fut_write(e.ex, sv[0], "hel", 3);
    fut_t *w2 = fut_write(e.ex, sv[0], "lo", 2);
    run_until(&e, w2);
    assert_int_equal(fut_value_i64(w1), 3);
    assert_int_equal(fut_value_i64(w2), 2);
    run_until(&e, r);
    assert_true(fut_value_i64(r) >= 3);
    assert_memory_equal(buf, "hel", 3);
    char rest[8] = {0};
    ssize_t got = fut_value_i64(r) == 3 ? read(sv[1], rest, sizeof rest) : 0;
    assert_true(fut_value_i64(r) == 5 || (got == 2 && !memcmp(rest, "lo", 2)));
    fut_release(r), fut_release(w1), fut_release(w2);
    close(sv[0]), close(sv[1]);
    env_close(&e);
}

static fut_result_t connected_write(void *arg, fut_t *src)
{
    (void)src;
    return fut_adopt(fut_write(fut_executor_current(), *(int *)arg, "ping",
                               4));
}

/* Loopback TCP: accept and connect as futures on the adapter, then a write
 * on the client read on the accepted socket. */
static void host_case_io_accept_and_connect_over_loopback_tcp(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(lfd, 4), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);
    fut_t *acc = fut_accept(e.ex, lfd);
    int cfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    fut_t *con = fut_then(fut_connect(e.ex, cfd, (struct sockaddr *)&a, alen),
                          e.ex, connected_write, &cfd);
    run_until(&e, acc);
    run_until(&e, con);
    assert_int_equal(fut_error(con), 0);
    assert_int_equal(fut_value_i64(con), 4);
    assert_true(fut_value_i64(acc) >= 0);
    int sfd = (int)fut_value_i64(acc);
    char buf[8] = {0};
    fut_t *r = fut_read(e.ex, sfd, buf, sizeof buf);
    run_until(&e, r);
    assert_int_equal(fut_value_i64(r), 4);
    assert_memory_equal(buf, "ping", 4);
    fut_release(acc), fut_release(con), fut_release(r);
    close(sfd), close(cfd), close(lfd);
    env_close(&e);
}

/* A cancelled read never reads: the data stays for the next reader. */
static void host_case_io_cancelled_read_reads_nothing(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv),
                     0);
    char buf[4];
    fut_t *r = fut_read(e.ex, sv[1], buf, sizeof buf);
    iterate_n(&e, 3);
    assert_int_equal(fut_cancel(r), 0);
    iterate_n(&e, 3);
    assert_int_equal(write(sv[0], "z", 1), 1);
    iterate_n(&e, 3);
    assert_int_equal(fut_error(r), FUT_ECANCELED);
    char c = 0;
    assert_int_equal(read(sv[1], &c, 1), 1);
    assert_int_equal(c, 'z');
    fut_release(r);
    close(sv[0]), close(sv[1]);
    env_close(&e);
}

/* A cancelled read that was waiting for readability takes that wait off
 * its fd (the cancel reaches the readiness future under the operation):
 * data arriving later makes no event, and the bytes stay in the socket. */
static void host_case_io_cancelled_read_stops_watching_its_fd(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv),
                     0);
    char buf[4];
    fut_t *r = fut_read(e.ex, sv[1], buf, sizeof buf);
    iterate_n(&e, 3); /* waits for readability */
    assert_int_equal(fut_state(r), FUT_PENDING);
    assert_int_equal(fut_cancel(r), 0);
    iterate_n(&e, 3); /* the cancel hooks run */
    uint64_t before = fd_events(&e);
    assert_int_equal(write(sv[0], "z", 1), 1);
    iterate_n(&e, 5);
    assert_int_equal(fd_events(&e), before); /* nobody watches sv[1] */
    assert_int_equal(fut_error(r), FUT_ECANCELED);
    char c = 0;
    assert_int_equal(read(sv[1], &c, 1), 1);
    assert_int_equal(c, 'z');
    fut_release(r);
    close(sv[0]), close(sv[1]);
    env_close(&e);
}

/* A read cancelled while it waits, its fd then closed and the number
 * reused for another socket: nothing of the old read acts on the new
 * socket (no event for it, no byte taken into the old buffer), and a read
 * made on the new socket, whose data is there already, runs at once. */
static void host_case_io_cancelled_read_leaves_a_reused_number_alone(
    void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv),
                     0);
    char old[4] = {'X', 'X', 'X', 'X'};
    fut_t *r = fut_read(e.ex, sv[1], old, sizeof old);
    iterate_n(&e, 3); /* waits for readability */
    assert_int_equal(fut_cancel(r), 0);
    iterate_n(&e, 3); /* the cancel hooks run */
    int num = sv[1];
    close(sv[0]), close(sv[1]);
    int nv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, nv),
                     0);
    int rd, peer;
    if (nv[0] == num || nv[1] == num) {
        rd = num;
        peer = nv[0] == num ? nv[1] : nv[0];
    } else { /* make the number come back */
        assert_int_equal(dup2(nv[1], num), num);
        close(nv[1]);
        rd = num;
        peer = nv[0];
    }
    uint64_t before = fd_events(&e);
    assert_int_equal(write(peer, "n", 1), 1);
    iterate_n(&e, 5);
    assert_int_equal(fd_events(&e), before); /* nobody watches the number */
    char buf[4] = {0};
    fut_t *r2 = fut_read(e.ex, rd, buf, sizeof buf);
    iterate_n(&e, 5); /* no wait: the byte is there */
    assert_int_equal(fut_state(r2), FUT_FULFILLED);
    assert_int_equal(fut_value_i64(r2), 1);
    assert_int_equal(buf[0], 'n');
    assert_memory_equal(old, "XXXX", 4);
    assert_int_equal(fut_error(r), FUT_ECANCELED);
    fut_release(r), fut_release(r2);
    close(rd), close(peer);
    env_close(&e);
}

/* Reads pending when the adapter is destroyed (the head waiting for
 * readiness, one queued behind it) reject FUT_ESHUTDOWN. */
static void host_case_io_destroy_rejects_pending_reads_eshutdown(void **state)
{
    (void)state;
    struct env e;
    env_open(&e);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv),
                     0);
    char b1[4], b2[4];
    fut_t *r1 = fut_read(e.ex, sv[1], b1, sizeof b1);
    fut_t *r2 = fut_read(e.ex, sv[1], b2, sizeof b2);
    iterate_n(&e, 3);
    assert_int_equal(fut_state(r1), FUT_PENDING);
    env_close(&e);
    assert_int_equal(fut_error(r1), FUT_ESHUTDOWN);
    assert_int_equal(fut_error(r2), FUT_ESHUTDOWN);
    fut_release(r1), fut_release(r2);
    close(sv[0]), close(sv[1]);
}

#endif
