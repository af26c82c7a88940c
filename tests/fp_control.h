/* fp_control.h: the thread's floating-point control word (x86-64 MXCSR,
 * aarch64 FPCR; 0 and ignored elsewhere), for the fibers' tests that check
 * a switch or a fiber's start keeps it (tests/test_fiber.c,
 * tests/test_fiber_spawn.c). */
#ifndef TESTS_FP_CONTROL_H
#define TESTS_FP_CONTROL_H

#include <stdint.h>

static inline unsigned fp_control(void)
{
#if defined(__x86_64__)
    unsigned m;
    __asm__ volatile("stmxcsr %0" : "=m"(m));
    return m;
#elif defined(__aarch64__)
    uint64_t c;
    __asm__ volatile("mrs %0, fpcr" : "=r"(c));
    return (unsigned)c;
#else
    return 0;
#endif
}

static inline void set_fp_control(unsigned v)
{
#if defined(__x86_64__)
    __asm__ volatile("ldmxcsr %0" : : "m"(v));
#elif defined(__aarch64__)
    uint64_t c = v;
    __asm__ volatile("msr fpcr, %0" : : "r"(c));
#else
    (void)v;
#endif
}

/* Round toward zero: MXCSR RC = 11b; FPCR RMode = 11b. */
#if defined(__aarch64__)
#define ROUND_TO_ZERO (3u << 22)
#else
#define ROUND_TO_ZERO (3u << 13)
#endif

#endif
