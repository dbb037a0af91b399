/*
 * The lock order, and the one set of fork() handlers that follows it.
 *
 * Every mutex that guardalloc's C code holds while it allocates, maps or
 * registers has a level. A thread that holds a lock of level L takes only
 * locks of a higher level (never one of the same level, never a lower one):
 *
 *   level 1  GA_LOCK_FRONT     a front end's own lock: each Pool's mutex, the
 *                              numpy handler's table of oversize blocks.
 *                              Held while calling malloc/realloc (which may
 *                              be the native heap), growing an arena and
 *                              registering it.
 *   level 2  GA_LOCK_HEAP      the native heap's mutex (heap.c). Held while
 *                              growing an arena and registering it.
 *   level 3  GA_LOCK_REGISTRY  the fault registry's writer lock (registry).
 *                              Innermost: nothing is allocated or locked
 *                              under it (new registry chunks come from mmap).
 *
 *   (level 0, outermost of all: this file's table of locks, held only while
 *   the table changes and from the prepare handler to the parent/child one.)
 *
 * fork() runs pthread_atfork's prepare handlers in the reverse order of their
 * registration, and glibc holds its own atfork lock while doing so; two
 * handlers registered separately by the heap and the registry took their locks
 * in the wrong order (one deadlock), and registering a handler while holding
 * a lock that a prepare handler takes is a second one. So there is one
 * pthread_atfork registration for all of them (here): its prepare handler
 * takes the table's lock, then every lock level by level, outermost first;
 * the parent handler releases them in the reverse order; the child handler
 * re-initialises them (the child has one thread; nothing is half-updated,
 * since every lock was held across the fork).
 *
 * Rules for callers:
 * - ga_fork_lock_add/remove take the table's lock: call them holding none of
 *   the locks above (a Pool adds its mutex when it is made, removes it when
 *   it is released, in both cases before or after holding it).
 * - Nothing under these locks may call pthread_atfork(), dlopen() or fork().
 */
#ifndef GUARDALLOC_LOCKS_H
#define GUARDALLOC_LOCKS_H

#include <pthread.h>

#define GA_LOCK_FRONT 1
#define GA_LOCK_HEAP 2
#define GA_LOCK_REGISTRY 3

/* Hold m (of the given level) across every later fork() and re-initialise it
 * in the child. Installs the fork handlers on first use. Returns 0, or -1
 * with errno (EINVAL: bad level; ENOMEM: no memory for the table; or
 * pthread_atfork's error). */
int ga_fork_lock_add(pthread_mutex_t *m, int level);

/* Forget m (no-op when it was never added). */
void ga_fork_lock_remove(pthread_mutex_t *m);

/* Locks held across fork() now (for the tests). */
unsigned long ga_fork_lock_count(void);

#endif
