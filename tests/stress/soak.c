/* Soak: random DAGs of futures mixing the pool and the loop, timers, fd
 * readiness and cancellation, checked node by node, while the process's
 * resident set and open fds are sampled from /proc/self.
 *
 *   soak [ROUNDS]          quick (scons test): ROUNDS rounds (default 12000),
 *                          a sample every tenth
 *   soak --long [SECONDS]  for SECONDS (default 600), a sample every
 *                          SECONDS/20 (scons stress)
 *
 * Each round builds a DAG of NODES futures, each node on the pool or on the
 * loop at random, so chains hop between the two (the loop+pool pattern):
 * sources (tasks, some failing), zero and short delays, then/catch links,
 * joins (fut_all of up to three earlier nodes, then a callback summing the
 * inputs), fut_timeout both ways (a generous one on a quick node passes
 * through, a short one on an hour's delay fires and cancels the delay),
 * cancels (of an hour's delay: its timer must go at once; of a queued task:
 * either outcome), and fd readiness on fresh pipes (one with a byte to read
 * fulfils; one without is cancelled, which deregisters it).  Then, every
 * round, one node of each FIXED kind: cancels through continuations (a then
 * over a then over an hour's delay, a then over a wait on an empty pipe: the
 * cancel must reach the delay's timer and deregister the wait before the
 * pipe is closed), a scope of limit 2 over three spawned tasks and one added
 * earlier node, a scope of limit 2 over three hour-long delays that is
 * cancelled, a fiber on the loop that awaits a short delay and then a
 * fut_read of a socketpair, the fut_write that feeds it, a fut_post to the
 * pool and one to the loop (each settling a promise), and a fut_pread of an
 * unlinked temp file on the pool or the loop (its bytes checked).  The
 * main thread runs the loop until the round's all_settled sink settles; then
 * every node is compared with its expectation, computed while building from its
 * parents' (a set of possible outcomes where a cancel races the work), and the
 * pipes and the socketpair are closed.
 *
 * Flatness (the bounds): samples are taken between rounds, when nothing is
 * pending.  After the warm-up (the first fifth of the run), the open fd
 * count must never exceed the largest seen during the warm-up (every pipe
 * of a round is closed by then, so any growth is a leak), and the RSS must
 * stay within the warm-up's largest + 10% + 4 MiB (the allocator's caches
 * fill during the warm-up; a leak of one block a round exceeds this within
 * minutes).  The RSS bound is not checked under sanitizers, whose allocators
 * keep quarantines.  Prints the start, end and largest of both.  Exit status
 * 0 on success, 1 on the first mismatch or a broken bound. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fut.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SOAK_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SOAK_SANITIZER 1
#endif
#endif
#ifndef SOAK_SANITIZER
#define SOAK_SANITIZER 0
#endif

/* RANDOM nodes of kinds picked by weight, then one of each FIXED kind. */
enum { RANDOM = 64, FIXED = 9, NODES = RANDOM + FIXED, PIPES = 8, ERR = -1000 };
enum kind {
    SRC,
    DELAYED,
    THEN,
    CATCH,
    JOIN,
    TIMEOUT_OK,
    TIMEOUT_LATE,
    CANCEL_LONG,
    CANCEL_RACE,
    FD_READY,
    FD_CANCEL,
    KINDS,
    /* Every round, once each (after the random nodes): */
    CANCEL_THEN = KINDS, /* then over then over an hour's delay, cancelled */
    FD_CANCEL_THEN,      /* then over a wait on an empty pipe, cancelled */
    SCOPE,               /* limit 2: three spawned members and one added */
    SCOPE_CANCEL,        /* limit 2: three hour-long members, cancelled */
    FIBER,               /* on the loop: awaits a delay, then a fut_read */
    WRITE,               /* fut_write of what the fiber reads */
    POST_POOL,           /* fut_post settling a promise */
    POST_LOOP,
    PREAD, /* fut_pread of the temp file */
    ALL_KINDS
};
/* Possible errors of a node, as a mask. */
enum { M_ERR = 1, M_CANCELED = 2, M_TIMEDOUT = 4 };

