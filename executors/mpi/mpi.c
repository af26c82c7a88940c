/* libfut-mpi: the API (<fut/mpi.h>) and who drives MPI.
 *
 * Who drives.  At any moment at most one thread holds m->mpi_lock and runs
 * rounds (progress.c); that is how the group stays within
 * MPI_THREAD_SERIALIZED.  Under SERIALIZED or MULTIPLE it is the progress
 * thread, except while a thread in fut_mpi_wait has taken over:
 *
 *   progress thread:  loop { if waiter_driving: sleep until it is clear;
 *                            lock; rounds until waiter_driving or SPIN
 *                            empty ones; unlock; idle? nap }
 *   fut_mpi_wait:     CAS waiter_driving 0->1 (one driving waiter at a
 *                     time; the others fut_wait), lock (the progress
 *                     thread lets go after its current round), rounds
 *                     until F settles or SPIN empty rounds, unlock, clear
 *                     the flag, wake the progress thread, and fut_wait for
 *                     the rest if F is still pending.
 *
 * Under FUNNELED there is no progress thread: the thread that initialised
 * MPI drives inside fut_mpi_wait (and serve, destroy, which wait) and naps
 * instead of handing over when idle.
 *
 * Sleeping.  An idle driver naps on COND with SLEEPING set, 20 us first,
 * doubling up to idle_ns; a call pushed on the intake stack, a job pushed
 * on the done stack, a cleared waiter flag or stop wakes it at once
 * (fut_mpi__wake).  Remote messages are only seen at the next poll: MPI
 * has no descriptor to sleep on. */
#include "mpi_impl.h"

#include <limits.h>
#include <sched.h>
#include <string.h>
#include <time.h>

#define NAP0_NS 20000ull
/* drive() gave MPI back to the progress thread (a positive, internal code) */
#define HAND_BACK 1

static fut_t *rejected(int err)
{
    return fut_ready(fut_fail(err));
}

_Thread_local fut_bytes_t *fut_mpi__made_bytes;

void fut_mpi__bytes_free(void *b)
{
    if (b == fut_mpi__made_bytes) /* its address may come back as another */
        fut_mpi__made_bytes = NULL;
    fut_free(BYTES_BLOCK(b));
}

/* fut_ok_bytes lives here, not in libfut: see <fut/mpi.h>. */
fut_result_t fut_ok_bytes(const void *p, size_t len)
{
    if (!p && len)
        return fut_fail(FUT_EINVAL);
    if (len > SIZE_MAX - 64)
        return fut_fail(FUT_ENOMEM);
    unsigned char *blk = fut_alloc(2 * sizeof(uint64_t) + sizeof(fut_bytes_t)
                                   + len);
    if (!blk)
        return fut_fail(FUT_ENOMEM);
    fut_bytes_t *b = (fut_bytes_t *)(blk + 2 * sizeof(uint64_t));
    b->len = len;
    if (len)
        memcpy(b->data, p, len);
    fut_mpi__made_bytes = b;
    return fut_ok_owned(b, fut_mpi__bytes_free);
}

/* ---- sleeping and driving ---------------------------------------------------- */

static void deadline_of(struct timespec *ts, uint64_t ns)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ns += (uint64_t)ts->tv_nsec;
    ts->tv_sec += (time_t)(ns / 1000000000u);
    ts->tv_nsec = (long)(ns % 1000000000u);
}

/* Naps up to NS unless there is work.  FOR_WAITER (the progress thread
 * while waiters drive, or did a moment ago): sets PARKED instead of
 * SLEEPING, so pushes do not wake it (a waiter is about to see them); a
 * waiter that hands back with work outstanding sets HANDBACK_BUSY and
 * wakes it, else it resumes at the end of NS. */
