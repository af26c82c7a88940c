/* bench/mpi/mpi_bench -- libfut-mpi against raw MPI in the same program.
 *
 *   mpirun -np 2 mpi_bench rt    [n] [runs]   round trip of one small call
 *   mpirun -np 2 mpi_bench tput  [n] [runs]   n calls, many in flight
 *   mpirun -np R mpi_bench scale [chunks] [cost] [runs]   CPU-bound sum
 *   mpirun -np 2 mpi_bench rt1 raw|inline|pool [n]   one rt case alone
 *                (for callgrind: valgrind --tool=callgrind under mpirun)
 *
 * rt: rank 0 calls rank 1 and waits (fut_mpi_wait), n times, an 8-byte
 *   argument and an int64 back; baseline: MPI_Send/MPI_Recv ping-pong of 8
 *   bytes.  Two libfut-mpi cases: the function run inline on the serving
 *   rank's MPI thread (opts.run_inline) and on its pool (one worker).
 *   Each run measures the raw ping-pong, then each case on a fresh group;
 *   the ratio is the median of the runs' own ratios.
 * tput: rank 0 makes n calls to rank 1 (max_in_flight 64), then waits for
 *   them all; baseline: raw messages with the same window (64 MPI_Isend in
 *   flight, rank 1 answering each).  Reported as calls (round trips) per s.
 * scale: sum of cost(i) over chunks pieces (each a loop of COST iterations
 *   of a multiply-add), called with FUT_MPI_ANY; every rank serves (rank 0
 *   too), one pool worker per rank.  Baseline: the same sum on rank 0,
 *   sequentially, before the group exists, while the other ranks sleep in
 *   a barrier.  Run it under -np 1, 2, 4.
 *
 * One line per result (key=value), as the other benchmarks print. */
#include <fut/mpi.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_RUNS 32

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median (and min, max) of V[0..n). */
static double median(double *v, int n, double *min, double *max)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    *min = v[0];
    *max = v[n - 1];
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int g_rank;

/* ---- the remote functions ------------------------------------------------ */

static fut_result_t echo(const void *arg, size_t len, void *ud)
{
    (void)ud;
    int64_t v = 0;
    memcpy(&v, arg, len < sizeof v ? len : sizeof v);
    return fut_ok_i64(v);
}

static uint64_t cost_fn(uint64_t i, uint64_t cost)
{
    uint64_t x = i * 0x9e3779b97f4a7c15ull + 1;
    for (uint64_t k = 0; k < cost; k++)
        x = x * 6364136223846793005ull + 1442695040888963407ull;
    return x >> 40;
}

static fut_result_t chunk(const void *arg, size_t len, void *ud)
{
    (void)ud;
    uint64_t a[2] = {0, 0}; /* index, cost */
    memcpy(a, arg, len < sizeof a ? len : sizeof a);
    return fut_ok_i64((int64_t)cost_fn(a[0], a[1]));
}

static fut_mpi_t *group(const fut_mpi_opts_t *o)
{
    fut_mpi_t *m;
    if (fut_mpi_create(&m, MPI_COMM_WORLD, o) != 0 ||
        fut_mpi_register(m, "echo", echo, NULL) != 0 ||
        fut_mpi_register(m, "chunk", chunk, NULL) != 0)
        MPI_Abort(MPI_COMM_WORLD, 1);
    return m;
}

/* ---- rt ------------------------------------------------------------------ */