#define HOUR_NS (3600ull * 1000000000)

typedef struct node {
    fut_t *f;
    enum kind kind;
    int64_t v;     /* the value if it fulfils */
    bool may_ok;   /* it may fulfil (with V) */
    unsigned errs; /* the errors it may fail with */
} node_t;

/* A scope member's work (fut_scope_spawn's argument). */
typedef struct member {
    fut_executor_t *ex;
    int64_t v;
    bool hour; /* an hour's delay (to be cancelled); else a task */
} member_t;

/* The fiber's argument: it reads from FD, then adds what it read to V. */
typedef struct fiber_arg {
    fut_executor_t *loop;
    int fd;
    int64_t v;
    char buf[8];
} fiber_arg_t;

enum { FILE_BYTES = 4096, PREAD_LEN = 16 };

typedef struct round {
    node_t n[NODES];
    int fds[2 * PIPES + 6]; /* PIPES pipes for the random nodes, then the
                               fixed ones' pipe and socketpair */
    int nfds;
    fut_executor_t *pool, *loop;
    uint64_t seed;
    member_t members[6]; /* live until the round's end */
    fiber_arg_t fiber;
    int sock;  /* the socketpair's end the WRITE node writes to */
    int file;  /* the temp file: byte K is 'a' + K % 26 */
    off_t off; /* where PREAD reads PREAD_LEN bytes into pbuf */
    char pbuf[PREAD_LEN];
} round_t;

static atomic_uint_fast64_t g_calls; /* tasks and callbacks run */

static void counted(void)
{
    atomic_fetch_add_explicit(&g_calls, 1, memory_order_relaxed);
}

static fut_result_t src_task(void *arg)
{
    counted();
    int64_t v = (int64_t)(intptr_t)arg;
    return v % 53 == 0 ? fut_fail(ERR) : fut_ok_i64(v);
}

/* After a delay or an fd: ARG is the node's value. */
static fut_result_t value_of_arg(void *arg, fut_t *src)
{
    (void)src;
    counted();
    return fut_ok_i64((int64_t)(intptr_t)arg);
}

static fut_result_t inc(void *arg, fut_t *src)
{
    (void)arg;
    counted();
    return fut_ok_i64(fut_value_i64(src) + 1);
}

static fut_result_t sum_inputs(void *arg, fut_t *all)
{
    counted();
    size_t n = (size_t)(intptr_t)arg;
    int64_t s = 1;
    for (size_t i = 0; i < n; i++)
        s += fut_value_i64(fut_input(all, i));
    return fut_ok_i64(s);
}

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static int error_mask(int err)
{
    return err == ERR             ? M_ERR
           : err == FUT_ECANCELED ? M_CANCELED
           : err == FUT_ETIMEDOUT ? M_TIMEDOUT
                                  : 0;
}

/* A pipe's read end, with a byte to read if FULL; -1 if out of fds (the
 * random nodes have PIPES pipes; FIXED ones use the rest). */
static int new_pipe(round_t *r, bool full, bool fixed)
{
    int p[2];
    if (r->nfds + 2 >
            (fixed ? (int)(sizeof r->fds / sizeof *r->fds) : 2 * PIPES) ||
        pipe(p) != 0)
        return -1;
    r->fds[r->nfds++] = p[0];
    r->fds[r->nfds++] = p[1];
    if (full && write(p[1], "x", 1) != 1)
        return -1;
    return p[0];
}

static void set(node_t *n, fut_t *f, int64_t v, bool may_ok, unsigned errs)
{
    enum kind k = n->kind;
    *n = (node_t){f, k, v, may_ok, errs};
}

static fut_t *member_start(void *arg)
{
    member_t *m = arg;
    counted();
    return m->hour ? fut_delay(m->ex, HOUR_NS)
                   : fut_async(m->ex, src_task, (void *)(intptr_t)m->v);
}

/* A scope of limit 2 over three spawned members (tasks; or hour-long
 * delays, then cancelled, if CANCEL) and, unless CANCEL, P added. */
