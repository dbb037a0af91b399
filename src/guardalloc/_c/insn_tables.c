/*
 * The vector maps of the x86-64 decoder (see insn_tables.h): for each opcode
 * of maps 0F, 0F38 and 0F3A, one entry per mandatory prefix (none, 66, F3,
 * F2): the size class of the memory operand, read or write, and in which
 * encodings (legacy, VEX, EVEX) the entry holds. An opcode left out is
 * unknown. Sizes are those of the Intel SDM's operand column (m32, m64,
 * m128/m256/m512 by vector length, the half and quarter of the pmovzx and
 * cvt families, m128 for the shift counts of psrlw and kin).
 */
#include "insn_tables.h"

#define R(c) (S_##c | A_R)
#define W(c) (S_##c | A_W)
#define VR R(VEC)
#define VW W(VEC)
#define MMX R(8) | T_LEG   /* MMX register forms: 8 bytes */
/* An MMX form without prefix, an SSE/AVX form with 66. */
#define MMX_SSE {MMX, VR, 0, 0}
/* packed single, packed double, scalar single, scalar double */
#define PS_PD_SS_SD {VR, VR, R(4), R(8)}
#define EV(x) ((x) | T_EVO)
#define VX(x) ((x) | T_VEXO)
#define SH_MMX {MMX, R(16), 0, 0}   /* shift counts: m128 at every length */

static const unsigned short ga_map_0f[256][4] = {
    [0x10] = PS_PD_SS_SD,
    [0x11] = {VW, VW, W(4), W(8)},
    [0x12] = {R(8), R(8), VR, R(DUP)},
    [0x13] = {W(8), W(8), 0, 0},
    [0x14] = {VR, VR, 0, 0},
    [0x15] = {VR, VR, 0, 0},
    [0x16] = {R(8), R(8), VR, 0},
    [0x17] = {W(8), W(8), 0, 0},
    [0x28] = {VR, VR, 0, 0},
    [0x29] = {VW, VW, 0, 0},
    [0x2a] = {R(8) | T_LEG, R(8) | T_LEG, R(Y), R(Y)},
    [0x2b] = {VW, VW, 0, 0},
    [0x2c] = {R(8) | T_LEG, R(16) | T_LEG, R(4), R(8)},
    [0x2d] = {R(8) | T_LEG, R(16) | T_LEG, R(4), R(8)},
    [0x2e] = {R(4), R(8), 0, 0},
    [0x2f] = {R(4), R(8), 0, 0},
    [0x51] = PS_PD_SS_SD,
    [0x52] = {VR, 0, R(4), 0},
    [0x53] = {VR, 0, R(4), 0},
    [0x54] = {VR, VR, 0, 0},
    [0x55] = {VR, VR, 0, 0},
    [0x56] = {VR, VR, 0, 0},
    [0x57] = {VR, VR, 0, 0},
    [0x58] = PS_PD_SS_SD,
    [0x59] = PS_PD_SS_SD,
    [0x5a] = {R(HALF), VR, R(4), R(8)},
    [0x5b] = {VR, VR, VR, 0},
    [0x5c] = PS_PD_SS_SD,
    [0x5d] = PS_PD_SS_SD,
    [0x5e] = PS_PD_SS_SD,
    [0x5f] = PS_PD_SS_SD,
    [0x60] = {R(4) | T_LEG, VR, 0, 0},
    [0x61] = {R(4) | T_LEG, VR, 0, 0},
    [0x62] = {R(4) | T_LEG, VR, 0, 0},
    [0x63] = MMX_SSE, [0x64] = MMX_SSE, [0x65] = MMX_SSE, [0x66] = MMX_SSE,
    [0x67] = MMX_SSE, [0x68] = MMX_SSE, [0x69] = MMX_SSE, [0x6a] = MMX_SSE, [0x6b] = MMX_SSE,
    [0x6c] = {0, VR, 0, 0},
    [0x6d] = {0, VR, 0, 0},
    [0x6e] = {R(Y) | T_LEG, R(Y), 0, 0},
    [0x6f] = {MMX, VR, VR, EV(VR)},
    [0x70] = {MMX, VR, VR, VR},
    [0x71] = {0, EV(VR), 0, 0},
    [0x72] = {0, EV(VR), 0, 0},
    [0x73] = {0, EV(VR), 0, 0},
    [0x74] = MMX_SSE, [0x75] = MMX_SSE, [0x76] = MMX_SSE,
    [0x78] = {EV(VR), EV(R(HALF) | T_W1FULL), EV(R(4)), EV(R(8))},
    [0x79] = {EV(VR), EV(R(HALF) | T_W1FULL), EV(R(4)), EV(R(8))},
    [0x7a] = {0, EV(R(HALF) | T_W1FULL), EV(R(HALF) | T_W1FULL), EV(VR)},
    [0x7b] = {0, EV(R(HALF) | T_W1FULL), EV(R(Y)), EV(R(Y))},
    [0x7c] = {0, VR, 0, VR},
    [0x7d] = {0, VR, 0, VR},
    [0x7e] = {W(Y) | T_LEG, W(Y), R(8), 0},
    [0x7f] = {W(8) | T_LEG, VW, VW, EV(VW)},
    [0xc2] = PS_PD_SS_SD,
    [0xc4] = {R(2) | T_LEG, R(2), 0, 0},
    [0xc6] = {VR, VR, 0, 0},
    [0xd0] = {0, VR, 0, VR},
    [0xd1] = SH_MMX, [0xd2] = SH_MMX, [0xd3] = SH_MMX,
    [0xd4] = MMX_SSE, [0xd5] = MMX_SSE,
    [0xd6] = {0, W(8), 0, 0},
    [0xd8] = MMX_SSE, [0xd9] = MMX_SSE, [0xda] = MMX_SSE, [0xdb] = MMX_SSE,
    [0xdc] = MMX_SSE, [0xdd] = MMX_SSE, [0xde] = MMX_SSE, [0xdf] = MMX_SSE,
    [0xe0] = MMX_SSE, [0xe1] = SH_MMX, [0xe2] = SH_MMX, [0xe3] = MMX_SSE,
    [0xe4] = MMX_SSE, [0xe5] = MMX_SSE,
    [0xe6] = {0, VR, R(HALF) | T_W1FULL, VR},
    [0xe7] = {W(8) | T_LEG, VW, 0, 0},
    [0xe8] = MMX_SSE, [0xe9] = MMX_SSE, [0xea] = MMX_SSE, [0xeb] = MMX_SSE,
    [0xec] = MMX_SSE, [0xed] = MMX_SSE, [0xee] = MMX_SSE, [0xef] = MMX_SSE,
    [0xf0] = {0, 0, 0, VR},
    [0xf1] = SH_MMX, [0xf2] = SH_MMX, [0xf3] = SH_MMX,
    [0xf4] = MMX_SSE, [0xf5] = MMX_SSE, [0xf6] = MMX_SSE,
    [0xf8] = MMX_SSE, [0xf9] = MMX_SSE, [0xfa] = MMX_SSE, [0xfb] = MMX_SSE,
    [0xfc] = MMX_SSE, [0xfd] = MMX_SSE, [0xfe] = MMX_SSE,
};

