/* file_read -- reading a file in the page cache through each path, beside
 * a plain blocking pread loop measured in the same run:
 *
 *   rand4k: 4 KiB reads at random 4 KiB-aligned offsets of a 256 MiB file,
 *           64 in flight (pread: one after another, the baseline)
 *   seq1m:  the whole file in 1 MiB reads, one in flight
 *
 *   libfut   fut_pread on a loop, each completion continued on the loop
 *            (fut_finally) with the next read: RWF_NOWAIT on the loop
 *            thread; with FUT_IO_OFFLOAD=1 in the environment, the offload
 *            threads (impl=libfut-offload)
 *   uv       libuv's uv_fs_read (its thread pool), same shape
 *   uring    io_uring (liburing) with 64 (1) requests in the ring
 *
 *   file_read [FILE [ROUNDS]]   FILE default /var/tmp/fut_file_read.bin
 *
 * One line per impl and case: ns_per_op (median of ROUNDS, default 5,
 * rounds interleaved), min-max, and ratio = ns_per_op / pread's. */
#include <fut.h>

#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
    }
    for (off_t o = 0; o < (off_t)FILE_SIZE; o += BIG) /* into the cache */
        if (pread(g_fd, g_bufs, BIG, o) != BIG)
            abort();
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "/var/tmp/fut_file_read.bin";
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    if (rounds < 1)
        rounds = 1;
    const char *env = getenv("FUT_IO_OFFLOAD");
    const char *fut_name =
        env && *env && strcmp(env, "0") ? "libfut-offload" : "libfut-nowait";
    g_bufs = aligned_alloc(4096, (size_t)DEPTH * BIG);
    if (!g_bufs)
        return 1;
    open_file(path);
    const char *names[] = {"pread", fut_name, "uv", "uring"};
    uint64_t (*fns[])(struct run *) = {run_pread, run_libfut, run_uv,
                                       run_uring};
    for (int seq = 0; seq < 2; seq++) {
        size_t n = seq ? 4 * (FILE_SIZE / BIG) : 200000;
        uint64_t t[4][64];
        for (int k = 0; k < rounds && k < 64; k++)
            for (int i = 0; i < 4; i++) {
                struct run r = {.seq = seq, .n = n};
                t[i][k] = fns[i](&r) / n;
            }
        uint64_t med[4];
        for (int i = 0; i < 4; i++) {
            qsort(t[i], (size_t)rounds, sizeof t[i][0], cmp_u64);
            med[i] = t[i][rounds / 2];
        }
        for (int i = 1; i < 4; i++)
            printf("bench=file_read case=%s impl=%s reads=%zu rounds=%d "
                   "ns_per_op=%llu min=%llu max=%llu baseline=pread "
                   "baseline_ns_per_op=%llu ratio=%.2f\n",
                   seq ? "seq1m" : "rand4k", names[i], n, rounds,
                   (unsigned long long)med[i], (unsigned long long)t[i][0],
                   (unsigned long long)t[i][rounds - 1],
                   (unsigned long long)med[0],
                   med[0] ? (double)med[i] / (double)med[0] : 0.0);
    }
    close(g_fd);
    free(g_bufs);
    return 0;
}