static void build_scope(round_t *r, node_t *n, node_t *p, fut_executor_t *ex,
                        int64_t v, bool cancel)
{
    fut_scope_t *s;
    if (fut_scope_create(&s, &(fut_scope_opts_t){.limit = 2})) {
        set(n, fut_ready(fut_fail(FUT_ENOMEM)), 0, false, 0);
        return;
    }
    set(n, NULL, 0, !cancel, cancel ? M_CANCELED : 0);
    for (int j = 0; j < 3; j++) {
        member_t *m = &r->members[3 * cancel + j];
        *m = (member_t){ex, v + j, cancel};
        fut_release(fut_scope_spawn(s, member_start, m));
        if (!cancel && m->v % 53 == 0)
            n->may_ok = false, n->errs |= M_ERR;
    }
    if (cancel) {
        fut_scope_cancel(s);
    } else {
        fut_release(fut_scope_add(s, fut_retain(p->f)));
        n->may_ok = n->may_ok && p->may_ok;
        n->errs |= p->errs;
    }
    n->f = fut_scope_close(s);
}

/* In a fiber on the loop: a short delay, then a read of the socketpair
 * (suspending at each); fulfils with V + the bytes read. */
static fut_result_t fiber_fn(void *arg)
{
    fiber_arg_t *a = arg;
    counted();
    fut_t *d = fut_delay(a->loop, 20000);
    int err = fut_await(d, NULL);
    fut_release(d);
    if (err)
        return fut_fail(err);
    fut_t *rd = fut_read(a->loop, a->fd, a->buf, sizeof a->buf);
    err = fut_await(rd, NULL);
    int64_t got = fut_value_i64(rd);
    fut_release(rd);
    return err ? fut_fail(err) : fut_ok_i64(a->v + got);
}

static void post_fn(void *arg)
{
    counted();
    fut_promise_settle(arg, fut_ok_i64(7));
}

static fut_t *post(fut_executor_t *ex)
{
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    if (p && fut_post(ex, post_fn, p) != 0)
        fut_promise_drop(p);
    return f;
}

/* The kinds built once every round (see enum kind). */
static void build_fixed(round_t *r, node_t *n, node_t *p, enum kind k,
                        fut_executor_t *ex, int64_t v)
{
    void *va = (void *)(intptr_t)v;
    int fd, sv[2];
    switch (k) {
    case CANCEL_THEN: /* the cancel must reach the delay: its timer goes */
        set(n,
            fut_then(fut_then(fut_delay(ex, HOUR_NS), ex, value_of_arg, va), ex,
                     inc, NULL),
            v, false, M_CANCELED);
        fut_cancel(n->f);
        break;
    case FD_CANCEL_THEN: /* must deregister the wait before the close */
        fd = new_pipe(r, false, true);
        set(n,
            fut_then(fut_fd_ready(r->loop, fd, FUT_READABLE), ex, value_of_arg,
                     va),
            v, false, M_CANCELED);
        fut_cancel(n->f);
        break;
    case SCOPE:
    case SCOPE_CANCEL:
        build_scope(r, n, p, ex, v, k == SCOPE_CANCEL);
        break;
    case FIBER:
        r->fiber = (fiber_arg_t){.loop = r->loop, .fd = -1, .v = v};
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0) {
            r->fds[r->nfds++] = r->fiber.fd = sv[0];
            r->fds[r->nfds++] = r->sock = sv[1];
        }
        set(n, fut_fiber(r->loop, fiber_fn, &r->fiber, NULL), v + 4, true, 0);
        break;
    case WRITE:
        set(n, fut_write(r->loop, r->sock, "soak", 4), 4, true, 0);
        break;
    case POST_POOL:
    case POST_LOOP:
        set(n, post(k == POST_POOL ? r->pool : r->loop), 7, true, 0);
        break;
    case PREAD:
        r->off = (off_t)(v * 4 % (FILE_BYTES - PREAD_LEN));
        set(n, fut_pread(ex, r->file, r->pbuf, PREAD_LEN, r->off), PREAD_LEN,
            true, 0);
        break;
    default:
        break;
    }
}

