/* libfut — positioned file I/O and name lookup as futures: fut_pread,
 * fut_pwrite, fut_getaddrinfo (<fut/io.h>).
 *
 * A regular file is always "ready" to epoll (it refuses them), so on a
 * loop these cannot wait for readiness as the socket operations do.  What
 * they do instead, fastest first:
 *
 *   1. preadv2/pwritev2 with RWF_NOWAIT, on the calling thread: the kernel
 *      answers from the page cache or says EAGAIN (it would block on the
 *      disk); it never blocks.  The future is made before (so FUT_ENOMEM
 *      means nothing was read or written) but shared with nobody yet, so
 *      no cancel can race it.  Skipped with FUT_IO_OFFLOAD=1.
 *   2. otherwise a read goes to the loop's io_uring ring (io_uring.c,
 *      fut__uring_pread; FUT_IO_URING=all skips step 1 for reads,
 *      FUT_IO_URING=0 skips this step), which comes back here
 *      (fut__io_offload_pread) where the kernel refuses io_uring;
 *   3. otherwise (writes, no ring) the job goes to a small pool of offload
 *      threads (up to OFFLOAD_MAX, started on first use, never joined:
 *      they sleep on a condition variable when idle), as libuv's thread
 *      pool does.
 *
 * On any other executor the job is a task on it (a pool worker; inline:
 * the calling thread).  bench/http/file_read.c measures every path
 * (docs/BENCHMARKS.md): for data in the page cache RWF_NOWAIT answers
 * with one system call and no hand-off at all.
 *
 * Cancellation.  The job's future is a promise.  The thread that does the
 * I/O claims it first (fut_promise_claim, the executor kit) and holds the claim across its
 * system calls, so a cancel either wins before (the claim fails: the job
 * is dropped and the buffer never touched) or waits for the calls to end
 * and loses (FUT_EALREADY).  A name lookup takes no buffer and no claim: a
 * cancel that wins drops its result (settle fails, freeaddrinfo runs).
 *
 * The offload queue is a mutex-protected FIFO: it carries only requests
 * that would block on a disk or a resolver, which cost far more than the
 * lock. */
#include "loop_impl.h" /* fut__loop_ops: is EX a loop */

#include <netdb.h>
#include <sys/uio.h>

#define OFFLOAD_MAX 4

enum { J_PREAD, J_PWRITE, J_GAI };

struct job {
    struct job *next;
    int kind;
    fut_promise_t *p;
    int fd;
    char *buf;
    size_t len, done;
    off_t off;
    /* J_GAI */
    char *host, *service;
    struct addrinfo hints;
    bool has_hints;
};

/* ---- doing the work ----------------------------------------------------- */

/* Reads or writes the rest of J (blocking is fine here). */
static fut_result_t file_io(struct job *j)
{
    while (j->done < j->len) {
        ssize_t n = j->kind == J_PREAD
                        ? pread(j->fd, j->buf + j->done, j->len - j->done,
                                j->off + (off_t)j->done)
                        : pwrite(j->fd, j->buf + j->done, j->len - j->done,
                                 j->off + (off_t)j->done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return fut_fail(-errno);
        if (n == 0)
            break; /* end of file (a write of 0 bytes: stop, not spin) */
        j->done += (size_t)n;
    }
    return fut_ok_i64((int64_t)j->done);
}

static void free_addrinfo(void *p)
{
    freeaddrinfo(p);
}

static fut_result_t lookup(struct job *j)
{
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(j->host, j->service, j->has_hints ? &j->hints : NULL,
                         &res);
    if (rc == 0)
        return fut_ok_owned(res, free_addrinfo);
    if (rc == EAI_SYSTEM)
        return fut_fail(errno ? -errno : FUT_EINVAL);
    if (rc == EAI_MEMORY)
        return fut_fail(FUT_ENOMEM);
    return fut_fail(FUT_EAI(rc));
}

static void job_free(struct job *j)
{
    free(j->host);
    free(j->service);
    fut_free(j);
}

/* Does J and settles its future; frees J. */
static void job_run(struct job *j)
{
    if (j->kind == J_GAI) {
        fut_promise_settle(j->p, lookup(j));
    } else if (fut_promise_claim(j->p)) {
        fut_promise_settle_claimed(j->p, file_io(j));
    } else {
        fut_promise_drop(j->p); /* cancelled: the buffer is not touched */
    }
    j->p = NULL;
    job_free(j);
}

/* ---- the offload threads ------------------------------------------------ */

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static struct job *g_head, *g_tail; /* FIFO, under g_mu */
static int g_threads, g_idle;       /* under g_mu */
static unsigned long g_offloaded;   /* jobs queued, under g_mu (tests) */

static void *offload_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&g_mu);
    for (;;) {
        while (!g_head) {
            g_idle++;
            pthread_cond_wait(&g_cv, &g_mu);
            g_idle--;
        }
        struct job *j = g_head;
        g_head = j->next;
        if (!g_head)
            g_tail = NULL;
        pthread_mutex_unlock(&g_mu);
        job_run(j);
        pthread_mutex_lock(&g_mu);
    }
    return NULL;
}

