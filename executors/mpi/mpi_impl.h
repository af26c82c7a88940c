/* libfut-mpi's shared definitions: the group, a call, a job, the wire
 * format.  mpi.c holds the API; progress.c the MPI thread's round. */
#ifndef FUT_MPI_IMPL_H
#define FUT_MPI_IMPL_H

#include <fut/mpi.h>

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>

/* ---- wire format -----------------------------------------------------------
 * One MPI message per call and one per reply, on the group's own duplicate
 * communicator, each a 24-byte header of three uint64 words, then bytes:
 *
 *   TAG_CALL   [slot] [fn index << 32 | name hash] [len]   argument bytes
 *   TAG_REPLY  [slot] [kind]                       [word]  value bytes
 *
 * A message of at most SMALL_MSG bytes travels whole, into a receive the
 * MPI thread keeps posted per tag (polling a posted receive is cheap; a
 * probe costs a request each time).  A longer one sends its header alone
 * under the same tag, then the rest under tag + BODY_TAG, which the
 * receiver posts straight into the final block once it read the header
 * (bodies from one sender match their headers in order: MPI does not let
 * messages with the same source and tag overtake each other, and calls
 * and replies have their own body tags).
 *
 * SLOT is the caller's in-flight slot (dest * max_in_flight + i), echoed
 * back.  A reply's WORD is the int64 (R_I64), the error (R_ERR) or the byte
 * count (R_BYTES).  A byte value travels in a block laid out as
 * [slot][kind][fut_bytes_t: len, data...]: a bytes value is always such a
 * block (fut_ok_bytes makes it, the receiver receives into it), so neither
 * side copies the bytes again; bytes_free frees the whole block. */
enum { TAG_CALL = 1, TAG_REPLY = 2, BODY_TAG = 2 };
enum { R_NONE = 0, R_I64 = 1, R_ERR = 2, R_BYTES = 3 };
#define SMALL_MSG 4096
#define HDR_BYTES 24
#define HDR_WORDS 3
#define MAX_MSG ((size_t)INT_MAX)

/* The block holding a fut_bytes_t B: two header words before it. */
#define BYTES_BLOCK(b) ((unsigned char *)(b) - 2 * sizeof(uint64_t))
void fut_mpi__bytes_free(void *b);
/* The fut_bytes_t fut_ok_bytes made last on this thread (NULL once freed
 * here): how a serving rank tells a bytes result from any other owned
 * pointer through the public accessors (recv.c, encode). */
extern _Thread_local fut_bytes_t *fut_mpi__made_bytes;

/* One outgoing call, from fut_mpi_call to its reply (or its cancel while
 * still queued), in one block with its message.  Owned by the MPI thread
 * once it took it from the intake stack; freed once answered (or
 * rejected) and no longer being sent, whichever comes last: a reply can be
 * seen before the local completion of its call's send. */
struct call {
    struct call *next;       /* intake stack, then a destination queue */
    fut_promise_t *promise;  /* settled by the reply; NULL once answered */
    fut_t *fut;              /* our reference: a cancel is seen here */
    int dest;                /* a rank, or FUT_MPI_ANY until dispatched */
    bool sending;            /* MSG is being sent */
    size_t msg_len;
    uint64_t msg[];          /* header + argument */
};

/* One incoming call, from its receipt to its reply's send completing. */
struct job {
    struct job *next; /* the done stack (pool -> MPI thread) */
    struct fut_mpi *m;
    int src;
    uint64_t reply[HDR_WORDS];  /* the reply header, unless bytes */
    fut_t *res;                 /* the function's result, if bytes */
    fut_bytes_t *bytes;         /* RES's value (its block is sent) */
    size_t len;                 /* argument bytes */
    bool spare;                 /* a SPARE_JOB_BYTES block (reusable) */
    uint64_t msg[];             /* header + argument, as received */
};
/* A call of at most SPARE_JOB_BYTES (header + argument) gets a block of that
 * size, and the MPI thread keeps one such block for the next call instead
 * of freeing it (m->spare_job): a round trip at a time then allocates no
 * job. */
#define SPARE_JOB_BYTES 256

/* A send in progress: its request and what to free when it completes. */
struct sending {
    void *call_msg;    /* a long message's header copy (fut_free) */
    struct call *call; /* a call's message: the call (fut_mpi__call_sent) */
    struct job *job;   /* a reply: the job (and its bytes block) */
};

struct fn_entry {
    char *name;
    uint32_t hash;
    fut_mpi_fn fn;
    void *ud;
};

/* FIFO of calls waiting for a free slot (MPI thread only). */
struct queue {
    struct call *head, *tail;
};

struct fut_mpi {
    /* Set at create, read-only afterwards. */
    MPI_Comm comm;
    int rank, size, level;
    unsigned bound;          /* max_in_flight */
    unsigned spin;
    uint64_t idle_ns;
    bool run_inline;
    bool threaded;           /* a progress thread owns MPI */
    pthread_t main_thread;   /* FUNNELED: the only thread that may drive */
    fut_executor_t *pool;    /* NULL with run_inline */

