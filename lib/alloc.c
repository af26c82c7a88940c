/* libfut — allocation: the application's allocator and per-thread slabs.
 *
 * Futures, waiter nodes and small combinator records are 128-byte blocks,
 * each on two whole cache lines (block_alloc).  Each thread keeps a free
 * list of them (fut__tls.slab, at most SLAB_MAX), so the hot path
 * allocates and frees without a lock or an atomic.  Under
 * AddressSanitizer there are no free lists (see SLABS_ON).
 *
 * Going home.  A future is often made on one thread and freed on another (a
 * submitter and a pool worker, a producer and the loop).  If freed blocks
 * stayed where they were freed, the consumer's list would fill and spill to
 * the allocator while the producer's stays empty and mallocs: both pay the
 * allocator's cross-thread price.  So every block remembers its home:
 *
 *   - A home (struct fut_home) is a cache-line record per thread holding an
 *     MPSC stack of blocks freed elsewhere.  fut__alloc stamps the block it
 *     serves (requests of at most STAMPED = 120 bytes; larger ones go to the
 *     allocator directly) with the thread's home, in the block's last 8
 *     bytes, which no user of a stamped block touches (static asserts below).
 *
 *   - fut__free on a block whose stamp is this thread's home pushes it on
 *     the local list, as before.  A block from another home joins this
 *     thread's batch (fut__tls.rbatch: blocks for one home, at most
 *     BATCH_MAX); the batch goes home with one CAS when it is full, when a
 *     block for another home arrives, at thread exit and in
 *     fut_set_allocator.  A block stamped with no home (made on a thread
 *     without one) stays where it is freed.
 *
 *   - The owner takes its whole stack with one exchange when its local list
 *     is empty (a relaxed load first, so an empty stack costs no locked
 *     instruction).  Push-CAS and take-all exchange have no ABA problem:
 *     nothing ever pops a single node.
 *
 *       freeing thread B                  home thread A
 *       tail->next = head (read)          list = xchg(head, NULL)  acquire
 *       CAS(head, tail->next, batch)      walk list: links written by B
 *               release  ------------------->  are visible
 *
 *   - Bounds: a home's stack holds about REMOTE_MAX blocks at most (an
 *     approximate count, home.n, is checked before a push; it may be off by
 *     the batches in flight).  A batch for a full home, or for the orphaned
 *     home of an exited thread, joins the freeing thread's own list (it is
 *     restamped when served again) or, if that is full, goes to the
 *     allocator.  So a thread caches at most about SLAB_MAX + 2 * REMOTE_MAX
 *     blocks (its list after taking a full stack, plus a refilled stack:
 *     64 MiB of blocks, 96 MiB asked of the allocator), plus one batch per
 *     thread freeing to it.  REMOTE_MAX is large because producers and
 *     consumers run in bursts (on a loaded machine a submitter runs 10^5
 *     tasks ahead of a pool worker, which then frees them all at once):
 *     with 1024, 90% of a consumer's burst went to the allocator while the
 *     producer's next burst came from it; with 32768, a producer 10^6
 *     tasks ahead of the loop (bench/loop handoff) still got most of its
 *     blocks from malloc (21-24% of the samples in malloc, free and page
 *     faults), and 262144 took its time per task from a median of 93 to
 *     70 ns.  Memory in a full stack is
 *     memory the application had live at once; the allocator would hold
 *     it on its free lists just the same.  A thread that never has more
 *     than N futures live at once caches at most about N blocks.
 *
 *   - Homes are never freed: a block stamped with a home may be freed at any
 *     time, by any thread, so its home must stay valid.  When a thread
 *     exits (a pthread key destructor), it marks its home orphaned, sends
 *     its batch home, returns its list and its stack to the allocator and
 *     puts its home on the orphan list; it then frees straight to the
 *     allocator (slab_off) should one of the later key destructors free a
 *     block.  Frees to an orphan go elsewhere (above), except pushes already
 *     under way; those wait on its stack until the next thread that needs a
 *     home adopts the orphan, or fut_set_allocator drains every home.  So
 *     there are as many homes as threads ever used slabs at once; each is
 *     128 bytes of libc memory (not the application's allocator, so a
 *     counting allocator sees every block it handed out come back after
 *     fut_set_allocator).
 *
 *   - fut_set_allocator sends the calling thread's batch home, returns its
 *     list and then drains the stack of every home (any thread may take a
 *     stack: the exchange takes it whole).  Other threads' lists and
 *     batches are theirs: they must have exited (the documented contract:
 *     no executor thread runs).
 *
 *   - Threads with slab_off (the timer thread, exiting threads, a thread
 *     whose home could not be made) cache nothing: they free straight to
 *     the allocator and serve blocks stamped with no home.
 *
 *   - FUT_DEBUG keeps released futures in a quarantine instead (below). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

enum {
    SLAB_MAX = FUT__SLAB_MAX, /* blocks on a thread's local list */
    REMOTE_MAX = 262144,      /* about how many blocks wait on a home's stack */
    BATCH_MAX = 32            /* blocks a freeing thread gathers for one home */
};

