/*
 * Memory that no allocator made (see nonheap.h).
 *
 * glibc's malloc keeps its blocks in three kinds of places: the main
 * arena's heap, grown with brk (contiguous from the break at start-up to
 * the current break); the heaps of its thread arenas, mappings of
 * HEAP_MAX_SIZE (64 MiB on 64-bit) aligned to that size, each starting with
 * a heap_info whose first word points to its arena (which, for an arena's
 * first heap, sits right after that heap_info); and mmapped chunks
 * (large blocks), whose header has the IS_MMAPPED bit and starts a whole
 * number of pages into a mapping. The brk range and the thread heaps seen
 * once are the fast path; everything else is classified here, slowly: the
 * pointer's object segment, glibc's headers (read with process_vm_readv, so
 * a wild pointer cannot fault), the registry of guardalloc's arenas (a
 * Pool's block passed to free()), then its line of /proc/self/maps.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>
#include "nonheap.h"
#include "registry.h"

/* glibc's HEAP_MAX_SIZE: 2 * DEFAULT_MMAP_THRESHOLD_MAX. */
#define GA_GLIBC_HEAP ((uintptr_t)2 * 4 * 1024 * 1024 * sizeof(long))
#define GA_GLIBC_MMAPPED 2ul      /* IS_MMAPPED in a chunk's size word  */
#define GA_GLIBC_PREV_INUSE 1ul
#define GA_GLIBC_FLAGS 7ul
#define GA_MAX_KNOWN_HEAPS 256u

int ga_nonheap_on;
uintptr_t ga_brk_lo = 1, ga_brk_hi = 0;     /* empty until ga_nonheap_init */
static uintptr_t ga_known_heaps[GA_MAX_KNOWN_HEAPS];
static unsigned ga_nknown;
static uintptr_t ga_page_mask;

/* Read n bytes at addr into out without faulting: 0, or -1 when any of it
 * is not readable (or the system call is not allowed). */
static int ga_peek(uintptr_t addr, void *out, size_t n)
{
    struct iovec local = {out, n}, remote = {(void *)addr, n};
    return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == (ssize_t)n ? 0 : -1;
}

int ga_nonheap_init(void *(*next_malloc)(size_t))
{
    Dl_info info;
    const char *name;
    void *brk_now;
    int probe = 0;
    if (dladdr((void *)next_malloc, &info) == 0 || info.dli_fname == NULL)
        return 0;
    name = strrchr(info.dli_fname, '/');
    name = name != NULL ? name + 1 : info.dli_fname;
    if (strncmp(name, "libc.so", 7) != 0)
        return 0;
    /* Without a safe read (a seccomp filter may refuse process_vm_readv)
     * glibc's own chunks could not be told from other memory: no check. */
    if (ga_peek((uintptr_t)&ga_nonheap_on, &probe, sizeof(probe)) != 0)
        return 0;
    brk_now = sbrk(0);
    if (brk_now == (void *)-1)
        return 0;
    ga_page_mask = (uintptr_t)sysconf(_SC_PAGESIZE) - 1;
    ga_brk_lo = ga_brk_hi = (uintptr_t)brk_now;
    ga_nonheap_on = 1;
    return 1;
}

int ga_nonheap_maybe_slow(const void *p)
{
    uintptr_t x = (uintptr_t)p, base, brk_now;
    unsigned i, n;
    if (!ga_nonheap_on)
        return 0;
    if (x >= __atomic_load_n(&ga_brk_lo, __ATOMIC_RELAXED)) {
        brk_now = (uintptr_t)sbrk(0);   /* no system call: the cached break */
        if (x < brk_now) {
            __atomic_store_n(&ga_brk_hi, brk_now, __ATOMIC_RELAXED);
            return 0;
        }
    }
    base = x & ~(GA_GLIBC_HEAP - 1);
    n = __atomic_load_n(&ga_nknown, __ATOMIC_ACQUIRE);
    for (i = 0; i < n; i++)
        if (ga_known_heaps[i] == base)
            return 0;
    return 1;
}

static void ga_remember_heap(uintptr_t base)
{
    unsigned n = __atomic_load_n(&ga_nknown, __ATOMIC_ACQUIRE);
    while (n < GA_MAX_KNOWN_HEAPS) {
        /* Claim the entry by writing it first: a reader only looks below
         * ga_nknown, and two writers of the same base are harmless. */
        ga_known_heaps[n] = base;
        if (__atomic_compare_exchange_n(&ga_nknown, &n, n + 1, 0, __ATOMIC_RELEASE,
                                        __ATOMIC_ACQUIRE))
            return;
    }
}

