/* libfut — scopes: a group of futures that owns its members' work
 * (structured concurrency) and can bound how many run at once.  Include
 * <fut.h>.
 *
 * A scope tracks members: futures made by fut_scope_spawn (started only
 * while fewer than LIMIT members are started and unsettled) or handed to
 * fut_scope_add.  fut_scope_close gives the scope's outcome, a future that
 * settles once every member has settled, never before: no member outlives
 * its scope.  fut_scope_cancel (or cancelling the close future) cancels
 * every unsettled member, which reaches their work (fut_cancel's
 * propagation), and unstarted members never start.  Every function may be
 * called from any thread.  Each member costs one allocation at most (its
 * future; none when START's future, or the future added, is settled by
 * the time the call returns, which is then the member itself).  A member
 * that follows a pending future is kept by the scope until a later spawn
 * or add on some thread finds it settled (the scope keeps about twice its
 * pending members) or the close future goes.  Spawning and settling
 * members take no lock unless the scope has a limit or a member fails. */
#ifndef FUT_SCOPE_H
#define FUT_SCOPE_H

#include "future.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fut_scope fut_scope_t;

/* Scope options; a zeroed struct (or NULL) gives the defaults. */
typedef struct fut_scope_opts {
    size_t limit;   /* at most this many members started and unsettled;
                       0 = no limit (pinned name) */
    bool fail_fast; /* the first rejection cancels the other members;
                       false = let them run (pinned name) */
} fut_scope_opts_t;

/* Starts a member's work: returns the future it will settle like (a new
 * reference, consumed by the scope); NULL counts as FUT_EINVAL. */
typedef fut_t *(*fut_start_fn)(void *arg);

/* Makes an empty scope.  OPTS is copied (NULL: defaults).
 * Ownership: *OUT receives the handle, consumed by fut_scope_close.
 * Returns: 0; FUT_EINVAL (OUT NULL; *OUT untouched), FUT_ENOMEM (*OUT
 *   NULL).  Threads: any. */
FUT_API int fut_scope_create(fut_scope_t **out, const fut_scope_opts_t *opts);

/* Adds a member that runs START(ARG) once fewer than the scope's limit of
 * members are started and unsettled: at once, on this thread, or later on
 * the thread whose member's settling frees a slot.  The returned future
 * settles like the one START returned (and is that one if START returned
 * it settled, run at once here); cancelling it before START ran
 * means START never runs, after, cancels what START returned if nothing
 * else observes it.
 * Ownership: S and ARG borrowed (ARG must live until START ran or the
 *   member settled); returns a new reference.
 * Returns: never NULL; FUT_EINVAL (S or START NULL; START never called),
 *   FUT_ENOMEM as a rejected future; FUT_ECANCELED (cancelled, START never
 *   called) once the scope was cancelled.
 * Callback: START at most once, never while the scope's lock is held.
 * Threads: any, until fut_scope_close; after it, only from the work of a
 *   member still pending (which keeps the close future open: the new
 *   member counts too); S after the close future settled is a use after
 *   free. */
FUT_API fut_t *fut_scope_spawn(fut_scope_t *s, fut_start_fn start, void *arg);

/* Tracks F, already started, as a member: the scope's close waits for it
 * and the scope's cancel cancels it.  F is not counted against the limit
 * (the limit bounds what the scope starts; a slot taken by F could be the
 * one a queued member that F waits for needs).  Returns a new future that
 * settles like F (the member's own, whose cancel reaches F), or F itself
 * if F is settled already (its outcome counts for the close at once).
 * Ownership: consumes F, S borrowed; returns a new reference.
 * Returns: never NULL; FUT_EINVAL (S or F NULL; F released), FUT_ENOMEM
 *   (F released).  In a cancelled scope F is cancelled at once if nothing
 *   else observes it.  Threads: as fut_scope_spawn (after the close,
 *   only while another member is pending). */
FUT_API fut_t *fut_scope_add(fut_scope_t *s, fut_t *f);

/* Cancels every unsettled member (see fut_cancel: this reaches the work
 * nothing else observes); members spawned later are cancelled at once and
 * unstarted ones never start.  The close future then settles
 * FUT_ECANCELED, unless a member was rejected first.  Idempotent.
 * Ownership: S borrowed.  Threads: any, until fut_scope_close. */
FUT_API void fut_scope_cancel(fut_scope_t *s);

/* Consumes S and returns the scope's outcome: a future that settles once
 * every member has settled (never earlier): fulfilled (no value) if all
 * fulfilled, else like the first member to be rejected or cancelled.
 * With fail_fast, the first rejection cancels the others.  Cancelling the
 * returned future cancels the scope (fut_cancel returns 0 and the future
 * settles FUT_ECANCELED as soon as every member has; at once unless a
 * member is settling on another thread).
 * Returns: never NULL; FUT_EINVAL for NULL.  Threads: any. */
FUT_API fut_t *fut_scope_close(fut_scope_t *s);

#ifdef __cplusplus
}
#endif
#endif
