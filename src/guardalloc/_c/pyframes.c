/*
 * Python frames in reports (see pyframes.h): the registered walker, and the
 * text and JSON of a Python stack. Async-signal-safe: the walker's
 * functions take no lock and read through ga_safe_read where it matters.
 */
#include "pyframes.h"
#include "report_internal.h"

static const ga_pywalker_t *volatile ga_walker;

void ga_pyframes_register(const ga_pywalker_t *w)
{
    const ga_pywalker_t *none = NULL;
    __atomic_compare_exchange_n(&ga_walker, &none, w, 0, __ATOMIC_RELEASE, __ATOMIC_RELAXED);
}

const ga_pywalker_t *ga_pyframes_walker(void)
{
    return __atomic_load_n(&ga_walker, __ATOMIC_ACQUIRE);
}

void ga_pystack_capture(ga_pystack_t *s, int checked)
{
    const ga_pywalker_t *w = ga_pyframes_walker();
    s->n = w != NULL ? (uint32_t)w->capture(s->f, GA_PYSTACK_DEPTH, checked) : 0;
}

int ga_put_pyframe_summary(ga_line_t *line, const ga_pyframe_t *f)
{
    const ga_pywalker_t *w = ga_pyframes_walker();
    ga_pyframe_info_t info;
    if (w == NULL || w->describe(f, &info) != 0)
        return -1;
    ga_put(line, " ");
    ga_put(line, info.function[0] ? info.function : "??");
    ga_put(line, " ");
    ga_put(line, info.file[0] ? info.file : "??");
    ga_put(line, ":");
    ga_put_dec(line, (unsigned long long)(info.line > 0 ? info.line : 0));
    return 0;
}

/* One frame: "in FUNCTION FILE:LINE", " (called from C)" after an entry
 * frame; a placeholder when its code object is gone. */
static void ga_put_pyframe(ga_line_t *line, const ga_pyframe_t *f)
{
    ga_put(line, "in");
    if (ga_put_pyframe_summary(line, f) != 0) {
        ga_put(line, " ?? (code object ");
        ga_put_ptr(line, f->code);
        ga_put(line, " freed)");
    }
    if (f->flags & GA_PYFRAME_ENTRY)
        ga_put(line, " (called from C)");
    if (f->flags & GA_PYFRAME_LAUNCHER)
        ga_put(line, " (launcher below)");
}

void ga_put_pystack(ga_line_t *line, const ga_pystack_t *s)
{
    uint32_t i;
    for (i = 0; s != NULL && i < s->n && i < GA_PYSTACK_DEPTH; i++) {
        ga_put(line, "    #");
        ga_put_dec(line, i);
        ga_put(line, " ");
        ga_put_pyframe(line, &s->f[i]);
        ga_put(line, "\n");
    }
}

void ga_json_trace(ga_line_t *line, const char *rendered, const ga_pystack_t *s)
{
    if (rendered != NULL || s == NULL || s->n == 0) {
        ga_json_value(line, rendered);
        return;
    }
    ga_json_string_open(line);
    ga_put_pystack(line, s);
    ga_json_string_close(line);
}

void ga_json_pystack(ga_line_t *line, const ga_pystack_t *s)
{
    const ga_pywalker_t *w = ga_pyframes_walker();
    uint32_t i;
    if (s == NULL || s->n == 0) {
        ga_put(line, "null");
        return;
    }
    ga_put(line, "[");
    for (i = 0; i < s->n && i < GA_PYSTACK_DEPTH; i++) {
        ga_pyframe_info_t info;
        int known = w != NULL && w->describe(&s->f[i], &info) == 0;
        ga_put(line, i ? ",{\"function\":" : "{\"function\":");
        ga_json_value(line, known ? info.function : NULL);
        ga_json_str(line, "file", known ? info.file : NULL);
        ga_json_key(line, "line");
        if (known && info.line > 0)
            ga_put_dec(line, (unsigned long long)info.line);
        else
            ga_put(line, "null");
        ga_json_key(line, "entry");
        ga_put(line, s->f[i].flags & GA_PYFRAME_ENTRY ? "true" : "false");
        ga_json_key(line, "launcher_below");
        ga_put(line, s->f[i].flags & GA_PYFRAME_LAUNCHER ? "true" : "false");
        ga_put(line, "}");
    }
    ga_put(line, "]");
}

void ga_json_python_stacks(ga_line_t *line, const ga_pystack_t *allocated, const ga_pystack_t *freed,
                           const ga_pystack_t *this_free)
{
    ga_json_key(line, "allocated_python");
    ga_json_pystack(line, allocated);
    ga_json_key(line, "freed_python");
    ga_json_pystack(line, freed);
    ga_json_key(line, "this_free_python");
    ga_json_pystack(line, this_free);
}
