/* libfut — I/O operations as futures: sockets and pipes on any executor
 * with fd readiness (fut_read, fut_write, fut_accept, fut_connect: the
 * loop, the libuv and GLib adapters), positioned file I/O
 * (fut_pread, fut_pwrite) and name lookup (fut_getaddrinfo) on any
 * executor.  Include <fut.h>.
 *
 * Socket operations (read, write, accept, connect) run on the thread of
 * their executor LOOP: the loop's, or the host loop's for an adapter (any
 * executor whose ops have fd_ready; "the loop" below).  Each tries its
 * system call first and waits for readiness (the loop's epoll, or
 * fut_fd_ready on LOOP) only when the call says EAGAIN, so a ready socket
 * costs no poll round; EINTR is retried.  One exception on the built-in
 * loop, as libuv does: a fut_read made after a read on the same fd
 * returned fewer bytes than it asked (the socket was emptied then) waits
 * for readability first, which saves the EAGAIN call a request/response
 * protocol would pay per request.  That hint is spent by the read that
 * waits, and cleared when fut_accept returns the fd's number; a number
 * closed and reused in other ways may keep it, which costs its first read
 * one poll round, never a wrong result.  Errors reject with -errno
 * (-ECONNREFUSED, -EPIPE, -ECONNRESET, -EBADF, ...).  Operations on one fd
 * are queued in the order they were made (per calling thread): reads and
 * accepts in one queue, writes and connects in another, so many writes
 * queued on one fd go out in order, each whole.
 *
 * The fd: borrowed.  Sockets are read and written with MSG_DONTWAIT, so a
 * blocking socket works too, except for accept and connect: a blocking
 * listening socket makes fut_accept block the loop thread until a client
 * comes, a blocking socket makes fut_connect block it until connected (the
 * loop's stall detector reports such calls).  Other fds (pipes, ttys) must
 * be non-blocking (O_NONBLOCK): a blocking one blocks the loop thread in
 * read(2) / write(2).  Writing to a pipe with no reader raises SIGPIPE as
 * write(2) does (sockets do not: MSG_NOSIGNAL); ignore SIGPIPE to get
 * -EPIPE.  Closing the fd while an operation on it is pending is the
 * caller's error: epoll forgets a closed fd, so the operation never
 * settles on its own; cancel it (before or after the close) to end it.
 *
 * Buffers are borrowed until the future settles.  Cancelling (fut_cancel,
 * from any thread) either wins, and then no byte is read or written (no
 * connection accepted) after fut_cancel returned 0, or loses: fut_cancel
 * returns FUT_EALREADY and the operation's result stands.  Each system
 * call on the buffer runs under a claim on the future, so a cancel racing
 * one waits for that call to end (microseconds) before it decides.  Hence:
 * once fut_cancel(f) has returned (0 or FUT_EALREADY), or f is settled,
 * libfut never touches the buffer again, and it may be reused or freed at
 * once, on any thread.  A cancel that wins in the middle of a fut_write
 * that had written part of its buffer leaves that prefix written (the
 * stream then holds a partial message: close it); a cancel that wins after
 * connect(2) started leaves the socket in an unspecified state (close it).
 *
 * FUT_ENOMEM means the operation did not happen, as a cancel that wins:
 * no byte read or written, no connection accepted, no connect begun.
 * What an operation may need after a system call that did something is
 * allocated before that call (on the loop thread, where the call is tried
 * at once, each executor keeps one spare future and operation for it), so
 * a call's work is never lost for lack of memory.  One exception, on an
 * executor other than the built-in loop (the libuv and GLib adapters): a
 * fut_write that wrote part of its buffer and finds no memory for the
 * readiness wait it then needs rejects FUT_ENOMEM with that prefix
 * written, as a cancel in the middle of a write leaves it.
 *
 * Shutdown: an operation pending when its loop is destroyed rejects with
 * FUT_ESHUTDOWN; its fd stays open for the caller.  A fut_pread in the
 * loop's io_uring ring is cancelled in the kernel, and destroy waits (5 s
 * at most) for the kernel to let go of libfut's buffer before it frees
 * it; BUF is not touched.  The loop's stats count the readiness events
 * (fd_events; a read the ring completes later reaches the loop as
 * readiness of the ring's eventfd, counted there) and its stall detector
 * times the system calls (a blocking fd's read is a stall).  In a child
 * process, destroying a loop inherited across fork() closes the child's
 * copies of the ring's fds and mappings and leaves the parent's reads in
 * the ring alone. */
