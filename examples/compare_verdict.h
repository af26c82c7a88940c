/* compare_verdict.h -- fut-compare's verdicts: which executors one run can
 * tell apart, and the sentence that says so.  Apart from compare.c so that
 * tests/test_compare.c checks them directly.  Static functions only (every
 * examples/NAME.c is its own program); needs only the C library.
 *
 * A run gives each executor R wall times, measured in interleaved rounds;
 * their median is the figure, [min, max] its spread.  Two executors whose
 * spreads overlap (ends included) are "the same within noise": the run
 * cannot tell them apart, so the verdict does not rank them.  One
 * workload's verdict, against a baseline entry (inline):
 *
 *   1. every executor whose spread overlaps the baseline's is in the
 *      baseline's tier: "the same as inline within noise";
 *   2. the others, best median first (or in the order given), form tiers:
 *      each opens a tier that the following ones join as long as their
 *      spread overlaps the spread of the tier's first (so a tier never
 *      holds two executors that the run tells apart from each other's
 *      leader, and a slow chain of overlaps cannot merge everything);
 *   3. the text lists the tiers in that order, the baseline's tier where a
 *      ratio of 1 falls (or, in the order given, where its first member
 *      is), each executor with its median speed-up over the baseline:
 *
 *   CPU-bound: loop+pool 2.0x faster than inline (2 workers) and pool 1.9x
 *   (2 workers), the same within noise; loop 1.0x, the same as inline
 *   within noise
 */
#ifndef COMPARE_VERDICT_H
#define COMPARE_VERDICT_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* At most this many entries per verdict. */
#define CMP_MAX 16

/* One executor's figures for one workload.  NAME and NOTE are borrowed. */
typedef struct cmp_entry {
    const char *name;
    double min, median, max; /* wall time over the runs, ms */
    const char *note;        /* after its ratio, e.g. " (2 workers)"; or NULL */
} cmp_entry_t;

/* The ranking of one verdict: entries in text order, each with its tier;
 * tiers are contiguous in ORDER and numbered from 0 in that order. */
typedef struct cmp_tiers {
    int n;              /* entries in ORDER: every entry, baseline included */
    int order[CMP_MAX]; /* entry indices */
    int tier[CMP_MAX];  /* tier of order[i] */
    int ntiers;
    int base_tier; /* the baseline's tier; the baseline is its first */
} cmp_tiers_t;

/* True if the spreads of A and B overlap, ends included. */
static inline bool cmp_overlap(const cmp_entry_t *a, const cmp_entry_t *b)
{
    return a->min <= b->max && b->min <= a->max;
}

/* E's median speed-up over BASE (> 1: E is faster); 0 if E has no time. */
static inline double cmp_speedup(const cmp_entry_t *base, const cmp_entry_t *e)
{
    return e->median > 0 ? base->median / e->median : 0;
}

/* "117x", "2.0x", "0.50x". */
static inline const char *cmp_fmt_ratio(char *buf, size_t len, double r)
{
    snprintf(buf, len, r >= 10 ? "%.0fx" : r >= 0.995 ? "%.1fx" : "%.2fx", r);
    return buf;
}

/* Splits SEQ[0..N) into tiers: each entry opens a tier that the following
 * ones join while their spread overlaps its own.  FIRST[t] is the index in
 * SEQ where tier t starts; returns the number of tiers. */
static inline int cmp_split(const cmp_entry_t *e, const int *seq, int n,
                            int *first)
{
    int t = 0;
    for (int i = 0; i < n; i++)
        if (t == 0 || !cmp_overlap(&e[seq[first[t - 1]]], &e[seq[i]]))
            first[t++] = i;
    first[t] = n;
    return t;
}

/* Ranks the N entries of E (N <= CMP_MAX) against E[BASE] as the file's
 * comment says: BY_SPEED orders by median, fastest first (ties keep the
 * given order); otherwise the given order is kept. */
