/* bench/fiber/rss -- resident memory per suspended fiber, at 10^5.
 *
 *   fiber_rss [n] [runs]      defaults: n = 100000, runs = 1
 *
 * N fibers with the default stack on fut_inline() each await one pending
 * promise (a shallow stack, as most awaits are); RSS is read from
 * /proc/self/statm before and while they are suspended.  The line's
 * ns_per_op is bytes per fiber, the baseline the default stack size (so
 * ratio = the fraction of a stack a suspended fiber keeps resident); the
 * map entries the fibers added (/proc/self/maps lines) are printed too. */
#define _GNU_SOURCE
#include <fut.h>
#include <unistd.h>

#include "fiber_bench.h"

static long resident_bytes(void)
{
    long size = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%ld %ld", &size, &res) != 2)
        abort();
    fclose(f);
    return res * sysconf(_SC_PAGESIZE);
}

static long map_entries(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    long n = 0;
    int c;
    if (!f)
        abort();
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static fut_result_t wait_on(void *arg)
{
    return fut_ok_i64(fut_await(arg, NULL));
}

int main(int argc, char **argv)
{
    long n = 100000;
    int runs = 1;
    if (parse_args(argc, argv, &n, &runs))
        return 2;
    fut_t **fs = malloc((size_t)n * sizeof *fs);
    if (!fs)
        abort();
    fut_promise_t *p;
    fut_t *pf = fut_promise_new(&p);
    long r0 = resident_bytes(), m0 = map_entries();
    for (long i = 0; i < n; i++)
        fs[i] = fut_fiber(fut_inline(), wait_on, pf, NULL);
    long r1 = resident_bytes(), m1 = map_entries();
    fut_promise_settle(p, fut_ok(NULL));
    for (long i = 0; i < n; i++)
        fut_release(fs[i]);
    fut_release(pf);
    free(fs);
    double per = (double)(r1 - r0) / (double)n;
    summary_t s = {per, per, per};
    summary_t b = {(double)FUT_FIBER_STACK_DEFAULT,
                   (double)FUT_FIBER_STACK_DEFAULT,
                   (double)FUT_FIBER_STACK_DEFAULT};
    fiber_line("rss", n, 1, "stack", s, b);
    printf("bench=fiber_maps n=%ld map_entries_added=%ld\n", n, m1 - m0);
    return 0;
}
