/*
 * The fault reporter: a registry of live arenas that the SIGSEGV/SIGBUS
 * handler can search without locks or allocation, and the handler itself.
 */
#ifndef GUARDALLOC_FAULTS_H
#define GUARDALLOC_FAULTS_H

#include "layout.h"

/* Make an arena visible to the fault handler. Returns 0, or -1 when the
 * registry is full (GA_MAX_ARENAS) or out of memory. Not async-signal-safe;
 * callers serialize (the GIL, or the pool's lock). */
int ga_register_arena(ga_arena_t *arena);

/* Hide an arena from the fault handler; call before unmapping it. */
void ga_unregister_arena(ga_arena_t *arena);

/* The registered arena whose mapping holds addr, or NULL. Async-signal-safe. */
ga_arena_t *ga_find_arena(const void *addr);

/* How many arenas are registered now. */
size_t ga_registered_arenas(void);

/* Install the SIGSEGV/SIGBUS handler (chaining to the dispositions in place)
 * or, when it is installed already, switch reports back on. Gives the calling
 * thread an alternate signal stack when it has none. Returns 0, or -1 with
 * errno set. Not async-signal-safe; callers serialize (the GIL). */
int ga_reports_enable(void);

/* Stop reporting. The previous dispositions are put back when the handler is
 * still the one installed; when another handler was installed on top of it
 * (and may chain to it), the handler stays and passes every signal on. */
void ga_reports_disable(void);

/* 1 while faults inside arenas are reported. */
int ga_reports_active(void);

/* 1 when guardalloc's handler is the current SIGSEGV disposition. */
int ga_reports_handler_on_top(void);

/* One line on stderr: a free by a C caller (the PyMem hooks) found the slack after the block at ptr overwritten; the block was freed.
 * Async-signal-safe. */
void ga_report_corruption(const void *ptr, const ga_damage_t *damage);

/* One line on stderr: `who` was asked to `what` ("free", "realloc") ptr,
 * which lies in a guarded pool but is not the start of a live block.
 * Async-signal-safe. */
void ga_report_bad_free(const char *who, const char *what, const void *ptr);

#endif
