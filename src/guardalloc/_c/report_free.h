/*
 * The report of a bad free (report_free.c).
 */
#ifndef GUARDALLOC_REPORT_FREE_H
#define GUARDALLOC_REPORT_FREE_H

#include "layout.h"
#include "stacks.h"

/* The report of a free (the native heap's, the PyMem hooks'; the one
 * reporter of frees): `code` is what the free returned (ga_free's GA_ERR_*:
 * GA_ERR_DOUBLE, GA_ERR_CORRUPT, any other error an invalid free) for ptr,
 * the slot it falls in (a NULL: outside every arena; slot -1: in no slot),
 * damage (GA_ERR_CORRUPT), this free's native stack and the slot's recorded
 * ones. The text report on the text descriptor, naming the slot and every
 * stack; and, with a log_path, the same as one JSON object (kind
 * "double-free", "invalid-free" or, for damage, "heap-buffer-overflow";
 * access "free"; docs/report-schema.json). continuing: the caller goes on
 * (on_fault=continue) instead of aborting. Async-signal-safe. */
void ga_report_free(int code, const void *ptr, const ga_arena_t *a, long slot,
                    const ga_damage_t *damage, const ga_stack_t *this_free, int continuing);

#endif
