/*
 * What each part of a native stack's capture costs (stacks.c), for
 * bench/capture_cost.py: the unwinder alone, the unwinder with the old
 * module-table check (a binary search per frame), guardalloc's capture
 * (unwinder, its own frames left out, one search per change of object),
 * capture and packing, and a table refresh that finds nothing new (what a
 * frame in no loaded object, such as a ctypes callback's trampoline, costs
 * each capture). Build (from the repository root, CORE the built
 * libguardalloc_core*.so):
 *   cc -O2 -shared -fPIC -DGA_HAVE_LIBUNWIND -Isrc/guardalloc/_c bench/capture_cost.c \
 *       -o capture_cost.so CORE -lunwind
 */
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#include <time.h>
#include "modules.h"
#include "stacks.h"

enum { UNWIND, UNWIND_SEARCH_EACH, CAPTURE, CAPTURE_PACK, REFRESH, PARTS };

/* ns per call of part `which` over `iters` calls; *frames: one stack's frames. */
double measure(int which, int iters, int *frames)
{
    ga_stack_t s;
    ga_packed_stack_t p;
    void *raw[GA_STACK_DEPTH + 8];
    struct timespec t0, t1;
    int n = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < iters; i++) {
        switch (which) {
        case UNWIND:
            n = unw_backtrace(raw, GA_STACK_DEPTH + 8);
            break;
        case UNWIND_SEARCH_EACH:
            n = unw_backtrace(raw, GA_STACK_DEPTH + 8);
            for (int k = 0; k < n; k++)
                if (ga_module_of(raw[k]) == NULL)
                    ga_modules_refresh();
            break;
        case CAPTURE:
            ga_stack_capture(&s);
            n = (int)s.n;
            break;
        case CAPTURE_PACK:
            ga_stack_capture(&s);
            ga_stack_pack(&p, &s);
            n = (int)s.n;
            break;
        default:
            ga_modules_refresh();
            break;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    *frames = n;
    return ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / iters;
}
