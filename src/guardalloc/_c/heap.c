/*
 * The native heap (see heap.h).
 *
 * Layout: one PROT_NONE reservation; each arena is mapped read-write at the
 * next free address inside it ("bump"), so arenas sit in address order and
 * the table of arenas is sorted (free() finds its arena by binary search).
 * An arena's mapping is [guards and slots][core tables][meta][stack table
 * (stacks.h)]; its
 * descriptor lives in a static table (no malloc anywhere in here except the
 * fault registry's, which the library routes to the next allocator).
 *
 * Classes and growth follow the Pool (pool.pyx): whole-page size classes
 * (classes.h), arenas of a class doubling from about 1 MiB of slots up to
 * 65,536 slots; blocks of 1 MiB and more get one-slot arenas whose pages are
 * handed back to the kernel when they are freed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "altstack.h"
#include "classes.h"
#include "core.h"
#include "faults.h"
#include "guards.h"
#include "heap.h"
#include "locks.h"
#include "pyframes.h"
#include "stacks.h"

#define GA_HEAP_MAX_ARENAS 16384
#define GA_FIRST_ARENA ((size_t)1 << 20)
#define GA_MAX_FIRST_SLOTS 256u
#define GA_MAX_ARENA_SLOTS 65536u
#define GA_MAX_ARENA_BYTES ((size_t)1 << 30)
#define GA_LARGE_SLOT ((size_t)1 << 20)

/* What the heap keeps per slot besides the core's ga_slot_t (and its
 * stacks, in the arena's stack table). */
typedef struct {
    /* Bytes between the end of the block's padding and the guard: an
     * aligned block (posix_memalign...) whose size is not a multiple of
     * its alignment cannot end at the guard; these bytes hold the slack
     * pattern and are checked at free like the core's slack. */
    uint32_t tail;
    uint8_t family;             /* GA_FAMILY_* of the live (or last) block */
} ga_slot_meta_t;

typedef struct {
    ga_arena_t a;
    ga_slot_meta_t *meta;       /* one per slot */
    int cls;
    int next_avail;             /* next arena of the class with free slots, -1 */
    int in_avail;
} ga_heap_arena_t;

typedef struct {
    size_t slot_size;
    uint32_t next_slots;
    int avail;                  /* top of the class's list of arenas, -1 */
} ga_heap_class_t;

char *ga_heap_start, *ga_heap_end;
static char *ga_bump;
static size_t ga_page;
/* Level GA_LOCK_HEAP of the lock order (locks.h): held while an arena is
 * mapped and registered (the registry's lock is taken under it), and around
 * fork() by locks.c's handlers. */
static pthread_mutex_t ga_lock = PTHREAD_MUTEX_INITIALIZER;
static ga_options_t ga_opts;
static int ga_backend;
static ga_heap_arena_t ga_arenas[GA_HEAP_MAX_ARENAS];
static uint32_t ga_narenas;
static ga_heap_class_t ga_classes[GA_NCLASSES];
static ga_heap_stats_t ga_counts;

/* -- set-up ---------------------------------------------------------------- */

/* Address space per byte of max_bytes, worst case (one-page slots): the
 * slot's page, its guard page and its bookkeeping (layout.h, this file's
 * ga_slot_meta_t, stacks.h). */
static size_t ga_per_page(size_t page)
{
    return 2 * page + sizeof(ga_slot_t) + 3 * sizeof(uint32_t) + 2 * sizeof(char *)
        + sizeof(ga_slot_meta_t) + 2 * sizeof(ga_packed_stack_t);
}

/* The reservation for max_bytes in *out, or -1 when the size does not fit in
 * a size_t: max_bytes in pages times ga_per_page, plus three pages per arena
 * of the table (rounding of each arena's tables). */
static int ga_reservation(uint64_t max_bytes, size_t page, size_t *out)
{
    size_t pages = (size_t)(max_bytes / page) + (max_bytes % page != 0), total;
    if (__builtin_mul_overflow(pages, ga_per_page(page), &total)
            || __builtin_add_overflow(total, (size_t)GA_HEAP_MAX_ARENAS * 3 * page, &total)
            || total > SIZE_MAX - page)
        return -1;
    *out = ga_round_up(total, page);
    return 0;
}

/* The largest max_bytes (whole MiB) whose reservation this process can map
 * now: a bisection over PROT_NONE reservations (no memory is committed). */
