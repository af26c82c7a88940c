/* Cancelling the socket operations (<fut/io.h>): before the operation
 * (nothing consumed, nothing sent, no connection taken), after it
 * (FUT_EALREADY), and racing reads from another thread (no byte lost).
 * The operations themselves are tests/test_io.c's. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fut.h>

#include "io_helpers.h"

/* ---- cancellation ------------------------------------------------------- */

static void test_cancelled_read_consumes_nothing(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int sv[2];
    pair(sv);
    char b1[8], b2[8];
    fut_t *r1 = fut_read(loop, sv[0], b1, sizeof b1);
    run_for(loop, 2 * MS);
    assert_int_equal(fut_cancel(r1), 0);
    assert_int_equal(fut_state(r1), FUT_CANCELLED);
    assert_int_equal(write(sv[1], "data", 4), 4);
    run_for(loop, 2 * MS);
    fut_t *r2 = fut_read(loop, sv[0], b2, sizeof b2);
    run_until(loop, r2);
    assert_int_equal(fut_value_i64(r2), 4); /* all of it is still there */
    assert_memory_equal(b2, "data", 4);
    fut_release(r1), fut_release(r2);
    assert_int_equal(fut_executor_destroy(loop), 0);
    close(sv[0]), close(sv[1]);
}

static void test_cancel_after_the_read_is_ealready(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int sv[2];
    pair(sv);
    char buf[8];
    fut_t *r = fut_read(loop, sv[0], buf, sizeof buf);
    assert_int_equal(write(sv[1], "z", 1), 1);
    run_until(loop, r);
    assert_int_equal(fut_cancel(r), FUT_EALREADY);
    assert_int_equal(fut_value_i64(r), 1);
    fut_release(r);
    assert_int_equal(fut_executor_destroy(loop), 0);
    close(sv[0]), close(sv[1]);
}

static void test_cancel_after_the_write_is_ealready(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int sv[2];
    pair(sv);
    fut_t *w = fut_write(loop, sv[1], "done", 4);
    run_until(loop, w);
    assert_int_equal(fut_cancel(w), FUT_EALREADY);
    assert_int_equal(fut_state(w), FUT_FULFILLED); /* the result stands */
    assert_int_equal(fut_value_i64(w), 4);
    char got[8];
    assert_int_equal(recv(sv[0], got, sizeof got, MSG_DONTWAIT), 4);
    assert_memory_equal(got, "done", 4);
    fut_release(w);
    assert_int_equal(fut_executor_destroy(loop), 0);
    close(sv[0]), close(sv[1]);
}

static void test_cancelled_queued_write_is_skipped(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int sv[2];
    pair(sv);
    small_buffers(sv);
    static unsigned char big[1 << 20], in[(1 << 20) + 2];
    memset(big, 'a', sizeof big);
    fut_t *w1 = fut_write(loop, sv[1], big, sizeof big); /* fills, waits */
    fut_t *w2 = fut_write(loop, sv[1], "b", 1);
    fut_t *w3 = fut_write(loop, sv[1], "c", 1);
    assert_int_equal(fut_cancel(w2), 0);
    read_all(loop, sv[0], in, sizeof big + 1);
    assert_int_equal(in[sizeof big - 1], 'a');
    assert_int_equal(in[sizeof big], 'c');
    run_until(loop, w3);
    assert_int_equal(fut_value_i64(w1), sizeof big);
    assert_int_equal(fut_state(w2), FUT_CANCELLED);
    assert_int_equal(fut_value_i64(w3), 1);
    fut_release(w1), fut_release(w2), fut_release(w3);
    assert_int_equal(fut_executor_destroy(loop), 0);
    close(sv[0]), close(sv[1]);
}

