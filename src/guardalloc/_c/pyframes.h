/*
 * Python frames in reports, for a core that does not link libpython.
 *
 * The guardalloc package registers a walker (ga_pyframes_register) when it is
 * imported: functions compiled against the running interpreter's headers
 * (pyframes.pyx) that read the calling thread's Python frames and describe
 * one. Until then, and in a process without Python, reports have no Python
 * frames.
 *
 * A recorded frame is compact -- the code object's address, the instruction
 * offset and whether it is an entry frame (the first frame a C call of the
 * interpreter runs) -- and holds no reference: the report checks, with reads
 * that cannot fault, that the address still holds a code object before it
 * names its function, file and line (a freed code object prints as a
 * placeholder; one whose memory now holds another code object names that).
 *
 * Storage: an arena that records Python frames points `pystacks` (layout.h)
 * at a table of two ga_pystack_t per slot (allocation, free): the heap's in
 * its mapping beside the native stack table (stacks.h), an Arena's on the
 * heap from its first traceback (tracebacks.pyx); the fault handler reads it.
 */
#ifndef GUARDALLOC_PYFRAMES_H
#define GUARDALLOC_PYFRAMES_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "layout.h"

/* Python frames kept per recorded stack (the innermost ones). */
#define GA_PYSTACK_DEPTH 16

/* The frame is the first one a call of the interpreter from C runs: 3.11's
 * is_entry, 3.12+'s frame whose caller is the C stack's shim frame. A
 * native _PyEval_EvalFrameDefault frame runs the Python frames up to and
 * including the next entry frame. */
#define GA_PYFRAME_ENTRY 1u
/* The program's outermost frame: the walk stopped at a launcher's frame
 * right outside it (the walker's stop list, e.g. `guardalloc run`'s runpy
 * frames). The native frames outside the interpreter frame that runs it are
 * the launcher's, which a merged stack leaves out (symbolize/merge.py). */
#define GA_PYFRAME_LAUNCHER 2u

typedef struct ga_pyframe {
    const void *code;   /* the PyCodeObject's address (no reference held)   */
    int32_t lasti;      /* the instruction's offset in code units            */
    uint32_t flags;     /* GA_PYFRAME_*                                      */
} ga_pyframe_t;

typedef struct ga_pystack {
    uint32_t n;         /* frames in f, innermost first (0: none recorded)   */
    uint32_t reserved;
    ga_pyframe_t f[GA_PYSTACK_DEPTH];
} ga_pystack_t;

/* What a report prints of one frame. */
typedef struct ga_pyframe_info {
    char function[160];  /* co_qualname, UTF-8, cut to fit                   */
    char file[512];      /* co_filename                                      */
    int line;            /* 0: unknown                                       */
} ga_pyframe_info_t;

typedef struct ga_pywalker {
    /* The calling thread's Python frames, innermost first, into out (at
     * most max); returns how many. checked: every read goes through
     * ga_safe_read (the signal path: the frames may be half built); else
     * plain reads of the thread's own frames (an allocation: cheap). Takes
     * no lock, allocates nothing, never takes the GIL. */
    size_t (*capture)(ga_pyframe_t *out, size_t max, int checked);
    /* The function, file and line of f, every read checked. 0, or -1 when
     * f->code holds no code object now. Async-signal-safe. */
    int (*describe)(const ga_pyframe_t *f, ga_pyframe_info_t *out);
} ga_pywalker_t;

/* Install the walker (the first call wins; w must live for ever). */
void ga_pyframes_register(const ga_pywalker_t *w);

/* The walker, or NULL when no Python registered one. */
const ga_pywalker_t *ga_pyframes_walker(void);

/* The calling thread's Python frames into s (s->n = 0 without a walker). */
void ga_pystack_capture(ga_pystack_t *s, int checked);

/* Bytes of a per-slot Python stack table for nslots slots, rounded up to page. */
static inline size_t ga_pystacks_table_size(size_t nslots, size_t page)
{
    return ga_round_up(nslots * 2 * sizeof(ga_pystack_t), page);
}

/* A slot's recorded allocation (freed = 0) or free (1) Python stack, or
 * NULL when the arena records none or none was recorded. Async-signal-safe. */
static inline const ga_pystack_t *ga_pystacks_of(const ga_arena_t *a, long slot, int freed)
{
    const ga_pystack_t *s;
    if (a == NULL || a->pystacks == NULL || slot < 0 || (uint32_t)slot >= a->nslots)
        return NULL;
    s = &a->pystacks[2 * (size_t)slot + (freed ? 1 : 0)];
    return s->n != 0 ? s : NULL;
}

