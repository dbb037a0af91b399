/*
 * What the report files share (report_text.c, report_json.c, report_free.c,
 * handler.c): the text pieces, the JSON writer, and the fault's two reports.
 * Private to the fault reporter; everything here is async-signal-safe.
 */
#ifndef GUARDALLOC_REPORT_INTERNAL_H
#define GUARDALLOC_REPORT_INTERNAL_H

#include "classify.h"
#include "internal.h"
#include "layout.h"
#include "sigsafe_format.h"
#include "stacks.h"

/* The running test's phase, NULL when none (report_context.c). */
GA_INTERNAL const char *ga_get_report_phase(void);

/* report_text.c */
/* "  test: <node id> (<phase>)" when a test runs. */
GA_INTERNAL void ga_put_test(ga_line_t *line);
/* "0x7f..: function+0x1c (/lib/libfoo.so)" for one code address. */
GA_INTERNAL void ga_put_frame(ga_line_t *line, const void *pc);
/* One line per return address of a recorded stack (s may be NULL). */
GA_INTERNAL void ga_put_stack(ga_line_t *line, const ga_stack_t *s);
/* The text report of a fault, written to fd (json: escaped for a JSON
 * string); pc is the faulting instruction when the kernel gave one. */
GA_INTERNAL void ga_format_report(int fd, int json, int sig, int si_code, const ga_arena_t *a,
                                  const char *addr, const char *access, const ga_fault_t *f,
                                  int continuing, const void *pc);

/* report_json.c: a report is ga_json_begin, its keys, ga_json_time_and_text,
 * the text report (escaped) to line->fd, and ga_json_end. */
GA_INTERNAL int ga_json_begin(ga_line_t *line, const char *kind, const char *access, const void *addr);
GA_INTERNAL void ga_json_key(ga_line_t *line, const char *key);
GA_INTERNAL void ga_json_dec(ga_line_t *line, const char *key, unsigned long long v);
GA_INTERNAL void ga_json_stack(ga_line_t *line, const ga_stack_t *s);
GA_INTERNAL void ga_json_buffer(ga_line_t *line, const ga_arena_t *a, long slot, const char *addr);
GA_INTERNAL void ga_json_pids(ga_line_t *line);
GA_INTERNAL void ga_json_on_fault_and_test(ga_line_t *line, int continuing);
GA_INTERNAL void ga_json_pc(ga_line_t *line, const void *pc);
GA_INTERNAL void ga_json_time_and_text(ga_line_t *line);
GA_INTERNAL void ga_json_end(ga_line_t *line);
/* The JSON report of a fault, appended to the log_path file when one is set. */
GA_INTERNAL void ga_json_report(int sig, int si_code, const ga_arena_t *a, const char *addr,
                                const char *access, const ga_fault_t *f, int continuing, const void *pc);

#endif
