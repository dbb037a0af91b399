/*
 * Reports of a free (the native heap, the PyMem hooks): a double or invalid
 * free, or slack found damaged; and the native heap's others: a free by the
 * wrong allocation family, bytes in front of a block found damaged, a free
 * of memory no allocator made. The text on the text descriptor, then the
 * same as JSON. Async-signal-safe, except the bad-free's (dladdr).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "classify.h"
#include "report_context.h"
#include "report_free.h"
#include "report_internal.h"

enum { GA_FREE_DOUBLE, GA_FREE_INVALID, GA_FREE_CORRUPT };
static const char *const ga_free_kinds[] = {"double-free", "invalid-free", "heap-buffer-overflow"};

/* "==pid== guardalloc: heap corruption: N slack byte(s) ... (found when it was freed)" */
static void ga_put_corruption(ga_line_t *line, const void *ptr, const ga_damage_t *damage)
{
    ga_put(line, "==");
    ga_put_dec(line, (unsigned long long)getpid());
    ga_put(line, "== guardalloc: heap corruption: ");
    ga_put_dec(line, damage->damaged);
    ga_put(line, " slack byte(s) after the block at ");
    ga_put_ptr(line, ptr);
    ga_put(line, " were overwritten, the first at offset ");
    ga_put_dec(line, damage->first_offset);
    ga_put(line, " (found when it was freed)\n");
}

/* title, then the Python frames py (may be NULL) and the native stack's
 * frames (report_text.c's ga_put_event), or " (no stack recorded)". */
static void ga_put_titled_stack(ga_line_t *line, const char *title, const ga_pystack_t *py, const ga_stack_t *s)
{
    ga_put_event_stack(line, title, py, s, " (no stack recorded)\n");
}

/* The Python frames of the free being reported: the calling thread's. */
static const ga_pystack_t *ga_this_free_py(ga_pystack_t *out)
{
    ga_pystack_capture(out, 1);
    return out;
}

/* The Python frames recorded at the free that freed the slot before (as
 * ga_freed_stack), this free's for damage found now (now), or NULL. */
static const ga_pystack_t *ga_freed_py(int error, const ga_arena_t *a, long slot, const ga_pystack_t *now)
{
    if (error == GA_FREE_CORRUPT)
        return now;
    if (a == NULL || slot < 0 || (error != GA_FREE_DOUBLE && a->slots[slot].state == GA_SLOT_LIVE))
        return NULL;
    return ga_pystacks_of(a, slot, 1);
}

/* "  slot N (state) of arena A: its N-byte buffer [start, end)", where ptr
 * lies in it, no newline (a may be NULL: outside every arena). */
static void ga_put_slot_of(ga_line_t *line, const void *ptr, const ga_arena_t *a, long slot)
{
    if (a != NULL && slot >= 0) {
        const ga_slot_t *s = &a->slots[slot];
        const char *start = ga_slot_start(a, (size_t)slot) + s->offset;
        ga_put(line, "  slot ");
        ga_put_dec(line, (unsigned long long)slot);
        ga_put(line, " (");
        ga_put(line, ga_state_names[s->state & 3]);
        ga_put(line, ") of arena ");
        ga_put_ptr(line, a->base);
        ga_put(line, ": ");
        ga_put(line, s->state == GA_SLOT_LIVE ? "its " : "its last ");
        ga_put_dec(line, s->nbytes);
        ga_put(line, "-byte buffer [");
        ga_put_ptr(line, start);
        ga_put(line, ", ");
        ga_put_ptr(line, start + s->nbytes);
        ga_put(line, ")");
        if ((const char *)ptr != start) {
            ga_put(line, ", the pointer ");
            ga_put_dec(line, (unsigned long long)((const char *)ptr > start
                                                  ? (const char *)ptr - start : start - (const char *)ptr));
            ga_put(line, (const char *)ptr > start ? " bytes inside it" : " bytes before it");
        } else if (s->state != GA_SLOT_LIVE) {
            ga_put(line, " was freed already");
        }
    } else {
        ga_put(line, "  inside the guarded heap but in no slot (a guard page or unused space)");
    }
}

/* "==pid== guardalloc: <what> of <ptr>", the slot and buffer it falls in
 * (a may be NULL: outside every arena), the thread. */
