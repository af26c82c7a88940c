/* Positioned file I/O and name lookup (<fut/io.h>): fut_pread and
 * fut_pwrite on temporary files through each path (RWF_NOWAIT on the
 * loop, the forced offload threads, a pool worker, inline), end of file,
 * cancellation, bad input; fut_getaddrinfo of localhost and of a name that
 * does not resolve.
 *
 * The loop's file cases run twice: first with io_uring off
 * (FUT_IO_URING=0: RWF_NOWAIT, else the offload threads), then with every
 * read on a loop through its ring (FUT_IO_URING=all; io_uring.c), where
 * they are skipped if this kernel refuses io_uring.  tests/test_io_uring.c
 * has the ring's own cases (reads out of the page cache, cancels of reads
 * in the ring, shutdown). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fut.h>

#include "internal.h" /* fut__io_force_offload, fut__uring_*, ... */

/* 1 in the second run of the file cases: every read on a loop goes through
 * its io_uring ring. */
static int g_ring;

static int fallback_run(void **state)
{
    (void)state;
    g_ring = 0;
    fut__uring_set_mode(0); /* FUT_IO_URING=0 */
    return 0;
}

static int ring_run(void **state)
{
    (void)state;
    g_ring = 1;
    fut__uring_set_mode(2); /* FUT_IO_URING=all */
    return 0;
}

/* Skips the case in the ring run where the kernel refuses io_uring. */
static void on_the_path(void)
{
    if (g_ring && !fut__uring_supported())
        skip();
}

#define MS (1000 * 1000ull)

static fut_executor_t *new_loop(void)
{
    fut_executor_t *l = NULL;
    assert_int_equal(fut_loop_create(&l, NULL), 0);
    return l;
}

/* Runs LOOP until F settles, or 10 s at most. */
static void run_until(fut_executor_t *loop, fut_t *f)
{
    fut_t *deadline = fut_delay(loop, 10000 * MS);
    fut_t *fs[2] = {fut_retain(f), deadline};
    fut_t *r = fut_race(fs, 2);
    assert_int_equal(fut_loop_run(loop, r), 0);
    fut_cancel(deadline);
    fut_release(r);
    assert_int_not_equal(fut_state(f), FUT_PENDING);
}

/* A temporary file holding "0123456789" (unlinked: closing frees it). */
static int temp_file(void)
{
    char name[] = "/tmp/fut_io_XXXXXX";
    int fd = mkstemp(name);
    assert_true(fd >= 0);
    unlink(name);
    assert_int_equal(write(fd, "0123456789", 10), 10);
    return fd;
}

/* Reads 4 bytes at offset 3 through EX, settling it with RUN. */
static void check_pread_at_offset(fut_executor_t *ex, fut_executor_t *loop)
{
    int fd = temp_file();
    char buf[8] = {0};
    fut_t *f = fut_pread(ex, fd, buf, 4, 3);
    if (loop)
        run_until(loop, f);
    else
        assert_int_equal(fut_wait(f, -1), 0);
    assert_int_equal(fut_error(f), 0);
    assert_int_equal(fut_value_i64(f), 4);
    assert_memory_equal(buf, "3456", 4);
    fut_release(f);
    off_t pos = lseek(fd, 0, SEEK_CUR);
    assert_int_equal(pos, 10); /* the file offset did not move */
    close(fd);
}

