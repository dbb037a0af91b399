/*
 * Is a pointer that the guarded heap does not own one of the next
 * allocator's blocks, or memory no allocator made (a stack array, an alloca
 * block, a global, a static local, a string literal, an address inside a
 * mapping, a block of another guardalloc front end's arena)? free() asks
 * before it hands a pointer on, so that such a free is reported as a
 * bad-free instead of corrupting glibc's heap or dying in it.
 *
 * Only glibc's malloc is recognised (its main arena's brk heap, its thread
 * arenas' 64 MiB heaps, its mmapped chunks): with any other next allocator
 * the check is off (ga_nonheap_init returns 0) and every pointer is passed on.
 *
 * Cost: a free of a block in the brk heap or in a thread arena seen before
 * is two to a few comparisons (ga_nonheap_maybe). Anything else takes the
 * slow path (ga_nonheap_classify): the loaded objects' segments
 * (dl_iterate_phdr), reads of glibc's chunk and heap headers
 * (process_vm_readv, so an unmapped address cannot fault), then, for a
 * pointer glibc's headers do not claim, the registry of guardalloc's
 * arenas and /proc/self/maps. Not for the signal path.
 */
#ifndef GUARDALLOC_NONHEAP_H
#define GUARDALLOC_NONHEAP_H

#include <stddef.h>
#include <stdint.h>
#include "layout.h"

/* What a pointer that no allocator made points into. */
enum {
    GA_MEM_HEAP = 0,         /* the next allocator's (glibc's) block       */
    GA_MEM_STACK,            /* a thread's stack (stack array, alloca)     */
    GA_MEM_GLOBAL,           /* a writable segment of a loaded object      */
    GA_MEM_READONLY,         /* a read-only segment (string literal, const) */
    GA_MEM_CODE,             /* an executable segment                      */
    GA_MEM_MAPPING,          /* a mapping that no allocator made           */
    GA_MEM_UNMAPPED,         /* nothing is mapped there                    */
    GA_MEM_ARENA,            /* a registered arena of another guardalloc
                                front end (a Pool, an Arena, the PyMem
                                hooks, the numpy handler)                  */
};

typedef struct ga_where {
    int kind;                /* GA_MEM_*                                   */
    const char *module;      /* the object or mapped file ("" for the
                                main program), or NULL                     */
    const void *start, *end; /* the segment or mapping holding the pointer */
    long tid;                /* GA_MEM_STACK: the thread; 0 unknown        */
    int main_thread;         /* GA_MEM_STACK: 1 for the main thread's stack */
    const ga_arena_t *arena; /* GA_MEM_ARENA: the arena (module: its owner) */
    char path[256];          /* storage for a mapped file's name           */
} ga_where_t;

/* Turn the check on when the next allocator is glibc's (next_malloc is
 * what dlsym(RTLD_NEXT, "malloc") gave). Returns 1 when it is on. */
int ga_nonheap_init(void *(*next_malloc)(size_t));

extern int ga_nonheap_on;
extern uintptr_t ga_brk_lo, ga_brk_hi;

/* 0 when p is surely one of glibc's blocks (the fast checks); 1 when the
 * slow path must decide. */
int ga_nonheap_maybe_slow(const void *p);

static inline int ga_nonheap_maybe(const void *p)
{
    uintptr_t x = (uintptr_t)p;
    if (x >= ga_brk_lo && x < ga_brk_hi)
        return 0;
    return ga_nonheap_maybe_slow(p);
}

/* Where p points (the slow path): GA_MEM_HEAP when it may be glibc's block,
 * anything else when it surely is not. Fills *out. */
int ga_nonheap_classify(const void *p, ga_where_t *out);

#endif
