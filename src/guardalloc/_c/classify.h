/*
 * Fault classification (classify.c): what a fault address inside an arena
 * means. Private to the fault reporter.
 */
#ifndef GUARDALLOC_CLASSIFY_H
#define GUARDALLOC_CLASSIFY_H

#include <stddef.h>
#include "internal.h"
#include "layout.h"

enum {
    GA_KIND_OVERFLOW,    /* guard after a live buffer          */
    GA_KIND_UNDERFLOW,   /* guard before a live buffer         */
    GA_KIND_UAF,         /* data pages of a freed, guarded slot */
    GA_KIND_WILD,        /* anywhere else inside the arena     */
};

/* The report's name of each GA_KIND_* and of each GA_SLOT_* state. */
GA_INTERNAL extern const char *const ga_kind_names[];
GA_INTERNAL extern const char *const ga_state_names[];

typedef struct {
    int kind;
    int in_guard;      /* 1: the address is in the guard between left and right */
    int guarded;       /* 1: a guard (inter-slot or use-after-free) is in place */
    long slot;         /* the buffer the fault is blamed on, or -1          */
    long left, right;  /* around a guard: slot numbers, -1 / nslots = none  */
    int left_state, right_state;  /* their GA_SLOT_* at the time of the fault */
    char *guard_start; /* the guard (or guarded data pages) that was hit    */
    size_t guard_len;
} ga_fault_t;

/* Classify a fault at addr, inside a's mapping, into *f. Async-signal-safe. */
GA_INTERNAL void ga_classify(const ga_arena_t *a, const char *addr, ga_fault_t *f);

#endif
