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

static void slab_flush(struct fut_tls *t)
{
    while (t->slab) {
        void **b = t->slab;
        t->slab = *b;
        fut__sys_free(b);
    }
    t->slab_n = 0;
}

static void slab_thread_exit(void *arg)
{
    (void)arg;
    slab_flush(&fut__tls);
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
    if (FUT__UNLIKELY(!t->slab_registered)) {
        /* The destructor only runs for a non-NULL value: any will do. */
        pthread_once(&g_key_once, key_init);
        t->slab_registered = 1;
        (void)pthread_setspecific(g_key, t);
    }
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
