/*
 * Reports of a free (the native heap, the PyMem hooks): a double or invalid
 * free, or slack found damaged. The text on the text descriptor, then the
 * same as JSON. Async-signal-safe.
 */
#define _GNU_SOURCE
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

/* title, then the stack's frames (or " (no stack recorded)"). */
static void ga_put_titled_stack(ga_line_t *line, const char *title, const ga_stack_t *s)
{
    ga_put(line, title);
    ga_put(line, s == NULL || ga_stack_len(s) == 0 ? " (no stack recorded)\n" : "\n");
    ga_put_stack(line, s);
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
    ga_put(line, "\n  in ");
    ga_put_thread(line);
    ga_put(line, "\n");
}

/* The stack of the free that freed the slot before (a double free, or an
 * invalid free into a freed slot), this free's for damage found now, or NULL. */
static const ga_stack_t *ga_freed_stack(int error, const ga_arena_t *a, long slot,
                                        const ga_stack_t *this_free)
{
    if (error == GA_FREE_CORRUPT)
        return this_free;
    if (a == NULL || slot < 0 || (error != GA_FREE_DOUBLE && a->slots[slot].state == GA_SLOT_LIVE))
        return NULL;
    return ga_stacks_of(a, slot, 1);
}

/* The text report of a free, into line. */
static void ga_format_free_report(ga_line_t *line, int error, const void *ptr, const ga_arena_t *a,
                                  long slot, const ga_damage_t *damage, const ga_stack_t *this_free)
{
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
        ga_put_titled_stack(line, "  allocated at:", a != NULL ? ga_stacks_of(a, slot, 0) : NULL);
        ga_put_titled_stack(line, "  freed at:", this_free);
    } else {
        ga_put_slot_error(line, ga_free_kinds[error], ptr, a, slot);
        ga_put_titled_stack(line, "  this free:", this_free);
        if (a != NULL && slot >= 0) {
            const ga_stack_t *freed = ga_freed_stack(error, a, slot, this_free);
            ga_put_titled_stack(line, "  allocated at:", ga_stacks_of(a, slot, 0));
            if (error == GA_FREE_DOUBLE || freed != NULL)
                ga_put_titled_stack(line, error == GA_FREE_DOUBLE ? "  first freed at:" : "  last freed at:",
                                    freed);
        }
    }
    ga_put_summary(line, ga_free_kinds[error], this_free != NULL ? this_free->pc : NULL,
                   this_free != NULL ? ga_stack_len(this_free) : 0);
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
    ga_json_stack(&line, ga_freed_stack(error, a, slot, this_free));
    ga_json_key(&line, "this_free_native");
    ga_json_stack(&line, this_free);
    ga_put(&line, "}");
    ga_json_pc(&line, NULL);
    ga_json_time_and_text(&line);
    ga_format_free_report(&line, error, ptr, a, slot, damage, this_free);
    ga_json_end(&line);
}
