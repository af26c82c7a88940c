/* libfut — common definitions: export macro, version, error codes, log hook,
 * allocator.  Include <fut.h> rather than this file. */
#ifndef FUT_COMMON_H
#define FUT_COMMON_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(FUT_BUILDING) && defined(__GNUC__)
#define FUT_API __attribute__((visibility("default")))
#else
#define FUT_API
#endif

/* Private: not part of the API, and may change in any release.  What the
 * library's own headers and sources share, kept once here because a
 * public header (<fut/pool.h>'s inline group path) needs part of it and
 * the executors see no other header of the library:
 *  FUT__TSAN, FUT__ASAN  1 when this file is compiled under
 *                        ThreadSanitizer / AddressSanitizer, else 0 (gcc
 *                        says so with __SANITIZE_*__, clang with
 *                        __has_feature);
 *  FUT__LIKELY(x), FUT__UNLIKELY(x)  branch hints. */
#if defined(__SANITIZE_THREAD__)
#define FUT__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FUT__TSAN 1
#endif
#endif
#ifndef FUT__TSAN
#define FUT__TSAN 0
#endif
#if defined(__SANITIZE_ADDRESS__)
#define FUT__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FUT__ASAN 1
#endif
#endif
#ifndef FUT__ASAN
#define FUT__ASAN 0
#endif
#define FUT__LIKELY(x) __builtin_expect(!!(x), 1)
#define FUT__UNLIKELY(x) __builtin_expect(!!(x), 0)

#define FUT_VERSION_MAJOR 0
#define FUT_VERSION_MINOR 1
#define FUT_VERSION_PATCH 0
#define FUT_VERSION_HEX                                                        \
    ((FUT_VERSION_MAJOR << 16) | (FUT_VERSION_MINOR << 8) | FUT_VERSION_PATCH)
#define FUT_VERSION_STRING "0.1.0"

/* Returns FUT_VERSION_HEX of the library actually linked.
 * Threads: any. */
FUT_API unsigned fut_version(void);

/* Error codes.  0 is success; library errors are negative errno values (as
 * in libuv), so an error from the operating system (a failed fd, say) travels
 * as -errno beside them.  Applications may reject futures with any other
 * negative int of their own. */
enum {
    FUT_OK = 0,
    FUT_ENOMEM = -ENOMEM,       /* an allocation failed */
    FUT_EINVAL = -EINVAL,       /* a bad argument */
    FUT_ECANCELED = -ECANCELED, /* settled by fut_cancel */
    FUT_ETIMEDOUT = -ETIMEDOUT, /* settled by fut_timeout or a timed wait */
    FUT_EBROKEN = -EOWNERDEAD,  /* promise dropped without settling */
    FUT_ESHUTDOWN = -ESHUTDOWN, /* the executor has shut down */
    FUT_EDEADLK = -EDEADLK,     /* waiting here could never end */
    FUT_EALREADY = -EALREADY    /* already settled (or consumed) */
};

/* Returns a static description of ERR: the library's own words for the codes
 * above; the system's description for other -errno values ("system error"
 * if it has none); "application error" for other negative values; "not an
 * error code" for positive ones.  Threads: any.  Never NULL. */
FUT_API const char *fut_strerror(int err);

/* Log levels and events.  The library never prints: it reports what an
 * application may want to hear (stalls on the loop, a failure it could only
 * swallow) through the hook installed with fut_set_log.  One exception: a
 * misuse it stops with abort() (a future released after its last release,
 * docs/BAD_INPUT.md) goes to the hook at FUT_LOG_ERROR, or, when no hook
 * is installed, as one line to stderr just before the abort. */
typedef enum fut_log_level {
    FUT_LOG_DEBUG = 0,
    FUT_LOG_INFO = 1,
    FUT_LOG_WARN = 2,
    FUT_LOG_ERROR = 3
} fut_log_level_t;

typedef enum fut_log_kind {
    FUT_LOG_MESSAGE = 0, /* free text in msg */
    FUT_LOG_STALL = 1    /* a callback ran longer than the stall threshold */
} fut_log_kind_t;

typedef struct fut_log_event {
    fut_log_level_t level;
    fut_log_kind_t kind;
    const char *msg;      /* formatted message, valid during the call */
    const char *executor; /* executor's name, or NULL */
    const void *fn;       /* FUT_LOG_STALL: the callback's address */
    uint64_t duration_ns; /* FUT_LOG_STALL: how long it ran */
} fut_log_event_t;

typedef void (*fut_log_fn)(void *ud, const fut_log_event_t *ev);

/* Installs FN (NULL: none, the default) to hear the library's log events;
 * UD is passed back borrowed.  FN may be called from any thread the library
 * runs on, concurrently; it must not block for long.
 * Threads: any; takes effect for events reported after it returns. */
FUT_API void fut_set_log(fut_log_fn fn, void *ud);

/* Reports EV (borrowed for the call) through the installed hook, if any:
 * for executors and extensions that detect something worth hearing (the
 * loop's stall reports use it).  Threads: any. */
FUT_API void fut_log_emit(const fut_log_event_t *ev);

/* Replaces the allocator the library uses for every allocation but one
 * (NULL, NULL: malloc and free; either one NULL also means malloc and free).
 * The exception: an executor's handle, never freed, comes from malloc
 * (fut_executor_create).  Futures and
 * other small records come from per-thread caches of 128-byte blocks taken
 * from the allocator; a block freed on another thread goes back to the
 * thread that made it.  A thread caches at most what it had live at once
 * (as the allocator's own free lists would hold), and never more than about
 * 64 MiB of blocks (each taken from the allocator as a 192-byte request,
 * so that it starts on a cache line), and returns it when it exits.
 * Blocks cached by the calling thread, and blocks freed by other threads
 * that wait to go home, are returned to the previous allocator first.
 * Threads: call it only while no libfut object is alive and no executor
 * thread runs (at start-up, or in a test between scenarios). */
FUT_API void fut_set_allocator(void *(*alloc)(size_t), void (*dealloc)(void *));

#ifdef __cplusplus
}
#endif
#endif
