/* fut_pread on a loop through io_uring (executors/loop/io_uring.c): a read
 * of a file out of the page cache goes to the ring; a cancel of a read in
 * the ring wins at once from the loop thread and from another one, and
 * the buffer is never touched; a cancel racing the completion gives one
 * consistent outcome; destroying the loop with a read in the ring settles
 * it FUT_ESHUTDOWN; a loop whose ring cannot be made (io_uring_setup
 * refused by seccomp) reads through the offload threads.  Every test is
 * skipped, not passed, where this kernel refuses io_uring.
 *
 * A read that stays in the ring: with FUT_IO_URING=all (mode 2) every
 * read goes to the ring, and IORING_OP_READ on a pipe ignores the offset
 * and waits for data, so a read of an empty pipe sits there until the test
 * writes to it. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include <fut.h>

#include "internal.h" /* fut__uring_*, fut__io_offload_count */

#define MS (1000 * 1000ull)
enum { MODE_OFF = 0, MODE_MISS = 1, MODE_ALL = 2 };

static void need_ring(void)
{
    if (!fut__uring_supported())
        skip(); /* this kernel (or its seccomp policy) refuses io_uring */
}

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

/* Runs LOOP for one short round (its ring reaps what completed). */
static void run_a_little(fut_executor_t *loop)
{
    fut_t *d = fut_delay(loop, 1 * MS);
    assert_int_equal(fut_loop_run(loop, d), 0);
    fut_release(d);
}

/* Runs LOOP until FD (a pipe) is empty and the ring had time to reap. */
static void run_until_drained(fut_executor_t *loop, int fd)
{
    int n = 1;
    for (int i = 0; i < 10000 && n > 0; i++) {
        run_a_little(loop);
        assert_int_equal(ioctl(fd, FIONREAD, &n), 0);
    }
    assert_int_equal(n, 0);
    run_a_little(loop);
    run_a_little(loop);
}

/* Whether any page of FD's first SIZE bytes is in the page cache
 * (mincore: asks without reading anything in). */
static bool any_page_cached(int fd, size_t size)
{
    long page = sysconf(_SC_PAGESIZE);
    size_t pages = (size + (size_t)page - 1) / (size_t)page;
    void *m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    unsigned char *vec = malloc(pages);
    assert_true(m != MAP_FAILED);
    assert_non_null(vec);
    assert_int_equal(mincore(m, size, vec), 0);
    bool any = false;
    for (size_t i = 0; i < pages; i++)
        any |= vec[i] & 1;
    free(vec);
    munmap(m, size);
    return any;
}

/* A file of SIZE bytes (byte i is i % 251), written out and evicted from
 * the page cache, so RWF_NOWAIT says EAGAIN.  Skips the test where the
 * file system keeps it in memory anyway (tmpfs). */
