/* libfut-mpi: the MPI thread's round.
 *
 * Whoever holds m->mpi_lock (the progress thread, a thread in
 * fut_mpi_wait, or under FUNNELED the main thread) runs fut_mpi__round
 * over and over; it is the only code that calls MPI between create and
 * destroy, and the only code that touches the "MPI thread's state" of
 * struct fut_mpi.  A round:
 *
 *   intake stack --take_intake--> queues[dest] / any --dispatch--> Isend CALL
 *                                  (at most max_in_flight per destination)
 *   posted receives (recv.c) --> REPLY: settle the caller's promise,
 *                                        free the slot
 *                            --> CALL:  a job; run it on the pool (or
 *                                        here, run_inline)
 *   done stack (jobs finished by workers) --take_done--> Isend REPLY
 *   Testsome over sends in progress: free what they carried
 *   shutdown: closing, nothing of ours queued or in flight, SPIN idle
 *             rounds in a row -> Ibarrier;
 *             barrier done, no job and no send left -> settle done_promise
 *
 * Why the barrier ends the group safely: a rank enters it only once every
 * call it made has been answered, and refuses new calls from then on; so
 * when it completes on a rank, every rank has entered, every call in the
 * group was answered, and no message can still be on its way to anyone
 * (a reply was received, so its send has matched; the local request
 * completes in later rounds, which the last condition waits for).
 *
 * A call's slot is freed by its reply only, never by a cancel: the remote
 * rank still runs a cancelled call, and the bound is on remote work.  A
 * call cancelled while still queued is dropped when the dispatcher reaches
 * it (its promise settled already; fut_promise_drop just consumes it). */
#include "mpi_impl.h"

#include <limits.h>
#include <string.h>

_Thread_local struct fut_mpi *fut_mpi__driving;

uint32_t fut_mpi__hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* True if RC is MPI_SUCCESS; else the group is broken (MPI_ERRORS_RETURN
 * only: with the default handler MPI aborted the job already). */
bool fut_mpi__ok(struct fut_mpi *m, int rc)
{
    if (rc == MPI_SUCCESS)
        return true;
    atomic_store(&m->broken, FUT_MPI_ECOMM);
    return false;
}

void fut_mpi__wake(struct fut_mpi *m)
{
    /* seq_cst: pairs with the seq_cst store of SLEEPING in idle_sleep
     * (mpi.c) after the caller's seq_cst push (Dekker). */
    if (atomic_load(&m->sleeping)) {
        pthread_mutex_lock(&m->wake_lock);
        pthread_cond_broadcast(&m->cond);
        pthread_mutex_unlock(&m->wake_lock);
    }
}

/* ---- sends ---------------------------------------------------------------- */

void fut_mpi__job_free(struct fut_mpi *m, struct job *j)
{
    fut_release(j->res);
    if (j->spare && !m->spare_job)
        m->spare_job = j;
    else
        fut_free(j);
    m->jobs_active--;
}

static void send_done(struct fut_mpi *m, struct sending s)
{
    fut_free(s.call_msg);
    if (s.call)
        fut_mpi__call_sent(s.call);
    if (s.job)
        fut_mpi__job_free(m, s.job);
}

static bool grow_sends(struct fut_mpi *m)
{
    size_t cap = m->sendcap ? 2 * m->sendcap : 64;
    MPI_Request *r = fut_alloc(cap * sizeof *r);
    struct sending *s = fut_alloc(cap * sizeof *s);
    int *d = fut_alloc(cap * sizeof *d);
    if (!r || !s || !d) {
        fut_free(r);
        fut_free(s);
        fut_free(d);
        return false;
    }
    if (m->nsends) {
        memcpy(r, m->reqs, m->nsends * sizeof *r);
        memcpy(s, m->sends, m->nsends * sizeof *s);
    }
    fut_free(m->reqs);
    fut_free(m->sends);
    fut_free(m->done_idx);
    m->reqs = r;
    m->sends = s;
    m->done_idx = d;
    m->sendcap = cap;
    return true;
}

/* Starts one MPI_Isend; S says what to free once it completes. */
static void isend_one(struct fut_mpi *m, void *buf, size_t len, int dest,
                      int tag, struct sending s)
{
    MPI_Request req;
    int flag = 0;
    if (!fut_mpi__ok(m, MPI_Isend(buf, (int)len, MPI_BYTE, dest, tag, m->comm,
                                  &req))) {
        send_done(m, s);
        return;
    }
    /* Small messages go out eagerly: most sends are complete at once. */
    if (!fut_mpi__ok(m, MPI_Test(&req, &flag, MPI_STATUS_IGNORE)) || flag ||
        (m->nsends == m->sendcap && !grow_sends(m) &&
         /* No memory to track it: finish it here. */
         (fut_mpi__ok(m, MPI_Wait(&req, MPI_STATUS_IGNORE)) || true))) {
        send_done(m, s);
        return;
    }
    m->reqs[m->nsends] = req;
    m->sends[m->nsends++] = s;
}