static void test_cancelled_accept_takes_no_connection(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int port, l = listener(&port, 8);
    fut_t *a1 = fut_accept(loop, l);
    run_for(loop, 2 * MS);
    assert_int_equal(fut_cancel(a1), 0);
    int c = tcp_socket();
    struct sockaddr_in a = loopback(port);
    fut_t *fc = fut_connect(loop, c, (struct sockaddr *)&a, sizeof a);
    run_until(loop, fc);
    fut_t *a2 = fut_accept(loop, l);
    run_until(loop, a2);
    assert_true(fut_value_i64(a2) >= 0); /* the one connection is here */
    close((int)fut_value_i64(a2));
    fut_release(a1), fut_release(a2), fut_release(fc);
    close(c), close(l);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

/* A cancel racing the read from another thread: every byte written is
 * either in a fulfilled read's buffer or still in the socket, never lost
 * to a read whose cancel won.  Without the claim around the system call
 * (loop_io.c, step) bytes go missing. */
struct racer {
    fut_t *_Atomic target;
    atomic_int stop;
    atomic_long won;
    atomic_uint scale; /* stretches the racer's delay: see the test */
};

static void *cancel_racer(void *arg)
{
    struct racer *r = arg;
    unsigned x = 1;
    while (!atomic_load(&r->stop)) {
        fut_t *t = atomic_exchange(&r->target, NULL);
        if (t) {
            x = x * 1103515245u + 12345u;
            unsigned spin = (x >> 16) % 8 < 4
                                ? 0
                                : (x >> 16) % 1000 * atomic_load(&r->scale);
            for (volatile unsigned i = 0; i < spin; i++)
                ; /* land anywhere in the loop's step */
            if (fut_cancel(t) == 0)
                atomic_fetch_add(&r->won, 1);
            fut_release(t);
        }
    }
    return NULL;
}

static void test_cancel_racing_reads_loses_no_byte(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int sv[2];
    pair(sv);
    struct racer rc = {.target = NULL, .scale = 1};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, cancel_racer, &rc), 0);
    long sent = 0, got = 0, fulfilled = 0;
    /* Until both outcomes were seen a few times (bounded by rounds). */
    int rounds = 0;
    while (rounds < 20000 && (rounds < 1000 || fulfilled < 100 ||
                              atomic_load(&rc.won) < 100)) {
        rounds++;
        /* Where one side always wins (a sanitizer's timing), stretch or
         * shrink the racer's delay every 500 rounds until both win. */
        if (rounds % 500 == 0) {
            unsigned sc = atomic_load(&rc.scale);
            if (fulfilled == 0 && sc < (1u << 12))
                atomic_store(&rc.scale, sc * 4);
            else if (atomic_load(&rc.won) == 0 && sc > 1)
                atomic_store(&rc.scale, sc / 4);
        }
        static char buf[4096];
        fut_t *r = fut_read(loop, sv[0], buf, sizeof buf);
        /* A read the racer never took (its spin ran out) is released. */
        fut_release(atomic_exchange(&rc.target, fut_retain(r)));
        if (write(sv[1], "abc", 3) == 3) /* else full: cancels won a lot */
            sent += 3;
        for (int spin = 0; spin < 100000 && atomic_load(&rc.target); spin++)
            ; /* give the racer its chance to take it */
        run_for(loop, 0);
        fut_cancel(r); /* if still pending */
        run_for(loop, 0);
        if (fut_state(r) == FUT_FULFILLED) {
            got += fut_value_i64(r);
            fulfilled++;
        }
        fut_release(r);
    }
    atomic_store(&rc.stop, 1);
    fut_release(atomic_exchange(&rc.target, NULL));
    pthread_join(th, NULL);
    char buf[65536];
    for (ssize_t n; (n = read(sv[0], buf, sizeof buf)) > 0;)
        got += n;
    assert_int_equal(got, sent);
    print_message("rounds %d: %ld fulfilled, %ld cancels won\n", rounds,
                  fulfilled, (long)atomic_load(&rc.won));
    assert_true(fulfilled >= 1); /* both outcomes were reached */
    assert_true(atomic_load(&rc.won) >= 1);
    assert_int_equal(fut_executor_destroy(loop), 0);
    close(sv[0]), close(sv[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cancelled_read_consumes_nothing),
        cmocka_unit_test(test_cancel_after_the_read_is_ealready),
        cmocka_unit_test(test_cancel_after_the_write_is_ealready),
        cmocka_unit_test(test_cancelled_queued_write_is_skipped),
        cmocka_unit_test(test_cancelled_accept_takes_no_connection),
        cmocka_unit_test(test_cancel_racing_reads_loses_no_byte),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