/* Node I of kind K on EX; P is a random earlier node (for I > 0). */
static void build_node(round_t *r, int i, enum kind k, fut_executor_t *ex,
                       uint64_t bits)
{
    node_t *n = &r->n[i], *p = &r->n[i ? (bits >> 8) % (uint64_t)i : 0];
    int64_t v = (int64_t)((bits >> 16) % 1000);
    void *va = (void *)(intptr_t)v;
    int fd;
    switch (k) {
    case SRC:
        set(n, fut_async(ex, src_task, va), v, v % 53 != 0, v % 53 ? 0 : M_ERR);
        break;
    case DELAYED: /* 0 to 63 us */
        set(n,
            fut_then(fut_delay(ex, (bits >> 40) % 64 * 1000), ex, value_of_arg,
                     va),
            v, true, 0);
        break;
    case THEN:
        set(n, fut_then(fut_retain(p->f), ex, inc, NULL), p->v + 1, p->may_ok,
            p->errs);
        break;
    case CATCH: /* recovers with the value the parent would have had */
        set(n,
            fut_catch(fut_retain(p->f), ex, value_of_arg,
                      (void *)(intptr_t)p->v),
            p->v, true, 0);
        break;
    case JOIN: {
        size_t m = 1 + (bits >> 40) % 3;
        fut_t *in[3];
        set(n, NULL, 1, true, 0);
        for (size_t j = 0; j < m; j++) {
            node_t *q = &r->n[(bits >> (12 + 8 * j)) % (uint64_t)i];
            in[j] = fut_retain(q->f);
            n->may_ok = n->may_ok && q->may_ok;
            n->errs |= q->errs;
            n->v += q->v;
        }
        n->f = fut_then(fut_all(in, m), ex, sum_inputs, (void *)(intptr_t)m);
        break;
    }
    case TIMEOUT_OK:
        set(n, fut_timeout(fut_retain(p->f), 60 * 1000000000ull), p->v,
            p->may_ok, p->errs);
        break;
    case TIMEOUT_LATE: /* 50 us against an hour */
        set(n, fut_timeout(fut_delay(ex, HOUR_NS), 50000), 0, false,
            M_TIMEDOUT);
        break;
    case CANCEL_LONG: /* the delay itself: its timer must go at once */
        set(n, fut_delay(ex, HOUR_NS), v, false, M_CANCELED);
        fut_cancel(n->f);
        break;
    case CANCEL_RACE: /* the task may have run already, or not */
        set(n, fut_async(ex, src_task, va), v, v % 53 != 0,
            (v % 53 ? 0 : M_ERR) | M_CANCELED);
        fut_cancel(n->f);
        break;
    case FD_READY:
    case FD_CANCEL:
        fd = new_pipe(r, k == FD_READY, false);
        if (fd < 0) { /* this round's pipes are used up: a plain source */
            build_node(r, i, SRC, ex, bits);
            break;
        }
        if (k == FD_READY) {
            set(n,
                fut_then(fut_fd_ready(r->loop, fd, FUT_READABLE), ex,
                         value_of_arg, va),
                v, true, 0);
            break;
        }
        /* The wait itself (FD_CANCEL_THEN cancels through a then). */
        set(n, fut_fd_ready(r->loop, fd, FUT_READABLE), v, false, M_CANCELED);
        fut_cancel(n->f);
        break;
    default:
        build_fixed(r, n, p, k, ex, v);
        break;
    }
}

/* The first four nodes are sources; then kinds by weight (of 32). */
static enum kind pick(int i, uint64_t bits)
{
    static const unsigned char weight[KINDS] = {
        [SRC] = 7,          [DELAYED] = 3,     [THEN] = 7,
        [CATCH] = 3,        [JOIN] = 4,        [TIMEOUT_OK] = 2,
        [TIMEOUT_LATE] = 1, [CANCEL_LONG] = 1, [CANCEL_RACE] = 2,
        [FD_READY] = 1,     [FD_CANCEL] = 1};
    unsigned x = (unsigned)(bits % 32);
    if (i < 4)
        return SRC;
    for (int k = 0; k < KINDS; k++) {
        if (x < weight[k])
            return (enum kind)k;
        x -= weight[k];
    }
    return SRC;
}

