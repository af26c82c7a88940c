/* fut_read's "drained" hint (<fut/io.h>): a read that came back shorter
 * than it asked emptied the socket, so the next read on that fd waits for
 * readability before its call (the EAGAIN a request/response protocol
 * would otherwise pay each time), while a read that filled its buffer, a
 * fresh fd and an fd just returned by fut_accept try the call at once. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>

#include <fut.h>

#include "io_helpers.h"

/* fut_read made on the loop's thread (from a task: the fast path is the
 * loop thread's); *AT_ONCE: its state when fut_read returned. */
struct rd {
    fut_executor_t *loop;
    int fd;
    char *buf;
    size_t len;
    fut_t *f;
    fut_state_t at_once;
};

static fut_result_t rd_task(void *arg)
{
    struct rd *r = arg;
    r->f = fut_read(r->loop, r->fd, r->buf, r->len);
    r->at_once = fut_state(r->f);
    return fut_ok(NULL);
}

static fut_t *read_in(fut_executor_t *loop, int fd, char *buf, size_t len,
                      fut_state_t *at_once)
{
    struct rd r = {loop, fd, buf, len, NULL, FUT_PENDING};
    fut_t *t = fut_async(loop, rd_task, &r);
    run_until(loop, t);
    fut_release(t);
    *at_once = r.at_once;
    return r.f;
}

static void test_read_after_a_short_read_waits_for_readiness(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int sv[2];
    pair(sv);
    assert_int_equal(write(sv[1], "ab", 2), 2);
    char buf[16];
    fut_state_t now;
    fut_t *r = read_in(loop, sv[0], buf, sizeof buf, &now);
    assert_int_equal(now, FUT_FULFILLED); /* tried at once: a fresh fd */
    assert_int_equal(fut_value_i64(r), 2); /* short */
    fut_release(r);
    assert_int_equal(write(sv[1], "cd", 2), 2);
    /* Data is there, but the hint says wait: no call, a pending future. */
    r = read_in(loop, sv[0], buf, sizeof buf, &now);
    assert_int_equal(now, FUT_PENDING);
    run_until(loop, r);
    assert_int_equal(fut_value_i64(r), 2);
    assert_memory_equal(buf, "cd", 2);
    fut_release(r);
    /* That read was short again, so this one waits too, for data that
     * comes later. */
    r = read_in(loop, sv[0], buf, sizeof buf, &now);
    assert_int_equal(now, FUT_PENDING);
    assert_int_equal(write(sv[1], "e", 1), 1);
    run_until(loop, r);
    assert_int_equal(fut_value_i64(r), 1);
    fut_release(r);
    assert_int_equal(fut_executor_destroy(loop), 0);
    close(sv[0]), close(sv[1]);
}

static void test_read_that_filled_its_buffer_tries_the_next_at_once(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int sv[2];
    pair(sv);
    assert_int_equal(write(sv[1], "0123456789", 10), 10);
    char buf[4];
    fut_state_t now;
    for (int i = 0; i < 2; i++) { /* 4 of 10, 4 of 6: settled at once */
        fut_t *r = read_in(loop, sv[0], buf, sizeof buf, &now);
        assert_int_equal(now, FUT_FULFILLED);
        assert_int_equal(fut_value_i64(r), 4);
        fut_release(r);
    }
    fut_t *r = read_in(loop, sv[0], buf, sizeof buf, &now);
    assert_int_equal(now, FUT_FULFILLED);
    assert_int_equal(fut_value_i64(r), 2); /* the rest, short */
    fut_release(r);
    assert_int_equal(fut_executor_destroy(loop), 0);
    close(sv[0]), close(sv[1]);
}

static void test_accepted_fd_reads_at_once_where_its_number_drained(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int c, s;
    tcp_pair(loop, &c, &s);
    assert_int_equal(write(c, "x", 1), 1);
    run_for(loop, 2 * MS); /* let "x" arrive */
    char buf[16];
    fut_state_t now;
    fut_t *r = read_in(loop, s, buf, sizeof buf, &now);
    assert_int_equal(now, FUT_FULFILLED);
    assert_int_equal(fut_value_i64(r), 1); /* short: S's number drained */
    fut_release(r);
    int drained = s;
    close(s), close(c);
    /* A new connection: accept4 hands out the lowest free number. */
    int port, l = listener(&port, 8);
    c = tcp_socket();
    struct sockaddr_in a = loopback(port);
    assert_true(connect(c, (struct sockaddr *)&a, sizeof a) == 0 ||
                errno == EINPROGRESS);
    fut_t *fa = fut_accept(loop, l);
    run_until(loop, fa);
    s = (int)fut_value_i64(fa);
    fut_release(fa);
    assert_int_equal(s, drained);
    assert_int_equal(write(c, "hi", 2), 2);
    run_for(loop, 2 * MS); /* let "hi" arrive */
    r = read_in(loop, s, buf, sizeof buf, &now);
    assert_int_equal(now, FUT_FULFILLED); /* tried at once */
    assert_int_equal(fut_value_i64(r), 2);
    fut_release(r);
    close(s), close(c), close(l);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

static void test_cancelled_wait_after_a_short_read_reads_nothing(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int sv[2];
    pair(sv);
    assert_int_equal(write(sv[1], "a", 1), 1);
    char buf[16];
    fut_state_t now;
    fut_t *r = read_in(loop, sv[0], buf, sizeof buf, &now);
    assert_int_equal(fut_value_i64(r), 1);
    fut_release(r);
    assert_int_equal(write(sv[1], "bc", 2), 2);
    r = read_in(loop, sv[0], buf, sizeof buf, &now); /* waits: drained */
    assert_int_equal(now, FUT_PENDING);
    assert_int_equal(fut_cancel(r), 0); /* wins: nothing read */
    run_for(loop, 2 * MS);
    fut_release(r);
    r = read_in(loop, sv[0], buf, sizeof buf, &now); /* the hint is spent */
    assert_int_equal(now, FUT_FULFILLED);
    assert_int_equal(fut_value_i64(r), 2);
    assert_memory_equal(buf, "bc", 2);
    fut_release(r);
    assert_int_equal(fut_executor_destroy(loop), 0);
    close(sv[0]), close(sv[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_after_a_short_read_waits_for_readiness),
        cmocka_unit_test(test_read_that_filled_its_buffer_tries_the_next_at_once),
        cmocka_unit_test(test_accepted_fd_reads_at_once_where_its_number_drained),
        cmocka_unit_test(test_cancelled_wait_after_a_short_read_reads_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