/* Requests of up to STAMPED bytes get a slab block, stamped in its last
 * pointer; larger ones go straight to the allocator.  (internal.h, for the
 * inline fast paths of fut__alloc and fut__free.) */
#define STAMPED FUT__STAMPED
#define STAMP(b) FUT__STAMP(b)

_Static_assert(sizeof(struct fut) <= STAMPED,
               "a future must leave the block's last pointer to its stamp");
_Static_assert(FUT__BLOCK % sizeof(void *) == 0, "the stamp is aligned");

/* One per thread that ever used slabs, never freed.  The first cache line
 * is written by freeing threads (push) and by the owner (take); the second
 * only under g_mu. */
struct fut_home {
    _Alignas(64) _Atomic(void *) head;      /* blocks freed elsewhere */
    _Atomic int n;                          /* about how many */
    _Atomic int orphan;                     /* its thread exited */
    _Alignas(64) struct fut_home *next_all; /* g_all, under g_mu */
    struct fut_home *next_orphan;           /* g_orphans, under g_mu */
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static struct fut_home *g_all;     /* every home */
static struct fut_home *g_orphans; /* homes whose thread exited */

/* Relaxed: the allocator is set while no libfut object is alive (documented),
 * so no ordering with other memory is needed, only freedom from tearing. */
static _Atomic(void *(*)(size_t)) g_alloc;
static _Atomic(void (*)(void *)) g_dealloc;

static pthread_key_t g_key;
static pthread_once_t g_key_once = PTHREAD_ONCE_INIT;
static int g_key_ok;

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

/* Under AddressSanitizer the free lists are off: every block goes back to
 * the allocator at once, so a use after release is reported exactly and
 * LeakSanitizer (which does not look inside poisoned blocks) sees every
 * live pointer. */
#define SLABS_ON FUT__SLABS_ON /* internal.h */

/* A slab block starts on a cache line, so that a future's first line
 * (internal.h: a task's whole life, made, handed over, run, freed) is one
 * line and its stamp is in the other: with malloc's 16-byte alignment
 * three blocks in four straddled three lines, and a task handed to another
 * thread moved two lines there and two back.  The allocator promises no
 * more than malloc's alignment (8 bytes are enough here), so a block is
 * cut at the first line boundary of a request LINE bytes longer, and the
 * request's own address is kept right after the block, for block_free.
 * Without the lists (AddressSanitizer) a block is the request itself, so
 * that an overflow past its 128 bytes is reported. */
enum { LINE = 64 };

static void *block_alloc(void)
{
    if (!SLABS_ON)
        return fut__sys_alloc(FUT__BLOCK);
    char *p = fut__sys_alloc(FUT__BLOCK + LINE);
    if (!p)
        return NULL;
    char *b = p + (-(uintptr_t)p & (LINE - 1));
    ((void **)b)[FUT__BLOCK / sizeof(void *)] = p;
    return b;
}

/* B, a block from block_alloc, back to the allocator. */
static void block_free(void *b)
{
    fut__sys_free(SLABS_ON ? ((void **)b)[FUT__BLOCK / sizeof(void *)] : b);
}

static int register_exit(struct fut_tls *t);

enum { QUARANTINE_MAX = 4096 };

static void quarantine_flush(struct fut_tls *t, unsigned keep)
{
    while (t->quar_n > keep) {
        fut_t *f = t->quar_head;
        t->quar_head = f->dnext;
        if (!t->quar_head)
            t->quar_tail = NULL;
        t->quar_n--;
        block_free(f);
    }
}

void fut__quarantine(fut_t *f)
{
    struct fut_tls *t = &fut__tls;
    if (t->slab_off || !register_exit(t)) { /* keeps nothing */
        block_free(f);
        return;
    }
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
    int n = snprintf(msg, sizeof msg - 1,
                     "libfut: %s of future %p after its last release", what, f);
    fut_log_event_t ev = {.level = FUT_LOG_ERROR, .msg = msg};
    if (!fut__log_event(&ev) && n > 0) {
        /* Nobody listens: one line on stderr, so the user sees why
         * before "Aborted" (the one thing the library ever prints).
         * write(), not stdio: no buffer or lock of the application's. */
        size_t len = (size_t)n < sizeof msg - 2 ? (size_t)n : sizeof msg - 2;
        msg[len] = '\n';
        (void)!write(STDERR_FILENO, msg, len + 1);
    }
    abort();
}

/* ---- homes --------------------------------------------------------------- */

static void free_list(void *p)
{
    while (p) {
        void **b = p;
        p = *b;
        block_free(b);
    }
}

/* Takes H's whole stack; *N gets about how many blocks it holds.  Any
 * thread.  Acquire: pairs with the release CAS in batch_send, so the links
 * (and everything the freeing thread wrote before) are visible. */
static void *home_take(struct fut_home *h, int *n)
{
    *n = 0;
    if (!atomic_load_explicit(&h->head, memory_order_relaxed))
        return NULL;
    void *list = atomic_exchange_explicit(&h->head, NULL, memory_order_acquire);
    /* Relaxed: only a bound, never used to find a block. */
    *n = atomic_exchange_explicit(&h->n, 0, memory_order_relaxed);
    return list;
}

/* Gives this thread a home: an orphan if there is one, else a new one.  On
 * failure the thread caches nothing from then on. */
static struct fut_home *home_get(struct fut_tls *t)
{
    if (!register_exit(t)) {
        t->slab_off = 1;
        return NULL;
    }
    pthread_mutex_lock(&g_mu);
    struct fut_home *h = g_orphans;
    if (h) {
        g_orphans = h->next_orphan;
        /* Relaxed: only steers pushers (batch_send); g_mu orders it with
         * the exit that set it. */
        atomic_store_explicit(&h->orphan, 0, memory_order_relaxed);
    }
    pthread_mutex_unlock(&g_mu);
    if (!h) {
        void *mem = NULL;
        /* libc, not the application's allocator: homes are never freed. */
        if (posix_memalign(&mem, 64, sizeof *h) != 0) {
            t->slab_off = 1;
            return NULL;
        }
        h = mem;
        atomic_init(&h->head, NULL);
        atomic_init(&h->n, 0);
        atomic_init(&h->orphan, 0);
        h->next_orphan = NULL;
        pthread_mutex_lock(&g_mu);
        h->next_all = g_all;
        g_all = h;
        pthread_mutex_unlock(&g_mu);
    }
    t->home = h;
    return h;
}

/* Sends this thread's batch home: one CAS.  If the home already holds about
 * REMOTE_MAX blocks or its thread has exited, the batch joins this thread's
 * list (or, if that is full, goes to the allocator). */
static void batch_send(struct fut_tls *t)
{
    struct fut_home *h = t->rbatch_home;
    void **first = t->rbatch, **last = t->rbatch_tail;
    int n = (int)t->rbatch_n;
    if (!first)
        return;
    t->rbatch = t->rbatch_tail = NULL;
    t->rbatch_home = NULL;
    t->rbatch_n = 0;
    /* Relaxed: a bound (see home_take) and a hint; a push that misses the
     * orphan mark only leaves blocks for the adopter or fut_set_allocator. */
    if (atomic_load_explicit(&h->n, memory_order_relaxed) >= REMOTE_MAX ||
        atomic_load_explicit(&h->orphan, memory_order_relaxed)) {
        if (t->slab_n + n <= SLAB_MAX) {
            *last = t->slab;
            t->slab = first;
            t->slab_n += n;
        } else {
            free_list(first);
        }
        return;
    }
    void *old = atomic_load_explicit(&h->head, memory_order_relaxed);
    do
        *last = old;
    /* Release on success: pairs with the acquire exchange in home_take, so
     * the links written above are visible to whoever takes the stack.
     * Relaxed on failure: OLD is only stored into a link we still own. */
    while (!atomic_compare_exchange_weak_explicit(
        &h->head, &old, first, memory_order_release, memory_order_relaxed));
    atomic_fetch_add_explicit(&h->n, n, memory_order_relaxed);
}

/* fork() (fork.c): BEFORE takes g_mu so that the child's lists are whole;
 * the parent lets go; in the child every home but the forking thread's
 * belongs to a thread that is not there: orphan it, so the child's new
 * threads adopt it (and the blocks on its stack) as after a thread exit. */
void fut__alloc_fork(enum fut_fork_phase phase)
{
    if (phase == FUT_FORK_BEFORE) {
        pthread_mutex_lock(&g_mu);
        return;
    }
    if (phase == FUT_FORK_PARENT) {
        pthread_mutex_unlock(&g_mu);
        return;
    }
    pthread_mutex_init(&g_mu, NULL); /* the parent's holder is gone */
    for (struct fut_home *h = g_all; h; h = h->next_all) {
        /* Relaxed: the child has one thread. */
        if (h == fut__tls.home ||
            atomic_load_explicit(&h->orphan, memory_order_relaxed))
            continue;
        atomic_store_explicit(&h->orphan, 1, memory_order_relaxed);
        h->next_orphan = g_orphans;
        g_orphans = h;
    }
}

/* ---- per-thread lists ---------------------------------------------------- */

static void slab_flush(struct fut_tls *t)
{
    batch_send(t); /* may move the batch to our own list: flush that after */
    quarantine_flush(t, 0);
    free_list(t->slab);
    t->slab = NULL;
    t->slab_n = 0;
}

static void slab_thread_exit(void *arg)
{
    struct fut_tls *t = arg; /* the thread's own fut__tls: register_exit */
    slab_flush(t);
    struct fut_home *h = t->home;
    if (h) {
        int n;
        /* Relaxed: a hint for pushers (batch_send), set before the drain so
         * that only pushes already under way can land after it. */
        atomic_store_explicit(&h->orphan, 1, memory_order_relaxed);
        free_list(home_take(h, &n));
        t->home = NULL;
        pthread_mutex_lock(&g_mu);
        h->next_orphan = g_orphans;
        g_orphans = h;
        pthread_mutex_unlock(&g_mu);
    }
    t->slab_off = 1; /* later key destructors free straight back */
}

static void key_init(void)
{
    g_key_ok = pthread_key_create(&g_key, slab_thread_exit) == 0;
}

/* Makes this thread return what it caches when it exits.  False if that
 * cannot be arranged (no key): then the thread must cache nothing. */
static int register_exit(struct fut_tls *t)
{
    if (FUT__UNLIKELY(!t->slab_registered)) {
        pthread_once(&g_key_once, key_init);
        if (!g_key_ok || pthread_setspecific(g_key, t) != 0)
            return 0;
        t->slab_registered = 1;
    }
    return 1;
}

/* The local list is empty: take the home's stack, else ask the allocator. */
static void *refill(struct fut_tls *t)
{
    struct fut_home *h = t->home;
    if (!h && !t->slab_off)
        h = home_get(t);
    if (h) {
        int n = 0;
        void **b = home_take(h, &n);
        if (b) {
            t->slab = *b;
            t->slab_n = n - 1; /* may be off by batches in flight */
            return b;
        }
    }
    return block_alloc();
}

/* Everything but a block from the local list: kept out of line so that the
 * fast path saves no registers. */
static __attribute__((noinline)) void *alloc_slow(struct fut_tls *t,
                                                  size_t size)
{
    if (!SLABS_ON || size > STAMPED)
        return fut__sys_alloc(size <= FUT__BLOCK ? FUT__BLOCK : size);
    void **b = refill(t);
    if (b)
        STAMP(b) = t->home; /* NULL on a slab_off thread */
    return b;
}

/* fut__alloc's fast path is inline (internal.h). */
void *fut__alloc_slow(size_t size)
{
    return alloc_slow(&fut__tls, size);
}

/* Everything but a block of this thread's home going on a list with room:
 * NULL, a large block, a slab_off thread (which has no home), another
 * home's block, one with no home, or ours with the list full. */
static __attribute__((noinline)) void free_slow(struct fut_tls *t, void *p,
                                                size_t size)
{
    if (!p)
        return;
    if (!SLABS_ON || size > STAMPED) {
        fut__sys_free(p);
        return;
    }
    void **b = p;
    if (t->slab_off) {
        block_free(b);
        return;
    }
    struct fut_home *h = STAMP(b);
    if (!h || h == t->home) {
        if (t->slab_n < SLAB_MAX && register_exit(t)) {
            *b = t->slab;
            t->slab = b;
            t->slab_n++;
        } else {
            block_free(b);
        }
        return;
    }
    if (!register_exit(t)) {
        block_free(b);
        return;
    }
    if (t->rbatch_home != h)
        batch_send(t);
    if (!t->rbatch)
        t->rbatch_tail = b;
    *b = t->rbatch;
    t->rbatch = b;
    t->rbatch_home = h;
    if (++t->rbatch_n >= BATCH_MAX)
        batch_send(t);
}

/* fut__free's fast path is inline (internal.h); this is the next most
 * common case, a consumer freeing a producer's blocks (the loop running
 * posted work): a block for the home this thread's batch already gathers
 * for, with room left, joins it.  A batch (rbatch_n != 0) exists only on a
 * thread registered for its exit and not exiting yet (free_slow started
 * it; slab_flush ends it), and never for the thread's own home. */
void fut__free_slow(void *p, size_t size)
{
    struct fut_tls *t = &fut__tls;
    void **b = p;
    if (FUT__LIKELY(SLABS_ON && b && size <= STAMPED && t->rbatch_n &&
                    STAMP(b) == t->rbatch_home &&
                    t->rbatch_n < BATCH_MAX - 1)) {
        *b = t->rbatch; /* not the first of the batch: rbatch_tail stays */
        t->rbatch = b;
        t->rbatch_n++;
        return;
    }
    free_slow(t, p, size);
}

void fut_set_allocator(void *(*alloc)(size_t), void (*dealloc)(void *))
{
    slab_flush(&fut__tls);
    /* A home's next_all never changes once the home is on g_all, so the
     * walk needs the lock only to read the head (and the allocator is not
     * called under it). */
    pthread_mutex_lock(&g_mu);
    struct fut_home *all = g_all;
    pthread_mutex_unlock(&g_mu);
    for (struct fut_home *h = all; h; h = h->next_all) {
        int n;
        free_list(home_take(h, &n));
    }
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
