/*
 * The opcode tables of the x86-64 decoder (insn_decode.c, insn_tables.c):
 * size classes, access bits and the vector maps. Private to the decoder.
 */
#ifndef GUARDALLOC_INSN_TABLES_H
#define GUARDALLOC_INSN_TABLES_H

#include <stddef.h>
#include "internal.h"

/* Size classes: how many bytes the memory operand has (S_MASK bits). */
enum {
    S_NONE, S_1, S_2, S_4, S_8, S_10, S_16, S_32,
    S_V,        /* 2, 4 or 8: 66 prefix, none, REX.W                */
    S_Z,        /* 2 with 66 and no REX.W, else 4                   */
    S_D64,      /* 2 with 66 and no REX.W, else 8 (push, pop)       */
    S_SX,       /* movsxd's source: 4; unknown with 66 and no REX.W */
    S_Y,        /* 8 with W, else 4                                 */
    S_VEC,      /* the vector length: 16, 32 or 64                  */
    S_HALF, S_QUARTER, S_EIGHTH,
    S_DUP,      /* movddup: 8 for xmm, else the vector length       */
    S_MASK = 0x1f,
};

/* Access: read, write, both (read-modify-write). */
enum { A_R = 1 << 5, A_W = 2 << 5, A_RW = 3 << 5 };

/* Vector table flags (beside the size class and access). */
enum {
    T_LEG = 1 << 7,     /* legacy encoding only (MMX, ...)                  */
    T_VEXO = 1 << 8,    /* VEX or EVEX only                                 */
    T_EVO = 1 << 9,     /* EVEX only                                        */
    T_NOEV = 1 << 10,   /* not EVEX (another instruction there)             */
    T_MASKED = 1 << 11, /* vmaskmov: masked in VEX                          */
    T_W1FULL = 1 << 12, /* EVEX.W1: the whole vector instead of its half    */
    T_GPR = 1 << 13,    /* general registers (BMI): not a vector instruction */
    T_ELEM = 1 << 14,   /* gather, scatter: one element, 8 bytes with W, else 4 */
};

enum { GA_ENC_LEGACY, GA_ENC_VEX, GA_ENC_EVEX };

/* A VEX or EVEX prefix, parsed. */
typedef struct {
    unsigned map, w, pp, vec;   /* vec: bytes of the vector (16, 32, 64) */
    unsigned evex, mask, broadcast, prefix_len;
} ga_vex_t;

/* Parse the VEX (c4, c5) or EVEX (62) prefix whose payload starts at p
 * (left bytes). 0, or -1 when it is cut short or of a kind not decoded. */
GA_INTERNAL int ga_vex_prefix(unsigned first, const unsigned char *p, size_t left, ga_vex_t *out);

/* The entry of a vector instruction (map 1: 0F, 2: 0F38, 3: 0F3A; pp: 0
 * none, 1 66, 2 F3, 3 F2) in an encoding (GA_ENC_*), or 0 when unknown. */
GA_INTERNAL unsigned ga_vector_entry(unsigned map, unsigned op, unsigned pp, int enc, unsigned w);

/* 1 when the map 0F opcode takes an imm8 (map 0F3A always does). */
GA_INTERNAL int ga_vector_has_imm8(unsigned map, unsigned op);

#endif
