/*
 * What the report files share (report_text.c, report_json.c, report_free.c,
 * handler.c): the text pieces, the JSON writer, and the fault's two reports.
 * Private to the fault reporter; everything here is async-signal-safe.
 */
#ifndef GUARDALLOC_REPORT_INTERNAL_H
#define GUARDALLOC_REPORT_INTERNAL_H

#include "classify.h"
#include "insn_decode.h"
#include "internal.h"
#include "layout.h"
#include "pyframes.h"
#include "sigsafe_format.h"
#include "stacks.h"

/* The stack of a faulting access: the faulting instruction and the return
 * addresses above it, each stored plus one (as ga_stack_t holds return
 * addresses: every entry less one is an address inside the call). */
#define GA_ACCESS_DEPTH 32
typedef struct {
    void *pc[GA_ACCESS_DEPTH];
    size_t n;
    /* The faulting instruction: the bytes read at pc[0] - 1 (code_len 0:
     * none could be read) and what insn_decode.c makes of them (decoded 0:
     * nothing). */
    unsigned char code[GA_INSN_MAX];
    size_t code_len;
    int decoded;
    ga_insn_t insn;
    ga_pystack_t py;   /* the thread's Python frames (none outside Python) */
} ga_access_t;

/* report_access.c: the faulting instruction's access. */
/* Read and decode the instruction at stack->pc[0] - 1 into stack. */
GA_INTERNAL void ga_access_decode(ga_access_t *stack);
/* access ("READ", "WRITE", "EXEC") as the error code of the page fault
 * gave it, or, where it gave none ("access"), from the instruction. */
GA_INTERNAL const char *ga_access_name(const char *access, const ga_access_t *stack);
/* " of size 8" and what kind of access it is, or nothing when the size is
 * not known. */
GA_INTERNAL void ga_put_access_size(ga_line_t *line, const ga_access_t *stack);
/* The JSON keys access_size and instruction. */
GA_INTERNAL void ga_json_access(ga_line_t *line, const ga_access_t *stack);

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
/* The same, naming the innermost Python frame of py when no native frame is
 * outside the runtime (a Python program's bug: the interpreter's and libffi's
 * frames are all there is): "SUMMARY: guardalloc: KIND FUNCTION FILE:LINE". */
GA_INTERNAL void ga_put_summary_py(ga_line_t *line, const char *kind, void *const *pcs, size_t n,
                                   const ga_pystack_t *py);
/* The text report of a fault into line; stack: the access's (may be
 * empty when the context gave no PC). */
GA_INTERNAL void ga_format_report(ga_line_t *line, int sig, int si_code, const ga_arena_t *a,
                                  const char *addr, const char *access, const ga_fault_t *f,
                                  int continuing, const ga_access_t *stack);

/* pyframes.c: a Python stack's numbered lines (innermost first), and as a
 * JSON array of {"function", "file", "line", "entry"} (null when s is NULL
 * or empty). */
GA_INTERNAL void ga_put_pystack(ga_line_t *line, const ga_pystack_t *s);
/* " FUNCTION FILE:LINE" of f; 0, or -1 (nothing written) when its code object is gone. */
GA_INTERNAL int ga_put_pyframe_summary(ga_line_t *line, const ga_pyframe_t *f);
GA_INTERNAL void ga_json_pystack(ga_line_t *line, const ga_pystack_t *s);
/* A slot's traceback as one JSON string of the text report's lines: the
 * rendered one, else the recorded Python frames; null when neither. */
GA_INTERNAL void ga_json_trace(ga_line_t *line, const char *rendered, const ga_pystack_t *s);

/* "title" and the Python frames py, then "title (native):" and the native
 * ones (pcs: return addresses, n of them); only the native ones under title
 * when py has none. title ends with ':'. none: what follows title when
 * there is no native frame (" (no stack recorded)"). */
GA_INTERNAL void ga_put_event(ga_line_t *line, const char *title, const ga_pystack_t *py,
                              void *const *pcs, size_t n, const char *none);
/* The same with a recorded native stack (s may be NULL), its outer frames
 * not kept said as ga_put_stack says them. */
GA_INTERNAL void ga_put_event_stack(ga_line_t *line, const char *title, const ga_pystack_t *py,
                                    const ga_stack_t *s, const char *none);

/* report_json.c: a report is ga_json_begin, its keys, ga_json_time_and_text,
 * the text report (escaped) to line->fd, and ga_json_end. */
GA_INTERNAL int ga_json_begin(ga_line_t *line, const char *kind, const char *access, const void *addr);
GA_INTERNAL void ga_json_key(ga_line_t *line, const char *key);
GA_INTERNAL void ga_json_value(ga_line_t *line, const char *value);   /* a string, or null */
/* Open and close a JSON string: what is put between them is escaped. */
GA_INTERNAL void ga_json_string_open(ga_line_t *line);
GA_INTERNAL void ga_json_string_close(ga_line_t *line);
GA_INTERNAL void ga_json_str(ga_line_t *line, const char *key, const char *value);
GA_INTERNAL void ga_json_dec(ga_line_t *line, const char *key, unsigned long long v);
GA_INTERNAL void ga_json_stack(ga_line_t *line, const ga_stack_t *s);
/* ,"allocated_python":..,"freed_python":..,"this_free_python":.. (pyframes.c). */
GA_INTERNAL void ga_json_python_stacks(ga_line_t *line, const ga_pystack_t *allocated, const ga_pystack_t *freed,
                                       const ga_pystack_t *this_free);
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