static double raw_pingpong(long n)
{
    int64_t v = 0;
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        if (g_rank == 0) {
            MPI_Send(&v, 8, MPI_BYTE, 1, 0, MPI_COMM_WORLD);
            MPI_Recv(&v, 8, MPI_BYTE, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else if (g_rank == 1) {
            MPI_Recv(&v, 8, MPI_BYTE, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            MPI_Send(&v, 8, MPI_BYTE, 0, 0, MPI_COMM_WORLD);
        }
    }
    return (now_s() - t0) / (double)n * 1e9;
}

/* N calls from rank 0 to rank 1, one at a time; ns per round trip on rank
 * 0 (0 elsewhere). */
static double fut_pingpong(long n, bool run_inline)
{
    fut_mpi_opts_t o = {.workers = 1, .run_inline = run_inline};
    fut_mpi_t *m = group(&o);
    double ns = 0;
    if (g_rank == 0) {
        double t0 = 0;
        for (long i = -n / 10; i < n; i++) { /* a tenth as warm-up */
            if (i == 0)
                t0 = now_s();
            fut_t *f = fut_mpi_call(m, 1, "echo", &i, sizeof i);
            if (fut_mpi_wait(m, f, -1) != 0 || fut_value_i64(f) != i)
                MPI_Abort(MPI_COMM_WORLD, 2);
            fut_release(f);
        }
        ns = (now_s() - t0) / (double)n * 1e9;
    } else {
        fut_mpi_serve(m);
    }
    fut_mpi_destroy(m);
    return ns;
}

static void report(const char *bench, const char *impl, long n, int runs,
                   double *v, double *ratio, const char *unit)
{
    double lo, hi, rlo, rhi;
    double med = median(v, runs, &lo, &hi);
    printf("bench=%s impl=%s n=%ld runs=%d %s=%.3g min=%.3g max=%.3g", bench,
           impl, n, runs, unit, med, lo, hi);
    if (ratio) {
        double rmed = median(ratio, runs, &rlo, &rhi);
        printf(" ratio=%.2f ratio_min=%.2f ratio_max=%.2f", rmed, rlo, rhi);
    }
    printf("\n");
    fflush(stdout);
}

static void bench_rt(long n, int runs)
{
    double raw[MAX_RUNS], in[MAX_RUNS], pool[MAX_RUNS], rin[MAX_RUNS],
        rpool[MAX_RUNS];
    for (int r = 0; r < runs; r++) {
        raw[r] = raw_pingpong(n);
        in[r] = fut_pingpong(n, true);
        pool[r] = fut_pingpong(n, false);
        rin[r] = in[r] / raw[r];
        rpool[r] = pool[r] / raw[r];
    }
    if (g_rank != 0)
        return;
    report("mpi_rt", "raw_send_recv", n, runs, raw, NULL, "ns_per_rt");
    report("mpi_rt", "fut_inline", n, runs, in, rin, "ns_per_rt");
    report("mpi_rt", "fut_pool", n, runs, pool, rpool, "ns_per_rt");
}

/* One rt case alone, N round trips, no output: what callgrind counts (the
 * difference of two N cancels the set-up). */
static void rt_one(const char *which, long n)
{
    if (!strcmp(which, "raw"))
        raw_pingpong(n);
    else
        fut_pingpong(n, !strcmp(which, "inline"));
}

/* ---- tput ---------------------------------------------------------------- */

enum { WINDOW = 64 };

static double raw_window(long n)
{
    int64_t out[WINDOW], in[WINDOW];
    MPI_Request req[WINDOW];
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = now_s();
    if (g_rank == 0) { /* WINDOW requests out, each answered */
        for (long i = 0; i < n; i += WINDOW) {
            int k = (int)(n - i < WINDOW ? n - i : WINDOW);
            for (int j = 0; j < k; j++) {
                out[j] = i + j;
                MPI_Irecv(&in[j], 8, MPI_BYTE, 1, 1, MPI_COMM_WORLD,
                          &req[j]);
                MPI_Send(&out[j], 8, MPI_BYTE, 1, 0, MPI_COMM_WORLD);
            }
            MPI_Waitall(k, req, MPI_STATUSES_IGNORE);
        }
    } else if (g_rank == 1) {
        for (long i = 0; i < n; i++) {
            MPI_Recv(&in[0], 8, MPI_BYTE, 0, 0, MPI_COMM_WORLD,
                     MPI_STATUS_IGNORE);
            MPI_Send(&in[0], 8, MPI_BYTE, 0, 1, MPI_COMM_WORLD);
        }
    }
    return (double)n / (now_s() - t0);
}

static double fut_window(long n, bool run_inline)
{
    fut_mpi_opts_t o = {.workers = 1, .run_inline = run_inline,
                        .max_in_flight = WINDOW};
    fut_mpi_t *m = group(&o);
    double per_s = 0;
    if (g_rank == 0) {
        fut_t **fs = malloc((size_t)n * sizeof *fs);
        double t0 = now_s();
        for (long i = 0; i < n; i++)
            fs[i] = fut_mpi_call(m, 1, "echo", &i, sizeof i);
        for (long i = 0; i < n; i++) {
            if (fut_mpi_wait(m, fs[i], -1) != 0 || fut_value_i64(fs[i]) != i)
                MPI_Abort(MPI_COMM_WORLD, 3);
        }
        per_s = (double)n / (now_s() - t0);
        for (long i = 0; i < n; i++)
            fut_release(fs[i]);
        free(fs);
    } else {
        fut_mpi_serve(m);
    }
    fut_mpi_destroy(m);
    return per_s;
}

static void bench_tput(long n, int runs)
{
    double raw[MAX_RUNS], in[MAX_RUNS], pool[MAX_RUNS], rin[MAX_RUNS],
        rpool[MAX_RUNS];
    for (int r = 0; r < runs; r++) {
        raw[r] = raw_window(n);
        in[r] = fut_window(n, true);
        pool[r] = fut_window(n, false);
        rin[r] = raw[r] / in[r]; /* > 1: libfut-mpi slower */
        rpool[r] = raw[r] / pool[r];
    }
    if (g_rank != 0)
        return;
    report("mpi_tput", "raw_window64", n, runs, raw, NULL, "rt_per_s");
    report("mpi_tput", "fut_inline", n, runs, in, rin, "rt_per_s");
    report("mpi_tput", "fut_pool", n, runs, pool, rpool, "rt_per_s");
}

/* ---- scale --------------------------------------------------------------- */

/* A barrier the waiting ranks sleep through (MPI_Barrier spins, and would
 * take cores from rank 0's sequential baseline). */
static void sleepy_barrier(void)
{
    MPI_Request req;
    int done = 0;
    MPI_Ibarrier(MPI_COMM_WORLD, &req);
    while (MPI_Test(&req, &done, MPI_STATUS_IGNORE) == MPI_SUCCESS && !done) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

static void bench_scale(long chunks, long cost, int runs)
{
    double seq[MAX_RUNS], par[MAX_RUNS], speed[MAX_RUNS];
    int size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    for (int r = 0; r < runs; r++) {
        uint64_t want = 0, got = 0;
        double t0 = now_s();
        if (g_rank == 0)
            for (long i = 0; i < chunks; i++)
                want += cost_fn((uint64_t)i, (uint64_t)cost);
        seq[r] = now_s() - t0;
        sleepy_barrier();
        fut_mpi_opts_t o = {.workers = 1};
        fut_mpi_t *m = group(&o);
        if (g_rank == 0) {
            fut_t **fs = malloc((size_t)chunks * sizeof *fs);
            t0 = now_s();
            for (long i = 0; i < chunks; i++) {
                uint64_t a[2] = {(uint64_t)i, (uint64_t)cost};
                fs[i] = fut_mpi_call(m, FUT_MPI_ANY, "chunk", a, sizeof a);
            }
            for (long i = 0; i < chunks; i++) {
                fut_mpi_wait(m, fs[i], -1);
                got += (uint64_t)fut_value_i64(fs[i]);
                fut_release(fs[i]);
            }
            par[r] = now_s() - t0;
            speed[r] = seq[r] / par[r];
            free(fs);
            if (got != want)
                MPI_Abort(MPI_COMM_WORLD, 4);
        } else {
            fut_mpi_serve(m);
        }
        fut_mpi_destroy(m);
    }
    if (g_rank != 0)
        return;
    double lo, hi, slo, shi, plo, phi;
    double s = median(seq, runs, &lo, &hi), p = median(par, runs, &plo, &phi);
    double sp = median(speed, runs, &slo, &shi);
    printf("bench=mpi_scale ranks=%d chunks=%ld cost=%ld runs=%d "
           "seq_ms=%.1f par_ms=%.1f par_min=%.1f par_max=%.1f "
           "speedup=%.2f speedup_min=%.2f speedup_max=%.2f\n",
           size, chunks, cost, runs, s * 1e3, p * 1e3, plo * 1e3, phi * 1e3,
           sp, slo, shi);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    int level;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &level);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    const char *mode = argc > 1 ? argv[1] : "";
    long a = argc > 2 ? atol(argv[2]) : 0, b = argc > 3 ? atol(argv[3]) : 0;
    int runs = argc > 4 ? atoi(argv[4]) : 5;
    int size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (!strcmp(mode, "rt") && size >= 2)
        bench_rt(a > 0 ? a : 20000, b > 0 && b <= MAX_RUNS ? (int)b : 5);
    else if (!strcmp(mode, "rt1") && size >= 2 && argc > 2)
        rt_one(argv[2], argc > 3 ? atol(argv[3]) : 20000);
    else if (!strcmp(mode, "tput") && size >= 2)
        bench_tput(a > 0 ? a : 100000, b > 0 && b <= MAX_RUNS ? (int)b : 5);
    else if (!strcmp(mode, "scale"))
        bench_scale(a > 0 ? a : 64, b > 0 ? b : 2000000,
                    runs > 0 && runs <= MAX_RUNS ? runs : 5);
    else if (g_rank == 0)
        fprintf(stderr, "usage: mpirun -np 2 mpi_bench rt|tput [n] [runs]\n"
                        "       mpirun -np R mpi_bench scale [chunks] [cost] "
                        "[runs]\n");
    MPI_Finalize();
    return 0;
}
