/*
 * The report of a bad free (report_free.c).
 */
#ifndef GUARDALLOC_REPORT_FREE_H
#define GUARDALLOC_REPORT_FREE_H

#include "layout.h"
#include "nonheap.h"
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

/* A free by another allocation family's function (the native heap's
 * GA_FAMILY_*): ptr is the live block in `slot`, allocated_by "malloc",
 * "operator new" or "operator new []", freed_by the function that frees it
 * ("free", "operator delete"...). Text and JSON (kind
 * "alloc-dealloc-mismatch", ASan's name) with the allocation stack and this
 * free's. Async-signal-safe. */
void ga_report_mismatch(const void *ptr, const ga_arena_t *a, long slot, const char *allocated_by,
                        const char *freed_by, const ga_stack_t *this_free, int continuing);

/* Bytes in front of the block at ptr (slot `slot`) found overwritten when it
 * was freed: damage->first_offset is how far before the block the damage
 * reaches, damaged how many bytes differ, nbytes the block's size. Kind
 * "heap-buffer-underflow", access "free". Async-signal-safe. */
void ga_report_underflow(const void *ptr, const ga_arena_t *a, long slot, const ga_damage_t *damage,
                         const ga_stack_t *this_free, int continuing);

/* A free of memory no allocator made (nonheap.h says what `where` is):
 * kind "bad-free", ASan's words, naming the stack's thread, the object's
 * segment or the mapping; or a block of another guardalloc front end's
 * arena (kind "guardalloc"): its owner, slot and allocation stacks. Not
 * async-signal-safe (dladdr names the object); called from free(), never
 * from the fault handler. */
void ga_report_bad_free(const void *ptr, const ga_where_t *where, const char *freed_by,
                        const ga_stack_t *this_free, int continuing);

#endif
