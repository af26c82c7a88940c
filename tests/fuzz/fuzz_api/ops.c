/* ops.c: the operations of fuzz_api (tests/fuzz/fuzz_api.c lists them
 * and dispatches on the opcode).  Each decodes its argument bytes with
 * next(), calls libfut, and records in its model node (fuzz_api.h) what it
 * did and observed: the facts model.c checks every outcome against.  The
 * callbacks, tasks and fiber bodies the operations hand to libfut are
 * here too: they count their runs and answer as their node's mode says. */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_api.h"

#ifndef FUZZ_KNOWN_CLAIM_WINDOW
#define FUZZ_KNOWN_CLAIM_WINDOW 0 /* fixed: lib/future.c await_close */
#endif

atomic_int g_vals;
atomic_int g_dtors;
int g_static;

/* ---- decoding and values ---------------------------------------------- */

uint8_t next(prog_t *p)
{
    return p->pos < p->size ? p->data[p->pos++] : 0;
}

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

/* ---- what libfut calls back ------------------------------------------- */

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

/* ---- picking nodes, executors and modes ------------------------------- */

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

/* ---- making futures --------------------------------------------------- */

void op_promise(prog_t *p)
{
    node_t *n = new_node(p, K_PROMISE);
    if (!n)
        return;
    n->f = fut_promise_new(&n->p);
    not_null(n);
    if (!n->p || fut_state(n->f) != FUT_PENDING)
        fail(n, "new promise not pending");
}

void op_ready(prog_t *p)
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

void op_async(prog_t *p)
{
    node_t *n = new_node(p, K_ASYNC);
    if (!n)
        return;
    n->in_ex = pick_ex(p, next(p), false);
    n->mode = pick_mode(p, next(p), n->id, &n->target, &n->target_ref);
    n->f = fut_async(n->in_ex->ex, task, n);
    not_null(n);
}

void op_fiber(prog_t *p)
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

void op_chain(prog_t *p, enum kind k)
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

void op_combine(prog_t *p)
{
    uint8_t b = next(p);
    enum kind k = (enum kind)(K_ALL + b % 4);
    int want = (b >> 2) % (MAXIN + 1);
    fut_t *fs[MAXIN];
    int ids[MAXIN] = {0}, cnt = 0;
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

void op_timeout(prog_t *p)
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

void op_delay(prog_t *p)
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

void op_scope_close(prog_t *p)
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

void op_scope(prog_t *p)
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

/* ---- settling, dropping, cancelling, releasing ------------------------ */

static node_t *pick_promise(prog_t *p, uint8_t b)
{
    for (int k = 0; k < p->nn; k++) {
        node_t *n = &p->n[(b + k) % p->nn];
        if (n->kind == K_PROMISE && n->p && !n->by_thread)
            return n;
    }
    return NULL;
}

void op_settle(prog_t *p)
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

void op_settle_thread(prog_t *p)
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

void op_drop(prog_t *p)
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

void op_cancel(prog_t *p)
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

void op_release(prog_t *p)
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

/* ---- executors, posts, waits ------------------------------------------ */

testexec_t *pick_tx(prog_t *p, uint8_t b, const char *what)
{
    inst_t *i = p->slot[1 + b % 2];
    TRACE("op %s on test executor %d", what, 1 + b % 2);
    return i && !i->destroyed ? i->tx : NULL;
}

inst_t *new_testexec(prog_t *p)
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

void op_destroy(prog_t *p)
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

void op_post(prog_t *p)
{
    if (p->npost >= MAXPOSTS)
        return;
    struct post *q = &p->posts[p->npost++];
    q->in_ex = pick_ex(p, next(p), false);
    q->rc = fut_post(q->in_ex->ex, post_fn, q);
    TRACE("op post %d on executor kind %d", p->npost - 1, q->in_ex->kind);
    TRACE("  post returned %d", q->rc);
}

void op_wait(prog_t *p)
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
