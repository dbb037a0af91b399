/*
 * Continue mode (continue_mode.c): the handler lifts the guard that was hit
 * and the program goes on. Private to the fault reporter; async-signal-safe.
 */
#ifndef GUARDALLOC_CONTINUE_MODE_H
#define GUARDALLOC_CONTINUE_MODE_H

#include "classify.h"
#include "internal.h"
#include "layout.h"

/* Lift the guard (or the use-after-free guard) that f hit and retire the
 * slots around it. Returns 0, or -1 when the guard could not be lifted. */
GA_INTERNAL int ga_lift_and_retire(ga_arena_t *a, const ga_fault_t *f);

/* Remember that a report blamed the slots of f. */
GA_INTERNAL void ga_mark_reported(ga_arena_t *a, const ga_fault_t *f);

/* 1 when a report already blamed the slots of f (continue mode reports the
 * first fault of each slot only). */
GA_INTERNAL int ga_fault_reported_before(const ga_arena_t *a, const ga_fault_t *f);

#endif
