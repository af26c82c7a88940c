/* Random DAGs of futures on an executor, checked against a sequential
 * oracle.  Shared by tests/test_pool.c (few seeds) and
 * tests/stress/pool_stress.c (many).  Header-only; no cmocka here: the
 * caller asserts on the returned count of mismatches.
 *
 * Node i of a DAG is one of
 *   leaf:    fut_async computing h(seed, i)
 *   chain:   fut_then on an earlier node j: v[j] * 3 + i
 *   fan-out: several later nodes use the same earlier node (falls out of
 *            random choices)
 *   fan-in:  fut_all of 2..4 earlier nodes, then a sum over fut_input
 *   nested:  a fut_async task that fut_waits on an earlier node inside
 *            the pool (a helping wait) and returns v[j] + i
 * all modulo a prime.
 *
 * A nested task only waits on a node that does not itself depend on a
 * nested task.  That is the rule every helping scheduler (Cilk, TBB, this
 * pool) needs: a waiting task stays on its worker's stack, so a task it
 * helps with (run on top of it) must not wait for the waiter's own result,
 * or neither can finish.  Fork-join code obeys it by construction. */
#ifndef POOL_DAG_H
#define POOL_DAG_H

#include <stdint.h>
#include <stdlib.h>

#include <fut.h>

#define DAG_MOD 1000000007ll
#define DAG_MAX 256

struct dag_nested {
    fut_t *dep; /* retained; released by dag_run after the wait */
    int64_t idx;
};

static uint64_t dag_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static fut_result_t dag_leaf(void *arg)
{
    return fut_ok_i64((int64_t)(intptr_t)arg);
}

static fut_result_t dag_chain(void *arg, fut_t *src)
{
    return fut_ok_i64((fut_value_i64(src) * 3 + (int64_t)(intptr_t)arg) %
                      DAG_MOD);
}

static fut_result_t dag_sum(void *arg, fut_t *src)
{
    int64_t s = (int64_t)(intptr_t)arg;
    fut_t *in;
    size_t k;

    for (k = 0; (in = fut_input(src, k)) != NULL; k++)
        s = (s + fut_value_i64(in)) % DAG_MOD;
    return fut_ok_i64(s);
}

static fut_result_t dag_nested_task(void *arg)
{
    struct dag_nested *n = arg;
    int rc = fut_wait(n->dep, -1);

    if (rc != 0)
        return fut_fail(rc);
    return fut_ok_i64((fut_value_i64(n->dep) + n->idx) % DAG_MOD);
}

/* Builds and waits a DAG of N (<= DAG_MAX) nodes from SEED on EX; returns
 * the number of nodes whose value differs from the oracle (or that did not
 * fulfil). */
static int dag_run(fut_executor_t *ex, uint64_t seed, int n)
{
    fut_t *node[DAG_MAX];
    int64_t oracle[DAG_MAX];
    struct dag_nested nested[DAG_MAX];
    unsigned char tainted[DAG_MAX]; /* depends on a nested task */
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    int i, bad = 0;

    for (i = 0; i < n; i++) {
        unsigned kind = i < 2 ? 0 : (unsigned)(dag_rand(&s) % 4);
        int j = i > 0 ? (int)(dag_rand(&s) % (uint64_t)i) : 0;

        nested[i].dep = NULL;
        tainted[i] = 0;
        if (kind == 3 && tainted[j]) {
            int k;

            for (k = j; k >= 0 && tainted[k]; k--)
                ;
            if (k < 0)
                kind = 0; /* nothing safe to wait on: a leaf instead */
            else
                j = k;
        }
        if (kind == 0) {
            int64_t v = (int64_t)((seed * 31 + (uint64_t)i * 7) % 1000);

            oracle[i] = v;
            node[i] = fut_async(ex, dag_leaf, (void *)(intptr_t)v);
        } else if (kind == 1) {
            oracle[i] = (oracle[j] * 3 + i) % DAG_MOD;
            tainted[i] = tainted[j];
            node[i] = fut_then(fut_retain(node[j]), ex, dag_chain,
                               (void *)(intptr_t)i);
        } else if (kind == 2) {
            fut_t *in[4];
            int k, m = 2 + (int)(dag_rand(&s) % 3);
            int64_t sum = i;

            for (k = 0; k < m; k++) {
                int jj = (int)(dag_rand(&s) % (uint64_t)i);

                in[k] = fut_retain(node[jj]);
                tainted[i] |= tainted[jj];
                sum = (sum + oracle[jj]) % DAG_MOD;
            }
            oracle[i] = sum;
            node[i] = fut_then(fut_all(in, (size_t)m), ex, dag_sum,
                               (void *)(intptr_t)i);
        } else {
            oracle[i] = (oracle[j] + i) % DAG_MOD;
            tainted[i] = 1;
            nested[i].dep = fut_retain(node[j]);
            nested[i].idx = i;
            node[i] = fut_async(ex, dag_nested_task, &nested[i]);
        }
    }
    for (i = n - 1; i >= 0; i--) {
        if (fut_wait(node[i], -1) != 0 || fut_state(node[i]) != FUT_FULFILLED ||
            fut_value_i64(node[i]) != oracle[i])
            bad++;
    }
    for (i = 0; i < n; i++) {
        fut_release(node[i]);
        fut_release(nested[i].dep);
    }
    return bad;
}

#endif
