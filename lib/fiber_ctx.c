/* libfut — the context switch under fibers (interface: fiber_ctx.h).
 *
 * What a switch must keep is what the ABI says a called function keeps:
 * the callee-saved registers, the stack pointer, and the floating-point
 * control state a function must not change without restoring it.  On
 * x86-64 (System V) that is rbx, rbp, r12-r15, the MXCSR (SSE rounding and
 * exception masks) and the x87 control word; on aarch64 (AAPCS64) x19-x29,
 * the link register, d8-d15 and the FPCR.  Everything else is
 * caller-saved, so the compiler has already spilled whatever it needs
 * before calling fut__ctx_swap.  The switch pushes those on the current
 * stack, stores the stack pointer in FROM, loads TO's and pops: about 20
 * instructions and no system call.  glibc's swapcontext also saves the
 * signal mask with an rt_sigprocmask system call per switch (about 14x
 * dearer here: docs/BENCHMARKS.md), which is why it is only the fallback.
 *
 * SPEED.  The x86-64 switch ends with an indirect jmp, not ret: a ret to
 * another context's caller is mispredicted every time (the return stack
 * buffer predicts our own caller), while the indirect jump is predicted
 * from its history; and it loads the target first, before the slow
 * ldmxcsr.  Boost.Context's jump_fcontext does the same: measured side by
 * side (bench/fiber/switch), a ret-based switch of the same registers
 * costs about twice as much.
 *
 * A new context's stack is laid out as if fut__ctx_swap had saved it, with
 * the return address pointing at a small boot routine that calls
 * ENTRY(ARG) taken from two of the saved registers. */
#include <stdint.h>

#include "fiber_ctx.h"

#ifdef FUT_FIBER_UCONTEXT

/* makecontext passes int arguments only: the two pointers travel as
 * halves. */
static void boot(unsigned e_hi, unsigned e_lo, unsigned a_hi, unsigned a_lo)
{
    uintptr_t e = ((uintptr_t)e_hi << 32) | e_lo;
    uintptr_t a = ((uintptr_t)a_hi << 32) | a_lo;
    void (*entry)(void *);
    entry = (void (*)(void *))e;
    entry((void *)a);
}

void fut__ctx_make(fut__ctx_t *ctx, void *lo, size_t size,
                   void (*entry)(void *), void *arg)
{
    uintptr_t e = (uintptr_t)entry, a = (uintptr_t)arg;
    getcontext(&ctx->uc);
    ctx->uc.uc_stack.ss_sp = lo;
    ctx->uc.uc_stack.ss_size = size;
    ctx->uc.uc_link = NULL;
    makecontext(&ctx->uc, (void (*)(void))boot, 4, (unsigned)(e >> 32),
                (unsigned)e, (unsigned)(a >> 32), (unsigned)a);
}

void fut__ctx_swap(fut__ctx_t *from, fut__ctx_t *to)
{
    swapcontext(&from->uc, &to->uc);
}

#elif defined(__x86_64__)

/* fut__ctx_swap(from = rdi, to = rsi).  The saved frame, 64 bytes from
 * the stack pointer up: MXCSR (4 bytes) and x87 control word (2) in one
 * 8-byte slot, r12, r13, r14, r15, rbx, rbp, return address.
 * fut__ctx_start (from = rdi, ctx = rsi unused, lo = rdx, size = rcx,
 * entry = r8, arg = r9) saves the same frame, then calls ENTRY(ARG) on
 * the new stack: a fiber starts with a call, nothing to load, and with
 * the floating-point control of the thread that starts it (as a task
 * runs with its thread's).  ENTRY returns the context to continue (rax):
 * its frame is loaded as swap's second half does, and the return address
 * is taken with ret, not jmp: the call into fut__ctx_start pushed it on
 * the return stack buffer, and the calls in between have all returned,
 * so for a fiber that ran straight through (spawn and finish) it is
 * predicted, and the scheduler's later returns are not thrown off by
 * entries that never pop.  (A resumed fiber that ends mispredicts that
 * one ret, as a switch would.) */
