/* tests/arch/switch_check_aarch64.S -- one checked switch for
 * switch_aarch64.c: what AAPCS64 says a call preserves must survive
 * fut__ctx_swap (lib/fiber_ctx.c) while other contexts run with their own
 * values in the same registers.
 *
 *   unsigned switch_check(fut__ctx_t *from, fut__ctx_t *to, uint64_t seed)
 *
 * Loads x19-x28 with SEED + 1 .. SEED + 10, d8-d15 with the bits of
 * SEED + 11 .. SEED + 18, the frame pointer with the stack pointer, the
 * FPCR rounding mode with SEED's low two bits; switches FROM -> TO; when
 * something switches back, counts the registers (and sp, and FPCR) that
 * differ.  The link register is checked by returning through it at all.
 * The caller's own callee-saved registers and FPCR are restored. */
    .text
    .globl switch_check
    .type switch_check, %function
    .p2align 4
switch_check:
    stp x29, x30, [sp, #-176]!
    stp x19, x20, [sp, #16]
    stp x21, x22, [sp, #32]
    stp x23, x24, [sp, #48]
    stp x25, x26, [sp, #64]
    stp x27, x28, [sp, #80]
    stp d8, d9, [sp, #96]
    stp d10, d11, [sp, #112]
    stp d12, d13, [sp, #128]
    stp d14, d15, [sp, #144]
    mrs x9, fpcr
    stp x9, x2, [sp, #160]          /* the caller's FPCR, SEED */
    mov x29, sp
    add x19, x2, #1
    add x20, x2, #2
    add x21, x2, #3
    add x22, x2, #4
    add x23, x2, #5
    add x24, x2, #6
    add x25, x2, #7
    add x26, x2, #8
    add x27, x2, #9
    add x28, x2, #10
    add x9, x2, #11
    fmov d8, x9
    add x9, x2, #12
    fmov d9, x9
    add x9, x2, #13
    fmov d10, x9
    add x9, x2, #14
    fmov d11, x9
    add x9, x2, #15
    fmov d12, x9
    add x9, x2, #16
    fmov d13, x9
    add x9, x2, #17
    fmov d14, x9
    add x9, x2, #18
    fmov d15, x9
    and x9, x2, #3
    lsl x9, x9, #22                 /* FPCR.RMode */
    msr fpcr, x9
    bl fut__ctx_swap
    ldr x2, [sp, #168]
    mov x0, #0
    mov x9, sp
    cmp x9, x29
    cinc x0, x0, ne
    .macro chk reg, k
    add x10, x2, #\k
    cmp \reg, x10
    cinc x0, x0, ne
    .endm
    chk x19, 1
    chk x20, 2
    chk x21, 3
    chk x22, 4
    chk x23, 5
    chk x24, 6
    chk x25, 7
    chk x26, 8
    chk x27, 9
    chk x28, 10
    .macro chkd reg, k
    fmov x11, \reg
    chk x11, \k
    .endm
    chkd d8, 11
    chkd d9, 12
    chkd d10, 13
    chkd d11, 14
    chkd d12, 15
    chkd d13, 16
    chkd d14, 17
    chkd d15, 18
    mrs x9, fpcr
    and x10, x2, #3
    lsl x10, x10, #22
    cmp x9, x10
    cinc x0, x0, ne
    ldr x9, [sp, #160]
    msr fpcr, x9
    ldp x19, x20, [sp, #16]
    ldp x21, x22, [sp, #32]
    ldp x23, x24, [sp, #48]
    ldp x25, x26, [sp, #64]
    ldp x27, x28, [sp, #80]
    ldp d8, d9, [sp, #96]
    ldp d10, d11, [sp, #112]
    ldp d12, d13, [sp, #128]
    ldp d14, d15, [sp, #144]
    ldp x29, x30, [sp], #176
    ret
    .size switch_check, .-switch_check
    .section .note.GNU-stack,"",%progbits