/* Record the calling thread's Python frames as a slot's allocation stack
 * (and forget its previous free stack), or as its free stack. Does nothing
 * without a table or a walker. The caller owns the slot. */
static inline void ga_pystacks_record(ga_arena_t *a, long slot, int freed)
{
    ga_pystack_t *t;
    if (a->pystacks == NULL || slot < 0 || (uint32_t)slot >= a->nslots || ga_pyframes_walker() == NULL)
        return;
    t = &a->pystacks[2 * (size_t)slot];
    ga_pystack_capture(&t[freed ? 1 : 0], 0);
    if (!freed)
        t[1].n = 0;
}

/* An arena of the Python front end (Arena, Pool) gets its table at its first
 * traceback, on the heap (address space until slots record). 0, or -1 when
 * calloc fails. Not for the heap's arenas (their table is in their mapping).
 * Lock-free: the Pool's C hooks call it from any thread (the first table
 * installed wins, a loser's is freed). */
static inline int ga_pystacks_ensure(ga_arena_t *a)
{
    ga_pystack_t *t, *none = NULL;
    if (__atomic_load_n(&a->pystacks, __ATOMIC_ACQUIRE) != NULL)
        return 0;
    t = (ga_pystack_t *)calloc(2 * (size_t)a->nslots, sizeof(ga_pystack_t));
    if (t == NULL)
        return -1;
    if (!__atomic_compare_exchange_n(&a->pystacks, &none, t, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        free(t);
    return 0;
}

/* Keep s, captured earlier (before a lock), as a slot's allocation stack
 * (forgetting its previous free stack) or its free stack. Does nothing
 * without a table. The caller owns the slot (or holds its arena's lock).
 *
 * Capturing inside CPython's allocator hooks (the PyMem hooks, numpy's
 * handler: pool_c_api.pxi) is safe with plain reads, on 3.11, 3.12 and
 * 3.13, because the walk only follows the calling thread's linked frames
 * and CPython links a frame into the chain only once it is fully built:
 * - Push: _PyFrame_Initialize sets the code, the instruction pointer and
 *   `previous` before the frame becomes `current_frame` (3.11/3.12
 *   `cframe->current_frame`, 3.13 `tstate->current_frame`); allocations
 *   while the frame is being built (its *args tuple, **kwargs dict, a new
 *   data-stack chunk) see the caller's chain unchanged. A frame linked
 *   before its first instruction (3.11/3.12 prev_instr = code - 1) is
 *   skipped by the walker's offset check.
 * - Pop: 3.12/3.13 move `current_frame` to `previous` before clearing the
 *   frame (its locals' frees run the hooks); 3.11 clears while the frame is
 *   still current, but the frame's memory (the thread's data stack) stays
 *   valid until popped and its code object is decref'd last: the walker
 *   reads only the frame's fields and the code object's type, both still
 *   allocated while its deallocator's frees run (the hook runs before the
 *   underlying free). The code object is not referenced: the report checks
 *   it again with ga_safe_read.
 * - A raw-domain hook may run without the GIL: the walker reads the calling
 *   thread's own state (TLS), whose frames no other thread changes while
 *   it is in C; a thread state is taken out of TLS before it is freed, and
 *   nothing is walked once Py_IsInitialized() is false. */
static inline void ga_pystacks_store(ga_arena_t *a, long slot, int freed, const ga_pystack_t *s)
{
    ga_pystack_t *t = __atomic_load_n(&a->pystacks, __ATOMIC_ACQUIRE);
    uint32_t n = s->n < GA_PYSTACK_DEPTH ? s->n : GA_PYSTACK_DEPTH;
    if (t == NULL || slot < 0 || (uint32_t)slot >= a->nslots)
        return;
    t += 2 * (size_t)slot;
    memcpy(t[freed ? 1 : 0].f, s->f, n * sizeof(ga_pyframe_t));
    t[freed ? 1 : 0].n = n;
    if (!freed)
        t[1].n = 0;
}

/* Free a table ga_pystacks_ensure made. */
static inline void ga_pystacks_release(ga_arena_t *a)
{
    free(a->pystacks);
    a->pystacks = NULL;
}

/* Forget a slot's recorded Python frames (a block whose frames could not be
 * recorded: the previous block's must not stand for it). */
static inline void ga_pystacks_forget(ga_arena_t *a, long slot)
{
    if (a->pystacks != NULL && slot >= 0 && (uint32_t)slot < a->nslots)
        a->pystacks[2 * (size_t)slot].n = a->pystacks[2 * (size_t)slot + 1].n = 0;
}

#endif
