/*
 * The capture's unwinder (stacks.c: libunwind's unw_backtrace, when the
 * build has it) against libgcc's _Unwind_Backtrace, from the same frame:
 * tests/test_unwinder.py builds this with -O2 -fomit-frame-pointer, links
 * it with libguardalloc_core, and calls it at the bottom of varied stacks
 * (C recursion of this file, C++ exceptions, libpython, a Cython module).
 */
#include <alloca.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unwind.h>
#include "stacks.h"

#define MAX (GA_STACK_DEPTH + 8)

typedef struct {
    uintptr_t pc[MAX];
    int n;
} gcc_stack_t;

static _Unwind_Reason_Code one(struct _Unwind_Context *ctx, void *arg)
{
    gcc_stack_t *s = arg;
    uintptr_t ip = (uintptr_t)_Unwind_GetIP(ctx);
    if (ip == 0 || s->n == MAX)
        return _URC_END_OF_STACK;
    s->pc[s->n++] = ip;
    return _URC_NO_REASON;
}

/* 0 when both unwinders give the same return addresses above this
 * function's own frame (libgcc may give one more, outermost: the frame of
 * _start or clone, whose return address libunwind does not report);
 * otherwise prints both stacks to stderr and returns 1. Counts compared
 * frames in *compared. */
__attribute__((noinline)) int compare_unwinders(int *compared)
{
    ga_stack_t ga;
    gcc_stack_t gcc = {{0}, 0};
    int i, n, ok = 1;
    ga_stack_capture(&ga);
    _Unwind_Backtrace(one, &gcc);
    /* [0] is this function at two call sites: compare from [1]. */
    n = (int)ga.n;
    if (ga.dropped & GA_STACK_CUT) {
        ok = gcc.n > n;
    } else {
        ok = gcc.n == n || gcc.n == n + 1;
    }
    for (i = 1; ok && i < n; i++)
        ok = (uintptr_t)ga.pc[i] == gcc.pc[i];
    if (!ok) {
        fprintf(stderr, "unwinders differ: capture %d frames (cut %d), libgcc %d\n", n,
                (ga.dropped & GA_STACK_CUT) != 0, gcc.n);
        for (i = 0; i < MAX && (i < n || i < gcc.n); i++)
            fprintf(stderr, "  #%d %p %p\n", i, i < n ? ga.pc[i] : NULL, i < gcc.n ? (void *)gcc.pc[i] : NULL);
    }
    *compared = n > 0 ? n - 1 : 0;
    return !ok;
}

typedef int (*leaf_t)(int *);

/* Three kinds of frame for the recursion, chosen by the depth's bits: a
 * plain one, one with a variable-size array (the CFA from the frame
 * pointer that alloca forces even at -fomit-frame-pointer), one with many
 * arguments and callee-saved registers in use. */
__attribute__((noinline)) int descend(int depth, unsigned seed, leaf_t leaf, int *compared);

__attribute__((noinline)) static int plain(int depth, unsigned seed, leaf_t leaf, int *compared)
{
    int r = descend(depth - 1, seed * 1103515245u + 12345u, leaf, compared);
    __asm__ volatile("" ::: "memory");
    return r;
}

__attribute__((noinline)) static int dynamic(int depth, unsigned seed, leaf_t leaf, int *compared)
{
    volatile char *scratch = alloca(16 + seed % 512);
    scratch[0] = (char)depth;
    int r = descend(depth - 1, seed * 1103515245u + 12345u, leaf, compared);
    return r + scratch[0] - (char)depth;
}

__attribute__((noinline)) static int spilling(int depth, unsigned seed, leaf_t leaf, int *compared,
                                             long a, long b, long c, long d, long e)
{
    long x = a * 3 + b, y = c ^ d, z = e + depth;
    int r = descend(depth - 1, seed * 1103515245u + 12345u, leaf, compared);
    __asm__ volatile("" : "+r"(x), "+r"(y), "+r"(z));
    return r + (int)((x + y + z) & 0);
}

int descend(int depth, unsigned seed, leaf_t leaf, int *compared)
{
    if (depth <= 0)
        return leaf(compared);
    switch ((seed >> 16) % 3) {
    case 0:
        return plain(depth, seed, leaf, compared);
    case 1:
        return dynamic(depth, seed, leaf, compared);
    default:
        return spilling(depth, seed, leaf, compared, seed, depth, seed >> 3, seed << 2, depth * 7);
    }
}
