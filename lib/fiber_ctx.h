/* libfut — the fibers' machine layer: a context switch and guarded,
 * pooled stacks.  Internal to lib/ (fiber.c, fiber_ctx.c, fiber_stack.c).
 *
 * The switch is hand-written assembly on x86-64 and aarch64 (fiber_ctx.c
 * says what it saves and why), and swapcontext(3) elsewhere or when the
 * build asks for it (`scons fiber=ucontext` defines FUT_FIBER_UCONTEXT),
 * so the portable path is built and tested too. */
#ifndef FUT_FIBER_CTX_H
#define FUT_FIBER_CTX_H

#include <stddef.h>
#include <stdint.h>

#if !defined(FUT_FIBER_UCONTEXT) && !defined(__x86_64__) &&                   \
    !defined(__aarch64__)
#define FUT_FIBER_UCONTEXT 1
#endif

#ifdef FUT_FIBER_UCONTEXT
#include <ucontext.h>
#endif

/* A suspended context: the stack pointer at which the assembly switch left
 * it (its registers are saved on its own stack), or a ucontext. */
typedef struct fut__ctx {
#ifdef FUT_FIBER_UCONTEXT
    ucontext_t uc;
#else
    void *sp;
#endif
} fut__ctx_t;

/* Prepares CTX so that the first switch to it calls ENTRY(ARG) on the
 * stack [LO, LO + SIZE), with the floating-point control state (rounding,
 * exception masks) of the caller.  ENTRY must never return (it switches
 * away for the last time instead). */
void fut__ctx_make(fut__ctx_t *ctx, void *lo, size_t size,
                   void (*entry)(void *), void *arg);

/* Saves the running context into FROM and continues TO; returns when
 * something switches back to FROM. */
void fut__ctx_swap(fut__ctx_t *from, fut__ctx_t *to);

/* Saves the running context into FROM and calls ENTRY(ARG) on the stack
 * [LO, LO + SIZE), with the caller's floating-point control state; when
 * ENTRY returns, the context it returns is continued and ENTRY's is left
 * for good (nothing of it is saved).  Returns when something switches
 * back to FROM.  Where the switch is hand-written (x86-64) nothing is laid
 * out on the new stack beforehand and the calls and returns pair up, so
 * the CPU's return predictions hold across a fiber that runs straight
 * through; the portable path makes CTX with fut__ctx_make and switches. */
void fut__ctx_start(fut__ctx_t *from, fut__ctx_t *ctx, void *lo, size_t size,
                    fut__ctx_t *(*entry)(void *), void *arg);

/* ---- stacks (fiber_stack.c) ---------------------------------------------
 * A stack is SIZE usable bytes (a power of two, from fut__stack_size)
 * above a guard page.  Stacks are carved from larger mappings and never
 * unmapped: fut__stack_put keeps them for the next fut__stack_get, in a
 * small per-thread cache first, then in a shared list per size. */

/* The top a fiber uses of the stack [LO, LO + SIZE): up to 960 bytes
 * lower than the end, by LO's page number.  Stacks lie a whole number of
 * pages apart, so without this every fiber's struct, first frames and
 * free-list link would sit at one page offset and compete for the same
 * few L1 sets (8 ways here; a batch of 16 fibers thrashed them). */
static inline uintptr_t fut__stack_top(void *lo, size_t size)
{
    return (uintptr_t)lo + size - ((((uintptr_t)lo >> 12) & 15) << 6);
}

/* SIZE as fut_fiber_opts_t gives it (0: default) rounded to the size of
 * the stack it gets; 0 if out of range. */
size_t fut__stack_size(size_t requested);
/* The lowest usable address of a stack of SIZE bytes, or NULL (no
 * memory).  Any thread. */
void *fut__stack_get(size_t size);
/* Gives the stack at LO (from fut__stack_get(SIZE)) back.  Any thread; never
 * on that stack itself. */
void fut__stack_put(void *lo, size_t size);

#endif
