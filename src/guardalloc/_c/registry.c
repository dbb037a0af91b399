/*
 * The registry of live arenas: the table the SIGSEGV/SIGBUS handler searches
 * (ga_find_arena) to tell a fault inside an arena from any other.
 *
 * Arenas sit in fixed-size chunks that are mapped on demand and never
 * unmapped, so a signal handler running in any thread can walk the table
 * while another thread registers an arena: it sees each entry either empty or
 * pointing to a complete descriptor (pointers are published with release
 * stores and read with acquire loads). The reader takes no lock.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include "guards.h"
#include "locks.h"
#include "registry.h"

#define GA_CHUNK 1024
#define GA_CHUNKS 256
#define GA_MAX_ARENAS (GA_CHUNK * GA_CHUNKS)

/* The first chunk is static (no mapping, no VMA for the common case); the
 * others come from mmap, not malloc, which may be the native heap itself. */
static ga_arena_t *ga_first_chunk[GA_CHUNK];
static ga_arena_t **ga_chunks[GA_CHUNKS] = {ga_first_chunk};
static size_t ga_high_water;   /* entries ever used: the handler scans [0, this) */
static size_t ga_live;

/* Writers are serialized here: Python arenas register under the GIL, the
 * native heap's under its own mutex, both at once. Level GA_LOCK_REGISTRY of
 * the lock order (locks.h), the innermost: it is taken with a Pool's or the
 * heap's lock held, and nothing is allocated or locked under it. Held across
 * fork() by locks.c's handlers (and re-made in the child), so that a child
 * never inherits it locked. */
static pthread_mutex_t ga_registry_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t ga_registry_once = PTHREAD_ONCE_INIT;

static void ga_registry_init(void)
{
    /* Only fails without memory for locks.c's table: then a fork() racing a
     * registration could leave the child's lock held (the registry still
     * works in the parent). */
    (void)ga_fork_lock_add(&ga_registry_lock, GA_LOCK_REGISTRY);
}

void ga_registry_fork_init(void)
{
    pthread_once(&ga_registry_once, ga_registry_init);
}

static int ga_register_locked(ga_arena_t *arena)
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
        ga_arena_t **chunk = ga_map_anonymous(NULL, GA_CHUNK * sizeof(*chunk));
        if (chunk == NULL)
            return -1;
        __atomic_store_n(&ga_chunks[i / GA_CHUNK], chunk, __ATOMIC_RELEASE);
    }
    __atomic_store_n(&ga_chunks[i / GA_CHUNK][i % GA_CHUNK], arena, __ATOMIC_RELEASE);
    __atomic_store_n(&ga_high_water, i + 1, __ATOMIC_RELEASE);
    ga_live++;
    return 0;
}

int ga_register_arena(ga_arena_t *arena)
{
    int rc;
    /* A no-op after the first call. Callers that hold a lock of the order
     * (the heap, a Pool) added theirs first, which made this call. */
    ga_registry_fork_init();
    pthread_mutex_lock(&ga_registry_lock);
    rc = ga_register_locked(arena);
    pthread_mutex_unlock(&ga_registry_lock);
    return rc;
}

void ga_unregister_arena(ga_arena_t *arena)
{
    size_t i;
    pthread_mutex_lock(&ga_registry_lock);
    for (i = 0; i < ga_high_water; i++) {
        ga_arena_t **chunk = ga_chunks[i / GA_CHUNK];
        if (chunk[i % GA_CHUNK] == arena) {
            __atomic_store_n(&chunk[i % GA_CHUNK], NULL, __ATOMIC_RELEASE);
            ga_live--;
            break;
        }
    }
    pthread_mutex_unlock(&ga_registry_lock);
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