static void idle_sleep(struct fut_mpi *m, uint64_t ns, bool for_waiter)
{
    struct timespec ts;
    atomic_bool *flag = for_waiter ? &m->parked : &m->sleeping;
    deadline_of(&ts, ns);
    pthread_mutex_lock(&m->wake_lock);
    /* seq_cst: pairs with the seq_cst loads in fut_mpi__wake and in
     * fut_mpi_wait (Dekker: push or HANDBACK_BUSY, then the flag). */
    atomic_store(flag, true);
    bool work = atomic_load(&m->stop) ||
                (for_waiter ? atomic_load(&m->handback_busy)
                            : atomic_load(&m->intake) || atomic_load(&m->done));
    if (!work)
        pthread_cond_timedwait(&m->cond, &m->wake_lock, &ts);
    atomic_store(flag, false);
    pthread_mutex_unlock(&m->wake_lock);
}

/* True while a waiter drives, or if one handed back with nothing
 * outstanding since the progress thread last looked (*SEEN, its copy of
 * WAITER_EPOCH), i.e. during its last nap: the next fut_mpi_wait will
 * likely drive again, and a progress thread taking MPI in between only
 * contends for it.  An epoch, not a clock: a waiter's hand-back costs a
 * plain store, not a clock read per call. */
static bool waiters_active(struct fut_mpi *m, uint64_t *seen)
{
    if (atomic_load(&m->waiter_driving))
        return true;
    if (atomic_exchange(&m->handback_busy, false))
        return false;
    /* Relaxed: a hint; the lock orders what the rounds touch. */
    uint64_t e = atomic_load_explicit(&m->waiter_epoch, memory_order_relaxed);
    bool recent = e != *seen;
    *seen = e;
    return recent;
}

static void wake_all(struct fut_mpi *m)
{
    pthread_mutex_lock(&m->wake_lock);
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->wake_lock);
}

static bool one_round(struct fut_mpi *m)
{
    fut_mpi__driving = m;
    bool did = fut_mpi__round(m);
    fut_mpi__driving = NULL;
    return did;
}

/* The progress thread's rounds, under one hold of MPI_LOCK, until a waiter
 * asks for MPI (WAITER_DRIVING, a plain load per round: the lock orders
 * the rest), stop, or SPIN empty rounds in a row (then false: idle).  One
 * hold, not one per round: a lock, an unlock and a clock read per round
 * made up most of a serving rank's polling (callgrind, mpi_bench rt1
 * inline: 14,900 of ~25,000 instructions per round trip on rank 1, whose
 * service the progress thread takes over once fut_mpi_serve's own drive
 * has idled SPIN rounds). */
static bool progress_rounds(struct fut_mpi *m)
{
    unsigned idle = 0;
    pthread_mutex_lock(&m->mpi_lock);
    while (!atomic_load_explicit(&m->waiter_driving, memory_order_relaxed) &&
           !atomic_load_explicit(&m->stop, memory_order_relaxed)) {
        if (one_round(m)) {
            idle = 0;
        } else if (++idle >= m->spin) {
            break;
        } else if (idle % 16 == 0) {
            /* ranks share cores when oversubscribed */
            pthread_mutex_unlock(&m->mpi_lock);
            sched_yield();
            pthread_mutex_lock(&m->mpi_lock);
        }
    }
    pthread_mutex_unlock(&m->mpi_lock);
    return idle < m->spin;
}

static void *progress_main(void *arg)
{
    struct fut_mpi *m = arg;
    uint64_t nap = NAP0_NS, seen = 0;
    while (!atomic_load(&m->stop)) {
        if (waiters_active(m, &seen)) {
            idle_sleep(m, nap, true);
            nap = nap * 2 < m->idle_ns ? nap * 2 : m->idle_ns;
        } else if (progress_rounds(m)) {
            nap = NAP0_NS;
        } else {
            idle_sleep(m, nap, false);
            nap = nap * 2 < m->idle_ns ? nap * 2 : m->idle_ns;
        }
    }
    return NULL;
}

