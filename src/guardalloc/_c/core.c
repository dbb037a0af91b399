/*
 * The slot core (see core.h).
 *
 * Slots are handed out from three sources, in this order: the free stack
 * (slots freed and reusable, the most recent on top), the never-used slots
 * in address order (a bump index, `fresh`, so that an arena's bookkeeping
 * costs nothing until a slot is used), and, when both are empty, the
 * quarantine ring's oldest slot. A slot claimed by number or retired while
 * it waits on the stack or ahead of `fresh` is skipped when its turn comes.
 *
 * Lazy guards. An anonymous madvise arena of more than GA_OPEN_CHUNK slots
 * is not guarded whole when it is built: guard markers cost page-table work
 * per page (an 8 GB range takes ~80 ms to guard and ~60 ms more to unmap),
 * so one guard over the never-used tail would not make building O(1).
 * Instead the build guards the first guard and makes everything after it
 * PROT_NONE (one mprotect(), whose cost does not depend on the size of an
 * untouched range); as `fresh` advances, slots are opened GA_OPEN_CHUNK at
 * a time: one mprotect() back to read-write and one process_madvise() for
 * the chunk's guards. A wild access into the never-opened tail still faults
 * (SEGV_ACCERR; classify.c names it a wild access). The price: while the
 * arena is partly open it is three VMAs (open slots, PROT_NONE tail,
 * bookkeeping), two before the first allocation; fully open, one again.
 *
 * Use-after-free quarantine. Freed slots are guarded one by one (the point),
 * but released in batches of up to GA_IOV_MAX with one process_madvise()
 * lifting all their guards: the older half of the ring when no free or
 * fresh slot is left, or a batch when the ring holds that many more than
 * `quarantine_limit` (so at least that many freed slots wait).
 */
#include <errno.h>
#include <string.h>
#include <sys/uio.h>
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
    a->opened = n;
    a->closed_from = NULL;
    if (a->random_state == 0)
        a->random_state = ((uint64_t)(uintptr_t)a->base >> 12) * 0x9E3779B97F4A7C15ull | 1;
}

static int ga_lazy(const ga_arena_t *a)
{
    return a->backend == GA_BACKEND_MADVISE && !a->file_backed && a->guard_size > 0
        && a->nslots > GA_OPEN_CHUNK;
}

int ga_arena_guard_all(ga_arena_t *a)
{
    int rc;
    if (ga_lazy(a)) {
        /* The first guard (which also tells at build time whether this
         * mapping takes guards at all), then the PROT_NONE tail. */
        a->guard_syscalls += 2;
        if (ga_guard_range(a->base, a->guard_size, GA_BACKEND_MADVISE, 1) != 0)
            return -1;
        if (ga_guard_range(a->base + a->guard_size, a->size - a->guard_size,
                           GA_BACKEND_MPROTECT, 1) != 0)
            return -1;
        a->opened = 0;
        a->closed_from = a->base + a->guard_size;
        a->batched = a->batched && !ga_batching_refused();
        return 0;
    }
    rc = ga_guard_strided(a->base, a->stride, (size_t)a->nslots + 1, a->guard_size,
                          a->backend, a->batched, 1, &a->guard_syscalls);
    if (rc < 0)
        return -1;
    /* What stats() reports: whether the batched path really did the work. */
    a->batched = a->backend == GA_BACKEND_MADVISE && rc == 1 && a->guard_size > 0;
    return 0;
}