static uint64_t ga_fitting_max_bytes(size_t page)
{
    size_t lo = 0, hi = (size_t)1 << 62, fixed = (size_t)GA_HEAP_MAX_ARENAS * 3 * page;
    uint64_t fit, unit;
    while (hi - lo > ((size_t)1 << 20)) {
        size_t mid = lo + (hi - lo) / 2;
        void *p = ga_reserve(NULL, mid);
        if (p != NULL) {
            ga_unmap(p, mid);
            lo = mid;
        } else {
            hi = mid;
        }
    }
    if (lo <= fixed)
        return 0;
    /* Down to a whole TiB, GiB or MiB: a value to type, not a byte count. */
    /* Less a sixteenth: the process maps more later (the fit is of now). */
    fit = (uint64_t)((lo - fixed) / ga_per_page(page) * page);
    fit -= fit / 16;
    unit = fit >= ((uint64_t)1 << 40) ? (uint64_t)1 << 40 : fit >= ((uint64_t)1 << 30) ? (uint64_t)1 << 30
                                                                                      : (uint64_t)1 << 20;
    return fit / unit * unit;
}

/* "about 121.9 TiB": n in the largest binary unit that keeps it >= 1. */
static void ga_format_approx(char *out, size_t len, size_t n)
{
    static const char *const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = (double)n;
    int u = 0;
    while (u < 6 && v >= 1024) {
        v /= 1024;
        u++;
    }
    snprintf(out, len, "about %.1f %s", v, units[u]);
}

/* "60T", "512M", or a byte count: the largest unit that divides n. */
static void ga_format_size(char *out, size_t len, uint64_t n)
{
    static const char units[] = "KMGTPE";
    int u = -1;
    while (u < 5 && n != 0 && n % 1024 == 0) {
        n /= 1024;
        u++;
    }
    if (u < 0)
        snprintf(out, len, "%llu", (unsigned long long)n);
    else
        snprintf(out, len, "%llu%c", (unsigned long long)n, units[u]);
}

int ga_heap_init(const ga_options_t *options, char *err, size_t errlen)
{
    size_t reserve;
    int i, saved;
    void *base;
    char want[32], fit[32], need[32];
    ga_opts = *options;
    ga_page = ga_page_size();
    errno = 0;
    /* The kernel probe: guard advice on an empty range (0, or EINVAL before
     * Linux 6.13: then PROT_NONE guards, one VMA each, as the peers do). */
    ga_backend = ga_guard_range(NULL, 0, GA_BACKEND_MADVISE, 1) == 0 ? GA_BACKEND_MADVISE
                                                                    : GA_BACKEND_MPROTECT;
    for (i = 0; i < GA_NCLASSES; i++) {
        size_t slot = ga_class_pages(i) * ga_page, first = GA_FIRST_ARENA / slot;
        ga_classes[i].slot_size = slot;
        ga_classes[i].next_slots = first < 1 ? 1 : first > GA_MAX_FIRST_SLOTS ? GA_MAX_FIRST_SLOTS : (uint32_t)first;
        ga_classes[i].avail = -1;
    }
    /* Held across fork() in the lock order (locks.h); added before the
     * first arena exists, holding no lock. */
    if (ga_fork_lock_add(&ga_lock, GA_LOCK_HEAP) != 0) {
        snprintf(err, errlen, "cannot hold the heap's lock across fork() (%s)", strerror(errno));
        return -1;
    }
    base = NULL;
    if (ga_reservation(options->max_bytes, ga_page, &reserve) == 0)
        base = ga_reserve(NULL, reserve);
    if (base == NULL) {
        saved = errno ? errno : ENOMEM;
        ga_fork_lock_remove(&ga_lock);
        ga_format_size(want, sizeof(want), options->max_bytes);
        ga_format_size(fit, sizeof(fit), ga_fitting_max_bytes(ga_page));
        if (ga_reservation(options->max_bytes, ga_page, &reserve) == 0) {
            ga_format_approx(need, sizeof(need), reserve);
            snprintf(err, errlen, "max_bytes=%s needs %s of address space, more than this process "
                     "can reserve: use max_bytes=%s or less", want, need, fit);
        } else {
            snprintf(err, errlen, "max_bytes=%s needs more address space than a 64-bit process has: "
                     "use max_bytes=%s or less", want, fit);
        }
        errno = saved;
        return -1;
    }
    ga_heap_start = ga_bump = base;
    ga_heap_end = ga_heap_start + reserve;
    /* Captured stacks start at malloc's caller, not inside this library. */
    ga_stacks_skip_library((const void *)&ga_heap_alloc);
    return 0;
}

