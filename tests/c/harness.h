/*
 * Shared by the C-only tests (test_core.c and the programs in bugs/): build an arena on the
 * C core alone -- the sources setup.py builds into libguardalloc_core, no Python --
 * the way arena.pyx does (map, attach the bookkeeping, guard, register).
 */
#ifndef GA_TEST_HARNESS_H
#define GA_TEST_HARNESS_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core.h"
#include "faults.h"
#include "guards.h"

/* Backend from argv[1]: "madvise" (the default) or "mprotect". */
static inline int ga_test_backend(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "mprotect") == 0)
        return GA_BACKEND_MPROTECT;
    return GA_BACKEND_MADVISE;
}

/* An anonymous arena of nslots slots of slot_pages pages, one guard page
 * between every two; quarantine < 0: no use-after-free guards. Exits with
 * status 2 (and says why) when the kernel refuses. */
static inline void ga_test_arena(ga_arena_t *a, uint32_t nslots, size_t slot_pages,
                                 size_t alignment, int align, int backend, long quarantine)
{
    size_t page = ga_page_size(), mapped;
    memset(a, 0, sizeof *a);
    a->slot_size = slot_pages * page;
    a->guard_size = page;
    a->stride = a->slot_size + a->guard_size;
    a->alignment = alignment;
    a->nslots = nslots;
    a->backend = backend;
    a->align = align;
    a->uaf = quarantine >= 0;
    a->quarantine_limit = quarantine >= 0 ? (uint32_t)quarantine : 0;
    a->batched = 1;
    a->size = ga_slots_size(a->slot_size, nslots, a->guard_size);
    mapped = ga_anonymous_mapping_size(a->slot_size, nslots, a->guard_size, a->uaf, page);
    a->base = ga_map_anonymous(NULL, mapped);
    if (a->base == NULL) {
        fprintf(stderr, "mmap of %zu bytes: %s\n", mapped, strerror(errno));
        exit(2);
    }
    ga_arena_attach(a, a->base + a->size);
    if (ga_arena_guard_all(a) != 0) {
        fprintf(stderr, "installing guards: %s\n", strerror(errno));
        exit(2);
    }
    if (ga_register_arena(a) != 0) {
        fprintf(stderr, "registering the arena failed\n");
        exit(2);
    }
}

/* Report faults from here on (what guardalloc.enable_reports() does). */
static inline void ga_test_reports(void)
{
    if (ga_reports_enable() != 0) {
        fprintf(stderr, "installing the fault handler: %s\n", strerror(errno));
        exit(2);
    }
}

/* Allocate or exit: the slot's buffer. */
static inline char *ga_test_alloc(ga_arena_t *a, size_t nbytes, int zero)
{
    long slot = ga_alloc(a, nbytes, zero, 1, -1);
    if (slot < 0) {
        fprintf(stderr, "ga_alloc(%zu) failed: %ld\n", nbytes, slot);
        exit(2);
    }
    return ga_block_start(a, slot);
}

#endif