/* Queues J for an offload thread, starting one if none is idle.  False if
 * no thread runs and none could be started (J untouched). */
static bool offload(struct job *j)
{
    pthread_mutex_lock(&g_mu);
    if (!g_idle && g_threads < OFFLOAD_MAX) {
        pthread_t t;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&at, 256 * 1024); /* getaddrinfo's needs */
        if (pthread_create(&t, &at, offload_main, NULL) == 0)
            g_threads++;
        pthread_attr_destroy(&at);
    }
    bool ok = g_threads > 0;
    if (ok) {
        j->next = NULL;
        if (g_tail)
            g_tail->next = j;
        else
            g_head = j;
        g_tail = j;
        g_offloaded++;
        if (g_idle)
            pthread_cond_signal(&g_cv);
    }
    pthread_mutex_unlock(&g_mu);
    return ok;
}

unsigned long fut__io_offload_count(void)
{
    pthread_mutex_lock(&g_mu);
    unsigned long n = g_offloaded;
    pthread_mutex_unlock(&g_mu);
    return n;
}

/* ---- the switch that forces the offload path ---------------------------- */

/* -1: not read yet; 0: RWF_NOWAIT first; 1: offload only.  Relaxed: a
 * racing first read of the environment gives the same answer. */
static _Atomic int g_force = -1;

static bool force_offload(void)
{
    int f = atomic_load_explicit(&g_force, memory_order_relaxed);
    if (f < 0) {
        const char *e = getenv("FUT_IO_OFFLOAD");
        f = e && *e && strcmp(e, "0") != 0;
        atomic_store_explicit(&g_force, f, memory_order_relaxed);
    }
    return f;
}

void fut__io_force_offload(int on)
{
    atomic_store_explicit(&g_force, on, memory_order_relaxed);
}

/* ---- making the futures ------------------------------------------------- */

static bool is_loop(fut_executor_t *ex)
{
    return fut_executor_impl(ex, &fut__loop_ops) != NULL;
}

static fut_result_t job_task(void *arg)
{
    job_run(arg);
    return fut_ok(NULL);
}

/* EX refused or dropped job_task: the job never ran. */
static fut_result_t job_dropped(void *arg, fut_t *src)
{
    struct job *j = arg;
    fut_promise_settle(j->p, fut_fail(fut_error(src)));
    job_free(j);
    return fut_ok(NULL);
}

/* What a read that cannot go on for lack of memory (or of an offload
 * thread) settles with: the DONE bytes it read already, a short read as
 * pread(2) may give, or FUT_ENOMEM if it read nothing. */
static fut_result_t short_or_enomem(int kind, size_t done)
{
    return kind == J_PREAD && done ? fut_ok_i64((int64_t)done)
                                   : fut_fail(FUT_ENOMEM);
}

/* J, its future made, goes to the offload threads (EX a loop) or to EX. */
static void dispatch(fut_executor_t *ex, struct job *j)
{
    if (is_loop(ex)) {
        if (!offload(j)) {
            fut_promise_settle(j->p, short_or_enomem(j->kind, j->done));
            job_free(j);
        }
        return;
    }
    fut_t *t = fut_async(ex, job_task, j);
    fut_release(fut_catch(t, fut_inline(), job_dropped, j));
}

/* RWF_NOWAIT on this thread: true if the page cache had it all (or the
 * answer is an error) and J's future is settled, else false with J->done
 * advanced. */
