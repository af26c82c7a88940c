/* file_read -- reading a file through each path, beside a plain blocking
 * pread loop measured in the same run:
 *
 *   rand4k: 4 KiB reads at random 4 KiB-aligned offsets of a 256 MiB file,
 *           64 in flight (pread: one after another, the baseline)
 *   seq1m:  1 MiB reads in file order, one in flight
 *   each with the file in the page cache (-cached) and evicted before each
 *   run with posix_fadvise(POSIX_FADV_DONTNEED) (-evicted: rand4k 20000
 *   reads, some of which hit blocks an earlier read of the run brought in;
 *   seq1m one pass over the file, with the kernel's readahead)
 *
 *   libfut-uring     fut_pread on a loop, each completion continued on the
 *                    loop (fut_finally) with the next read: the default,
 *                    RWF_NOWAIT on the loop thread, else the loop's
 *                    io_uring ring
 *   libfut-uringall  FUT_IO_URING=all: every read through the ring
 *   libfut-nowait    FUT_IO_URING=0: RWF_NOWAIT, else the offload threads
 *   libfut-offload   FUT_IO_OFFLOAD=1: every read on the offload threads
 *   uv               libuv's uv_fs_read (its thread pool), same shape
 *   uring            raw io_uring (liburing) with 64 (1) requests in it
 *
 *   file_read [FILE [ROUNDS [IMPL CASE [READS]]]]
 *       FILE default /var/tmp/fut_file_read.bin; IMPL and CASE (e.g.
 *       libfut-uring rand4k-cached) run only that one, beside pread, for
 *       callgrind or strace (valgrind --trace-children=yes), READS reads
 *
 * Each run is a child process (fork, before the parent made any thread),
 * so each libfut path gets the environment it reads once; the impls'
 * runs are interleaved round by round, the order rotated each round.  One
 * line per impl and case: ns_per_op (median of ROUNDS, default 5),
 * min-max, ratio = ns_per_op / pread's median, and cpu_ns_per_op: the
 * child's CPU time (user + system, every thread; getrusage) per read,
 * median and min-max, which a loaded machine moves less than the wall
 * clock. */
#include <fut.h>

#include <fcntl.h>
#include <liburing.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define FILE_SIZE (256ull << 20)
#define DEPTH 64
#define SMALL 4096
#define BIG (1u << 20)

static int g_fd;
static uint64_t g_rng = 88172645463325252ull;
static char *g_bufs; /* DEPTH buffers of BIG bytes */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static off_t next_off(int seq, size_t *k)
{
    if (seq)
        return (off_t)((*k)++ % (FILE_SIZE / BIG)) * BIG;
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return (off_t)(g_rng % (FILE_SIZE / SMALL)) * SMALL;
}

/* ---- the cases ---------------------------------------------------------- */

struct run {
    int seq;       /* 0: rand4k, 1: seq1m */
    size_t n;      /* reads to do */
    size_t issued, done, k;
    fut_executor_t *loop;
};

static uint64_t run_pread(struct run *r)
{
    size_t len = r->seq ? BIG : SMALL;
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < r->n; i++)
        if (pread(g_fd, g_bufs, len, next_off(r->seq, &r->k)) != (ssize_t)len)
            abort();
    return now_ns() - t0;
}

struct lane {
    struct run *r;
    char *buf;
};

static fut_result_t lane_next(void *arg, fut_t *src);

static void lane_issue(struct lane *ln)
{
    struct run *r = ln->r;
    if (r->issued == r->n)
        return;
    r->issued++;
    size_t len = r->seq ? BIG : SMALL;
    fut_t *f = fut_pread(r->loop, g_fd, ln->buf, len, next_off(r->seq, &r->k));
    fut_release(fut_finally(f, r->loop, lane_next, ln));
}

static fut_result_t lane_next(void *arg, fut_t *src)
{
    struct lane *ln = arg;
    if (fut_value_i64(src) <= 0)
        abort();
    if (++ln->r->done == ln->r->n)
        fut_loop_stop(ln->r->loop);
    lane_issue(ln);
    return fut_ok(NULL);
}

static fut_result_t lanes_start(void *arg)
{
    struct lane *lanes = arg;
    int depth = lanes[0].r->seq ? 1 : DEPTH;
    for (int i = 0; i < depth; i++)
        lane_issue(&lanes[i]);
    return fut_ok(NULL);
}

