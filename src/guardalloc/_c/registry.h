/*
 * The registry of live arenas, which the SIGSEGV/SIGBUS handler searches
 * without locks or allocation (registry.c).
 */
#ifndef GUARDALLOC_REGISTRY_H
#define GUARDALLOC_REGISTRY_H

#include <stddef.h>
#include "layout.h"

/* Make an arena visible to the fault handler, in O(log n). Returns 0, or -1
 * with errno: ENOMEM when the registry is full (GA_MAX_ARENAS live arenas) or
 * no memory can be mapped, EEXIST when the arena overlaps a registered one,
 * EINVAL for an empty one. Not async-signal-safe; thread-safe (the registry's
 * lock, level GA_LOCK_REGISTRY of locks.h). */
int ga_register_arena(ga_arena_t *arena);

/* Put the registry's lock in the fork table (locks.h) once. ga_fork_lock_add
 * calls it before adding any outer lock, so that the registry's is held
 * across fork() by the time a thread may register an arena under that lock.
 * Call holding none of the order's locks. */
void ga_registry_fork_init(void);

/* Hide an arena from the fault handler, in O(log n); call before unmapping
 * it (a no-op for an arena that is not registered). */
void ga_unregister_arena(ga_arena_t *arena);

/* The registered arena whose mapping holds addr, or NULL. Async-signal-safe,
 * lock-free, O(log n). */
ga_arena_t *ga_find_arena(const void *addr);

/* The nodes ga_find_arena(addr) would visit now: its comparisons, for the
 * tests and the benchmark. */
unsigned long ga_registry_steps(const void *addr);

/* locks.c's fork child handler: no search is under way in the child. */
void ga_registry_after_fork_child(void);

/* How many arenas are registered now. */
size_t ga_registered_arenas(void);

#endif
