/* tests/arch/switch_aarch64.c -- runs lib/fiber_ctx.c's aarch64 switch,
 * which this x86-64 machine can only assemble: cross-compiled with
 * aarch64-linux-gnu-gcc and run under qemu-aarch64 by `scons test`
 * (SConstruct, check:aarch64-switch; skipped, and said so, without those
 * tools).  Not a cmocka test: it runs under an emulator, alone.
 *
 * CONTEXTS contexts, each on a stack of its own made by fut__ctx_make,
 * pass control round a ring ROUNDS times; every switch is a switch_check
 * (switch_check_aarch64.S) that loads the callee-saved registers, the
 * frame pointer and the FPCR rounding mode with values of its own and
 * counts those that differ when it is switched back to.  A context that
 * has done its rounds leaves the ring; the last one goes back to main.
 * Also checked: each context starts once with its ARG, main's own
 * registers survive the whole run, and fut__ctx_start runs its entry once
 * with the starter's FPCR and continues the context it returns.  Prints
 * "ok" and exits 0, or says what failed and exits 1. */
#include <stdint.h>
#include <stdio.h>

#include "fiber_ctx.h"

#define CONTEXTS 4
#define ROUNDS 1000
#define STACK (64 * 1024)

unsigned switch_check(fut__ctx_t *from, fut__ctx_t *to, uint64_t seed);

static fut__ctx_t main_ctx, ctx[CONTEXTS];
static _Alignas(16) unsigned char stacks[CONTEXTS][STACK];
static int done[CONTEXTS], started[CONTEXTS];
static unsigned long bad, switches;

/* The next context of the ring after I that has rounds left, or main. */
static fut__ctx_t *next_after(int i)
{
    for (int k = 1; k <= CONTEXTS; k++) {
        int j = (i + k) % CONTEXTS;
        if (!done[j] && j != i)
            return &ctx[j];
    }
    return &main_ctx;
}

static void entry(void *arg)
{
    int i = (int)(intptr_t)arg;
    started[i]++;
    for (uint64_t r = 0; r < ROUNDS; r++) {
        uint64_t seed = ((uint64_t)(i + 1) << 40) | (r << 8) | (uint64_t)i;
        bad += switch_check(&ctx[i], next_after(i), seed);
        switches++;
    }
    done[i] = 1;
    fut__ctx_t dead;
    fut__ctx_swap(&dead, next_after(i)); /* never comes back */
}

/* fut__ctx_start, the portable one here (fut__ctx_make, then a switch):
 * ENTRY runs once, with ARG and the starter's FPCR, and the context it
 * returns is continued. */
static fut__ctx_t starter, started_ctx;
static uint64_t start_fpcr;
static int start_runs;

static fut__ctx_t *start_entry(void *arg)
{
    start_runs += *(int *)arg;
    __asm__ volatile("mrs %0, fpcr" : "=r"(start_fpcr));
    return &starter;
}

static int check_start(void)
{
    uint64_t mine, rz = (uint64_t)3 << 22; /* round toward zero */
    int one = 1;
    __asm__ volatile("mrs %0, fpcr" : "=r"(mine));
    __asm__ volatile("msr fpcr, %0" : : "r"(mine | rz));
    fut__ctx_start(&starter, &started_ctx, stacks[0], STACK, start_entry,
                   &one);
    __asm__ volatile("msr fpcr, %0" : : "r"(mine));
    if (start_runs == 1 && (start_fpcr & rz) == rz)
        return 0;
    printf("fut__ctx_start: entry ran %d times, fpcr %#llx\n", start_runs,
           (unsigned long long)start_fpcr);
    return 1;
}

int main(void)
{
    for (int i = 0; i < CONTEXTS; i++)
        fut__ctx_make(&ctx[i], stacks[i], STACK, entry, (void *)(intptr_t)i);
    unsigned main_bad = switch_check(&main_ctx, &ctx[0], 0x5A5A0000u | 3u);
    int fail = 0;
    for (int i = 0; i < CONTEXTS; i++)
        if (!done[i] || started[i] != 1) {
            printf("context %d: started %d times, done %d\n", i, started[i],
                   done[i]);
            fail = 1;
        }
    if (bad || main_bad) {
        printf("%lu registers lost over %lu switches (main: %u)\n", bad,
               switches, main_bad);
        fail = 1;
    }
    fail |= check_start(); /* stacks[0]'s context has ended */
    if (!fail)
        printf("ok: %d contexts, %lu checked switches, a start\n", CONTEXTS,
               switches);
    return fail;
}
