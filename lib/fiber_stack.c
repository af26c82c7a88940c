/* libfut — fiber stacks: guarded, carved from shared mappings, recycled.
 *
 * LAYOUT.  A stack of SIZE usable bytes (a power of two) sits above one
 * guard page; slots of SIZE + page bytes are carved from mappings of about
 * 2 MiB (MAP_NORESERVE: only pages a fiber touches cost memory).  The
 * guard must fault without costing kernel map entries, because
 * vm.max_map_count is 65530 by default and an mprotect'ed page in the
 * middle of a mapping splits it in three: two entries per stack would cap
 * a process at ~32000 stacks.  So the guard is installed with
 * madvise(MADV_GUARD_INSTALL) (Linux 6.13+), which marks the page in the
 * page tables only: an access is a SIGSEGV and the mapping stays one entry
 * (neighbouring mappings even merge).  On an older kernel madvise says
 * EINVAL and the guard falls back to mprotect(PROT_NONE), with the cap
 * above (docs/BENCHMARKS.md).
 *
 * RECYCLING.  A stack is never unmapped.  fut__stack_put keeps it in the
 * calling thread's cache (up to CACHE stacks of the default size: the
 * common spawn and finish touch no shared state) or else in a shared list
 * per size under a mutex, which fut__stack_get also refills its cache
 * from, CACHE / 2 at a time.  A thread's cache goes back to the shared
 * lists when the thread exits (a pthread key's destructor). */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fiber_ctx.h"
#include "fut/fiber.h"
#include "internal.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define FUT_VALGRIND 1
#endif
#endif
#ifdef FUT_ASAN
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
#endif

#define PAGE 4096u
#define CHUNK ((size_t)2 << 20)
#define CACHE 32
#define CLASSES 15 /* 16 KiB << 0 .. 14: FUT_FIBER_STACK_MIN .. MAX */

/* A free stack's link, just below the top a fiber uses (fut__stack_top):
 * on the page and the cache lines a fiber touches first (its struct and
 * first frames lie there), so taking a stack off a list touches no other
 * page. */
struct free_stack {
    struct free_stack *next;
};

static struct free_stack *link_of(void *lo, size_t size)
{
    return (struct free_stack *)fut__stack_top(lo, size) - 1;
}

/* link_of's inverse: a stack's end is page-aligned and its top lies less
 * than a page below it, so rounding the top up finds the end. */
static void *lo_of(struct free_stack *s, size_t size)
{
    uintptr_t end = ((uintptr_t)(s + 1) + 4095) & ~(uintptr_t)4095;
    return (void *)(end - size);
}

static pthread_mutex_t lists_lock = PTHREAD_MUTEX_INITIALIZER;
static struct free_stack *lists[CLASSES]; /* shared, under lists_lock */
static _Atomic int guard_by_madvise = 1;  /* cleared on an old kernel */

/* initial-exec, as fut__tls: no __tls_get_addr call in the shared library. */
static _Thread_local struct free_stack *cache
    __attribute__((tls_model("initial-exec")));
static _Thread_local int cache_n __attribute__((tls_model("initial-exec")));
/* The flush is registered (cache_key set): only then may put keep one. */
static _Thread_local bool cache_keyed
    __attribute__((tls_model("initial-exec")));
static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

size_t fut__stack_size(size_t requested)
{
    if (requested == 0)
        return FUT_FIBER_STACK_DEFAULT;
    if (requested > FUT_FIBER_STACK_MAX)
        return 0;
    size_t s = FUT_FIBER_STACK_MIN;
    while (s < requested)
        s <<= 1;
    return s;
}

static int class_of(size_t size)
{
    int c = 0;
    while ((FUT_FIBER_STACK_MIN << c) < size)
        c++;
    return c;
}

static int install_guard(char *page)
{
    /* Relaxed: a flag that only ever goes from 1 to 0; a thread that reads
     * the stale 1 tries madvise once more and gets the same EINVAL. */
    if (atomic_load_explicit(&guard_by_madvise, memory_order_relaxed)) {
        if (madvise(page, PAGE, MADV_GUARD_INSTALL) == 0)
            return 0;
        if (errno != EINVAL)
            return -1;
        atomic_store_explicit(&guard_by_madvise, 0, memory_order_relaxed);
    }
    return mprotect(page, PAGE, PROT_NONE);
}

/* Maps a chunk of stacks of SIZE, guards them and puts them on LIST
 * (the caller holds lists_lock).  False if the system refused. */
