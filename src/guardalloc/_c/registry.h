/*
 * The registry of live arenas, which the SIGSEGV/SIGBUS handler searches
 * without locks or allocation (registry.c).
 */
#ifndef GUARDALLOC_REGISTRY_H
#define GUARDALLOC_REGISTRY_H

#include <stddef.h>
#include "layout.h"

/* Make an arena visible to the fault handler. Returns 0, or -1 when the
 * registry is full (GA_MAX_ARENAS) or out of memory. Not async-signal-safe;
 * callers serialize (the GIL, or the pool's lock). */
int ga_register_arena(ga_arena_t *arena);

/* Put the registry's lock in the fork table (locks.h) once. ga_fork_lock_add
 * calls it before adding any outer lock, so that the registry's is held
 * across fork() by the time a thread may register an arena under that lock.
 * Call holding none of the order's locks. */
void ga_registry_fork_init(void);

/* Hide an arena from the fault handler; call before unmapping it. */
void ga_unregister_arena(ga_arena_t *arena);

/* The registered arena whose mapping holds addr, or NULL. Async-signal-safe. */
ga_arena_t *ga_find_arena(const void *addr);

/* How many arenas are registered now. */
size_t ga_registered_arenas(void);

#endif
