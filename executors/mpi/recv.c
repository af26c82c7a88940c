/* libfut-mpi: the receiving side of the MPI thread's round (progress.c
 * describes the round; mpi_impl.h the wire format).
 *
 * Two persistent receives stay posted, one for calls (once this rank's
 * registrations are sealed) and one for replies, each into a SMALL_MSG
 * buffer of the group; one MPI_Testany polls both.  A completed head is
 * consumed, then its receive is posted again (the reply receive, when no
 * other reply is due, only at the next round, after its sends):
 *
 *   call head  -> a job (header + argument copied in; or, for a long
 *                 argument, a body receive posted into the job) -> run on
 *                 the pool or inline -> reply
 *   reply head -> i64 / error / none: settle the call at once; bytes: a
 *                 block (copied in, or its body received into place) whose
 *                 fut_bytes_t becomes the value, with no further copy
 *
 * No memory for a job or block: the head stays in its buffer (RX_FULL) and
 * is retried next round; nothing is lost and nothing else is received on
 * that tag meanwhile. */
#include "mpi_impl.h"

#include <string.h>

/* ---- replies ---------------------------------------------------------------- */

/* The reply HDR from SRC settles its call; BLOCK (owned, or NULL) holds a
 * bytes value laid out as HDR, fut_bytes_t. */
static void on_reply(struct fut_mpi *m, int src, const uint64_t *hdr,
                     uint64_t *block)
{
    uint64_t slot = hdr[0], kind = hdr[1];
    struct call *c = slot < (uint64_t)m->size * m->bound ? m->slots[slot]
                                                          : NULL;
    if (!c || slot / m->bound != (uint64_t)src) {
        fut_free(block); /* not ours: cannot happen on a private comm */
        return;
    }
    m->slots[slot] = NULL;
    m->free_slots[src][m->bound - m->inflight[src]--] =
        (unsigned)(slot % m->bound);
    m->inflight_total--;
    fut_result_t r;
    if (block)
        r = fut_ok_owned(block + 2, fut_mpi__bytes_free);
    else if (kind == R_I64)
        r = fut_ok_i64((int64_t)hdr[2]);
    else if (kind == R_ERR)
        r = fut_fail((int)(int64_t)hdr[2]);
    else
        r = kind == R_NONE ? fut_ok(NULL) : fut_fail(FUT_EINVAL);
    /* A late reply to a cancelled call: FUT_EALREADY, R disposed. */
    fut_promise_settle(c->promise, r);
    fut_mpi__call_answered(c);
}

/* ---- running calls ----------------------------------------------------------- */

static void send_reply(struct fut_mpi *m, struct job *j)
{
    if (atomic_load_explicit(&m->broken, memory_order_relaxed)) {
        fut_mpi__job_free(m, j);
        return;
    }
    struct sending s = {.job = j};
    if (j->bytes) {
        uint64_t *blk = (uint64_t *)BYTES_BLOCK(j->bytes);
        blk[0] = j->reply[0];
        blk[1] = R_BYTES; /* blk[2] is the fut_bytes_t's len */
        fut_mpi__isend(m, blk, HDR_BYTES + blk[2], j->src, TAG_REPLY, s);
    } else {
        fut_mpi__isend(m, j->reply, HDR_BYTES, j->src, TAG_REPLY, s);
    }
}

/* Encodes R, the function's result, into J's reply, through the public
 * accessors: R becomes a future (fut_ready), whose state, error and value
 * say what travels.  A value that is the fut_bytes_t fut_ok_bytes made
 * last on this thread (fut_mpi__made_bytes, cleared before the function
 * runs and when that block is freed) is bytes: J keeps the future, and
 * with it the block, until the reply is sent.  Any other pointer, and an
 * adopted or forwarded future still pending, cannot travel (FUT_EINVAL);
 * the future's release disposes of the value. */
static void encode(struct job *j, fut_result_t r)
{
    fut_t *f = fut_ready(r);
    fut_bytes_t *v = fut_value(f);
    uint64_t kind = R_ERR, word = (uint64_t)(int64_t)FUT_EINVAL;
    switch (fut_state(f)) {
    case FUT_FULFILLED:
        if (!v) {
            word = (uint64_t)fut_value_i64(f);
            kind = word ? R_I64 : R_NONE;
        } else if (v == fut_mpi__made_bytes &&
                   v->len <= MAX_MSG - HDR_BYTES) {
            j->res = f;
            j->bytes = v;
            kind = R_BYTES;
            f = NULL;
        }
        break;
    case FUT_REJECTED:
    case FUT_CANCELLED:
        word = (uint64_t)(int64_t)fut_error(f);
        break;
    default: /* pending: an adopted or forwarded future */
        break;
    }
    fut_mpi__made_bytes = NULL;
    fut_release(f);
    j->reply[1] = kind;
    j->reply[2] = word;
}

