/* The outside program of the install check (`scons test`, SConstruct's
 * check_install): built against an installed libfut with
 *   cc test_install.c $(pkg-config --cflags --libs fut)
 * (and with --static), using only <fut.h>.  Not a cmocka test. */
#include <fut.h>
#include <stdio.h>

int main(void)
{
    fut_t *f = fut_ready(fut_ok_i64(42));
    int64_t v = fut_value_i64(f);
    fut_state_t s = fut_state(f);
    fut_release(f);
    if (s != FUT_FULFILLED || v != 42) {
        fprintf(stderr, "test_install: state %d value %lld\n", (int)s,
                (long long)v);
        return 1;
    }
    printf("test_install: fut_value_i64 = %lld, libfut %s\n", (long long)v,
           FUT_VERSION_STRING);
    return 0;
}
