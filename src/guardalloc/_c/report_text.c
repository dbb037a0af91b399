/*
 * The text report of a fault, and the text pieces every report shares: the
 * running test, a code address, a recorded native stack. Async-signal-safe
 * (sigsafe_format.h); the same text goes to the text descriptor and, escaped,
 * into the JSON report's "text".
 */
#define _GNU_SOURCE
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "guards.h"
#include "modules.h"
#include "report_context.h"
#include "report_internal.h"

/* "  test: <node id> (<phase>)" when a test runs. */
void ga_put_test(ga_line_t *line)
{
    const char *test = ga_get_report_test(), *phase = ga_get_report_phase();
    if (test == NULL)
        return;
    ga_put(line, "  test: ");
    ga_put(line, test);
    if (phase != NULL) {
        ga_put(line, " (");
        ga_put(line, phase);
        ga_put(line, ")");
    }
    ga_put(line, "\n");
}

void ga_put_frame(ga_line_t *line, const void *pc)
{
    char frame[1024];
    ga_stack_format_frame(pc, frame, sizeof(frame));
    ga_put(line, frame);
}

void ga_put_pcs(ga_line_t *line, void *const *pcs, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        ga_put(line, "    #");
        ga_put_dec(line, i);
        ga_put(line, " ");
        /* A return address points after the call: look up the call. */
        ga_put_frame(line, (const char *)pcs[i] - 1);
        ga_put(line, "\n");
    }
}

void ga_put_stack(ga_line_t *line, const ga_stack_t *s)
{
    if (s == NULL)
        return;
    ga_put_pcs(line, s->pc, ga_stack_len(s));
    if (s->dropped != 0) {   /* outer frames past the stored budget */
        ga_put(line, "    ... ");
        if ((s->dropped & ~GA_STACK_CUT) != 0) {
            ga_put_dec(line, s->dropped & ~GA_STACK_CUT);
            ga_put(line, s->dropped & GA_STACK_CUT ? " or more" : "");
        } else {
            ga_put(line, "more");
        }
        ga_put(line, " outer frames not kept\n");
    }
}

void ga_put_thread(ga_line_t *line)
{
    char name[17] = {0};
    ga_put(line, "thread ");
    ga_put_dec(line, (unsigned long long)syscall(SYS_gettid));
    if (prctl(PR_GET_NAME, name, 0, 0, 0) == 0 && name[0] != '\0') {   /* a system call: safe here */
        ga_put(line, " (");
        ga_put(line, name);
        ga_put(line, ")");
    }
}

/* Code a user does not write: the C and C++ runtimes, the loader, the
 * interpreter and ctypes' libffi, and guardalloc's own modules. */
static int ga_is_runtime(const char *path)
{
    static const char *const prefixes[] = {"libc.so", "libc-", "libm.so", "ld-linux", "libstdc++", "libgcc_s",
                                           "libpython", "libffi", "python", NULL};
    const char *base = path, *p;
    int i;
    for (p = path; *p; p++) {
        if (*p == '/')
            base = p + 1;
        if (p[0] == '/' && (strncmp(p, "/guardalloc/", 12) == 0 || strncmp(p, "/lib-dynload/", 13) == 0))
            return 1;   /* guardalloc's modules; the interpreter's own (_ctypes) */
    }
    for (i = 0; prefixes[i] != NULL; i++)
        if (strncmp(base, prefixes[i], strlen(prefixes[i])) == 0)
            return 1;
    return 0;
}

void ga_put_summary(ga_line_t *line, const char *kind, void *const *pcs, size_t n)
{
    ga_put_summary_py(line, kind, pcs, n, NULL);
}

void ga_put_summary_py(ga_line_t *line, const char *kind, void *const *pcs, size_t n, const ga_pystack_t *py)
{
    size_t i, chosen = 0;
    int user = 0;
    for (i = 0; i < n; i++) {
        const ga_module_t *m = ga_module_of((const char *)pcs[i] - 1);
        if (m != NULL && !ga_is_runtime(ga_module_path(m))) {
            chosen = i;
            user = 1;
            break;
        }
    }
    ga_put(line, "SUMMARY: guardalloc: ");
    ga_put(line, kind);
    if (!user && py != NULL && py->n > 0 && ga_put_pyframe_summary(line, &py->f[0]) == 0) {
        ga_put(line, "\n");
        return;
    }
    if (n > 0) {
        char frame[1024], *body;
        ga_stack_format_frame((const char *)pcs[chosen] - 1, frame, sizeof(frame));
        for (body = frame; *body && *body != ' '; body++)   /* the frame less its address */
            ;
        ga_put(line, body);
    }
    ga_put(line, "\n");
}