/* Sends the message BUF (header + data, LEN bytes) to DEST as one head
 * message (TAG), or, beyond SMALL_MSG, as its header alone then a body
 * (TAG + BODY_TAG) received straight into place (recv.c).  S says what to
 * free once all of it is sent. */
void fut_mpi__isend(struct fut_mpi *m, void *buf, size_t len, int dest,
                    int tag, struct sending s)
{
    if (len <= SMALL_MSG) {
        isend_one(m, buf, len, dest, tag, s);
        return;
    }
    uint64_t *head = fut_alloc(HDR_BYTES);
    if (!head) { /* no memory for a copy: send the header from BUF, wait */
        MPI_Request req;
        if (fut_mpi__ok(m, MPI_Isend(buf, HDR_BYTES, MPI_BYTE, dest, tag,
                                     m->comm, &req)))
            fut_mpi__ok(m, MPI_Wait(&req, MPI_STATUS_IGNORE));
    } else {
        memcpy(head, buf, HDR_BYTES);
        isend_one(m, head, HDR_BYTES, dest, tag,
                  (struct sending){.call_msg = head});
    }
    isend_one(m, (unsigned char *)buf + HDR_BYTES, len - HDR_BYTES, dest,
              tag + BODY_TAG, s);
}

static bool test_sends(struct fut_mpi *m)
{
    int n = 0;
    if (!m->nsends ||
        !fut_mpi__ok(m, MPI_Testsome((int)m->nsends, m->reqs, &n, m->done_idx,
                                MPI_STATUSES_IGNORE)) ||
        n == MPI_UNDEFINED || n == 0)
        return false;
    for (int i = 0; i < n; i++)
        send_done(m, m->sends[m->done_idx[i]]);
    size_t k = 0; /* completed requests are MPI_REQUEST_NULL now */
    for (size_t i = 0; i < m->nsends; i++)
        if (m->reqs[i] != MPI_REQUEST_NULL) {
            m->reqs[k] = m->reqs[i];
            m->sends[k++] = m->sends[i];
        }
    m->nsends = k;
    return true;
}

/* ---- outgoing calls --------------------------------------------------------- */

void fut_mpi__call_free(struct call *c)
{
    fut_release(c->fut);
    fut_free(c);
}

void fut_mpi__call_answered(struct call *c)
{
    c->promise = NULL;
    if (!c->sending)
        fut_mpi__call_free(c);
}

void fut_mpi__call_sent(struct call *c)
{
    c->sending = false;
    if (!c->promise)
        fut_mpi__call_free(c);
}

static void call_reject(struct call *c, int err)
{
    fut_promise_settle(c->promise, fut_fail(err));
    fut_mpi__call_answered(c);
}

static bool take_intake(struct fut_mpi *m)
{
    /* A plain load first: an empty round costs no locked instruction.
     * Acquire (both): pairs with the release CAS of the push in
     * fut_mpi_call. */
    if (!atomic_load_explicit(&m->intake, memory_order_relaxed))
        return false;
    struct call *c = atomic_exchange_explicit(&m->intake, NULL,
                                              memory_order_acquire);
    struct call *fifo = NULL;
    if (!c)
        return false;
    while (c) { /* the stack is newest first */
        struct call *next = c->next;
        c->next = fifo;
        fifo = c;
        c = next;
    }
    for (; fifo; fifo = c) {
        c = fifo->next;
        fifo->next = NULL;
        if (m->bar_state) { /* raced the close: refused like a late call */
            call_reject(fifo, FUT_ESHUTDOWN);
            continue;
        }
        struct queue *q = fifo->dest == FUT_MPI_ANY ? &m->any
                                                    : &m->queues[fifo->dest];
        if (q->tail)
            q->tail->next = fifo;
        else
            q->head = fifo;
        q->tail = fifo;
        m->queued++;
    }
    return true;
}

static struct call *queue_pop(struct fut_mpi *m, struct queue *q)
{
    struct call *c = q->head;
    if (!(q->head = c->next))
        q->tail = NULL;
    m->queued--;
    return c;
}

/* Sends C to DEST in a free slot of DEST, or drops it if cancelled. */
static void start_call(struct fut_mpi *m, struct call *c, int dest)
{
    if (fut_state(c->fut) != FUT_PENDING) { /* cancelled or timed out */
        fut_promise_drop(c->promise);
        fut_mpi__call_free(c);
        return;
    }
    unsigned local = m->free_slots[dest][m->bound - 1 - m->inflight[dest]++];
    size_t slot = (size_t)dest * m->bound + local;
    m->slots[slot] = c;
    m->inflight_total++;
    c->msg[0] = slot;
    c->sending = true;
    fut_mpi__isend(m, c->msg, c->msg_len, dest, TAG_CALL,
                   (struct sending){.call = c});
}

