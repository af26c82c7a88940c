/* fuzz_api.h: what the three parts of the fuzz_api target share (see
 * tests/fuzz/fuzz_api.c): the model's nodes and the program being run
 * (this file), the executable model that checks them (model.c), and the
 * operations that decode the input and call libfut (ops.c).  The driver,
 * tests/fuzz/fuzz_api.c, runs one program: the executors, the operations
 * in order, the quiescence, the checks and the tear-down. */
#ifndef FUZZ_API_H
#define FUZZ_API_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <fut.h>

#include "testexec.h"

enum { MAXN = 48, MAXT = 4, MAXOPS = 256, MAXIN = 4, MAXPOSTS = 32 };
#define HUGE_NS UINT64_MAX

/* ---- owned values (ops.c) ---------------------------------------------------
 * Every owned value a callback returns carries a magic word, checked on
 * every read and in its destructor. */

#define VAL_MAGIC 0x5a5af00dcafe1234ull
typedef struct val {
    uint64_t magic;
    int owner; /* node id that made it */
} val_t;

extern atomic_int g_vals;  /* made */
extern atomic_int g_dtors; /* destroyed */

/* ---- the model's nodes and the program ------------------------------------
 */

enum kind {
    K_PROMISE,
    K_READY,
    K_ASYNC,
    K_THEN,
    K_CATCH,
    K_FINALLY,
    K_ALL,
    K_ALLS,
    K_ANY,
    K_RACE,
    K_TIMEOUT,
    K_DELAY,
    K_MEMBER,
    K_SCOPE,
    K_FIBER
};
extern const char *const kind_name[]; /* by enum kind */

/* What a callback, a task, a ready or a settle returns. */
enum mode {
    M_I64,     /* fut_ok_i64(2 * value_i64(src) + 1) */
    M_FAIL,    /* fut_fail(-1000 - id) */
    M_OWNED,   /* fut_ok_owned(val_new(id), val_free) */
    M_FORWARD, /* fut_forward(src) (tasks: NULL -> FUT_EINVAL) */
    M_ADOPT,   /* fut_adopt(fut_retain(target)) */
    M_BORROW,  /* fut_ok(&g_static) */
    M_COUNT
};
extern int g_static; /* M_BORROW's value */

typedef struct inst { /* one executor instance */
    int kind;         /* 0 inline, 1 testexec, 2 pool */
    fut_executor_t *ex;
    testexec_t *tx;
    bool destroyed;
    bool deterministic; /* runs only on this thread when told to */
} inst_t;

typedef struct outcome {
    bool known;
    fut_state_t state;
    int err;
    void *ptr;
    int64_t i64;
} outcome_t;

typedef struct node {
    int id;
    enum kind kind;
    fut_t *f;           /* the program's reference; NULL once released */
    const fut_t *ident; /* f as made; kept after release: identity */
    fut_promise_t *p;   /* the promise handle until consumed */
    inst_t *in_ex;      /* executor of a task / callback / delay */
    enum mode mode;
    int target;        /* adopt/forward source node, -1 none */
    fut_t *target_ref; /* reference kept for the callback's adopt */
    int in[MAXIN];
    int nin;
    uint64_t ns; /* timeout / delay */
    /* facts */
    atomic_int calls;       /* callback / task runs */
    _Atomic(void *) ret;    /* owned value the callback returned */
    bool cancelled;         /* our fut_cancel returned 0 */
    bool cancel_before_run; /* ... while queued on a deterministic executor */
    bool ext_cancel;        /* a timeout, a propagated cancel may cancel it */
    bool must_cancel;       /* a released promise whose consumer we cancelled */
    bool must_not_run;      /* a released queued task so cancelled */
    uint64_t members;       /* K_SCOPE: its member nodes (bit per id) */
    bool settled_by_op;     /* promise settle returned 0 */
    enum mode settle_mode;
    int settle_target;
    bool dropped;
    atomic_int thread_rc; /* settle from a thread: its return code */
    fut_t *await_ref;     /* fiber: reference on the node it awaits */
    atomic_int await_rc;  /* fiber: what its await returned */
    bool by_thread;
    outcome_t snap; /* outcome when released */
} node_t;

