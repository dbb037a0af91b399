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

/* The stack of a faulting access: the faulting instruction and the return
 * addresses above it, each stored plus one (as ga_stack_t holds return
 * addresses: every entry less one is an address inside the call). */
#define GA_ACCESS_DEPTH 32
typedef struct {
    void *pc[GA_ACCESS_DEPTH];
    size_t n;
} ga_access_t;

/* The running test's phase, NULL when none (report_context.c). */
GA_INTERNAL const char *ga_get_report_phase(void);

/* report_text.c */
/* "  test: <node id> (<phase>)" when a test runs. */
GA_INTERNAL void ga_put_test(ga_line_t *line);
/* The raw frame of one code address: "0x7f.. (/lib/libfoo.so+0x1c) (BuildId: ..)". */
GA_INTERNAL void ga_put_frame(ga_line_t *line, const void *pc);
/* One numbered line per entry of pcs (return addresses; n of them):
 *     #0 0x7f.. (/lib/libfoo.so+0x1c) (BuildId: ..) */
GA_INTERNAL void ga_put_pcs(ga_line_t *line, void *const *pcs, size_t n);
/* One line per return address of a recorded stack (s may be NULL). */
GA_INTERNAL void ga_put_stack(ga_line_t *line, const ga_stack_t *s);
/* A slot's allocation (freed = 0) or free stacks under title (table: the
 * arena's traceback table): its Python traceback, then its native stack;
 * "(not recorded: ...)" when it has neither. */
GA_INTERNAL void ga_put_trace(ga_line_t *line, const ga_arena_t *a, const char *title, char **table,
                              long slot, int freed);
/* "thread 1234 (name)" for the calling thread. */
GA_INTERNAL void ga_put_thread(ga_line_t *line);
/* The last line of every report: "SUMMARY: guardalloc: KIND (module+0x..)"
 * naming the first frame of pcs outside the runtime (libc, the C++ runtime,
 * the loader, the interpreter, guardalloc), else the first; the symbolizer
 * rewrites it to "KIND FUNCTION FILE:LINE". */
GA_INTERNAL void ga_put_summary(ga_line_t *line, const char *kind, void *const *pcs, size_t n);
/* The text report of a fault into line; stack: the access's (may be
 * empty when the context gave no PC). */
GA_INTERNAL void ga_format_report(ga_line_t *line, int sig, int si_code, const ga_arena_t *a,
                                  const char *addr, const char *access, const ga_fault_t *f,
                                  int continuing, const ga_access_t *stack);

/* report_json.c: a report is ga_json_begin, its keys, ga_json_time_and_text,
 * the text report (escaped) to line->fd, and ga_json_end. */
GA_INTERNAL int ga_json_begin(ga_line_t *line, const char *kind, const char *access, const void *addr);
GA_INTERNAL void ga_json_key(ga_line_t *line, const char *key);
GA_INTERNAL void ga_json_value(ga_line_t *line, const char *value);   /* a string, or null */
GA_INTERNAL void ga_json_str(ga_line_t *line, const char *key, const char *value);
GA_INTERNAL void ga_json_dec(ga_line_t *line, const char *key, unsigned long long v);
GA_INTERNAL void ga_json_stack(ga_line_t *line, const ga_stack_t *s);
GA_INTERNAL void ga_json_buffer(ga_line_t *line, const ga_arena_t *a, long slot, const char *addr);
GA_INTERNAL void ga_json_pids(ga_line_t *line);
GA_INTERNAL void ga_json_on_fault_and_test(ga_line_t *line, int continuing);
GA_INTERNAL void ga_json_pc(ga_line_t *line, const void *pc);
/* A JSON array of raw frames (pcs are return addresses), or null when n is 0. */
GA_INTERNAL void ga_json_pcs(ga_line_t *line, void *const *pcs, size_t n);
GA_INTERNAL void ga_json_time_and_text(ga_line_t *line);
GA_INTERNAL void ga_json_end(ga_line_t *line);
/* The JSON report of a fault, appended to the log_path file when one is set. */
GA_INTERNAL void ga_json_report(int sig, int si_code, const ga_arena_t *a, const char *addr,
                                const char *access, const ga_fault_t *f, int continuing,
                                const ga_access_t *stack);

#endif
