/* libfut — the bounded Chase–Lev deque: the out-of-line parts.  The
 * protocol and the hot operations (push, pop, steal) are in deque.h, inline,
 * because the pool calls them once or twice per task. */
#include "deque.h"

bool fut__deque_init(fut__deque_t *d, void **buf, size_t capacity)
{
    size_t i;

    if (capacity < 2 || (capacity & (capacity - 1)) != 0 || buf == NULL)
        return false;
    for (i = 0; i < capacity; i++)
        buf[i] = NULL;
    d->bottom = 0;
    d->top_cache = 0;
    d->top = 0;
    d->buf = buf;
    d->mask = capacity - 1;
    /* Publication to other threads is the creator's job (thread start). */
    return true;
}

size_t fut__deque_size(const fut__deque_t *d)
{
    /* Top first: with bottom read second, a concurrent steal can only make
     * the answer too large, never report a non-empty deque as empty.  Pairs
     * with the xchg in pop like a steal does. */
    uint64_t t = ck_pr_load_64((uint64_t *)&d->top);
    uint64_t b;

    FUT__STEAL_FENCE();
    b = ck_pr_load_64((uint64_t *)&d->bottom);
    return (int64_t)(b - t) > 0 ? (size_t)(b - t) : 0;
}