static void run_job(struct job *j)
{
    struct fut_mpi *m = j->m;
    uint64_t idx = j->msg[1] >> 32;
    uint32_t hash = (uint32_t)j->msg[1];
    j->reply[0] = j->msg[0];
    fut_mpi__made_bytes = NULL;
    /* Acquire: the table is frozen (pairs with seal()'s release). */
    if (!atomic_load_explicit(&m->sealed, memory_order_acquire) ||
        idx >= m->nfns || m->fns[idx].hash != hash)
        encode(j, fut_fail(FUT_MPI_ENOSYS));
    else
        encode(j, m->fns[idx].fn(j->msg + HDR_WORDS, j->len, m->fns[idx].ud));
}

/* A pool task: run the job, hand it back to the MPI thread. */
static fut_result_t job_task(void *arg)
{
    struct job *j = arg;
    struct fut_mpi *m = j->m;
    run_job(j);
    struct job *top = atomic_load_explicit(&m->done, memory_order_relaxed);
    do /* seq_cst: release for take_done, and Dekker with SLEEPING */
        j->next = top;
    while (!atomic_compare_exchange_weak_explicit(
        &m->done, &top, j, memory_order_seq_cst, memory_order_relaxed));
    fut_mpi__wake(m);
    return fut_ok(NULL);
}

/* J (received whole) runs inline or on the pool. */
static void on_call(struct fut_mpi *m, struct job *j)
{
    if (m->run_inline) {
        run_job(j);
        send_reply(m, j);
        return;
    }
    fut_t *f = fut_async(m->pool, job_task, j);
    /* job_task always fulfils: a rejection means the pool refused it and
     * the task never ran (FUT_ENOMEM). */
    if (fut_state(f) == FUT_REJECTED) {
        j->reply[0] = j->msg[0];
        j->reply[1] = R_ERR;
        j->reply[2] = (uint64_t)(int64_t)fut_error(f);
        send_reply(m, j);
    }
    fut_release(f);
}

bool fut_mpi__take_done(struct fut_mpi *m)
{
    /* Acquire: pairs with the push in job_task (a plain load first, as
     * in take_intake). */
    if (!atomic_load_explicit(&m->done, memory_order_relaxed))
        return false;
    struct job *j = atomic_exchange_explicit(&m->done, NULL,
                                             memory_order_acquire);
    bool did = j != NULL;
    while (j) {
        struct job *next = j->next;
        send_reply(m, j);
        j = next;
    }
    return did;
}

/* ---- heads and bodies -------------------------------------------------------- */

/* Posts the body of a long message (LEN bytes into DST) from SRC. */
static bool post_body(struct fut_mpi *m, struct body *b, void *dst, size_t len,
                      int tag)
{
    if (!fut_mpi__ok(m, MPI_Irecv(dst, (int)len, MPI_BYTE, b->src, tag,
                                  m->comm, &b->req))) {
        fut_free(b);
        return false;
    }
    b->next = m->bodies;
    m->bodies = b;
    return true;
}

/* A call head (COUNT bytes in BUF) from SRC; false: no memory yet. */
static bool take_call(struct fut_mpi *m, const uint64_t *buf, int count,
                      int src)
{
    size_t len = buf[2], total = HDR_BYTES + len;
    bool whole = total <= SMALL_MSG;
    if (total > MAX_MSG || (whole && (size_t)count != total))
        len = 0, total = HDR_BYTES, whole = true; /* not ours: no argument */
    bool spare = total <= SPARE_JOB_BYTES;
    struct job *j = spare && m->spare_job ? m->spare_job
                    : fut_alloc(sizeof *j + (spare ? SPARE_JOB_BYTES : total));
    struct body *b = whole || !j ? NULL : fut_alloc(sizeof *b);
    if (!j || (!whole && !b)) {
        fut_free(j);
        return false;
    }
    if (j == m->spare_job)
        m->spare_job = NULL;
    *j = (struct job){.m = m, .src = src, .len = len, .spare = spare};
    memcpy(j->msg, buf, whole ? total : HDR_BYTES);
    m->jobs_active++;
    if (whole) {
        on_call(m, j);
    } else {
        *b = (struct body){.src = src, .job = j};
        if (!post_body(m, b, j->msg + HDR_WORDS, len, TAG_CALL + BODY_TAG))
            fut_mpi__job_free(m, j);
    }
    return true;
}

/* A reply head (COUNT bytes in BUF) from SRC; false: no memory yet. */
static bool take_reply(struct fut_mpi *m, const uint64_t *buf, int count,
                       int src)
{
    size_t total = HDR_BYTES + buf[2];
    if (buf[1] != R_BYTES || total > MAX_MSG) {
        on_reply(m, src, buf, NULL);
        return true;
    }
    bool whole = total <= SMALL_MSG;
    uint64_t *block = fut_alloc(total);
    struct body *b = whole || !block ? NULL : fut_alloc(sizeof *b);
    if (!block || (!whole && !b)) {
        fut_free(block);
        return false;
    }
    if (whole) {
        memcpy(block, buf, (size_t)count < total ? (size_t)count : total);
        on_reply(m, src, block, block);
        return true;
    }
    memcpy(block, buf, HDR_BYTES);
    *b = (struct body){.src = src, .block = block};
    if (!post_body(m, b, block + HDR_WORDS, total - HDR_BYTES,
                   TAG_REPLY + BODY_TAG))
        fut_free(block);
    return true;
}