static void build(round_t *r)
{
    r->nfds = 0;
    for (int i = 0; i < NODES; i++) {
        uint64_t bits = rnd(&r->seed);
        fut_executor_t *ex = bits >> 63 ? r->loop : r->pool;
        r->n[i].kind =
            i < RANDOM ? pick(i, bits) : (enum kind)(KINDS + i - RANDOM);
        build_node(r, i, r->n[i].kind, ex, bits);
    }
}

/* PREAD's bytes: the file's at the offset read. */
static bool pread_ok(const round_t *r)
{
    for (int j = 0; j < PREAD_LEN; j++)
        if (r->pbuf[j] != 'a' + (r->off + j) % 26)
            return false;
    return true;
}

static bool as_expected(const round_t *r, const node_t *n)
{
    const fut_t *f = n->f;
    switch (fut_state(f)) {
    case FUT_FULFILLED:
        return n->may_ok && fut_value_i64(f) == n->v &&
               (n->kind != PREAD || pread_ok(r)) &&
               (n->kind != FIBER || memcmp(r->fiber.buf, "soak", 4) == 0);
    case FUT_REJECTED:
    case FUT_CANCELLED:
        return (error_mask(fut_error(f)) & n->errs) != 0;
    default:
        return false;
    }
}

static int check(round_t *r, uint64_t round)
{
    int bad = 0;
    for (int i = 0; i < NODES; i++) {
        node_t *n = &r->n[i];
        if (!bad && !as_expected(r, n)) {
            fprintf(stderr,
                    "soak: round %" PRIu64 " node %d (kind %d): state %d err "
                    "%d value %" PRId64 ", expected value %" PRId64
                    " (%s) or errors %#x\n",
                    round, i, (int)n->kind, fut_state(n->f), fut_error(n->f),
                    fut_value_i64(n->f), n->v, n->may_ok ? "possible" : "no",
                    n->errs);
            bad = 1;
        }
        fut_release(n->f);
    }
    for (int i = 0; i < r->nfds; i++)
        close(r->fds[i]);
    return bad;
}

/* One round; returns 0, or 1 on a mismatch. */
static int one_round(round_t *r, uint64_t round)
{
    build(r);
    fut_t *all[NODES];
    for (int i = 0; i < NODES; i++)
        all[i] = fut_retain(r->n[i].f);
    /* A round takes milliseconds; the timeout is a safety net that turns
     * a node that never settles into a failure instead of a hang. */
    fut_t *sink = fut_timeout(fut_all_settled(all, NODES), 60000000000ull);
    int err = fut_loop_run(r->loop, sink);
    if (err || fut_state(sink) != FUT_FULFILLED) {
        fprintf(stderr, "soak: round %" PRIu64 ": run %d, sink state %d\n",
                round, err, fut_state(sink));
        for (int i = 0; i < NODES; i++)
            if (fut_state(r->n[i].f) == FUT_PENDING)
                fprintf(stderr, "soak: node %d (kind %d) is pending\n", i,
                        (int)r->n[i].kind);
        fut_release(sink);
        return 1;
    }
    fut_release(sink);
    return check(r, round);
}

/* ---- sampling /proc/self ------------------------------------------------ */

/* VmRSS of this process, in KiB; -1 if unknown. */
static long rss_kb(void)
{
    char line[256];
    long kb = -1;
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = atol(line + 6);
    if (f)
        fclose(f);
    return kb;
}

/* Open fds of this process, not counting the directory read to count. */
static long fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    long n = -1; /* the directory's own fd */
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

typedef struct sample {
    long rss, fds;
} sample_t;

typedef struct watch {
    sample_t start, last, max, warm; /* warm: the largest in the warm-up */
    int broken;
} watch_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Takes a sample; during the warm-up it raises the bounds, after it checks
 * them.  Prints one line. */
