/* libfut — the inline executor: runs a task at once on the submitting
 * thread, trampolined.
 *
 * A task submitted while this thread is already running an inline task is
 * queued (fut__tls.inline_head, FIFO) and run by the outermost submit when
 * the running task returns, so a chain of any length runs in a loop, not in
 * nested frames.  try_run_one runs one queued task, which makes fut_wait
 * inside an inline task help rather than wait for work only this thread
 * would ever run.  Everything is thread-local: no atomics, no locks.
 *
 * The executor is static (never destroyed), so it uses the core's static
 * initializer from internal.h; apart from that it only uses the public
 * executor interface. */
#include "internal.h"

static fut_task_t *pop(struct fut_tls *t)
{
    fut_task_t *task = t->inline_head;
    if (task) {
        t->inline_head = task->next;
        if (!t->inline_head)
            t->inline_tail = NULL;
    }
    return task;
}

static int inline_submit(void *impl, fut_task_t *task)
{
    (void)impl;
    struct fut_tls *t = &fut__tls;
    if (t->inline_depth > 0) {
        task->next = NULL;
        if (t->inline_tail)
            t->inline_tail->next = task;
        else
            t->inline_head = task;
        t->inline_tail = task;
        return 0;
    }
    t->inline_depth++;
    fut_task_run(task);
    fut__inline_drain();
    t->inline_depth--;
    return 0;
}

void fut__inline_drain(void)
{
    struct fut_tls *t = &fut__tls;
    fut_task_t *task;
    while ((task = pop(t)) != NULL)
        fut_task_run(task);
}

static bool inline_try_run_one(void *impl)
{
    (void)impl;
    fut_task_t *task = pop(&fut__tls);
    if (!task)
        return false;
    fut_task_run(task);
    return true;
}

static void inline_destroy(void *impl)
{
    (void)impl; /* static: fut_executor_destroy refuses it */
}

static const fut_executor_ops_t inline_ops = {
    .name = "inline",
    .submit = inline_submit,
    .try_run_one = inline_try_run_one,
    .destroy = inline_destroy,
};

fut_executor_t fut__inline = FUT__EXECUTOR_STATIC(&inline_ops, NULL);

fut_executor_t *fut_inline(void)
{
    return &fut__inline;
}
