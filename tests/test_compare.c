/* fut-compare's JSON, checked from outside: the test runs the built
 * examples/compare (build/<variant>/examples/compare, found from this
 * binary's own path) with tiny sizes under every executor, parses the JSON
 * it writes with a small parser of its own, and checks the structure and
 * that each workload's checksum is the same under every executor.  No
 * timing is asserted: the figures only have to be there. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

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

/* ---- running fut-compare ----------------------------------------------------
 */

static char compare_path[PATH_MAX + 32];

/* build/<variant>/tests/test_compare -> build/<variant>/examples/compare */
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
    snprintf(compare_path, sizeof compare_path, "%s/../examples/compare", self);
    return access(compare_path, X_OK);
}

/* Runs fut-compare with ARGS (NULL-terminated) plus --json to a temporary
 * file; returns its exit status and, if JSON is not NULL, the parsed file. */
static int run_compare(const char *const *args, jv_t **json)
{
    char path[] = "/tmp/fut-compare-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    const char *argv[32] = {compare_path};
    int argc = 1;
    for (; args[argc - 1]; argc++)
        argv[argc] = args[argc - 1];
    argv[argc++] = "--json";
    argv[argc++] = path;
    argv[argc] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execv(compare_path, (char *const *)argv);
        _exit(127);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (json) {
        *json = NULL;
        FILE *f = fopen(path, "r");
        static char text[1 << 20];
        size_t len = f ? fread(text, 1, sizeof text - 1, f) : 0;
        text[len] = '\0';
        if (f)
            fclose(f);
        *json = json_parse(text);
    }
    unlink(path);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

#define TINY                                                                   \
    "--requests", "6", "--latency-ms", "2", "--chunks", "3", "--chunk-kib",    \
        "16", "--mixed-requests", "3", "--pitfall-requests", "2", "--runs",    \
        "1", "--stall-ms", "1"

static const char *const workloads[] = {"io", "cpu", "mixed", "pitfall"};
static const char *const executors[] = {"inline", "pool", "loop", "loop+pool"};

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
    assert_int_equal(results->n, 16);
    for (size_t w = 0; w < 4; w++) {
        const jv_t *first = find_cell(results, workloads[w], "inline");
        assert_non_null(first);
        for (size_t e = 0; e < 4; e++) {
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
    const char *const all[] = {TINY, "--executors", "inline", NULL};
    jv_t *ref;
    assert_int_equal(run_compare(all, &ref), 0);
    assert_non_null(ref);
    const jv_t *rres = jget(ref, "results", J_ARR);
    assert_non_null(rres);
    for (size_t e = 1; e < 4; e++) {
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
    const char *const io[] = {TINY, "--workloads", "io,cpu", NULL};
    jv_t *j;
    assert_int_equal(run_compare(io, &j), 0);
    assert_non_null(j);
    const jv_t *res = jget(j, "results", J_ARR);
    assert_non_null(res);
    assert_int_equal(res->n, 8);
    assert_null(find_cell(res, "mixed", "inline"));
    jfree(j);

    const char *const bad[] = {TINY, "--executors", "threads", NULL};
    assert_int_equal(run_compare(bad, NULL), 2);
    const char *const zero[] = {TINY, "--runs", "0", NULL};
    assert_int_equal(run_compare(zero, NULL), 2);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_parser_rejects_malformed_text),
        cmocka_unit_test(test_compare_json_has_every_cell_and_checksums_agree),
        cmocka_unit_test(
            test_compare_each_executor_alone_gives_the_same_checksums),
        cmocka_unit_test(test_compare_workload_filter_and_bad_options),
    };
    return cmocka_run_group_tests(tests, find_compare, NULL);
}