#define P66(x) {0, (x), 0, 0}
/* pmovzx/pmovsx (66: a read of part of the vector) and AVX-512's
 * down-converting stores vpmov* (F3: a write of the same part). */
#define PMOV(c) {0, R(c), EV(W(c)), 0}
#define FMA_PACKED P66(VX(VR))
#define FMA_SCALAR P66(VX(R(Y)))

static const unsigned short ga_map_0f38[256][4] = {
    [0x00] = MMX_SSE, [0x01] = MMX_SSE, [0x02] = MMX_SSE, [0x03] = MMX_SSE,
    [0x04] = MMX_SSE, [0x05] = MMX_SSE, [0x06] = MMX_SSE, [0x07] = MMX_SSE,
    [0x08] = MMX_SSE, [0x09] = MMX_SSE, [0x0a] = MMX_SSE, [0x0b] = MMX_SSE,
    [0x0c] = P66(VX(VR)), [0x0d] = P66(VX(VR)), [0x0e] = P66(VX(VR) | T_NOEV), [0x0f] = P66(VX(VR) | T_NOEV),
    [0x10] = {0, VR, EV(W(HALF)), 0},
    [0x11] = {0, EV(VR), EV(W(QUARTER)), 0},
    [0x12] = {0, EV(VR), EV(W(EIGHTH)), 0},
    [0x13] = {0, VX(R(HALF)), EV(W(HALF)), 0},
    [0x14] = {0, VR | T_NOEV, EV(W(QUARTER)), 0},
    [0x15] = {0, VR | T_NOEV, EV(W(HALF)), 0},
    [0x16] = P66(VX(VR)),
    [0x17] = P66(VR | T_NOEV),
    [0x18] = P66(VX(R(4))),
    [0x19] = P66(VX(R(8))),
    [0x1a] = P66(VX(R(16))),
    [0x1b] = P66(EV(R(32))),
    [0x1c] = MMX_SSE, [0x1d] = MMX_SSE, [0x1e] = MMX_SSE,
    [0x1f] = P66(EV(VR)),
    [0x20] = PMOV(HALF), [0x21] = PMOV(QUARTER), [0x22] = PMOV(EIGHTH),
    [0x23] = PMOV(HALF), [0x24] = PMOV(QUARTER), [0x25] = PMOV(HALF),
    [0x26] = {0, EV(VR), EV(VR), 0}, [0x27] = {0, EV(VR), EV(VR), 0},
    [0x28] = P66(VR), [0x29] = P66(VR), [0x2a] = P66(VR), [0x2b] = P66(VR),
    [0x2c] = P66(VX(VR | T_MASKED) | T_NOEV), [0x2d] = P66(VX(VR | T_MASKED) | T_NOEV),
    [0x2e] = P66(VX(VW | T_MASKED) | T_NOEV), [0x2f] = P66(VX(VW | T_MASKED) | T_NOEV),
    [0x30] = PMOV(HALF), [0x31] = PMOV(QUARTER), [0x32] = PMOV(EIGHTH),
    [0x33] = PMOV(HALF), [0x34] = PMOV(QUARTER), [0x35] = PMOV(HALF),
    [0x36] = P66(VX(VR)), [0x37] = P66(VR),
    [0x38] = P66(VR), [0x39] = P66(VR), [0x3a] = P66(VR), [0x3b] = P66(VR),
    [0x3c] = P66(VR), [0x3d] = P66(VR), [0x3e] = P66(VR), [0x3f] = P66(VR),
    [0x40] = P66(VR), [0x41] = P66(VR | T_NOEV),
    [0x42] = P66(EV(VR)), [0x43] = P66(EV(R(Y))), [0x44] = P66(EV(VR)),
    [0x45] = P66(VX(VR)), [0x46] = P66(VX(VR)), [0x47] = P66(VX(VR)),
    [0x4c] = P66(EV(VR)), [0x4d] = P66(EV(R(Y))), [0x4e] = P66(EV(VR)), [0x4f] = P66(EV(R(Y))),
    [0x50] = P66(VX(VR)), [0x51] = P66(VX(VR)), [0x52] = P66(VX(VR)), [0x53] = P66(VX(VR)),
    [0x54] = P66(EV(VR)), [0x55] = P66(EV(VR)),
    [0x58] = P66(VX(R(4))), [0x59] = P66(VX(R(8))), [0x5a] = P66(VX(R(16))), [0x5b] = P66(EV(R(32))),
    /* expand loads, compress stores: at most the whole vector, as a masked access */
    [0x62] = P66(EV(VR)), [0x63] = P66(EV(VW)),
    [0x64] = P66(EV(VR)), [0x65] = P66(EV(VR)), [0x66] = P66(EV(VR)),
    [0x70] = P66(EV(VR)), [0x71] = P66(EV(VR)), [0x72] = P66(EV(VR)), [0x73] = P66(EV(VR)),
    [0x75] = P66(EV(VR)), [0x76] = P66(EV(VR)), [0x77] = P66(EV(VR)),
    [0x78] = P66(VX(R(1))), [0x79] = P66(VX(R(2))),
    [0x7d] = P66(EV(VR)), [0x7e] = P66(EV(VR)), [0x7f] = P66(EV(VR)),
    [0x83] = P66(EV(VR)),
    [0x88] = P66(EV(VR)), [0x89] = P66(EV(VR)), [0x8a] = P66(EV(VW)), [0x8b] = P66(EV(VW)),
    [0x8c] = P66(VX(VR | T_MASKED) | T_NOEV), [0x8d] = P66(EV(VR)),
    [0x8e] = P66(VX(VW | T_MASKED) | T_NOEV), [0x8f] = P66(EV(VR)),
    /* gathers (VEX and EVEX), scatters (EVEX) */
    [0x90] = P66(VX(R(Y) | T_ELEM)), [0x91] = P66(VX(R(Y) | T_ELEM)),
    [0x92] = P66(VX(R(Y) | T_ELEM)), [0x93] = P66(VX(R(Y) | T_ELEM)),
    [0xa0] = P66(EV(W(Y) | T_ELEM)), [0xa1] = P66(EV(W(Y) | T_ELEM)),
    [0xa2] = P66(EV(W(Y) | T_ELEM)), [0xa3] = P66(EV(W(Y) | T_ELEM)),
    [0x96] = FMA_PACKED, [0x97] = FMA_PACKED, [0x98] = FMA_PACKED, [0x99] = FMA_SCALAR,
    [0x9a] = FMA_PACKED, [0x9b] = FMA_SCALAR, [0x9c] = FMA_PACKED, [0x9d] = FMA_SCALAR,
    [0x9e] = FMA_PACKED, [0x9f] = FMA_SCALAR,
    [0xa6] = FMA_PACKED, [0xa7] = FMA_PACKED, [0xa8] = FMA_PACKED, [0xa9] = FMA_SCALAR,
    [0xaa] = FMA_PACKED, [0xab] = FMA_SCALAR, [0xac] = FMA_PACKED, [0xad] = FMA_SCALAR,
    [0xae] = FMA_PACKED, [0xaf] = FMA_SCALAR,
    [0xb4] = P66(VX(VR)), [0xb5] = P66(VX(VR)),
    [0xb6] = FMA_PACKED, [0xb7] = FMA_PACKED, [0xb8] = FMA_PACKED, [0xb9] = FMA_SCALAR,
    [0xba] = FMA_PACKED, [0xbb] = FMA_SCALAR, [0xbc] = FMA_PACKED, [0xbd] = FMA_SCALAR,
    [0xbe] = FMA_PACKED, [0xbf] = FMA_SCALAR,
    [0xc4] = P66(EV(VR)),
    [0xc8] = {R(16) | T_LEG, 0, 0, 0}, [0xc9] = {R(16) | T_LEG, 0, 0, 0}, [0xca] = {R(16) | T_LEG, 0, 0, 0},
    [0xcb] = {R(16) | T_LEG, 0, 0, 0}, [0xcc] = {R(16) | T_LEG, 0, 0, 0}, [0xcd] = {R(16) | T_LEG, 0, 0, 0},
    [0xcf] = P66(VR),
    [0xdb] = P66(VR | T_NOEV), [0xdc] = P66(VR), [0xdd] = P66(VR), [0xde] = P66(VR), [0xdf] = P66(VR),
    /* BMI on general registers (VEX only; the legacy F0-FF are insn_decode.c's) */
    [0xf2] = {VX(R(Y) | T_GPR) | T_NOEV, 0, 0, 0},
    [0xf3] = {VX(R(Y) | T_GPR) | T_NOEV, 0, 0, 0},
    [0xf5] = {VX(R(Y) | T_GPR) | T_NOEV, 0, VX(R(Y) | T_GPR) | T_NOEV, VX(R(Y) | T_GPR) | T_NOEV},
    [0xf6] = {0, 0, 0, VX(R(Y) | T_GPR) | T_NOEV},
    [0xf7] = {VX(R(Y) | T_GPR) | T_NOEV, VX(R(Y) | T_GPR) | T_NOEV, VX(R(Y) | T_GPR) | T_NOEV,
              VX(R(Y) | T_GPR) | T_NOEV},
};

