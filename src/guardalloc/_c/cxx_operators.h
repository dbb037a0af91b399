/*
 * The C++ operators new, new[], delete and delete[] (cxx_operators.c) and
 * what they use of the preloadable library (malloc.c). Hidden: only the
 * operators' mangled names are exported.
 */
#ifndef GUARDALLOC_CXX_OPERATORS_H
#define GUARDALLOC_CXX_OPERATORS_H

#include <stddef.h>

#define GA_HIDDEN __attribute__((visibility("hidden")))

/* A block for operator new / new[] of `family` (heap.h's GA_FAMILY_*),
 * `alignment` 0 for the plain forms: guarded when sampled, else the next
 * allocator's; NULL only when that failed too (EINVAL: a bad alignment). */
GA_HIDDEN void *ga_new(size_t n, size_t alignment, int family);

/* Free p for operator delete / delete[] of `family`; freed_by names the
 * operator in a report ("operator delete []"). */
GA_HIDDEN void ga_delete(void *p, int family, const char *freed_by);

/* The next definition of a C++ operator (libstdc++'s), looked up when a
 * request fails: it runs the new-handler loop and throws std::bad_alloc (or
 * returns NULL for nothrow). NULL when no library defines it. */
GA_HIDDEN void *ga_next_operator(const char *name);

/* Out of memory and no next operator to throw: a message, then abort(). */
GA_HIDDEN void ga_no_operator(const char *name) __attribute__((noreturn));

#endif
