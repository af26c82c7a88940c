/* libfut-mpi — remote calls as futures over MPI.  A separate library
 * (pkg-config fut-mpi; link -lfut-mpi -lfut and MPI), so libfut itself
 * needs only pthreads and Concurrency Kit.  Include <fut.h> and <mpi.h>
 * first, or just this header.
 *
 * Every rank runs the same program: it creates the group collectively,
 * registers the same names in the same order, then calls functions on any
 * rank and gets futures back:
 *
 *     fut_mpi_t *m;
 *     fut_mpi_create(&m, MPI_COMM_WORLD, NULL);        // every rank
 *     fut_mpi_register(m, "square", square, NULL);     // every rank, alike
 *     if (fut_mpi_rank(m) == 0) {
 *         int64_t x = 7;
 *         fut_t *f = fut_mpi_call(m, FUT_MPI_ANY, "square", &x, sizeof x);
 *         fut_mpi_wait(m, f, -1);                      // or chain on it
 *         ... fut_value_i64(f) == 49 ...
 *         fut_release(f);
 *     } else {
 *         fut_mpi_serve(m);                            // until all are done
 *     }
 *     fut_mpi_destroy(m);                              // every rank
 *
 * What travels.  The argument is a byte string (copied at the call).  The
 * function's result comes back as: fut_ok_bytes(p, n) -> a fulfilled future
 * whose fut_value is an owned fut_bytes_t * (freed with the future);
 * fut_ok_i64(v) -> fut_value_i64 v; fut_ok(NULL) -> fulfilled, no value;
 * fut_fail(err) -> rejected with err (fut_ok_i64(0) arrives as no value:
 * fut_value_i64 reads 0 from both).  fut_adopt / fut_forward of a future
 * already settled when the function returns travel as that future's
 * outcome.  Anything else (a pointer, an owned value other than bytes
 * made by fut_ok_bytes on the thread running the function, an adopted or
 * forwarded future still pending) cannot travel: the call rejects with
 * FUT_EINVAL and the value is disposed on the serving rank.
 * Arguments and byte values are limited to INT_MAX - 24 bytes.  A call and
 * a reply are one MPI message (a 24-byte header, then the bytes) up to 4
 * KiB, else two (the header, then the bytes received in place).
 *
 * Threads.  One thread at a time makes MPI calls for the group (the "MPI
 * thread"); MPI must provide at least MPI_THREAD_FUNNELED (fut_mpi_create
 * refuses less with FUT_MPI_ENOTSUP).
 *  - With MPI_THREAD_SERIALIZED or MULTIPLE, the group starts a progress
 *    thread that owns MPI.  A thread blocked in fut_mpi_wait takes MPI over
 *    while its reply is due and polls it itself (the reply then settles the
 *    future on the waiting thread, with no wake-up across cores: raw MPI
 *    latency), and hands it back to the progress thread when idle.
 *  - With MPI_THREAD_FUNNELED only the thread that initialised MPI may make
 *    MPI calls, so there is no progress thread: calls progress only while
 *    that thread is inside fut_mpi_wait, fut_mpi_serve or fut_mpi_destroy.
 *    Wait with fut_mpi_wait there (a plain fut_wait would wait forever).
 *  - The MPI thread never spins a core while idle: after SPIN empty polls
 *    it sleeps, from 20 us doubling up to IDLE_NS between polls, and wakes
 *    at once for a new call or a finished remote function.  (After a
 *    waiter handed MPI back with nothing outstanding, the progress thread
 *    finishes its nap, and one more if the hand-back fell within it: a
 *    call made then without a waiter is sent within 2 IDLE_NS.  That
 *    spares a ping-pong of calls and waits a wake-up per call.)
 *  - Between fut_mpi_create and fut_mpi_destroy the application makes no
 *    MPI calls of its own unless MPI provides MPI_THREAD_MULTIPLE.
 *  - Futures of calls settle on the MPI thread: a continuation attached on
 *    fut_inline() runs there and must be short; put real work on a pool.
 *  - Incoming calls run on this rank's own pool (opts.workers), or on the
 *    MPI thread itself with opts.run_inline.
 *
 * Failure.  The group works on a duplicate of COMM, which keeps COMM's
 * error handler.  With MPI's default (MPI_ERRORS_ARE_FATAL) any MPI error,
 * including a rank that dies, aborts the whole job (Open MPI's mpirun kills
 * every rank).  With MPI_ERRORS_RETURN set on COMM, an MPI call that fails
 * breaks the group on that rank: every pending call rejects with
 * FUT_MPI_ECOMM, later calls too, and fut_mpi_serve returns it; MPI gives
 * no way to continue with the other ranks (Open MPI 4.1 without ULFM
 * cannot shrink a communicator), so finish and abort.  A remote function
 * that never returns hangs its caller: bound it with fut_timeout.
 *
 * Timeouts and cancellation.  fut_timeout(call, ns) or fut_cancel(call)
 * settles the caller's future at once (FUT_ETIMEDOUT / FUT_ECANCELED).  A
 * call still queued on this rank is then never sent; a call already sent
 * runs to its end on the remote rank (MPI cannot take it back), keeps its
 * in-flight slot until its reply arrives, and the reply is discarded. */
