/* wordfreq -- map-reduce over a directory of text files with futures:
 * read each file (I/O), count its words (CPU), merge the counts (reduce),
 * print the top K.  The chain is written once; --executor decides where
 * each stage runs:
 *
 *   inline      everything on this thread, one file after another
 *   pool        reading and counting on the pool's workers
 *   loop        everything on one event-loop thread; a file is read 64 KiB
 *               per task, so the loop is never held long
 *   loop+pool   reading on the loop, counting and merging on the pool
 *
 * Usage: wordfreq [--executor NAME] [--top K] DIR
 *        wordfreq --smoke   (makes a temporary directory, runs all four,
 *                            checks they print the same, cleans up) */
#include <fut.h>

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define READ_STEP (64 * 1024)
#define MAX_WORD 48

struct xenv {
    fut_executor_t *io, *cpu, *loop, *pool;
};

/* ---- a word-count table (open addressing) ---------------------------------
 */

struct entry {
    char *word;
    unsigned long count;
};

struct table {
    size_t cap, n;
    unsigned long words;
    struct entry *e;
};

static struct table *table_new(void)
{
    struct table *t = calloc(1, sizeof *t);
    if (t && !(t->e = calloc(t->cap = 256, sizeof *t->e))) {
        free(t);
        t = NULL;
    }
    return t;
}

static void table_free(void *p)
{
    struct table *t = p;
    for (size_t i = 0; t && i < t->cap; i++)
        free(t->e[i].word);
    if (t)
        free(t->e);
    free(t);
}

static size_t slot_of(const struct table *t, const char *w)
{
    unsigned long long h = 0xcbf29ce484222325ull;
    for (const char *c = w; *c; c++)
        h = (h ^ (unsigned char)*c) * 0x100000001b3ull;
    size_t i = (size_t)h & (t->cap - 1);
    while (t->e[i].word && strcmp(t->e[i].word, w) != 0)
        i = (i + 1) & (t->cap - 1);
    return i;
}

/* Adds COUNT to W; returns false when out of memory. */
static bool table_add(struct table *t, const char *w, unsigned long count)
{
    if (2 * (t->n + 1) > t->cap) {
        struct table big = {t->cap * 2, 0, 0, calloc(t->cap * 2, sizeof *t->e)};
        if (!big.e)
            return false;
        for (size_t i = 0; i < t->cap; i++)
            if (t->e[i].word)
                big.e[slot_of(&big, t->e[i].word)] = t->e[i];
        free(t->e);
        t->e = big.e;
        t->cap = big.cap;
    }
    size_t i = slot_of(t, w);
    if (!t->e[i].word) {
        if (!(t->e[i].word = strdup(w)))
            return false;
        t->n++;
    }
    t->e[i].count += count;
    t->words += count;
    return true;
}

/* ---- the stages ------------------------------------------------------------
 */

struct file {
    const struct xenv *x;
    char *path;
    int fd;
    char *text;
    size_t len, cap;
};

/* I/O: reads one step of the file, then queues the next step on the same
 * executor; fulfils with the file once it is all read. */
static fut_result_t read_step(void *arg)
{
    struct file *f = arg;
    if (f->fd < 0 && (f->fd = open(f->path, O_RDONLY | O_CLOEXEC)) < 0)
        return fut_fail(-errno);
    if (f->cap - f->len < READ_STEP) {
        char *t = realloc(f->text, f->cap += 2 * READ_STEP);
        if (!t)
            return fut_fail(FUT_ENOMEM);
        f->text = t;
    }
    ssize_t n = read(f->fd, f->text + f->len, READ_STEP);
    if (n < 0)
        return fut_fail(-errno);
    if (n > 0) {
        f->len += (size_t)n;
        return fut_adopt(fut_async(f->x->io, read_step, f));
    }
    close(f->fd);
    f->fd = -1;
    return fut_ok(f);
}

