/*
 * Native stacks: the one home of stack capture, per-slot storage and
 * symbolization, for every front end that records them (the malloc
 * library's heap, and Pool arenas with native_stacks=True: the numpy handler
 * and the PyMem hooks).
 *
 * Capture is cheap: a few return addresses from libgcc's unwinder
 * (_Unwind_Backtrace, .eh_frame tables; no malloc, no symbol lookup).
 * Reports print raw frames (object, offset, build-id); symbolization
 * happens outside the process (guardalloc.symbolize).
 *
 * Storage: an arena that records native stacks points `stacks` (layout.h) at
 * a table of two ga_stack_t per slot (allocation, free), laid out after its
 * bookkeeping in the arena's own mapping; the fault handler reads it.
 */
#ifndef GUARDALLOC_STACKS_H
#define GUARDALLOC_STACKS_H

#include <stddef.h>
#include <string.h>
#include "layout.h"

/* Return addresses kept per stack. */
#define GA_STACK_DEPTH 8

typedef struct ga_stack {
    void *pc[GA_STACK_DEPTH];   /* zero-terminated when shorter */
} ga_stack_t;

/* Leave out leading frames inside the library (or extension module) whose
 * executable segment holds `code` (any function of it): guardalloc's own
 * allocator frames. Returns 0, or -1 when no segment holds it or the table
 * (8 libraries) is full. Not async-signal-safe; call at load time. */
int ga_stacks_skip_library(const void *code);

/* The caller's native stack, guardalloc's own leading frames left out.
 * Takes no lock of guardalloc's and allocates nothing. */
void ga_stack_capture(ga_stack_t *out);

/* Return addresses in s (up to the first zero). */
size_t ga_stack_len(const ga_stack_t *s);

/* The instruction interrupted by the n-th signal frame (n = 1: the nearest)
 * above the caller on this thread's stack; NULL when there are fewer. A
 * handler that another handler called after a fault (faulthandler's raise())
 * finds the fault's own PC at n = 2. Scans the stack for the kernel's signal
 * trampoline (sigunwind.h): no unwinder, no lock, no malloc. */
const void *ga_stack_interrupted_pc(int n);

/* The raw frame of the code address pc, "0x7f.. (/lib/libfoo.so+0x1c2f)
 * (BuildId: 8a7f..)" (modules.h), into out (NUL-terminated, cut to size);
 * returns its length. No symbol lookup (no dladdr, no loader lock): reports
 * are symbolized outside the process (guardalloc.symbolize).
 * Async-signal-safe. */
size_t ga_stack_format_frame(const void *pc, char *out, size_t size);

/* Bytes of a per-slot stack table for nslots slots, rounded up to `page`. */
static inline size_t ga_stacks_table_size(size_t nslots, size_t page)
{
    return ga_round_up(nslots * 2 * sizeof(ga_stack_t), page);
}

/* A slot's recorded allocation (freed = 0) or free (1) stack, or NULL when
 * the arena records none or none was recorded. Async-signal-safe. */
static inline const ga_stack_t *ga_stacks_of(const ga_arena_t *a, long slot, int freed)
{
    const ga_stack_t *s;
    if (a->stacks == NULL || slot < 0 || (uint32_t)slot >= a->nslots)
        return NULL;
    s = &a->stacks[2 * (size_t)slot + (freed ? 1 : 0)];
    return s->pc[0] != NULL ? s : NULL;
}

/* Record a slot's allocation stack (and forget its previous free stack), or
 * its free stack. The caller owns the slot (it is live, or being freed
 * under the allocator's lock). */
static inline void ga_stacks_record(ga_arena_t *a, long slot, int freed, const ga_stack_t *s)
{
    ga_stack_t *t;
    if (a->stacks == NULL || slot < 0 || (uint32_t)slot >= a->nslots)
        return;
    t = &a->stacks[2 * (size_t)slot];
    if (freed) {
        t[1] = *s;
    } else {
        t[0] = *s;
        t[1].pc[0] = NULL;
    }
}

#endif