/* text from column `column` on, broken at spaces into lines of at most
 * GA_TEXT_WIDTH columns, the lines after the first indented by four. */
#define GA_TEXT_WIDTH 100
static void ga_put_wrapped(ga_line_t *line, const char *text, size_t column)
{
    int space = 0;   /* a space is owed before the next word */
    while (*text) {
        size_t word = 0;
        if (*text == ' ') {
            space = 1;
            text++;
            continue;
        }
        while (text[word] != '\0' && text[word] != ' ')
            word++;
        if (column > 4 && column + space + word > GA_TEXT_WIDTH) {
            ga_put(line, "\n    ");
            column = 4;
        } else if (space) {
            ga_put(line, " ");
            column++;
        }
        space = 0;
        for (; word > 0; word--, text++, column++) {
            char one[2] = {*text, '\0'};
            ga_put(line, one);   /* escaped in a JSON string */
        }
    }
}

/* title less its ':', then " (native):\n". */
static void ga_put_native_title(ga_line_t *line, const char *title)
{
    size_t i;
    for (i = 0; title[i] != '\0' && title[i + 1] != '\0'; i++)
        ga_put_byte(line, title[i]);
    ga_put(line, " (native):\n");
}

/* title and the Python frames py, then the native frames' title ("title
 * (native):"); or title alone, or title and `none` when there are no native
 * frames either. Whether native frames are to follow. */
static int ga_put_event_head(ga_line_t *line, const char *title, const ga_pystack_t *py, int native,
                             const char *none)
{
    ga_put(line, title);
    if (py != NULL && py->n > 0) {
        ga_put(line, "\n");
        ga_put_pystack(line, py);
        if (native)
            ga_put_native_title(line, title);
        return native;
    }
    ga_put(line, native ? "\n" : none);
    return native;
}

void ga_put_event(ga_line_t *line, const char *title, const ga_pystack_t *py, void *const *pcs, size_t n,
                  const char *none)
{
    if (ga_put_event_head(line, title, py, n > 0, none))
        ga_put_pcs(line, pcs, n);
}

void ga_put_event_stack(ga_line_t *line, const char *title, const ga_pystack_t *py, const ga_stack_t *s,
                        const char *none)
{
    if (ga_put_event_head(line, title, py, s != NULL && ga_stack_len(s) > 0, none))
        ga_put_stack(line, s);
}

/* A slot's allocation (freed = 0) or free stacks under title: its Python
 * frames (a rendered traceback, else the recorded frames), then its native
 * stack (title + " (native)" after Python frames); "(not recorded: ...)"
 * when it has neither. */
void ga_put_trace(ga_line_t *line, const ga_arena_t *a, const char *title, char **table, long slot,
                  int freed)
{
    const char *trace = table != NULL ? table[slot] : NULL;
    const ga_stack_t *native = ga_stacks_of(a, slot, freed);
    const ga_pystack_t *py = ga_pystacks_of(a, slot, freed);
    if (trace == NULL && (py != NULL || native != NULL)) {
        ga_put_event_stack(line, title, py, native, "\n");
        return;
    }
    ga_put(line, title);
    if (trace == NULL) {
        ga_put(line, " (not recorded: ");
        ga_put_wrapped(line, a->untraced_hint != NULL ? a->untraced_hint
                       : "Arena(tracebacks=True) or guardalloc.enable_tracebacks()", strlen(title) + 16);
        ga_put(line, ")\n");
        return;
    }
    ga_put(line, "\n");
    ga_put(line, trace);
    if (native != NULL) {
        ga_put_native_title(line, title);
        ga_put_stack(line, native);
    }
}

static void ga_put_neighbour(ga_line_t *line, const ga_arena_t *a, long i, int state)
{
    if (i < 0 || i >= (long)a->nslots) {
        ga_put(line, "the arena's edge");
        return;
    }
    ga_put(line, "slot ");
    ga_put_dec(line, (unsigned long long)i);
    ga_put(line, " (");
    ga_put(line, ga_state_names[state & 3]);
    ga_put(line, ")");
}