/* -- loaded objects ---------------------------------------------------------- */

typedef struct {
    uintptr_t x;
    ga_where_t *out;
} ga_object_search_t;

static int ga_object_segment(struct dl_phdr_info *info, size_t size, void *data)
{
    ga_object_search_t *search = data;
    int i;
    (void)size;
    for (i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type != PT_LOAD || search->x < start || search->x >= start + ph->p_memsz)
            continue;
        search->out->kind = ph->p_flags & PF_X ? GA_MEM_CODE
                            : ph->p_flags & PF_W ? GA_MEM_GLOBAL : GA_MEM_READONLY;
        search->out->module = info->dlpi_name != NULL ? info->dlpi_name : "";
        search->out->start = (const void *)start;
        search->out->end = (const void *)(start + ph->p_memsz);
        return 1;
    }
    return 0;
}

/* -- glibc's headers ----------------------------------------------------------- */

/* An mmapped chunk starts at p - 16: prev_size (its offset into the
 * mapping), then its size with IS_MMAPPED; both ends fall on pages. */
static int ga_glibc_mmapped_chunk(uintptr_t x)
{
    uintptr_t hdr[2], chunk = x - 2 * sizeof(uintptr_t), size;
    if ((x & 15) != 0 || x < 4096 || ga_peek(chunk, hdr, sizeof(hdr)) != 0)
        return 0;
    size = hdr[1] & ~GA_GLIBC_FLAGS;
    return (hdr[1] & GA_GLIBC_MMAPPED) && size > ga_page_mask && ((chunk - hdr[0]) & ga_page_mask) == 0
        && ((hdr[0] + size) & ga_page_mask) == 0;
}

/* A thread arena's heap holds x: its heap_info (arena, prev, size) at the
 * aligned base; the arena pointer leads to the arena's first heap, whose
 * heap_info the arena follows. */
static int ga_glibc_thread_heap(uintptr_t x)
{
    uintptr_t base = x & ~(GA_GLIBC_HEAP - 1), info[3], first;
    if (base == 0 || ga_peek(base, info, sizeof(info)) != 0)
        return 0;
    if (info[0] == 0 || x >= base + info[2] || x < base + sizeof(info))
        return 0;
    first = info[0] & ~(GA_GLIBC_HEAP - 1);
    if (first == base) {
        if (info[0] - base > 512)
            return 0;
    } else {
        uintptr_t arena;
        if (info[1] == 0 || info[0] - first > 512 || ga_peek(first, &arena, sizeof(arena)) != 0
                || arena != info[0])
            return 0;
    }
    ga_remember_heap(base);
    return 1;
}

/* Could x be a chunk of a main arena that moved to mmap when brk failed?
 * A 16-aligned pointer whose size word is a plausible size and whose next
 * chunk (inside the same mapping) says its predecessor is in use. */
static int ga_glibc_plausible_chunk(uintptr_t x, uintptr_t mapping_end)
{
    uintptr_t size, next;
    if ((x & 15) != 0 || ga_peek(x - sizeof(uintptr_t), &size, sizeof(size)) != 0)
        return 0;
    size &= ~GA_GLIBC_FLAGS;
    if (size < 32 || (size & 15) != 0 || size > mapping_end - x + 2 * sizeof(uintptr_t)
            || x - 2 * sizeof(uintptr_t) + size + 2 * sizeof(uintptr_t) > mapping_end)
        return 0;
    if (ga_peek(x - sizeof(uintptr_t) + size, &next, sizeof(next)) != 0)
        return 0;
    return (next & GA_GLIBC_PREV_INUSE) != 0;
}

/* -- /proc/self/maps ------------------------------------------------------------- */

