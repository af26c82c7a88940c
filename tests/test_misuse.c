/* Misuse that the library stops instead of corrupting memory: a double
 * release, a retain after the last release, a consumed promise used again
 * after its future is gone.  Each scenario runs in a child process, which
 * must die of SIGABRT; outside ASan builds the log hook must have heard
 * why first (under ASan the same misuse is a reported use after free). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fut.h>

static int g_pipe = -1;

static void hook(void *ud, const fut_log_event_t *ev)
{
    (void)ud;
    if (ev->level == FUT_LOG_ERROR && ev->msg)
        (void)!write(g_pipe, ev->msg, strlen(ev->msg));
}

/* Runs FN in a child; returns its wait status, and what the hook heard. */
static int run_child(void (*fn)(void), char *heard, size_t cap)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        g_pipe = fds[1];
        fut_set_log(hook, NULL);
        fn();
        _exit(0); /* not stopped: the test fails on the status */
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = read(fds[0], heard + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    heard[n] = '\0';
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

static void expect_abort(void (*fn)(void), const char *what)
{
    char heard[256];
    int status = run_child(fn, heard, sizeof heard);
#ifndef FUT_ASAN
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
    assert_non_null(strstr(heard, what));
    assert_non_null(strstr(heard, "after its last release"));
#else
    /* ASan stops it first: abort() with abort_on_error=1, else exit 1. */
    (void)what;
    assert_true((WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT) ||
                (WIFEXITED(status) && WEXITSTATUS(status) != 0));
#endif
}

static void double_release(void)
{
    fut_t *f = fut_ready(fut_ok_i64(1));
    fut_release(f);
    fut_release(f);
}

static void retain_after_release(void)
{
    fut_t *f = fut_ready(fut_ok_i64(1));
    fut_release(f);
    fut_retain(f);
}

static void promise_reused(void)
{
    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    fut_release(f);
    fut_promise_settle(p, fut_ok_i64(1)); /* consumes p: the last ref */
    fut_promise_settle(p, fut_ok_i64(2));
}

static void test_double_release_stops_the_program(void **state)
{
    (void)state;
    expect_abort(double_release, "fut_release");
}

static void test_retain_after_last_release_stops_the_program(void **state)
{
    (void)state;
    expect_abort(retain_after_release, "fut_retain");
}

static void test_consumed_promise_reused_stops_the_program(void **state)
{
    (void)state;
    expect_abort(promise_reused, "promise");
}

/* A then callback releasing the SRC it only borrows: the future's last
 * reference goes early, and the core's own release after the callback
 * finds it dead. */
static fut_result_t releases_borrowed_src(void *arg, fut_t *src)
{
    (void)arg;
    fut_release(src);
    return fut_ok(NULL);
}

static void callback_releases_src(void)
{
    fut_release(fut_then(fut_ready(fut_ok_i64(1)), fut_inline(),
                         releases_borrowed_src, NULL));
}

/* Runs FN in a child with stderr on a pipe, a log hook installed or not;
 * returns the wait status and what the child wrote on stderr. */
static int run_child_stderr(void (*fn)(void), bool with_hook, char *out,
                            size_t cap)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], STDERR_FILENO);
        close(fds[1]);
        g_pipe = open("/dev/null", O_WRONLY);
        fut_set_log(with_hook ? hook : NULL, NULL);
        fn();
        _exit(0);
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = read(fds[0], out + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = '\0';
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

/* No hook: exactly one line on stderr says why, then the abort. */
static void test_misuse_without_hook_prints_one_line(void **state)
{
    (void)state;
    char err[512];
    int status =
        run_child_stderr(callback_releases_src, false, err, sizeof err);
    assert_true(WIFSIGNALED(status) ||
                (WIFEXITED(status) && WEXITSTATUS(status) != 0));
#ifndef FUT_ASAN
    assert_int_equal(WTERMSIG(status), SIGABRT);
    assert_true(strstr(err, "libfut: fut_release of future ") == err);
    assert_non_null(strstr(err, " after its last release\n"));
    char *nl = strchr(err, '\n');
    assert_non_null(nl);
    assert_int_equal(nl[1], '\0'); /* one line, nothing else */
#endif
}

/* A hook installed: it alone hears the report; stderr stays silent. */
static void test_misuse_with_hook_prints_nothing(void **state)
{
    (void)state;
    char err[512];
    int status = run_child_stderr(callback_releases_src, true, err, sizeof err);
#ifndef FUT_ASAN
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
    assert_string_equal(err, "");
#else
    (void)status; /* ASan reports the use after free on stderr itself */
#endif
}

/* The check must not fire on correct use: many retains and releases, on a
 * future whose count passes through every small value. */
static void test_balanced_references_are_not_misuse(void **state)
{
    (void)state;
    fut_t *f = fut_ready(fut_ok_i64(7));
    for (int i = 0; i < 1000; i++)
        fut_retain(f);
    for (int i = 0; i < 1000; i++)
        fut_release(f);
    assert_int_equal(fut_value_i64(f), 7);
    fut_release(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_double_release_stops_the_program),
        cmocka_unit_test(test_retain_after_last_release_stops_the_program),
        cmocka_unit_test(test_consumed_promise_reused_stops_the_program),
        cmocka_unit_test(test_balanced_references_are_not_misuse),
        cmocka_unit_test(test_misuse_without_hook_prints_one_line),
        cmocka_unit_test(test_misuse_with_hook_prints_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