#define FUT__CTX_SAVE                                                          \
    "    leaq -0x38(%rsp), %rsp\n"                                             \
    "    stmxcsr (%rsp)\n"                                                     \
    "    fnstcw 0x4(%rsp)\n"                                                   \
    "    movq %r12, 0x08(%rsp)\n"                                              \
    "    movq %r13, 0x10(%rsp)\n"                                              \
    "    movq %r14, 0x18(%rsp)\n"                                              \
    "    movq %r15, 0x20(%rsp)\n"                                              \
    "    movq %rbx, 0x28(%rsp)\n"                                              \
    "    movq %rbp, 0x30(%rsp)\n"                                              \
    "    movq %rsp, (%rdi)\n"
/* The other half: load the frame at %rsp that FUT__CTX_SAVE wrote (the
 * caller then pops it and goes where it says). */
#define FUT__CTX_LOAD                                                          \
    "    ldmxcsr (%rsp)\n"                                                     \
    "    fldcw 0x4(%rsp)\n"                                                    \
    "    movq 0x08(%rsp), %r12\n"                                              \
    "    movq 0x10(%rsp), %r13\n"                                              \
    "    movq 0x18(%rsp), %r14\n"                                              \
    "    movq 0x20(%rsp), %r15\n"                                              \
    "    movq 0x28(%rsp), %rbx\n"                                              \
    "    movq 0x30(%rsp), %rbp\n"
__asm__(".text\n"
        ".globl fut__ctx_swap\n"
        ".hidden fut__ctx_swap\n"
        ".type fut__ctx_swap, @function\n"
        ".p2align 4\n"
        "fut__ctx_swap:\n" FUT__CTX_SAVE
        "    movq (%rsi), %rsp\n"
        "    movq 0x38(%rsp), %rcx\n" /* where to go: early, see SPEED */
        FUT__CTX_LOAD
        "    leaq 0x40(%rsp), %rsp\n"
        "    jmpq *%rcx\n"
        ".size fut__ctx_swap, .-fut__ctx_swap\n"
        ".globl fut__ctx_start\n"
        ".hidden fut__ctx_start\n"
        ".type fut__ctx_start, @function\n"
        ".p2align 4\n"
        "fut__ctx_start:\n" FUT__CTX_SAVE
        "    leaq (%rdx,%rcx), %rsp\n"
        "    andq $-16, %rsp\n" /* the call leaves it 8 off: the ABI's */
        "    movq %r9, %rdi\n"
        "    xorl %ebp, %ebp\n" /* ends backtraces */
        "    callq *%r8\n"
        "    movq (%rax), %rsp\n" /* the context ENTRY returned */
        FUT__CTX_LOAD
        "    leaq 0x38(%rsp), %rsp\n"
        "    ret\n"
        ".size fut__ctx_start, .-fut__ctx_start\n"
        /* The first return of a context made by fut__ctx_make lands here,
         * stack 16-byte aligned: call ENTRY(ARG) kept in rbx and r12.
         * ENTRY never returns. */
        ".p2align 4\n"
        "fut__ctx_boot:\n"
        "    movq %r12, %rdi\n"
        "    callq *%rbx\n"
        "    ud2\n"
        ".section .note.GNU-stack,\"\",@progbits\n"
        ".text\n");

void fut__ctx_make(fut__ctx_t *ctx, void *lo, size_t size,
                   void (*entry)(void *), void *arg)
{
    uintptr_t top = ((uintptr_t)lo + size) & ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)(top - 80); /* 16-aligned, see boot */
    uintptr_t boot;
    __asm__("leaq fut__ctx_boot(%%rip), %0" : "=r"(boot));
    uint32_t mxcsr;
    uint16_t cw;
    __asm__ volatile("stmxcsr %0\n\tfnstcw %1" : "=m"(mxcsr), "=m"(cw));
    sp[0] = mxcsr | ((uint64_t)cw << 32); /* the maker's, as ctx_start */
    sp[1] = (uint64_t)(uintptr_t)arg;          /* r12 */
    sp[2] = 0;                                 /* r13 */
    sp[3] = 0;                                 /* r14 */
    sp[4] = 0;                                 /* r15 */
    sp[5] = (uint64_t)(uintptr_t)entry;        /* rbx */
    sp[6] = 0;                                 /* rbp: ends backtraces */
    sp[7] = boot;                              /* return address */
    sp[8] = 0;
    sp[9] = 0;
    ctx->sp = sp;
}

#elif defined(__aarch64__)

