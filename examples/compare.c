/* fut-compare -- the same work, written once as future chains, under each
 * executor, measured: which one fits which kind of work.
 *
 *   inline     everything on the main thread, one request after another
 *   pool       N worker threads; requests are blocking calls inside tasks
 *   loop       one thread; requests are non-blocking sockets whose waits
 *              are fut_fd_ready futures, so all of them are in flight at once
 *   loop+pool  I/O on the loop, CPU hopped to the pool and back
 *
 * Workloads: io (requests to a loopback service that answers after a
 * latency), cpu (hashing generated buffers), mixed (each response is hashed
 * before the reply stage) and pitfall (the request is a blocking call even
 * on the loop: the loop degrades to inline speed, and its stall detector
 * says so through the log hook).
 *
 * The service is a child process (compare.h), started before any thread.
 * `fut-compare --help` lists the options; `--smoke` runs tiny sizes and
 * exits 0 when every workload's checksum agrees across executors. */
#include "compare.h"

#include <getopt.h>
#include <stdatomic.h>
#include <sys/resource.h>

enum { W_IO, W_CPU, W_MIXED, W_PITFALL, W_N };
enum { E_INLINE, E_POOL, E_LOOP, E_LOOPPOOL, E_N };

static const char *const wl_name[W_N] = {"io", "cpu", "mixed", "pitfall"};
static const char *const wl_title[W_N] = {"I/O-bound", "CPU-bound", "Mixed",
                                          "Blocking in the loop"};
static const char *const ex_name[E_N] = {"inline", "pool", "loop", "loop+pool"};
static const char *const ex_color[E_N] = {"#8c8c8c", "#e8a33d", "#3c78d8",
                                          "#56a556"};

struct config {
    unsigned requests, latency_ms, chunks, chunk_kib, mixed, pitfall;
    unsigned workers, runs, stall_ms;
    bool wl[W_N], ex[E_N], smoke;
    const char *json, *svg;
};

/* One measured cell: a workload under an executor. */
struct cell {
    bool done;
    unsigned items, runs;
    double wall_ms[16], cpu_ms[16];
    uint64_t stalls[16];
    double wall, cpu;  /* medians */
    uint64_t stall;    /* median */
    uint64_t checksum; /* identical in every run, else `mismatch` */
    bool mismatch;
    int err;
};

static struct config cfg = {
    .requests = 200,
    .latency_ms = 20,
    .chunks = 48,
    .chunk_kib = 2048,
    .mixed = 24,
    .pitfall = 10,
    .workers = 0,
    .runs = 3,
    .stall_ms = 10,
};
static struct cell cells[W_N][E_N];
static uint16_t g_port;       /* written before any thread starts */
static unsigned g_workers;    /* the pool's actual size */
static atomic_ulong g_stalls; /* stall reports heard through the log hook */

/* ---- the work ----------------------------------------------------------- */

/* Where a chain's stages run.  io: the requests; cpu: the hashing. */
struct xenv {
    fut_executor_t *io, *cpu, *loop, *pool;
    bool async_io; /* requests through fut_fd_ready, else blocking calls */
};

struct item {
    const struct xenv *x;
    uint64_t key;
};

/* A few milliseconds of real computation: fill a buffer from SEED, then
 * FNV-1a over it. */
static uint64_t hash_chunk(uint64_t seed)
{
    size_t n = (size_t)cfg.chunk_kib * 1024 / 8;
    uint64_t *buf = malloc(n * 8), s = seed | 1;
    if (!buf)
        return 0;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        buf[i] = s;
    }
    uint64_t h = fnv1a(FNV_INIT, buf, n * 8);
    free(buf);
    return h;
}

static fut_result_t fetch_blocking(void *arg)
{
    const struct item *it = arg;
    uint64_t v = 0;
    int err = svc_call_blocking(g_port, it->key, 0, &v);
    return err ? fut_fail(err) : fut_ok_i64((int64_t)v);
}

/* The request stage: non-blocking on a loop, blocking elsewhere. */
static fut_result_t fetch(void *arg)
{
    const struct item *it = arg;
    if (it->x->async_io)
        return fut_adopt(svc_call_async(it->x->loop, g_port, it->key, 0));
    return fetch_blocking(arg);
}