/* CPU: counts the words of one file (letters and digits, lower-cased). */
static fut_result_t count_words(void *arg, fut_t *src)
{
    (void)arg;
    struct file *f = fut_value(src);
    struct table *t = table_new();
    char w[MAX_WORD + 1];
    size_t k = 0;
    for (size_t i = 0; t && i <= f->len; i++) {
        unsigned char c = i < f->len ? (unsigned char)f->text[i] : ' ';
        if (isalnum(c)) {
            if (k < MAX_WORD)
                w[k++] = (char)tolower(c);
        } else if (k) {
            w[k] = '\0';
            k = 0;
            if (!table_add(t, w, 1)) {
                table_free(t);
                t = NULL;
            }
        }
    }
    return t ? fut_ok_owned(t, table_free) : fut_fail(FUT_ENOMEM);
}

/* Reduce: merges every file's table (the inputs of ALL) into one. */
static fut_result_t merge(void *arg, fut_t *all)
{
    size_t n = *(const size_t *)arg;
    struct table *t = table_new();
    for (size_t i = 0; t && i < n; i++) {
        const struct table *part = fut_value(fut_input(all, i));
        for (size_t j = 0; j < part->cap; j++)
            if (part->e[j].word &&
                !table_add(t, part->e[j].word, part->e[j].count)) {
                table_free(t);
                t = NULL;
                break;
            }
    }
    return t ? fut_ok_owned(t, table_free) : fut_fail(FUT_ENOMEM);
}

/* ---- the program ------------------------------------------------------------
 */

static int by_count(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    if (x->count != y->count)
        return x->count < y->count ? 1 : -1;
    return strcmp(x->word, y->word);
}

