/* fuzz_api: libFuzzer target that reads its input as a program of libfut
 * API calls and checks every outcome against a small executable model of
 * DESIGN.md's semantics.
 *
 * THE PROGRAM
 *
 * Each input byte string is decoded one operation at a time (an opcode byte
 * and its argument bytes; a missing byte reads as 0).  Operations make
 * futures (promise, ready, async, then/catch/finally, all/all_settled/any/
 * race, timeout, delay, fiber), settle promises (on this thread or a new
 * one), drop promises, cancel, release, post functions (fut_post: each
 * runs once on its executor, or never if its test executor was destroyed
 * first), run the deterministic test executors
 * (tests/testexec.c) one task or all, fire their timers, destroy them, and
 * wait.  Executors: inline, two testexecs (deterministic, with timers, run
 * only when the program says so) and, once executors/pool/pool.c exists, a
 * 2-worker pool (found through a weak reference to fut_pool_create).
 *
 * THE MODEL
 *
 * Every future the program makes is a model node: its kind, its inputs
 * (earlier nodes only, so no cycle can be built), the callback mode, and
 * the facts the program observed (fut_cancel returned 0, the promise was
 * settled with such a result or dropped, the executor was destroyed, how
 * many times the callback ran and what it returned).  Executors are
 * concurrent and timers asynchronous, so the model does not predict the
 * order in which things happen; it checks, node by node, that each settled
 * outcome is one DESIGN.md allows given the outcomes of its inputs:
 *
 *   promise    the settle's result (0 returned), FUT_EBROKEN if dropped,
 *              FUT_ECANCELED if cancelled (then a settle gets FUT_EALREADY)
 *   ready      its result; adopt/forward: exactly the source's outcome
 *   async      the task's result, run exactly once; FUT_ESHUTDOWN if its
 *              executor went away first (then it never ran)
 *   then       source fulfilled: the callback's result, callback once;
 *              otherwise the source's outcome, callback never (catch:
 *              the mirror image; finally: always the callback)
 *   all        every input fulfilled: fulfilled; else some failed input's
 *   all_settled fulfilled
 *   any        some input fulfilled: a fulfilled input's; else some input's
 *   race       some input's outcome (value included, borrowed)
 *   timeout    the input's outcome, or FUT_ETIMEDOUT when it may fire
 *   fiber      awaits an earlier node (suspending), yields, then returns
 *              like an async task whose source is that node; the await
 *              returns 0 only once the node settled, FUT_ESHUTDOWN when
 *              the executor was destroyed (the fiber then fails with it),
 *              FUT_ECANCELED only when the fiber was cancelled; a fiber
 *              that never started is FUT_ESHUTDOWN (executor destroyed)
 *   delay      fulfilled once fired; FUT_ESHUTDOWN if its executor went
 *   cancelled  (fut_cancel returned 0): FUT_CANCELLED/FUT_ECANCELED, and a
 *              callback still queued on a deterministic executor never runs
 *              (a finally's callback still runs, once its source settled)
 *   propagation a cancel (ours, a firing timeout, a combinator deciding, a
 *              scope) may cancel every future its node waits on,
 *              transitively (ext_cancel); and it must: a released promise
 *              whose only consumer we cancelled refuses a later settle
 *              (must_cancel), a released queued task so consumed never
 *              runs (must_not_run)
 *   member     (scope): spawned: its task's result, run at most once, or
 *              cancelled if its scope was; added: like its input
 *   scope      (close): every member settled first (probed while running);
 *              fulfilled if all were, else like a member that was not (or
 *              FUT_ECANCELED once the close future was cancelled)
 *
 * plus, for every program: every future settles once the promises are
 * dropped and the executors drained (no lost wake-up, no hang); a callback
 * runs at most once; every owned value's destructor runs exactly once by
 * the end (value blocks carry a magic word, checked on every read and in
 * the destructor; ASan catches use after free); fut_cancel / settle return
 * codes agree with the state they leave.
 *
 * A violated rule prints the node and aborts, which libFuzzer reports as a
 * crash with the input saved.  Built with -DFUZZ_STANDALONE it is a plain
 * program that runs the files named on its command line (for replaying a
 * finding without libFuzzer). */
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <fut.h>

#include "testexec.h"

#ifndef FUZZ_KNOWN_CLAIM_WINDOW
#define FUZZ_KNOWN_CLAIM_WINDOW 0 /* fixed: lib/future.c await_close */
#endif

/* The pool, if it is linked in. */
#pragma weak fut_pool_create

enum { MAXN = 48, MAXT = 4, MAXOPS = 256, MAXIN = 4, MAXPOSTS = 32 };
#define HUGE_NS UINT64_MAX

/* ---- owned values ---------------------------------------------------------
 */

#define VAL_MAGIC 0x5a5af00dcafe1234ull
typedef struct val {
    uint64_t magic;
    int owner; /* node id that made it */
} val_t;

static atomic_int g_vals;  /* made */
static atomic_int g_dtors; /* destroyed */

static void *val_new(int owner)
{
    val_t *v = malloc(sizeof *v);
    if (!v)
        abort();
    v->magic = VAL_MAGIC;
    v->owner = owner;
    atomic_fetch_add(&g_vals, 1);
    return v;
}

static void val_free(void *p)
{
    val_t *v = p;
    if (v->magic != VAL_MAGIC) {
        fprintf(stderr, "fuzz: destructor on a bad or freed value %p\n", p);
        abort();
    }
    v->magic = 0;
    atomic_fetch_add(&g_dtors, 1);
    free(v);
}

/* ---- the model ------------------------------------------------------------
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
static const char *kind_name[] = {
    "promise", "ready",       "async", "then", "catch",   "finally",
    "all",     "all_settled", "any",   "race", "timeout", "delay",
    "member",  "scope",       "fiber"};

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
static int g_static;

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
    struct post {       /* fut_post calls: no future, so no node */
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

static prog_t *G; /* for callbacks: read-only while threads run */

/* FUT_FUZZ_TRACE=1: each decoded operation, each fact the model records
 * and each node's check go to stderr, one line each ("fuzz: op ..." lines
 * depend on the input alone; "fuzz:   ..." lines on what happened). */
static bool g_trace;
#define TRACE(...)                                                             \
    do {                                                                       \
        if (g_trace)                                                           \
            trace(__VA_ARGS__);                                                \
    } while (0)

