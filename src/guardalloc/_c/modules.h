/*
 * The loaded objects (the program, its shared libraries, the extension
 * modules), as a table the fault handler reads without a lock: each
 * object's address range, load bias, path and GNU build-id. Reports name a
 * code address by object, offset and build-id ("raw frames"); symbolizing
 * them into functions and lines happens later, in a process that is not
 * dying (guardalloc.symbolize).
 *
 * The table is built outside the signal path, by dl_iterate_phdr (which
 * takes the loader's lock): when reports are enabled, when an arena is
 * registered, and when a captured stack holds an address no object of the
 * table covers (a library dlopen()ed since). dl_iterate_phdr's adds/subs
 * counters say whether anything was loaded or unloaded since the last
 * build, so a refresh that finds nothing new costs one call.
 */
#ifndef GUARDALLOC_MODULES_H
#define GUARDALLOC_MODULES_H

#include <stddef.h>
#include <stdint.h>

#define GA_BUILD_ID_MAX 32   /* bytes of a build-id kept (GNU ld's sha1: 20) */

typedef struct {
    uintptr_t lo, hi;        /* [lo, hi): the object's PT_LOAD segments           */
    uintptr_t bias;          /* load bias: an address less it is the file's own    */
    uint32_t path;           /* offset of its NUL-terminated path in the string pool */
    uint8_t build_id_len;    /* 0: none                                            */
    uint8_t build_id[GA_BUILD_ID_MAX];
} ga_module_t;

/* Bring the table up to date with the loaded objects (a no-op when
 * dl_iterate_phdr's counters show no load or unload since the last
 * time). Returns 0, or -1 when the table could not be mapped. Takes the
 * loader's lock: never from a signal handler. */
int ga_modules_refresh(void);

/* The object that holds pc, or NULL. The pointer stays valid for the life
 * of the process (tables are never unmapped; a rebuild publishes a fresh
 * one). Lock-free and async-signal-safe. */
const ga_module_t *ga_module_of(const void *pc);

/* A module's path ("" for one the table has no name for). */
const char *ga_module_path(const ga_module_t *m);

/* "0x7f.. (/lib/libfoo.so+0x1c2f) (BuildId: 8a7f..)" for the code address
 * pc -- AddressSanitizer's raw frame -- or "0x7f.. (<unknown module>)" when
 * no object holds it; into out (NUL-terminated, cut to size). Returns its
 * length. Async-signal-safe. */
size_t ga_format_raw_frame(const void *pc, char *out, size_t size);

#endif
