/*
 * Native stacks (see stacks.h): capture, the table of guardalloc's own code
 * ranges left out of captured stacks, and the raw frames of reports
 * (modules.c; symbolized later, outside the process).
 *
 * Capture uses libunwind's unw_backtrace where the build found libunwind
 * (GA_HAVE_LIBUNWIND, setup.py): it keeps, per thread, the unwind rule of
 * every return address it has met (CFA from the stack or frame pointer,
 * where the return address and the caller's frame pointer sit), so a stack
 * it has seen before costs a few loads a frame (docs/design.md, "Stack
 * capture"). Otherwise libgcc's _Unwind_Backtrace, which interprets the
 * .eh_frame rules of every frame on every capture.
 */
#define _GNU_SOURCE
#include <link.h>
#include <stdint.h>
#include <string.h>
#ifdef GA_HAVE_LIBUNWIND
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#else
#include <unwind.h>
#endif
#include "modules.h"
#include "stacks.h"
#include "sigunwind.h"

#define GA_SKIP_MAX 8

typedef struct {
    uintptr_t lo, hi;
} ga_range_t;

/* Written at load time (under the GIL or the library's initialiser),
 * read by every capture: entries are published before the count. */
static ga_range_t ga_skip[GA_SKIP_MAX];
static int ga_nskip;

static int ga_find_segment(struct dl_phdr_info *info, size_t size, void *arg)
{
    ga_range_t *r = arg;
    uintptr_t code = r->lo;
    int i;
    (void)size;
    for (i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X) && code >= lo && code < lo + ph->p_memsz) {
            r->lo = lo;
            r->hi = lo + ph->p_memsz;
            return 1;
        }
    }
    return 0;
}

int ga_stacks_skip_library(const void *code)
{
    ga_range_t r = {(uintptr_t)code, 0};
    int i, n = __atomic_load_n(&ga_nskip, __ATOMIC_ACQUIRE);
    for (i = 0; i < n; i++)
        if ((uintptr_t)code >= ga_skip[i].lo && (uintptr_t)code < ga_skip[i].hi)
            return 0;   /* known already */
    if (n == GA_SKIP_MAX || dl_iterate_phdr(ga_find_segment, &r) == 0)
        return -1;
    ga_skip[n] = r;
    __atomic_store_n(&ga_nskip, n + 1, __ATOMIC_RELEASE);
    return 0;
}

static int ga_skipped(uintptr_t ip)
{
    int i, n = __atomic_load_n(&ga_nskip, __ATOMIC_ACQUIRE);
    for (i = 0; i < n; i++)
        if (ip >= ga_skip[i].lo && ip < ga_skip[i].hi)
            return 1;
    return 0;
}

#ifdef GA_HAVE_LIBUNWIND
/* Frames a capture asks for: the stack kept, guardalloc's own leading
 * frames (a hook, the allocator: a few), and one more to see the cut. */
#define GA_CAPTURE_MAX (GA_STACK_DEPTH + 8)

static size_t ga_unwind(ga_stack_t *out)
{
    void *raw[GA_CAPTURE_MAX];
    int n = unw_backtrace(raw, GA_CAPTURE_MAX), first = 0;
    size_t kept;
    while (first < n && ga_skipped((uintptr_t)raw[first]))
        first++;   /* the allocator's own frames */
    kept = (size_t)(n - first) < GA_STACK_DEPTH ? (size_t)(n - first) : GA_STACK_DEPTH;
    memcpy(out->pc, raw + first, kept * sizeof(void *));
    if (n - first > GA_STACK_DEPTH || n == GA_CAPTURE_MAX)
        out->dropped = GA_STACK_CUT;
    return kept;
}

/* Per-thread caches of unwind rules: the global one takes a lock that a
 * fork() could leave held. Set when the library loads, before any thread
 * captures (setting it flushes the caches). */
__attribute__((constructor)) static void ga_unwinder_init(void)
{
    unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
}
#else
typedef struct {
    ga_stack_t *out;
    int n;
} ga_unwind_t;

static _Unwind_Reason_Code ga_unwind_one(struct _Unwind_Context *ctx, void *arg)
{
    ga_unwind_t *u = arg;
    uintptr_t ip = (uintptr_t)_Unwind_GetIP(ctx);
    if (ip == 0)
        return _URC_END_OF_STACK;
    if (u->n == 0 && ga_skipped(ip))
        return _URC_NO_REASON;   /* the allocator's own frames */
    if (u->n == GA_STACK_DEPTH) {
        u->out->dropped = GA_STACK_CUT;
        return _URC_END_OF_STACK;
    }
    u->out->pc[u->n++] = (void *)ip;
    return _URC_NO_REASON;
}

static size_t ga_unwind(ga_stack_t *out)
{
    ga_unwind_t u = {out, 0};
    _Unwind_Backtrace(ga_unwind_one, &u);
    return (size_t)u.n;
}
#endif

const char *ga_stack_unwinder(void)
{
#ifdef GA_HAVE_LIBUNWIND
    return "libunwind";
#else
    return "libgcc";
#endif
}

void ga_stack_capture(ga_stack_t *out)
{
    uintptr_t lo = 0, hi = 0;
    size_t i;
    int refreshed = 0;
    static int self_known;
    if (!__atomic_load_n(&self_known, __ATOMIC_ACQUIRE)) {
        /* This library's own frames (ga_stack_capture) are always left out. */
        ga_stacks_skip_library((const void *)&ga_stack_capture);
        __atomic_store_n(&self_known, 1, __ATOMIC_RELEASE);
    }
    out->dropped = 0;
    out->n = (uint32_t)ga_unwind(out);
    /* Code loaded since the module table was built shows first here, where
     * taking the loader's lock is allowed: the handler's raw frames need it.
     * Frames run in a few objects: one search per change of object. */
    for (i = 0; i < out->n; i++) {
        uintptr_t pc = (uintptr_t)out->pc[i];
        if (pc - lo >= hi - lo) {   /* not in the object of the frame before */
            const ga_module_t *m = ga_module_of(out->pc[i]);
            if (m == NULL && !refreshed) {   /* once a capture: code outside any object (a
                                              * ctypes trampoline, JIT code) stays there */
                refreshed = 1;
                ga_modules_refresh();
                m = ga_module_of(out->pc[i]);
            }
            lo = m != NULL ? m->lo : 0;
            hi = m != NULL ? m->hi : 0;
        }
    }
}

const void *ga_stack_interrupted_pc(int n)
{
    ga_regs_t r;
    if (ga_regs_of_outer_signal((uintptr_t)__builtin_frame_address(0), n, &r) != 0)
        return NULL;
    return (const void *)r.pc;
}

size_t ga_stack_format_frame(const void *pc, char *out, size_t size)
{
    return ga_format_raw_frame(pc, out, size);
}