static uintptr_t ga_hex(const char **s)
{
    uintptr_t v = 0;
    for (;; (*s)++) {
        char c = **s;
        if (c >= '0' && c <= '9')
            v = v * 16 + (uintptr_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v = v * 16 + (uintptr_t)(c - 'a' + 10);
        else
            return v;
    }
}

/* Find the mapping holding x: 1 and its range and name (into out->path:
 * "" anonymous, "[stack]", a file), 0 when nothing maps x, -1 when the
 * maps cannot be read. *holds_sp: the mapping also holds this thread's
 * stack pointer; *guard_below: right below it lies an inaccessible
 * mapping (a thread stack's guard). */
static int ga_find_mapping(uintptr_t x, ga_where_t *out, int *holds_sp, int *guard_below)
{
    char buf[4096];
    size_t have = 0;
    uintptr_t last_end = 0;
    int last_inaccessible = 0;
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC), found = 0;
    uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
    if (fd < 0)
        return -1;
    for (;;) {
        ssize_t got = read(fd, buf + have, sizeof(buf) - 1 - have);
        char *line = buf, *nl;
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        have += (size_t)got;
        buf[have] = '\0';
        while ((nl = memchr(line, '\n', (size_t)(buf + have - line))) != NULL) {
            const char *s = line;
            uintptr_t start, end;
            *nl = '\0';
            start = ga_hex(&s);
            s++;
            end = ga_hex(&s);
            if (x >= start && x < end) {
                *guard_below = last_inaccessible && last_end == start;
                const char *name = s;
                int field;
                for (field = 0; field < 4 && *name; field++) {   /* perms offset dev inode */
                    while (*name == ' ')
                        name++;
                    while (*name && *name != ' ')
                        name++;
                }
                while (*name == ' ')
                    name++;
                strncpy(out->path, name, sizeof(out->path) - 1);
                out->path[sizeof(out->path) - 1] = '\0';
                out->start = (const void *)start;
                out->end = (const void *)end;
                *holds_sp = sp >= start && sp < end;
                found = 1;
                break;
            }
            last_end = end;
            last_inaccessible = strncmp(s, " ---p", 5) == 0;
            line = nl + 1;
        }
        if (found)
            break;
        have = (size_t)(buf + have - line);
        if (have == sizeof(buf) - 1)
            have = 0;   /* a line longer than the buffer: drop it */
        memmove(buf, line, have);
    }
    close(fd);
    return found;
}

int ga_nonheap_classify(const void *p, ga_where_t *out)
{
    uintptr_t x = (uintptr_t)p;
    ga_object_search_t search = {x, out};
    int holds_sp = 0, guard_below = 0, found;
    memset(out, 0, sizeof(*out));
    out->kind = GA_MEM_HEAP;
    if (!ga_nonheap_on)
        return GA_MEM_HEAP;
    if (dl_iterate_phdr(ga_object_segment, &search))
        return out->kind;
    if (ga_glibc_mmapped_chunk(x) || ga_glibc_thread_heap(x))
        return GA_MEM_HEAP;
    /* After glibc's headers, so that a correct free of glibc's mmapped
     * chunk ends at glibc's own checks (the registry's lookup is a
     * lock-free tree walk, O(log arenas), but still more than those few
     * reads); a guardalloc block would pass for such a chunk only with
     * page-exact sizes written right in front of it. */
    out->arena = ga_find_arena(p);
    if (out->arena != NULL) {
        out->kind = GA_MEM_ARENA;
        out->module = out->arena->owner;
        out->start = out->arena->base;
        out->end = out->arena->base + out->arena->size;
        return out->kind;
    }
    found = ga_find_mapping(x, out, &holds_sp, &guard_below);
    if (found < 0) {
        out->kind = GA_MEM_HEAP;     /* cannot tell: pass it on */
        return GA_MEM_HEAP;
    }
    if (found == 0) {
        out->kind = GA_MEM_UNMAPPED;
        return out->kind;
    }
    if (strcmp(out->path, "[heap]") == 0) {
        uintptr_t lo = (uintptr_t)out->start;
        if (lo < __atomic_load_n(&ga_brk_lo, __ATOMIC_RELAXED))
            __atomic_store_n(&ga_brk_lo, lo, __ATOMIC_RELAXED);
        out->kind = GA_MEM_HEAP;
        return GA_MEM_HEAP;
    }
    if (strcmp(out->path, "[stack]") == 0 || holds_sp) {
        out->kind = GA_MEM_STACK;
        out->main_thread = out->path[0] == '[' || syscall(SYS_gettid) == getpid();
        out->tid = holds_sp ? (long)syscall(SYS_gettid) : (long)getpid();
        return out->kind;
    }
    if (out->path[0] == '\0' && guard_below) {
        /* Not a glibc heap (checked above) and a guard page below: how
         * glibc lays out a thread's stack. */
        out->kind = GA_MEM_STACK;
        return out->kind;
    }
    if (out->path[0] == '\0' && ga_glibc_plausible_chunk(x, (uintptr_t)out->end)) {
        out->kind = GA_MEM_HEAP;
        return GA_MEM_HEAP;
    }
    out->kind = GA_MEM_MAPPING;
    out->module = out->path;
    return out->kind;
}
