/* bench/fiber/spawn_steps -- N empty fibers (or N fut_async tasks of the
 * same function) spawned and finished on the loop, as bench=fiber_spawn of
 * bench/fiber/loop runs them (16 at a time).  For instruction counts, not
 * time:
 *
 *   fiber_spawn_steps fiber|async N
 *
 * bench/locked_per_step --modes fiber,async runs it under callgrind for two
 * N and reports the difference per spawn of all instructions and of locked
 * ones executed in the program (docs/BENCHMARKS.md). */
#define _POSIX_C_SOURCE 200809L
#include <fut.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH 16

static fut_executor_t *loop;
static long left;
static bool fiber;
static fut_promise_t *done;

static fut_result_t settle_done(void *arg)
{
    (void)arg;
    fut_promise_settle(done, fut_ok(NULL));
    return fut_ok(NULL);
}

static fut_result_t empty(void *arg)
{
    (void)arg;
    return fut_ok(NULL);
}

static fut_result_t spawn_batch(void *arg)
{
    (void)arg;
    for (int i = 0; i < BATCH && left > 0; i++, left--)
        fut_release(fiber ? fut_fiber(loop, empty, NULL, NULL)
                          : fut_async(loop, empty, NULL));
    fut_release(fut_async(loop, left > 0 ? spawn_batch : settle_done, NULL));
    return fut_ok(NULL);
}

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "fiber") && strcmp(argv[1], "async"))) {
        fprintf(stderr, "usage: fiber_spawn_steps fiber|async N\n");
        return 2;
    }
    fiber = strcmp(argv[1], "fiber") == 0;
    left = atol(argv[2]);
    if (fut_loop_create(&loop, NULL))
        return 1;
    fut_t *until = fut_promise_new(&done);
    fut_release(fut_async(loop, spawn_batch, NULL));
    fut_loop_run(loop, until);
    fut_release(until);
    printf("%s %ld\n", argv[1], left);
    fut_executor_destroy(loop);
    return 0;
}