static void trace(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

static void fail(const node_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz: model violation");
    if (n)
        fprintf(stderr, " at node %d (%s, mode %d, ex %d%s%s)", n->id,
                kind_name[n->kind], n->mode, n->in_ex ? n->in_ex->kind : -1,
                n->cancelled ? ", cancelled" : "",
                n->in_ex && n->in_ex->destroyed ? ", ex destroyed" : "");
    fprintf(stderr, ": ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}

static uint8_t next(prog_t *p)
{
    return p->pos < p->size ? p->data[p->pos++] : 0;
}

static outcome_t observe(const node_t *n, fut_t *f)
{
    outcome_t o = {.known = true};
    /* Another thread may settle F between the reads: a state read before
     * and after the others makes them one consistent snapshot. */
    do {
        o.state = fut_state(f);
        o.err = fut_error(f);
        o.ptr = fut_value(f);
        o.i64 = fut_value_i64(f);
    } while (fut_state(f) != o.state);
    if (o.ptr && o.ptr != &g_static && ((val_t *)o.ptr)->magic != VAL_MAGIC)
        fail(n, "value %p read after its destructor", o.ptr);
    if (o.state == FUT_PENDING && o.err != 0)
        fail(n, "pending with error %d", o.err);
    if (o.state == FUT_FULFILLED && o.err != 0)
        fail(n, "fulfilled with error %d", o.err);
    if ((o.state == FUT_REJECTED || o.state == FUT_CANCELLED) &&
        (o.err >= 0 || o.ptr || o.i64))
        fail(n, "failed with err %d, value %p/%lld", o.err, o.ptr,
             (long long)o.i64);
    if (o.state == FUT_CANCELLED && o.err != FUT_ECANCELED &&
        o.err != FUT_ETIMEDOUT)
        fail(n, "cancelled with err %d", o.err);
    return o;
}

static outcome_t outcome_of(prog_t *p, int id)
{
    node_t *n = &p->n[id];
    if (n->f)
        return observe(n, n->f);
    return n->snap;
}

static bool same(outcome_t a, outcome_t b)
{
    return a.state == b.state && a.err == b.err && a.ptr == b.ptr &&
           a.i64 == b.i64;
}

static outcome_t mk(fut_state_t s, int err, void *ptr, int64_t v)
{
    outcome_t o = {.known = true, .state = s, .err = err, .ptr = ptr, .i64 = v};
    return o;
}

/* The outcome result mode M of node N gives, from source outcome SRC (of a
 * callback; unknown for tasks, readies and settles). */
static outcome_t expect_result(prog_t *p, node_t *n, enum mode m, int target,
                               void *owned, outcome_t src, bool has_src)
{
    switch (m) {
    case M_I64:
        return mk(FUT_FULFILLED, 0, NULL, 2 * (has_src ? src.i64 : 0) + 1);
    case M_FAIL:
        return mk(FUT_REJECTED, -1000 - n->id, NULL, 0);
    case M_OWNED:
        return mk(FUT_FULFILLED, 0, owned, 0);
    case M_FORWARD:
        if (!has_src)
            return mk(FUT_REJECTED, FUT_EINVAL, NULL, 0);
        return src;
    case M_ADOPT:
        return outcome_of(p, target);
    case M_BORROW:
    default:
        return mk(FUT_FULFILLED, 0, &g_static, 0);
    }
}

static fut_result_t make_result(node_t *n, enum mode m, fut_t *src,
                                fut_t *target)
{
    switch (m) {
    case M_I64:
        return fut_ok_i64(2 * fut_value_i64(src) + 1);
    case M_FAIL:
        return fut_fail(-1000 - n->id);
    case M_OWNED: {
        void *v = val_new(n->id);
        atomic_store(&n->ret, v);
        return fut_ok_owned(v, val_free);
    }
    case M_FORWARD:
        return fut_forward(src);
    case M_ADOPT:
        return fut_adopt(fut_retain(target));
    case M_BORROW:
    default:
        return fut_ok(&g_static);
    }
}

static fut_result_t cb(void *arg, fut_t *src)
{
    node_t *n = arg;
    if (atomic_fetch_add(&n->calls, 1) != 0)
        fail(n, "callback ran twice");
    if (fut_state(src) == FUT_PENDING)
        fail(n, "callback got a pending source");
    return make_result(n, n->mode, src, n->target_ref);
}

static fut_result_t task(void *arg)
{
    node_t *n = arg;
    if (atomic_fetch_add(&n->calls, 1) != 0)
        fail(n, "task ran twice");
    return make_result(n, n->mode, NULL, n->target_ref);
}

/* A fiber: await the input (suspending), yield, answer like a task whose
 * source is the input. */
static fut_result_t fiber_body(void *arg)
{
    node_t *n = arg;
    if (atomic_fetch_add(&n->calls, 1) != 0)
        fail(n, "fiber ran twice");
    if (!fut_in_fiber())
        fail(n, "fut_in_fiber() is false inside a fiber");
    int rc = fut_wait(n->await_ref, -1); /* not fut_await: its own error */
    atomic_store(&n->await_rc, rc);
    if (rc == 0 && fut_state(n->await_ref) == FUT_PENDING)
        fail(n, "fiber's await returned 0 on a pending future");
    if (rc)
        return fut_fail(rc);
    fut_yield();
    return make_result(n, n->mode, n->await_ref, n->target_ref);
}

static bool is_cancel(outcome_t o, int err);

static void check_fiber(prog_t *p, node_t *n, outcome_t o)
{
    int calls = atomic_load(&n->calls), rc = atomic_load(&n->await_rc);
    if (calls > 1)
        fail(n, "ran %d times", calls);
    if (n->cancel_before_run && calls)
        fail(n, "cancelled before its first run, yet it ran");
    if (is_cancel(o, FUT_ECANCELED) && (n->cancelled || n->ext_cancel)) {
        if (calls && n->mode == M_OWNED && atomic_load(&n->ret))
            p->disposed_min++; /* the late result was disposed */
        return;
    }
    if (n->cancelled)
        fail(n, "fut_cancel returned 0 but outcome is %d/%d", o.state, o.err);
    if (rc == FUT_ECANCELED)
        fail(n, "await returned FUT_ECANCELED in a fiber never cancelled");
    if (!calls || rc == FUT_ESHUTDOWN) {
        if (!n->in_ex->destroyed ||
            !same(o, mk(FUT_REJECTED, FUT_ESHUTDOWN, NULL, 0)))
            fail(n, "fiber %s; outcome %d/%d",
                 calls ? "got FUT_ESHUTDOWN" : "never ran", o.state, o.err);
        return;
    }
    if (rc != 0)
        fail(n, "fiber's await returned %d", rc);
    outcome_t src = outcome_of(p, n->in[0]);
    if (!src.known || (n->mode == M_ADOPT && !outcome_of(p, n->target).known))
        return;
    outcome_t e =
        expect_result(p, n, n->mode, n->target, atomic_load(&n->ret), src, true);
    if (!same(o, e))
        fail(n, "outcome %d/%d/%p/%lld, model %d/%d/%p/%lld", o.state, o.err,
             o.ptr, (long long)o.i64, e.state, e.err, e.ptr, (long long)e.i64);
}

/* ---- checking one node ----------------------------------------------------
 */

static bool is_cancel(outcome_t o, int err)
{
    return o.state == FUT_CANCELLED && o.err == err;
}

static void check_callback_node(prog_t *p, node_t *n, outcome_t o)
{
    int calls = atomic_load(&n->calls);
    if (calls > 1)
        fail(n, "ran %d times", calls);
    bool has_src = n->kind != K_ASYNC && n->kind != K_MEMBER;
    outcome_t src = has_src ? outcome_of(p, n->in[0]) : mk(0, 0, NULL, 0);
    if (has_src && !src.known)
        return;
    if (n->cancel_before_run && calls && n->kind != K_FINALLY)
        fail(n, "cancelled while queued, yet its callback ran");
    if (n->must_not_run && calls)
        fail(n, "its only consumer was cancelled, yet the task ran");

    if (is_cancel(o, FUT_ECANCELED) && (n->cancelled || n->ext_cancel)) {
        if (calls && n->mode == M_OWNED)
            p->disposed_min++; /* the late result was disposed */
        return;
    }
    if (n->cancelled)
        fail(n, "fut_cancel returned 0 but outcome is %d/%d", o.state, o.err);
    bool wants = true;
    if (n->kind == K_THEN)
        wants = src.state == FUT_FULFILLED;
    else if (n->kind == K_CATCH)
        wants = src.state != FUT_FULFILLED;
    if (!wants) {
        if (calls)
            fail(n, "callback ran for source state %d", src.state);
        if (!same(o, src))
            fail(n, "pass-through %d/%d differs from source %d/%d", o.state,
                 o.err, src.state, src.err);
        return;
    }
    if (!calls) {
        if (o.state == FUT_REJECTED && o.err == FUT_ESHUTDOWN &&
            n->in_ex->destroyed)
            return;
        fail(n, "callback never ran; outcome %d/%d", o.state, o.err);
    }
    if (n->mode == M_ADOPT && !outcome_of(p, n->target).known)
        return;
    outcome_t e = expect_result(p, n, n->mode, n->target, atomic_load(&n->ret),
                                src, has_src);
    if (!same(o, e))
        fail(n, "outcome %d/%d/%p/%lld, model %d/%d/%p/%lld", o.state, o.err,
             o.ptr, (long long)o.i64, e.state, e.err, e.ptr, (long long)e.i64);
}

static void check_combinator(prog_t *p, node_t *n, outcome_t o)
{
    outcome_t in[MAXIN];
    bool any_ok = false, all_ok = true;
    for (int i = 0; i < n->nin; i++) {
        in[i] = outcome_of(p, n->in[i]);
        if (!in[i].known)
            return;
        any_ok |= in[i].state == FUT_FULFILLED;
        all_ok &= in[i].state == FUT_FULFILLED;
    }
    if (is_cancel(o, FUT_ECANCELED) && (n->cancelled || n->ext_cancel))
        return;
    if (n->cancelled)
        fail(n, "fut_cancel returned 0 but outcome is %d/%d", o.state, o.err);
    if (n->nin == 0) {
        bool ok = n->kind == K_ALL || n->kind == K_ALLS
                      ? same(o, mk(FUT_FULFILLED, 0, NULL, 0))
                      : same(o, mk(FUT_REJECTED, FUT_EINVAL, NULL, 0));
        if (!ok)
            fail(n, "empty combinator gave %d/%d", o.state, o.err);
        return;
    }
    bool ok = false;
    switch (n->kind) {
    case K_ALL:
        if (all_ok)
            ok = same(o, mk(FUT_FULFILLED, 0, NULL, 0));
        else
            for (int i = 0; i < n->nin; i++)
                ok |= in[i].state != FUT_FULFILLED &&
                      same(o, mk(in[i].state, in[i].err, NULL, 0));
        break;
    case K_ALLS:
        ok = same(o, mk(FUT_FULFILLED, 0, NULL, 0));
        break;
    case K_ANY:
        for (int i = 0; i < n->nin; i++)
            ok |= (!any_ok || in[i].state == FUT_FULFILLED) && same(o, in[i]);
        break;
    default: /* race */
        for (int i = 0; i < n->nin; i++)
            ok |= same(o, in[i]);
        break;
    }
    if (!ok)
        fail(n, "outcome %d/%d/%p/%lld not allowed by its inputs", o.state,
             o.err, o.ptr, (long long)o.i64);
    /* fut_input answers the inputs, borrowed. */
    if (n->f) {
        for (int i = 0; i < n->nin; i++)
            if (!fut_input(n->f, (size_t)i))
                fail(n, "fut_input(%d) is NULL", i);
        if (fut_input(n->f, (size_t)n->nin))
            fail(n, "fut_input past the end");
    }
}

static void check_scope(prog_t *p, node_t *n, outcome_t o);

static void check_node(prog_t *p, node_t *n)
{
    outcome_t o = outcome_of(p, n->id);
    TRACE("  check node %d (%s): %s %d/%d/%p/%lld; calls %d%s%s%s%s%s%s",
          n->id, kind_name[n->kind], o.known ? "outcome" : "unknown", o.state,
          o.err, o.ptr, (long long)o.i64, atomic_load(&n->calls),
          n->cancelled ? ", cancelled" : "",
          n->ext_cancel ? ", ext_cancel" : "",
          n->settled_by_op ? ", settled" : "", n->dropped ? ", dropped" : "",
          n->by_thread ? ", by thread" : "",
          n->in_ex && n->in_ex->destroyed ? ", ex destroyed" : "");
    if (!o.known || o.state == FUT_PENDING)
        return;
    switch (n->kind) {
    case K_PROMISE: {
        if (is_cancel(o, FUT_ECANCELED) && (n->cancelled || n->ext_cancel))
            return;
        if (n->cancelled)
            fail(n, "cancelled promise settled %d/%d", o.state, o.err);
        if (n->settled_by_op) {
            if (n->settle_mode == M_ADOPT &&
                !outcome_of(p, n->settle_target).known)
                return;
            outcome_t e = expect_result(p, n, n->settle_mode, n->settle_target,
                                        atomic_load(&n->ret), o, false);
            if (!same(o, e))
                fail(n, "settled %d/%d/%p/%lld, model %d/%d/%p/%lld", o.state,
                     o.err, o.ptr, (long long)o.i64, e.state, e.err, e.ptr,
                     (long long)e.i64);
        } else if (n->dropped) {
            if (!same(o, mk(FUT_REJECTED, FUT_EBROKEN, NULL, 0)))
                fail(n, "dropped promise gave %d/%d", o.state, o.err);
        } else if (!n->by_thread) {
            fail(n, "unsettled promise is %d/%d", o.state, o.err);
        }
        return;
    }
    case K_READY: {
        if (is_cancel(o, FUT_ECANCELED) && (n->cancelled || n->ext_cancel))
            return;
        if (n->mode == M_ADOPT || n->mode == M_FORWARD) {
            if (n->cancelled)
                return; /* ready(adopt(X)) is X itself: cancel hit X */
            outcome_t e = outcome_of(p, n->target);
            if (e.known && !same(o, e))
                fail(n, "ready(adopt/forward) %d/%d differs from source",
                     o.state, o.err);
            return;
        }
        if (n->cancelled)
            fail(n, "cancelled a settled ready future");
        outcome_t e =
            expect_result(p, n, n->mode, -1, atomic_load(&n->ret), o, false);
        if (!same(o, e))
            fail(n, "ready gave %d/%d", o.state, o.err);
        return;
    }
    case K_ASYNC:
    case K_THEN:
    case K_CATCH:
    case K_FINALLY:
        check_callback_node(p, n, o);
        return;
    case K_ALL:
    case K_ALLS:
    case K_ANY:
    case K_RACE:
        check_combinator(p, n, o);
        return;
    case K_FIBER:
        check_fiber(p, n, o);
        return;
    case K_TIMEOUT: {
        outcome_t in = outcome_of(p, n->in[0]);
        if (is_cancel(o, FUT_ECANCELED) && (n->cancelled || n->ext_cancel))
            return;
        if (n->cancelled)
            fail(n, "cancelled timeout gave %d/%d", o.state, o.err);
        if (n->ns != HUGE_NS && is_cancel(o, FUT_ETIMEDOUT))
            return;
        if (in.known && !same(o, in))
            fail(n, "timeout %d/%d differs from its input %d/%d", o.state,
                 o.err, in.state, in.err);
        return;
    }
    case K_MEMBER:
        if (n->nin == 0) { /* spawned: like an async task */
            check_callback_node(p, n, o);
            return;
        }
        if (is_cancel(o, FUT_ECANCELED) && (n->cancelled || n->ext_cancel))
            return;
        if (n->cancelled)
            fail(n, "cancelled member gave %d/%d", o.state, o.err);
        if (outcome_of(p, n->in[0]).known && !same(o, outcome_of(p, n->in[0])))
            fail(n, "member %d/%d differs from what it tracks", o.state, o.err);
        return;
    case K_SCOPE:
        check_scope(p, n, o);
        return;
    case K_DELAY:
        if (is_cancel(o, FUT_ECANCELED) && (n->cancelled || n->ext_cancel))
            return;
        if (n->cancelled)
            fail(n, "cancelled delay gave %d/%d", o.state, o.err);
        if (o.state == FUT_REJECTED && o.err == FUT_ESHUTDOWN &&
            n->in_ex->destroyed)
            return;
        if (n->ns == HUGE_NS)
            fail(n, "a delay of 2^64 ns fired: %d/%d", o.state, o.err);
        if (same(o, mk(FUT_FULFILLED, 0, NULL, 0)))
            return;
        fail(n, "delay gave %d/%d", o.state, o.err);
    }
}

/* ---- the operations ---------------------------------------------------------
 */

static node_t *new_node(prog_t *p, enum kind k)
{
    if (p->nn >= MAXN)
        return NULL;
    node_t *n = &p->n[p->nn];
    memset(n, 0, sizeof *n);
    n->id = p->nn++;
    n->kind = k;
    n->target = -1;
    n->settle_target = -1;
    return n;
}

/* A node with a live program reference, picked by B; NULL if none. */
static node_t *pick_held(prog_t *p, uint8_t b, int below)
{
    int lim = below < 0 ? p->nn : below;
    if (lim == 0)
        return NULL;
    for (int k = 0; k < lim; k++) {
        node_t *n = &p->n[(b + k) % lim];
        if (n->f)
            return n;
    }
    return NULL;
}

static inst_t *pick_ex(prog_t *p, uint8_t b, bool timers)
{
    inst_t *i = p->slot[b % 4];
    if (!i || i->destroyed || (timers && i->kind == 2))
        return p->slot[0];
    return i;
}

/* Mode M with its adopt target below node ID; falls back to M_I64. */
static enum mode pick_mode(prog_t *p, uint8_t b, int id, int *target,
                           fut_t **ref)
{
    enum mode m = (enum mode)(b % M_COUNT);
    *target = -1;
    if (m == M_ADOPT) {
        node_t *t = pick_held(p, next(p), id);
        if (!t)
            return M_I64;
        *target = t->id;
        if (ref)
            *ref = fut_retain(t->f);
    }
    return m;
}

static void not_null(node_t *n)
{
    if (!n->f)
        fail(n, "constructor returned NULL");
    n->ident = n->f;
}

/* The node whose future node ID's is: ready(adopt(X)) returns X itself.
 * Identities alone would also match a block freed and reused. */
static int root_of(prog_t *p, int id)
{
    while (p->n[id].kind == K_READY && p->n[id].target >= 0 &&
           p->n[id].ident == p->n[p->n[id].target].ident)
        id = p->n[id].target;
    return id;
}

static bool aliases(prog_t *p, int a, int b)
{
    return a != b && root_of(p, a) == root_of(p, b);
}

/* A cancel reaching node ID may go on to everything it waits on: mark it
 * and them (ext_cancel), through aliases (ready(adopt(X)) is X itself:
 * compare identities, since the program may have released X's first
 * handle already).  Marked nodes had their sources marked, so a marked
 * node ends the walk. */
static void may_cancel(prog_t *p, int id)
{
    node_t *s = &p->n[id];
    if (s->ext_cancel)
        return;
    TRACE("  node %d may be cancelled", id);
    s->ext_cancel = true;
    for (int i = 0; i < p->nn; i++)
        if (aliases(p, i, id))
            may_cancel(p, i);
    for (int i = 0; i < s->nin; i++)
        may_cancel(p, s->in[i]);
    if (s->target >= 0)
        may_cancel(p, s->target);
    for (int i = 0; i < p->nn && s->kind == K_SCOPE; i++)
        if (s->members >> i & 1)
            may_cancel(p, i);
}

/* True if nothing but node BY refers to node ID (as an input, an adopt or
 * forward target, or an alias). */
static bool only_consumer(prog_t *p, int id, int by)
{
    for (int i = 0; i < p->nn; i++) {
        node_t *n = &p->n[i];
        if (i == by || i == id)
            continue;
        bool uses = n->target == id || n->settle_target == id ||
                    aliases(p, i, id);
        for (int k = 0; k < n->nin; k++)
            uses |= n->in[k] == id;
        if (uses || (n->members >> id & 1))
            return false;
    }
    return true;
}

/* We cancelled N: a source it alone consumes and the program released
 * must be cancelled with it (a promise refuses its settle; a task queued
 * on a deterministic executor never runs). */
static void must_reach(prog_t *p, node_t *n)
{
    if (n->kind != K_THEN && n->kind != K_CATCH && n->kind != K_FINALLY &&
        n->kind != K_TIMEOUT)
        return;
    node_t *s = &p->n[n->in[0]];
    /* N's own adopt target is a reference the program keeps (target_ref) */
    if (s->f || n->target == s->id || !only_consumer(p, s->id, n->id))
        return;
    if (s->kind == K_PROMISE && s->p && !s->by_thread) {
        TRACE("  promise %d must refuse its settle", s->id);
        s->must_cancel = true;
    }
    if (s->kind == K_ASYNC && s->in_ex->kind == 1 && !s->in_ex->destroyed &&
        !atomic_load(&s->calls)) {
        TRACE("  task %d must not run", s->id);
        s->must_not_run = true;
    }
}

static void op_promise(prog_t *p)
{
    node_t *n = new_node(p, K_PROMISE);
    if (!n)
        return;
    n->f = fut_promise_new(&n->p);
    not_null(n);
    if (!n->p || fut_state(n->f) != FUT_PENDING)
        fail(n, "new promise not pending");
}

static void op_ready(prog_t *p)
{
    node_t *n = new_node(p, K_READY);
    if (!n)
        return;
    enum mode m = (enum mode)(next(p) % M_COUNT);
    fut_t *t = NULL;
    if (m == M_ADOPT || m == M_FORWARD) {
        node_t *src = pick_held(p, next(p), n->id);
        if (!src)
            m = M_I64;
        else {
            n->target = src->id;
            t = src->f;
        }
    }
    n->mode = m;
    n->f = fut_ready(make_result(n, m, t, t));
    not_null(n);
}

static void op_async(prog_t *p)
{
    node_t *n = new_node(p, K_ASYNC);
    if (!n)
        return;
    n->in_ex = pick_ex(p, next(p), false);
    n->mode = pick_mode(p, next(p), n->id, &n->target, &n->target_ref);
    n->f = fut_async(n->in_ex->ex, task, n);
    not_null(n);
}

static void op_fiber(prog_t *p)
{
    node_t *src = pick_held(p, next(p), -1);
    if (!src)
        return;
    node_t *n = new_node(p, K_FIBER);
    if (!n)
        return;
    n->in[0] = src->id;
    n->nin = 1;
    n->await_ref = fut_retain(src->f);
    n->in_ex = pick_ex(p, next(p), false);
    n->mode = pick_mode(p, next(p), n->id, &n->target, &n->target_ref);
    n->f = fut_fiber(n->in_ex->ex, fiber_body, n, NULL);
    not_null(n);
}

static void op_chain(prog_t *p, enum kind k)
{
    node_t *src = pick_held(p, next(p), -1);
    if (!src)
        return;
    node_t *n = new_node(p, k);
    if (!n)
        return;
    n->in[0] = src->id;
    n->nin = 1;
    n->in_ex = pick_ex(p, next(p), false);
    n->mode = pick_mode(p, next(p), n->id, &n->target, &n->target_ref);
    fut_t *s = fut_retain(src->f);
    n->f = k == K_THEN    ? fut_then(s, n->in_ex->ex, cb, n)
           : k == K_CATCH ? fut_catch(s, n->in_ex->ex, cb, n)
                          : fut_finally(s, n->in_ex->ex, cb, n);
    not_null(n);
}

static void op_combine(prog_t *p)
{
    uint8_t b = next(p);
    enum kind k = (enum kind)(K_ALL + b % 4);
    int want = (b >> 2) % (MAXIN + 1);
    fut_t *fs[MAXIN];
    int ids[MAXIN], cnt = 0;
    for (int i = 0; i < want; i++) {
        node_t *in = pick_held(p, next(p), -1);
        if (in) {
            ids[cnt] = in->id;
            fs[cnt++] = fut_retain(in->f);
        }
    }
    node_t *n = new_node(p, k);
    if (!n) {
        for (int i = 0; i < cnt; i++)
            fut_release(fs[i]);
        return;
    }
    memcpy(n->in, ids, sizeof ids);
    n->nin = cnt;
    fut_t *const *arr = cnt ? fs : NULL;
    n->f = k == K_ALL    ? fut_all(arr, (size_t)cnt)
           : k == K_ALLS ? fut_all_settled(arr, (size_t)cnt)
           : k == K_ANY  ? fut_any(arr, (size_t)cnt)
                         : fut_race(arr, (size_t)cnt);
    not_null(n);
    /* Deciding early cancels the inputs nothing else observes. */
    for (int i = 0; i < cnt && k != K_ALLS; i++)
        may_cancel(p, ids[i]);
}

/* ---- scopes ---------------------------------------------------------------
 * One scope is open at a time.  Spawned members start an inline task
 * (their node's), so START runs on whichever thread frees a slot. */

static fut_t *start_member(void *arg)
{
    node_t *n = arg;
    return fut_async(fut_inline(), task, n);
}

/* A new member node: tracked, and cancellable when the scope may cancel. */
static void add_member(prog_t *p, node_t *n)
{
    not_null(n);
    p->scope_members |= 1ull << n->id;
    if (p->scope_cancelled || p->scope_ff)
        may_cancel(p, n->id);
}

static void op_scope_close(prog_t *p)
{
    node_t *n = new_node(p, K_SCOPE);
    fut_t *c = fut_scope_close(p->scope);
    p->scope = NULL;
    if (!n) {
        fut_release(c);
        return;
    }
    n->members = p->scope_members;
    n->f = c;
    not_null(n);
}

/* No member settles after its scope's close future did. */
static void probe_scopes(prog_t *p)
{
    for (int i = 0; i < p->nn; i++) {
        node_t *c = &p->n[i];
        if (c->kind != K_SCOPE || !c->f || fut_state(c->f) == FUT_PENDING)
            continue;
        for (int k = 0; k < p->nn; k++)
            if ((c->members >> k & 1) && p->n[k].f &&
                fut_state(p->n[k].f) == FUT_PENDING)
                fail(c, "settled before its member %d", k);
    }
}

static void op_scope(prog_t *p)
{
    uint8_t b = next(p);
    node_t *n, *src;
    static const char *const what[] = {"create", "spawn", "add",
                                       "cancel", "close", "probe"};
    TRACE("op scope %s%s", what[b % 6], p->scope ? "" : " (none open)");
    switch (b % 6) {
    case 0:
        if (p->scope)
            return;
        fut_scope_opts_t o = {.limit = (b >> 3) % 3, .fail_fast = b >> 5 & 1};
        if (fut_scope_create(&p->scope, &o) != 0)
            fail(NULL, "fut_scope_create failed");
        p->scope_members = 0;
        p->scope_cancelled = false;
        p->scope_ff = o.fail_fast;
        return;
    case 1:
        if (!p->scope || !(n = new_node(p, K_MEMBER)))
            return;
        n->in_ex = p->slot[0];
        n->mode = pick_mode(p, next(p), n->id, &n->target, &n->target_ref);
        n->f = fut_scope_spawn(p->scope, start_member, n);
        add_member(p, n);
        return;
    case 2:
        if (!p->scope || !(src = pick_held(p, next(p), -1)) ||
            !(n = new_node(p, K_MEMBER)))
            return;
        n->in[0] = src->id;
        n->nin = 1;
        n->f = fut_scope_add(p->scope, fut_retain(src->f));
        add_member(p, n);
        return;
    case 3:
        if (!p->scope)
            return;
        fut_scope_cancel(p->scope);
        p->scope_cancelled = true;
        for (int i = 0; i < p->nn; i++)
            if (p->scope_members >> i & 1)
                may_cancel(p, i);
        return;
    case 4:
        if (p->scope)
            op_scope_close(p);
        return;
    default:
        probe_scopes(p);
        return;
    }
}

static void check_scope(prog_t *p, node_t *n, outcome_t o)
{
    bool all_ok = true, like_one = false;
    for (int i = 0; i < p->nn; i++) {
        if (!(n->members >> i & 1))
            continue;
        outcome_t m = outcome_of(p, i);
        if (!m.known)
            return;
        if (m.state == FUT_PENDING)
            fail(n, "settled %d/%d before member %d", o.state, o.err, i);
        all_ok &= m.state == FUT_FULFILLED;
        like_one |= m.state != FUT_FULFILLED && m.state == o.state &&
                    m.err == o.err;
    }
    if (n->cancelled && is_cancel(o, FUT_ECANCELED))
        return;
    if (n->cancelled)
        fail(n, "cancelled close future gave %d/%d", o.state, o.err);
    if (all_ok ? !same(o, mk(FUT_FULFILLED, 0, NULL, 0)) : !like_one)
        fail(n, "close gave %d/%d, not allowed by its members", o.state,
             o.err);
}

static void op_timeout(prog_t *p)
{
    node_t *in = pick_held(p, next(p), -1);
    if (!in)
        return;
    node_t *n = new_node(p, K_TIMEOUT);
    if (!n)
        return;
    n->in[0] = in->id;
    n->nin = 1;
    n->ns = next(p) & 1 ? HUGE_NS : 0;
    if (n->ns != HUGE_NS)
        may_cancel(p, in->id); /* and its aliases, and what it waits on */
    n->f = fut_timeout(fut_retain(in->f), n->ns);
    not_null(n);
}

static void op_delay(prog_t *p)
{
    node_t *n = new_node(p, K_DELAY);
    if (!n)
        return;
    uint8_t b = next(p);
    n->in_ex = pick_ex(p, b, true);
    /* On the inline executor a delay uses libfut's timer thread: only the
     * one that never fires (2^64 ns) keeps the run deterministic. */
    n->ns = (b & 0x80) || n->in_ex->kind == 0 ? HUGE_NS : 0;
    n->f = fut_delay(n->in_ex->ex, n->ns);
    not_null(n);
}

static node_t *pick_promise(prog_t *p, uint8_t b)
{
    for (int k = 0; k < p->nn; k++) {
        node_t *n = &p->n[(b + k) % p->nn];
        if (n->kind == K_PROMISE && n->p && !n->by_thread)
            return n;
    }
    return NULL;
}

static void settle_check(node_t *n, int rc, enum mode m, fut_state_t st)
{
    if (n->must_cancel && rc == 0)
        fail(n, "its only consumer was cancelled, yet it settled");
    if (rc == 0)
        return;
    if (rc != FUT_EALREADY)
        fail(n, "fut_promise_settle returned %d", rc);
    if (st != FUT_CANCELLED || !(n->cancelled || n->ext_cancel))
        fail(n, "settle refused though not cancelled (state %d)", st);
    if (m == M_OWNED)
        G->disposed_min++;
}

static void op_settle(prog_t *p)
{
    node_t *n = pick_promise(p, next(p));
    if (!n)
        return;
    fut_t *ref = NULL;
    enum mode m = pick_mode(p, next(p), n->id, &n->settle_target, &ref);
    fut_promise_t *pr = n->p;
    n->p = NULL;
    n->settle_mode = m;
    fut_result_t r = make_result(n, m, NULL, ref);
    fut_release(ref);
    int rc = fut_promise_settle(pr, r);
    TRACE("op settle promise %d, mode %d, target %d", n->id, m,
          n->settle_target);
    TRACE("  settle returned %d", rc);
    n->settled_by_op = rc == 0;
    /* A consumed handle answers FUT_EALREADY while the future lives. */
    if (n->f && fut_promise_settle(pr, fut_ok_i64(0)) != FUT_EALREADY)
        fail(n, "second settle of a consumed promise was accepted");
    settle_check(n, rc, m, n->f ? fut_state(n->f) : FUT_CANCELLED);
}

static void *settle_thread(void *arg)
{
    node_t *n = arg;
    fut_promise_t *pr = n->p;
    int rc = fut_promise_settle(
        pr, make_result(n, n->settle_mode, NULL, n->target_ref));
    atomic_store(&n->thread_rc, rc);
    return NULL;
}

static void op_settle_thread(prog_t *p)
{
    node_t *n = pick_promise(p, next(p));
    if (!n || p->nth >= MAXT || n->target_ref)
        return;
    n->settle_mode =
        pick_mode(p, next(p), n->id, &n->settle_target, &n->target_ref);
    n->by_thread = true;
    TRACE("op settle promise %d from a thread, mode %d, target %d", n->id,
          n->settle_mode, n->settle_target);
    if (pthread_create(&p->th[p->nth], NULL, settle_thread, n) != 0) {
        fut_release(n->target_ref);
        n->target_ref = NULL;
        n->by_thread = false;
        return;
    }
    p->nth++;
    /* The thread owns the handle now; n->p stays set only for it. */
}

static void op_drop(prog_t *p)
{
    node_t *n = pick_promise(p, next(p));
    if (!n || n->by_thread)
        return;
    fut_promise_t *pr = n->p;
    n->p = NULL;
    fut_state_t before = n->f ? fut_state(n->f) : FUT_PENDING;
    TRACE("op drop promise %d", n->id);
    fut_promise_drop(pr);
    n->dropped = before == FUT_PENDING;
    TRACE("  state before the drop %d", before);
    if (n->f && fut_state(n->f) == FUT_PENDING)
        fail(n, "dropped promise still pending");
}

static void op_cancel(prog_t *p)
{
    node_t *n = pick_held(p, next(p), -1);
    if (!n)
        return;
    int calls = atomic_load(&n->calls);
    int rc = fut_cancel(n->f);
    TRACE("op cancel node %d", n->id);
    TRACE("  cancel returned %d (calls before %d)", rc, calls);
    if (rc == 0) {
        n->cancelled = true;
        may_cancel(p, n->id);
        must_reach(p, n);
        if (n->kind == K_SCOPE)
            return; /* settles once every member has (at once but for a
                       member settling on another thread) */
        if (!calls && n->in_ex && n->in_ex->kind == 1 && n->kind != K_DELAY)
            n->cancel_before_run = true;
        if (!is_cancel(observe(n, n->f), FUT_ECANCELED))
            fail(n, "fut_cancel returned 0 but state is %d", fut_state(n->f));
        /* ready(adopt(X)) returned X itself: both nodes are cancelled. */
        for (int i = 0; i < p->nn; i++)
            if (aliases(p, i, n->id)) {
                TRACE("  node %d is node %d: cancelled too", i, n->id);
                p->n[i].cancelled = true;
            }
    } else if (rc == FUT_EALREADY) {
        /* Once a bug (tests/test_regress.c): a future another thread had
         * claimed but not yet closed answered FUT_EALREADY while it still
         * read pending.  FUZZ_KNOWN_CLAIM_WINDOW=1 tolerates it again. */
        for (int i = 0; FUZZ_KNOWN_CLAIM_WINDOW && i < 100000 &&
                        fut_state(n->f) == FUT_PENDING;
             i++)
            sched_yield();
        if (fut_state(n->f) == FUT_PENDING)
            fail(n, "fut_cancel said settled but it is pending");
    } else {
        fail(n, "fut_cancel returned %d", rc);
    }
}

static void op_release(prog_t *p)
{
    node_t *n = pick_held(p, next(p), -1);
    if (!n)
        return;
    n->snap = observe(n, n->f);
    TRACE("op release node %d", n->id);
    TRACE("  released at %d/%d", n->snap.state, n->snap.err);
    /* A pending future of unknown outcome is no use to later checks; a
     * delay that never fires would keep its timer (and leak) forever. */
    if (n->snap.state == FUT_PENDING) {
        if (n->kind == K_DELAY && n->ns == HUGE_NS)
            return;
        n->snap.known = false;
    }
    /* Value pointers stay comparable but are never read again. */
    const fut_t *id = n->f;
    fut_release(n->f);
    n->f = NULL;
    /* An identity stays meaningful only while some node holds that future
     * (only a held future can be returned again, by ready(adopt(X))); once
     * none does, its block may be freed and reused by an unrelated future,
     * which must not look like an alias (found: a fiber's run reused a
     * released, settled promise's block; cancelling it marked the promise
     * cancelled). */
    for (int i = 0; i < p->nn; i++)
        if (p->n[i].f == id)
            return;
    for (int i = 0; i < p->nn; i++)
        if (p->n[i].ident == id)
            p->n[i].ident = NULL;
}

static testexec_t *pick_tx(prog_t *p, uint8_t b, const char *what)
{
    inst_t *i = p->slot[1 + b % 2];
    TRACE("op %s on test executor %d", what, 1 + b % 2);
    return i && !i->destroyed ? i->tx : NULL;
}

static inst_t *new_testexec(prog_t *p)
{
    if (p->ninst >= 16)
        return NULL;
    testexec_opts_t o = {.timers = true, .try_run_one = true};
    testexec_t *tx = testexec_new(&o, NULL);
    if (!tx)
        abort();
    inst_t *i = &p->insts[p->ninst++];
    i->kind = 1;
    i->tx = tx;
    i->ex = testexec_ex(tx);
    i->deterministic = true;
    return i;
}

static void op_destroy(prog_t *p)
{
    int s = 1 + next(p) % 2;
    inst_t *i = p->slot[s];
    if (!i || i->destroyed)
        return;
    TRACE("op destroy test executor %d", s);
    /* Threads might be submitting to it: the destroy contract allows that,
     * but a test executor's destroy frees it, so join them first. */
    for (int t = 0; t < p->nth; t++)
        pthread_join(p->th[t], NULL);
    p->nth = 0;
    if (testexec_destroy(i->tx, NULL, NULL) != 0)
        fail(NULL, "testexec_destroy failed");
    i->destroyed = true;
    i->tx = NULL;
    p->slot[s] = new_testexec(p);
}

/* fut_post: runs exactly once on its executor with it as the current
 * one, or (its test executor destroyed first, dropping it) never; an
 * executor that is alive takes it (0). */
static void post_fn(void *arg)
{
    struct post *q = arg;
    if (fut_executor_current() != q->in_ex->ex)
        atomic_store(&q->wrong, true);
    atomic_fetch_add(&q->calls, 1);
}

static void op_post(prog_t *p)
{
    if (p->npost >= MAXPOSTS)
        return;
    struct post *q = &p->posts[p->npost++];
    q->in_ex = pick_ex(p, next(p), false);
    q->rc = fut_post(q->in_ex->ex, post_fn, q);
    TRACE("op post %d on executor kind %d", p->npost - 1, q->in_ex->kind);
    TRACE("  post returned %d", q->rc);
}

/* After the tear-down: every executor is destroyed. */
static void check_posts(prog_t *p)
{
    for (int i = 0; i < p->npost; i++) {
        struct post *q = &p->posts[i];
        int calls = atomic_load(&q->calls);
        if (q->rc != 0)
            fail(NULL, "post %d: fut_post returned %d", i, q->rc);
        if (atomic_load(&q->wrong))
            fail(NULL, "post %d ran with another current executor", i);
        if (calls > 1 || (calls == 0 && !q->in_ex->destroyed))
            fail(NULL, "post %d ran %d times (executor kind %d%s)", i, calls,
                 q->in_ex->kind, q->in_ex->destroyed ? ", destroyed" : "");
    }
}

static void op_wait(prog_t *p)
{
    node_t *n = pick_held(p, next(p), -1);
    if (!n)
        return;
    int rc = fut_wait(n->f, 0);
    TRACE("op wait node %d", n->id);
    TRACE("  wait returned %d", rc);
    if (rc == 0 && fut_state(n->f) == FUT_PENDING)
        fail(n, "fut_wait returned 0 on a pending future");
    if (rc != 0 && rc != FUT_ETIMEDOUT)
        fail(n, "fut_wait(0) returned %d", rc);
}

/* After the executors are gone (the pool joined, queued work run or
 * dropped): a finally's clean-up ran exactly once if its source settled,
 * whatever ended its own future.  Skipped while a timeout may still fire
 * on the timer thread (its cancel may be running a callback there). */
static void check_finally_ran(prog_t *p)
{
    for (int i = 0; i < p->nn; i++)
        if (p->n[i].kind == K_TIMEOUT && p->n[i].ns != HUGE_NS)
            return;
    for (int i = 0; i < p->nn; i++) {
        node_t *n = &p->n[i];
        if (n->kind != K_FINALLY)
            continue;
        outcome_t src = outcome_of(p, n->in[0]);
        if (src.known && src.state != FUT_PENDING &&
            atomic_load(&n->calls) != 1)
            fail(n, "finally's callback ran %d times for a settled source",
                 atomic_load(&n->calls));
    }
}

/* ---- one program ------------------------------------------------------------
 */

/* The node an operation made: everything the model knows of it. */
static void trace_new_node(const node_t *n)
{
    char in[8 * MAXIN] = "";
    for (int i = 0, at = 0; i < n->nin; i++)
        at += snprintf(in + at, sizeof in - (size_t)at, " %d", n->in[i]);
    TRACE("op made node %d: %s, mode %d, ex %d, inputs [%s ], target %d%s",
          n->id, kind_name[n->kind], n->mode, n->in_ex ? n->in_ex->kind : -1,
          in, n->target, n->ns == HUGE_NS ? ", never fires" : "");
}

static bool all_settled(prog_t *p)
{
    for (int i = 0; i < p->nn; i++)
        if (p->n[i].f && fut_state(p->n[i].f) == FUT_PENDING)
            return false;
    return true;
}

static void quiesce(prog_t *p)
{
    for (int t = 0; t < p->nth; t++)
        pthread_join(p->th[t], NULL);
    for (int i = 0; i < p->nn; i++) {
        node_t *n = &p->n[i];
        if (n->by_thread) {
            TRACE("  promise %d: the thread's settle returned %d", n->id,
                  atomic_load(&n->thread_rc));
            settle_check(n, atomic_load(&n->thread_rc), n->settle_mode,
                         n->f ? fut_state(n->f) : FUT_CANCELLED);
            n->settled_by_op = atomic_load(&n->thread_rc) == 0;
            n->by_thread = false;
            n->p = NULL;
        }
    }
    p->nth = 0;
    for (int i = 0; i < p->nn; i++) {
        node_t *n = &p->n[i];
        if (n->p) {
            fut_state_t before = n->f ? fut_state(n->f) : FUT_PENDING;
            fut_promise_drop(n->p);
            n->p = NULL;
            n->dropped = before == FUT_PENDING;
        }
        if (n->f && n->kind == K_DELAY && n->ns == HUGE_NS &&
            fut_cancel(n->f) == 0)
            n->cancelled = true;
    }
    uint64_t t0 = fut_now_ns();
    for (;;) {
        for (int s = 1; s <= 2; s++)
            if (p->slot[s] && !p->slot[s]->destroyed) {
                testexec_run_all(p->slot[s]->tx);
                testexec_fire_timers(p->slot[s]->tx, fut_now_ns());
            }
        if (all_settled(p))
            break;
        if (fut_now_ns() - t0 > 10ull * 1000 * 1000 * 1000) {
            for (int i = 0; i < p->nn; i++)
                if (p->n[i].f && fut_state(p->n[i].f) == FUT_PENDING)
                    fail(&p->n[i], "still pending after 10 s of quiet");
        }
        struct timespec ts = {0, 100 * 1000};
        nanosleep(&ts, NULL);
    }
}

static void run_program(const uint8_t *data, size_t size)
{
    static prog_t prog;
    prog_t *p = &prog;
    memset(p, 0, sizeof *p);
    G = p;
    p->data = data;
    p->size = size;
    g_trace = getenv("FUT_FUZZ_TRACE") && *getenv("FUT_FUZZ_TRACE") != '0';
    atomic_store(&g_vals, 0);
    atomic_store(&g_dtors, 0);

    inst_t *in0 = &p->insts[p->ninst++];
    in0->kind = 0;
    in0->ex = fut_inline();
    in0->deterministic = true;
    p->slot[0] = in0;
    p->slot[1] = new_testexec(p);
    p->slot[2] = new_testexec(p);
    uint8_t cfg = next(p);
    if ((cfg & 1) && fut_pool_create) {
        fut_pool_opts_t o = {.threads = 2};
        fut_executor_t *pool;
        if (fut_pool_create(&pool, &o) == 0) {
            inst_t *i = &p->insts[p->ninst++];
            i->kind = 2;
            i->ex = pool;
            p->slot[3] = i;
        }
    }
    TRACE("op config %d: %s", cfg, p->slot[3] ? "with a pool" : "no pool");

    for (int ops = 0; ops < MAXOPS && p->pos < p->size; ops++) {
        uint8_t op = next(p);
        int made = p->nn;
        TRACE("op %d: byte %d at %zu", ops, op, p->pos - 1);
        switch (op % 20) {
        case 0:
            op_promise(p);
            break;
        case 1:
            op_ready(p);
            break;
        case 2:
            op_async(p);
            break;
        case 3:
            op_chain(p, K_THEN);
            break;
        case 4:
            op_chain(p, K_CATCH);
            break;
        case 5:
            op_chain(p, K_FINALLY);
            break;
        case 6:
            op_combine(p);
            break;
        case 7:
            op_timeout(p);
            break;
        case 8:
            op_delay(p);
            break;
        case 9:
            op_settle(p);
            break;
        case 10:
            op_settle_thread(p);
            break;
        case 11:
            op_drop(p);
            break;
        case 12:
            op_cancel(p);
            break;
        case 13:
            op_release(p);
            break;
        case 14: {
            testexec_t *tx = pick_tx(p, next(p), "run one");
            if (tx)
                testexec_run_one(tx);
        } break;
        case 15: {
            testexec_t *tx = pick_tx(p, next(p), "run all");
            if (tx)
                testexec_run_all(tx);
        } break;
        case 16: {
            testexec_t *tx = pick_tx(p, next(p), "fire timers");
            if (tx)
                testexec_fire_timers(tx, fut_now_ns());
        } break;
        case 17:
            op_destroy(p);
            break;
        case 18:
            op_wait(p);
            break;
        default:
            /* 19: a scope op, a post or a fiber, by the byte's high
             * part. */
            if ((op / 20) % 3 == 0)
                op_scope(p);
            else if ((op / 20) % 3 == 1)
                op_post(p);
            else
                op_fiber(p);
            break;
        }
        for (int i = made; i < p->nn; i++)
            trace_new_node(&p->n[i]);
    }
    if (p->scope)
        op_scope_close(p); /* so that its outcome is checked too */

    quiesce(p);
    probe_scopes(p);
    for (int i = 0; i < p->nn; i++)
        check_node(p, &p->n[i]);
    if (atomic_load(&g_dtors) < p->disposed_min)
        fail(NULL, "%d destructors ran, at least %d results were disposed",
             atomic_load(&g_dtors), p->disposed_min);

    /* Tear down: destroy the executors (the pool finishes work still
     * queued for released futures, which may use their adopt targets),
     * then release everything; every owned value must now have been
     * destroyed exactly once. */
    for (int i = 0; i < p->ninst; i++) {
        inst_t *in = &p->insts[i];
        if (in->destroyed || in->kind == 0)
            continue;
        int rc = in->kind == 1 ? testexec_destroy(in->tx, NULL, NULL)
                               : fut_executor_destroy(in->ex);
        if (rc)
            fail(NULL, "executor destroy returned %d", rc);
    }
    check_posts(p);
    check_finally_ran(p);
    for (int i = 0; i < p->nn; i++) {
        fut_release(p->n[i].f);
        fut_release(p->n[i].target_ref);
        fut_release(p->n[i].await_ref);
    }
    /* The timer thread may still be letting go of a timeout it fired. */
    for (int i = 0; i < 2000 && atomic_load(&g_dtors) != atomic_load(&g_vals);
         i++) {
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (atomic_load(&g_dtors) != atomic_load(&g_vals))
        fail(NULL, "%d owned values made, %d destroyed", atomic_load(&g_vals),
             atomic_load(&g_dtors));
    /* Return this thread's cached blocks: the main thread never exits, so
     * its slab would otherwise look like a leak to LeakSanitizer. */
    fut_set_allocator(NULL, NULL);
    G = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run_program(data, size);
    return 0;
}

#ifdef FUZZ_STANDALONE
int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) {
            perror(argv[i]);
            return 2;
        }
        static uint8_t buf[1 << 16];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        run_program(buf, n);
    }
    printf("fuzz_api: %d input(s) passed\n", argc - 1);
    return 0;
}
#endif