static void ga_put_slot_error(ga_line_t *line, const char *what, const void *ptr,
                              const ga_arena_t *a, long slot)
{
    ga_put(line, "==");
    ga_put_dec(line, (unsigned long long)getpid());
    ga_put(line, "== guardalloc: ");
    ga_put(line, what);
    ga_put(line, " of ");
    ga_put_ptr(line, ptr);
    ga_put(line, "\n");
    ga_put_test(line);
    ga_put_slot_of(line, ptr, a, slot);
    ga_put(line, "\n  in ");
    ga_put_thread(line);
    ga_put(line, "\n");
}

/* The stack of the free that freed the slot before (a double free, or an
 * invalid free into a freed slot, unpacked into buf), this free's for damage
 * found now, or NULL. */
static const ga_stack_t *ga_freed_stack(int error, const ga_arena_t *a, long slot,
                                        const ga_stack_t *this_free, ga_stack_t *buf)
{
    if (error == GA_FREE_CORRUPT)
        return this_free;
    if (a == NULL || slot < 0 || (error != GA_FREE_DOUBLE && a->slots[slot].state == GA_SLOT_LIVE))
        return NULL;
    return ga_stacks_unpack(a, slot, 1, buf);
}

/* The text report of a free, into line. */
static void ga_format_free_report(ga_line_t *line, int error, const void *ptr, const ga_arena_t *a,
                                  long slot, const ga_damage_t *damage, const ga_stack_t *this_free)
{
    ga_pystack_t now;
    const ga_pystack_t *py = ga_this_free_py(&now);
    if (error == GA_FREE_CORRUPT) {
        ga_put_corruption(line, ptr, damage);
        ga_put_test(line);
        if (a != NULL && slot >= 0) {
            ga_put(line, "  slot ");
            ga_put_dec(line, (unsigned long long)slot);
            ga_put(line, " of arena ");
            ga_put_ptr(line, a->base);
            ga_put(line, "\n");
        }
        ga_put(line, "  in ");
        ga_put_thread(line);
        ga_put(line, "\n");
        ga_put_titled_stack(line, "  allocated at:", ga_pystacks_of(a, slot, 0),
                            a != NULL ? ga_stacks_of(a, slot, 0) : NULL);
        ga_put_titled_stack(line, "  freed at:", py, this_free);
    } else {
        ga_put_slot_error(line, ga_free_kinds[error], ptr, a, slot);
        ga_put_titled_stack(line, "  this free:", py, this_free);
        if (a != NULL && slot >= 0) {
            ga_stack_t buf;
            const ga_stack_t *freed = ga_freed_stack(error, a, slot, this_free, &buf);
            const ga_pystack_t *freed_py = ga_freed_py(error, a, slot, py);
            ga_put_titled_stack(line, "  allocated at:", ga_pystacks_of(a, slot, 0), ga_stacks_of(a, slot, 0));
            if (error == GA_FREE_DOUBLE || freed != NULL || freed_py != NULL)
                ga_put_titled_stack(line, error == GA_FREE_DOUBLE ? "  first freed at:" : "  last freed at:",
                                    freed_py, freed);
        }
    }
    ga_put_summary_py(line, ga_free_kinds[error], this_free != NULL ? this_free->pc : NULL,
                      this_free != NULL ? ga_stack_len(this_free) : 0, py);
}

