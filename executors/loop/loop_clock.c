/* libfut — the event loop's clock: callback timing for stall reports and
 * longest_callback (the coarse clock with a precise anchor, or TSC marks
 * calibrated against fut_now_ns), and the stall report itself.  Loop
 * thread only: every field it touches is loop-thread state (loop.c's
 * essay); the counters it bumps have that one writer. */
#include "loop_impl.h"

static void report_stall(struct loop *l, const void *fn, uint64_t ns)
{
    char msg[128];
    snprintf(msg, sizeof msg, "loop: callback %p ran %.1f ms (stall)", fn,
             (double)ns / 1e6);
    fut_log_event_t ev = {.level = FUT_LOG_WARN,
                          .kind = FUT_LOG_STALL,
                          .msg = msg,
                          .executor = "loop",
                          .fn = fn,
                          .duration_ns = ns};
    bump(&l->n_stalls, 1);
    if (l->log)
        l->log(l->log_ud, &ev);
    else
        fut_log_emit(&ev);
}

/* Timing every callback must be cheap: clock_gettime costs 36-43 ns here,
 * the TSC 13.  Where the TSC is invariant (x86-64, CPUID says so) marks are
 * TSC ticks, converted with a rate calibrated against fut_now_ns once 10 ms
 * have passed since the loop was made; before that, and elsewhere, marks
 * are fut_now_ns.  The kind of mark changes only in calibrate(), which runs
 * between batches (poll_io), so T0 and T1 of one measure always agree. */
#if defined(__x86_64__)
#include <cpuid.h>
#include <x86intrin.h>

static bool tsc_invariant(void)
{
    unsigned a, b, c, d;
    return __get_cpuid(0x80000007u, &a, &b, &c, &d) && (d & (1u << 8));
}

static uint64_t tsc_now(void)
{
    return __rdtsc();
}
#else
static bool tsc_invariant(void)
{
    return false;
}

static uint64_t tsc_now(void)
{
    return 0;
}
#endif

static void calibrate_start(struct loop *l)
{
    l->ns_per_tick = 0;
    l->cal_ok = tsc_invariant();
    l->cal_tsc = tsc_now();
    l->cal_ns = fut_now_ns();
}

void fut__loop_calibrate(struct loop *l)
{
    if (l->ns_per_tick > 0 || !l->cal_ok)
        return;
    uint64_t ns = fut_now_ns(), t = tsc_now();
    if (ns - l->cal_ns >= 10 * 1000 * 1000 && t > l->cal_tsc)
        l->ns_per_tick = (double)(ns - l->cal_ns) / (double)(t - l->cal_tsc);
}

static uint64_t mark(const struct loop *l)
{
    return l->ns_per_tick > 0 ? tsc_now() : fut_now_ns();
}

static void account(struct loop *l, const void *fn, uint64_t d, bool longest)
{
    /* Relaxed: a counter with one writer (this thread); loop_stats reads. */
    if (longest &&
        d > atomic_load_explicit(&l->n_longest, memory_order_relaxed))
        atomic_store_explicit(&l->n_longest, d, memory_order_relaxed);
    if (d > l->stall_ns)
        report_stall(l, fn, d);
}

/* Callback timing (stall reports, longest_callback).  A precise clock per
 * callback costs more than a small task does, so where the coarse clock's
 * tick is far below stall_ns (coarse_res != 0) callbacks are timed by it:
 * the loop keeps an anchor (AN_C, the coarse time; AN_T, the precise time
 * read in that tick), and reads the precise clock only when the coarse one
 * has moved.  Every callback that starts in the anchor's tick starts after
 * AN_T (begin re-anchors when a new tick began in between), so:
 *   - one that ends in the anchor's tick ran less than a tick: not a stall;
 *   - one that ends later is accounted now - AN_T: never short, and too
 *     long by less than one tick (the anchor tick's earlier callbacks).
 * A stall is never missed, its duration is never short, and a callback up
 * to a tick under stall_ns may be reported too.  longest_callback takes
 * such a bound only when the callback itself spanned two ticks (the bound
 * is then under twice the truth).  Without a usable coarse clock every
 * callback is timed by the precise mark (TSC or fut_now_ns), exactly. */
void fut__loop_time_begin(struct loop *l)
{
    if (!l->coarse_res) {
        l->an_t = mark(l);
        return;
    }
    uint64_t c = fut__coarse_now();
    if (c != l->an_c) {
        l->an_c = c;
        l->an_t = fut_now_ns();
    }
}

void fut__loop_time_slow(struct loop *l, const void *fn, uint64_t c)
{
    if (!l->coarse_res) {
        uint64_t t = mark(l), d = t - l->an_t;
        l->an_t = t;
        if (l->ns_per_tick > 0)
            d = (uint64_t)((double)d * l->ns_per_tick);
        account(l, fn, d, true);
        return;
    }
    uint64_t t = fut_now_ns(), d = t - l->an_t;
    bool longest = c - l->an_c >= 2 * l->coarse_res;
    l->an_c = c;
    l->an_t = t;
    account(l, fn, d, longest);
}

/* Whether callbacks may be timed by the coarse clock (fut__loop_time_begin):
 * its tick must be far below stall_ns.  The tick, or 0. */
static uint64_t coarse_usable(uint64_t stall_ns)
{
    struct timespec ts;
    if (clock_getres(CLOCK_MONOTONIC_COARSE, &ts) != 0 || ts.tv_sec ||
        (uint64_t)ts.tv_nsec * 8 > stall_ns)
        return 0;
    return ts.tv_nsec ? (uint64_t)ts.tv_nsec : 1;
}

void fut__loop_clock_init(struct loop *l)
{
    l->coarse_res = coarse_usable(l->stall_ns);
    l->an_c = UINT64_MAX; /* no anchor yet */
    calibrate_start(l);
}