    /* Registration, frozen once SEALED is set (release; the MPI thread
     * and callers read the table after an acquire load of it). */
    struct fn_entry *fns;
    size_t nfns, fncap;
    atomic_bool sealed;

    /* Lock-free stacks filled by any thread, emptied by the MPI thread
     * (exchange). Pushes pair with the exchange in take_intake/take_done. */
    _Atomic(struct call *) intake;
    _Atomic(struct job *) done;
    /* Closing: calls refused from now on (release by start_close, acquire
     * by fut_mpi_call). */
    atomic_bool closing;
    atomic_int broken;       /* 0, or FUT_MPI_ECOMM */

    /* Who drives MPI.  MPI_LOCK is held around every round of MPI calls.
     * WAITER_DRIVING: a thread in fut_mpi_wait took MPI over; the progress
     * thread stays asleep until it is 0 again. */
    pthread_mutex_t mpi_lock;
    atomic_bool waiter_driving;
    /* Sleeping and waking the MPI thread: SLEEPING is set (seq_cst) before
     * the last look at the stacks; a pusher reads it (seq_cst) after its
     * push and signals COND under WAKE_LOCK.  Dekker pair: push/sleeping. */
    pthread_mutex_t wake_lock;
    pthread_cond_t cond;
    atomic_bool sleeping;
    atomic_bool parked;      /* asleep while a waiter drives (not SLEEPING) */
    atomic_bool handback_busy; /* a waiter handed back work outstanding */
    _Atomic uint64_t waiter_epoch; /* +1 at each waiter's hand-back */
    atomic_bool stop;        /* the progress thread ends */
    pthread_t thread;
    bool thread_started;

    /* ---- the MPI thread's state (under MPI_LOCK) ---- */
    struct queue *queues;    /* per destination, [size] */
    struct queue any;        /* FUT_MPI_ANY calls */
    size_t queued;           /* calls in all queues */
    struct call **slots;     /* [size * bound] calls in flight */
    unsigned *inflight;      /* [size] slots used per destination */
    unsigned **free_slots;   /* [size][bound] stack of free slot indices */
    size_t inflight_total;
    int next_any;            /* round-robin cursor for ties */
    size_t jobs_active;      /* incoming calls not yet replied and sent */
    struct job *spare_job;   /* a free SPARE_JOB_BYTES job block, or NULL */
    MPI_Request *reqs;       /* sends in progress */
    struct sending *sends;
    size_t nsends, sendcap;
    int *done_idx;           /* scratch for MPI_Testsome, [sendcap] */
    /* The posted receives, [0] calls (posted once sealed), [1] replies;
     * MPI_REQUEST_NULL until made.  RX_FULL[k]: received, but not
     * yet consumed for want of memory (retried next round). */
    MPI_Request rx_req[2];   /* persistent, made on first use */
    bool rx_active[2];       /* started and not yet completed */
    bool rx_full[2];
    MPI_Status rx_st[2];
    uint64_t rx_buf[2][SMALL_MSG / 8];
    struct body *bodies;     /* long messages' bodies being received */
    int bar_state;           /* 0 not entered, 1 entered, 2 passed, 3 over */
    unsigned idle_rounds;    /* rounds in a row that did nothing */
    MPI_Request bar_req;
    fut_promise_t *done_promise; /* settled once the group shut down */
    fut_t *done_fut;
};

/* The body of a long message being received into its final block. */
struct body {
    struct body *next;
    MPI_Request req;
    int src;
    struct job *job;    /* a call's job, or NULL */
    uint64_t *block;    /* a reply's bytes block */
};

/* progress.c (the round, sends, calls, shutdown) */
bool fut_mpi__round(struct fut_mpi *m); /* one round; true if it did work */
void fut_mpi__fail_all(struct fut_mpi *m, int err);
void fut_mpi__wake(struct fut_mpi *m);   /* wakes the MPI thread if asleep */
uint32_t fut_mpi__hash(const char *s);
bool fut_mpi__ok(struct fut_mpi *m, int rc); /* false: MPI failed, broken */
void fut_mpi__isend(struct fut_mpi *m, void *buf, size_t len, int dest,
                    int tag, struct sending s);
void fut_mpi__job_free(struct fut_mpi *m, struct job *j);
void fut_mpi__call_free(struct call *c);
/* C was answered or rejected (its promise consumed): frees C unless its
 * message is still being sent; fut_mpi__call_sent then frees it. */
void fut_mpi__call_answered(struct call *c);
void fut_mpi__call_sent(struct call *c);
/* recv.c (receiving, running incoming calls, replying) */
bool fut_mpi__receive(struct fut_mpi *m);
bool fut_mpi__take_done(struct fut_mpi *m);
void fut_mpi__recv_stop(struct fut_mpi *m); /* cancels posted receives */
/* The group whose MPI round this thread is running (MPI thread), or NULL. */
extern _Thread_local struct fut_mpi *fut_mpi__driving;

#endif