static void sample(watch_t *w, bool warm, double t, uint64_t rounds)
{
    sample_t s = {rss_kb(), fd_count()};
    if (w->start.rss == 0)
        w->start = w->warm = s;
    w->last = s;
    w->max.rss = s.rss > w->max.rss ? s.rss : w->max.rss;
    w->max.fds = s.fds > w->max.fds ? s.fds : w->max.fds;
    long rss_bound = w->warm.rss + w->warm.rss / 10 + 4096;
    if (warm) {
        w->warm.rss = s.rss > w->warm.rss ? s.rss : w->warm.rss;
        w->warm.fds = s.fds > w->warm.fds ? s.fds : w->warm.fds;
    } else if (s.fds > w->warm.fds || (!SOAK_SANITIZER && s.rss > rss_bound)) {
        fprintf(stderr,
                "soak: after the warm-up, rss %ld KiB (bound %ld), fds %ld "
                "(bound %ld)\n",
                s.rss, rss_bound, s.fds, w->warm.fds);
        w->broken = 1;
    }
    printf("soak t=%.0fs rounds=%" PRIu64 " calls=%" PRIu64
           " rss_kb=%ld fds=%ld%s\n",
           t, rounds, (uint64_t)atomic_load(&g_calls), s.rss, s.fds,
           warm ? " (warm-up)" : "");
    fflush(stdout);
}

/* Runs rounds until SECONDS pass (if > 0) or ROUNDS are done, sampling
 * every EVERY seconds or rounds; the first fifth is the warm-up. */
static int soak(round_t *r, double seconds, uint64_t rounds, double every)
{
    watch_t w = {0};
    double t0 = now_s(), next = 0;
    for (uint64_t i = 0;; i++) {
        double t = now_s() - t0, at = seconds > 0 ? t : (double)i;
        double end = seconds > 0 ? seconds : (double)rounds;
        bool over = at >= end;
        if (at >= next || over) {
            sample(&w, at <= end / 5, t, i);
            next += every;
        }
        if (over || w.broken)
            break;
        if (one_round(r, i))
            return 1;
    }
    printf("soak: rss_kb start %ld end %ld max %ld; fds start %ld end %ld "
           "max %ld\n",
           w.start.rss, w.last.rss, w.max.rss, w.start.fds, w.last.fds,
           w.max.fds);
    return w.broken;
}

/* An unlinked temp file of FILE_BYTES bytes, byte K = 'a' + K % 26. */
static int make_file(void)
{
    char path[] = "/tmp/soak-XXXXXX", buf[FILE_BYTES];
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    unlink(path);
    for (int k = 0; k < FILE_BYTES; k++)
        buf[k] = (char)('a' + k % 26);
    if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf) {
        close(fd);
        return -1;
    }
    return fd;
}

int main(int argc, char **argv)
{
    double seconds = 0, every = 1200;
    uint64_t rounds = 12000;
    if (argc > 1 && strcmp(argv[1], "--long") == 0) {
        seconds = argc > 2 ? strtod(argv[2], NULL) : 600;
        every = seconds / 20;
        if (!(seconds > 0)) {
            fprintf(stderr, "usage: soak [ROUNDS] | --long [SECONDS]\n");
            return 2;
        }
    } else if (argc > 1) {
        rounds = strtoull(argv[1], NULL, 10);
        every = rounds / 10 ? (double)(rounds / 10) : 1;
    } else if (SOAK_SANITIZER) {
        rounds /= 4, every /= 4;
    }
    round_t r = {.seed = 0x2545F4914F6CDD1Dull, .file = make_file()};
    if (r.file < 0) {
        fprintf(stderr, "soak: cannot make the temp file\n");
        return 1;
    }
    fut_pool_opts_t po = {.threads = 2};
    if (fut_pool_create(&r.pool, &po) || fut_loop_create(&r.loop, NULL)) {
        fprintf(stderr, "soak: cannot create the executors\n");
        return 1;
    }
    int rc = soak(&r, seconds, rounds, every);
    fut_executor_destroy(r.pool);
    fut_executor_destroy(r.loop);
    /* Give back this thread's cached blocks: the main thread never exits,
     * and LeakSanitizer reports its cache as leaked (reported to lead). */
    fut_set_allocator(NULL, NULL);
    close(r.file);
    if (!rc)
        printf("soak: ok\n");
    return rc;
}
