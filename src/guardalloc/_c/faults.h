/*
 * The fault reporter: a registry of live arenas that the SIGSEGV/SIGBUS
 * handler can search without locks or allocation, and the handler itself.
 */
#ifndef GUARDALLOC_FAULTS_H
#define GUARDALLOC_FAULTS_H

#include "layout.h"
#include "stacks.h"

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

/* Where JSON reports go: a path template ("%p": the pid of the process
 * that faults, "%%": a percent sign), NULL or "" for none. One JSON object
 * per fault (and per report of ga_report_free), on one line, appended
 * (docs/report-schema.json). Returns 0, or -1 when the template is longer than GA_LOG_PATH_MAX (options.h). */
int ga_set_report_path(const char *path_template);
const char *ga_get_report_path(void);   /* NULL when none */

/* The test that runs now (a pytest node id, cut to 1024 bytes) and its
 * phase ("setup", "call", "teardown", "collect"), named in every report;
 * NULL: none. */
void ga_set_report_test(const char *nodeid, const char *phase);
const char *ga_get_report_test(void);

/* The file descriptor the text report is written to (default 2; -1: none). */
void ga_set_report_fd(int fd);
int ga_get_report_fd(void);

#endif