/* True if the MPI thread has something to watch (under mpi_lock). */
static bool outstanding(const struct fut_mpi *m)
{
    return m->inflight_total || m->queued || m->jobs_active || m->nsends ||
           atomic_load_explicit(&m->closing, memory_order_relaxed);
}

/* Drives until F settles (0), DEADLINE passes (FUT_ETIMEDOUT) or, with a
 * progress thread, SPIN empty rounds (HAND_BACK: hand back).  *BUSY: work
 * remained outstanding when it let go. */
static int drive(struct fut_mpi *m, fut_t *f, uint64_t deadline, bool *busy)
{
    unsigned idle = 0;
    uint64_t nap = NAP0_NS;
    int rc = 0;
    pthread_mutex_lock(&m->mpi_lock);
    while (fut_state(f) == FUT_PENDING) {
        if (one_round(m)) {
            idle = 0;
            nap = NAP0_NS;
            continue;
        }
        uint64_t now = 0; /* the clock only when it can matter */
        if ((++idle % 64 == 0 && deadline != UINT64_MAX) || idle >= m->spin)
            now = fut_now_ns();
        if (now >= deadline) {
            rc = FUT_ETIMEDOUT;
            break;
        }
        if (idle < m->spin)
            continue;
        if (m->threaded) {
            rc = HAND_BACK;
            break;
        }
        idle_sleep(m, nap < deadline - now ? nap : deadline - now, false);
        nap = nap * 2 < m->idle_ns ? nap * 2 : m->idle_ns;
    }
    *busy = outstanding(m);
    pthread_mutex_unlock(&m->mpi_lock);
    return rc;
}

static void seal(struct fut_mpi *m)
{
    /* Release: publishes the registration table to the MPI thread and to
     * callers (their acquire loads in progress.c and fut_mpi_call). */
    if (!atomic_load_explicit(&m->sealed, memory_order_relaxed))
        atomic_store_explicit(&m->sealed, true, memory_order_release);
}

/* A waiter gives MPI back (after drive unlocked).  WAITER_DRIVING is
 * cleared with a release store (a plain one; the progress thread's loads
 * need only see it eventually, and the lock orders the rounds), before
 * HANDBACK_BUSY, so a progress thread that sees HANDBACK_BUSY (acquire)
 * sees the flag clear too.  seq_cst: HANDBACK_BUSY then PARKED, against
 * idle_sleep's PARKED then HANDBACK_BUSY (Dekker).  With nothing
 * outstanding the parked progress thread finishes its nap: a ping-pong of
 * calls and waits pays no wake-up per call. */
static void hand_back(struct fut_mpi *m, bool busy)
{
    /* Relaxed, no RMW: only the driving waiter writes it. */
    uint64_t e = atomic_load_explicit(&m->waiter_epoch, memory_order_relaxed);
    atomic_store_explicit(&m->waiter_epoch, e + 1, memory_order_relaxed);
    atomic_store_explicit(&m->waiter_driving, false, memory_order_release);
    if (busy) {
        atomic_store(&m->handback_busy, true);
        if (atomic_load(&m->parked))
            wake_all(m);
    }
}

int fut_mpi_wait(fut_mpi_t *m, fut_t *f, int64_t timeout_ns)
{
    if (!m || !f)
        return FUT_EINVAL;
    if (fut_state(f) != FUT_PENDING)
        return 0;
    if (fut_mpi__driving)
        return FUT_EDEADLK;
    seal(m);
    uint64_t deadline =
        timeout_ns < 0 ? UINT64_MAX : fut_now_ns() + (uint64_t)timeout_ns;
    int rc = HAND_BACK;
    bool busy = false;
    if (m->threaded) {
        bool no = false;
        if (atomic_compare_exchange_strong(&m->waiter_driving, &no, true)) {
            rc = drive(m, f, deadline, &busy);
            hand_back(m, busy);
        }
    } else if (pthread_equal(pthread_self(), m->main_thread)) {
        rc = drive(m, f, deadline, &busy);
    }
    if (rc != HAND_BACK)
        return rc;
    if (timeout_ns < 0)
        return fut_wait(f, -1);
    uint64_t now = fut_now_ns();
    return fut_wait(f, now >= deadline ? 0 : (int64_t)(deadline - now));
}

