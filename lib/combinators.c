/* libfut — combinators: fut_all, fut_all_settled, fut_any, fut_race.
 *
 * A combined future C owns one record: its inputs (C holds a reference on
 * each until C goes) and one node per input, hung on that input's list.
 * Each node holds a reference on C, so C lives until every input has
 * settled and fired its node, whatever happens to the application's handle.
 *
 * Deciding the outcome: `remaining` counts inputs not yet settled (for all,
 * all_settled and any's rejections); the input that takes it to zero settles
 * C.  Inputs that decide early (all's first rejection, any's first
 * fulfilment, race's first settlement) settle C with fut__settle_like, which
 * claims C first, so when several inputs race exactly one outcome is
 * written and the rest find C settled.
 *
 * Cancellation (cancel.c): the input that decides early and wins also
 * cancels the inputs nothing else observes (all's first rejection: the
 * pending ones; any's and race's winner: the losers), and cancelling C
 * cancels every such input.  C's record stays alive while C is, so the
 * inputs can be looked at from any thread that holds C. */
#include <string.h>

#include "internal.h"

enum comb_mode { CM_ALL, CM_ALL_SETTLED, CM_ANY, CM_RACE };

struct comb_node {
    fut_cont_t cont;
    struct fut_comb *comb;
};

struct fut_comb {
    _Atomic size_t remaining;
    size_t n;
    size_t bytes;
    enum comb_mode mode;
    fut_t *self;
    fut_t **inputs;           /* points into this block */
    struct comb_node nodes[]; /* n nodes, then n input pointers */
};

void fut__comb_cancel_inputs(fut_t *f, const fut_t *skip)
{
    struct fut_comb *comb = f->u.comb;
    if (!comb) /* its record could not be allocated */
        return;
    for (size_t i = 0; i < comb->n; i++)
        if (comb->inputs[i] != skip)
            fut__cancel_unobserved(comb->inputs[i], &comb->nodes[i].cont);
}

/* Each pending input's node is unfired and holds a reference on F (read
 * after F's count: an input seen pending had not fired its node then). */
uint32_t fut__comb_holds(const fut_t *f)
{
    const struct fut_comb *comb = f->u.comb;
    uint32_t n = 0;
    for (size_t i = 0; comb && i < comb->n; i++)
        n += !fut__closed(comb->inputs[i]);
    return n;
}

static void comb_fire(fut_cont_t *c, fut_t *src)
{
    struct comb_node *node = FUT__CONTAINER(c, struct comb_node, cont);
    struct fut_comb *comb = node->comb;
    fut_t *self = comb->self;
    bool ok = fut_state(src) == FUT_FULFILLED;
    switch (comb->mode) {
    case CM_ALL:
        if (!ok) {
            if (fut__settle_like(self, src))
                fut__comb_cancel_inputs(self, src);
        }
        /* acq_rel: the last decrement sees every input settled. */
        else if (atomic_fetch_sub_explicit(&comb->remaining, 1,
                                           memory_order_acq_rel) == 1)
            fut__settle_err(self, FUT_FULFILLED, 0);
        break;
    case CM_ALL_SETTLED:
        if (atomic_fetch_sub_explicit(&comb->remaining, 1,
                                      memory_order_acq_rel) == 1)
            fut__settle_err(self, FUT_FULFILLED, 0);
        break;
    case CM_ANY:
        if (ok) {
            if (fut__settle_like(self, src))
                fut__comb_cancel_inputs(self, src);
        } else if (atomic_fetch_sub_explicit(&comb->remaining, 1,
                                             memory_order_acq_rel) == 1) {
            fut__settle_like(self, src);
        }
        break;
    case CM_RACE:
        if (fut__settle_like(self, src))
            fut__comb_cancel_inputs(self, src);
        break;
    }
    fut_release(self); /* the node's reference */
}

static fut_t *combine(fut_t *const *fs, size_t n, enum comb_mode mode)
{
    size_t each = sizeof(struct comb_node) + sizeof(fut_t *);
    /* The size before the array: no real array is that long (one reference
     * on the result per node; the record's size must not overflow), so FS
     * is not read at all and nothing is consumed. */
    if ((n > 0 && !fs) || n > (SIZE_MAX - sizeof(struct fut_comb)) / each ||
        n >= UINT32_MAX)
        return fut__rejected(FUT_EINVAL);
    bool bad = false;
    for (size_t i = 0; i < n; i++)
        bad |= fs[i] == NULL;
    if (bad || (n == 0 && (mode == CM_ANY || mode == CM_RACE))) {
        for (size_t i = 0; i < n; i++)
            fut_release(fs[i]);
        return fut__rejected(FUT_EINVAL);
    }
    if (n == 0)
        return fut_ready(fut_ok(NULL));

    size_t bytes = sizeof(struct fut_comb) + n * each;
    fut_t *self = fut__new(FK_COMBINE, (uint32_t)1);
    struct fut_comb *comb = self ? fut__alloc(bytes) : NULL;
    if (!comb) {
        fut_release(self);
        for (size_t i = 0; i < n; i++)
            fut_release(fs[i]);
        return fut__rejected(FUT_ENOMEM);
    }
    atomic_init(&comb->remaining, n);
    comb->n = n;
    comb->bytes = bytes;
    comb->mode = mode;
    comb->self = self;
    comb->inputs = (fut_t **)(void *)&comb->nodes[n];
    memcpy(comb->inputs, fs, n * sizeof *fs); /* the callers' references */
    self->u.comb = comb;
    /* One reference per node, taken before any node can fire. */
    atomic_fetch_add_explicit(&self->refs, (uint32_t)n, memory_order_relaxed);
    for (size_t i = 0; i < n; i++) {
        comb->nodes[i].comb = comb;
        comb->nodes[i].cont.fire = comb_fire;
        fut__attach(comb->inputs[i], &comb->nodes[i].cont);
    }
    return self;
}

void fut__comb_destroy(fut_t *f)
{
    struct fut_comb *comb = f->u.comb;
    if (!comb) /* its record could not be allocated */
        return;
    for (size_t i = 0; i < comb->n; i++)
        fut_release(comb->inputs[i]);
    fut__free(comb, comb->bytes);
}

fut_t *fut_all(fut_t *const *fs, size_t n)
{
    return combine(fs, n, CM_ALL);
}

fut_t *fut_all_settled(fut_t *const *fs, size_t n)
{
    return combine(fs, n, CM_ALL_SETTLED);
}

fut_t *fut_any(fut_t *const *fs, size_t n)
{
    return combine(fs, n, CM_ANY);
}

fut_t *fut_race(fut_t *const *fs, size_t n)
{
    return combine(fs, n, CM_RACE);
}

fut_t *fut_input(const fut_t *combined, size_t i)
{
    if (!combined || combined->kind != FK_COMBINE)
        return NULL;
    const struct fut_comb *comb = combined->u.comb;
    return i < comb->n ? comb->inputs[i] : NULL;
}
