/* fut-compare, checked two ways.
 *
 * Its verdict rules (examples/compare_verdict.h) directly: which executors
 * a run tells apart (spreads that overlap are the same within noise), the
 * ranking and the sentence, on made-up figures.
 *
 * Its output from outside: the test runs the built fut-compare
 * (build/<variant>/examples/fut-compare, found from this binary's own path)
 * with tiny sizes under every executor, parses the JSON it writes with a
 * small parser of its own, and checks the structure and that each
 * workload's checksum is the same under every executor.  No timing is
 * asserted: the figures only have to be there and be consistent. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "compare_verdict.h"

#include <ctype.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- a minimal JSON parser: enough for fut-compare's output ------------- */

enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

typedef struct jv {
    enum jtype type;
    double num;
    char *str;         /* J_STR */
    char **keys;       /* J_OBJ: keys[i] names items[i] */
    struct jv **items; /* J_ARR, J_OBJ */
    size_t n;
} jv_t;

static void jfree(jv_t *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->n; i++) {
        jfree(v->items[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
    free(v);
}

static void skip_ws(const char **p)
{
    while (isspace((unsigned char)**p))
        (*p)++;
}

static char *parse_str(const char **p)
{
    if (**p != '"')
        return NULL;
    const char *s = ++*p;
    while (**p && **p != '"')
        *p += **p == '\\' && (*p)[1] ? 2 : 1;
    if (**p != '"')
        return NULL;
    char *out = strndup(s, (size_t)(*p - s));
    (*p)++;
    return out;
}

static jv_t *parse_value(const char **p, int depth);

/* Parses the items of an array (KEYED false) or object; *P is past the
 * opening bracket. */
static bool parse_items(const char **p, jv_t *v, bool keyed, int depth)
{
    char close = keyed ? '}' : ']';
    skip_ws(p);
    if (**p == close) {
        (*p)++;
        return true;
    }
    for (;;) {
        char *key = NULL;
        skip_ws(p);
        if (keyed) {
            if (!(key = parse_str(p)))
                return false;
            skip_ws(p);
            if (*(*p)++ != ':') {
                free(key);
                return false;
            }
        }
        jv_t *item = parse_value(p, depth + 1);
        v->items = realloc(v->items, (v->n + 1) * sizeof *v->items);
        if (keyed)
            v->keys = realloc(v->keys, (v->n + 1) * sizeof *v->keys);
        if (!item || !v->items || (keyed && !v->keys)) {
            free(key);
            jfree(item);
            return false;
        }
        if (keyed)
            v->keys[v->n] = key;
        v->items[v->n++] = item;
        skip_ws(p);
        if (**p == ',') {
            (*p)++;
            continue;
        }
        return *(*p)++ == close;
    }
}

static jv_t *parse_value(const char **p, int depth)
{
    jv_t *v = calloc(1, sizeof *v);
    if (!v || depth > 32)
        goto bad;
    skip_ws(p);
    char c = **p;
    if (c == '{' || c == '[') {
        (*p)++;
        v->type = c == '{' ? J_OBJ : J_ARR;
        if (!parse_items(p, v, c == '{', depth))
            goto bad;
    } else if (c == '"') {
        v->type = J_STR;
        if (!(v->str = parse_str(p)))
            goto bad;
    } else if (strncmp(*p, "true", 4) == 0 || strncmp(*p, "false", 5) == 0) {
        v->type = J_BOOL;
        v->num = c == 't';
        *p += c == 't' ? 4 : 5;
    } else if (strncmp(*p, "null", 4) == 0) {
        *p += 4;
    } else {
        char *end;
        v->type = J_NUM;
        v->num = strtod(*p, &end);
        if (end == *p)
            goto bad;
        *p = end;
    }
    return v;
bad:
    jfree(v);
    return NULL;
}

static jv_t *json_parse(const char *text)
{
    const char *p = text;
    jv_t *v = parse_value(&p, 0);
    skip_ws(&p);
    if (v && *p) {
        jfree(v);
        return NULL;
    }
    return v;
}

/* The member KEY of object V with type T, or NULL. */
static const jv_t *jget(const jv_t *v, const char *key, enum jtype t)
{
    for (size_t i = 0; v && v->type == J_OBJ && i < v->n; i++)
        if (strcmp(v->keys[i], key) == 0)
            return v->items[i]->type == t ? v->items[i] : NULL;
    return NULL;
}

/* ---- running fut-compare ----------------------------------------------- */

static char compare_path[PATH_MAX + 32];

/* build/<variant>/tests/test_compare -> build/<variant>/examples/fut-compare */
static int find_compare(void **state)
{
    (void)state;
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return -1;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (!slash)
        return -1;
    *slash = '\0'; /* .../tests */
    snprintf(compare_path, sizeof compare_path, "%s/../examples/fut-compare",
             self);
    return access(compare_path, X_OK);
}

static char last_json[64];        /* the --json file of the last run */
static char last_stdout[1 << 16]; /* what the last run printed */

/* Reads the file PATH into BUF (LEN bytes, terminated). */
static void slurp(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, len - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
}

/* Runs fut-compare with ARGS (NULL-terminated) plus --json to a temporary
 * file, its standard output into LAST_STDOUT; returns its exit status and,
 * if JSON is not NULL, the parsed file. */
static int run_compare(const char *const *args, jv_t **json)
{
    char out[] = "/tmp/fut-compare-out-XXXXXX";
    snprintf(last_json, sizeof last_json, "/tmp/fut-compare-test-XXXXXX");
    int fd = mkstemp(last_json), ofd = mkstemp(out);
    assert_true(fd >= 0);
    assert_true(ofd >= 0);
    close(fd);
    const char *argv[32] = {compare_path};
    int argc = 1;
    for (; args[argc - 1]; argc++)
        argv[argc] = args[argc - 1];
    argv[argc++] = "--json";
    argv[argc++] = last_json;
    argv[argc] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (dup2(ofd, 1) == 1)
            execv(compare_path, (char *const *)argv);
        _exit(127);
    }
    close(ofd);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    slurp(out, last_stdout, sizeof last_stdout);
    unlink(out);
    if (json) {
        static char text[1 << 20];
        slurp(last_json, text, sizeof text);
        *json = json_parse(text);
    }
    unlink(last_json);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

#define TINY                                                                   \
    "--requests", "6", "--latency-ms", "2", "--chunks", "3", "--chunk-kib",    \
        "16", "--mixed-requests", "3", "--pitfall-requests", "2", "--runs",    \
        "1", "--stall-ms", "1"

static const char *const workloads[] = {"io", "cpu", "mixed", "pitfall"};
/* The executor models fut-compare has, from its JSON's "executors" (so a
 * model added to compare.c is checked here without a change): inline, pool,
 * loop, loop+pool, and whatever comes after them. */
static char executors[16][32];
static size_t nexec;

static void learn_executors(void);

/* The cell (WORKLOAD, EXECUTOR) of RESULTS, or NULL. */
static const jv_t *find_cell(const jv_t *results, const char *w, const char *e)
{
    for (size_t i = 0; i < results->n; i++) {
        const jv_t *wl = jget(results->items[i], "workload", J_STR);
        const jv_t *ex = jget(results->items[i], "executor", J_STR);
        if (wl && ex && strcmp(wl->str, w) == 0 && strcmp(ex->str, e) == 0)
            return results->items[i];
    }
    return NULL;
}

static void learn_executors(void)
{
    static const char *const known[] = {"inline", "pool", "loop", "loop+pool"};
    if (nexec)
        return;
    const char *const args[] = {TINY, "--workloads", "cpu", NULL};
    jv_t *j;
    assert_int_equal(run_compare(args, &j), 0);
    const jv_t *ex = jget(j, "executors", J_ARR);
    assert_non_null(ex);
    assert_true(ex->n >= 4 && ex->n <= 16);
    for (size_t e = 0; e < ex->n; e++) {
        assert_int_equal(ex->items[e]->type, J_STR);
        snprintf(executors[e], sizeof executors[e], "%s", ex->items[e]->str);
        if (e < 4)
            assert_string_equal(executors[e], known[e]);
    }
    nexec = ex->n;
    jfree(j);
}

static void check_cell(const jv_t *c)
{
    static const char *const numbers[] = {"items",       "runs",   "wall_ms",
                                          "items_per_s", "cpu_ms", "stalls",
                                          "speedup"};
    for (size_t i = 0; i < sizeof numbers / sizeof *numbers; i++) {
        const jv_t *v = jget(c, numbers[i], J_NUM);
        assert_non_null(v);
        assert_true(v->num >= 0);
    }
    assert_true(jget(c, "items", J_NUM)->num >= 1);
    assert_int_equal(jget(c, "runs", J_NUM)->num, 1);
    const jv_t *sum = jget(c, "checksum", J_STR);
    assert_non_null(sum);
    assert_int_equal(strlen(sum->str), 16);
    assert_int_equal(strspn(sum->str, "0123456789abcdef"), 16);
    const jv_t *runs = jget(c, "wall_ms_runs", J_ARR);
    assert_non_null(runs);
    assert_int_equal(runs->n, 1);
    assert_non_null(jget(c, "cpu_ms_runs", J_ARR));
}

static void test_compare_json_has_every_cell_and_checksums_agree(void **s)
{
    (void)s;
    learn_executors();
    const char *const args[] = {TINY, NULL};
    jv_t *j;
    assert_int_equal(run_compare(args, &j), 0);
    assert_non_null(j);
    assert_int_equal(j->type, J_OBJ);
    const jv_t *prog = jget(j, "program", J_STR);
    assert_non_null(prog);
    assert_string_equal(prog->str, "fut-compare");
    const jv_t *cfg = jget(j, "config", J_OBJ);
    assert_non_null(cfg);
    assert_int_equal(jget(cfg, "requests", J_NUM)->num, 6);
    const jv_t *results = jget(j, "results", J_ARR);
    assert_non_null(results);
    assert_int_equal(results->n, 4 * nexec);
    for (size_t w = 0; w < 4; w++) {
        const jv_t *first = find_cell(results, workloads[w], "inline");
        assert_non_null(first);
        for (size_t e = 0; e < nexec; e++) {
            const jv_t *c = find_cell(results, workloads[w], executors[e]);
            assert_non_null(c);
            check_cell(c);
            assert_string_equal(jget(c, "checksum", J_STR)->str,
                                jget(first, "checksum", J_STR)->str);
        }
    }
    const jv_t *verdicts = jget(j, "verdicts", J_ARR);
    assert_non_null(verdicts);
    assert_int_equal(verdicts->n, 4);
    for (size_t i = 0; i < verdicts->n; i++) {
        assert_non_null(jget(verdicts->items[i], "text", J_STR));
        const jv_t *agree = jget(verdicts->items[i], "checksums_agree", J_BOOL);
        assert_non_null(agree);
        assert_true(agree->num == 1);
    }
    jfree(j);
}

/* Each executor alone gives the checksums of the run with all four. */
static void test_compare_each_executor_alone_gives_the_same_checksums(void **s)
{
    (void)s;
    learn_executors();
    const char *const all[] = {TINY, "--executors", "inline", NULL};
    jv_t *ref;
    assert_int_equal(run_compare(all, &ref), 0);
    assert_non_null(ref);
    const jv_t *rres = jget(ref, "results", J_ARR);
    assert_non_null(rres);
    for (size_t e = 1; e < nexec; e++) {
        const char *const one[] = {TINY, "--executors", executors[e], NULL};
        jv_t *j;
        assert_int_equal(run_compare(one, &j), 0);
        assert_non_null(j);
        const jv_t *res = jget(j, "results", J_ARR);
        assert_non_null(res);
        assert_int_equal(res->n, 4); /* one executor, four workloads */
        for (size_t w = 0; w < 4; w++) {
            const jv_t *c = find_cell(res, workloads[w], executors[e]);
            const jv_t *r = find_cell(rres, workloads[w], "inline");
            assert_non_null(c);
            assert_non_null(r);
            assert_string_equal(jget(c, "checksum", J_STR)->str,
                                jget(r, "checksum", J_STR)->str);
        }
        jfree(j);
    }
    jfree(ref);
}

static void test_compare_workload_filter_and_bad_options(void **s)
{
    (void)s;
    learn_executors();
    const char *const io[] = {TINY, "--workloads", "io,cpu", NULL};
    jv_t *j;
    assert_int_equal(run_compare(io, &j), 0);
    assert_non_null(j);
    const jv_t *res = jget(j, "results", J_ARR);
    assert_non_null(res);
    assert_int_equal(res->n, 2 * nexec);
    assert_null(find_cell(res, "mixed", "inline"));
    jfree(j);

    const char *const bad[] = {TINY, "--executors", "threads", NULL};
    assert_int_equal(run_compare(bad, NULL), 2);
    const char *const zero[] = {TINY, "--runs", "0", NULL};
    assert_int_equal(run_compare(zero, NULL), 2);
    const char *const many[] = {TINY, "--runs", "16", NULL};
    assert_int_equal(run_compare(many, NULL), 2);
}

static void test_json_parser_rejects_malformed_text(void **s)
{
    (void)s;
    static const char *const bad[] = {"{",   "[1,]", "{\"a\" 1}",
                                      "\"x", "{} x", "[1 2]"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_null(json_parse(bad[i]));
    jv_t *ok = json_parse(" {\"a\": [1, -2.5e3, \"s\\\"\", true, null]} ");
    assert_non_null(ok);
    assert_int_equal(jget(ok, "a", J_ARR)->n, 5);
    jfree(ok);
}

/* -------------------------------------------------------------------------- */

static const cmp_entry_t inline_cpu = {"inline", 150, 158, 160, NULL};

static void test_spreads_touching_at_an_end_overlap(void **s)
{
    (void)s;
    const cmp_entry_t a = {"a", 1, 2, 3, NULL}, b = {"b", 3, 4, 5, NULL},
                      c = {"c", 3.01, 4, 5, NULL};
    assert_true(cmp_overlap(&a, &b));
    assert_true(cmp_overlap(&b, &a));
    assert_false(cmp_overlap(&a, &c));
    assert_false(cmp_overlap(&c, &a));
}

static void
test_verdict_calls_overlapping_executors_the_same_within_noise(void **s)
{
    (void)s;
    const cmp_entry_t e[] = {inline_cpu,
                             {"pool", 80, 84, 90, " (2 workers)"},
                             {"loop+pool", 78, 80, 85, " (2 workers)"}};
    char v[256];
    cmp_verdict(v, sizeof v, "CPU-bound", e, 3, 0, true);
    assert_string_equal(v, "CPU-bound: loop+pool 2.0x faster than inline "
                           "(2 workers) and pool 1.9x (2 workers), the same "
                           "within noise");
    cmp_tiers_t t;
    cmp_rank(e, 3, 0, true, &t);
    assert_int_equal(t.ntiers, 2);
    assert_int_equal(t.tier[0], t.tier[1]); /* loop+pool, pool */
}

static void test_verdict_ranks_executors_whose_spreads_are_apart(void **s)
{
    (void)s;
    const cmp_entry_t e[] = {{"inline", 4000, 4100, 4200, NULL},
                             {"pool", 2000, 2050, 2100, NULL},
                             {"loop", 40, 42, 45, NULL}};
    char v[256];
    cmp_verdict(v, sizeof v, "I/O-bound", e, 3, 0, true);
    assert_string_equal(v, "I/O-bound: loop 98x faster than inline; pool 2.0x");
}

static void test_verdict_puts_an_overlap_with_the_baseline_in_its_tier(void **s)
{
    (void)s;
    const cmp_entry_t e[] = {inline_cpu, {"loop", 149, 156, 170, NULL}};
    char v[256];
    cmp_verdict(v, sizeof v, "CPU-bound", e, 2, 0, true);
    assert_string_equal(
        v, "CPU-bound: loop 1.0x, the same as inline within noise");
    cmp_tiers_t t;
    cmp_rank(e, 2, 0, true, &t);
    assert_int_equal(t.ntiers, 1);
    assert_int_equal(t.base_tier, 0);
}

/* c overlaps b, d overlaps c but not b, the tier's first: d is apart. */
static void test_verdict_tier_holds_only_overlaps_with_its_first(void **s)
{
    (void)s;
    const cmp_entry_t e[] = {{"inline", 100, 100, 100, NULL},
                             {"d", 13, 14, 15, NULL},
                             {"c", 11.5, 12, 13.5, NULL},
                             {"b", 10, 11, 12, NULL}};
    char v[256];
    cmp_verdict(v, sizeof v, "X", e, 4, 0, true);
    assert_string_equal(v, "X: b 9.1x faster than inline and c 8.3x, the same "
                           "within noise; d 7.1x");
    cmp_tiers_t t;
    cmp_rank(e, 4, 0, true, &t);
    assert_int_equal(t.ntiers, 3);
    assert_int_equal(t.base_tier, 2); /* slower than all: last */
    assert_int_equal(t.order[3], 0);
}

static void test_verdict_says_an_executor_is_slower_than_the_baseline(void **s)
{
    (void)s;
    const cmp_entry_t e[] = {{"inline", 10, 10, 10, NULL},
                             {"a", 20, 20, 20, NULL},
                             {"b", 5, 5, 5, NULL}};
    char v[256];
    cmp_verdict(v, sizeof v, "X", e, 2, 0, true);
    assert_string_equal(v, "X: a 0.50x the speed of inline");
    cmp_verdict(v, sizeof v, "X", e, 3, 0, true);
    assert_string_equal(v, "X: b 2.0x faster than inline; a 0.50x");
}

static void test_verdict_keeps_the_given_order_when_not_ranking(void **s)
{
    (void)s;
    const cmp_entry_t e[] = {{"inline", 200, 204, 205, NULL},
                             {"loop", 200, 204, 210, " with 10 stalls"},
                             {"pool", 100, 102, 103, NULL}};
    char v[256];
    cmp_verdict(v, sizeof v, "Blocking", e, 3, 0, false);
    assert_string_equal(v, "Blocking: loop 1.0x with 10 stalls, the same as "
                           "inline within noise; pool 2.0x faster than inline");
    cmp_verdict(v, sizeof v, "Blocking", e, 3, 0, true);
    assert_string_equal(v, "Blocking: pool 2.0x faster than inline; loop 1.0x "
                           "with 10 stalls, the same as inline within noise");
}

static void test_verdict_of_the_baseline_alone_gives_its_time(void **s)
{
    (void)s;
    char v[64];
    cmp_verdict(v, sizeof v, "X", &inline_cpu, 1, 0, true);
    assert_string_equal(v, "X: inline only, 158.0 ms");
}

static void test_verdict_truncates_and_returns_the_whole_length(void **s)
{
    (void)s;
    const cmp_entry_t e[] = {inline_cpu, {"loop", 149, 156, 170, NULL}};
    char whole[256], part[12];
    size_t n = cmp_verdict(whole, sizeof whole, "CPU-bound", e, 2, 0, true);
    assert_int_equal(n, strlen(whole));
    assert_int_equal(cmp_verdict(part, sizeof part, "CPU-bound", e, 2, 0, true),
                     n);
    assert_int_equal(strlen(part), sizeof part - 1);
    assert_memory_equal(part, whole, sizeof part - 1);
}

/* -------------------------------------------------------------------------- */

static double num(const jv_t *o, const char *key)
{
    const jv_t *v = jget(o, key, J_NUM);
    assert_non_null(v);
    return v->num;
}

/* Min and max of the cell's wall_ms_runs are its wall_ms_min and _max,
 * with the median between them, and the speed-up range holds the median. */
static void check_spread(const jv_t *c, size_t runs)
{
    const jv_t *r = jget(c, "wall_ms_runs", J_ARR);
    assert_non_null(r);
    assert_int_equal(r->n, runs);
    double lo = r->items[0]->num, hi = lo;
    for (size_t i = 1; i < r->n; i++) {
        lo = r->items[i]->num < lo ? r->items[i]->num : lo;
        hi = r->items[i]->num > hi ? r->items[i]->num : hi;
    }
    assert_true(num(c, "wall_ms_min") == lo);
    assert_true(num(c, "wall_ms_max") == hi);
    assert_true(lo <= num(c, "wall_ms") && num(c, "wall_ms") <= hi);
    assert_true(num(c, "speedup_min") <= num(c, "speedup"));
    assert_true(num(c, "speedup") <= num(c, "speedup_max"));
}

/* The tiers name every executor once, and the baseline's holds inline. */
static void check_tiers(const jv_t *verdict)
{
    const jv_t *tiers = jget(verdict, "tiers", J_ARR);
    assert_non_null(tiers);
    int seen[16] = {0};
    for (size_t t = 0; t < tiers->n; t++)
        for (size_t i = 0; i < tiers->items[t]->n; i++)
            for (size_t e = 0; e < nexec; e++)
                seen[e] +=
                    strcmp(tiers->items[t]->items[i]->str, executors[e]) == 0;
    for (size_t e = 0; e < nexec; e++)
        assert_int_equal(seen[e], 1);
    size_t b = (size_t)num(verdict, "baseline_tier");
    assert_true(b < tiers->n);
    assert_string_equal(tiers->items[b]->items[0]->str, "inline");
}

static void test_compare_json_gives_each_cell_its_spread_and_tiers(void **s)
{
    (void)s;
    learn_executors();
    const char *const args[] = {TINY, "--runs", "3", NULL};
    jv_t *j;
    assert_int_equal(run_compare(args, &j), 0);
    assert_non_null(j);
    const jv_t *res = jget(j, "results", J_ARR),
               *ver = jget(j, "verdicts", J_ARR);
    assert_non_null(res);
    assert_non_null(ver);
    assert_int_equal(res->n, 4 * nexec);
    for (size_t i = 0; i < res->n; i++)
        check_spread(res->items[i], 3);
    assert_int_equal(ver->n, 4);
    for (size_t i = 0; i < ver->n; i++)
        check_tiers(ver->items[i]);
    jfree(j);
}

static void test_compare_says_where_it_wrote_its_json(void **s)
{
    (void)s;
    const char *const args[] = {TINY, "--workloads", "cpu", NULL};
    assert_int_equal(run_compare(args, NULL), 0);
    char want[128];
    snprintf(want, sizeof want, "Wrote %s (", last_json);
    assert_non_null(strstr(last_stdout, want));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spreads_touching_at_an_end_overlap),
        cmocka_unit_test(
            test_verdict_calls_overlapping_executors_the_same_within_noise),
        cmocka_unit_test(test_verdict_ranks_executors_whose_spreads_are_apart),
        cmocka_unit_test(
            test_verdict_puts_an_overlap_with_the_baseline_in_its_tier),
        cmocka_unit_test(test_verdict_tier_holds_only_overlaps_with_its_first),
        cmocka_unit_test(
            test_verdict_says_an_executor_is_slower_than_the_baseline),
        cmocka_unit_test(test_verdict_keeps_the_given_order_when_not_ranking),
        cmocka_unit_test(test_verdict_of_the_baseline_alone_gives_its_time),
        cmocka_unit_test(test_verdict_truncates_and_returns_the_whole_length),
        cmocka_unit_test(test_json_parser_rejects_malformed_text),
        cmocka_unit_test(test_compare_json_has_every_cell_and_checksums_agree),
        cmocka_unit_test(
            test_compare_each_executor_alone_gives_the_same_checksums),
        cmocka_unit_test(test_compare_workload_filter_and_bad_options),
        cmocka_unit_test(
            test_compare_json_gives_each_cell_its_spread_and_tiers),
        cmocka_unit_test(test_compare_says_where_it_wrote_its_json),
    };
    return cmocka_run_group_tests(tests, find_compare, NULL);
}
