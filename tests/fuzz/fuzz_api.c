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
 * THE FILES
 *
 *   fuzz_api.c           this driver: one program from start to tear-down,
 *                        and the opcode table below
 *   fuzz_api/fuzz_api.h  the model's nodes and the program they belong to
 *   fuzz_api/ops.c       the operations: decode, call libfut, record facts
 *   fuzz_api/model.c     the executable model: what each outcome may be
 *
 * THE OPCODES (the byte % 20; the corpus in tests/fuzz/corpus means
 * exactly this, so keep the numbers)
 *
 *   0 promise  1 ready  2 async  3 then  4 catch  5 finally  6 combinator
 *   7 timeout  8 delay  9 settle  10 settle from a thread  11 drop
 *   12 cancel  13 release  14/15 run one/all of a test executor
 *   16 fire its timers  17 destroy it  18 wait(0)
 *   19 by (byte / 20) % 3: a scope op, a post, a fiber
 *
 * The first byte configures the run (bit 0: add the pool).  FUT_FUZZ_TRACE=1
 * prints each decoded operation and each check to stderr.
 *
 * A violated rule prints the node and aborts, which libFuzzer reports as a
 * crash with the input saved.  Built with -DFUZZ_STANDALONE it is a plain
 * program that runs the files named on its command line (for replaying a
 * finding without libFuzzer). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fuzz_api/fuzz_api.h"

/* The pool, if it is linked in. */
#pragma weak fut_pool_create

prog_t *G;

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

/* The executors of a program: inline, two test executors, and the pool
 * when the configuration byte asks for it and it is linked in. */
static void start_executors(prog_t *p)
{
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
}

/* Runs one operation, OP. */
static void step(prog_t *p, uint8_t op)
{
    testexec_t *tx;
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
    case 14:
        if ((tx = pick_tx(p, next(p), "run one")))
            testexec_run_one(tx);
        break;
    case 15:
        if ((tx = pick_tx(p, next(p), "run all")))
            testexec_run_all(tx);
        break;
    case 16:
        if ((tx = pick_tx(p, next(p), "fire timers")))
            testexec_fire_timers(tx, fut_now_ns());
        break;
    case 17:
        op_destroy(p);
        break;
    case 18:
        op_wait(p);
        break;
    default:
        /* 19: a scope op, a post or a fiber, by the byte's high part. */
        if ((op / 20) % 3 == 0)
            op_scope(p);
        else if ((op / 20) % 3 == 1)
            op_post(p);
        else
            op_fiber(p);
        break;
    }
}

/* Tear down: destroy the executors (the pool finishes work still queued
 * for released futures, which may use their adopt targets), then release
 * everything; every owned value must now have been destroyed exactly
 * once. */
static void tear_down(prog_t *p)
{
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
    start_executors(p);

    for (int ops = 0; ops < MAXOPS && p->pos < p->size; ops++) {
        uint8_t op = next(p);
        int made = p->nn;
        TRACE("op %d: byte %d at %zu", ops, op, p->pos - 1);
        step(p, op);
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
    tear_down(p);
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