static uint64_t run_libfut(struct run *r)
{
    if (fut_loop_create(&r->loop, NULL) != 0)
        abort();
    struct lane lanes[DEPTH];
    for (int i = 0; i < DEPTH; i++)
        lanes[i] = (struct lane){r, g_bufs + (size_t)i * BIG};
    uint64_t t0 = now_ns();
    fut_release(fut_async(r->loop, lanes_start, lanes));
    fut_loop_run(r->loop, NULL);
    uint64_t t = now_ns() - t0;
    fut_executor_destroy(r->loop);
    return t;
}

struct uvlane {
    uv_fs_t req;
    struct run *r;
    uv_loop_t *loop;
    char *buf;
};

static void uv_issue(struct uvlane *ln);

static void uv_done(uv_fs_t *req)
{
    struct uvlane *ln = (struct uvlane *)req;
    if (req->result <= 0)
        abort();
    uv_fs_req_cleanup(req);
    ln->r->done++;
    uv_issue(ln);
}

static void uv_issue(struct uvlane *ln)
{
    struct run *r = ln->r;
    if (r->issued == r->n)
        return;
    r->issued++;
    uv_buf_t b = uv_buf_init(ln->buf, r->seq ? BIG : SMALL);
    uv_fs_read(ln->loop, &ln->req, g_fd, &b, 1, next_off(r->seq, &r->k),
               uv_done);
}

static uint64_t run_uv(struct run *r)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct uvlane lanes[DEPTH];
    int depth = r->seq ? 1 : DEPTH;
    uint64_t t0 = now_ns();
    for (int i = 0; i < depth; i++) {
        lanes[i] = (struct uvlane){.r = r, .loop = &loop,
                                   .buf = g_bufs + (size_t)i * BIG};
        uv_issue(&lanes[i]);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uint64_t t = now_ns() - t0;
    uv_loop_close(&loop);
    return t;
}

static void uring_issue(struct io_uring *ring, struct run *r, int slot)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    size_t len = r->seq ? BIG : SMALL;
    io_uring_prep_read(sqe, g_fd, g_bufs + (size_t)slot * BIG, (unsigned)len,
                       (uint64_t)next_off(r->seq, &r->k));
    io_uring_sqe_set_data64(sqe, (uint64_t)slot);
    r->issued++;
}

static uint64_t run_uring(struct run *r)
{
    struct io_uring ring;
    if (io_uring_queue_init(DEPTH, &ring, 0) != 0)
        return 0;
    int depth = r->seq ? 1 : DEPTH;
    uint64_t t0 = now_ns();
    for (int i = 0; i < depth && r->issued < r->n; i++)
        uring_issue(&ring, r, i);
    io_uring_submit(&ring);
    while (r->done < r->n) {
        struct io_uring_cqe *cqe;
        if (io_uring_wait_cqe(&ring, &cqe) != 0 || cqe->res <= 0)
            abort();
        int slot = (int)io_uring_cqe_get_data64(cqe);
        io_uring_cqe_seen(&ring, cqe);
        r->done++;
        if (r->issued < r->n) {
            uring_issue(&ring, r, slot);
            io_uring_submit(&ring);
        }
    }
    uint64_t t = now_ns() - t0;
    io_uring_queue_exit(&ring);
    return t;
}

/* ---- driver ------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void open_file(const char *path)
{
    g_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    struct stat st;
    if (g_fd < 0 || fstat(g_fd, &st) != 0)
        abort();
    if ((uint64_t)st.st_size != FILE_SIZE) {
        for (off_t o = 0; o < (off_t)FILE_SIZE; o += BIG) {
            memset(g_bufs, (int)(o >> 20), BIG);
            if (pwrite(g_fd, g_bufs, BIG, o) != BIG)
                abort();
        }
        fsync(g_fd);
    }
}

static void warm(void)
{
    for (off_t o = 0; o < (off_t)FILE_SIZE; o += BIG) /* into the cache */
        if (pread(g_fd, g_bufs, BIG, o) != BIG)
            abort();
}

#define NIMPL 7

static const struct impl {
    const char *name, *env, *val; /* the environment the child runs with */
    uint64_t (*fn)(struct run *);
} g_impls[NIMPL] = {
    {"pread", NULL, NULL, run_pread},
    {"libfut-uring", NULL, NULL, run_libfut},
    {"libfut-uringall", "FUT_IO_URING", "all", run_libfut},
    {"libfut-nowait", "FUT_IO_URING", "0", run_libfut},
    {"libfut-offload", "FUT_IO_OFFLOAD", "1", run_libfut},
    {"uv", NULL, NULL, run_uv},
    {"uring", NULL, NULL, run_uring},
};

static uint64_t tv_ns(struct timeval tv)
{
    return (uint64_t)tv.tv_sec * 1000000000u + (uint64_t)tv.tv_usec * 1000u;
}