static const unsigned short ga_map_0f3a[256][4] = {
    [0x00] = P66(VX(VR)), [0x01] = P66(VX(VR)), [0x02] = P66(VX(VR) | T_NOEV), [0x03] = P66(EV(VR)),
    [0x04] = P66(VX(VR)), [0x05] = P66(VX(VR)), [0x06] = P66(VX(VR) | T_NOEV),
    [0x08] = P66(VR), [0x09] = P66(VR), [0x0a] = P66(R(4)), [0x0b] = P66(R(8)),
    [0x0c] = P66(VR | T_NOEV), [0x0d] = P66(VR | T_NOEV), [0x0e] = P66(VR | T_NOEV),
    [0x0f] = MMX_SSE,
    [0x14] = P66(W(1)), [0x15] = P66(W(2)), [0x16] = P66(W(Y)), [0x17] = P66(W(4)),
    [0x18] = P66(VX(R(16))), [0x19] = P66(VX(W(16))), [0x1a] = P66(EV(R(32))), [0x1b] = P66(EV(W(32))),
    [0x1d] = P66(VX(W(HALF))),
    [0x1e] = P66(EV(VR)), [0x1f] = P66(EV(VR)),
    [0x20] = P66(R(1)), [0x21] = P66(R(4)), [0x22] = P66(R(Y)),
    [0x23] = P66(EV(VR)), [0x25] = P66(EV(VR)), [0x26] = P66(EV(VR)), [0x27] = P66(EV(R(Y))),
    [0x38] = P66(VX(R(16))), [0x39] = P66(VX(W(16))), [0x3a] = P66(EV(R(32))), [0x3b] = P66(EV(W(32))),
    [0x3e] = P66(EV(VR)), [0x3f] = P66(EV(VR)),
    [0x40] = P66(VR | T_NOEV), [0x41] = P66(VR | T_NOEV), [0x42] = P66(VR), [0x43] = P66(EV(VR)),
    [0x44] = P66(VR), [0x46] = P66(VX(VR) | T_NOEV),
    [0x4a] = P66(VX(VR) | T_NOEV), [0x4b] = P66(VX(VR) | T_NOEV), [0x4c] = P66(VX(VR) | T_NOEV),
    [0x50] = P66(EV(VR)), [0x51] = P66(EV(R(Y))), [0x54] = P66(EV(VR)), [0x55] = P66(EV(R(Y))),
    [0x56] = P66(EV(VR)), [0x57] = P66(EV(R(Y))),
    [0x60] = P66(VR | T_NOEV), [0x61] = P66(VR | T_NOEV), [0x62] = P66(VR | T_NOEV), [0x63] = P66(VR | T_NOEV),
    [0x66] = P66(EV(VR)), [0x67] = P66(EV(R(Y))),
    [0x70] = P66(EV(VR)), [0x71] = P66(EV(VR)), [0x72] = P66(EV(VR)), [0x73] = P66(EV(VR)),
    [0xcc] = {R(16) | T_LEG, 0, 0, 0},
    [0xce] = P66(VR), [0xcf] = P66(VR),
    [0xdf] = P66(VR | T_NOEV),
    [0xf0] = {0, 0, 0, VX(R(Y) | T_GPR) | T_NOEV},
};

