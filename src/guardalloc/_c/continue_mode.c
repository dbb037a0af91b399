/*
 * Continue mode (on_fault="continue"): lift the guard that was hit, retire
 * the slots around it, and report the first fault of each slot only.
 * Async-signal-safe: atomics on the slot descriptors and guards.c's
 * ga_guard_range().
 */
#include "continue_mode.h"
#include "guards.h"

static void ga_retire(ga_arena_t *a, long i, uint8_t extra_flags)
{
    ga_slot_t *s;
    uint8_t state;
    if (i < 0 || i >= (long)a->nslots)
        return;
    s = &a->slots[i];
    __atomic_fetch_or(&s->flags, (uint8_t)(GA_FLAG_RETIRE | extra_flags), __ATOMIC_RELAXED);
    /* A live slot becomes RETIRED when it is freed (GA_FLAG_RETIRE); a free
     * or quarantined one right now (the free stack and the quarantine ring
     * skip it). */
    state = __atomic_load_n(&s->state, __ATOMIC_RELAXED);
    if (state == GA_SLOT_FREE || state == GA_SLOT_QUARANTINED)
        __atomic_compare_exchange_n(&s->state, &state, (uint8_t)GA_SLOT_RETIRED, 0,
                                    __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}

int ga_lift_and_retire(ga_arena_t *a, const ga_fault_t *f)
{
    if (ga_guard_range(f->guard_start, f->guard_len, a->backend, 0) != 0)
        return -1;
    if (f->in_guard) {
        ga_retire(a, f->left, GA_FLAG_GUARD_AFTER_LIFTED);
        ga_retire(a, f->right, GA_FLAG_GUARD_BEFORE_LIFTED);
    } else {
        __atomic_fetch_and(&a->slots[f->left].flags, (uint8_t)~GA_FLAG_DATA_GUARDED,
                           __ATOMIC_RELAXED);
        ga_retire(a, f->left, 0);
    }
    __atomic_fetch_add(&a->faults_continued, 1, __ATOMIC_RELAXED);
    return 0;
}

/* Remember that a report blamed these slots (continue mode reports once per
 * slot): the buffer's slot, or for a wild access the slots around it. */
void ga_mark_reported(ga_arena_t *a, const ga_fault_t *f)
{
    long around[2] = {f->left, f->right};
    int i;
    if (f->slot >= 0) {
        __atomic_fetch_or(&a->slots[f->slot].flags, (uint8_t)GA_FLAG_FAULTED, __ATOMIC_RELAXED);
        return;
    }
    for (i = 0; i < 2; i++)
        if (around[i] >= 0 && around[i] < (long)a->nslots)
            __atomic_fetch_or(&a->slots[around[i]].flags, (uint8_t)GA_FLAG_FAULTED, __ATOMIC_RELAXED);
}

int ga_fault_reported_before(const ga_arena_t *a, const ga_fault_t *f)
{
    if (f->slot >= 0)
        return (a->slots[f->slot].flags & GA_FLAG_FAULTED) != 0;
    return (f->left < 0 || (a->slots[f->left].flags & GA_FLAG_FAULTED))
        && (f->right >= (long)a->nslots || (a->slots[f->right].flags & GA_FLAG_FAULTED));
}