/* ---- creating ---------------------------------------------------------------- */

static int check_mpi(MPI_Comm comm, int *level)
{
    int init = 0, fin = 0, inter = 0, main_thread = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (!init || fin || comm == MPI_COMM_NULL)
        return FUT_EINVAL;
    if (MPI_Comm_test_inter(comm, &inter) != MPI_SUCCESS || inter)
        return FUT_EINVAL;
    MPI_Query_thread(level);
    if (*level < MPI_THREAD_FUNNELED)
        return FUT_MPI_ENOTSUP;
    MPI_Is_thread_main(&main_thread);
    return *level == MPI_THREAD_FUNNELED && !main_thread ? FUT_MPI_ENOTSUP
                                                         : 0;
}

static void *zalloc(size_t n)
{
    void *p = fut_alloc(n);
    if (p)
        memset(p, 0, n);
    return p;
}

/* The per-destination arrays, once rank and size are known. */
static int alloc_tables(struct fut_mpi *m)
{
    size_t n = (size_t)m->size;
    m->queues = zalloc(n * sizeof *m->queues);
    m->slots = zalloc(n * m->bound * sizeof *m->slots);
    m->inflight = zalloc(n * sizeof *m->inflight);
    m->free_slots = zalloc(n * sizeof *m->free_slots);
    if (!m->queues || !m->slots || !m->inflight || !m->free_slots)
        return FUT_ENOMEM;
    for (size_t d = 0; d < n; d++) {
        if (!(m->free_slots[d] = fut_alloc(m->bound * sizeof(unsigned))))
            return FUT_ENOMEM;
        for (unsigned i = 0; i < m->bound; i++)
            m->free_slots[d][i] = m->bound - 1 - i;
    }
    return 0;
}

static void free_tables(struct fut_mpi *m)
{
    for (int d = 0; m->free_slots && d < m->size; d++)
        fut_free(m->free_slots[d]);
    fut_free(m->free_slots);
    fut_free(m->inflight);
    fut_free(m->slots);
    fut_free(m->queues);
    fut_free(m->reqs);
    fut_free(m->sends);
    fut_free(m->done_idx);
    fut_free(m->spare_job);
    for (size_t i = 0; i < m->nfns; i++)
        fut_free(m->fns[i].name);
    fut_free(m->fns);
}

static void free_group(struct fut_mpi *m)
{
    if (m->pool)
        fut_executor_destroy(m->pool);
    fut_promise_drop(m->done_promise);
    fut_release(m->done_fut);
    free_tables(m);
    pthread_cond_destroy(&m->cond);
    pthread_mutex_destroy(&m->wake_lock);
    pthread_mutex_destroy(&m->mpi_lock);
    fut_free(m);
}

static int init_sync(struct fut_mpi *m)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int err = pthread_cond_init(&m->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&m->mpi_lock, NULL);
    pthread_mutex_init(&m->wake_lock, NULL);
    return err ? -err : 0;
}

/* Everything local: options, tables, pool, sync. */
static int make_group(struct fut_mpi *m, const fut_mpi_opts_t *o, int size)
{
    m->bound = o->max_in_flight ? o->max_in_flight : 64;
    m->spin = o->spin ? o->spin : 2000;
    m->idle_ns = o->idle_ns ? o->idle_ns : 1000000;
    if (m->idle_ns < NAP0_NS)
        m->idle_ns = NAP0_NS;
    m->run_inline = o->run_inline;
    m->size = size;
    m->main_thread = pthread_self();
    m->rx_req[0] = m->rx_req[1] = MPI_REQUEST_NULL;
    int err = init_sync(m);
    if (!err)
        err = alloc_tables(m);
    m->done_fut = fut_promise_new(&m->done_promise);
    if (!err && !m->done_promise)
        err = fut_error(m->done_fut);
    if (!err && !m->run_inline) {
        fut_pool_opts_t po = {.threads = o->workers, .name = "fut-mpi"};
        err = fut_pool_create(&m->pool, &po);
    }
    return err;
}