static fut_result_t compute(void *arg)
{
    return fut_ok_i64((int64_t)hash_chunk(((const struct item *)arg)->key));
}

static fut_result_t digest(void *arg, fut_t *src)
{
    (void)arg;
    return fut_ok_i64((int64_t)hash_chunk((uint64_t)fut_value_i64(src)));
}

static fut_result_t reply(void *arg, fut_t *src)
{
    const struct item *it = arg;
    return fut_ok_i64((int64_t)mix64((uint64_t)fut_value_i64(src) + it->key));
}

/* The chains, written once; X decides where each stage runs. */
static fut_t *chain(int w, struct item *it)
{
    const struct xenv *x = it->x;
    fut_t *f;
    switch (w) {
    case W_IO:
        return fut_async(x->io, fetch, it);
    case W_CPU:
        return fut_async(x->cpu, compute, it);
    case W_MIXED:
        f = fut_async(x->io, fetch, it);
        f = fut_then(f, x->cpu, digest, it);  /* hop to the CPU executor */
        return fut_then(f, x->io, reply, it); /* and back */
    default: /* W_PITFALL: a blocking call wherever I/O runs, even a loop */
        return fut_async(x->io, fetch_blocking, it);
    }
}

/* ---- measuring ----------------------------------------------------------- */

static void on_log(void *ud, const fut_log_event_t *ev)
{
    (void)ud;
    if (ev->kind == FUT_LOG_STALL)
        atomic_fetch_add_explicit(&g_stalls, 1, memory_order_relaxed);
    else if (ev->level >= FUT_LOG_WARN)
        fprintf(stderr, "\nfut: %s\n", ev->msg);
}

static double cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static unsigned items_of(int w)
{
    const unsigned n[W_N] = {cfg.requests, cfg.chunks, cfg.mixed, cfg.pitfall};
    return n[w];
}

static int make_xenv(int e, struct xenv *x)
{
    memset(x, 0, sizeof *x);
    int err = 0;
    if (e == E_POOL || e == E_LOOPPOOL) {
        fut_pool_opts_t po = {.threads = cfg.workers};
        err = fut_pool_create(&x->pool, &po);
    }
    if (!err && (e == E_LOOP || e == E_LOOPPOOL)) {
        fut_loop_opts_t lo = {.stall_ns = (uint64_t)cfg.stall_ms * 1000000};
        err = fut_loop_create(&x->loop, &lo);
    }
    x->io = x->loop ? x->loop : x->pool ? x->pool : fut_inline();
    x->cpu = x->pool ? x->pool : x->io;
    x->async_io = x->loop != NULL;
    if (x->pool && !g_workers) {
        fut_stats_t st;
        if (fut_executor_stats(x->pool, &st) == 0)
            g_workers = st.workers;
    }
    return err;
}

static void free_xenv(struct xenv *x)
{
    if (x->pool)
        fut_executor_destroy(x->pool);
    if (x->loop)
        fut_executor_destroy(x->loop);
}

