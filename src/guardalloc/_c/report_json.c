/*
 * The JSON report (docs/report-schema.json): one object per fault, on one
 * line, appended to the log_path file. Same data as the text report, which
 * it carries whole in "text". The pieces here also write the JSON report of
 * a free (report_free.c). Async-signal-safe: open(2), fstat(2), write(2),
 * close(2). The file is opened by report_file.c's rules (no symbolic link,
 * 0600, no other user's file).
 */
#define _GNU_SOURCE
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "options.h"
#include "report_context.h"
#include "report_file.h"
#include "report_internal.h"

#define GA_REPORT_SCHEMA_VERSION 6   /* 2: the reports of a free (ga_report_free); 3: bad-free,
                                        alloc-dealloc-mismatch, the underflow found at free;
                                        4: raw frames, stacks.access_native; 5: bad-free of
                                        a guardalloc block (memory.kind "guardalloc");
                                        6: Python frames, stacks.*_python, and
                                        "allocated"/"freed" innermost first */

void ga_json_key(ga_line_t *line, const char *key)
{
    line->json = 0;
    ga_put(line, ",\"");
    ga_put(line, key);
    ga_put(line, "\":");
}

void ga_json_string_open(ga_line_t *line)
{
    ga_put(line, "\"");
    line->json = 1;
}

void ga_json_string_close(ga_line_t *line)
{
    line->json = 0;
    ga_put(line, "\"");
}

/* A JSON string (escaped), or null. */
void ga_json_value(ga_line_t *line, const char *value)
{
    if (value == NULL) {
        ga_put(line, "null");
        return;
    }
    ga_json_string_open(line);
    ga_put(line, value);
    ga_json_string_close(line);
}

void ga_json_str(ga_line_t *line, const char *key, const char *value)
{
    ga_json_key(line, key);
    ga_json_value(line, value);
}

static void ga_json_hex(ga_line_t *line, const char *key, const void *p)
{
    ga_json_key(line, key);
    ga_put(line, "\"");
    ga_put_ptr(line, p);
    ga_put(line, "\"");
}

void ga_json_dec(ga_line_t *line, const char *key, unsigned long long v)
{
    ga_json_key(line, key);
    ga_put_dec(line, v);
}

/* A recorded native stack as an array of frames ("0x..: function+0x1c
 * (library)", innermost first), or null. */
void ga_json_pcs(ga_line_t *line, void *const *pcs, size_t n)
{
    size_t i;
    if (n == 0) {
        ga_put(line, "null");
        return;
    }
    ga_put(line, "[");
    for (i = 0; i < n; i++) {
        if (i)
            ga_put(line, ",");
        ga_json_string_open(line);
        ga_put_frame(line, (const char *)pcs[i] - 1);
        ga_json_string_close(line);
    }
    ga_put(line, "]");
}

void ga_json_stack(ga_line_t *line, const ga_stack_t *s)
{
    ga_json_pcs(line, s != NULL ? s->pc : NULL, s != NULL ? ga_stack_len(s) : 0);
}

/* A slot's recorded traceback, or null. */
static const char *ga_trace_of(char **table, long slot)
{
    return table != NULL && slot >= 0 ? table[slot] : NULL;
}

/* One line beside the text report: why this JSON report is not written.
 * Not inlined: its buffer is on the (alternate, maybe small) signal stack
 * only when a file is refused. */
static __attribute__((noinline)) void ga_json_say_refused(const char *path, ga_rf_why_t why, int open_errno)
{
    char message[GA_LOG_PATH_MAX + 192];
    size_t n = ga_report_file_message(message, sizeof(message) - 1, path, why, open_errno);
    int fd = ga_get_report_fd();
    message[n++] = '\n';
    if (fd >= 0)
        (void)!write(fd, message, n);
}

/* Open the log_path file and start a report: schema_version, tool, kind,
 * access, address. Returns 0, or -1 when no report is to be written (no
 * log_path, or the file is refused or cannot be opened: a line says so). */
int ga_json_begin(ga_line_t *line, const char *kind, const char *access, const void *addr)
{
    char path[GA_LOG_PATH_MAX + 64];
    const char *template = ga_get_report_path();
    int per_process, open_errno;
    ga_rf_why_t why;
    if (template == NULL)
        return -1;
    if (ga_report_path_expand(template, path, sizeof(path), &per_process) != 0) {
        ga_json_say_refused(template, GA_RF_TOO_LONG, 0);
        return -1;
    }
    line->fd = ga_report_file_open(path, per_process, &why, &open_errno);
    if (line->fd < 0) {
        ga_json_say_refused(path, why, open_errno);
        return -1;
    }
    ga_line_init(line, line->fd, 0);   /* the whole line in one write(2): lines never interleave */
    ga_put(line, "{\"schema_version\":");
    ga_put_dec(line, GA_REPORT_SCHEMA_VERSION);
    ga_json_str(line, "tool", "guardalloc");
    ga_json_str(line, "kind", kind);
    ga_json_str(line, "access", access);
    ga_json_hex(line, "address", addr);
    return 0;
}

/* offset (of addr), size, buffer and slot of the blamed slot's buffer, or
 * nulls (slot < 0); then the arena (null when a is NULL). */
