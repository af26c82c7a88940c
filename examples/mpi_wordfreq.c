/* mpi_wordfreq -- wordfreq's map-reduce spread over MPI ranks with
 * libfut-mpi: rank 0 lists the files and calls "count" on whichever rank
 * has the fewest calls in flight (FUT_MPI_ANY), one call per file; the
 * serving rank reads the file, counts its words on its pool and sends the
 * counts back as bytes; rank 0 gathers the futures (fut_all), merges on a
 * pool (fut_then) and prints the top K exactly as examples/wordfreq does.
 *
 * Usage: mpirun -np N mpi_wordfreq [--top K] DIR
 *
 * Words are as in wordfreq: runs of letters and digits, lower-cased, cut
 * at 48 bytes.  A file's counts travel as records "uint64 count, word,
 * NUL", sorted by word. */
#include <fut/mpi.h>

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_WORD 48

struct count {
    const char *word;
    uint64_t n;
};

static int by_word(const void *a, const void *b)
{
    return strcmp(((const struct count *)a)->word,
                  ((const struct count *)b)->word);
}

static int by_count(const void *a, const void *b)
{
    const struct count *x = a, *y = b;
    if (x->n != y->n)
        return x->n < y->n ? 1 : -1;
    return strcmp(x->word, y->word);
}

/* Sorts V[0..*N) by word and merges equal words in place. */
static void merge_equal(struct count *v, size_t *n)
{
    size_t k = 0;
    qsort(v, *n, sizeof *v, by_word);
    for (size_t i = 0; i < *n; i++) {
        if (k && !strcmp(v[k - 1].word, v[i].word))
            v[k - 1].n += v[i].n;
        else
            v[k++] = v[i];
    }
    *n = k;
}

/* ---- map: on a serving rank ----------------------------------------------- */

static char *read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    char *text = NULL;
    if (fd >= 0 && fstat(fd, &st) == 0 &&
        (text = malloc((size_t)st.st_size + 1))) {
        ssize_t got = 0;
        for (*len = 0; (got = read(fd, text + *len,
                                   (size_t)st.st_size - *len)) > 0;)
            *len += (size_t)got;
        if (got < 0) {
            free(text);
            text = NULL;
        }
    }
    if (fd >= 0)
        close(fd);
    return text;
}

/* Cuts TEXT (LEN bytes, one spare) into lower-cased NUL-ended words in
 * place; fills V (room for LEN / 2 + 1) and returns how many. */
static size_t split_words(char *text, size_t len, struct count *v)
{
    size_t n = 0, start = 0;
    bool in_word = false;
    for (size_t i = 0; i <= len; i++) {
        unsigned char c = i < len ? (unsigned char)text[i] : ' ';
        if (isalnum(c)) {
            if (!in_word)
                start = i, in_word = true;
            text[i] = (char)tolower(c);
        } else if (in_word) {
            text[i - start > MAX_WORD ? start + MAX_WORD : i] = '\0';
            v[n++] = (struct count){text + start, 1};
            in_word = false;
        }
    }
    return n;
}

/* The remote function: ARG is a path; returns the file's counts. */
static fut_result_t count_file(const void *arg, size_t len, void *ud)
{
    (void)ud;
    char path[4096];
    size_t tlen = 0, n;
    if (len >= sizeof path)
        return fut_fail(FUT_EINVAL);
    memcpy(path, arg, len);
    path[len] = '\0';
    char *text = read_file(path, &tlen);
    struct count *v = text ? malloc((tlen / 2 + 1) * sizeof *v) : NULL;
    if (!v) {
        free(text);
        return fut_fail(text ? FUT_ENOMEM : -errno);
    }
    n = split_words(text, tlen, v);
    merge_equal(v, &n);
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += sizeof(uint64_t) + strlen(v[i].word) + 1;
    unsigned char *out = malloc(bytes + 1), *p = out;
    for (size_t i = 0; out && i < n; i++) {
        size_t w = strlen(v[i].word) + 1;
        memcpy(p, &v[i].n, sizeof v[i].n);
        memcpy(p + sizeof v[i].n, v[i].word, w);
        p += sizeof v[i].n + w;
    }
    fut_result_t r = out ? fut_ok_bytes(out, bytes) : fut_fail(FUT_ENOMEM);
    free(out);
    free(v);
    free(text);
    return r;
}