static int evicted_file(size_t size)
{
    char name[] = "/var/tmp/fut_uring_XXXXXX";
    int fd = mkstemp(name);
    assert_true(fd >= 0);
    unlink(name);
    char *b = malloc(size);
    assert_non_null(b);
    for (size_t i = 0; i < size; i++)
        b[i] = (char)(i % 251);
    assert_int_equal(write(fd, b, size), (ssize_t)size);
    free(b);
    assert_int_equal(fsync(fd), 0);
    assert_int_equal(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
    if (any_page_cached(fd, size)) {
        close(fd);
        skip(); /* /var/tmp cannot evict here: no read would miss */
    }
    return fd;
}

static void test_read_missing_the_page_cache_goes_to_the_ring(void **state)
{
    (void)state;
    need_ring();
    fut__uring_set_mode(MODE_MISS);
    fut_executor_t *loop = new_loop();
    int fd = evicted_file(1 << 20);
    char buf[100];
    unsigned long off0 = fut__io_offload_count();
    fut_t *f = fut_pread(loop, fd, buf, sizeof buf, 300000);
    run_until(loop, f);
    assert_int_equal(fut_value_i64(f), sizeof buf);
    for (size_t i = 0; i < sizeof buf; i++)
        assert_int_equal(buf[i], (char)((300000 + i) % 251));
    assert_int_equal(fut__uring_submitted(loop), 1);
    assert_int_equal(fut__io_offload_count(), off0); /* no thread hand-off */
    fut_release(f);
    close(fd);
    assert_int_equal(fut_executor_destroy(loop), 0);
}

/* Made on the loop thread: the ring is entered at once. */
static fut_result_t pread_on_loop(void *arg)
{
    void **a = arg;
    return fut_adopt(
        fut_pread(fut_executor_current(), *(int *)a[0], a[1], 4096, 4096 * 3));
}

static void test_read_made_on_the_loop_thread_through_the_ring(void **state)
{
    (void)state;
    need_ring();
    fut__uring_set_mode(MODE_ALL);
    fut_executor_t *loop = new_loop();
    int fd = evicted_file(1 << 16);
    static char buf[4096];
    void *a[2] = {&fd, buf};
    fut_t *f = fut_async(loop, pread_on_loop, a);
    run_until(loop, f);
    assert_int_equal(fut_value_i64(f), 4096);
    assert_int_equal(buf[7], (char)((4096 * 3 + 7) % 251));
    assert_int_equal(fut__uring_submitted(loop), 1);
    fut_release(f);
    close(fd);
    assert_int_equal(fut_executor_destroy(loop), 0);
    fut__uring_set_mode(MODE_MISS);
}

static void test_read_over_4_mib_goes_to_the_threads(void **state)
{
    (void)state;
    need_ring();
    fut__uring_set_mode(MODE_ALL);
    fut_executor_t *loop = new_loop();
    size_t size = (4u << 20) + 4096;
    int fd = evicted_file(size);
    char *buf = malloc(size);
    assert_non_null(buf);
    unsigned long off0 = fut__io_offload_count();
    fut_t *f = fut_pread(loop, fd, buf, size, 0);
    run_until(loop, f);
    assert_int_equal(fut_value_i64(f), size);
    assert_int_equal(buf[size - 1], (char)((size - 1) % 251));
    assert_int_equal(fut__uring_submitted(loop), 0);
    assert_int_equal(fut__io_offload_count(), off0 + 1);
    fut_release(f);
    free(buf);
    close(fd);
    assert_int_equal(fut_executor_destroy(loop), 0);
    fut__uring_set_mode(MODE_MISS);
}

/* Reads 8 bytes of FD on a new loop: the reads its ring sent. */
static uint64_t ring_reads_of_one_pread(int fd)
{
    fut_executor_t *loop = new_loop();
    char buf[8];
    fut_t *f = fut_pread(loop, fd, buf, sizeof buf, 0);
    run_until(loop, f);
    assert_int_equal(fut_value_i64(f), sizeof buf);
    fut_release(f);
    uint64_t n = fut__uring_submitted(loop);
    assert_int_equal(fut_executor_destroy(loop), 0);
    return n;
}

static void test_fut_io_uring_environment_picks_the_path(void **state)
{
    (void)state;
    need_ring();
    int fd = evicted_file(1 << 16);
    fut__uring_set_mode(-1); /* read the environment again */
    setenv("FUT_IO_URING", "0", 1);
    assert_int_equal(ring_reads_of_one_pread(fd), 0); /* the threads */
    fut__uring_set_mode(-1);
    setenv("FUT_IO_URING", "all", 1);
    assert_int_equal(ring_reads_of_one_pread(fd), 1); /* cached now */
    fut__uring_set_mode(-1);
    unsetenv("FUT_IO_URING");
    assert_int_equal(ring_reads_of_one_pread(fd), 0); /* RWF_NOWAIT */
    assert_int_equal(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
    assert_false(any_page_cached(fd, 1 << 16));
    assert_int_equal(ring_reads_of_one_pread(fd), 1); /* a miss */
    close(fd);
    fut__uring_set_mode(MODE_MISS);
}

/* A read of an empty pipe, sitting in LOOP's ring. */
static fut_t *read_in_the_ring(fut_executor_t *loop, int *p, char *buf)
{
    assert_int_equal(pipe(p), 0);
    fut__uring_set_mode(MODE_ALL);
    uint64_t before = fut__uring_submitted(loop);
    fut_t *f = fut_pread(loop, p[0], buf, 4, 0);
    run_a_little(loop); /* the remote task enters it */
    assert_int_equal(fut__uring_submitted(loop), before + 1);
    assert_int_equal(fut_state(f), FUT_PENDING);
    return f;
}

static atomic_int g_cancel_rc = 1;

static fut_result_t cancel_task(void *arg)
{
    atomic_store(&g_cancel_rc, fut_cancel(arg));
    return fut_ok(NULL);
}

static void test_cancel_on_the_loop_thread_wins_at_once(void **state)
{
    (void)state;
    need_ring();
    fut_executor_t *loop = new_loop();
    int p[2];
    char buf[4] = "XXXX";
    fut_t *f = read_in_the_ring(loop, p, buf);
    fut_t *c = fut_async(loop, cancel_task, f); /* would deadlock if it
                                                   waited for the kernel */
    run_until(loop, c);
    assert_int_equal(atomic_load(&g_cancel_rc), 0);
    assert_int_equal(fut_state(f), FUT_CANCELLED);
    assert_int_equal(write(p[1], "abcd", 4), 4); /* the kernel reads it */
    run_until_drained(loop, p[0]);
    assert_memory_equal(buf, "XXXX", 4); /* into the bounce, not here */
    fut_release(c), fut_release(f);
    close(p[0]), close(p[1]);
    assert_int_equal(fut_executor_destroy(loop), 0);
    fut__uring_set_mode(MODE_MISS);
}

static void *cancel_thread(void *arg)
{
    atomic_store(&g_cancel_rc, fut_cancel(arg));
    return NULL;
}

static void test_cancel_from_another_thread_wins_at_once(void **state)
{
    (void)state;
    need_ring();
    fut_executor_t *loop = new_loop();
    int p[2];
    char buf[4] = "XXXX";
    fut_t *f = read_in_the_ring(loop, p, buf);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, cancel_thread, f), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(atomic_load(&g_cancel_rc), 0);
    assert_int_equal(write(p[1], "abcd", 4), 4);
    run_until_drained(loop, p[0]);
    assert_memory_equal(buf, "XXXX", 4);
    fut_release(f);
    close(p[0]), close(p[1]);
    assert_int_equal(fut_executor_destroy(loop), 0);
    fut__uring_set_mode(MODE_MISS);
}

/* The race: a thread writes the data and cancels while the loop reaps
 * and copies.  Either the cancel won (0, buffer untouched) or the read did
 * (FUT_EALREADY, the data in the buffer); never a mix. */
struct racer {
    fut_t *f;
    int wfd;
    atomic_int rc;
};

static void *write_then_cancel(void *arg)
{
    struct racer *r = arg;
    if (write(r->wfd, "abcd", 4) != 4)
        atomic_store(&r->rc, 99);
    else
        atomic_store(&r->rc, fut_cancel(r->f));
    return NULL;
}

static void test_cancel_racing_the_completion_has_one_outcome(void **state)
{
    (void)state;
    need_ring();
    fut_executor_t *loop = new_loop();
    int p[2];
    assert_int_equal(pipe(p), 0);
    fut__uring_set_mode(MODE_ALL);
    int won = 0, lost = 0;
    for (int round = 0; round < 300; round++) {
        char buf[4] = "XXXX";
        struct racer r = {.f = fut_pread(loop, p[0], buf, 4, 0), .wfd = p[1]};
        run_a_little(loop); /* in the ring */
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, write_then_cancel, &r), 0);
        run_until_drained(loop, p[0]);
        assert_int_equal(pthread_join(t, NULL), 0);
        int rc = atomic_load(&r.rc);
        if (rc == 0) {
            assert_int_equal(fut_state(r.f), FUT_CANCELLED);
            assert_memory_equal(buf, "XXXX", 4);
            won++;
        } else {
            assert_int_equal(rc, FUT_EALREADY);
            assert_int_equal(fut_value_i64(r.f), 4);
            assert_memory_equal(buf, "abcd", 4);
            lost++;
        }
        fut_release(r.f);
    }
    assert_int_equal(won + lost, 300);
    close(p[0]), close(p[1]);
    assert_int_equal(fut_executor_destroy(loop), 0);
    fut__uring_set_mode(MODE_MISS);
}