static inline void cmp_rank(const cmp_entry_t *e, int n, int base,
                            bool by_speed, cmp_tiers_t *out)
{
    int seq[CMP_MAX], m = 0, rest[CMP_MAX], r = 0, first[CMP_MAX + 1];
    memset(out, 0, sizeof *out);
    for (int i = 0; i < n && i < CMP_MAX; i++)
        if (i != base)
            seq[m++] = i;
    for (int i = 1; by_speed && i < m; i++) /* insertion sort: stable */
        for (int j = i; j > 0 && e[seq[j]].median < e[seq[j - 1]].median; j--) {
            int t = seq[j];
            seq[j] = seq[j - 1];
            seq[j - 1] = t;
        }
    /* Where the baseline's tier goes among the others: P tiers before it. */
    int before = m; /* in the given order: its first member's place in SEQ */
    for (int i = 0; i < m; i++)
        if (cmp_overlap(&e[base], &e[seq[i]]) && before == m)
            before = i;
    for (int i = 0; i < m; i++)
        if (!cmp_overlap(&e[base], &e[seq[i]]))
            rest[r++] = i; /* indices into SEQ, for BEFORE's sake */
    int idx[CMP_MAX];
    for (int i = 0; i < r; i++)
        idx[i] = seq[rest[i]];
    int nt = cmp_split(e, idx, r, first), p = 0;
    while (p < nt && (by_speed ? e[idx[first[p]]].median <= e[base].median
                               : rest[first[p]] < before))
        p++;
    for (int t = 0; t <= nt; t++) {
        if (t == p) { /* the baseline, then the entries overlapping it */
            out->base_tier = out->ntiers;
            out->order[out->n] = base;
            out->tier[out->n++] = out->ntiers;
            for (int i = 0; i < m; i++)
                if (cmp_overlap(&e[base], &e[seq[i]])) {
                    out->order[out->n] = seq[i];
                    out->tier[out->n++] = out->ntiers;
                }
            out->ntiers++;
        }
        for (int i = t < nt ? first[t] : 0; t < nt && i < first[t + 1]; i++) {
            out->order[out->n] = idx[i];
            out->tier[out->n++] = out->ntiers;
        }
        out->ntiers += t < nt;
    }
}

/* Writes the verdict "TITLE: ..." of the N entries of E against E[BASE]
 * into OUT (LEN bytes, always terminated), ranked as cmp_rank does.
 * Returns the length the whole text needs (as snprintf). */
static inline size_t cmp_verdict(char *out, size_t len, const char *title,
                                 const cmp_entry_t *e, int n, int base,
                                 bool by_speed)
{
    cmp_tiers_t t;
    char rb[32];
    size_t k = 0;
#define CMP_PUT(...)                                                           \
    k += (size_t)snprintf(out + (k < len ? k : len), k < len ? len - k : 0,    \
                          __VA_ARGS__)
    if (len)
        out[0] = '\0';
    CMP_PUT("%s:", title);
    cmp_rank(e, n, base, by_speed, &t);
    if (t.n == 1)
        CMP_PUT(" %s only, %.1f ms", e[base].name, e[base].median);
    bool compared = false; /* "faster than BASE" said once, on the first */
    for (int i = 0, printed = 0; i < t.n; i++) {
        int x = t.order[i];
        if (x == base)
            continue;
        bool opens =
            i == 0 || t.tier[i - 1] != t.tier[i] || t.order[i - 1] == base;
        bool last = i + 1 == t.n || t.tier[i + 1] != t.tier[i];
        double r = cmp_speedup(&e[base], &e[x]);
        CMP_PUT("%s %s",
                !opens    ? (last ? " and" : ",")
                : printed ? ";"
                          : "",
                e[x].name);
        CMP_PUT(" %s", cmp_fmt_ratio(rb, sizeof rb, r));
        if (!compared && t.tier[i] != t.base_tier) {
            CMP_PUT(r >= 1 ? " faster than %s" : " the speed of %s",
                    e[base].name);
            compared = true;
        }
        CMP_PUT("%s", e[x].note ? e[x].note : "");
        int members = 0;
        for (int j = 0; j < t.n; j++)
            members += t.tier[j] == t.tier[i] && t.order[j] != base;
        if (last && t.tier[i] == t.base_tier)
            CMP_PUT(", the same as %s within noise", e[base].name);
        else if (last && members > 1)
            CMP_PUT(", the same within noise");
        printed++;
    }
#undef CMP_PUT
    return k;
}

#endif