/* Appends the report of T (top K) to OUT. */
static void report(const struct table *t, size_t files, unsigned k, FILE *out)
{
    struct entry *v = malloc((t->n + 1) * sizeof *v);
    size_t n = 0;
    for (size_t i = 0; v && i < t->cap; i++)
        if (t->e[i].word)
            v[n++] = t->e[i];
    if (v)
        qsort(v, n, sizeof *v, by_count);
    fprintf(out, "%zu files, %lu words, %zu distinct; top %u:\n", files,
            t->words, t->n, k);
    for (size_t i = 0; v && i < n && i < k; i++)
        fprintf(out, "%8lu  %s\n", v[i].count, v[i].word);
    free(v);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The regular files of DIR, sorted (so every run lists them alike). */
static char **list_files(const char *dir, size_t *n)
{
    DIR *d = opendir(dir);
    char **v = calloc(1, sizeof *v);
    *n = 0;
    for (struct dirent *de; d && v && (de = readdir(d));) {
        char *p;
        struct stat st;
        if (asprintf(&p, "%s/%s", dir, de->d_name) < 0)
            break;
        char **nv = realloc(v, (*n + 1) * sizeof *v);
        if (!nv || stat(p, &st) != 0 || !S_ISREG(st.st_mode)) {
            free(p);
            v = nv ? nv : v;
            continue;
        }
        v = nv;
        v[(*n)++] = p;
    }
    if (d)
        closedir(d);
    if (v)
        qsort(v, *n, sizeof *v, cmp_str);
    return v;
}

static int make_xenv(const char *name, struct xenv *x)
{
    memset(x, 0, sizeof *x);
    bool pool = !strcmp(name, "pool") || !strcmp(name, "loop+pool");
    bool loop = !strcmp(name, "loop") || !strcmp(name, "loop+pool");
    if (!pool && !loop && strcmp(name, "inline") != 0)
        return FUT_EINVAL;
    int err = pool ? fut_pool_create(&x->pool, NULL) : 0;
    if (!err && loop)
        err = fut_loop_create(&x->loop, NULL);
    x->io = x->loop ? x->loop : x->pool ? x->pool : fut_inline();
    x->cpu = x->pool ? x->pool : x->io;
    return err;
}

/* Counts the words of DIR on EXECUTOR and writes the top K to OUT. */
static int wordfreq(const char *dir, const char *executor, unsigned k,
                    FILE *out)
{
    struct xenv x;
    size_t n;
    int err = make_xenv(executor, &x);
    char **paths = err ? NULL : list_files(dir, &n);
    struct file *files = paths ? calloc(n + 1, sizeof *files) : NULL;
    fut_t **fs = paths ? calloc(n + 1, sizeof *fs) : NULL;
    if (!err && (!files || !fs))
        err = FUT_ENOMEM;
    for (size_t i = 0; !err && i < n; i++) {
        files[i] = (struct file){.x = &x, .path = paths[i], .fd = -1};
        fut_t *f = fut_async(x.io, read_step, &files[i]); /* map: I/O */
        fs[i] = fut_then(f, x.cpu, count_words, NULL);    /* map: CPU */
    }
    fut_t *total = NULL;
    if (!err) {
        total = fut_then(fut_all(fs, n), x.cpu, merge, &n); /* reduce */
        if (x.loop)
            fut_loop_run(x.loop, total);
        err = fut_await(total, NULL);
    }
    if (!err)
        report(fut_value(total), n, k, out);
    fut_release(total);
    if (x.pool)
        fut_executor_destroy(x.pool);
    if (x.loop)
        fut_executor_destroy(x.loop);
    for (size_t i = 0; files && i < n; i++) {
        if (files[i].fd >= 0)
            close(files[i].fd);
        free(files[i].text);
    }
    for (size_t i = 0; paths && i < n; i++)
        free(paths[i]);
    free(paths);
    free(files);
    free(fs);
    return err;
}

/* --smoke: a temporary directory of generated text, all four executors. */
static int smoke(void)
{
    static const char *const vocab[] = {
        "future", "promise", "loop",  "pool",   "the",   "a",     "of",
        "wait",   "then",    "chain", "Thread", "epoll", "steal", "deque",
        "timer",  "cancel",  "x1",    "ready",  "value", "error"};
    char dir[] = "/tmp/wordfreq-smoke-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    unsigned long long s = 42;
    for (int i = 0; i < 12; i++) {
        char p[64];
        snprintf(p, sizeof p, "%s/f%02d.txt", dir, i);
        FILE *f = fopen(p, "w");
        for (int j = 0; f && j < 2000 * (i + 1); j++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            fprintf(f, "%s%s", vocab[(s >> 33) % (20 - (unsigned)i % 7)],
                    j % 13 == 12 ? ".\n" : " ");
        }
        if (f)
            fclose(f);
    }
    static const char *const names[] = {"inline", "pool", "loop", "loop+pool"};
    char *first = NULL;
    int bad = 0;
    for (int e = 0; e < 4; e++) {
        char *text = NULL;
        size_t len = 0;
        FILE *out = open_memstream(&text, &len);
        int err = out ? wordfreq(dir, names[e], 10, out) : FUT_ENOMEM;
        if (out)
            fclose(out);
        printf("%-9s %s\n", names[e],
               err                                  ? fut_strerror(err)
               : !first || strcmp(first, text) == 0 ? "same result"
                                                    : "DIFFERENT result");
        bad += err || (first && strcmp(first, text) != 0);
        if (!first) {
            fputs(text, stdout);
            first = text;
        } else {
            free(text);
        }
    }
    free(first);
    for (int i = 0; i < 12; i++) {
        char p[64];
        snprintf(p, sizeof p, "%s/f%02d.txt", dir, i);
        unlink(p);
    }
    rmdir(dir);
    return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
    const char *executor = "loop+pool", *dir = NULL;
    unsigned k = 10;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--smoke"))
            return smoke();
        if (!strcmp(argv[i], "--executor") && i + 1 < argc)
            executor = argv[++i];
        else if (!strcmp(argv[i], "--top") && i + 1 < argc)
            k = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (argv[i][0] != '-' && !dir)
            dir = argv[i];
        else
            dir = NULL, i = argc;
    }
    if (!dir) {
        fprintf(stderr, "usage: wordfreq [--executor inline|pool|loop|"
                        "loop+pool] [--top K] DIR\n       wordfreq --smoke\n");
        return 2;
    }
    int err = wordfreq(dir, executor, k, stdout);
    if (err)
        fprintf(stderr, "wordfreq: %s\n", fut_strerror(err));
    return err ? 1 : 0;
}
