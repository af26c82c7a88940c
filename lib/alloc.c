/* libfut — allocation: the application's allocator and per-thread slabs.
 *
 * Futures, waiter nodes and small combinator records are 128-byte blocks.
 * Each thread keeps a free list of them (fut__tls.slab, at most SLAB_MAX),
 * so the hot path allocates and frees without a lock or an atomic: a block
 * freed on another thread joins that thread's list (memory migrates, as in
 * tcmalloc's thread caches).  A thread's list goes back to the allocator when
 * the thread exits (a pthread key destructor) and when fut_set_allocator is
 * called on it.  Under AddressSanitizer there are no free lists (see
 * SLABS_ON). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

enum { SLAB_MAX = 1024 };

/* Relaxed: the allocator is set while no libfut object is alive (documented),
 * so no ordering with other memory is needed, only freedom from tearing. */
static _Atomic(void *(*)(size_t)) g_alloc;
static _Atomic(void (*)(void *)) g_dealloc;

static pthread_key_t g_key;
static pthread_once_t g_key_once = PTHREAD_ONCE_INIT;

void *fut__sys_alloc(size_t size)
{
    void *(*fn)(size_t) = atomic_load_explicit(&g_alloc, memory_order_relaxed);
    return fn ? fn(size) : malloc(size);
}

void fut__sys_free(void *p)
{
    void (*fn)(void *) = atomic_load_explicit(&g_dealloc, memory_order_relaxed);
    if (fn)
        fn(p);
    else
        free(p);
}

static void register_exit(struct fut_tls *t);

enum { QUARANTINE_MAX = 4096 };

static void quarantine_flush(struct fut_tls *t, unsigned keep)
{
    while (t->quar_n > keep) {
        fut_t *f = t->quar_head;
        t->quar_head = f->dnext;
        if (!t->quar_head)
            t->quar_tail = NULL;
        t->quar_n--;
        fut__sys_free(f);
    }
}

void fut__quarantine(fut_t *f)
{
    struct fut_tls *t = &fut__tls;
    if (t->slab_off) { /* keeps nothing (the timer thread) */
        fut__sys_free(f);
        return;
    }
    register_exit(t);
    f->dnext = NULL;
    if (t->quar_tail)
        t->quar_tail->dnext = f;
    else
        t->quar_head = f;
    t->quar_tail = f;
    t->quar_n++;
    quarantine_flush(t, QUARANTINE_MAX);
}

void fut__misuse(const char *what, const void *f)
{
    char msg[160];
    snprintf(msg, sizeof msg, "libfut: %s of future %p after its last release",
             what, f);
    fut_log_event_t ev = {.level = FUT_LOG_ERROR, .msg = msg};
    fut__log_event(&ev);
    abort();
}

static void slab_flush(struct fut_tls *t)
{
    quarantine_flush(t, 0);
    while (t->slab) {
        void **b = t->slab;
        t->slab = *b;
        fut__sys_free(b);
    }
    t->slab_n = 0;
}

static void slab_thread_exit(void *arg)
{
    slab_flush(arg); /* the thread's own fut__tls, registered in fut__free */
}

static void key_init(void)
{
    /* If the key cannot be made, blocks cached by exiting threads are not
     * returned; the caches stay bounded by SLAB_MAX per thread. */
    (void)pthread_key_create(&g_key, slab_thread_exit);
}

/* Under AddressSanitizer the free lists are off: every block goes back to
 * the allocator at once, so a use after release is reported exactly and
 * LeakSanitizer (which does not look inside poisoned blocks) sees every
 * live pointer. */
#ifdef FUT_ASAN
#define SLABS_ON 0
#else
#define SLABS_ON 1
#endif

/* Makes this thread return what it caches when it exits. */
static void register_exit(struct fut_tls *t)
{
    if (FUT__UNLIKELY(!t->slab_registered)) {
        pthread_once(&g_key_once, key_init);
        t->slab_registered = 1;
        (void)pthread_setspecific(g_key, t);
    }
}

void *fut__alloc(size_t size)
{
    struct fut_tls *t = &fut__tls;
    if (SLABS_ON && size <= FUT__BLOCK && t->slab) {
        void **b = t->slab;
        t->slab = *b;
        t->slab_n--;
        return b;
    }
    return fut__sys_alloc(size <= FUT__BLOCK ? FUT__BLOCK : size);
}

void fut__free(void *p, size_t size)
{
    struct fut_tls *t = &fut__tls;
    if (!p)
        return;
    if (!SLABS_ON || size > FUT__BLOCK || t->slab_n >= SLAB_MAX ||
        t->slab_off) {
        fut__sys_free(p);
        return;
    }
    register_exit(t);
    void **b = p;
    *b = t->slab;
    t->slab = b;
    t->slab_n++;
}

void fut_set_allocator(void *(*alloc)(size_t), void (*dealloc)(void *))
{
    slab_flush(&fut__tls);
    if (!alloc || !dealloc)
        alloc = NULL, dealloc = NULL;
    atomic_store_explicit(&g_alloc, alloc, memory_order_relaxed);
    atomic_store_explicit(&g_dealloc, dealloc, memory_order_relaxed);
}

void *fut_alloc(size_t size)
{
    return fut__sys_alloc(size);
}

void fut_free(void *p)
{
    if (p)
        fut__sys_free(p);
}
