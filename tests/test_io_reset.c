/* A socket's pending error (SO_ERROR) belongs to the call that reports it.
 * Reading SO_ERROR clears it, so if the loop's dispatch reads it for an
 * event that settles nobody (the registration is kept between a chain's
 * steps), or for a reader that still has data to read, the next recv(2)
 * finds the error gone and answers 0, end of file, instead of
 * -ECONNRESET.  These tests reset a loopback TCP connection with
 * SO_LINGER {1, 0} at each of those moments; the connect path, which does
 * read SO_ERROR for its answer, must still say -ECONNREFUSED. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>

#include <fut.h>

#include "io_helpers.h"

/* Reads once from S through the loop: the future, settled. */
static fut_t *read_now(fut_executor_t *loop, int s, char *buf, size_t len)
{
    fut_t *r = fut_read(loop, s, buf, len);
    run_until(loop, r);
    return r;
}

static void test_reset_while_no_read_waits_is_econnreset(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int c, s;
    tcp_pair(loop, &c, &s);
    char buf[8];
    /* A read that waited: the fd stays registered after it (a chain's
     * next step costs no epoll_ctl). */
    fut_t *r = fut_read(loop, c, buf, sizeof buf);
    run_for(loop, 2 * MS);
    assert_int_equal(write(s, "a", 1), 1);
    run_until(loop, r);
    assert_int_equal(fut_value_i64(r), 1);
    fut_release(r);
    /* The reset arrives while no operation waits: the loop sees its event
     * with nobody to settle. */
    reset_close(s);
    run_for(loop, 5 * MS);
    r = read_now(loop, c, buf, sizeof buf);
    assert_int_equal(fut_error(r), -ECONNRESET);
    fut_release(r);
    close(c);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

static void test_reset_after_data_reads_the_data_then_econnreset(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int c, s;
    tcp_pair(loop, &c, &s);
    char buf[8];
    fut_t *r = fut_read(loop, c, buf, sizeof buf); /* waiting when it comes */
    run_for(loop, 2 * MS);
    /* Data and the reset both arrive before the loop looks again (this
     * thread runs it), so one event reports readable and error at once. */
    assert_int_equal(write(s, "abc", 3), 3);
    reset_close(s);
    run_until(loop, r);
    assert_int_equal(fut_value_i64(r), 3);
    assert_memory_equal(buf, "abc", 3);
    fut_release(r);
    r = read_now(loop, c, buf, sizeof buf);
    assert_int_equal(fut_error(r), -ECONNRESET);
    fut_release(r);
    close(c);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

static void test_fd_ready_after_reset_leaves_the_error_to_recv(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int c, s;
    tcp_pair(loop, &c, &s);
    /* A readiness waiter that data satisfies: it is fulfilled readable and
     * the error is left for the application's own recv after the data. */
    fut_t *w = fut_fd_ready(loop, c, FUT_READABLE);
    run_for(loop, 2 * MS);
    assert_int_equal(write(s, "xy", 2), 2);
    reset_close(s);
    run_until(loop, w);
    assert_int_equal(fut_value_i64(w), FUT_READABLE);
    fut_release(w);
    char buf[8];
    assert_int_equal(recv(c, buf, sizeof buf, 0), 2);
    errno = 0;
    assert_int_equal(recv(c, buf, sizeof buf, 0), -1);
    assert_int_equal(errno, ECONNRESET);
    close(c);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

static void test_fd_ready_waiting_on_a_reset_rejects_econnreset(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int c, s;
    tcp_pair(loop, &c, &s);
    /* Nothing to read: the waiter is answered with the error itself. */
    fut_t *w = fut_fd_ready(loop, c, FUT_READABLE);
    run_for(loop, 2 * MS);
    reset_close(s);
    run_until(loop, w);
    assert_int_equal(fut_error(w), -ECONNRESET);
    fut_release(w);
    close(c);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

static void test_connect_refused_after_a_wait_is_econnrefused(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int port, l = listener(&port, 0); /* bound, not listening */
    for (int i = 0; i < 3; i++) {     /* each a new socket, same answer */
        int c = tcp_socket();
        struct sockaddr_in a = loopback(port);
        fut_t *f = fut_connect(loop, c, (struct sockaddr *)&a, sizeof a);
        run_until(loop, f);
        assert_int_equal(fut_error(f), -ECONNREFUSED);
        fut_release(f);
        close(c);
    }
    close(l);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reset_while_no_read_waits_is_econnreset),
        cmocka_unit_test(test_reset_after_data_reads_the_data_then_econnreset),
        cmocka_unit_test(test_fd_ready_after_reset_leaves_the_error_to_recv),
        cmocka_unit_test(test_fd_ready_waiting_on_a_reset_rejects_econnreset),
        cmocka_unit_test(test_connect_refused_after_a_wait_is_econnrefused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
