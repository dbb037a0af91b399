/*
 * The arena descriptor and its slot arithmetic: the one place that knows how
 * an arena is laid out. The core (core.c), the fault handler (handler.c,
 * classify.c, the report_*.c files), the Cython front ends and the native
 * malloc library all read it from here.
 *
 * The fault handler reads this struct from a signal handler, so everything it
 * needs is plain C data reachable without locks or allocation: the layout
 * numbers, one ga_slot_t per slot and the pre-rendered traceback strings.
 *
 * Layout of one arena mapping (G = guard_size bytes of guard pages, S = one
 * slot of slot_size bytes, stride = slot_size + guard_size):
 *
 *     base: [G][S 0][G][S 1][G] ... [S n-1][G] [bookkeeping, anonymous arenas]
 *
 * Slot i's data starts at base + guard_size + i * stride. An anonymous
 * arena's bookkeeping (slot table, free stack, quarantine ring, traceback
 * tables) lives in the same mapping after the last guard, so that the arena
 * is one VMA; a file-backed arena keeps it on the heap (it must stay private
 * to each process that maps the file).
 */
#ifndef GUARDALLOC_LAYOUT_H
#define GUARDALLOC_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

/* Slot states. */
enum {
    GA_SLOT_FREE = 0,         /* never used, or released from quarantine    */
    GA_SLOT_LIVE = 1,         /* holds a buffer                             */
    GA_SLOT_QUARANTINED = 2,  /* freed with uaf; data pages guarded         */
    GA_SLOT_RETIRED = 3,      /* never handed out again (continue mode)     */
};

/* Slot flags. */
enum {
    GA_FLAG_DATA_GUARDED = 1, /* data pages carry a UAF guard right now     */
    GA_FLAG_RETIRE = 2,       /* retire instead of reusing when freed       */
    GA_FLAG_FAULTED = 4,      /* a report was already written for it        */
    GA_FLAG_DIRTY = 8,        /* data may be non-zero (handed out before)   */
    GA_FLAG_RAW = 16,         /* owned by an address (alloc_raw, C callers) */
    GA_FLAG_STACKED = 32,     /* has an entry on the free stack             */
    /* Continue mode lifted the guard before / after this slot's data. */
    GA_FLAG_GUARD_BEFORE_LIFTED = 64,
    GA_FLAG_GUARD_AFTER_LIFTED = 128,
};

/* Byte written into the slack after a buffer and checked when it is freed. */
#define GA_SLACK_BYTE 0xCB

/* Guard backends. */
enum {
    GA_BACKEND_NONE = 0,
    GA_BACKEND_MADVISE = 1,
    GA_BACKEND_MPROTECT = 2,
};

/* Where a buffer sits in its slot. */
enum {
    GA_ALIGN_LEFT = 0,        /* starts right after the guard before it     */
    GA_ALIGN_RIGHT = 1,       /* ends at the guard after it (the default)   */
    GA_ALIGN_RANDOM = 2,      /* left or right, by a per-arena PRNG         */
};

/* Result codes of the core (negative: failure). */
enum {
    GA_OK = 0,
    GA_ERR_FULL = -1,         /* no free slot                               */
    GA_ERR_SYSCALL = -2,      /* a guard system call failed; errno says why */
    GA_ERR_FOREIGN = -3,      /* address outside this arena                 */
    GA_ERR_INVALID = -4,      /* not the start of a live buffer             */
    GA_ERR_DOUBLE = -5,       /* the buffer was already freed               */
    GA_ERR_CORRUPT = -6,      /* freed, but the slack pattern was damaged   */
    GA_ERR_NOT_FREE = -7,     /* the requested slot is not free             */
    GA_ERR_OWNED = -8,        /* the start of a buffer that an object owns  */
};

/* What a free found in the slack after a buffer. */
typedef struct ga_damage {
    size_t nbytes;            /* size of the buffer that was freed          */
    size_t first_offset;      /* from the buffer's start                    */
    size_t damaged;           /* bytes that differ from the pattern         */
} ga_damage_t;

typedef struct ga_slot {
    uint32_t nbytes;  /* size of the live (or last freed) buffer            */
    uint32_t offset;  /* offset of the buffer from the slot's first byte    */
    uint8_t state;    /* GA_SLOT_*                                          */
    uint8_t flags;    /* GA_FLAG_*                                          */
    uint16_t reserved;
} ga_slot_t;