static void test_destroy_with_a_read_in_the_ring_is_eshutdown(void **state)
{
    (void)state;
    need_ring();
    fut_executor_t *loop = new_loop();
    int p[2];
    char buf[4] = "XXXX";
    fut_t *f = read_in_the_ring(loop, p, buf);
    assert_int_equal(fut_executor_destroy(loop), 0); /* returns: the read
                                                        is cancelled */
    assert_int_equal(fut_error(f), FUT_ESHUTDOWN);
    assert_int_equal(write(p[1], "abcd", 4), 4);
    assert_memory_equal(buf, "XXXX", 4);
    fut_release(f);
    close(p[0]), close(p[1]);
    fut__uring_set_mode(MODE_MISS);
}

static int fds_now(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own fd */
}

/* Destroy closes the loop's fds, the ring's and its eventfd among them,
 * and leaves the read's fd open for the caller. */
static void
test_destroy_with_a_read_in_the_ring_closes_only_its_own_fds(void **state)
{
    (void)state;
    need_ring();
    int before = fds_now();
    fut_executor_t *loop = new_loop();
    int p[2];
    char buf[4] = "XXXX";
    fut_t *f = read_in_the_ring(loop, p, buf);
    assert_true(fds_now() >= before + 6); /* + epoll, eventfd, ring, its
                                             eventfd, the pipe */
    assert_int_equal(fut_executor_destroy(loop), 0);
    assert_int_equal(fut_error(f), FUT_ESHUTDOWN);
    assert_true(fcntl(p[0], F_GETFD) >= 0); /* the caller's, still open */
    assert_int_equal(fds_now(), before + 2);
    fut_release(f);
    close(p[0]), close(p[1]);
    fut__uring_set_mode(MODE_MISS);
}

