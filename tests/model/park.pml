/* park.pml -- the pool's parking protocol (executors/pool/pool.c, "Sleeping" and
 * "Why no wake-up is lost"), modelled for spin.
 *
 * Processes: W workers (worker_main: find work, spin, park) and one outside
 * submitter (pool_submit from a foreign thread).  A worker's first task
 * spawns one child into its own deque (pool_submit from a worker), so both
 * publication paths are there.  Queues are abstracted to counters: taking
 * from a queue is atomic (the deque and the Treiber stack are linearizable;
 * their own correctness is tests/test_deque.c's and deque_stress's job).
 * The steps of the protocol itself -- the loads and locked operations on
 * nspinning, nsleepers and the event count -- are separate steps, so spin
 * explores every interleaving of them.
 *
 * The event count: ck_ec32_wait(ec, v) returns once the value differs from
 * v (ck_ec sets a waiter flag and futex-waits; inc wakes every waiter if
 * the flag is set).  Modelled as a guard "ec != v".
 *
 * Memory model: sequentially consistent, except a worker's push into its
 * own deque, which on x86 is a plain store that can sit in the store buffer
 * while the pusher loads nspinning/nsleepers.  With -DTSO the push goes to
 * a per-worker buffer that commits at any later moment, and the parker's
 * membarrier(PRIVATE_EXPEDITED) commits every buffer (a full barrier on
 * every thread).  The outside submitter's push is a locked CAS (a full
 * barrier), so it is never buffered.
 *
 * Property: when nothing can move any more (spin's `timeout`), every task
 * was run.  A task left in a queue while every worker sleeps is exactly a
 * lost wake-up; spin reports it as an assertion violation with a trail.
 * Workers sleeping with nothing to do are a valid end state (end label).
 *
 * Variants (spin -D...):
 *   BROKEN_ANNOUNCE_LATE  the parker re-checks the queues *before*
 *                         announcing itself (nsleepers += 1): a submit in
 *                         between sees no sleeper and sends no wake-up.
 *   BROKEN_NO_RECHECK     the parker never re-checks after announcing.
 *   BROKEN_CLEAR_BEFORE_READ  wake_pending cleared on entering park()
 *                         *before* reading the event count: the lost
 *                         wake-up the model found in pool.c as of 22:42
 *                         (README.md); pool.c now clears it after.
 *   BROKEN_CLEAR_ON_EXIT  wake_pending is cleared when a sleeper leaves the
 *                         wait, not when a worker enters park() (the bug
 *                         pool.c's comment on fut__pool_wake() describes).
 *   BROKEN_NO_MEMBARRIER  (with -DTSO) no membarrier in park: the worker's
 *                         buffered push may be missed by the re-check; the
 *                         essay claims this only costs parallelism, since
 *                         the pusher runs its own deque first -- the model
 *                         checks that claim (it must still pass).
 */

#ifndef W
#define W 2         /* workers */
#endif
#ifndef N
#define N 2         /* tasks from the outside submitter */
#endif
#define SPIN 1      /* find_work rounds while spinning */
#define TOTAL (N + 1) /* plus one child spawned by a worker */

byte inj = 0;       /* injection queue (Treiber stack) */
byte dq[W];         /* committed deque sizes */
byte buf[W];        /* TSO: pushes still in worker i's store buffer */
byte nspinning = 0;
byte nsleepers = 0;
byte ec = 0;        /* event count value */
bool wake_pending = false; /* a wake-up is on its way (pool.c fut__pool_wake()) */
byte done = 0;      /* tasks run */
bool spawned = false;

/* The membarrier: every store buffer drains. */
inline membarrier()
{
    atomic {
        i = 0;
        do
        :: i < W -> dq[i] = dq[i] + buf[i]; buf[i] = 0; i++
        :: else -> break
        od
    }
}

/* find_work: own deque (own buffered pushes are visible to oneself),
 * then the injection queue, then steal.  GOT = 1 if a task was taken. */
inline find_work()
{
    atomic {
        if
        :: buf[me] > 0 -> buf[me]--; got = 1
        :: buf[me] == 0 && dq[me] > 0 -> dq[me]--; got = 1
        :: buf[me] == 0 && dq[me] == 0 && inj > 0 -> inj--; got = 1
        :: buf[me] == 0 && dq[me] == 0 && inj == 0 && dq[1 - me] > 0 ->
            dq[1 - me]--; got = 1
        :: else -> got = 0
        fi
    }
}