/* The rank with the fewest calls in flight, starting after the last one
 * chosen; -1 if every rank is at the bound. */
static int least_loaded(struct fut_mpi *m)
{
    int best = -1;
    for (int i = 0; i < m->size; i++) {
        int d = (m->next_any + i) % m->size;
        if (m->inflight[d] < m->bound &&
            (best < 0 || m->inflight[d] < m->inflight[best]))
            best = d;
    }
    if (best >= 0)
        m->next_any = (best + 1) % m->size;
    return best;
}

static bool dispatch(struct fut_mpi *m)
{
    bool did = false;
    if (!m->queued)
        return false;
    for (int d = 0; d < m->size; d++) {
        struct queue *q = &m->queues[d];
        while (q->head && (m->inflight[d] < m->bound ||
                           fut_state(q->head->fut) != FUT_PENDING)) {
            start_call(m, queue_pop(m, q), d);
            did = true;
        }
    }
    while (m->any.head) {
        int d = least_loaded(m);
        if (d < 0 && fut_state(m->any.head->fut) == FUT_PENDING)
            break;
        start_call(m, queue_pop(m, &m->any), d < 0 ? 0 : d);
        did = true;
    }
    return did;
}

/* ---- shutdown and failure --------------------------------------------------- */

static void settle_done(struct fut_mpi *m, fut_result_t r)
{
    if (m->done_promise)
        fut_promise_settle(m->done_promise, r);
    m->done_promise = NULL;
}

/* The barrier is entered only once the rank has been idle for SPIN rounds
 * (when its driver would start to nap), and tested only in idle rounds,
 * every BAR_TEST_EVERY-th until then, each one once napping: a pending MPI_Ibarrier puts libnbc's progress
 * function into every opal_progress, and an MPI_Test per round doubled
 * the serving rank's poll (callgrind, mpi_bench rt1 inline: 2,900 + 2,930
 * of the server's 8,400 polling instructions per round trip).  Entering
 * later only delays the end; the argument above is unchanged. */
#define BAR_TEST_EVERY 16

static bool shutdown_step(struct fut_mpi *m)
{
    int flag = 0;
    /* Acquire: pairs with the release in start_close (mpi.c). */
    if (!atomic_load_explicit(&m->closing, memory_order_acquire) ||
        m->bar_state == 3)
        return false;
    if (m->bar_state == 0) {
        if (m->queued || m->inflight_total || m->idle_rounds < m->spin ||
            atomic_load_explicit(&m->intake, memory_order_relaxed))
            return false;
        if (fut_mpi__ok(m, MPI_Ibarrier(m->comm, &m->bar_req)))
            m->bar_state = 1;
        return true;
    }
    if (m->bar_state == 1) {
        if ((m->idle_rounds < m->spin &&
             m->idle_rounds % BAR_TEST_EVERY != BAR_TEST_EVERY - 1) ||
            !fut_mpi__ok(m, MPI_Test(&m->bar_req, &flag, MPI_STATUS_IGNORE)) ||
            !flag)
            return false;
        m->bar_state = 2;
    }
    if (m->jobs_active || m->nsends)
        return false;
    m->bar_state = 3;
    settle_done(m, fut_ok(NULL));
    return true;
}

void fut_mpi__fail_all(struct fut_mpi *m, int err)
{
    struct call *c = atomic_exchange(&m->intake, NULL);
    while (c) {
        struct call *next = c->next;
        call_reject(c, err);
        c = next;
    }
    for (int d = -1; d < m->size; d++) {
        struct queue *q = d < 0 ? &m->any : &m->queues[d];
        while (q->head)
            call_reject(queue_pop(m, q), err);
    }
    for (size_t s = 0; s < (size_t)m->size * m->bound; s++)
        if (m->slots[s]) {
            call_reject(m->slots[s], err);
            m->slots[s] = NULL;
        }
    m->inflight_total = 0;
    struct job *j = atomic_exchange(&m->done, NULL);
    while (j) {
        struct job *next = j->next;
        fut_mpi__job_free(m, j);
        j = next;
    }
    settle_done(m, fut_fail(err));
}

bool fut_mpi__round(struct fut_mpi *m)
{
    int err = atomic_load_explicit(&m->broken, memory_order_relaxed);
    if (err) {
        fut_mpi__fail_all(m, err);
        return false;
    }
    bool did = take_intake(m);
    did |= dispatch(m);
    did |= fut_mpi__receive(m);
    did |= fut_mpi__take_done(m);
    did |= test_sends(m);
    m->idle_rounds = did ? 0 : m->idle_rounds + 1;
    did |= shutdown_step(m);
    if ((err = atomic_load_explicit(&m->broken, memory_order_relaxed)))
        fut_mpi__fail_all(m, err);
    return did;
}
