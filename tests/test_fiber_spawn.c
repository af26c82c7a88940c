/* A fiber's first switch in and its end (lib/fiber_ctx.h's fut__ctx_start,
 * under every fut_fiber): the starting context's callee-saved registers
 * and floating-point control come back intact whatever the fiber left in
 * them, and a fiber starts with the floating-point control of the thread
 * that runs it, as a task does; a fiber spawned after one ended runs on
 * the stack that one gave back.
 * (tests/test_fiber.c has the fibers themselves.) */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fut.h>

#include "fiber_ctx.h"
#include "testexec.h"
#include "fp_control.h"

/* ---- floating-point control ------------------------------------------- */


static fut_result_t read_fp_control(void *arg)
{
    *(unsigned *)arg = fp_control();
    return fut_ok(NULL);
}

static void test_fiber_starts_with_the_fp_control_of_its_thread(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    unsigned mine = fp_control(), seen = 0;
    fut_t *f = fut_fiber(testexec_ex(tx), read_fp_control, &seen, NULL);
    set_fp_control(mine | ROUND_TO_ZERO);
    bool ran = testexec_run_one(tx); /* the fiber's first run, here */
    unsigned during = fp_control();
    set_fp_control(mine);
    assert_true(ran);
    assert_int_equal(seen, mine | ROUND_TO_ZERO);
    assert_int_equal(during, mine | ROUND_TO_ZERO);
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    fut_release(f);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

static fut_result_t end_rounding_to_zero(void *arg)
{
    (void)arg;
    set_fp_control(fp_control() | ROUND_TO_ZERO); /* and never back */
    return fut_ok(NULL);
}

static void test_fiber_ending_in_other_fp_control_leaves_its_threads(
    void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    unsigned mine = fp_control();
    fut_t *f = fut_fiber(testexec_ex(tx), end_rounding_to_zero, NULL, NULL);
    assert_true(testexec_run_one(tx)); /* runs to its end */
    unsigned after = fp_control();
    set_fp_control(mine);
    assert_int_equal(after, mine);
    assert_int_equal(fut_state(f), FUT_FULFILLED);
    fut_release(f);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

/* ---- stacks ----------------------------------------------------------- */

static fut_result_t note_frame(void *arg)
{
    *(void **)arg = __builtin_frame_address(0);
    return fut_ok(NULL);
}

/* The thread's stack cache is LIFO: the stack a fiber just gave back is
 * the next one taken, still in cache. */
static void test_fiber_after_an_ended_one_reuses_its_stack(void **state)
{
    (void)state;
    testexec_t *tx = testexec_new(NULL, NULL);
    void *first = NULL, *second = NULL;
    fut_t *a = fut_fiber(testexec_ex(tx), note_frame, &first, NULL);
    assert_true(testexec_run_one(tx));
    fut_t *b = fut_fiber(testexec_ex(tx), note_frame, &second, NULL);
    assert_true(testexec_run_one(tx));
    assert_non_null(first);
    assert_ptr_equal(first, second);
    fut_release(a);
    fut_release(b);
    assert_int_equal(testexec_destroy(tx, NULL, NULL), 0);
}

/* ---- callee-saved registers (the hand-written x86-64 start: aarch64's
 * switch is checked under qemu by tests/arch/switch_aarch64.c, and the
 * portable start is swapcontext's) ---------------------------------------- */
#if defined(__x86_64__) && !defined(FUT_FIBER_UCONTEXT)

static fut__ctx_t starter, started;
static _Alignas(64) unsigned char stack[64 * 1024];
int fiber_spawn_entered; /* set by garbage_entry */

/* call_checking_regs(fn, arg): loads rbx, rbp, r12-r15 with values of its
 * own, calls FN(ARG), and returns how many of the six came back changed.
 * garbage_entry(arg), a fut__ctx_start entry: stores *(int *)ARG in
 * fiber_spawn_entered, loads the six with other values, sets MXCSR to
 * round toward zero, and returns &starter (to continue it). */
unsigned call_checking_regs(void (*fn)(void *), void *arg);
fut__ctx_t *garbage_entry(void *arg);
#define REG_CHECK(reg, val)                                                    \
    "    movabsq $" val ", %rdx\n"                                             \
    "    xorl %ecx, %ecx\n"                                                    \
    "    cmpq %rdx, %" reg "\n"                                                \
    "    setne %cl\n"                                                          \
    "    addl %ecx, %eax\n"
__asm__(".text\n"
        ".globl call_checking_regs\n"
        ".type call_checking_regs, @function\n"
        "call_checking_regs:\n"
        "    pushq %rbx\n"
        "    pushq %rbp\n"
        "    pushq %r12\n"
        "    pushq %r13\n"
        "    pushq %r14\n"
        "    pushq %r15\n"
        "    subq $8, %rsp\n"
        "    movabsq $0x1111111111111111, %rbx\n"
        "    movabsq $0x2222222222222222, %rbp\n"
        "    movabsq $0x3333333333333333, %r12\n"
        "    movabsq $0x4444444444444444, %r13\n"
        "    movabsq $0x5555555555555555, %r14\n"
        "    movabsq $0x6666666666666666, %r15\n"
        "    movq %rdi, %rax\n"
        "    movq %rsi, %rdi\n"
        "    callq *%rax\n"
        "    xorl %eax, %eax\n" REG_CHECK("rbx", "0x1111111111111111")
            REG_CHECK("rbp", "0x2222222222222222")
                REG_CHECK("r12", "0x3333333333333333")
                    REG_CHECK("r13", "0x4444444444444444")
                        REG_CHECK("r14", "0x5555555555555555")
                            REG_CHECK("r15", "0x6666666666666666")
        "    addq $8, %rsp\n"
        "    popq %r15\n"
        "    popq %r14\n"
        "    popq %r13\n"
        "    popq %r12\n"
        "    popq %rbp\n"
        "    popq %rbx\n"
        "    ret\n"
        ".size call_checking_regs, .-call_checking_regs\n"
        ".globl garbage_entry\n"
        ".type garbage_entry, @function\n"
        "garbage_entry:\n"
        "    movl (%rdi), %eax\n"
        "    movl %eax, fiber_spawn_entered(%rip)\n"
        "    movq $-1, %rbx\n"
        "    movq $-2, %rbp\n"
        "    movq $-3, %r12\n"
        "    movq $-4, %r13\n"
        "    movq $-5, %r14\n"
        "    movq $-6, %r15\n"
        "    subq $8, %rsp\n"
        "    stmxcsr (%rsp)\n"
        "    orl $0x6000, (%rsp)\n"
        "    ldmxcsr (%rsp)\n"
        "    addq $8, %rsp\n"
        "    leaq starter(%rip), %rax\n"
        "    ret\n"
        ".size garbage_entry, .-garbage_entry\n"
        ".section .note.GNU-stack,\"\",@progbits\n"
        ".text\n");

static void start(void *arg)
{
    fut__ctx_start(&starter, &started, stack, sizeof stack, garbage_entry,
                   arg);
}

static void test_ctx_start_keeps_the_starters_registers(void **state)
{
    (void)state;
    int token = 7;
    unsigned mine = fp_control();
    unsigned changed = call_checking_regs(start, &token);
    unsigned after = fp_control();
    set_fp_control(mine);
    assert_int_equal(fiber_spawn_entered, 7); /* ENTRY ran, with ARG */
    assert_int_equal(changed, 0);
    assert_int_equal(after, mine);
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fiber_starts_with_the_fp_control_of_its_thread),
        cmocka_unit_test(
            test_fiber_ending_in_other_fp_control_leaves_its_threads),
        cmocka_unit_test(test_fiber_after_an_ended_one_reuses_its_stack),
#if defined(__x86_64__) && !defined(FUT_FIBER_UCONTEXT)
        cmocka_unit_test(test_ctx_start_keeps_the_starters_registers),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