void ga_report_free(int code, const void *ptr, const ga_arena_t *a, long slot,
                    const ga_damage_t *damage, const ga_stack_t *this_free, int continuing)
{
    ga_line_t line;
    const char *addr = (const char *)ptr;
    int error = code == GA_ERR_CORRUPT ? GA_FREE_CORRUPT
                : code == GA_ERR_DOUBLE ? GA_FREE_DOUBLE : GA_FREE_INVALID;
    if (a == NULL)
        slot = -1;
    if (error == GA_FREE_CORRUPT && a != NULL && slot >= 0)   /* blame the first damaged byte */
        addr = ga_slot_start(a, (size_t)slot) + a->slots[slot].offset + damage->first_offset;
    ga_line_init(&line, ga_get_report_fd(), 0);   /* written whole */
    ga_format_free_report(&line, error, ptr, a, slot, damage, this_free);
    ga_line_done(&line);
    if (ga_json_begin(&line, ga_free_kinds[error], "free", addr) != 0)
        return;
    ga_json_buffer(&line, a, slot, addr);
    if (error == GA_FREE_CORRUPT)
        ga_json_dec(&line, "damaged", damage->damaged);
    ga_json_pids(&line);
    ga_json_key(&line, "signal");
    ga_put(&line, "null");
    ga_json_key(&line, "si_code");
    ga_put(&line, "null");
    ga_json_on_fault_and_test(&line, continuing);
    ga_json_key(&line, "stacks");
    ga_put(&line, "{\"allocated\":null,\"freed\":null");
    ga_json_key(&line, "allocated_native");
    ga_json_stack(&line, a != NULL ? ga_stacks_of(a, slot, 0) : NULL);
    ga_json_key(&line, "freed_native");
    ga_json_stack(&line, ga_freed_stack(error, a, slot, this_free, &(ga_stack_t){.n = 0}));
    ga_json_key(&line, "this_free_native");
    ga_json_stack(&line, this_free);
    {
        ga_pystack_t now;
        const ga_pystack_t *py = ga_this_free_py(&now);
        ga_json_python_stacks(&line, ga_pystacks_of(a, slot, 0), ga_freed_py(error, a, slot, py), py);
    }
    ga_put(&line, "}");
    ga_json_pc(&line, NULL);
    ga_json_time_and_text(&line);
    ga_format_free_report(&line, error, ptr, a, slot, damage, this_free);
    ga_json_end(&line);
}

/* ------------------------------------------------------------------------
 * The heap's other reports at a free: a free by the wrong family, damaged
 * bytes in front of a block, and a free of memory no allocator made. */

/* The report's tail, shared by the three: stacks, faulting_instruction
 * (null), time and the text again, escaped. format writes the text. */
typedef void (*ga_text_fn)(ga_line_t *line, const void *context);

static void ga_json_free_stacks(ga_line_t *line, const char *allocated_trace, const ga_stack_t *allocated,
                                const ga_stack_t *freed, const ga_stack_t *this_free,
                                const ga_pystack_t *allocated_py)
{
    ga_pystack_t now;
    ga_json_key(line, "stacks");
    ga_put(line, "{\"allocated\":");
    ga_json_trace(line, allocated_trace, allocated_py);
    ga_put(line, ",\"freed\":null");
    ga_json_key(line, "allocated_native");
    ga_json_stack(line, allocated);
    ga_json_key(line, "freed_native");
    ga_json_stack(line, freed);
    ga_json_key(line, "this_free_native");
    ga_json_stack(line, this_free);
    ga_json_python_stacks(line, allocated_py, freed == this_free && freed != NULL ? ga_this_free_py(&now) : NULL,
                          ga_this_free_py(&now));
    ga_put(line, "}");
}

static void ga_json_no_signal(ga_line_t *line, int continuing)
{
    ga_json_pids(line);
    ga_json_key(line, "signal");
    ga_put(line, "null");
    ga_json_key(line, "si_code");
    ga_put(line, "null");
    ga_json_on_fault_and_test(line, continuing);
}

/* -- alloc-dealloc-mismatch ------------------------------------------------ */

typedef struct {
    const void *ptr;
    const ga_arena_t *a;
    long slot;
    const char *allocated_by, *freed_by;
    const ga_stack_t *this_free;
} ga_mismatch_t;

static void ga_format_mismatch(ga_line_t *line, const ga_mismatch_t *m)
{
    char what[96];
    ga_line_t title;
    ga_line_init_small(&title, -1, 0);
    /* "alloc-dealloc-mismatch (operator new [] vs free)", ASan's words. */
    ga_put(&title, "alloc-dealloc-mismatch (");
    ga_put(&title, m->allocated_by);
    ga_put(&title, " vs ");
    ga_put(&title, m->freed_by);
    ga_put(&title, ")");
    ga_line_copy(&title, what, sizeof(what));
    ga_put_slot_error(line, what, m->ptr, m->a, m->slot);
    ga_put(line, "  allocated by ");
    ga_put(line, m->allocated_by);
    ga_put(line, ", freed by ");
    ga_put(line, m->freed_by);
    ga_put(line, "\n");
    ga_pystack_t now;
    ga_put_titled_stack(line, "  freed at:", ga_this_free_py(&now), m->this_free);
    ga_put_titled_stack(line, "  allocated at:", ga_pystacks_of(m->a, m->slot, 0), ga_stacks_of(m->a, m->slot, 0));
    ga_put_summary(line, "alloc-dealloc-mismatch", m->this_free != NULL ? m->this_free->pc : NULL,
                   m->this_free != NULL ? ga_stack_len(m->this_free) : 0);
}