/* A new arena for class cls at the bump pointer (lock held), or -1. */
static int ga_grow(int cls)
{
    ga_heap_class_t *c = &ga_classes[cls];
    ga_heap_arena_t *e;
    ga_arena_t *a;
    size_t guard = ga_page, slots_size, tables, meta, stacks, pystacks, total, budget;
    uint32_t n = c->next_slots;
    if (ga_narenas == GA_HEAP_MAX_ARENAS || ga_counts.mapped_bytes >= ga_opts.max_bytes)
        return -1;
    budget = (ga_opts.max_bytes - ga_counts.mapped_bytes) / c->slot_size;
    if (budget == 0)
        return -1;
    if (n > budget)
        n = (uint32_t)budget;
    slots_size = ga_slots_size(c->slot_size, n, guard);
    tables = ga_round_up(ga_bookkeeping_size(n, ga_opts.uaf), sizeof(void *));
    meta = ga_round_up((size_t)n * sizeof(ga_slot_meta_t), sizeof(void *));
    stacks = ga_stacks_table_size(n, ga_page);
    /* Address space only until a Python registers its walker (pyframes.h). */
    pystacks = ga_pystacks_table_size(n, ga_page);
    total = slots_size + ga_round_up(tables + meta, ga_page) + stacks + pystacks;
    if (total > (size_t)(ga_heap_end - ga_bump))
        return -1;
    if (ga_map_anonymous(ga_bump, total) == NULL)
        return -1;
    e = &ga_arenas[ga_narenas];
    memset(e, 0, sizeof(*e));
    a = &e->a;
    a->base = ga_bump;
    a->size = slots_size;
    a->slot_size = c->slot_size;
    a->guard_size = guard;
    a->stride = c->slot_size + guard;
    /* auto: the arena places blocks byte-exact and ga_heap_alloc rounds each
     * request up to its own alignment. */
    a->alignment = ga_opts.alignment ? ga_opts.alignment : 1;
    a->nslots = n;
    a->backend = ga_backend;
    a->align = ga_opts.align;
    a->on_fault_continue = ga_opts.on_fault == GA_ON_FAULT_CONTINUE;
    a->uaf = ga_opts.uaf;
    a->batched = ga_backend == GA_BACKEND_MADVISE;
    a->quarantine_limit = ga_opts.quarantine > n ? n : (uint32_t)ga_opts.quarantine;
    a->untraced_hint = "native_stacks=0 in GUARDALLOC_OPTIONS";
    ga_arena_attach(a, a->base + slots_size);
    e->meta = (ga_slot_meta_t *)(a->base + slots_size + tables);
    a->stacks = (ga_packed_stack_t *)(a->base + total - pystacks - stacks);
    a->pystacks = (ga_pystack_t *)(a->base + total - pystacks);
    e->cls = cls;
    if (ga_arena_guard_all(a) != 0 || ga_register_arena(a) != 0) {
        ga_reserve(ga_bump, total);   /* back to the reservation */
        return -1;
    }
    ga_bump += total;
    ga_counts.mapped_bytes += (size_t)n * c->slot_size;
    ga_counts.arenas++;
    if (c->next_slots < GA_MAX_ARENA_SLOTS && (size_t)c->next_slots * 2 * c->slot_size <= GA_MAX_ARENA_BYTES
            && c->slot_size < GA_LARGE_SLOT)
        c->next_slots *= 2;
    e->next_avail = c->avail;
    e->in_avail = 1;
    c->avail = (int)ga_narenas;
    return (int)ga_narenas++;
}

/* -- alloc and free ------------------------------------------------------- */

