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

/* Hide an arena from the fault handler; call before unmapping it. */
void ga_unregister_arena(ga_arena_t *arena);

/* The registered arena whose mapping holds addr, or NULL. Async-signal-safe. */
ga_arena_t *ga_find_arena(const void *addr);

/* How many arenas are registered now. */
size_t ga_registered_arenas(void);

#endif