unsigned ga_vector_entry(unsigned map, unsigned op, unsigned pp, int enc, unsigned w)
{
    unsigned e;
    if (op > 0xff || pp > 3)
        return 0;
    e = map == 1 ? ga_map_0f[op][pp] : map == 2 ? ga_map_0f38[op][pp] : map == 3 ? ga_map_0f3a[op][pp] : 0;
    if (e == 0)
        return 0;
    if ((enc == GA_ENC_LEGACY && (e & (T_VEXO | T_EVO))) || (enc == GA_ENC_VEX && (e & (T_LEG | T_EVO)))
            || (enc == GA_ENC_EVEX && (e & (T_LEG | T_NOEV))))
        return 0;
    if (enc == GA_ENC_EVEX && w && (e & T_W1FULL) && (e & S_MASK) == S_HALF)
        e = (e & ~(unsigned)S_MASK) | S_VEC;
    return e;
}

int ga_vector_has_imm8(unsigned map, unsigned op)
{
    return map == 3 || (map == 1 && ((op >= 0x70 && op <= 0x73) || op == 0xc2 || (op >= 0xc4 && op <= 0xc6)));
}

int ga_vex_prefix(unsigned first, const unsigned char *p, size_t left, ga_vex_t *out)
{
    unsigned l;
    out->evex = out->mask = out->broadcast = 0;
    if (first == 0xc5) {
        if (left < 1)
            return -1;
        out->map = 1;
        out->w = 0;
        l = (p[0] >> 2) & 1;
        out->pp = p[0] & 3;
        out->prefix_len = 1;
    } else if (first == 0xc4) {
        if (left < 2)
            return -1;
        out->map = p[0] & 0x1f;
        out->w = p[1] >> 7;
        l = (p[1] >> 2) & 1;
        out->pp = p[1] & 3;
        out->prefix_len = 2;
    } else {
        /* EVEX: P0 = R X B R' 0 mmm, P1 = W vvvv 1 pp, P2 = z L'L b V' aaa.
         * A set P0 bit 3 or a clear P1 bit 2 is APX's extended EVEX. */
        if (left < 3 || (p[0] & 0x08) || !(p[1] & 0x04))
            return -1;
        out->map = p[0] & 7;
        out->w = p[1] >> 7;
        out->pp = p[1] & 3;
        l = (p[2] >> 5) & 3;
        out->broadcast = (p[2] >> 4) & 1;
        out->mask = p[2] & 7;
        out->evex = 1;
        out->prefix_len = 3;
        if (l == 3)
            return -1;
    }
    if (out->map < 1 || out->map > 3)
        return -1;
    out->vec = 16u << l;
    return 0;
}