void *ga_heap_alloc(size_t nbytes, size_t alignment, int zero, int family)
{
    ga_stack_t stack;
    ga_heap_class_t *c;
    size_t asked = nbytes ? nbytes : 1;   /* malloc(0): a unique 1-byte block */
    size_t want = asked, natural, front;
    int cls;
    long slot = GA_ERR_FULL;
    ga_heap_arena_t *e = NULL;
    ga_slot_t *s;
    char *p;
    if (asked > GA_MAX_CLASS_PAGES * ga_page)
        goto refused;
    natural = ga_opts.alignment ? ga_opts.alignment : ga_auto_alignment(asked);
    if (alignment < natural)
        alignment = natural;
    if (alignment > ga_page)
        goto refused;
    want = ga_round_up(asked, alignment);   /* a right-aligned block starts aligned */
    if (want > GA_MAX_CLASS_PAGES * ga_page || want > UINT32_MAX)
        goto refused;
    cls = ga_class_of(want, ga_page);
    c = &ga_classes[cls];
    if (ga_opts.native_stacks)
        ga_stack_capture(&stack);
    ga_altstack_ensure();   /* this thread may fault in the block: report on a stack of known size */
    pthread_mutex_lock(&ga_lock);
    for (;;) {
        if (c->avail < 0 && ga_grow(cls) < 0)
            break;
        e = &ga_arenas[c->avail];
        slot = ga_alloc(&e->a, want, zero, 1, -1);
        if (slot != GA_ERR_FULL)
            break;
        e->in_avail = 0;
        c->avail = e->next_avail;
    }
    if (slot < 0) {
        pthread_mutex_unlock(&ga_lock);
        goto refused;
    }
    s = &e->a.slots[slot];
    if (want != asked) {
        /* Rounded up for the alignment: record the size asked for, so that
         * malloc_usable_size() and the reports tell the truth and the bytes
         * past it are checked at free like any slack. */
        size_t padded = ga_round_up(asked, e->a.alignment);
        s->nbytes = (uint32_t)asked;
        /* A right-placed block: the bytes up to the guard are its tail. */
        e->meta[slot].tail = s->offset ? (uint32_t)(e->a.slot_size - s->offset - padded) : 0;
        memset(ga_block_start(&e->a, slot) + asked, GA_SLACK_BYTE,
               padded - asked + e->meta[slot].tail);
    } else {
        e->meta[slot].tail = 0;
    }
    e->meta[slot].family = (uint8_t)family;
    p = ga_block_start(&e->a, slot);
    front = s->offset < GA_FRONT_CHECK ? s->offset : GA_FRONT_CHECK;
    memset(p - front, GA_SLACK_BYTE, front);
    if (ga_opts.native_stacks) {
        ga_stacks_record(&e->a, slot, 0, &stack);
        ga_pystacks_record(&e->a, slot, 0);
    } else {
        ga_stacks_forget(&e->a, slot);
    }
    ga_counts.allocations++;
    ga_counts.live++;
    pthread_mutex_unlock(&ga_lock);
    return p;
refused:
    __atomic_fetch_add(&ga_counts.refused, 1, __ATOMIC_RELAXED);
    return NULL;
}

/* The arena whose mapping holds p (lock held), or NULL. */
static ga_heap_arena_t *ga_find(const char *p)
{
    long lo = 0, hi = (long)ga_narenas - 1;
    while (lo <= hi) {
        long mid = (lo + hi) >> 1;
        ga_arena_t *a = &ga_arenas[mid].a;
        if (p < a->base)
            hi = mid - 1;
        else if (p >= a->base + a->size)
            lo = mid + 1;
        else
            return &ga_arenas[mid];
    }
    return NULL;
}

/* Bytes of [p, p + n) that differ from GA_SLACK_BYTE; *first: the first
 * one's index. Whole words first (the common, undamaged case), bytes only
 * when a word differs. */
static size_t ga_count_damage(const uint8_t *p, size_t n, size_t *first)
{
    const uint64_t pattern = 0x0101010101010101ull * GA_SLACK_BYTE;
    uint64_t diff = 0, w;
    size_t i, bad = 0;
    for (i = 0; i + 8 <= n; i += 8) {
        memcpy(&w, p + i, 8);
        diff |= w ^ pattern;
    }
    for (; i < n; i++)
        diff |= p[i] ^ GA_SLACK_BYTE;
    if (diff == 0)
        return 0;
    for (i = 0; i < n; i++) {
        if (p[i] != GA_SLACK_BYTE && bad++ == 0)
            *first = i;
    }
    return bad;
}

/* Damaged bytes in a live block's tail (see ga_slot_meta_t); *first: the
 * first one's offset from the block's start. */
static size_t ga_check_tail(const ga_heap_arena_t *e, long slot, size_t *first)
{
    const ga_slot_t *s = &e->a.slots[slot];
    size_t from = ga_round_up(s->nbytes, e->a.alignment), bad, at = 0;
    const uint8_t *p = (const uint8_t *)ga_block_start(&e->a, slot);
    bad = ga_count_damage(p + from, e->meta[slot].tail, &at);
    if (bad)
        *first = from + at;
    return bad;
}

/* Damaged bytes in front of a live block (GA_FRONT_CHECK); *before: how far
 * before the block's start the damage begins (the underflow's reach). */
static size_t ga_check_front(const ga_heap_arena_t *e, long slot, size_t *before)
{
    const ga_slot_t *s = &e->a.slots[slot];
    size_t front = s->offset < GA_FRONT_CHECK ? s->offset : GA_FRONT_CHECK, bad, at = 0;
    const uint8_t *p = (const uint8_t *)ga_block_start(&e->a, slot);
    bad = ga_count_damage(p - front, front, &at);
    if (bad)
        *before = front - at;
    return bad;
}

static void ga_fatal(void)
{
    if (ga_opts.on_fault != GA_ON_FAULT_CONTINUE)
        abort();
}