void ga_format_report(ga_line_t *line, int sig, int si_code, const ga_arena_t *a,
                      const char *addr, const char *access, const ga_fault_t *f,
                      int continuing, const ga_access_t *stack)
{
    size_t guard_pages = a->guard_size / ga_page_size();
    const char *kind = sig == SIGBUS && !f->guarded ? "bus-error" : ga_kind_names[f->kind];

    ga_put(line, "==");
    ga_put_dec(line, (unsigned long long)getpid());
    ga_put(line, "== guardalloc: ");
    ga_put(line, kind);
    ga_put(line, " ");
    ga_put(line, access);
    ga_put(line, " at ");
    ga_put_ptr(line, addr);
    ga_put(line, "\n");
    ga_put_test(line);

    if (f->slot >= 0) {
        const ga_slot_t *s = &a->slots[f->slot];
        const char *start = ga_slot_start(a, (size_t)f->slot) + s->offset;
        const char *end = start + s->nbytes;
        const char *freed = f->kind == GA_KIND_UAF ? "freed " : "";
        ga_put(line, "  ");
        if (addr >= end) {
            ga_put_dec(line, (unsigned long long)(addr - end));
            ga_put(line, " bytes past the end of a ");
        } else if (addr < start) {
            ga_put_dec(line, (unsigned long long)(start - addr));
            ga_put(line, " bytes before the start of a ");
        } else {
            ga_put_dec(line, (unsigned long long)(addr - start));
            ga_put(line, " bytes inside a ");
        }
        ga_put(line, freed);
        ga_put_dec(line, s->nbytes);
        ga_put(line, "-byte buffer [");
        ga_put_ptr(line, start);
        ga_put(line, ", ");
        ga_put_ptr(line, end);
        ga_put(line, ")\n");
    } else if (f->in_guard) {
        ga_put(line, "  guard page between ");
        ga_put_neighbour(line, a, f->left, f->left_state);
        ga_put(line, " and ");
        ga_put_neighbour(line, a, f->right, f->right_state);
        ga_put(line, ": no live buffer next to it\n");
    } else {
        ga_put(line, "  inside the data of ");
        ga_put_neighbour(line, a, f->left, f->left_state);
        ga_put(line, ", which holds no live buffer\n");
    }
    if (sig == SIGBUS && !f->guarded)
        ga_put(line, "  SIGBUS: the backing file no longer covers this page (truncated?)\n");

    ga_put(line, "  arena ");
    ga_put_ptr(line, a->base);
    if (f->slot >= 0) {
        ga_put(line, ", slot ");
        ga_put_dec(line, (unsigned long long)f->slot);
        ga_put(line, " of ");
    } else {
        ga_put(line, ", ");
    }
    ga_put_dec(line, a->nslots);
    ga_put(line, f->slot >= 0 ? " (slot " : " slots (slot ");
    ga_put_dec(line, a->slot_size);
    ga_put(line, " B, ");
    ga_put_dec(line, guard_pages);
    ga_put(line, guard_pages == 1 ? " guard page)\n" : " guard pages)\n");

    ga_put(line, "  signal ");
    ga_put(line, sig == SIGBUS ? "SIGBUS" : "SIGSEGV");
    /* A fault that a handler installed later (faulthandler) passed on by
     * raise() is the same fault: its si_code is plumbing, not news (the JSON
     * report keeps it, "passed-on"). */
    if (sig == SIGSEGV && (si_code == SEGV_MAPERR || si_code == SEGV_ACCERR))
        ga_put(line, si_code == SEGV_MAPERR ? " (SEGV_MAPERR: guard page)" : " (SEGV_ACCERR: PROT_NONE page)");
    else if (sig == SIGBUS && si_code == BUS_ADRERR)
        ga_put(line, " (BUS_ADRERR)");
    ga_put(line, "\n");
    {
        /* "  WRITE of size 4 by thread 1234 (name):" */
        ga_line_t title;
        char text[160];
        ga_line_init_small(&title, -1, 0);
        ga_put(&title, "  ");
        ga_put(&title, access);
        ga_put_access_size(&title, stack);
        ga_put(&title, " by ");
        ga_put_thread(&title);
        ga_put(&title, ":");
        ga_line_copy(&title, text, sizeof(text));
        ga_put_event(line, text, &stack->py, stack->pc, stack->n, " (no stack: the signal context holds no PC)\n");
    }

    if (f->slot >= 0) {
        ga_put_trace(line, a, "  allocated at:", a->alloc_trace, f->slot, 0);
        if (f->kind == GA_KIND_UAF)
            ga_put_trace(line, a, "  freed at:", a->free_trace, f->slot, 1);
    }
    if (continuing) {
        ga_put(line, "  on_fault=\"continue\": guard lifted, slot(s) ");
        if (f->left >= 0 && f->left < (long)a->nslots)
            ga_put_dec(line, (unsigned long long)f->left);
        if (f->in_guard && f->left >= 0 && f->right < (long)a->nslots)
            ga_put(line, " and ");
        if (f->in_guard && f->right < (long)a->nslots)
            ga_put_dec(line, (unsigned long long)f->right);
        ga_put(line, " retired; the program goes on\n");
    }
    ga_put_summary_py(line, kind, stack->pc, stack->n, &stack->py);
}