typedef struct prog {
    const uint8_t *data;
    size_t size, pos;
    node_t n[MAXN];
    int nn;
    inst_t insts[16];
    int ninst;
    inst_t *slot[4]; /* 0 inline, 1-2 testexecs, 3 pool or NULL */
    pthread_t th[MAXT];
    int nth;
    int disposed_min; /* values the library must have destroyed */
    struct post {     /* fut_post calls: no future, so no node */
        inst_t *in_ex;
        int rc;            /* fut_post's return */
        atomic_int calls;  /* the function's runs */
        atomic_bool wrong; /* it ran with another current executor */
    } posts[MAXPOSTS];
    int npost;
    fut_scope_t *scope; /* the open scope, if any */
    uint64_t scope_members;
    bool scope_cancelled, scope_ff;
} prog_t;

extern prog_t *G; /* for callbacks: read-only while threads run */

/* ---- the trace (model.c) ----------------------------------------------------
 * FUT_FUZZ_TRACE=1: each decoded operation, each fact the model records
 * and each node's check go to stderr, one line each ("fuzz: op ..." lines
 * depend on the input alone; "fuzz:   ..." lines on what happened). */
extern bool g_trace;
#define TRACE(...)                                                             \
    do {                                                                       \
        if (g_trace)                                                           \
            trace(__VA_ARGS__);                                                \
    } while (0)
void trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- the model (model.c) ----------------------------------------------------
 */

/* Prints the violated rule (and node N, if any) and aborts. */
_Noreturn void fail(const node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* F's outcome, one consistent snapshot, checked for what every outcome must
 * satisfy. */
outcome_t observe(const node_t *n, fut_t *f);
/* Node ID's outcome: observed while held, else its snapshot at release. */
outcome_t outcome_of(prog_t *p, int id);
bool same(outcome_t a, outcome_t b);
outcome_t mk(fut_state_t s, int err, void *ptr, int64_t v);
bool is_cancel(outcome_t o, int err);
outcome_t expect_result(prog_t *p, node_t *n, enum mode m, int target,
                        void *owned, outcome_t src, bool has_src);
/* Node N's settled outcome is one DESIGN.md allows. */
void check_node(prog_t *p, node_t *n);
/* True if nodes A and B are one future (ready(adopt(X)) is X itself). */
bool aliases(prog_t *p, int a, int b);
/* A cancel reaching node ID may reach everything it waits on. */
void may_cancel(prog_t *p, int id);
/* We cancelled N: what it alone consumed must be cancelled with it. */
void must_reach(prog_t *p, node_t *n);
/* A promise settle returned RC with the future then in state ST. */
void settle_check(node_t *n, int rc, enum mode m, fut_state_t st);
/* No member settles after its scope's close future did. */
void probe_scopes(prog_t *p);
/* After the tear-down: every post ran as its executor's fate says. */
void check_posts(prog_t *p);
/* After the executors are gone: each finally's clean-up ran once. */
void check_finally_ran(prog_t *p);

/* ---- the operations (ops.c) -------------------------------------------------
 * Each decodes its argument bytes with next() (a missing byte reads as 0),
 * makes at most one node, and records what it observed. */

uint8_t next(prog_t *p);
inst_t *new_testexec(prog_t *p);
/* The live test executor slot 1 + B % 2 names, or NULL. */
testexec_t *pick_tx(prog_t *p, uint8_t b, const char *what);
void op_promise(prog_t *p);
void op_ready(prog_t *p);
void op_async(prog_t *p);
void op_fiber(prog_t *p);
void op_chain(prog_t *p, enum kind k);
void op_combine(prog_t *p);
void op_timeout(prog_t *p);
void op_delay(prog_t *p);
void op_scope(prog_t *p);
void op_scope_close(prog_t *p);
void op_settle(prog_t *p);
void op_settle_thread(prog_t *p);
void op_drop(prog_t *p);
void op_cancel(prog_t *p);
void op_release(prog_t *p);
void op_destroy(prog_t *p);
void op_post(prog_t *p);
void op_wait(prog_t *p);

#endif