/* One run of IMPL in a child process: ns per read; *CPU: CPU time (user +
 * system, all the child's threads) per read. */
static uint64_t run_child(const struct impl *im, int seq, size_t n, int evict,
                          uint64_t *cpu)
{
    if (evict && posix_fadvise(g_fd, 0, 0, POSIX_FADV_DONTNEED) != 0)
        abort();
    int p[2];
    if (pipe(p) != 0)
        abort();
    pid_t pid = fork();
    if (pid == 0) {
        if (im->env)
            setenv(im->env, im->val, 1);
        struct run r = {.seq = seq, .n = n};
        uint64_t t[2] = {im->fn(&r) / n, 0};
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        t[1] = (tv_ns(ru.ru_utime) + tv_ns(ru.ru_stime)) / n;
        _exit(write(p[1], t, sizeof t) == sizeof t ? 0 : 1);
    }
    uint64_t t[2] = {0, 0};
    if (pid < 0 || read(p[0], t, sizeof t) != sizeof t)
        abort();
    *cpu = t[1];
    waitpid(pid, NULL, 0);
    close(p[0]), close(p[1]);
    return t[0];
}

static const char *g_only_impl, *g_only_case; /* NULL: all */
static size_t g_reads;                         /* 0: the case's own */

static void one_case(int seq, int evict, int rounds)
{
    char name[32];
    snprintf(name, sizeof name, "%s-%s", seq ? "seq1m" : "rand4k",
             evict ? "evicted" : "cached");
    if (g_only_case && strcmp(g_only_case, name) != 0)
        return;
    size_t n = evict ? (seq ? FILE_SIZE / BIG : 20000)
                     : (seq ? 4 * (FILE_SIZE / BIG) : 100000);
    if (g_reads)
        n = g_reads;
    uint64_t t[NIMPL][64], cpu[NIMPL][64];
    for (int k = 0; k < rounds; k++)
        for (int i = 0; i < NIMPL; i++) {
            int m = (i + k) % NIMPL;
            bool skip = m && g_only_impl &&
                        strcmp(g_only_impl, g_impls[m].name) != 0;
            cpu[m][k] = 0;
            t[m][k] = skip ? 0 : run_child(&g_impls[m], seq, n, evict,
                                           &cpu[m][k]);
        }
    for (int i = 0; i < NIMPL; i++) {
        qsort(t[i], (size_t)rounds, sizeof t[i][0], cmp_u64);
        qsort(cpu[i], (size_t)rounds, sizeof cpu[i][0], cmp_u64);
    }
    uint64_t base = t[0][rounds / 2];
    for (int i = 1; i < NIMPL; i++)
        if (t[i][rounds - 1])
            printf("bench=file_read case=%s impl=%s reads=%zu rounds=%d "
                   "ns_per_op=%llu min=%llu max=%llu baseline=pread "
                   "baseline_ns_per_op=%llu ratio=%.2f cpu_ns_per_op=%llu "
                   "cpu_min=%llu cpu_max=%llu baseline_cpu_ns_per_op=%llu\n",
                   name, g_impls[i].name, n, rounds,
                   (unsigned long long)t[i][rounds / 2],
                   (unsigned long long)t[i][0],
                   (unsigned long long)t[i][rounds - 1],
                   (unsigned long long)base,
                   base ? (double)t[i][rounds / 2] / (double)base : 0.0,
                   (unsigned long long)cpu[i][rounds / 2],
                   (unsigned long long)cpu[i][0],
                   (unsigned long long)cpu[i][rounds - 1],
                   (unsigned long long)cpu[0][rounds / 2]);
    fflush(stdout);
}

static void print_load(const char *when)
{
    double l[3];
    if (getloadavg(l, 3) == 3)
        printf("load_%s=%.2f\n", when, l[0]);
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "/var/tmp/fut_file_read.bin";
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    rounds = rounds < 1 ? 1 : rounds > 64 ? 64 : rounds;
    if (argc > 4)
        g_only_impl = argv[3], g_only_case = argv[4];
    if (argc > 5)
        g_reads = (size_t)atoll(argv[5]);
    g_bufs = aligned_alloc(4096, (size_t)DEPTH * BIG);
    if (!g_bufs)
        return 1;
    open_file(path);
    print_load("before");
    warm();
    for (int seq = 0; seq < 2; seq++)
        one_case(seq, 0, rounds);
    for (int seq = 0; seq < 2; seq++)
        one_case(seq, 1, rounds);
    print_load("after");
    close(g_fd);
    free(g_bufs);
    return 0;
}