typedef struct ga_arena {
    /* Layout (read by the fault handler). */
    char *base;            /* start of the slots' mapping (the first guard)  */
    size_t size;           /* guards and slots: base .. base + size           */
    size_t slot_size;      /* bytes of data per slot (whole pages)            */
    size_t guard_size;     /* bytes of guard between slots (whole pages)      */
    size_t stride;         /* slot_size + guard_size                          */
    size_t alignment;      /* buffer alignment (power of two)                 */
    uint32_t nslots;
    int backend;           /* GA_BACKEND_*                                    */
    int align;             /* GA_ALIGN_*                                      */
    int on_fault_continue; /* 1: report once, lift the guard, retire, go on   */
    int uaf;               /* 1: freed slots are guarded (use-after-free)     */
    int shared;            /* 1: MAP_SHARED file or memfd mapping             */
    int file_backed;       /* 1: pages hold the file's data, not zeros        */
    int batched;           /* 1: install guards with process_madvise()        */
    ga_slot_t *slots;
    /* Pre-rendered allocation and free tracebacks, one NUL-terminated string
     * per slot or NULL; each table is NULL until a traceback is recorded. */
    char **alloc_trace;
    char **free_trace;
    /* What the report says where a slot has no traceback: how to get one
     * for this kind of block (the front end that made the arena knows). */
    const char *untraced_hint;
    /* What made the arena, as a report names it ("a guardalloc Pool", "the
     * guardalloc PyMem hooks' Pool"), or NULL: a free() of one of its blocks
     * by another allocator is reported saying whose block it is. */
    const char *owner;
    /* Native allocation and free stacks, two per slot (stacks.h), or NULL
     * when the arena records none. */
    struct ga_packed_stack *stacks;
    /* Python allocation and free frames, two per slot (pyframes.h), or NULL. */
    struct ga_pystack *pystacks;
    /* Updated by the fault handler in continue mode. */
    volatile uint64_t faults_continued;

    /* Bookkeeping (core.c's own; the handler does not read it). */
    uint32_t *free_stack;  /* freed slots, most recent on top                 */
    uint32_t free_top;
    uint32_t fresh;        /* slots [fresh, nslots) were never handed out     */
    uint32_t *quarantine;  /* FIFO ring of freed, guarded slots (uaf)         */
    uint32_t quarantine_head;
    uint32_t quarantine_len;
    uint32_t quarantine_limit;
    uint64_t random_state; /* GA_ALIGN_RANDOM's xorshift state                */
    /* Counters. */
    uint64_t guard_syscalls;  /* spent installing the arena's guards          */
    uint64_t uaf_syscalls;    /* guarding freed slots, unguarding reused ones */
    uint64_t allocations;
    /* Lazy guards (large anonymous madvise arenas, see core.c): slots
     * [0, opened) have their guards; from closed_from to base + size the
     * never-opened tail is PROT_NONE (NULL: every slot is open). The fault
     * handler reads closed_from: a fault there is a wild access whose guard
     * cannot be lifted. */
    uint32_t opened;
    char *volatile closed_from;
} ga_arena_t;

/* Slots opened at a time as an arena's high-water mark advances: one
 * mprotect() and one process_madvise() (GA_IOV_MAX ranges) per chunk. An
 * arena of at most this many slots is opened whole when it is built. */
#define GA_OPEN_CHUNK 1024u

/* First data byte of slot i. */
static inline char *ga_slot_start(const ga_arena_t *a, size_t i)
{
    return a->base + a->guard_size + i * a->stride;
}

/* The slot whose data holds p, or -1 (a guard, or outside the arena). */
static inline long ga_slot_of(const ga_arena_t *a, const void *p)
{
    const char *c = (const char *)p;
    size_t off;
    if (c < a->base + a->guard_size || c >= a->base + a->size)
        return -1;
    off = (size_t)(c - a->base) - a->guard_size;
    if (off % a->stride >= a->slot_size)
        return -1;
    return (long)(off / a->stride);
}

/* Bytes of guards and slots of an arena: what `size` holds. */
static inline size_t ga_slots_size(size_t slot_size, uint32_t nslots, size_t guard_size)
{
    return guard_size + (size_t)nslots * (slot_size + guard_size);
}

static inline size_t ga_round_up(size_t n, size_t multiple)
{
    return (n + multiple - 1) / multiple * multiple;
}

/* The slot table, free stack and (uaf) quarantine ring, rounded up so that
 * the traceback tables after them are pointer-aligned. */
static inline size_t ga_tables_size(uint32_t nslots, int uaf)
{
    return ga_round_up((size_t)nslots * (sizeof(ga_slot_t) + sizeof(uint32_t) * (uaf ? 2 : 1)),
                       sizeof(char *));
}

/* All of an arena's bookkeeping: the tables, then the allocation and free
 * traceback tables (address space only, untouched until tracebacks are
 * recorded). */
static inline size_t ga_bookkeeping_size(uint32_t nslots, int uaf)
{
    return ga_tables_size(nslots, uaf) + 2 * (size_t)nslots * sizeof(char *);
}

/* Bytes of an anonymous arena's one mapping: guards, slots and, after the
 * last guard, the bookkeeping in whole pages. */
static inline size_t ga_anonymous_mapping_size(size_t slot_size, uint32_t nslots,
                                               size_t guard_size, int uaf, size_t page)
{
    return ga_slots_size(slot_size, nslots, guard_size)
        + ga_round_up(ga_bookkeeping_size(nslots, uaf), page);
}

_Static_assert(sizeof(ga_slot_t) == 12, "ga_slot_t is 12 bytes: the tables' size depends on it");
_Static_assert(GA_SLOT_RETIRED == 3, "states fit in two bits: the handler masks with 3");

#endif
