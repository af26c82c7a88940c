/* bench/fiber/switch -- one context switch pair (there and back).
 *
 *   fiber_switch [n] [runs]      defaults: n = 10000000, runs = 5
 *
 * impl=fut          libfut's fut__ctx_swap (lib/fiber_ctx.c), the switch
 *                   under every fiber: callee-saved registers, MXCSR, x87 CW
 * baseline=hand     a minimal hand-written x86-64 switch saving the same
 *                   (the yardstick; x86-64 only)
 * baseline=boost    Boost.Context's jump_fcontext (C-callable)
 * baseline=ucontext glibc's swapcontext (a sigprocmask system call each)
 * Also bench=fiber_yield: fut_yield in a fiber on fut_inline() (a switch
 * pair plus a task through the inline executor) over the hand switch.
 * One line per baseline: ns per pair, median and min-max of RUNS. */
#define _GNU_SOURCE
#include <fut.h>
#include <stdint.h>
#include <ucontext.h>

#include "fiber_bench.h"
#include "fiber_ctx.h"

#define STACK (64 * 1024)


/* ---- libfut's switch ------------------------------------------------------ */
static fut__ctx_t fmain, fother;

static void fut_side(void *arg)
{
    (void)arg;
    for (;;)
        fut__ctx_swap(&fother, &fmain);
}

static double run_fut(long n)
{
    static char stack[STACK] __attribute__((aligned(64)));
    fut__ctx_make(&fother, stack, STACK, fut_side, NULL);
    double t0 = now_s();
    for (long i = 0; i < n; i++)
        fut__ctx_swap(&fmain, &fother);
    return now_s() - t0;
}

/* ---- a minimal hand switch ------------------------------------------------- */
#if defined(__x86_64__)
void hand_swap(void **from, void *to);
__asm__(".text\n.globl hand_swap\n.type hand_swap,@function\nhand_swap:\n"
        "pushq %rbp\npushq %rbx\npushq %r12\npushq %r13\npushq %r14\n"
        "pushq %r15\nsubq $8,%rsp\nstmxcsr (%rsp)\nfnstcw 4(%rsp)\n"
        "movq %rsp,(%rdi)\nmovq %rsi,%rsp\nldmxcsr (%rsp)\nfldcw 4(%rsp)\n"
        "addq $8,%rsp\npopq %r15\npopq %r14\npopq %r13\npopq %r12\n"
        "popq %rbx\npopq %rbp\nret\n"
        "hand_boot:\nmovq %r12,%rdi\ncallq *%rbx\nud2\n");
static void *hmain, *hother;

static void hand_side(void *arg)
{
    (void)arg;
    for (;;)
        hand_swap(&hother, hmain);
}

static double run_hand(long n)
{
    static char stack[STACK] __attribute__((aligned(64)));
    uint64_t *sp = (uint64_t *)(stack + STACK - 80);
    uintptr_t boot;
    __asm__("leaq hand_boot(%%rip), %0" : "=r"(boot));
    sp[0] = 0x1F80 | ((uint64_t)0x037F << 32);
    sp[4] = (uintptr_t)NULL;
    sp[5] = (uintptr_t)hand_side;
    sp[6] = 0;
    sp[7] = boot;
    hother = sp;
    double t0 = now_s();
    for (long i = 0; i < n; i++)
        hand_swap(&hmain, hother);
    return now_s() - t0;
}
#endif

/* ---- Boost.Context ---------------------------------------------------------- */
typedef void *fcontext_t;
typedef struct {
    fcontext_t fctx;
    void *data;
} transfer_t;
transfer_t jump_fcontext(fcontext_t const to, void *vp);
fcontext_t make_fcontext(void *sp, size_t size, void (*fn)(transfer_t));

static void boost_side(transfer_t t)
{
    for (;;)
        t = jump_fcontext(t.fctx, NULL);
}

static double run_boost(long n)
{
    static char stack[STACK] __attribute__((aligned(64)));
    fcontext_t other = make_fcontext(stack + STACK, STACK, boost_side);
    double t0 = now_s();
    for (long i = 0; i < n; i++)
        other = jump_fcontext(other, NULL).fctx;
    return now_s() - t0;
}

/* ---- swapcontext ---------------------------------------------------------- */
static ucontext_t umain, uother;

static void uc_side(void)
{
    for (;;)
        swapcontext(&uother, &umain);
}

static double run_uc(long n)
{
    static char stack[STACK] __attribute__((aligned(64)));
    getcontext(&uother);
    uother.uc_stack.ss_sp = stack;
    uother.uc_stack.ss_size = STACK;
    makecontext(&uother, uc_side, 0);
    double t0 = now_s();
    for (long i = 0; i < n; i++)
        swapcontext(&umain, &uother);
    return now_s() - t0;
}

/* ---- fut_yield on the inline executor --------------------------------------- */
static fut_result_t yielder(void *arg)
{
    long n = *(long *)arg;
    for (long i = 0; i < n; i++)
        fut_yield();
    return fut_ok(NULL);
}

static double run_yield(long n)
{
    double t0 = now_s();
    fut_release(fut_fiber(fut_inline(), yielder, &n, NULL));
    return now_s() - t0;
}

/* Runs the K benchmarks round by round (interleaved), ns per op; N[i]
 * ops for the i-th. */
static void interleave(double (**fn)(long), const long *n, int k, int runs,
                       summary_t *out)
{
    double v[5][MAX_RUNS];
    for (int i = 0; i < k; i++)
        fn[i](n[i] / 10 + 1); /* warm */
    for (int r = 0; r < runs; r++)
        for (int i = 0; i < k; i++)
            v[i][r] = fn[i](n[i]) * 1e9 / (double)n[i];
    for (int i = 0; i < k; i++)
        out[i] = summarize(v[i], runs);
}

int main(int argc, char **argv)
{
    long n = 10000000;
    int runs = 5;
    if (parse_args(argc, argv, &n, &runs))
        return 2;

#if defined(__x86_64__)
    double (*fn[5])(long) = {run_fut, run_boost, run_uc, run_yield, run_hand};
    int k = 5;
#else
    double (*fn[5])(long) = {run_fut, run_boost, run_uc, run_yield};
    int k = 4;
#endif
    long ns[5] = {n, n, n / 20 + 1, n / 10 + 1, n};
    summary_t s[5];
    interleave(fn, ns, k, runs, s);
    if (k == 5)
        fiber_line("switch", n, runs, "hand", s[0], s[4]);
    fiber_line("switch", n, runs, "boost", s[0], s[1]);
    fiber_line("switch", n, runs, "ucontext", s[0], s[2]);
    fiber_line("yield", n / 10, runs, k == 5 ? "hand" : "fut_switch", s[3],
               k == 5 ? s[4] : s[0]);
    return 0;
}
