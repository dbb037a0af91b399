/*
 * The memory access of one x86-64 instruction (insn_decode.c): how many
 * bytes it touches, whether it reads or writes, and whether it is a string
 * or vector instruction -- what a page fault does not say. Pure: bytes in,
 * result out, no state, no system call, so the fault handler may call it and
 * tests may compare it with a disassembler and fuzz it.
 *
 * Scope: 64-bit mode; legacy, REX, VEX and EVEX (maps 0F, 0F38, 0F3A)
 * encodings; the integer instructions, x87, SSE to SSE4.2, AVX, AVX2, FMA,
 * BMI and the common AVX-512 loads, stores and arithmetic, gathers and
 * scatters (one element), compress and expand (the full vector, as a masked
 * access). Anything else (FP16, APX, AMX, XOP, system instructions, xsave
 * areas) is "unknown": the size is never guessed.
 */
#ifndef GUARDALLOC_INSN_DECODE_H
#define GUARDALLOC_INSN_DECODE_H

#include <stddef.h>
#include "internal.h"

/* The longest x86 instruction. */
#define GA_INSN_MAX 15

enum {
    GA_INSN_READ = 1 << 0,      /* reads memory                                      */
    GA_INSN_WRITE = 1 << 1,     /* writes memory                                     */
    GA_INSN_STRING = 1 << 2,    /* movs/stos/lods/cmps/scas/ins/outs: size is one element */
    GA_INSN_REP = 1 << 3,       /* ... with a rep/repe/repne prefix                  */
    GA_INSN_VECTOR = 1 << 4,    /* an MMX/SSE/AVX/AVX-512 instruction                */
    GA_INSN_MASKED = 1 << 5,    /* masked (AVX-512 opmask, vmaskmov): size is the full vector */
    GA_INSN_BROADCAST = 1 << 6, /* AVX-512 embedded broadcast: size is one element   */
    GA_INSN_NO_ACCESS = 1 << 7, /* a memory operand that is not accessed (lea, nop, prefetch) */
    GA_INSN_STACK = 1 << 8,     /* the access is to the stack (push, pop, call, ret) */
    GA_INSN_GATHER = 1 << 9,    /* a gather or scatter: size is one element          */
};

typedef struct {
    unsigned length;   /* bytes of the instruction; 0 when it was not decoded */
    unsigned size;     /* bytes of one access; 0: unknown                     */
    unsigned flags;    /* GA_INSN_* (READ/WRITE only when known)              */
} ga_insn_t;

/* Decode the instruction at code (n bytes available, at most GA_INSN_MAX
 * looked at). Returns 0 when the instruction was decoded (out->length set;
 * out->size may still be 0 for an access of no fixed size, or when the
 * instruction touches no memory), -1 when it is not known or n is too short
 * (*out all zero). Never reads past code[n - 1]. */
GA_INTERNAL int ga_insn_decode(const unsigned char *code, size_t n, ga_insn_t *out);

#endif