/* wake() (pool.c's fut__pool_wake): only the submitter that flips
 * wake_pending 0 -> 1 bumps the event count (a burst of submits sends one
 * wake-up); every worker clears the flag in park(), right after it reads
 * the event count. */
inline wake()
{
    if
    :: atomic { wake_pending == 0 -> wake_pending = 1 };
       ec++  /* ck_ec32_inc: locked; wakes every waiter */
    :: else -> skip
    fi
}

/* maybe_wake after a worker's push: two plain loads, then maybe a wake. */
inline maybe_wake()
{
    s1 = nspinning;
    s2 = nsleepers;
    if
    :: s1 == 0 && s2 != 0 -> wake()
    :: else -> skip
    fi
}

inline run_task()
{
    done++;
    if
    :: atomic {
           !spawned ->
           spawned = true;
#ifdef TSO
           buf[me]++  /* plain store of the deque's bottom */
#else
           dq[me]++
#endif
       };
       maybe_wake()
    :: else -> skip
    fi
}

inline work_visible()
{
    atomic {
        vis = inj > 0;
        i = 0;
        do
        :: i < W -> vis = vis || dq[i] > 0; i++
        :: else -> break
        od
    }
}

proctype worker(byte me)
{
    byte got, v, s1, s2, k, i, old;
    bool vis;
loop:
    find_work();
    if
    :: got -> run_task(); goto loop
    :: else -> skip
    fi;
    /* spin_for_work */
    nspinning++;
    k = 0;
    do
    :: k < SPIN && !got -> find_work(); k++
    :: else -> break
    od;
    atomic { old = nspinning; nspinning-- };  /* locked faa */
    if
    :: got ->
        s2 = nsleepers;
        if
        :: old == 1 && s2 != 0 -> wake()   /* ramp up */
        :: else -> skip
        fi;
        run_task();
        goto loop
    :: else -> skip
    fi;
    /* park */
#ifdef BROKEN_CLEAR_BEFORE_READ
    wake_pending = false;    /* the 22:42 bug: re-armed before reading ec */
#endif
    v = ec;
#if !defined(BROKEN_CLEAR_ON_EXIT) && !defined(BROKEN_CLEAR_BEFORE_READ)
    wake_pending = false;    /* re-arm wake-ups after reading ec (pool.c) */
#endif
#ifdef BROKEN_ANNOUNCE_LATE
    work_visible();
    if
    :: vis || buf[me] > 0 -> goto loop
    :: else -> skip
    fi;
    nsleepers++;
#else
    nsleepers++;             /* locked */
#ifndef BROKEN_NO_MEMBARRIER
    membarrier();
#endif
#ifndef BROKEN_NO_RECHECK
    work_visible();
    if
    :: vis || buf[me] > 0 -> nsleepers--; goto loop
    :: else -> skip
    fi;
#endif
#endif
end_wait:
    ec != v;                 /* ck_ec32_wait(ec, v) */
#ifdef BROKEN_CLEAR_ON_EXIT
    wake_pending = false;    /* cleared on the way out of the wait only */
#endif
    nsleepers--;
    goto loop
}

/* pool_submit from a foreign thread: a locked push (full barrier), then
 * the two loads and maybe a wake-up. */
active proctype submitter()
{
    byte s1, s2, n = 0;
    do
    :: n < N ->
        inj++;
        s1 = nspinning;
        s2 = nsleepers;
        if
        :: s1 == 0 && s2 != 0 -> wake()
        :: else -> skip
        fi;
        n++
    :: else -> break
    od
}

/* TSO: a buffered store commits at any moment. */
#ifdef TSO
active proctype commit()
{
end_commit:
    do
    :: atomic { buf[0] > 0 -> dq[0]++; buf[0]-- }
    :: atomic { buf[1] > 0 -> dq[1]++; buf[1]-- }
    od
}
#endif

init
{
    byte j = 0;
    atomic {
        do
        :: j < W -> run worker(j); j++
        :: else -> break
        od
    }
}

/* Once nothing can move, every task has run: no lost wake-up. */
active proctype monitor()
{
    timeout -> assert(done == TOTAL)
}