/* One run of workload W on X: returns 0 and fills run R of C. */
static int run_once(int w, const struct xenv *x, struct cell *c, unsigned r)
{
    unsigned n = items_of(w);
    struct item *items = calloc(n, sizeof *items);
    fut_t **fs = calloc(n, sizeof *fs);
    if (!items || !fs) {
        free(items);
        free(fs);
        return FUT_ENOMEM;
    }
    atomic_store(&g_stalls, 0);
    double c0 = cpu_ms();
    uint64_t t0 = now_ns();
    for (unsigned i = 0; i < n; i++) {
        items[i].x = x;
        items[i].key = (uint64_t)w << 32 | i;
        fs[i] = chain(w, &items[i]);
    }
    fut_t *all = fut_all(fs, n);
    /* A safety net, not a measurement: a broken run ends instead of hanging. */
    fut_t *until = fut_timeout(fut_retain(all), 300ull * 1000000000);
    if (x->loop)
        fut_loop_run(x->loop, until);
    else
        fut_wait(until, -1);
    uint64_t t1 = now_ns();
    c->cpu_ms[r] = cpu_ms() - c0;
    c->wall_ms[r] = (double)(t1 - t0) / 1e6;
    c->stalls[r] = atomic_load(&g_stalls);
    int err = fut_error(until);
    uint64_t sum = FNV_INIT;
    for (unsigned i = 0; !err && i < n; i++) {
        uint64_t v = (uint64_t)fut_value_i64(fut_input(all, i));
        sum = fnv1a(sum, &v, sizeof v);
    }
    if (!err && r > 0 && sum != c->checksum)
        c->mismatch = true;
    c->checksum = sum;
    fut_release(until);
    fut_release(all);
    free(fs);
    free(items);
    return err;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *v, unsigned n)
{
    double s[16];
    memcpy(s, v, n * sizeof *v);
    qsort(s, n, sizeof *s, cmp_double);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static void progress(int done, int total, int w, int e, unsigned r)
{
    static int tty = -1;
    if (tty < 0)
        tty = isatty(2);
    if (tty)
        fprintf(stderr, "\r\033[K[%d/%d] %s on %s, run %u/%u", done + 1, total,
                wl_name[w], ex_name[e], r + 1, cfg.runs);
    else if (r == 0)
        fprintf(stderr, "[%d/%d] %s on %s (%u runs)\n", done + 1, total,
                wl_name[w], ex_name[e], cfg.runs);
}

static int measure(int w, int e, int done, int total)
{
    struct cell *c = &cells[w][e];
    struct xenv x;
    c->items = items_of(w);
    c->err = make_xenv(e, &x);
    for (unsigned r = 0; !c->err && r < cfg.runs; r++) {
        progress(done, total, w, e, r);
        c->err = run_once(w, &x, c, r);
        c->runs = r + 1;
    }
    free_xenv(&x);
    if (c->err) {
        fprintf(stderr, "\n%s on %s failed: %s\n", wl_name[w], ex_name[e],
                fut_strerror(c->err));
        return c->err;
    }
    double st[16];
    for (unsigned r = 0; r < c->runs; r++)
        st[r] = (double)c->stalls[r];
    c->wall = median(c->wall_ms, c->runs);
    c->cpu = median(c->cpu_ms, c->runs);
    c->stall = (uint64_t)median(st, c->runs);
    c->done = true;
    return 0;
}

/* ---- verdicts --------------------------------------------------------------
 */

static int baseline(int w)
{
    for (int e = 0; e < E_N; e++)
        if (cells[w][e].done)
            return e;
    return -1;
}

static double speedup(int w, int e)
{
    int b = baseline(w);
    return cells[w][e].wall > 0 ? cells[w][b].wall / cells[w][e].wall : 0;
}

static const char *fmt_ratio(char *buf, size_t len, double r)
{
    snprintf(buf, len, r >= 10 ? "%.0fx" : r >= 0.995 ? "%.1fx" : "%.2fx", r);
    return buf;
}

/* "I/O-bound: loop 161x faster than inline, loop+pool 158x, pool 2.0x (2
 * workers)": every number comes from the cells. */
static void verdict(int w, char *out, size_t len)
{
    int b = baseline(w), order[E_N], n = 0;
    /* The pitfall is about the loops: they come first. */
    static const int pitfall_order[E_N] = {E_LOOP, E_LOOPPOOL, E_POOL,
                                           E_INLINE};
    for (int i = 0; i < E_N; i++) {
        int e = w == W_PITFALL ? pitfall_order[i] : i;
        if (e != b && cells[w][e].done)
            order[n++] = e;
    }
    for (int i = 1; w != W_PITFALL && i < n; i++) /* best first */
        for (int j = i;
             j > 0 && speedup(w, order[j]) > speedup(w, order[j - 1]); j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    size_t k = (size_t)snprintf(out, len, "%s:", wl_title[w]);
    if (n == 0) /* nothing to compare with */
        k += (size_t)snprintf(out + k, len - k, " %s only, %.1f ms", ex_name[b],
                              cells[w][b].wall);
    for (int i = 0; i < n && k < len; i++) {
        int e = order[i];
        double r = speedup(w, e);
        char rb[32];
        k += (size_t)snprintf(out + k, len - k, "%s %s %s%s%s", i ? "," : "",
                              ex_name[e], fmt_ratio(rb, sizeof rb, r),
                              i           ? ""
                              : r >= 1.25 ? " faster than "
                                          : " ",
                              i ? "" : ex_name[b]);
        if ((e == E_POOL || e == E_LOOPPOOL) && w != W_PITFALL && k < len)
            k += (size_t)snprintf(out + k, len - k,
                                  w == W_CPU ? " (%u workers on %ld cores)"
                                             : " (%u workers)",
                                  g_workers, sysconf(_SC_NPROCESSORS_ONLN));
        if (cells[w][e].stall && k < len)
            k += (size_t)snprintf(out + k, len - k,
                                  " with %llu of %u callbacks reported as "
                                  "stalls",
                                  (unsigned long long)cells[w][e].stall,
                                  cells[w][e].items);
    }
    if (w == W_PITFALL && cells[W_IO][E_LOOP].done &&
        baseline(W_IO) == E_INLINE && k < len) {
        char rb[32];
        snprintf(out + k, len - k,
                 "; the loop waiting through fut_fd_ready instead (io): %s",
                 fmt_ratio(rb, sizeof rb, speedup(W_IO, E_LOOP)));
    }
}

/* ---- output ---------------------------------------------------------------
 */

static void print_table(void)
{
    printf("\n%-8s %-10s %6s %10s %11s %9s %7s  %s\n", "workload", "executor",
           "items", "wall ms", "items/s", "cpu ms", "stalls", "checksum");
    for (int w = 0; w < W_N; w++)
        for (int e = 0; e < E_N; e++) {
            const struct cell *c = &cells[w][e];
            if (!c->done)
                continue;
            printf("%-8s %-10s %6u %10.1f %11.1f %9.1f %7llu  %016llx%s\n",
                   wl_name[w], ex_name[e], c->items, c->wall,
                   c->items / (c->wall / 1e3), c->cpu,
                   (unsigned long long)c->stall,
                   (unsigned long long)c->checksum,
                   c->mismatch ? " (differs between runs!)" : "");
        }
}

/* True if every workload's checksum is the same under every executor. */
static bool checksums_agree(int w)
{
    int b = baseline(w);
    for (int e = 0; b >= 0 && e < E_N; e++)
        if (cells[w][e].done && (cells[w][e].mismatch ||
                                 cells[w][e].checksum != cells[w][b].checksum))
            return false;
    return true;
}

static void json_list(FILE *f, const double *v, unsigned n)
{
    fputc('[', f);
    for (unsigned i = 0; i < n; i++)
        fprintf(f, "%s%.3f", i ? ", " : "", v[i]);
    fputc(']', f);
}

static int write_json(const char *path, const char *when)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return -1;
    }
    double load[3] = {0, 0, 0};
    getloadavg(load, 3);
    fprintf(f,
            "{\n  \"program\": \"fut-compare\",\n  \"version\": \"%s\",\n"
            "  \"date\": \"%s\",\n  \"cpus\": %ld,\n"
            "  \"loadavg\": [%.2f, %.2f, %.2f],\n",
            FUT_VERSION_STRING, when, sysconf(_SC_NPROCESSORS_ONLN), load[0],
            load[1], load[2]);
    fprintf(f,
            "  \"config\": {\"requests\": %u, \"latency_ms\": %u, "
            "\"chunks\": %u, \"chunk_kib\": %u, \"mixed_requests\": %u, "
            "\"pitfall_requests\": %u, \"workers\": %u, \"runs\": %u, "
            "\"stall_ms\": %u},\n",
            cfg.requests, cfg.latency_ms, cfg.chunks, cfg.chunk_kib, cfg.mixed,
            cfg.pitfall, g_workers, cfg.runs, cfg.stall_ms);
    fprintf(f, "  \"results\": [");
    bool first = true;
    for (int w = 0; w < W_N; w++)
        for (int e = 0; e < E_N; e++) {
            const struct cell *c = &cells[w][e];
            if (!c->done)
                continue;
            fprintf(f,
                    "%s\n    {\"workload\": \"%s\", \"executor\": \"%s\", "
                    "\"items\": %u, \"runs\": %u, \"wall_ms\": %.3f, "
                    "\"items_per_s\": %.3f, \"cpu_ms\": %.3f, "
                    "\"stalls\": %llu, \"speedup\": %.4f, "
                    "\"checksum\": \"%016llx\",\n     \"wall_ms_runs\": ",
                    first ? "" : ",", wl_name[w], ex_name[e], c->items, c->runs,
                    c->wall, c->items / (c->wall / 1e3), c->cpu,
                    (unsigned long long)c->stall, speedup(w, e),
                    (unsigned long long)c->checksum);
            json_list(f, c->wall_ms, c->runs);
            fprintf(f, ", \"cpu_ms_runs\": ");
            json_list(f, c->cpu_ms, c->runs);
            fprintf(f, ", \"stalls_runs\": [");
            for (unsigned r = 0; r < c->runs; r++)
                fprintf(f, "%s%llu", r ? ", " : "",
                        (unsigned long long)c->stalls[r]);
            fprintf(f, "]");
            fprintf(f, "}");
            first = false;
        }
    fprintf(f, "\n  ],\n  \"verdicts\": [");
    first = true;
    for (int w = 0; w < W_N; w++) {
        char v[512];
        if (baseline(w) < 0)
            continue;
        verdict(w, v, sizeof v);
        fprintf(f,
                "%s\n    {\"workload\": \"%s\", \"checksums_agree\": %s, "
                "\"text\": \"%s\"}",
                first ? "" : ",", wl_name[w],
                checksums_agree(w) ? "true" : "false", v);
        first = false;
    }
    fprintf(f, "\n  ]\n}\n");
    return fclose(f) == 0 ? 0 : -1;
}

