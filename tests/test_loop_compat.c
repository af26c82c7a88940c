/* The loop where epoll_pwait2 does not exist: a kernel before 5.11, or
 * valgrind 3.19, which does not know syscall 441 and prints a warning at
 * each call.  A seccomp filter makes the syscall trap (SIGSYS) in this
 * whole test binary; the handler counts the attempt and makes it return
 * -ENOSYS, as such a kernel or valgrind would (the filter stays for the
 * rest of the process: keep this binary to this one test).  The loop must ask once,
 * then use epoll_wait, and its timers must still fire. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include <fut.h>

#define MS (1000 * 1000ull)

#if defined(__x86_64__) && defined(SYS_epoll_pwait2)
#define COMPAT_FILTER 1

static atomic_int traps; /* epoll_pwait2 calls made */

static void on_sigsys(int sig, siginfo_t *si, void *ctx)
{
    (void)sig;
    (void)si;
    atomic_fetch_add(&traps, 1);
    ((ucontext_t *)ctx)->uc_mcontext.gregs[REG_RAX] = -ENOSYS;
}

/* Every epoll_pwait2 of this process traps; everything else runs. */
static int install_filter(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigsys;
    sa.sa_flags = SA_SIGINFO;
    if (sigaction(SIGSYS, &sa, NULL) != 0)
        return -1;
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_epoll_pwait2, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof code / sizeof code[0], code};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}
#endif

/* Five sleeps until a timer's deadline, on two loops: one ENOSYS in the
 * whole process, and every delay fulfils, no earlier than asked. */
static void test_loop_without_epoll_pwait2_asks_once(void **state)
{
    (void)state;
#ifndef COMPAT_FILTER
    skip(); /* the filter is written for x86-64 */
#else
    /* Here, not in a group setup: cmocka sets its own SIGSYS handler
     * around each test. */
    assert_int_equal(install_filter(), 0);
    for (int k = 0; k < 2; k++) {
        fut_executor_t *loop = NULL;
        assert_int_equal(fut_loop_create(&loop, NULL), 0);
        for (int i = 0; i < 5; i++) {
            uint64_t t0 = fut_now_ns();
            fut_t *d = fut_delay(loop, 2 * MS);
            assert_int_equal(fut_loop_run(loop, d), 0);
            assert_int_equal(fut_state(d), FUT_FULFILLED);
            assert_true(fut_now_ns() - t0 >= 2 * MS);
            fut_release(d);
        }
        assert_int_equal(fut_executor_destroy(loop), 0);
    }
    assert_int_equal(atomic_load(&traps), 1);
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loop_without_epoll_pwait2_asks_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