static void test_pread_on_a_loop_answers_from_the_page_cache(void **state)
{
    (void)state;
    on_the_path();
    fut__io_force_offload(0);
    fut_executor_t *loop = new_loop();
    unsigned long before = fut__io_offload_count();
    check_pread_at_offset(loop, loop);
    assert_int_equal(fut__io_offload_count(), before); /* no hand-off */
    assert_int_equal(fut__uring_submitted(loop), g_ring ? 1 : 0);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

static void test_pread_forced_offload_runs_on_the_threads(void **state)
{
    (void)state;
    fut__io_force_offload(1);
    fut_executor_t *loop = new_loop();
    unsigned long before = fut__io_offload_count();
    check_pread_at_offset(loop, loop);
    assert_int_equal(fut__io_offload_count(), before + 1);
    fut__io_force_offload(0);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

static void test_pread_on_a_pool_and_inline(void **state)
{
    (void)state;
    fut_executor_t *pool;
    assert_int_equal(fut_pool_create(&pool, NULL), 0);
    unsigned long before = fut__io_offload_count();
    check_pread_at_offset(pool, NULL);
    check_pread_at_offset(fut_inline(), NULL);
    assert_int_equal(fut__io_offload_count(), before);
    assert_int_equal(fut_executor_destroy(pool), 0);
}

static void test_pread_past_eof_is_zero_and_at_eof_short(void **state)
{
    (void)state;
    on_the_path();
    for (int force = 0; force < 2; force++) {
        fut__io_force_offload(force);
        fut_executor_t *loop = new_loop();
        int fd = temp_file();
        char buf[16];
        fut_t *f = fut_pread(loop, fd, buf, sizeof buf, 100);
        run_until(loop, f);
        assert_int_equal(fut_value_i64(f), 0);
        fut_release(f);
        f = fut_pread(loop, fd, buf, sizeof buf, 7);
        run_until(loop, f);
        assert_int_equal(fut_value_i64(f), 3);
        assert_memory_equal(buf, "789", 3);
        fut_release(f);
        f = fut_pread(loop, fd, NULL, 0, 0); /* len 0 */
        run_until(loop, f);
        assert_int_equal(fut_value_i64(f), 0);
        fut_release(f);
        close(fd);
        assert_int_equal(fut_executor_destroy(loop), 0);
    }
    fut__io_force_offload(0);
}

static void test_pwrite_len_zero_fulfils_zero_and_writes_nothing(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int fd = temp_file();
    struct stat before, after;
    assert_int_equal(fstat(fd, &before), 0);
    fut_t *f = fut_pwrite(loop, fd, NULL, 0, 100); /* past the end */
    run_until(loop, f);
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    assert_int_equal(fut_value_i64(f), 0);
    assert_int_equal(fstat(fd, &after), 0);
    assert_int_equal(after.st_size, before.st_size);
    fut_release(f);
    close(fd);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

static void test_pwrite_writes_all_at_offset_on_each_path(void **state)
{
    (void)state;
    fut_executor_t *pool;
    assert_int_equal(fut_pool_create(&pool, NULL), 0);
    for (int path = 0; path < 3; path++) {
        fut__io_force_offload(path == 1);
        fut_executor_t *loop = new_loop();
        int fd = temp_file();
        static char big[1 << 20];
        memset(big, 'a' + path, sizeof big);
        fut_t *f = fut_pwrite(path == 2 ? pool : loop, fd, big, sizeof big, 5);
        if (path == 2)
            assert_int_equal(fut_wait(f, -1), 0);
        else
            run_until(loop, f);
        assert_int_equal(fut_value_i64(f), sizeof big);
        fut_release(f);
        char head[6];
        assert_int_equal(pread(fd, head, 6, 0), 6);
        assert_memory_equal(head, "01234", 5);
        assert_int_equal(head[5], 'a' + path);
        assert_int_equal(lseek(fd, 0, SEEK_END), 5 + (off_t)sizeof big);
        close(fd);
        assert_int_equal(fut_executor_destroy(loop), 0);
    }
    fut__io_force_offload(0);
    assert_int_equal(fut_executor_destroy(pool), 0);
}

/* A task that keeps the pool's only worker busy until GO is set. */
static atomic_int g_go;

static fut_result_t hold_worker(void *arg)
{
    (void)arg;
    while (!atomic_load(&g_go))
        usleep(100);
    return fut_ok(NULL);
}

static void test_cancelled_pread_never_touches_the_buffer(void **state)
{
    (void)state;
    fut_executor_t *pool;
    fut_pool_opts_t o = {.threads = 1};
    assert_int_equal(fut_pool_create(&pool, &o), 0);
    atomic_store(&g_go, 0);
    fut_t *h = fut_async(pool, hold_worker, NULL);
    int fd = temp_file();
    char buf[8];
    memset(buf, 'X', sizeof buf);
    fut_t *f = fut_pread(pool, fd, buf, 4, 0); /* queued behind the hold */
    assert_int_equal(fut_cancel(f), 0);
    atomic_store(&g_go, 1);
    assert_int_equal(fut_wait(h, -1), 0);
    assert_int_equal(fut_executor_destroy(pool), 0); /* the job ran */
    assert_int_equal(fut_state(f), FUT_CANCELLED);
    assert_memory_equal(buf, "XXXXXXXX", 8);
    fut_release(f), fut_release(h);
    close(fd);
}

static void test_cancel_after_the_pread_is_ealready(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    int fd = temp_file();
    char buf[4];
    fut_t *f = fut_pread(loop, fd, buf, 4, 0);
    run_until(loop, f);
    assert_int_equal(fut_cancel(f), FUT_EALREADY);
    assert_int_equal(fut_value_i64(f), 4);
    fut_release(f);
    close(fd);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

static void test_file_ops_bad_input(void **state)
{
    (void)state;
    on_the_path();
    fut_executor_t *loop = new_loop();
    char buf[4];
    fut_t *fs[] = {
        fut_pread(NULL, 0, buf, 4, 0),   fut_pread(loop, -1, buf, 4, 0),
        fut_pread(loop, 0, buf, 4, -1),  fut_pread(loop, 0, NULL, 4, 0),
        fut_pwrite(NULL, 0, buf, 4, 0),  fut_pwrite(loop, -1, buf, 4, 0),
        fut_pwrite(loop, 0, buf, 4, -1), fut_pwrite(loop, 0, NULL, 4, 0),
    };
    for (size_t i = 0; i < sizeof fs / sizeof *fs; i++) {
        assert_int_equal(fut_error(fs[i]), FUT_EINVAL);
        fut_release(fs[i]);
    }
    for (int force = 0; force < 2; force++) {
        fut__io_force_offload(force);
        int p[2];
        assert_int_equal(pipe(p), 0);
        int dir = open("/tmp", O_RDONLY | O_DIRECTORY);
        assert_true(dir >= 0);
        /* Closed, and high enough that the ring's own fds do not take it. */
        int closed = dup2(p[1], 900);
        assert_int_equal(closed, 900);
        close(closed);
        struct {
            int fd, err;
        } cases[] = {{closed, -EBADF}, {dir, -EISDIR}, {p[0], -ESPIPE}};
        /* The ring reads a pipe as a stream (IORING_OP_READ ignores the
         * offset) and waits for data: FUT_IO_URING=all is not for pipes. */
        int n = g_ring && !force ? 2 : 3;
        for (int i = 0; i < n; i++) {
            fut_t *f = fut_pread(loop, cases[i].fd, buf, 4, 0);
            run_until(loop, f);
            assert_int_equal(fut_error(f), cases[i].err);
            fut_release(f);
        }
        close(p[0]), close(p[1]), close(dir);
    }
    fut__io_force_offload(0);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

/* ---- getaddrinfo -------------------------------------------------------- */

static void check_localhost(fut_executor_t *ex, fut_executor_t *loop)
{
    struct addrinfo hints = {.ai_family = AF_INET,
                             .ai_socktype = SOCK_STREAM};
    fut_t *f = fut_getaddrinfo(ex, "localhost", "80", &hints);
    if (loop)
        run_until(loop, f);
    else
        assert_int_equal(fut_wait(f, -1), 0);
    assert_int_equal(fut_error(f), 0);
    struct addrinfo *ai = fut_value(f);
    assert_non_null(ai);
    assert_int_equal(ai->ai_family, AF_INET);
    assert_int_equal(ai->ai_socktype, SOCK_STREAM);
    fut_release(f); /* frees the list (ASan: no leak) */
}

static void test_getaddrinfo_localhost_on_each_executor(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop(), *pool;
    assert_int_equal(fut_pool_create(&pool, NULL), 0);
    check_localhost(loop, loop);
    check_localhost(pool, NULL);
    check_localhost(fut_inline(), NULL);
    assert_int_equal(fut_executor_destroy(pool), 0);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

static void test_getaddrinfo_unknown_name_is_eai_noname(void **state)
{
    (void)state;
    fut_executor_t *loop = new_loop();
    fut_t *f = fut_getaddrinfo(loop, "nonexistent.invalid", NULL, NULL);
    run_until(loop, f);
    assert_int_equal(fut_error(f), FUT_EAI(EAI_NONAME));
    assert_string_equal(fut_strerror(fut_error(f)), gai_strerror(EAI_NONAME));
    fut_release(f);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

static void test_getaddrinfo_bad_input_is_einval(void **state)
{
    (void)state;
    fut_t *a = fut_getaddrinfo(NULL, "localhost", NULL, NULL);
    fut_t *b = fut_getaddrinfo(fut_inline(), NULL, NULL, NULL);
    assert_int_equal(fut_error(a), FUT_EINVAL);
    assert_int_equal(fut_error(b), FUT_EINVAL);
    fut_release(a), fut_release(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pread_on_a_loop_answers_from_the_page_cache),
        cmocka_unit_test(test_pread_forced_offload_runs_on_the_threads),
        cmocka_unit_test(test_pread_on_a_pool_and_inline),
        cmocka_unit_test(test_pread_past_eof_is_zero_and_at_eof_short),
        cmocka_unit_test(test_pwrite_writes_all_at_offset_on_each_path),
        cmocka_unit_test(test_pwrite_len_zero_fulfils_zero_and_writes_nothing),
        cmocka_unit_test(test_cancelled_pread_never_touches_the_buffer),
        cmocka_unit_test(test_cancel_after_the_pread_is_ealready),
        cmocka_unit_test(test_file_ops_bad_input),
        cmocka_unit_test(test_getaddrinfo_localhost_on_each_executor),
        cmocka_unit_test(test_getaddrinfo_unknown_name_is_eai_noname),
        cmocka_unit_test(test_getaddrinfo_bad_input_is_einval),
    };
    /* The loop's read cases again, every read through the ring. */
    const struct CMUnitTest ring[] = {
        cmocka_unit_test(test_pread_on_a_loop_answers_from_the_page_cache),
        cmocka_unit_test(test_pread_past_eof_is_zero_and_at_eof_short),
        cmocka_unit_test(test_file_ops_bad_input),
    };
    int failed = cmocka_run_group_tests_name("fallback", tests, fallback_run,
                                             NULL);
    return failed + cmocka_run_group_tests_name("io_uring", ring, ring_run,
                                                NULL);
}
