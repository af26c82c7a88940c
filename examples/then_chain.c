/* then_chain -- one chain, three outcomes.  fut_then runs only on success,
 * so a failure skips the rest of the chain and lands in fut_catch, which
 * may recover; fut_finally runs whatever happened.  Each stage names where
 * it runs: here parsing and squaring on a pool, the rest inline.
 * Usage: then_chain [--smoke]  (both do the same) */
#include <fut.h>

#include <stdio.h>
#include <stdlib.h>

static fut_result_t parse(void *arg)
{
    char *end;
    long v = strtol(arg, &end, 10);
    return *end || end == arg ? fut_fail(FUT_EINVAL) : fut_ok_i64(v);
}

static fut_result_t square(void *arg, fut_t *src)
{
    (void)arg;
    int64_t v = fut_value_i64(src);
    return v > 3037000499 ? fut_fail(-ERANGE) : fut_ok_i64(v * v);
}

static fut_result_t zero_if_invalid(void *arg, fut_t *src)
{
    (void)arg; /* recover from bad input only; other errors pass on */
    return fut_error(src) == FUT_EINVAL ? fut_ok_i64(0) : fut_forward(src);
}

static fut_result_t report(void *arg, fut_t *src)
{
    if (fut_state(src) == FUT_FULFILLED)
        printf("%-12s -> %lld\n", (char *)arg, (long long)fut_value_i64(src));
    else
        printf("%-12s -> error: %s\n", (char *)arg,
               fut_strerror(fut_error(src)));
    return fut_forward(src);
}

int main(void)
{
    fut_executor_t *pool;
    if (fut_pool_create(&pool, NULL) != 0)
        return 1;
    char *inputs[] = {"12", "twelve", "9999999999"};
    int64_t expect[] = {144, 0, -ERANGE};
    int bad = 0;
    for (int i = 0; i < 3; i++) {
        fut_t *f = fut_async(pool, parse, inputs[i]);
        f = fut_then(f, pool, square, NULL);
        f = fut_catch(f, fut_inline(), zero_if_invalid, NULL);
        f = fut_finally(f, fut_inline(), report, inputs[i]);
        int err = fut_await(f, NULL);
        bad += err ? err != expect[i] : fut_value_i64(f) != expect[i];
        fut_release(f);
    }
    fut_executor_destroy(pool);
    return bad != 0;
}
