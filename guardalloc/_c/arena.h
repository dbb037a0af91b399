/*
 * The arena descriptor shared by the Cython core (arena.pyx) and the C fault
 * reporter (faults.c).
 *
 * The fault handler reads this struct from a signal handler, so everything it
 * needs is plain C data reachable without locks or allocation: the layout
 * numbers, one ga_slot_t per slot and the pre-rendered traceback strings.
 *
 * Layout of one arena mapping (G = guard_size bytes of guard pages, S = one
 * slot of slot_size bytes, stride = slot_size + guard_size):
 *
 *     base: [G][S 0][G][S 1][G] ... [S n-1][G]
 *
 * Slot i's data starts at base + guard_size + i * stride.
 */
#ifndef GUARDALLOC_ARENA_H
#define GUARDALLOC_ARENA_H

#include <stddef.h>
#include <stdint.h>

/* Slot states. */
enum {
    GA_SLOT_FREE = 0,         /* never used, or released from quarantine    */
    GA_SLOT_LIVE = 1,         /* holds a buffer                             */
    GA_SLOT_QUARANTINED = 2,  /* freed with uaf=True; data pages guarded    */
    GA_SLOT_RETIRED = 3,      /* never handed out again (continue mode)     */
};

/* Slot flags. */
enum {
    GA_FLAG_DATA_GUARDED = 1, /* data pages carry a UAF guard right now     */
    GA_FLAG_RETIRE = 2,       /* retire instead of reusing when freed       */
    GA_FLAG_FAULTED = 4,      /* a report was already written for it        */
    GA_FLAG_USED = 8,         /* data may be non-zero (handed out before)   */
    GA_FLAG_RAW = 16,         /* owned by an address (alloc_raw), no Buffer */
    GA_FLAG_STACKED = 32,     /* has an entry on the free stack             */
    /* Continue mode lifted the guard before / after this slot's data. */
    GA_FLAG_GUARD_BEFORE_LIFTED = 64,
    GA_FLAG_GUARD_AFTER_LIFTED = 128,
};

/* Byte written into the slack after a buffer and checked when it is freed. */
#define GA_SLACK_BYTE 0xCB

/* Backends. */
enum {
    GA_BACKEND_NONE = 0,
    GA_BACKEND_MADVISE = 1,
    GA_BACKEND_MPROTECT = 2,
};

typedef struct ga_slot {
    uint32_t nbytes;  /* size of the live (or last freed) buffer            */
    uint32_t offset;  /* offset of the buffer from the slot's first byte    */
    uint8_t state;    /* GA_SLOT_*                                          */
    uint8_t flags;    /* GA_FLAG_*                                          */
    uint16_t reserved;
} ga_slot_t;

typedef struct ga_arena {
    char *base;            /* start of the one mapping                       */
    size_t size;           /* bytes mapped                                    */
    size_t slot_size;      /* bytes of data per slot (whole pages)            */
    size_t guard_size;     /* bytes of guard between slots (whole pages)      */
    size_t stride;         /* slot_size + guard_size                          */
    size_t alignment;      /* buffer alignment (power of two)                 */
    uint32_t nslots;
    int backend;           /* GA_BACKEND_*                                    */
    int align_right;       /* 1: buffers end at the guard; 0: start after it  */
    int on_fault_continue; /* 1: report once, lift the guard, retire, go on   */
    int uaf;               /* 1: freed slots are guarded (use-after-free)     */
    int shared;            /* 1: MAP_SHARED file or memfd mapping             */
    ga_slot_t *slots;
    /* Pre-rendered allocation and free tracebacks, one NUL-terminated string
     * per slot or NULL; both arrays are NULL while tracebacks are off. */
    char **alloc_trace;
    char **free_trace;
    /* Updated by the fault handler in continue mode. */
    volatile uint64_t faults_continued;
} ga_arena_t;

#define GA_SLOT_START(a, i) ((a)->base + (a)->guard_size + (size_t)(i) * (a)->stride)

#endif