int fut_mpi_create(fut_mpi_t **out, MPI_Comm comm, const fut_mpi_opts_t *opts)
{
    static const fut_mpi_opts_t defaults;
    const fut_mpi_opts_t *o = opts ? opts : &defaults;
    int level = 0, size = 0;
    if (!out)
        return FUT_EINVAL;
    *out = NULL;
    int err = check_mpi(comm, &level);
    if (err)
        return err;
    if (o->max_in_flight > (1u << 20) ||
        MPI_Comm_size(comm, &size) != MPI_SUCCESS)
        return FUT_EINVAL;
    struct fut_mpi *m = zalloc(sizeof *m);
    if (!m)
        return FUT_ENOMEM;
    m->level = level;
    m->threaded = level >= MPI_THREAD_SERIALIZED;
    if ((err = make_group(m, o, size)) != 0) {
        free_group(m);
        return err;
    }
    /* Collective; last, so a local failure above leaves no communicator. */
    if (MPI_Comm_dup(comm, &m->comm) != MPI_SUCCESS) {
        free_group(m);
        return FUT_MPI_ECOMM;
    }
    MPI_Comm_rank(m->comm, &m->rank);
    if (m->threaded &&
        (err = -pthread_create(&m->thread, NULL, progress_main, m)) != 0) {
        MPI_Comm_free(&m->comm);
        free_group(m);
        return err;
    }
    m->thread_started = m->threaded;
    *out = m;
    return 0;
}

int fut_mpi_rank(const fut_mpi_t *m)
{
    return m ? m->rank : FUT_EINVAL;
}

int fut_mpi_size(const fut_mpi_t *m)
{
    return m ? m->size : FUT_EINVAL;
}

/* ---- registering and calling ------------------------------------------------ */

static long find_fn(const struct fut_mpi *m, const char *name, uint32_t hash)
{
    for (size_t i = 0; i < m->nfns; i++)
        if (m->fns[i].hash == hash && !strcmp(m->fns[i].name, name))
            return (long)i;
    return -1;
}

int fut_mpi_register(fut_mpi_t *m, const char *name, fut_mpi_fn fn, void *ud)
{
    if (!m || !name || !fn || !*name || strlen(name) > 255)
        return FUT_EINVAL;
    uint32_t hash = fut_mpi__hash(name);
    if (atomic_load_explicit(&m->sealed, memory_order_relaxed) ||
        find_fn(m, name, hash) >= 0)
        return FUT_EALREADY;
    if (m->nfns == m->fncap) {
        size_t cap = m->fncap ? 2 * m->fncap : 8;
        struct fn_entry *v = fut_alloc(cap * sizeof *v);
        if (!v)
            return FUT_ENOMEM;
        if (m->nfns)
            memcpy(v, m->fns, m->nfns * sizeof *v);
        fut_free(m->fns);
        m->fns = v;
        m->fncap = cap;
    }
    size_t n = strlen(name) + 1;
    char *copy = fut_alloc(n);
    if (!copy)
        return FUT_ENOMEM;
    memcpy(copy, name, n);
    m->fns[m->nfns++] = (struct fn_entry){copy, hash, fn, ud};
    return 0;
}

