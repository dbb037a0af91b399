/*
 * Fault classification: what a fault address inside an arena means, worked
 * out from the arena layout (layout.h) and the slots' states at the time of
 * the fault. Async-signal-safe: reads the descriptor only.
 */
#include <string.h>
#include "classify.h"

const char *const ga_kind_names[] = {
    "heap-buffer-overflow", "heap-buffer-underflow", "use-after-free", "wild-access",
};

const char *const ga_state_names[] = {"free", "live", "quarantined", "retired"};

static int ga_slot_state(const ga_arena_t *a, long i)
{
    return a->slots[i].state & 3;
}

/* Where random placement put a live slot's buffer. */
static int ga_ends_at_guard(const ga_arena_t *a, long i)
{
    const ga_slot_t *s = &a->slots[i];
    return s->offset + ga_round_up(s->nbytes, a->alignment) == a->slot_size;
}

static int ga_starts_at_guard(const ga_arena_t *a, long i)
{
    return a->slots[i].offset == 0;
}

void ga_classify(const ga_arena_t *a, const char *addr, ga_fault_t *f)
{
    size_t off = (size_t)(addr - a->base), within;
    long n = (long)a->nslots;
    memset(f, 0, sizeof(*f));
    f->slot = -1;
    f->kind = GA_KIND_WILD;
    if (off < a->guard_size) {
        f->in_guard = 1;
        f->left = -1;
        f->right = 0;
        f->guard_start = a->base;
    } else {
        long k = (long)((off - a->guard_size) / a->stride);
        within = (off - a->guard_size) % a->stride;
        if (k >= n) {   /* cannot happen: size ends with the last guard */
            f->left = n - 1;
            f->right = n;
            f->in_guard = 1;
            f->guard_start = a->base + a->size - a->guard_size;
        } else if (within < a->slot_size) {
            const ga_slot_t *s = &a->slots[k];
            f->left = f->right = k;
            f->left_state = f->right_state = ga_slot_state(a, k);
            f->guard_start = ga_slot_start(a, (size_t)k);
            f->guard_len = a->slot_size;
            if (s->flags & GA_FLAG_DATA_GUARDED) {
                f->guarded = 1;
                if (ga_slot_state(a, k) != GA_SLOT_LIVE) {
                    f->kind = GA_KIND_UAF;
                    f->slot = k;
                }
            } else if (ga_slot_state(a, k) == GA_SLOT_LIVE) {
                f->slot = k;   /* SIGBUS: its file page is gone */
            }
            return;
        } else {
            f->in_guard = 1;
            f->left = k;
            f->right = k + 1;
            f->guard_start = ga_slot_start(a, (size_t)k) + a->slot_size;
        }
    }
    f->left_state = f->left >= 0 ? ga_slot_state(a, f->left) : GA_SLOT_FREE;
    f->right_state = f->right < n ? ga_slot_state(a, f->right) : GA_SLOT_FREE;
    /* A guard between left and right. */
    f->guard_len = a->guard_size;
    f->guarded = a->backend != GA_BACKEND_NONE && a->guard_size > 0
        && !(a->closed_from != NULL && addr >= a->closed_from)   /* PROT_NONE tail */
        && !(f->left >= 0 && (a->slots[f->left].flags & GA_FLAG_GUARD_AFTER_LIFTED))
        && !(f->right < n && (a->slots[f->right].flags & GA_FLAG_GUARD_BEFORE_LIFTED));
    {
        int left_live = f->left >= 0 && ga_slot_state(a, f->left) == GA_SLOT_LIVE;
        int right_live = f->right < n && ga_slot_state(a, f->right) == GA_SLOT_LIVE;
        /* The buffer the alignment puts against this guard first; the other
         * live neighbour next (a far overflow or underflow). */
        int blame_left;
        if (a->align == GA_ALIGN_RANDOM)
            blame_left = left_live && (!right_live || ga_ends_at_guard(a, f->left)
                                       || !ga_starts_at_guard(a, f->right));
        else
            blame_left = a->align == GA_ALIGN_RIGHT ? left_live : !right_live && left_live;
        if (blame_left) {
            f->kind = GA_KIND_OVERFLOW;
            f->slot = f->left;
        } else if (right_live) {
            f->kind = GA_KIND_UNDERFLOW;
            f->slot = f->right;
        }
    }
}