void ga_json_buffer(ga_line_t *line, const ga_arena_t *a, long slot, const char *addr)
{
    if (a != NULL && slot >= 0) {
        const ga_slot_t *s = &a->slots[slot];
        const char *start = ga_slot_start(a, (size_t)slot) + s->offset;
        ga_json_key(line, "offset");
        if (addr < start)
            ga_put(line, "-");
        ga_put_dec(line, (unsigned long long)(addr < start ? start - addr : addr - start));
        ga_json_dec(line, "size", s->nbytes);
        ga_json_hex(line, "buffer", start);
        ga_json_dec(line, "slot", (unsigned long long)slot);
    } else {
        ga_json_key(line, "offset");
        ga_put(line, "null");
        ga_json_key(line, "size");
        ga_put(line, "null");
        ga_json_key(line, "buffer");
        ga_put(line, "null");
        ga_json_key(line, "slot");
        ga_put(line, "null");
    }
    ga_json_key(line, "arena");
    if (a == NULL) {
        ga_put(line, "null");
        return;
    }
    ga_put(line, "{\"base\":\"");
    ga_put_ptr(line, a->base);
    ga_put(line, "\",\"slots\":");
    ga_put_dec(line, a->nslots);
    ga_put(line, ",\"slot_size\":");
    ga_put_dec(line, a->slot_size);
    ga_put(line, ",\"guard_size\":");
    ga_put_dec(line, a->guard_size);
    ga_put(line, "}");
}

void ga_json_pids(ga_line_t *line)
{
    ga_json_dec(line, "pid", (unsigned long long)getpid());
    ga_json_dec(line, "tid", (unsigned long long)syscall(SYS_gettid));
}

/* on_fault, then the running test (or null). */
void ga_json_on_fault_and_test(ga_line_t *line, int continuing)
{
    const char *test = ga_get_report_test(), *phase = ga_get_report_phase();
    ga_json_str(line, "on_fault", continuing ? "continue" : "abort");
    ga_json_key(line, "test");
    if (test != NULL) {
        ga_put(line, "{\"nodeid\":");
        ga_json_value(line, test);
        ga_json_str(line, "phase", phase);
        ga_put(line, "}");
    } else {
        ga_put(line, "null");
    }
}

/* faulting_instruction: pc symbolized, or null. */
void ga_json_pc(ga_line_t *line, const void *pc)
{
    ga_json_key(line, "faulting_instruction");
    if (pc != NULL) {
        ga_json_string_open(line);
        ga_put_frame(line, pc);
        ga_json_string_close(line);
    } else {
        ga_put(line, "null");
    }
}

/* time, then the opening of "text": the caller writes the text report
 * (escaped) to line->fd and ends the report with ga_json_end. */
void ga_json_time_and_text(ga_line_t *line)
{
    struct timespec now;
    if (clock_gettime(CLOCK_REALTIME, &now) == 0) {
        char ms[4] = {(char)('0' + now.tv_nsec / 100000000), (char)('0' + now.tv_nsec / 10000000 % 10),
                      (char)('0' + now.tv_nsec / 1000000 % 10), 0};
        ga_json_dec(line, "time", (unsigned long long)now.tv_sec);
        ga_put(line, ".");
        ga_put(line, ms);
    }
    ga_json_key(line, "text");
    ga_json_string_open(line);
}

void ga_json_end(ga_line_t *line)
{
    ga_json_string_close(line);
    ga_put(line, "}\n");
    ga_line_done(line);
    close(line->fd);
}

void ga_json_report(int sig, int si_code, const ga_arena_t *a, const char *addr,
                    const char *access, const ga_fault_t *f, int continuing, const ga_access_t *stack)
{
    ga_line_t line;
    if (ga_json_begin(&line, sig == SIGBUS && !f->guarded ? "bus-error" : ga_kind_names[f->kind],
                      access, addr) != 0)
        return;
    ga_json_buffer(&line, a, f->slot, addr);
    ga_json_pids(&line);
    ga_json_str(&line, "signal", sig == SIGBUS ? "SIGBUS" : "SIGSEGV");
    ga_json_str(&line, "si_code",
                sig == SIGSEGV ? (si_code == SEGV_MAPERR ? "SEGV_MAPERR"
                                  : si_code == SEGV_ACCERR ? "SEGV_ACCERR" : "passed-on")
                               : (si_code == BUS_ADRERR ? "BUS_ADRERR" : "passed-on"));
    ga_json_on_fault_and_test(&line, continuing);
    ga_json_key(&line, "stacks");
    ga_put(&line, "{\"allocated\":");
    ga_json_trace(&line, ga_trace_of(a->alloc_trace, f->slot), ga_pystacks_of(a, f->slot, 0));
    ga_json_key(&line, "freed");
    ga_json_trace(&line, ga_trace_of(f->kind == GA_KIND_UAF ? a->free_trace : NULL, f->slot),
                  f->kind == GA_KIND_UAF ? ga_pystacks_of(a, f->slot, 1) : NULL);
    ga_json_key(&line, "allocated_native");
    ga_json_stack(&line, ga_stacks_of(a, f->slot, 0));
    ga_json_key(&line, "freed_native");
    ga_json_stack(&line, f->kind == GA_KIND_UAF ? ga_stacks_of(a, f->slot, 1) : NULL);
    ga_json_key(&line, "access_native");
    ga_json_pcs(&line, stack->pc, stack->n);
    ga_json_key(&line, "access_python");
    ga_json_pystack(&line, &stack->py);
    ga_json_key(&line, "allocated_python");
    ga_json_pystack(&line, ga_pystacks_of(a, f->slot, 0));
    ga_json_key(&line, "freed_python");
    ga_json_pystack(&line, f->kind == GA_KIND_UAF ? ga_pystacks_of(a, f->slot, 1) : NULL);
    ga_put(&line, "}");
    ga_json_pc(&line, stack->n > 0 ? (const char *)stack->pc[0] - 1 : NULL);
    ga_json_access(&line, stack);
    ga_json_time_and_text(&line);
    ga_format_report(&line, sig, si_code, a, addr, access, f, continuing, stack);
    ga_json_end(&line);
}
