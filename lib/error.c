/* libfut — error strings, the log hook and the version. */
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

unsigned fut_version(void)
{
    return FUT_VERSION_HEX;
}

const char *fut_strerror(int err)
{
    switch (err) {
    case FUT_OK:
        return "success";
    case FUT_ENOMEM:
        return "out of memory";
    case FUT_EINVAL:
        return "invalid argument";
    case FUT_ECANCELED:
        return "cancelled";
    case FUT_ETIMEDOUT:
        return "timed out";
    case FUT_EBROKEN:
        return "broken promise (dropped without a result)";
    case FUT_ESHUTDOWN:
        return "executor shut down";
    case FUT_EDEADLK:
        return "waiting here would deadlock";
    case FUT_EALREADY:
        return "already settled";
    default:
        break;
    }
    if (err < FUT_EAI_BASE && err > FUT_EAI_BASE - 256)
        return gai_strerror(err - FUT_EAI_BASE); /* fut_getaddrinfo's */
    if (err < 0 && err > -4096) {
        /* strerror is not thread-safe; strerrordesc_np (glibc 2.32) is. */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 32)
        const char *s = strerrordesc_np(-err);
        if (s)
            return s;
#endif
        return "system error";
    }
    return err < 0 ? "application error" : "not an error code";
}

/* The hook and its argument change together, rarely (start-up, tests), and
 * are read only when there is something to report: a mutex is plenty. */
static pthread_mutex_t g_log_mu = PTHREAD_MUTEX_INITIALIZER;
static fut_log_fn g_log_fn;
static void *g_log_ud;
/* Lets fut__log skip formatting when nobody listens; relaxed because a
 * stale answer only costs a formatted message or a missed one during the
 * update itself. */
static _Atomic bool g_log_on;

void fut_set_log(fut_log_fn fn, void *ud)
{
    pthread_mutex_lock(&g_log_mu);
    g_log_fn = fn;
    g_log_ud = ud;
    atomic_store_explicit(&g_log_on, fn != NULL, memory_order_relaxed);
    pthread_mutex_unlock(&g_log_mu);
}

void fut_log_emit(const fut_log_event_t *ev)
{
    if (ev)
        fut__log_event(ev);
}

bool fut__log_event(const fut_log_event_t *ev)
{
    pthread_mutex_lock(&g_log_mu);
    fut_log_fn fn = g_log_fn;
    void *ud = g_log_ud;
    pthread_mutex_unlock(&g_log_mu);
    if (fn)
        fn(ud, ev);
    return fn != NULL;
}

void fut__log(fut_log_level_t level, const char *fmt, ...)
{
    if (!atomic_load_explicit(&g_log_on, memory_order_relaxed))
        return;
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fut_log_event_t ev = {.level = level, .kind = FUT_LOG_MESSAGE, .msg = buf};
    fut__log_event(&ev);
}
