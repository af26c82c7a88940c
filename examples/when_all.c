/* when_all -- fan out, fan in.  Sixteen tasks each sum a slice of
 * 1..N on the pool at once; fut_all waits for every one of them (or the
 * first failure), and fut_input reads each slice's result.
 * Usage: when_all [--smoke]  (both do the same) */
#include <fut.h>

#include <stdio.h>

#define SLICES 16
#define N 4000000ull

static fut_result_t sum_slice(void *arg)
{
    uint64_t s = (uint64_t)(uintptr_t)arg, total = 0;
    for (uint64_t i = s * (N / SLICES) + 1; i <= (s + 1) * (N / SLICES); i++)
        total += i;
    return fut_ok_i64((int64_t)total);
}

int main(void)
{
    fut_executor_t *pool;
    if (fut_pool_create(&pool, NULL) != 0)
        return 1;
    fut_t *parts[SLICES];
    for (uintptr_t s = 0; s < SLICES; s++)
        parts[s] = fut_async(pool, sum_slice, (void *)s); /* all start now */
    fut_t *all = fut_all(parts, SLICES); /* consumes every part */
    int err = fut_await(all, NULL);
    uint64_t total = 0;
    for (size_t s = 0; !err && s < SLICES; s++)
        total += (uint64_t)fut_value_i64(fut_input(all, s)); /* borrowed */
    printf("sum 1..%llu = %llu in %d slices (%s; expected %llu)\n",
           (unsigned long long)N, (unsigned long long)total, SLICES,
           err ? fut_strerror(err) : "ok", N * (N + 1) / 2);
    fut_release(all);
    fut_executor_destroy(pool);
    return err || total != N * (N + 1) / 2;
}
