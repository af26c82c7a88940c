/* model.c: the executable model of fuzz_api (tests/fuzz/fuzz_api.c says
 * how a program is decoded and run; ops.c records the facts this file
 * checks).
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
 * crash with the input saved. */
#include <stdarg.h>
#include <stdlib.h>

#include "fuzz_api.h"

const char *const kind_name[] = {"promise", "ready",   "async",   "then",
                                 "catch",   "finally", "all",     "all_settled",
                                 "any",     "race",    "timeout", "delay",
                                 "member",  "scope",   "fiber"};

bool g_trace;

/* ---- reporting ----------------------------------------------------------- */

void trace(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

void fail(const node_t *n, const char *fmt, ...)
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

outcome_t observe(const node_t *n, fut_t *f)
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

outcome_t outcome_of(prog_t *p, int id)
{
    node_t *n = &p->n[id];
    if (n->f)
        return observe(n, n->f);
    return n->snap;
}

bool same(outcome_t a, outcome_t b)
{
    return a.state == b.state && a.err == b.err && a.ptr == b.ptr &&
           a.i64 == b.i64;
}

outcome_t mk(fut_state_t s, int err, void *ptr, int64_t v)
{
    outcome_t o = {.known = true, .state = s, .err = err, .ptr = ptr, .i64 = v};
    return o;
}

bool is_cancel(outcome_t o, int err)
{
    return o.state == FUT_CANCELLED && o.err == err;
}

/* The outcome result mode M of node N gives, from source outcome SRC (of a
 * callback; unknown for tasks, readies and settles). */
/* ---- checking one node ----------------------------------------------- */

outcome_t expect_result(prog_t *p, node_t *n, enum mode m, int target,
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
    outcome_t e = expect_result(p, n, n->mode, n->target, atomic_load(&n->ret),
                                src, true);
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
        like_one |=
            m.state != FUT_FULFILLED && m.state == o.state && m.err == o.err;
    }
    if (n->cancelled && is_cancel(o, FUT_ECANCELED))
        return;
    if (n->cancelled)
        fail(n, "cancelled close future gave %d/%d", o.state, o.err);
    if (all_ok ? !same(o, mk(FUT_FULFILLED, 0, NULL, 0)) : !like_one)
        fail(n, "close gave %d/%d, not allowed by its members", o.state, o.err);
}

void check_node(prog_t *p, node_t *n)
{
    outcome_t o = outcome_of(p, n->id);
    TRACE("  check node %d (%s): %s %d/%d/%p/%lld; calls %d%s%s%s%s%s%s", n->id,
          kind_name[n->kind], o.known ? "outcome" : "unknown", o.state, o.err,
          o.ptr, (long long)o.i64, atomic_load(&n->calls),
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

/* ---- how far a cancel may reach ------------------------------------- */

/* The node whose future node ID's is: ready(adopt(X)) returns X itself.
 * Identities alone would also match a block freed and reused. */
static int root_of(prog_t *p, int id)
{
    while (p->n[id].kind == K_READY && p->n[id].target >= 0 &&
           p->n[id].ident == p->n[p->n[id].target].ident)
        id = p->n[id].target;
    return id;
}

bool aliases(prog_t *p, int a, int b)
{
    return a != b && root_of(p, a) == root_of(p, b);
}

/* A cancel reaching node ID may go on to everything it waits on: mark it
 * and them (ext_cancel), through aliases (ready(adopt(X)) is X itself:
 * compare identities, since the program may have released X's first
 * handle already).  Marked nodes had their sources marked, so a marked
 * node ends the walk. */
void may_cancel(prog_t *p, int id)
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
        bool uses =
            n->target == id || n->settle_target == id || aliases(p, i, id);
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
void must_reach(prog_t *p, node_t *n)
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

/* ---- checks across the program ------------------------------------- */

void settle_check(node_t *n, int rc, enum mode m, fut_state_t st)
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

/* No member settles after its scope's close future did. */
void probe_scopes(prog_t *p)
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

/* After the tear-down: every executor is destroyed. */
void check_posts(prog_t *p)
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

/* After the executors are gone (the pool joined, queued work run or
 * dropped): a finally's clean-up ran exactly once if its source settled,
 * whatever ended its own future.  Skipped while a timeout may still fire
 * on the timer thread (its cancel may be running a callback there). */
void check_finally_ran(prog_t *p)
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
