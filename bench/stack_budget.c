/*
 * How many frames a packed stack (stacks.h: GA_PACKED_STACK_BYTES) keeps of
 * real stacks: an LD_PRELOAD shim that captures the stack of every 16th
 * malloc() of any program with the capture guardalloc uses, packs it, and
 * prints at exit the mean frames captured, the mean kept and the mean bytes
 * used. The sources it needs are compiled in (no guardalloc library):
 *
 *   cc -O2 -shared -fPIC -Isrc/guardalloc/_c bench/stack_budget.c \
 *       src/guardalloc/_c/stacks.c src/guardalloc/_c/stack_codec.c \
 *       src/guardalloc/_c/modules.c src/guardalloc/_c/sigunwind.c \
 *       -ldl -lgcc_s -o stack_budget.so
 *   LD_PRELOAD=./stack_budget.so PROGRAM ARGS...
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>
#include "stacks.h"

extern void *__libc_malloc(size_t n);

static __thread int inside;
static uint64_t calls, stacks, captured, kept, bytes, cut;

void *malloc(size_t n)
{
    if (!inside && __atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED) % 16 == 0) {
        ga_stack_t s;
        ga_packed_stack_t p;
        inside = 1;
        ga_stack_capture(&s);
        ga_stack_pack(&p, &s);
        __atomic_add_fetch(&stacks, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&captured, s.n, __ATOMIC_RELAXED);
        __atomic_add_fetch(&kept, s.n - (p.dropped & ~GA_STACK_CUT), __ATOMIC_RELAXED);
        __atomic_add_fetch(&bytes, p.used, __ATOMIC_RELAXED);
        __atomic_add_fetch(&cut, (s.dropped & GA_STACK_CUT) != 0, __ATOMIC_RELAXED);
        inside = 0;
    }
    return __libc_malloc(n);
}

__attribute__((destructor)) static void report(void)
{
    char line[256];
    int len;
    if (stacks == 0)
        return;
    len = snprintf(line, sizeof(line),
                   "stack_budget: %llu stacks: %.1f frames captured (%llu past %d), %.1f kept, "
                   "%.1f of %zu bytes used\n",
                   (unsigned long long)stacks, (double)captured / stacks, (unsigned long long)cut,
                   GA_STACK_DEPTH, (double)kept / stacks, (double)bytes / stacks,
                   sizeof(((ga_packed_stack_t *)0)->code));
    if (len > 0)
        (void)!write(2, line, (size_t)len);
}