fut_t *fut_mpi_call(fut_mpi_t *m, int rank, const char *name, const void *arg,
                    size_t len)
{
    if (!m || !name || (!arg && len) || rank < FUT_MPI_ANY ||
        rank >= m->size || len > MAX_MSG - HDR_BYTES)
        return rejected(FUT_EINVAL);
    seal(m);
    int err = atomic_load_explicit(&m->broken, memory_order_relaxed);
    if (err)
        return rejected(err);
    /* Acquire: pairs with the release in start_close. */
    if (atomic_load_explicit(&m->closing, memory_order_acquire))
        return rejected(FUT_ESHUTDOWN);
    uint32_t hash = fut_mpi__hash(name);
    long idx = find_fn(m, name, hash);
    if (idx < 0)
        return rejected(FUT_MPI_ENOSYS);
    struct call *c = fut_alloc(sizeof *c + HDR_BYTES + len);
    fut_promise_t *p = NULL;
    fut_t *f = c ? fut_promise_new(&p) : rejected(FUT_ENOMEM);
    if (!p) {
        fut_free(c);
        return f;
    }
    *c = (struct call){.promise = p, .fut = fut_retain(f), .dest = rank,
                       .msg_len = HDR_BYTES + len};
    c->msg[0] = 0; /* the slot, set when sent */
    c->msg[1] = (uint64_t)idx << 32 | hash;
    c->msg[2] = len;
    if (len)
        memcpy(c->msg + HDR_WORDS, arg, len);
    struct call *top = atomic_load_explicit(&m->intake, memory_order_relaxed);
    do /* seq_cst: release for take_intake, and Dekker with SLEEPING */
        c->next = top;
    while (!atomic_compare_exchange_weak_explicit(
        &m->intake, &top, c, memory_order_seq_cst, memory_order_relaxed));
    fut_mpi__wake(m);
    return f;
}

/* ---- serving and destroying ---------------------------------------------------- */

/* Under FUNNELED only the thread that initialised MPI can drive: serve and
 * destroy elsewhere would wait for ever. */
static bool may_serve(const struct fut_mpi *m)
{
    return m->threaded || pthread_equal(pthread_self(), m->main_thread);
}

int fut_mpi_serve(fut_mpi_t *m)
{
    if (!m)
        return FUT_EINVAL;
    if (fut_mpi__driving)
        return FUT_EDEADLK;
    if (!may_serve(m))
        return FUT_MPI_ENOTSUP;
    seal(m);
    /* Release: pairs with the acquire loads in fut_mpi_call and
     * shutdown_step. */
    atomic_store_explicit(&m->closing, true, memory_order_release);
    fut_mpi__wake(m);
    int err = fut_mpi_wait(m, m->done_fut, -1);
    return err ? err : fut_error(m->done_fut);
}

/* Frees what a broken group may still hold (no collective steps). */
static void drop_leftovers(struct fut_mpi *m)
{
    for (size_t i = 0; i < m->nsends; i++) {
        MPI_Request_free(&m->reqs[i]);
        fut_free(m->sends[i].call_msg);
        if (m->sends[i].call) /* rejected by fail_all already */
            fut_mpi__call_sent(m->sends[i].call);
        if (m->sends[i].job) {
            fut_release(m->sends[i].job->res);
            fut_free(m->sends[i].job);
        }
    }
    m->nsends = 0;
}

int fut_mpi_destroy(fut_mpi_t *m)
{
    if (!m)
        return FUT_EINVAL;
    if (fut_mpi__driving)
        return FUT_EDEADLK;
    if (!may_serve(m))
        return FUT_MPI_ENOTSUP;
    int err = fut_mpi_serve(m);
    atomic_store(&m->stop, true);
    wake_all(m);
    if (m->thread_started)
        pthread_join(m->thread, NULL);
    if (m->pool) { /* broken: jobs may still run; they push to DONE */
        fut_executor_destroy(m->pool);
        m->pool = NULL;
    }
    fut_mpi__recv_stop(m); /* the posted receives (and, broken, bodies) */
    if (err) {
        fut_mpi__fail_all(m, err);
        drop_leftovers(m);
    } else {
        MPI_Comm_free(&m->comm);
    }
    free_group(m);
    return err;
}
