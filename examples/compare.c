/* fut-compare -- the same work, written once as future chains, under each
 * executor, measured: which one fits which kind of work.
 *
 *   inline     everything on the main thread, one request after another
 *   pool       N worker threads; requests are blocking calls inside tasks
 *   loop       one thread; requests are non-blocking sockets whose waits
 *              are fut_fd_ready futures, so all of them are in flight at once
 *   loop+pool  I/O on the loop, CPU hopped to the pool and back
 *   fibers     the loop again, each item a fiber written as straight-line
 *              code that fut_awaits its request (and, mixed, its hashing
 *              on the pool): no callbacks, the loop's overlap
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
#include "compare_verdict.h"

#include <getopt.h>
#include <stdatomic.h>
#include <sys/resource.h>

enum { W_IO, W_CPU, W_MIXED, W_PITFALL, W_N };

static const char *const wl_name[W_N] = {"io", "cpu", "mixed", "pitfall"};
static const char *const wl_title[W_N] = {"I/O-bound", "CPU-bound", "Mixed",
                                          "Blocking in the loop"};

/* Where a chain's stages run.  io: the requests; cpu: the hashing. */
struct xenv {
    fut_executor_t *io, *cpu;
    fut_executor_t *loop, *pool; /* what open made, destroyed by close_xenv */
    bool async_io; /* requests through fut_fd_ready, else blocking calls */
};

struct item {
    const struct xenv *x;
    uint64_t key;
    uint64_t got; /* a fiber's response, read by its hashing on the pool */
};

/* An execution model: the executors it makes and the chains it runs.
 * Adding one is an entry in MODELS plus its functions:
 *   open   makes the executors into X and sets x->io and x->cpu; a loop
 *          goes in x->loop (a run then drives it with fut_loop_run on the
 *          main thread; without one it waits with fut_wait), a pool in
 *          x->pool; close_xenv destroys both.  Returns 0 or an error.
 *   start  makes the future of one item of workload W (it->x is the
 *          environment open made); it must settle with the same value
 *          under every model, the checksum compares them.  chain() below
 *          serves the first four models here, fiber() the fibers.
 * The first entry is the baseline of every speed-up. */
struct model {
    const char *name;  /* for --executors, the table and the chart */
    const char *color; /* its bars in the chart */
    unsigned pool;     /* bits 1 << W: workload W's verdict notes the pool's
                          workers (its CPU work runs there) */
    int (*open)(struct xenv *x);
    fut_t *(*start)(int w, struct item *it);
};

static int open_inline(struct xenv *x);
static int open_pool(struct xenv *x);
static int open_loop(struct xenv *x);
static int open_loop_pool(struct xenv *x);
static fut_t *chain(int w, struct item *it);
static fut_t *fiber(int w, struct item *it);

#define ON_POOL (1u << W_IO | 1u << W_CPU | 1u << W_MIXED)
static const struct model models[] = {
    {"inline", "#8c8c8c", 0, open_inline, chain},
    {"pool", "#e8a33d", ON_POOL, open_pool, chain},
    {"loop", "#3c78d8", 0, open_loop, chain},
    {"loop+pool", "#56a556", ON_POOL, open_loop_pool, chain},
    {"fibers", "#9467bd", 1u << W_MIXED, open_loop_pool, fiber},
};
#define E_N ((int)(sizeof models / sizeof *models))
#define RUNS_MAX 15

struct config {
    unsigned requests, latency_ms, chunks, chunk_kib, mixed, pitfall;
    unsigned workers, runs, stall_ms;
    bool wl[W_N], ex[E_N], smoke;
    const char *json, *svg;
};

/* One measured cell: a workload under a model, over the rounds. */
struct cell {
    bool done;
    unsigned items, runs;
    double wall_ms[RUNS_MAX], cpu_ms[RUNS_MAX];
    uint64_t stalls[RUNS_MAX];
    double wall, wall_min, wall_max, cpu; /* medians, and the wall spread */
    uint64_t stall;                       /* median */
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
    .runs = 5,
    .stall_ms = 10,
};
static struct cell cells[W_N][E_N];
static uint16_t g_port;       /* written before any thread starts */
static unsigned g_workers;    /* the pool's actual size */
static atomic_ulong g_stalls; /* stall reports heard through the log hook */

/* ---- the work ----------------------------------------------------------- */

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

/* ---- the same work in fibers on the loop --------------------------------- */

/* Awaits F (the fiber suspends, the loop runs the others), gives its
 * value in V and releases F. */
static int await_i64(fut_t *f, uint64_t *v)
{
    int err = fut_await(f, NULL);
    *v = (uint64_t)fut_value_i64(f);
    fut_release(f);
    return err;
}