void ga_report_mismatch(const void *ptr, const ga_arena_t *a, long slot, const char *allocated_by,
                        const char *freed_by, const ga_stack_t *this_free, int continuing)
{
    ga_mismatch_t m = {ptr, a, slot, allocated_by, freed_by, this_free};
    ga_line_t line;
    ga_line_init(&line, ga_get_report_fd(), 0);   /* written whole */
    ga_format_mismatch(&line, &m);
    ga_line_done(&line);
    if (ga_json_begin(&line, "alloc-dealloc-mismatch", "free", ptr) != 0)
        return;
    ga_json_buffer(&line, a, slot, ptr);
    ga_json_str(&line, "allocated_by", allocated_by);
    ga_json_str(&line, "freed_by", freed_by);
    ga_json_no_signal(&line, continuing);
    ga_json_free_stacks(&line, NULL, ga_stacks_of(a, slot, 0), NULL, this_free, ga_pystacks_of(a, slot, 0));
    ga_json_pc(&line, NULL);
    ga_json_time_and_text(&line);
    line.json = 1;
    ga_format_mismatch(&line, &m);
    line.json = 0;
    ga_json_end(&line);
}

/* -- heap-buffer-underflow, found at free -------------------------------- */

typedef struct {
    const void *ptr;
    const ga_arena_t *a;
    long slot;
    const ga_damage_t *damage;
    const ga_stack_t *this_free;
} ga_underflow_t;

static void ga_format_underflow(ga_line_t *line, const ga_underflow_t *u)
{
    const char *start = (const char *)u->ptr;
    ga_put(line, "==");
    ga_put_dec(line, (unsigned long long)getpid());
    ga_put(line, "== guardalloc: heap-buffer-underflow at ");
    ga_put_ptr(line, start - u->damage->first_offset);
    ga_put(line, " (found when the block was freed)\n  ");
    ga_put_dec(line, u->damage->first_offset);
    ga_put(line, " byte(s) before the start of a ");
    ga_put_dec(line, u->damage->nbytes);
    ga_put(line, "-byte buffer [");
    ga_put_ptr(line, start);
    ga_put(line, ", ");
    ga_put_ptr(line, start + u->damage->nbytes);
    ga_put(line, "): ");
    ga_put_dec(line, u->damage->damaged);
    ga_put(line, " byte(s) of the pattern in front of it changed\n");
    ga_put_test(line);
    ga_put(line, "  slot ");
    ga_put_dec(line, (unsigned long long)u->slot);
    ga_put(line, " of arena ");
    ga_put_ptr(line, u->a->base);
    ga_put(line, "\n  in ");
    ga_put_thread(line);
    ga_put(line, "\n");
    ga_pystack_t now;
    ga_put_titled_stack(line, "  allocated at:", ga_pystacks_of(u->a, u->slot, 0), ga_stacks_of(u->a, u->slot, 0));
    ga_put_titled_stack(line, "  freed at:", ga_this_free_py(&now), u->this_free);
    ga_put_summary(line, "heap-buffer-underflow", u->this_free != NULL ? u->this_free->pc : NULL,
                   u->this_free != NULL ? ga_stack_len(u->this_free) : 0);
}

void ga_report_underflow(const void *ptr, const ga_arena_t *a, long slot, const ga_damage_t *damage,
                         const ga_stack_t *this_free, int continuing)
{
    ga_underflow_t u = {ptr, a, slot, damage, this_free};
    ga_line_t line;
    const char *addr = (const char *)ptr - damage->first_offset;
    ga_line_init(&line, ga_get_report_fd(), 0);   /* written whole */
    ga_format_underflow(&line, &u);
    ga_line_done(&line);
    if (ga_json_begin(&line, "heap-buffer-underflow", "free", addr) != 0)
        return;
    ga_json_buffer(&line, a, slot, addr);
    ga_json_dec(&line, "damaged", damage->damaged);
    ga_json_no_signal(&line, continuing);
    ga_json_free_stacks(&line, NULL, ga_stacks_of(a, slot, 0), this_free, this_free, ga_pystacks_of(a, slot, 0));
    ga_json_pc(&line, NULL);
    ga_json_time_and_text(&line);
    line.json = 1;
    ga_format_underflow(&line, &u);
    line.json = 0;
    ga_json_end(&line);
}