int ga_arena_open(ga_arena_t *a, uint32_t upto)
{
    while (a->opened < upto) {
        uint32_t from = a->opened;
        uint32_t to = (uint32_t)ga_round_up((size_t)upto, GA_OPEN_CHUNK);
        char *start = ga_slot_start(a, from);
        int rc;
        if (to > a->nslots || to < upto)
            to = a->nslots;
        a->guard_syscalls++;
        if (ga_guard_range(start, (size_t)(to - from) * a->stride, GA_BACKEND_MPROTECT, 0) != 0)
            return -1;
        /* The guards after slots from .. to - 1. */
        rc = ga_guard_strided(start + a->slot_size, a->stride, to - from, a->guard_size,
                              GA_BACKEND_MADVISE, a->batched, 1, &a->guard_syscalls);
        if (rc < 0) {
            int err = errno;
            ga_guard_range(start, (size_t)(to - from) * a->stride, GA_BACKEND_MPROTECT, 1);
            errno = err;
            return -1;
        }
        if (rc == 0)
            a->batched = 0;
        a->opened = to;
        a->closed_from = to == a->nslots ? NULL : ga_slot_start(a, to);
    }
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

/* Take up to GA_IOV_MAX slots off the front of the quarantine ring, lift
 * their guards in one batch and put them on the free stack (the oldest on
 * top). Returns how many were released, or -1 (errno set; nothing moved). */
static long ga_release_quarantine(ga_arena_t *a, uint32_t want)
{
    struct iovec iov[GA_IOV_MAX];
    uint32_t picked[GA_IOV_MAX];
    uint32_t n = 0, scanned = 0, head = a->quarantine_head, i;
    if (want > GA_IOV_MAX)
        want = GA_IOV_MAX;
    while (n < want && scanned < a->quarantine_len) {
        uint32_t slot = a->quarantine[head];
        head = (head + 1) % a->nslots;
        scanned++;
        if (a->slots[slot].state != GA_SLOT_QUARANTINED)
            continue;   /* retired by a continue-mode fault meanwhile */
        picked[n] = slot;
        iov[n].iov_base = ga_slot_start(a, slot);
        iov[n].iov_len = a->slot_size;
        n++;
    }
    if (n > 0) {
        size_t k = 0;
        for (i = 0; i < n; i++) {
            if (a->slots[picked[i]].flags & GA_FLAG_DATA_GUARDED)
                iov[k++] = iov[i];
        }
        if (k > 0 && ga_guard_list(iov, k, a->backend, 0, &a->uaf_syscalls) != 0)
            return -1;
    }
    a->quarantine_head = head;
    a->quarantine_len -= scanned;
    for (i = n; i-- > 0;) {
        ga_slot_t *s = &a->slots[picked[i]];
        if (s->flags & GA_FLAG_DATA_GUARDED) {
            s->flags &= ~GA_FLAG_DATA_GUARDED;
            if (a->backend == GA_BACKEND_MADVISE && !a->file_backed)
                s->flags &= ~GA_FLAG_DIRTY;   /* anonymous pages come back zero-filled */
        }
        ga_push_free(a, picked[i]);
    }
    return n;
}

static long ga_take_slot(ga_arena_t *a)
{
    for (;;) {
        long released;
        while (a->free_top > 0) {
            uint32_t slot = a->free_stack[--a->free_top];
            a->slots[slot].flags &= ~GA_FLAG_STACKED;
            if (a->slots[slot].state == GA_SLOT_FREE)
                return slot;
        }
        while (a->fresh < a->nslots) {
            uint32_t slot = a->fresh;
            if (slot >= a->opened && ga_arena_open(a, slot + 1) != 0)
                return GA_ERR_SYSCALL;
            a->fresh++;
            if (a->slots[slot].state == GA_SLOT_FREE)
                return slot;
        }
        /* No fresh slot: recycle the ones that have waited longest, the
         * older half of the ring (so the newer half stays guarded) in one
         * batch of at most GA_IOV_MAX. */
        if (a->quarantine_len == 0)
            return GA_ERR_FULL;
        released = ga_release_quarantine(a, a->quarantine_len > 1 ? a->quarantine_len / 2 : 1);
        if (released < 0)
            return GA_ERR_SYSCALL;
        if (released == 0 && a->quarantine_len == 0)
            return GA_ERR_FULL;
    }
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

/* How many slots beyond quarantine_limit the ring collects before it
 * releases them together. */
static uint32_t ga_quarantine_batch(const ga_arena_t *a)
{
    uint32_t room = a->nslots - a->quarantine_limit;
    return room < GA_IOV_MAX ? (room ? room : 1) : GA_IOV_MAX;
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
        if ((uint32_t)slot >= a->opened && ga_arena_open(a, (uint32_t)slot + 1) != 0)
            return GA_ERR_SYSCALL;
    } else {
        slot = ga_take_slot(a);
        if (slot < 0)
            return slot;
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
        /* nbytes: the slot was handed out before (it stays set when the
         * slot's pages are known to be zero again, unlike GA_FLAG_DIRTY). */
        if (s->nbytes != 0 && within == s->offset)
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
    if ((uint64_t)a->quarantine_len >= (uint64_t)a->quarantine_limit + ga_quarantine_batch(a)) {
        /* A batch beyond the limit: release it with one system call. */
        if (ga_release_quarantine(a, a->quarantine_len - a->quarantine_limit) < 0)
            return result == GA_OK ? GA_ERR_SYSCALL : result;
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