static const char *const ga_alloc_names[] = {"malloc", "operator new", "operator new []"};
static const char *const ga_free_names[] = {"free", "operator delete", "operator delete []"};

void ga_heap_free(void *ptr, int family, const char *freed_by)
{
    ga_stack_t stack;
    ga_damage_t damage, front;
    ga_heap_arena_t *e;
    ga_heap_class_t *c;
    long slot;
    int code, continuing = ga_opts.on_fault == GA_ON_FAULT_CONTINUE, mismatch_reported = 0;
    size_t tail_damage, tail_first = 0;
    char *p = ptr;
    if (ga_opts.native_stacks)
        ga_stack_capture(&stack);
    else
        memset(&stack, 0, sizeof(stack));
    memset(&front, 0, sizeof(front));
again:
    pthread_mutex_lock(&ga_lock);
    e = ga_find(p);
    slot = e != NULL ? ga_live_slot_at(&e->a, p) : -1;
    if (slot >= 0 && !mismatch_reported && ga_opts.alloc_dealloc_mismatch
            && e->meta[slot].family != family) {
        /* Reported before the block is freed, so the report shows it live
         * with its allocation stack; continue mode then frees it. */
        int allocated_by = e->meta[slot].family;
        pthread_mutex_unlock(&ga_lock);
        ga_report_mismatch(p, &e->a, slot, ga_alloc_names[allocated_by],
                           freed_by != NULL ? freed_by : ga_free_names[family], &stack, continuing);
        ga_fatal();
        mismatch_reported = 1;
        goto again;
    }
    tail_damage = slot >= 0 ? ga_check_tail(e, slot, &tail_first) : 0;
    if (slot >= 0) {
        front.nbytes = e->a.slots[slot].nbytes;
        front.damaged = ga_check_front(e, slot, &front.first_offset);
    }
    code = e != NULL ? ga_free(&e->a, p, 0, &damage) : GA_ERR_INVALID;
    slot = e != NULL ? ga_slot_of(&e->a, p) : -1;
    if (tail_damage && (code == GA_OK || code == GA_ERR_CORRUPT)) {
        if (code == GA_OK)
            damage.first_offset = tail_first;
        damage.damaged += tail_damage;
        code = GA_ERR_CORRUPT;
    }
    if (code == GA_OK || code == GA_ERR_CORRUPT || code == GA_ERR_SYSCALL) {
        ga_counts.frees++;
        ga_counts.live--;
        ga_stacks_record(&e->a, slot, 1, &stack);
        if (ga_opts.native_stacks)
            ga_pystacks_record(&e->a, slot, 1);
        c = &ga_classes[e->cls];
        if (c->slot_size >= GA_LARGE_SLOT && !e->a.uaf && e->a.slots[slot].state == GA_SLOT_FREE
                && ga_discard(ga_slot_start(&e->a, (size_t)slot), e->a.slot_size) == 0)
            e->a.slots[slot].flags &= ~GA_FLAG_DIRTY;
        if (!e->in_avail) {
            e->in_avail = 1;
            e->next_avail = c->avail;
            c->avail = (int)(e - ga_arenas);
        }
    }
    pthread_mutex_unlock(&ga_lock);
    if (front.damaged)
        ga_report_underflow(p, &e->a, slot, &front, &stack, continuing);
    if (code == GA_OK || code == GA_ERR_SYSCALL) {
        if (front.damaged)
            ga_fatal();
        return;
    }
    /* A double or invalid free, or damage: name the slot, show every stack. */
    ga_report_free(code, p, e != NULL ? &e->a : NULL, slot,
                   code == GA_ERR_CORRUPT ? &damage : NULL, &stack, continuing);
    ga_fatal();
}

int ga_heap_not_live(const void *p)
{
    ga_heap_arena_t *e;
    int not_live;
    pthread_mutex_lock(&ga_lock);
    e = ga_find(p);
    not_live = e == NULL || ga_live_slot_at(&e->a, p) < 0;
    pthread_mutex_unlock(&ga_lock);
    return not_live;
}

size_t ga_heap_usable_size(const void *p)
{
    ga_heap_arena_t *e;
    long slot;
    size_t n = 0;
    pthread_mutex_lock(&ga_lock);
    e = ga_find(p);
    if (e != NULL && (slot = ga_live_slot_at(&e->a, p)) >= 0)
        n = e->a.slots[slot].nbytes;
    pthread_mutex_unlock(&ga_lock);
    return n;
}

void ga_heap_stats(ga_heap_stats_t *out)
{
    pthread_mutex_lock(&ga_lock);
    *out = ga_counts;
    pthread_mutex_unlock(&ga_lock);
}
