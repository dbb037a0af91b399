/*
 * Registry of live arenas, read by the fault handler.
 *
 * Arenas sit in fixed-size chunks that are allocated on demand and never
 * freed, so a signal handler running in any thread can walk the table while
 * another thread registers an arena: it sees each slot either empty or
 * pointing to a complete descriptor (pointers are published with release
 * stores and read with acquire loads).
 */
#include <stdlib.h>
#include "faults.h"

#define GA_CHUNK 1024
#define GA_CHUNKS 256
#define GA_MAX_ARENAS (GA_CHUNK * GA_CHUNKS)

static ga_arena_t **ga_chunks[GA_CHUNKS];
static size_t ga_high_water;   /* entries ever used: the handler scans [0, this) */
static size_t ga_live;

int ga_register_arena(ga_arena_t *arena)
{
    size_t i;
    /* Reuse an empty entry below the high-water mark first. */
    for (i = 0; i < ga_high_water; i++) {
        ga_arena_t **chunk = ga_chunks[i / GA_CHUNK];
        if (chunk[i % GA_CHUNK] == NULL) {
            __atomic_store_n(&chunk[i % GA_CHUNK], arena, __ATOMIC_RELEASE);
            ga_live++;
            return 0;
        }
    }
    if (ga_high_water >= GA_MAX_ARENAS)
        return -1;
    if (ga_chunks[i / GA_CHUNK] == NULL) {
        ga_arena_t **chunk = calloc(GA_CHUNK, sizeof(*chunk));
        if (chunk == NULL)
            return -1;
        __atomic_store_n(&ga_chunks[i / GA_CHUNK], chunk, __ATOMIC_RELEASE);
    }
    __atomic_store_n(&ga_chunks[i / GA_CHUNK][i % GA_CHUNK], arena, __ATOMIC_RELEASE);
    __atomic_store_n(&ga_high_water, i + 1, __ATOMIC_RELEASE);
    ga_live++;
    return 0;
}

void ga_unregister_arena(ga_arena_t *arena)
{
    size_t i;
    for (i = 0; i < ga_high_water; i++) {
        ga_arena_t **chunk = ga_chunks[i / GA_CHUNK];
        if (chunk[i % GA_CHUNK] == arena) {
            __atomic_store_n(&chunk[i % GA_CHUNK], NULL, __ATOMIC_RELEASE);
            ga_live--;
            return;
        }
    }
}

ga_arena_t *ga_find_arena(const void *addr)
{
    size_t i, n = __atomic_load_n(&ga_high_water, __ATOMIC_ACQUIRE);
    const char *p = (const char *)addr;
    for (i = 0; i < n; i++) {
        ga_arena_t **chunk = __atomic_load_n(&ga_chunks[i / GA_CHUNK], __ATOMIC_ACQUIRE);
        ga_arena_t *a;
        if (chunk == NULL)
            continue;
        a = __atomic_load_n(&chunk[i % GA_CHUNK], __ATOMIC_ACQUIRE);
        if (a != NULL && p >= a->base && p < a->base + a->size)
            return a;
    }
    return NULL;
}

size_t ga_registered_arenas(void)
{
    return ga_live;
}
