/*
 * The slot core: free stack, quarantine, alloc and free, slack fill and
 * check. Plain C on a ga_arena_t (layout.h), with no Python, no locks and no
 * system call of its own (guards go through guards.c). Callers serialize:
 * the GIL for Arena, a mutex for Pool and the native malloc library.
 */
#ifndef GUARDALLOC_CORE_H
#define GUARDALLOC_CORE_H

#include "layout.h"

/* Lay out the descriptor's bookkeeping in `tables`: ga_bookkeeping_size()
 * zero-filled bytes, pointer-aligned (the tail of an anonymous arena's
 * mapping, or a heap block). The layout fields (base .. batched) must be set
 * already; quarantine_limit too when uaf. Every slot starts free and clean
 * (file-backed arenas treat every slot as dirty). */
void ga_arena_attach(ga_arena_t *a, void *tables);

/* Install the guard before the first slot, between every two and after the
 * last. Returns 0, or -1 with errno set. */
int ga_arena_guard_all(ga_arena_t *a);

/* Open slots [0, upto) of a lazily guarded arena (see core.c): whole
 * GA_OPEN_CHUNK chunks, each one mprotect() read-write and its guards in
 * one process_madvise(). ga_alloc calls it as the high-water mark advances;
 * a no-op for arenas opened whole. Returns 0, or -1 with errno set. */
int ga_arena_open(ga_arena_t *a, uint32_t upto);

/* Place a buffer of nbytes (1 .. slot_size) in a free slot: `want`, or the
 * next one when want < 0. `zero` clears a slot that held data before;
 * `raw` marks the block as owned by its address (C callers, alloc_raw)
 * rather than by an object. Returns the slot, or GA_ERR_FULL,
 * GA_ERR_NOT_FREE or GA_ERR_SYSCALL (errno set). */
long ga_alloc(ga_arena_t *a, size_t nbytes, int zero, int raw, long want);

/* Free the buffer that starts at address. `raw_only` refuses (GA_ERR_OWNED)
 * the buffer of an object (a block not marked raw). Returns GA_OK;
 * GA_ERR_CORRUPT (freed, *damage filled in); GA_ERR_FOREIGN, GA_ERR_INVALID,
 * GA_ERR_DOUBLE or GA_ERR_OWNED (nothing changed); GA_ERR_SYSCALL (freed,
 * but the use-after-free guard failed, errno set). */
int ga_free(ga_arena_t *a, char *address, int raw_only, ga_damage_t *damage);

/* First byte of the buffer in a live slot. */
static inline char *ga_block_start(const ga_arena_t *a, long slot)
{
    return ga_slot_start(a, (size_t)slot) + a->slots[slot].offset;
}

/* The live slot whose buffer starts at p, or -1. */
long ga_live_slot_at(const ga_arena_t *a, const void *p);

/* How many slots are in each state, indexed by GA_SLOT_*. */
void ga_count_states(const ga_arena_t *a, uint64_t counts[4]);

#endif