#include "compare_svg.h"

/* ---- options
 * ----------------------------------------------------------------- */

static bool parse_list(const char *arg, const char *const *names, int n,
                       bool *on)
{
    memset(on, 0, (size_t)n * sizeof *on);
    char *copy = strdup(arg), *save = NULL;
    bool ok = copy != NULL;
    for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t;
         t = strtok_r(NULL, ",", &save)) {
        int i = 0;
        while (i < n && strcmp(t, names[i]) != 0)
            i++;
        if (i == n) {
            fprintf(stderr, "unknown name: %s\n", t);
            ok = false;
        } else {
            on[i] = true;
        }
    }
    free(copy);
    return ok;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: fut-compare [options]\n"
            "  --requests N        I/O-bound requests (200)\n"
            "  --latency-ms N      service latency per request (20)\n"
            "  --chunks N          CPU-bound chunks (48)\n"
            "  --chunk-kib N       KiB hashed per chunk (2048)\n"
            "  --mixed-requests N  mixed workload requests (24)\n"
            "  --pitfall-requests N  blocking requests in the pitfall (10)\n"
            "  --workers N         pool threads (0: one per CPU)\n"
            "  --runs N            runs per cell, median reported (3, max 15)\n"
            "  --stall-ms N        the loop's stall threshold (10)\n"
            "  --workloads LIST    io,cpu,mixed,pitfall\n"
            "  --executors LIST    inline,pool,loop,loop+pool\n"
            "  --json FILE         every figure, as JSON\n"
            "  --svg FILE          a grouped bar chart\n"
            "  --smoke             tiny sizes; exit 0 if checksums agree\n");
}

