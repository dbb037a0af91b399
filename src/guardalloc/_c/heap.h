/*
 * The native heap: guarded malloc blocks in size-classed arenas, all mapped
 * one after the other inside one reservation (so ownership is a range check
 * and the arenas merge into a couple of VMAs), over the slot core (core.c).
 * Pure C, no Python; one pthread mutex serialises the core. Used by the
 * preloadable library (malloc.c), which decides what is sampled.
 *
 * Every slot keeps the native stacks of its last allocation and free (a few
 * return addresses each, stacks.h: the core's one capture and symbolization)
 * in the arena's own mapping; they are symbolized only when a report is
 * written.
 */
#ifndef GUARDALLOC_HEAP_H
#define GUARDALLOC_HEAP_H

#include <stddef.h>
#include <stdint.h>
#include "options.h"

typedef struct ga_heap_stats {
    uint64_t allocations;   /* guarded blocks handed out                     */
    uint64_t frees;
    uint64_t live;          /* guarded blocks live now                       */
    uint64_t refused;       /* sampled but sent to the next allocator:
                               max_bytes reached, alignment > page, too big  */
    uint64_t arenas;
    uint64_t mapped_bytes;  /* bytes of slots mapped (what max_bytes limits) */
} ga_heap_stats_t;

/* Reserve the address space (max_bytes' worth: about twice it, PROT_NONE)
 * and add the heap's lock to the fork table (locks.h). Not thread-safe (the
 * library calls it once, from its initialiser). Returns 0, or -1 with errno
 * set and one line in err saying why (max_bytes too large for the address
 * space: the line names the largest value that fits). */
int ga_heap_init(const ga_options_t *options, char *err, size_t errlen);

/* Allocation families: which function made a block. A block freed by
 * another family's function (new[] by free or delete, malloc by delete...)
 * is an alloc-dealloc-mismatch (option alloc_dealloc_mismatch). */
enum { GA_FAMILY_MALLOC = 0, GA_FAMILY_NEW = 1, GA_FAMILY_NEW_ARRAY = 2 };

/* A guarded block of nbytes, its start a multiple of `alignment` (0: the
 * heap's own: the alignment option, or by size when it is auto),
 * zero-filled when `zero`, of allocation family `family` (GA_FAMILY_*);
 * NULL (errno untouched) when the heap cannot take it -- the caller asks the
 * next allocator. */
void *ga_heap_alloc(size_t nbytes, size_t alignment, int zero, int family);

/* The heap's reservation (NULL before ga_heap_init). */
extern char *ga_heap_start, *ga_heap_end;

/* 1 when p lies in the heap's reservation. No lock: two comparisons. */
static inline int ga_heap_owns(const void *p)
{
    return (const char *)p >= ga_heap_start && (const char *)p < ga_heap_end;
}

/* Free a block the heap owns, by a function of `family` (GA_FAMILY_*)
 * named freed_by in a report (NULL: the family's own free, delete or
 * delete[]). A
 * double or invalid free, a free by the wrong family, damaged slack (an
 * overflow that stayed inside the block's alignment padding) or damaged
 * front bytes (an underflow, see GA_FRONT_CHECK) is reported with the
 * slot's stacks; then abort() unless on_fault=continue. */
void ga_heap_free(void *p, int family, const char *freed_by);

/* 1 when p lies in the heap but is not the start of a live block (freed
 * already, or inside a block): realloc() reports it through ga_heap_free
 * instead of copying from it. */
int ga_heap_not_live(const void *p);

/* Bytes in front of a right-placed block that hold the check pattern and
 * are verified at free (an underflow shows as damage there): at most this
 * many, and never more than the slot has in front of the block. The bound
 * keeps the work per allocation and free small (docs/native.md). */
#define GA_FRONT_CHECK 64

/* Bytes of the block at p that may be touched (its requested size), or 0
 * when p is not the start of a live block. */
size_t ga_heap_usable_size(const void *p);

void ga_heap_stats(ga_heap_stats_t *out);

#endif