#ifndef FUT_MPI_H
#define FUT_MPI_H

#include <mpi.h>

#include <fut.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fut_mpi fut_mpi_t;

/* A byte string value: LEN bytes at DATA.  (C++ has no flexible array
 * member; g++ and clang++ accept it as an extension, so the pedantic
 * warning is silenced for this one declaration.) */
#ifdef __cplusplus
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
#endif
typedef struct fut_bytes {
    size_t len;
    unsigned char data[];
} fut_bytes_t;
#ifdef __cplusplus
#pragma GCC diagnostic pop
#endif

/* A function callable from other ranks: ARG (LEN bytes, borrowed for the
 * call; aligned to 8 bytes) is the caller's argument, UD the pointer given
 * at registration.  Returns the result the caller's future settles with
 * (see "What travels" above).  Runs on this rank's pool, or on its MPI
 * thread with opts.run_inline. */
typedef fut_result_t (*fut_mpi_fn)(const void *arg, size_t len, void *ud);

enum { FUT_MPI_ANY = -1 };

/* Errors of libfut-mpi, beside libfut's. */
enum {
    /* fut_mpi_call: no function of that name is registered on this rank,
     * or the serving rank registered another name under the same number
     * (fut_strerror: "Function not implemented"). */
    FUT_MPI_ENOSYS = -ENOSYS,
    /* fut_mpi_create: MPI's thread level is below MPI_THREAD_FUNNELED, or
     * FUNNELED and the caller is not the thread that initialised MPI;
     * fut_mpi_serve, fut_mpi_destroy: FUNNELED, not that thread. */
    FUT_MPI_ENOTSUP = -ENOTSUP,
    /* An MPI call failed (only with MPI_ERRORS_RETURN on the communicator):
     * the group is broken on this rank. */
    FUT_MPI_ECOMM = -ECOMM
};

/* Options; a zeroed struct (or NULL) gives the defaults.
 *  workers:       threads of this rank's pool that run incoming calls;
 *                 0 = online CPUs.
 *  max_in_flight: calls this rank has sent to one rank and not yet had
 *                 answered; beyond it calls queue here.  0 = 64.
 *  spin:          empty polls of MPI before the MPI thread starts to sleep;
 *                 0 = 2000.
 *  idle_ns:       longest sleep between two polls when idle; 0 = 1 ms.
 *                 An idle rank notices a call at most this late.
 *  run_inline:    run incoming calls on the MPI thread itself, no pool: for
 *                 functions far shorter than a message round trip (no
 *                 hand-off to a worker); a long one delays every message.
 *                 Off by default, and never chosen by measuring: on the
 *                 MPI thread a function holds up every message of this
 *                 rank while it runs and may not wait (fut_mpi_wait gives
 *                 FUT_EDEADLK there, a fut_wait for a remote reply never
 *                 ends), so which functions may run there is the
 *                 application's decision, not one a past run time can
 *                 make.  On the pool, a call that finds every worker
 *                 parked pays a cross-core wake-up (about 20 us on a VM,
 *                 5-20 us on bare metal); workers spin before parking
 *                 (fut_pool_opts_t.spin), so back-to-back calls find one
 *                 awake when the rank has a core to spare. */
typedef struct fut_mpi_opts {
    unsigned workers;
    unsigned max_in_flight;
    unsigned spin;
    uint64_t idle_ns;
    bool run_inline;
} fut_mpi_opts_t;

/* Creates this rank's member of a call group over COMM.  Collective: every
 * rank of COMM calls it (it duplicates COMM), after MPI_Init_thread.
 * Ownership: OPTS borrowed; COMM borrowed (the group uses a duplicate, so
 *   COMM may be freed after fut_mpi_destroy); *OUT receives the handle.
 * Returns: 0 and *OUT; FUT_EINVAL (OUT NULL, MPI not initialised or
 *   finalised, COMM MPI_COMM_NULL or an inter-communicator, max_in_flight
 *   above 2^20); FUT_MPI_ENOTSUP (thread level, above); FUT_ENOMEM; the
 *   error of a failed pool or thread start.
 * Threads: under FUNNELED the thread that initialised MPI; else any one
 *   thread per rank, not concurrently with other MPI calls. */
FUT_API int fut_mpi_create(fut_mpi_t **out, MPI_Comm comm,
                           const fut_mpi_opts_t *opts);

/* Registers FN under NAME (copied; up to 255 bytes) with UD (borrowed).
 * Every rank registers the same names in the same order, before its first
 * fut_mpi_call, fut_mpi_wait or fut_mpi_serve (incoming calls are taken
 * only from then on, so none arrives before its function exists).
 * Returns: 0; FUT_EINVAL (M, NAME or FN NULL, NAME empty or too long);
 *   FUT_EALREADY (NAME registered already, or registration closed: this
 *   rank already called, waited or served); FUT_ENOMEM.
 * Threads: any, not concurrently with other calls on M. */