#ifndef FUT_IO_H
#define FUT_IO_H

#include <sys/socket.h>
#include <sys/types.h>

#include "executor.h"

#ifdef __cplusplus
extern "C" {
#endif

struct addrinfo; /* <netdb.h>: not included, so strict C11 code compiles */

/* Reads up to LEN bytes from FD into BUF (one read(2)/recv(2) call that
 * returns data, after waiting for readability as long as it says EAGAIN).
 * Ownership: returns a new reference; BUF is borrowed until the future
 * settles or a cancel returned (see the top); FD is borrowed.
 * Returns: never NULL.  Fulfils with fut_value_i64 = bytes read (>= 1), or
 *   0 at end of file.  Rejects with FUT_EINVAL (LOOP without fd readiness, FD <
 * 0, LEN 0 (0 would read as end of file), BUF NULL), FUT_ENOMEM, FUT_ESHUTDOWN,
 * or -errno (-ECONNRESET, -EBADF, ...). Threads: any; the call runs on the loop
 * thread (from another thread it starts when the loop next runs its tasks). */
FUT_API fut_t *fut_read(fut_executor_t *loop, int fd, void *buf, size_t len);

/* Writes all LEN bytes of BUF to FD: partial writes continue where they
 * stopped, after waiting for writability.  Writes queued on one FD go out
 * whole, one after the other, in the order they were made.
 * Ownership: returns a new reference; BUF is borrowed until the future
 * settles or a cancel returned (see the top); FD is borrowed.
 * Returns: never NULL.  Fulfils with fut_value_i64 = LEN once all is
 *   written (0 at once for LEN 0, after the writes queued before it).
 *   Rejects with FUT_EINVAL (LOOP without fd readiness, FD < 0, BUF NULL with
 *   LEN > 0), FUT_ENOMEM, FUT_ESHUTDOWN, or -errno (-EPIPE, -ECONNRESET,
 *   -EBADF, ...).
 * Threads: any, as fut_read. */
FUT_API fut_t *fut_write(fut_executor_t *loop, int fd, const void *buf,
                         size_t len);

/* Accepts one connection on the listening socket LISTEN_FD.
 * Ownership: returns a new reference; the accepted fd belongs to whoever
 *   reads the value (close it).
 * Returns: never NULL.  Fulfils with fut_value_i64 = the new fd,
 *   non-blocking and close-on-exec.  Rejects with FUT_EINVAL (LOOP not a
 *   loop, LISTEN_FD < 0; -EINVAL too for a socket that is not listening),
 *   FUT_ENOMEM, FUT_ESHUTDOWN, or -errno (-EMFILE, -ENOTSOCK, -EBADF, ...).
 *   ECONNABORTED (a client gone before it was accepted) is retried.
 * Threads: any, as fut_read. */
FUT_API fut_t *fut_accept(fut_executor_t *loop, int listen_fd);

/* Connects socket FD to ADDR (copied: borrowed for the call only).
 * Returns: never NULL.  Fulfils with fut_value_i64 = 0 once connected.
 *   Rejects with FUT_EINVAL (LOOP without fd readiness, FD < 0, ADDR NULL,
 * ADDRLEN 0 or larger than struct sockaddr_storage), FUT_ENOMEM, FUT_ESHUTDOWN,
 * or -errno (-ECONNREFUSED, -ETIMEDOUT, -EISCONN, ...). Threads: any, as
 * fut_read. */
FUT_API fut_t *fut_connect(fut_executor_t *loop, int fd,
                           const struct sockaddr *addr, socklen_t addrlen);

/* Reads up to LEN bytes at offset OFF of FD (a regular file, or anything
 * pread(2) takes) into BUF, without moving the file offset.  Where it runs:
 * on a loop, first as a non-blocking preadv2(RWF_NOWAIT) on the calling
 * thread (answered from the page cache; the future comes back settled);
 * if the data is not in the cache, through the loop's io_uring ring (one
 * per loop, made at its first such read; the kernel reads into a buffer
 * of libfut's, copied into BUF on the loop thread), or, where the kernel
 * refuses io_uring or for reads over 4 MiB, on a small internal thread
 * pool (up to 4 threads, started on first use, never joined); never
 * blocking the loop thread.  On any other executor EX, as a task on EX (a
 * pool worker; fut_inline(): the calling thread, which blocks).  The
 * environment, read once: FUT_IO_URING=0 never uses the ring (the
 * threads instead), FUT_IO_URING=all sends every loop read to the ring
 * (no RWF_NOWAIT first: slower on cached data, and a pipe is then read as
 * a stream instead of failing -ESPIPE), FUT_IO_OFFLOAD=1 sends every loop
 * request to the threads.  docs/BENCHMARKS.md has the measurements
 * behind this order.
 * Ownership: returns a new reference; BUF is borrowed until the future
 * settles or a cancel returned: as for fut_read, a cancel that wins means
 * nothing was read into BUF.  A cancel racing a read on a thread waits for
 * the read to end; a read in the ring is never waited for: the cancel wins
 * at once (from any thread, the loop's too) and BUF is not touched, unless
 * the loop is already copying the completed read into BUF, in which case
 * the cancel waits for that copy and gets FUT_EALREADY.
 * Returns: never NULL.  Fulfils with fut_value_i64 = bytes read, 0 at or
 *   past end of file (and for LEN 0).  Rejects with FUT_EINVAL (EX NULL,
 *   FD < 0, OFF < 0, BUF NULL with LEN > 0), FUT_ENOMEM (nothing was read
 *   into BUF: the future is made before the first read), FUT_ESHUTDOWN,
 *   or -errno (-EBADF, -EISDIR, -ESPIPE, ...).  A loop's read that got
 *   part of its range from the page cache and then finds no memory (or no
 *   offload thread) to read the rest fulfils short, with the bytes it has,
 *   as pread(2) may.
 * Threads: any. */
FUT_API fut_t *fut_pread(fut_executor_t *ex, int fd, void *buf, size_t len,
                         off_t off);

/* Writes all LEN bytes of BUF at offset OFF of FD (partial writes
 * continue), without moving the file offset.  Runs as fut_pread does
 * (RWF_NOWAIT first on a loop where the file system supports it), except
 * that a loop's writes never go to the ring: once submitted, a write
 * would happen whatever a cancel said, so they go to the threads, where
 * a cancel racing one waits for it.
 * Ownership and cancel: as fut_pread; a cancel that wins between two
 * partial writes leaves the first written.
 * Returns: never NULL.  Fulfils with fut_value_i64 = LEN.  Rejects as
 *   fut_pread (-ENOSPC, -EFBIG, ...); FUT_ENOMEM means nothing was
 *   written, except when a loop's write wrote a part at once and then no
 *   offload thread could be started for the rest (that part stays).
 * Threads: any. */
FUT_API fut_t *fut_pwrite(fut_executor_t *ex, int fd, const void *buf,
                          size_t len, off_t off);

/* Error codes of fut_getaddrinfo: FUT_EAI(EAI_NONAME) and so on (glibc's
 * EAI_* are small negative numbers; this puts them out of errno's range).
 * fut_strerror gives gai_strerror's text for them. */
#define FUT_EAI_BASE (-5000)
#define FUT_EAI(eai) (FUT_EAI_BASE + (eai))

/* Looks HOST and SERVICE up with getaddrinfo(3), off the loop thread: on
 * a loop, on the internal thread pool fut_pread uses; on any other
 * executor EX, as a task on EX.  HOST, SERVICE and HINTS are copied
 * (borrowed for the call only; either name may be NULL, not both).
 * Ownership: returns a new reference; the value (struct addrinfo *) is
 *   owned by the future and freed with freeaddrinfo at its last release.
 * Returns: never NULL.  Fulfils with fut_value = the list.  Rejects with
 *   FUT_EINVAL (EX NULL, HOST and SERVICE both NULL), FUT_ENOMEM,
 *   FUT_ESHUTDOWN, FUT_EAI(EAI_NONAME) and the other FUT_EAI codes, or
 *   -errno for EAI_SYSTEM.  A cancel that wins drops the lookup's result
 *   (the lookup itself, once started, runs to its end on its thread).
 * Threads: any. */
FUT_API fut_t *fut_getaddrinfo(fut_executor_t *ex, const char *host,
                               const char *service,
                               const struct addrinfo *hints);

#ifdef __cplusplus
}
#endif
#endif