static fut_result_t fiber_io(void *arg)
{
    struct item *it = arg;
    uint64_t v;
    int err = await_i64(svc_call_async(it->x->loop, g_port, it->key, 0), &v);
    return err ? fut_fail(err) : fut_ok_i64((int64_t)v);
}

static fut_result_t hash_got(void *arg)
{
    return fut_ok_i64((int64_t)hash_chunk(((const struct item *)arg)->got));
}

/* The mixed chain as one function: request, hashing on the pool, reply. */
static fut_result_t fiber_mixed(void *arg)
{
    struct item *it = arg;
    uint64_t h = 0;
    const struct xenv *x = it->x;
    int err = await_i64(svc_call_async(x->loop, g_port, it->key, 0), &it->got);
    if (!err)
        err = await_i64(fut_async(x->pool, hash_got, it), &h);
    return err ? fut_fail(err) : fut_ok_i64((int64_t)mix64(h + it->key));
}

/* One fiber per item, on the loop.  cpu computes inside the fiber; the
 * pitfall makes its blocking call there. */
static fut_t *fiber(int w, struct item *it)
{
    static const fut_task_fn fn[W_N] = {fiber_io, compute, fiber_mixed,
                                        fetch_blocking};
    return fut_fiber(it->x->loop, fn[w], it, NULL);
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

/* ---- the models' executors ----------------------------------------------- */

static int new_pool(struct xenv *x)
{
    fut_pool_opts_t po = {.threads = cfg.workers};
    int err = fut_pool_create(&x->pool, &po);
    fut_stats_t st;
    if (!err && !g_workers && fut_executor_stats(x->pool, &st) == 0)
        g_workers = st.workers;
    return err;
}

static int new_loop(struct xenv *x)
{
    fut_loop_opts_t lo = {.stall_ns = (uint64_t)cfg.stall_ms * 1000000};
    x->async_io = true;
    return fut_loop_create(&x->loop, &lo);
}

static int open_inline(struct xenv *x)
{
    x->io = x->cpu = fut_inline();
    return 0;
}

static int open_pool(struct xenv *x)
{
    int err = new_pool(x);
    x->io = x->cpu = x->pool;
    return err;
}

static int open_loop(struct xenv *x)
{
    int err = new_loop(x);
    x->io = x->cpu = x->loop;
    return err;
}

/* I/O on the loop, computation hopped to the pool. */
static int open_loop_pool(struct xenv *x)
{
    int err = new_pool(x);
    if (!err)
        err = new_loop(x);
    x->io = x->loop;
    x->cpu = x->pool;
    return err;
}

static void close_xenv(struct xenv *x)
{
    if (x->pool)
        fut_executor_destroy(x->pool);
    if (x->loop)
        fut_executor_destroy(x->loop);
}

/* One run of workload W under model E: fills run C->runs of C. */
static int run_once(int w, int e, struct cell *c)
{
    unsigned n = items_of(w), r = c->runs;
    struct xenv x = {0};
    struct item *items = calloc(n, sizeof *items);
    fut_t **fs = calloc(n, sizeof *fs);
    int err = !items || !fs ? FUT_ENOMEM : models[e].open(&x);
    if (err) {
        close_xenv(&x);
        free(items);
        free(fs);
        return err;
    }
    atomic_store(&g_stalls, 0);
    double c0 = cpu_ms();
    uint64_t t0 = now_ns();
    for (unsigned i = 0; i < n; i++) {
        items[i].x = &x;
        items[i].key = (uint64_t)w << 32 | i;
        fs[i] = models[e].start(w, &items[i]);
    }
    fut_t *all = fut_all(fs, n);
    /* A safety net, not a measurement: a broken run ends instead of hanging. */
    fut_t *until = fut_timeout(fut_retain(all), 300ull * 1000000000);
    if (x.loop)
        fut_loop_run(x.loop, until);
    else
        fut_wait(until, -1);
    uint64_t t1 = now_ns();
    c->cpu_ms[r] = cpu_ms() - c0;
    c->wall_ms[r] = (double)(t1 - t0) / 1e6;
    c->stalls[r] = atomic_load(&g_stalls);
    err = fut_error(until);
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
    close_xenv(&x); /* untimed: every run starts with fresh executors */
    free(fs);
    free(items);
    c->runs += !err;
    return err;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of V[0..N), and its min and max if MIN/MAX are not NULL. */
static double median(const double *v, unsigned n, double *min, double *max)
{
    double s[RUNS_MAX];
    memcpy(s, v, n * sizeof *v);
    qsort(s, n, sizeof *s, cmp_double);
    if (min)
        *min = s[0];
    if (max)
        *max = s[n - 1];
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static void progress(int done, int total, int w, int e, unsigned r)
{
    static int tty = -1;
    static unsigned shown = ~0u;
    if (tty < 0)
        tty = isatty(2);
    if (tty)
        fprintf(stderr, "\r\033[K[%d/%d] round %u/%u: %s on %s", done, total,
                r + 1, cfg.runs, wl_name[w], models[e].name);
    else if (r != shown)
        fprintf(stderr, "round %u/%u\n", r + 1, cfg.runs);
    shown = r;
}

static bool wanted(int w, int e)
{
    return cfg.wl[w] && cfg.ex[e] && !cells[w][e].err;
}

/* Every cell, in rounds: each round runs every workload under every model
 * once, the models in an order rotated by one each round, so that a noisy
 * moment of the machine falls on all of them instead of on one cell's runs.
 * Returns the number of cells that failed. */
static int measure(void)
{
    int total = 0, done = 0, failed = 0;
    for (int w = 0; w < W_N; w++)
        for (int e = 0; e < E_N; e++) {
            cells[w][e].items = items_of(w);
            total += wanted(w, e) * (int)cfg.runs;
        }
    for (unsigned r = 0; r < cfg.runs; r++)
        for (int w = 0; w < W_N; w++)
            for (int k = 0; k < E_N; k++) {
                int e = (k + (int)r) % E_N;
                if (!wanted(w, e))
                    continue;
                progress(++done, total, w, e, r);
                struct cell *c = &cells[w][e];
                if ((c->err = run_once(w, e, c)) != 0) {
                    fprintf(stderr, "\n%s on %s failed: %s\n", wl_name[w],
                            models[e].name, fut_strerror(c->err));
                    failed++;
                }
            }
    for (int w = 0; w < W_N; w++)
        for (int e = 0; e < E_N; e++) {
            struct cell *c = &cells[w][e];
            if (!cfg.wl[w] || !cfg.ex[e] || c->err || !c->runs)
                continue;
            double st[RUNS_MAX];
            for (unsigned r = 0; r < c->runs; r++)
                st[r] = (double)c->stalls[r];
            c->wall = median(c->wall_ms, c->runs, &c->wall_min, &c->wall_max);
            c->cpu = median(c->cpu_ms, c->runs, NULL, NULL);
            c->stall = (uint64_t)median(st, c->runs, NULL, NULL);
            c->done = true;
        }
    return failed;
}

/* ---- verdicts ---------------------------------------------------------- */

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
    return cmp_fmt_ratio(buf, len, r);
}

/* Where model E's entry goes in workload W's verdict: the baseline first;
 * for the pitfall, the models with stall reports before the others. */
static int entry_group(int w, int e)
{
    if (e == baseline(w))
        return 0;
    return w == W_PITFALL && cells[w][e].stall ? 1 : 2;
}

/* The verdict's entries for workload W, the baseline first: MODEL[i] is
 * entry i's model, NOTES[i] its note.  Returns the number of entries. */
static int entries(int w, cmp_entry_t *out, int *model, char (*notes)[96])
{
    int n = 0;
    for (int g = 0; g < 3; g++)
        for (int e = 0; e < E_N; e++) {
            const struct cell *c = &cells[w][e];
            if (!c->done || entry_group(w, e) != g)
                continue;
            size_t k = 0;
            notes[n][0] = '\0';
            if (models[e].pool & 1u << w)
                k = (size_t)snprintf(notes[n], 96,
                                     w == W_CPU ? " (%u workers on %ld cores)"
                                                : " (%u workers)",
                                     g_workers, sysconf(_SC_NPROCESSORS_ONLN));
            if (c->stall)
                snprintf(notes[n] + k, 96 - k,
                         " with %llu of %u callbacks reported as stalls",
                         (unsigned long long)c->stall, c->items);
            out[n] = (cmp_entry_t){models[e].name, c->wall_min, c->wall,
                                   c->wall_max, notes[n]};
            model[n++] = e;
        }
    return n;
}

/* "I/O-bound: loop+pool 117x faster than inline (2 workers); loop 98x;
 * pool 2.0x (2 workers)": compare_verdict.h's rules, every number from the
 * cells.  Fills T with the ranking, its indices naming MODEL[i]. */
static void verdict(int w, char *out, size_t len, cmp_tiers_t *t,
                    int model[E_N])
{
    cmp_entry_t es[E_N];
    char notes[E_N][96];
    int n = entries(w, es, model, notes);
    bool by_speed = w != W_PITFALL;
    size_t k = cmp_verdict(out, len, wl_title[w], es, n, 0, by_speed);
    cmp_rank(es, n, 0, by_speed, t);
    int loop = -1;
    for (int e = 0; e < E_N; e++)
        if (strcmp(models[e].name, "loop") == 0)
            loop = e;
    if (w == W_PITFALL && loop >= 0 && cells[W_IO][loop].done &&
        baseline(W_IO) == baseline(W_PITFALL) && k < len) {
        char rb[32];
        snprintf(out + k, len - k,
                 "; the loop waiting through fut_fd_ready instead (io): %s",
                 fmt_ratio(rb, sizeof rb, speedup(W_IO, loop)));
    }
}

/* ---- output ------------------------------------------------------------ */

static void print_table(void)
{
    printf("\n%-8s %-10s %6s %10s %17s %10s %9s %7s  %s\n", "workload",
           "executor", "items", "wall ms", "(min-max)", "items/s", "cpu ms",
           "stalls", "checksum");
    for (int w = 0; w < W_N; w++)
        for (int e = 0; e < E_N; e++) {
            const struct cell *c = &cells[w][e];
            char range[48];
            if (!c->done)
                continue;
            snprintf(range, sizeof range, "(%.1f-%.1f)", c->wall_min,
                     c->wall_max);
            printf("%-8s %-10s %6u %10.1f %17s %10.1f %9.1f %7llu  "
                   "%016llx%s\n",
                   wl_name[w], models[e].name, c->items, c->wall, range,
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

#include "compare_json.h"
#include "compare_svg.h"

/* ---- options ------------------------------------------------------------ */

/* Sets ON[i] for each name of the comma-separated ARG found among the N
 * names NAME(0..N); false (and a message) if one is unknown. */
static bool parse_list(const char *arg, const char *(*name)(int), int n,
                       bool *on)
{
    memset(on, 0, (size_t)n * sizeof *on);
    char *copy = strdup(arg), *save = NULL;
    bool ok = copy != NULL;
    for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t;
         t = strtok_r(NULL, ",", &save)) {
        int i = 0;
        while (i < n && strcmp(t, name(i)) != 0)
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

static const char *workload_name(int w)
{
    return wl_name[w];
}

static const char *model_name(int e)
{
    return models[e].name;
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
            "  --runs N            interleaved rounds; the median and the\n"
            "                      min-max of each cell are reported (5, "
            "max %d)\n"
            "  --stall-ms N        the loop's stall threshold (10)\n"
            "  --workloads LIST    io,cpu,mixed,pitfall\n"
            "  --executors LIST    ",
            RUNS_MAX);
    for (int e = 0; e < E_N; e++)
        fprintf(f, "%s%s", e ? "," : "", models[e].name);
    fprintf(f, "\n"
               "  --json FILE         every figure, as JSON\n"
               "  --svg FILE          a bar chart with min-max ranges\n"
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
            if (!(o == 'W' ? parse_list(optarg, workload_name, W_N, cfg.wl)
                           : parse_list(optarg, model_name, E_N, cfg.ex)))
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
    if (optind < argc || cfg.runs < 1 || cfg.runs > RUNS_MAX || !cfg.requests ||
        !cfg.chunks || !cfg.mixed || !cfg.pitfall || !cfg.chunk_kib) {
        usage(stderr);
        return false;
    }
    return true;
}

/* Writes the files asked for and says where; returns the failures so far
 * plus the files that could not be written. */
static int finish(const char *when, int failed)
{
    if (cfg.json && write_json(cfg.json, when) != 0)
        failed++;
    else if (cfg.json)
        printf("Wrote %s (every figure and verdict, JSON).\n", cfg.json);
    if (cfg.svg && write_svg(cfg.svg, when) != 0)
        failed++;
    else if (cfg.svg)
        printf("Wrote %s (the chart, SVG).\n", cfg.svg);
    if (!cfg.json && !cfg.svg && !cfg.smoke)
        printf("(--json FILE and --svg FILE save the figures and a chart.)\n");
    return failed;
}

/* ---- main --------------------------------------------------------------- */

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
           "%u chunks x %u KiB, mixed %u, pitfall %u; %u interleaved "
           "round%s, median (min-max)\n",
           FUT_VERSION_STRING, when, sysconf(_SC_NPROCESSORS_ONLN),
           cfg.requests, cfg.latency_ms, cfg.chunks, cfg.chunk_kib, cfg.mixed,
           cfg.pitfall, cfg.runs, cfg.runs > 1 ? "s" : "");
    fflush(stdout);

    int failed = measure();
    if (isatty(2))
        fprintf(stderr, "\r\033[K");
    svc_stop(&svc);

    print_table();
    bool agree = true;
    printf("\nVerdicts (medians; executors whose min-max overlap are the "
           "same within noise):\n");
    for (int w = 0; w < W_N; w++) {
        char v[1024];
        cmp_tiers_t t;
        int model[E_N];
        if (baseline(w) < 0)
            continue;
        verdict(w, v, sizeof v, &t, model);
        bool ok = checksums_agree(w);
        agree = agree && ok;
        printf("  %s\n", v);
        if (!ok)
            printf("  %s: CHECKSUMS DIFFER between executors or runs\n",
                   wl_name[w]);
    }
    printf("Checksums %s across executors.\n", agree ? "agree" : "DIFFER");
    return finish(when, failed) || !agree ? 1 : 0;
}