/* -- bad-free: memory no allocator made ------------------------------------ */

static const char *const ga_memory_kinds[] = {
    "heap", "stack", "global", "read-only", "code", "mapping", "unmapped", "guardalloc",
};

typedef struct {
    const void *ptr;
    const ga_where_t *where;
    const char *freed_by;
    const ga_stack_t *this_free;
} ga_bad_free_t;

/* The object holding p as dladdr names it (the main program by its path),
 * and the symbol at or before p when it has a dynamic one. */
static void ga_put_module(ga_line_t *line, const ga_where_t *w, const void *p)
{
    Dl_info info;
    int known = dladdr(p, &info) != 0;
    ga_put(line, known && info.dli_fname != NULL && info.dli_fname[0] ? info.dli_fname
                 : w->module != NULL && w->module[0] ? w->module : "the main program");
    if (known && info.dli_sname != NULL && info.dli_saddr != NULL) {
        ga_put(line, " (");
        ga_put(line, info.dli_sname);
        ga_put(line, "+");
        ga_put_ptr(line, (const void *)((const char *)p - (const char *)info.dli_saddr));
        ga_put(line, ")");
    }
}

static void ga_put_range(ga_line_t *line, const ga_where_t *w)
{
    ga_put(line, "[");
    ga_put_ptr(line, w->start);
    ga_put(line, ", ");
    ga_put_ptr(line, w->end);
    ga_put(line, ")");
}

/* " is a live 64-byte block of OWNER, not malloc()'s: ..." (or inside one,
 * or in a freed slot, or a guard page) and its slot's line: a pointer into
 * another guardalloc front end's arena. */
static void ga_put_arena_block(ga_line_t *line, const void *ptr, const ga_arena_t *a)
{
    long slot = ga_slot_of(a, ptr);
    const char *owner = a->owner != NULL ? a->owner : "a guardalloc arena";
    if (slot < 0) {
        ga_put(line, " is in a guard page of an arena of ");
        ga_put(line, owner);
        return;
    }
    if (a->slots[slot].state == GA_SLOT_LIVE) {
        const char *start = ga_slot_start(a, (size_t)slot) + a->slots[slot].offset;
        ga_put(line, (const char *)ptr == start ? " is a live " : " is inside a live ");
        ga_put_dec(line, a->slots[slot].nbytes);
        ga_put(line, "-byte block of ");
        ga_put(line, owner);
        ga_put(line, ", not malloc()'s: free it through its owner\n");
    } else {
        ga_put(line, " is in a freed slot of ");
        ga_put(line, owner);
        ga_put(line, ", not malloc()'s: its owner freed the block already\n");
    }
    ga_put_slot_of(line, ptr, a, slot);
}