static bool try_nowait(struct job *j)
{
    while (j->done < j->len) {
        struct iovec iov = {j->buf + j->done, j->len - j->done};
        ssize_t n =
            j->kind == J_PREAD
                ? preadv2(j->fd, &iov, 1, j->off + (off_t)j->done, RWF_NOWAIT)
                : pwritev2(j->fd, &iov, 1, j->off + (off_t)j->done,
                           RWF_NOWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EOPNOTSUPP ||
                      errno == EINVAL || errno == ENOSYS))
            return false; /* it would block, or no RWF_NOWAIT here */
        if (n < 0) {
            fut_promise_settle(j->p, fut_fail(-errno));
            return true;
        }
        if (n == 0)
            break;
        j->done += (size_t)n;
    }
    fut_promise_settle(j->p, fut_ok_i64((int64_t)j->done));
    return true;
}

static fut_t *file_op(fut_executor_t *ex, int kind, int fd, const void *buf,
                      size_t len, off_t off)
{
    if (!ex || fd < 0 || off < 0 || (!buf && len))
        return fut_ready(fut_fail(FUT_EINVAL));
    struct job *j = fut_alloc(sizeof *j);
    if (!j)
        return fut_ready(fut_fail(FUT_ENOMEM));
    memset(j, 0, sizeof *j);
    j->kind = kind;
    j->fd = fd;
    j->buf = (char *)(uintptr_t)buf; /* a write never writes through it */
    j->len = len;
    j->off = off;
    /* The future before any system call: FUT_ENOMEM means that nothing was
     * read or written, and a call that did its work always settles it. */
    fut_t *f = fut_promise_new(&j->p);
    if (!j->p) {
        job_free(j);
        return f;
    }
    if (is_loop(ex) && !force_offload()) {
        int ring = fut__uring_mode();
        bool skip_nowait = ring == FUT_URING_ALL && kind == J_PREAD;
        bool done = !skip_nowait && try_nowait(j);
        if (!done && ring != FUT_URING_OFF && kind == J_PREAD) {
            fut__uring_pread(ex, j->p, fd, j->buf, len, off, j->done);
            done = true;
        }
        if (done) {
            job_free(j);
            return f;
        }
    }
    dispatch(ex, j);
    return f;
}

void fut__io_offload_pread(fut_promise_t *p, int fd, char *buf, size_t len,
                           off_t off, size_t done)
{
    struct job *j = fut_alloc(sizeof *j);
    if (j) {
        memset(j, 0, sizeof *j);
        j->kind = J_PREAD;
        j->p = p;
        j->fd = fd;
        j->buf = buf;
        j->len = len;
        j->done = done;
        j->off = off;
    }
    if (!j || !offload(j)) {
        fut_promise_settle(p, short_or_enomem(J_PREAD, done));
        if (j)
            job_free(j);
    }
}

fut_t *fut_pread(fut_executor_t *ex, int fd, void *buf, size_t len, off_t off)
{
    return file_op(ex, J_PREAD, fd, buf, len, off);
}

fut_t *fut_pwrite(fut_executor_t *ex, int fd, const void *buf, size_t len,
                  off_t off)
{
    return file_op(ex, J_PWRITE, fd, buf, len, off);
}

fut_t *fut_getaddrinfo(fut_executor_t *ex, const char *host,
                       const char *service, const struct addrinfo *hints)
{
    if (!ex || (!host && !service))
        return fut_ready(fut_fail(FUT_EINVAL));
    struct job *j = fut_alloc(sizeof *j);
    if (!j)
        return fut_ready(fut_fail(FUT_ENOMEM));
    memset(j, 0, sizeof *j);
    j->kind = J_GAI;
    j->host = host ? strdup(host) : NULL;
    j->service = service ? strdup(service) : NULL;
    if ((host && !j->host) || (service && !j->service)) {
        job_free(j);
        return fut_ready(fut_fail(FUT_ENOMEM));
    }
    if (hints) {
        j->hints.ai_flags = hints->ai_flags;
        j->hints.ai_family = hints->ai_family;
        j->hints.ai_socktype = hints->ai_socktype;
        j->hints.ai_protocol = hints->ai_protocol;
        j->has_hints = true;
    }
    fut_t *f = fut_promise_new(&j->p);
    if (!j->p) {
        job_free(j);
        return f;
    }
    dispatch(ex, j);
    return f;
}