static bool parse_args(int argc, char **argv)
{
    static const struct option opts[] = {{"requests", 1, 0, 'r'},
                                         {"latency-ms", 1, 0, 'l'},
                                         {"chunks", 1, 0, 'c'},
                                         {"chunk-kib", 1, 0, 'k'},
                                         {"mixed-requests", 1, 0, 'm'},
                                         {"pitfall-requests", 1, 0, 'p'},
                                         {"workers", 1, 0, 'w'},
                                         {"runs", 1, 0, 'n'},
                                         {"stall-ms", 1, 0, 's'},
                                         {"workloads", 1, 0, 'W'},
                                         {"executors", 1, 0, 'E'},
                                         {"json", 1, 0, 'j'},
                                         {"svg", 1, 0, 'g'},
                                         {"smoke", 0, 0, 'S'},
                                         {"help", 0, 0, 'h'},
                                         {0, 0, 0, 0}};
    unsigned *num[128] = {
        ['r'] = &cfg.requests,  ['l'] = &cfg.latency_ms, ['c'] = &cfg.chunks,
        ['k'] = &cfg.chunk_kib, ['m'] = &cfg.mixed,      ['p'] = &cfg.pitfall,
        ['w'] = &cfg.workers,   ['n'] = &cfg.runs,       ['s'] = &cfg.stall_ms};
    memset(cfg.wl, 1, sizeof cfg.wl);
    memset(cfg.ex, 1, sizeof cfg.ex);
    /* --smoke first, so explicit sizes given with it still win. */
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--smoke") == 0) {
            cfg.smoke = true;
            cfg.requests = 8, cfg.latency_ms = 3, cfg.chunks = 4;
            cfg.chunk_kib = 64, cfg.mixed = 4, cfg.pitfall = 3;
            cfg.runs = 1, cfg.stall_ms = 1;
        }
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        char *end;
        if (o < 128 && num[o]) {
            unsigned long v = strtoul(optarg, &end, 10);
            if (*end || v > 1000000) {
                fprintf(stderr, "bad number: %s\n", optarg);
                return false;
            }
            *num[o] = (unsigned)v;
        } else if (o == 'W' || o == 'E') {
            if (!(o == 'W' ? parse_list(optarg, wl_name, W_N, cfg.wl)
                           : parse_list(optarg, ex_name, E_N, cfg.ex)))
                return false;
        } else if (o == 'j' || o == 'g') {
            *(o == 'j' ? &cfg.json : &cfg.svg) = optarg;
        } else if (o == 'h') {
            usage(stdout);
            exit(0);
        } else if (o != 'S') {
            usage(stderr);
            return false;
        }
    }
    if (optind < argc || cfg.runs < 1 || cfg.runs > 15 || !cfg.requests ||
        !cfg.chunks || !cfg.mixed || !cfg.pitfall || !cfg.chunk_kib) {
        usage(stderr);
        return false;
    }
    return true;
}