static void ga_format_bad_free(ga_line_t *line, const ga_bad_free_t *b)
{
    const ga_where_t *w = b->where;
    long tid = (long)syscall(SYS_gettid);
    ga_put(line, "==");
    ga_put_dec(line, (unsigned long long)getpid());
    ga_put(line, "== guardalloc: bad-free: attempting free on address which was not malloc()-ed: ");
    ga_put_ptr(line, b->ptr);
    ga_put(line, "\n");
    ga_put_test(line);
    ga_put(line, "  ");
    ga_put_ptr(line, b->ptr);
    switch (w->kind) {
    case GA_MEM_STACK:
        if (w->tid > 0) {
            ga_put(line, " is on the stack of thread ");
            ga_put_dec(line, (unsigned long long)w->tid);
            ga_put(line, w->main_thread ? " (the main thread" : " (");
            ga_put(line, w->tid == tid ? (w->main_thread ? ", this thread)" : "this thread)") : ")");
        } else {
            ga_put(line, " is on the stack of another thread (a mapping with a guard page below it)");
        }
        ga_put(line, " ");
        ga_put_range(line, w);
        break;
    case GA_MEM_GLOBAL:
    case GA_MEM_READONLY:
    case GA_MEM_CODE:
        ga_put(line, w->kind == GA_MEM_GLOBAL ? " is in a global or static variable: the writable segment "
                     : w->kind == GA_MEM_READONLY
                     ? " is in read-only data (a string literal or a constant): the segment "
                     : " is in code: the executable segment ");
        ga_put_range(line, w);
        ga_put(line, " of ");
        ga_put_module(line, w, b->ptr);
        break;
    case GA_MEM_ARENA:
        ga_put_arena_block(line, b->ptr, w->arena);
        break;
    case GA_MEM_MAPPING:
        ga_put(line, " is inside a mapping that no allocator made: ");
        ga_put_range(line, w);
        ga_put(line, w->module != NULL && w->module[0] ? " " : " (anonymous)");
        if (w->module != NULL)
            ga_put(line, w->module);
        break;
    default:
        ga_put(line, " is not mapped");
    }
    ga_put(line, "\n  in ");
    ga_put_thread(line);
    ga_put(line, "\n");
    {
        /* "  freed by free at:": one title, so that "... at (native):" repeats it whole */
        ga_pystack_t now;
        ga_line_t scratch;
        char title[96];
        ga_line_init_small(&scratch, -1, 0);
        ga_put(&scratch, "  freed by ");
        ga_put(&scratch, b->freed_by);
        ga_put(&scratch, " at:");
        ga_line_copy(&scratch, title, sizeof(title));
        ga_put_titled_stack(line, title, ga_this_free_py(&now), b->this_free);
    }
    if (w->kind == GA_MEM_ARENA && ga_slot_of(w->arena, b->ptr) >= 0) {
        long slot = ga_slot_of(w->arena, b->ptr);   /* the allocation's stacks, when recorded */
        ga_put_trace(line, w->arena, "  allocated at:", w->arena->alloc_trace, slot, 0);
        if (w->arena->slots[slot].state != GA_SLOT_LIVE)
            ga_put_trace(line, w->arena, "  last freed at:", w->arena->free_trace, slot, 1);
    }
    ga_put_summary(line, "bad-free", b->this_free != NULL ? b->this_free->pc : NULL,
                   b->this_free != NULL ? ga_stack_len(b->this_free) : 0);
}

void ga_report_bad_free(const void *ptr, const ga_where_t *where, const char *freed_by,
                        const ga_stack_t *this_free, int continuing)
{
    ga_bad_free_t b = {ptr, where, freed_by, this_free};
    ga_line_t line;
    int kind = where->kind >= 0 && where->kind <= GA_MEM_ARENA ? where->kind : GA_MEM_UNMAPPED;
    const ga_arena_t *a = kind == GA_MEM_ARENA ? where->arena : NULL;
    long slot = a != NULL ? ga_slot_of(a, ptr) : -1;
    ga_line_init(&line, ga_get_report_fd(), 0);   /* written whole */
    ga_format_bad_free(&line, &b);
    ga_line_done(&line);
    if (ga_json_begin(&line, "bad-free", "free", ptr) != 0)
        return;
    ga_json_buffer(&line, a, slot, ptr);
    ga_json_str(&line, "freed_by", freed_by);
    ga_json_key(&line, "memory");
    ga_put(&line, "{\"kind\":");
    ga_json_value(&line, ga_memory_kinds[kind]);
    ga_json_str(&line, "module", where->module);
    ga_json_key(&line, "start");
    if (kind != GA_MEM_UNMAPPED) {
        ga_put(&line, "\"");
        ga_put_ptr(&line, where->start);
        ga_put(&line, "\",\"end\":\"");
        ga_put_ptr(&line, where->end);
        ga_put(&line, "\"");
    } else {
        ga_put(&line, "null,\"end\":null");
    }
    ga_json_key(&line, "thread");
    if (kind == GA_MEM_STACK && where->tid > 0)
        ga_put_dec(&line, (unsigned long long)where->tid);
    else
        ga_put(&line, "null");
    if (a != NULL)
        ga_json_str(&line, "slot_state", slot >= 0 ? ga_state_names[a->slots[slot].state & 3] : NULL);
    ga_put(&line, "}");
    ga_json_no_signal(&line, continuing);
    ga_json_free_stacks(&line, a != NULL && slot >= 0 && a->alloc_trace != NULL ? a->alloc_trace[slot] : NULL,
                        a != NULL ? ga_stacks_of(a, slot, 0) : NULL, NULL, this_free,
                        a != NULL ? ga_pystacks_of(a, slot, 0) : NULL);
    ga_json_pc(&line, NULL);
    ga_json_time_and_text(&line);
    line.json = 1;
    ga_format_bad_free(&line, &b);
    line.json = 0;
    ga_json_end(&line);
}
