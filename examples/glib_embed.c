/* glib_embed -- futures inside a GLib program.  The application runs a
 * GMainLoop; libfut's glib executor runs continuations on its thread.
 *
 * The program: GIO reads a file asynchronously (its callback settles a
 * promise on the main loop), a pool counts the words of what was read, and
 * the count comes back to the main loop, which prints it and quits.  The
 * file is one this program writes first (a temporary file of many lines),
 * or the one named on the command line.
 * Usage: glib_embed [--smoke] [FILE]  (--smoke: a smaller file). */
#include <fut.h>
#include <fut/glib.h>

#include <gio/gio.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static GMainLoop *main_loop;

static void on_loaded(GObject *src, GAsyncResult *res, gpointer p)
{
    char *data = NULL;
    gsize len = 0;
    GError *err = NULL;
    if (g_file_load_contents_finish(G_FILE(src), res, &data, &len, NULL,
                                    &err)) {
        fut_promise_settle(p, fut_ok_owned(data, g_free));
    } else {
        fprintf(stderr, "glib_embed: %s\n", err->message);
        g_error_free(err);
        fut_promise_settle(p, fut_fail(FUT_EINVAL));
    }
}

static fut_result_t count_words(void *arg, fut_t *src) /* on the pool */
{
    (void)arg;
    const char *s = fut_value(src);
    int64_t words = 0;
    for (bool in = false; *s; s++) {
        bool space = *s == ' ' || *s == '\n' || *s == '\t';
        words += !space && !in;
        in = !space;
    }
    return fut_ok_i64(words);
}

static fut_result_t show(void *arg, fut_t *src) /* on the main loop */
{
    (void)arg;
    if (fut_state(src) == FUT_FULFILLED)
        printf("%lld words, counted on the pool, shown on the main loop\n",
               (long long)fut_value_i64(src));
    g_main_loop_quit(main_loop);
    return fut_forward(src);
}

/* Writes LINES lines of words to a temporary file; returns its path. */
static char *write_sample(int lines)
{
    GString *text = g_string_new(NULL);
    for (int i = 0; i < lines; i++)
        g_string_append_printf(text, "line %d of the sample text\n", i);
    char *path = NULL;
    int fd = g_file_open_tmp("glib_embed-XXXXXX", &path, NULL);
    if (fd < 0 || !g_file_set_contents(path, text->str, -1, NULL)) {
        g_free(path);
        path = NULL;
    }
    if (fd >= 0)
        close(fd);
    g_string_free(text, TRUE);
    return path;
}

int main(int argc, char **argv)
{
    bool smoke = argc > 1 && strcmp(argv[1], "--smoke") == 0;
    const char *named = argc > 1 + smoke ? argv[1 + smoke] : NULL;
    char *tmp = named ? NULL : write_sample(smoke ? 1000 : 100000);
    if (!named && !tmp) {
        fprintf(stderr, "glib_embed: cannot write a sample file\n");
        return 1;
    }
    fut_executor_t *glib, *pool;
    if (fut_glib_create(&glib, NULL) || fut_pool_create(&pool, NULL))
        return 1;
    main_loop = g_main_loop_new(NULL, FALSE);

    fut_promise_t *p;
    fut_t *f = fut_promise_new(&p);
    GFile *file = g_file_new_for_path(named ? named : tmp);
    g_file_load_contents_async(file, NULL, on_loaded, p);
    f = fut_then(f, pool, count_words, NULL);
    f = fut_finally(f, glib, show, NULL);

    g_main_loop_run(main_loop); /* until show quits it */
    int err = fut_error(f);
    fut_release(f);
    g_object_unref(file);
    fut_executor_destroy(pool);
    fut_executor_destroy(glib);
    g_main_loop_unref(main_loop);
    if (tmp) {
        remove(tmp);
        g_free(tmp);
    }
    return err ? 1 : 0;
}