/* (Re)starts the persistent receive K, made on first use: restarting a
 * persistent request costs less than a new MPI_Irecv per message. */
static bool post_head(struct fut_mpi *m, int k)
{
    if (m->rx_req[k] == MPI_REQUEST_NULL &&
        !fut_mpi__ok(m, MPI_Recv_init(m->rx_buf[k], SMALL_MSG, MPI_BYTE,
                                      MPI_ANY_SOURCE, k ? TAG_REPLY : TAG_CALL,
                                      m->comm, &m->rx_req[k])))
        return false;
    m->rx_active[k] = fut_mpi__ok(m, MPI_Start(&m->rx_req[k]));
    return m->rx_active[k];
}

/* Consumes the head received on K; false if it must wait for memory. */
static bool consume(struct fut_mpi *m, int k)
{
    int count = 0;
    MPI_Get_count(&m->rx_st[k], MPI_BYTE, &count);
    if (count < HDR_BYTES)
        memset((char *)m->rx_buf[k] + (count > 0 ? count : 0), 0,
               (size_t)(HDR_BYTES - (count > 0 ? count : 0)));
    int src = m->rx_st[k].MPI_SOURCE;
    bool ok = k ? take_reply(m, m->rx_buf[k], count, src)
                : take_call(m, m->rx_buf[k], count, src);
    m->rx_full[k] = !ok;
    /* With no other reply due (a caller waiting for one call at a time),
     * the reply receive is posted again by the next round, after that
     * round sent its calls (fut_mpi__receive posts before it tests): the
     * MPI_Start (~340 instructions) then overlaps the remote rank's work
     * instead of lying between a reply and the next call.  No reply can
     * arrive meanwhile: each one answers a slot in flight. */
    if (ok && k == 1 && !m->inflight_total)
        return true;
    return ok && post_head(m, k);
}

/* Bodies that arrived: their calls run, their replies settle. */
static bool test_bodies(struct fut_mpi *m)
{
    bool did = false;
    for (struct body **pb = &m->bodies, *b; (b = *pb);) {
        int flag = 0;
        if (!fut_mpi__ok(m, MPI_Test(&b->req, &flag, MPI_STATUS_IGNORE)))
            return did;
        if (!flag) {
            pb = &b->next;
            continue;
        }
        *pb = b->next;
        if (b->job)
            on_call(m, b->job);
        else
            on_reply(m, b->src, b->block, b->block);
        fut_free(b);
        did = true;
    }
    return did;
}

bool fut_mpi__receive(struct fut_mpi *m)
{
    bool did = false;
    /* Calls are received only once this rank's table is sealed (acquire:
     * pairs with seal()'s release); replies always. */
    for (int k = 0; k < 2; k++)
        if (!m->rx_active[k] && !m->rx_full[k] &&
            (k || atomic_load_explicit(&m->sealed, memory_order_acquire)))
            post_head(m, k);
    for (int k = 0; k < 2; k++)
        if (m->rx_full[k])
            did |= consume(m, k);
    for (int round = 0; round < 64; round++) {
        int idx = MPI_UNDEFINED, flag = 0;
        MPI_Status st;
        if (!fut_mpi__ok(m, MPI_Testany(2, m->rx_req, &idx, &flag, &st)) ||
            !flag || idx == MPI_UNDEFINED)
            break;
        m->rx_st[idx] = st;
        m->rx_active[idx] = false; /* a completed persistent request */
        did = true;
        if (!consume(m, idx))
            break;
    }
    if (m->bodies)
        did |= test_bodies(m);
    return did;
}

void fut_mpi__recv_stop(struct fut_mpi *m)
{
    for (int k = 0; k < 2; k++) {
        if (m->rx_active[k]) {
            MPI_Cancel(&m->rx_req[k]);
            MPI_Wait(&m->rx_req[k], MPI_STATUS_IGNORE);
            m->rx_active[k] = false;
        }
        if (m->rx_req[k] != MPI_REQUEST_NULL)
            MPI_Request_free(&m->rx_req[k]);
    }
    while (m->bodies) { /* only when broken: calls are all answered else */
        struct body *b = m->bodies;
        m->bodies = b->next;
        MPI_Cancel(&b->req);
        MPI_Wait(&b->req, MPI_STATUS_IGNORE);
        if (b->job)
            fut_mpi__job_free(m, b->job);
        fut_free(b->block);
        fut_free(b);
    }
}
