/*
 * The slot core (see core.h).
 *
 * Slots are handed out from three sources, in this order: the free stack
 * (slots freed and reusable, the most recent on top), the never-used slots
 * in address order (a bump index, `fresh`, so that an arena's bookkeeping
 * costs nothing until a slot is used), and, when both are empty, the
 * quarantine ring's oldest slot. A slot claimed by number or retired while
 * it waits on the stack or ahead of `fresh` is skipped when its turn comes.
 */
#include <string.h>
#include "core.h"
#include "guards.h"

void ga_arena_attach(ga_arena_t *a, void *tables)
{
    uint32_t n = a->nslots;
    a->slots = (ga_slot_t *)tables;
    a->free_stack = (uint32_t *)(a->slots + n);
    a->quarantine = a->uaf ? a->free_stack + n : NULL;
    a->alloc_trace = (char **)((char *)tables + ga_tables_size(n, a->uaf));
    a->free_trace = a->alloc_trace + n;
    a->free_top = 0;
    a->fresh = 0;
    a->quarantine_head = a->quarantine_len = 0;
    if (a->random_state == 0)
        a->random_state = ((uint64_t)(uintptr_t)a->base >> 12) * 0x9E3779B97F4A7C15ull | 1;
}

int ga_arena_guard_all(ga_arena_t *a)
{
    int rc = ga_guard_strided(a->base, a->stride, (size_t)a->nslots + 1, a->guard_size,
                              a->backend, a->batched, 1, &a->guard_syscalls);
    if (rc < 0)
        return -1;
    /* What stats() reports: whether the batched path really did the work. */
    a->batched = a->backend == GA_BACKEND_MADVISE && rc == 1 && a->guard_size > 0;
    return 0;
}

/* Guard (or unguard) a slot's data pages for use-after-free. */
static int ga_guard_data(ga_arena_t *a, uint32_t slot, int install)
{
    ga_slot_t *s = &a->slots[slot];
    a->uaf_syscalls++;
    if (ga_guard_range(ga_slot_start(a, slot), a->slot_size, a->backend, install) != 0)
        return -1;
    if (install) {
        s->flags |= GA_FLAG_DATA_GUARDED;
    } else {
        s->flags &= ~GA_FLAG_DATA_GUARDED;
        if (a->backend == GA_BACKEND_MADVISE && !a->file_backed)
            s->flags &= ~GA_FLAG_DIRTY;   /* anonymous pages come back zero-filled */
    }
    return 0;
}

static void ga_push_free(ga_arena_t *a, uint32_t slot)
{
    ga_slot_t *s = &a->slots[slot];
    s->state = GA_SLOT_FREE;
    if (!(s->flags & GA_FLAG_STACKED) && slot < a->fresh) {
        s->flags |= GA_FLAG_STACKED;
        a->free_stack[a->free_top++] = slot;
    }
}

static long ga_take_slot(ga_arena_t *a)
{
    while (a->free_top > 0) {
        uint32_t slot = a->free_stack[--a->free_top];
        a->slots[slot].flags &= ~GA_FLAG_STACKED;
        if (a->slots[slot].state == GA_SLOT_FREE)
            return slot;
    }
    while (a->fresh < a->nslots) {
        uint32_t slot = a->fresh++;
        if (a->slots[slot].state == GA_SLOT_FREE)
            return slot;
    }
    /* No fresh slot: recycle the one that has waited longest. */
    while (a->quarantine_len > 0) {
        uint32_t slot = a->quarantine[a->quarantine_head];
        a->quarantine_head = (a->quarantine_head + 1) % a->nslots;
        a->quarantine_len--;
        if (a->slots[slot].state == GA_SLOT_QUARANTINED)
            return slot;
    }
    return GA_ERR_FULL;
}

static int ga_align_right(ga_arena_t *a)
{
    uint64_t x;
    if (a->align != GA_ALIGN_RANDOM)
        return a->align == GA_ALIGN_RIGHT;
    x = a->random_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    a->random_state = x;
    return (int)(x >> 63);
}