FUT_API int fut_mpi_register(fut_mpi_t *m, const char *name, fut_mpi_fn fn,
                             void *ud);

/* Calls NAME on RANK (0 .. size-1, this rank included) with LEN bytes at
 * ARG (copied before it returns; ARG may be NULL when LEN is 0).  RANK
 * FUT_MPI_ANY sends the call to the rank with the fewest of this rank's
 * calls in flight (ties: the next rank after the last one chosen).
 * Returns at once a pending future that settles with the remote result
 * (above).  Ownership: ARG and NAME borrowed; returns a new reference.
 * Returns: never NULL; as a rejected future: FUT_MPI_ENOSYS (NAME unknown
 *   here, or the serving rank's function under that number has another
 *   name), FUT_EINVAL (M or NAME NULL, RANK out of range, ARG NULL with LEN
 *   > 0, LEN too large, or a result that cannot travel), FUT_ENOMEM,
 *   FUT_ESHUTDOWN (this rank already entered fut_mpi_serve or
 *   fut_mpi_destroy), FUT_MPI_ECOMM (group broken).
 * Threads: any, concurrently (also inside remote functions and
 *   continuations, until this rank serves or destroys). */
FUT_API fut_t *fut_mpi_call(fut_mpi_t *m, int rank, const char *name,
                            const void *arg, size_t len);

/* Waits for F (borrowed) like fut_wait, and makes this thread the MPI
 * thread while it waits if it may (see Threads above), so a reply settles
 * F here with no cross-thread wake-up.  Does not spin while idle.
 * Returns: 0 once F settled; FUT_ETIMEDOUT (TIMEOUT_NS < 0: forever);
 *   FUT_EDEADLK if F is pending and this is the MPI thread itself (a
 *   remote function run inline, or a continuation run on the MPI thread);
 *   FUT_EINVAL (M or F NULL).
 * Threads: any. */
FUT_API int fut_mpi_wait(fut_mpi_t *m, fut_t *f, int64_t timeout_ns);

/* Declares that this rank makes no more calls and serves the others until
 * the group shuts down: returns once every rank has entered fut_mpi_serve
 * or fut_mpi_destroy and every call in the group has been answered.  Then
 * call fut_mpi_destroy.  Later fut_mpi_call on this rank rejects
 * FUT_ESHUTDOWN.
 * Returns: 0; FUT_EINVAL (M NULL); FUT_EDEADLK (on the MPI thread);
 *   FUT_MPI_ENOTSUP (FUNNELED, and not the thread that initialised MPI:
 *   nothing is done); FUT_MPI_ECOMM (group broken).
 * Threads: any one thread (under FUNNELED: the one that initialised MPI). */
FUT_API int fut_mpi_serve(fut_mpi_t *m);

/* This rank's number in the group (its rank in COMM), and the group's
 * size.  FUT_EINVAL for NULL.  Threads: any. */
FUT_API int fut_mpi_rank(const fut_mpi_t *m);
FUT_API int fut_mpi_size(const fut_mpi_t *m);

/* Shuts the group down and frees M.  Collective: every rank calls it.  It
 * first serves as fut_mpi_serve does (if it has not), so every call made
 * before it, queued or in flight, settles with its real result before it
 * returns; then stops the progress thread and the pool and frees the
 * duplicated communicator.  Futures of calls stay valid.
 * Returns: 0; FUT_EINVAL (M NULL); FUT_EDEADLK (on the MPI thread:
 *   nothing is done); FUT_MPI_ENOTSUP (as fut_mpi_serve); FUT_MPI_ECOMM
 *   (group broken: freed without the collective steps).
 * Threads: any one thread (under FUNNELED: the one that initialised MPI);
 *   no other use of M may start or be running. */
FUT_API int fut_mpi_destroy(fut_mpi_t *m);

/* A result whose value is an owned copy of the LEN bytes at P, as a
 * fut_bytes_t * (freed when the future goes).  It is what a remote
 * function returns to send bytes back; it also works as any owned value.
 * Returns: the result; fut_fail(FUT_ENOMEM) if the copy cannot be made;
 *   fut_fail(FUT_EINVAL) if P is NULL with LEN > 0.
 * Threads: any.
 * A serving rank recognises bytes it is to send by the block: the one
 * fut_ok_bytes made last on the thread running the function, so make them
 * there (directly, or in a future the function adopts or forwards).
 * (Why here and not in libfut's core: an owned value is already what
 * fut_ok_owned makes; this library only needs to recognise the block when
 * a serving rank sends a result, so the core needs no new value kind, and
 * libfut stays free of anything only MPI uses.) */
FUT_API fut_result_t fut_ok_bytes(const void *p, size_t len);

#ifdef __cplusplus
}
#endif
#endif