/* fut__ctx_swap(from = x0, to = x1).  The saved frame, 176 bytes from the
 * stack pointer up: x19..x30 in pairs (x29 frame pointer, x30 the return
 * address), d8..d15, FPCR.  Run under qemu-aarch64 by `scons test`
 * (check:aarch64-switch, tests/arch/switch_aarch64.c). */
__asm__(".text\n"
        ".globl fut__ctx_swap\n"
        ".hidden fut__ctx_swap\n"
        ".type fut__ctx_swap, %function\n"
        ".p2align 4\n"
        "fut__ctx_swap:\n"
        "    sub sp, sp, #176\n"
        "    stp x19, x20, [sp, #0]\n"
        "    stp x21, x22, [sp, #16]\n"
        "    stp x23, x24, [sp, #32]\n"
        "    stp x25, x26, [sp, #48]\n"
        "    stp x27, x28, [sp, #64]\n"
        "    stp x29, x30, [sp, #80]\n"
        "    stp d8, d9, [sp, #96]\n"
        "    stp d10, d11, [sp, #112]\n"
        "    stp d12, d13, [sp, #128]\n"
        "    stp d14, d15, [sp, #144]\n"
        "    mrs x9, fpcr\n"
        "    str x9, [sp, #160]\n"
        "    mov x9, sp\n"
        "    str x9, [x0]\n"
        "    ldr x9, [x1]\n"
        "    mov sp, x9\n"
        "    ldr x9, [sp, #160]\n"
        "    msr fpcr, x9\n"
        "    ldp x19, x20, [sp, #0]\n"
        "    ldp x21, x22, [sp, #16]\n"
        "    ldp x23, x24, [sp, #32]\n"
        "    ldp x25, x26, [sp, #48]\n"
        "    ldp x27, x28, [sp, #64]\n"
        "    ldp x29, x30, [sp, #80]\n"
        "    ldp d8, d9, [sp, #96]\n"
        "    ldp d10, d11, [sp, #112]\n"
        "    ldp d12, d13, [sp, #128]\n"
        "    ldp d14, d15, [sp, #144]\n"
        "    add sp, sp, #176\n"
        "    ret\n"
        ".size fut__ctx_swap, .-fut__ctx_swap\n"
        /* The first return lands here: call ENTRY(ARG) kept in x19, x20. */
        ".p2align 4\n"
        "fut__ctx_boot:\n"
        "    mov x0, x20\n"
        "    blr x19\n"
        "    brk #0\n"
        ".section .note.GNU-stack,\"\",%progbits\n"
        ".text\n");

void fut__ctx_make(fut__ctx_t *ctx, void *lo, size_t size,
                   void (*entry)(void *), void *arg)
{
    uintptr_t top = ((uintptr_t)lo + size) & ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)(top - 176);
    uintptr_t boot;
    __asm__("adr %0, fut__ctx_boot" : "=r"(boot));
    for (int i = 0; i < 22; i++)
        sp[i] = 0;
    uint64_t fpcr;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
    sp[20] = fpcr; /* the maker's floating-point control */
    sp[0] = (uint64_t)(uintptr_t)entry; /* x19 */
    sp[1] = (uint64_t)(uintptr_t)arg;   /* x20 */
    sp[11] = boot;                      /* x30: the first ret */
    ctx->sp = sp;
}

#endif

#if defined(FUT_FIBER_UCONTEXT) || !defined(__x86_64__)
/* The portable start (ucontext, aarch64): a context made, then an
 * ordinary switch; ENTRY, ARG and CTX ride at the top of the new stack. */
struct start_args {
    fut__ctx_t *(*entry)(void *);
    void *arg;
    fut__ctx_t *self;
};

static void boot_portable(void *p)
{
    struct start_args a = *(struct start_args *)p;
    fut__ctx_swap(a.self, a.entry(a.arg)); /* nothing comes back */
}

void fut__ctx_start(fut__ctx_t *from, fut__ctx_t *ctx, void *lo, size_t size,
                    fut__ctx_t *(*entry)(void *), void *arg)
{
    uintptr_t top =
        ((uintptr_t)lo + size - sizeof(struct start_args)) & ~(uintptr_t)15;
    struct start_args *a = (struct start_args *)top;
    *a = (struct start_args){entry, arg, ctx};
    fut__ctx_make(ctx, lo, top - (uintptr_t)lo, boot_portable, a);
    fut__ctx_swap(from, ctx);
}
#endif
