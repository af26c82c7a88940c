/* custom_executor -- an executor of your own is a small ops table: submit
 * (take a task), destroy (drop what is left).  This one runs its tasks
 * only when the application says so, e.g. once per frame of a game or GUI
 * loop, so callbacks never run in the middle of the frame's own code.
 * Single-threaded for brevity: a queue shared by threads needs a lock.
 * Usage: custom_executor [--smoke]  (both do the same) */
#include <fut.h>

#include <stdio.h>
#include <stdlib.h>

struct frame_queue {
    fut_task_t *head, *tail;
};

static int fq_submit(void *impl, fut_task_t *t)
{
    struct frame_queue *q = impl;
    t->next = NULL;
    *(q->tail ? &q->tail->next : &q->head) = t;
    q->tail = t;
    return 0;
}

/* Runs what was queued before this call; tasks they queue wait a frame. */
static int fq_run_frame(struct frame_queue *q)
{
    fut_task_t *t = q->head;
    int n = 0;
    q->head = q->tail = NULL;
    for (fut_task_t *next; t; t = next, n++) {
        next = t->next;
        fut_task_run(t);
    }
    return n;
}

static void fq_destroy(void *impl)
{
    struct frame_queue *q = impl;
    for (fut_task_t *t = q->head, *next; t; t = next) {
        next = t->next;
        fut_task_drop(t); /* its future settles FUT_ESHUTDOWN */
    }
}

static const fut_executor_ops_t fq_ops = {
    .name = "frame", .submit = fq_submit, .destroy = fq_destroy};

static fut_result_t step(void *arg, fut_t *src)
{
    printf("  %s (value %lld)\n", (const char *)arg,
           (long long)fut_value_i64(src));
    return fut_ok_i64(fut_value_i64(src) + 1);
}

int main(void)
{
    struct frame_queue q = {0};
    fut_executor_t *ex;
    if (fut_executor_create(&ex, &fq_ops, &q) != 0)
        return 1;
    fut_t *f = fut_ready(fut_ok_i64(1));
    f = fut_then(f, ex, step, "load");
    f = fut_then(f, ex, step, "update");
    f = fut_then(f, ex, step, "draw");
    int frames = 0;
    while (fut_state(f) == FUT_PENDING && frames < 10)
        printf("frame %d: ran %d task(s)\n", ++frames, fq_run_frame(&q));
    printf("%s executor: value %lld after %d frames\n", fut_executor_name(ex),
           (long long)fut_value_i64(f), frames);
    int ok = fut_value_i64(f) == 4 && frames == 3;
    fut_release(f);
    fut_executor_destroy(ex);
    return !ok;
}