/* ---- reduce: on rank 0 ---------------------------------------------------- */

struct job {
    size_t files;
    unsigned top;
};

/* Merges the counts of every file (the inputs of ALL) and prints the top. */
static fut_result_t merge_and_report(void *arg, fut_t *all)
{
    const struct job *job = arg;
    size_t n = 0, cap = 0, words = 0;
    for (size_t i = 0; i < job->files; i++)
        cap += ((const fut_bytes_t *)fut_value(fut_input(all, i)))->len / 9;
    struct count *v = malloc((cap + 1) * sizeof *v);
    if (!v)
        return fut_fail(FUT_ENOMEM);
    for (size_t i = 0; i < job->files; i++) {
        const fut_bytes_t *b = fut_value(fut_input(all, i));
        for (size_t at = 0; at < b->len;) {
            memcpy(&v[n].n, b->data + at, sizeof v[n].n);
            v[n].word = (const char *)b->data + at + sizeof v[n].n;
            words += v[n].n;
            at += sizeof v[n].n + strlen(v[n].word) + 1;
            n++;
        }
    }
    merge_equal(v, &n);
    qsort(v, n, sizeof *v, by_count);
    printf("%zu files, %zu words, %zu distinct; top %u:\n", job->files, words,
           n, job->top);
    for (size_t i = 0; i < n && i < job->top; i++)
        printf("%8lu  %s\n", (unsigned long)v[i].n, v[i].word);
    free(v);
    return fut_ok(NULL);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The regular files of DIR, sorted, as wordfreq lists them. */
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

/* Rank 0: one call per file to any rank, then the reduce on a pool. */
static int run(fut_mpi_t *m, const char *dir, unsigned top)
{
    struct job job = {0, top};
    char **paths = list_files(dir, &job.files);
    fut_t **fs = paths ? calloc(job.files + 1, sizeof *fs) : NULL;
    fut_executor_t *pool = NULL;
    int err = fs ? fut_pool_create(&pool, NULL) : FUT_ENOMEM;
    for (size_t i = 0; !err && i < job.files; i++) /* map, anywhere */
        fs[i] = fut_mpi_call(m, FUT_MPI_ANY, "count", paths[i],
                             strlen(paths[i]));
    if (!err) {
        fut_t *done = fut_then(fut_all(fs, job.files), pool,
                               merge_and_report, &job); /* reduce */
        err = fut_mpi_wait(m, done, -1);
        err = err ? err : fut_error(done);
        fut_release(done);
    }
    if (pool)
        fut_executor_destroy(pool);
    for (size_t i = 0; paths && i < job.files; i++)
        free(paths[i]);
    free(paths);
    free(fs);
    return err;
}

int main(int argc, char **argv)
{
    const char *dir = NULL;
    unsigned top = 10;
    int level, err;
    fut_mpi_t *m;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &level);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--top") && i + 1 < argc)
            top = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (argv[i][0] != '-' && !dir)
            dir = argv[i];
        else
            dir = NULL, i = argc;
    }
    if ((err = fut_mpi_create(&m, MPI_COMM_WORLD, NULL)) != 0 ||
        (err = fut_mpi_register(m, "count", count_file, NULL)) != 0) {
        fprintf(stderr, "mpi_wordfreq: %s\n", fut_strerror(err));
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    if (fut_mpi_rank(m) != 0) {
        err = fut_mpi_serve(m);
    } else if (!dir) {
        fprintf(stderr, "usage: mpirun -np N mpi_wordfreq [--top K] DIR\n");
        err = FUT_EINVAL;
    } else if ((err = run(m, dir, top)) != 0) {
        fprintf(stderr, "mpi_wordfreq: %s\n", fut_strerror(err));
    }
    int derr = fut_mpi_destroy(m);
    MPI_Finalize();
    return err || derr ? 1 : 0;
}