static bool grow(struct free_stack **list, size_t size)
{
    size_t slot = size + PAGE;
    size_t n = CHUNK / slot ? CHUNK / slot : 1;
    char *m = mmap(NULL, n * slot, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1,
                   0);
    if (m == MAP_FAILED)
        return false;
    size_t ok = 0;
    for (; ok < n; ok++)
        if (install_guard(m + ok * slot) != 0)
            break;
    if (ok == 0) {
        munmap(m, n * slot);
        return false;
    }
    if (ok < n) /* out of map entries: keep the guarded ones */
        munmap(m + ok * slot, (n - ok) * slot);
    for (size_t i = 0; i < ok; i++) {
        char *lo = m + i * slot + PAGE;
        struct free_stack *s = link_of(lo, size);
#ifdef FUT_VALGRIND
        VALGRIND_STACK_REGISTER(lo, lo + size);
#endif
        s->next = *list;
        *list = s;
    }
    return true;
}

static void cache_flush(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&lists_lock);
    int c = class_of(FUT_FIBER_STACK_DEFAULT);
    while (cache) {
        struct free_stack *s = cache;
        cache = s->next;
        s->next = lists[c];
        lists[c] = s;
    }
    cache_n = 0;
    cache_keyed = false; /* the key's value is NULL again */
    pthread_mutex_unlock(&lists_lock);
}

static void make_key(void)
{
    pthread_key_create(&cache_key, cache_flush);
}

/* Takes up to WANT stacks of SIZE from the shared list (growing it if
 * empty) onto *OUT; returns how many. */
static int take_shared(size_t size, struct free_stack **out, int want)
{
    int c = class_of(size), got = 0;
    pthread_mutex_lock(&lists_lock);
    if (!lists[c])
        grow(&lists[c], size);
    while (got < want && lists[c]) {
        struct free_stack *s = lists[c];
        lists[c] = s->next;
        s->next = *out;
        *out = s;
        got++;
    }
    pthread_mutex_unlock(&lists_lock);
    return got;
}

/* A stack off a list, ready to run on; NULL stays NULL. */
static void *ready(struct free_stack *s, size_t size)
{
    if (!s)
        return NULL;
    void *lo = lo_of(s, size);
#ifdef FUT_ASAN
    /* A recycled stack may keep poison from frames of its last fiber. */
    __asan_unpoison_memory_region(lo, size);
#endif
    return lo;
}

/* The thread's first stack, or one of another size, or an empty cache. */
static __attribute__((noinline)) void *get_slow(size_t size)
{
    struct free_stack *s = NULL;
    if (size != FUT_FIBER_STACK_DEFAULT) {
        take_shared(size, &s, 1);
        return ready(s, size);
    }
    if (!cache_keyed) {
        pthread_once(&cache_once, make_key);
        pthread_setspecific(cache_key, &cache); /* any non-NULL */
        cache_keyed = true;
    }
    cache_n = take_shared(size, &cache, CACHE / 2);
    s = cache;
    if (s) {
        cache = s->next;
        cache_n--;
    }
    return ready(s, size);
}

void *fut__stack_get(size_t size)
{
    struct free_stack *s = cache;
    if (FUT__LIKELY(size == FUT_FIBER_STACK_DEFAULT && s)) {
        cache = s->next;
        cache_n--;
        return ready(s, size);
    }
    return get_slow(size);
}

static __attribute__((noinline)) void put_slow(struct free_stack *s,
                                               size_t size)
{
    if (size == FUT_FIBER_STACK_DEFAULT && cache_n < CACHE) {
        /* A thread that never got one: register the flush. */
        pthread_once(&cache_once, make_key);
        pthread_setspecific(cache_key, &cache);
        cache_keyed = true;
        s->next = cache;
        cache = s;
        cache_n++;
        return;
    }
    int c = class_of(size);
    pthread_mutex_lock(&lists_lock);
    s->next = lists[c];
    lists[c] = s;
    pthread_mutex_unlock(&lists_lock);
}

void fut__stack_put(void *lo, size_t size)
{
    struct free_stack *s = link_of(lo, size);
    if (FUT__LIKELY(size == FUT_FIBER_STACK_DEFAULT && cache_keyed &&
                    cache_n < CACHE)) {
        s->next = cache;
        cache = s;
        cache_n++;
        return;
    }
    put_slow(s, size);
}