/* The ring's completions come to the loop as its eventfd's readiness,
 * which the loop's stats count (fd_events). */
static void test_ring_completion_counts_as_an_fd_event(void **state)
{
    (void)state;
    need_ring();
    fut_executor_t *loop = new_loop();
    int p[2];
    char buf[4] = "XXXX";
    fut_t *f = read_in_the_ring(loop, p, buf);
    fut_stats_t st;
    assert_int_equal(fut_executor_stats(loop, &st), 0);
    uint64_t events = st.fd_events;
    assert_int_equal(write(p[1], "abcd", 4), 4);
    run_until(loop, f);
    assert_int_equal(fut_value_i64(f), 4);
    assert_int_equal(fut_executor_stats(loop, &st), 0);
    assert_true(st.fd_events > events);
    fut_release(f);
    close(p[0]), close(p[1]);
    assert_int_equal(fut_executor_destroy(loop), 0);
    fut__uring_set_mode(MODE_MISS);
}

/* io_uring_setup fails with EPERM in this thread and the threads it starts
 * from now on (a seccomp filter: so this test runs last). */
static int refuse_io_uring_setup(void)
{
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof code / sizeof code[0], code};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

static void test_refused_ring_falls_back_to_the_threads(void **state)
{
    (void)state;
#if !defined(__x86_64__)
    skip(); /* the filter is written for x86-64 */
#else
    need_ring();
    assert_int_equal(refuse_io_uring_setup(), 0);
    fut__uring_set_mode(MODE_ALL);
    fut_executor_t *loop = new_loop();
    int fd = evicted_file(1 << 16);
    char buf[8];
    unsigned long off0 = fut__io_offload_count();
    for (int i = 0; i < 2; i++) { /* the second does not try again */
        fut_t *f = fut_pread(loop, fd, buf, sizeof buf, 1000);
        run_until(loop, f);
        assert_int_equal(fut_value_i64(f), sizeof buf);
        assert_int_equal(buf[3], (char)(1003 % 251));
        fut_release(f);
    }
    assert_int_equal(fut__uring_submitted(loop), 0);
    assert_int_equal(fut__io_offload_count(), off0 + 2);
    close(fd);
    assert_int_equal(fut_executor_destroy(loop), 0);
    fut__uring_set_mode(MODE_MISS);
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_missing_the_page_cache_goes_to_the_ring),
        cmocka_unit_test(test_read_made_on_the_loop_thread_through_the_ring),
        cmocka_unit_test(test_read_over_4_mib_goes_to_the_threads),
        cmocka_unit_test(test_fut_io_uring_environment_picks_the_path),
        cmocka_unit_test(test_cancel_on_the_loop_thread_wins_at_once),
        cmocka_unit_test(test_cancel_from_another_thread_wins_at_once),
        cmocka_unit_test(test_cancel_racing_the_completion_has_one_outcome),
        cmocka_unit_test(test_destroy_with_a_read_in_the_ring_is_eshutdown),
        cmocka_unit_test(
            test_destroy_with_a_read_in_the_ring_closes_only_its_own_fds),
        cmocka_unit_test(test_ring_completion_counts_as_an_fd_event),
        cmocka_unit_test(test_refused_ring_falls_back_to_the_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