long ga_alloc(ga_arena_t *a, size_t nbytes, int zero, int raw, long want)
{
    long slot;
    ga_slot_t *s;
    size_t padded;
    char *p;
    if (want >= 0) {
        slot = want;
        if (a->slots[slot].state != GA_SLOT_FREE)
            return GA_ERR_NOT_FREE;
    } else {
        slot = ga_take_slot(a);
        if (slot < 0)
            return GA_ERR_FULL;
    }
    s = &a->slots[slot];
    if (s->flags & GA_FLAG_DATA_GUARDED) {
        if (ga_guard_data(a, (uint32_t)slot, 0) != 0) {
            ga_push_free(a, (uint32_t)slot);
            return GA_ERR_SYSCALL;
        }
    }
    padded = ga_round_up(nbytes, a->alignment);
    s->nbytes = (uint32_t)nbytes;
    s->offset = (uint32_t)(ga_align_right(a) ? a->slot_size - padded : 0);
    s->state = GA_SLOT_LIVE;
    p = ga_slot_start(a, (size_t)slot) + s->offset;
    if (zero && (s->flags & GA_FLAG_DIRTY || a->file_backed))
        memset(p, 0, nbytes);
    s->flags |= GA_FLAG_DIRTY;
    if (raw)
        s->flags |= GA_FLAG_RAW;
    else
        s->flags &= ~GA_FLAG_RAW;
    if (padded > nbytes)
        memset(p + nbytes, GA_SLACK_BYTE, padded - nbytes);
    a->allocations++;
    return slot;
}

long ga_live_slot_at(const ga_arena_t *a, const void *p)
{
    long slot = ga_slot_of(a, p);
    if (slot < 0 || a->slots[slot].state != GA_SLOT_LIVE || (const char *)p != ga_block_start(a, slot))
        return -1;
    return slot;
}

int ga_free(ga_arena_t *a, char *address, int raw_only, ga_damage_t *damage)
{
    long slot;
    size_t within, padded, i;
    ga_slot_t *s;
    int result = GA_OK;
    if (address < a->base || address >= a->base + a->size)
        return GA_ERR_FOREIGN;
    slot = ga_slot_of(a, address);
    if (slot < 0)
        return GA_ERR_INVALID;
    s = &a->slots[slot];
    within = (size_t)(address - ga_slot_start(a, (size_t)slot));
    if (s->state != GA_SLOT_LIVE) {
        if (s->flags & GA_FLAG_DIRTY && within == s->offset)
            return GA_ERR_DOUBLE;
        return GA_ERR_INVALID;
    }
    if (within != s->offset)
        return GA_ERR_INVALID;
    if (raw_only && !(s->flags & GA_FLAG_RAW))
        return GA_ERR_OWNED;
    padded = ga_round_up(s->nbytes, a->alignment);
    damage->nbytes = s->nbytes;
    damage->damaged = 0;
    damage->first_offset = 0;
    for (i = s->nbytes; i < padded; i++) {
        if ((uint8_t)address[i] != GA_SLACK_BYTE) {
            if (damage->damaged == 0)
                damage->first_offset = i;
            damage->damaged++;
        }
    }
    if (damage->damaged)
        result = GA_ERR_CORRUPT;
    if (s->flags & GA_FLAG_RETIRE) {
        s->state = GA_SLOT_RETIRED;
        /* Never reused, but a stale pointer into it still faults. */
        if (a->uaf && ga_guard_data(a, (uint32_t)slot, 1) != 0)
            return GA_ERR_SYSCALL;
        return result;
    }
    if (!a->uaf) {
        ga_push_free(a, (uint32_t)slot);
        return result;
    }
    s->state = GA_SLOT_QUARANTINED;
    if (ga_guard_data(a, (uint32_t)slot, 1) != 0) {
        ga_push_free(a, (uint32_t)slot);
        return GA_ERR_SYSCALL;
    }
    a->quarantine[(a->quarantine_head + a->quarantine_len) % a->nslots] = (uint32_t)slot;
    a->quarantine_len++;
    while (a->quarantine_len > a->quarantine_limit) {
        uint32_t oldest = a->quarantine[a->quarantine_head];
        a->quarantine_head = (a->quarantine_head + 1) % a->nslots;
        a->quarantine_len--;
        if (a->slots[oldest].state == GA_SLOT_QUARANTINED)
            ga_push_free(a, oldest);   /* still guarded; unguarded when reused */
    }
    return result;
}

void ga_count_states(const ga_arena_t *a, uint64_t counts[4])
{
    uint32_t i;
    counts[0] = counts[1] = counts[2] = counts[3] = 0;
    for (i = 0; i < a->nslots; i++)
        counts[a->slots[i].state & 3]++;
}