/* ---- main
 * --------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    if (!parse_args(argc, argv))
        return 2;
    /* The service first: fork before any thread exists. */
    svc_opts_t so = {.latency_us = cfg.latency_ms * 1000};
    svc_t svc;
    if (svc_start(&svc, &so) != 0)
        return 1;
    g_port = svc.port;
    fut_set_log(on_log, NULL);

    char when[64];
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    printf("fut-compare %s, %s, %ld CPUs: %u requests x %u ms latency, "
           "%u chunks x %u KiB, mixed %u, pitfall %u, median of %u run%s\n",
           FUT_VERSION_STRING, when, sysconf(_SC_NPROCESSORS_ONLN),
           cfg.requests, cfg.latency_ms, cfg.chunks, cfg.chunk_kib, cfg.mixed,
           cfg.pitfall, cfg.runs, cfg.runs > 1 ? "s" : "");
    fflush(stdout);

    int total = 0, done = 0, failed = 0;
    for (int w = 0; w < W_N; w++)
        for (int e = 0; e < E_N; e++)
            total += cfg.wl[w] && cfg.ex[e];
    for (int w = 0; w < W_N; w++)
        for (int e = 0; e < E_N; e++)
            if (cfg.wl[w] && cfg.ex[e])
                failed += measure(w, e, done++, total) != 0;
    if (isatty(2))
        fprintf(stderr, "\r\033[K");
    svc_stop(&svc);

    print_table();
    bool agree = true;
    printf("\nVerdicts (from the medians above):\n");
    for (int w = 0; w < W_N; w++) {
        char v[512];
        if (baseline(w) < 0)
            continue;
        verdict(w, v, sizeof v);
        bool ok = checksums_agree(w);
        agree = agree && ok;
        printf("  %s\n", v);
        if (!ok)
            printf("  %s: CHECKSUMS DIFFER between executors or runs\n",
                   wl_name[w]);
    }
    printf("Checksums %s across executors.\n", agree ? "agree" : "DIFFER");
    if (cfg.json && write_json(cfg.json, when) != 0)
        failed++;
    if (cfg.svg && write_svg(cfg.svg, when) != 0)
        failed++;
    return failed || !agree ? 1 : 0;
}
