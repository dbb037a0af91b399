/*
 * Native stacks: the one home of stack capture, per-slot storage and
 * symbolization, for every front end that records them (the malloc
 * library's heap, and Pool arenas with native_stacks=True: the numpy handler
 * and the PyMem hooks).
 *
 * Capture is cheap: return addresses from libunwind's caching unw_backtrace,
 * or libgcc's _Unwind_Backtrace where the build has no libunwind (stacks.c;
 * no symbol lookup).
 * Reports print raw frames (object, offset, build-id); symbolization
 * happens outside the process (guardalloc.symbolize).
 *
 * Storage: an arena that records native stacks points `stacks` (layout.h) at
 * a table of two ga_packed_stack_t per slot (allocation, free), laid out
 * after its bookkeeping in the arena's own mapping; the fault handler reads
 * it. A packed stack holds the innermost frames that fit its fixed budget,
 * delta-coded (stack_codec.h), and counts the outer frames left out.
 */
#ifndef GUARDALLOC_STACKS_H
#define GUARDALLOC_STACKS_H

#include <stddef.h>
#include <string.h>
#include "layout.h"
#include "stack_codec.h"

/* Return addresses captured per stack: more than a packed stack holds, so
 * that what is left out is counted. */
#define GA_STACK_DEPTH 64

/* Bytes of one packed stack; two per slot. */
#define GA_PACKED_STACK_BYTES 192

/* ga_stack_t.dropped and ga_packed_stack_t.dropped: this bit says the
 * capture stopped at GA_STACK_DEPTH, so the stack goes on further. */
#define GA_STACK_CUT 0x80u

/* A stack as captured, or unpacked for a report. */
typedef struct ga_stack {
    void *pc[GA_STACK_DEPTH];   /* innermost first; pc[n..] unspecified */
    uint32_t n;
    uint32_t dropped;           /* outer frames not kept, | GA_STACK_CUT */
} ga_stack_t;

/* A stack as a slot stores it. */
typedef struct ga_packed_stack {
    uint8_t used;       /* bytes of code; 0: none recorded */
    uint8_t dropped;    /* outer frames not stored (at most 127), | GA_STACK_CUT */
    uint8_t code[GA_PACKED_STACK_BYTES - 2];
} ga_packed_stack_t;

/* Leave out leading frames inside the library (or extension module) whose
 * executable segment holds `code` (any function of it): guardalloc's own
 * allocator frames. Returns 0, or -1 when no segment holds it or the table
 * (8 libraries) is full. Not async-signal-safe; call at load time. */
int ga_stacks_skip_library(const void *code);

/* The caller's native stack, guardalloc's own leading frames left out.
 * Takes no lock of guardalloc's and allocates nothing. */
void ga_stack_capture(ga_stack_t *out);

/* The unwinder the build uses: "libunwind" or "libgcc". */
const char *ga_stack_unwinder(void);

/* Return addresses in s. */
static inline size_t ga_stack_len(const ga_stack_t *s)
{
    return s->n;
}

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
    return ga_round_up(nslots * 2 * sizeof(ga_packed_stack_t), page);
}

/* Pack s into p: its innermost frames that fit, and the count of the rest. */
static inline void ga_stack_pack(ga_packed_stack_t *p, const ga_stack_t *s)
{
    size_t stored, used, dropped;
    p->used = 0;   /* a reader meanwhile sees no stack, not a mix */
    used = ga_stack_encode((const uintptr_t *)s->pc, s->n, p->code, sizeof(p->code), &stored);
    dropped = (s->dropped & ~GA_STACK_CUT) + (s->n - stored);
    p->dropped = (uint8_t)((dropped > 0x7f ? 0x7f : dropped) | (s->dropped & GA_STACK_CUT));
    __atomic_store_n(&p->used, (uint8_t)used, __ATOMIC_RELEASE);
}

/* A slot's recorded allocation (freed = 0) or free (1) stack unpacked into
 * buf, or NULL when the arena records none or none was recorded.
 * Async-signal-safe. */
static inline const ga_stack_t *ga_stacks_unpack(const ga_arena_t *a, long slot, int freed,
                                                 ga_stack_t *buf)
{
    const ga_packed_stack_t *p;
    size_t used;
    if (a->stacks == NULL || slot < 0 || (uint32_t)slot >= a->nslots)
        return NULL;
    p = &a->stacks[2 * (size_t)slot + (freed ? 1 : 0)];
    used = __atomic_load_n(&p->used, __ATOMIC_ACQUIRE);
    if (used == 0)
        return NULL;
    buf->n = (uint32_t)ga_stack_decode(p->code, used < sizeof(p->code) ? used : sizeof(p->code),
                                       (uintptr_t *)buf->pc, GA_STACK_DEPTH);
    buf->dropped = p->dropped;
    return buf;
}

/* ga_stacks_unpack into a buffer on the caller's stack that lives to the
 * end of the enclosing block: what the report writers read. */
#define ga_stacks_of(a, slot, freed) ga_stacks_unpack((a), (slot), (freed), &(ga_stack_t){.n = 0})

/* Record a slot's allocation stack (and forget its previous free stack), or
 * its free stack. The caller owns the slot (it is live, or being freed
 * under the allocator's lock). */
static inline void ga_stacks_record(ga_arena_t *a, long slot, int freed, const ga_stack_t *s)
{
    ga_packed_stack_t *t;
    if (a->stacks == NULL || slot < 0 || (uint32_t)slot >= a->nslots)
        return;
    t = &a->stacks[2 * (size_t)slot];
    if (!freed)
        t[1].used = 0;
    ga_stack_pack(&t[freed ? 1 : 0], s);
}

/* Forget both of a slot's stacks (a slot handed out without one). */
static inline void ga_stacks_forget(ga_arena_t *a, long slot)
{
    if (a->stacks != NULL && slot >= 0 && (uint32_t)slot < a->nslots)
        a->stacks[2 * (size_t)slot].used = a->stacks[2 * (size_t)slot + 1].used = 0;
}

#endif
